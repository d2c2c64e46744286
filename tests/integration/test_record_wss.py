#!/usr/bin/python3
"""Three rooms at once over wss against the Node mock (TLS 1.2,
AES256-GCM-SHA384 only, packets split across WebSocket messages and several
per message); everything the capture holds must be in the database, exactly."""

import sys

import harness


def body(h):
    ck = h.ck
    rooms = [9999, 288016, 71017]
    mock = h.start_node_mock('--split')
    url = 'wss://localhost:%d/' % mock.port
    d, rc = harness.record_and_stop(h, mock, [url], rooms, extra=['--ca-file', h.certs()['ca']])
    ck.eq(len(mock.matching(r'^CONNECT ')), 3, 'one connection per room')
    ck.eq(mock.matching('TLS_ERROR'), [], 'no TLS errors at the mock')
    for r in rooms:
        sess = harness.check_room_recording(h, d.db, r)
        if sess:
            ck.check(str(mock.port) in sess[0][5] and sess[0][5].startswith('wss://'),
                     'room %d: sessions.server names the wss server' % r, sess[0][5])
    ck.eq(sorted(x[0] for x in harness.db_rows(d.db, 'SELECT room_id FROM rooms')), sorted(rooms),
          'rooms table lists the three rooms')
    ck.eq(harness.db_scalar(d.db, 'SELECT count(*) FROM sessions WHERE ended_at IS NULL'), 0,
          'no session left open')


if __name__ == '__main__':
    sys.exit(harness.Harness('record_wss').run(body))
