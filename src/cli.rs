//! The `switchyard` command line: flags (clap), the `config` subcommands, and the merge of
//! flags over the config file into [`Settings`].
//!
//! It lives in the library (not in `main.rs`) so that tests can read the flag set
//! (`Args::command()`) and the config keys ([`config_keys`]) and check that
//! `docs/configuration.md` names every one of them.

use crate::config::{
    load_tls, parse_cpu_list, parse_socket_addr, ConfigError, ConfigFile, ListenAddr,
    ListenerConfig, ListenerKind, RealmConfig, RealmSection, RouterConfig, RouterSection,
    SlowConsumerPolicy,
};
use crate::logging::LogFormat;
use clap::{Parser, Subcommand};
use std::fmt::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// A commented example config file; `switchyard config example` prints it.
pub const EXAMPLE_CONFIG: &str = include_str!("../deploy/switchyard.toml");

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
    /// Microseconds an idle shard spins before parking (lower latency, more CPU).
    #[arg(long, value_name = "US")]
    pub spin_before_park_us: Option<u64>,
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

/// Everything the binary runs from: the router's config plus the service's own settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub router: RouterConfig,
    /// Where to serve `/metrics` and `/health`; None: not served.
    pub metrics: Option<SocketAddr>,
    pub log_level: String,
    pub log_format: LogFormat,
}

fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        message: message.into(),
    }
}

fn addrs(
    key: &str,
    flag: &[String],
    file: &Option<Vec<String>>,
) -> Result<Vec<SocketAddr>, ConfigError> {
    let list: Vec<String> = if !flag.is_empty() {
        flag.to_vec()
    } else {
        file.clone().unwrap_or_default()
    };
    list.iter().map(|s| parse_socket_addr(key, s)).collect()
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
    crate::config_check::check_uris(file)?;
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

/// A TLS file that cannot be read, named by its key and by where the key was set (the flag or
/// the config file): `--tls-cert: cannot read /etc/x.pem: No such file …` or
/// `tls_cert in /etc/switchyard.toml: cannot read …`. The OS error is shown once.
fn name_tls_file(e: ConfigError, args: &Args, r: &RouterSection) -> ConfigError {
    let ConfigError::Read { path, source } = e else {
        return e;
    };
    let keys = [
        ("tls_cert", "--tls-cert", &args.tls_cert, &r.tls_cert),
        ("tls_key", "--tls-key", &args.tls_key, &r.tls_key),
        (
            "tls_client_ca",
            "--tls-client-ca",
            &args.tls_client_ca,
            &r.tls_client_ca,
        ),
    ];
    let file = args
        .config
        .as_ref()
        .map_or("the config file".into(), |p| p.display().to_string());
    let key = keys
        .iter()
        .find_map(|(key, flag, by_flag, by_file)| match (by_flag, by_file) {
            (Some(p), _) if *p == path => Some((*flag).to_owned()),
            (None, Some(p)) if *p == path => Some(format!("{key} in {file}")),
            _ => None,
        })
        .unwrap_or_else(|| "TLS".into());
    ConfigError::Invalid {
        key,
        message: format!("cannot read {}: {source}", path.display()),
    }
}

fn build_router_config(args: &Args, file: &ConfigFile) -> Result<RouterConfig, ConfigError> {
    let r = &file.router;
    let mut cfg = RouterConfig {
        shards: args.shards.or(r.shards).unwrap_or(0),
        ..Default::default()
    };
    if let Some(cpus) = args.cpus.as_ref().or(r.cpus.as_ref()) {
        cfg.cpus = parse_cpu_list(cpus).map_err(|m| invalid("cpus", m))?;
        if cfg.shards == 0 {
            cfg.shards = cfg.cpus.len();
        }
    }
    let ws_path = args
        .ws_path
        .clone()
        .or(r.ws_path.clone())
        .unwrap_or_else(|| "/ws".into());
    if !ws_path.starts_with('/') {
        return Err(invalid("ws_path", "must start with '/'"));
    }
    let mut ws = addrs("ws", &args.ws, &r.ws)?;
    if ws.is_empty() && !args.no_ws && r.ws.is_none() {
        ws.push(SocketAddr::from(([127, 0, 0, 1], 8080)));
    }
    let mut rs = addrs("rawsocket", &args.rs, &r.rawsocket)?;
    if rs.is_empty() && !args.no_rs && r.rawsocket.is_none() {
        rs.push(SocketAddr::from(([127, 0, 0, 1], 8081)));
    }
    if args.no_ws {
        ws.clear();
    }
    if args.no_rs {
        rs.clear();
    }
    let wss = addrs("wss", &args.wss, &r.wss)?;
    let rss = addrs("rss", &args.rss, &r.rss)?;
    let unix: Vec<PathBuf> = if args.unix.is_empty() {
        r.unix.clone().unwrap_or_default()
    } else {
        args.unix.clone()
    };
    let client_ca = args.tls_client_ca.as_ref().or(r.tls_client_ca.as_ref());
    if client_ca.is_none() && (args.tls_client_auth.is_some() || r.tls_client_auth.is_some()) {
        return Err(invalid(
            "tls_client_auth",
            "needs tls_client_ca (--tls-client-ca)",
        ));
    }
    let tls = if wss.is_empty() && rss.is_empty() {
        None
    } else {
        let cert = args.tls_cert.as_ref().or(r.tls_cert.as_ref());
        let key = args.tls_key.as_ref().or(r.tls_key.as_ref());
        match (cert, key) {
            (Some(c), Some(k)) => match args.tls_client_ca.as_ref().or(r.tls_client_ca.as_ref()) {
                None => Some(load_tls(c, k).map_err(|e| name_tls_file(e, args, r))?),
                Some(ca) => {
                    let mode = args.tls_client_auth.as_ref().or(r.tls_client_auth.as_ref());
                    let required = match mode.map(String::as_str) {
                        None | Some("optional") => false,
                        Some("required") => true,
                        Some(_) => {
                            return Err(invalid(
                                "tls_client_auth",
                                "must be `optional` or `required`",
                            ))
                        }
                    };
                    Some(
                        crate::auth::load_tls_client_auth(c, k, ca, required)
                            .map_err(|e| name_tls_file(e, args, r))?,
                    )
                }
            },
            _ => {
                return Err(invalid(
                    "tls_cert, tls_key",
                    "TLS listeners (--wss/--rss) need both --tls-cert and --tls-key",
                ))
            }
        }
    };
    let wsk = ListenerKind::WebSocket { path: ws_path };
    let tcp = |kind: &ListenerKind, a: SocketAddr, tls: &Option<_>| ListenerConfig {
        kind: kind.clone(),
        addr: ListenAddr::Tcp(a),
        tls: tls.clone(),
    };
    for a in ws {
        cfg.listeners.push(tcp(&wsk, a, &None));
    }
    for a in rs {
        cfg.listeners.push(tcp(&ListenerKind::RawSocket, a, &None));
    }
    for a in wss {
        cfg.listeners.push(tcp(&wsk, a, &tls));
    }
    for a in rss {
        cfg.listeners.push(tcp(&ListenerKind::RawSocket, a, &tls));
    }
    for p in unix {
        cfg.listeners.push(ListenerConfig {
            kind: ListenerKind::RawSocket,
            addr: ListenAddr::Unix(p),
            tls: None,
        });
    }
    if cfg.listeners.is_empty() {
        return Err(invalid(
            "ws, rawsocket, unix, wss, rss",
            "no listeners: give at least one of --ws, --rs, --unix, --wss, --rss",
        ));
    }
    let realms: Vec<RealmConfig> = if !args.realms.is_empty() {
        args.realms.iter().map(RealmConfig::anonymous).collect()
    } else if !file.realms.is_empty() {
        file.realms
            .iter()
            .enumerate()
            .map(|(i, r)| r.to_config(i))
            .collect::<Result<_, _>>()?
    } else {
        cfg.realms.clone()
    };
    for (i, r) in realms.iter().enumerate() {
        if crate::codec::uri::validate_uri(&r.name, crate::codec::uri::UriCheck::Loose).is_err() {
            return Err(invalid(
                &format!("realm[{i}].name"),
                format!("{:?} is not a valid URI", r.name),
            ));
        }
        if realms[..i].iter().any(|o| o.name == r.name) {
            return Err(invalid(
                &format!("realm[{i}].name"),
                format!("realm {:?} is listed twice", r.name),
            ));
        }
    }
    cfg.realms = realms;
    let l = &mut cfg.limits;
    if let Some(v) = args.max_message_size_ws.or(r.max_message_size_ws) {
        l.max_message_size_ws = v;
    }
    if let Some(v) = args.max_decompressed_size_ws.or(r.max_decompressed_size_ws) {
        l.max_decompressed_size_ws = v;
    }
    if let Some(v) = args.max_message_size_rs.or(r.max_message_size_rs) {
        l.max_message_size_rs = v;
    }
    if let Some(v) = args.outbound_queue_bytes.or(r.outbound_queue_bytes) {
        l.outbound_queue_bytes = v;
    }
    if let Some(v) = args.slow_consumer.or(r.slow_consumer) {
        l.slow_consumer = v;
    }
    if let Some(v) = args.hello_timeout_ms.or(r.hello_timeout_ms) {
        l.hello_timeout = Duration::from_millis(v);
    }
    if let Some(v) = args.handshake_timeout_ms.or(r.handshake_timeout_ms) {
        l.handshake_timeout = Duration::from_millis(v);
    }
    if let Some(v) = args.frame_timeout_ms.or(r.frame_timeout_ms) {
        l.frame_timeout = Duration::from_millis(v);
    }
    if let Some(v) = args.idle_timeout_ms.or(r.idle_timeout_ms) {
        l.idle_timeout = (v > 0).then(|| Duration::from_millis(v));
    }
    if let Some(v) = args.max_connections.or(r.max_connections) {
        l.max_connections = v;
    }
    for (key, flag, file, slot) in [
        (
            "max_pending_calls_per_session",
            args.max_pending_calls_per_session,
            r.max_pending_calls_per_session,
            &mut l.max_pending_calls_per_session,
        ),
        (
            "max_subscriptions_per_session",
            args.max_subscriptions_per_session,
            r.max_subscriptions_per_session,
            &mut l.max_subscriptions_per_session,
        ),
        (
            "max_registrations_per_session",
            args.max_registrations_per_session,
            r.max_registrations_per_session,
            &mut l.max_registrations_per_session,
        ),
    ] {
        if let Some(v) = flag.or(file) {
            if v == 0 {
                return Err(invalid(key, "must be at least 1"));
            }
            *slot = v;
        }
    }
    cfg.spin_before_park = args
        .spin_before_park_us
        .or(r.spin_before_park_us)
        .map(Duration::from_micros);
    cfg.ws_compression = !args.no_ws_compression && r.ws_compression.unwrap_or(true);
    if args.ws_cookie || r.ws_cookie == Some(true) {
        let name = args
            .ws_cookie_name
            .clone()
            .or(r.ws_cookie_name.clone())
            .unwrap_or_else(|| "cbtid".into());
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(invalid("ws_cookie_name", "must be [A-Za-z0-9_-]+"));
        }
        let max_age = args
            .ws_cookie_max_age_s
            .or(r.ws_cookie_max_age_s)
            .unwrap_or(86_400);
        if max_age == 0 {
            return Err(invalid("ws_cookie_max_age_s", "must be at least 1"));
        }
        cfg.ws_cookie = Some(Arc::new(crate::auth::CookieStore::new(
            name,
            Duration::from_secs(max_age),
            args.ws_cookie_max_entries
                .or(r.ws_cookie_max_entries)
                .unwrap_or(100_000),
        )));
    }
    if let Some(v) = args.authorizer_cache_ttl_ms.or(r.authorizer_cache_ttl_ms) {
        cfg.authz.cache_ttl = Duration::from_millis(v);
    }
    if let Some(v) = args.authorizer_cache_size.or(r.authorizer_cache_size) {
        cfg.authz.cache_size = v;
    }
    if let Some(v) = args.authorizer_timeout_ms.or(r.authorizer_timeout_ms) {
        if v == 0 {
            return Err(invalid("authorizer_timeout_ms", "must be at least 1"));
        }
        cfg.authz.timeout = Duration::from_millis(v);
    }
    Ok(cfg)
}

impl Settings {
    /// The effective settings, one `key = value` per line (TOML-like, for `config check`).
    pub fn describe(&self) -> String {
        let c = &self.router;
        let l = &c.limits;
        let mut o = String::new();
        let shards = if c.shards == 0 {
            format!("0  # one per CPU: {} here", c.shard_count())
        } else {
            c.shards.to_string()
        };
        let _ = writeln!(o, "shards = {shards}");
        if c.cpus.is_empty() {
            let _ = writeln!(o, "cpus = []  # CPUs 0..shards");
        } else {
            let _ = writeln!(o, "cpus = {:?}", c.cpus);
        }
        let _ = writeln!(o, "listeners = [");
        for lc in &c.listeners {
            let _ = writeln!(o, "  {:?},", lc.url(&lc.addr));
        }
        let _ = writeln!(o, "]");
        let _ = writeln!(o, "realms = [");
        for r in &c.realms {
            let _ = writeln!(
                o,
                "  {{ name = {:?}, anonymous = {} }},",
                r.name, r.anonymous
            );
        }
        let _ = writeln!(o, "]");
        let _ = writeln!(o, "max_message_size_ws = {}", l.max_message_size_ws);
        let _ = writeln!(
            o,
            "max_decompressed_size_ws = {}",
            l.max_decompressed_size_ws
        );
        let _ = writeln!(o, "max_message_size_rs = {}", l.max_message_size_rs);
        let _ = writeln!(o, "outbound_queue_bytes = {}", l.outbound_queue_bytes);
        let policy = match l.slow_consumer {
            SlowConsumerPolicy::Drop => "drop",
            SlowConsumerPolicy::Disconnect => "disconnect",
        };
        let _ = writeln!(o, "slow_consumer = {policy:?}");
        let _ = writeln!(o, "hello_timeout_ms = {}", l.hello_timeout.as_millis());
        let _ = writeln!(
            o,
            "handshake_timeout_ms = {}",
            l.handshake_timeout.as_millis()
        );
        let _ = writeln!(o, "frame_timeout_ms = {}", l.frame_timeout.as_millis());
        let _ = writeln!(
            o,
            "idle_timeout_ms = {}",
            l.idle_timeout.map_or(0, |d| d.as_millis())
        );
        let _ = writeln!(o, "max_connections = {}", l.max_connections);
        let _ = writeln!(
            o,
            "max_pending_calls_per_session = {}",
            l.max_pending_calls_per_session
        );
        let _ = writeln!(
            o,
            "max_subscriptions_per_session = {}",
            l.max_subscriptions_per_session
        );
        let _ = writeln!(
            o,
            "max_registrations_per_session = {}",
            l.max_registrations_per_session
        );
        match c.spin_before_park {
            Some(d) => {
                let _ = writeln!(o, "spin_before_park_us = {}", d.as_micros());
            }
            None => {
                let _ = writeln!(o, "spin_before_park_us = 0  # park at once");
            }
        }
        let _ = writeln!(o, "ws_compression = {}", c.ws_compression);
        let a = &c.authz;
        let _ = writeln!(o, "authorizer_cache_ttl_ms = {}", a.cache_ttl.as_millis());
        let _ = writeln!(o, "authorizer_cache_size = {}", a.cache_size);
        let _ = writeln!(o, "authorizer_timeout_ms = {}", a.timeout.as_millis());
        match self.metrics {
            Some(a) => {
                let _ = writeln!(o, "metrics = \"{a}\"");
            }
            None => {
                let _ = writeln!(o, "metrics = \"\"  # not served");
            }
        }
        let _ = writeln!(o, "log_level = {:?}", self.log_level);
        let _ = writeln!(o, "log_format = \"{}\"", self.log_format);
        o
    }
}

/// Every config file key, as `router.KEY` and `realm.KEY` (read from the serde structs
/// themselves, so the list cannot drift from what the parser accepts).
pub fn config_keys() -> Vec<String> {
    let mut keys = Vec::new();
    for (section, fields) in [
        ("router", field_names::of::<RouterSection>()),
        ("realm", field_names::of::<RealmSection>()),
        (
            "realm.principal",
            field_names::of::<crate::config::PrincipalSection>(),
        ),
        (
            "realm.role",
            field_names::of::<crate::config::RoleSection>(),
        ),
        (
            "realm.authenticator",
            field_names::of::<crate::config::AuthenticatorSection>(),
        ),
        (
            "realm.role.permission",
            field_names::of::<crate::config::PermissionSection>(),
        ),
        (
            "realm.role.permission.allow",
            field_names::of::<crate::authz::Allow>(),
        ),
        (
            "realm.role.permission.disclose",
            field_names::of::<crate::authz::Disclose>(),
        ),
    ] {
        keys.extend(fields.iter().map(|f| format!("{section}.{f}")));
    }
    keys
}

/// The top-level sections of the config file (`router`, `realm`).
pub fn config_sections() -> &'static [&'static str] {
    field_names::of::<ConfigFile>()
}

/// Reads the field names a `Deserialize` struct asks for, without any input: a deserializer
/// that records the `fields` argument of `deserialize_struct` and stops.
mod field_names {
    use serde::de::{self, Deserialize, Deserializer, Visitor};

    #[derive(Debug)]
    struct Stop(&'static [&'static str]);

    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field names recorded")
        }
    }

    impl std::error::Error for Stop {}

    impl de::Error for Stop {
        fn custom<T: std::fmt::Display>(_: T) -> Self {
            Stop(&[])
        }
    }

    struct Recorder;

    impl<'de> Deserializer<'de> for Recorder {
        type Error = Stop;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop(&[]))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            Err(Stop(fields))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    /// The field names of struct `T` as its `Deserialize` impl declares them (serde renames
    /// applied).
    pub fn of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
        match T::deserialize(Recorder) {
            Err(Stop(fields)) => fields,
            Ok(_) => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(argv: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("switchyard").chain(argv.iter().copied())).unwrap()
    }

    #[test]
    fn keys_come_from_the_structs() {
        let keys = config_keys();
        assert!(keys.contains(&"router.shards".to_string()));
        assert!(keys.contains(&"router.metrics".to_string()));
        assert!(keys.contains(&"realm.anonymous".to_string()));
        assert_eq!(config_sections(), &["router", "realm"]);
    }

    #[test]
    fn example_config_is_valid_and_names_every_key() {
        let f = ConfigFile::parse(EXAMPLE_CONFIG).unwrap();
        assert!(f.router.metrics.is_some());
        for k in config_keys() {
            let key = k.rsplit_once('.').unwrap().1;
            assert!(
                EXAMPLE_CONFIG.lines().any(|l| l
                    .trim_start_matches(['#', ' '])
                    .starts_with(&format!("{key} ="))),
                "example config does not mention {k}"
            );
        }
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "[router]\nshards = 3\nmetrics = \"127.0.0.1:9999\"\nlog_format = \"json\"\n",
        )
        .unwrap();
        let s = build_settings(&args(&["--config", p.to_str().unwrap(), "--shards", "2"])).unwrap();
        assert_eq!(s.router.shards, 2);
        assert_eq!(s.metrics, Some("127.0.0.1:9999".parse().unwrap()));
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.log_level, "info");
        assert!(s.describe().contains("shards = 2\n"));
        let s = build_settings(&args(&[
            "--max-subscriptions-per-session",
            "3",
            "--max-decompressed-size-ws",
            "4096",
        ]))
        .unwrap();
        let l = &s.router.limits;
        assert_eq!(l.max_subscriptions_per_session, 3);
        assert_eq!(l.max_registrations_per_session, 10_000);
        assert_eq!(l.max_pending_calls_per_session, 1_000);
        assert_eq!(l.max_decompressed_size_ws, 4096);
        assert!(s.describe().contains("max_subscriptions_per_session = 3\n"));
    }

    #[test]
    fn errors_name_the_key() {
        let e = build_settings(&args(&["--metrics", "nope"])).unwrap_err();
        assert!(e.to_string().starts_with("metrics:"), "{e}");
        let e = build_settings(&args(&["--cpus", "3-1"])).unwrap_err();
        assert!(e.to_string().starts_with("cpus:"), "{e}");
        let e = build_settings(&args(&["--realm", "a", "--realm", "a"])).unwrap_err();
        assert!(e.to_string().starts_with("realm[1].name:"), "{e}");
        let e = build_settings(&args(&["--max-pending-calls-per-session", "0"])).unwrap_err();
        assert!(
            e.to_string().starts_with("max_pending_calls_per_session:"),
            "{e}"
        );
        let e = build_settings(&args(&["--no-ws", "--no-rs"])).unwrap_err();
        assert!(e.to_string().contains("no listeners"), "{e}");
    }

    #[test]
    fn subcommands_parse_and_bare_flags_still_run_the_router() {
        assert!(args(&["--shards", "1"]).command.is_none());
        match args(&["--shards", "1", "config", "check", "x.toml"]).command {
            Some(Command::Config(ConfigCommand::Check { file })) => {
                assert_eq!(file, PathBuf::from("x.toml"))
            }
            other => panic!("{other:?}"),
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
        let e = RouterConfig::from_file(std::path::Path::new("/nonexistent/x.toml")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.toml"), "{e}");
    }
}
