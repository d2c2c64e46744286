#!/usr/bin/python3
"""Hot reload (SIGHUP, issue 4): added rooms start, removed rooms stop with end_reason
'removed', unchanged rooms keep their connections (their session ids do not change and their
sessions stay open), labels are updated in the rooms table, rooms given on the command line
are kept, a config with an error is refused whole, and a removed room can come back."""

import os
import signal
import sys

import harness

A, B, C, D, E = 9999, 288016, 71017, 5720533, 606118  # E: on the command line only


def write(path, text):
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


def conf_text(port, rooms, extra=''):
    return ('[recorder]\nflush_ms = 100\n%s[douyu]\nservers = ws://127.0.0.1:%d/\n[rooms]\n' % (extra, port)
            + ''.join('%d = %s\n' % (r, label) for r, label in rooms))


def sessions(db):
    """{room: [(id, ended_at, end_reason)]}"""
    out = {}
    for rid, sid, ended, reason in harness.db_rows(
            db, 'SELECT room_id, id, ended_at, end_reason FROM sessions ORDER BY id'):
        out.setdefault(rid, []).append((sid, ended, reason))
    return out


def handled(err):
    """Reloads finished so far: applied, or refused."""
    return err.count('reloaded: ') + err.count('keeping the running configuration')


def body(h):
    ck = h.ck
    mock = h.start_py_mock(mode='ws')
    conf = os.path.join(h.tmp, 'rooms.conf')
    write(conf, conf_text(mock.port, [(A, 'alpha'), (B, 'beta'), (C, 'gamma')]))
    d = h.start_danmakud([E], [], extra=['-c', conf], name='reload')
    db = d.db
    reloads = [0]

    def hup_and_wait(what):
        reloads[0] += 1
        n = reloads[0]
        d.signal(signal.SIGHUP)
        ok = harness.wait_until(lambda: handled(d.stderr_text()) >= n, 15)
        ck.check(ok, '%s: SIGHUP handled' % what)

    # 1. Everything recorded once.
    first = [A, B, C, E]
    want = {r: sum(harness.expected_type_counts(h.shared, r).values()) for r in first}
    ck.eq(len(mock.wait_line(r'^SENT ', 40, count=len(first))), len(first), 'replay done for A, B, C, E')
    rows = harness.wait_db(db, 'SELECT room_id, count(*) FROM messages GROUP BY room_id',
                           lambda rs: dict(rs) == want, 30)
    ck.eq(dict(rows or []), want, 'all four rooms stored in full')
    before = sessions(db)
    ck.eq(sorted(before), sorted(first), 'one session row per room')
    ck.check(all(len(v) == 1 and v[0][1] is None for v in before.values()), 'all sessions open', before)
    ck.eq(dict(harness.db_rows(db, 'SELECT room_id, label FROM rooms')),
          {A: 'alpha', B: 'beta', C: 'gamma', E: None}, 'labels stored')

    # 2. Reload: A unchanged, B relabelled, C removed, D added; E is not in the file.
    write(conf, conf_text(mock.port, [(A, 'alpha'), (B, 'beta two'), (D, 'delta')]))
    hup_and_wait('reload 1')
    ck.check(mock.wait_line(r'^SENT %d ' % D, 30), 'added room D joined and got its replay')
    ck.check(mock.wait_line(r'^LOGOUT %d' % C, 15), 'removed room C logged out')
    rows = harness.wait_db(db, 'SELECT ended_at, end_reason FROM sessions WHERE room_id=?',
                           lambda rs: rs and rs[0][0] is not None, 15, (C,))
    ck.eq([r[1] for r in rows or []], ['removed'], "removed room's session ended with reason 'removed'")
    want_d = sum(harness.expected_type_counts(h.shared, D).values())
    rows = harness.wait_db(db, 'SELECT count(*) FROM messages WHERE room_id=?',
                           lambda rs: rs and rs[0][0] == want_d, 30, (D,))
    ck.eq(rows[0][0] if rows else None, want_d, 'room D stored in full')
    after = sessions(db)
    for r, what in ((A, 'unchanged room A'), (B, 'relabelled room B'), (E, 'command-line room E')):
        ck.eq(after.get(r), before.get(r), '%s keeps its connection: same session id, still open' % what)
    ck.eq(len(after.get(D, [])), 1, 'room D: one session')
    ck.eq(dict(harness.db_rows(db, 'SELECT room_id, label FROM rooms')),
          {A: 'alpha', B: 'beta two', C: 'gamma', D: 'delta', E: None}, 'label of B updated, D added')
    ck.check('reloaded: 4 rooms: 1 added, 1 removed, 1 relabelled, 2 unchanged' in d.stderr_text(),
             'reload summary logged', d.stderr_text()[-1500:])
    ck.eq(mock.matching(r'^LOGOUT (%d|%d|%d|%d)\b' % (A, B, D, E)), [], 'nobody else logged out')

    # 3. A config with an error is refused whole: nothing changes.
    write(conf, conf_text(mock.port, [(A, 'alpha')], extra='metrics_interval_s = fast\n'))
    hup_and_wait('bad reload')
    err = d.stderr_text()
    ck.check('rooms.conf:3: metrics_interval_s: expected an integer' in err and 'keeping the running configuration' in err,
             'bad config: error with file and line logged', err[-1500:])
    ck.eq(sessions(db), after, 'bad config: no session started or ended')
    ck.check(d.alive(), 'bad config: still running')
    write(conf, conf_text(mock.port, [(A, 'alpha'), (B, 'beta two'), (D, 'delta'), (A, 'twice')]))
    hup_and_wait('duplicate room')
    ck.check('already listed on line' in d.stderr_text(), 'duplicate room refused with its line')
    ck.eq(sessions(db), after, 'duplicate room: nothing changed')

    # 4. C comes back: a new session for C only.
    write(conf, conf_text(mock.port, [(A, 'alpha'), (B, 'beta two'), (C, 'gamma'), (D, 'delta')]))
    hup_and_wait('re-add')
    rows = harness.wait_db(db, 'SELECT id, joined_at, ended_at FROM sessions WHERE room_id=? ORDER BY id',
                           lambda rs: len(rs) == 2 and rs[1][1] is not None, 30, (C,))
    ck.check(rows and len(rows) == 2 and rows[1][2] is None, 're-added room C: a second session, joined and open', rows)
    final = sessions(db)
    for r in (A, B, D, E):
        ck.eq(final.get(r), after.get(r), 'room %d untouched by the re-add' % r)

    rc = h.stop_danmakud(d)
    ck.eq(rc, 0, 'exit 0 on SIGTERM')
    reasons = {r: [s[2] for s in v] for r, v in sessions(db).items()}
    ck.eq(reasons, {A: ['shutdown'], B: ['shutdown'], C: ['removed', 'shutdown'], D: ['shutdown'],
                    E: ['shutdown']}, 'end reasons after the stop')
    ck.eq(mock.matching('PROTO_ERROR'), [], 'mock saw no protocol errors')
    mock.signal(signal.SIGTERM)
    mock.wait(10)


if __name__ == '__main__':
    sys.exit(harness.Harness('reload').run(body))
