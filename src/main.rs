//! `switchyard`: the router service. Flags (and an optional config file) → [`RouterConfig`] →
//! [`Router`]; SIGINT/SIGTERM close every session with GOODBYE and exit 0.

use anyhow::{bail, Context, Result};
use clap::Parser;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;
use switchyard::config::{
    load_tls, parse_cpu_list, parse_socket_addr, ConfigFile, ListenAddr, ListenerConfig,
    ListenerKind, RealmConfig, RouterConfig, SlowConsumerPolicy,
};
use switchyard::shard::Router;

/// A thread-per-core WAMP v2 router.
#[derive(Parser, Debug)]
#[command(name = "switchyard", version, about)]
struct Args {
    /// WebSocket listen address (repeatable). Default 127.0.0.1:8080.
    #[arg(long = "ws", value_name = "ADDR")]
    ws: Vec<String>,
    /// Serve no plain WebSocket listener.
    #[arg(long)]
    no_ws: bool,
    /// HTTP path of the WebSocket endpoint.
    #[arg(long, value_name = "PATH")]
    ws_path: Option<String>,
    /// RawSocket TCP listen address (repeatable). Default 127.0.0.1:8081.
    #[arg(long = "rs", value_name = "ADDR")]
    rs: Vec<String>,
    /// Serve no plain RawSocket TCP listener.
    #[arg(long)]
    no_rs: bool,
    /// RawSocket Unix socket path (repeatable).
    #[arg(long = "unix", value_name = "PATH")]
    unix: Vec<PathBuf>,
    /// WebSocket over TLS listen address (repeatable; needs --tls-cert and --tls-key).
    #[arg(long = "wss", value_name = "ADDR")]
    wss: Vec<String>,
    /// RawSocket over TLS listen address (repeatable; needs --tls-cert and --tls-key).
    #[arg(long = "rss", value_name = "ADDR")]
    rss: Vec<String>,
    /// PEM certificate chain for TLS listeners.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// PEM private key for TLS listeners.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Number of shards (executors); default one per CPU.
    #[arg(long, value_name = "N")]
    shards: Option<usize>,
    /// CPUs to pin shards to, e.g. `0,1` or `2-3`.
    #[arg(long, value_name = "LIST")]
    cpus: Option<String>,
    /// Realm to serve with anonymous access (repeatable). Default realm1.
    #[arg(long = "realm", value_name = "NAME")]
    realms: Vec<String>,
    /// Largest WebSocket message accepted, in bytes.
    #[arg(long, value_name = "BYTES")]
    max_message_size_ws: Option<usize>,
    /// Largest RawSocket message accepted, in bytes (announced as 2^n, at most 16 MiB).
    #[arg(long, value_name = "BYTES")]
    max_message_size_rs: Option<usize>,
    /// Outbound queue limit per session, in bytes.
    #[arg(long, value_name = "BYTES")]
    outbound_queue_bytes: Option<usize>,
    /// What to do with a session whose outbound queue is full.
    #[arg(long, value_enum, value_name = "POLICY")]
    slow_consumer: Option<SlowConsumerPolicy>,
    /// Time allowed between transport open and HELLO, in milliseconds.
    #[arg(long, value_name = "MS")]
    hello_timeout_ms: Option<u64>,
    /// Time allowed for the TLS and transport handshakes, in milliseconds.
    #[arg(long, value_name = "MS")]
    handshake_timeout_ms: Option<u64>,
    /// Maximum connections per process.
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Microseconds an idle shard spins before parking (lower latency, more CPU).
    #[arg(long, value_name = "US")]
    spin_before_park_us: Option<u64>,
    /// Disable permessage-deflate on WebSocket.
    #[arg(long)]
    no_ws_compression: bool,
    /// Config file (TOML): `[router]` with the same keys as these flags, `[[realm]]` tables.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Log filter (error, warn, info, debug, trace, or a tracing filter expression).
    #[arg(long, default_value = "info", value_name = "FILTER")]
    log_level: String,
}

fn addrs(
    key: &str,
    flag: &[String],
    file: &Option<Vec<String>>,
) -> Result<Vec<std::net::SocketAddr>> {
    let list: Vec<String> = if !flag.is_empty() {
        flag.to_vec()
    } else {
        file.clone().unwrap_or_default()
    };
    list.iter()
        .map(|s| parse_socket_addr(key, s).map_err(Into::into))
        .collect()
}

fn build_config(args: &Args) -> Result<RouterConfig> {
    let file = match &args.config {
        Some(p) => ConfigFile::load(p)?,
        None => ConfigFile::default(),
    };
    let r = &file.router;
    let mut cfg = RouterConfig {
        shards: args.shards.or(r.shards).unwrap_or(0),
        ..Default::default()
    };
    if let Some(cpus) = args.cpus.as_ref().or(r.cpus.as_ref()) {
        cfg.cpus = parse_cpu_list(cpus).map_err(|m| anyhow::anyhow!("cpus: {m}"))?;
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
        bail!("ws_path: must start with '/'");
    }
    let mut ws = addrs("ws", &args.ws, &r.ws)?;
    if ws.is_empty() && !args.no_ws && r.ws.is_none() {
        ws.push("127.0.0.1:8080".parse()?);
    }
    let mut rs = addrs("rawsocket", &args.rs, &r.rawsocket)?;
    if rs.is_empty() && !args.no_rs && r.rawsocket.is_none() {
        rs.push("127.0.0.1:8081".parse()?);
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
    let tls = if wss.is_empty() && rss.is_empty() {
        None
    } else {
        let cert = args.tls_cert.as_ref().or(r.tls_cert.as_ref());
        let key = args.tls_key.as_ref().or(r.tls_key.as_ref());
        match (cert, key) {
            (Some(c), Some(k)) => Some(load_tls(c, k)?),
            _ => bail!(
                "tls_cert, tls_key: TLS listeners (--wss/--rss) need both --tls-cert and --tls-key"
            ),
        }
    };
    let wsk = ListenerKind::WebSocket { path: ws_path };
    for a in ws {
        cfg.listeners.push(ListenerConfig {
            kind: wsk.clone(),
            addr: ListenAddr::Tcp(a),
            tls: None,
        });
    }
    for a in rs {
        cfg.listeners.push(ListenerConfig {
            kind: ListenerKind::RawSocket,
            addr: ListenAddr::Tcp(a),
            tls: None,
        });
    }
    for a in wss {
        cfg.listeners.push(ListenerConfig {
            kind: wsk.clone(),
            addr: ListenAddr::Tcp(a),
            tls: tls.clone(),
        });
    }
    for a in rss {
        cfg.listeners.push(ListenerConfig {
            kind: ListenerKind::RawSocket,
            addr: ListenAddr::Tcp(a),
            tls: tls.clone(),
        });
    }
    for p in unix {
        cfg.listeners.push(ListenerConfig {
            kind: ListenerKind::RawSocket,
            addr: ListenAddr::Unix(p),
            tls: None,
        });
    }
    if cfg.listeners.is_empty() {
        bail!("no listeners: give at least one of --ws, --rs, --unix, --wss, --rss");
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
        if switchyard::codec::uri::validate_uri(&r.name, switchyard::codec::uri::UriCheck::Loose)
            .is_err()
        {
            bail!("realm[{i}].name: {:?} is not a valid URI", r.name);
        }
    }
    cfg.realms = realms;
    let l = &mut cfg.limits;
    if let Some(v) = args.max_message_size_ws.or(r.max_message_size_ws) {
        l.max_message_size_ws = v;
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
    cfg.spin_before_park = args
        .spin_before_park_us
        .or(r.spin_before_park_us)
        .map(Duration::from_micros);
    cfg.ws_compression = !args.no_ws_compression && r.ws_compression.unwrap_or(true);
    Ok(cfg)
}

fn main() -> Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&args.log_level)
                .with_context(|| format!("--log-level: bad filter {:?}", args.log_level))?,
        )
        .with_writer(std::io::stderr)
        .init();
    let cfg = build_config(&args)?;
    let router = Router::start(cfg).context("switchyard could not start")?;
    {
        let mut out = std::io::stdout().lock();
        for e in router.endpoints() {
            writeln!(out, "listening {e}")?;
        }
        writeln!(out, "ready")?;
        out.flush()?;
    }
    let shutdown = router.shutdown_handle();
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                tracing::info!("shutting down");
                shutdown.shutdown();
            }
        })?;
    router
        .join()
        .map_err(|e| anyhow::anyhow!("shard failed: {e}"))?;
    Ok(())
}
