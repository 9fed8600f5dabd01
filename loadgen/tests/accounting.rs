//! The load generator's accounting against a real router: fixed-count runs (`--count`) must
//! count every message exactly (delivered == published × subscribers, results == calls), over
//! each transport and serializer.
//!
//! The router runs in this test process (the `switchyard` library, one shard, listeners on
//! 127.0.0.1:0 and a temporary Unix socket); the `loadgen` binary runs as a child process with
//! `--json`, and the test reads its totals.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use switchyard::config::{ListenAddr, ListenerConfig, ListenerKind, RouterConfig};
use switchyard::shard::Router;

struct Endpoints {
    rs: String,
    ws: String,
    unix: String,
}

/// One router for all tests of this file (it lives until the process exits).
fn router() -> &'static Endpoints {
    static R: OnceLock<Endpoints> = OnceLock::new();
    R.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir").keep();
        let sock = dir.join("router.sock");
        let any = "127.0.0.1:0".parse().expect("address");
        let cfg = RouterConfig {
            shards: 1,
            listeners: vec![
                ListenerConfig {
                    kind: ListenerKind::RawSocket,
                    addr: ListenAddr::Tcp(any),
                    tls: None,
                },
                ListenerConfig {
                    kind: ListenerKind::WebSocket { path: "/ws".into() },
                    addr: ListenAddr::Tcp(any),
                    tls: None,
                },
                ListenerConfig {
                    kind: ListenerKind::RawSocket,
                    addr: ListenAddr::Unix(sock.clone()),
                    tls: None,
                },
            ],
            ..Default::default()
        };
        let router = Router::start(cfg).expect("router starts");
        let eps = router.endpoints().to_vec();
        let find = |prefix: &str| {
            eps.iter()
                .find(|e| e.starts_with(prefix))
                .cloned()
                .unwrap_or_else(|| panic!("no {prefix} endpoint in {eps:?}"))
        };
        let e = Endpoints {
            rs: find("rs://"),
            ws: find("ws://"),
            unix: format!("unix://{}", sock.display()),
        };
        // Keep the router running for the whole test process.
        std::mem::forget(router);
        e
    })
}

/// Runs loadgen with `args` and returns its JSON report.
fn loadgen(args: &[&str]) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let json: PathBuf = dir.path().join("out.json");
    let started = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .args(["--quiet", "--drain", "10", "--json"])
        .arg(&json)
        .output()
        .expect("loadgen runs");
    assert!(
        out.status.success(),
        "loadgen {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "loadgen too slow"
    );
    read_json(&json)
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).expect("json written")).expect("valid json")
}

fn total(v: &Value, key: &str) -> u64 {
    v["totals"][key]
        .as_u64()
        .unwrap_or_else(|| panic!("totals.{key} in {v}"))
}

#[test]
fn fanout_counts_every_event_rawsocket_msgpack() {
    let r = router();
    let v = loadgen(&[
        "fanout",
        "--url",
        &r.rs,
        "--subscribers",
        "4",
        "--count",
        "1000",
        "--batch",
        "7",
    ]);
    assert_eq!(total(&v, "sent"), 1000);
    assert_eq!(total(&v, "expected"), 4000);
    assert_eq!(total(&v, "delivered"), 4000);
    assert_eq!(total(&v, "lost"), 0);
    assert_eq!(total(&v, "surplus"), 0);
    assert_eq!(total(&v, "errors"), 0);
    assert_eq!(v["latency_us"]["count"].as_u64(), Some(4000));
}

#[test]
fn pubsub_counts_with_acknowledgements_websocket_json() {
    let r = router();
    let v = loadgen(&[
        "pubsub",
        "--url",
        &r.ws,
        "--serializer",
        "json",
        "--publishers",
        "3",
        "--subscribers",
        "6",
        "--topics",
        "3",
        "--acknowledge",
        "--outstanding",
        "5",
        "--count",
        "500",
        "--shards",
        "2",
    ]);
    assert_eq!(total(&v, "sent"), 1500);
    assert_eq!(total(&v, "acknowledged"), 1500);
    // 6 subscribers over 3 topics: every event has two subscribers.
    assert_eq!(total(&v, "expected"), 3000);
    assert_eq!(total(&v, "delivered"), 3000);
    assert_eq!(total(&v, "lost"), 0);
}

#[test]
fn pubsub_counts_over_unix_socket_paced() {
    let r = router();
    let v = loadgen(&[
        "pubsub",
        "--url",
        &r.unix,
        "--publishers",
        "2",
        "--subscribers",
        "3",
        "--topics",
        "2",
        "--rate",
        "20000",
        "--count",
        "2000",
    ]);
    // Topic 0 has subscribers 0 and 2, topic 1 has subscriber 1; each publisher alternates.
    assert_eq!(total(&v, "sent"), 4000);
    assert_eq!(total(&v, "expected"), 6000);
    assert_eq!(total(&v, "delivered"), 6000);
}

#[test]
fn rpc_counts_every_result_closed_and_open_loop() {
    let r = router();
    let v = loadgen(&[
        "rpc",
        "--url",
        &r.rs,
        "--callers",
        "4",
        "--callees",
        "2",
        "--count",
        "250",
    ]);
    assert_eq!(total(&v, "sent"), 1000);
    assert_eq!(total(&v, "delivered"), 1000);
    assert_eq!(total(&v, "errors"), 0);
    assert_eq!(v["latency_us"]["count"].as_u64(), Some(1000));
    let v = loadgen(&[
        "rpc",
        "--url",
        &r.ws,
        "--callers",
        "2",
        "--rate",
        "5000",
        "--count",
        "300",
        "--shards",
        "2",
    ]);
    assert_eq!(total(&v, "sent"), 600);
    assert_eq!(total(&v, "delivered"), 600);
}

#[test]
fn connect_cycles_all_complete() {
    let r = router();
    let v = loadgen(&[
        "connect",
        "--url",
        &r.rs,
        "--concurrency",
        "4",
        "--duration",
        "0.5",
        "--warmup",
        "0",
    ]);
    let sent = total(&v, "sent");
    assert!(sent > 0);
    assert_eq!(total(&v, "delivered"), sent);
    assert_eq!(total(&v, "errors"), 0);
}
