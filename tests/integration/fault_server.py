#!/usr/bin/python3
"""Fault-injection Douyu server for danmakud's reliability tests (asyncio, raw TCP).

Independent of danmakud's C code and of the replay mocks: it speaks the Douyu
packet framing over plain TCP (danmakud's tcp:// URLs) and, instead of a
capture, sends numbered chat messages so that a test can account for every
single one. Each room has one counter that survives reconnects: message n of
room R has cid "%010d" % n (unique per room, CAST(cid AS INTEGER) = n in SQL).

A message counts as *written* once asyncio has handed all of its bytes to the
kernel (the write buffer limit is 0, so drain() returns only then); the write
log (--wlog) gets "room last_cid t_monotonic_ns" after every such batch, which
names every cid sent and when. TIOCOUTQ gives the bytes the peer's kernel has
not acknowledged yet, so `acked` is the highest cid wholly acknowledged.

Modes (per new connection; --mode, or the MODE command on stdin):
  normal   loginres, joingroup -> stream (--rate per room per second, 0 = flood),
           until the room's counter passes --count (0 = no end), answer mrkl
  close    accept the TCP connection and close it at once
  stall    accept and never read or write (a TLS ClientHello is never answered)
  silent   like normal, but after --silent-after messages stop sending, stop
           answering and never close (a half-open connection)
  error    like normal; after --error-after messages send type@=error/code@=C/
           with C cycling through --error-codes, then keep streaming

stdin commands: MODE m | RESEND n | RATE r | KILL room|all (RST) | KILLRANDOM n | PAUSE | RESUME |
STATS (prints STAT lines) | QUIT.

stdout: PORT n, CONNECT id peer, LOGIN room, JOIN room start_cid,
MRKL room t_ns, ERROR_SENT room code, CLOSE room id written=c acked=c why,
DONE room n (counter reached --count), STAT room next written acked conns.
"""

import argparse
import asyncio
import fcntl
import os
import random
import socket
import struct
import sys
import termios
import time

import rawserver
from rawserver import out, packet


def parse_packets(buf):
    """Split buf (bytearray) into complete client packets; returns [(type, body)]."""
    res = []
    while len(buf) >= 12:
        n, n2, typ = struct.unpack_from('<IIH', buf)
        if n != n2 or n < 9 or n > (1 << 20):
            raise ValueError('bad packet length %d/%d' % (n, n2))
        if len(buf) < 4 + n:
            break
        res.append((typ, bytes(buf[12:4 + n - 1]).decode('utf-8', 'replace')))
        del buf[:4 + n]
    return res


def stt_type(body):
    for item in body.split('/'):
        if item.startswith('type@='):
            return item[6:]
    return None


def stt_field(body, key):
    for item in body.split('/'):
        if item.startswith(key + '@='):
            return item[len(key) + 2:]
    return None


LOGINRES = 'type@=loginres/userid@=0/roomgroup@=0/pg@=0/sessionid@=0/username@=/nickname@=/live_stat@=0/'


class Room:
    def __init__(self, rid):
        self.rid = rid
        self.next = 1        # next cid to send
        self.written = 0     # highest cid wholly handed to the kernel
        self.acked = 0       # highest cid wholly acknowledged by the peer's kernel
        self.conns = 0
        self.done = False


class Server:
    def __init__(self, o):
        self.o = o
        self.mode = o.mode
        self.rooms = {}
        self.conns = {}
        self.seq = 0
        self.paused = asyncio.Event()
        self.paused.set()
        self.wlog = open(o.wlog, 'a', buffering=1) if o.wlog else None  # line-buffered: read live
        self.err_i = 0

    def room(self, rid):
        r = self.rooms.get(rid)
        if r is None:
            r = self.rooms[rid] = Room(rid)
        return r

    def message(self, rid, n):
        body = 'type@=chatmsg/rid@=%s/uid@=%d/nn@=fault%d/level@=%d/cid@=%010d/txt@=' % (
            rid, 100000 + n % 1000, n % 1000, 1 + n % 30, n)
        pad = self.o.size - 13 - len(body) - 1
        body += 'm%d ' % n + 'x' * max(0, pad - len('m%d ' % n)) + '/'
        return packet(body)


class Conn:
    def __init__(self, srv, reader, writer, mode):
        srv.seq += 1
        self.id = srv.seq
        self.srv, self.reader, self.writer, self.mode = srv, reader, writer, mode
        self.room = None
        self.task = None
        self.silent = False
        self.total = 0          # bytes handed to the kernel
        self.marks = []         # (end byte offset, cid) of written batches not yet acked
        self.first = self.last = 0
        sock = writer.get_extra_info('socket')
        self.fd = sock.fileno() if sock else -1
        writer.transport.set_write_buffer_limits(0)
        if srv.o.sndbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, srv.o.sndbuf)
        srv.conns[self.id] = self
        out('CONNECT %d %s' % (self.id, writer.get_extra_info('peername')))

    def update_acked(self):
        if self.fd < 0 or not self.marks:
            return
        try:
            q = struct.unpack('i', fcntl.ioctl(self.fd, termios.TIOCOUTQ, b'\0' * 4))[0]
        except OSError:
            return
        acked = self.total - q
        r = self.srv.rooms.get(self.room)
        while self.marks and self.marks[0][0] <= acked:
            _, cid = self.marks.pop(0)
            if r and cid > r.acked:
                r.acked = cid

    async def send(self, data, last_cid=0):
        self.writer.write(data)
        await self.writer.drain()
        self.total += len(data)
        if last_cid:
            self.marks.append((self.total, last_cid))
            self.update_acked()

    def abort(self):
        rawserver.reset(self.writer)

    async def stream(self):
        srv, o = self.srv, self.srv.o
        r = srv.room(self.room)
        n = r.next
        if r.conns > 1 and o.resend:
            n = max(1, r.next - o.resend)
        out('JOIN %s %d' % (self.room, n))
        batch_n = max(1, int(o.rate * o.tick)) if o.rate > 0 else o.batch
        sent_here = 0
        codes = [int(c) for c in o.error_codes.split(',') if c]
        while True:
            await srv.paused.wait()
            if o.count and n > o.count:
                if not r.done:
                    r.done = True
                    out('DONE %s %d' % (self.room, o.count))
                await asyncio.sleep(0.2)
                continue
            if self.mode == 'silent' and sent_here >= o.silent_after:
                self.silent = True
                out('SILENT %s %d' % (self.room, n - 1))
                return
            if self.mode == 'error' and sent_here == o.error_after and codes:
                code = codes[srv.err_i % len(codes)]
                srv.err_i += 1
                await self.send(packet('type@=error/code@=%d/' % code))
                out('ERROR_SENT %s %d' % (self.room, code))
                sent_here += 1  # once per connection
                continue
            k = batch_n
            if o.count:
                k = min(k, o.count - n + 1)
            if self.mode == 'silent':
                k = min(k, o.silent_after - sent_here)
            if self.mode == 'error' and codes and sent_here < o.error_after:
                k = min(k, o.error_after - sent_here)
            data = b''.join(srv.message(self.room, n + i) for i in range(k))
            await self.send(data, n + k - 1)
            if not self.first:
                self.first = n
            self.last = n + k - 1
            n += k
            sent_here += k
            if self.last > r.written:
                r.written = self.last
            if n > r.next:
                r.next = n
            if srv.wlog:
                srv.wlog.write('%s %d %d\n' % (self.room, self.last, time.monotonic_ns()))
            if o.rate > 0:
                await asyncio.sleep(max(o.tick, k / o.rate))
            else:
                await asyncio.sleep(0)

    async def run(self):
        if self.mode == 'close':
            self.writer.close()
            return 'closed by mode'
        if self.mode == 'stall':
            while await self.reader.read(65536):
                pass
            return 'peer closed'
        buf = bytearray()
        try:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    return 'peer closed'
                if self.silent:
                    continue
                buf += data
                for typ, body in parse_packets(buf):
                    t = stt_type(body)
                    if t == 'loginreq':
                        self.room = stt_field(body, 'roomid')
                        r = self.srv.room(self.room)
                        r.conns += 1
                        out('LOGIN %s' % self.room)
                        await self.send(packet(LOGINRES))
                    elif t == 'joingroup' and self.room and not self.task:
                        self.task = asyncio.ensure_future(self.stream())
                    elif t == 'mrkl':
                        out('MRKL %s %d' % (self.room, time.monotonic_ns()))
                        if not self.silent:
                            await self.send(packet('type@=mrkl/'))
                    elif t == 'logout':
                        out('LOGOUT %s' % self.room)
                    if self.silent:
                        break
        finally:
            if self.task and not self.task.done():
                self.task.cancel()

    async def handle(self):
        why = 'done'
        try:
            why = await self.run()
        except (ConnectionError, OSError) as e:
            why = type(e).__name__
        except ValueError as e:
            why = 'protocol error: %s' % e
            out('PROTO_ERROR %s %s' % (self.room, str(e).replace(' ', '_')))
        finally:
            self.update_acked()
            self.srv.conns.pop(self.id, None)
            if self.task and not self.task.done():
                self.task.cancel()
            r = self.srv.rooms.get(self.room)
            out('CLOSE %s %d first=%d last=%d acked=%d %s' % (
                self.room, self.id, self.first, self.last, r.acked if r else 0, why))
            if not self.writer.transport.is_closing():
                self.writer.close()


async def commands(srv):
    # A thread reads stdin: epoll refuses some stdin kinds (/dev/null, files).
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.buffer.readline)
        if not line:
            await asyncio.Event().wait()  # stdin closed: run until a signal
        w = line.decode().split()
        if not w:
            continue
        c = w[0].upper()
        if c == 'MODE':
            srv.mode = w[1]
        elif c == 'KILL':
            for cn in list(srv.conns.values()):
                if w[1] == 'all' or cn.room == w[1]:
                    cn.abort()
        elif c == 'KILLRANDOM':
            live = [cn for cn in srv.conns.values() if cn.task]
            for cn in random.sample(live, min(int(w[1]), len(live))):
                cn.abort()
        elif c == 'RESEND':
            srv.o.resend = int(w[1])
        elif c == 'RATE':
            srv.o.rate = float(w[1])  # for connections made from now on
        elif c == 'PAUSE':
            srv.paused.clear()
        elif c == 'RESUME':
            srv.paused.set()
        elif c == 'STATS':
            for cn in srv.conns.values():
                cn.update_acked()
            for r in srv.rooms.values():
                out('STAT %s %d %d %d %d' % (r.rid, r.next, r.written, r.acked, r.conns))
            out('STATS_END %d' % len(srv.conns))
        elif c == 'QUIT':
            return
        out('OK %s' % c)


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--mode', default='normal', choices=('normal', 'close', 'stall', 'silent', 'error'))
    ap.add_argument('--rate', type=float, default=0, help='messages per second per room (0: flood)')
    ap.add_argument('--tick', type=float, default=0.01, help='pacing step for --rate')
    ap.add_argument('--batch', type=int, default=64, help='messages per write when flooding')
    ap.add_argument('--count', type=int, default=0, help='stop each room at this cid (0: never)')
    ap.add_argument('--resend', type=int, default=0, help='a reconnecting room restarts this many cids back')
    ap.add_argument('--size', type=int, default=160, help='bytes per message packet')
    ap.add_argument('--silent-after', type=int, default=0)
    ap.add_argument('--error-after', type=int, default=5)
    ap.add_argument('--error-codes', default='51,52,204')
    ap.add_argument('--sndbuf', type=int, default=0)
    ap.add_argument('--wlog')
    o = ap.parse_args()
    srv = Server(o)

    async def on_conn(reader, writer):
        await Conn(srv, reader, writer, srv.mode).handle()

    s = await asyncio.start_server(on_conn, '127.0.0.1', o.port, backlog=4096)
    out('PORT %d' % s.sockets[0].getsockname()[1])
    stop = rawserver.stop_on_signals()
    cmd = asyncio.ensure_future(commands(srv))
    cmd.add_done_callback(lambda _: stop.done() or stop.set_result(1))
    await stop
    if srv.wlog:
        srv.wlog.close()
    out('EXIT')


if __name__ == '__main__':
    asyncio.run(main())
