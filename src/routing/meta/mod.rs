//! The WAMP Meta API inside the routing core: session, subscription and registration meta
//! procedures and events, and session testaments. Sans-IO like the rest of `routing`: fed by
//! [`RealmShard`](super::RealmShard), answering with the same [`Action`]s.
//!
//! **Who publishes what.** Every meta event is an ordinary event of the realm, published by the
//! router (publisher ID 0) through the broker.
//!
//! - `wamp.session.on_join` / `on_leave` and testaments: the session's own shard, which alone
//!   knows the session (`Meta::join`, `Meta::leave`).
//! - `wamp.subscription.*` and `wamp.registration.*` lifecycle events: the *home shard* of the
//!   subscription's or registration's URI. The session's shard reports each confirmed join
//!   (SUBSCRIBED / REGISTERED sent) and each leave of a joined session as a
//!   [`PeerMsg::Lifecycle`] on the FIFO channel its removal request also takes; the home shard
//!   handles those reports and its own removals in one order (`Meta::on_lifecycle`,
//!   `Meta::on_removed`). So every observer sees `on_create` → `on_subscribe`… →
//!   `on_unsubscribe`… → `on_delete` for one ID, `on_create` exactly once (with the first join)
//!   and `on_delete` exactly once (when the home removes an entry that had an `on_create`),
//!   whatever the interleaving of sessions on different shards. A subscription whose only
//!   subscribers left before their SUBSCRIBED was sent has neither.
//!
//! **Queries.** Subscription and registration tables are replicated on every shard, so their
//! procedures are answered from this shard's replica (`procs`). Each shard owns its sessions,
//! so session queries and subscriber lists gather: a [`MetaQuery`] to every other shard, the
//! [`MetaAnswer`]s back, and the caller's RESULT when all answered, or `wamp.error.timeout` at
//! [`GATHER_TIMEOUT`] (a deadline of the core, see `Meta::next_deadline`). `wamp.session.kill*`
//! makes each shard emit [`Action::Kill`] for its own matching sessions.
//!
//! **Testaments** live with the session on its shard, bounded by [`MAX_TESTAMENTS`] and
//! [`MAX_TESTAMENT_BYTES`] per session, and are published when it leaves (`detached` scope
//! first, then `destroyed`: the router has no session resumption, so a session that leaves is
//! both detached and destroyed).

pub(crate) mod procs;

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::codec::{self, Dict, Id, Payload, PublishOptions, Serializer, Uri, Value};

use super::broker::{Broker, SubscriptionInfo};
use super::dealer::{Dealer, Registration};
use super::ids::SessionId;
use super::peer::{KillTarget, Lifecycle, MetaAnswer, MetaQuery, PeerMsg, Table};
use super::realm::{errors, Action, Ctx};
use super::session::SessionRef;

pub use procs::PROCEDURES;

/// How long a gathering query waits for the other shards before answering
/// `wamp.error.timeout`.
pub const GATHER_TIMEOUT: Duration = Duration::from_secs(2);
/// Gathering queries one realm shard may have in flight; more are refused
/// (`switchyard.error.limit_exceeded`).
pub const MAX_GATHERS: usize = 4096;
/// Testaments one session may hold (both scopes together).
pub const MAX_TESTAMENTS: usize = 32;
/// Encoded bytes of testament topics, payloads and options one session may hold.
pub const MAX_TESTAMENT_BYTES: usize = 64 * 1024;

/// What the meta API tells about a session beyond its identity (`wamp.session.get`,
/// `wamp.session.on_join`), given by the runtime when the session joins. Kept per joined
/// session, so it is compact: the `transport` dictionary is built when asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionDetails {
    pub authmethod: String,
    pub authprovider: std::borrow::Cow<'static, str>,
    /// An in-process session (`Router::local_connector`): messages pass as values.
    pub local: bool,
    /// The session's serializer (named in `transport`; testament sizes are counted in it).
    pub serializer: Serializer,
}

impl SessionDetails {
    /// The `transport` entry of the details: `serializer`, and `type = "inproc"` for an
    /// in-process session (whose serializer is `none`).
    pub fn transport(&self) -> Dict {
        let mut t = Dict::new();
        if self.local {
            t.insert("serializer".into(), Value::Str("none".into()));
            t.insert("type".into(), Value::Str("inproc".into()));
        } else {
            t.insert(
                "serializer".into(),
                Value::Str(self.serializer.name().into()),
            );
        }
        t
    }
}

/// A local session of the realm, as the meta API knows it.
#[derive(Debug)]
struct Member {
    sref: SessionRef,
    details: SessionDetails,
    /// A kill was asked for: the session is on its way out and no longer listed.
    closing: bool,
}

/// A testament: published when its session leaves.
#[derive(Debug, Clone)]
struct Testament {
    topic: Uri,
    payload: Payload,
    options: PublishOptions,
    size: usize,
}

#[derive(Debug, Default)]
struct Testaments {
    detached: Vec<Testament>,
    destroyed: Vec<Testament>,
    bytes: usize,
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
    RemoveSubscriber,
    /// `wamp.subscription.get_events` (one shard asked: the history rule's home).
    Events,
}

/// A query waiting for the other shards' answers.
#[derive(Debug)]
struct Gather {
    caller: SessionId,
    request: Id,
    kind: Kind,
    waiting: usize,
    ids: Vec<Id>,
    details: Option<Dict>,
    events: Option<Result<Vec<Value>, String>>,
    deadline: Instant,
}

/// A meta event (or testament) waiting to be published by the broker.
#[derive(Debug)]
pub(crate) struct RouterEvent {
    pub topic: Uri,
    pub payload: Payload,
    pub options: PublishOptions,
}

impl RouterEvent {
    fn new(topic: &str, args: Vec<Value>) -> Self {
        Self {
            topic: Uri::from(topic),
            payload: Payload::args(args),
            options: PublishOptions::default(),
        }
    }
}

/// The meta API's state for one realm on one shard.
#[derive(Debug, Default)]
pub(crate) struct Meta {
    /// This shard's established sessions of the realm.
    members: HashMap<SessionId, Member>,
    testaments: HashMap<SessionId, Testaments>,
    gathers: HashMap<u64, Gather>,
    next_token: u64,
    /// On the home shard: subscriptions and registrations whose `on_create` was published,
    /// with the last session that left them (the `on_delete` argument).
    announced: HashMap<(Table, Id), SessionId>,
}

impl Meta {
    // ---- sessions --------------------------------------------------------------------------

    /// A local session joined the realm: `wamp.session.on_join`.
    pub fn join(&mut self, sref: SessionRef, details: SessionDetails, ctx: &mut Ctx<'_>) {
        let member = Member {
            sref,
            details,
            closing: false,
        };
        ctx.event(RouterEvent::new(
            "wamp.session.on_join",
            vec![Value::Dict(member.details_dict())],
        ));
        let id = member.sref.id;
        self.members.insert(id, member);
        // The other nodes learn of it (its on_leave is theirs to publish if this node dies).
        self.replicate_testaments(id, ctx);
    }

    /// A local session is leaving: its testaments (detached, then destroyed).
    pub fn leave_testaments(&mut self, session: SessionId, ctx: &mut Ctx<'_>) {
        if let Some(t) = self.testaments.remove(&session) {
            for t in t.detached.into_iter().chain(t.destroyed) {
                ctx.event(RouterEvent {
                    topic: t.topic,
                    payload: t.payload,
                    options: t.options,
                });
            }
        }
        // Published here: the other nodes forget their copy (on_leave included).
        if ctx.config.cluster_node.is_some() {
            ctx.action(crate::routing::realm::Action::Cluster(
                crate::routing::cluster::ClusterOut::Testaments {
                    session,
                    testaments: Vec::new(),
                },
            ));
        }
    }

    /// In a cluster, the other nodes keep a copy of each session's testaments and of its
    /// `wamp.session.on_leave`, to publish them if this node dies (see `docs/cluster.md`):
    /// when it joins and after every change, the whole list, in publication order.
    pub(crate) fn replicate_testaments(&self, session: SessionId, ctx: &mut Ctx<'_>) {
        if ctx.config.cluster_node.is_none() {
            return;
        }
        let Some(m) = self.members.get(&session) else {
            return;
        };
        let mut testaments: Vec<crate::routing::cluster::Testament> = self
            .testaments
            .get(&session)
            .map(|t| {
                t.detached
                    .iter()
                    .chain(&t.destroyed)
                    .map(|t| (t.topic.clone(), t.payload.clone(), t.options.clone()))
                    .collect()
            })
            .unwrap_or_default();
        testaments.push((
            Uri::from("wamp.session.on_leave"),
            Payload::args(on_leave_args(session, m)),
            PublishOptions::default(),
        ));
        ctx.action(crate::routing::realm::Action::Cluster(
            crate::routing::cluster::ClusterOut::Testaments {
                session,
                testaments,
            },
        ));
    }

    /// A local session left (after its subscriptions and registrations went):
    /// `wamp.session.on_leave`.
    pub fn leave(&mut self, session: SessionId, ctx: &mut Ctx<'_>) {
        let Some(m) = self.members.remove(&session) else {
            return;
        };
        ctx.event(RouterEvent::new(
            "wamp.session.on_leave",
            on_leave_args(session, &m),
        ));
    }

    /// Testaments held for a local session (for tests and introspection).
    pub fn testament_count(&self, session: SessionId) -> usize {
        self.testaments
            .get(&session)
            .map_or(0, |t| t.detached.len() + t.destroyed.len())
    }

    // ---- lifecycle events (home shard) -----------------------------------------------------

    /// On the home shard: a session joined or left a subscription or registration.
    pub fn on_lifecycle(
        &mut self,
        l: &Lifecycle,
        broker: &Broker,
        dealer: &Dealer,
        ctx: &mut Ctx<'_>,
    ) {
        let (prefix, join, leave) = match l.table {
            Table::Subscription => ("wamp.subscription", "on_subscribe", "on_unsubscribe"),
            Table::Registration => ("wamp.registration", "on_register", "on_unregister"),
        };
        let key = (l.table, l.id);
        let pair = || vec![Value::UInt(l.session), Value::UInt(l.id)];
        if l.joined {
            if let Entry::Vacant(first) = self.announced.entry(key) {
                // The home's table holds the entry while any shard's interest in it lasts, and a
                // join is reported before that shard's removal: it is there.
                let details = match l.table {
                    Table::Subscription => broker.subscription(l.id).map(|s| sub_details(&s)),
                    Table::Registration => dealer.registration(l.id).map(reg_details),
                };
                let Some(details) = details else {
                    return;
                };
                first.insert(l.session);
                ctx.event(RouterEvent::new(
                    &format!("{prefix}.on_create"),
                    vec![Value::UInt(l.session), Value::Dict(details)],
                ));
            }
            ctx.event(RouterEvent::new(&format!("{prefix}.{join}"), pair()));
        } else {
            if let Some(last) = self.announced.get_mut(&key) {
                *last = l.session;
            }
            ctx.event(RouterEvent::new(&format!("{prefix}.{leave}"), pair()));
        }
    }

    /// On the home shard: the entry went with its last subscriber or callee.
    /// `fallback`: publish `on_delete` even if this shard published no `on_create` (with this
    /// session as the last one, unless another is known).
    pub fn on_removed(
        &mut self,
        table: Table,
        id: Id,
        fallback: Option<SessionId>,
        ctx: &mut Ctx<'_>,
    ) {
        let Some(last) = self.announced.remove(&(table, id)).or(fallback) else {
            return; // nobody ever joined it: no on_create, so no on_delete
        };
        let prefix = match table {
            Table::Subscription => "wamp.subscription",
            Table::Registration => "wamp.registration",
        };
        ctx.event(RouterEvent::new(
            &format!("{prefix}.on_delete"),
            vec![Value::UInt(last), Value::UInt(id)],
        ));
    }

    // ---- gathering queries -----------------------------------------------------------------

    /// Answers `query` from this shard, asks the others, and answers `caller` when all did.
    fn gather(
        &mut self,
        caller: SessionId,
        request: Id,
        kind: Kind,
        query: MetaQuery,
        broker: &Broker,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), procs::Fail> {
        self.gather_from(caller, (request, kind), query, None, broker, ctx)
    }

    /// [`Meta::gather`] from every shard (`only: None`) or from shard `only` alone (this one
    /// included): `wamp.subscription.get_events` asks the history rule's home shard.
    fn gather_from(
        &mut self,
        caller: SessionId,
        (request, kind): (Id, Kind),
        query: MetaQuery,
        only: Option<usize>,
        broker: &Broker,
        ctx: &mut Ctx<'_>,
    ) -> Result<(), procs::Fail> {
        if self.gathers.len() >= MAX_GATHERS {
            return Err((
                errors::LIMIT_EXCEEDED,
                "too many meta queries in flight".into(),
            ));
        }
        let here = only.is_none_or(|s| s == ctx.shard);
        // In a cluster, every node's sessions: one more answer to wait for, "how many
        // answers the other nodes will give" (ClusterIn::Expect).
        let cluster = only.is_none() && ctx.config.cluster_node.is_some();
        let mut g = Gather {
            caller,
            request,
            kind,
            waiting: match only {
                None => ctx.shard_count.saturating_sub(1) + usize::from(cluster),
                Some(_) if here => 0,
                Some(_) => 1,
            },
            ids: Vec::new(),
            details: None,
            events: None,
            deadline: ctx.now + GATHER_TIMEOUT,
        };
        if here {
            g.absorb(self.answer(&query, broker, ctx));
        }
        if g.waiting == 0 {
            g.finish(ctx);
            return Ok(());
        }
        self.next_token = self.next_token.wrapping_add(1);
        let token = self.next_token;
        let msg = PeerMsg::MetaQuery {
            token,
            from: ctx.shard,
            query,
        };
        if cluster {
            if let PeerMsg::MetaQuery { query, .. } = &msg {
                ctx.action(Action::Cluster(
                    crate::routing::cluster::ClusterOut::Query {
                        token,
                        shard: ctx.shard,
                        query: query.clone(),
                    },
                ));
            }
        }
        match only {
            Some(shard) => ctx.peer(shard, msg),
            None if ctx.shard_count > 1 => ctx.broadcast_others(&msg),
            None => {}
        }
        self.gathers.insert(token, g);
        Ok(())
    }

    /// Cluster: the other nodes will answer query `token` `replies` times.
    pub fn on_expect(&mut self, token: u64, replies: usize, ctx: &mut Ctx<'_>) {
        let Some(g) = self.gathers.get_mut(&token) else {
            return;
        };
        g.waiting = (g.waiting + replies).saturating_sub(1);
        if g.waiting == 0 {
            if let Some(g) = self.gathers.remove(&token) {
                g.finish(ctx);
            }
        }
    }

    /// Another shard asks about this shard's sessions.
    pub fn on_query(
        &mut self,
        token: u64,
        from: usize,
        query: &MetaQuery,
        broker: &Broker,
        ctx: &mut Ctx<'_>,
    ) {
        let answer = self.answer(query, broker, ctx);
        ctx.peer(from, PeerMsg::MetaReply { token, answer });
    }

    /// Another shard's answer to one of this shard's queries.
    pub fn on_reply(&mut self, token: u64, answer: MetaAnswer, ctx: &mut Ctx<'_>) {
        let Some(g) = self.gathers.get_mut(&token) else {
            return; // answered already (timed out)
        };
        g.absorb(answer);
        g.waiting = g.waiting.saturating_sub(1);
        if g.waiting == 0 {
            if let Some(g) = self.gathers.remove(&token) {
                g.finish(ctx);
            }
        }
    }

    /// Answers the queries whose shards did not all answer in time.
    pub fn tick(&mut self, ctx: &mut Ctx<'_>) {
        if self.gathers.is_empty() {
            return;
        }
        let now = ctx.now;
        let mut due: Vec<(Instant, u64)> = self
            .gathers
            .iter()
            .filter(|(_, g)| g.deadline <= now)
            .map(|(t, g)| (g.deadline, *t))
            .collect();
        due.sort_unstable();
        for (_, token) in due {
            if let Some(g) = self.gathers.remove(&token) {
                procs::reply_error(
                    ctx,
                    g.caller,
                    g.request,
                    errors::TIMEOUT,
                    Some("a shard did not answer the meta query in time"),
                );
            }
        }
    }

    /// When [`Meta::tick`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.gathers.values().map(|g| g.deadline).min()
    }

    /// This shard's answer to a query about its sessions.
    fn answer(&mut self, query: &MetaQuery, broker: &Broker, ctx: &mut Ctx<'_>) -> MetaAnswer {
        let listed = self.members.values().filter(|m| !m.closing);
        match query {
            MetaQuery::Sessions { filter } => MetaAnswer::Sessions(
                listed
                    .filter(|m| {
                        filter
                            .as_ref()
                            .is_none_or(|f| f.iter().any(|r| **r == *m.sref.authrole))
                    })
                    .map(|m| m.sref.id)
                    .collect(),
            ),
            MetaQuery::Get { session } => MetaAnswer::Details(
                self.members
                    .get(session)
                    .filter(|m| !m.closing)
                    .map(Member::details_dict),
            ),
            MetaQuery::Kill {
                target,
                exclude,
                reason,
                message,
            } => {
                let mut ids = Vec::new();
                for m in self.members.values_mut() {
                    let hit = match target {
                        KillTarget::Session(id) => m.sref.id == *id,
                        KillTarget::Authid(a) => *m.sref.authid == **a,
                        KillTarget::Authrole(r) => *m.sref.authrole == **r,
                        KillTarget::All => true,
                    };
                    if hit && !m.closing && m.sref.id != *exclude {
                        m.closing = true;
                        ids.push(m.sref.id);
                    }
                }
                ids.sort_unstable();
                for &session in &ids {
                    ctx.action(Action::Kill {
                        session,
                        reason: reason.clone(),
                        message: message.clone(),
                    });
                }
                MetaAnswer::Sessions(ids)
            }
            MetaQuery::RemoveSubscriber {
                subscription,
                session,
                reason,
            } => {
                let member = self.members.get(session).filter(|m| !m.closing);
                match member {
                    Some(m) if broker.is_subscribed(*session, *subscription) => {
                        ctx.peer(
                            ctx.shard,
                            PeerMsg::RevokeSubscription {
                                subscription: *subscription,
                                session: *session,
                                reason: reason.clone(),
                                notify: m.sref.features.subscriber_subscription_revocation,
                            },
                        );
                        MetaAnswer::Sessions(vec![*session])
                    }
                    _ => MetaAnswer::Sessions(Vec::new()),
                }
            }
            MetaQuery::Events {
                rule,
                subscription,
                query,
                reader,
            } => {
                MetaAnswer::Events(broker.history_events(*rule, *subscription, query, reader, ctx))
            }
            MetaQuery::Subscribers { subscription } => MetaAnswer::Sessions(
                broker
                    .local_subscribers(*subscription)
                    .iter()
                    .map(|s| s.session)
                    .collect(),
            ),
        }
    }
}

/// `wamp.session.on_leave`'s arguments: session ID, authid, authrole.
fn on_leave_args(session: SessionId, m: &Member) -> Vec<Value> {
    vec![
        Value::UInt(session),
        Value::Str(m.sref.authid.to_string()),
        Value::Str(m.sref.authrole.to_string()),
    ]
}

impl Member {
    /// `SessionDetails` of the meta API.
    fn details_dict(&self) -> Dict {
        let mut d = Dict::new();
        d.insert("session".into(), Value::UInt(self.sref.id));
        d.insert("authid".into(), Value::Str(self.sref.authid.to_string()));
        d.insert(
            "authrole".into(),
            Value::Str(self.sref.authrole.to_string()),
        );
        d.insert(
            "authmethod".into(),
            Value::Str(self.details.authmethod.clone()),
        );
        d.insert(
            "authprovider".into(),
            Value::Str(self.details.authprovider.to_string()),
        );
        d.insert("transport".into(), Value::Dict(self.details.transport()));
        // The details publish filters test (`exclude_<key>` / `eligible_<key>`): HELLO's and
        // authentication's string values, never replacing the entries above.
        for (k, v) in self.sref.attributes.iter() {
            d.entry(k.to_owned())
                .or_insert_with(|| Value::Str(v.to_owned()));
        }
        d
    }
}

impl Gather {
    fn absorb(&mut self, a: MetaAnswer) {
        match a {
            MetaAnswer::Sessions(ids) => self.ids.extend(ids),
            MetaAnswer::Details(d) => {
                if self.details.is_none() {
                    self.details = d;
                }
            }
            MetaAnswer::Events(e) => self.events = Some(e),
        }
    }

    /// The gathered answer becomes the caller's RESULT (or ERROR).
    fn finish(self, ctx: &mut Ctx<'_>) {
        let (caller, request) = (self.caller, self.request);
        let ids = || Value::List(self.ids.iter().map(|i| Value::UInt(*i)).collect());
        let count = Value::UInt(self.ids.len() as u64);
        let no_such = |ctx: &mut Ctx<'_>| {
            procs::reply_error(ctx, caller, request, errors::NO_SUCH_SESSION, None)
        };
        match self.kind {
            Kind::Count | Kind::KillCount | Kind::CountSubscribers => {
                procs::reply(ctx, caller, request, vec![count])
            }
            Kind::List | Kind::KillList | Kind::Subscribers => {
                procs::reply(ctx, caller, request, vec![ids()])
            }
            Kind::Get => match self.details {
                Some(d) => procs::reply(ctx, caller, request, vec![Value::Dict(d)]),
                None => no_such(ctx),
            },
            Kind::Kill if self.ids.is_empty() => no_such(ctx),
            Kind::Kill => procs::reply(ctx, caller, request, Vec::new()),
            Kind::RemoveSubscriber if self.ids.is_empty() => procs::reply_error(
                ctx,
                caller,
                request,
                errors::NO_SUCH_SESSION,
                Some("no such session among the subscribers"),
            ),
            Kind::RemoveSubscriber => procs::reply(ctx, caller, request, Vec::new()),
            Kind::Events => match self.events {
                Some(Ok(events)) => procs::reply_list(ctx, caller, request, events),
                Some(Err(text)) => {
                    procs::reply_error(ctx, caller, request, procs::INVALID_ARGUMENT, Some(&text))
                }
                None => procs::reply_error(ctx, caller, request, errors::TIMEOUT, None),
            },
        }
    }
}

/// `SubscriptionDetails`.
fn sub_details(s: &SubscriptionInfo) -> Dict {
    let mut d = Dict::new();
    d.insert("id".into(), Value::UInt(s.id));
    d.insert("created".into(), Value::Str(s.created.to_string()));
    d.insert("uri".into(), Value::Str(s.pattern.to_string()));
    d.insert("match".into(), Value::Str(s.policy.as_str().into()));
    d
}

/// `RegistrationDetails`.
fn reg_details(r: &Registration) -> Dict {
    let mut d = Dict::new();
    d.insert("id".into(), Value::UInt(r.id));
    d.insert("created".into(), Value::Str(r.created.to_string()));
    d.insert("uri".into(), Value::Str(r.procedure.to_string()));
    d.insert("match".into(), Value::Str(r.policy.as_str().into()));
    d.insert("invoke".into(), Value::Str(r.invoke.as_str().into()));
    d
}

/// Encoded size of a testament, in the session's serializer.
fn testament_size(serializer: Serializer, t: &Testament) -> usize {
    codec::encode(
        serializer,
        &codec::Message::Publish(Box::new(codec::Publish {
            request: 0,
            options: t.options.clone(),
            topic: t.topic.clone(),
            payload: t.payload.clone(),
        })),
    )
    .len()
}
