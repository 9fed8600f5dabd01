//! Configuration as plain data: the flags ([`Args`], clap), the config file ([`ConfigFile`],
//! TOML through serde with `deny_unknown_fields`) and the plain settings values they are
//! validated into ([`Limits`], [`ListenerConfig`], [`AuthzSettings`], …), with [`ConfigError`],
//! which names the bad key.
//!
//! This module is the bottom of the configuration: it imports nothing else of the crate (at most
//! `codec` and `util` may be added; `tests/module_deps.rs` checks it). Auth, authz, logging and the runtime are built *from* it; the validated, runnable
//! [`crate::RouterConfig`] (which holds built objects: authenticators, policies, the cookie
//! store) lives above them in [`crate::router_config`].
//!
//! - `file.rs`: the config file's sections.
//! - `flags.rs`: the command-line flags and subcommands of the `switchyard` binary.

mod file;
mod flags;

pub use file::{
    Allow, AuthenticatorSection, ConfigFile, Disclose, HistorySection, PermissionSection,
    PrincipalSection, RealmSection, RoleSection, RouterSection, UriMatch,
};
pub use flags::{Args, Command, ConfigCommand};

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// What to do when a session's outbound queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SlowConsumerPolicy {
    /// Drop the events that do not fit and count them; RPC traffic still closes the session.
    Drop,
    /// Close the session.
    Disconnect,
}

/// What `wamp.2.ubjson` (WebSocket) and RawSocket serializer 4 mean on the wire: UBJSON
/// (draft 12, big-endian; py-ubjson, autobahn-python up to 25.x) or BJData (little-endian;
/// autobahn-python 26.6 and later). The two read each other's numbers above 255 wrongly, so the
/// router speaks one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum UbjsonDialect {
    #[default]
    Ubjson,
    Bjdata,
}

/// Which serializers and transports the listeners offer, per listener type: WebSocket
/// listeners (`ws`, `wss`) and RawSocket listeners (`rs`, `rss`, `unix`). Everything is on by
/// default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportOptions {
    /// Serializers a WebSocket listener accepts (subprotocols `wamp.2.<name>`).
    pub ws_serializers: Vec<crate::codec::Serializer>,
    /// Serializers a RawSocket listener accepts (handshake serializer IDs).
    pub rs_serializers: Vec<crate::codec::Serializer>,
    /// Batched WebSocket (`wamp.2.<name>.batched`) on WebSocket listeners.
    pub ws_batched: bool,
    /// The HTTP long-poll transport on WebSocket listeners (`None`: off).
    pub longpoll: Option<LongPollOptions>,
}

/// The HTTP long-poll transport (`transport_http_longpoll.md`), served next to the WebSocket
/// endpoint of every WebSocket listener. It speaks the serializers WebSocket listeners speak
/// (and their `.batched` forms when batched WebSocket is on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LongPollOptions {
    /// Base path: `<path>/open`, `<path>/<transport>/send|receive|close`.
    pub path: String,
    /// How long a `receive` request waits for a message before it is answered empty.
    pub request_timeout: std::time::Duration,
    /// A transport with no request for this long is closed (its session ends as if its
    /// connection dropped).
    pub session_timeout: std::time::Duration,
}

impl Default for LongPollOptions {
    fn default() -> Self {
        LongPollOptions {
            path: "/lp".into(),
            request_timeout: std::time::Duration::from_secs(10),
            session_timeout: std::time::Duration::from_secs(30),
        }
    }
}

/// The serializers a listener may offer, by the names flags and the config file use.
pub const SERIALIZER_NAMES: [(&str, crate::codec::Serializer); 4] = [
    ("json", crate::codec::Serializer::Json),
    ("msgpack", crate::codec::Serializer::MsgPack),
    ("cbor", crate::codec::Serializer::Cbor),
    ("ubjson", crate::codec::Serializer::Ubjson),
];

impl Default for TransportOptions {
    fn default() -> Self {
        let all = SERIALIZER_NAMES.iter().map(|(_, s)| *s).collect::<Vec<_>>();
        TransportOptions {
            ws_serializers: all.clone(),
            rs_serializers: all,
            ws_batched: true,
            longpoll: Some(LongPollOptions::default()),
        }
    }
}

impl TransportOptions {
    /// Whether a listener of this type (WebSocket or not) accepts `s` (BJData counts as
    /// `ubjson`: it is what `wamp.2.ubjson` means under `--ubjson-dialect bjdata`).
    pub fn allows(&self, websocket: bool, s: crate::codec::Serializer) -> bool {
        let s = match s {
            crate::codec::Serializer::Bjdata => crate::codec::Serializer::Ubjson,
            s => s,
        };
        let list = if websocket {
            &self.ws_serializers
        } else {
            &self.rs_serializers
        };
        list.contains(&s)
    }

    /// The names of the serializers a listener of this type accepts, in a fixed order.
    pub fn names(&self, websocket: bool) -> Vec<&'static str> {
        SERIALIZER_NAMES
            .iter()
            .filter(|(_, s)| self.allows(websocket, *s))
            .map(|(n, _)| *n)
            .collect()
    }
}

/// A list of serializer names (`json,cbor` on the command line, `["json", "cbor"]` in the
/// file) as serializers; `key` names the flag or key in the error.
pub fn parse_serializers<S: AsRef<str>>(
    key: &str,
    names: &[S],
) -> Result<Vec<crate::codec::Serializer>, ConfigError> {
    let mut out = Vec::new();
    for n in names {
        let n = n.as_ref().trim();
        let Some((_, s)) = SERIALIZER_NAMES.iter().find(|(name, _)| *name == n) else {
            return Err(ConfigError::Invalid {
                key: key.into(),
                message: format!("unknown serializer {n:?} (json, msgpack, cbor, ubjson)"),
            });
        };
        if !out.contains(s) {
            out.push(*s);
        }
    }
    if out.is_empty() {
        return Err(ConfigError::Invalid {
            key: key.into(),
            message: "at least one serializer".into(),
        });
    }
    Ok(out)
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, event fields at the top level (for log shippers).
    Json,
}

impl std::fmt::Display for LogFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// A transport protocol served on a listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenerKind {
    /// WebSocket, upgrade accepted on `path`.
    WebSocket { path: String },
    /// WAMP RawSocket.
    RawSocket,
}

/// Where a listener accepts connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// One listening endpoint.
#[derive(Clone)]
pub struct ListenerConfig {
    pub kind: ListenerKind,
    pub addr: ListenAddr,
    /// TLS server configuration, when this endpoint is encrypted.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

impl std::fmt::Debug for ListenerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListenerConfig")
            .field("kind", &self.kind)
            .field("addr", &self.addr)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}

impl ListenerConfig {
    /// A human-readable URL for start-up messages (`ws://127.0.0.1:8080/ws`, `rs://…`).
    pub fn url(&self, bound: &ListenAddr) -> String {
        let tls = self.tls.is_some();
        match (&self.kind, bound) {
            (ListenerKind::WebSocket { path }, ListenAddr::Tcp(a)) => {
                format!("{}://{}{}", if tls { "wss" } else { "ws" }, a, path)
            }
            (ListenerKind::RawSocket, ListenAddr::Tcp(a)) => {
                format!("{}://{}", if tls { "rss" } else { "rs" }, a)
            }
            (ListenerKind::WebSocket { path }, ListenAddr::Unix(p)) => {
                format!("ws+unix://{}:{}", p.display(), path)
            }
            (ListenerKind::RawSocket, ListenAddr::Unix(p)) => format!("unix://{}", p.display()),
        }
    }
}

/// Limits protecting the router from peers.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest WebSocket message accepted, as received (compressed or not).
    pub max_message_size_ws: usize,
    /// Largest size a permessage-deflate message may inflate to (zip bombs are refused).
    pub max_decompressed_size_ws: usize,
    /// Largest RawSocket message accepted (what the handshake announces, rounded to 2^n).
    pub max_message_size_rs: usize,
    /// Outbound queue limit per session, in bytes.
    pub outbound_queue_bytes: usize,
    pub slow_consumer: SlowConsumerPolicy,
    /// Time from transport open to HELLO.
    pub hello_timeout: Duration,
    /// Time allowed for the TLS + transport handshake.
    pub handshake_timeout: Duration,
    /// Time a message may take to arrive once its first byte is in (a peer dripping a frame
    /// byte by byte is closed after it).
    pub frame_timeout: Duration,
    /// Joined sessions with no input for this long are closed; None: never.
    pub idle_timeout: Option<Duration>,
    /// A joined session silent for this long is sent a transport ping (WebSocket ping,
    /// RawSocket PING frame); silent for as long again, it is closed. None: no pings.
    pub ping_interval: Option<Duration>,
    /// Connections per process.
    pub max_connections: usize,
    /// Calls one session may have outstanding.
    pub max_pending_calls_per_session: usize,
    /// Subscriptions one session may hold.
    pub max_subscriptions_per_session: usize,
    /// Registrations one session may hold.
    pub max_registrations_per_session: usize,
    /// Retained events (`PUBLISH.Options.retain`, one per topic) one realm keeps; 0 turns
    /// event retention off (and it is not announced).
    pub max_retained_events: usize,
    /// Encoded bytes of retained events one realm keeps.
    pub max_retained_bytes: usize,
    /// Progressive call results only to callees that announce call canceling (the spec's
    /// rule); off by default (see `routing::RoutingConfig::strict_progressive_results`).
    pub strict_progressive_results: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_size_ws: 16 * 1024 * 1024,
            max_decompressed_size_ws: 16 * 1024 * 1024,
            max_message_size_rs: 16 * 1024 * 1024,
            outbound_queue_bytes: 4 * 1024 * 1024,
            slow_consumer: SlowConsumerPolicy::Drop,
            hello_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(5),
            frame_timeout: Duration::from_secs(10),
            idle_timeout: None,
            ping_interval: None,
            max_connections: 100_000,
            max_pending_calls_per_session: 1_000,
            max_subscriptions_per_session: 10_000,
            max_registrations_per_session: 10_000,
            max_retained_events: 10_000,
            max_retained_bytes: 16 * 1024 * 1024,
            strict_progressive_results: false,
        }
    }
}

/// Settings of the dynamic authorizers (see [`crate::authz`]).
#[derive(Debug, Clone)]
pub struct AuthzSettings {
    /// How long a dynamic authorizer's decision is cached.
    pub cache_ttl: Duration,
    /// Decisions cached per shard (least recently used evicted); 0 disables the cache.
    pub cache_size: usize,
    /// How long the router waits for the authorizer procedure's result; then it denies.
    pub timeout: Duration,
}

impl Default for AuthzSettings {
    fn default() -> Self {
        AuthzSettings {
            cache_ttl: Duration::from_secs(60),
            cache_size: 10_000,
            timeout: Duration::from_secs(5),
        }
    }
}

/// A configuration error, naming the key or flag at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A file could not be read; the OS error is the source (shown once by `{:#}`).
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{key}: {message}")]
    Invalid { key: String, message: String },
    #[error("TLS: {0}")]
    Tls(String),
}

/// Parses a CPU list such as `0,2,4-7`.
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        if let Some((a, b)) = part.split_once('-') {
            let a: usize = a
                .trim()
                .parse()
                .map_err(|_| format!("bad CPU number {a:?}"))?;
            let b: usize = b
                .trim()
                .parse()
                .map_err(|_| format!("bad CPU number {b:?}"))?;
            if a > b {
                return Err(format!("bad CPU range {part:?}"));
            }
            out.extend(a..=b);
        } else {
            out.push(
                part.parse()
                    .map_err(|_| format!("bad CPU number {part:?}"))?,
            );
        }
    }
    if out.is_empty() {
        return Err("empty CPU list".into());
    }
    Ok(out)
}

/// Parses a listen address `HOST:PORT`.
pub fn parse_socket_addr(key: &str, s: &str) -> Result<SocketAddr, ConfigError> {
    use std::net::ToSocketAddrs;
    s.to_socket_addrs()
        .ok()
        .and_then(|mut it| it.next())
        .ok_or_else(|| ConfigError::Invalid {
            key: key.into(),
            message: format!("{s:?} is not a HOST:PORT address"),
        })
}

/// Loads a PEM certificate chain and private key into a rustls server config (ring provider).
pub fn load_tls(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| ConfigError::Read {
            path: p.to_owned(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| ConfigError::Tls(format!("{}: {e}", cert.display())))?;
    if certs.is_empty() {
        return Err(ConfigError::Tls(format!(
            "{}: no certificate found",
            cert.display()
        )));
    }
    let key = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| ConfigError::Tls(format!("{}: {e}", key.display())))?
        .ok_or_else(|| ConfigError::Tls(format!("{}: no private key found", key.display())))?;
    tls_server_config(certs, key)
}

/// Builds a rustls server config from DER parts (ring provider).
pub fn tls_server_config(
    certs: Vec<rustls::pki_types::CertificateDer<'static>>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| ConfigError::Tls(e.to_string()))?;
    Ok(Arc::new(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0,2,4-6").unwrap(), vec![0, 2, 4, 5, 6]);
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("x").is_err());
        assert!(parse_cpu_list("").is_err());
    }
}
