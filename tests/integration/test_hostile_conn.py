#!/usr/bin/python3
"""Servers that hurt the connection, not the parser (issue 10 section 1), against the
real danmakud and hostile_conn_server.py (raw asyncio, its own Upgrade, frames and TLS).
One danmakud per case, each with one room and one server, all with --heartbeat-s 1:

  ping_flood / tls_ping_flood: after join the server stops reading and floods
      websocket pings; our pongs pile up on our side. The connection must end with
      end_reason 'write queue full' and danmakud's VmRSS must stay under RSS_BOUND_MIB.
  ping_only / trickle: after join the socket stays busy (pings, or one byte of a packet
      every TRICKLE_S) but no Douyu packet ever completes. Each session must end with
      'heartbeat timeout' within 2x the heartbeat (plus one tick and slack), and the
      gaps view must show the time between the sessions as uncovered.
  blackhole: "blackhole.test" names 127.0.0.2 (a listener with a full backlog: SYNs are
      dropped, the connect hangs) then 127.0.0.1 (a normal server), through a hosts file
      of our own (CARES_HOSTS). The first attempt must join through the second address
      within one per-address connect timeout (10 s) and record the server's chat.
"""

import os
import socket
import sys
import time

import harness

HB_S = 1
TRICKLE_S = 0.5
ADDR_TIMEOUT_S = 10      # ROOM_ADDR_TIMEOUT_MS in room.c
FLOOD_WATCH_S = 8
# Idle, danmakud is ~5 MiB. A flooded connection may hold NET_WRITE_QUEUE_MAX (256 KiB)
# queued, one read's pongs in r->out (64 KiB of pings -> ~66 KiB) plus TLS records for them,
# and wslay's queue of one read's pongs; the rest is the store and SQLite's cache. Before the
# bound, the same flood took hundreds of MiB within seconds (see the closing note of issue 10).
RSS_BOUND_MIB = 24
# 2x the heartbeat, then up to one tick (a quarter of the heartbeat) and scheduling slack.
HB_END_BOUND_MS = 2 * HB_S * 1000 + 1500


def is_asan(path):
    with open(path, 'rb') as f:
        return b'__asan_init' in f.read()


def start_server(h, modes, extra=()):
    argv = [sys.executable, os.path.join(harness.HERE, 'hostile_conn_server.py'),
            '--modes', ','.join(modes), '--trickle-s', str(TRICKLE_S)] + list(extra)
    p = harness.Proc(argv, 'hostile-conn', cwd=harness.HERE,
                     stderr_path=os.path.join(h.tmp, 'hostile-conn.err'))
    h.procs.append(p)
    if not p.wait_line(r'^READY$', 20):
        raise RuntimeError('hostile_conn_server did not start: ' + p.stderr_text()[-2000:])
    return p, {m: int(port) for m, port in (l.split()[1:] for l in p.matching(r'^PORT '))}


def blackhole(port):
    """A listener on 127.0.0.2:port whose backlog (0) is already full: further SYNs are
    dropped, so connecting to it hangs like a dead address. Returns the sockets to keep."""
    lst = socket.socket()
    lst.bind(('127.0.0.2', port))
    lst.listen(0)
    filler = socket.create_connection(('127.0.0.2', port), timeout=5)
    probe = socket.socket()
    probe.setblocking(False)
    try:
        probe.connect(('127.0.0.2', port))
    except BlockingIOError:
        pass
    time.sleep(0.5)
    hangs = probe.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    try:
        probe.getpeername()
        hangs = False  # connected after all: no blackhole
    except OSError:
        pass
    probe.close()
    return [lst, filler], hangs


def sessions(db):
    return harness.db_rows(db, 'SELECT id, started_at, joined_at, ended_at, end_reason '
                           'FROM sessions ORDER BY id')


def body(h):
    ck = h.ck
    asan = is_asan(h.args.danmakud)
    certs = h.certs()
    srv, ports = start_server(h, ['ping_flood', 'tls_ping_flood', 'ping_only', 'trickle', 'normal'],
                              ['--cert', certs['cert'], '--key', certs['key']])
    common = ['--heartbeat-s', str(HB_S), '--flush-ms', '100']

    # The blackhole first: its timing matters most, so it starts before the floods load the CPU.
    keep, hangs = blackhole(ports['normal'])
    ck.check(hangs, 'a connect to a full-backlog listener on 127.0.0.2 hangs (the blackhole works)')
    hosts = os.path.join(h.tmp, 'hosts')
    with open(hosts, 'w') as f:
        f.write('127.0.0.2 blackhole.test\n127.0.0.1 blackhole.test\n')
    env = dict(os.environ, CARES_HOSTS=hosts)
    t0 = time.time()
    d_bh = h.start_danmakud([5], ['ws://blackhole.test:%d/' % ports['normal']], common,
                            name='blackhole', env=env)

    d_flood = h.start_danmakud([1], ['ws://127.0.0.1:%d/' % ports['ping_flood']], common,
                               name='flood')
    d_tls = h.start_danmakud([2], ['wss://localhost:%d/' % ports['tls_ping_flood']],
                             common + ['--ca-file', certs['ca']], name='tlsflood')
    d_ping = h.start_danmakud([3], ['ws://127.0.0.1:%d/' % ports['ping_only']], common,
                              name='pingonly')
    d_trickle = h.start_danmakud([4], ['ws://127.0.0.1:%d/' % ports['trickle']], common,
                                 name='trickle')

    # ---- floods: sample VmRSS of both flooded processes while the servers flood
    srv.wait_line(r'^JOIN ping_flood ', 20)
    srv.wait_line(r'^JOIN tls_ping_flood ', 20)
    peak = {d_flood.pid: 0, d_tls.pid: 0}
    end = time.monotonic() + FLOOD_WATCH_S
    while time.monotonic() < end:
        for pid in peak:
            kib = harness.vmrss_kib(pid)
            if kib:
                peak[pid] = max(peak[pid], kib)
        time.sleep(0.1)
    for d, mode in ((d_flood, 'ping_flood'), (d_tls, 'tls_ping_flood')):
        rows = harness.wait_db(d.db, 'SELECT end_reason FROM sessions WHERE end_reason IS NOT NULL',
                               lambda r: r and any(x[0] == 'write queue full' for x in r), 15)
        reasons = [x[0] for x in rows or []]
        ck.check('write queue full' in reasons,
                 '%s: the connection ends with end_reason "write queue full"' % mode, reasons)
        ck.check(all(x == 'write queue full' for x in reasons),
                 '%s: every ended session ended that way' % mode, reasons)
        flood = srv.matching(r'^FLOOD %s ' % mode)
        pings = sum(int(l.split()[2]) for l in flood)
        ck.note('%s: %d pings sent over %d connection(s); danmakud peak VmRSS %.1f MiB' %
                (mode, pings, len(flood), peak[d.pid] / 1024.0))
        if asan:
            ck.note('AddressSanitizer build: RSS bound not checked')
        else:
            ck.check(0 < peak[d.pid] < RSS_BOUND_MIB * 1024,
                     '%s: VmRSS stays under %d MiB (peak %.1f MiB)' %
                     (mode, RSS_BOUND_MIB, peak[d.pid] / 1024.0))
        ck.check(d.alive(), '%s: danmakud survives the flood' % mode)

    # ---- busy sockets with no packet: heartbeat timeout within 2x the heartbeat
    for d, mode, room in ((d_ping, 'ping_only', 3), (d_trickle, 'trickle', 4)):
        rows = harness.wait_db(d.db, 'SELECT count(*) FROM sessions WHERE joined_at IS NOT NULL '
                               'AND end_reason IS NOT NULL', lambda r: r and r[0][0] >= 2, 20)
        ss = [s for s in sessions(d.db) if s[2] is not None and s[3] is not None]
        ck.check(len(ss) >= 2, '%s: sessions end and the room reconnects (%d ended)' % (mode, len(ss)))
        ck.check(ss and all(s[4] == 'heartbeat timeout' for s in ss),
                 '%s: each ends with "heartbeat timeout"' % mode, [s[4] for s in ss])
        lived = [s[3] - s[2] for s in ss]
        ck.check(lived and all(ms <= HB_END_BOUND_MS for ms in lived),
                 '%s: each ends within 2x the heartbeat of its join (+ a tick): %s ms' %
                 (mode, lived))
        gaps = harness.db_rows(d.db, 'SELECT seconds, reason, from_ts, to_ts FROM gaps '
                               'WHERE room_id=? ORDER BY from_ts', (room,))
        ck.check(len(gaps) >= len(ss) - 1 and gaps and
                 all(g[1] == 'heartbeat timeout' and g[0] > 0 for g in gaps),
                 '%s: gaps shows the time between the sessions as uncovered' % mode, gaps)
        # Every gap starts where a session ended: none of the dead time counts as covered.
        ends = {s[3] for s in ss}
        ck.check(all(g[2] in ends for g in gaps), '%s: each gap starts at a session end' % mode)
        ck.check(d.alive(), '%s: danmakud is still running' % mode)
    ck.check(srv.matching(r'^PONGS ping_only [1-9]'),
             'ping_only: pings were answered (the socket itself was alive)',
             srv.matching(r'^PONGS ping_only'))

    # ---- the blackholed first address
    rows = harness.wait_db(d_bh.db, 'SELECT started_at, joined_at FROM sessions ORDER BY id',
                           lambda r: r and r[0][1] is not None, ADDR_TIMEOUT_S + 15)
    first = rows[0] if rows else None
    ck.check(first and first[1] is not None, 'blackhole: the first attempt joins')
    if first:
        after = first[0] / 1000.0 - t0
        ck.note('blackhole: connected %.1f s after start' % after)
        ck.check(ADDR_TIMEOUT_S - 1 <= after <= ADDR_TIMEOUT_S + 5,
                 'blackhole: connected through the second address after one connect '
                 'timeout on the first (%.1f s; the timeout is %d s)' % (after, ADDR_TIMEOUT_S))
    chats = harness.db_rows(d_bh.db, "SELECT text FROM messages WHERE type='chatmsg'")
    ck.eq(chats, [('hello',)], 'blackhole: the chat of the server behind the second address is stored')
    ck.check(len(rows or []) == 1, 'blackhole: one session, no failed attempt before it',
             rows)
    for s in keep:
        s.close()

    for d in (d_bh, d_flood, d_tls, d_ping, d_trickle):
        ck.eq(h.stop_danmakud(d), 0, '%s: danmakud exits 0 on SIGTERM' % os.path.basename(d.db))


if __name__ == '__main__':
    sys.exit(harness.Harness('hostile_conn').run(body))
