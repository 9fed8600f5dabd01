//! The in-process transport: a session between a router and a client in the same process,
//! exchanging [`Message`] values with no socket and no serialization.
//!
//! A [`pipe`] has two ends. The client end, [`LocalTransport`], is `Send` and can live on any
//! thread (typically the application's own glommio executor); the router end, [`RouterEnd`],
//! is handed to a shard through the mesh (see `shard::LocalConnector`) and served there by
//! `shard::local`, which feeds the messages to the same session state machine, authorization,
//! meta API and routing as a network session.
//!
//! Each direction is a lock-free crossbeam channel plus an `AtomicWaker` for the waiting side,
//! the same construction as the cross-shard mesh. Flow control:
//! - Router → client is bounded in bytes: the shard moves messages from the session's outbound
//!   queue into the pipe only while fewer than its limit are in flight (estimated sizes,
//!   [`approx_size`]), and the client returns credit as it receives. A client that stops
//!   receiving therefore fills the outbound queue and meets the slow-consumer policy exactly as
//!   a network client would.
//! - Client → router is not bounded here: the client is code of the embedding application, and
//!   the shard takes its messages at its own pace (pausing, like a network session, while the
//!   mesh is backlogged). A client that sends without end grows its own queue.
//!
//! Either end closing is seen by the other: [`LocalTransport::recv`] returns `None` once the
//! router side closed and everything sent before was received; the shard ends the session when
//! the client closed or dropped every clone of its end.

use crate::codec::{self, DecodeError, Message, Payload, MAX_ID};
use atomic_waker::AtomicWaker;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// A message for the client with its estimated size (credit returned on receipt). Shared by
/// the local recipients of one fan-out; see [`unshare`].
type Sized = (Arc<Message>, usize);

/// The message itself: taken as is by its last holder (usually the only one), copied otherwise
/// (on the receiving client's thread, not the shard's).
fn unshare(m: Arc<Message>) -> Message {
    Arc::try_unwrap(m).unwrap_or_else(|shared| (*shared).clone())
}

/// The state both ends share.
struct Pipe {
    to_client: (Sender<Sized>, Receiver<Sized>),
    to_router: (Sender<Message>, Receiver<Message>),
    /// The client's receiving task.
    client_waker: AtomicWaker,
    /// The shard's reading task (messages from the client, or the client closed).
    router_rx_waker: AtomicWaker,
    /// The shard's writing task (credit returned, or the client closed).
    credit_waker: AtomicWaker,
    /// Estimated bytes sent to the client and not yet received by it.
    in_flight: AtomicUsize,
    client_closed: AtomicBool,
    router_closed: AtomicBool,
}

impl Pipe {
    fn close_client(&self) {
        self.client_closed.store(true, Ordering::Release);
        self.router_rx_waker.wake();
        self.credit_waker.wake();
    }
    fn close_router(&self) {
        self.router_closed.store(true, Ordering::Release);
        self.client_waker.wake();
    }
}

/// The sending end is gone: nothing more can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the in-process transport is closed")]
pub struct Closed;

/// Creates a connected pair of ends.
pub fn pipe() -> (LocalTransport, RouterEnd) {
    let p = Arc::new(Pipe {
        to_client: crossbeam_channel::unbounded(),
        to_router: crossbeam_channel::unbounded(),
        client_waker: AtomicWaker::new(),
        router_rx_waker: AtomicWaker::new(),
        credit_waker: AtomicWaker::new(),
        in_flight: AtomicUsize::new(0),
        client_closed: AtomicBool::new(false),
        router_closed: AtomicBool::new(false),
    });
    (
        LocalTransport(Arc::new(ClientSide(p.clone()))),
        RouterEnd(p),
    )
}

/// Closes the client end when the last clone of [`LocalTransport`] goes.
struct ClientSide(Arc<Pipe>);

impl Drop for ClientSide {
    fn drop(&mut self) {
        self.0.close_client();
    }
}

/// The client end of an in-process session. `Send + Sync`; clones share one end (e.g. one
/// clone in a reading task, one in a writing task), which closes when the last clone is
/// dropped or [`LocalTransport::close`] is called. Only one task should wait in
/// [`LocalTransport::recv`] at a time.
#[derive(Clone)]
pub struct LocalTransport(Arc<ClientSide>);

impl LocalTransport {
    fn pipe(&self) -> &Pipe {
        &self.0 .0
    }

    /// Sends a message to the router. Never blocks; fails once either end has closed.
    pub fn send(&self, m: Message) -> Result<(), Closed> {
        let p = self.pipe();
        if p.client_closed.load(Ordering::Acquire) || p.router_closed.load(Ordering::Acquire) {
            return Err(Closed);
        }
        p.to_router.0.send(m).map_err(|_| Closed)?;
        p.router_rx_waker.wake();
        Ok(())
    }

    /// Polls for the next message from the router: `Ready(None)` once the router closed its end
    /// and everything it sent before has been received.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let p = self.pipe();
        let take = |p: &Pipe| match p.to_client.1.try_recv() {
            Ok((m, size)) => {
                p.in_flight.fetch_sub(size, Ordering::AcqRel);
                p.credit_waker.wake();
                Some(Some(unshare(m)))
            }
            Err(TryRecvError::Empty) if p.router_closed.load(Ordering::Acquire) => {
                // Closed after its last send: anything sent is visible now.
                match p.to_client.1.try_recv() {
                    Ok((m, size)) => {
                        p.in_flight.fetch_sub(size, Ordering::AcqRel);
                        Some(Some(unshare(m)))
                    }
                    Err(_) => Some(None),
                }
            }
            Err(_) => None,
        };
        if let Some(r) = take(p) {
            return Poll::Ready(r);
        }
        p.client_waker.register(cx.waker());
        match take(p) {
            Some(r) => Poll::Ready(r),
            None => Poll::Pending,
        }
    }

    /// Waits for the next message from the router; `None` once the router side has closed.
    pub async fn recv(&self) -> Option<Message> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Closes the session's transport, like closing a socket: the router ends the session.
    pub fn close(&self) {
        self.pipe().close_client();
    }

    /// Whether the router has closed its end (messages may still be waiting in `recv`).
    pub fn is_closed_by_router(&self) -> bool {
        self.pipe().router_closed.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for LocalTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTransport")
            .field("in_flight", &self.pipe().in_flight.load(Ordering::Relaxed))
            .finish()
    }
}

/// The router end of an in-process session, served by one shard. Closes on drop.
pub struct RouterEnd(Arc<Pipe>);

impl RouterEnd {
    /// Polls for the next message from the client: `Ready(None)` once the client closed its end
    /// and everything it sent before has been taken.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        let p = &*self.0;
        let take = |p: &Pipe| match p.to_router.1.try_recv() {
            Ok(m) => Some(Some(m)),
            Err(_) if p.client_closed.load(Ordering::Acquire) => {
                p.to_router.1.try_recv().ok().map(Some).or(Some(None))
            }
            Err(_) => None,
        };
        if let Some(r) = take(p) {
            return Poll::Ready(r);
        }
        p.router_rx_waker.register(cx.waker());
        match take(p) {
            Some(r) => Poll::Ready(r),
            None => Poll::Pending,
        }
    }

    /// Waits for the next message from the client; `None` once the client has closed.
    pub async fn recv(&self) -> Option<Message> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Takes a message the client already sent, without waiting.
    pub fn try_recv(&self) -> Option<Message> {
        self.0.to_router.1.try_recv().ok()
    }

    /// Ready when fewer than `limit` estimated bytes are in flight to the client, or the client
    /// is gone (check [`RouterEnd::client_closed`]).
    pub fn poll_credit(&self, cx: &mut Context<'_>, limit: usize) -> Poll<()> {
        let p = &*self.0;
        let ok = |p: &Pipe| {
            p.in_flight.load(Ordering::Acquire) < limit || p.client_closed.load(Ordering::Acquire)
        };
        if ok(p) {
            return Poll::Ready(());
        }
        p.credit_waker.register(cx.waker());
        if ok(p) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Sends a message to the client, counting `size` estimated bytes against the credit.
    pub fn send(&self, m: Arc<Message>, size: usize) {
        let p = &*self.0;
        if p.client_closed.load(Ordering::Acquire) {
            return;
        }
        p.in_flight.fetch_add(size, Ordering::AcqRel);
        if p.to_client.0.send((m, size)).is_ok() {
            p.client_waker.wake();
        }
    }

    /// Whether the client has closed its end.
    pub fn client_closed(&self) -> bool {
        self.0.client_closed.load(Ordering::Acquire)
    }

    /// Estimated bytes sent to the client and not yet received.
    pub fn in_flight(&self) -> usize {
        self.0.in_flight.load(Ordering::Acquire)
    }

    /// Closes the router end: the client's `recv` returns `None` after the queued messages.
    pub fn close(&self) {
        self.0.close_router();
    }
}

impl Drop for RouterEnd {
    fn drop(&mut self) {
        self.0.close_router();
    }
}

/// A message's size for flow control: its payload's encoded size estimate plus a fixed
/// allowance for the envelope (IDs, URI, options). Cheap: no encoding.
pub fn approx_size(m: &Message) -> usize {
    const ENVELOPE: usize = 64;
    let payload = match m {
        Message::Publish(x) => x.payload.encoded_len_hint() + x.topic.as_str().len(),
        Message::Event(x) => x.payload.encoded_len_hint(),
        Message::Call(x) => x.payload.encoded_len_hint() + x.procedure.as_str().len(),
        Message::Invocation(x) => x.payload.encoded_len_hint(),
        Message::Yield(x) => x.payload.encoded_len_hint(),
        Message::Result(x) => x.payload.encoded_len_hint(),
        Message::Error(x) => x.payload.encoded_len_hint() + x.error.as_str().len(),
        _ => 0,
    };
    ENVELOPE + payload
}

/// Checks what decoding would have checked on a network session, for a message built in
/// memory: IDs within [0, 2^53], reason and error URIs valid, and an already-encoded payload
/// really is a list/dict in its format (it may be spliced into other peers' frames as is).
pub fn validate(m: &Message) -> Result<(), DecodeError> {
    const NONE: (&str, &str, u64) = ("", "", 0);
    let ids: [(&'static str, &'static str, u64); 2] = match m {
        Message::Welcome(x) => [("WELCOME", "Session", x.session), NONE],
        Message::Error(x) => [("ERROR", "REQUEST.Request", x.request), NONE],
        Message::Publish(x) => [("PUBLISH", "Request", x.request), NONE],
        Message::Published(x) => [
            ("PUBLISHED", "Request", x.request),
            ("PUBLISHED", "Publication", x.publication),
        ],
        Message::Subscribe(x) => [("SUBSCRIBE", "Request", x.request), NONE],
        Message::Subscribed(x) => [
            ("SUBSCRIBED", "Request", x.request),
            ("SUBSCRIBED", "Subscription", x.subscription),
        ],
        Message::Unsubscribe(x) => [
            ("UNSUBSCRIBE", "Request", x.request),
            ("UNSUBSCRIBE", "Subscription", x.subscription),
        ],
        Message::Unsubscribed(x) => [("UNSUBSCRIBED", "Request", x.request), NONE],
        Message::Event(x) => [
            ("EVENT", "Subscription", x.subscription),
            ("EVENT", "Publication", x.publication),
        ],
        Message::EventReceived(x) => [("EVENT_RECEIVED", "Publication", x.publication), NONE],
        Message::Call(x) => [("CALL", "Request", x.request), NONE],
        Message::Cancel(x) => [("CANCEL", "Request", x.request), NONE],
        Message::Result(x) => [("RESULT", "Request", x.request), NONE],
        Message::Register(x) => [("REGISTER", "Request", x.request), NONE],
        Message::Registered(x) => [
            ("REGISTERED", "Request", x.request),
            ("REGISTERED", "Registration", x.registration),
        ],
        Message::Unregister(x) => [
            ("UNREGISTER", "Request", x.request),
            ("UNREGISTER", "Registration", x.registration),
        ],
        Message::Unregistered(x) => [("UNREGISTERED", "Request", x.request), NONE],
        Message::Invocation(x) => [
            ("INVOCATION", "Request", x.request),
            ("INVOCATION", "Registration", x.registration),
        ],
        Message::Interrupt(x) => [("INTERRUPT", "Request", x.request), NONE],
        Message::Yield(x) => [("YIELD", "Request", x.request), NONE],
        _ => [NONE, NONE],
    };
    for (message, field, v) in ids {
        if v > MAX_ID {
            return Err(DecodeError::IdOutOfRange { message, field });
        }
    }
    let reason = match m {
        Message::Abort(x) => Some(("ABORT", "Reason", &x.reason)),
        Message::Goodbye(x) => Some(("GOODBYE", "Reason", &x.reason)),
        Message::Error(x) => Some(("ERROR", "Error", &x.error)),
        _ => None,
    };
    if let Some((message, field, uri)) = reason {
        if codec::uri::validate_uri(uri, codec::uri::UriCheck::Loose).is_err() {
            return Err(DecodeError::BadUri {
                message,
                field,
                uri: uri.to_string(),
            });
        }
    }
    let payload = match m {
        Message::Publish(x) => Some(&x.payload),
        Message::Event(x) => Some(&x.payload),
        Message::EventReceived(x) => Some(&x.payload),
        Message::Call(x) => Some(&x.payload),
        Message::Invocation(x) => Some(&x.payload),
        Message::Yield(x) => Some(&x.payload),
        Message::Result(x) => Some(&x.payload),
        Message::Error(x) => Some(&x.payload),
        _ => None,
    };
    if let Some(p @ Payload::Encoded(_)) = payload {
        p.args_values()?;
        p.kwargs_values()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Dict, Goodbye, Uri};
    use std::task::Waker;

    fn goodbye() -> Message {
        Message::Goodbye(Goodbye {
            details: Dict::new(),
            reason: Uri::from("wamp.close.normal"),
        })
    }

    fn cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    #[test]
    fn both_directions_and_credit() {
        let (client, router) = pipe();
        client.send(goodbye()).unwrap();
        assert!(matches!(
            router.poll_recv(&mut cx()),
            Poll::Ready(Some(Message::Goodbye(_)))
        ));
        assert!(router.poll_recv(&mut cx()).is_pending());
        router.send(Arc::new(goodbye()), 100);
        assert_eq!(router.in_flight(), 100);
        assert!(router.poll_credit(&mut cx(), 100).is_pending());
        assert!(router.poll_credit(&mut cx(), 101).is_ready());
        assert!(matches!(client.poll_recv(&mut cx()), Poll::Ready(Some(_))));
        assert_eq!(router.in_flight(), 0);
        assert!(client.poll_recv(&mut cx()).is_pending());
    }

    #[test]
    fn router_close_delivers_queued_then_none() {
        let (client, router) = pipe();
        router.send(Arc::new(goodbye()), 10);
        drop(router);
        assert!(client.is_closed_by_router());
        assert!(matches!(client.poll_recv(&mut cx()), Poll::Ready(Some(_))));
        assert!(matches!(client.poll_recv(&mut cx()), Poll::Ready(None)));
        assert_eq!(client.send(goodbye()), Err(Closed));
    }

    #[test]
    fn client_close_on_last_clone() {
        let (client, router) = pipe();
        let c2 = client.clone();
        client.send(goodbye()).unwrap();
        drop(client);
        assert!(!router.client_closed());
        drop(c2);
        assert!(router.client_closed());
        // What was sent before the close is still taken, then the end is seen.
        assert!(matches!(router.poll_recv(&mut cx()), Poll::Ready(Some(_))));
        assert!(matches!(router.poll_recv(&mut cx()), Poll::Ready(None)));
        // A closed client releases a writer waiting for credit.
        router.send(Arc::new(goodbye()), 1000);
        assert!(router.poll_credit(&mut cx(), 10).is_ready());
    }

    #[test]
    fn a_shared_message_reaches_every_client_whole() {
        let (a, ra) = pipe();
        let (b, rb) = pipe();
        let m = Arc::new(goodbye());
        ra.send(m.clone(), 100);
        rb.send(m, 100);
        // The first receiver copies (the other pipe still holds it), the last one takes it.
        assert!(matches!(a.poll_recv(&mut cx()), Poll::Ready(Some(g)) if g == goodbye()));
        assert!(matches!(b.poll_recv(&mut cx()), Poll::Ready(Some(g)) if g == goodbye()));
        assert_eq!(ra.in_flight() + rb.in_flight(), 0);
    }

    #[test]
    fn rejects_what_decode_would() {
        let bad = Message::Goodbye(Goodbye {
            details: Default::default(),
            reason: Uri::from("not a uri"),
        });
        assert!(validate(&bad).is_err());
        assert!(validate(&goodbye()).is_ok());
        let big = Message::Cancel(codec::Cancel {
            request: MAX_ID + 1,
            options: Default::default(),
        });
        assert!(validate(&big).is_err());
        let garbage = Message::Yield(codec::Yield {
            request: 1,
            options: Default::default(),
            payload: Payload::Encoded(codec::EncodedPayload {
                format: codec::Serializer::Json,
                args: Some(bytes::Bytes::from_static(b"[1,")),
                kwargs: None,
            }),
        });
        assert!(validate(&garbage).is_err());
        let fine = Message::Yield(codec::Yield {
            request: 1,
            options: Default::default(),
            payload: Payload::Encoded(codec::EncodedPayload {
                format: codec::Serializer::Json,
                args: Some(bytes::Bytes::from_static(b"[1,2]")),
                kwargs: Some(bytes::Bytes::from_static(b"{\"a\":1}")),
            }),
        });
        assert_eq!(validate(&fine), Ok(()));
    }
}
