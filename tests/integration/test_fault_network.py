#!/usr/bin/python3
"""Network faults (issue 7), each against the real binary, run concurrently:

- down: the server is down at start: refused attempts back off (logged, with a
  growing ceiling), no sessions row exists for them, and recording starts by
  itself once the server comes up.
- close: the server accepts and closes at once, forever: the backoff ceiling
  grows and few connections are made in 10 s; each one is a sessions row.
- halfopen: the server stops sending, stops reading and never closes: the
  connection is dropped with 'heartbeat timeout' within 2x the heartbeat (1 s)
  plus a tick, and the room reconnects and records.
- dns: a name that does not resolve (nonexistent.invalid): logged, retried with
  backoff, no sessions row, no crash, clean stop.
- tls: the server accepts TCP and never answers the ClientHello: the attempt
  ends with 'tls timeout' after the handshake limit (2 s with --heartbeat-s 1).
- refused: two of three servers refuse: the rotation goes on and the good one
  records every room.
- errors: the server sends type@=error codes 51, 52 and 204: each is logged
  with its code, stored, and ends the connection; the room reconnects.
A DNS *timeout* (a resolver that never answers) is not reproduced here: c-ares
reads its servers from /etc/resolv.conf, which a test cannot redirect; the
room's own safety timer ends a transport that never answers with 'connect timeout'
(tests/unit/test_room.c).
"""

import re
import signal
import sys
import time

import harness
from fault_common import (start_fault, free_port, stderr_lines, wait_stderr, run_parallel,
                          thread_safe, cids, holes)

BACKOFF = r'reconnecting in ([\d.]+) s \(backoff up to (\d+) s\)'


def ceilings(d, room):
    return [int(m.group(2)) for l in stderr_lines(d, r'room %d: lost' % room)
            for m in [re.search(BACKOFF, l)] if m]


def sessions(db, room):
    return harness.db_rows(db, 'SELECT server, joined_at, end_reason FROM sessions WHERE room_id=? ORDER BY id',
                           (room,))


def down(h):
    ck = h.ck
    room = 7301
    port = free_port()
    d = h.start_danmakud([room], ['tcp://127.0.0.1:%d' % port], extra=['--flush-ms', '100'], name='down')
    lost = wait_stderr(d, r'room %d: lost \(connect: connection refused\)' % room, 20, count=3)
    ck.check(len(lost) >= 3, 'down: refused attempts are logged with their backoff (%d)' % len(lost))
    c = ceilings(d, room)
    ck.check(len(c) >= 3 and c[:3] == [1, 2, 4], 'down: the backoff ceiling grows (%s)' % c)
    srv = start_fault(h, '--port', port, '--rate', 200, name='down')
    rows = harness.wait_db(d.db, 'SELECT count(*) FROM messages', lambda r: r and r[0][0] >= 100, 60)
    ck.check(rows and rows[0][0] >= 100, 'down: recording starts by itself once the server is up')
    rc = h.stop_danmakud(d)
    ck.eq(rc, 0, 'down: exit 0')
    s = sessions(d.db, room)
    ck.check(len(s) == 1 and s[0][1] is not None and s[0][2] == 'shutdown',
             'down: one sessions row, for the connection that reached TCP (%r)' % s)
    srv.signal(signal.SIGTERM)


def close(h):
    ck = h.ck
    room = 7302
    srv = start_fault(h, '--mode', 'close', name='close')
    d = h.start_danmakud([room], [srv.url], extra=['--flush-ms', '100'], name='close')
    time.sleep(10)
    n = len(srv.matching(r'^CONNECT '))
    ck.check(1 <= n <= 10, 'close: no hot loop: %d connections in 10 s' % n)
    c = ceilings(d, room)
    ck.check(len(c) >= 3 and c == sorted(c) and c[-1] >= 4, 'close: the backoff ceiling grows (%s)' % c)
    rc = h.stop_danmakud(d)
    ck.eq(rc, 0, 'close: exit 0')
    s = sessions(d.db, room)
    n = len(srv.matching(r'^CONNECT '))
    ck.eq(len(s), n, 'close: every TCP connection is a sessions row')
    ck.check(all(r[1] is None for r in s) and all(r[2] in ('server closed', 'connection reset', 'shutdown')
                                                  for r in s),
             'close: never joined, ended server closed (%s)' % sorted(set(r[2] for r in s)))
    srv.signal(signal.SIGTERM)


def halfopen(h):
    ck = h.ck
    room = 7303
    srv = start_fault(h, '--mode', 'silent', '--silent-after', 50, '--rate', 500, name='halfopen')
    d = h.start_danmakud([room], [srv.url], extra=['--flush-ms', '100', '--heartbeat-s', '1'], name='halfopen')
    ck.check(srv.wait_line(r'^SILENT ', 20), 'halfopen: the server went silent (no close)')
    srv.cmd('MODE normal')
    rows = harness.wait_db(d.db, 'SELECT id, ended_at, end_reason FROM sessions WHERE room_id=? ORDER BY id',
                           lambda rs: rs and rs[0][1] is not None, 15, (room,))
    ck.check(rows and rows[0][2] == 'heartbeat timeout', 'halfopen: closed with heartbeat timeout (%r)' % rows)
    if rows and rows[0][1] is not None:
        last = harness.db_scalar(d.db, 'SELECT max(ts) FROM messages WHERE session_id=?', (rows[0][0],))
        gap = (rows[0][1] - last) / 1000.0 if last else -1
        ck.check(0 < gap <= 3.5, 'halfopen: detected %.2f s after the last byte (2 x 1 s + a tick)' % gap)
    got = harness.wait_db(d.db, 'SELECT count(*) FROM messages', lambda r: r and r[0][0] >= 500, 30)
    ck.check(got and got[0][0] >= 500, 'halfopen: reconnected and recording again')
    rc = h.stop_danmakud(d)
    ck.eq(rc, 0, 'halfopen: exit 0')
    ck.eq(holes(cids(d.db, room)), [], 'halfopen: no cid lost')
    srv.signal(signal.SIGTERM)


def dns(h):
    ck = h.ck
    room = 7304
    d = h.start_danmakud([room], ['tcp://nonexistent.invalid:8601'], extra=['--heartbeat-s', '1'], name='dns')
    lost = wait_stderr(d, r'room %d: lost \(resolv' % room, 25, count=2)
    ck.check(len(lost) >= 2, 'dns: resolution failures are logged and retried (%s)' % lost[:1])
    ck.check(d.alive(), 'dns: still running')
    rc = h.stop_danmakud(d)
    ck.eq(rc, 0, 'dns: exit 0')
    ck.eq(sessions(d.db, room), [], 'dns: no sessions row (no TCP connection was made)')


def tls(h):
    ck = h.ck
    room = 7305
    srv = start_fault(h, '--mode', 'stall', name='tls')
    ca = h.certs()['ca']
    d = h.start_danmakud([room], ['wss://localhost:%d/' % srv.port],
                         extra=['--heartbeat-s', '1', '--ca-file', ca], name='tls')
    lost = wait_stderr(d, r'room %d: lost \(tls timeout\)' % room, 25, count=2)
    ck.check(len(lost) >= 2, 'tls: a stalled handshake ends with "tls timeout" and is retried (%d)' % len(lost))
    rc = h.stop_danmakud(d)
    ck.eq(rc, 0, 'tls: exit 0')
    s = sessions(d.db, room)
    ck.check(len(s) >= 2 and all(r[2] == 'tls timeout' for r in s[:-1]),
             'tls: sessions end with "tls timeout" (%s)' % sorted(set(r[2] for r in s)))
    srv.signal(signal.SIGTERM)


def refused(h):
    ck = h.ck
    rooms = [7306, 7307, 7308]
    srv = start_fault(h, '--rate', 100, name='refused')
    bad = ['tcp://127.0.0.1:%d' % free_port() for _ in range(2)]
    d = h.start_danmakud(rooms, bad + [srv.url], extra=['--flush-ms', '100'], name='refused')
    rows = harness.wait_db(d.db, 'SELECT count(DISTINCT room_id) FROM messages', lambda r: r and r[0][0] == 3, 40)
    ck.check(rows and rows[0][0] == 3, 'refused: every room records through the good server')
    ck.check(stderr_lines(d, r'connection refused'), 'refused: the refused ports are logged')
    rc = h.stop_danmakud(d)
    ck.eq(rc, 0, 'refused: exit 0')
    servers = set(r[0] for r in harness.db_rows(d.db, 'SELECT server FROM sessions'))
    ck.eq(servers, {srv.url}, 'refused: sessions only for the server that accepted')
    srv.signal(signal.SIGTERM)


def errors(h):
    ck = h.ck
    room = 7309
    srv = start_fault(h, '--mode', 'error', '--error-after', 5, '--error-codes', '51,52,204', '--rate', 100,
                      name='errors')
    d = h.start_danmakud([room], [srv.url], extra=['--flush-ms', '100'], name='errors')
    sent = srv.wait_line(r'^ERROR_SENT ', 30, count=3)
    ck.eq([l.split()[2] for l in sent[:3]], ['51', '52', '204'], 'errors: the server sent codes 51, 52, 204')
    srv.cmd('MODE normal')
    rows = harness.wait_db(d.db, "SELECT text FROM messages WHERE type='error' ORDER BY id",
                           lambda r: len(r) >= 3, 20)
    ck.eq([r[0] for r in rows[:3]], ['error 51', 'error 52', 'error 204'], 'errors: each error is stored with its code')
    for code in (51, 52, 204):
        ck.check(stderr_lines(d, r'room %d: connection lost: server error %d' % (room, code)),
                 'errors: code %d is logged' % code)
    rc = h.stop_danmakud(d)
    ck.eq(rc, 0, 'errors: exit 0')
    reasons = [r[2] for r in sessions(d.db, room)]
    ck.eq(reasons[:3], ['server error 51 (data transfer error)', 'server error 52 (server closed)',
                        'server error 204 (room id wrong)'], 'errors: each error ends its connection')
    srv.signal(signal.SIGTERM)


def body(h):
    thread_safe(h.ck)
    h.certs()
    run_parallel(h, [down, close, halfopen, dns, tls, refused, errors])


if __name__ == '__main__':
    sys.exit(harness.Harness('fault_network').run(body))
