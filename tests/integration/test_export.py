#!/usr/bin/python3
"""danmakud export and danmakud fts on a database recorded through the mock (dataset.py), with a
Bilibili room added (dataset.add_bilibili).

XML is parsed with xml.etree (a real XML parser) and every <d> and <gift> is checked against the
database row: relative time, colour, send time, uid, id, user and text (with the characters XML
1.0 forbids or discourages removed, computed here independently); for Bilibili also the
message's own mode, size and colour, id_str, <sc> and <guard>, the gift sent both as SEND_GIFT
and SEND_GIFT_V2 written once, and the BililiveRecorderRecordInfo header. NDJSON is parsed line
by line with json (platform and decoded included). --room: platform:id, a Bilibili short id, a
bare id that one platform has, an ambiguous one (refused, both named). Errors: missing
database (not created), unknown room, a database older than schema v3, reversed range, bad
options, no partial output file. Memory: exporting 40 times more rows must not grow the peak
RSS by more than a few MB (rows are streamed). fts: status, off, on over the recorded rows.
"""

import json
import os
import re
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

import dataset
import harness

TZ = 'CST-8'  # UTC+8 in POSIX form, so that no tzdata is needed
COLORS = {'1': 0xff0000, '2': 0x1e87f0, '3': 0x7ac84b, '4': 0xff7f00, '5': 0x9b39f4, '6': 0xff69b4}
# XML 1.0 Char minus the discouraged DEL/C1 controls, as the exporter promises.
BAD_XML = re.compile('[^\t\n\r\x20-\x7e\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]')


def clean(s):
    return BAD_XML.sub('', s or '')


def record(h):
    """One recording of both rooms (first connection killed after 150 packets)."""
    frames = os.path.join(h.tmp, 'frames.jsonl')
    dataset.build_frames(h.shared, frames)
    mock = h.start_py_mock('--frames', frames, '--close-after', 150, mode='ws')
    db = os.path.join(h.tmp, 'danmaku.db')
    d = h.start_danmakud(dataset.ROOMS, ['ws://127.0.0.1:%d/' % mock.port], extra=['--flush-ms', '100'], db=db)
    h.ck.eq(len(mock.wait_line(r'^SENT ', 60, count=2)), 2, 'the mock replayed everything to both rooms')
    last = [None, 0]

    def settled():
        n = harness.db_scalar(db, 'SELECT max(id) FROM messages')
        last[1] = last[1] + 1 if n == last[0] else 0
        last[0] = n
        return last[1] >= 5
    harness.wait_until(settled, 20, 0.2)
    h.ck.eq(h.stop_danmakud(d), 0, 'danmakud exits 0 on SIGTERM')
    dataset.add_bilibili(db, h.shared)
    return db


def export(h, args, timeout=60):
    env = dict(os.environ, TZ=TZ)
    p = subprocess.Popen([h.args.danmakud, 'export'] + list(args), cwd=h.tmp, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        out, err = p.communicate(timeout=timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.returncode, out, err.decode('utf-8', 'replace')


def peak_rss_kb(h, args):
    """Runs danmakud export with stdout to /dev/null; returns (exit code, peak RSS in KiB)."""
    env = dict(os.environ, TZ=TZ)
    with open(os.devnull, 'wb') as null:
        p = subprocess.Popen([h.args.danmakud, 'export'] + list(args), cwd=h.tmp, stdin=subprocess.DEVNULL,
                             stdout=null, stderr=subprocess.DEVNULL, env=env)
        deadline = time.monotonic() + 120
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                p.returncode = os.waitstatus_to_exitcode(status)
                return p.returncode, ru.ru_maxrss
            if time.monotonic() > deadline:
                p.kill()
                os.wait4(p.pid, 0)
                return None, 0
            time.sleep(0.05)


def check_xml(h, db, room, xml_bytes, base_ms, where='', params=()):
    ck = h.ck
    try:
        root = ET.fromstring(xml_bytes)
    except ET.ParseError as e:
        ck.check(False, 'room %d: the XML parses' % room, str(e))
        return
    ck.eq(root.tag, 'i', 'room %d: the root element is <i>' % room)
    rows = harness.db_rows(db, "SELECT id, ts, type, uid, nick, text, data FROM messages WHERE platform = 'douyu' "
                               "AND room_id = ? AND type IN ('chatmsg', 'dgb') %s ORDER BY ts, id" % where,
                           (room,) + tuple(params))
    items = [e for e in root if e.tag in ('d', 'gift')]
    ck.eq([e.tag for e in items], ['d' if r[2] == 'chatmsg' else 'gift' for r in rows],
          'room %d: one <d> per chat line and one <gift> per gift, in time order (%d)' % (room, len(rows)))
    bad = []
    colors = set()
    for e, (rid, ts, typ, uid, nick, text, data) in zip(items, rows):
        d = json.loads(data)
        rel = '%d.%03d' % ((ts - base_ms) // 1000, (ts - base_ms) % 1000)
        if typ == 'chatmsg':
            p = e.get('p').split(',')
            want = [rel, '1', '25', str(COLORS.get(d.get('col'), 0xffffff)), str(ts // 1000), '0',
                    str(uid or 0), str(rid)]
            colors.add(p[3])
            if p != want:
                bad.append('id %d: p=%r want %r' % (rid, p, want))
            if e.get('user') != clean(nick):
                bad.append('id %d: user=%r want %r' % (rid, e.get('user'), clean(nick)))
            if (e.text or '') != clean(text):
                bad.append('id %d: text=%r want %r' % (rid, e.text, clean(text)))
        else:
            want = {'ts': rel, 'giftname': d.get('gfn') or 'gift %s' % d.get('gfid'),
                    'giftcount': d.get('gfcnt') or '1', 'uid': str(uid or 0), 'user': clean(nick)}
            if dict(e.attrib) != want:
                bad.append('id %d: gift %r want %r' % (rid, dict(e.attrib), want))
        if len(bad) > 10:
            break
    ck.check(not bad, 'room %d: every <d>/<gift> matches its row (time, colour, ts, uid, id, user, text)' % room,
             '\n'.join(bad))
    return items, colors


def bilibili_expected(db, room):
    """The elements a Bilibili export must hold, from the rows, computed here: [(tag, attrs, text)]."""
    rows = harness.db_rows(db, "SELECT id, ts, type, uid, nick, text, cid, data, decoded FROM messages "
                               "WHERE platform = 'bilibili' AND room_id = ? ORDER BY ts, id", (room,))
    cids = {r[6] for r in rows if r[6]}
    base = min(r[1] for r in rows if r[2] in ('DANMU_MSG', 'SEND_GIFT', 'SEND_GIFT_V2', 'SUPER_CHAT_MESSAGE',
                                              'GUARD_BUY'))
    out = []
    for rid, ts, typ, uid, nick, text, cid, data, decoded in rows:
        d = json.loads(data)
        rel = '%d.%03d' % ((ts - base) // 1000, (ts - base) % 1000)
        who = {'ts': rel, 'user': clean(nick), 'uid': str(uid or 0)}
        if typ == 'DANMU_MSG':
            m = d['info'][0]
            p = [rel, str(m[1]), str(m[2]), str(m[3]), str(ts // 1000), '0', str(uid or 0), cid]
            out.append(('d', {'p': ','.join(p), 'user': clean(nick)}, clean(text)))
        elif typ in ('SEND_GIFT', 'SEND_GIFT_V2'):
            g = d['data'] if typ == 'SEND_GIFT' else json.loads(decoded)
            if typ == 'SEND_GIFT_V2' and 'SEND_GIFT:%s' % g['tid'] in cids:
                continue
            name = g['giftName'] if typ == 'SEND_GIFT' else g['gift_name']
            out.append(('gift', {'ts': rel, 'giftname': name, 'giftcount': str(g['num']), 'uid': str(uid or 0),
                                 'user': clean(nick)}, None))
        elif typ == 'SUPER_CHAT_MESSAGE':
            g = d['data']
            dur = g.get('time', g['end_time'] - g['start_time'])
            out.append(('sc', dict(who, price=str(g['price']), time=str(dur)), clean(text)))
        elif typ == 'GUARD_BUY':
            g = d['data']
            out.append(('guard', dict(who, level=str(g['guard_level']), count=str(g['num'])), None))
    return out, base


def check_bilibili(h, db):
    ck = h.ck
    room = dataset.BILI_ROOM
    rc, out, err = export(h, ['--db', db, '--room', 'bilibili:%d' % room, '--format', 'xml'])
    ck.eq(rc, 0, 'bilibili: export xml exits 0')
    try:
        root = ET.fromstring(out)
    except ET.ParseError as e:
        ck.check(False, 'bilibili: the XML parses', str(e))
        return
    want, base = bilibili_expected(db, room)
    got = [(e.tag, dict(e.attrib), e.text if e.tag in ('d', 'sc') else None)
           for e in root if e.tag in ('d', 'gift', 'sc', 'guard')]
    ck.eq(len(got), len(want), 'bilibili: one element per chat line, gift, super chat and guard (%d)' % len(want))
    bad = ['got %r\nwant %r' % (g, w) for g, w in zip(got, want) if g != w]
    ck.check(not bad, 'bilibili: every element matches its row (mode, size, colour, id_str, sc price and time, '
             'guard level)', '\n'.join(bad[:5]))
    tags = [t for t, _, _ in got]
    ck.check({'d', 'gift', 'sc', 'guard'} <= set(tags), 'bilibili: d, gift, sc and guard all appear', tags)
    ck.eq(sum(1 for t, a, _ in got if t == 'gift' and a['giftname'] == '小花花'), 1,
          'bilibili: the gift sent as SEND_GIFT and SEND_GIFT_V2 is written once')
    info = root.find('BililiveRecorderRecordInfo')
    iso = time.strftime('%Y-%m-%dT%H:%M:%S', time.localtime(base // 1000)) + '.%03d+08:00' % (base % 1000)
    ck.check(info is not None and info.get('roomid') == str(room) and info.get('shortid') == str(dataset.BILI_SHORT)
             and info.get('name') == dataset.BILI_LABEL and info.get('start_time') == iso,
             'bilibili: BililiveRecorderRecordInfo names the room, its short id, label and start time',
             None if info is None else info.attrib)
    ck.check(out.index(b'<BililiveRecorderRecordInfo') < 1000, 'bilibili: the record info is in the first 1000 bytes')
    ck.check(re.search(r'\d+ chat lines, \d+ gifts, \d+ super chats, \d+ guards written', err), 'bilibili: a summary',
             err)
    # The same room by its short id, and by its bare ids (one platform has them).
    for arg in ('bilibili:%d' % dataset.BILI_SHORT, str(room), str(dataset.BILI_SHORT)):
        rc2, out2, err2 = export(h, ['--db', db, '--room', arg, '--format', 'xml'])
        ck.check(rc2 == 0 and out2 == out, 'bilibili: --room %s is the same room' % arg, err2)
    # NDJSON: platform and decoded, nested.
    rc, out, _ = export(h, ['--db', db, '--room', 'bilibili:%d' % room, '--format', 'ndjson'])
    lines = [json.loads(l) for l in out.decode('utf-8').splitlines()]
    rows = harness.db_rows(db, "SELECT id, decoded FROM messages WHERE platform = 'bilibili' AND room_id = ? "
                               'ORDER BY ts, id', (room,))
    ck.check(rc == 0 and [l['id'] for l in lines] == [r[0] for r in rows]
             and all(l['platform'] == 'bilibili' for l in lines)
             and [l['decoded'] for l in lines] == [None if r[1] is None else json.loads(r[1]) for r in rows],
             'bilibili: ndjson has every row with platform and decoded nested', lines[:2])
    ck.check(any(l['decoded'] for l in lines), 'bilibili: some rows have decoded')

    # Room 9999 exists on both platforms: the bare id is refused with both named.
    con = sqlite3.connect(db)
    con.execute("INSERT INTO rooms(platform, room_id, added_at) VALUES ('bilibili', 9999, 0)")
    con.commit()
    con.close()
    rc, _, err = export(h, ['--db', db, '--room', '9999', '--format', 'xml'])
    ck.check(rc == 1 and 'douyu:9999' in err and 'bilibili:9999' in err and 'ambiguous' in err,
             'a bare id two platforms have: exit 1, both named', err)
    rc, out, _ = export(h, ['--db', db, '--room', 'douyu:9999', '--format', 'xml'])
    ck.check(rc == 0 and b'<d ' in out, 'douyu:9999 still exports the Douyu room')
    rc, out, err = export(h, ['--db', db, '--room', 'bilibili:9999', '--format', 'xml'])
    ck.check(rc == 0 and b'<d ' not in out and '0 chat lines' in err, 'bilibili:9999 is the (empty) Bilibili room', err)
    rc, _, err = export(h, ['--db', db, '--room', 'huya:9999', '--format', 'xml'])
    ck.check(rc == 1 and 'not in' in err and 'bilibili:%d' % room in err, 'an unknown platform: exit 1, rooms listed',
             err)
    con = sqlite3.connect(db)
    con.execute("DELETE FROM rooms WHERE platform = 'bilibili' AND room_id = 9999")
    con.commit()
    con.close()


def body(h):
    ck = h.ck
    os.environ['TZ'] = TZ
    time.tzset()
    db = record(h)

    # ---- XML, whole room
    rc, out, err = export(h, ['--db', db, '--room', '9999', '--format', 'xml'])
    ck.eq(rc, 0, 'export xml exits 0')
    ck.check(out.startswith(b'<?xml version="1.0" encoding="UTF-8"?>'), 'the XML declaration comes first')
    first = harness.db_scalar(db, "SELECT min(ts) FROM messages WHERE room_id = 9999 AND type IN ('chatmsg', 'dgb')")
    items, colors = check_xml(h, db, 9999, out, first)
    ck.check(colors >= {str(v) for v in COLORS.values()} | {str(0xffffff)},
             'all six Douyu colours and the default white appear', sorted(colors))
    texts = [e.text or '' for e in items if e.tag == 'd']
    ck.check(any('a<b>&"c\' ]]> ' in t for t in texts), 'XML-hostile text comes back unchanged through the parser')
    ck.check(any(t.startswith('ctl|') and t.endswith('\ufffd末尾\t制表') for t in texts),
             'control characters and U+FFFE are stripped, U+FFFD and tab kept',
             [t for t in texts if t.startswith('ctl')])
    ck.check(re.search(r'chat lines, \d+ gifts written to standard output', err), 'a summary on stderr', err)

    # ---- XML, a range: --from in unix ms (included), --to as local time (excluded)
    ts = [r[0] for r in harness.db_rows(db, "SELECT ts FROM messages WHERE room_id = 288016 AND type = 'chatmsg' "
                                            'ORDER BY ts')]
    t_from = ts[len(ts) // 3]
    t_to = ts[2 * len(ts) // 3] // 1000 * 1000 + 1000  # next whole second after a later row
    to_local = time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(t_to // 1000))
    out_path = os.path.join(h.tmp, 'range.xml')
    rc, _, err = export(h, ['--db', db, '--room', '288016', '--from', str(t_from), '--to', to_local,
                            '--format', 'xml', '-o', out_path])
    ck.eq(rc, 0, 'export xml with --from/--to/-o exits 0')
    with open(out_path, 'rb') as f:
        check_xml(h, db, 288016, f.read(), t_from, 'AND ts >= ? AND ts < ?', (t_from, t_to))
    ck.check(not os.path.exists(out_path + '.part'), 'no .part file left behind')
    # --from as a local date: times relative to midnight
    day = time.strftime('%Y-%m-%d', time.localtime(first // 1000))
    midnight = int(time.mktime(time.strptime(day, '%Y-%m-%d'))) * 1000
    rc, out, _ = export(h, ['--db', db, '--room', '9999', '--from', day, '--format', 'xml'])
    ck.eq(rc, 0, 'export with --from YYYY-MM-DD exits 0')
    check_xml(h, db, 9999, out, midnight, 'AND ts >= ?', (midnight,))

    # ---- NDJSON
    nd = os.path.join(h.tmp, 'room.ndjson')
    rc, _, err = export(h, ['--db', db, '--room', '288016', '--format', 'ndjson', '-o', nd])
    ck.eq(rc, 0, 'export ndjson exits 0')
    rows = harness.db_rows(db, 'SELECT id, platform, room_id, ts, type, uid, nick, level, text, cid, session_id, '
                               "data, decoded FROM messages WHERE platform = 'douyu' AND room_id = 288016 "
                               'ORDER BY ts, id')
    got = []
    with open(nd, encoding='utf-8') as f:
        for line in f:
            got.append(json.loads(line))
    keys = ['id', 'platform', 'room_id', 'ts', 'type', 'uid', 'nick', 'level', 'text', 'cid', 'session_id', 'data',
            'decoded']
    want = [dict(zip(keys, r[:-2] + (json.loads(r[-2]), r[-1]))) for r in rows]
    ck.eq(len(got), len(want), 'ndjson: one line per message of every type (%d)' % len(want))
    ck.check(got == want, 'ndjson: every field equals the row, data as a nested object',
             next(('got %r\nwant %r' % (g, w) for g, w in zip(got, want) if g != w), ''))
    ck.check({g['type'] for g in got} >= {'chatmsg', 'dgb', 'uenter', 'rss'}, 'ndjson has every type')
    ck.eq(list(got[0]) if got else [], keys, 'ndjson: the keys, in order')

    check_bilibili(h, db)

    # ---- errors
    missing = os.path.join(h.tmp, 'nope.db')
    rc, _, err = export(h, ['--db', missing, '--room', '9999', '--format', 'xml'])
    ck.check(rc == 1 and 'nope.db' in err and not os.path.exists(missing),
             'missing database: exit 1, named, not created', (rc, err))
    bad_out = os.path.join(h.tmp, 'bad.xml')
    rc, _, err = export(h, ['--db', db, '--room', '12345', '--format', 'xml', '-o', bad_out])
    ck.check(rc == 1 and 'room 12345 is not in' in err and '9999' in err, 'unknown room: exit 1, lists the rooms', err)
    ck.check(not os.path.exists(bad_out) and not os.path.exists(bad_out + '.part'), 'no output file on error')
    rc, _, err = export(h, ['--db', db, '--room', '9999', '--format', 'xml', '--from', '2025-01-02', '--to', '2025-01-01'])
    ck.check(rc == 1 and 'empty range' in err, 'reversed range: exit 1', err)
    for args, what in ((['--from', 'yesterday'], 'bad time'), (['--format', 'csv'], 'bad format'),
                       (['--bogus'], 'unknown option')):
        base = ['--db', db, '--room', '9999', '--format', 'xml']
        rc, _, err = export(h, base + args)
        ck.check(rc == 2 and err, '%s: exit 2 with a message' % what, (rc, err))
    rc, _, err = export(h, ['--db', db, '--format', 'xml'])
    ck.check(rc == 2 and '--room is required' in err, 'missing --room: exit 2', err)
    for bad in ('douyu:', 'Douyu:9999', 'douyu:x', ':9999', '0'):
        rc, _, err = export(h, ['--db', db, '--room', bad, '--format', 'xml'])
        ck.check(rc == 2 and 'douyu:ID' in err, '--room %s: exit 2 with what is expected' % bad, err)
    # A database an older danmakud wrote (schema v2): refused with how to upgrade, not changed.
    old = os.path.join(h.tmp, 'v2.db')
    con = sqlite3.connect(old)
    con.executescript('CREATE TABLE rooms (room_id INTEGER PRIMARY KEY, label TEXT, added_at INTEGER NOT NULL);'
                      'CREATE TABLE messages (id INTEGER PRIMARY KEY, room_id INTEGER NOT NULL, ts INTEGER NOT NULL,'
                      ' type TEXT NOT NULL, data TEXT NOT NULL);'
                      "INSERT INTO rooms VALUES (9999, NULL, 0); PRAGMA user_version = 2;")
    con.close()
    rc, _, err = export(h, ['--db', old, '--room', '9999', '--format', 'xml'])
    ck.check(rc == 1 and 'schema version 2 is older' in err and 'start the recorder' in err
             and harness.db_scalar(old, 'PRAGMA user_version') == 2,
             'a schema-v2 database: exit 1, says how to upgrade, left as it was', err)

    # ---- constant memory: 40x the rows, about the same peak RSS
    big = os.path.join(h.tmp, 'big.db')
    con = sqlite3.connect(big)
    con.executescript(harness.db_rows(db, "SELECT group_concat(sql, ';') FROM sqlite_master WHERE name IN "
                                          "('rooms', 'messages') AND sql IS NOT NULL")[0][0] + ';')
    con.execute('INSERT INTO rooms(room_id, added_at) VALUES (1, 0)')
    txt = '这是一条用来测试内存的弹幕' * 3
    data = json.dumps({'type': 'chatmsg', 'txt': txt, 'col': '2', 'pad': 'x' * 300}, ensure_ascii=False)

    def fill(n, start):
        con.executemany("INSERT INTO messages(room_id, ts, type, uid, nick, text, data) "
                        "VALUES (1, ?, 'chatmsg', ?, 'n', ?, ?)",
                        ((1700000000000 + i, i, txt, data) for i in range(start, start + n)))
        con.commit()
    fill(5000, 0)
    rc1, small_kb = peak_rss_kb(h, ['--db', big, '--room', '1', '--format', 'xml'])
    fill(195000, 5000)
    con.close()
    rc2, big_kb = peak_rss_kb(h, ['--db', big, '--room', '1', '--format', 'xml'])
    ck.check(rc1 == 0 and rc2 == 0 and big_kb < small_kb + 8 * 1024,
             'exporting 200000 rows peaks within 8 MiB of exporting 5000 (streamed)',
             'rc %s/%s, peak RSS %d KiB vs %d KiB' % (rc1, rc2, small_kb, big_kb))
    ck.note('peak RSS: 5000 rows %d KiB, 200000 rows %d KiB' % (small_kb, big_kb))

    # ---- fts command
    def fts(*a):
        return h.run_danmakud(['fts', '--db', db] + list(a))
    chats = harness.db_scalar(db, 'SELECT count(*) FROM messages WHERE text IS NOT NULL')
    rc, out, _ = fts()
    ck.check(rc == 0 and out.strip() == 'full-text index: on (%d chat lines indexed)' % chats,
             'fts status: on, every chat line indexed', out)
    rc, out, _ = fts('off')
    ck.check(rc == 0 and 'off' in out and harness.db_scalar(
        db, "SELECT count(*) FROM sqlite_master WHERE name LIKE 'messages_fts%'") == 0, 'fts off drops it', out)
    rc, out, _ = fts('on')
    ck.check(rc == 0 and out.strip() == 'full-text index: on (%d chat lines indexed)' % chats, 'fts on rebuilds it', out)
    want = harness.db_scalar(db, "SELECT count(*) FROM messages WHERE text LIKE ?", ('%' + dataset.PHRASE + '%',))
    ck.check(want > 0 and harness.db_scalar(db, 'SELECT count(*) FROM messages_fts WHERE messages_fts MATCH ?',
                                            (dataset.PHRASE,)) == want,
             'after fts on, MATCH finds what LIKE finds (%d)' % want)
    rc, _, err = h.run_danmakud(['fts', '--db', missing, 'on'])
    ck.check(rc == 1 and not os.path.exists(missing), 'fts on a missing database: exit 1, not created', err)
    rc, _, err = fts('sideways')
    ck.eq(rc, 2, 'fts with a bad word: exit 2')


if __name__ == '__main__':
    sys.exit(harness.Harness('export').run(body))
