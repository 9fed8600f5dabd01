//! The broker of one realm on one shard: subscriptions and publication fan-out.
//!
//! Two tables:
//!
//! - **interest** (replicated on every shard): `(policy, pattern) → (subscription ID, shards
//!   with local subscribers)`. On the pattern's home shard this entry is authoritative: the home
//!   allocates the ID and serialises every change (see [`super::peer`]). A PUBLISH matches the
//!   topic against it once and sends ONE [`PeerMsg::Publish`] to each other shard that has
//!   interest in any matching subscription.
//! - **local** (this shard only): `(policy, pattern) → subscription ID + local subscribers`.
//!   A publication (local or from a peer) is matched against it and produces ONE EVENT per
//!   matching subscription, shared by all its eligible local recipients.
//!
//! A local subscription is *pending* until every shard has acknowledged this shard's interest;
//! SUBSCRIBED goes out only then, so a publication from any shard reaches the new subscriber.
//! Pending subscriptions receive no events. Removing interest (last local subscriber gone) is
//! not acknowledged: UNSUBSCRIBED is immediate, and a publication still in flight to this shard
//! finds no local subscription and is dropped here, which is what the subscriber asked for.
//!
//! Publisher options (exclude_me, exclude/eligible and their _authid/_authrole forms) travel in
//! the [`Publication`] and are applied on every shard to that shard's own subscribers.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::codec::uri::{self, MatchPolicy};
use crate::codec::{
    code, EventDetails, Id, IdField, Message, Publish, Published, Subscribe, Subscribed,
    Unsubscribe, Unsubscribed, Uri,
};
use crate::routing::matcher::UriIndex;

use super::ids::{random_global_id, IdAllocator, SessionId, ShardId};
use super::peer::{Lifecycle, PeerMsg, Publication, Table};
use super::realm::{errors, Ctx};
use super::session::SessionRef;

/// A subscription as the replicated interest table knows it.
#[derive(Debug, Clone)]
struct Interest {
    id: Id,
    /// Shards with local subscribers, in the order they joined.
    shards: Vec<ShardId>,
    /// When the home shard created the subscription (ISO 8601), the same on every shard.
    created: Arc<str>,
}

/// A local subscriber.
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub session: SessionId,
    pub authid: Arc<str>,
    pub authrole: Arc<str>,
}

/// This shard's side of one subscription.
#[derive(Debug)]
struct LocalSub {
    /// Known once the home shard answered (first ack).
    id: Option<Id>,
    state: SubState,
    subscribers: Vec<Subscriber>,
}

#[derive(Debug)]
enum SubState {
    /// Waiting for `shard_count` acks of the interest add named `token`.
    Pending {
        token: u64,
        acks: usize,
        /// SUBSCRIBE requests to answer on activation.
        waiters: Vec<(Subscriber, Id)>,
    },
    Active,
}

/// Per local session: what to clean up when it leaves, and what counts against its limit.
#[derive(Debug, Default)]
struct SessionSubs {
    active: HashSet<Id>,
    /// Patterns this session waits on (pending subscriptions).
    waiting: Vec<(MatchPolicy, Uri)>,
}

/// One subscription, for the meta API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionInfo {
    pub id: Id,
    pub policy: MatchPolicy,
    pub pattern: Uri,
    /// Shards that have subscribers (the subscribers themselves live on those shards).
    pub shards: Vec<ShardId>,
    /// When the home shard created it (ISO 8601).
    pub created: Arc<str>,
}

/// See the module docs.
#[derive(Debug)]
pub struct Broker {
    ids: IdAllocator,
    interest: UriIndex<Interest>,
    interest_by_id: HashMap<Id, (MatchPolicy, Uri)>,
    local: UriIndex<LocalSub>,
    local_by_id: HashMap<Id, (MatchPolicy, Uri)>,
    /// Pending interest adds of this shard: token → pattern.
    pending: HashMap<u64, (MatchPolicy, Uri)>,
    next_token: u64,
    sessions: HashMap<SessionId, SessionSubs>,
    /// Scratch: which shards a publication goes to (reused, no allocation per publish).
    fanout: Vec<bool>,
}

impl Broker {
    pub(crate) fn new(shard: ShardId, shard_count: usize) -> Self {
        Self {
            ids: IdAllocator::new(shard, shard_count),
            interest: UriIndex::new(),
            interest_by_id: HashMap::new(),
            local: UriIndex::new(),
            local_by_id: HashMap::new(),
            pending: HashMap::new(),
            next_token: 0,
            sessions: HashMap::new(),
            fanout: vec![false; shard_count.max(1)],
        }
    }

    // ---- session messages ------------------------------------------------------------------

    /// `[PUBLISH, Request|id, Options|dict, Topic|uri, Arguments|list, ArgumentsKw|dict]`
    pub(crate) fn publish(&mut self, publisher: &SessionRef, msg: Publish, ctx: &mut Ctx<'_>) {
        let ack = msg.options.acknowledge == Some(true);
        let bad = uri::validate_uri(&msg.topic, ctx.config.uri_check).is_err();
        if bad || uri::is_reserved(&msg.topic) {
            // The spec: without acknowledge, the broker does not respond, success or not.
            if ack {
                let text = if bad {
                    "invalid topic URI"
                } else {
                    "topics under wamp. are reserved for the router"
                };
                ctx.error_msg(
                    publisher.id,
                    code::PUBLISH,
                    msg.request,
                    errors::INVALID_URI,
                    Some(text),
                );
            }
            return;
        }
        let publication = Arc::new(Publication {
            id: random_global_id(ctx.rng),
            topic: msg.topic,
            publisher: publisher.id,
            publisher_authid: publisher.authid.clone(),
            publisher_authrole: publisher.authrole.clone(),
            publisher_trustlevel: publisher.trustlevel,
            options: msg.options,
            payload: msg.payload,
        });
        self.dispatch(&publication, ctx);
        if ack {
            ctx.send(
                publisher.id,
                Message::Published(Published {
                    request: msg.request,
                    publication: publication.id,
                }),
            );
        }
    }

    /// A publication by the router itself (meta events such as `wamp.session.on_join`): no
    /// publisher session (ID 0, which no session has), no URI policy. Returns the publication ID.
    pub(crate) fn publish_from_router(
        &mut self,
        topic: Uri,
        payload: crate::codec::Payload,
        options: crate::codec::PublishOptions,
        ctx: &mut Ctx<'_>,
    ) -> Id {
        let publication = Arc::new(Publication {
            id: random_global_id(ctx.rng),
            topic,
            publisher: 0,
            publisher_authid: Arc::from(""),
            publisher_authrole: Arc::from(""),
            publisher_trustlevel: None,
            options,
            payload,
        });
        self.dispatch(&publication, ctx);
        publication.id
    }

    /// Local delivery, then one message to each other shard with interest in any matching
    /// subscription.
    fn dispatch(&mut self, publication: &Arc<Publication>, ctx: &mut Ctx<'_>) {
        self.deliver_local(publication, ctx);
        self.fanout.iter_mut().for_each(|f| *f = false);
        let fanout = &mut self.fanout;
        self.interest
            .for_each_match(&publication.topic, |_, entry| {
                for s in &entry.shards {
                    if let Some(f) = fanout.get_mut(*s) {
                        *f = true;
                    }
                }
            });
        for shard in 0..self.fanout.len() {
            if shard != ctx.shard && self.fanout[shard] {
                ctx.peer(shard, PeerMsg::Publish(publication.clone()));
            }
        }
    }

    /// `[SUBSCRIBE, Request|id, Options|dict, Topic|uri]`
    pub(crate) fn subscribe(&mut self, session: &SessionRef, msg: Subscribe, ctx: &mut Ctx<'_>) {
        let policy = msg.options.match_policy.unwrap_or_default();
        if uri::validate_pattern(&msg.topic, policy, ctx.config.uri_check).is_err() {
            ctx.error(
                session.id,
                code::SUBSCRIBE,
                msg.request,
                errors::INVALID_URI,
            );
            return;
        }
        let subscriber = Subscriber {
            session: session.id,
            authid: session.authid.clone(),
            authrole: session.authrole.clone(),
        };
        let subs = self.sessions.entry(session.id).or_default();
        if let Some(local) = self.local.get_mut(policy, &msg.topic) {
            match (&mut local.state, local.id) {
                (SubState::Active, Some(id)) => {
                    if !subs.active.contains(&id) {
                        if subs.active.len() + subs.waiting.len()
                            >= ctx.config.max_subscriptions_per_session
                        {
                            limit_error(session.id, msg.request, ctx);
                            return;
                        }
                        subs.active.insert(id);
                        local.subscribers.push(subscriber);
                        ctx.send(session.id, subscribed(msg.request, id));
                        report(ctx, id, policy, msg.topic, session.id, true);
                        return;
                    }
                    // Already subscribed: the spec says answer with the existing ID.
                    ctx.send(session.id, subscribed(msg.request, id));
                }
                (SubState::Pending { waiters, .. }, _) => {
                    let already = waiters.iter().any(|(w, _)| w.session == session.id);
                    if !already {
                        if subs.active.len() + subs.waiting.len()
                            >= ctx.config.max_subscriptions_per_session
                        {
                            limit_error(session.id, msg.request, ctx);
                            return;
                        }
                        subs.waiting.push((policy, msg.topic.clone()));
                    }
                    waiters.push((subscriber, msg.request));
                }
                (SubState::Active, None) => {
                    // Unreachable by construction (activation needs an ack, acks carry the ID);
                    // answer rather than drop the request.
                    ctx.error(
                        session.id,
                        code::SUBSCRIBE,
                        msg.request,
                        errors::INVALID_URI,
                    );
                }
            }
            return;
        }
        if subs.active.len() + subs.waiting.len() >= ctx.config.max_subscriptions_per_session {
            limit_error(session.id, msg.request, ctx);
            return;
        }
        subs.waiting.push((policy, msg.topic.clone()));
        let token = self.next_token;
        self.next_token += 1;
        self.local.insert(
            policy,
            &msg.topic,
            LocalSub {
                id: None,
                state: SubState::Pending {
                    token,
                    acks: 0,
                    waiters: vec![(subscriber, msg.request)],
                },
                subscribers: Vec::new(),
            },
        );
        self.pending.insert(token, (policy, msg.topic.clone()));
        let home = ctx.home(policy, &msg.topic);
        ctx.peer(
            home,
            PeerMsg::InterestAddRequest {
                token,
                from: ctx.shard,
                policy,
                topic: msg.topic,
            },
        );
    }

    /// `[UNSUBSCRIBE, Request|id, SUBSCRIBED.Subscription|id]`
    pub(crate) fn unsubscribe(
        &mut self,
        session: &SessionRef,
        msg: Unsubscribe,
        ctx: &mut Ctx<'_>,
    ) {
        let held = self
            .sessions
            .get_mut(&session.id)
            .is_some_and(|s| s.active.remove(&msg.subscription));
        if !held {
            ctx.error(
                session.id,
                code::UNSUBSCRIBE,
                msg.request,
                errors::NO_SUCH_SUBSCRIPTION,
            );
            return;
        }
        self.remove_subscriber(msg.subscription, session.id, ctx);
        ctx.send(
            session.id,
            Message::Unsubscribed(Unsubscribed {
                request: msg.request,
                details: None,
            }),
        );
    }

    pub(crate) fn session_left(&mut self, session: SessionId, ctx: &mut Ctx<'_>) {
        let Some(subs) = self.sessions.remove(&session) else {
            return;
        };
        for id in subs.active {
            self.remove_subscriber(id, session, ctx);
        }
        for (policy, topic) in subs.waiting {
            let Some(local) = self.local.get_mut(policy, &topic) else {
                continue;
            };
            let SubState::Pending { waiters, token, .. } = &mut local.state else {
                continue;
            };
            waiters.retain(|(w, _)| w.session != session);
            if waiters.is_empty() && local.subscribers.is_empty() {
                // Nobody waits any more: withdraw now. The home shard handles our add before
                // this removal (FIFO), and acks still in flight name a token we forget here.
                let token = *token;
                self.pending.remove(&token);
                self.local.remove(policy, &topic);
                Self::withdraw_interest(policy, topic, ctx);
            }
        }
    }

    // ---- peer messages (dispatched by `RealmShard`) ---------------------------------------

    /// On the home shard of `(policy, topic)`: shard `from` has local subscribers now.
    pub(crate) fn on_interest_add_request(
        &mut self,
        token: u64,
        from: ShardId,
        policy: MatchPolicy,
        topic: Uri,
        ctx: &mut Ctx<'_>,
    ) {
        let ids = &mut self.ids;
        let entry = self
            .interest
            .get_or_insert_with(policy, &topic, || Interest {
                id: ids.next_id(),
                shards: Vec::new(),
                created: ctx.wall_clock(),
            });
        if !entry.shards.contains(&from) {
            entry.shards.push(from);
        }
        let id = entry.id;
        let created = entry.created.clone();
        self.interest_by_id.insert(id, (policy, topic.clone()));
        ctx.broadcast_others(&PeerMsg::InterestAdd {
            token,
            origin: from,
            subscription: id,
            policy,
            topic,
            created,
        });
        ctx.peer(
            from,
            PeerMsg::InterestAck {
                token,
                subscription: id,
            },
        );
    }

    /// From the home shard: replicate its interest entry, then ack to `origin`.
    pub(crate) fn on_interest_add(
        &mut self,
        token: u64,
        origin: ShardId,
        subscription: Id,
        (policy, topic): (MatchPolicy, Uri),
        created: Arc<str>,
        ctx: &mut Ctx<'_>,
    ) {
        let entry = self
            .interest
            .get_or_insert_with(policy, &topic, || Interest {
                id: subscription,
                shards: Vec::new(),
                created: created.clone(),
            });
        if entry.id != subscription {
            // The home shard is authoritative; a stale entry cannot survive FIFO
            // delivery, but converge anyway.
            self.interest_by_id.remove(&entry.id);
            entry.id = subscription;
            entry.shards.clear();
            entry.created = created;
        }
        if !entry.shards.contains(&origin) {
            entry.shards.push(origin);
        }
        self.interest_by_id.insert(subscription, (policy, topic));
        ctx.peer(
            origin,
            PeerMsg::InterestAck {
                token,
                subscription,
            },
        );
    }

    /// On the home shard: shard `from` has no local subscriber of `(policy, topic)` any more.
    /// Reports the removal of the entry when it was the last shard (meta `on_delete`).
    pub(crate) fn on_interest_remove_request(
        &mut self,
        from: ShardId,
        policy: MatchPolicy,
        topic: Uri,
        ctx: &mut Ctx<'_>,
    ) {
        let Some(entry) = self.interest.get(policy, &topic) else {
            return;
        };
        let id = entry.id;
        if self.remove_interest(from, id, policy, &topic) {
            ctx.removed(Table::Subscription, id);
        }
        ctx.broadcast_others(&PeerMsg::InterestRemove {
            shard: from,
            subscription: id,
            policy,
            topic,
        });
    }

    /// From the home shard: replicate the removal of `shard`'s interest.
    pub(crate) fn on_interest_remove(
        &mut self,
        shard: ShardId,
        subscription: Id,
        policy: MatchPolicy,
        topic: &str,
    ) {
        self.remove_interest(shard, subscription, policy, topic);
    }

    /// A publication from another shard (or a router event): deliver it to local subscribers.
    pub(crate) fn on_publication(&self, publication: &Publication, ctx: &mut Ctx<'_>) {
        self.deliver_local(publication, ctx);
    }

    // ---- internals -------------------------------------------------------------------------

    /// On the subscribing shard: one more shard routes publications of the subscription here.
    pub(crate) fn on_ack(&mut self, token: u64, subscription: Id, ctx: &mut Ctx<'_>) {
        let Some((policy, topic)) = self.pending.get(&token).cloned() else {
            return; // everyone who waited left; the interest was withdrawn already
        };
        let Some(local) = self.local.get_mut(policy, &topic) else {
            self.pending.remove(&token);
            return;
        };
        let done = match &mut local.state {
            SubState::Pending { token: t, acks, .. } if *t == token => {
                *acks += 1;
                local.id = Some(subscription);
                *acks >= ctx.shard_count
            }
            _ => return,
        };
        if !done {
            return;
        }
        self.pending.remove(&token);
        let SubState::Pending { waiters, .. } =
            std::mem::replace(&mut local.state, SubState::Active)
        else {
            return;
        };
        self.local_by_id
            .insert(subscription, (policy, topic.clone()));
        for (subscriber, request) in waiters {
            let session = subscriber.session;
            let mut joined = false;
            if let Some(subs) = self.sessions.get_mut(&session) {
                subs.waiting.retain(|(p, t)| !(*p == policy && *t == topic));
                if subs.active.insert(subscription) {
                    local.subscribers.push(subscriber);
                    joined = true;
                }
            }
            ctx.send(session, subscribed(request, subscription));
            if joined {
                report(ctx, subscription, policy, topic.clone(), session, true);
            }
        }
        if local.subscribers.is_empty() {
            self.local.remove(policy, &topic);
            self.local_by_id.remove(&subscription);
            Self::withdraw_interest(policy, topic, ctx);
        }
    }

    fn remove_subscriber(&mut self, id: Id, session: SessionId, ctx: &mut Ctx<'_>) {
        let Some((policy, topic)) = self.local_by_id.get(&id).cloned() else {
            return;
        };
        let Some(local) = self.local.get_mut(policy, &topic) else {
            return;
        };
        local.subscribers.retain(|s| s.session != session);
        // Before the interest removal below: the home publishes on_unsubscribe first.
        report(ctx, id, policy, topic.clone(), session, false);
        if local.subscribers.is_empty() {
            self.local.remove(policy, &topic);
            self.local_by_id.remove(&id);
            Self::withdraw_interest(policy, topic, ctx);
        }
    }

    fn withdraw_interest(policy: MatchPolicy, topic: Uri, ctx: &mut Ctx<'_>) {
        let home = ctx.home(policy, &topic);
        ctx.peer(
            home,
            PeerMsg::InterestRemoveRequest {
                from: ctx.shard,
                policy,
                topic,
            },
        );
    }

    /// Drops `shard` from the interest entry with ID `id`; the entry goes (and on the home
    /// shard the ID retires) with its last shard. True when the entry went.
    fn remove_interest(
        &mut self,
        shard: ShardId,
        id: Id,
        policy: MatchPolicy,
        topic: &str,
    ) -> bool {
        let Some(entry) = self.interest.get_mut(policy, topic) else {
            return false;
        };
        if entry.id != id {
            return false;
        }
        entry.shards.retain(|s| *s != shard);
        if entry.shards.is_empty() {
            self.interest.remove(policy, topic);
            self.interest_by_id.remove(&id);
            return true;
        }
        false
    }

    /// One EVENT per matching active local subscription, to its eligible subscribers.
    fn deliver_local(&self, p: &Publication, ctx: &mut Ctx<'_>) {
        let disclose = p.options.disclose_me == Some(true);
        self.local.for_each_match(&p.topic, |policy, local| {
            let (SubState::Active, Some(id)) = (&local.state, local.id) else {
                return;
            };
            let to: Vec<SessionId> = local
                .subscribers
                .iter()
                .filter(|s| receives(p, s))
                .map(|s| s.session)
                .collect();
            if to.is_empty() {
                return;
            }
            let o = &p.options;
            let details = EventDetails {
                publisher: disclose.then_some(IdField(p.publisher)),
                publisher_authid: disclose.then(|| p.publisher_authid.to_string()),
                publisher_authrole: disclose.then(|| p.publisher_authrole.to_string()),
                topic: (policy != MatchPolicy::Exact).then(|| p.topic.clone()),
                transaction_hash: o.transaction_hash.clone(),
                enc_algo: o.enc_algo.clone(),
                enc_serializer: o.enc_serializer.clone(),
                ppt_scheme: o.ppt_scheme.clone(),
                ppt_serializer: o.ppt_serializer.clone(),
                ppt_cipher: o.ppt_cipher.clone(),
                ppt_keyid: o.ppt_keyid.clone(),
                trustlevel: p.publisher_trustlevel,
                ..EventDetails::default()
            };
            let event = Message::Event(crate::codec::Event {
                subscription: id,
                publication: p.id,
                details,
                payload: p.payload.clone(),
            });
            ctx.send_many(to, event);
        });
    }

    // ---- read access (meta API) ------------------------------------------------------------

    /// Every subscription in the realm (this shard's replica of the interest table).
    pub fn subscriptions(&self) -> Vec<SubscriptionInfo> {
        self.interest_by_id
            .iter()
            .filter_map(|(id, (policy, pattern))| {
                let entry = self.interest.get(*policy, pattern)?;
                Some(SubscriptionInfo {
                    id: *id,
                    policy: *policy,
                    pattern: pattern.clone(),
                    shards: entry.shards.clone(),
                    created: entry.created.clone(),
                })
            })
            .collect()
    }

    /// One subscription by ID (this shard's replica of the interest table).
    pub fn subscription(&self, id: Id) -> Option<SubscriptionInfo> {
        let (policy, pattern) = self.interest_by_id.get(&id)?;
        let entry = self.interest.get(*policy, pattern)?;
        Some(SubscriptionInfo {
            id,
            policy: *policy,
            pattern: pattern.clone(),
            shards: entry.shards.clone(),
            created: entry.created.clone(),
        })
    }

    /// The subscription for exactly `(policy, pattern)` (`wamp.subscription.lookup`).
    pub fn lookup(&self, policy: MatchPolicy, pattern: &str) -> Option<Id> {
        self.interest.get(policy, pattern).map(|e| e.id)
    }

    /// The subscriptions a topic matches (`wamp.subscription.match`).
    pub fn matching(&self, topic: &str) -> Vec<Id> {
        let mut out = Vec::new();
        self.interest.for_each_match(topic, |_, e| out.push(e.id));
        out
    }

    /// This shard's subscribers of subscription `id` (active ones only).
    pub fn local_subscribers(&self, id: Id) -> &[Subscriber] {
        self.local_by_id
            .get(&id)
            .and_then(|(p, t)| self.local.get(*p, t))
            .map_or(&[], |l| l.subscribers.as_slice())
    }

    /// Whether local session `session` holds active subscription `id`.
    pub fn is_subscribed(&self, session: SessionId, id: Id) -> bool {
        self.sessions
            .get(&session)
            .is_some_and(|s| s.active.contains(&id))
    }

    /// The active subscriptions of a local session.
    pub fn subscriptions_of(&self, session: SessionId) -> Vec<Id> {
        self.sessions
            .get(&session)
            .map(|s| s.active.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// Publisher exclusion and subscriber black/whitelisting, as the spec lists the six rules
/// (plus exclude_me, default true).
fn receives(p: &Publication, s: &Subscriber) -> bool {
    let o = &p.options;
    if s.session == p.publisher && o.exclude_me.unwrap_or(true) {
        return false;
    }
    let has_str =
        |list: &Option<Vec<String>>, v: &str| list.as_ref().map(|l| l.iter().any(|x| x == v));
    let has_id = |list: &Option<Vec<u64>>| list.as_ref().map(|l| l.contains(&s.session));
    has_id(&o.eligible) != Some(false)
        && has_str(&o.eligible_authid, &s.authid) != Some(false)
        && has_str(&o.eligible_authrole, &s.authrole) != Some(false)
        && has_id(&o.exclude) != Some(true)
        && has_str(&o.exclude_authid, &s.authid) != Some(true)
        && has_str(&o.exclude_authrole, &s.authrole) != Some(true)
}

/// Tells the home shard of the subscription that local `session` joined or left it (the home
/// publishes the meta events; see [`super::peer`]).
fn report(
    ctx: &mut Ctx<'_>,
    id: Id,
    policy: MatchPolicy,
    uri: Uri,
    session: SessionId,
    joined: bool,
) {
    ctx.report(Lifecycle {
        table: Table::Subscription,
        id,
        policy,
        uri,
        session,
        joined,
    });
}

fn subscribed(request: Id, subscription: Id) -> Message {
    Message::Subscribed(Subscribed {
        request,
        subscription,
    })
}

fn limit_error(session: SessionId, request: Id, ctx: &mut Ctx<'_>) {
    ctx.error_msg(
        session,
        code::SUBSCRIBE,
        request,
        errors::LIMIT_EXCEEDED,
        Some("too many subscriptions for this session"),
    );
}
