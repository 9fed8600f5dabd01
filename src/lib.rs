//! Switchyard: a thread-per-core WAMP v2 router, its client library and codecs.
//!
//! The crate is three things:
//!
//! - **The router library**: [`Router::start`] runs a router from a [`RouterConfig`] (built in
//!   code, or from the service's config file with [`RouterConfig::from_file`]): one glommio
//!   executor per shard, listeners for WebSocket and RawSocket over TCP, TLS and Unix sockets,
//!   and in-process sessions through [`Router::local_connector`] (no socket, no
//!   serialization: see [`net::inproc`]).
//! - **The client library**, [`client`]: a WAMP client on the same runtime that talks to this
//!   router or any other, over every transport above, with authentication, the Advanced
//!   Profile RPC and pub/sub options, and automatic reconnect.
//! - **The codecs** ([`codec`]): typed WAMP messages, JSON and MessagePack.
//!
//! The `switchyard` binary (src/main.rs) is a thin shell around [`Router`]: flags and the
//! config file become a [`RouterConfig`].
//!
//! # Embedding a router with an in-process client
//!
//! ```
//! use switchyard::client::{CallOptions, Client, ClientConfig, Dict, RegisterOptions, Value, Yield};
//! use switchyard::{Router, RouterConfig};
//!
//! // No listeners: only in-process sessions (add `listeners` to serve the network too).
//! let router = Router::start(RouterConfig { shards: 1, ..Default::default() })?;
//! let connector = router.local_connector(); // Send + Clone: hand it to any thread
//! let app = glommio::LocalExecutorBuilder::default().spawn(move || async move {
//!     // The URL is not used in process; the realm is.
//!     let client = Client::connect_local(&connector, ClientConfig::new("", "realm1")).await?;
//!     client
//!         .register("com.example.add", RegisterOptions::default(), |inv| async move {
//!             let sum: u64 = inv.args.iter().filter_map(Value::as_u64).sum();
//!             Ok(Yield::args(vec![Value::UInt(sum)]))
//!         })
//!         .await?;
//!     let args = vec![Value::UInt(2), Value::UInt(3)];
//!     let r = client.call("com.example.add", args, Dict::new(), CallOptions::default()).await?;
//!     assert_eq!(r.args, vec![Value::UInt(5)]);
//!     client.leave().await
//! })?;
//! app.join()??;
//! router.shutdown_handle().shutdown();
//! router.join()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(feature = "router")]
pub mod auth;
#[cfg(feature = "router")]
pub mod authz;
#[cfg(feature = "router")]
pub mod cli;
#[cfg(any(feature = "client-glommio", feature = "client-tokio"))]
pub mod client;
#[cfg(feature = "router")]
pub mod cluster;
pub mod codec;
#[cfg(feature = "router")]
pub mod config;
#[cfg(feature = "router")]
pub mod logging;

#[cfg(feature = "router")]
pub mod metrics;
pub mod net;
#[cfg(feature = "router")]
pub mod router_config;
#[cfg(feature = "router")]
pub mod routing;
#[cfg(feature = "router")]
pub mod session;
#[cfg(feature = "router")]
pub mod shard;
pub mod util;

#[cfg(feature = "router")]
pub use router_config::RouterConfig;
#[cfg(feature = "router")]
pub use shard::{LocalConnector, Router};
