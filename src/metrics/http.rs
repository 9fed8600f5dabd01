//! A tiny HTTP/1.1 responder for `/metrics` and `/health`, on its own std threads.
//!
//! It never runs on a shard: the accept loop is one std thread with blocking `std::net`, and
//! each connection is answered on a short-lived thread. One request per connection
//! (`Connection: close`).
//!
//! Why health probes keep answering when someone holds many idle connections open (the port is
//! often bound on `0.0.0.0` for Kubernetes probes, so anyone who reaches it can try):
//!
//! - **Bounded per-request time.** A request head must be complete within [`REQUEST_DEADLINE`]
//!   of the accept (one deadline for the whole head, not a timeout per `read`, so a client
//!   dripping a byte at a time cannot stretch it); the response write has its own timeout.
//! - **Enough concurrency.** Up to [`MAX_CLIENTS`] connections are served at once.
//! - **Idle connections shed first.** When all slots are taken, the accept loop does not turn
//!   the new connection away: it shuts down the oldest connection that has not finished sending
//!   its request head yet (an idle or slow peer; its thread's blocked `read` then returns) and
//!   serves the new one. Connections already being answered are never shed. Only when every
//!   slot is busy writing a response is the new connection closed.

use super::{prometheus, RouterMetrics};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Connections served at the same time (each is one short-lived thread).
pub const MAX_CLIENTS: usize = 64;
/// Largest request head accepted.
const MAX_REQUEST: usize = 8 * 1024;
/// Time from accept to a complete request head.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
/// Time allowed for writing the response.
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves `metrics` on `listener` from a new thread named `metrics-http`.
pub fn spawn(
    listener: TcpListener,
    metrics: Arc<RouterMetrics>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || serve(listener, metrics))
}

/// The connections being served, by accept order. A connection still reading its request head
/// keeps a clone of its socket here so the accept loop can shed it; the entry's socket is taken
/// out (`None`) once the head is complete, which makes it unsheddable.
#[derive(Default)]
struct Slots {
    next: u64,
    live: BTreeMap<u64, Option<TcpStream>>,
}

impl Slots {
    /// Takes a slot for a new connection, shedding the oldest one still reading its head if all
    /// are taken. None: every slot is busy answering.
    fn admit(&mut self, reading: Option<TcpStream>) -> Option<u64> {
        if self.live.len() >= MAX_CLIENTS {
            let oldest_reading = self
                .live
                .iter_mut()
                .find_map(|(k, s)| s.take().map(|s| (*k, s)))?;
            let _ = oldest_reading.1.shutdown(std::net::Shutdown::Both);
            self.live.remove(&oldest_reading.0);
        }
        let key = self.next;
        self.next += 1;
        self.live.insert(key, reading);
        Some(key)
    }
}

/// Releases the slot when the connection's thread ends (however it ends).
struct SlotGuard {
    slots: Arc<Mutex<Slots>>,
    key: u64,
}

impl SlotGuard {
    /// The request head is in: this connection may no longer be shed.
    fn answering(&self) {
        if let Ok(mut s) = self.slots.lock() {
            if let Some(e) = s.live.get_mut(&self.key) {
                *e = None;
            }
        }
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        if let Ok(mut s) = self.slots.lock() {
            s.live.remove(&self.key);
        }
    }
}

fn serve(listener: TcpListener, metrics: Arc<RouterMetrics>) {
    let slots = Arc::new(Mutex::new(Slots::default()));
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("metrics: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let accepted = Instant::now();
        let key = {
            let Ok(mut s) = slots.lock() else { return };
            s.admit(stream.try_clone().ok())
        };
        let Some(key) = key else {
            // Every slot is writing a response; this one is closed (dropped) at once.
            continue;
        };
        let guard = SlotGuard {
            slots: slots.clone(),
            key,
        };
        let metrics = metrics.clone();
        // On a failed spawn the closure (and the guard in it) is dropped, freeing the slot.
        let _ = std::thread::Builder::new()
            .name("metrics-conn".into())
            .spawn(move || {
                let _ = answer(stream, &metrics, accepted, &guard);
            });
    }
}

/// A response: status line, content type, body.
pub struct Response {
    pub status: u16,
    pub reason: &'static str,
    pub content_type: &'static str,
    pub body: String,
}

/// Routes one request (method, path) to its response.
pub fn respond(method: &str, path: &str, metrics: &RouterMetrics) -> Response {
    let text = |status, reason, body: &str| Response {
        status,
        reason,
        content_type: "text/plain; charset=utf-8",
        body: body.to_owned(),
    };
    if method != "GET" && method != "HEAD" {
        return text(405, "Method Not Allowed", "GET or HEAD only\n");
    }
    let path = path.split('?').next().unwrap_or(path);
    match path {
        "/metrics" => Response {
            status: 200,
            reason: "OK",
            content_type: prometheus::CONTENT_TYPE,
            body: prometheus::render(metrics),
        },
        // Liveness: a degraded cluster node is alive (it serves its local sessions).
        "/health" | "/healthz" => match (metrics.health(), metrics.degraded()) {
            (Ok(()), None) => text(200, "OK", "ok\n"),
            (Ok(()), Some(why)) => text(200, "OK", &format!("ok, {why}\n")),
            (Err(why), _) => text(503, "Service Unavailable", &format!("{why}\n")),
        },
        // Readiness: also not ready while degraded.
        "/ready" | "/readyz" => match metrics.health().err().or_else(|| metrics.degraded()) {
            None => text(200, "OK", "ok\n"),
            Some(why) => text(503, "Service Unavailable", &format!("{why}\n")),
        },
        _ => text(404, "Not Found", "try /metrics or /health\n"),
    }
}

fn answer(
    mut stream: TcpStream,
    metrics: &RouterMetrics,
    accepted: Instant,
    slot: &SlotGuard,
) -> std::io::Result<()> {
    let deadline = accepted + REQUEST_DEADLINE;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let (method, path) = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        stream.set_read_timeout(Some(left))?;
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        match req.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                break (
                    req.method.unwrap_or("").to_owned(),
                    req.path.unwrap_or("").to_owned(),
                )
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_REQUEST => continue,
            _ => {
                let _ = stream.write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                return Ok(());
            }
        }
    };
    slot.answering();
    let r = respond(&method, &path, metrics);
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n",
        r.status,
        r.reason,
        r.content_type,
        r.body.len()
    );
    stream.write_all(head.as_bytes())?;
    if method != "HEAD" {
        stream.write_all(r.body.as_bytes())?;
    }
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{ShardMetrics, ShardState};
    use std::time::Instant;

    fn metrics() -> (Arc<RouterMetrics>, Arc<ShardMetrics>) {
        let epoch = Instant::now();
        let s = Arc::new(ShardMetrics::new(0, &["realm1"], epoch));
        let m = Arc::new(RouterMetrics {
            shards: vec![s.clone()],
            started: epoch,
            mesh_backlog: Box::new(|_| 0),
            cluster: None,
        });
        (m, s)
    }

    fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_metrics_and_health_over_http() {
        let (m, s) = metrics();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        spawn(l, m).unwrap();
        let r = get(addr, "/health");
        assert!(r.starts_with("HTTP/1.1 503"), "{r}");
        s.set_state(ShardState::Running);
        s.heartbeat();
        let r = get(addr, "/health");
        assert!(r.starts_with("HTTP/1.1 200 OK"), "{r}");
        assert!(r.ends_with("\r\n\r\nok\n"), "{r}");
        let r = get(addr, "/metrics?x=1");
        assert!(r.contains("Content-Type: text/plain; version=0.0.4"), "{r}");
        assert!(r.contains("switchyard_shard_up{shard=\"0\"} 1"), "{r}");
        assert!(get(addr, "/nope").starts_with("HTTP/1.1 404"));
    }

    #[test]
    fn rejects_other_methods_and_garbage() {
        let (m, _) = metrics();
        assert_eq!(respond("POST", "/metrics", &m).status, 405);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        spawn(l, m).unwrap();
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"\x00\x01garbage\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    }
}
