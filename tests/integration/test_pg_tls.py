#!/usr/bin/python3
"""TLS to PostgreSQL through libpq's sslmode, driven by danmakud's loop (issue 13).

A real PostgreSQL 15 (pg_server.py) with ssl = on and a certificate for localhost signed by the
harness's test CA. danmakud records one room from the Node mock and ships to it with:
1. sslmode=verify-full and the right CA: connected, the connection is TLS in pg_stat_ssl, the
   rows arrive; the password given in the URL appears nowhere in danmakud's output.
2. the wrong CA: refused ("certificate verify failed"), nothing shipped, rows kept locally.
3. a certificate for another name: refused (host name mismatch), although the CA is right.
Exit 77 only when the PostgreSQL 15 binaries are missing.
"""

import os
import re
import shutil
import sqlite3
import sys
import time

import harness
from pg_server import PgServer, PgUnavailable

SECRET = 'pw-Never-Logged-71'


def install_cert(pg, cert, key):
    for src, name, mode in ((cert, 'server.crt', 0o644), (key, 'server.key', 0o600)):
        dst = os.path.join(pg.data, name)
        shutil.copy(src, dst)
        os.chmod(dst, mode)
        if pg.run_as:
            os.chown(dst, pg.run_as.pw_uid, pg.run_as.pw_gid)


def local_rows(db):
    try:
        with sqlite3.connect('file:%s?mode=ro' % db, uri=True, timeout=5) as c:
            return c.execute('SELECT count(*) FROM messages').fetchone()[0]
    except sqlite3.Error:
        return 0


def body(h):
    ck = h.ck
    c = h.certs()
    try:
        pg = PgServer()
    except PgUnavailable as e:
        ck.skip('PostgreSQL 15', str(e))
        return
    h.pg = pg
    install_cert(pg, c['cert'], c['key'])
    with open(os.path.join(pg.data, 'postgresql.conf'), 'a') as f:
        f.write("ssl = on\n")
    pg.stop()
    pg.start()
    mock = h.start_node_mock('--repeat', '--rate', '50', plain=True)

    def run(tag, ca, expect_ok):
        url = ('postgresql://danmakud:%s@localhost:%d/danmakud?sslmode=verify-full&sslrootcert=%s'
               % (SECRET, pg.port, ca))
        conf = os.path.join(h.tmp, tag + '.conf')
        db = os.path.join(h.tmp, tag + '.db')
        with open(conf, 'w') as f:
            f.write('[recorder]\ndatabase = %s\n[douyu]\nservers = ws://127.0.0.1:%d/\n'
                    '[postgresql]\nurl = %s\n[cluster]\nnode = %s\n[rooms]\n288016\n'
                    % (db, mock.port, url, tag))
        d = h.start_danmakud([], [], extra=['-c', conf], db=db, name=tag)
        if expect_ok:
            ok = harness.wait_until(lambda: re.search(r'postgresql: connected to localhost', d.stderr_text()), 20)
            ck.check(ok, '%s: connected over TLS' % tag)
            tls = pg.psql("SELECT bool_and(ssl) FROM pg_stat_ssl JOIN pg_stat_activity "
                          "USING (pid) WHERE application_name = 'danmakud %s'" % tag)
            ck.eq(tls.strip(), 't', '%s: pg_stat_ssl says the connection is TLS' % tag)
            got = harness.wait_until(lambda: int(pg.psql(
                "SELECT count(*) FROM messages WHERE node = '%s'" % tag) or 0) >= 50, 30)
            ck.check(got, '%s: rows arrive in PostgreSQL' % tag)
        else:
            refused = harness.wait_until(lambda: re.search(r'postgresql: cannot reach', d.stderr_text()), 20)
            time.sleep(2)
            ck.check(refused, '%s: refused' % tag, d.stderr_text()[-2000:])
            ck.check(not re.search(r'postgresql: connected', d.stderr_text()), '%s: never connected' % tag)
            ck.check(local_rows(db) > 0, '%s: rows kept in the local database' % tag)
        rc = h.stop_danmakud(d)
        ck.eq(rc, 0, '%s: clean exit' % tag)
        text = d.stderr_text()
        ck.check(SECRET not in text, '%s: the password is not in the log' % tag)
        return text

    run('good', c['ca'], True)
    text = run('wrongca', c['ca2'], False)
    ck.check('certificate verify failed' in text, 'wrongca: the reason is the certificate',
             text[-1500:])
    before = pg.psql("SELECT count(*) FROM messages WHERE node = 'wrongca'").strip()
    ck.eq(before, '0', 'wrongca: nothing shipped')
    pg.stop()
    install_cert(pg, c['other_cert'], c['key'])
    pg.start()
    text = run('othername', c['ca'], False)
    ck.check('does not match host name' in text, 'othername: the reason is the host name',
             text[-1500:])


def main():
    h = harness.Harness('pg_tls')
    h.pg = None

    def run(hh):
        try:
            body(hh)
        finally:
            if hh.pg:
                hh.pg.stop()
    sys.exit(h.run(run))


if __name__ == '__main__':
    main()
