#!/usr/bin/env python3
"""The cost of upgrading a database to the current schema: bench/migrate_cost.py --danmakud
build/danmakud [--rows 1000000] [--dir /tmp]

Builds a schema-v2 database the size asked for: tests/data/store_v2.sql (what the v2 release
recorded, full-text index on) plus synthetic Douyu rows shaped like the recorder's (40 % chat
lines with a cid and text, 20 % gifts, 40 % enters, JSON data of 150-300 bytes, four rooms, 200
sessions), inserted by SQLite itself (a recursive CTE; the full-text triggers index the chat
lines). Then times `danmakud fts --db DB on`, which opens the database with the store (so
migrates it, in one transaction) and finds the index already on. Prints rows, size, seconds,
peak RSS. The database is removed afterwards.
"""

import argparse
import os
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DUMP = os.path.join(HERE, '..', 'tests', 'data', 'store_v2.sql')

FILL = """
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?1)
INSERT INTO messages(room_id, ts, type, uid, nick, level, text, cid, session_id, data)
SELECT room, ts, type, uid, 'n' || (i % 5000), 12, txt, cid, 1 + i % 6,
       CASE type
         WHEN 'chatmsg' THEN json_object('type', 'chatmsg', 'rid', CAST(room AS TEXT),
           'uid', CAST(uid AS TEXT), 'nn', 'n' || (i % 5000), 'txt', txt, 'cid', cid,
           'level', '12', 'cst', CAST(ts AS TEXT), 'dms', '4', 'ic', 'avatar/abc/def',
           'bnn', '', 'bl', '0', 'brid', '0', 'ct', '1')
         WHEN 'dgb' THEN json_object('type', 'dgb', 'rid', CAST(room AS TEXT), 'gfid', '824',
           'gfn', '粉丝荧光棒', 'uid', CAST(uid AS TEXT), 'nn', 'n', 'gfcnt', '1', 'hits', '1',
           'level', '3', 'ic', 'avatar/x')
         ELSE json_object('type', 'uenter', 'rid', CAST(room AS TEXT), 'uid', CAST(uid AS TEXT),
           'nn', 'n', 'level', '3', 'ic', 'avatar/x', 'sahf', '0') END
FROM (SELECT i, CASE i % 4 WHEN 0 THEN 9999 WHEN 1 THEN 288016 WHEN 2 THEN 74751 ELSE 5 END AS room,
             1700000000000 + i * 700 AS ts, 1000 + i % 5000 AS uid,
             CASE WHEN i % 10 < 4 THEN 'chatmsg' WHEN i % 10 < 6 THEN 'dgb' ELSE 'uenter' END AS type,
             CASE WHEN i % 10 < 4 THEN substr('主播今天状态真好不会打线队友简直不是人你们不是对手啊这滚滚无限死',
                                              1 + i % 17, 2 + i % 19) END AS txt,
             CASE WHEN i % 10 < 4 THEN lower(hex(randomblob(16))) END AS cid
      FROM n)
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--danmakud', required=True)
    ap.add_argument('--rows', type=int, default=1000000)
    ap.add_argument('--dir', default=tempfile.gettempdir())
    a = ap.parse_args()
    fd, db = tempfile.mkstemp(suffix='.db', dir=a.dir)
    os.close(fd)
    try:
        con = sqlite3.connect(db)
        with open(DUMP, encoding='utf-8') as f:
            con.executescript(f.read())
        con.close()
        con = sqlite3.connect(db)  # again: the full-text table the dump wrote is seen now
        t0 = time.monotonic()
        con.execute(FILL, (a.rows,))
        con.commit()
        con.execute('PRAGMA journal_mode = WAL')
        version, n = con.execute('SELECT (SELECT user_version FROM pragma_user_version), '
                                 '(SELECT count(*) FROM messages)').fetchone()
        con.close()
        print('built a schema-v%d database of %d messages in %.1f s (%.0f MB)'
              % (version, n, time.monotonic() - t0, os.path.getsize(db) / 1e6))
        t0 = time.monotonic()
        r = subprocess.run([a.danmakud, 'fts', '--db', db, 'on'], capture_output=True, text=True, timeout=3600)
        wall = time.monotonic() - t0
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if r.returncode != 0:
            sys.exit('danmakud fts failed: %s' % r.stderr)
        con = sqlite3.connect(db)
        version = con.execute('PRAGMA user_version').fetchone()[0]
        con.close()
        print('upgraded to schema v%d in %.2f s (peak RSS %d MiB), %.0f MB after'
              % (version, wall, peak // 1024, os.path.getsize(db) / 1e6))
    finally:
        for suffix in ('', '-wal', '-shm'):
            try:
                os.unlink(db + suffix)
            except FileNotFoundError:
                pass


if __name__ == '__main__':
    main()
