#!/usr/bin/python3
"""Storage trouble (issue 7), against the real binary and fault_server.py's
numbered messages:

1. lock: another process holds the write lock (BEGIN EXCLUSIVE) for --lock-s
   seconds (8 here, 30 with --long): danmakud keeps recording into memory,
   logs the trouble once, commits everything after the lock is gone (cids
   1..N, nothing lost), and its loop never waits: heartbeats (--heartbeat-s 1)
   keep reaching the server during the lock.
2. full: the database lives on a 16 MiB tmpfs that a filler file fills up;
   with [recorder] max_queue_mb = 1, rows stay queued up to the bound, then
   drops are counted, logged and shown in the stats line; memory stays
   bounded; deleting the filler makes recording resume by itself, and the
   missing cids are exactly the counted drops.
3. read-only: chmod a-w on the files while recording changes nothing (open
   descriptors keep working: nothing lost); starting on a read-only
   filesystem fails at once with a clear error and exit status 1.
4. deleted: the database files are deleted while recording: a clear error,
   no crash, a clean stop with exit status 1 naming the rows lost.
2-3 need `mount -t tmpfs` (root); without it they print TAP SKIP and the test exits 77
(meson: SKIP, which CI counts as a failure: it runs as root). The RSS bound of 2 is not
asserted in a sanitizer build (ASan keeps freed memory in quarantine): meson passes
--sanitized there; run by hand on a sanitizer build without it, that case skips.
"""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import harness
from fault_common import (start_fault, cids, holes, stderr_lines, wait_stderr, run_parallel,
                          thread_safe)

LONG = '--long' in sys.argv
LOCK_S = 30 if LONG else 8
SANITIZED = '--sanitized' in sys.argv


def config(h, name, extra=''):
    path = os.path.join(h.tmp, name + '.conf')
    with open(path, 'w') as f:
        f.write('[recorder]\nstats_interval_s = 1\n%s' % extra)
    return path


def sanitized(pid):
    try:
        with open('/proc/%d/maps' % pid) as f:
            return 'libasan' in f.read()
    except OSError:
        return False


def lock(h):
    ck = h.ck
    room = 7201
    rate = 400
    count = rate * (LOCK_S + 8)
    srv = start_fault(h, '--rate', rate, '--count', count, name='lock')
    d = h.start_danmakud([room], [srv.url], extra=['--flush-ms', '100', '--heartbeat-s', '1',
                                                   '-c', config(h, 'lock')], name='lock')
    rows = harness.wait_db(d.db, 'SELECT count(*) FROM messages', lambda r: r and r[0][0] >= rate, 30)
    ck.check(rows and rows[0][0] >= rate, 'lock: recording before the lock')
    con = sqlite3.connect(d.db, timeout=5, isolation_level=None)
    con.execute('BEGIN EXCLUSIVE')
    t0 = time.monotonic_ns()
    locked_rows = con.execute('SELECT count(*) FROM messages').fetchone()[0]
    time.sleep(LOCK_S)
    during = con.execute('SELECT count(*) FROM messages').fetchone()[0]
    t1 = time.monotonic_ns()
    con.execute('COMMIT')
    con.close()
    ck.eq(during, locked_rows, 'lock: nothing could be committed while another process held the lock')
    trouble = stderr_lines(d, r'storage: .*lock')
    ck.eq(len(trouble), 1, 'lock: the trouble is logged once (%s)' % (trouble[:1],))
    marks = [int(l.split()[2]) for l in srv.matching(r'^MRKL %d ' % room)]
    inside = [t for t in marks if t0 <= t <= t1]
    gaps = [(b - a) / 1e9 for a, b in zip([t0] + inside, inside + [t1])]
    ck.note('lock: %d heartbeats arrived during the %d s lock; longest silence %.2f s'
            % (len(inside), LOCK_S, max(gaps)))
    ck.check(len(inside) >= LOCK_S - 2 and max(gaps) < 2.5,
             'lock: the loop never waited on the lock (heartbeats every ~1 s throughout)')
    ck.check(srv.wait_line(r'^DONE ', LOCK_S + 30), 'lock: the server sent all %d messages' % count)
    rows = harness.wait_db(d.db, 'SELECT count(*) FROM messages', lambda r: r and r[0][0] >= count, 30)
    ck.check(wait_stderr(d, r'storage: recovered', 5), 'lock: recovery is logged')
    rc = h.stop_danmakud(d)
    ck.eq(rc, 0, 'lock: exit 0 on SIGTERM')
    cs = cids(d.db, room)
    ck.eq((len(cs), holes(cs)), (count, []), 'lock: zero loss: cids 1..%d all stored' % count)
    srv.signal(signal.SIGTERM)


class Tmpfs:
    def __init__(self, h, name, size):
        self.dir = os.path.join(h.tmp, name)
        os.makedirs(self.dir)
        r = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%s' % size, 'tmpfs', self.dir],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
        self.ok = r.returncode == 0
        self.why = r.stdout.decode(errors='replace').strip()

    def remount(self, mode):
        return subprocess.run(['mount', '-o', 'remount,' + mode, self.dir], timeout=20).returncode == 0

    def close(self):
        if self.ok:
            subprocess.run(['umount', '-l', self.dir], timeout=20)


def fill(path):
    """Write zeros to path until the filesystem is full."""
    chunk = b'\0' * 65536
    with open(path, 'wb', buffering=0) as f:
        try:
            while True:
                f.write(chunk)
        except OSError:
            pass
        try:
            while True:
                f.write(b'\0' * 512)
        except OSError:
            pass


def full(h):
    ck = h.ck
    fs = Tmpfs(h, 'full', '16m')
    if not fs.ok:
        ck.skip('full: database full, drops counted, recovery', 'cannot mount a tmpfs: %s' % fs.why)
        return
    try:
        room = 7202
        rate = 3000
        srv = start_fault(h, '--rate', rate, name='full')
        db = os.path.join(fs.dir, 'full.db')
        d = h.start_danmakud([room], [srv.url], db=db, name='full',
                             extra=['--flush-ms', '100', '-c', config(h, 'full', 'max_queue_mb = 1\n')])
        rows = harness.wait_db(db, 'SELECT count(*) FROM messages', lambda r: r and r[0][0] >= rate, 30)
        ck.check(rows and rows[0][0] >= rate, 'full: recording before the disk fills')
        rss0 = harness.vmrss_kib(d.pid) or 0
        filler = os.path.join(fs.dir, 'filler')
        fill(filler)
        got = wait_stderr(d, r'storage: .*(full|disk)', 20)
        ck.check(got, 'full: the full database is logged (%s)' % (got[:1],))
        drops = wait_stderr(d, r'dropped \d+ messages \(\d+ in total\)', 30)
        ck.check(drops, 'full: once the queue reaches max_queue_mb, drops are counted and logged')
        stats = wait_stderr(d, r'stats: .*dropped [1-9]', 10)
        ck.check(stats, 'full: the stats line shows the drops')
        time.sleep(1.5)
        rss1 = harness.vmrss_kib(d.pid) or 0
        ck.note('full: RSS %d kB before the disk filled, %d kB with the queue at its 1 MiB bound' % (rss0, rss1))
        if SANITIZED:
            ck.note('full: RSS bound not asserted in a sanitizer build (--sanitized)')
        elif sanitized(d.pid):
            ck.skip('full: memory stays bounded while dropping', 'ASan keeps freed memory in quarantine')
        else:
            ck.check(rss1 - rss0 < 16 * 1024, 'full: memory stays bounded while dropping (+%d kB)' % (rss1 - rss0))
        ck.check(d.alive(), 'full: still running')
        n_before = harness.db_scalar(db, 'SELECT count(*) FROM messages')
        os.unlink(filler)
        ck.check(wait_stderr(d, r'storage: recovered', 20), 'full: recording resumes by itself when space returns')
        rows = harness.wait_db(db, 'SELECT count(*) FROM messages', lambda r: r and r[0][0] >= n_before + 2 * rate, 30)
        ck.check(rows and rows[0][0] >= n_before + 2 * rate, 'full: new rows committed after the space returned')
        srv.cmd('PAUSE')
        time.sleep(0.5)
        rc = h.stop_danmakud(d)
        ck.eq(rc, 0, 'full: exit 0 on SIGTERM')
        cs = cids(db, room)
        missing = sum(b - a + 1 for a, b in holes(cs))
        totals = [int(m) for l in stderr_lines(d, r'dropped \d+ messages \(\d+ in total\)')
                  for m in re.findall(r'\((\d+) in total\)', l)]
        dropped = max(totals or [0])
        acc = [l for l in stderr_lines(d, r'room %d: stopped' % room)]
        m = re.search(r'received (\d+), stored (\d+)', acc[0]) if acc else None
        ck.note('full: %d cids stored, %d missing, %d drops counted' % (len(cs), missing, dropped))
        ck.check(dropped > 0 and missing == dropped, 'full: the missing cids are exactly the counted drops')
        ck.check(m and int(m.group(1)) - int(m.group(2)) == dropped and int(m.group(2)) == len(cs),
                 'full: received - stored = dropped, stored = rows (%s)' % (acc[:1],))
        ck.eq(len(holes(cs)), 1, 'full: one contiguous run of drops (newest rows dropped, queue kept in order)')
        srv.signal(signal.SIGTERM)
    finally:
        fs.close()


def readonly(h):
    ck = h.ck
    fs = Tmpfs(h, 'ro', '64m')
    if not fs.ok:
        ck.skip('read-only: clear error, no crash', 'cannot mount a tmpfs: %s' % fs.why)
        return
    try:
        room = 7203
        rate = 500
        srv = start_fault(h, '--rate', rate, name='ro')
        db = os.path.join(fs.dir, 'ro.db')
        d = h.start_danmakud([room], [srv.url], db=db, name='ro', extra=['--flush-ms', '100'])
        rows = harness.wait_db(db, 'SELECT count(*) FROM messages', lambda r: r and r[0][0] >= rate, 30)
        ck.check(rows and rows[0][0] >= rate, 'read-only: recording before the chmod')
        # Permissions are checked at open(): the open descriptors keep working.
        for suffix in ('', '-wal', '-shm'):
            os.chmod(db + suffix, 0o444)
        n0 = rows[0][0]
        rows = harness.wait_db(db, 'SELECT count(*) FROM messages', lambda r: r and r[0][0] >= n0 + rate, 30)
        ck.check(rows and rows[0][0] >= n0 + rate, 'read-only: chmod a-w while running: recording goes on')
        srv.cmd('PAUSE')
        time.sleep(0.5)
        rc = h.stop_danmakud(d)
        ck.eq(rc, 0, 'read-only: exit 0 on SIGTERM')
        cs = cids(db, room)
        ck.eq(holes(cs), [], 'read-only: nothing lost (1..%d)' % len(cs))
        acc = stderr_lines(d, r'room %d: stopped' % room)
        ck.check(acc and ('stored %d' % len(cs)) in acc[0], 'read-only: stored = rows (%s)' % (acc[:1],))
        # The filesystem made read-only: the next start refuses with a clear error.
        ck.check(fs.remount('ro'), 'read-only: filesystem remounted read-only')
        d2 = h.start_danmakud([room], [srv.url], db=db, name='ro2')
        rc = d2.wait(20)
        ck.eq(rc, 1, 'read-only: starting on a read-only database exits 1')
        got = stderr_lines(d2, r'read-only')
        ck.check(got, 'read-only: the error says the database is read-only (%s)' % (got[:1],))
        srv.signal(signal.SIGTERM)
    finally:
        fs.close()


def deleted(h):
    ck = h.ck
    room = 7204
    rate = 500
    srv = start_fault(h, '--rate', rate, name='del')
    d = h.start_danmakud([room], [srv.url], name='del', extra=['--flush-ms', '100'])
    rows = harness.wait_db(d.db, 'SELECT count(*) FROM messages', lambda r: r and r[0][0] >= rate, 30)
    ck.check(rows and rows[0][0] >= rate, 'deleted: recording before the delete')
    for suffix in ('', '-wal', '-shm'):
        try:
            os.unlink(d.db + suffix)
        except OSError:
            pass
    got = wait_stderr(d, r'storage: ', 20)
    ck.check(got, 'deleted: a clear storage error is logged (%s)' % (got[:1],))
    time.sleep(1.5)
    ck.check(d.alive(), 'deleted: no crash')
    ck.eq(len(stderr_lines(d, r'storage: the database file was deleted.*keeping')), 1,
          'deleted: logged once, not once per flush')
    rc = h.stop_danmakud(d)
    ck.eq(rc, 1, 'deleted: exit status 1 (rows could not be committed)')
    lost = stderr_lines(d, r'rows lost')
    ck.check(lost, 'deleted: the stop says how many rows were lost (%s)' % (lost[:1],))
    srv.signal(signal.SIGTERM)


def body(h):
    thread_safe(h.ck)
    run_parallel(h, [lock, full, readonly, deleted])


if __name__ == '__main__':
    for flag in ('--long', '--sanitized'):
        if flag in sys.argv:
            sys.argv.remove(flag)
    sys.exit(harness.Harness('fault_storage').run(body))
