#!/usr/bin/python3
"""200 rooms on one process: danmakud must stay single-threaded (design §2:
one libuv loop, no threads) while it joins and records all of them."""

import os
import sys
import threading
import time

import harness

N = 200
ROOMS = list(range(1000, 1000 + N))


def body(h):
    ck = h.ck
    mock = h.start_node_mock(plain=True)
    d = h.start_danmakud(ROOMS, ['ws://127.0.0.1:%d/' % mock.port],
                         extra=['--flush-ms', '250'], name='threads')
    task_dir = '/proc/%d/task' % d.pid
    seen = {'max': 0, 'samples': 0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            try:
                n = len(os.listdir(task_dir))
            except OSError:
                break
            seen['max'] = max(seen['max'], n)
            seen['samples'] += 1
            time.sleep(0.05)
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    try:
        joins = mock.wait_line(r'^JOIN ', 120, count=N)
        ck.eq(len(joins), N, 'mock saw %d joins' % N)
        ck.eq(len(os.listdir(task_dir)), 1, 'one thread after all rooms joined')
        joined = harness.wait_db(d.db, 'SELECT count(*) FROM sessions WHERE joined_at IS NOT NULL',
                                 lambda rs: rs and rs[0][0] >= N, 30)
        ck.eq(joined[0][0] if joined else None, N, 'sessions with joined_at set')
        sent = mock.wait_line(r'^SENT ', 120, count=N)
        ck.eq(len(sent), N, 'mock replayed the capture to every room')
        want = sum(harness.expected_type_counts(h.shared, ROOMS[0]).values()) * N
        rows = harness.wait_db(d.db, 'SELECT count(*) FROM messages', lambda rs: rs and rs[0][0] >= want, 120)
        ck.eq(rows[0][0] if rows else None, want, 'all %d messages stored' % want)
        ck.eq(len(os.listdir(task_dir)), 1, 'one thread after recording')
    finally:
        stop.set()
        t.join(5)
    ck.eq(seen['max'], 1, 'never more than one thread (%d samples)' % seen['samples'])
    rc = h.stop_danmakud(d, timeout=60)
    ck.eq(rc, 0, 'exit 0 on SIGTERM')
    ck.eq(harness.db_rows(d.db, 'SELECT end_reason, count(*) FROM sessions GROUP BY end_reason'),
          [('shutdown', N)], 'all %d sessions ended with shutdown' % N)
    ck.eq(harness.db_scalar(d.db, 'SELECT count(DISTINCT room_id) FROM sessions'), N, 'one session per room')
    ck.eq(harness.db_rows(d.db, 'SELECT count(*) FROM sessions s WHERE messages != '
                                '(SELECT count(*) FROM messages m WHERE m.session_id = s.id)'), [(0,)],
          'sessions.messages equals stored rows for every session')
    per_room = harness.db_rows(d.db, "SELECT count(*) FROM (SELECT room_id FROM messages WHERE type='chatmsg' "
                                     "GROUP BY room_id HAVING count(*) = 147)")
    ck.eq(per_room, [(N,)], 'every room has its 147 chats')
    logouts = mock.wait_line(r'^LOGOUT ', 30, count=N)
    ck.eq(len(logouts), N, 'mock saw %d logouts' % N)
    ck.eq(mock.matching('PROTO_ERROR'), [], 'no client protocol errors')


if __name__ == '__main__':
    sys.exit(harness.Harness('threads').run(body))
