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
use switchyard::config::{ListenAddr, ListenerConfig, ListenerKind};
use switchyard::shard::Router;
use switchyard::RouterConfig;

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
///
/// Runs are serialised: the tests share one router, and two pub/sub runs at once would
/// subscribe to the same `loadgen.topic.N` topics and receive each other's events.
fn loadgen(args: &[&str]) -> Value {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
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

/// `--busy-read-us`: readers that ask their sockets directly (bypassing the reactor while data
/// flows, then falling back to waiting) still count every result and event exactly — over
/// RawSocket (the direct path) and WebSocket (also plain TCP, WebSocket frames in the bytes).
#[test]
fn busy_readers_count_exactly() {
    let r = router();
    for url in [&r.rs, &r.ws] {
        let busy = |args: &[&str]| {
            let mut a = args.to_vec();
            a.extend(["--url", url.as_str(), "--busy-read-us", "300"]);
            loadgen(&a)
        };
        let v = busy(&["rpc", "--callers", "4", "--callees", "2", "--count", "250"]);
        assert_eq!(total(&v, "delivered"), 1000, "{url}");
        assert_eq!(total(&v, "errors"), 0, "{url}");
        let v = busy(&["rpc", "--callers", "2", "--rate", "5000", "--count", "300"]);
        assert_eq!(total(&v, "delivered"), 600, "{url}");
        let v = busy(&["fanout", "--subscribers", "8", "--count", "500"]);
        assert_eq!(total(&v, "expected"), 4000, "{url}");
        assert_eq!(total(&v, "delivered"), 4000, "{url}");
    }
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

/// What the scripted router of [`scripted_router`] does after WELCOME.
#[derive(Clone, Copy)]
enum AfterWelcome {
    /// Close the connection at once.
    Close,
    /// Send a RawSocket PING and count the sessions whose PONG echoes it.
    Ping,
}

/// A minimal RawSocket + JSON "router" for behaviours Switchyard does not show a client
/// (closing a session's connection on its own, transport pings): it answers the handshake and
/// HELLO, then does `after`. Returns the endpoint and the number of correct PONGs so far.
fn scripted_router(after: AfterWelcome) -> (String, std::sync::Arc<std::sync::atomic::AtomicU64>) {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    fn frame(kind: u8, payload: &[u8]) -> Vec<u8> {
        let n = payload.len();
        let mut f = vec![kind, (n >> 16) as u8, (n >> 8) as u8, n as u8];
        f.extend_from_slice(payload);
        f
    }
    fn read_frame(s: &mut TcpStream) -> std::io::Result<(u8, Vec<u8>)> {
        let mut h = [0u8; 4];
        s.read_exact(&mut h)?;
        let n = (h[1] as usize) << 16 | (h[2] as usize) << 8 | h[3] as usize;
        let mut p = vec![0; n];
        s.read_exact(&mut p)?;
        Ok((h[0] & 0x07, p))
    }
    fn serve(
        mut s: TcpStream,
        after: AfterWelcome,
        pongs: &AtomicU64,
        n: u64,
    ) -> std::io::Result<()> {
        s.set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut hello = [0u8; 4];
        s.read_exact(&mut hello)?;
        // Same serializer, 2^24 octets.
        s.write_all(&[0x7f, 0xf0 | (hello[1] & 0x0f), 0, 0])?;
        let (kind, _hello) = read_frame(&mut s)?;
        assert_eq!(kind, 0, "expected HELLO");
        s.write_all(&frame(0, br#"[2,1,{"roles":{"broker":{},"dealer":{}}}]"#))?;
        match after {
            AfterWelcome::Close => Ok(()),
            AfterWelcome::Ping => {
                let token = format!("ping-{n}").into_bytes();
                s.write_all(&frame(1, &token))?;
                // Until the client goes away (or 30 s pass): count a PONG that echoes the token.
                while let Ok((kind, p)) = read_frame(&mut s) {
                    if kind == 2 && p == token {
                        pongs.fetch_add(1, Ordering::SeqCst);
                    }
                }
                Ok(())
            }
        }
    }

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("rs://{}", listener.local_addr().expect("local address"));
    let pongs = Arc::new(AtomicU64::new(0));
    let counter = pongs.clone();
    std::thread::spawn(move || {
        for (n, conn) in listener.incoming().take(64).enumerate() {
            let Ok(conn) = conn else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let _ = serve(conn, after, &counter, n as u64);
            });
        }
    });
    (url, pongs)
}

/// The idle scenario used to go on reporting sessions as held (and RSS per session) after the
/// router had closed them; now each closed session counts as a disconnect and no per-session
/// figure is given.
#[test]
fn idle_counts_sessions_the_router_closes() {
    let (url, _) = scripted_router(AfterWelcome::Close);
    let pid = std::process::id().to_string();
    let v = loadgen(&[
        "idle",
        "--url",
        &url,
        "--serializer",
        "json",
        "--sessions",
        "3",
        "--duration",
        "0.5",
        "--router-pid",
        &pid,
    ]);
    assert_eq!(total(&v, "disconnects"), 3);
    assert!(v["rss_per_session_bytes"].is_null(), "{v}");
}

/// Held idle sessions answer the router's transport pings (Crossbar drops sessions that do not
/// when its auto-ping is on).
#[test]
fn idle_sessions_answer_pings() {
    let (url, pongs) = scripted_router(AfterWelcome::Ping);
    let v = loadgen(&[
        "idle",
        "--url",
        &url,
        "--serializer",
        "json",
        "--sessions",
        "3",
        "--duration",
        "0.5",
    ]);
    assert_eq!(total(&v, "disconnects"), 0);
    // loadgen has exited, so every PONG it sent has arrived; the serving threads may still be
    // counting, so wait for them (bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    while pongs.load(std::sync::atomic::Ordering::SeqCst) < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(pongs.load(std::sync::atomic::Ordering::SeqCst), 3);
}

/// `firehose` (the stand-in router that measures loadgen's own receive ceiling) speaks enough
/// WAMP for loadgen's fan-out, with and without acknowledgements and with busy readers, and
/// loadgen counts its events exactly: every EVENT, and none twice.
#[test]
fn firehose_events_count_exactly() {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_firehose"))
        .args(["--listen", "127.0.0.1:0", "--seconds", "120"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("firehose runs");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("firehose prints its address");
    let _child = Kill(child);
    let addr = line
        .trim()
        .strip_prefix("listening ")
        .expect("`listening ADDR`");
    let url = format!("rs://{addr}");
    for extra in [&[][..], &["--acknowledge"], &["--busy-read-us", "300"]] {
        let mut args = vec![
            "fanout",
            "--url",
            &url,
            "--subscribers",
            "16",
            "--count",
            "3000",
        ];
        args.extend(extra);
        let v = loadgen(&args);
        assert_eq!(total(&v, "expected"), 48_000, "{extra:?}");
        assert_eq!(total(&v, "delivered"), 48_000, "{extra:?}");
        assert_eq!(total(&v, "surplus"), 0, "{extra:?}");
        assert_eq!(total(&v, "errors"), 0, "{extra:?}");
        assert_eq!(v["latency_us"]["count"].as_u64(), Some(48_000), "{extra:?}");
    }
    // JSON is not spoken: the handshake is refused, so loadgen fails to connect.
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "fanout",
            "--url",
            &url,
            "--serializer",
            "json",
            "--count",
            "1",
            "--quiet",
        ])
        .output()
        .expect("loadgen runs");
    assert!(!out.status.success(), "a JSON session was accepted");
}
