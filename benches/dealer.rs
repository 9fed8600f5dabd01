//! The routing core's RPC path, no I/O: one `RealmShard` with callers and a callee (all
//! MessagePack), a fixed number of calls in flight. Each call is what a shard does for it apart from the
//! socket: decode the CALL frame, route it, encode the INVOCATION it yields; decode the callee's
//! YIELD frame, route it, encode the RESULT. Frames are made before the clock starts.
//!
//! Cases, interleaved over several rounds (median per case): one caller with one call in
//! flight, and 64 callers with 16 each (what `loadgen rpc --callers 64 --outstanding 16` keeps
//! in the router's tables).
//!
//! Run: `cargo bench --bench dealer`. Under `cargo test` it makes a few thousand calls per case,
//! as a smoke test (every call must come back as a RESULT to the caller with its request ID).

use std::time::{Duration, Instant};

use switchyard::codec::{self, Message, Serializer};
use switchyard::routing::{Action, Features, RealmShard, RoutingConfig, SessionRef};

mod support;
use support::{details, median};

const PROCEDURE: &str = "com.bench.echo";
const CALLEE: u64 = 1;

fn frame(m: Message) -> bytes::Bytes {
    codec::encode(Serializer::MsgPack, &m)
}

fn payload() -> codec::Payload {
    codec::Payload::args(vec![codec::Value::Bin(vec![7u8; 64].into())])
}

/// A shard with `PROCEDURE` registered by the callee, and `callers` callers (session IDs 2…).
fn shard(callers: u64) -> (RealmShard, Vec<SessionRef>, SessionRef) {
    let mut s = RealmShard::new("realm1".into(), 0, 1, RoutingConfig::default(), 1);
    let now = Instant::now();
    let mut out = Vec::new();
    let callee = SessionRef::new(CALLEE, 0, "e", "user", Features::ALL);
    s.on_session_join(callee.clone(), details(), now, &mut out);
    let callers: Vec<SessionRef> = (2..2 + callers)
        .map(|id| SessionRef::new(id, 0, "c", "user", Features::ALL))
        .collect();
    for c in &callers {
        s.on_session_join(c.clone(), details(), now, &mut out);
    }
    let reg = frame(Message::Register(codec::Register {
        request: 1,
        options: Default::default(),
        procedure: PROCEDURE.into(),
    }));
    let m = codec::decode(Serializer::MsgPack, &reg).expect("decodes");
    s.on_message(&callee, m, now, &mut out);
    assert!(
        out.iter().any(|a| matches!(
            a,
            Action::Send {
                to: CALLEE,
                msg: Message::Registered(_)
            }
        )),
        "the callee is registered"
    );
    (s, callers, callee)
}

/// Nanoseconds per call, `callers` × `each` in flight, `n` calls in all (a multiple of that).
fn run(callers: usize, each: usize, n: usize) -> f64 {
    let window = callers * each;
    let (mut s, callers, callee) = shard(callers as u64);
    // One round: every caller's first call, then every caller's second, … (as they arrive
    // from many connections).
    let calls: Vec<(&SessionRef, bytes::Bytes)> = (1..=each as u64)
        .flat_map(|request| {
            callers.iter().map(move |c| {
                let f = frame(Message::Call(Box::new(codec::Call {
                    request,
                    options: Default::default(),
                    procedure: PROCEDURE.into(),
                    payload: payload(),
                })));
                (c, f)
            })
        })
        .collect();
    // The callee's invocation IDs run 1, 2, 3, … in the order the calls arrive.
    let yields: Vec<bytes::Bytes> = (1..=n as u64)
        .map(|request| {
            frame(Message::Yield(Box::new(codec::Yield {
                request,
                options: Default::default(),
                payload: payload(),
            })))
        })
        .collect();
    let mut out = Vec::new();
    let mut invocations = Vec::with_capacity(window);
    let mut results = 0usize;
    let mut encoded = 0usize;
    let now = Instant::now();
    let t0 = Instant::now();
    for _ in 0..n / window {
        for (caller, f) in &calls {
            let m = codec::decode(Serializer::MsgPack, f).expect("decodes");
            s.on_message(caller, m, now, &mut out);
            for a in out.drain(..) {
                if let Action::Send { to: CALLEE, msg } = a {
                    if let Message::Invocation(i) = &msg {
                        invocations.push(i.request);
                    }
                    encoded += codec::encode(Serializer::MsgPack, &msg).len();
                }
            }
        }
        for id in invocations.drain(..) {
            let f = yields
                .get(id as usize - 1)
                .expect("a YIELD frame per invocation ID");
            let m = codec::decode(Serializer::MsgPack, f).expect("decodes");
            s.on_message(&callee, m, now, &mut out);
            for a in out.drain(..) {
                if let Action::Send { to, msg } = a {
                    if let Message::Result(r) = &msg {
                        assert!(
                            to != CALLEE && r.request as usize <= each,
                            "a caller's call"
                        );
                        results += 1;
                    }
                    encoded += codec::encode(Serializer::MsgPack, &msg).len();
                }
            }
        }
    }
    let ns = t0.elapsed().as_nanos() as f64 / n as f64;
    assert_eq!(results, n, "every call answered");
    assert!(encoded > n * 2 * 64, "both messages carry the payload");
    assert_eq!(s.dealer().pending_calls(), 0, "nothing left in flight");
    ns
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (mut n, mut rounds) = if bench { (1 << 19, 7) } else { (4096, 1) };
    // `--calls N --rounds R`: e.g. two runs with different N under
    // `valgrind --tool=cachegrind --cache-sim=no` give instructions per call, which this
    // VM's noise (no hardware counters, ±15 % run to run) does not blur.
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<usize>().ok())
    };
    if let Some(c) = arg("--calls") {
        n = c.div_ceil(1024).max(1) * 1024; // a multiple of every window
    }
    if let Some(r) = arg("--rounds") {
        rounds = r.max(1);
    }
    let mut cases = vec![(1usize, 1usize), (64, 16)];
    // `--callers C --each E`: that case only.
    if let (Some(c), Some(e)) = (arg("--callers"), arg("--each")) {
        cases = vec![(c.clamp(1, 64), e.clamp(1, 16))];
    }
    let mut times = vec![Vec::new(); cases.len()];
    let t0 = Instant::now();
    for _ in 0..rounds {
        for (i, (callers, each)) in cases.iter().enumerate() {
            times[i].push(run(*callers, *each, n));
        }
        if !bench && t0.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
    println!(
        "routed RPC, MessagePack, 64-byte payload, {n} calls x {rounds} rounds (median, best)"
    );
    for (i, (callers, each)) in cases.iter().enumerate() {
        let best = times[i].iter().copied().fold(f64::INFINITY, f64::min);
        let m = median(times[i].clone());
        println!(
            "{callers:>3} callers x {each:>2} in flight  {m:>8.1} ns/call  best {best:>8.1}  ({:.0}k calls per CPU-second)",
            1e6 / m
        );
    }
}
