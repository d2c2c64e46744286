#!/usr/bin/python3
"""Douyu servers that hurt a connection rather than a parser: raw asyncio, its own
HTTP Upgrade and websocket frames (rawserver.py, no websocket library), optional TLS
through ssl.MemoryBIO. Written apart from danmakud's code and from hostile_server.py's
modes.

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
import os
import ssl

import rawserver
from rawserver import frame, out, packet

MODES = {'normal', 'ping_flood', 'tls_ping_flood', 'ping_only', 'trickle'}


class Client(rawserver.Client):
    """Counts the client's pongs."""

    def __init__(self, s, mode):
        super().__init__(s, mode)
        self.pongs = 0

    def on_pong(self):
        self.pongs += 1


async def run_mode(c, opts):
    room = await rawserver.upgrade_and_join(c)
    mode = c.mode
    out('JOIN %s %s' % (mode, room))
    if mode == 'normal':
        await c.s.write(frame(packet('type@=chatmsg/rid@=%s/uid@=7/nn@=n/txt@=hello/cid@=%032x/'
                                  'level@=1/' % (room, os.getpid()))))
        await rawserver.read_client(c, echo_mrkl=True)
    elif mode in ('ping_flood', 'tls_ping_flood'):
        # Never read again: asyncio stops reading once its buffer is full, then the kernel's
        # receive window closes and every pong the client makes stays on its side.
        batch = frame(b'p' * 125, opcode=9) * 256
        sent = 0
        try:
            while True:
                await c.s.write(batch)
                sent += 256
        finally:
            out('FLOOD %s %d' % (mode, sent))
    elif mode == 'ping_only':
        reader = asyncio.ensure_future(rawserver.read_client(c, echo_mrkl=False))
        try:
            while not reader.done():
                await c.s.write(frame(b'alive?', opcode=9))
                await asyncio.sleep(0.2)
        finally:
            out('PONGS %s %d' % (mode, c.pongs))
            reader.cancel()
    elif mode == 'trickle':
        data = packet('type@=chatmsg/rid@=%s/txt@=never complete/' % room)
        reader = asyncio.ensure_future(rawserver.read_client(c, echo_mrkl=False))
        try:
            for i in range(len(data) - 1):  # never the last byte
                if reader.done():
                    break
                await c.s.write(frame(data[i:i + 1]))
                await asyncio.sleep(opts.trickle_s)
        finally:
            reader.cancel()


async def handle(mode, reader, writer, opts, tls_ctx):
    out('CONN %s' % mode)
    c = Client(rawserver.Stream(reader, writer, tls_ctx if mode.startswith('tls_') else None), mode)
    try:
        await c.s.handshake()
        await run_mode(c, opts)
    except (ConnectionError, OSError, ssl.SSLError, asyncio.IncompleteReadError):
        pass
    finally:
        out('CLOSED %s' % mode)
        if not writer.transport.is_closing():
            writer.transport.abort()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--trickle-s', type=float, default=0.5)
    return rawserver.run_modes(ap, MODES, handle)


if __name__ == '__main__':
    asyncio.run(main())
