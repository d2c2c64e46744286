#!/usr/bin/python3
"""Second independent mock Douyu server (Python asyncio + `websockets`).

Written separately from mock_douyu.js and from danmakud's C code. Replays the
S13-live capture to each client that joins a room, rid@=9999 rewritten to the
joined room.

Modes: --mode ws (plain WebSocket), wss (TLS 1.2, AES256-GCM-SHA384 only),
tcp (raw TCP stream, for tcp:// URLs). Listens on 127.0.0.1 (and ::1 when
possible, same port). stdout lines as in mock_douyu.js: PORT, CONNECT, LOGIN,
JOIN, SENT, MRKL, LOGOUT, CLOSE, KILL, SILENT, PROTO_ERROR.

Options: --port N, --split, --close-after N, --silent-after N, --rate R, --repeat.
"""

import argparse
import asyncio
import base64
import json
import os
import signal
import socket
import ssl
import struct
import sys
import time

CLIENT, SERVER = 689, 690


def out(line):
    sys.stdout.write(line + '\n')
    sys.stdout.flush()


# ------------------------------------------------------------------ codec
def frame(body, typ=SERVER):
    b = body.encode('utf-8')
    n = len(b) + 9
    return struct.pack('<II', n, n) + struct.pack('<H', typ) + b'\x00\x00' + b + b'\x00'


class Deframer:
    def __init__(self):
        self.data = bytearray()

    def add(self, chunk):
        self.data += chunk
        res = []
        while True:
            if len(self.data) < 12:
                return res
            n, n2 = struct.unpack_from('<II', self.data)
            if n != n2 or n < 9 or n > 1048576:
                raise ValueError('bad length %d/%d' % (n, n2))
            end = 4 + n
            if len(self.data) < end:
                return res
            typ = struct.unpack_from('<H', self.data, 8)[0]
            if self.data[end - 1] != 0 or self.data[10] or self.data[11]:
                raise ValueError('bad packet trailer/flags')
            res.append((typ, bytes(self.data[12:end - 1]).decode('utf-8')))
            del self.data[:end]


def unesc(s):
    # one level, single pass: @A -> @, @S -> /, anything else unchanged
    parts = s.split('@')
    r = [parts[0]]
    for p in parts[1:]:
        if p[:1] == 'A':
            r.append('@' + p[1:])
        elif p[:1] == 'S':
            r.append('/' + p[1:])
        else:
            r.append('@' + p)
    return ''.join(r)


def esc(s):
    return s.replace('@', '@A').replace('/', '@S')


def stt_parse(body):
    res = []
    for item in body.split('/'):
        k, sep, v = item.partition('@=')
        if sep and k:
            res.append([unesc(k), unesc(v)])
    return res


def stt_dump(pairs):
    return ''.join('%s@=%s/' % (esc(k), esc(v)) for k, v in pairs)


def field(pairs, name):
    found = None
    for k, v in pairs:
        if k == name:
            found = v
    return found


def load_capture(path):
    d = Deframer()
    res = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            o = json.loads(line)
            if o['dir'] != 'in':
                continue
            for typ, body in d.add(base64.b64decode(o['b64'])):
                pairs = stt_parse(body)
                if stt_dump(pairs) != body:
                    raise SystemExit('STT round trip differs for %r' % body[:80])
                if field(pairs, 'type') in ('loginres', 'pingreq'):
                    continue
                res.append(pairs)
    return res


LOGINRES = ('type@=loginres/userid@=0/roomgroup@=0/pg@=0/sessionid@=0/username@=/nickname@=/'
            'live_stat@=0/is_illegal@=0/ill_ct@=/ill_ts@=0/now@=0/ps@=0/es@=0/it@=0/its@=0/'
            'npv@=0/best_dlev@=0/cur_lev@=0/nrc@=3825205384/ih@=0/sid@=72983/sahf@=0/'
            'sceneid@=0/newrg@=0/regts@=0/ip@=127.0.0.1/rn@=0/rct@=0/')


# ------------------------------------------------------------------ server
class Conn:
    """Transport-neutral session logic. `send(bytes)` is an async callable,
    `abort()` drops the connection without a goodbye."""

    joins = {}
    seq = 0

    def __init__(self, opts, capture, send, abort, close):
        Conn.seq += 1
        self.id = Conn.seq
        self.opts, self.capture = opts, capture
        self.send, self.abort, self.close = send, abort, close
        self.deframer = Deframer()
        self.room = None
        self.joined = False
        self.silent = False
        self.task = None
        self.replaying = False
        self.pending = b''
        out('CONNECT %d' % self.id)

    def error(self, what):
        out('PROTO_ERROR %s %s' % (self.room, what))

    async def on_bytes(self, data):
        try:
            packets = self.deframer.add(data)
        except ValueError as e:
            self.error('bad_packet:' + str(e).replace(' ', '_'))
            self.abort()
            return False
        login_here = False
        for typ, body in packets:
            if typ != CLIENT:
                self.error('client_type_%d' % typ)
            pairs = stt_parse(body)
            t = field(pairs, 'type')
            if t == 'loginreq':
                login_here = True
                room = field(pairs, 'roomid')
                if not room or not room.isdigit():
                    self.error('loginreq_without_roomid')
                    continue
                self.room = room
                out('LOGIN %s' % room)
                await self.send(frame(LOGINRES) + frame('type@=pingreq/tick@=%d/' % int(time.time() * 1000)))
            elif t == 'joingroup':
                if self.room is None:
                    self.error('joingroup_before_loginreq')
                    continue
                if login_here:
                    self.error('joingroup_did_not_wait_for_loginres')
                if field(pairs, 'rid') != self.room:
                    self.error('joingroup_rid_%s_differs' % field(pairs, 'rid'))
                if field(pairs, 'gid') != '-9999':
                    self.error('joingroup_gid_%s' % field(pairs, 'gid'))
                if self.joined:
                    self.error('second_joingroup')
                    continue
                self.joined = True
                n = Conn.joins.get(self.room, 0) + 1
                Conn.joins[self.room] = n
                out('JOIN %s' % self.room)
                self.task = asyncio.ensure_future(self.replay(first=(n == 1)))
            elif t == 'mrkl':
                out('MRKL %s' % self.room)
                if not self.silent:
                    await self.reply(frame('type@=mrkl/'))
            elif t == 'keeplive':
                out('KEEPLIVE %s' % self.room)
                if not self.silent:
                    await self.reply(frame('type@=keeplive/tick@=%s/' % (field(pairs, 'tick') or '')))
            elif t == 'logout':
                out('LOGOUT %s' % self.room)
                self.stop()
                await self.close()
                return False
            else:
                out('CLIENT_MSG %s %s' % (self.room, t))
        return True

    async def reply(self, b):
        # must not cut into a packet the --split replay has only partly sent
        if self.replaying:
            self.pending += b
        else:
            await self.send(b)

    def stop(self):
        if self.task and not self.task.done():
            self.task.cancel()

    def packet(self, pairs, npass):
        res = []
        for k, v in pairs:
            if k == 'rid' and v == '9999':
                v = self.room
            elif k == 'cid' and npass and len(v) >= 8:
                v = v[:-8] + '%08x' % npass
            res.append((k, v))
        return frame(stt_dump(res))

    async def replay(self, first):
        o = self.opts
        close_at = o.close_after if first and o.close_after >= 0 else -1
        silent_at = o.silent_after if first and o.silent_after >= 0 else -1
        limit = close_at if close_at >= 0 else silent_at
        delay = 1.0 / o.rate if o.rate > 0 else 0
        sent = 0
        self.replaying = o.split
        cuts = [3, 700, 1, 12, 2500, 40, 13, 6000, 9]
        ci = 0
        groups = [2, 1, 3, 5, 1, 2, 8, 4, 1, 10]
        gi = 0
        batch = []
        npass = 0
        try:
            while True:
                for pairs in self.capture:
                    if limit >= 0 and sent >= limit:
                        break
                    pkt = self.packet(pairs, npass)
                    sent += 1
                    if o.split:
                        self.pending += pkt
                        while len(self.pending) >= cuts[ci % len(cuts)]:
                            n = cuts[ci % len(cuts)]
                            ci += 1
                            chunk, self.pending = self.pending[:n], self.pending[n:]
                            await self.send(chunk)
                        if delay and self.pending:
                            chunk, self.pending = self.pending, b''
                            await self.send(chunk)
                    else:
                        batch.append(pkt)
                        if len(batch) >= groups[gi % len(groups)] or delay:
                            gi += 1
                            await self.send(b''.join(batch))
                            batch = []
                    if delay:
                        await asyncio.sleep(delay)
                    elif sent % 50 == 0:
                        await asyncio.sleep(0)
                npass += 1
                if not o.repeat or (limit >= 0 and sent >= limit):
                    break
            self.replaying = False
            if self.pending:
                chunk, self.pending = self.pending, b''
                await self.send(chunk)
            if batch:
                await self.send(b''.join(batch))
            if close_at >= 0:
                out('KILL %s %d' % (self.room, sent))
                await asyncio.sleep(0.05)  # let the bytes reach the kernel
                self.abort()
            elif silent_at >= 0:
                self.silent = True
                out('SILENT %s %d' % (self.room, sent))
            else:
                out('SENT %s %d' % (self.room, sent))
        except asyncio.CancelledError:
            pass
        except Exception as e:  # connection gone mid-replay
            out('REPLAY_STOPPED %s %s' % (self.room, type(e).__name__))


def abort_transport(transport):
    """Close the socket with RST (SO_LINGER 0): an abrupt drop."""
    if transport is None:
        return
    sock = transport.get_extra_info('socket')
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    except OSError:
        pass
    transport.abort()


async def ws_handler(ws, path=None, opts=None, capture=None):
    import websockets

    async def send(b):
        await ws.send(b)

    def abort():
        abort_transport(ws.transport)

    async def close():
        await ws.close()

    conn = Conn(opts, capture, send, abort, close)
    code = None
    try:
        async for msg in ws:
            if isinstance(msg, str):
                conn.error('text_frame')
                msg = msg.encode('utf-8')
            if not await conn.on_bytes(msg):
                break
    except websockets.exceptions.ConnectionClosed as e:
        code = e.code
    finally:
        conn.stop()
        out('CLOSE %s %s' % (conn.room, code if code is not None else ws.close_code))


async def tcp_handler(reader, writer, opts, capture):
    async def send(b):
        writer.write(b)
        await writer.drain()

    def abort():
        abort_transport(writer.transport)

    async def close():
        writer.close()

    conn = Conn(opts, capture, send, abort, close)
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if not await conn.on_bytes(data):
                break
    except (ConnectionError, OSError):
        pass
    finally:
        conn.stop()
        out('CLOSE %s tcp' % conn.room)
        if not writer.transport.is_closing():
            writer.close()


def tls_context(opts):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers('AES256-GCM-SHA384')
    ctx.load_cert_chain(opts.cert, opts.key)
    return ctx


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--mode', choices=('ws', 'wss', 'tcp'), default='ws')
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--shared', default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                     '..', '..', '..', 'shared'))
    ap.add_argument('--frames')
    ap.add_argument('--key')
    ap.add_argument('--cert')
    ap.add_argument('--split', action='store_true')
    ap.add_argument('--close-after', type=int, default=-1)
    ap.add_argument('--silent-after', type=int, default=-1)
    ap.add_argument('--rate', type=float, default=0)
    ap.add_argument('--repeat', action='store_true')
    opts = ap.parse_args()
    frames = opts.frames or os.path.join(opts.shared, 'fixtures', 'douyu', 'danmaku',
                                         'S13-live', 'frames.jsonl')
    capture = load_capture(frames)

    servers = []
    if opts.mode == 'tcp':
        async def h(r, w):
            await tcp_handler(r, w, opts, capture)
        srv = await asyncio.start_server(h, '127.0.0.1', opts.port)
        port = srv.sockets[0].getsockname()[1]
        servers.append(srv)
        try:
            servers.append(await asyncio.start_server(h, '::1', port))
        except OSError:
            pass
    else:
        import websockets
        ctx = tls_context(opts) if opts.mode == 'wss' else None

        async def h(ws, path=None):
            await ws_handler(ws, path, opts, capture)
        kw = dict(ssl=ctx, compression=None, max_size=1 << 20, ping_interval=None)
        srv = await websockets.serve(h, '127.0.0.1', opts.port, **kw)
        port = list(srv.sockets)[0].getsockname()[1]
        servers.append(srv)
        try:
            servers.append(await websockets.serve(h, '::1', port, **kw))
        except OSError:
            pass
    out('PORT %d' % port)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(1))
    await stop
    out('EXIT')


if __name__ == '__main__':
    asyncio.run(main())
