#!/usr/bin/python3
"""The systemd unit's resource bounds and sandbox (issue 10 section 3), on the unit source with
its @...@ paths filled in: PrivateUsers=, MemoryMax=, TasksMax= and SystemCallFilter=~@resources
are set, `systemd-analyze verify` finds nothing wrong with the directives, and
`systemd-analyze security --offline=yes` rates the exposure at most 1.1 (it was 1.5 before these
were added). Exit 77 (skip) without systemd-analyze. test_syscalls.py shows that danmakud makes
no @resources system call, so the filter cannot break it.
The template danmakud@.service (one instance per cluster node, issue 13) gets the same checks
on an instance, and must have every directive of danmakud.service except those that name the
instance's files and node.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_EXPOSURE = 1.1
# Directives in which the template differs from danmakud.service: its description, command
# line and directories name the instance.
PER_INSTANCE = ('Description', 'ExecStart', 'StateDirectory', 'WorkingDirectory', 'RuntimeDirectory')


def directives(text):
    """(section, line) of every directive, comments and blank lines left out."""
    out, section = set(), ''
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in '#;':
            continue
        if line.startswith('['):
            section = line
            continue
        out.add((section, line))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--source', default=os.path.join(HERE, '..', '..'))
    a, _ = ap.parse_known_args()
    sa = shutil.which('systemd-analyze')
    if not sa:
        print('1..0 # SKIP systemd-analyze is not installed', flush=True)
        return 77
    def read(name):
        with open(os.path.join(a.source, 'contrib', 'systemd', name), encoding='utf-8') as f:
            return f.read()
    texts = {'danmakud.service': read('danmakud.service'), 'danmakud@.service': read('danmakud@.service')}
    failed = []
    n = 0

    def check(cond, msg, detail=''):
        nonlocal n
        n += 1
        print('%s %d - %s' % ('ok' if cond else 'not ok', n, msg), flush=True)
        if not cond:
            failed.append(msg)
            for line in str(detail).splitlines()[:30]:
                print('#   ' + line, flush=True)

    # The instance that systemd-analyze loads from the template.
    for name, checked in (('danmakud.service', 'danmakud.service'),
                          ('danmakud@.service', 'danmakud@rec-a.service')):
        text = texts[name]
        for rx, what in ((r'^PrivateUsers=yes$', 'PrivateUsers=yes'),
                         (r'^MemoryMax=\d+[KMG]$', 'MemoryMax= a fixed size'),
                         (r'^TasksMax=([1-9]|[1-5][0-9]|6[0-4])$', 'TasksMax= at most 64'),
                         (r'^SystemCallFilter=~.*@resources', 'SystemCallFilter=~@resources'),
                         (r'^SystemCallFilter=@system-service$', 'SystemCallFilter=@system-service kept')):
            check(re.search(rx, text, re.M), '%s: %s' % (name, what))
        with tempfile.TemporaryDirectory(prefix='dmk-unit-') as tmp:
            # The binary need not exist for these checks; name one that does so that verify
            # does not complain about ExecStart.
            with open(os.path.join(tmp, name), 'w', encoding='utf-8') as f:
                f.write(text.replace('@bindir@/danmakud', '/bin/true').replace('@sysconfdir@', tmp)
                        .replace('Documentation=man:danmakud(8)\n', ''))
            unit = os.path.join(tmp, checked)
            r = subprocess.run([sa, 'verify', unit], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
            out = r.stdout.decode('utf-8', 'replace')
            check(r.returncode == 0 and 'Unknown' not in out and 'Failed' not in out,
                  '%s: systemd-analyze verify: no unknown or invalid directive' % checked, out)
            r = subprocess.run([sa, 'security', '--offline=yes', unit], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=120, env=dict(os.environ, SYSTEMD_COLORS='0'))
            out = r.stdout.decode('utf-8', 'replace')
            m = re.search(r'Overall exposure level for %s: (\d+\.\d+)' % re.escape(checked), out)
            check(m and float(m.group(1)) <= MAX_EXPOSURE,
                  '%s: systemd-analyze security: exposure %s <= %.1f' % (checked, m.group(1) if m else '?', MAX_EXPOSURE),
                  '\n'.join(l for l in out.splitlines() if '\u2717' in l or 'Overall' in l) if m else out)

    # The template is the same unit: whatever hardening is added to one is in the other.
    plain = {d for d in directives(texts['danmakud.service']) if d[1].split('=')[0] not in PER_INSTANCE}
    tmpl = {d for d in directives(texts['danmakud@.service']) if d[1].split('=')[0] not in PER_INSTANCE}
    check(plain == tmpl, 'danmakud@.service has the directives of danmakud.service',
          'only in danmakud.service: %s\nonly in danmakud@.service: %s'
          % (sorted(plain - tmpl), sorted(tmpl - plain)))
    t = texts['danmakud@.service']
    for line in ('ExecStart=@bindir@/danmakud -c @sysconfdir@/danmakud/%i.conf --node %i',
                 'StateDirectory=danmakud/%i', 'WorkingDirectory=%S/danmakud/%i',
                 'RuntimeDirectory=danmakud/%i'):
        check(re.search('^%s$' % re.escape(line), t, re.M), 'danmakud@.service: %s' % line)
    print('%d passed, %d failed' % (n - len(failed), len(failed)), flush=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
