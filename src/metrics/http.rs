//! A tiny HTTP/1.1 responder for `/metrics` and `/health`, on its own std threads.
//!
//! It never runs on a shard: the accept loop is one std thread with blocking `std::net`, and
//! each connection is answered on a short-lived thread (at most [`MAX_CLIENTS`] at once, the
//! rest are closed) so one slow scraper cannot hold up a health probe. Every read and write
//! has a timeout; one request per connection (`Connection: close`).

use super::{prometheus, RouterMetrics};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Connections answered at the same time; more are closed at once.
pub const MAX_CLIENTS: usize = 16;
/// Largest request head accepted.
const MAX_REQUEST: usize = 8 * 1024;
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// Serves `metrics` on `listener` from a new thread named `metrics-http`.
pub fn spawn(
    listener: TcpListener,
    metrics: Arc<RouterMetrics>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("metrics-http".into())
        .spawn(move || serve(listener, metrics))
}

fn serve(listener: TcpListener, metrics: Arc<RouterMetrics>) {
    let busy = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("metrics: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if busy.fetch_add(1, Ordering::Relaxed) >= MAX_CLIENTS {
            busy.fetch_sub(1, Ordering::Relaxed);
            continue;
        }
        let metrics = metrics.clone();
        let busy2 = busy.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-conn".into())
            .spawn(move || {
                let _ = answer(stream, &metrics);
                busy2.fetch_sub(1, Ordering::Relaxed);
            });
        if spawned.is_err() {
            busy.fetch_sub(1, Ordering::Relaxed);
        }
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
        "/health" | "/healthz" | "/ready" | "/readyz" => match metrics.health() {
            Ok(()) => text(200, "OK", "ok\n"),
            Err(why) => text(503, "Service Unavailable", &format!("{why}\n")),
        },
        _ => text(404, "Not Found", "try /metrics or /health\n"),
    }
}

fn answer(mut stream: TcpStream, metrics: &RouterMetrics) -> std::io::Result<()> {
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let (method, path) = loop {
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
