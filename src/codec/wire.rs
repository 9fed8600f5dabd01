//! The serializer-independent half of decoding and encoding.
//!
//! A serializer provides an [`ElementReader`] over the top-level array of one frame and an
//! [`ElementWriter`] that appends elements to an output buffer. This module knows each message's
//! shape (which element is an ID, a URI, a dict, the payload) and nothing about bytes, so the
//! JSON and MessagePack paths cannot disagree about what a message is.

use super::error::DecodeError;
use super::message::{code, *};
use super::options::Options;
use super::payload::Payload;
use super::value::Dict;
use super::{Uri, MAX_ID};
use bytes::Bytes;
use std::borrow::Cow;

/// The `Arguments|list` position: a list, or a binary in Payload Passthru Mode.
pub(crate) enum ArgsElement {
    List(Bytes),
    Transparent(Bytes),
}

/// Reads the elements of one message's top-level array, in order.
pub(crate) trait ElementReader {
    /// Number of elements in the array.
    fn len(&self) -> usize;
    /// Reads an integer element (a whole-number float is accepted).
    fn read_int(&mut self, msg: &'static str, field: &'static str) -> Result<u64, DecodeError>;
    /// Reads a string element, borrowed from the frame where the encoding allows.
    fn read_str(
        &mut self,
        msg: &'static str,
        field: &'static str,
    ) -> Result<Cow<'_, str>, DecodeError>;
    fn read_dict(&mut self, msg: &'static str, field: &'static str) -> Result<Dict, DecodeError>;
    fn read_args(&mut self, msg: &'static str) -> Result<ArgsElement, DecodeError>;
    /// The encoded bytes of a dict element.
    fn read_kwargs(&mut self, msg: &'static str) -> Result<Bytes, DecodeError>;
    fn serializer(&self) -> super::Serializer;
}

/// Appends the elements of one message.
pub(crate) trait ElementWriter {
    fn begin(&mut self, len: usize);
    fn int(&mut self, v: u64);
    fn str(&mut self, s: &str);
    fn options<O: Options>(&mut self, o: &O);
    fn payload(&mut self, p: &Payload);
    fn end(&mut self);
}

/// The type name reported when an integer was expected: says "negative integer" or "float" for
/// the numbers that are not acceptable IDs, so the message is never "expected integer, got
/// integer".
pub(crate) fn int_type_name(v: &super::value::Value) -> &'static str {
    match v {
        super::value::Value::Int(_) => "negative integer",
        v => v.type_name(),
    }
}

fn arity(msg: &'static str, n: usize, min: usize, max: usize) -> Result<(), DecodeError> {
    if n < min || n > max {
        Err(DecodeError::WrongArity {
            message: msg,
            got: n,
        })
    } else {
        Ok(())
    }
}

fn id<R: ElementReader>(
    r: &mut R,
    msg: &'static str,
    field: &'static str,
) -> Result<u64, DecodeError> {
    let v = r.read_int(msg, field)?;
    if v > MAX_ID {
        return Err(DecodeError::IdOutOfRange {
            message: msg,
            field,
        });
    }
    Ok(v)
}

fn uri<R: ElementReader>(
    r: &mut R,
    msg: &'static str,
    field: &'static str,
) -> Result<Uri, DecodeError> {
    // The text is borrowed from the frame; the `Arc<str>` is shared with the last equal URI
    // this thread decoded, if any (`Uri::decoded`).
    Ok(Uri::decoded(&r.read_str(msg, field)?))
}

/// A URI that must be valid whatever the context (reasons and error URIs: there is no request
/// to answer with `wamp.error.invalid_uri`, so a bad one is a protocol error).
fn reason_uri<R: ElementReader>(
    r: &mut R,
    msg: &'static str,
    field: &'static str,
) -> Result<Uri, DecodeError> {
    let s = r.read_str(msg, field)?;
    if super::uri::validate_uri(&s, super::uri::UriCheck::Loose).is_err() {
        return Err(DecodeError::BadUri {
            message: msg,
            field,
            uri: s.into_owned(),
        });
    }
    Ok(Uri::decoded(&s))
}

#[inline(always)]
fn opts<R: ElementReader, O: Options>(
    r: &mut R,
    msg: &'static str,
    field: &'static str,
) -> Result<O, DecodeError> {
    let dict = r.read_dict(msg, field)?;
    if dict.is_empty() {
        // Nearly every message's options: skip the conversion, and the drop of a map that
        // never held anything (a `BTreeMap` only allocates on insert, and a reader only
        // inserts, so there is nothing to free; its drop glue still costs ~45 instructions).
        std::mem::forget(dict);
        return Ok(O::default());
    }
    O::from_dict(dict)
}

/// Reads the optional `Arguments|list, ArgumentsKw|dict` tail; `seen` elements came before.
fn payload<R: ElementReader>(
    r: &mut R,
    msg: &'static str,
    seen: usize,
) -> Result<Payload, DecodeError> {
    let n = r.len();
    if n == seen {
        return Ok(Payload::Empty);
    }
    let args = r.read_args(msg)?;
    match args {
        ArgsElement::Transparent(b) => {
            if n > seen + 1 {
                return Err(DecodeError::WrongArity {
                    message: msg,
                    got: n,
                });
            }
            Ok(Payload::Transparent(b))
        }
        ArgsElement::List(a) => {
            let kwargs = if n > seen + 1 {
                Some(r.read_kwargs(msg)?)
            } else {
                None
            };
            Ok(Payload::Encoded(super::payload::EncodedPayload {
                format: r.serializer(),
                args: Some(a),
                kwargs,
            }))
        }
    }
}

/// Decodes one message from a reader positioned at the first element.
///
/// Inlined into each serializer's `decode` so the (large) message is built in its final place
/// instead of being copied through several return slots.
#[inline(always)]
pub(crate) fn decode_message<R: ElementReader>(r: &mut R) -> Result<Message, DecodeError> {
    let n = r.len();
    if n == 0 {
        return Err(DecodeError::NotAnArray);
    }
    let ty = r
        .read_int("message", "type")
        .map_err(|_| DecodeError::BadMessageType)?;
    let m = match ty {
        code::HELLO => {
            arity("HELLO", n, 3, 3)?;
            Message::Hello(Box::new(Hello {
                realm: uri(r, "HELLO", "Realm")?,
                details: opts(r, "HELLO", "Details")?,
            }))
        }
        code::WELCOME => {
            arity("WELCOME", n, 3, 3)?;
            Message::Welcome(Box::new(Welcome {
                session: id(r, "WELCOME", "Session")?,
                details: opts(r, "WELCOME", "Details")?,
            }))
        }
        code::ABORT => {
            arity("ABORT", n, 3, 3)?;
            Message::Abort(Abort {
                details: r.read_dict("ABORT", "Details")?,
                reason: reason_uri(r, "ABORT", "Reason")?,
            })
        }
        code::CHALLENGE => {
            arity("CHALLENGE", n, 3, 3)?;
            Message::Challenge(Challenge {
                method: r.read_str("CHALLENGE", "AuthMethod")?.into_owned(),
                extra: r.read_dict("CHALLENGE", "Extra")?,
            })
        }
        code::AUTHENTICATE => {
            arity("AUTHENTICATE", n, 3, 3)?;
            Message::Authenticate(Authenticate {
                signature: r.read_str("AUTHENTICATE", "Signature")?.into_owned(),
                extra: r.read_dict("AUTHENTICATE", "Extra")?,
            })
        }
        code::GOODBYE => {
            arity("GOODBYE", n, 3, 3)?;
            Message::Goodbye(Goodbye {
                details: r.read_dict("GOODBYE", "Details")?,
                reason: reason_uri(r, "GOODBYE", "Reason")?,
            })
        }
        code::ERROR => {
            arity("ERROR", n, 5, 7)?;
            Message::Error(Box::new(Error {
                request_type: r.read_int("ERROR", "REQUEST.Type")?,
                request: id(r, "ERROR", "REQUEST.Request")?,
                details: r.read_dict("ERROR", "Details")?,
                error: reason_uri(r, "ERROR", "Error")?,
                payload: payload(r, "ERROR", 5)?,
            }))
        }
        code::PUBLISH => {
            arity("PUBLISH", n, 4, 6)?;
            Message::Publish(Box::new(Publish {
                request: id(r, "PUBLISH", "Request")?,
                options: opts(r, "PUBLISH", "Options")?,
                topic: uri(r, "PUBLISH", "Topic")?,
                payload: payload(r, "PUBLISH", 4)?,
            }))
        }
        code::PUBLISHED => {
            arity("PUBLISHED", n, 3, 3)?;
            Message::Published(Published {
                request: id(r, "PUBLISHED", "Request")?,
                publication: id(r, "PUBLISHED", "Publication")?,
            })
        }
        code::SUBSCRIBE => {
            arity("SUBSCRIBE", n, 4, 4)?;
            Message::Subscribe(Subscribe {
                request: id(r, "SUBSCRIBE", "Request")?,
                options: opts(r, "SUBSCRIBE", "Options")?,
                topic: uri(r, "SUBSCRIBE", "Topic")?,
            })
        }
        code::SUBSCRIBED => {
            arity("SUBSCRIBED", n, 3, 3)?;
            Message::Subscribed(Subscribed {
                request: id(r, "SUBSCRIBED", "Request")?,
                subscription: id(r, "SUBSCRIBED", "Subscription")?,
            })
        }
        code::UNSUBSCRIBE => {
            arity("UNSUBSCRIBE", n, 3, 3)?;
            Message::Unsubscribe(Unsubscribe {
                request: id(r, "UNSUBSCRIBE", "Request")?,
                subscription: id(r, "UNSUBSCRIBE", "Subscription")?,
            })
        }
        code::UNSUBSCRIBED => {
            arity("UNSUBSCRIBED", n, 2, 3)?;
            let request = id(r, "UNSUBSCRIBED", "Request")?;
            let details = if n == 3 {
                Some(r.read_dict("UNSUBSCRIBED", "Details")?)
            } else {
                None
            };
            Message::Unsubscribed(Unsubscribed { request, details })
        }
        code::EVENT => {
            arity("EVENT", n, 4, 6)?;
            Message::Event(Box::new(Event {
                subscription: id(r, "EVENT", "Subscription")?,
                publication: id(r, "EVENT", "Publication")?,
                details: opts(r, "EVENT", "Details")?,
                payload: payload(r, "EVENT", 4)?,
            }))
        }
        code::EVENT_RECEIVED => {
            arity("EVENT_RECEIVED", n, 2, 5)?;
            let publication = id(r, "EVENT_RECEIVED", "Publication")?;
            let details = if n >= 3 {
                Some(r.read_dict("EVENT_RECEIVED", "Details")?)
            } else {
                None
            };
            let payload = if n >= 4 {
                payload(r, "EVENT_RECEIVED", 3)?
            } else {
                Payload::Empty
            };
            Message::EventReceived(EventReceived {
                publication,
                details,
                payload,
            })
        }
        code::CALL => {
            arity("CALL", n, 4, 6)?;
            Message::Call(Box::new(Call {
                request: id(r, "CALL", "Request")?,
                options: opts(r, "CALL", "Options")?,
                procedure: uri(r, "CALL", "Procedure")?,
                payload: payload(r, "CALL", 4)?,
            }))
        }
        code::CANCEL => {
            arity("CANCEL", n, 3, 3)?;
            Message::Cancel(Cancel {
                request: id(r, "CANCEL", "Request")?,
                options: opts(r, "CANCEL", "Options")?,
            })
        }
        code::RESULT => {
            arity("RESULT", n, 3, 5)?;
            Message::Result(Box::new(CallResult {
                request: id(r, "RESULT", "Request")?,
                details: opts(r, "RESULT", "Details")?,
                payload: payload(r, "RESULT", 3)?,
            }))
        }
        code::REGISTER => {
            arity("REGISTER", n, 4, 4)?;
            Message::Register(Register {
                request: id(r, "REGISTER", "Request")?,
                options: opts(r, "REGISTER", "Options")?,
                procedure: uri(r, "REGISTER", "Procedure")?,
            })
        }
        code::REGISTERED => {
            arity("REGISTERED", n, 3, 3)?;
            Message::Registered(Registered {
                request: id(r, "REGISTERED", "Request")?,
                registration: id(r, "REGISTERED", "Registration")?,
            })
        }
        code::UNREGISTER => {
            arity("UNREGISTER", n, 3, 3)?;
            Message::Unregister(Unregister {
                request: id(r, "UNREGISTER", "Request")?,
                registration: id(r, "UNREGISTER", "Registration")?,
            })
        }
        code::UNREGISTERED => {
            arity("UNREGISTERED", n, 2, 3)?;
            let request = id(r, "UNREGISTERED", "Request")?;
            let details = if n == 3 {
                Some(r.read_dict("UNREGISTERED", "Details")?)
            } else {
                None
            };
            Message::Unregistered(Unregistered { request, details })
        }
        code::INVOCATION => {
            arity("INVOCATION", n, 4, 6)?;
            Message::Invocation(Box::new(Invocation {
                request: id(r, "INVOCATION", "Request")?,
                registration: id(r, "INVOCATION", "Registration")?,
                details: opts(r, "INVOCATION", "Details")?,
                payload: payload(r, "INVOCATION", 4)?,
            }))
        }
        code::INTERRUPT => {
            arity("INTERRUPT", n, 3, 3)?;
            Message::Interrupt(Interrupt {
                request: id(r, "INTERRUPT", "Request")?,
                options: opts(r, "INTERRUPT", "Options")?,
            })
        }
        code::YIELD => {
            arity("YIELD", n, 3, 5)?;
            Message::Yield(Box::new(Yield {
                request: id(r, "YIELD", "Request")?,
                options: opts(r, "YIELD", "Options")?,
                payload: payload(r, "YIELD", 3)?,
            }))
        }
        other => return Err(DecodeError::UnknownMessageType(other)),
    };
    Ok(m)
}

/// Encodes one message through a writer.
pub(crate) fn encode_message<W: ElementWriter>(m: &Message, w: &mut W) {
    match m {
        Message::Hello(x) => {
            w.begin(3);
            w.int(code::HELLO);
            w.str(&x.realm);
            w.options(&x.details);
        }
        Message::Welcome(x) => {
            w.begin(3);
            w.int(code::WELCOME);
            w.int(x.session);
            w.options(&x.details);
        }
        Message::Abort(x) => {
            w.begin(3);
            w.int(code::ABORT);
            w.options(&x.details);
            w.str(&x.reason);
        }
        Message::Challenge(x) => {
            w.begin(3);
            w.int(code::CHALLENGE);
            w.str(&x.method);
            w.options(&x.extra);
        }
        Message::Authenticate(x) => {
            w.begin(3);
            w.int(code::AUTHENTICATE);
            w.str(&x.signature);
            w.options(&x.extra);
        }
        Message::Goodbye(x) => {
            w.begin(3);
            w.int(code::GOODBYE);
            w.options(&x.details);
            w.str(&x.reason);
        }
        Message::Error(x) => {
            w.begin(5 + x.payload.element_count());
            w.int(code::ERROR);
            w.int(x.request_type);
            w.int(x.request);
            w.options(&x.details);
            w.str(&x.error);
            w.payload(&x.payload);
        }
        Message::Publish(x) => {
            w.begin(4 + x.payload.element_count());
            w.int(code::PUBLISH);
            w.int(x.request);
            w.options(&x.options);
            w.str(&x.topic);
            w.payload(&x.payload);
        }
        Message::Published(x) => {
            w.begin(3);
            w.int(code::PUBLISHED);
            w.int(x.request);
            w.int(x.publication);
        }
        Message::Subscribe(x) => {
            w.begin(4);
            w.int(code::SUBSCRIBE);
            w.int(x.request);
            w.options(&x.options);
            w.str(&x.topic);
        }
        Message::Subscribed(x) => {
            w.begin(3);
            w.int(code::SUBSCRIBED);
            w.int(x.request);
            w.int(x.subscription);
        }
        Message::Unsubscribe(x) => {
            w.begin(3);
            w.int(code::UNSUBSCRIBE);
            w.int(x.request);
            w.int(x.subscription);
        }
        Message::Unsubscribed(x) => {
            w.begin(2 + x.details.is_some() as usize);
            w.int(code::UNSUBSCRIBED);
            w.int(x.request);
            if let Some(d) = &x.details {
                w.options(d);
            }
        }
        Message::Event(x) => {
            w.begin(4 + x.payload.element_count());
            w.int(code::EVENT);
            w.int(x.subscription);
            w.int(x.publication);
            w.options(&x.details);
            w.payload(&x.payload);
        }
        Message::EventReceived(x) => {
            let pl = x.payload.element_count();
            let has_details = x.details.is_some() || pl > 0;
            w.begin(2 + has_details as usize + pl);
            w.int(code::EVENT_RECEIVED);
            w.int(x.publication);
            if has_details {
                match &x.details {
                    Some(d) => w.options(d),
                    None => w.options(&Dict::new()),
                }
            }
            w.payload(&x.payload);
        }
        Message::Call(x) => {
            w.begin(4 + x.payload.element_count());
            w.int(code::CALL);
            w.int(x.request);
            w.options(&x.options);
            w.str(&x.procedure);
            w.payload(&x.payload);
        }
        Message::Cancel(x) => {
            w.begin(3);
            w.int(code::CANCEL);
            w.int(x.request);
            w.options(&x.options);
        }
        Message::Result(x) => {
            w.begin(3 + x.payload.element_count());
            w.int(code::RESULT);
            w.int(x.request);
            w.options(&x.details);
            w.payload(&x.payload);
        }
        Message::Register(x) => {
            w.begin(4);
            w.int(code::REGISTER);
            w.int(x.request);
            w.options(&x.options);
            w.str(&x.procedure);
        }
        Message::Registered(x) => {
            w.begin(3);
            w.int(code::REGISTERED);
            w.int(x.request);
            w.int(x.registration);
        }
        Message::Unregister(x) => {
            w.begin(3);
            w.int(code::UNREGISTER);
            w.int(x.request);
            w.int(x.registration);
        }
        Message::Unregistered(x) => {
            w.begin(2 + x.details.is_some() as usize);
            w.int(code::UNREGISTERED);
            w.int(x.request);
            if let Some(d) = &x.details {
                w.options(d);
            }
        }
        Message::Invocation(x) => {
            w.begin(4 + x.payload.element_count());
            w.int(code::INVOCATION);
            w.int(x.request);
            w.int(x.registration);
            w.options(&x.details);
            w.payload(&x.payload);
        }
        Message::Interrupt(x) => {
            w.begin(3);
            w.int(code::INTERRUPT);
            w.int(x.request);
            w.options(&x.options);
        }
        Message::Yield(x) => {
            w.begin(3 + x.payload.element_count());
            w.int(code::YIELD);
            w.int(x.request);
            w.options(&x.options);
            w.payload(&x.payload);
        }
    }
    w.end();
}
