//! The HTTP long-poll transport (issue 17, item 4) against the real binary, with a client
//! written from the spec (`transport_http_longpoll.md`) here: plain HTTP/1.1 POSTs over
//! `std::net`, each answer read with a deadline. autobahn-js's own long-poll client is driven
//! by the interop tests (`tests/interop.rs`).
//!
//! Covered: every protocol (JSON, MessagePack, CBOR, their `.batched` forms) for pub/sub and
//! RPC with RawSocket peers on a 2-shard router, requests spread over fresh connections (so
//! over both shards) and over one kept-alive connection; the errors (unknown transport, bad
//! `/open` bodies, oversized and chunked bodies, a bad batch, a bad message ending the session
//! with ABORT); CORS; an abandoned transport closed by the session timeout (its session leaves,
//! seen through the meta API); a client that stops receiving meeting the slow-consumer policy;
//! turning the transport off and moving it.

mod common;

use common::{metrics_addr, RawClient, RouterProcess, Scrape, WampConn};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use switchyard::codec::{self, Message, Serializer, Value};

/// The router's default long-poll base path.
const DEFAULT_BASE: &str = "/lp";
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// One HTTP answer.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        common::header(&self.head, name)
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A blocking HTTP/1.1 client: one kept-alive connection, or a fresh one per request.
struct Http {
    addr: SocketAddr,
    conn: Option<TcpStream>,
    keep_alive: bool,
}

impl Http {
    fn new(addr: SocketAddr, keep_alive: bool) -> Http {
        Http {
            addr,
            conn: None,
            keep_alive,
        }
    }

    /// Sends raw request bytes and reads one answer (Content-Length or close-delimited).
    fn raw(&mut self, request: &[u8]) -> Answer {
        let mut s = match self.conn.take() {
            Some(s) => s,
            None => {
                let s = TcpStream::connect(self.addr).expect("connect");
                s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
                s
            }
        };
        s.write_all(request).expect("send request");
        let mut got = Vec::new();
        let mut buf = [0u8; 16384];
        let deadline = Instant::now() + IO_TIMEOUT;
        let head_end = loop {
            if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(Instant::now() < deadline, "no answer head in time");
            match s.read(&mut buf) {
                Ok(0) => panic!("connection closed before an answer: {got:?}"),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => panic!("reading the answer: {e}"),
            }
        };
        let head = String::from_utf8_lossy(&got[..head_end]).into_owned();
        let status: u16 = head[9..12].parse().expect("status code");
        let len =
            common::header(&head, "content-length").map(|v| v.parse::<usize>().expect("length"));
        let mut body = got[head_end..].to_vec();
        match len {
            Some(n) => {
                while body.len() < n {
                    assert!(Instant::now() < deadline, "body not complete in time");
                    match s.read(&mut buf) {
                        Ok(0) => panic!("connection closed inside the body"),
                        Ok(k) => body.extend_from_slice(&buf[..k]),
                        Err(e) => panic!("reading the body: {e}"),
                    }
                }
            }
            None if status == 204 => {}
            None => {
                let _ = s.read_to_end(&mut body);
            }
        }
        let closing =
            common::header(&head, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if self.keep_alive && !closing {
            self.conn = Some(s);
        }
        Answer { status, head, body }
    }

    fn post(&mut self, path: &str, body: &[u8]) -> Answer {
        let mut req = format!(
            "POST {path}?x={} HTTP/1.1\r\nHost: test\r\nOrigin: http://app.example\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n",
            rand_x(),
            body.len()
        );
        if !self.keep_alive {
            req.push_str("Connection: close\r\n");
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.raw(&bytes)
    }
}

fn rand_x() -> u32 {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// A long-poll WAMP client: `/open`, then messages over `/send` and `/receive`.
struct LpClient {
    http: Http,
    base: String,
    serializer: Serializer,
    batched: bool,
    inbox: std::collections::VecDeque<Message>,
    /// The most messages one `/receive` answer carried.
    max_batch: usize,
}

impl LpClient {
    fn open(addr: SocketAddr, base: &str, protocol: &str, keep_alive: bool) -> LpClient {
        let mut http = Http::new(addr, keep_alive);
        let body = format!(r#"{{"protocols": ["wamp.2.nonsense", "{protocol}"]}}"#);
        let a = http.post(&format!("{base}/open"), body.as_bytes());
        assert_eq!(a.status, 200, "open {protocol}: {a:?}");
        let reply: serde_json::Value = serde_json::from_slice(&a.body).expect("open reply is JSON");
        assert_eq!(reply["protocol"], protocol, "{reply}");
        let id = reply["transport"]
            .as_str()
            .expect("transport id")
            .to_owned();
        assert!(id.len() >= 32, "an id that cannot be guessed: {id}");
        let batched = protocol.ends_with(".batched");
        let serializer = Serializer::from_subprotocol(protocol.trim_end_matches(".batched"))
            .expect("a known serializer");
        LpClient {
            http,
            base: format!("{base}/{id}"),
            serializer,
            batched,
            inbox: Default::default(),
            max_batch: 0,
        }
    }

    fn frame(&self, msgs: &[Vec<u8>]) -> Vec<u8> {
        if !self.batched {
            assert_eq!(msgs.len(), 1);
            return msgs[0].clone();
        }
        let mut out = Vec::new();
        for m in msgs {
            switchyard::net::websocket::batched::push(
                self.serializer.is_binary(),
                0x1e,
                m,
                &mut out,
            );
        }
        out
    }

    fn send_raw(&mut self, body: &[u8]) -> Answer {
        let path = format!("{}/send", self.base);
        self.http.post(&path, body)
    }

    fn receive_raw(&mut self) -> Answer {
        let path = format!("{}/receive", self.base);
        self.http.post(&path, b"")
    }

    fn close(&mut self) -> Answer {
        let path = format!("{}/close", self.base);
        self.http.post(&path, b"")
    }
}

impl WampConn for LpClient {
    fn serializer(&self) -> Serializer {
        self.serializer
    }

    fn send(&mut self, m: &Message) -> std::io::Result<()> {
        let body = self.frame(&[codec::encode(self.serializer, m).to_vec()]);
        let a = self.send_raw(&body);
        assert_eq!(a.status, 204, "send: {a:?}");
        Ok(())
    }

    fn send_payload(&mut self, payload: &[u8]) -> std::io::Result<()> {
        let body = self.frame(&[payload.to_vec()]);
        let a = self.send_raw(&body);
        assert_eq!(a.status, 204, "send: {a:?}");
        Ok(())
    }

    fn recv(&mut self, timeout: Duration) -> Result<Message, common::RecvError> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self.inbox.pop_front() {
                return Ok(m);
            }
            if Instant::now() >= deadline {
                return Err(common::RecvError::Timeout);
            }
            let a = self.receive_raw();
            match a.status {
                204 => continue,
                200 => {}
                410 | 404 => return Err(common::RecvError::Closed(Some(a.status))),
                s => panic!("receive answered {s}: {}", a.text()),
            }
            assert_eq!(
                a.header("content-type")
                    .map(|c| c.split(';').next().unwrap_or("")),
                Some(
                    switchyard::net::longpoll::content_type(self.serializer)
                        .split(';')
                        .next()
                        .unwrap_or("")
                ),
            );
            let body = bytes::Bytes::from(a.body);
            let frames = if self.batched {
                let mut sep = 0x1e;
                switchyard::net::websocket::batched::split(
                    self.serializer.is_binary(),
                    &body,
                    &mut sep,
                )
                .expect("a valid batch")
            } else {
                vec![body]
            };
            self.max_batch = self.max_batch.max(frames.len());
            for f in frames {
                let m = codec::decode(self.serializer, &f).map_err(common::RecvError::Decode)?;
                self.inbox.push_back(m);
            }
        }
    }
}

/// A message written as JSON text (binary as the JSON `\u0000`+base64 string convention).
fn msg(json: &str) -> Message {
    codec::decode(Serializer::Json, &bytes::Bytes::from(json.to_owned())).expect(json)
}

fn expect(c: &mut impl WampConn, what: &str, pred: impl Fn(&Message) -> bool) -> Message {
    match c.recv(Duration::from_secs(10)) {
        Ok(m) if pred(&m) => m,
        other => panic!("expected {what}, got {other:?}"),
    }
}

/// `callee` registers `procedure` (request `ids.0`) and answers one call from `caller`
/// (request `ids.1`) with the arguments it got; the RESULT must carry `expected`.
fn echo_once(
    callee: &mut impl WampConn,
    caller: &mut impl WampConn,
    procedure: &str,
    ids: (u64, u64),
    expected: &[Value],
) {
    callee
        .send(&msg(&format!(r#"[64, {}, {{}}, "{procedure}"]"#, ids.0)))
        .unwrap();
    expect(callee, "REGISTERED", |m| {
        matches!(m, Message::Registered(_))
    });
    caller
        .send(&msg(&format!(
            r#"[48, {}, {{}}, "{procedure}", {}]"#,
            ids.1,
            args_json()
        )))
        .unwrap();
    let Message::Invocation(inv) = expect(callee, "INVOCATION", |m| {
        matches!(m, Message::Invocation(_))
    }) else {
        unreachable!()
    };
    callee
        .send(&msg(&format!(
            r#"[70, {}, {{}}, {}]"#,
            inv.request,
            args_json()
        )))
        .unwrap();
    let Message::Result(res) = expect(caller, "RESULT", |m| matches!(m, Message::Result(_))) else {
        unreachable!()
    };
    assert_eq!(
        res.payload.args_values().expect("args").unwrap_or_default(),
        expected,
        "{procedure}: the result's arguments"
    );
}

fn lp_base(r: &RouterProcess) -> (SocketAddr, String) {
    (r.endpoint("ws").addr(), DEFAULT_BASE.to_owned())
}

const PROTOCOLS: [&str; 6] = [
    "wamp.2.json",
    "wamp.2.msgpack",
    "wamp.2.cbor",
    "wamp.2.json.batched",
    "wamp.2.msgpack.batched",
    "wamp.2.cbor.batched",
];

fn args_json() -> &'static str {
    r#"["\u0000AAH+/w==", "unicode: é 中 🚀", 9007199254740993, {"deep": {"list": [null, true, -2.5]}}]"#
}

#[test]
fn pubsub_and_rpc_over_every_protocol() {
    let r = RouterProcess::start_ws_rs(&[]);
    let (addr, base) = lp_base(&r);
    let rs = r.endpoint("rs").addr();
    let expected_args = match msg(&format!("[16, 1, {{}}, \"x\", {}]", args_json())) {
        Message::Publish(p) => p.payload.args_values().expect("args").unwrap_or_default(),
        _ => unreachable!(),
    };
    for (i, protocol) in PROTOCOLS.into_iter().enumerate() {
        // Odd rounds: one kept-alive connection; even ones: a fresh connection per request.
        let mut lp = LpClient::open(addr, &base, protocol, i % 2 == 1);
        let w = lp.must_join("realm1");
        let d = switchyard::session::welcome_dict(&w);
        let t = d
            .get("transport")
            .and_then(Value::as_dict)
            .expect("transport details");
        assert_eq!(
            t.get("type").and_then(Value::as_str),
            Some("longpoll"),
            "{protocol}"
        );
        assert_eq!(
            t.get("batched"),
            Some(&Value::Bool(protocol.ends_with(".batched"))),
            "{protocol}"
        );

        let mut peer = RawClient::connect(rs, Serializer::MsgPack);
        peer.must_join("realm1");

        // Pub/sub: a RawSocket publisher reaches the long-poll subscriber.
        lp.send(&msg(r#"[32, 1, {}, "com.lp.topic"]"#)).unwrap();
        expect(&mut lp, "SUBSCRIBED", |m| {
            matches!(m, Message::Subscribed(_))
        });
        for n in 0..5 {
            peer.send(&msg(&format!(
                r#"[16, {}, {{"acknowledge": true}}, "com.lp.topic", {}]"#,
                n + 10,
                args_json()
            )))
            .unwrap();
            expect(&mut peer, "PUBLISHED", |m| {
                matches!(m, Message::Published(_))
            });
        }
        for _ in 0..5 {
            let ev = expect(&mut lp, "EVENT", |m| matches!(m, Message::Event(_)));
            let Message::Event(ev) = ev else {
                unreachable!()
            };
            assert_eq!(
                ev.payload.args_values().expect("args").unwrap_or_default(),
                expected_args,
                "{protocol}: the event's arguments"
            );
        }
        if protocol.ends_with(".batched") {
            assert!(
                lp.max_batch > 1,
                "{protocol}: pending events come in one batch"
            );
        } else {
            assert_eq!(lp.max_batch, 1, "{protocol}: one message per answer");
        }

        // The long-poll session publishes to the RawSocket one.
        peer.send(&msg(r#"[32, 2, {}, "com.lp.back"]"#)).unwrap();
        expect(&mut peer, "SUBSCRIBED", |m| {
            matches!(m, Message::Subscribed(_))
        });
        lp.send(&msg(&format!(
            r#"[16, 3, {{"acknowledge": true}}, "com.lp.back", {}]"#,
            args_json()
        )))
        .unwrap();
        expect(&mut lp, "PUBLISHED", |m| matches!(m, Message::Published(_)));
        let ev = expect(&mut peer, "EVENT", |m| matches!(m, Message::Event(_)));
        let Message::Event(ev) = ev else {
            unreachable!()
        };
        assert_eq!(
            ev.payload.args_values().expect("args").unwrap_or_default(),
            expected_args
        );

        // RPC both ways: the long-poll session as callee, then as caller.
        echo_once(&mut lp, &mut peer, "com.lp.echo", (4, 5), &expected_args);
        echo_once(&mut peer, &mut lp, "com.rs.echo", (6, 7), &expected_args);

        lp.must_leave();
        peer.must_leave();
        let a = lp.close();
        assert_eq!(a.status, 204, "close: {a:?}");
        assert_eq!(
            a.header("access-control-allow-origin"),
            Some("http://app.example"),
            "CORS: {a:?}"
        );
        let a = lp.receive_raw();
        assert_eq!(a.status, 404, "a closed transport is gone: {a:?}");
    }
}

#[test]
fn bad_requests_get_clear_answers() {
    let r = RouterProcess::start_ws_rs(&["--max-message-size-ws", "4096"]);
    let (addr, base) = lp_base(&r);
    let mut http = Http::new(addr, false);

    let a = http.post(
        &format!("{base}/open"),
        br#"{"protocols": ["wamp.2.nonsense"]}"#,
    );
    assert_eq!(a.status, 400, "{a:?}");
    assert!(
        a.text().contains("wamp.2.json"),
        "names what it speaks: {}",
        a.text()
    );
    let a = http.post(&format!("{base}/open"), b"{not json");
    assert_eq!(a.status, 400, "{a:?}");
    assert!(a.text().contains("protocols"), "{}", a.text());
    let a = http.post(
        &format!("{base}/0123456789abcdef0123456789abcdef/receive"),
        b"",
    );
    assert_eq!(a.status, 404, "unknown transport: {a:?}");
    let a = http.post(&format!("{base}/nothing"), b"");
    assert_eq!(a.status, 404, "{a:?}");
    let a = http.raw(format!("PUT {base}/open HTTP/1.1\r\nContent-Length: 0\r\n\r\n").as_bytes());
    assert_eq!(a.status, 405, "{a:?}");
    let a = http.raw(
        format!("POST {base}/open HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(a.status, 411, "{a:?}");
    let a = http.raw(
        format!(
            "OPTIONS {base}/open HTTP/1.1\r\nOrigin: http://app.example\r\n\
             Access-Control-Request-Method: POST\r\n\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(a.status, 204, "preflight: {a:?}");
    assert_eq!(
        a.header("access-control-allow-origin"),
        Some("http://app.example")
    );
    assert!(a
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("POST")));
    // A GET is a WebSocket upgrade attempt, refused as one.
    let a = http.raw(format!("GET {base}/open HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    assert!(a.status >= 400, "{a:?}");

    // A body over the message size limit: 413, and the transport is gone.
    let mut lp = LpClient::open(addr, &base, "wamp.2.json", false);
    lp.must_join("realm1");
    let big = format!(r#"[16, 1, {{}}, "com.big", ["{}"]]"#, "x".repeat(5000));
    let a = lp.send_raw(big.as_bytes());
    assert_eq!(a.status, 413, "{a:?}");
    assert_eq!(lp.receive_raw().status, 404, "closed with its transport");

    // A message that is not WAMP: the session ends with ABORT, then the transport says so.
    let mut lp = LpClient::open(addr, &base, "wamp.2.json", true);
    lp.must_join("realm1");
    lp.send_payload(b"[1, \"not-a-uri\"").unwrap();
    match lp.recv(Duration::from_secs(10)) {
        Ok(Message::Abort(a)) => assert_eq!(a.reason.as_str(), "wamp.error.protocol_violation"),
        other => panic!("expected ABORT, got {other:?}"),
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let a = lp.receive_raw();
        if a.status == 410 {
            break;
        }
        assert!(
            Instant::now() < deadline && a.status == 204,
            "then 410: {a:?}"
        );
    }
    assert_eq!(lp.receive_raw().status, 404);

    // A bad batch closes a batched transport, as it closes a batched WebSocket.
    let mut lp = LpClient::open(addr, &base, "wamp.2.msgpack.batched", false);
    lp.must_join("realm1");
    let a = lp.send_raw(&[0, 0, 0, 9, 1]);
    assert_eq!(a.status, 400, "{a:?}");
    assert!(a.text().contains("batch"), "{}", a.text());
    assert_eq!(lp.receive_raw().status, 404);

    // Everything above left other sessions alone.
    let mut ok = LpClient::open(addr, &base, "wamp.2.cbor", true);
    ok.must_join("realm1");
    ok.must_leave();
}

#[test]
fn abandoned_transports_close_and_slow_receivers_meet_the_policy() {
    let r = RouterProcess::start_ws_rs(&[
        "--longpoll-session-timeout-ms",
        "600",
        "--longpoll-request-timeout-ms",
        "200",
        "--outbound-queue-bytes",
        "65536",
        "--slow-consumer",
        "disconnect",
        "--metrics",
        "127.0.0.1:0",
    ]);
    let (addr, base) = lp_base(&r);
    let rs = r.endpoint("rs").addr();
    let mut watcher = RawClient::connect(rs, Serializer::Json);
    watcher.must_join("realm1");
    watcher
        .send(&msg(r#"[32, 1, {}, "wamp.session.on_leave"]"#))
        .unwrap();
    expect(&mut watcher, "SUBSCRIBED", |m| {
        matches!(m, Message::Subscribed(_))
    });

    // Abandoned: joins, then never asks again. Its session leaves after the timeout.
    let metrics = metrics_addr(&r);
    let open_transports = || Scrape::get(metrics).sum("switchyard_longpoll_transports", &[]);
    // From before the join: its last poll starts the timeout, later than this.
    let started = Instant::now();
    let mut lp = LpClient::open(addr, &base, "wamp.2.json", false);
    let w = lp.must_join("realm1");
    assert_eq!(open_transports(), 1.0, "the open transport is counted");
    let ev = expect(&mut watcher, "on_leave", |m| matches!(m, Message::Event(_)));
    let Message::Event(ev) = ev else {
        unreachable!()
    };
    let args = ev.payload.args_values().expect("args").unwrap_or_default();
    assert_eq!(args.first(), Some(&Value::UInt(w.session)), "{args:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "not before the timeout"
    );
    assert_eq!(
        lp.receive_raw().status,
        404,
        "the abandoned transport is gone"
    );
    assert!(
        common::wait_for(Duration::from_secs(5), || (open_transports() == 0.0)
            .then_some(()))
        .is_some(),
        "and no longer counted"
    );

    // Polling keeps a transport alive past the session timeout.
    let mut lp = LpClient::open(addr, &base, "wamp.2.msgpack", true);
    lp.must_join("realm1");
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        assert_eq!(lp.receive_raw().status, 204, "alive while polled");
    }
    lp.must_leave();

    // Stops receiving while events flood in: its queue fills and the policy disconnects it.
    let mut slow = LpClient::open(addr, &base, "wamp.2.json", false);
    slow.must_join("realm1");
    slow.send(&msg(r#"[32, 1, {}, "com.flood"]"#)).unwrap();
    expect(&mut slow, "SUBSCRIBED", |m| {
        matches!(m, Message::Subscribed(_))
    });
    let mut publisher = RawClient::connect(rs, Serializer::MsgPack);
    publisher.must_join("realm1");
    let payload = format!(r#"["{}"]"#, "y".repeat(1000));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 0u64;
    loop {
        for _ in 0..50 {
            n += 1;
            publisher
                .send(&msg(&format!(r#"[16, {n}, {{}}, "com.flood", {payload}]"#)))
                .unwrap();
        }
        // (Well within the session timeout: the queue fills after about 130 such events.)
        let s = Scrape::get(metrics);
        if s.sum("switchyard_slow_consumer_disconnects_total", &[]) >= 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no slow-consumer disconnect after {n} events"
        );
    }
    // The publisher was not affected.
    publisher
        .send(&msg(
            r#"[16, 999999, {"acknowledge": true}, "com.flood", []]"#,
        ))
        .unwrap();
    expect(&mut publisher, "PUBLISHED", |m| {
        matches!(m, Message::Published(_))
    });
}

#[test]
fn longpoll_can_be_moved_or_turned_off() {
    // A base path of two segments, given with a trailing slash.
    let moved = format!("/{}/{}", "wamp", "longpoll");
    let r = RouterProcess::start_ws_rs(&["--longpoll-path", &format!("{moved}/")]);
    let addr = r.endpoint("ws").addr();
    let mut lp = LpClient::open(addr, &moved, "wamp.2.json", true);
    lp.must_join("realm1");
    lp.must_leave();
    let a = Http::new(addr, false).post(
        &format!("{DEFAULT_BASE}/open"),
        br#"{"protocols": ["wamp.2.json"]}"#,
    );
    assert!(a.status >= 400, "not at the default path any more: {a:?}");
    drop(r);

    let r = RouterProcess::start_ws_rs(&["--no-longpoll"]);
    let addr = r.endpoint("ws").addr();
    let a = Http::new(addr, false).post(
        &format!("{DEFAULT_BASE}/open"),
        br#"{"protocols": ["wamp.2.json"]}"#,
    );
    assert!(a.status >= 400, "off: {a:?}");
    drop(r);

    let bad = std::process::Command::new(common::router_binary())
        .args(["--ws", "127.0.0.1:0", "--longpoll-path", "no-slash"])
        .output()
        .expect("run the router");
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("longpoll-path"), "names the flag: {err}");
}
