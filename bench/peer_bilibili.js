#!/usr/bin/env node
// Peer run: npm `bilibili-live-ws` (pinned in bench/package.json) receiving the same
// Bilibili flood as danmakud (flood_bilibili.js). Its LiveWS (or LiveTCP) takes the local
// address as an option and makes no HTTP call of its own; it sends its own auth (ver 1,
// protover 3 here) and heartbeats, splits each websocket message into packets, brotli-
// decompresses each batch (Node zlib, on libuv's thread pool) and JSON-parses every inner
// packet, then emits 'msg' and one event per cmd.
//
// It stores nothing: DANMU_MSG events are only counted, so what we measure is its receive-
// and-decode cost alone, a lower bound on any application built on it. LiveWS, not
// KeepLiveWS: a reconnect would restart the flood and count messages twice.
//
//   node peer_bilibili.js ws://127.0.0.1:PORT/sub ROOM EXPECTED
//   node peer_bilibili.js tcp://127.0.0.1:PORT ROOM EXPECTED
// stdout: LIVE <ms> at the auth reply, then DONE <count> <ms> <cpu s> once EXPECTED
// DANMU_MSG were decoded (or TIMEOUT ... after --timeout s, default 300; CLOSED ... when the
// server closed first).
'use strict';

const path = require('path');
const { LiveWS, LiveTCP } = require(path.join(__dirname, 'node_modules', 'bilibili-live-ws'));

const args = process.argv.slice(2);
let timeoutS = 300;
const ti = args.indexOf('--timeout');
if (ti >= 0) {
  timeoutS = parseFloat(args[ti + 1]);
  args.splice(ti, 2);
}
const [url, roomArg, expectedArg] = args;
const room = parseInt(roomArg, 10);
const expected = parseInt(expectedArg, 10);
if (!url || !(room > 0) || !(expected > 0)) {
  process.stderr.write('usage: peer_bilibili.js ws://HOST:PORT/sub|tcp://HOST:PORT ROOM ' +
    'EXPECTED [--timeout S]\n');
  process.exit(2);
}

let count = 0;
let done = false;
// DONE does not exit: the process stays (idle) until SIGTERM or 60 s, so that the bench
// can still read its /proc/<pid>/stat. The last field is process.cpuUsage() (user + system
// s, getrusage of the whole process), a cross-check of that.
const finish = (word) => {
  if (done) return;
  done = true;
  const c = process.cpuUsage();
  process.stdout.write(`${word} ${count} ${Date.now()} ${((c.user + c.system) / 1e6).toFixed(3)}\n`,
    () => {
      if (word !== 'DONE') process.exit(0);
    });
  if (word === 'DONE') setTimeout(() => process.exit(0), 60000);
};

const opts = { protover: 3, key: 't', uid: 0,
  buvid: 'D9656DA8-9BEF-F464-5B72-C4849AFD336379044infoc' };
let live;
if (url.startsWith('tcp://')) {
  const u = new URL(url);
  live = new LiveTCP(room, { ...opts, host: u.hostname, port: parseInt(u.port, 10) });
} else {
  live = new LiveWS(room, { ...opts, address: url });
}
live.on('live', () => process.stdout.write(`LIVE ${Date.now()}\n`));
live.on('DANMU_MSG', () => {
  if (++count >= expected) finish('DONE');
});
live.on('error', (e) => process.stderr.write(`error: ${e && e.message}\n`));
live.on('close', () => setTimeout(() => finish('CLOSED'), 100));

setTimeout(() => finish('TIMEOUT'), timeoutS * 1000).unref();
process.on('SIGTERM', () => {
  if (done) process.exit(0);
  finish('TIMEOUT');
});
