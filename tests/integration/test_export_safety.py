#!/usr/bin/python3
"""danmakud export against readers that are less forgiving than a real parser, and against a
hostile filesystem (issue 10 section 3).

- XML: DanmakuFactory finds elements by scanning for "<d", "<gift", "<sc" and "<guard" without
  understanding comments (a "<d>" in the header comment made it dereference NULL). Here a
  scanner just as naive checks that every one of them anywhere in the file starts a complete
  element with its p (or ts) and user attributes, one per exported row, after rows with tag-like
  nicks, texts and a tag-like room label were added with sqlite3, in a Douyu room and in a
  Bilibili one (there also a tag-like id_str, a super chat and a guard with tag-like text,
  numbers that are not numbers, data and decoded that are not JSON). The strict parser
  (xml.etree) still reads every element back as the row (test_export.check_xml).
- NDJSON: a reader that splits on b"\\n" and json.loads each line, after rows whose data holds
  newlines (pretty-printed JSON), invalid JSON, raw control characters and bytes that are not
  UTF-8, and whose text and nick hold newlines, were added; in the Bilibili room, decoded too.
- -o OUT: a symbolic link planted at OUT.part is never followed (its target is unchanged, no
  output written through it), a stale OUT.part is refused with a hint, a write failure leaves
  neither OUT nor OUT.part, a symbolic link at OUT is replaced rather than written through, and
  the file is not readable by others.
"""

import json
import os
import re
import resource
import signal
import sqlite3
import subprocess
import sys

import dataset
import harness
import test_export as te

HOSTILE_NICK = '<d p="1" user="x">fake</d><gift ts="0"/>'
HOSTILE_TEXT = 'a <d >b <gift >c <d\n<gift\t<!-- x --> ]]> & end'
HOSTILE_LABEL = '<d p="9"> <gift ts="9">'
# data values stored as they are, then what a reader should get back as "data".
BAD_DATA = [
    ('{\n  "type": "chatmsg",\n  "txt": "multi\\nline"\n}\n', {'type': 'chatmsg', 'txt': 'multi\nline'}),
    ('not json\n{"x": 1}\n', 'not json\n{"x": 1}\n'),
    ('{"t": "raw\x01control\nin a string"}', '{"t": "raw\x01control\nin a string"}'),
    ('[1,\r\n2]', [1, 2]),
    ('', ''),
]


def add_hostile_rows(db, room):
    """Rows a hand-edited or damaged database may hold. Returns the ids added."""
    con = sqlite3.connect(db)
    ts = con.execute('SELECT max(ts) FROM messages WHERE room_id = ?', (room,)).fetchone()[0] + 1
    ids = []

    def add(typ, nick, text, data):
        nonlocal ts
        cur = con.execute('INSERT INTO messages(room_id, ts, type, uid, nick, text, data) VALUES (?, ?, ?, 7, ?, ?, ?)',
                          (room, ts, typ, nick, text, data))
        ids.append(cur.lastrowid)
        ts += 1
    add('chatmsg', HOSTILE_NICK, HOSTILE_TEXT, json.dumps({'type': 'chatmsg', 'col': '1'}))
    add('dgb', HOSTILE_NICK, None, json.dumps({'type': 'dgb', 'gfn': '<gift ts="1" user="u"/>', 'gfcnt': '2'}))
    for data, _ in BAD_DATA:
        add('odd', 'multi\nline\x07nick', 'text\nwith\r\nbreaks\x1b[31m', data)
    # Not UTF-8, stored as TEXT (sqlite never checks): valid JSON for json_valid, a U+FFFD for us.
    cur = con.execute('INSERT INTO messages(room_id, ts, type, nick, text, data) '
                      "VALUES (?, ?, 'odd', CAST(x'6e80' AS TEXT), CAST(x'740a80ff' AS TEXT), "
                      "CAST(x'7b2261223a2280227d' AS TEXT))", (room, ts))
    ids.append(cur.lastrowid)
    con.execute('UPDATE rooms SET label = ? WHERE room_id = ?', (HOSTILE_LABEL, room))
    con.commit()
    con.close()
    return ids


def add_hostile_bilibili(db, room):
    """The same for a Bilibili room: every element type with tag-like strings, numbers that are
    not numbers, data and decoded that are not JSON. Returns the ids added."""
    con = sqlite3.connect(db)
    ts = con.execute("SELECT max(ts) FROM messages WHERE platform = 'bilibili' AND room_id = ?",
                     (room,)).fetchone()[0] + 1
    ids = []

    def add(typ, nick, text, cid, data, decoded=None):
        nonlocal ts
        cur = con.execute("INSERT INTO messages(platform, room_id, ts, type, uid, nick, text, cid, data, decoded) "
                          "VALUES ('bilibili', ?, ?, ?, 7, ?, ?, ?, ?, ?)",
                          (room, ts, typ, nick, text, cid, data, decoded))
        ids.append(cur.lastrowid)
        ts += 1
    info = [[0, '<d p="1">', 25, '1e3', 0], 't', [7, 'n']]
    add('DANMU_MSG', HOSTILE_NICK, HOSTILE_TEXT, 'id,<d p="2">', json.dumps({'cmd': 'DANMU_MSG', 'info': info}))
    add('DANMU_MSG', 'multi\nline\x07nick', 'text\nwith\r\nbreaks\x1b[31m', None, 'not json {')
    add('SUPER_CHAT_MESSAGE', HOSTILE_NICK, HOSTILE_TEXT, 'SUPER_CHAT_MESSAGE:h1',
        json.dumps({'cmd': 'SUPER_CHAT_MESSAGE', 'data': {'price': '<sc>', 'time': '60"'}}))
    add('GUARD_BUY', HOSTILE_NICK, None, None,
        json.dumps({'cmd': 'GUARD_BUY', 'data': {'guard_level': '<guard>', 'num': 'x'}}))
    add('SEND_GIFT', HOSTILE_NICK, None, 'SEND_GIFT:h2',
        json.dumps({'cmd': 'SEND_GIFT', 'data': {'giftName': '<gift ts="1" user="u"/>', 'num': 2, 'tid': 'h2'}}))
    add('SEND_GIFT_V2', HOSTILE_NICK, None, 'SEND_GIFT_V2:h3:0', '{"cmd":"SEND_GIFT_V2"}', 'not json\n{')
    add('SEND_GIFT_V2', HOSTILE_NICK, None, 'SEND_GIFT_V2:h4:0', '{"cmd":"SEND_GIFT_V2"}',
        json.dumps({'gift_name': '<sc ts="0" user="x">y</sc>', 'num': 1, 'tid': 'h4', 'note': 'a\nb'}))
    con.execute("UPDATE rooms SET label = ? WHERE platform = 'bilibili' AND room_id = ?", (HOSTILE_LABEL, room))
    con.commit()
    con.close()
    return ids


# ---- the naive scanner: what DanmakuFactory does, no notion of comments, CDATA or quoting
ATTR = r'\s+([a-z_]+)="([^"<]*)"'
D_ELEMENT = re.compile(r'<d((?:%s)*)\s*>([^<]*)</d>' % ATTR)
GIFT_ELEMENT = re.compile(r'<gift((?:%s)*)\s*/>' % ATTR)
SC_ELEMENT = re.compile(r'<sc((?:%s)*)\s*>([^<]*)</sc>' % ATTR)
GUARD_ELEMENT = re.compile(r'<guard((?:%s)*)\s*/>' % ATTR)
ELEMENTS = {'d': (D_ELEMENT, ('p', 'user')), 'gift': (GIFT_ELEMENT, ('ts', 'user')),
            'sc': (SC_ELEMENT, ('ts', 'user', 'price', 'time')), 'guard': (GUARD_ELEMENT, ('ts', 'user', 'level'))}
STARTS = re.compile(r'<(d|gift|sc|guard)(?![A-Za-z0-9_:-])')


def naive_scan(text):
    """Every "<d", "<gift", "<sc" and "<guard" in text as (tag, attrs) or (tag, None) when it is
    not a complete element with its attributes (p or ts, user, ...)."""
    found = []
    for m in STARTS.finditer(text):
        tag = m.group(1)
        pattern, need = ELEMENTS[tag]
        el = pattern.match(text, m.start())
        attrs = dict(re.findall(ATTR, el.group(1))) if el else {}
        found.append((tag, attrs if el and all(k in attrs for k in need) else None, m.start()))
    return found


XML_TAG = {'chatmsg': 'd', 'dgb': 'gift', 'DANMU_MSG': 'd', 'SEND_GIFT': 'gift', 'SEND_GIFT_V2': 'gift',
           'SUPER_CHAT_MESSAGE': 'sc', 'GUARD_BUY': 'guard'}


def check_xml_naive(h, db, room, out, platform='douyu'):
    ck = h.ck
    text = out.decode('utf-8')
    found = naive_scan(text)
    bad = [text[max(0, pos - 40):pos + 60] for tag, attrs, pos in found if attrs is None]
    ck.check(not bad, '%s room %d: every "<d", "<gift", "<sc" and "<guard" in the file starts a complete element'
             % (platform, room), '\n'.join(repr(b) for b in bad[:5]))
    types = ('chatmsg', 'dgb') if platform == 'douyu' else \
        ('DANMU_MSG', 'SEND_GIFT', 'SEND_GIFT_V2', 'SUPER_CHAT_MESSAGE', 'GUARD_BUY')
    rows = harness.db_rows(db, 'SELECT type, cid, decoded FROM messages WHERE platform = ? AND room_id = ? '
                               'AND type IN (%s) ORDER BY ts, id' % ','.join('?' * len(types)),
                           (platform, room) + types)
    cids = {r[1] for r in rows if r[1]}

    def counted(typ, decoded):
        # A SEND_GIFT_V2 item whose SEND_GIFT is stored too is written once, as the SEND_GIFT.
        try:
            tid = json.loads(decoded)['tid'] if typ == 'SEND_GIFT_V2' else None
        except (TypeError, ValueError, KeyError):
            tid = None
        return tid is None or 'SEND_GIFT:%s' % tid not in cids
    want = [XML_TAG[t] for t, _, dec in rows if counted(t, dec)]
    ck.eq([t for t, _, _ in found], want,
          '%s room %d: the naive scanner sees exactly one element per exported row (%d)' % (platform, room, len(want)))
    comments = re.findall(r'<!--(.*?)-->', text, re.S)
    ck.check(comments and not any('<' in c or '>' in c for c in comments),
             'the comments hold no angle brackets', comments)
    outside = re.sub(r'<[^>]*>', '', re.sub(r'<!--.*?-->', '', text, flags=re.S))
    ck.check('<' not in outside, 'no raw "<" in any text')


def check_ndjson_naive(h, db, room, path, hostile_ids):
    ck = h.ck
    with open(path, 'rb') as f:
        raw = f.read()
    lines = raw.split(b'\n')
    ck.eq(lines[-1], b'', 'ndjson ends with a newline')
    lines = lines[:-1]
    objs, bad = [], []
    for i, line in enumerate(lines):
        try:
            o = json.loads(line.decode('utf-8'))
            if not isinstance(o, dict):
                raise ValueError('not an object')
            objs.append(o)
        except ValueError as e:
            bad.append('line %d: %s: %r' % (i + 1, e, line[:120]))
    ck.check(not bad, 'ndjson: every line is one strict-UTF-8 JSON object', '\n'.join(bad[:5]))
    n = harness.db_scalar(db, "SELECT count(*) FROM messages WHERE platform = 'douyu' AND room_id = ?", (room,))
    ck.eq(len(lines), n, 'ndjson: one line per stored row (%d)' % n)
    by_id = {o.get('id'): o for o in objs}
    got = [by_id.get(i) for i in hostile_ids]
    ck.check(all(got), 'ndjson: every hostile row is there')
    if not all(got):
        return
    odd = got[2:2 + len(BAD_DATA)]
    ck.eq([o['data'] for o in odd], [want for _, want in BAD_DATA],
          'ndjson: valid multi-line data nested (minified), anything else given as the stored string')
    ck.eq([o['nick'] for o in odd], ['multi\nline\x07nick'] * len(BAD_DATA), 'ndjson: nick with newline and BEL intact')
    ck.eq([o['text'] for o in odd], ['text\nwith\r\nbreaks\x1b[31m'] * len(BAD_DATA),
          'ndjson: text with line breaks and ESC intact')
    last = got[-1]
    ck.check(last['data'] == '{"a":"\ufffd"}' and last['nick'] == 'n\ufffd' and last['text'] == 't\n\ufffd\ufffd',
             'ndjson: bytes that are not UTF-8 become U+FFFD, data given as a string', last)
    ck.eq(got[0]['nick'], HOSTILE_NICK, 'ndjson: a tag-like nick is plain text')


def check_output_file(h, db):
    ck = h.ck
    base = ['--db', db, '--room', '9999', '--format', 'xml']
    # A symbolic link planted at OUT.part, to an existing file and to a missing one.
    victim = os.path.join(h.tmp, 'victim.txt')
    with open(victim, 'w') as f:
        f.write('precious\n')
    out = os.path.join(h.tmp, 'out.xml')
    os.symlink(victim, out + '.part')
    rc, _, err = te.export(h, base + ['-o', out])
    with open(victim) as f:
        kept = f.read()
    ck.check(rc == 1 and kept == 'precious\n' and not os.path.exists(out) and os.path.islink(out + '.part'),
             'a symlink at OUT.part: exit 1, its target untouched, no output, the link left alone',
             (rc, kept, err))
    ck.check('out.xml.part' in err and 'remove it' in err, 'the error names OUT.part and says what to do', err)
    os.unlink(out + '.part')
    missing = os.path.join(h.tmp, 'created-through-link')
    os.symlink(missing, out + '.part')
    rc, _, err = te.export(h, base + ['-o', out])
    ck.check(rc == 1 and not os.path.exists(missing), 'a dangling symlink at OUT.part: nothing created through it',
             (rc, err))
    os.unlink(out + '.part')
    # A stale regular OUT.part (an interrupted export) is not overwritten either.
    with open(out + '.part', 'w') as f:
        f.write('stale')
    rc, _, err = te.export(h, base + ['-o', out])
    with open(out + '.part') as f:
        stale = f.read()
    ck.check(rc == 1 and stale == 'stale' and 'remove it' in err, 'a stale OUT.part: exit 1, kept, a hint', err)
    os.unlink(out + '.part')
    # A symlink at OUT itself is replaced by the finished file, its target untouched.
    os.symlink(victim, out)
    rc, _, err = te.export(h, base + ['-o', out])
    with open(victim) as f:
        kept = f.read()
    ck.check(rc == 0 and not os.path.islink(out) and kept == 'precious\n' and not os.path.exists(out + '.part'),
             'a symlink at OUT: replaced by the export, its target untouched', (rc, err))
    mode = os.stat(out).st_mode & 0o777
    ck.check(mode & 0o007 == 0 and mode & 0o600 == 0o600, 'the export is 0640 at most (mode %o)' % mode)

    # A write that fails half way (file size limit) leaves neither OUT nor OUT.part.
    def small_fsize():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (8192, 8192))
    out2 = os.path.join(h.tmp, 'cut.xml')
    rc, err = popen_plain(h, [h.args.danmakud, 'export'] + base + ['-o', out2], small_fsize)
    ck.check(rc == 1 and not os.path.exists(out2) and not os.path.exists(out2 + '.part'),
             'a failed write: exit 1, neither OUT nor OUT.part left', (rc, err))


def popen_plain(h, argv, preexec):
    p = subprocess.Popen(argv, cwd=h.tmp, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, preexec_fn=preexec, env=dict(os.environ, TZ=te.TZ))
    try:
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return p.returncode, err.decode('utf-8', 'replace')


def body(h):
    ck = h.ck
    os.environ['TZ'] = te.TZ
    db = te.record(h)
    hostile = add_hostile_rows(db, 9999)

    rc, out, err = te.export(h, ['--db', db, '--room', '9999', '--format', 'xml'])
    ck.eq(rc, 0, 'export xml exits 0')
    check_xml_naive(h, db, 9999, out)
    first = harness.db_scalar(db, "SELECT min(ts) FROM messages WHERE room_id = 9999 AND type IN ('chatmsg', 'dgb')")
    te.check_xml(h, db, 9999, out, first)
    rc, out, err = te.export(h, ['--db', db, '--room', '288016', '--format', 'xml'])
    ck.eq(rc, 0, 'export xml of the other room exits 0')
    check_xml_naive(h, db, 288016, out)

    nd = os.path.join(h.tmp, 'room.ndjson')
    rc, _, err = te.export(h, ['--db', db, '--room', '9999', '--format', 'ndjson', '-o', nd])
    ck.eq(rc, 0, 'export ndjson exits 0')
    check_ndjson_naive(h, db, 9999, nd, hostile)

    # Bilibili: the same for every element it has, and decoded in NDJSON.
    room = dataset.BILI_ROOM
    hostile = add_hostile_bilibili(db, room)
    rc, out, err = te.export(h, ['--db', db, '--room', 'bilibili:%d' % room, '--format', 'xml'])
    ck.check(rc == 0, 'bilibili: export xml exits 0', err)
    check_xml_naive(h, db, room, out, 'bilibili')
    try:
        root = te.ET.fromstring(out)
        els = [e for e in root if e.tag in ('d', 'sc', 'guard', 'gift')]
        first = {e.tag: e for e in reversed(els)}
        ok = (root.find('BililiveRecorderRecordInfo').get('name') == HOSTILE_LABEL
              and any(e.tag == 'd' and e.get('user') == HOSTILE_NICK and e.text == te.clean(HOSTILE_TEXT)
                      and e.get('p').split(',')[1:4] == ['1', '25', '16777215'] and len(e.get('p').split(',')) == 8
                      for e in els)
              and any(e.tag == 'sc' and e.get('price') == '0' and e.get('time') == '60' for e in els)
              and any(e.tag == 'guard' and e.get('level') == '0' and e.get('count') == '1' for e in els)
              and set(first) == {'d', 'sc', 'guard', 'gift'})
    except (te.ET.ParseError, AttributeError) as e:
        ok = str(e)
    ck.check(ok is True, 'bilibili: the strict parser reads the hostile rows back: tag-like strings as text, '
             'numbers that are not numbers as defaults, an id that is not alphanumeric replaced', ok)
    nd = os.path.join(h.tmp, 'bili.ndjson')
    rc, _, err = te.export(h, ['--db', db, '--room', 'bilibili:%d' % room, '--format', 'ndjson', '-o', nd])
    with open(nd, 'rb') as f:
        lines = f.read().split(b'\n')[:-1]
    try:
        objs = {o['id']: o for o in (json.loads(l.decode('utf-8')) for l in lines)}
    except ValueError as e:
        objs = {}
        ck.check(False, 'bilibili ndjson: every line is JSON', str(e))
    n = harness.db_scalar(db, "SELECT count(*) FROM messages WHERE platform = 'bilibili' AND room_id = ?", (room,))
    ck.check(rc == 0 and len(lines) == n and all(i in objs for i in hostile),
             'bilibili ndjson: one line per row, the hostile ones too (%d)' % n, err)
    if all(i in objs for i in hostile):
        ck.eq([objs[hostile[1]]['data'], objs[hostile[5]]['decoded'], objs[hostile[6]]['decoded']['note']],
              ['not json {', 'not json\n{', 'a\nb'], 'bilibili ndjson: data and decoded nested or given as strings')

    check_output_file(h, db)


if __name__ == '__main__':
    sys.exit(harness.Harness('export_safety').run(body))
