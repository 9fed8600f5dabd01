//! The routing core's publish path with and without event history (no I/O: one `RealmShard`,
//! a publisher and 8 subscribers of the topic, a decoded 64-byte MessagePack PUBLISH fed
//! again and again; the actions are dropped).
//!
//! Cases, interleaved over several rounds (median per case):
//! - `no rules`: the realm has no `[[realm.history]]` rule (what every realm had before event
//!   history existed);
//! - `rules, other topic`: the realm keeps history, but not for this topic;
//! - `history on`: a rule for this topic (limit 1000: every publish also drops the oldest).
//!
//! Run: `cargo bench --bench publish`. Under `cargo test` it makes a few thousand publications
//! per case, as a smoke test.

use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard::codec::uri::MatchPolicy;
use switchyard::codec::{self, Message, Serializer};
use switchyard::routing::history::{HistoryRule, HistoryRules};
use switchyard::routing::{Features, RealmShard, RoutingConfig, SessionRef};

mod support;
use support::{details, median};

const TOPIC: &str = "com.bench.topic";

fn rule(uri: &str) -> HistoryRule {
    HistoryRule {
        uri: uri.into(),
        policy: MatchPolicy::Exact,
        limit: 1000,
        max_bytes: 16 << 20,
        max_age: None,
    }
}

/// A shard with 8 subscribers of [`TOPIC`] and a publisher; returns it and the publisher.
fn shard(rules: Vec<HistoryRule>) -> (RealmShard, SessionRef) {
    let cfg = RoutingConfig {
        history: Arc::new(HistoryRules::new(rules).expect("valid rules")),
        ..Default::default()
    };
    let mut s = RealmShard::new("realm1".into(), 0, 1, cfg, 1);
    let now = Instant::now();
    let mut out = Vec::new();
    let publisher = SessionRef::new(1, 0, "p", "user", Features::ALL);
    s.on_session_join(publisher.clone(), details(), now, &mut out);
    for id in 2..10 {
        let sub = SessionRef::new(id, 0, "s", "user", Features::ALL);
        s.on_session_join(sub.clone(), details(), now, &mut out);
        let frame = codec::encode(
            Serializer::MsgPack,
            &Message::Subscribe(codec::Subscribe {
                request: 1,
                options: Default::default(),
                topic: TOPIC.into(),
            }),
        );
        let m = codec::decode(Serializer::MsgPack, &frame).expect("decodes");
        s.on_message(&sub, m, now, &mut out);
    }
    (s, publisher)
}

/// Nanoseconds per publication.
fn run(rules: Vec<HistoryRule>, n: usize) -> f64 {
    let (mut s, publisher) = shard(rules);
    let frame = codec::encode(
        Serializer::MsgPack,
        &Message::Publish(Box::new(codec::Publish {
            request: 1,
            options: Default::default(),
            topic: TOPIC.into(),
            payload: codec::Payload::args(vec![codec::Value::Bin(vec![7u8; 64].into())]),
        })),
    );
    let msg = codec::decode(Serializer::MsgPack, &frame).expect("decodes");
    let mut out = Vec::new();
    let now = Instant::now();
    let t0 = Instant::now();
    for _ in 0..n {
        s.on_message(&publisher, msg.clone(), now, &mut out);
        out.clear();
    }
    let ns = t0.elapsed().as_nanos() as f64 / n as f64;
    if s.broker().history_total() > 0 {
        assert_eq!(
            s.broker().history_len(0),
            n.min(1000),
            "history on: the last 1000 kept"
        );
    }
    ns
}

/// Makes the rules of one case.
type Rules = fn() -> Vec<HistoryRule>;

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let (n, rounds) = if bench { (500_000, 7) } else { (2_000, 1) };
    let cases: [(&str, Rules); 3] = [
        ("no rules", Vec::new),
        ("rules, other topic", || {
            vec![rule("com.other"), rule("com.bench.x")]
        }),
        ("history on", || vec![rule(TOPIC)]),
    ];
    let mut times = vec![Vec::new(); cases.len()];
    let t0 = Instant::now();
    for _ in 0..rounds {
        for (i, (_, rules)) in cases.iter().enumerate() {
            times[i].push(run(rules(), n));
        }
        if !bench && t0.elapsed() > Duration::from_secs(30) {
            break;
        }
    }
    let m: Vec<f64> = times.into_iter().map(median).collect();
    println!(
        "publish to 8 subscribers, 64-byte payload, {n} publications x {rounds} rounds (median)"
    );
    for (i, (name, _)) in cases.iter().enumerate() {
        println!(
            "{name:<20} {:>8.1} ns/publish   ratio to no rules {:.3}",
            m[i],
            m[i] / m[0]
        );
    }
    println!("history on costs {:.1} ns per recorded event", m[2] - m[0]);
}
