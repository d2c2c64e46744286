#!/usr/bin/python3
"""Running as a service (issue 4): the systemd notify protocol through test sockets (a path
and an abstract one), the watchdog, RELOADING/READY around SIGHUP, STOPPING on SIGTERM; the
Prometheus metrics file; journald-style log lines under JOURNAL_STREAM; --check-config and
command-line flags overriding the file.

The notify receiver, the metrics-format checks and the expected counts are written here, from
sd_notify(3) and the Prometheus text-format description, independent of danmakud's C code."""

import os
import re
import signal
import socket
import sys
import threading
import time

import harness


class NotifySocket:
    """An AF_UNIX datagram socket standing in for systemd; collects every message."""

    def __init__(self, addr):
        self.addr = addr
        self.msgs = []
        self.cond = threading.Condition()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind('\0' + addr[1:] if addr.startswith('@') else addr)
        self.sock.settimeout(0.2)
        self.closed = False
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        while not self.closed:
            try:
                data = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.cond:
                self.msgs.append(data.decode('utf-8', 'replace'))
                self.cond.notify_all()

    def wait_for(self, pred, timeout, start=0):
        """First message at index >= start with pred(fields); returns (index, fields) or (None, None).
        fields: the KEY=value lines as a dict."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i in range(start, len(self.msgs)):
                    f = parse_notify(self.msgs[i])
                    if pred(f):
                        return i, f
                left = deadline - time.monotonic()
                if left <= 0:
                    return None, None
                self.cond.wait(min(left, 0.2))

    def count(self, pred):
        with self.cond:
            return sum(1 for m in self.msgs if pred(parse_notify(m)))

    def close(self):
        self.closed = True
        self.t.join(5)
        self.sock.close()


def parse_notify(msg):
    out = {}
    for line in msg.split('\n'):
        if '=' in line:
            k, v = line.split('=', 1)
            out[k] = v
    return out


# --------------------------------------------------------------- Prometheus text format
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')


def parse_prom(text):
    """-> (samples {(name, frozenset(labels)): value}, types {name: type}, problems [str])."""
    samples, types, helps, problems = {}, {}, set(), []
    current = None
    for n, line in enumerate(text.split('\n'), 1):
        if not line:
            continue
        if line.startswith('# HELP '):
            name = line.split(' ')[2]
            if name in helps:
                problems.append('line %d: second HELP for %s' % (n, name))
            helps.add(name)
            continue
        if line.startswith('# TYPE '):
            parts = line.split(' ')
            if len(parts) != 4 or parts[3] not in ('counter', 'gauge', 'untyped', 'histogram', 'summary'):
                problems.append('line %d: bad TYPE line %r' % (n, line))
                continue
            if parts[2] in types:
                problems.append('line %d: second TYPE for %s' % (n, parts[2]))
            types[parts[2]] = parts[3]
            current = parts[2]
            continue
        if line.startswith('#'):
            continue
        m = SAMPLE.match(line)
        if not m:
            problems.append('line %d: not a sample: %r' % (n, line))
            continue
        name, labels = m.group(1), {}
        if m.group(3):
            rest = m.group(3)
            pos = 0
            while pos < len(rest):
                lm = LABEL.match(rest, pos)
                if not lm:
                    problems.append('line %d: bad labels %r' % (n, rest))
                    break
                labels[lm.group(1)] = re.sub(r'\\(.)', lambda x: '\n' if x.group(1) == 'n' else x.group(1),
                                             lm.group(2))
                pos = lm.end()
        if name != current:
            problems.append('line %d: sample %s outside its family (%s)' % (n, name, current))
        if name.endswith('_total') and types.get(name) != 'counter':
            problems.append('line %d: %s ends in _total but is not a counter' % (n, name))
        key = (name, frozenset(labels.items()))
        if key in samples:
            problems.append('line %d: duplicate sample %r' % (n, key))
        samples[key] = float(m.group(4))
    return samples, types, problems


def sample(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())))


def read(path):
    try:
        with open(path, encoding='utf-8') as f:
            return f.read()
    except OSError:
        return None


def write(path, text):
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


# --------------------------------------------------------------- the tests
def notify_path_socket(h):
    ck = h.ck
    ck.note('---- notify over a path socket, watchdog, reload, stop, metrics ----')
    mock = h.start_py_mock(mode='ws')
    rooms = [9999, 288016]
    metrics_dir = os.path.join(h.tmp, 'metrics')
    os.makedirs(metrics_dir)
    prom = os.path.join(metrics_dir, 'danmakud.prom')
    conf = os.path.join(h.tmp, 'svc.conf')
    unused_db = os.path.join(h.tmp, 'from-config.db')
    write(conf, '[recorder]\ndatabase = %s\nflush_ms = 100\nmetrics_file = %s\nmetrics_interval_s = 1\n'
                '[douyu]\nservers = ws://127.0.0.1:%d/\n'
                '[rooms]\n9999 = 主播 "A" \\ B\n288016 =\n' % (unused_db, prom, mock.port))
    ns = NotifySocket(os.path.join(h.tmp, 'notify.sock'))
    try:
        env = dict(os.environ, NOTIFY_SOCKET=ns.addr, WATCHDOG_USEC='2000000')
        env.pop('WATCHDOG_PID', None)
        env.pop('JOURNAL_STREAM', None)
        d = h.start_danmakud([], [], extra=['-c', conf], name='svc', env=env)
        i, f = ns.wait_for(lambda f: f.get('READY') == '1', 20)
        ck.check(i is not None, 'READY=1 received')
        ck.check(harness.db_scalar(d.db, "SELECT count(*) FROM sqlite_master WHERE name='messages'") == 1,
                 'at READY=1 the database is open with its schema')
        ck.check(i is not None and 'STATUS' in f, 'READY=1 comes with a STATUS= line', f)

        want = {r: sum(harness.expected_type_counts(h.shared, r).values()) for r in rooms}
        sent = mock.wait_line(r'^SENT ', 30, count=len(rooms))
        ck.eq(len(sent), len(rooms), 'mock replayed the capture to both rooms')
        rows = harness.wait_db(d.db, 'SELECT room_id, count(*) FROM messages GROUP BY room_id',
                               lambda rs: dict(rs) == want, 30)
        ck.eq(dict(rows or []), want, 'all messages stored in the -d database')
        ck.check(not os.path.exists(unused_db), '-d overrides the database of the config file')

        _, f = ns.wait_for(lambda f: f.get('STATUS', '').startswith('rooms live 2/2'), 20)
        ck.check(f is not None, 'STATUS= shows "rooms live 2/2" (%r)' % (f or {}).get('STATUS'))
        if f:
            ck.check(re.match(r'^rooms live 2/2, \d+\.\d msg/s, queued \d+ rows, stored \d+, dropped 0$',
                              f['STATUS']), 'STATUS= format: live/total, msg/s, queued rows', f['STATUS'])
        ck.check(ns.wait_for(lambda f: f.get('WATCHDOG') == '1', 20, start=0)[0] is not None,
                 'WATCHDOG=1 received (WATCHDOG_USEC=2000000)')
        n0 = ns.count(lambda f: f.get('WATCHDOG') == '1')
        ok = harness.wait_until(lambda: ns.count(lambda f: f.get('WATCHDOG') == '1') >= n0 + 2, 20)
        ck.check(ok, 'WATCHDOG=1 keeps coming (%d so far)' % ns.count(lambda f: f.get('WATCHDOG') == '1'))

        # The metrics file: valid text format, the right numbers.
        def metrics_done():
            s, _, _ = parse_prom(read(prom) or '')
            return all(sample(s, 'danmakud_room_messages_stored_total', room=str(r)) == want[r] for r in rooms) \
                and sample(s, 'danmakud_rooms_live') == 2
        ck.check(harness.wait_until(metrics_done, 20), 'metrics file shows both rooms live with every message stored')
        text = read(prom) or ''
        s, types, problems = parse_prom(text)
        ck.eq(problems, [], 'metrics file is valid Prometheus text format')
        ck.eq(sample(s, 'danmakud_rooms'), 2.0, 'danmakud_rooms 2')
        for r in rooms:
            ck.check((sample(s, 'danmakud_room_messages_received_total', room=str(r)) or 0) >= want[r],
                     'room %d: received_total >= stored' % r)
            ck.eq(sample(s, 'danmakud_room_live', room=str(r)), 1.0, 'room %d: live gauge 1' % r)
            ck.eq(sample(s, 'danmakud_room_state', room=str(r), state='live'), 1.0, 'room %d: state live' % r)
            age = sample(s, 'danmakud_room_last_message_age_seconds', room=str(r))
            ck.check(age is not None and age >= 0, 'room %d: last_message_age_seconds present (%r)' % (r, age))
            ck.check(sample(s, 'danmakud_room_session_start_timestamp_seconds', room=str(r)) is not None,
                     'room %d: session start present' % r)
        ck.eq(sample(s, 'danmakud_room_info', room='9999', label='主播 "A" \\ B'), 1.0,
              'room label escaped and read back intact')
        ck.eq(types.get('danmakud_room_messages_received_total'), 'counter', 'received_total is a counter')
        ck.eq(types.get('danmakud_queue_rows'), 'gauge', 'queue_rows is a gauge')
        ck.check(sample(s, 'danmakud_messages_dropped_total') == 0.0, 'dropped_total 0')
        ck.eq([n for n in os.listdir(metrics_dir) if n != 'danmakud.prom'], [],
              'only the metrics file in its directory (temporary renamed away)')

        # SIGHUP: RELOADING=1 + MONOTONIC_USEC, then READY=1.
        start = len(ns.msgs)
        d.signal(signal.SIGHUP)
        i, f = ns.wait_for(lambda f: f.get('RELOADING') == '1', 20, start=start)
        ck.check(i is not None, 'SIGHUP: RELOADING=1')
        if i is not None:
            mono = f.get('MONOTONIC_USEC', '')
            ck.check(mono.isdigit() and 0 < int(mono) <= int(time.monotonic() * 1e6),
                     'RELOADING=1 carries MONOTONIC_USEC from CLOCK_MONOTONIC (%r)' % mono)
            j, _ = ns.wait_for(lambda f: f.get('READY') == '1', 20, start=i + 1)
            ck.check(j is not None, 'SIGHUP: READY=1 after RELOADING=1')
        ok = harness.wait_until(lambda: 'reloaded:' in d.stderr_text(), 10)
        ck.check(ok, 'reload logged')

        start = len(ns.msgs)
        rc = h.stop_danmakud(d)
        ck.eq(rc, 0, 'exit 0 on SIGTERM')
        i, f = ns.wait_for(lambda f: f.get('STOPPING') == '1', 5, start=start)
        ck.check(i is not None, 'SIGTERM: STOPPING=1')
        ck.check(ns.wait_for(lambda f: f.get('READY') == '1', 0, start=start)[0] is None,
                 'no READY=1 after STOPPING=1')
        ck.eq(harness.db_rows(d.db, 'SELECT DISTINCT end_reason FROM sessions'), [('shutdown',)],
              'sessions ended with shutdown')
        ck.eq([n for n in os.listdir(metrics_dir) if n.endswith('.tmp')], [], 'no temporary metrics file left')
    finally:
        ns.close()
        mock.signal(signal.SIGTERM)
        mock.wait(10)


def notify_abstract_socket(h):
    ck = h.ck
    ck.note('---- notify over an abstract socket ----')
    mock = h.start_py_mock(mode='ws')
    ns = NotifySocket('@danmakud-test-%d-%d' % (os.getpid(), int(time.monotonic() * 1000)))
    try:
        env = dict(os.environ, NOTIFY_SOCKET=ns.addr)
        for k in ('WATCHDOG_USEC', 'WATCHDOG_PID', 'JOURNAL_STREAM'):
            env.pop(k, None)
        d = h.start_danmakud([9999], ['ws://127.0.0.1:%d/' % mock.port], name='abstract', env=env)
        i, f = ns.wait_for(lambda f: f.get('READY') == '1', 20)
        ck.check(i is not None, 'abstract socket: READY=1')
        ck.check(mock.wait_line(r'^SENT 9999', 30), 'abstract socket: recording')
        _, f = ns.wait_for(lambda f: f.get('STATUS', '').startswith('rooms live 1/1'), 20)
        ck.check(f is not None, 'abstract socket: STATUS= rooms live 1/1')
        start = len(ns.msgs)
        rc = h.stop_danmakud(d)
        ck.eq(rc, 0, 'abstract socket: exit 0')
        ck.check(ns.wait_for(lambda f: f.get('STOPPING') == '1', 5, start=start)[0] is not None,
                 'abstract socket: STOPPING=1')
        ck.eq(ns.count(lambda f: 'WATCHDOG' in f), 0, 'no WATCHDOG=1 without WATCHDOG_USEC')
    finally:
        ns.close()
        mock.signal(signal.SIGTERM)
        mock.wait(10)


TIMESTAMP = re.compile(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d')


def journal_lines(h):
    ck = h.ck
    ck.note('---- log format under JOURNAL_STREAM ----')
    # Nothing listens on a port we bound and closed: connection refused, a warning.
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    for name, matching in (('journal', True), ('journal-other', False)):
        errp = os.path.join(h.tmp, name + '.stderr')
        open(errp, 'wb').close()  # the inode the child's stderr will be
        st = os.stat(errp)
        env = dict(os.environ)
        for k in ('NOTIFY_SOCKET', 'WATCHDOG_USEC'):
            env.pop(k, None)
        env['JOURNAL_STREAM'] = '%d:%d' % (st.st_dev, st.st_ino) if matching else '%d:%d' % (st.st_dev, st.st_ino + 1)
        d = h.start_danmakud([9999], ['ws://127.0.0.1:%d/' % port], name=name, env=env)
        ok = harness.wait_until(lambda: re.search(r'connection refused', d.stderr_text()), 15)
        ck.check(ok, '%s: the refused connection is logged' % name)
        rc = h.stop_danmakud(d)
        ck.eq(rc, 0, '%s: exit 0' % name)
        lines = [l for l in d.stderr_text().splitlines() if l]
        ck.check(len(lines) >= 3, '%s: several log lines (%d)' % (name, len(lines)))
        if matching:
            bad = [l for l in lines if not re.match(r'^<[3-7]>\S', l) or TIMESTAMP.search(l)]
            ck.eq(bad, [], 'JOURNAL_STREAM = stderr: every line starts with <N> and has no timestamp')
            ck.check(any(l.startswith('<6>recording ') for l in lines), 'info lines are <6>', lines[:5])
            ck.check(any(l.startswith('<4>') and 'connection refused' in l for l in lines),
                     'the refused connection is a <4> warning')
            ck.check(any(l.startswith('<5>') and 'reconnecting in' in l for l in lines),
                     'the backoff delay is logged (<5>)')
            ck.check(any(l.startswith('<7>') for l in lines), '-v debug lines are <7>')
        else:
            bad = [l for l in lines if not TIMESTAMP.match(l)]
            ck.eq(bad, [], 'JOURNAL_STREAM naming another file: timestamps, no <N>')


def check_config(h):
    ck = h.ck
    ck.note('---- --check-config ----')
    good = os.path.join(h.tmp, 'good.conf')
    write(good, '[recorder]\ndatabase = from-file.db\nmetrics_file = m.prom\nstats_interval_s = 0\n'
                '[douyu]\nheartbeat_s = 30\n[rooms]\n1 = one\n2 =\n')
    rc, out, err = h.run_danmakud(['--check-config', '-c', good])
    ck.eq(rc, 0, 'valid config: exit 0')
    ck.check('2 rooms' in out and 'from-file.db' in out and 'm.prom' in out, 'summary on stdout', out + err)
    rc, out, err = h.run_danmakud(['--check-config', '-c', good, '-d', 'cli.db', '3'])
    ck.eq(rc, 0, 'valid config plus flags: exit 0')
    ck.check('3 rooms' in out and 'cli.db' in out and 'from-file.db' not in out,
             '-d overrides database; command-line rooms are added', out)
    for text, want, what in (
            ('[recorder]\nflush_ms = 5\n', r'bad\.conf:2: flush_ms', 'value out of range'),
            ('[recorder]\nmetrics_interval = 5\n', r'bad\.conf:2: unknown key', 'unknown key'),
            ('[rooms]\n1 =\n1 = again\n', r'bad\.conf:3: room 1 already listed on line 2', 'duplicate room'),
            ('[douyu]\nservers = http://x:1/\n', r'bad\.conf:2: servers', 'bad server')):
        bad = os.path.join(h.tmp, 'bad.conf')
        write(bad, text)
        rc, out, err = h.run_danmakud(['--check-config', '-c', bad])
        ck.eq(rc, 2, '%s: exit 2' % what)
        ck.check(re.search(want, err), '%s: error names file and line' % what, err)
    rc, out, err = h.run_danmakud(['--check-config', '-c', os.path.join(h.tmp, 'missing.conf')])
    ck.eq(rc, 2, 'missing config file: exit 2')
    ck.check('missing.conf' in err, 'missing config file: named in the error', err)


def body(h):
    check_config(h)
    notify_path_socket(h)
    notify_abstract_socket(h)
    journal_lines(h)


if __name__ == '__main__':
    sys.exit(harness.Harness('service').run(body))
