"""Pub/sub, RPC and the meta API across the nodes of a Switchyard cluster with autobahn-python
(tests/cluster.rs).

Usage: python3 cluster.py --node HOST:PORT [--node HOST:PORT ...]

Every node is a RawSocket endpoint of a different node of one cluster. One JSON subscriber
(exact) and one MessagePack subscriber (prefix) join every node but the first; a publisher on
the first node publishes numbered events once every subscription is live (probes until each
got one). Checks: every subscriber gets every numbered event once and in order; the
publisher's own subscription is skipped (exclude_me); `exclude` by session ID holds across
nodes; the subscription ID of one topic and policy is the same on every node. RPC: a `single`
registration on the second node is refused on the others; roundrobin over callees on every
node; progressive results, cancel and timeout from the first node to a callee on the second;
`wamp.session.count` counts every node's sessions. Prints "OK: cluster" on success, "FAIL: …"
and exits 1 otherwise; every wait is bounded.
"""
import argparse
import asyncio
import sys

from autobahn.asyncio.rawsocket import WampRawSocketClientFactory
from autobahn.asyncio.wamp import ApplicationSession
from autobahn.wamp import types
from autobahn.wamp.exception import ApplicationError
from autobahn.wamp.serializer import JsonSerializer, MsgPackSerializer
from autobahn.wamp.types import CallOptions, PublishOptions, RegisterOptions, SubscribeOptions

T = 10.0  # seconds, bound for every wait
N = 100


async def connect(hostport, serializer):
    host, port = hostport.rsplit(":", 1)
    loop = asyncio.get_running_loop()
    joined = loop.create_future()

    class S(ApplicationSession):
        async def onJoin(self, details):
            if not joined.done():
                joined.set_result(self)

    cfg = types.ComponentConfig(realm="realm1")
    f = WampRawSocketClientFactory(lambda: S(cfg), serializer=serializer)
    await loop.create_connection(f, host, int(port))
    return await asyncio.wait_for(joined, T)


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)


async def main(nodes):
    check(len(nodes) >= 2, "at least two nodes")
    pub = await connect(nodes[0], JsonSerializer())
    own = []
    await pub.subscribe(lambda *a, **k: own.append(a), "com.py.cl.t", options=SubscribeOptions())
    subs = []  # (session, received list, subscription)
    for hp in nodes[1:]:
        for ser, match, topic in [
            (JsonSerializer(), "exact", "com.py.cl.t"),
            (MsgPackSerializer(), "prefix", "com.py.cl"),
        ]:
            s = await connect(hp, ser)
            got = []
            sub = await s.subscribe(
                lambda *a, got=got, **k: got.append(a[0] if a else None),
                topic,
                options=SubscribeOptions(match=match),
            )
            subs.append((s, got, sub))
    excluded = subs[0][0]

    # Probe until every subscription is live (its interest crossed the cluster).
    deadline = asyncio.get_running_loop().time() + T
    while not all("probe" in got for _, got, _ in subs):
        check(asyncio.get_running_loop().time() < deadline, "subscriptions not live in time")
        pub.publish("com.py.cl.t", "probe")
        await asyncio.sleep(0.05)

    for i in range(N):
        pub.publish("com.py.cl.t", i)
    pub.publish(
        "com.py.cl.t",
        "end",
        options=PublishOptions(exclude=[excluded._session_id]),
    )
    await pub.publish("com.py.cl.t", "last", options=PublishOptions(acknowledge=True))

    deadline = asyncio.get_running_loop().time() + T
    while not all("last" in got for _, got, _ in subs):
        check(asyncio.get_running_loop().time() < deadline, "events not delivered in time")
        await asyncio.sleep(0.02)
    for k, (s, got, _) in enumerate(subs):
        numbers = [x for x in got if isinstance(x, int)]
        check(numbers == list(range(N)), f"subscriber {k}: {len(numbers)} numbered events, in order")
        check(("end" in got) == (s is not excluded), f"subscriber {k}: exclude by session ID")
    check(own == [], "exclude_me: the publisher's own subscription got nothing")
    exact_ids = {sub.id for _, _, sub in subs[0::2]}
    check(len(exact_ids) == 1, f"one subscription ID per topic+policy cluster-wide: {exact_ids}")
    await rpc(nodes, pub, [s for s, _, _ in subs])
    print("OK: cluster")


async def call_error(session, *args, **kwargs):
    try:
        await session.call(*args, **kwargs)
    except ApplicationError as e:
        return e.error
    return None


async def until_callable(session, procedure):
    """Calls until the registration made on another node has reached this one."""
    deadline = asyncio.get_running_loop().time() + T
    while True:
        try:
            return await session.call(procedure)
        except ApplicationError as e:
            check(e.error == "wamp.error.no_such_procedure", f"{procedure}: {e.error}")
            check(asyncio.get_running_loop().time() < deadline, f"{procedure} not callable in time")
            await asyncio.sleep(0.05)


async def rpc(nodes, caller, others):
    """`caller` is on the first node; `others` are sessions on the other nodes."""
    callee = others[0]  # second node
    # The first registration waits for JetStream's first elections (the registry answers
    # switchyard.error.cluster_unavailable until then), for at most a minute.
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        try:
            await callee.register(lambda: "single-on-2", "com.py.cl.single")
            break
        except ApplicationError as e:
            check(e.error == "switchyard.error.cluster_unavailable", f"single: {e.error}")
            check(asyncio.get_running_loop().time() < deadline, "registry unavailable for a minute")
            await asyncio.sleep(0.2)
    for s in [caller] + others[2:]:
        try:
            await s.register(lambda: None, "com.py.cl.single")
            check(False, "a second single registration on another node was accepted")
        except ApplicationError as e:
            check(e.error == "wamp.error.procedure_already_exists", f"single elsewhere: {e.error}")
    check(await until_callable(caller, "com.py.cl.single") == "single-on-2", "call across nodes")

    # Roundrobin over one callee per node (the caller's node included).
    names = []
    for k, s in enumerate([caller] + others[0::2]):
        await s.register(lambda k=k: k, "com.py.cl.rr", options=RegisterOptions(invoke="roundrobin"))
        names.append(k)
    deadline = asyncio.get_running_loop().time() + T
    while True:
        n = await caller.call("wamp.registration.count_callees",
                              await caller.call("wamp.registration.lookup", "com.py.cl.rr"))
        if n == len(names):
            break
        check(asyncio.get_running_loop().time() < deadline, f"callees replicated: {n}")
        await asyncio.sleep(0.05)
    got = [await caller.call("com.py.cl.rr") for _ in range(3 * len(names))]
    check(sorted(got) == sorted(names * 3), f"roundrobin across nodes: {got}")

    # Progressive results, cancel, timeout: caller on the first node, callee on the second.
    async def progressive(details=None):
        for i in range(3):
            if details.progress:
                details.progress(i)
            await asyncio.sleep(0.01)
        return "done"

    await callee.register(progressive, "com.py.cl.prog",
                          options=RegisterOptions(details_arg="details"))
    interrupted = []

    async def slow():
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            interrupted.append(True)
            raise
        return "late"

    await callee.register(slow, "com.py.cl.slow")
    await until_callable(caller, "com.py.cl.prog")
    chunks = []
    res = await caller.call("com.py.cl.prog", options=CallOptions(on_progress=chunks.append))
    check(res == "done" and chunks == [0, 1, 2], f"progressive results: {chunks} {res}")
    call = asyncio.ensure_future(caller.call("com.py.cl.slow"))
    await asyncio.sleep(0.3)
    call.cancel()
    try:
        await call
    except (asyncio.CancelledError, ApplicationError):
        pass
    err = await call_error(caller, "com.py.cl.slow", options=CallOptions(timeout=300))
    check(err == "wamp.error.timeout", f"timeout across nodes: {err}")
    deadline = asyncio.get_running_loop().time() + T
    while len(interrupted) < 2:
        check(asyncio.get_running_loop().time() < deadline, f"interrupts: {len(interrupted)}")
        await asyncio.sleep(0.05)

    # The meta API counts every node's sessions.
    count = await caller.call("wamp.session.count")
    check(count == 1 + len(others), f"wamp.session.count across nodes: {count}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--node", action="append", required=True)
    args = ap.parse_args()
    asyncio.run(asyncio.wait_for(main(args.node), 60))
