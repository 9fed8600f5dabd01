//! The HTTP long-poll transport on WebSocket listeners: the IO of [`crate::net::longpoll`].
//!
//! A WAMP session over long-poll outlives any one HTTP request and any one connection, and a
//! client's requests may arrive on connections accepted by different shards. So:
//! - `/open` runs the session on the shard that took it, exactly like an in-process session
//!   (`local::serve_pipe`): the session state machine, hello timeout, authentication, mesh
//!   backpressure and the bounded outbound queue with its slow-consumer policy, with a
//!   [`duplex`] pipe of encoded frames in place of the socket. Frames are decoded and encoded
//!   by the codec exactly as on a WebSocket (one encoding per subscription and serializer).
//! - The pipe's peer end goes into a process-wide registry under the transport id (a mutex
//!   around a map, taken once per HTTP request, never on the messaging path of other
//!   transports), where `/send`, `/receive` and `/close` on any shard find it.
//! - `/send` pushes the body's message(s) into the pipe; it waits (up to the request timeout)
//!   while more than [`UP_LIMIT`] bytes are still untaken by the session, so a client cannot
//!   queue without bound. `/receive` waits up to the request timeout for the next frame (all
//!   pending ones, up to [`BATCH_LIMIT`] bytes, in the batched protocols); the session's
//!   writer only moves frames into the pipe while fewer than the outbound queue limit are
//!   untaken, so a client that stops receiving meets the slow-consumer policy.
//! - A watchdog on the session's shard closes a transport that had no request in progress for
//!   the session timeout (the session ends as if its connection had dropped: testaments are
//!   published, registrations go).
//!
//! HTTP connections are kept alive between requests (HTTP/1.1), each request read within the
//! session timeout; a request the transport cannot take is answered with its status and the
//! connection closed.

use super::conn::read_some;
use super::local::{serve_pipe, PipeSession, Wire};
use super::outbound::OutFrame;
use super::Shard;
use crate::codec::{self, DecodeError, Message, Serializer};
use crate::config::LongPollOptions;
use crate::metrics::Limit;
use crate::net::duplex::{self, PeerEnd};
use crate::net::longpoll::{self as lp, Route};
use crate::net::websocket::batched;
use bytes::{Bytes, BytesMut};
use futures_lite::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bytes a client may have sent that its session has not taken yet; a `/send` beyond it waits.
pub const UP_LIMIT: usize = 1 << 20;
/// Most bytes one batched `/receive` answer carries (at least one message, whatever its size).
pub const BATCH_LIMIT: usize = 1 << 20;

/// The open long-poll transports of the process, by id.
pub struct Registry {
    epoch: Instant,
    map: Mutex<HashMap<String, Arc<Transport>>>,
}

impl Default for Registry {
    fn default() -> Self {
        Registry {
            epoch: Instant::now(),
            map: Mutex::new(HashMap::new()),
        }
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Transport>>> {
        // A panic elsewhere while holding it left the map itself intact.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn get(&self, id: &str) -> Option<Arc<Transport>> {
        self.lock().get(id).cloned()
    }
    fn remove(&self, id: &str) -> Option<Arc<Transport>> {
        self.lock().remove(id)
    }
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// One open transport: the client's end of its session's pipe.
struct Transport {
    peer: PeerEnd<Bytes, Bytes>,
    serializer: Serializer,
    batched: bool,
    /// The JSON batch separator the client used last (answers use the same).
    separator: AtomicU8,
    /// When the last request on it began or ended (ms since the registry's epoch).
    last_seen: AtomicU64,
    /// Requests in progress on it (a transport is never idle while one waits).
    busy: AtomicUsize,
}

/// A request in progress on a transport: counted, and its start and end mark it as seen.
struct Busy<'a>(&'a Transport, &'a Registry);

impl<'a> Busy<'a> {
    fn new(t: &'a Transport, reg: &'a Registry) -> Self {
        t.busy.fetch_add(1, Ordering::AcqRel);
        t.last_seen.store(reg.now_ms(), Ordering::Release);
        Busy(t, reg)
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.last_seen.store(self.1.now_ms(), Ordering::Release);
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Long-poll sessions exchange encoded frames, decoded and encoded by the codec.
struct Frames(Serializer);

impl Wire for Frames {
    type Up = Bytes;
    type Down = Bytes;
    fn input(&self, frame: Bytes) -> Result<Message, DecodeError> {
        codec::decode(self.0, &frame)
    }
    fn output(frame: OutFrame) -> Option<(Bytes, usize)> {
        match frame {
            OutFrame::Message(b) => {
                let n = b.len();
                Some((b, n))
            }
            _ => None,
        }
    }
}

/// An answer: status, content type (`None`: an error text or nothing), body; and whether
/// the connection must close after it.
struct Answer {
    status: u16,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    close: bool,
}

impl Answer {
    fn ok(content_type: &'static str, body: Vec<u8>) -> Self {
        Answer {
            status: 200,
            content_type: Some(content_type),
            body,
            close: false,
        }
    }
    fn empty() -> Self {
        Answer {
            status: 204,
            content_type: None,
            body: Vec::new(),
            close: false,
        }
    }
    fn error(status: u16, text: impl Into<String>) -> Self {
        Answer {
            status,
            content_type: None,
            body: text.into().into_bytes(),
            close: false,
        }
    }
    fn closing(mut self) -> Self {
        self.close = true;
        self
    }
}

/// Serves long-poll requests on one HTTP connection until it closes or asks to. `buf` holds
/// what the listener already read (at least the first request's head).
pub(super) async fn serve_http<S>(shard: Rc<Shard>, stream: &mut S, mut buf: BytesMut)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let Some(opts) = shard.cfg.transports.longpoll.clone() else {
        return;
    };
    loop {
        let (req, used) = loop {
            match lp::parse_request(&buf, &opts.path) {
                Ok(Some(r)) => break r,
                Ok(None) => {
                    let more = futures_lite::future::or(
                        async { Some(read_some(&shard, stream, &mut buf).await) },
                        async {
                            glommio::timer::sleep(opts.session_timeout).await;
                            None
                        },
                    )
                    .await;
                    if !matches!(more, Some(Ok(n)) if n > 0) {
                        return;
                    }
                }
                Err(e) => {
                    let reply =
                        lp::response(e.status(), None, None, e.to_string().as_bytes(), false);
                    let _ = stream.write_all(&reply).await;
                    return;
                }
            }
        };
        let _ = buf.split_to(used);
        let origin = req.origin.as_deref();
        let limit = match req.route {
            Route::Send(_) => shard.cfg.limits.max_message_size_ws,
            _ => lp::MAX_OPEN_BODY,
        };
        if req.content_length > limit {
            if let Route::Send(id) = &req.route {
                // As a WebSocket message over the limit ends its session, so does this.
                shard.metrics.limit_exceeded.inc(Limit::MessageSize);
                if let Some(t) = shard.shared.longpoll.remove(id) {
                    t.peer.close();
                }
            }
            let text = format!("request body larger than {limit} bytes");
            let reply = lp::response(413, origin, None, text.as_bytes(), false);
            let _ = stream.write_all(&reply).await;
            return;
        }
        // The body, read within the same bound as a head.
        let deadline = Instant::now() + opts.session_timeout;
        while buf.len() < req.content_length {
            let left = deadline.saturating_duration_since(Instant::now());
            let more = futures_lite::future::or(
                async { Some(read_some(&shard, stream, &mut buf).await) },
                async {
                    glommio::timer::sleep(left).await;
                    None
                },
            )
            .await;
            if !matches!(more, Some(Ok(n)) if n > 0) {
                return;
            }
        }
        let body = buf.split_to(req.content_length).freeze();
        let answer = answer(&shard, &opts, &req, body).await;
        let keep_alive = req.keep_alive && !answer.close;
        let reply = lp::response(
            answer.status,
            origin,
            answer.content_type,
            &answer.body,
            keep_alive,
        );
        if stream.write_all(&reply).await.is_err() || !keep_alive {
            return;
        }
    }
}

async fn answer(
    shard: &Rc<Shard>,
    opts: &LongPollOptions,
    req: &lp::Request,
    body: Bytes,
) -> Answer {
    if req.method == "OPTIONS" {
        return Answer::empty();
    }
    if req.method != "POST" {
        return Answer::error(405, "long-poll endpoints take POST").closing();
    }
    let reg = &shard.shared.longpoll;
    let id = match &req.route {
        Route::Open => return open(shard, opts, body),
        Route::Unknown => return Answer::error(404, "no long-poll endpoint at this path"),
        Route::Send(id) | Route::Receive(id) | Route::Close(id) => id,
    };
    let Some(t) = reg.get(id) else {
        return Answer::error(404, "no such long-poll transport (closed or never opened)");
    };
    let _busy = Busy::new(&t, reg);
    match &req.route {
        Route::Send(_) => send(&t, reg, id, opts, body).await,
        Route::Receive(_) => receive(&t, reg, id, opts).await,
        _ => {
            reg.remove(id);
            t.peer.close();
            Answer::empty()
        }
    }
}

/// `/open`: a new session on this shard.
fn open(shard: &Rc<Shard>, opts: &LongPollOptions, body: Bytes) -> Answer {
    if shard.shutting_down.get() {
        return Answer::error(503, "the router is shutting down");
    }
    if shard.connections_over_limit() {
        shard.metrics.limit_exceeded.inc(Limit::Connections);
        return Answer::error(503, "connection limit reached");
    }
    let supported = shard.ws_subprotocols();
    let protocol = match lp::choose_protocol(&body, &supported) {
        Ok(p) => p,
        Err(e) => return Answer::error(400, e.to_string()),
    };
    let batched = protocol.ends_with(batched::SUFFIX);
    let serializer = match Serializer::from_subprotocol(protocol.trim_end_matches(batched::SUFFIX))
    {
        Some(Serializer::Ubjson) => shard.ubjson(),
        Some(s) => s,
        None => return Answer::error(400, "unknown protocol"),
    };
    let (peer, end) = duplex::pair::<Bytes, Bytes>();
    let id = lp::new_transport_id();
    let reg = &shard.shared.longpoll;
    let t = Arc::new(Transport {
        peer,
        serializer,
        batched,
        separator: AtomicU8::new(batched::RECORD_SEPARATOR),
        last_seen: AtomicU64::new(reg.now_ms()),
        busy: AtomicUsize::new(0),
    });
    reg.lock().insert(id.clone(), t.clone());
    let setup = PipeSession {
        serializer: Some(serializer),
        transport: Some(shard.transport_details_for("longpoll", serializer, batched)),
    };
    glommio::spawn_local(serve_pipe(shard.clone(), end, Frames(serializer), setup)).detach();
    shard.metrics.longpoll_transports.inc();
    glommio::spawn_local(watchdog(shard.clone(), id.clone(), t, opts.session_timeout)).detach();
    tracing::debug!(shard = shard.id, protocol, "long-poll transport opened");
    Answer::ok(
        "application/json; charset=utf-8",
        lp::open_reply(protocol, &id),
    )
}

/// `/send`: the body's message(s) to the session.
async fn send(
    t: &Transport,
    reg: &Registry,
    id: &str,
    opts: &LongPollOptions,
    body: Bytes,
) -> Answer {
    if body.is_empty() {
        return Answer::error(400, "empty body: send carries a WAMP message");
    }
    let frames = if t.batched {
        let mut sep = t.separator.load(Ordering::Relaxed);
        match batched::split(t.serializer.is_binary(), &body, &mut sep) {
            Ok(f) => {
                t.separator.store(sep, Ordering::Relaxed);
                f
            }
            Err(e) => {
                // As a bad batch closes a batched WebSocket (1007), it ends the transport.
                reg.remove(id);
                t.peer.close();
                return Answer::error(400, format!("invalid batch: {e}"));
            }
        }
    } else {
        vec![body]
    };
    // Backpressure: wait while the session is behind (it pauses its input while the mesh is
    // backlogged, as a network session stops reading its socket). Always room for one send
    // when nothing is pending.
    let incoming: usize = frames.iter().map(Bytes::len).sum();
    let deadline = Instant::now() + opts.request_timeout;
    while t.peer.pending_bytes() > 0 && t.peer.pending_bytes() + incoming > UP_LIMIT {
        if Instant::now() >= deadline {
            return Answer::error(503, "the session is not taking messages; retry later");
        }
        glommio::timer::sleep(Duration::from_millis(1)).await;
    }
    for f in frames {
        let n = f.len();
        if t.peer.send(f, n).is_err() {
            return Answer::error(404, "the long-poll transport is closed");
        }
    }
    Answer::empty()
}

/// `/receive`: the next message(s), or nothing within the request timeout.
async fn receive(t: &Transport, reg: &Registry, id: &str, opts: &LongPollOptions) -> Answer {
    let first = futures_lite::future::or(async { Some(t.peer.recv().await) }, async {
        glommio::timer::sleep(opts.request_timeout).await;
        None
    })
    .await;
    let frame = match first {
        None => return Answer::empty(),
        Some(None) => {
            // The session ended and everything it sent was received.
            reg.remove(id);
            return Answer::error(410, "the session of this long-poll transport has ended");
        }
        Some(Some(f)) => f,
    };
    let ct = lp::content_type(t.serializer);
    if !t.batched {
        return Answer::ok(ct, frame.to_vec());
    }
    let binary = t.serializer.is_binary();
    let sep = t.separator.load(Ordering::Relaxed);
    let mut out = Vec::with_capacity(frame.len() + 8);
    batched::push(binary, sep, &frame, &mut out);
    while out.len() < BATCH_LIMIT {
        match t.peer.try_recv() {
            Some(Some(f)) => batched::push(binary, sep, &f, &mut out),
            _ => break,
        }
    }
    Answer::ok(ct, out)
}

/// Closes the transport once no request was in progress for `timeout`, or once `/close` took
/// it out of the registry; ends with the session. Uncounts it from the shard's gauge.
async fn watchdog(shard: Rc<Shard>, id: String, t: Arc<Transport>, timeout: Duration) {
    watch(&shard, &id, &t, timeout).await;
    shard.metrics.longpoll_transports.dec();
}

async fn watch(shard: &Shard, id: &str, t: &Transport, timeout: Duration) {
    let tick = (timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let timeout_ms = timeout.as_millis() as u64;
    let reg = &shard.shared.longpoll;
    loop {
        glommio::timer::sleep(tick).await;
        if reg.get(id).is_none() {
            t.peer.close();
            return;
        }
        let idle = t.busy.load(Ordering::Acquire) == 0
            && reg
                .now_ms()
                .saturating_sub(t.last_seen.load(Ordering::Acquire))
                > timeout_ms;
        if idle || shard.shutting_down.get() && t.peer.is_closed_by_router() {
            reg.remove(id);
            t.peer.close();
            if idle {
                tracing::debug!(shard = shard.id, "long-poll transport abandoned; closed");
            }
            return;
        }
    }
}
