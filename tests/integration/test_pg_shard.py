#!/usr/bin/python3
"""Issue 13, shard mode: three danmakud nodes (a, b, c; mode = shard, lease_s = 6) with the
same 30 rooms in every config, sharing one real PostgreSQL 15; mock_douyu.js floods every room
with numbered chats (10/s, cids unique per room across reconnects) and logs every connection
(--conn-log). Each node connects to its own path (ws://127.0.0.1:PORT/<node>), so the mock's
log says which node held which room when. Judged from that log, not from our tables:

- a and b take all 30 rooms; c, started later, takes some (the cluster rebalances);
- all 30 rooms are held, and no room ever has two connections at once (from the loginreq of
  one to the logout or close of the other; exact, no tolerance);
- kill -9 of the node holding the most rooms: each of its rooms is connected again by another
  node within lease_s + 10 s;
- SIGTERM of another node: each of its rooms is taken over within 5 s (the leases are
  released at once);
- PostgreSQL's gaps view shows exactly the handovers the mock saw (every gap in the mock's
  coverage matches one row of the view within 2 s on both edges, and the view has no other);
- /proc/<pid>/task == 1 on every node throughout.

Also: the metrics and room_leases agree with the mock on who holds what, no chat is stored
twice, every stored chat is one the mock sent, a clean stop leaves nothing unshipped and no
lease held.
"""

import collections
import os
import signal
import sys
import time

import harness
import pg_common as pc

N = 30
ROOMS = list(range(2001, 2001 + N))
LEASE = 6
RATE = 10           # chats per second and room
TOL_MS = 1000       # gap edges: the mock's clock against danmakud's timestamps, and the
                    # killed node's last rows that never reached PostgreSQL
NODES = ('a', 'b', 'c')


def body(h):
    pg = pc.pg_pre(h)
    if pg is None:
        return
    try:
        run(h, pg)
    finally:
        pg.close()


def run(h, pg):
    ck = h.ck
    conn_log = os.path.join(h.tmp, 'conn.jsonl')
    mock = h.start_node_mock('--flood', RATE, '--conn-log', conn_log, plain=True)
    server = 'ws://127.0.0.1:%d/' % mock.port
    tasks = pc.TaskSampler()
    nodes = {}

    def start(n):
        conf, db, prom = pc.write_node_conf(h, n, pg.url, 'shard', ROOMS, server + n, lease_s=LEASE)
        d = pc.start_node(h, n, conf, db)
        d.prom = prom
        nodes[n] = d
        tasks.add(d, 'node ' + n)
    alive = lambda: [d for d in nodes.values() if d.alive()]  # noqa: E731
    view = pc.View(conn_log, N)

    # a and b first; c joins a settled cluster: "adding a node rebalances".
    start('a')
    start('b')
    ck.check(pc.wait_for(lambda: len(view.refresh().holder()) == N, 60, list(nodes.values())),
             'the mock saw all %d rooms connected by nodes a and b (%d)' % (N, len(view.holder())))
    if not ck.check(len(alive()) == 2, 'nodes a and b running'):
        return
    ck.check(pc.wait_stable(view, 3, 45, list(nodes.values())),
             'settled: every room held by one connection, no connection change for 3 s')
    ck.note('rooms per node, a and b: %r' % dict(sorted(collections.Counter(
        view.holder().values()).items())))
    start('c')
    pc.wait_for(lambda: 'c' in view.refresh().holder().values(), 3 * LEASE + 10,
                list(nodes.values()), 0.25)
    ck.check(pc.wait_stable(view, 3, 45, list(nodes.values())) and len(alive()) == 3,
             'node c started: settled again, all three running')
    held = view.holder()
    per_node = collections.Counter(held.values())
    ck.note('rooms per node after node c joined: %r' % dict(sorted(per_node.items())))
    ck.check(len(held) == N and all(per_node[n] >= 1 for n in NODES),
             'every room held, and node c took some: the cluster rebalanced (%r)' % dict(per_node))

    def metrics_agree():
        m = {n: pc.metrics(nodes[n].prom).get('danmakud_cluster_rooms_held') for n in NODES}
        return m if all(m[n] == per_node[n] for n in NODES) else None
    got = pc.wait_for(metrics_agree, 10, alive(), 0.5)
    ck.check(got, 'metrics: danmakud_cluster_rooms_held per node as the mock sees it (%r)'
             % ({n: pc.metrics(nodes[n].prom).get('danmakud_cluster_rooms_held') for n in NODES}))
    leases = {int(r): n for r, n in pc.pg_rows(
        pg, 'SELECT room_id, node FROM room_leases WHERE node IS NOT NULL AND expires_at > now()')}
    ck.eq(leases, held, 'room_leases: the live leases are the connections the mock sees')

    # ---- kill -9 the node holding the most rooms
    victim = max(NODES, key=lambda n: (per_node[n], n))
    rooms_k = sorted(r for r, n in held.items() if n == victim)
    t_kill = time.time() * 1000
    nodes[victim].signal(signal.SIGKILL)
    nodes[victim].wait(10)
    ck.note('node %s killed with SIGKILL at %s holding %d rooms' % (victim, pc.fmt_ms(t_kill),
                                                                 len(rooms_k)))
    rest = [d for n, d in nodes.items() if n != victim]
    pc.wait_for(lambda: len(view.refresh().joins_after(t_kill, set(rooms_k), victim)) ==
                len(rooms_k), LEASE + 10 + 5, rest, 0.25)
    joins = view.joins_after(t_kill, set(rooms_k), victim)
    delays = sorted((j - t_kill) / 1000.0 for j in joins.values())
    ck.check(len(joins) == len(rooms_k) and delays and delays[-1] <= LEASE + 10,
             'kill -9: all %d of node %s\'s rooms connected again by others within lease_s + '
             '10 s (%d of them; delays %.2f..%.2f s)' % (len(rooms_k), victim, len(joins),
                                                         delays[0] if delays else -1,
                                                         delays[-1] if delays else -1))
    # Renewed every lease_s / 3, a lease has at least 2/3 of lease_s left when its node dies:
    # a room taken sooner was taken from under a live lease (0.5 s for the clocks).
    ck.check(delays and delays[0] >= LEASE * 2.0 / 3 - 0.5,
             'kill -9: nobody took a room before its lease could have run out (earliest %.2f s '
             'after the kill, >= %.1f s)' % (delays[0] if delays else -1, LEASE * 2.0 / 3 - 0.5))
    ck.check(pc.wait_stable(view, 2, 20, rest), 'settled again after the kill')

    # ---- SIGTERM another node that holds rooms
    held = view.holder()
    per_node = collections.Counter(held.values())
    left = [n for n in NODES if n != victim]
    term = max(left, key=lambda n: (per_node[n], n))
    survivor = [n for n in left if n != term][0]
    rooms_t = sorted(r for r, n in held.items() if n == term)
    ck.check(rooms_t, 'node %s holds rooms to hand over (%d)' % (term, len(rooms_t)))
    t_term = time.time() * 1000
    nodes[term].signal(signal.SIGTERM)
    pc.wait_for(lambda: len(view.refresh().joins_after(t_term, set(rooms_t), term)) ==
                len(rooms_t), 15, [nodes[survivor]], 0.1)
    rc = nodes[term].wait(20)
    ck.eq(rc, 0, 'node %s: exit 0 on SIGTERM' % term)
    joins = view.refresh().joins_after(t_term, set(rooms_t), term)
    delays = sorted((j - t_term) / 1000.0 for j in joins.values())
    ck.check(len(joins) == len(rooms_t) and delays and delays[-1] <= 5,
             'SIGTERM: all %d of node %s\'s rooms taken over within 5 s (%d of them; delays '
             '%.2f..%.2f s)' % (len(rooms_t), term, len(joins), delays[0] if delays else -1,
                                delays[-1] if delays else -1))
    # PG-SPEC says "released room X"; danmakud logs "cluster: let go of every lease".
    ck.check(pc.log_has(nodes[term], r'cluster: .*(releas|let go)'),
             'node %s: logs that it let its leases go on SIGTERM' % term)
    ck.check(pc.wait_stable(view, 2, 20, [nodes[survivor]]),
             'settled again: node %s holds every room' % survivor)
    ck.eq(collections.Counter(view.holder().values()), collections.Counter({survivor: N}),
          'node %s holds all %d rooms' % (survivor, N))

    # ---- PostgreSQL has what the survivor and the stopped node recorded
    looked, missing = pc.wait_shipped(pg, nodes[survivor].db, survivor, 30,
                                      procs=[nodes[survivor]])
    ck.check(missing == [] and looked,
             'node %s: its %s local rows are in PostgreSQL' % (survivor, looked),
             'missing: %r' % (missing or [])[:20])
    looked, missing = pc.unshipped(pg, nodes[term].db, term)
    ck.check(missing == [] and looked,
             'node %s (SIGTERM): a clean stop left none of its %s rows unshipped' % (term, looked),
             'missing: %r' % (missing or [])[:20])

    # ---- gaps: the mock's against PostgreSQL's (while the survivor still records)
    view.refresh()
    want = pc.coverage_gaps(view.hs)
    pg_gaps = collections.defaultdict(list)
    for plat, r, f, t in pc.pg_rows(pg, 'SELECT platform, room_id, from_ts, to_ts FROM gaps'):
        pg_gaps[int(r)].append((int(f), int(t)))
    bad = []
    all_matched = []
    n_want = 0
    for r in ROOMS:
        w = want.get(str(r), [])
        n_want += len(w)
        matched, miss, extra = pc.match_gaps(w, pg_gaps.get(r, []), TOL_MS)
        all_matched += matched
        for m in miss:
            bad.append('room %d: the mock saw a gap %s .. %s (%.2f s); the view has none like it'
                       % (r, pc.fmt_ms(m[0]), pc.fmt_ms(m[1]), (m[1] - m[0]) / 1000.0))
        for x in extra:
            bad.append('room %d: the view has a gap %s .. %s (%.2f s) the mock did not see'
                       % (r, pc.fmt_ms(x[0]), pc.fmt_ms(x[1]), (x[1] - x[0]) / 1000.0))
    ck.note('the mock saw %d gaps (handovers) in %d rooms; the gaps view has %d rows'
            % (n_want, sum(1 for r in ROOMS if want.get(str(r))),
               sum(len(v) for v in pg_gaps.values())))
    if all_matched:
        ck.note('matched gap edges differ by at most %d ms (from) and %d ms (to); mock gaps '
                '%.2f..%.2f s' % (max(abs(w[0] - g[0]) for w, g in all_matched),
                                  max(abs(w[1] - g[1]) for w, g in all_matched),
                                  min(w[1] - w[0] for w, g in all_matched) / 1000.0,
                                  max(w[1] - w[0] for w, g in all_matched) / 1000.0))
    ck.check(not bad and n_want >= len(rooms_k) + len(rooms_t),
             'the gaps view shows exactly the handovers the mock saw (within %.1f s an edge)'
             % (TOL_MS / 1000.0), '\n'.join(bad[:40]))
    long_gaps = [(r, (g[1] - g[0]) / 1000.0) for r, gs in want.items() for g in gs
                 if g[1] - g[0] > (LEASE + 10) * 1000]
    ck.eq(long_gaps, [], 'no handover left a room without a connection for more than '
                         'lease_s + 10 s')

    rc = h.stop_danmakud(nodes[survivor])
    ck.eq(rc, 0, 'node %s: exit 0 on SIGTERM' % survivor)
    tasks.check(ck)
    ck.eq(pc.pg_rows(pg, 'SELECT room_id, node FROM room_leases '
                         'WHERE node IS NOT NULL AND expires_at > now()'), [],
          'every node stopped or dead long enough: no live lease left')
    mock.signal(signal.SIGTERM)
    mock.wait(10)

    # ---- the whole run, from the mock's log
    view.refresh()
    ov = pc.overlaps(view.hs)
    ck.check(not ov, 'no room ever had two connections at once (%d rooms, %d connections, '
                     'whole run)' % (N, len(view.hs)),
             '\n'.join('room %s: %s and %s overlap %.3f s' % (r, a, b, ms / 1000.0)
                       for r, a, b, ms in ov[:20]))
    # Every stored chat is one the mock sent, once.
    ranges = collections.defaultdict(list)
    for hd in view.hs.values():
        if hd.close is not None and hd.close.get('first'):
            ranges[int(hd.room)].append((hd.close['first'], hd.close['last']))
    rows = pc.pg_rows(pg, "SELECT room_id, cid, count(*) FROM messages WHERE type = 'chatmsg' "
                          "GROUP BY 1, 2")
    twice = [r for r in rows if r[2] != '1']
    ck.eq(twice, [], 'PostgreSQL: no chat stored twice')
    foreign = []
    for r, cid, _ in rows:
        r = int(r)
        try:
            seq = int(cid[-16:], 16)
        except ValueError:
            seq = -1
        if cid != '%012x' % r + 'f100' + '%016x' % seq or \
                not any(f <= seq <= l for f, l in ranges.get(r, [])):
            foreign.append((r, cid))
    ck.check(rows and not foreign, 'PostgreSQL: every one of its %d chats is one the mock sent '
             '(in the seq range of one of the room\'s connections)' % len(rows), foreign[:20])
    nodes_with = {n for (n,) in pc.pg_rows(pg, 'SELECT DISTINCT node FROM sessions')}
    ck.eq(nodes_with, set(NODES), 'PostgreSQL: sessions from the three nodes')


if __name__ == '__main__':
    sys.exit(harness.Harness('pg_shard').run(body))
