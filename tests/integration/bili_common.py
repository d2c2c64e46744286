"""Helpers for the Bilibili black-box tests (issue 11): starting mock_bilibili.js, reading its
log and scripts, a Python Wbi signer and packet codec written from bilibili-protocol.md §2.3
and §3 (independent of the mock's JavaScript and of danmakud's C code), expectations computed
from the fixtures, and the danmakud configuration the tests run with.

Standard library only; brotli (not in Python's library) goes through one `node` child that
runs Node's zlib.brotliDecompressSync, checked against the real captures in
test_mock_bilibili.py.
"""

import base64
import collections
import hashlib
import json
import os
import re
import ssl
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib

import harness

HERE = harness.HERE
FIXTURE_ROOM = 77777777774
ROOM_KEYS = ('roomid', 'room_id', 'real_roomid')
TEST_IMG = '7cd084941338484aae1ad9425b84077c'
TEST_SUB = '4932caff0ff746eab6f01bf08b70ac45'
UA = 'danmakud-test/1.0'
DEFAULT_ROOMS = {76: (14073662, 76), 14073662: (14073662, 76), 21452505: (21452505, 0),
                 5553263: (5553263, 0)}

# --------------------------------------------------------------- Wbi (protocol §2.3)
MIXIN = [46, 47, 18, 2, 53, 8, 23, 32, 15, 50, 10, 31, 58, 3, 45, 35, 27, 43, 5, 49, 33, 9, 42,
         19, 29, 28, 14, 39, 12, 38, 41, 13, 37, 48, 7, 16, 24, 55, 40, 61, 26, 17, 0, 1, 60, 51,
         30, 4, 22, 25, 54, 21, 56, 59, 6, 63, 57, 62, 11, 36, 20, 34, 44, 52]


def mixin_key(img, sub):
    raw = img + sub
    return ''.join(raw[i] for i in MIXIN)[:32]


def wbi_query(params):
    """params: [(key, value)]. Values lose !'()*; sorted by key; percent-encoded like JS
    encodeURIComponent (space %20, upper-case hex)."""
    items = sorted((str(k), re.sub(r"[!'()*]", '', str(v))) for k, v in params)
    return '&'.join(urllib.parse.quote(k, safe='-_.~') + '=' + urllib.parse.quote(v, safe='-_.~')
                    for k, v in items)


def wbi_sign(params, img, sub):
    return hashlib.md5((wbi_query(params) + mixin_key(img, sub)).encode('utf-8')).hexdigest()


def signed_query(params, img, sub, wts=None):
    params = list(params) + [('wts', int(time.time()) if wts is None else wts)]
    return wbi_query(params) + '&w_rid=' + wbi_sign(params, img, sub)


def keys_from_nav(nav):
    img = nav['data']['wbi_img']['img_url'].rsplit('/', 1)[1].split('.')[0]
    sub = nav['data']['wbi_img']['sub_url'].rsplit('/', 1)[1].split('.')[0]
    return img, sub


# --------------------------------------------------------------- packets (protocol §3)
HDR = struct.Struct('>IHHII')  # packet_len, header_len, ver, op, seq


def packet(op, body=b'', ver=0, seq=1):
    if isinstance(body, str):
        body = body.encode('utf-8')
    return HDR.pack(16 + len(body), 16, ver, op, seq) + body


def split_packets(buf, allow_trailing=False):
    """Packets of one complete buffer: ([(ver, op, seq, body)], trailing bytes). Trailing
    bytes that do not form a packet are an error unless allow_trailing (the heartbeat echo)."""
    out, i = [], 0
    while len(buf) - i >= 16:
        n, hl, ver, op, seq = HDR.unpack_from(buf, i)
        if hl != 16 or n < 16 or i + n > len(buf):
            break
        out.append((ver, op, seq, bytes(buf[i + 16:i + n])))
        i += n
    rest = bytes(buf[i:])
    if rest and not allow_trailing:
        raise ValueError('%d bytes after the last packet' % len(rest))
    return out, rest


class StreamReader:
    """Packets from a byte stream cut anywhere (raw TCP)."""

    def __init__(self):
        self.buf = b''

    def feed(self, data):
        self.buf += data
        out = []
        while len(self.buf) >= 16:
            n, hl, ver, op, seq = HDR.unpack_from(self.buf, 0)
            if hl != 16 or n < 16 or n > (1 << 20):
                raise ValueError('bad header: len %d header_len %d' % (n, hl))
            if len(self.buf) < n:
                break
            out.append((ver, op, seq, self.buf[16:n]))
            self.buf = self.buf[n:]
        return out


class NodeBrotli:
    """One `node` child decompressing brotli for us, a line of base64 each way. Registered
    in h.procs so that the harness kills it by PID."""
    SCRIPT = ("const z=require('zlib');const rl=require('readline').createInterface({input:process.stdin});"
              "rl.on('line',(l)=>{let o;try{o=z.brotliDecompressSync(Buffer.from(l,'base64')).toString('base64')}"
              "catch(e){o='!'+e.message}process.stdout.write(o+'\\n')});")

    def __init__(self, h):
        self.name = 'node-brotli'
        self.lines = []
        self.p = subprocess.Popen([h.args.node, '-e', self.SCRIPT], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.pid = self.p.pid
        self.lock = threading.Lock()
        h.procs.append(self)

    def decompress(self, data):
        with self.lock:
            self.p.stdin.write(base64.b64encode(data) + b'\n')
            self.p.stdin.flush()
            line = self.p.stdout.readline().decode().strip()
        if not line or line.startswith('!'):
            raise ValueError('brotli: %s' % (line[1:] or 'node helper died'))
        return base64.b64decode(line)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait(10)

    def stderr_text(self):
        return ''


def unpack_messages(packets, brotli):
    """Expands op-5 batches: [(outer_ver, op, body)] with every inner packet of a zlib/brotli
    body, in order, plus the sizes of the batches [(ver, n_inner)]."""
    out, batches = [], []
    for ver, op, seq, body in packets:
        if op == 5 and ver in (2, 3):
            raw = zlib.decompress(body) if ver == 2 else brotli.decompress(body)
            inner, _ = split_packets(raw)
            batches.append((ver, len(inner)))
            for iver, iop, iseq, ibody in inner:
                if iver not in (0, 1):
                    raise ValueError('nested batch (ver %d) inside a ver %d batch' % (iver, ver))
                out.append((ver, iop, ibody))
        else:
            out.append((ver, op, body))
    return out, batches


# --------------------------------------------------------------- protobuf (SEND_GIFT_V2)
def pb_fields(b):
    """[(field, wire, value)]: value an int for varints, bytes otherwise."""
    out, i = [], 0

    def varint():
        nonlocal i
        v = s = 0
        while True:
            c = b[i]
            i += 1
            v |= (c & 0x7f) << s
            s += 7
            if c < 0x80:
                return v
    while i < len(b):
        k = varint()
        f, w = k >> 3, k & 7
        if w == 0:
            v = varint()
        elif w == 2:
            n = varint()
            v = bytes(b[i:i + n])
            i += n
        elif w in (1, 5):
            n = 8 if w == 1 else 4
            v = bytes(b[i:i + n])
            i += n
        else:
            raise ValueError('wire type %d' % w)
        out.append((f, w, v))
    return out


def gift_v2_list(pb_b64):
    """[(gift_name, num, tid)] of a SEND_GIFT_V2 data.pb (gift_list = field 10; name 2, num 3,
    tid 9), from protocol §5.2."""
    out = []
    for f, w, v in pb_fields(base64.b64decode(pb_b64)):
        if f == 10 and w == 2:
            d = {ff: vv for ff, ww, vv in pb_fields(v)}
            out.append((d.get(2, b'').decode('utf-8'), d.get(3, 1), d.get(9, b'').decode('utf-8')))
    return out


# --------------------------------------------------------------- mock process
def start_mock(h, *flags, tls=False, name='bili-mock'):
    argv = [h.args.node, os.path.join(HERE, 'mock_bilibili.js'), '--shared', h.shared]
    if tls:
        c = h.certs()
        argv += ['--key', c['key'], '--cert', c['cert']]
    argv += [str(f) for f in flags]
    if not os.path.isdir(os.path.join(HERE, 'node_modules', 'ws')):
        raise RuntimeError('tests/integration/node_modules/ws is missing: ' + harness.NPM_HINT)
    p = harness.Proc(argv, name, cwd=HERE,
                     stderr_path=os.path.join(h.tmp, '%s-%d.err' % (name, len(h.procs))))
    h.procs.append(p)
    got = p.wait_line(r'^\{"ready":true', 30)
    if not got:
        raise RuntimeError('%s did not get ready: %s' % (name, p.stderr_text()[-2000:]))
    p.ports = json.loads(got[0])
    p.api = 'http://127.0.0.1:%d' % p.ports['http']
    p.api_tls = 'https://127.0.0.1:%d' % p.ports['https'] if p.ports['https'] else None
    return p


def http_get(url, headers=None, ca=None, timeout=10):
    """(status, parsed JSON body)."""
    ctx = ssl.create_default_context(cafile=ca) if url.startswith('https:') else None
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
            return r.status, json.loads(r.read().decode('utf-8'))
    except urllib.error.HTTPError as e:
        body = e.read().decode('utf-8', 'replace')
        try:
            return e.code, json.loads(body)
        except ValueError:
            return e.code, body


def mock_get(mock, path):
    st, body = http_get(mock.api + path)
    if st != 200:
        raise RuntimeError('%s: HTTP %d %r' % (path, st, body))
    return body


def mock_log(mock):
    return mock_get(mock, '/_mock/log')


def mock_script(mock, room):
    return mock_get(mock, '/_mock/script?room=%d' % room)['items']


def api_calls(log, path_end):
    return [r for r in log['requests'] if r['path'].endswith(path_end)]


# --------------------------------------------------------------- expectations
def load_fixtures(shared):
    d = os.path.join(shared, 'fixtures', 'bilibili')
    out = {}
    for name in sorted(os.listdir(d)):
        if name.endswith('.json'):
            with open(os.path.join(d, name), encoding='utf-8') as f:
                out[name] = json.load(f)
    return out


def rewrite_room(o, room):
    """The fixture with its room (77777777774 in roomid/room_id/real_roomid, number or
    string) replaced by room, as the mock must send it."""
    if isinstance(o, dict):
        r = {}
        for k, v in o.items():
            if k in ROOM_KEYS and v == FIXTURE_ROOM:
                r[k] = room
            elif k in ROOM_KEYS and v == str(FIXTURE_ROOM):
                r[k] = str(room)
            else:
                r[k] = rewrite_room(v, room)
        return r
    if isinstance(o, list):
        return [rewrite_room(v, room) for v in o]
    return o


def prefix(cmd):
    return cmd.split(':', 1)[0]


def check_script(ck, shared, room, items):
    """Verifies the mock's script for room against the fixtures, independently of the mock:
    every fixture exactly once with the room rewritten, the ack'd super chat, the chats that
    name the room (distinct id_str), the one duplicate, the extra gifts."""
    fx = load_fixtures(shared)
    bad = []
    seen = collections.Counter()
    bodies = [json.loads(it['body']) for it in items]
    for it, o in zip(items, bodies):
        if o.get('cmd') != it['cmd']:
            bad.append('cmd %r vs body cmd %r' % (it['cmd'], o.get('cmd')))
        if it.get('file'):
            seen[it['file']] += 1
            want = rewrite_room(fx[it['file']], room)
            if it.get('msg_id'):
                extra = {k: o.pop(k, None) for k in ('msg_id', 'p_is_ack', 'p_msg_type', 'send_time')}
                if extra['msg_id'] != it['msg_id'] or extra['p_is_ack'] is not True or extra['p_msg_type'] != 1 \
                        or not isinstance(extra['send_time'], int):
                    bad.append('%s: ack fields %r' % (it['file'], extra))
            if o != want:
                bad.append('%s: body differs from the fixture (room %d)' % (it['file'], room))
    ck.eq(sorted(seen.items()), sorted((n, 1) for n in fx), 'room %d script: every fixture exactly once' % room)
    chats = [(it, o) for it, o in zip(items, bodies) if it['kind'] == 'chat']
    ids = [json.loads(o['info'][0][15]['extra'])['id_str'] for it, o in chats]
    ck.check(len(chats) >= 2 and len(set(ids)) == len(ids) and
             all(('room %d ' % room) in o['info'][1] and o['info'][1] == it['text'] and
                 json.loads(o['info'][0][15]['extra'])['content'] == o['info'][1] for it, o in chats),
             'room %d script: %d generated chats name the room, distinct id_str' % (room, len(chats)))
    dups = [(i, it) for i, it in enumerate(items) if it['kind'] == 'dup']
    ck.check(len(dups) == 1 and any(x['body'] == dups[0][1]['body'] and x['kind'] == 'chat'
                                     for x in items[:dups[0][0]]),
             'room %d script: one chat sent a second time, byte for byte, after the first' % room)
    acks = [it for it in items if it.get('msg_id')]
    ck.check(len(acks) == 1 and acks[0]['cmd'] == 'SUPER_CHAT_MESSAGE', 'room %d script: one ack\'d super chat' % room)
    gifts = [(it, o) for it, o in zip(items, bodies) if it['kind'] in ('gift', 'gift_v2')]
    nums = []
    for it, o in gifts:
        if it['kind'] == 'gift':
            nums.append(o['data']['num'])
        else:
            nums += [n for _, n, _ in gift_v2_list(o['data']['pb'])]
    ck.check(len(gifts) == 2 and all(n > 1 for n in nums) and sorted(nums) == sorted(it['num'] for it, _ in gifts),
             'room %d script: extra SEND_GIFT and SEND_GIFT_V2 with nums %r' % (room, nums))
    ck.check(not bad, 'room %d script: bodies are the fixtures' % room, '\n'.join(bad[:20]))


class Expect:
    """What danmakud must store for one room from the mock's script."""

    def __init__(self, items):
        self.items = items
        stored = [it for it in items if it['kind'] != 'dup']
        self.stored = stored
        self.bodies = [json.loads(it['body']) for it in stored]
        self.counts = collections.Counter(prefix(it['cmd']) for it in stored)
        self.total = len(stored)
        self.chats = [(o['info'][1], o['info'][2][0], o['info'][2][1])
                      for it, o in zip(stored, self.bodies) if prefix(it['cmd']) == 'DANMU_MSG']
        self.gift_sums = collections.Counter()
        for it, o in zip(stored, self.bodies):
            if it['cmd'] == 'SEND_GIFT':
                self.gift_sums[o['data']['giftName']] += o['data']['num']
            elif it['cmd'] == 'SEND_GIFT_V2':
                for name, num, _ in gift_v2_list(o['data']['pb']):
                    self.gift_sums[name] += num
        self.ack_ids = [it['msg_id'] for it in items if it.get('msg_id')]


def contains(big, small):
    """big has every key (recursively) of small with an equal value; extra keys allowed."""
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and contains(big[k], v) for k, v in small.items())
    if isinstance(small, list):
        return isinstance(big, list) and len(big) == len(small) and all(contains(b, s) for b, s in zip(big, small))
    def number(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool)
    if number(big) and number(small):
        return big == small
    return type(big) is type(small) and big == small


# --------------------------------------------------------------- danmakud configuration
def write_conf(h, name, db, bili, rooms, douyu_servers=None, recorder=None):
    """The config contract of issue 11. bili: the [bilibili] keys; rooms: [(key, label|None)]."""
    lines = ['[recorder]', 'database = %s' % db, 'flush_ms = 100']
    for k, v in (recorder or {}).items():
        lines.append('%s = %s' % (k, v))
    if douyu_servers:
        lines += ['[douyu]', 'servers = %s' % ' '.join(douyu_servers)]
    lines.append('[bilibili]')
    for k, v in bili.items():
        lines.append('%s = %s' % (k, v))
    lines.append('[rooms]')
    for key, label in rooms:
        lines.append('%s = %s' % (key, label) if label else str(key))
    path = os.path.join(h.tmp, name + '.conf')
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def bili_keys(mock, transport='ws', **over):
    ports = mock.ports
    api = 'http://127.0.0.1:%d' % ports['http']
    k = {'api': api, 'live_api': api, 'transport': transport,
         'servers': 'ws://127.0.0.1:%d/sub' % ports['ws'], 'user_agent': UA,
         'api_interval_ms': 200, 'heartbeat_s': 1}
    k.update(over)
    return {a: b for a, b in k.items() if b is not None}


def start_recorder(h, conf, name, env=None, extra=()):
    return h.start_danmakud([], [], extra=['-c', conf, '--flush-ms', '100'] + list(extra), name=name, env=env)


def wait_alive(d, fn, timeout, interval=0.2):
    """Poll fn() until truthy, the timeout, or danmakud's exit (no point waiting then)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = fn()
        except Exception:  # noqa: BLE001 - a table or column not there yet
            v = None
        if v or time.monotonic() >= deadline or not d.alive():
            return v
        time.sleep(interval)


def columns(db, table):
    return [r[1] for r in harness.db_rows(db, 'PRAGMA table_info(%s)' % table)]


def bili_counts(db, room):
    """{cmd prefix: rows} of one Bilibili room."""
    c = collections.Counter()
    for t, n in harness.db_rows(db, "SELECT type, count(*) FROM messages WHERE platform='bilibili' AND room_id=? "
                                    "GROUP BY type", (room,)):
        c[prefix(t)] += n
    return c


POPULARITY_TYPE = re.compile(r'popularity|heartbeat', re.I)


def split_popularity(counts, expect):
    """(counts of the script's types, {type: rows} of types the script has not: popularity)."""
    other = {t: n for t, n in counts.items() if t not in expect.counts}
    return collections.Counter({t: n for t, n in counts.items() if t in expect.counts}), other


def room_done(db, room, expect):
    got, _ = split_popularity(bili_counts(db, room), expect)
    return got == expect.counts


def check_spacing(ck, log, interval_ms, label, tolerance_ms=20):
    calls = api_calls(log, '/getDanmuInfo')
    ts = [r['t'] for r in calls]
    gaps = [b - a for a, b in zip(ts, ts[1:])]
    ck.check(all(g >= interval_ms - tolerance_ms for g in gaps),
             '%s: getDanmuInfo calls at least api_interval_ms=%d apart (%d calls, gaps ms %s)' %
             (label, interval_ms, len(calls), gaps[:12]))
    return calls


def check_user_agent(ck, log, label, ua=UA):
    uas = collections.Counter(r['ua'] for r in log['requests'])
    ck.check(log['requests'] and set(uas) == {ua}, '%s: every API request has User-Agent %r' % (label, ua), dict(uas))
    ws = [c for c in log['conns'] if c['transport'] in ('ws', 'wss')]
    ck.check(all(c['ua'] == ua for c in ws), '%s: every websocket upgrade has User-Agent %r' % (label, ua),
             [c['ua'] for c in ws])


# --------------------------------------------------------------- recording runs
class ThreadSampler:
    """Samples /proc/PID/task while a test runs: the most threads seen."""

    def __init__(self, pid):
        self.dir = '/proc/%d/task' % pid
        self.max = 0
        self.samples = 0
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop_ev.is_set():
            try:
                n = len(os.listdir(self.dir))
            except OSError:
                return
            self.max = max(self.max, n)
            self.samples += 1
            time.sleep(0.05)

    def stop(self):
        self.stop_ev.set()
        self.t.join(5)


def schema_ok(ck, db, label=''):
    """The schema-v3 columns these tests read. False (and a failed check) when missing."""
    want = {'messages': ('platform',), 'rooms': ('platform', 'short_id'), 'sessions': ('platform',)}
    missing = ['%s.%s' % (t, c) for t, cs in want.items() for c in cs if c not in columns(db, t)]
    return ck.check(not missing, '%sschema v3: platform columns in messages, rooms, sessions; rooms.short_id' % label,
                    'missing: %s' % ', '.join(missing))


def wait_recorded(h, d, mock, expects, timeout=60, heartbeats=0, label=''):
    """Waits until the mock sent every room's script, each room has its script stored and
    (heartbeats > 0) the mock saw that many heartbeats per room. Returns True when all did."""
    ck = h.ck
    rooms = sorted(expects)
    sent = wait_alive(d, lambda: len({l.split()[1] for l in mock.matching(r'^SENT ')} & {str(r) for r in rooms})
                      == len(rooms), timeout)
    ck.check(sent, '%smock sent its script to every Bilibili room %s' % (label, rooms),
             [l for l in mock.lines if not l.startswith('HB ')][-20:])
    done = wait_alive(d, lambda: all(room_done(d.db, r, expects[r]) for r in rooms), 30)
    if not done:
        for r in rooms:
            try:
                got, pop = split_popularity(bili_counts(d.db, r), expects[r])
            except Exception as e:  # noqa: BLE001 - no database or no platform column
                ck.note('room %d: cannot count rows: %s' % (r, e))
                continue
            diff = sorted((t, got.get(t, 0), n) for t, n in expects[r].counts.items() if got.get(t, 0) != n)
            ck.note('room %d: %d of %d types differ (type, stored, sent): %r; other types %r'
                    % (r, len(diff), len(expects[r].counts), diff[:8], pop))
    ck.check(done, '%severy Bilibili room has its script stored' % label)
    if heartbeats:
        hb = wait_alive(d, lambda: all(len(mock.matching(r'^HB %d ' % r)) >= heartbeats for r in rooms), 30)
        ck.check(hb, '%sat least %d heartbeats per room reached the mock' % (label, heartbeats))
    return bool(sent and done)


def check_bili_room(h, db, room, expect, log, ws_port=None, short_id=0, label=None, sessions=1,
                    end_reasons=('shutdown',), exact=True, token=True, popularity=True):
    """Per-room checks on a stopped recorder's database against the mock's script and log."""
    ck = h.ck
    tag = label or 'bilibili %d' % room
    counts = bili_counts(db, room)
    got, pop = split_popularity(counts, expect)
    if exact:
        ck.eq(dict(sorted(got.items())), dict(sorted(expect.counts.items())),
              '%s: rows per cmd (prefix) = what the mock sent, the duplicate once' % tag)
    else:
        ck.check(all(got.get(t, 0) >= n for t, n in expect.counts.items()),
                 '%s: every command the mock sent stored at least once' % tag, dict(got))
    chats = harness.db_rows(db, "SELECT text, uid, nick FROM messages WHERE platform='bilibili' AND room_id=? "
                                "AND type LIKE 'DANMU_MSG%' ORDER BY id", (room,))
    ck.eq(chats, expect.chats, '%s: DANMU_MSG (text, uid, nick) in order, the duplicate stored once' % tag)
    dup = [it for it in expect.items if it['kind'] == 'dup'][0]
    ck.eq(harness.db_scalar(db, "SELECT count(*) FROM messages WHERE platform='bilibili' AND room_id=? AND text=?",
                            (room, dup['text'])), 1, '%s: the chat sent twice (same id_str) is one row' % tag)
    ck.check(counts.get('SUPER_CHAT_MESSAGE', 0) >= 1 and counts.get('SUPER_CHAT_MESSAGE_JPN', 0) >= 1,
             '%s: SUPER_CHAT_MESSAGE and SUPER_CHAT_MESSAGE_JPN both stored' % tag)
    # data holds the whole command: every field the server sent, equal after json.loads.
    rows = [(t, d) for t, d in harness.db_rows(db, "SELECT type, data FROM messages WHERE platform='bilibili' "
                                                   "AND room_id=? ORDER BY id", (room,)) if prefix(t) in expect.counts]
    bad = []
    if exact:
        if len(rows) != len(expect.stored):
            bad.append('%d rows, %d expected' % (len(rows), len(expect.stored)))
        for i, ((t, data), it, body) in enumerate(zip(rows, expect.stored, expect.bodies)):
            # type is the command without its ':...' suffix; the full cmd stays in data.cmd.
            if t != it['cmd'].split(':')[0]:
                bad.append('row %d: type %r, sent cmd %r' % (i, t, it['cmd']))
            elif json.loads(data).get('cmd') != it['cmd']:
                bad.append('row %d: data.cmd %r, sent cmd %r' % (i, json.loads(data).get('cmd'), it['cmd']))
            elif not contains(json.loads(data), body):
                bad.append('row %d (%s): data lacks a field of the command or changed it' % (i, t))
    ck.check(not bad, '%s: type is the cmd without its suffix, data.cmd the full cmd and data every field, in arrival order' % tag,
             '\n'.join(bad[:20]))
    if exact and popularity:
        # Popularity (op 3) only on change: between runs-1 (a last change racing SIGTERM) and runs.
        pops = [x['popularity'] for x in log['heartbeats'] if x['room'] == room]
        runs = sum(1 for i, v in enumerate(pops) if i == 0 or v != pops[i - 1])
        n_pop = sum(pop.values())
        ck.check(len(pop) == 1 and all(POPULARITY_TYPE.search(t) for t in pop),
                 '%s: one extra row type, for popularity (%r)' % (tag, pop))
        ck.check(len(pops) >= 4 and max(1, runs - 1) <= n_pop <= runs < len(pops),
                 '%s: %d popularity rows for %d heartbeat replies holding %d values: stored on change only' %
                 (tag, n_pop, len(pops), runs))
    gifts = dict(harness.db_rows(db, "SELECT gift_name, sum(count) FROM gifts WHERE platform='bilibili' AND room_id=? "
                                     "GROUP BY gift_name", (room,)))
    ck.check(all(gifts.get(n) == c for n, c in expect.gift_sums.items()),
             '%s: gifts view sums SEND_GIFT num and the decoded SEND_GIFT_V2 num per gift' % tag,
             'got %r want %r' % (gifts, dict(expect.gift_sums)))
    sess = harness.db_rows(db, 'SELECT id, platform, joined_at, ended_at, end_reason, messages, server FROM sessions '
                               'WHERE room_id=? ORDER BY id', (room,))
    if sessions is not None:
        ck.eq(len(sess), sessions, '%s: %d session row(s)' % (tag, sessions))
    else:
        ck.check(len(sess) >= 1, '%s: %d session row(s)' % (tag, len(sess)))
    for i, (sid, plat, joined, ended, reason, n, server) in enumerate(sess):
        ck.check(plat == 'bilibili' and joined is not None and ended is not None,
                 '%s session %d: platform bilibili, joined, ended' % (tag, sid), (plat, joined, ended))
        if i < len(end_reasons) and end_reasons[i] is not None:
            want = end_reasons[i]
            ck.check(reason == want if isinstance(want, str) else want(reason),
                     '%s session %d: end_reason %r' % (tag, sid, reason))
        ck.eq(n, harness.db_scalar(db, 'SELECT count(*) FROM messages WHERE session_id=?', (sid,)),
              '%s session %d: sessions.messages = its rows' % (tag, sid))
        if ws_port:
            ck.check(str(ws_port) in (server or ''), '%s session %d: server names the chat port %d' % (tag, sid, ws_port),
                     server)
    rooms = harness.db_rows(db, "SELECT platform, room_id, coalesce(short_id, 0) FROM rooms WHERE room_id=? "
                                "AND platform='bilibili'", (room,))
    ck.eq(rooms, [('bilibili', room, short_id)], '%s: rooms row (platform, real id, short id)' % tag)
    # what the mock saw
    auths = [a for a in log['auths'] if a['room'] == room]
    tokens = {r.get('issued_token') for r in log['requests'] if r.get('issued_token')
              and r['query'].get('id') == str(room)}
    buvids = {r.get('issued_buvid3') for r in log['requests'] if r.get('issued_buvid3')}
    ok = [a for a in auths if a['ok']]
    ck.check(len(ok) >= 1 and all(a['body'].get('roomid') == room and a['body'].get('platform') == 'web' and
                                  a['body'].get('type') == 2 and a['body'].get('protover') in (2, 3)
                                  for a in auths),
             '%s: auth with the real room id, platform web, type 2, protover 2|3' % tag, auths[-1:] if auths else None)
    if token:
        ck.check(ok and all(a['body'].get('key') in tokens for a in ok),
                 '%s: auth carried a token getDanmuInfo issued for this room' % tag)
    else:
        ck.check(ok and all('key' not in a['body'] for a in ok), '%s: auth without a key (no token)' % tag)
    ck.check(ok and all(a['body'].get('buvid') in buvids for a in ok), '%s: auth carried the issued buvid3' % tag)
    acks = [a for a in log['acks'] if a['room'] == room]
    want_ack = [{'msg_id': m, 'cmd': 'SUPER_CHAT_MESSAGE', 'p_msg_type': 1} for m in expect.ack_ids]
    ck.check(want_ack and acks and all(a['body'] == want_ack[0] and a['known'] for a in acks),
             '%s: the mock got the ACK (op 24) for the ack\'d super chat' % tag, acks)
    return sess


def check_views(h, db, rooms_expect):
    """The schema-v3 views carry a platform column and Bilibili rows."""
    ck = h.ck
    for view in ('chat', 'gifts', 'superchats', 'live', 'daily', 'room_stats'):
        ck.check('platform' in columns(db, view), 'view %s has a platform column' % view, columns(db, view))
    for room, exp in rooms_expect.items():
        n = harness.db_scalar(db, "SELECT count(*) FROM messages WHERE platform='bilibili' AND room_id=?", (room,))
        chat = harness.db_rows(db, "SELECT text FROM chat WHERE platform='bilibili' AND room_id=? ORDER BY ts, id",
                               (room,))
        ck.eq([t for t, in chat], [t for t, _, _ in exp.chats], 'view chat: room %d\'s Bilibili chats' % room)
        ck.check(harness.db_scalar(db, "SELECT count(*) FROM superchats WHERE platform='bilibili' AND room_id=?",
                                   (room,)) >= 1, 'view superchats: room %d has rows' % room)
        ck.check(harness.db_scalar(db, "SELECT count(*) FROM live WHERE platform='bilibili' AND room_id=?",
                                   (room,)) >= 1, 'view live: room %d has rows (LIVE, PREPARING)' % room)
        ck.eq(harness.db_rows(db, "SELECT sum(messages), sum(chats) FROM daily WHERE platform='bilibili' AND room_id=?",
                              (room,)), [(n, len(exp.chats))], 'view daily: room %d messages and chats' % room)
        ck.eq(harness.db_rows(db, "SELECT messages FROM room_stats WHERE platform='bilibili' AND room_id=?", (room,)),
              [(n,)], 'view room_stats: room %d, messages' % room)


def settled_log(mock, timeout=5):
    """The mock's log once every chat connection it had has closed (after danmakud stopped)."""
    log = mock_log(mock)
    deadline = time.monotonic() + timeout
    while any(c['closed'] is None for c in log['conns']) and time.monotonic() < deadline:
        time.sleep(0.1)
        log = mock_log(mock)
    return log


def record_transport(h, transport, rooms, name, tls=False, mock_flags=(), label=None, argv_rooms=()):
    """Bilibili rooms only, over one transport (ws | wss | tcp), recorded to the end and
    checked room by room. rooms: [(config key, real id, short id)]; those whose key is in
    argv_rooms are given on the command line instead of in the config."""
    ck = h.ck
    tag = label or transport
    # Over TLS the names are "localhost": the certificate's name is what danmakud checks
    # (mbedTLS 2.28 matches DNS names only, so an IP literal cannot pass the check).
    if tls:
        mock_flags = list(mock_flags) + ['--hosts', 'localhost,localhost']
    mock = start_mock(h, '--hb-timeout', 5, *mock_flags, tls=tls)
    db = os.path.join(h.tmp, name + '.db')
    over = {}
    extra = []
    if tls:
        api = 'https://localhost:%d' % mock.ports['https']
        over = {'api': api, 'live_api': api}
        extra = ['--ca-file', h.certs()['ca']]
    conf = write_conf(h, name, db, bili_keys(mock, transport, **over),
                      [(k, None) for k, _, _ in rooms if k not in argv_rooms])
    expects = {real: Expect(mock_script(mock, real)) for _, real, _ in rooms}
    d = start_recorder(h, conf, name, extra=extra + list(argv_rooms))
    wait_recorded(h, d, mock, expects, heartbeats=5, label=tag + ': ')
    rc = h.stop_danmakud(d)
    ck.eq(rc, 0, '%s: danmakud exits 0 on SIGTERM' % tag)
    if not schema_ok(ck, db, tag + ': '):
        return mock, d, None
    log = settled_log(mock)
    port = mock.ports[transport]
    for key, real, short in rooms:
        check_bili_room(h, db, real, expects[real], log, ws_port=port, short_id=short,
                        label='%s %s (room %d)' % (tag, key, real))
    conns = log['conns']
    ck.check(conns and all(c['transport'] == transport for c in conns),
             '%s: every chat connection used the configured transport' % tag, [c['transport'] for c in conns])
    ck.check(all(c['why'] and c['why'].startswith('client_close') for c in conns),
             '%s: every connection closed by danmakud' % tag, [(c['room'], c['why']) for c in conns])
    if transport == 'tcp':
        ck.check(all(c['tcp']['writes'] > 50 for c in conns), '%s: the mock cut its bytes into >50 writes each (%s)'
                 % (tag, [c['tcp']['writes'] for c in conns]))
    if tls:
        ck.check(all(r['scheme'] == 'https' for r in log['requests']), '%s: every API call over https' % tag)
    check_user_agent(ck, log, tag)
    ck.eq(mock.matching('^PROTO_ERROR'), [], '%s: mock saw no protocol errors' % tag)
    return mock, d, log
