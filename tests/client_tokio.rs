//! What only the tokio driver has (everything else runs on both drivers in the other
//! `client_*` tests): the handle is `Send + Sync + Clone` and works from many tasks of a
//! multi-threaded runtime at once; invocation handlers run on the application's runtime, and a
//! handler that panics answers `wamp.error.runtime_error` without harming the client; the
//! event handler's `tokio::spawn` lands on the application's runtime; dropping the last handle
//! leaves the realm; connecting outside a tokio runtime is a clear error.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::endpoint;
use switchyard::client::tokio::{CallHandle, Client, Invocation};
use switchyard::client::{CallOptions, ClientConfig, Error, Serializer, Yield};

const LIMIT: Duration = Duration::from_secs(60);

fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}
fn assert_send<T: Send + 'static>() {}

#[test]
fn handles_are_send_sync_clone() {
    assert_send_sync_clone::<Client>();
    assert_send::<Invocation>();
    assert_send::<CallHandle>();
}

fn config(url: &str) -> ClientConfig {
    ClientConfig::new(url, "realm1")
        .serializer(Serializer::MsgPack)
        .connect_timeout(Duration::from_secs(5))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("app-worker")
        .enable_all()
        .build()
        .expect("tokio runtime")
}

#[test]
fn one_handle_from_many_tasks_handlers_on_the_application_runtime() {
    let router = common::start_router_in_process(2);
    let url = endpoint(&router, "rs");
    runtime().block_on(async move {
        tokio::time::timeout(LIMIT, async move {
            let callee = Client::connect(config(&url)).await.expect("callee joins");
            let caller = Client::connect(config(&url)).await.expect("caller joins");
            let handler_threads = Arc::new(Mutex::new(Vec::<String>::new()));
            {
                let threads = handler_threads.clone();
                callee
                    .register("com.tokio.square", Default::default(), move |inv| {
                        let threads = threads.clone();
                        async move {
                            let name = std::thread::current().name().unwrap_or("").to_owned();
                            threads.lock().unwrap().push(name);
                            let (n,): (u64,) = inv.args_as()?;
                            // A tokio timer inside the handler: it runs on a tokio runtime.
                            tokio::time::sleep(Duration::from_millis(1)).await;
                            Ok(Yield::typed(&(n * n,), &())?)
                        }
                    })
                    .await
                    .expect("register");
            }
            callee
                .register("com.tokio.panics", Default::default(), |_inv| async move {
                    if true {
                        panic!("a bug in the handler");
                    }
                    Ok(Yield::empty())
                })
                .await
                .expect("register panics");

            // 16 tasks × 25 calls through clones of one handle, concurrently.
            let tasks: Vec<_> = (0..16u64)
                .map(|t| {
                    let caller = caller.clone();
                    tokio::spawn(async move {
                        let mut sum = 0;
                        for i in 0..25u64 {
                            let n = t * 100 + i;
                            let (sq,): (u64,) = caller
                                .call_typed("com.tokio.square", &(n,), CallOptions::default())
                                .await
                                .expect("square");
                            assert_eq!(sq, n * n);
                            sum += sq;
                        }
                        sum
                    })
                })
                .collect();
            let mut total = 0;
            for t in tasks {
                total += t.await.expect("task");
            }
            let expected: u64 = (0..16u64)
                .flat_map(|t| (0..25u64).map(move |i| (t * 100 + i) * (t * 100 + i)))
                .sum();
            assert_eq!(total, expected);
            let threads = handler_threads.lock().unwrap().clone();
            assert_eq!(threads.len(), 400);
            assert!(
                threads.iter().all(|n| n == "app-worker"),
                "handlers ran on the application's runtime: {:?}",
                threads.iter().collect::<std::collections::BTreeSet<_>>()
            );

            // A panicking handler answers runtime_error; the client keeps working.
            let e = caller
                .call(
                    "com.tokio.panics",
                    vec![],
                    Default::default(),
                    CallOptions::default(),
                )
                .await
                .expect_err("the handler panicked");
            match &e {
                Error::Wamp(w) => assert_eq!(w.error.as_str(), "wamp.error.runtime_error"),
                other => panic!("expected Error::Wamp, got {other:?}"),
            }
            let (sq,): (u64,) = caller
                .call_typed("com.tokio.square", &(9,), CallOptions::default())
                .await
                .expect("still works");
            assert_eq!(sq, 81);

            // tokio::spawn in an event handler lands on the application's runtime.
            let spawned_on = Arc::new(Mutex::new(None::<String>));
            {
                let spawned_on = spawned_on.clone();
                callee
                    .subscribe("com.tokio.topic", Default::default(), move |_ev| {
                        let spawned_on = spawned_on.clone();
                        tokio::spawn(async move {
                            let name = std::thread::current().name().unwrap_or("").to_owned();
                            *spawned_on.lock().unwrap() = Some(name);
                        });
                    })
                    .await
                    .expect("subscribe");
            }
            caller
                .publish(
                    "com.tokio.topic",
                    vec![],
                    Default::default(),
                    Default::default(),
                )
                .await
                .expect("publish");
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while spawned_on.lock().unwrap().is_none() {
                assert!(std::time::Instant::now() < deadline, "no event");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            assert_eq!(spawned_on.lock().unwrap().as_deref(), Some("app-worker"));

            // Dropping every handle of the callee leaves: its procedures go away.
            drop(callee);
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                match caller
                    .call(
                        "com.tokio.square",
                        vec![1u64.into()],
                        Default::default(),
                        CallOptions::default(),
                    )
                    .await
                {
                    Err(Error::Wamp(w)) if w.error.as_str() == "wamp.error.no_such_procedure" => {
                        break
                    }
                    other => {
                        assert!(
                            std::time::Instant::now() < deadline,
                            "the dropped callee is still registered: {other:?}"
                        );
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
            caller.leave().await.expect("leave");
            caller.closed().await;
            assert!(matches!(caller.leave().await, Err(Error::Closed)));
        })
        .await
        .expect("test within its limit");
    });
    router.shutdown_handle().shutdown();
    router.join().expect("router stops");
}

#[test]
fn connecting_outside_a_tokio_runtime_is_a_clear_error() {
    let e = futures_lite::future::block_on(Client::connect(ClientConfig::new(
        "rs://127.0.0.1:1",
        "realm1",
    )))
    .expect_err("no runtime");
    assert!(
        matches!(&e, Error::Invalid(m) if m.contains("tokio runtime")),
        "{e:?}"
    );
}

/// A publisher faster than the client thread waits instead of queueing without bound: with the
/// client thread held up (a subscription handler that blocks it), unacknowledged publishes are
/// accepted up to the hand-over bound, the next one stays pending, and everything flows again
/// (nothing lost) once the thread is free.
#[test]
fn unacknowledged_publishes_meet_backpressure_not_an_unbounded_queue() {
    const BOUND: u64 = 4096;
    let router = common::start_router_in_process(1);
    let url = endpoint(&router, "rs");
    runtime().block_on(async move {
        tokio::time::timeout(LIMIT, async move {
            let client = Client::connect(config(&url)).await.expect("joins");
            let other = Client::connect(config(&url)).await.expect("joins");
            let (entered_tx, entered_rx) = std::sync::mpsc::channel::<()>();
            let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
            let release_rx = Mutex::new(release_rx);
            let entered_tx = Mutex::new(entered_tx);
            let got = Arc::new(std::sync::atomic::AtomicU64::new(0));
            {
                let got = got.clone();
                client
                    .subscribe("com.tokio.block", Default::default(), move |_ev| {
                        // Holds the client thread (every tokio client's) until released.
                        let _ = entered_tx.lock().unwrap().send(());
                        let _ = release_rx
                            .lock()
                            .unwrap()
                            .recv_timeout(Duration::from_secs(20));
                    })
                    .await
                    .expect("subscribe");
                other
                    .subscribe("com.tokio.flow", Default::default(), move |_ev| {
                        got.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    })
                    .await
                    .expect("subscribe");
            }
            other
                .publish(
                    "com.tokio.block",
                    vec![],
                    Default::default(),
                    Default::default(),
                )
                .await
                .expect("publish");
            tokio::task::spawn_blocking(move || {
                entered_rx
                    .recv_timeout(Duration::from_secs(10))
                    .expect("the handler runs")
            })
            .await
            .expect("join");
            // The client thread is blocked: BOUND publishes are accepted, the next one waits.
            for i in 0..BOUND {
                tokio::time::timeout(
                    Duration::from_secs(5),
                    client.publish(
                        "com.tokio.flow",
                        vec![i.into()],
                        Default::default(),
                        Default::default(),
                    ),
                )
                .await
                .unwrap_or_else(|_| panic!("publish {i} of {BOUND} should not wait"))
                .expect("publish");
            }
            let next = client.publish(
                "com.tokio.flow",
                vec![BOUND.into()],
                Default::default(),
                Default::default(),
            );
            tokio::pin!(next);
            assert!(
                tokio::time::timeout(Duration::from_millis(300), &mut next)
                    .await
                    .is_err(),
                "publish {BOUND} should wait for the client thread"
            );
            release_tx.send(()).expect("release");
            next.await.expect("publish after release");
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while got.load(std::sync::atomic::Ordering::Relaxed) < BOUND + 1 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "events: {} of {}",
                    got.load(std::sync::atomic::Ordering::Relaxed),
                    BOUND + 1
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            client.leave().await.expect("leave");
            other.leave().await.expect("leave");
        })
        .await
        .expect("test within its limit");
    });
    router.shutdown_handle().shutdown();
    router.join().expect("router stops");
}
