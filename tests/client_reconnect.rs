//! Reconnect of `switchyard::client` against the real `switchyard` binary: the router process
//! is killed (SIGKILL, no GOODBYE) under a connected client and started again on the same port;
//! the client's `on_event` hooks must report `Disconnected`, `Reconnecting` and `Rejoined` with
//! the registration and subscription counts, and the restored registration and subscription
//! must work for a second client. A call in flight when the connection drops fails with
//! `Error::Transport`. With `max_attempts` and the router staying down, the client gives up
//! (`GaveUp`), `closed()` resolves and calls answer `Error::Closed`.
//!
//! Every scenario runs on both client drivers (glommio and tokio): the body is written once
//! in `client_reconnect_tests!` and expanded in `glommio_driver` and `tokio_driver`.

mod client_support;
mod common;

macro_rules! client_reconnect_tests {
    () => {
        use std::time::Duration;

        use crate::client_support::{s, u, Recorder};
        use crate::common::RouterProcess;
        use switchyard::client::{
            CallOptions, ClientConfig, ClientEvent, Dict, Error, Event, PublishOptions,
            ReconnectPolicy, RegisterOptions, Serializer, SubscribeOptions, Yield,
        };

        const TEST_LIMIT: Duration = Duration::from_secs(90);
        const STEP: Duration = Duration::from_secs(10);

        /// What a hook saw, without the non-`Clone` parts.
        #[derive(Debug, Clone, PartialEq)]
        enum Seen {
            Disconnected,
            Reconnecting(u32),
            Rejoined {
                registrations: usize,
                subscriptions: usize,
            },
            RestoreFailed(String),
            GaveUp(u32),
        }

        fn record(client: &Client) -> Recorder<Seen> {
            let seen: Recorder<Seen> = Recorder::default();
            let sink = seen.clone();
            client.on_event(move |e| {
                sink.push(match e {
                    ClientEvent::Disconnected { .. } => Seen::Disconnected,
                    ClientEvent::Reconnecting { attempt, .. } => Seen::Reconnecting(*attempt),
                    ClientEvent::Rejoined {
                        registrations,
                        subscriptions,
                        ..
                    } => Seen::Rejoined {
                        registrations: *registrations,
                        subscriptions: *subscriptions,
                    },
                    ClientEvent::RestoreFailed { uri, error } => {
                        Seen::RestoreFailed(format!("{uri}: {error}"))
                    }
                    ClientEvent::GaveUp { attempts } => Seen::GaveUp(*attempts),
                })
            });
            seen
        }

        fn count(seen: &[Seen], f: impl Fn(&Seen) -> bool) -> usize {
            seen.iter().filter(|s| f(s)).count()
        }

        /// A one-shard router serving only `scheme` (`ws` or `rs`) on `addr`.
        fn start_on(scheme: &str, addr: &str) -> RouterProcess {
            match scheme {
                "ws" => RouterProcess::start(&["--shards", "1", "--ws", addr, "--no-rs"]),
                _ => RouterProcess::start(&["--shards", "1", "--rs", addr, "--no-ws"]),
            }
        }

        fn start_router(ws: &str) -> RouterProcess {
            start_on("ws", ws)
        }

        fn policy(max_attempts: Option<u32>) -> ReconnectPolicy {
            ReconnectPolicy {
                initial_delay: Duration::from_millis(50),
                max_delay: Duration::from_millis(400),
                multiplier: 2.0,
                jitter: 0.2,
                max_attempts,
            }
        }

        #[test]
        fn registrations_and_subscriptions_are_restored_after_a_router_restart_ws_json() {
            restored_after_restart("ws", Serializer::Json);
        }

        #[test]
        fn registrations_and_subscriptions_are_restored_after_a_router_restart_rs_msgpack() {
            restored_after_restart("rs", Serializer::MsgPack);
        }

        fn restored_after_restart(scheme: &'static str, ser: Serializer) {
            // It comes back on this port after seconds down: one no bind(:0) hands out.
            let port = crate::common::restartable_port();
            let router = start_on(scheme, &format!("127.0.0.1:{port}"));
            let url = router.endpoint(scheme).url.clone();
            assert_eq!(router.endpoint(scheme).addr().port(), port);
            let cfg = ClientConfig::new(url.clone(), "realm1")
                .serializer(ser)
                .connect_timeout(STEP)
                .reconnect(policy(None));
            let plain = ClientConfig::new(url, "realm1")
                .serializer(ser)
                .connect_timeout(STEP);

            // The router is killed and restarted from inside the executor (blocking calls, but this
            // executor runs only this test: nothing else waits on it).
            let restart = std::rc::Rc::new(std::cell::RefCell::new(Some(router)));
            let r2 = restart.clone();
            run(TEST_LIMIT, async move {
                let client = bounded(STEP, "connect", Client::connect(cfg))
                    .await
                    .expect("connect");
                let seen = record(&client);
                let first_session = client.session_id().expect("session");

                let calls: Recorder<u64> = Recorder::default();
                let c2 = calls.clone();
                let reg = client
                    .register(
                        "com.rc.echo",
                        RegisterOptions::default(),
                        move |inv: Invocation| {
                            let c2 = c2.clone();
                            async move {
                                c2.push(inv.request);
                                Ok(Yield::args(inv.args.clone()))
                            }
                        },
                    )
                    .await
                    .expect("register");
                client
                    .register(
                        "com.rc.slow",
                        RegisterOptions::default(),
                        |_inv: Invocation| async {
                            sleep(Duration::from_secs(30)).await;
                            Ok(Yield::empty())
                        },
                    )
                    .await
                    .expect("register slow");
                let events: Recorder<Event> = Recorder::default();
                let sink = events.clone();
                let sub = client
                    .subscribe("com.rc.topic", SubscribeOptions::default(), move |e| {
                        sink.push(e)
                    })
                    .await
                    .expect("subscribe");

                // A call in flight when the router dies fails with Error::Transport.
                let pending = client
                    .call_handle("com.rc.slow", vec![], Dict::new(), CallOptions::default())
                    .expect("call_handle");
                sleep(Duration::from_millis(100)).await;

                // Kill the router (SIGKILL via Drop: no GOODBYE, the sockets just close).
                drop(r2.borrow_mut().take());
                match bounded(STEP, "the pending call", pending.result()).await {
                    Err(Error::Transport(_)) => {}
                    other => panic!("pending call: expected Error::Transport, got {other:?}"),
                }
                until(STEP, "Disconnected", || {
                    seen.snapshot().contains(&Seen::Disconnected)
                })
                .await;
                assert!(!client.is_connected());
                assert_eq!(client.session_id(), None);
                // While it is down a call cannot succeed (it fails, or waits for the reconnect: the
                // contract leaves that open, so it is only watched for a second here).
                let down = futures_lite::future::or(
                    async {
                        Some(
                            client
                                .call("com.rc.echo", vec![], Dict::new(), CallOptions::default())
                                .await,
                        )
                    },
                    async {
                        sleep(Duration::from_secs(1)).await;
                        None
                    },
                )
                .await;
                assert!(
                    !matches!(down, Some(Ok(_))),
                    "a call while disconnected succeeded"
                );
                // Let a few attempts fail against the closed port.
                until(STEP, "two reconnect attempts", || {
                    count(&seen.snapshot(), |s| matches!(s, Seen::Reconnecting(_))) >= 2
                })
                .await;

                // Start it again on the same port.
                *r2.borrow_mut() = Some(start_on(scheme, &format!("127.0.0.1:{port}")));
                until(STEP * 2, "Rejoined", || {
                    seen.snapshot()
                        .iter()
                        .any(|s| matches!(s, Seen::Rejoined { .. }))
                })
                .await;
                let got = seen.snapshot();
                assert_eq!(count(&got, |s| *s == Seen::Disconnected), 1, "{got:?}");
                assert_eq!(
                    count(&got, |s| matches!(
                        s,
                        Seen::Rejoined {
                            registrations: 2,
                            subscriptions: 1
                        }
                    )),
                    1,
                    "{got:?}"
                );
                assert_eq!(
                    count(&got, |s| matches!(s, Seen::RestoreFailed(_))),
                    0,
                    "{got:?}"
                );
                assert_eq!(count(&got, |s| matches!(s, Seen::GaveUp(_))), 0, "{got:?}");
                // Attempts are numbered 1, 2, 3, … and come before the rejoin.
                let attempts: Vec<u32> = got
                    .iter()
                    .filter_map(|s| match s {
                        Seen::Reconnecting(a) => Some(*a),
                        _ => None,
                    })
                    .collect();
                assert!(attempts.len() >= 2, "{got:?}");
                assert_eq!(
                    attempts,
                    (1..=attempts.len() as u32).collect::<Vec<_>>(),
                    "{got:?}"
                );
                assert!(matches!(got.last(), Some(Seen::Rejoined { .. })), "{got:?}");
                assert!(client.is_connected());
                let second_session = client.session_id().expect("session after rejoin");
                assert_ne!(first_session, second_session);

                // Another client uses what was restored.
                let other = bounded(STEP, "connect", Client::connect(plain))
                    .await
                    .expect("second client");
                let before = calls.len();
                let r = other
                    .call(
                        "com.rc.echo",
                        vec![s("again"), u(2)],
                        Dict::new(),
                        CallOptions::default(),
                    )
                    .await
                    .expect("call the restored procedure");
                assert_eq!(r.args, vec![s("again"), u(2)]);
                assert!(
                    calls.len() > before,
                    "the restored procedure was not invoked"
                );
                let publication = other
                    .publish(
                        "com.rc.topic",
                        vec![s("after restart")],
                        Dict::new(),
                        PublishOptions {
                            acknowledge: Some(true),
                            ..Default::default()
                        },
                    )
                    .await
                    .expect("publish")
                    .expect("publication id");
                until(STEP, "the event on the restored subscription", || {
                    !events.is_empty()
                })
                .await;
                let ev = &events.snapshot()[0];
                assert_eq!(ev.publication, publication);
                assert_eq!(ev.args, vec![s("after restart")]);
                assert_eq!(ev.topic.as_str(), "com.rc.topic");

                // The values from before the restart still work: unregister/unsubscribe find them.
                client
                    .unsubscribe(&sub)
                    .await
                    .expect("unsubscribe restored");
                client.unregister(&reg).await.expect("unregister restored");
                let gone = other
                    .call("com.rc.echo", vec![], Dict::new(), CallOptions::default())
                    .await;
                match gone {
                    Err(Error::Wamp(e)) => {
                        assert_eq!(e.error.as_str(), "wamp.error.no_such_procedure")
                    }
                    other => panic!("after unregister: {other:?}"),
                }
                bounded(STEP, "leave", other.leave()).await.expect("leave");
                bounded(STEP, "leave", client.leave()).await.expect("leave");
                bounded(STEP, "closed()", client.closed()).await;
                // A deliberate leave is not a disconnect: no new events.
                assert_eq!(seen.len(), got.len(), "{:?}", seen.snapshot());
            });
            drop(restart);
        }

        #[test]
        fn gives_up_after_max_attempts_when_the_router_stays_down() {
            let router = start_router("127.0.0.1:0");
            let url = router.endpoint("ws").url.clone();
            let cfg = ClientConfig::new(url, "realm1")
                .connect_timeout(Duration::from_secs(2))
                .reconnect(policy(Some(3)));
            let router = std::rc::Rc::new(std::cell::RefCell::new(Some(router)));
            let r2 = router.clone();
            run(TEST_LIMIT, async move {
                let client = bounded(STEP, "connect", Client::connect(cfg))
                    .await
                    .expect("connect");
                let seen = record(&client);
                client
                    .subscribe("com.rc.gone", SubscribeOptions::default(), |_e| {})
                    .await
                    .expect("subscribe");
                drop(r2.borrow_mut().take());
                bounded(STEP * 3, "closed() after giving up", client.closed()).await;
                let got = seen.snapshot();
                assert_eq!(
                    got,
                    vec![
                        Seen::Disconnected,
                        Seen::Reconnecting(1),
                        Seen::Reconnecting(2),
                        Seen::Reconnecting(3),
                        Seen::GaveUp(3)
                    ]
                );
                assert!(!client.is_connected());
                match client
                    .call("com.rc.any", vec![], Dict::new(), CallOptions::default())
                    .await
                {
                    Err(Error::Closed) => {}
                    other => panic!("call after giving up: expected Error::Closed, got {other:?}"),
                }
                match client
                    .publish("com.rc.any", vec![], Dict::new(), PublishOptions::default())
                    .await
                {
                    Err(Error::Closed) => {}
                    other => {
                        panic!("publish after giving up: expected Error::Closed, got {other:?}")
                    }
                }
            });
        }

        /// Without a policy a lost connection ends the client: `closed()` resolves, no reconnect.
        #[test]
        fn without_a_policy_a_lost_connection_closes_the_client() {
            let router = start_router("127.0.0.1:0");
            let cfg = ClientConfig::new(router.endpoint("ws").url.clone(), "realm1")
                .connect_timeout(STEP);
            let router = std::rc::Rc::new(std::cell::RefCell::new(Some(router)));
            let r2 = router.clone();
            run(TEST_LIMIT, async move {
                let client = bounded(STEP, "connect", Client::connect(cfg))
                    .await
                    .expect("connect");
                let seen = record(&client);
                drop(r2.borrow_mut().take());
                bounded(STEP, "closed() after the loss", client.closed()).await;
                assert!(!client.is_connected());
                sleep(Duration::from_millis(300)).await;
                let got = seen.snapshot();
                assert_eq!(
                    count(&got, |s| matches!(s, Seen::Reconnecting(_))),
                    0,
                    "{got:?}"
                );
                match client
                    .call("com.rc.any", vec![], Dict::new(), CallOptions::default())
                    .await
                {
                    Err(Error::Closed) | Err(Error::Transport(_)) => {}
                    other => panic!("call after the loss: {other:?}"),
                }
            });
        }
    };
}

mod glommio_driver {
    use crate::client_support::glommio_driver::*;
    client_reconnect_tests!();
}

mod tokio_driver {
    use crate::client_support::tokio_driver::*;
    client_reconnect_tests!();
}
