#!/usr/bin/env node
// Flood server for danmakud's Bilibili benchmark: a Bilibili live-chat server that outruns
// its client (bilibili-protocol.md §3, §4), plus the HTTP API calls of the prepare step.
//
// One HTTP port serves the API (finger/spi, nav, room_init, getDanmuInfo; no signature check)
// and the chat websocket at /sub; a second port speaks the same packets over raw TCP.
// getDanmuInfo names both ports in its host_list.
//
// Session: the client's op 7 (auth, JSON, ver 0 or 1: danmakud and bilibili-live-ws) gets an
// op 8 {"code":0} with the client's ver (the 2026 server answers ver 0 clients with ver 0,
// older ones ver 1 clients with ver 1; bilibili-live-ws JSON-parses any ver 0 body, so a
// ver 0 heartbeat reply would break it); op 2 (heartbeat) gets op 3 with popularity 1, same
// ver rule, and on ws the client's heartbeat body echoed after the packet, uncounted, as the
// server does (§3.5). op 24 (ACK) and anything else is ignored; on ws, bytes after the last
// whole packet of a message are ignored (biliup's heartbeat has one).
//
// Flood: after the auth reply, N DANMU_MSG messages in brotli batches (op 5, ver 3, K inner
// ver 0 packets per batch, brotliCompressSync quality 11 lgwin 22 as the server does, one
// batch per websocket message as in 2026), as fast as the socket drains: a batch is written
// only while the socket's buffered bytes are under --high-water, else it waits for 'drain'
// and counts a stall (stalls > 0: the client, not this server, was the bottleneck).
// Messages come from the real fixture fixtures/bilibili/DANMU_MSG.json, read at start: each
// gets its own text (varied length, CJK, emoji, quotes), sender, send time and a unique
// info[0][15].extra id_str, so that nothing dedups; Go-style escapes of < > & as the server
// writes them. Quality 11 costs about 1 ms of CPU per message, so every batch is compressed
// before listening (worker threads, --jobs) and each connection gets the same batches; with
// --cache FILE they are kept for the next run with the same parameters.
//
// stdout, one line each: READY <batches> <ms to build>; PORT <http/ws port> <tcp port>;
// API <path> <ms>; AUTH <conn> <room> <protover> <ver> <ms>; HB <conn> <ms> (with
// --log-heartbeats); DONE <conn> <room> <sent> <stalls> <ms>; CLOSE <conn> <room>;
// EXIT <auths> <sent>.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const net = require('net');
const http = require('http');
const zlib = require('zlib');
const crypto = require('crypto');
const { Worker, isMainThread, parentPort, workerData } = require('worker_threads');

const HDR = 16;
const OP_HEARTBEAT = 2;
const OP_HEARTBEAT_REPLY = 3;
const OP_MESSAGE = 5;
const OP_AUTH = 7;
const OP_AUTH_REPLY = 8;
const MAX_CLIENT_PACKET = 64 * 1024;

function packet(op, ver, seq, body) {
  const h = Buffer.alloc(HDR);
  h.writeUInt32BE(HDR + body.length, 0);
  h.writeUInt16BE(HDR, 4);
  h.writeUInt16BE(ver, 6);
  h.writeUInt32BE(op, 8);
  h.writeUInt32BE(seq, 12);
  return Buffer.concat([h, body]);
}

// ---------------------------------------------------------------- messages
const WORDS = ['主播好', '哈哈哈哈', '来了来了', '666', '这波操作可以', '前排', 'awsl', '草',
  '晚上好', '打卡', '？？？', '好耶', '下次一定', '妙啊', 'gg', '冲冲冲', '关注了', '8888',
  '"引号" 和 \\ 反斜杠', '<b>不是标签</b> & 符号', '🎉🎉', '[dog]', 'hello 大家好', '笑死'];

// Deterministic from i alone: workers build disjoint ranges of one sequence.
function text(i) {
  let s = WORDS[i % WORDS.length];
  const extra = (i * 7919) % 5;
  for (let k = 1; k <= extra; k++) s += ' ' + WORDS[(i * 31 + k * 17) % WORDS.length];
  return s + ' #' + i;
}

// Go's encoding/json writes < > & as \u003c \u003e \u0026 (protocol §3.6).
const goJson = (v) => JSON.stringify(v).replace(/[<>&]/g,
  (c) => '\\u00' + c.charCodeAt(0).toString(16).padStart(2, '0'));

function messageBody(tpl, i, base) {
  const m = JSON.parse(tpl.json);
  const info = m.info;
  const ms = base.t0 + i; // one ms apart: plausible, distinct send times
  const t = text(i);
  const uid = 10000 + (i * 2654435761) % 1000000;
  const uname = '用户' + (uid % 9973).toString(36);
  info[1] = t;
  info[0][4] = ms;
  info[0][5] = -((i * 2246822519) % 2147483647);
  info[0][7] = crypto.createHash('md5').update(String(uid)).digest('hex').slice(0, 8);
  const ex = JSON.parse(info[0][15].extra);
  ex.content = t;
  ex.id_str = base.prefix + i.toString(16).padStart(34 - base.prefix.length, '0');
  info[0][15].extra = JSON.stringify(ex);
  info[2][0] = uid;
  info[2][1] = uname;
  info[9] = { ts: Math.floor(ms / 1000), ct: (i >>> 0).toString(16).toUpperCase().padStart(8, '0') };
  return Buffer.from(goJson(m), 'utf8');
}

function buildBatches(tpl, first, count, perBatch, messages, base) {
  const out = [];
  const params = { [zlib.constants.BROTLI_PARAM_QUALITY]: 11,
    [zlib.constants.BROTLI_PARAM_LGWIN]: 22 };
  for (let b = first; b < first + count; b++) {
    const parts = [];
    for (let i = b * perBatch; i < Math.min(messages, (b + 1) * perBatch); i++) {
      parts.push(packet(OP_MESSAGE, 0, 0, messageBody(tpl, i, base)));
    }
    const raw = Buffer.concat(parts);
    // The size hint changes no output byte (checked), only saves time.
    params[zlib.constants.BROTLI_PARAM_SIZE_HINT] = raw.length;
    out.push(packet(OP_MESSAGE, 3, 0, zlib.brotliCompressSync(raw, { params })));
  }
  return out;
}

if (!isMainThread) {
  const w = workerData;
  const bufs = buildBatches(w.tpl, w.first, w.count, w.perBatch, w.messages, w.base);
  const all = Buffer.concat(bufs);
  parentPort.postMessage({ lens: bufs.map((b) => b.length), all }, [all.buffer]);
  return;
}

// ---------------------------------------------------------------- options
function parseArgs(argv) {
  const o = { port: 0, tcpPort: 0, messages: 100000, perBatch: 8, highWater: 1 << 20,
    shared: path.join(__dirname, '..', '..', 'shared'), jobs: os.cpus().length, cache: null,
    logHb: false, seed: 'danmakud-bench' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error('missing value for ' + a);
      return argv[++i];
    };
    switch (a) {
      case '--port': o.port = parseInt(next(), 10); break;
      case '--tcp-port': o.tcpPort = parseInt(next(), 10); break;
      case '--messages': o.messages = parseInt(next(), 10); break;
      case '--per-batch': o.perBatch = Math.max(1, parseInt(next(), 10)); break;
      case '--high-water': o.highWater = parseInt(next(), 10); break;
      case '--shared': o.shared = next(); break;
      case '--jobs': o.jobs = Math.max(1, parseInt(next(), 10)); break;
      case '--cache': o.cache = next(); break;
      case '--seed': o.seed = next(); break;
      case '--log-heartbeats': o.logHb = true; break;
      default: throw new Error('unknown option ' + a);
    }
  }
  if (!(o.messages >= 0)) throw new Error('--messages must be >= 0');
  return o;
}

const out = [];
function say(line) {
  out.push(line);
  if (out.length >= 256) flushSay();
}
function flushSay() {
  if (out.length) fs.writeSync(1, out.join('\n') + '\n');
  out.length = 0;
}

// All batches, compressed once: [Buffer]. From the cache when it matches.
async function prepare(o) {
  const fixture = path.join(o.shared, 'fixtures', 'bilibili', 'DANMU_MSG.json');
  const tplJson = JSON.stringify(JSON.parse(fs.readFileSync(fixture, 'utf8')));
  const tplHash = crypto.createHash('sha256').update(tplJson).digest('hex').slice(0, 16);
  // id_str prefix and send times from the seed: the same batches for the same parameters.
  const seedHash = crypto.createHash('sha256').update(o.seed).digest();
  const base = { prefix: seedHash.toString('hex').slice(0, 10),
    t0: 1767225600000 + seedHash.readUInt32BE(8) % 86400000 };
  const key = JSON.stringify({ v: 1, tplHash, messages: o.messages, perBatch: o.perBatch,
    base });
  if (o.cache && fs.existsSync(o.cache)) {
    const buf = fs.readFileSync(o.cache);
    const nl = buf.indexOf(10);
    if (nl > 0 && buf.subarray(0, nl).toString() === key) {
      const res = [];
      for (let off = nl + 1; off + 4 <= buf.length;) {
        const n = buf.readUInt32BE(off);
        res.push(buf.subarray(off + 4, off + 4 + n));
        off += 4 + n;
      }
      return res;
    }
  }
  const nBatches = Math.ceil(o.messages / o.perBatch);
  const jobs = Math.max(1, Math.min(o.jobs, nBatches));
  const per = Math.ceil(nBatches / jobs);
  const parts = await Promise.all(Array.from({ length: jobs }, (_, j) => new Promise(
    (resolve, reject) => {
      const first = j * per;
      const count = Math.max(0, Math.min(per, nBatches - first));
      if (!count) { resolve([]); return; }
      const w = new Worker(__filename, { workerData: { tpl: { json: tplJson }, first, count,
        perBatch: o.perBatch, messages: o.messages, base } });
      w.once('message', ({ lens, all }) => {
        const b = Buffer.from(all.buffer, all.byteOffset, all.byteLength);
        const res = [];
        let off = 0;
        for (const n of lens) { res.push(b.subarray(off, off + n)); off += n; }
        resolve(res);
      });
      w.once('error', reject);
    })));
  const batches = parts.flat();
  if (o.cache) {
    const chunks = [Buffer.from(key + '\n')];
    for (const b of batches) {
      const l = Buffer.alloc(4);
      l.writeUInt32BE(b.length, 0);
      chunks.push(l, b);
    }
    fs.writeFileSync(o.cache + '.tmp', Buffer.concat(chunks));
    fs.renameSync(o.cache + '.tmp', o.cache);
  }
  return batches;
}

// ---------------------------------------------------------------- one connection
let connSeq = 0;
let totalAuths = 0;
let totalSent = 0;

// transport: {send(buf), buffered(), onDrain(fn), close(), ws (bool)}
function session(o, batches, transport) {
  const conn = ++connSeq;
  const st = { room: null, authed: false, sent: 0, next: 0, stalls: 0, closed: false };

  const finish = () => say(`DONE ${conn} ${st.room} ${st.sent} ${st.stalls} ${Date.now()}`);

  const pump = () => {
    while (!st.closed && st.next < batches.length) {
      if (transport.buffered() >= o.highWater) {
        st.stalls++;
        transport.onDrain(pump);
        return;
      }
      transport.send(batches[st.next++]);
      const sent = Math.min(o.messages, st.next * o.perBatch);
      totalSent += sent - st.sent;
      st.sent = sent;
    }
    if (!st.closed) finish();
  };

  const onPacket = (op, ver, body) => {
    if (op === OP_AUTH && !st.authed) {
      let a = {};
      try { a = JSON.parse(body.toString('utf8')); } catch (e) { /* answer anyway */ }
      st.authed = true;
      st.room = a.roomid;
      totalAuths++;
      say(`AUTH ${conn} ${st.room} ${a.protover} ${ver} ${Date.now()}`);
      transport.send(packet(OP_AUTH_REPLY, ver, 1, Buffer.from('{"code":0}')));
      if (batches.length) setImmediate(pump);
      else finish();
    } else if (op === OP_HEARTBEAT) {
      if (o.logHb) say(`HB ${conn} ${Date.now()}`);
      const pop = Buffer.alloc(4);
      pop.writeUInt32BE(1, 0);
      const reply = packet(OP_HEARTBEAT_REPLY, ver, 0, pop);
      transport.send(transport.ws && body.length ? Buffer.concat([reply, body]) : reply);
    }
  };

  return {
    // ws: one message, whole packets, trailing junk ignored.
    message(buf) {
      for (let off = 0; off + HDR <= buf.length;) {
        const len = buf.readUInt32BE(off);
        if (len < HDR || off + len > buf.length || buf.readUInt16BE(off + 4) !== HDR) break;
        onPacket(buf.readUInt32BE(off + 8), buf.readUInt16BE(off + 6),
          buf.subarray(off + HDR, off + len));
        off += len;
      }
    },
    // tcp: a stream; a bad header ends the connection.
    pending: Buffer.alloc(0),
    stream(chunk) {
      let b = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
      while (b.length >= HDR) {
        const len = b.readUInt32BE(0);
        if (len < HDR || len > MAX_CLIENT_PACKET || b.readUInt16BE(4) !== HDR) {
          st.closed = true;
          transport.close();
          return;
        }
        if (b.length < len) break;
        onPacket(b.readUInt32BE(8), b.readUInt16BE(6), b.subarray(HDR, len));
        b = b.subarray(len);
      }
      this.pending = Buffer.from(b);
    },
    closed() {
      if (!st.closed && st.authed && st.next < batches.length) say(`CLOSE ${conn} ${st.room}`);
      st.closed = true;
    },
  };
}

// ---------------------------------------------------------------- HTTP API
function api(req, res, ports) {
  const u = new URL(req.url, 'http://127.0.0.1');
  say(`API ${u.pathname} ${Date.now()}`);
  const json = (o) => {
    const b = Buffer.from(JSON.stringify(o));
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8',
      'content-length': b.length });
    res.end(b);
  };
  const id = parseInt(u.searchParams.get('id') || u.searchParams.get('room_id') || '0', 10);
  switch (u.pathname) {
    case '/x/frontend/finger/spi':
      return json({ code: 0, message: 'ok',
        data: { b_3: 'D9656DA8-9BEF-F464-5B72-C4849AFD336379044infoc',
          b_4: '0B1E6B2C-1D4E-5F6A-7B8C-9D0E1F2A3B4C12345-023120100-abcdef==' } });
    case '/x/web-interface/nav':
      return json({ code: -101, message: '账号未登录', ttl: 1, data: { isLogin: false,
        wbi_img: { img_url: 'https://i0.hdslb.com/bfs/wbi/7cd084941338484aae1ad9425b84077c.png',
          sub_url: 'https://i0.hdslb.com/bfs/wbi/4932caff0ff746eab6f01bf08b70ac45.png' } } });
    case '/room/v1/Room/room_init':
    case '/room/v1/Room/mobileRoomInit':
    case '/room/v1/Room/get_info':
      return json({ code: 0, msg: 'ok', message: 'ok',
        data: { room_id: id, short_id: 0, uid: 1, live_status: 1, encrypted: false } });
    case '/xlive/web-room/v1/index/getDanmuInfo':
      return json({ code: 0, message: '0', ttl: 1, data: { group: 'live', business_id: 0,
        refresh_row_factor: 0.125, refresh_rate: 100, max_delay: 5000, token: 't',
        host_list: [{ host: '127.0.0.1', port: ports.tcp, ws_port: ports.ws, wss_port: 0 }] } });
    default:
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found\n');
      return undefined;
  }
}

// ---------------------------------------------------------------- servers
async function main() {
  let o;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write('flood_bilibili.js: ' + e.message + '\n');
    process.exit(2);
  }
  const tries = [path.join(__dirname, 'node_modules', 'ws'),
    path.join(__dirname, '..', 'tests', 'integration', 'node_modules', 'ws')];
  let WebSocketServer = null;
  for (const t of tries) {
    try { ({ WebSocketServer } = require(t)); break; } catch (e) { /* next */ }
  }
  if (!WebSocketServer) {
    process.stderr.write('flood_bilibili.js: cannot load "ws": run npm ci in bench/\n');
    process.exit(3);
  }
  const t0 = Date.now();
  const batches = await prepare(o);
  say(`READY ${batches.length} ${Date.now() - t0}`);
  flushSay();
  setInterval(flushSay, 20).unref();

  const ports = { ws: 0, tcp: 0 };
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false,
    maxPayload: 1 << 20 });
  wss.on('connection', (ws) => {
    const sock = ws._socket;
    sock.setNoDelay(true);
    const s = session(o, batches, {
      ws: true,
      send: (b) => ws.send(b, { binary: true }),
      buffered: () => ws.bufferedAmount,
      onDrain: (fn) => sock.once('drain', fn),
      close: () => ws.close(1000),
    });
    ws.on('message', (d) => s.message(Buffer.isBuffer(d) ? d : Buffer.concat(d)));
    ws.on('close', () => s.closed());
    ws.on('error', () => {});
  });
  const hs = http.createServer((req, res) => api(req, res, ports));
  hs.on('upgrade', (req, socket, head) => {
    socket.on('error', () => {});
    if (new URL(req.url, 'http://127.0.0.1').pathname !== '/sub') {
      socket.end('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });
  const ts = net.createServer((sock) => {
    sock.setNoDelay(true);
    sock.on('error', () => {});
    const s = session(o, batches, {
      ws: false,
      send: (b) => sock.write(b),
      buffered: () => sock.writableLength,
      onDrain: (fn) => sock.once('drain', fn),
      close: () => sock.destroy(),
    });
    sock.on('data', (d) => s.stream(d));
    sock.on('close', () => s.closed());
  });
  const listen = (srv, port) => new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen({ port, host: '127.0.0.1', backlog: 1024 }, () => resolve(srv.address().port));
  });
  try {
    ports.ws = await listen(hs, o.port);
    ports.tcp = await listen(ts, o.tcpPort);
  } catch (e) {
    process.stderr.write('flood_bilibili.js: listen: ' + e.message + '\n');
    process.exit(1);
  }
  say(`PORT ${ports.ws} ${ports.tcp}`);
  flushSay();
  const bye = () => {
    say(`EXIT ${totalAuths} ${totalSent}`);
    flushSay();
    process.exit(0);
  };
  process.on('SIGTERM', bye);
  process.on('SIGINT', bye);
}

if (isMainThread) main();
