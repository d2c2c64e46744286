#!/usr/bin/python3
"""Three rooms against the Python `websockets` mock over plain ws (split
packets), then three rooms over raw tcp://, then wss through the Python ssl
module; all checked against the capture."""

import sys

import harness


def body(h):
    ck = h.ck
    cases = [
        ('ws', ['--split'], 'ws://127.0.0.1:%d/', [9999, 288016, 71017], []),
        ('tcp', ['--split'], 'tcp://127.0.0.1:%d', [9999, 288016, 71017], []),
        ('wss', [], 'wss://localhost:%d/', [288016], ['--ca-file', h.certs()['ca']]),
    ]
    for mode, flags, fmt, rooms, extra in cases:
        ck.note('---- python mock, %s ----' % mode)
        mock = h.start_py_mock(*flags, mode=mode)
        url = fmt % mock.port
        d, rc = harness.record_and_stop(h, mock, [url], rooms, extra=extra, name='d-' + mode)
        for r in rooms:
            sess = harness.check_room_recording(h, d.db, r)
            if sess:
                ck.check(sess[0][5].startswith(mode + '://') and str(mock.port) in sess[0][5],
                         '%s room %d: sessions.server is the %s URL' % (mode, r, mode), sess[0][5])
        mock.signal(15)
        mock.wait(10)


if __name__ == '__main__':
    sys.exit(harness.Harness('record_python').run(body))
