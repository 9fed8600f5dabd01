//! `switchyard::client` against the real `switchyard` binary over every transport it speaks:
//! `ws://`, `wss://`, `rs://`, `rss://` and `unix://` (RawSocket over a Unix socket), each with
//! JSON, MessagePack and CBOR, and in process (`Client::connect_local` against `Router::start`).
//!
//! Every case runs the same scenario with two clients (see [`scenario`]): join, register and
//! call (plain, with progressive results, with an application error carrying args/kwargs, an
//! unknown procedure), subscribe and publish with acknowledge (the event's ids, topic and
//! payload checked), an ERROR on an acknowledged publish, unregister/unsubscribe, leave, and
//! `Error::Closed` afterwards. TLS uses a throw-away CA from `rcgen` (`common::TlsFiles`)
//! trusted through `TlsOptions::ca_file`; a client that does not trust it fails to connect.
//!
//! Authentication through the client: ticket, WAMP-CRA (plain and salted), cryptosign, against
//! static principals in a config file, and wrong secrets answered with `Error::Aborted`.
//!
//! Every scenario runs on both client drivers (glommio and tokio): the body is written once
//! in `client_transports_tests!` and expanded in `glommio_driver` and `tokio_driver`.

mod client_support;
mod common;

macro_rules! client_transports_tests {
    () => {
use std::path::Path;
use std::time::Duration;

use crate::client_support::{dict, s, u, wamp_error, Recorder};
use crate::common::{RouterProcess, TlsFiles};
use switchyard::client::{
    Auth, CallError, CallOptions, ClientConfig, Dict, Error, Event, PublishOptions, RegisterOptions, Serializer, SubscribeOptions, TlsOptions, Value, Yield,
};

/// Bound for one whole test (every serializer of a transport).
const TEST_LIMIT: Duration = Duration::from_secs(60);
/// Bound for one reply or one awaited event.
const STEP: Duration = Duration::from_secs(10);

const AUTH_FAILED: &str = "wamp.error.authentication_failed";

/// A router with every transport on 127.0.0.1:0 (and a Unix socket in a temp dir), TLS from a
/// throw-away CA, realms `realm1` (anonymous) and `secure` (static principals).
struct Fixture {
    router: RouterProcess,
    tls: TlsFiles,
    _dir: tempfile::TempDir,
}

impl Fixture {
    fn start() -> Fixture {
        Fixture::start_with(&[])
    }

    /// The fixture's router with `extra` flags.
    fn start_with(extra: &[&str]) -> Fixture {
        let tls = TlsFiles::generate();
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("switchyard.toml");
        std::fs::write(&config, crate::common::auth_realms_config()).expect("config");
        let sock = dir.path().join("switchyard.sock");
        let p = |p: &Path| p.to_str().expect("utf-8 temp path").to_owned();
        let router = RouterProcess::start(&[
            "--shards",
            "2",
            "--ws",
            "127.0.0.1:0",
            "--rs",
            "127.0.0.1:0",
            "--wss",
            "127.0.0.1:0",
            "--rss",
            "127.0.0.1:0",
            "--unix",
            &p(&sock),
            "--tls-cert",
            &p(&tls.cert),
            "--tls-key",
            &p(&tls.key),
            "--config",
            &p(&config),
        ]
        .into_iter()
        .chain(extra.iter().copied())
        .collect::<Vec<_>>());
        Fixture {
            router,
            tls,
            _dir: dir,
        }
    }

    fn url(&self, scheme: &str) -> String {
        self.router.endpoint(scheme).url.clone()
    }

    /// A client config for `scheme` on `realm`, trusting the test CA.
    fn config(&self, scheme: &str, realm: &str, ser: Serializer) -> ClientConfig {
        ClientConfig::new(self.url(scheme), realm)
            .serializer(ser)
            .tls(TlsOptions {
                ca_file: Some(self.tls.ca.clone()),
                ..Default::default()
            })
            .connect_timeout(STEP)
    }
}

/// How a scenario's clients connect.
#[derive(Clone)]
enum Target {
    Net(ClientConfig),
    Local(switchyard::shard::LocalConnector, ClientConfig),
}

impl Target {
    async fn connect(&self) -> Client {
        let r = match self {
            Target::Net(cfg) => bounded(STEP * 2, "connect", Client::connect(cfg.clone())).await,
            Target::Local(conn, cfg) => {
                bounded(
                    STEP * 2,
                    "connect_local",
                    Client::connect_local(conn, cfg.clone()),
                )
                .await
            }
        };
        r.unwrap_or_else(|e| panic!("connect failed: {e}"))
    }
}

fn uint_args(args: &[Value]) -> Vec<u64> {
    args.iter().filter_map(Value::as_u64).collect()
}

/// The scenario every transport runs; `tag` keeps URIs apart between runs.
async fn scenario(target: Target, tag: &str) {
    let callee = target.connect().await;
    let caller = target.connect().await;
    let (a, b) = (callee.session_id(), caller.session_id());
    assert!(a.is_some() && b.is_some() && a != b, "sessions {a:?} {b:?}");
    assert!(callee.is_connected() && caller.is_connected());
    let welcome = callee.welcome_details().expect("welcome details");
    assert_eq!(
        welcome.authrole.as_deref(),
        Some("anonymous"),
        "{welcome:?}"
    );

    let uri = |name: &str| format!("com.ct.{tag}.{name}");

    // --- RPC ---------------------------------------------------------------------------------
    let add = callee
        .register(
            &uri("add"),
            RegisterOptions::default(),
            |inv: Invocation| async move {
                let sum: u64 = uint_args(&inv.args).iter().sum();
                let mut y = Yield::args(vec![Value::UInt(sum)]);
                y.kwargs = inv.kwargs.clone();
                Ok(y)
            },
        )
        .await
        .expect("register add");
    assert_eq!(add.procedure.as_str(), uri("add"));
    callee
        .register(
            &uri("count"),
            RegisterOptions::default(),
            |inv: Invocation| async move {
                let n = inv.args.first().and_then(Value::as_u64).unwrap_or(0);
                if !inv.receive_progress() {
                    return Err(CallError::new("com.ct.no_progress_asked"));
                }
                for i in 0..n {
                    inv.progress(Yield::args(vec![Value::UInt(i)]))
                        .map_err(|_| CallError::new("com.ct.progress_failed"))?;
                    sleep(Duration::from_millis(5)).await;
                }
                Ok(Yield::args(vec![s("done")]))
            },
        )
        .await
        .expect("register count");
    callee
        .register(
            &uri("fail"),
            RegisterOptions::default(),
            |_inv: Invocation| async move {
                let mut e = CallError::new("com.ct.oops");
                e.args = vec![s("bad"), u(7)];
                e.kwargs = dict(&[("why", s("asked to"))]);
                Err::<Yield, _>(e)
            },
        )
        .await
        .expect("register fail");

    let r = caller
        .call(
            &uri("add"),
            vec![u(2), u(3)],
            dict(&[("k", s("v"))]),
            CallOptions::default(),
        )
        .await
        .expect("call add");
    assert_eq!(r.args, vec![u(5)]);
    assert_eq!(r.kwargs, dict(&[("k", s("v"))]));
    assert!(!r.progress);

    // Progressive results: three progress RESULTs, then the final one, then nothing.
    let opts = CallOptions {
        receive_progress: Some(true),
        ..Default::default()
    };
    let mut h = caller
        .call_handle(&uri("count"), vec![u(3)], Dict::new(), opts.clone())
        .expect("call_handle");
    let mut progress = Vec::new();
    let last = loop {
        let next = bounded(STEP, "progressive result", h.next()).await;
        match next {
            Some(Ok(r)) if r.progress => progress.extend(uint_args(&r.args)),
            Some(Ok(r)) => break r,
            Some(Err(e)) => panic!("progressive call failed: {e}"),
            None => panic!("the call ended without a final result"),
        }
    };
    assert_eq!(progress, vec![0, 1, 2]);
    assert_eq!(last.args, vec![s("done")]);
    assert!(bounded(STEP, "after the final result", h.next())
        .await
        .is_none());
    // `result()` skips the progress and returns the final result.
    let h = caller
        .call_handle(&uri("count"), vec![u(2)], Dict::new(), opts)
        .expect("call_handle");
    let r = bounded(STEP, "result()", h.result()).await.expect("result");
    assert_eq!(r.args, vec![s("done")]);
    // Without receive_progress the callee refuses (its own check of receive_progress()).
    let (e, _) = wamp_error(
        "count without progress",
        caller
            .call(
                &uri("count"),
                vec![u(1)],
                Dict::new(),
                CallOptions::default(),
            )
            .await,
    );
    assert_eq!(e, "com.ct.no_progress_asked");

    // An application error with args and kwargs.
    match caller
        .call(&uri("fail"), vec![], Dict::new(), CallOptions::default())
        .await
    {
        Err(Error::Wamp(e)) => {
            assert_eq!(e.error.as_str(), "com.ct.oops");
            assert_eq!(e.args, vec![s("bad"), u(7)]);
            assert_eq!(e.kwargs, dict(&[("why", s("asked to"))]));
            let shown = Error::Wamp(e).to_string();
            assert!(shown.contains("com.ct.oops"), "{shown}");
        }
        other => panic!("fail: expected Error::Wamp, got {other:?}"),
    }
    let (e, _) = wamp_error(
        "unknown procedure",
        caller
            .call(&uri("nope"), vec![], Dict::new(), CallOptions::default())
            .await,
    );
    assert_eq!(e, "wamp.error.no_such_procedure");

    // --- PubSub ------------------------------------------------------------------------------
    let got: Recorder<Event> = Recorder::default();
    let sink = got.clone();
    let sub = callee
        .subscribe(&uri("topic"), SubscribeOptions::default(), move |ev| {
            sink.push(ev)
        })
        .await
        .expect("subscribe");
    assert_eq!(sub.topic.as_str(), uri("topic"));
    let ack = PublishOptions {
        acknowledge: Some(true),
        ..Default::default()
    };
    let publication = caller
        .publish(
            &uri("topic"),
            vec![s("hello"), u(1)],
            dict(&[("n", u(1))]),
            ack.clone(),
        )
        .await
        .expect("publish")
        .expect("an acknowledged publish returns the publication id");
    until(STEP, "the event", || !got.is_empty()).await;
    let ev = &got.snapshot()[0];
    assert_eq!(ev.publication, publication);
    assert_eq!(ev.subscription, sub.id);
    assert_eq!(ev.topic.as_str(), uri("topic"));
    assert_eq!(ev.args, vec![s("hello"), u(1)]);
    assert_eq!(ev.kwargs, dict(&[("n", u(1))]));
    // Without acknowledge: no id.
    let none = caller
        .publish(
            &uri("topic"),
            vec![u(2)],
            Dict::new(),
            PublishOptions::default(),
        )
        .await
        .expect("publish without ack");
    assert_eq!(none, None);
    until(STEP, "the second event", || got.len() == 2).await;
    // An acknowledged publish the router refuses comes back as Error::Wamp.
    let (e, _) = wamp_error(
        "publish to a bad URI",
        caller
            .publish("com..bad", vec![], Dict::new(), ack.clone())
            .await,
    );
    assert_eq!(e, "wamp.error.invalid_uri");

    // --- Teardown ----------------------------------------------------------------------------
    callee.unsubscribe(&sub).await.expect("unsubscribe");
    caller
        .publish(&uri("topic"), vec![u(3)], Dict::new(), ack)
        .await
        .expect("publish after unsubscribe");
    callee.unregister(&add).await.expect("unregister");
    let (e, _) = wamp_error(
        "call after unregister",
        caller
            .call(&uri("add"), vec![u(1)], Dict::new(), CallOptions::default())
            .await,
    );
    assert_eq!(e, "wamp.error.no_such_procedure");
    // The PUBLISHED above came after the router routed the publication: nothing was delivered.
    sleep(Duration::from_millis(50)).await;
    assert_eq!(got.len(), 2, "an event arrived after unsubscribe");

    bounded(STEP, "leave", caller.leave()).await.expect("leave");
    bounded(STEP, "closed()", caller.closed()).await;
    assert!(!caller.is_connected());
    match caller
        .call(&uri("add"), vec![], Dict::new(), CallOptions::default())
        .await
    {
        Err(Error::Closed) => {}
        other => panic!("call after leave: expected Error::Closed, got {other:?}"),
    }
    bounded(STEP, "leave", callee.leave()).await.expect("leave");
}

fn every_serializer(scheme: &str) {
    every_serializer_on(&Fixture::start(), scheme);
}

fn every_serializer_on(fx: &Fixture, scheme: &str) {
    for (ser, name) in [
        (Serializer::Json, "json"),
        (Serializer::MsgPack, "msgpack"),
        (Serializer::Cbor, "cbor"),
    ] {
        let target = Target::Net(fx.config(scheme, "realm1", ser));
        let tag = format!("{scheme}_{name}");
        run(TEST_LIMIT, async move { scenario(target, &tag).await });
    }
}

#[test]
fn websocket() {
    every_serializer("ws");
}

#[test]
fn websocket_tls() {
    every_serializer("wss");
}

#[test]
fn rawsocket() {
    every_serializer("rs");
}

#[test]
fn rawsocket_tls() {
    every_serializer("rss");
}

#[test]
fn rawsocket_unix() {
    every_serializer("unix");
}

/// Latency mode (`--busy-read-us`): sessions on plain TCP and Unix sockets read their socket
/// directly for a while after each input; every transport behaves the same (TLS streams are
/// never read around, so `wss`/`rss` check that their bytes still go through TLS), including
/// leaving, and a session that closes while its reader is busy is seen to go.
#[test]
fn busy_reads_serve_every_transport() {
    let fx = Fixture::start_with(&["--busy-read-us", "5000"]);
    for scheme in ["ws", "wss", "rs", "rss", "unix"] {
        every_serializer_on(&fx, scheme);
    }
}

/// In process: no socket, no serialization.
#[test]
fn in_process() {
    use switchyard::RouterConfig;
    let cfg = RouterConfig {
        shards: 2,
        listeners: Vec::new(),
        ..Default::default()
    };
    let router = switchyard::shard::Router::start(cfg).expect("router starts");
    let conn = router.local_connector();
    run(TEST_LIMIT, async move {
        scenario(
            Target::Local(conn, ClientConfig::new("", "realm1").connect_timeout(STEP)),
            "local",
        )
        .await
    });
    router.shutdown_handle().shutdown();
    router.join().expect("router stops");
}

/// A client that does not trust the test CA cannot connect over TLS, and a URL with an unknown
/// scheme or nobody listening fails cleanly.
#[test]
fn connect_failures() {
    let fx = Fixture::start();
    let untrusted = [
        ClientConfig::new(fx.url("wss"), "realm1").connect_timeout(STEP),
        ClientConfig::new(fx.url("rss"), "realm1").connect_timeout(STEP),
    ];
    // Nothing listens on this port: free, and below the range bind(:0) hands out, so no
    // parallel test takes it meanwhile.
    let closed_port = crate::common::restartable_port();
    let nobody =
        ClientConfig::new(format!("rs://127.0.0.1:{closed_port}"), "realm1").connect_timeout(STEP);
    let bad_scheme = ClientConfig::new("http://127.0.0.1:1/", "realm1").connect_timeout(STEP);
    let no_realm = fx.config("ws", "no.such.realm", Serializer::Json);
    run(TEST_LIMIT, async move {
        for cfg in untrusted {
            let url = cfg.url.clone();
            match bounded(STEP * 2, "connect", Client::connect(cfg)).await {
                Err(Error::Transport(_)) => {}
                other => panic!(
                    "{url} without the CA: expected Error::Transport, got {:?}",
                    other.map(|_| ())
                ),
            }
        }
        match bounded(STEP * 2, "connect", Client::connect(nobody)).await {
            Err(Error::Transport(_)) => {}
            other => panic!(
                "closed port: expected Error::Transport, got {:?}",
                other.map(|_| ())
            ),
        }
        match bounded(STEP * 2, "connect", Client::connect(bad_scheme)).await {
            Err(Error::Invalid(_)) | Err(Error::Transport(_)) => {}
            other => panic!(
                "http:// URL: expected Error::Invalid, got {:?}",
                other.map(|_| ())
            ),
        }
        match bounded(STEP * 2, "connect", Client::connect(no_realm)).await {
            Err(Error::Aborted { reason, .. }) => {
                assert_eq!(reason.as_str(), "wamp.error.no_such_realm")
            }
            other => panic!(
                "unknown realm: expected Error::Aborted, got {:?}",
                other.map(|_| ())
            ),
        }
    });
}

/// Joins `secure` with each authentication method over `scheme`, checks the WELCOME, and that
/// wrong secrets are refused with `Error::Aborted` / authentication_failed.
fn authenticate_over(fx: &Fixture, scheme: &str, ser: Serializer) {
    let cfg = |auth: Auth| fx.config(scheme, "secure", ser).auth(auth);
    let good = vec![
        (
            cfg(Auth::Ticket {
                authid: "joe".into(),
                ticket: "joe-ticket".into(),
            }),
            ("joe", "user", "ticket"),
        ),
        (
            cfg(Auth::WampCra {
                authid: "peter".into(),
                secret: "peter-secret".into(),
            }),
            ("peter", "admin", "wampcra"),
        ),
        (
            cfg(Auth::WampCra {
                authid: "salty".into(),
                secret: "salty-secret".into(),
            }),
            ("salty", "user", "wampcra"),
        ),
        (
            cfg(Auth::Cryptosign {
                authid: "client01".into(),
                secret_key: [7; 32],
            }),
            ("client01", "device", "cryptosign"),
        ),
    ];
    let bad = vec![
        (
            "wrong ticket",
            cfg(Auth::Ticket {
                authid: "joe".into(),
                ticket: "not-joe".into(),
            }),
        ),
        (
            "wrong wampcra secret",
            cfg(Auth::WampCra {
                authid: "peter".into(),
                secret: "guess".into(),
            }),
        ),
        (
            "wrong salted wampcra secret",
            cfg(Auth::WampCra {
                authid: "salty".into(),
                secret: "peter-secret".into(),
            }),
        ),
        (
            "wrong cryptosign key",
            cfg(Auth::Cryptosign {
                authid: "client01".into(),
                secret_key: [8; 32],
            }),
        ),
    ];
    let anonymous = fx.config(scheme, "secure", ser);
    let label = format!("{scheme} {ser:?}");
    run(TEST_LIMIT, async move {
        for (cfg, (authid, role, method)) in good {
            let c = bounded(STEP * 2, "connect", Client::connect(cfg))
                .await
                .unwrap_or_else(|e| panic!("{label}: {method} {authid}: {e}"));
            let w = c.welcome_details().expect("welcome details");
            assert_eq!(w.authid.as_deref(), Some(authid), "{label}: {w:?}");
            assert_eq!(w.authrole.as_deref(), Some(role), "{label}: {w:?}");
            assert_eq!(w.authmethod.as_deref(), Some(method), "{label}: {w:?}");
            // The session works.
            let e = c
                .call(
                    "com.nobody.here",
                    vec![],
                    Dict::new(),
                    CallOptions::default(),
                )
                .await;
            assert_eq!(wamp_error("call", e).0, "wamp.error.no_such_procedure");
            bounded(STEP, "leave", c.leave()).await.expect("leave");
        }
        for (what, cfg) in bad {
            match bounded(STEP * 2, "connect", Client::connect(cfg)).await {
                Err(Error::Aborted { reason, .. }) => {
                    assert_eq!(reason.as_str(), AUTH_FAILED, "{label}: {what}")
                }
                other => panic!(
                    "{label}: {what}: expected Error::Aborted, got {:?}",
                    other.map(|_| ())
                ),
            }
        }
        match bounded(STEP * 2, "connect", Client::connect(anonymous)).await {
            Err(Error::Aborted { reason, .. }) => assert!(
                reason.starts_with("wamp.error."),
                "{label}: anonymous on a closed realm: {reason}"
            ),
            other => panic!(
                "{label}: anonymous on a closed realm: expected Error::Aborted, got {:?}",
                other.map(|_| ())
            ),
        }
    });
}

#[test]
fn authentication() {
    let fx = Fixture::start();
    authenticate_over(&fx, "ws", Serializer::Json);
    authenticate_over(&fx, "rs", Serializer::MsgPack);
    authenticate_over(&fx, "rss", Serializer::Json);
    // The secrets never reach the router's log.
    let log = fx.router.stderr_text() + &fx.router.stdout_text();
    for secret in ["joe-ticket", "peter-secret", "salty-secret"] {
        assert!(!log.contains(secret), "{secret} was logged:\n{log}");
    }
}

/// The RPC features beyond plain calls, once (RawSocket + MessagePack, two shards): progressive
/// call invocations (`send_chunk` / `next_chunk`), cancel (the callee sees the INTERRUPT, the
/// caller gets `wamp.error.canceled`), and a call timeout (`wamp.error.timeout`).
#[test]
fn progressive_invocations_cancel_and_timeout() {
    use switchyard::client::CancelMode;
    let fx = Fixture::start();
    let cfg = fx.config("rs", "realm1", Serializer::MsgPack);
    run(TEST_LIMIT, async move {
        let target = Target::Net(cfg);
        let callee = target.connect().await;
        let caller = target.connect().await;

        // Progressive call invocations: the callee sums every chunk of one call.
        let chunks: Recorder<Vec<u64>> = Recorder::default();
        let rec = chunks.clone();
        callee
            .register(
                "com.ct.sum_chunks",
                RegisterOptions::default(),
                move |mut inv| {
                    let rec = rec.clone();
                    async move {
                        let mut total: u64 = uint_args(&inv.args).iter().sum();
                        rec.push(uint_args(&inv.args));
                        if inv.is_progressive() {
                            while let Some((args, _kwargs)) = inv.next_chunk().await {
                                total += uint_args(&args).iter().sum::<u64>();
                                rec.push(uint_args(&args));
                            }
                        }
                        Ok(Yield::args(vec![u(total)]))
                    }
                },
            )
            .await
            .expect("register sum_chunks");
        let h = caller
            .call_handle(
                "com.ct.sum_chunks",
                vec![u(1), u(2)],
                Dict::new(),
                CallOptions {
                    progress: Some(true),
                    ..Default::default()
                },
            )
            .expect("call_handle");
        h.send_chunk(vec![u(3)], Dict::new(), false)
            .expect("chunk 2");
        h.send_chunk(vec![u(4), u(5)], Dict::new(), true)
            .expect("last chunk");
        let r = bounded(STEP, "progressive invocation", h.result())
            .await
            .expect("result");
        assert_eq!(r.args, vec![u(15)]);
        assert_eq!(chunks.snapshot(), vec![vec![1, 2], vec![3], vec![4, 5]]);

        // Cancel: the callee's work is interrupted, the caller gets wamp.error.canceled.
        let interrupted: Recorder<CancelMode> = Recorder::default();
        let rec = interrupted.clone();
        callee
            .register(
                "com.ct.slow",
                RegisterOptions::default(),
                move |inv: Invocation| {
                    let rec = rec.clone();
                    async move {
                        let work = async {
                            sleep(Duration::from_secs(30)).await;
                            None
                        };
                        let stop = async { Some(inv.wait_interrupted().await) };
                        match futures_lite::future::or(work, stop).await {
                            Some(mode) => {
                                rec.push(mode);
                                Err(CallError::new("wamp.error.canceled"))
                            }
                            None => Ok(Yield::empty()),
                        }
                    }
                },
            )
            .await
            .expect("register slow");
        let h = caller
            .call_handle("com.ct.slow", vec![], Dict::new(), CallOptions::default())
            .expect("call_handle");
        sleep(Duration::from_millis(100)).await;
        h.cancel(CancelMode::Kill).expect("cancel");
        let (e, _) = wamp_error(
            "canceled call",
            bounded(STEP, "canceled call", h.result()).await,
        );
        assert_eq!(e, "wamp.error.canceled");
        until(STEP, "the INTERRUPT", || !interrupted.is_empty()).await;

        // Timeout: the router gives up after 200 ms.
        let started = std::time::Instant::now();
        let r = bounded(
            STEP,
            "call with timeout",
            caller.call(
                "com.ct.slow",
                vec![],
                Dict::new(),
                CallOptions {
                    timeout: Some(200),
                    ..Default::default()
                },
            ),
        )
        .await;
        assert_eq!(wamp_error("timeout", r).0, "wamp.error.timeout");
        assert!(started.elapsed() < Duration::from_secs(5));
        until(STEP, "the INTERRUPT after the timeout", || {
            interrupted.len() == 2
        })
        .await;

        bounded(STEP, "leave", caller.leave()).await.expect("leave");
        bounded(STEP, "leave", callee.leave()).await.expect("leave");
    });
}
    };
}

mod glommio_driver {
    use crate::client_support::glommio_driver::*;
    client_transports_tests!();
}

mod tokio_driver {
    use crate::client_support::tokio_driver::*;
    client_transports_tests!();
}
