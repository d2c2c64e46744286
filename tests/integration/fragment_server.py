#!/usr/bin/python3
"""A Douyu server that floods websocket fragments: raw asyncio, its own HTTP Upgrade,
websocket frames and Douyu packets (rawserver.py: no websocket library and nothing of
danmakud's), on 127.0.0.1 only.

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
import os

import rawserver
from rawserver import MIB, frame, out, packet


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


async def handle(reader, writer, opts, flood):
    c = rawserver.Client(rawserver.Stream(reader, writer), strict=True)
    try:
        await rawserver.upgrade_and_join(c)
        out('JOIN %s' % c.room)
        for i in range(opts.reps):
            await c.s.write(flood)
            out('REP %s %d' % (c.room, i + 1))
        for i in range(opts.chats):
            cid = '%08x%08x%016x' % (int(c.room), os.getpid(), i)
            body = ('type@=chatmsg/rid@=%s/uid@=%d/nn@=after%d/txt@=still here %d/cid@=%s/level@=3/' %
                    (c.room, 100 + i, i, i, cid))
            await c.s.write(frame(packet(body)))
        out('SENT %s' % c.room)
        await rawserver.read_client(c, echo_mrkl=True)
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
    await rawserver.until_signal()


if __name__ == '__main__':
    asyncio.run(main())
