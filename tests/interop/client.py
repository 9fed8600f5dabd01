#!/usr/bin/env python3
"""Interop client for Switchyard's integration tests, using autobahn-python on asyncio.

Opens N concurrent WAMP sessions to one router endpoint and, for each: joins the realm, checks
the WELCOME (session id in [1, 2^53], realm, the router announces broker and/or dealer roles),
then leaves with GOODBYE and checks that the router answers GOODBYE `wamp.close.goodbye_and_out`.

With --rpc-pubsub, sessions also work in pairs before leaving: session 2k registers
`com.switchyard.interop.echo.k` and subscribes to `com.switchyard.interop.topic.k`; session 2k+1
calls the procedure (checking the echoed args/kwargs) and publishes an acknowledged event that
session 2k must receive. The two sessions of a pair usually sit on different shards, so this
exercises the cross-shard dealer and broker.

Usage:
    client.py --url URL [--serializer json|msgpack|cbor|ubjson] [--sessions N] [--realm R]
              [--cafile PEM] [--timeout-s S] [--rpc-pubsub]

URL schemes:
    ws://127.0.0.1:PORT/ws, wss://127.0.0.1:PORT/ws   WebSocket (wss needs --cafile)
    rs://127.0.0.1:PORT, rss://127.0.0.1:PORT         RawSocket over TCP, over TLS (--cafile)
    unix:///path/to/socket                            RawSocket over a Unix socket

TLS verifies the router's certificate against --cafile, including the host name (the URL's host,
e.g. the IP address 127.0.0.1, must be in the certificate's subjectAltName).

Exit status: 0 when every session passed; 1 with one line per failure on stderr otherwise
(a bounded run that times out is a failure); 2 on bad usage.
"""

import argparse
import asyncio
import ssl
import sys
from urllib.parse import urlsplit

try:
    from autobahn.asyncio.rawsocket import WampRawSocketClientFactory
    from autobahn.asyncio.wamp import ApplicationSession
    from autobahn.asyncio.websocket import WampWebSocketClientFactory
    from autobahn.wamp.serializer import CBORSerializer, JsonSerializer, MsgPackSerializer
    from autobahn.wamp.types import CallResult, ComponentConfig, PublishOptions
except ImportError as e:  # pragma: no cover - reported to the test harness
    print(f"client.py: cannot import autobahn ({e}); run `bash tests/run.sh`", file=sys.stderr)
    sys.exit(1)

MAX_ID = 2**53
GOODBYE_AND_OUT = "wamp.close.goodbye_and_out"


class CheckedSession(ApplicationSession):
    """Joins, checks the WELCOME, leaves, and records what happened in `self.outcome`."""

    def __init__(self, config, outcome, index, pairs):
        super().__init__(config)
        self.outcome = outcome
        self.index = index
        # Shared by all sessions of the run: pair number -> asyncio.Event / received events.
        self.pairs = pairs

    def fail(self, why):
        if not self.outcome.done():
            self.outcome.set_result(why)

    async def onJoin(self, details):
        self.joined = True
        if not isinstance(details.session, int) or not 1 <= details.session <= MAX_ID:
            self.fail(f"WELCOME session id {details.session!r} is not an integer in [1, 2^53]")
        elif details.realm != self.config.realm:
            self.fail(f"joined realm {details.realm!r}, asked for {self.config.realm!r}")
        else:
            # autobahn keeps the router's WELCOME.Details.roles, parsed, in _router_roles.
            roles = getattr(self, "_router_roles", None) or {}
            if "broker" not in roles and "dealer" not in roles:
                self.fail(f"WELCOME announces no broker/dealer role: {roles!r}")
        if self.pairs is not None and not self.outcome.done():
            try:
                await self.exercise()
            except Exception as e:  # any WAMP error or timeout fails this session
                self.fail(f"rpc/pubsub: {e!r}")
        self.leave("wamp.close.close_realm", "interop test done")

    async def exercise(self):
        pair, role = divmod(self.index, 2)
        if pair not in self.pairs:
            self.pairs[pair] = {"ready": asyncio.Event(), "event": asyncio.get_running_loop().create_future(), "done": asyncio.Event()}
        shared = self.pairs[pair]
        procedure = f"com.switchyard.interop.echo.{pair}"
        topic = f"com.switchyard.interop.topic.{pair}"
        if role == 0:
            def echo(*args, **kwargs):
                return CallResult(*args, **kwargs)

            def on_event(*args, **kwargs):
                if not shared["event"].done():
                    shared["event"].set_result((list(args), kwargs))

            await self.register(echo, procedure)
            await self.subscribe(on_event, topic)
            shared["ready"].set()
            args, kwargs = await asyncio.wait_for(shared["event"], 10)
            if args != [pair, "event"] or kwargs != {"from": self.index + 1}:
                raise AssertionError(f"event payload {args!r} {kwargs!r}")
            # Stay joined (the callee) until the partner is done with its call.
            await asyncio.wait_for(shared["done"].wait(), 10)
        else:
            await asyncio.wait_for(shared["ready"].wait(), 10)
            res = await self.call(procedure, pair, "hello", "\u00e9\u4e2d", n=1.5, b=b"\x00\x01")
            want_args, want_kwargs = [pair, "hello", "\u00e9\u4e2d"], {"n": 1.5, "b": b"\x00\x01"}
            if list(res.results) != want_args or res.kwresults != want_kwargs:
                raise AssertionError(f"call result {res.results!r} {res.kwresults!r}")
            pub = await self.publish(topic, pair, "event", options=PublishOptions(acknowledge=True), **{"from": self.index})
            if not isinstance(pub.id, int) or not 1 <= pub.id <= MAX_ID:
                raise AssertionError(f"PUBLISHED publication id {pub.id!r}")
            shared["done"].set()

    def onLeave(self, details):
        # details.reason: the router's GOODBYE reason, or the ABORT reason if we never joined.
        if not getattr(self, "joined", False):
            self.fail(f"never joined: {details.reason} {details.message or ''}".strip())
        elif details.reason != GOODBYE_AND_OUT:
            self.fail(f"router answered GOODBYE {details.reason!r}, expected {GOODBYE_AND_OUT!r}")
        else:
            self.fail(None)  # success: the first recorded outcome wins
        self.disconnect()

    def onDisconnect(self):
        self.fail("transport closed before the GOODBYE handshake completed")


def serializer_for(name, batched=False):
    """autobahn's serializer; `batched`: WAMP-over-Batched-WebSocket (wamp.2.<name>.batched)."""
    if name == "ubjson":
        # autobahn 26 backs it with `bjdata` (BJData): the router runs --ubjson-dialect bjdata.
        from autobahn.wamp.serializer import UBJSONSerializer
        return UBJSONSerializer(batched=batched)
    return {"msgpack": MsgPackSerializer, "cbor": CBORSerializer}.get(name, JsonSerializer)(batched=batched)


def tls_context(args):
    if not args.cafile:
        raise SystemExit("client.py: TLS URL needs --cafile")
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=args.cafile)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


async def run_session(index, args, pairs):
    loop = asyncio.get_running_loop()
    outcome = loop.create_future()
    config = ComponentConfig(realm=args.realm)

    def make_session():
        return CheckedSession(config, outcome, index, pairs)

    url = urlsplit(args.url)
    scheme = url.scheme
    transport = None
    try:
        if scheme in ("ws", "wss"):
            factory = WampWebSocketClientFactory(
                make_session, url=args.url, serializers=[serializer_for(args.serializer, args.batched)]
            )
            ssl_ctx = tls_context(args) if scheme == "wss" else None
            transport, _ = await loop.create_connection(
                factory, url.hostname, url.port, ssl=ssl_ctx,
                server_hostname=url.hostname if ssl_ctx else None,
            )
        elif scheme in ("rs", "rss"):
            factory = WampRawSocketClientFactory(make_session, serializer=serializer_for(args.serializer))
            ssl_ctx = tls_context(args) if scheme == "rss" else None
            transport, _ = await loop.create_connection(
                factory, url.hostname, url.port, ssl=ssl_ctx,
                server_hostname=url.hostname if ssl_ctx else None,
            )
        elif scheme == "unix":
            factory = WampRawSocketClientFactory(make_session, serializer=serializer_for(args.serializer))
            transport, _ = await loop.create_unix_connection(factory, url.path)
        else:
            raise SystemExit(f"client.py: unsupported URL scheme {scheme!r}")
        failure = await outcome
    except (OSError, ssl.SSLError) as e:
        failure = f"cannot connect: {e!r}"
    finally:
        if transport is not None:
            transport.close()
    return None if failure is None else f"session #{index}: {failure}"


async def run_all(args):
    pairs = {} if args.rpc_pubsub else None
    return await asyncio.gather(*(run_session(i, args, pairs) for i in range(args.sessions)))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--serializer", choices=["json", "msgpack", "cbor", "ubjson"], default="json")
    p.add_argument("--sessions", type=int, default=16)
    p.add_argument("--realm", default="realm1")
    p.add_argument("--cafile")
    p.add_argument("--timeout-s", type=float, default=20.0)
    p.add_argument("--rpc-pubsub", action="store_true", help="pairs register/call and subscribe/publish")
    p.add_argument("--batched", action="store_true", help="WebSocket: the .batched subprotocol")
    args = p.parse_args()
    if args.rpc_pubsub and args.sessions % 2:
        p.error("--rpc-pubsub needs an even --sessions")
    if not 1 <= args.sessions <= 1000:
        p.error("--sessions must be in 1..1000")
    if not 0.1 <= args.timeout_s <= 600:
        p.error("--timeout-s out of range")

    label = f"{args.url} {args.serializer} x{args.sessions}" + (" rpc-pubsub" if args.rpc_pubsub else "")
    try:
        results = asyncio.run(asyncio.wait_for(run_all(args), args.timeout_s))
    except asyncio.TimeoutError:
        print(f"client.py: FAIL: {label}: timed out after {args.timeout_s} s", file=sys.stderr)
        return 1
    failures = [r for r in results if r is not None]
    for f in failures:
        print(f"client.py: FAIL: {label}: {f}", file=sys.stderr)
    if failures:
        return 1
    print(f"client.py: OK: {label}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
