//! The bridge thread: one NATS connection on a current-thread tokio runtime (see the module
//! docs of [`super`]).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_lite::StreamExt;

use super::members::{Members, Todo};
use super::registry::{Op, Registry};
use super::wire::{self, Entry, InterestKey, Msg, Subjects};
use super::{ClusterConfig, ShardSink};
use crate::codec::uri::MatchPolicy;
use crate::codec::{Payload, Uri, Value};
use crate::metrics::{ClusterKind, ClusterMetrics};
use crate::routing::cluster::{remote_shard, ClusterIn, ClusterOut, NodeId, RemoteCallee};
use crate::routing::peer::{PeerMsg, Publication};

enum Control {
    Interest(InterestKey, bool),
    /// A local callee joined (true) or left a registration.
    Callee(Uri, Arc<RemoteCallee>, bool),
    /// For the registry worker, in order.
    Registry(Op),
    /// A local session's testaments, encoded (empty: none any more).
    Testaments(Uri, u64, Vec<Bytes>),
    /// Say goodbye, then stop; the sender is told when done.
    Stop(std::sync::mpsc::Sender<()>),
}

/// A publication for `nodes` (every live node when `everywhere`).
type Outgoing = (Uri, Vec<NodeId>, Arc<Publication>, bool);
/// A call-protocol message for shard `.2` of node `.1`.
type OutCall = (Uri, NodeId, usize, PeerMsg);
/// A call-protocol message encoded for NATS, kept to fail its call if it cannot be sent.
type Encoded = (Bytes, PeerMsg, Uri);

/// The shards' side of the bridge: `Send + Clone`, never blocks.
#[derive(Clone)]
pub struct ClusterHandle {
    publications: tokio::sync::mpsc::Sender<Outgoing>,
    calls: tokio::sync::mpsc::Sender<OutCall>,
    control: tokio::sync::mpsc::UnboundedSender<Control>,
    metrics: Arc<ClusterMetrics>,
    sink: Arc<dyn ShardSink>,
}

/// The answer to an INVOCATION that cannot reach its callee's node: the caller's call fails
/// with `wamp.error.canceled` (delivered to the caller's shard, `shard`).
fn unreachable(msg: &PeerMsg) -> Option<(usize, ClusterIn)> {
    let PeerMsg::Invoke(i) = msg else {
        return None;
    };
    Some((
        i.caller_shard,
        ClusterIn::Peer(PeerMsg::call_error(
            i.caller,
            i.request,
            Default::default(),
            Uri::from(crate::routing::realm::errors::CANCELED),
            Payload::args(vec![Value::from(
                "the callee's cluster node cannot be reached",
            )]),
        )),
    ))
}

impl ClusterHandle {
    /// Hands an action of realm `realm` to the bridge.
    pub fn send(&self, realm: &Uri, out: ClusterOut) {
        match out {
            ClusterOut::Interest {
                policy,
                pattern,
                add,
            } => {
                let _ = self
                    .control
                    .send(Control::Interest((realm.clone(), policy, pattern), add));
            }
            ClusterOut::Testaments {
                session,
                testaments,
            } => {
                let _ = self.control.send(Control::Testaments(
                    realm.clone(),
                    session,
                    testaments.iter().map(wire::encode_testament).collect(),
                ));
            }
            ClusterOut::Publish {
                nodes,
                publication,
                everywhere,
            } => {
                if self
                    .publications
                    .try_send((realm.clone(), nodes, publication, everywhere))
                    .is_err()
                {
                    self.metrics.dropped.fetch_add(1, Relaxed);
                }
            }
            ClusterOut::Callee { add, callee } => {
                let _ = self
                    .control
                    .send(Control::Callee(realm.clone(), Arc::from(callee), add));
            }
            ClusterOut::Claim(claim) => {
                let op = Op::Claim(realm.clone(), claim);
                if let Err(e) = self.control.send(Control::Registry(op)) {
                    // The bridge stopped: answer at once rather than leave the REGISTER open.
                    if let Control::Registry(Op::Claim(_, c)) = e.0 {
                        let result = crate::routing::cluster::ClaimResult::Refused(
                            crate::routing::realm::errors::CLUSTER_UNAVAILABLE,
                        );
                        let answer = ClusterIn::Claimed {
                            token: c.token,
                            result,
                        };
                        self.sink.deliver(c.shard, vec![(realm.clone(), answer)]);
                    }
                }
            }
            ClusterOut::Release { policy, procedure } => {
                let _ = self.control.send(Control::Registry(Op::Release {
                    realm: realm.clone(),
                    policy,
                    procedure,
                }));
            }
            ClusterOut::Query {
                token,
                shard,
                query,
            } => {
                // Node 0 (no node has it): "every other node".
                let msg = PeerMsg::MetaQuery {
                    token,
                    from: shard,
                    query,
                };
                if self.calls.try_send((realm.clone(), 0, shard, msg)).is_err() {
                    // Answered with this node's sessions only.
                    let expect = ClusterIn::Expect { token, replies: 0 };
                    self.sink.deliver(shard, vec![(realm.clone(), expect)]);
                }
            }
            ClusterOut::Peer { node, shard, msg } => {
                if !wire::crosses_nodes(&msg) {
                    tracing::debug!("cluster: a peer message that never crosses nodes: {msg:?}");
                    return;
                }
                if let Err(e) = self.calls.try_send((realm.clone(), node, shard, msg)) {
                    let (_, _, _, msg) = e.into_inner();
                    self.metrics.calls_failed.fetch_add(1, Relaxed);
                    if let Some((shard, answer)) = unreachable(&msg) {
                        self.sink.deliver(shard, vec![(realm.clone(), answer)]);
                    }
                }
            }
        }
    }

    /// Says goodbye to the other nodes (they forget this node at once instead of after the
    /// node timeout) and stops the bridge; waits at most a second.
    pub fn stop(&self) {
        let (tx, rx) = std::sync::mpsc::channel();
        if self.control.send(Control::Stop(tx)).is_ok() {
            let _ = rx.recv_timeout(Duration::from_secs(1));
        }
    }

    pub fn metrics(&self) -> &Arc<ClusterMetrics> {
        &self.metrics
    }
}

/// Starts the bridge thread. The NATS connection is made in the background (and remade after
/// every loss): until it is up the node is *degraded* (see [`ClusterMetrics::degraded`]) and
/// serves its local sessions only.
pub fn start(
    cfg: ClusterConfig,
    realms: Vec<Uri>,
    sink: Arc<dyn ShardSink>,
) -> Result<ClusterHandle, String> {
    let metrics = Arc::new(ClusterMetrics::new(cfg.node_id));
    let (pub_tx, pub_rx) = tokio::sync::mpsc::channel(cfg.queue.max(1));
    let (call_tx, call_rx) = tokio::sync::mpsc::channel(cfg.queue.max(1));
    let (ctl_tx, ctl_rx) = tokio::sync::mpsc::unbounded_channel();
    let handle_sink = sink.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cluster: cannot start the bridge runtime: {e}"))?;
    let m = metrics.clone();
    std::thread::Builder::new()
        .name("switchyard-cluster".into())
        .spawn(move || {
            rt.block_on(async move {
                let bridge = Bridge::new(cfg, realms, sink, m);
                bridge.run(pub_rx, call_rx, ctl_rx).await;
            });
        })
        .map_err(|e| format!("cluster: cannot start the bridge thread: {e}"))?;
    Ok(ClusterHandle {
        publications: pub_tx,
        calls: call_tx,
        control: ctl_tx,
        metrics,
        sink: handle_sink,
    })
}

/// Whether the NATS connection is up.
fn up(client: &async_nats::Client) -> bool {
    client.connection_state() == async_nats::connection::State::Connected
}

/// Publications taken from the shards' queue per NATS message (per node).
const PUBLISH_BATCH: usize = 256;
/// A batch of publications stays below this many bytes (unless one publication is larger).
const BATCH_BYTES: usize = 256 * 1024;
/// Messages taken from the node's subscription before delivering to the shards.
const RECEIVE_BATCH: usize = 1024;

/// Snapshot chunks stay below this many bytes (NATS's default max payload is 1 MiB).
const SNAPSHOT_CHUNK: usize = 64 * 1024;

/// `first` and whatever else is queued already, at most [`PUBLISH_BATCH`] in all.
fn drain<T>(first: T, rx: &mut tokio::sync::mpsc::Receiver<T>) -> Vec<T> {
    let mut batch = vec![first];
    while batch.len() < PUBLISH_BATCH {
        match rx.try_recv() {
            Ok(x) => batch.push(x),
            Err(_) => break,
        }
    }
    batch
}

/// Appends `item` to node `n`'s share.
fn push_for<T>(per_node: &mut Vec<(NodeId, Vec<T>)>, n: NodeId, item: T) {
    match per_node.iter_mut().find(|(m, _)| *m == n) {
        Some((_, v)) => v.push(item),
        None => per_node.push((n, vec![item])),
    }
}

/// `parts` cut into runs of at most [`BATCH_BYTES`] (NATS refuses messages over its
/// max_payload, 1 MiB by default); a part larger than that alone.
fn chunks<T>(parts: Vec<T>, len: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut chunk = Vec::new();
    let mut size = 0;
    for p in parts {
        if !chunk.is_empty() && size + len(&p) > BATCH_BYTES {
            out.push(std::mem::take(&mut chunk));
            size = 0;
        }
        size += len(&p);
        chunk.push(p);
    }
    out.push(chunk);
    out
}

struct Bridge {
    cfg: ClusterConfig,
    subjects: Subjects,
    realms: HashSet<Uri>,
    sink: Arc<dyn ShardSink>,
    metrics: Arc<ClusterMetrics>,
    incarnation: u64,
    /// This node's interest (the union of its shards') and its change counter.
    interest: HashSet<InterestKey>,
    /// This node's callees, by (realm, policy, procedure, session).
    callees: HashMap<(Uri, MatchPolicy, Uri, u64), Arc<RemoteCallee>>,
    seq: u64,
    /// The registry worker's queue (its task starts with the connection).
    registry: Option<tokio::sync::mpsc::UnboundedSender<Op>>,
    members: Members,
    /// Per shard: what to deliver at the end of this turn.
    outbox: Vec<Vec<(Uri, ClusterIn)>>,
    /// Conflicting incarnations already reported (a duplicate node ID is logged once each).
    conflicts: HashSet<u64>,
    /// This node's sessions' testaments (encoded), and the number of the last change.
    testaments: HashMap<(Uri, u64), Vec<Bytes>>,
    testament_version: u64,
    /// The other nodes' sessions' testaments: node → (realm, session) → (version, entries;
    /// empty entries: removed, kept until `removed_at` + a minute so a stale copy cannot
    /// bring them back).
    remote_testaments: HashMap<NodeId, RemoteTestaments>,
}

#[derive(Default)]
struct RemoteTestaments {
    incarnation: u64,
    /// Versions up to this one were sent before the node's last reset: ignored.
    floor: u64,
    sessions: HashMap<(Uri, u64), RemoteCopy>,
}

/// One session's testaments as another node sent them: (version, entries, when removed).
type RemoteCopy = (u64, Vec<Bytes>, Option<Instant>);

impl Bridge {
    fn new(
        cfg: ClusterConfig,
        realms: Vec<Uri>,
        sink: Arc<dyn ShardSink>,
        metrics: Arc<ClusterMetrics>,
    ) -> Self {
        let incarnation = rand::random::<u64>() | 1;
        let members = Members::new(
            cfg.node_id,
            incarnation,
            cfg.node_timeout,
            cfg.heartbeat_interval() * 2,
        );
        let shards = sink.shard_count();
        Self {
            subjects: Subjects::new(&cfg.name),
            cfg,
            realms: realms.into_iter().collect(),
            sink,
            metrics,
            incarnation,
            interest: HashSet::new(),
            callees: HashMap::new(),
            seq: 0,
            registry: None,
            members,
            outbox: vec![Vec::new(); shards],
            conflicts: HashSet::new(),
            testaments: HashMap::new(),
            testament_version: 0,
            remote_testaments: HashMap::new(),
        }
    }

    fn options(&self) -> async_nats::ConnectOptions {
        let mut o = async_nats::ConnectOptions::new()
            .name(format!("switchyard node {}", self.cfg.node_id))
            .retry_on_initial_connect()
            .max_reconnects(None)
            // The servers in the order given: the first is preferred, the others are fallbacks.
            .retain_servers_order()
            .connection_timeout(Duration::from_secs(2))
            .ping_interval(Duration::from_secs(2))
            // Own messages never come back (a node's broadcasts are for the others).
            .no_echo()
            .subscription_capacity(65_536)
            .client_capacity(65_536)
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((100 * attempts as u64).min(1000))
            });
        if let Some(t) = &self.cfg.token {
            o = o.token(t.clone());
        }
        if let Some((u, p)) = &self.cfg.user {
            o = o.user_and_password(u.clone(), p.clone());
        }
        if let Some(ca) = &self.cfg.tls_ca {
            o = o.add_root_certificates(ca.clone()).require_tls(true);
        }
        o
    }

    async fn run(
        mut self,
        mut pub_rx: tokio::sync::mpsc::Receiver<Outgoing>,
        mut call_rx: tokio::sync::mpsc::Receiver<OutCall>,
        mut ctl_rx: tokio::sync::mpsc::UnboundedReceiver<Control>,
    ) {
        let client = match self.options().connect(self.cfg.urls.clone()).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(
                    "cluster: cannot use the NATS servers {:?}: {e}",
                    self.cfg.urls
                );
                return;
            }
        };
        let me = self.cfg.node_id;
        let (reg_tx, reg_rx) = tokio::sync::mpsc::unbounded_channel();
        let registry = Registry::new(
            client.clone(),
            self.subjects.clone(),
            self.cfg.replicas,
            (me, self.incarnation),
            self.sink.clone(),
            self.metrics.clone(),
            reg_tx.clone(),
        );
        tokio::spawn(registry.run(reg_rx));
        self.registry = Some(reg_tx);
        let subs = async {
            Ok::<_, async_nats::SubscribeError>((
                client.subscribe(self.subjects.heartbeat()).await?,
                client.subscribe(self.subjects.interest()).await?,
                client.subscribe(self.subjects.node_all(me)).await?,
            ))
        };
        let (mut hb_sub, mut int_sub, mut node_sub) = match subs.await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cluster: cannot subscribe: {e}");
                return;
            }
        };
        tracing::info!(
            node = me,
            cluster = %self.cfg.name,
            "cluster: node started (NATS {:?})",
            self.cfg.urls
        );
        let mut ticker = tokio::time::interval(self.cfg.heartbeat_interval());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut was_connected = false;
        let mut connected_since: Option<Instant> = None;
        let mut last_alive: Option<Vec<(NodeId, u64)>> = None;
        let mut todo = Vec::new();
        loop {
            tokio::select! {
                c = ctl_rx.recv() => match c {
                    Some(Control::Interest(key, add)) => {
                        self.local_interest(&client, key, add).await;
                    }
                    Some(Control::Testaments(realm, session, entries)) => {
                        self.local_testaments(&client, realm, session, entries).await;
                    }
                    Some(Control::Callee(realm, callee, add)) => {
                        self.local_callee(&client, realm, callee, add).await;
                    }
                    Some(Control::Registry(op)) => self.registry(op),
                    Some(Control::Stop(done)) => {
                        self.heartbeat(&client, true).await;
                        let _ = tokio::time::timeout(Duration::from_millis(500), client.flush()).await;
                        let _ = done.send(());
                        break;
                    }
                    None => break,
                },
                Some(m) = node_sub.next() => {
                    self.on_message(&client, &m.payload, &mut todo).await;
                    // Take what else has arrived before delivering: one mesh batch per shard.
                    for _ in 0..RECEIVE_BATCH {
                        match futures_lite::future::poll_once(node_sub.next()).await {
                            Some(Some(m)) => self.on_message(&client, &m.payload, &mut todo).await,
                            _ => break,
                        }
                    }
                }
                Some(m) = int_sub.next() => self.on_message(&client, &m.payload, &mut todo).await,
                Some(m) = hb_sub.next() => self.on_message(&client, &m.payload, &mut todo).await,
                Some(first) = pub_rx.recv() => {
                    // Everything already queued goes out in one NATS message per node.
                    let batch = drain(first, &mut pub_rx);
                    self.publish(&client, batch).await;
                }
                Some(first) = call_rx.recv() => {
                    let batch = drain(first, &mut call_rx);
                    self.send_calls(&client, batch).await;
                }
                _ = ticker.tick() => {
                    let connected =
                        client.connection_state() == async_nats::connection::State::Connected;
                    if connected != was_connected {
                        if connected {
                            tracing::info!(node = me, "cluster: connected to NATS");
                            self.resend_testaments(&client).await;
                            self.registry(Op::Connected);
                        } else {
                            tracing::warn!(
                                node = me,
                                "cluster: degraded: not connected to NATS; serving local sessions only"
                            );
                        }
                        was_connected = connected;
                    }
                    self.metrics.connected.store(u64::from(connected), Relaxed);
                    connected_since = match (connected, connected_since) {
                        (true, None) => Some(Instant::now()),
                        (true, since) => since,
                        (false, _) => None,
                    };
                    // The registry may drop claims of nodes not alive once this node has been
                    // connected long enough to have heard every live node.
                    let settled = connected_since
                        .is_some_and(|t| t.elapsed() >= self.cfg.node_timeout);
                    let alive = settled.then(|| {
                        let mut v: Vec<(NodeId, u64)> = self
                            .members
                            .alive_nodes()
                            .into_iter()
                            .filter_map(|(n, _)| Some((n, self.members.incarnation_of(n)?)))
                            .collect();
                        v.sort_unstable();
                        v
                    });
                    if alive != last_alive {
                        self.registry(Op::Alive(alive.clone()));
                        last_alive = alive;
                    }
                    self.heartbeat(&client, false).await;
                    self.sweep_testaments(Instant::now());
                    self.members.tick(Instant::now(), &mut todo);
                    self.act(&client, &mut todo).await;
                }
            }
            self.flush_outbox();
        }
        self.metrics.connected.store(0, Relaxed);
    }

    async fn send(
        &self,
        client: &async_nats::Client,
        subject: String,
        kind: ClusterKind,
        b: Bytes,
    ) {
        let n = b.len();
        if !up(client) {
            // Never queue while cut off (the bridge would block and the shards' queues grow):
            // heartbeats resume on reconnect, interest heals by snapshot, testaments are sent
            // again whole (see `resend_testaments`), publications are lost and counted.
            if kind == ClusterKind::Publication {
                self.metrics.dropped.fetch_add(1, Relaxed);
            }
            return;
        }
        match client.publish(subject, b).await {
            Ok(()) => self.metrics.sent(kind, n),
            Err(e) => {
                if kind == ClusterKind::Publication {
                    self.metrics.dropped.fetch_add(1, Relaxed);
                }
                tracing::debug!("cluster: publish failed: {e}");
            }
        }
    }

    async fn heartbeat(&self, client: &async_nats::Client, leaving: bool) {
        let b = wire::encode(&Msg::Heartbeat {
            node: self.cfg.node_id,
            incarnation: self.incarnation,
            seq: self.seq,
            testaments: self.testament_version,
            leaving,
            shards: u16::try_from(self.outbox.len()).unwrap_or(u16::MAX),
        });
        self.send(client, self.subjects.heartbeat(), ClusterKind::Heartbeat, b)
            .await;
    }

    /// A home shard says this node gained or lost interest in a pattern.
    async fn local_interest(&mut self, client: &async_nats::Client, key: InterestKey, add: bool) {
        let changed = if add {
            self.interest.insert(key.clone())
        } else {
            self.interest.remove(&key)
        };
        if !changed {
            return;
        }
        self.seq += 1;
        self.metrics.interest_changes.fetch_add(1, Relaxed);
        let b = wire::encode(&Msg::Interest {
            node: self.cfg.node_id,
            incarnation: self.incarnation,
            seq: self.seq,
            key: Entry::Topic(key),
            add,
        });
        self.send(client, self.subjects.interest(), ClusterKind::Interest, b)
            .await;
    }

    fn registry(&self, op: Op) {
        if let Some(r) = &self.registry {
            let _ = r.send(op);
        }
    }

    /// A home shard says a local callee joined or left a registration: the other nodes
    /// learn it as one more numbered interest change.
    async fn local_callee(
        &mut self,
        client: &async_nats::Client,
        realm: Uri,
        callee: Arc<RemoteCallee>,
        add: bool,
    ) {
        let key = (
            realm.clone(),
            callee.policy,
            callee.procedure.clone(),
            callee.session,
        );
        let entry = if add {
            if self.callees.get(&key) == Some(&callee) {
                return;
            }
            self.callees.insert(key, callee.clone());
            callee
        } else {
            match self.callees.remove(&key) {
                Some(c) => c,
                None => return,
            }
        };
        self.seq += 1;
        self.metrics.interest_changes.fetch_add(1, Relaxed);
        let b = wire::encode(&Msg::Interest {
            node: self.cfg.node_id,
            incarnation: self.incarnation,
            seq: self.seq,
            key: Entry::Callee(realm, entry),
            add,
        });
        self.send(client, self.subjects.interest(), ClusterKind::Interest, b)
            .await;
    }

    /// Call-protocol messages from the shards: per node one NATS message (cut at
    /// [`BATCH_BYTES`]). An INVOCATION for a node that is gone or cannot be reached fails the
    /// call at once.
    async fn send_calls(&mut self, client: &async_nats::Client, batch: Vec<OutCall>) {
        let me = self.cfg.node_id;
        let mut per_node: Vec<(NodeId, Vec<Encoded>)> = Vec::new();
        for (realm, node, shard, msg) in batch {
            if node == 0 {
                // A meta query for every shard of every other node; the asking shard learns
                // how many answers to wait for first.
                let mut replies = 0;
                if up(client) {
                    let b = wire::encode(&Msg::Peer {
                        node: me,
                        realm: realm.clone(),
                        shard: wire::ALL_SHARDS,
                        msg: msg.clone(),
                    });
                    for (n, shards) in self.members.alive_nodes() {
                        replies += usize::from(shards);
                        push_for(&mut per_node, n, (b.clone(), msg.clone(), realm.clone()));
                    }
                }
                if let (PeerMsg::MetaQuery { token, .. }, Some(o)) =
                    (&msg, self.outbox.get_mut(shard))
                {
                    o.push((
                        realm,
                        ClusterIn::Expect {
                            token: *token,
                            replies,
                        },
                    ));
                }
                continue;
            }
            if !self.members.is_alive(node) || !up(client) {
                self.fail_call(realm, &msg);
                continue;
            }
            let b = wire::encode(&Msg::Peer {
                node: me,
                realm: realm.clone(),
                shard: shard as u64,
                msg: msg.clone(),
            });
            push_for(&mut per_node, node, (b, msg, realm));
        }
        for (node, parts) in per_node {
            for chunk in chunks(parts, |p: &Encoded| p.0.len()) {
                self.call_batch(client, node, chunk).await;
            }
        }
    }

    async fn call_batch(&mut self, client: &async_nats::Client, node: NodeId, chunk: Vec<Encoded>) {
        if chunk.is_empty() {
            return;
        }
        let count = chunk.len() as u64;
        let parts: Vec<Bytes> = chunk.iter().map(|(b, _, _)| b.clone()).collect();
        let b = if parts.len() == 1 {
            parts[0].clone()
        } else {
            wire::encode(&Msg::Batch(parts))
        };
        let size = b.len() as u64;
        match client.publish(self.subjects.call(node), b).await {
            Ok(()) => {
                self.metrics.messages_out[ClusterKind::Call as usize].fetch_add(count, Relaxed);
                self.metrics.bytes_out[ClusterKind::Call as usize].fetch_add(size, Relaxed);
            }
            Err(e) => {
                tracing::debug!("cluster: call messages to node {node} failed: {e}");
                for (_, msg, realm) in chunk {
                    self.fail_call(realm, &msg);
                }
            }
        }
    }

    /// A call-protocol message that cannot be sent: counted; an INVOCATION fails its call.
    fn fail_call(&mut self, realm: Uri, msg: &PeerMsg) {
        self.metrics.calls_failed.fetch_add(1, Relaxed);
        if let Some((shard, answer)) = unreachable(msg) {
            if let Some(o) = self.outbox.get_mut(shard) {
                o.push((realm, answer));
            }
        }
    }

    /// A call-protocol message from node `node` for shard `shard` here: the shard IDs it
    /// names are that node's, made remote so the answers go back there.
    fn deliver_peer(&mut self, node: NodeId, realm: Uri, shard: u64, mut msg: PeerMsg) {
        if !self.realms.contains(&realm) {
            self.metrics.bad_messages.fetch_add(1, Relaxed);
            return;
        }
        match &mut msg {
            PeerMsg::Invoke(i) => i.caller_shard = remote_shard(node, i.caller_shard),
            PeerMsg::MetaQuery { from, .. } => *from = remote_shard(node, *from),
            _ => {}
        }
        if shard == wire::ALL_SHARDS {
            for o in &mut self.outbox {
                o.push((realm.clone(), ClusterIn::Peer(msg.clone())));
            }
            return;
        }
        let shard = usize::try_from(shard).unwrap_or(usize::MAX);
        if shard >= self.outbox.len() {
            self.metrics.bad_messages.fetch_add(1, Relaxed);
            return;
        }
        if let Some(o) = self.outbox.get_mut(shard) {
            o.push((realm, ClusterIn::Peer(msg)));
        }
    }

    /// One session's testaments (session 0, no entries: "forget all of mine") at `version`,
    /// to `subject`.
    #[allow(clippy::too_many_arguments)]
    async fn send_testaments(
        &self,
        client: &async_nats::Client,
        subject: String,
        kind: ClusterKind,
        version: u64,
        realm: Uri,
        session: u64,
        entries: Vec<Bytes>,
    ) {
        let b = wire::encode(&Msg::Testaments {
            node: self.cfg.node_id,
            incarnation: self.incarnation,
            version,
            realm,
            session,
            entries,
        });
        self.send(client, subject, kind, b).await;
    }

    /// A local session's testaments changed: the other nodes get the whole list.
    async fn local_testaments(
        &mut self,
        client: &async_nats::Client,
        realm: Uri,
        session: u64,
        entries: Vec<Bytes>,
    ) {
        let key = (realm.clone(), session);
        if entries.is_empty() {
            self.testaments.remove(&key);
        } else {
            self.testaments.insert(key, entries.clone());
        }
        self.announce_testaments(client, realm, session, entries)
            .await;
    }

    /// After a (re)connection: the other nodes drop every copy of this node's testaments and
    /// get the current ones (changes made while cut off were not sent).
    async fn resend_testaments(&mut self, client: &async_nats::Client) {
        // Session 0 (no session has it), no entries: "forget all of mine".
        self.announce_testaments(client, Uri::from(""), 0, Vec::new())
            .await;
        let all: Vec<((Uri, u64), Vec<Bytes>)> = self
            .testaments
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        for ((realm, session), entries) in all {
            self.announce_testaments(client, realm, session, entries)
                .await;
        }
    }

    /// One session's testaments to every node, as this node's next testament change.
    async fn announce_testaments(
        &mut self,
        client: &async_nats::Client,
        realm: Uri,
        session: u64,
        entries: Vec<Bytes>,
    ) {
        self.testament_version += 1;
        let subject = self.subjects.interest();
        let v = self.testament_version;
        self.send_testaments(
            client,
            subject,
            ClusterKind::Interest,
            v,
            realm,
            session,
            entries,
        )
        .await;
    }

    /// Another node's session's testaments, unless an equal or newer copy is known.
    fn remote_testaments(
        &mut self,
        node: NodeId,
        incarnation: u64,
        version: u64,
        key: (Uri, u64),
        entries: Vec<Bytes>,
    ) {
        if !self.members.is_alive(node) {
            return; // its heartbeat brings a sync, and with it the testaments
        }
        let r = self.remote_testaments.entry(node).or_default();
        if r.incarnation != incarnation {
            *r = RemoteTestaments {
                incarnation,
                ..RemoteTestaments::default()
            };
        }
        if key.1 == 0 {
            // The node sends everything again (each at this version or later): what it sent
            // before no longer counts.
            if version > r.floor {
                r.sessions.clear();
                r.floor = version.saturating_sub(1);
            }
            return;
        }
        if version <= r.floor || r.sessions.get(&key).is_some_and(|(v, _, _)| *v >= version) {
            return;
        }
        let removed = entries.is_empty().then(Instant::now);
        r.sessions.insert(key, (version, entries, removed));
    }

    /// Forgets removed testaments' versions after a minute.
    fn sweep_testaments(&mut self, now: Instant) {
        for r in self.remote_testaments.values_mut() {
            r.sessions.retain(|_, (_, _, removed)| {
                removed.is_none_or(|t| now.duration_since(t) < Duration::from_secs(60))
            });
        }
    }

    /// Node `node` died: the lowest live node publishes its sessions' testaments.
    fn publish_dead_testaments(&mut self, node: NodeId) {
        let Some(r) = self.remote_testaments.remove(&node) else {
            return;
        };
        if !self.members.lowest() {
            return;
        }
        let mut n = 0;
        for ((realm, session), (_, entries, _)) in r.sessions {
            if !self.realms.contains(&realm) {
                continue;
            }
            let shard = (session % self.outbox.len().max(1) as u64) as usize;
            for e in entries {
                match wire::decode_testament(&e) {
                    Ok(t) => {
                        if let Some(o) = self.outbox.get_mut(shard) {
                            o.push((realm.clone(), ClusterIn::PublishTestament(Box::new(t))));
                            n += 1;
                        }
                    }
                    Err(_) => {
                        self.metrics.bad_messages.fetch_add(1, Relaxed);
                    }
                }
            }
        }
        if n > 0 {
            tracing::info!(
                node = self.cfg.node_id,
                "cluster: published {n} testaments of dead node {node}"
            );
        }
    }

    /// Publications from the shards, in order: each encoded once, then per node one NATS
    /// message holding that node's share of them (in order).
    async fn publish(&self, client: &async_nats::Client, batch: Vec<Outgoing>) {
        let mut per_node: Vec<(NodeId, Vec<Bytes>)> = Vec::new();
        let alive: Vec<NodeId> = self
            .members
            .alive_nodes()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        for (realm, nodes, publication, everywhere) in batch {
            let b = wire::encode(&Msg::Publication {
                node: self.cfg.node_id,
                realm,
                publication,
            });
            let nodes = if everywhere { alive.clone() } else { nodes };
            for n in nodes {
                if !self.members.is_alive(n) {
                    continue;
                }
                push_for(&mut per_node, n, b.clone());
            }
        }
        for (n, parts) in per_node {
            for chunk in chunks(parts, Bytes::len) {
                self.publish_batch(client, n, chunk).await;
            }
        }
    }

    async fn publish_batch(&self, client: &async_nats::Client, n: NodeId, parts: Vec<Bytes>) {
        if parts.is_empty() {
            return;
        }
        let count = parts.len() as u64;
        if !up(client) {
            self.metrics.dropped.fetch_add(count, Relaxed);
            return;
        }
        let b = wire::encode(&Msg::Batch(parts));
        let size = b.len() as u64;
        match client.publish(self.subjects.publication(n), b).await {
            Ok(()) => {
                // Counted per publication (the batching is an implementation detail).
                self.metrics.messages_out[ClusterKind::Publication as usize]
                    .fetch_add(count, Relaxed);
                self.metrics.bytes_out[ClusterKind::Publication as usize].fetch_add(size, Relaxed);
            }
            Err(e) => {
                self.metrics.dropped.fetch_add(count, Relaxed);
                tracing::debug!("cluster: publish to node {n} failed: {e}");
            }
        }
    }

    async fn on_message(
        &mut self,
        client: &async_nats::Client,
        payload: &Bytes,
        todo: &mut Vec<Todo>,
    ) {
        let msg = match wire::decode(payload) {
            Ok(m) => m,
            Err(e) => {
                self.metrics.bad_messages.fetch_add(1, Relaxed);
                tracing::debug!("cluster: {e}");
                return;
            }
        };
        let now = Instant::now();
        let n = payload.len();
        if let Msg::Batch(parts) = msg {
            let kind = match parts.first().map(wire::decode) {
                Some(Ok(Msg::Peer { .. })) => ClusterKind::Call,
                _ => ClusterKind::Publication,
            };
            self.metrics.bytes_in[kind as usize].fetch_add(n as u64, Relaxed);
            for part in parts {
                match wire::decode(&part) {
                    Ok(Msg::Peer {
                        node,
                        realm,
                        shard,
                        msg,
                    }) => {
                        self.metrics.messages_in[ClusterKind::Call as usize].fetch_add(1, Relaxed);
                        self.deliver_peer(node, realm, shard, msg);
                    }
                    Ok(Msg::Publication {
                        node: _,
                        realm,
                        publication,
                    }) => {
                        self.metrics.messages_in[ClusterKind::Publication as usize]
                            .fetch_add(1, Relaxed);
                        self.deliver_publication(realm, publication);
                    }
                    Ok(_) | Err(_) => {
                        self.metrics.bad_messages.fetch_add(1, Relaxed);
                    }
                }
            }
            return;
        }
        match msg {
            Msg::Heartbeat {
                node,
                incarnation,
                seq,
                testaments,
                leaving,
                shards,
            } => {
                self.metrics.received(ClusterKind::Heartbeat, n);
                self.members
                    .announce_testaments(node, incarnation, testaments);
                self.members
                    .heartbeat(node, incarnation, seq, leaving, now, todo);
                self.members.set_shards(node, shards);
            }
            Msg::Interest {
                node,
                incarnation,
                seq,
                key,
                add,
            } => {
                self.metrics.received(ClusterKind::Interest, n);
                self.members
                    .interest(node, incarnation, seq, key, add, todo);
            }
            Msg::SyncRequest { node } => {
                self.metrics.received(ClusterKind::Sync, n);
                self.send_snapshot(client, node).await;
            }
            Msg::Snapshot {
                node,
                incarnation,
                seq,
                first,
                last,
                entries,
            } => {
                self.metrics.received(ClusterKind::Sync, n);
                self.members
                    .snapshot(node, incarnation, seq, first, last, entries, todo);
            }
            Msg::Publication {
                node: _,
                realm,
                publication,
            } => {
                self.metrics.received(ClusterKind::Publication, n);
                self.deliver_publication(realm, publication);
            }
            Msg::Testaments {
                node,
                incarnation,
                version,
                realm,
                session,
                entries,
            } => {
                self.metrics.received(ClusterKind::Interest, n);
                self.members.saw_testaments(node, incarnation, version);
                self.remote_testaments(node, incarnation, version, (realm, session), entries);
            }
            Msg::Peer {
                node,
                realm,
                shard,
                msg,
            } => {
                self.metrics.received(ClusterKind::Call, n);
                self.deliver_peer(node, realm, shard, msg);
            }
            Msg::Batch(_) => {} // handled above
        }
        self.act(client, todo).await;
    }

    /// A publication from another node, for one shard here: one publisher's events always go
    /// to the same shard, so they stay in order.
    fn deliver_publication(&mut self, realm: Uri, publication: Arc<Publication>) {
        if !self.realms.contains(&realm) {
            self.metrics.bad_messages.fetch_add(1, Relaxed);
            return;
        }
        let shard = (publication.publisher % self.outbox.len().max(1) as u64) as usize;
        if let Some(o) = self.outbox.get_mut(shard) {
            o.push((realm, ClusterIn::Publish(publication)));
        }
    }

    /// Carries out what membership asked for.
    async fn act(&mut self, client: &async_nats::Client, todo: &mut Vec<Todo>) {
        for t in todo.drain(..) {
            match t {
                Todo::Joined(n) => {
                    self.metrics.node_joins.fetch_add(1, Relaxed);
                    tracing::info!(node = self.cfg.node_id, "cluster: node {n} joined");
                }
                Todo::Gone { node: n, dead } => {
                    self.metrics.node_leaves.fetch_add(1, Relaxed);
                    if dead {
                        tracing::warn!(
                            node = self.cfg.node_id,
                            "cluster: node {n} is gone (no heartbeat)"
                        );
                        self.publish_dead_testaments(n);
                    } else {
                        tracing::info!(node = self.cfg.node_id, "cluster: node {n} left");
                    }
                    self.remote_testaments.remove(&n);
                    // The registry forgets its claims (unless it came back already). Every live
                    // node does it: idempotent, and one failing does not leave them behind.
                    let keep = self.members.incarnation_of(n);
                    self.registry(Op::Purge {
                        node: n,
                        keep,
                        attempt: 0,
                    });
                    // The lowest live node publishes the meta events of its departure.
                    let announce = dead && self.members.lowest();
                    self.for_every_shard(|| ClusterIn::NodeGone { node: n, announce });
                }
                Todo::Clear(n) => self.for_every_shard(|| ClusterIn::NodeReset { node: n }),
                Todo::RequestSync(n) => {
                    let b = wire::encode(&Msg::SyncRequest {
                        node: self.cfg.node_id,
                    });
                    self.send(client, self.subjects.sync(n), ClusterKind::Sync, b)
                        .await;
                }
                Todo::Apply { node, key, add } => {
                    let realm = key.realm().clone();
                    if self.realms.contains(&realm) {
                        let msg = match key {
                            Entry::Callee(_, callee) => ClusterIn::Callee {
                                node,
                                add,
                                callee: Box::new((*callee).clone()),
                            },
                            Entry::Topic((_, policy, pattern)) => ClusterIn::Interest {
                                node,
                                policy,
                                pattern,
                                add,
                            },
                        };
                        for o in &mut self.outbox {
                            o.push((realm.clone(), msg.clone()));
                        }
                    }
                }
                Todo::Conflict(n) => {
                    if self.conflicts.insert(n as u64) {
                        tracing::error!(
                            "cluster: another process announces this node's ID {n}: node IDs must be unique"
                        );
                    }
                }
            }
        }
        self.metrics
            .nodes
            .store(self.members.alive() as u64, Relaxed);
        let kept = self
            .remote_testaments
            .values()
            .flat_map(|r| r.sessions.values())
            .filter(|(_, entries, _)| !entries.is_empty())
            .count();
        self.metrics.remote_testaments.store(kept as u64, Relaxed);
    }

    /// `msg` for every realm on every shard.
    fn for_every_shard(&mut self, msg: impl Fn() -> ClusterIn) {
        for o in &mut self.outbox {
            for r in &self.realms {
                o.push((r.clone(), msg()));
            }
        }
    }

    async fn send_snapshot(&self, client: &async_nats::Client, to: NodeId) {
        let mut chunk = Vec::new();
        let mut size = 0;
        let mut first = true;
        let entries: Vec<Entry> = self
            .interest
            .iter()
            .map(|k| Entry::Topic(k.clone()))
            .chain(
                self.callees
                    .iter()
                    .map(|((realm, ..), c)| Entry::Callee(realm.clone(), c.clone())),
            )
            .collect();
        let total = entries.len();
        for (i, k) in entries.into_iter().enumerate() {
            size += wire::entry_size(&k);
            chunk.push(k);
            if size >= SNAPSHOT_CHUNK && i + 1 < total {
                self.snapshot_chunk(client, to, first, false, std::mem::take(&mut chunk))
                    .await;
                first = false;
                size = 0;
            }
        }
        self.snapshot_chunk(client, to, first, true, chunk).await;
        // The testaments: "forget all of mine", then each session's, at the current version.
        let v = self.testament_version;
        let reset = std::iter::once(((Uri::from(""), 0), Vec::new()));
        let all = self.testaments.iter().map(|(k, e)| (k.clone(), e.clone()));
        for ((realm, session), entries) in reset.chain(all) {
            let subject = self.subjects.snapshot(to);
            self.send_testaments(
                client,
                subject,
                ClusterKind::Sync,
                v,
                realm,
                session,
                entries,
            )
            .await;
        }
    }

    async fn snapshot_chunk(
        &self,
        client: &async_nats::Client,
        to: NodeId,
        first: bool,
        last: bool,
        entries: Vec<Entry>,
    ) {
        let b = wire::encode(&Msg::Snapshot {
            node: self.cfg.node_id,
            incarnation: self.incarnation,
            seq: self.seq,
            first,
            last,
            entries,
        });
        self.send(client, self.subjects.snapshot(to), ClusterKind::Sync, b)
            .await;
    }

    fn flush_outbox(&mut self) {
        for (shard, o) in self.outbox.iter_mut().enumerate() {
            if !o.is_empty() {
                self.sink.deliver(shard, std::mem::take(o));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_grouped_per_node_and_cut_by_size() {
        let mut per_node: Vec<(NodeId, Vec<u32>)> = Vec::new();
        for (n, x) in [(2, 1), (3, 2), (2, 3)] {
            push_for(&mut per_node, n, x);
        }
        assert_eq!(per_node, [(2, vec![1, 3]), (3, vec![2])]);
        let third = BATCH_BYTES / 3;
        let sizes = vec![third, third, third, third, BATCH_BYTES * 2, 1];
        let cut: Vec<Vec<usize>> = chunks(sizes, |s| *s);
        assert_eq!(
            cut,
            [
                vec![third, third, third],
                vec![third],
                vec![BATCH_BYTES * 2],
                vec![1]
            ]
        );
        assert_eq!(chunks(Vec::<usize>::new(), |s| *s), [Vec::<usize>::new()]);
    }
}
