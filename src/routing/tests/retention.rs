//! Event retention on 1–3 shards: `PUBLISH.Options.retain`, `SUBSCRIBE.Options.get_retained`,
//! eligibility, bounds, and exactly-once delivery under random interleavings.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::harness::*;
use crate::codec::uri::MatchPolicy::{self, Exact, Prefix, Wildcard};
use crate::codec::*;
use crate::routing::realm::RoutingConfig;
use crate::routing::retained::RetentionLimits;

fn retain() -> PublishOptions {
    PublishOptions {
        retain: Some(true),
        ..Default::default()
    }
}

fn sub_retained(request: Id, topic: &str, policy: MatchPolicy) -> Message {
    Message::Subscribe(Subscribe {
        request,
        options: SubscribeOptions {
            match_policy: Some(policy),
            get_retained: Some(true),
            ..Default::default()
        },
        topic: Uri::from(topic),
    })
}

/// The first argument of an EVENT, and whether it was marked retained.
fn arg_of(m: &Message) -> (i64, bool) {
    let e = event(m);
    let n = first_arg(&e.payload)
        .and_then(|v| v.as_u64())
        .map(|n| n as i64)
        .expect("an integer argument");
    (n, e.details.retained == Some(true))
}

#[test]
fn retained_event_follows_subscribed_only_when_asked() {
    for shards in 1..=3 {
        let mut c = Cluster::new(shards);
        c.join(1, 0);
        c.join(2, shards - 1);
        c.join(3, shards / 2);
        c.run(1, publish(1, "com.t", retain(), args(&[1])));
        c.run(1, publish(2, "com.t", retain(), args(&[2])));
        c.run(
            1,
            publish(3, "com.t", PublishOptions::default(), args(&[3])),
        );
        // The publisher leaves: the retained event stays.
        c.leave(1);

        c.run(2, sub_retained(1, "com.t", Exact));
        let got = c.take(2);
        assert_eq!(got.len(), 2, "{shards} shards: {got:?}");
        let id = subscribed_id(&got[0]);
        assert_eq!(event(&got[1]).subscription, id);
        assert_eq!(arg_of(&got[1]), (2, true), "the most recent retained event");
        assert_eq!(event(&got[1]).details.topic, None);

        c.run(3, subscribe(1, "com.t", Exact));
        assert_eq!(
            subscribed_id(&c.one(3)),
            id,
            "without get_retained: nothing more"
        );
    }
}

#[test]
fn pattern_subscriptions_get_every_matching_topic_once() {
    let mut c = Cluster::new(3);
    c.join(1, 0);
    c.join(2, 1);
    c.join(3, 2);
    c.run(1, publish(1, "com.a.x", retain(), args(&[1])));
    c.run(2, publish(1, "com.b.x", retain(), args(&[2])));
    c.run(1, publish(2, "org.a.x", retain(), args(&[3])));
    c.run(3, sub_retained(1, "com", Prefix));
    let got = c.take(3);
    assert_eq!(got.len(), 3, "{got:?}");
    subscribed_id(&got[0]);
    let mut seen: Vec<_> = got[1..].iter().map(arg_of).collect();
    seen.sort_unstable();
    assert_eq!(seen, vec![(1, true), (2, true)]);
    assert!(got[1..].iter().all(|m| event(m)
        .details
        .topic
        .as_deref()
        .is_some_and(|t| t.starts_with("com."))));

    c.run(3, sub_retained(2, ".a.x", Wildcard));
    let got = c.take(3);
    let mut seen: Vec<_> = got[1..].iter().map(arg_of).collect();
    seen.sort_unstable();
    assert_eq!(seen, vec![(1, true), (3, true)]);
}

#[test]
fn retained_event_only_to_subscribers_who_were_eligible() {
    let mut c = Cluster::new(2);
    c.join(1, 0);
    let f = crate::routing::session::Features::ALL;
    c.join_with(10, 1, "alice", "admin", f);
    c.join_with(11, 0, "bob", "staff", f);
    let mut o = retain();
    o.eligible_authrole = Some(vec!["admin".into()]);
    c.run(1, publish(1, "t", o, args(&[5])));
    c.run(10, sub_retained(1, "t", Exact));
    assert_eq!(c.take(10).len(), 2, "alice was eligible");
    c.run(11, sub_retained(1, "t", Exact));
    assert_eq!(c.take(11).len(), 1, "bob only gets SUBSCRIBED");
    // exclude_me (default) also holds for the publisher subscribing later.
    c.run(1, sub_retained(1, "t", Exact));
    assert_eq!(c.take(1).len(), 1);

    // An unrestricted retained event, then a restricted newer one: each subscriber gets the
    // most recent one it would have received.
    c.run(1, publish(2, "u", retain(), args(&[1])));
    let mut o = retain();
    o.eligible_authrole = Some(vec!["admin".into()]);
    c.run(1, publish(3, "u", o, args(&[2])));
    c.run(10, sub_retained(2, "u", Exact));
    let got = c.take(10);
    assert_eq!(
        arg_of(&got[1]),
        (2, true),
        "alice: the restricted, newer one"
    );
    c.run(11, sub_retained(2, "u", Exact));
    let got = c.take(11);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        arg_of(&got[1]),
        (1, true),
        "bob: the older one for everyone"
    );
}

#[test]
fn retention_off_or_bounded() {
    let off = RoutingConfig {
        retention: RetentionLimits {
            max_events: 0,
            max_bytes: 1 << 20,
        },
        ..Default::default()
    };
    let mut c = Cluster::with_config(2, off);
    c.join(1, 0);
    c.join(2, 1);
    c.run(1, publish(1, "t", retain(), args(&[1])));
    c.run(2, sub_retained(1, "t", Exact));
    assert_eq!(c.take(2).len(), 1, "retention off: SUBSCRIBED only");
    assert_eq!(c.peer_count("Retain"), 0);

    let two = RoutingConfig {
        retention: RetentionLimits {
            max_events: 2,
            max_bytes: 1 << 20,
        },
        ..Default::default()
    };
    let mut c = Cluster::with_config(3, two);
    c.join(1, 0);
    c.join(2, 2);
    for (i, t) in ["a.1", "a.2", "a.3"].iter().enumerate() {
        c.advance(std::time::Duration::from_millis(1));
        c.run(1, publish(1, t, retain(), args(&[i as i64])));
    }
    c.run(2, sub_retained(1, "a", Prefix));
    let got = c.take(2);
    let mut seen: Vec<_> = got[1..].iter().map(|m| arg_of(m).0).collect();
    seen.sort_unstable();
    assert_eq!(seen, vec![1, 2], "the oldest went");
    for s in &c.shards {
        assert_eq!(s.broker().retained_count(), 2);
    }
}

#[test]
fn concurrent_retains_converge_on_every_shard() {
    let mut c = Cluster::new(3);
    for s in 0..3 {
        c.join(1 + s as u64, s);
        c.join(10 + s as u64, s);
    }
    // Three publishers on three shards at once; channels deliver in different orders.
    c.hold(0, 1);
    c.hold(2, 0);
    for p in 1..=3u64 {
        c.send(p, publish(1, "t", retain(), args(&[p as i64])));
    }
    c.settle();
    c.release(0, 1);
    c.release(2, 0);
    c.settle();
    let mut answers = Vec::new();
    for s in 10..13u64 {
        c.run(s, sub_retained(1, "t", Exact));
        let got = c.take(s);
        assert_eq!(got.len(), 2, "{got:?}");
        answers.push(arg_of(&got[1]));
    }
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
}

/// A publisher publishes one retained event while subscribers on every shard subscribe with
/// get_retained, in random interleavings: each gets the event exactly once, after its
/// SUBSCRIBED (live if its subscription was active in time, retained otherwise).
#[test]
fn exactly_once_under_random_interleavings() {
    for seed in 0..300u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let shards = rng.gen_range(1..=3);
        let mut c = Cluster::new(shards);
        let publisher_shard = rng.gen_range(0..shards);
        c.join(1, publisher_shard);
        let subs: Vec<u64> = (10..10 + 2 * shards as u64).collect();
        for (i, &s) in subs.iter().enumerate() {
            c.join(s, i % shards);
        }
        let policy = if seed % 3 == 0 { Prefix } else { Exact };
        let pattern = if policy == Prefix { "com" } else { "com.t" };
        let mut pending: Vec<u64> = subs.clone();
        let mut published = false;
        for _ in 0..10_000 {
            if pending.is_empty() && published {
                break;
            }
            match rng.gen_range(0..4) {
                0 if !published => {
                    c.send(1, publish(1, "com.t", retain(), args(&[42])));
                    published = true;
                }
                1 if !pending.is_empty() => {
                    let s = pending.remove(rng.gen_range(0..pending.len()));
                    c.send(s, sub_retained(1, pattern, policy));
                }
                _ => {
                    c.step_random(&mut rng);
                }
            }
        }
        c.settle();
        for &s in &subs {
            let got = c.take(s);
            assert_eq!(
                got.len(),
                2,
                "seed {seed}, session {s}: {got:?}; {shards} shards, publisher on \
                 {publisher_shard}, peer messages {:?}",
                c.peer_log
            );
            subscribed_id(&got[0]);
            assert_eq!(arg_of(&got[1]).0, 42, "seed {seed}");
        }
    }
}
