//! The client library against a real router started in-process: join, RPC (progressive
//! results, progressive invocations, cancel, errors), pub/sub (acknowledge, exclude_me,
//! patterns, unsubscribe), leave, over RawSocket+MessagePack and WebSocket+JSON.
//!
//! Every scenario runs on both client drivers (glommio and tokio): the body is written once
//! in `client_basic_tests!` and expanded in `glommio_driver` and `tokio_driver`
//! (`common::drivers`).

mod common;

macro_rules! client_basic_tests {
    () => {


use crate::common::{self, endpoint, TEST_DEADLINE, WAIT};

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard::client::{
    CallError, CallOptions, CancelMode, ClientConfig, Dict, Error, Event, MatchPolicy,
    PublishOptions, RegisterOptions, Serializer, SubscribeOptions, Value, Yield,
};
use switchyard::config::{ListenAddr, ListenerConfig, ListenerKind};
use switchyard::shard::Router;
use switchyard::RouterConfig;

fn start_router() -> Router {
    common::start_router_in_process(1)
}

fn uint(v: &Value) -> u64 {
    v.as_u64().expect("an unsigned integer")
}

fn wamp_uri(e: &Error) -> &str {
    match e {
        Error::Wamp(w) => w.error.as_str(),
        other => panic!("expected Error::Wamp, got {other:?}"),
    }
}

fn config(url: &str, ser: Serializer) -> ClientConfig {
    ClientConfig::new(url, "realm1")
        .serializer(ser)
        .connect_timeout(Duration::from_secs(5))
}

/// How a scenario's clients connect.
enum Via {
    Net(String, Serializer),
    Local(switchyard::shard::LocalConnector),
}

impl Via {
    async fn connect(&self) -> Result<Client, Error> {
        match self {
            Via::Net(url, ser) => Client::connect(config(url, *ser)).await,
            Via::Local(c) => Client::connect_local(c, ClientConfig::new("", "realm1")).await,
        }
    }
}

async fn rpc(via: Via) {
    let callee = via.connect().await.expect("callee joins");
    let caller = via.connect().await.expect("caller joins");
    assert!(callee.is_connected());
    assert_ne!(callee.session_id(), caller.session_id());
    assert!(callee.session_id().is_some());

    // Plain call.
    callee
        .register(
            "com.test.add",
            RegisterOptions::default(),
            |inv| async move {
                let sum: u64 = inv.args.iter().map(uint).sum();
                let mut kw = Dict::new();
                kw.insert("n".into(), Value::UInt(inv.args.len() as u64));
                Ok(Yield::new(vec![Value::UInt(sum)], kw))
            },
        )
        .await
        .expect("register add");
    let r = caller
        .call(
            "com.test.add",
            vec![Value::UInt(2), Value::UInt(40)],
            Dict::new(),
            CallOptions::default(),
        )
        .await
        .expect("add");
    assert_eq!(r.args, vec![Value::UInt(42)]);
    assert_eq!(r.kwargs.get("n"), Some(&Value::UInt(2)));
    assert!(!r.progress);

    // Errors: from the callee, from the router.
    callee
        .register(
            "com.test.fail",
            RegisterOptions::default(),
            |_inv| async move {
                Err(CallError::new("com.test.oops").with_args(vec![Value::Str("bad".into())]))
            },
        )
        .await
        .expect("register fail");
    let e = caller
        .call("com.test.fail", vec![], Dict::new(), CallOptions::default())
        .await
        .expect_err("fails");
    assert_eq!(wamp_uri(&e), "com.test.oops");
    assert_eq!(e.to_string(), "com.test.oops: bad");
    let e = caller
        .call(
            "com.test.nobody",
            vec![],
            Dict::new(),
            CallOptions::default(),
        )
        .await
        .expect_err("no such procedure");
    assert_eq!(wamp_uri(&e), "wamp.error.no_such_procedure");
    let e = caller
        .register(
            "com.test.add",
            RegisterOptions::default(),
            |_inv| async move { Ok(Yield::empty()) },
        )
        .await
        .expect_err("already registered");
    assert_eq!(wamp_uri(&e), "wamp.error.procedure_already_exists");

    // Progressive results.
    callee
        .register(
            "com.test.count",
            RegisterOptions::default(),
            |inv| async move {
                let n = inv.args.first().map(uint).unwrap_or(0);
                for i in 0..n {
                    inv.progress(Yield::args(vec![Value::UInt(i)]))
                        .map_err(|_| CallError::new("com.test.no_progress"))?;
                }
                Ok(Yield::args(vec![Value::Str("done".into())]))
            },
        )
        .await
        .expect("register count");
    let mut h = caller
        .call_handle(
            "com.test.count",
            vec![Value::UInt(3)],
            Dict::new(),
            CallOptions {
                receive_progress: Some(true),
                ..Default::default()
            },
        )
        .expect("call count");
    for i in 0..3 {
        let r = h.next().await.expect("a result").expect("progress");
        assert!(r.progress, "result {i} is progressive");
        assert_eq!(r.args, vec![Value::UInt(i)]);
    }
    let last = h.next().await.expect("final").expect("ok");
    assert!(!last.progress);
    assert_eq!(last.args, vec![Value::Str("done".into())]);
    assert!(h.next().await.is_none());
    // Without receive_progress the callee may not send progress.
    let e = caller
        .call(
            "com.test.count",
            vec![Value::UInt(1)],
            Dict::new(),
            CallOptions::default(),
        )
        .await
        .expect_err("progress refused");
    assert_eq!(wamp_uri(&e), "com.test.no_progress");

    // Progressive invocations: the callee sums every chunk.
    callee
        .register(
            "com.test.sum_chunks",
            RegisterOptions::default(),
            |mut inv| async move {
                assert!(inv.is_progressive());
                let mut sum: u64 = inv.args.iter().map(uint).sum();
                let mut chunks = 1;
                while let Some((args, _)) = inv.next_chunk().await {
                    sum += args.iter().map(uint).sum::<u64>();
                    chunks += 1;
                }
                Ok(Yield::args(vec![Value::UInt(sum), Value::UInt(chunks)]))
            },
        )
        .await
        .expect("register sum_chunks");
    let h = caller
        .call_handle(
            "com.test.sum_chunks",
            vec![Value::UInt(1)],
            Dict::new(),
            CallOptions {
                progress: Some(true),
                ..Default::default()
            },
        )
        .expect("call sum_chunks");
    h.send_chunk(vec![Value::UInt(10)], Dict::new(), false)
        .expect("chunk 2");
    h.send_chunk(vec![Value::UInt(100)], Dict::new(), true)
        .expect("chunk 3");
    assert!(
        h.send_chunk(vec![], Dict::new(), true).is_err(),
        "after the last"
    );
    let r = h.result().await.expect("sum");
    assert_eq!(r.args, vec![Value::UInt(111), Value::UInt(3)]);

    // Cancel (kill): the callee sees the interrupt and answers canceled.
    let interrupted = Arc::new(Cell::new(None));
    let started = Arc::new(Cell::new(false));
    {
        let interrupted = interrupted.clone();
        let started = started.clone();
        callee
            .register("com.test.slow", RegisterOptions::default(), move |inv| {
                let interrupted = interrupted.clone();
                started.set(true);
                async move {
                    let mode = futures_lite::future::or(
                        async { Some(inv.wait_interrupted().await) },
                        async {
                            sleep(Duration::from_secs(30)).await;
                            None
                        },
                    )
                    .await;
                    interrupted.set(mode);
                    assert_eq!(inv.interrupted(), mode);
                    Err(CallError::new("wamp.error.canceled"))
                }
            })
            .await
            .expect("register slow");
    }
    let mut h = caller
        .call_handle("com.test.slow", vec![], Dict::new(), CallOptions::default())
        .expect("call slow");
    wait_until("the slow invocation", || started.get()).await;
    h.cancel(CancelMode::Kill).expect("cancel");
    let e = h.next().await.expect("an answer").expect_err("canceled");
    assert_eq!(wamp_uri(&e), "wamp.error.canceled");
    assert!(h.next().await.is_none());
    wait_until("the interrupt", || interrupted.get().is_some()).await;
    assert_eq!(interrupted.get(), Some(CancelMode::Kill));

    // Call timeout: the router cancels after 200 ms (the client would give up 1 s later).
    started.set(false);
    let t0 = Instant::now();
    let e = caller
        .call(
            "com.test.slow",
            vec![],
            Dict::new(),
            CallOptions {
                timeout: Some(200),
                ..Default::default()
            },
        )
        .await
        .expect_err("timed out");
    assert_eq!(
        wamp_uri(&e),
        "wamp.error.timeout",
        "the router's timeout comes first"
    );
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());

    // Unregister: calls fail again.
    let reg = callee
        .register(
            "com.test.temp",
            RegisterOptions::default(),
            |_inv| async move { Ok(Yield::empty()) },
        )
        .await
        .expect("register temp");
    caller
        .call("com.test.temp", vec![], Dict::new(), CallOptions::default())
        .await
        .expect("temp works");
    callee.unregister(&reg).await.expect("unregister");
    let e = caller
        .call("com.test.temp", vec![], Dict::new(), CallOptions::default())
        .await
        .expect_err("gone");
    assert_eq!(wamp_uri(&e), "wamp.error.no_such_procedure");
    assert!(matches!(
        callee.unregister(&reg).await,
        Err(Error::Invalid(_))
    ));

    // Prefix registration: the invocation names the concrete procedure.
    callee
        .register(
            "com.test.echo",
            RegisterOptions {
                match_policy: Some(MatchPolicy::Prefix),
                ..Default::default()
            },
            |inv| async move { Ok(Yield::args(vec![Value::Str(inv.procedure.to_string())])) },
        )
        .await
        .expect("register prefix");
    let r = caller
        .call(
            "com.test.echo.x",
            vec![],
            Dict::new(),
            CallOptions::default(),
        )
        .await
        .expect("echo");
    assert_eq!(r.args, vec![Value::Str("com.test.echo.x".into())]);

    caller.leave().await.expect("caller leaves");
    callee.leave().await.expect("callee leaves");
    caller.closed().await;
    assert!(!caller.is_connected());
    assert!(matches!(
        caller
            .call("com.test.add", vec![], Dict::new(), CallOptions::default())
            .await,
        Err(Error::Closed)
    ));
    assert!(matches!(caller.leave().await, Err(Error::Closed)));
}

async fn pubsub(via: Via) {
    let sub = via.connect().await.expect("subscriber joins");
    let publ = via.connect().await.expect("publisher joins");
    let got: Arc<RefCell<Vec<Event>>> = Arc::default();
    let topic_sub = {
        let got = got.clone();
        sub.subscribe("com.test.topic", SubscribeOptions::default(), move |ev| {
            got.borrow_mut().push(ev)
        })
        .await
        .expect("subscribe")
    };

    // Acknowledged publish: the publication ID comes back and matches the event's.
    let mut kw = Dict::new();
    kw.insert("k".into(), Value::Str("v".into()));
    let publication = publ
        .publish(
            "com.test.topic",
            vec![Value::UInt(1), Value::Str("x".into())],
            kw.clone(),
            PublishOptions {
                acknowledge: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("publish")
        .expect("acknowledged");
    wait_until("the first event", || got.borrow().len() == 1).await;
    {
        let ev = &got.borrow()[0];
        assert_eq!(ev.publication, publication);
        assert_eq!(ev.subscription, topic_sub.id);
        assert_eq!(ev.topic.as_str(), "com.test.topic");
        assert_eq!(ev.args, vec![Value::UInt(1), Value::Str("x".into())]);
        assert_eq!(ev.kwargs, kw);
    }
    // Unacknowledged: None.
    assert_eq!(
        publ.publish(
            "com.test.topic",
            vec![Value::UInt(2)],
            Dict::new(),
            PublishOptions::default()
        )
        .await
        .expect("publish"),
        None
    );
    wait_until("the second event", || got.borrow().len() == 2).await;

    // exclude_me: by default the publisher does not get its own event; with false it does.
    // Events of one publisher arrive in order, so the second proves the first was excluded.
    sub.publish(
        "com.test.topic",
        vec![Value::UInt(3)],
        Dict::new(),
        PublishOptions::default(),
    )
    .await
    .expect("publish excluded");
    sub.publish(
        "com.test.topic",
        vec![Value::UInt(4)],
        Dict::new(),
        PublishOptions {
            exclude_me: Some(false),
            acknowledge: Some(true),
            ..Default::default()
        },
    )
    .await
    .expect("publish included");
    wait_until("the self-event", || got.borrow().len() == 3).await;
    assert_eq!(got.borrow()[2].args, vec![Value::UInt(4)]);

    // Exclusion by session ID: the subscriber is excluded, then eligible.
    let sub_id = sub.session_id().expect("session");
    publ.publish(
        "com.test.topic",
        vec![Value::UInt(5)],
        Dict::new(),
        PublishOptions {
            exclude: Some(vec![sub_id]),
            ..Default::default()
        },
    )
    .await
    .expect("publish excluding");
    publ.publish(
        "com.test.topic",
        vec![Value::UInt(6)],
        Dict::new(),
        PublishOptions {
            eligible: Some(vec![sub_id]),
            disclose_me: Some(true),
            ..Default::default()
        },
    )
    .await
    .expect("publish eligible");
    wait_until("the eligible event", || got.borrow().len() == 4).await;
    assert_eq!(got.borrow()[3].args, vec![Value::UInt(6)]);
    assert_eq!(
        got.borrow()[3].details.publisher.map(|p| p.0),
        publ.session_id(),
        "disclose_me"
    );

    // Prefix subscription: the event names the concrete topic.
    let pattern: Arc<RefCell<Vec<Event>>> = Arc::default();
    {
        let pattern = pattern.clone();
        sub.subscribe(
            "com.test.p",
            SubscribeOptions {
                match_policy: Some(MatchPolicy::Prefix),
                ..Default::default()
            },
            move |ev| pattern.borrow_mut().push(ev),
        )
        .await
        .expect("subscribe prefix");
    }
    publ.publish(
        "com.test.p.x",
        vec![],
        Dict::new(),
        PublishOptions::default(),
    )
    .await
    .expect("publish pattern");
    wait_until("the pattern event", || pattern.borrow().len() == 1).await;
    assert_eq!(pattern.borrow()[0].topic.as_str(), "com.test.p.x");

    // Unsubscribe: later events do not arrive (the prefix one proves the order).
    sub.unsubscribe(&topic_sub).await.expect("unsubscribe");
    publ.publish(
        "com.test.topic",
        vec![Value::UInt(7)],
        Dict::new(),
        PublishOptions::default(),
    )
    .await
    .expect("publish after unsubscribe");
    publ.publish(
        "com.test.p.y",
        vec![],
        Dict::new(),
        PublishOptions::default(),
    )
    .await
    .expect("publish pattern");
    wait_until("the second pattern event", || pattern.borrow().len() == 2).await;
    assert_eq!(got.borrow().len(), 4, "no event after unsubscribe");

    // A refused publish is an Error::Wamp when acknowledged.
    let e = publ
        .publish(
            "com..bad",
            vec![],
            Dict::new(),
            PublishOptions {
                acknowledge: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect_err("invalid URI");
    assert_eq!(wamp_uri(&e), "wamp.error.invalid_uri");

    sub.leave().await.expect("subscriber leaves");
    publ.leave().await.expect("publisher leaves");
}

/// Runs `case` against a fresh router over its `scheme` listener with `ser`, then stops it.
fn over_network<Fut: std::future::Future<Output = ()> + 'static>(
    scheme: &str,
    ser: Serializer,
    case: fn(Via) -> Fut,
) {
    let router = start_router();
    let url = endpoint(&router, scheme);
    run(move || case(Via::Net(url, ser)));
    router.shutdown_handle().shutdown();
    router.join().expect("router stops");
}

#[test]
fn rpc_over_rawsocket_msgpack() {
    over_network("rs", Serializer::MsgPack, rpc);
}

#[test]
fn rpc_over_websocket_json() {
    over_network("ws", Serializer::Json, rpc);
}

#[test]
fn pubsub_over_rawsocket_msgpack() {
    over_network("rs", Serializer::MsgPack, pubsub);
}

#[test]
fn pubsub_over_websocket_json() {
    over_network("ws", Serializer::Json, pubsub);
}

/// In process: no socket, no serialization.
#[test]
fn rpc_and_pubsub_in_process() {
    let router = Router::start(RouterConfig {
        shards: 2,
        listeners: Vec::new(),
        ..Default::default()
    })
    .expect("router starts");
    let local = router.local_connector();
    run(move || async move {
        rpc(Via::Local(local.clone())).await;
        pubsub(Via::Local(local)).await;
    });
    router.shutdown_handle().shutdown();
    router.join().expect("router stops");
}

#[test]
fn join_errors() {
    let router = start_router();
    let url = endpoint(&router, "rs");
    run(move || async move {
        let e = Client::connect(ClientConfig::new(&url, "no.such.realm"))
            .await
            .err()
            .expect("refused");
        assert!(
            matches!(&e, Error::Aborted { reason, .. } if reason.as_str() == "wamp.error.no_such_realm"),
            "{e:?}"
        );
        let e = Client::connect(ClientConfig::new("ftp://127.0.0.1:1", "realm1"))
            .await
            .err()
            .expect("bad URL");
        assert!(matches!(e, Error::Invalid(_)), "{e:?}");
    });
    router.shutdown_handle().shutdown();
    router.join().expect("router stops");
}

/// Ed25519 seed of principal `client01` (RFC 8032 test key 1) and its public key.
const CLIENT01_SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
const CLIENT01_PUBKEY: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

#[test]
fn authenticates_with_every_method() {
    use switchyard::client::Auth;
    // The `secure` realm of the shared auth config, with this test's cryptosign key.
    let text = common::AUTH_REALMS_CONFIG.replace("PUBKEY", CLIENT01_PUBKEY);
    let file = switchyard::config::ConfigFile::parse(&text).expect("config parses");
    let index = file
        .realms
        .iter()
        .position(|r| r.name == "secure")
        .expect("secure realm");
    let realm = file.realms[index].to_config(index).expect("realm is valid");
    let router = Router::start(RouterConfig {
        shards: 1,
        listeners: vec![ListenerConfig {
            kind: ListenerKind::WebSocket { path: "/ws".into() },
            addr: ListenAddr::Tcp("127.0.0.1:0".parse().expect("address")),
            tls: None,
        }],
        realms: vec![realm],
        ..Default::default()
    })
    .expect("router starts");
    let url = endpoint(&router, "ws");
    run(move || async move {
        let seed: [u8; 32] = {
            let mut s = [0u8; 32];
            for (i, b) in s.iter_mut().enumerate() {
                *b = u8::from_str_radix(&CLIENT01_SEED[2 * i..2 * i + 2], 16).expect("hex");
            }
            s
        };
        let cases = [
            (
                Auth::Ticket {
                    authid: "joe".into(),
                    ticket: "joe-ticket".into(),
                },
                "joe",
                "user",
                "ticket",
            ),
            (
                Auth::WampCra {
                    authid: "peter".into(),
                    secret: "peter-secret".into(),
                },
                "peter",
                "admin",
                "wampcra",
            ),
            (
                Auth::WampCra {
                    authid: "salty".into(),
                    secret: "salty-secret".into(),
                },
                "salty",
                "user",
                "wampcra",
            ),
            (
                Auth::Cryptosign {
                    authid: "client01".into(),
                    secret_key: seed,
                },
                "client01",
                "device",
                "cryptosign",
            ),
        ];
        for ser in [Serializer::Json, Serializer::MsgPack] {
            for (auth, authid, authrole, method) in cases.clone() {
                let c =
                    Client::connect(ClientConfig::new(&url, "secure").serializer(ser).auth(auth))
                        .await
                        .unwrap_or_else(|e| panic!("{method} as {authid} ({ser:?}): {e}"));
                let w = c.welcome_details().expect("welcome");
                assert_eq!(w.authid.as_deref(), Some(authid));
                assert_eq!(w.authrole.as_deref(), Some(authrole));
                assert_eq!(w.authmethod.as_deref(), Some(method));
                c.leave().await.expect("leave");
            }
        }
        // Wrong credentials are refused with ABORT.
        for auth in [
            Auth::Ticket {
                authid: "joe".into(),
                ticket: "wrong".into(),
            },
            Auth::WampCra {
                authid: "salty".into(),
                secret: "wrong".into(),
            },
            Auth::Cryptosign {
                authid: "client01".into(),
                secret_key: [7; 32],
            },
            Auth::Anonymous { authid: None },
        ] {
            let what = format!("{auth:?}");
            match Client::connect(ClientConfig::new(&url, "secure").auth(auth)).await {
                Err(Error::Aborted { .. }) => {}
                Err(e) => panic!("{what}: expected Aborted, got {e:?}"),
                Ok(_) => panic!("{what}: joined with wrong credentials"),
            }
        }
    });
    router.shutdown_handle().shutdown();
    router.join().expect("router stops");
}

/// The router kills the session (GOODBYE): the client reconnects, re-joins and restores its
/// registration and subscription with the same handlers; calls while disconnected fail fast;
/// when the router is gone for good, the client gives up after `max_attempts`.
#[test]
fn reconnects_restores_and_gives_up() {
    use switchyard::client::{ClientEvent, ReconnectPolicy};
    let router = start_router();
    let url = endpoint(&router, "rs");
    let shutdown = router.shutdown_handle();
    run(move || async move {
        let policy = ReconnectPolicy {
            initial_delay: Duration::from_millis(300),
            max_delay: Duration::from_millis(300),
            max_attempts: Some(2),
            ..Default::default()
        };
        let c = Client::connect(
            config(&url, Serializer::MsgPack)
                .reconnect(policy)
                // The first attempt must rejoin (a loaded machine can take a while), and two
                // attempts that time out still end within the 10 s give-up bound below.
                .connect_timeout(Duration::from_secs(3)),
        )
        .await
        .expect("joins");
        let admin = Client::connect(config(&url, Serializer::Json))
            .await
            .expect("admin joins");
        let events: Arc<RefCell<Vec<ClientEvent>>> = Arc::default();
        {
            let events = events.clone();
            c.on_event(move |e| events.borrow_mut().push(e.clone()));
        }
        let has = |f: fn(&ClientEvent) -> bool| {
            let events = events.clone();
            move || events.borrow().iter().any(f)
        };
        let reg = c
            .register(
                "com.test.ping",
                RegisterOptions::default(),
                |_inv| async move { Ok(Yield::args(vec![Value::Str("pong".into())])) },
            )
            .await
            .expect("register");
        let got = Arc::new(Cell::new(0u32));
        let sub = {
            let got = got.clone();
            c.subscribe("com.test.tick", SubscribeOptions::default(), move |_ev| {
                got.set(got.get() + 1)
            })
            .await
            .expect("subscribe")
        };
        let first_session = c.session_id().expect("session");
        let mut kw = Dict::new();
        kw.insert("reason".into(), Value::Str("com.test.bye".into()));
        admin
            .call(
                "wamp.session.kill",
                vec![Value::UInt(first_session)],
                kw,
                CallOptions::default(),
            )
            .await
            .expect("kill");
        wait_until("the disconnect", || !c.is_connected()).await;
        // Disconnected (the first attempt waits 300 ms): calls fail at once.
        let e = c
            .call("com.test.ping", vec![], Dict::new(), CallOptions::default())
            .await
            .expect_err("disconnected");
        assert!(matches!(e, Error::Transport(_)), "{e:?}");
        wait_until(
            "the rejoin",
            has(|e| matches!(e, ClientEvent::Rejoined { .. })),
        )
        .await;
        assert_ne!(c.session_id(), Some(first_session));
        {
            let evs = events.borrow();
            assert!(
                matches!(&evs[0], ClientEvent::Disconnected { reason } if reason.contains("com.test.bye")),
                "{evs:?}"
            );
            assert!(
                matches!(evs[1], ClientEvent::Reconnecting { attempt: 1, .. }),
                "{evs:?}"
            );
            assert!(
                matches!(
                    evs[2],
                    ClientEvent::Rejoined {
                        registrations: 1,
                        subscriptions: 1,
                        ..
                    }
                ),
                "{evs:?}"
            );
        }
        // The restored registration and subscription work, with the old handlers.
        let r = admin
            .call("com.test.ping", vec![], Dict::new(), CallOptions::default())
            .await
            .expect("call after restore");
        assert_eq!(r.args, vec![Value::Str("pong".into())]);
        admin
            .publish(
                "com.test.tick",
                vec![],
                Dict::new(),
                PublishOptions {
                    acknowledge: Some(true),
                    ..Default::default()
                },
            )
            .await
            .expect("publish");
        wait_until("the event after restore", || got.get() == 1).await;
        // The old values still unsubscribe/unregister (mapped to the new router IDs).
        c.unsubscribe(&sub)
            .await
            .expect("unsubscribe after restore");
        c.unregister(&reg).await.expect("unregister after restore");
        let e = admin
            .call("com.test.ping", vec![], Dict::new(), CallOptions::default())
            .await
            .expect_err("unregistered");
        assert_eq!(wamp_uri(&e), "wamp.error.no_such_procedure");

        // The router goes away for good: two failed attempts, then the client closes.
        shutdown.shutdown();
        let closed = futures_lite::future::or(
            async {
                c.closed().await;
                true
            },
            async {
                sleep(Duration::from_secs(10)).await;
                false
            },
        )
        .await;
        assert!(closed, "gave up within 10 s: {:?}", events.borrow());
        assert!(
            has(|e| matches!(e, ClientEvent::GaveUp { attempts: 2 }))(),
            "{:?}",
            events.borrow()
        );
        assert!(matches!(
            c.call("com.test.ping", vec![], Dict::new(), CallOptions::default())
                .await,
            Err(Error::Closed)
        ));
    });
    router.join().expect("router stops");
}

/// A scripted peer on a real socket for what a correct router does not do: never answer a
/// call, drop the connection mid-call, stall the handshake. RawSocket + JSON.
mod fake_router {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    pub fn handshake(s: &mut TcpStream) {
        let mut hello = [0u8; 4];
        s.read_exact(&mut hello).expect("client hello");
        assert_eq!(hello[0], 0x7f);
        s.write_all(&hello).expect("server reply");
    }

    pub fn read_msg(s: &mut TcpStream) -> serde_json::Value {
        let mut h = [0u8; 4];
        s.read_exact(&mut h).expect("frame header");
        assert_eq!(h[0], 0, "a message frame");
        let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
        let mut body = vec![0u8; len];
        s.read_exact(&mut body).expect("frame body");
        serde_json::from_slice(&body).expect("JSON message")
    }

    pub fn write_msg(s: &mut TcpStream, m: serde_json::Value) {
        let body = serde_json::to_vec(&m).expect("encode");
        let len = (body.len() as u32).to_be_bytes();
        s.write_all(&[0, len[1], len[2], len[3]]).expect("header");
        s.write_all(&body).expect("body");
    }
}

#[test]
fn local_deadline_connection_loss_and_connect_timeout() {
    use serde_json::json;
    use std::net::TcpListener;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (report, reports) = std::sync::mpsc::channel::<serde_json::Value>();
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(TEST_DEADLINE)).expect("timeout");
        fake_router::handshake(&mut s);
        let hello = fake_router::read_msg(&mut s);
        report.send(hello).expect("report");
        fake_router::write_msg(
            &mut s,
            json!([2, 77, {"roles": {"dealer": {}, "broker": {}}}]),
        );
        // A call with a timeout that this "router" ignores: the client cancels by itself.
        let call = fake_router::read_msg(&mut s);
        report.send(call).expect("report");
        let cancel = fake_router::read_msg(&mut s);
        report.send(cancel).expect("report");
        // Another call, then the connection drops.
        let call = fake_router::read_msg(&mut s);
        report.send(call).expect("report");
        drop(s);
        // A connection whose handshake never completes.
        let (stalled, _) = listener.accept().expect("accept");
        std::thread::sleep(Duration::from_secs(2));
        drop(stalled);
    });
    let url = format!("rs://127.0.0.1:{port}");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    run(move || async move {
        let c = Client::connect(config(&url, Serializer::Json))
            .await
            .expect("joins the fake router");
        assert_eq!(c.session_id(), Some(77));
        let t0 = Instant::now();
        let e = c
            .call(
                "com.test.never",
                vec![],
                Dict::new(),
                CallOptions {
                    timeout: Some(100),
                    ..Default::default()
                },
            )
            .await
            .expect_err("local deadline");
        assert!(matches!(e, Error::Timeout), "{e:?}");
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(1100) && took < Duration::from_secs(5),
            "{took:?}"
        );
        let mut h = c
            .call_handle(
                "com.test.dropped",
                vec![],
                Dict::new(),
                CallOptions::default(),
            )
            .expect("call");
        let e = h.next().await.expect("an outcome").expect_err("lost");
        assert!(
            matches!(&e, Error::Transport(m) if m == "connection lost"),
            "{e:?}"
        );
        c.closed().await;
        assert!(matches!(
            c.publish("t", vec![], Dict::new(), PublishOptions::default())
                .await,
            Err(Error::Closed)
        ));
        // The handshake stalls: connect_timeout.
        let t0 = Instant::now();
        let e = Client::connect(
            config(&url, Serializer::Json).connect_timeout(Duration::from_millis(300)),
        )
        .await
        .err()
        .expect("times out");
        assert!(matches!(e, Error::Timeout), "{e:?}");
        assert!(t0.elapsed() < Duration::from_secs(2));
        tx.send("done".into()).expect("report");
    });
    assert_eq!(rx.recv_timeout(WAIT).expect("client finished"), "done");
    peer.join().expect("fake router thread");
    let hello = reports.recv_timeout(WAIT).expect("HELLO");
    assert_eq!(hello[0], 1);
    assert_eq!(hello[1], "realm1");
    let roles = &hello[2]["roles"];
    for (role, feature) in [
        ("caller", "progressive_call_results"),
        ("caller", "call_canceling"),
        ("caller", "call_timeout"),
        ("caller", "progressive_call_invocations"),
        ("callee", "pattern_based_registration"),
        ("callee", "shared_registration"),
        ("publisher", "publisher_exclusion"),
        ("publisher", "subscriber_blackwhite_listing"),
        ("subscriber", "pattern_based_subscription"),
    ] {
        assert_eq!(roles[role]["features"][feature], true, "{role}.{feature}");
    }
    assert_eq!(hello[2]["authmethods"], serde_json::json!(["anonymous"]));
    let call = reports.recv_timeout(WAIT).expect("CALL");
    assert_eq!(call[0], 48);
    assert_eq!(call[2]["timeout"], 100);
    assert_eq!(call[3], "com.test.never");
    let cancel = reports.recv_timeout(WAIT).expect("CANCEL");
    assert_eq!(
        cancel,
        serde_json::json!([49, call[1], {"mode": "killnowait"}])
    );
    let call = reports.recv_timeout(WAIT).expect("second CALL");
    assert_eq!(call[3], "com.test.dropped");
}

/// Trust levels and call rerouting as the client library sees them: the caller's trust level
/// (from its role, `anonymous` here) is in `Invocation::details.trustlevel`, and a callee
/// answering `wamp.error.unavailable` hands the call to the other callee.
#[test]
fn trustlevel_and_reroute_in_process() {
    let mut cfg = RouterConfig::from_toml(
        r#"
[[realm]]
name = "realm1"

[[realm.role]]
name = "anonymous"
trusted = true
trustlevel = 3
"#,
    )
    .expect("config");
    cfg.shards = 2;
    cfg.listeners = Vec::new();
    let router = Router::start(cfg).expect("router starts");
    let local = router.local_connector();
    run(move || async move {
        let via = Via::Local(local);
        let busy = via.connect().await.expect("busy callee joins");
        let idle = via.connect().await.expect("idle callee joins");
        let caller = via.connect().await.expect("caller joins");
        let opts = || RegisterOptions {
            invoke: Some(switchyard::client::InvokePolicy::First),
            ..Default::default()
        };
        let busy_hits = Arc::new(Cell::new(0u32));
        let hits = busy_hits.clone();
        busy.register("com.test.tl", opts(), move |_inv| {
            hits.set(hits.get() + 1);
            async move { Err(CallError::new("wamp.error.unavailable")) }
        })
        .await
        .expect("register busy");
        idle.register("com.test.tl", opts(), |inv| async move {
            let t = inv.details.trustlevel.map_or(Value::Null, Value::UInt);
            Ok(Yield::new(vec![t], Dict::new()))
        })
        .await
        .expect("register idle");
        let r = caller
            .call("com.test.tl", vec![], Dict::new(), CallOptions::default())
            .await
            .expect("rerouted call");
        assert_eq!(r.args, vec![Value::UInt(3)]);
        assert_eq!(busy_hits.get(), 1, "the first callee was tried first");
    });
    router.shutdown_handle().shutdown();
    router.join().expect("router stops");
}
    };
}

mod glommio_driver {
    use crate::common::drivers::glommio::*;
    client_basic_tests!();
}

mod tokio_driver {
    use crate::common::drivers::tokio::*;
    client_basic_tests!();
}
