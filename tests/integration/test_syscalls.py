#!/usr/bin/python3
"""danmakud makes no system call of systemd's @resources group (setrlimit, setpriority,
sched_set*, mbind, ...), so the unit's SystemCallFilter=~@resources cannot break it, and sets no
resource limit at all: glibc's setrlimit() is the prlimit64 system call, which systemd files
under @default, so every prlimit64 must be a read (new limit NULL). A whole recording under
`strace -f` (over wss with TLS and over ws, a SIGHUP reload, SIGTERM) is checked against the
group's list as `systemd-analyze syscall-filter @resources` prints it.
A sanitizer runtime makes such calls of its own before main (ASan's setrlimit of RLIMIT_CORE), so
a sanitized binary is run with the sanitizer options that avoid them (and without LeakSanitizer,
which cannot work under ptrace). Exit 77 (skip) without
strace or when ptrace is not permitted.
"""

import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time

import harness

# systemd 252's @resources, for a machine without systemd-analyze.
RESOURCES = ['ioprio_set', 'mbind', 'migrate_pages', 'move_pages', 'nice', 'sched_setaffinity',
             'sched_setattr', 'sched_setparam', 'sched_setscheduler', 'set_mempolicy',
             'set_mempolicy_home_node', 'setpriority', 'setrlimit']


def resources_group():
    sa = shutil.which('systemd-analyze')
    if not sa:
        return RESOURCES
    r = subprocess.run([sa, 'syscall-filter', '@resources'], stdout=subprocess.PIPE, timeout=60)
    names = [l.strip() for l in r.stdout.decode().splitlines()
             if l.strip() and not l.strip().startswith(('#', '@'))]
    return names or RESOURCES


def children(pid):
    try:
        with open('/proc/%d/task/%d/children' % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def traced_child(pid, exe):
    """strace's child running exe: strace also forks short-lived probes of its own (ptrace
    and seccomp checks), so the first child is not always the tracee."""
    for c in children(pid):
        try:
            with open('/proc/%d/cmdline' % c, 'rb') as f:
                if f.read().split(b'\0')[0] == exe.encode():
                    return c
        except OSError:
            pass
    return None


def traced_run(h, label, url, extra, conf):
    """Runs danmakud under strace until the mock has replayed room 9999, reloads, stops.
    Returns (names of the system calls it made, the prlimit64 calls), or None when strace
    could not trace."""
    ck = h.ck
    out = os.path.join(h.tmp, label + '.strace')
    db = os.path.join(h.tmp, label + '.db')
    # Under a sanitizer: no coredump limit set by the runtime, and no LeakSanitizer, which
    # cannot run under ptrace (leaks are checked by every other test).
    env = dict(os.environ, ASAN_OPTIONS=os.environ.get('ASAN_OPTIONS', '') + ':disable_coredump=0:detect_leaks=0')
    argv = ['strace', '-f', '-qq', '-o', out, h.args.danmakud, '-v', '-c', conf, '-d', db, '-s', url] + extra + ['9999']
    # A soft fd limit below the hard one, as in most shells: the old code raised it.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 1024, hard), hard))
    try:
        p = harness.Proc(argv, 'strace-' + label, cwd=h.tmp, env=env,
                         stderr_path=os.path.join(h.tmp, label + '.stderr'))
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    h.procs.append(p)
    pid = [None]
    try:
        harness.wait_until(lambda: pid.__setitem__(0, traced_child(p.pid, h.args.danmakud)) or pid[0], 10)
        if not pid[0]:
            err = p.stderr_text()
            if 'ptrace' in err or 'Operation not permitted' in err:
                return None
            ck.check(False, '%s: danmakud started under strace' % label, err[-1500:])
            return set(), []
        rows = harness.wait_db(db, 'SELECT count(*) FROM messages', lambda rs: rs and rs[0][0] >= 100, 30)
        ck.check(rows, '%s: rows recorded under strace' % label)
        os.kill(pid[0], signal.SIGHUP)
        harness.wait_until(lambda: 'reload' in p.stderr_text(), 10)
        os.kill(pid[0], signal.SIGTERM)
        ck.eq(p.wait(30), 0, '%s: exit 0 on SIGTERM under strace' % label)
    finally:
        if pid[0] and p.alive():
            try:
                os.kill(pid[0], signal.SIGKILL)
            except ProcessLookupError:
                pass
        p.kill()
    with open(out) as f:
        text = f.read()
    # "PID name(args) = ret", or "PID <... name resumed>..." for a call another thread cut.
    calls = re.findall(r'^(?:\d+\s+)?(?:<\.\.\. )?([a-z0-9_]+)(?:\(| resumed>)(.*)$', text, re.M)
    return {n for n, _ in calls}, [n + '(' + a for n, a in calls if n == 'prlimit64']


def body(h):
    ck = h.ck
    if not shutil.which('strace'):
        print('1..0 # SKIP strace is not installed', flush=True)
        sys.exit(77)
    conf = os.path.join(h.tmp, 'danmakud.conf')
    with open(conf, 'w') as f:
        f.write('[recorder]\nflush_ms = 100\n')
    group = set(resources_group())
    ck.note('@resources: ' + ' '.join(sorted(group)))
    mock = h.start_node_mock()
    got = traced_run(h, 'wss', 'wss://localhost:%d/' % mock.port, ['--ca-file', h.certs()['ca']], conf)
    if got is None:
        print('1..0 # SKIP ptrace is not permitted here', flush=True)
        sys.exit(77)
    seen, limits = got
    plain = h.start_node_mock(plain=True)
    seen2, limits2 = traced_run(h, 'ws', 'ws://127.0.0.1:%d/' % plain.port, [], conf) or (set(), [])
    seen |= seen2
    limits += limits2
    ck.check({'read', 'write', 'epoll_wait'} & seen and len(seen) > 20,
             'strace saw the recording (%d distinct system calls)' % len(seen), sorted(seen))
    ck.eq(sorted(seen & group), [], 'no @resources system call (%s)' % ', '.join(sorted(seen)))
    sets = [c for c in limits if not re.match(r'prlimit64\(0, RLIMIT_[A-Z]+, NULL,', c)]
    ck.eq(sets, [], 'no resource limit set through prlimit64 (%d reads)' % len(limits))


if __name__ == '__main__':
    sys.exit(harness.Harness('syscalls').run(body))
