//! Routing: the broker (pub/sub), the dealer (RPC) and the tables they share.
//!
//! The routing core is sans-IO: per realm and per shard, a [`RealmShard`] is fed session
//! messages, cross-shard [`PeerMsg`]s, session departures and the time, and answers with
//! [`Action`]s for the runtime to carry out. See [`realm`] for the entry points, [`peer`] for
//! the cross-shard protocol, [`broker`] and [`dealer`] for pub/sub and RPC.
//!
//! - [`matcher`]: the URI matching index ([`matcher::UriIndex`]) both tables are built on.
//! - [`ids`]: router-scope ID allocation, home shards, global IDs.
//! - [`session`]: what routing knows about a session ([`SessionRef`], [`Features`]).

pub mod broker;
pub mod dealer;
pub mod ids;
pub mod matcher;
pub mod peer;
pub mod realm;
pub mod session;

#[cfg(test)]
mod tests;

pub use ids::{SessionId, ShardId};
pub use peer::PeerMsg;
pub use realm::{Action, RealmShard, RoutingConfig};
pub use session::{Features, SessionRef};
