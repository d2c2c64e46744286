#!/usr/bin/python3
"""Bilibili and Douyu in one danmakud process (issue 11): three Bilibili rooms (one named by
its short id 76) against mock_bilibili.js over ws, two Douyu rooms (douyu:288016 and a bare
9999) against mock_douyu.js, all from one config file. Waits until every room has what its
mock sent, SIGTERM, then checks the database row by row against the mock's per-room script
(fixtures/bilibili) and the S13 capture, and the mock's log for what the client did (token and
buvid3 in auth, ACK, heartbeats, User-Agent, getDanmuInfo spacing). One thread throughout."""

import os
import sys

import bili_common as bc
import harness

BILI = [('bilibili:76', 'short-id room', 14073662, 76),
        ('bilibili:21452505', None, 21452505, 0),
        ('bilibili:5553263', 'third room', 5553263, 0)]
DOUYU = [('douyu:288016', None, 288016), ('9999', 'bare number', 9999)]
INTERVAL_MS = 200


def body(h):
    ck = h.ck
    mock = bc.start_mock(h, '--hb-timeout', 5)
    douyu = h.start_node_mock(plain=True)
    db = os.path.join(h.tmp, 'main.db')
    conf = bc.write_conf(h, 'main', db, bc.bili_keys(mock, 'ws', api_interval_ms=INTERVAL_MS),
                         [(k, label) for k, label, _, _ in BILI] + [(k, label) for k, label, _ in DOUYU],
                         douyu_servers=['ws://127.0.0.1:%d/' % douyu.port])
    expects = {real: bc.Expect(bc.mock_script(mock, real)) for _, _, real, _ in BILI}
    d = bc.start_recorder(h, conf, 'main')
    threads = bc.ThreadSampler(d.pid)
    try:
        bc.wait_recorded(h, d, mock, expects, heartbeats=6)
        want_douyu = {r: sum(harness.expected_type_counts(h.shared, r).values()) for _, _, r in DOUYU}
        ok = bc.wait_alive(d, lambda: dict(harness.db_rows(
            db, "SELECT room_id, count(*) FROM messages WHERE platform='douyu' GROUP BY room_id")) == want_douyu, 60)
        ck.check(ok, 'both Douyu rooms have the whole S13 replay')
        ck.check(d.alive(), 'danmakud running before SIGTERM')
        ck.eq(len(os.listdir('/proc/%d/task' % d.pid)) if d.alive() else None, 1, 'one thread while recording')
    finally:
        threads.stop()
    ck.eq(threads.max, 1, 'never more than one thread (%d samples)' % threads.samples)
    rc = h.stop_danmakud(d)
    ck.eq(rc, 0, 'danmakud exits 0 on SIGTERM')
    if not bc.schema_ok(ck, db):
        return

    log = bc.settled_log(mock)
    for key, label, real, short in BILI:
        bc.check_bili_room(h, db, real, expects[real], log, ws_port=mock.ports['ws'], short_id=short,
                           label='%s (room %d)' % (key, real))
    ck.eq(harness.db_rows(db, "SELECT platform, room_id, coalesce(short_id, 0), label FROM rooms ORDER BY platform, room_id"),
          sorted([('bilibili', real, short, label) for _, label, real, short in BILI] +
                 [('douyu', r, 0, label) for _, label, r in DOUYU]),
          'rooms: (platform, real id, short id, label) of the five, none under the short id')
    ck.eq(harness.db_rows(db, "SELECT count(*) FROM messages WHERE platform='bilibili' AND room_id=76"), [(0,)],
          'nothing stored under the short id 76')
    for _, label, r in DOUYU:
        harness.check_room_recording(h, db, r)
        ck.eq(harness.db_rows(db, 'SELECT DISTINCT platform FROM sessions WHERE room_id=?', (r,)), [('douyu',)],
              'douyu room %d: sessions.platform' % r)
    bc.check_views(h, db, expects)
    ck.check(harness.db_scalar(db, "SELECT count(*) FROM chat WHERE platform='douyu'") == 2 * 147,
             'view chat: the Douyu chats too')

    # What the client did, from the mock's side.
    chats_by_room = {r: {t for t, _, _ in e.chats if t.startswith('room ')} for r, e in expects.items()}
    for r, texts in chats_by_room.items():
        stray = harness.db_rows(db, "SELECT room_id, text FROM messages WHERE text LIKE 'room %d %%' AND room_id != ?"
                                % r, (r,))
        ck.eq(stray, [], 'room %d\'s chats stored under room %d only' % (r, r))
    ck.eq(len(log['auths']), len(BILI), 'one auth per Bilibili room (no reconnects)')
    ck.check(all(c['why'] and c['why'].startswith('client_close') for c in log['conns']),
             'every chat connection was closed by danmakud (none timed out or dropped by the mock)',
             [(c['room'], c['why']) for c in log['conns']])
    ck.check(all(c['path'] == '/sub' for c in log['conns']), 'websocket path /sub')
    ck.check(all(x['body_len'] == 0 for x in log['heartbeats']), 'heartbeats have an empty body (nothing echoed)')
    ck.check(all(a['body'].get('uid') == 0 for a in log['auths']), 'no cookie: auth uid 0')
    calls = bc.check_spacing(ck, log, INTERVAL_MS, 'main')
    ck.check(sorted(int(c['query']['id']) for c in calls if c['code'] == 0) == sorted(r for _, _, r, _ in BILI),
             'one successful getDanmuInfo per room, by real id', [(c['query'].get('id'), c['code']) for c in calls])
    ck.check(any(c['query'].get('id') == '76' for c in bc.api_calls(log, '/room_init')), 'room_init asked for id 76')
    bc.check_user_agent(ck, log, 'main')
    ck.eq(mock.matching('^PROTO_ERROR'), [], 'bilibili mock saw no protocol errors')
    ck.eq(douyu.matching('PROTO_ERROR'), [], 'douyu mock saw no protocol errors')


if __name__ == '__main__':
    sys.exit(harness.Harness('bilibili').run(body))
