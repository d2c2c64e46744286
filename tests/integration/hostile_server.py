#!/usr/bin/python3
"""A hostile Douyu server: raw asyncio, its own HTTP Upgrade and websocket frames
(no websocket library, so it can break every rule), optional TLS through
ssl.MemoryBIO (so raw records such as an alert can be injected mid-stream).

One process listens on one port per mode (127.0.0.1 only) and prints
`PORT <mode> <port>` for each, then `READY`. Modes are listed in MODES; each
first behaves like a normal server (101, loginres after loginreq, nothing
after joingroup) up to the point where it misbehaves, unless the mode breaks
the Upgrade itself.

    hostile_server.py --modes a,b,c [--cert C --key K] [--flood-s S]

Other stdout lines: CONN mode, JOIN mode room, MRKL mode room t (monotonic
seconds), PONG mode, SENT mode, FLOOD mode packets, CLOSED mode.
"""

import argparse
import asyncio
import base64
import hashlib
import os
import signal
import socket
import ssl
import struct
import sys
import time

GUID = b'258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
MIB = 1 << 20


def out(line):
    sys.stdout.write(line + '\n')
    sys.stdout.flush()


def packet(body, typ=690, l1=None, l2=None, nul=True):
    if isinstance(body, str):
        body = body.encode('utf-8')
    n = len(body) + 9
    return struct.pack('<IIHBB', n if l1 is None else l1, n if l2 is None else l2, typ, 0, 0) + \
        body + (b'\x00' if nul else b'')


CIDS = [0]


def chat(room, i, txt='hi'):
    CIDS[0] += 1  # unique per process: a reconnecting room's chats are not duplicates
    return packet('type@=chatmsg/rid@=%s/uid@=%d/nn@=h%d/txt@=%s/cid@=%032x/level@=1/dms@=4/' %
                  (room, 1000 + i, i, txt, (os.getpid() << 64) + CIDS[0]))


def wsframe(payload, opcode=2, fin=True, mask=False, rsv=0, length=None):
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload) if length is None else length
    if n < 126:
        hdr = struct.pack('!BB', b0, (0x80 if mask else 0) | n)
    elif n < 65536:
        hdr = struct.pack('!BBH', b0, (0x80 if mask else 0) | 126, n)
    else:
        hdr = struct.pack('!BBQ', b0, (0x80 if mask else 0) | 127, n)
    if mask:
        key = os.urandom(4)
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        hdr += key
    return hdr + payload


def stt_bodies(room):
    """Well-framed packets with hostile STT bodies; each is stored or skipped, never fatal."""
    r = room
    return [
        ('no_sep', 'just some text without the separator'),
        ('trailing', 'type@=chatmsg/rid@=%s/txt@=tail/cid@=%032x/garbage-after' % (r, 1)),
        ('escapes', 'type@=chatmsg/rid@=%s/txt@=a@Xb@@c@/cid@=%032x/' % (r, 2)),
        ('dangling', 'type@=chatmsg/rid@=%s/cid@=%032x/txt@=end@' % (r, 3)),
        ('fields_100k', 'type@=chatmsg/' + 'a@=b/' * 100000),
        ('mb_value', 'type@=bigval/rid@=%s/v@=%s/' % (r, 'x' * 1000000)),
        ('nested', 'type@=deep/rid@=%s/v@=%s/' % (r, 'k' + '@A' * 20000 + '=' + 'v@S' * 1000)),
        ('end', 'type@=chatmsg/rid@=%s/txt@=last/cid@=%032x/' % (r, 4)),
    ]


MODES = {
    # Douyu framing (after joining)
    'len_mismatch', 'len_small', 'len_over_cap', 'len_promise', 'type_689', 'no_nul',
    'nul_inside', 'stt',
    # websocket
    'ws_oversize', 'ws_fragmented', 'ws_text', 'ws_text_utf8', 'ws_masked', 'ws_rsv', 'ws_close_code',
    'ws_close_nocode', 'tcp_reset_midframe',
    # Upgrade
    'up_never', 'up_200', 'up_403', 'up_garbage', 'up_bad_accept',
    # TLS (need --cert/--key)
    'tls_alert', 'tls_close_notify', 'tls_abrupt',
    # slow and fast
    'slowloris_upgrade', 'slowloris_live', 'flood',
}


class Stream:
    """Plain or TLS (MemoryBIO) byte stream over an asyncio connection."""

    def __init__(self, reader, writer, ctx=None):
        self.r, self.w = reader, writer
        self.tls = None
        if ctx:
            self.inc, self.outg = ssl.MemoryBIO(), ssl.MemoryBIO()
            self.tls = ctx.wrap_bio(self.inc, self.outg, server_side=True)
        self.plain = b''

    async def _flush(self):
        data = self.outg.read()
        if data:
            self.w.write(data)
            await self.w.drain()

    async def handshake(self):
        if not self.tls:
            return
        while True:
            try:
                self.tls.do_handshake()
                await self._flush()
                return
            except ssl.SSLWantReadError:
                await self._flush()
                data = await self.r.read(65536)
                if not data:
                    raise ConnectionError('eof in handshake')
                self.inc.write(data)

    async def read(self):
        if not self.tls:
            return await self.r.read(65536)
        while True:
            try:
                return self.tls.read(65536)
            except ssl.SSLWantReadError:
                data = await self.r.read(65536)
                if not data:
                    return b''
                self.inc.write(data)
            except ssl.SSLZeroReturnError:
                return b''

    async def write(self, data):
        if self.tls:
            self.tls.write(data)
            await self._flush()
        else:
            self.w.write(data)
            await self.w.drain()

    async def raw(self, data):
        """Bytes on the TCP stream itself, past TLS."""
        self.w.write(data)
        await self.w.drain()

    async def close_notify(self):
        try:
            self.tls.unwrap()
        except ssl.SSLWantReadError:
            pass
        await self._flush()

    def reset(self):
        sock = self.w.get_extra_info('socket')
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
        except OSError:
            pass
        self.w.transport.abort()


class Client:
    """Reads the client's websocket frames (masked) and its Douyu packets."""

    def __init__(self, s, mode):
        self.s, self.mode = s, mode
        self.buf = b''
        self.pk = b''
        self.room = None

    async def fill(self, n):
        while len(self.buf) < n:
            d = await self.s.read()
            if not d:
                raise ConnectionError('eof')
            self.buf += d

    async def request(self):
        while b'\r\n\r\n' not in self.buf:
            await self.fill(len(self.buf) + 1)
            if len(self.buf) > 16384:
                raise ConnectionError('huge request')
        head, self.buf = self.buf.split(b'\r\n\r\n', 1)
        key = b''
        for line in head.split(b'\r\n')[1:]:
            k, _, v = line.partition(b':')
            if k.strip().lower() == b'sec-websocket-key':
                key = v.strip()
        return base64.b64encode(hashlib.sha1(key + GUID).digest())

    async def frame(self):
        await self.fill(2)
        b0, b1 = self.buf[0], self.buf[1]
        n, off = b1 & 0x7f, 2
        if n == 126:
            await self.fill(4)
            n, off = struct.unpack_from('!H', self.buf, 2)[0], 4
        elif n == 127:
            await self.fill(10)
            n, off = struct.unpack_from('!Q', self.buf, 2)[0], 10
        masked = b1 & 0x80
        await self.fill(off + (4 if masked else 0) + n)
        key = self.buf[off:off + 4] if masked else b'\0\0\0\0'
        off += 4 if masked else 0
        data = bytes(c ^ key[i % 4] for i, c in enumerate(self.buf[off:off + n]))
        self.buf = self.buf[off + n:]
        return b0 & 0x0f, data

    async def packets(self):
        """Next batch of Douyu packet bodies (str) from the client; [] on pong/other."""
        op, data = await self.frame()
        if op == 10:
            out('PONG %s' % self.mode)
            return []
        if op == 8:
            raise ConnectionError('client close')
        self.pk += data
        res = []
        while len(self.pk) >= 12:
            n = struct.unpack_from('<I', self.pk)[0]
            if len(self.pk) < n + 4:
                break
            res.append(self.pk[12:n + 3].decode('utf-8', 'replace'))
            self.pk = self.pk[n + 4:]
        for b in res:
            if 'type@=mrkl/' in b:
                out('MRKL %s %s %.3f' % (self.mode, self.room, time.monotonic()))
        return res


LOGINRES = packet('type@=loginres/userid@=0/roomgroup@=0/pg@=0/sessionid@=0/username@=/')


async def upgrade_and_join(c, s):
    accept = await c.request()
    await s.write(b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n'
                  b'Connection: Upgrade\r\nSec-WebSocket-Accept: ' + accept + b'\r\n\r\n')
    while True:
        for b in await c.packets():
            if 'type@=loginreq/' in b:
                c.room = b.split('roomid@=')[1].split('/')[0]
                await s.write(wsframe(LOGINRES + packet('type@=pingreq/tick@=1/')))
            elif 'type@=joingroup/' in b:
                out('JOIN %s %s' % (c.mode, c.room))
                return


async def drain_client(c, s=None):
    """Keep reading the client (logging heartbeats, echoing them through s when given)
    until it goes away."""
    try:
        while True:
            for b in await c.packets():
                if s and 'type@=mrkl/' in b:
                    await s.write(wsframe(packet('type@=mrkl/')))
    except (ConnectionError, OSError, ssl.SSLError):
        pass


async def send_then_idle(c, s, data, echo=True):
    await s.write(data)
    out('SENT %s' % c.mode)
    await drain_client(c, s if echo else None)


async def run_mode(mode, c, s, opts):
    ws = lambda p: wsframe(p)
    if mode == 'up_never':
        await c.request()
        await drain_client(c)
        return
    if mode == 'up_200':
        await c.request()
        await s.write(b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok')
        await drain_client(c)
        return
    if mode == 'up_403':
        await c.request()
        await s.write(b'HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n')
        await drain_client(c)
        return
    if mode == 'up_garbage':
        await c.request()
        await s.write(b'\x16\x03\x01garbage, not HTTP at all\r\n\r\n')
        await drain_client(c)
        return
    if mode == 'up_bad_accept':
        await c.request()
        await s.write(b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n'
                      b'Connection: Upgrade\r\nSec-WebSocket-Accept: '
                      b'dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n')
        await drain_client(c)
        return
    if mode == 'slowloris_upgrade':
        accept = await c.request()
        resp = (b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n'
                b'Connection: Upgrade\r\nSec-WebSocket-Accept: ' + accept + b'\r\n\r\n')
        for i in range(len(resp)):
            await s.write(resp[i:i + 1])
            await asyncio.sleep(1)
        return

    await upgrade_and_join(c, s)
    room = c.room
    if mode == 'len_mismatch':
        await send_then_idle(c, s, ws(chat(room, 1) + packet('type@=chatmsg/', l2=99)))
    elif mode == 'len_small':
        await send_then_idle(c, s, ws(chat(room, 1) + packet('', l1=8, l2=8)))
    elif mode == 'len_over_cap':
        await send_then_idle(c, s, ws(chat(room, 1) + struct.pack('<IIHBB', MIB + 1, MIB + 1, 690, 0, 0)))
    elif mode == 'len_promise':
        # A header for 1000 bytes, 20 of them, then nothing ever again.
        await send_then_idle(c, s, ws(chat(room, 1) + packet('x' * 991)[:32]), echo=False)
    elif mode in ('type_689', 'no_nul', 'nul_inside'):
        bad = {'type_689': packet('type@=chatmsg/rid@=%s/txt@=bad/' % room, typ=689),
               'no_nul': packet('type@=chatmsg/txt@=bad/', nul=False) + b'',
               'nul_inside': packet(b'type@=chatmsg/txt@=b\x00ad/')}[mode]
        if mode == 'no_nul':
            # keep the length honest: the last byte is there, it is just not a NUL
            bad = packet('type@=chatmsg/txt@=bad/')[:-1] + b'!'
        await send_then_idle(c, s, ws(chat(room, 1) + bad + chat(room, 2)))
    elif mode == 'stt':
        for name, body in stt_bodies(room):
            await s.write(ws(packet(body)))
        out('SENT %s' % mode)
        await drain_client(c, s)
    elif mode == 'ws_oversize':
        await send_then_idle(c, s, ws(chat(room, 1)) + wsframe(b'\0' * (MIB + 1)))
    elif mode == 'ws_fragmented':
        msg = chat(room, 1) + chat(room, 2)
        a, b = msg[:10], msg[10:]
        await s.write(wsframe(a, opcode=2, fin=False) + wsframe(b'p1', opcode=9) +
                      wsframe(b[:50], opcode=0, fin=False) + wsframe(b'p2', opcode=9) +
                      wsframe(b[50:], opcode=0, fin=True))
        out('SENT %s' % mode)
        await drain_client(c, s)
    elif mode == 'ws_text':
        # A packet in a text frame: its header (690 = b2 02) is not UTF-8.
        await send_then_idle(c, s, ws(chat(room, 1)) + wsframe(chat(room, 2), opcode=1))
    elif mode == 'ws_text_utf8':
        # Valid UTF-8 text, read as the byte stream it claims to be: not Douyu framing.
        await send_then_idle(c, s, ws(chat(room, 1)) + wsframe(b'{"hello": "json"}', opcode=1))
    elif mode == 'ws_masked':
        await send_then_idle(c, s, ws(chat(room, 1)) + wsframe(chat(room, 2), mask=True))
    elif mode == 'ws_rsv':
        await send_then_idle(c, s, ws(chat(room, 1)) + wsframe(chat(room, 2), rsv=4))
    elif mode == 'ws_close_code':
        await send_then_idle(c, s, ws(chat(room, 1)) + wsframe(struct.pack('!H', 4001) + b'bye', opcode=8))
    elif mode == 'ws_close_nocode':
        await send_then_idle(c, s, ws(chat(room, 1)) + wsframe(b'', opcode=8))
    elif mode == 'tcp_reset_midframe':
        f = wsframe(chat(room, 2))
        await s.write(ws(chat(room, 1)) + f[:len(f) // 2])
        out('SENT %s' % mode)
        await asyncio.sleep(0.3)
        s.reset()
    elif mode == 'tls_alert':
        await s.write(ws(chat(room, 1)))
        await asyncio.sleep(0.3)
        # A fatal handshake_failure alert as a plaintext record, in the middle of the
        # encrypted stream; the connection is then left open.
        await s.raw(b'\x15\x03\x03\x00\x02\x02\x28')
        out('SENT %s' % mode)
        await drain_client(c)
    elif mode == 'tls_close_notify':
        await s.write(ws(chat(room, 1)))
        await asyncio.sleep(0.3)
        await s.close_notify()
        out('SENT %s' % mode)
        await drain_client(c)
    elif mode == 'tls_abrupt':
        await s.write(ws(chat(room, 1)))
        await asyncio.sleep(0.3)
        s.w.transport.close()  # TCP FIN without a TLS close_notify
        out('SENT %s' % mode)
    elif mode == 'slowloris_live':
        await s.write(ws(chat(room, 1)))
        data = packet('type@=chatmsg/rid@=%s/txt@=slow/cid@=%032x/' % (room, 77))
        reader = asyncio.ensure_future(drain_client(c))
        # One websocket message per byte, one per second: the packet stays incomplete.
        for i in range(min(len(data), int(opts.slow_s))):
            await s.write(wsframe(data[i:i + 1]))
            await asyncio.sleep(1)
        out('SENT %s' % mode)
        await reader
    elif mode == 'flood':
        n = 0
        # Packets never stop, so heartbeats are logged but not echoed.
        reader = asyncio.ensure_future(drain_client(c))
        end = time.monotonic() + opts.flood_s
        while time.monotonic() < end and not reader.done():
            batch = b''.join(chat(room, n + k, 'flood' * 8) for k in range(200))
            n += 200
            await s.write(ws(batch))
        out('FLOOD %s %d' % (mode, n))
        await reader


async def handle(mode, reader, writer, opts, ctx):
    out('CONN %s' % mode)
    s = Stream(reader, writer, ctx if mode.startswith('tls_') else None)
    c = Client(s, mode)
    try:
        await s.handshake()
        await run_mode(mode, c, s, opts)
    except (ConnectionError, OSError, ssl.SSLError, asyncio.IncompleteReadError):
        pass
    finally:
        out('CLOSED %s' % mode)
        if not writer.transport.is_closing():
            writer.transport.close()


def tls_context(opts):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers('AES256-GCM-SHA384')
    ctx.load_cert_chain(opts.cert, opts.key)
    return ctx


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--modes', required=True)
    ap.add_argument('--cert')
    ap.add_argument('--key')
    ap.add_argument('--flood-s', type=float, default=6)
    ap.add_argument('--slow-s', type=float, default=8)
    opts = ap.parse_args()
    ctx = tls_context(opts) if opts.cert else None
    servers = []
    for mode in opts.modes.split(','):
        if mode not in MODES:
            raise SystemExit('unknown mode ' + mode)

        def factory(mode=mode):
            return lambda r, w: handle(mode, r, w, opts, ctx)
        srv = await asyncio.start_server(factory(), '127.0.0.1', 0)
        servers.append(srv)
        out('PORT %s %d' % (mode, srv.sockets[0].getsockname()[1]))
    out('READY')
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(1))
    await stop
    out('EXIT')


if __name__ == '__main__':
    asyncio.run(main())
