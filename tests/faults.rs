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
        // UBJSON (4), FlatBuffers (5) and an unassigned id (15).
        for ser in [4u8, 5, 15] {
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
        let publish = Message::Publish(Publish {
            request: 1,
            options: PublishOptions::default(),
            topic: "com.example.topic".into(),
            payload: Payload::default(),
        });
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
            &["wamp.2.cbor.batched", "com.example.other"][..],
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
    for ser in Serializer::ALL {
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
    for ser in Serializer::ALL {
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
