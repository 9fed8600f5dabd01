//! The client's errors.

use crate::codec::{Dict, Uri, Value};
use std::fmt;

/// Everything a client operation can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The router answered with ERROR (call, register, subscribe, acknowledged publish, …).
    #[error("{0}")]
    Wamp(WampError),
    /// The router refused the session (ABORT while joining).
    #[error("aborted: {reason}: {message}")]
    Aborted {
        /// ABORT.Reason.
        reason: Uri,
        /// ABORT.Details.message, or empty.
        message: String,
    },
    /// Connecting, the transport handshake or I/O failed, the connection was lost, or the
    /// client is disconnected (and reconnecting).
    #[error("transport: {0}")]
    Transport(String),
    /// The router broke the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
    /// `connect_timeout`, or a call's local deadline, passed.
    #[error("timed out")]
    Timeout,
    /// The client was closed ([`Client::leave`](super::Client::leave), gave up reconnecting,
    /// or lost its connection without a reconnect policy).
    #[error("client is closed")]
    Closed,
    /// An argument the client cannot use.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A payload does not fit the serde type asked for (or a value cannot be written as one):
    /// [`crate::codec::serde_value`].
    #[error("payload: {0}")]
    Payload(String),
}

impl From<crate::codec::serde_value::ValueError> for Error {
    fn from(e: crate::codec::serde_value::ValueError) -> Self {
        Error::Payload(e.0)
    }
}

/// An ERROR message from the router (or from the callee, through the router).
#[derive(Debug, Clone, PartialEq)]
pub struct WampError {
    /// The error URI.
    pub error: Uri,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Dict,
    /// ERROR.Details.
    pub details: Dict,
}

/// `<uri>` or `<uri>: <arg>, <arg>…` (string arguments without quotes).
impl fmt::Display for WampError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.error)?;
        for (i, a) in self.args.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { ", " })?;
            match a {
                Value::Str(s) => f.write_str(s)?,
                other => write!(f, "{other:?}")?,
            }
        }
        Ok(())
    }
}

impl From<super::transport::TransportError> for Error {
    fn from(e: super::transport::TransportError) -> Self {
        match e {
            super::transport::TransportError::Decode(d) => Error::Protocol(d.to_string()),
            other => Error::Transport(other.to_string()),
        }
    }
}

impl From<super::url::UrlError> for Error {
    fn from(e: super::url::UrlError) -> Self {
        Error::Invalid(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wamp_error_display() {
        let mut e = WampError {
            error: Uri::from("com.example.oops"),
            args: Vec::new(),
            kwargs: Dict::new(),
            details: Dict::new(),
        };
        assert_eq!(e.to_string(), "com.example.oops");
        e.args = vec![Value::Str("bad input".into()), Value::UInt(3)];
        assert_eq!(Error::Wamp(e).to_string(), "com.example.oops: bad input, 3");
        assert_eq!(
            Error::Aborted {
                reason: Uri::from("wamp.error.no_such_realm"),
                message: "no".into()
            }
            .to_string(),
            "aborted: wamp.error.no_such_realm: no"
        );
    }
}
