//! Application payload: `Arguments|list` and `ArgumentsKw|dict`.
//!
//! The router never needs to look inside a payload to route it, so a decoded message keeps its
//! payload as the encoded bytes it arrived in ([`Payload::Encoded`], a zero-copy slice of the
//! frame). Forwarding to a peer that uses the same serializer splices those bytes into the
//! outgoing message; only a peer with the other serializer pays for a conversion, and that
//! conversion happens once per serializer per message, not once per receiver.

use super::error::DecodeError;
use super::value::{Dict, Value};
use super::{json, msgpack, Serializer};
use bytes::Bytes;

/// The payload of PUBLISH, EVENT, CALL, INVOCATION, YIELD, RESULT and ERROR.
///
/// Equality is semantic: two payloads are equal when they carry the same values, whatever
/// their representation (so a payload survives a trip through another serializer "unchanged").
#[derive(Debug, Clone, Default)]
pub enum Payload {
    /// Neither arguments nor keyword arguments.
    #[default]
    Empty,
    /// As received: the encoded `args` list and `kwargs` dict, in `format`.
    Encoded(EncodedPayload),
    /// Built in memory (by the router, the client library, or a conversion).
    Values {
        args: Option<Vec<Value>>,
        kwargs: Option<Dict>,
    },
    /// Payload Passthru Mode: one opaque binary in place of the arguments list.
    Transparent(Bytes),
}

/// Encoded `args`/`kwargs` exactly as they appeared on the wire.
#[derive(Debug, Clone, PartialEq)]
pub struct EncodedPayload {
    pub format: Serializer,
    /// The encoded list (starts with a list marker), if present.
    pub args: Option<Bytes>,
    /// The encoded dict, if present.
    pub kwargs: Option<Bytes>,
}

impl Payload {
    /// A payload of positional arguments only.
    pub fn args(args: Vec<Value>) -> Self {
        Payload::Values {
            args: Some(args),
            kwargs: None,
        }
    }

    /// A payload of positional and keyword arguments.
    pub fn args_kwargs(args: Vec<Value>, kwargs: Dict) -> Self {
        Payload::Values {
            args: Some(args),
            kwargs: Some(kwargs),
        }
    }

    pub fn is_empty(&self) -> bool {
        matches!(self, Payload::Empty)
    }

    /// How many trailing message elements this payload occupies (0, 1 or 2).
    pub fn element_count(&self) -> usize {
        match self {
            Payload::Empty => 0,
            Payload::Encoded(e) => match (&e.args, &e.kwargs) {
                (_, Some(_)) => 2,
                (Some(_), None) => 1,
                (None, None) => 0,
            },
            Payload::Values { args, kwargs } => match (args, kwargs) {
                (_, Some(_)) => 2,
                (Some(_), None) => 1,
                (None, None) => 0,
            },
            Payload::Transparent(_) => 1,
        }
    }

    /// The same payload in buffers of its own: a payload kept for long (a retained event)
    /// must not pin the whole frame buffer it was sliced from.
    pub fn detached(&self) -> Payload {
        let own = |b: &Option<Bytes>| b.as_ref().map(|b| Bytes::copy_from_slice(b));
        match self {
            Payload::Encoded(e) => Payload::Encoded(EncodedPayload {
                format: e.format,
                args: own(&e.args),
                kwargs: own(&e.kwargs),
            }),
            Payload::Transparent(b) => Payload::Transparent(Bytes::copy_from_slice(b)),
            other => other.clone(),
        }
    }

    /// Approximate encoded size, for queue accounting.
    pub fn encoded_len_hint(&self) -> usize {
        match self {
            Payload::Empty => 0,
            Payload::Encoded(e) => {
                e.args.as_ref().map_or(0, |b| b.len()) + e.kwargs.as_ref().map_or(0, |b| b.len())
            }
            Payload::Values { args, kwargs } => {
                16 * args.as_ref().map_or(0, |a| a.len())
                    + 32 * kwargs.as_ref().map_or(0, |k| k.len())
            }
            Payload::Transparent(b) => b.len(),
        }
    }

    /// The positional arguments as values (decodes encoded bytes; not for the hot path).
    pub fn args_values(&self) -> Result<Option<Vec<Value>>, DecodeError> {
        match self {
            Payload::Empty | Payload::Transparent(_) => Ok(None),
            Payload::Values { args, .. } => Ok(args.clone()),
            Payload::Encoded(e) => match &e.args {
                None => Ok(None),
                Some(bytes) => match decode_value(e.format, bytes)? {
                    Value::List(l) => Ok(Some(l)),
                    other => Err(DecodeError::wrong_type(
                        "payload",
                        "Arguments",
                        "list",
                        other.type_name(),
                    )),
                },
            },
        }
    }

    /// The keyword arguments as values (decodes encoded bytes; not for the hot path).
    pub fn kwargs_values(&self) -> Result<Option<Dict>, DecodeError> {
        match self {
            Payload::Empty | Payload::Transparent(_) => Ok(None),
            Payload::Values { kwargs, .. } => Ok(kwargs.clone()),
            Payload::Encoded(e) => match &e.kwargs {
                None => Ok(None),
                Some(bytes) => match decode_value(e.format, bytes)? {
                    Value::Dict(d) => Ok(Some(d)),
                    other => Err(DecodeError::wrong_type(
                        "payload",
                        "ArgumentsKw",
                        "dict",
                        other.type_name(),
                    )),
                },
            },
        }
    }

    /// This payload as in-memory values (the form used across serializers and in-process).
    pub fn to_values(&self) -> Result<Payload, DecodeError> {
        match self {
            Payload::Encoded(_) => Ok(Payload::Values {
                args: self.args_values()?,
                kwargs: self.kwargs_values()?,
            }),
            other => Ok(other.clone()),
        }
    }

    /// Re-expresses the payload so that encoding it for `target` needs no further conversion:
    /// bytes in the same serializer are kept, others become values. The router calls this once
    /// per serializer when fanning out, not once per receiver.
    pub fn for_serializer(&self, target: Serializer) -> Result<Payload, DecodeError> {
        match self {
            Payload::Encoded(e) if e.format != target => self.to_values(),
            other => Ok(other.clone()),
        }
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Payload::Encoded(a), Payload::Encoded(b)) if a == b => true,
            (Payload::Transparent(a), Payload::Transparent(b)) => a == b,
            (Payload::Transparent(_), _) | (_, Payload::Transparent(_)) => false,
            _ => match (self.to_values(), other.to_values()) {
                (
                    Ok(Payload::Values {
                        args: a1,
                        kwargs: k1,
                    }),
                    Ok(Payload::Values {
                        args: a2,
                        kwargs: k2,
                    }),
                ) => normalize(a1, &k1) == normalize(a2, &k2) && k1 == k2,
                (Ok(Payload::Empty), Ok(Payload::Empty)) => true,
                (Ok(Payload::Empty), Ok(Payload::Values { args, kwargs }))
                | (Ok(Payload::Values { args, kwargs }), Ok(Payload::Empty)) => {
                    args.is_none() && kwargs.is_none()
                }
                _ => false,
            },
        }
    }
}

/// `args` absent and `[]` are the same when `kwargs` is present (the wire needs the list).
fn normalize(args: Option<Vec<Value>>, kwargs: &Option<Dict>) -> Option<Vec<Value>> {
    match (args, kwargs) {
        (None, Some(_)) => Some(Vec::new()),
        (a, _) => a,
    }
}

fn decode_value(format: Serializer, bytes: &[u8]) -> Result<Value, DecodeError> {
    match format {
        Serializer::Json => json::decode_value(bytes),
        Serializer::MsgPack => msgpack::decode_value(bytes),
        Serializer::Cbor => super::cbor::decode_value(bytes),
        Serializer::Ubjson => super::ubjson::decode_value(bytes),
        Serializer::Bjdata => super::ubjson::decode_value_bjdata(bytes),
    }
}
