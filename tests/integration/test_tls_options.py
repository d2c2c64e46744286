#!/usr/bin/python3
"""--ca-file with unparsable certificates, --insecure on every connect, and the file modes of the
database (issue 10 section 3), against the Node `ws` mock over TLS.

- A CA file holding the test CA between two certificates that do not parse: danmakud says how
  many were rejected (naming the file) and records over wss as usual.
- A CA file in which nothing parses (broken PEM blocks; plain text): exit 1 before recording,
  with an error naming the file.
- --insecure against a certificate for another name: the warning that nothing is verified is
  logged on every connection (the mock drops the first one), as many times as the database has
  sessions, besides once at start.
- The database and its -wal and -shm are not readable by others and not writable by the group
  even when the user's umask is 0; a stricter umask (077) is kept.
"""

import os
import re
import stat
import sys

import harness

BROKEN_PEM = '-----BEGIN CERTIFICATE-----\nMIIBAAAAAAAAAAAAAAAAAAAAAAAA\n-----END CERTIFICATE-----\n'


def ca_files(h):
    ck = h.ck
    c = h.certs()
    with open(c['ca']) as f:
        ca = f.read()
    mixed = os.path.join(h.tmp, 'mixed-ca.pem')
    with open(mixed, 'w') as f:
        f.write(BROKEN_PEM + ca + BROKEN_PEM)
    mock = h.start_node_mock()
    d = h.start_danmakud([9999], ['wss://localhost:%d/' % mock.port], extra=['--ca-file', mixed], name='mixed')
    ck.check(mock.wait_line(r'^SENT 9999', 30), 'a CA file with 2 broken certificates and the CA: recording works')
    ck.check(harness.wait_db(d.db, 'SELECT count(*) FROM messages', lambda rs: rs and rs[0][0] > 0, 20),
             'mixed CA file: rows stored')
    ck.eq(h.stop_danmakud(d), 0, 'mixed CA file: exit 0 on SIGTERM')
    err = d.stderr_text()
    ck.check(re.search(r'warning: tls: CA file %s: 2 certificates rejected as unparsable, 1 loaded' %
                       re.escape(mixed), err), 'the rejected certificates are counted in a warning naming the file',
             '\n'.join(err.splitlines()[:6]))

    for name, text in (('broken-ca.pem', BROKEN_PEM * 3), ('text-ca.pem', 'not a certificate at all\n')):
        path = os.path.join(h.tmp, name)
        with open(path, 'w') as f:
            f.write(text)
        db = os.path.join(h.tmp, name + '.db')
        rc, _, err = h.run_danmakud(['-d', db, '-s', 'wss://localhost:%d/' % mock.port, '--ca-file', path, '9999'])
        ck.check(rc == 1 and ('CA file %s: no certificate in it could be parsed' % path) in err,
                 '%s: exit 1 with an error naming the file' % name, (rc, err[-600:]))


def insecure_every_connect(h):
    ck = h.ck
    c = h.certs()
    mock = h.start_node_mock('--close-after', 40, cert=c['other_cert'])
    d = h.start_danmakud([9999], ['wss://localhost:%d/' % mock.port], extra=['--insecure'], name='insecure')
    ck.check(len(mock.wait_line(r'^SENT 9999', 60)) == 1, '--insecure: the second connection replays everything')
    rows = harness.wait_db(d.db, 'SELECT count(*) FROM sessions', lambda rs: rs and rs[0][0] >= 2, 20)
    ck.eq(h.stop_danmakud(d), 0, '--insecure: exit 0 on SIGTERM')
    sessions = harness.db_scalar(d.db, 'SELECT count(*) FROM sessions')
    err = d.stderr_text()
    per_connect = re.findall(r'warning: room 9999: wss://localhost:\d+/: TLS certificate and host name NOT verified',
                             err)
    ck.check(sessions >= 2 and len(per_connect) == sessions,
             '--insecure: one warning per connection (%d warnings, %d sessions)' % (len(per_connect), sessions))
    ck.eq(len(re.findall(r'warning: --insecure: TLS certificates and host names are NOT verified', err)), 1,
          '--insecure: and one at start')


def modes(h, mask):
    ck = h.ck
    mock = h.start_node_mock(plain=True)
    old = os.umask(mask)
    try:
        d = h.start_danmakud([9999], ['ws://127.0.0.1:%d/' % mock.port], name='umask%03o' % mask)
    finally:
        os.umask(old)
    ck.check(harness.wait_db(d.db, 'SELECT count(*) FROM messages', lambda rs: rs and rs[0][0] > 0, 30),
             'umask %03o: rows stored' % mask)
    # The WAL and its index exist while the recorder runs (a clean exit removes them).
    found = {}
    for suffix in ('', '-wal', '-shm'):
        try:
            found[suffix] = stat.S_IMODE(os.stat(d.db + suffix).st_mode)
        except FileNotFoundError:
            found[suffix] = None
    ck.eq(h.stop_danmakud(d), 0, 'umask %03o: exit 0' % mask)
    want = 0o640 if mask == 0 else 0o600
    ck.eq({k: '%o' % v if v is not None else None for k, v in found.items()},
          {k: '%o' % want for k in found},
          'umask %03o: the database, -wal and -shm are %o' % (mask, want))


def body(h):
    ca_files(h)
    insecure_every_connect(h)
    modes(h, 0)
    modes(h, 0o077)


if __name__ == '__main__':
    sys.exit(harness.Harness('tls_options').run(body))
