//! The cross-shard protocol: every [`PeerMsg`] one realm shard sends another.
//!
//! The runtime delivers a `PeerMsg` emitted by the realm shard of realm R on shard A (as
//! `Action::Peer { shard: B, msg }`) to the realm shard of R on shard B, and guarantees FIFO per
//! ordered pair (A, B). Everything below relies on that and on nothing else (no shared memory,
//! no locks). A message a shard addresses to itself never leaves it: the realm shard queues it
//! locally and handles it before returning, in order.
//!
//! **Identity and replication.** Each `(policy, pattern)` has a *home shard* (`ids::home_shard`).
//! All changes to its subscription interest or its callee list go through the home shard, which
//! applies them to its own table and broadcasts them to every other shard. Because one shard
//! serialises all changes of one pattern and each channel is FIFO, every shard applies the same
//! changes in the same order and the replicas converge. The shard that asked for a change counts
//! one acknowledgement per shard (the home's, every replica's, its own) before it answers
//! SUBSCRIBED / REGISTERED, so routing from every shard honours the answer. Removals are not
//! acknowledged: a stale replica only causes a message the owning shard then refuses cleanly.
//!
//! ```text
//! SUBSCRIBE on S:  S --InterestAddRequest--> H --InterestAdd--> every X != H
//!                  H and every X --InterestAck--> S        (S answers after shard_count acks)
//! last local unsubscribe on S: S --InterestRemoveRequest--> H --InterestRemove--> every X != H
//! PUBLISH on P:    P --Publish--> each shard with interest in a matching subscription (once)
//!                  with retain: P --PublishRetained--> those shards instead, P --Retain-->
//!                  every other X != P (each keeps the newest per topic)
//! REGISTER on S:   S --RegisterRequest--> H (checks policy conflicts)
//!                  H --RegistrationAdd--> every X != H; H and every X --RegistrationAck--> S
//!                  or H --RegisterRejected--> S
//! UNREGISTER/leave: S --UnregisterRequest--> H --RegistrationRemove--> every X != H
//! wamp.registration.remove_callee on Q, callee on K: Q --RevokeCallee--> K, then K as for
//!                  UNREGISTER (K --UnregisterRequest--> H …)
//! CALL on C, callee on K:  C --Invoke--> K; K --CallResult / CallError--> C
//!                  progressive invocations: C --InvokeMore--> K
//!                  cancel (kill): C --Interrupt--> K; skip / killnowait / timeout / caller
//!                  left: C --CallGone--> K (K forgets the invocation, INTERRUPTs if asked)
//! SUBSCRIBED / REGISTERED sent on S, or a joined session leaves it:
//!                  S --Lifecycle--> H (H publishes the meta events, in its order)
//! meta query on Q: Q --MetaQuery--> every X != Q; every X --MetaReply--> Q
//!                  remove_subscriber: the subscriber's shard S --RevokeSubscription--> S, then
//!                  as an unsubscribe (S --Lifecycle--> H, maybe S --InterestRemoveRequest--> H)
//! ```
//!
//! **Meta events** of a subscription or registration (`on_create`, `on_subscribe` /
//! `on_register`, `on_unsubscribe` / `on_unregister`, `on_delete`) are published by its home
//! shard, which sees every change of the URI in order: the session's shard reports each
//! confirmed join (after SUBSCRIBED / REGISTERED) and each leave of a joined session with a
//! [`PeerMsg::Lifecycle`] on the same FIFO channel as its removal request, so the home publishes
//! `on_unsubscribe` before the `on_delete` the removal causes. `on_create` goes with the first
//! join, `on_delete` with the removal of an entry that had one: exactly once per lifetime of an
//! ID, whatever the interleaving (see `super::meta`).
//!
//! Tokens (`token`) name a pending request of the shard that sent it; the pair
//! (origin shard, token) is unique, and an acknowledgement for a token the origin no longer
//! waits on (the subscriber or callee left meanwhile) is ignored.

use std::sync::Arc;

use crate::codec;
use crate::codec::uri::MatchPolicy;
use crate::codec::{Dict, Id, InvokePolicy, Payload, PublishOptions, Uri, Value};

use super::filter::DetailFilter;
use super::ids::{SessionId, ShardId};
use super::retained::RetainedEvent;
use super::session::{Attributes, Features};

/// A message from one realm shard to the same realm's shard on another core.
#[derive(Debug, Clone)]
pub enum PeerMsg {
    // ---- broker -------------------------------------------------------------------------
    /// To the home shard: shard `from` now has local subscribers for `(policy, topic)`.
    InterestAddRequest {
        token: u64,
        from: ShardId,
        policy: MatchPolicy,
        topic: Uri,
    },
    /// From the home shard to every other shard: add `origin` to the interest entry (creating
    /// it with `subscription` and the home's creation time), then send
    /// [`PeerMsg::InterestAck`] to `origin`.
    InterestAdd {
        token: u64,
        origin: ShardId,
        subscription: Id,
        policy: MatchPolicy,
        topic: Uri,
        created: Arc<str>,
    },
    /// To the shard that asked: one more shard routes publications for the subscription to it.
    InterestAck { token: u64, subscription: Id },
    /// To the home shard: shard `from` has no local subscriber for `(policy, topic)` any more.
    /// (A leaving subscriber's [`PeerMsg::Lifecycle`] precedes it on the same channel.)
    InterestRemoveRequest {
        from: ShardId,
        policy: MatchPolicy,
        topic: Uri,
    },
    /// From the home shard to every other shard: drop `shard` from the interest entry (and the
    /// entry, retiring `subscription`, when no shard is left).
    InterestRemove {
        shard: ShardId,
        subscription: Id,
        policy: MatchPolicy,
        topic: Uri,
    },
    /// A publication, once per interested shard; the receiver matches it against its own
    /// subscriptions and applies the publisher's black/whitelists to its own subscribers.
    Publish(Arc<Publication>),
    /// A publication with `retain`, to a shard with interest: the receiver delivers it to its
    /// subscribers and keeps it in its replica of the retained events, in one step.
    PublishRetained(Arc<RetainedEvent>),
    /// A publication with `retain`, to every other shard (one without interest): kept in the
    /// receiver's replica only. Not acknowledged. `PublishRetained`/`Retain` go out before any
    /// ack the publisher's shard sends later, which makes `get_retained` exactly-once (see
    /// `super::retained`).
    Retain(Arc<RetainedEvent>),
    /// From the publisher's shard to the home shard of history rule `rule` (an index into the
    /// realm's `HistoryRules`): keep `publication` (payload detached), stamped `at_us`
    /// (wall-clock microseconds on the publisher's shard). See `super::history`.
    History {
        rule: usize,
        at_us: i64,
        publication: Arc<Publication>,
    },

    // ---- dealer: registrations ----------------------------------------------------------
    /// To the home shard: add `callee` to `(policy, procedure)`.
    RegisterRequest(Box<RegistrationChange>),
    /// From the home shard to the asking shard: the registration conflicts (`error` URI).
    RegisterRejected { token: u64, error: Uri },
    /// From the home shard to every other shard: apply, then ack to `change.origin`.
    RegistrationAdd(Box<RegistrationChange>),
    /// To the shard that asked: one more shard routes calls to the new callee.
    RegistrationAck { token: u64, registration: Id },
    /// To the home shard: `session` no longer provides `registration`.
    UnregisterRequest(Box<CalleeRemoval>),
    /// From the home shard to every other shard: apply the removal.
    RegistrationRemove(Box<CalleeRemoval>),
    /// Any shard (a `wamp.registration.remove_callee` call) to the callee's shard: `callee` no
    /// longer provides `registration`. The callee's shard removes it as if the callee had sent
    /// UNREGISTER and tells the callee with `UNREGISTERED [0, {registration, reason}]` if it
    /// announced `registration_revocation`. Not acknowledged; a callee that left or
    /// unregistered meanwhile makes it a no-op.
    RevokeCallee {
        registration: Id,
        callee: SessionId,
        reason: Option<String>,
    },

    // ---- dealer: calls ------------------------------------------------------------------
    /// Caller's shard to callee's shard: invoke.
    Invoke(Invoke),
    /// A continuation of a progressive call invocation (same caller request).
    InvokeMore {
        call: CallRef,
        progress: bool,
        payload: Payload,
    },
    /// Cancel mode `kill`: send INTERRUPT, keep waiting for the callee's answer.
    Interrupt { call: CallRef },
    /// The caller no longer waits (skip / killnowait cancel, timeout, caller left): forget the
    /// invocation; with `interrupt`, send INTERRUPT (mode killnowait) if the callee can take it.
    CallGone {
        call: CallRef,
        interrupt: Option<GoneReason>,
    },
    /// Callee's shard to caller's shard: a (progressive or final) result, the RESULT the
    /// caller gets (`result.request` is its CALL's request ID). Boxed, built once on the
    /// callee's side: a `PeerMsg` stays small enough to be copied inline (see
    /// `codec::Message`).
    CallResult {
        caller: SessionId,
        result: Box<codec::CallResult>,
    },
    /// Callee's shard to caller's shard: the call failed (callee ERROR, callee gone, …);
    /// `error` is the ERROR the caller gets (request type CALL, its CALL's request ID). Build
    /// one with [`PeerMsg::call_error`].
    CallError {
        caller: SessionId,
        error: Box<codec::Error>,
    },

    // ---- meta API -----------------------------------------------------------------------
    /// Session's shard to the home shard of a subscription or registration: a local session
    /// joined it (SUBSCRIBED / REGISTERED sent) or left it. The home publishes the meta events.
    Lifecycle(Box<Lifecycle>),
    /// To every other shard: answer `query` about your own sessions to shard `from`.
    MetaQuery {
        token: u64,
        from: ShardId,
        query: MetaQuery,
    },
    /// The answer to [`PeerMsg::MetaQuery`] `token`. (`wamp.subscription.get_events` sends its
    /// query to one shard only, the home of the subscription's history rule.)
    MetaReply { token: u64, answer: MetaAnswer },
    /// From a shard to itself only: the meta API (which reads the broker) asks the broker
    /// (which it may not change) to revoke a local subscriber, handled right after the query
    /// (`wamp.subscription.remove_subscriber`). `notify`: the subscriber announced
    /// `subscription_revocation` and is sent `UNSUBSCRIBED [0, {subscription, reason}]`.
    RevokeSubscription {
        subscription: Id,
        session: SessionId,
        reason: Option<String>,
        notify: bool,
    },
}

/// Which table an ID belongs to (subscription and registration IDs are separate spaces).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Subscription,
    Registration,
}

/// A local session joined or left a subscription or registration (see
/// [`PeerMsg::Lifecycle`]).
#[derive(Debug, Clone)]
pub struct Lifecycle {
    pub table: Table,
    pub id: Id,
    pub policy: MatchPolicy,
    pub uri: Uri,
    pub session: SessionId,
    /// True for a join, false for a leave.
    pub joined: bool,
}

/// What a shard is asked about its own sessions (the meta API's session queries).
#[derive(Debug, Clone)]
pub enum MetaQuery {
    /// Established sessions of the realm, optionally only those with one of these authroles.
    Sessions { filter: Option<Vec<String>> },
    /// The details of one session.
    Get { session: Id },
    /// Close matching sessions (all but `exclude`) with GOODBYE.
    Kill {
        target: KillTarget,
        exclude: Id,
        reason: Uri,
        message: String,
    },
    /// Local subscribers of a subscription.
    Subscribers { subscription: Id },
    /// `wamp.subscription.remove_subscriber`: the shard that has `session` as a subscriber of
    /// `subscription` revokes it (answers `[session]`), the others answer `[]`.
    RemoveSubscriber {
        subscription: Id,
        session: SessionId,
        reason: Option<String>,
    },
    /// `wamp.subscription.get_events`, to the home shard of history rule `rule` only: the
    /// events `reader` may see of `subscription`.
    Events {
        rule: usize,
        subscription: Id,
        query: Box<super::history::EventsQuery>,
        reader: Box<super::broker::Subscriber>,
    },
}

/// Which sessions a kill closes.
#[derive(Debug, Clone)]
pub enum KillTarget {
    Session(Id),
    Authid(String),
    Authrole(String),
    All,
}

/// A shard's answer to a [`MetaQuery`].
#[derive(Debug, Clone)]
pub enum MetaAnswer {
    Sessions(Vec<Id>),
    Details(Option<Dict>),
    /// The history's `Event` objects, or the text of a `wamp.error.invalid_argument`.
    Events(Result<Vec<Value>, String>),
}

/// Names a routed call on the callee's shard: by the caller's request, and by the callee and
/// registration it went to (so an invocation still queued behind a pending REGISTERED can be
/// found too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallRef {
    pub caller: SessionId,
    pub request: Id,
    pub callee: SessionId,
    pub registration: Id,
}

/// Why the caller stopped waiting; becomes `INTERRUPT.Options.reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoneReason {
    Canceled,
    Timeout,
    CallerLeft,
}

impl GoneReason {
    pub fn reason_uri(self) -> &'static str {
        match self {
            GoneReason::Canceled | GoneReason::CallerLeft => "wamp.error.canceled",
            GoneReason::Timeout => "wamp.error.timeout",
        }
    }
}

/// A publication as it crosses shards: everything a remote shard needs to build its EVENTs
/// and apply the publisher's options. Shared (`Arc`) by all shards it is sent to.
#[derive(Debug, Clone)]
pub struct Publication {
    pub id: Id,
    pub topic: Uri,
    pub publisher: SessionId,
    pub publisher_authid: Arc<str>,
    pub publisher_authrole: Arc<str>,
    /// The publisher's other session details (for an embedder's publish filter).
    pub publisher_attributes: Arc<Attributes>,
    /// The `exclude_<key>` / `eligible_<key>` lists of `options`, read once by the publisher's
    /// shard.
    pub filter: DetailFilter,
    /// The publisher's trust level, for `EVENT.Details.trustlevel`.
    pub publisher_trustlevel: Option<u64>,
    pub options: PublishOptions,
    pub payload: Payload,
}

/// A callee as every shard's registration table knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CalleeRef {
    pub session: SessionId,
    pub shard: ShardId,
    pub features: Features,
}

/// Adding a callee to a registration (request to the home shard, and its broadcast).
#[derive(Debug, Clone)]
pub struct RegistrationChange {
    pub token: u64,
    /// The shard that asked (it counts the acks and answers REGISTERED).
    pub origin: ShardId,
    /// Allocated by the home shard; 0 in the request.
    pub registration: Id,
    pub policy: MatchPolicy,
    pub procedure: Uri,
    pub invoke: InvokePolicy,
    pub disclose_caller: bool,
    pub forward_timeout: bool,
    pub callee: CalleeRef,
    /// When the home shard created the registration (ISO 8601; empty in the request).
    pub created: Arc<str>,
}

/// Removing a callee from a registration.
#[derive(Debug, Clone)]
pub struct CalleeRemoval {
    pub session: SessionId,
    pub registration: Id,
    pub policy: MatchPolicy,
    pub procedure: Uri,
}

/// A call routed to the callee's shard. The caller's shard has already built the INVOCATION
/// (caller disclosure, concrete procedure, forwarded timeout, receive_progress, the payload);
/// the callee's shard only assigns its request ID and sends it on, without copying it.
#[derive(Debug, Clone)]
pub struct Invoke {
    pub caller: SessionId,
    pub caller_shard: ShardId,
    /// The caller's CALL request ID.
    pub request: Id,
    pub callee: SessionId,
    /// The INVOCATION for the callee; its `request` is 0 until the callee's shard assigns the
    /// invocation ID.
    pub invocation: Box<codec::Invocation>,
    /// The caller asked for progressive results and the callee can produce them.
    pub forward_progress: bool,
    /// Progressive call invocation: more chunks ([`PeerMsg::InvokeMore`]) follow.
    pub streaming: bool,
}

impl PeerMsg {
    /// [`PeerMsg::CallError`]: call `request` of `caller` failed with `error`.
    pub fn call_error(
        caller: SessionId,
        request: Id,
        details: Dict,
        error: Uri,
        payload: Payload,
    ) -> Self {
        PeerMsg::CallError {
            caller,
            error: Box::new(codec::Error {
                request_type: codec::code::CALL,
                request,
                details,
                error,
                payload,
            }),
        }
    }
}

/// Compile-time check: everything that crosses shards is `Send`.
const _: fn() = || {
    fn assert_send<T: Send>() {}
    assert_send::<PeerMsg>();
};
#[cfg(test)]
#[test]
fn messages_between_shards_fit_in_128_bytes() {
    // Moved by value through the routing core like `codec::Message` (whose doc says why 128):
    // a large new variant must be boxed.
    assert!(std::mem::size_of::<PeerMsg>() <= 128);
    assert!(std::mem::size_of::<super::realm::Action>() <= 128);
}
