#!/usr/bin/python3
"""Golden mock Douyu server (Python asyncio + `websockets`, plain ws).

Sends a fixed list of packet bodies, given by the test, to the first client
that joins each room (a reconnect gets nothing), then prints `SENT <room> <n>`. The bodies are bytes (base64 in the JSON
file), so invalid UTF-8 reaches the client as it is. Packets are bundled 1, 2,
3, 1, ... per websocket message, and every 7th message is cut in two in the
middle of a packet, as TCP-like splits.

    golden_server.py --packets FILE.json      # {"packets": ["<base64 body>", ...]}

stdout: PORT n, LOGIN room, JOIN room, SENT room n, MRKL room, LOGOUT room,
CLOSE room code, PROTO_ERROR room what.
"""

import argparse
import asyncio
import base64
import json
import struct
import time

import rawserver
from rawserver import out, packet


def pairs_of(body):
    res = {}
    for seg in body.split('/'):
        k, sep, v = seg.partition('@=')
        if sep and k:
            res.setdefault(k, v)
    return res


LOGINRES = b'type@=loginres/userid@=0/roomgroup@=0/pg@=0/sessionid@=0/username@=/nickname@=/live_stat@=0/'


JOINED = set()


async def session(ws, bodies):
    room = None
    buf = b''
    try:
        async for msg in ws:
            if isinstance(msg, str):
                out('PROTO_ERROR %s text_frame' % room)
                continue
            buf += msg
            while len(buf) >= 12:
                n, n2, typ = struct.unpack_from('<IIH', buf)
                if n != n2 or n < 9:
                    out('PROTO_ERROR %s bad_length' % room)
                    return
                if len(buf) < n + 4:
                    break
                body, buf = buf[12:n + 3].decode('utf-8'), buf[n + 4:]
                if typ != 689:
                    out('PROTO_ERROR %s client_type_%d' % (room, typ))
                f = pairs_of(body)
                t = f.get('type')
                if t == 'loginreq':
                    room = f.get('roomid')
                    out('LOGIN %s' % room)
                    await ws.send(packet(LOGINRES) +
                                   packet(b'type@=pingreq/tick@=%d/' % int(time.time() * 1000)))
                elif t == 'joingroup':
                    out('JOIN %s' % room)
                    if room in JOINED:
                        continue  # a reconnect: the stream went out once, and only once
                    JOINED.add(room)
                    await send_all(ws, bodies)
                    out('SENT %s %d' % (room, len(bodies)))
                elif t == 'mrkl':
                    out('MRKL %s' % room)
                elif t == 'logout':
                    out('LOGOUT %s' % room)
                    await ws.close()
                    return
    except Exception as e:  # the client went away
        out('CLOSE %s %s' % (room, type(e).__name__))
        return
    out('CLOSE %s %s' % (room, ws.close_code))


async def send_all(ws, bodies):
    stream = [packet(b) for b in bodies]
    i, k, msgs = 0, 0, 0
    carry = b''
    while i < len(stream):
        n = 1 + k % 3
        k += 1
        chunk = carry + b''.join(stream[i:i + n])
        i += n
        msgs += 1
        if msgs % 7 == 0 and i < len(stream):
            # cut inside the next packet: its first half goes with this message
            nxt = stream[i]
            half = len(nxt) // 2
            chunk += nxt[:half]
            carry = nxt[half:]
            i += 1
        else:
            carry = b''
        await ws.send(chunk)
    if carry:
        await ws.send(carry)


async def main():
    import websockets
    ap = argparse.ArgumentParser()
    ap.add_argument('--packets', required=True)
    ap.add_argument('--port', type=int, default=0)
    opts = ap.parse_args()
    with open(opts.packets, encoding='utf-8') as f:
        bodies = [base64.b64decode(b) for b in json.load(f)['packets']]

    async def handler(ws, path=None):
        await session(ws, bodies)

    srv = await websockets.serve(handler, '127.0.0.1', opts.port, compression=None,
                                 max_size=1 << 20, ping_interval=None)
    out('PORT %d' % list(srv.sockets)[0].getsockname()[1])
    await rawserver.until_signal()


if __name__ == '__main__':
    asyncio.run(main())
