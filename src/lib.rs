//! Switchyard: a thread-per-core WAMP v2 router, its client library and codecs.

pub mod auth;
pub mod authz;
pub mod cli;
pub mod client;
pub mod codec;
pub mod config;
pub mod logging;
pub mod meta;
pub mod metrics;
pub mod net;
pub mod routing;
pub mod shard;

pub use config::RouterConfig;
pub use shard::{LocalConnector, Router};
