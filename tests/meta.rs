//! The WAMP Meta API and testaments against the real `switchyard` binary with two shards.
//!
//! Sessions connect over the Unix socket, which shard 0 accepts and deals round-robin to the
//! shards: consecutive connections land on alternate shards, so every test has sessions on both
//! shards and the meta procedures must gather across them. The clients are the crate's blocking
//! RawSocket test client (tests/common) and, in `autobahn_python_meta`, autobahn-python
//! (`tests/interop/meta.py`).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use switchyard::codec::{
    Call, CallOptions, Dict, Message, Options, Payload, RegisterOptions, Serializer,
    SubscribeOptions, Unsubscribe, Value,
};

/// How long to wait for a meta event.
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

struct Router {
    _router: RouterProcess,
    _dir: tempfile::TempDir,
    sock: PathBuf,
}

fn start() -> Router {
    start_with(&[])
}

fn start_with(extra: &[&str]) -> Router {
    let dir = tempfile::tempdir().expect("temp dir");
    let sock = dir.path().join("switchyard.sock");
    let mut args = vec![
        "--shards",
        "2",
        "--rs",
        "127.0.0.1:0",
        "--ws",
        "127.0.0.1:0",
        "--unix",
        sock.to_str().expect("utf-8 temp path"),
    ];
    args.extend_from_slice(extra);
    let router = RouterProcess::start(&args);
    Router {
        _router: router,
        _dir: dir,
        sock,
    }
}

/// A joined session with a request counter and the events it received while waiting.
struct Peer {
    c: RawClient,
    id: u64,
    next: u64,
    events: Vec<(u64, Vec<Value>)>,
    /// Subscription ID → topic, for events.
    topics: Vec<(u64, String)>,
}

impl Peer {
    fn join(r: &Router, serializer: Serializer) -> Peer {
        Peer::join_realm(r, serializer, "realm1")
    }

    fn join_realm(r: &Router, serializer: Serializer, realm: &str) -> Peer {
        let mut c = RawClient::connect_unix(&r.sock, serializer);
        let w = c.must_join(realm);
        Peer {
            c,
            id: w.session,
            next: 0,
            events: Vec::new(),
            topics: Vec::new(),
        }
    }

    fn request(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// Reads until `pick` accepts a message (events are kept for `event`).
    fn wait<T>(&mut self, what: &str, mut pick: impl FnMut(&Message) -> Option<T>) -> T {
        let deadline = Instant::now() + EVENT_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "session {}: no {what} in time", self.id);
            match self.c.recv(left) {
                Ok(m) => {
                    if let Some(t) = pick(&m) {
                        return t;
                    }
                    if let Message::Event(e) = m {
                        let args = e.payload.args_values().ok().flatten().unwrap_or_default();
                        self.events.push((e.subscription, args));
                    }
                }
                Err(e) => panic!("session {}: waiting for {what}: {e:?}", self.id),
            }
        }
    }

    /// CALL; Ok(args) for RESULT, Err(error URI) for ERROR.
    fn call(
        &mut self,
        procedure: &str,
        args: Vec<Value>,
        kwargs: Dict,
    ) -> Result<Vec<Value>, String> {
        let request = self.request();
        let payload = match (args.is_empty(), kwargs.is_empty()) {
            (true, true) => Payload::Empty,
            (_, true) => Payload::args(args),
            _ => Payload::args_kwargs(args, kwargs),
        };
        self.c
            .send(&Message::Call(Box::new(Call {
                request,
                options: CallOptions::default(),
                procedure: procedure.into(),
                payload,
            })))
            .expect("send CALL");
        self.wait(procedure, |m| match m {
            Message::Result(r) if r.request == request => Some(Ok(r
                .payload
                .args_values()
                .ok()
                .flatten()
                .unwrap_or_default())),
            Message::Error(e) if e.request == request => Some(Err(e.error.to_string())),
            _ => None,
        })
    }

    fn call_ok(&mut self, procedure: &str, args: Vec<Value>) -> Vec<Value> {
        self.call(procedure, args, Dict::new())
            .unwrap_or_else(|e| panic!("{procedure}: {e}"))
    }

    fn subscribe(&mut self, topic: &str, policy: Option<&str>) -> u64 {
        let request = self.request();
        let mut d = Dict::new();
        if let Some(p) = policy {
            d.insert("match".into(), Value::from(p));
        }
        let options = SubscribeOptions::from_dict(d).expect("subscribe options");
        self.c
            .send(&Message::Subscribe(switchyard::codec::Subscribe {
                request,
                options,
                topic: topic.into(),
            }))
            .expect("send SUBSCRIBE");
        let sub = self.wait("SUBSCRIBED", |m| match m {
            Message::Subscribed(s) if s.request == request => Some(s.subscription),
            _ => None,
        });
        self.topics.push((sub, topic.to_owned()));
        sub
    }

    fn unsubscribe(&mut self, subscription: u64) {
        let request = self.request();
        self.c
            .send(&Message::Unsubscribe(Unsubscribe {
                request,
                subscription,
            }))
            .expect("send UNSUBSCRIBE");
        self.wait("UNSUBSCRIBED", |m| match m {
            Message::Unsubscribed(u) if u.request == request => Some(()),
            _ => None,
        });
    }

    fn register(&mut self, procedure: &str, policy: &str) -> u64 {
        let request = self.request();
        let mut d = Dict::new();
        d.insert("match".into(), Value::from(policy));
        let options = RegisterOptions::from_dict(d).expect("register options");
        self.c
            .send(&Message::Register(switchyard::codec::Register {
                request,
                options,
                procedure: procedure.into(),
            }))
            .expect("send REGISTER");
        self.wait("REGISTERED", |m| match m {
            Message::Registered(r) if r.request == request => Some(r.registration),
            _ => None,
        })
    }

    /// Waits for an event on `topic` whose arguments satisfy `pred`; returns the arguments.
    fn event(&mut self, topic: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let subs: Vec<u64> = self
            .topics
            .iter()
            .filter(|(_, t)| t == topic)
            .map(|(s, _)| *s)
            .collect();
        assert!(!subs.is_empty(), "not subscribed to {topic}");
        if let Some(i) = self
            .events
            .iter()
            .position(|(s, a)| subs.contains(s) && pred(a))
        {
            return self.events.remove(i).1;
        }
        self.wait(&format!("event on {topic}"), |m| match m {
            Message::Event(e) if subs.contains(&e.subscription) => {
                let args = e.payload.args_values().ok().flatten().unwrap_or_default();
                pred(&args).then_some(args)
            }
            _ => None,
        })
    }
}

fn uint(v: &Value) -> u64 {
    match v {
        Value::UInt(u) => *u,
        other => panic!("expected an unsigned integer, got {other:?}"),
    }
}

fn ids(v: &Value) -> Vec<u64> {
    match v {
        Value::List(l) => {
            let mut out: Vec<u64> = l.iter().map(uint).collect();
            out.sort_unstable();
            out
        }
        other => panic!("expected a list of IDs, got {other:?}"),
    }
}

fn dict(v: &Value) -> &Dict {
    match v {
        Value::Dict(d) => d,
        other => panic!("expected a dict, got {other:?}"),
    }
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

fn kw(pairs: &[(&str, Value)]) -> Dict {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

#[test]
fn welcome_announces_meta_features() {
    let r = start();
    let mut c = RawClient::connect_unix(&r.sock, Serializer::Json);
    let w = c.must_join("realm1");
    let roles = w.details.roles.expect("roles").0;
    let roles = dict(&roles);
    for (role, feature) in [
        ("broker", "session_meta_api"),
        ("broker", "subscription_meta_api"),
        ("dealer", "session_meta_api"),
        ("dealer", "registration_meta_api"),
        ("dealer", "testament_meta_api"),
    ] {
        let features = dict(&dict(&roles[role])["features"]);
        assert_eq!(
            features.get(feature),
            Some(&Value::Bool(true)),
            "{role}.{feature}"
        );
    }
}

#[test]
fn session_queries_gather_both_shards() {
    let r = start();
    let mut peers: Vec<Peer> = (0..4)
        .map(|i| {
            let ser = if i % 2 == 0 {
                Serializer::Json
            } else {
                Serializer::MsgPack
            };
            Peer::join(&r, ser)
        })
        .collect();
    let all = sorted(peers.iter().map(|p| p.id).collect());
    for p in peers.iter_mut() {
        assert_eq!(
            p.call_ok("wamp.session.count", vec![]),
            vec![Value::UInt(4)]
        );
        assert_eq!(ids(&p.call_ok("wamp.session.list", vec![])[0]), all);
    }
    let a = &mut peers[0];
    let anon = Value::List(vec![Value::from("anonymous")]);
    let none = Value::List(vec![Value::from("nobody")]);
    assert_eq!(
        a.call_ok("wamp.session.count", vec![anon.clone()]),
        vec![Value::UInt(4)]
    );
    assert_eq!(
        a.call_ok("wamp.session.count", vec![none.clone()]),
        vec![Value::UInt(0)]
    );
    assert_eq!(
        ids(&a.call_ok("wamp.session.list", vec![none])[0]),
        Vec::<u64>::new()
    );
    for id in &all {
        let got = a.call_ok("wamp.session.get", vec![Value::UInt(*id)]);
        let d = dict(&got[0]);
        assert_eq!(d["session"], Value::UInt(*id));
        assert_eq!(d["authrole"], Value::from("anonymous"));
        assert_eq!(d["authmethod"], Value::from("anonymous"));
        assert!(matches!(d["authid"], Value::Str(_)), "{d:?}");
        assert!(matches!(d["authprovider"], Value::Str(_)), "{d:?}");
    }
    let missing = (1..).find(|i| !all.contains(i)).unwrap_or(1);
    assert_eq!(
        a.call("wamp.session.get", vec![Value::UInt(missing)], Dict::new()),
        Err("wamp.error.no_such_session".to_owned())
    );
    assert_eq!(
        a.call("wamp.session.get", vec![Value::from("x")], Dict::new()),
        Err("wamp.error.invalid_argument".to_owned())
    );
}

#[test]
fn join_leave_events_and_kill() {
    let r = start();
    let mut a = Peer::join(&r, Serializer::Json);
    a.subscribe("wamp.session.on_join", None);
    a.subscribe("wamp.session.on_leave", None);
    // Two sessions: one per shard.
    let mut b = Peer::join(&r, Serializer::MsgPack);
    let mut c = Peer::join(&r, Serializer::Json);
    for p in [&b, &c] {
        let args = a.event("wamp.session.on_join", |x| {
            x.first()
                .map(|d| dict(d).get("session") == Some(&Value::UInt(p.id)))
                == Some(true)
        });
        let d = dict(&args[0]);
        assert_eq!(d["authrole"], Value::from("anonymous"));
        assert!(
            d.contains_key("authid") && d.contains_key("authmethod"),
            "{d:?}"
        );
    }

    // Kill errors: itself, an unknown session, a bad reason.
    assert_eq!(
        a.call("wamp.session.kill", vec![Value::UInt(a.id)], Dict::new()),
        Err("wamp.error.no_such_session".to_owned())
    );
    assert_eq!(
        a.call(
            "wamp.session.kill",
            vec![Value::UInt(b.id)],
            kw(&[("reason", Value::from(""))])
        ),
        Err("wamp.error.invalid_uri".to_owned())
    );

    // Kill b (whichever shard it is on) with a reason and a message.
    a.call(
        "wamp.session.kill",
        vec![Value::UInt(b.id)],
        kw(&[
            ("reason", Value::from("com.example.kicked")),
            ("message", Value::from("go away")),
        ]),
    )
    .expect("kill");
    let g = b.wait("GOODBYE", |m| match m {
        Message::Goodbye(g) => Some(g.clone()),
        _ => None,
    });
    assert_eq!(g.reason.as_str(), "com.example.kicked");
    assert_eq!(g.details.get("message"), Some(&Value::from("go away")));
    b.c.send(&goodbye("wamp.close.goodbye_and_out"))
        .expect("GOODBYE reply");
    let args = a.event("wamp.session.on_leave", |x| {
        x.first() == Some(&Value::UInt(b.id))
    });
    assert_eq!(
        args.len(),
        3,
        "on_leave(session, authid, authrole): {args:?}"
    );
    assert_eq!(args[2], Value::from("anonymous"));
    assert_eq!(
        a.call("wamp.session.kill", vec![Value::UInt(b.id)], Dict::new()),
        Err("wamp.error.no_such_session".to_owned())
    );

    // kill_by_authrole excludes the caller; the default reason is wamp.close.killed.
    let mut d = Peer::join(&r, Serializer::MsgPack);
    let n = a.call_ok(
        "wamp.session.kill_by_authrole",
        vec![Value::from("anonymous")],
    );
    assert_eq!(n, vec![Value::UInt(2)]);
    for p in [&mut c, &mut d] {
        let g = p.wait("GOODBYE", |m| match m {
            Message::Goodbye(g) => Some(g.clone()),
            _ => None,
        });
        assert_eq!(g.reason.as_str(), "wamp.close.killed");
        assert!(!g.details.contains_key("message"), "{g:?}");
    }
    assert_eq!(
        a.call_ok("wamp.session.count", vec![]),
        vec![Value::UInt(1)]
    );

    // kill_by_authid answers the killed IDs; kill_all their count.
    let e = Peer::join(&r, Serializer::Json);
    let f = Peer::join(&r, Serializer::Json);
    let authid = a
        .call_ok("wamp.session.get", vec![Value::UInt(e.id)])
        .first()
        .and_then(|d| dict(d).get("authid").cloned())
        .expect("authid");
    let killed = a.call_ok("wamp.session.kill_by_authid", vec![authid]);
    assert_eq!(ids(&killed[0]), vec![e.id]);
    assert_eq!(
        a.call_ok("wamp.session.kill_all", vec![]),
        vec![Value::UInt(1)]
    );
    drop(f);
    assert_eq!(
        a.call_ok("wamp.session.count", vec![]),
        vec![Value::UInt(1)]
    );
}

#[test]
fn subscription_meta_across_shards() {
    let r = start();
    let mut a = Peer::join(&r, Serializer::Json);
    for t in ["on_create", "on_subscribe", "on_unsubscribe", "on_delete"] {
        a.subscribe(&format!("wamp.subscription.{t}"), None);
    }
    let mut b = Peer::join(&r, Serializer::MsgPack);
    let mut c = Peer::join(&r, Serializer::Json);
    let sub = b.subscribe("com.example.topic", None);
    let args = a.event("wamp.subscription.on_create", |x| {
        x.first() == Some(&Value::UInt(b.id))
    });
    let d = dict(&args[1]);
    assert_eq!(d["id"], Value::UInt(sub));
    assert_eq!(d["uri"], Value::from("com.example.topic"));
    assert_eq!(d["match"], Value::from("exact"));
    // Every shard answers the creation time the creating shard announced.
    let created = d["created"].clone();
    for p in [&mut a, &mut b, &mut c] {
        let got = p.call_ok("wamp.subscription.get", vec![Value::UInt(sub)]);
        assert_eq!(dict(&got[0])["created"], created, "session {}", p.id);
    }
    a.event("wamp.subscription.on_subscribe", |x| {
        x == [Value::UInt(b.id), Value::UInt(sub)]
    });
    assert_eq!(c.subscribe("com.example.topic", None), sub);
    a.event("wamp.subscription.on_subscribe", |x| {
        x == [Value::UInt(c.id), Value::UInt(sub)]
    });
    // Subscribing again adds no one: no second on_subscribe (checked below, once later
    // events from c's shard have arrived).
    assert_eq!(c.subscribe("com.example.topic", None), sub);
    let psub = c.subscribe("com.example", Some("prefix"));
    // Two SUBSCRIBEs in a row for a new topic (the second while the first is pending): one
    // on_subscribe.
    let twice = {
        let mut requests = Vec::new();
        for _ in 0..2 {
            let request = c.request();
            requests.push(request);
            c.c.send(&Message::Subscribe(switchyard::codec::Subscribe {
                request,
                options: SubscribeOptions::default(),
                topic: "com.example.twice".into(),
            }))
            .expect("send SUBSCRIBE");
        }
        let mut got = Vec::new();
        for request in requests {
            got.push(c.wait("SUBSCRIBED", |m| match m {
                Message::Subscribed(s) if s.request == request => Some(s.subscription),
                _ => None,
            }));
        }
        assert_eq!(got[0], got[1], "one subscription for both requests");
        got[0]
    };
    a.event("wamp.subscription.on_subscribe", |x| {
        x == [Value::UInt(c.id), Value::UInt(twice)]
    });

    assert_eq!(
        a.call_ok(
            "wamp.subscription.lookup",
            vec![Value::from("com.example.topic")]
        ),
        vec![Value::UInt(sub)]
    );
    let prefix = Value::Dict(kw(&[("match", Value::from("prefix"))]));
    assert_eq!(
        a.call_ok(
            "wamp.subscription.lookup",
            vec![Value::from("com.example"), prefix]
        ),
        vec![Value::UInt(psub)]
    );
    assert_eq!(
        a.call_ok("wamp.subscription.lookup", vec![Value::from("com.nothing")]),
        vec![Value::Null]
    );
    let m = a.call_ok(
        "wamp.subscription.match",
        vec![Value::from("com.example.topic")],
    );
    assert_eq!(ids(&m[0]), sorted(vec![sub, psub]));
    assert_eq!(
        a.call_ok("wamp.subscription.match", vec![Value::from("org.none")]),
        vec![Value::Null]
    );
    let list = a.call_ok("wamp.subscription.list", vec![]);
    let list = dict(&list[0]);
    assert!(ids(&list["exact"]).contains(&sub), "{list:?}");
    assert_eq!(ids(&list["prefix"]), vec![psub]);
    assert_eq!(ids(&list["wildcard"]), Vec::<u64>::new());
    let got = a.call_ok("wamp.subscription.get", vec![Value::UInt(psub)]);
    let d = dict(&got[0]);
    assert_eq!(d["match"], Value::from("prefix"));
    assert!(matches!(&d["created"], Value::Str(s) if s.ends_with('Z') && s.contains('T')));
    assert_eq!(
        ids(&a.call_ok("wamp.subscription.list_subscribers", vec![Value::UInt(sub)])[0]),
        sorted(vec![b.id, c.id])
    );
    assert_eq!(
        a.call_ok(
            "wamp.subscription.count_subscribers",
            vec![Value::UInt(sub)]
        ),
        vec![Value::UInt(2)]
    );
    for p in [
        "wamp.subscription.get",
        "wamp.subscription.list_subscribers",
        "wamp.subscription.count_subscribers",
    ] {
        assert_eq!(
            a.call(p, vec![Value::UInt(424242)], Dict::new()),
            Err("wamp.error.no_such_subscription".to_owned()),
            "{p}"
        );
    }

    // c unsubscribes, then b leaves: on_unsubscribe twice, on_delete once, after b's.
    c.unsubscribe(sub);
    a.event("wamp.subscription.on_unsubscribe", |x| {
        x == [Value::UInt(c.id), Value::UInt(sub)]
    });
    let on_subscribe = a
        .topics
        .iter()
        .find(|(_, t)| t == "wamp.subscription.on_subscribe")
        .map(|(s, _)| *s);
    let repeats = a
        .events
        .iter()
        .filter(|(s, x)| {
            Some(*s) == on_subscribe
                && (x[..] == [Value::UInt(c.id), Value::UInt(sub)]
                    || x[..] == [Value::UInt(c.id), Value::UInt(twice)])
        })
        .count();
    assert_eq!(
        repeats, 0,
        "on_subscribe for a repeated SUBSCRIBE: {:?}",
        a.events
    );
    assert_eq!(
        a.call_ok(
            "wamp.subscription.count_subscribers",
            vec![Value::UInt(sub)]
        ),
        vec![Value::UInt(1)]
    );
    b.c.must_leave();
    a.event("wamp.subscription.on_unsubscribe", |x| {
        x == [Value::UInt(b.id), Value::UInt(sub)]
    });
    a.event("wamp.subscription.on_delete", |x| {
        x == [Value::UInt(b.id), Value::UInt(sub)]
    });
    let deadline = Instant::now() + EVENT_TIMEOUT;
    loop {
        let got = a.call("wamp.subscription.get", vec![Value::UInt(sub)], Dict::new());
        if got == Err("wamp.error.no_such_subscription".to_owned()) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "subscription {sub} still there: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn registration_meta_across_shards() {
    let r = start();
    let mut a = Peer::join(&r, Serializer::Json);
    for t in ["on_create", "on_register", "on_unregister", "on_delete"] {
        a.subscribe(&format!("wamp.registration.{t}"), None);
    }
    let mut b = Peer::join(&r, Serializer::MsgPack);
    let reg = b.register("com.example.proc", "prefix");
    let args = a.event("wamp.registration.on_create", |x| {
        x.first() == Some(&Value::UInt(b.id))
    });
    let d = dict(&args[1]);
    assert_eq!(d["id"], Value::UInt(reg));
    assert_eq!(d["uri"], Value::from("com.example.proc"));
    assert_eq!(d["match"], Value::from("prefix"));
    assert_eq!(d["invoke"], Value::from("single"));
    let created = d["created"].clone();
    let got = a.call_ok("wamp.registration.get", vec![Value::UInt(reg)]);
    assert_eq!(dict(&got[0])["created"], created);
    a.event("wamp.registration.on_register", |x| {
        x == [Value::UInt(b.id), Value::UInt(reg)]
    });

    let prefix = Value::Dict(kw(&[("match", Value::from("prefix"))]));
    assert_eq!(
        a.call_ok(
            "wamp.registration.lookup",
            vec![Value::from("com.example.proc"), prefix]
        ),
        vec![Value::UInt(reg)]
    );
    assert_eq!(
        a.call_ok(
            "wamp.registration.lookup",
            vec![Value::from("com.example.proc")]
        ),
        vec![Value::Null]
    );
    assert_eq!(
        a.call_ok(
            "wamp.registration.match",
            vec![Value::from("com.example.proc.x")]
        ),
        vec![Value::UInt(reg)]
    );
    assert_eq!(
        a.call_ok("wamp.registration.match", vec![Value::from("org.none")]),
        vec![Value::Null]
    );
    let list = a.call_ok("wamp.registration.list", vec![]);
    assert_eq!(ids(&dict(&list[0])["prefix"]), vec![reg]);
    let got = a.call_ok("wamp.registration.get", vec![Value::UInt(reg)]);
    assert_eq!(dict(&got[0])["uri"], Value::from("com.example.proc"));
    assert_eq!(
        ids(&a.call_ok("wamp.registration.list_callees", vec![Value::UInt(reg)])[0]),
        vec![b.id]
    );
    assert_eq!(
        a.call_ok("wamp.registration.count_callees", vec![Value::UInt(reg)]),
        vec![Value::UInt(1)]
    );
    assert_eq!(
        a.call(
            "wamp.registration.get",
            vec![Value::UInt(424242)],
            Dict::new()
        ),
        Err("wamp.error.no_such_registration".to_owned())
    );

    // The callee's connection drops: on_unregister then on_delete.
    b.c.conn.shutdown();
    drop(b);
    let b_id = a
        .event("wamp.registration.on_unregister", |x| {
            x.get(1) == Some(&Value::UInt(reg))
        })
        .first()
        .map(uint)
        .expect("session");
    a.event("wamp.registration.on_delete", |x| {
        x == [Value::UInt(b_id), Value::UInt(reg)]
    });
}

#[test]
fn testaments_published_when_session_is_lost() {
    let r = start();
    let mut a = Peer::join(&r, Serializer::Json);
    a.subscribe("com.example.will", None);
    let mut b = Peer::join(&r, Serializer::MsgPack);
    let add = |b: &mut Peer, word: &str, scope: Option<&str>| {
        let mut kwargs = Dict::new();
        if let Some(s) = scope {
            kwargs.insert("scope".into(), Value::from(s));
        }
        b.call(
            "wamp.session.add_testament",
            vec![
                Value::from("com.example.will"),
                Value::List(vec![Value::from(word)]),
                Value::Dict(kw(&[("from", Value::UInt(b.id))])),
            ],
            kwargs,
        )
    };
    add(&mut b, "destroyed-1", None).expect("add");
    add(&mut b, "flushed", Some("destroyed")).expect("add");
    add(&mut b, "detached-1", Some("detached")).expect("add");
    assert_eq!(
        add(&mut b, "x", Some("sometimes")),
        Err("wamp.error.invalid_argument".to_owned())
    );
    assert_eq!(
        b.call(
            "wamp.session.add_testament",
            vec![
                Value::from("not a uri!"),
                Value::List(vec![]),
                Value::Dict(Dict::new())
            ],
            Dict::new()
        ),
        Err("wamp.error.invalid_uri".to_owned())
    );
    assert_eq!(
        b.call_ok("wamp.session.flush_testaments", vec![]),
        vec![Value::UInt(2)]
    );
    add(&mut b, "destroyed-2", None).expect("add");
    // Publish options are honoured: this one excludes `a`, so `a` never sees it.
    b.call(
        "wamp.session.add_testament",
        vec![
            Value::from("com.example.will"),
            Value::List(vec![Value::from("excluded")]),
            Value::Dict(Dict::new()),
        ],
        kw(&[(
            "publish_options",
            Value::Dict(kw(&[("exclude", Value::List(vec![Value::UInt(a.id)]))])),
        )]),
    )
    .expect("add with publish options");
    // Bounded: the 33rd testament is refused.
    let mut c = Peer::join(&r, Serializer::Json);
    for i in 0..32 {
        add(&mut c, &format!("t{i}"), Some("detached")).expect("within the limit");
    }
    assert_eq!(
        add(&mut c, "one too many", None),
        Err("switchyard.error.limit_exceeded".to_owned())
    );
    assert_eq!(
        c.call_ok("wamp.session.flush_testaments", kw_args("detached")),
        vec![Value::UInt(0)],
        "scope is a keyword argument: positional arguments are ignored"
    );
    assert_eq!(
        c.call(
            "wamp.session.flush_testaments",
            vec![],
            kw(&[("scope", Value::from("detached"))])
        ),
        Ok(vec![Value::UInt(32)])
    );
    c.c.must_leave();

    // b's transport is lost: detached testaments first, then destroyed ones, in order.
    b.c.conn.shutdown();
    drop(b);
    let mut words = Vec::new();
    while words.len() < 2 {
        let args = a.event("com.example.will", |_| true);
        words.push(args[0].clone());
    }
    assert_eq!(
        words,
        vec![Value::from("detached-1"), Value::from("destroyed-2")]
    );
    // Nothing else arrives (the flushed one and c's flushed ones are gone): a round trip to
    // the router after b's leave was published proves it.
    a.call_ok("wamp.session.count", vec![]);
    assert!(
        a.events.iter().all(|(s, _)| !a
            .topics
            .iter()
            .any(|(t, n)| t == s && n == "com.example.will")),
        "unexpected testament events: {:?}",
        a.events
    );
}

#[test]
fn meta_stays_in_its_realm() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("switchyard.toml");
    std::fs::write(
        &config,
        "[[realm]]\nname = \"realm1\"\n\n[[realm]]\nname = \"realm2\"\n",
    )
    .expect("write config");
    let r = start_with(&["--config", config.to_str().expect("utf-8 temp path")]);
    let mut a = Peer::join_realm(&r, Serializer::Json, "realm1");
    a.subscribe("wamp.session.on_join", None);
    let mut others: Vec<Peer> = (0..3)
        .map(|_| Peer::join_realm(&r, Serializer::MsgPack, "realm2"))
        .collect();
    let b = Peer::join_realm(&r, Serializer::Json, "realm1");
    // a sees b join, and no realm2 session.
    a.event("wamp.session.on_join", |x| {
        x.first()
            .map(|d| dict(d).get("session") == Some(&Value::UInt(b.id)))
            == Some(true)
    });
    // The count gathers from both shards: their earlier events have reached a by its answer.
    assert_eq!(
        a.call_ok("wamp.session.count", vec![]),
        vec![Value::UInt(2)]
    );
    assert!(
        a.events.is_empty(),
        "realm2 joins leaked into realm1: {:?}",
        a.events
    );
    assert_eq!(
        ids(&a.call_ok("wamp.session.list", vec![])[0]),
        sorted(vec![a.id, b.id])
    );
    let x = &mut others[0];
    assert_eq!(
        x.call_ok("wamp.session.count", vec![]),
        vec![Value::UInt(3)]
    );
    assert_eq!(
        x.call("wamp.session.get", vec![Value::UInt(a.id)], Dict::new()),
        Err("wamp.error.no_such_session".to_owned())
    );
    assert_eq!(
        x.call("wamp.session.kill", vec![Value::UInt(a.id)], Dict::new()),
        Err("wamp.error.no_such_session".to_owned())
    );
    assert_eq!(
        x.call_ok("wamp.session.kill_all", vec![]),
        vec![Value::UInt(2)]
    );
    assert_eq!(
        a.call_ok("wamp.session.count", vec![]),
        vec![Value::UInt(2)]
    );
}

fn kw_args(scope: &str) -> Vec<Value> {
    vec![Value::from(scope)]
}

#[test]
fn autobahn_python_meta() {
    let r = start();
    assert_script_ok(
        "meta.py",
        Command::new(interop_python("autobahn"))
            .arg("meta.py")
            .arg("--unix")
            .arg(&r.sock),
        Duration::from_secs(60),
        "OK: meta",
    );
}

/// `wamp.registration.remove_callee` over a socket, callee and admin on (possibly) different
/// shards: the callee leaves the registration (`on_unregister`, `on_delete`), calls find no
/// procedure, and a callee that did not announce `registration_revocation` gets no UNREGISTERED.
#[test]
fn remove_callee_revokes_a_registration() {
    let r = start();
    let mut a = Peer::join(&r, Serializer::Json);
    a.subscribe("wamp.registration.on_unregister", None);
    a.subscribe("wamp.registration.on_delete", None);
    let mut b = Peer::join(&r, Serializer::MsgPack);
    let reg = b.register("com.example.revoked", "exact");
    let reason = Value::from("moving endpoint");
    assert_eq!(
        a.call_ok(
            "wamp.registration.remove_callee",
            vec![Value::UInt(reg), Value::UInt(b.id), reason]
        ),
        Vec::<Value>::new()
    );
    a.event("wamp.registration.on_unregister", |x| {
        x == [Value::UInt(b.id), Value::UInt(reg)]
    });
    a.event("wamp.registration.on_delete", |x| {
        x == [Value::UInt(b.id), Value::UInt(reg)]
    });
    assert_eq!(
        a.call("com.example.revoked", vec![], Dict::new()),
        Err("wamp.error.no_such_procedure".to_owned())
    );
    assert_eq!(
        a.call(
            "wamp.registration.remove_callee",
            vec![Value::UInt(reg), Value::UInt(b.id)],
            Dict::new()
        ),
        Err("wamp.error.no_such_registration".to_owned())
    );
    match b.c.recv(Duration::from_millis(200)) {
        Err(RecvError::Timeout) => {}
        other => panic!("the callee did not announce revocation, yet got {other:?}"),
    }
}
