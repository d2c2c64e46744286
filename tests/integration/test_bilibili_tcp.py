#!/usr/bin/python3
"""Bilibili over raw TCP (transport = tcp): the mock writes its bytes cut at random points
(inside headers, inside bodies, several packets at once), so danmakud must reassemble packets
from the stream; zlib and brotli batches as on ws. Two rooms: bilibili:76 (a short id) in the
config, bilibili:21452505 on the command line."""

import sys

import bili_common as bc
import harness


def body(h):
    bc.record_transport(h, 'tcp', [('bilibili:76', 14073662, 76), ('bilibili:21452505', 21452505, 0)], 'tcp',
                        argv_rooms=['bilibili:21452505'])


if __name__ == '__main__':
    sys.exit(harness.Harness('bilibili_tcp').run(body))
