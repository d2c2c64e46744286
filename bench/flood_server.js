#!/usr/bin/env node
// Flood server for danmakud's benchmarks: a Douyu danmaku server that outruns its client.
//
// Message shapes are the real ones: every server packet of the S13-live capture and every
// server sample of douyu-samples.tsv, minus control traffic (loginres, pingreq, mrkl,
// keeplive, error) and client packets. Each is pre-encoded once per room as a packet
// template with fixed-width slots: every top-level rid is the joined room, every chatmsg
// gets a unique cid (the (room_id, cid) index must not swallow repeats), and every message
// carries `bts@=<13-digit ms>`, its send time, for latency. Sending a frame is then one
// copy of K templates and two small in-place writes per message.
//
// Transports: --mode wss (https + Node `ws`, TLS 1.2 only, AES256-GCM-SHA384 only, like
// danmuproxy), ws (http + `ws`), tcp (raw Douyu packets). Listens on 127.0.0.1 and ::1.
// The login is answered like the mock: loginreq -> loginres + pingreq; joingroup (also
// one that did not wait for loginres, as douyudm sends it) starts the flood; mrkl is echoed.
//
// Flood: --messages N per connection, K packets per websocket frame (--per-frame), sent as
// fast as the socket drains (a frame is written only while the socket's buffered bytes are
// under --high-water; otherwise it waits for 'drain' and counts a stall: stalls > 0 mean
// the client, not this server, was the bottleneck) or paced at --rate messages/s per
// connection. N = 0: answer logins and heartbeats only (many-rooms runs).
//
// stdout, one line each: PORT <n>; JOIN <room> <ms>; DONE <room> <sent> <stalls> <ms>;
// HB <room> <ms> (each mrkl, with --log-heartbeats); CLOSE <room>; EXIT <joins> <sent>.
//
// --random-ids cid,uid (bench/scale.py; either or both): every chatmsg cid is random like
// Douyu's (16 + 6 random hex digits, then 0100000000), every top-level uid a random 9-digit
// number (half from 200,000 regulars), so that the (platform, room_id, cid) and (uid, ts)
// indexes get keys at random places as from real traffic, not after the previous message's.
'use strict';

const fs = require('fs');
const path = require('path');
const net = require('net');
const http = require('http');
const https = require('https');

function loadWs() {
  const tries = [path.join(__dirname, 'node_modules', 'ws'),
    path.join(__dirname, '..', 'tests', 'integration', 'node_modules', 'ws')];
  for (const t of tries) {
    try { return require(t); } catch (e) { /* next */ }
  }
  process.stderr.write('flood_server.js: cannot load "ws": run npm ci in bench/\n');
  process.exit(3);
}

function parseArgs(argv) {
  const o = { mode: 'wss', port: 0, messages: 0, perFrame: 16, rate: 0, highWater: 1 << 20,
    key: null, cert: null, shared: path.join(__dirname, '..', '..', 'shared'), logHb: false,
    backlog: 4096, randomCid: false,
    randomUid: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error('missing value for ' + a);
      return argv[++i];
    };
    switch (a) {
      case '--mode': o.mode = next(); break;
      case '--port': o.port = parseInt(next(), 10); break;
      case '--messages': o.messages = parseInt(next(), 10); break;
      case '--per-frame': o.perFrame = Math.max(1, parseInt(next(), 10)); break;
      case '--rate': o.rate = parseFloat(next()); break;
      case '--high-water': o.highWater = parseInt(next(), 10); break;
      case '--key': o.key = next(); break;
      case '--cert': o.cert = next(); break;
      case '--shared': o.shared = next(); break;
      case '--log-heartbeats': o.logHb = true; break;
      case '--random-ids': {
        const v = next().split(',');
        o.randomCid = v.includes('cid');
        o.randomUid = v.includes('uid');
        break;
      }
      case '--backlog': o.backlog = parseInt(next(), 10); break;
      default: throw new Error('unknown option ' + a);
    }
  }
  if (!['wss', 'ws', 'tcp'].includes(o.mode)) throw new Error('--mode is wss, ws or tcp');
  if (o.mode === 'wss' && (!o.key || !o.cert)) throw new Error('wss needs --key and --cert');
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
setInterval(flushSay, 20).unref();

// ---------------------------------------------------------------- packets and STT
const CLIENT_TYPE = 689;
const SERVER_TYPE = 690;

function pack(bodyBuf, type) {
  const len = 8 + bodyBuf.length + 1;
  const b = Buffer.alloc(4 + len);
  b.writeUInt32LE(len, 0);
  b.writeUInt32LE(len, 4);
  b.writeUInt16LE(type, 8);
  bodyBuf.copy(b, 12);
  return b;
}
const packText = (s, type) => pack(Buffer.from(s, 'utf8'), type);

class PacketReader {
  constructor() { this.buf = Buffer.alloc(0); }
  push(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk;
    const res = [];
    while (this.buf.length >= 12) {
      const l1 = this.buf.readUInt32LE(0);
      if (l1 !== this.buf.readUInt32LE(4) || l1 < 9 || l1 > 1 << 20) throw new Error('bad packet');
      if (this.buf.length < 4 + l1) break;
      res.push({ type: this.buf.readUInt16LE(8),
        body: this.buf.subarray(12, 4 + l1 - 1).toString('utf8') });
      this.buf = this.buf.subarray(4 + l1);
    }
    return res;
  }
}

// Top-level pairs; values stay escaped (we only re-emit them).
function sttPairs(body) {
  const pairs = [];
  for (const seg of body.split('/')) {
    const at = seg.indexOf('@=');
    if (at <= 0) continue;
    pairs.push([seg.slice(0, at), seg.slice(at + 2)]);
  }
  return pairs;
}
const sttGet = (pairs, k) => { for (const [a, b] of pairs) if (a === k) return b; return undefined; };

const SKIP = new Set(['loginres', 'pingreq', 'mrkl', 'keeplive', 'error', 'loginreq', 'joingroup',
  'logout']);

// Message shapes: [[key, escapedValue]...] from the capture and the samples.
function loadShapes(shared) {
  const shapes = [];
  const keep = (body) => {
    const pairs = sttPairs(body);
    const t = sttGet(pairs, 'type');
    if (t && !SKIP.has(t)) shapes.push(pairs);
  };
  const frames = path.join(shared, 'fixtures', 'douyu', 'danmaku', 'S13-live', 'frames.jsonl');
  const reader = new PacketReader();
  for (const line of fs.readFileSync(frames, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const o = JSON.parse(line);
    if (o.dir !== 'in') continue;
    for (const p of reader.push(Buffer.from(o.b64, 'base64'))) keep(p.body);
  }
  const tsv = path.join(shared, 'douyu-samples.tsv');
  for (const line of fs.readFileSync(tsv, 'utf8').split('\n')) {
    const body = line.split('\t')[0];
    if (body.includes('@=')) keep(body);
  }
  if (!shapes.length) throw new Error('no message shapes loaded');
  return shapes;
}

const CID_LEN = 32;
const BTS_LEN = 13;
const UID_LEN = 9;

const hex = (n) => {
  let h = '';
  while (h.length < n) h += Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, '0');
  return h.slice(0, n);
};
const randomCid = () => hex(22) + '0100000000';
const randomUid = () => String(Math.random() < 0.5
  ? 100000000 + Math.floor(Math.random() * 200000) * 1999
  : 100000000 + Math.floor(Math.random() * 400000000));

// Packet templates for one room: {buf, cidAt (-1: none), uidAt (-1: none), btsAt}; uid slots
// only with randomUid.
function roomTemplates(shapes, room, randomUid) {
  return shapes.map((pairs) => {
    const isChat = sttGet(pairs, 'type') === 'chatmsg';
    let body = '';
    let cidAt = -1;
    let uidAt = -1;
    let haveCid = false;
    for (const [k, v] of pairs) {
      if (k === 'bts') continue;
      if (k === 'rid') {
        body += `rid@=${room}/`;
      } else if (k === 'uid' && randomUid && uidAt < 0) {
        uidAt = Buffer.byteLength(body + 'uid@=');
        body += 'uid@=' + '0'.repeat(UID_LEN) + '/';
      } else if (k === 'cid' && isChat && !haveCid) {
        haveCid = true;
        cidAt = Buffer.byteLength(body + 'cid@=');
        body += 'cid@=' + '0'.repeat(CID_LEN) + '/';
      } else {
        body += `${k}@=${v}/`;
      }
    }
    if (isChat && !haveCid) {
      cidAt = Buffer.byteLength(body + 'cid@=');
      body += 'cid@=' + '0'.repeat(CID_LEN) + '/';
    }
    const btsAt = Buffer.byteLength(body + 'bts@=');
    body += 'bts@=' + '0'.repeat(BTS_LEN) + '/';
    return { buf: packText(body, SERVER_TYPE), cidAt: cidAt < 0 ? -1 : 12 + cidAt,
      uidAt: uidAt < 0 ? -1 : 12 + uidAt, btsAt: 12 + btsAt };
  });
}

const LOGINRES = 'type@=loginres/userid@=0/roomgroup@=0/pg@=0/sessionid@=2/username@=/' +
  'nickname@=/live_stat@=0/is_illegal@=0/ill_ct@=/ill_ts@=0/now@=0/ps@=0/es@=0/it@=0/its@=0/' +
  'npv@=0/best_dlev@=0/cur_lev@=0/nrc@=3371353904/ih@=0/sid@=75381/sahf@=0/sceneid@=0/' +
  'newrg@=0/regts@=0/ip@=127.0.0.1/rn@=0/rct@=0/';
const MRKL = packText('type@=mrkl/', SERVER_TYPE);

// ---------------------------------------------------------------- one connection
let connSeq = 0;
let totalJoins = 0;
let totalSent = 0;

// transport: {send(buf) -> bool (false: wait for drain), buffered(), onDrain(fn), close()}
function session(opts, shapes, transport) {
  const conn = ++connSeq;
  const st = { room: null, loggedIn: false, joined: false, sent: 0, stalls: 0, closed: false,
    templates: null, next: 0, timer: null };
  const reader = new PacketReader();
  // cid = 'b' + 7 hex digits of the connection + 24 of the message sequence: unique per room.
  const cidPrefix = 'b' + conn.toString(16).padStart(7, '0');

  const frame = (k) => {
    const tpl = st.templates;
    let size = 0;
    for (let i = 0; i < k; i++) size += tpl[(st.next + i) % tpl.length].buf.length;
    const b = Buffer.allocUnsafe(size);
    const now = String(Date.now()).padStart(BTS_LEN, '0');
    let off = 0;
    for (let i = 0; i < k; i++) {
      const t = tpl[st.next++ % tpl.length];
      t.buf.copy(b, off);
      if (t.cidAt >= 0 && opts.randomCid) {
        b.write(randomCid(), off + t.cidAt, 'latin1');
      } else if (t.cidAt >= 0) {
        b.write(cidPrefix + (st.sent + i).toString(16).padStart(CID_LEN - 8, '0'), off + t.cidAt,
          'latin1');
      }
      if (t.uidAt >= 0) b.write(randomUid(), off + t.uidAt, 'latin1');
      b.write(now, off + t.btsAt, 'latin1');
      off += t.buf.length;
    }
    st.sent += k;
    totalSent += k;
    return b;
  };

  const finish = () => {
    say(`DONE ${st.room} ${st.sent} ${st.stalls} ${Date.now()}`);
  };

  // As fast as the socket drains.
  const pump = () => {
    while (!st.closed && st.sent < opts.messages) {
      if (transport.buffered() >= opts.highWater) {
        st.stalls++;
        transport.onDrain(pump);
        return;
      }
      transport.send(frame(Math.min(opts.perFrame, opts.messages - st.sent)));
    }
    if (!st.closed) finish();
  };

  // Paced: every 10 ms, what the rate allows so far, in frames of up to K.
  const paced = () => {
    const t0 = Date.now();
    const tick = () => {
      if (st.closed) return;
      const due = Math.min(opts.messages, Math.floor((Date.now() - t0) * opts.rate / 1000));
      while (st.sent < due) {
        if (transport.buffered() >= opts.highWater) { st.stalls++; break; }
        transport.send(frame(Math.min(opts.perFrame, due - st.sent)));
      }
      if (st.sent >= opts.messages) { finish(); return; }
      st.timer = setTimeout(tick, 10);
    };
    tick();
  };

  const onPackets = (packets) => {
    for (const p of packets) {
      if (p.type !== CLIENT_TYPE) continue;
      const pairs = sttPairs(p.body);
      const t = sttGet(pairs, 'type');
      if (t === 'loginreq') {
        st.room = sttGet(pairs, 'roomid');
        st.loggedIn = true;
        transport.send(Buffer.concat([packText(LOGINRES, SERVER_TYPE),
          packText(`type@=pingreq/tick@=${Date.now()}/`, SERVER_TYPE)]));
      } else if (t === 'joingroup' && st.loggedIn && !st.joined) {
        st.joined = true;
        totalJoins++;
        say(`JOIN ${st.room} ${Date.now()}`);
        if (opts.messages > 0) {
          st.templates = roomTemplates(shapes, st.room, opts.randomUid);
          st.next = Math.floor(Math.random() * st.templates.length);
          if (opts.rate > 0) paced();
          else setImmediate(pump);
        }
      } else if (t === 'mrkl') {
        if (opts.logHb) say(`HB ${st.room} ${Date.now()}`);
        transport.send(MRKL);
      } else if (t === 'logout') {
        st.closed = true;
        transport.close();
      }
    }
  };
  return {
    data(buf) {
      try {
        onPackets(reader.push(buf));
      } catch (e) {
        st.closed = true;
        transport.close();
      }
    },
    closed() {
      if (st.timer) clearTimeout(st.timer);
      if (!st.closed || st.room) say(`CLOSE ${st.room}`);
      st.closed = true;
    },
  };
}

// ---------------------------------------------------------------- servers
function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write('flood_server.js: ' + e.message + '\n');
    process.exit(2);
  }
  const shapes = loadShapes(opts.shared);
  const servers = [];

  const mkServer = () => {
    if (opts.mode === 'tcp') {
      return net.createServer((sock) => {
        sock.setNoDelay(true);
        sock.on('error', () => {});
        const s = session(opts, shapes, {
          send: (b) => sock.write(b),
          buffered: () => sock.writableLength,
          onDrain: (fn) => sock.once('drain', fn),
          close: () => sock.end(),
        });
        sock.on('data', (d) => s.data(d));
        sock.on('close', () => s.closed());
      });
    }
    const { WebSocketServer } = loadWs();
    const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false,
      maxPayload: 1 << 20 });
    wss.on('connection', (ws) => {
      const sock = ws._socket;
      const s = session(opts, shapes, {
        send: (b) => ws.send(b, { binary: true }),
        buffered: () => ws.bufferedAmount,
        onDrain: (fn) => sock.once('drain', fn),
        close: () => ws.close(1000),
      });
      ws.on('message', (d) => s.data(Buffer.isBuffer(d) ? d : Buffer.concat(d)));
      ws.on('close', () => s.closed());
      ws.on('error', () => {});
    });
    const srv = opts.mode === 'ws' ? http.createServer() : https.createServer({
      key: fs.readFileSync(opts.key), cert: fs.readFileSync(opts.cert),
      ciphers: 'AES256-GCM-SHA384', minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2',
      honorCipherOrder: true,
    });
    srv.on('upgrade', (req, socket, head) => {
      socket.on('error', () => {});
      wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
    });
    srv.on('request', (req, res) => { res.writeHead(426); res.end(); });
    srv.on('tlsClientError', () => {});
    return srv;
  };

  const s4 = mkServer();
  servers.push(s4);
  s4.on('error', (e) => { process.stderr.write('listen: ' + e.message + '\n'); process.exit(1); });
  s4.listen({ port: opts.port, host: '127.0.0.1', backlog: opts.backlog }, () => {
    const port = s4.address().port;
    const s6 = mkServer();
    servers.push(s6);
    s6.on('error', () => {}); // no IPv6 loopback: fine
    s6.listen({ port, host: '::1', backlog: opts.backlog }, () => {});
    setTimeout(() => { say(`PORT ${port}`); flushSay(); }, 50);
  });
  const bye = () => {
    say(`EXIT ${totalJoins} ${totalSent}`);
    flushSay();
    process.exit(0);
  };
  process.on('SIGTERM', bye);
  process.on('SIGINT', bye);
}

main();
