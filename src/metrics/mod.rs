//! Metrics: per-shard counters that the shards write without locks and a std thread reads.
//!
//! Each shard owns one [`ShardMetrics`] in an `Arc`. Only that shard's thread writes it, so a
//! counter is a single-writer `AtomicU64`: `load` + `store` with `Relaxed` ordering, no locked
//! read-modify-write instruction on the hot path. The metrics thread ([`http`]) reads every
//! shard's struct when scraped and renders Prometheus text ([`prometheus`]). A scrape may see
//! values a few increments old, never torn ones.
//!
//! Data flow: the connection driver counts bytes and decoded messages, the shard counts what
//! it routes, delivers, drops and sends across the mesh; [`RouterMetrics`] gathers the shards'
//! structs for the scraper and answers the health probe.
//!
//! The outbound queue and the writer task have no reference to their shard (a pointer per idle
//! session is memory we do not want to spend), so they reach their shard's metrics through a
//! thread-local set when the shard starts ([`install_local`], [`with_local`]): a shard is one
//! thread, so the thread-local *is* the shard.

pub mod http;
pub mod process;
pub mod prometheus;

use crate::auth::{AuthMethod, FailReason};
use crate::codec::{code, Message};
use std::cell::OnceCell;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A monotonically increasing count. Written by one thread only (its shard).
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds `n`. Single writer: a plain load and store, no atomic read-modify-write.
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }
}

/// A value that goes up and down. Written by one thread only (its shard).
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    #[inline]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// Subtracts `n`, stopping at 0 (a gauge never wraps to 2^64 - 1 on a miscount).
    #[inline]
    pub fn sub(&self, n: u64) {
        self.0
            .store(self.0.load(Relaxed).saturating_sub(n), Relaxed);
    }

    #[inline]
    pub fn inc(&self) {
        self.add(1);
    }

    #[inline]
    pub fn dec(&self) {
        self.sub(1);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Relaxed)
    }

    #[inline]
    pub fn set(&self, n: u64) {
        self.0.store(n, Relaxed);
    }
}

/// Upper bounds of the call latency buckets, in microseconds (Prometheus `le`, inclusive).
pub const LATENCY_BOUNDS_US: [u64; 17] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 2_500_000, 5_000_000, 10_000_000,
];

/// A fixed-bucket histogram of durations (single writer).
#[derive(Debug, Default)]
pub struct Histogram {
    /// Non-cumulative counts; the last slot is `+Inf`. Rendered cumulatively.
    buckets: [Counter; LATENCY_BOUNDS_US.len() + 1],
    sum_ns: Counter,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let slot = LATENCY_BOUNDS_US
            .iter()
            .position(|&b| ns <= b * 1_000)
            .unwrap_or(LATENCY_BOUNDS_US.len());
        self.buckets[slot].inc();
        self.sum_ns.add(ns);
    }

    /// Cumulative counts per bound (the last one is `+Inf`, equal to the total count).
    pub fn cumulative(&self) -> [u64; LATENCY_BOUNDS_US.len() + 1] {
        let mut out = [0; LATENCY_BOUNDS_US.len() + 1];
        let mut acc = 0;
        for (o, b) in out.iter_mut().zip(&self.buckets) {
            acc += b.get();
            *o = acc;
        }
        out
    }

    /// Sum of the observed durations, in seconds.
    pub fn sum_seconds(&self) -> f64 {
        self.sum_ns.get() as f64 / 1e9
    }
}

/// Every WAMP message type, in the order the metrics list them.
pub const MESSAGE_TYPES: [u64; 25] = [
    code::HELLO,
    code::WELCOME,
    code::ABORT,
    code::CHALLENGE,
    code::AUTHENTICATE,
    code::GOODBYE,
    code::ERROR,
    code::PUBLISH,
    code::PUBLISHED,
    code::SUBSCRIBE,
    code::SUBSCRIBED,
    code::UNSUBSCRIBE,
    code::UNSUBSCRIBED,
    code::EVENT,
    code::EVENT_RECEIVED,
    code::CALL,
    code::CANCEL,
    code::RESULT,
    code::REGISTER,
    code::REGISTERED,
    code::UNREGISTER,
    code::UNREGISTERED,
    code::INVOCATION,
    code::INTERRUPT,
    code::YIELD,
];

/// The slot of a message type in [`MESSAGE_TYPES`] (a jump table; unknown codes share the last
/// slot, which is never rendered because the codec rejects them).
#[inline]
fn type_slot(c: u64) -> usize {
    match c {
        code::HELLO => 0,
        code::WELCOME => 1,
        code::ABORT => 2,
        code::CHALLENGE => 3,
        code::AUTHENTICATE => 4,
        code::GOODBYE => 5,
        code::ERROR => 6,
        code::PUBLISH => 7,
        code::PUBLISHED => 8,
        code::SUBSCRIBE => 9,
        code::SUBSCRIBED => 10,
        code::UNSUBSCRIBE => 11,
        code::UNSUBSCRIBED => 12,
        code::EVENT => 13,
        code::EVENT_RECEIVED => 14,
        code::CALL => 15,
        code::CANCEL => 16,
        code::RESULT => 17,
        code::REGISTER => 18,
        code::REGISTERED => 19,
        code::UNREGISTER => 20,
        code::UNREGISTERED => 21,
        code::INVOCATION => 22,
        code::INTERRUPT => 23,
        code::YIELD => 24,
        _ => 25,
    }
}

/// Counts per message type.
#[derive(Debug, Default)]
pub struct ByType([Counter; MESSAGE_TYPES.len() + 1]);

impl ByType {
    #[inline]
    pub fn inc(&self, message_code: u64) {
        self.0[type_slot(message_code)].inc();
    }

    /// The count for one message type.
    pub fn get(&self, message_code: u64) -> u64 {
        self.0[type_slot(message_code)].get()
    }

    /// The sum over all types.
    pub fn total(&self) -> u64 {
        self.0.iter().map(Counter::get).sum()
    }
}

/// A limit protecting the router from peers (the `limit` label of
/// `switchyard_limit_exceeded_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A message over `--max-message-size-ws` / `--max-message-size-rs` (on the wire).
    MessageSize,
    /// A message for a peer larger than the peer accepts (its RawSocket handshake): not sent.
    PeerMessageSize,
    /// A permessage-deflate message that inflates past `--max-decompressed-size-ws`.
    DecompressedSize,
    /// TLS + transport handshake not done within `--handshake-timeout-ms`.
    HandshakeTimeout,
    /// No HELLO within `--hello-timeout-ms`.
    HelloTimeout,
    /// A message not complete within `--frame-timeout-ms` of its first byte (session closed).
    FrameTimeout,
    /// A joined session silent for `--idle-timeout-ms` (session closed).
    IdleTimeout,
    /// A joined session that answered no transport ping within `--ping-interval-ms` (closed).
    PingTimeout,
    /// A connection beyond `--max-connections`.
    Connections,
    /// A CALL beyond `--max-pending-calls-per-session`.
    PendingCalls,
    /// A SUBSCRIBE beyond `--max-subscriptions-per-session`.
    Subscriptions,
    /// A REGISTER beyond `--max-registrations-per-session`.
    Registrations,
}

impl Limit {
    /// Every limit, in the order the metrics list them.
    pub const ALL: [Limit; 12] = [
        Limit::MessageSize,
        Limit::PeerMessageSize,
        Limit::DecompressedSize,
        Limit::HandshakeTimeout,
        Limit::HelloTimeout,
        Limit::FrameTimeout,
        Limit::IdleTimeout,
        Limit::PingTimeout,
        Limit::Connections,
        Limit::PendingCalls,
        Limit::Subscriptions,
        Limit::Registrations,
    ];

    /// The `limit` label value.
    pub fn label(self) -> &'static str {
        match self {
            Limit::MessageSize => "message_size",
            Limit::PeerMessageSize => "peer_message_size",
            Limit::DecompressedSize => "decompressed_size",
            Limit::HandshakeTimeout => "handshake_timeout",
            Limit::HelloTimeout => "hello_timeout",
            Limit::FrameTimeout => "frame_timeout",
            Limit::IdleTimeout => "idle_timeout",
            Limit::PingTimeout => "ping_timeout",
            Limit::Connections => "connections",
            Limit::PendingCalls => "pending_calls",
            Limit::Subscriptions => "subscriptions",
            Limit::Registrations => "registrations",
        }
    }

    /// The per-session routing limit a `switchyard.error.limit_exceeded` ERROR answering a
    /// request of type `request_type` reports.
    pub fn of_request(request_type: u64) -> Option<Limit> {
        match request_type {
            code::CALL => Some(Limit::PendingCalls),
            code::SUBSCRIBE => Some(Limit::Subscriptions),
            code::REGISTER => Some(Limit::Registrations),
            _ => None,
        }
    }
}

/// Counts per [`Limit`].
#[derive(Debug, Default)]
pub struct ByLimit([Counter; Limit::ALL.len()]);

impl ByLimit {
    #[inline]
    pub fn inc(&self, l: Limit) {
        self.0[l as usize].inc();
    }

    pub fn get(&self, l: Limit) -> u64 {
        self.0[l as usize].get()
    }
}

/// Every authentication method, in [`ByAuthFailure`] slot order (after "none").
const AUTH_METHODS: [AuthMethod; 7] = [
    AuthMethod::Anonymous,
    AuthMethod::Ticket,
    AuthMethod::WampCra,
    AuthMethod::Cryptosign,
    AuthMethod::WampScram,
    AuthMethod::Tls,
    AuthMethod::Cookie,
];

/// Failed logins per (method, [`FailReason`]); method None: no offered method was available.
#[derive(Debug, Default)]
pub struct ByAuthFailure([Counter; (AUTH_METHODS.len() + 1) * FailReason::ALL.len()]);

impl ByAuthFailure {
    fn slot(method: Option<AuthMethod>, reason: FailReason) -> usize {
        let m = method.map_or(0, |m| 1 + m as usize);
        m * FailReason::ALL.len() + reason as usize
    }

    pub fn inc(&self, method: Option<AuthMethod>, reason: FailReason) {
        self.0[Self::slot(method, reason)].inc();
    }

    pub fn get(&self, method: Option<AuthMethod>, reason: FailReason) -> u64 {
        self.0[Self::slot(method, reason)].get()
    }

    /// The series to render: the ones a login can produce (no_matching_method without a
    /// method; the challenge-response methods with each other reason), always, so a dashboard
    /// sees zeros; any other pair once it is non-zero.
    pub fn series(&self) -> impl Iterator<Item = (&'static str, FailReason, u64)> + '_ {
        let methods = std::iter::once(None).chain(AUTH_METHODS.into_iter().map(Some));
        methods.flat_map(move |m| {
            FailReason::ALL.into_iter().filter_map(move |r| {
                let n = self.get(m, r);
                let expected = match (m, r) {
                    (None, FailReason::NoMatchingMethod) => true,
                    (None, _) | (Some(_), FailReason::NoMatchingMethod) => false,
                    (Some(m), _) => matches!(
                        m,
                        AuthMethod::Ticket
                            | AuthMethod::WampCra
                            | AuthMethod::Cryptosign
                            | AuthMethod::WampScram
                    ),
                };
                (expected || n > 0).then(|| (m.map_or("none", AuthMethod::as_str), r, n))
            })
        })
    }
}

/// Counters of one realm on one shard.
#[derive(Debug)]
pub struct RealmMetrics {
    pub name: String,
    /// Sessions joined to this realm on this shard.
    pub sessions: Gauge,
    /// Messages from this realm's sessions handed to its broker or dealer.
    pub messages_in: Counter,
    /// Messages the broker or dealer of this realm queued for sessions of this shard.
    pub messages_out: Counter,
    /// Events event history keeps on this shard (the home shard of each rule), set each tick.
    pub history_events: Gauge,
    /// Retained events in this shard's replica, set each tick.
    pub retained_events: Gauge,
}

/// Where a shard is in its life, for the health probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ShardState {
    Starting = 0,
    Running = 1,
    Stopping = 2,
    Stopped = 3,
}

/// One shard's counters. Written only by that shard's thread; read by the metrics thread.
// Aligned to a cache line so that two shards' structs never share one.
#[repr(align(64))]
#[derive(Debug)]
pub struct ShardMetrics {
    pub shard: usize,
    state: AtomicU8,
    /// Milliseconds since `epoch` at the shard's last timer tick: a stalled shard stops it.
    heartbeat_ms: AtomicU64,
    epoch: Instant,
    /// Open transports (after accept, before close), established or not.
    pub connections: Gauge,
    /// Open HTTP long-poll transports whose session runs on this shard.
    pub longpoll_transports: Gauge,
    /// Decoded WAMP messages received, by type.
    pub messages_in: ByType,
    /// WAMP messages queued for sessions, by type (events dropped by the slow-consumer policy
    /// are counted in `events_dropped`, not here).
    pub messages_out: ByType,
    /// Transport bytes read (handshakes and framing included).
    pub bytes_in: Counter,
    /// Transport bytes written (framing included).
    pub bytes_out: Counter,
    /// Events not queued because the subscriber's outbound queue was full (policy `drop`).
    pub events_dropped: Counter,
    /// Sessions closed because their outbound queue was full.
    pub slow_consumer_disconnects: Counter,
    /// Bytes queued in the outbound queues of this shard's sessions.
    pub outbound_queue_bytes: Gauge,
    /// Messages this shard pushed to other shards' inboxes.
    pub mesh_sent: Counter,
    /// Messages this shard took from its inbox (from shards and the control thread).
    pub mesh_received: Counter,
    /// Times a session's reading paused because another shard's inbox was backlogged.
    pub backpressure_pauses: Counter,
    /// Time from a session's CALL to the final RESULT or ERROR it receives.
    pub call_latency: Histogram,
    /// Failed logins, by method and reason ([`ShardMetrics::auth_failure`]).
    pub auth_failures: ByAuthFailure,
    /// Times a peer hit a limit, by limit.
    pub limit_exceeded: ByLimit,
    /// Messages refused by authorization (`wamp.error.not_authorized`).
    pub authz_denials: Counter,
    pub realms: Box<[RealmMetrics]>,
}

impl ShardMetrics {
    pub fn new(shard: usize, realms: &[&str], epoch: Instant) -> Self {
        ShardMetrics {
            shard,
            state: AtomicU8::new(ShardState::Starting as u8),
            heartbeat_ms: AtomicU64::new(0),
            epoch,
            connections: Gauge::default(),
            longpoll_transports: Gauge::default(),
            messages_in: ByType::default(),
            messages_out: ByType::default(),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            events_dropped: Counter::default(),
            slow_consumer_disconnects: Counter::default(),
            outbound_queue_bytes: Gauge::default(),
            mesh_sent: Counter::default(),
            mesh_received: Counter::default(),
            backpressure_pauses: Counter::default(),
            call_latency: Histogram::default(),
            auth_failures: ByAuthFailure::default(),
            limit_exceeded: ByLimit::default(),
            authz_denials: Counter::default(),
            realms: realms
                .iter()
                .map(|n| RealmMetrics {
                    name: (*n).to_owned(),
                    sessions: Gauge::default(),
                    messages_in: Counter::default(),
                    messages_out: Counter::default(),
                    history_events: Gauge::default(),
                    retained_events: Gauge::default(),
                })
                .collect(),
        }
    }

    /// The counters of a realm (a short linear scan: routers serve a handful of realms).
    #[inline]
    pub fn realm(&self, name: &str) -> Option<&RealmMetrics> {
        self.realms.iter().find(|r| r.name == name)
    }

    /// Where [`ShardMetrics::realm`] finds `name` in `realms`, to keep instead of the name.
    pub fn realm_index(&self, name: &str) -> Option<usize> {
        self.realms.iter().position(|r| r.name == name)
    }

    /// The counters at an index [`ShardMetrics::realm_index`] gave.
    pub fn realm_at(&self, index: Option<usize>) -> Option<&RealmMetrics> {
        index.and_then(|i| self.realms.get(i))
    }

    /// Counts a limit-exceeded ERROR the routing core answered with (anything else: nothing).
    #[inline]
    pub fn count_limit_error(&self, msg: &Message) {
        if let Message::Error(e) = msg {
            if e.error.as_str() == crate::routing::realm::errors::LIMIT_EXCEEDED {
                if let Some(l) = Limit::of_request(e.request_type) {
                    self.limit_exceeded.inc(l);
                }
            }
        }
    }

    /// One failed login on this shard.
    pub fn auth_failure(&self, method: Option<AuthMethod>, reason: FailReason) {
        self.auth_failures.inc(method, reason);
    }

    pub fn set_state(&self, s: ShardState) {
        self.state.store(s as u8, Relaxed);
    }

    pub fn state(&self) -> ShardState {
        match self.state.load(Relaxed) {
            0 => ShardState::Starting,
            1 => ShardState::Running,
            2 => ShardState::Stopping,
            _ => ShardState::Stopped,
        }
    }

    /// Called from the shard's timer: proves the shard's loop still turns.
    pub fn heartbeat(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.heartbeat_ms.store(ms, Relaxed);
    }

    /// Time since the last heartbeat.
    pub fn heartbeat_age(&self, now: Instant) -> Duration {
        let now_ms = u64::try_from(now.saturating_duration_since(self.epoch).as_millis())
            .unwrap_or(u64::MAX);
        Duration::from_millis(now_ms.saturating_sub(self.heartbeat_ms.load(Relaxed)))
    }
}

/// Marks its shard stopped when dropped (the shard's main future ended or unwound).
pub struct StoppedOnDrop(pub Arc<ShardMetrics>);

impl Drop for StoppedOnDrop {
    fn drop(&mut self) {
        self.0.set_state(ShardState::Stopped);
    }
}

/// A shard whose heartbeat is older than this is reported unhealthy.
pub const STALL_LIMIT: Duration = Duration::from_secs(5);

/// What the metrics thread reads: every shard's counters, plus process-level readings.
pub struct RouterMetrics {
    pub shards: Vec<Arc<ShardMetrics>>,
    pub started: Instant,
    /// Messages queued in shard `i`'s inbox and not yet taken (read from the mesh).
    pub mesh_backlog: Box<dyn Fn(usize) -> u64 + Send + Sync>,
    /// The cluster bridge's counters, when the router is a node of a cluster.
    pub cluster: Option<Arc<ClusterMetrics>>,
}

/// A cluster node's traffic and state (written by the cluster bridge thread, read by
/// `/metrics` and `/health`).
#[derive(Debug, Default)]
pub struct ClusterMetrics {
    /// This node's ID.
    pub node: u16,
    /// 1 while connected to NATS.
    pub connected: AtomicU64,
    /// Other nodes seen alive (heartbeat within the node timeout).
    pub nodes: AtomicU64,
    /// Messages and payload bytes published to NATS, by kind (see [`ClusterKind`]).
    pub messages_out: [AtomicU64; ClusterKind::COUNT],
    pub bytes_out: [AtomicU64; ClusterKind::COUNT],
    /// Messages and payload bytes received from NATS, by kind.
    pub messages_in: [AtomicU64; ClusterKind::COUNT],
    pub bytes_in: [AtomicU64; ClusterKind::COUNT],
    /// Interest changes this node announced (registry operations).
    pub interest_changes: AtomicU64,
    /// Nodes that joined (first heartbeat, or a new incarnation) and left (timeout or goodbye).
    pub node_joins: AtomicU64,
    pub node_leaves: AtomicU64,
    /// Publications not sent because the bridge's queue was full (shards never wait on it).
    pub dropped: AtomicU64,
    /// Messages from other nodes that could not be read (wrong version, garbage).
    pub bad_messages: AtomicU64,
    /// Other nodes' sessions whose testaments and `on_leave` this node holds a copy of.
    pub remote_testaments: AtomicU64,
    /// Registry operations (JetStream key-value): claims granted, claims refused (conflict
    /// or registry unreachable), releases, and failed operations.
    pub registry_granted: AtomicU64,
    pub registry_refused: AtomicU64,
    pub registry_released: AtomicU64,
    pub registry_errors: AtomicU64,
    /// Copies of the registry bucket in sync as this node last saw them (0 until it has).
    pub registry_copies: AtomicU64,
    /// Calls failed because their callee's node could not be reached (bridge queue full,
    /// NATS unreachable, node gone).
    pub calls_failed: AtomicU64,
}

/// What a cluster message carries (a label of the cluster metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterKind {
    Publication = 0,
    Interest = 1,
    Heartbeat = 2,
    Sync = 3,
    /// The call protocol: invocations, results, errors, cancels between nodes.
    Call = 4,
}

impl ClusterKind {
    pub const COUNT: usize = 5;
    pub const ALL: [ClusterKind; 5] = [
        ClusterKind::Publication,
        ClusterKind::Interest,
        ClusterKind::Heartbeat,
        ClusterKind::Sync,
        ClusterKind::Call,
    ];

    pub fn label(self) -> &'static str {
        match self {
            ClusterKind::Publication => "publication",
            ClusterKind::Interest => "interest",
            ClusterKind::Heartbeat => "heartbeat",
            ClusterKind::Sync => "sync",
            ClusterKind::Call => "call",
        }
    }
}

impl ClusterMetrics {
    pub fn new(node: u16) -> Self {
        Self {
            node,
            ..Self::default()
        }
    }

    /// A message of `bytes` payload bytes sent to NATS.
    pub fn sent(&self, kind: ClusterKind, bytes: usize) {
        self.messages_out[kind as usize].fetch_add(1, Relaxed);
        self.bytes_out[kind as usize].fetch_add(bytes as u64, Relaxed);
    }

    /// A message of `bytes` payload bytes received from NATS.
    pub fn received(&self, kind: ClusterKind, bytes: usize) {
        self.messages_in[kind as usize].fetch_add(1, Relaxed);
        self.bytes_in[kind as usize].fetch_add(bytes as u64, Relaxed);
    }

    /// Whether the node is cut off from NATS (it still serves its local sessions).
    pub fn degraded(&self) -> bool {
        self.connected.load(Relaxed) == 0
    }
}

impl RouterMetrics {
    /// Why the router is up but not fully serving, if it is (a cluster node cut off from NATS
    /// still serves its local sessions: alive, not ready).
    pub fn degraded(&self) -> Option<String> {
        let c = self.cluster.as_ref()?;
        c.degraded()
            .then(|| format!("cluster degraded: node {} is not connected to NATS", c.node))
    }

    /// `Ok` while every shard runs and its loop turns; otherwise why not.
    pub fn health(&self) -> Result<(), String> {
        let now = Instant::now();
        for s in &self.shards {
            match s.state() {
                ShardState::Running => {}
                other => return Err(format!("shard {} is {:?}", s.shard, other)),
            }
            let age = s.heartbeat_age(now);
            if age > STALL_LIMIT {
                return Err(format!(
                    "shard {} has not ticked for {} ms",
                    s.shard,
                    age.as_millis()
                ));
            }
        }
        Ok(())
    }
}

thread_local! {
    /// The metrics of the shard running on this thread (none outside shards, e.g. unit tests).
    static LOCAL: OnceCell<Arc<ShardMetrics>> = const { OnceCell::new() };
}

/// Makes `m` this thread's shard metrics (called once when a shard starts).
pub fn install_local(m: Arc<ShardMetrics>) {
    LOCAL.with(|l| {
        let _ = l.set(m);
    });
}

/// Runs `f` with this thread's shard metrics, if the thread is a shard. (`try_with`: an
/// outbound queue dropped while the thread's locals are being destroyed counts nothing rather
/// than panicking in a destructor.)
#[inline]
pub fn with_local(f: impl FnOnce(&ShardMetrics)) {
    let _ = LOCAL.try_with(|l| {
        if let Some(m) = l.get() {
            f(m)
        }
    });
}

/// This thread's shard number, for log lines from code that has no shard at hand.
pub fn local_shard() -> Option<usize> {
    LOCAL.try_with(|l| l.get().map(|m| m.shard)).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_its_own_slot() {
        let mut seen = std::collections::HashSet::new();
        for c in MESSAGE_TYPES {
            assert!(seen.insert(type_slot(c)), "code {c}");
            assert!(type_slot(c) < MESSAGE_TYPES.len());
        }
        let b = ByType::default();
        b.inc(code::CALL);
        b.inc(code::CALL);
        b.inc(code::EVENT);
        assert_eq!(b.get(code::CALL), 2);
        assert_eq!(b.total(), 3);
    }

    #[test]
    fn histogram_buckets_are_inclusive_and_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50));
        h.observe(Duration::from_micros(51));
        h.observe(Duration::from_secs(60));
        let c = h.cumulative();
        assert_eq!(c[0], 1);
        assert_eq!(c[1], 2);
        assert_eq!(c[LATENCY_BOUNDS_US.len() - 1], 2);
        assert_eq!(c[LATENCY_BOUNDS_US.len()], 3);
        assert!((h.sum_seconds() - 60.000101).abs() < 1e-6);
    }

    #[test]
    fn limits_have_distinct_slots_and_labels() {
        let b = ByLimit::default();
        for (i, l) in Limit::ALL.iter().enumerate() {
            assert_eq!(*l as usize, i);
            for _ in 0..=i {
                b.inc(*l);
            }
        }
        for (i, l) in Limit::ALL.iter().enumerate() {
            assert_eq!(b.get(*l), i as u64 + 1, "{}", l.label());
        }
        let labels: std::collections::HashSet<_> = Limit::ALL.iter().map(|l| l.label()).collect();
        assert_eq!(labels.len(), Limit::ALL.len());
        assert_eq!(Limit::of_request(code::CALL), Some(Limit::PendingCalls));
        assert_eq!(Limit::of_request(code::PUBLISH), None);
    }

    #[test]
    fn gauge_does_not_wrap() {
        let g = Gauge::default();
        g.add(2);
        g.sub(5);
        assert_eq!(g.get(), 0);
    }

    #[test]
    fn health_needs_running_shards_that_tick() {
        let epoch = Instant::now();
        let s = Arc::new(ShardMetrics::new(0, &[], epoch));
        let rm = RouterMetrics {
            shards: vec![s.clone()],
            started: epoch,
            mesh_backlog: Box::new(|_| 0),
            cluster: None,
        };
        assert!(rm.health().is_err());
        s.set_state(ShardState::Running);
        s.heartbeat();
        assert!(rm.health().is_ok());
        drop(StoppedOnDrop(s.clone()));
        assert!(rm.health().unwrap_err().contains("Stopped"));
    }
}
