#!/usr/bin/env node
// Peer run: npm `douyudm` (pinned in bench/package-lock.json) receiving the same flood as
// danmakud. One douyudm client per room, each given the local URL through its own
// `run(url)`; the test CA comes in through NODE_EXTRA_CA_CERTS.
//
// douyudm stores nothing: it decodes each packet (Packet.Decode, STT.deserialize) and calls
// the handler of the message's type. Every handler is replaced by a no-op (its defaults
// print to the console), so what we measure is douyudm's receive-and-decode cost alone, a
// lower bound on any application built on it. Flood messages are counted after douyudm
// handled them (they carry bts@=); control messages are not counted.
//
//   node peer_douyudm.js URL EXPECTED ROOM...
// stdout: READY, then DONE <count> <ms> once EXPECTED flood messages were handled
// (or TIMEOUT <count> after 300 s).
'use strict';

const path = require('path');
const mod = path.join(__dirname, 'node_modules', 'douyudm', 'src');
const Client = require(path.join(mod, 'client'));
const Packet = require(path.join(mod, 'packet'));
const messageEvent = require(path.join(mod, 'messageEvent'));

const [url, expectedArg, ...rooms] = process.argv.slice(2);
const expected = parseInt(expectedArg, 10);
let count = 0;
let done = false;

const decode = Packet.Decode;
Packet.Decode = (buf, cb) => decode(buf, (m) => {
  cb(m);
  if (m.includes('bts@=') && ++count >= expected) finish('DONE');
});

const finish = (word) => {
  if (done) return;
  done = true;
  process.stdout.write(`${word} ${count} ${Date.now()}\n`, () => process.exit(0));
};

const clients = rooms.map((room) => {
  const c = new Client(room, { debug: false, ignore: [] });
  // messageEvent is one object shared by all clients: replace each handler once.
  for (const type of Object.keys(messageEvent)) c.on(type, () => {});
  c.on('error', () => {});
  return c;
});
for (const c of clients) c.run(url);
process.stdout.write('READY\n');

setTimeout(() => finish('TIMEOUT'), 300000).unref();
process.on('SIGTERM', () => finish('TIMEOUT'));
