#!/usr/bin/python3
"""Missed heartbeats (protocol §4.3): the server drops a client that sends no heartbeat in
time, and danmakud must notice, end the session with a reason and reconnect.

1. heartbeat_s = 20 against a mock that drops clients silent for 2 s: every connection is
   dropped; danmakud reconnects each time (new getDanmuInfo, new token), sessions has several
   rows ended with a reason that is not shutdown, and the replay (sent once: --replay first)
   is stored exactly once.
2. heartbeat_s = 1, mock timeout 3 s: nothing is dropped while danmakud runs; SIGSTOP for 5 s
   (it cannot heartbeat), the mock drops it, and after SIGCONT it reconnects.
"""

import os
import signal
import sys
import time

import bili_common as bc
import harness


def not_shutdown(r):
    return r not in (None, '', 'shutdown')


def dropped(h, mock):
    ck = h.ck
    ck.note('---- heartbeat_s 20, mock drops after 2 s without one ----')
    room = 21452505
    db = os.path.join(h.tmp, 'hb20.db')
    conf = bc.write_conf(h, 'hb20', db, bc.bili_keys(mock, 'ws', heartbeat_s=20), [('bilibili:%d' % room, None)])
    expect = bc.Expect(bc.mock_script(mock, room))
    d = bc.start_recorder(h, conf, 'hb20')
    ok = bc.wait_alive(d, lambda: len(mock.matching(r'^CLOSE %d \d+ hb_timeout' % room)) >= 2 and
                       len(mock.matching(r'^AUTH %d ok' % room)) >= 3, 60)
    ck.check(ok, 'the mock dropped danmakud twice for missing heartbeats, and it came back each time',
             [l for l in mock.lines if l.startswith(('AUTH', 'CLOSE'))][-10:])
    ck.check(bc.wait_alive(d, lambda: bc.room_done(db, room, expect), 20), 'the replay is stored')
    rc = h.stop_danmakud(d)
    ck.eq(rc, 0, 'exit 0 on SIGTERM')
    if not bc.schema_ok(ck, db):
        return
    log = bc.settled_log(mock)
    bc.check_bili_room(h, db, room, expect, log, ws_port=mock.ports['ws'], sessions=None, end_reasons=(),
                       popularity=False, label='hb20 room %d' % room)
    sess = harness.db_rows(db, 'SELECT id, ended_at, end_reason FROM sessions WHERE room_id=? ORDER BY id', (room,))
    ck.check(len(sess) >= 3, '%d sessions: one per connection' % len(sess))
    reasons = [r for _, _, r in sess]
    ck.check(sum(1 for r in reasons if not_shutdown(r)) >= 2 and all(e is not None for _, e, _ in sess),
             'the dropped sessions ended with a reason (%s), every session ended' % reasons)
    closes = [c for c in log['conns'] if c['why'] == 'hb_timeout']
    auths = sorted(a['t'] for a in log['auths'] if a['ok'])
    gaps = [min((t - c['closed'] for t in auths if t > c['closed']), default=None) for c in closes]
    ck.check(closes and all(g is not None and g < 15000 for g in gaps[:-1]),
             'each drop was followed by a new auth within 15 s (ms: %s)' % gaps)
    # A reconnect within minutes reuses the room's token (one getDanmuInfo per room, not one
    # per reconnect: a network blip must not become a thousand spaced API calls).
    tokens = [a['body'].get('key') for a in log['auths'] if a['ok']]
    ck.check(len(tokens) >= 3 and len(set(tokens)) == 1,
             'the reconnects reused the fresh token (%d auths, %d tokens)' % (len(tokens), len(set(tokens))))

    ck.note('---- a token the server refuses is replaced ----')
    db = os.path.join(h.tmp, 'revoke.db')
    conf = bc.write_conf(h, 'revoke', db, bc.bili_keys(mock, 'ws', heartbeat_s=1), [('bilibili:%d' % room, None)])
    d = bc.start_recorder(h, conf, 'revoke')
    n_auth = len(mock.matching(r'^AUTH %d ok' % room))
    ck.check(bc.wait_alive(d, lambda: len(mock.matching(r'^AUTH %d ok' % room)) > n_auth, 20), 'connected')
    bc.mock_get(mock, '/_mock/revoke?room=%d' % room)
    bc.mock_get(mock, '/_mock/kick?room=%d' % room)
    ok = bc.wait_alive(d, lambda: len(mock.matching(r'^AUTH %d fail' % room)) >= 1 and
                       len(mock.matching(r'^AUTH %d ok' % room)) >= n_auth + 2, 30)
    ck.check(ok, 'the revoked token was refused (-101), then a new one worked',
             [l for l in mock.lines if l.startswith(('AUTH', 'CLOSE', 'KICK', 'REVOKE'))][-8:])
    ck.eq(h.stop_danmakud(d), 0, 'exit 0 on SIGTERM')
    sess = harness.db_rows(db, 'SELECT end_reason FROM sessions WHERE room_id=? ORDER BY id', (room,))
    ck.check(any('-101' in (r or '') for r, in sess), 'a session ended with the server error -101 (%s)' % [r for r, in sess])


def stopped(h, mock):
    ck = h.ck
    ck.note('---- heartbeat_s 1, mock timeout 3 s, danmakud SIGSTOPped for 5 s ----')
    room = 5553263
    db = os.path.join(h.tmp, 'hb1.db')
    conf = bc.write_conf(h, 'hb1', db, bc.bili_keys(mock, 'ws', heartbeat_s=1), [('bilibili:%d' % room, None)])
    expect = bc.Expect(bc.mock_script(mock, room))
    d = bc.start_recorder(h, conf, 'hb1')
    ck.check(bc.wait_alive(d, lambda: bc.room_done(db, room, expect), 40), 'room recorded')
    if not ck.check(d.alive(), 'danmakud running'):
        return
    time.sleep(4)
    ck.eq(mock.matching(r'^CLOSE %d ' % room), [], 'heartbeats every 1 s: the mock drops nothing (4 s)')
    n_auth = len(mock.matching(r'^AUTH %d ok' % room))
    d.signal(signal.SIGSTOP)
    try:
        ck.check(mock.wait_line(r'^CLOSE %d \d+ hb_timeout' % room, 10), 'stopped danmakud dropped by the mock')
        time.sleep(1)
    finally:
        d.signal(signal.SIGCONT)
    ck.check(bc.wait_alive(d, lambda: len(mock.matching(r'^AUTH %d ok' % room)) > n_auth, 30),
             'after SIGCONT danmakud reconnected')
    rc = h.stop_danmakud(d)
    ck.eq(rc, 0, 'exit 0 on SIGTERM')
    if not bc.schema_ok(ck, db):
        return
    sess = harness.db_rows(db, 'SELECT end_reason FROM sessions WHERE room_id=? ORDER BY id', (room,))
    ck.check(len(sess) == 2 and not_shutdown(sess[0][0]) and sess[1][0] == 'shutdown',
             'two sessions: the dropped one with a reason, then shutdown', sess)
    ck.eq(bc.split_popularity(bc.bili_counts(db, room), expect)[0], expect.counts,
          'the replay stored once (the mock replays only to the first connection)')


def body(h):
    mock = bc.start_mock(h, '--hb-timeout', 2, '--replay', 'first')
    dropped(h, mock)
    bc.mock_get(mock, '/_mock/mode?hb_timeout=3')
    stopped(h, mock)
    ck = h.ck
    ck.eq(mock.matching('^PROTO_ERROR'), [], 'mock saw no protocol errors')


if __name__ == '__main__':
    sys.exit(harness.Harness('bilibili_heartbeat').run(body))
