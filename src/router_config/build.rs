//! Flags merged over the config file into a [`RouterConfig`], one step per concern.
//!
//! Everywhere a flag wins over the file's key (`args.x.or(r.x)`). The steps run in the order of
//! [`build_router_config`], which is also the order in which errors are reported: shards and
//! CPUs, listeners (addresses, then TLS), realms, limits, runtime tuning, the WebSocket cookie,
//! the dynamic authorizer settings.

use super::{RealmConfig, RouterConfig};
use crate::auth::CookieStore;
use crate::config::{
    load_tls, parse_cpu_list, parse_socket_addr, Args, AuthzSettings, ConfigError, ConfigFile,
    Limits, ListenAddr, ListenerConfig, ListenerKind, RouterSection,
};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub(super) fn invalid(key: &str, message: impl Into<String>) -> ConfigError {
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

/// The [`RouterConfig`] of `switchyard` run with `args` and the config file `file`.
pub(super) fn build_router_config(
    args: &Args,
    file: &ConfigFile,
) -> Result<RouterConfig, ConfigError> {
    let r = &file.router;
    let mut cfg = RouterConfig {
        shards: args.shards.or(r.shards).unwrap_or(0),
        ..Default::default()
    };
    shards_and_cpus(args, r, &mut cfg)?;
    cfg.listeners = listeners(args, r)?;
    cfg.realms = realms(args, file, std::mem::take(&mut cfg.realms))?;
    limits(args, r, &mut cfg.limits)?;
    cfg.spin_before_park = args
        .spin_before_park_us
        .or(r.spin_before_park_us)
        .map(Duration::from_micros);
    cfg.busy_read = busy_read(args.busy_read_us.or(r.busy_read_us))?;
    cfg.adaptive_spin = adaptive_spin(args.adaptive_spin_us.or(r.adaptive_spin_us))?;
    cfg.ws_compression = !args.no_ws_compression && r.ws_compression.unwrap_or(true);
    cfg.ubjson_dialect = args.ubjson_dialect.or(r.ubjson_dialect).unwrap_or_default();
    cfg.transports = transports(args, r)?;
    cfg.ws_cookie = ws_cookie(args, r)?;
    authorizer_settings(args, r, &mut cfg.authz)?;
    cfg.cluster = cluster(args, r)?;
    Ok(cfg)
}

/// `--cluster` and friends (`router.cluster`, `router.node_id`, …).
fn cluster(
    args: &Args,
    r: &RouterSection,
) -> Result<Option<crate::cluster::ClusterConfig>, ConfigError> {
    let Some(urls) = args.cluster.as_ref().or(r.cluster.as_ref()) else {
        for (set, key) in [
            (args.node_id.or(r.node_id).is_some(), "node_id"),
            (
                args.cluster_name.is_some() || r.cluster_name.is_some(),
                "cluster_name",
            ),
            (
                args.cluster_token.is_some() || r.cluster_token.is_some(),
                "cluster_token",
            ),
            (
                args.cluster_tls_ca.is_some() || r.cluster_tls_ca.is_some(),
                "cluster_tls_ca",
            ),
        ] {
            if set {
                return Err(invalid(
                    key,
                    "only with cluster (--cluster nats://HOST:PORT)",
                ));
            }
        }
        return Ok(None);
    };
    if cfg!(not(feature = "cluster")) {
        return Err(invalid(
            "cluster",
            "this build has no cluster support (cargo feature `cluster`)",
        ));
    }
    let mut list = Vec::new();
    let mut user = None;
    for u in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let (scheme, rest) = u
            .split_once("://")
            .ok_or_else(|| invalid("cluster", format!("{u:?}: a URL like nats://HOST:PORT")))?;
        if !["nats", "tls"].contains(&scheme) {
            return Err(invalid(
                "cluster",
                format!("{u:?}: the scheme must be nats:// or tls://"),
            ));
        }
        let hostport = match rest.rsplit_once('@') {
            Some((cred, hp)) => {
                let (name, pass) = cred.split_once(':').unwrap_or((cred, ""));
                user = Some((name.to_owned(), pass.to_owned()));
                hp
            }
            None => rest,
        };
        let port_ok = hostport
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        if !port_ok {
            return Err(invalid(
                "cluster",
                format!("{u:?}: HOST:PORT expected after the scheme"),
            ));
        }
        list.push(format!("{scheme}://{hostport}"));
    }
    if list.is_empty() {
        return Err(invalid("cluster", "at least one NATS server URL"));
    }
    let max = crate::routing::cluster::MAX_NODE_ID;
    let node_id = args
        .node_id
        .or(r.node_id)
        .ok_or_else(|| invalid("node_id", "a cluster node needs --node-id (1..=2047)"))?;
    if !(1..=max).contains(&node_id) {
        return Err(invalid("node_id", format!("{node_id} is not in 1..={max}")));
    }
    let name = args
        .cluster_name
        .clone()
        .or(r.cluster_name.clone())
        .unwrap_or_else(|| "switchyard".into());
    let name_ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        return Err(invalid(
            "cluster_name",
            format!("{name:?}: 1 to 64 letters, digits, '-' or '_'"),
        ));
    }
    let timeout = args
        .cluster_node_timeout_ms
        .or(r.cluster_node_timeout_ms)
        .unwrap_or(3000);
    if !(300..=600_000).contains(&timeout) {
        return Err(invalid(
            "cluster_node_timeout_ms",
            format!("{timeout} is not in 300..=600000"),
        ));
    }
    let tls_ca = args.cluster_tls_ca.clone().or(r.cluster_tls_ca.clone());
    if let Some(ca) = &tls_ca {
        if !ca.is_file() {
            return Err(invalid(
                "cluster_tls_ca",
                format!("{}: no such file", ca.display()),
            ));
        }
    }
    let queue = args.cluster_queue.or(r.cluster_queue).unwrap_or(65_536);
    if queue == 0 {
        return Err(invalid("cluster_queue", "at least 1"));
    }
    let replicas = args.cluster_replicas.or(r.cluster_replicas).unwrap_or(1);
    if !(1..=5).contains(&replicas) {
        return Err(invalid(
            "cluster_replicas",
            format!("{replicas} is not in 1..=5"),
        ));
    }
    Ok(Some(crate::cluster::ClusterConfig {
        urls: list,
        node_id,
        name,
        node_timeout: Duration::from_millis(timeout),
        token: args.cluster_token.clone().or(r.cluster_token.clone()),
        user,
        tls_ca,
        queue,
        replicas,
    }))
}

/// `cpus`; without `shards`, one shard per listed CPU.
/// `busy_read_us`: 0 is off; at most 10 ms (a session busy longer than that only burns CPU).
fn busy_read(us: Option<u64>) -> Result<Option<Duration>, ConfigError> {
    match us {
        None | Some(0) => Ok(None),
        Some(us) if us <= 10_000 => Ok(Some(Duration::from_micros(us))),
        Some(_) => Err(invalid("busy_read_us", "at most 10000 (10 ms)")),
    }
}

/// `adaptive_spin_us`: unset is [`super::ADAPTIVE_SPIN`], 0 is off; at most 10 ms.
fn adaptive_spin(us: Option<u64>) -> Result<Option<Duration>, ConfigError> {
    match us {
        None => Ok(Some(super::ADAPTIVE_SPIN)),
        Some(0) => Ok(None),
        Some(us) if us <= 10_000 => Ok(Some(Duration::from_micros(us))),
        Some(_) => Err(invalid("adaptive_spin_us", "at most 10000 (10 ms)")),
    }
}

fn shards_and_cpus(
    args: &Args,
    r: &RouterSection,
    cfg: &mut RouterConfig,
) -> Result<(), ConfigError> {
    if let Some(cpus) = args.cpus.as_ref().or(r.cpus.as_ref()) {
        cfg.cpus = parse_cpu_list(cpus).map_err(|m| invalid("cpus", m))?;
        if cfg.shards == 0 {
            cfg.shards = cfg.cpus.len();
        }
    }
    Ok(())
}

/// Every listener: plain WebSocket and RawSocket (with their defaults 127.0.0.1:8080 and
/// :8081 unless turned off or given), TLS ones, Unix sockets; at least one.
/// `--ws-serializers` / `router.ws_serializers`, `--rs-serializers` / `router.rs_serializers`,
/// `--no-ws-batched` / `router.ws_batched` (flags win over the file).
fn transports(
    args: &Args,
    r: &RouterSection,
) -> Result<crate::config::TransportOptions, ConfigError> {
    let mut t = crate::config::TransportOptions::default();
    if !args.ws_serializers.is_empty() {
        t.ws_serializers =
            crate::config::parse_serializers("ws-serializers", &args.ws_serializers)?;
    } else if let Some(l) = &r.ws_serializers {
        t.ws_serializers = crate::config::parse_serializers("router.ws_serializers", l)?;
    }
    if !args.rs_serializers.is_empty() {
        t.rs_serializers =
            crate::config::parse_serializers("rs-serializers", &args.rs_serializers)?;
    } else if let Some(l) = &r.rs_serializers {
        t.rs_serializers = crate::config::parse_serializers("router.rs_serializers", l)?;
    }
    t.ws_batched = !args.no_ws_batched && r.ws_batched.unwrap_or(true);
    t.longpoll = longpoll(args, r)?;
    Ok(t)
}

/// `--no-longpoll` / `router.longpoll`, `--longpoll-path` / `router.longpoll_path`, and the
/// two timeouts (flags win over the file).
fn longpoll(
    args: &Args,
    r: &RouterSection,
) -> Result<Option<crate::config::LongPollOptions>, ConfigError> {
    if args.no_longpoll || r.longpoll == Some(false) {
        return Ok(None);
    }
    let mut lp = crate::config::LongPollOptions::default();
    let (key, path) = match (&args.longpoll_path, &r.longpoll_path) {
        (Some(p), _) => ("longpoll-path", Some(p)),
        (None, Some(p)) => ("router.longpoll_path", Some(p)),
        (None, None) => ("", None),
    };
    if let Some(p) = path {
        let ok = p.starts_with('/')
            && p.len() > 1
            && p.bytes()
                .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#');
        if !ok {
            return Err(ConfigError::Invalid {
                key: key.into(),
                message: format!(
                    "{p:?} is not a URL path (it must start with '/', name something, and \
                     hold no spaces, '?' or '#')"
                ),
            });
        }
        lp.path = p.trim_end_matches('/').to_owned();
    }
    let ms = |flag: &str, key: &str, a: Option<u64>, f: Option<u64>, d: std::time::Duration| {
        let (name, v) = match (a, f) {
            (Some(v), _) => (flag, v),
            (None, Some(v)) => (key, v),
            (None, None) => return Ok(d),
        };
        if v == 0 {
            return Err(ConfigError::Invalid {
                key: name.into(),
                message: "must be at least 1 millisecond".into(),
            });
        }
        Ok(std::time::Duration::from_millis(v))
    };
    lp.request_timeout = ms(
        "longpoll-request-timeout-ms",
        "router.longpoll_request_timeout_ms",
        args.longpoll_request_timeout_ms,
        r.longpoll_request_timeout_ms,
        lp.request_timeout,
    )?;
    lp.session_timeout = ms(
        "longpoll-session-timeout-ms",
        "router.longpoll_session_timeout_ms",
        args.longpoll_session_timeout_ms,
        r.longpoll_session_timeout_ms,
        lp.session_timeout,
    )?;
    Ok(Some(lp))
}

fn listeners(args: &Args, r: &RouterSection) -> Result<Vec<ListenerConfig>, ConfigError> {
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
    let tls = tls(args, r, !(wss.is_empty() && rss.is_empty()))?;
    let wsk = ListenerKind::WebSocket { path: ws_path };
    let tcp = |kind: &ListenerKind, a: SocketAddr, tls: &Option<_>| ListenerConfig {
        kind: kind.clone(),
        addr: ListenAddr::Tcp(a),
        tls: tls.clone(),
    };
    let mut listeners = Vec::new();
    for a in ws {
        listeners.push(tcp(&wsk, a, &None));
    }
    for a in rs {
        listeners.push(tcp(&ListenerKind::RawSocket, a, &None));
    }
    for a in wss {
        listeners.push(tcp(&wsk, a, &tls));
    }
    for a in rss {
        listeners.push(tcp(&ListenerKind::RawSocket, a, &tls));
    }
    for p in unix {
        listeners.push(ListenerConfig {
            kind: ListenerKind::RawSocket,
            addr: ListenAddr::Unix(p),
            tls: None,
        });
    }
    if listeners.is_empty() {
        return Err(invalid(
            "ws, rawsocket, unix, wss, rss",
            "no listeners: give at least one of --ws, --rs, --unix, --wss, --rss",
        ));
    }
    Ok(listeners)
}

/// The TLS server config of the `wss`/`rss` listeners (`wanted`: there are some), with client
/// certificates (authmethod `tls`) when `tls_client_ca` is set. `tls_client_auth` without a CA
/// is refused even when no TLS listener is configured.
fn tls(
    args: &Args,
    r: &RouterSection,
    wanted: bool,
) -> Result<Option<Arc<rustls::ServerConfig>>, ConfigError> {
    let client_ca = args.tls_client_ca.as_ref().or(r.tls_client_ca.as_ref());
    if client_ca.is_none() && (args.tls_client_auth.is_some() || r.tls_client_auth.is_some()) {
        return Err(invalid(
            "tls_client_auth",
            "needs tls_client_ca (--tls-client-ca)",
        ));
    }
    if !wanted {
        return Ok(None);
    }
    let cert = args.tls_cert.as_ref().or(r.tls_cert.as_ref());
    let key = args.tls_key.as_ref().or(r.tls_key.as_ref());
    match (cert, key) {
        (Some(c), Some(k)) => match client_ca {
            None => Ok(Some(load_tls(c, k).map_err(|e| name_tls_file(e, args, r))?)),
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
                Ok(Some(
                    crate::auth::load_tls_client_auth(c, k, ca, required)
                        .map_err(|e| name_tls_file(e, args, r))?,
                ))
            }
        },
        _ => Err(invalid(
            "tls_cert, tls_key",
            "TLS listeners (--wss/--rss) need both --tls-cert and --tls-key",
        )),
    }
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

/// The realms: `--realm` (anonymous) if given, else the file's `[[realm]]` tables, else
/// `default`; names must be URIs and distinct.
fn realms(
    args: &Args,
    file: &ConfigFile,
    default: Vec<RealmConfig>,
) -> Result<Vec<RealmConfig>, ConfigError> {
    let realms: Vec<RealmConfig> = if !args.realms.is_empty() {
        args.realms.iter().map(RealmConfig::anonymous).collect()
    } else if !file.realms.is_empty() {
        file.realms
            .iter()
            .enumerate()
            .map(|(i, r)| r.to_config(i))
            .collect::<Result<_, _>>()?
    } else {
        default
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
    Ok(realms)
}

/// The limits protecting the router; the per-session counts must be at least 1.
fn limits(args: &Args, r: &RouterSection, l: &mut Limits) -> Result<(), ConfigError> {
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
    if let Some(v) = args.ping_interval_ms.or(r.ping_interval_ms) {
        l.ping_interval = (v > 0).then(|| Duration::from_millis(v));
    }
    if let Some(v) = args.max_connections.or(r.max_connections) {
        l.max_connections = v;
    }
    if let Some(v) = args.max_retained_events.or(r.max_retained_events) {
        l.max_retained_events = v;
    }
    if let Some(v) = args.max_retained_bytes.or(r.max_retained_bytes) {
        l.max_retained_bytes = v;
    }
    l.strict_progressive_results =
        args.strict_progressive_results || r.strict_progressive_results == Some(true);
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
    Ok(())
}

/// The WebSocket tracking cookie and the store of authmethod `cookie`, when turned on.
fn ws_cookie(args: &Args, r: &RouterSection) -> Result<Option<Arc<CookieStore>>, ConfigError> {
    if !(args.ws_cookie || r.ws_cookie == Some(true)) {
        return Ok(None);
    }
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
    Ok(Some(Arc::new(CookieStore::new(
        name,
        Duration::from_secs(max_age),
        args.ws_cookie_max_entries
            .or(r.ws_cookie_max_entries)
            .unwrap_or(100_000),
    ))))
}

/// Cache and timeout of the dynamic authorizers.
fn authorizer_settings(
    args: &Args,
    r: &RouterSection,
    a: &mut AuthzSettings,
) -> Result<(), ConfigError> {
    if let Some(v) = args.authorizer_cache_ttl_ms.or(r.authorizer_cache_ttl_ms) {
        a.cache_ttl = Duration::from_millis(v);
    }
    if let Some(v) = args.authorizer_cache_size.or(r.authorizer_cache_size) {
        a.cache_size = v;
    }
    if let Some(v) = args.authorizer_timeout_ms.or(r.authorizer_timeout_ms) {
        if v == 0 {
            return Err(invalid("authorizer_timeout_ms", "must be at least 1"));
        }
        a.timeout = Duration::from_millis(v);
    }
    Ok(())
}
