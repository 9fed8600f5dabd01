//! The client library's two drivers side by side, in one run against one router: RPC round
//! trips (one call at a time: latency; a window of calls in flight: throughput) and publish
//! rate (unacknowledged events from one publisher until a subscriber has them all), glommio
//! (`switchyard::client::Client`) and tokio (`switchyard::client::tokio::Client`), alternating
//! rounds so drift on a noisy machine hits both.
//!
//! ```text
//! cargo run --release -p loadgen --bin client-drivers -- [--router rs://HOST:PORT]
//!     [--rounds 3] [--calls 20000] [--window 64] [--events 200000] [--tokio-workers 2]
//! ```
//!
//! Without `--router` a router is started in this process (one shard, RawSocket on
//! 127.0.0.1:0). The callee and subscriber run on the same driver as the caller and publisher,
//! so each figure is the driver at both ends. Serializer: MessagePack.

#[path = "common.rs"]
#[allow(dead_code)]
mod common;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use switchyard::client::{
    CallOptions, ClientConfig, Dict, PublishOptions, RegisterOptions, Serializer, SubscribeOptions,
    Value, Yield,
};

#[derive(Parser)]
struct Args {
    /// A router's RawSocket URL; default: one started in this process.
    #[arg(long)]
    router: Option<String>,
    /// Rounds per driver (alternating; the median is reported).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Sequential calls per round (latency).
    #[arg(long, default_value_t = 20_000)]
    calls: u64,
    /// Only 1/N of `calls` are made one at a time (to profile the windowed phase).
    #[arg(long, default_value_t = 1)]
    sequential_share: u64,
    /// Calls in flight for the throughput figure (`2 × calls` are made).
    #[arg(long, default_value_t = 64)]
    window: u64,
    /// Events per publish round.
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    /// Worker threads of the application's tokio runtime (0: a current-thread runtime).
    #[arg(long, default_value_t = 2)]
    tokio_workers: usize,
}

/// One round's figures.
#[derive(Debug, Clone, Copy, Default)]
struct Round {
    p50_us: f64,
    p99_us: f64,
    seq_calls_per_s: f64,
    window_calls_per_s: f64,
    events_per_s: f64,
}

fn cfg(url: &str) -> ClientConfig {
    ClientConfig::new(url, "realm1").serializer(Serializer::MsgPack)
}

const EVENTS_DONE: Duration = Duration::from_secs(120);

/// The scenario, written once for both drivers (`Client` names the driver's handle; `$sleep`
/// its timer; `$spawn` a task on its executor).
macro_rules! scenario {
    ($name:ident, $client:ty, $sleep:path, $spawn:path) => {
        async fn $name(url: String, a: Args2) -> Round {
            type C = $client;
            let callee = C::connect(cfg(&url)).await.expect("callee joins");
            let caller = C::connect(cfg(&url)).await.expect("caller joins");
            callee
                .register("bench.echo", RegisterOptions::default(), |inv| async move {
                    Ok(Yield::args(inv.args))
                })
                .await
                .expect("register");
            let args = || vec![Value::UInt(1)];
            // Warm-up.
            for _ in 0..500 {
                caller
                    .call("bench.echo", args(), Dict::new(), CallOptions::default())
                    .await
                    .expect("call");
            }
            let mut samples = Vec::with_capacity(a.calls as usize);
            let t0 = Instant::now();
            for _ in 0..a.calls / a.sequential_share {
                let t = Instant::now();
                caller
                    .call("bench.echo", args(), Dict::new(), CallOptions::default())
                    .await
                    .expect("call");
                samples.push(t.elapsed().as_nanos() as u64);
            }
            let seq = (a.calls / a.sequential_share) as f64 / t0.elapsed().as_secs_f64();
            let (p50, _, p99) = common::quantiles(samples);

            // A window of calls in flight: `window` tasks, each calling in a loop.
            let per_task = (a.calls * 2 / a.window).max(1);
            let done = Arc::new(AtomicU64::new(0));
            let t0 = Instant::now();
            for _ in 0..a.window {
                let caller = caller.clone();
                let done = done.clone();
                $spawn(async move {
                    for _ in 0..per_task {
                        caller
                            .call(
                                "bench.echo",
                                vec![Value::UInt(1)],
                                Dict::new(),
                                CallOptions::default(),
                            )
                            .await
                            .expect("call");
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                });
            }
            while done.load(Ordering::Relaxed) < a.window {
                $sleep(Duration::from_millis(1)).await;
            }
            let windowed = (per_task * a.window) as f64 / t0.elapsed().as_secs_f64();

            // Publish rate: unacknowledged events until the subscriber has them all.
            let got = Arc::new(AtomicU64::new(0));
            {
                let got = got.clone();
                callee
                    .subscribe("bench.topic", SubscribeOptions::default(), move |_ev| {
                        got.fetch_add(1, Ordering::Relaxed);
                    })
                    .await
                    .expect("subscribe");
            }
            let t0 = Instant::now();
            for i in 0..a.events {
                caller
                    .publish(
                        "bench.topic",
                        vec![Value::UInt(i)],
                        Dict::new(),
                        PublishOptions::default(),
                    )
                    .await
                    .expect("publish");
            }
            while got.load(Ordering::Relaxed) < a.events {
                assert!(
                    t0.elapsed() < EVENTS_DONE,
                    "events lost: {} of {}",
                    got.load(Ordering::Relaxed),
                    a.events
                );
                $sleep(Duration::from_millis(1)).await;
            }
            let events = a.events as f64 / t0.elapsed().as_secs_f64();
            caller.leave().await.expect("leave");
            callee.leave().await.expect("leave");
            Round {
                p50_us: p50,
                p99_us: p99,
                seq_calls_per_s: seq,
                window_calls_per_s: windowed,
                events_per_s: events,
            }
        }
    };
}

/// The arguments a round needs (`Copy`, for both executors).
#[derive(Clone, Copy)]
struct Args2 {
    calls: u64,
    /// Sequential calls are `calls / sequential_share`.
    sequential_share: u64,
    window: u64,
    events: u64,
}

async fn glommio_sleep(d: Duration) {
    glommio::timer::sleep(d).await;
}

fn glommio_spawn(f: impl std::future::Future<Output = ()> + 'static) {
    glommio::spawn_local(f).detach();
}

fn tokio_spawn(f: impl std::future::Future<Output = ()> + Send + 'static) {
    tokio::spawn(f);
}

scenario!(
    glommio_round,
    switchyard::client::Client,
    glommio_sleep,
    glommio_spawn
);
scenario!(
    tokio_round,
    switchyard::client::tokio::Client,
    tokio::time::sleep,
    tokio_spawn
);

fn run_glommio(url: &str, a: Args2) -> Round {
    let url = url.to_owned();
    glommio::LocalExecutorBuilder::default()
        .name("bench-glommio")
        .spawn(move || glommio_round(url, a))
        .expect("glommio executor")
        .join()
        .expect("glommio round")
}

fn run_tokio(url: &str, a: Args2, workers: usize) -> Round {
    let rt = match workers {
        0 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
    .expect("tokio runtime");
    rt.block_on(tokio_round(url.to_owned(), a))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let args = Args::parse();
    let a = Args2 {
        calls: args.calls,
        sequential_share: args.sequential_share.max(1),
        window: args.window,
        events: args.events,
    };
    let router = match &args.router {
        Some(_) => None,
        None => Some(
            switchyard::Router::start(switchyard::RouterConfig {
                shards: 1,
                listeners: vec![switchyard::config::ListenerConfig {
                    kind: switchyard::config::ListenerKind::RawSocket,
                    addr: switchyard::config::ListenAddr::Tcp(
                        "127.0.0.1:0".parse().expect("address"),
                    ),
                    tls: None,
                }],
                ..Default::default()
            })
            .expect("router starts"),
        ),
    };
    let url = match (&args.router, &router) {
        (Some(u), _) => u.clone(),
        (None, Some(r)) => r
            .endpoints()
            .iter()
            .find(|u| u.starts_with("rs://"))
            .expect("rs endpoint")
            .clone(),
        (None, None) => unreachable!("a router URL or a router"),
    };
    println!(
        "router {url}, {} rounds per driver, MessagePack",
        args.rounds
    );
    let (mut g, mut t) = (Vec::new(), Vec::new());
    for i in 0..args.rounds {
        let rg = run_glommio(&url, a);
        let rt = run_tokio(&url, a, args.tokio_workers);
        println!("round {}: glommio {rg:?}", i + 1);
        println!("round {}: tokio   {rt:?}", i + 1);
        g.push(rg);
        t.push(rt);
    }
    let row = |name: &str, f: fn(&Round) -> f64, unit: &str, lower_is_better: bool| {
        let gm = median(g.iter().map(f).collect());
        let tm = median(t.iter().map(f).collect());
        let ratio = if lower_is_better { tm / gm } else { gm / tm };
        println!(
            "{name:<28} glommio {gm:>10.1} {unit:<8} tokio {tm:>10.1} {unit:<8} tokio cost ×{ratio:.2}"
        );
    };
    println!("\nmedians (cost ×: how many times worse tokio is; below 1: better)");
    row("call p50", |r| r.p50_us, "µs", true);
    row("call p99", |r| r.p99_us, "µs", true);
    row("sequential calls", |r| r.seq_calls_per_s, "calls/s", false);
    row(
        &format!("calls, {} in flight", args.window),
        |r| r.window_calls_per_s,
        "calls/s",
        false,
    );
    row(
        "publish → subscriber",
        |r| r.events_per_s,
        "events/s",
        false,
    );
    if let Some(r) = router {
        r.shutdown_handle().shutdown();
        r.join().expect("router stops");
    }
}
