//! Routing: the broker (pub/sub), the dealer (RPC) and the tables they share.
//!
//! The routing core is sans-IO. Per realm and per shard, a [`RealmShard`] is fed session
//! messages, cross-shard [`PeerMsg`]s, session departures and the time, and answers with
//! [`Action`]s the runtime carries out. No sockets, threads, executors or clocks live here, so
//! every test runs N shards in one thread with virtual time (see `tests/`).
//!
//! ```text
//!  session ──Message──► RealmShard(shard A) ──Action::Send/SendMany──► sessions on A
//!                           │   ▲
//!               Action::Peer│   │on_peer   (FIFO per ordered pair of shards)
//!                           ▼   │
//!                       RealmShard(shard B) ──► sessions on B
//! ```
//!
//! Runtime contract:
//!
//! - call [`RealmShard::on_message`] for each message of an established session of the realm;
//! - deliver each `Action::Peer { shard, msg }` to the same realm's `RealmShard` on `shard`, in
//!   order per (source, destination) pair;
//! - call [`RealmShard::on_session_join`] when a session joins the realm;
//! - after `Action::Abort` or `Action::Kill` (or any other end of a session), call
//!   [`RealmShard::on_session_leave`];
//! - call [`RealmShard::on_tick`] at [`RealmShard::next_deadline`];
//! - optionally, share a [`Shedding`] set with [`RealmShard::shed_with`], mark the sessions
//!   whose events are to be dropped, and take the count of events dropped for them.
//!
//! Files:
//!
//! - [`realm`]: the entry points, [`Action`], [`RoutingConfig`], error URIs.
//! - [`broker`]: subscriptions, the replicated shard-interest table, publication fan-out.
//! - [`filter`]: who receives a publication (publisher options, the embedder's filter).
//! - [`dealer`]: the replicated registration table, call routing, cancel and timeouts.
//! - [`retained`]: event retention (the newest retained event per topic, on every shard).
//! - [`history`]: event history (`[[realm.history]]` rules, kept on each rule's home shard).
//! - [`cluster`]: what the core tells other nodes of a cluster and hears from them.
//! - [`peer`]: the cross-shard protocol (every [`PeerMsg`] and the order it relies on).
//! - [`meta`]: the WAMP Meta API (procedures, lifecycle and session events, testaments).
//! - [`ids`]: router-scope ID allocation, home shards, global IDs.
//! - [`session`]: what routing knows about a session ([`SessionRef`], [`Features`]).
//! - [`matcher`]: the URI matching index both tables are built on.
//! - [`shedding`]: sessions whose events the runtime is shedding (left out of fan-out).

pub mod broker;
pub mod cluster;
pub mod dealer;
pub mod filter;
pub mod history;
pub mod ids;
pub mod matcher;
pub mod meta;
pub mod peer;
pub mod realm;
pub mod retained;
pub mod session;
pub mod shedding;

#[cfg(test)]
mod tests;

pub use filter::{PublishFilter, SharedPublishFilter};
pub use ids::{SessionId, ShardId};
pub use meta::SessionDetails;
pub use peer::PeerMsg;
pub use realm::{Action, RealmShard, RoutingConfig};
pub use session::{Attributes, Features, SessionRef};
pub use shedding::Shedding;
