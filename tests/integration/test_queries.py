#!/usr/bin/python3
"""README "Asking the database", verified: records a database through the mock (dataset.py),
adds a Bilibili room to it (dataset.add_bilibili: fixtures mapped as the platform maps them),
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
QUESTIONS = 18


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


CHAT_TYPES = {'douyu': 'chatmsg', 'bilibili': 'DANMU_MSG'}


class Data:
    """The raw tables; a room is (platform, room_id) everywhere."""

    def __init__(self, db):
        rows = harness.db_rows(db, 'SELECT id, platform, room_id, ts, type, uid, nick, level, text, cid, '
                                   'data, decoded, session_id FROM messages ORDER BY id')
        self.msgs = [dict(zip(('id', 'platform', 'room_id', 'ts', 'type', 'uid', 'nick', 'level', 'text', 'cid',
                               'data', 'decoded', 'sid'), r)) for r in rows]
        for m in self.msgs:
            m['room'] = (m['platform'], m['room_id'])
            m['d'] = json.loads(m['data'])
            m['dec'] = json.loads(m['decoded']) if m['decoded'] is not None else None
        self.sessions = [dict(zip(('id', 'platform', 'room_id', 'started', 'joined', 'ended', 'reason', 'n'), r))
                         for r in harness.db_rows(db, 'SELECT id, platform, room_id, started_at, joined_at, '
                                                      'ended_at, end_reason, messages FROM sessions')]
        for s in self.sessions:
            s['room'] = (s['platform'], s['room_id'])
        self.rooms = {(p, r): {'label': label, 'short_id': short}
                      for p, r, label, short in harness.db_rows(db, 'SELECT platform, room_id, label, short_id '
                                                                    'FROM rooms')}
        self.cids = {(m['platform'], m['room_id'], m['cid']) for m in self.msgs if m['cid'] is not None}

    def chat(self, room_id=None, platform=None):
        return [m for m in self.msgs if m['type'] == CHAT_TYPES.get(m['platform'])
                and (room_id is None or m['room_id'] == room_id) and (platform is None or m['platform'] == platform)]

    def robot(self, m):
        return 0 if m['platform'] != 'douyu' or m['d'].get('dms') else 1

    def masked(self, m):
        return int(m['platform'] == 'bilibili' and m['uid'] == 0 and (m['nick'] or '').endswith('***'))

    def gifts(self):
        """The gifts view, computed here: [(message, gift_id, name, count, coin_type, value_cny)]."""
        out = []
        for m in self.msgs:
            if m['platform'] == 'douyu' and m['type'] == 'dgb':
                out.append((m, int(m['d']['gfid']), m['d'].get('gfn'), int(m['d'].get('gfcnt') or 1), None, None))
                continue
            if m['platform'] != 'bilibili':
                continue
            if m['type'] == 'SEND_GIFT':
                g = m['d']['data']
                gid, name = g['giftId'], g['giftName']
            elif m['type'] == 'SEND_GIFT_V2':
                g = m['dec']
                if ('bilibili', m['room_id'], 'SEND_GIFT:%s' % g['tid']) in self.cids:
                    continue  # counted as its SEND_GIFT
                gid, name = g['gift_id'], g['gift_name']
            else:
                continue
            coin = g.get('coin_type')
            total = g.get('total_coin', g['price'] * g['num'])
            value = total / 1000.0 if coin == 'gold' else 0.0 if coin == 'silver' else None
            out.append((m, gid, name, g['num'], coin, value))
        return out

    def superchats(self):
        """[(message, price_cny, duration_s)] as the superchats view gives them."""
        out = []
        for m in self.msgs:
            if m['platform'] == 'douyu' and m['type'] == 'comm_chatmsg' and int(m['d'].get('cprice') or 0) > 0:
                out.append((m, int(m['d']['cprice']) / 100.0, int(m['d']['cet'])))
            elif m['platform'] == 'bilibili' and m['type'] == 'SUPER_CHAT_MESSAGE':
                g = m['d']['data']
                out.append((m, float(g['price']), g.get('time', g['end_time'] - g['start_time'])))
        return out

    def gaps(self):
        out = []
        for room in sorted(set(s['room'] for s in self.sessions)):
            ss = sorted((s for s in self.sessions if s['room'] == room and s['joined'] is not None),
                        key=lambda s: (s['joined'], s['id']))
            prev_end, prev_reason = None, None
            for i, s in enumerate(ss):
                if prev_end is not None and s['joined'] > prev_end:
                    out.append({'platform': room[0], 'room_id': room[1], 'gap_from': local(prev_end),
                                'gap_to': local(s['joined']), 'seconds': (s['joined'] - prev_end) / 1000.0,
                                'reason': prev_reason, 'to_ts': s['joined'], 'from_ts': prev_end})
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

    on = max(m['ts'] for m in d.msgs if m['room'] == ('douyu', 9999) and m['type'] == 'rss' and m['d'].get('ss') == '1')
    cnt = collections.Counter(local(m['ts'], '%Y-%m-%d %H:%M') for m in d.chat(9999) if m['ts'] >= on)
    ex[3] = [{'minute': k, 'n': v} for k, v in sorted(cnt.items())]

    c = sorted((m for m in d.chat(platform='douyu') if m['uid'] == dataset.SYNTH_UID), key=lambda m: (m['ts'], m['id']))
    ex[4] = [{'time': local(m['ts']), 'room_id': m['room_id'], 'text': m['text']} for m in c]

    g = collections.defaultdict(lambda: {'items': 0, 'senders': set(), 'names': []})
    for m, gid, name, count, _, _ in d.gifts():
        if m['room_id'] == 9999 and m['ts'] >= today:
            e = g[gid]
            e['items'] += count
            e['senders'].add(m['uid'])
            if name is not None:
                e['names'].append(name)
    ex[5] = [{'gift_id': k, 'gift': max(v['names']) if v['names'] else None, 'items': v['items'],
              'senders': len(v['senders'])}
             for k, v in sorted(g.items(), key=lambda kv: (-kv[1]['items'], kv[0]))]

    ex[6] = [{k: x[k] for k in ('platform', 'room_id', 'gap_from', 'gap_to', 'seconds', 'reason')}
             for x in sorted(d.gaps(), key=lambda x: x['from_ts']) if x['to_ts'] >= now_ms - 7 * 86400 * 1000]

    c = sorted((m for m in d.chat() if dataset.PHRASE in (m['text'] or '')), key=lambda m: (m['ts'], m['id']))
    ex[7] = [{'time': local(m['ts']), 'platform': m['platform'], 'room_id': m['room_id'], 'nick': m['nick'],
              'text': m['text']} for m in c]

    c = sorted((m for m in d.chat(9999) if m['ts'] >= now_ms - 86400 * 1000 and '打线' in (m['text'] or '')),
               key=lambda m: (m['ts'], m['id']))
    ex[8] = [{'time': local(m['ts']), 'nick': m['nick'], 'text': m['text']} for m in c]

    silent, live = [], []
    for room, info in sorted(d.rooms.items()):
        ts = [m['ts'] for m in d.msgs if m['room'] == room]
        is_live, ss = d.room_live(room)
        last = max(ts) if ts else None
        age = None if last is None else now_ms // 1000 - last // 1000
        if last is None or age > 600:
            silent.append({'platform': room[0], 'room_id': room[1], 'label': info['label'],
                           'live': int(bool(is_live)), 'last_message': None if last is None else local(last),
                           'silent_s': age})
        if is_live:
            live.append({'platform': room[0], 'room_id': room[1], 'label': info['label'],
                         'session_start': local(ss[-1]['joined']), 'messages': sum(s['n'] for s in ss),
                         'reconnects_24h': sum(1 for s in ss if s['ended'] is not None
                                               and s['ended'] >= now_ms - 86400 * 1000
                                               and s['reason'] not in ('shutdown', 'removed'))})
    ex[9], ex[10] = silent, live

    rob = []
    for platform, room in sorted(d.rooms):
        c = [m for m in d.chat(room, 'douyu') if m['ts'] >= today]
        if platform == 'douyu' and c:
            r = sum(d.robot(m) for m in c)
            rob.append({'room_id': room, 'chats': len(c), 'robots': r, 'pct': 100.0 * r / len(c)})
    ex[11] = rob

    gift_ids = {m['id'] for m, *_ in d.gifts()}
    days = collections.defaultdict(lambda: {'messages': 0, 'chats': 0, 'chatters': set(), 'gifts': 0})
    for m in d.msgs:
        if m['room'] == ('douyu', 9999):
            e = days[local(m['ts'], '%Y-%m-%d')]
            e['messages'] += 1
            e['chats'] += m['type'] == 'chatmsg'
            e['gifts'] += m['id'] in gift_ids
            if m['type'] == 'chatmsg' and m['uid'] is not None:
                e['chatters'].add(m['uid'])
    ex[12] = [{'day': k, 'messages': v['messages'], 'chats': v['chats'], 'chatters': len(v['chatters']),
               'gifts': v['gifts']} for k, v in sorted(days.items(), reverse=True)[:7]]

    rs = sorted((m for m in d.msgs if m['room'] == ('douyu', 9999) and m['type'] == 'rss'),
                key=lambda m: (m['ts'], m['id']), reverse=True)[:10]
    ex[13] = [{'time': local(m['ts']), 'live': int(m['d']['ss']), 'replay': int(m['d'].get('ivl') or 0)}
              for m in rs]

    # ---- Bilibili and every platform
    real = [r for (p, r), info in d.rooms.items() if p == 'bilibili' and info['short_id'] == dataset.BILI_SHORT]
    c = sorted(d.chat(real[0] if real else None, 'bilibili'), key=lambda m: (m['ts'], m['id']), reverse=True)[:20]
    ex[14] = [{'time': local(m['ts']), 'nick': m['nick'], 'text': m['text'], 'masked': d.masked(m)} for m in c]

    per = collections.defaultdict(lambda: {'gifts': 0, 'items': 0, 'cny': None})
    for m, _, _, count, _, value in d.gifts():
        if m['ts'] >= today and m['room'] in d.rooms:
            e = per[m['room']]
            e['gifts'] += 1
            e['items'] += count
            if value is not None:
                e['cny'] = (e['cny'] or 0) + value
    rows = [{'platform': k[0], 'room_id': k[1], 'gifts': v['gifts'], 'items': v['items'],
             'cny': None if v['cny'] is None else round(v['cny'], 2)} for k, v in per.items()]
    ex[15] = sorted(rows, key=lambda r: (r['cny'] is None, -(r['cny'] or 0), r['platform'], r['room_id']))

    week = now_ms - 7 * 86400 * 1000
    top = sorted(((m, name, count, value) for m, _, name, count, _, value in d.gifts()
                  if m['ts'] >= week and value is not None and value > 0),
                 key=lambda x: (-x[3], x[0]['ts'], x[0]['id']))[:10]
    ex[16] = [{'time': local(m['ts']), 'platform': m['platform'], 'room_id': m['room_id'], 'nick': m['nick'],
               'gift_name': name, 'count': count, 'value_cny': value} for m, name, count, value in top]

    sc = sorted(((m, price, dur) for m, price, dur in d.superchats() if m['ts'] >= week),
                key=lambda x: (-x[1], x[0]['ts'], x[0]['id']))
    ex[17] = [{'time': local(m['ts']), 'platform': m['platform'], 'room_id': m['room_id'], 'nick': m['nick'],
               'price_cny': price, 'duration_s': dur, 'text': m['text']} for m, price, dur in sc]

    share = []
    for platform, room in sorted(d.rooms):
        c = [m for m in d.chat(room, 'bilibili') if m['ts'] >= today]
        if platform == 'bilibili' and c:
            k = sum(d.masked(m) for m in c)
            share.append({'room_id': room, 'chats': len(c), 'masked': k, 'pct': 100.0 * k / len(c)})
    ex[18] = share
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
    ck.eq([n for n, _, _ in queries], list(range(1, QUESTIONS + 1)),
          'README has questions 1..%d, one sqlite3 line each' % QUESTIONS)
    db, d3 = dataset.record(h, TZ, bilibili=True)
    ck.eq(harness.db_scalar(db, 'PRAGMA user_version'), 3, 'the recorded database has schema version 3')
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
    # The silent room is the only one listed by 9 and 10, and neither 9999 nor the Bilibili room
    # (its session was closed as an unclean stop by run 3) is in either.
    ck.eq([r['room_id'] for r in run_sql(db, queries[8][2])], [dataset.SILENT_ROOM], 'README 9 lists the silent room only')
    ck.eq([(r['platform'], r['room_id']) for r in run_sql(db, queries[9][2])], [('douyu', dataset.SILENT_ROOM)],
          'README 10 lists the connected room only')
    ck.eq(harness.db_scalar(db, "SELECT end_reason FROM sessions WHERE platform = 'bilibili'"), 'unclean stop',
          'run 3 closed the Bilibili session left open')
    gaps = run_sql(db, queries[5][2])
    ck.check({g['reason'] for g in gaps if g['room_id'] == 9999} >= {'shutdown'} and
             any(g['reason'] not in ('shutdown', None) for g in gaps if g['room_id'] == 9999),
             'README 6: room 9999 shows the reconnect gap and the restart gap', gaps)
    # The Bilibili questions see what the rows hold: guests masked, both platforms priced, the
    # gift sent as SEND_GIFT and SEND_GIFT_V2 counted once, the _JPN copy left out.
    got = run_sql(db, queries[13][2])
    ck.check({r['masked'] for r in got} == {0, 1}, 'README 14: masked and unmasked senders', got)
    got = run_sql(db, queries[14][2])
    ck.check([r['platform'] for r in got][:1] == ['bilibili'] and any(r['cny'] is None for r in got),
             'README 15: Bilibili priced first, Douyu rooms without a price', got)
    ck.eq(harness.db_scalar(db, "SELECT count(*) FROM gifts WHERE platform = 'bilibili' AND gift_name = '小花花'"), 1,
          'the gift sent both as SEND_GIFT and SEND_GIFT_V2 is one row of gifts')
    got = run_sql(db, queries[16][2])
    ck.eq(sorted({r['platform'] for r in got}), ['bilibili', 'douyu'], 'README 17: super chats of both platforms')
    ck.eq(h.stop_danmakud(d3), 0, 'run 3: danmakud exits 0 on SIGTERM')


if __name__ == '__main__':
    sys.exit(harness.Harness('queries').run(body))
