#!/usr/bin/env python3
"""Writes the seeds of fuzz_bili_cmd and fuzz_bili_pb into corpus/bili_cmd and corpus/bili_pb.

Fixture bodies: only the MIT-licensed ones of ../shared/fixtures/bilibili (blive-message-
listener, BroadcastLV, tiny-bilibili-ws; see its SOURCES.md). The protobuf seeds are
synthetic (made-up values), encoded here independently of bili_pb.c.
"""
import glob
import os
import struct
import zlib
HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, '..', '..', '..', 'shared', 'fixtures', 'bilibili', '')
OUT = os.path.join(HERE, 'corpus')
NOT_MIT = {'SEND_GIFT_V2.json', 'LOG_IN_NOTICE.json', 'INTERACT_WORD_V2.json'}

def varint(v):
    out = b''
    while True:
        b = v & 0x7f; v >>= 7
        out += bytes([b | (0x80 if v else 0)])
        if not v: return out
def fint(n, v): return varint(n << 3) + varint(v & (2**64 - 1))
def fbytes(n, b):
    if isinstance(b, str): b = b.encode()
    return varint(n << 3 | 2) + varint(len(b)) + b
def f32(n, b): return varint(n << 3 | 5) + b
def f64(n, b): return varint(n << 3 | 1) + b

def item(tid, gid, name):
    return fbytes(10, fint(1, gid) + fbytes(2, name) + fint(3, 1) + fint(4, 1) + fint(5, 100)
                  + fint(7, 100) + fbytes(8, 'gold') + fbytes(9, tid) + fint(10, 1700000000)
                  + fbytes(12, 'batch:gift:combo_id:1:2:3:4.5') + f32(16, b'\x00\x00\x80\x3f')
                  + fbytes(18, '投喂') + fbytes(35, fbytes(1, 'https://example.invalid/x.png')))
gift = (fint(1, 12345) + fbytes(2, 'sender') + fbytes(3, 'https://example.invalid/f.jpg')
        + fint(5, 3) + fbytes(8, fint(1, 99) + fint(4, 100) + fint(5, 21) + fbytes(6, 'medal'))
        + fbytes(9, fbytes(3, 'box') + fint(6, 15000))
        + item('111', 1, 'a') + item('', 2, 'b') + item('333', 3, 'c') + fint(11, 1))
guest_gift = fbytes(2, 'x***') + item('444', 4, 'd') + fint(11, 1)
interact = (fint(1, 4242) + fbytes(2, 'user') + fint(5, 1) + fint(6, 5050) + fint(7, 1700000000)
            + fint(8, 1700000000123) + fint(15, 1700000000123456789) + fint(16, 0)
            + fbytes(22, fint(1, 4242) + fbytes(2, fbytes(1, 'user') + fbytes(2, 'face'))
                     + fbytes(4, fint(1, 12))))
malformed = [b'\x0a\x05ab', b'\x0b', b'\x08' + b'\xff' * 9 + b'\x02', b'\x00\x01',
             b'\x09\x01\x02', bytes.fromhex('52' + '80' * 9 + '01')]

def pkt(op, body, ver=0):
    return struct.pack('>IHHII', 16 + len(body), 16, ver, op, 1) + body

def write(d, name, data):
    with open(os.path.join(OUT, d, name), 'wb') as f: f.write(data)

n = 0
for path in sorted(glob.glob(FIX + '*.json')):
    base = os.path.basename(path)
    if base in NOT_MIT: continue
    write('bili_cmd', 'fixture-' + base[:-5], b'\x00' + open(path, 'rb').read())
    n += 1
extra = {
    'big-numbers': b'{"cmd":"INTERACT_WORD","data":{"uid":123456789012345678901234,"uname":"u","trigger_time":-1e999,"x":"9999999999999999999999"}}',
    'bad-utf8': b'{"cmd":"SUPER_CHAT_MESSAGE","data":{"id":1,"uid":2,"message":"a\xff\xfe z","user_info":{"uname":"n\\u0000m","user_level":3}}}',
    'ack': b'{"cmd":"SUPER_CHAT_MESSAGE","data":{"id":7,"uid":1,"message":"m"},"msg_id":"214386819788254208:1000:1000","p_is_ack":true,"p_msg_type":1,"send_time":1759200000000}',
    'danmu-id-str': b'{"cmd":"DANMU_MSG:4:0:2","info":[[0,1,25,0,1662398325906,0,0,"h",0,0,0,"",0,"{}","{}",{"extra":"{\\"id_str\\":\\"757c46e2\\"}"}],"hi",[0,"\xe8\xa7\x82***"],[],[12]]}',
    'preparing-msgid': b'{"cmd":"PREPARING","roomid":"1","msg_id":"26964930181741056:1000:1000","p_is_ack":true,"p_msg_type":1}',
}
for k, v in extra.items():
    write('bili_cmd', k, b'\x00' + v)
write('bili_cmd', 'pb-send-gift-v2', b'\x01' + gift)
write('bili_cmd', 'pb-send-gift-v2-guest', b'\x01' + guest_gift)
write('bili_cmd', 'pb-interact-word-v2', b'\x02' + interact)
for i, m in enumerate(malformed):
    write('bili_cmd', 'pb-malformed-%d' % i, bytes([1 + i % 2]) + m)
# Session streams (mode 3): k piece sizes, then the stream.
fx = lambda name: open(FIX + name, 'rb').read()
inner = pkt(5, fx('DANMU_MSG.json')) + pkt(5, fx('SEND_GIFT.json'))
stream = (pkt(8, b'{"code":0}', 1) + pkt(3, b'\x00\x00\x00\x01', 1) + pkt(5, fx('GUARD_BUY.json'))
          + pkt(5, zlib.compress(inner), 2) + pkt(5, extra['ack'])
          + pkt(5, b'\x89PNG') + pkt(99, b'{}') + pkt(3, b'\x00\x00\x00\x02')
          + pkt(5, zlib.compress(inner)[:-3], 2))
write('bili_cmd', 'session-whole', b'\x03' + b'\x00' + stream)
write('bili_cmd', 'session-split', b'\x03' + b'\x02\x03\x07' + stream)
write('bili_cmd', 'session-refused', b'\x03' + b'\x00' + pkt(8, b'{"code":-101}'))
for name, m in [('send-gift-v2', gift), ('interact-word-v2', interact), ('guest-gift', guest_gift)]:
    write('bili_pb', name, m)
for i, m in enumerate(malformed):
    write('bili_pb', 'malformed-%d' % i, m)
deep = b''
for i in range(12):
    deep = fbytes(1 + i, deep + fint(2, i))
write('bili_pb', 'nested-12', deep)
print(n, 'fixtures')
