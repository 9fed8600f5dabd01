//! Publish-side lookup cost of the URI matching index.
//!
//! Builds one index with 10,000 prefix, 10,000 wildcard and 2,000 exact subscriptions over a
//! realistic-looking topic space (`com.app<A>.dev<D>.<metric>.<unit>`), then measures:
//!
//! - `matches/hit`: all matches for topics that hit a few subscriptions of each kind,
//! - `matches/miss`: topics under an unsubscribed application (the trie walks stop early),
//! - `only/{exact,prefix,wildcard}`: `matches/hit` against an index holding one policy only,
//! - `best_match`: the dealer's single-winner lookup on the same hitting topics.
//!
//! Run: `cargo bench --bench matcher`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use switchyard::codec::uri::MatchPolicy;
use switchyard::routing::matcher::UriIndex;

const APPS: u32 = 100;
const DEVICES: u32 = 1000;
const METRICS: [&str; 8] = [
    "temp", "humidity", "pressure", "voltage", "current", "rssi", "battery", "status",
];
const UNITS: [&str; 3] = ["raw", "avg", "max"];

/// The index plus the list of its entries (to build per-policy copies from).
fn build(rng: &mut StdRng) -> (UriIndex<u32>, Vec<(MatchPolicy, String)>) {
    let mut idx = UriIndex::new();
    let mut entries = Vec::new();
    let mut add = |idx: &mut UriIndex<u32>, p: MatchPolicy, pat: String| {
        idx.insert(p, &pat, entries.len() as u32);
        entries.push((p, pat));
    };
    // 10,000 prefix subscriptions: per device, some per metric, some partial-component.
    let mut n = 0;
    while n < 10_000 {
        let a = rng.gen_range(0..APPS);
        let d = rng.gen_range(0..DEVICES);
        let m = METRICS[rng.gen_range(0..METRICS.len())];
        let pat = match rng.gen_range(0..4) {
            0 => format!("com.app{a}.dev{d}"),
            1 => format!("com.app{a}.dev{d}.{m}"),
            2 => format!("com.app{a}.dev{d}."),
            _ => format!("com.app{a}.dev{}", d / 10), // string prefix: dev12 covers dev120..129
        };
        if idx.get(MatchPolicy::Prefix, &pat).is_none() {
            add(&mut idx, MatchPolicy::Prefix, pat);
            n += 1;
        }
    }
    // 10,000 wildcard subscriptions with the wildcard in different positions.
    let mut n = 0;
    while n < 10_000 {
        let a = rng.gen_range(0..APPS);
        let d = rng.gen_range(0..DEVICES);
        let m = METRICS[rng.gen_range(0..METRICS.len())];
        let u = UNITS[rng.gen_range(0..UNITS.len())];
        let pat = match rng.gen_range(0..4) {
            0 => format!("com.app{a}..{m}.{u}"),
            1 => format!("com.app{a}.dev{d}..{u}"),
            2 => format!("com..dev{d}.{m}."),
            _ => format!("com.app{a}.dev{d}.{m}."),
        };
        if idx.get(MatchPolicy::Wildcard, &pat).is_none() {
            add(&mut idx, MatchPolicy::Wildcard, pat);
            n += 1;
        }
    }
    // 2,000 exact subscriptions.
    for _ in 0..2_000 {
        let a = rng.gen_range(0..APPS);
        let d = rng.gen_range(0..DEVICES);
        let m = METRICS[rng.gen_range(0..METRICS.len())];
        let u = UNITS[rng.gen_range(0..UNITS.len())];
        add(
            &mut idx,
            MatchPolicy::Exact,
            format!("com.app{a}.dev{d}.{m}.{u}"),
        );
    }
    (idx, entries)
}

fn only(entries: &[(MatchPolicy, String)], policy: MatchPolicy) -> UriIndex<u32> {
    let mut idx = UriIndex::new();
    for (i, (p, pat)) in entries.iter().enumerate() {
        if *p == policy {
            idx.insert(*p, pat, i as u32);
        }
    }
    idx
}

fn topics(rng: &mut StdRng, app_base: u32, n: usize) -> Vec<String> {
    (0..n)
        .map(|_| {
            let a = app_base + rng.gen_range(0..APPS);
            let d = rng.gen_range(0..DEVICES);
            let m = METRICS[rng.gen_range(0..METRICS.len())];
            let u = UNITS[rng.gen_range(0..UNITS.len())];
            format!("com.app{a}.dev{d}.{m}.{u}")
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(7);
    let (idx, idx_entries) = build(&mut rng);
    let hits = topics(&mut rng, 0, 4096);
    let misses = topics(&mut rng, 10_000, 4096);

    let mut out = Vec::with_capacity(64);
    let total: usize = hits
        .iter()
        .map(|t| {
            out.clear();
            idx.matches(t, &mut out);
            out.len()
        })
        .sum();
    println!(
        "index: {} entries; mean matches per hitting topic: {:.2}",
        idx.len(),
        total as f64 / hits.len() as f64
    );

    let mut g = c.benchmark_group("matches");
    let mut i = 0usize;
    g.bench_function("hit", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            out.clear();
            idx.matches(black_box(&hits[i]), &mut out);
            out.len()
        })
    });
    g.bench_function("miss", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            out.clear();
            idx.matches(black_box(&misses[i]), &mut out);
            out.len()
        })
    });
    g.finish();

    // The same lookups against one policy at a time, to show where the time goes.
    let mut g = c.benchmark_group("only");
    for policy in [
        MatchPolicy::Exact,
        MatchPolicy::Prefix,
        MatchPolicy::Wildcard,
    ] {
        let part = only(&idx_entries, policy);
        let mut out = Vec::with_capacity(64);
        g.bench_function(policy.as_str(), |b| {
            b.iter(|| {
                i = (i + 1) & 4095;
                out.clear();
                part.matches(black_box(&hits[i]), &mut out);
                out.len()
            })
        });
    }
    g.finish();

    c.bench_function("best_match", |b| {
        b.iter(|| {
            i = (i + 1) & 4095;
            idx.best_match(black_box(&hits[i])).map(|(_, v)| *v)
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
