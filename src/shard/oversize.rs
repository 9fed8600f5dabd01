//! Messages larger than their recipient accepts (the maximum a RawSocket peer announced in its
//! handshake): never sent. The spec's `wamp.error.payload_size_exceeded` answers them where a
//! request is waiting: a RESULT or call ERROR too big for the caller becomes that ERROR; an
//! INVOCATION too big for the callee is answered as if the callee had returned that ERROR, so
//! the dealer ends the call and the caller gets it. Anything else (an EVENT) is dropped. Every
//! case counts `switchyard_limit_exceeded_total{limit="peer_message_size"}`.

use super::conn::SessionHandle;
use super::Shard;
use crate::codec::{self, code, Dict, Message, Payload, Uri};
use crate::metrics::Limit;
use crate::routing::realm::errors::PAYLOAD_SIZE_EXCEEDED;

impl Shard {
    /// Whether `frame` fits the peer's limit; counts it when not.
    pub(super) fn fits_peer(&self, h: &SessionHandle, frame: &[u8]) -> bool {
        if frame.len() <= h.peer_max {
            return true;
        }
        self.metrics.limit_exceeded.inc(Limit::PeerMessageSize);
        false
    }

    /// `msg` is too big for `h`: answer with `wamp.error.payload_size_exceeded` where a request
    /// waits for it, drop it otherwise.
    pub(super) fn too_big_for_peer(&self, h: &SessionHandle, msg: &Message) {
        self.metrics.limit_exceeded.inc(Limit::PeerMessageSize);
        let error = |request_type, request| {
            Message::Error(codec::Error {
                request_type,
                request,
                details: Dict::new(),
                error: Uri::from(PAYLOAD_SIZE_EXCEEDED),
                payload: Payload::default(),
            })
        };
        tracing::debug!(
            shard = self.id,
            session = h.id,
            realm = %super::conn::SessionRealm(h),
            "message of type {} larger than the peer's {} bytes; not sent",
            msg.code(),
            h.peer_max
        );
        match msg {
            Message::Result(r) => {
                let e = error(code::CALL, r.request);
                self.deliver(h, h.frame(&e), code::ERROR);
            }
            Message::Error(e) if e.request_type == code::CALL => {
                let e = error(code::CALL, e.request);
                self.deliver(h, h.frame(&e), code::ERROR);
            }
            Message::Invocation(i) => self.route(h, error(code::INVOCATION, i.request)),
            _ => {}
        }
    }
}
