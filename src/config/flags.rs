//! The `switchyard` command line as data: flags (clap derive) and subcommands. The flags are
//! merged over the config file by [`crate::router_config::build_settings`].

use super::{LogFormat, SlowConsumerPolicy};
use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// A thread-per-core WAMP v2 router.
#[derive(Parser, Debug, Clone, Default)]
#[command(name = "switchyard", version, about)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// WebSocket listen address (repeatable). Default 127.0.0.1:8080.
    #[arg(long = "ws", value_name = "ADDR")]
    pub ws: Vec<String>,
    /// Serve no plain WebSocket listener.
    #[arg(long)]
    pub no_ws: bool,
    /// HTTP path of the WebSocket endpoint.
    #[arg(long, value_name = "PATH")]
    pub ws_path: Option<String>,
    /// RawSocket TCP listen address (repeatable). Default 127.0.0.1:8081.
    #[arg(long = "rs", value_name = "ADDR")]
    pub rs: Vec<String>,
    /// Serve no plain RawSocket TCP listener.
    #[arg(long)]
    pub no_rs: bool,
    /// RawSocket Unix socket path (repeatable).
    #[arg(long = "unix", value_name = "PATH")]
    pub unix: Vec<PathBuf>,
    /// WebSocket over TLS listen address (repeatable; needs --tls-cert and --tls-key).
    #[arg(long = "wss", value_name = "ADDR")]
    pub wss: Vec<String>,
    /// RawSocket over TLS listen address (repeatable; needs --tls-cert and --tls-key).
    #[arg(long = "rss", value_name = "ADDR")]
    pub rss: Vec<String>,
    /// PEM certificate chain for TLS listeners.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for TLS listeners.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Number of shards (executors); default one per CPU.
    #[arg(long, value_name = "N")]
    pub shards: Option<usize>,
    /// CPUs to pin shards to, e.g. `0,1` or `2-3`.
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<String>,
    /// Realm to serve with anonymous access (repeatable). Default realm1.
    #[arg(long = "realm", value_name = "NAME")]
    pub realms: Vec<String>,
    /// Largest WebSocket message accepted, in bytes.
    #[arg(long, value_name = "BYTES")]
    pub max_message_size_ws: Option<usize>,
    /// Largest size a compressed (permessage-deflate) WebSocket message may inflate to, in bytes.
    #[arg(long, value_name = "BYTES")]
    pub max_decompressed_size_ws: Option<usize>,
    /// Largest RawSocket message accepted, in bytes (announced as 2^n, at most 16 MiB).
    #[arg(long, value_name = "BYTES")]
    pub max_message_size_rs: Option<usize>,
    /// Outbound queue limit per session, in bytes.
    #[arg(long, value_name = "BYTES")]
    pub outbound_queue_bytes: Option<usize>,
    /// What to do with a session whose outbound queue is full.
    #[arg(long, value_enum, value_name = "POLICY")]
    pub slow_consumer: Option<SlowConsumerPolicy>,
    /// Time allowed between transport open and HELLO, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub hello_timeout_ms: Option<u64>,
    /// Time allowed for the TLS and transport handshakes, in milliseconds.
    #[arg(long, value_name = "MS")]
    pub handshake_timeout_ms: Option<u64>,
    /// Time a message may take to arrive once its first byte is in, in milliseconds; a slower
    /// peer is disconnected.
    #[arg(long, value_name = "MS")]
    pub frame_timeout_ms: Option<u64>,
    /// Disconnect a joined session that sends nothing for this long, in milliseconds (0, the
    /// default: never).
    #[arg(long, value_name = "MS")]
    pub idle_timeout_ms: Option<u64>,
    /// Send a transport ping to a joined session silent for this long, in milliseconds, and
    /// disconnect it if it stays silent as long again (0, the default: no pings).
    #[arg(long, value_name = "MS")]
    pub ping_interval_ms: Option<u64>,
    /// Maximum connections per process.
    #[arg(long, value_name = "N")]
    pub max_connections: Option<usize>,
    /// Calls one session may have outstanding; more are answered with ERROR
    /// switchyard.error.limit_exceeded.
    #[arg(long, value_name = "N")]
    pub max_pending_calls_per_session: Option<usize>,
    /// Subscriptions one session may hold; more are answered with ERROR
    /// switchyard.error.limit_exceeded.
    #[arg(long, value_name = "N")]
    pub max_subscriptions_per_session: Option<usize>,
    /// Registrations one session may hold; more are answered with ERROR
    /// switchyard.error.limit_exceeded.
    #[arg(long, value_name = "N")]
    pub max_registrations_per_session: Option<usize>,
    /// Retained events (PUBLISH.Options.retain, the latest per topic) one realm keeps; 0 turns
    /// event retention off.
    #[arg(long, value_name = "N")]
    pub max_retained_events: Option<usize>,
    /// Encoded bytes of retained events one realm keeps.
    #[arg(long, value_name = "BYTES")]
    pub max_retained_bytes: Option<usize>,
    /// Send progressive call results only to callees that announce call canceling, as the
    /// spec requires (by default a callee announcing progressive_call_results alone gets them).
    #[arg(long)]
    pub strict_progressive_results: bool,
    /// Microseconds an idle shard spins before parking (lower latency, more CPU).
    #[arg(long, value_name = "US")]
    pub spin_before_park_us: Option<u64>,
    /// Microseconds a session that just read keeps asking its socket (yielding in between)
    /// before it waits for readiness: fewer wake-ups under load, more CPU (0: wait at once).
    #[arg(long, value_name = "US")]
    pub busy_read_us: Option<u64>,
    /// Adaptive spinning, used unless --spin-before-park-us or --busy-read-us is given: a shard
    /// spins this long before it parks, and a session asks its socket this long before it
    /// waits, each only while its last wait ended within this time (idle or slow traffic
    /// costs no spinning) [default: 150; 0: park and wait at once].
    #[arg(long, value_name = "US")]
    pub adaptive_spin_us: Option<u64>,
    /// What `wamp.2.ubjson` / RawSocket serializer 4 speak: `ubjson` (default, the spec's
    /// UBJSON) or `bjdata` (what autobahn-python 26.6+ sends under that name).
    #[arg(long, value_name = "DIALECT")]
    pub ubjson_dialect: Option<super::UbjsonDialect>,
    /// Serializers WebSocket listeners (ws, wss) accept, comma-separated
    /// [default: json,msgpack,cbor,ubjson].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub ws_serializers: Vec<String>,
    /// Serializers RawSocket listeners (rs, rss, unix) accept, comma-separated
    /// [default: json,msgpack,cbor,ubjson].
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    pub rs_serializers: Vec<String>,
    /// Refuse batched WebSocket (`wamp.2.<serializer>.batched`) on WebSocket listeners.
    #[arg(long)]
    pub no_ws_batched: bool,
    /// Turn off the HTTP long-poll transport on WebSocket listeners.
    #[arg(long)]
    pub no_longpoll: bool,
    /// Base path of the HTTP long-poll transport on WebSocket listeners [default: /lp].
    #[arg(long, value_name = "PATH")]
    pub longpoll_path: Option<String>,
    /// Milliseconds a long-poll `receive` request waits for a message before it is answered
    /// empty [default: 10000].
    #[arg(long, value_name = "MS")]
    pub longpoll_request_timeout_ms: Option<u64>,
    /// Milliseconds without a request after which a long-poll transport is closed
    /// [default: 30000].
    #[arg(long, value_name = "MS")]
    pub longpoll_session_timeout_ms: Option<u64>,
    /// Disable permessage-deflate on WebSocket.
    #[arg(long)]
    pub no_ws_compression: bool,
    /// PEM CA certificate(s) that TLS client certificates must chain to (authmethod `tls`).
    #[arg(long, value_name = "FILE")]
    pub tls_client_ca: Option<PathBuf>,
    /// Whether TLS clients must present a certificate: `optional` (default) or `required`.
    #[arg(long, value_name = "MODE")]
    pub tls_client_auth: Option<String>,
    /// Track WebSocket clients with a cookie (authmethod `cookie`).
    #[arg(long)]
    pub ws_cookie: bool,
    /// Name of the tracking cookie (default `cbtid`).
    #[arg(long, value_name = "NAME")]
    pub ws_cookie_name: Option<String>,
    /// Max-Age of the tracking cookie, in seconds (default 86400).
    #[arg(long, value_name = "S")]
    pub ws_cookie_max_age_s: Option<u64>,
    /// Most cookies tracked at once; when full, expired then oldest go (default 100000).
    #[arg(long, value_name = "N")]
    pub ws_cookie_max_entries: Option<usize>,
    /// How long a dynamic authorizer's decision is cached, in milliseconds (0: not cached).
    #[arg(long, value_name = "MS")]
    pub authorizer_cache_ttl_ms: Option<u64>,
    /// Dynamic authorizer decisions cached per shard (least recently used evicted).
    #[arg(long, value_name = "N")]
    pub authorizer_cache_size: Option<usize>,
    /// Time allowed for a dynamic authorizer's answer, in milliseconds; then it denies.
    #[arg(long, value_name = "MS")]
    pub authorizer_timeout_ms: Option<u64>,
    /// Serve Prometheus metrics on http://ADDR/metrics and a health probe on /health.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Join a cluster over these NATS servers (nats://HOST:PORT or tls://HOST:PORT, comma
    /// separated; user:password@ in a URL is used to log in). Needs --node-id.
    #[arg(long, value_name = "URLS")]
    pub cluster: Option<String>,
    /// This node's ID in the cluster, 1..=2047, unique among the nodes.
    #[arg(long, value_name = "N")]
    pub node_id: Option<u16>,
    /// The cluster's name: the first token of its NATS subjects [default: switchyard].
    #[arg(long, value_name = "NAME")]
    pub cluster_name: Option<String>,
    /// A node not heard from for this long is gone: its subscriptions are dropped [default: 3000].
    #[arg(long, value_name = "MS")]
    pub cluster_node_timeout_ms: Option<u64>,
    /// NATS token authentication.
    #[arg(long, value_name = "TOKEN", env = "SWITCHYARD_CLUSTER_TOKEN")]
    pub cluster_token: Option<String>,
    /// CA certificate (PEM) of the NATS servers' TLS certificates; TLS is then required.
    #[arg(long, value_name = "FILE")]
    pub cluster_tls_ca: Option<PathBuf>,
    /// Publications waiting for the cluster bridge at most; beyond, they are dropped and
    /// counted [default: 65536].
    #[arg(long, value_name = "N")]
    pub cluster_queue: Option<usize>,
    /// Copies JetStream keeps of the cluster's registry of procedures (1..=5; use 3 with a
    /// 3-server NATS cluster) [default: 1].
    #[arg(long, value_name = "N")]
    pub cluster_replicas: Option<usize>,
    /// Config file (TOML): `[router]` with the same keys as these flags, `[[realm]]` tables.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log filter (error, warn, info, debug, trace, or a tracing filter expression) [default: info].
    #[arg(long, value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Log line format [default: text].
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,
}

/// Subcommands; without one, `switchyard` runs the router.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Config file tools.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `switchyard config …`
#[derive(Subcommand, Debug, Clone)]
pub enum ConfigCommand {
    /// Validate a config file (with any flags given before `config`) and print the effective
    /// settings; exits non-zero naming the bad key on error.
    Check {
        /// The config file (TOML).
        file: PathBuf,
    },
    /// Print a commented example config file.
    Example,
    /// Read a password from stdin (first line) and print the `scram_*` keys of a
    /// `[[realm.principal]]` for method wamp-scram: a random salt, the cost parameters and the
    /// StoredKey/ServerKey, so the config never holds the password.
    ScramKeys {
        /// `argon2id13` or `pbkdf2`.
        #[arg(long, default_value = "argon2id13")]
        kdf: String,
        /// Time cost (default 3 for argon2id13, 4096 for pbkdf2).
        #[arg(long)]
        iterations: Option<u32>,
        /// Argon2 memory cost in KiB (default 65536).
        #[arg(long)]
        memory: Option<u32>,
    },
}
