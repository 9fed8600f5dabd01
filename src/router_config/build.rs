//! Flags merged over the config file into a [`RouterConfig`], one step per concern.

use super::{RealmConfig, RouterConfig};
use crate::config::{
    load_tls, parse_cpu_list, parse_socket_addr, Args, ConfigError, ConfigFile, ListenAddr,
    ListenerConfig, ListenerKind,
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

pub(super) fn build_router_config(
    args: &Args,
    file: &ConfigFile,
) -> Result<RouterConfig, ConfigError> {
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
                None => Some(load_tls(c, k)?),
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
                    Some(crate::auth::load_tls_client_auth(c, k, ca, required)?)
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
