#!/usr/bin/env python3
"""Writes seed corpora for the fuzz targets into fuzz/corpus/<target>/ (gitignored).

Seeds come from the WAMP test vectors (wamp-proto's testsuite, vendored in
tests/vectors/wamp-testsuite, or $WAMP_TESTSUITE): every `bytes_hex` sample of the serializers
we support, wrapped the way each target expects its input. Targets whose input is built with
`arbitrary` (`session`) get no seeds; libFuzzer finds its structure quickly.

Usage: fuzz/seed.py [TESTSUITE_DIR]
"""

import glob
import hashlib
import json
import os
import struct
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
VENDORED = os.path.join(HERE, os.pardir, "tests", "vectors", "wamp-testsuite")
SUITE = (sys.argv[1] if len(sys.argv) > 1 else
         os.environ.get("WAMP_TESTSUITE", os.path.normpath(VENDORED)))
CORPUS = os.path.join(HERE, "corpus")


def put(target, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def samples():
    """(serializer, bytes) for every json/msgpack/cbor/ubjson sample, and the URIs the vectors
    mention."""
    out, uris = [], set()
    files = sorted(glob.glob(os.path.join(SUITE, "**", "*.json"), recursive=True))
    for path in files:
        if os.path.basename(path) == "SCHEMA.json":
            continue
        with open(path) as f:
            doc = json.load(f)
        for sample in doc.get("samples", []):
            for ser in ("json", "msgpack", "cbor", "ubjson"):
                for variant in sample.get("serializers", {}).get(ser, []):
                    if "bytes_hex" in variant:
                        out.append((ser, bytes.fromhex(variant["bytes_hex"])))
            if "wmsg" in sample:  # validation samples: a raw wire message
                out.append(("json", json.dumps(sample["wmsg"]).encode()))
            attrs = sample.get("expected_attributes", {})
            for key in ("realm", "topic", "procedure", "error", "reason"):
                if isinstance(attrs.get(key), str):
                    uris.add(attrs[key])
        for step in doc.get("sequence", []):
            msg = step.get("message", {})
            for key in ("topic", "procedure", "error", "reason"):
                if isinstance(msg.get(key), str):
                    uris.add(msg[key])
    return out, uris


def rawsocket_frame(kind, payload):
    return struct.pack(">I", (kind << 24) | len(payload)) + payload


def ws_frame(opcode, payload, key=b"\x37\xfa\x21\x3d", rsv1=False):
    b0 = 0x80 | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        head = bytes([b0, 0x80 | n])
    elif n < 65536:
        head = bytes([b0, 0x80 | 126]) + struct.pack(">H", n)
    else:
        head = bytes([b0, 0x80 | 127]) + struct.pack(">Q", n)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


def deflate(data, compressor):
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def main():
    found, uris = samples()
    if not found:
        sys.exit(f"no test vectors under {SUITE}")
    for ser, data in found:
        put("decode_" + ser, data)

    # rawsocket: [exp, handshake(4), chunk seed, frames...]
    for ser, data in found:
        sid = {"json": 1, "msgpack": 2, "cbor": 3, "ubjson": 4}[ser]
        for exp, seed in ((0, 7), (15, 0), (3, 0x2b)):
            hs = bytes([0x7F, (exp << 4) | sid, 0, 0])
            put("rawsocket", bytes([exp]) + hs + bytes([seed]) +
                rawsocket_frame(0, data) + rawsocket_frame(1, b"ping") + rawsocket_frame(2, b""))
    stream = b"".join(rawsocket_frame(0, d) for s, d in found if s == "msgpack")
    put("rawsocket", bytes([15, 0x7F, 0xF2, 0, 0, 5]) + stream)

    # websocket_frames (raw mode): [config, chunk seed, frames...]
    # config: bit0 deflate, bit1 client_no_context_takeover, bits 3..5 size limit index.
    for ser, data in found:
        opcode = 1 if ser == "json" else 2
        for limit in (4, 6, 7):
            put("websocket_frames", bytes([limit << 3, 6]) + ws_frame(opcode, data) + ws_frame(9, b"hi"))
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            put("websocket_frames", bytes([(limit << 3) | 1, 3]) +
                ws_frame(opcode, deflate(data, c), rsv1=True) +
                ws_frame(opcode, deflate(data, c), rsv1=True) +
                ws_frame(8, struct.pack(">H", 1000) + b"bye"))
    bomb = deflate(b"\0" * (1 << 20), zlib.compressobj(9, zlib.DEFLATED, -15))
    put("websocket_frames", bytes([(5 << 3) | 1, 7]) + ws_frame(2, bomb, rsv1=True))

    # websocket_handshake
    base = ("GET /ws?x=1 HTTP/1.1\r\nHost: localhost:8080\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n")
    for extra in (
        "",
        "Sec-WebSocket-Protocol: wamp.2.json, wamp.2.msgpack\r\n",
        "Sec-WebSocket-Protocol: wamp.2.msgpack\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
        "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
        "client_no_context_takeover; server_max_window_bits=15, permessage-deflate\r\n",
        "Sec-WebSocket-Extensions: x-webkit-deflate-frame, permessage-deflate; server_max_window_bits=10\r\n",
        "Cookie: cbtid=abc; other=\"quoted\"\r\nConnection: keep-alive\r\n",
    ):
        put("websocket_handshake", (base + extra + "\r\n").encode() + b"\x81\x80abcd")

    # longpoll_http (paths built from the base, as the router does)
    lp = "/lp"
    for head in (
        f"POST {lp}/open?x=1 HTTP/1.1\r\nHost: a\r\nOrigin: http://a.b\r\nContent-Length: 33\r\n\r\n"
        '{"protocols": ["wamp.2.json"]}   ',
        f"POST {lp}/0123456789abcdef0123456789abcdef/send HTTP/1.1\r\nContent-Length: 2\r\n\r\n[]",
        f"POST {lp}/abc/receive HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        f"OPTIONS {lp}/open HTTP/1.1\r\nAccess-Control-Request-Method: POST\r\n\r\n",
        f"POST {lp}/open HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        '{"protocols": ["wamp.2.cbor.batched", "wamp.2.json"]}',
    ):
        put("longpoll_http", head.encode())

    # uri
    for uri in sorted(uris) + ["com.myapp.topic1", "com.myapp..topic", "com.myapp.", "wamp.session.on_join",
                               "", ".", "a..b", "com.my app", "com.\u00e9t\u00e9", "a#b", "a\u3000b"]:
        put("uri", uri.encode())

    for target in sorted(os.listdir(CORPUS)):
        print(f"{target}: {len(os.listdir(os.path.join(CORPUS, target)))} seeds")


if __name__ == "__main__":
    main()
