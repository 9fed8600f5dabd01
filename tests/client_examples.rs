//! The examples (`examples/rpc.rs`, `examples/pubsub.rs`, `examples/embedded.rs`,
//! `examples/event_history.rs`, and on tokio `examples/tokio_rpc.rs`, `examples/tokio_serde.rs`,
//! `examples/axum_handler.rs`) run, not just compile: each is started against a real
//! `switchyard` on 127.0.0.1:0 (embedded and axum_handler start their own router) and must
//! exit 0 within a bound, having printed what it did.
//!
//! `cargo test --all-targets` builds the examples into `<target>/debug/examples/`; run alone
//! (`cargo test --test client_examples`) this test builds them first with `cargo build
//! --examples` (a no-op when they are up to date).

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Once;
use std::thread;
use std::time::Duration;

use common::{wait_for, RouterProcess};

const EXAMPLE_DEADLINE: Duration = Duration::from_secs(60);

/// `<target>/<profile>/examples/NAME`, built if needed.
fn example(name: &str) -> PathBuf {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        // Only the user's build settings: the variables cargo sets for a test run (CARGO_PKG_*,
        // LD_LIBRARY_PATH, …) would make the nested build redo the dependencies.
        let keep = |k: &str| {
            [
                "PATH",
                "HOME",
                "USER",
                "TMPDIR",
                "CARGO_HOME",
                "CARGO_TARGET_DIR",
            ]
            .contains(&k)
                || k.starts_with("RUST")
                || [
                    "CARGO_BUILD_",
                    "CARGO_PROFILE_",
                    "CARGO_NET_",
                    "CARGO_INCREMENTAL",
                ]
                .iter()
                .any(|p| k.starts_with(p))
        };
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "switchyard", "--examples"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env_clear()
            .envs(std::env::vars_os().filter(|(k, _)| k.to_str().is_some_and(keep)))
            .stdin(Stdio::null())
            .status()
            .expect("run cargo build --examples");
        assert!(status.success(), "cargo build --examples failed");
    });
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_switchyard"));
    let path = bin
        .parent()
        .expect("the binary's directory")
        .join("examples")
        .join(name);
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// Runs an example to completion (killed after [`EXAMPLE_DEADLINE`]); returns its stdout,
/// panicking with both outputs unless it exited 0.
fn run_example(name: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(example(name));
    cmd.args(args)
        .env_remove("SWITCHYARD_URL")
        .env_remove("SWITCHYARD_REALM");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let (status, stdout, stderr) = common::run_with_deadline(name, &mut cmd, EXAMPLE_DEADLINE);
    assert!(
        status.is_some_and(|s| s.success()),
        "example {name} {args:?}: {status:?} (None: killed after {EXAMPLE_DEADLINE:?})\n\
         --- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    );
    stdout
}

fn router() -> RouterProcess {
    RouterProcess::start_ws_rs(&[])
}

#[test]
fn rpc_example() {
    let r = router();
    let ws = r.endpoint("ws").url.clone();
    let out = run_example("rpc", &["both", &ws], &[]);
    assert!(out.contains("add(2, 3) = [5]"), "{out}");
    assert_eq!(out.matches("countdown progress").count(), 3, "{out}");
    assert!(out.contains("after 3 progressive results"), "{out}");
    assert!(
        out.contains("callee: done") && out.contains("caller: done"),
        "{out}"
    );

    // Callee and caller as separate processes, the URL from the environment, over RawSocket.
    let rs = r.endpoint("rs").url.clone();
    let callee = {
        let rs = rs.clone();
        thread::spawn(move || run_example("rpc", &["callee"], &[("SWITCHYARD_URL", &rs)]))
    };
    let out = run_example("rpc", &["caller"], &[("SWITCHYARD_URL", &rs)]);
    assert!(out.contains("caller: done"), "{out}");
    let callee_out = callee.join().expect("callee thread");
    assert!(callee_out.contains("callee: done"), "{callee_out}");
}

#[test]
fn pubsub_example() {
    let r = router();
    let out = run_example("pubsub", &["both", &r.endpoint("ws").url], &[]);
    assert!(out.contains("subscriber: received 5 events"), "{out}");
    assert_eq!(out.matches("publisher: tick").count(), 5, "{out}");

    let rs = r.endpoint("rs").url.clone();
    let sub = {
        let rs = rs.clone();
        thread::spawn(move || run_example("pubsub", &["subscriber", &rs], &[]))
    };
    // The subscriber may not be subscribed yet when the first publisher runs: publish rounds
    // (each ending with a `last` tick) until it has seen one and exited (bounded).
    for _ in 0..20 {
        let out = run_example("pubsub", &["publisher", &rs], &[]);
        assert!(out.contains("publisher: done"), "{out}");
        if wait_for(Duration::from_millis(500), || {
            sub.is_finished().then_some(())
        })
        .is_some()
        {
            break;
        }
    }
    let sub_out = sub.join().expect("subscriber thread");
    assert!(sub_out.contains("subscriber: received"), "{sub_out}");
}

#[test]
fn event_history_example() {
    let out = run_example("event_history", &[], &[]);
    assert_eq!(out.matches("history: all:").count(), 6, "{out}");
    let line = |prefix: &str| {
        out.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} line in {out}"))
            .to_owned()
    };
    let latest = line("history: latest two:");
    assert!(
        latest.contains(", 6)") && latest.contains(", 5)"),
        "{latest}"
    );
    let before = line("history: the two before:");
    assert!(
        before.contains(", 4)") && before.contains(", 3)"),
        "{before}"
    );
    assert!(out.contains("history: logins: 3"), "{out}");
    assert!(out.contains("history: done"), "{out}");
}

#[test]
fn embedded_example() {
    let out = run_example("embedded", &[], &[]);
    assert!(out.contains("greet(Ada) = [\"hello, Ada\"]"), "{out}");
    assert!(out.contains("embedded: done"), "{out}");

    // From a config file, with a listener another process could use.
    let dir = tempfile::tempdir().expect("temp dir");
    let cfg = dir.path().join("switchyard.toml");
    std::fs::write(
        &cfg,
        "[router]\nshards = 1\nws = [\"127.0.0.1:0\"]\nrawsocket = []\n\n[[realm]]\nname = \"app\"\n",
    )
    .expect("write config");
    let out = run_example("embedded", &[cfg.to_str().expect("utf-8 path")], &[]);
    assert!(out.contains("router listening ws://127.0.0.1:"), "{out}");
    assert!(out.contains("greet(Linus)"), "{out}");
}

#[test]
fn tokio_rpc_example() {
    let r = router();
    let out = run_example("tokio_rpc", &["both", &r.endpoint("ws").url], &[]);
    assert!(out.contains("mul(6, 7) = 42"), "{out}");
    assert!(
        out.contains("squares from 8 tasks: [1, 4, 9, 16, 25, 36, 49, 64]"),
        "{out}"
    );
    assert_eq!(out.matches("ticks progress").count(), 3, "{out}");
    assert!(out.contains("ticks final: \"done\""), "{out}");
    assert!(
        out.contains("callee: done") && out.contains("caller: done"),
        "{out}"
    );

    // Callee and caller as separate processes over RawSocket.
    let rs = r.endpoint("rs").url.clone();
    let callee = {
        let rs = rs.clone();
        thread::spawn(move || run_example("tokio_rpc", &["callee", &rs], &[]))
    };
    let out = run_example("tokio_rpc", &["caller", &rs], &[]);
    assert!(out.contains("caller: done"), "{out}");
    let callee_out = callee.join().expect("callee thread");
    assert!(callee_out.contains("callee: done"), "{callee_out}");
}

#[test]
fn tokio_serde_example() {
    let r = router();
    let out = run_example("tokio_serde", &[&r.endpoint("rs").url], &[]);
    assert!(
        out.contains("-> Quote { item: \"widget\", total_cents: 2700, discounted: true }"),
        "{out}"
    );
    assert!(
        out.contains("wrong payload -> wamp.error.invalid_argument"),
        "{out}"
    );
    assert!(
        out.contains("event Shipped { order_id: 7, carrier: \"owl post\" }"),
        "{out}"
    );
    assert!(out.contains("serde: done"), "{out}");
}

#[test]
fn axum_handler_example() {
    // Embedded router, in-process tokio client, axum on 127.0.0.1:0, two real HTTP requests.
    let out = run_example("axum_handler", &["--self-test"], &[]);
    assert!(
        out.contains("GET /greet?name=Ada: HTTP/1.1 200 OK: hello, Ada (call #1)"),
        "{out}"
    );
    assert!(
        out.contains("GET /greet?name=Grace: HTTP/1.1 200 OK: hello, Grace (call #2)"),
        "{out}"
    );
    assert!(out.contains("axum: done"), "{out}");

    // Against a router process over WebSocket.
    let r = router();
    let out = run_example("axum_handler", &["--self-test", &r.endpoint("ws").url], &[]);
    assert!(out.contains("hello, Grace (call #2)"), "{out}");
}
