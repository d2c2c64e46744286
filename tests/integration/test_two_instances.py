#!/usr/bin/python3
"""One writer per database (issue 10 §2), against the real binary and the Python
`websockets` mock: a recorder runs on a database with the full-text index on (then, in a
second round, off). While it runs:

- a second danmakud on the same database, configured the other way round (fts on when
  the database has it off and vice versa, so that a store_open would change the schema),
  exits 1 with `database is in use by pid N`, N the first one's pid;
- `danmakud fts on` and `danmakud fts off` are refused the same way (exit 1, same message);
- `danmakud fts status` (read-only) still answers;
- the database is untouched: the full sqlite_master (type, name, tbl_name, sql),
  PRAGMA user_version and the FTS state are the same before and after, and the first
  recorder keeps running and stops cleanly (exit 0, every replayed message stored).

After the first recorder stops, the same `danmakud fts` command succeeds and does change
the schema: the refusal came from the lock, and the test can tell a changed schema.
"""

import os
import sys

import harness

ROOM = 9999


def snapshot(db):
    """Everything a schema migration or an index change would touch."""
    master = harness.db_rows(db, 'SELECT type, name, tbl_name, sql FROM sqlite_master '
                                 'ORDER BY type, name')
    version = harness.db_scalar(db, 'PRAGMA user_version')
    fts = sorted(n for (t, n, _, _) in master if n.startswith('messages_fts'))
    return {'sqlite_master': master, 'user_version': version, 'fts tables': fts}


def fts_status(h, db):
    rc, out, err = h.run_danmakud(['fts', '--db', db, 'status'])
    return rc, out.strip().split(' (')[0]


def write_conf(h, name, fts):
    path = os.path.join(h.tmp, name + '.conf')
    with open(path, 'w') as f:
        f.write('[recorder]\nfts = %s\n' % fts)
    return path


def round_(h, fts):
    ck = h.ck
    other = 'off' if fts == 'on' else 'on'
    tag = 'fts %s' % fts
    mock = h.start_py_mock(mode='ws')
    url = 'ws://127.0.0.1:%d/' % mock.port
    want = sum(harness.expected_type_counts(h.shared, ROOM).values())
    d = h.start_danmakud([ROOM], [url], name='first-' + fts,
                         extra=['--flush-ms', '100', '-c', write_conf(h, 'first-' + fts, fts)])
    ck.check(mock.wait_line(r'^SENT %d' % ROOM, 60), '%s: the mock replayed the capture' % tag)
    rows = harness.wait_db(d.db, 'SELECT count(*) FROM messages', lambda r: r and r[0][0] == want, 30)
    ck.eq(rows and rows[0][0], want, '%s: the first recorder stored the replay (%d rows)' % (tag, want))
    ck.eq(fts_status(h, d.db), (0, 'full-text index: %s' % fts), '%s: fts status before' % tag)
    before = snapshot(d.db)
    ck.check(bool(before['sqlite_master']) and before['user_version'],
             '%s: a schema and a user_version to compare (%d objects, version %r)'
             % (tag, len(before['sqlite_master']), before['user_version']))
    ck.eq(bool(before['fts tables']), fts == 'on', '%s: the index is %s in sqlite_master' % (tag, fts))

    in_use = 'database is in use by pid %d' % d.pid

    def unchanged(what):
        after = snapshot(d.db)
        for key in ('sqlite_master', 'user_version', 'fts tables'):
            ck.eq(after[key], before[key], '%s: %s unchanged after %s' % (tag, key, what))
        ck.eq(fts_status(h, d.db), (0, 'full-text index: %s' % fts),
              '%s: `danmakud fts status` (read-only) still answers %s after %s' % (tag, fts, what))

    conf2 = write_conf(h, 'second-' + fts, other)
    rc, out, err = h.run_danmakud(['-d', d.db, '-c', conf2, '-s', url, str(ROOM + 1)], timeout=20)
    ck.eq(rc, 1, '%s: a second danmakud on the database (config fts = %s) exits 1' % (tag, other))
    ck.check(in_use in err, '%s: it says "%s"' % (tag, in_use), err[-600:])
    unchanged('the second danmakud')
    for cmd in (other, fts):
        rc, out, err = h.run_danmakud(['fts', '--db', d.db, cmd], timeout=20)
        ck.eq(rc, 1, '%s: `danmakud fts %s` while recording exits 1' % (tag, cmd))
        ck.check(in_use in err, '%s: `danmakud fts %s` says "%s"' % (tag, cmd, in_use), err[-600:])
        unchanged('`danmakud fts %s`' % cmd)
    ck.check(d.alive(), '%s: the first recorder is still running' % tag)
    rc = h.stop_danmakud(d)
    ck.eq(rc, 0, '%s: the first recorder exits 0 on SIGTERM' % tag)
    ck.eq(harness.db_scalar(d.db, 'SELECT count(*) FROM messages'), want,
          '%s: nothing lost or added' % tag)
    mock.signal(15)
    mock.wait(10)

    # Now that nobody holds it, the same command goes through and the schema does change.
    rc, out, err = h.run_danmakud(['fts', '--db', d.db, other], timeout=60)
    ck.eq(rc, 0, '%s: after the recorder stopped, `danmakud fts %s` exits 0' % (tag, other))
    ck.eq(fts_status(h, d.db), (0, 'full-text index: %s' % other), '%s: and the index is %s' % (tag, other))
    changed = snapshot(d.db)
    ck.check(changed['sqlite_master'] != before['sqlite_master'] and
             bool(changed['fts tables']) == (other == 'on'),
             '%s: a change the comparison above would have caught' % tag)


def body(h):
    round_(h, 'on')
    round_(h, 'off')


if __name__ == '__main__':
    sys.exit(harness.Harness('two_instances').run(body))
