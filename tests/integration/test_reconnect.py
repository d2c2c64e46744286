#!/usr/bin/python3
"""Reconnects: the server drops the socket mid-stream (--close-after: Node
closes without a WebSocket close frame, the Python mock resets the TCP
connection), and the server goes silent (--silent-after) so the heartbeat
timeout must fire after 2 x --heartbeat-s."""

import collections
import sys
import time

import harness
from harness import stt_get


def first_n_stored(h, room, n):
    """Per-type counts danmakud should store from the first n replayed packets."""
    replay = [p for p in harness.capture_server_packets(h.shared)
              if stt_get(p, 'type') not in ('loginres', 'pingreq')][:n]
    keep = collections.Counter()
    for p in replay:
        rid = stt_get(p, 'rid')
        if rid not in (None, '', '0', '9999'):
            continue
        keep[stt_get(p, 'type')] += 1
    return keep


def not_shutdown(r):
    return r is not None and r != 'shutdown' and r != ''


def close_after(h, start_mock, fmt, rooms, extra, exact_first, label):
    ck = h.ck
    ck.note('---- %s ----' % label)
    mock = start_mock()
    d = h.start_danmakud(rooms, [fmt % mock.port], extra=extra + ['--flush-ms', '100'], name=label)
    kills = mock.wait_line(r'^KILL ', 30, count=len(rooms))
    ck.eq(len(kills), len(rooms), '%s: mock dropped the first connection of each room' % label)
    t_kill = time.monotonic()
    sent = mock.wait_line(r'^SENT ', 40, count=len(rooms))
    ck.eq(len(sent), len(rooms), '%s: danmakud reconnected and got the full replay for every room' % label)
    ck.check(time.monotonic() - t_kill < 15, '%s: reconnect within 15 s of the drop' % label)
    want = {r: harness.expected_type_counts(h.shared, r) for r in rooms}
    extra_first = first_n_stored(h, rooms[0], 50)
    extra_first['chatmsg'] = 0  # deduplicated by cid

    def done(rs):
        got = {(r, t): n for r, t, n in rs}
        return all(got.get((r, 'chatmsg'), 0) == 147 for r in rooms) and \
            all(sum(n for (rr, _), n in got.items() if rr == r) >=
                sum(want[r].values()) + (sum(extra_first.values()) if exact_first else 0) for r in rooms)
    harness.wait_db(d.db, 'SELECT room_id, type, count(*) FROM messages GROUP BY room_id, type', done, 30)
    rc = h.stop_danmakud(d)
    ck.eq(rc, 0, '%s: exit 0 on SIGTERM' % label)
    for r in rooms:
        sess = harness.check_room_recording(h, d.db, r, expect_sessions=2,
                                            end_reasons=(not_shutdown, 'shutdown'), exact=False)
        if len(sess) == 2:
            ck.note('room %d first session ended with %r' % (r, sess[0][3]))
            ck.check(sess[0][2] <= sess[1][1] if sess[1][1] else False,
                     '%s room %d: second session joined after the first ended' % (label, r))
        if exact_first:
            got = collections.Counter(dict(harness.db_rows(
                d.db, 'SELECT type, count(*) FROM messages WHERE room_id=? GROUP BY type', (r,))))
            exp = want[r] + extra_first
            ck.eq(dict(sorted(got.items())), dict(sorted(exp.items())),
                  '%s room %d: first 50 packets stored once more except the deduplicated chats' % (label, r))
            if sess:
                n1 = harness.db_scalar(d.db, 'SELECT count(*) FROM messages WHERE session_id=?', (sess[0][0],))
                ck.eq(n1, sum(first_n_stored(h, r, 50).values()),
                      '%s room %d: first session stored the 50 packets sent before the drop' % (label, r))
    mock.signal(15)
    mock.wait(10)


def silent(h):
    ck = h.ck
    ck.note('---- silent-after 20, --heartbeat-s 1 ----')
    room = 9999
    mock = h.start_node_mock('--silent-after', 20, plain=True)
    d = h.start_danmakud([room], ['ws://127.0.0.1:%d/' % mock.port],
                         extra=['--heartbeat-s', '1', '--flush-ms', '100'], name='silent')
    ck.check(mock.wait_line(r'^SILENT ', 20), 'mock went silent on the first connection')
    t0 = time.monotonic()
    rows = harness.wait_db(d.db, 'SELECT id, joined_at, ended_at, end_reason FROM sessions WHERE room_id=? ORDER BY id',
                           lambda rs: len(rs) >= 1 and rs[0][2] is not None, 15, (room,))
    waited = time.monotonic() - t0
    ck.check(rows and rows[0][2] is not None, 'first session ended within 15 s of the silence (%.1f s)' % waited)
    if rows and rows[0][2] is not None:
        ck.eq(rows[0][3], 'heartbeat timeout', 'first session end_reason')
        last = harness.db_scalar(d.db, 'SELECT max(ts) FROM messages WHERE session_id=?', (rows[0][0],))
        if last is not None:
            gap = (rows[0][2] - last) / 1000.0
            ck.check(1.5 <= gap <= 5.0, 'timeout fired %.2f s after the last message (2 x 1 s expected)' % gap)
        stored = harness.db_scalar(d.db, 'SELECT count(*) FROM messages WHERE session_id=?', (rows[0][0],))
        ck.eq(stored, sum(first_n_stored(h, room, 20).values()), 'first session stored the 20 packets')
    ck.check(mock.wait_line(r'^SENT ', 20), 'danmakud reconnected after the heartbeat timeout')
    # The second connection gets mrkl echoes: it must survive well past 2 x 1 s.
    n_mrkl = len(mock.matching(r'^MRKL '))
    time.sleep(4.5)
    ck.check(len(mock.matching(r'^MRKL ')) - n_mrkl >= 3,
             'heartbeats keep coming every ~1 s (%d in 4.5 s)' % (len(mock.matching(r'^MRKL ')) - n_mrkl))
    rows = harness.db_rows(d.db, 'SELECT id, ended_at, end_reason FROM sessions WHERE room_id=? ORDER BY id', (room,))
    ck.eq(len(rows), 2, 'echoed heartbeats keep the second connection alive (2 sessions)')
    ck.check(len(rows) == 2 and rows[1][1] is None, 'second session still open before SIGTERM', rows)
    rc = h.stop_danmakud(d)
    ck.eq(rc, 0, 'exit 0 on SIGTERM')
    harness.check_room_recording(h, d.db, room, expect_sessions=2,
                                 end_reasons=('heartbeat timeout', 'shutdown'), exact=False)
    ck.eq(mock.matching('PROTO_ERROR'), [], 'no client protocol errors')


def body(h):
    ca = h.certs()['ca']
    close_after(h, lambda: h.start_node_mock('--close-after', 50, '--split'), 'wss://localhost:%d/',
                [9999, 288016], ['--ca-file', ca], True, 'node-wss-close')
    close_after(h, lambda: h.start_py_mock('--close-after', 50, mode='tcp'), 'tcp://127.0.0.1:%d',
                [71017], [], False, 'py-tcp-reset')
    silent(h)


if __name__ == '__main__':
    sys.exit(harness.Harness('reconnect').run(body))
