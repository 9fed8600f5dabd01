//! Interop both ways between `switchyard::client` and autobahn-python, through the real
//! `switchyard` binary, over WebSocket+JSON and RawSocket+MessagePack:
//!
//! - the Rust client as caller and subscriber against `tests/interop/client_peer.py callee`
//!   (plain call with kwargs, progressive results, an application error with args/kwargs, a
//!   publication the Python side re-publishes);
//! - the Rust client as callee and subscriber against `client_peer.py caller`, which calls the
//!   Rust procedures (progressive results, an error) and checks the answers, and has its
//!   publication re-published by the Rust client.
//!
//! The Python side runs on a helper thread (`common::assert_script_ok`, bounded) while the
//! client's glommio executor runs on the test thread. Which Python: as in tests/auth.rs
//! (`$SWITCHYARD_PYTHON`, else the venv `tests/run.sh` makes); a missing autobahn FAILS.
//!
//! Every scenario runs on both client drivers (glommio and tokio): the body is written once
//! in `client_interop_tests!` and expanded in `glommio_driver` and `tokio_driver`.

mod client_support;
mod common;

macro_rules! client_interop_tests {
    () => {
        use std::process::Command;
        use std::thread;
        use std::time::Duration;

        use crate::client_support::{dict, s, u, wamp_error, Recorder};
        use crate::common::RouterProcess;
        use switchyard::client::{
            CallError, CallOptions, ClientConfig, Dict, Event, PublishOptions, RegisterOptions,
            Serializer, SubscribeOptions, Value, Yield,
        };

        const TEST_LIMIT: Duration = Duration::from_secs(90);
        const STEP: Duration = Duration::from_secs(10);
        /// The Python peer bounds each wait to this; the harness kills it after `SCRIPT_DEADLINE`.
        const PEER_TIMEOUT_S: &str = "10";
        const SCRIPT_DEADLINE: Duration = Duration::from_secs(80);

        fn router() -> RouterProcess {
            RouterProcess::start_ws_rs(&[])
        }

        /// Runs `client_peer.py MODE` on a helper thread; the handle's result is the script's verdict.
        fn spawn_peer(mode: &str, url: &str, ser: &str) -> thread::JoinHandle<()> {
            let python = crate::common::interop_python("autobahn, msgpack");
            let (mode, url, ser) = (mode.to_owned(), url.to_owned(), ser.to_owned());
            thread::spawn(move || {
                crate::common::assert_script_ok(
                    &format!("client_peer.py {mode} {url} {ser}"),
                    Command::new(python)
                        .args(["client_peer.py", &mode, "--url", &url, "--serializer", &ser])
                        .args(["--timeout-s", PEER_TIMEOUT_S]),
                    SCRIPT_DEADLINE,
                    "OK:",
                )
            })
        }

        /// Waits (inside the executor, bounded) for the peer thread and re-raises its panic.
        async fn join_peer(peer: thread::JoinHandle<()>) {
            until(SCRIPT_DEADLINE + STEP, "the Python peer to exit", || {
                peer.is_finished()
            })
            .await;
            if let Err(panic) = peer.join() {
                std::panic::resume_unwind(panic);
            }
        }

        fn uint_args(args: &[Value]) -> Vec<u64> {
            args.iter().filter_map(Value::as_u64).collect()
        }

        /// The Rust client calls and subscribes; autobahn-python is the callee and re-publisher.
        fn rust_caller_python_callee(url: String, ser: Serializer, ser_name: &str) {
            let peer = spawn_peer("callee", &url, ser_name);
            let cfg = ClientConfig::new(url, "realm1")
                .serializer(ser)
                .connect_timeout(STEP);
            run(TEST_LIMIT, async move {
                let c = bounded(STEP, "connect", Client::connect(cfg))
                    .await
                    .expect("connect");
                // `com.interop.py.fail` is registered after the subscription and the other procedures
                // (only `stop` comes later): once it answers, the peer is ready.
                let deadline = std::time::Instant::now() + SCRIPT_DEADLINE;
                let fail = loop {
                    let r = c
                        .call(
                            "com.interop.py.fail",
                            vec![],
                            Dict::new(),
                            CallOptions::default(),
                        )
                        .await;
                    match &r {
                        Err(switchyard::client::Error::Wamp(e))
                            if e.error.as_str() == "wamp.error.no_such_procedure"
                                && std::time::Instant::now() < deadline =>
                        {
                            sleep(Duration::from_millis(50)).await
                        }
                        _ => break r,
                    }
                };
                match fail {
                    Err(switchyard::client::Error::Wamp(e)) => {
                        assert_eq!(e.error.as_str(), "com.interop.py.oops");
                        assert_eq!(e.args, vec![s("bad"), u(7)]);
                        assert_eq!(e.kwargs, dict(&[("why", s("asked to"))]));
                    }
                    other => panic!("com.interop.py.fail: {other:?}"),
                }

                let r = c
                    .call(
                        "com.interop.py.add",
                        vec![u(2), u(3)],
                        dict(&[("k", s("v"))]),
                        CallOptions::default(),
                    )
                    .await
                    .expect("add");
                assert_eq!(r.args, vec![u(5)]);
                assert_eq!(r.kwargs, dict(&[("k", s("v"))]));

                let mut h = c
                    .call_handle(
                        "com.interop.py.progress",
                        vec![u(3)],
                        Dict::new(),
                        CallOptions {
                            receive_progress: Some(true),
                            ..Default::default()
                        },
                    )
                    .expect("call_handle");
                let mut progress = Vec::new();
                let last = loop {
                    match bounded(STEP, "progressive result", h.next()).await {
                        Some(Ok(r)) if r.progress => progress.extend(uint_args(&r.args)),
                        Some(Ok(r)) => break r,
                        other => panic!("progress: {other:?}"),
                    }
                };
                assert_eq!(progress, vec![0, 1, 2]);
                assert_eq!(last.args, vec![s("done")]);

                let (e, _) = wamp_error(
                    "unknown procedure",
                    c.call(
                        "com.interop.py.nope",
                        vec![],
                        Dict::new(),
                        CallOptions::default(),
                    )
                    .await,
                );
                assert_eq!(e, "wamp.error.no_such_procedure");

                let echoed: Recorder<Event> = Recorder::default();
                let sink = echoed.clone();
                c.subscribe(
                    "com.interop.py.out",
                    SubscribeOptions::default(),
                    move |e| sink.push(e),
                )
                .await
                .expect("subscribe");
                c.publish(
                    "com.interop.py.in",
                    vec![s("ping"), u(1)],
                    dict(&[("n", u(2))]),
                    PublishOptions {
                        acknowledge: Some(true),
                        ..Default::default()
                    },
                )
                .await
                .expect("publish");
                until(STEP, "the re-published event", || !echoed.is_empty()).await;
                let ev = &echoed.snapshot()[0];
                assert_eq!(ev.args, vec![s("ping"), u(1)]);
                assert_eq!(ev.kwargs, dict(&[("n", u(2))]));

                let r = c
                    .call(
                        "com.interop.py.stop",
                        vec![],
                        Dict::new(),
                        CallOptions::default(),
                    )
                    .await
                    .expect("stop");
                assert_eq!(r.args, vec![s("bye")]);
                join_peer(peer).await;
                bounded(STEP, "leave", c.leave()).await.expect("leave");
            });
        }

        /// The Rust client registers and subscribes; autobahn-python calls and publishes.
        fn rust_callee_python_caller(url: String, ser: Serializer, ser_name: &str) {
            let cfg = ClientConfig::new(url.clone(), "realm1")
                .serializer(ser)
                .connect_timeout(STEP);
            let ser_name = ser_name.to_owned();
            run(TEST_LIMIT, async move {
                let c = bounded(STEP, "connect", Client::connect(cfg))
                    .await
                    .expect("connect");
                let calls: Recorder<String> = Recorder::default();
                let rec = calls.clone();
                c.register(
                    "com.interop.rs.add",
                    RegisterOptions::default(),
                    move |inv: Invocation| {
                        rec.push("add".into());
                        async move {
                            let sum: u64 = uint_args(&inv.args).iter().sum();
                            let mut y = Yield::args(vec![u(sum)]);
                            y.kwargs = inv.kwargs.clone();
                            Ok(y)
                        }
                    },
                )
                .await
                .expect("register add");
                let rec = calls.clone();
                c.register(
                    "com.interop.rs.progress",
                    RegisterOptions::default(),
                    move |inv: Invocation| {
                        rec.push("progress".into());
                        async move {
                            if !inv.receive_progress() {
                                return Err(CallError::new("com.interop.rs.no_progress_asked"));
                            }
                            let n = inv.args.first().and_then(Value::as_u64).unwrap_or(0);
                            for i in 0..n {
                                inv.progress(Yield::args(vec![u(i)])).map_err(|_| {
                                    CallError::new("com.interop.rs.progress_failed")
                                })?;
                                sleep(Duration::from_millis(5)).await;
                            }
                            Ok(Yield::args(vec![s("done")]))
                        }
                    },
                )
                .await
                .expect("register progress");
                c.register(
                    "com.interop.rs.fail",
                    RegisterOptions::default(),
                    |_inv: Invocation| async {
                        let mut e = CallError::new("com.interop.rs.oops");
                        e.args = vec![s("bad"), u(7)];
                        e.kwargs = dict(&[("why", s("asked to"))]);
                        Err::<Yield, _>(e)
                    },
                )
                .await
                .expect("register fail");
                let rec = calls.clone();
                c.register(
                    "com.interop.rs.done",
                    RegisterOptions::default(),
                    move |_inv: Invocation| {
                        rec.push("done".into());
                        async { Ok(Yield::args(vec![s("bye")])) }
                    },
                )
                .await
                .expect("register done");
                // Re-publish what arrives on .in to .out (from a task: handlers are synchronous).
                let republisher = c.clone();
                let republished: Recorder<u64> = Recorder::default();
                let rec = republished.clone();
                c.subscribe(
                    "com.interop.rs.in",
                    SubscribeOptions::default(),
                    move |ev| {
                        let client = republisher.clone();
                        let rec = rec.clone();
                        spawn(async move {
                            if let Ok(Some(id)) = client
                                .publish(
                                    "com.interop.rs.out",
                                    ev.args,
                                    ev.kwargs,
                                    PublishOptions {
                                        acknowledge: Some(true),
                                        ..Default::default()
                                    },
                                )
                                .await
                            {
                                rec.push(id);
                            }
                        });
                    },
                )
                .await
                .expect("subscribe");

                join_peer(spawn_peer("caller", &url, &ser_name)).await;
                let got = calls.snapshot();
                for name in ["add", "progress", "done"] {
                    assert!(
                        got.iter().any(|c| c == name),
                        "{name} never called: {got:?}"
                    );
                }
                assert_eq!(republished.len(), 1);
                bounded(STEP, "leave", c.leave()).await.expect("leave");
            });
        }

        #[test]
        fn rust_caller_python_callee_ws_json() {
            let r = router();
            rust_caller_python_callee(r.endpoint("ws").url.clone(), Serializer::Json, "json");
        }

        #[test]
        fn rust_caller_python_callee_rs_msgpack() {
            let r = router();
            rust_caller_python_callee(r.endpoint("rs").url.clone(), Serializer::MsgPack, "msgpack");
        }

        #[test]
        fn rust_callee_python_caller_ws_json() {
            let r = router();
            rust_callee_python_caller(r.endpoint("ws").url.clone(), Serializer::Json, "json");
        }

        #[test]
        fn rust_callee_python_caller_rs_msgpack() {
            let r = router();
            rust_callee_python_caller(r.endpoint("rs").url.clone(), Serializer::MsgPack, "msgpack");
        }
    };
}

mod glommio_driver {
    use crate::client_support::glommio_driver::*;
    client_interop_tests!();
}

mod tokio_driver {
    use crate::client_support::tokio_driver::*;
    client_interop_tests!();
}
