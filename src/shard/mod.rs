//! Shards: one glommio executor per core, each owning a set of sessions.

pub mod mesh;
pub mod outbound;
pub mod session;
