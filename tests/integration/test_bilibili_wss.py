#!/usr/bin/python3
"""Bilibili over TLS: the API as https:// (api and live_api) and the chat socket as wss://
(transport = wss), trusted through --ca-file; two rooms recorded and checked as over ws."""

import sys

import bili_common as bc
import harness


def body(h):
    bc.record_transport(h, 'wss', [('bilibili:76', 14073662, 76), ('bilibili:5553263', 5553263, 0)], 'wss',
                        tls=True)


if __name__ == '__main__':
    sys.exit(harness.Harness('bilibili_wss').run(body))
