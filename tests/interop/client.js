#!/usr/bin/env node
// Interop client for Switchyard's integration tests, using autobahn-js (Node).
//
// Opens N concurrent WAMP sessions to one router endpoint, and for each: joins the realm, checks
// the WELCOME (session id in [1, 2^53], the router announces broker and/or dealer roles), then
// leaves with GOODBYE and checks that the router answers GOODBYE `wamp.close.goodbye_and_out`
// (autobahn-js reports the reason of the router's GOODBYE to `onleave`).
//
// With --rpc-pubsub, sessions also work in pairs before leaving (as in client.py): session 2k
// registers `com.switchyard.interop.echo.k` and subscribes to `com.switchyard.interop.topic.k`;
// session 2k+1 calls the procedure, checks the echoed args/kwargs, and publishes an acknowledged
// event that session 2k must receive. Pairs usually span shards.
//
// Usage:
//   node client.js --url URL [--serializer json|msgpack] [--sessions N] [--realm R]
//                  [--timeout-ms MS] [--rpc-pubsub]
//
// URL schemes:
//   ws://127.0.0.1:PORT/ws, wss://127.0.0.1:PORT/ws   WebSocket (wss trusts NODE_EXTRA_CA_CERTS)
//   rs://127.0.0.1:PORT                               RawSocket over TCP (JSON only, see below)
//   unix:///path/to/socket                            RawSocket over a Unix socket (JSON only)
//   http://127.0.0.1:PORT/lp                          HTTP long-poll (JSON only; XMLHttpRequest
//                                                     from the xhr2 package)
//
// autobahn-js limits, as of 22.11.1: its RawSocket transport speaks JSON only and has no TLS, and
// its wss transport only honours a custom CA together with a client certificate (then it disables
// verification altogether). So: RawSocket cases are JSON-only here, and wss trusts the test CA
// through Node's own NODE_EXTRA_CA_CERTS, which keeps certificate verification on.
//
// Exit status: 0 when every session passed; 1 with one line per failure on stderr otherwise;
// 2 on bad usage. The whole run is bounded by --timeout-ms.

'use strict';

const MAX_ID = 2 ** 53;

function usage(msg) {
  process.stderr.write(`client.js: ${msg}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { serializer: 'json', sessions: 16, realm: 'realm1', timeoutMs: 20000, url: null };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i];
    if (key === '--rpc-pubsub') {
      opts.rpcPubsub = true;
      continue;
    }
    const val = argv[i + 1];
    if (val === undefined) usage(`missing value for ${key}`);
    i++;
    switch (key) {
      case '--url': opts.url = val; break;
      case '--serializer': opts.serializer = val; break;
      case '--sessions': opts.sessions = parseInt(val, 10); break;
      case '--realm': opts.realm = val; break;
      case '--timeout-ms': opts.timeoutMs = parseInt(val, 10); break;
      default: usage(`unknown argument ${key}`);
    }
  }
  if (!opts.url) usage('--url is required');
  if (!['json', 'msgpack'].includes(opts.serializer)) usage(`bad --serializer ${opts.serializer}`);
  if (!(opts.sessions >= 1 && opts.sessions <= 1000)) usage('--sessions must be in 1..1000');
  if (opts.rpcPubsub && opts.sessions % 2 !== 0) usage('--rpc-pubsub needs an even --sessions');
  if (!(opts.timeoutMs >= 100 && opts.timeoutMs <= 600000)) usage('--timeout-ms out of range');
  return opts;
}

// Connection options for one endpoint URL.
function transportFor(opts, autobahn) {
  const url = new URL(opts.url);
  const serializer = opts.serializer === 'msgpack'
    ? new autobahn.serializer.MsgpackSerializer()
    : new autobahn.serializer.JSONSerializer();
  const protocol = `wamp.2.${opts.serializer}`;
  switch (url.protocol) {
    case 'ws:':
    case 'wss:':
      return { type: 'websocket', url: opts.url, serializers: [serializer], protocols: [protocol] };
    case 'rs:':
      if (opts.serializer !== 'json') usage('autobahn-js RawSocket supports JSON only');
      return { type: 'rawsocket', host: url.hostname, port: parseInt(url.port, 10), protocols: [protocol] };
    case 'unix:':
      if (opts.serializer !== 'json') usage('autobahn-js RawSocket supports JSON only');
      return { type: 'rawsocket', path: url.pathname, protocols: [protocol] };
    case 'http:':
      // HTTP long-poll: autobahn-js speaks wamp.2.json over it, through the browser's
      // XMLHttpRequest, which Node lacks: xhr2 provides it.
      if (opts.serializer !== 'json') usage('autobahn-js long-poll supports JSON only');
      global.XMLHttpRequest = require('xhr2');
      return { type: 'longpoll', url: opts.url, request_timeout: 12000 };
    default:
      return usage(`unsupported URL scheme ${url.protocol} (autobahn-js has no RawSocket-over-TLS)`);
  }
}

function deferred() {
  let resolve;
  const promise = new Promise((r) => { resolve = r; });
  return { promise, resolve };
}

function within(ms, promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Pair number -> coordination between the two sessions of a pair (all in this one process).
const pairs = new Map();

// The register/call/subscribe/publish exchange of one session of a pair; throws on a mismatch.
async function exercise(session, index, autobahn) {
  const pair = Math.floor(index / 2);
  if (!pairs.has(pair)) pairs.set(pair, { ready: deferred(), event: deferred(), done: deferred() });
  const shared = pairs.get(pair);
  const procedure = `com.switchyard.interop.echo.${pair}`;
  const topic = `com.switchyard.interop.topic.${pair}`;
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  if (index % 2 === 0) {
    await session.register(procedure, (args, kwargs) => new autobahn.Result(args, kwargs));
    await session.subscribe(topic, (args, kwargs) => shared.event.resolve({ args, kwargs }));
    shared.ready.resolve();
    const ev = await within(10000, shared.event.promise, 'EVENT');
    if (!same(ev.args, [pair, 'event']) || !same(ev.kwargs, { from: index + 1 })) {
      throw new Error(`event payload ${JSON.stringify(ev)}`);
    }
    await within(10000, shared.done.promise, 'partner');
  } else {
    await within(10000, shared.ready.promise, 'partner registration');
    const wantArgs = [pair, 'hello', '\u00e9\u4e2d'];
    const wantKwargs = { n: 1.5, s: 'x' };
    const res = await within(10000, session.call(procedure, wantArgs, wantKwargs), 'CALL');
    if (!res || !same(res.args, wantArgs) || !same(res.kwargs, wantKwargs)) {
      throw new Error(`call result ${JSON.stringify(res)}`);
    }
    const pub = await within(10000,
      session.publish(topic, [pair, 'event'], { from: index }, { acknowledge: true }), 'PUBLISHED');
    if (!pub || !Number.isInteger(pub.id) || pub.id < 1 || pub.id > MAX_ID) {
      throw new Error(`PUBLISHED publication ${JSON.stringify(pub)}`);
    }
    shared.done.resolve();
  }
}

// One session's life. Resolves with a failure string, or null when everything checked out.
function runSession(index, opts, autobahn) {
  return new Promise((resolve) => {
    let done = false;
    let joined = false;
    const finish = (failure) => {
      if (!done) {
        done = true;
        resolve(failure === null ? null : `session #${index}: ${failure}`);
      }
    };

    const connection = new autobahn.Connection({
      realm: opts.realm,
      transports: [transportFor(opts, autobahn)],
      max_retries: 0,
      retry_if_unreachable: false,
      on_user_error: (e, msg) => finish(`user error: ${msg || ''} ${e}`),
      on_internal_error: (e, msg) => finish(`autobahn internal error: ${msg || ''} ${e}`),
    });

    connection.onopen = (session, details) => {
      joined = true;
      const id = session.id;
      if (!Number.isInteger(id) || id < 1 || id > MAX_ID) {
        finish(`WELCOME session id ${id} is not an integer in [1, 2^53]`);
        connection.close();
        return;
      }
      const roles = details && details.roles;
      if (!roles || typeof roles !== 'object' || (!roles.broker && !roles.dealer)) {
        finish(`WELCOME details carry no broker/dealer roles: ${JSON.stringify(details)}`);
        connection.close();
        return;
      }
      const negotiated = details.transport && details.transport.protocol;
      if (negotiated && negotiated !== `wamp.2.${opts.serializer}`) {
        finish(`negotiated ${negotiated}, asked for wamp.2.${opts.serializer}`);
        connection.close();
        return;
      }
      const leave = () => {
        // Connection.onclose fires once the router's GOODBYE reply arrived and the transport
        // closed.
        session.leave('wamp.close.close_realm', 'interop test done');
      };
      if (opts.rpcPubsub) {
        exercise(session, index, autobahn).then(leave, (e) => {
          finish(`rpc/pubsub: ${e && e.error ? JSON.stringify(e) : e}`);
          leave();
        });
      } else {
        leave();
      }
    };

    connection.onclose = (reason, details) => {
      // details.reason is the reason of the router's GOODBYE (or ABORT) that ended the session.
      const leaveReason = details && details.reason;
      if (!joined) {
        finish(`never joined: connection ${reason}, ${JSON.stringify(details)}`);
      } else if (leaveReason !== 'wamp.close.goodbye_and_out') {
        finish(`expected GOODBYE wamp.close.goodbye_and_out from the router, got ${leaveReason}` +
          ` (connection ${reason})`);
      } else {
        finish(null);
      }
      return true; // never retry
    };

    connection.open();
  });
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  // autobahn-js logs every close with console.warn; keep those lines and show them only when
  // something failed, so a passing run stays quiet and a failing one keeps its context.
  const warnings = [];
  console.warn = (...args) => {
    if (warnings.length < 200) warnings.push(args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' '));
  };
  let autobahn;
  try {
    autobahn = require('autobahn');
  } catch (e) {
    process.stderr.write(`client.js: cannot load autobahn (run \`bash tests/run.sh\`): ${e}\n`);
    process.exit(1);
  }
  if (opts.serializer === 'msgpack' && !autobahn.serializer.MsgpackSerializer) {
    process.stderr.write('client.js: autobahn-js has no msgpack serializer (msgpack5 missing)\n');
    process.exit(1);
  }

  const timer = setTimeout(() => {
    for (const w of warnings) process.stderr.write(`autobahn: ${w}\n`);
    process.stderr.write(`client.js: FAIL: ${opts.url} ${opts.serializer}: ` +
      `timed out after ${opts.timeoutMs} ms\n`);
    process.exit(1);
  }, opts.timeoutMs);

  const sessions = [];
  for (let i = 0; i < opts.sessions; i++) sessions.push(runSession(i, opts, autobahn));
  const failures = (await Promise.all(sessions)).filter((f) => f !== null);
  clearTimeout(timer);

  const label = `${opts.url} ${opts.serializer} x${opts.sessions}${opts.rpcPubsub ? ' rpc-pubsub' : ''}`;
  if (failures.length > 0) {
    for (const w of warnings) process.stderr.write(`autobahn: ${w}\n`);
    for (const f of failures) process.stderr.write(`client.js: FAIL: ${label}: ${f}\n`);
    process.exit(1);
  }
  process.stdout.write(`client.js: OK: ${label}\n`);
  process.exit(0);
}

main().catch((e) => {
  process.stderr.write(`client.js: FAIL: unexpected error: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
