//! Every limit of the router exceeded against the real binary over real sockets: the peer gets
//! the answer the spec (or, where it names none, `switchyard.error.limit_exceeded`) calls for,
//! only the offending session is affected, and `switchyard_limit_exceeded_total{limit}` moves
//! (read from `/metrics` over HTTP).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::*;
use switchyard::codec::{
    Call, CallOptions, Message, Payload, Register, RegisterOptions, Serializer, Subscribe,
    SubscribeOptions, Value,
};
use switchyard::net::rawsocket::{self, FrameKind, RejectCode, SerializerId};
use switchyard::net::websocket::{
    self, ClientConfig, ClientHandshake, DeflateConfig, Role, WsEvent,
};

const LIMIT_EXCEEDED: &str = "switchyard.error.limit_exceeded";

fn start(extra: &[&str]) -> RouterProcess {
    let mut args = vec![
        "--ws",
        "127.0.0.1:0",
        "--rs",
        "127.0.0.1:0",
        "--shards",
        "1",
        "--metrics",
        "127.0.0.1:0",
    ];
    args.extend_from_slice(extra);
    RouterProcess::start(&args)
}

fn subscribe(request: u64, topic: &str) -> Message {
    Message::Subscribe(Subscribe {
        request,
        options: SubscribeOptions::default(),
        topic: topic.into(),
    })
}

fn register(request: u64, procedure: &str) -> Message {
    Message::Register(Register {
        request,
        options: RegisterOptions::default(),
        procedure: procedure.into(),
    })
}

fn call(request: u64, procedure: &str) -> Message {
    Message::Call(Box::new(Call {
        request,
        options: CallOptions::default(),
        procedure: procedure.into(),
        payload: Payload::args(vec![Value::from("x")]),
    }))
}

/// Expects ERROR `switchyard.error.limit_exceeded` answering request `request` of type `code`.
fn expect_limit_error(c: &mut impl WampConn, code: u64, request: u64) {
    match c.recv(REPLY_TIMEOUT) {
        Ok(Message::Error(e)) => {
            assert_eq!(e.error.as_str(), LIMIT_EXCEEDED, "{e:?}");
            assert_eq!((e.request_type, e.request), (code, request), "{e:?}");
        }
        other => panic!("expected ERROR {LIMIT_EXCEEDED} for request {request}, got {other:?}"),
    }
}

fn limit_count(router: &RouterProcess, limit: &str) -> f64 {
    Scrape::get(metrics_addr(router)).limit(limit)
}

fn wait_limit(router: &RouterProcess, limit: &str, at_least: f64) {
    eventually_scrape(
        metrics_addr(router),
        &format!("switchyard_limit_exceeded_total{{limit=\"{limit}\"}} >= {at_least}"),
        |s| s.limit(limit) >= at_least,
    );
}

#[test]
fn every_limit_is_a_series_from_the_start() {
    let router = start(&[]);
    let s = Scrape::get(metrics_addr(&router));
    for limit in [
        "message_size",
        "peer_message_size",
        "decompressed_size",
        "handshake_timeout",
        "hello_timeout",
        "frame_timeout",
        "idle_timeout",
        "ping_timeout",
        "connections",
        "pending_calls",
        "subscriptions",
        "registrations",
    ] {
        let key = format!("switchyard_limit_exceeded_total{{shard=\"0\",limit=\"{limit}\"}}");
        assert_eq!(s.series(&key), Some(0.0), "{key}");
    }
}

#[test]
fn subscriptions_per_session() {
    let router = start(&["--max-subscriptions-per-session", "2"]);
    let mut c = RawClient::connect(router.endpoint("rs").addr(), Serializer::Json);
    c.must_join("realm1");
    for (req, topic) in [(1, "com.example.a"), (2, "com.example.b")] {
        c.send(&subscribe(req, topic)).expect("send SUBSCRIBE");
        assert!(
            matches!(c.recv(REPLY_TIMEOUT), Ok(Message::Subscribed(s)) if s.request == req),
            "subscription {req} within the limit"
        );
    }
    c.send(&subscribe(3, "com.example.c"))
        .expect("send SUBSCRIBE");
    expect_limit_error(&mut c, switchyard::codec::code::SUBSCRIBE, 3);
    wait_limit(&router, "subscriptions", 1.0);
    // The session is still there, and another session has its own allowance.
    let mut other = RawClient::connect(router.endpoint("rs").addr(), Serializer::MsgPack);
    other.must_join("realm1");
    other
        .send(&subscribe(1, "com.example.c"))
        .expect("send SUBSCRIBE");
    assert!(matches!(
        other.recv(REPLY_TIMEOUT),
        Ok(Message::Subscribed(_))
    ));
    other.must_leave();
    c.must_leave();
}

#[test]
fn registrations_per_session() {
    let router = start(&["--max-registrations-per-session", "1"]);
    let ws = router.endpoint("ws");
    let mut c = WsClient::connect(ws.addr(), ws.path(), Serializer::MsgPack);
    c.must_join("realm1");
    c.send(&register(1, "com.example.one"))
        .expect("send REGISTER");
    assert!(matches!(c.recv(REPLY_TIMEOUT), Ok(Message::Registered(_))));
    c.send(&register(2, "com.example.two"))
        .expect("send REGISTER");
    expect_limit_error(&mut c, switchyard::codec::code::REGISTER, 2);
    wait_limit(&router, "registrations", 1.0);
    c.must_leave();
}

#[test]
fn pending_calls_per_session() {
    let router = start(&["--max-pending-calls-per-session", "2"]);
    let rs = router.endpoint("rs").addr();
    let mut callee = RawClient::connect(rs, Serializer::MsgPack);
    callee.must_join("realm1");
    callee
        .send(&register(1, "com.example.slow"))
        .expect("send REGISTER");
    assert!(matches!(
        callee.recv(REPLY_TIMEOUT),
        Ok(Message::Registered(_))
    ));
    let mut caller = RawClient::connect(rs, Serializer::Json);
    caller.must_join("realm1");
    // Two calls the callee holds, then a third over the limit.
    for req in 1..=2 {
        caller
            .send(&call(req, "com.example.slow"))
            .expect("send CALL");
        assert!(matches!(
            callee.recv(REPLY_TIMEOUT),
            Ok(Message::Invocation(_))
        ));
    }
    caller
        .send(&call(3, "com.example.slow"))
        .expect("send CALL");
    expect_limit_error(&mut caller, switchyard::codec::code::CALL, 3);
    wait_limit(&router, "pending_calls", 1.0);
    // The callee never saw the third call.
    assert!(
        matches!(
            callee.recv(Duration::from_millis(200)),
            Err(RecvError::Timeout)
        ),
        "the call over the limit reached the callee"
    );
    caller.must_leave();
    callee.must_leave();
}

#[test]
fn websocket_message_size_closes_with_1009() {
    let router = start(&["--max-message-size-ws", "1024"]);
    let ws = router.endpoint("ws");
    let mut healthy = WsClient::connect(ws.addr(), ws.path(), Serializer::Json);
    healthy.must_join("realm1");
    let mut c = WsClient::connect(ws.addr(), ws.path(), Serializer::Json);
    c.must_join("realm1");
    let big = format!("[16,1,{{}},\"com.example.t\",[\"{}\"]]", "x".repeat(2000));
    let _ = c.send_payload(big.as_bytes());
    match c.recv(REPLY_TIMEOUT) {
        Err(RecvError::Closed(Some(code))) => assert_eq!(code, 1009),
        other => panic!("expected close 1009, got {other:?}"),
    }
    wait_limit(&router, "message_size", 1.0);
    healthy.must_leave();
}

#[test]
fn rawsocket_frame_over_the_announced_length_closes_the_session() {
    let router = start(&["--max-message-size-rs", "1024"]);
    let rs = router.endpoint("rs").addr();
    let mut healthy = RawClient::connect(rs, Serializer::MsgPack);
    healthy.must_join("realm1");
    let mut c = RawClient::connect(rs, Serializer::Json);
    assert!(c.router_max_len <= 1024, "{}", c.router_max_len);
    c.must_join("realm1");
    let header =
        rawsocket::encode_header(FrameKind::Message, c.router_max_len + 1).expect("header");
    let _ = c.send_bytes(&header);
    c.expect_close(REPLY_TIMEOUT)
        .expect("frame over the announced maximum");
    wait_limit(&router, "message_size", 1.0);
    healthy.must_leave();
}

/// A WebSocket client with permessage-deflate from the crate's own client-side codec.
struct DeflateWs {
    s: TcpStream,
    dec: websocket::FrameDecoder,
    enc: websocket::FrameEncoder,
    buf: BytesMut,
}

impl DeflateWs {
    fn connect(router: &RouterProcess) -> DeflateWs {
        let ep = router.endpoint("ws");
        let mut s = TcpStream::connect(ep.addr()).expect("connect");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let deflate = DeflateConfig {
            min_size: 0,
            ..Default::default()
        };
        let cfg = ClientConfig {
            host: ep.addr().to_string(),
            path: ep.path().to_owned(),
            subprotocols: vec!["wamp.2.json".into()],
            deflate: Some(deflate.clone()),
            extra_headers: Vec::new(),
        };
        let (hs, request) = ClientHandshake::new(&cfg).expect("client handshake");
        s.write_all(&request).expect("send upgrade");
        let mut got = Vec::new();
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let (result, used) = loop {
            if let Some(r) = hs.parse_response(&got).expect("valid 101 response") {
                break r;
            }
            assert!(Instant::now() < deadline, "no complete 101 response");
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk) {
                Ok(0) => panic!("closed during the upgrade"),
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(_) => {}
            }
        };
        assert!(
            result.deflate.is_some(),
            "router declined permessage-deflate"
        );
        let (dec, enc) = websocket::codec(Role::Client, 1 << 24, result.deflate.as_ref(), &deflate);
        DeflateWs {
            s,
            dec,
            enc,
            buf: BytesMut::from(&got[used..]),
        }
    }

    fn send_text(&mut self, text: &[u8]) -> usize {
        let mut out = BytesMut::new();
        self.enc.message(false, text, &mut out).expect("compress");
        let _ = self.s.write_all(&out);
        out.len()
    }

    /// The next message or close code (bounded by [`REPLY_TIMEOUT`]).
    fn next(&mut self) -> Result<Vec<u8>, Option<u16>> {
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            match self.dec.poll(&mut self.buf) {
                Ok(Some(WsEvent::Message { data, .. })) => return Ok(data.to_vec()),
                Ok(Some(WsEvent::Close { code, .. })) => return Err(code),
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(e) => panic!("router sent a bad frame: {e}"),
            }
            assert!(Instant::now() < deadline, "nothing from the router");
            let mut chunk = [0u8; 16 * 1024];
            match self.s.read(&mut chunk) {
                Ok(0) => return Err(None),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return Err(None),
                Err(_) => {}
            }
        }
    }
}

#[test]
fn zip_bomb_is_refused_with_1009() {
    let router = start(&["--max-decompressed-size-ws", "65536"]);
    let ws = router.endpoint("ws");
    let mut healthy = WsClient::connect(ws.addr(), ws.path(), Serializer::MsgPack);
    healthy.must_join("realm1");

    let mut c = DeflateWs::connect(&router);
    c.send_text(br#"[1,"realm1",{"roles":{"subscriber":{}}}]"#);
    let welcome = c.next().expect("WELCOME");
    assert!(
        welcome.starts_with(b"[2,"),
        "{:?}",
        String::from_utf8_lossy(&welcome)
    );
    // A compressed message within the limit passes: 32 KiB of spaces inside a PUBLISH.
    let fine = format!(
        "[16,1,{{\"acknowledge\":true}},\"com.example.t\",[\"{}\"]]",
        " ".repeat(32 * 1024)
    );
    let wire = c.send_text(fine.as_bytes());
    assert!(wire < 1024, "32 KiB of spaces compressed to {wire} bytes");
    let published = c.next().expect("PUBLISHED");
    assert!(
        published.starts_with(b"[17,1,"),
        "{:?}",
        String::from_utf8_lossy(&published)
    );
    // 16 MiB of spaces: a frame of a few KiB on the wire, far past the decompressed limit.
    let bomb = format!(
        "[16,2,{{}},\"com.example.t\",[\"{}\"]]",
        " ".repeat(16 << 20)
    );
    let wire = c.send_text(bomb.as_bytes());
    assert!(wire < 64 * 1024, "the bomb is {wire} bytes on the wire");
    assert_eq!(c.next(), Err(Some(1009)), "close code for a zip bomb");
    wait_limit(&router, "decompressed_size", 1.0);
    assert_eq!(limit_count(&router, "message_size"), 0.0);
    healthy.must_leave();
}

#[test]
fn hello_timeout_is_counted() {
    let router = start(&["--hello-timeout-ms", "200"]);
    let mut c = RawClient::connect(router.endpoint("rs").addr(), Serializer::Json);
    let got = c
        .expect_close(Duration::from_secs(5))
        .expect("closed after the HELLO timeout");
    assert!(
        matches!(got.as_slice(), [Message::Abort(a)] if a.reason.as_str() == "wamp.error.timeout"),
        "{got:?}"
    );
    wait_limit(&router, "hello_timeout", 1.0);
}

#[test]
fn handshake_timeout_is_counted() {
    let router = start(&["--handshake-timeout-ms", "200"]);
    // One RawSocket connection and one WebSocket connection that send nothing at all.
    let mut rs = Conn::tcp(router.endpoint("rs").addr()).expect("connect");
    let mut ws = Conn::tcp(router.endpoint("ws").addr()).expect("connect");
    for (what, conn) in [("rs", &mut rs), ("ws", &mut ws)] {
        let bytes = conn
            .read_until_closed(Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(bytes.is_empty(), "{what}: router sent {bytes:02x?}");
    }
    wait_limit(&router, "handshake_timeout", 2.0);
}

#[test]
fn connections_over_the_limit_are_refused_and_counted() {
    let router = start(&["--max-connections", "2"]);
    let rs = router.endpoint("rs").addr();
    let mut a = RawClient::connect(rs, Serializer::Json);
    a.must_join("realm1");
    let mut b = RawClient::connect(rs, Serializer::Json);
    b.must_join("realm1");
    let mut third = Conn::tcp(rs).expect("connect");
    let reply = rawsocket_handshake(&mut third, rawsocket::client_hello(SerializerId::JSON, 15))
        .expect("handshake reply");
    assert_eq!(
        reply,
        rawsocket::reject_reply(RejectCode::MaxConnectionCountReached)
    );
    let ws = router.endpoint("ws");
    let (_s, status, head, _, _) =
        ws_upgrade(ws.addr(), ws.path(), &["wamp.2.json"]).expect("HTTP response");
    assert_eq!(status, 503, "{head}");
    wait_limit(&router, "connections", 2.0);
    a.must_leave();
    b.must_leave();
}

/// A RawSocket peer that accepts at most 2048-octet messages (handshake exponent 2; a WELCOME
/// listing every feature needs more than 512).
fn small_peer(router: &RouterProcess) -> RawClient {
    let conn = Conn::tcp(router.endpoint("rs").addr()).expect("connect");
    let mut c = RawClient::handshake_with_max(conn, Serializer::Json, 2).expect("handshake");
    c.must_join("realm1");
    c
}

fn expect_payload_size_exceeded(c: &mut impl WampConn, request: u64) {
    match c.recv(REPLY_TIMEOUT) {
        Ok(Message::Error(e)) => {
            assert_eq!(
                e.error.as_str(),
                "wamp.error.payload_size_exceeded",
                "{e:?}"
            );
            assert_eq!(
                (e.request_type, e.request),
                (switchyard::codec::code::CALL, request),
                "{e:?}"
            );
        }
        other => panic!("expected ERROR wamp.error.payload_size_exceeded, got {other:?}"),
    }
}

#[test]
fn messages_larger_than_the_peer_accepts_are_answered_with_payload_size_exceeded() {
    use switchyard::codec::{Publish, PublishOptions, Yield, YieldOptions};
    let router = start(&[]);
    let rs = router.endpoint("rs").addr();
    let big = Value::from("x".repeat(5000));

    // A RESULT too big for a small caller.
    let mut callee = RawClient::connect(rs, Serializer::MsgPack);
    callee.must_join("realm1");
    callee
        .send(&register(1, "com.example.big"))
        .expect("send REGISTER");
    assert!(matches!(
        callee.recv(REPLY_TIMEOUT),
        Ok(Message::Registered(_))
    ));
    let mut small = small_peer(&router);
    small.send(&call(1, "com.example.big")).expect("send CALL");
    let inv = match callee.recv(REPLY_TIMEOUT) {
        Ok(Message::Invocation(i)) => i.request,
        other => panic!("expected INVOCATION, got {other:?}"),
    };
    callee
        .send(&Message::Yield(Box::new(Yield {
            request: inv,
            options: YieldOptions::default(),
            payload: Payload::args(vec![big.clone()]),
        })))
        .expect("send YIELD");
    expect_payload_size_exceeded(&mut small, 1);
    wait_limit(&router, "peer_message_size", 1.0);

    // An INVOCATION too big for a small callee: the caller gets the ERROR.
    small
        .send(&register(2, "com.example.small"))
        .expect("send REGISTER");
    assert!(matches!(
        small.recv(REPLY_TIMEOUT),
        Ok(Message::Registered(_))
    ));
    let mut caller = WsClient::connect(
        router.endpoint("ws").addr(),
        router.endpoint("ws").path(),
        Serializer::Json,
    );
    caller.must_join("realm1");
    caller
        .send(&Message::Call(Box::new(Call {
            request: 5,
            options: CallOptions::default(),
            procedure: "com.example.small".into(),
            payload: Payload::args(vec![big.clone()]),
        })))
        .expect("send CALL");
    expect_payload_size_exceeded(&mut caller, 5);
    wait_limit(&router, "peer_message_size", 2.0);

    // An EVENT too big for a small subscriber is not sent; a small one still is.
    small
        .send(&subscribe(3, "com.example.news"))
        .expect("send SUBSCRIBE");
    assert!(matches!(
        small.recv(REPLY_TIMEOUT),
        Ok(Message::Subscribed(_))
    ));
    for (request, payload) in [(1, big), (2, Value::from("small"))] {
        caller
            .send(&Message::Publish(Box::new(Publish {
                request,
                options: PublishOptions::default(),
                topic: "com.example.news".into(),
                payload: Payload::args(vec![payload]),
            })))
            .expect("send PUBLISH");
    }
    match small.recv(REPLY_TIMEOUT) {
        Ok(Message::Event(e)) => {
            let args = e.payload.args_values().expect("args").expect("some args");
            assert_eq!(args, vec![Value::from("small")], "the small event only");
        }
        other => panic!("expected the small EVENT, got {other:?}"),
    }
    wait_limit(&router, "peer_message_size", 3.0);
    small.must_leave();
    caller.must_leave();
    callee.must_leave();
}
