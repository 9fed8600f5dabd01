#!/usr/bin/env python3
"""The autobahn-python peer of tests/client_interop.rs: the other side of the Rust client.

Two modes, each against a running Switchyard on realm `realm1`:

callee
    Subscribes `com.interop.py.in` and re-publishes every event's args/kwargs to
    `com.interop.py.out` (acknowledged); registers
      com.interop.py.add       (a, b) -> a + b, kwargs echoed back
      com.interop.py.progress  (n) -> progressive results 0 .. n-1, then "done"
      com.interop.py.fail      () -> ApplicationError com.interop.py.oops ("bad", 7) {why: "asked to"}
      com.interop.py.stop      () -> "bye"; then leaves and exits
    `com.interop.py.stop` is registered last, so once it answers everything above is in place.
    Exits 0 with an `OK:` line after `stop` was called (and every other procedure was called
    at least once, and at least one event was re-published); non-zero on timeout.

caller
    Expects the Rust client to have registered and subscribed (tests/client_interop.rs):
      com.interop.rs.add       (a, b) -> a + b, kwargs echoed back
      com.interop.rs.progress  (n) -> progressive results 0 .. n-1, then "done"
      com.interop.rs.fail      () -> ERROR com.interop.rs.oops ("bad", 7) {why: "asked to"}
      topic com.interop.rs.in  re-published by the Rust client to com.interop.rs.out
    Calls each, checks the answers, publishes to `com.interop.rs.in` and waits for the echo on
    `com.interop.rs.out`, then calls `com.interop.rs.done`. Exits 0 with an `OK:` line when
    every check passed; 1 naming the first failure otherwise.

Usage:
    client_peer.py MODE --url URL [--serializer json|msgpack] [--timeout-s S]

URL schemes: ws://HOST:PORT/PATH, rs://HOST:PORT.
"""

import argparse
import asyncio
import sys
from urllib.parse import urlsplit

try:
    from autobahn.asyncio.rawsocket import WampRawSocketClientFactory
    from autobahn.asyncio.wamp import ApplicationSession
    from autobahn.asyncio.websocket import WampWebSocketClientFactory
    from autobahn.wamp.exception import ApplicationError
    from autobahn.wamp.serializer import JsonSerializer, MsgPackSerializer
    from autobahn.wamp.types import (CallOptions, CallResult, ComponentConfig,
                                     PublishOptions, RegisterOptions)
except ImportError as e:  # pragma: no cover - reported to the test harness
    print(f"client_peer.py: cannot import autobahn ({e}); run `bash tests/run.sh`",
          file=sys.stderr)
    sys.exit(1)


async def connect(url, serializer, timeout):
    loop = asyncio.get_running_loop()
    joined = loop.create_future()

    class S(ApplicationSession):
        async def onJoin(self, details):
            if not joined.done():
                joined.set_result(self)

        def onLeave(self, details):
            if not joined.done():
                joined.set_exception(RuntimeError(f"left: {details.reason}"))
            self.disconnect()

    cfg = ComponentConfig(realm="realm1")
    ser = {"json": JsonSerializer, "msgpack": MsgPackSerializer}[serializer]()
    u = urlsplit(url)
    if u.scheme == "ws":
        f = WampWebSocketClientFactory(lambda: S(cfg), url=url, serializers=[ser])
    elif u.scheme == "rs":
        f = WampRawSocketClientFactory(lambda: S(cfg), serializer=ser)
    else:
        raise SystemExit(f"client_peer.py: unsupported URL {url}")
    await asyncio.wait_for(loop.create_connection(f, u.hostname, u.port), timeout)
    return await asyncio.wait_for(joined, timeout)


async def callee(session, timeout):
    loop = asyncio.get_running_loop()
    stopped = loop.create_future()
    called = set()
    republished = []

    async def on_in(*args, **kwargs):
        await session.publish("com.interop.py.out", *args,
                              options=PublishOptions(acknowledge=True), **kwargs)
        republished.append(args)

    await session.subscribe(on_in, "com.interop.py.in")

    def add(a, b, **kwargs):
        called.add("add")
        return CallResult(a + b, **kwargs)

    async def progress(n, details=None):
        called.add("progress")
        if not (details and details.progress):
            raise ApplicationError("com.interop.py.no_progress_asked")
        for i in range(n):
            details.progress(i)
            await asyncio.sleep(0.01)
        return "done"

    def fail():
        called.add("fail")
        raise ApplicationError("com.interop.py.oops", "bad", 7, why="asked to")

    def stop():
        if not stopped.done():
            loop.call_later(0.1, stopped.set_result, True)
        return "bye"

    await session.register(add, "com.interop.py.add")
    await session.register(progress, "com.interop.py.progress",
                           options=RegisterOptions(details_arg="details"))
    await session.register(fail, "com.interop.py.fail")
    await session.register(stop, "com.interop.py.stop")
    print("registered", flush=True)
    await asyncio.wait_for(stopped, timeout)
    missing = {"add", "progress", "fail"} - called
    if missing:
        raise AssertionError(f"never called: {sorted(missing)}")
    if not republished:
        raise AssertionError("no event was re-published")
    session.leave()
    return f"callee served {sorted(called)} and re-published {len(republished)} event(s)"


async def caller(session, timeout):
    async def call(*a, **kw):
        return await asyncio.wait_for(session.call(*a, **kw), timeout)

    r = await call("com.interop.rs.add", 2, 3, k="v")
    # A result with kwargs comes back as CallResult; without, as the bare value.
    if isinstance(r, CallResult):
        assert list(r.results) == [5] and r.kwresults == {"k": "v"}, (r.results, r.kwresults)
    else:
        raise AssertionError(f"add: expected results and kwresults, got {r!r}")

    r = await call("com.interop.rs.add", 40, 2)
    assert r == 42, r

    got = []
    r = await call("com.interop.rs.progress", 3,
                   options=CallOptions(on_progress=lambda i: got.append(i)))
    assert r == "done" and got == [0, 1, 2], (r, got)

    try:
        await call("com.interop.rs.fail")
        raise AssertionError("fail: returned instead of raising")
    except ApplicationError as e:
        assert e.error == "com.interop.rs.oops", e.error
        assert list(e.args) == ["bad", 7], e.args
        assert e.kwargs == {"why": "asked to"}, e.kwargs

    try:
        await call("com.interop.rs.nope")
        raise AssertionError("unknown procedure: returned instead of raising")
    except ApplicationError as e:
        assert e.error == "wamp.error.no_such_procedure", e.error

    loop = asyncio.get_running_loop()
    echoed = loop.create_future()

    def on_out(*args, **kwargs):
        if not echoed.done():
            echoed.set_result((list(args), kwargs))

    await session.subscribe(on_out, "com.interop.rs.out")
    await session.publish("com.interop.rs.in", "ping", 1, n=2,
                          options=PublishOptions(acknowledge=True))
    args, kwargs = await asyncio.wait_for(echoed, timeout)
    assert args == ["ping", 1] and kwargs == {"n": 2}, (args, kwargs)

    r = await call("com.interop.rs.done")
    assert r == "bye", r
    session.leave()
    return "caller checked add, progress, fail, no_such_procedure and the pubsub echo"


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["callee", "caller"])
    p.add_argument("--url", required=True)
    p.add_argument("--serializer", choices=["json", "msgpack"], default="json")
    p.add_argument("--timeout-s", type=float, default=10.0)
    a = p.parse_args()
    session = await connect(a.url, a.serializer, a.timeout_s)
    if a.mode == "callee":
        # The callee waits for the Rust side, which may take a while to get going.
        summary = await callee(session, a.timeout_s * 6)
    else:
        summary = await caller(session, a.timeout_s)
    await asyncio.sleep(0.05)
    print(f"OK: {a.mode} {a.url} {a.serializer}: {summary}", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except (AssertionError, ApplicationError, asyncio.TimeoutError, RuntimeError, OSError) as e:
        print(f"client_peer.py: FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
