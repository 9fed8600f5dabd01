#!/usr/bin/env node
// Advanced Profile feature checks with autobahn-js (Node) against a running Switchyard:
// publisher and caller identification (disclose_me, which autobahn-python cannot send),
// pattern subscriptions, black/white listing, shared registrations, progressive results,
// call timeout and errors. Sessions rotate over the given URLs/serializers so that, with 2
// shards, peers land on different shards.
//
// Usage: node features.js URL[,serializer] [URL[,serializer] ...]
//   e.g. node features.js ws://127.0.0.1:1/ws,json ws://127.0.0.1:1/ws,msgpack rs://127.0.0.1:2,json
// Prints "OK: ..." and exits 0 when every check passed; exits 1 with the failure otherwise.
// The whole run is bounded (60 s).

'use strict';

const autobahn = require('autobahn');

const endpoints = process.argv.slice(2).map((s) => {
  const [url, ser = 'json'] = s.split(',');
  return { url, ser };
});
if (endpoints.length === 0) {
  process.stderr.write('usage: node features.js URL[,serializer] ...\n');
  process.exit(2);
}

let counter = 0;
const open = [];

function within(ms, p, what) {
  let t;
  return Promise.race([
    p,
    new Promise((_, rej) => { t = setTimeout(() => rej(new Error(`${what}: timed out`)), ms); }),
  ]).finally(() => clearTimeout(t));
}

function connect() {
  const ep = endpoints[counter++ % endpoints.length];
  const u = new URL(ep.url);
  const serializer = ep.ser === 'msgpack'
    ? new autobahn.serializer.MsgpackSerializer() : new autobahn.serializer.JSONSerializer();
  const transport = u.protocol === 'rs:'
    ? { type: 'rawsocket', host: u.hostname, port: parseInt(u.port, 10), protocols: [`wamp.2.${ep.ser}`] }
    : { type: 'websocket', url: ep.url, serializers: [serializer], protocols: [`wamp.2.${ep.ser}`] };
  return within(5000, new Promise((resolve, reject) => {
    const c = new autobahn.Connection({ realm: 'realm1', transports: [transport], max_retries: 0, retry_if_unreachable: false });
    c.onopen = (session) => { open.push(c); resolve(session); };
    c.onclose = (reason) => { reject(new Error(`connection closed: ${reason}`)); };
    c.open();
  }), 'join');
}

async function many(n) {
  const out = [];
  for (let i = 0; i < n; i++) out.push(await connect());
  return out;
}

function assert(cond, what) {
  if (!cond) throw new Error(`assertion failed: ${what}`);
}

async function until(pred, what) {
  for (let i = 0; i < 250; i++) {
    if (pred()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function expectError(p, uri) {
  try {
    await within(5000, p, uri);
  } catch (e) {
    assert(e && e.error === uri, `expected ${uri}, got ${JSON.stringify(e && (e.error || e.message))}`);
    return e;
  }
  throw new Error(`expected ERROR ${uri}, got success`);
}

async function identification() {
  const [sub, pub] = await many(2);
  const got = [];
  await sub.subscribe('com.fjs.id', (args, kwargs, details) => got.push(details));
  await pub.publish('com.fjs.id', [1], {}, { acknowledge: true, disclose_me: true });
  await pub.publish('com.fjs.id', [2], {}, { acknowledge: true });
  await until(() => got.length === 2, 'two events');
  assert(got[0].publisher === pub.id, `publisher disclosed: ${JSON.stringify(got[0])}`);
  assert(got[1].publisher === undefined, 'publisher not disclosed without disclose_me');
  const [callee, caller] = await many(2);
  await callee.register('com.fjs.who', (args, kwargs, details) => (details.caller === undefined ? null : details.caller));
  const r1 = await caller.call('com.fjs.who', [], {}, { disclose_me: true });
  const r2 = await caller.call('com.fjs.who', [], {});
  assert(r1 === caller.id, `caller disclosed: ${JSON.stringify(r1)}`);
  assert(r2 === null, `caller not disclosed: ${JSON.stringify(r2)}`);
}

async function patternsAndLists() {
  const subs = await many(3);
  const pub = await connect();
  const topics = [];
  await subs[0].subscribe('com.fjs.pre', (a, k, d) => topics.push(d.topic), { match: 'prefix' });
  const counts = [0, 0, 0];
  for (let i = 0; i < 3; i++) await subs[i].subscribe('com.fjs.bw', () => { counts[i]++; });
  await pub.publish('com.fjs.pre.deep.x', [], {}, { acknowledge: true });
  await pub.publish('com.fjs.bw', [], {}, { acknowledge: true, eligible: [subs[1].id] });
  await pub.publish('com.fjs.bw', [], {}, { acknowledge: true, exclude: [subs[1].id] });
  await until(() => topics.length === 1 && counts[0] + counts[1] + counts[2] === 3, 'pattern and listed events');
  await new Promise((r) => setTimeout(r, 100));
  assert(topics[0] === 'com.fjs.pre.deep.x', `details.topic ${topics[0]}`);
  assert(JSON.stringify(counts) === '[1,1,1]', `black/white listing ${JSON.stringify(counts)}`);
}

async function rpc() {
  const callees = await many(2);
  const caller = await connect();
  const hits = [0, 0];
  for (let i = 0; i < 2; i++) {
    await callees[i].register('com.fjs.rr', () => { hits[i]++; return i; }, { invoke: 'roundrobin' });
  }
  for (let i = 0; i < 8; i++) await caller.call('com.fjs.rr');
  assert(hits[0] === 4 && hits[1] === 4, `round robin ${JSON.stringify(hits)}`);
  // autobahn-js 22 callees do not announce call_canceling; by default the dealer still offers
  // them progress (`router.strict_progressive_results` off; progress.js covers both modes).
  await callees[0].register('com.fjs.prog', (args, kwargs, details) => {
    if (details.progress) {
      for (let i = 0; i < 3; i++) details.progress([i]);
      return 'offered';
    }
    return 'done';
  });
  const progress = [];
  const res = await caller.call('com.fjs.prog', [], {}, { receive_progress: true }).then(
    (r) => r, null, (p) => progress.push(p.args ? p.args[0] : p));
  assert(res === 'offered', `progressive final ${JSON.stringify(res)}`);
  assert(JSON.stringify(progress) === '[0,1,2]', `progressive results ${JSON.stringify(progress)}`);
  await callees[1].register('com.fjs.slow', () => new Promise((r) => setTimeout(() => r('late'), 2000)));
  await expectError(caller.call('com.fjs.slow', [], {}, { timeout: 200 }), 'wamp.error.timeout');
  await expectError(caller.call('com.fjs.none'), 'wamp.error.no_such_procedure');
  await expectError(caller.register('com.fjs.rr', () => 0, { invoke: 'first' }),
    'wamp.error.procedure_exists_with_different_invocation_policy');
}

async function main() {
  for (const [name, check] of [['identification', identification], ['patternsAndLists', patternsAndLists], ['rpc', rpc]]) {
    await within(20000, check(), name);
    process.stdout.write(`ok ${name}\n`);
  }
  process.stdout.write('OK: all autobahn-js feature checks passed\n');
}

const hard = setTimeout(() => { process.stderr.write('features.js: overall timeout\n'); process.exit(1); }, 60000);
main().then(() => {
  clearTimeout(hard);
  for (const c of open) { try { c.close(); } catch (e) { /* closing */ } }
  setTimeout(() => process.exit(0), 200);
}, (e) => {
  process.stderr.write(`FAILED: ${e && e.stack ? e.stack : JSON.stringify(e)}\n`);
  process.exit(1);
});
