//! The in-process transport against a real router: `LocalTransport` sessions driven with raw
//! `Message` values (no client library), next to RawSocket sessions on real sockets.

mod common;

use common::{RawClient, WampConn, REPLY_TIMEOUT};
use std::io;
use std::net::SocketAddr;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};
use switchyard::codec::{
    Call, CallOptions, Dict, Id, Message, Payload, Publish, PublishOptions, Register, Serializer,
    Subscribe, Uri, Value, Yield,
};
use switchyard::config::{ListenAddr, ListenerConfig, ListenerKind, SlowConsumerPolicy};
use switchyard::net::inproc::LocalTransport;
use switchyard::shard::Router;
use switchyard::RouterConfig;

/// A router with one RawSocket listener on 127.0.0.1:0.
fn start(shards: usize, tweak: impl FnOnce(&mut RouterConfig)) -> (Router, SocketAddr) {
    let mut cfg = RouterConfig {
        shards,
        listeners: vec![ListenerConfig {
            kind: ListenerKind::RawSocket,
            addr: ListenAddr::Tcp("127.0.0.1:0".parse().expect("address")),
            tls: None,
        }],
        ..Default::default()
    };
    tweak(&mut cfg);
    let router = Router::start(cfg).expect("router starts");
    let addr = router.endpoints()[0]
        .strip_prefix("rs://")
        .and_then(|a| a.parse().ok())
        .expect("rs endpoint");
    (router, addr)
}

fn stop(router: Router) {
    router.shutdown_handle().shutdown();
    router.join().expect("router stops");
}

/// A blocking test driver over the client end (polls with short sleeps, bounded by timeouts).
struct Local(LocalTransport);

impl Local {
    /// The next message, `Ok(None)` when the router closed the transport.
    fn next(&mut self, timeout: Duration) -> Result<Option<Message>, common::RecvError> {
        let deadline = Instant::now() + timeout;
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if let Poll::Ready(m) = self.0.poll_recv(&mut cx) {
                return Ok(m);
            }
            if Instant::now() >= deadline {
                return Err(common::RecvError::Timeout);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

impl WampConn for Local {
    fn serializer(&self) -> Serializer {
        Serializer::MsgPack
    }
    fn send(&mut self, m: &Message) -> io::Result<()> {
        self.0
            .send(m.clone())
            .map_err(|e| io::Error::new(io::ErrorKind::BrokenPipe, e))
    }
    fn send_payload(&mut self, _: &[u8]) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "in-process sessions carry messages, not bytes",
        ))
    }
    fn recv(&mut self, timeout: Duration) -> Result<Message, common::RecvError> {
        match self.next(timeout)? {
            Some(m) => Ok(m),
            None => Err(common::RecvError::Closed(None)),
        }
    }
}

fn local(router: &Router) -> Local {
    Local(router.local_connector().connect().expect("connect"))
}

fn subscribe(c: &mut impl WampConn, request: Id, topic: &str) -> Id {
    c.send(&Message::Subscribe(Subscribe {
        request,
        options: Default::default(),
        topic: Uri::from(topic),
    }))
    .expect("send SUBSCRIBE");
    match c.recv(REPLY_TIMEOUT) {
        Ok(Message::Subscribed(s)) if s.request == request => s.subscription,
        other => panic!("expected SUBSCRIBED, got {other:?}"),
    }
}

fn register(c: &mut impl WampConn, request: Id, procedure: &str) -> Id {
    c.send(&Message::Register(Register {
        request,
        options: Default::default(),
        procedure: Uri::from(procedure),
    }))
    .expect("send REGISTER");
    match c.recv(REPLY_TIMEOUT) {
        Ok(Message::Registered(r)) if r.request == request => r.registration,
        other => panic!("expected REGISTERED, got {other:?}"),
    }
}

fn publish(c: &mut impl WampConn, request: Id, topic: &str, args: Vec<Value>, ack: bool) {
    c.send(&Message::Publish(Box::new(Publish {
        request,
        options: PublishOptions {
            acknowledge: ack.then_some(true),
            ..Default::default()
        },
        topic: Uri::from(topic),
        payload: Payload::args(args),
    })))
    .expect("send PUBLISH");
    if ack {
        match c.recv(REPLY_TIMEOUT) {
            Ok(Message::Published(p)) if p.request == request => {}
            other => panic!("expected PUBLISHED, got {other:?}"),
        }
    }
}

fn call(c: &mut impl WampConn, request: Id, procedure: &str, args: Vec<Value>) -> Message {
    c.send(&Message::Call(Box::new(Call {
        request,
        options: CallOptions::default(),
        procedure: Uri::from(procedure),
        payload: Payload::args(args),
    })))
    .expect("send CALL");
    c.recv(REPLY_TIMEOUT).expect("reply to CALL")
}

fn args_of(p: &Payload) -> Vec<Value> {
    p.args_values().expect("decodable").unwrap_or_default()
}

/// Answers one INVOCATION with its arguments doubled (integers).
fn serve_double(c: &mut impl WampConn) {
    match c.recv(REPLY_TIMEOUT) {
        Ok(Message::Invocation(i)) => {
            let args = args_of(&i.payload)
                .iter()
                .map(|v| Value::int(v.as_u64().unwrap_or(0) as i64 * 2))
                .collect();
            c.send(&Message::Yield(Box::new(Yield {
                request: i.request,
                options: Default::default(),
                payload: Payload::args(args),
            })))
            .expect("send YIELD");
        }
        other => panic!("expected INVOCATION, got {other:?}"),
    }
}

#[test]
fn local_session_joins_and_the_meta_api_calls_it_in_process() {
    let (router, _) = start(2, |_| {});
    let mut a = local(&router);
    let w = a.must_join("realm1");
    let mut b = local(&router);
    b.must_join("realm1");
    match call(&mut b, 1, "wamp.session.get", vec![Value::UInt(w.session)]) {
        Message::Result(r) => {
            let d = args_of(&r.payload);
            let t = d[0].as_dict().and_then(|d| d.get("transport")).cloned();
            let t = t.as_ref().and_then(|t| t.as_dict()).expect("transport");
            assert_eq!(t.get("type").and_then(|v| v.as_str()), Some("inproc"));
        }
        other => panic!("expected RESULT, got {other:?}"),
    }
    a.must_leave();
    b.must_leave();
    stop(router);
}

#[test]
fn events_flow_between_local_and_network_sessions_on_both_shards() {
    let (router, addr) = start(2, |_| {});
    // Two local subscribers: round-robin puts them on different shards.
    let mut l1 = local(&router);
    l1.must_join("realm1");
    let mut l2 = local(&router);
    l2.must_join("realm1");
    let s1 = subscribe(&mut l1, 1, "com.ex.t");
    let s2 = subscribe(&mut l2, 1, "com.ex.t");
    let mut net = RawClient::connect(addr, Serializer::Json);
    net.must_join("realm1");
    let net_sub = subscribe(&mut net, 1, "com.ex.back");
    for i in 0..10u64 {
        publish(&mut net, 10 + i, "com.ex.t", vec![Value::UInt(i)], true);
    }
    for (c, sub) in [(&mut l1, s1), (&mut l2, s2)] {
        for i in 0..10u64 {
            match c.recv(REPLY_TIMEOUT) {
                Ok(Message::Event(e)) => {
                    assert_eq!(e.subscription, sub);
                    // Payload as it came from the JSON publisher, readable as values.
                    assert_eq!(args_of(&e.payload), vec![Value::UInt(i)]);
                }
                other => panic!("expected EVENT {i}, got {other:?}"),
            }
        }
    }
    // Local publisher → network subscriber (encoded for its serializer by the router).
    let mut kw = Dict::new();
    kw.insert("k".into(), Value::Str("v".into()));
    l2.send(&Message::Publish(Box::new(Publish {
        request: 99,
        options: Default::default(),
        topic: Uri::from("com.ex.back"),
        payload: Payload::args_kwargs(vec![Value::Str("hi".into())], kw.clone()),
    })))
    .expect("publish");
    match net.recv(REPLY_TIMEOUT) {
        Ok(Message::Event(e)) => {
            assert_eq!(e.subscription, net_sub);
            assert_eq!(args_of(&e.payload), vec![Value::Str("hi".into())]);
            assert_eq!(e.payload.kwargs_values().expect("kwargs"), Some(kw));
        }
        other => panic!("expected EVENT, got {other:?}"),
    }
    net.must_leave();
    l1.must_leave();
    l2.must_leave();
    stop(router);
}

#[test]
fn rpc_between_local_and_network_sessions() {
    let (router, addr) = start(2, |_| {});
    let mut callee = local(&router);
    callee.must_join("realm1");
    register(&mut callee, 1, "com.ex.double");
    let mut caller = RawClient::connect(addr, Serializer::MsgPack);
    caller.must_join("realm1");
    let mut net_callee = RawClient::connect(addr, Serializer::Json);
    net_callee.must_join("realm1");
    register(&mut net_callee, 1, "com.ex.double_net");
    let mut local_caller = local(&router);
    local_caller.must_join("realm1");
    for round in 0..3u64 {
        // Network caller → local callee.
        caller
            .send(&Message::Call(Box::new(Call {
                request: 10 + round,
                options: Default::default(),
                procedure: Uri::from("com.ex.double"),
                payload: Payload::args(vec![Value::UInt(round + 1)]),
            })))
            .expect("CALL");
        serve_double(&mut callee);
        match caller.recv(REPLY_TIMEOUT) {
            Ok(Message::Result(r)) => {
                assert_eq!(r.request, 10 + round);
                assert_eq!(args_of(&r.payload), vec![Value::UInt(2 * (round + 1))]);
            }
            other => panic!("expected RESULT, got {other:?}"),
        }
        // Local caller → network callee.
        local_caller
            .send(&Message::Call(Box::new(Call {
                request: 20 + round,
                options: Default::default(),
                procedure: Uri::from("com.ex.double_net"),
                payload: Payload::args(vec![Value::UInt(round + 5)]),
            })))
            .expect("CALL");
        serve_double(&mut net_callee);
        match local_caller.recv(REPLY_TIMEOUT) {
            Ok(Message::Result(r)) => {
                assert_eq!(r.request, 20 + round);
                assert_eq!(args_of(&r.payload), vec![Value::UInt(2 * (round + 5))]);
            }
            other => panic!("expected RESULT, got {other:?}"),
        }
    }
    // Errors travel as values too.
    match call(&mut local_caller, 50, "com.ex.nobody", vec![]) {
        Message::Error(e) => assert_eq!(e.error.as_str(), "wamp.error.no_such_procedure"),
        other => panic!("expected ERROR, got {other:?}"),
    }
    stop(router);
}

/// Counts what arrives within `quiet` of the previous message, up to `limit` messages.
fn drain_events(c: &mut Local, quiet: Duration, limit: usize) -> (usize, bool) {
    let mut n = 0;
    while n < limit {
        match c.next(quiet) {
            Ok(Some(Message::Event(_))) => n += 1,
            Ok(Some(_)) => {}
            Ok(None) => return (n, true),
            Err(_) => return (n, false),
        }
    }
    (n, false)
}

fn events_dropped(router: &Router) -> u64 {
    router
        .metrics()
        .shards
        .iter()
        .map(|s| s.events_dropped.get())
        .sum()
}

fn slow_consumer_case(policy: SlowConsumerPolicy) {
    const TOTAL: u64 = 2000;
    let (router, addr) = start(1, |c| {
        c.limits.outbound_queue_bytes = 64 * 1024;
        c.limits.slow_consumer = policy;
    });
    let mut slow = local(&router);
    slow.must_join("realm1");
    subscribe(&mut slow, 1, "com.ex.flood");
    let mut healthy = local(&router);
    healthy.must_join("realm1");
    subscribe(&mut healthy, 1, "com.ex.flood");
    let mut publisher = RawClient::connect(addr, Serializer::MsgPack);
    publisher.must_join("realm1");
    let pad = Value::Str("x".repeat(1000));
    let mut got = 0usize;
    for i in 0..TOTAL {
        publish(
            &mut publisher,
            1 + i,
            "com.ex.flood",
            vec![pad.clone()],
            i % 50 == 49,
        );
        // The healthy subscriber keeps up.
        let (n, closed) = drain_events(&mut healthy, Duration::from_millis(0), usize::MAX);
        assert!(!closed, "healthy subscriber was closed");
        got += n;
    }
    publish(&mut publisher, 10_000, "com.ex.flood", vec![], true);
    let (n, _) = drain_events(&mut healthy, Duration::from_secs(2), usize::MAX);
    got += n;
    assert_eq!(
        got as u64,
        TOTAL + 1,
        "the healthy subscriber got every event"
    );
    // The slow one never read: at most its credit plus its outbound queue reached it.
    let (n, closed) = drain_events(&mut slow, Duration::from_millis(500), TOTAL as usize + 1);
    assert!(n < 200, "slow subscriber was sent {n} events: not bounded");
    match policy {
        SlowConsumerPolicy::Drop => {
            assert!(!closed, "drop policy keeps the session");
            assert!(events_dropped(&router) > 0, "drops are counted");
            // Caught up: its queue stops shedding, and events reach it again.
            for i in 0..10 {
                publish(&mut publisher, 20_000 + i, "com.ex.flood", vec![], i == 9);
            }
            let (n, closed) = drain_events(&mut slow, Duration::from_secs(5), 10);
            assert_eq!(
                (n, closed),
                (10, false),
                "events flow again after catching up"
            );
        }
        SlowConsumerPolicy::Disconnect => assert!(closed, "disconnect policy closes the session"),
    }
    stop(router);
}

#[test]
fn slow_local_consumer_meets_the_drop_policy() {
    slow_consumer_case(SlowConsumerPolicy::Drop);
}

#[test]
fn slow_local_consumer_meets_the_disconnect_policy() {
    slow_consumer_case(SlowConsumerPolicy::Disconnect);
}

fn session_count(c: &mut impl WampConn, request: Id) -> u64 {
    match call(c, request, "wamp.session.count", vec![]) {
        Message::Result(r) => args_of(&r.payload)[0].as_u64().expect("count"),
        other => panic!("expected RESULT, got {other:?}"),
    }
}

#[test]
fn dropping_the_client_end_ends_the_session() {
    let (router, addr) = start(2, |_| {});
    let mut observer = RawClient::connect(addr, Serializer::Json);
    observer.must_join("realm1");
    let mut gone = Vec::new();
    for _ in 0..4 {
        let mut l = local(&router);
        l.must_join("realm1");
        subscribe(&mut l, 1, "com.ex.t");
        register(&mut l, 2, &format!("com.ex.p{}", gone.len()));
        gone.push(l);
    }
    assert_eq!(session_count(&mut observer, 1), 5);
    // Two close explicitly, two are dropped.
    gone[0].0.close();
    gone[1].0.close();
    drop(gone);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut req = 2;
    while session_count(&mut observer, req) != 1 {
        assert!(
            Instant::now() < deadline,
            "local sessions were not cleaned up"
        );
        std::thread::sleep(Duration::from_millis(20));
        req += 1;
    }
    // Their registrations are gone with them.
    match call(&mut observer, 1000, "com.ex.p0", vec![]) {
        Message::Error(e) => assert_eq!(e.error.as_str(), "wamp.error.no_such_procedure"),
        other => panic!("expected ERROR, got {other:?}"),
    }
    stop(router);
}

#[test]
fn router_shutdown_says_goodbye_and_closes_local_sessions() {
    let (router, _) = start(2, |_| {});
    let connector = router.local_connector();
    let mut l = Local(connector.connect().expect("connect"));
    l.must_join("realm1");
    router.shutdown_handle().shutdown();
    match l.next(REPLY_TIMEOUT) {
        Ok(Some(Message::Goodbye(g))) => {
            assert_eq!(g.reason.as_str(), "wamp.close.system_shutdown")
        }
        other => panic!("expected GOODBYE, got {other:?}"),
    }
    let _ = l.0.send(Message::Goodbye(switchyard::codec::Goodbye {
        details: Dict::new(),
        reason: Uri::from("wamp.close.goodbye_and_out"),
    }));
    assert!(
        matches!(l.next(REPLY_TIMEOUT), Ok(None)),
        "transport closed"
    );
    router.join().expect("router stops");
    // A stopped router refuses new in-process connections or never answers them.
    if let Ok(t) = connector.connect() {
        let mut l = Local(t);
        assert!(l.join("realm1").is_err());
    }
}

#[test]
fn silent_local_session_meets_the_hello_timeout() {
    let (router, _) = start(1, |c| c.limits.hello_timeout = Duration::from_millis(200));
    let mut l = local(&router);
    match l.next(REPLY_TIMEOUT) {
        Ok(Some(Message::Abort(_))) | Ok(None) => {}
        other => panic!("expected ABORT or close, got {other:?}"),
    }
    stop(router);
}

/// A local client builds messages in memory, so nothing decoded them: the router must check
/// what decoding checks on a network session. An "encoded" payload that is not valid MessagePack
/// would otherwise be spliced as is into other subscribers' frames, and an ID above 2^53 or an
/// invalid error URI would reach peers that cannot decode them.
#[test]
fn messages_built_in_memory_are_checked_like_decoded_ones() {
    let (router, addr) = start(1, |_| {});
    let mut net = RawClient::connect(addr, Serializer::MsgPack);
    net.must_join("realm1");
    subscribe(&mut net, 1, "com.example.checked");
    let garbage = Payload::Encoded(switchyard::codec::EncodedPayload {
        format: Serializer::MsgPack,
        // 0x93 announces a 3-element array, 0xc1 is never valid MessagePack.
        args: Some(bytes::Bytes::from_static(&[0x93, 0xc1, 0xc1])),
        kwargs: None,
    });
    let bad_messages = [
        Message::Publish(Box::new(Publish {
            request: 1,
            options: Default::default(),
            topic: Uri::from("com.example.checked"),
            payload: garbage,
        })),
        Message::Call(Box::new(Call {
            request: switchyard::codec::MAX_ID + 1,
            options: CallOptions::default(),
            procedure: Uri::from("com.example.none"),
            payload: Payload::default(),
        })),
        Message::Goodbye(switchyard::codec::Goodbye {
            details: Dict::new(),
            reason: Uri::from("not a uri at all"),
        }),
    ];
    for bad in bad_messages {
        let mut c = local(&router);
        c.must_join("realm1");
        c.send(&bad).expect("send");
        match c.recv(REPLY_TIMEOUT) {
            Ok(Message::Abort(a)) => {
                assert_eq!(
                    a.reason.as_str(),
                    "wamp.error.protocol_violation",
                    "{bad:?}"
                )
            }
            other => panic!("{bad:?}: expected ABORT protocol_violation, got {other:?}"),
        }
        assert!(
            matches!(c.next(REPLY_TIMEOUT), Ok(None)),
            "{bad:?}: not closed"
        );
    }
    // The network subscriber got nothing (in particular no broken frame), and is still fine.
    match net.recv(Duration::from_millis(300)) {
        Err(common::RecvError::Timeout) => {}
        other => panic!("network subscriber: expected nothing, got {other:?}"),
    }
    net.must_leave();
    stop(router);
}
