//! Multi-shard tests of the routing core: a [`harness::Cluster`] of 1–3 realm shards with
//! FIFO channels between them.

mod broker;
mod cluster;
mod dealer;
mod filter;
mod fuzz;
mod harness;
mod history;
mod meta;
mod passthru;
mod ppt;
mod progress_compat;
mod reroute;
mod retention;
mod revocation;
mod revoke;
mod trustlevel;
