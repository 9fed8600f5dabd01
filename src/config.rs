//! Router configuration: the typed [`RouterConfig`] the library runs from, and the optional
//! config file (TOML) that the `switchyard` binary merges with its flags.
//!
//! The file is parsed into serde structs with `deny_unknown_fields`, then validated into
//! [`RouterConfig`]; every error names the key that is wrong.

use crate::auth::dynamic::DynamicAuthenticator;
use crate::auth::{AuthMethod, Authenticator, CraSecret, Principal, Salt, Secret};
use crate::authz::{Allow, Disclose, Permission, RealmPolicy, Role, SharedAuthorizer, UriMatch};
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

/// A realm served by the router.
#[derive(Debug, Clone)]
pub struct RealmConfig {
    pub name: String,
    /// Whether sessions may join without authentication.
    pub anonymous: bool,
    /// The realm's static principals (`[[realm.principal]]`); shared, read-only, by all shards.
    pub auth: Arc<Authenticator>,
    /// The realm's authorization rules (`[[realm.role]]`, `authorizer`); open by default.
    pub authz: Arc<RealmPolicy>,
    /// Dynamic authenticators (`[[realm.authenticator]]`), one per method.
    pub authenticators: Vec<DynamicAuthenticator>,
}

impl RealmConfig {
    /// A realm without principals that admits anonymous sessions.
    pub fn anonymous(name: impl Into<String>) -> RealmConfig {
        RealmConfig {
            name: name.into(),
            anonymous: true,
            auth: Arc::default(),
            authz: Arc::default(),
            authenticators: Vec::new(),
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
    /// Connections per process.
    pub max_connections: usize,
    /// Calls one session may have outstanding.
    pub max_pending_calls_per_session: usize,
    /// Subscriptions one session may hold.
    pub max_subscriptions_per_session: usize,
    /// Registrations one session may hold.
    pub max_registrations_per_session: usize,
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
            max_connections: 100_000,
            max_pending_calls_per_session: 1_000,
            max_subscriptions_per_session: 10_000,
            max_registrations_per_session: 10_000,
        }
    }
}

impl Limits {
    /// The routing core's per-session limits (the rest of its rules at their defaults).
    pub fn routing(&self) -> crate::routing::RoutingConfig {
        crate::routing::RoutingConfig {
            max_pending_calls_per_session: self.max_pending_calls_per_session,
            max_subscriptions_per_session: self.max_subscriptions_per_session,
            max_registrations_per_session: self.max_registrations_per_session,
            ..Default::default()
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

/// Everything a [`crate::Router`] runs from.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Number of shards (executors); 0 means one per available CPU.
    pub shards: usize,
    /// CPUs to pin shards to, in order; empty means CPUs 0..shards.
    pub cpus: Vec<usize>,
    pub listeners: Vec<ListenerConfig>,
    pub realms: Vec<RealmConfig>,
    pub limits: Limits,
    /// How long an idle shard spins before parking (lower cross-shard latency, more CPU).
    pub spin_before_park: Option<Duration>,
    /// Offer permessage-deflate on WebSocket.
    pub ws_compression: bool,
    /// WebSocket cookie tracking (`--ws-cookie`) and the store of authmethod `cookie`.
    pub ws_cookie: Option<Arc<crate::auth::CookieStore>>,
    /// Dynamic authorizer settings.
    pub authz: AuthzSettings,
    /// An embedder's authorizer, consulted before every realm's rules (see [`crate::authz`]).
    pub authorizer: Option<SharedAuthorizer>,
}

impl Default for RouterConfig {
    fn default() -> Self {
        RouterConfig {
            shards: 0,
            cpus: Vec::new(),
            listeners: Vec::new(),
            realms: vec![RealmConfig::anonymous("realm1")],
            limits: Limits::default(),
            spin_before_park: None,
            ws_compression: true,
            ws_cookie: None,
            authz: AuthzSettings::default(),
            authorizer: None,
        }
    }
}

impl RouterConfig {
    /// The shard count after resolving 0 to the number of CPUs.
    pub fn shard_count(&self) -> usize {
        if self.shards > 0 {
            self.shards
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
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

/// The config file (TOML). Every section and key is optional; flags override the file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    #[serde(default)]
    pub router: RouterSection,
    /// `[[realm]]` tables.
    #[serde(default, rename = "realm")]
    pub realms: Vec<RealmSection>,
}

/// `[router]`: the same settings as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouterSection {
    pub shards: Option<usize>,
    pub cpus: Option<String>,
    pub ws: Option<Vec<String>>,
    pub ws_path: Option<String>,
    pub rawsocket: Option<Vec<String>>,
    pub unix: Option<Vec<PathBuf>>,
    pub wss: Option<Vec<String>>,
    pub rss: Option<Vec<String>>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub max_message_size_ws: Option<usize>,
    pub max_decompressed_size_ws: Option<usize>,
    pub max_message_size_rs: Option<usize>,
    pub outbound_queue_bytes: Option<usize>,
    pub slow_consumer: Option<SlowConsumerPolicy>,
    pub hello_timeout_ms: Option<u64>,
    pub handshake_timeout_ms: Option<u64>,
    pub frame_timeout_ms: Option<u64>,
    pub idle_timeout_ms: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_pending_calls_per_session: Option<usize>,
    pub max_subscriptions_per_session: Option<usize>,
    pub max_registrations_per_session: Option<usize>,
    pub spin_before_park_us: Option<u64>,
    pub ws_compression: Option<bool>,
    /// Client certificates (authmethod `tls`), as `--tls-client-ca` / `--tls-client-auth`.
    pub tls_client_ca: Option<PathBuf>,
    pub tls_client_auth: Option<String>,
    /// WebSocket cookie tracking, as `--ws-cookie` and friends.
    pub ws_cookie: Option<bool>,
    pub ws_cookie_name: Option<String>,
    pub ws_cookie_max_age_s: Option<u64>,
    pub ws_cookie_max_entries: Option<usize>,
    pub authorizer_cache_ttl_ms: Option<u64>,
    pub authorizer_cache_size: Option<usize>,
    pub authorizer_timeout_ms: Option<u64>,
    /// Address of the Prometheus `/metrics` and `/health` HTTP endpoint.
    pub metrics: Option<String>,
    /// Log filter (same as `--log-level`).
    pub log_level: Option<String>,
    /// Log line format (same as `--log-format`).
    pub log_format: Option<crate::logging::LogFormat>,
}

/// `[[realm]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RealmSection {
    pub name: String,
    #[serde(default = "yes")]
    pub anonymous: bool,
    /// `[[realm.principal]]` tables.
    #[serde(default, rename = "principal")]
    pub principals: Vec<PrincipalSection>,
    /// `[[realm.role]]` tables: once there is one, everything not allowed is denied.
    #[serde(default, rename = "role")]
    pub roles: Vec<RoleSection>,
    /// URI of the dynamic authorizer procedure, for roles without a `[[realm.role]]`.
    pub authorizer: Option<String>,
    /// `[[realm.authenticator]]` tables.
    #[serde(default, rename = "authenticator")]
    pub authenticators: Vec<AuthenticatorSection>,
}

/// `[[realm.authenticator]]`: a WAMP procedure that authenticates sessions using `method`
/// (`ticket`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthenticatorSection {
    pub method: String,
    pub procedure: String,
}

/// `[[realm.role]]`: a role's permissions (or `trusted = true`: everything).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoleSection {
    pub name: String,
    #[serde(default)]
    pub trusted: bool,
    /// `[[realm.role.permission]]` tables.
    #[serde(default, rename = "permission")]
    pub permissions: Vec<PermissionSection>,
}

/// `[[realm.role.permission]]`: `uri`, `match` (`exact`, `prefix`, `wildcard`), `allow = {call,
/// register, publish, subscribe}`, `disclose = {caller, publisher}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionSection {
    pub uri: String,
    #[serde(default, rename = "match")]
    pub matching: UriMatch,
    #[serde(default)]
    pub allow: Allow,
    #[serde(default)]
    pub disclose: Disclose,
}

/// `[[realm.principal]]`: one static principal and its credentials, at least one of `ticket`
/// (method `ticket`), `secret` (method `wampcra`, with `salt`, `iterations` (default 1000) and
/// `keylen` (default 32) for a PBKDF2-salted secret) and `pubkey` (method `cryptosign`, hex).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrincipalSection {
    pub authid: String,
    pub role: String,
    pub ticket: Option<String>,
    pub secret: Option<String>,
    pub salt: Option<String>,
    pub iterations: Option<u32>,
    pub keylen: Option<u32>,
    pub pubkey: Option<String>,
    /// Method `wamp-scram` (see `crate::auth::scram`): KDF `argon2id13` (default) or `pbkdf2`.
    pub scram_kdf: Option<String>,
    pub scram_salt: Option<String>,
    pub scram_iterations: Option<u32>,
    pub scram_memory: Option<u32>,
    pub scram_password: Option<String>,
    pub scram_stored_key: Option<String>,
    pub scram_server_key: Option<String>,
    /// Method `tls`: SHA-256 fingerprint of the client certificate.
    pub cert_fingerprint: Option<String>,
}

impl std::fmt::Debug for PrincipalSection {
    /// Secrets are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrincipalSection")
            .field("authid", &self.authid)
            .field("role", &self.role)
            .field("ticket", &self.ticket.as_ref().map(|_| "<redacted>"))
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("salt", &self.salt)
            .field("iterations", &self.iterations)
            .field("keylen", &self.keylen)
            .field("pubkey", &self.pubkey)
            .field("scram_kdf", &self.scram_kdf)
            .field("scram_salt", &self.scram_salt)
            .field("scram_iterations", &self.scram_iterations)
            .field("scram_memory", &self.scram_memory)
            .field(
                "scram_password",
                &self.scram_password.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "scram_stored_key",
                &self.scram_stored_key.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "scram_server_key",
                &self.scram_server_key.as_ref().map(|_| "<redacted>"),
            )
            .field("cert_fingerprint", &self.cert_fingerprint)
            .finish()
    }
}

impl RealmSection {
    /// Validates the section (the `index`-th `[[realm]]`) into a [`RealmConfig`]; errors name
    /// the key, e.g. `realm[0].principal[1].pubkey`.
    pub fn to_config(&self, index: usize) -> Result<RealmConfig, ConfigError> {
        let invalid = |j: usize, key: &str, message: String| ConfigError::Invalid {
            key: format!("realm[{index}].principal[{j}].{key}"),
            message,
        };
        let mut principals = Vec::with_capacity(self.principals.len());
        for (j, p) in self.principals.iter().enumerate() {
            let salt = match (&p.salt, &p.secret) {
                (Some(salt), Some(_)) => Some(Salt {
                    salt: salt.clone(),
                    iterations: p.iterations.unwrap_or(1000),
                    keylen: p.keylen.unwrap_or(32),
                }),
                (Some(_), None) => return Err(invalid(j, "salt", "needs a `secret`".into())),
                (None, _) => {
                    if p.iterations.is_some() {
                        return Err(invalid(j, "iterations", "needs a `salt`".into()));
                    }
                    if p.keylen.is_some() {
                        return Err(invalid(j, "keylen", "needs a `salt`".into()));
                    }
                    None
                }
            };
            let pubkey = match &p.pubkey {
                None => None,
                Some(k) => Some(crate::auth::parse_pubkey(k).map_err(|m| invalid(j, "pubkey", m))?),
            };
            principals.push(Principal {
                authid: p.authid.clone(),
                authrole: p.role.clone(),
                ticket: p.ticket.clone().map(Secret::new),
                wampcra: p.secret.clone().map(|s| CraSecret {
                    secret: Secret::new(s),
                    salt,
                }),
                pubkey,
                scram: p.scram_params().map_err(|(k, m)| invalid(j, k, m))?,
                cert_fingerprint: match &p.cert_fingerprint {
                    None => None,
                    Some(f) => Some(
                        crate::auth::parse_fingerprint(f)
                            .map_err(|m| invalid(j, "cert_fingerprint", m))?,
                    ),
                },
            });
        }
        let auth = Authenticator::new(&principals, rand::random())
            .map_err(|e| invalid(e.index, e.key, e.message))?;
        let roles = self
            .roles
            .iter()
            .map(|r| Role {
                name: r.name.clone(),
                trusted: r.trusted,
                permissions: r
                    .permissions
                    .iter()
                    .map(|p| Permission {
                        uri: p.uri.clone(),
                        matching: p.matching,
                        allow: p.allow,
                        disclose: p.disclose,
                    })
                    .collect(),
            })
            .collect();
        let mut authenticators: Vec<DynamicAuthenticator> = Vec::new();
        for (j, a) in self.authenticators.iter().enumerate() {
            let key = |k: &str| format!("realm[{index}].authenticator[{j}].{k}");
            let method = match AuthMethod::parse(&a.method) {
                Some(m @ AuthMethod::Ticket) => m,
                _ => {
                    return Err(ConfigError::Invalid {
                        key: key("method"),
                        message: format!("{:?}: only \"ticket\" is dynamic", a.method),
                    })
                }
            };
            if a.procedure.is_empty() {
                return Err(ConfigError::Invalid {
                    key: key("procedure"),
                    message: "must not be empty".into(),
                });
            }
            if authenticators.iter().any(|x| x.method == method) {
                return Err(ConfigError::Invalid {
                    key: key("method"),
                    message: format!("a second authenticator for {:?}", a.method),
                });
            }
            authenticators.push(DynamicAuthenticator {
                method,
                procedure: a.procedure.clone(),
            });
        }
        let protected = authenticators.iter().map(|a| a.procedure.clone()).collect();
        let authz = RealmPolicy::new(roles, self.authorizer.clone())
            .map(|p| p.protecting(protected))
            .map_err(|e| {
                let key = if e.key == "authorizer" {
                    format!("realm[{index}].authorizer")
                } else {
                    format!("realm[{index}].role[{}].{}", e.index, e.key)
                };
                ConfigError::Invalid {
                    key,
                    message: e.message,
                }
            })?;
        Ok(RealmConfig {
            name: self.name.clone(),
            anonymous: self.anonymous,
            auth: Arc::new(auth),
            authz: Arc::new(authz),
            authenticators,
        })
    }
}

fn yes() -> bool {
    true
}

impl ConfigFile {
    /// Reads and parses a config file; unknown keys are errors naming the key.
    pub fn load(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|message| ConfigError::Parse {
            path: path.to_owned(),
            message,
        })
    }

    /// Parses config text.
    pub fn parse(text: &str) -> Result<ConfigFile, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }
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

    #[test]
    fn unknown_key_is_named() {
        let e = ConfigFile::parse("[router]\nshardz = 2\n").unwrap_err();
        assert!(e.contains("shardz"), "{e}");
        let e = ConfigFile::parse("[[realm]]\nname = \"a\"\nanonymus = true\n").unwrap_err();
        assert!(e.contains("anonymus"), "{e}");
    }

    #[test]
    fn parses_sections() {
        let f = ConfigFile::parse(
            "[router]\nshards = 2\nslow_consumer = \"disconnect\"\n[[realm]]\nname = \"r\"\n",
        )
        .unwrap();
        assert_eq!(f.router.shards, Some(2));
        assert_eq!(f.router.slow_consumer, Some(SlowConsumerPolicy::Disconnect));
        assert_eq!(f.realms[0].name, "r");
        assert!(f.realms[0].anonymous);
    }

    const PK: &str = "545efb0a2192db8d43f118e9bf9aee081466e1ef36c708b96ee6f62dddad9122";

    #[test]
    fn parses_principals() {
        let f = ConfigFile::parse(&format!(
            r#"
[[realm]]
name = "r"
anonymous = false
[[realm.principal]]
authid = "joe"
role = "user"
ticket = "t"
[[realm.principal]]
authid = "peter"
role = "admin"
secret = "s"
salt = "salt123"
[[realm.principal]]
authid = "dev"
role = "device"
pubkey = "{PK}"
"#
        ))
        .unwrap();
        assert!(!f.realms[0].anonymous);
        assert_eq!(f.realms[0].principals.len(), 3);
        let r = f.realms[0].to_config(0).unwrap();
        use crate::auth::AuthMethod;
        assert!(r.auth.supports(AuthMethod::Ticket));
        assert!(r.auth.supports(AuthMethod::WampCra));
        assert!(r.auth.supports(AuthMethod::Cryptosign));
        let dbg = format!("{:?}", f.realms);
        assert!(!dbg.contains("\"t\"") && !dbg.contains("\"s\""), "{dbg}");
    }

    #[test]
    fn principal_errors_name_the_key() {
        let e = ConfigFile::parse(
            "[[realm]]\nname = \"r\"\n[[realm.principal]]\nauthid = \"a\"\nrole = \"x\"\npasword = \"p\"\n",
        )
        .unwrap_err();
        assert!(e.contains("pasword"), "{e}");
        let bad = |body: &str| {
            let f = ConfigFile::parse(&format!(
                "[[realm]]\nname = \"r\"\n[[realm.principal]]\nauthid = \"a\"\nrole = \"x\"\nticket = \"t\"\n[[realm.principal]]\n{body}"
            ))
            .unwrap();
            f.realms[0].to_config(0).unwrap_err().to_string()
        };
        let e = bad("authid = \"b\"\nrole = \"x\"\npubkey = \"zz\"\n");
        assert!(e.starts_with("realm[0].principal[1].pubkey:"), "{e}");
        let e = bad("authid = \"b\"\nrole = \"x\"\nsalt = \"s\"\n");
        assert!(e.starts_with("realm[0].principal[1].salt:"), "{e}");
        let e = bad("authid = \"a\"\nrole = \"x\"\nticket = \"u\"\n");
        assert!(e.starts_with("realm[0].principal[1].authid:"), "{e}");
        let e = bad("authid = \"b\"\nrole = \"x\"\nsecret = \"s\"\nsalt = \"q\"\nkeylen = 0\n");
        assert!(e.starts_with("realm[0].principal[1].keylen:"), "{e}");
    }
}
