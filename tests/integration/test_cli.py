#!/usr/bin/python3
"""Command line (design §6) and certificate failures."""

import os
import re
import signal
import socket
import sys
import time

import harness


def tls_failure(h, label, cert_key, extra, want_in_log):
    ck = h.ck
    c = h.certs()
    mock = h.start_node_mock(cert=c[cert_key])
    d = h.start_danmakud([9999], ['wss://localhost:%d/' % mock.port], extra=extra, name=label)
    rows = harness.wait_db(d.db, 'SELECT id, ended_at, end_reason, joined_at FROM sessions ORDER BY id',
                           lambda rs: rs and rs[0][1] is not None, 20)
    ck.check(rows and rows[0][1] is not None, '%s: the session ended' % label)
    if rows:
        ck.check(rows[0][2] is not None and rows[0][2].startswith('tls'),
                 "%s: end_reason starts with 'tls' (%r)" % (label, rows[0][2]))
        ck.eq(rows[0][3], None, '%s: never joined' % label)
    ck.note('%s: mock saw %s' % (label, mock.wait_line(r'^TLS_ERROR', 3)[:1]))
    ck.eq(mock.matching(r'^LOGIN '), [], '%s: no login reached the server' % label)
    time.sleep(1.0)
    ck.check(d.alive(), '%s: danmakud keeps running' % label)
    err = d.stderr_text()
    ck.check(re.search(want_in_log, err, re.I), '%s: stderr explains the certificate problem' % label,
             '\n'.join(err.splitlines()[-15:]))
    # It must keep retrying (backoff 1 s base, full jitter).
    more = harness.wait_db(d.db, 'SELECT count(*) FROM sessions', lambda rs: rs and rs[0][0] >= 2, 15)
    ck.check(more and more[0][0] >= 2, '%s: it retries' % label)
    ck.eq(harness.db_scalar(d.db, 'SELECT count(*) FROM messages'), 0, '%s: nothing stored' % label)
    rc = h.stop_danmakud(d)
    ck.eq(rc, 0, '%s: exit 0 on SIGTERM' % label)
    mock.signal(signal.SIGTERM)
    mock.wait(10)


MAX_ROOMS = 100000  # CONF_MAX_ROOMS in include/conf.h
TOO_MANY = 'too many rooms (max %d)' % MAX_ROOMS


def max_rooms(h):
    """One bound on rooms, the same message from the command line, the config file and
    both together; exactly the bound is accepted each way."""
    ck = h.ck
    ids = [str(i) for i in range(1, MAX_ROOMS + 2)]
    rc, out, err = h.run_danmakud(['--check-config', '-d', 'cli.db'] + ids[:MAX_ROOMS], timeout=60)
    ck.eq((rc, out.strip()), (0, 'configuration ok: %d rooms, database cli.db, metrics file (none)' % MAX_ROOMS),
          'command line: %d room ids are accepted' % MAX_ROOMS)
    rc, out, err = h.run_danmakud(['--check-config', '-d', 'cli.db'] + ids, timeout=60)
    ck.eq(rc, 2, 'command line: %d room ids exit 2' % (MAX_ROOMS + 1))
    ck.check(TOO_MANY in err, 'command line: %r' % TOO_MANY, err[-300:])

    def conf(name, n):
        path = os.path.join(h.tmp, name)
        with open(path, 'w') as f:
            f.write('[rooms]\n' + ''.join('%d =\n' % i for i in range(1, n + 1)))
        return path
    full = conf('full.conf', MAX_ROOMS)
    rc, out, err = h.run_danmakud(['--check-config', '-c', full, '-d', 'cli.db'], timeout=60)
    ck.eq((rc, out.strip()), (0, 'configuration ok: %d rooms, database cli.db, metrics file (none)' % MAX_ROOMS),
          'config: %d rooms are accepted' % MAX_ROOMS)
    over = conf('over.conf', MAX_ROOMS + 1)
    rc, out, err = h.run_danmakud(['--check-config', '-c', over, '-d', 'cli.db'], timeout=60)
    ck.eq(rc, 2, 'config: %d rooms exit 2' % (MAX_ROOMS + 1))
    ck.check('%s:%d: %s' % (over, MAX_ROOMS + 2, TOO_MANY) in err,
             'config: "FILE:LINE: %s"' % TOO_MANY, err[-300:])
    rc, out, err = h.run_danmakud(['--check-config', '-c', full, '-d', 'cli.db', str(MAX_ROOMS + 1)], timeout=60)
    ck.eq(rc, 2, 'config with %d rooms plus one on the command line exits 2' % MAX_ROOMS)
    ck.check(TOO_MANY in err, 'config plus command line: %r' % TOO_MANY, err[-300:])


SECRET = 'hunter2-not-for-logs'


def postgresql_options(h):
    """[postgresql], [cluster], --postgresql and --node as --check-config sees them (issue 13):
    the summary line, the node's default (the host name), the password file's mode check, and
    no URL or password in any output."""
    ck = h.ck

    def write(name, text, mode=0o644):
        path = os.path.join(h.tmp, name)
        with open(path, 'w') as f:
            f.write(text)
        os.chmod(path, mode)
        return path

    def check_config(what, args, want_rc, want_out=None, want_err=None):
        rc, out, err = h.run_danmakud(['--check-config', '-d', 'cli.db'] + args + ['1'])
        ck.eq(rc, want_rc, '%s: exit %d' % (what, want_rc))
        if want_out is not None:
            ck.eq(out.strip().splitlines()[1:], want_out, '%s: the postgresql line' % what)
        if want_err is not None:
            ck.check(want_err in err, '%s: stderr says %r' % (what, want_err), err[-500:])
        ck.check(SECRET not in out + err, '%s: the password is not shown' % what, out + err)
        return out, err

    url = 'postgresql://rec:%s@127.0.0.1:1/chat' % SECRET
    conf = write('pg.conf', '[postgresql]\nurl = %s\n[cluster]\nnode = rec-a\n' % url)
    check_config('[postgresql] url', ['-c', conf], 0, ['postgresql: yes (node rec-a, mode mirror)'])
    check_config('--node over [cluster] node', ['-c', conf, '--node', 'rec-b'], 0,
                 ['postgresql: yes (node rec-b, mode mirror)'])
    check_config('no url: no postgresql line', [], 0, [])
    host = socket.gethostname()
    node = re.sub(r'[^A-Za-z0-9._-]', '-', host)[:63]
    check_config('--postgresql alone: the node is the host name (%s)' % host,
                 ['--postgresql', 'host=127.0.0.1 port=1 password=%s' % SECRET], 0,
                 ['postgresql: yes (node %s, mode mirror)' % node])
    shard = write('shard.conf', '[postgresql]\nurl = postgres://h/db\n[cluster]\nmode = shard\n'
                  'lease_s = 10\nmax_rooms = 5\n')
    check_config('shard', ['-c', shard, '--node', 'x'], 0,
                 ['postgresql: yes (node x, mode shard, lease_s 10, max_rooms 5)'])
    alone = write('alone.conf', '[rooms]\n2\n\n[cluster]\nnode = rec-a\n')
    check_config('[cluster] without a url', ['-c', alone, '--postgresql', url], 2,
                 want_err='%s:4: [cluster] needs [postgresql] url' % alone)
    bad = write('bad.conf', '[postgresql]\nurl = mysql://rec:%s@h/db\n' % SECRET)
    check_config('a url of another database', ['-c', bad], 2,
                 want_err='%s:2: url: expected a postgresql:// or postgres:// URL' % bad)
    check_config('--postgresql of another database', ['--postgresql', 'mysql://rec:%s@h/' % SECRET], 2,
                 want_err='--postgresql: expected a postgresql:// or postgres:// URL')
    check_config('--node with a space', ['--node', 'rec a'], 2,
                 want_err="--node: expected 1 to 63 of A-Z a-z 0-9 . _ -, got 'rec a'")

    # The password file: the first line, readable by its owner only.
    pw = write('pgpass', SECRET + '\r\nsecond line\n', 0o640)
    withpw = write('pw.conf', '[postgresql]\nurl = postgres://rec@h/db\npassword_file = %s\n' % pw)
    check_config('password_file mode 0640', ['-c', withpw], 2,
                 want_err='password_file %s: mode 0640 lets other users read a password; refused '
                 '(chmod 600 %s)' % (pw, pw))
    os.chmod(pw, 0o600)
    check_config('password_file mode 0600', ['-c', withpw, '--node', 'n'], 0,
                 ['postgresql: yes (node n, mode mirror)'])
    write('pgpass', '\n' + SECRET + '\n', 0o600)
    check_config('password_file with an empty first line', ['-c', withpw], 2,
                 want_err='password_file %s: expected the password on the first line' % pw)
    os.unlink(pw)
    check_config('password_file missing', ['-c', withpw], 2,
                 want_err='password_file %s: No such file or directory' % pw)
    # Without a url the file is not read.
    nourl = write('nourl.conf', '[postgresql]\npassword_file = %s\n' % pw)
    check_config('password_file without a url', ['-c', nourl], 0, [])


def body(h):
    ck = h.ck
    rc, out, err = h.run_danmakud(['--help'])
    ck.eq(rc, 0, '--help exits 0')
    ck.check('--db' in out and '--server' in out and '--heartbeat-s' in out,
             '--help on stdout lists the options', out[:2000] + err[:500])
    rc, out2, err = h.run_danmakud(['-h'])
    ck.eq((rc, out2), (0, out), '-h is --help')

    rc, out, err = h.run_danmakud(['--version'])
    ck.eq(rc, 0, '--version exits 0')
    ck.check(re.search(r'\d+\.\d+\.\d+', out), '--version prints a version on stdout', out + err)
    rc, out2, err = h.run_danmakud(['-V'])
    ck.eq((rc, out2), (0, out), '-V is --version')

    for args, what in ((['--no-such-option'], 'unknown option'),
                       (['--flush-ms'], 'missing value'),
                       (['--flush-ms', 'abc', '1'], 'non-numeric --flush-ms'),
                       (['--heartbeat-s', '-3', '1'], 'negative --heartbeat-s'),
                       (['-s', 'ftp://127.0.0.1:1/', '1'], 'unsupported server scheme'),
                       (['notaroom'], 'non-numeric room id')):
        rc, out, err = h.run_danmakud(['-d', 'cli.db'] + args, timeout=10)
        ck.eq(rc, 2, '%s exits 2' % what)
        ck.check(err.strip() != '', '%s: error message on stderr' % what)

    max_rooms(h)
    postgresql_options(h)

    # A name mismatch: the cert is only for other.invalid.
    tls_failure(h, 'wrong-name', 'other_cert', ['--ca-file', h.certs()['ca']],
                r'certif|verif|name|CN')
    # A CA that is not trusted: the mock's chain is not in --ca-file.
    tls_failure(h, 'unknown-ca', 'cert', ['--ca-file', h.certs()['ca2']], r'certif|verif|trust|CA')

    # --insecure: the same wrong-name cert is accepted, with a warning.
    c = h.certs()
    mock = h.start_node_mock(cert=c['other_cert'])
    d = h.start_danmakud([9999], ['wss://localhost:%d/' % mock.port], extra=['--insecure'], name='insecure')
    ck.check(mock.wait_line(r'^SENT 9999', 20), '--insecure: recording works despite the bad cert')
    ck.check(re.search(r'insecure|not verif|verification (is )?(off|disabled)', d.stderr_text(), re.I),
             '--insecure is logged as a warning', d.stderr_text()[-1500:])
    # One recorder per database: a second one is refused (exit 1) and the first goes on.
    rc, out, err = h.run_danmakud(['-d', d.db, '-s', 'ws://127.0.0.1:1/', '9999'], timeout=10)
    ck.eq(rc, 1, 'a second danmakud on the same database exits 1')
    ck.check('database is in use by pid %d' % d.pid in err, 'and names the pid that holds it', err[-500:])
    ck.check(d.alive(), 'the first recorder keeps running')
    # SIGINT is a clean stop too.
    harness.wait_db(d.db, "SELECT count(*) FROM messages WHERE type='chatmsg'", lambda rs: rs and rs[0][0] == 147, 20)
    d.signal(signal.SIGINT)
    rc = d.wait(20)
    ck.eq(rc, 0, 'SIGINT: exit 0')
    ck.check(mock.wait_line(r'^LOGOUT 9999', 10), 'SIGINT: logout sent')
    ck.eq(harness.db_rows(d.db, 'SELECT end_reason FROM sessions'), [('shutdown',)], 'SIGINT: session ended shutdown')


if __name__ == '__main__':
    sys.exit(harness.Harness('cli').run(body))
