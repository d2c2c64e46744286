#!/usr/bin/python3
"""`meson install` (issue 4): a fresh configuration of this source tree with --prefix=/usr is
installed into a DESTDIR and checked for the binary, the unit (ExecStart with the prefix's
bindir and sysconfdir), the template unit danmakud@.service (one instance per cluster node,
issue 13), the man page and the example config; then the same build is reconfigured with a
temporary prefix and installed there for real, so that `systemd-analyze verify` can check the
installed unit and an instance of the template with their ExecStart binary present.
Also: the installed example config passes --check-config, the man page renders without
groff warnings, and every config key and long option is documented in the man page and the
README."""

import argparse
import os
import re
import shutil
import subprocess
import sys

import harness


def run(h, argv, timeout=300, env=None):
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout,
                       env=env, stdin=subprocess.DEVNULL)
    out = r.stdout.decode('utf-8', 'replace')
    return r.returncode, out


def body(h):
    ck = h.ck
    ap = argparse.ArgumentParser()
    ap.add_argument('--source', required=True)
    ap.add_argument('--meson', default=shutil.which('meson') or 'meson')
    a, _ = ap.parse_known_args(h.extra)
    src = os.path.abspath(a.source)
    build = os.path.join(h.tmp, 'build')
    dest = os.path.join(h.tmp, 'dest')

    rc, out = run(h, [a.meson, 'setup', build, src, '--prefix=/usr', '--wrap-mode=nodownload',
                      '-Dtests=false', '-Dintegration_tests=false'])
    if not ck.eq(rc, 0, 'meson setup --prefix=/usr'):
        ck.note(out[-3000:])
        return
    rc, out = run(h, [a.meson, 'install', '-C', build, '--destdir', dest], timeout=600)
    if not ck.eq(rc, 0, 'meson install --destdir'):
        ck.note(out[-3000:])
        return
    rc, unitdir = run(h, ['pkg-config', '--variable=systemdsystemunitdir', 'systemd'])
    unitdir = unitdir.strip() if rc == 0 and unitdir.strip() else '/usr/lib/systemd/system'
    files = {
        'binary': '/usr/bin/danmakud',
        'unit': unitdir + '/danmakud.service',
        'template unit': unitdir + '/danmakud@.service',
        'man page': '/usr/share/man/man8/danmakud.8',
        'example config': '/usr/share/doc/danmakud/danmakud.conf.example',
    }
    for what, path in files.items():
        ck.check(os.path.isfile(dest + path), '%s installed at %s' % (what, path))
    ck.check(os.access(dest + files['binary'], os.X_OK), 'binary is executable')
    unit = open(dest + files['unit'], encoding='utf-8').read() if os.path.isfile(dest + files['unit']) else ''
    ck.check(re.search(r'^ExecStart=/usr/bin/danmakud -c /etc/danmakud/danmakud\.conf$', unit, re.M),
             'unit: ExecStart with the prefix bindir and sysconfdir', unit[:600])
    ck.eq(re.findall(r'@[a-z_]+@', unit), [], 'unit: no unsubstituted @...@')
    for directive in ('Type=notify', 'ExecReload=/bin/kill -HUP $MAINPID', 'Restart=on-failure',
                      'DynamicUser=yes', 'StateDirectory=danmakud', 'ProtectSystem=strict',
                      'ProtectHome=yes', 'PrivateTmp=yes', 'NoNewPrivileges=yes',
                      'RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6',
                      'SystemCallFilter=@system-service', 'MemoryDenyWriteExecute=yes'):
        ck.check(re.search(r'^%s$' % re.escape(directive), unit, re.M), 'unit: %s' % directive)
    ck.check(re.search(r'^WatchdogSec=\d+', unit, re.M), 'unit: WatchdogSec set')
    tpath = dest + files['template unit']
    tmpl = open(tpath, encoding='utf-8').read() if os.path.isfile(tpath) else ''
    ck.check(re.search(r'^ExecStart=/usr/bin/danmakud -c /etc/danmakud/%i\.conf --node %i$', tmpl, re.M),
             'template: ExecStart with the instance as config name and node', tmpl[:600])
    ck.eq(re.findall(r'@[a-z_]+@', tmpl), [], 'template: no unsubstituted @...@')
    for directive in ('StateDirectory=danmakud/%i', 'WorkingDirectory=%S/danmakud/%i',
                      'RuntimeDirectory=danmakud/%i', 'Type=notify', 'DynamicUser=yes',
                      'ProtectSystem=strict', 'SystemCallFilter=@system-service'):
        ck.check(re.search(r'^%s$' % re.escape(directive), tmpl, re.M), 'template: %s' % directive)

    # The example config is valid as shipped.
    rc, out = run(h, [dest + files['binary'], '--check-config', '-c', dest + files['example config']])
    ck.eq(rc, 0, 'installed example config passes --check-config')
    ck.note(out.strip())

    # Every key of conf.c's table and every long option is documented.
    conf_c = open(os.path.join(src, 'src', 'conf.c'), encoding='utf-8').read()
    keys = re.findall(r'\{"([a-z_]+)", SEC_[A-Z]+, CONF_T_', conf_c)
    ck.check(len(keys) >= 7, 'found the config keys in conf.c (%s)' % ', '.join(keys))
    cli_c = open(os.path.join(src, 'src', 'cli.c'), encoding='utf-8').read()
    opts = re.findall(r'\{"([a-z-]+)", (?:required|no)_argument', cli_c)
    man = open(dest + files['man page'], encoding='utf-8').read() if os.path.isfile(dest + files['man page']) else ''
    readme = open(os.path.join(src, 'README.md'), encoding='utf-8').read()
    example = open(os.path.join(src, 'contrib', 'danmakud.conf.example'), encoding='utf-8').read()
    for k in keys:
        ck.check(re.search(r'\.BI %s ' % k, man), 'man page documents key %s' % k)
        ck.check('`%s`' % k in readme, 'README documents key %s' % k)
        ck.check(re.search(r'^#?%s = ' % k, example, re.M), 'example config shows key %s' % k)
    man_text = man.replace('\\-', '-')
    for o in opts:
        ck.check('--' + o in man_text, 'man page documents --%s' % o)
    if shutil.which('groff'):
        r = subprocess.run(['groff', '-man', '-Tutf8', '-ww', '-z', dest + files['man page']],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60,
                           env=dict(os.environ, LC_ALL='C.UTF-8'))
        ck.eq((r.returncode, r.stderr.decode()), (0, ''), 'man page renders without groff warnings')
    else:
        ck.skip('man page renders without groff warnings', 'groff is not installed')

    # systemd-analyze verify checks that ExecStart exists, so install for real into a
    # temporary prefix (same build, reconfigured: nothing is recompiled).
    sa = shutil.which('systemd-analyze')
    if not sa:
        ck.check(False, 'systemd-analyze is installed (apt-get install systemd)')
        return
    prefix = os.path.join(h.tmp, 'prefix')
    rc, out = run(h, [a.meson, 'configure', build, '-Dprefix=' + prefix])
    ck.eq(rc, 0, 'meson configure -Dprefix=<temp>')
    rc, out = run(h, [a.meson, 'install', '-C', build], timeout=600)
    if not ck.eq(rc, 0, 'meson install into the temporary prefix'):
        ck.note(out[-3000:])
        return
    tunit = os.path.join(prefix, 'lib', 'systemd', 'system', 'danmakud.service')
    ck.check(os.path.isfile(tunit), 'non-/usr prefix: unit in <prefix>/lib/systemd/system')
    text = open(tunit, encoding='utf-8').read() if os.path.isfile(tunit) else ''
    ck.check(('ExecStart=%s/bin/danmakud -c %s/etc/danmakud/danmakud.conf' % (prefix, prefix)) in text,
             'non-/usr prefix: ExecStart and config path follow the prefix')
    env = dict(os.environ, MANPATH=os.path.join(prefix, 'share', 'man'))
    rc, out = run(h, [sa, 'verify', tunit], env=env, timeout=120)
    ck.eq(rc, 0, 'systemd-analyze verify passes on the installed unit')
    if out.strip():
        ck.note(out.strip())
    ttmpl = os.path.join(prefix, 'lib', 'systemd', 'system', 'danmakud@.service')
    ck.check(os.path.isfile(ttmpl), 'non-/usr prefix: template unit next to the unit')
    text = open(ttmpl, encoding='utf-8').read() if os.path.isfile(ttmpl) else ''
    ck.check(('ExecStart=%s/bin/danmakud -c %s/etc/danmakud/%%i.conf --node %%i' % (prefix, prefix)) in text,
             'non-/usr prefix: template ExecStart and config path follow the prefix')
    # An instance name is loaded from the template next to it.
    rc, out = run(h, [sa, 'verify', os.path.join(os.path.dirname(ttmpl), 'danmakud@rec-a.service')],
                  env=env, timeout=120)
    ck.check(rc == 0 and 'Unknown' not in out, 'systemd-analyze verify passes on an instance of the template', out)
    if out.strip():
        ck.note(out.strip())


if __name__ == '__main__':
    sys.exit(harness.Harness('install', need_danmakud=False).run(body))
