#!/usr/bin/env python3
"""Authentication interop checks for Switchyard, using autobahn-python on asyncio.

Joins a router (started by tests/auth.rs with static principals from a config file) with each
authentication method, computing the answers with autobahn's own helpers
(`autobahn.wamp.auth.compute_wcs` / `derive_key` for WAMP-CRA, `CryptosignKey.sign_challenge`
for cryptosign, which needs PyNaCl), and checks that wrong secrets, unknown principals and
unsupported methods are refused with the right ABORT reason.

The principals it expects (see tests/auth.rs, which writes the config file), realm `secure`
(anonymous = false):

    joe      role user    ticket  "joe-ticket"
    peter    role admin   wampcra secret "peter-secret"
    salty    role user    wampcra secret "salty-secret", salt "salt123", iterations 100, keylen 32
    client01 role device  cryptosign, key seed = 32 bytes 0x07

and realm `realm1` admitting anonymous sessions.

Usage:
    auth.py --url URL [--serializer json|msgpack] [--timeout-s S]

URL schemes: ws://HOST:PORT/PATH, rs://HOST:PORT.

Exit status: 0 and an `OK:` line when every case passed; 1 with one line per failed case on
stderr otherwise; 2 on bad usage.
"""

import argparse
import asyncio
import json
import sys
from urllib.parse import urlsplit

try:
    from autobahn.asyncio.rawsocket import WampRawSocketClientFactory
    from autobahn.asyncio.wamp import ApplicationSession
    from autobahn.asyncio.websocket import WampWebSocketClientFactory
    from autobahn.wamp import auth
    from autobahn.wamp.cryptosign import HAS_CRYPTOSIGN
    from autobahn.wamp.serializer import JsonSerializer, MsgPackSerializer
    from autobahn.wamp.types import ComponentConfig
except ImportError as e:  # pragma: no cover - reported to the test harness
    print(f"auth.py: cannot import autobahn ({e}); run `bash tests/run.sh`", file=sys.stderr)
    sys.exit(1)

if not HAS_CRYPTOSIGN:
    print("auth.py: autobahn cryptosign needs PyNaCl; run `bash tests/run.sh`", file=sys.stderr)
    sys.exit(1)
from autobahn.wamp.cryptosign import CryptosignKey  # noqa: E402  (only defined with PyNaCl)

CLIENT01 = CryptosignKey.from_bytes(bytes([7] * 32))
STRANGER = CryptosignKey.from_bytes(bytes([8] * 32))

AUTH_FAILED = "wamp.error.authentication_failed"
NO_METHOD = "wamp.error.no_matching_auth_method"


class AuthSession(ApplicationSession):
    """Joins with the case's auth parameters, answers the CHALLENGE, records the outcome."""

    def __init__(self, config, case, outcome):
        super().__init__(config)
        self.case = case
        self.outcome = outcome
        self.challenges = []

    def onConnect(self):
        c = self.case
        self.join(
            c["realm"],
            authmethods=c.get("authmethods"),
            authid=c.get("authid"),
            authextra=c.get("authextra"),
        )

    def onChallenge(self, challenge):
        self.challenges.append((challenge.method, dict(challenge.extra)))
        return self.case["answer"](challenge)

    def onJoin(self, details):
        self.finish(
            {
                "joined": True,
                "authid": details.authid,
                "authrole": details.authrole,
                "authmethod": details.authmethod,
                "authprovider": details.authprovider,
            }
        )
        self.leave()

    def onLeave(self, details):
        self.finish({"joined": False, "reason": details.reason})
        self.disconnect()

    def onDisconnect(self):
        self.finish({"joined": False, "reason": "transport closed"})

    def finish(self, result):
        if not self.outcome.done():
            result["challenges"] = self.challenges
            self.outcome.set_result(result)


def wampcra(secret, salted=False):
    def answer(challenge):
        key = secret
        if salted:
            x = challenge.extra
            key = auth.derive_key(secret, x["salt"], x["iterations"], x["keylen"])
        return auth.compute_wcs(key, challenge.extra["challenge"]).decode("ascii")

    return answer


def cryptosign(key):
    return lambda challenge: key.sign_challenge(challenge)


def welcome(authid, authrole, authmethod):
    return {
        "joined": True,
        "authid": authid,
        "authrole": authrole,
        "authmethod": authmethod,
        "authprovider": "static",
    }


def cases():
    def cs_extra(key):
        return {"pubkey": key.public_key()}

    never = lambda challenge: "unexpected challenge"  # noqa: E731
    return [
        ("anonymous on realm1", {"realm": "realm1", "answer": never},
         welcome(None, "anonymous", "anonymous")),
        ("ticket", {"realm": "secure", "authmethods": ["ticket"], "authid": "joe",
                    "answer": lambda c: "joe-ticket"},
         welcome("joe", "user", "ticket")),
        ("ticket wrong", {"realm": "secure", "authmethods": ["ticket"], "authid": "joe",
                          "answer": lambda c: "joe-ticket!"}, AUTH_FAILED),
        ("ticket unknown authid", {"realm": "secure", "authmethods": ["ticket"], "authid": "nobody",
                                   "answer": lambda c: "joe-ticket"}, AUTH_FAILED),
        ("wampcra", {"realm": "secure", "authmethods": ["wampcra"], "authid": "peter",
                     "answer": wampcra("peter-secret")},
         welcome("peter", "admin", "wampcra")),
        ("wampcra salted", {"realm": "secure", "authmethods": ["wampcra"], "authid": "salty",
                            "answer": wampcra("salty-secret", salted=True)},
         welcome("salty", "user", "wampcra")),
        ("wampcra wrong secret", {"realm": "secure", "authmethods": ["wampcra"], "authid": "peter",
                                  "answer": wampcra("peter-secreT")}, AUTH_FAILED),
        ("wampcra unknown authid", {"realm": "secure", "authmethods": ["wampcra"], "authid": "ghost",
                                    "answer": wampcra("salty-secret", salted=True)}, AUTH_FAILED),
        ("cryptosign", {"realm": "secure", "authmethods": ["cryptosign"],
                        "authextra": cs_extra(CLIENT01), "answer": cryptosign(CLIENT01)},
         welcome("client01", "device", "cryptosign")),
        ("cryptosign with authid", {"realm": "secure", "authmethods": ["cryptosign"], "authid": "client01",
                                    "authextra": cs_extra(CLIENT01), "answer": cryptosign(CLIENT01)},
         welcome("client01", "device", "cryptosign")),
        ("cryptosign unknown key", {"realm": "secure", "authmethods": ["cryptosign"],
                                    "authextra": cs_extra(STRANGER), "answer": cryptosign(STRANGER)},
         AUTH_FAILED),
        ("cryptosign wrong signer", {"realm": "secure", "authmethods": ["cryptosign"],
                                     "authextra": cs_extra(CLIENT01), "answer": cryptosign(STRANGER)},
         AUTH_FAILED),
        ("first supported method", {"realm": "secure", "authmethods": ["scram", "ticket", "wampcra"],
                                    "authid": "joe", "answer": lambda c: "joe-ticket"},
         welcome("joe", "user", "ticket")),
        ("no matching method", {"realm": "secure", "authmethods": ["scram"], "authid": "joe",
                                "answer": never}, NO_METHOD),
        ("anonymous refused", {"realm": "secure", "authmethods": ["anonymous"], "answer": never},
         NO_METHOD),
    ]


def serializer_for(name):
    return MsgPackSerializer() if name == "msgpack" else JsonSerializer()


async def run_case(args, case):
    loop = asyncio.get_running_loop()
    outcome = loop.create_future()
    config = ComponentConfig(realm=case["realm"])
    url = urlsplit(args.url)
    if url.scheme == "ws":
        factory = WampWebSocketClientFactory(
            lambda: AuthSession(config, case, outcome), url=args.url,
            serializers=[serializer_for(args.serializer)],
        )
    elif url.scheme == "rs":
        factory = WampRawSocketClientFactory(
            lambda: AuthSession(config, case, outcome), serializer=serializer_for(args.serializer)
        )
    else:
        raise SystemExit(f"auth.py: unsupported URL scheme {url.scheme!r}")
    transport, _ = await loop.create_connection(factory, url.hostname, url.port)
    try:
        return await asyncio.wait_for(outcome, args.timeout_s)
    finally:
        transport.close()


def check(name, want, got):
    """None if `got` is what the case expects, else why not."""
    if isinstance(want, str):
        if got.get("joined") or got.get("reason") != want:
            return f"{name}: expected ABORT {want}, got {got}"
        return None
    for key, value in want.items():
        if key == "authid" and value is None:
            if not str(got.get("authid", "")).startswith("anonymous"):
                return f"{name}: expected an anonymous authid, got {got}"
        elif got.get(key) != value:
            return f"{name}: expected {key} = {value!r}, got {got}"
    return None


async def run_all(args):
    failures, results = [], {}
    for name, case, want in cases():
        try:
            got = await run_case(args, case)
        except Exception as e:  # connection refused, timeout: a failed case
            failures.append(f"{name}: {e!r}")
            continue
        results[name] = got
        why = check(name, want, got)
        if why:
            failures.append(why)
    # An unknown authid must get a CHALLENGE shaped like a real one.
    real = results.get("wampcra salted", {}).get("challenges")
    fake = results.get("wampcra unknown authid", {}).get("challenges")
    if real and fake:
        (rm, rx), (fm, fx) = real[0], fake[0]
        if (rm, sorted(rx)) != (fm, sorted(fx)) or rx["iterations"] != fx["iterations"]:
            failures.append(f"unknown authid's CHALLENGE differs in shape: {real} vs {fake}")
        fc = json.loads(fx["challenge"])
        if sorted(fc) != sorted(json.loads(rx["challenge"])) or fc["authid"] != "ghost":
            failures.append(f"unknown authid's challenge string differs in shape: {fc}")
    else:
        failures.append("the WAMP-CRA cases saw no CHALLENGE")
    return failures, len(results)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--serializer", choices=["json", "msgpack"], default="json")
    p.add_argument("--timeout-s", type=float, default=10.0)
    args = p.parse_args()
    failures, n = asyncio.run(run_all(args))
    if failures:
        for f in failures:
            print(f"FAIL: {f}", file=sys.stderr)
        sys.exit(1)
    print(f"OK: {n} authentication cases ({args.serializer}, {args.url})")


if __name__ == "__main__":
    main()
