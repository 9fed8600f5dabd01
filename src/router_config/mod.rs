//! The validated, runnable configuration a [`crate::Router`] runs from: [`RouterConfig`], built
//! in code or from flags and the config file ([`RouterConfig::from_file`],
//! [`RouterConfig::from_toml`], [`build_settings`] for the `switchyard` binary).
//!
//! It sits above [`crate::config`] (plain data), [`crate::auth`] and [`crate::authz`]: a
//! [`RealmConfig`] holds the realm's built [`Authenticator`] and [`RealmPolicy`], the router
//! config the cookie store and an embedder's [`SharedAuthorizer`].
//!
//! - `build.rs`: flags over the file into a [`RouterConfig`], one named step per concern
//!   (listeners, TLS, limits, realms, cookies, authorizer settings).
//! - `realm.rs`: a `[[realm]]` section into a [`RealmConfig`] (principals, roles,
//!   authenticators).
//! - `check.rs`: what `switchyard config check` adds (every URI-valued key checked with the
//!   router's URI rules, also at start-up; the realms described without secrets).

mod build;
mod check;
mod realm;

pub use check::{check_uris, describe_realms};

use crate::auth::dynamic::DynamicAuthenticator;
use crate::auth::{Authenticator, CookieStore};
use crate::authz::{RealmPolicy, SharedAuthorizer};
use crate::config::{
    parse_socket_addr, Args, AuthzSettings, ConfigError, ConfigFile, Limits, ListenerConfig,
    LogFormat,
};
use build::{build_router_config, invalid};
use clap::Parser;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

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
    /// Retained events this realm keeps (`realm.max_retained_events`); `None`: the router's
    /// `limits.max_retained_events`. 0 turns retention off in this realm.
    pub max_retained_events: Option<usize>,
    /// Retained bytes this realm keeps (`realm.max_retained_bytes`); `None`: the router's.
    pub max_retained_bytes: Option<usize>,
    /// The subscriptions whose events this realm keeps (`[[realm.history]]`); empty: no event
    /// history.
    pub history: Arc<crate::routing::history::HistoryRules>,
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
            max_retained_events: None,
            max_retained_bytes: None,
            history: Arc::default(),
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
    /// How long a session that just read keeps asking its socket before it waits for
    /// readiness (plain TCP and Unix sockets; `--busy-read-us`). None: wait at once.
    pub busy_read: Option<Duration>,
    /// Adaptive spinning (`--adaptive-spin-us`, on by default with [`ADAPTIVE_SPIN`]), used
    /// when neither `spin_before_park` nor `busy_read` is set: a shard spins this long before
    /// it parks, and a session asks its socket this long before it waits for readiness, each
    /// only while its last wait ended within this time. Traffic slower than that (and an idle
    /// router) costs no spinning; a fast exchange is not woken for every message. None: park
    /// and wait at once.
    pub adaptive_spin: Option<Duration>,
    /// Offer permessage-deflate on WebSocket.
    pub ws_compression: bool,
    /// Serializers and transports per listener type (all on by default).
    pub transports: crate::config::TransportOptions,
    /// What `wamp.2.ubjson` / RawSocket serializer 4 speak (UBJSON or BJData).
    pub ubjson_dialect: crate::config::UbjsonDialect,
    /// WebSocket cookie tracking (`--ws-cookie`) and the store of authmethod `cookie`.
    pub ws_cookie: Option<Arc<CookieStore>>,
    /// Dynamic authorizer settings.
    pub authz: AuthzSettings,
    /// An embedder's authorizer, consulted before every realm's rules (see [`crate::authz`]).
    pub authorizer: Option<SharedAuthorizer>,
    /// An embedder's publish filter, asked for every (publication, subscriber) the publisher's
    /// options allow (see [`crate::routing::filter`]); nexus's `PublishFilterFactory`.
    pub publish_filter: Option<crate::routing::SharedPublishFilter>,
    /// Cluster mode (`--cluster`): this router is one node of several acting as one router
    /// over NATS (see [`crate::cluster`]). None: nothing cluster-related runs.
    pub cluster: Option<crate::cluster::ClusterConfig>,
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
            busy_read: None,
            adaptive_spin: Some(ADAPTIVE_SPIN),
            ws_compression: true,
            ubjson_dialect: Default::default(),
            transports: Default::default(),
            ws_cookie: None,
            authz: AuthzSettings::default(),
            authorizer: None,
            publish_filter: None,
            cluster: None,
        }
    }
}

/// The default of [`RouterConfig::adaptive_spin`]: 150 µs, above a call's round trip through a
/// waiting client on the test VM; 100 left RPC 4×1 at ~1.5× nexus, 200 gained nothing over
/// 150 (bench/FINDINGS.md, "Adaptive spinning").
pub const ADAPTIVE_SPIN: Duration = Duration::from_micros(150);

/// How a shard's sessions read their sockets when they have drained them (see
/// `shard::conn::busy_read`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusyRead {
    /// How long a session keeps asking its socket before it waits for readiness.
    pub window: Duration,
    /// Ask only when the session's last wait ended within `window` (adaptive spinning).
    pub adaptive: bool,
}

impl RouterConfig {
    /// How sessions read once drained: `busy_read` (always), else adaptive spinning unless a
    /// fixed `spin_before_park` was asked for; None: wait on readiness at once.
    pub fn busy_reads(&self) -> Option<BusyRead> {
        match (self.busy_read, self.spin_before_park, self.adaptive_spin) {
            (Some(window), ..) => Some(BusyRead {
                window,
                adaptive: false,
            }),
            (None, None, Some(window)) => Some(BusyRead {
                window,
                adaptive: true,
            }),
            _ => None,
        }
    }

    /// How long an idle shard spins before it parks, and whether only after a short wait
    /// (adaptive): the longer of `spin_before_park` and `busy_read` (so that input which comes
    /// just after a busy read gave up is still picked up without a wake-up), else
    /// `adaptive_spin`.
    pub fn shard_spin(&self) -> Option<(Duration, bool)> {
        match self.spin_before_park.max(self.busy_read) {
            Some(spin) => Some((spin, false)),
            None => self.adaptive_spin.map(|spin| (spin, true)),
        }
    }

    /// What the routing core of `realm` runs with: the limits (with the realm's own retention
    /// bounds, if it has any) and the publish filter.
    pub fn routing(&self, realm: &RealmConfig) -> crate::routing::RoutingConfig {
        let mut r = crate::routing::RoutingConfig {
            publish_filter: self.publish_filter.clone(),
            history: realm.history.clone(),
            cluster_node: self.cluster.as_ref().map(|c| c.node_id),
            ..self.limits.routing()
        };
        if let Some(n) = realm.max_retained_events {
            r.retention.max_events = n;
        }
        if let Some(n) = realm.max_retained_bytes {
            r.retention.max_bytes = n;
        }
        r
    }

    /// The shard count after resolving 0 to the number of CPUs.
    pub fn shard_count(&self) -> usize {
        if self.shards > 0 {
            self.shards
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
}

/// [`Limits`] is plain config data; this bridge to the routing core lives here, above both, so
/// that `config` does not import `routing`.
impl Limits {
    /// The routing core's per-session limits (the rest of its rules at their defaults).
    pub fn routing(&self) -> crate::routing::RoutingConfig {
        crate::routing::RoutingConfig {
            max_pending_calls_per_session: self.max_pending_calls_per_session,
            max_subscriptions_per_session: self.max_subscriptions_per_session,
            max_registrations_per_session: self.max_registrations_per_session,
            retention: crate::routing::retained::RetentionLimits {
                max_events: self.max_retained_events,
                max_bytes: self.max_retained_bytes,
            },
            strict_progressive_results: self.strict_progressive_results,
            ..Default::default()
        }
    }
}

impl RouterConfig {
    /// The router configuration `switchyard --config FILE` runs with no other flags: for
    /// embedding a router (see [`crate::shard::Router::start`]) from the service's config file.
    /// Errors name the file and the bad key, as the binary's do; a file the binary refuses
    /// (the service keys `metrics`, `log_level` included) is refused here too.
    pub fn from_file(path: &std::path::Path) -> Result<RouterConfig, ConfigError> {
        let args = Args {
            config: Some(path.to_owned()),
            ..default_args()
        };
        Ok(build_settings_from(&args, &ConfigFile::load(path)?)?.router)
    }

    /// As [`RouterConfig::from_file`], from TOML text.
    pub fn from_toml(text: &str) -> Result<RouterConfig, ConfigError> {
        let file = ConfigFile::parse(text).map_err(|message| ConfigError::Parse {
            path: "<toml>".into(),
            message,
        })?;
        Ok(build_settings_from(&default_args(), &file)?.router)
    }
}

/// The flags of a bare `switchyard` (clap's defaults, which `Args::default()` would not apply).
fn default_args() -> Args {
    Args::try_parse_from(["switchyard"]).unwrap_or_default()
}

/// Everything the binary runs from: the router's config plus the service's own settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub router: RouterConfig,
    /// Where to serve `/metrics` and `/health`; None: not served.
    pub metrics: Option<SocketAddr>,
    pub log_level: String,
    pub log_format: LogFormat,
}

/// Merges the flags over the config file (if any) into validated settings.
pub fn build_settings(args: &Args) -> Result<Settings, ConfigError> {
    let file = match &args.config {
        Some(p) => ConfigFile::load(p)?,
        None => ConfigFile::default(),
    };
    build_settings_from(args, &file)
}

/// [`build_settings`] with the config file already parsed (`args.config` is not read again).
fn build_settings_from(args: &Args, file: &ConfigFile) -> Result<Settings, ConfigError> {
    let r = &file.router;
    check_uris(file)?;
    let router = build_router_config(args, file)?;
    let metrics = match args.metrics.as_ref().or(r.metrics.as_ref()) {
        Some(a) => Some(parse_socket_addr("metrics", a)?),
        None => None,
    };
    let log_level = args
        .log_level
        .clone()
        .or(r.log_level.clone())
        .unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&log_level).is_err() {
        return Err(invalid(
            "log_level",
            format!("{log_level:?} is not a level or tracing filter"),
        ));
    }
    Ok(Settings {
        router,
        metrics,
        log_level,
        log_format: args.log_format.or(r.log_format).unwrap_or_default(),
    })
}

#[cfg(test)]
mod embed_tests {
    use super::*;

    #[test]
    fn from_file_refuses_what_the_binary_refuses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("bad.toml");
        let text = "[router]\nmetrics = \"not an address\"\n";
        std::fs::write(&path, text).expect("write");
        let args = Args::try_parse_from(["switchyard", "--config", path.to_str().unwrap_or("")])
            .expect("args");
        let binary = build_settings(&args).expect_err("the binary refuses it");
        let embedded = RouterConfig::from_file(&path).expect_err("from_file refuses it");
        assert_eq!(embedded.to_string(), binary.to_string());
        assert!(embedded.to_string().starts_with("metrics:"), "{embedded}");
        let from_text = RouterConfig::from_toml(text).expect_err("from_toml refuses it");
        assert!(from_text.to_string().starts_with("metrics:"), "{from_text}");
    }

    #[test]
    fn retention_bounds_per_realm_override_the_router() {
        let text = "[router]\nmax_retained_events = 0\nmax_retained_bytes = 1000\n\n\
                    [[realm]]\nname = \"off\"\n\n\
                    [[realm]]\nname = \"on\"\nmax_retained_events = 5\n";
        let cfg = RouterConfig::from_toml(text).expect("valid config");
        let off = cfg.routing(&cfg.realms[0]).retention;
        let on = cfg.routing(&cfg.realms[1]).retention;
        assert!(!off.enabled());
        assert_eq!((on.max_events, on.max_bytes), (5, 1000));
        assert!(RouterConfig::from_toml("[[realm]]\nname = \"r\"\nmax_retained = 1\n").is_err());
    }

    #[test]
    fn from_toml_matches_the_binary() {
        let text = "[router]\nshards = 2\n\n[[realm]]\nname = \"app\"\n";
        let cfg = RouterConfig::from_toml(text).expect("valid config");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("s.toml");
        std::fs::write(&path, text).expect("write");
        let args = Args::try_parse_from(["switchyard", "--config", path.to_str().unwrap_or("")])
            .expect("args");
        let binary = build_settings(&args).expect("settings").router;
        assert_eq!(cfg.shards, 2);
        assert_eq!(format!("{cfg:?}"), format!("{binary:?}"));
        assert!(cfg.realms.iter().any(|r| r.name == "app"));
        let from_file = RouterConfig::from_file(&path).expect("from_file");
        assert_eq!(format!("{from_file:?}"), format!("{binary:?}"));
    }

    #[test]
    fn bad_key_is_named() {
        let e = RouterConfig::from_toml("[router]\nshardz = 2\n").unwrap_err();
        assert!(e.to_string().contains("shardz"), "{e}");
        // A path that does not exist, inside the repository.
        let missing =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/no-such-dir/x.toml");
        let e = RouterConfig::from_file(&missing).unwrap_err();
        assert!(e.to_string().contains(&*missing.to_string_lossy()), "{e}");
    }
}
