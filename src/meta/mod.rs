//! The WAMP Meta API: session, subscription and registration meta procedures and events, and
//! session testaments.
//!
//! Meta procedure calls are intercepted in [`Shard::route`](crate::shard::Shard) (after
//! authorization) by [`intercept`]. Each shard owns its sessions, so session queries
//! (`wamp.session.count`, `list`, `get`, `kill*`) and subscriber lists scatter a [`Query`] to
//! every other shard over the mesh and gather the [`Answer`]s, answering the caller when all
//! shards answered or with `wamp.error.timeout` after [`GATHER_TIMEOUT`]. Subscription and
//! registration tables are replicated on every shard, so their queries are answered locally.
//!
//! Meta events are published by the router as ordinary events of the realm
//! ([`RealmShard::publish_from_router`](crate::routing::RealmShard::publish_from_router)), so
//! subscribers on every shard receive them. They are queued while routing actions are applied
//! and published once those are done ([`publish_queued`]). Subscription and registration
//! events come from the session's own shard: SUBSCRIBED / REGISTERED it sends ([`on_send`];
//! `on_create` when the session is the first subscriber or callee), UNSUBSCRIBE / UNREGISTER it
//! routes ([`intercept`]) and its departure ([`on_session_leave`]). The creating shard
//! announces the `created` time to the other shards ([`MetaMsg::Created`]).
//!
//! Testaments live with the session on its shard, bounded by [`MAX_TESTAMENTS`] per session
//! and [`MAX_TESTAMENT_BYTES`] of encoded payload per session, and are published when the
//! session leaves (`detached` scope first, then `destroyed`: the router has no session
//! resumption, so a session that leaves is both detached and destroyed).

mod procs;

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::codec::{Dict, Id, Message, Payload, PublishOptions, Uri, Value};
use crate::routing::Action;
use crate::session::State;
use crate::shard::conn::SessionHandle;
use crate::shard::{Shard, ShardMsg};

pub use crate::util::iso8601;

/// How long a scatter-gather query waits for the other shards before answering
/// `wamp.error.timeout`.
pub const GATHER_TIMEOUT: Duration = Duration::from_secs(2);
/// Scatter-gather queries one shard may have in flight; more are refused
/// (`switchyard.error.limit_exceeded`).
pub const MAX_GATHERS: usize = 4096;
/// Testaments one session may hold (both scopes together).
pub const MAX_TESTAMENTS: usize = 32;
/// Encoded bytes of testament topics, payloads and options one session may hold.
pub const MAX_TESTAMENT_BYTES: usize = 64 * 1024;
/// Creation times remembered per shard before forgotten IDs are pruned.
const MAX_CREATED: usize = 65_536;

/// A meta query or its answer, between the same realm's shards.
#[derive(Debug, Clone)]
pub enum MetaMsg {
    Query {
        token: u64,
        query: Query,
    },
    Reply {
        token: u64,
        answer: Answer,
    },
    /// Subscription or registration `key` was created at `at` (ISO 8601).
    Created {
        key: (Table, Id),
        at: String,
    },
}

/// Which table an ID belongs to (subscription and registration IDs are separate spaces).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Subscription,
    Registration,
}

/// What a shard is asked about its own sessions.
#[derive(Debug, Clone)]
pub enum Query {
    /// Established sessions of the realm, optionally only those with one of these authroles.
    Sessions { filter: Option<Vec<String>> },
    /// The details of one session.
    Get { session: Id },
    /// Close matching sessions (all but `exclude`) with GOODBYE.
    Kill {
        target: KillTarget,
        exclude: Id,
        reason: String,
        message: String,
    },
    /// Local subscribers of a subscription.
    Subscribers { subscription: Id },
}

/// Which sessions a kill closes.
#[derive(Debug, Clone)]
pub enum KillTarget {
    Session(Id),
    Authid(String),
    Authrole(String),
    All,
}

/// A shard's answer to a [`Query`].
#[derive(Debug, Clone)]
pub enum Answer {
    Sessions(Vec<Id>),
    Details(Option<Dict>),
}

/// How a gathered answer becomes the RESULT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Count,
    List,
    Get,
    Kill,
    KillList,
    KillCount,
    Subscribers,
    CountSubscribers,
}

struct Gather {
    realm: Uri,
    caller: Id,
    request: Id,
    kind: Kind,
    waiting: usize,
    ids: Vec<Id>,
    details: Option<Dict>,
    deadline: Instant,
}

/// A testament: published when its session leaves.
#[derive(Debug, Clone)]
pub(crate) struct Testament {
    topic: Uri,
    payload: Payload,
    options: PublishOptions,
    size: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Testaments {
    detached: Vec<Testament>,
    destroyed: Vec<Testament>,
    bytes: usize,
}

/// A meta event waiting to be published.
struct Queued {
    realm: Uri,
    topic: Uri,
    payload: Payload,
    options: PublishOptions,
}

/// The meta API's state on one shard.
#[derive(Default)]
pub struct MetaState {
    next_token: Cell<u64>,
    gathers: RefCell<HashMap<u64, Gather>>,
    testaments: RefCell<HashMap<Id, Testaments>>,
    /// When this shard first knew each subscription / registration ID (ISO 8601).
    created: RefCell<HashMap<(Table, Id), String>>,
    queued: RefCell<Vec<Queued>>,
    /// SUBSCRIBE requests `(session, request)` of a session already subscribed: their
    /// SUBSCRIBED adds no one to the subscription, so no `on_subscribe` (answered in the same
    /// turn, so this holds at most the requests of one message).
    resubscribed: RefCell<Vec<(Id, Id)>>,
    /// `(session, subscription)` pairs announced by `on_subscribe` during the current batch of
    /// actions: a session that sent SUBSCRIBE twice while the subscription was pending gets two
    /// SUBSCRIBED in one batch but joined once. Cleared when the batch ends.
    announced: RefCell<Vec<(Id, Id)>>,
}

impl MetaState {
    /// Scatter-gather queries in flight (for tests and introspection).
    pub fn gathers_in_flight(&self) -> usize {
        self.gathers.borrow().len()
    }

    /// Testaments held for a local session.
    pub fn testament_count(&self, session: Id) -> usize {
        self.testaments
            .borrow()
            .get(&session)
            .map_or(0, |t| t.detached.len() + t.destroyed.len())
    }

    fn queue(&self, realm: &Uri, topic: &str, args: Vec<Value>) {
        self.queued.borrow_mut().push(Queued {
            realm: realm.clone(),
            topic: Uri::from(topic),
            payload: Payload::args(args),
            options: PublishOptions::default(),
        });
    }

    /// The creation time of a subscription or registration as this shard knows it.
    fn created(&self, key: (Table, Id), live: impl Fn((Table, Id)) -> bool) -> String {
        let mut created = self.created.borrow_mut();
        if let Some(t) = created.get(&key) {
            return t.clone();
        }
        if created.len() >= MAX_CREATED {
            created.retain(|k, _| live(*k));
        }
        let t = iso8601(std::time::SystemTime::now());
        created.insert(key, t.clone());
        t
    }

    fn set_created(&self, key: (Table, Id), at: String) {
        let mut created = self.created.borrow_mut();
        if created.len() < MAX_CREATED || created.contains_key(&key) {
            created.insert(key, at);
        }
    }
}

/// A subscription or registration was created by a session of this shard: record the time
/// and tell the other shards, so that every shard answers the same `created`.
fn mark_created(shard: &Shard, realm: &Uri, key: (Table, Id)) {
    let at = iso8601(std::time::SystemTime::now());
    shard.meta.set_created(key, at.clone());
    for to in (0..shard.count).filter(|s| *s != shard.id) {
        shard.metrics.mesh_sent.inc();
        shard.mesh.push(
            to,
            ShardMsg::Meta {
                realm: realm.clone(),
                from: shard.id,
                msg: MetaMsg::Created {
                    key,
                    at: at.clone(),
                },
            },
        );
    }
}

/// The procedures [`intercept`] answers.
pub const PROCEDURES: &[&str] = &[
    "wamp.session.count",
    "wamp.session.list",
    "wamp.session.get",
    "wamp.session.kill",
    "wamp.session.kill_by_authid",
    "wamp.session.kill_by_authrole",
    "wamp.session.kill_all",
    "wamp.session.add_testament",
    "wamp.session.flush_testaments",
    "wamp.subscription.list",
    "wamp.subscription.lookup",
    "wamp.subscription.match",
    "wamp.subscription.get",
    "wamp.subscription.list_subscribers",
    "wamp.subscription.count_subscribers",
    "wamp.registration.list",
    "wamp.registration.lookup",
    "wamp.registration.match",
    "wamp.registration.get",
    "wamp.registration.list_callees",
    "wamp.registration.count_callees",
];

/// Handles what the meta API must see of a session's message; returns the message when the
/// routing core should route it as usual.
pub fn intercept(shard: &Shard, h: &SessionHandle, realm: &Uri, m: Message) -> Option<Message> {
    match m {
        // The prefix test first: ordinary calls (the hot path) skip the list.
        Message::Call(c)
            if c.procedure.starts_with("wamp.") && PROCEDURES.contains(&c.procedure.as_ref()) =>
        {
            procs::call(shard, h, realm, c);
            None
        }
        Message::Subscribe(s) => {
            let already = shard.realms.borrow().get(realm).is_some_and(|r| {
                let b = r.broker();
                let policy = s.options.match_policy.unwrap_or_default();
                b.lookup(policy, &s.topic)
                    .is_some_and(|id| b.is_subscribed(h.id, id))
            });
            if already {
                shard.meta.resubscribed.borrow_mut().push((h.id, s.request));
            }
            shard.route_to_realm(h, realm, Message::Subscribe(s));
            if already {
                shard.meta.resubscribed.borrow_mut().clear();
            }
            None
        }
        Message::Unsubscribe(u) => {
            let sub = u.subscription;
            let before = subscription_state(shard, realm, h.id, sub);
            shard.route_to_realm(h, realm, Message::Unsubscribe(u));
            if let Some(last) = before {
                let still = shard
                    .realms
                    .borrow()
                    .get(realm)
                    .is_some_and(|r| r.broker().is_subscribed(h.id, sub));
                if !still {
                    unsubscribed_events(shard, realm, h.id, sub, last);
                    shard.apply_actions(realm, Vec::new());
                }
            }
            None
        }
        Message::Unregister(u) => {
            let reg = u.registration;
            let before = registration_state(shard, realm, h.id, reg);
            shard.route_to_realm(h, realm, Message::Unregister(u));
            if let Some(last) = before {
                let still = shard
                    .realms
                    .borrow()
                    .get(realm)
                    .is_some_and(|r| r.dealer().is_registered(h.id, reg));
                if !still {
                    unregistered_events(shard, realm, h.id, reg, last);
                    shard.apply_actions(realm, Vec::new());
                }
            }
            None
        }
        other => Some(other),
    }
}

/// Whether `session` holds subscription `sub` (Some), and if so whether it is the last
/// subscriber anywhere (the flag).
fn subscription_state(shard: &Shard, realm: &Uri, session: Id, sub: Id) -> Option<bool> {
    let realms = shard.realms.borrow();
    let broker = realms.get(realm)?.broker();
    if !broker.is_subscribed(session, sub) {
        return None;
    }
    let info = broker.subscription(sub);
    let only_here = info.is_some_and(|i| i.shards.iter().all(|s| *s == shard.id));
    Some(only_here && broker.local_subscribers(sub).len() <= 1)
}

/// Like [`subscription_state`] for registrations.
fn registration_state(shard: &Shard, realm: &Uri, session: Id, reg: Id) -> Option<bool> {
    let realms = shard.realms.borrow();
    let dealer = realms.get(realm)?.dealer();
    if !dealer.is_registered(session, reg) {
        return None;
    }
    Some(
        dealer
            .registration(reg)
            .is_none_or(|r| r.callees.iter().all(|c| c.session == session)),
    )
}

fn unsubscribed_events(shard: &Shard, realm: &Uri, session: Id, sub: Id, last: bool) {
    let args = || vec![Value::UInt(session), Value::UInt(sub)];
    shard
        .meta
        .queue(realm, "wamp.subscription.on_unsubscribe", args());
    if last {
        shard
            .meta
            .queue(realm, "wamp.subscription.on_delete", args());
        shard
            .meta
            .created
            .borrow_mut()
            .remove(&(Table::Subscription, sub));
    }
}

fn unregistered_events(shard: &Shard, realm: &Uri, session: Id, reg: Id, last: bool) {
    let args = || vec![Value::UInt(session), Value::UInt(reg)];
    shard
        .meta
        .queue(realm, "wamp.registration.on_unregister", args());
    if last {
        shard
            .meta
            .queue(realm, "wamp.registration.on_delete", args());
        shard
            .meta
            .created
            .borrow_mut()
            .remove(&(Table::Registration, reg));
    }
}

/// A message the routing core sends a local session: SUBSCRIBED and REGISTERED are the
/// moments a session joins a subscription or registration.
pub fn on_send(shard: &Shard, realm: &Uri, to: Id, msg: &Message) {
    match msg {
        Message::Subscribed(s) => {
            if shard.meta.resubscribed.borrow().contains(&(to, s.request)) {
                return;
            }
            {
                let mut announced = shard.meta.announced.borrow_mut();
                if announced.contains(&(to, s.subscription)) {
                    return;
                }
                announced.push((to, s.subscription));
            }
            let realms = shard.realms.borrow();
            let Some(broker) = realms.get(realm).map(|r| r.broker()) else {
                return;
            };
            // Created by this request: the subscription lives on this shard only, `to` is its
            // first subscriber, and its creation was not announced yet.
            let created = broker
                .local_subscribers(s.subscription)
                .first()
                .is_some_and(|f| f.session == to)
                && broker
                    .subscription(s.subscription)
                    .is_some_and(|i| i.shards == [shard.id])
                && !shard
                    .meta
                    .created
                    .borrow()
                    .contains_key(&(Table::Subscription, s.subscription));
            if created {
                if let Some(info) = broker.subscription(s.subscription) {
                    mark_created(shard, realm, (Table::Subscription, info.id));
                    let details = procs::subscription_details(shard, broker, &info);
                    shard.meta.queue(
                        realm,
                        "wamp.subscription.on_create",
                        vec![Value::UInt(to), Value::Dict(details)],
                    );
                }
            }
            shard.meta.queue(
                realm,
                "wamp.subscription.on_subscribe",
                vec![Value::UInt(to), Value::UInt(s.subscription)],
            );
        }
        Message::Registered(r) => {
            let realms = shard.realms.borrow();
            let Some(dealer) = realms.get(realm).map(|r| r.dealer()) else {
                return;
            };
            if let Some(reg) = dealer.registration(r.registration) {
                let first = reg.callees.first().is_some_and(|c| c.session == to);
                let key = (Table::Registration, reg.id);
                if first && !shard.meta.created.borrow().contains_key(&key) {
                    mark_created(shard, realm, key);
                    let details = procs::registration_details(shard, dealer, reg);
                    shard.meta.queue(
                        realm,
                        "wamp.registration.on_create",
                        vec![Value::UInt(to), Value::Dict(details)],
                    );
                }
            }
            shard.meta.queue(
                realm,
                "wamp.registration.on_register",
                vec![Value::UInt(to), Value::UInt(r.registration)],
            );
        }
        _ => {}
    }
}

/// Publishes the queued meta events of `realm`; true when there were any (their actions are
/// in `queue`).
pub fn publish_queued(shard: &Shard, realm: &Uri, queue: &mut Vec<Action>) -> bool {
    shard.meta.announced.borrow_mut().clear();
    let mine: Vec<Queued> = {
        let mut q = shard.meta.queued.borrow_mut();
        if q.is_empty() {
            return false;
        }
        let (mine, rest) = std::mem::take(&mut *q)
            .into_iter()
            .partition(|e| &e.realm == realm);
        *q = rest;
        mine
    };
    if mine.is_empty() {
        return false;
    }
    let mut realms = shard.realms.borrow_mut();
    let Some(r) = realms.get_mut(realm) else {
        return false;
    };
    for e in mine {
        r.publish_from_router(e.topic, e.payload, e.options, Instant::now(), queue);
    }
    true
}

/// The details of a local session (`wamp.session.get`, `wamp.session.on_join`).
pub fn session_details(h: &SessionHandle) -> Dict {
    let core = h.core.borrow();
    let mut d = Dict::new();
    d.insert("session".into(), Value::UInt(h.id));
    d.insert("authid".into(), Value::Str(core.authid.clone()));
    d.insert("authrole".into(), Value::Str(core.authrole.clone()));
    d.insert("authmethod".into(), Value::Str(core.authmethod.clone()));
    d.insert(
        "authprovider".into(),
        Value::Str(crate::auth::PROVIDER.into()),
    );
    let mut transport = Dict::new();
    transport.insert("serializer".into(), Value::Str(h.serializer.name().into()));
    if h.local {
        // In-process: messages are passed as values, nothing is serialized.
        transport.insert("type".into(), Value::Str("inproc".into()));
        transport.insert("serializer".into(), Value::Str("none".into()));
    }
    d.insert("transport".into(), Value::Dict(transport));
    d
}

/// A session joined `realm`: `wamp.session.on_join`.
pub fn on_join(shard: &Shard, h: &SessionHandle) {
    let Some(realm) = h.realm.borrow().clone() else {
        return;
    };
    shard.meta.queue(
        &realm,
        "wamp.session.on_join",
        vec![Value::Dict(session_details(h))],
    );
    shard.apply_actions(&realm, Vec::new());
    shard.flush_mesh();
}

/// A local session is leaving `realm` (called before the routing core forgets it): queues its
/// testaments, the unsubscribe / unregister events of what it held, and
/// `wamp.session.on_leave`. They are published by the caller's next `apply_actions`.
pub fn on_session_leave(shard: &Shard, h: &SessionHandle, realm: &Uri) {
    let testaments = shard.meta.testaments.borrow_mut().remove(&h.id);
    if let Some(t) = testaments {
        let mut q = shard.meta.queued.borrow_mut();
        for t in t.detached.into_iter().chain(t.destroyed) {
            q.push(Queued {
                realm: realm.clone(),
                topic: t.topic,
                payload: t.payload,
                options: t.options,
            });
        }
    }
    let (subs, regs) = {
        let realms = shard.realms.borrow();
        match realms.get(realm) {
            Some(r) => (
                r.broker().subscriptions_of(h.id),
                r.dealer().registrations_of(h.id),
            ),
            None => (Vec::new(), Vec::new()),
        }
    };
    for sub in subs {
        if let Some(last) = subscription_state(shard, realm, h.id, sub) {
            unsubscribed_events(shard, realm, h.id, sub, last);
        }
    }
    for reg in regs {
        if let Some(last) = registration_state(shard, realm, h.id, reg) {
            unregistered_events(shard, realm, h.id, reg, last);
        }
    }
    let core = h.core.borrow();
    shard.meta.queue(
        realm,
        "wamp.session.on_leave",
        vec![
            Value::UInt(h.id),
            Value::Str(core.authid.clone()),
            Value::Str(core.authrole.clone()),
        ],
    );
}

/// Whether a local session is established in `realm`.
fn in_realm(h: &SessionHandle, realm: &Uri) -> bool {
    h.realm.borrow().as_ref() == Some(realm) && h.core.borrow().state == State::Established
}

/// Answers a query about this shard's own sessions.
fn answer_local(shard: &Shard, realm: &Uri, query: &Query) -> Answer {
    match query {
        Query::Sessions { filter } => {
            let sessions = shard.sessions.borrow();
            let ids = sessions
                .values()
                .filter(|h| in_realm(h, realm))
                .filter(|h| {
                    filter
                        .as_ref()
                        .is_none_or(|f| f.contains(&h.core.borrow().authrole))
                })
                .map(|h| h.id)
                .collect();
            Answer::Sessions(ids)
        }
        Query::Get { session } => Answer::Details(
            shard
                .session(*session)
                .filter(|h| in_realm(h, realm))
                .map(|h| session_details(&h)),
        ),
        Query::Kill {
            target,
            exclude,
            reason,
            message,
        } => {
            let victims: Vec<_> = shard
                .sessions
                .borrow()
                .values()
                .filter(|h| h.id != *exclude && in_realm(h, realm))
                .filter(|h| {
                    let core = h.core.borrow();
                    match target {
                        KillTarget::Session(id) => h.id == *id,
                        KillTarget::Authid(a) => core.authid == *a,
                        KillTarget::Authrole(r) => core.authrole == *r,
                        KillTarget::All => true,
                    }
                })
                .cloned()
                .collect();
            let mut ids = Vec::with_capacity(victims.len());
            for h in victims {
                let mut out = Vec::new();
                h.core
                    .borrow_mut()
                    .close_with_goodbye(reason, message, &mut out);
                shard.apply_session_outputs(&h, out);
                ids.push(h.id);
            }
            Answer::Sessions(ids)
        }
        Query::Subscribers { subscription } => Answer::Sessions(
            shard
                .realms
                .borrow()
                .get(realm)
                .map(|r| {
                    r.broker()
                        .local_subscribers(*subscription)
                        .iter()
                        .map(|s| s.session)
                        .collect()
                })
                .unwrap_or_default(),
        ),
    }
}

/// Asks every shard (this one directly) and answers `caller` once all answered.
fn scatter(shard: &Shard, realm: &Uri, caller: Id, request: Id, kind: Kind, query: Query) {
    if shard.meta.gathers.borrow().len() >= MAX_GATHERS {
        procs::reply_error(
            shard,
            realm,
            caller,
            request,
            crate::routing::realm::errors::LIMIT_EXCEEDED,
            Some("too many meta queries in flight"),
        );
        return;
    }
    let local = answer_local(shard, realm, &query);
    let mut g = Gather {
        realm: realm.clone(),
        caller,
        request,
        kind,
        waiting: shard.count.saturating_sub(1),
        ids: Vec::new(),
        details: None,
        deadline: Instant::now() + GATHER_TIMEOUT,
    };
    absorb(&mut g, local);
    if g.waiting == 0 {
        finish(shard, g);
        return;
    }
    let token = shard.meta.next_token.get().wrapping_add(1);
    shard.meta.next_token.set(token);
    for to in (0..shard.count).filter(|s| *s != shard.id) {
        shard.metrics.mesh_sent.inc();
        shard.mesh.push(
            to,
            ShardMsg::Meta {
                realm: realm.clone(),
                from: shard.id,
                msg: MetaMsg::Query {
                    token,
                    query: query.clone(),
                },
            },
        );
    }
    shard.meta.gathers.borrow_mut().insert(token, g);
    shard.flush_mesh();
}

fn absorb(g: &mut Gather, a: Answer) {
    match a {
        Answer::Sessions(ids) => g.ids.extend(ids),
        Answer::Details(d) => {
            if g.details.is_none() {
                g.details = d;
            }
        }
    }
}

/// The gathered answer becomes the caller's RESULT (or ERROR).
fn finish(shard: &Shard, g: Gather) {
    use crate::routing::realm::errors::NO_SUCH_SESSION;
    let ok = |args: Vec<Value>| procs::reply(shard, &g.realm, g.caller, g.request, args);
    let ids = || Value::List(g.ids.iter().map(|i| Value::UInt(*i)).collect());
    let count = Value::UInt(g.ids.len() as u64);
    match g.kind {
        Kind::Count | Kind::KillCount | Kind::CountSubscribers => ok(vec![count]),
        Kind::List | Kind::KillList | Kind::Subscribers => ok(vec![ids()]),
        Kind::Get => match g.details.clone() {
            Some(d) => ok(vec![Value::Dict(d)]),
            None => procs::reply_error(shard, &g.realm, g.caller, g.request, NO_SUCH_SESSION, None),
        },
        Kind::Kill if g.ids.is_empty() => {
            procs::reply_error(shard, &g.realm, g.caller, g.request, NO_SUCH_SESSION, None)
        }
        Kind::Kill => ok(Vec::new()),
    }
}

/// A meta message from another shard.
pub fn on_mesh(shard: &Shard, realm: Uri, from: usize, msg: MetaMsg) {
    match msg {
        MetaMsg::Query { token, query } => {
            let answer = answer_local(shard, &realm, &query);
            shard.metrics.mesh_sent.inc();
            shard.mesh.push(
                from,
                ShardMsg::Meta {
                    realm,
                    from: shard.id,
                    msg: MetaMsg::Reply { token, answer },
                },
            );
        }
        MetaMsg::Created { key, at } => shard.meta.set_created(key, at),
        MetaMsg::Reply { token, answer } => {
            let done = {
                let mut gathers = shard.meta.gathers.borrow_mut();
                let Some(g) = gathers.get_mut(&token) else {
                    return; // answered already (timed out)
                };
                absorb(g, answer);
                g.waiting = g.waiting.saturating_sub(1);
                if g.waiting == 0 {
                    gathers.remove(&token)
                } else {
                    None
                }
            };
            if let Some(g) = done {
                finish(shard, g);
            }
        }
    }
}

/// Answers the queries whose shards did not all answer in time.
pub fn tick(shard: &Shard, now: Instant) {
    let expired: Vec<Gather> = {
        let mut gathers = shard.meta.gathers.borrow_mut();
        if gathers.is_empty() {
            return;
        }
        let due: Vec<u64> = gathers
            .iter()
            .filter(|(_, g)| g.deadline <= now)
            .map(|(t, _)| *t)
            .collect();
        due.iter().filter_map(|t| gathers.remove(t)).collect()
    };
    for g in expired {
        procs::reply_error(
            shard,
            &g.realm,
            g.caller,
            g.request,
            crate::routing::realm::errors::TIMEOUT,
            Some("a shard did not answer the meta query in time"),
        );
    }
}
