#!/usr/bin/python3
"""Bilibili risk control and login (protocol §2.4-§2.5), each against mock_bilibili.js:

- getDanmuInfo always -352: rooms still record through the configured fallback `servers`
  host, authenticating without a key; the log says -352; the calls were still signed right,
  spaced >= api_interval_ms, with the configured User-Agent.
- HTTP 412 on the first API calls: the log and STATUS= say "circuit breaker", and no API
  call reaches the mock while the breaker (breaker_s = 3) is open; then the room records.
- Wbi keys rotated mid-run: the -352 for the old keys makes danmakud fetch nav again, and a
  later getDanmuInfo signed with the new keys succeeds.
- cookie_file with mode 0644: refused at start, the message names the file and not what is
  in it, no API call made; with mode 0600: nav and getDanmuInfo carry SESSDATA, auth uid is
  the nav mid, the cookie never shows in the log.
"""

import json
import os
import re
import sys

import bili_common as bc
import harness
from test_service import NotifySocket

SESSDATA = 'risk%2Ctest%2C5e55da7a*x9'
MID = 987654321


def fallback_352(h):
    ck = h.ck
    ck.note('---- getDanmuInfo -352: fallback host, no token ----')
    mock = bc.start_mock(h, '--always-352', '--replay', 'first', '--hb-timeout', 5)
    rooms = [('bilibili:76', 14073662, 76), ('bilibili:21452505', 21452505, 0)]
    db = os.path.join(h.tmp, 'r352.db')
    conf = bc.write_conf(h, 'r352', db, bc.bili_keys(mock, 'tcp', api_interval_ms=500), [(k, None) for k, _, _ in rooms])
    expects = {real: bc.Expect(bc.mock_script(mock, real)) for _, real, _ in rooms}
    d = bc.start_recorder(h, conf, 'r352')
    bc.wait_recorded(h, d, mock, expects, heartbeats=5, label='-352: ')
    rc = h.stop_danmakud(d)
    ck.eq(rc, 0, '-352: exit 0 on SIGTERM')
    if not bc.schema_ok(ck, db, '-352: '):
        return
    log = bc.settled_log(mock)
    for key, real, short in rooms:
        bc.check_bili_room(h, db, real, expects[real], log, ws_port=mock.ports['ws'], short_id=short,
                           label='-352 %s' % key, sessions=None, end_reasons=(), token=False)
    ck.check(log['conns'] and all(c['transport'] == 'ws' and c['path'] == '/sub' for c in log['conns']),
             '-352: every chat connection went to the fallback ws://.../sub of `servers` (transport tcp '
             'only applies to host_list)', [(c['transport'], c['path']) for c in log['conns']])
    calls = bc.check_spacing(ck, log, 500, '-352')
    ck.check(calls and all(c['code'] == -352 and c['sig_ok'] and c['buvid3_ok'] for c in calls),
             '-352: every getDanmuInfo was correctly signed and carried the issued buvid3 (and got -352)',
             [(c['code'], c.get('sig_ok'), c['buvid3_ok']) for c in calls])
    bc.check_user_agent(ck, log, '-352')
    err = d.stderr_text()
    ck.check(re.search(r'-352', err), '-352: the log says getDanmuInfo answered -352')
    ck.check(re.search(r'(fallback|default host|no token|without (a )?token)', err, re.I),
             '-352: the log says it falls back to the default host without a token')
    ck.eq(mock.matching('^PROTO_ERROR'), [], '-352: mock saw no protocol errors')


def breaker_412(h):
    ck = h.ck
    ck.note('---- HTTP 412: circuit breaker ----')
    n412, breaker_s = 3, 3
    mock = bc.start_mock(h, '--http412', n412, '--hb-timeout', 5)
    db = os.path.join(h.tmp, 'r412.db')
    conf = bc.write_conf(h, 'r412', db, bc.bili_keys(mock, 'ws', breaker_s=breaker_s),
                         [('bilibili:21452505', None), ('bilibili:76', None)])
    expects = {r: bc.Expect(bc.mock_script(mock, r)) for r in (21452505, 14073662)}
    ns = NotifySocket(os.path.join(h.tmp, 'notify412.sock'))
    try:
        env = dict(os.environ, NOTIFY_SOCKET=ns.addr)
        for k in ('WATCHDOG_USEC', 'WATCHDOG_PID', 'JOURNAL_STREAM'):
            env.pop(k, None)
        d = bc.start_recorder(h, conf, 'r412', env=env)
        bc.wait_recorded(h, d, mock, expects, timeout=n412 * breaker_s + 40, heartbeats=2, label='412: ')
        i, f = ns.wait_for(lambda f: re.search(r'circuit breaker', f.get('STATUS', ''), re.I), 1)
        ck.check(i is not None, '412: a STATUS= line says circuit breaker',
                 [m for m in ns.msgs if 'STATUS' in m][:6])
        rc = h.stop_danmakud(d)
        ck.eq(rc, 0, '412: exit 0 on SIGTERM')
    finally:
        ns.close()
    log = bc.settled_log(mock)
    reqs = log['requests']
    t412 = [r['t'] for r in reqs if r['status'] == 412]
    ck.eq(len(t412), n412, '412: the mock answered 412 %d times' % n412)
    # A request already on its way when the 412 came back may land just after it.
    bad = []
    for t in t412:
        inside = [r for r in reqs if t + 250 < r['t'] < t + breaker_s * 1000 - 100]
        bad += ['%s %d ms after a 412' % (r['path'], r['t'] - t) for r in inside]
    ck.check(t412 and not bad, '412: no API call while the breaker was open (%d s after each 412)' % breaker_s, bad)
    ck.check(re.search(r'circuit breaker', d.stderr_text(), re.I), '412: the log says circuit breaker')
    ck.check(all(a['ok'] and a['key_ok'] for a in log['auths']) and len(log['auths']) >= 2,
             '412: after the breaker, the rooms authenticated with tokens')
    bc.check_user_agent(ck, log, '412')


def rotation(h):
    ck = h.ck
    ck.note('---- Wbi keys rotated ----')
    room = 21452505
    mock = bc.start_mock(h, '--hb-timeout', 30)
    db = os.path.join(h.tmp, 'rot.db')
    conf = bc.write_conf(h, 'rot', db, bc.bili_keys(mock, 'ws', heartbeat_s=5), [('bilibili:%d' % room, None)])
    d = bc.start_recorder(h, conf, 'rot')
    ok = bc.wait_alive(d, lambda: mock.matching(r'^AUTH %d ok token' % room), 30)
    ck.check(ok, 'rotation: first auth with a token')
    if not ok:
        return
    bc.mock_get(mock, '/_mock/rotate')
    t_rot = [e['t'] for e in bc.mock_log(mock)['events'] if e['what'] == 'rotate'][-1]
    after = []
    good = None
    for attempt in range(4):
        n_auth = len(mock.matching(r'^AUTH %d ok' % room))
        bc.mock_get(mock, '/_mock/kick?room=%d' % room)
        bc.wait_alive(d, lambda: len(mock.matching(r'^AUTH %d ok' % room)) > n_auth, 30)
        log = bc.mock_log(mock)
        after = [r for r in bc.api_calls(log, '/getDanmuInfo') if r['t'] > t_rot]
        good = [r for r in after if r['code'] == 0]
        if good:
            break
    ck.check(good, 'rotation: a getDanmuInfo after the rotation succeeded (new keys)',
             [(r['code'], r['why']) for r in after])
    if good:
        navs = [r['t'] for r in bc.api_calls(log, '/nav') if r['t'] > t_rot]
        stale = [r for r in after if r['why'] == 'old_wbi_keys']
        # (a client that fetches nav before every signing never sends the old keys at all)
        ck.check(not stale or any(stale[0]['t'] <= t <= good[0]['t'] for t in navs),
                 'rotation: a -352 for the old keys was followed by a nav call, then a signed success',
                 [(r['path'], r['code'], r['why']) for r in log['requests'] if r['t'] > t_rot])
        ck.check(mock.wait_line(r'^AUTH %d ok token' % room, 10, count=2),
                 'rotation: the room authenticated with the new token')
    rc = h.stop_danmakud(d)
    ck.eq(rc, 0, 'rotation: exit 0 on SIGTERM')
    ck.eq(mock.matching('^PROTO_ERROR'), [], 'rotation: mock saw no protocol errors')


def cookies(h):
    ck = h.ck
    ck.note('---- cookie_file ----')
    mock = bc.start_mock(h, '--sessdata', SESSDATA, '--uid', MID, '--hb-timeout', 5)
    room = 21452505
    cookie = os.path.join(h.tmp, 'bili-cookies.txt')
    with open(cookie, 'w') as f:
        f.write('SESSDATA=%s; DedeUserID=%d\n' % (SESSDATA, MID))
    os.chmod(cookie, 0o644)
    db = os.path.join(h.tmp, 'cookie.db')
    conf = bc.write_conf(h, 'cookie', db, bc.bili_keys(mock, 'ws', cookie_file=cookie), [('bilibili:%d' % room, None)])
    rc, out, err = h.run_danmakud(['-d', db, '-c', conf], timeout=20)
    ck.check(rc in (1, 2), 'cookie_file 0644: danmakud refuses to start (exit %r)' % rc, err[-2000:])
    ck.check(cookie in err, 'cookie_file 0644: the message names the file', err[-2000:])
    ck.check(SESSDATA not in err + out and 'risk%2Ctest' not in err + out,
             'cookie_file 0644: the message does not show what is in it')
    ck.eq(bc.mock_log(mock)['requests'], [], 'cookie_file 0644: no API call was made')
    rc, out, err = h.run_danmakud(['--check-config', '-c', conf], timeout=20)
    ck.check(rc == 2 and cookie in err and SESSDATA not in err + out,
             'cookie_file 0644: --check-config refuses it too (exit %r), naming the file only' % rc,
             err[-2000:])

    os.chmod(cookie, 0o600)
    expects = {room: bc.Expect(bc.mock_script(mock, room))}
    d = bc.start_recorder(h, conf, 'cookie')
    bc.wait_recorded(h, d, mock, expects, heartbeats=2, label='cookie 0600: ')
    rc = h.stop_danmakud(d)
    ck.eq(rc, 0, 'cookie 0600: exit 0 on SIGTERM')
    log = bc.settled_log(mock)
    navs = bc.api_calls(log, '/nav')
    infos = [r for r in bc.api_calls(log, '/getDanmuInfo') if r['code'] == 0]
    ck.check(navs and all(r['sessdata_ok'] for r in navs), 'cookie 0600: nav carried the SESSDATA')
    ck.check(infos and all(r['sessdata_ok'] and r['buvid3_ok'] for r in infos),
             'cookie 0600: getDanmuInfo carried SESSDATA and buvid3')
    auths = [a for a in log['auths'] if a['ok']]
    ck.check(auths and all(a['body']['uid'] == MID and a['key_ok'] for a in auths),
             'cookie 0600: auth uid is the nav mid %d, with the token issued to that login' % MID,
             [a['body'].get('uid') for a in log['auths']])
    ck.check(SESSDATA not in d.stderr_text(), 'cookie 0600: the cookie never shows in the log')
    if bc.schema_ok(ck, db, 'cookie 0600: '):
        ck.eq(harness.db_rows(db, "SELECT text FROM messages WHERE platform='bilibili' AND room_id=? "
                                  "AND type LIKE 'DANMU_MSG%' ORDER BY id", (room,)),
              [(t,) for t, _, _ in expects[room].chats], 'cookie 0600: chats recorded')
    bc.check_user_agent(ck, log, 'cookie')
    ck.eq(mock.matching('^PROTO_ERROR'), [], 'cookie: mock saw no protocol errors')
    ck.check(json.dumps(log).find(SESSDATA) < 0, 'cookie: (the mock log keeps no cookie value either)')


def body(h):
    fallback_352(h)
    breaker_412(h)
    rotation(h)
    cookies(h)


if __name__ == '__main__':
    sys.exit(harness.Harness('bilibili_risk').run(body))
