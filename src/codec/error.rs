//! Decoding errors.
//!
//! Every way a frame can fail to be a WAMP message is a variant here, with enough detail to tell
//! the peer what was wrong (the session turns them into ABORT `wamp.error.protocol_violation`
//! with the error text as `Details.message`).

use thiserror::Error;

/// Why a frame is not a valid WAMP message.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum DecodeError {
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("invalid MessagePack: {0}")]
    MsgPack(String),
    #[error("invalid CBOR: {0}")]
    Cbor(String),
    #[error("invalid UBJSON: {0}")]
    Ubjson(String),
    #[error("invalid UTF-8 in {0}")]
    Utf8(&'static str),
    #[error("a WAMP message must be a non-empty array")]
    NotAnArray,
    #[error("message type must be an integer")]
    BadMessageType,
    #[error("unknown message type {0}")]
    UnknownMessageType(u64),
    #[error("{message}: wrong number of elements ({got})")]
    WrongArity { message: &'static str, got: usize },
    #[error("{message}.{field}: expected {expected}, got {got}")]
    WrongType {
        message: &'static str,
        field: &'static str,
        expected: &'static str,
        got: &'static str,
    },
    #[error("{message}.{field}: ID out of range [0, 2^53]")]
    IdOutOfRange {
        message: &'static str,
        field: &'static str,
    },
    #[error("{message}.{field}: invalid URI {uri:?}")]
    BadUri {
        message: &'static str,
        field: &'static str,
        uri: String,
    },
    #[error("option {key:?}: expected {expected}")]
    BadOption { key: String, expected: &'static str },
    #[error("nesting deeper than {0} levels")]
    TooDeep(usize),
    #[error("trailing bytes after the message")]
    TrailingBytes,
}

impl DecodeError {
    pub(crate) fn wrong_type(
        message: &'static str,
        field: &'static str,
        expected: &'static str,
        got: &'static str,
    ) -> Self {
        DecodeError::WrongType {
            message,
            field,
            expected,
            got,
        }
    }
}
