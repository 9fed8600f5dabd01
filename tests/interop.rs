//! Interop tests: independent WAMP clients against the real `switchyard` binary.
//!
//! Each test starts a router with two shards and every transport (WebSocket, RawSocket, both
//! over TLS too, and a Unix socket) on `127.0.0.1:0`, then runs one case of
//! `tests/interop/client.py` (autobahn-python, asyncio) or `tests/interop/client.js`
//! (autobahn-js on Node): 16 concurrent sessions that join `realm1`, check the WELCOME and leave
//! with GOODBYE (the `*_rpc_pubsub` cases also register/call and subscribe/publish in pairs of
//! sessions first). With 16 sessions spread by the kernel over two SO_REUSEPORT listeners, both
//! shards serve some of them (there is no way to see that from outside; the count just makes it
//! overwhelmingly likely).
//!
//! The clients are installed by `bash tests/run.sh` (a Python venv under the cargo target
//! directory, `npm install --no-save` in `tests/interop`). A test whose client is missing FAILS and says so: no
//! silent skip.
//!
//! Which Python: `$SWITCHYARD_PYTHON` if set (run.sh sets it), else the venv run.sh makes
//! (`<target>/interop-venv/bin/python`), else `python3`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::{assert_script_ok, RouterProcess, TlsFiles};

/// Concurrent sessions per case.
const SESSIONS: &str = "16";
/// The clients bound their own run to this; the harness kills them a little later.
const CLIENT_TIMEOUT_S: u64 = 30;

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop")
}

const INSTALL_HINT: &str =
    "run `bash tests/run.sh` (it installs the interop clients and runs all tests)";

/// The Python with autobahn installed, checked once per test binary.
fn python() -> &'static PathBuf {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = PYTHON.get_or_init(|| {
        let candidate = common::interop_python_candidate();
        let out = Command::new(&candidate)
            .args([
                "-c",
                "import autobahn, msgpack; print(autobahn.__version__)",
            ])
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => Ok(candidate),
            Ok(o) => Err(format!(
                "autobahn-python is not importable by {}: {}\n{INSTALL_HINT}",
                candidate.display(),
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => Err(format!(
                "cannot run {}: {e}\n{INSTALL_HINT}",
                candidate.display()
            )),
        }
    });
    match found {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// Checks that node and the JavaScript clients (autobahn-js, wampy.js) are there.
fn node() -> &'static str {
    static NODE: OnceLock<Result<(), String>> = OnceLock::new();
    let found = NODE.get_or_init(|| {
        let dir = interop_dir();
        for module in ["autobahn", "msgpack5", "xhr2", "wampy"] {
            if !dir.join("node_modules").join(module).join("package.json").exists() {
                return Err(format!(
                    "the JavaScript interop clients are not installed ({}/node_modules/{module} is missing)\n{INSTALL_HINT}",
                    dir.display()
                ));
            }
        }
        match Command::new("node").arg("--version").stdin(Stdio::null()).output() {
            Ok(o) if o.status.success() => Ok(()),
            Ok(o) => Err(format!("`node --version` failed: {:?}\n{INSTALL_HINT}", o.status)),
            Err(e) => Err(format!("cannot run node: {e}\n{INSTALL_HINT}")),
        }
    });
    match found {
        Ok(()) => "node",
        Err(e) => panic!("{e}"),
    }
}

/// A router with every transport and its TLS material; dropped at the end of each test.
struct Fixture {
    router: RouterProcess,
    tls: TlsFiles,
    _unix_dir: tempfile::TempDir,
}

impl Fixture {
    fn start() -> Fixture {
        let tls = TlsFiles::generate();
        let unix_dir = tempfile::tempdir().expect("temp dir");
        let sock = unix_dir.path().join("switchyard.sock");
        // Event history for `features.py`'s check_event_history.
        let config = unix_dir.path().join("switchyard.toml");
        std::fs::write(
            &config,
            "[[realm]]\nname = \"realm1\"\n\n[[realm.history]]\ntopic = \"com.f.hist\"\nmatch = \"prefix\"\nlimit = 100\n",
        )
        .expect("write config");
        let router = RouterProcess::start(&[
            // autobahn-python 26 speaks BJData as `wamp.2.ubjson`.
            "--ubjson-dialect",
            "bjdata",
            "--config",
            config.to_str().expect("utf-8 temp path"),
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
            sock.to_str().expect("utf-8 temp path"),
            "--tls-cert",
            tls.cert.to_str().expect("utf-8 temp path"),
            "--tls-key",
            tls.key.to_str().expect("utf-8 temp path"),
        ]);
        Fixture {
            router,
            tls,
            _unix_dir: unix_dir,
        }
    }

    fn url(&self, scheme: &str) -> String {
        if scheme == "lp" {
            // The long-poll transport, at its default path on the WebSocket listener.
            return format!("http://{}/lp", self.router.endpoint("ws").addr());
        }
        self.router.endpoint(scheme).url.clone()
    }
}

/// Runs a client command, killing it after the deadline; panics with its output on failure.
fn run_client(what: &str, mut cmd: Command, fixture: &Fixture) {
    cmd.current_dir(interop_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}\n{INSTALL_HINT}"));
    // Drain the pipes on threads so a chatty client cannot block on a full pipe.
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let deadline = Instant::now() + Duration::from_secs(CLIENT_TIMEOUT_S + 15);
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let out = out_thread.join().unwrap_or_default();
    let err = err_thread.join().unwrap_or_default();
    match status {
        Some(s) if s.success() => {
            assert!(out.contains("OK:"), "{what}: exit 0 without an OK line:\n{out}\n{err}");
        }
        Some(s) => panic!(
            "{what} failed ({s}) against {:?}\n--- stdout ---\n{out}\n--- stderr ---\n{err}",
            fixture.router.endpoints
        ),
        None => panic!(
            "{what}: still running after {} s, killed\n--- stdout ---\n{out}\n--- stderr ---\n{err}",
            CLIENT_TIMEOUT_S + 15
        ),
    }
}

fn python_case(scheme: &str, serializer: &str, extra: &[&str]) {
    let py = python();
    let fixture = Fixture::start();
    let mut cmd = Command::new(py);
    cmd.arg("client.py")
        .args(["--url", &fixture.url(scheme)])
        .args(["--serializer", serializer])
        .args(["--sessions", SESSIONS])
        .args(["--timeout-s", &CLIENT_TIMEOUT_S.to_string()])
        .arg("--cafile")
        .arg(&fixture.tls.ca)
        .args(extra);
    run_client(
        &format!("autobahn-python {scheme} {serializer} {extra:?}"),
        cmd,
        &fixture,
    );
}

fn node_case(scheme: &str, serializer: &str, extra: &[&str]) {
    let node = node();
    let fixture = Fixture::start();
    let mut cmd = Command::new(node);
    cmd.arg("client.js")
        .args(["--url", &fixture.url(scheme)])
        .args(["--serializer", serializer])
        .args(["--sessions", SESSIONS])
        .args(["--timeout-ms", &(CLIENT_TIMEOUT_S * 1000).to_string()])
        // autobahn-js cannot be given a CA for wss; Node's own mechanism keeps verification on.
        .env("NODE_EXTRA_CA_CERTS", &fixture.tls.ca)
        .args(extra);
    run_client(
        &format!("autobahn-js {scheme} {serializer} {extra:?}"),
        cmd,
        &fixture,
    );
}

// autobahn-python: every transport with both serializers.

#[test]
fn python_ws_json() {
    python_case("ws", "json", &[]);
}

#[test]
fn python_ws_msgpack() {
    python_case("ws", "msgpack", &[]);
}

#[test]
fn python_rawsocket_json() {
    python_case("rs", "json", &[]);
}

#[test]
fn python_rawsocket_msgpack() {
    python_case("rs", "msgpack", &[]);
}

#[test]
fn python_wss_json() {
    python_case("wss", "json", &[]);
}

#[test]
fn python_wss_msgpack() {
    python_case("wss", "msgpack", &[]);
}

#[test]
fn python_rawsocket_tls_json() {
    python_case("rss", "json", &[]);
}

#[test]
fn python_rawsocket_tls_msgpack() {
    python_case("rss", "msgpack", &[]);
}

#[test]
fn python_unix_json() {
    python_case("unix", "json", &[]);
}

#[test]
fn python_unix_msgpack() {
    python_case("unix", "msgpack", &[]);
}

// autobahn-python with CBOR (`wamp.2.cbor`, RawSocket serializer 3).

// autobahn-python with `wamp.2.ubjson` (its `bjdata` backend; the fixture runs
// `--ubjson-dialect bjdata`), RawSocket serializer 4.

#[test]
fn python_ws_ubjson_rpc_pubsub() {
    python_case("ws", "ubjson", &["--rpc-pubsub"]);
}

#[test]
fn python_rawsocket_ubjson_rpc_pubsub() {
    python_case("rs", "ubjson", &["--rpc-pubsub"]);
}

#[test]
fn python_ws_ubjson_batched_rpc_pubsub() {
    python_case("ws", "ubjson", &["--batched", "--rpc-pubsub"]);
}

#[test]
fn python_ws_cbor() {
    python_case("ws", "cbor", &[]);
}

#[test]
fn python_rawsocket_cbor() {
    python_case("rs", "cbor", &[]);
}

#[test]
fn python_ws_cbor_rpc_pubsub() {
    python_case("ws", "cbor", &["--rpc-pubsub"]);
}

#[test]
fn python_rawsocket_cbor_rpc_pubsub() {
    python_case("rs", "cbor", &["--rpc-pubsub"]);
}

// autobahn-python over batched WebSocket (`wamp.2.<serializer>.batched`).

#[test]
fn python_ws_json_batched_rpc_pubsub() {
    python_case("ws", "json", &["--batched", "--rpc-pubsub"]);
}

#[test]
fn python_ws_msgpack_batched_rpc_pubsub() {
    python_case("ws", "msgpack", &["--batched", "--rpc-pubsub"]);
}

#[test]
fn python_ws_cbor_batched_rpc_pubsub() {
    python_case("ws", "cbor", &["--batched", "--rpc-pubsub"]);
}

// autobahn-js: WebSocket with both serializers; its RawSocket transport is JSON-only and has no
// TLS (see client.js).

#[test]
fn node_ws_json() {
    node_case("ws", "json", &[]);
}

#[test]
fn node_ws_msgpack() {
    node_case("ws", "msgpack", &[]);
}

#[test]
fn node_wss_json() {
    node_case("wss", "json", &[]);
}

#[test]
fn node_wss_msgpack() {
    node_case("wss", "msgpack", &[]);
}

#[test]
fn node_rawsocket_json() {
    node_case("rs", "json", &[]);
}

#[test]
fn node_unix_json() {
    node_case("unix", "json", &[]);
}

// Pairs of sessions (usually on different shards) register/call and subscribe/publish.

#[test]
fn python_ws_msgpack_rpc_pubsub() {
    python_case("ws", "msgpack", &["--rpc-pubsub"]);
}

#[test]
fn python_rawsocket_json_rpc_pubsub() {
    python_case("rs", "json", &["--rpc-pubsub"]);
}

#[test]
fn python_unix_msgpack_rpc_pubsub() {
    python_case("unix", "msgpack", &["--rpc-pubsub"]);
}

/// wampy.js 8 with CBOR over WebSocket, against a second wampy session in `other`.
fn wampy_case(other: &str) {
    let node = node();
    let fixture = Fixture::start();
    let mut cmd = Command::new(node);
    cmd.arg("wampy.js")
        .args(["--url", &fixture.url("ws")])
        .args(["--other", other])
        .args(["--timeout-ms", &(CLIENT_TIMEOUT_S * 1000).to_string()]);
    run_client(&format!("wampy.js cbor + {other}"), cmd, &fixture);
}

#[test]
fn wampy_cbor() {
    wampy_case("cbor");
}

#[test]
fn wampy_cbor_with_msgpack() {
    wampy_case("msgpack");
}

#[test]
fn wampy_cbor_with_json() {
    wampy_case("json");
}

#[test]
fn node_longpoll_json() {
    node_case("lp", "json", &[]);
}

#[test]
fn node_longpoll_json_rpc_pubsub() {
    node_case("lp", "json", &["--rpc-pubsub"]);
}

#[test]
fn node_ws_json_rpc_pubsub() {
    node_case("ws", "json", &["--rpc-pubsub"]);
}

#[test]
fn node_rawsocket_json_rpc_pubsub() {
    node_case("rs", "json", &["--rpc-pubsub"]);
}

// Advanced Profile features (the routing issue), 2 shards, sessions rotating over transports
// and serializers so that peers sit on different shards.

#[test]
fn python_features() {
    let py = python();
    let fixture = Fixture::start();
    let mut cmd = Command::new(py);
    cmd.arg("features.py")
        .arg(fixture.url("ws"))
        .arg(fixture.url("rs"));
    run_client("autobahn-python features", cmd, &fixture);
}

#[test]
fn node_features() {
    let node = node();
    let fixture = Fixture::start();
    let mut cmd = Command::new(node);
    let ws = fixture.url("ws");
    cmd.arg("features.js")
        .arg(format!("{ws},json"))
        .arg(format!("{ws},msgpack"))
        .arg(format!("{},json", fixture.url("rs")));
    run_client("autobahn-js features", cmd, &fixture);
}

/// Progressive results with an autobahn-js 22.11 callee (no `call_canceling`) and caller, on
/// two shards: forwarded by default, the spec's strict rule with
/// `--strict-progressive-results`; a caller leaving mid-call does not hurt the callee.
fn node_progress(mode: &str, extra: &[&str]) {
    let node = node();
    let router = RouterProcess::start_ws_rs(extra);
    let ws = router.endpoint("ws").url.clone();
    let rs = router.endpoint("rs").url.clone();
    let mut cmd = Command::new(node);
    cmd.arg("progress.js")
        .arg(mode)
        .arg(format!("{ws},json"))
        .arg(format!("{ws},msgpack"))
        .arg(format!("{rs},json"));
    assert_script_ok(
        &format!("autobahn-js progress {mode}"),
        &mut cmd,
        Duration::from_secs(45),
        "OK:",
    );
}

#[test]
fn node_progressive_results_by_default() {
    node_progress("default", &[]);
}

#[test]
fn node_progressive_results_strict() {
    node_progress("strict", &["--strict-progressive-results"]);
}
