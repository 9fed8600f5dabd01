//! The shard's authorizer (the rules themselves are [`crate::authz`]): the check at the top of
//! routing, and the calls to a realm's dynamic authorizer procedure with their per-shard cache.
//!
//! The router calls the authorizer as an internal caller of the realm (one per shard, never a
//! connection): the CALL goes through the dealer like any other, and the RESULT or ERROR that
//! the dealer addresses to that caller is taken out of the routing actions here. A session
//! whose message needs a dynamic decision that is not cached waits for it before the message
//! is routed (its reader awaits, so its messages stay in order); a timeout or an error denies.

use super::signal::Signal;
use super::{conn::SessionHandle, Shard};
use crate::auth::dynamic::{AuthOutcome, DynamicAuth};
use crate::auth::AuthFailed;
use crate::authz::{AuthzAction, AuthzCache, Decision, RealmPolicy, SessionInfo, Verdict};
use crate::codec::{self, CallOptions, Dict, Id, Message, Payload, Uri, Value};
use crate::routing::{Features, SessionRef};
use crate::session::SessionOutput;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The answer to an internal call, when it came: the RESULT's first argument, or `Err` for
/// an ERROR.
#[derive(Default)]
pub struct Reply {
    done: Signal,
    result: RefCell<Option<Result<Option<Value>, Uri>>>,
}

/// A shard's authorization state.
pub struct AuthzState {
    /// The internal caller's session ID (never a connection).
    pub caller: Id,
    cache: RefCell<AuthzCache>,
    pending: RefCell<HashMap<Id, Rc<Reply>>>,
    next_request: Cell<Id>,
    /// The decisions just fetched for (session, action, uri), used by the routing check and
    /// cleared by it (so a TTL of 0, or an eviction, cannot deny a decision that was just
    /// made). At most two: a message needs at most two decisions (see [`targets`]).
    fresh: RefCell<Vec<(Id, AuthzAction, String, Decision)>>,
}

impl AuthzState {
    pub fn new(caller: Id, ttl: Duration, size: usize) -> AuthzState {
        AuthzState {
            caller,
            cache: RefCell::new(AuthzCache::new(ttl, size)),
            pending: RefCell::new(HashMap::new()),
            next_request: Cell::new(1),
            fresh: RefCell::new(Vec::new()),
        }
    }
}

/// The URI and action a routing message asks authorization for.
fn target(m: &Message) -> Option<(&str, AuthzAction)> {
    Some(match m {
        Message::Call(c) => (&c.procedure, AuthzAction::Call),
        Message::Register(r) => (&r.procedure, AuthzAction::Register),
        Message::Publish(p) => (&p.topic, AuthzAction::Publish),
        Message::Subscribe(s) => (&s.topic, AuthzAction::Subscribe),
        _ => return None,
    })
}

/// Event history's meta procedure: reading a subscription's history also needs the right to
/// subscribe to its topic (`pubsub_event_history.md`, "Security Aspects").
const GET_EVENTS: &str = "wamp.subscription.get_events";

/// A dynamic decision a session waits for.
pub struct Ask {
    realm: Uri,
    procedure: String,
    session: Id,
    authid: String,
    authrole: String,
    uri: String,
    action: AuthzAction,
}

impl Shard {
    pub(super) fn policy(&self, realm: &str) -> Option<&RealmPolicy> {
        self.cfg
            .realms
            .iter()
            .find(|r| r.name == realm)
            .map(|r| &*r.authz)
    }

    /// The second decision a message needs, if any: for `wamp.subscription.get_events`, the
    /// right to subscribe to the subscription's topic or pattern (found in the realm's
    /// replicated subscription table; an unknown ID needs nothing more, the routing core
    /// answers `no_such_subscription`).
    fn second_target(&self, realm: &str, m: &Message) -> Option<(String, AuthzAction)> {
        let Message::Call(c) = m else {
            return None;
        };
        if &*c.procedure != GET_EVENTS {
            return None;
        }
        let id = match c.payload.args_values() {
            Ok(Some(args)) => match args.first() {
                Some(Value::UInt(id)) => *id,
                _ => return None,
            },
            _ => return None,
        };
        let realms = self.realms.borrow();
        let info = realms.get(realm)?.broker().subscription(id)?;
        Some((info.pattern.to_string(), AuthzAction::Subscribe))
    }

    /// The decision for a session's message, without waiting: `None` when the realm's dynamic
    /// authorizer must be asked and nothing is cached.
    fn decide(
        &self,
        realm: &str,
        sref: &SessionRef,
        uri: &str,
        a: AuthzAction,
    ) -> Option<Decision> {
        let info = SessionInfo {
            session: sref.id,
            realm,
            authid: &sref.authid,
            authrole: &sref.authrole,
        };
        if let Some(hook) = &self.cfg.authorizer {
            if let Some(d) = hook.0.authorize(&info, uri, a) {
                return Some(d);
            }
        }
        let policy = self.policy(realm)?;
        match policy.check(&sref.authrole, uri, a) {
            Verdict::Decided(d) => Some(d),
            Verdict::Dynamic => {
                let fresh = self.authz.fresh.borrow();
                if let Some((_, _, _, d)) = fresh
                    .iter()
                    .find(|(s, fa, fu, _)| *s == sref.id && *fa == a && fu == uri)
                {
                    return Some(*d);
                }
                drop(fresh);
                self.authz
                    .cache
                    .borrow_mut()
                    .get(&info, uri, a, Instant::now())
            }
        }
    }

    /// The check at the top of routing: whether to route the message (with disclosure forced in
    /// place when a rule says so); false when it was denied (and answered).
    pub(super) fn authorize(&self, h: &SessionHandle, realm: &Uri, m: &mut Message) -> bool {
        // An open realm allows everything but registering the procedures only a trusted
        // session may serve (`RealmPolicy::check`): no lookups for the common case.
        if h.authz_open.get() && !matches!(m, Message::Register(_)) {
            return true;
        }
        let Some((uri, action)) = target(m) else {
            return true;
        };
        let second = self.second_target(realm, m);
        let (decision, second_denied) = {
            let sref = h.sref.borrow();
            let Some(sref) = sref.as_ref() else {
                return false;
            };
            // Fail closed: a dynamic decision that is neither fresh nor cached is a denial.
            let first = self
                .decide(realm, sref, uri, action)
                .unwrap_or(Decision::DENY);
            let second_denied = match second {
                Some((u, a)) if first.allow => {
                    let d = self.decide(realm, sref, &u, a).unwrap_or(Decision::DENY);
                    (!d.allow).then_some((u, a))
                }
                _ => None,
            };
            if !self.authz.fresh.borrow().is_empty() {
                self.authz.fresh.borrow_mut().clear();
            }
            (first, second_denied)
        };
        if !decision.allow || second_denied.is_some() {
            let (uri, action) = match &second_denied {
                Some((u, a)) => (u.as_str(), *a),
                None => (uri, action),
            };
            self.metrics.authz_denials.inc();
            tracing::debug!(shard = self.id, session = h.id, realm = %realm, uri, action = action.as_str(), "not authorized");
            let (request_type, request, answer) = match &*m {
                Message::Call(c) => (codec::code::CALL, c.request, true),
                Message::Register(r) => (codec::code::REGISTER, r.request, true),
                Message::Subscribe(s) => (codec::code::SUBSCRIBE, s.request, true),
                Message::Publish(p) => (
                    codec::code::PUBLISH,
                    p.request,
                    p.options.acknowledge == Some(true),
                ),
                _ => return false,
            };
            if answer {
                let err = Message::Error(Box::new(codec::Error {
                    request_type,
                    request,
                    details: Dict::new(),
                    error: Uri::from("wamp.error.not_authorized"),
                    payload: Payload::args(vec![Value::Str(format!(
                        "session is not authorized to {} {uri:?}",
                        action.as_str()
                    ))]),
                }));
                let _ = self.push_reply(h, &err);
            }
            return false;
        }
        if decision.disclose {
            match m {
                Message::Call(c) => c.options.disclose_me = Some(true),
                Message::Publish(p) => p.options.disclose_me = Some(true),
                _ => {}
            }
        }
        true
    }

    /// Whether a session's outputs hold a message that needs the dynamic authorizer's answer
    /// first (cheap; called for every message).
    pub fn needs_authorizer(&self, h: &SessionHandle, outs: &[SessionOutput]) -> Option<Ask> {
        let m = outs.iter().find_map(|o| match o {
            SessionOutput::Route(m) => Some(m),
            _ => None,
        })?;
        self.needs_authorizer_for(h, m)
    }

    /// [`Shard::needs_authorizer`] for one message about to be routed.
    pub fn needs_authorizer_for(&self, h: &SessionHandle, m: &Message) -> Option<Ask> {
        if h.authz_open.get() {
            return None; // an open realm has no dynamic authorizer
        }
        let (uri, action) = target(m)?;
        // Called for every message: most realms have no dynamic authorizer, so ask that first,
        // before anything is cloned.
        let realm = {
            let realm = h.realm.borrow();
            let realm = realm.as_ref()?;
            self.policy(realm)?.authorizer.as_ref()?;
            realm.clone()
        };
        let sref = h.sref.borrow();
        let sref = sref.as_ref()?;
        let (uri, action) = match self.decide(&realm, sref, uri, action) {
            None => (uri.to_owned(), action),
            // Allowed: the message may need a second decision (`get_events`), asked next.
            Some(d) if d.allow => {
                let (u, a) = self.second_target(&realm, m)?;
                if self.decide(&realm, sref, &u, a).is_some() {
                    return None;
                }
                (u, a)
            }
            Some(_) => return None,
        };
        let procedure = self.policy(&realm)?.authorizer.clone()?;
        Some(Ask {
            realm,
            procedure,
            session: sref.id,
            authid: sref.authid.to_string(),
            authrole: sref.authrole.to_string(),
            uri,
            action,
        })
    }

    /// Calls `procedure` in `realm` as the router's internal caller and waits, at most the
    /// authorizer timeout, for the first argument of its RESULT. `None` on timeout; `Err` with
    /// the error URI for an ERROR (`wamp.error.no_such_procedure` when nobody registered it).
    async fn internal_call(
        &self,
        realm: &Uri,
        procedure: &str,
        args: Vec<Value>,
    ) -> Option<Result<Option<Value>, Uri>> {
        let request = self.authz.next_request.get();
        self.authz.next_request.set(request % codec::MAX_ID + 1);
        let reply = Rc::new(Reply::default());
        self.authz
            .pending
            .borrow_mut()
            .insert(request, reply.clone());
        let timeout = self.cfg.authz.timeout;
        let call = Message::Call(Box::new(codec::Call {
            request,
            options: CallOptions {
                timeout: Some(timeout.as_millis().max(1) as u64),
                ..Default::default()
            },
            procedure: Uri::from(procedure),
            payload: Payload::args(args),
        }));
        let caller = SessionRef::new(
            self.authz.caller,
            self.id,
            "switchyard",
            "switchyard.internal",
            Features::default(),
        );
        self.in_realm(realm, |r, actions| {
            r.on_message(&caller, call, Instant::now(), actions)
        });
        self.flush_mesh();
        if reply.result.borrow().is_none() {
            futures_lite::future::or(reply.done.wait(), glommio::timer::sleep(timeout)).await;
        }
        self.authz.pending.borrow_mut().remove(&request);
        let result = reply.result.borrow_mut().take();
        if result.is_none() {
            tracing::warn!(shard = self.id, procedure, "internal call timed out");
        }
        result
    }

    /// Asks a realm's dynamic authenticator (see [`crate::auth::dynamic`]).
    pub async fn dynamic_authenticate(&self, req: &DynamicAuth) -> Result<AuthOutcome, AuthFailed> {
        let realm = Uri::from(req.realm.as_str());
        match self
            .internal_call(&realm, &req.procedure, req.call_args())
            .await
        {
            Some(Ok(v)) => req.outcome(v.as_ref()),
            Some(Err(e)) => {
                tracing::info!(shard = self.id, error = %e, "dynamic authenticator refused");
                Err(AuthFailed)
            }
            None => Err(AuthFailed),
        }
    }

    /// Calls the dynamic authorizer and waits (bounded by the configured timeout) for its
    /// answer, which is cached (unless it says `cache: false`) and kept for the routing check.
    pub async fn ask_authorizer(&self, ask: Ask) {
        let mut details = Dict::new();
        details.insert("session".into(), Value::UInt(ask.session));
        details.insert("authid".into(), Value::Str(ask.authid.clone()));
        details.insert("authrole".into(), Value::Str(ask.authrole.clone()));
        details.insert("realm".into(), Value::Str(ask.realm.to_string()));
        let args = vec![
            Value::Dict(details),
            Value::Str(ask.uri.clone()),
            Value::Str(ask.action.as_str().into()),
        ];
        let (decision, cache) = match self.internal_call(&ask.realm, &ask.procedure, args).await {
            Some(Ok(Some(Value::Bool(b)))) => (
                Decision {
                    allow: b,
                    disclose: false,
                },
                true,
            ),
            Some(Ok(Some(Value::Dict(d)))) => {
                let flag = |k: &str| d.get(k).and_then(Value::as_bool);
                (
                    Decision {
                        allow: flag("allow").unwrap_or(false),
                        disclose: flag("disclose").unwrap_or(false),
                    },
                    flag("cache").unwrap_or(true),
                )
            }
            // Not an answer, an ERROR or a timeout: deny, and ask again next time.
            other => {
                if let Some(Err(e)) = other {
                    tracing::warn!(shard = self.id, error = %e, "authorizer failed: denied");
                }
                (Decision::DENY, false)
            }
        };
        if cache {
            let info = SessionInfo {
                session: ask.session,
                realm: &ask.realm,
                authid: &ask.authid,
                authrole: &ask.authrole,
            };
            self.authz.cache.borrow_mut().insert(
                &info,
                &ask.uri,
                ask.action,
                decision,
                Instant::now(),
            );
        }
        let mut fresh = self.authz.fresh.borrow_mut();
        if fresh.len() >= 2 {
            fresh.remove(0);
        }
        fresh.push((ask.session, ask.action, ask.uri, decision));
    }

    /// A RESULT or ERROR the dealer sent to the internal caller.
    pub(super) fn on_authorizer_reply(&self, msg: &Message) {
        let (request, result) = match msg {
            Message::Result(r) => {
                if r.details.progress == Some(true) {
                    return;
                }
                let first = r
                    .payload
                    .args_values()
                    .ok()
                    .flatten()
                    .and_then(|a| a.into_iter().next());
                (r.request, Ok(first))
            }
            Message::Error(e) => (e.request, Err(e.error.clone())),
            _ => return,
        };
        if let Some(reply) = self.authz.pending.borrow_mut().remove(&request) {
            *reply.result.borrow_mut() = Some(result);
            reply.done.set();
        }
    }
}
