#!/usr/bin/env python3
"""Shipping to PostgreSQL (issue 13): danmakud's shipper vs a psql COPY of the same rows.

  bench/pg_ship.py [--rows 1000000] [--danmakud BIN] [--modes-rows 200000] [--tiny] [--json F]

One PostgreSQL 15 server (tests/integration/pg_server.py: initdb in a temporary directory,
127.0.0.1, fsync off as in the tests) and one local danmakud database of --rows messages
(made by a short danmakud run against a closed port, then filled by bench/gen_db.c: the
synthetic Douyu stream of bench/synth.h across 1,000 rooms, data about 350 bytes of JSON).
Then, one after the other in the same run:

  (1) psql: the same rows, exported from SQLite as COPY text (not timed), loaded by
      `psql -c "\\copy messages (...) FROM FILE"` into an empty copy of danmakud's PostgreSQL
      schema in a database of its own (made by running danmakud once against it; before
      the build can, by PG-SPEC.md's CREATE TABLE statements). Timed: the psql process.
  (2) danmakud: the binary started on that local database with `--postgresql URL --node
      bench` and one room on a closed port (so it records nothing new); it ships its backlog.
      Timed from its log line "postgresql: connected" (else its start) until PostgreSQL
      holds every row (max(local_id) polled every 50 ms; count(*) checked at the end).
  (3) pg_modes: bench/pg_modes.c, how a batch could be sent (COPY + INSERT ... SELECT,
      pipeline mode, multi-row VALUES, unnest arrays) on --modes-rows of the same rows; then
      copy and pipeline again with the cross-recorder dedup through message_cids (-c on).

Reported: rows/s; CPU per 1000 rows of the client (psql; danmakud: utime+stime from
/proc/PID/stat) and of the whole PostgreSQL server (the postmaster and its children, the
exited ones included through the postmaster's cutime/cstime). Both loads end with
count(*), sum(ts) and sum(length(data::text)) compared between the two databases.

--tiny: 20,000 rows, pg_modes on 5,000 rows once; for CI (bench/run --tiny): proves the
harness, asserts no timing. Exit 77 when PostgreSQL 15 is not installed. Every process
started here is ended by its PID.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, 'tests', 'integration'))
from pg_server import PgServer, PgUnavailable, PG_BIN  # noqa: E402

TICKS = os.sysconf('SC_CLK_TCK')
NODE = 'bench'
COLS = ('room_id, ts, type, uid, nick, level, text, cid, session_id, data, platform, decoded, '
        'node, local_id')

# PG-SPEC.md's tables (schema version 1), for the psql target while the danmakud under test
# cannot create them itself. Views and indexes beyond the spec's keys are not here: the
# figures say which schema was used.
SPEC_SCHEMA = """
CREATE TABLE danmakud_schema (version integer NOT NULL, store_id uuid NOT NULL DEFAULT
  gen_random_uuid(), migrated_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE rooms (platform text NOT NULL, room_id bigint NOT NULL, label text, added_at bigint
  NOT NULL, short_id bigint, PRIMARY KEY (platform, room_id));
CREATE TABLE sessions (id bigserial PRIMARY KEY, room_id bigint NOT NULL, server text NOT NULL,
  started_at bigint NOT NULL, joined_at bigint, ended_at bigint, end_reason text, messages bigint
  NOT NULL DEFAULT 0, platform text NOT NULL, node text NOT NULL, local_id bigint NOT NULL,
  UNIQUE (node, local_id));
CREATE TABLE messages (id bigserial NOT NULL, room_id bigint NOT NULL, ts bigint NOT NULL, type
  text NOT NULL, uid bigint, nick text, level integer, text text, cid text, session_id bigint,
  data jsonb NOT NULL, platform text NOT NULL, decoded jsonb, node text NOT NULL, local_id bigint
  NOT NULL, UNIQUE (node, local_id, ts)) PARTITION BY RANGE (ts);
CREATE TABLE message_cids (platform text NOT NULL, room_id bigint NOT NULL, cid text NOT NULL,
  ts bigint NOT NULL, PRIMARY KEY (platform, room_id, cid));
INSERT INTO danmakud_schema (version) VALUES (1);
"""


def cpu_seconds(pid, children=False):
    """utime + stime (and cutime + cstime: the reaped children) from /proc/<pid>/stat."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    t = int(fields[11]) + int(fields[12])
    if children:
        t += int(fields[13]) + int(fields[14])
    return t / TICKS


def backends(postmaster, db):
    """PIDs of the server's processes that serve database db (from their command lines)."""
    out = []
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % d) as f:
                if int(f.read().rsplit(')', 1)[1].split()[1]) != postmaster:
                    continue
            with open('/proc/%s/cmdline' % d, 'rb') as f:
                if (' %s ' % db).encode() in f.read():
                    out.append(int(d))
        except (OSError, IndexError, ValueError):
            pass
    return out


def server_cpu(postmaster):
    """CPU seconds of the whole server so far: the postmaster with its reaped children, plus
    the children alive now (backends, checkpointer, walwriter, autovacuum, ...). A child reaped
    while the children are read would count nowhere (or twice): then the sum is taken again."""
    for _ in range(20):
        before = cpu_seconds(postmaster, children=True)
        live = 0.0
        for d in os.listdir('/proc'):
            if not d.isdigit():
                continue
            try:
                with open('/proc/%s/stat' % d) as f:
                    fields = f.read().rsplit(')', 1)[1].split()
                if int(fields[1]) == postmaster:
                    live += (int(fields[11]) + int(fields[12])) / TICKS
            except (OSError, IndexError, ValueError):
                pass
        if cpu_seconds(postmaster, children=True) == before:
            return before + live
    return before + live


class Poller:
    """One psql session kept open for polling (a psql per poll would cost the two cores more
    than the thing measured). query() returns the first column of the last row, or None when
    the statement failed (e.g. the table is not there yet)."""

    def __init__(self, url):
        self.p = subprocess.Popen(['psql', '-X', '-q', '-At', '-d', url], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                  bufsize=1)

    def query(self, sql):
        # An error prints nothing on stdout; the second statement ends every answer.
        self.p.stdin.write(sql.rstrip(';') + ";\nSELECT 'end-of-answer';\n")
        self.p.stdin.flush()
        last = None
        for line in self.p.stdout:
            line = line.rstrip('\n')
            if line == 'end-of-answer':
                return last
            last = line
        raise RuntimeError('psql (poller) exited')

    def close(self):
        if self.p.poll() is None:
            self.p.stdin.close()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(10)


class Proc:
    """A child whose stderr lines are collected with their arrival time (monotonic)."""

    def __init__(self, argv, logpath):
        self.lines = []
        self.cond = threading.Condition()
        self.logf = open(logpath, 'wb')
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE)
        self.pid = self.p.pid
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for raw in self.p.stderr:
            self.logf.write(raw)
            self.logf.flush()
            with self.cond:
                self.lines.append((time.monotonic(), raw.decode('utf-8', 'replace').rstrip()))
                self.cond.notify_all()

    def first(self, pattern):
        with self.cond:
            for t, l in self.lines:
                if re.search(pattern, l):
                    return t, l
        return None

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=30):
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
        self.t.join(5)
        self.logf.close()
        return self.p.returncode


def month_bounds(ms_first, ms_last):
    """(name, from_ms, to_ms) of each UTC month between two timestamps."""
    t = datetime.datetime.fromtimestamp(ms_first / 1000, datetime.timezone.utc)
    y, m = t.year, t.month
    end = datetime.datetime.fromtimestamp(ms_last / 1000, datetime.timezone.utc)
    out = []
    while (y, m) <= (end.year, end.month):
        ny, nm = (y + 1, 1) if m == 12 else (y, m + 1)
        a = datetime.datetime(y, m, 1, tzinfo=datetime.timezone.utc)
        b = datetime.datetime(ny, nm, 1, tzinfo=datetime.timezone.utc)
        out.append(('messages_y%04dm%02d' % (y, m), int(a.timestamp() * 1000),
                    int(b.timestamp() * 1000)))
        y, m = ny, nm
    return out


def copy_field(v):
    if v is None:
        return '\\N'
    s = str(v)
    if any(c in s for c in '\\\t\n\r'):
        s = (s.replace('\\', '\\\\').replace('\t', '\\t').replace('\n', '\\n')
             .replace('\r', '\\r'))
    return s


class Bench:
    def __init__(self, a):
        self.a = a
        self.tmp = tempfile.mkdtemp(prefix='dmk-pgship-')
        self.procs = []
        self.failures = []
        self.results = {}
        self.pg = None

    def log(self, msg):
        print('# [load %.1f] %s' % (os.getloadavg()[0], msg), flush=True)

    def fail(self, msg):
        self.failures.append(msg)
        print('FAILED: ' + msg, flush=True)

    # ------------------------------------------------------------ setup
    def setup(self):
        a = self.a
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
        self.modes = os.path.join(self.tmp, 'pg_modes')
        cflags = subprocess.run(['pkg-config', '--cflags', 'libpq'], stdout=subprocess.PIPE,
                                text=True).stdout.split() or ['-I/usr/include/postgresql']
        subprocess.run(['cc', '-O2', '-std=c11'] + cflags +
                       ['-o', self.modes, os.path.join(HERE, 'pg_modes.c'), '-lpq',
                        '-lsqlite3', '-lm'], check=True)
        probe = subprocess.run([self.danmakud, '--postgresql', 'postgresql://x@127.0.0.1:1/x',
                                '--node', NODE, '--check-config'], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=20)
        self.ships = probe.returncode == 0
        self.log('danmakud %s: %s' % (self.danmakud, 'accepts --postgresql' if self.ships else
                                      'no --postgresql yet (%s)' % probe.stdout.decode(
                                          errors='replace').strip().splitlines()[-1:]))

    def close(self):
        for p in reversed(self.procs):
            p.stop(signal.SIGKILL, 10)
        if self.pg:
            self.pg.close()
        if self.a.keep:
            self.log('kept ' + self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------ local database
    def local_db(self):
        """A danmakud database of --rows messages: danmakud makes the schema (a short run
        against a closed port), gen_db fills it."""
        path = os.path.join(self.tmp, 'local.db')
        d = Proc([self.danmakud, '-q', '-d', path, '-s', 'ws://127.0.0.1:1/', '1'],
                 os.path.join(self.tmp, 'create.err'))
        self.procs.append(d)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and d.alive():
            try:
                con = sqlite3.connect('file:%s?mode=ro' % path, uri=True, timeout=5)
                try:
                    if con.execute('SELECT count(*) FROM rooms').fetchone()[0] > 0:
                        break
                finally:
                    con.close()
            except sqlite3.Error:
                pass
            time.sleep(0.05)
        if d.stop(signal.SIGTERM) != 0:
            raise RuntimeError('danmakud did not create %s' % path)
        t0 = time.monotonic()
        r = subprocess.run([self.gen, path, str(self.a.rows)], check=True, stdout=subprocess.PIPE,
                           text=True)
        self.log('local database: %s (%.1f s)' % (r.stdout.splitlines()[0],
                                                  time.monotonic() - t0))
        con = sqlite3.connect(path)
        try:
            self.ts_range = con.execute('SELECT min(ts), max(ts) FROM messages').fetchone()
        finally:
            con.close()
        return path

    def export_copy(self, db):
        """The messages as COPY text, in the column order of COLS (node and local_id added)."""
        path = os.path.join(self.tmp, 'messages.copy')
        con = sqlite3.connect('file:%s?mode=ro' % db, uri=True)
        n = 0
        try:
            with open(path, 'w', encoding='utf-8') as f:
                cur = con.execute('SELECT room_id, ts, type, uid, nick, level, text, cid, '
                                  'session_id, data, platform, decoded, ?, id FROM messages '
                                  'ORDER BY id', (NODE,))
                while True:
                    chunk = cur.fetchmany(10000)
                    if not chunk:
                        break
                    f.write(''.join('\t'.join(copy_field(v) for v in row) + '\n'
                                    for row in chunk))
                    n += len(chunk)
        finally:
            con.close()
        return path, n

    # ------------------------------------------------------------ PostgreSQL
    def url(self, db):
        return 'postgresql://danmakud@127.0.0.1:%d/%s' % (self.pg.port, db)

    def psql(self, db, sql):
        r = subprocess.run(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-At', '-d',
                            self.url(db), '-c', sql], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=600)
        if r.returncode != 0:
            raise RuntimeError('psql %r: %s' % (sql[:200], r.stderr.decode(errors='replace')))
        return r.stdout.decode().strip()

    def createdb(self, name):
        self.pg.psql('CREATE DATABASE %s' % name)

    def schema_by_danmakud(self, db):
        """danmakud creates its schema in db: a run with an empty local database."""
        local = os.path.join(self.tmp, 'schema-%s.db' % db)
        d = Proc([self.danmakud, '-d', local, '--postgresql', self.url(db), '--node', 'schema',
                  '-s', 'ws://127.0.0.1:1/', '1'], os.path.join(self.tmp, 'schema-%s.err' % db))
        self.procs.append(d)
        deadline = time.monotonic() + 60
        ok = False
        while time.monotonic() < deadline and d.alive():
            try:
                if self.psql(db, "SELECT count(*) FROM danmakud_schema") not in ('', '0'):
                    ok = True
                    break
            except RuntimeError:
                pass
            time.sleep(0.2)
        # Its rooms and nodes rows stay: the target of the COPY is messages alone.
        d.stop(signal.SIGTERM)
        if not ok:
            raise RuntimeError('danmakud did not create its schema in %s: %s' % (
                db, ' | '.join(l for _, l in d.lines[-5:])))

    def partitions(self, db):
        for name, lo, hi in month_bounds(*self.ts_range):
            self.psql(db, 'CREATE TABLE IF NOT EXISTS %s PARTITION OF messages FOR VALUES '
                          'FROM (%d) TO (%d)' % (name, lo, hi))

    def fingerprint(self, db):
        return self.psql(db, "SELECT count(*), sum(ts), sum(length(data::text)), "
                             "count(DISTINCT local_id) FROM messages WHERE node = '%s'" % NODE)

    # ------------------------------------------------------------ (1) psql COPY
    def run_psql_copy(self, copyfile, n):
        db = 'copy_target'
        self.createdb(db)
        if self.ships:
            self.schema_by_danmakud(db)
            schema = "danmakud's"
        else:
            self.psql(db, SPEC_SCHEMA)
            schema = "PG-SPEC.md's tables (danmakud cannot make them yet)"
        self.partitions(db)
        self.psql(db, 'CHECKPOINT')
        pm = self.pg.proc.pid
        s0 = server_cpu(pm)
        t0 = time.monotonic()
        errpath = os.path.join(self.tmp, 'psql-copy.err')
        with open(errpath, 'wb') as errf:
            p = subprocess.Popen(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-d',
                                  self.url(db), '-c',
                                  "\\copy messages (%s) FROM '%s'" % (COLS, copyfile)],
                                 stdin=subprocess.DEVNULL, stdout=errf, stderr=errf)
            _, status, ru = os.wait4(p.pid, 0)
        secs = time.monotonic() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        # psql has gone; its backend may still be exiting. Its CPU reaches the postmaster's
        # cutime only once the postmaster has reaped it.
        deadline = time.monotonic() + 10
        while backends(pm, db) and time.monotonic() < deadline:
            time.sleep(0.02)
        with open(errpath, 'rb') as f:
            err = f.read().decode(errors='replace')
        if p.returncode != 0:
            self.fail('psql COPY exit %d: %s' % (p.returncode, err[-300:]))
        s1 = server_cpu(pm)
        client = ru.ru_utime + ru.ru_stime
        got = self.fingerprint(db)
        if not got.startswith('%d|' % n):
            self.fail('psql COPY: %s (expected %d rows) %s' % (got, n, err[-300:]))
        r = {'rows': n, 'seconds': secs, 'rate': n / secs, 'client_cpu_s': client,
             'server_cpu_s': s1 - s0, 'schema': schema, 'fingerprint': got}
        self.log('psql COPY: %s' % json.dumps(r))
        self.results['psql'] = r
        return r

    # ------------------------------------------------------------ (2) danmakud shipping
    def run_danmakud(self, local, n):
        if not self.ships:
            self.results['danmakud'] = None
            return None
        db = 'danmakud'  # PgServer's own database: danmakud makes the schema there
        pm = self.pg.proc.pid
        s0 = server_cpu(pm)
        t_start = time.monotonic()
        d = Proc([self.danmakud, '-d', local, '--postgresql', self.url(db), '--node', NODE,
                  '-s', 'ws://127.0.0.1:1/', '1'], os.path.join(self.tmp, 'ship.err'))
        self.procs.append(d)
        deadline = time.monotonic() + self.a.timeout
        last, t_done, polls = 0, None, 0
        poll = Poller(self.url(db))
        try:
            while time.monotonic() < deadline and d.alive():
                # Cheap on the unique index (node, local_id, ts) of each partition; rows
                # arrive in commit order, so max(local_id) = N means all of them.
                v = poll.query("SELECT coalesce(max(local_id), 0) FROM messages WHERE node = "
                               "'%s'" % NODE)
                polls += 1
                if v is not None:
                    last = int(v)
                if last >= n:
                    t_done = time.monotonic()
                    break
                time.sleep(0.05)
        finally:
            poll.close()
        cpu = cpu_seconds(d.pid) if d.alive() else float('nan')
        s1 = server_cpu(pm)
        conn = d.first(r'postgresql: connected')
        caught = d.first(r'postgresql: caught up')
        rc = d.stop(signal.SIGTERM, 60)
        if rc != 0:
            self.fail('danmakud (shipping) exited with %r' % rc)
        if t_done is None:
            self.fail('danmakud shipped %d of %d rows within %.0f s: %s' % (
                last, n, self.a.timeout, ' | '.join(l for _, l in d.lines[-5:])))
            return None
        t0 = conn[0] if conn else t_start
        secs = t_done - t0
        got = self.fingerprint(db)
        r = {'rows': n, 'seconds': secs, 'rate': n / secs, 'client_cpu_s': cpu,
             'server_cpu_s': s1 - s0, 'from': 'connected' if conn else 'process start',
             'connect_s': (conn[0] - t_start) if conn else None,
             'caught_up_s': (caught[0] - t0) if caught else None, 'polls': polls,
             'fingerprint': got}
        psql = self.results.get('psql')
        if psql and got != psql['fingerprint']:
            self.fail('danmakud: PostgreSQL holds %s, the psql COPY %s' % (
                got, psql['fingerprint']))
        self.log('danmakud shipping: %s' % json.dumps(r))
        self.results['danmakud'] = r
        return r

    # ------------------------------------------------------------ (3) pg_modes
    def run_modes(self, local):
        a = self.a
        if a.modes_rows <= 0:
            return None
        self.createdb('modes')
        out = []
        for cids, modes in (('off', 'copy,pipeline,values,unnest'), ('on', 'copy,pipeline')):
            argv = [self.modes, local, self.url('modes'), '-n', str(a.modes_rows), '-b',
                    a.batches, '-r', str(a.modes_repeat), '-c', cids, '-m', modes]
            r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=3600)
            for line in r.stderr.splitlines():
                self.log(line)
            if r.returncode != 0:
                self.fail('pg_modes -c %s exit %d: %s' % (cids, r.returncode, r.stderr[-300:]))
                continue
            for line in r.stdout.splitlines():
                kv = dict(x.split('=', 1) for x in line.split())
                out.append({k: (v if k in ('mode', 'cids') else float(v))
                            for k, v in kv.items()})
        self.results['modes'] = out
        return out

    def run(self):
        self.setup()
        # Its own temporary directory: as root the cluster belongs to nobody, who cannot
        # enter ours.
        self.pg = PgServer()
        local = self.local_db()
        copyfile, n = self.export_copy(local)
        self.log('COPY text: %d rows, %.0f bytes per row' % (
            n, os.path.getsize(copyfile) / max(n, 1)))
        self.run_psql_copy(copyfile, n)
        self.run_danmakud(local, n)
        self.run_modes(local)

    # ------------------------------------------------------------ output
    def table(self):
        lines = ['| load | rows/s | client CPU ms per 1000 rows | PostgreSQL CPU ms per 1000 '
                 'rows | notes |', '|---|---|---|---|---|']
        p, d = self.results.get('psql'), self.results.get('danmakud')

        def ms(cpu, n):
            return '%.1f' % (cpu * 1e6 / n) if cpu == cpu else 'n/a'
        if p:
            lines.append('| psql `\\copy messages FROM file` | %.0f | %s (psql) | %s | %d rows, '
                         '%.2f s; schema: %s |' % (p['rate'], ms(p['client_cpu_s'], p['rows']),
                                                    ms(p['server_cpu_s'], p['rows']),
                                                    p['rows'], p['seconds'], p['schema']))
        if d:
            lines.append('| danmakud shipping its backlog | %.0f | %s (danmakud) | %s | %d rows, '
                         '%.2f s from "%s"%s |' % (
                             d['rate'], ms(d['client_cpu_s'], d['rows']),
                             ms(d['server_cpu_s'], d['rows']), d['rows'], d['seconds'],
                             d['from'], '' if not p else '; %.2fx the psql COPY rate' % (
                                 d['rate'] / p['rate'])))
        elif p:
            lines.append('| danmakud shipping its backlog | pending | | | this build has no '
                         '--postgresql |')
        for m in self.results.get('modes') or []:
            lines.append('| pg_modes %s%s, %d rows per transaction | %.0f | %.1f (pg_modes) | '
                         '%.1f (backend) | again, every row a conflict: %.0f rows/s; %d rows, '
                         'median of %d |' % (m['mode'], ' + message_cids' if m['cids'] == 'on'
                                             else '', m['batch'], m['rows_per_s'],
                                             m['client_ms_per_1k'], m['server_ms_per_1k'],
                                             m['again_rows_per_s'], m['rows'], m['repeat']))
        return '\n'.join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--rows', type=int, default=1000000)
    ap.add_argument('--danmakud', help='binary (default: build-bench/, release)')
    ap.add_argument('--modes-rows', type=int, default=200000, help='0: no pg_modes')
    ap.add_argument('--modes-repeat', type=int, default=3)
    ap.add_argument('--batches', default='500,5000', help="pg_modes' rows per transaction")
    ap.add_argument('--timeout', type=float, default=600)
    ap.add_argument('--tiny', action='store_true')
    ap.add_argument('--json')
    ap.add_argument('--keep', action='store_true')
    a = ap.parse_args()
    if a.tiny:
        a.rows, a.modes_rows, a.modes_repeat, a.timeout = 20000, 5000, 1, 60
    if not os.path.exists(os.path.join(PG_BIN, 'postgres')) or not shutil.which('psql'):
        print('SKIP: PostgreSQL 15 (%s/postgres and psql) is not installed' % PG_BIN)
        return 77
    b = Bench(a)
    started = datetime.datetime.now(datetime.timezone.utc)
    load0 = os.getloadavg()
    try:
        b.run()
    except PgUnavailable as e:
        print('SKIP: %s' % e)
        b.close()
        return 77
    except Exception as e:  # a crashed run is a failed run
        import traceback
        traceback.print_exc()
        b.fail('%s: %s' % (type(e).__name__, e))
    finally:
        b.close()
    print()
    print('## PostgreSQL shipping, %s' % started.strftime('%Y-%m-%d %H:%M UTC'))
    print()
    print('command: `%s`  ' % ' '.join(['bench/pg_ship.py'] + sys.argv[1:]))
    print('load average (1/5/15 min) at start %s, at end %s  ' % (
        '/'.join('%.1f' % x for x in load0), '/'.join('%.1f' % x for x in os.getloadavg())))
    print()
    print(b.table())
    print()
    if a.json:
        with open(a.json, 'w') as f:
            json.dump({'date': started.isoformat(), 'results': b.results,
                       'failures': b.failures}, f, indent=1, default=str)
    print('pg_ship: %d failures%s' % (len(b.failures),
                                      ''.join('\n  - ' + f for f in b.failures)))
    return 1 if b.failures else 0


if __name__ == '__main__':
    sys.exit(main())
