#!/usr/bin/python3
"""A hostile Douyu server: raw asyncio, its own HTTP Upgrade and websocket frames
(rawserver.py, no websocket library, so it can break every rule), optional TLS through
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
import os
import ssl
import struct
import time

import rawserver
from rawserver import MIB, out, packet

wsframe = rawserver.frame


CIDS = [0]


def chat(room, i, txt='hi'):
    CIDS[0] += 1  # unique per process: a reconnecting room's chats are not duplicates
    return packet('type@=chatmsg/rid@=%s/uid@=%d/nn@=h%d/txt@=%s/cid@=%032x/level@=1/dms@=4/' %
                  (room, 1000 + i, i, txt, (os.getpid() << 64) + CIDS[0]))


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


class Client(rawserver.Client):
    """Logs the client's pongs and heartbeats."""

    def on_pong(self):
        out('PONG %s' % self.mode)

    async def packets(self):
        res = await super().packets()
        for b in res:
            if 'type@=mrkl/' in b:
                out('MRKL %s %s %.3f' % (self.mode, self.room, time.monotonic()))
        return res


async def upgrade_and_join(c):
    await rawserver.upgrade_and_join(c, rawserver.LOGINRES + packet('type@=pingreq/tick@=1/'))
    out('JOIN %s %s' % (c.mode, c.room))


async def drain_client(c, s=None):
    """Keep reading the client (logging heartbeats, echoing them through s when given)
    until it goes away."""
    try:
        await rawserver.read_client(c, echo_mrkl=s is not None)
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
        resp = rawserver.switching_protocols(accept)
        for i in range(len(resp)):
            await s.write(resp[i:i + 1])
            await asyncio.sleep(1)
        return

    await upgrade_and_join(c)
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
    s = rawserver.Stream(reader, writer, ctx if mode.startswith('tls_') else None)
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--flood-s', type=float, default=6)
    ap.add_argument('--slow-s', type=float, default=8)
    return rawserver.run_modes(ap, MODES, handle, tls12_aes256=True)


if __name__ == '__main__':
    asyncio.run(main())
