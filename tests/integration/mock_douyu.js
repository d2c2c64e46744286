#!/usr/bin/env node
// Independent mock Douyu danmaku server for danmakud's black-box tests.
//
// It has its own packet framing and STT codec (never danmakud's C code) and
// replays the real S13-live capture (fixtures/douyu/danmaku/S13-live) to every
// client that joins a room, rewriting rid@=9999 to the joined room id.
//
// Transport: WebSocket (Node `ws`) over https restricted to TLS 1.2 and
// AES256-GCM-SHA384, the only suite the real danmuproxy offers; or plain http
// with --plain. Listens on 127.0.0.1 (and ::1 when available, same port).
//
// stdout protocol (one line each, flushed): PORT <n>, CONNECT <id>,
// LOGIN <room>, JOIN <room>, SENT <room> <count>, MRKL <room>, LOGOUT <room>,
// CLOSE <room> <code>, KILL <room> <count> (--close-after), SILENT <room> <count>,
// PROTO_ERROR <room> <what> (the client broke the protocol).
//
// Options:
//   --plain               ws:// instead of wss://
//   --port N              listen port (default 0 = any)
//   --key F --cert F      TLS key/cert PEM (required unless --plain)
//   --frames F            capture (default ../../../shared/... resolved by --shared)
//   --shared DIR          shared docs dir holding fixtures/
//   --split               re-chunk the byte stream: packets split across ws
//                         messages and several packets per message (mixed)
//   --close-after N       first connection of each room: destroy the socket
//                         abruptly after N room packets
//   --silent-after N      first connection of each room: stop after N room
//                         packets, keep the socket open, ignore heartbeats
//   --rate R              room packets per second (default: all at once)
//   --repeat              replay forever; cids are made unique per pass
//   --flood R             instead of the capture, send synthetic chatmsg packets at R per
//                         second per connection; each room has one sequence number that
//                         survives reconnects (seq 1, 2, ...), and message seq of room ROOM
//                         has txt@=flood ROOM #seq and a cid unique per room and seq
//                         (floodCid below); SENT <room> <total> once the room reaches
//                         --flood-count
//   --flood-count N       flood: stop a room after N messages (default 0: never)
//   --conn-log F          one JSON line per connection event, appended with a synchronous
//                         write: {"t": ms since the epoch, "room": "123" or null, "conn": id,
//                         "path": request path, "ev": E} with E = login (loginreq arrived),
//                         join (joingroup arrived), logout (logout arrived), close (the
//                         connection ended; with "sent": room packets sent on it and, in
//                         flood mode, "first"/"last": the seq range sent on it, 0 if none)
//   --sent-log F          one JSON line per room packet with a cid, once ws handed it to
//                         the socket: {"t", "room", "conn", "type", "cid"} (+ "seq" in flood)
'use strict';

const fs = require('fs');
const path = require('path');
const http = require('http');
const https = require('https');

let WebSocketServer;
try {
  ({ WebSocketServer } = require('ws'));
} catch (e) {
  process.stderr.write('mock_douyu.js: cannot load the "ws" package: ' +
    'run npm ci --prefix tests/integration\n');
  process.exit(3);
}

// ---------------------------------------------------------------- options
function parseArgs(argv) {
  const o = { plain: false, port: 0, split: false, closeAfter: -1, silentAfter: -1,
    rate: 0, repeat: false, key: null, cert: null, frames: null, shared: null,
    flood: 0, floodCount: 0, connLog: null, sentLog: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = () => {
      if (i + 1 >= argv.length) throw new Error('missing value for ' + a);
      return argv[++i];
    };
    switch (a) {
      case '--plain': o.plain = true; break;
      case '--port': o.port = parseInt(next(), 10); break;
      case '--split': o.split = true; break;
      case '--close-after': o.closeAfter = parseInt(next(), 10); break;
      case '--silent-after': o.silentAfter = parseInt(next(), 10); break;
      case '--rate': o.rate = parseFloat(next()); break;
      case '--repeat': o.repeat = true; break;
      case '--flood': o.flood = parseFloat(next()); break;
      case '--flood-count': o.floodCount = parseInt(next(), 10); break;
      case '--conn-log': o.connLog = next(); break;
      case '--sent-log': o.sentLog = next(); break;
      case '--key': o.key = next(); break;
      case '--cert': o.cert = next(); break;
      case '--frames': o.frames = next(); break;
      case '--shared': o.shared = next(); break;
      default: throw new Error('unknown option ' + a);
    }
  }
  if (!o.frames) {
    const shared = o.shared || path.join(__dirname, '..', '..', '..', 'shared');
    o.frames = path.join(shared, 'fixtures', 'douyu', 'danmaku', 'S13-live', 'frames.jsonl');
  }
  if (!o.plain && (!o.key || !o.cert)) throw new Error('--key and --cert are required without --plain');
  if (!(o.flood >= 0) || !(o.floodCount >= 0)) throw new Error('bad --flood or --flood-count');
  return o;
}

function say(line) {
  // Synchronous write so that lines are never lost or reordered at exit.
  fs.writeSync(1, line + '\n');
}

// ---------------------------------------------------------------- packets
const CLIENT_TYPE = 689;
const SERVER_TYPE = 690;

function packPacket(body, type) {
  const b = Buffer.from(body, 'utf8');
  const len = 8 + b.length + 1;
  const out = Buffer.alloc(4 + len);
  out.writeUInt32LE(len, 0);
  out.writeUInt32LE(len, 4);
  out.writeUInt16LE(type, 8);
  out.writeUInt8(0, 10);
  out.writeUInt8(0, 11);
  b.copy(out, 12);
  out.writeUInt8(0, 12 + b.length);
  return out;
}

// Byte-stream reassembler. push() returns complete packets {type, body}.
class PacketReader {
  constructor() { this.buf = Buffer.alloc(0); }
  push(chunk) {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : Buffer.from(chunk);
    const out = [];
    while (this.buf.length >= 12) {
      const l1 = this.buf.readUInt32LE(0);
      const l2 = this.buf.readUInt32LE(4);
      if (l1 !== l2 || l1 < 9 || l1 > 1 << 20) {
        throw new Error(`bad packet header len=${l1} copy=${l2}`);
      }
      if (this.buf.length < 4 + l1) break;
      const type = this.buf.readUInt16LE(8);
      if (this.buf[10] !== 0 || this.buf[11] !== 0) throw new Error('nonzero encrypt/reserved byte');
      if (this.buf[4 + l1 - 1] !== 0) throw new Error('packet not NUL-terminated');
      const body = this.buf.subarray(12, 4 + l1 - 1).toString('utf8');
      out.push({ type, body });
      this.buf = this.buf.subarray(4 + l1);
    }
    return out;
  }
}

// ---------------------------------------------------------------- STT
function sttUnescape(s) {
  let r = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '@' && i + 1 < s.length && (s[i + 1] === 'A' || s[i + 1] === 'S')) {
      r += s[i + 1] === 'A' ? '@' : '/';
      i++;
    } else {
      r += s[i];
    }
  }
  return r;
}
function sttEscape(s) { return s.replace(/@/g, '@A').replace(/\//g, '@S'); }

// Returns ordered [key, value] pairs of the top level.
function sttDecode(body) {
  const pairs = [];
  for (const seg of body.split('/')) {
    const at = seg.indexOf('@=');
    if (at <= 0) continue;
    pairs.push([sttUnescape(seg.slice(0, at)), sttUnescape(seg.slice(at + 2))]);
  }
  return pairs;
}
function sttEncode(pairs) {
  return pairs.map(([k, v]) => sttEscape(k) + '@=' + sttEscape(v) + '/').join('');
}
function sttGet(pairs, key) {
  let v;
  for (const [k, val] of pairs) if (k === key) v = val;
  return v;
}

// ---------------------------------------------------------------- capture
// Server packets of the capture, as decoded STT pairs, without the login
// reply (loginres, pingreq): the mock answers the login itself.
function loadCapture(file) {
  const packets = [];
  const reader = new PacketReader();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const o = JSON.parse(line);
    if (o.dir !== 'in') continue;
    for (const p of reader.push(Buffer.from(o.b64, 'base64'))) {
      if (p.type !== SERVER_TYPE) throw new Error('capture packet with type ' + p.type);
      const pairs = sttDecode(p.body);
      if (sttEncode(pairs) !== p.body) throw new Error('STT round trip differs: ' + p.body.slice(0, 80));
      const t = sttGet(pairs, 'type');
      if (t === 'loginres' || t === 'pingreq') continue;
      packets.push(pairs);
    }
  }
  return packets;
}

const LOGINRES = 'type@=loginres/userid@=0/roomgroup@=0/pg@=0/sessionid@=2/username@=/nickname@=/' +
  'live_stat@=0/is_illegal@=0/ill_ct@=/ill_ts@=0/now@=0/ps@=0/es@=0/it@=0/its@=0/npv@=0/' +
  'best_dlev@=0/cur_lev@=0/nrc@=3371353904/ih@=0/sid@=75381/sahf@=0/sceneid@=0/newrg@=0/' +
  'regts@=0/ip@=127.0.0.1/rn@=0/rct@=0/';

function roomPacket(pairs, room, pass) {
  const out = pairs.map(([k, v]) => {
    if (k === 'rid' && v === '9999') return [k, String(room)];
    if (k === 'cid' && pass > 0 && v.length >= 8) {
      return [k, v.slice(0, v.length - 8) + pass.toString(16).padStart(8, '0')];
    }
    return [k, v];
  });
  return packPacket(sttEncode(out), SERVER_TYPE);
}

// The same, also returning the packet's type and cid (null if none) for --sent-log.
function roomPacketInfo(pairs, room, pass) {
  const pkt = roomPacket(pairs, room, pass);
  let cid = sttGet(pairs, 'cid');
  if (cid !== undefined && pass > 0 && cid.length >= 8) {
    cid = cid.slice(0, cid.length - 8) + pass.toString(16).padStart(8, '0');
  }
  return { pkt, type: sttGet(pairs, 'type'), cid: cid === undefined ? null : cid };
}

// --flood: message seq of a room. The cid is 32 hex digits, unique per (room, seq):
// the room id (12 digits), f100 and the seq (16 digits).
function floodCid(room, seq) {
  return Number(room).toString(16).padStart(12, '0').slice(-12) + 'f100' +
    seq.toString(16).padStart(16, '0');
}

// A chatmsg shaped like the capture's first one (every field it has), with its own rid,
// uid, nick, text, cid and cst.
function floodPacket(template, room, seq) {
  const over = { rid: String(room), uid: String(100000 + (seq % 997)), nn: 'flood' + (seq % 997),
    txt: `flood ${room} #${seq}`, cid: floodCid(room, seq), cst: String(Date.now()) };
  const pairs = template.map(([k, v]) => [k, Object.prototype.hasOwnProperty.call(over, k) ? over[k] : v]);
  for (const k of Object.keys(over)) if (sttGet(pairs, k) === undefined) pairs.push([k, over[k]]);
  return packPacket(sttEncode(pairs), SERVER_TYPE);
}

// An append-only JSON-lines log written synchronously (nothing lost when the mock is killed).
class JsonLog {
  constructor(file) { this.fd = file ? fs.openSync(file, 'a') : -1; }
  write(objs) {
    if (this.fd < 0 || !objs.length) return;
    fs.writeSync(this.fd, objs.map((o) => JSON.stringify(o) + '\n').join(''));
  }
}

// Deterministic chunk sizes for --split: tiny pieces that cut headers, medium
// ones that cut bodies and large ones that carry several packets.
function* splitSizes() {
  const sizes = [1, 5, 11, 12, 13, 97, 400, 1500, 3, 4096, 64, 7000, 2, 250, 9000];
  for (let i = 0; ; i++) yield sizes[i % sizes.length];
}

// ---------------------------------------------------------------- server
function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write('mock_douyu.js: ' + e.message + '\n');
    process.exit(2);
  }
  const capture = loadCapture(opts.frames);
  const seenRooms = new Map(); // room -> connections that joined so far
  let connSeq = 0;
  const connLog = new JsonLog(opts.connLog);
  const sentLog = new JsonLog(opts.sentLog);
  const roomSeq = new Map(); // --flood: room -> last seq handed out
  const floodTemplate = capture.find((p) => sttGet(p, 'type') === 'chatmsg') ||
    [['type', 'chatmsg'], ['rid', '0'], ['uid', '0'], ['nn', ''], ['txt', ''], ['cid', ''],
      ['level', '1'], ['cst', '0']];

  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 1 << 20 });
  const onUpgrade = (req, socket, head) => {
    socket.on('error', () => {});
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  };
  const mkServer = () => {
    const s = opts.plain ? http.createServer() : https.createServer({
      key: fs.readFileSync(opts.key), cert: fs.readFileSync(opts.cert),
      ciphers: 'AES256-GCM-SHA384', minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2',
      honorCipherOrder: true,
    });
    s.on('upgrade', onUpgrade);
    s.on('request', (req, res) => { res.writeHead(426); res.end('websocket only\n'); });
    s.on('tlsClientError', (err) => say(`TLS_ERROR ${String(err.code || err.message).replace(/\s+/g, '_')}`));
    return s;
  };

  wss.on('connection', (ws, req) => {
    const id = ++connSeq;
    const reqPath = (req && req.url) || '/';
    say(`CONNECT ${id}`);
    const reader = new PacketReader();
    const st = { room: null, joined: false, loggedIn: false, sent: 0, silent: false,
      first: false, timer: null, closed: false, replaying: false, pending: Buffer.alloc(0),
      firstSeq: 0, lastSeq: 0 };
    const connEvent = (ev, extra) => connLog.write([Object.assign(
      { t: Date.now(), room: st.room, conn: id, path: reqPath, ev }, extra || {})]);
    const logSent = (infos) => {
      const t = Date.now();
      sentLog.write(infos.filter((x) => x.cid !== null).map((x) => {
        const o = { t, room: st.room, conn: id, type: x.type, cid: x.cid };
        if (x.seq !== undefined) o.seq = x.seq;
        return o;
      }));
    };
    // Replies that must not cut into a packet the --split replay has only
    // partly sent go through the replay's byte queue.
    const reply = (buf) => {
      if (st.replaying) st.pending = st.pending.length ? Buffer.concat([st.pending, buf]) : buf;
      else sendRaw(buf);
    };

    const stop = () => {
      st.closed = true;
      if (st.timer) { clearTimeout(st.timer); st.timer = null; }
    };
    const protoError = (what) => say(`PROTO_ERROR ${st.room} ${what}`);

    // Send one ws message (Buffer); returns a promise resolved when written.
    const sendRaw = (buf) => new Promise((resolve) => {
      if (st.closed || ws.readyState !== ws.OPEN) return resolve(false);
      ws.send(buf, { binary: true }, (err) => resolve(!err));
    });

    const replay = async () => {
      const room = st.room;
      const limitClose = st.first && opts.closeAfter >= 0 ? opts.closeAfter : -1;
      const limitSilent = st.first && opts.silentAfter >= 0 ? opts.silentAfter : -1;
      const limit = limitClose >= 0 ? limitClose : limitSilent;
      const sizes = splitSizes();
      let curSize = sizes.next().value;
      st.replaying = opts.split;
      const delay = opts.rate > 0 ? 1000 / opts.rate : 0;
      const sleep = (ms) => new Promise((r) => { st.timer = setTimeout(r, ms); });
      let groupLeft = 0; // packets left in the current unsplit message
      let group = [];
      let groupInfo = [];
      const groupSizes = [1, 2, 3, 1, 4, 2, 7, 1, 3, 10, 2, 5]; // like the capture: 1..10
      let gi = 0;
      for (let pass = 0; !st.closed; pass++) {
        for (let i = 0; i < capture.length && !st.closed; i++) {
          if (limit >= 0 && st.sent >= limit) break;
          const info = roomPacketInfo(capture[i], room, pass);
          const pkt = info.pkt;
          st.sent++;
          const last = (limit >= 0 && st.sent >= limit) || (!opts.repeat && i === capture.length - 1);
          if (opts.split) {
            logSent([info]); // --split: logged when queued
            st.pending = st.pending.length ? Buffer.concat([st.pending, pkt]) : pkt;
            if (delay > 0) {
              // paced: every packet goes out in two pieces
              const all = st.pending;
              st.pending = Buffer.alloc(0);
              const cut = Math.max(1, Math.min(all.length - 1, 7));
              await sendRaw(all.subarray(0, cut));
              await sendRaw(all.subarray(cut));
            } else {
              while (st.pending.length >= curSize) {
                const chunk = st.pending.subarray(0, curSize);
                st.pending = st.pending.subarray(curSize);
                curSize = sizes.next().value;
                await sendRaw(chunk);
              }
            }
          } else {
            if (groupLeft === 0) groupLeft = groupSizes[gi++ % groupSizes.length];
            group.push(pkt);
            groupInfo.push(info);
            groupLeft--;
            if (groupLeft === 0 || last || delay > 0) {
              const msg = Buffer.concat(group);
              const infos = groupInfo;
              group = [];
              groupInfo = [];
              groupLeft = 0;
              if (await sendRaw(msg)) logSent(infos);
            }
          }
          if (delay > 0) await sleep(delay);
          else if (st.sent % 50 === 0) await new Promise((r) => setImmediate(r));
        }
        if (!opts.repeat || (limit >= 0 && st.sent >= limit)) break;
      }
      st.replaying = false;
      while (st.pending.length) {
        const all = st.pending;
        st.pending = Buffer.alloc(0);
        await sendRaw(all);
      }
      if (group.length && await sendRaw(Buffer.concat(group))) logSent(groupInfo);
      if (st.closed) return;
      if (limitClose >= 0) {
        say(`KILL ${room} ${st.sent}`);
        st.closed = true;
        ws.terminate(); // destroys the TCP socket: no close frame, no TLS close_notify
        return;
      }
      if (limitSilent >= 0) {
        st.silent = true;
        say(`SILENT ${room} ${st.sent}`);
        return;
      }
      say(`SENT ${room} ${st.sent}`);
    };

    // --flood: every 20 ms, the messages due at opts.flood per second on this connection,
    // numbered by the room's sequence, in one ws message; the next tick is armed only once
    // ws has handed the batch to the socket (a client that stops reading stops the flood).
    const flood = () => {
      const room = st.room;
      const t0 = Date.now();
      let done = 0;
      const tick = async () => {
        st.timer = null;
        if (st.closed) return;
        let n = Math.floor((Date.now() - t0) * opts.flood / 1000) - done;
        let seq = roomSeq.get(room) || 0;
        if (opts.floodCount > 0) n = Math.min(n, opts.floodCount - seq);
        if (n > 0) {
          const pkts = [];
          const infos = [];
          for (let k = 0; k < n; k++) {
            seq++;
            pkts.push(floodPacket(floodTemplate, room, seq));
            infos.push({ type: 'chatmsg', cid: floodCid(room, seq), seq });
          }
          roomSeq.set(room, seq);
          done += n;
          st.sent += n;
          if (await sendRaw(Buffer.concat(pkts))) {
            if (!st.firstSeq) st.firstSeq = infos[0].seq;
            st.lastSeq = seq;
            logSent(infos);
          }
          if (opts.floodCount > 0 && seq >= opts.floodCount) {
            say(`SENT ${room} ${seq}`);
            return;
          }
        }
        if (!st.closed) st.timer = setTimeout(tick, 20);
      };
      tick().catch((e) => say(`MOCK_ERROR ${room} ${e.message}`));
    };

    ws.on('message', (data, isBinary) => {
      if (!isBinary) protoError('text_frame');
      let packets;
      try {
        packets = reader.push(Buffer.isBuffer(data) ? data : Buffer.concat(data));
      } catch (e) {
        protoError('bad_packet:' + e.message.replace(/\s+/g, '_'));
        ws.terminate();
        return;
      }
      let sawLoginInThisMessage = false;
      for (const p of packets) {
        if (p.type !== CLIENT_TYPE) protoError('client_type_' + p.type);
        const pairs = sttDecode(p.body);
        const t = sttGet(pairs, 'type');
        if (t === 'loginreq') {
          sawLoginInThisMessage = true;
          const room = sttGet(pairs, 'roomid');
          if (!room || !/^[0-9]+$/.test(room)) { protoError('loginreq_without_roomid'); continue; }
          st.room = room;
          st.loggedIn = true;
          say(`LOGIN ${room}`);
          connEvent('login');
          const reply = Buffer.concat([packPacket(LOGINRES, SERVER_TYPE),
            packPacket(`type@=pingreq/tick@=${Date.now()}/`, SERVER_TYPE)]);
          sendRaw(reply);
        } else if (t === 'joingroup') {
          if (!st.loggedIn) { protoError('joingroup_before_loginreq'); continue; }
          if (sawLoginInThisMessage) protoError('joingroup_did_not_wait_for_loginres');
          const rid = sttGet(pairs, 'rid');
          const gid = sttGet(pairs, 'gid');
          if (rid !== st.room) protoError(`joingroup_rid_${rid}_differs`);
          if (gid !== '-9999') protoError(`joingroup_gid_${gid}`);
          if (st.joined) { protoError('second_joingroup'); continue; }
          st.joined = true;
          const n = (seenRooms.get(st.room) || 0) + 1;
          seenRooms.set(st.room, n);
          st.first = n === 1;
          say(`JOIN ${st.room}`);
          connEvent('join');
          if (opts.flood > 0) flood();
          else replay().catch((e) => say(`MOCK_ERROR ${st.room} ${e.message}`));
        } else if (t === 'mrkl') {
          say(`MRKL ${st.room}`);
          if (!st.silent) reply(packPacket('type@=mrkl/', SERVER_TYPE));
        } else if (t === 'keeplive') {
          say(`KEEPLIVE ${st.room}`);
          if (!st.silent) reply(packPacket(`type@=keeplive/tick@=${sttGet(pairs, 'tick') || ''}/`, SERVER_TYPE));
        } else if (t === 'logout') {
          say(`LOGOUT ${st.room}`);
          connEvent('logout');
          stop();
          ws.close(1000);
        } else {
          say(`CLIENT_MSG ${st.room} ${t}`);
        }
      }
    });
    ws.on('close', (code) => {
      stop();
      connEvent('close', opts.flood > 0 ? { code, sent: st.sent, first: st.firstSeq, last: st.lastSeq }
        : { code, sent: st.sent });
      say(`CLOSE ${st.room} ${code}`);
    });
    ws.on('error', (e) => say(`WS_ERROR ${st.room} ${String(e.message).replace(/\s+/g, '_')}`));
  });

  const s4 = mkServer();
  s4.on('error', (e) => { process.stderr.write('listen: ' + e.message + '\n'); process.exit(1); });
  s4.listen(opts.port, '127.0.0.1', () => {
    const port = s4.address().port;
    const s6 = mkServer();
    s6.on('error', () => {}); // no IPv6 loopback: fine
    s6.listen(port, '::1', () => {});
    // Give the ::1 listen a moment so "localhost" resolving to ::1 works too.
    setTimeout(() => say(`PORT ${port}`), 50);
  });
  const bye = () => { say('EXIT'); process.exit(0); };
  process.on('SIGTERM', bye);
  process.on('SIGINT', bye);
}

main();
