//! Authorization against the real `switchyard` binary (config file with `[[realm.role]]` rules
//! and a dynamic authorizer), with the blocking RawSocket client of `tests/common`:
//!
//! - each action (call, register, publish, subscribe) allowed and denied by static rules,
//!   exact / prefix / wildcard matching, disclosure forced by a rule;
//! - the dynamic authorizer: its decision is cached (a second request is answered without
//!   the authorizer being invoked, proven by never answering an INVOCATION), the cache expires
//!   (after the TTL the authorizer is invoked again), a timeout or an ERROR denies (fail
//!   closed), and only a trusted role may register it;
//! - `switchyard_authz_denials_total` counts the denials;
//! - event history: `wamp.subscription.get_events` also needs the right to subscribe to the
//!   subscription's topic, from static rules and from the dynamic authorizer (asked twice);
//! - autobahn-python (`tests/interop/authz.py`) sees `wamp.error.not_authorized`.

mod common;

use common::{RawClient, RouterProcess, WampConn, REPLY_TIMEOUT};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use switchyard::codec::{
    Authenticate, Call, CallOptions, Dict, Hello, HelloDetails, Message, Payload, Publish,
    PublishOptions, Register, RegisterOptions, Serializer, Subscribe, SubscribeOptions, Value,
    Yield, YieldOptions,
};

/// Longer than any request in this file takes, shorter than the sleep that waits it out.
const TTL_MS: u64 = 1500;
const TIMEOUT_MS: u64 = 600;

const CONFIG: &str = r#"
[[realm]]
name = "app"
anonymous = false
authorizer = "authz.check"

[[realm.principal]]
authid = "svc"
role = "backend"
ticket = "svc-t"

[[realm.principal]]
authid = "alice"
role = "user"
ticket = "alice-t"

[[realm.principal]]
authid = "dan"
role = "dynamic"
ticket = "dan-t"

[[realm.role]]
name = "backend"
trusted = true
trustlevel = 9

[[realm.role]]
name = "user"
trustlevel = 1

[[realm.role.permission]]
uri = "com.app."
match = "prefix"
allow = { call = true, subscribe = true }
disclose = { caller = true }

[[realm.role.permission]]
uri = "com.app.admin"
allow = {}

[[realm.role.permission]]
uri = "user."
match = "prefix"
allow = { register = true, publish = true }

[[realm.role.permission]]
uri = "feed..news"
match = "wildcard"
allow = { subscribe = true }

[[realm.role.permission]]
uri = "wamp.subscription.get_events"
allow = { call = true }

[[realm.history]]
topic = "com.app.feed"

[[realm.history]]
topic = "private.feed"
limit = 10

[[realm]]
name = "dyn"
anonymous = false

[[realm.principal]]
authid = "svc"
role = "backend"
ticket = "svc-t"

[[realm.authenticator]]
method = "ticket"
procedure = "auth.login"

[[realm.role]]
name = "backend"
trusted = true

[[realm.role]]
name = "member"
trustlevel = 4

[[realm.role.permission]]
uri = ""
match = "prefix"
allow = { subscribe = true }

[[realm.role.permission]]
uri = "dyn.news"
allow = { publish = true }
"#;

fn write_config(dir: &Path) -> PathBuf {
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, CONFIG).expect("write config");
    path
}

fn start(dir: &Path) -> RouterProcess {
    let config = write_config(dir);
    RouterProcess::start(&[
        "--shards",
        "2",
        "--rs",
        "127.0.0.1:0",
        "--ws",
        "127.0.0.1:0",
        "--metrics",
        "127.0.0.1:0",
        "--authorizer-cache-ttl-ms",
        &TTL_MS.to_string(),
        "--authorizer-timeout-ms",
        &TIMEOUT_MS.to_string(),
        "--config",
        config.to_str().expect("utf-8 temp path"),
    ])
}

/// Joins realm `app` with ticket authentication.
fn join(router: &RouterProcess, authid: &str, ticket: &str) -> RawClient {
    join_realm(router, "app", authid, ticket)
}

/// HELLO (ticket) → CHALLENGE → AUTHENTICATE; what comes next is the caller's.
fn authenticate(router: &RouterProcess, realm: &str, authid: &str, ticket: &str) -> RawClient {
    let mut c = RawClient::connect(router.endpoint("rs").addr(), Serializer::Json);
    let Message::Hello(mut h) = common::hello(realm) else {
        unreachable!()
    };
    h.details.authid = Some(authid.into());
    h.details.authmethods = Some(vec!["ticket".into()]);
    c.send(&Message::Hello(Box::new(Hello {
        realm: realm.into(),
        details: HelloDetails { ..h.details },
    })))
    .expect("send HELLO");
    match c.recv(REPLY_TIMEOUT) {
        Ok(Message::Challenge(ch)) => assert_eq!(ch.method, "ticket"),
        other => panic!("{authid}: expected CHALLENGE, got {other:?}"),
    }
    c.send(&Message::Authenticate(Authenticate {
        signature: ticket.into(),
        extra: Dict::new(),
    }))
    .expect("send AUTHENTICATE");
    c
}

fn join_realm(router: &RouterProcess, realm: &str, authid: &str, ticket: &str) -> RawClient {
    let mut c = authenticate(router, realm, authid, ticket);
    match c.recv(REPLY_TIMEOUT) {
        Ok(Message::Welcome(w)) => {
            let d = switchyard::session::welcome_dict(&w);
            assert_eq!(d.get("authid").and_then(Value::as_str), Some(authid));
        }
        other => panic!("{authid}: expected WELCOME, got {other:?}"),
    }
    c
}

fn recv(c: &mut RawClient, what: &str) -> Message {
    c.recv(REPLY_TIMEOUT)
        .unwrap_or_else(|e| panic!("expected {what}, got {e:?}"))
}

/// The reply to a request: `Ok(message)` or `Err(error uri)`.
fn reply(c: &mut RawClient, what: &str) -> Result<Message, String> {
    match recv(c, what) {
        Message::Error(e) => Err(e.error.to_string()),
        m => Ok(m),
    }
}

fn subscribe(c: &mut RawClient, request: u64, topic: &str) {
    c.send(&Message::Subscribe(Subscribe {
        request,
        options: SubscribeOptions::default(),
        topic: topic.into(),
    }))
    .expect("send SUBSCRIBE");
}

fn subscribed(c: &mut RawClient, request: u64, topic: &str) -> Result<(), String> {
    subscribe(c, request, topic);
    match reply(c, "SUBSCRIBED")? {
        Message::Subscribed(s) if s.request == request => Ok(()),
        other => panic!("SUBSCRIBE {topic}: {other:?}"),
    }
}

fn registered(c: &mut RawClient, request: u64, procedure: &str) -> Result<(), String> {
    c.send(&Message::Register(Register {
        request,
        options: RegisterOptions::default(),
        procedure: procedure.into(),
    }))
    .expect("send REGISTER");
    match reply(c, "REGISTERED")? {
        Message::Registered(r) if r.request == request => Ok(()),
        other => panic!("REGISTER {procedure}: {other:?}"),
    }
}

fn published(c: &mut RawClient, request: u64, topic: &str) -> Result<(), String> {
    c.send(&Message::Publish(Box::new(Publish {
        request,
        options: PublishOptions {
            acknowledge: Some(true),
            ..Default::default()
        },
        topic: topic.into(),
        payload: Payload::Empty,
    })))
    .expect("send PUBLISH");
    match reply(c, "PUBLISHED")? {
        Message::Published(p) if p.request == request => Ok(()),
        other => panic!("PUBLISH {topic}: {other:?}"),
    }
}

fn call(c: &mut RawClient, request: u64, procedure: &str) {
    c.send(&Message::Call(Box::new(Call {
        request,
        options: CallOptions::default(),
        procedure: procedure.into(),
        payload: Payload::Empty,
    })))
    .expect("send CALL");
}

/// The callee side: the next INVOCATION, answered with `result` (or not at all).
fn serve_one(svc: &mut RawClient, result: Option<Value>) -> switchyard::codec::Invocation {
    let inv = match recv(svc, "INVOCATION") {
        Message::Invocation(i) => i,
        other => panic!("expected INVOCATION, got {other:?}"),
    };
    if let Some(v) = result {
        svc.send(&Message::Yield(Box::new(Yield {
            request: inv.request,
            options: YieldOptions::default(),
            payload: Payload::args(vec![v]),
        })))
        .expect("send YIELD");
    }
    *inv
}

const NOT_AUTHORIZED: &str = "wamp.error.not_authorized";

fn denials(router: &RouterProcess) -> f64 {
    metric_sum(router, "switchyard_authz_denials_total")
}

/// The sum of a metric's series (`name{…} value` or `name value`) in one scrape.
fn metric_sum(router: &RouterProcess, name: &str) -> f64 {
    use std::io::{Read, Write};
    let addr = router
        .endpoints
        .iter()
        .find_map(|e| e.url.strip_prefix("metrics http://"))
        .expect("metrics endpoint")
        .parse::<std::net::SocketAddr>()
        .expect("metrics address");
    let mut s = std::net::TcpStream::connect(addr).expect("connect metrics");
    s.set_read_timeout(Some(REPLY_TIMEOUT)).expect("timeout");
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .expect("GET /metrics");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read /metrics");
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn static_rules_allow_and_deny_each_action() {
    let dir = tempfile::tempdir().expect("temp dir");
    let router = start(dir.path());
    let mut svc = join(&router, "svc", "svc-t");
    let mut alice = join(&router, "alice", "alice-t");

    // Trusted role: anything.
    registered(&mut svc, 1, "com.app.echo").expect("trusted registers");
    registered(&mut svc, 2, "com.app.admin").expect("trusted registers");

    // Register: allowed under `user.` (prefix), denied elsewhere.
    registered(&mut alice, 10, "user.proc").expect("user registers user.*");
    assert_eq!(
        registered(&mut alice, 11, "com.app.mine"),
        Err(NOT_AUTHORIZED.into())
    );
    // Only a trusted role may register the dynamic authorizer.
    assert_eq!(
        registered(&mut alice, 12, "authz.check"),
        Err(NOT_AUTHORIZED.into())
    );

    // Publish: allowed under `user.`, denied under `com.app.` (allows call and subscribe only).
    published(&mut alice, 20, "user.news").expect("user publishes user.*");
    assert_eq!(
        published(&mut alice, 21, "com.app.news"),
        Err(NOT_AUTHORIZED.into())
    );

    // Subscribe: prefix and wildcard allowed, others denied.
    subscribed(&mut alice, 30, "com.app.feed").expect("prefix subscribe");
    subscribed(&mut alice, 31, "feed.sports.news").expect("wildcard subscribe");
    assert_eq!(
        subscribed(&mut alice, 32, "feed.sports.scores"),
        Err(NOT_AUTHORIZED.into())
    );
    assert_eq!(
        subscribed(&mut alice, 33, "other.topic"),
        Err(NOT_AUTHORIZED.into())
    );

    // Call: allowed by prefix, with the caller disclosed by the rule although the CALL did not
    // ask; the exact rule for com.app.admin (more specific) denies.
    call(&mut alice, 40, "com.app.echo");
    let inv = serve_one(&mut svc, Some(Value::from("pong")));
    assert_eq!(inv.details.caller_authid.as_deref(), Some("alice"));
    assert_eq!(inv.details.caller_authrole.as_deref(), Some("user"));
    match reply(&mut alice, "RESULT") {
        Ok(Message::Result(r)) => assert_eq!(r.request, 40),
        other => panic!("CALL com.app.echo: {other:?}"),
    }
    call(&mut alice, 41, "com.app.admin");
    match reply(&mut alice, "ERROR") {
        Err(e) => assert_eq!(e, NOT_AUTHORIZED),
        Ok(m) => panic!("CALL com.app.admin was routed: {m:?}"),
    }
    // Meta procedures obey authorization: the trusted role may call them, `user` (no rule
    // for `wamp.`) may not.
    call(&mut svc, 42, "wamp.session.count");
    match reply(&mut svc, "RESULT") {
        Ok(Message::Result(r)) => assert_eq!(r.request, 42),
        other => panic!("trusted CALL wamp.session.count: {other:?}"),
    }
    call(&mut alice, 43, "wamp.session.count");
    assert_eq!(
        reply(&mut alice, "ERROR").err().as_deref(),
        Some(NOT_AUTHORIZED)
    );
    // An unacknowledged denied PUBLISH gets no answer; the next request's reply comes first.
    alice
        .send(&Message::Publish(Box::new(Publish {
            request: 50,
            options: PublishOptions::default(),
            topic: "com.app.quiet".into(),
            payload: Payload::Empty,
        })))
        .expect("send PUBLISH");
    subscribed(&mut alice, 51, "com.app.after").expect("subscribe after a silent denial");

    // 8 denials: register ×2, publish ×1, subscribe ×2, call ×2, silent publish ×1.
    assert_eq!(denials(&router), 8.0);
    alice.must_leave();
    svc.must_leave();
}

#[test]
fn dynamic_authorizer_is_cached_expires_and_fails_closed() {
    let dir = tempfile::tempdir().expect("temp dir");
    let router = start(dir.path());
    let mut svc = join(&router, "svc", "svc-t");
    registered(&mut svc, 1, "authz.check").expect("trusted registers the authorizer");
    let mut dan = join(&router, "dan", "dan-t");

    // First request: the authorizer is asked (session details, uri, action).
    subscribe(&mut dan, 10, "ok.topic");
    let inv = serve_one(&mut svc, Some(Value::Bool(true)));
    let args = inv
        .payload
        .args_values()
        .expect("decodable")
        .expect("arguments");
    let details = args[0].as_dict().expect("session details dict");
    assert_eq!(details.get("authid").and_then(Value::as_str), Some("dan"));
    assert_eq!(
        details.get("authrole").and_then(Value::as_str),
        Some("dynamic")
    );
    assert_eq!(args[1].as_str(), Some("ok.topic"));
    assert_eq!(args[2].as_str(), Some("subscribe"));
    match reply(&mut dan, "SUBSCRIBED") {
        Ok(Message::Subscribed(s)) => assert_eq!(s.request, 10),
        other => panic!("{other:?}"),
    }

    // Cached: the same request is answered although nobody answers the authorizer (an
    // INVOCATION would leave it waiting until the timeout, then deny).
    subscribed(&mut dan, 11, "ok.topic").expect("cached decision");
    // A dict answer denies (and is cached too).
    subscribe(&mut dan, 12, "no.topic");
    serve_one(
        &mut svc,
        Some(Value::Dict(Dict::from_iter([(
            "allow".to_owned(),
            Value::Bool(false),
        )]))),
    );
    assert_eq!(
        reply(&mut dan, "ERROR").err().as_deref(),
        Some(NOT_AUTHORIZED)
    );
    assert_eq!(
        subscribed(&mut dan, 13, "no.topic"),
        Err(NOT_AUTHORIZED.into())
    );

    // The cache expires: after the TTL the authorizer is asked again.
    std::thread::sleep(Duration::from_millis(TTL_MS + 300));
    subscribe(&mut dan, 20, "ok.topic");
    serve_one(&mut svc, Some(Value::Bool(true)));
    match reply(&mut dan, "SUBSCRIBED") {
        Ok(Message::Subscribed(s)) => assert_eq!(s.request, 20),
        other => panic!("{other:?}"),
    }

    // Timeout: the authorizer is asked but does not answer → denied.
    let t0 = Instant::now();
    subscribe(&mut dan, 30, "slow.topic");
    serve_one(&mut svc, None);
    assert_eq!(
        reply(&mut dan, "ERROR").err().as_deref(),
        Some(NOT_AUTHORIZED)
    );
    assert!(t0.elapsed() < REPLY_TIMEOUT);
    // An ERROR from the authorizer → denied, and not cached (asked again).
    for request in [40, 41] {
        subscribe(&mut dan, request, "err.topic");
        let inv = serve_one(&mut svc, None);
        svc.send(&Message::Error(Box::new(switchyard::codec::Error {
            request_type: switchyard::codec::code::INVOCATION,
            request: inv.request,
            details: Dict::new(),
            error: "com.example.failed".into(),
            payload: Payload::Empty,
        })))
        .expect("send ERROR");
        assert_eq!(
            reply(&mut dan, "ERROR").err().as_deref(),
            Some(NOT_AUTHORIZED)
        );
    }
    // Without the authorizer registered: denied (no_such_procedure fails closed).
    svc.must_leave();
    assert_eq!(
        subscribed(&mut dan, 50, "ok.other"),
        Err(NOT_AUTHORIZED.into())
    );
}

/// `wamp.subscription.get_events(subscription)`: the events' first arguments, or the error.
fn get_events(c: &mut RawClient, request: u64, subscription: u64) -> Result<Vec<u64>, String> {
    c.send(&Message::Call(Box::new(Call {
        request,
        options: CallOptions::default(),
        procedure: "wamp.subscription.get_events".into(),
        payload: Payload::args(vec![Value::UInt(subscription)]),
    })))
    .expect("send CALL");
    match reply(c, "RESULT")? {
        Message::Result(r) if r.request == request => {
            let args = r.payload.args_values().expect("decodable").expect("args");
            let Some(Value::List(events)) = args.into_iter().next() else {
                panic!("a list of events");
            };
            Ok(events
                .iter()
                .map(|e| {
                    let args = e.as_dict().and_then(|d| d.get("args"));
                    match args {
                        Some(Value::List(a)) => a.first().and_then(Value::as_u64).expect("n"),
                        other => panic!("event args: {other:?}"),
                    }
                })
                .collect())
        }
        other => panic!("get_events: {other:?}"),
    }
}

#[test]
fn event_history_needs_the_right_to_subscribe() {
    let dir = tempfile::tempdir().expect("temp dir");
    let router = start(dir.path());
    let mut svc = join(&router, "svc", "svc-t");
    registered(&mut svc, 1, "authz.check").expect("trusted registers the authorizer");
    let mut ids = Vec::new();
    for (request, topic) in [(2, "com.app.feed"), (3, "private.feed")] {
        subscribe(&mut svc, request, topic);
        match reply(&mut svc, "SUBSCRIBED") {
            Ok(Message::Subscribed(s)) => ids.push(s.subscription),
            other => panic!("{other:?}"),
        }
        for n in 1..=2u64 {
            svc.send(&Message::Publish(Box::new(Publish {
                request: request * 10 + n,
                options: PublishOptions {
                    acknowledge: Some(true),
                    exclude_me: Some(true),
                    ..Default::default()
                },
                topic: topic.into(),
                payload: Payload::args(vec![Value::UInt(n)]),
            })))
            .expect("send PUBLISH");
            assert!(matches!(
                reply(&mut svc, "PUBLISHED"),
                Ok(Message::Published(_))
            ));
        }
    }
    let (feed, private) = (ids[0], ids[1]);
    // The gauge follows within a tick (10 ms); bounded wait.
    let deadline = Instant::now() + REPLY_TIMEOUT;
    while metric_sum(&router, "switchyard_history_events") != 4.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(metric_sum(&router, "switchyard_history_events"), 4.0);

    // Static rules: alice may subscribe to com.app.* only.
    let mut alice = join(&router, "alice", "alice-t");
    assert_eq!(get_events(&mut alice, 1, feed), Ok(vec![1, 2]));
    assert_eq!(
        get_events(&mut alice, 2, private),
        Err(NOT_AUTHORIZED.into())
    );

    // The dynamic authorizer is asked for the call, then for the subscription's topic.
    let mut dan = join(&router, "dan", "dan-t");
    dan.send(&Message::Call(Box::new(Call {
        request: 3,
        options: CallOptions::default(),
        procedure: "wamp.subscription.get_events".into(),
        payload: Payload::args(vec![Value::UInt(feed)]),
    })))
    .expect("send CALL");
    let asked = |inv: &switchyard::codec::Invocation| {
        let a = inv.payload.args_values().expect("decodable").expect("args");
        (
            a[1].as_str().map(str::to_owned),
            a[2].as_str().map(str::to_owned),
        )
    };
    let first = serve_one(&mut svc, Some(Value::Bool(true)));
    assert_eq!(
        asked(&first),
        (
            Some("wamp.subscription.get_events".into()),
            Some("call".into())
        )
    );
    let second = serve_one(&mut svc, Some(Value::Bool(false)));
    assert_eq!(
        asked(&second),
        (Some("com.app.feed".into()), Some("subscribe".into()))
    );
    assert_eq!(
        reply(&mut dan, "ERROR").err().as_deref(),
        Some(NOT_AUTHORIZED)
    );
    // Both decisions cached: denied again without asking; private.feed asks for the topic.
    assert_eq!(get_events(&mut dan, 4, feed), Err(NOT_AUTHORIZED.into()));
    dan.send(&Message::Call(Box::new(Call {
        request: 5,
        options: CallOptions::default(),
        procedure: "wamp.subscription.get_events".into(),
        payload: Payload::args(vec![Value::UInt(private)]),
    })))
    .expect("send CALL");
    let third = serve_one(&mut svc, Some(Value::Bool(true)));
    assert_eq!(
        asked(&third),
        (Some("private.feed".into()), Some("subscribe".into()))
    );
    match reply(&mut dan, "RESULT") {
        Ok(Message::Result(r)) => {
            let args = r.payload.args_values().expect("decodable").expect("args");
            assert!(
                matches!(&args[0], Value::List(l) if l.len() == 2),
                "{args:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn autobahn_python_is_not_authorized() {
    let dir = tempfile::tempdir().expect("temp dir");
    let router = start(dir.path());
    let python = common::interop_python("autobahn");
    for (url, ser) in [
        (router.endpoint("ws").url.clone(), "json"),
        (router.endpoint("rs").url.clone(), "msgpack"),
    ] {
        common::assert_script_ok(
            &format!("authz.py {url} {ser}"),
            Command::new(&python)
                .args(["authz.py", "--url", &url, "--serializer", ser])
                .args(["--timeout-s", "10"]),
            Duration::from_secs(90),
            "OK:",
        );
    }
}

#[test]
fn bad_role_config_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("bad.toml");
    for (text, key) in [
        (
            "[[realm]]\nname = \"r\"\n[[realm.role]]\nname = \"u\"\n[[realm.role.permission]]\nuri = \"a\"\nallow = { cal = true }\n",
            "cal",
        ),
        (
            "[[realm]]\nname = \"r\"\n[[realm.role]]\nname = \"u\"\ntrustd = true\n",
            "trustd",
        ),
        (
            "[[realm]]\nname = \"r\"\n[[realm.role]]\nname = \"u\"\n[[realm.role]]\nname = \"u\"\n",
            "realm[0].role[1].name",
        ),
    ] {
        std::fs::write(&path, text).expect("write config");
        let out = Command::new(common::router_binary())
            .args(["--ws", "127.0.0.1:0", "--config"])
            .arg(&path)
            .stdin(Stdio::null())
            .output()
            .expect("run switchyard");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        assert!(stderr.contains(key), "{key} not named: {stderr}");
    }
}

#[test]
fn dynamic_authenticator_welcomes_and_refuses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let router = start(dir.path());
    // A static principal takes precedence over the dynamic authenticator.
    let mut svc = join_realm(&router, "dyn", "svc", "svc-t");
    registered(&mut svc, 1, "auth.login").expect("trusted registers the authenticator");

    // Accepted: the procedure gets (realm, authid, details with the ticket) and names the role.
    let mut carol = authenticate(&router, "dyn", "carol", "good-ticket");
    let mut answer = Dict::new();
    answer.insert("role".into(), Value::from("member"));
    let inv = serve_one(&mut svc, Some(Value::Dict(answer)));
    let args = inv.payload.args_values().expect("decodable").expect("args");
    assert_eq!(args[0].as_str(), Some("dyn"));
    assert_eq!(args[1].as_str(), Some("carol"));
    let details = args[2].as_dict().expect("details dict");
    assert_eq!(
        details.get("ticket").and_then(Value::as_str),
        Some("good-ticket")
    );
    match recv(&mut carol, "WELCOME") {
        Message::Welcome(w) => {
            let d = switchyard::session::welcome_dict(&w);
            assert_eq!(d.get("authid").and_then(Value::as_str), Some("carol"));
            assert_eq!(d.get("authrole").and_then(Value::as_str), Some("member"));
            assert_eq!(
                d.get("authprovider").and_then(Value::as_str),
                Some("dynamic")
            );
        }
        other => panic!("expected WELCOME, got {other:?}"),
    }
    // The role from the authenticator is authorized by the realm's rules.
    subscribed(&mut carol, 2, "any.topic").expect("member subscribes");
    assert_eq!(
        registered(&mut carol, 3, "auth.login"),
        Err(NOT_AUTHORIZED.into())
    );

    // Refused: the procedure answers with an ERROR.
    let mut mallory = authenticate(&router, "dyn", "mallory", "bad-ticket");
    let inv = serve_one(&mut svc, None);
    svc.send(&Message::Error(Box::new(switchyard::codec::Error {
        request_type: switchyard::codec::code::INVOCATION,
        request: inv.request,
        details: Dict::new(),
        error: "com.example.invalid_ticket".into(),
        payload: Payload::Empty,
    })))
    .expect("send ERROR");
    mallory.must_abort("wamp.error.authentication_failed");

    // Refused: no authenticator registered.
    svc.must_leave();
    let mut late = authenticate(&router, "dyn", "carol", "good-ticket");
    late.must_abort("wamp.error.authentication_failed");
    carol.must_leave();
}

/// Trust levels: the caller's and the publisher's reach the callee and the subscriber, from
/// the role's `trustlevel` or, overriding it, from the dynamic authenticator's answer.
#[test]
fn trustlevels_from_roles_and_the_authenticator() {
    let dir = tempfile::tempdir().expect("temp dir");
    let router = start(dir.path());
    let mut svc = join(&router, "svc", "svc-t");
    let mut alice = join(&router, "alice", "alice-t");
    registered(&mut svc, 1, "com.app.tl").expect("register");
    call(&mut alice, 1, "com.app.tl");
    let inv = serve_one(&mut svc, Some(Value::from(1i64)));
    assert_eq!(inv.details.trustlevel, Some(1), "role user");
    assert!(matches!(recv(&mut alice, "RESULT"), Message::Result(_)));
    subscribed(&mut alice, 2, "com.app.tl.feed").expect("subscribe");
    published(&mut svc, 2, "com.app.tl.feed").expect("publish");
    match recv(&mut alice, "EVENT") {
        Message::Event(e) => assert_eq!(e.details.trustlevel, Some(9), "role backend"),
        other => panic!("expected EVENT, got {other:?}"),
    }

    // Realm `dyn`: the authenticator's `trustlevel` wins over the role's (4).
    let mut auth = join_realm(&router, "dyn", "svc", "svc-t");
    registered(&mut auth, 1, "auth.login").expect("register the authenticator");
    subscribed(&mut auth, 2, "dyn.news").expect("subscribe");
    for (authid, answer_level, expected) in [("carol", Some(6u64), 6u64), ("dave", None, 4)] {
        let mut user = authenticate(&router, "dyn", authid, "good-ticket");
        let mut answer = Dict::new();
        answer.insert("role".into(), Value::from("member"));
        if let Some(t) = answer_level {
            answer.insert("trustlevel".into(), Value::UInt(t));
        }
        serve_one(&mut auth, Some(Value::Dict(answer)));
        assert!(matches!(recv(&mut user, "WELCOME"), Message::Welcome(_)));
        published(&mut user, 1, "dyn.news").expect("member publishes");
        match recv(&mut auth, "EVENT") {
            Message::Event(e) => assert_eq!(e.details.trustlevel, Some(expected), "{authid}"),
            other => panic!("expected EVENT, got {other:?}"),
        }
        user.must_leave();
    }
}

/// An embedder's [`Authorizer`] installed on the library router decides before the realm's
/// (here absent) rules; `None` leaves the decision to them (allow, in an open realm).
#[test]
fn embedded_router_uses_an_installed_authorizer() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use switchyard::authz::{Authorizer, AuthzAction, Decision, SessionInfo, SharedAuthorizer};
    use switchyard::config::{ListenAddr, ListenerConfig, ListenerKind};
    use switchyard::RouterConfig;

    struct NoSecrets(AtomicUsize);
    impl Authorizer for NoSecrets {
        fn authorize(&self, s: &SessionInfo<'_>, uri: &str, a: AuthzAction) -> Option<Decision> {
            self.0.fetch_add(1, Ordering::Relaxed);
            assert_eq!(s.realm, "realm1");
            (a == AuthzAction::Subscribe && uri.starts_with("secret.")).then_some(Decision::DENY)
        }
    }
    let hook = Arc::new(NoSecrets(AtomicUsize::new(0)));
    let cfg = RouterConfig {
        shards: 1,
        listeners: vec![ListenerConfig {
            kind: ListenerKind::RawSocket,
            addr: ListenAddr::Tcp("127.0.0.1:0".parse().expect("address")),
            tls: None,
        }],
        authorizer: Some(SharedAuthorizer(hook.clone())),
        ..Default::default()
    };
    let router = switchyard::shard::Router::start(cfg).expect("router starts");
    let url = router.endpoints()[0].clone();
    let addr = url
        .strip_prefix("rs://")
        .and_then(|a| a.parse().ok())
        .expect("rs endpoint");
    let mut c = RawClient::connect(addr, Serializer::Json);
    c.must_join("realm1");
    subscribed(&mut c, 1, "public.news").expect("no opinion: the open realm allows");
    assert_eq!(
        subscribed(&mut c, 2, "secret.plans"),
        Err(NOT_AUTHORIZED.into())
    );
    assert_eq!(hook.0.load(Ordering::Relaxed), 2);
    c.must_leave();
    router.shutdown_handle().shutdown();
    router.join().expect("router stops");
}
