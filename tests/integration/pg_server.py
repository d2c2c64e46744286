"""A real PostgreSQL 15 server for tests: initdb + postgres in a temporary directory, on
127.0.0.1 and a free port, as an unprivileged user (initdb and postgres refuse root, and CI runs
as root: then the cluster belongs to `nobody`). Ended by its PID (SIGQUIT, then SIGKILL); the
directory is removed.

    with PgServer() as pg:
        pg.url            # postgresql://danmakud@127.0.0.1:PORT/danmakud (trust on loopback)
        pg.psql('SELECT 1')
        pg.stop(); pg.start()   # same data directory and port: a restart

Run directly (`python3 pg_server.py`) it starts a server, prints its URL and waits for Ctrl-C.
"""

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

PG_BIN = '/usr/lib/postgresql/15/bin'
USER = 'danmakud'
DB = 'danmakud'


class PgUnavailable(Exception):
    """PostgreSQL 15 is not installed: the caller should SKIP (exit 77)."""


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class PgServer:
    def __init__(self, port=None, tmp=None):
        if not os.path.exists(os.path.join(PG_BIN, 'postgres')):
            raise PgUnavailable('%s/postgres not found (apt-get install postgresql-15)' % PG_BIN)
        self.port = port or free_port()
        self.own_tmp = tmp is None
        self.tmp = tmp or tempfile.mkdtemp(prefix='dmk-pg-')
        self.data = os.path.join(self.tmp, 'data')
        self.log = os.path.join(self.tmp, 'postgres.log')
        self.proc = None
        self.as_root = os.geteuid() == 0
        self.run_as = pwd.getpwnam('nobody') if self.as_root else None
        if self.as_root:
            os.chmod(self.tmp, 0o777)  # nobody writes the cluster and the socket here
        self._initdb()

    @property
    def url(self):
        return 'postgresql://%s@127.0.0.1:%d/%s' % (USER, self.port, DB)

    def _demote(self):
        if self.run_as:
            os.setgid(self.run_as.pw_gid)
            os.setgroups([])
            os.setuid(self.run_as.pw_uid)

    def _run(self, argv, **kw):
        return subprocess.run(argv, preexec_fn=self._demote, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=120, cwd=self.tmp, **kw)

    def _initdb(self):
        r = self._run([os.path.join(PG_BIN, 'initdb'), '-D', self.data, '-U', USER,
                       '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8', '--no-sync'])
        if r.returncode != 0:
            raise RuntimeError('initdb failed: %s' % r.stdout.decode(errors='replace')[-2000:])
        with open(os.path.join(self.data, 'postgresql.conf'), 'a') as f:
            # Loopback only; fsync off: a test cluster, and the tests kill the server, not
            # the machine (the OS keeps what was written). synchronous_commit stays on: an
            # immediate shutdown must not lose a commit PostgreSQL acknowledged.
            f.write("listen_addresses = '127.0.0.1'\nport = %d\n"
                    "unix_socket_directories = '%s'\nfsync = off\n"
                    "full_page_writes = off\nmax_connections = 50\nshared_buffers = 64MB\n"
                    "log_min_messages = warning\n" % (self.port, self.tmp))
        self.start()
        r = self._run([os.path.join(PG_BIN, 'createdb'), '-h', '127.0.0.1', '-p',
                       str(self.port), '-U', USER, DB])
        if r.returncode != 0:
            self.stop()
            raise RuntimeError('createdb failed: %s' % r.stdout.decode(errors='replace'))

    def start(self, timeout=30):
        logf = open(self.log, 'ab')
        self.proc = subprocess.Popen([os.path.join(PG_BIN, 'postgres'), '-D', self.data],
                                     preexec_fn=self._demote, stdout=logf, stderr=logf,
                                     stdin=subprocess.DEVNULL, cwd=self.tmp)
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError('postgres exited: %s' % self.log_tail())
            r = subprocess.run([os.path.join(PG_BIN, 'pg_isready'), '-h', '127.0.0.1', '-p',
                                str(self.port), '-t', '1'], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
            if r.returncode == 0:
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError('postgres not ready within %ss: %s' % (timeout, self.log_tail()))

    def stop(self, timeout=20):
        """Immediate shutdown by PID (SIGQUIT), SIGKILL if it lingers."""
        if not self.proc or self.proc.poll() is not None:
            self.proc = None
            return
        self.proc.send_signal(signal.SIGQUIT)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None

    def psql(self, sql, *extra):
        """Runs sql with psql (-At: unaligned, tuples only); returns stdout as text."""
        r = subprocess.run(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-At', '-d', self.url,
                            '-c', sql] + list(extra), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=120)
        if r.returncode != 0:
            raise RuntimeError('psql %r: %s' % (sql[:200], r.stderr.decode(errors='replace')))
        return r.stdout.decode()

    def log_tail(self, n=2000):
        try:
            with open(self.log, 'rb') as f:
                return f.read()[-n:].decode(errors='replace')
        except OSError:
            return ''

    def close(self):
        self.stop()
        if self.own_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


if __name__ == '__main__':
    with PgServer() as pg:
        print(pg.url, flush=True)
        try:
            signal.pause()
        except KeyboardInterrupt:
            pass
    sys.exit(0)
