//! The range check for the IDs a client sends (spec `basic/building_blocks.md`, "IDs"):
//! request IDs and the router-scope IDs a client echoes back are integers in `[1, 2^53]`.
//!
//! The codec only rejects values above 2^53 (`codec::wire`), because 0 is legal in messages
//! the router sends (an UNSUBSCRIBED of a revoked subscription carries request 0), so the
//! lower bound is checked here, for the messages that reach an established session.

use crate::codec::{Id, Message, MAX_ID};

/// One ID field outside `[1, 2^53]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadId {
    pub message: &'static str,
    pub field: &'static str,
    pub value: Id,
}

impl std::fmt::Display for BadId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}.{} is {}, outside [1, 2^53]",
            self.message, self.field, self.value
        )
    }
}

fn check(message: &'static str, field: &'static str, value: Id) -> Result<(), BadId> {
    if (1..=MAX_ID).contains(&value) {
        Ok(())
    } else {
        Err(BadId {
            message,
            field,
            value,
        })
    }
}

/// Checks every ID field of a message a client sends. Messages a client never sends (and the
/// session-level ones, which carry no ID) pass: the state machine rejects them by type.
pub fn check_client_ids(msg: &Message) -> Result<(), BadId> {
    match msg {
        Message::Publish(m) => check("PUBLISH", "Request", m.request),
        Message::Subscribe(m) => check("SUBSCRIBE", "Request", m.request),
        Message::Unsubscribe(m) => {
            check("UNSUBSCRIBE", "Request", m.request)?;
            check("UNSUBSCRIBE", "SUBSCRIBED.Subscription", m.subscription)
        }
        Message::Call(m) => check("CALL", "Request", m.request),
        Message::Cancel(m) => check("CANCEL", "CALL.Request", m.request),
        Message::Register(m) => check("REGISTER", "Request", m.request),
        Message::Unregister(m) => {
            check("UNREGISTER", "Request", m.request)?;
            check("UNREGISTER", "REGISTERED.Registration", m.registration)
        }
        Message::Yield(m) => check("YIELD", "INVOCATION.Request", m.request),
        Message::Error(m) => check("ERROR", "REQUEST.Request", m.request),
        Message::EventReceived(m) => check("EVENT_RECEIVED", "EVENT.Publication", m.publication),
        Message::Hello(_)
        | Message::Welcome(_)
        | Message::Abort(_)
        | Message::Challenge(_)
        | Message::Authenticate(_)
        | Message::Goodbye(_)
        | Message::Published(_)
        | Message::Subscribed(_)
        | Message::Unsubscribed(_)
        | Message::Event(_)
        | Message::Result(_)
        | Message::Registered(_)
        | Message::Unregistered(_)
        | Message::Invocation(_)
        | Message::Interrupt(_) => Ok(()),
    }
}
