"""Advanced Profile feature checks with autobahn-python against a running Switchyard.

Usage: python3 features.py WS_URL RS_URL

Each check opens its own sessions (several per role, alternating WebSocket/RawSocket and
JSON/MessagePack, so that with 2 shards publishers, subscribers, callers and callees land on
different shards) and asserts what the WAMP specification says. Exits non-zero on the first
failure; every wait is bounded.
"""
import asyncio
import sys

from autobahn.asyncio.rawsocket import WampRawSocketClientFactory
from autobahn.asyncio.wamp import ApplicationSession
from autobahn.asyncio.websocket import WampWebSocketClientFactory
from autobahn.wamp import types
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.serializer import JsonSerializer, MsgPackSerializer
from autobahn.wamp.types import (CallOptions, PublishOptions, RegisterOptions,
                                 SubscribeOptions)

WS, RS = sys.argv[1], sys.argv[2]
T = 5.0  # seconds, bound for every wait
_counter = [0]


async def connect():
    """A joined session; transports and serializers rotate with each call."""
    i = _counter[0]
    _counter[0] += 1
    loop = asyncio.get_running_loop()
    joined = loop.create_future()

    class S(ApplicationSession):
        async def onJoin(self, details):
            self.details = details
            if not joined.done():
                joined.set_result(self)

    cfg = types.ComponentConfig(realm="realm1")
    ser = [JsonSerializer(), MsgPackSerializer()][i % 2]
    if (i // 2) % 2 == 0:
        f = WampWebSocketClientFactory(lambda: S(cfg), url=WS, serializers=[ser])
        host, port = WS.split("//")[1].split("/")[0].split(":")
    else:
        f = WampRawSocketClientFactory(lambda: S(cfg), serializer=ser)
        host, port = RS.split("//")[1].split(":")
    await loop.create_connection(f, host, int(port))
    return await asyncio.wait_for(joined, T)


async def many(n):
    return [await connect() for _ in range(n)]


async def until(pred, what):
    for _ in range(int(T / 0.02)):
        if pred():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


async def expect_error(coro, uri):
    try:
        await asyncio.wait_for(coro, T)
    except ApplicationError as e:
        assert e.error == uri, f"expected {uri}, got {e.error}"
        return e
    raise AssertionError(f"expected ERROR {uri}, got success")


async def check_pubsub_basic():
    subs = await many(4)
    pubs = await many(2)
    got = {i: [] for i in range(len(subs))}
    for i, s in enumerate(subs):
        await s.subscribe(lambda *a, i=i, **k: got[i].append(a), "com.f.basic")
    for p in pubs:
        for n in range(20):
            pub = await p.publish("com.f.basic", n, options=PublishOptions(acknowledge=True))
            assert pub.id > 0
    await until(lambda: all(len(v) == 40 for v in got.values()), "every event on every shard")
    for i in got:
        # publish order per publisher
        a = [x[0] for x in got[i]]
        assert sorted(a[:20]) == a[:20] or len(set(a)) == 20, a
    # exclude_me default true / false
    mine = []
    await pubs[0].subscribe(lambda *a: mine.append(a), "com.f.basic")
    await pubs[0].publish("com.f.basic", "x", options=PublishOptions(acknowledge=True))
    await pubs[0].publish("com.f.basic", "y", options=PublishOptions(acknowledge=True, exclude_me=False))
    await until(lambda: len(mine) >= 1, "exclude_me=false event")
    await asyncio.sleep(0.1)
    assert mine == [("y",)], mine
    for s in subs + pubs:
        s.leave()


async def check_patterns_and_identification():
    s, p = await many(2)
    pre, wild = [], []
    await s.subscribe(lambda *a, details=None: pre.append(details.topic), "com.f.pat",
                      options=SubscribeOptions(match="prefix", details=True))
    await s.subscribe(lambda *a, details=None: wild.append((details.topic, details.publisher)),
                      "com.f..leaf", options=SubscribeOptions(match="wildcard", details=True))
    await p.publish("com.f.pat.one", options=PublishOptions(acknowledge=True))
    # autobahn-python cannot send disclose_me: without it no publisher is revealed
    await p.publish("com.f.x.leaf", options=PublishOptions(acknowledge=True))
    await until(lambda: pre and wild, "pattern events")
    assert pre == ["com.f.pat.one"], pre
    assert wild == [("com.f.x.leaf", None)], wild
    # one subscription id shared by all subscribers of a topic, across shards
    others = await many(3)
    ids = {(await o.subscribe(lambda *a: None, "com.f.shared")).id for o in others + [s]}
    assert len(ids) == 1, ids
    await expect_error(s.subscribe(lambda: None, "com..bad"), "wamp.error.invalid_uri")
    for x in [s, p] + others:
        x.leave()


async def check_black_white_listing():
    subs = await many(4)
    p = await connect()
    got = {i: 0 for i in range(4)}
    for i, s in enumerate(subs):
        await s.subscribe(lambda *a, i=i: got.__setitem__(i, got[i] + 1), "com.f.bw")
    ids = [s._session_id for s in subs]
    await p.publish("com.f.bw", options=PublishOptions(acknowledge=True, eligible=[ids[0], ids[2]]))
    await p.publish("com.f.bw", options=PublishOptions(acknowledge=True, exclude=[ids[0]]))
    authid = subs[3]._authid
    await p.publish("com.f.bw", options=PublishOptions(acknowledge=True, exclude_authid=[authid]))
    await p.publish("com.f.bw", options=PublishOptions(acknowledge=True, eligible_authrole=["nobody"]))
    await until(lambda: sum(got.values()) == 2 + 3 + 3, "black/white-listed events")
    await asyncio.sleep(0.1)
    assert got == {0: 2, 1: 2, 2: 3, 3: 1}, got
    for x in subs + [p]:
        x.leave()


async def check_event_retention():
    """retain / get_retained: the most recent retained event, once, after SUBSCRIBED, marked
    retained, only to eligible subscribers, after its publisher left."""
    p = await connect()
    for n in (1, 2):
        await p.publish("com.f.ret", n, options=PublishOptions(acknowledge=True, retain=True))
    await p.publish("com.f.ret.admins", 9,
                    options=PublishOptions(acknowledge=True, retain=True,
                                           eligible_authrole=["admin"]))
    p.leave()
    subs = await many(4)  # rotating transports: sessions on both shards
    got = {i: [] for i in range(4)}
    opts = SubscribeOptions(get_retained=True, details=True)
    for i, s in enumerate(subs):
        await s.subscribe(lambda n, details=None, i=i: got[i].append((n, details.retained)),
                          "com.f.ret", options=opts)
    admins = []
    await subs[0].subscribe(lambda n: admins.append(n), "com.f.ret.admins", options=opts)
    plain = await connect()
    unasked = []
    await plain.subscribe(lambda n: unasked.append(n), "com.f.ret")
    await until(lambda: all(len(v) == 1 for v in got.values()), "retained events")
    q = await connect()
    await q.publish("com.f.ret", 0, options=PublishOptions(acknowledge=True))
    await until(lambda: all(len(v) == 2 for v in got.values()) and unasked == [0],
                "live events")
    await asyncio.sleep(0.1)
    for v in got.values():
        assert v == [(2, True), (0, None)], got
    assert admins == [], admins  # anonymous sessions were not eligible
    for x in subs + [plain, q]:
        x.leave()


async def check_event_history():
    """wamp.subscription.get_events (the fixture's config keeps the prefix subscription
    com.f.hist): each filter the spec lists, session-ID lists never stored, authrole lists
    applied to the reader, an error for a subscription without history."""
    pubs = await many(2)  # one per shard
    me = pubs[0]._session_id
    ids = []
    for n in range(1, 7):
        p = pubs[n % 2]
        topic = "com.f.hist.even" if n % 2 == 0 else "com.f.hist.odd"
        pub = await p.publish(topic, n, options=PublishOptions(acknowledge=True))
        ids.append(pub.id)
    await pubs[0].publish("com.f.hist.odd", 99, options=PublishOptions(acknowledge=True, exclude=[me]))
    await pubs[1].publish("com.f.hist.odd", 98,
                          options=PublishOptions(acknowledge=True, eligible_authrole=["nobody"]))
    reader = await connect()
    sub = await reader.subscribe(lambda *a: None, "com.f.hist",
                                 options=SubscribeOptions(match="prefix"))
    events = await reader.call("wamp.subscription.get_events", sub.id)
    assert [e["args"][0] for e in events] == [1, 2, 3, 4, 5, 6], events
    assert [e["publication"] for e in events] == ids, events
    assert all(e["subscription"] == sub.id for e in events), events
    assert events[1]["details"]["topic"] == "com.f.hist.even", events[1]
    assert all("timestamp" in e for e in events), events
    latest = await reader.call("wamp.subscription.get_events", sub.id, reverse=True, limit=2)
    assert [e["args"][0] for e in latest] == [6, 5], latest
    page = await reader.call("wamp.subscription.get_events", sub.id, reverse=True, limit=2,
                             before_publication=latest[-1]["publication"])
    assert [e["args"][0] for e in page] == [4, 3], page
    evens = await reader.call("wamp.subscription.get_events", sub.id, topic="com.f.hist.even",
                              after_publication=ids[1])
    assert [e["args"][0] for e in evens] == [4, 6], evens
    since = await reader.call("wamp.subscription.get_events", sub.id,
                              from_time=events[4]["timestamp"])
    assert [e["args"][0] for e in since][:2] == [5, 6], since
    await expect_error(reader.call("wamp.subscription.get_events", sub.id, limit=0),
                       "wamp.error.invalid_argument")
    other = await reader.subscribe(lambda *a: None, "com.f.nohist")
    await expect_error(reader.call("wamp.subscription.get_events", other.id),
                       "wamp.error.invalid_argument")
    assert reader._router_roles["broker"].event_history is True, "announced in WELCOME"
    for x in pubs + [reader]:
        x.leave()


async def check_rpc():
    callees = await many(2)
    callers = await many(4)
    seen = []

    def who(i):
        def f(x, details=None):
            seen.append(i)
            return [x, details.caller]
        return f

    for i, c in enumerate(callees):
        await c.register(who(i), "com.f.rr", options=RegisterOptions(invoke="roundrobin", details_arg="details"))
    res = []
    for c in callers:
        for n in range(4):
            r = await c.call("com.f.rr", n)
            res.append((r, c._session_id))
    # no caller disclosure was asked for: INVOCATION carries no caller
    assert all(r[1] is None for r, _ in res), res
    assert seen.count(0) >= 4 and seen.count(1) >= 4, seen
    await expect_error(callers[0].register(lambda: 0, "com.f.rr", options=RegisterOptions(invoke="random")),
                       "wamp.error.procedure_exists_with_different_invocation_policy")
    await callees[0].register(lambda: "single", "com.f.single")
    await expect_error(callees[1].register(lambda: 0, "com.f.single"), "wamp.error.procedure_already_exists")
    await expect_error(callers[0].call("com.f.nothing"), "wamp.error.no_such_procedure")
    # precedence: exact > prefix > wildcard
    await callees[0].register(lambda: "exact", "com.f.pre.a.b")
    await callees[1].register(lambda: "prefix", "com.f.pre.a", options=RegisterOptions(match="prefix"))
    await callees[0].register(lambda: "wildcard", "com.f.pre..b", options=RegisterOptions(match="wildcard"))
    assert await callers[1].call("com.f.pre.a.b") == "exact"
    assert await callers[1].call("com.f.pre.a.c") == "prefix"
    assert await callers[1].call("com.f.pre.z.b") == "wildcard"
    # errors from the callee reach the caller with args
    def fail():
        raise ApplicationError("com.f.oops", "why", code=7)
    await callees[1].register(fail, "com.f.fail")
    e = await expect_error(callers[2].call("com.f.fail"), "com.f.oops")
    assert e.args == ("why",) and e.kwargs == {"code": 7}, (e.args, e.kwargs)
    for x in callees + callers:
        x.leave()


async def check_progress_timeout_cancel():
    callee, caller = await many(2)

    async def prog(n, details=None):
        for i in range(n):
            details.progress(i)
            await asyncio.sleep(0.01)
        return "done"

    await callee.register(prog, "com.f.prog", options=RegisterOptions(details_arg="details"))
    got = []
    r = await caller.call("com.f.prog", 3, options=CallOptions(on_progress=lambda i: got.append(i)))
    assert r == "done" and got == [0, 1, 2], (r, got)

    interrupted = []

    async def slow():
        try:
            await asyncio.sleep(3)
        except asyncio.CancelledError:
            interrupted.append(1)
            raise
        return "late"

    await callee.register(slow, "com.f.slow")
    await expect_error(caller.call("com.f.slow", options=CallOptions(timeout=200)), "wamp.error.timeout")
    d = caller.call("com.f.slow")
    await asyncio.sleep(0.2)
    d.cancel()
    try:
        await asyncio.wait_for(d, T)
        raise AssertionError("cancelled call returned a result")
    except (asyncio.CancelledError, ApplicationError):
        pass
    await until(lambda: len(interrupted) >= 1, "INTERRUPT after cancel")
    # callee leaves mid-call: caller gets an error
    d = asyncio.ensure_future(caller.call("com.f.slow"))
    await asyncio.sleep(0.2)
    callee.leave()
    try:
        await asyncio.wait_for(d, T)
        raise AssertionError("call to a departed callee succeeded")
    except ApplicationError as e:
        assert e.error in ("wamp.error.canceled", "wamp.error.no_such_procedure"), e.error
    caller.leave()


async def check_caller_leaves():
    callee, caller = await many(2)
    interrupted = []

    async def slow():
        try:
            await asyncio.sleep(3)
        except asyncio.CancelledError:
            interrupted.append(1)
            raise

    await callee.register(slow, "com.f.slow2")
    asyncio.ensure_future(caller.call("com.f.slow2"))
    await asyncio.sleep(0.2)
    caller.leave()
    await until(lambda: interrupted, "INTERRUPT after the caller left")
    callee.leave()


async def check_slow_consumer():
    """A subscriber that stops reading must not slow delivery to the others."""
    import msgpack
    host, port = RS.split("//")[1].split(":")
    r, w = await asyncio.open_connection(host, int(port))
    w.write(bytes([0x7F, 0xF2, 0, 0]))
    await w.drain()
    await r.readexactly(4)

    async def send(m):
        b = msgpack.packb(m)
        w.write(len(b).to_bytes(4, "big") + b)
        await w.drain()

    async def recv():
        h = await r.readexactly(4)
        return msgpack.unpackb(await r.readexactly(int.from_bytes(h[1:], "big")))

    await send([1, "realm1", {"roles": {"subscriber": {}}}])
    assert (await asyncio.wait_for(recv(), T))[0] == 2
    await send([32, 1, {}, "com.f.slow"])
    assert (await asyncio.wait_for(recv(), T))[0] == 33
    # From here on the raw subscriber never reads again.
    healthy, p = await many(2)
    got = [0]
    await healthy.subscribe(lambda i, *a: got.__setitem__(0, got[0] + (i >= 0)), "com.f.slow")
    n, blob, window = 15000, b"x" * 2048, 500
    # Publish in windows the healthy subscriber keeps up with (it is never more than one window
    # behind, far below its queue limit), while the stalled one falls ever further behind.
    for start in range(0, n, window):
        for i in range(start, start + window):
            p.publish("com.f.slow", i, blob)
        for _ in range(1000):
            if got[0] >= start + window:
                break
            await asyncio.sleep(0.01)
    assert got[0] == n, f"healthy subscriber got {got[0]} of {n} events"
    # the router still serves new sessions
    extra = await connect()
    extra.leave()
    w.close()
    for x in [healthy, p]:
        x.leave()


async def main():
    for check in [check_slow_consumer, check_pubsub_basic, check_patterns_and_identification,
                  check_black_white_listing, check_event_retention, check_event_history, check_rpc, check_progress_timeout_cancel,
                  check_caller_leaves]:
        await asyncio.wait_for(check(), 30)
        print("ok", check.__name__, flush=True)
    print("OK: all autobahn-python feature checks passed", flush=True)


asyncio.run(main())
