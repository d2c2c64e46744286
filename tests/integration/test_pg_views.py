#!/usr/bin/python3
"""The PostgreSQL schema of src/pg_schema.c (issue 13), on a real PostgreSQL 15 (pg_server.py).

1. The statements (printed by pg_schema_dump, each ended by a line ";;") create the schema in
   an empty database in one transaction, and insert no danmakud_schema row.
2. The recording of test_queries.py (dataset.record, TZ=CST-8: UTC+8, with the Bilibili room)
   is copied into PostgreSQL as node n1 (local_id = the SQLite id, session_id mapped to the
   PostgreSQL sessions.id, ids of PostgreSQL's own). Every view (chat, gifts, superchats, live,
   gaps, daily, room_stats) must have SQLite's columns, in order, and the same rows: times
   compared as epoch seconds, floats to 1e-6, ids through local_id, silent_s to 2 s.
   Then every README question but full-text search, with SQLite's date functions said in
   PostgreSQL's words, must give the sqlite3 shell's answer, rows in the same order.
3. Mirror: the same sessions again as node n2, shifted by half the shortest gap, then a node n3
   session across one gap: gaps must give exactly the time covered by no node.
4. danmakud_partitions: a Dec-Jan range makes two monthly partitions with UTC month bounds;
   again: nothing, and no lock taken; more than 1200 months is refused; two concurrent callers
   (staggered and together) both succeed; another search_path changes nothing; rows land in
   their month's partition.
5. Fields that are not numbers (a hostile message) do not make any view fail.
Exit 77 only when the PostgreSQL 15 binaries are missing.
"""

import argparse
import calendar
import datetime
import json
import os
import sqlite3
import subprocess
import sys
import time

import dataset
import harness
import test_queries
from pg_server import PgServer, PgUnavailable

TZ = 'CST-8'  # UTC+8 in POSIX form; PostgreSQL reads the same spelling as a POSIX zone
TIME_COLS = {'time', 'gap_from', 'gap_to', 'session_start', 'last_message'}
VIEWS = {  # view: the columns that identify a row
    'chat': ('id',), 'gifts': ('id',), 'superchats': ('id',), 'live': ('id',),
    'gaps': ('platform', 'room_id', 'from_ts'), 'daily': ('day', 'platform', 'room_id'),
    'room_stats': ('platform', 'room_id'),
}
ID_OFFSET = 100000   # PostgreSQL ids are not SQLite's: the views must not depend on that
SESSION_BASE = 5000


def q(v):
    """An SQL literal (standard_conforming_strings is on)."""
    if v is None:
        return 'NULL'
    if isinstance(v, (int, float)):
        return repr(v)
    return "'" + str(v).replace("'", "''") + "'"


class Pg:
    def __init__(self, server):
        self.s = server
        self.env = dict(os.environ, PGTZ=TZ)

    def run(self, sql, single=False, check=True):
        """psql on sql (a file's worth); returns CompletedProcess (stdout text)."""
        argv = ['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-At', '-d', self.s.url]
        if single:
            argv.append('--single-transaction')
        r = subprocess.run(argv + ['-f', '-'], input=sql.encode(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120, env=self.env)
        if check and r.returncode != 0:
            raise RuntimeError('psql: %s' % r.stderr.decode(errors='replace')[-3000:])
        return r

    def json(self, sql):
        out = self.run("SELECT coalesce(json_agg(row_to_json(v)), '[]') FROM (%s) v" % sql).stdout
        return json.loads(out.decode())

    def scalar(self, sql):
        return self.run(sql).stdout.decode().strip()


def statements(dump):
    out = subprocess.run([dump], stdout=subprocess.PIPE, check=True, timeout=30).stdout.decode()
    parts = out.split('\n;;\n')
    assert parts[-1].strip() == '', 'pg_schema_dump output does not end with ;;'
    return parts[:-1]


# ---------------------------------------------------------------- copying
def copy_to_pg(pg, db, node='n1'):
    con = sqlite3.connect('file:%s?mode=ro' % db, uri=True)
    rooms = con.execute('SELECT platform, room_id, label, added_at, short_id FROM rooms').fetchall()
    sessions = con.execute('SELECT id, room_id, server, started_at, joined_at, ended_at, end_reason, '
                           'messages, platform FROM sessions ORDER BY id').fetchall()
    msgs = con.execute('SELECT id, room_id, ts, type, uid, nick, level, text, cid, session_id, data, '
                       'platform, decoded FROM messages ORDER BY id').fetchall()
    con.close()
    lo, hi = min(m[2] for m in msgs), max(m[2] for m in msgs)
    sql = ['SELECT danmakud_partitions(%d, %d);' % (lo, hi),
           "SELECT setval('sessions_id_seq', %d);" % SESSION_BASE,
           "SELECT setval('messages_id_seq', %d);" % ID_OFFSET]
    for r in rooms:
        sql.append('INSERT INTO rooms(platform, room_id, label, added_at, short_id) VALUES (%s);'
                   % ', '.join(q(v) for v in r))
    for s in sessions:
        sql.append('INSERT INTO sessions(local_id, room_id, server, started_at, joined_at, ended_at, '
                   'end_reason, messages, platform, node) VALUES (%s, %s);'
                   % (', '.join(q(v) for v in s), q(node)))
    # session_id first holds the local id; one UPDATE maps it to PostgreSQL's sessions.id.
    for i in range(0, len(msgs), 500):
        vals = ',\n'.join('(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s::jsonb, %s)'
                          % tuple(q(v) for v in (m[0],) + m[1:] + (node,)) for m in msgs[i:i + 500])
        sql.append('INSERT INTO messages(local_id, room_id, ts, type, uid, nick, level, text, cid, '
                   'session_id, data, platform, decoded, node) VALUES\n%s;' % vals)
    sql.append('UPDATE messages m SET session_id = s.id FROM sessions s '
               'WHERE s.node = m.node AND s.local_id = m.session_id AND m.node = %s;' % q(node))
    pg.run('\n'.join(sql), single=True)
    return sessions, msgs


# ---------------------------------------------------------------- comparing
def epoch_sqlite(text):
    """SQLite's local 'YYYY-MM-DD HH:MM:SS' (TZ is set in this process) as epoch seconds."""
    return None if text is None else int(time.mktime(time.strptime(text, '%Y-%m-%d %H:%M:%S')))


def epoch_pg(text):
    return None if text is None else int(datetime.datetime.fromisoformat(text).timestamp() // 1)


def sqlite_view(db, view):
    con = sqlite3.connect('file:%s?mode=ro' % db, uri=True)
    try:
        cur = con.execute('SELECT * FROM %s' % view)
        cols = [d[0] for d in cur.description]
        return cols, [dict(zip(cols, r)) for r in cur.fetchall()]
    finally:
        con.close()


def pg_columns(pg, view):
    return pg.scalar("SELECT string_agg(column_name, ',' ORDER BY ordinal_position) "
                     "FROM information_schema.columns WHERE table_name = '%s'" % view).split(',')


def normalise(rows, side, idmap=None, sidmap=None):
    out = []
    for r in rows:
        n = {}
        for k, v in r.items():
            if k in TIME_COLS:
                v = epoch_sqlite(v) if side == 'sqlite' else epoch_pg(v)
            elif side == 'pg' and k == 'id':
                v = idmap[v]
            elif side == 'pg' and k == 'session_id' and v is not None:
                v = sidmap[v]
            n[k] = v
        out.append(n)
    return out


def same_value(k, a, b):
    if a is None or b is None:
        return a is None and b is None
    if k == 'silent_s':
        return abs(a - b) <= 2
    if isinstance(a, float) or isinstance(b, float):
        return abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(a)))
    return a == b


def compare_view(ck, pg, db, view, idmap, sidmap):
    cols, srows = sqlite_view(db, view)
    pcols = pg_columns(pg, view)
    ck.eq(pcols, cols, '%s: the PostgreSQL view has SQLite\'s columns, in order' % view)
    prows = pg.json('SELECT * FROM %s' % view)
    s = normalise(srows, 'sqlite')
    p = normalise(prows, 'pg', idmap, sidmap)
    key = VIEWS[view]
    sk = {tuple(r[c] for c in key): r for r in s}
    pk = {tuple(r[c] for c in key): r for r in p}
    ck.check(len(sk) == len(s) and len(pk) == len(p), '%s: rows are unique by %s' % (view, key))
    diffs = []
    for k in sorted(set(sk) | set(pk), key=repr):
        a, b = sk.get(k), pk.get(k)
        if a is None or b is None:
            diffs.append('%r only in %s: %r' % (k, 'PostgreSQL' if a is None else 'SQLite', a or b))
            continue
        bad = [c for c in cols if not same_value(c, a[c], b.get(c))]
        if bad:
            diffs.append('%r: %s' % (k, ', '.join('%s sqlite=%r pg=%r' % (c, a[c], b.get(c)) for c in bad)))
    ck.check(not diffs and len(s) > 0, '%s: the same %d rows in PostgreSQL as in SQLite' % (view, len(s)),
             '\n'.join(diffs[:30]))
    return s, p


# ---------------------------------------------------------------- README questions
# SQLite's date functions and what PostgreSQL says instead; the rest of each line is unchanged.
PG_DIALECT = (
    ("strftime('%s', 'now', 'localtime', 'start of day', 'utc') * 1000",
     "extract(epoch FROM date_trunc('day', now()))::bigint * 1000"),
    ("strftime('%s', 'now')", "floor(extract(epoch FROM now()))::bigint"),
    ("strftime('%Y-%m-%d %H:%M', ts / 1000, 'unixepoch', 'localtime')",
     "to_char(to_timestamp(ts / 1000), 'YYYY-MM-DD HH24:MI')"),
    # SQLite sorts NULL first, PostgreSQL last: DESC puts them first there.
    ('ORDER BY cny DESC', 'ORDER BY cny DESC NULLS LAST'),
)
NO_PG = {7: 'full-text search (messages_fts) is SQLite\'s'}


def pg_dialect(sql):
    for a, b in PG_DIALECT:
        sql = sql.replace(a, b)
    return sql


def check_readme(ck, pg, db):
    """Every README question but full-text search, its date functions translated, gives on
    PostgreSQL the answer the sqlite3 shell gives (same rows, same order)."""
    for n, comment, sql in test_queries.readme_queries():
        if n in NO_PG:
            ck.note('README %d on PostgreSQL: not asked (%s)' % (n, NO_PG[n]))
            continue
        want = normalise(test_queries.run_sql(db, sql), 'sqlite')
        psql = pg_dialect(sql)
        try:
            got = normalise(pg.json(psql), 'pg')
        except RuntimeError as e:
            ck.check(False, 'README %d runs on PostgreSQL' % n, '%s\n%s' % (psql, e))
            continue
        ok = len(got) == len(want) and all(
            set(g) == set(w) and all(same_value(k, w[k], g[k]) for k in w) for g, w in zip(got, want))
        ck.check(ok and len(want) > 0, 'README %d on PostgreSQL: %s (%d rows)' % (n, comment, len(want)),
                 'sql:  %s\ngot:  %s\nwant: %s' % (psql, json.dumps(got, ensure_ascii=False)[:1500],
                                                  json.dumps(want, ensure_ascii=False)[:1500]))


# ---------------------------------------------------------------- mirror
def coverage_gaps(intervals):
    """Per room, the holes of the union of [join, end] intervals between the first join and the
    last end: {(platform, room_id): [(from, to)]}. Written as an interval union, not as the
    view's running max."""
    out = {}
    for room, ivs in intervals.items():
        merged = []
        for a, b in sorted(ivs):
            if merged and a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        out[room] = [(merged[i][1], merged[i + 1][0]) for i in range(len(merged) - 1)]
    return out


def session_end(s, own_msgs_ts, next_join, seen_ms):
    """Where an n1 session's coverage ends: ended_at, else its last own message before the next
    join of the node (not before its join), and, the node's latest in the room, the node's
    seen_at; at least its join."""
    sid, joined, ended = s[0], s[4], s[5]
    if ended is not None:
        return ended
    ts = [t for t in own_msgs_ts.get(sid, ()) if t >= joined and (next_join is None or t < next_join)]
    return max([joined] + ts + ([seen_ms] if next_join is None else []))


def body(h, dump):
    ck = h.ck
    os.environ['TZ'] = TZ
    time.tzset()
    try:
        server = PgServer()
    except PgUnavailable as e:
        ck.skip('PostgreSQL views', str(e))
        return
    with server:
        pg = Pg(server)
        check_statements(ck, pg, dump)
        db, d3 = dataset.record(h, TZ, bilibili=True)
        sessions, msgs = copy_to_pg(pg, db)
        n = pg.scalar("SELECT count(*) FROM messages WHERE node = 'n1' AND session_id IS NOT NULL "
                      "AND session_id NOT IN (SELECT id FROM sessions)")
        ck.eq(n, '0', 'every copied message refers to a PostgreSQL session id')
        idmap = {int(a): int(b) for a, b in (l.split('|') for l in
                 pg.scalar("SELECT id, local_id FROM messages WHERE node = 'n1'").splitlines())}
        sidmap = {int(a): int(b) for a, b in (l.split('|') for l in
                  pg.scalar("SELECT id, local_id FROM sessions WHERE node = 'n1'").splitlines())}
        ck.check(all(k != v for k, v in idmap.items()), 'PostgreSQL message ids differ from the local ids')
        results = {}
        for view in VIEWS:
            results[view] = compare_view(ck, pg, db, view, idmap, sidmap)
        gaps = results['gaps'][0]
        ck.check(len(gaps) >= 2 and any(g['reason'] == 'shutdown' for g in gaps),
                 'the dataset has gaps to compare (a reconnect and a restart)', gaps)
        rs = {(r['platform'], r['room_id']): r for r in results['room_stats'][1]}
        ck.check(rs.get(('douyu', dataset.SILENT_ROOM), {}).get('live') == 1 and
                 rs[('douyu', 9999)]['live'] == 0, 'room_stats: the silent room is live, 9999 is not')
        check_readme(ck, pg, db)
        ck.eq(h.stop_danmakud(d3), 0, 'run 3: danmakud exits 0 on SIGTERM')
        check_mirror(ck, pg, sessions, msgs)
        check_partitions(ck, pg)
        check_hostile(ck, pg)


def check_statements(ck, pg, dump):
    stmts = statements(dump)
    ck.check(len(stmts) >= 20, 'pg_schema_dump prints the statements (%d)' % len(stmts))
    ck.check(all(0 < len(s.encode()) < 4095 for s in stmts),
             'each statement is shorter than 4095 bytes (one C string literal)',
             [len(s.encode()) for s in stmts])
    ck.check(not any('CONCURRENTLY' in s.upper() for s in stmts), 'no CREATE INDEX CONCURRENTLY')
    pg.run(';\n'.join(stmts) + ';\n', single=True)
    ck.check(True, 'the statements create the schema in an empty database, in one transaction')
    tables = pg.scalar("SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class "
                       "WHERE relnamespace = 'public'::regnamespace AND relkind IN ('r', 'p')")
    ck.eq(tables, 'danmakud_schema,message_cids,messages,nodes,room_leases,room_offers,rooms,sessions',
          'the tables of PG-SPEC.md, and no partition yet')
    ck.eq(pg.scalar("SELECT relkind FROM pg_class WHERE relname = 'messages'"), 'p',
          'messages is partitioned')
    idx = pg.scalar("SELECT string_agg(indexname || ':' || indexdef, E'\\n' ORDER BY indexname) FROM pg_indexes "
                    "WHERE indexname IN ('messages_room_ts', 'messages_uid_ts', 'messages_platform_room_cid', "
                    "'messages_live', 'sessions_room_platform_started')")
    ck.eq(len(idx.splitlines()), 5, 'the five indexes exist')
    ck.check('WHERE (uid IS NOT NULL)' in idx and 'WHERE (cid IS NOT NULL)' in idx and
             "'rss'::text, 'LIVE'::text, 'PREPARING'::text" in idx, 'the partial indexes have their WHERE', idx)
    ck.eq(pg.scalar('SELECT count(*) FROM danmakud_schema'), '0', 'no danmakud_schema row is inserted')
    views = pg.scalar("SELECT string_agg(viewname, ',' ORDER BY viewname) FROM pg_views WHERE schemaname = 'public'")
    ck.eq(views, 'chat,daily,gaps,gifts,live,room_stats,superchats', 'the seven views')


def check_mirror(ck, pg, sessions, msgs):
    def got_gaps():
        rows = pg.json('SELECT platform, room_id, from_ts, to_ts, seconds, reason FROM gaps')
        out = {}
        for r in rows:
            out.setdefault((r['platform'], r['room_id']), []).append((r['from_ts'], r['to_ts']))
        return {k: sorted(v) for k, v in out.items()}, rows

    # n1's coverage, computed here from the rows.
    own = {}
    for m in msgs:
        if m[9] is not None:
            own.setdefault(m[9], []).append(m[2])
    joined = sorted((s for s in sessions if s[4] is not None), key=lambda s: (s[4], s[0]))
    # Both nodes are running (their run began before every session, seen now): an unended
    # session that is its node's latest in the room is still recording, up to seen_at.
    pg.run("INSERT INTO nodes(node, mode, started_at, seen_at) VALUES "
           "('n1', 'mirror', now() - interval '1 day', now()), ('n2', 'mirror', now() - interval '1 day', now())")
    seen = int(pg.scalar("SELECT floor(extract(epoch FROM seen_at) * 1000) FROM nodes WHERE node = 'n1'"))
    ivs = {}
    nexts = {}
    for i, s in enumerate(joined):
        room = (s[8], s[1])
        nexts[s[0]] = next((t[4] for t in joined[i + 1:] if (t[8], t[1]) == room), None)
        ivs.setdefault(room, []).append((s[4], session_end(s, own, nexts[s[0]], seen)))
    base = coverage_gaps(ivs)
    ck.eq({k: v for k, v in base.items() if v}, got_gaps()[0],
          'gaps of n1 alone, seen now: as SQLite\'s (computed here as a union of intervals)')
    holes = [b - a for g in base.values() for a, b in g]
    ck.check(holes and min(holes) >= 2, 'n1 alone has gaps of 2 ms or more', base)
    shift = min(holes) // 2
    # n2: the same sessions, shifted; it stored no message of its own, so an unended session
    # covers its join only, or up to seen_at when it is n2's latest in the room.
    pg.run("INSERT INTO sessions(local_id, room_id, server, started_at, joined_at, ended_at, end_reason, "
           "messages, platform, node) SELECT local_id, room_id, server, started_at + %d, joined_at + %d, "
           "ended_at + %d, end_reason, messages, platform, 'n2' FROM sessions WHERE node = 'n1'"
           % (shift, shift, shift))
    for s in joined:
        end = s[5] + shift if s[5] is not None else s[4] + shift if nexts[s[0]] is not None else seen
        ivs[(s[8], s[1])].append((s[4] + shift, end))
    want = coverage_gaps(ivs)
    got, rows = got_gaps()
    wantn = {k: v for k, v in want.items() if v}
    ck.check(got == wantn, 'mirror: gaps give only the time neither n1 nor n2 (shifted %d ms) covered' % shift,
             'got:  %r\nwant: %r' % (got, wantn))
    total = {k: sum(b - a for a, b in v) for k, v in got.items()}
    total1 = {k: sum(b - a for a, b in v) for k, v in base.items() if v}
    ck.check(total.keys() == total1.keys() and all(total[k] < total1[k] for k in total),
             'mirror: n2 shortens the gaps of every room that had one', (total, total1))
    ck.check(all(isinstance(r['seconds'], (int, float)) and r['reason'] is not None for r in rows),
             'mirror: every gap has seconds and the reason of the session that ended before it', rows)
    # n3 covers the first gap of room 9999 entirely: it disappears.
    room = ('douyu', 9999)
    a, b = got[room][0]
    pg.run("INSERT INTO sessions(local_id, room_id, server, started_at, joined_at, ended_at, end_reason, "
           "messages, platform, node) VALUES (1, 9999, 'ws://n3/', %d, %d, %d, 'shutdown', 0, 'douyu', 'n3')"
           % (a - 2, a - 1, b))
    got2, _ = got_gaps()
    ck.eq(got2.get(room), got[room][1:], 'mirror: a gap covered by a third node is no gap')
    # An unended n2 session with its own message: it covers up to that message.
    sid = pg.scalar("SELECT id FROM sessions WHERE node = 'n3'")
    pg.run("UPDATE sessions SET ended_at = NULL WHERE id = %s" % sid)
    pg.run("INSERT INTO messages(local_id, room_id, ts, type, data, platform, node, session_id) "
           "VALUES (1, 9999, %d, 'chatmsg', '{}', 'douyu', 'n3', %s)" % (b, sid))
    got3, _ = got_gaps()
    ck.eq(got3.get(room), got[room][1:], 'mirror: an unended session covers up to its last own message')
    pg.run("DELETE FROM messages WHERE node = 'n3'")
    got4, _ = got_gaps()
    ck.eq(got4.get(room), [(a, b)] + got[room][1:],
          'mirror: without a message of its own, an unended session covers only its join')
    # n3 running since before the session and seen inside the gap: covered up to seen_at.
    mid = (a + b) // 2
    pg.run("INSERT INTO nodes(node, mode, started_at, seen_at) VALUES ('n3', 'mirror', "
           "to_timestamp(%d / 1000.0), to_timestamp(%d / 1000.0))" % (a - 3, mid))
    got5, _ = got_gaps()
    ck.eq(got5.get(room), [(mid, b)] + got[room][1:],
          'mirror: an unended session, its node\'s latest, covers up to the node\'s seen_at')
    # n3 restarted after that session (a crash cut it short): back to its join.
    pg.run("UPDATE nodes SET started_at = to_timestamp(%d / 1000.0) WHERE node = 'n3'" % (a + 1))
    got6, _ = got_gaps()
    ck.eq(got6.get(room), [(a, b)] + got[room][1:],
          'mirror: a session from before its node\'s current run does not reach seen_at')


def month_ms(y, m):
    return calendar.timegm((y, m, 1, 0, 0, 0)) * 1000


def check_partitions(ck, pg):
    def parts(like='messages_y%'):
        rows = pg.scalar("SELECT relname || '|' || pg_get_expr(relpartbound, oid) FROM pg_class "
                         "WHERE relname LIKE '%s' AND relispartition AND relkind = 'r' ORDER BY 1" % like)
        return rows.splitlines()
    before = parts()
    lo, hi = month_ms(2031, 1) - 3600 * 1000, month_ms(2031, 1) + 3600 * 1000
    pg.run('SELECT danmakud_partitions(%d, %d)' % (lo, hi))
    new = sorted(set(parts()) - set(before))
    want = ["messages_y2030m12|FOR VALUES FROM ('%d') TO ('%d')" % (month_ms(2030, 12), month_ms(2031, 1)),
            "messages_y2031m01|FOR VALUES FROM ('%d') TO ('%d')" % (month_ms(2031, 1), month_ms(2031, 2))]
    ck.eq(new, want, 'danmakud_partitions over Dec 2030 - Jan 2031 makes those two UTC months')
    r = pg.run("BEGIN; SELECT danmakud_partitions(%d, %d); SELECT count(*) FROM pg_locks "
               "WHERE pid = pg_backend_pid() AND locktype = 'advisory'; COMMIT;" % (lo, hi))
    ck.eq(r.stdout.decode().split(), ['0'], 'again: no advisory lock taken when every month is there')
    ck.eq(sorted(set(parts()) - set(before)), want, 'again: no partition added')
    ck.check(r.stderr.decode().strip() == '', 'again: nothing printed', r.stderr.decode())
    r = pg.run('SELECT danmakud_partitions(0, %d)' % (month_ms(2200, 1)), check=False)
    ck.check(r.returncode != 0 and '1200 months' in r.stderr.decode(), 'more than 1200 months is refused',
             r.stderr.decode())
    # Two callers at once, each in a transaction that lasts a while after the call: first
    # staggered (the second waits for the lock, then finds the tables), then together.
    for label, (y, stagger) in (('staggered', (2033, 0.4)), ('together', (2034, 0.0))):
        lo, hi = month_ms(y, 3), month_ms(y, 5) + 1
        procs = []
        for i in range(2):
            procs.append(subprocess.Popen(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-At', '-d', pg.s.url,
                                           '-c', 'BEGIN', '-c', 'SELECT danmakud_partitions(%d, %d)' % (lo, hi),
                                           '-c', 'SELECT pg_sleep(1)', '-c', 'COMMIT'],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                          stderr=subprocess.PIPE))
            if i == 0:
                time.sleep(stagger)
        res = []
        for p in procs:
            try:
                out, err = p.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
                out, err = p.communicate()
            res.append((p.returncode, err.decode(errors='replace')))
        ck.check(all(rc == 0 and not err.strip() for rc, err in res),
                 'two concurrent callers (%s) both succeed, silently' % label, res)
        ck.eq([l.split('|')[0] for l in parts('messages_y%dm%%' % y)],
              ['messages_y%dm03' % y, 'messages_y%dm04' % y, 'messages_y%dm05' % y],
              'two concurrent callers (%s): March to May %d, once each' % (label, y))
    # Another search_path (a caller with its own schema first): the function still makes the
    # partitions next to messages, and gaps (through danmakud_last_ts) still reads messages.
    r = pg.run("SET search_path = pg_catalog; SELECT public.danmakud_partitions(%d, %d); "
               "SELECT count(*) >= 0 FROM public.gaps;" % (month_ms(2035, 7), month_ms(2035, 7)))
    ck.eq(parts('messages_y2035m07'), ["messages_y2035m07|FOR VALUES FROM ('%d') TO ('%d')"
                                       % (month_ms(2035, 7), month_ms(2035, 8))],
          'with another search_path, the partition is made in the schema of messages')
    # Rows land in the partition of their UTC month (the first ms of a month belongs to it).
    pg.run("INSERT INTO messages(local_id, room_id, ts, type, data, platform, node) VALUES "
           "(1, 1, %d, 'x', '{}', 'douyu', 'px'), (2, 1, %d, 'x', '{}', 'douyu', 'px')"
           % (month_ms(2031, 1), month_ms(2031, 1) - 1))
    got = pg.scalar("SELECT string_agg(tableoid::regclass::text, ',' ORDER BY ts) FROM messages WHERE node = 'px'")
    ck.eq(got, 'messages_y2030m12,messages_y2031m01', 'rows land in the partition of their UTC month')
    pg.run("DELETE FROM messages WHERE node = 'px'")


def check_hostile(ck, pg):
    """Fields that are not numbers do not make a view fail (SQLite's casts never fail)."""
    ts = month_ms(2031, 1) + 5000
    pg.run("INSERT INTO messages(local_id, room_id, ts, type, data, decoded, platform, node, cid) VALUES "
           "(1, 77, %d, 'chatmsg', '{\"cst\": \"x\", \"dms\": 3}', NULL, 'douyu', 'hx', NULL), "
           "(2, 77, %d, 'dgb', '{\"gfid\": \"9e9999\", \"gfcnt\": [1], \"hits\": \"-\"}', NULL, 'douyu', 'hx', NULL), "
           "(3, 77, %d, 'SEND_GIFT_V2', '{}', '{\"coin_type\": \"gold\", \"price\": \"1e999\", \"num\": "
           "\"lots\", \"tid\": {\"a\": 1}}', 'bilibili', 'hx', NULL), "
           "(4, 77, %d, 'comm_chatmsg', '{\"cprice\": \"99999999999999999999999\", \"cet\": \"1.5\"}', NULL, "
           "'douyu', 'hx', NULL), "
           "(5, 77, %d, 'SUPER_CHAT_MESSAGE', '{\"data\": {\"price\": \"abc\", \"start_time\": true, "
           "\"end_time\": \"9\"}}', NULL, 'bilibili', 'hx', NULL), "
           "(6, 77, %d, 'rss', '{\"ss\": \"on\", \"ivl\": null}', NULL, 'douyu', 'hx', NULL), "
           "(7, 77, %d, 'DANMU_MSG', '{\"info\": \"not an array\"}', NULL, 'bilibili', 'hx', NULL)"
           % ((ts,) * 7))
    try:
        got = {v: pg.json('SELECT * FROM %s WHERE room_id = 77' % v) for v in
               ('chat', 'gifts', 'superchats', 'live', 'daily')}
    except RuntimeError as e:
        ck.check(False, 'views over non-numeric fields run', str(e))
        return
    ck.check(True, 'views over non-numeric fields run')
    gifts = sorted(got['gifts'], key=lambda r: r['ts'])
    ck.eq([(r['gift_id'], r['count'], r['hits']) for r in gifts if r['platform'] == 'douyu'],
          [(9, 0, 0)], 'gifts: "9e9999" reads 9, an array count 0, hits "-" 0 (as SQLite\'s CAST)')
    ck.eq([r['value_cny'] for r in gifts if r['platform'] == 'bilibili'], [0.0],
          'gifts: a price of 1e999 times "lots" is 0, not an error')
    ck.eq(sorted((r['price_cny'], r['duration_s']) for r in got['superchats']),
          [(0.0, 8), (9223372036854775807 / 100.0, 1)],
          'superchats: a huge price is clamped to 64 bits (as SQLite\'s CAST), a non-numeric one is 0')
    ck.eq([(r['live'], r['replay']) for r in got['live']], [(0, 0)], 'live: ss "on" is 0')
    ck.eq(sorted((r['platform'], r['sent_at']) for r in got['chat']), [('bilibili', None), ('douyu', 0)],
          'chat: a non-numeric cst is 0, a missing info[0][4] NULL')
    pg.run("DELETE FROM messages WHERE node = 'hx'")


if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--pg-schema-dump', required=True)
    args, rest = ap.parse_known_args()
    h = harness.Harness('pg_views', rest)
    dump = os.path.abspath(args.pg_schema_dump)
    sys.exit(h.run(lambda hh: body(hh, dump)))
