//! The metrics endpoint and the logs of the real `switchyard` binary, driven over RawSocket +
//! MessagePack by a tiny blocking client (std::net; `switchyard::codec` and
//! `switchyard::net::rawsocket`). Every listener binds 127.0.0.1:0; every wait is bounded.

mod common;

use bytes::BytesMut;
use common::Scrape;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use switchyard::codec::{
    self, Call, CallOptions, Dict, Goodbye, Hello, HelloDetails, Message, Payload, Publish,
    PublishOptions, Register, RegisterOptions, Serializer, Subscribe, SubscribeOptions, Uri, Value,
    Yield, YieldOptions,
};
use switchyard::net::rawsocket::{self, FrameDecoder, FrameKind, RawFrame, SerializerId};

const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The router process; killed on drop if the test did not stop it.
struct Router {
    child: Child,
    rs: SocketAddr,
    metrics: SocketAddr,
}

impl Router {
    fn start(extra: &[&str]) -> Router {
        let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["--no-ws", "--rs", "127.0.0.1:0", "--metrics", "127.0.0.1:0"])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start switchyard");
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let (mut rs, mut metrics) = (None, None);
        // Bounded: the router prints a handful of lines, then `ready`.
        for _ in 0..20 {
            let Some(Ok(line)) = lines.next() else { break };
            if let Some(a) = line.strip_prefix("listening rs://") {
                rs = a.parse().ok();
            } else if let Some(a) = line.strip_prefix("listening metrics http://") {
                metrics = a.parse().ok();
            } else if line == "ready" {
                break;
            }
        }
        let (Some(rs), Some(metrics)) = (rs, metrics) else {
            let _ = child.kill();
            panic!("router did not print its rs and metrics addresses");
        };
        Router { child, rs, metrics }
    }

    /// SIGTERM, then waits (bounded) for a clean exit; returns stderr.
    fn stop(mut self) -> String {
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "router exited with {status}");
                break;
            }
            assert!(Instant::now() < deadline, "router did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        err
    }

    fn get(&self, path: &str) -> (u16, String) {
        let mut s = TcpStream::connect(self.metrics).unwrap();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).unwrap();
        let status = resp
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = resp.split_once("\r\n\r\n").map_or("", |x| x.1).to_owned();
        (status, body)
    }

    fn scrape(&self) -> Scrape {
        let (status, body) = self.get("/metrics");
        assert_eq!(status, 200);
        Scrape::parse(&body)
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking RawSocket + MessagePack WAMP peer.
struct Peer {
    s: TcpStream,
    dec: FrameDecoder,
    buf: BytesMut,
    session: u64,
}

impl Peer {
    fn connect(addr: SocketAddr, recv_buffer: Option<usize>) -> Peer {
        let sock =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        if let Some(n) = recv_buffer {
            sock.set_recv_buffer_size(n).unwrap();
        }
        sock.connect_timeout(&addr.into(), IO_TIMEOUT).unwrap();
        let mut s: TcpStream = sock.into();
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        s.set_nodelay(true).unwrap();
        s.write_all(&rawsocket::client_hello(SerializerId::MSGPACK, 15))
            .unwrap();
        let mut reply = [0u8; 4];
        s.read_exact(&mut reply).unwrap();
        rawsocket::parse_server_reply(reply, SerializerId::MSGPACK).unwrap();
        Peer {
            s,
            dec: FrameDecoder::for_exponent(15),
            buf: BytesMut::new(),
            session: 0,
        }
    }

    fn join(addr: SocketAddr) -> Peer {
        let mut p = Peer::connect(addr, None);
        p.send(&Message::Hello(Box::new(Hello {
            realm: Uri::from("realm1"),
            details: HelloDetails::default(),
        })));
        match p.recv() {
            Message::Welcome(w) => p.session = w.session,
            other => panic!("expected WELCOME, got {other:?}"),
        }
        p
    }

    fn send(&mut self, m: &Message) {
        let body = codec::encode(Serializer::MsgPack, m);
        let head = rawsocket::encode_header(FrameKind::Message, body.len() as u32).unwrap();
        self.s.write_all(&head).unwrap();
        self.s.write_all(&body).unwrap();
    }

    fn recv(&mut self) -> Message {
        loop {
            match self.dec.decode(&mut self.buf).unwrap() {
                Some(RawFrame::Message(b)) => {
                    return codec::decode(Serializer::MsgPack, &b).unwrap()
                }
                Some(_) => continue,
                None => {}
            }
            let mut chunk = [0u8; 64 * 1024];
            let n = self.s.read(&mut chunk).expect("read (timed out?)");
            assert!(n > 0, "router closed the connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn goodbye(mut self) {
        self.send(&Message::Goodbye(Goodbye {
            details: Dict::new(),
            reason: Uri::from("wamp.close.close_realm"),
        }));
        assert!(matches!(self.recv(), Message::Goodbye(_)));
    }
}

/// Polls (bounded) until `f` holds for a fresh scrape.
fn eventually(r: &Router, what: &str, f: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = r.scrape();
        if f(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn counters_move_with_traffic() {
    let r = Router::start(&["--shards", "2"]);
    let (status, body) = r.get("/health");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let before = r.scrape();
    assert_eq!(before.sum("switchyard_shard_up", &[]), 2.0);
    assert_eq!(before.sum("switchyard_sessions", &[]), 0.0);
    assert_eq!(before.sum("switchyard_messages_received_total", &[]), 0.0);

    let mut sub = Peer::join(r.rs);
    sub.send(&Message::Subscribe(Subscribe {
        request: 1,
        options: SubscribeOptions::default(),
        topic: Uri::from("com.example.topic"),
    }));
    assert!(matches!(sub.recv(), Message::Subscribed(_)));
    let mut callee = Peer::join(r.rs);
    callee.send(&Message::Register(Register {
        request: 1,
        options: RegisterOptions::default(),
        procedure: Uri::from("com.example.add"),
    }));
    assert!(matches!(callee.recv(), Message::Registered(_)));

    let mut publisher = Peer::join(r.rs);
    publisher.send(&Message::Publish(Box::new(Publish {
        request: 1,
        options: PublishOptions {
            acknowledge: Some(true),
            ..Default::default()
        },
        topic: Uri::from("com.example.topic"),
        payload: Payload::args(vec![Value::Str("hello".into())]),
    })));
    assert!(matches!(publisher.recv(), Message::Published(_)));
    assert!(matches!(sub.recv(), Message::Event(_)));

    let mut caller = Peer::join(r.rs);
    caller.send(&Message::Call(Box::new(Call {
        request: 7,
        options: CallOptions::default(),
        procedure: Uri::from("com.example.add"),
        payload: Payload::args(vec![Value::int(1), Value::int(2)]),
    })));
    let inv = match callee.recv() {
        Message::Invocation(i) => i,
        other => panic!("expected INVOCATION, got {other:?}"),
    };
    callee.send(&Message::Yield(Box::new(Yield {
        request: inv.request,
        options: YieldOptions::default(),
        payload: Payload::args(vec![Value::int(3)]),
    })));
    assert!(matches!(caller.recv(), Message::Result(res) if res.request == 7));

    let during = eventually(&r, "4 sessions, the RESULT counted, the mesh idle", |s| {
        s.sum("switchyard_sessions", &[("realm", "realm1")]) == 4.0
            && s.sum("switchyard_call_latency_seconds_count", &[]) == 1.0
            && s.sum("switchyard_mesh_messages_sent_total", &[])
                == s.sum("switchyard_mesh_messages_received_total", &[])
    });
    let rx = |t| during.sum("switchyard_messages_received_total", &[("type", t)]);
    let tx = |t| during.sum("switchyard_messages_sent_total", &[("type", t)]);
    assert_eq!(during.sum("switchyard_connections", &[]), 4.0);
    assert_eq!(rx("HELLO"), 4.0);
    assert_eq!(rx("SUBSCRIBE"), 1.0);
    assert_eq!(rx("REGISTER"), 1.0);
    assert_eq!(rx("PUBLISH"), 1.0);
    assert_eq!(rx("CALL"), 1.0);
    assert_eq!(rx("YIELD"), 1.0);
    assert_eq!(tx("WELCOME"), 4.0);
    assert_eq!(tx("SUBSCRIBED"), 1.0);
    assert_eq!(tx("PUBLISHED"), 1.0);
    assert_eq!(tx("EVENT"), 1.0);
    assert_eq!(tx("INVOCATION"), 1.0);
    assert_eq!(tx("RESULT"), 1.0);
    // Routed by the realm: everything after HELLO.
    assert_eq!(
        during.sum(
            "switchyard_realm_messages_received_total",
            &[("realm", "realm1")]
        ),
        5.0
    );
    assert!(during.sum("switchyard_received_bytes_total", &[]) > 0.0);
    assert!(during.sum("switchyard_sent_bytes_total", &[]) > 0.0);
    assert_eq!(
        during.sum("switchyard_call_latency_seconds_bucket", &[("le", "+Inf")]),
        1.0
    );
    assert_eq!(during.sum("switchyard_events_dropped_total", &[]), 0.0);
    assert_eq!(during.sum("switchyard_auth_failures_total", &[]), 0.0);
    // Two shards exchange routing state (subscriptions, registrations) through the mesh.
    assert!(during.sum("switchyard_mesh_messages_sent_total", &[]) > 0.0);

    let bytes_in = during.sum("switchyard_received_bytes_total", &[]);
    for p in [sub, callee, publisher, caller] {
        p.goodbye();
    }
    let after = eventually(&r, "sessions back to 0", |s| {
        s.sum("switchyard_sessions", &[]) == 0.0 && s.sum("switchyard_connections", &[]) == 0.0
    });
    assert!(after.sum("switchyard_received_bytes_total", &[]) > bytes_in);
    assert_eq!(
        after.sum("switchyard_messages_received_total", &[("type", "GOODBYE")]),
        4.0
    );
    assert_eq!(after.sum("switchyard_outbound_queue_bytes", &[]), 0.0);
    r.stop();
}

#[test]
fn slow_subscriber_events_are_dropped_and_counted() {
    let r = Router::start(&[
        "--shards",
        "1",
        "--outbound-queue-bytes",
        "65536",
        "--slow-consumer",
        "drop",
    ]);
    // A subscriber that never reads, with a small socket receive buffer.
    let mut sub = Peer::connect(r.rs, Some(4096));
    sub.send(&Message::Hello(Box::new(Hello {
        realm: Uri::from("realm1"),
        details: HelloDetails::default(),
    })));
    assert!(matches!(sub.recv(), Message::Welcome(_)));
    sub.send(&Message::Subscribe(Subscribe {
        request: 1,
        options: SubscribeOptions::default(),
        topic: Uri::from("com.example.firehose"),
    }));
    assert!(matches!(sub.recv(), Message::Subscribed(_)));
    let mut publisher = Peer::join(r.rs);
    let blob = Value::Str("x".repeat(16 * 1024));
    // Bounded: 64 MiB of events at most, far past socket buffers plus the 64 KiB queue. A
    // burst alone fills the queue before the writer runs; keep going until the socket is
    // full too, so the queue stays non-empty.
    let (mut dropped, mut queued) = (0.0, 0.0);
    for batch in 0..32 {
        for i in 0..128 {
            publisher.send(&Message::Publish(Box::new(Publish {
                request: batch * 128 + i + 1,
                options: PublishOptions::default(),
                topic: Uri::from("com.example.firehose"),
                payload: Payload::args(vec![blob.clone()]),
            })));
        }
        let s = r.scrape();
        dropped = s.sum("switchyard_events_dropped_total", &[]);
        queued = s.sum("switchyard_outbound_queue_bytes", &[]);
        if dropped > 0.0 && queued > 0.0 {
            break;
        }
    }
    assert!(dropped > 0.0, "no event was dropped");
    assert!(queued > 0.0, "the outbound queue never stayed full");
    assert!(queued <= 65536.0 + 17.0 * 1024.0, "{queued}");
    let s = r.scrape();
    assert_eq!(
        s.sum("switchyard_slow_consumer_disconnects_total", &[]),
        0.0
    );
    drop(sub);
    drop(publisher);
    eventually(&r, "queues drained after the peers left", |s| {
        s.sum("switchyard_outbound_queue_bytes", &[]) == 0.0
            && s.sum("switchyard_connections", &[]) == 0.0
    });
    r.stop();
}

#[test]
fn json_log_lines_about_sessions_carry_shard_session_and_realm() {
    let r = Router::start(&[
        "--shards",
        "1",
        "--log-format",
        "json",
        "--log-level",
        "debug",
    ]);
    let p = Peer::join(r.rs);
    let id = p.session;
    p.goodbye();
    eventually(&r, "session closed", |s| {
        s.sum("switchyard_connections", &[]) == 0.0
    });
    let err = r.stop();
    let mut about_session = 0;
    for line in err.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            v.get("level").is_some() && v.get("message").is_some(),
            "{line}"
        );
        if let Some(s) = v.get("session") {
            about_session += 1;
            assert_eq!(s.as_u64(), Some(id), "{line}");
            assert_eq!(v.get("shard").and_then(|x| x.as_u64()), Some(0), "{line}");
            let realm = v.get("realm").and_then(|x| x.as_str());
            assert!(matches!(realm, Some("realm1") | Some("-")), "{line}");
        }
    }
    // transport open, joined, transport closed.
    assert!(about_session >= 3, "{err}");
    assert!(err.contains("\"realm\":\"realm1\""), "{err}");
}

#[test]
fn every_metric_family_is_documented_and_every_documented_one_exists() {
    use std::collections::BTreeSet;
    use std::sync::Arc;
    use switchyard::metrics::{prometheus, ClusterMetrics, RouterMetrics, ShardMetrics};
    let epoch = Instant::now();
    // A cluster node's metrics: every family, the cluster's included.
    let m = RouterMetrics {
        shards: vec![Arc::new(ShardMetrics::new(0, &["realm1"], epoch))],
        started: epoch,
        mesh_backlog: Box::new(|_| 0),
        cluster: Some(Arc::new(ClusterMetrics::new(1))),
    };
    let text = prometheus::render(&m);
    let rendered: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let doc = include_str!("../docs/operations.md");
    let documented: BTreeSet<&str> = doc
        .lines()
        .filter(|l| l.starts_with("| `switchyard_") || l.starts_with("| `process_"))
        .map(|l| &l[3..])
        .map(|l| &l[..l.find(['`', '{']).unwrap()])
        .collect();
    assert_eq!(
        rendered, documented,
        "docs/operations.md's metric table and the scrape differ"
    );
}

/// Issue 21, item 1: idle TCP connections held open against the metrics port must not take
/// `/health` and `/metrics` down. 64 sockets connect and send nothing (as many as the server
/// serves at once); every probe after them must still get its answer.
#[test]
fn health_and_metrics_answer_while_64_idle_connections_are_held() {
    let r = Router::start(&[]);
    let idle: Vec<TcpStream> = (0..64)
        .map(|_| TcpStream::connect_timeout(&r.metrics, IO_TIMEOUT).unwrap())
        .collect();
    for i in 0..20 {
        let path = if i % 2 == 0 { "/health" } else { "/metrics" };
        let (status, body) = r.get(path);
        assert_eq!(status, 200, "probe {i} of {path} failed: {body:?}");
    }
    // More idle connections arriving while probes run change nothing.
    let more: Vec<TcpStream> = (0..64)
        .map(|_| TcpStream::connect_timeout(&r.metrics, IO_TIMEOUT).unwrap())
        .collect();
    let (status, body) = r.get("/health");
    assert_eq!(status, 200, "{body:?}");
    drop((idle, more));
    r.stop();
}

/// Issue 21, item 6: text logs written to a pipe (systemd, a log shipper) carry no ANSI colour
/// escapes.
#[test]
fn text_logs_to_a_pipe_have_no_colour_codes() {
    let r = Router::start(&["--log-format", "text"]);
    let err = r.stop();
    assert!(err.contains("shutting down"), "no info line in:\n{err}");
    assert!(
        !err.contains('\x1b'),
        "escape codes in piped logs:\n{err:?}"
    );
}

/// Issue 21, item 7: connections still in their transport handshake are counted in
/// `switchyard_connections`, and the standard `process_*` families are exported.
#[test]
fn handshaking_connections_and_process_metrics_are_reported() {
    let r = Router::start(&[]);
    // Five connections that never send their RawSocket handshake.
    let held: Vec<TcpStream> = (0..5)
        .map(|_| TcpStream::connect_timeout(&r.rs, IO_TIMEOUT).unwrap())
        .collect();
    let s = eventually(&r, "5 connections in handshake counted", |s| {
        s.sum("switchyard_connections", &[]) >= 5.0
    });
    let rss = s.series("process_resident_memory_bytes").unwrap_or(0.0);
    assert!(rss > 1e6, "process_resident_memory_bytes {rss}");
    let fds = s.series("process_open_fds").unwrap_or(0.0);
    assert!(fds >= 5.0, "process_open_fds {fds} with 5 connections held");
    assert!(s.series("process_cpu_seconds_total").is_some());
    let start = s.series("process_start_time_seconds").unwrap_or(0.0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - 120.0..=now + 5.0).contains(&start),
        "process_start_time_seconds {start}, now {now}"
    );
    drop(held);
    eventually(&r, "closed connections uncounted", |s| {
        s.sum("switchyard_connections", &[]) == 0.0
    });
    r.stop();
}

/// Issue 21, item 9: docs/operations.md says which series have no `shard` label; the scrape
/// must agree, family by family.
#[test]
fn documented_shard_label_exceptions_match_the_scrape() {
    use std::collections::BTreeSet;
    let r = Router::start(&[]);
    let (status, body) = r.get("/metrics");
    assert_eq!(status, 200);
    r.stop();
    let mut without: BTreeSet<&str> = BTreeSet::new();
    let mut with: BTreeSet<&str> = BTreeSet::new();
    for l in body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name = &l[..l.find(['{', ' ']).unwrap_or(l.len())];
        let family = name
            .strip_suffix("_bucket")
            .or(name.strip_suffix("_sum"))
            .or(name.strip_suffix("_count"))
            .unwrap_or(name);
        if l.contains("shard=\"") {
            with.insert(family);
        } else {
            without.insert(family);
        }
    }
    let doc = include_str!("../docs/operations.md");
    let statement = doc
        .split("Every `switchyard_*` series has a `shard` label")
        .nth(1)
        .and_then(|s| s.split("\n\n").next())
        .expect("docs/operations.md states which series have a shard label");
    // The switchyard_ families the statement names as exceptions, and the process_ families.
    let named: BTreeSet<&str> = statement
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|n| n.starts_with("switchyard_"))
        .collect();
    let expected: BTreeSet<&str> = without
        .iter()
        .copied()
        .filter(|f| f.starts_with("switchyard_"))
        .collect();
    assert_eq!(
        named, expected,
        "series without a shard label vs docs/operations.md"
    );
    assert!(
        without
            .iter()
            .all(|f| f.starts_with("switchyard_") || f.starts_with("process_")),
        "{without:?}"
    );
    assert!(statement.contains("`process_*` series have none"));
    assert!(
        with.iter().all(|f| f.starts_with("switchyard_")),
        "{with:?}"
    );
}
