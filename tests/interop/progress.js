#!/usr/bin/env node
// Progressive call results with an autobahn-js 22.11 callee (which announces
// progressive_call_results but not call_canceling) and an autobahn-js caller.
//
// Usage: node progress.js MODE URL[,serializer] [URL[,serializer] ...]
//   MODE `default`: the router forwards receive_progress, so the caller gets three progressive
//   results before the final one; a caller that leaves mid-call costs the callee nothing (its
//   further results are dropped, it is not interrupted and stays connected).
//   MODE `strict` (router run with --strict-progressive-results): the callee is not offered
//   progress, the caller gets only the final result.
// Prints "OK: ..." and exits 0 when every check passed; exits 1 with the failure otherwise.
// The whole run is bounded (30 s).

'use strict';

const autobahn = require('autobahn');

const mode = process.argv[2];
const endpoints = process.argv.slice(3).map((s) => {
  const [url, ser = 'json'] = s.split(',');
  return { url, ser };
});
if (!['default', 'strict'].includes(mode) || endpoints.length === 0) {
  process.stderr.write('usage: node progress.js default|strict URL[,serializer] ...\n');
  process.exit(2);
}

let counter = 0;

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
    c.onopen = (session) => { session.connection = c; resolve(session); };
    c.onclose = (reason) => { reject(new Error(`connection closed: ${reason}`)); return true; };
    c.open();
  }), 'join');
}

function assert(cond, what) {
  if (!cond) throw new Error(`assertion failed: ${what}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function main() {
  const callee = await connect();
  const caller = await connect();
  let calleeClosed = false;
  callee.connection.onclose = () => { calleeClosed = true; return true; };

  await callee.register('com.prog.count', (args, kwargs, details) => {
    if (details.progress) {
      for (let i = 0; i < 3; i++) details.progress([i]);
      return 'offered';
    }
    return 'not offered';
  });
  const progress = [];
  const res = await within(5000, caller.call('com.prog.count', [], {}, { receive_progress: true }).then(
    (r) => r, null, (p) => progress.push(p.args ? p.args[0] : p)), 'progressive call');
  if (mode === 'default') {
    assert(res === 'offered', `final result ${JSON.stringify(res)}`);
    assert(JSON.stringify(progress) === '[0,1,2]', `progressive results ${JSON.stringify(progress)}`);
  } else {
    assert(res === 'not offered', `final result ${JSON.stringify(res)}`);
    assert(progress.length === 0, `progressive results ${JSON.stringify(progress)}`);
  }

  // The caller leaves mid-call: the callee keeps sending, then finishes; nothing breaks.
  let sent = 0;
  let finished = false;
  await callee.register('com.prog.slow', async (args, kwargs, details) => {
    for (let i = 0; i < 5; i++) {
      if (details.progress) details.progress([i]);
      sent++;
      await sleep(50);
    }
    finished = true;
    return 'slow done';
  });
  const leaver = await connect();
  const first = new Promise((resolve) => {
    leaver.call('com.prog.slow', [], {}, { receive_progress: true }).then(() => {}, () => {}, resolve);
    if (mode === 'strict') setTimeout(resolve, 100);
  });
  await within(5000, first, 'first progressive result');
  leaver.connection.close();
  await within(5000, (async () => { while (!finished) await sleep(20); })(), 'callee finishing');
  await sleep(200);
  assert(!calleeClosed, 'the callee is still connected');
  assert(sent === 5, `callee ran to the end (${sent})`);
  // The callee still serves calls.
  const again = await within(5000, caller.call('com.prog.count'), 'call after the caller left');
  assert(again === 'not offered', `plain call ${JSON.stringify(again)}`);

  process.stdout.write(`OK: progressive results (${mode}) with an autobahn-js callee and caller\n`);
  process.exit(0);
}

setTimeout(() => { process.stderr.write('progress.js: timed out\n'); process.exit(1); }, 30000);
main().catch((e) => { process.stderr.write(`${e.stack || e}\n`); process.exit(1); });
