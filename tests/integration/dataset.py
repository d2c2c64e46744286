"""The recording behind test_queries.py and test_export.py.

build_frames() writes a frames.jsonl for mock_douyu.py --frames: the whole S13 capture plus the
S15 gifts (rid rewritten to 9999, so every joined room gets them), an rss live=1 at the start
and live=0 at the end (S16), and synthetic chat lines for what the capture lacks: each Douyu
colour index, XML-hostile and control characters, chats without dms (robots), a cst in seconds,
a phrase for full-text search, a line by uid 46780819 sent to room 288016 only, and a paid
comm_chatmsg (a super chat) next to a box notice.

record() then runs danmakud three times on one database through the Python mock:
  1. rooms 9999 and 288016, the first connection of each killed after 150 packets (a reconnect
     gap), then the full replay; SIGTERM.
  2. the same rooms again (a restart gap with reason 'shutdown'); SIGTERM.
  3. room 5 against a second mock that joins and then stays silent; left running, so the
     database has a live room with no messages.
With bilibili=True, add_bilibili() writes a Bilibili room (fixtures/bilibili mapped as the
platform maps them) between runs 2 and 3, with its session open: run 3 closes it as an unclean
stop, as after a killed recorder.
"""

import base64
import json
import os
import sqlite3
import time

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
    # A paid super chat (cprice in fen, cet seconds) and a box notice (cprice 0, not one).
    out.append([('type', 'comm_chatmsg'), ('vrid', '2013081579710062592'), ('btype', 'voiceDanmu'),
                ('chatmsg', 'nn@=付费的人/level@=21/type@=chatmsg/rid@=9999/uid@=110510743/txt@=醒目的付费弹幕/'),
                ('range', '2'), ('cprice', '1000'), ('crealPrice', '1000'), ('cmgType', '1'), ('rid', '9999'),
                ('gbtemp', '2'), ('uid', '110510743'), ('cet', '30'), ('now', '1768791052053')])
    out.append([('type', 'comm_chatmsg'), ('btype', 'pandora'),
                ('chatmsg', 'nn@=开盒的人/level@=41/type@=chatmsg/rid@=9999/uid@=339634851/'),
                ('range', '2'), ('cprice', '0'), ('cmgType', '0'), ('rid', '9999'), ('uid', '339634851'),
                ('txt1', '赠送主播'), ('crealPrice', '0'), ('cet', '0'), ('now', '1785509711867')])
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


def record(h, tz, bilibili=False):
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
    if bilibili:
        add_bilibili(db, h.shared)
    quiet = h.start_py_mock('--silent-after', 0, mode='ws')
    d3 = h.start_danmakud([SILENT_ROOM], ['ws://127.0.0.1:%d/' % quiet.port], db=db, name='run3')
    ok = harness.wait_db(db, 'SELECT joined_at FROM sessions WHERE room_id = ? AND ended_at IS NULL',
                         lambda rows: rows and rows[0][0] is not None, 20, (SILENT_ROOM,))
    ck.check(ok, 'run 3: room %d joined and stays connected' % SILENT_ROOM)
    return db, d3


# ---------------------------------------------------------------- Bilibili rows
BILI_ROOM = 21452505   # the real id
BILI_SHORT = 76        # its short id
BILI_LABEL = 'B站房间'
BILI_GUEST_NICKS = ('观***', '路***', '弹***')


def _fixture(shared, name):
    with open(os.path.join(shared, 'fixtures', 'bilibili', name), encoding='utf-8') as f:
        return json.load(f)


def _dumps(o):
    return json.dumps(o, ensure_ascii=False, separators=(',', ':'))


def bilibili_rows(shared, room=BILI_ROOM, now_ms=None):
    """Bilibili messages as the platform maps them (fixtures/bilibili, with the fields that
    matter set per row): [(type, uid, nick, level, text, cid, data, decoded, ts)].

    DANMU_MSG: uid info[2][0], nick info[2][1], level info[4][0], text info[1], cid id_str;
    SEND_GIFT: uid/uname, cid SEND_GIFT:<tid>; SEND_GIFT_V2: one row per gift item, decoded,
    cid SEND_GIFT_V2:<tid>:<i>; SUPER_CHAT_MESSAGE(_JPN): uid, nick, text, cid <TYPE>:<id>;
    LIVE, PREPARING, GUARD_BUY, INTERACT_WORD_V2 (decoded), popularity."""
    now_ms = now_ms or int(time.time() * 1000)
    ts = [now_ms - 120000]
    out = []

    def add(typ, uid, nick, level, text, cid, data, decoded=None):
        ts[0] += 1000
        out.append((typ, uid, nick, level, text, cid, _dumps(data),
                    None if decoded is None else _dumps(decoded), ts[0]))

    dm = _fixture(shared, 'DANMU_MSG.json')
    chats = [(77777777771, '__MOCK_UNAME__', 27, '第一条B站弹幕'),
             (77777777772, '第二个人', 12, '%s 在B站也能搜到' % PHRASE),
             (0, BILI_GUEST_NICKS[0], 0, '游客看到的名字是打码的'),
             (0, BILI_GUEST_NICKS[1], 0, 'guest <b>&"x"'),
             (77777777771, '__MOCK_UNAME__', 27, '又一条'),
             (0, BILI_GUEST_NICKS[2], 0, '第三个游客')]
    for i, (uid, nick, level, text) in enumerate(chats):
        d = json.loads(_dumps(dm))
        d['info'][1] = text
        d['info'][2][0], d['info'][2][1] = uid, nick
        d['info'][4][0] = level
        d['info'][0][1] = (1, 4, 5)[i % 3]           # mode
        d['info'][0][3] = (16777215, 9920249)[i % 2]  # colour
        d['info'][0][4] = ts[0] - 300                 # sent, ms
        id_str = '%032x%02d' % (0xb111b111 + i, i)
        extra = json.loads(d['info'][0][15]['extra'])
        extra['id_str'] = id_str
        extra['content'] = text
        d['info'][0][15]['extra'] = _dumps(extra)
        if i == 1:
            d['cmd'] = 'DANMU_MSG:4:0:2:2:2:0'
        add('DANMU_MSG', uid, nick, level, text, id_str, d)

    gift = _fixture(shared, 'SEND_GIFT.json')  # a silver 辣条: free
    add('SEND_GIFT', gift['data']['uid'], gift['data']['uname'], None, None,
        'SEND_GIFT:%s' % gift['data']['tid'], gift)
    # A gold gift that also came as SEND_GIFT_V2 (same tid): the gifts view counts it once.
    gold = json.loads(_dumps(gift))
    gold['data'].update({'giftId': 31036, 'giftName': '小花花', 'num': 5, 'price': 100,
                         'coin_type': 'gold', 'total_coin': 500, 'tid': 'T-gold-1', 'rnd': 'T-gold-1',
                         'uid': 88, 'uname': '送花的人'})
    add('SEND_GIFT', 88, '送花的人', None, None, 'SEND_GIFT:T-gold-1', gold)
    v2 = _fixture(shared, 'SEND_GIFT_V2.json')

    def decoded(uid, uname, gift_id, name, num, price, coin, tid, i, total=True):
        o = {'uid': uid, 'uname': uname, 'guard_level': 0, 'gift_id': gift_id, 'gift_name': name,
             'num': num, 'gift_type': 0, 'price': price, 'coin_type': coin, 'tid': tid,
             'timestamp': now_ms // 1000, 'rnd': tid, 'action': '投喂', 'index': i, 'items': 1,
             'switch': True}
        if total:
            o['total_coin'] = price * num
        return o
    add('SEND_GIFT_V2', 88, '送花的人', None, None, 'SEND_GIFT_V2:T-gold-1:0', v2,
        decoded(88, '送花的人', 31036, '小花花', 5, 100, 'gold', 'T-gold-1', 0))
    # V2 only (a guest connection: name masked, no uid), two items in one message.
    add('SEND_GIFT_V2', None, '想***', None, None, 'SEND_GIFT_V2:T-box-1:0', v2,
        decoded(None, '想***', 32251, '心动盲盒', 1, 15000, 'gold', 'T-box-1', 0))
    add('SEND_GIFT_V2', None, '想***', None, None, 'SEND_GIFT_V2:T-box-2:1', v2,
        decoded(None, '想***', 32267, '棉花糖', 2, 5200, 'gold', 'T-box-2', 1, total=False))

    sc = _fixture(shared, 'SUPER_CHAT_MESSAGE.json')
    add('SUPER_CHAT_MESSAGE', sc['data']['uid'], sc['data']['user_info']['uname'],
        sc['data']['user_info']['user_level'], sc['data']['message'],
        'SUPER_CHAT_MESSAGE:%s' % sc['data']['id'], sc)
    sc2 = json.loads(_dumps(sc))
    sc2['data'].update({'id': 4898600, 'price': 100, 'message': '大额醒目留言', 'uid': 99})
    del sc2['data']['time']  # duration from end_time - start_time
    sc2['data']['start_time'], sc2['data']['end_time'] = 1661528700, 1661528700 + 300
    sc2['data']['user_info']['uname'] = '土豪'
    add('SUPER_CHAT_MESSAGE', 99, '土豪', 20, '大额醒目留言', 'SUPER_CHAT_MESSAGE:4898600', sc2)
    jpn = _fixture(shared, 'SUPER_CHAT_MESSAGE_JPN.json')
    add('SUPER_CHAT_MESSAGE_JPN', int(jpn['data']['uid']), jpn['data']['user_info']['uname'], None,
        jpn['data']['message'], 'SUPER_CHAT_MESSAGE_JPN:%s' % jpn['data']['id'], jpn)
    guard = _fixture(shared, 'GUARD_BUY.json')
    add('GUARD_BUY', guard['data']['uid'], guard['data']['username'], None, None, None, guard)
    live = _fixture(shared, 'LIVE.json')
    add('LIVE', None, None, None, None, None, live)
    iw = _fixture(shared, 'INTERACT_WORD_V2.json')
    add('INTERACT_WORD_V2', 439367700, 'StarSea246', None, None, None, iw,
        {'uid': 439367700, 'uname': 'StarSea246', 'msg_type': 1, 'room_id': 544853,
         'timestamp': 1751716523, 'trigger_time': 1751716523239264129})
    add('popularity', None, None, None, None, None, {'popularity': 1})
    prep = _fixture(shared, 'PREPARING.json')  # round 1: the replay rotation
    add('PREPARING', None, None, None, None, None, prep)
    live2 = json.loads(_dumps(live))
    live2['live_time'] = now_ms // 1000
    add('LIVE', None, None, None, None, None, live2)
    for uid, nick, text in ((77777777772, '第二个人', '重新开播了'), (0, BILI_GUEST_NICKS[0], '打码的还在')):
        d = json.loads(_dumps(dm))
        d['info'][1], d['info'][2][0], d['info'][2][1] = text, uid, nick
        d['info'][0][4] = ts[0]
        id_str = '%034x' % (0xc0ffee + len(out))
        add('DANMU_MSG', uid, nick, 1, text, id_str, d)
    return out


def add_bilibili(db, shared, room=BILI_ROOM, short_id=BILI_SHORT, label=BILI_LABEL):
    """Writes a Bilibili room the way the recorder's store does (rooms row with its short id,
    one joined session still open, the messages of bilibili_rows), with sqlite3 directly:
    the recorder's Bilibili path is tested elsewhere; these rows exercise the schema, the views
    and export. Returns the rows' ids in order."""
    con = sqlite3.connect(db, timeout=30)
    rows = bilibili_rows(shared, room)
    start = rows[0][8] - 5000
    con.execute('INSERT INTO rooms(platform, room_id, short_id, label, added_at) VALUES (?, ?, ?, ?, ?)',
                ('bilibili', room, short_id, label, start))
    sid = con.execute("INSERT INTO sessions(platform, room_id, server, started_at, joined_at, messages) "
                      "VALUES ('bilibili', ?, 'wss://broadcastlv.chat.bilibili.com/sub', ?, ?, ?)",
                      (room, start, start + 200, len(rows))).lastrowid
    ids = []
    for typ, uid, nick, level, text, cid, data, decoded, ts in rows:
        ids.append(con.execute(
            'INSERT INTO messages(platform, room_id, ts, type, uid, nick, level, text, cid, session_id, '
            "data, decoded) VALUES ('bilibili', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (room, ts, typ, uid, nick, level, text, cid, sid, data, decoded)).lastrowid)
    con.commit()
    con.close()
    return ids
