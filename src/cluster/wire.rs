//! The messages nodes exchange over NATS, and their subjects (sans-IO).
//!
//! Every message is one MessagePack array whose first element is its kind; a publication
//! carries the PUBLISH it came from, encoded as a WAMP MessagePack message (so options and
//! payload travel exactly as the codec knows them). Anything unreadable is an [`WireError`],
//! never a panic: another node (or anyone who can publish on the subjects) controls the bytes.
//!
//! Subjects, under the cluster name `C`:
//!
//! | subject             | what                                  | sent by → to            |
//! |---------------------|---------------------------------------|-------------------------|
//! | `C.hb`              | [`Msg::Heartbeat`]                    | every node → all        |
//! | `C.interest`        | [`Msg::Interest`] (one change), [`Msg::Testaments`] | a node → all |
//! | `C.node.N.sync`     | [`Msg::SyncRequest`]                  | a node → node N         |
//! | `C.node.N.snap`     | [`Msg::Snapshot`] chunks, then [`Msg::Testaments`] | a node → node N |
//! | `C.node.N.pub`      | [`Msg::Batch`] of [`Msg::Publication`]s | publishers' node → N  |

use std::sync::Arc;

use bytes::Bytes;

use crate::codec::uri::MatchPolicy;
use crate::codec::{self, Message, Publish, Serializer, Uri};
use crate::routing::cluster::{NodeId, RemoteCallee, Testament};
use crate::routing::peer::{
    CallRef, GoneReason, Invoke, KillTarget, MetaAnswer, MetaQuery, PeerMsg, Publication,
};
use crate::routing::session::Features;

const HEARTBEAT: u8 = 1;
const INTEREST: u8 = 2;
const SNAPSHOT: u8 = 3;
const PUBLICATION: u8 = 4;
const SYNC_REQUEST: u8 = 5;
const BATCH: u8 = 6;
const TESTAMENTS: u8 = 7;
const PEER: u8 = 8;

// The kinds of a [`Msg::Peer`] body.
const P_INVOKE: u64 = 1;
const P_MORE: u64 = 2;
const P_INTERRUPT: u64 = 3;
const P_GONE: u64 = 4;
const P_RESULT: u64 = 5;
const P_ERROR: u64 = 6;
const P_REVOKE: u64 = 7;
const P_QUERY: u64 = 8;
const P_REPLY: u64 = 9;

/// [`Msg::Peer`] `shard` for "every shard of the recipient" (meta queries).
pub const ALL_SHARDS: u64 = u64::MAX;

/// The subjects of one cluster (`name` is the cluster name, checked by the config).
#[derive(Debug, Clone)]
pub struct Subjects {
    name: String,
}

impl Subjects {
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
        }
    }
    pub fn heartbeat(&self) -> String {
        format!("{}.hb", self.name)
    }
    pub fn interest(&self) -> String {
        format!("{}.interest", self.name)
    }
    /// Everything addressed to node `n` (a wildcard subscription).
    pub fn node_all(&self, n: NodeId) -> String {
        format!("{}.node.{n}.>", self.name)
    }
    pub fn sync(&self, n: NodeId) -> String {
        format!("{}.node.{n}.sync", self.name)
    }
    pub fn snapshot(&self, n: NodeId) -> String {
        format!("{}.node.{n}.snap", self.name)
    }
    pub fn publication(&self, n: NodeId) -> String {
        format!("{}.node.{n}.pub", self.name)
    }
    pub fn call(&self, n: NodeId) -> String {
        format!("{}.node.{n}.call", self.name)
    }
    /// The JetStream key-value bucket of the registry.
    pub fn registry_bucket(&self) -> String {
        format!("{}_registry", self.name)
    }
}

/// The registry key of `(realm, policy, procedure)`: hex, since a WAMP URI may hold characters
/// a key may not (`[-/_=.a-zA-Z0-9]`).
pub fn registry_key(realm: &str, policy: MatchPolicy, procedure: &str) -> String {
    use std::fmt::Write;
    let mut k = String::with_capacity(2 * (realm.len() + procedure.len()) + 4);
    for b in realm.bytes() {
        let _ = write!(k, "{b:02x}");
    }
    k.push('.');
    k.push_str(&policy.as_str()[..1]);
    k.push('.');
    for b in procedure.bytes() {
        let _ = write!(k, "{b:02x}");
    }
    k
}

/// One entry of a node's interest: subscribers of a pattern, or a callee of a registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Topic(InterestKey),
    Callee(Uri, Arc<RemoteCallee>),
}

impl Entry {
    pub fn realm(&self) -> &Uri {
        match self {
            Entry::Topic((realm, _, _)) | Entry::Callee(realm, _) => realm,
        }
    }
}

/// [`Features`] as bits (the order of the fields).
fn feature_bits(f: &Features) -> u64 {
    [
        f.callee_call_canceling,
        f.callee_call_timeout,
        f.callee_progressive_call_results,
        f.callee_progressive_call_invocations,
        f.caller_progressive_call_invocations,
        f.subscriber_subscription_revocation,
        f.callee_registration_revocation,
        f.caller_payload_passthru,
        f.callee_payload_passthru,
        f.publisher_payload_passthru,
    ]
    .iter()
    .enumerate()
    .fold(0, |acc, (i, b)| acc | (u64::from(*b) << i))
}

fn features_of(bits: u64) -> Features {
    let bit = |i: u32| bits & (1 << i) != 0;
    Features {
        callee_call_canceling: bit(0),
        callee_call_timeout: bit(1),
        callee_progressive_call_results: bit(2),
        callee_progressive_call_invocations: bit(3),
        caller_progressive_call_invocations: bit(4),
        subscriber_subscription_revocation: bit(5),
        callee_registration_revocation: bit(6),
        caller_payload_passthru: bit(7),
        callee_payload_passthru: bit(8),
        publisher_payload_passthru: bit(9),
    }
}

/// Whether `msg` is one the call protocol sends to another node (see [`Msg::Peer`]).
pub fn crosses_nodes(msg: &PeerMsg) -> bool {
    matches!(
        msg,
        PeerMsg::Invoke(_)
            | PeerMsg::InvokeMore { .. }
            | PeerMsg::Interrupt { .. }
            | PeerMsg::CallGone { .. }
            | PeerMsg::CallResult { .. }
            | PeerMsg::CallError { .. }
            | PeerMsg::RevokeCallee { .. }
    ) || matches!(msg, PeerMsg::MetaQuery { query, .. } if !matches!(query, MetaQuery::Events { .. }))
        || matches!(msg, PeerMsg::MetaReply { answer, .. } if !matches!(answer, MetaAnswer::Events(_)))
}

/// One interest entry: `(realm, policy, pattern)`.
pub type InterestKey = (Uri, MatchPolicy, Uri);

/// A message between nodes.
#[derive(Debug, Clone)]
pub enum Msg {
    /// "I am alive." `seq` is the node's last interest change, `testaments` its last
    /// testament change; `leaving` says goodbye.
    Heartbeat {
        node: NodeId,
        incarnation: u64,
        seq: u64,
        testaments: u64,
        leaving: bool,
        /// The node's shard count.
        shards: u16,
    },
    /// Interest change number `seq` of the node.
    Interest {
        node: NodeId,
        incarnation: u64,
        seq: u64,
        key: Entry,
        add: bool,
    },
    /// "Send me your interest": answered with [`Msg::Snapshot`] chunks to `node`.
    SyncRequest { node: NodeId },
    /// Part of the node's whole interest as of change `seq` (`first` clears, `last` completes).
    Snapshot {
        node: NodeId,
        incarnation: u64,
        seq: u64,
        first: bool,
        last: bool,
        entries: Vec<Entry>,
    },
    /// A publication made on `node`, for the recipient's subscribers.
    Publication {
        node: NodeId,
        realm: Uri,
        publication: Arc<Publication>,
    },
    /// All the testaments of one session of `node` as of the node's testament change
    /// `version` (empty: none any more). Each entry is a PUBLISH (topic, options, payload)
    /// encoded as a WAMP MessagePack message, decoded only if the node dies.
    Testaments {
        node: NodeId,
        incarnation: u64,
        version: u64,
        realm: Uri,
        session: u64,
        entries: Vec<Bytes>,
    },
    /// A message of the call protocol from `node` for shard `shard` of the recipient
    /// (only the kinds [`crosses_nodes`] names; shard IDs inside are the sender's).
    Peer {
        node: NodeId,
        realm: Uri,
        shard: u64,
        msg: PeerMsg,
    },
    /// Several encoded messages in one NATS message, in order (publications to one node: one
    /// NATS message per turn of the bridge rather than one per publication). Never nested.
    Batch(Vec<Bytes>),
}

/// A message that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("unreadable cluster message: {0}")]
pub struct WireError(pub String);

fn bad(what: impl Into<String>) -> WireError {
    WireError(what.into())
}

// ---- encoding ------------------------------------------------------------------------------

// Writing into a Vec<u8> cannot fail; the results are ignored on purpose.
fn uint(out: &mut Vec<u8>, v: u64) {
    let _ = rmp::encode::write_uint(out, v);
}
fn string(out: &mut Vec<u8>, v: &str) {
    let _ = rmp::encode::write_str(out, v);
}
fn boolean(out: &mut Vec<u8>, v: bool) {
    let _ = rmp::encode::write_bool(out, v);
}
fn array(out: &mut Vec<u8>, n: usize) {
    let _ = rmp::encode::write_array_len(out, u32::try_from(n).unwrap_or(u32::MAX));
}

/// Encodes `msg`.
pub fn encode(msg: &Msg) -> Bytes {
    let mut out = Vec::with_capacity(64);
    match msg {
        Msg::Heartbeat {
            node,
            incarnation,
            seq,
            testaments,
            leaving,
            shards,
        } => {
            array(&mut out, 7);
            uint(&mut out, u64::from(HEARTBEAT));
            uint(&mut out, u64::from(*node));
            uint(&mut out, *incarnation);
            uint(&mut out, *seq);
            uint(&mut out, *testaments);
            boolean(&mut out, *leaving);
            uint(&mut out, u64::from(*shards));
        }
        Msg::Interest {
            node,
            incarnation,
            seq,
            key,
            add,
        } => {
            array(&mut out, 6);
            uint(&mut out, u64::from(INTEREST));
            uint(&mut out, u64::from(*node));
            uint(&mut out, *incarnation);
            uint(&mut out, *seq);
            entry_fields(&mut out, key);
            boolean(&mut out, *add);
        }
        Msg::SyncRequest { node } => {
            array(&mut out, 2);
            uint(&mut out, u64::from(SYNC_REQUEST));
            uint(&mut out, u64::from(*node));
        }
        Msg::Snapshot {
            node,
            incarnation,
            seq,
            first,
            last,
            entries,
        } => {
            array(&mut out, 7);
            uint(&mut out, u64::from(SNAPSHOT));
            uint(&mut out, u64::from(*node));
            uint(&mut out, *incarnation);
            uint(&mut out, *seq);
            boolean(&mut out, *first);
            boolean(&mut out, *last);
            array(&mut out, entries.len());
            for k in entries {
                entry_fields(&mut out, k);
            }
        }
        Msg::Publication {
            node,
            realm,
            publication: p,
        } => {
            let publish = Message::Publish(Box::new(Publish {
                request: p.id,
                options: p.options.clone(),
                topic: p.topic.clone(),
                payload: p.payload.clone(),
            }));
            let frame = codec::encode(Serializer::MsgPack, &publish);
            out.reserve(frame.len() + 64);
            array(&mut out, 8);
            uint(&mut out, u64::from(PUBLICATION));
            uint(&mut out, u64::from(*node));
            string(&mut out, realm);
            uint(&mut out, p.publisher);
            string(&mut out, &p.publisher_authid);
            string(&mut out, &p.publisher_authrole);
            match p.publisher_trustlevel {
                Some(t) => uint(&mut out, t),
                None => {
                    let _ = rmp::encode::write_nil(&mut out);
                }
            }
            let _ = rmp::encode::write_bin(&mut out, &frame);
        }
        Msg::Testaments {
            node,
            incarnation,
            version,
            realm,
            session,
            entries,
        } => {
            array(&mut out, 7);
            uint(&mut out, u64::from(TESTAMENTS));
            uint(&mut out, u64::from(*node));
            uint(&mut out, *incarnation);
            uint(&mut out, *version);
            string(&mut out, realm);
            uint(&mut out, *session);
            array(&mut out, entries.len());
            for e in entries {
                let _ = rmp::encode::write_bin(&mut out, e);
            }
        }
        Msg::Peer {
            node,
            realm,
            shard,
            msg,
        } => {
            array(&mut out, 5);
            uint(&mut out, u64::from(PEER));
            uint(&mut out, u64::from(*node));
            string(&mut out, realm);
            uint(&mut out, *shard);
            peer_body(&mut out, msg);
        }
        Msg::Batch(parts) => {
            out.reserve(parts.iter().map(|p| p.len() + 5).sum::<usize>() + 8);
            array(&mut out, 2);
            uint(&mut out, u64::from(BATCH));
            array(&mut out, parts.len());
            for p in parts {
                let _ = rmp::encode::write_bin(&mut out, p);
            }
        }
    }
    Bytes::from(out)
}

/// One testament (topic, payload, options) as a [`Msg::Testaments`] entry.
pub fn encode_testament((topic, payload, options): &Testament) -> Bytes {
    codec::encode(
        Serializer::MsgPack,
        &Message::Publish(Box::new(Publish {
            request: 0,
            options: options.clone(),
            topic: topic.clone(),
            payload: payload.clone(),
        })),
    )
}

/// A [`Msg::Testaments`] entry back into a testament.
pub fn decode_testament(entry: &Bytes) -> Result<Testament, WireError> {
    match codec::decode(Serializer::MsgPack, entry) {
        Ok(Message::Publish(p)) => Ok((p.topic, p.payload, p.options)),
        Ok(_) => Err(bad("testament: not a PUBLISH")),
        Err(e) => Err(bad(format!("testament: {e}"))),
    }
}

fn key_fields(out: &mut Vec<u8>, (realm, policy, pattern): &InterestKey) {
    string(out, realm);
    string(out, policy.as_str());
    string(out, pattern);
}

fn entry_fields(out: &mut Vec<u8>, e: &Entry) {
    match e {
        Entry::Topic(k) => {
            array(out, 3);
            key_fields(out, k);
        }
        Entry::Callee(realm, c) => {
            array(out, 11);
            key_fields(out, &(realm.clone(), c.policy, c.procedure.clone()));
            uint(out, c.registration);
            string(out, c.invoke.as_str());
            boolean(out, c.disclose_caller);
            boolean(out, c.forward_timeout);
            string(out, &c.created);
            uint(out, c.session);
            uint(out, c.shard as u64);
            uint(out, feature_bits(&c.features));
        }
    }
}

/// How many bytes one interest entry takes in a snapshot (to cut snapshots into chunks).
pub fn entry_size(e: &Entry) -> usize {
    match e {
        Entry::Topic((realm, policy, pattern)) => {
            realm.len() + policy.as_str().len() + pattern.len() + 16
        }
        Entry::Callee(realm, c) => realm.len() + c.procedure.len() + c.created.len() + 64,
    }
}

fn frame(out: &mut Vec<u8>, msg: &Message) {
    let f = codec::encode(Serializer::MsgPack, msg);
    let _ = rmp::encode::write_bin(out, &f);
}

fn call_ref(out: &mut Vec<u8>, c: &CallRef) {
    uint(out, c.caller);
    uint(out, c.request);
    uint(out, c.callee);
    uint(out, c.registration);
}

/// The body of a [`Msg::Peer`]: `[kind, …]`; a kind that never crosses nodes is `[0]`.
fn peer_body(out: &mut Vec<u8>, msg: &PeerMsg) {
    use crate::codec::{CallResult, ResultDetails};
    match msg {
        PeerMsg::Invoke(i) => {
            array(out, 7);
            uint(out, P_INVOKE);
            uint(out, i.caller);
            uint(out, i.caller_shard as u64);
            uint(out, i.callee);
            boolean(out, i.forward_progress);
            boolean(out, i.streaming);
            // On the wire the INVOCATION carries the caller's request ID.
            let mut invocation = i.invocation.clone();
            invocation.request = i.request;
            frame(out, &Message::Invocation(invocation));
        }
        PeerMsg::InvokeMore {
            call,
            progress,
            payload,
        } => {
            array(out, 7);
            uint(out, P_MORE);
            call_ref(out, call);
            boolean(out, *progress);
            frame(
                out,
                &Message::Result(Box::new(CallResult {
                    request: call.request,
                    details: ResultDetails::default(),
                    payload: payload.clone(),
                })),
            );
        }
        PeerMsg::Interrupt { call } => {
            array(out, 5);
            uint(out, P_INTERRUPT);
            call_ref(out, call);
        }
        PeerMsg::CallGone { call, interrupt } => {
            array(out, 6);
            uint(out, P_GONE);
            call_ref(out, call);
            uint(
                out,
                match interrupt {
                    None => 0,
                    Some(GoneReason::Canceled) => 1,
                    Some(GoneReason::Timeout) => 2,
                    Some(GoneReason::CallerLeft) => 3,
                },
            );
        }
        PeerMsg::CallResult { caller, result } => {
            array(out, 3);
            uint(out, P_RESULT);
            uint(out, *caller);
            frame(out, &Message::Result(result.clone()));
        }
        PeerMsg::CallError { caller, error } => {
            array(out, 3);
            uint(out, P_ERROR);
            uint(out, *caller);
            frame(out, &Message::Error(error.clone()));
        }
        PeerMsg::RevokeCallee {
            registration,
            callee,
            reason,
        } => {
            array(out, 4);
            uint(out, P_REVOKE);
            uint(out, *registration);
            uint(out, *callee);
            match reason {
                Some(r) => string(out, r),
                None => {
                    let _ = rmp::encode::write_nil(out);
                }
            }
        }
        PeerMsg::MetaQuery { token, from, query } if crosses_nodes(msg) => {
            let head = |out: &mut Vec<u8>, n: usize, kind: u64| {
                array(out, n);
                uint(out, P_QUERY);
                uint(out, *token);
                uint(out, *from as u64);
                uint(out, kind);
            };
            let opt_str = |out: &mut Vec<u8>, s: &Option<String>| match s {
                Some(s) => string(out, s),
                None => {
                    let _ = rmp::encode::write_nil(out);
                }
            };
            match query {
                MetaQuery::Sessions { filter } => {
                    head(out, 5, 1);
                    match filter {
                        Some(roles) => {
                            array(out, roles.len());
                            for r in roles {
                                string(out, r);
                            }
                        }
                        None => {
                            let _ = rmp::encode::write_nil(out);
                        }
                    }
                }
                MetaQuery::Get { session } => {
                    head(out, 5, 2);
                    uint(out, *session);
                }
                MetaQuery::Kill {
                    target,
                    exclude,
                    reason,
                    message,
                } => {
                    head(out, 9, 3);
                    match target {
                        KillTarget::Session(id) => {
                            uint(out, 1);
                            uint(out, *id);
                        }
                        KillTarget::Authid(a) => {
                            uint(out, 2);
                            string(out, a);
                        }
                        KillTarget::Authrole(r) => {
                            uint(out, 3);
                            string(out, r);
                        }
                        KillTarget::All => {
                            uint(out, 4);
                            let _ = rmp::encode::write_nil(out);
                        }
                    }
                    uint(out, *exclude);
                    string(out, reason);
                    string(out, message);
                }
                MetaQuery::Subscribers { subscription } => {
                    head(out, 5, 4);
                    uint(out, *subscription);
                }
                MetaQuery::RemoveSubscriber {
                    subscription,
                    session,
                    reason,
                } => {
                    head(out, 7, 5);
                    uint(out, *subscription);
                    uint(out, *session);
                    opt_str(out, reason);
                }
                MetaQuery::Events { .. } => {} // never (crosses_nodes)
            }
        }
        PeerMsg::MetaReply { token, answer } if crosses_nodes(msg) => {
            array(out, 4);
            uint(out, P_REPLY);
            uint(out, *token);
            match answer {
                MetaAnswer::Sessions(ids) => {
                    uint(out, 1);
                    array(out, ids.len());
                    for id in ids {
                        uint(out, *id);
                    }
                }
                MetaAnswer::Details(d) => {
                    uint(out, 2);
                    let args = d.iter().map(|d| codec::Value::Dict(d.clone())).collect();
                    frame(
                        out,
                        &Message::Result(Box::new(codec::CallResult {
                            request: 1,
                            details: codec::ResultDetails::default(),
                            payload: codec::Payload::args(args),
                        })),
                    );
                }
                MetaAnswer::Events(_) => {} // never (crosses_nodes)
            }
        }
        _ => {
            array(out, 1);
            uint(out, 0);
        }
    }
}

// ---- decoding ------------------------------------------------------------------------------

/// A cursor over one message.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn array(&mut self) -> Result<usize, WireError> {
        rmp::decode::read_array_len(&mut self.buf)
            .map(|n| n as usize)
            .map_err(|e| bad(format!("array expected: {e}")))
    }
    fn uint(&mut self) -> Result<u64, WireError> {
        rmp::decode::read_int(&mut self.buf).map_err(|e| bad(format!("integer expected: {e}")))
    }
    fn node(&mut self) -> Result<NodeId, WireError> {
        let n = self.uint()?;
        NodeId::try_from(n)
            .ok()
            .filter(|n| (1..=crate::routing::cluster::MAX_NODE_ID).contains(n))
            .ok_or_else(|| bad(format!("node ID {n} out of range")))
    }
    fn boolean(&mut self) -> Result<bool, WireError> {
        rmp::decode::read_bool(&mut self.buf).map_err(|e| bad(format!("boolean expected: {e}")))
    }
    fn str(&mut self) -> Result<&'a str, WireError> {
        let n = rmp::decode::read_str_len(&mut self.buf)
            .map_err(|e| bad(format!("string expected: {e}")))? as usize;
        let s = self.take(n)?;
        std::str::from_utf8(s).map_err(|_| bad("string is not UTF-8"))
    }
    fn bin(&mut self) -> Result<&'a [u8], WireError> {
        let n = rmp::decode::read_bin_len(&mut self.buf)
            .map_err(|e| bad(format!("binary expected: {e}")))? as usize;
        self.take(n)
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(bad("truncated"));
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }
    fn nil_or_uint(&mut self) -> Result<Option<u64>, WireError> {
        if self.buf.first() == Some(&0xc0) {
            self.buf = &self.buf[1..];
            return Ok(None);
        }
        self.uint().map(Some)
    }
    fn key(&mut self) -> Result<InterestKey, WireError> {
        let realm = Uri::from(self.str()?);
        let policy = match self.str()? {
            "exact" => MatchPolicy::Exact,
            "prefix" => MatchPolicy::Prefix,
            "wildcard" => MatchPolicy::Wildcard,
            other => return Err(bad(format!("unknown match policy {other:?}"))),
        };
        let pattern = Uri::from(self.str()?);
        Ok((realm, policy, pattern))
    }
    fn entry(&mut self) -> Result<Entry, WireError> {
        match self.array()? {
            3 => Ok(Entry::Topic(self.key()?)),
            11 => {
                let (realm, policy, procedure) = self.key()?;
                let registration = self.uint()?;
                let invoke = self.str()?;
                let invoke = codec::InvokePolicy::parse(invoke)
                    .ok_or_else(|| bad(format!("unknown invocation policy {invoke:?}")))?;
                Ok(Entry::Callee(
                    realm,
                    Arc::new(RemoteCallee {
                        policy,
                        procedure,
                        registration,
                        invoke,
                        disclose_caller: self.boolean()?,
                        forward_timeout: self.boolean()?,
                        created: Arc::from(self.str()?),
                        session: self.uint()?,
                        shard: usize::try_from(self.uint()?)
                            .ok()
                            .filter(|s| *s < 1 << 16)
                            .ok_or_else(|| bad("shard out of range"))?,
                        features: features_of(self.uint()?),
                    }),
                ))
            }
            n => Err(bad(format!("interest entry of {n} elements"))),
        }
    }
    fn frame(&mut self, bytes: &Bytes) -> Result<Message, WireError> {
        let f = bytes.slice_ref(self.bin()?);
        codec::decode(Serializer::MsgPack, &f).map_err(|e| bad(format!("peer message: {e}")))
    }
    fn call_ref(&mut self) -> Result<CallRef, WireError> {
        Ok(CallRef {
            caller: self.uint()?,
            request: self.uint()?,
            callee: self.uint()?,
            registration: self.uint()?,
        })
    }
    fn peer(&mut self, bytes: &Bytes) -> Result<PeerMsg, WireError> {
        let n = self.array()?;
        let kind = self.uint()?;
        let want = |k: usize| {
            if n == k {
                Ok(())
            } else {
                Err(bad(format!("peer kind {kind}: {n} elements, {k} expected")))
            }
        };
        Ok(match kind {
            P_INVOKE => {
                want(7)?;
                let caller = self.uint()?;
                let caller_shard = usize::try_from(self.uint()?)
                    .ok()
                    .filter(|s| *s < 1 << 16)
                    .ok_or_else(|| bad("shard out of range"))?;
                let callee = self.uint()?;
                let forward_progress = self.boolean()?;
                let streaming = self.boolean()?;
                let Message::Invocation(mut invocation) = self.frame(bytes)? else {
                    return Err(bad("invoke: not an INVOCATION"));
                };
                let request = std::mem::take(&mut invocation.request);
                PeerMsg::Invoke(Invoke {
                    caller,
                    caller_shard,
                    request,
                    callee,
                    invocation,
                    forward_progress,
                    streaming,
                })
            }
            P_MORE => {
                want(7)?;
                let call = self.call_ref()?;
                let progress = self.boolean()?;
                let Message::Result(r) = self.frame(bytes)? else {
                    return Err(bad("invoke more: not a RESULT"));
                };
                PeerMsg::InvokeMore {
                    call,
                    progress,
                    payload: r.payload,
                }
            }
            P_INTERRUPT => {
                want(5)?;
                PeerMsg::Interrupt {
                    call: self.call_ref()?,
                }
            }
            P_GONE => {
                want(6)?;
                let call = self.call_ref()?;
                let interrupt = match self.uint()? {
                    0 => None,
                    1 => Some(GoneReason::Canceled),
                    2 => Some(GoneReason::Timeout),
                    3 => Some(GoneReason::CallerLeft),
                    r => return Err(bad(format!("unknown reason {r}"))),
                };
                PeerMsg::CallGone { call, interrupt }
            }
            P_RESULT => {
                want(3)?;
                let caller = self.uint()?;
                let Message::Result(r) = self.frame(bytes)? else {
                    return Err(bad("call result: not a RESULT"));
                };
                PeerMsg::CallResult { caller, result: r }
            }
            P_ERROR => {
                want(3)?;
                let caller = self.uint()?;
                let Message::Error(mut e) = self.frame(bytes)? else {
                    return Err(bad("call error: not an ERROR"));
                };
                e.request_type = codec::code::CALL;
                PeerMsg::CallError { caller, error: e }
            }
            P_REVOKE => {
                want(4)?;
                let registration = self.uint()?;
                let callee = self.uint()?;
                let reason = if self.buf.first() == Some(&0xc0) {
                    self.buf = &self.buf[1..];
                    None
                } else {
                    Some(self.str()?.to_owned())
                };
                PeerMsg::RevokeCallee {
                    registration,
                    callee,
                    reason,
                }
            }
            P_QUERY => {
                let token = self.uint()?;
                let from = usize::try_from(self.uint()?)
                    .ok()
                    .filter(|s| *s < 1 << 16)
                    .ok_or_else(|| bad("shard out of range"))?;
                let q = self.uint()?;
                let query = match (q, n) {
                    (1, 5) => MetaQuery::Sessions {
                        filter: if self.nil() {
                            None
                        } else {
                            let k = self.array()?;
                            if k > self.buf.len() {
                                return Err(bad("role count exceeds the message"));
                            }
                            let mut roles = Vec::with_capacity(k);
                            for _ in 0..k {
                                roles.push(self.str()?.to_owned());
                            }
                            Some(roles)
                        },
                    },
                    (2, 5) => MetaQuery::Get {
                        session: self.uint()?,
                    },
                    (3, 9) => {
                        let target = match self.uint()? {
                            1 => KillTarget::Session(self.uint()?),
                            2 => KillTarget::Authid(self.str()?.to_owned()),
                            3 => KillTarget::Authrole(self.str()?.to_owned()),
                            4 if self.nil() => KillTarget::All,
                            t => return Err(bad(format!("unknown kill target {t}"))),
                        };
                        MetaQuery::Kill {
                            target,
                            exclude: self.uint()?,
                            reason: Uri::from(self.str()?),
                            message: self.str()?.to_owned(),
                        }
                    }
                    (4, 5) => MetaQuery::Subscribers {
                        subscription: self.uint()?,
                    },
                    (5, 7) => MetaQuery::RemoveSubscriber {
                        subscription: self.uint()?,
                        session: self.uint()?,
                        reason: if self.nil() {
                            None
                        } else {
                            Some(self.str()?.to_owned())
                        },
                    },
                    (q, n) => return Err(bad(format!("meta query {q} of {n} elements"))),
                };
                PeerMsg::MetaQuery { token, from, query }
            }
            P_REPLY => {
                want(4)?;
                let token = self.uint()?;
                let answer = match self.uint()? {
                    1 => {
                        let k = self.array()?;
                        if k > self.buf.len() {
                            return Err(bad("session count exceeds the message"));
                        }
                        let mut ids = Vec::with_capacity(k);
                        for _ in 0..k {
                            ids.push(self.uint()?);
                        }
                        MetaAnswer::Sessions(ids)
                    }
                    2 => {
                        let Message::Result(r) = self.frame(bytes)? else {
                            return Err(bad("meta reply: not a RESULT"));
                        };
                        let args = r
                            .payload
                            .args_values()
                            .map_err(|e| bad(format!("meta reply: {e}")))?
                            .unwrap_or_default();
                        match args.into_iter().next() {
                            None => MetaAnswer::Details(None),
                            Some(codec::Value::Dict(d)) => MetaAnswer::Details(Some(d)),
                            Some(_) => return Err(bad("meta reply: details are not a dict")),
                        }
                    }
                    a => return Err(bad(format!("unknown meta answer {a}"))),
                };
                PeerMsg::MetaReply { token, answer }
            }
            k => return Err(bad(format!("unknown peer kind {k}"))),
        })
    }
    /// Consumes a nil if one is next.
    fn nil(&mut self) -> bool {
        if self.buf.first() == Some(&0xc0) {
            self.buf = &self.buf[1..];
            true
        } else {
            false
        }
    }
}

/// Decodes one message.
pub fn decode(bytes: &Bytes) -> Result<Msg, WireError> {
    let mut r = Reader { buf: bytes };
    let len = r.array()?;
    if len < 2 {
        return Err(bad("too short"));
    }
    let kind = r.uint()?;
    let want = |n: usize| {
        if len == n {
            Ok(())
        } else {
            Err(bad(format!("kind {kind}: {len} elements, {n} expected")))
        }
    };
    let msg = match u8::try_from(kind).unwrap_or(0) {
        HEARTBEAT => {
            want(7)?;
            Msg::Heartbeat {
                node: r.node()?,
                incarnation: r.uint()?,
                seq: r.uint()?,
                testaments: r.uint()?,
                leaving: r.boolean()?,
                shards: u16::try_from(r.uint()?).map_err(|_| bad("shard count"))?,
            }
        }
        INTEREST => {
            want(6)?;
            Msg::Interest {
                node: r.node()?,
                incarnation: r.uint()?,
                seq: r.uint()?,
                key: r.entry()?,
                add: r.boolean()?,
            }
        }
        SYNC_REQUEST => {
            want(2)?;
            Msg::SyncRequest { node: r.node()? }
        }
        SNAPSHOT => {
            want(7)?;
            let node = r.node()?;
            let incarnation = r.uint()?;
            let seq = r.uint()?;
            let first = r.boolean()?;
            let last = r.boolean()?;
            let n = r.array()?;
            // Each entry is at least 4 bytes: a claimed count beyond that is a lie.
            if n > r.buf.len() / 4 {
                return Err(bad("snapshot entry count exceeds the message"));
            }
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                entries.push(r.entry()?);
            }
            Msg::Snapshot {
                node,
                incarnation,
                seq,
                first,
                last,
                entries,
            }
        }
        PUBLICATION => {
            want(8)?;
            let node = r.node()?;
            let realm = Uri::from(r.str()?);
            let publisher = r.uint()?;
            let authid: Arc<str> = Arc::from(r.str()?);
            let authrole: Arc<str> = Arc::from(r.str()?);
            let trustlevel = r.nil_or_uint()?;
            let frame = r.bin()?;
            let frame = bytes.slice_ref(frame);
            let Message::Publish(p) = codec::decode(Serializer::MsgPack, &frame)
                .map_err(|e| bad(format!("publication: {e}")))?
            else {
                return Err(bad("publication: not a PUBLISH"));
            };
            let filter = crate::routing::filter::DetailFilter::from_options(&p.options)
                .map_err(|e| bad(format!("publication: {e}")))?;
            Msg::Publication {
                node,
                realm,
                publication: Arc::new(Publication {
                    id: p.request,
                    topic: p.topic,
                    publisher,
                    publisher_authid: authid,
                    publisher_authrole: authrole,
                    publisher_attributes: Arc::default(),
                    filter,
                    publisher_trustlevel: trustlevel,
                    options: p.options,
                    payload: p.payload,
                }),
            }
        }
        TESTAMENTS => {
            want(7)?;
            let node = r.node()?;
            let incarnation = r.uint()?;
            let version = r.uint()?;
            let realm = Uri::from(r.str()?);
            let session = r.uint()?;
            let n = r.array()?;
            if n > r.buf.len() / 2 {
                return Err(bad("testament count exceeds the message"));
            }
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                entries.push(bytes.slice_ref(r.bin()?));
            }
            Msg::Testaments {
                node,
                incarnation,
                version,
                realm,
                session,
                entries,
            }
        }
        PEER => {
            want(5)?;
            Msg::Peer {
                node: r.node()?,
                realm: Uri::from(r.str()?),
                shard: r.uint()?,
                msg: r.peer(bytes)?,
            }
        }
        BATCH => {
            want(2)?;
            let n = r.array()?;
            // Each part is at least one byte plus its length prefix.
            if n > r.buf.len() / 2 {
                return Err(bad("batch count exceeds the message"));
            }
            let mut parts = Vec::with_capacity(n);
            for _ in 0..n {
                let part = r.bin()?;
                if part.get(1) == Some(&BATCH) {
                    return Err(bad("nested batch"));
                }
                parts.push(bytes.slice_ref(part));
            }
            Msg::Batch(parts)
        }
        _ => return Err(bad(format!("unknown kind {kind}"))),
    };
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Payload, PublishOptions, Value};

    fn publication() -> Arc<Publication> {
        let options = PublishOptions {
            exclude_me: Some(false),
            eligible: Some(vec![7, 8]),
            disclose_me: Some(true),
            ..Default::default()
        }
        .exclude_detail("site", &["a"]);
        Arc::new(Publication {
            id: 99,
            topic: Uri::from("com.a.b"),
            publisher: 12345,
            publisher_authid: Arc::from("alice"),
            publisher_authrole: Arc::from("user"),
            publisher_attributes: Arc::default(),
            filter: crate::routing::filter::DetailFilter::from_options(&options).unwrap(),
            publisher_trustlevel: Some(3),
            options,
            payload: Payload::args(vec![Value::from("x"), Value::Int(5)]),
        })
    }

    fn callee() -> Entry {
        Entry::Callee(
            Uri::from("realm1"),
            Arc::new(RemoteCallee {
                policy: MatchPolicy::Prefix,
                procedure: Uri::from("com.p"),
                registration: 1 << 50,
                invoke: codec::InvokePolicy::RoundRobin,
                disclose_caller: true,
                forward_timeout: false,
                created: Arc::from("2026-12-06T00:00:00Z"),
                session: 42,
                shard: 3,
                features: Features {
                    callee_call_canceling: true,
                    callee_payload_passthru: true,
                    ..Features::default()
                },
            }),
        )
    }

    /// Every kind of peer message that crosses nodes.
    fn peer_messages() -> Vec<PeerMsg> {
        let call = CallRef {
            caller: 1,
            request: 2,
            callee: 3,
            registration: 4,
        };
        let payload = Payload::args(vec![Value::from("x")]);
        vec![
            PeerMsg::Invoke(Invoke {
                caller: 1,
                caller_shard: 2,
                request: 3,
                callee: 4,
                invocation: Box::new(codec::Invocation {
                    request: 0,
                    registration: 5,
                    details: codec::InvocationDetails {
                        receive_progress: Some(true),
                        timeout: Some(100),
                        ..Default::default()
                    },
                    payload: payload.clone(),
                }),
                forward_progress: true,
                streaming: false,
            }),
            PeerMsg::InvokeMore {
                call,
                progress: true,
                payload: payload.clone(),
            },
            PeerMsg::Interrupt { call },
            PeerMsg::CallGone {
                call,
                interrupt: Some(GoneReason::Timeout),
            },
            PeerMsg::CallGone {
                call,
                interrupt: None,
            },
            PeerMsg::CallResult {
                caller: 7,
                result: Box::new(codec::CallResult {
                    request: 8,
                    details: codec::ResultDetails {
                        progress: Some(true),
                        ..Default::default()
                    },
                    payload: payload.clone(),
                }),
            },
            PeerMsg::call_error(
                7,
                8,
                codec::Dict::new(),
                Uri::from("wamp.error.canceled"),
                payload,
            ),
            PeerMsg::RevokeCallee {
                registration: 9,
                callee: 10,
                reason: Some("why".into()),
            },
            PeerMsg::RevokeCallee {
                registration: 9,
                callee: 10,
                reason: None,
            },
            PeerMsg::MetaQuery {
                token: 3,
                from: 1,
                query: MetaQuery::Sessions {
                    filter: Some(vec!["admin".into(), "user".into()]),
                },
            },
            PeerMsg::MetaQuery {
                token: 3,
                from: 1,
                query: MetaQuery::Sessions { filter: None },
            },
            PeerMsg::MetaQuery {
                token: 3,
                from: 1,
                query: MetaQuery::Get { session: 77 },
            },
            PeerMsg::MetaQuery {
                token: 3,
                from: 1,
                query: MetaQuery::Kill {
                    target: KillTarget::Authrole("bot".into()),
                    exclude: 5,
                    reason: Uri::from("wamp.close.killed"),
                    message: "bye".into(),
                },
            },
            PeerMsg::MetaQuery {
                token: 3,
                from: 1,
                query: MetaQuery::Kill {
                    target: KillTarget::All,
                    exclude: 0,
                    reason: Uri::from("wamp.close.killed"),
                    message: String::new(),
                },
            },
            PeerMsg::MetaQuery {
                token: 3,
                from: 1,
                query: MetaQuery::Subscribers { subscription: 9 },
            },
            PeerMsg::MetaQuery {
                token: 3,
                from: 1,
                query: MetaQuery::RemoveSubscriber {
                    subscription: 9,
                    session: 8,
                    reason: None,
                },
            },
            PeerMsg::MetaReply {
                token: 3,
                answer: MetaAnswer::Sessions(vec![1, 2, 1 << 52]),
            },
            PeerMsg::MetaReply {
                token: 3,
                answer: MetaAnswer::Details(None),
            },
            PeerMsg::MetaReply {
                token: 3,
                answer: MetaAnswer::Details(Some(
                    [("authid".to_string(), Value::from("alice"))]
                        .into_iter()
                        .collect(),
                )),
            },
        ]
    }

    #[test]
    fn peer_messages_roundtrip_and_garbage_never_panics() {
        for msg in peer_messages() {
            assert!(crosses_nodes(&msg));
            let m = Msg::Peer {
                node: 2,
                realm: Uri::from("realm1"),
                shard: 1,
                msg,
            };
            let b = encode(&m);
            let back = decode(&b).unwrap();
            // Payloads come back still encoded: compare the encodings.
            assert_eq!(encode(&back), b, "{m:?}");
            for n in 0..b.len() {
                assert!(decode(&b.slice(..n)).is_err(), "truncated at {n}");
            }
            for i in 0..b.len() {
                for x in [0x00, 0x7f, 0xc0, 0xdd, 0xff] {
                    let mut v = b.to_vec();
                    v[i] = x;
                    let _ = decode(&Bytes::from(v));
                }
            }
        }
        // A peer message that never crosses nodes is refused by the reader.
        let m = PeerMsg::RegisterRejected {
            token: 1,
            error: Uri::from("x"),
        };
        assert!(!crosses_nodes(&m));
        let b = encode(&Msg::Peer {
            node: 2,
            realm: Uri::from("r"),
            shard: 0,
            msg: m,
        });
        assert!(decode(&b).is_err());
    }

    #[test]
    fn registry_keys_are_valid_nats_keys_and_distinct() {
        let a = registry_key("realm1", MatchPolicy::Exact, "com.a b/ü*>");
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-/_=.".contains(c)));
        assert_ne!(
            a,
            registry_key("realm1", MatchPolicy::Prefix, "com.a b/ü*>")
        );
        assert_ne!(
            registry_key("a", MatchPolicy::Exact, "bc"),
            registry_key("ab", MatchPolicy::Exact, "c")
        );
    }

    #[test]
    fn every_message_roundtrips() {
        let key = Entry::Topic((
            Uri::from("realm1"),
            MatchPolicy::Wildcard,
            Uri::from("a..c"),
        ));
        let msgs = [
            Msg::Heartbeat {
                node: 3,
                incarnation: 77,
                seq: 5,
                testaments: 2,
                leaving: true,
                shards: 4,
            },
            Msg::Interest {
                node: 2047,
                incarnation: 1,
                seq: 9,
                key: key.clone(),
                add: false,
            },
            Msg::Interest {
                node: 2,
                incarnation: 1,
                seq: 10,
                key: callee(),
                add: true,
            },
            Msg::SyncRequest { node: 1 },
            Msg::Testaments {
                node: 9,
                incarnation: 3,
                version: 4,
                realm: Uri::from("realm1"),
                session: 12345,
                entries: vec![encode_testament(&(
                    Uri::from("com.will"),
                    Payload::args(vec![Value::from("bye")]),
                    PublishOptions::default(),
                ))],
            },
            Msg::Snapshot {
                node: 4,
                incarnation: 8,
                seq: 10,
                first: true,
                last: false,
                entries: vec![
                    key.clone(),
                    Entry::Topic((Uri::from("r"), MatchPolicy::Prefix, Uri::from("x"))),
                    callee(),
                ],
            },
        ];
        for m in msgs {
            let back = decode(&encode(&m)).unwrap();
            assert_eq!(format!("{m:?}"), format!("{back:?}"));
        }
        let p = publication();
        let m = Msg::Publication {
            node: 5,
            realm: Uri::from("realm1"),
            publication: p.clone(),
        };
        let Msg::Publication {
            node,
            realm,
            publication: q,
        } = decode(&encode(&m)).unwrap()
        else {
            panic!("not a publication");
        };
        assert_eq!((node, realm.as_str()), (5, "realm1"));
        let batch = encode(&Msg::Batch(vec![
            encode(&m),
            encode(&Msg::SyncRequest { node: 2 }),
        ]));
        let Msg::Batch(parts) = decode(&batch).unwrap() else {
            panic!("not a batch");
        };
        assert_eq!(parts.len(), 2);
        assert!(matches!(
            decode(&parts[0]).unwrap(),
            Msg::Publication { .. }
        ));
        assert!(
            decode(&encode(&Msg::Batch(vec![batch.clone()]))).is_err(),
            "nested"
        );
        assert_eq!(
            (q.id, q.publisher, q.topic.as_str()),
            (99, 12345, "com.a.b")
        );
        assert_eq!(
            (&*q.publisher_authid, &*q.publisher_authrole),
            ("alice", "user")
        );
        assert_eq!(q.publisher_trustlevel, Some(3));
        assert_eq!(q.options, p.options);
        let a = q.payload.args_values().unwrap().unwrap();
        assert_eq!((&a[0], a[1].as_id()), (&Value::from("x"), Some(5)));
    }

    #[test]
    fn garbage_is_an_error_never_a_panic() {
        let good = encode(&Msg::Snapshot {
            node: 4,
            incarnation: 8,
            seq: 10,
            first: true,
            last: true,
            entries: vec![
                Entry::Topic((Uri::from("r"), MatchPolicy::Exact, Uri::from("x"))),
                callee(),
            ],
        });
        // Every truncation, and every single-byte corruption, of a valid message.
        for n in 0..good.len() {
            assert!(decode(&good.slice(..n)).is_err(), "truncated at {n}");
        }
        for i in 0..good.len() {
            for b in [0x00, 0x7f, 0xc0, 0xdd, 0xff] {
                let mut v = good.to_vec();
                v[i] = b;
                let _ = decode(&Bytes::from(v));
            }
        }
        let pubm = encode(&Msg::Publication {
            node: 5,
            realm: Uri::from("realm1"),
            publication: publication(),
        });
        for n in 0..pubm.len() {
            assert!(decode(&pubm.slice(..n)).is_err(), "truncated at {n}");
        }
        // Out-of-range node, unknown kind, a huge claimed count.
        assert!(decode(&encode(&Msg::SyncRequest { node: 0 })).is_err());
        assert!(decode(&Bytes::from_static(&[0x92, 0x09, 0x01])).is_err());
        let mut lie = vec![0x97, 0x03, 0x01, 0x01, 0x01, 0xc3, 0xc3, 0xdd];
        lie.extend_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&Bytes::from(lie)).is_err());
    }
}
