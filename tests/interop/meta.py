"""WAMP Meta API and testament checks with autobahn-python against a running Switchyard.

Usage: python3 meta.py --unix SOCKET_PATH

Sessions connect over the router's Unix socket, which deals connections round-robin to the
shards, so consecutive sessions sit on different shards. Exits non-zero on the first failure
and prints "OK: meta" on success; every wait is bounded.
"""
import argparse
import asyncio
import sys

from autobahn.asyncio.rawsocket import WampRawSocketClientFactory
from autobahn.asyncio.wamp import ApplicationSession
from autobahn.wamp import types
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.serializer import JsonSerializer, MsgPackSerializer
from autobahn.wamp.types import RegisterOptions, SubscribeOptions

T = 5.0  # seconds, bound for every wait
_counter = [0]


async def connect(path):
    i = _counter[0]
    _counter[0] += 1
    loop = asyncio.get_running_loop()
    joined = loop.create_future()
    left = loop.create_future()

    class S(ApplicationSession):
        async def onJoin(self, details):
            self.details = details
            self.left = left
            if not joined.done():
                joined.set_result(self)

        def onLeave(self, details):
            if not left.done():
                left.set_result(details)
            super().onLeave(details)

    cfg = types.ComponentConfig(realm="realm1")
    ser = [JsonSerializer(), MsgPackSerializer()][i % 2]
    f = WampRawSocketClientFactory(lambda: S(cfg), serializer=ser)
    await loop.create_unix_connection(f, path)
    return await asyncio.wait_for(joined, T)


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)


async def expect_error(coro, uri):
    try:
        await coro
    except ApplicationError as e:
        check(e.error == uri, f"expected {uri}, got {e.error}")
        return
    check(False, f"expected {uri}, got a result")


async def main(path):
    a = await connect(path)
    got = {}
    arrived = asyncio.Event()

    kw_got = []

    def on(name):
        def handler(*args, **kwargs):
            if name == "com.example.testament":
                kw_got.append(kwargs)
            got.setdefault(name, []).append(list(args))
            arrived.set()
        return handler

    async def wait_for(name, pred):
        for _ in range(int(T / 0.02)):
            for args in got.get(name, []):
                if pred(args):
                    return args
            await asyncio.sleep(0.02)
        check(False, f"no {name} event matching")

    for topic in ["wamp.session.on_join", "wamp.session.on_leave",
                  "wamp.subscription.on_subscribe", "wamp.registration.on_register",
                  "com.example.testament"]:
        await a.subscribe(on(topic), topic)

    b = await connect(path)
    c = await connect(path)
    bid, cid = b.details.session, c.details.session
    await wait_for("wamp.session.on_join", lambda x: x[0]["session"] == bid)
    await wait_for("wamp.session.on_join", lambda x: x[0]["session"] == cid)

    check(await a.call("wamp.session.count") == 3, "count")
    ids = sorted(await a.call("wamp.session.list"))
    check(ids == sorted([a.details.session, bid, cid]), f"list {ids}")
    info = await a.call("wamp.session.get", cid)
    check(info["session"] == cid and info["authrole"] == "anonymous", f"get {info}")
    await expect_error(a.call("wamp.session.get", 1), "wamp.error.no_such_session")

    sub = await b.subscribe(lambda *a: None, "com.example.t", options=SubscribeOptions(match="prefix"))
    await c.subscribe(lambda *a: None, "com.example.t", options=SubscribeOptions(match="prefix"))
    await wait_for("wamp.subscription.on_subscribe", lambda x: x == [cid, sub.id])
    check(await a.call("wamp.subscription.lookup", "com.example.t", {"match": "prefix"}) == sub.id,
          "subscription.lookup")
    check(await a.call("wamp.subscription.match", "com.example.t.x") == [sub.id], "subscription.match")
    subs = sorted(await a.call("wamp.subscription.list_subscribers", sub.id))
    check(subs == sorted([bid, cid]), f"list_subscribers {subs}")
    check(await a.call("wamp.subscription.count_subscribers", sub.id) == 2, "count_subscribers")
    details = await a.call("wamp.subscription.get", sub.id)
    check(details["uri"] == "com.example.t" and details["match"] == "prefix", f"get {details}")

    reg = await c.register(lambda: 1, "com.example.p", options=RegisterOptions(invoke="roundrobin"))
    await wait_for("wamp.registration.on_register", lambda x: x == [cid, reg.id])
    check(await a.call("wamp.registration.match", "com.example.p") == reg.id, "registration.match")
    check(await a.call("wamp.registration.list_callees", reg.id) == [cid], "list_callees")
    details = await a.call("wamp.registration.get", reg.id)
    check(details["invoke"] == "roundrobin", f"registration.get {details}")
    await expect_error(a.call("wamp.registration.get", 1), "wamp.error.no_such_registration")

    await b.call("wamp.session.add_testament", "com.example.testament", ["gone", bid], {"k": 1})
    await b.call("wamp.session.add_testament", "com.example.testament", ["detached", bid], {},
                 scope="detached")
    await a.call("wamp.session.kill", bid, reason="com.example.kicked", message="bye")
    left = await asyncio.wait_for(b.left, T)
    check(left.reason == "com.example.kicked", f"kill reason {left.reason}")
    await wait_for("wamp.session.on_leave", lambda x: x[0] == bid and len(x) == 3)
    await wait_for("com.example.testament", lambda x: x == ["gone", bid])
    events = got["com.example.testament"]
    check(events == [["detached", bid], ["gone", bid]], f"testaments in order: {events}")
    check(kw_got == [{}, {"k": 1}], f"testament kwargs: {kw_got}")

    n = await a.call("wamp.session.kill_all")
    check(n == 1, f"kill_all {n}")
    await asyncio.wait_for(c.left, T)
    check(await a.call("wamp.session.count") == 1, "count after kill_all")
    a.leave()
    print("OK: meta")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--unix", required=True)
    args = p.parse_args()
    asyncio.run(asyncio.wait_for(main(args.unix), 30))
