//! Routing: the broker (pub/sub), the dealer (RPC) and the tables they share.
//!
//! So far this holds the URI matching index ([`matcher::UriIndex`]) that both the broker (all
//! subscriptions matching a topic) and the dealer (the one best registration for a procedure)
//! are built on.

pub mod matcher;
