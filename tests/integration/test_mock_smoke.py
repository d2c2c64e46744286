#!/usr/bin/python3
"""The mocks themselves, checked with a small independent Python client (no
danmakud needed): login, joingroup, full replay with rid rewritten, heartbeat
echo, logout; over Node wss (--split), Node ws, Python ws, Python wss and
Python raw TCP; and --close-after / --silent-after."""

import asyncio
import collections
import ssl
import sys

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

    return h.run(body)


if __name__ == '__main__':
    sys.exit(main())
