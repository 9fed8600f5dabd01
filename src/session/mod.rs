//! The session state machine, sans-IO.
//!
//! `HELLO → [CHALLENGE → AUTHENTICATE →] WELCOME → … → GOODBYE`, with ABORT on protocol errors
//! as the specification's "Protocol Errors" section lists them. Authentication is delegated to
//! the realm's [`Authenticator`]: the first method in `HELLO.Details.authmethods` the realm
//! supports is used. It is fed decoded messages (or decode errors) and
//! returns [`SessionOutput`]s; the connection driver in `conn.rs` does the IO, and messages for
//! the broker or dealer are handed out as [`SessionOutput::Route`].

use crate::auth::dynamic::{AuthOutcome, DynamicAuth};
use crate::auth::{self, AuthFailed, AuthMethod, Authenticator, Identity, Secret};
use crate::codec::options::{DictField, HelloDetails, Options, WelcomeDetails};
use crate::codec::uri::{validate_uri, UriCheck};
use crate::codec::{
    code, Abort, Challenge, DecodeError, Dict, Goodbye, Id, Message, Uri, Value, Welcome,
};
use crate::routing::{Attributes, Features};
use std::rc::Rc;
use std::time::SystemTime;

mod ids;
pub use ids::{check_client_ids, BadId};

/// Where the session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Transport open, waiting for HELLO.
    AwaitingHello,
    /// CHALLENGE sent, waiting for AUTHENTICATE.
    Authenticating,
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
    /// Ask the realm's dynamic authenticator, then feed the outcome to
    /// [`Session::on_dynamic_auth`].
    DynamicAuth(Box<DynamicAuth>),
    /// A login failed (after its ABORT): for the operator's metric and log, never the client.
    AuthFailed(Box<AuthFailure>),
}

/// One failed login, as the session state machine reports it. No secrets: the authid the
/// client claimed is the only thing it sent that is kept.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthFailure {
    pub realm: Uri,
    /// The method that failed; None when no offered method was available.
    pub method: Option<AuthMethod>,
    pub reason: auth::FailReason,
    /// The authid the client claimed, if any.
    pub authid: Option<String>,
}

/// What the router knows about realms, as the session needs it.
pub trait RealmDirectory {
    /// Whether `realm` exists and admits anonymous sessions.
    fn admits_anonymous(&self, realm: &str) -> bool;
    /// Whether `realm` exists at all.
    fn exists(&self, realm: &str) -> bool;
    /// The authenticator of `realm`'s principals, if it has any.
    fn authenticator(&self, _realm: &str) -> Option<&Authenticator> {
        None
    }
    /// The WebSocket cookie store (`--ws-cookie`), for authmethod `cookie`.
    fn cookies(&self) -> Option<&auth::CookieStore> {
        None
    }
    /// The procedure of `realm`'s dynamic authenticator for `method`, if it has one.
    fn dynamic_authenticator(&self, _realm: &str, _method: AuthMethod) -> Option<&str> {
        None
    }
    /// Fresh random bytes for a challenge (a CSPRNG; tests may make it deterministic).
    fn entropy(&self) -> [u8; 32] {
        rand::random()
    }
    /// The wall-clock time a challenge is issued at.
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
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
    /// The authentication method used (`anonymous`, `ticket`, …), for the meta API.
    pub authmethod: String,
    /// The features the client announced in HELLO that the router acts on.
    pub features: Features,
    /// The session details publish filters test (set at WELCOME, see [`Attributes`]).
    pub attributes: Attributes,
    /// The trust level the dynamic authenticator gave (it overrides the role's); `None`
    /// otherwise.
    pub trustlevel: Option<u64>,
    /// Between CHALLENGE and AUTHENTICATE: what was asked. Boxed, so that an established
    /// session does not carry its size.
    pending: Option<Box<PendingAuth>>,
    /// Between CHALLENGE and the dynamic authenticator's answer.
    dynamic: Option<Box<DynamicPending>>,
    /// The WELCOME.Details.roles value, shared by all sessions of a shard (an idle session
    /// must not carry its own copy).
    roles: Rc<Value>,
    /// What the transport tells authentication (TLS binding, client certificate, cookie);
    /// `None` for a plain transport without a cookie.
    pub channel: Option<Box<auth::Channel>>,
    /// `WELCOME.Details.transport` (the listener's serializers and transports), when set by
    /// the runtime.
    pub transport: Option<Rc<Value>>,
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
            authmethod: String::new(),
            features: Features::default(),
            attributes: Attributes::default(),
            trustlevel: None,
            pending: None,
            dynamic: None,
            roles,
            channel: None,
            transport: None,
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
            State::AwaitingHello | State::Authenticating => {
                self.state = State::Closed;
                self.pending = None;
                out.push(SessionOutput::Reply(abort(reason, message.to_owned())));
                out.push(SessionOutput::Close);
            }
            State::Closing | State::Closed => {}
        }
    }

    /// Whether the session is still before WELCOME (the HELLO timeout runs until WELCOME).
    pub fn awaiting_welcome(&self) -> bool {
        matches!(self.state, State::AwaitingHello | State::Authenticating)
    }

    /// HELLO (or, after a CHALLENGE, AUTHENTICATE) did not arrive in time.
    pub fn on_hello_timeout(&mut self, out: &mut Vec<SessionOutput>) {
        if self.awaiting_welcome() {
            let what = if self.state == State::Authenticating {
                "no AUTHENTICATE received in time"
            } else {
                "no HELLO received in time"
            };
            self.state = State::Closed;
            self.pending = None;
            out.push(SessionOutput::Reply(abort(
                "wamp.error.timeout",
                what.into(),
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
            State::Authenticating => self.authenticating(msg, realms, out),
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
                self.start_auth(h.realm, h.details, realms, out);
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

    /// Picks the first method in HELLO.Details.authmethods that the realm supports (anonymous
    /// when HELLO names none): WELCOME for anonymous, else CHALLENGE.
    fn start_auth<D: RealmDirectory + ?Sized>(
        &mut self,
        realm: Uri,
        hello: HelloDetails,
        realms: &D,
        out: &mut Vec<SessionOutput>,
    ) {
        let anonymous = realms.admits_anonymous(&realm);
        let names_none = hello.authmethods.as_ref().is_none_or(|m| m.is_empty());
        if names_none && anonymous {
            let id = self.anonymous_identity();
            return self.welcome(realm, hello, id, out);
        }
        // Methods this router does not implement are skipped.
        let offered: Vec<AuthMethod> = hello
            .authmethods
            .iter()
            .flatten()
            .filter_map(|m| AuthMethod::parse(m))
            .collect();
        let authenticator = realms.authenticator(&realm);
        for method in offered {
            if method == AuthMethod::Anonymous {
                if anonymous {
                    let id = self.anonymous_identity();
                    return self.welcome(realm, hello, id, out);
                }
                continue;
            }
            if let Some(procedure) = realms.dynamic_authenticator(&realm, method) {
                let authid = hello
                    .authid
                    .clone()
                    .filter(|id| !authenticator.is_some_and(|a| a.knows(id)));
                if let (AuthMethod::Ticket, Some(authid)) = (method, authid) {
                    out.push(SessionOutput::Reply(Message::Challenge(Challenge {
                        method: method.as_str().into(),
                        extra: Dict::new(),
                    })));
                    self.dynamic = Some(Box::new(DynamicPending {
                        realm,
                        hello,
                        procedure: procedure.to_owned(),
                        authid,
                        method,
                        asked: false,
                    }));
                    self.state = State::Authenticating;
                    return;
                }
            }
            let Some(a) = authenticator else { break };
            let no_channel = auth::Channel::default();
            let channel = self.channel.as_deref().unwrap_or(&no_channel);
            if let Some(id) = a.identify(method, &hello, channel, &realm, realms.cookies()) {
                self.bind_cookie(realms, &realm, &id);
                return self.welcome(realm, hello, id, out);
            }
            let entropy = realms.entropy();
            if let Some((extra, pending)) =
                a.challenge_on(method, &hello, self.id, &entropy, realms.now(), channel)
            {
                out.push(SessionOutput::Reply(Message::Challenge(Challenge {
                    method: method.as_str().into(),
                    extra,
                })));
                self.pending = Some(Box::new(PendingAuth {
                    realm,
                    hello,
                    auth: pending,
                }));
                self.state = State::Authenticating;
                return;
            }
        }
        self.state = State::Closed;
        out.push(SessionOutput::Reply(abort(
            "wamp.error.no_matching_auth_method",
            "no offered authentication method is available".into(),
        )));
        out.push(SessionOutput::Close);
        out.push(SessionOutput::AuthFailed(Box::new(AuthFailure {
            authid: hello.authid.clone(),
            realm,
            method: None,
            reason: auth::FailReason::NoMatchingMethod,
        })));
    }

    fn anonymous_identity(&self) -> Identity {
        Identity {
            authid: format!("anonymous-{}", self.id),
            authrole: "anonymous".into(),
            method: AuthMethod::Anonymous,
            authextra: None,
        }
    }

    /// Remembers a successful authentication for this connection's WebSocket cookie.
    fn bind_cookie<D: RealmDirectory + ?Sized>(&self, realms: &D, realm: &str, id: &Identity) {
        if let (Some(store), Some(cookie)) = (
            realms.cookies(),
            self.channel.as_ref().and_then(|c| c.cookie.as_deref()),
        ) {
            store.bind(cookie, realm, id, std::time::Instant::now());
        }
    }

    /// After CHALLENGE: only AUTHENTICATE (or ABORT) is acceptable.
    fn authenticating<D: RealmDirectory + ?Sized>(
        &mut self,
        msg: Message,
        realms: &D,
        out: &mut Vec<SessionOutput>,
    ) {
        if let Some(d) = self.dynamic.as_mut() {
            if let (Message::Authenticate(reply), false) = (&msg, d.asked) {
                d.asked = true;
                out.push(SessionOutput::DynamicAuth(Box::new(DynamicAuth {
                    realm: d.realm.to_string(),
                    procedure: d.procedure.clone(),
                    session: self.id,
                    authid: d.authid.clone(),
                    method: d.method,
                    signature: Secret::new(reply.signature.clone()),
                    authextra: d.hello.authextra.as_ref().map(|x| x.0.clone()),
                })));
                return;
            }
            self.dynamic = None;
        }
        match msg {
            Message::Authenticate(reply) => {
                // The pending challenge is taken: it cannot be answered twice.
                let Some(p) = self.pending.take() else {
                    return self.violation("AUTHENTICATE without a CHALLENGE".into(), out);
                };
                let PendingAuth {
                    realm,
                    hello,
                    auth: pending,
                } = *p;
                let (method, reason) =
                    (pending.method(), auth::Authenticator::fail_reason(&pending));
                let result = realms
                    .authenticator(&realm)
                    .ok_or(auth::AuthFailed)
                    .and_then(|a| a.authenticate_with(pending, &reply.signature, &reply.extra));
                match result {
                    Ok(id) => {
                        self.bind_cookie(realms, &realm, &id);
                        self.welcome(realm, hello, id, out)
                    }
                    Err(e) => {
                        self.state = State::Closed;
                        out.push(SessionOutput::Reply(abort(
                            "wamp.error.authentication_failed",
                            e.to_string(),
                        )));
                        out.push(SessionOutput::Close);
                        out.push(SessionOutput::AuthFailed(Box::new(AuthFailure {
                            authid: hello.authid.clone(),
                            realm,
                            method: Some(method),
                            reason,
                        })));
                    }
                }
            }
            Message::Abort(_) => {
                self.state = State::Closed;
                self.pending = None;
                out.push(SessionOutput::Close);
            }
            other => {
                self.pending = None;
                self.violation(
                    format!("received {} while authenticating", other.name()),
                    out,
                )
            }
        }
    }

    /// The dynamic authenticator answered (or failed): WELCOME or ABORT.
    pub fn on_dynamic_auth(
        &mut self,
        result: Result<AuthOutcome, AuthFailed>,
        out: &mut Vec<SessionOutput>,
    ) {
        let Some(d) = self.dynamic.take() else {
            return;
        };
        if self.state != State::Authenticating || !d.asked {
            return;
        }
        let DynamicPending {
            realm,
            hello,
            authid,
            method,
            ..
        } = *d;
        match result {
            Ok(outcome) => {
                self.trustlevel = outcome.trustlevel;
                let start = out.len();
                self.welcome(realm, hello, outcome.identity, out);
                for o in &mut out[start..] {
                    if let SessionOutput::Reply(Message::Welcome(w)) = o {
                        w.details.authprovider = Some(auth::dynamic::PROVIDER.into());
                    }
                }
            }
            Err(e) => {
                self.state = State::Closed;
                out.push(SessionOutput::Reply(abort(
                    "wamp.error.authentication_failed",
                    e.to_string(),
                )));
                out.push(SessionOutput::Close);
                out.push(SessionOutput::AuthFailed(Box::new(AuthFailure {
                    realm,
                    method: Some(method),
                    reason: auth::FailReason::Rejected,
                    authid: Some(authid),
                })));
            }
        }
    }

    fn welcome(
        &mut self,
        realm: Uri,
        hello: HelloDetails,
        id: Identity,
        out: &mut Vec<SessionOutput>,
    ) {
        self.authid = id.authid;
        self.authrole = id.authrole;
        self.authmethod = id.method.as_str().into();
        self.features = hello
            .roles
            .as_ref()
            .and_then(|r| r.dict())
            .map(Features::from_roles)
            .unwrap_or_default();
        self.attributes = Attributes::build(
            &hello.to_dict(),
            id.authextra.as_ref(),
            id.method.as_str(),
            auth::PROVIDER,
        );
        let details = WelcomeDetails {
            roles: Some(DictField((*self.roles).clone())),
            realm: Some(realm.to_string()),
            authid: Some(self.authid.clone()),
            authrole: Some(self.authrole.clone()),
            authmethod: Some(id.method.as_str().into()),
            authprovider: Some(auth::PROVIDER.into()),
            authextra: id.authextra.map(|x| DictField(Value::Dict(x))),
            agent: Some(concat!("switchyard-", env!("CARGO_PKG_VERSION")).into()),
            ..Default::default()
        };
        let mut details = details;
        if let Some(t) = &self.transport {
            details.extra.insert("transport".into(), (**t).clone());
        }
        out.push(SessionOutput::Reply(Message::Welcome(Box::new(Welcome {
            session: self.id,
            details,
        }))));
        self.state = State::Established;
        self.realm = Some(realm.clone());
        out.push(SessionOutput::Joined { realm });
    }

    /// Whether [`Session::on_message`] would do nothing with `msg` but hand it to routing
    /// (`SessionOutput::Route`): an established session's well-formed request. The shard then
    /// routes it directly, without the output list (a message is moved, not copied, once less
    /// per layer skipped).
    pub fn routes_directly(&self, msg: &Message) -> bool {
        self.state == State::Established && is_request(msg) && check_client_ids(msg).is_ok()
    }

    fn established(&mut self, msg: Message, out: &mut Vec<SessionOutput>) {
        if let Err(bad) = check_client_ids(&msg) {
            return self.violation(bad.to_string(), out);
        }
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
            m if is_request(&m) => out.push(SessionOutput::Route(m)),
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

/// Whether an established session's message is a request for routing: what a client sends
/// the broker or dealer (an ERROR only in answer to an INVOCATION).
fn is_request(msg: &Message) -> bool {
    match msg {
        Message::Publish(_)
        | Message::Subscribe(_)
        | Message::Unsubscribe(_)
        | Message::Call(_)
        | Message::Cancel(_)
        | Message::Register(_)
        | Message::Unregister(_)
        | Message::Yield(_)
        | Message::EventReceived(_) => true,
        Message::Error(e) => e.request_type == code::INVOCATION,
        _ => false,
    }
}

/// A session between CHALLENGE and the dynamic authenticator's answer.
struct DynamicPending {
    realm: Uri,
    hello: HelloDetails,
    procedure: String,
    authid: String,
    method: AuthMethod,
    /// AUTHENTICATE arrived and the authenticator was asked.
    asked: bool,
}

/// Takes the dynamic authentication request out of a session's outputs, if there is one.
pub fn take_dynamic_auth(outs: &mut Vec<SessionOutput>) -> Option<Box<DynamicAuth>> {
    let i = outs
        .iter()
        .position(|o| matches!(o, SessionOutput::DynamicAuth(_)))?;
    match outs.remove(i) {
        SessionOutput::DynamicAuth(d) => Some(d),
        _ => None,
    }
}

/// A session between CHALLENGE and AUTHENTICATE.
struct PendingAuth {
    realm: Uri,
    /// The HELLO details, needed for WELCOME (roles, features).
    hello: HelloDetails,
    auth: auth::Pending,
}

/// Convenience for tests and the meta API: the WELCOME details as a dict.
pub fn welcome_dict(w: &Welcome) -> Dict {
    w.details.to_dict()
}

#[cfg(test)]
mod dynamic_auth_tests;
#[cfg(test)]
mod tests;
