#!/usr/bin/python3
"""A hostile Bilibili chat server on raw TCP, written from bilibili-protocol.md §3 with
Python's struct and zlib only (nothing of danmakud's code). It takes any auth (op 7),
answers op 8 {"code":0} and every heartbeat (op 2) with op 3, and then, ROUNDS times:

  - a zlib batch (ver 2) of 10 MiB of zeros, about 10 KiB on the wire (a decompression bomb);
  - a zlib batch that inflates to 1 MiB + 1 byte of well-formed packets (just past the cap);
  - a command of 1 MiB of `[{},{},...]` (ver 0): ~200,000 JSON values;
  - one good DANMU_MSG whose text is "survivor <n>", in a zlib batch with a second copy of
    itself (so the batch holds two packets; the copy is a duplicate by id_str).

It prints "PORT <p>" when listening, "SENT <n>" after each round and "DONE" at the end,
then keeps answering heartbeats until killed.
"""

import asyncio
import json
import struct
import sys
import zlib

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
MIB = 1 << 20


def packet(op, body, ver=0):
    return struct.pack('>IHHII', 16 + len(body), 16, ver, op, 1) + body


def danmu(n):
    extra = json.dumps({'id_str': 'survivor%08d' % n, 'content': 'survivor %d' % n})
    info = [[0, 1, 25, 16777215, 1700000000000 + n, n, 0, 'abcd', 0, 0, 0, '', 0, '{}', '{}',
             {'extra': extra, 'mode': 0}], 'survivor %d' % n, [1000 + n, 'user%d' % n], [], [n]]
    return json.dumps({'cmd': 'DANMU_MSG', 'info': info}, ensure_ascii=False).encode()


def bombs(n):
    out = [packet(5, zlib.compress(b'\0' * (10 * MIB), 9), ver=2)]
    # Packets filling exactly 1 MiB + 1 byte once inflated.
    filler = b''
    one = packet(5, b'{"cmd":"FILLER","data":"' + b'x' * 4000 + b'"}')
    while len(filler) + len(one) <= MIB - 8192:
        filler += one
    rest = MIB + 1 - len(filler)
    filler += packet(5, b'{"cmd":"FILLER","data":"' + b'y' * (rest - 16 - 26) + b'"}')
    assert len(filler) == MIB + 1, len(filler)
    out.append(packet(5, zlib.compress(filler, 9), ver=2))
    wide = b'{"cmd":"WIDE","data":[' + b','.join([b'{}'] * ((MIB - 40) // 3)) + b']}'
    out.append(packet(5, wide))
    good = packet(5, danmu(n))
    out.append(packet(5, zlib.compress(good + good), ver=2))
    return b''.join(out)


async def serve(reader, writer):
    buf = b''
    authed = False
    sent = 0
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                return
            buf += data
            while len(buf) >= 16:
                length, _, _, op, _ = struct.unpack('>IHHII', buf[:16])
                if length < 16 or len(buf) < length:
                    break
                buf = buf[length:]
                if op == 7 and not authed:
                    authed = True
                    writer.write(packet(8, b'{"code":0}'))
                    for n in range(ROUNDS):
                        writer.write(bombs(n))
                        await writer.drain()
                        sent += 1
                        print('SENT %d' % sent, flush=True)
                    print('DONE', flush=True)
                elif op == 2:
                    writer.write(packet(3, struct.pack('>I', 1), ver=1))
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(serve, '127.0.0.1', 0)
    print('PORT %d' % server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


if __name__ == '__main__':
    asyncio.run(main())
