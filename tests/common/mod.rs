//! Shared helpers of the integration tests: the router as a child process, TLS material, and
//! small blocking WAMP clients over real sockets.
//!
//! - [`RouterProcess`] starts the real `switchyard` binary on `127.0.0.1:0` listeners, waits for
//!   its `ready` line, parses the `listening …` lines into [`Endpoint`]s and kills it on drop
//!   (printing the tail of its stderr when the test failed).
//! - [`TlsFiles`] makes a throw-away CA and a server certificate for `localhost`/`127.0.0.1`.
//! - [`RawClient`] speaks WAMP over RawSocket (TCP or Unix) with `std::net`, using the crate's own
//!   codec and RawSocket framing; [`WsClient`] speaks WAMP over a minimal WebSocket client of
//!   its own. Both sit behind [`WampConn`] so a test reads the same for either transport.
//!
//! Everything here blocks with explicit time limits: every read has a timeout and every loop a
//! deadline, so a misbehaving router fails a test instead of hanging it.

// Each test crate (`interop`, `faults`) uses a different subset of these helpers.
#![allow(dead_code)]

mod client;
pub mod drivers;
mod exec;
mod nats;
mod scrape;

pub use client::*;
// Only the tests of the client library run an executor.
#[allow(unused_imports)]
pub use exec::*;
// Not every test crate reads metrics or runs NATS.
#[allow(unused_imports)]
pub use nats::*;
#[allow(unused_imports)]
pub use scrape::*;

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// How long the router may take from spawn to its `ready` line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// Lines of router output kept for failure reports.
const TAIL_LINES: usize = 300;

// ---------------------------------------------------------------------------------------------
// The router process
// ---------------------------------------------------------------------------------------------

/// One listener the router announced, e.g. `rs://127.0.0.1:40123` or `unix:///tmp/x/s.sock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub url: String,
}

impl Endpoint {
    /// `ws`, `wss`, `rs`, `rss` or `unix`.
    pub fn scheme(&self) -> &str {
        self.url.split("://").next().unwrap_or("")
    }

    /// The `host:port` of a TCP endpoint.
    pub fn addr(&self) -> SocketAddr {
        let rest = self.url.split("://").nth(1).unwrap_or("");
        let hostport = rest.split('/').next().unwrap_or("");
        hostport
            .parse()
            .unwrap_or_else(|e| panic!("endpoint {} has no host:port ({e})", self.url))
    }

    /// The path of a `unix://` endpoint, or the URL path of a WebSocket endpoint.
    pub fn path(&self) -> &str {
        let rest = self.url.split("://").nth(1).unwrap_or("");
        if self.scheme() == "unix" {
            rest
        } else {
            rest.find('/').map_or("/", |i| &rest[i..])
        }
    }
}

/// The last lines a child wrote to one of its pipes.
#[derive(Default)]
struct Tail(VecDeque<String>);

impl Tail {
    fn push(&mut self, line: String) {
        if self.0.len() == TAIL_LINES {
            self.0.pop_front();
        }
        self.0.push_back(line);
    }

    fn text(&self) -> String {
        self.0.iter().map(|l| format!("  | {l}\n")).collect()
    }
}

/// A running `switchyard` child process, killed when dropped.
pub struct RouterProcess {
    child: Child,
    args: Vec<String>,
    /// Every `listening …` line, in the order printed.
    pub endpoints: Vec<Endpoint>,
    /// Filled by a reader thread until the child closes its stderr (so the pipe never fills up
    /// and blocks the router's logging).
    stderr: Arc<Mutex<Tail>>,
    /// Stdout after `ready`, drained the same way.
    stdout: Arc<Mutex<Tail>>,
    status: Option<ExitStatus>,
    /// Set once a panic message already carries the router's output, so Drop does not repeat it.
    reported: bool,
}

fn spawn_line_reader<R: Read + Send + 'static>(
    pipe: R,
    tail: Arc<Mutex<Tail>>,
    forward: Option<mpsc::Sender<String>>,
) {
    thread::spawn(move || {
        let mut forward = forward;
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Some(tx) = &forward {
                if tx.send(line.clone()).is_err() {
                    forward = None;
                }
            }
            if let Ok(mut t) = tail.lock() {
                t.push(line);
            }
        }
    });
}

/// The router binary under test: `$SWITCHYARD_TEST_BIN` if set (to run these tests against
/// another build), else the one cargo built for this test.
pub fn router_binary() -> PathBuf {
    std::env::var_os("SWITCHYARD_TEST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_switchyard")))
}

impl RouterProcess {
    /// Starts `switchyard ARGS` and waits (at most [`READY_TIMEOUT`]) for its `ready` line.
    /// Panics with the router's stderr if it exits or stays silent instead.
    ///
    /// One exception is retried once: a router that printed nothing at all, on stdout or
    /// stderr, within the timeout. That is glommio 0.9's start-up race (an executor that parks
    /// before its first task ever ran, when its thread is descheduled longer than the 2 ms
    /// preempt timer during its first turn; see "Also fixed" in the stop-28 note and
    /// `src/shard/router.rs`), seen on loaded CI hosts; it is not what the tests test, and
    /// a second start on a fresh process succeeds.
    pub fn start(args: &[&str]) -> RouterProcess {
        match Self::try_start(args) {
            Ok(r) => r,
            Err(mut silent) => {
                silent.reported = true;
                let _ = silent.child.kill();
                let _ = silent.wait_exit(Duration::from_secs(5));
                eprintln!(
                    "switchyard {args:?} printed nothing within {READY_TIMEOUT:?} \
                     (glommio start-up stall); starting it once more"
                );
                match Self::try_start(args) {
                    Ok(r) => r,
                    Err(mut again) => again
                        .fail_start(&format!("no `ready` line within {READY_TIMEOUT:?}, twice")),
                }
            }
        }
    }

    /// [`RouterProcess::start`] without the retry: `Err` when the router printed nothing at
    /// all within [`READY_TIMEOUT`] (it is still running; the caller kills it).
    fn try_start(args: &[&str]) -> Result<RouterProcess, RouterProcess> {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut cmd = Command::new(router_binary());
        cmd.args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // SAFETY: prctl is async-signal-safe. If the test process dies without running our Drop
        // (a harness timeout, a SIGKILL), the kernel kills the router too instead of leaving it
        // listening. Tied to the spawning thread, which is the test's own thread and outlives
        // the RouterProcess value.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {}: {e}", router_binary().display()));
        let stderr = Arc::new(Mutex::new(Tail::default()));
        let stdout = Arc::new(Mutex::new(Tail::default()));
        let (tx, rx) = mpsc::channel();
        spawn_line_reader(
            child.stderr.take().expect("stderr is piped"),
            stderr.clone(),
            None,
        );
        spawn_line_reader(
            child.stdout.take().expect("stdout is piped"),
            stdout.clone(),
            Some(tx),
        );

        let mut router = RouterProcess {
            child,
            args,
            endpoints: Vec::new(),
            stderr,
            stdout,
            status: None,
            reported: false,
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let line = line.trim();
                    if line == "ready" {
                        break;
                    }
                    if let Some(url) = line.strip_prefix("listening ") {
                        router.endpoints.push(Endpoint {
                            url: url.trim().to_owned(),
                        });
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let silent = router.endpoints.is_empty()
                        && router.stdout_text().is_empty()
                        && router.stderr_text().is_empty();
                    if silent {
                        return Err(router);
                    }
                    router.fail_start(&format!("no `ready` line within {READY_TIMEOUT:?}"))
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    router.fail_start("stdout closed before `ready`")
                }
            }
        }
        Ok(router)
    }

    fn fail_start(&mut self, why: &str) -> ! {
        self.reported = true;
        let _ = self.child.kill();
        let status = self.wait_exit(Duration::from_secs(5));
        // Give the reader threads a moment to take the last lines off the pipes.
        thread::sleep(Duration::from_millis(100));
        panic!(
            "switchyard {:?}: {why} (exit status {status:?})\nstdout:\n{}stderr:\n{}",
            self.args,
            self.stdout_text(),
            self.stderr_text()
        );
    }

    /// The endpoints with this scheme.
    pub fn all(&self, scheme: &str) -> Vec<&Endpoint> {
        self.endpoints
            .iter()
            .filter(|e| e.scheme() == scheme)
            .collect()
    }

    /// The first endpoint with this scheme; panics listing what the router printed otherwise.
    pub fn endpoint(&self, scheme: &str) -> &Endpoint {
        self.endpoints
            .iter()
            .find(|e| e.scheme() == scheme)
            .unwrap_or_else(|| {
                panic!(
                    "switchyard {:?} announced no {scheme}:// endpoint; it printed {:?}",
                    self.args, self.endpoints
                )
            })
    }

    pub fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    /// Sends `sig` (e.g. `libc::SIGTERM`) to the router.
    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY: kill(2) with the pid of our own, not yet reaped, child.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill({}, {sig}) failed", self.pid());
    }

    /// Waits at most `timeout` for the router to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.status.is_some() {
            return self.status;
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.status = Some(status);
                    return self.status;
                }
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// The last lines the router wrote to stderr.
    pub fn stderr_text(&self) -> String {
        self.stderr.lock().map(|t| t.text()).unwrap_or_default()
    }

    /// The last lines the router wrote to stdout.
    pub fn stdout_text(&self) -> String {
        self.stdout.lock().map(|t| t.text()).unwrap_or_default()
    }
}

impl Drop for RouterProcess {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if thread::panicking() && !self.reported {
            eprintln!(
                "--- switchyard {:?} stderr (last {TAIL_LINES} lines) ---\n{}",
                self.args,
                self.stderr_text()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// TLS material
// ---------------------------------------------------------------------------------------------

/// A throw-away CA and a server certificate it signed for `localhost` and `127.0.0.1`, as PEM
/// files in a temporary directory (removed on drop).
///
/// A separate CA rather than one self-signed leaf: every client verifies against `ca` the usual
/// way (Python's `cafile`, Node's `NODE_EXTRA_CA_CERTS`, rustls' root store, which refuses a CA
/// certificate used as the server's own).
pub struct TlsFiles {
    pub dir: tempfile::TempDir,
    /// The CA certificate clients trust.
    pub ca: PathBuf,
    /// The server certificate (the router's `--tls-cert`).
    pub cert: PathBuf,
    /// The server's private key, PKCS#8 (the router's `--tls-key`).
    pub key: PathBuf,
}

impl TlsFiles {
    pub fn generate() -> TlsFiles {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate().expect("CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "Switchyard test CA");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca = ca_params.self_signed(&ca_key).expect("CA certificate");

        let key = KeyPair::generate().expect("server key");
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let cert = params
            .signed_by(&key, &ca, &ca_key)
            .expect("server certificate");

        let dir = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap_or_else(|e| panic!("write {path:?}: {e}"));
            path
        };
        TlsFiles {
            ca: write("ca.pem", ca.pem()),
            cert: write("cert.pem", cert.pem()),
            key: write("key.pem", key.serialize_pem()),
            dir,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ports a server comes back on
// ---------------------------------------------------------------------------------------------

/// A free port on 127.0.0.1 for a server that must come back on the same port after being
/// down for a while (NATS servers restarted, a router killed under a reconnecting client).
/// `bind(127.0.0.1:0)`, which every other listener in the tests uses and which clients' own
/// ports come from, draws from the kernel's ephemeral range (`net.ipv4.ip_local_port_range`);
/// a port released there can be handed to a parallel test before our server is back. This one
/// is drawn at random below that range, from 10000 up, and checked free by binding it, so
/// only another explicit pick like this could take it. Where the range starts too low to
/// leave room, it falls back to a port from `bind(:0)`.
pub fn restartable_port() -> u16 {
    use std::hash::{BuildHasher, Hasher};
    const FROM: u16 = 10_000;
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let free = |port: u16| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
    if low >= FROM + 1_000 {
        // Seeded at random per process (std's hasher keys).
        let seed = std::collections::hash_map::RandomState::new();
        for attempt in 0u32..200 {
            let mut h = seed.build_hasher();
            h.write_u32(attempt);
            let port = FROM + (h.finish() % u64::from(low - FROM)) as u16;
            if free(port) {
                return port;
            }
        }
    }
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local address").port()
}

// ---------------------------------------------------------------------------------------------
// Waiting for something outside our control
// ---------------------------------------------------------------------------------------------

/// Polls `f` every 10 ms until it returns `Some`, at most `timeout`.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// The Python the interop scripts run with: `$SWITCHYARD_PYTHON` if set (tests/run.sh sets
/// it), else the venv tests/run.sh makes next to the build (`<target>/interop-venv`), else
/// `python3`. Callers check that the modules they need import.
pub fn interop_python_candidate() -> PathBuf {
    if let Some(p) = std::env::var_os("SWITCHYARD_PYTHON") {
        return PathBuf::from(p);
    }
    // <target>/<profile>/switchyard -> <target>/interop-venv
    std::path::Path::new(env!("CARGO_BIN_EXE_switchyard"))
        .ancestors()
        .skip(1)
        .take(3)
        .map(|d| d.join("interop-venv/bin/python"))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("python3"))
}

/// [`interop_python_candidate`], checked to import `modules` (e.g. `"autobahn, nacl"`).
pub fn interop_python(modules: &str) -> PathBuf {
    let candidate = interop_python_candidate();
    let ok = Command::new(&candidate)
        .args(["-c", &format!("import {modules}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "{modules} not importable by {}: run `bash tests/run.sh`",
        candidate.display()
    );
    candidate
}

/// Runs `cmd` (stdin closed) to completion, killing it after `timeout`; returns its exit status
/// (None: killed), stdout and stderr. The output is drained on threads, so a chatty child never
/// blocks on a full pipe.
pub fn run_with_deadline(
    what: &str,
    cmd: &mut Command,
    timeout: Duration,
) -> (Option<ExitStatus>, String, String) {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start {cmd:?}: {e}"));
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = wait_for(timeout, || child.try_wait().ok().flatten());
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    (
        status,
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    )
}

/// Runs an interop script (`cmd` runs in tests/interop), killing it after `timeout`; asserts
/// that it exited 0 and printed `ok_marker` (the scripts print `OK: …`).
pub fn assert_script_ok(what: &str, cmd: &mut Command, timeout: Duration, ok_marker: &str) {
    cmd.current_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop"));
    let (status, stdout, stderr) = run_with_deadline(what, cmd, timeout);
    assert!(
        status.is_some_and(|s| s.success()) && stdout.contains(ok_marker),
        "{what}: {status:?} (None: killed after {timeout:?})\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
    );
}

/// The Ed25519 public key of the seed `[7; 32]` (the client's `CLIENT01` key), hex.
pub const CLIENT01_PUBKEY: &str =
    "ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c";

/// Realms `realm1` (anonymous) and `secure` (static principals: ticket `joe`, wampcra `peter`,
/// salted wampcra `salty`, cryptosign `client01` with its key in place of `PUBKEY`).
pub const AUTH_REALMS_CONFIG: &str = r#"
[[realm]]
name = "realm1"

[[realm]]
name = "secure"
anonymous = false

[[realm.principal]]
authid = "joe"
role = "user"
ticket = "joe-ticket"

[[realm.principal]]
authid = "peter"
role = "admin"
secret = "peter-secret"

[[realm.principal]]
authid = "salty"
role = "user"
secret = "salty-secret"
salt = "salt123"
iterations = 100
keylen = 32

[[realm.principal]]
authid = "client01"
role = "device"
pubkey = "PUBKEY"
"#;

/// [`AUTH_REALMS_CONFIG`] with the client01 key filled in.
pub fn auth_realms_config() -> String {
    AUTH_REALMS_CONFIG.replace("PUBKEY", CLIENT01_PUBKEY)
}

impl RouterProcess {
    /// The real binary with 2 shards, a WebSocket and a RawSocket listener on 127.0.0.1:0, and
    /// `extra` flags.
    pub fn start_ws_rs(extra: &[&str]) -> RouterProcess {
        let mut args = vec![
            "--shards",
            "2",
            "--ws",
            "127.0.0.1:0",
            "--rs",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        RouterProcess::start(&args)
    }
}
