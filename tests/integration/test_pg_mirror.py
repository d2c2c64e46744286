#!/usr/bin/python3
"""Issue 13, mirror mode: two danmakud nodes (a and b, each its own SQLite database and config
file with [postgresql] url and [cluster] node/mode = mirror) record the same 3 rooms from
mock_douyu.js replaying the real S13-live capture (paced: 25 packets/s, about 22 s a room), all
shipping to one real PostgreSQL 15. Node a starts first; node b joins, ships, and is killed
with SIGKILL mid-stream. Then, from the mock's sent log and PostgreSQL:

- every chat message (chatmsg with a cid) the mock sent is in PostgreSQL exactly once, with
  the capture's nick, uid and text; message_cids holds the same set;
- node a's rows without a cid (uenter, dgb, ...) are all there, per room and type;
- every row node a committed locally is in PostgreSQL (as (a, local_id), or its cid stored by
  b); restarted on its database, node b ships every row it had committed before the kill;
- sessions come from both nodes (sessions.node); node a's, after its clean stop, are ended;
- the gaps view shows no gap for any room during the time node a lived;
- /proc/<pid>/task == 1 on every node, sampled throughout.
"""

import collections
import os
import signal
import sys
import time

import harness
import pg_common as pc

ROOMS = [9999, 288016, 71017]
RATE = 25  # capture packets per second and connection: 559 packets take about 22 s
KILL_AFTER_S = 8  # node b is killed this long after it joined


def joined(conn_log, node, rooms):
    """Rooms with a joined, open connection from node (by request path)."""
    now = pc.held_now(pc.holds(pc.read_jsonl(conn_log)))
    return {int(r) for r, lst in now.items() if any(hd.node == node for hd in lst)} >= set(rooms)


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
    sent_log = os.path.join(h.tmp, 'sent.jsonl')
    mock = h.start_node_mock('--rate', RATE, '--conn-log', conn_log, '--sent-log', sent_log,
                             plain=True)
    server = 'ws://127.0.0.1:%d/' % mock.port
    tasks = pc.TaskSampler()
    conf = {}
    for n in ('a', 'b'):
        conf[n] = pc.write_node_conf(h, n, pg.url, 'mirror', ROOMS, server + n)

    # Node a first: its sessions cover the rooms before b joins, so "no gap while a lived"
    # is about a alone.
    a_start = time.time() * 1000
    a = pc.start_node(h, 'a', conf['a'][0], conf['a'][1])
    tasks.add(a, 'node a')
    ck.check(pc.wait_for(lambda: joined(conn_log, 'a', ROOMS), 30, [a]),
             'node a: the mock saw it join the 3 rooms')
    if not ck.check(a.alive(), 'node a: running'):
        return
    ck.check(pc.wait_for(lambda: (pc.poll_int(pg, "SELECT count(*) FROM sessions "
                                                "WHERE node = 'a'") or 0) >= 3, 30, [a]),
             'node a: its 3 sessions reached PostgreSQL')
    ck.check(pc.wait_for(lambda: pc.log_has(a, r'postgresql: .*connected'), 10, [a]),
             'node a: logs "postgresql: ... connected"')

    b = pc.start_node(h, 'b', conf['b'][0], conf['b'][1])
    tasks.add(b, 'node b')
    ck.check(pc.wait_for(lambda: joined(conn_log, 'b', ROOMS), 30, [a, b]),
             'node b: the mock saw it join the 3 rooms')
    t_b = time.time()
    ck.check(pc.wait_for(
        lambda: (pc.poll_int(pg, "SELECT count(*) FROM sessions WHERE node = 'b'") or 0) >= 3 and
        (pc.poll_int(pg, "SELECT count(*) FROM messages WHERE node = 'b'") or 0) > 0, 30, [a, b]),
        'node b: its sessions and some of its messages reached PostgreSQL')
    # Mid-stream: about a third of the 22 s replay.
    time.sleep(max(0, KILL_AFTER_S - (time.time() - t_b)))
    if not ck.check(a.alive() and b.alive(), 'nodes a and b: running before the SIGKILL'):
        return
    b.signal(signal.SIGKILL)
    b.wait(10)
    kill_ms = time.time() * 1000
    b_max = harness.db_scalar(b.db, 'SELECT max(id) FROM messages') or 0
    b_rows = harness.db_scalar(b.db, 'SELECT count(*) FROM messages') or 0
    ck.note('node b killed with SIGKILL; it had committed %d rows locally (max id %d)'
            % (b_rows, b_max))
    ck.check(pc.wait_for(
        lambda: len([hd for hd in pc.holds(pc.read_jsonl(conn_log)).values()
                     if hd.node == 'b' and hd.close is not None]) >= 3, 10),
        'the mock saw node b\'s 3 connections close')
    b_sent = [hd.close['sent'] for hd in pc.holds(pc.read_jsonl(conn_log)).values()
              if hd.node == 'b' and hd.close is not None]
    total = len(harness.capture_server_packets(h.shared)) - 2  # without loginres, pingreq
    ck.check(len(b_sent) == 3 and all(0 < s < total for s in b_sent),
             'node b was killed mid-stream (packets sent to it per room: %s of %d)'
             % (b_sent, total))

    sent = mock.wait_line(r'^SENT ', 90, count=3)
    ck.eq(len(sent), 3, 'the mock replayed the whole capture to node a in the 3 rooms')
    looked, missing = pc.wait_shipped(pg, a.db, 'a', 30, procs=[a])
    ck.check(missing == [] and looked,
             'node a: all %s of its local rows are in PostgreSQL (as (a, local_id) or their cid)'
             % looked, 'missing (id, room, cid): %r' % (missing or [])[:20])

    # Restarted on the same database, b ships what it had committed before the kill.
    b2 = pc.start_node(h, 'b', conf['b'][0], conf['b'][1], name='b2')
    tasks.add(b2, 'node b (restarted)')
    ck.check(pc.wait_for(lambda: joined(conn_log, 'b', ROOMS), 30, [b2]),
             'node b, restarted: the mock saw it join the 3 rooms again')
    looked, missing = pc.wait_shipped(pg, b2.db, 'b', 30, max_id=b_max, procs=[b2])
    ck.check(missing == [] and looked == b_rows,
             'node b, restarted: every row it committed before the SIGKILL (%s of %d) is in '
             'PostgreSQL' % (looked, b_rows), 'missing (id, room, cid): %r' % (missing or [])[:20])
    rc = h.stop_danmakud(b2)
    ck.eq(rc, 0, 'node b (restarted): exit 0 on SIGTERM')
    rc = h.stop_danmakud(a)
    a_end = time.time() * 1000
    ck.eq(rc, 0, 'node a: exit 0 on SIGTERM')
    tasks.check(ck)
    mock.signal(signal.SIGTERM)
    mock.wait(10)

    # ---- what the mock sent against what PostgreSQL holds
    sent_chats = collections.Counter()
    for s in pc.read_jsonl(sent_log):
        if s['type'] == 'chatmsg' and s['cid']:
            sent_chats[('douyu', int(s['room']), s['cid'])] += 1
    want = {('douyu', r, c[0]) for r in ROOMS for c in harness.expected_chats(h.shared)}
    ck.eq(set(sent_chats), want, 'the mock\'s sent log: the capture\'s 147 chat cids in each room')
    rows = pc.pg_rows(pg, "SELECT platform, room_id, cid, count(*) FROM messages "
                          "WHERE cid IS NOT NULL GROUP BY 1, 2, 3")
    got = {(p, int(r), c): int(n) for p, r, c, n in rows}
    ck.eq(set(got), set(sent_chats),
          'PostgreSQL: SELECT platform, room_id, cid FROM messages = every chat cid the mock sent '
          '(%d)' % len(sent_chats))
    twice = {k: n for k, n in got.items() if n != 1}
    ck.eq(twice, {}, 'PostgreSQL: each of them exactly once')
    cids = {(p, int(r), c) for p, r, c in pc.pg_rows(pg, 'SELECT platform, room_id, cid '
                                                         'FROM message_cids')}
    ck.eq(cids, set(sent_chats), 'PostgreSQL: message_cids holds the same set')
    chats = pc.pg_rows(pg, "SELECT room_id, cid, nick, uid, text FROM messages "
                           "WHERE type = 'chatmsg'")
    ck.eq(sorted((int(r), c, n, u, t) for r, c, n, u, t in chats),
          sorted((r, c, n, u, t) for r in ROOMS for c, n, u, t in harness.expected_chats(h.shared)),
          'PostgreSQL: chat rows carry the capture\'s (cid, nick, uid, text)')
    ck.eq(pc.pg_int(pg, 'SELECT count(*) FROM chat'), 147 * len(ROOMS),
          'PostgreSQL: the chat view answers (147 chats a room)')
    by_node = dict((n, int(c)) for n, c in pc.pg_rows(pg, 'SELECT node, count(*) FROM messages '
                                                         'GROUP BY node'))
    ck.note('PostgreSQL messages per node: %r' % by_node)

    other = {}
    for r in ROOMS:
        for t, n in harness.expected_type_counts(h.shared, r).items():
            if t != 'chatmsg':
                other[(r, t)] = n
    got_other = {(int(r), t): int(n) for r, t, n in pc.pg_rows(
        pg, "SELECT room_id, type, count(*) FROM messages WHERE node = 'a' "
            "AND type <> 'chatmsg' GROUP BY 1, 2")}
    ck.eq(got_other, other, 'PostgreSQL: node a\'s rows without a cid, per room and type, '
                            'as the capture has them')
    ck.eq(pc.pg_rows(pg, 'SELECT count(*) - count(DISTINCT (node, local_id)) FROM messages'),
          [('0',)], 'PostgreSQL: (node, local_id) unique')

    sess = collections.Counter(n for (n,) in pc.pg_rows(pg, 'SELECT node FROM sessions'))
    ck.check(sess['a'] == 3 and sess['b'] >= 3 and set(sess) == {'a', 'b'},
             'PostgreSQL: sessions from both nodes (%r)' % dict(sess))
    a_local = pc.local_rows(a.db, 'SELECT id, room_id, joined_at, ended_at, end_reason, messages '
                                  'FROM sessions ORDER BY id')
    a_pg = [tuple(int(x) if x not in ('',) and x.lstrip('-').isdigit() else (x or None)
                  for x in row) for row in pc.pg_rows(
        pg, "SELECT local_id, room_id, joined_at, ended_at, end_reason, messages FROM sessions "
            "WHERE node = 'a' ORDER BY local_id")]
    ck.eq(a_pg, a_local, 'PostgreSQL: node a\'s sessions as its local database has them after '
                         'its clean stop (ended, end_reason, messages)')

    gaps = pc.pg_rows(pg, 'SELECT platform, room_id, from_ts, to_ts, seconds FROM gaps')
    during = [g for g in gaps if int(g[1]) in ROOMS and int(g[3]) > a_start and
              int(g[2]) < a_end]
    ck.eq(during, [], 'PostgreSQL gaps view: no gap in any room while node a lived (%s .. %s)'
          % (pc.fmt_ms(a_start), pc.fmt_ms(a_end)))
    ck.note('node b was killed at %s' % pc.fmt_ms(kill_ms))


if __name__ == '__main__':
    sys.exit(harness.Harness('pg_mirror').run(body))
