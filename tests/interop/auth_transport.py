#!/usr/bin/env python3
"""Transport-level authentication interop checks for Switchyard, using autobahn-python.

Driven by tests/auth_methods.rs, which starts the router with a CA (`--tls-client-ca`),
`--ws-cookie --ws-cookie-name sytrack` and a realm `secure` with principals `device7` (method
`tls`, by certificate fingerprint) and `joe` (ticket "joe-ticket").

- `tls`: joins over RawSocket-TLS (`rss://`) with authmethods ["tls"] presenting device7's
  client certificate (WELCOME, authmethod tls, no CHALLENGE); without a certificate the router
  answers ABORT wamp.error.no_matching_auth_method.
- `cookie`: joins over WebSocket with a ticket, reads the router's Set-Cookie, then joins again
  on a new connection sending the cookie, with authmethods ["cookie"] only (WELCOME joe, authmethod
  cookie); a forged cookie gets wamp.error.no_matching_auth_method.

(Cryptosign `tls-exporter` channel binding and WAMP-SCRAM are not in autobahn-python: it knows
only `tls-unique`, and its `AuthScram` implements an older draft; tests/auth_methods.rs covers
those with a Rust client.)

Usage:
    auth_transport.py --rss-url rss://H:P --ws-url ws://H:P/ws --ca CA.pem
                      --cert CLIENT.pem --key CLIENT-KEY.pem [--timeout-s S]

Exit status: 0 and an `OK:` line when every case passed; 1 with one line per failure otherwise.
"""

import argparse
import asyncio
import ssl
import sys
from urllib.parse import urlsplit

from auth import AUTH_FAILED, NO_METHOD, AuthSession, check, welcome  # noqa: F401

from autobahn.asyncio.rawsocket import WampRawSocketClientFactory
from autobahn.asyncio.websocket import WampWebSocketClientFactory
from autobahn.wamp.serializer import JsonSerializer
from autobahn.wamp.types import ComponentConfig

COOKIE = "sytrack"


class CookieSession(AuthSession):
    """Also records the Set-Cookie of the WebSocket opening handshake."""

    def onJoin(self, details):
        headers = getattr(self._transport, "http_headers", {}) or {}
        self.outcome_cookie = headers.get("set-cookie")
        super().onJoin(details)

    def finish(self, result):
        result["set_cookie"] = getattr(self, "outcome_cookie", None)
        super().finish(result)


async def run(args, case, url, ssl_ctx=None, headers=None, session_cls=AuthSession):
    loop = asyncio.get_running_loop()
    outcome = loop.create_future()
    config = ComponentConfig(realm=case["realm"])
    u = urlsplit(url)
    make = lambda: session_cls(config, case, outcome)  # noqa: E731
    if u.scheme == "ws":
        factory = WampWebSocketClientFactory(
            make, url=url, serializers=[JsonSerializer()], headers=headers or {}
        )
    else:
        factory = WampRawSocketClientFactory(make, serializer=JsonSerializer())
    kw = {"ssl": ssl_ctx, "server_hostname": "localhost"} if ssl_ctx else {}
    transport, _ = await loop.create_connection(factory, u.hostname, u.port, **kw)
    try:
        return await asyncio.wait_for(outcome, args.timeout_s)
    finally:
        transport.close()


def tls_context(args, with_cert):
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=args.ca)
    if with_cert:
        ctx.load_cert_chain(args.cert, args.key)
    return ctx


async def run_all(args):
    failures = []
    never = lambda challenge: "unexpected challenge"  # noqa: E731

    async def case(name, want, *a, challenged=False, **kw):
        try:
            got = await run(args, *a, **kw)
        except Exception as e:  # connection refused, timeout: a failed case
            failures.append(f"{name}: {e!r}")
            return None
        why = check(name, want, got)
        if why:
            failures.append(why)
        elif got.get("challenges") and not challenged:
            failures.append(f"{name}: unexpected CHALLENGE {got['challenges']}")
        return got

    tls = {"realm": "secure", "authmethods": ["tls"], "answer": never}
    await case("tls with certificate", welcome("device7", "device", "tls"),
               tls, args.rss_url, ssl_ctx=tls_context(args, True))
    await case("tls without certificate", NO_METHOD,
               tls, args.rss_url, ssl_ctx=tls_context(args, False))

    ticket = {"realm": "secure", "authmethods": ["ticket"], "authid": "joe",
              "answer": lambda c: "joe-ticket"}
    got = await case("ticket over WebSocket", welcome("joe", "user", "ticket"),
                     ticket, args.ws_url, session_cls=CookieSession, challenged=True)
    set_cookie = (got or {}).get("set_cookie") or ""
    pair = set_cookie.split(";")[0].strip()
    if not pair.startswith(f"{COOKIE}="):
        failures.append(f"no {COOKIE} Set-Cookie on the first WebSocket upgrade: {set_cookie!r}")
    else:
        cookie = {"realm": "secure", "authmethods": ["cookie"], "answer": never}
        await case("cookie", welcome("joe", "user", "cookie"),
                   cookie, args.ws_url, headers={"Cookie": pair})
        await case("forged cookie", NO_METHOD,
                   cookie, args.ws_url, headers={"Cookie": f"{COOKIE}=0000forged"})
    return failures


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for a in ["--rss-url", "--ws-url", "--ca", "--cert", "--key"]:
        p.add_argument(a, required=True)
    p.add_argument("--timeout-s", type=float, default=10.0)
    args = p.parse_args()
    failures = asyncio.run(run_all(args))
    if failures:
        for f in failures:
            print(f"FAIL: {f}", file=sys.stderr)
        sys.exit(1)
    print("OK: tls and cookie authentication with autobahn-python")


if __name__ == "__main__":
    main()
