#!/usr/bin/python3
"""Golden test: every server-to-client row of douyu-samples.tsv, every packet of
the S13-live capture, of S15-gifts and of S16-broadcast-end, plus a few
synthetic bodies with invalid UTF-8, go through the real danmakud (via
golden_server.py); each stored row is compared with what this file derives on
its own, in Python, from the same bytes: type, uid, nick, level, text, cid and
json.loads(data). Then the sqlite3 CLI runs json_extract on every row, and the
derived-fact SQL expressions documented in the README (robot chats, cst in ms,
rss live/replay, broadcast drid) are checked against Python's answers.

Rules modelled here (README "Protocol fidelity"): room-scoped packets have
their positive `rid` rewritten to the recorded room; a packet whose first `rid`
is another room is counted, not stored (each TSV row with a positive rid is
also sent once unmodified, as another room's message); loginres, pingreq, mrkl
and keeplive are not stored; a chatmsg whose cid was already stored for the
room is a duplicate and not stored again.
"""

import base64
import json
import os
import re
import subprocess
import sys

import harness

ROOM = 4242
CONTROL = {'loginres', 'pingreq', 'mrkl', 'keeplive'}
CLIENT_TYPES = {'loginreq', 'joingroup', 'logout'}
INT64 = re.compile(r'^-?[0-9]+$')


# ------------------------------------------------------------ our own decoding
def unescape(b):
    out, i = bytearray(), 0
    while i < len(b):
        if b[i:i + 1] == b'@' and b[i + 1:i + 2] in (b'A', b'S'):
            out += b'@' if b[i + 1:i + 2] == b'A' else b'/'
            i += 2
        else:
            out.append(b[i])
            i += 1
    return bytes(out)


def decode(body):
    """[(key bytes, value bytes)] in wire order: split on '/', first '@=' splits."""
    pairs = []
    for seg in body.split(b'/'):
        at = seg.find(b'@=')
        if at <= 0:
            continue
        pairs.append((unescape(seg[:at]), unescape(seg[at + 2:])))
    return pairs


CESU = re.compile(rb'\xed([\xa0-\xaf])([\x80-\xbf])\xed([\xb0-\xbf])([\x80-\xbf])')
LONE = re.compile(rb'\xed[\xa0-\xbf][\x80-\xbf]')


def text(b):
    """Bytes to str the documented way: CESU-8 surrogate pairs joined, a lone
    encoded surrogate is one U+FFFD, anything else invalid as Python's
    errors='replace' (one U+FFFD per maximal subpart)."""
    def join(m):
        hi = 0xD800 | (m.group(1)[0] & 0x0F) << 6 | (m.group(2)[0] & 0x3F)
        lo = 0xDC00 | (m.group(3)[0] & 0x0F) << 6 | (m.group(4)[0] & 0x3F)
        return chr(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)).encode('utf-8')
    b = CESU.sub(join, b)
    b = LONE.sub('\ufffd'.encode('utf-8'), b)
    return b.decode('utf-8', 'replace')


def first(pairs):
    d = {}
    for k, v in pairs:
        d.setdefault(k, v)
    return d


def as_int(v):
    if v is None or not INT64.match(v.decode('latin-1')):
        return None
    n = int(v)
    return n if -2**63 <= n < 2**63 else None


def expected_data(pairs):
    seen, d = {}, {}
    for k, v in pairs:
        ks = text(k)
        seen[ks] = seen.get(ks, 0) + 1
        d[ks if seen[ks] == 1 else '%s#%d' % (ks, seen[ks])] = text(v)
    return d


def expected_row(pairs):
    """(type, uid, nick, level, text, cid) for the columns."""
    f = first(pairs)
    t = f.get(b'type', b'')
    uid, nick, level, txt, cid = f.get(b'uid'), f.get(b'nn'), f.get(b'level'), None, None
    if t == b'chatmsg':
        txt = f.get(b'txt')
        cid = f.get(b'cid') or None
    elif t == b'comm_chatmsg':
        nf = first(decode(f[b'chatmsg'])) if b'chatmsg' in f else {}
        uid = nf.get(b'uid', f.get(b'uid'))
        nick = nf.get(b'nn', f.get(b'nn'))
        level = nf.get(b'level', f.get(b'level'))
        txt = nf.get(b'txt')
    elif t in (b'anbc', b'rnewbc'):
        nick, level = f.get(b'unk'), None
    elif t == b'spbc':
        uid, nick, level = None, f.get(b'sn'), None
    elif t == b'error':
        txt = b'error ' + f[b'code'] if b'code' in f else b'error'
    s = lambda v: None if v is None else text(v)
    return (text(t), as_int(uid), s(nick), as_int(level), s(txt), s(cid))


# ------------------------------------------------------------ what is sent
def rewrite_rid(body, room, only=None):
    """Every rid@=<positive number> segment (or only rid@=<only>) gets the room; the rest of
    the bytes is untouched."""
    segs = body.split(b'/')
    for i, seg in enumerate(segs):
        if seg.startswith(b'rid@=') and re.match(rb'^[1-9][0-9]*$', seg[5:]) and \
                (only is None or seg[5:] == str(only).encode()):
            segs[i] = b'rid@=' + str(room).encode()
    return b'/'.join(segs)


def tsv_bodies(shared):
    """Server-to-client rows: not marked client->server, not a client request type."""
    rows = []
    with open(os.path.join(shared, 'douyu-samples.tsv'), 'rb') as f:
        for line in f.read().split(b'\n'):
            if not line:
                continue
            body, src = line.split(b'\t', 1)
            t = first(decode(body)).get(b'type', b'').decode()
            if b'client->server' in src or t in CLIENT_TYPES:
                continue
            rows.append(body)
    return rows


def build(shared, room):
    bodies = []
    tsv = tsv_bodies(shared)
    # A server error ends the connection (README): the one error row goes last.
    errors = [b for b in tsv if first(decode(b)).get(b'type') == b'error']
    tsv = [b for b in tsv if b not in errors]
    for body in tsv:
        bodies.append(rewrite_rid(body, room))
        rid = as_int(first(decode(body)).get(b'rid'))
        if rid and rid != room:
            bodies.append(body)  # as another room's message
    reader = harness.PacketReader()
    with open(os.path.join(harness.capture_dir(shared), 'frames.jsonl'), encoding='utf-8') as f:
        for line in f:
            o = json.loads(line) if line.strip() else None
            if o and o['dir'] == 'in':
                for typ, body in reader.feed(base64.b64decode(o['b64'])):
                    bodies.append(rewrite_rid(body.encode('utf-8'), room, 9999))
    fix = os.path.join(shared, 'fixtures', 'douyu', 'danmaku')
    for name, rid in (('S15-gifts', 9263298), ('S16-broadcast-end', 12850251)):
        with open(os.path.join(fix, name, 'packets.json'), encoding='utf-8') as f:
            for p in json.load(f)['packets']:
                bodies.append(rewrite_rid(p.encode('utf-8'), room, rid))
    # Synthetic: invalid UTF-8, a CESU-8 emoji, a lone surrogate, controls and quotes,
    # a robot chat with cst in seconds, a live replay rss, a nested sender with bad UTF-8.
    bodies += [
        b'type@=chatmsg/rid@=%d/uid@=7/nn@=bad\xff\xfename/txt@=\xed\xa0\xbd\xed\xb8\x8a ok/'
        b'cid@=feedface00000000000000000000cafe/level@=3/cst@=1790519453/' % room,
        b'type@=chatmsg/rid@=%d/uid@=8/nn@=x\xed\xa0\x80y/txt@=a"b\\c\x01\x1f\ttab/'
        b'cid@=feedface00000000000000000000beef/dms@=4/cst@=1790519453584/' % room,
        b'type@=rss/rid@=%d/ss@=1/ivl@=1/' % room,
        b'type@=comm_chatmsg/rid@=%d/uid@=99/chatmsg@=uid@A=5@Snn@A=n\xc3@Stxt@A=t@AAx@S/' % room,
    ]
    return bodies + errors


def expected(bodies, room):
    want, cids = [], set()
    foreign = 0
    for body in bodies:
        pairs = decode(body)
        f = first(pairs)
        t = f.get(b'type', b'').decode('utf-8', 'replace')
        if t in CONTROL:
            continue
        rid = as_int(f.get(b'rid'))
        if t != 'error' and rid and rid != room:
            foreign += 1
            continue
        row = expected_row(pairs)
        if row[5] is not None:
            if row[5] in cids:
                continue  # duplicate chat: the unique (room_id, cid) index keeps the first
            cids.add(row[5])
        want.append((row, expected_data(pairs)))
    return want, foreign


# ------------------------------------------------------------ derived facts
SQL_ROBOT = "type = 'chatmsg' AND json_extract(data, '$.dms') IS NULL"
SQL_CST_MS = ("CASE WHEN json_extract(data, '$.cst') GLOB '[0-9]*' AND "
              "json_extract(data, '$.cst') NOT GLOB '*[^0-9]*' THEN "
              "CASE WHEN CAST(json_extract(data, '$.cst') AS INTEGER) < 100000000000 "
              "THEN CAST(json_extract(data, '$.cst') AS INTEGER) * 1000 "
              "ELSE CAST(json_extract(data, '$.cst') AS INTEGER) END END")
SQL_LIVE = ("CASE WHEN type <> 'rss' THEN NULL "
            "WHEN json_extract(data, '$.ss') = '1' AND json_extract(data, '$.ivl') = '1' "
            "THEN 'replay' WHEN json_extract(data, '$.ss') = '1' THEN 'live' "
            "WHEN json_extract(data, '$.ss') = '0' THEN 'off' END")
SQL_DRID = ("CASE WHEN type IN ('spbc', 'anbc', 'rnewbc') "
            "THEN CAST(json_extract(data, '$.drid') AS INTEGER) END")


def py_facts(typ, data):
    robot = typ == 'chatmsg' and 'dms' not in data
    cst = data.get('cst')
    cst_ms = None
    if cst is not None and cst.isdigit() and cst.isascii():
        cst_ms = int(cst) * 1000 if int(cst) < 10**11 else int(cst)
    live = None
    if typ == 'rss':
        ss, ivl = data.get('ss'), data.get('ivl')
        live = 'replay' if ss == '1' and ivl == '1' else 'live' if ss == '1' else \
            'off' if ss == '0' else None
    drid = int(data['drid']) if typ in ('spbc', 'anbc', 'rnewbc') and 'drid' in data else None
    return (1 if robot else 0, cst_ms, live, drid)


# ------------------------------------------------------------ the test
def body(h):
    ck = h.ck
    bodies = build(h.shared, ROOM)
    want, foreign = expected(bodies, ROOM)
    ck.note('%d packets sent, %d rows expected, %d other-room packets' %
            (len(bodies), len(want), foreign))
    ck.check(len(bodies) > 700 and len(want) > 600, 'the golden stream is the full set')
    path = os.path.join(h.tmp, 'golden.json')
    with open(path, 'w', encoding='utf-8') as f:
        json.dump({'packets': [base64.b64encode(b).decode() for b in bodies]}, f)
    argv = [sys.executable, os.path.join(harness.HERE, 'golden_server.py'), '--packets', path]
    mock = h._start_mock(argv, 'golden')
    d = h.start_danmakud([ROOM], ['ws://127.0.0.1:%d/' % mock.port], extra=['--flush-ms', '100'])
    ck.check(mock.wait_line(r'^SENT %d ' % ROOM, 60), 'golden server sent everything')
    rows = harness.wait_db(d.db, 'SELECT count(*) FROM messages', lambda r: r and r[0][0] >= len(want), 30)
    ck.eq(rows[0][0] if rows else None, len(want), 'stored row count')
    ck.eq(h.stop_danmakud(d), 0, 'danmakud exits 0')
    ck.eq(harness.db_rows(d.db, 'SELECT end_reason FROM sessions ORDER BY id')[:1],
          [('server error 51 (data transfer error)',)], 'the error at the end closed the session')

    import sqlite3
    con = sqlite3.connect('file:%s?mode=ro' % d.db, uri=True)
    got = con.execute('SELECT type, uid, nick, level, text, cid, data, room_id FROM messages '
                      'ORDER BY id').fetchall()
    bad = []
    for i, (g, (wrow, wdata)) in enumerate(zip(got, want)):
        if tuple(g[:6]) != wrow:
            bad.append('row %d columns: got %r\n  want %r' % (i, tuple(g[:6]), wrow))
        try:
            data = json.loads(g[6])
        except ValueError as e:
            bad.append('row %d: data is not JSON: %s' % (i, e))
            continue
        if data != wdata:
            diff = {k: (data.get(k), wdata.get(k)) for k in set(data) | set(wdata)
                    if data.get(k) != wdata.get(k)}
            bad.append('row %d (%s) data differs: %r' % (i, wrow[0], diff))
        if g[7] != ROOM:
            bad.append('row %d: room_id %r' % (i, g[7]))
    ck.check(not bad, 'every stored row equals the independently derived row (%d rows)' % len(got),
             '\n'.join(bad[:20]))
    types = {r[0][0] for r in want}
    for t in ('chatmsg', 'comm_chatmsg', 'dgb', 'uenter', 'rss', 'spbc', 'anbc', 'rnewbc',
              'error', 'rri', 'pdrinfo', 'gbroadcast', 'cthn'):
        ck.check(t in types, 'golden set covers %s' % t)

    # Derived facts: the README's SQL against Python's reading of the same data.
    facts = con.execute('SELECT type, data, (%s), (%s), (%s), (%s) FROM messages ORDER BY id' %
                        (SQL_ROBOT, SQL_CST_MS, SQL_LIVE, SQL_DRID)).fetchall()
    fbad = [(i, f[0], f[2:], py_facts(f[0], json.loads(f[1])))
            for i, f in enumerate(facts) if tuple(f[2:]) != py_facts(f[0], json.loads(f[1]))]
    ck.check(not fbad, 'robot / cst_ms / live / drid SQL expressions agree with Python', fbad[:10])
    robots = sum(1 for f in facts if f[2])
    ck.check(robots >= 3, 'robot chats (no dms) are stored and flagged: %d' % robots)
    ck.check(any(f[3] == 1627874185000 for f in facts), 'cst in seconds normalised to ms')
    ck.check({'off', 'live', 'replay'} <= {f[4] for f in facts}, 'rss off, live and replay seen')
    ck.eq(con.execute("SELECT count(*) FROM messages WHERE NOT json_valid(data)").fetchone()[0], 0,
          'json_valid(data) for every row')
    con.close()

    # The sqlite3 CLI, as a user would run it.
    r = subprocess.run(['sqlite3', d.db, "SELECT json_extract(data,'$.bnn') FROM messages"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    ck.eq((r.returncode, r.stderr), (0, b''), 'sqlite3 json_extract(data, $.bnn) runs on every row')
    ck.eq(r.stdout.count(b'\n'), len(want), 'sqlite3 printed one line per row')
    log = d.stderr_text()
    ck.check(re.search(r'invalid UTF-8 sequence\(s\) replaced', log),
             'UTF-8 repairs are logged (debug)')
    ck.eq(len(re.findall(r'not stored: \S+ of another room', log)), foreign,
          'other rooms\' packets counted in the log')
    mock.signal(15)
    mock.wait(10)


if __name__ == '__main__':
    sys.exit(harness.Harness('golden').run(body))
