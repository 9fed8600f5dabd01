//! The WAMP messages of the Basic and Advanced Profile, one struct each.
//!
//! Each struct's doc comment gives its wire shape as the specification writes it. Optional
//! trailing elements (`Arguments|list`, `ArgumentsKw|dict`) are folded into a [`Payload`].

use super::options::*;
use super::payload::Payload;
use super::value::Dict;
use super::Uri;

/// A WAMP ID (session, request, subscription, registration, publication): an integer in
/// `[0, 2^53]`.
pub type Id = u64;

/// Message type codes.
pub mod code {
    pub const HELLO: u64 = 1;
    pub const WELCOME: u64 = 2;
    pub const ABORT: u64 = 3;
    pub const CHALLENGE: u64 = 4;
    pub const AUTHENTICATE: u64 = 5;
    pub const GOODBYE: u64 = 6;
    pub const ERROR: u64 = 8;
    pub const PUBLISH: u64 = 16;
    pub const PUBLISHED: u64 = 17;
    pub const SUBSCRIBE: u64 = 32;
    pub const SUBSCRIBED: u64 = 33;
    pub const UNSUBSCRIBE: u64 = 34;
    pub const UNSUBSCRIBED: u64 = 35;
    pub const EVENT: u64 = 36;
    pub const CALL: u64 = 48;
    pub const CANCEL: u64 = 49;
    pub const RESULT: u64 = 50;
    pub const REGISTER: u64 = 64;
    pub const REGISTERED: u64 = 65;
    pub const UNREGISTER: u64 = 66;
    pub const UNREGISTERED: u64 = 67;
    pub const INVOCATION: u64 = 68;
    pub const INTERRUPT: u64 = 69;
    pub const YIELD: u64 = 70;
    pub const EVENT_RECEIVED: u64 = 337;
}

/// `[HELLO, Realm|uri, Details|dict]`
#[derive(Debug, Clone, PartialEq)]
pub struct Hello {
    pub realm: Uri,
    pub details: HelloDetails,
}

/// `[WELCOME, Session|id, Details|dict]`
#[derive(Debug, Clone, PartialEq)]
pub struct Welcome {
    pub session: Id,
    pub details: WelcomeDetails,
}

/// `[ABORT, Details|dict, Reason|uri]`
#[derive(Debug, Clone, PartialEq)]
pub struct Abort {
    pub details: Dict,
    pub reason: Uri,
}

/// `[CHALLENGE, AuthMethod|string, Extra|dict]`
#[derive(Debug, Clone, PartialEq)]
pub struct Challenge {
    pub method: String,
    pub extra: Dict,
}

/// `[AUTHENTICATE, Signature|string, Extra|dict]`
#[derive(Debug, Clone, PartialEq)]
pub struct Authenticate {
    pub signature: String,
    pub extra: Dict,
}

/// `[GOODBYE, Details|dict, Reason|uri]`
#[derive(Debug, Clone, PartialEq)]
pub struct Goodbye {
    pub details: Dict,
    pub reason: Uri,
}

/// `[ERROR, REQUEST.Type|int, REQUEST.Request|id, Details|dict, Error|uri, Arguments|list,
/// ArgumentsKw|dict]` (the last two optional)
#[derive(Debug, Clone, PartialEq)]
pub struct Error {
    pub request_type: u64,
    pub request: Id,
    pub details: Dict,
    pub error: Uri,
    pub payload: Payload,
}

/// `[PUBLISH, Request|id, Options|dict, Topic|uri, Arguments|list, ArgumentsKw|dict]`
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    pub request: Id,
    pub options: PublishOptions,
    pub topic: Uri,
    pub payload: Payload,
}

/// `[PUBLISHED, PUBLISH.Request|id, Publication|id]`
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub request: Id,
    pub publication: Id,
}

/// `[SUBSCRIBE, Request|id, Options|dict, Topic|uri]`
#[derive(Debug, Clone, PartialEq)]
pub struct Subscribe {
    pub request: Id,
    pub options: SubscribeOptions,
    pub topic: Uri,
}

/// `[SUBSCRIBED, SUBSCRIBE.Request|id, Subscription|id]`
#[derive(Debug, Clone, PartialEq)]
pub struct Subscribed {
    pub request: Id,
    pub subscription: Id,
}

/// `[UNSUBSCRIBE, Request|id, SUBSCRIBED.Subscription|id]`
#[derive(Debug, Clone, PartialEq)]
pub struct Unsubscribe {
    pub request: Id,
    pub subscription: Id,
}

/// `[UNSUBSCRIBED, UNSUBSCRIBE.Request|id]`, or with subscription revocation
/// `[UNSUBSCRIBED, 0, Details|dict]`
#[derive(Debug, Clone, PartialEq)]
pub struct Unsubscribed {
    pub request: Id,
    pub details: Option<Dict>,
}

/// `[EVENT, SUBSCRIBED.Subscription|id, PUBLISHED.Publication|id, Details|dict,
/// PUBLISH.Arguments|list, PUBLISH.ArgumentsKw|dict]`
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub subscription: Id,
    pub publication: Id,
    pub details: EventDetails,
    pub payload: Payload,
}

/// `[EVENT_RECEIVED, EVENT.Publication|id, Details|dict, Arguments|list, ArgumentsKw|dict]`
/// (acknowledged event delivery; everything after the publication is optional)
#[derive(Debug, Clone, PartialEq)]
pub struct EventReceived {
    pub publication: Id,
    pub details: Option<Dict>,
    pub payload: Payload,
}

/// `[CALL, Request|id, Options|dict, Procedure|uri, Arguments|list, ArgumentsKw|dict]`
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub request: Id,
    pub options: CallOptions,
    pub procedure: Uri,
    pub payload: Payload,
}

/// `[CANCEL, CALL.Request|id, Options|dict]`
#[derive(Debug, Clone, PartialEq)]
pub struct Cancel {
    pub request: Id,
    pub options: CancelOptions,
}

/// `[RESULT, CALL.Request|id, Details|dict, YIELD.Arguments|list, YIELD.ArgumentsKw|dict]`
#[derive(Debug, Clone, PartialEq)]
pub struct CallResult {
    pub request: Id,
    pub details: ResultDetails,
    pub payload: Payload,
}

/// `[REGISTER, Request|id, Options|dict, Procedure|uri]`
#[derive(Debug, Clone, PartialEq)]
pub struct Register {
    pub request: Id,
    pub options: RegisterOptions,
    pub procedure: Uri,
}

/// `[REGISTERED, REGISTER.Request|id, Registration|id]`
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    pub request: Id,
    pub registration: Id,
}

/// `[UNREGISTER, Request|id, REGISTERED.Registration|id]`
#[derive(Debug, Clone, PartialEq)]
pub struct Unregister {
    pub request: Id,
    pub registration: Id,
}

/// `[UNREGISTERED, UNREGISTER.Request|id]`, or with registration revocation
/// `[UNREGISTERED, 0, Details|dict]`
#[derive(Debug, Clone, PartialEq)]
pub struct Unregistered {
    pub request: Id,
    pub details: Option<Dict>,
}

/// `[INVOCATION, Request|id, REGISTERED.Registration|id, Details|dict, CALL.Arguments|list,
/// CALL.ArgumentsKw|dict]`
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    pub request: Id,
    pub registration: Id,
    pub details: InvocationDetails,
    pub payload: Payload,
}

/// `[INTERRUPT, INVOCATION.Request|id, Options|dict]`
#[derive(Debug, Clone, PartialEq)]
pub struct Interrupt {
    pub request: Id,
    pub options: InterruptOptions,
}

/// `[YIELD, INVOCATION.Request|id, Options|dict, Arguments|list, ArgumentsKw|dict]`
#[derive(Debug, Clone, PartialEq)]
pub struct Yield {
    pub request: Id,
    pub options: YieldOptions,
    pub payload: Payload,
}

/// Any WAMP message.
///
/// The variants whose structs are larger than 120 bytes (HELLO, WELCOME, ERROR, PUBLISH,
/// EVENT, CALL, RESULT, INVOCATION, YIELD: 128–480 bytes, mostly rarely used options) are
/// boxed, so a `Message` is at most 128 bytes: the router moves each message through several
/// layers, and the compiler copies up to 128 bytes inline but calls `memcpy` above that (see
/// `bench/FINDINGS.md`, "Boxed variants" and "A message fits in 128 bytes"). Build one with
/// `Message::from(call)` or `call.into()`.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    Hello(Box<Hello>),
    Welcome(Box<Welcome>),
    Abort(Abort),
    Challenge(Challenge),
    Authenticate(Authenticate),
    Goodbye(Goodbye),
    Error(Box<Error>),
    Publish(Box<Publish>),
    Published(Published),
    Subscribe(Subscribe),
    Subscribed(Subscribed),
    Unsubscribe(Unsubscribe),
    Unsubscribed(Unsubscribed),
    Event(Box<Event>),
    EventReceived(EventReceived),
    Call(Box<Call>),
    Cancel(Cancel),
    Result(Box<CallResult>),
    Register(Register),
    Registered(Registered),
    Unregister(Unregister),
    Unregistered(Unregistered),
    Invocation(Box<Invocation>),
    Interrupt(Interrupt),
    Yield(Box<Yield>),
}

macro_rules! message_from {
    ($($variant:ident($ty:ty)),* ; $($boxed:ident($bty:ty)),*) => {
        $(impl From<$ty> for Message {
            fn from(m: $ty) -> Self {
                Message::$variant(m)
            }
        })*
        $(impl From<$bty> for Message {
            fn from(m: $bty) -> Self {
                Message::$boxed(Box::new(m))
            }
        })*
    };
}

message_from!(
    Abort(Abort), Challenge(Challenge), Authenticate(Authenticate),
    Goodbye(Goodbye), Published(Published), Subscribe(Subscribe),
    Subscribed(Subscribed), Unsubscribe(Unsubscribe), Unsubscribed(Unsubscribed),
    EventReceived(EventReceived), Cancel(Cancel), Register(Register),
    Registered(Registered), Unregister(Unregister), Unregistered(Unregistered),
    Interrupt(Interrupt);
    Hello(Hello), Error(Error), Result(CallResult), Yield(Yield), Welcome(Welcome), Publish(Publish), Event(Event), Call(Call), Invocation(Invocation)
);

impl Message {
    /// The message type code.
    pub fn code(&self) -> u64 {
        match self {
            Message::Hello(_) => code::HELLO,
            Message::Welcome(_) => code::WELCOME,
            Message::Abort(_) => code::ABORT,
            Message::Challenge(_) => code::CHALLENGE,
            Message::Authenticate(_) => code::AUTHENTICATE,
            Message::Goodbye(_) => code::GOODBYE,
            Message::Error(_) => code::ERROR,
            Message::Publish(_) => code::PUBLISH,
            Message::Published(_) => code::PUBLISHED,
            Message::Subscribe(_) => code::SUBSCRIBE,
            Message::Subscribed(_) => code::SUBSCRIBED,
            Message::Unsubscribe(_) => code::UNSUBSCRIBE,
            Message::Unsubscribed(_) => code::UNSUBSCRIBED,
            Message::Event(_) => code::EVENT,
            Message::EventReceived(_) => code::EVENT_RECEIVED,
            Message::Call(_) => code::CALL,
            Message::Cancel(_) => code::CANCEL,
            Message::Result(_) => code::RESULT,
            Message::Register(_) => code::REGISTER,
            Message::Registered(_) => code::REGISTERED,
            Message::Unregister(_) => code::UNREGISTER,
            Message::Unregistered(_) => code::UNREGISTERED,
            Message::Invocation(_) => code::INVOCATION,
            Message::Interrupt(_) => code::INTERRUPT,
            Message::Yield(_) => code::YIELD,
        }
    }

    /// The message name as the specification spells it.
    pub fn name(&self) -> &'static str {
        name_of(self.code())
    }
}

/// The specification's name for a message type code.
pub fn name_of(code: u64) -> &'static str {
    match code {
        code::HELLO => "HELLO",
        code::WELCOME => "WELCOME",
        code::ABORT => "ABORT",
        code::CHALLENGE => "CHALLENGE",
        code::AUTHENTICATE => "AUTHENTICATE",
        code::GOODBYE => "GOODBYE",
        code::ERROR => "ERROR",
        code::PUBLISH => "PUBLISH",
        code::PUBLISHED => "PUBLISHED",
        code::SUBSCRIBE => "SUBSCRIBE",
        code::SUBSCRIBED => "SUBSCRIBED",
        code::UNSUBSCRIBE => "UNSUBSCRIBE",
        code::UNSUBSCRIBED => "UNSUBSCRIBED",
        code::EVENT => "EVENT",
        code::EVENT_RECEIVED => "EVENT_RECEIVED",
        code::CALL => "CALL",
        code::CANCEL => "CANCEL",
        code::RESULT => "RESULT",
        code::REGISTER => "REGISTER",
        code::REGISTERED => "REGISTERED",
        code::UNREGISTER => "UNREGISTER",
        code::UNREGISTERED => "UNREGISTERED",
        code::INVOCATION => "INVOCATION",
        code::INTERRUPT => "INTERRUPT",
        code::YIELD => "YIELD",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod size_tests {
    /// The router moves messages by value through its layers; above 128 bytes each move is a
    /// `memcpy` call (see the doc of [`super::Message`]). A new large variant must be boxed.
    #[test]
    fn a_message_fits_in_128_bytes() {
        assert!(std::mem::size_of::<super::Message>() <= 128);
    }
}
