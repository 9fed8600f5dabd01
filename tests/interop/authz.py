#!/usr/bin/env python3
"""Authorization interop checks for Switchyard, using autobahn-python on asyncio.

Joins realm `app` as `alice` (role `user`, ticket "alice-t"; tests/authz.rs writes the config
file with the `[[realm.role]]` rules) and checks that what the rules allow succeeds and what
they do not is refused with `wamp.error.not_authorized`, for call, register, publish and
subscribe.

Usage:
    authz.py --url URL [--serializer json|msgpack] [--timeout-s S]

Exit status: 0 and an `OK:` line when every case passed; 1 with one line per failed case on
stderr otherwise.
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
    from autobahn.wamp.types import ComponentConfig, PublishOptions
except ImportError as e:  # pragma: no cover - reported to the test harness
    print(f"authz.py: cannot import autobahn ({e}); run `bash tests/run.sh`", file=sys.stderr)
    sys.exit(1)

NOT_AUTHORIZED = "wamp.error.not_authorized"


class AuthzSession(ApplicationSession):
    def __init__(self, config, outcome):
        super().__init__(config)
        self.outcome = outcome

    def onConnect(self):
        self.join("app", authmethods=["ticket"], authid="alice")

    def onChallenge(self, challenge):
        return "alice-t"

    async def onJoin(self, details):
        failures = []

        async def expect(name, allowed, action):
            try:
                await action()
                if not allowed:
                    failures.append(f"{name}: allowed, expected {NOT_AUTHORIZED}")
            except ApplicationError as e:
                if allowed:
                    failures.append(f"{name}: refused with {e.error}")
                elif e.error != NOT_AUTHORIZED:
                    failures.append(f"{name}: refused with {e.error}, expected {NOT_AUTHORIZED}")

        ack = PublishOptions(acknowledge=True)
        await expect("subscribe com.app.feed", True, lambda: self.subscribe(lambda: None, "com.app.feed"))
        await expect("subscribe other.topic", False, lambda: self.subscribe(lambda: None, "other.topic"))
        await expect("register user.proc", True, lambda: self.register(lambda: 1, "user.proc"))
        await expect("register com.app.mine", False, lambda: self.register(lambda: 1, "com.app.mine"))
        await expect("publish user.news", True, lambda: self.publish("user.news", options=ack))
        await expect("publish com.app.news", False, lambda: self.publish("com.app.news", options=ack))
        # Denied before routing: not_authorized, not no_such_procedure.
        await expect("call com.app.admin", False, lambda: self.call("com.app.admin"))
        await expect("call user.proc", False, lambda: self.call("user.proc"))
        if not self.outcome.done():
            self.outcome.set_result(failures)
        self.leave()

    def onLeave(self, details):
        if not self.outcome.done():
            self.outcome.set_result([f"left before the cases ran: {details.reason}"])
        self.disconnect()


def serializer_for(name):
    return MsgPackSerializer() if name == "msgpack" else JsonSerializer()


async def run(args):
    loop = asyncio.get_running_loop()
    outcome = loop.create_future()
    config = ComponentConfig(realm="app")
    url = urlsplit(args.url)
    if url.scheme == "ws":
        factory = WampWebSocketClientFactory(
            lambda: AuthzSession(config, outcome), url=args.url,
            serializers=[serializer_for(args.serializer)],
        )
    elif url.scheme == "rs":
        factory = WampRawSocketClientFactory(
            lambda: AuthzSession(config, outcome), serializer=serializer_for(args.serializer)
        )
    else:
        raise SystemExit(f"authz.py: unsupported URL scheme {url.scheme!r}")
    transport, _ = await loop.create_connection(factory, url.hostname, url.port)
    try:
        return await asyncio.wait_for(outcome, args.timeout_s)
    finally:
        transport.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--serializer", choices=["json", "msgpack"], default="json")
    p.add_argument("--timeout-s", type=float, default=10.0)
    args = p.parse_args()
    failures = asyncio.run(run(args))
    if failures:
        for f in failures:
            print(f"FAIL: {f}", file=sys.stderr)
        sys.exit(1)
    print(f"OK: 8 authorization cases ({args.serializer}, {args.url})")


if __name__ == "__main__":
    main()
