#!/usr/bin/env node
// Interop check with wampy.js 8 (npm `wampy`), the other widely used JavaScript WAMP client,
// over WebSocket: a CBOR session (callee + subscriber) and a second session in another
// serializer (caller + publisher, `--other cbor|msgpack|json`). The caller calls the callee's
// echo procedure and the publisher publishes an acknowledged event; both payloads (binary,
// unicode, the largest exact integer, negative floats, nested maps) must come back unchanged.
//
// Usage: node wampy.js --url ws://127.0.0.1:PORT/ws [--other msgpack] [--timeout-ms MS]
// Exit status 0 on success; 1 with the failure on stderr.

'use strict';

const { Wampy } = require('wampy');
const { CborSerializer } = require('wampy/CborSerializer.js');
const { MsgpackSerializer } = require('wampy/MsgpackSerializer.js');
const { JsonSerializer } = require('wampy/JsonSerializer.js');
const WebSocket = require('ws');

function parseArgs(argv) {
  const opts = { url: null, other: 'msgpack', timeoutMs: 20000 };
  for (let i = 0; i < argv.length; i += 2) {
    const [key, val] = [argv[i], argv[i + 1]];
    if (val === undefined) fail(`missing value for ${key}`, 2);
    if (key === '--url') opts.url = val;
    else if (key === '--other') opts.other = val;
    else if (key === '--timeout-ms') opts.timeoutMs = parseInt(val, 10);
    else fail(`unknown argument ${key}`, 2);
  }
  if (!opts.url) fail('--url is required', 2);
  return opts;
}

function fail(msg, code = 1) {
  process.stderr.write(`wampy.js: ${msg}\n`);
  process.exit(code);
}

function serializer(name) {
  switch (name) {
    case 'cbor': return new CborSerializer();
    case 'msgpack': return new MsgpackSerializer();
    case 'json': return new JsonSerializer();
    default: return fail(`unknown serializer ${name}`, 2);
  }
}

// Binary values compare by their bytes whatever type a decoder gave them.
function normalize(v) {
  if (v instanceof Uint8Array) return { bin: Buffer.from(v).toString('hex') };
  if (typeof v === 'bigint') return { int: v.toString() };
  if (Array.isArray(v)) return v.map(normalize);
  if (v && typeof v === 'object') {
    const out = {};
    for (const k of Object.keys(v).sort()) out[k] = normalize(v[k]);
    return out;
  }
  return v;
}

function same(a, b) {
  return JSON.stringify(normalize(a)) === JSON.stringify(normalize(b));
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const timer = setTimeout(() => fail(`no result within ${opts.timeoutMs} ms`), opts.timeoutMs);
  // JSON cannot carry binary in wampy (no \u0000 base64 convention), so it gets none.
  const bin = opts.other === 'json' ? 'no binary' : new Uint8Array([0, 1, 0xfe, 0xff]);
  const args = [bin, 'unicode: \u00e9 \u4e2d \u{1F680}', Number.MAX_SAFE_INTEGER, -2.5, { deep: { list: [null, true] } }];
  const kwargs = { n: -1, s: 'x' };

  const connect = async (ser) => {
    const w = new Wampy(opts.url, {
      realm: 'realm1', ws: WebSocket, serializer: serializer(ser), autoReconnect: false,
    });
    await w.connect();
    return w;
  };
  const callee = await connect('cbor');
  const other = await connect(opts.other);

  let gotEvent;
  const event = new Promise((resolve) => { gotEvent = resolve; });
  await callee.subscribe('com.switchyard.wampy.topic', (e) => gotEvent(e));
  await callee.register('com.switchyard.wampy.echo', (inv) => ({ argsList: inv.argsList, argsDict: inv.argsDict }));

  const res = await other.call('com.switchyard.wampy.echo', { argsList: args, argsDict: kwargs });
  if (!same(res.argsList, args) || !same(res.argsDict, kwargs)) {
    fail(`call result ${JSON.stringify(normalize(res.argsList))} ${JSON.stringify(res.argsDict)}`);
  }
  await other.publish('com.switchyard.wampy.topic', { argsList: args, argsDict: kwargs }, { acknowledge: true, exclude_me: false });
  const ev = await event;
  if (!same(ev.argsList, args) || !same(ev.argsDict, kwargs)) {
    fail(`event payload ${JSON.stringify(normalize(ev.argsList))} ${JSON.stringify(ev.argsDict)}`);
  }
  await other.disconnect();
  await callee.disconnect();
  clearTimeout(timer);
  process.stdout.write(`OK: wampy.js cbor + ${opts.other}: call and event payloads intact\n`);
}

main().catch((e) => fail(e && e.stack ? e.stack : JSON.stringify(e)));
