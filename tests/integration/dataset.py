"""The recording behind test_queries.py and test_export.py.

build_frames() writes a frames.jsonl for mock_douyu.py --frames: the whole S13 capture plus the
S15 gifts (rid rewritten to 9999, so every joined room gets them), an rss live=1 at the start
and live=0 at the end (S16), and synthetic chat lines for what the capture lacks: each Douyu
colour index, XML-hostile and control characters, chats without dms (robots), a cst in seconds,
a phrase for full-text search, and a line by uid 46780819 sent to room 288016 only.

record() then runs danmakud three times on one database through the Python mock:
  1. rooms 9999 and 288016, the first connection of each killed after 150 packets (a reconnect
     gap), then the full replay; SIGTERM.
  2. the same rooms again (a restart gap with reason 'shutdown'); SIGTERM.
  3. room 5 against a second mock that joins and then stays silent; left running, so the
     database has a live room with no messages.
"""

import base64
import json
import os

import harness

ROOMS = (9999, 288016)
SILENT_ROOM = 5
PHRASE = '不会打线'
SYNTH_UID = 46780819


def _packet_frame(pairs_list):
    raw = b''.join(harness.pack(harness.stt_encode(p), harness.SERVER_TYPE) for p in pairs_list)
    return json.dumps({'dir': 'in', 't': 0, 'b64': base64.b64encode(raw).decode()})


def _chat(cid, uid, nick, txt, rid='9999', col=None, dms='4', cst='1790519453584'):
    p = [('type', 'chatmsg'), ('rid', rid), ('uid', str(uid)), ('nn', nick), ('txt', txt),
         ('cid', cid), ('level', '12')]
    if col is not None:
        p.append(('col', str(col)))
    if cst is not None:
        p.append(('cst', cst))
    if dms is not None:
        p.append(('dms', dms))
    return p


def synthetic_chats():
    out = []
    for col in range(0, 8):
        out.append(_chat('c0l%032d' % col, 7000 + col, '彩色%d' % col, '颜色测试%d号' % col, col=col))
    out.append(_chat('xml%029d' % 1, 7100, '<b>&"\'', 'a<b>&"c\' ]]> %s！' % PHRASE, col=2))
    out.append(_chat('ctl%029d' % 1, 7101, 'ctl\x01nick', 'ctl\x01\x0b\x1f|\ufffe\ufffd末尾\t制表', col=1))
    out.append(_chat('rob%029d' % 1, 7102, '机器人', '机器人没有dms %s' % PHRASE, dms=None))
    out.append(_chat('rob%029d' % 2, 7103, '空dms', '空的dms也算机器人', dms=''))
    out.append(_chat('sec%029d' % 1, 7104, '秒', 'cst是秒', cst='1790519453'))
    out.append(_chat('uid%029d' % 1, SYNTH_UID, 'uvc54064957', '只在288016说的话', rid='288016'))
    return out


def build_frames(shared, path, cid_tag=None):
    """Writes the frames; with cid_tag, every cid ends in it instead (a new broadcast whose
    chat lines are new rows rather than duplicates of the first)."""
    packets = harness.capture_server_packets(shared)
    with open(os.path.join(shared, 'fixtures', 'douyu', 'danmaku', 'S15-gifts', 'packets.json'),
              encoding='utf-8') as f:
        gifts = [harness.stt_decode(b) for b in json.load(f)['packets']]
    gifts = [[(k, '9999' if k == 'rid' else v) for k, v in g] for g in gifts]
    with open(os.path.join(shared, 'fixtures', 'douyu', 'danmaku', 'S16-broadcast-end',
                           'packets.json'), encoding='utf-8') as f:
        rss_end = harness.stt_decode(json.load(f)['packets'][0])
    rss_end = [(k, '9999' if k == 'rid' else v) for k, v in rss_end]
    rss_on = [(k, {'ss': '1', 'ivl': '0'}.get(k, v)) for k, v in rss_end if k != 'endtime']
    seq = [rss_on] + packets[:100] + synthetic_chats() + packets[100:] + gifts + [rss_end]
    if cid_tag:
        seq = [[(k, v[:-len(cid_tag)] + cid_tag if k == 'cid' and len(v) > len(cid_tag) else v)
                for k, v in p] for p in seq]
    with open(path, 'w', encoding='utf-8') as f:
        for i in range(0, len(seq), 4):
            f.write(_packet_frame(seq[i:i + 4]) + '\n')
    return seq


def record(h, tz):
    """Records the database; returns (db path, running danmakud Proc for the silent room)."""
    ck = h.ck
    db = os.path.join(h.tmp, 'danmaku.db')
    env_note = 'TZ=%s' % tz
    for run in (1, 2):
        frames = os.path.join(h.tmp, 'frames%d.jsonl' % run)
        build_frames(h.shared, frames, cid_tag=None if run == 1 else 'run2')
        flags = ['--close-after', 150] if run == 1 else []
        mock = h.start_py_mock('--frames', frames, *flags, mode='ws')
        url = 'ws://127.0.0.1:%d/' % mock.port
        d = h.start_danmakud(ROOMS, [url], extra=['--flush-ms', '100'], db=db, name='run%d' % run)
        got = mock.wait_line(r'^SENT ', 60, count=len(ROOMS))
        ck.eq(len(got), len(ROOMS), 'run %d: the mock replayed everything to both rooms' % run)
        # Stored when the newest row stops changing for a few polls (bounded).
        last = [None, 0]

        def settled():
            n = harness.db_scalar(db, 'SELECT max(id) FROM messages')
            last[1] = last[1] + 1 if n == last[0] else 0
            last[0] = n
            return last[1] >= 5
        harness.wait_until(settled, 20, 0.2)
        ck.eq(h.stop_danmakud(d), 0, 'run %d: danmakud exits 0 on SIGTERM (%s)' % (run, env_note))
        mock.signal(15)
        mock.wait(10)
    quiet = h.start_py_mock('--silent-after', 0, mode='ws')
    d3 = h.start_danmakud([SILENT_ROOM], ['ws://127.0.0.1:%d/' % quiet.port], db=db, name='run3')
    ok = harness.wait_db(db, 'SELECT joined_at FROM sessions WHERE room_id = ? AND ended_at IS NULL',
                         lambda rows: rows and rows[0][0] is not None, 20, (SILENT_ROOM,))
    ck.check(ok, 'run 3: room %d joined and stays connected' % SILENT_ROOM)
    return db, d3
