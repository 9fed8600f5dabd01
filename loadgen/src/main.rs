//! `loadgen`: a thread-per-core load generator for WAMP routers.
//!
//! One glommio executor per loadgen shard (`--shards`, pinned with `--cpus` apart from the
//! router), each running many lean client sessions ([`transport`], [`wamp`]) of one scenario
//! ([`scenario`]). The main thread runs the phases and the accounting ([`runner`], [`stats`])
//! and writes the results ([`report`]).

mod clock;
mod report;
mod runner;
mod scenario;
mod stats;
mod wamp;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use switchyard::client::{transport, url};
use switchyard::codec::Serializer;

use report::Report;
use runner::Plan;
use scenario::{pubsub::PubSub, rpc::Rpc, Env};

/// Load generator for WAMP routers (Switchyard or any other).
#[derive(Parser, Debug)]
#[command(name = "loadgen", version, about)]
struct Args {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// P publishers, S subscribers over T topics.
    Pubsub {
        #[arg(long, default_value_t = 1)]
        publishers: usize,
        #[arg(long, default_value_t = 16)]
        subscribers: usize,
        #[arg(long, default_value_t = 1)]
        topics: usize,
        /// Application payload size in bytes.
        #[arg(long, default_value_t = 64)]
        size: usize,
        /// Ask for PUBLISHED acknowledgements.
        #[arg(long)]
        acknowledge: bool,
        /// Extra subscribers that never read (a prefix subscription matching every topic):
        /// what they cost the others, with the router's slow-consumer policy. Not counted.
        #[arg(long, default_value_t = 0)]
        stuck: usize,
        #[command(flatten)]
        common: Common,
    },
    /// One publisher to N subscribers of one topic.
    Fanout {
        #[arg(long, default_value_t = 512)]
        subscribers: usize,
        #[arg(long, default_value_t = 64)]
        size: usize,
        #[arg(long)]
        acknowledge: bool,
        /// Extra subscribers that never read (see `pubsub --stuck`).
        #[arg(long, default_value_t = 0)]
        stuck: usize,
        #[command(flatten)]
        common: Common,
    },
    /// C callers, E callees of one procedure.
    Rpc {
        #[arg(long, default_value_t = 64)]
        callers: usize,
        #[arg(long, default_value_t = 1)]
        callees: usize,
        #[arg(long, default_value_t = 64)]
        size: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Session establishment rate: connect, HELLO/WELCOME, GOODBYE, close, repeat.
    Connect {
        /// Concurrent connecting workers (over all shards).
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[command(flatten)]
        common: Common,
    },
    /// Hold N sessions open; report the router's RSS (needs --router-pid).
    Idle {
        #[arg(long, default_value_t = 10_000)]
        sessions: usize,
        #[command(flatten)]
        common: Common,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum Ser {
    Json,
    Msgpack,
    Cbor,
    Ubjson,
    Bjdata,
}

#[derive(clap::Args, Debug, Clone)]
struct Common {
    /// Router endpoint: rs://host:port, rss://host:port, ws://host:port/path,
    /// wss://host:port/path, unix://PATH.
    #[arg(long, default_value = "rs://127.0.0.1:8081")]
    url: String,
    /// Connect the senders (publishers, callers) here instead of --url: e.g. another node of
    /// a cluster, to measure what crossing nodes costs.
    #[arg(long, value_name = "URL")]
    sender_url: Option<String>,
    #[arg(long, value_enum, default_value = "msgpack")]
    serializer: Ser,
    #[arg(long, default_value = "realm1")]
    realm: String,
    /// Measurement window, seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Warm-up before the window, seconds.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Longest wait for owed deliveries after sending stops, seconds.
    #[arg(long, default_value_t = 5.0)]
    drain: f64,
    /// Open loop: total messages (events published, calls) per second, spread evenly over
    /// the senders (each sender's schedule is shifted, so they do not send at the same instants).
    #[arg(long)]
    rate: Option<f64>,
    /// Closed loop: messages in flight per sender (rpc default 16).
    #[arg(long)]
    outstanding: Option<usize>,
    /// Send exactly this many messages per sender, then drain and stop (no duration).
    #[arg(long)]
    count: Option<u64>,
    /// Loadgen shards (executor threads).
    #[arg(long, default_value_t = 1)]
    shards: usize,
    /// CPUs to pin loadgen shards to, e.g. `1` or `2-3`.
    #[arg(long)]
    cpus: Option<String>,
    /// Trust the PEM certificates in FILE (rss://, wss://).
    #[arg(long, value_name = "FILE")]
    tls_ca: Option<PathBuf>,
    /// Accept any server certificate (rss://, wss://).
    #[arg(long)]
    tls_insecure: bool,
    /// The router's process ID: report its RSS (/proc/PID/status VmRSS).
    #[arg(long)]
    router_pid: Option<u32>,
    /// Write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the latency histogram (HdrHistogram percentile text format) to FILE.
    #[arg(long, value_name = "FILE")]
    hgrm: Option<PathBuf>,
    /// Write an SVG latency-by-percentile plot to FILE.
    #[arg(long, value_name = "FILE")]
    plot: Option<PathBuf>,
    /// A name for this run in reports (e.g. the router's name).
    #[arg(long)]
    label: Option<String>,
    /// Most messages written per write call.
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Readers (subscribers, callers, callees) with nothing to read keep asking the socket
    /// for this many microseconds, yielding in between, before they wait on the runtime's
    /// reactor. 0: wait at once. Busy readers leave no readiness poll armed while data keeps
    /// coming, so neither loadgen nor the router's sends pay for waking them (see
    /// bench/FINDINGS.md); loadgen burns its own core doing it.
    #[arg(long, value_name = "US", default_value_t = 0)]
    busy_read_us: u64,
    /// Sessions opened at once per shard during setup.
    #[arg(long, default_value_t = 128)]
    setup_concurrency: usize,
    /// Longest setup allowed, seconds.
    #[arg(long, default_value_t = 120.0)]
    setup_timeout: f64,
    /// Microseconds an idle loadgen shard spins before parking (lower latency, more CPU).
    #[arg(long)]
    spin_us: Option<u64>,
    /// No progress line.
    #[arg(long, short)]
    quiet: bool,
}

impl Common {
    fn env(&self) -> Result<Env> {
        let endpoint = url::Endpoint::parse(&self.url)?;
        let tls = if endpoint.tls {
            Some(transport::Tls::new(
                self.tls_ca.as_ref(),
                self.tls_insecure,
            )?)
        } else {
            None
        };
        if self.batch == 0 {
            bail!("--batch must be at least 1");
        }
        let sender_endpoint = self
            .sender_url
            .as_deref()
            .map(url::Endpoint::parse)
            .transpose()?;
        Ok(Env {
            endpoint,
            sender_endpoint,
            ser: self.ser(),
            realm: self.realm.clone(),
            tls,
            setup_concurrency: self.setup_concurrency.max(1),
            batch: self.batch,
            busy_read: std::time::Duration::from_micros(self.busy_read_us),
        })
    }

    fn ser(&self) -> Serializer {
        match self.serializer {
            Ser::Json => Serializer::Json,
            Ser::Msgpack => Serializer::MsgPack,
            Ser::Cbor => Serializer::Cbor,
            Ser::Ubjson => Serializer::Ubjson,
            Ser::Bjdata => Serializer::Bjdata,
        }
    }

    fn plan(&self, senders: u64, deliveries: bool) -> Result<Plan> {
        if self.shards == 0 {
            bail!("--shards must be at least 1");
        }
        let secs = |name: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(Duration::from_secs_f64(v))
            } else {
                bail!("--{name} must be a non-negative number of seconds")
            }
        };
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                bail!("--rate must be positive");
            }
        }
        let cpus = match &self.cpus {
            Some(list) => switchyard::config::parse_cpu_list(list)
                .map_err(|m| anyhow::anyhow!("--cpus: {m}"))?,
            None => Vec::new(),
        };
        let count_mode = self.count.is_some();
        Ok(Plan {
            shards: self.shards,
            cpus,
            warmup: if count_mode {
                Duration::ZERO
            } else {
                secs("warmup", self.warmup)?
            },
            duration: secs("duration", self.duration)?,
            drain: secs("drain", self.drain)?,
            senders,
            count_mode,
            setup_timeout: secs("setup-timeout", self.setup_timeout)?,
            spin_before_park: self.spin_us.map(Duration::from_micros),
            progress: !self.quiet,
            router_pid: self.router_pid,
            wait_for_deliveries: deliveries,
            wait_for_acks: false,
            settle: Duration::ZERO,
        })
    }

    fn report(
        &self,
        scenario: &str,
        unit: &'static str,
        params: Vec<(&'static str, String)>,
        plan: &Plan,
        outcome: runner::Outcome,
    ) -> Report {
        Report {
            scenario: scenario.into(),
            label: self.label.clone(),
            url: self.url.clone(),
            serializer: self.ser().subprotocol().trim_start_matches("wamp.2."),
            realm: self.realm.clone(),
            params,
            unit,
            warmup_secs: plan.warmup.as_secs_f64(),
            outcome,
            held_sessions: None,
        }
    }

    fn write_outputs(&self, r: &Report) -> Result<()> {
        print!("{}", r.table());
        if let Some(p) = &self.json {
            std::fs::write(p, serde_json::to_string_pretty(&r.json())? + "\n")
                .with_context(|| format!("{}", p.display()))?;
        }
        if let Some(p) = &self.hgrm {
            std::fs::write(p, report::hgrm(&r.outcome.latency))
                .with_context(|| format!("{}", p.display()))?;
        }
        if let Some(p) = &self.plot {
            let name = r.label.clone().unwrap_or_else(|| r.url.clone());
            let title = format!("{} latency by percentile", r.scenario);
            std::fs::write(p, report::svg(&title, &[(name, &r.outcome.latency)]))
                .with_context(|| format!("{}", p.display()))?;
        }
        Ok(())
    }
}

fn pubsub(c: &Common, cfg: PubSub, name: &str) -> Result<()> {
    if cfg.topics == 0 || cfg.publishers == 0 {
        bail!("need at least one topic and one publisher");
    }
    let env = Arc::new(c.env()?);
    let mut plan = c.plan(cfg.publishers as u64, true)?;
    plan.wait_for_acks = cfg.acknowledge;
    let params = vec![
        ("publishers", cfg.publishers.to_string()),
        ("subscribers", cfg.subscribers.to_string()),
        ("topics", cfg.topics.to_string()),
        ("size", cfg.size.to_string()),
        ("acknowledge", cfg.acknowledge.to_string()),
        ("rate", opt(cfg.rate)),
        ("outstanding", opt(cfg.outstanding)),
        ("count", opt(cfg.count)),
    ];
    let cfg = Arc::new(cfg);
    let outcome = runner::run(&plan, move |ctx| {
        scenario::pubsub::shard(ctx, env.clone(), cfg.clone())
    })?;
    let r = c.report(name, "events", params, &plan, outcome);
    c.write_outputs(&r)
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

fn main() -> Result<()> {
    let args = Args::parse();
    clock::now_ns();
    match args.scenario {
        Scenario::Pubsub {
            publishers,
            subscribers,
            topics,
            size,
            acknowledge,
            stuck,
            common,
        } => pubsub(
            &common,
            PubSub {
                publishers,
                subscribers,
                topics,
                size,
                acknowledge,
                stuck,
                rate: common.rate,
                outstanding: common.outstanding,
                count: common.count,
            },
            "pubsub",
        ),
        Scenario::Fanout {
            subscribers,
            size,
            acknowledge,
            stuck,
            common,
        } => pubsub(
            &common,
            PubSub {
                publishers: 1,
                subscribers,
                topics: 1,
                size,
                acknowledge,
                stuck,
                rate: common.rate,
                outstanding: common.outstanding,
                count: common.count,
            },
            "fanout",
        ),
        Scenario::Rpc {
            callers,
            callees,
            size,
            common,
        } => {
            if callers == 0 || callees == 0 {
                bail!("need at least one caller and one callee");
            }
            let cfg = Rpc {
                callers,
                callees,
                size,
                outstanding: common.outstanding.unwrap_or(16).max(1),
                rate: common.rate,
                count: common.count,
            };
            let env = Arc::new(common.env()?);
            let plan = common.plan(callers as u64, true)?;
            let params = vec![
                ("callers", callers.to_string()),
                ("callees", callees.to_string()),
                ("size", size.to_string()),
                ("outstanding", cfg.outstanding.to_string()),
                ("rate", opt(cfg.rate)),
                ("count", opt(cfg.count)),
            ];
            let cfg = Arc::new(cfg);
            let outcome = runner::run(&plan, move |ctx| {
                scenario::rpc::shard(ctx, env.clone(), cfg.clone())
            })?;
            let r = common.report("rpc", "calls", params, &plan, outcome);
            common.write_outputs(&r)
        }
        Scenario::Connect {
            concurrency,
            common,
        } => {
            if common.count.is_some() {
                bail!("connect runs for --duration; --count is not supported");
            }
            let env = Arc::new(common.env()?);
            let plan = common.plan(concurrency as u64, true)?;
            let outcome = runner::run(&plan, move |ctx| {
                scenario::connect::connect_shard(ctx, env.clone(), concurrency)
            })?;
            let params = vec![("concurrency", concurrency.to_string())];
            let r = common.report("connect", "sessions", params, &plan, outcome);
            common.write_outputs(&r)
        }
        Scenario::Idle { sessions, common } => {
            let env = Arc::new(common.env()?);
            let mut plan = common.plan(0, false)?;
            plan.warmup = Duration::ZERO;
            plan.settle = Duration::from_secs(1);
            let outcome = runner::run(&plan, move |ctx| {
                scenario::connect::idle_shard(ctx, env.clone(), sessions)
            })?;
            let params = vec![("sessions", sessions.to_string())];
            let mut r = common.report("idle", "sessions", params, &plan, outcome);
            r.held_sessions = Some(sessions as u64);
            common.write_outputs(&r)
        }
    }
}
