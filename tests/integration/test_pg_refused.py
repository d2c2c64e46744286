#!/usr/bin/python3
"""Rows PostgreSQL refuses (issue 13): a bad row costs only itself.

A local database (made by danmakud, then given rows with sqlite3 as another program would)
holds, in id order: good rows, a row whose data jsonb cannot hold (the JSON escape \\u0000),
more good rows, a row whose ts PostgreSQL cannot turn into a month partition (-9e15 ms: out of
timestamp range), and good rows. danmakud ships it (a room on a closed port: nothing new). The
first batch fails on the timestamp, again with JSON checked, then goes row by row:
- every good row arrives, once, with its data;
- the \\u0000 row arrives with data kept as a JSON string holding the original text;
- the out-of-range row is logged with its local id, counted in danmakud_pg_refused_rows_total,
  and stays in the local database; nothing behind it waits;
- the shipped position passes every row.
Exit 77 only when PostgreSQL 15 is not installed.
"""

import json
import os
import re
import sqlite3
import sys
import time

import harness
import pg_common


def body(h):
    ck = h.ck
    pg = pg_common.start_pg(h)
    if not pg:
        return
    h.pg = pg
    db = os.path.join(h.tmp, 'r.db')
    # An empty danmakud database (no PostgreSQL): a room on a closed port, then SIGTERM.
    d0 = h.start_danmakud([1001], ['ws://127.0.0.1:1/'], db=db, name='make')
    ck.check(harness.wait_until(lambda: 'recording' in d0.stderr_text(), 10), 'database made')
    ck.eq(h.stop_danmakud(d0), 0, 'first run: clean exit')
    now = int(time.time() * 1000)
    rows = []  # (ts, data, cid)
    for i in range(10):
        rows.append((now + i, json.dumps({'type': 'chatmsg', 'n': i}), 'g%d' % i))
    rows.append((now + 10, '{"type":"chatmsg","txt":"a\\u0000b"}', 'nul'))
    for i in range(11, 20):
        rows.append((now + i, json.dumps({'type': 'chatmsg', 'n': i}), 'g%d' % i))
    rows.append((-9 * 10**15, json.dumps({'type': 'chatmsg', 'n': 'far'}), 'far'))
    for i in range(21, 30):
        rows.append((now + i, json.dumps({'type': 'chatmsg', 'n': i}), 'g%d' % i))
    with sqlite3.connect(db) as c:
        for ts, data, cid in rows:
            c.execute("INSERT INTO messages (room_id, ts, type, text, cid, data, platform) "
                      "VALUES (1001, ?, 'chatmsg', ?, ?, ?, 'douyu')", (ts, cid, cid, data))
        ids = {cid: i for i, cid in c.execute('SELECT id, cid FROM messages')}
    conf = os.path.join(h.tmp, 'r.conf')
    prom = os.path.join(h.tmp, 'r.prom')
    with open(conf, 'w') as f:
        f.write('[recorder]\ndatabase = %s\nmetrics_file = %s\nmetrics_interval_s = 1\n'
                '[douyu]\nservers = ws://127.0.0.1:1/\n[postgresql]\nurl = %s\n'
                '[cluster]\nnode = r\n[rooms]\n1001\n' % (db, prom, pg.url))
    d = h.start_danmakud([], [], extra=['-c', conf], db=db, name='r')

    def shipped():
        try:
            with sqlite3.connect('file:%s?mode=ro' % db, uri=True, timeout=5) as c:
                r = c.execute('SELECT messages_id FROM shipping').fetchone()
                return r and r[0] >= max(ids.values())
        except sqlite3.Error:
            return False
    ck.check(harness.wait_until(shipped, 60), 'the shipped position passes every row')
    got = dict(pg_common.pg_rows(pg, "SELECT cid, data::text FROM messages WHERE node = 'r'"))
    good = sorted(c for _, _, c in rows if c.startswith('g'))
    ck.eq(sorted(c for c in got if c.startswith('g')), good, 'every good row arrived')
    n = pg_common.pg_rows(pg, "SELECT count(*), count(DISTINCT local_id) FROM messages")
    ck.eq(n, [(str(len(good) + 1),) * 2], 'each once, and the \\u0000 row')
    ck.check('g3' in got and json.loads(got['g3']) == {'type': 'chatmsg', 'n': 3},
             'good data as jsonb', got.get('g3'))
    ck.eq(json.loads(got.get('nul', 'null')), '{"type":"chatmsg","txt":"a\\u0000b"}',
          'the \\u0000 row: data kept as a JSON string of the original text')
    ck.check('far' not in got, 'the out-of-range row is not in PostgreSQL')
    log = d.stderr_text()
    ck.check(re.search(r'local message %d refused \(22' % ids['far'], log),
             'the refused row is logged with its local id', log[-3000:])
    ck.check(harness.wait_until(lambda: 'danmakud_pg_refused_rows_total 1\n' in
                                open(prom).read(), 10), 'counted in the metrics')
    with sqlite3.connect(db) as c:
        ck.eq(c.execute("SELECT count(*) FROM messages WHERE cid = 'far'").fetchone()[0], 1,
              'it stays in the local database')
    ck.eq(h.stop_danmakud(d), 0, 'clean exit')


def main():
    h = harness.Harness('pg_refused')
    h.pg = None

    def run(hh):
        try:
            body(hh)
        finally:
            if hh.pg:
                hh.pg.stop()
    sys.exit(h.run(run))


if __name__ == '__main__':
    main()
