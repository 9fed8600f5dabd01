//! An embedded router must free its listening sockets by the time `Router::join` returns, so
//! that an embedder (or a test) can start a new router on the same port or Unix socket path in
//! the same process. Also: a router that fails to start must not keep the listeners it had
//! already bound.

mod common;

use common::{RawClient, WampConn, WsClient};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use switchyard::codec::Serializer;
use switchyard::config::{ListenAddr, ListenerConfig, ListenerKind};
use switchyard::shard::Router;
use switchyard::RouterConfig;

/// How long after `join` the old port may still accept connections (it should be none at all).
const FREED_WITHIN: Duration = Duration::from_secs(2);

fn listener(kind: ListenerKind, addr: ListenAddr) -> ListenerConfig {
    ListenerConfig {
        kind,
        addr,
        tls: None,
    }
}

fn config(shards: usize, rs: SocketAddr, ws: SocketAddr, unix: &Path) -> RouterConfig {
    RouterConfig {
        shards,
        listeners: vec![
            listener(ListenerKind::RawSocket, ListenAddr::Tcp(rs)),
            listener(
                ListenerKind::WebSocket { path: "/ws".into() },
                ListenAddr::Tcp(ws),
            ),
            listener(
                ListenerKind::RawSocket,
                ListenAddr::Unix(unix.to_path_buf()),
            ),
        ],
        ..Default::default()
    }
}

/// The `host:port` of `rs://…` / `ws://…/ws` endpoint URLs.
fn tcp_addr(url: &str) -> SocketAddr {
    let rest = url.split("://").nth(1).expect("scheme");
    rest.split('/')
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("endpoint {url} has no host:port"))
}

/// Joins a client over each of the three listeners.
fn serve_check(rs: SocketAddr, ws: SocketAddr, unix: &Path) {
    let mut a = RawClient::connect(rs, Serializer::Json);
    a.must_join("realm1");
    let mut b = WsClient::connect(ws, "/ws", Serializer::Json);
    b.must_join("realm1");
    let mut c = RawClient::connect_unix(unix, Serializer::MsgPack);
    c.must_join("realm1");
    a.must_leave();
    b.must_leave();
    c.must_leave();
}

/// Waits (bounded) until nothing accepts on `addr` any more; panics if something still does.
fn assert_refused(addr: SocketAddr) {
    let deadline = Instant::now() + FREED_WITHIN;
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            Err(e) => panic!("connect {addr} after join: unexpected error {e}"),
            Ok(_) if Instant::now() >= deadline => {
                panic!("{addr} still accepts connections {FREED_WITHIN:?} after the router stopped")
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn assert_unix_refused(path: &Path) {
    let deadline = Instant::now() + FREED_WITHIN;
    loop {
        match std::os::unix::net::UnixStream::connect(path) {
            Err(_) => return,
            Ok(_) if Instant::now() >= deadline => {
                panic!(
                    "{path:?} still accepts connections {FREED_WITHIN:?} after the router stopped"
                )
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn restart_on_same_addresses(shards: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let unix: PathBuf = dir.path().join("router.sock");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");

    let first = Router::start(config(shards, any, any, &unix)).expect("first router starts");
    let rs = tcp_addr(&first.endpoints()[0]);
    let ws = tcp_addr(&first.endpoints()[1]);
    serve_check(rs, ws, &unix);
    // A client still connected at shutdown must not keep the listeners alive either.
    let mut lingering = RawClient::connect(rs, Serializer::Json);
    lingering.must_join("realm1");
    first.shutdown_handle().shutdown();
    first.join().expect("first router stops");

    assert_refused(rs);
    assert_refused(ws);
    assert_unix_refused(&unix);
    drop(lingering);

    let second = Router::start(config(shards, rs, ws, &unix))
        .unwrap_or_else(|e| panic!("second router on {rs}, {ws}, {unix:?}: {e}"));
    assert_eq!(tcp_addr(&second.endpoints()[0]), rs);
    assert_eq!(tcp_addr(&second.endpoints()[1]), ws);
    serve_check(rs, ws, &unix);
    second.shutdown_handle().shutdown();
    second.join().expect("second router stops");
    assert_refused(rs);
    assert_refused(ws);
}

#[test]
fn restart_on_same_port_one_shard() {
    restart_on_same_addresses(1);
}

#[test]
fn restart_on_same_port_two_shards() {
    restart_on_same_addresses(2);
}

/// Several start/stop cycles in a row on the same addresses (each cycle leaking would pile up).
#[test]
fn repeated_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unix = dir.path().join("r.sock");
    let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
    let r = Router::start(config(2, any, any, &unix)).expect("router starts");
    let rs = tcp_addr(&r.endpoints()[0]);
    let ws = tcp_addr(&r.endpoints()[1]);
    r.shutdown_handle().shutdown();
    r.join().expect("router stops");
    for round in 0..5 {
        assert_refused(rs);
        let r = Router::start(config(2, rs, ws, &unix))
            .unwrap_or_else(|e| panic!("round {round}: {e}"));
        let mut c = RawClient::connect(rs, Serializer::Json);
        c.must_join("realm1");
        r.shutdown_handle().shutdown();
        r.join().expect("router stops");
    }
    assert_refused(rs);
    assert_refused(ws);
}

/// A start that fails on its second listener must close the first one it had already bound.
#[test]
fn failed_start_frees_bound_listeners() {
    let dir = tempfile::tempdir().expect("tempdir");
    let unix = dir.path().join("s.sock");
    // Something else serves this port, so the router's second listener cannot bind it.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken_addr = taken.local_addr().expect("local addr");
    // Find a free port for the first listener.
    let free = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("local addr")
    };
    let err = match Router::start(config(2, free, taken_addr, &unix)) {
        Ok(_) => panic!("router started on a port served by someone else"),
        Err(e) => e,
    };
    assert!(err.to_string().contains(&taken_addr.to_string()), "{err}");
    assert_refused(free);
    // And the failure did not leave anything that stops a good start on the same port.
    drop(taken);
    let r = Router::start(config(1, free, taken_addr, &unix)).expect("router starts");
    let mut c = RawClient::connect(free, Serializer::Json);
    c.must_join("realm1");
    r.shutdown_handle().shutdown();
    r.join().expect("router stops");
    assert_refused(free);
}
