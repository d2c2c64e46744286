"""Helpers shared by the PostgreSQL tests of issue 13 (test_pg_mirror, test_pg_shard,
test_pg_outage): a real PostgreSQL 15 (pg_server.PgServer), danmakud nodes started from their
own config files, the thread count of every node sampled throughout, and the mock's view of
room connections (mock_douyu.js --conn-log / --sent-log) turned into hold intervals, overlaps
and gaps. Standard library only; every wait bounded; processes ended by PID (harness).

The mock is the judge of who held a room when: each node connects to its own request path
(ws://127.0.0.1:PORT/<node>), and the connection log names the path of every connection.
"""

import json
import os
import re
import shutil
import sqlite3
import threading
import time

import harness
from pg_server import PgServer, PgUnavailable

SEP = '\x1f'  # psql field separator: no text we select contains it


# --------------------------------------------------------------- prerequisites
def start_pg(h):
    """A PgServer, or None after a SKIP when PostgreSQL 15 is not installed (the test then
    exits 77). Any other failure to start it is an error, not a skip."""
    try:
        return PgServer()  # its own directory: as root, `nobody` must reach it
    except PgUnavailable as e:
        h.ck.skip('PostgreSQL 15 server', str(e))
        return None


def have_node(h):
    """False after a SKIP when Node or its `ws` package is missing."""
    if not shutil.which(h.args.node) and not os.access(h.args.node, os.X_OK):
        h.ck.skip('node', 'node not found: %r' % h.args.node)
        return False
    if not os.path.isdir(os.path.join(harness.HERE, 'node_modules', 'ws')):
        h.ck.skip('node ws package', harness.NPM_HINT)
        return False
    return True


def pg_pre(h):
    """PgServer for the test, or None (skipped)."""
    if not have_node(h):
        return None
    return start_pg(h)


# --------------------------------------------------------------- PostgreSQL
def pg_rows(pg, sql):
    """Rows of sql as tuples of strings (NULL: ''). Raises RuntimeError when psql fails: a
    final check must never pass on an empty answer to a query that failed."""
    out = pg.psql(sql, '-F', SEP)
    return [tuple(line.split(SEP)) for line in out.split('\n') if line != '']


def pg_try(pg, sql):
    """(ok, rows or error text): for polls, while PostgreSQL may be down or the schema not
    there yet."""
    try:
        return True, pg_rows(pg, sql)
    except Exception as e:  # noqa: BLE001 - the message is the answer
        return False, str(e)


def pg_int(pg, sql):
    """The integer in the first column of the first row (None: NULL or no row); raises when
    psql fails."""
    rows = pg_rows(pg, sql)
    try:
        return int(rows[0][0])
    except (IndexError, ValueError):
        return None


def poll_int(pg, sql):
    """pg_int for polls: None when psql fails."""
    try:
        return pg_int(pg, sql)
    except Exception:  # noqa: BLE001
        return None


# --------------------------------------------------------------- nodes
def write_node_conf(h, node, pg_url, mode, rooms, server, lease_s=None, keep_local_days=None,
                    metrics=True, max_rooms=None):
    """The config file of one node: its own database, metrics file (every second), the mock
    at `server`, [postgresql] url and [cluster] node/mode. Returns (conf path, db path,
    metrics path or None)."""
    db = os.path.join(h.tmp, node + '.db')
    prom = os.path.join(h.tmp, node + '.prom') if metrics else None
    lines = ['[recorder]', 'database = ' + db, 'flush_ms = 100', 'stats_interval_s = 0']
    if prom:
        lines += ['metrics_file = ' + prom, 'metrics_interval_s = 1']
    lines += ['[douyu]', 'servers = ' + server, '[postgresql]', 'url = ' + pg_url]
    if keep_local_days is not None:
        lines.append('keep_local_days = %d' % keep_local_days)
    lines += ['[cluster]', 'node = ' + node, 'mode = ' + mode]
    if lease_s is not None:
        lines.append('lease_s = %d' % lease_s)
    if max_rooms is not None:
        lines.append('max_rooms = %d' % max_rooms)
    lines.append('[rooms]')
    lines += ['%d = room %d' % (r, r) for r in rooms]
    conf = os.path.join(h.tmp, node + '.conf')
    with open(conf, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return conf, db, prom


def start_node(h, node, conf, db, name=None, env=None):
    """danmakud -c conf on db (rooms come from the config)."""
    d = h.start_danmakud([], [], extra=['-c', conf], db=db, name=name or node, env=env)
    d.node = node
    return d


def wait_for(fn, timeout, procs=(), interval=0.2):
    """harness.wait_until(fn), but gives up early when one of procs has exited (a node that
    died will not make anything true); returns fn's last value."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = fn()
        except (sqlite3.Error, OSError):
            v = None
        if v or time.monotonic() >= deadline or any(not p.alive() for p in procs):
            return v
        time.sleep(interval)


def log_has(d, pattern):
    """Lines of d's log (stderr) matching pattern (a regex searched in each line)."""
    rx = re.compile(pattern)
    return [l for l in d.stderr_text().splitlines() if rx.search(l)]


def metrics(path):
    """{name: float} from a Prometheus text file ({} if unreadable); a sample with labels is
    also filed under its bare name when it is the only one of that name."""
    out = {}
    labelled = {}
    try:
        with open(path, encoding='utf-8') as f:
            for line in f:
                if not line.strip() or line.startswith('#'):
                    continue
                m = re.match(r'^(\S+)\s+(\S+)', line)
                if m:
                    try:
                        v = float(m.group(2))
                    except ValueError:
                        continue
                    out[m.group(1)] = v
                    if '{' in m.group(1):
                        labelled.setdefault(m.group(1).split('{')[0], []).append(v)
    except OSError:
        pass
    for name, vs in labelled.items():
        if name not in out and len(vs) == 1:
            out[name] = vs[0]
    return out


class TaskSampler:
    """Counts /proc/<pid>/task of every registered node every 50 ms, from its start to its
    end: the issue's "/proc/<pid>/task == 1 on every node throughout"."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pids = {}   # pid -> label
        self.max = {}    # label -> most tasks seen
        self.samples = {}
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def add(self, proc, label):
        with self.lock:
            self.pids[proc.pid] = label
            self.max.setdefault(label, 0)
            self.samples.setdefault(label, 0)
        self._sample_one(proc.pid, label)

    def _sample_one(self, pid, label):
        try:
            n = len(os.listdir('/proc/%d/task' % pid))
        except OSError:
            return
        # A zombie (exited, not reaped yet) has no tasks worth counting.
        try:
            with open('/proc/%d/stat' % pid) as f:
                if f.read().rsplit(')', 1)[1].split()[0] == 'Z':
                    return
        except (OSError, IndexError):
            return
        with self.lock:
            self.max[label] = max(self.max[label], n)
            self.samples[label] += 1

    def _run(self):
        while not self.stop_ev.is_set():
            with self.lock:
                items = list(self.pids.items())
            for pid, label in items:
                self._sample_one(pid, label)
            time.sleep(0.05)

    def stop(self):
        self.stop_ev.set()
        self.t.join(5)

    def check(self, ck):
        self.stop()
        for label in sorted(self.max):
            ck.check(self.max[label] == 1 and self.samples[label] > 0,
                     '%s: /proc/<pid>/task == 1 throughout (%d samples, most %d)'
                     % (label, self.samples[label], self.max[label]))


# --------------------------------------------------------------- the mock's view
def read_jsonl(path):
    """Complete JSON lines of path (a line being written is left for the next read)."""
    out = []
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError:
        return out
    for line in data.split(b'\n')[:-1]:
        if line.strip():
            out.append(json.loads(line))
    return out


class Hold:
    """One connection's hold on a room, in ms since the epoch: from its loginreq to its
    logout or close (None: still open); covered from its joingroup."""

    def __init__(self, conn, room, path):
        self.conn, self.room, self.path = conn, room, path
        self.login = self.join = self.end = None
        self.close = None  # the close event

    @property
    def node(self):
        return self.path.strip('/').split('?')[0]

    def __repr__(self):
        return 'Hold(conn %s room %s %s login %s join %s end %s)' % (
            self.conn, self.room, self.path, self.login, self.join, self.end)


def holds(events):
    """{conn: Hold} from --conn-log events (connections that named a room)."""
    out = {}
    for e in events:
        if e.get('room') is None:
            continue
        hd = out.get(e['conn'])
        if hd is None:
            hd = out[e['conn']] = Hold(e['conn'], e['room'], e['path'])
        if e['ev'] == 'login' and hd.login is None:
            hd.login = e['t']
        elif e['ev'] == 'join' and hd.join is None:
            hd.join = e['t']
        elif e['ev'] in ('logout', 'close'):
            hd.end = e['t'] if hd.end is None else min(hd.end, e['t'])
            if e['ev'] == 'close':
                hd.close = e
    return out


def held_now(hs):
    """{room: [Hold]} of connections that joined and have not ended."""
    out = {}
    for hd in hs.values():
        if hd.join is not None and hd.end is None:
            out.setdefault(hd.room, []).append(hd)
    return out


def overlaps(hs):
    """[(room, hold a, hold b, ms)]: two connections of one room at the same time (from
    loginreq to logout/close; an open one lasts to now)."""
    INF = float('inf')
    by_room = {}
    for hd in hs.values():
        if hd.login is not None:
            by_room.setdefault(hd.room, []).append(hd)
    out = []
    for room, lst in by_room.items():
        lst.sort(key=lambda x: x.login)
        for i, a in enumerate(lst):
            for b in lst[i + 1:]:
                a_end = a.end if a.end is not None else INF
                if b.login < a_end:
                    b_end = b.end if b.end is not None else INF
                    ms = min(a_end, b_end) - b.login
                    out.append((room, a, b, ms))
    return out


def coverage_gaps(hs, rooms=None):
    """{room: [(from_ms, to_ms)]}: per room, the times between the first join and the last
    end that no joined connection covered (coverage: join to logout/close), like the gaps
    view computes them from sessions."""
    INF = float('inf')
    by_room = {}
    for hd in hs.values():
        if hd.join is not None and (rooms is None or hd.room in rooms):
            by_room.setdefault(hd.room, []).append((hd.join, hd.end if hd.end is not None else INF))
    out = {}
    for room, iv in by_room.items():
        iv.sort()
        gaps = []
        cur_end = iv[0][1]
        for s, e in iv[1:]:
            if s > cur_end:
                gaps.append((cur_end, s))
            cur_end = max(cur_end, e)
        out[room] = gaps
    return out


def match_gaps(want, got, tol_ms):
    """Pairs each (from, to) of want with one of got within tol_ms on both edges, in order.
    Returns (matched [(w, g)], unmatched want, unmatched got)."""
    got_left = sorted(got)
    matched, miss = [], []
    for w in sorted(want):
        best = None
        for g in got_left:
            if abs(g[0] - w[0]) <= tol_ms and abs(g[1] - w[1]) <= tol_ms:
                if best is None or abs(g[0] - w[0]) + abs(g[1] - w[1]) < \
                        abs(best[0] - w[0]) + abs(best[1] - w[1]):
                    best = g
        if best is None:
            miss.append(w)
        else:
            got_left.remove(best)
            matched.append((w, best))
    return matched, miss, got_left


class View:
    """The mock's connection log, re-read on demand, for n rooms."""

    def __init__(self, path, n):
        self.path = path
        self.n = n
        self.refresh()

    def refresh(self):
        self.events = read_jsonl(self.path)
        self.hs = holds(self.events)
        self.now = held_now(self.hs)
        return self

    def holder(self):
        """{room: node} for rooms held by exactly one joined connection."""
        return {int(r): lst[0].node for r, lst in self.now.items() if len(lst) == 1}

    def all_held(self):
        return len(self.holder()) == self.n and all(len(lst) == 1 for lst in self.now.values())

    def last_event_ms(self):
        return self.events[-1]['t'] if self.events else 0

    def joins_after(self, t_ms, rooms, not_node):
        """{room: first join at or after t_ms by a node other than not_node}."""
        out = {}
        for hd in self.hs.values():
            r = int(hd.room)
            if r in rooms and hd.node != not_node and hd.join is not None and hd.join >= t_ms:
                out[r] = min(out.get(r, hd.join), hd.join)
        return out


def wait_stable(view, quiet_s, timeout, procs):
    """Until all rooms are held once and the log has been quiet for quiet_s."""
    return wait_for(lambda: view.refresh().all_held() and
                       time.time() * 1000 - view.last_event_ms() >= quiet_s * 1000,
                       timeout, procs, 0.25)


def fmt_ms(ms):
    if ms is None or ms == float('inf'):
        return 'open'
    return time.strftime('%H:%M:%S', time.gmtime(ms / 1000.0)) + '.%03d' % (int(ms) % 1000)


# --------------------------------------------------------------- local databases
def local_rows(db, sql, params=()):
    try:
        return harness.db_rows(db, sql, params)
    except sqlite3.Error:
        return []


def unshipped(pg, db, node, max_id=None):
    """Rows of node's local database (id <= max_id if given) that PostgreSQL does not hold:
    neither as (node, local_id) nor, for a row with a cid, as that cid of the room (stored by
    another node). Returns (number of local rows looked at, [missing (id, room, cid)]), or
    (None, None) if PostgreSQL did not answer."""
    rows = local_rows(db, 'SELECT id, platform, room_id, cid FROM messages' +
                      ('' if max_id is None else ' WHERE id <= %d' % max_id))
    ok, have = pg_try(pg, "SELECT local_id FROM messages WHERE node = '%s'" % node)
    ok2, cids = pg_try(pg, 'SELECT platform, room_id, cid FROM message_cids')
    if not ok or not ok2:
        return None, None
    have = {int(r[0]) for r in have}
    cids = {(r[0], int(r[1]), r[2]) for r in cids}
    missing = [(i, room, cid) for (i, plat, room, cid) in rows
               if i not in have and (cid is None or (plat, room, cid) not in cids)]
    return len(rows), missing


def wait_shipped(pg, db, node, timeout, max_id=None, procs=()):
    """Polls until unshipped() finds nothing; returns (looked at, missing) of the last poll."""
    last = [(None, None)]

    def probe():
        last[0] = unshipped(pg, db, node, max_id)
        return last[0][1] == []
    wait_for(probe, timeout, procs, 0.5)
    return last[0]


def file_size(path):
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def db_disk(db):
    """Bytes of the database, its -wal and -shm files."""
    return sum(file_size(db + s) for s in ('', '-wal', '-shm'))
