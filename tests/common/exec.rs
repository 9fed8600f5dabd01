//! Running a test body in a glommio executor (the client library's runtime), bounded in time.

use std::time::{Duration, Instant};
use switchyard::config::{ListenAddr, ListenerConfig, ListenerKind};
use switchyard::shard::Router;
use switchyard::RouterConfig;

/// Bound on a whole test body run by [`run`].
pub const TEST_DEADLINE: Duration = Duration::from_secs(60);
/// Bound on waiting for something that should happen ([`wait_until`]).
pub const WAIT: Duration = Duration::from_secs(5);

/// Runs `body` in a glommio executor on this thread, bounded by [`TEST_DEADLINE`].
pub fn run<F, Fut>(body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            let done = futures_lite::future::or(
                async {
                    body().await;
                    true
                },
                async {
                    glommio::timer::sleep(TEST_DEADLINE).await;
                    false
                },
            )
            .await;
            assert!(done, "test body did not finish within {TEST_DEADLINE:?}");
        })
        .expect("executor starts")
        .join()
        .expect("executor ends");
}

/// Waits (at most [`WAIT`]) until `f` holds.
pub async fn wait_until(what: &str, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
}

/// A router in this process with `shards` shards and a RawSocket and a WebSocket (`/ws`)
/// listener on 127.0.0.1:0.
pub fn start_router_in_process(shards: usize) -> Router {
    let listener = |kind| ListenerConfig {
        kind,
        addr: ListenAddr::Tcp("127.0.0.1:0".parse().expect("address")),
        tls: None,
    };
    let start = || {
        Router::start(RouterConfig {
            shards,
            listeners: vec![
                listener(ListenerKind::RawSocket),
                listener(ListenerKind::WebSocket { path: "/ws".into() }),
            ],
            ..Default::default()
        })
    };
    // Once more after glommio's start-up stall only (an executor that parked before its first
    // task ran; see `RouterProcess::start`): not what the tests test.
    match start() {
        Err(e) if e.to_string().contains("did not start") => {
            eprintln!("router start: {e}; starting it once more");
            start().expect("router starts")
        }
        r => r.expect("router starts"),
    }
}

/// The router's endpoint URL with this scheme (`rs`, `ws`).
pub fn endpoint(router: &Router, scheme: &str) -> String {
    router
        .endpoints()
        .iter()
        .find(|u| u.starts_with(&format!("{scheme}://")))
        .unwrap_or_else(|| panic!("no {scheme} endpoint in {:?}", router.endpoints()))
        .clone()
}

/// Whether the router's WELCOME announced `role.features.name` to client `c`.
pub fn router_feature(c: &switchyard::client::Client, role: &str, name: &str) -> bool {
    use switchyard::client::Value;
    let w = c.welcome_details().expect("welcomed");
    let roles = w.roles.as_ref().and_then(|r| r.dict()).expect("roles");
    roles
        .get(role)
        .and_then(Value::as_dict)
        .and_then(|b| b.get("features"))
        .and_then(Value::as_dict)
        .and_then(|f| f.get(name))
        .and_then(Value::as_bool)
        == Some(true)
}
