#!/usr/bin/python3
"""A Douyu server that floods websocket fragments: raw asyncio, its own HTTP Upgrade,
websocket frames and Douyu packets (no websocket library and nothing of danmakud's), on
127.0.0.1 only.

Each connection is upgraded, answers loginreq with loginres, and after the client's
joingroup sends --reps times one websocket message of exactly 1 MiB (the largest
danmakud accepts) as one-byte fragments: 1,048,576 frames of 3 bytes. The message is one
Douyu packet of exactly 1 MiB (the largest the framing allows): a chatmsg, rid 0 (a
broadcast, so it is the room's own), whose text is control characters, so that its JSON
(\u0001 per byte, ~6 MiB) is over danmakud's cap and the worst case of decoding is hit. Then it sends --chats ordinary chat
packets, each a whole websocket message with a unique cid, and then keeps reading,
echoing every `mrkl` heartbeat.

    fragment_server.py [--reps N] [--chats N]

stdout: PORT p, then per connection JOIN room, REP room i (a flood message fully written),
SENT room (the chats written), CLOSED room.
"""

import argparse
import asyncio
import base64
import hashlib
import os
import signal
import struct
import sys

GUID = b'258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
MIB = 1 << 20


def out(line):
    sys.stdout.write(line + '\n')
    sys.stdout.flush()


def packet(body):
    """A server packet (douyu-protocol.md 2.1): len, len, 690, 0, 0, body, NUL."""
    if isinstance(body, str):
        body = body.encode('utf-8')
    n = len(body) + 9
    return struct.pack('<IIHBB', n, n, 690, 0, 0) + body + b'\0'


def frame(payload, opcode=2, fin=True):
    """One unmasked server frame (RFC 6455 5.2), minimal length encoding."""
    b0 = (0x80 if fin else 0) | opcode
    n = len(payload)
    if n < 126:
        return struct.pack('!BB', b0, n) + payload
    if n < 65536:
        return struct.pack('!BBH', b0, 126, n) + payload
    return struct.pack('!BBQ', b0, 127, n) + payload


def big_packet():
    """One Douyu packet of exactly 1 MiB on the wire (length field 1 MiB - 4)."""
    head = b'type@=chatmsg/rid@=0/uid@=4242/nn@=fragments/level@=1/txt@='
    tail = b'/'
    fill = MIB - 12 - 1 - len(head) - len(tail)
    p = packet(head + b'\x01' * fill + tail)
    assert len(p) == MIB, len(p)
    return p


def one_byte_fragments(msg):
    """msg as a binary message of one-byte frames: first opcode 2, then continuations, the
    last one with FIN. Built with slice assignment: 3 MiB in a few milliseconds."""
    n = len(msg)
    b = bytearray(3 * n)
    b[0::3] = b'\x00' * n
    b[1::3] = b'\x01' * n
    b[2::3] = msg
    b[0] = 0x02
    b[3 * (n - 1)] = 0x80
    return bytes(b)


class Conn:
    def __init__(self, reader, writer):
        self.r, self.w = reader, writer
        self.buf = b''
        self.pk = b''
        self.room = None

    async def fill(self, n):
        while len(self.buf) < n:
            d = await self.r.read(65536)
            if not d:
                raise ConnectionError('eof')
            self.buf += d

    async def upgrade(self):
        while b'\r\n\r\n' not in self.buf:
            if len(self.buf) > 16384:
                raise ConnectionError('huge request')
            await self.fill(len(self.buf) + 1)
        head, self.buf = self.buf.split(b'\r\n\r\n', 1)
        key = b''
        for line in head.split(b'\r\n')[1:]:
            k, _, v = line.partition(b':')
            if k.strip().lower() == b'sec-websocket-key':
                key = v.strip()
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        self.w.write(b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n'
                     b'Connection: Upgrade\r\nSec-WebSocket-Accept: ' + accept + b'\r\n\r\n')
        await self.w.drain()

    async def client_frame(self):
        """(opcode, unmasked payload) of the client's next frame."""
        await self.fill(2)
        b1 = self.buf[1]
        n, off = b1 & 0x7f, 2
        if n == 126:
            await self.fill(4)
            n, off = struct.unpack_from('!H', self.buf, 2)[0], 4
        elif n == 127:
            await self.fill(10)
            n, off = struct.unpack_from('!Q', self.buf, 2)[0], 10
        if not b1 & 0x80:
            raise ConnectionError('client frame not masked')
        await self.fill(off + 4 + n)
        key = self.buf[off:off + 4]
        data = bytes(c ^ key[i % 4] for i, c in enumerate(self.buf[off + 4:off + 4 + n]))
        op = self.buf[0] & 0x0f
        self.buf = self.buf[off + 4 + n:]
        return op, data

    async def bodies(self):
        """The client's next Douyu packet bodies ([] for a control frame)."""
        op, data = await self.client_frame()
        if op == 8:
            raise ConnectionError('client close')
        if op not in (1, 2):
            return []
        self.pk += data
        res = []
        while len(self.pk) >= 12:
            n = struct.unpack_from('<I', self.pk)[0]
            if len(self.pk) < n + 4:
                break
            res.append(self.pk[12:n + 3].decode('utf-8', 'replace'))
            self.pk = self.pk[n + 4:]
        return res

    async def send(self, data):
        self.w.write(data)
        await self.w.drain()


async def handle(reader, writer, opts, flood):
    c = Conn(reader, writer)
    try:
        await c.upgrade()
        joined = False
        while not joined:
            for b in await c.bodies():
                if 'type@=loginreq/' in b:
                    c.room = b.split('roomid@=')[1].split('/')[0]
                    await c.send(frame(packet(
                        'type@=loginres/userid@=0/roomgroup@=0/pg@=0/sessionid@=0/username@=/')))
                elif 'type@=joingroup/' in b:
                    joined = True
        out('JOIN %s' % c.room)
        for i in range(opts.reps):
            await c.send(flood)
            out('REP %s %d' % (c.room, i + 1))
        for i in range(opts.chats):
            cid = '%08x%08x%016x' % (int(c.room), os.getpid(), i)
            await c.send(frame(packet('type@=chatmsg/rid@=%s/uid@=%d/nn@=after%d/txt@=still here %d/'
                                      'cid@=%s/level@=3/' % (c.room, 100 + i, i, i, cid))))
        out('SENT %s' % c.room)
        while True:
            for b in await c.bodies():
                if 'type@=mrkl/' in b:
                    await c.send(frame(packet('type@=mrkl/')))
    except (ConnectionError, OSError, asyncio.IncompleteReadError):
        pass
    finally:
        out('CLOSED %s' % c.room)
        writer.transport.close()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--reps', type=int, default=3)
    ap.add_argument('--chats', type=int, default=5)
    opts = ap.parse_args()
    flood = one_byte_fragments(big_packet())
    srv = await asyncio.start_server(lambda r, w: handle(r, w, opts, flood), '127.0.0.1', 0)
    out('PORT %d' % srv.sockets[0].getsockname()[1])
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(1))
    await stop
    out('EXIT')


if __name__ == '__main__':
    asyncio.run(main())
