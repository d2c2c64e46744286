#!/usr/bin/python3
"""Churn (issue 7): SIGHUP reload cycles that swap 1,000 recorded rooms for
1,000 others and back (--rooms, --cycles: 3 in CI, `--cycles 20` by hand),
while fault_server.py streams numbered messages to every joined room. After
each reload: every new room joins, every dropped room's session ends
'removed', and the open fds come back to what the same number of rooms used
before (no descriptor leak per room). At the end: exit 0, no duplicate cid,
every session closed.
"""

import os
import resource
import signal
import sys
import time

import harness
from fault_common import start_fault, stderr_lines, wait_stderr

N = 1000
CYCLES = 3  # CI; the documented long run: --cycles 20


def fds(pid):
    try:
        return len(os.listdir('/proc/%d/fd' % pid))
    except OSError:
        return -1


def write_conf(path, url, rooms):
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write('[recorder]\nflush_ms = 250\n[douyu]\nservers = %s\n[rooms]\n' % url)
        f.write(''.join('%d =\n' % r for r in rooms))
    os.rename(tmp, path)


def body(h):
    ck = h.ck
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * N + 256)), hard))
    sets = [list(range(300001, 300001 + N)), list(range(400001, 400001 + N))]
    srv = start_fault(h, '--rate', 1, '--tick', 0.5, name='churn')
    conf = os.path.join(h.tmp, 'churn.conf')
    write_conf(conf, srv.url, sets[0])
    d = h.start_danmakud([], [], extra=['-c', conf], name='churn')
    joined = harness.wait_db(d.db, 'SELECT count(*) FROM sessions WHERE joined_at IS NOT NULL AND ended_at IS NULL',
                             lambda r: r and r[0][0] >= N, 120)
    ck.check(joined and joined[0][0] >= N, 'churn: %d rooms joined' % N)
    base = {0: fds(d.pid)}
    d.signal(signal.SIGHUP)
    time.sleep(1)
    if not ck.check(not stderr_lines(d, r'reload is not supported|nothing to reload'),
                    'churn: SIGHUP reloads the config', stderr_lines(d, r'reload')):
        h.stop_danmakud(d)
        return
    for cycle in range(1, CYCLES + 1):
        cur = sets[cycle % 2]
        write_conf(conf, srv.url, cur)
        before = len(stderr_lines(d, r'reloaded: '))
        d.signal(signal.SIGHUP)
        got = wait_stderr(d, r'reloaded: ', 30, count=before + 1)
        ck.check(len(got) > before and '%d added, %d removed' % (N, N) in got[-1],
                 'cycle %d: reload swapped %d rooms for %d others (%s)' % (cycle, N, N, got[-1:] and got[-1][-120:]))
        lo, hi = cur[0], cur[-1]
        rows = harness.wait_db(
            d.db, 'SELECT count(*) FROM sessions WHERE room_id BETWEEN ? AND ? AND joined_at IS NOT NULL '
                  'AND ended_at IS NULL', lambda r: r and r[0][0] >= N, 120, (lo, hi))
        ck.check(rows and rows[0][0] >= N, 'cycle %d: all %d new rooms joined' % (cycle, N))
        old = sets[(cycle + 1) % 2]
        rows = harness.wait_db(
            d.db, "SELECT count(*) FROM sessions WHERE room_id BETWEEN ? AND ? AND ended_at IS NULL",
            lambda r: r and r[0][0] == 0, 60, (old[0], old[-1]))
        ck.check(rows and rows[0][0] == 0, 'cycle %d: every dropped room stopped' % cycle)
        n_fd = harness.wait_until(lambda: fds(d.pid) <= base.get(cycle % 2, 1 << 30) + 8 and fds(d.pid), 10)
        n_fd = fds(d.pid)
        if cycle % 2 not in base:
            base[cycle % 2] = n_fd
        ck.check(n_fd <= base[cycle % 2] + 8, 'cycle %d: %d open fds (first time with this set: %d)'
                 % (cycle, n_fd, base[cycle % 2]))
    ck.check(d.alive(), 'churn: still running after %d reloads' % CYCLES)
    rc = h.stop_danmakud(d, timeout=60)
    ck.eq(rc, 0, 'churn: exit 0')
    reasons = dict(harness.db_rows(d.db, 'SELECT end_reason, count(*) FROM sessions GROUP BY 1'))
    ck.note('churn: session end reasons %r' % reasons)
    ck.eq(reasons.get('removed', 0), CYCLES * N, 'churn: %d sessions ended "removed"' % (CYCLES * N))
    ck.eq(harness.db_scalar(d.db, 'SELECT count(*) FROM sessions WHERE ended_at IS NULL'), 0,
          'churn: every session closed')
    ck.eq(harness.db_scalar(d.db, "SELECT count(*) - count(DISTINCT room_id || '/' || cid) FROM messages"), 0,
          'churn: no duplicate cid')
    srv.signal(signal.SIGTERM)


if __name__ == '__main__':
    for flag in ('--cycles', '--rooms'):
        if flag in sys.argv:
            i = sys.argv.index(flag)
            if flag == '--cycles':
                CYCLES = int(sys.argv[i + 1])
            else:
                N = int(sys.argv[i + 1])
            del sys.argv[i:i + 2]
    sys.exit(harness.Harness('fault_churn').run(body))
