"""Helpers shared by the test_fault_*.py tests: fault_server.py control and
exact cid accounting. Standard library only; every wait bounded."""

import os
import re
import signal
import subprocess
import sys
import threading
import time

import harness

HERE = os.path.dirname(os.path.abspath(__file__))


class FaultProc(harness.Proc):
    """harness.Proc with a stdin pipe for fault_server.py commands."""

    def __init__(self, argv, name, stderr_path):
        self.name = name
        self.argv = argv
        self.lines = []
        self.cond = threading.Condition()
        self.stderr_path = stderr_path
        self._errf = open(stderr_path, 'wb')
        self.p = subprocess.Popen(argv, cwd=HERE, stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=self._errf)
        self.pid = self.p.pid
        self._lock = threading.Lock()
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def cmd(self, line, timeout=10):
        """Send one command and wait for its OK line."""
        word = line.split()[0].upper()
        with self._lock:
            before = len(self.matching(r'^OK %s$' % word))
            self.p.stdin.write((line + '\n').encode())
            self.p.stdin.flush()
            got = self.wait_line(r'^OK %s$' % word, timeout, count=before + 1)
            return len(got) > before

    def stats(self, timeout=10):
        """{room: (next, written, acked, conns)} from the server's STATS."""
        with self._lock:
            before = len(self.matching(r'^STATS_END '))
            start = len(self.lines)
            self.p.stdin.write(b'STATS\n')
            self.p.stdin.flush()
            self.wait_line(r'^STATS_END ', timeout, count=before + 1)
            with self.cond:
                lines = self.lines[start:]
        res = {}
        for l in lines:
            m = re.match(r'^STAT (\S+) (\d+) (\d+) (\d+) (\d+)$', l)
            if m:
                res[m.group(1)] = tuple(int(m.group(i)) for i in range(2, 6))
        return res

    def kill(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        super().kill()


def start_fault(h, *flags, name='fault'):
    argv = [sys.executable, os.path.join(HERE, 'fault_server.py')] + [str(f) for f in flags]
    errp = os.path.join(h.tmp, '%s-%d.err' % (name, len(h.procs)))
    p = FaultProc(argv, name, errp)
    h.procs.append(p)
    got = p.wait_line(r'^PORT \d+$', 30)
    if not got:
        raise RuntimeError('%s did not print PORT: %s' % (name, p.stderr_text()[-2000:]))
    p.port = int(got[0].split()[1])
    p.url = 'tcp://127.0.0.1:%d' % p.port
    return p


def free_port():
    import socket
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def cids(db, room):
    """Sorted list of the integer cids stored for room."""
    return [r[0] for r in harness.db_rows(
        db, 'SELECT CAST(cid AS INTEGER) FROM messages WHERE room_id=? AND cid IS NOT NULL '
            'ORDER BY 1', (room,))]


def holes(cs):
    """[(from, to)] ranges missing between 1 and max(cs); cs sorted, distinct."""
    res, want = [], 1
    for c in cs:
        if c > want:
            res.append((want, c - 1))
        want = c + 1
    return res


def read_wlog(path):
    """{room: [(last_cid, t_ns)]} from fault_server.py's write log."""
    res = {}
    if not os.path.exists(path):
        return res
    with open(path) as f:
        for line in f:
            w = line.split()
            if len(w) == 3:
                res.setdefault(w[0], []).append((int(w[1]), int(w[2])))
    return res


def stderr_lines(d, pattern):
    rx = re.compile(pattern)
    return [l for l in d.stderr_text().splitlines() if rx.search(l)]


def wait_stderr(d, pattern, timeout, count=1):
    def probe():
        got = stderr_lines(d, pattern)
        return got if len(got) >= count else None
    return harness.wait_until(probe, timeout, 0.1) or stderr_lines(d, pattern)


def run_parallel(h, scenarios):
    """Run scenario(h) callables in threads; a raising one is a failed check."""
    import traceback
    errs = []

    def wrap(fn):
        try:
            fn(h)
        except Exception as e:
            errs.append((fn.__name__, e, traceback.format_exc()))
    ts = [threading.Thread(target=wrap, args=(fn,), daemon=True) for fn in scenarios]
    for t in ts:
        t.start()
    for t in ts:
        t.join(600)
    for name, e, tb in errs:
        h.ck.check(False, '%s raised %s: %s' % (name, type(e).__name__, e), tb)


def thread_safe(ck):
    """Make a harness.Checker usable from several scenario threads."""
    lock = threading.RLock()
    check, note, skip = ck.check, ck.note, ck.skip

    def locked_check(*a, **k):
        with lock:
            return check(*a, **k)

    def locked_note(*a, **k):
        with lock:
            return note(*a, **k)
    def locked_skip(*a, **k):
        with lock:
            return skip(*a, **k)
    ck.check, ck.note, ck.skip = locked_check, locked_note, locked_skip
    return ck
