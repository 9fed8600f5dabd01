//! The in-process transport: a session between a router and a client in the same process,
//! exchanging [`Message`] values with no socket and no serialization.
//!
//! A [`pipe`] has two ends. The client end, [`LocalTransport`], is `Send` and can live on any
//! thread (typically the application's own glommio executor); the router end, [`RouterEnd`],
//! is handed to a shard through the mesh (see `shard::LocalConnector`) and served there by
//! `shard::local`, which feeds the messages to the same session state machine, authorization,
//! meta API and routing as a network session.
//!
//! The pipe is a [`super::duplex`] pair (a lock-free channel and a waker each way). Flow
//! control:
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

use super::duplex::{self, PeerEnd, ServerEnd};
use crate::codec::{self, DecodeError, Message, Payload, MAX_ID};
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};

pub use super::duplex::Closed;

/// The message itself: taken as is by its last holder (usually the only one), copied otherwise
/// (on the receiving client's thread, not the shard's).
fn unshare(m: Arc<Message>) -> Message {
    Arc::try_unwrap(m).unwrap_or_else(|shared| (*shared).clone())
}

/// Creates a connected pair of ends.
pub fn pipe() -> (LocalTransport, RouterEnd) {
    let (client, router) = duplex::pair();
    (LocalTransport(client), router)
}

/// The client end of an in-process session. `Send + Sync`; clones share one end (e.g. one
/// clone in a reading task, one in a writing task), which closes when the last clone is
/// dropped or [`LocalTransport::close`] is called. Only one task should wait in
/// [`LocalTransport::recv`] at a time.
#[derive(Clone)]
pub struct LocalTransport(PeerEnd<Message, Arc<Message>>);

impl LocalTransport {
    /// Sends a message to the router. Never blocks; fails once either end has closed.
    pub fn send(&self, m: Message) -> Result<(), Closed> {
        // Not counted against any bound: the client is the application's own code.
        self.0.send(m, 0)
    }

    /// Polls for the next message from the router: `Ready(None)` once the router closed its end
    /// and everything it sent before has been received.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        self.0.poll_recv(cx).map(|m| m.map(unshare))
    }

    /// Waits for the next message from the router; `None` once the router side has closed.
    pub async fn recv(&self) -> Option<Message> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Closes the session's transport, like closing a socket: the router ends the session.
    pub fn close(&self) {
        self.0.close();
    }

    /// Whether the router has closed its end (messages may still be waiting in `recv`).
    pub fn is_closed_by_router(&self) -> bool {
        self.0.is_closed_by_router()
    }
}

impl std::fmt::Debug for LocalTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalTransport")
            .field("in_flight", &self.0.in_flight())
            .finish()
    }
}

/// The router end of an in-process session, served by one shard (messages shared by the local
/// recipients of one fan-out, with their estimated sizes, see [`approx_size`]). Closes on drop.
pub type RouterEnd = ServerEnd<Message, Arc<Message>>;

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
        assert!(!router.peer_closed());
        drop(c2);
        assert!(router.peer_closed());
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
        let garbage = Message::Yield(Box::new(codec::Yield {
            request: 1,
            options: Default::default(),
            payload: Payload::Encoded(codec::EncodedPayload {
                format: codec::Serializer::Json,
                args: Some(bytes::Bytes::from_static(b"[1,")),
                kwargs: None,
            }),
        }));
        assert!(validate(&garbage).is_err());
        let fine = Message::Yield(Box::new(codec::Yield {
            request: 1,
            options: Default::default(),
            payload: Payload::Encoded(codec::EncodedPayload {
                format: codec::Serializer::Json,
                args: Some(bytes::Bytes::from_static(b"[1,2]")),
                kwargs: Some(bytes::Bytes::from_static(b"{\"a\":1}")),
            }),
        }));
        assert_eq!(validate(&fine), Ok(()));
    }
}
