#!/usr/bin/python3
"""Douyu servers that hurt a connection rather than a parser: raw asyncio, its own
HTTP Upgrade and websocket frames (no websocket library), optional TLS through
ssl.MemoryBIO. Written apart from danmakud's code and from hostile_server.py's
modes (the framing helpers are the same few lines of RFC 6455).

One process listens on 127.0.0.1 on one port per mode and prints
`PORT <mode> <port>` for each, then `READY`. Every mode first behaves like a
normal server (101, loginres after loginreq, then waits for joingroup), then:

  normal           sends one chat, then answers every mrkl with an mrkl
  ping_flood       stops reading and sends websocket pings (125-byte payloads)
                   as fast as the socket takes them, until the client goes away
  tls_ping_flood   the same over TLS (needs --cert/--key)
  ping_only        keeps reading, never answers mrkl, sends only a ping every
                   0.2 s: a live socket with no Douyu packet on it
  trickle          keeps reading, never answers mrkl, sends one byte of a chat
                   packet every --trickle-s seconds, each in its own message

    hostile_conn_server.py --modes a,b [--cert C --key K] [--trickle-s S]

Other stdout lines: CONN mode, JOIN mode room, PONGS mode n (pongs read),
FLOOD mode pings (sent before the client went away), CLOSED mode.
"""

import argparse
import asyncio
import base64
import hashlib
import os
import signal
import ssl
import struct
import sys

GUID = b'258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
MODES = {'normal', 'ping_flood', 'tls_ping_flood', 'ping_only', 'trickle'}


def out(line):
    sys.stdout.write(line + '\n')
    sys.stdout.flush()


def douyu(body):
    """One Douyu packet: two equal little-endian lengths, type 690, body, NUL."""
    body = body.encode('utf-8')
    n = len(body) + 9
    return struct.pack('<IIHBB', n, n, 690, 0, 0) + body + b'\x00'


def frame(payload, opcode=2):
    """An unmasked server frame, FIN set."""
    n = len(payload)
    if n < 126:
        hdr = struct.pack('!BB', 0x80 | opcode, n)
    elif n < 65536:
        hdr = struct.pack('!BBH', 0x80 | opcode, 126, n)
    else:
        hdr = struct.pack('!BBQ', 0x80 | opcode, 127, n)
    return hdr + payload


class Conn:
    """One client over plain TCP or TLS (MemoryBIO): read its frames, write ours."""

    def __init__(self, reader, writer, mode, tls_ctx):
        self.r, self.w, self.mode = reader, writer, mode
        self.buf = b''
        self.pk = b''
        self.pongs = 0
        self.tls = None
        if tls_ctx:
            self.inc, self.outg = ssl.MemoryBIO(), ssl.MemoryBIO()
            self.tls = tls_ctx.wrap_bio(self.inc, self.outg, server_side=True)

    async def _flush(self):
        data = self.outg.read()
        if data:
            self.w.write(data)
            await self.w.drain()

    async def handshake(self):
        while self.tls:
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

    async def recv(self):
        while True:
            if not self.tls:
                data = await self.r.read(65536)
            else:
                try:
                    data = self.tls.read(65536)
                except ssl.SSLWantReadError:
                    raw = await self.r.read(65536)
                    if not raw:
                        raise ConnectionError('eof')
                    self.inc.write(raw)
                    continue
            if not data:
                raise ConnectionError('eof')
            self.buf += data
            return

    async def send(self, data):
        if self.tls:
            self.tls.write(data)
            await self._flush()
        else:
            self.w.write(data)
            await self.w.drain()

    async def need(self, n):
        while len(self.buf) < n:
            await self.recv()

    async def upgrade(self):
        while b'\r\n\r\n' not in self.buf:
            if len(self.buf) > 16384:
                raise ConnectionError('huge request')
            await self.recv()
        head, self.buf = self.buf.split(b'\r\n\r\n', 1)
        key = b''
        for line in head.split(b'\r\n')[1:]:
            k, _, v = line.partition(b':')
            if k.strip().lower() == b'sec-websocket-key':
                key = v.strip()
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        await self.send(b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n'
                        b'Connection: Upgrade\r\nSec-WebSocket-Accept: ' + accept + b'\r\n\r\n')

    async def packets(self):
        """The Douyu bodies of the client's next frame ([] for a pong)."""
        await self.need(2)
        b0, b1 = self.buf[0], self.buf[1]
        n, off = b1 & 0x7f, 2
        if n == 126:
            await self.need(4)
            n, off = struct.unpack_from('!H', self.buf, 2)[0], 4
        elif n == 127:
            await self.need(10)
            n, off = struct.unpack_from('!Q', self.buf, 2)[0], 10
        mask_len = 4 if b1 & 0x80 else 0
        await self.need(off + mask_len + n)
        key = self.buf[off:off + 4] if mask_len else b'\0\0\0\0'
        off += mask_len
        data = bytes(c ^ key[i % 4] for i, c in enumerate(self.buf[off:off + n]))
        self.buf = self.buf[off + n:]
        op = b0 & 0x0f
        if op == 10:
            self.pongs += 1
            return []
        if op == 8:
            raise ConnectionError('client close')
        self.pk += data
        res = []
        while len(self.pk) >= 12:
            ln = struct.unpack_from('<I', self.pk)[0]
            if len(self.pk) < ln + 4:
                break
            res.append(self.pk[12:ln + 3].decode('utf-8', 'replace'))
            self.pk = self.pk[ln + 4:]
        return res

    async def join(self):
        await self.upgrade()
        room = None
        while True:
            for b in await self.packets():
                if 'type@=loginreq/' in b:
                    room = b.split('roomid@=')[1].split('/')[0]
                    await self.send(frame(douyu('type@=loginres/userid@=0/roomgroup@=0/pg@=0/'
                                                'sessionid@=0/username@=/')))
                elif 'type@=joingroup/' in b:
                    out('JOIN %s %s' % (self.mode, room))
                    return room

    async def read_forever(self, echo_mrkl):
        while True:
            for b in await self.packets():
                if echo_mrkl and 'type@=mrkl/' in b:
                    await self.send(frame(douyu('type@=mrkl/')))


async def run_mode(c, opts):
    room = await c.join()
    mode = c.mode
    if mode == 'normal':
        await c.send(frame(douyu('type@=chatmsg/rid@=%s/uid@=7/nn@=n/txt@=hello/cid@=%032x/'
                                 'level@=1/' % (room, os.getpid()))))
        await c.read_forever(True)
    elif mode in ('ping_flood', 'tls_ping_flood'):
        # Never read again: asyncio stops reading once its buffer is full, then the kernel's
        # receive window closes and every pong the client makes stays on its side.
        batch = frame(b'p' * 125, opcode=9) * 256
        sent = 0
        try:
            while True:
                await c.send(batch)
                sent += 256
        finally:
            out('FLOOD %s %d' % (mode, sent))
    elif mode == 'ping_only':
        reader = asyncio.ensure_future(c.read_forever(False))
        try:
            while not reader.done():
                await c.send(frame(b'alive?', opcode=9))
                await asyncio.sleep(0.2)
        finally:
            out('PONGS %s %d' % (mode, c.pongs))
            reader.cancel()
    elif mode == 'trickle':
        data = douyu('type@=chatmsg/rid@=%s/txt@=never complete/' % room)
        reader = asyncio.ensure_future(c.read_forever(False))
        try:
            for i in range(len(data) - 1):  # never the last byte
                if reader.done():
                    break
                await c.send(frame(data[i:i + 1]))
                await asyncio.sleep(opts.trickle_s)
        finally:
            reader.cancel()


async def handle(mode, reader, writer, opts, tls_ctx):
    out('CONN %s' % mode)
    c = Conn(reader, writer, mode, tls_ctx if mode.startswith('tls_') else None)
    try:
        await c.handshake()
        await run_mode(c, opts)
    except (ConnectionError, OSError, ssl.SSLError, asyncio.IncompleteReadError):
        pass
    finally:
        out('CLOSED %s' % mode)
        if not writer.transport.is_closing():
            writer.transport.abort()


def tls_context(opts):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(opts.cert, opts.key)
    return ctx


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--modes', required=True)
    ap.add_argument('--cert')
    ap.add_argument('--key')
    ap.add_argument('--trickle-s', type=float, default=0.5)
    opts = ap.parse_args()
    tls_ctx = tls_context(opts) if opts.cert else None
    servers = []
    for mode in opts.modes.split(','):
        if mode not in MODES:
            raise SystemExit('unknown mode ' + mode)
        if mode.startswith('tls_') and not tls_ctx:
            raise SystemExit(mode + ' needs --cert and --key')

        def factory(mode=mode):
            return lambda r, w: handle(mode, r, w, opts, tls_ctx)
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
