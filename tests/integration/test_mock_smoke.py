#!/usr/bin/python3
"""The mocks themselves, checked with a small independent Python client (no
danmakud needed): login, joingroup, full replay with rid rewritten, heartbeat
echo, logout; over Node wss (--split), Node ws, Python ws, Python wss and
Python raw TCP; and --close-after / --silent-after."""

import asyncio
import collections
import json
import os
import ssl
import sys
import time

import harness
from harness import pack, PacketReader, stt_decode, stt_get


async def client(url, room, ca=None, logout=True, expect=None, timeout=20):
    """Speaks the client side; returns (types Counter, rids set, closed_by_server)."""
    reader = PacketReader()
    counts = collections.Counter()
    rids = set()
    closed = False
    if url.startswith('tcp://'):
        host, port = url[6:].rstrip('/').rsplit(':', 1)
        r, w = await asyncio.open_connection(host, int(port))

        async def send(b):
            w.write(b)
            await w.drain()

        async def recv():
            try:
                d = await r.read(65536)
            except ConnectionResetError:
                return None
            return d or None

        async def close():
            w.close()
    else:
        import websockets
        ctx = None
        if url.startswith('wss://'):
            ctx = ssl.create_default_context(cafile=ca)
            ctx.set_ciphers('AES256-GCM-SHA384')
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ws = await websockets.connect(url, ssl=ctx, compression=None, ping_interval=None)

        async def send(b):
            await ws.send(b)

        async def recv():
            try:
                m = await ws.recv()
                return m if isinstance(m, bytes) else m.encode()
            except websockets.exceptions.ConnectionClosed:
                return None

        async def close():
            await ws.close()

    await send(pack('type@=loginreq/roomid@=%s/' % room))
    got_login = False
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            break
        try:
            data = await asyncio.wait_for(recv(), left if expect is None or sum(counts.values()) < expect else 0.5)
        except asyncio.TimeoutError:
            break
        if data is None:
            closed = True
            break
        for typ, body in reader.feed(data):
            assert typ == 690
            p = stt_decode(body)
            t = stt_get(p, 'type')
            counts[t] += 1
            if stt_get(p, 'rid') is not None:
                rids.add(stt_get(p, 'rid'))
            if t == 'loginres' and not got_login:
                got_login = True
                await send(pack('type@=joingroup/rid@=%s/gid@=-9999/' % room))
                await send(pack('type@=mrkl/'))
        if expect is not None and sum(counts.values()) >= expect:
            break
    if logout and not closed:
        # joingroup split in two writes
        lo = pack('type@=logout/')
        await send(lo[:5])
        await send(lo[5:])
        await asyncio.sleep(0.2)
    if not closed:
        await close()
    return counts, rids, closed


async def chat_client(url, room, want, timeout=20):
    """Logs in to `room` over ws://, joins, reads until `want` chatmsg packets, logs out and
    closes; returns the chatmsg packets (pairs lists), in order."""
    import websockets
    reader = PacketReader()
    chats = []
    ws = await websockets.connect(url, compression=None, ping_interval=None)
    try:
        await ws.send(pack('type@=loginreq/roomid@=%s/' % room))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(chats) < want and loop.time() < deadline:
            try:
                m = await asyncio.wait_for(ws.recv(), deadline - loop.time())
            except (asyncio.TimeoutError, websockets.exceptions.ConnectionClosed):
                break
            for typ, body in reader.feed(m if isinstance(m, bytes) else m.encode()):
                p = stt_decode(body)
                t = stt_get(p, 'type')
                if t == 'loginres':
                    await ws.send(pack('type@=joingroup/rid@=%s/gid@=-9999/' % room))
                elif t == 'chatmsg' and len(chats) < want:
                    chats.append(p)
        await ws.send(pack('type@=logout/'))
        await asyncio.sleep(0.2)
    finally:
        await ws.close()
    return chats


def flood_cid(room, seq):
    """mock_douyu.js floodCid, written again: room in 12 hex digits, f100, seq in 16."""
    return ('%012x' % room)[-12:] + 'f100' + '%016x' % seq


def read_jsonl(path):
    with open(path, encoding='utf-8') as f:
        return [json.loads(l) for l in f if l.strip()]


def flood_and_logs(h):
    """mock_douyu.js --flood, --flood-count, --conn-log and --sent-log (issue 13's tests
    see connections from the mock's side through them)."""
    ck = h.ck
    room = 4711
    conn_log = os.path.join(h.tmp, 'conn.jsonl')
    sent_log = os.path.join(h.tmp, 'sent.jsonl')
    m = h.start_node_mock('--flood', 200, '--flood-count', 300, '--conn-log', conn_log,
                          '--sent-log', sent_log, plain=True)
    t0 = time.time()
    first = asyncio.run(chat_client('ws://127.0.0.1:%d/a' % m.port, room, 120))
    ck.check(m.wait_line(r'^CLOSE %d ' % room, 10), 'flood: first connection closed')
    last = ([e['last'] for e in read_jsonl(conn_log) if e['ev'] == 'close'] or [0])[0]
    ck.check(120 <= last < 300, 'flood: the first connection was sent seq 1..%d' % last)
    second = asyncio.run(chat_client('ws://127.0.0.1:%d/b?x=1' % m.port, room, 300 - last))
    took = time.time() - t0
    ck.eq((len(first), len(second)), (120, 300 - last), 'flood: 120 + %d chats over two connections'
          % (300 - last))
    seqs = [int(stt_get(p, 'txt').rsplit('#', 1)[1]) for p in first + second]
    ck.eq(seqs, list(range(1, 121)) + list(range(last + 1, 301)),
          'flood: seq 1..120 on the first connection, the room sequence goes on on the second '
          '(%d..300)' % (last + 1))
    ck.check(m.wait_line(r'^SENT %d 300$' % room, 10), 'flood: SENT once the room reached --flood-count')
    ck.eq([stt_get(p, 'cid') for p in first + second], [flood_cid(room, s) for s in seqs],
          'flood: cid unique per (room, seq) as documented')
    ck.check(all(stt_get(p, 'rid') == str(room) and stt_get(p, 'txt') == 'flood %d #%d' % (room, s)
                 for p, s in zip(first + second, seqs)), 'flood: rid and txt')
    ck.check(1.2 <= took <= 8, 'flood: paced at about 200/s (%d messages + reconnect in %.2f s)'
             % (len(seqs), took))
    ck.check(m.wait_line(r'^CLOSE %d ' % room, 10, count=2), 'flood: both connections closed')
    ev = [e for e in read_jsonl(conn_log)]
    ck.eq([(e['room'], e['path'], e['ev']) for e in ev],
          [(str(room), '/a', 'login'), (str(room), '/a', 'join'), (str(room), '/a', 'logout'),
           (str(room), '/a', 'close'), (str(room), '/b?x=1', 'login'), (str(room), '/b?x=1', 'join'),
           (str(room), '/b?x=1', 'logout'), (str(room), '/b?x=1', 'close')],
          'conn log: login, join, logout, close per connection, with the request path')
    ck.check(len({e['conn'] for e in ev}) == 2 and all(
        abs(e['t'] / 1000.0 - time.time()) < 30 for e in ev) and
        [e['t'] for e in ev] == sorted(e['t'] for e in ev), 'conn log: two conn ids, epoch ms, in order')
    closes = [e for e in ev if e['ev'] == 'close']
    ck.check(len(closes) == 2 and closes[0]['first'] == 1 and closes[0]['last'] >= 120 and
             closes[1]['first'] == closes[0]['last'] + 1 and closes[1]['last'] == 300,
             'conn log: close events carry the seq range sent on each connection', closes)
    sent = read_jsonl(sent_log)
    ck.check(sent and all(s['type'] == 'chatmsg' and s['room'] == str(room) and
                          s['cid'] == flood_cid(room, s['seq']) for s in sent),
             'sent log: one line per chatmsg with its cid and seq')
    ck.check([s['seq'] for s in sent][:len(seqs)] == list(range(1, len(sent) + 1))[:len(seqs)]
             and set(seqs) <= {s['seq'] for s in sent}, 'sent log: every received seq, in order')

    # The capture replay with --sent-log: the 147 chat cids.
    sent_log2 = os.path.join(h.tmp, 'sent2.jsonl')
    m2 = h.start_node_mock('--sent-log', sent_log2, '--conn-log', os.path.join(h.tmp, 'c2.jsonl'),
                           plain=True)
    chats = asyncio.run(chat_client('ws://127.0.0.1:%d/' % m2.port, 288016, 147))
    ck.eq(len(chats), 147, 'replay: 147 chats')
    ck.check(m2.wait_line(r'^SENT 288016 ', 10), 'replay: SENT')
    got = [(s['room'], s['type'], s['cid']) for s in read_jsonl(sent_log2)]
    ck.eq(got, [('288016', 'chatmsg', c[0]) for c in harness.expected_chats(h.shared)],
          'sent log of the replay: the capture\'s 147 chat cids, in order')


def main():
    h = harness.Harness('mock_smoke', need_danmakud=False)

    def body(h):
        ck = h.ck
        room = 288016
        want = harness.expected_type_counts(h.shared, room)
        all_pk = collections.Counter(stt_get(p, 'type') for p in harness.capture_server_packets(h.shared))
        ck.eq(sum(all_pk.values()), 561, 'capture has 561 server packets')
        ck.eq((all_pk['chatmsg'], all_pk['uenter'], all_pk['dgb']), (147, 265, 125), 'capture type counts as README')
        ck.eq(len(harness.expected_chats(h.shared)), 147, 'expected.json has 147 chats')
        ck.eq(sum(want.values()), 557, 'stored-message expectation: 561 - 2 control - 2 foreign configscreen')
        total = 561 - 2 + 2 + 1  # replay + loginres + pingreq + mrkl echo
        certs = h.certs()
        cases = [
            ('node wss --split', lambda: h.start_node_mock('--split'), 'wss://localhost:%d/'),
            ('node ws', lambda: h.start_node_mock(plain=True), 'ws://127.0.0.1:%d/'),
            ('py ws --split', lambda: h.start_py_mock('--split', mode='ws'), 'ws://127.0.0.1:%d/'),
            ('py wss', lambda: h.start_py_mock(mode='wss'), 'wss://localhost:%d/'),
            ('py tcp --split', lambda: h.start_py_mock('--split', mode='tcp'), 'tcp://127.0.0.1:%d'),
        ]
        for name, start, fmt in cases:
            m = start()
            counts, rids, closed = asyncio.run(client(fmt % m.port, room, ca=certs['ca'], expect=total))
            exp = collections.Counter(all_pk)
            exp['mrkl'] += 1
            ck.eq(dict(sorted(counts.items())), dict(sorted(exp.items())), name + ': full replay received')
            ck.check(str(room) in rids and '9999' not in rids, name + ': rid rewritten', rids)
            ck.check(m.wait_line(r'^SENT %d 559$' % room, 10), name + ': mock printed SENT')
            ck.check(m.wait_line(r'^LOGOUT %d$' % room, 10), name + ': mock saw LOGOUT')
            ck.check(m.wait_line(r'^MRKL %d$' % room, 10), name + ': mock saw MRKL')
            ck.eq(m.matching('PROTO_ERROR'), [], name + ': no protocol errors')

        for name, start, fmt in (
                ('node wss --close-after', lambda: h.start_node_mock('--close-after', 50, '--split'), 'wss://localhost:%d/'),
                ('py ws --close-after', lambda: h.start_py_mock('--close-after', 50, mode='ws'), 'ws://127.0.0.1:%d/'),
                ('py tcp --close-after', lambda: h.start_py_mock('--close-after', 50, mode='tcp'), 'tcp://127.0.0.1:%d')):
            m = start()
            url = fmt % m.port
            counts, rids, closed = asyncio.run(client(url, room, ca=certs['ca'], timeout=10))
            ck.check(closed, name + ': server dropped the connection')
            n = sum(counts.values()) - counts['loginres'] - counts['pingreq'] - counts['mrkl']
            # py mock drops with RST, which may discard bytes not yet read
            ck.check(n == 50 if 'node' in name else 0 < n <= 50,
                     name + ': 50 room packets (at most, after an RST) before the drop', n)
            counts, rids, closed = asyncio.run(client(url, room, ca=certs['ca'], expect=total))
            ck.eq(sum(counts.values()), total, name + ': second connection gets the full replay')

        m = h.start_node_mock('--silent-after', 20, plain=True)
        counts, rids, closed = asyncio.run(client('ws://127.0.0.1:%d/' % m.port, room, timeout=3))
        ck.check(not closed, 'node --silent-after: socket stays open')
        ck.eq(sum(counts.values()) - counts['loginres'] - counts['pingreq'] - counts['mrkl'], 20,
              'node --silent-after: 20 room packets then silence')

        flood_and_logs(h)

    return h.run(body)


if __name__ == '__main__':
    sys.exit(main())
