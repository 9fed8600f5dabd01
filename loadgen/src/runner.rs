//! Thread-per-core execution of a scenario and the phases of a run.
//!
//! The main thread starts one glommio `LocalExecutor` per loadgen shard (pinned with
//! `--cpus`), each running the scenario's shard function. A run goes through:
//!
//! 1. **setup**: every shard connects and joins its sessions, subscribes or registers, then
//!    reports ready ([`ShardCtx::ready`]) and waits;
//! 2. **warm-up** then **measurement**: the main thread sets the start time, every shard
//!    starts sending; the main thread snapshots the counters at the window's start and end and
//!    prints a progress line each second;
//! 3. **drain**: senders stop ([`ShardCtx::sending`] turns false) and the main thread waits
//!    until every owed delivery arrived or the drain time ran out, so loss is exact;
//! 4. **stop**: shards drop their sessions and hand back their latency histogram.
//!
//! Shards and main thread share only [`Control`] (atomics) and the per-shard [`Counters`].

use anyhow::{anyhow, Result};
use hdrhistogram::Histogram;
use std::future::Future;
use std::io::Write;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::now_ns;
use crate::stats::{new_histogram, Counters, Latency, Snapshot};

/// Phase flags the main thread sets and the shards poll.
#[derive(Debug, Default)]
pub struct Control {
    /// Shards done with setup (or failed).
    ready: AtomicUsize,
    /// When traffic starts ([`now_ns`] time); 0 until then.
    start_ns: AtomicU64,
    /// Latency window, set before `start_ns`.
    window_from: AtomicU64,
    window_to: AtomicU64,
    /// Senders must stop (drain begins).
    stop_send: AtomicBool,
    /// Shards must drop everything and return.
    stop: AtomicBool,
    /// The first shard error.
    failure: Mutex<Option<String>>,
}

impl Control {
    fn fail(&self, e: String) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(e);
        }
    }

    fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }
}

/// What a shard function gets.
#[derive(Clone)]
pub struct ShardCtx {
    pub index: usize,
    pub shards: usize,
    control: Arc<Control>,
    /// This shard's counters (this shard is their only writer).
    pub counters: Arc<Counters>,
    /// Every shard's counters, for closed loops over process-wide in-flight counts.
    pub all: Arc<Vec<Arc<Counters>>>,
    pub latency: Rc<Latency>,
}

impl ShardCtx {
    /// Which of `n` global items (sessions) belong to this shard: round-robin.
    pub fn mine(&self, n: usize) -> impl Iterator<Item = usize> {
        (self.index..n).step_by(self.shards)
    }

    /// Reports setup done and waits for the start; returns the start time (None: stop).
    pub async fn ready(&self) -> Option<u64> {
        self.control.ready.fetch_add(1, SeqCst);
        loop {
            if self.control.stop.load(Acquire) {
                return None;
            }
            let start = self.control.start_ns.load(Acquire);
            if start != 0 {
                self.latency.set_window(
                    self.control.window_from.load(Acquire),
                    self.control.window_to.load(Acquire),
                );
                return Some(start);
            }
            glommio::timer::sleep(Duration::from_micros(500)).await;
        }
    }

    /// Whether senders may keep sending.
    #[inline]
    pub fn sending(&self) -> bool {
        !self.control.stop_send.load(Relaxed)
    }

    /// Resolves when the run is over.
    pub async fn stopped(&self) {
        while !self.control.stop.load(Acquire) {
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Sum over all shards (cheap: a few atomic loads per shard).
    pub fn global(&self) -> Snapshot {
        Snapshot::sum(self.all.iter().map(|c| &**c))
    }
}

/// How long each phase lasts.
#[derive(Debug, Clone)]
pub struct Plan {
    pub shards: usize,
    pub cpus: Vec<usize>,
    pub warmup: Duration,
    pub duration: Duration,
    pub drain: Duration,
    /// Sender tasks in the whole run; each bumps `senders_done` once when it stopped sending.
    pub senders: u64,
    /// Count mode: senders stop on their own after a fixed count; the run lasts until all of
    /// them did (then drains), with no fixed duration.
    pub count_mode: bool,
    /// Longest setup allowed.
    pub setup_timeout: Duration,
    pub spin_before_park: Option<Duration>,
    pub progress: bool,
    /// Read this process's RSS (the router's) at each phase.
    pub router_pid: Option<u32>,
    /// Whether deliveries are expected (loss is meaningful); drains until none is owed.
    pub wait_for_deliveries: bool,
    /// Whether every sent message is acknowledged (PUBLISHED); drains until all are.
    pub wait_for_acks: bool,
    /// Extra wait after setup before the "ready" RSS sample (lets the router settle).
    pub settle: Duration,
}

/// Everything a run measured.
#[derive(Debug)]
pub struct Outcome {
    /// Counter increase over the measurement window.
    pub window: Snapshot,
    pub window_secs: f64,
    /// Counters at the end (whole run, after the drain).
    pub totals: Snapshot,
    /// Merged latency histogram (ns) of the window.
    pub latency: Histogram<u64>,
    pub setup_secs: f64,
    /// Router RSS in bytes: before setup, after setup, at the end of the window.
    pub rss: Option<[u64; 3]>,
    /// Drain ended with deliveries still owed.
    pub drain_timed_out: bool,
    /// Router CPU over the window (with `router_pid`).
    pub router_cpu: Option<CpuTime>,
    /// This process's CPU over the window.
    pub loadgen_cpu: Option<CpuTime>,
}

/// CPU time of a process, summed over its threads (`/proc/PID/task/*/schedstat`): nanoseconds
/// on a CPU and nanoseconds runnable but waiting for one. The wait shows CPU contention: a
/// router that waits for a CPU is measured on a busy machine, not at its own limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuTime {
    pub run_ns: u64,
    pub wait_ns: u64,
}

impl CpuTime {
    /// `pid` None: this process.
    pub fn of(pid: Option<u32>) -> Option<CpuTime> {
        let dir = match pid {
            Some(p) => format!("/proc/{p}/task"),
            None => "/proc/self/task".into(),
        };
        let mut t = CpuTime::default();
        for entry in std::fs::read_dir(dir).ok()? {
            let Ok(entry) = entry else { continue };
            let Ok(s) = std::fs::read_to_string(entry.path().join("schedstat")) else {
                continue;
            };
            let mut f = s.split_whitespace().map(|x| x.parse::<u64>().unwrap_or(0));
            t.run_ns += f.next().unwrap_or(0);
            t.wait_ns += f.next().unwrap_or(0);
        }
        Some(t)
    }

    pub fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            run_ns: self.run_ns.saturating_sub(earlier.run_ns),
            wait_ns: self.wait_ns.saturating_sub(earlier.wait_ns),
        }
    }
}

/// The router's resident set size in bytes (`VmRSS` of /proc/PID/status).
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Runs `shard_fn` on every shard through all phases.
pub fn run<F, Fut>(plan: &Plan, shard_fn: F) -> Result<Outcome>
where
    F: Fn(ShardCtx) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = Result<()>> + 'static,
{
    let control = Arc::new(Control::default());
    let counters: Arc<Vec<Arc<Counters>>> =
        Arc::new((0..plan.shards).map(|_| Arc::default()).collect());
    let rss = || plan.router_pid.and_then(rss_bytes).unwrap_or(0);
    let rss_before = rss();
    let setup_start = Instant::now();
    now_ns();

    let mut handles = Vec::new();
    for i in 0..plan.shards {
        let placement = match plan.cpus.get(i) {
            Some(&c) => glommio::Placement::Fixed(c),
            None => glommio::Placement::Unbound,
        };
        let mut builder = glommio::LocalExecutorBuilder::new(placement)
            .name(&format!("loadgen-{i}"))
            .io_memory(256 << 10)
            .ring_depth(2048);
        if let Some(spin) = plan.spin_before_park {
            builder = builder.spin_before_park(spin);
        }
        let control = control.clone();
        let all = counters.clone();
        let f = shard_fn.clone();
        let n = plan.shards;
        let h = builder
            .spawn(move || async move {
                let ctx = ShardCtx {
                    index: i,
                    shards: n,
                    control: control.clone(),
                    counters: all[i].clone(),
                    all: all.clone(),
                    latency: Rc::new(Latency::default()),
                };
                if let Err(e) = f(ctx.clone()).await {
                    control.fail(format!("shard {i}: {e:#}"));
                    // Count as ready so the main thread does not wait for us.
                    if control.start_ns.load(Acquire) == 0 {
                        control.ready.fetch_add(1, SeqCst);
                    }
                }
                let h = ctx.latency.hist.borrow().clone();
                h
            })
            .map_err(|e| anyhow!("starting loadgen shard {i}: {e}"))?;
        handles.push(h);
    }
    let join = |handles: Vec<glommio::ExecutorJoinHandle<Histogram<u64>>>| {
        let mut merged = new_histogram();
        for h in handles {
            match h.join() {
                Ok(hist) => {
                    let _ = merged.add(&hist);
                }
                Err(e) => control.fail(format!("loadgen shard: {e}")),
            }
        }
        merged
    };
    let snap = || Snapshot::sum(counters.iter().map(|c| &**c));

    // Setup.
    let deadline = Instant::now() + plan.setup_timeout;
    let mut last_report = Instant::now();
    while control.ready.load(SeqCst) < plan.shards {
        if control.failure().is_some() || Instant::now() > deadline {
            break;
        }
        if plan.progress && last_report.elapsed() >= Duration::from_secs(1) {
            last_report = Instant::now();
            eprintln!("[setup] sessions {}", snap().sessions);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if let Some(e) = control.failure() {
        control.stop.store(true, SeqCst);
        let _ = join(handles);
        return Err(anyhow!("{e}"));
    }
    if control.ready.load(SeqCst) < plan.shards {
        control.stop.store(true, SeqCst);
        let _ = join(handles);
        return Err(anyhow!(
            "setup did not finish within {:?} ({} sessions joined)",
            plan.setup_timeout,
            snap().sessions
        ));
    }
    let setup_secs = setup_start.elapsed().as_secs_f64();
    std::thread::sleep(plan.settle);
    let rss_ready = rss();

    // Traffic.
    let start = now_ns();
    let from = start + plan.warmup.as_nanos() as u64;
    let to = if plan.count_mode {
        u64::MAX
    } else {
        from + plan.duration.as_nanos() as u64
    };
    control.window_from.store(from, Release);
    control.window_to.store(to, Release);
    control.start_ns.store(start, Release);
    let t0 = Instant::now();
    let cpu = || {
        (
            plan.router_pid.and_then(|p| CpuTime::of(Some(p))),
            CpuTime::of(None),
        )
    };
    let mut at_from: Option<(Snapshot, Instant)> = None;
    let mut cpu_from = (None, None);
    if plan.warmup.is_zero() {
        at_from = Some((Snapshot::default(), t0));
        cpu_from = cpu();
    }
    let mut cpu_to;
    let mut prev = snap();
    let mut prev_t = Instant::now();
    let mut window_end: Option<(Snapshot, Instant)> = None;
    let rss_end;
    loop {
        std::thread::sleep(Duration::from_millis(5));
        let now = now_ns();
        if at_from.is_none() && now >= from {
            at_from = Some((snap(), Instant::now()));
            cpu_from = cpu();
        }
        if let Some(e) = control.failure() {
            control.stop.store(true, SeqCst);
            let _ = join(handles);
            return Err(anyhow!("{e}"));
        }
        let s = snap();
        let done = if plan.count_mode {
            s.senders_done >= plan.senders
        } else {
            now >= to
        };
        if done {
            rss_end = rss();
            cpu_to = cpu();
            if !plan.count_mode {
                window_end = Some((s, Instant::now()));
            }
            break;
        }
        if plan.progress && prev_t.elapsed() >= Duration::from_secs(1) {
            let dt = prev_t.elapsed().as_secs_f64();
            let d = s - prev;
            let phase = if now < from { "warm-up" } else { "measure" };
            let mut line = format!(
                "[{:5.1}s {phase}] sent {:>10.0}/s delivered {:>10.0}/s in-flight {:>8} sessions {:>6} errors {} disconnects {}",
                t0.elapsed().as_secs_f64(),
                d.sent as f64 / dt,
                d.delivered as f64 / dt,
                s.expected.saturating_sub(s.delivered),
                s.sessions,
                s.errors,
                s.disconnects
            );
            if let Some(r) = plan.router_pid.and_then(rss_bytes) {
                line += &format!(" router-rss {:.1} MiB", r as f64 / 1048576.0);
            }
            eprintln!("{line}");
            let _ = std::io::stderr().flush();
            prev = s;
            prev_t = Instant::now();
        }
    }

    // Drain.
    control.stop_send.store(true, SeqCst);
    let drain_deadline = Instant::now() + plan.drain;
    let mut drain_timed_out = false;
    if plan.wait_for_deliveries {
        loop {
            let s = snap();
            let acked = !plan.wait_for_acks || s.acked + s.errors >= s.sent;
            if s.senders_done >= plan.senders && s.delivered + s.errors >= s.expected && acked {
                break;
            }
            if Instant::now() >= drain_deadline {
                drain_timed_out = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    } else {
        std::thread::sleep(plan.drain.min(Duration::from_millis(200)));
    }
    let totals = snap();
    if plan.count_mode {
        cpu_to = cpu();
    }
    let window_end = window_end.unwrap_or((totals, Instant::now()));
    control.stop.store(true, SeqCst);
    let latency = join(handles);
    if let Some(e) = control.failure() {
        return Err(anyhow!("{e}"));
    }
    let (from_snap, from_t) = at_from.unwrap_or((window_end.0, window_end.1));
    Ok(Outcome {
        window: window_end.0 - from_snap,
        window_secs: window_end.1.duration_since(from_t).as_secs_f64(),
        totals,
        latency,
        setup_secs,
        rss: plan.router_pid.map(|_| [rss_before, rss_ready, rss_end]),
        drain_timed_out,
        router_cpu: cpu_to.0.zip(cpu_from.0).map(|(b, a)| b.since(a)),
        loadgen_cpu: cpu_to.1.zip(cpu_from.1).map(|(b, a)| b.since(a)),
    })
}
