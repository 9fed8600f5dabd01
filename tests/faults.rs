//! Fault tests against the real `switchyard` binary over real sockets: misbehaving peers on the
//! RawSocket and WebSocket listeners, limits, and shutdown on SIGTERM.
//!
//! Each fault runs next to a healthy session established before it, which must still complete
//! its GOODBYE handshake afterwards, and a fresh session must still be able to join: a fault
//! costs the offending connection only. The router runs one shard here so that the healthy
//! session shares the shard (and its event loop) with the offender.

mod common;

use std::time::{Duration, Instant};

use common::*;
use switchyard::codec::{Message, Payload, Publish, PublishOptions, Serializer};
use switchyard::net::rawsocket::{self, FrameKind, RejectCode, SerializerId};

/// How long the router may take to close a connection it must fail.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

fn start(extra: &[&str]) -> RouterProcess {
    let mut args = vec![
        "--ws",
        "127.0.0.1:0",
        "--rs",
        "127.0.0.1:0",
        "--shards",
        "1",
    ];
    args.extend_from_slice(extra);
    RouterProcess::start(&args)
}

/// Runs `fault` against `router` between a healthy session's join and its GOODBYE, then checks
/// that a new session can still join and leave.
fn survives(router: &RouterProcess, fault: impl FnOnce(&RouterProcess)) {
    let rs = router.endpoint("rs").addr();
    let mut healthy = RawClient::connect(rs, Serializer::Json);
    healthy.must_join("realm1");
    let mut healthy_ws = WsClient::connect(
        router.endpoint("ws").addr(),
        router.endpoint("ws").path(),
        Serializer::MsgPack,
    );
    healthy_ws.must_join("realm1");

    fault(router);

    healthy.must_leave();
    healthy_ws.must_leave();
    let mut fresh = RawClient::connect(rs, Serializer::MsgPack);
    fresh.must_join("realm1");
    fresh.must_leave();
}

/// Expects the router to close `conn` without sending anything.
fn expect_silent_close(conn: &mut Conn, what: &str) {
    match conn.read_until_closed(CLOSE_TIMEOUT) {
        Ok(bytes) => assert!(
            bytes.is_empty(),
            "{what}: router sent {bytes:02x?} before closing"
        ),
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Sends a raw handshake request and expects the error reply `code`, then the close.
fn expect_handshake_error(router: &RouterProcess, request: [u8; 4], code: RejectCode) {
    let mut conn = Conn::tcp(router.endpoint("rs").addr()).expect("connect");
    let reply = rawsocket_handshake(&mut conn, request)
        .unwrap_or_else(|e| panic!("request {request:02x?}: no handshake reply: {e}"));
    assert_eq!(
        reply,
        rawsocket::reject_reply(code),
        "request {request:02x?}: expected error {code:?}"
    );
    expect_silent_close(&mut conn, &format!("after error reply to {request:02x?}"));
}

/// Expects ABORT `wamp.error.protocol_violation` and then the connection to be dropped.
fn expect_protocol_violation(client: &mut RawClient, what: &str) {
    match client.recv(REPLY_TIMEOUT) {
        Ok(Message::Abort(a)) => assert_eq!(
            a.reason.as_str(),
            "wamp.error.protocol_violation",
            "{what}: {a:?}"
        ),
        other => panic!("{what}: expected ABORT wamp.error.protocol_violation, got {other:?}"),
    }
    // The spec says the router SHOULD drop the transport after a protocol violation.
    if let Err(e) = client.expect_close(CLOSE_TIMEOUT) {
        panic!("{what}: after ABORT: {e}");
    }
}

#[test]
fn garbage_bytes_on_rawsocket_port() {
    let router = start(&[]);
    survives(&router, |r| {
        let mut conn = Conn::tcp(r.endpoint("rs").addr()).expect("connect");
        use std::io::Write;
        let garbage: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        // The router may close after the first 4 octets; a reset while we write is fine.
        let _ = conn.write_all(&garbage);
        let _ = conn
            .read_until_closed(CLOSE_TIMEOUT)
            .expect("garbage connection must be closed");
    });
}

#[test]
fn http_request_on_rawsocket_port_is_closed() {
    let router = start(&[]);
    survives(&router, |r| {
        let mut conn = Conn::tcp(r.endpoint("rs").addr()).expect("connect");
        use std::io::Write;
        conn.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("write");
        let _ = conn
            .read_until_closed(CLOSE_TIMEOUT)
            .expect("must be closed");
    });
}

#[test]
fn wrong_magic_is_closed_without_reply() {
    let router = start(&[]);
    survives(&router, |r| {
        let mut conn = Conn::tcp(r.endpoint("rs").addr()).expect("connect");
        use std::io::Write;
        conn.write_all(&[0x7E, 0xF1, 0, 0]).expect("write");
        expect_silent_close(&mut conn, "wrong magic");
    });
}

#[test]
fn serializer_zero_gets_error_1() {
    let router = start(&[]);
    survives(&router, |r| {
        expect_handshake_error(r, [0x7F, 0xF0, 0, 0], RejectCode::SerializerUnsupported);
    });
}

#[test]
fn unsupported_serializers_get_error_1() {
    let router = start(&[]);
    survives(&router, |r| {
        // FlatBuffers (5) and unassigned ids (6, 15); UBJSON (4) is served.
        for ser in [5u8, 6, 15] {
            expect_handshake_error(
                r,
                [0x7F, 0xF0 | ser, 0, 0],
                RejectCode::SerializerUnsupported,
            );
        }
    });
}

#[test]
fn reserved_handshake_bits_get_error_3() {
    let router = start(&[]);
    survives(&router, |r| {
        expect_handshake_error(r, [0x7F, 0xF1, 0x01, 0], RejectCode::ReservedBitsUsed);
        expect_handshake_error(r, [0x7F, 0xF2, 0, 0x80], RejectCode::ReservedBitsUsed);
    });
}

#[test]
fn frame_over_negotiated_maximum_fails_the_connection() {
    // 64 KiB: the router announces exponent 7.
    let router = start(&["--max-message-size-rs", "65536"]);
    survives(&router, |r| {
        let mut c = RawClient::connect(r.endpoint("rs").addr(), Serializer::Json);
        assert!(
            c.router_max_len <= 65536,
            "router announced {} octets, configured 65536",
            c.router_max_len
        );
        c.must_join("realm1");
        let len = c.router_max_len + 1;
        let header = rawsocket::encode_header(FrameKind::Message, len).expect("header");
        // The header alone must be enough; send some payload too, as a real peer would.
        let _ = c.send_bytes(&header);
        let _ = c.send_bytes(&vec![b' '; 1024]);
        if let Err(e) = c.expect_close(CLOSE_TIMEOUT) {
            panic!(
                "frame of {len} octets over a {} limit: {e}",
                c.router_max_len
            );
        }
    });
}

#[test]
fn reserved_frame_bits_fail_the_connection() {
    let router = start(&[]);
    survives(&router, |r| {
        let mut c = RawClient::connect(r.endpoint("rs").addr(), Serializer::MsgPack);
        c.must_join("realm1");
        // Reserved high nibble set, then an unknown frame type 3.
        let _ = c.send_bytes(&[0x10, 0, 0, 2, 0x91, 0x01]);
        c.expect_close(CLOSE_TIMEOUT).expect("reserved bits");
        let mut c = RawClient::connect(r.endpoint("rs").addr(), Serializer::MsgPack);
        c.must_join("realm1");
        let _ = c.send_bytes(&[0x03, 0, 0, 0]);
        c.expect_close(CLOSE_TIMEOUT).expect("frame type 3");
    });
}

#[test]
fn unknown_realm_is_aborted() {
    let router = start(&[]);
    survives(&router, |r| {
        for ser in Serializer::ALL {
            let mut c = RawClient::connect(r.endpoint("rs").addr(), ser);
            c.send(&hello("com.example.nosuchrealm"))
                .expect("send HELLO");
            c.must_abort("wamp.error.no_such_realm");
        }
        let ws = r.endpoint("ws");
        let mut c = WsClient::connect(ws.addr(), ws.path(), Serializer::Json);
        c.send(&hello("com.example.nosuchrealm"))
            .expect("send HELLO");
        c.must_abort("wamp.error.no_such_realm");
    });
}

#[test]
fn second_hello_is_a_protocol_violation() {
    let router = start(&[]);
    survives(&router, |r| {
        let mut c = RawClient::connect(r.endpoint("rs").addr(), Serializer::Json);
        c.must_join("realm1");
        c.send(&hello("realm1")).expect("send second HELLO");
        expect_protocol_violation(&mut c, "second HELLO");
    });
}

#[test]
fn message_before_hello_is_a_protocol_violation() {
    let router = start(&[]);
    survives(&router, |r| {
        let mut c = RawClient::connect(r.endpoint("rs").addr(), Serializer::MsgPack);
        let publish = Message::Publish(Box::new(Publish {
            request: 1,
            options: PublishOptions::default(),
            topic: "com.example.topic".into(),
            payload: Payload::default(),
        }));
        c.send(&publish).expect("send PUBLISH");
        expect_protocol_violation(&mut c, "PUBLISH before HELLO");

        let mut c = RawClient::connect(r.endpoint("rs").addr(), Serializer::Json);
        c.send(&goodbye("wamp.close.close_realm"))
            .expect("send GOODBYE");
        expect_protocol_violation(&mut c, "GOODBYE before HELLO");
    });
}

#[test]
fn invalid_json_is_a_protocol_violation() {
    let router = start(&[]);
    survives(&router, |r| {
        // Before HELLO, and within an established session.
        let mut c = RawClient::connect(r.endpoint("rs").addr(), Serializer::Json);
        c.send_payload(b"[1, \"realm1\", {").expect("send");
        expect_protocol_violation(&mut c, "truncated JSON before HELLO");

        let mut c = RawClient::connect(r.endpoint("rs").addr(), Serializer::Json);
        c.must_join("realm1");
        c.send_payload(b"{\"not\": \"an array\"}").expect("send");
        expect_protocol_violation(&mut c, "JSON object in a session");

        let mut c = RawClient::connect(r.endpoint("rs").addr(), Serializer::Json);
        c.must_join("realm1");
        c.send_payload(b"\xff\xfe not utf-8").expect("send");
        expect_protocol_violation(&mut c, "invalid UTF-8 in a session");

        let ws = r.endpoint("ws");
        let mut c = WsClient::connect(ws.addr(), ws.path(), Serializer::Json);
        c.must_join("realm1");
        c.send_payload(b"[16, 1, {}, ").expect("send");
        match c.recv(REPLY_TIMEOUT) {
            Ok(Message::Abort(a)) => {
                assert_eq!(a.reason.as_str(), "wamp.error.protocol_violation", "{a:?}")
            }
            other => panic!("WebSocket invalid JSON: expected ABORT, got {other:?}"),
        }
    });
}

#[test]
fn invalid_msgpack_is_a_protocol_violation() {
    let router = start(&[]);
    survives(&router, |r| {
        let mut c = RawClient::connect(r.endpoint("rs").addr(), Serializer::MsgPack);
        c.must_join("realm1");
        // fixarray of 3 holding only a positive fixint: truncated.
        c.send_payload(&[0x93, 0x10]).expect("send");
        expect_protocol_violation(&mut c, "truncated MessagePack");
    });
}

/// Issue 17: bad CBOR — truncated, wrong types, nested too deep, a bignum, a frame over the
/// size limit — gets a clear ABORT (or, over the limit, the connection failed) over RawSocket
/// and WebSocket, and the healthy session of `survives` is unaffected.
#[test]
fn invalid_cbor_is_a_protocol_violation() {
    let router = start(&["--max-message-size-rs", "65536"]);
    survives(&router, |r| {
        let deep = {
            // [16, 1, {}, "a.b", [[[…]]]] nested beyond the depth limit.
            let mut f = vec![0x85, 0x10, 0x01, 0xa0, 0x63, b'a', b'.', b'b'];
            f.extend(std::iter::repeat_n(0x81, 200));
            f.push(0x80);
            f
        };
        let cases: [(&str, Vec<u8>); 5] = [
            ("truncated CBOR", vec![0x84, 0x10]),
            // [16, "x", {}, "a.b"]: a string request ID.
            (
                "a string ID",
                vec![0x84, 0x10, 0x61, b'x', 0xa0, 0x63, b'a', b'.', b'b'],
            ),
            ("CBOR nested too deep", deep),
            // [16, 2(h'01'), {}, "a.b"]: a bignum request ID.
            (
                "a bignum",
                vec![0x84, 0x10, 0xc2, 0x41, 0x01, 0xa0, 0x63, b'a', b'.', b'b'],
            ),
            ("a map, not an array", vec![0xa1, 0x61, b'a', 0x01]),
        ];
        for (what, frame) in &cases {
            let mut c = RawClient::connect(r.endpoint("rs").addr(), Serializer::Cbor);
            c.must_join("realm1");
            c.send_payload(frame).expect("send");
            expect_protocol_violation(&mut c, what);
        }
        let ws = r.endpoint("ws");
        let mut c = WsClient::connect(ws.addr(), ws.path(), Serializer::Cbor);
        c.must_join("realm1");
        c.send_payload(&cases[0].1).expect("send");
        match c.recv(REPLY_TIMEOUT) {
            Ok(Message::Abort(a)) => {
                assert_eq!(a.reason.as_str(), "wamp.error.protocol_violation", "{a:?}")
            }
            other => panic!("WebSocket truncated CBOR: expected ABORT, got {other:?}"),
        }
        // Over the negotiated maximum: the connection is failed, as for any serializer.
        let mut c = RawClient::connect(r.endpoint("rs").addr(), Serializer::Cbor);
        c.must_join("realm1");
        let mut big = vec![0x84, 0x10, 0x01, 0xa0, 0x7a, 0, 1, 0, 0];
        big.extend(std::iter::repeat_n(b'a', 65536));
        let _ = c.send_payload(&big);
        c.expect_close(CLOSE_TIMEOUT)
            .unwrap_or_else(|e| panic!("oversized CBOR frame: {e}"));
    });
}

/// Issue 17: bad UBJSON (and BJData) — truncated, wrong types, nested too deep, a negative
/// length, a frame over the size limit — gets a clear ABORT (or, over the limit, the connection
/// failed), and the healthy session of `survives` is unaffected.
#[test]
fn invalid_ubjson_is_a_protocol_violation() {
    for dialect in ["ubjson", "bjdata"] {
        let router = start(&[
            "--max-message-size-rs",
            "65536",
            "--ubjson-dialect",
            dialect,
        ]);
        let ser = if dialect == "ubjson" {
            Serializer::Ubjson
        } else {
            Serializer::Bjdata
        };
        survives(&router, |r| {
            let deep = {
                // [16, 1, {}, "a.b", [[[…]]]] nested beyond the depth limit.
                let mut f = b"[U\x10U\x01{}SU\x03a.b".to_vec();
                f.extend(std::iter::repeat_n(b'[', 200));
                f.extend(std::iter::repeat_n(b']', 201));
                f
            };
            let cases: [(&str, Vec<u8>); 6] = [
                ("truncated", b"[U\x10U".to_vec()),
                ("a string ID", b"[U\x10SU\x01x{}SU\x03a.b]".to_vec()),
                ("nested too deep", deep),
                ("a negative length", b"[U\x10U\x01{}Si\xfda.b]".to_vec()),
                ("a dict, not an array", b"{U\x01aU\x01}".to_vec()),
                ("an unknown marker", b"[U\x10U\x01{}SU\x03a.bx]".to_vec()),
            ];
            for (what, frame) in &cases {
                let mut c = RawClient::connect(r.endpoint("rs").addr(), ser);
                c.must_join("realm1");
                c.send_payload(frame).expect("send");
                expect_protocol_violation(&mut c, &format!("{dialect}: {what}"));
            }
            let ws = r.endpoint("ws");
            let mut c = WsClient::connect(ws.addr(), ws.path(), ser);
            c.must_join("realm1");
            c.send_payload(&cases[0].1).expect("send");
            match c.recv(REPLY_TIMEOUT) {
                Ok(Message::Abort(a)) => {
                    assert_eq!(a.reason.as_str(), "wamp.error.protocol_violation", "{a:?}")
                }
                other => panic!("WebSocket truncated {dialect}: expected ABORT, got {other:?}"),
            }
            let mut c = RawClient::connect(r.endpoint("rs").addr(), ser);
            c.must_join("realm1");
            let mut big = b"[U\x10U\x01{}Sl\x00\x01\x00\x00".to_vec();
            big.extend(std::iter::repeat_n(b'a', 65536));
            let _ = c.send_payload(&big);
            c.expect_close(CLOSE_TIMEOUT)
                .unwrap_or_else(|e| panic!("oversized {dialect} frame: {e}"));
        });
    }
}

#[test]
fn hello_timeout_aborts_and_closes() {
    const HELLO_TIMEOUT_MS: u64 = 300;
    let router = start(&["--hello-timeout-ms", "300"]);
    survives(&router, |r| {
        let started = Instant::now();
        let mut c = RawClient::connect(r.endpoint("rs").addr(), Serializer::Json);
        // Send nothing after the handshake.
        let got = c.expect_close(Duration::from_millis(HELLO_TIMEOUT_MS + 2000));
        let elapsed = started.elapsed();
        let got = got.unwrap_or_else(|e| panic!("silent client after {elapsed:?}: {e}"));
        assert!(
            matches!(got.as_slice(), [Message::Abort(a)] if a.reason.as_str() == "wamp.error.timeout"),
            "expected exactly ABORT wamp.error.timeout, got {got:?}"
        );
        assert!(
            elapsed >= Duration::from_millis(HELLO_TIMEOUT_MS - 50),
            "closed after {elapsed:?}, before the {HELLO_TIMEOUT_MS} ms HELLO timeout"
        );

        // Same over WebSocket.
        let ws = r.endpoint("ws");
        let started = Instant::now();
        let mut w = WsClient::connect(ws.addr(), ws.path(), Serializer::MsgPack);
        match w.recv(Duration::from_millis(HELLO_TIMEOUT_MS + 2000)) {
            Ok(Message::Abort(a)) => assert_eq!(a.reason.as_str(), "wamp.error.timeout"),
            other => panic!(
                "WebSocket silent client after {:?}: {other:?}",
                started.elapsed()
            ),
        }
    });
}

#[test]
fn handshake_timeout_closes_silent_connection() {
    let router = start(&["--handshake-timeout-ms", "300"]);
    survives(&router, |r| {
        let started = Instant::now();
        let mut conn = Conn::tcp(r.endpoint("rs").addr()).expect("connect");
        use std::io::Write;
        conn.write_all(&[0x7F]).expect("write"); // one octet of four, then silence
        conn.read_until_closed(Duration::from_millis(2300))
            .unwrap_or_else(|e| panic!("half a handshake after {:?}: {e}", started.elapsed()));
        let mut conn = Conn::tcp(r.endpoint("ws").addr()).expect("connect");
        conn.write_all(b"GET /ws HTTP/1.1\r\n").expect("write"); // an unfinished request
        conn.read_until_closed(Duration::from_millis(2300))
            .unwrap_or_else(|e| panic!("half an HTTP request after {:?}: {e}", started.elapsed()));
    });
}

#[test]
fn websocket_without_supported_subprotocol_gets_4xx() {
    let router = start(&[]);
    survives(&router, |r| {
        let ws = r.endpoint("ws");
        for offered in [
            &[
                "wamp.2.flatbuffers",
                "wamp.2.flatbuffers.batched",
                "com.example.other",
            ][..],
            &["mqtt"][..],
        ] {
            let (_s, status, head, _, _) =
                ws_upgrade(ws.addr(), ws.path(), offered).expect("HTTP response");
            assert!(
                (400..500).contains(&status),
                "offering {offered:?}: expected HTTP 4xx, got {head}"
            );
        }
    });
}

/// Issue 17: batched WebSocket with the spec's record separator 0x1e (autobahn's 0x18 is
/// covered by the interop tests): HELLO and SUBSCRIBE in one WebSocket message are both
/// handled, the answers come back 0x1e-terminated, and an empty batch fails the transport.
#[test]
fn batched_websocket_json_with_the_record_separator() {
    use std::io::{Read, Write};
    let router = start(&[]);
    survives(&router, |r| {
        let ws = r.endpoint("ws");
        let (mut s, status, head, mut buf, _) =
            ws_upgrade(ws.addr(), ws.path(), &["wamp.2.json.batched"]).expect("HTTP response");
        assert_eq!(status, 101, "{head}");
        assert_eq!(
            header(&head, "Sec-WebSocket-Protocol"),
            Some("wamp.2.json.batched")
        );
        let masked_text = |payload: &[u8]| {
            assert!(payload.len() < 126);
            let key = [1u8, 2, 3, 4];
            let mut f = vec![0x81, 0x80 | payload.len() as u8];
            f.extend_from_slice(&key);
            f.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
            f
        };
        let batch =
            b"[1,\"realm1\",{\"roles\":{\"subscriber\":{}}}]\x1e[32,7,{},\"com.batched\"]\x1e";
        s.write_all(&masked_text(batch)).expect("send batch");
        // Read server frames (unmasked, short) until two WAMP messages came back.
        s.set_read_timeout(Some(REPLY_TIMEOUT)).expect("timeout");
        let mut messages: Vec<Vec<u8>> = Vec::new();
        let deadline = Instant::now() + REPLY_TIMEOUT;
        while messages.len() < 2 {
            assert!(Instant::now() < deadline, "got only {messages:?}");
            if buf.len() >= 2 {
                let (op, len) = (buf[0] & 0x0f, usize::from(buf[1] & 0x7f));
                let (hlen, len) = match len {
                    126 if buf.len() >= 4 => (4, usize::from(u16::from_be_bytes([buf[2], buf[3]]))),
                    126 => (usize::MAX, 0),
                    n => (2, n),
                };
                if hlen != usize::MAX && buf.len() >= hlen + len {
                    let payload: Vec<u8> = buf.drain(..hlen + len).skip(hlen).collect();
                    assert_eq!(op, 0x1, "a text frame");
                    assert_eq!(payload.last(), Some(&0x1e), "ends with 0x1e: {payload:?}");
                    messages.extend(
                        payload
                            .split(|b| *b == 0x1e)
                            .filter(|m| !m.is_empty())
                            .map(<[u8]>::to_vec),
                    );
                    continue;
                }
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).expect("read");
            assert!(n > 0, "closed after {messages:?}");
            buf.extend_from_slice(&chunk[..n]);
        }
        assert!(
            messages[0].starts_with(b"[2,"),
            "WELCOME first: {messages:?}"
        );
        assert!(
            messages[1].starts_with(b"[33,7,"),
            "then SUBSCRIBED: {messages:?}"
        );
        // An empty batch (a WebSocket message with no WAMP message) fails the transport.
        s.write_all(&masked_text(b"")).expect("send empty batch");
        let mut rest = Vec::new();
        let _ = s.read_to_end(&mut rest);
        // A close frame with code 1007 (invalid payload data): 0x88, length, 0x03 0xef.
        assert!(
            rest.windows(4)
                .any(|w| w[0] == 0x88 && w[1] >= 2 && w[2..] == [0x03, 0xef]),
            "expected a close frame with code 1007 after an empty batch, got {rest:?}"
        );
    });
}

#[test]
fn websocket_wrong_path_gets_4xx() {
    let router = start(&[]);
    let ws = router.endpoint("ws");
    let (_s, status, head, _, _) =
        ws_upgrade(ws.addr(), "/not-the-wamp-path", &["wamp.2.json"]).expect("HTTP response");
    assert!(
        (400..500).contains(&status),
        "expected HTTP 4xx, got {head}"
    );
}

#[test]
fn rawsocket_ping_gets_pong() {
    let router = start(&[]);
    let mut c = RawClient::connect(router.endpoint("rs").addr(), Serializer::Json);
    c.must_join("realm1");
    c.send_frame(FrameKind::Ping, b"are you there")
        .expect("ping");
    // The client answers pings itself, so read the raw frame here.
    let mut header = [0u8; 4];
    use std::io::Read;
    c.conn.read_exact(&mut header).expect("PONG header");
    let h = rawsocket::parse_frame_header(&header).expect("valid header");
    assert_eq!(h.kind, FrameKind::Pong, "reply to PING");
    let mut payload = vec![0u8; h.len as usize];
    c.conn.read_exact(&mut payload).expect("PONG payload");
    assert_eq!(payload, b"are you there");
    c.must_leave();
}

#[test]
fn max_connections_rejects_with_error_4() {
    let router = start(&["--max-connections", "2"]);
    let rs = router.endpoint("rs").addr();
    let mut a = RawClient::connect(rs, Serializer::Json);
    a.must_join("realm1");
    let mut b = RawClient::connect(rs, Serializer::MsgPack);
    b.must_join("realm1");

    let mut third = Conn::tcp(rs).expect("TCP connect");
    let reply = rawsocket_handshake(&mut third, rawsocket::client_hello(SerializerId::JSON, 15))
        .expect("a handshake reply");
    assert_eq!(
        reply,
        rawsocket::reject_reply(RejectCode::MaxConnectionCountReached),
        "third connection with --max-connections 2"
    );

    // The two admitted sessions are unaffected, and a slot frees up when one leaves.
    a.must_leave();
    drop(a);
    b.must_leave();
    let admitted = wait_for(Duration::from_secs(5), || {
        RawClient::handshake(Conn::tcp(rs).ok()?, Serializer::Json).ok()
    });
    let mut c = admitted.expect("a connection slot frees up after a session leaves");
    c.must_join("realm1");
    c.must_leave();
}

#[test]
fn sigterm_sends_system_shutdown_and_exits_0() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sock = dir.path().join("switchyard.sock");
    let mut router = start(&["--unix", sock.to_str().expect("utf-8 path")]);
    let rs = router.endpoint("rs").addr();
    let ws = router.endpoint("ws").clone();
    let mut raw: Vec<(String, RawClient)> = Vec::new();
    // Every serializer this router speaks (BJData only with `--ubjson-dialect bjdata`).
    let spoken = || {
        Serializer::ALL
            .into_iter()
            .filter(|s| *s != Serializer::Bjdata)
    };
    for ser in spoken() {
        let mut c = RawClient::connect(rs, ser);
        c.must_join("realm1");
        raw.push((format!("rs {ser:?}"), c));
    }
    let mut u = RawClient::connect_unix(
        std::path::Path::new(router.endpoint("unix").path()),
        Serializer::Json,
    );
    u.must_join("realm1");
    raw.push(("unix json".into(), u));
    let mut wss: Vec<(String, WsClient)> = Vec::new();
    for ser in spoken() {
        let mut c = WsClient::connect(ws.addr(), ws.path(), ser);
        c.must_join("realm1");
        wss.push((format!("ws {ser:?}"), c));
    }

    router.signal(libc::SIGTERM);

    let check = |what: &str, got: Result<Message, RecvError>| match got {
        Ok(Message::Goodbye(g)) => assert_eq!(
            g.reason.as_str(),
            "wamp.close.system_shutdown",
            "{what}: {g:?}"
        ),
        other => panic!("{what}: expected GOODBYE wamp.close.system_shutdown, got {other:?}"),
    };
    for (what, c) in &mut raw {
        check(what, c.recv(Duration::from_secs(5)));
        // Answer as a polite client does; the router may already be closing.
        let _ = c.send(&goodbye("wamp.close.goodbye_and_out"));
    }
    for (what, c) in &mut wss {
        check(what, c.recv(Duration::from_secs(5)));
        let _ = c.send(&goodbye("wamp.close.goodbye_and_out"));
    }
    let status = router
        .wait_exit(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("router still running 10 s after SIGTERM"));
    assert!(status.success(), "exit status after SIGTERM: {status:?}");
}

// ---------------------------------------------------------------------------------------------
// Peers that stall, vanish or flood
// ---------------------------------------------------------------------------------------------

/// HELLO for realm1 whose callee announces `call_canceling` (so it may be sent INTERRUPT).
fn hello_canceling_callee() -> Message {
    use switchyard::codec::{Dict, DictField, Hello, HelloDetails, Value};
    let mut features = Dict::new();
    features.insert("call_canceling".into(), Value::Bool(true));
    let mut callee = Dict::new();
    callee.insert("features".into(), Value::Dict(features));
    let mut roles = Dict::new();
    roles.insert("callee".into(), Value::Dict(callee));
    roles.insert("caller".into(), Value::Dict(Dict::new()));
    Message::Hello(Box::new(Hello {
        realm: "realm1".into(),
        details: HelloDetails {
            roles: Some(DictField(Value::Dict(roles))),
            ..Default::default()
        },
    }))
}

fn register(c: &mut impl WampConn, procedure: &str) {
    use switchyard::codec::{Register, RegisterOptions};
    c.send(&Message::Register(Register {
        request: 1,
        options: RegisterOptions::default(),
        procedure: procedure.into(),
    }))
    .expect("send REGISTER");
    match c.recv(REPLY_TIMEOUT) {
        Ok(Message::Registered(_)) => {}
        other => panic!("expected REGISTERED, got {other:?}"),
    }
}

fn call(c: &mut impl WampConn, request: u64, procedure: &str) {
    use switchyard::codec::{Call, CallOptions};
    c.send(&Message::Call(Box::new(Call {
        request,
        options: CallOptions::default(),
        procedure: procedure.into(),
        payload: Payload::default(),
    })))
    .expect("send CALL");
}

/// The next INVOCATION's request ID.
fn invocation(c: &mut impl WampConn) -> u64 {
    match c.recv(REPLY_TIMEOUT) {
        Ok(Message::Invocation(i)) => i.request,
        other => panic!("expected INVOCATION, got {other:?}"),
    }
}

#[test]
fn callee_killed_mid_call_caller_gets_error() {
    let router = start(&[]);
    survives(&router, |r| {
        let rs = r.endpoint("rs").addr();
        let ws = r.endpoint("ws");
        let mut callee = RawClient::connect(rs, Serializer::MsgPack);
        callee.must_join("realm1");
        register(&mut callee, "com.example.doomed");
        let mut caller = WsClient::connect(ws.addr(), ws.path(), Serializer::Json);
        caller.must_join("realm1");
        call(&mut caller, 7, "com.example.doomed");
        invocation(&mut callee);
        // The callee's process dies: the socket closes without GOODBYE.
        drop(callee);
        match caller.recv(REPLY_TIMEOUT) {
            Ok(Message::Error(e)) => {
                assert_eq!((e.request_type, e.request), (48, 7), "{e:?}");
                assert_eq!(e.error.as_str(), "wamp.error.canceled", "{e:?}");
            }
            other => panic!("caller of a vanished callee: expected ERROR, got {other:?}"),
        }
        // The procedure went with its callee.
        call(&mut caller, 8, "com.example.doomed");
        match caller.recv(REPLY_TIMEOUT) {
            Ok(Message::Error(e)) => {
                assert_eq!(e.error.as_str(), "wamp.error.no_such_procedure", "{e:?}")
            }
            other => panic!("expected ERROR no_such_procedure, got {other:?}"),
        }
        caller.must_leave();
    });
}

#[test]
fn caller_killed_mid_call_callee_gets_interrupt() {
    let router = start(&[]);
    survives(&router, |r| {
        let rs = r.endpoint("rs").addr();
        let mut callee = RawClient::connect(rs, Serializer::Json);
        callee.send(&hello_canceling_callee()).expect("HELLO");
        assert!(matches!(
            callee.recv(REPLY_TIMEOUT),
            Ok(Message::Welcome(_))
        ));
        register(&mut callee, "com.example.long");
        let mut caller = RawClient::connect(rs, Serializer::MsgPack);
        caller.must_join("realm1");
        call(&mut caller, 1, "com.example.long");
        let id = invocation(&mut callee);
        drop(caller);
        match callee.recv(REPLY_TIMEOUT) {
            Ok(Message::Interrupt(i)) => {
                assert_eq!(i.request, id, "{i:?}");
                assert_eq!(
                    i.options.mode,
                    Some(switchyard::codec::CancelMode::KillNoWait),
                    "{i:?}"
                );
            }
            other => panic!("callee of a vanished caller: expected INTERRUPT, got {other:?}"),
        }
        // A late YIELD for the dead call is dropped quietly; the callee stays in the realm.
        use switchyard::codec::{Yield, YieldOptions};
        callee
            .send(&Message::Yield(Box::new(Yield {
                request: id,
                options: YieldOptions::default(),
                payload: Payload::default(),
            })))
            .expect("late YIELD");
        callee.must_leave();
    });
}

#[test]
fn connection_that_sends_nothing_is_closed_by_the_handshake_timeout() {
    let router = start(&["--handshake-timeout-ms", "300"]);
    survives(&router, |r| {
        for scheme in ["rs", "ws"] {
            let mut conn = Conn::tcp(r.endpoint(scheme).addr()).expect("connect");
            expect_silent_close(&mut conn, &format!("{scheme}: silent connection"));
        }
    });
}

#[test]
fn websocket_handshake_one_byte_per_second_is_closed() {
    use std::io::{Read, Write};
    let router = start(&["--handshake-timeout-ms", "2500"]);
    survives(&router, |r| {
        let ws = r.endpoint("ws");
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Protocol: wamp.2.json\r\n\r\n",
            ws.path(),
            ws.addr()
        );
        let mut s = std::net::TcpStream::connect(ws.addr()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(1)))
            .expect("timeout");
        // At most 15 bytes (15 s) of a ~170-byte request: the 2.5 s timeout must end it first.
        let mut closed_after = None;
        for (i, b) in request.bytes().take(15).enumerate() {
            if s.write_all(&[b]).is_err() {
                closed_after = Some(i);
                break;
            }
            let mut buf = [0u8; 256];
            match s.read(&mut buf) {
                Ok(0) => {
                    closed_after = Some(i + 1);
                    break;
                }
                Ok(n) => panic!(
                    "router answered a partial request: {:?}",
                    String::from_utf8_lossy(&buf[..n])
                ),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => {
                    closed_after = Some(i + 1);
                    break;
                }
            }
        }
        let n = closed_after.expect("a handshake trickling one byte per second was never closed");
        assert!(n < 15, "closed only after {n} bytes");
    });
}

#[test]
fn connection_flood_beyond_the_limit() {
    const LIMIT: usize = 16;
    const FLOOD: usize = 64;
    let router = start(&["--max-connections", "16"]);
    let rs = router.endpoint("rs").addr();
    let ws = router.endpoint("ws").clone();
    let mut admitted = Vec::new();
    let mut refused = 0;
    for i in 0..FLOOD {
        let conn = Conn::tcp(rs).expect("TCP connect");
        match RawClient::handshake(conn, Serializer::Json) {
            Ok(c) => admitted.push(c),
            Err(e) if e.contains("MaxConnectionCountReached") => refused += 1,
            Err(e) => panic!("connection {i}: {e}"),
        }
    }
    assert!(
        !admitted.is_empty() && admitted.len() <= LIMIT,
        "{} admitted with --max-connections {LIMIT}",
        admitted.len()
    );
    assert!(
        refused >= FLOOD - 2 * LIMIT,
        "only {refused} of {FLOOD} refused"
    );
    // WebSocket is refused too while the process is full.
    let (_s, status, head, _, _) =
        ws_upgrade(ws.addr(), ws.path(), &["wamp.2.json"]).expect("HTTP response");
    assert_eq!(status, 503, "{head}");
    // The admitted ones work; once the flood is gone, new sessions are admitted again.
    for c in &mut admitted {
        c.must_join("realm1");
    }
    for c in &mut admitted {
        c.must_leave();
    }
    drop(admitted);
    let again = wait_for(Duration::from_secs(5), || {
        RawClient::handshake(Conn::tcp(rs).ok()?, Serializer::Json).ok()
    });
    let mut c = again.expect("admitted again after the flood");
    c.must_join("realm1");
    c.must_leave();
}

#[test]
fn invalid_utf8_in_a_json_text_frame_closes_with_1007() {
    let router = start(&[]);
    survives(&router, |r| {
        let ws = r.endpoint("ws");
        let mut c = WsClient::connect(ws.addr(), ws.path(), Serializer::Json);
        c.must_join("realm1");
        c.send_frame(0x1, b"[16,1,{},\"com.example.t\",[\"\xff\xfe\"]]")
            .expect("send");
        match c.recv(REPLY_TIMEOUT) {
            Err(RecvError::Closed(Some(code))) => assert_eq!(code, 1007),
            other => panic!("invalid UTF-8 in a text frame: expected close 1007, got {other:?}"),
        }
        // Before HELLO too.
        let mut c = WsClient::connect(ws.addr(), ws.path(), Serializer::Json);
        c.send_frame(0x1, b"[1,\"realm1\xc0\",{}]").expect("send");
        match c.recv(REPLY_TIMEOUT) {
            Err(RecvError::Closed(Some(code))) => assert_eq!(code, 1007),
            other => panic!("invalid UTF-8 before HELLO: expected close 1007, got {other:?}"),
        }
    });
}

/// The router's resident set, from /proc/PID/status.
fn rss_kib(router: &RouterProcess) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", router.pid()))
        .expect("read /proc/PID/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmRSS in /proc/PID/status")
}

/// A subscriber that stops reading costs only itself: with policy `drop` its events are dropped
/// and counted, with `disconnect` it is closed and counted; either way a healthy subscriber of
/// the same topic gets every event and the router's memory stays bounded by the queue limit.
#[test]
fn subscriber_that_stops_reading_costs_only_itself() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use switchyard::codec::{Subscribe, SubscribeOptions, Value};
    const EVENTS: usize = 8192;
    const BATCH: usize = 16;
    const TOPIC: &str = "com.example.firehose";
    for policy in ["drop", "disconnect"] {
        let router = start(&[
            "--metrics",
            "127.0.0.1:0",
            "--outbound-queue-bytes",
            "262144",
            "--slow-consumer",
            policy,
        ]);
        let metrics = metrics_addr(&router);
        let rs = router.endpoint("rs").addr();
        let subscribe = |c: &mut RawClient| {
            c.send(&Message::Subscribe(Subscribe {
                request: 1,
                options: SubscribeOptions::default(),
                topic: TOPIC.into(),
            }))
            .expect("send SUBSCRIBE");
            assert!(matches!(c.recv(REPLY_TIMEOUT), Ok(Message::Subscribed(_))));
        };
        let mut stalled = RawClient::connect(rs, Serializer::MsgPack);
        stalled.must_join("realm1");
        subscribe(&mut stalled);
        let mut healthy = RawClient::connect(rs, Serializer::MsgPack);
        healthy.must_join("realm1");
        subscribe(&mut healthy);
        let received = Arc::new(AtomicUsize::new(0));
        let reader = {
            let received = received.clone();
            std::thread::spawn(move || {
                // Bounded by EVENTS and by a 10 s silence.
                while received.load(Ordering::Relaxed) < EVENTS {
                    match healthy.recv(Duration::from_secs(10)) {
                        Ok(Message::Event(_)) => {
                            received.fetch_add(1, Ordering::Relaxed);
                        }
                        other => return Err(format!("healthy subscriber got {other:?}")),
                    }
                }
                healthy.must_leave();
                Ok(())
            })
        };
        let mut publisher = RawClient::connect(rs, Serializer::MsgPack);
        publisher.must_join("realm1");
        let rss_before = rss_kib(&router);
        let blob = Value::Str("x".repeat(4096));
        // 32 MiB of events in batches; each batch waits (bounded) until the healthy subscriber
        // has it, so it alone never falls behind.
        let mut rss_max = rss_before;
        for batch in 0..EVENTS / BATCH {
            for i in 0..BATCH {
                publisher
                    .send(&Message::Publish(Box::new(Publish {
                        request: (batch * BATCH + i + 1) as u64,
                        options: PublishOptions::default(),
                        topic: TOPIC.into(),
                        payload: Payload::args(vec![blob.clone()]),
                    })))
                    .expect("PUBLISH");
            }
            let want = (batch + 1) * BATCH;
            let kept_up = wait_for(Duration::from_secs(10), || {
                (received.load(Ordering::Relaxed) >= want).then_some(())
            });
            assert!(
                kept_up.is_some(),
                "policy {policy}: the healthy subscriber has {} of {want} events",
                received.load(Ordering::Relaxed)
            );
            if batch % 64 == 0 {
                rss_max = rss_max.max(rss_kib(&router));
            }
        }
        reader
            .join()
            .expect("reader thread")
            .unwrap_or_else(|e| panic!("policy {policy}: {e}"));
        assert_eq!(received.load(Ordering::Relaxed), EVENTS);
        rss_max = rss_max.max(rss_kib(&router));
        // 32 MiB went to a subscriber that read nothing: the router kept at most its queue
        // (256 KiB) of it, plus allocator slack.
        assert!(
            rss_max < rss_before + 16 * 1024,
            "policy {policy}: RSS grew from {rss_before} KiB to {rss_max} KiB"
        );
        let s = Scrape::get(metrics);
        match policy {
            "drop" => {
                assert!(
                    s.sum("switchyard_events_dropped_total", &[]) > 0.0,
                    "no event dropped"
                );
                assert!(s.sum("switchyard_outbound_queue_bytes", &[]) <= 262144.0 + 8192.0);
                // The stalled subscriber is still connected; reading again, it gets events.
                assert_eq!(
                    s.sum("switchyard_slow_consumer_disconnects_total", &[]),
                    0.0
                );
                assert!(matches!(stalled.recv(REPLY_TIMEOUT), Ok(Message::Event(_))));
            }
            _ => {
                assert!(
                    s.sum("switchyard_slow_consumer_disconnects_total", &[]) >= 1.0,
                    "stalled subscriber not disconnected"
                );
                // What it had in the socket buffers, then the close.
                let mut got = 0usize;
                let closed = loop {
                    match stalled.recv(REPLY_TIMEOUT) {
                        Ok(_) if got < EVENTS => got += 1,
                        Ok(_) => break false,
                        Err(RecvError::Closed(_)) => break true,
                        Err(_) => break false,
                    }
                };
                assert!(closed, "stalled subscriber still open after {got} messages");
            }
        }
        publisher.must_leave();
    }
}

/// Sends `bytes` one at a time, waiting up to `gap` for the router to close the connection after
/// each; returns how many were sent before it did, or None if it never closed.
fn drip_until_closed(s: &mut std::net::TcpStream, bytes: &[u8], gap: Duration) -> Option<usize> {
    use std::io::{Read, Write};
    let mut sink = [0u8; 4096];
    for (i, b) in bytes.iter().enumerate() {
        if s.write_all(std::slice::from_ref(b)).is_err() {
            return Some(i);
        }
        s.set_read_timeout(Some(gap)).ok()?;
        let deadline = Instant::now() + gap;
        // Drain anything the router sends (a close frame) until the gap is over or it closes.
        while Instant::now() < deadline {
            match s.read(&mut sink) {
                Ok(0) => return Some(i + 1),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => break,
                Err(_) => return Some(i + 1),
            }
        }
    }
    None
}

/// Issue 21, item 2: after WELCOME, a message whose bytes drip in one at a time is bounded by
/// `--frame-timeout-ms` from its first byte: the connection is closed before the message is
/// complete and the `frame_timeout` limit is counted. Over RawSocket (one frame), WebSocket
/// (one frame) and WebSocket fragments (every frame complete, the message never).
#[test]
fn dripping_message_after_welcome_is_closed_by_the_frame_timeout() {
    const GAP: Duration = Duration::from_millis(100);
    let router = start(&["--frame-timeout-ms", "400", "--metrics", "127.0.0.1:0"]);
    let metrics = metrics_addr(&router);
    survives(&router, |r| {
        // RawSocket: a 64-byte message frame, header then payload, a byte per GAP.
        let mut c = RawClient::connect(r.endpoint("rs").addr(), Serializer::Json);
        c.must_join("realm1");
        let mut frame = rawsocket::encode_header(FrameKind::Message, 64)
            .expect("header")
            .to_vec();
        frame.extend_from_slice(&[b' '; 64]);
        let Conn::Tcp(s) = &mut c.conn else {
            unreachable!("TCP client")
        };
        let sent = drip_until_closed(s, &frame, GAP);
        assert!(
            matches!(sent, Some(n) if n < frame.len()),
            "RawSocket: connection not closed while a frame dripped in (sent {sent:?} of {})",
            frame.len()
        );

        // WebSocket: one masked binary frame of 64 bytes, a byte per GAP.
        let ws = r.endpoint("ws");
        let mut w = WsClient::connect(ws.addr(), ws.path(), Serializer::MsgPack);
        w.must_join("realm1");
        let mut frame = vec![0x82, 0x80 | 64, 1, 2, 3, 4];
        frame.extend_from_slice(&[0u8; 64]);
        let sent = drip_until_closed(&mut w.stream, &frame, GAP);
        assert!(
            matches!(sent, Some(n) if n < frame.len()),
            "WebSocket: connection not closed while a frame dripped in (sent {sent:?} of {})",
            frame.len()
        );

        // WebSocket fragments: each frame arrives whole, the message never ends.
        let mut w = WsClient::connect(ws.addr(), ws.path(), Serializer::MsgPack);
        w.must_join("realm1");
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut first = true;
        let closed = loop {
            assert!(
                Instant::now() < deadline,
                "fragments kept the connection open"
            );
            let opcode = if first { 0x2 } else { 0x0 };
            first = false;
            // FIN clear: a fragment of a message still being sent.
            let frame = [opcode, 0x81, 9, 9, 9, 9, 0x90 ^ 9];
            use std::io::Write;
            if w.stream.write_all(&frame).is_err() {
                break true;
            }
            let mut probe = [0u8; 64];
            w.stream.set_read_timeout(Some(GAP)).expect("timeout");
            use std::io::Read;
            match w.stream.read(&mut probe) {
                Ok(0) => break true,
                Ok(_) => {}
                Err(e) if is_timeout(&e) => {}
                Err(_) => break true,
            }
        };
        assert!(closed);
    });
    let deadline = Instant::now() + CLOSE_TIMEOUT;
    loop {
        let s = Scrape::get(metrics);
        let n = s
            .series("switchyard_limit_exceeded_total{shard=\"0\",limit=\"frame_timeout\"}")
            .unwrap_or(0.0);
        if n >= 3.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "frame_timeout counted {n} times, not 3"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Issue 21, item 2: `--idle-timeout-ms` closes a joined session that sends nothing, counted
/// as `idle_timeout`; without the flag an idle joined session stays (the healthy sessions in
/// every other test here).
#[test]
fn idle_timeout_closes_a_silent_joined_session() {
    let router = start(&["--idle-timeout-ms", "300", "--metrics", "127.0.0.1:0"]);
    let mut c = RawClient::connect(router.endpoint("rs").addr(), Serializer::Json);
    c.must_join("realm1");
    c.expect_close(Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("silent joined session: {e}"));
    let s = Scrape::get(metrics_addr(&router));
    assert_eq!(
        s.series("switchyard_limit_exceeded_total{shard=\"0\",limit=\"idle_timeout\"}"),
        Some(1.0)
    );
}

/// Issue 21, item 2 (transport ping): with `--ping-interval-ms`, a joined session that stays
/// silent is pinged; one that answers (the test clients answer pings while they read) stays
/// open over many intervals on RawSocket and WebSocket, one that does not answer is closed and
/// counted as `ping_timeout`.
#[test]
fn transport_ping_keeps_answering_sessions_and_closes_silent_ones() {
    // A session that does not read for two intervals is closed: the quiet ones must not
    // miss that while the other connects, nor when the machine is loaded.
    const INTERVAL: Duration = Duration::from_millis(500);
    let interval = INTERVAL.as_millis().to_string();
    let router = start(&["--ping-interval-ms", &interval, "--metrics", "127.0.0.1:0"]);
    let rs = router.endpoint("rs").addr();
    let ws = router.endpoint("ws");

    // A session that reads (and so answers pings) but never sends a WAMP message.
    fn answers_pings_for(c: &mut impl WampConn, d: Duration, what: &str) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            match c.recv(end.saturating_duration_since(Instant::now())) {
                Err(RecvError::Timeout) => {}
                other => panic!("{what}: quiet session got {other:?}"),
            }
        }
    }
    fn still_answers(c: &mut impl WampConn, what: &str) {
        call(c, 7, "wamp.session.count");
        match c.recv(REPLY_TIMEOUT) {
            Ok(Message::Result(r)) if r.request == 7 => {}
            other => panic!("{what}: after pings, expected RESULT, got {other:?}"),
        }
    }
    let mut quiet_rs = RawClient::connect(rs, Serializer::Json);
    quiet_rs.must_join("realm1");
    let mut quiet_ws = WsClient::connect(ws.addr(), ws.path(), Serializer::MsgPack);
    quiet_ws.must_join("realm1");
    // Both read at the same time (a session not reading does not answer).
    std::thread::scope(|t| {
        t.spawn(|| {
            answers_pings_for(&mut quiet_rs, INTERVAL * 6, "RawSocket");
            still_answers(&mut quiet_rs, "RawSocket");
            quiet_rs.must_leave();
        });
        t.spawn(|| {
            answers_pings_for(&mut quiet_ws, INTERVAL * 6, "WebSocket");
            still_answers(&mut quiet_ws, "WebSocket");
            quiet_ws.must_leave();
        });
    });

    // A session that reads nothing: it is sent a PING frame, then closed.
    let mut dead = RawClient::connect(rs, Serializer::Json);
    dead.must_join("realm1");
    let mut header = [0u8; 4];
    use std::io::Read;
    dead.conn
        .set_read_timeout(CLOSE_TIMEOUT)
        .expect("read timeout");
    dead.conn.read_exact(&mut header).expect("a PING frame");
    let h = rawsocket::parse_frame_header(&header).expect("valid header");
    assert_eq!(h.kind, FrameKind::Ping, "the router pings a silent session");
    let mut payload = vec![0u8; h.len as usize];
    dead.conn.read_exact(&mut payload).expect("PING payload");
    // Not answered: the connection ends (nothing else arrives first).
    let mut rest = [0u8; 64];
    match dead.conn.read(&mut rest) {
        Ok(0) => {}
        Err(e) if !is_timeout(&e) => {}
        other => panic!("unanswered ping: expected the connection closed, got {other:?}"),
    }
    let deadline = Instant::now() + CLOSE_TIMEOUT;
    loop {
        let n = Scrape::get(metrics_addr(&router))
            .series("switchyard_limit_exceeded_total{shard=\"0\",limit=\"ping_timeout\"}")
            .unwrap_or(0.0);
        if n == 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ping_timeout counted {n} times, not 1"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Issue 21, item 3: a RawSocket client announcing the smallest maximum message length
/// (handshake `7f 01 00 00`: 512 bytes, JSON) cannot be sent the router's WELCOME (its roles and
/// features take more). The session must end cleanly with ABORT
/// `wamp.error.payload_size_exceeded` and a close, never be treated as joined.
#[test]
fn welcome_larger_than_the_peer_accepts_ends_the_session_with_abort() {
    let router = start(&[]);
    survives(&router, |r| {
        let conn = Conn::tcp(r.endpoint("rs").addr()).expect("connect");
        let mut c = RawClient::handshake_with_max(conn, Serializer::Json, 0).expect("handshake");
        c.send(&hello("realm1")).expect("send HELLO");
        let got = c
            .expect_close(CLOSE_TIMEOUT)
            .unwrap_or_else(|e| panic!("512-byte client after HELLO: {e}"));
        assert!(
            matches!(got.as_slice(), [Message::Abort(a)] if a.reason.as_str() == "wamp.error.payload_size_exceeded"),
            "expected exactly ABORT wamp.error.payload_size_exceeded, got {got:?}"
        );
    });
}

/// Issue 21, item 8: one session's burst of 10,000 pipelined SUBSCRIBEs must not stall another
/// session on the same shard. While the burst is processed, a neighbour keeps calling
/// `wamp.session.count` (answered by the router itself on this shard); the behaviour checked:
/// every one of its calls is answered within `STALL_BOUND` (or half the burst's own duration
/// when a loaded machine stretches both), far below the time the whole burst takes to process,
/// i.e. the shard interleaves the neighbour with the burst instead of processing the burst in a
/// few long turns.
#[test]
fn subscribe_burst_does_not_stall_a_neighbour_on_the_same_shard() {
    use switchyard::codec::{self, Call, CallOptions, Payload, Subscribe, SubscribeOptions};
    const BURST: u64 = 10_000;
    // Generous: a turn is bounded to a few dozen messages (well under a millisecond in a
    // release build); a debug build on a loaded 2-core CI machine stays far below this too.
    const STALL_BOUND: Duration = Duration::from_millis(100);
    let router = start(&[]);
    let rs = router.endpoint("rs").addr();
    let mut probe = RawClient::connect(rs, Serializer::Json);
    probe.must_join("realm1");
    let call = |c: &mut RawClient, request: u64| -> Duration {
        let t = Instant::now();
        c.send(&Message::Call(Box::new(Call {
            request,
            options: CallOptions::default(),
            procedure: "wamp.session.count".into(),
            payload: Payload::default(),
        })))
        .expect("send CALL");
        match c.recv(REPLY_TIMEOUT) {
            Ok(Message::Result(r)) if r.request == request => t.elapsed(),
            other => panic!("CALL {request}: {other:?}"),
        }
    };
    for i in 1..=20 {
        call(&mut probe, i);
    }

    let mut burst = RawClient::connect(rs, Serializer::Json);
    burst.must_join("realm1");
    let mut bytes = Vec::new();
    for i in 1..=BURST {
        let m = codec::encode(
            Serializer::Json,
            &Message::Subscribe(Subscribe {
                request: i,
                options: SubscribeOptions::default(),
                topic: format!("com.example.burst.t{i}").into(),
            }),
        );
        let h = rawsocket::encode_header(FrameKind::Message, m.len() as u32).expect("header");
        bytes.extend_from_slice(&h);
        bytes.extend_from_slice(&m);
    }
    let started = Instant::now();
    let burster = std::thread::spawn(move || {
        burst.send_bytes(&bytes).expect("send the burst");
        let mut acked = 0;
        while acked < BURST {
            match burst.recv(Duration::from_secs(30)) {
                Ok(Message::Subscribed(_)) => acked += 1,
                other => panic!("after {acked} SUBSCRIBED: {other:?}"),
            }
        }
        started.elapsed()
    });
    // (start of the call relative to the burst, its latency)
    let mut calls: Vec<(Duration, Duration)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !burster.is_finished() {
        assert!(Instant::now() < deadline, "burst not processed within 60 s");
        let at = started.elapsed();
        let took = call(&mut probe, 100 + calls.len() as u64);
        calls.push((at, took));
    }
    let burst_took = burster.join().expect("burst thread");
    // Only the calls made while the burst was being processed.
    let during: Vec<Duration> = calls
        .iter()
        .filter(|(at, _)| *at < burst_took)
        .map(|(_, took)| *took)
        .collect();
    let worst = during.iter().max().copied().unwrap_or_default();
    eprintln!(
        "burst of {BURST} SUBSCRIBEs took {burst_took:?}; {} neighbour calls meanwhile, \
         slowest {worst:?}",
        during.len()
    );
    // On a machine whose CPUs are busy with other work everything stretches, the burst too: a
    // stall is then a call that waited for a large part of the burst, not merely for 100 ms.
    let bound = STALL_BOUND.max(burst_took / 2);
    assert!(
        worst < bound,
        "a neighbour's call took {worst:?} during the burst (bound {bound:?}; the burst took \
         {burst_took:?}; calls {during:?})"
    );
}

#[test]
fn request_id_zero_is_a_protocol_violation() {
    let router = start(&[]);
    survives(&router, |r| {
        let rs = r.endpoint("rs").addr();
        let mut callee = RawClient::connect(rs, Serializer::Json);
        callee.must_join("realm1");
        callee
            .send_payload(br#"[64,1,{},"com.example.zero"]"#)
            .expect("send REGISTER");
        match callee.recv(REPLY_TIMEOUT) {
            Ok(Message::Registered(_)) => {}
            other => panic!("expected REGISTERED, got {other:?}"),
        }
        // CALL with request ID 0: ABORT, and the callee sees nothing.
        let mut caller = RawClient::connect(rs, Serializer::Json);
        caller.must_join("realm1");
        caller
            .send_payload(br#"[48,0,{},"com.example.zero"]"#)
            .expect("send CALL");
        expect_protocol_violation(&mut caller, "CALL with request 0");
        // A valid CALL afterwards does reach the callee, so the silence above meant something.
        let mut caller = RawClient::connect(rs, Serializer::Json);
        caller.must_join("realm1");
        caller
            .send_payload(br#"[48,1,{},"com.example.zero"]"#)
            .expect("send CALL");
        match callee.recv(REPLY_TIMEOUT) {
            Ok(Message::Invocation(_)) => {}
            other => panic!("expected the INVOCATION of the valid CALL only, got {other:?}"),
        }
        // YIELD with request 0 from the callee is a violation as well.
        callee.send_payload(br#"[70,0,{}]"#).expect("send YIELD");
        expect_protocol_violation(&mut callee, "YIELD with request 0");
    });
}
