#!/usr/bin/python3
"""README "Asking the database", verified: records a database through the mock (dataset.py),
extracts every `sqlite3 danmaku.db "..."` line of that README section, runs it with the sqlite3
shell (-json, TZ=CST-8, i.e. UTC+8, so that local time is not UTC) and compares the answer
with one computed here in Python from the raw tables. Each query's EXPLAIN QUERY PLAN must not scan the
messages table; the only tables it may scan are rooms and sessions (one row per room, per
connection: room_stats must list every room, and gaps must order every session of a room with
window functions), plus the virtual full-text table and intermediate results of the views.
"""

import collections
import json
import os
import re
import shlex
import subprocess
import sys
import time

import dataset
import harness

TZ = 'CST-8'  # UTC+8 in POSIX form, so that no tzdata is needed
README = os.path.join(harness.HERE, '..', '..', 'README.md')
# What EXPLAIN QUERY PLAN may SCAN: small tables, the FTS table (its own index), and the
# co-routines/CTEs the views build from already-filtered rows.
SCAN_OK = re.compile(r'SCAN (rooms|sessions|cur|messages_fts VIRTUAL TABLE|\(subquery-\d+\)|s|e|r|daily)( |$)')


def readme_queries():
    """[(number, comment, sql)] from the README section, in order."""
    with open(README, encoding='utf-8') as f:
        text = f.read()
    sec = text[text.index('## Asking the database'):]
    sec = sec[:sec.index('\n## ', 5)] if '\n## ' in sec[5:] else sec
    out, comment = [], None
    for line in sec.splitlines():
        m = re.match(r'# (\d+)\. (.*)', line)
        if m:
            comment = (int(m.group(1)), m.group(2))
        elif line.startswith('sqlite3 danmaku.db '):
            argv = shlex.split(line)
            assert len(argv) == 3 and comment, line
            out.append((comment[0], comment[1], argv[2]))
            comment = None
    return out


def run_sql(db, sql, json_mode=True):
    env = dict(os.environ, TZ=TZ)
    argv = ['sqlite3', '-bail'] + (['-json'] if json_mode else []) + [db, sql]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60, env=env)
    if r.returncode != 0:
        raise RuntimeError('sqlite3 failed: %s' % r.stderr.decode())
    out = r.stdout.decode('utf-8')
    if not json_mode:
        return out
    return json.loads(out) if out.strip() else []


# --------------------------------------------------------------- expectations
def local(ms, fmt='%Y-%m-%d %H:%M:%S'):
    return time.strftime(fmt, time.localtime(ms // 1000))


def start_of_today_ms():
    t = time.localtime()
    return int(time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))) * 1000


class Data:
    def __init__(self, db):
        rows = harness.db_rows(db, 'SELECT id, room_id, ts, type, uid, nick, level, text, data, '
                                   'session_id FROM messages ORDER BY id')
        self.msgs = [dict(zip(('id', 'room', 'ts', 'type', 'uid', 'nick', 'level', 'text', 'data',
                               'sid'), r)) for r in rows]
        for m in self.msgs:
            m['d'] = json.loads(m['data'])
        self.sessions = [dict(zip(('id', 'room', 'started', 'joined', 'ended', 'reason', 'n'), r))
                         for r in harness.db_rows(db, 'SELECT id, room_id, started_at, joined_at, '
                                                      'ended_at, end_reason, messages FROM sessions')]
        self.rooms = dict(harness.db_rows(db, 'SELECT room_id, label FROM rooms'))

    def chat(self, room=None):
        return [m for m in self.msgs if m['type'] == 'chatmsg' and (room is None or m['room'] == room)]

    def robot(self, m):
        return 0 if m['d'].get('dms') else 1

    def gaps(self):
        out = []
        for room in sorted(set(s['room'] for s in self.sessions)):
            ss = sorted((s for s in self.sessions if s['room'] == room and s['joined'] is not None),
                        key=lambda s: (s['joined'], s['id']))
            prev_end, prev_reason = None, None
            for i, s in enumerate(ss):
                if prev_end is not None and s['joined'] > prev_end:
                    out.append({'room_id': room, 'gap_from': local(prev_end), 'gap_to': local(s['joined']),
                                'seconds': (s['joined'] - prev_end) / 1000.0, 'reason': prev_reason,
                                'to_ts': s['joined'], 'from_ts': prev_end})
                end = s['ended']
                if end is None:
                    nxt = ss[i + 1]['joined'] if i + 1 < len(ss) else None
                    last = [m['ts'] for m in self.msgs if m['room'] == room and nxt is not None and m['ts'] < nxt]
                    end = max(s['joined'], max(last) if last else s['joined'])
                prev_end = end if prev_end is None else max(prev_end, end)
                prev_reason = s['reason']
        return out

    def room_live(self, room):
        ss = sorted((s for s in self.sessions if s['room'] == room), key=lambda s: (s['started'], s['id']))
        return ss and ss[-1]['joined'] is not None and ss[-1]['ended'] is None, ss


def expectations(d, now_ms):
    today = start_of_today_ms()
    ex = {}
    c = sorted(d.chat(9999), key=lambda m: (m['ts'], m['id']), reverse=True)[:20]
    ex[1] = [{'time': local(m['ts']), 'nick': m['nick'], 'text': m['text']} for m in c]

    per = collections.defaultdict(list)
    for m in d.chat(9999):
        if m['ts'] >= today:
            per[m['uid']].append(m['nick'])
    top = sorted(per.items(), key=lambda kv: (-len(kv[1]), kv[0]))[:10]
    ex[2] = [{'uid': u, 'nick': max(n), 'n': len(n)} for u, n in top]

    on = max(m['ts'] for m in d.msgs if m['room'] == 9999 and m['type'] == 'rss' and m['d'].get('ss') == '1')
    cnt = collections.Counter(local(m['ts'], '%Y-%m-%d %H:%M') for m in d.chat(9999) if m['ts'] >= on)
    ex[3] = [{'minute': k, 'n': v} for k, v in sorted(cnt.items())]

    c = sorted((m for m in d.chat() if m['uid'] == dataset.SYNTH_UID), key=lambda m: (m['ts'], m['id']))
    ex[4] = [{'time': local(m['ts']), 'room_id': m['room'], 'text': m['text']} for m in c]

    g = collections.defaultdict(lambda: {'items': 0, 'senders': set(), 'names': []})
    for m in d.msgs:
        if m['room'] == 9999 and m['type'] == 'dgb' and m['ts'] >= today:
            e = g[int(m['d']['gfid'])]
            e['items'] += int(m['d'].get('gfcnt') or 1)
            e['senders'].add(m['uid'])
            if m['d'].get('gfn') is not None:
                e['names'].append(m['d']['gfn'])
    ex[5] = [{'gift_id': k, 'gift': max(v['names']) if v['names'] else None, 'items': v['items'],
              'senders': len(v['senders'])}
             for k, v in sorted(g.items(), key=lambda kv: (-kv[1]['items'], kv[0]))]

    ex[6] = [{k: x[k] for k in ('room_id', 'gap_from', 'gap_to', 'seconds', 'reason')}
             for x in sorted(d.gaps(), key=lambda x: x['from_ts']) if x['to_ts'] >= now_ms - 7 * 86400 * 1000]

    c = sorted((m for m in d.chat() if dataset.PHRASE in (m['text'] or '')), key=lambda m: (m['ts'], m['id']))
    ex[7] = [{'time': local(m['ts']), 'room_id': m['room'], 'nick': m['nick'], 'text': m['text']} for m in c]

    c = sorted((m for m in d.chat(9999) if m['ts'] >= now_ms - 86400 * 1000 and '打线' in (m['text'] or '')),
               key=lambda m: (m['ts'], m['id']))
    ex[8] = [{'time': local(m['ts']), 'nick': m['nick'], 'text': m['text']} for m in c]

    silent, live = [], []
    for room, label in sorted(d.rooms.items()):
        ts = [m['ts'] for m in d.msgs if m['room'] == room]
        is_live, ss = d.room_live(room)
        last = max(ts) if ts else None
        age = None if last is None else now_ms // 1000 - last // 1000
        if last is None or age > 600:
            silent.append({'room_id': room, 'label': label, 'live': int(bool(is_live)),
                           'last_message': None if last is None else local(last), 'silent_s': age})
        if is_live:
            live.append({'room_id': room, 'label': label, 'session_start': local(ss[-1]['joined']),
                         'messages': sum(s['n'] for s in ss),
                         'reconnects_24h': sum(1 for s in ss if s['ended'] is not None
                                               and s['ended'] >= now_ms - 86400 * 1000
                                               and s['reason'] not in ('shutdown', 'removed'))})
    ex[9], ex[10] = silent, live

    rob = []
    for room in sorted(d.rooms):
        c = [m for m in d.chat(room) if m['ts'] >= today]
        if c:
            r = sum(d.robot(m) for m in c)
            rob.append({'room_id': room, 'chats': len(c), 'robots': r, 'pct': 100.0 * r / len(c)})
    ex[11] = rob

    days = collections.defaultdict(lambda: {'messages': 0, 'chats': 0, 'chatters': set(), 'gifts': 0})
    for m in d.msgs:
        if m['room'] == 9999:
            e = days[local(m['ts'], '%Y-%m-%d')]
            e['messages'] += 1
            e['chats'] += m['type'] == 'chatmsg'
            e['gifts'] += m['type'] == 'dgb'
            if m['type'] == 'chatmsg' and m['uid'] is not None:
                e['chatters'].add(m['uid'])
    ex[12] = [{'day': k, 'messages': v['messages'], 'chats': v['chats'], 'chatters': len(v['chatters']),
               'gifts': v['gifts']} for k, v in sorted(days.items(), reverse=True)[:7]]

    rs = sorted((m for m in d.msgs if m['room'] == 9999 and m['type'] == 'rss'),
                key=lambda m: (m['ts'], m['id']), reverse=True)[:10]
    ex[13] = [{'time': local(m['ts']), 'live': int(m['d']['ss']), 'replay': int(m['d'].get('ivl') or 0)}
              for m in rs]
    return ex


def same(got, want):
    """Rows equal, floats to 0.05 (SQLite rounds half away from zero, Python to even)."""
    if len(got) != len(want):
        return False
    for g, w in zip(got, want):
        if set(g) != set(w):
            return False
        for k in w:
            if isinstance(w[k], float) or isinstance(g[k], float):
                if g[k] is None or w[k] is None or abs(float(g[k]) - float(w[k])) > 0.051:
                    return False
            elif g[k] != w[k]:
                return False
    return True


def body(h):
    ck = h.ck
    os.environ['TZ'] = TZ
    time.tzset()
    queries = readme_queries()
    ck.eq([n for n, _, _ in queries], list(range(1, 14)), 'README has questions 1..13, one sqlite3 line each')
    db, d3 = dataset.record(h, TZ)
    ck.eq(harness.db_scalar(db, 'PRAGMA user_version'), 2, 'the recorded database has schema version 2')
    ck.check(harness.db_scalar(db, "SELECT count(*) FROM sqlite_master WHERE name = 'messages_fts'") == 1,
             'a new database has the full-text index (the default)')
    data = Data(db)
    for n, comment, sql in queries:
        now_ms = int(time.time() * 1000)
        want = expectations(data, now_ms)[n]
        try:
            got = run_sql(db, sql)
        except Exception as e:  # noqa: BLE001 - reported as a failed check
            ck.check(False, 'README %d (%s) runs' % (n, comment), str(e))
            continue
        ck.check(same(got, want), 'README %d: %s' % (n, comment),
                 'got:  %s\nwant: %s' % (json.dumps(got, ensure_ascii=False)[:1500],
                                         json.dumps(want, ensure_ascii=False)[:1500]))
        ck.check(len(want) > 0, 'README %d: the recorded data gives it something to answer' % n)
        plan = run_sql(db, 'EXPLAIN QUERY PLAN ' + sql, json_mode=False)
        scans = [l.strip() for l in plan.splitlines() if 'SCAN ' in l]
        bad = [l for l in scans if not SCAN_OK.search(l)]
        ck.check(not bad, 'README %d: no full scan of messages in the plan' % n, plan)
        ck.note('README %d plan: %s' % (n, ' / '.join(l.strip('|`- ') for l in plan.splitlines()[1:])))
    # The silent room is the only one listed by 9 and 10, and 9999 is in neither.
    ck.eq([r['room_id'] for r in run_sql(db, queries[8][2])], [dataset.SILENT_ROOM], 'README 9 lists the silent room only')
    ck.eq([r['room_id'] for r in run_sql(db, queries[9][2])], [dataset.SILENT_ROOM], 'README 10 lists the connected room only')
    gaps = run_sql(db, queries[5][2])
    ck.check({g['reason'] for g in gaps if g['room_id'] == 9999} >= {'shutdown'} and
             any(g['reason'] not in ('shutdown', None) for g in gaps if g['room_id'] == 9999),
             'README 6: room 9999 shows the reconnect gap and the restart gap', gaps)
    ck.eq(h.stop_danmakud(d3), 0, 'run 3: danmakud exits 0 on SIGTERM')


if __name__ == '__main__':
    sys.exit(harness.Harness('queries').run(body))
