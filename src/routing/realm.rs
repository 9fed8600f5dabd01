//! [`RealmShard`]: one realm on one shard — the entry point the runtime drives.
//!
//! Sans-IO: the runtime feeds inputs and the current time, and collects [`Action`]s in a `Vec` it
//! owns. Nothing here touches a socket, a clock, a thread or an executor.
//!
//! ```text
//!  session messages ─ on_message ─┐                    ┌─ Action::Send / SendMany → sessions
//!  PeerMsg from shards ─ on_peer ─┼─► Broker / Dealer ─┼─ Action::Peer → other shards
//!  session gone ─ on_session_leave┤        │           └─ Action::Abort → protocol violations
//!  time ─ on_tick / next_deadline ┘        └─ PeerMsg to self: queued, handled before returning
//! ```
//!
//! The broker ([`super::broker`]) owns subscriptions and publication fan-out; the dealer
//! ([`super::dealer`]) owns registrations and calls. Both keep replicated tables updated by
//! [`PeerMsg`]s as [`super::peer`] describes.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::codec::uri::{MatchPolicy, UriCheck};
use crate::codec::{self, Dict, Message, Payload, Uri, Value};

use super::broker::Broker;
use super::dealer::Dealer;
use super::ids::{home_shard, SessionId, ShardId};
use super::peer::PeerMsg;
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
}

impl Default for RoutingConfig {
    fn default() -> Self {
        Self {
            uri_check: UriCheck::Loose,
            max_subscriptions_per_session: 10_000,
            max_registrations_per_session: 10_000,
            max_pending_calls_per_session: 1_000,
            progressive_grace: Duration::from_secs(60),
        }
    }
}

/// Error URIs the routing core answers with.
pub mod errors {
    pub const INVALID_URI: &str = "wamp.error.invalid_uri";
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
    pub const FEATURE_NOT_SUPPORTED: &str = "wamp.error.feature_not_supported";
    pub const PROTOCOL_VIOLATION: &str = "wamp.error.protocol_violation";
    /// Not in the spec (it defines no limit error); under our own namespace on purpose.
    pub const LIMIT_EXCEEDED: &str = "switchyard.error.limit_exceeded";
}

/// Everything a broker or dealer handler needs to act: who we are, the time, where actions go.
pub(crate) struct Ctx<'a> {
    pub shard: ShardId,
    pub shard_count: usize,
    pub realm: &'a Uri,
    pub now: Instant,
    pub config: &'a RoutingConfig,
    pub rng: &'a mut StdRng,
    out: &'a mut Vec<Action>,
    local: &'a mut VecDeque<PeerMsg>,
}

impl Ctx<'_> {
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
            Message::Error(codec::Error {
                request_type,
                request,
                details: Dict::new(),
                error: Uri::from(error),
                payload,
            }),
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
    /// PeerMsgs this shard sent itself, handled in order before an input returns (so "local"
    /// and "remote" take the same code path and keep the same ordering guarantees).
    local: VecDeque<PeerMsg>,
    broker: Broker,
    dealer: Dealer,
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
        Self {
            realm,
            shard,
            shard_count,
            config,
            rng: StdRng::seed_from_u64(seed),
            local: VecDeque::new(),
            broker: Broker::new(shard, shard_count),
            dealer: Dealer::new(shard, shard_count),
        }
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
        self.with_ctx(now, out, |broker, dealer, ctx| match msg {
            Message::Publish(m) => broker.publish(session, m, ctx),
            Message::Subscribe(m) => broker.subscribe(session, m, ctx),
            Message::Unsubscribe(m) => broker.unsubscribe(session, m, ctx),
            Message::Call(m) => dealer.call(session, m, ctx),
            Message::Cancel(m) => dealer.cancel(session, m, ctx),
            Message::Register(m) => dealer.register(session, m, ctx),
            Message::Unregister(m) => dealer.unregister(session, m, ctx),
            Message::Yield(m) => dealer.yield_(session, m, ctx),
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
        self.with_ctx(now, out, |broker, dealer, ctx| {
            route_peer(broker, dealer, msg, ctx)
        });
    }

    /// A local session left the realm (GOODBYE, ABORT, transport closed). Removes its
    /// subscriptions and registrations everywhere, fails the calls it was serving and interrupts
    /// the calls it was making.
    pub fn on_session_leave(&mut self, session: SessionId, now: Instant, out: &mut Vec<Action>) {
        self.with_ctx(now, out, |broker, dealer, ctx| {
            broker.session_left(session, ctx);
            dealer.session_left(session, ctx);
        });
    }

    /// Time passed: fires call timeouts due at or before `now`.
    pub fn on_tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.with_ctx(now, out, |_, dealer, ctx| dealer.tick(ctx));
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
        self.with_ctx(now, out, |broker, _, ctx| {
            id = broker.publish_from_router(topic, payload, options, ctx)
        });
        id
    }

    /// When [`RealmShard::on_tick`] next has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.dealer.next_deadline()
    }

    /// Runs `f` with a context over this shard's state, then handles every PeerMsg the shard
    /// sent itself meanwhile (in order, including the ones those handlers send).
    fn with_ctx(
        &mut self,
        now: Instant,
        out: &mut Vec<Action>,
        f: impl FnOnce(&mut Broker, &mut Dealer, &mut Ctx<'_>),
    ) {
        let Self {
            realm,
            shard,
            shard_count,
            config,
            rng,
            local,
            broker,
            dealer,
        } = self;
        let mut ctx = Ctx {
            shard: *shard,
            shard_count: *shard_count,
            realm,
            now,
            config,
            rng,
            out,
            local,
        };
        f(broker, dealer, &mut ctx);
        while let Some(msg) = ctx.local.pop_front() {
            route_peer(broker, dealer, msg, &mut ctx);
        }
    }
}

fn route_peer(broker: &mut Broker, dealer: &mut Dealer, msg: PeerMsg, ctx: &mut Ctx<'_>) {
    match msg {
        PeerMsg::InterestAddRequest { .. }
        | PeerMsg::InterestAdd { .. }
        | PeerMsg::InterestAck { .. }
        | PeerMsg::InterestRemoveRequest { .. }
        | PeerMsg::InterestRemove { .. }
        | PeerMsg::Publish(_) => broker.on_peer(msg, ctx),
        _ => dealer.on_peer(msg, ctx),
    }
}
