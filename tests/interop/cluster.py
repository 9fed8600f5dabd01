"""Pub/sub across the nodes of a Switchyard cluster with autobahn-python (tests/cluster.rs).

Usage: python3 cluster.py --node HOST:PORT [--node HOST:PORT ...]

Every node is a RawSocket endpoint of a different node of one cluster. One JSON subscriber
(exact) and one MessagePack subscriber (prefix) join every node but the first; a publisher on
the first node publishes numbered events once every subscription is live (probes until each
got one). Checks: every subscriber gets every numbered event once and in order; the
publisher's own subscription is skipped (exclude_me); `exclude` by session ID holds across
nodes; the subscription ID of one topic and policy is the same on every node. Prints
"OK: cluster" on success, "FAIL: …" and exits 1 otherwise; every wait is bounded.
"""
import argparse
import asyncio
import sys

from autobahn.asyncio.rawsocket import WampRawSocketClientFactory
from autobahn.asyncio.wamp import ApplicationSession
from autobahn.wamp import types
from autobahn.wamp.serializer import JsonSerializer, MsgPackSerializer
from autobahn.wamp.types import PublishOptions, SubscribeOptions

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
    print("OK: cluster")


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--node", action="append", required=True)
    args = ap.parse_args()
    asyncio.run(asyncio.wait_for(main(args.node), 60))
