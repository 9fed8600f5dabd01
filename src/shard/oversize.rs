//! Messages larger than their recipient accepts (the maximum a RawSocket peer announced in its
//! handshake): never sent, and never dropped without an answer where someone waits for one.
//! Every case counts `switchyard_limit_exceeded_total{limit="peer_message_size"}`.
//!
//! What happens to each message the router cannot send ([`Shard::too_big_for_peer`]):
//!
//! | Message | Fate |
//! |---|---|
//! | WELCOME, CHALLENGE | The opening handshake cannot complete: the session ends with ABORT `wamp.error.payload_size_exceeded` (if even that does not fit, the transport is closed). The session is never joined. |
//! | ABORT, GOODBYE | The session is ending anyway: the transport is closed without it. |
//! | RESULT, ERROR | The waiting request is answered with ERROR `wamp.error.payload_size_exceeded` (same request type and id). |
//! | PUBLISHED, SUBSCRIBED, UNSUBSCRIBED, REGISTERED, UNREGISTERED | Same (these are small; only a tiny limit hits them). |
//! | INVOCATION | Answered as if the callee had returned that ERROR, so the dealer ends the call and the caller gets it. |
//! | EVENT | Dropped. No request waits for it, and ending the subscriber's session would let any publisher disconnect subscribers with one big payload. |
//! | INTERRUPT | Dropped: the call is already being ended for its caller. |
//! | Client-to-router messages | The router never sends them; dropped if it ever did. |
//!
//! The answer replacing a message is ~60 bytes and a RawSocket peer accepts at least 512, so it
//! always fits; [`Shard::deliver`] checks it anyway.

use super::conn::SessionHandle;
use super::outbound::OutFrame;
use super::Shard;
use crate::codec::{self, code, Abort, Dict, Message, Payload, Uri, Value};
use crate::metrics::Limit;
use crate::routing::realm::errors::PAYLOAD_SIZE_EXCEEDED;
use crate::session::State;

/// Whether the session survives a message it could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum AfterTooBig {
    /// The message was answered or dropped; the session goes on.
    Continues,
    /// The session was ended (handshake failed, or it was ending anyway).
    Ended,
}

impl Shard {
    /// Whether `frame` fits the peer's limit; counts it when not.
    pub(super) fn fits_peer(&self, h: &SessionHandle, frame: &[u8]) -> bool {
        if frame.len() <= h.peer_max {
            return true;
        }
        self.metrics.limit_exceeded.inc(Limit::PeerMessageSize);
        false
    }

    /// Queues `m`, a reply of the session itself (state machine, authorization, shutdown), or
    /// hands it to [`Shard::too_big_for_peer`] when the peer does not accept its size.
    pub(super) fn push_reply(&self, h: &SessionHandle, m: &Message) -> AfterTooBig {
        let frame = h.frame(m);
        if let OutFrame::Message(b) = &frame {
            if b.len() > h.peer_max {
                return self.too_big_for_peer(h, m);
            }
        }
        if h.outbound.push_unbounded(frame).is_ok() {
            self.metrics.messages_out.inc(m.code());
        }
        AfterTooBig::Continues
    }

    /// `msg` is too big for `h`: see the module table.
    pub(super) fn too_big_for_peer(&self, h: &SessionHandle, msg: &Message) -> AfterTooBig {
        self.metrics.limit_exceeded.inc(Limit::PeerMessageSize);
        tracing::debug!(
            shard = self.id,
            session = h.id,
            realm = %super::conn::SessionRealm(h),
            "message of type {} larger than the peer's {} bytes; not sent",
            msg.code(),
            h.peer_max
        );
        let answer = |request_type, request| {
            let e = Message::Error(Box::new(codec::Error {
                request_type,
                request,
                details: Dict::new(),
                error: Uri::from(PAYLOAD_SIZE_EXCEEDED),
                payload: Payload::default(),
            }));
            self.deliver(h, h.frame(&e), code::ERROR);
            AfterTooBig::Continues
        };
        match msg {
            Message::Welcome(_) | Message::Challenge(_) => {
                self.end_undeliverable(h, true);
                AfterTooBig::Ended
            }
            Message::Abort(_) | Message::Goodbye(_) => {
                self.end_undeliverable(h, false);
                AfterTooBig::Ended
            }
            Message::Result(r) => answer(code::CALL, r.request),
            Message::Error(e) => answer(e.request_type, e.request),
            Message::Published(p) => answer(code::PUBLISH, p.request),
            Message::Subscribed(s) => answer(code::SUBSCRIBE, s.request),
            Message::Unsubscribed(u) => answer(code::UNSUBSCRIBE, u.request),
            Message::Registered(r) => answer(code::REGISTER, r.request),
            Message::Unregistered(u) => answer(code::UNREGISTER, u.request),
            Message::Invocation(i) => {
                self.route(
                    h,
                    Message::Error(Box::new(codec::Error {
                        request_type: code::INVOCATION,
                        request: i.request,
                        details: Dict::new(),
                        error: Uri::from(PAYLOAD_SIZE_EXCEEDED),
                        payload: Payload::default(),
                    })),
                );
                AfterTooBig::Continues
            }
            Message::Event(_) | Message::Interrupt(_) => AfterTooBig::Continues,
            Message::Hello(_)
            | Message::Authenticate(_)
            | Message::Publish(_)
            | Message::Subscribe(_)
            | Message::Unsubscribe(_)
            | Message::EventReceived(_)
            | Message::Call(_)
            | Message::Cancel(_)
            | Message::Register(_)
            | Message::Unregister(_)
            | Message::Yield(_) => AfterTooBig::Continues,
        }
    }

    /// Ends a session whose handshake (or closing) message could not be sent: ABORT
    /// `wamp.error.payload_size_exceeded` first if `abort` and it fits, then the transport is
    /// closed and the session leaves routing.
    fn end_undeliverable(&self, h: &SessionHandle, abort: bool) {
        tracing::info!(
            shard = self.id,
            session = h.id,
            realm = %super::conn::SessionRealm(h),
            peer_max = h.peer_max,
            "a message the session needs is larger than the peer accepts; session ended"
        );
        if abort {
            let mut details = Dict::new();
            details.insert(
                "message".into(),
                Value::Str(format!(
                    "the router's reply is larger than the {} bytes this peer accepts",
                    h.peer_max
                )),
            );
            let m = Message::Abort(Abort {
                details,
                reason: Uri::from(PAYLOAD_SIZE_EXCEEDED),
            });
            let frame = h.frame(&m);
            let fits = match &frame {
                OutFrame::Message(b) => b.len() <= h.peer_max,
                _ => true,
            };
            if fits && h.outbound.push_unbounded(frame).is_ok() {
                self.metrics.messages_out.inc(code::ABORT);
            }
        }
        h.core.borrow_mut().state = State::Closed;
        h.outbound.close(1009, "message too big for the peer");
        self.session_gone(h);
    }
}
