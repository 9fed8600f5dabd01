//! The dealer of one realm on one shard: registrations (this file) and calls (`calls.rs`).
//!
//! **Registration table** (replicated on every shard): `(policy, procedure) → registration ID,
//! invocation policy, callees [(session, shard, features)]`. The pattern's home shard is
//! authoritative: it checks conflicts (`procedure_already_exists`,
//! `procedure_exists_with_different_invocation_policy`), allocates the ID and broadcasts every
//! change; the registering shard answers REGISTERED only when every shard has applied it. A CALL
//! is routed with the caller's shard's replica (`UriIndex::best_match`: exact > longest prefix >
//! best wildcard) and the invocation policy picks one callee.
//!
//! **Callee side** (the shard that owns the callee session): its registrations as the callee
//! sees them (pending until REGISTERED; invocations that arrive meanwhile are queued, so an
//! INVOCATION never precedes REGISTERED), the invocation request IDs it handed out (sequential
//! per callee, from 1) and the invocations in flight.
//!
//! **Caller side** (the shard that owns the caller session): the calls in flight, their
//! timeouts, their cancel state.

mod calls;

use crate::util::fast::{FastMap as HashMap, FastSet as HashSet};
use std::cell::Cell;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use crate::codec::uri::{self, MatchPolicy};
use crate::codec::{
    code, Id, InvokePolicy, Message, Payload, Register, Registered, Unregister, Unregistered, Uri,
    Value,
};
use crate::routing::matcher::UriIndex;

use super::cluster::{
    remote_shard, split_remote, Claim, ClaimResult, ClusterOut, NodeId, RemoteCallee,
};
use super::ids::{IdAllocator, SessionId, ShardId};
use super::peer::GoneReason;
use super::peer::{
    CallRef, CalleeRef, CalleeRemoval, Invoke, Lifecycle, PeerMsg, RegistrationChange, Table,
};
use super::realm::{errors, Action, Ctx};
use super::session::{Features, SessionRef};

/// A registration as every shard knows it.
#[derive(Debug, Clone)]
pub struct Registration {
    pub id: Id,
    pub policy: MatchPolicy,
    pub procedure: Uri,
    pub invoke: InvokePolicy,
    /// `REGISTER.Options.disclose_caller` of the first callee.
    pub disclose_caller: bool,
    /// `REGISTER.Options.forward_timeout` of the first callee.
    pub forward_timeout: bool,
    /// In registration order (the order the home shard applied them, the same everywhere).
    pub callees: Vec<CalleeRef>,
    /// When the home shard created the registration (ISO 8601), the same on every shard.
    pub created: Arc<str>,
    /// Round-robin cursor. Per shard: each shard rotates its own calls through all callees,
    /// so the load is even in aggregate without cross-shard coordination per call.
    rr_next: Cell<usize>,
}

/// A registering request waiting for acks (on the callee's shard).
#[derive(Debug)]
struct PendingRegister {
    session: SessionId,
    request: Id,
    policy: MatchPolicy,
    procedure: Uri,
    acks: usize,
}

/// A local callee session.
#[derive(Debug, Default)]
struct CalleeState {
    features: Features,
    /// The last invocation request ID handed out (IDs above it were never issued).
    last_invocation: Id,
    /// Invocations in flight to this callee, by INVOCATION request ID.
    invocations: HashMap<Id, Invocation>,
    regs: HashMap<Id, LocalRegistration>,
    /// Pending REGISTERs of this session, by token (for limits and cleanup).
    registering: HashSet<u64>,
}

/// A registration as its (local) callee holds it.
#[derive(Debug)]
struct LocalRegistration {
    policy: MatchPolicy,
    procedure: Uri,
    /// REGISTERED sent. Before that, invocations are queued.
    active: bool,
    queued: Vec<Queued>,
}

/// Something for a callee that must wait for its REGISTERED.
#[derive(Debug)]
enum Queued {
    Invoke(Box<Invoke>),
    /// A progressive-invocation chunk for a queued Invoke.
    More {
        call: CallRef,
        progress: bool,
        payload: Payload,
    },
}

/// An invocation in flight, on the callee's shard.
#[derive(Debug)]
struct Invocation {
    caller: SessionId,
    caller_shard: ShardId,
    request: Id,
    registration: Id,
    forward_progress: bool,
    /// Progressive call invocation still open: the initial details, repeated on every chunk.
    /// Boxed: the record is moved into and out of `invocations` on every call, and the details
    /// (~280 bytes) are there only for the rare progressive invocation.
    streaming: Option<Box<crate::codec::InvocationDetails>>,
}

/// A call in flight, on the caller's shard.
#[derive(Debug)]
struct OutCall {
    callee: SessionId,
    callee_shard: ShardId,
    registration: Id,
    /// The callee can be interrupted (else every cancel is `skip`).
    callee_cancels: bool,
    receive_progress: bool,
    /// When the CALL was routed (the call latency histogram).
    started: Instant,
    /// Dealer-enforced timeout (restarted by each progressive result).
    timeout: Option<std::time::Duration>,
    deadline: Option<Instant>,
    /// Progressive call invocation: the caller may still send chunks.
    streaming: bool,
    /// This call was a progressive call invocation at some point (remember it when it ends).
    was_streaming: bool,
    /// A `kill` cancel was sent; the callee's answer ends the call.
    killed: bool,
    /// The caller announced `payload_passthru_mode` (a passthru RESULT may reach it).
    caller_ppt: bool,
    /// What a reroute needs when the callee answers `wamp.error.unavailable`; `None` when no
    /// other callee can take the call (policy `single`, one callee, a progressive call
    /// invocation whose chunks went to this callee, progressive results already forwarded).
    reroute: Option<Box<Reroute>>,
}

/// A call kept for rerouting (spec `rpc_call_rerouting.md`), on the caller's shard.
#[derive(Debug)]
struct Reroute {
    caller: SessionRef,
    /// The CALL as received (its payload is shared, not copied, when it is still encoded).
    call: crate::codec::Call,
    /// Callees that answered `wamp.error.unavailable`, and the current one.
    tried: Vec<SessionId>,
}

/// See the module docs.
#[derive(Debug)]
pub struct Dealer {
    ids: IdAllocator,
    regs: UriIndex<Registration>,
    reg_by_id: HashMap<Id, (MatchPolicy, Uri)>,
    pending_regs: HashMap<u64, PendingRegister>,
    next_token: u64,
    // callee side
    callees: HashMap<SessionId, CalleeState>,
    /// (caller, caller request) → (callee, invocation request), for cancel and continuations.
    by_call: HashMap<(SessionId, Id), (SessionId, Id)>,
    // caller side
    calls: HashMap<(SessionId, Id), OutCall>,
    calls_of: HashMap<SessionId, HashSet<Id>>,
    timers: BTreeSet<(Instant, SessionId, Id)>,
    /// Finished progressive call invocations → end of their grace period.
    finished_streams: HashMap<(SessionId, Id), Instant>,
    // cluster (home shard): claims in the cluster-wide registry waiting for an answer
    claims: HashMap<u64, Claiming>,
    claiming: HashMap<(MatchPolicy, Uri), u64>,
    next_claim: u64,
    /// How long each call answered since the shard last took them
    /// (`RealmShard::drain_call_times`): CALL routed → final RESULT or ERROR for the caller. At
    /// most [`CALL_TIMES_MAX`].
    call_times: Vec<std::time::Duration>,
}

/// Call times kept until taken, at most (the rest are not sampled).
const CALL_TIMES_MAX: usize = 4096;

/// A claim of `(policy, procedure)` in the cluster's registry, on the home shard: the
/// REGISTERs that wait for its answer, in arrival order.
#[derive(Debug)]
struct Claiming {
    policy: MatchPolicy,
    procedure: Uri,
    waiting: Vec<RegistrationChange>,
}

/// One registration, for the meta API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationInfo {
    pub id: Id,
    pub policy: MatchPolicy,
    pub procedure: Uri,
    pub invoke: InvokePolicy,
    pub callees: Vec<SessionId>,
}

impl Dealer {
    pub(crate) fn new(shard: ShardId, shard_count: usize, id_base: u64) -> Self {
        Self {
            ids: IdAllocator::with_base(shard, shard_count, id_base),
            regs: UriIndex::new(),
            reg_by_id: HashMap::default(),
            pending_regs: HashMap::default(),
            next_token: 0,
            callees: HashMap::default(),
            by_call: HashMap::default(),
            calls: HashMap::default(),
            calls_of: HashMap::default(),
            timers: BTreeSet::new(),
            finished_streams: HashMap::default(),
            claims: HashMap::default(),
            claiming: HashMap::default(),
            next_claim: 1,
            call_times: Vec::new(),
        }
    }

    /// `[REGISTER, Request|id, Options|dict, Procedure|uri]`
    pub(crate) fn register(&mut self, session: &SessionRef, msg: Register, ctx: &mut Ctx<'_>) {
        let policy = msg.options.match_policy.unwrap_or_default();
        if uri::validate_pattern(&msg.procedure, policy, ctx.config.uri_check).is_err()
            || uri::is_reserved(&msg.procedure)
        {
            ctx.error(session.id, code::REGISTER, msg.request, errors::INVALID_URI);
            return;
        }
        let state = self.callees.entry(session.id).or_default();
        state.features = session.features;
        if state.regs.len() + state.registering.len() >= ctx.config.max_registrations_per_session {
            ctx.error_msg(
                session.id,
                code::REGISTER,
                msg.request,
                errors::LIMIT_EXCEEDED,
                Some("too many registrations for this session"),
            );
            return;
        }
        let token = self.next_token;
        self.next_token += 1;
        state.registering.insert(token);
        self.pending_regs.insert(
            token,
            PendingRegister {
                session: session.id,
                request: msg.request,
                policy,
                procedure: msg.procedure.clone(),
                acks: 0,
            },
        );
        let forward_timeout = msg
            .options
            .extra
            .get("forward_timeout")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let home = ctx.home(policy, &msg.procedure);
        ctx.peer(
            home,
            PeerMsg::RegisterRequest(Box::new(RegistrationChange {
                token,
                origin: ctx.shard,
                registration: 0,
                policy,
                procedure: msg.procedure,
                invoke: msg.options.invoke.unwrap_or_default(),
                disclose_caller: msg.options.disclose_caller == Some(true),
                forward_timeout,
                callee: CalleeRef {
                    session: session.id,
                    shard: ctx.shard,
                    features: session.features,
                },
                created: Arc::from(""),
            })),
        );
    }

    /// `[UNREGISTER, Request|id, REGISTERED.Registration|id]`
    pub(crate) fn unregister(&mut self, session: &SessionRef, msg: Unregister, ctx: &mut Ctx<'_>) {
        let reg =
            self.callees
                .get_mut(&session.id)
                .and_then(|s| match s.regs.get(&msg.registration) {
                    Some(r) if r.active => s.regs.remove(&msg.registration),
                    _ => None,
                });
        let Some(reg) = reg else {
            ctx.error(
                session.id,
                code::UNREGISTER,
                msg.request,
                errors::NO_SUCH_REGISTRATION,
            );
            return;
        };
        report(ctx, msg.registration, &reg, session.id, false);
        Self::request_removal(session.id, msg.registration, reg.policy, reg.procedure, ctx);
        // Invocations already in flight stay valid: the callee may still answer them.
        ctx.send(
            session.id,
            Message::Unregistered(Unregistered {
                request: msg.request,
                details: None,
            }),
        );
    }

    /// `wamp.registration.remove_callee` reached the callee's shard (spec
    /// `rpc_registration_revocation.md`): the callee is removed from the registration as if it
    /// had unregistered; it hears of it only if it announced `registration_revocation` (else
    /// the spec forbids the UNREGISTERED). Invocations in flight stay valid, as for UNREGISTER.
    pub(crate) fn on_revoke_callee(
        &mut self,
        registration: Id,
        callee: SessionId,
        reason: Option<String>,
        ctx: &mut Ctx<'_>,
    ) {
        let Some(state) = self.callees.get_mut(&callee) else {
            return; // left meanwhile
        };
        let reg = match state.regs.get(&registration) {
            Some(r) if r.active => state.regs.remove(&registration),
            _ => None, // unregistered meanwhile, or still pending (not granted yet)
        };
        let Some(reg) = reg else {
            return;
        };
        let tell = state.features.callee_registration_revocation;
        report(ctx, registration, &reg, callee, false);
        Self::request_removal(callee, registration, reg.policy, reg.procedure, ctx);
        if tell {
            let mut details = crate::codec::Dict::new();
            details.insert("registration".into(), Value::UInt(registration));
            if let Some(r) = reason {
                details.insert("reason".into(), Value::Str(r));
            }
            ctx.send(
                callee,
                Message::Unregistered(Unregistered {
                    request: 0,
                    details: Some(details),
                }),
            );
        }
    }

    pub(crate) fn session_left(&mut self, session: SessionId, ctx: &mut Ctx<'_>) {
        self.caller_left(session, ctx);
        self.callee_left(session, ctx);
    }

    /// The callee side of a leaving session: its registrations go everywhere, its callers get
    /// `wamp.error.canceled` (spec: "Callee Leaving During an RPC Invocation").
    fn callee_left(&mut self, session: SessionId, ctx: &mut Ctx<'_>) {
        let Some(state) = self.callees.remove(&session) else {
            return;
        };
        for token in state.registering {
            if let Some(p) = self.pending_regs.remove(&token) {
                // The home handles our request before this removal (FIFO): nothing leaks.
                Self::request_removal(session, 0, p.policy, p.procedure, ctx);
            }
        }
        for (id, reg) in state.regs {
            if reg.active {
                report(ctx, id, &reg, session, false);
            }
            for queued in reg.queued {
                if let Queued::Invoke(invoke) = queued {
                    fail_invoke(&invoke, errors::NO_SUCH_PROCEDURE, "callee left", ctx);
                }
            }
            Self::request_removal(session, id, reg.policy, reg.procedure, ctx);
        }
        for inv in state.invocations.into_values() {
            self.by_call.remove(&(inv.caller, inv.request));
            ctx.peer(
                inv.caller_shard,
                PeerMsg::call_error(
                    inv.caller,
                    inv.request,
                    Default::default(),
                    Uri::from(errors::CANCELED),
                    Payload::args(vec![Value::from("callee left")]),
                ),
            );
        }
    }

    /// `registration` 0 means "whatever ID the home shard gave this session's registration".
    fn request_removal(
        session: SessionId,
        registration: Id,
        policy: MatchPolicy,
        procedure: Uri,
        ctx: &mut Ctx<'_>,
    ) {
        let home = ctx.home(policy, &procedure);
        ctx.peer(
            home,
            PeerMsg::UnregisterRequest(Box::new(CalleeRemoval {
                session,
                registration,
                policy,
                procedure,
            })),
        );
    }

    // ---- peer messages about registrations (dispatched by `RealmShard`) --------------------

    /// From the home shard: replicate the new callee, then ack to the registering shard.
    pub(crate) fn on_registration_add(&mut self, change: &RegistrationChange, ctx: &mut Ctx<'_>) {
        self.apply_add(change);
        ctx.peer(
            change.origin,
            PeerMsg::RegistrationAck {
                token: change.token,
                registration: change.registration,
            },
        );
    }

    /// From the home shard: the REGISTER conflicts; answer the callee with `error`.
    pub(crate) fn on_register_rejected(&mut self, token: u64, error: &str, ctx: &mut Ctx<'_>) {
        let Some(p) = self.pending_regs.remove(&token) else {
            return;
        };
        if let Some(state) = self.callees.get_mut(&p.session) {
            state.registering.remove(&token);
        }
        ctx.error(p.session, code::REGISTER, p.request, error);
    }

    /// On the home shard: remove a callee, broadcast the removal, and report the end of the
    /// registration when it was the last callee (meta `on_delete`).
    pub(crate) fn on_unregister_request(&mut self, mut removal: CalleeRemoval, ctx: &mut Ctx<'_>) {
        let announce = ctx.config.cluster_node.is_some();
        if announce && !self.claiming.is_empty() {
            // A REGISTER still waiting for the cluster's registry is dropped from the wait.
            let key = (removal.policy, removal.procedure.clone());
            if let Some(c) = self.claiming.get(&key).and_then(|t| self.claims.get_mut(t)) {
                c.waiting.retain(|w| w.callee.session != removal.session);
            }
        }
        let before = announce
            .then(|| self.regs.get(removal.policy, &removal.procedure))
            .flatten()
            .and_then(|r| {
                let c = r.callees.iter().find(|c| c.session == removal.session)?;
                Some(remote_callee(r, c))
            });
        if let Some((id, gone)) = self.apply_removal(&removal) {
            if gone {
                ctx.removed(Table::Registration, id);
            }
            if let Some(callee) = before {
                self.announce_removal(callee, ctx);
            }
            removal.registration = id;
            ctx.broadcast_others(&PeerMsg::RegistrationRemove(Box::new(removal)));
        }
    }

    /// Cluster, on the home shard: a local callee left a registration; the other nodes forget
    /// it, and the registry forgets this node when it was the last local one.
    fn announce_removal(&mut self, callee: RemoteCallee, ctx: &mut Ctx<'_>) {
        let local_left = self
            .regs
            .get(callee.policy, &callee.procedure)
            .is_some_and(|r| r.callees.iter().any(|c| split_remote(c.shard).is_none()));
        let (policy, procedure) = (callee.policy, callee.procedure.clone());
        ctx.action(Action::Cluster(ClusterOut::Callee {
            add: false,
            callee: Box::new(callee),
        }));
        if !local_left && !self.claiming.contains_key(&(policy, procedure.clone())) {
            ctx.action(Action::Cluster(ClusterOut::Release { policy, procedure }));
        }
    }

    /// From the home shard: replicate a callee removal.
    pub(crate) fn on_registration_remove(&mut self, removal: &CalleeRemoval) {
        self.apply_removal(removal);
    }

    /// On the home shard: check conflicts, allocate, apply, broadcast, ack.
    pub(crate) fn on_register_request(
        &mut self,
        mut change: RegistrationChange,
        ctx: &mut Ctx<'_>,
    ) {
        if ctx.config.cluster_node.is_some() {
            let key = (change.policy, change.procedure.clone());
            if let Some(c) = self.claiming.get(&key).and_then(|t| self.claims.get_mut(t)) {
                // The registry has not answered this node's claim yet: wait for it.
                c.waiting.push(change);
                return;
            }
        }
        if let Some(existing) = self.regs.get(change.policy, &change.procedure) {
            let conflict = if existing
                .callees
                .iter()
                .any(|c| c.session == change.callee.session)
                || existing.invoke == InvokePolicy::Single
            {
                Some(errors::PROCEDURE_ALREADY_EXISTS)
            } else if existing.invoke != change.invoke {
                Some(errors::DIFFERENT_INVOCATION_POLICY)
            } else {
                None
            };
            if let Some(error) = conflict {
                ctx.peer(
                    change.origin,
                    PeerMsg::RegisterRejected {
                        token: change.token,
                        error: Uri::from(error),
                    },
                );
                return;
            }
        }
        let existing = self.regs.get(change.policy, &change.procedure);
        let node_serves =
            existing.is_some_and(|r| r.callees.iter().any(|c| split_remote(c.shard).is_none()));
        if ctx.config.cluster_node.is_some() && !node_serves {
            // This node's first callee of the procedure: the cluster's registry decides.
            let registration = existing.map_or_else(|| self.ids.next_id(), |r| r.id);
            let token = self.next_claim;
            self.next_claim += 1;
            let key = (change.policy, change.procedure.clone());
            ctx.action(Action::Cluster(ClusterOut::Claim(Claim {
                token,
                shard: ctx.shard,
                policy: change.policy,
                procedure: change.procedure.clone(),
                invoke: change.invoke,
                registration,
            })));
            self.claiming.insert(key, token);
            self.claims.insert(
                token,
                Claiming {
                    policy: change.policy,
                    procedure: change.procedure.clone(),
                    waiting: vec![change],
                },
            );
            return;
        }
        match existing {
            Some(r) => {
                change.registration = r.id;
                change.created = r.created.clone();
            }
            None => {
                change.registration = self.ids.next_id();
                change.created = ctx.wall_clock();
            }
        }
        self.grant(change, ctx);
    }

    /// On the home shard: the REGISTER is accepted under `change.registration`; apply,
    /// acknowledge, replicate (to the other shards, and the other nodes in a cluster).
    fn grant(&mut self, change: RegistrationChange, ctx: &mut Ctx<'_>) {
        self.apply_add(&change);
        if ctx.config.cluster_node.is_some() {
            if let Some(r) = self.regs.get(change.policy, &change.procedure) {
                ctx.action(Action::Cluster(ClusterOut::Callee {
                    add: true,
                    callee: Box::new(remote_callee(r, &change.callee)),
                }));
            }
        }
        ctx.peer(
            change.origin,
            PeerMsg::RegistrationAck {
                token: change.token,
                registration: change.registration,
            },
        );
        ctx.broadcast_others(&PeerMsg::RegistrationAdd(Box::new(change)));
    }

    // ---- cluster ---------------------------------------------------------------------------

    /// On the home shard: the registry answered this node's claim of a procedure. Granted: the
    /// first waiting REGISTER gets the registry's ID, the others are handled as usual (the
    /// node now serves the procedure). Refused: every waiting REGISTER gets the error.
    pub(crate) fn on_claimed(&mut self, token: u64, result: ClaimResult, ctx: &mut Ctx<'_>) {
        let Some(c) = self.claims.remove(&token) else {
            return;
        };
        self.claiming.remove(&(c.policy, c.procedure.clone()));
        match result {
            ClaimResult::Granted(id) => {
                let mut waiting = c.waiting.into_iter();
                let Some(mut first) = waiting.next() else {
                    // Everyone who asked left meanwhile: give the claim back.
                    ctx.action(Action::Cluster(ClusterOut::Release {
                        policy: c.policy,
                        procedure: c.procedure,
                    }));
                    return;
                };
                first.registration = id;
                first.created = match self.regs.get(c.policy, &c.procedure) {
                    Some(r) if r.id == id => r.created.clone(),
                    _ => ctx.wall_clock(),
                };
                self.grant(first, ctx);
                for change in waiting {
                    self.on_register_request(change, ctx);
                }
            }
            ClaimResult::Refused(error) => {
                for change in c.waiting {
                    ctx.peer(
                        change.origin,
                        PeerMsg::RegisterRejected {
                            token: change.token,
                            error: Uri::from(error),
                        },
                    );
                }
            }
        }
    }

    /// Every shard: a callee of node `node` joined or left a registration.
    pub(crate) fn on_remote_callee(
        &mut self,
        node: NodeId,
        add: bool,
        c: &RemoteCallee,
        ctx: &mut Ctx<'_>,
    ) {
        if add {
            if self
                .regs
                .get(c.policy, &c.procedure)
                .is_some_and(|r| r.id != c.registration)
            {
                // Two IDs for one procedure: the registry was unreachable or lost while both
                // nodes registered it. Keep this node's; the other node's callee is not used.
                return;
            }
            self.apply_add(&RegistrationChange {
                token: 0,
                origin: ctx.shard,
                registration: c.registration,
                policy: c.policy,
                procedure: c.procedure.clone(),
                invoke: c.invoke,
                disclose_caller: c.disclose_caller,
                forward_timeout: c.forward_timeout,
                callee: CalleeRef {
                    session: c.session,
                    shard: remote_shard(node, c.shard),
                    features: c.features,
                },
                created: c.created.clone(),
            });
        } else {
            self.remove_remote(
                CalleeRemoval {
                    session: c.session,
                    registration: c.registration,
                    policy: c.policy,
                    procedure: c.procedure.clone(),
                },
                false,
                ctx,
            );
        }
    }

    /// Removes another node's callee; what [`Dealer::apply_removal`] says. The home shard
    /// reports a registration gone with it (`announce`: its `on_delete` is published here
    /// whoever published its `on_create`), see [`Dealer::node_gone`].
    fn remove_remote(
        &mut self,
        removal: CalleeRemoval,
        announce: bool,
        ctx: &mut Ctx<'_>,
    ) -> Option<(Id, bool)> {
        let removed = self.apply_removal(&removal);
        if let Some((id, true)) = removed {
            if !announce && ctx.home(removal.policy, &removal.procedure) == ctx.shard {
                ctx.removed(Table::Registration, id);
            }
        }
        removed
    }

    /// Every shard: node `node` is gone (`gone: Some(announce)`) or re-synchronises (`None`).
    /// Its callees leave every registration; when it is gone, the calls in flight to them
    /// fail with `wamp.error.canceled` and the invocations its callers made are forgotten
    /// (the callee INTERRUPTed if it can be), and with `announce` the home shards publish the
    /// registrations' meta events of its callees leaving.
    pub(crate) fn node_gone(&mut self, node: NodeId, gone: Option<bool>, ctx: &mut Ctx<'_>) {
        let dead = gone.is_some();
        let announce = gone == Some(true);
        let on_node = |shard: ShardId| split_remote(shard).is_some_and(|(n, _)| n == node);
        let mut removals = Vec::new();
        for (policy, procedure) in self.reg_by_id.values() {
            if let Some(r) = self.regs.get(*policy, procedure) {
                for c in r.callees.iter().filter(|c| on_node(c.shard)) {
                    removals.push(CalleeRemoval {
                        session: c.session,
                        registration: r.id,
                        policy: *policy,
                        procedure: procedure.clone(),
                    });
                }
            }
        }
        for removal in removals {
            let (session, policy, procedure) =
                (removal.session, removal.policy, removal.procedure.clone());
            let removed = self.remove_remote(removal, announce, ctx);
            if let (true, Some((id, gone))) = (announce, removed) {
                if ctx.home(policy, &procedure) == ctx.shard {
                    ctx.event(super::meta::RouterEvent {
                        topic: Uri::from("wamp.registration.on_unregister"),
                        payload: Payload::args(vec![Value::UInt(session), Value::UInt(id)]),
                        options: Default::default(),
                    });
                    if gone {
                        ctx.removed_announce(Table::Registration, id, session);
                    }
                }
            }
        }
        if !dead {
            return;
        }
        let calls: Vec<(SessionId, Id)> = self
            .calls
            .iter()
            .filter(|(_, out)| on_node(out.callee_shard))
            .map(|(k, _)| *k)
            .collect();
        for (caller, request) in calls {
            if self.finish((caller, request), ctx).is_some() {
                ctx.error_msg(
                    caller,
                    code::CALL,
                    request,
                    errors::CANCELED,
                    Some("the callee's cluster node is gone"),
                );
            }
        }
        let invocations: Vec<CallRef> = self
            .callees
            .iter()
            .flat_map(|(callee, state)| {
                state
                    .invocations
                    .values()
                    .filter(|inv| on_node(inv.caller_shard))
                    .map(|inv| CallRef {
                        caller: inv.caller,
                        request: inv.request,
                        callee: *callee,
                        registration: inv.registration,
                    })
            })
            .collect();
        for call in invocations {
            self.on_call_gone(call, Some(GoneReason::CallerLeft), ctx);
        }
    }

    fn apply_add(&mut self, c: &RegistrationChange) {
        let entry = self
            .regs
            .get_or_insert_with(c.policy, &c.procedure, || Registration {
                id: c.registration,
                policy: c.policy,
                procedure: c.procedure.clone(),
                invoke: c.invoke,
                disclose_caller: c.disclose_caller,
                forward_timeout: c.forward_timeout,
                callees: Vec::new(),
                created: c.created.clone(),
                rr_next: Cell::new(0),
            });
        if entry.id != c.registration {
            // Converge on the home shard's word (cannot happen with FIFO delivery).
            self.reg_by_id.remove(&entry.id);
            entry.id = c.registration;
            entry.invoke = c.invoke;
            entry.callees.clear();
            entry.created = c.created.clone();
        }
        if !entry.callees.iter().any(|x| x.session == c.callee.session) {
            entry.callees.push(c.callee);
        }
        self.reg_by_id
            .insert(c.registration, (c.policy, c.procedure.clone()));
    }

    /// Removes the callee; returns the registration ID if something was removed, and whether
    /// the registration went with it (its last callee).
    fn apply_removal(&mut self, r: &CalleeRemoval) -> Option<(Id, bool)> {
        let entry = self.regs.get_mut(r.policy, &r.procedure)?;
        if r.registration != 0 && entry.id != r.registration {
            return None;
        }
        let before = entry.callees.len();
        entry.callees.retain(|c| c.session != r.session);
        if entry.callees.len() == before {
            return None;
        }
        let id = entry.id;
        let gone = entry.callees.is_empty();
        if gone {
            self.regs.remove(r.policy, &r.procedure);
            self.reg_by_id.remove(&id);
        }
        Some((id, gone))
    }

    /// On the registering shard: count acks; at `shard_count`, REGISTERED and flush queued
    /// invocations.
    pub(crate) fn on_ack(&mut self, token: u64, registration: Id, ctx: &mut Ctx<'_>) {
        let Some(p) = self.pending_regs.get_mut(&token) else {
            return;
        };
        p.acks += 1;
        let done = p.acks >= ctx.shard_count;
        let session = p.session;
        let Some(state) = self.callees.get_mut(&session) else {
            self.pending_regs.remove(&token);
            return;
        };
        // Known from the first ack on, so an Invoke from a shard that acked already (FIFO: its
        // ack arrives first) is queued rather than refused.
        let local = state
            .regs
            .entry(registration)
            .or_insert_with(|| LocalRegistration {
                policy: p.policy,
                procedure: p.procedure.clone(),
                active: false,
                queued: Vec::new(),
            });
        if !done {
            return;
        }
        let request = p.request;
        self.pending_regs.remove(&token);
        state.registering.remove(&token);
        local.active = true;
        let queued = std::mem::take(&mut local.queued);
        ctx.send(
            session,
            Message::Registered(Registered {
                request,
                registration,
            }),
        );
        report(ctx, registration, local, session, true);
        for queued in queued {
            match queued {
                Queued::Invoke(invoke) => self.on_invoke(*invoke, ctx),
                Queued::More {
                    call,
                    progress,
                    payload,
                } => self.on_more(call, progress, payload, ctx),
            }
        }
    }

    /// `best_match` and the invocation policy: the callee a call goes to.
    fn pick(&self, procedure: &str, ctx: &mut Ctx<'_>) -> Option<(&Registration, CalleeRef)> {
        let (_, reg) = self.regs.best_match(procedure)?;
        let n = reg.callees.len();
        let index = match reg.invoke {
            InvokePolicy::Single | InvokePolicy::First => 0,
            InvokePolicy::Last => n.checked_sub(1)?,
            InvokePolicy::RoundRobin => {
                let i = reg.rr_next.get() % n.max(1);
                reg.rr_next.set(i + 1);
                i
            }
            InvokePolicy::Random => {
                use rand::Rng;
                if n == 0 {
                    return None;
                }
                ctx.rng.gen_range(0..n)
            }
        };
        let callee = *reg.callees.get(index)?;
        Some((reg, callee))
    }

    /// The next callee for a rerouted call to `procedure`, per the invocation policy of its
    /// registration, skipping every callee in `tried` (spec: "assuming that the unavailable
    /// registration virtually does not exist"). `single` never reroutes.
    fn pick_other(
        &self,
        procedure: &str,
        tried: &[SessionId],
        ctx: &mut Ctx<'_>,
    ) -> Option<(&Registration, CalleeRef)> {
        let (_, reg) = self.regs.best_match(procedure)?;
        let untried = |c: &&CalleeRef| !tried.contains(&c.session);
        let callee = match reg.invoke {
            InvokePolicy::Single => None,
            // `first`: the one registered after the called one; `last`: the one before.
            InvokePolicy::First => reg.callees.iter().find(untried),
            InvokePolicy::Last => reg.callees.iter().rev().find(untried),
            InvokePolicy::RoundRobin => {
                let n = reg.callees.len();
                // At most one turn of the queue.
                (0..n).find_map(|_| {
                    let i = reg.rr_next.get() % n;
                    reg.rr_next.set(i + 1);
                    reg.callees.get(i).filter(|c| !tried.contains(&c.session))
                })
            }
            InvokePolicy::Random => {
                use rand::seq::IteratorRandom;
                reg.callees.iter().filter(untried).choose(ctx.rng)
            }
        };
        Some((reg, *callee?))
    }

    // ---- read access (meta API) ------------------------------------------------------------

    /// Every registration in the realm (this shard's replica).
    pub fn registrations(&self) -> Vec<RegistrationInfo> {
        self.reg_by_id
            .values()
            .filter_map(|(p, u)| self.regs.get(*p, u))
            .map(|r| RegistrationInfo {
                id: r.id,
                policy: r.policy,
                procedure: r.procedure.clone(),
                invoke: r.invoke,
                callees: r.callees.iter().map(|c| c.session).collect(),
            })
            .collect()
    }

    /// One registration by ID.
    pub fn registration(&self, id: Id) -> Option<&Registration> {
        let (p, u) = self.reg_by_id.get(&id)?;
        self.regs.get(*p, u)
    }

    /// The registration for exactly `(policy, procedure)` (`wamp.registration.lookup`).
    pub fn lookup(&self, policy: MatchPolicy, procedure: &str) -> Option<Id> {
        self.regs.get(policy, procedure).map(|r| r.id)
    }

    /// The registration a call to `procedure` would use (`wamp.registration.match`).
    pub fn matching(&self, procedure: &str) -> Option<Id> {
        self.regs.best_match(procedure).map(|(_, r)| r.id)
    }

    /// Whether local callee `session` actively provides registration `id`.
    pub fn is_registered(&self, session: SessionId, id: Id) -> bool {
        self.callees
            .get(&session)
            .and_then(|s| s.regs.get(&id))
            .is_some_and(|r| r.active)
    }

    /// Active registrations of a local callee.
    pub fn registrations_of(&self, session: SessionId) -> Vec<Id> {
        self.callees
            .get(&session)
            .map(|s| {
                s.regs
                    .iter()
                    .filter(|(_, r)| r.active)
                    .map(|(id, _)| *id)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Hands over (and forgets) how long each call answered since they were last taken.
    pub fn drain_call_times(&mut self, f: impl FnMut(std::time::Duration)) {
        if !self.call_times.is_empty() {
            self.call_times.drain(..).for_each(f);
        }
    }

    /// Calls in flight made by local callers.
    pub fn pending_calls(&self) -> usize {
        self.calls.len()
    }

    /// Invocations in flight to local callees.
    pub fn pending_invocations(&self) -> usize {
        self.callees.values().map(|s| s.invocations.len()).sum()
    }
}

/// Tells the home shard of the registration that local callee `session` joined or left it
/// (the home publishes the meta events; see [`super::peer`]).
fn report(ctx: &mut Ctx<'_>, id: Id, reg: &LocalRegistration, session: SessionId, joined: bool) {
    ctx.report(Lifecycle {
        table: Table::Registration,
        id,
        policy: reg.policy,
        uri: reg.procedure.clone(),
        session,
        joined,
    });
}

/// A local callee as the other nodes of the cluster learn it.
fn remote_callee(r: &Registration, c: &CalleeRef) -> RemoteCallee {
    RemoteCallee {
        policy: r.policy,
        procedure: r.procedure.clone(),
        registration: r.id,
        invoke: r.invoke,
        disclose_caller: r.disclose_caller,
        forward_timeout: r.forward_timeout,
        created: r.created.clone(),
        session: c.session,
        shard: c.shard,
        features: c.features,
    }
}

/// Answers an Invoke that cannot be delivered.
fn fail_invoke(invoke: &Invoke, error: &str, text: &str, ctx: &mut Ctx<'_>) {
    ctx.peer(
        invoke.caller_shard,
        PeerMsg::call_error(
            invoke.caller,
            invoke.request,
            Default::default(),
            Uri::from(error),
            Payload::args(vec![Value::from(text)]),
        ),
    );
}
