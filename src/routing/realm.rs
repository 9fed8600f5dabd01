//! [`RealmShard`]: one realm on one shard — the entry point the runtime drives.
//!
//! Sans-IO: the runtime feeds inputs and the current time, and collects [`Action`]s in a `Vec` it
//! owns. Nothing here touches a socket, a clock, a thread or an executor.
//!
//! ```text
//!  session joined ─ on_session_join ─┐                        ┌─ Action::Send / SendMany
//!  session messages ─ on_message ────┤   Broker / Dealer /    ├─ Action::Peer → other shards
//!  PeerMsg from shards ─ on_peer ────┼─► Meta                 ├─ Action::Abort, Action::Kill
//!  session gone ─ on_session_leave ──┤     │                  │
//!  time ─ on_tick / next_deadline ───┘     └─ PeerMsg to self, meta events: handled before
//!                                             the input returns
//! ```
//!
//! The broker ([`super::broker`]) owns subscriptions and publication fan-out; the dealer
//! ([`super::dealer`]) owns registrations and calls. Both keep replicated tables updated by
//! [`PeerMsg`]s as [`super::peer`] describes, and report the lifecycle facts they know (a
//! session joined or left a subscription or registration, the home removed one) to the meta API
//! ([`super::meta`]), which turns them into meta events the broker publishes.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::codec::uri::{MatchPolicy, UriCheck};
use crate::codec::{self, Dict, Id, Message, Payload, Uri, Value};

use super::broker::Broker;
use super::dealer::Dealer;
use super::filter::SharedPublishFilter;
use super::ids::{home_shard, SessionId, ShardId};
use super::meta::{self, Meta, RouterEvent, SessionDetails};
use super::peer::{Lifecycle, PeerMsg, Table};
use super::retained::RetentionLimits;
use super::session::SessionRef;

/// What the runtime must do after feeding an input.
///
/// `Send` carries the message inline (a `Message` is a few hundred bytes): boxing it would cost
/// an allocation per routed message to shrink a `Vec` the runtime drains right away.
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Action {
    /// Send one message to one local session.
    Send { to: SessionId, msg: Message },
    /// Send the same message to several local sessions (one EVENT per subscription): encode it
    /// once per serializer and share the frame.
    SendMany {
        to: Vec<SessionId>,
        msg: Arc<Message>,
    },
    /// Deliver to the same realm's shard `shard` (FIFO per pair of shards).
    Peer { shard: ShardId, msg: PeerMsg },
    /// The session broke the protocol: send ABORT with `reason` (and `message` in the details),
    /// close it, then call [`RealmShard::on_session_leave`].
    Abort {
        session: SessionId,
        reason: Uri,
        message: String,
    },
    /// Close a local session with GOODBYE `reason` (meta API `wamp.session.kill*`), then call
    /// [`RealmShard::on_session_leave`] once it is gone.
    Kill {
        session: SessionId,
        reason: Uri,
        message: String,
    },
    /// For the other nodes of the cluster (only when [`RoutingConfig::cluster_node`] is set).
    Cluster(super::cluster::ClusterOut),
}

/// Routing limits and rules. The defaults suit a general-purpose router.
#[derive(Debug, Clone)]
pub struct RoutingConfig {
    /// URI rule for topics, procedures and patterns.
    pub uri_check: UriCheck,
    /// Subscriptions one session may hold (pending ones included).
    pub max_subscriptions_per_session: usize,
    /// Registrations one session may hold (pending ones included).
    pub max_registrations_per_session: usize,
    /// Calls one session may have outstanding.
    pub max_pending_calls_per_session: usize,
    /// How long a finished progressive call invocation's request ID is remembered, so late
    /// continuations are discarded instead of starting a new call (spec: "grace period").
    pub progressive_grace: Duration,
    /// Bounds of the realm's retained events (zero events: retention off).
    pub retention: RetentionLimits,
    /// The realm's event history rules ([`super::history`]); none: no history.
    pub history: Arc<super::history::HistoryRules>,
    /// The embedder's publish filter, asked per eligible subscriber (see [`super::filter`]).
    pub publish_filter: Option<SharedPublishFilter>,
    /// Progressive call results only for callees that also announced `call_canceling`, as
    /// the spec requires. Off (the default): a callee announcing `progressive_call_results`
    /// alone (autobahn-js 22.11, wampy 8) gets `receive_progress` too, and when its caller
    /// goes away its further results are dropped instead of interrupting it.
    pub strict_progressive_results: bool,
    /// This node's ID when the router is part of a cluster (`crate::cluster`); None: a single
    /// router, nothing cluster-related runs.
    pub cluster_node: Option<super::cluster::NodeId>,
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            uri_check: UriCheck::Loose,
            max_subscriptions_per_session: 10_000,
            max_registrations_per_session: 10_000,
            max_pending_calls_per_session: 1_000,
            progressive_grace: Duration::from_secs(60),
            publish_filter: None,
            history: Arc::default(),
            retention: RetentionLimits {
                max_events: 10_000,
                max_bytes: 16 * 1024 * 1024,
            },
            strict_progressive_results: false,
            cluster_node: None,
        }
    }
}

/// Error URIs the routing core answers with.
pub mod errors {
    pub const INVALID_URI: &str = "wamp.error.invalid_uri";
    pub const INVALID_ARGUMENT: &str = "wamp.error.invalid_argument";
    pub const NO_SUCH_SESSION: &str = "wamp.error.no_such_session";
    pub const NO_SUCH_SUBSCRIPTION: &str = "wamp.error.no_such_subscription";
    pub const NO_SUCH_PROCEDURE: &str = "wamp.error.no_such_procedure";
    pub const NO_SUCH_REGISTRATION: &str = "wamp.error.no_such_registration";
    pub const PROCEDURE_ALREADY_EXISTS: &str = "wamp.error.procedure_already_exists";
    pub const DIFFERENT_INVOCATION_POLICY: &str =
        "wamp.error.procedure_exists_with_different_invocation_policy";
    pub const CANCELED: &str = "wamp.error.canceled";
    /// A message could not be delivered because of the recipient's transport size limit.
    pub const PAYLOAD_SIZE_EXCEEDED: &str = "wamp.error.payload_size_exceeded";
    pub const TIMEOUT: &str = "wamp.error.timeout";
    pub const UNAVAILABLE: &str = "wamp.error.unavailable";
    pub const NO_AVAILABLE_CALLEE: &str = "wamp.error.no_available_callee";
    pub const FEATURE_NOT_SUPPORTED: &str = "wamp.error.feature_not_supported";
    pub const PROTOCOL_VIOLATION: &str = "wamp.error.protocol_violation";
    /// Not in the spec (it defines no limit error); under our own namespace on purpose.
    pub const LIMIT_EXCEEDED: &str = "switchyard.error.limit_exceeded";
    /// A cluster node cannot reach the cluster's registry (NATS lost, JetStream missing), so
    /// it cannot check a new registration against the other nodes and refuses it.
    pub const CLUSTER_UNAVAILABLE: &str = "switchyard.error.cluster_unavailable";
}

/// Everything a broker or dealer handler needs to act: who we are, the time, where actions go.
pub(crate) struct Ctx<'a> {
    pub shard: ShardId,
    pub shard_count: usize,
    pub realm: &'a Uri,
    pub now: Instant,
    pub config: &'a RoutingConfig,
    pub rng: &'a mut StdRng,
    /// The wall-clock time at `epoch.0` (for the meta API's `created` times).
    epoch: (Instant, SystemTime),
    out: &'a mut Vec<Action>,
    local: &'a mut VecDeque<PeerMsg>,
    /// Meta events to publish once the current handler returns.
    events: &'a mut Vec<RouterEvent>,
    /// Subscriptions and registrations the home shard removed during the current handler.
    removed: &'a mut Vec<(Table, Id, Option<SessionId>)>,
    /// Sessions whose events the runtime is shedding (see [`super::shedding`]).
    pub shedding: Option<&'a super::Shedding>,
}

impl Ctx<'_> {
    /// Any action.
    pub fn action(&mut self, a: Action) {
        self.out.push(a);
    }

    /// The wall-clock time of `now`, ISO 8601 (the time is passed in, never read here).
    pub fn wall_clock(&self) -> Arc<str> {
        let (at, wall) = self.epoch;
        let t = wall + self.now.saturating_duration_since(at);
        Arc::from(crate::util::iso8601(t))
    }

    /// The wall-clock time of `now`, microseconds since the epoch (event history's stamps).
    pub fn wall_micros(&self) -> i64 {
        let (at, wall) = self.epoch;
        let t = wall + self.now.saturating_duration_since(at);
        t.duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
    }

    /// Reports a local session's join or leave of a subscription or registration to the home
    /// shard of its URI, which publishes the meta events (see [`super::meta`]).
    pub fn report(&mut self, change: Lifecycle) {
        let home = self.home(change.policy, &change.uri);
        self.peer(home, PeerMsg::Lifecycle(Box::new(change)));
    }

    /// On the home shard: a subscription or registration was removed (its last subscriber or
    /// callee went).
    pub fn removed(&mut self, table: Table, id: Id) {
        self.removed.push((table, id, None));
    }

    /// [`Ctx::removed`], and `on_delete` is published even if this node never published the
    /// entry's `on_create` (cluster: the last callee, on a node that died, was `session`).
    pub fn removed_announce(&mut self, table: Table, id: Id, session: SessionId) {
        self.removed.push((table, id, Some(session)));
    }

    /// A meta event for the broker to publish when the current handler returns.
    pub(crate) fn event(&mut self, e: RouterEvent) {
        self.events.push(e);
    }

    pub fn send(&mut self, to: SessionId, msg: Message) {
        self.out.push(Action::Send { to, msg });
    }

    /// One message to the recipients: `Send` for one, shared `SendMany` for more.
    pub fn send_many(&mut self, mut to: Vec<SessionId>, msg: Message) {
        match to.len() {
            0 => {}
            1 => {
                let only = to.pop().unwrap_or_default();
                self.send(only, msg);
            }
            _ => self.out.push(Action::SendMany {
                to,
                msg: Arc::new(msg),
            }),
        }
    }

    /// To shard `shard`; a message to ourselves is queued and handled before the input returns.
    pub fn peer(&mut self, shard: ShardId, msg: PeerMsg) {
        if shard == self.shard {
            self.local.push_back(msg);
        } else if let Some((node, shard)) = super::cluster::split_remote(shard) {
            // A callee or caller on another node of the cluster.
            self.out
                .push(Action::Cluster(super::cluster::ClusterOut::Peer {
                    node,
                    shard,
                    msg,
                }));
        } else {
            self.out.push(Action::Peer { shard, msg });
        }
    }

    /// To every shard but this one.
    pub fn broadcast_others(&mut self, msg: &PeerMsg) {
        for shard in (0..self.shard_count).filter(|s| *s != self.shard) {
            self.out.push(Action::Peer {
                shard,
                msg: msg.clone(),
            });
        }
    }

    /// The home shard of `(policy, uri)` in this realm.
    pub fn home(&self, policy: MatchPolicy, uri: &str) -> ShardId {
        home_shard(self.realm, policy, uri, self.shard_count)
    }

    /// ERROR answering request `request` of type `request_type`.
    pub fn error(&mut self, to: SessionId, request_type: u64, request: u64, error: &str) {
        self.error_msg(to, request_type, request, error, None);
    }

    /// ERROR with a human-readable explanation as the first argument.
    pub fn error_msg(
        &mut self,
        to: SessionId,
        request_type: u64,
        request: u64,
        error: &str,
        text: Option<&str>,
    ) {
        let payload = match text {
            Some(t) => Payload::args(vec![Value::from(t)]),
            None => Payload::Empty,
        };
        self.send(
            to,
            Message::Error(Box::new(codec::Error {
                request_type,
                request,
                details: Dict::new(),
                error: Uri::from(error),
                payload,
            })),
        );
    }

    /// ABORT the session for a protocol violation.
    pub fn protocol_violation(&mut self, session: SessionId, message: impl Into<String>) {
        self.out.push(Action::Abort {
            session,
            reason: Uri::from(errors::PROTOCOL_VIOLATION),
            message: message.into(),
        });
    }
}

/// One realm on one shard: its broker and dealer.
#[derive(Debug)]
pub struct RealmShard {
    realm: Uri,
    shard: ShardId,
    shard_count: usize,
    config: RoutingConfig,
    rng: StdRng,
    /// The wall-clock time at a known instant: `created` times are computed from `now`.
    epoch: (Instant, SystemTime),
    /// PeerMsgs this shard sent itself, handled in order before an input returns (so "local"
    /// and "remote" take the same code path and keep the same ordering guarantees).
    local: VecDeque<PeerMsg>,
    /// Scratch: meta events and removals of the handler running (see [`Ctx`]).
    events: Vec<RouterEvent>,
    removed: Vec<(Table, Id, Option<SessionId>)>,
    broker: Broker,
    dealer: Dealer,
    meta: Meta,
    shedding: Option<std::rc::Rc<super::Shedding>>,
}

impl RealmShard {
    /// The realm `realm` on shard `shard` of `shard_count` (0 is treated as 1). `seed` seeds the
    /// random publication IDs and the `random` invocation policy (pass entropy in production,
    /// a constant in tests).
    pub fn new(
        realm: Uri,
        shard: ShardId,
        shard_count: usize,
        config: RoutingConfig,
        seed: u64,
    ) -> Self {
        let shard_count = shard_count.max(1);
        let id_base = super::cluster::id_base(config.cluster_node);
        Self {
            realm,
            shard,
            shard_count,
            config,
            rng: StdRng::seed_from_u64(seed),
            epoch: (Instant::now(), SystemTime::now()),
            local: VecDeque::new(),
            events: Vec::new(),
            removed: Vec::new(),
            broker: Broker::new(shard, shard_count, id_base),
            dealer: Dealer::new(shard, shard_count, id_base),
            meta: Meta::default(),
            shedding: None,
        }
    }

    /// Leaves the sessions marked in `shedding` out of every publication's recipients, counting
    /// the events they miss there (see [`super::shedding`]).
    pub fn shed_with(&mut self, shedding: std::rc::Rc<super::Shedding>) {
        self.shedding = Some(shedding);
    }

    pub fn realm(&self) -> &Uri {
        &self.realm
    }

    pub fn shard(&self) -> ShardId {
        self.shard
    }

    /// Read access for the meta API (subscriptions, subscribers).
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Read access for the meta API (registrations, callees).
    pub fn dealer(&self) -> &Dealer {
        &self.dealer
    }

    /// Testaments a local session holds (for tests and introspection).
    pub fn testament_count(&self, session: SessionId) -> usize {
        self.meta.testament_count(session)
    }

    /// A local session joined the realm (after WELCOME): `wamp.session.on_join`. Call before
    /// feeding its messages.
    pub fn on_session_join(
        &mut self,
        session: SessionRef,
        details: SessionDetails,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        self.with_ctx(now, out, |_, _, meta, ctx| meta.join(session, details, ctx));
    }

    /// A message from an established session of this realm owned by this shard.
    ///
    /// Routing messages are PUBLISH, SUBSCRIBE, UNSUBSCRIBE, CALL, CANCEL, REGISTER, UNREGISTER,
    /// YIELD and ERROR (for an INVOCATION). GOODBYE, ABORT and EVENT_RECEIVED are ignored (the
    /// session layer owns the first two); anything else is a message a client must not send and
    /// answers with [`Action::Abort`].
    pub fn on_message(
        &mut self,
        session: &SessionRef,
        msg: Message,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        self.with_ctx(now, out, |broker, dealer, meta, ctx| match msg {
            Message::Call(m) if meta::procs::is_meta_procedure(&m.procedure) => {
                meta.call(session.id, m, broker, dealer, ctx)
            }
            Message::Publish(m) => broker.publish(session, m, ctx),
            Message::Subscribe(m) => broker.subscribe(session, m, ctx),
            Message::Unsubscribe(m) => broker.unsubscribe(session, m, ctx),
            Message::Call(m) => dealer.call(session, m, ctx),
            Message::Cancel(m) => dealer.cancel(session, m, ctx),
            Message::Register(m) => dealer.register(session, m, ctx),
            Message::Unregister(m) => dealer.unregister(session, m, ctx),
            Message::Yield(m) => dealer.yield_(session, *m, ctx),
            Message::Error(m) if m.request_type == codec::code::INVOCATION => {
                dealer.callee_error(session, m, ctx)
            }
            Message::Error(m) => ctx.protocol_violation(
                session.id,
                format!(
                    "ERROR for request type {} ({}) is not something a client answers",
                    m.request_type,
                    codec::name_of(m.request_type)
                ),
            ),
            Message::Goodbye(_) | Message::Abort(_) | Message::EventReceived(_) => {}
            other => ctx.protocol_violation(
                session.id,
                format!("{} is not a message a client sends", other.name()),
            ),
        });
    }

    /// A message from the same realm's shard `from`.
    pub fn on_peer(&mut self, from: ShardId, msg: PeerMsg, now: Instant, out: &mut Vec<Action>) {
        let _ = from; // every message names what it needs; `from` is for the runtime's metrics
        self.with_ctx(now, out, |broker, dealer, meta, ctx| {
            route_peer(broker, dealer, meta, msg, ctx)
        });
    }

    /// A message from the cluster layer (another node's interest, departure or publication).
    pub fn on_cluster(
        &mut self,
        msg: super::cluster::ClusterIn,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        use super::cluster::ClusterIn;
        self.with_ctx(now, out, |broker, dealer, meta, ctx| match msg {
            ClusterIn::Peer(msg) => route_peer(broker, dealer, meta, msg, ctx),
            ClusterIn::Callee { node, add, callee } => {
                dealer.on_remote_callee(node, add, &callee, ctx)
            }
            ClusterIn::Claimed { token, result } => dealer.on_claimed(token, result, ctx),
            ClusterIn::Expect { token, replies } => meta.on_expect(token, replies, ctx),
            ClusterIn::NodeGone { node, announce } => {
                dealer.node_gone(node, Some(announce), ctx);
                broker.on_cluster(ClusterIn::NodeGone { node, announce }, ctx);
            }
            ClusterIn::NodeReset { node } => {
                dealer.node_gone(node, None, ctx);
                broker.on_cluster(ClusterIn::NodeReset { node }, ctx);
            }
            other => broker.on_cluster(other, ctx),
        });
    }

    /// A local session left the realm (GOODBYE, ABORT, transport closed, kill). Publishes its
    /// testaments, removes its subscriptions and registrations everywhere, fails the calls it
    /// was serving, interrupts the calls it was making, then publishes
    /// `wamp.session.on_leave`.
    pub fn on_session_leave(&mut self, session: SessionId, now: Instant, out: &mut Vec<Action>) {
        self.with_ctx(now, out, |broker, dealer, meta, ctx| {
            meta.leave_testaments(session, ctx);
            broker.session_left(session, ctx);
            dealer.session_left(session, ctx);
        });
        self.with_ctx(now, out, |_, _, meta, ctx| meta.leave(session, ctx));
    }

    /// Time passed: fires call timeouts and meta query timeouts due at or before `now`.
    pub fn on_tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.with_ctx(now, out, |_, dealer, meta, ctx| {
            dealer.tick(ctx);
            meta.tick(ctx);
        });
    }

    /// Publishes an event from the router itself (the meta API's `wamp.session.on_join`, …) to
    /// every matching subscriber on every shard, with the publisher's black/whitelists of
    /// `options` (testaments carry them). Returns the publication ID.
    pub fn publish_from_router(
        &mut self,
        topic: Uri,
        payload: Payload,
        options: codec::PublishOptions,
        now: Instant,
        out: &mut Vec<Action>,
    ) -> codec::Id {
        let mut id = 0;
        self.with_ctx(now, out, |broker, _, _, ctx| {
            id = broker.publish_from_router(topic, payload, options, ctx)
        });
        id
    }

    /// Hands over how long each call answered since they were last taken (CALL routed → final
    /// RESULT or ERROR for its caller), for the shard's latency histogram.
    pub fn drain_call_times(&mut self, f: impl FnMut(std::time::Duration)) {
        self.dealer.drain_call_times(f);
    }

    /// When [`RealmShard::on_tick`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        match (self.dealer.next_deadline(), self.meta.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs `f` with a context over this shard's state, then, until nothing is left: the
    /// removals it reported become meta events, the meta events are published, and the next
    /// PeerMsg the shard sent itself is handled (in order, including the ones those handlers
    /// send).
    fn with_ctx(
        &mut self,
        now: Instant,
        out: &mut Vec<Action>,
        f: impl FnOnce(&mut Broker, &mut Dealer, &mut Meta, &mut Ctx<'_>),
    ) {
        let Self {
            realm,
            shard,
            shard_count,
            config,
            rng,
            epoch,
            local,
            events,
            removed,
            broker,
            dealer,
            meta,
            shedding,
        } = self;
        let mut ctx = Ctx {
            shard: *shard,
            shard_count: *shard_count,
            realm,
            now,
            config,
            rng,
            epoch: *epoch,
            out,
            local,
            events,
            removed,
            shedding: shedding.as_deref(),
        };
        f(broker, dealer, meta, &mut ctx);
        loop {
            // Both are empty for nearly every message: look before taking them.
            if !ctx.removed.is_empty() {
                let removed = std::mem::take(ctx.removed);
                for (table, id, last) in removed {
                    meta.on_removed(table, id, last, &mut ctx);
                }
            }
            if !ctx.events.is_empty() {
                let events = std::mem::take(ctx.events);
                for e in events {
                    broker.publish_from_router(e.topic, e.payload, e.options, &mut ctx);
                }
            }
            let Some(msg) = ctx.local.pop_front() else {
                break;
            };
            route_peer(broker, dealer, meta, msg, &mut ctx);
        }
    }
}

/// Hands a peer message to the part of the core it is for. One exhaustive match: a new
/// [`PeerMsg`] variant does not compile until it has a handler.
fn route_peer(
    broker: &mut Broker,
    dealer: &mut Dealer,
    meta: &mut Meta,
    msg: PeerMsg,
    ctx: &mut Ctx<'_>,
) {
    match msg {
        // broker
        PeerMsg::InterestAddRequest {
            token,
            from,
            policy,
            topic,
        } => broker.on_interest_add_request(token, from, policy, topic, ctx),
        PeerMsg::InterestAdd {
            token,
            origin,
            subscription,
            policy,
            topic,
            created,
        } => broker.on_interest_add(token, origin, subscription, (policy, topic), created, ctx),
        PeerMsg::InterestAck {
            token,
            subscription,
        } => broker.on_ack(token, subscription, ctx),
        PeerMsg::InterestRemoveRequest {
            from,
            policy,
            topic,
        } => broker.on_interest_remove_request(from, policy, topic, ctx),
        PeerMsg::InterestRemove {
            shard,
            subscription,
            policy,
            topic,
        } => broker.on_interest_remove(shard, subscription, policy, &topic),
        PeerMsg::Publish(publication) => broker.on_publication(&publication, ctx),
        PeerMsg::Retain(event) => broker.on_retain(event, ctx),
        PeerMsg::History {
            rule,
            at_us,
            publication,
        } => broker.on_history(rule, at_us, publication, ctx),
        PeerMsg::PublishRetained(event) => broker.on_publish_retained(event, ctx),
        // dealer: registrations
        PeerMsg::RegisterRequest(change) => dealer.on_register_request(*change, ctx),
        PeerMsg::RegisterRejected { token, error } => {
            dealer.on_register_rejected(token, &error, ctx)
        }
        PeerMsg::RegistrationAdd(change) => dealer.on_registration_add(&change, ctx),
        PeerMsg::RegistrationAck {
            token,
            registration,
        } => dealer.on_ack(token, registration, ctx),
        PeerMsg::UnregisterRequest(removal) => dealer.on_unregister_request(*removal, ctx),
        PeerMsg::RegistrationRemove(removal) => dealer.on_registration_remove(&removal),
        PeerMsg::RevokeCallee {
            registration,
            callee,
            reason,
        } => dealer.on_revoke_callee(registration, callee, reason, ctx),
        // dealer: calls
        PeerMsg::Invoke(invoke) => dealer.on_invoke(invoke, ctx),
        PeerMsg::InvokeMore {
            call,
            progress,
            payload,
        } => dealer.on_more(call, progress, payload, ctx),
        PeerMsg::Interrupt { call } => dealer.on_interrupt(call, ctx),
        PeerMsg::CallGone { call, interrupt } => dealer.on_call_gone(call, interrupt, ctx),
        PeerMsg::CallResult { caller, result } => dealer.on_call_result(caller, result, ctx),
        PeerMsg::CallError { caller, error } => dealer.on_call_error(caller, error, ctx),
        // meta API
        PeerMsg::Lifecycle(l) => meta.on_lifecycle(&l, broker, dealer, ctx),
        PeerMsg::MetaQuery { token, from, query } => {
            meta.on_query(token, from, &query, broker, ctx)
        }
        PeerMsg::MetaReply { token, answer } => meta.on_reply(token, answer, ctx),
        PeerMsg::RevokeSubscription {
            subscription,
            session,
            reason,
            notify,
        } => broker.revoke(subscription, session, reason, notify, ctx),
    }
}
