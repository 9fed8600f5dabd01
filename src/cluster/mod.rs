//! A cluster: several Switchyard processes (*nodes*) act as one router over NATS.
//!
//! Each node runs one extra thread, the *bridge*: a current-thread tokio runtime with one NATS
//! connection (async-nats). Shards never wait on it: they hand it what the routing core emits
//! (`Action::Cluster`, [`ClusterOut`](crate::routing::cluster::ClusterOut)) through
//! `ClusterHandle::send` (a bounded queue for publications, where a full queue drops and
//! counts; an unbounded one for the few interest and testament changes), and the bridge hands
//! what other nodes send to the shards through a [`ShardSink`] (the mesh inboxes), as
//! [`ClusterIn`]. See `docs/cluster.md` for the design: subjects ([`wire::Subjects`]),
//! interest replication and snapshots ([`members`]), failure handling and what is guaranteed.

#[cfg(feature = "cluster")]
mod bridge;
pub mod members;
#[cfg(feature = "cluster")]
pub mod registry;
pub mod wire;

use std::path::PathBuf;
use std::time::Duration;

use crate::codec::Uri;
use crate::routing::cluster::{ClusterIn, NodeId};
#[cfg(feature = "cluster")]
pub use bridge::{start, ClusterHandle};

/// How a node joins its cluster (built from `--cluster` and friends by `router_config`).
/// `Debug` leaves the credentials out.
#[derive(Clone)]
pub struct ClusterConfig {
    /// NATS server URLs (`nats://host:port`, `tls://…`); the client fails over between them.
    pub urls: Vec<String>,
    /// This node's ID, `1..=2047`, unique in the cluster.
    pub node_id: NodeId,
    /// The cluster's name: the first token of every subject, so several clusters can share
    /// one NATS system.
    pub name: String,
    /// A node not heard from for this long is gone.
    pub node_timeout: Duration,
    /// NATS token authentication.
    pub token: Option<String>,
    /// NATS user and password.
    pub user: Option<(String, String)>,
    /// Trust this CA (PEM) for the NATS servers' TLS certificates, and require TLS.
    pub tls_ca: Option<PathBuf>,
    /// Publications waiting for the bridge at most (then they are dropped and counted); the
    /// same bound again for call-protocol messages.
    pub queue: usize,
    /// Copies of the registry bucket JetStream keeps (1..=5; 3 with a 3-server NATS cluster).
    pub replicas: usize,
}

impl std::fmt::Debug for ClusterConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterConfig")
            .field("urls", &self.urls)
            .field("node_id", &self.node_id)
            .field("name", &self.name)
            .field("node_timeout", &self.node_timeout)
            .field("token", &self.token.as_ref().map(|_| "(set)"))
            .field("user", &self.user.as_ref().map(|(u, _)| u))
            .field("tls_ca", &self.tls_ca)
            .field("queue", &self.queue)
            .field("replicas", &self.replicas)
            .finish()
    }
}

impl ClusterConfig {
    /// Heartbeats go out this often: a sixth of the node timeout (at least 50 ms), so a few
    /// lost heartbeats do not declare a live node dead.
    pub fn heartbeat_interval(&self) -> Duration {
        (self.node_timeout / 6).max(Duration::from_millis(50))
    }
}

/// Where the bridge delivers what other nodes send: the shards' inboxes.
pub trait ShardSink: Send + Sync + 'static {
    fn shard_count(&self) -> usize;
    /// Deliver `batch` to `shard`, in order.
    fn deliver(&self, shard: usize, batch: Vec<(Uri, ClusterIn)>);
}
