//! A cluster of N realm shards in one thread: delivers their `Action::Peer` messages FIFO per
//! ordered pair of shards, collects what each session is sent, and can hold a channel back to
//! test what happens before an acknowledgement arrives.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::codec::uri::MatchPolicy;
use crate::codec::*;
use crate::routing::ids::{home_shard, SessionId, ShardId};
use crate::routing::meta::SessionDetails;
use crate::routing::peer::PeerMsg;
use crate::routing::realm::{Action, RealmShard, RoutingConfig};
use crate::routing::session::{Features, SessionRef};

pub const REALM: &str = "realm1";

pub struct Cluster {
    pub shards: Vec<RealmShard>,
    queues: BTreeMap<(ShardId, ShardId), VecDeque<PeerMsg>>,
    held: HashSet<(ShardId, ShardId)>,
    sessions: HashMap<SessionId, SessionRef>,
    inbox: HashMap<SessionId, Vec<Message>>,
    /// Every peer message delivered: (from, to, kind).
    pub peer_log: Vec<(ShardId, ShardId, &'static str)>,
    /// Sessions the routing core asked to abort, with the message.
    pub aborts: Vec<(SessionId, String)>,
    /// Sessions the routing core asked to close (meta API kill), with the reason.
    pub kills: Vec<(SessionId, String)>,
    /// `SendMany` actions seen: (recipient count).
    pub send_many: Vec<usize>,
    /// What the shards told the cluster layer: (shard, action).
    pub cluster: Vec<(ShardId, crate::routing::cluster::ClusterOut)>,
    /// Indexes into `cluster` of the claims `grant_claims` answered.
    pub answered: Vec<usize>,
    pub now: Instant,
}

pub fn kind(m: &PeerMsg) -> &'static str {
    match m {
        PeerMsg::InterestAddRequest { .. } => "InterestAddRequest",
        PeerMsg::InterestAdd { .. } => "InterestAdd",
        PeerMsg::InterestAck { .. } => "InterestAck",
        PeerMsg::InterestRemoveRequest { .. } => "InterestRemoveRequest",
        PeerMsg::InterestRemove { .. } => "InterestRemove",
        PeerMsg::Publish(_) => "Publish",
        PeerMsg::Retain(_) => "Retain",
        PeerMsg::PublishRetained(_) => "PublishRetained",
        PeerMsg::History { .. } => "History",
        PeerMsg::RegisterRequest(_) => "RegisterRequest",
        PeerMsg::RegisterRejected { .. } => "RegisterRejected",
        PeerMsg::RegistrationAdd(_) => "RegistrationAdd",
        PeerMsg::RegistrationAck { .. } => "RegistrationAck",
        PeerMsg::UnregisterRequest(_) => "UnregisterRequest",
        PeerMsg::RegistrationRemove(_) => "RegistrationRemove",
        PeerMsg::Invoke(_) => "Invoke",
        PeerMsg::InvokeMore { .. } => "InvokeMore",
        PeerMsg::Interrupt { .. } => "Interrupt",
        PeerMsg::CallGone { .. } => "CallGone",
        PeerMsg::CallResult { .. } => "CallResult",
        PeerMsg::CallError { .. } => "CallError",
        PeerMsg::Lifecycle(_) => "Lifecycle",
        PeerMsg::MetaQuery { .. } => "MetaQuery",
        PeerMsg::MetaReply { .. } => "MetaReply",
        PeerMsg::RevokeSubscription { .. } => "RevokeSubscription",
        PeerMsg::RevokeCallee { .. } => "RevokeCallee",
    }
}

impl Cluster {
    pub fn new(n: usize) -> Self {
        Self::with_config(n, RoutingConfig::default())
    }

    pub fn with_config(n: usize, config: RoutingConfig) -> Self {
        Self {
            shards: (0..n)
                .map(|s| RealmShard::new(Uri::from(REALM), s, n, config.clone(), 42 + s as u64))
                .collect(),
            queues: BTreeMap::new(),
            held: HashSet::new(),
            sessions: HashMap::new(),
            inbox: HashMap::new(),
            peer_log: Vec::new(),
            aborts: Vec::new(),
            kills: Vec::new(),
            send_many: Vec::new(),
            cluster: Vec::new(),
            answered: Vec::new(),
            now: Instant::now(),
        }
    }

    /// A session on `shard` with every feature.
    pub fn join(&mut self, id: SessionId, shard: ShardId) -> SessionRef {
        self.join_with(id, shard, &format!("user{id}"), "user", Features::ALL)
    }

    pub fn join_with(
        &mut self,
        id: SessionId,
        shard: ShardId,
        authid: &str,
        authrole: &str,
        features: Features,
    ) -> SessionRef {
        self.join_ref(SessionRef::new(id, shard, authid, authrole, features))
    }

    /// Joins the session `s` describes (on `s.shard`), e.g. one with attributes.
    pub fn join_ref(&mut self, s: SessionRef) -> SessionRef {
        let (id, shard) = (s.id, s.shard);
        self.sessions.insert(id, s.clone());
        let mut out = Vec::new();
        self.shards[shard].on_session_join(s.clone(), details(), self.now, &mut out);
        self.collect(shard, out);
        self.settle();
        s
    }

    /// A message from the cluster layer to `shard`, then settles.
    /// Answers every registry claim the shards made so far and not answered yet with
    /// "granted" under the proposed ID (a registry where this node is alone).
    pub fn grant_claims(&mut self) {
        use crate::routing::cluster::{ClaimResult, ClusterIn, ClusterOut};
        loop {
            let next = self
                .cluster
                .iter()
                .enumerate()
                .find_map(|(i, (_, o))| match o {
                    ClusterOut::Claim(c) if !self.answered.contains(&i) => {
                        Some((i, c.token, c.shard, c.registration))
                    }
                    _ => None,
                });
            let Some((i, token, shard, id)) = next else {
                return;
            };
            self.answered.push(i);
            self.cluster_in(
                shard,
                ClusterIn::Claimed {
                    token,
                    result: ClaimResult::Granted(id),
                },
            );
        }
    }

    pub fn cluster_in(&mut self, shard: ShardId, msg: crate::routing::cluster::ClusterIn) {
        let mut out = Vec::new();
        self.shards[shard].on_cluster(msg, self.now, &mut out);
        self.collect(shard, out);
        self.settle();
    }

    /// Feeds a message without delivering peer messages.
    pub fn send(&mut self, session: SessionId, msg: Message) {
        let s = self.sessions.get(&session).expect("test session").clone();
        let mut out = Vec::new();
        self.shards[s.shard].on_message(&s, msg, self.now, &mut out);
        self.collect(s.shard, out);
    }

    /// Feeds a message and delivers every peer message that follows.
    pub fn run(&mut self, session: SessionId, msg: Message) {
        self.send(session, msg);
        self.settle();
    }

    pub fn publish_from_router(&mut self, shard: ShardId, topic: &str) -> Id {
        let mut out = Vec::new();
        let id = self.shards[shard].publish_from_router(
            Uri::from(topic),
            Payload::Empty,
            Default::default(),
            self.now,
            &mut out,
        );
        self.collect(shard, out);
        self.settle();
        id
    }

    pub fn leave(&mut self, session: SessionId) {
        self.leave_unsettled(session);
        self.settle();
    }

    /// The session leaves; its peer messages stay queued (see [`Cluster::step_random`]).
    pub fn leave_unsettled(&mut self, session: SessionId) {
        let s = self.sessions.remove(&session).expect("test session");
        let mut out = Vec::new();
        self.shards[s.shard].on_session_leave(session, self.now, &mut out);
        self.collect(s.shard, out);
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        for i in 0..self.shards.len() {
            let mut out = Vec::new();
            self.shards[i].on_tick(self.now, &mut out);
            self.collect(i, out);
        }
        self.settle();
    }

    pub fn hold(&mut self, from: ShardId, to: ShardId) {
        self.held.insert((from, to));
    }

    pub fn release(&mut self, from: ShardId, to: ShardId) {
        self.held.remove(&(from, to));
    }

    /// Delivers peer messages (one at a time, rotating over channels) until nothing is left
    /// on any channel that is not held.
    pub fn settle(&mut self) {
        for _ in 0..1_000_000 {
            let next = self
                .queues
                .iter()
                .find(|(k, q)| !q.is_empty() && !self.held.contains(k))
                .map(|(k, _)| *k);
            let Some((from, to)) = next else { return };
            let msg = self
                .queues
                .get_mut(&(from, to))
                .and_then(VecDeque::pop_front)
                .expect("non-empty");
            self.peer_log.push((from, to, kind(&msg)));
            let mut out = Vec::new();
            self.shards[to].on_peer(from, msg, self.now, &mut out);
            self.collect(to, out);
        }
        panic!("peer messages never settle");
    }

    /// Delivers one message from a random non-held, non-empty channel (random interleavings
    /// across channels; each channel stays FIFO). Returns false when there was none.
    pub fn step_random(&mut self, rng: &mut impl rand::Rng) -> bool {
        let ready: Vec<_> = self
            .queues
            .iter()
            .filter(|(k, q)| !q.is_empty() && !self.held.contains(k))
            .map(|(k, _)| *k)
            .collect();
        if ready.is_empty() {
            return false;
        }
        let (from, to) = ready[rng.gen_range(0..ready.len())];
        let Some(msg) = self
            .queues
            .get_mut(&(from, to))
            .and_then(VecDeque::pop_front)
        else {
            return false;
        };
        self.peer_log.push((from, to, kind(&msg)));
        let mut out = Vec::new();
        self.shards[to].on_peer(from, msg, self.now, &mut out);
        self.collect(to, out);
        true
    }

    pub fn is_joined(&self, session: SessionId) -> bool {
        self.sessions.contains_key(&session)
    }

    fn collect(&mut self, shard: ShardId, out: Vec<Action>) {
        for a in out {
            match a {
                Action::Send { to, msg } => self.inbox.entry(to).or_default().push(msg),
                Action::SendMany { to, msg } => {
                    assert!(to.len() > 1, "SendMany is for several recipients");
                    self.send_many.push(to.len());
                    for t in to {
                        self.inbox.entry(t).or_default().push((*msg).clone());
                    }
                }
                Action::Peer { shard: to, msg } => {
                    assert_ne!(to, shard, "a shard never sends itself a PeerMsg");
                    self.queues.entry((shard, to)).or_default().push_back(msg);
                }
                Action::Abort {
                    session, message, ..
                } => self.aborts.push((session, message)),
                Action::Kill {
                    session, reason, ..
                } => self.kills.push((session, reason.to_string())),
                Action::Cluster(out) => self.cluster.push((shard, out)),
            }
        }
    }

    /// Everything sent to `session` since the last call.
    pub fn take(&mut self, session: SessionId) -> Vec<Message> {
        self.inbox.remove(&session).unwrap_or_default()
    }

    /// Exactly one message expected.
    pub fn one(&mut self, session: SessionId) -> Message {
        let mut m = self.take(session);
        assert_eq!(m.len(), 1, "expected one message for {session}, got {m:#?}");
        m.remove(0)
    }

    pub fn peer_count(&self, kind: &str) -> usize {
        self.peer_log.iter().filter(|(_, _, k)| *k == kind).count()
    }

    pub fn home(&self, policy: MatchPolicy, uri: &str) -> ShardId {
        home_shard(REALM, policy, uri, self.shards.len())
    }
}

// ---- message builders ---------------------------------------------------------------------

/// The meta details of a test session (a JSON WebSocket session, ticket-authenticated).
pub fn details() -> SessionDetails {
    SessionDetails {
        authmethod: "ticket".into(),
        authprovider: "static".into(),
        local: false,
        serializer: Serializer::Json,
    }
}

pub fn args(v: &[i64]) -> Payload {
    Payload::args(v.iter().map(|i| Value::from(*i)).collect())
}

pub fn subscribe(request: Id, topic: &str, policy: MatchPolicy) -> Message {
    Message::Subscribe(Subscribe {
        request,
        options: SubscribeOptions {
            match_policy: Some(policy),
            ..Default::default()
        },
        topic: Uri::from(topic),
    })
}

pub fn unsubscribe(request: Id, subscription: Id) -> Message {
    Message::Unsubscribe(Unsubscribe {
        request,
        subscription,
    })
}

pub fn publish(request: Id, topic: &str, options: PublishOptions, payload: Payload) -> Message {
    Message::Publish(Box::new(Publish {
        request,
        options,
        topic: Uri::from(topic),
        payload,
    }))
}

pub fn register(request: Id, procedure: &str, options: RegisterOptions) -> Message {
    Message::Register(Register {
        request,
        options,
        procedure: Uri::from(procedure),
    })
}

pub fn reg_opts(policy: MatchPolicy, invoke: InvokePolicy) -> RegisterOptions {
    RegisterOptions {
        match_policy: Some(policy),
        invoke: Some(invoke),
        ..Default::default()
    }
}

pub fn unregister(request: Id, registration: Id) -> Message {
    Message::Unregister(Unregister {
        request,
        registration,
    })
}

pub fn call(request: Id, procedure: &str, options: CallOptions, payload: Payload) -> Message {
    Message::Call(Box::new(Call {
        request,
        options,
        procedure: Uri::from(procedure),
        payload,
    }))
}

pub fn cancel(request: Id, mode: Option<CancelMode>) -> Message {
    Message::Cancel(Cancel {
        request,
        options: CancelOptions {
            mode,
            ..Default::default()
        },
    })
}

pub fn yield_(request: Id, progress: bool, payload: Payload) -> Message {
    Message::Yield(Box::new(Yield {
        request,
        options: YieldOptions {
            progress: progress.then_some(true),
            ..Default::default()
        },
        payload,
    }))
}

pub fn callee_error(request: Id, error: &str) -> Message {
    Message::Error(Box::new(Error {
        request_type: code::INVOCATION,
        request,
        details: Dict::new(),
        error: Uri::from(error),
        payload: Payload::Empty,
    }))
}

// ---- message inspectors -------------------------------------------------------------------

pub fn subscribed_id(m: &Message) -> Id {
    match m {
        Message::Subscribed(s) => s.subscription,
        other => panic!("expected SUBSCRIBED, got {other:?}"),
    }
}

pub fn registered_id(m: &Message) -> Id {
    match m {
        Message::Registered(r) => r.registration,
        other => panic!("expected REGISTERED, got {other:?}"),
    }
}

pub fn event(m: &Message) -> &Event {
    match m {
        Message::Event(e) => e,
        other => panic!("expected EVENT, got {other:?}"),
    }
}

pub fn invocation(m: &Message) -> &Invocation {
    match m {
        Message::Invocation(i) => i,
        other => panic!("expected INVOCATION, got {other:?}"),
    }
}

pub fn result(m: &Message) -> &CallResult {
    match m {
        Message::Result(r) => r,
        other => panic!("expected RESULT, got {other:?}"),
    }
}

pub fn interrupt(m: &Message) -> &Interrupt {
    match m {
        Message::Interrupt(i) => i,
        other => panic!("expected INTERRUPT, got {other:?}"),
    }
}

/// `(request type, request, error URI)` of an ERROR.
pub fn error(m: &Message) -> (u64, Id, &str) {
    match m {
        Message::Error(e) => (e.request_type, e.request, e.error.as_str()),
        other => panic!("expected ERROR, got {other:?}"),
    }
}

pub fn first_arg(p: &Payload) -> Option<Value> {
    p.args_values()
        .ok()
        .flatten()
        .and_then(|a| a.into_iter().next())
}
