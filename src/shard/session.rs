//! The session state machine, sans-IO.
//!
//! `HELLO → WELCOME → … → GOODBYE`, with ABORT on protocol errors as the specification's
//! "Protocol Errors" section lists them. It is fed decoded messages (or decode errors) and
//! returns [`SessionOutput`]s; the connection driver in `conn.rs` does the IO, and messages for
//! the broker or dealer are handed out as [`SessionOutput::Route`].

use crate::codec::options::{DictField, HelloDetails, Options, WelcomeDetails};
use crate::codec::uri::{validate_uri, UriCheck};
use crate::codec::{code, Abort, DecodeError, Dict, Goodbye, Id, Message, Uri, Value, Welcome};
use crate::routing::Features;
use std::rc::Rc;

/// Where the session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Transport open, waiting for HELLO.
    AwaitingHello,
    /// WELCOME sent.
    Established,
    /// The router sent GOODBYE (shutdown, kill) and waits for the client's GOODBYE.
    Closing,
    /// Nothing more is processed.
    Closed,
}

/// What the driver must do after feeding a message.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionOutput {
    /// Send this message to the peer.
    Reply(Message),
    /// The session joined this realm (after WELCOME was queued).
    Joined { realm: Uri },
    /// Hand this message to the realm's broker or dealer.
    Route(Message),
    /// Flush what is queued, then close the transport; the session is over.
    Close,
}

/// What the router knows about realms, as the session needs it.
pub trait RealmDirectory {
    /// Whether `realm` exists and admits anonymous sessions.
    fn admits_anonymous(&self, realm: &str) -> bool;
    /// Whether `realm` exists at all.
    fn exists(&self, realm: &str) -> bool;
}

/// The features this router implements, announced in WELCOME.
pub fn router_roles(broker_features: &[&str], dealer_features: &[&str]) -> Value {
    let features = |fs: &[&str]| {
        let mut f = Dict::new();
        for name in fs {
            f.insert((*name).to_owned(), Value::Bool(true));
        }
        let mut role = Dict::new();
        role.insert("features".into(), Value::Dict(f));
        Value::Dict(role)
    };
    let mut roles = Dict::new();
    roles.insert("broker".into(), features(broker_features));
    roles.insert("dealer".into(), features(dealer_features));
    Value::Dict(roles)
}

/// One session's protocol state.
pub struct Session {
    pub id: Id,
    pub state: State,
    pub realm: Option<Uri>,
    pub authid: String,
    pub authrole: String,
    /// The features the client announced in HELLO that the router acts on.
    pub features: Features,
    /// The WELCOME.Details.roles value, shared by all sessions of a shard (an idle session
    /// must not carry its own copy).
    roles: Rc<Value>,
}

fn abort(reason: &str, message: String) -> Message {
    let mut details = Dict::new();
    details.insert("message".into(), Value::Str(message));
    Message::Abort(Abort {
        details,
        reason: Uri::from(reason),
    })
}

/// The ABORT for a frame that failed to decode.
pub fn abort_for_decode_error(e: &DecodeError) -> Message {
    abort("wamp.error.protocol_violation", e.to_string())
}

impl Session {
    pub fn new(id: Id, roles: Rc<Value>) -> Self {
        Session {
            id,
            state: State::AwaitingHello,
            realm: None,
            authid: String::new(),
            authrole: String::new(),
            features: Features::default(),
            roles,
        }
    }

    fn violation(&mut self, text: String, out: &mut Vec<SessionOutput>) {
        self.state = State::Closed;
        out.push(SessionOutput::Reply(abort(
            "wamp.error.protocol_violation",
            text,
        )));
        out.push(SessionOutput::Close);
    }

    /// A frame could not be decoded: protocol violation.
    pub fn on_decode_error(&mut self, e: &DecodeError, out: &mut Vec<SessionOutput>) {
        if self.state != State::Closed {
            self.state = State::Closed;
            out.push(SessionOutput::Reply(abort_for_decode_error(e)));
            out.push(SessionOutput::Close);
        }
    }

    /// The router closes the session (shutdown, kill): GOODBYE, then wait for the reply.
    pub fn close_with_goodbye(
        &mut self,
        reason: &str,
        message: &str,
        out: &mut Vec<SessionOutput>,
    ) {
        match self.state {
            State::Established => {
                let mut details = Dict::new();
                if !message.is_empty() {
                    details.insert("message".into(), Value::Str(message.to_owned()));
                }
                out.push(SessionOutput::Reply(Message::Goodbye(Goodbye {
                    details,
                    reason: Uri::from(reason),
                })));
                self.state = State::Closing;
            }
            State::AwaitingHello => {
                self.state = State::Closed;
                out.push(SessionOutput::Reply(abort(reason, message.to_owned())));
                out.push(SessionOutput::Close);
            }
            State::Closing | State::Closed => {}
        }
    }

    /// HELLO did not arrive in time.
    pub fn on_hello_timeout(&mut self, out: &mut Vec<SessionOutput>) {
        if self.state == State::AwaitingHello {
            self.state = State::Closed;
            out.push(SessionOutput::Reply(abort(
                "wamp.error.timeout",
                "no HELLO received in time".into(),
            )));
            out.push(SessionOutput::Close);
        }
    }

    /// Feeds one decoded message.
    pub fn on_message<D: RealmDirectory + ?Sized>(
        &mut self,
        msg: Message,
        realms: &D,
        out: &mut Vec<SessionOutput>,
    ) {
        match self.state {
            State::Closed => {}
            State::AwaitingHello => self.before_welcome(msg, realms, out),
            State::Established => self.established(msg, out),
            State::Closing => match msg {
                Message::Goodbye(_) | Message::Abort(_) => {
                    self.state = State::Closed;
                    out.push(SessionOutput::Close);
                }
                // The router is closing: late requests are not processed.
                _ => {}
            },
        }
    }

    fn before_welcome<D: RealmDirectory + ?Sized>(
        &mut self,
        msg: Message,
        realms: &D,
        out: &mut Vec<SessionOutput>,
    ) {
        match msg {
            Message::Hello(h) => {
                if validate_uri(&h.realm, UriCheck::Loose).is_err() {
                    self.state = State::Closed;
                    out.push(SessionOutput::Reply(abort(
                        "wamp.error.invalid_uri",
                        format!("invalid realm URI {:?}", h.realm.as_str()),
                    )));
                    out.push(SessionOutput::Close);
                    return;
                }
                if !realms.exists(&h.realm) {
                    self.state = State::Closed;
                    out.push(SessionOutput::Reply(abort(
                        "wamp.error.no_such_realm",
                        format!("realm {:?} does not exist", h.realm.as_str()),
                    )));
                    out.push(SessionOutput::Close);
                    return;
                }
                if !offers_anonymous(&h.details) || !realms.admits_anonymous(&h.realm) {
                    self.state = State::Closed;
                    out.push(SessionOutput::Reply(abort(
                        "wamp.error.no_matching_auth_method",
                        "no offered authentication method is available".into(),
                    )));
                    out.push(SessionOutput::Close);
                    return;
                }
                self.welcome(h.realm, h.details, out);
            }
            Message::Abort(_) => {
                self.state = State::Closed;
                out.push(SessionOutput::Close);
            }
            other => self.violation(
                format!(
                    "received {} before the session was established",
                    other.name()
                ),
                out,
            ),
        }
    }

    fn welcome(&mut self, realm: Uri, hello: HelloDetails, out: &mut Vec<SessionOutput>) {
        self.authid = format!("anonymous-{}", self.id);
        self.authrole = "anonymous".into();
        self.features = hello
            .roles
            .as_ref()
            .and_then(|r| r.dict())
            .map(Features::from_roles)
            .unwrap_or_default();
        let details = WelcomeDetails {
            roles: Some(DictField((*self.roles).clone())),
            realm: Some(realm.to_string()),
            authid: Some(self.authid.clone()),
            authrole: Some(self.authrole.clone()),
            authmethod: Some("anonymous".into()),
            authprovider: Some("static".into()),
            agent: Some(concat!("switchyard-", env!("CARGO_PKG_VERSION")).into()),
            ..Default::default()
        };
        out.push(SessionOutput::Reply(Message::Welcome(Welcome {
            session: self.id,
            details,
        })));
        self.state = State::Established;
        self.realm = Some(realm.clone());
        out.push(SessionOutput::Joined { realm });
    }

    fn established(&mut self, msg: Message, out: &mut Vec<SessionOutput>) {
        match msg {
            Message::Goodbye(_) => {
                out.push(SessionOutput::Reply(Message::Goodbye(Goodbye {
                    details: Dict::new(),
                    reason: Uri::from("wamp.close.goodbye_and_out"),
                })));
                self.state = State::Closed;
                out.push(SessionOutput::Close);
            }
            Message::Abort(_) => {
                self.state = State::Closed;
                out.push(SessionOutput::Close);
            }
            Message::Error(ref e) if e.request_type != code::INVOCATION => self.violation(
                format!("ERROR with invalid REQUEST.Type {}", e.request_type),
                out,
            ),
            Message::Publish(_)
            | Message::Subscribe(_)
            | Message::Unsubscribe(_)
            | Message::Call(_)
            | Message::Cancel(_)
            | Message::Register(_)
            | Message::Unregister(_)
            | Message::Yield(_)
            | Message::Error(_)
            | Message::EventReceived(_) => out.push(SessionOutput::Route(msg)),
            other => self.violation(
                format!(
                    "received {} after the session was established",
                    other.name()
                ),
                out,
            ),
        }
    }
}

/// Whether HELLO allows anonymous authentication (no `authmethods`, or it lists `anonymous`).
fn offers_anonymous(d: &HelloDetails) -> bool {
    match &d.authmethods {
        None => true,
        Some(m) => m.is_empty() || m.iter().any(|x| x == "anonymous"),
    }
}

/// Convenience for tests and the meta API: the WELCOME details as a dict.
pub fn welcome_dict(w: &Welcome) -> Dict {
    w.details.to_dict()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Hello, Subscribe, SubscribeOptions};

    struct Realms;
    impl RealmDirectory for Realms {
        fn admits_anonymous(&self, realm: &str) -> bool {
            realm == "realm1"
        }
        fn exists(&self, realm: &str) -> bool {
            realm == "realm1" || realm == "closed"
        }
    }

    fn hello(realm: &str) -> Message {
        Message::Hello(Hello {
            realm: Uri::from(realm),
            details: HelloDetails::default(),
        })
    }

    fn reason(out: &[SessionOutput]) -> Option<String> {
        out.iter().find_map(|o| match o {
            SessionOutput::Reply(Message::Abort(a)) => Some(a.reason.to_string()),
            SessionOutput::Reply(Message::Goodbye(g)) => Some(g.reason.to_string()),
            _ => None,
        })
    }

    fn session() -> Session {
        Session::new(7, Rc::new(router_roles(&[], &[])))
    }

    #[test]
    fn hello_welcome_goodbye() {
        let mut s = session();
        let mut out = Vec::new();
        s.on_message(hello("realm1"), &Realms, &mut out);
        assert!(matches!(&out[0], SessionOutput::Reply(Message::Welcome(w)) if w.session == 7));
        assert!(matches!(&out[1], SessionOutput::Joined { realm } if &**realm == "realm1"));
        assert_eq!(s.state, State::Established);
        out.clear();
        s.on_message(
            Message::Goodbye(Goodbye {
                details: Dict::new(),
                reason: Uri::from("wamp.close.close_realm"),
            }),
            &Realms,
            &mut out,
        );
        assert_eq!(reason(&out).as_deref(), Some("wamp.close.goodbye_and_out"));
        assert_eq!(out.last(), Some(&SessionOutput::Close));
    }

    #[test]
    fn unknown_realm_and_bad_realm() {
        let mut s = session();
        let mut out = Vec::new();
        s.on_message(hello("nope"), &Realms, &mut out);
        assert_eq!(reason(&out).as_deref(), Some("wamp.error.no_such_realm"));
        let mut s = session();
        let mut out = Vec::new();
        s.on_message(hello("a..b"), &Realms, &mut out);
        assert_eq!(reason(&out).as_deref(), Some("wamp.error.invalid_uri"));
        let mut s = session();
        let mut out = Vec::new();
        s.on_message(hello("closed"), &Realms, &mut out);
        assert_eq!(
            reason(&out).as_deref(),
            Some("wamp.error.no_matching_auth_method")
        );
    }

    #[test]
    fn second_hello_is_a_violation() {
        let mut s = session();
        let mut out = Vec::new();
        s.on_message(hello("realm1"), &Realms, &mut out);
        out.clear();
        s.on_message(hello("realm1"), &Realms, &mut out);
        assert_eq!(
            reason(&out).as_deref(),
            Some("wamp.error.protocol_violation")
        );
        assert_eq!(s.state, State::Closed);
    }

    #[test]
    fn request_before_hello_is_a_violation() {
        let mut s = session();
        let mut out = Vec::new();
        s.on_message(
            Message::Subscribe(Subscribe {
                request: 1,
                options: SubscribeOptions::default(),
                topic: Uri::from("a.b"),
            }),
            &Realms,
            &mut out,
        );
        assert_eq!(
            reason(&out).as_deref(),
            Some("wamp.error.protocol_violation")
        );
    }

    #[test]
    fn routes_requests_and_rejects_router_messages() {
        let mut s = session();
        let mut out = Vec::new();
        s.on_message(hello("realm1"), &Realms, &mut out);
        out.clear();
        let sub = Message::Subscribe(Subscribe {
            request: 1,
            options: SubscribeOptions::default(),
            topic: Uri::from("a.b"),
        });
        s.on_message(sub.clone(), &Realms, &mut out);
        assert_eq!(out, vec![SessionOutput::Route(sub)]);
        out.clear();
        s.on_message(
            Message::Welcome(Welcome {
                session: 1,
                details: WelcomeDetails::default(),
            }),
            &Realms,
            &mut out,
        );
        assert_eq!(
            reason(&out).as_deref(),
            Some("wamp.error.protocol_violation")
        );
    }

    #[test]
    fn shutdown_goodbye_waits_for_reply() {
        let mut s = session();
        let mut out = Vec::new();
        s.on_message(hello("realm1"), &Realms, &mut out);
        out.clear();
        s.close_with_goodbye("wamp.close.system_shutdown", "", &mut out);
        assert_eq!(reason(&out).as_deref(), Some("wamp.close.system_shutdown"));
        assert_eq!(s.state, State::Closing);
        out.clear();
        s.on_message(
            Message::Goodbye(Goodbye {
                details: Dict::new(),
                reason: Uri::from("wamp.close.goodbye_and_out"),
            }),
            &Realms,
            &mut out,
        );
        assert_eq!(out, vec![SessionOutput::Close]);
    }

    #[test]
    fn hello_timeout_aborts() {
        let mut s = session();
        let mut out = Vec::new();
        s.on_hello_timeout(&mut out);
        assert_eq!(reason(&out).as_deref(), Some("wamp.error.timeout"));
    }
}
