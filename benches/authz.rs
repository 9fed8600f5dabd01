//! Cost of the authorization check on the hot path (no criterion: a plain timed loop).
//!
//! - `static`: `RealmPolicy::check` for a role with 40 rules (exact, prefix, wildcard);
//! - `open`: the same for a realm without rules (what every realm paid before authorization);
//! - `cache hit`: `AuthzCache::get` of a dynamic decision among 10,000 cached ones.
//!
//! Run: `cargo bench --bench authz`. Prints nanoseconds per check (best of 5 rounds). Under
//! `cargo test` (no `--bench` argument) it runs 1,000 iterations only, as a smoke test.

use std::hint::black_box;
use std::time::{Duration, Instant};
use switchyard::authz::{
    Allow, AuthzAction, AuthzCache, Decision, Disclose, Permission, RealmPolicy, Role, SessionInfo,
    UriMatch,
};

fn best_of(n: u32, mut f: impl FnMut(u32) -> u64) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            black_box(f(n));
            t.elapsed().as_nanos() as f64 / f64::from(n)
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let n = if std::env::args().any(|a| a == "--bench") {
        1_000_000
    } else {
        1_000
    };
    let mut permissions = Vec::new();
    for i in 0..40 {
        let (uri, matching) = match i % 3 {
            0 => (format!("com.app{i}.proc"), UriMatch::Exact),
            1 => (format!("com.app{i}."), UriMatch::Prefix),
            _ => (format!("com..app{i}"), UriMatch::Wildcard),
        };
        permissions.push(Permission {
            uri,
            matching,
            allow: Allow {
                call: true,
                subscribe: true,
                ..Allow::default()
            },
            disclose: Disclose::default(),
        });
    }
    let roles = vec![Role {
        name: "user".into(),
        trusted: false,
        trustlevel: None,
        permissions,
    }];
    let policy = match RealmPolicy::new(roles, None) {
        Ok(p) => p,
        Err(e) => panic!("{e:?}"),
    };
    let open = RealmPolicy::default();
    let uri = "com.app19.sensor.read";
    let static_ns = best_of(n, |iters| {
        let mut n = 0;
        for _ in 0..iters {
            n += u64::from(matches!(
                policy.check(black_box("user"), black_box(uri), AuthzAction::Call),
                switchyard::authz::Verdict::Decided(d) if d.allow
            ));
        }
        n
    });
    let open_ns = best_of(n, |iters| {
        let mut n = 0;
        for _ in 0..iters {
            n += u64::from(matches!(
                open.check(black_box("user"), black_box(uri), AuthzAction::Call),
                switchyard::authz::Verdict::Decided(d) if d.allow
            ));
        }
        n
    });
    let mut cache = AuthzCache::new(Duration::from_secs(3600), 10_000);
    let now = Instant::now();
    let s = SessionInfo {
        session: 1,
        realm: "realm1",
        authid: "device-42",
        authrole: "device",
    };
    for i in 0..10_000 {
        cache.insert(
            &s,
            &format!("com.app.topic{i}"),
            AuthzAction::Publish,
            Decision::ALLOW,
            now,
        );
    }
    let hit_ns = best_of(n, |iters| {
        let mut n = 0;
        for i in 0..iters {
            let uri = if i % 2 == 0 {
                "com.app.topic17"
            } else {
                "com.app.topic9999"
            };
            n += u64::from(
                cache
                    .get(&s, black_box(uri), AuthzAction::Publish, now)
                    .is_some(),
            );
        }
        n
    });
    println!("authz static check (40 rules): {static_ns:.1} ns");
    println!("authz open realm check:        {open_ns:.1} ns");
    println!("authz dynamic cache hit (10k): {hit_ns:.1} ns");
}
