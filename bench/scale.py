#!/usr/bin/env python3
"""Scale of the database: danmakud's ingest into an empty database vs one that holds --rows.

  bench/scale.py [--rows 50000000] [--db FILE] [--rooms 8] [--messages 100000] [options]

(a) empty: a database danmakud creates at start. (b) big: FILE (made once by bench/gen_db.c
when it does not exist: --rows messages across 1,000 rooms, see gen_db.c's header; kept for
the next run, which then measures at once). Both record the same --rooms busiest rooms of the
big database from the same flood (bench/flood_server.js, --random-ids cid,uid by default so
the unique (platform, room_id, cid) and the (uid, ts) indexes get keys at random places, as
from real traffic), one after the other, --repeat times alternating; the median run of each
is reported: messages/s committed (first join to the last row visible, as bench/run), CPU per
message (utime+stime of danmakud), RSS at the end, bytes read/written (/proc/<pid>/io), and
the ratio big/empty.

Each run adds its rows to FILE; --restore deletes them again after the run (and the sessions
it opened), so that every run starts from the same rows; the row count before every run is
printed. The insert trigger of messages_fts is made what the binary under
test makes in a new database (present or absent), so that both runs feed the full-text index
the same way.

--tiny: --rows 100000 --messages 3000 --rooms 2 --repeat 1, in a temporary directory; checks
that every run committed all rows and exits non-zero otherwise; asserts no timing.
"""

import argparse
import json
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TICKS = os.sysconf('SC_CLK_TCK')


def cpu_seconds(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def proc_status(pid, key):
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1])
    return 0


def proc_io(pid):
    """read_bytes / write_bytes: what reached the block layer (page cache misses, writeback)."""
    out = {}
    try:
        with open('/proc/%d/io' % pid) as f:
            for line in f:
                k, v = line.split(':')
                out[k] = int(v)
    except OSError:
        pass
    return out


class Proc:
    """A child whose stdout lines are collected by a thread."""

    def __init__(self, argv, errpath):
        self.lines = []
        self.cond = threading.Condition()
        self.errf = open(errpath, 'wb')
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=self.errf)
        self.pid = self.p.pid
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.p.stdout:
            with self.cond:
                self.lines.append(raw.decode('utf-8', 'replace').rstrip('\n'))
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def count(self, prefix):
        with self.cond:
            return sum(1 for l in self.lines if l.startswith(prefix))

    def wait_lines(self, prefix, n, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [l for l in self.lines if l.startswith(prefix)]
                left = deadline - time.monotonic()
                if len(got) >= n or left <= 0 or self.p.poll() is not None:
                    return got
                self.cond.wait(min(left, 0.2))

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=60):
        if self.p.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.p.wait(10)
        self.errf.close()
        return self.p.returncode


def db_query(path, sql, args=()):
    con = sqlite3.connect(path, timeout=30)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def remove_db(path):
    for ext in ('', '-wal', '-shm'):
        if os.path.exists(path + ext):
            os.remove(path + ext)


class Scale:
    def __init__(self, a):
        self.a = a
        self.tmp = tempfile.mkdtemp(prefix='dmk-scale-', dir=a.workdir)
        self.procs = []
        self.failures = []

    def log(self, msg):
        print('# [load %.1f] %s' % (os.getloadavg()[0], msg), flush=True)

    def fail(self, msg):
        self.failures.append(msg)
        print('FAILED: ' + msg, flush=True)

    def setup(self):
        a = self.a
        if not os.path.isdir(os.path.join(HERE, 'node_modules', 'ws')):
            subprocess.run(['npm', 'ci', '--no-audit', '--no-fund', '--loglevel=error'],
                           cwd=HERE, check=True)
        if a.danmakud:
            self.danmakud = os.path.abspath(a.danmakud)
        else:
            bd = os.path.join(ROOT, 'build-bench')
            if not os.path.isdir(bd):
                subprocess.run(['meson', 'setup', bd, ROOT, '--buildtype=release',
                                '-Dtests=false', '--wrap-mode=nodownload'], check=True,
                               stdout=subprocess.DEVNULL)
            subprocess.run(['ninja', '-C', bd], check=True, stdout=subprocess.DEVNULL)
            self.danmakud = os.path.join(bd, 'danmakud')
        self.gen = os.path.join(self.tmp, 'gen_db')
        subprocess.run(['cc', '-O2', '-o', self.gen, os.path.join(HERE, 'gen_db.c'),
                        '-lsqlite3', '-lm'], check=True)

    def close(self):
        for p in reversed(self.procs):
            p.stop(signal.SIGKILL, 10)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def create_empty(self, path):
        """A database as this danmakud creates it: a short run against a closed port."""
        d = Proc([self.danmakud, '-q', '-d', path, '-s', 'ws://127.0.0.1:1/', '1'],
                 os.path.join(self.tmp, 'create.err'))
        self.procs.append(d)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and d.alive():
            try:
                if db_query(path, "SELECT count(*) FROM rooms")[0][0] > 0:
                    break
            except sqlite3.Error:
                pass
            time.sleep(0.05)
        if d.stop(signal.SIGTERM) != 0:
            raise RuntimeError('danmakud did not create %s' % path)

    def insert_trigger(self):
        """The messages_fts_insert trigger as this binary creates it (None: it has none)."""
        p = os.path.join(self.tmp, 'probe.db')
        self.create_empty(p)
        r = db_query(p, "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND "
                        "name = 'messages_fts_insert'")
        remove_db(p)
        return r[0][0] if r else None

    def big_db(self):
        a = self.a
        path = a.db or os.path.join(self.tmp, 'big.db')
        if not os.path.exists(path):
            self.create_empty(path)
            t0 = time.monotonic()
            self.log('generating %s: %d rows' % (path, a.rows))
            r = subprocess.run([self.gen, path, str(a.rows)], check=True,
                               stdout=subprocess.PIPE, text=True)
            self.log('%s (%.0f s wall)' % (r.stdout.strip().replace('\n', '; '),
                                          time.monotonic() - t0))
        trig = self.insert_trigger()
        con = sqlite3.connect(path, timeout=30)
        try:
            has_fts = con.execute("SELECT count(*) FROM sqlite_master WHERE name = "
                                  "'messages_fts'").fetchone()[0]
            con.execute('DROP TRIGGER IF EXISTS messages_fts_insert')
            if trig and has_fts:
                con.execute(trig)
            con.commit()
        finally:
            con.close()
        self.log('full-text insert trigger in the big database: %s' % (
            'present (as this binary creates it)' if trig and has_fts else 'absent'))
        return path

    def rooms(self, path):
        return [r[0] for r in db_query(
            path, 'SELECT room_id FROM sessions GROUP BY room_id ORDER BY sum(messages) DESC, '
                  'room_id LIMIT ?', (self.a.rooms,))]

    def flood(self, name):
        a = self.a
        argv = ['node', os.path.join(HERE, 'flood_server.js'), '--mode', a.mode,
                '--messages', str(a.messages), '--per-frame', str(a.per_frame),
                '--shared', a.shared]
        if a.random_ids:
            argv += ['--random-ids', a.random_ids]
        p = Proc(argv, os.path.join(self.tmp, name + '-flood.err'))
        self.procs.append(p)
        got = p.wait_lines('PORT ', 1, 30)
        if not got:
            raise RuntimeError('flood server did not start')
        p.url = '%s://localhost:%s/' % (a.mode, got[0].split()[1])
        return p

    def wait_rows(self, db, base, total, d, fl, nrooms):
        """Poll max(id) until base + total rows, or the count stays put 20 s after the flood
        sent everything (a checkpoint in the big database can hold the writer
        for seconds). Returns (monotonic time of the last change, rows added)."""
        deadline = time.monotonic() + self.a.timeout
        last, t_last, still = base, time.monotonic(), time.monotonic()
        con = None
        while time.monotonic() < deadline and d.alive():
            try:
                if con is None:
                    con = sqlite3.connect('file:%s?mode=ro' % db, uri=True, timeout=5)
                n = con.execute('SELECT coalesce(max(id), 0) FROM messages').fetchone()[0]
                if n != last:
                    last, t_last, still = n, time.monotonic(), time.monotonic()
            except sqlite3.Error:
                con = None
            if last - base >= total:
                break
            if fl.count('DONE ') >= nrooms and time.monotonic() - still > 20:
                break
            time.sleep(0.02)
        if con:
            con.close()
        return t_last, last - base

    def restore(self, db, r):
        """Delete what run r added (the FTS delete trigger unindexes its chat rows)."""
        t0 = time.monotonic()
        con = sqlite3.connect(db, timeout=30)
        try:
            con.execute('DELETE FROM messages WHERE id > ?', (r['rows_before'],))
            con.execute('DELETE FROM sessions WHERE id > ?', (r['sessions_before'],))
            con.commit()
            con.execute('PRAGMA wal_checkpoint(TRUNCATE)')
        finally:
            con.close()
        self.log('restored %s to %d rows in %.0f s' % (db, r['rows_before'],
                                                       time.monotonic() - t0))

    def run(self, label, db, rooms):
        a = self.a
        base = sbase = 0
        if os.path.exists(db):
            base = db_query(db, 'SELECT coalesce(max(id), 0) FROM messages')[0][0]
            sbase = db_query(db, 'SELECT coalesce(max(id), 0) FROM sessions')[0][0]
        total = len(rooms) * a.messages
        fl = self.flood(label)
        argv = [self.danmakud, '-q', '-d', db, '-s', fl.url]
        d = Proc(argv + [str(r) for r in rooms], os.path.join(self.tmp, label + '-d.err'))
        self.procs.append(d)
        joins = fl.wait_lines('JOIN ', len(rooms), 60)
        if len(joins) < len(rooms):
            self.fail('%s: %d of %d rooms joined' % (label, len(joins), len(rooms)))
            d.stop(signal.SIGKILL)
            fl.stop()
            return None
        t_join = time.monotonic() - (time.time() * 1000 - min(
            int(l.split()[2]) for l in joins)) / 1000.0
        cpu0, io0 = cpu_seconds(d.pid), proc_io(d.pid)
        t_done, got = self.wait_rows(db, base, total, d, fl, len(rooms))
        cpu1 = cpu_seconds(d.pid) if d.alive() else float('nan')
        io1 = proc_io(d.pid)
        rss = proc_status(d.pid, 'VmRSS') if d.alive() else 0
        hwm = proc_status(d.pid, 'VmHWM') if d.alive() else 0
        rc = d.stop(signal.SIGTERM, 120)
        fl.stop()
        if rc != 0:
            self.fail('%s: danmakud exited with %r' % (label, rc))
        if got < total:
            self.fail('%s: %d of %d rows committed' % (label, got, total))
            if got == 0:
                return None
        secs = t_done - t_join
        r = {'label': label, 'rows_before': base, 'sessions_before': sbase, 'rows': got, 'seconds': secs,
             'rate': got / secs, 'cpu_s': cpu1 - cpu0, 'us_per_msg': (cpu1 - cpu0) / got * 1e6,
             'rss_mib': rss / 1024.0, 'hwm_mib': hwm / 1024.0,
             'read_mib': (io1.get('read_bytes', 0) - io0.get('read_bytes', 0)) / 1048576.0,
             'write_mib': (io1.get('write_bytes', 0) - io0.get('write_bytes', 0)) / 1048576.0}
        self.log('%s: %s' % (label, json.dumps(r)))
        return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--tiny', action='store_true', help='a tiny run that proves the harness')
    ap.add_argument('--rows', type=int, default=50000000, help='rows of the big database')
    ap.add_argument('--db', help='the big database (generated when missing; default: a '
                    'temporary one, deleted at the end)')
    ap.add_argument('--workdir', default=None, help='where temporary files go (default $TMPDIR)')
    ap.add_argument('--danmakud', help='binary to measure (default: build-bench/, release)')
    ap.add_argument('--shared', default=os.path.join(ROOT, '..', 'shared'))
    ap.add_argument('--rooms', type=int, default=8, help='the busiest rooms of the big db')
    ap.add_argument('--messages', type=int, default=100000, help='per room per run')
    ap.add_argument('--per-frame', type=int, default=16)
    ap.add_argument('--mode', default='ws', choices=('ws', 'tcp'),
                    help='ws: less CPU than wss outside the store, so storage costs show more')
    ap.add_argument('--random-ids', default='cid,uid',
                    help="flood_server.js --random-ids ('' : its sequential cids, sample uids)")
    ap.add_argument('--repeat', type=int, default=1, help='alternate empty/big this many times')
    ap.add_argument('--only', default='empty,big')
    ap.add_argument('--restore', action='store_true',
                    help='delete the rows each big run added, after it')
    ap.add_argument('--label', default='', help='a tag for this configuration in the output')
    ap.add_argument('--timeout', type=float, default=600)
    ap.add_argument('--json', help='also write the results here')
    a = ap.parse_args()
    if a.tiny:
        a.rows, a.messages, a.rooms, a.repeat, a.timeout = 100000, 3000, 2, 1, 120
    a.shared = os.path.abspath(a.shared)
    only = set(a.only.split(','))
    s = Scale(a)
    res = {'empty': [], 'big': []}
    try:
        s.setup()
        big = s.big_db()
        rooms = s.rooms(big)
        if len(rooms) < a.rooms:
            raise RuntimeError('%s has %d rooms' % (big, len(rooms)))
        s.log('rooms: %s' % ' '.join(map(str, rooms)))
        for i in range(a.repeat):
            if 'empty' in only:
                e = os.path.join(s.tmp, 'empty.db')
                remove_db(e)
                r = s.run('empty-%d' % i, e, rooms)
                remove_db(e)
                if r:
                    res['empty'].append(r)
            if 'big' in only:
                r = s.run('big-%d' % i, big, rooms)
                if r:
                    res['big'].append(r)
                    if a.restore:
                        s.restore(big, r)
        if a.db:
            s.log('big database %s: %.1f GiB' % (big, sum(
                os.path.getsize(big + x) for x in ('', '-wal') if os.path.exists(big + x))
                / 2 ** 30))
    except Exception as e:
        import traceback
        traceback.print_exc()
        s.fail('%s: %s' % (type(e).__name__, e))
    finally:
        s.close()

    def med(rs):
        return sorted(rs, key=lambda r: r['rate'])[len(rs) // 2] if rs else None
    me, mb = med(res['empty']), med(res['big'])
    tag = (a.label + ' ') if a.label else ''
    print('| %sdatabase | rows before | msgs/s committed | CPU us/msg | RSS MiB | read MiB | '
          'written MiB |' % tag)
    print('|---|---|---|---|---|---|---|')
    for name, r in (('empty', me), ('big', mb)):
        if r:
            print('| %s%s | %d | %.0f | %.2f | %.0f | %.0f | %.0f |' % (
                tag, name, r['rows_before'], r['rate'], r['us_per_msg'], r['rss_mib'],
                r['read_mib'], r['write_mib']))
    if me and mb:
        print('ratio big/empty: rate %.2f, CPU per message %.2f (%d run(s) each, median by '
              'rate)' % (mb['rate'] / me['rate'], mb['us_per_msg'] / me['us_per_msg'],
                         len(res['big'])))
    if a.json:
        with open(a.json, 'w') as f:
            json.dump({'args': vars(a), 'results': res, 'failures': s.failures}, f, indent=1)
    print('scale: %d failures%s' % (len(s.failures), ''.join('\n  - ' + f for f in s.failures)))
    return 1 if s.failures else 0


if __name__ == '__main__':
    sys.exit(main())
