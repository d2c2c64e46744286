"""Raw asyncio Douyu/websocket server pieces, independent of danmakud's codec.

Shared by the mock servers that speak the wire themselves (hostile_server.py,
hostile_conn_server.py, fragment_server.py) and, for the Douyu packet and the
process plumbing, by golden_server.py and fault_server.py. Written from RFC 6455
and douyu-protocol.md only: no websocket library and nothing of danmakud's code.

  out(line)            one stdout line, flushed (the tests read stdout live)
  packet(body, ...)    one Douyu server packet; lengths, type and NUL can be made wrong
  frame(payload, ...)  one websocket frame, unmasked server frame by default
  Stream               plain TCP or TLS through ssl.MemoryBIO (raw records can be injected)
  Client               the client's side of a Stream: its Upgrade request, its (masked)
                       frames and its Douyu packets
  upgrade_and_join     101, loginres after loginreq, returns at joingroup
  run_modes            the main() of a server with one port per mode
"""

import asyncio
import base64
import hashlib
import os
import signal
import socket
import ssl
import struct
import sys

GUID = b'258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
MIB = 1 << 20
SERVER_TYPE = 690


def out(line):
    sys.stdout.write(line + '\n')
    sys.stdout.flush()


def packet(body, typ=SERVER_TYPE, l1=None, l2=None, nul=True):
    """A Douyu packet (douyu-protocol.md 2.1): two little-endian lengths, type, 0, 0, body,
    NUL. The lengths are len(body) + 9 unless l1 / l2 say otherwise; nul=False leaves the
    NUL out. body is bytes or str (UTF-8)."""
    if isinstance(body, str):
        body = body.encode('utf-8')
    n = len(body) + 9
    return struct.pack('<IIHBB', n if l1 is None else l1, n if l2 is None else l2, typ, 0, 0) + \
        body + (b'\x00' if nul else b'')


LOGINRES = packet('type@=loginres/userid@=0/roomgroup@=0/pg@=0/sessionid@=0/username@=/')


def frame(payload, opcode=2, fin=True, mask=False, rsv=0, length=None):
    """One websocket frame (RFC 6455 5.2), minimal length encoding; by default an unmasked
    binary server frame with FIN. length overrides the length field, rsv sets RSV1-3."""
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    n = len(payload) if length is None else length
    m = 0x80 if mask else 0
    if n < 126:
        hdr = struct.pack('!BB', b0, m | n)
    elif n < 65536:
        hdr = struct.pack('!BBH', b0, m | 126, n)
    else:
        hdr = struct.pack('!BBQ', b0, m | 127, n)
    if mask:
        key = os.urandom(4)
        payload = bytes(c ^ key[i % 4] for i, c in enumerate(payload))
        hdr += key
    return hdr + payload


def switching_protocols(accept):
    """The 101 answer to an Upgrade whose Sec-WebSocket-Accept is accept."""
    return (b'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n'
            b'Connection: Upgrade\r\nSec-WebSocket-Accept: ' + accept + b'\r\n\r\n')


def reset(writer):
    """Close the connection with a TCP RST (SO_LINGER 0, then abort)."""
    sock = writer.get_extra_info('socket')
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    except (OSError, AttributeError):
        pass
    writer.transport.abort()


class Stream:
    """Plain or TLS (MemoryBIO, server side) byte stream over an asyncio connection."""

    def __init__(self, reader, writer, ctx=None):
        self.r, self.w = reader, writer
        self.tls = None
        if ctx:
            self.inc, self.outg = ssl.MemoryBIO(), ssl.MemoryBIO()
            self.tls = ctx.wrap_bio(self.inc, self.outg, server_side=True)

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
        """Up to 64 KiB of plaintext; b'' at the end (TCP EOF or TLS close_notify)."""
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
        reset(self.w)


class Client:
    """Reads the client's side of a Stream: its Upgrade request, its websocket frames and the
    Douyu packets in them. mode and room are for the server's log lines.

    strict: every client frame must be masked, and only text and binary frames carry
    packets (other opcodes but close are dropped); otherwise unmasked frames are read too
    and every frame but close and pong carries packet bytes."""

    def __init__(self, s, mode=None, strict=False):
        self.s, self.mode, self.strict = s, mode, strict
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
        """Reads the Upgrade request; returns the Sec-WebSocket-Accept value for its key."""
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
        return base64.b64encode(hashlib.sha1(key + GUID).digest())

    async def frame(self):
        """(opcode, unmasked payload) of the client's next frame."""
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
        if self.strict and not masked:
            raise ConnectionError('client frame not masked')
        await self.fill(off + (4 if masked else 0) + n)
        key = self.buf[off:off + 4] if masked else b'\0\0\0\0'
        off += 4 if masked else 0
        data = bytes(c ^ key[i % 4] for i, c in enumerate(self.buf[off:off + n]))
        self.buf = self.buf[off + n:]
        return b0 & 0x0f, data

    def on_pong(self):
        pass

    async def packets(self):
        """The Douyu packet bodies (str) completed by the client's next frame; [] for a pong
        (on_pong is called) and other frames without packet bytes."""
        op, data = await self.frame()
        if op == 10:
            self.on_pong()
            return []
        if op == 8:
            raise ConnectionError('client close')
        if self.strict and op not in (1, 2):
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


async def upgrade_and_join(c, reply=LOGINRES):
    """Answers the client's Upgrade with 101 and its loginreq with reply (Douyu packets, one
    websocket message); returns the room at its joingroup (also in c.room)."""
    accept = await c.request()
    await c.s.write(switching_protocols(accept))
    while True:
        for b in await c.packets():
            if 'type@=loginreq/' in b:
                c.room = b.split('roomid@=')[1].split('/')[0]
                await c.s.write(frame(reply))
            elif 'type@=joingroup/' in b:
                return c.room


async def read_client(c, echo_mrkl):
    """Reads the client until it goes away (an exception), answering every mrkl with an mrkl
    when echo_mrkl."""
    while True:
        for b in await c.packets():
            if echo_mrkl and 'type@=mrkl/' in b:
                await c.s.write(frame(packet('type@=mrkl/')))


def tls_context(cert, key, tls12_aes256=False):
    """A server context for cert/key; tls12_aes256 pins TLS 1.2 and AES256-GCM-SHA384."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    if tls12_aes256:
        ctx.minimum_version = ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers('AES256-GCM-SHA384')
    ctx.load_cert_chain(cert, key)
    return ctx


def stop_on_signals():
    """A future that SIGTERM or SIGINT completes."""
    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(1))
    return stop


async def until_signal():
    """Runs until SIGTERM or SIGINT, then prints EXIT."""
    await stop_on_signals()
    out('EXIT')


async def run_modes(ap, modes, handle, tls12_aes256=False):
    """The main() of a server with one port per mode. ap is an ArgumentParser holding the
    server's own options; --modes a,b (each one of modes), --cert and --key are added here.
    With --cert, a TLS context is made (tls_context). Each mode listens on 127.0.0.1 (a free
    port) and hands its connections to handle(mode, reader, writer, opts, ctx); a tls_* mode
    needs --cert and --key. Prints `PORT mode port` for each, then `READY`, runs until
    SIGTERM or SIGINT and prints EXIT."""
    ap.add_argument('--modes', required=True)
    ap.add_argument('--cert')
    ap.add_argument('--key')
    opts = ap.parse_args()
    ctx = tls_context(opts.cert, opts.key, tls12_aes256) if opts.cert else None
    servers = []
    for mode in opts.modes.split(','):
        if mode not in modes:
            raise SystemExit('unknown mode ' + mode)
        if mode.startswith('tls_') and not ctx:
            raise SystemExit(mode + ' needs --cert and --key')

        def factory(mode=mode):
            return lambda r, w: handle(mode, r, w, opts, ctx)
        srv = await asyncio.start_server(factory(), '127.0.0.1', 0)
        servers.append(srv)
        out('PORT %s %d' % (mode, srv.sockets[0].getsockname()[1]))
    out('READY')
    await until_signal()
