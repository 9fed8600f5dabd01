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
//! Publisher options (exclude_me, exclude/eligible, their _authid/_authrole forms and the
//! `exclude_<key>` / `eligible_<key>` lists over any session detail) travel in the
//! [`Publication`] and are applied on every shard to that shard's own subscribers
//! ([`super::filter`]), with the embedder's publish filter if one is configured.

mod history;
mod read;
mod retention;

use crate::util::fast::{FastMap as HashMap, FastSet as HashSet};
use std::sync::Arc;

use crate::codec::uri::{self, MatchPolicy};
use crate::codec::{
    code, EventDetails, Id, IdField, Message, Publish, Published, Subscribe, Subscribed,
    Unsubscribe, Unsubscribed, Uri,
};
use crate::routing::matcher::UriIndex;

use super::cluster::{ClusterIn, ClusterOut, NodeId};
use super::filter::{DetailFilter, Recipients};
use super::history::HistoryStore;
use super::ids::{random_global_id, IdAllocator, SessionId, ShardId};
use super::peer::{Lifecycle, PeerMsg, Publication, Table};
use super::realm::{errors, Action, Ctx};
use super::retained::{RetainedEvent, RetainedStore};
use super::session::{self, Attributes, SessionRef};

/// A subscription as the replicated interest table knows it.
#[derive(Debug, Clone)]
struct Interest {
    id: Id,
    /// Shards with local subscribers, in the order they joined.
    shards: Vec<ShardId>,
    /// When the home shard created the subscription (ISO 8601), the same on every shard.
    created: Arc<str>,
}

/// A local subscriber: what the publish filters test ([`super::filter`]).
#[derive(Debug, Clone)]
pub struct Subscriber {
    pub session: SessionId,
    pub authid: Arc<str>,
    pub authrole: Arc<str>,
    /// The session's other details (shared with its [`SessionRef`]).
    pub attributes: Arc<Attributes>,
}

impl Subscriber {
    /// Session detail `key` (`authid`, `authrole`, or one of the [`Attributes`]).
    pub fn attribute(&self, key: &str) -> Option<&str> {
        session::attribute(&self.authid, &self.authrole, &self.attributes, key)
    }
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
        waiters: Vec<Waiter>,
    },
    Active,
}

/// A SUBSCRIBE waiting for its subscription to become active.
#[derive(Debug)]
struct Waiter {
    subscriber: Subscriber,
    request: Id,
    /// `SUBSCRIBE.Options.get_retained`.
    get_retained: bool,
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
    /// This shard's replica of the realm's retained events ([`super::retained`]).
    retained: RetainedStore,
    /// Sequence of the retained events this shard stamps.
    retain_seq: u64,
    /// The event histories whose rules have their home on this shard ([`super::history`]).
    history: HistoryStore,
    /// Cluster only: which other nodes have subscribers of which patterns (replicated on
    /// every shard from [`ClusterIn::Interest`]).
    remote: UriIndex<RemoteInterest>,
    /// Cluster only: the patterns each other node is interested in (to forget a node).
    remote_by_node: HashMap<NodeId, HashSet<(MatchPolicy, Uri)>>,
    /// Cluster only: subscription ID → pattern of `remote` (the meta API's lookups).
    remote_by_id: HashMap<Id, (MatchPolicy, Uri)>,
}

/// Cluster only: a pattern other nodes have subscribers of.
#[derive(Debug)]
pub(crate) struct RemoteInterest {
    /// Its subscription ID (the same on every node, [`super::cluster::subscription_id`]).
    pub id: Id,
    /// When this node first heard of it.
    pub created: Arc<str>,
    pub nodes: Vec<NodeId>,
}

impl Broker {
    pub(crate) fn new(shard: ShardId, shard_count: usize, id_base: u64) -> Self {
        Self {
            ids: IdAllocator::with_base(shard, shard_count, id_base),
            interest: UriIndex::new(),
            interest_by_id: HashMap::default(),
            local: UriIndex::new(),
            local_by_id: HashMap::default(),
            pending: HashMap::default(),
            next_token: 0,
            sessions: HashMap::default(),
            fanout: vec![false; shard_count.max(1)],
            retained: RetainedStore::default(),
            retain_seq: 0,
            history: HistoryStore::default(),
            remote: UriIndex::new(),
            remote_by_node: HashMap::default(),
            remote_by_id: HashMap::default(),
        }
    }

    // ---- session messages ------------------------------------------------------------------

    /// `[PUBLISH, Request|id, Options|dict, Topic|uri, Arguments|list, ArgumentsKw|dict]`
    pub(crate) fn publish(&mut self, publisher: &SessionRef, msg: Box<Publish>, ctx: &mut Ctx<'_>) {
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
        let o = &msg.options;
        if let Err(text) = session::payload_passthru(
            &o.ppt_scheme,
            [&o.ppt_serializer, &o.ppt_cipher, &o.ppt_keyid],
            publisher.features.publisher_payload_passthru,
        ) {
            return ctx.protocol_violation(publisher.id, text);
        }
        let filter = match DetailFilter::from_options(&msg.options) {
            Ok(f) => f,
            Err(e) => {
                // Never delivered with a list it could not read (that could widen who gets it).
                if ack {
                    ctx.error_msg(
                        publisher.id,
                        code::PUBLISH,
                        msg.request,
                        errors::INVALID_ARGUMENT,
                        Some(&e.to_string()),
                    );
                }
                return;
            }
        };
        let publication = Arc::new(Publication {
            id: random_global_id(ctx.rng),
            topic: msg.topic,
            publisher: publisher.id,
            publisher_authid: publisher.authid.clone(),
            publisher_authrole: publisher.authrole.clone(),
            publisher_attributes: publisher.attributes.clone(),
            filter,
            publisher_trustlevel: publisher.trustlevel,
            options: msg.options,
            payload: msg.payload,
        });
        let retained = (publication.options.retain == Some(true) && ctx.config.retention.enabled())
            .then(|| self.stamp_retained(&publication, ctx));
        self.dispatch(&publication, retained, ctx);
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
    /// publisher session (ID 0, which no session has), no URI policy. Returns the publication ID
    /// (0, nothing published, if `options` hold an `exclude_<key>`/`eligible_<key>` that is
    /// not a list of strings).
    pub(crate) fn publish_from_router(
        &mut self,
        topic: Uri,
        payload: crate::codec::Payload,
        options: crate::codec::PublishOptions,
        ctx: &mut Ctx<'_>,
    ) -> Id {
        let Ok(filter) = DetailFilter::from_options(&options) else {
            // A testament with an unreadable list: never delivered more widely than asked.
            return 0;
        };
        let publication = Arc::new(Publication {
            id: random_global_id(ctx.rng),
            topic,
            publisher: 0,
            publisher_authid: Arc::from(""),
            publisher_authrole: Arc::from(""),
            publisher_attributes: Arc::default(),
            filter,
            publisher_trustlevel: None,
            options,
            payload,
        });
        // Router events are never retained (testaments included).
        self.dispatch(&publication, None, ctx);
        publication.id
    }

    /// Local delivery, then one message to each other shard with interest in any matching
    /// subscription. A retained publication also goes to every other shard: with the
    /// publication to an interested shard (`PublishRetained`, one message, so keeping and
    /// delivering happen in one step there), alone to the others (`Retain`).
    fn dispatch(
        &mut self,
        publication: &Arc<Publication>,
        retained: Option<Arc<RetainedEvent>>,
        ctx: &mut Ctx<'_>,
    ) {
        // Cluster: a publication every node must keep (retained, or recorded by a history
        // rule) goes to every node, not only the interested ones.
        let everywhere = ctx.config.cluster_node.is_some()
            && (retained.is_some()
                || !ctx.config.history.is_empty() && {
                    let mut recorded = false;
                    ctx.config
                        .history
                        .for_each_match(&publication.topic, |_, _| recorded = true);
                    recorded && super::history::storable(publication)
                });
        self.dispatch_node(publication, retained, ctx);
        if ctx.config.cluster_node.is_some() && (everywhere || !self.remote.is_empty()) {
            let mut nodes: Vec<NodeId> = Vec::new();
            self.remote
                .for_each_match(&publication.topic, |_, interested| {
                    for n in &interested.nodes {
                        if !nodes.contains(n) {
                            nodes.push(*n);
                        }
                    }
                });
            if everywhere || !nodes.is_empty() {
                ctx.action(Action::Cluster(ClusterOut::Publish {
                    nodes,
                    publication: publication.clone(),
                    everywhere,
                }));
            }
        }
    }

    /// [`Broker::dispatch`] within this node: local subscribers, then the interested shards.
    fn dispatch_node(
        &mut self,
        publication: &Arc<Publication>,
        retained: Option<Arc<RetainedEvent>>,
        ctx: &mut Ctx<'_>,
    ) {
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
        let me = ctx.shard;
        for shard in (0..ctx.shard_count).filter(|s| *s != me) {
            let interested = self.fanout.get(shard).copied().unwrap_or(false);
            match (&retained, interested) {
                (None, true) => ctx.peer(shard, PeerMsg::Publish(publication.clone())),
                (None, false) => {}
                (Some(r), true) => ctx.peer(shard, PeerMsg::PublishRetained(r.clone())),
                (Some(r), false) => ctx.peer(shard, PeerMsg::Retain(r.clone())),
            }
        }
        if let Some(r) = retained {
            self.retained.put(r, ctx.config.retention);
        }
        if !ctx.config.history.is_empty() {
            self.record_history(publication, ctx);
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
            attributes: session.attributes.clone(),
        };
        let get_retained = msg.options.get_retained == Some(true);
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
                        local.subscribers.push(subscriber.clone());
                        ctx.send(session.id, subscribed(msg.request, id));
                        if get_retained {
                            self.send_retained(&subscriber, id, (policy, &msg.topic), ctx);
                        }
                        report(ctx, id, policy, msg.topic, session.id, true);
                        return;
                    }
                    // Already subscribed: the spec says answer with the existing ID.
                    ctx.send(session.id, subscribed(msg.request, id));
                }
                (SubState::Pending { waiters, .. }, _) => {
                    let already = waiters.iter().any(|w| w.subscriber.session == session.id);
                    if !already {
                        if subs.active.len() + subs.waiting.len()
                            >= ctx.config.max_subscriptions_per_session
                        {
                            limit_error(session.id, msg.request, ctx);
                            return;
                        }
                        subs.waiting.push((policy, msg.topic.clone()));
                    }
                    waiters.push(Waiter {
                        subscriber,
                        request: msg.request,
                        get_retained,
                    });
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
                    waiters: vec![Waiter {
                        subscriber,
                        request: msg.request,
                        get_retained,
                    }],
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

    /// `wamp.subscription.remove_subscriber` on the subscriber's shard: as if `session` had
    /// unsubscribed (meta events, interest withdrawn with the last local subscriber), and with
    /// `notify` it is told `UNSUBSCRIBED [0, {subscription, reason}]` (subscription
    /// revocation). Nothing if it no longer holds the subscription.
    pub(crate) fn revoke(
        &mut self,
        subscription: Id,
        session: SessionId,
        reason: Option<String>,
        notify: bool,
        ctx: &mut Ctx<'_>,
    ) {
        let held = self
            .sessions
            .get_mut(&session)
            .is_some_and(|s| s.active.remove(&subscription));
        if !held {
            return;
        }
        self.remove_subscriber(subscription, session, ctx);
        if notify {
            let mut details = crate::codec::Dict::new();
            details.insert(
                "subscription".into(),
                crate::codec::Value::UInt(subscription),
            );
            if let Some(r) = reason {
                details.insert("reason".into(), crate::codec::Value::Str(r));
            }
            ctx.send(
                session,
                Message::Unsubscribed(Unsubscribed {
                    request: 0,
                    details: Some(details),
                }),
            );
        }
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
            waiters.retain(|w| w.subscriber.session != session);
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
        let by_id = &self.interest_by_id;
        let entry = self
            .interest
            .get_or_insert_with(policy, &topic, || Interest {
                id: match ctx.config.cluster_node {
                    // The same ID on every node (see `cluster::subscription_id`).
                    Some(_) => {
                        let id = super::cluster::subscription_id(ctx.realm, policy, &topic);
                        if by_id.contains_key(&id) {
                            ids.next_id()
                        } else {
                            id
                        }
                    }
                    None => ids.next_id(),
                },
                shards: Vec::new(),
                created: ctx.wall_clock(),
            });
        if entry.shards.is_empty() && ctx.config.cluster_node.is_some() {
            // The node's first subscriber of the pattern: the other nodes learn it.
            ctx.action(Action::Cluster(ClusterOut::Interest {
                policy,
                pattern: topic.clone(),
                add: true,
            }));
        }
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
            if ctx.config.cluster_node.is_some() {
                ctx.action(Action::Cluster(ClusterOut::Interest {
                    policy,
                    pattern: topic.clone(),
                    add: false,
                }));
            }
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

    /// From the cluster layer: another node's interest or departure, or its publication.
    pub(crate) fn on_cluster(&mut self, msg: ClusterIn, ctx: &mut Ctx<'_>) {
        match msg {
            ClusterIn::Interest {
                node,
                policy,
                pattern,
                add,
            } => {
                let patterns = self.remote_by_node.entry(node).or_default();
                if add {
                    if patterns.insert((policy, pattern.clone())) {
                        let id = super::cluster::subscription_id(ctx.realm, policy, &pattern);
                        let entry =
                            self.remote
                                .get_or_insert_with(policy, &pattern, || RemoteInterest {
                                    id,
                                    created: ctx.wall_clock(),
                                    nodes: Vec::new(),
                                });
                        if !entry.nodes.contains(&node) {
                            entry.nodes.push(node);
                        }
                        self.remote_by_id.insert(id, (policy, pattern));
                    }
                } else if patterns.remove(&(policy, pattern.clone())) {
                    self.drop_remote(node, policy, &pattern);
                }
            }
            ClusterIn::NodeGone { node, .. } | ClusterIn::NodeReset { node } => {
                for (policy, pattern) in self.remote_by_node.remove(&node).unwrap_or_default() {
                    self.drop_remote(node, policy, &pattern);
                }
            }
            // Delivered on this node only: it never goes back to the cluster. A retained one
            // is kept here too (stamped on arrival: see docs/cluster.md), and the history
            // rules of this node record it as for a local one.
            ClusterIn::Publish(publication) => {
                let retained = (publication.options.retain == Some(true)
                    && ctx.config.retention.enabled())
                .then(|| self.stamp_retained(&publication, ctx));
                self.dispatch_node(&publication, retained, ctx)
            }
            // A dead node's testament: published by this node's router, everywhere.
            ClusterIn::PublishTestament(t) => {
                let (topic, payload, options) = *t;
                self.publish_from_router(topic, payload, options, ctx);
            }
            // The dealer's (`RealmShard::on_cluster` routes them there).
            ClusterIn::Callee { .. }
            | ClusterIn::Claimed { .. }
            | ClusterIn::Peer(_)
            | ClusterIn::Expect { .. } => {}
        }
    }

    /// Node `node` no longer has subscribers of `(policy, pattern)`.
    fn drop_remote(&mut self, node: NodeId, policy: MatchPolicy, pattern: &str) {
        if let Some(entry) = self.remote.get_mut(policy, pattern) {
            entry.nodes.retain(|n| *n != node);
            if entry.nodes.is_empty() {
                let id = entry.id;
                self.remote.remove(policy, pattern);
                self.remote_by_id.remove(&id);
            }
        }
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
        let mut retained_for = Vec::new();
        for w in waiters {
            let session = w.subscriber.session;
            let mut joined = false;
            if let Some(subs) = self.sessions.get_mut(&session) {
                subs.waiting.retain(|(p, t)| !(*p == policy && *t == topic));
                if subs.active.insert(subscription) {
                    local.subscribers.push(w.subscriber.clone());
                    joined = true;
                }
            }
            ctx.send(session, subscribed(w.request, subscription));
            if joined {
                report(ctx, subscription, policy, topic.clone(), session, true);
                if w.get_retained {
                    retained_for.push(w.subscriber);
                }
            }
        }
        let empty = local.subscribers.is_empty();
        for s in &retained_for {
            self.send_retained(s, subscription, (policy, &topic), ctx);
        }
        if empty {
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
        let recipients = Recipients::of(p, ctx.config.publish_filter.as_ref());
        // Sessions whose events are shed (stuck subscribers): left out here, before anything is
        // built for them; the set is looked at only when it has anyone in it.
        let shedding = ctx.shedding.filter(|s| !s.is_empty());
        let shed = shedding.map(|s| s.sessions());
        let mut dropped = 0;
        self.local.for_each_match(&p.topic, |policy, local| {
            let (SubState::Active, Some(id)) = (&local.state, local.id) else {
                return;
            };
            let mut to: Vec<SessionId> = Vec::new();
            for s in &local.subscribers {
                if !recipients.admit(s) {
                    continue;
                }
                if shed.as_ref().is_some_and(|shed| shed.contains(s.session)) {
                    dropped += 1;
                    continue;
                }
                if to.capacity() == 0 {
                    // Room for every subscriber at once (a list grown one push at a time was
                    // reallocated several times per event), and none when nobody receives it.
                    to.reserve_exact(local.subscribers.len());
                }
                to.push(s.session);
            }
            if to.is_empty() {
                return;
            }
            let details = event_details(p, policy);
            let event = Message::Event(Box::new(crate::codec::Event {
                subscription: id,
                publication: p.id,
                details,
                payload: p.payload.clone(),
            }));
            ctx.send_many(to, event);
        });
        if let Some(s) = shedding {
            s.count(dropped);
        }
    }
}

/// EVENT.Details of publication `p` for a subscription with match policy `policy`.
pub(crate) fn event_details(p: &Publication, policy: MatchPolicy) -> EventDetails {
    let disclose = p.options.disclose_me == Some(true);
    let o = &p.options;
    EventDetails {
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
    }
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
