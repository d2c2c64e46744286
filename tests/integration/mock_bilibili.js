#!/usr/bin/env node
// Independent mock of Bilibili's live-chat service for danmakud's black-box tests: the HTTP
// API steps of bilibili-protocol.md §2 and the chat socket of §3-§4, in one process.
//
// Written from the protocol note only: its own packet codec, Wbi signer and protobuf
// re-encoder (never danmakud's C code). Node built-ins plus `ws`.
//
// HTTP API (plain http, and https when --key/--cert are given), on 127.0.0.1:
//   GET /x/frontend/finger/spi                    buvid3 (b_3) and buvid4 (b_4) it issues
//   GET /x/web-interface/nav                      -101 logged out, 0 with Cookie SESSDATA=<--sessdata>;
//                                                 data.wbi_img carries the current Wbi keys
//   GET /room/v1/Room/room_init?id=N              real id and short id from the room map; 60004
//   GET /xlive/web-room/v1/index/getDanmuInfo?id=REAL&type=0&...&wts=&w_rid=
//                                                 -352 unless w_rid = md5(query + mixin_key),
//                                                 |wts - now| <= --wts-window and Cookie buvid3
//                                                 is one it issued; else a token bound to the
//                                                 room, the uid (nav mid when SESSDATA is
//                                                 right, else 0) and the buvid3, and host_list
// Control (not logged, never 412):
//   GET /_mock/log                 every API request (cookie values left out), auths, heartbeats,
//                                  ACKs, connections, protocol errors, issued buvid3s and tokens
//   GET /_mock/script?room=REAL    the commands this room is sent after auth, in order
//   GET /_mock/rotate[?img=&sub=]  new Wbi keys (random when not given): old signatures get -352
//   GET /_mock/kick?room=REAL      drop that room's chat connections (no close frame)
//   GET /_mock/revoke?room=REAL    forget every token issued for the room: its next auth gets -101
//   GET /_mock/mode?always352=0|1&http412=N&hb_timeout=S&auth_timeout=S&replay=every|first
//                                  change modes at run time
//
// Chat socket: ws://127.0.0.1:<ws>/sub, wss://127.0.0.1:<wss>/sub (with --key/--cert) and raw
// TCP 127.0.0.1:<tcp>, all with the 16-byte big-endian packet header. The client must send
// op 7 (auth) within --auth-timeout s: uid, roomid (real), protover 2|3, buvid, platform "web",
// type 2, key (the token; may be absent only when no token was issued for the room, or in
// --always-352 mode). Wrong key, or a uid that is not the token's: op 8 {"code":-101} and
// close. Then op 8 {"code":0}, the room's script as op 5 packets (ver 0 plain, ver 2 zlib
// batches, ver 3 brotli batches; on TCP the bytes are written cut at random points), op 3 with
// a u32 popularity for each op 2 (the client's heartbeat body echoed after the packet,
// uncounted, as the real server does), and op 24 ACKs recorded. A client that sends no
// heartbeat for --hb-timeout s is dropped.
//
// Per room script (deterministic, from the room id): every fixture *.json once (roomid,
// room_id, real_roomid 77777777774 rewritten to the room), SUPER_CHAT_MESSAGE with msg_id and
// p_is_ack added, --chats DANMU_MSGs whose text names the room (one of them sent twice, same id_str), one
// more SEND_GIFT and one more SEND_GIFT_V2 (protobuf re-encoded) with room-dependent nums.
//
// stdout: first a JSON line {"ready":true,"http":P,"https":P,"ws":P,"wss":P,"tcp":P} (0 =
// not served), then event lines: API <path> <status> <code>, CONNECT <id> <transport>,
// AUTH <room> ok|fail <why> <transport>, SENT <room> <n>, HB <room> <popularity>,
// ACK <room> <msg_id>, CLOSE <room|-> <id> <why>, KICK <room> <n>, PROTO_ERROR <room|-> <what>.
//
// Options (each also from the environment as BILI_MOCK_<NAME>, e.g. BILI_MOCK_HB_TIMEOUT=5):
//   --http-port N --https-port N --ws-port N --wss-port N --tcp-port N   (default 0: any)
//   --key F --cert F       TLS key and certificate (PEM): enables https and wss
//   --shared DIR           holds fixtures/bilibili (default ../../../shared)
//   --fixtures DIR         the fixture directory itself
//   --room SHORT:REAL|REAL room map, repeatable (default 76:14073662, 21452505, 5553263)
//   --img-key K --sub-key K   Wbi keys (default: the protocol note's test-vector keys)
//   --sessdata S --uid N --uname S   the logged-in account the cookie must name
//   --http412 N            answer HTTP 412 to the first N API requests
//   --always-352           getDanmuInfo always answers -352 (fallback mode)
//   --hb-timeout S         drop a client silent (no heartbeat) for S s; 0 never (default 60)
//   --auth-timeout S       drop a client without auth after S s (default 5)
//   --pop-every N          popularity changes every N heartbeats of a connection (default 3)
//   --wts-window S         accepted |wts - now| (default 300)
//   --chats N              generated chats per room (default 4)
//   --replay every|first   replay the script on every authenticated connection, or only on
//                          a room's first one (later ones get heartbeats only)
//   --hosts H,H            host names of host_list (default 127.0.0.1,127.0.0.1)
//   --seed N               changes the batching and the TCP cut points (default 1)
//   --self-test            check the Wbi vectors, codecs and scripts, then exit 0 or 1
'use strict';

const fs = require('fs');
const path = require('path');
const http = require('http');
const https = require('https');
const net = require('net');
const zlib = require('zlib');
const crypto = require('crypto');

// ---------------------------------------------------------------- options
const DEFAULTS = {
  'http-port': '0', 'https-port': '0', 'ws-port': '0', 'wss-port': '0', 'tcp-port': '0',
  key: null, cert: null, shared: null, fixtures: null, room: [],
  'img-key': '7cd084941338484aae1ad9425b84077c', 'sub-key': '4932caff0ff746eab6f01bf08b70ac45',
  sessdata: 'mock%2Csessdata%2C0123456789abcdef', uid: '434334701', uname: 'mock-account',
  http412: '0', 'always-352': false, 'hb-timeout': '60', 'auth-timeout': '5', 'pop-every': '3',
  'wts-window': '300', chats: '4', replay: 'every', hosts: '127.0.0.1,127.0.0.1', seed: '1',
  'self-test': false,
};
const FLAGS = new Set(['always-352', 'self-test']);

function parseArgs(argv, env) {
  const o = {};
  for (const [k, v] of Object.entries(DEFAULTS)) {
    const e = env['BILI_MOCK_' + k.toUpperCase().replace(/-/g, '_')];
    if (e === undefined) o[k] = Array.isArray(v) ? [] : v;
    else if (FLAGS.has(k)) o[k] = e !== '' && e !== '0';
    else if (Array.isArray(v)) o[k] = e.split(/[\s,]+/).filter(Boolean);
    else o[k] = e;
  }
  let envRooms = o.room.length > 0;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--') || !(a.slice(2) in DEFAULTS)) throw new Error('unknown option ' + a);
    const k = a.slice(2);
    if (FLAGS.has(k)) { o[k] = true; continue; }
    if (i + 1 >= argv.length) throw new Error('missing value for ' + a);
    const v = argv[++i];
    if (Array.isArray(DEFAULTS[k])) {
      if (envRooms) { o[k] = []; envRooms = false; } // the command line replaces the env
      o[k].push(v);
    } else {
      o[k] = v;
    }
  }
  const int = (k, min, max) => {
    const n = Number(o[k]);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${k}: expected ${min}..${max}`);
    o[k] = n;
  };
  for (const k of ['http-port', 'https-port', 'ws-port', 'wss-port', 'tcp-port']) int(k, 0, 65535);
  int('uid', 1, Number.MAX_SAFE_INTEGER);
  int('http412', 0, 1e9);
  int('hb-timeout', 0, 86400);
  int('auth-timeout', 1, 3600);
  int('pop-every', 1, 1e6);
  int('wts-window', 0, 1e9);
  int('chats', 2, 1000);
  int('seed', 0, 2 ** 31);
  if (!/^[0-9a-f]{32}$/.test(o['img-key']) || !/^[0-9a-f]{32}$/.test(o['sub-key'])) {
    throw new Error('--img-key/--sub-key: expected 32 lower-case hex digits');
  }
  if (o.replay !== 'every' && o.replay !== 'first') throw new Error('--replay: every or first');
  if ((o.key === null) !== (o.cert === null)) throw new Error('--key and --cert go together');
  if (!/^[\x21-\x7e]+$/.test(o.sessdata) || /[;=]/.test(o.sessdata)) throw new Error('--sessdata: bad value');
  if (!o.room.length) o.room = ['76:14073662', '21452505', '5553263'];
  o.rooms = parseRooms(o.room);
  o.hostList = o.hosts.split(',').filter(Boolean);
  if (!o.fixtures) {
    const shared = o.shared || path.join(__dirname, '..', '..', '..', 'shared');
    o.fixtures = path.join(shared, 'fixtures', 'bilibili');
  }
  return o;
}

// id -> {real, short}: a short id maps to its real id; a real id to itself with its short id.
function parseRooms(specs) {
  const m = new Map();
  for (const s of specs) {
    const g = /^(?:([0-9]+):)?([0-9]+)$/.exec(s);
    if (!g) throw new Error('--room: expected SHORT:REAL or REAL, got ' + s);
    const real = Number(g[2]);
    const short = g[1] ? Number(g[1]) : 0;
    m.set(real, { real, short });
    if (short) m.set(short, { real, short });
  }
  return m;
}

function say(line) {
  fs.writeSync(1, line + '\n'); // synchronous: never lost or reordered at exit
}
const word = (s) => String(s).replace(/\s+/g, '_').slice(0, 200);

// ---------------------------------------------------------------- Wbi (protocol §2.3)
const MIXIN = [46, 47, 18, 2, 53, 8, 23, 32, 15, 50, 10, 31, 58, 3, 45, 35, 27, 43, 5, 49, 33, 9,
  42, 19, 29, 28, 14, 39, 12, 38, 41, 13, 37, 48, 7, 16, 24, 55, 40, 61, 26, 17, 0, 1, 60, 51, 30,
  4, 22, 25, 54, 21, 56, 59, 6, 63, 57, 62, 11, 36, 20, 34, 44, 52];

function mixinKey(img, sub) {
  const raw = img + sub;
  return MIXIN.map((i) => raw[i]).join('').slice(0, 32);
}

// params: [[key, value]] (any order). Values lose !'()*, keys sort by code unit (all ASCII
// here, so byte order), both are encodeURIComponent'ed (space %20, upper-case hex).
function wbiQuery(params) {
  return params
    .map(([k, v]) => [String(k), String(v).replace(/[!'()*]/g, '')])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .map(([k, v]) => encodeURIComponent(k) + '=' + encodeURIComponent(v))
    .join('&');
}

function md5hex(s) { return crypto.createHash('md5').update(s, 'utf8').digest('hex'); }
function wbiSign(params, img, sub) { return md5hex(wbiQuery(params) + mixinKey(img, sub)); }

function wbiSelfTest() {
  const img = '7cd084941338484aae1ad9425b84077c';
  const sub = '4932caff0ff746eab6f01bf08b70ac45';
  const fails = [];
  const eq = (got, want, what) => { if (got !== want) fails.push(`${what}: got ${got}, want ${want}`); };
  eq(mixinKey(img, sub), 'ea1db124af3c7062474693fa704f4ff8', 'mixin_key');
  eq(wbiSign([['foo', '114'], ['bar', '514'], ['zab', 1919810], ['wts', 1702204169]], img, sub),
    '8f6f2b5b3d485fe1886cec6a0be8c5d4', 'w_rid of bar/foo/wts/zab');
  eq(wbiSign([['type', 0], ['id', 5553263], ['wts', 1776925721]], img, sub),
    '2662a4f8479c442aa069cef32d60394b', 'w_rid of getDanmuInfo id=5553263');
  eq(wbiQuery([['foo', 'one one four'], ['bar', '五一四'], ['baz', 1919810]]),
    'bar=%E4%BA%94%E4%B8%80%E5%9B%9B&baz=1919810&foo=one%20one%20four', 'query encoding');
  eq(wbiQuery([['a', "x!'()*y"]]), 'a=xy', 'filtered characters');
  return fails;
}

// ---------------------------------------------------------------- packets (protocol §3)
const OP = { HEARTBEAT: 2, HEARTBEAT_REPLY: 3, MESSAGE: 5, AUTH: 7, AUTH_REPLY: 8, ACK: 24 };
const HDR = 16;
const MAX_PACKET = 1 << 20;

function packet(op, ver, body, seq = 0) {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  const h = Buffer.alloc(HDR);
  h.writeUInt32BE(HDR + b.length, 0);
  h.writeUInt16BE(HDR, 4);
  h.writeUInt16BE(ver, 6);
  h.writeUInt32BE(op, 8);
  h.writeUInt32BE(seq, 12);
  return Buffer.concat([h, b]);
}

// Reassembles packets from a byte stream; push() returns [{op, ver, seq, body}] and throws
// on a broken header (the stream cannot be resynchronised).
class PacketReader {
  constructor() { this.buf = Buffer.alloc(0); }
  push(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : Buffer.from(chunk);
    const out = [];
    while (this.buf.length >= HDR) {
      const len = this.buf.readUInt32BE(0);
      const hlen = this.buf.readUInt16BE(4);
      if (hlen !== HDR) throw new Error('header_len ' + hlen);
      if (len < HDR || len > MAX_PACKET) throw new Error('packet_len ' + len);
      if (this.buf.length < len) break;
      out.push({ ver: this.buf.readUInt16BE(6), op: this.buf.readUInt32BE(8),
        seq: this.buf.readUInt32BE(12), body: this.buf.subarray(HDR, len) });
      this.buf = this.buf.subarray(len);
    }
    return out;
  }
}

// Every packet of a complete buffer, compressed op-5 batches unpacked (for the self-test).
function unpackAll(buf) {
  const r = new PacketReader();
  const out = [];
  for (const p of r.push(buf)) {
    if (p.op === OP.MESSAGE && p.ver === 2) out.push(...unpackAll(zlib.inflateSync(p.body)).map((x) => ({ ...x, outer: 2 })));
    else if (p.op === OP.MESSAGE && p.ver === 3) out.push(...unpackAll(zlib.brotliDecompressSync(p.body)).map((x) => ({ ...x, outer: 3 })));
    else out.push({ ...p, outer: p.ver });
  }
  if (r.buf.length) throw new Error(r.buf.length + ' trailing bytes');
  return out;
}

// ---------------------------------------------------------------- protobuf (SEND_GIFT_V2)
// Fields as [{f, w, v}]: v a BigInt for varints, a Buffer otherwise.
function pbDecode(buf) {
  const out = [];
  let i = 0;
  const varint = () => {
    let v = 0n;
    let s = 0n;
    for (;;) {
      if (i >= buf.length) throw new Error('truncated varint');
      const c = buf[i++];
      v |= BigInt(c & 0x7f) << s;
      s += 7n;
      if (c < 0x80) return v;
      if (s > 63n) throw new Error('varint too long');
    }
  };
  while (i < buf.length) {
    const key = varint();
    const f = Number(key >> 3n);
    const w = Number(key & 7n);
    let v;
    if (w === 0) v = varint();
    else if (w === 1 || w === 5) { const n = w === 1 ? 8 : 4; v = buf.subarray(i, i + n); i += n; }
    else if (w === 2) { const n = Number(varint()); v = buf.subarray(i, i + n); i += n; }
    else throw new Error('wire type ' + w);
    if (i > buf.length) throw new Error('truncated field ' + f);
    out.push({ f, w, v });
  }
  return out;
}

function pbVarint(n) {
  let v = BigInt(n);
  const b = [];
  do {
    let c = Number(v & 0x7fn);
    v >>= 7n;
    if (v) c |= 0x80;
    b.push(c);
  } while (v);
  return Buffer.from(b);
}

function pbEncode(fields) {
  return Buffer.concat(fields.map(({ f, w, v }) => {
    const key = pbVarint((BigInt(f) << 3n) | BigInt(w));
    if (w === 0) return Buffer.concat([key, pbVarint(v)]);
    if (w === 2) return Buffer.concat([key, pbVarint(v.length), v]);
    return Buffer.concat([key, v]);
  }));
}

// A SEND_GIFT_V2 pb with every gift_list (10) entry's num (3), total_coin (7) and tid (9)
// replaced.
function rewriteGiftV2(pb, num, tid) {
  return pbEncode(pbDecode(pb).map((fd) => {
    if (fd.f !== 10 || fd.w !== 2) return fd;
    const item = pbDecode(fd.v).map((x) => {
      if (x.f === 3 && x.w === 0) return { ...x, v: BigInt(num) };
      if (x.f === 7 && x.w === 0) return { ...x, v: BigInt(num) * 100n };
      if (x.f === 9 && x.w === 2) return { ...x, v: Buffer.from(tid) };
      return x;
    });
    return { ...fd, v: pbEncode(item) };
  }));
}

// ---------------------------------------------------------------- fixtures and scripts
function loadFixtures(dir) {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json')).sort();
  if (files.length < 10) throw new Error('too few fixtures in ' + dir);
  return files.map((name) => {
    const text = fs.readFileSync(path.join(dir, name), 'utf8');
    const cmd = JSON.parse(text).cmd;
    if (typeof cmd !== 'string' || !cmd) throw new Error(name + ': no cmd');
    return { name, text, cmd };
  });
}

// Deterministic PRNG (mulberry32).
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// Text-level rewrite, so that integers above 2^53 elsewhere in the fixture stay exact.
function rewriteRoom(text, room) {
  return text.replace(/("(?:roomid|room_id|real_roomid)"\s*:\s*)("?)77777777774("?)/g,
    (m, pre, q1, q2) => (q1 === q2 ? pre + q1 + room + q2 : m));
}

function allSafe(x) {
  if (typeof x === 'number') return !Number.isInteger(x) || Number.isSafeInteger(x);
  if (Array.isArray(x)) return x.every(allSafe);
  if (x && typeof x === 'object') return Object.values(x).every(allSafe);
  return true;
}

function parseTemplate(fixtures, name) {
  const f = fixtures.find((x) => x.name === name);
  if (!f) throw new Error('missing fixture ' + name);
  const o = JSON.parse(f.text);
  if (!allSafe(o)) throw new Error(name + ' has integers beyond 2^53: cannot be a template');
  return o;
}

// Go's encoding/json writes <, > and & as \u003c \u003e \u0026 (protocol §3.6).
const goJson = (o) => JSON.stringify(o).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');

function chatText(room, i) { return `room ${room} 弹幕 ${i} <b>&`; }

function makeChat(tpl, room, i) {
  const o = JSON.parse(JSON.stringify(tpl));
  const ms = 1767225600000 + (room % 100000) * 10 + i * 1000;
  const text = chatText(room, i);
  const uid = 10000000 + (room % 1000) * 100 + i;
  const uname = `观众${i}号_${room}`;
  const hash = md5hex(`${room}/${i}`);
  const meta = o.info[0];
  meta[4] = ms;
  meta[5] = -(1000000 + room % 100000 * 10 + i);
  meta[7] = hash.slice(0, 8);
  const extra = JSON.parse(meta[15].extra);
  extra.content = text;
  extra.id_str = hash + (room % 65536).toString(16).padStart(4, '0');
  meta[15].extra = JSON.stringify(extra);
  o.info[1] = text;
  o.info[2][0] = uid;
  o.info[2][1] = uname;
  o.info[9] = { ts: Math.floor(ms / 1000), ct: hash.slice(8, 16).toUpperCase() };
  return { body: goJson(o), text, uid, uname, id_str: extra.id_str };
}

// The commands a room is sent, in order: [{cmd, body, kind, ...}].
function buildScript(room, fixtures, nChats) {
  const rnd = prng(room);
  const items = [];
  for (const f of fixtures) {
    let body = rewriteRoom(f.text, room);
    const it = { cmd: f.cmd, body, kind: 'fixture', file: f.name };
    if (f.cmd === 'SUPER_CHAT_MESSAGE') {
      it.msg_id = `${214386819788254208n + BigInt(room)}:1000:1000`;
      const at = body.indexOf('{');
      body = body.slice(0, at + 1) + `"msg_id":"${it.msg_id}","p_is_ack":true,"p_msg_type":1,` +
        `"send_time":${1767225600000 + room % 100000},` + body.slice(at + 1);
      it.body = body;
      it.kind = 'fixture+ack';
    }
    items.push(it);
  }
  const chatTpl = parseTemplate(fixtures, 'DANMU_MSG.json');
  const chats = [];
  for (let i = 0; i < nChats; i++) {
    const c = makeChat(chatTpl, room, i);
    const it = { cmd: 'DANMU_MSG', body: c.body, kind: 'chat', text: c.text, uid: c.uid, uname: c.uname, id_str: c.id_str };
    chats.push(it);
    items.push(it);
  }
  const gift = parseTemplate(fixtures, 'SEND_GIFT.json');
  const n1 = 2 + (room % 7);
  gift.data.num = n1;
  gift.data.giftId = 30607;
  gift.data.giftName = '小心心';
  gift.data.total_coin = gift.data.price * n1;
  gift.data.tid = gift.data.rnd = `${room}00000000${n1}`;
  gift.data.timestamp = 1767225600 + (room % 1000);
  items.push({ cmd: 'SEND_GIFT', body: goJson(gift), kind: 'gift', num: n1 });
  const v2 = JSON.parse(fixtures.find((x) => x.name === 'SEND_GIFT_V2.json').text);
  const n2 = 3 + (room % 5);
  v2.data.pb = rewriteGiftV2(Buffer.from(v2.data.pb, 'base64'), n2, `${room}77${n2}`).toString('base64');
  items.push({ cmd: 'SEND_GIFT_V2', body: JSON.stringify(v2), kind: 'gift_v2', num: n2 });
  // Fisher-Yates, then the second chat sent again a little later (dedup by id_str).
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
  const orig = chats[1];
  const at = items.indexOf(orig);
  const dupAt = Math.min(items.length, at + 3 + Math.floor(rnd() * 5));
  items.splice(dupAt, 0, { ...orig, kind: 'dup' });
  return items;
}

// Cuts the script into the units sent: one Buffer per websocket message. protover 3 mixes
// plain packets, zlib and brotli batches; protover 2 uses no brotli.
const PLAN = [[3, 3], [0, 1], [2, 4], [0, 2], [3, 1], [2, 2], [3, 5], [0, 1], [2, 1], [0, 3], [3, 2]];
function scriptUnits(items, protover, seed) {
  const units = [];
  const vers = [];
  let k = 0;
  let p = seed % PLAN.length;
  while (k < items.length) {
    let [ver, n] = PLAN[p++ % PLAN.length];
    if (ver === 3 && protover === 2) ver = 2;
    if (protover !== 2 && protover !== 3) ver = 0;
    const group = items.slice(k, k + n).map((it) => packet(OP.MESSAGE, 0, it.body));
    k += group.length;
    const inner = Buffer.concat(group);
    if (ver === 0) units.push(inner); // n plain packets in one websocket message
    else units.push(packet(OP.MESSAGE, ver, ver === 2 ? zlib.deflateSync(inner) : zlib.brotliCompressSync(inner)));
    vers.push([ver, group.length]);
  }
  return { units, vers };
}

// ---------------------------------------------------------------- state
function makeState(o, fixtures) {
  return {
    o,
    fixtures,
    scripts: new Map(),
    units: new Map(),
    img: o['img-key'],
    sub: o['sub-key'],
    oldKeys: [],
    http412: o.http412,
    always352: o['always-352'],
    hbTimeout: o['hb-timeout'],
    authTimeout: o['auth-timeout'],
    replay: o.replay,
    buvids: new Map(), // buvid3 -> buvid4
    tokens: new Map(), // token -> {room, uid, buvid3, ua}
    roomTokens: new Map(), // room -> count of tokens issued
    authedRooms: new Map(), // room -> authenticated connections so far
    conns: new Map(),
    seq: 0,
    log: { requests: [], auths: [], heartbeats: [], acks: [], conns: [], proto_errors: [], events: [] },
    ports: {},
  };
}

function script(st, room) {
  if (!st.scripts.has(room)) st.scripts.set(room, buildScript(room, st.fixtures, st.o.chats));
  return st.scripts.get(room);
}

// The room's units for a protover, built once: brotli at quality 11 takes a while, and the
// loop must stay free to time API requests (the getDanmuInfo spacing checks).
function units(st, room, protover) {
  const k = `${room}/${protover}`;
  if (!st.units.has(k)) st.units.set(k, scriptUnits(script(st, room), protover, (st.o.seed + room) >>> 0).units);
  return st.units.get(k);
}

function protoError(st, room, what) {
  st.log.proto_errors.push({ t: Date.now(), room, what });
  say(`PROTO_ERROR ${room || '-'} ${word(what)}`);
}

// ---------------------------------------------------------------- HTTP API
function parseCookies(h) {
  const m = new Map();
  for (const part of String(h || '').split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) m.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return m;
}

function randHex(n) { return crypto.randomBytes(Math.ceil(n / 2)).toString('hex').slice(0, n); }

function newBuvid3() {
  const h = randHex(32).toUpperCase();
  const d = String(crypto.randomInt(10000, 99999));
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}${d}infoc`;
}

function wbiImg(st) {
  return { img_url: `https://i0.hdslb.com/bfs/wbi/${st.img}.png`, sub_url: `https://i0.hdslb.com/bfs/wbi/${st.sub}.png` };
}

function json(res, status, obj) {
  const b = Buffer.from(JSON.stringify(obj), 'utf8');
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': b.length });
  res.end(b);
}

function apiHandler(st, scheme) {
  return (req, res) => {
    let u;
    try {
      u = new URL(req.url, 'http://127.0.0.1');
    } catch (e) {
      return json(res, 400, { code: -400, message: 'bad url' });
    }
    req.resume();
    if (u.pathname.startsWith('/_mock/')) return control(st, u, res);
    const cookies = parseCookies(req.headers.cookie);
    const entry = {
      seq: ++st.seq, t: Date.now(), scheme, method: req.method, path: u.pathname,
      query: Object.fromEntries(u.searchParams), raw_query: u.search.slice(1),
      ua: req.headers['user-agent'] || null, referer: req.headers.referer || null,
      origin: req.headers.origin || null,
      // every header but the cookie's values (secrets): the cookie shows as its names
      headers: Object.fromEntries(Object.entries(req.headers).filter(([k]) => k !== 'cookie' && k !== 'authorization')),
      cookie_names: [...cookies.keys()],
      buvid3_ok: cookies.has('buvid3') && st.buvids.has(cookies.get('buvid3')),
      sessdata_ok: cookies.get('SESSDATA') === st.o.sessdata,
      status: 200, code: null, why: null,
    };
    st.log.requests.push(entry);
    const reply = (status, obj, why) => {
      entry.status = status;
      entry.code = obj && typeof obj.code === 'number' ? obj.code : null;
      entry.why = why || null;
      say(`API ${u.pathname} ${status} ${entry.code}${why ? ' ' + word(why) : ''}`);
      json(res, status, obj);
    };
    if (req.method !== 'GET') return reply(405, { code: -405, message: 'method not allowed' }, 'method');
    if (st.http412 > 0) {
      st.http412--;
      return reply(412, { code: -412, message: '请求被拦截', ttl: 1 }, 'http412_mode');
    }
    switch (u.pathname) {
      case '/x/frontend/finger/spi': {
        const b3 = newBuvid3();
        const b4 = `${randHex(8).toUpperCase()}-${randHex(4).toUpperCase()}-${randHex(4).toUpperCase()}-` +
          `${randHex(4).toUpperCase()}-${randHex(12).toUpperCase()}${crypto.randomInt(10000, 99999)}-` +
          `${crypto.randomInt(100000000, 999999999)}-${randHex(8)}`;
        st.buvids.set(b3, b4);
        entry.issued_buvid3 = b3;
        return reply(200, { code: 0, message: 'ok', data: { b_3: b3, b_4: b4 } });
      }
      case '/x/web-interface/nav': {
        if (entry.sessdata_ok) {
          return reply(200, { code: 0, message: '0', ttl: 1, data: { isLogin: true, mid: st.o.uid,
            uname: st.o.uname, wbi_img: wbiImg(st) } });
        }
        if (cookies.has('SESSDATA')) entry.why = 'wrong_sessdata';
        return reply(200, { code: -101, message: '账号未登录', ttl: 1, data: { isLogin: false, wbi_img: wbiImg(st) } },
          entry.why);
      }
      case '/room/v1/Room/room_init': {
        const id = Number(u.searchParams.get('id'));
        const r = st.o.rooms.get(id);
        if (!Number.isInteger(id) || !r) return reply(200, { code: 60004, msg: '房间不存在', message: '房间不存在', data: [] });
        return reply(200, { code: 0, msg: 'ok', message: 'ok', data: { room_id: r.real, short_id: r.short,
          uid: 1000 + r.real % 100000, need_p2p: 0, is_hidden: false, is_locked: false, is_portrait: false,
          live_status: 1, hidden_till: 0, lock_till: 0, encrypted: false, pwd_verified: false,
          live_time: 1767225600, room_shield: 0, is_sp: 0, special_type: 0 } });
      }
      case '/xlive/web-room/v1/index/getDanmuInfo':
        return danmuInfo(st, u, cookies, entry, reply);
      default:
        protoError(st, null, 'unknown_api_path:' + u.pathname);
        return reply(404, { code: -404, message: '啥都木有' }, 'unknown_path');
    }
  };
}

function danmuInfo(st, u, cookies, entry, reply) {
  const r352 = (why) => reply(200, { code: -352, message: '-352', ttl: 1 }, why);
  const params = [...u.searchParams].filter(([k]) => k !== 'w_rid');
  const wRid = u.searchParams.get('w_rid');
  const wts = u.searchParams.get('wts');
  // Whether the request would pass the checks below, also logged in always-352 mode.
  entry.sig_ok = !!wRid && wRid === wbiSign(params, st.img, st.sub);
  if (st.always352) return r352('always352_mode');
  if (!wRid || !wts) return r352('unsigned');
  if (wRid !== wbiSign(params, st.img, st.sub)) {
    const old = st.oldKeys.some(([i, s]) => wRid === wbiSign(params, i, s));
    return r352(old ? 'old_wbi_keys' : 'bad_w_rid');
  }
  if (!/^[0-9]+$/.test(wts) || Math.abs(Number(wts) - Date.now() / 1000) > st.o['wts-window']) return r352('stale_wts');
  if (!entry.buvid3_ok) return r352(cookies.has('buvid3') ? 'unknown_buvid3' : 'no_buvid3');
  const id = Number(u.searchParams.get('id'));
  if (!Number.isSafeInteger(id) || id <= 0) return reply(200, { code: 1002002, message: '房间号错误' }, 'bad_id');
  const known = st.o.rooms.get(id);
  if (known && known.real !== id) {
    protoError(st, id, 'getDanmuInfo_with_short_id');
    return reply(200, { code: 1002002, message: '房间号错误' }, 'short_id');
  }
  if (u.searchParams.get('type') !== '0') protoError(st, id, 'getDanmuInfo_type_' + u.searchParams.get('type'));
  const token = crypto.randomBytes(96).toString('base64');
  const uid = entry.sessdata_ok ? st.o.uid : 0;
  st.tokens.set(token, { room: id, uid, buvid3: cookies.get('buvid3'), ua: entry.ua });
  st.roomTokens.set(id, (st.roomTokens.get(id) || 0) + 1);
  entry.issued_token = token;
  entry.token_uid = uid;
  const hostList = st.o.hostList.map((h) => ({ host: h, port: st.ports.tcp, wss_port: st.ports.wss || 0, ws_port: st.ports.ws }));
  return reply(200, { code: 0, message: '0', ttl: 1, data: { group: 'live', business_id: 0,
    refresh_row_factor: 0.125, refresh_rate: 100, max_delay: 5000, token, host_list: hostList } });
}

function control(st, u, res) {
  const q = u.searchParams;
  switch (u.pathname) {
    case '/_mock/log':
      return json(res, 200, { ...st.log, issued: { buvid3: [...st.buvids.keys()],
        tokens: [...st.tokens].map(([token, t]) => ({ token, ...t })) },
      keys: { img: st.img, sub: st.sub, old: st.oldKeys }, ports: st.ports, uid: st.o.uid,
      now: Date.now() });
    case '/_mock/script': {
      const room = Number(q.get('room'));
      if (!Number.isSafeInteger(room) || room <= 0) return json(res, 400, { error: 'room=REAL needed' });
      return json(res, 200, { room, items: script(st, room) });
    }
    case '/_mock/rotate': {
      st.oldKeys.push([st.img, st.sub]);
      st.img = q.get('img') || randHex(32);
      st.sub = q.get('sub') || randHex(32);
      st.log.events.push({ t: Date.now(), what: 'rotate', img: st.img, sub: st.sub });
      say(`ROTATE ${st.img} ${st.sub}`);
      return json(res, 200, { img: st.img, sub: st.sub });
    }
    case '/_mock/kick': {
      const room = Number(q.get('room'));
      let n = 0;
      for (const c of st.conns.values()) {
        if (c.room === room && c.authed) { c.drop('kick'); n++; }
      }
      st.log.events.push({ t: Date.now(), what: 'kick', room, n });
      say(`KICK ${room} ${n}`);
      return json(res, 200, { room, kicked: n });
    }
    case '/_mock/revoke': {
      const room = Number(q.get('room'));
      let n = 0;
      for (const [token, t] of st.tokens) {
        if (t.room === room) {
          st.tokens.delete(token);
          n++;
        }
      }
      st.log.events.push({ t: Date.now(), what: 'revoke', room, n });
      say(`REVOKE ${room} ${n}`);
      return json(res, 200, { room, revoked: n });
    }
    case '/_mock/mode': {
      if (q.has('always352')) st.always352 = q.get('always352') === '1';
      if (q.has('http412')) st.http412 = Number(q.get('http412')) || 0;
      if (q.has('hb_timeout')) st.hbTimeout = Number(q.get('hb_timeout')) || 0;
      if (q.has('auth_timeout')) st.authTimeout = Number(q.get('auth_timeout')) || 5;
      if (q.has('replay') && ['every', 'first'].includes(q.get('replay'))) st.replay = q.get('replay');
      const mode = { always352: st.always352, http412: st.http412, hb_timeout: st.hbTimeout,
        auth_timeout: st.authTimeout, replay: st.replay };
      st.log.events.push({ t: Date.now(), what: 'mode', ...mode });
      return json(res, 200, mode);
    }
    default:
      return json(res, 404, { error: 'unknown control path' });
  }
}

// ---------------------------------------------------------------- chat connections
let connSeq = 0;

// transport: 'ws' | 'wss' | 'tcp'. io: {send(buf), close(), destroy()}. For tcp, send() is
// fed through a cutter that writes the bytes in random pieces.
class Conn {
  constructor(st, transport, io, info) {
    this.st = st;
    this.id = ++connSeq;
    this.transport = transport;
    this.io = io;
    this.room = null;
    this.authed = false;
    this.closed = false;
    this.hbs = 0;
    this.reader = new PacketReader();
    this.rec = { id: this.id, transport, opened: Date.now(), closed: null, why: null, room: null,
      path: info.path || null, ua: info.ua || null, origin: info.origin || null, sent: 0 };
    st.log.conns.push(this.rec);
    st.conns.set(this.id, this);
    say(`CONNECT ${this.id} ${transport}`);
    this.authTimer = setTimeout(() => this.drop('auth_timeout'), st.authTimeout * 1000);
    this.hbTimer = null;
  }

  onData(chunk) {
    if (this.closed) return;
    let pkts;
    try {
      pkts = this.reader.push(chunk);
    } catch (e) {
      protoError(this.st, this.room, 'bad_client_packet:' + e.message);
      return this.drop('bad_packet');
    }
    for (const p of pkts) {
      if (this.closed) return;
      this.onPacket(p);
    }
  }

  onPacket(p) {
    const st = this.st;
    if (p.ver !== 0 && p.ver !== 1) protoError(st, this.room, `client_ver_${p.ver}_op_${p.op}`);
    if (!this.authed && this.room === null && p.op !== OP.AUTH) {
      protoError(st, null, 'op_' + p.op + '_before_auth');
      return this.drop('no_auth');
    }
    switch (p.op) {
      case OP.AUTH: return this.onAuth(p.body);
      case OP.HEARTBEAT: return this.onHeartbeat(p.body);
      case OP.ACK: {
        let body = null;
        try { body = JSON.parse(p.body.toString('utf8')); } catch (e) { protoError(st, this.room, 'ack_not_json'); }
        const known = body && script(st, this.room).some((it) => it.msg_id && it.msg_id === body.msg_id);
        st.log.acks.push({ t: Date.now(), room: this.room, conn: this.id, body, known: !!known, ver: p.ver });
        if (!known) protoError(st, this.room, 'ack_for_unknown_msg_id');
        say(`ACK ${this.room} ${body && body.msg_id}`);
        return;
      }
      default:
        return protoError(st, this.room, 'client_op_' + p.op);
    }
  }

  onAuth(raw) {
    const st = this.st;
    if (this.room !== null) return protoError(st, this.room, 'second_auth');
    clearTimeout(this.authTimer);
    let a = null;
    try { a = JSON.parse(raw.toString('utf8')); } catch (e) { /* below */ }
    const rec = { t: Date.now(), conn: this.id, transport: this.transport, ua: this.rec.ua, body: a,
      ok: false, code: -101, why: null, key_ok: false, token_uid: null, buvid_ok: null };
    st.log.auths.push(rec);
    const fail = (why) => {
      rec.why = why;
      say(`AUTH ${this.room || '-'} fail ${word(why)} ${this.transport}`);
      this.io.send(packet(OP.AUTH_REPLY, 1, JSON.stringify({ code: -101 }), 1));
      this.drop('auth_failed:' + why, true);
    };
    if (!a || typeof a !== 'object' || Array.isArray(a)) return fail('auth_not_json_object');
    this.room = Number.isSafeInteger(a.roomid) && a.roomid > 0 ? a.roomid : -1;
    this.rec.room = this.room;
    rec.room = this.room;
    const bad = [];
    if (!Number.isSafeInteger(a.roomid)) bad.push('roomid');
    if (!Number.isSafeInteger(a.uid) || a.uid < 0) bad.push('uid');
    if (a.protover !== 2 && a.protover !== 3) bad.push('protover');
    if (a.platform !== 'web') bad.push('platform');
    if (a.type !== 2) bad.push('type');
    if (typeof a.buvid !== 'string') bad.push('buvid');
    if ('key' in a && (typeof a.key !== 'string' || a.key === '')) bad.push('key');
    if (bad.length) {
      protoError(st, this.room, 'auth_fields:' + bad.join(','));
      return fail('bad_fields:' + bad.join(','));
    }
    const known = st.o.rooms.get(a.roomid);
    if (known && known.real !== a.roomid) {
      protoError(st, a.roomid, 'auth_with_short_id');
      return fail('short_id');
    }
    if (a.key !== undefined) {
      const t = st.tokens.get(a.key);
      if (!t || t.room !== a.roomid) return fail(t ? 'token_of_another_room' : 'unknown_token');
      rec.token_uid = t.uid;
      if (t.uid !== a.uid) return fail(`uid_${a.uid}_is_not_the_token_uid`);
      rec.key_ok = true;
      rec.buvid_ok = a.buvid === t.buvid3;
      if (this.transport !== 'tcp' && this.rec.ua !== t.ua) protoError(st, a.roomid, 'ws_user_agent_differs_from_getDanmuInfo');
    } else if (!st.always352 && st.roomTokens.has(a.roomid)) {
      return fail('missing_key');
    } else {
      rec.buvid_ok = st.buvids.has(a.buvid);
    }
    rec.ok = true;
    rec.code = 0;
    rec.why = a.key === undefined ? 'no_key' : 'token';
    this.authed = true;
    this.protover = a.protover;
    const n = (st.authedRooms.get(this.room) || 0) + 1;
    st.authedRooms.set(this.room, n);
    say(`AUTH ${this.room} ok ${rec.why} ${this.transport}`);
    this.io.send(packet(OP.AUTH_REPLY, 1, JSON.stringify({ code: 0 }), 1));
    this.armHb();
    if (st.replay === 'every' || n === 1) this.replay();
  }

  armHb() {
    clearTimeout(this.hbTimer);
    this.hbTimer = null;
    if (this.st.hbTimeout > 0) this.hbTimer = setTimeout(() => this.drop('hb_timeout'), this.st.hbTimeout * 1000);
  }

  onHeartbeat(body) {
    const st = this.st;
    if (!this.authed) return protoError(st, this.room, 'heartbeat_before_auth_ok');
    const pop = 1000 + (this.room % 997) + 13 * Math.floor(this.hbs / st.o['pop-every']);
    this.hbs++;
    st.log.heartbeats.push({ t: Date.now(), room: this.room, conn: this.id, body_len: body.length, popularity: pop });
    say(`HB ${this.room} ${pop}`);
    this.armHb();
    const b = Buffer.alloc(4);
    b.writeUInt32BE(pop, 0);
    // The real server's quirk (§3.5): the client's heartbeat body follows, uncounted.
    this.io.send(Buffer.concat([packet(OP.HEARTBEAT_REPLY, 1, b, 0), body]));
  }

  replay() {
    const items = script(this.st, this.room);
    const us = units(this.st, this.room, this.protover);
    let i = 0;
    const next = () => {
      if (this.closed) return;
      // A few units per turn, so that heartbeats and ACKs interleave with the replay.
      for (let k = 0; k < 4 && i < us.length; k++) this.io.send(us[i++]);
      if (i < us.length) return setImmediate(next);
      this.rec.sent = items.length;
      say(`SENT ${this.room} ${items.length}`);
    };
    next();
  }

  drop(why, graceful) {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.authTimer);
    clearTimeout(this.hbTimer);
    this.rec.why = why;
    if (graceful) this.io.close(); else this.io.destroy();
    this.onClosed(why);
  }

  onClosed(why) {
    this.closed = true;
    clearTimeout(this.authTimer);
    clearTimeout(this.hbTimer);
    if (this.rec.closed !== null) return;
    this.rec.closed = Date.now();
    if (!this.rec.why) this.rec.why = why;
    this.st.conns.delete(this.id);
    say(`CLOSE ${this.room || '-'} ${this.id} ${word(this.rec.why)}`);
  }
}

// Writes bytes to a TCP socket in pieces cut at random points, in order, one piece per loop
// turn (plus a 1 ms pause now and then, so that pieces leave as separate segments).
function tcpCutter(sock, seed, stats) {
  const rnd = prng(seed);
  const sizes = [1, 2, 3, 5, 7, 13, 15, 16, 17, 31, 64, 100, 250, 999];
  let q = [];
  let busy = false;
  let n = 0;
  const pump = () => {
    if (!q.length || sock.destroyed) { busy = false; return; }
    let buf = q.length > 1 ? Buffer.concat(q) : q[0];
    const cut = Math.min(buf.length, sizes[Math.floor(rnd() * sizes.length)]);
    sock.write(buf.subarray(0, cut));
    stats.writes++;
    buf = buf.subarray(cut);
    q = buf.length ? [buf] : [];
    if (++n % 16 === 0) setTimeout(pump, 1); else setImmediate(pump);
  };
  return {
    send(buf) { q.push(buf); if (!busy) { busy = true; setImmediate(pump); } },
    // After a pending write finishes (auth failure: the -101 reply first).
    close() { const wait = () => (q.length || busy ? setTimeout(wait, 2) : sock.end()); wait(); },
    destroy() { sock.destroy(); },
  };
}

function attachWs(st, wss, transport) {
  wss.on('connection', (ws, req) => {
    const c = new Conn(st, transport, {
      send(buf) { if (ws.readyState === ws.OPEN) ws.send(buf, { binary: true }); },
      close() { ws.close(1000); },
      destroy() { ws.terminate(); },
    }, { path: req.url, ua: req.headers['user-agent'], origin: req.headers.origin });
    ws.on('message', (data, isBinary) => {
      if (!isBinary) protoError(st, c.room, 'text_frame');
      c.onData(Buffer.isBuffer(data) ? data : Buffer.concat(data));
    });
    ws.on('close', (code) => c.onClosed(code === 1000 || code === 1001 ? 'client_close_' + code : 'ws_' + code));
    ws.on('error', (e) => protoError(st, c.room, 'ws_error:' + e.message));
  });
}

function upgrader(st, wss) {
  return (req, socket, head) => {
    socket.on('error', () => {});
    if (new URL(req.url, 'http://x').pathname !== '/sub') {
      protoError(st, null, 'ws_path:' + req.url);
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  };
}

function listen(server, port) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server.address().port));
  });
}

async function serve(o) {
  let WebSocketServer;
  try {
    ({ WebSocketServer } = require('ws'));
  } catch (e) {
    process.stderr.write('mock_bilibili.js: cannot load the "ws" package: run npm ci --prefix tests/integration\n');
    process.exit(3);
  }
  const st = makeState(o, loadFixtures(o.fixtures));
  for (const r of new Set([...o.rooms.values()].map((x) => x.real))) {
    for (const pv of [2, 3]) units(st, r, pv);
  }
  const tls = o.key ? { key: fs.readFileSync(o.key), cert: fs.readFileSync(o.cert) } : null;

  st.ports.http = await listen(http.createServer(apiHandler(st, 'http')), o['http-port']);
  st.ports.https = tls ? await listen(https.createServer(tls, apiHandler(st, 'https')), o['https-port']) : 0;

  const mkWs = (transport) => {
    const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 1 << 20 });
    attachWs(st, wss, transport);
    return wss;
  };
  const wsServer = http.createServer((req, res) => { res.writeHead(426); res.end('websocket only\n'); });
  wsServer.on('upgrade', upgrader(st, mkWs('ws')));
  st.ports.ws = await listen(wsServer, o['ws-port']);
  if (tls) {
    const wssServer = https.createServer(tls, (req, res) => { res.writeHead(426); res.end('websocket only\n'); });
    wssServer.on('upgrade', upgrader(st, mkWs('wss')));
    wssServer.on('tlsClientError', (e) => protoError(st, null, 'tls:' + (e.code || e.message)));
    st.ports.wss = await listen(wssServer, o['wss-port']);
  } else {
    st.ports.wss = 0;
  }
  const tcpServer = net.createServer((sock) => {
    sock.setNoDelay(true);
    sock.on('error', () => {});
    const stats = { writes: 0 };
    const io = tcpCutter(sock, (o.seed * 7919 + connSeq + 1) >>> 0, stats);
    const c = new Conn(st, 'tcp', io, {});
    c.rec.tcp = stats; // pieces written: the cut points are real
    sock.on('data', (d) => c.onData(d));
    sock.on('close', () => c.onClosed('client_close'));
  });
  st.ports.tcp = await listen(tcpServer, o['tcp-port']);
  say(JSON.stringify({ ready: true, ...st.ports, pid: process.pid }));
  const bye = () => { say('EXIT'); process.exit(0); };
  process.on('SIGTERM', bye);
  process.on('SIGINT', bye);
}

// ---------------------------------------------------------------- self-test
function selfTest(o) {
  const fails = wbiSelfTest();
  const check = (cond, what) => { if (!cond) fails.push(what); };
  // Packets: a stream of mixed packets, fed whole and one byte at a time.
  const pk = [packet(7, 0, '{"a":1}', 1), packet(2, 1, '', 1), packet(5, 0, 'x'.repeat(70000), 0)];
  const all = Buffer.concat(pk);
  check(all.readUInt32BE(0) === 23 && all.readUInt16BE(4) === 16 && all.readUInt32BE(8) === 7, 'header layout');
  const whole = new PacketReader().push(all);
  const r = new PacketReader();
  const bytewise = [];
  for (let i = 0; i < all.length; i++) bytewise.push(...r.push(all.subarray(i, i + 1)));
  check(whole.length === 3 && bytewise.length === 3 && r.buf.length === 0, 'reader: whole and byte-wise');
  check(bytewise.map((p) => p.op).join() === '7,2,5' && bytewise[2].body.length === 70000, 'reader: content');
  let threw = false;
  try { new PacketReader().push(Buffer.from('0000001000110000000000050000000000', 'hex')); } catch (e) { threw = true; }
  check(threw, 'reader: header_len 17 refused');
  // Protobuf: decode/encode round trip of the fixture, then the rewrite.
  const fixtures = loadFixtures(o.fixtures);
  const v2 = JSON.parse(fixtures.find((f) => f.name === 'SEND_GIFT_V2.json').text);
  const pb = Buffer.from(v2.data.pb, 'base64');
  check(pbEncode(pbDecode(pb)).equals(pb), 'protobuf round trip of SEND_GIFT_V2');
  const gl = (b) => pbDecode(b).filter((x) => x.f === 10).map((x) => pbDecode(x.v));
  const nums = (b) => gl(b).map((it) => it.filter((x) => x.f === 3).map((x) => Number(x.v)));
  check(JSON.stringify(nums(pb)) === '[[1]]', 'SEND_GIFT_V2 fixture: one gift, num 1');
  const rw = rewriteGiftV2(pb, 6, 'T-1');
  check(JSON.stringify(nums(rw)) === '[[6]]' && gl(rw)[0].find((x) => x.f === 9).v.toString() === 'T-1', 'gift rewrite');
  // Room rewrite keeps the quoting and nothing else.
  check(rewriteRoom('{"roomid": 77777777774, "room_id":"77777777774", "x": 77777777774}', 5) ===
    '{"roomid": 5, "room_id":"5", "x": 77777777774}', 'room rewrite');
  // Scripts: every fixture once (room rewritten), chats naming the room, one dup, one ack;
  // the units decode back to the script for both protovers.
  for (const room of [14073662, 21452505]) {
    const items = buildScript(room, fixtures, o.chats);
    const files = items.filter((x) => x.file).map((x) => x.file).sort();
    check(JSON.stringify(files) === JSON.stringify(fixtures.map((f) => f.name).sort()), `room ${room}: every fixture once`);
    check(items.filter((x) => x.kind === 'dup').length === 1, `room ${room}: one dup`);
    check(items.filter((x) => x.msg_id).length === 1, `room ${room}: one ack'd item`);
    check(!items.some((x) => /"(?:roomid|room_id|real_roomid)"\s*:\s*"?77777777774/.test(x.body)), `room ${room}: no fixture room id left`);
    check(items.filter((x) => x.kind === 'chat').every((x) => JSON.parse(x.body).info[1].includes(`room ${room} `)), `room ${room}: chats name the room`);
    for (const pv of [2, 3]) {
      const { units, vers } = scriptUnits(items, pv, room);
      const got = unpackAll(Buffer.concat(units));
      check(got.length === items.length && got.every((p, i) => p.op === 5 && p.ver === 0 && p.body.toString('utf8') === items[i].body),
        `room ${room} protover ${pv}: units decode to the script`);
      const seen = new Set(vers.map(([v]) => v));
      check(pv === 3 ? seen.has(0) && seen.has(2) && seen.has(3) : seen.has(0) && seen.has(2) && !seen.has(3),
        `room ${room} protover ${pv}: vers ${[...seen]}`);
      check(vers.some(([v, n]) => v !== 0 && n > 1), `room ${room} protover ${pv}: a batch of several packets`);
    }
  }
  for (const f of fails) process.stderr.write('self-test FAILED: ' + f + '\n');
  say(fails.length ? `SELFTEST FAIL ${fails.length}` : 'SELFTEST OK');
  return fails.length ? 1 : 0;
}

function main() {
  let o;
  try {
    o = parseArgs(process.argv.slice(2), process.env);
  } catch (e) {
    process.stderr.write('mock_bilibili.js: ' + e.message + '\n');
    process.exit(2);
  }
  const wf = wbiSelfTest(); // always: a mock with a wrong signer would mislead every test
  if (wf.length) {
    process.stderr.write('mock_bilibili.js: Wbi self-test failed: ' + wf.join('; ') + '\n');
    process.exit(1);
  }
  if (o['self-test']) process.exit(selfTest(o));
  serve(o).catch((e) => {
    process.stderr.write('mock_bilibili.js: ' + (e.stack || e.message) + '\n');
    process.exit(1);
  });
}

if (require.main === module) main();

module.exports = { wbiQuery, wbiSign, mixinKey, packet, PacketReader, pbDecode, pbEncode, buildScript, scriptUnits, loadFixtures };
