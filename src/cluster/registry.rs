//! The cluster-wide registry of procedures: which nodes serve `(realm, policy, procedure)`,
//! under which invocation policy and registration ID. A JetStream key-value bucket
//! (`C_registry`, on the servers' disks, `--cluster-replicas` copies) holds one key per procedure
//! ([`super::wire::registry_key`]) whose value is a [`Claim`]; every change is a
//! compare-and-set on the key's revision, so two nodes racing for a `single` registration
//! cannot both win.
//!
//! A node *claims* a procedure when its first local callee registers it (the home shard asks,
//! [`ClusterOut::Claim`](crate::routing::cluster::ClusterOut::Claim)) and *releases* it when
//! its last local callee leaves. The callees themselves are not in the registry: each node
//! announces its own to the others over the interest protocol, and calls are routed with
//! those replicas. The registry only decides who may serve a procedure.
//!
//! The worker here runs on the bridge's runtime and handles operations one at a time, in the
//! order the shards asked (a release and a new claim of the same procedure cannot overtake
//! each other). The bucket's copies are checked beside it, by a task that posts what it
//! found back as an operation: the gauge `switchyard_cluster_registry_copies`, and a bucket
//! created with fewer copies than asked (too few servers up) raised once they are there.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::StreamExt;

use super::wire::{registry_key, Subjects};
use super::ShardSink;
use crate::codec::uri::MatchPolicy;
use crate::codec::{Id, InvokePolicy, Uri};
use crate::metrics::ClusterMetrics;
use crate::routing::cluster::{Claim as ClaimRequest, ClaimResult, ClusterIn, NodeId};
use crate::routing::realm::errors;

/// A registry value: the procedure's invocation policy and registration ID (the first
/// claimant's), and the nodes serving it, each with its incarnation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub invoke: InvokePolicy,
    pub registration: Id,
    pub nodes: Vec<(NodeId, u64)>,
}

impl Claim {
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(32);
        let _ = rmp::encode::write_array_len(&mut out, 3);
        let _ = rmp::encode::write_str(&mut out, self.invoke.as_str());
        let _ = rmp::encode::write_uint(&mut out, self.registration);
        let _ = rmp::encode::write_array_len(&mut out, self.nodes.len() as u32);
        for (n, inc) in &self.nodes {
            let _ = rmp::encode::write_array_len(&mut out, 2);
            let _ = rmp::encode::write_uint(&mut out, u64::from(*n));
            let _ = rmp::encode::write_uint(&mut out, *inc);
        }
        Bytes::from(out)
    }

    /// None for anything unreadable (the key is then treated as taken by someone unknown).
    pub fn decode(mut b: &[u8]) -> Option<Claim> {
        if rmp::decode::read_array_len(&mut b).ok()? != 3 {
            return None;
        }
        let n = rmp::decode::read_str_len(&mut b).ok()? as usize;
        let s = b.get(..n)?;
        b = &b[n..];
        let invoke = InvokePolicy::parse(std::str::from_utf8(s).ok()?)?;
        let registration = rmp::decode::read_int(&mut b).ok()?;
        let count = rmp::decode::read_array_len(&mut b).ok()? as usize;
        if count > b.len() {
            return None;
        }
        let mut nodes = Vec::with_capacity(count);
        for _ in 0..count {
            if rmp::decode::read_array_len(&mut b).ok()? != 2 {
                return None;
            }
            let n: u64 = rmp::decode::read_int(&mut b).ok()?;
            let inc = rmp::decode::read_int(&mut b).ok()?;
            nodes.push((NodeId::try_from(n).ok()?, inc));
        }
        Some(Claim {
            invoke,
            registration,
            nodes,
        })
    }
}

/// What a claim by `me` (node, incarnation) for `invoke` makes of the key's current value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Granted, nothing to write (this incarnation holds it already).
    Held(Id),
    /// Granted once `value` is written (created, or updated at the read revision).
    Write(Claim),
    /// Refused with this error URI.
    Refuse(&'static str),
}

/// The claim rule (sans-IO): a free key is taken with `proposed` as the registration ID; a
/// held one is joined when both sides share the same shared invocation policy.
pub fn decide(
    current: Option<&Claim>,
    me: (NodeId, u64),
    invoke: InvokePolicy,
    proposed: Id,
) -> Decision {
    if let Some(c) = current.filter(|c| c.nodes.contains(&me)) {
        return Decision::Held(c.registration);
    }
    // Nodes other than this one (an older incarnation of it left the entry behind: ignored).
    let Some(c) = current.filter(|c| c.nodes.iter().any(|(n, _)| *n != me.0)) else {
        return Decision::Write(Claim {
            invoke,
            registration: proposed,
            nodes: vec![me],
        });
    };
    if c.invoke == InvokePolicy::Single || invoke == InvokePolicy::Single {
        return Decision::Refuse(errors::PROCEDURE_ALREADY_EXISTS);
    }
    if c.invoke != invoke {
        return Decision::Refuse(errors::DIFFERENT_INVOCATION_POLICY);
    }
    let mut next = c.clone();
    next.nodes.retain(|(n, _)| *n != me.0); // an older incarnation of this node
    next.nodes.push(me);
    Decision::Write(next)
}

/// What the shards and the bridge ask of the registry.
pub(super) enum Op {
    /// A home shard's claim, in its realm.
    Claim(Uri, ClaimRequest),
    Release {
        realm: Uri,
        policy: MatchPolicy,
        procedure: Uri,
    },
    /// Node `node` is gone: drop its claims, except those of incarnation `keep` (it came back).
    /// Every live node does it (idempotent); one that fails is tried again later (`attempt`).
    Purge {
        node: NodeId,
        keep: Option<u64>,
        attempt: u32,
    },
    /// (Re)connected to NATS: drop whatever an older state of this node left in the registry
    /// and claim again what it serves (a janitor may have dropped it while it was cut off, or
    /// the registry itself may have been lost).
    Connected,
    /// The other nodes alive (with their incarnations), sent once this node has been connected
    /// for a node timeout (it has heard every live node's heartbeat) and on every change after
    /// that; `None` when it is cut off again. A claim drops the entries of nodes not in it.
    Alive(Option<Vec<(NodeId, u64)>>),
    /// What a check of the bucket's copies found (its stream's info; `None` when the check
    /// failed, and whether the NATS server said it is not clustered), posted by the task
    /// [`Registry::run`] spawns for it.
    Copies {
        info: Option<Box<async_nats::jetstream::stream::Info>>,
        not_clustered: bool,
    },
}

/// How long a claim waits for the NATS connection before it is refused (at startup the
/// connection may not be up yet when the first clients register).
const WAIT_FOR_NATS: Duration = Duration::from_secs(2);
/// One registry operation at most, whatever it involves (JetStream round trips, retries): the
/// operations are handled one at a time, so a claim never waits long behind a cleanup.
const OP_TIMEOUT: Duration = Duration::from_secs(4);
/// One JetStream request at most.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Compare-and-set attempts before an operation gives up.
const ATTEMPTS: usize = 32;
/// A failed purge is tried again this many times, [`PURGE_RETRY`] apart (JetStream may be
/// electing a new leader for the bucket when a node dies with its NATS server).
const PURGE_ATTEMPTS: u32 = 10;
const PURGE_RETRY: Duration = Duration::from_secs(1);
/// What JetStream answers when a stream asks for copies on a server that is not clustered.
const NOT_CLUSTERED: &str = "not supported in non-clustered mode";
/// How long the bucket's creation waits for enough JetStream servers to place every copy
/// before it settles for fewer: the servers of a NATS cluster that starts together join the
/// JetStream meta group a moment apart, and a bucket created with fewer copies then would
/// lose its quorum with one server later.
const PLACEMENT_GRACE: Duration = Duration::from_secs(3);
/// The bucket's copies are checked this often while fewer than asked are in sync (and the
/// bucket raised to the full count when it has fewer), and [`CHECK_EVERY`] otherwise.
const RAISE_EVERY: Duration = Duration::from_secs(5);
const CHECK_EVERY: Duration = Duration::from_secs(30);
/// Failures to place every copy further apart than this start a new grace period.
const PLACEMENT_RUN_GAP: Duration = OP_TIMEOUT;

/// What this node holds: key → what it claimed (to claim again after a reconnection).
struct Held {
    realm: Uri,
    policy: MatchPolicy,
    procedure: Uri,
    invoke: InvokePolicy,
    registration: Id,
}

pub(super) struct Registry {
    pub client: async_nats::Client,
    pub subjects: Subjects,
    pub replicas: usize,
    pub me: (NodeId, u64),
    pub sink: Arc<dyn ShardSink>,
    pub metrics: Arc<ClusterMetrics>,
    /// The worker's own queue (a failed purge is queued again).
    again: tokio::sync::mpsc::UnboundedSender<Op>,
    store: Option<async_nats::jetstream::kv::Store>,
    held: HashMap<String, Held>,
    gave_up: bool,
    /// See [`Op::Alive`].
    alive: Option<Vec<(NodeId, u64)>>,
    /// Creating the bucket with every copy failed for want of servers: first and latest
    /// failure of the current run of them.
    short_since: Option<(Instant, Instant)>,
    /// The bucket has fewer copies in sync than asked.
    under_replicated: bool,
    /// The NATS server is not clustered: one copy is all it can keep.
    single_server: bool,
    /// When the copies are checked next (once the bucket is known), and whether a check is
    /// under way.
    next_check: Option<tokio::time::Instant>,
    checking: bool,
}

type Failure = String;

impl Registry {
    pub fn new(
        client: async_nats::Client,
        subjects: Subjects,
        replicas: usize,
        me: (NodeId, u64),
        sink: Arc<dyn ShardSink>,
        metrics: Arc<ClusterMetrics>,
        again: tokio::sync::mpsc::UnboundedSender<Op>,
    ) -> Self {
        Self {
            client,
            subjects,
            replicas,
            me,
            sink,
            metrics,
            again,
            store: None,
            held: HashMap::new(),
            gave_up: false,
            alive: None,
            short_since: None,
            under_replicated: false,
            single_server: false,
            next_check: None,
            checking: false,
        }
    }

    pub async fn run(mut self, mut rx: tokio::sync::mpsc::UnboundedReceiver<Op>) {
        loop {
            // The copies are checked when due, by a task of their own: a claim never waits
            // behind a check.
            let op = match self.next_check.filter(|_| !self.checking) {
                Some(due) => tokio::select! {
                    op = rx.recv() => op,
                    () = tokio::time::sleep_until(due) => {
                        self.spawn_check();
                        continue;
                    }
                },
                None => rx.recv().await,
            };
            let Some(op) = op else { break };
            let retry = match op {
                Op::Purge {
                    node,
                    keep,
                    attempt,
                } if attempt < PURGE_ATTEMPTS => Some(Op::Purge {
                    node,
                    keep,
                    attempt: attempt + 1,
                }),
                _ => None,
            };
            // Cleanup work is bounded as a whole (a claim answers on its own within bounds).
            let done = if matches!(op, Op::Claim(..)) {
                self.handle(op).await
            } else {
                match tokio::time::timeout(OP_TIMEOUT, self.handle(op)).await {
                    Ok(done) => done,
                    Err(_) => {
                        self.failed("timeout");
                        false
                    }
                }
            };
            if let (false, Some(op)) = (done, retry) {
                let again = self.again.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(PURGE_RETRY).await;
                    let _ = again.send(op);
                });
            }
        }
    }

    fn up(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// Waits for the NATS connection (bounded; after one wait that failed, later operations
    /// are refused at once until the connection is back).
    async fn connected(&mut self) -> bool {
        if self.up() {
            self.gave_up = false;
            return true;
        }
        if self.gave_up {
            return false;
        }
        let deadline = Instant::now() + WAIT_FOR_NATS;
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if self.up() {
                return true;
            }
        }
        self.gave_up = true;
        false
    }

    /// Whether the operation was carried out (a failed purge is tried again).
    async fn handle(&mut self, op: Op) -> bool {
        match op {
            Op::Claim(
                realm,
                ClaimRequest {
                    token,
                    shard,
                    policy,
                    procedure,
                    invoke,
                    registration,
                },
            ) => {
                let key = registry_key(&realm, policy, &procedure);
                let result = if self.connected().await {
                    self.claim_retrying(&key, invoke, registration).await
                } else {
                    ClaimResult::Refused(errors::CLUSTER_UNAVAILABLE)
                };
                match result {
                    ClaimResult::Granted(id) => {
                        self.metrics.registry_granted.fetch_add(1, Relaxed);
                        self.held.insert(
                            key,
                            Held {
                                realm: realm.clone(),
                                policy,
                                procedure,
                                invoke,
                                registration: id,
                            },
                        );
                    }
                    ClaimResult::Refused(_) => {
                        self.metrics.registry_refused.fetch_add(1, Relaxed);
                    }
                }
                self.sink
                    .deliver(shard, vec![(realm, ClusterIn::Claimed { token, result })]);
                true
            }
            Op::Release {
                realm,
                policy,
                procedure,
            } => {
                let key = registry_key(&realm, policy, &procedure);
                self.held.remove(&key);
                // Cut off: the reconnection drops every claim of this node not held then.
                if self.up() {
                    let me = self.me;
                    self.release(&key, |n| n == me).await;
                }
                true
            }
            Op::Purge { node, keep, .. } => self.up() && self.purge(node, keep).await,
            Op::Alive(alive) => {
                self.alive = alive;
                true
            }
            Op::Copies {
                info,
                not_clustered,
            } => {
                self.checking = false;
                if not_clustered {
                    self.not_clustered();
                }
                if let Some(info) = info {
                    self.copies(&info);
                }
                self.schedule_check();
                true
            }
            Op::Connected => {
                let me = self.me;
                // Everything of this node not held now (older incarnations, releases made
                // while cut off), then what it holds, again.
                self.purge(me.0, None).await;
                let held: Vec<(String, InvokePolicy, Id)> = self
                    .held
                    .iter()
                    .map(|(k, h)| (k.clone(), h.invoke, h.registration))
                    .collect();
                for (key, invoke, id) in held {
                    match tokio::time::timeout(OP_TIMEOUT, self.claim(&key, invoke, id)).await {
                        Ok(Ok(ClaimResult::Granted(_))) => {}
                        Ok(Ok(ClaimResult::Refused(e))) => {
                            if let Some(h) = self.held.get(&key) {
                                tracing::warn!(
                                    node = me.0,
                                    "cluster: after reconnecting, {} {:?} in realm {} is held by another node ({e}); this node keeps serving its own callees of it",
                                    h.policy.as_str(),
                                    h.procedure.as_str(),
                                    h.realm.as_str()
                                );
                            }
                            self.metrics.registry_refused.fetch_add(1, Relaxed);
                        }
                        Ok(Err(e)) => self.failed(&e),
                        Err(_) => self.failed("timeout"),
                    }
                }
                true
            }
        }
    }

    /// A claim, tried again (for at most [`OP_TIMEOUT`] in all) while JetStream cannot
    /// answer: just after the NATS servers start or one of them fails over, JetStream elects
    /// its leaders and refuses requests for a moment.
    async fn claim_retrying(
        &mut self,
        key: &str,
        invoke: InvokePolicy,
        proposed: Id,
    ) -> ClaimResult {
        let deadline = Instant::now() + OP_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let why = match tokio::time::timeout(left, self.claim(key, invoke, proposed)).await {
                Ok(Ok(r)) => return r,
                Ok(Err(e)) => e,
                Err(_) => "timeout".to_owned(),
            };
            if Instant::now() + Duration::from_millis(200) >= deadline || !self.up() {
                self.failed(&why);
                return ClaimResult::Refused(errors::CLUSTER_UNAVAILABLE);
            }
            self.store = None;
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn failed(&mut self, why: &str) {
        self.metrics.registry_errors.fetch_add(1, Relaxed);
        self.store = None; // look the bucket up again next time
        tracing::warn!(
            node = self.me.0,
            "cluster: registry operation failed: {why}"
        );
    }

    fn jetstream(&self) -> async_nats::jetstream::Context {
        let mut js = async_nats::jetstream::new(self.client.clone());
        js.set_timeout(REQUEST_TIMEOUT);
        js
    }

    /// Records the bucket's copies from its stream's info: the gauge counts those in sync
    /// (the leader and the replicas that are current).
    fn copies(&mut self, info: &async_nats::jetstream::stream::Info) {
        let placed = info.config.num_replicas.max(1); // 0 means 1 to JetStream
        let in_sync = match &info.cluster {
            Some(c) if c.leader.is_some() || !c.replicas.is_empty() => {
                usize::from(c.leader.is_some())
                    + c.replicas
                        .iter()
                        .filter(|p| p.current && !p.offline)
                        .count()
            }
            _ => placed, // JetStream not clustered: the one copy is the server's
        };
        self.metrics.registry_copies.store(in_sync as u64, Relaxed);
        let wanted = self.wanted();
        if placed < wanted && !self.under_replicated {
            tracing::warn!(
                node = self.me.0,
                "cluster: the registry bucket has {placed} of {wanted} copies (not enough NATS servers were up); the others are added when they are"
            );
        }
        self.under_replicated = in_sync < wanted;
    }

    /// The copies asked for, as far as the NATS servers can keep them.
    fn wanted(&self) -> usize {
        if self.single_server {
            1
        } else {
            self.replicas.max(1)
        }
    }

    /// The NATS server is not clustered: one copy is all it keeps.
    fn not_clustered(&mut self) {
        if !self.single_server {
            tracing::warn!(
                node = self.me.0,
                "cluster: the NATS server is not clustered; the registry keeps one copy, not {}",
                self.replicas
            );
            self.single_server = true;
        }
    }

    /// The next check of the copies: soon while fewer than asked are in sync.
    fn schedule_check(&mut self) {
        let every = if self.under_replicated {
            RAISE_EVERY
        } else {
            CHECK_EVERY
        };
        self.next_check = Some(tokio::time::Instant::now() + every);
    }

    /// Checks the bucket's copies in a task of its own, which raises the bucket to the count
    /// asked for when it has fewer and the servers up can place them now (JetStream adds the
    /// copies and fills them from the others). The result comes back as [`Op::Copies`].
    fn spawn_check(&mut self) {
        if !self.up() {
            self.schedule_check();
            return;
        }
        self.checking = true;
        let js = self.jetstream();
        let name = format!("KV_{}", self.subjects.registry_bucket());
        let wanted = self.wanted();
        let (again, node) = (self.again.clone(), self.me.0);
        tokio::spawn(async move {
            let mut not_clustered = false;
            let check = async {
                let info = js.get_stream(&name).await.ok()?.cached_info().clone();
                if info.config.num_replicas.max(1) >= wanted {
                    return Some(info);
                }
                let mut config = info.config.clone();
                config.num_replicas = wanted;
                match js.update_stream(&config).await {
                    Ok(raised) => {
                        tracing::info!(
                            node,
                            "cluster: the registry bucket now has {} copies",
                            raised.config.num_replicas
                        );
                        Some(raised)
                    }
                    Err(e) => {
                        let e = e.to_string();
                        not_clustered = e.contains(NOT_CLUSTERED);
                        tracing::debug!(node, "cluster: registry copies not added yet: {e}");
                        Some(info)
                    }
                }
            };
            let info = tokio::time::timeout(OP_TIMEOUT, check).await.ok().flatten();
            let _ = again.send(Op::Copies {
                info: info.map(Box::new),
                not_clustered,
            });
        });
    }

    /// The bucket, created on first use.
    async fn store(&mut self) -> Result<async_nats::jetstream::kv::Store, Failure> {
        if let Some(s) = &self.store {
            return Ok(s.clone());
        }
        if !self.up() {
            return Err("not connected to NATS".into());
        }
        let js = self.jetstream();
        let bucket = self.subjects.registry_bucket();
        if let Ok(s) = js.get_key_value(bucket.clone()).await {
            return Ok(self.found(s));
        }
        // Created with the copies asked for. When the servers up cannot place them all, it
        // waits PLACEMENT_GRACE for more to join, then settles for as many as they can (a
        // server of the NATS cluster may be down when the bucket is first needed); the
        // missing copies are added once the servers are there (`spawn_check`). A NATS server
        // that is not clustered keeps one copy.
        let full = self.wanted();
        let mut last = String::new();
        for replicas in (1..=full).rev() {
            let config = async_nats::jetstream::kv::Config {
                bucket: bucket.clone(),
                description: "Switchyard: which nodes serve which procedure".into(),
                history: 1,
                // On disk: a replicated bucket recovers when its servers restart (one
                // kept in memory loses its state and, replicated, cannot elect a
                // leader again).
                storage: async_nats::jetstream::stream::StorageType::File,
                num_replicas: replicas,
                ..Default::default()
            };
            match js.create_key_value(config).await {
                Ok(s) => return Ok(self.found(s)),
                Err(e) => {
                    last = e.to_string();
                    if last.contains(NOT_CLUSTERED) {
                        self.not_clustered();
                        continue;
                    }
                    if !last.contains("no suitable peers") {
                        break;
                    }
                    if replicas == full {
                        let now = Instant::now();
                        let first = match self.short_since {
                            Some((first, latest))
                                if now.duration_since(latest) < PLACEMENT_RUN_GAP =>
                            {
                                first
                            }
                            _ => now,
                        };
                        self.short_since = Some((first, now));
                        if now.duration_since(first) < PLACEMENT_GRACE {
                            return Err(format!(
                                "waiting for {full} JetStream servers to place the registry bucket {bucket}: {last}"
                            ));
                        }
                    }
                }
            }
        }
        Err(format!(
            "cannot create the key-value bucket {bucket} (is JetStream enabled on the NATS servers? nats-server -js): {last}"
        ))
    }

    /// The bucket found or created: kept, its copies recorded, their checks scheduled.
    fn found(&mut self, s: async_nats::jetstream::kv::Store) -> async_nats::jetstream::kv::Store {
        self.short_since = None;
        self.copies(s.stream.cached_info());
        if !self.checking {
            self.schedule_check();
        }
        self.store = Some(s.clone());
        s
    }

    /// The key's value and revision; None when free (absent, deleted, purged).
    async fn read(
        store: &async_nats::jetstream::kv::Store,
        key: &str,
    ) -> Result<Option<(Option<Claim>, u64)>, Failure> {
        use async_nats::jetstream::kv::Operation;
        match store.entry(key).await.map_err(|e| e.to_string())? {
            Some(e) if e.operation == Operation::Put => {
                Ok(Some((Claim::decode(&e.value), e.revision)))
            }
            _ => Ok(None),
        }
    }

    async fn claim(
        &mut self,
        key: &str,
        invoke: InvokePolicy,
        proposed: Id,
    ) -> Result<ClaimResult, Failure> {
        let store = self.store().await?;
        for _ in 0..ATTEMPTS {
            if !self.up() {
                return Err("not connected to NATS".into());
            }
            let current = Self::read(&store, key).await?;
            let Some((value, revision)) = current else {
                let claim = Claim {
                    invoke,
                    registration: proposed,
                    nodes: vec![self.me],
                };
                match store.create(key, claim.encode()).await {
                    Ok(_) => return Ok(ClaimResult::Granted(proposed)),
                    Err(_) => continue, // taken meanwhile (or a transient error): read again
                }
            };
            let Some(mut value) = value else {
                // Unreadable: someone else's, or garbage. Refuse rather than overwrite.
                return Ok(ClaimResult::Refused(errors::PROCEDURE_ALREADY_EXISTS));
            };
            if let Some(alive) = &self.alive {
                // Entries of nodes that are gone (died while the registry was unreachable,
                // so nobody removed them): not a conflict. The write below drops them.
                let me = self.me;
                value.nodes.retain(|n| n.0 == me.0 || alive.contains(n));
            }
            match decide(Some(&value), self.me, invoke, proposed) {
                Decision::Held(id) => return Ok(ClaimResult::Granted(id)),
                Decision::Refuse(e) => return Ok(ClaimResult::Refused(e)),
                Decision::Write(next) => {
                    if store.update(key, next.encode(), revision).await.is_ok() {
                        return Ok(ClaimResult::Granted(next.registration));
                    }
                }
            }
        }
        Err(format!("claim of {key}: too many concurrent changes"))
    }

    /// Removes the nodes `gone` selects from `key` (deleting the key when none is left);
    /// false if that could not be done.
    async fn release(&mut self, key: &str, gone: impl Fn((NodeId, u64)) -> bool) -> bool {
        let store = match self.store().await {
            Ok(s) => s,
            Err(e) => {
                self.failed(&e);
                return false;
            }
        };
        let client = self.client.clone();
        let work = async {
            for _ in 0..ATTEMPTS {
                if client.connection_state() != async_nats::connection::State::Connected {
                    return Err("not connected to NATS".to_string());
                }
                let Some((Some(mut value), revision)) = Self::read(&store, key).await? else {
                    return Ok(false);
                };
                let before = value.nodes.len();
                value.nodes.retain(|n| !gone(*n));
                if value.nodes.len() == before {
                    return Ok(false);
                }
                let done = if value.nodes.is_empty() {
                    store
                        .delete_expect_revision(key, Some(revision))
                        .await
                        .is_ok()
                } else {
                    store.update(key, value.encode(), revision).await.is_ok()
                };
                if done {
                    return Ok(true);
                }
            }
            Err(format!("release of {key}: too many concurrent changes"))
        };
        match tokio::time::timeout(OP_TIMEOUT, work).await {
            Ok(Ok(released)) => {
                if released {
                    self.metrics.registry_released.fetch_add(1, Relaxed);
                }
                true
            }
            Ok(Err(e)) => {
                self.failed(&e);
                false
            }
            Err(_) => {
                self.failed("timeout");
                false
            }
        }
    }

    /// Drops node `node`'s claims (except incarnation `keep`) from every key; false if that
    /// could not be done for every key.
    async fn purge(&mut self, node: NodeId, keep: Option<u64>) -> bool {
        let store = match self.store().await {
            Ok(s) => s,
            Err(e) => {
                self.failed(&e);
                return false;
            }
        };
        let keys = async {
            let mut keys = store.keys().await.map_err(|e| e.to_string())?;
            let mut all = Vec::new();
            while let Some(k) = keys.next().await {
                all.push(k.map_err(|e| e.to_string())?);
            }
            Ok::<_, Failure>(all)
        };
        let keys = match tokio::time::timeout(OP_TIMEOUT, keys).await {
            Ok(Ok(k)) => k,
            Ok(Err(e)) => {
                self.failed(&e);
                return false;
            }
            Err(_) => {
                self.failed("timeout listing the registry");
                return false;
            }
        };
        let me = self.me;
        let mut all = true;
        for key in keys {
            if !self.up() {
                return false;
            }
            // This node's own keys it still holds are kept (its current incarnation).
            let held = node == me.0 && self.held.contains_key(&key);
            let keep = if held { Some(me.1) } else { keep };
            all &= self
                .release(&key, |(n, inc)| n == node && Some(inc) != keep)
                .await;
        }
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_roundtrip_and_garbage_is_none() {
        let c = Claim {
            invoke: InvokePolicy::RoundRobin,
            registration: 1 << 50,
            nodes: vec![(1, 77), (2047, u64::MAX)],
        };
        let b = c.encode();
        assert_eq!(Claim::decode(&b), Some(c));
        for n in 0..b.len() {
            assert_eq!(Claim::decode(&b[..n]), None, "truncated at {n}");
        }
        assert_eq!(Claim::decode(b"\xff\x00"), None);
    }

    #[test]
    fn the_claim_rule() {
        use InvokePolicy::*;
        let held = |invoke, nodes: Vec<(NodeId, u64)>| Claim {
            invoke,
            registration: 5,
            nodes,
        };
        // Free (absent, or no node left): taken under the proposed ID.
        assert_eq!(
            decide(None, (1, 9), Single, 7),
            Decision::Write(held_with(Single, 7, vec![(1, 9)]))
        );
        assert_eq!(
            decide(Some(&held(Single, vec![])), (1, 9), RoundRobin, 7),
            Decision::Write(held_with(RoundRobin, 7, vec![(1, 9)]))
        );
        // Held by this incarnation: granted as is.
        assert_eq!(
            decide(Some(&held(Single, vec![(1, 9)])), (1, 9), Single, 7),
            Decision::Held(5)
        );
        // Another node: single never shares; shared needs the same policy.
        assert_eq!(
            decide(Some(&held(Single, vec![(2, 1)])), (1, 9), Single, 7),
            Decision::Refuse(errors::PROCEDURE_ALREADY_EXISTS)
        );
        assert_eq!(
            decide(Some(&held(RoundRobin, vec![(2, 1)])), (1, 9), Single, 7),
            Decision::Refuse(errors::PROCEDURE_ALREADY_EXISTS)
        );
        assert_eq!(
            decide(Some(&held(RoundRobin, vec![(2, 1)])), (1, 9), Random, 7),
            Decision::Refuse(errors::DIFFERENT_INVOCATION_POLICY)
        );
        assert_eq!(
            decide(Some(&held(RoundRobin, vec![(2, 1)])), (1, 9), RoundRobin, 7),
            Decision::Write(held_with(RoundRobin, 5, vec![(2, 1), (1, 9)]))
        );
        // An older incarnation of this node alone: taken afresh.
        assert_eq!(
            decide(Some(&held(Single, vec![(1, 3)])), (1, 9), Single, 7),
            Decision::Write(held_with(Single, 7, vec![(1, 9)]))
        );
        // An older incarnation of this node is replaced, the ID kept.
        assert_eq!(
            decide(
                Some(&held(RoundRobin, vec![(1, 3), (2, 1)])),
                (1, 9),
                RoundRobin,
                7
            ),
            Decision::Write(held_with(RoundRobin, 5, vec![(2, 1), (1, 9)]))
        );
    }

    fn held_with(invoke: InvokePolicy, registration: Id, nodes: Vec<(NodeId, u64)>) -> Claim {
        Claim {
            invoke,
            registration,
            nodes,
        }
    }
}
