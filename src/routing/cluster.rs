//! What the routing core says to, and hears from, the other nodes of a cluster (sans-IO).
//!
//! A cluster is several Switchyard processes (*nodes*) acting as one router over NATS; the
//! transport lives in `crate::cluster`. The routing core only knows these things:
//!
//! - **Node interest.** The home shard of a `(realm, policy, pattern)` knows when the first shard
//!   of this node gains a subscriber of it and when the last one loses it; it then emits
//!   [`ClusterOut::Interest`]. The cluster layer tells the other nodes, and hands what they
//!   announce to every shard here as [`ClusterIn::Interest`]: each shard keeps a replica of
//!   which *nodes* have subscribers of which patterns (`Broker`'s remote index).
//! - **Publications.** A publication made on this node (a client's or the router's own meta
//!   event) is matched against that replica after local routing; ONE
//!   [`ClusterOut::Publish`] names every interested node, so the network carries it once per
//!   interested node, never once per subscriber. A publication from another node arrives as
//!   [`ClusterIn::Publish`] on one shard (chosen by its publisher, so one publisher's events
//!   stay in order), which delivers it to its own subscribers and to the interested shards of
//!   this node, never back to the cluster.
//! - **Departures.** A node that stopped (or was declared dead) is [`ClusterIn::NodeGone`]: its
//!   interest is dropped on every shard.
//! - **Testaments.** Each change of a local session's testaments is [`ClusterOut::Testaments`]
//!   (the list ends with the session's `wamp.session.on_leave`); the other nodes keep a copy,
//!   and when a node dies one survivor publishes its sessions' testaments and leave events
//!   ([`ClusterIn::PublishTestament`]).
//! - **Registrations.** The home shard of a registration claims the procedure for this node
//!   ([`ClusterOut::Claim`] / [`ClusterIn::Claimed`]; the cluster's registry checks `single`
//!   and invocation policies across nodes) before the node's first callee is accepted, and
//!   announces each local callee ([`ClusterOut::Callee`]); every shard keeps the other nodes'
//!   callees in its registration replica ([`ClusterIn::Callee`]) under a remote shard ID
//!   ([`remote_shard`]).
//! - **Calls and meta queries.** A peer message for a remote shard ID is
//!   [`ClusterOut::Peer`] (the call protocol crosses nodes unchanged) and arrives there as
//!   [`ClusterIn::Peer`]; session meta queries fan out as [`ClusterOut::Query`].
//!
//! Router-scope IDs carry the node ID in their high bits ([`id_base`]), so they are unique
//! cluster-wide and stay below 2^53.

use std::sync::Arc;

use crate::codec::uri::MatchPolicy;
use crate::codec::Uri;

use super::peer::Publication;

/// A node of the cluster: `1..=MAX_NODE_ID`.
pub type NodeId = u16;

/// The largest node ID (11 bits: with 42 bits per node, router-scope IDs stay below 2^53).
pub const MAX_NODE_ID: NodeId = 2047;

/// Bits of a router-scope ID below the node ID.
const NODE_SHIFT: u32 = 42;

/// The first router-scope ID of node `node` (0 outside a cluster): its IDs are
/// `id_base(node) + n`, `n < 2^42`.
pub fn id_base(node: Option<NodeId>) -> u64 {
    node.map_or(0, |n| u64::from(n.min(MAX_NODE_ID)) << NODE_SHIFT)
}

/// The subscription ID of `(realm, policy, pattern)` in a cluster: the same on every node
/// without asking anyone (FNV-1a, 64 bits, folded into `[1, 2^53]`), so a client that
/// subscribes on two nodes sees one ID. Two patterns hashing to the same ID on one node is
/// detected there (the second gets a sequential ID of the node instead); with 53 bits that
/// takes about 10^8 patterns in use at once to become likely.
pub fn subscription_id(realm: &str, policy: MatchPolicy, pattern: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    for part in [
        realm.as_bytes(),
        &[0xff],
        policy.as_str().as_bytes(),
        &[0xff],
        pattern.as_bytes(),
    ] {
        for b in part {
            h ^= u64::from(*b);
            h = h.wrapping_mul(PRIME);
        }
    }
    // Fold the high bits in, then keep 53.
    let h = (h ^ (h >> 29)) & ((1 << 53) - 1);
    h.max(1)
}

/// Shard IDs from this one on name a shard of another node ([`remote_shard`]): the dealer keeps
/// them in its callee lists and call tables like any shard, and `Ctx::peer` hands a message
/// addressed to one to the cluster layer ([`ClusterOut::Peer`]) instead of the mesh.
pub const REMOTE_SHARD: usize = 1 << 32;

/// Shards per node in a remote shard ID.
const SHARDS_PER_NODE: usize = 1 << 16;

/// The shard ID naming shard `shard` of node `node`.
pub fn remote_shard(node: NodeId, shard: usize) -> usize {
    REMOTE_SHARD + usize::from(node) * SHARDS_PER_NODE + shard % SHARDS_PER_NODE
}

/// The node and shard a remote shard ID names; None for a shard of this node.
pub fn split_remote(shard: usize) -> Option<(NodeId, usize)> {
    let r = shard.checked_sub(REMOTE_SHARD)?;
    let node = NodeId::try_from(r / SHARDS_PER_NODE).ok()?;
    Some((node, r % SHARDS_PER_NODE))
}

/// A callee of a registration as the other nodes learn it from its node (announced by the
/// home shard of the registration there; [`ClusterOut::Callee`], [`ClusterIn::Callee`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteCallee {
    pub policy: MatchPolicy,
    pub procedure: Uri,
    /// The registration's ID: the same on every node (the registry holds it).
    pub registration: crate::codec::Id,
    pub invoke: crate::codec::InvokePolicy,
    pub disclose_caller: bool,
    pub forward_timeout: bool,
    pub created: Arc<str>,
    pub session: crate::routing::SessionId,
    /// The callee's shard on its node.
    pub shard: usize,
    pub features: crate::routing::session::Features,
}

/// A home shard's claim of `(policy, procedure)` for this node ([`ClusterOut::Claim`]): the
/// answer goes to `shard` with `token`; `registration` is the ID to use if no node holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub token: u64,
    pub shard: usize,
    pub policy: MatchPolicy,
    pub procedure: Uri,
    pub invoke: crate::codec::InvokePolicy,
    pub registration: crate::codec::Id,
}

/// The cluster-wide registry's answer to a [`ClusterOut::Claim`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimResult {
    /// This node may serve the procedure: under this registration ID (the first claimant's).
    Granted(crate::codec::Id),
    /// Refused: the error URI for the REGISTER.
    Refused(&'static str),
}

/// From a shard to the cluster layer (carried by `Action::Cluster`).
#[derive(Debug, Clone)]
pub enum ClusterOut {
    /// This node gained (`add`) or lost its interest in `(policy, pattern)`: sent by the home
    /// shard of the pattern, so the changes of one pattern are in order.
    Interest {
        policy: MatchPolicy,
        pattern: Uri,
        add: bool,
    },
    /// Deliver `publication` on each of `nodes` (once per node); with `everywhere`, on every
    /// live node (a `retain` publication, or one an event history rule records: every node
    /// keeps it, whether or not it has subscribers now).
    Publish {
        nodes: Vec<NodeId>,
        publication: Arc<Publication>,
        everywhere: bool,
    },
    /// A local session's testaments changed: all of them now, in publication order (empty:
    /// none left, or published by this node as the session left). The other nodes keep them
    /// and publish them if this node dies.
    Testaments {
        session: crate::routing::SessionId,
        testaments: Vec<Testament>,
    },
    /// From the home shard of a registration: a local callee joined (`add`) or left it. The
    /// other nodes route calls to it (their replicas hold it as a remote callee).
    Callee {
        add: bool,
        callee: Box<RemoteCallee>,
    },
    /// From the home shard: this node wants to serve `(policy, procedure)` (its first local
    /// callee): claim it in the cluster-wide registry, which checks `single` and the
    /// invocation policy against the other nodes; the answer is [`ClusterIn::Claimed`] (see
    /// [`Claim`]).
    Claim(Claim),
    /// From the home shard: this node no longer serves `(policy, procedure)` (its last local
    /// callee left): release the claim.
    Release { policy: MatchPolicy, procedure: Uri },
    /// A peer message of the call protocol for shard `shard` of node `node` (an `Invoke` to a
    /// remote callee, a result to a remote caller, …; see [`REMOTE_SHARD`]).
    Peer {
        node: NodeId,
        shard: usize,
        msg: super::peer::PeerMsg,
    },
    /// A meta query about sessions (`wamp.session.*`, subscriber lists) for every shard of
    /// every other node: they answer [`PeerMsg::MetaReply`](super::peer::PeerMsg::MetaReply)
    /// `token` to `shard`, which first learns how many answers to wait for
    /// ([`ClusterIn::Expect`]).
    Query {
        token: u64,
        shard: usize,
        query: super::peer::MetaQuery,
    },
}

/// A testament as the cluster carries it: topic, payload, publish options.
pub type Testament = (Uri, crate::codec::Payload, crate::codec::PublishOptions);

/// From the cluster layer to a shard.
#[derive(Debug, Clone)]
pub enum ClusterIn {
    /// Node `node` gained or lost interest in `(policy, pattern)` (every shard gets it).
    Interest {
        node: NodeId,
        policy: MatchPolicy,
        pattern: Uri,
        add: bool,
    },
    /// Node `node` is gone: forget all its interest and callees, fail the calls in flight to
    /// its callees (`wamp.error.canceled`) and forget the invocations its callers made (every
    /// shard). With `announce` (one node of the cluster does it: the lowest live one), the
    /// home shards publish `wamp.registration.on_unregister` for each of its callees, and
    /// `on_delete` for a registration that had no other callee anywhere.
    NodeGone { node: NodeId, announce: bool },
    /// Node `node` re-synchronises (a snapshot of its interest follows): forget its interest
    /// and callees, keep the calls in flight (every shard).
    NodeReset { node: NodeId },
    /// Node `node`'s callee joined (`add`) or left a registration (every shard).
    Callee {
        node: NodeId,
        add: bool,
        callee: Box<RemoteCallee>,
    },
    /// How many answers the meta query [`ClusterOut::Query`] `token` will get from the other
    /// nodes (one per shard of each live node; 0 when cut off from the cluster).
    Expect { token: u64, replies: usize },
    /// The registry's answer to [`ClusterOut::Claim`] `token` (to the shard that asked).
    Claimed { token: u64, result: ClaimResult },
    /// A peer message of the call protocol from another node (its shard IDs already made
    /// remote: a reply to it goes back to that node).
    Peer(super::peer::PeerMsg),
    /// A publication made on another node, for this node's subscribers.
    Publish(Arc<Publication>),
    /// A testament of a session of a node that died, for this node to publish as the router
    /// (to every matching subscriber on every node).
    PublishTestament(Box<Testament>),
}
