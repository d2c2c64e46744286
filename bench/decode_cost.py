#!/usr/bin/env python3
"""Where danmakud's CPU goes per message over wss, SQLite and the store apart.

bench/decode_cost.c times the receive path alone, in memory. This script measures the real
daemon instead: danmakud records --rooms rooms from bench/flood_server.js over wss (TLS 1.2,
AES-256-GCM), and while it works through the flood `perf record --call-graph dwarf -p PID`
samples it. Every sample whose stack holds libsqlite3 or a store_* function counts as
"SQLite + store" (the commit and the store queue); the rest is split by the first layer
found from the leaf up: tls (tls_*, mbedtls*), ws (ws_*, wslay*), douyu (the platform feed,
STT, JSON, record), rec (rec_*), then the kernel read / libuv loop. The CPU time
(utime+stime from /proc, samples only give the shares) times each share, divided by the
messages, is the microseconds per message.

    bench/decode_cost.py [--danmakud build-bench/danmakud] [--messages 50000] [--rooms 4]
                         [--fts off]

Needs node with bench/node_modules (npm ci in bench/), openssl, perf (kernel.perf_event_
paranoid <= 2 is enough for one's own process). Every process it starts is killed by PID.
"""

import argparse
import collections
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TICKS = os.sysconf('SC_CLK_TCK')


def cpu_seconds(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def certs(d):
    def ossl(*a):
        subprocess.run(['openssl'] + list(a), cwd=d, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60)
    ossl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem',
         '-days', '2', '-subj', '/CN=decode_cost CA', '-addext', 'basicConstraints=critical,CA:TRUE',
         '-addext', 'keyUsage=critical,keyCertSign,cRLSign')
    ossl('genrsa', '-out', 'key.pem', '2048')
    with open(os.path.join(d, 'ext'), 'w') as f:
        f.write('subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n'
                'keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n')
    ossl('req', '-new', '-key', 'key.pem', '-out', 's.csr', '-subj', '/CN=localhost')
    ossl('x509', '-req', '-in', 's.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial',
         '-out', 'cert.pem', '-days', '2', '-extfile', 'ext')
    return [os.path.join(d, n) for n in ('ca.pem', 'key.pem', 'cert.pem')]


def wait_line(p, prefix, n, timeout):
    """Read p's stdout until n lines start with prefix; returns them."""
    got = []
    deadline = time.monotonic() + timeout
    while len(got) < n and time.monotonic() < deadline:
        line = p.stdout.readline()
        if not line:
            break
        if line.startswith(prefix):
            got.append(line.strip())
    return got


def rows(db):
    try:
        con = sqlite3.connect('file:%s?mode=ro' % db, uri=True, timeout=5)
        try:
            return con.execute('SELECT coalesce(max(id), 0) FROM messages').fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def layer(stack):
    """stack: [(symbol, dso)] from the leaf up."""
    if any('libsqlite3' in d for _, d in stack) or any(s.startswith('store_') for s, _ in stack):
        return 'sqlite+store'
    for s, _ in stack:
        if s.startswith('tls_') or s.startswith('mbedtls'):
            return 'tls'
        if s.startswith('ws_') or s.startswith('wslay') or s == 'feed_frames':
            return 'ws'
        if s in ('douyu_reader_feed', 'on_packet', 'make_record', 'douyu_record',
                 'stt_decode', 'stt_to_json'):
            return 'douyu'
        if s.startswith('rec_'):
            return 'rec'
    for s, _ in stack:
        if s in ('uv__read', 'on_read', 'on_net_read'):
            return 'net read'
        if s.startswith('uv_') or s.startswith('uv__'):
            return 'libuv loop'
    return 'other'


def classify(data):
    out = subprocess.run(['perf', 'script', '-i', data, '-F', 'ip,sym,dso'],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    shares = collections.Counter()
    leaves = collections.Counter()
    n = 0
    for sample in out.split('\n\n'):
        stack = []
        for m in re.finditer(r'^\s*[0-9a-f]+\s+(.*?)\s+\((.*)\)$', sample, re.M):
            stack.append((re.sub(r'\+0x[0-9a-f]+$', '', m.group(1)), m.group(2)))
        if not stack:
            continue
        n += 1
        c = layer(stack)
        shares[c] += 1
        if c != 'sqlite+store':
            leaves[(c, stack[0][0])] += 1
    return n, shares, leaves


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--danmakud', default=os.path.join(ROOT, 'build-bench', 'danmakud'))
    ap.add_argument('--messages', type=int, default=50000, help='per room')
    ap.add_argument('--rooms', type=int, default=4)
    ap.add_argument('--per-frame', type=int, default=16)
    ap.add_argument('--freq', type=int, default=999, help='perf samples per second')
    ap.add_argument('--fts', choices=('off', 'on'), default='off',
                    help="[recorder] fts, as bench/run's throughput rows (default off)")
    ap.add_argument('--shared', default=os.path.join(ROOT, '..', 'shared'))
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix='decode-cost-')
    ca, key, cert = certs(tmp)
    procs = []
    try:
        fl = subprocess.Popen(['node', os.path.join(HERE, 'flood_server.js'), '--mode', 'wss',
                               '--messages', str(a.messages), '--per-frame', str(a.per_frame),
                               '--shared', a.shared, '--key', key, '--cert', cert],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        procs.append(fl)
        port = int(wait_line(fl, 'PORT ', 1, 30)[0].split()[1])
        db = os.path.join(tmp, 'd.db')
        rooms = [str(r) for r in range(1001, 1001 + a.rooms)]
        conf = os.path.join(tmp, 'd.conf')
        with open(conf, 'w') as f:
            f.write('[recorder]\nfts = %s\n' % a.fts)
        d = subprocess.Popen([a.danmakud, '-q', '-d', db, '-c', conf, '--ca-file', ca, '-s',
                              'wss://localhost:%d/' % port] + rooms,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(d)
        if len(wait_line(fl, 'JOIN ', a.rooms, 60)) < a.rooms:
            sys.exit('decode_cost: not every room joined')
        data = os.path.join(tmp, 'perf.data')
        pf = subprocess.Popen(['perf', 'record', '-q', '-F', str(a.freq), '--call-graph',
                               'dwarf,16384', '-p', str(d.pid), '-o', data],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(pf)
        cpu0 = cpu_seconds(d.pid)
        total = a.rooms * a.messages
        deadline = time.monotonic() + 600
        while rows(db) < total and time.monotonic() < deadline and d.poll() is None:
            time.sleep(0.05)
        cpu1 = cpu_seconds(d.pid)
        got = rows(db)
        pf.send_signal(signal.SIGINT)
        pf.wait(60)
        n, shares, leaves = classify(data)
        if not n:
            sys.exit('decode_cost: perf recorded no samples')
        cpu = cpu1 - cpu0
        print('messages %d (committed %d), danmakud CPU %.2f s while perf sampled: %.2f us per '
              'message; %d samples' % (total, got, cpu, cpu / total * 1e6, n))
        non = n - shares['sqlite+store']
        print('%-14s %6.1f %%  %5.2f us/msg' % ('sqlite+store', 100.0 * shares['sqlite+store'] / n,
                                               cpu * shares['sqlite+store'] / n / total * 1e6))
        print('%-14s %6.1f %%  %5.2f us/msg' % ('NOT SQLite', 100.0 * non / n,
                                               cpu * non / n / total * 1e6))
        for c, k in shares.most_common():
            if c != 'sqlite+store':
                print('  %-12s %6.1f %%  %5.2f us/msg' % (c, 100.0 * k / n, cpu * k / n / total * 1e6))
        print('top functions outside SQLite (share of all samples):')
        for (c, s), k in leaves.most_common(15):
            print('  %5.1f %%  %-8s %s' % (100.0 * k / n, c, s))
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
        subprocess.run(['rm', '-rf', tmp])


if __name__ == '__main__':
    main()
