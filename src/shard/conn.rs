//! The connection driver: the IO half of a session.
//!
//! One task per connection runs TLS (optional), the transport handshake (RawSocket or
//! WebSocket), then the read loop: bytes → frames → messages → the session state machine →
//! the realm's broker/dealer. A second task per session, the writer, drains the session's
//! [`Outbound`] queue, framing many messages per write call. Everything here is generic over the
//! byte stream so TCP, Unix sockets and TLS share one path.

use super::deadlines::{Expired, ReadDeadlines};
use super::handshake::{rawsocket_handshake, websocket_handshake, Accepted, Handshaking};
use super::outbound::{OutFrame, Outbound};
use super::signal::Signal;
use super::Shard;
use crate::codec::{self, Id, Serializer};
use crate::config::{ListenerConfig, ListenerKind};
use crate::metrics::{local_shard, with_local, Limit};
use crate::net::rawsocket::{self, RawFrame};
use crate::net::websocket::{self, Role, WsEvent};
use crate::session::{Session, State};
use bytes::{BufMut, Bytes, BytesMut};
use futures_lite::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::poll_fn;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::Duration;

/// Largest batch of queued frames written in one call.
const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// Messages of one session handled before its reader yields to the shard's other tasks. One
/// read can bring thousands of pipelined messages (256 KiB of 50-byte SUBSCRIBEs: ~5,000);
/// handling them all in one turn stalled every other session of the shard for hundreds of
/// milliseconds (issue 21). 64 keeps a turn well under a millisecond for ordinary messages and
/// costs one yield per 64 messages under load.
///
/// A yield alone is not enough: glommio looks for I/O completions (the neighbours' input) only
/// when its task queue runs empty or its preempt timer fires, 100 ms by default. The shards run
/// with [`PREEMPT_TIMER`] instead, so a busy session yields to its neighbours within about
/// that long.
const INPUT_PER_TURN: usize = 64;

/// The shard executors' preempt timer (see [`INPUT_PER_TURN`]).
pub(super) const PREEMPT_TIMER: Duration = Duration::from_millis(2);

/// The framing a session's transport uses, reader side.
pub(super) enum Deframer {
    Raw(rawsocket::FrameDecoder),
    Ws(Box<websocket::FrameDecoder>),
    /// A batched WebSocket transport: each WebSocket message holds one or more WAMP messages
    /// (binary or JSON framing, see [`websocket::batched`]); those not yet handled wait here.
    /// The JSON separator the peer uses is shared with the writer ([`Framer::WsBatched`]).
    WsBatched(
        Box<websocket::FrameDecoder>,
        bool,
        std::collections::VecDeque<Bytes>,
        Rc<std::cell::Cell<u8>>,
    ),
}

impl Deframer {
    /// Whether the decoder itself holds part of a message (WebSocket fragments); a RawSocket
    /// decoder keeps nothing outside the read buffer.
    fn in_message(&self) -> bool {
        match self {
            Deframer::Raw(_) => false,
            Deframer::Ws(d) | Deframer::WsBatched(d, ..) => d.in_message(),
        }
    }
}

/// The framing a session's transport uses, writer side.
pub(super) enum Framer {
    Raw {
        peer_max: usize,
    },
    Ws(Box<websocket::FrameEncoder>),
    /// A batched WebSocket transport: the messages of one write go out as one batch, JSON ones
    /// ended by the separator the peer uses.
    WsBatched(Box<websocket::FrameEncoder>, Rc<std::cell::Cell<u8>>),
}

/// A session as its shard sees it: identity, serializer, outbound queue and protocol state.
pub struct SessionHandle {
    pub id: Id,
    pub serializer: Serializer,
    pub outbound: Outbound,
    pub core: RefCell<Session>,
    /// Set by the writer when the transport is finished: the reader stops.
    pub done: Signal,
    /// Set to abandon a blocked write (slow consumer disconnected, shutdown deadline).
    pub kill: Signal,
    /// The realm the session joined, once established.
    pub realm: RefCell<Option<codec::Uri>>,
    /// The session as the routing core sees it (built once, at join).
    pub sref: RefCell<Option<crate::routing::SessionRef>>,
    /// Largest message the peer accepts (its RawSocket handshake; WebSocket: no limit). The
    /// shard answers a bigger one with ERROR `wamp.error.payload_size_exceeded` where it can
    /// ([`Shard::too_big_for_peer`](super::Shard)) instead of sending it.
    pub peer_max: usize,
    /// An in-process session ([`super::local`]): it is sent `Message` values, never bytes.
    pub local: bool,
    /// Set at join when the realm enforces nothing on anyone (no authorizer hook, an open
    /// policy): then only a REGISTER needs a decision (`Shard::authorize`).
    pub authz_open: Cell<bool>,
    /// Where the joined realm's counters are in the shard's metrics (`ShardMetrics::realms`), found
    /// once at join instead of by name for every message.
    pub realm_metrics: Cell<Option<usize>>,
}

/// Displays a session's realm for the `realm` log field (see [`crate::logging`]): the realm it
/// joined, or `-`.
///
/// Never panics: it only tries to borrow the session's state and prints `?` if that state is
/// being changed at the moment of logging.
pub struct SessionRealm<'a>(pub &'a SessionHandle);

impl fmt::Display for SessionRealm<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Ok(r) = self.0.realm.try_borrow() {
            if let Some(r) = r.as_ref() {
                return f.write_str(r);
            }
        }
        // Left the realm already (GOODBYE): the protocol state still knows which it was.
        match self.0.core.try_borrow() {
            Ok(core) => f.write_str(core.realm.as_deref().unwrap_or("-")),
            Err(_) => f.write_str("?"),
        }
    }
}

impl SessionHandle {
    /// What the meta API tells about this session beyond its identity (given to the routing
    /// core when the session joins).
    pub fn meta_details(&self) -> crate::routing::SessionDetails {
        crate::routing::SessionDetails {
            authmethod: self.core.borrow().authmethod.clone(),
            authprovider: crate::auth::PROVIDER.into(),
            local: self.local,
            serializer: self.serializer,
        }
    }

    /// `m` as this session's outbound queue takes it: encoded for its serializer, or the value
    /// itself for an in-process session.
    pub fn frame(&self, m: &codec::Message) -> OutFrame {
        if self.local {
            OutFrame::Local(
                std::sync::Arc::new(m.clone()),
                crate::net::inproc::approx_size(m),
            )
        } else {
            OutFrame::Message(codec::encode(self.serializer, m))
        }
    }
}

/// Reads the next bytes into `buf`, through the shard's shared scratch buffer so an idle
/// session holds no read buffer of its own.
pub(super) async fn read_some<R: AsyncRead + Unpin>(
    shard: &Shard,
    r: &mut R,
    buf: &mut BytesMut,
) -> std::io::Result<usize> {
    poll_fn(|cx| {
        let mut scratch = shard.read_scratch.borrow_mut();
        match Pin::new(&mut *r).poll_read(cx, &mut scratch[..]) {
            Poll::Ready(Ok(n)) => {
                keep_read(shard, &scratch[..n], buf);
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    })
    .await
}

/// `recv` without waiting, into `buf` through the shard's scratch buffer: `None` when the
/// socket has nothing now.
fn recv_now(shard: &Shard, fd: RawFd, buf: &mut BytesMut) -> Option<std::io::Result<usize>> {
    let mut scratch = shard.read_scratch.borrow_mut();
    let r = crate::net::sock::recv_now(fd, &mut scratch[..]);
    if let Some(Ok(n)) = r {
        keep_read(shard, &scratch[..n], buf);
    }
    r
}

/// Moves bytes just read into the shared scratch buffer over to the session's `buf`, counted.
fn keep_read(shard: &Shard, read: &[u8], buf: &mut BytesMut) {
    buf.extend_from_slice(read);
    shard.metrics.bytes_in.add(read.len() as u64);
}

/// How many of a shard's sessions may busy-read at once under adaptive spinning. A shard with
/// many sessions whose input comes quickly is saturated, and there each session asking its
/// empty socket is a wasted system call taken from one with input waiting (RPC 64×1 lost up
/// to a fifth of its calls with every session busy-reading; bench/FINDINGS.md, "Adaptive
/// spinning"). A few keep a fast exchange between few sessions free of wake-ups.
const ADAPTIVE_BUSY_READERS: u32 = 4;

/// How often a shard's busy readers have the reactor poll (see [`busy_read`]).
/// 5 µs: a poll with nothing to do costs far less than a try; against 15 µs, RPC 4×1 made
/// 7–17 % more calls and nothing else measured moved beyond noise (bench/FINDINGS.md, "What an
/// unbatched call costs"; when a turn was a timer sleep, 50 µs cost RPC 1×1 a fifth of its
/// calls and 5 µs did no better than 15).
const BUSY_REACTOR_EVERY: Duration = Duration::from_micros(5);

/// Busy read: asks the socket directly, yielding between tries so every other task runs, for
/// up to `window` or until the session ends. `None`: nothing came; the caller waits on the
/// reactor. With adaptive spinning (the default, `RouterConfig::busy_reads`) a session does
/// this only while its last wait ended within `window` (`run_session`): a session whose
/// input comes further apart waits on the reactor at once, as an idle one does.
///
/// A reader that only yielded would starve the reactor (glommio polls its rings only when no
/// task is runnable, or at its preempt timer), holding back every session that waits on it.
/// So every [`BUSY_REACTOR_EVERY`] (`Shard::busy_reactor_due`, shared by the shard's busy
/// readers) the reader whose turn it is has the reactor poll its rings, fire due timers and
/// read the cross-shard channels (glommio's `poll_io_now`, vendored patch 10); the tasks that
/// wakes run when the reader yields. It used to sleep on a 1 µs timer instead, so that the
/// executor would poll once every busy reader slept: ~4–18 µs a turn, during which a message
/// that arrived waited (bench/FINDINGS.md, "Busy reads"; "What an unbatched call costs").
async fn busy_read(
    shard: &Shard,
    handle: &SessionHandle,
    fd: RawFd,
    window: Duration,
    buf: &mut BytesMut,
) -> Option<std::io::Result<usize>> {
    let start = std::time::Instant::now();
    let _busy = BusyReader::enter(shard);
    loop {
        if let Some(r) = recv_now(shard, fd, buf) {
            return Some(r);
        }
        if handle.done.is_set() || handle.outbound.is_closing() {
            return None;
        }
        let now = std::time::Instant::now();
        if now.duration_since(start) >= window {
            return None;
        }
        if now >= shard.busy_reactor_due.get() {
            shard.busy_reactor_due.set(now + BUSY_REACTOR_EVERY);
            // An error here is the rings', which the run loop's next poll meets as well.
            let _ = glommio::executor().poll_io_now();
        }
        futures_lite::future::yield_now().await;
    }
}

/// Counts a session in `Shard::busy_readers` while it busy-reads.
struct BusyReader<'a>(&'a Shard);

impl<'a> BusyReader<'a> {
    fn enter(shard: &'a Shard) -> Self {
        shard.busy_readers.set(shard.busy_readers.get() + 1);
        BusyReader(shard)
    }
}

impl Drop for BusyReader<'_> {
    fn drop(&mut self) {
        let n = &self.0.busy_readers;
        n.set(n.get().saturating_sub(1));
    }
}

/// Runs `fut` with a deadline; None on timeout.
async fn with_timeout<T>(d: Duration, fut: impl std::future::Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        glommio::timer::sleep(d).await;
        None
    })
    .await
}

/// Serves one accepted connection to completion.
pub async fn serve<S>(shard: Rc<Shard>, stream: S, listener: usize, fd: Option<RawFd>)
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let Some(tls) = shard.cfg.listeners.get(listener).map(|c| c.tls.clone()) else {
        return;
    };
    let _guard = shard.connection_guard();
    let handshaking = Handshaking::count(&shard.metrics);
    let over_limit = shard.connections_over_limit();
    let timeout = shard.cfg.limits.handshake_timeout;
    match tls {
        // Boxed so the (large) TLS state does not inflate every plain connection's task.
        Some(tls) => {
            let Some(cfg) = shard.cfg.listeners.get(listener).cloned() else {
                return;
            };
            Box::pin(async move {
                let acceptor = futures_rustls::TlsAcceptor::from(tls);
                match with_timeout(timeout, acceptor.accept(stream)).await {
                    Some(Ok(s)) => {
                        let channel = crate::auth::Channel::from_tls(s.get_ref().1);
                        let start = transport(&shard, s, &cfg, over_limit, channel, handshaking);
                        if let Some(start) = start.await {
                            run_session(shard, start).await;
                        }
                    }
                    Some(Err(e)) => tracing::debug!(shard = shard.id, "TLS handshake failed: {e}"),
                    None => {
                        shard.metrics.limit_exceeded.inc(Limit::HandshakeTimeout);
                        tracing::debug!(shard = shard.id, "TLS handshake timed out")
                    }
                }
            })
            .await
        }
        None => {
            // The handshake (boxed: its states are larger than a session's, and freed when it
            // ends) and then the session: an idle session's task keeps no room for the
            // handshake; what crosses between them is one pointer.
            let start = match shard.cfg.listeners.get(listener) {
                Some(cfg) => {
                    let channel = Default::default();
                    Box::pin(transport(
                        &shard,
                        stream,
                        cfg,
                        over_limit,
                        channel,
                        handshaking,
                    ))
                    .await
                }
                None => None,
            };
            if let Some(mut start) = start {
                start.fd = fd;
                run_session(shard, start).await;
            }
        }
    }
}

/// What a successful transport handshake hands to the session.
struct SessionStart<S> {
    stream: S,
    serializer: Serializer,
    deframer: Deframer,
    framer: Framer,
    leftover: BytesMut,
    channel: crate::auth::Channel,
    /// The socket, for busy reads (plain TCP and Unix streams only).
    fd: Option<RawFd>,
}

/// The RawSocket or WebSocket handshake (or, on a WebSocket listener, plain HTTP long-poll
/// requests, served here); `Some` when a WAMP session is to run on the stream.
async fn transport<S>(
    shard: &Rc<Shard>,
    mut stream: S,
    cfg: &ListenerConfig,
    over_limit: bool,
    mut channel: crate::auth::Channel,
    handshaking: Handshaking,
) -> Option<Box<SessionStart<S>>>
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let timeout = shard.cfg.limits.handshake_timeout;
    let hs = match &cfg.kind {
        ListenerKind::RawSocket => {
            with_timeout(timeout, rawsocket_handshake(shard, &mut stream, over_limit))
                .await
                .map(|n| n.map(Accepted::Session))
        }
        ListenerKind::WebSocket { path } => {
            with_timeout(
                timeout,
                websocket_handshake(shard, &mut stream, path, over_limit, &mut channel),
            )
            .await
        }
    };
    let (serializer, deframer, framer, leftover) = match hs {
        Some(Some(Accepted::Session(n))) => n,
        Some(Some(Accepted::LongPoll(buf))) => {
            // Plain HTTP requests: no session of their own (long-poll sessions count
            // themselves), each request bounded by the long-poll timeouts, not the handshake's.
            drop(handshaking);
            super::longpoll::serve_http(shard.clone(), &mut stream, buf).await;
            let _ = stream.close().await;
            return None;
        }
        hs => {
            if hs.is_none() {
                shard.metrics.limit_exceeded.inc(Limit::HandshakeTimeout);
                tracing::debug!(shard = shard.id, "transport handshake timed out");
            }
            let _ = stream.close().await;
            return None;
        }
    };
    // The session counts itself from here (SessionHandle::open, the first thing
    // `run_session` does, with no await in between).
    drop(handshaking);
    Some(Box::new(SessionStart {
        stream,
        serializer,
        deframer,
        framer,
        leftover,
        channel,
        fd: None,
    }))
}

/// A transport-level input after deframing.
enum Input {
    Message(Bytes),
    Ping(Bytes),
    Close,
}

/// A transport error: the close code to send, why, and the limit it hit if any.
type InputError = (u16, String, Option<Limit>);

fn next_input(d: &mut Deframer, buf: &mut BytesMut) -> Result<Option<Input>, InputError> {
    match d {
        Deframer::Raw(dec) => match dec.decode(buf) {
            Ok(Some(RawFrame::Message(b))) => Ok(Some(Input::Message(b))),
            Ok(Some(RawFrame::Ping(b))) => Ok(Some(Input::Ping(b))),
            Ok(Some(RawFrame::Pong(_))) => next_input(d, buf),
            Ok(None) => Ok(None),
            Err(e) => {
                let limit = matches!(e, rawsocket::FrameError::TooLong { .. })
                    .then_some(Limit::MessageSize);
                Err((1002, e.to_string(), limit))
            }
        },
        Deframer::WsBatched(dec, binary, pending, separator) => loop {
            if let Some(m) = pending.pop_front() {
                return Ok(Some(Input::Message(m)));
            }
            match dec.poll(buf) {
                Ok(Some(WsEvent::Message { data, .. })) => {
                    let mut sep = separator.get();
                    match websocket::batched::split(*binary, &data, &mut sep) {
                        Ok(parts) => {
                            separator.set(sep);
                            pending.extend(parts)
                        }
                        Err(e) => return Err((1007, format!("invalid batch: {e}"), None)),
                    }
                }
                Ok(Some(WsEvent::Ping(b))) => return Ok(Some(Input::Ping(b))),
                Ok(Some(WsEvent::Pong(_))) => continue,
                Ok(Some(WsEvent::Close { .. })) => return Ok(Some(Input::Close)),
                Ok(None) => return Ok(None),
                Err(e) => return Err(ws_error(e)),
            }
        },
        Deframer::Ws(dec) => loop {
            match dec.poll(buf) {
                Ok(Some(WsEvent::Message { data, .. })) => return Ok(Some(Input::Message(data))),
                Ok(Some(WsEvent::Ping(b))) => return Ok(Some(Input::Ping(b))),
                Ok(Some(WsEvent::Pong(_))) => continue,
                Ok(Some(WsEvent::Close { .. })) => return Ok(Some(Input::Close)),
                Ok(None) => return Ok(None),
                Err(e) => return Err(ws_error(e)),
            }
        },
    }
}

/// A WebSocket protocol error as the close code, why, and the limit it hit if any.
fn ws_error(e: websocket::WsError) -> InputError {
    let limit = match e {
        websocket::WsError::MessageTooBig { .. } => Some(Limit::MessageSize),
        websocket::WsError::DecompressedTooBig { .. } => Some(Limit::DecompressedSize),
        _ => None,
    };
    (e.close_code(), e.to_string(), limit)
}

async fn run_session<S>(shard: Rc<Shard>, start: Box<SessionStart<S>>)
where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let SessionStart {
        stream,
        serializer,
        mut deframer,
        framer,
        leftover: mut buf,
        channel,
        fd,
    } = *start;
    let busy = fd.and_then(|fd| shard.cfg.busy_reads().map(|b| (fd, b)));
    // Adaptive busy reads: whether the last wait for input ended within the window.
    let mut came_soon = false;
    let id = shard.new_session_id();
    let peer_max = match &framer {
        Framer::Raw { peer_max } => *peer_max,
        Framer::Ws(_) | Framer::WsBatched(..) => usize::MAX,
    };
    let handle = SessionHandle::open(&shard, id, serializer, peer_max, false, channel);
    if let Framer::Raw { .. } = framer {
        handle.outbound.set_rawsocket();
    }
    let websocket = !matches!(deframer, Deframer::Raw(_));
    handle.core.borrow_mut().transport = Some(shard.transport_details(websocket, serializer));

    let (mut reader, writer) = futures_lite::io::split(stream);
    glommio::spawn_local(writer_task(shard.clone(), writer, handle.clone(), framer)).detach();
    let mut read_at = std::time::Instant::now();
    let mut deadlines = ReadDeadlines::new(&shard.cfg.limits, read_at);

    'read: loop {
        // Handle what is already buffered, yielding every INPUT_PER_TURN messages.
        let mut completed = false;
        let mut this_turn = 0;
        loop {
            if handle.outbound.is_closing() || handle.done.is_set() {
                break 'read;
            }
            match next_input(&mut deframer, &mut buf) {
                Ok(Some(Input::Message(frame))) => {
                    completed = true;
                    match codec::decode(serializer, &frame) {
                        Ok(m) if routes_directly(&shard, &handle, &m) => {
                            shard.metrics.messages_in.inc(m.code());
                            shard.route_at(&handle, m, read_at);
                        }
                        decoded => on_input(&shard, &handle, decoded).await,
                    }
                    this_turn += 1;
                    if this_turn == INPUT_PER_TURN {
                        this_turn = 0;
                        shard.flush_mesh();
                        // Other ready tasks run now; sessions whose input is not yet seen
                        // run once the executor's PREEMPT_TIMER makes it poll for I/O.
                        futures_lite::future::yield_now().await;
                    }
                }
                Ok(Some(Input::Ping(p))) => {
                    // A ping between two fragments of a WebSocket message does not end it.
                    completed |= !deframer.in_message();
                    let _ = handle.outbound.push_unbounded(OutFrame::Pong(p));
                }
                Ok(Some(Input::Close)) => {
                    handle.outbound.close(1000, "");
                    break 'read;
                }
                Ok(None) => break,
                Err((code, why, limit)) => {
                    if let Some(l) = limit {
                        shard.metrics.limit_exceeded.inc(l);
                    }
                    tracing::debug!(
                        shard = shard.id,
                        session = id,
                        realm = %SessionRealm(&handle),
                        "transport error: {why}"
                    );
                    handle.core.borrow_mut().state = State::Closed;
                    handle.outbound.close(code, &why);
                    break 'read;
                }
            }
        }
        deadlines.after_drain(!buf.is_empty() || deframer.in_message(), completed);
        shard.flush_mesh();
        // A producer whose socket always has data would otherwise never return to the
        // executor, starving the writers that drain the queues it fills.
        futures_lite::future::yield_now().await;
        if buf.is_empty() && buf.capacity() > 0 {
            // An idle session keeps no read buffer.
            buf = BytesMut::new();
        }
        pause_while_mesh_backlogged(&shard, &handle).await;
        // Adaptive: ask only after a short wait, and only a few of the shard's sessions at
        // once; the wait is timed from here, busy read or not.
        let waits_from = busy
            .filter(|(_, b)| b.adaptive)
            .map(|_| std::time::Instant::now());
        let asks = busy.filter(|(_, b)| {
            !b.adaptive || (came_soon && shard.busy_readers.get() < ADAPTIVE_BUSY_READERS)
        });
        if let Some((fd, b)) = asks {
            match busy_read(&shard, &handle, fd, b.window, &mut buf).await {
                Some(Ok(n)) if n > 0 => {
                    read_at = std::time::Instant::now();
                    deadlines.on_bytes(read_at);
                    came_soon = true;
                    continue;
                }
                Some(_) => break,
                None => {}
            }
        }
        let due = {
            let core = handle.core.borrow();
            deadlines.next(core.awaiting_welcome(), core.state == State::Established)
        };
        let n = futures_lite::future::or(
            async { Some(read_some(&shard, &mut reader, &mut buf).await.ok()) },
            async {
                done_or_until(&handle, due.map(|(at, _)| at)).await;
                None
            },
        )
        .await;
        match n {
            Some(Some(n)) if n > 0 => {
                read_at = std::time::Instant::now();
                deadlines.on_bytes(read_at);
                if let (Some((_, b)), Some(from)) = (busy, waits_from) {
                    came_soon = read_at.duration_since(from) < b.window;
                }
            }
            None if !handle.done.is_set() => {
                match due.map(|(_, why)| why) {
                    Some(Expired::Ping) => {
                        deadlines.on_ping_sent(std::time::Instant::now());
                        let ping = OutFrame::Ping(Bytes::from_static(b"switchyard"));
                        let _ = handle.outbound.push_unbounded(ping);
                        continue;
                    }
                    Some(Expired::Hello) => hello_timed_out(&shard, &handle),
                    Some(Expired::Frame) => read_timed_out(&shard, &handle, Limit::FrameTimeout),
                    Some(Expired::Idle) => read_timed_out(&shard, &handle, Limit::IdleTimeout),
                    Some(Expired::PingTimeout) => {
                        read_timed_out(&shard, &handle, Limit::PingTimeout)
                    }
                    None => {}
                }
                break;
            }
            _ => break,
        }
    }
    // The transport is finished or closing: leave the realm, let the writer flush and end.
    close_session(&shard, &handle).await;
    tracing::debug!(
        shard = shard.id,
        session = id,
        realm = %SessionRealm(&handle),
        "transport closed"
    );
}

impl SessionHandle {
    /// A new session on `shard` (network or in-process), entered in the shard's session table
    /// and counted.
    pub(super) fn open(
        shard: &Shard,
        id: Id,
        serializer: Serializer,
        peer_max: usize,
        local: bool,
        channel: crate::auth::Channel,
    ) -> Rc<SessionHandle> {
        let handle = Rc::new(SessionHandle {
            id,
            serializer,
            outbound: Outbound::new(shard.cfg.limits.outbound_queue_bytes),
            core: RefCell::new({
                let mut s = Session::new(id, shard.welcome_roles.clone());
                if channel != crate::auth::Channel::default() {
                    s.channel = Some(Box::new(channel));
                }
                s
            }),
            done: Signal::default(),
            kill: Signal::default(),
            realm: RefCell::new(None),
            sref: RefCell::new(None),
            peer_max,
            local,
            authz_open: Cell::new(false),
            realm_metrics: Cell::new(None),
        });
        if let Some(s) = &shard.shedding {
            handle.outbound.report_shedding(id, s.clone());
        }
        shard.sessions.borrow_mut().insert(id, handle.clone());
        shard.metrics.connections.inc();
        tracing::debug!(
            shard = shard.id,
            session = id,
            realm = "-",
            local,
            "transport open"
        );
        handle
    }
}

/// Returns when the session is done or `deadline` (if any) passes.
async fn done_or_until(handle: &SessionHandle, deadline: Option<std::time::Instant>) {
    match deadline {
        Some(at) => {
            let left = at.saturating_duration_since(std::time::Instant::now());
            futures_lite::future::or(handle.done.wait(), glommio::timer::sleep(left)).await
        }
        None => handle.done.wait().await,
    }
}

/// A message took too long to arrive, or a joined session stayed silent: count it and close
/// the transport (WebSocket close 1008 / 1001; a RawSocket connection is simply closed).
fn read_timed_out(shard: &Shard, handle: &SessionHandle, limit: Limit) {
    shard.metrics.limit_exceeded.inc(limit);
    let (code, why) = match limit {
        Limit::IdleTimeout => (1001, "idle timeout"),
        Limit::PingTimeout => (1001, "ping timeout"),
        _ => (1008, "message not received in time"),
    };
    tracing::debug!(
        shard = shard.id,
        session = handle.id,
        realm = %SessionRealm(handle),
        "{why}; closing"
    );
    handle.core.borrow_mut().state = State::Closed;
    handle.outbound.close(code, why);
}

/// Returns when the session is done or, while its HELLO is still awaited, when `deadline`
/// passes (no timer task per session: the reader races this against its next input).
pub(super) async fn done_or_hello_deadline(handle: &SessionHandle, deadline: std::time::Instant) {
    if handle.core.borrow().awaiting_welcome() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        futures_lite::future::or(handle.done.wait(), glommio::timer::sleep(left)).await;
    } else {
        handle.done.wait().await;
    }
}

/// HELLO did not arrive in time: count it and end the session.
pub(super) fn hello_timed_out(shard: &Shard, handle: &Rc<SessionHandle>) {
    shard.metrics.limit_exceeded.inc(Limit::HelloTimeout);
    let mut outputs = Vec::new();
    handle.core.borrow_mut().on_hello_timeout(&mut outputs);
    shard.apply_session_outputs(handle, &mut outputs);
}

/// Real backpressure on producers: while another shard's inbox is far behind, this session's
/// input waits (the shard loop itself never blocks).
pub(super) async fn pause_while_mesh_backlogged(shard: &Shard, handle: &SessionHandle) {
    let mut paused = false;
    while shard.mesh_backlogged() && !handle.done.is_set() {
        if !paused {
            paused = true;
            shard.metrics.backpressure_pauses.inc();
        }
        glommio::timer::sleep(Duration::from_micros(250)).await;
    }
}

/// The session's input ended: leave the realm, let the writer flush and end, uncount it.
pub(super) async fn close_session(shard: &Shard, handle: &SessionHandle) {
    shard.session_gone(handle);
    handle.outbound.close(1000, "");
    handle.done.wait().await;
    shard.metrics.connections.dec();
}

/// Feeds one decoded message (or the decode error) to the session state machine, runs the
/// dynamic authenticator or authorizer it asks for, and applies its outputs. Shared by network
/// and in-process sessions.
pub(super) async fn on_input(
    shard: &Shard,
    handle: &Rc<SessionHandle>,
    decoded: Result<codec::Message, codec::DecodeError>,
) {
    // The shard's spare output list (empty, with room), unless another session waiting below
    // has it: then a new one. A session keeps no list of its own while idle.
    let mut spare = shard.spare_outputs.take();
    let outputs = &mut spare;
    if let Ok(m) = &decoded {
        shard.metrics.messages_in.inc(m.code());
    }
    {
        let mut core = handle.core.borrow_mut();
        match decoded {
            Ok(m) => core.on_message(m, shard, outputs),
            Err(e) => core.on_decode_error(&e, outputs),
        }
    }
    if let Some(req) = super::session::take_dynamic_auth(outputs) {
        // Boxed (rare): an idle session's task would otherwise keep room for its state.
        let result = Box::pin(shard.dynamic_authenticate(&req)).await;
        handle.core.borrow_mut().on_dynamic_auth(result, outputs);
    }
    // At most two decisions per message (`get_events` also needs the right to subscribe).
    for _ in 0..2 {
        let Some(ask) = shard.needs_authorizer(handle, outputs) else {
            break;
        };
        Box::pin(shard.ask_authorizer(ask)).await;
    }
    shard.apply_session_outputs(handle, outputs);
    if spare.capacity() <= super::SPARE_OUTPUTS_MAX {
        shard.spare_outputs.set(spare);
    }
}

/// Whether an input can skip [`on_input`]: the session would only hand it to routing, and no
/// dynamic authorizer has to be asked first (the common case for every request of an
/// established session). The message is then moved straight to routing.
pub(super) fn routes_directly(shard: &Shard, handle: &SessionHandle, m: &codec::Message) -> bool {
    handle.core.borrow().routes_directly(m) && shard.needs_authorizer_for(handle, m).is_none()
}

/// Write buffers of writers whose queue ran dry, kept per shard (next to its spare output and
/// action lists) for the next writer with something to write. A session with nothing to write
/// keeps no buffer (idle memory), yet a busy shard does not allocate and free a buffer and a
/// frame list per write: under RPC load nearly every write empties its queue, and the write
/// buffers (kilobytes) were glibc's large requests that made it consolidate its caches of small
/// blocks (bench/FINDINGS.md, "Boxed variants, write buffers kept, payloads skipped faster").
#[derive(Default)]
pub(crate) struct WriteSpares {
    bufs: Vec<BytesMut>,
    batches: Vec<Vec<OutFrame>>,
    framed: Vec<Vec<u8>>,
}

/// At most this many spare write buffers and frame lists per shard…
const WRITE_SPARES_MAX: usize = 8;
/// …each kept only up to this size (a larger buffer's allocation is amortized by its write).
const WRITE_SPARE_BYTES_MAX: usize = 16 * 1024;
const WRITE_SPARE_FRAMES_MAX: usize = 256;
/// Buffers of messages framed when queued are kept larger: a busy callee's buffer collects a
/// whole batch of invocations between two writes (regrown from 16 KiB, it was copied twice).
const WRITE_SPARE_FRAMED_MAX: usize = 64 * 1024;

impl WriteSpares {
    /// A spare frame list with room, if there is one.
    fn batch(&mut self) -> Vec<OutFrame> {
        self.batches.pop().unwrap_or_default()
    }

    /// A spare write buffer with room, if there is one.
    fn buf(&mut self) -> BytesMut {
        self.bufs.pop().unwrap_or_default()
    }

    /// A spare buffer for messages framed when queued (`Outbound::push_framed`), if any.
    pub(crate) fn framed(&mut self) -> Vec<u8> {
        self.framed.pop().unwrap_or_default()
    }

    /// Keeps a written buffer of framed messages, within the bounds above.
    fn keep_framed(&mut self, mut buf: Vec<u8>) {
        buf.clear();
        let cap = buf.capacity();
        keep_spare(&mut self.framed, buf, cap, WRITE_SPARE_FRAMED_MAX);
    }

    /// Keeps an emptied write buffer and frame list for the next writer, within the bounds
    /// above.
    fn keep(&mut self, mut buf: BytesMut, mut batch: Vec<OutFrame>) {
        buf.clear();
        let cap = buf.capacity();
        keep_spare(&mut self.bufs, buf, cap, WRITE_SPARE_BYTES_MAX);
        batch.clear();
        let cap = batch.capacity();
        keep_spare(&mut self.batches, batch, cap, WRITE_SPARE_FRAMES_MAX);
    }
}

/// Keeps an emptied `spare` of capacity `cap` in `list` if it has room (`0 < cap <= max`) and
/// the list is not full.
fn keep_spare<T>(list: &mut Vec<T>, spare: T, cap: usize, max: usize) {
    if cap > 0 && cap <= max && list.len() < WRITE_SPARES_MAX {
        list.push(spare);
    }
}

/// Drains the outbound queue into the transport until the session closes.
async fn writer_task<W: AsyncWrite + Unpin>(
    shard: Rc<Shard>,
    mut w: W,
    handle: Rc<SessionHandle>,
    mut framer: Framer,
) {
    let mut batch = Vec::new();
    let mut out = BytesMut::new();
    let mut framed = Vec::new();
    loop {
        let close = poll_fn(|cx| {
            if batch.capacity() == 0 && handle.outbound.has_frames() {
                batch = shard.spare_writes.borrow_mut().batch();
            }
            handle
                .outbound
                .poll_take(cx, &mut framed, &mut batch, WRITE_BATCH_BYTES)
        })
        .await;
        if !framed.is_empty() {
            // Messages framed when they were queued (RawSocket): written as they are, before
            // the frames taken with them (which are younger).
            if !write_or_killed(&mut w, &handle, &framed).await {
                break;
            }
            // Back to the shard's spares for the next message queued (here or elsewhere).
            shard
                .spare_writes
                .borrow_mut()
                .keep_framed(std::mem::take(&mut framed));
        }
        if out.capacity() == 0 && !batch.is_empty() {
            out = shard.spare_writes.borrow_mut().buf();
        }
        if let Framer::WsBatched(enc, sep) = &mut framer {
            // One WebSocket message per write for all the WAMP messages taken together.
            let binary = handle.serializer.is_binary();
            let sep = sep.get();
            let mut messages = Vec::new();
            for f in batch.drain(..) {
                match f {
                    OutFrame::Message(b) => {
                        websocket::batched::push(binary, sep, &b, &mut messages)
                    }
                    OutFrame::Ping(b) => websocket::encode_ping(Role::Server, &b, &mut out),
                    OutFrame::Pong(b) => websocket::encode_pong(Role::Server, &b, &mut out),
                    OutFrame::Local(..) => {}
                }
            }
            if !messages.is_empty() {
                ws_message(enc, &handle, binary, &messages, &mut out);
            }
        }
        // Room for the whole batch at once, not a buffer regrown frame by frame.
        out.reserve(batch.iter().map(OutFrame::wire_len_max).sum());
        for f in batch.drain(..) {
            frame_into(&mut framer, &handle, f, &mut out);
        }
        if let Some(c) = &close {
            if let Framer::Ws(_) | Framer::WsBatched(..) = framer {
                websocket::encode_close(Role::Server, Some(c.code), &c.reason, &mut out);
            }
        }
        if !out.is_empty() {
            if !write_or_killed(&mut w, &handle, &out).await {
                break;
            }
            out.clear();
            if out.capacity() > 64 * 1024 || handle.outbound.queued_bytes() == 0 {
                // Nothing more to write: an idle session keeps no write buffer (nor the
                // emptied list of taken frames); the shard keeps them for the next.
                shard
                    .spare_writes
                    .borrow_mut()
                    .keep(std::mem::take(&mut out), std::mem::take(&mut batch));
            }
        }
        if close.is_some() {
            let _ = futures_lite::future::or(
                async {
                    let _ = w.flush().await;
                    let _ = w.close().await;
                },
                glommio::timer::sleep(Duration::from_millis(500)),
            )
            .await;
            break;
        }
    }
    handle.done.set();
}

/// Writes `bytes` whole (counted in the shard's bytes out); false when the write failed or the
/// session was killed meanwhile (a blocked write is abandoned).
async fn write_or_killed<W: AsyncWrite + Unpin>(
    w: &mut W,
    handle: &SessionHandle,
    bytes: &[u8],
) -> bool {
    let ok = futures_lite::future::or(async { w.write_all(bytes).await.is_ok() }, async {
        handle.kill.wait().await;
        false
    })
    .await;
    if ok {
        with_local(|m| m.bytes_out.add(bytes.len() as u64));
    }
    ok
}

fn frame_into(framer: &mut Framer, handle: &SessionHandle, f: OutFrame, out: &mut BytesMut) {
    let separator = match framer {
        Framer::WsBatched(_, sep) => Some(sep.get()),
        _ => None,
    };
    match framer {
        Framer::Raw { peer_max } => {
            let (kind, payload) = match f {
                OutFrame::Message(b) => (rawsocket::FrameKind::Message, b),
                OutFrame::Ping(b) => (rawsocket::FrameKind::Ping, b),
                OutFrame::Pong(b) => (rawsocket::FrameKind::Pong, b),
                // Only in-process sessions are given values.
                OutFrame::Local(..) => return,
            };
            if payload.len() > *peer_max {
                // The shard keeps routed messages this big from reaching the queue; this is
                // the last guard (a session reply such as a WELCOME).
                with_local(|m| m.limit_exceeded.inc(Limit::PeerMessageSize));
                tracing::warn!(
                    shard = local_shard(),
                    session = handle.id,
                    realm = %SessionRealm(handle),
                    "message larger than the peer accepts; not sent"
                );
                return;
            }
            if let Ok(h) = rawsocket::encode_header(kind, payload.len() as u32) {
                out.put_slice(&h);
                out.put_slice(&payload);
            }
        }
        Framer::Ws(enc) | Framer::WsBatched(enc, _) => match f {
            OutFrame::Message(b) => {
                let binary = handle.serializer.is_binary();
                if let Some(sep) = separator {
                    // (The writer batches whole writes; this is a batch of one.)
                    let mut one = Vec::with_capacity(b.len() + 4);
                    websocket::batched::push(binary, sep, &b, &mut one);
                    ws_message(enc, handle, binary, &one, out);
                } else {
                    ws_message(enc, handle, binary, &b, out);
                }
            }
            OutFrame::Ping(b) => websocket::encode_ping(Role::Server, &b, out),
            OutFrame::Pong(b) => websocket::encode_pong(Role::Server, &b, out),
            OutFrame::Local(..) => {}
        },
    }
}

/// One WebSocket data message (compressed if negotiated).
fn ws_message(
    enc: &mut websocket::FrameEncoder,
    handle: &SessionHandle,
    binary: bool,
    data: &[u8],
    out: &mut BytesMut,
) {
    if enc.message(binary, data, out).is_err() {
        tracing::warn!(
            shard = local_shard(),
            session = handle.id,
            realm = %SessionRealm(handle),
            "WebSocket compression failed"
        );
    }
}

#[cfg(test)]
mod task_size {
    use glommio::net::TcpStream;

    fn future_size4<A, B, C, D, F: std::future::Future>(_: fn(A, B, C, D) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    fn future_size2<A, B, F: std::future::Future>(_: fn(A, B) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    /// A connection's task is as large as its largest state for as long as the session lives:
    /// the handshake must not add to what an idle session costs. (Nesting `run_session` inside
    /// the handshake function cost ~830 B per idle session; keeping the handshake's states in
    /// the task ~1 KiB more.)
    #[test]
    fn an_idle_session_task_is_the_session_plus_a_little() {
        let serve = future_size4(super::serve::<TcpStream>);
        let session = future_size2(super::run_session::<TcpStream>);
        assert!(
            serve <= session + 512,
            "conn::serve is {serve} B, run_session {session} B"
        );
        // The read loop's states: rare, large awaits (dynamic authentication, a dynamic
        // authorizer) are boxed so an idle session does not keep room for them (~1 KiB).
        assert!(session <= 2048, "run_session is {session} B");
    }
}
