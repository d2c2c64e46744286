#!/usr/bin/python3
"""A hostile Bilibili server (hostile_bili_server.py: raw asyncio, Python's zlib) against the
real danmakud. Every round it sends a zlib bomb (10 MiB of zeros in ~10 KiB), a batch that
inflates one byte past the 1 MiB cap, a 1 MiB command of ~200,000 JSON values, and one good
chat twice in a batch. The API is unreachable (connection refused), so the room takes the
fallback host without a token, as after a -352.

Checked: the bad packets are skipped and counted, never fatal (one session for the whole
attack, no reconnect); every good chat is stored once; danmakud's VmRSS, sampled through the
attack, stays under RSS_BOUND_MIB (a bomb is refused as it inflates, never allocated; the
wide command is refused before jansson builds its tree, which would cost ~70 MiB).
"""

import os
import socket
import sqlite3
import sys
import time

import bili_common as bc
import harness

ROUNDS = 6
ROOM = 424242
# Idle danmakud is ~5 MiB; the pending packet (1 MiB), the inflate buffer (1 MiB) and the
# socket reads it holds at once are what an attack can add.
RSS_BOUND_MIB = 40
# A sanitizer build (--sanitized) keeps freed memory in quarantine and shadows all of it.
SANITIZED = '--sanitized' in sys.argv
if SANITIZED:
    sys.argv.remove('--sanitized')
    RSS_BOUND_MIB = 400


def free_port():
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def body(h):
    ck = h.ck
    srv = harness.Proc([sys.executable, os.path.join(harness.HERE, 'hostile_bili_server.py'), str(ROUNDS)],
                       'hostile-bili', cwd=h.tmp, stderr_path=os.path.join(h.tmp, 'hostile-bili.err'))
    h.procs.append(srv)
    got = srv.wait_line(r'^PORT \d+$', 20)
    ck.check(got, 'hostile server listening', srv.stderr_text()[-500:])
    if not got:
        return
    port = int(got[0].split()[1])
    dead = 'http://127.0.0.1:%d' % free_port()  # nothing listens: every API call is refused
    db = os.path.join(h.tmp, 'hostile.db')
    conf = bc.write_conf(h, 'hostile', db, {'api': dead, 'live_api': dead, 'transport': 'tcp',
                                           'servers': 'tcp://127.0.0.1:%d' % port,
                                           'heartbeat_s': 1, 'api_interval_ms': 0},
                         [('bilibili:%d' % ROOM, None)])
    d = bc.start_recorder(h, conf, 'hostile')
    peak = 0
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and d.alive():
        rss = harness.vmrss_kib(d.pid)
        peak = max(peak, rss or 0)
        try:  # the file exists (locked) a moment before its schema does
            rows = harness.db_rows(db, "SELECT count(*) FROM messages WHERE type = 'DANMU_MSG'")
        except sqlite3.Error:
            rows = []
        if srv.matching(r'^DONE$') and rows and rows[0][0] >= ROUNDS:
            break
        time.sleep(0.05)
    for _ in range(20):  # a few more samples after the last round
        peak = max(peak, harness.vmrss_kib(d.pid) or 0)
        time.sleep(0.05)
    ck.check(d.alive(), 'danmakud survived the attack')
    ck.eq(h.stop_danmakud(d), 0, 'exit 0 on SIGTERM')
    ck.check(srv.matching(r'^DONE$'), 'the server sent all %d rounds' % ROUNDS)
    texts = [t for t, in harness.db_rows(db, "SELECT text FROM messages WHERE platform = 'bilibili' AND "
                                             "room_id = ? AND type = 'DANMU_MSG' ORDER BY id", (ROOM,))]
    ck.eq(texts, ['survivor %d' % n for n in range(ROUNDS)], 'every good chat stored once, in order')
    others = harness.db_rows(db, "SELECT type, count(*) FROM messages WHERE type NOT IN ('DANMU_MSG', 'popularity') "
                                 "GROUP BY type")
    ck.eq(others, [], 'nothing of the bombs and the wide command was stored')
    sess = harness.db_rows(db, 'SELECT platform, room_id, end_reason FROM sessions')
    ck.eq(sess, [('bilibili', ROOM, 'shutdown')], 'one session for the whole attack, ended by SIGTERM')
    log = d.stderr_text()
    ck.check('batch inflates past 1 MiB' in log, 'the bombs were skipped as inflating past 1 MiB')
    ck.check('more than 65536 JSON values' in log, 'the wide command was skipped before parsing')
    ck.check('fallback host without a token' in log, 'the unreachable API led to the fallback host')
    ck.note('peak VmRSS %.1f MiB over %d rounds' % (peak / 1024.0, ROUNDS))
    ck.check(0 < peak < RSS_BOUND_MIB * 1024, 'peak VmRSS %.1f MiB < %d MiB' % (peak / 1024.0, RSS_BOUND_MIB))


if __name__ == '__main__':
    sys.exit(harness.Harness('hostile_bili').run(body))
