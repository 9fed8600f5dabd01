//! Shards: one glommio executor per core, each owning a set of sessions.
//!
//! [`Router::start`] binds every listener in the calling thread (so errors surface before any
//! shard starts, and `:0` ports resolve once), then starts one pinned `LocalExecutor` per shard.
//! Each shard accepts on its own SO_REUSEPORT copy of every TCP listener; Unix-socket
//! connections are accepted on shard 0 and handed round-robin to the shards through the mesh.
//! A shard owns its sessions and one [`RealmShard`] per realm; routing messages between shards
//! travel through the mesh, batched per destination per turn of work.
//!
//! This file is a shard's state and how it carries out the routing core's actions
//! (`Shard::apply_actions`); `router.rs` starts and stops the shards (binding, `shard_main`,
//! accept loops); `conn.rs` drives one connection; `mesh.rs` is the cross-shard channel.

pub mod authorizer;
pub mod conn;
mod deadlines;
mod handshake;
pub mod local;
mod longpoll;
pub mod mesh;
pub mod outbound;
mod oversize;
mod router;

pub mod signal;

use crate::codec::{self, Abort, Dict, Id, Message, Uri, Value};
use crate::config::SlowConsumerPolicy;
use crate::metrics::{Limit, RealmMetrics, ShardMetrics};
use crate::router_config::RouterConfig;
use crate::routing::{Action, PeerMsg, RealmShard, SessionRef};
use crate::session::{self, RealmDirectory, SessionOutput};
use conn::SessionHandle;
pub use local::{LocalConnectError, LocalConnector};
use mesh::MeshOutbox;
use outbound::{FramedError, OutFrame, PushError};
pub use router::{Router, ShutdownHandle, StartError};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Features announced in WELCOME: exactly what the broker and dealer implement.
pub const BROKER_FEATURES: &[&str] = &[
    "publisher_exclusion",
    "publisher_identification",
    "subscriber_blackwhite_listing",
    "pattern_based_subscription",
    "publication_trustlevels",
    "session_meta_api",
    "subscription_meta_api",
    "subscription_revocation",
    "payload_passthru_mode",
    // Left out of WELCOME when no realm keeps retained events (see `broker_features`).
    "event_retention",
    // Left out of WELCOME when no realm has a `[[realm.history]]` rule.
    "event_history",
];
/// The broker features this configuration offers: [`BROKER_FEATURES`] without
/// `event_retention` when no realm keeps retained events, without `event_history` when no
/// realm keeps history (WELCOME's roles are the same for every realm; a realm with retention
/// off ignores `retain`, which the spec allows, and one without history rules answers
/// `get_events` with an error naming that).
fn broker_features(cfg: &RouterConfig) -> Vec<&'static str> {
    let retention = cfg
        .realms
        .iter()
        .any(|r| cfg.routing(r).retention.enabled());
    let history = cfg.realms.iter().any(|r| !r.history.is_empty());
    BROKER_FEATURES
        .iter()
        .copied()
        .filter(|f| retention || *f != "event_retention")
        .filter(|f| history || *f != "event_history")
        .collect()
}

/// See [`BROKER_FEATURES`].
pub const DEALER_FEATURES: &[&str] = &[
    "caller_identification",
    "call_canceling",
    "call_timeout",
    "progressive_call_results",
    "progressive_call_invocations",
    "pattern_based_registration",
    "shared_registration",
    "call_reroute",
    "call_trustlevels",
    "registration_revocation",
    "payload_passthru_mode",
    "session_meta_api",
    "registration_meta_api",
    "testament_meta_api",
];

/// Messages waiting in a shard's inbox above which producers elsewhere pause reading.
pub const MESH_BACKLOG_LIMIT: usize = 65_536;

/// Messages between shards (and from the control thread).
// Routing messages dominate the traffic and travel in batches (Vec<ShardMsg>); boxing them
// would cost an allocation per message to save space in rare control messages.
#[allow(clippy::large_enum_variant)]
pub enum ShardMsg {
    /// Close every session with GOODBYE and stop.
    Shutdown,
    /// A Unix-socket connection accepted on shard 0, for this shard to serve.
    UnixConn {
        fd: std::os::fd::OwnedFd,
        listener: usize,
    },
    /// An in-process session (see [`LocalConnector`]) for this shard to serve.
    LocalConn { end: crate::net::inproc::RouterEnd },
    /// A routing message for the same realm on this shard.
    Peer {
        realm: Uri,
        from: usize,
        msg: PeerMsg,
    },
    /// From the cluster bridge: another node's interest, departure or publication.
    Cluster {
        realm: Uri,
        msg: crate::routing::cluster::ClusterIn,
    },
}

/// What `WELCOME.Details.transport` depends on: transport kind, serializer, batched session.
pub type TransportKey = (&'static str, crate::codec::Serializer, bool);

/// Counters shared by all shards.
#[derive(Default)]
pub struct SharedCounters {
    pub connections: AtomicUsize,
    /// The open HTTP long-poll transports, reachable from every shard.
    pub longpoll: longpoll::Registry,
    /// The cluster bridge, when this router is a node of a cluster.
    #[cfg(feature = "cluster")]
    pub cluster: Option<crate::cluster::ClusterHandle>,
}

/// One shard's state. Lives on its executor thread only (`Rc`).
pub struct Shard {
    pub id: usize,
    pub count: usize,
    pub cfg: Arc<RouterConfig>,
    pub mesh: MeshOutbox<ShardMsg>,
    pub sessions: RefCell<crate::util::fast::FastMap<Id, Rc<SessionHandle>>>,
    /// The realms this shard routes, looked up for every message (configured names: foldhash).
    pub realms: RefCell<crate::util::fast::FastMap<Uri, RealmShard>>,
    pub shared: Arc<SharedCounters>,
    pub welcome_roles: Rc<Value>,
    /// Shared read buffer: an idle session holds none of its own (see `conn::read_some`).
    pub read_scratch: RefCell<Vec<u8>>,
    /// When one of the shard's busy readers next has the reactor poll; shared, so the turns
    /// go by the clock and not per reader (`conn::busy_read`).
    pub busy_reactor_due: Cell<std::time::Instant>,
    /// Sessions of this shard asking their sockets right now (`conn::busy_read`).
    pub busy_readers: Cell<u32>,
    /// Sessions whose events are shed (queue full): their queues mark them, the realms leave
    /// them out of fan-out (`routing::shedding`). Only with slow-consumer policy `drop`.
    pub shedding: Option<Rc<crate::routing::Shedding>>,
    pub shutting_down: Cell<bool>,
    /// This shard's counters; only this thread writes them, the metrics thread reads them.
    pub metrics: Arc<ShardMetrics>,
    /// Dynamic authorizer calls and their cache.
    pub authz: authorizer::AuthzState,
    /// `WELCOME.Details.transport` per (kind, serializer), built once and shared by every
    /// session it describes (a dictionary per session cost ~1.4 KB of idle memory).
    pub transport_details: RefCell<HashMap<TransportKey, Rc<Value>>>,
    /// A session's outputs for one input, kept empty with its room between inputs (one list
    /// per shard, not per session: an idle session holds none).
    pub spare_outputs: Cell<Vec<SessionOutput>>,
    /// The actions of one routed message, kept the same way.
    pub spare_actions: Cell<Vec<Action>>,
    /// Write buffers and frame lists of writers whose queue ran dry (see `conn::WriteSpares`).
    pub(crate) spare_writes: RefCell<conn::WriteSpares>,
}

/// Most room a spare output or action list keeps (entries); a larger one is dropped after use.
pub(crate) const SPARE_OUTPUTS_MAX: usize = 16;
const SPARE_ACTIONS_MAX: usize = 64;

/// Decrements the process-wide connection count when a connection ends.
pub struct ConnectionGuard(Arc<SharedCounters>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.connections.fetch_sub(1, Ordering::Relaxed);
    }
}

impl RealmDirectory for Shard {
    fn admits_anonymous(&self, realm: &str) -> bool {
        self.cfg
            .realms
            .iter()
            .any(|r| r.name == realm && r.anonymous)
    }
    fn exists(&self, realm: &str) -> bool {
        self.cfg.realms.iter().any(|r| r.name == realm)
    }
    fn authenticator(&self, realm: &str) -> Option<&crate::auth::Authenticator> {
        self.cfg
            .realms
            .iter()
            .find(|r| r.name == realm)
            .map(|r| &*r.auth)
    }
    fn cookies(&self) -> Option<&crate::auth::CookieStore> {
        self.cfg.ws_cookie.as_deref()
    }
    fn dynamic_authenticator(&self, realm: &str, method: crate::auth::AuthMethod) -> Option<&str> {
        self.cfg
            .realms
            .iter()
            .find(|r| r.name == realm)?
            .authenticators
            .iter()
            .find(|a| a.method == method)
            .map(|a| a.procedure.as_str())
    }
}

impl Shard {
    /// The WebSocket subprotocols this router's WebSocket listeners accept, in the order the
    /// router prefers them (`--ws-serializers`, `--no-ws-batched`).
    pub(crate) fn ws_subprotocols(&self) -> Vec<&'static str> {
        use crate::codec::Serializer;
        const PREFERENCE: [Serializer; 4] = [
            Serializer::MsgPack,
            Serializer::Cbor,
            Serializer::Json,
            Serializer::Ubjson,
        ];
        let t = &self.cfg.transports;
        let on = || PREFERENCE.into_iter().filter(|s| t.allows(true, *s));
        let mut out: Vec<&'static str> = on().map(Serializer::subprotocol).collect();
        if t.ws_batched {
            out.extend(on().map(Serializer::batched_subprotocol));
        }
        out
    }

    /// `WELCOME.Details.transport` for a session on a WebSocket (or RawSocket) listener using
    /// `serializer`: `{"type", "serializer", "serializers": [what this listener type accepts],
    /// "batched"}` (not a spec key: tells a client what else it could use).
    pub(crate) fn transport_details(
        &self,
        websocket: bool,
        serializer: crate::codec::Serializer,
    ) -> Rc<Value> {
        let kind = if websocket { "websocket" } else { "rawsocket" };
        self.transport_details_for(kind, serializer, false)
    }

    /// [`Shard::transport_details`] for a transport `kind` (`websocket`, `rawsocket`,
    /// `longpoll`): `type`, `serializer`, `serializers` (what this listener type accepts) and,
    /// on WebSocket listeners, `batched` (offered by the listener; for long-poll, whether the
    /// session itself is batched). Built once per shard, shared.
    pub(crate) fn transport_details_for(
        &self,
        kind: &'static str,
        serializer: crate::codec::Serializer,
        batched: bool,
    ) -> Rc<Value> {
        self.transport_details
            .borrow_mut()
            .entry((kind, serializer, batched))
            .or_insert_with(|| {
                let t = &self.cfg.transports;
                let websocket = kind != "rawsocket";
                let mut d = crate::codec::Dict::new();
                d.insert("type".into(), Value::Str(kind.into()));
                d.insert("serializer".into(), Value::Str(serializer.name().into()));
                let names = t.names(websocket).into_iter().map(|n| Value::Str(n.into()));
                d.insert("serializers".into(), Value::List(names.collect()));
                if websocket {
                    let b = if kind == "longpoll" {
                        batched
                    } else {
                        t.ws_batched
                    };
                    d.insert("batched".into(), Value::Bool(b));
                }
                Rc::new(Value::Dict(d))
            })
            .clone()
    }

    /// The serializer `wamp.2.ubjson` / RawSocket serializer 4 mean here (`--ubjson-dialect`).
    pub(crate) fn ubjson(&self) -> crate::codec::Serializer {
        match self.cfg.ubjson_dialect {
            crate::config::UbjsonDialect::Ubjson => crate::codec::Serializer::Ubjson,
            crate::config::UbjsonDialect::Bjdata => crate::codec::Serializer::Bjdata,
        }
    }

    /// Counts a new connection; the guard uncounts it.
    pub fn connection_guard(&self) -> ConnectionGuard {
        self.shared.connections.fetch_add(1, Ordering::Relaxed);
        ConnectionGuard(self.shared.clone())
    }

    /// Whether the process is over its connection limit (the current one included).
    pub fn connections_over_limit(&self) -> bool {
        self.shared.connections.load(Ordering::Relaxed) > self.cfg.limits.max_connections
    }

    /// A random session ID in [1, 2^53], unique among this shard's sessions (global
    /// uniqueness across shards holds with overwhelming probability: 53 random bits).
    pub fn new_session_id(&self) -> Id {
        loop {
            let id = rand::random::<u64>() % codec::MAX_ID + 1;
            if id != self.authz.caller && !self.sessions.borrow().contains_key(&id) {
                return id;
            }
        }
    }

    /// Whether some other shard has more than [`MESH_BACKLOG_LIMIT`] messages waiting from
    /// the mesh: producers on this shard then pause reading until it catches up.
    pub fn mesh_backlogged(&self) -> bool {
        let s = self.mesh.senders();
        (0..self.count).any(|d| d != self.id && s.backlog(d) > MESH_BACKLOG_LIMIT)
    }

    pub fn flush_mesh(&self) {
        self.mesh.flush();
    }

    /// Policy `drop`: an EVENT for a session whose queue is shedding (it filled up and has
    /// not drained to half since) is dropped, and counted, before any work is done for it.
    fn shed_event(&self, h: &SessionHandle) -> bool {
        if self.cfg.limits.slow_consumer != SlowConsumerPolicy::Drop || !h.outbound.is_shedding() {
            return false;
        }
        self.metrics.events_dropped.inc();
        true
    }

    /// Queues one encoded message for a session, applying the slow-consumer policy. True when
    /// the message was queued.
    fn deliver(&self, h: &SessionHandle, frame: OutFrame, message_code: u64) -> bool {
        if let OutFrame::Message(b) = &frame {
            if !self.fits_peer(h, b) {
                return false;
            }
        }
        let is_event = message_code == codec::code::EVENT;
        if is_event && self.shed_event(h) {
            return false;
        }
        match h.outbound.push(frame) {
            Ok(()) => {
                self.metrics.messages_out.inc(message_code);
                true
            }
            Err(e) => self.refused(h, e, is_event),
        }
    }

    /// Queues a message framed at push (`Outbound::push_framed`: RawSocket) under the
    /// slow-consumer policy: `Some(queued)`, or `None` when it must take the frame list
    /// instead. `encode` appends its encoding; a message too big for the peer goes to
    /// `too_big`.
    fn push_framed(
        &self,
        h: &SessionHandle,
        code: u64,
        encode: impl FnOnce(&mut Vec<u8>),
        too_big: impl FnOnce(),
    ) -> Option<bool> {
        let spare = || self.spare_writes.borrow_mut().framed();
        match h.outbound.push_framed(h.peer_max, spare, encode) {
            Ok(()) => {
                self.metrics.messages_out.inc(code);
                Some(true)
            }
            Err(FramedError::TooBig) => {
                too_big();
                Some(false)
            }
            Err(FramedError::Push(e)) => Some(self.refused(h, e, code == codec::code::EVENT)),
            Err(FramedError::Listed) => None,
        }
    }

    /// A message the session's queue refused: the slow-consumer policy. Always false (not
    /// queued).
    fn refused(&self, h: &SessionHandle, e: PushError, is_event: bool) -> bool {
        match e {
            PushError::Closed => {}
            PushError::Full => {
                if is_event && self.cfg.limits.slow_consumer == SlowConsumerPolicy::Drop {
                    self.metrics.events_dropped.inc();
                } else {
                    // RPC traffic is never dropped silently: the stuck session is closed.
                    self.metrics.slow_consumer_disconnects.inc();
                    tracing::info!(
                        shard = self.id,
                        session = h.id,
                        realm = %conn::SessionRealm(h),
                        "slow consumer disconnected"
                    );
                    h.outbound.close(1008, "outbound queue full");
                    h.kill.set();
                }
            }
        }
        false
    }

    /// Applies what the session state machine asked for.
    pub fn apply_session_outputs(&self, h: &Rc<SessionHandle>, outs: &mut Vec<SessionOutput>) {
        for o in outs.drain(..) {
            match o {
                SessionOutput::Reply(m) => {
                    if self.push_reply(h, &m) == oversize::AfterTooBig::Ended {
                        // Never joined (an undeliverable WELCOME): the rest is moot.
                        return;
                    }
                }
                SessionOutput::Joined { realm } => {
                    tracing::debug!(shard = self.id, session = h.id, realm = %realm, "joined");
                    let realm_metrics = self.metrics.realm_index(&realm);
                    if let Some(r) = self.metrics.realm_at(realm_metrics) {
                        r.sessions.inc();
                    }
                    h.realm_metrics.set(realm_metrics);
                    *h.realm.borrow_mut() = Some(realm.clone());
                    let sref = {
                        let mut core = h.core.borrow_mut();
                        let trustlevel = core.trustlevel.or_else(|| {
                            self.policy(&realm)
                                .and_then(|p| p.trustlevel(&core.authrole))
                        });
                        SessionRef::new(h.id, self.id, &core.authid, &core.authrole, core.features)
                            // Moved: the session's one copy lives in its SessionRef.
                            .with_attributes(std::mem::take(&mut core.attributes))
                            .with_trustlevel(trustlevel)
                    };
                    *h.sref.borrow_mut() = Some(sref.clone());
                    h.authz_open.set(
                        self.cfg.authorizer.is_none()
                            && self.policy(&realm).is_some_and(|p| p.is_open()),
                    );
                    self.in_realm(&realm, |r, actions| {
                        r.on_session_join(sref, h.meta_details(), Instant::now(), actions)
                    });
                    self.flush_mesh();
                }
                SessionOutput::Route(m) => self.route(h, m),
                SessionOutput::Close => {
                    self.session_gone(h);
                    h.outbound.close(1000, "");
                }
                // Taken out by the connection driver, which awaits the authenticator.
                SessionOutput::DynamicAuth(_) => {}
                SessionOutput::AuthFailed(f) => self.auth_failed(h, &f),
            }
        }
    }

    /// A login failed: counted by method and reason, logged at info (no secrets: the authid
    /// the client claimed is all it sent that is shown). The client already has its ABORT.
    fn auth_failed(&self, h: &SessionHandle, f: &session::AuthFailure) {
        self.metrics.auth_failure(f.method, f.reason);
        tracing::info!(
            shard = self.id,
            session = h.id,
            realm = %f.realm,
            authid = ?f.authid.as_deref().unwrap_or(""),
            authmethod = f.method.map_or("none", crate::auth::AuthMethod::as_str),
            reason = f.reason.label(),
            "login failed"
        );
    }

    /// Routes a message of a local session (authorized here first). Called with the session's
    /// outputs, or directly for an input its state machine would only pass on
    /// (`conn::routes_directly`).
    pub(crate) fn route(&self, h: &SessionHandle, m: Message) {
        self.route_at(h, m, Instant::now());
    }

    /// [`Shard::route`] for a message that arrived at `now`: a connection's reader passes the
    /// time of the read that brought it (one clock read per read, not per message; a batch's
    /// later messages carry its time, at most one read's worth of work earlier than their own).
    pub(crate) fn route_at(&self, h: &SessionHandle, mut m: Message, now: Instant) {
        let Some(realm) = h.realm.borrow().clone() else {
            return;
        };
        // Authorization first: everything below (meta API included) sees only allowed messages.
        if !self.authorize(h, &realm, &mut m) {
            return;
        }
        let realm_metrics = self.metrics.realm_at(h.realm_metrics.get());
        if let Some(r) = realm_metrics {
            r.messages_in.inc();
        }
        self.route_to_realm(h, &realm, realm_metrics, m, now);
    }

    /// Feeds one message of a local session to its realm's routing core.
    fn route_to_realm(
        &self,
        h: &SessionHandle,
        realm: &Uri,
        realm_metrics: Option<&RealmMetrics>,
        m: Message,
        now: Instant,
    ) {
        // The shard's spare action list (empty, with room), unless a routing step below this
        // one has it: then a new one.
        let mut actions = self.spare_actions.take();
        if let (Some(r), Some(sref)) = (
            self.realms.borrow_mut().get_mut(realm),
            h.sref.borrow().as_ref(),
        ) {
            r.on_message(sref, m, now, &mut actions);
            self.observe_call_times(r);
        }
        self.count_shed();
        self.apply_actions_with(realm, realm_metrics, &mut actions);
        if actions.capacity() <= SPARE_ACTIONS_MAX {
            self.spare_actions.set(actions);
        }
    }

    /// The session left (transport closed, GOODBYE, ABORT): remove it from routing. Idempotent.
    pub fn session_gone(&self, h: &SessionHandle) {
        if self.sessions.borrow_mut().remove(&h.id).is_none() {
            return;
        }
        h.outbound.stop_reporting();
        let realm = h.realm.borrow_mut().take();
        let realm_metrics = h.realm_metrics.take();
        if let Some(realm) = realm {
            if let Some(r) = self.metrics.realm_at(realm_metrics) {
                r.sessions.dec();
            }
            self.in_realm(&realm, |r, actions| {
                r.on_session_leave(h.id, Instant::now(), actions)
            });
        }
        self.flush_mesh();
    }

    pub(crate) fn session(&self, id: Id) -> Option<Rc<SessionHandle>> {
        self.sessions.borrow().get(&id).cloned()
    }

    /// Carries out routing actions, in order.
    pub(crate) fn apply_actions(&self, realm: &Uri, mut actions: Vec<Action>) {
        self.apply_actions_from(realm, &mut actions);
    }

    /// [`Shard::apply_actions`], leaving `actions` empty with its room (for reuse).
    fn apply_actions_from(&self, realm: &Uri, actions: &mut Vec<Action>) {
        self.apply_actions_with(realm, self.metrics.realm(realm), actions);
    }

    /// [`Shard::apply_actions_from`] with the realm's counters already found.
    fn apply_actions_with(
        &self,
        realm: &Uri,
        realm_metrics: Option<&RealmMetrics>,
        actions: &mut Vec<Action>,
    ) {
        let count_out = || {
            if let Some(r) = realm_metrics {
                r.messages_out.inc();
            }
        };
        for a in actions.drain(..) {
            match a {
                // The dynamic authorizer's internal caller is not a connection (see authz.rs).
                Action::Send { to, msg } if to == self.authz.caller => {
                    self.on_authorizer_reply(&msg);
                }
                Action::Send { to, msg } => {
                    if self.send_one(to, msg) {
                        count_out();
                    }
                }
                Action::SendMany { to, msg } => {
                    for _ in 0..self.send_shared(to, &msg) {
                        count_out();
                    }
                }
                Action::Peer { shard, msg } => {
                    self.metrics.mesh_sent.inc();
                    self.mesh.push(
                        shard,
                        ShardMsg::Peer {
                            realm: realm.clone(),
                            from: self.id,
                            msg,
                        },
                    );
                }
                Action::Cluster(out) => {
                    #[cfg(feature = "cluster")]
                    if let Some(c) = &self.shared.cluster {
                        c.send(realm, out);
                    }
                    #[cfg(not(feature = "cluster"))]
                    let _ = out; // never emitted: without the feature there is no cluster
                }
                Action::Abort {
                    session,
                    reason,
                    message,
                } => {
                    if let Some(h) = self.session(session) {
                        let mut details = Dict::new();
                        details.insert("message".into(), Value::Str(message));
                        let abort = Message::Abort(Abort { details, reason });
                        let _ = self.push_reply(&h, &abort);
                        h.core.borrow_mut().state = session::State::Closed;
                        h.outbound.close(1002, "protocol violation");
                        self.session_gone(&h);
                    }
                }
                Action::Kill {
                    session,
                    reason,
                    message,
                } => {
                    if let Some(h) = self.session(session) {
                        let mut out = Vec::new();
                        h.core
                            .borrow_mut()
                            .close_with_goodbye(&reason, &message, &mut out);
                        self.apply_session_outputs(&h, &mut out);
                    }
                }
            }
        }
    }

    /// One message to one local session: encoded for its serializer (moved to an in-process
    /// one), through the slow-consumer policy. True when it was queued.
    fn send_one(&self, to: Id, msg: Message) -> bool {
        let Some(h) = self.session(to) else {
            return false;
        };
        self.metrics.count_limit_error(&msg);
        let code = msg.code();
        let frame = if h.local {
            // Moved, not copied (SessionHandle::frame would clone it).
            let size = crate::net::inproc::approx_size(&msg);
            OutFrame::Local(Arc::new(msg), size)
        } else {
            if code == codec::code::EVENT && self.shed_event(&h) {
                return false;
            }
            // Encoded straight into the buffer the writer sends (RawSocket).
            let framed = self.push_framed(
                &h,
                code,
                |buf| codec::encode_into(h.serializer, &msg, buf),
                || {
                    let _ = self.too_big_for_peer(&h, &msg);
                },
            );
            if let Some(queued) = framed {
                return queued;
            }
            let b = codec::encode(h.serializer, &msg);
            if b.len() > h.peer_max {
                let _ = self.too_big_for_peer(&h, &msg);
                return false;
            }
            OutFrame::Message(b)
        };
        self.deliver(&h, frame, code)
    }

    /// One message to several local sessions (an EVENT): encoded once per serializer, the
    /// frame shared between recipients; in-process recipients share the message itself.
    /// Returns how many were queued.
    fn send_shared(&self, to: Vec<Id>, msg: &Arc<Message>) -> usize {
        let mut frames: [Option<bytes::Bytes>; codec::Serializer::ALL.len()] = Default::default();
        let mut local_size = None;
        let message_code = msg.code();
        let mut queued = 0;
        for id in to {
            let Some(h) = self.session(id) else {
                continue;
            };
            // Before the frame is encoded: a stuck subscriber costs no encoding.
            if message_code == codec::code::EVENT && self.shed_event(&h) {
                continue;
            }
            let frame = if h.local {
                let size = *local_size.get_or_insert_with(|| crate::net::inproc::approx_size(msg));
                OutFrame::Local(msg.clone(), size)
            } else {
                let b = frames[h.serializer.index()]
                    .get_or_insert_with(|| codec::encode(h.serializer, msg));
                // Copied into the writer's framed buffer now rather than by the writer later
                // (RawSocket): the frame list and the shared frame's reference count are skipped.
                let framed = self.push_framed(
                    &h,
                    message_code,
                    |buf| buf.extend_from_slice(b),
                    // Counted, not sent (nobody to answer).
                    || self.metrics.limit_exceeded.inc(Limit::PeerMessageSize),
                );
                match framed {
                    Some(q) => {
                        queued += usize::from(q);
                        continue;
                    }
                    None => OutFrame::Message(b.clone()),
                }
            };
            if self.deliver(&h, frame, message_code) {
                queued += 1;
            }
        }
        queued
    }

    /// Events the routing core dropped for shedding sessions: into the shard's count.
    fn count_shed(&self) {
        if let Some(n) = self.shedding.as_ref().map(|s| s.take_dropped()) {
            if n > 0 {
                self.metrics.events_dropped.add(n);
            }
        }
    }

    /// Calls the routing core answered: into the call latency histogram.
    fn observe_call_times(&self, r: &mut RealmShard) {
        r.drain_call_times(|d| self.metrics.call_latency.observe(d));
    }

    /// Runs one handler of `realm`'s routing core, if the realm has one on this shard (`f`
    /// fills the action list), takes the call times it produced and applies its actions. (The
    /// per-message path, `route_to_realm`, does the same with the shard's spare action list.)
    pub(super) fn in_realm(&self, realm: &Uri, f: impl FnOnce(&mut RealmShard, &mut Vec<Action>)) {
        let mut actions = Vec::new();
        if let Some(r) = self.realms.borrow_mut().get_mut(realm) {
            f(r, &mut actions);
            self.observe_call_times(r);
        }
        self.count_shed();
        self.apply_actions(realm, actions);
    }

    fn on_peer(&self, realm: Uri, from: usize, msg: PeerMsg) {
        self.in_realm(&realm, |r, actions| {
            r.on_peer(from, msg, Instant::now(), actions)
        });
    }

    fn on_cluster(&self, realm: Uri, msg: crate::routing::cluster::ClusterIn) {
        self.in_realm(&realm, |r, actions| {
            r.on_cluster(msg, Instant::now(), actions)
        });
    }

    fn tick(&self) {
        let now = Instant::now();
        for (name, r) in self.realms.borrow().iter() {
            if let Some(m) = self.metrics.realm(name) {
                m.history_events.set(r.broker().history_total() as u64);
                m.retained_events.set(r.broker().retained_count() as u64);
            }
        }
        let due: Vec<Uri> = self
            .realms
            .borrow()
            .iter()
            .filter(|(_, r)| r.next_deadline().is_some_and(|d| d <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for realm in due {
            self.in_realm(&realm, |r, actions| r.on_tick(now, actions));
        }
        self.flush_mesh();
    }

    /// Closes every session with GOODBYE `wamp.close.system_shutdown`, waits (bounded) for the
    /// replies and the flush.
    async fn shutdown(&self) {
        self.shutting_down.set(true);
        let sessions: Vec<_> = self.sessions.borrow().values().cloned().collect();
        for h in &sessions {
            let mut out = Vec::new();
            h.core.borrow_mut().close_with_goodbye(
                "wamp.close.system_shutdown",
                "router is shutting down",
                &mut out,
            );
            for o in out {
                match o {
                    SessionOutput::Reply(m) => {
                        let _ = self.push_reply(h, &m);
                    }
                    SessionOutput::Close => h.outbound.close(1001, "shutdown"),
                    _ => {}
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.sessions.borrow().is_empty() && Instant::now() < deadline {
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
        // Whoever did not answer GOODBYE: flush what is queued and close.
        let rest: Vec<_> = self.sessions.borrow().values().cloned().collect();
        for h in &rest {
            h.outbound.close(1001, "shutdown");
        }
        let deadline = Instant::now() + Duration::from_millis(500);
        while rest.iter().any(|h| !h.done.is_set()) && Instant::now() < deadline {
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
    }
}
