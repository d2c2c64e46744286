"""Shared helpers for danmakud's black-box integration tests.

Standard library only (plus the sqlite3 module). Every wait is bounded; every
process started here is killed by its PID in a finally block (Harness.close).

Independent of danmakud's C code: the Douyu packet and STT codecs below are
written from douyu-protocol.md §2-§3 and are used to compute what danmakud
should have stored from the S13-live capture.
"""

import argparse
import base64
import collections
import json
import os
import re
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_TYPE = 689
SERVER_TYPE = 690
CONTROL_TYPES = {'loginres', 'pingreq', 'mrkl', 'keeplive'}
NPM_HINT = 'run npm ci --prefix tests/integration'


# --------------------------------------------------------------- protocol
def pack(body, msg_type=CLIENT_TYPE):
    raw = body.encode('utf-8') if isinstance(body, str) else body
    n = 8 + len(raw) + 1
    return struct.pack('<IIHBB', n, n, msg_type, 0, 0) + raw + b'\0'


class PacketReader:
    """Reassembles packets from a byte stream; feed() returns [(type, body_str)]."""

    def __init__(self):
        self.buf = b''

    def feed(self, data):
        self.buf += data
        out = []
        while len(self.buf) >= 12:
            l1, l2, typ, enc, res = struct.unpack_from('<IIHBB', self.buf, 0)
            if l1 != l2 or l1 < 9 or l1 > (1 << 20):
                raise ValueError('bad packet header %d/%d' % (l1, l2))
            if len(self.buf) < 4 + l1:
                break
            if self.buf[4 + l1 - 1] != 0:
                raise ValueError('packet not NUL-terminated')
            out.append((typ, self.buf[12:4 + l1 - 1].decode('utf-8')))
            self.buf = self.buf[4 + l1:]
        return out


def stt_unescape(s):
    out, i = [], 0
    while i < len(s):
        if s[i] == '@' and i + 1 < len(s) and s[i + 1] in 'AS':
            out.append('@' if s[i + 1] == 'A' else '/')
            i += 2
        else:
            out.append(s[i])
            i += 1
    return ''.join(out)


def stt_escape(s):
    return s.replace('@', '@A').replace('/', '@S')


def stt_decode(body):
    """Top-level [(key, value)] pairs, in order."""
    pairs = []
    for seg in body.split('/'):
        at = seg.find('@=')
        if at <= 0:
            continue
        pairs.append((stt_unescape(seg[:at]), stt_unescape(seg[at + 2:])))
    return pairs


def stt_encode(pairs):
    return ''.join(stt_escape(k) + '@=' + stt_escape(v) + '/' for k, v in pairs)


def stt_get(pairs, key, default=None):
    val = default
    for k, v in pairs:
        if k == key:
            val = v
    return val


# --------------------------------------------------------------- capture
def capture_dir(shared):
    return os.path.join(shared, 'fixtures', 'douyu', 'danmaku', 'S13-live')


def capture_server_packets(shared):
    """All 561 server packet bodies of S13-live, decoded to pairs, in order."""
    reader = PacketReader()
    packets = []
    with open(os.path.join(capture_dir(shared), 'frames.jsonl'), encoding='utf-8') as f:
        for line in f:
            if not line.strip():
                continue
            o = json.loads(line)
            if o['dir'] != 'in':
                continue
            for typ, body in reader.feed(base64.b64decode(o['b64'])):
                assert typ == SERVER_TYPE, typ
                packets.append(stt_decode(body))
    return packets


def expected_stored(shared, room):
    """The packets danmakud must store for `room` when the mock replays the
    capture with rid 9999 rewritten to `room`: pairs lists, in order."""
    room = str(room)
    out = []
    for pairs in capture_server_packets(shared):
        typ = stt_get(pairs, 'type')
        if typ in CONTROL_TYPES:
            continue
        pairs = [(k, room if (k == 'rid' and v == '9999') else v) for k, v in pairs]
        rid = stt_get(pairs, 'rid')
        if rid not in (None, '', '0') and rid != room:
            continue  # another room's message
        out.append(pairs)
    return out


def expected_type_counts(shared, room):
    return collections.Counter(stt_get(p, 'type') for p in expected_stored(shared, room))


def expected_chats(shared):
    """[(cid, nick, uid, text)] from expected.json, in order."""
    with open(os.path.join(capture_dir(shared), 'expected.json'), encoding='utf-8') as f:
        msgs = json.load(f)['value']['messages']
    out = []
    for m in msgs:
        cid = m['messageId']
        if cid.startswith('douyu:'):
            cid = cid[len('douyu:'):]
        out.append((cid, m['userName'], str(m['userId']), m['message']))
    return out


# --------------------------------------------------------------- results
class Checker:
    """Collects results; prints 'ok'/'not ok' lines as it goes."""

    def __init__(self, name):
        self.name = name
        self.n = 0
        self.failed = []
        self.skipped = []

    def check(self, cond, msg, detail=None):
        self.n += 1
        if cond:
            print('ok %d - %s' % (self.n, msg), flush=True)
        else:
            print('not ok %d - %s' % (self.n, msg), flush=True)
            if detail is not None:
                for line in str(detail).splitlines()[:40]:
                    print('#   ' + line, flush=True)
            self.failed.append(msg)
        return bool(cond)

    def eq(self, got, want, msg):
        return self.check(got == want, msg, None if got == want else 'got:  %r\nwant: %r' % (got, want))

    def skip(self, msg, why):
        """A case that cannot run here. It prints a TAP SKIP line, and the whole test then
        exits 77 (meson: SKIP) unless a case failed: a skipped case never counts as a pass."""
        self.n += 1
        print('ok %d - %s # SKIP %s' % (self.n, msg, why), flush=True)
        self.skipped.append(msg)

    def note(self, msg):
        for line in str(msg).splitlines():
            print('# ' + line, flush=True)

    def summary(self):
        """Prints the totals; returns the exit status: 1 if a case failed, else 77 (GNU
        "skipped", which meson reports as SKIP) if a case was skipped, else 0."""
        passed = self.n - len(self.failed) - len(self.skipped)
        print('%d passed, %d failed, %d skipped' % (passed, len(self.failed), len(self.skipped)),
              flush=True)
        if self.failed:
            return 1
        return 77 if self.skipped else 0


def vmrss_kib(pid):
    """VmRSS of process pid in KiB, from /proc; None if it cannot be read."""
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def wait_until(fn, timeout, interval=0.1):
    """Poll fn() until truthy or timeout; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = fn()
        except (sqlite3.Error, OSError):
            v = None
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


# --------------------------------------------------------------- processes
class Proc:
    """A child process whose stdout lines are collected by a thread."""

    def __init__(self, argv, name, cwd=None, env=None, stderr_path=None):
        self.name = name
        self.argv = argv
        self.lines = []
        self.cond = threading.Condition()
        self.stderr_path = stderr_path
        self._errf = open(stderr_path, 'wb') if stderr_path else subprocess.DEVNULL
        self.p = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=self._errf)
        self.pid = self.p.pid
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        for raw in self.p.stdout:
            line = raw.decode('utf-8', 'replace').rstrip('\n')
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def matching(self, pattern):
        rx = re.compile(pattern)
        with self.cond:
            return [l for l in self.lines if rx.search(l)]

    def wait_line(self, pattern, timeout, count=1):
        """Wait until `count` stdout lines match; returns the matches (maybe fewer)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [l for l in self.lines if rx.search(l)]
                left = deadline - time.monotonic()
                if len(got) >= count or left <= 0 or (self.p.poll() is not None and not self._t.is_alive()):
                    return got
                self.cond.wait(min(left, 0.2))

    def alive(self):
        return self.p.poll() is None

    def signal(self, sig):
        if self.p.poll() is None:
            os.kill(self.pid, sig)

    def wait(self, timeout):
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return None

    def kill(self):
        if self.p.poll() is None:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.wait(10)
        if self._errf is not subprocess.DEVNULL:
            self._errf.close()

    def stderr_text(self):
        if not self.stderr_path or not os.path.exists(self.stderr_path):
            return ''
        with open(self.stderr_path, 'rb') as f:
            return f.read().decode('utf-8', 'replace')


class Harness:
    def __init__(self, name, argv=None, need_danmakud=True):
        ap = argparse.ArgumentParser()
        ap.add_argument('--danmakud', default=os.environ.get('DANMAKUD'))
        ap.add_argument('--shared', default=os.path.join(HERE, '..', '..', '..', 'shared'))
        ap.add_argument('--node', default=shutil.which('node') or 'node')
        ap.add_argument('--keep', action='store_true', help='keep the temp dir')
        self.args, self.extra = ap.parse_known_args(argv)
        self.shared = os.path.abspath(self.args.shared)
        if self.args.danmakud:  # meson passes it relative to the build dir, our cwd
            self.args.danmakud = os.path.abspath(self.args.danmakud)
        self.ck = Checker(name)
        self.tmp = tempfile.mkdtemp(prefix='dmk-it-%s-' % name)
        self.procs = []
        self.daemons = []
        self._certs = None
        if need_danmakud and (not self.args.danmakud or not os.access(self.args.danmakud, os.X_OK)):
            print('Bail out! danmakud binary not found: %r' % self.args.danmakud, flush=True)
            sys.exit(1)

    # ---- cleanup
    def close(self):
        for p in reversed(self.procs):
            p.kill()
        if self.ck.failed:
            for d in self.daemons:
                self.ck.note('---- danmakud stderr (%s, pid %d) ----' % (' '.join(d.argv[1:])[:200], d.pid))
                text = d.stderr_text()
                lines = text.splitlines()
                if len(lines) > 200:
                    self.ck.note('... %d lines omitted ...' % (len(lines) - 200))
                    lines = lines[-200:]
                self.ck.note('\n'.join(lines))
            for p in self.procs:
                if p not in self.daemons:
                    self.ck.note('---- %s stdout (last 30 lines) ----' % p.name)
                    self.ck.note('\n'.join(p.lines[-30:]))
                    err = p.stderr_text()
                    if err:
                        self.ck.note('---- %s stderr ----\n%s' % (p.name, err[-3000:]))
        if self.args.keep or os.environ.get('DMK_KEEP'):
            self.ck.note('kept ' + self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def run(self, body):
        """Run body(self) and return the exit code; always cleans up."""
        try:
            body(self)
        except Exception as e:  # a crashed test is a failed test
            import traceback
            self.ck.check(False, 'test body raised %s: %s' % (type(e).__name__, e), traceback.format_exc())
        finally:
            self.close()
        return self.ck.summary()

    # ---- certificates
    def certs(self):
        """Makes (once) a CA, a server cert for localhost/127.0.0.1/::1, a cert
        for another name, and a second CA. Returns a dict of paths."""
        if self._certs:
            return self._certs
        d = os.path.join(self.tmp, 'pki')
        os.makedirs(d)
        c = {k: os.path.join(d, k + '.pem') for k in
             ('ca', 'ca_key', 'key', 'cert', 'other_cert', 'ca2', 'ca2_key')}

        def ossl(*a):
            r = subprocess.run(['openssl'] + list(a), cwd=d, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=60)
            if r.returncode != 0:
                raise RuntimeError('openssl %s failed: %s' % (' '.join(a), r.stdout.decode()))

        for ca, key, cn in (('ca', 'ca_key', 'danmakud test CA'), ('ca2', 'ca2_key', 'unrelated CA')):
            ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', c[key], '-out', c[ca],
                 '-days', '2', '-subj', '/CN=' + cn,
                 '-addext', 'basicConstraints=critical,CA:TRUE',
                 '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
        ossl('genrsa', '-out', c['key'], '2048')
        for out, san, cn in ((c['cert'], 'DNS:localhost,IP:127.0.0.1,IP:::1', 'localhost'),
                             (c['other_cert'], 'DNS:other.invalid', 'other.invalid')):
            csr = out + '.csr'
            ext = out + '.ext'
            with open(ext, 'w') as f:
                f.write('subjectAltName=%s\nbasicConstraints=CA:FALSE\n'
                        'keyUsage=critical,digitalSignature,keyEncipherment\n'
                        'extendedKeyUsage=serverAuth\n' % san)
            ossl('req', '-new', '-key', c['key'], '-out', csr, '-subj', '/CN=' + cn)
            ossl('x509', '-req', '-in', csr, '-CA', c['ca'], '-CAkey', c['ca_key'],
                 '-CAcreateserial', '-out', out, '-days', '2', '-extfile', ext)
        self._certs = c
        return c

    # ---- mocks
    def start_node_mock(self, *flags, plain=False, cert=None):
        node_modules = os.path.join(HERE, 'node_modules', 'ws')
        if not os.path.isdir(node_modules):
            raise RuntimeError('tests/integration/node_modules/ws is missing: ' + NPM_HINT)
        argv = [self.args.node, os.path.join(HERE, 'mock_douyu.js'), '--shared', self.shared]
        if plain:
            argv.append('--plain')
        else:
            c = self.certs()
            argv += ['--key', c['key'], '--cert', cert or c['cert']]
        argv += [str(f) for f in flags]
        return self._start_mock(argv, 'node-mock')

    def start_py_mock(self, *flags, mode='ws', cert=None):
        argv = [sys.executable, os.path.join(HERE, 'mock_douyu.py'), '--shared', self.shared,
                '--mode', mode]
        if mode == 'wss':
            c = self.certs()
            argv += ['--key', c['key'], '--cert', cert or c['cert']]
        argv += [str(f) for f in flags]
        return self._start_mock(argv, 'py-mock')

    def _start_mock(self, argv, name):
        errp = os.path.join(self.tmp, '%s-%d.err' % (name, len(self.procs)))
        p = Proc(argv, name, cwd=HERE, stderr_path=errp)
        self.procs.append(p)
        got = p.wait_line(r'^PORT \d+$', 30)
        if not got:
            raise RuntimeError('%s did not print PORT: %s' % (name, p.stderr_text()[-2000:]))
        p.port = int(got[0].split()[1])
        return p

    # ---- danmakud
    def start_danmakud(self, rooms, servers, extra=(), db=None, name='d', env=None):
        """env: the whole environment of the child (None: ours)."""
        db = db or os.path.join(self.tmp, name + '.db')
        argv = [self.args.danmakud, '-v', '-d', db]
        for s in servers:
            argv += ['-s', s]
        argv += list(extra) + [str(r) for r in rooms]
        p = Proc(argv, 'danmakud', cwd=self.tmp, env=env,
                 stderr_path=os.path.join(self.tmp, name + '.stderr'))
        p.db = db
        self.procs.append(p)
        self.daemons.append(p)
        return p

    def run_danmakud(self, args, timeout=20):
        """Runs danmakud to completion (for CLI checks): (rc, stdout, stderr)."""
        r = subprocess.run([self.args.danmakud] + list(args), cwd=self.tmp, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
        return r.returncode, r.stdout.decode('utf-8', 'replace'), r.stderr.decode('utf-8', 'replace')

    def stop_danmakud(self, d, timeout=20):
        """SIGTERM and wait; returns the exit code (None if it hung, then killed)."""
        d.signal(signal.SIGTERM)
        rc = d.wait(timeout)
        if rc is None:
            self.ck.note('danmakud did not exit within %ss of SIGTERM; killing' % timeout)
            d.kill()
        return rc


# --------------------------------------------------------------- database
def db_rows(path, sql, params=()):
    """Query with a separate read-only connection; [] if the db is not there yet."""
    if not os.path.exists(path):
        return []
    con = sqlite3.connect('file:%s?mode=ro' % path, uri=True, timeout=5)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def db_scalar(path, sql, params=()):
    rows = db_rows(path, sql, params)
    return rows[0][0] if rows else None


def wait_db(path, sql, pred, timeout, params=()):
    """Poll until pred(rows) holds; returns the last rows."""
    last = [None]

    def probe():
        try:
            last[0] = db_rows(path, sql, params)
        except sqlite3.Error:
            return False
        return pred(last[0])
    wait_until(probe, timeout, 0.2)
    return last[0]


# --------------------------------------------------------------- shared checks
def check_room_recording(h, db, room, expect_sessions=1, end_reasons=('shutdown',), exact=True):
    """The standard per-room assertions against the S13 replay."""
    ck = h.ck
    want = expected_stored(h.shared, room)
    want_counts = collections.Counter(stt_get(p, 'type') for p in want)
    got_counts = collections.Counter(dict(db_rows(
        db, 'SELECT type, count(*) FROM messages WHERE room_id=? GROUP BY type', (room,))))
    if exact:
        ck.eq(dict(sorted(got_counts.items())), dict(sorted(want_counts.items())),
              'room %s: stored message counts per type match the capture' % room)
    else:
        ck.eq(got_counts.get('chatmsg', 0), want_counts['chatmsg'], 'room %s: chatmsg count' % room)
        ck.check(all(got_counts.get(t, 0) >= n for t, n in want_counts.items())
                 and set(got_counts) <= set(want_counts),
                 'room %s: every capture type stored at least once, nothing extra' % room,
                 'got %r want >= %r' % (dict(got_counts), dict(want_counts)))
    ctl = [t for t in got_counts if t in CONTROL_TYPES]
    ck.check(not ctl, 'room %s: no control messages stored' % room, ctl)

    chats = db_rows(db, "SELECT cid, nick, CAST(uid AS TEXT), text FROM messages "
                        "WHERE room_id=? AND type='chatmsg' ORDER BY id", (room,))
    ck.eq(chats, expected_chats(h.shared), 'room %s: chatmsg (cid, nick, uid, text) match expected.json in order' % room)
    dup = db_rows(db, 'SELECT cid, count(*) FROM messages WHERE room_id=? AND cid IS NOT NULL '
                      'GROUP BY cid HAVING count(*) > 1', (room,))
    ck.eq(dup, [], 'room %s: no duplicate cids' % room)

    # The data column must be a lossless JSON object of the top-level fields.
    rows = db_rows(db, 'SELECT type, data, level, uid FROM messages WHERE room_id=? ORDER BY id', (room,))
    bad = []
    if exact:
        for i, (row, pairs) in enumerate(zip(rows, want)):
            try:
                data = json.loads(row[1])
            except ValueError as e:
                bad.append('row %d: data is not JSON: %s' % (i, e))
                continue
            if not isinstance(data, dict):
                bad.append('row %d: data is not an object' % i)
                continue
            if row[0] != stt_get(pairs, 'type'):
                bad.append('row %d: type %r, capture says %r' % (i, row[0], stt_get(pairs, 'type')))
                continue
            if row[0] == 'chatmsg':
                for col, key, got in (('level', 'level', row[2]), ('uid', 'uid', row[3])):
                    wire = stt_get(pairs, key)
                    if wire not in (None, '') and str(got) != wire:
                        bad.append('row %d (chatmsg): column %s=%r, wire %s@=%s' % (i, col, got, key, wire))
            for k, v in pairs:
                if k not in data:
                    bad.append('row %d (%s): key %r missing from data' % (i, row[0], k))
                elif '@' not in v and not isinstance(data[k], (dict, list)) and \
                        (data[k] if isinstance(data[k], str) else json.dumps(data[k])) != v:
                    bad.append('row %d (%s): data[%r]=%r, wire value %r' % (i, row[0], k, data[k], v))
            if len(bad) > 20:
                break
    else:
        for i, row in enumerate(rows):
            try:
                if not isinstance(json.loads(row[1]), dict):
                    bad.append('row %d: data not an object' % i)
            except ValueError as e:
                bad.append('row %d: data is not JSON: %s' % (i, e))
    ck.check(not bad, 'room %s: data column holds every wire field losslessly' % room, '\n'.join(bad[:20]))

    sess = db_rows(db, 'SELECT id, joined_at, ended_at, end_reason, messages, server FROM sessions '
                       'WHERE room_id=? ORDER BY id', (room,))
    ck.eq(len(sess), expect_sessions, 'room %s: %d session row(s)' % (room, expect_sessions))
    for i, s in enumerate(sess):
        sid, joined, ended, reason, nmsg, server = s
        ck.check(joined is not None, 'room %s session %d: joined_at set' % (room, sid))
        ck.check(ended is not None, 'room %s session %d: ended_at set' % (room, sid))
        if i < len(end_reasons) and end_reasons[i] is not None:
            want_r = end_reasons[i]
            ok = (reason == want_r) if isinstance(want_r, str) else want_r(reason)
            ck.check(ok, 'room %s session %d: end_reason %r' % (room, sid, reason))
        stored = db_scalar(db, 'SELECT count(*) FROM messages WHERE session_id=?', (sid,))
        ck.eq(nmsg, stored, 'room %s session %d: sessions.messages equals stored rows' % (room, sid))
    return sess


def record_and_stop(h, mock, urls, rooms, extra=(), timeout=90, name='d'):
    """Runs danmakud on `rooms` against `mock` until every room has its full
    replay stored, then SIGTERM. Returns (danmakud Proc, exit code)."""
    ck = h.ck
    d = h.start_danmakud(rooms, urls, extra=list(extra) + ['--flush-ms', '100'], name=name)
    want_total = {str(r): sum(expected_type_counts(h.shared, r).values()) for r in rooms}
    sent = mock.wait_line(r'^SENT ', timeout, count=len(rooms))
    ck.eq(len(sent), len(rooms), 'mock finished its replay for every room')
    rows = wait_db(d.db, 'SELECT room_id, count(*) FROM messages GROUP BY room_id',
                   lambda rs: {str(r): n for r, n in rs} == want_total, 30)
    ck.eq({str(r): n for r, n in (rows or [])}, want_total, 'all replayed messages stored')
    ck.check(d.alive(), 'danmakud still running before SIGTERM')
    rc = h.stop_danmakud(d)
    ck.eq(rc, 0, 'danmakud exits 0 on SIGTERM')
    got = mock.wait_line(r'^LOGOUT ', 10, count=len(rooms))
    ck.eq(sorted(l.split()[1] for l in got), sorted(str(r) for r in rooms),
          'mock saw a logout for each room')
    # A websocket goodbye ends with our close frame (1000), which under TLS must go out
    # before the close_notify, or the server never reads it (1006).
    closes = mock.wait_line(r'^CLOSE ', 10, count=len(rooms))
    codes = [l.split()[2] for l in closes]
    ck.check(len(codes) == len(rooms) and all(c in ('1000', 'tcp') for c in codes),
             'mock saw each connection end with a websocket close 1000, or a TCP close (%s)' %
             ' '.join(codes))
    ck.eq(mock.matching('PROTO_ERROR'), [], 'mock saw no client protocol errors')
    return d, rc
