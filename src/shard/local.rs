//! In-process sessions: the shard side of [`crate::net::inproc`].
//!
//! [`LocalConnector::connect`] makes a pipe and sends its router end to a shard (round-robin)
//! as [`ShardMsg::LocalConn`]; the shard runs `serve`, the in-process twin of the network
//! connection driver: the same session state machine, authentication, authorization, meta API,
//! hello timeout and mesh backpressure, with `Message` values in place of frames. Each message
//! from the client first passes [`inproc::validate`], the checks decoding makes on a network
//! session (IDs, reason URIs, already-encoded payloads), so a bad one meets the same protocol
//! violation handling and never reaches another peer. Outgoing
//! messages reach the session's bounded [`Outbound`](super::outbound::Outbound) queue as
//! `OutFrame::Local` values (see `SessionHandle::frame`), and a writer task moves them into the
//! pipe while the client has credit, so the slow-consumer policy applies unchanged.

use super::conn::{
    close_session, done_or_hello_deadline, hello_timed_out, on_input, pause_while_mesh_backlogged,
    routes_directly, SessionHandle,
};
use super::mesh::MeshSenders;
use super::outbound::OutFrame;
use super::{Shard, ShardMsg};
use crate::codec::{DecodeError, Message, Serializer};
use crate::metrics::Limit;
use crate::net::duplex::ServerEnd;
use crate::net::inproc::{self, LocalTransport, RouterEnd};
use std::future::poll_fn;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Messages taken from the client per turn before the shard flushes the mesh and yields.
const READ_BATCH: usize = 64;
/// Messages moved into the pipe per writer turn, at most.
const WRITE_BATCH_BYTES: usize = 256 * 1024;

/// Why an in-process connection could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalConnectError {
    #[error("the router has stopped")]
    RouterStopped,
}

/// Opens in-process sessions to a running router: `Send + Sync + Clone`, so any thread of the
/// embedding application can hold one (see [`super::Router::local_connector`]).
#[derive(Clone)]
pub struct LocalConnector {
    senders: MeshSenders<ShardMsg>,
    next: Arc<AtomicUsize>,
}

impl LocalConnector {
    pub(super) fn new(senders: MeshSenders<ShardMsg>) -> Self {
        LocalConnector {
            senders,
            next: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Opens a transport to one of the router's shards (round-robin). The session starts when
    /// the client sends HELLO; if the router stops before serving it, `recv` ends with `None`
    /// or the client's join times out.
    pub fn connect(&self) -> Result<LocalTransport, LocalConnectError> {
        let n = self.senders.len();
        if n == 0 {
            return Err(LocalConnectError::RouterStopped);
        }
        let shard = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let (client, end) = inproc::pipe();
        if !self
            .senders
            .send_batch(shard, vec![ShardMsg::LocalConn { end }])
        {
            return Err(LocalConnectError::RouterStopped);
        }
        Ok(client)
    }
}

impl std::fmt::Debug for LocalConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalConnector")
            .field("shards", &self.senders.len())
            .finish()
    }
}

/// What a session served over a [`crate::net::duplex`] pipe exchanges with its peer: `Up` items become
/// messages (decoded or checked), outgoing frames become `Down` items with their sizes.
pub(super) trait Wire: 'static {
    type Up: 'static;
    type Down: 'static;
    /// The message an item from the peer carries, or why it is not one.
    fn input(&self, up: Self::Up) -> Result<Message, DecodeError>;
    /// The item (and its size for the credit) a queued frame becomes; `None`: not sent
    /// (transport keep-alives, which a pipe does not need).
    fn output(frame: OutFrame) -> Option<(Self::Down, usize)>;
}

/// In-process sessions: `Message` values, checked as decoding would have checked them.
pub(super) struct InProc;

impl Wire for InProc {
    type Up = Message;
    type Down = Arc<Message>;
    fn input(&self, m: Message) -> Result<Message, DecodeError> {
        // What decoding checks on a network session (the message was built in memory).
        inproc::validate(&m).map(|()| m)
    }
    fn output(frame: OutFrame) -> Option<(Arc<Message>, usize)> {
        match frame {
            OutFrame::Local(m, size) => Some((m, size)),
            _ => None,
        }
    }
}

/// How a session over a pipe starts: its serializer (`None`: an in-process session, sent
/// `Message` values), the transport facts for WELCOME and the meta API.
pub(super) struct PipeSession {
    pub serializer: Option<Serializer>,
    pub transport: Option<Rc<crate::codec::Value>>,
}

/// Serves one in-process session to completion.
pub(super) async fn serve(shard: Rc<Shard>, end: RouterEnd) {
    let setup = PipeSession {
        serializer: None,
        transport: None,
    };
    serve_pipe(shard, end, InProc, setup).await
}

/// Serves one session over a pipe to completion: the session state machine, hello timeout,
/// mesh backpressure and outbound queue of a network session, with the pipe in place of the
/// socket.
pub(super) async fn serve_pipe<W: Wire>(
    shard: Rc<Shard>,
    end: ServerEnd<W::Up, W::Down>,
    wire: W,
    setup: PipeSession,
) {
    if shard.shutting_down.get() {
        return;
    }
    let _guard = shard.connection_guard();
    if shard.connections_over_limit() {
        shard.metrics.limit_exceeded.inc(Limit::Connections);
        return;
    }
    let end = Rc::new(end);
    let id = shard.new_session_id();
    let handle = SessionHandle::open(
        &shard,
        id,
        // In process: nominal, nothing is encoded (meta reports the session as in-process).
        setup.serializer.unwrap_or(Serializer::MsgPack),
        usize::MAX,
        setup.serializer.is_none(),
        Default::default(),
    );
    handle.core.borrow_mut().transport = setup.transport;
    glommio::spawn_local(writer::<W>(
        end.clone(),
        handle.clone(),
        shard.cfg.limits.outbound_queue_bytes,
    ))
    .detach();

    let hello_deadline = Instant::now() + shard.cfg.limits.hello_timeout;
    'read: loop {
        let first = futures_lite::future::or(async { Some(end.recv().await) }, async {
            done_or_hello_deadline(&handle, hello_deadline).await;
            None
        })
        .await;
        let mut next = match first {
            Some(Some(m)) => Some(m),
            None if !handle.done.is_set() => {
                hello_timed_out(&shard, &handle);
                break;
            }
            _ => break,
        };
        let mut taken = 0;
        while let Some(m) = next.take() {
            if handle.outbound.is_closing() || handle.done.is_set() {
                break 'read;
            }
            match wire.input(m) {
                Ok(m) if routes_directly(&shard, &handle, &m) => {
                    shard.metrics.messages_in.inc(m.code());
                    shard.route(&handle, m);
                }
                input => on_input(&shard, &handle, input).await,
            }
            taken += 1;
            if taken < READ_BATCH {
                next = end.try_recv();
            }
        }
        shard.flush_mesh();
        futures_lite::future::yield_now().await;
        pause_while_mesh_backlogged(&shard, &handle).await;
    }
    close_session(&shard, &handle).await;
    tracing::debug!(shard = shard.id, session = id, "pipe transport closed");
}

/// Moves queued messages into the pipe while the peer has credit; closes the router end when
/// the session's queue is closed and drained, the session is killed, or the peer is gone.
async fn writer<W: Wire>(
    end: Rc<ServerEnd<W::Up, W::Down>>,
    handle: Rc<SessionHandle>,
    credit: usize,
) {
    let mut batch = Vec::new();
    loop {
        let ready = futures_lite::future::or(
            async {
                poll_fn(|cx| end.poll_credit(cx, credit.max(1))).await;
                true
            },
            async {
                handle.kill.wait().await;
                false
            },
        )
        .await;
        if !ready || end.peer_closed() {
            break;
        }
        let close = futures_lite::future::or(
            async {
                Some(
                    poll_fn(|cx| {
                        handle.outbound.poll_take(
                            cx,
                            &mut Vec::new(),
                            &mut batch,
                            WRITE_BATCH_BYTES,
                        )
                    })
                    .await,
                )
            },
            async {
                handle.kill.wait().await;
                None
            },
        )
        .await;
        let Some(close) = close else { break };
        for f in batch.drain(..) {
            if let Some((item, size)) = W::output(f) {
                end.send(item, size);
            }
        }
        if close.is_some() {
            break;
        }
    }
    end.close();
    handle.done.set();
}
