//! Random inputs (what any client can send, in any order, with any IDs), random cross-shard
//! interleavings, random departures and time: the routing core must not panic, and once every
//! session has left, every table on every shard must be empty (nothing leaks).

use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::harness::*;
use crate::codec::uri::MatchPolicy;
use crate::codec::*;
use crate::routing::session::Features;

const URIS: &[&str] = &[
    "a", "a.b", "a.b.c", "a..c", "", "a.", "wamp.x", "a b", "b.c",
];

fn pick<T: Copy>(rng: &mut StdRng, xs: &[T]) -> T {
    xs[rng.gen_range(0..xs.len())]
}

fn random_message(rng: &mut StdRng) -> Message {
    let id = rng.gen_range(0..6u64);
    let uri = pick(rng, URIS);
    let policy = pick(
        rng,
        &[
            MatchPolicy::Exact,
            MatchPolicy::Prefix,
            MatchPolicy::Wildcard,
        ],
    );
    let flag = |rng: &mut StdRng| pick(rng, &[None, Some(false), Some(true)]);
    match rng.gen_range(0..20) {
        0..=2 => Message::Subscribe(Subscribe {
            request: id,
            options: SubscribeOptions {
                match_policy: Some(policy),
                get_retained: flag(rng),
                ..Default::default()
            },
            topic: Uri::from(uri),
        }),
        3 => unsubscribe(id, rng.gen_range(0..8)),
        4..=7 => {
            let mut options = PublishOptions {
                acknowledge: flag(rng),
                exclude_me: flag(rng),
                eligible: rng.gen_bool(0.2).then(|| vec![rng.gen_range(0..8)]),
                exclude: rng.gen_bool(0.2).then(|| vec![rng.gen_range(0..8)]),
                retain: flag(rng),
                ..Default::default()
            };
            if rng.gen_bool(0.2) {
                let key = pick(
                    rng,
                    &["eligible_authmethod", "exclude_authid", "eligible_x"],
                );
                let value = if rng.gen_bool(0.8) {
                    Value::List(vec![Value::from("u1"), Value::from("ticket")])
                } else {
                    Value::from("not a list")
                };
                options.extra.insert(key.into(), value);
            }
            publish(id, uri, options, args(&[1]))
        }
        8 | 9 => register(
            id,
            uri,
            reg_opts(
                policy,
                pick(
                    rng,
                    &[
                        InvokePolicy::Single,
                        InvokePolicy::RoundRobin,
                        InvokePolicy::Random,
                        InvokePolicy::First,
                        InvokePolicy::Last,
                    ],
                ),
            ),
        ),
        10 => unregister(id, rng.gen_range(0..8)),
        11..=14 => call(
            id,
            uri,
            CallOptions {
                timeout: pick(rng, &[None, Some(0), Some(5), Some(50), Some(u64::MAX)]),
                receive_progress: flag(rng),
                progress: flag(rng),
                disclose_me: flag(rng),
                ..Default::default()
            },
            args(&[2]),
        ),
        15 => cancel(
            id,
            pick(
                rng,
                &[
                    None,
                    Some(CancelMode::Skip),
                    Some(CancelMode::Kill),
                    Some(CancelMode::KillNoWait),
                ],
            ),
        ),
        16 | 17 => yield_(rng.gen_range(1..4), rng.gen_bool(0.3), args(&[3])),
        18 => callee_error(rng.gen_range(1..4), "com.err"),
        _ => Message::Error(Box::new(Error {
            request_type: pick(rng, &[code::CALL, code::EVENT, 9999]),
            request: id,
            details: Dict::new(),
            error: Uri::from("com.err"),
            payload: Payload::Empty,
        })),
    }
}

/// Returns how many retained events survived everyone's departure.
fn run(seed: u64, shards: usize) -> usize {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut c = Cluster::new(shards);
    let sessions: Vec<u64> = (1..=6).collect();
    let join = |c: &mut Cluster, rng: &mut StdRng, s: u64| {
        let f = if rng.gen_bool(0.7) {
            Features::ALL
        } else {
            Features::default()
        };
        let role = pick(rng, &["a", "b"]);
        c.join_with(s, rng.gen_range(0..shards), &format!("u{s}"), role, f);
    };
    for s in &sessions {
        join(&mut c, &mut rng, *s);
    }
    let mut invs: std::collections::HashMap<u64, Vec<Id>> = Default::default();
    for _ in 0..1500 {
        match rng.gen_range(0..20) {
            0 => {
                let s = pick(&mut rng, &sessions);
                if c.is_joined(s) {
                    c.leave(s);
                } else {
                    join(&mut c, &mut rng, s);
                }
            }
            1 => c.advance(Duration::from_millis(rng.gen_range(0..30))),
            2..=7 => {
                for _ in 0..rng.gen_range(0..6) {
                    c.step_random(&mut rng);
                }
            }
            _ => {
                let s = pick(&mut rng, &sessions);
                if c.is_joined(s) {
                    let mut m = random_message(&mut rng);
                    // Mostly answer invocations the callee really got.
                    let known = invs.get(&s).filter(|v| !v.is_empty() && rng.gen_bool(0.8));
                    let request = match &mut m {
                        Message::Yield(y) => Some(&mut y.request),
                        Message::Error(e) => Some(&mut e.request),
                        _ => None,
                    };
                    if let (Some(request), Some(v)) = (request, known) {
                        *request = v[rng.gen_range(0..v.len())];
                    }
                    c.send(s, m);
                }
            }
        }
        // The runtime closes aborted sessions and reports them gone.
        for (s, _) in std::mem::take(&mut c.aborts) {
            if c.is_joined(s) {
                c.leave(s);
            }
        }
        for s in &sessions {
            for m in c.take(*s) {
                if let Message::Invocation(i) = m {
                    invs.entry(*s).or_default().push(i.request);
                }
            }
        }
    }
    c.settle();
    for s in &sessions {
        if c.is_joined(*s) {
            c.leave(*s);
        }
    }
    c.advance(Duration::from_secs(3600));
    // Retained events outlive their publishers, and every replica holds the same ones.
    let retained = c.shards[0].broker().retained_publications();
    for shard in &c.shards {
        assert_eq!(
            shard.broker().retained_publications(),
            retained,
            "seed {seed}: retained replicas differ"
        );
    }
    for shard in &c.shards {
        let d = shard.dealer();
        assert!(
            shard.broker().subscriptions().is_empty(),
            "seed {seed}: subscriptions leak"
        );
        assert!(
            d.registrations().is_empty(),
            "seed {seed}: registrations leak"
        );
        assert_eq!(d.pending_calls(), 0, "seed {seed}: calls leak");
        assert_eq!(d.pending_invocations(), 0, "seed {seed}: invocations leak");
        assert_eq!(shard.next_deadline(), None, "seed {seed}: timers leak");
    }
    retained.len()
}

#[test]
fn random_inputs_never_panic_and_leak_nothing() {
    let mut retained = 0;
    for seed in 0..200 {
        retained += run(seed, 1 + (seed as usize % 3));
    }
    assert!(retained > 0, "the inputs exercise event retention");
}
