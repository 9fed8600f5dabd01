//! The config file (TOML): one serde struct per section, `deny_unknown_fields` everywhere, so
//! an unknown key is an error that names it. Every section and key is optional; flags override
//! the file. The sections are validated into a [`crate::RouterConfig`] by
//! [`crate::router_config`].

use super::{ConfigError, LogFormat, SlowConsumerPolicy};
use serde::Deserialize;
use std::path::{Path, PathBuf};

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
    pub ping_interval_ms: Option<u64>,
    pub max_connections: Option<usize>,
    pub max_pending_calls_per_session: Option<usize>,
    pub max_subscriptions_per_session: Option<usize>,
    pub max_registrations_per_session: Option<usize>,
    pub max_retained_events: Option<usize>,
    pub max_retained_bytes: Option<usize>,
    pub strict_progressive_results: Option<bool>,
    pub spin_before_park_us: Option<u64>,
    pub busy_read_us: Option<u64>,
    pub adaptive_spin_us: Option<u64>,
    pub ws_compression: Option<bool>,
    pub ubjson_dialect: Option<super::UbjsonDialect>,
    pub ws_serializers: Option<Vec<String>>,
    pub rs_serializers: Option<Vec<String>>,
    pub ws_batched: Option<bool>,
    /// The HTTP long-poll transport, as `--no-longpoll` / `--longpoll-*`.
    pub longpoll: Option<bool>,
    pub longpoll_path: Option<String>,
    pub longpoll_request_timeout_ms: Option<u64>,
    pub longpoll_session_timeout_ms: Option<u64>,
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
    /// Cluster mode, as `--cluster` / `--node-id` / `--cluster-*`.
    pub cluster: Option<String>,
    pub node_id: Option<u16>,
    pub cluster_name: Option<String>,
    pub cluster_node_timeout_ms: Option<u64>,
    pub cluster_token: Option<String>,
    pub cluster_tls_ca: Option<PathBuf>,
    pub cluster_queue: Option<usize>,
    pub cluster_replicas: Option<usize>,
    /// Log filter (same as `--log-level`).
    pub log_level: Option<String>,
    /// Log line format (same as `--log-format`).
    pub log_format: Option<LogFormat>,
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
    /// This realm's bound on retained events (`router.max_retained_events` otherwise).
    pub max_retained_events: Option<usize>,
    /// This realm's bound on retained bytes (`router.max_retained_bytes` otherwise).
    pub max_retained_bytes: Option<usize>,
    /// `[[realm.history]]` tables: subscriptions whose events are kept (event history).
    #[serde(default, rename = "history")]
    pub history: Vec<HistorySection>,
}

/// `[[realm.history]]`: keep the last events of the subscription `topic` + `match` (read back
/// with `wamp.subscription.get_events`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistorySection {
    pub topic: String,
    #[serde(default, rename = "match")]
    pub matching: UriMatch,
    /// Events kept at most.
    #[serde(default = "history_limit")]
    pub limit: usize,
    /// Bytes kept at most (payload, topic and options).
    #[serde(default = "history_bytes")]
    pub max_bytes: usize,
    /// Events older than this are dropped; none: no age bound.
    pub max_age_ms: Option<u64>,
}

fn history_limit() -> usize {
    1000
}

fn history_bytes() -> usize {
    1024 * 1024
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
    /// The trust level of this role's calls and publications (`INVOCATION.Details.trustlevel`,
    /// `EVENT.Details.trustlevel`); none if absent.
    #[serde(default)]
    pub trustlevel: Option<u64>,
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

/// How a permission's `uri` is compared with the requested URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UriMatch {
    /// The URIs are equal.
    #[default]
    Exact,
    /// The requested URI starts with the permission's.
    Prefix,
    /// Same number of `.`-separated components; an empty component matches any one.
    Wildcard,
}

/// The actions a permission allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Allow {
    pub call: bool,
    pub register: bool,
    pub publish: bool,
    pub subscribe: bool,
}

/// Identity disclosure a permission forces, whatever the request asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Disclose {
    /// The caller's identity goes to the callee (as `CALL.Options.disclose_me`).
    pub caller: bool,
    /// The publisher's identity goes to subscribers (as `PUBLISH.Options.disclose_me`).
    pub publisher: bool,
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
