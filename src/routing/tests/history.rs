//! Event history on 1–3 shards: the spec's example (each subscription keeps its own events),
//! every `get_events` filter, the bounds, the security rules, errors, and where it is kept.

use std::sync::Arc;
use std::time::Duration;

use super::harness::*;
use crate::codec::uri::MatchPolicy::{self, Exact, Prefix, Wildcard};
use crate::codec::*;
use crate::routing::history::{HistoryRule, HistoryRules};
use crate::routing::realm::RoutingConfig;

fn rule(uri: &str, policy: MatchPolicy, limit: usize) -> HistoryRule {
    HistoryRule {
        uri: Uri::from(uri),
        policy,
        limit,
        max_bytes: 1 << 20,
        max_age: None,
    }
}

fn cluster(shards: usize, rules: Vec<HistoryRule>) -> Cluster {
    Cluster::with_config(
        shards,
        RoutingConfig {
            history: Arc::new(HistoryRules::new(rules).expect("valid rules")),
            ..Default::default()
        },
    )
}

fn plain(n: i64) -> Payload {
    args(&[n])
}

fn kw(pairs: &[(&str, Value)]) -> Dict {
    let mut d = Dict::new();
    for (k, v) in pairs {
        d.insert((*k).to_owned(), v.clone());
    }
    d
}

/// Calls `get_events(subscription, **kwargs)` as `session`: the events, or the error URI.
fn get_events(
    c: &mut Cluster,
    session: Id,
    subscription: Id,
    kwargs: &[(&str, Value)],
) -> Result<Vec<Dict>, String> {
    c.run(
        session,
        call(
            77,
            "wamp.subscription.get_events",
            CallOptions::default(),
            Payload::args_kwargs(vec![Value::UInt(subscription)], kw(kwargs)),
        ),
    );
    let m = c.one(session);
    if let Message::Error(e) = &m {
        return Err(e.error.to_string());
    }
    match first_arg(&result(&m).payload) {
        Some(Value::List(l)) => Ok(l
            .into_iter()
            .map(|v| match v {
                Value::Dict(d) => d,
                other => panic!("an Event object, got {other:?}"),
            })
            .collect()),
        other => panic!("a list of events, got {other:?}"),
    }
}

fn pubs(events: &[Dict]) -> Vec<u64> {
    events
        .iter()
        .map(|e| {
            e.get("publication")
                .and_then(Value::as_u64)
                .expect("publication")
        })
        .collect()
}

/// The first argument of each event.
fn firsts(events: &[Dict]) -> Vec<i64> {
    events
        .iter()
        .map(|e| match e.get("args") {
            Some(Value::List(a)) => a
                .first()
                .and_then(Value::as_u64)
                .map(|n| n as i64)
                .expect("an integer"),
            other => panic!("args, got {other:?}"),
        })
        .collect()
}

fn published(c: &mut Cluster, session: Id, request: Id, topic: &str, o: PublishOptions) -> u64 {
    let o = PublishOptions {
        acknowledge: Some(true),
        ..o
    };
    c.run(session, publish(request, topic, o, plain(request as i64)));
    match c.one(session) {
        Message::Published(p) => p.publication,
        other => panic!("PUBLISHED, got {other:?}"),
    }
}

fn subscribed(c: &mut Cluster, session: Id, topic: &str, policy: MatchPolicy) -> Id {
    c.run(session, subscribe(1, topic, policy));
    subscribed_id(&c.one(session))
}

#[test]
fn each_subscription_keeps_its_own_events_as_in_the_spec() {
    for shards in 1..=3 {
        let mut c = cluster(
            shards,
            vec![
                rule("com.mycompany.log.auth", Exact, 100),
                rule("com.mycompany.log.basket", Exact, 100),
                rule("com.mycompany.log", Prefix, 100),
            ],
        );
        c.join(1, 0);
        c.join(2, shards - 1);
        c.join(3, shards / 2);
        // Kept from the realm's start: nobody subscribes before the publications.
        let p1 = published(&mut c, 1, 1, "com.mycompany.log.auth", Default::default());
        let p2 = published(&mut c, 1, 2, "com.mycompany.log.basket", Default::default());
        let p3 = published(&mut c, 1, 3, "com.mycompany.log.basket", Default::default());
        let p4 = published(&mut c, 1, 4, "com.mycompany.log.basket", Default::default());
        let p5 = published(
            &mut c,
            1,
            5,
            "com.mycompany.log.checkout",
            Default::default(),
        );
        // Not under any rule: not kept anywhere.
        published(&mut c, 1, 6, "com.other", Default::default());

        let s1 = subscribed(&mut c, 2, "com.mycompany.log.auth", Exact);
        let s2 = subscribed(&mut c, 2, "com.mycompany.log.basket", Exact);
        let s3 = subscribed(&mut c, 2, "com.mycompany.log", Prefix);

        let e1 = get_events(&mut c, 3, s1, &[]).expect("history");
        assert_eq!(pubs(&e1), vec![p1], "{shards} shards");
        let e2 = get_events(&mut c, 3, s2, &[]).expect("history");
        assert_eq!(pubs(&e2), vec![p2, p3, p4]);
        let e3 = get_events(&mut c, 3, s3, &[]).expect("history");
        assert_eq!(pubs(&e3), vec![p1, p2, p3, p4, p5]);
        assert_eq!(firsts(&e3), vec![1, 2, 3, 4, 5]);

        // Each event as the spec shows it; details as the EVENT had them (topic only for the
        // pattern subscription).
        let e = &e3[4];
        assert_eq!(e.get("subscription"), Some(&Value::UInt(s3)));
        let ts = e
            .get("timestamp")
            .and_then(Value::as_str)
            .expect("timestamp");
        assert!(crate::util::time::parse_rfc3339(ts).is_some(), "{ts}");
        let details = |e: &Dict| match e.get("details") {
            Some(Value::Dict(d)) => d.clone(),
            other => panic!("details, got {other:?}"),
        };
        assert_eq!(
            details(e).get("topic"),
            Some(&Value::Str("com.mycompany.log.checkout".into()))
        );
        assert_eq!(details(&e1[0]).get("topic"), None);
        assert_eq!(e.get("kwargs"), None);

        // One store per rule, on the rule's home shard only.
        for (i, (uri, policy)) in [
            ("com.mycompany.log.auth", Exact),
            ("com.mycompany.log.basket", Exact),
            ("com.mycompany.log", Prefix),
        ]
        .into_iter()
        .enumerate()
        {
            let home = c.home(policy, uri);
            for s in 0..shards {
                let n = c.shards[s].broker().history_len(i);
                let want = if s == home { [1, 3, 5][i] } else { 0 };
                assert_eq!(n, want, "rule {i} on shard {s} of {shards}");
            }
        }
        // Sent to the home only when it is another shard: one message per (publication, rule)
        // whose home is not the publisher's shard (shard 0).
        let expected = [
            (0, "com.mycompany.log.auth", Exact, 1),
            (1, "com.mycompany.log.basket", Exact, 3),
            (2, "com.mycompany.log", Prefix, 5),
        ]
        .iter()
        .filter(|(_, uri, p, _)| c.home(*p, uri) != 0)
        .map(|(_, _, _, n)| n)
        .sum::<usize>();
        assert_eq!(c.peer_count("History"), expected, "{shards} shards");
    }
}

#[test]
fn filters_reverse_limit_and_positions() {
    let mut c = cluster(2, vec![rule("com.a", Prefix, 100)]);
    c.join(1, 0);
    c.join(2, 1);
    let mut ids = Vec::new();
    for i in 1..=6 {
        let topic = if i % 2 == 0 {
            "com.a.even"
        } else {
            "com.a.odd"
        };
        ids.push(published(&mut c, 1, i, topic, Default::default()));
        c.advance(Duration::from_millis(5));
    }
    let s = subscribed(&mut c, 2, "com.a", Prefix);
    let all = get_events(&mut c, 2, s, &[]).expect("history");
    assert_eq!(pubs(&all), ids);

    let rev = get_events(&mut c, 2, s, &[("reverse", Value::Bool(true))]).expect("ok");
    assert_eq!(firsts(&rev), vec![6, 5, 4, 3, 2, 1]);
    let latest = get_events(
        &mut c,
        2,
        s,
        &[("reverse", Value::Bool(true)), ("limit", Value::UInt(2))],
    )
    .expect("ok");
    assert_eq!(firsts(&latest), vec![6, 5]);
    let first = get_events(&mut c, 2, s, &[("limit", Value::UInt(2))]).expect("ok");
    assert_eq!(firsts(&first), vec![1, 2]);

    let id = |i: usize| Value::UInt(ids[i - 1]);
    let f = |c: &mut Cluster, k: &[(&str, Value)]| firsts(&get_events(c, 2, s, k).expect("ok"));
    assert_eq!(f(&mut c, &[("from_publication", id(3))]), vec![3, 4, 5, 6]);
    assert_eq!(f(&mut c, &[("after_publication", id(3))]), vec![4, 5, 6]);
    assert_eq!(f(&mut c, &[("before_publication", id(3))]), vec![1, 2]);
    assert_eq!(f(&mut c, &[("until_publication", id(3))]), vec![1, 2, 3]);
    assert_eq!(
        f(
            &mut c,
            &[("after_publication", id(2)), ("before_publication", id(5))]
        ),
        vec![3, 4]
    );
    // Pagination backwards, as the spec suggests: before the last one returned.
    assert_eq!(
        f(
            &mut c,
            &[
                ("reverse", Value::Bool(true)),
                ("limit", Value::UInt(2)),
                ("before_publication", id(5))
            ]
        ),
        vec![4, 3]
    );
    assert_eq!(
        f(&mut c, &[("topic", Value::Str("com.a.even".into()))]),
        vec![2, 4, 6]
    );
    assert_eq!(
        f(
            &mut c,
            &[
                ("topic", Value::Str("com.a.even".into())),
                ("after_publication", id(4))
            ]
        ),
        vec![6]
    );

    // Time filters, with the timestamps the history itself returned (5 ms apart).
    let ts = |i: usize| all[i - 1].get("timestamp").cloned().expect("timestamp");
    assert_eq!(f(&mut c, &[("from_time", ts(4))]), vec![4, 5, 6]);
    assert_eq!(f(&mut c, &[("after_time", ts(4))]), vec![5, 6]);
    assert_eq!(f(&mut c, &[("before_time", ts(2))]), vec![1]);
    assert_eq!(f(&mut c, &[("until_time", ts(2))]), vec![1, 2]);
    assert_eq!(
        f(&mut c, &[("from_time", ts(2)), ("until_time", ts(4))]),
        vec![2, 3, 4]
    );
    assert_eq!(
        f(&mut c, &[("after_time", ts(6))]),
        Vec::<i64>::new(),
        "an empty array when everything is filtered out"
    );

    // Bad arguments: clear errors.
    for bad in [
        vec![("limit", Value::UInt(0))],
        vec![("limit", Value::Str("3".into()))],
        vec![("reverse", Value::UInt(1))],
        vec![("from_time", Value::Str("yesterday".into()))],
        vec![("after_publication", Value::UInt(12345))],
        vec![("unknown_filter", Value::Bool(true))],
    ] {
        assert_eq!(
            get_events(&mut c, 2, s, &bad),
            Err("wamp.error.invalid_argument".into()),
            "{bad:?}"
        );
    }
}

#[test]
fn bounds_by_count_bytes_and_age() {
    let mut small = rule("com.n", Exact, 3);
    let mut bytes = rule("com.b", Exact, 100);
    bytes.max_bytes = 300;
    let mut aged = rule("com.t", Exact, 100);
    aged.max_age = Some(Duration::from_secs(10));
    small.max_bytes = 1 << 20;
    let mut c = cluster(3, vec![small, bytes, aged]);
    c.join(1, 0);
    c.join(2, 2);
    for i in 1..=5 {
        published(&mut c, 1, i, "com.n", Default::default());
    }
    let s = subscribed(&mut c, 2, "com.n", Exact);
    assert_eq!(
        firsts(&get_events(&mut c, 2, s, &[]).expect("ok")),
        vec![3, 4, 5]
    );

    for i in 1..=20 {
        published(&mut c, 1, i, "com.b", Default::default());
    }
    let home = c.home(Exact, "com.b");
    let kept = c.shards[home].broker().history_len(1);
    assert!(
        (1..20).contains(&kept),
        "the byte bound drops the oldest: {kept}"
    );
    assert!(c.shards[home].broker().history_bytes(1) <= 300);
    let s = subscribed(&mut c, 2, "com.b", Exact);
    let got = firsts(&get_events(&mut c, 2, s, &[]).expect("ok"));
    assert_eq!(got, ((21 - kept as i64)..=20).collect::<Vec<_>>());

    published(&mut c, 1, 1, "com.t", Default::default());
    c.advance(Duration::from_secs(6));
    published(&mut c, 1, 2, "com.t", Default::default());
    let s = subscribed(&mut c, 2, "com.t", Exact);
    assert_eq!(
        firsts(&get_events(&mut c, 2, s, &[]).expect("ok")),
        vec![1, 2]
    );
    c.advance(Duration::from_secs(6));
    assert_eq!(
        firsts(&get_events(&mut c, 2, s, &[]).expect("ok")),
        vec![2],
        "older than max_age: not returned"
    );
    published(&mut c, 1, 3, "com.t", Default::default());
    let home = c.home(Exact, "com.t");
    assert_eq!(
        c.shards[home].broker().history_len(2),
        2,
        "and dropped on the next record"
    );
}

#[test]
fn black_and_white_lists_are_respected() {
    for shards in [1, 3] {
        let mut c = cluster(shards, vec![rule("com.s", Exact, 100)]);
        c.join_with(1, 0, "alice", "publisher", crate::routing::Features::ALL);
        c.join_with(2, shards - 1, "bob", "user", crate::routing::Features::ALL);
        c.join_with(
            3,
            shards / 2,
            "carol",
            "admin",
            crate::routing::Features::ALL,
        );
        let strs = |v: &[&str]| Some(v.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>());
        // Session-ID lists and lists over other session details: never stored.
        published(
            &mut c,
            1,
            1,
            "com.s",
            PublishOptions {
                exclude: Some(vec![3]),
                ..Default::default()
            },
        );
        published(
            &mut c,
            1,
            2,
            "com.s",
            PublishOptions {
                eligible: Some(vec![2, 3]),
                ..Default::default()
            },
        );
        let mut custom = PublishOptions::default();
        custom.extra.insert(
            "eligible_tenant".into(),
            Value::List(vec![Value::Str("acme".into())]),
        );
        published(&mut c, 1, 3, "com.s", custom);
        // authid / authrole lists: stored, applied to each reader.
        published(
            &mut c,
            1,
            4,
            "com.s",
            PublishOptions {
                eligible_authrole: strs(&["admin"]),
                ..Default::default()
            },
        );
        published(
            &mut c,
            1,
            5,
            "com.s",
            PublishOptions {
                exclude_authid: strs(&["carol"]),
                ..Default::default()
            },
        );
        published(
            &mut c,
            1,
            6,
            "com.s",
            PublishOptions {
                exclude_me: Some(true),
                ..Default::default()
            },
        );

        let s = subscribed(&mut c, 2, "com.s", Exact);
        let bob = firsts(&get_events(&mut c, 2, s, &[]).expect("ok"));
        assert_eq!(bob, vec![5, 6], "{shards} shards");
        let carol = firsts(&get_events(&mut c, 3, s, &[]).expect("ok"));
        assert_eq!(carol, vec![4, 6]);
        // exclude_me concerns live delivery: the publisher reads its own events.
        let alice = firsts(&get_events(&mut c, 1, s, &[]).expect("ok"));
        assert_eq!(alice, vec![5, 6]);
        // A position the reader may not see is not revealed either.
        let hidden = c.shards[c.home(Exact, "com.s")].broker().history_len(0);
        assert_eq!(hidden, 3);
    }
}

#[test]
fn errors_for_unknown_subscriptions_and_subscriptions_without_history() {
    let mut c = cluster(2, vec![rule("com.h", Wildcard, 10)]);
    c.join(1, 0);
    c.join(2, 1);
    assert_eq!(
        get_events(&mut c, 2, 424242, &[]),
        Err("wamp.error.no_such_subscription".into())
    );
    let s = subscribed(&mut c, 1, "com.other", Exact);
    assert_eq!(
        get_events(&mut c, 2, s, &[]),
        Err("wamp.error.invalid_argument".into()),
        "no rule for this subscription"
    );
    c.run(
        2,
        call(
            5,
            "wamp.subscription.get_events",
            CallOptions::default(),
            args(&[]),
        ),
    );
    assert_eq!(error(&c.one(2)).2, "wamp.error.invalid_argument");
}

#[test]
fn one_publishers_events_keep_their_order_across_shards() {
    let mut c = cluster(3, vec![rule("com.o", Prefix, 1000)]);
    for (id, shard) in [(1, 0), (2, 1), (3, 2)] {
        c.join(id, shard);
    }
    // Three publishers on three shards, interleaved, peer messages delivered late.
    for i in 0..30 {
        let who = 1 + (i % 3);
        c.send(
            who,
            publish(
                100 + i,
                "com.o.x",
                Default::default(),
                args(&[who as i64, i as i64]),
            ),
        );
    }
    c.settle();
    let s = subscribed(&mut c, 1, "com.o", Prefix);
    let events = get_events(&mut c, 1, s, &[]).expect("ok");
    assert_eq!(events.len(), 30);
    for who in 1..=3i64 {
        let seq: Vec<i64> = events
            .iter()
            .filter_map(|e| match e.get("args") {
                Some(Value::List(a)) if a.first().and_then(Value::as_u64) == Some(who as u64) => {
                    a.get(1).and_then(Value::as_u64).map(|n| n as i64)
                }
                _ => None,
            })
            .collect();
        let mut sorted = seq.clone();
        sorted.sort_unstable();
        assert_eq!(seq, sorted, "publisher {who}'s events in publish order");
        assert_eq!(seq.len(), 10);
    }
}

#[test]
fn events_from_other_shards_take_their_place_by_publication_time() {
    let mut c = cluster(3, vec![rule("com.t", Prefix, 1000)]);
    let home = c.home(Prefix, "com.t");
    let others: Vec<usize> = (0..3).filter(|s| *s != home).collect();
    c.join(1, others[0]);
    c.join(2, others[1]);
    c.join(3, home);
    // Publisher 1's event reaches the home shard late, after later events from shard 2 and
    // from the home shard itself (the causal order a client sees: each acknowledged first).
    c.hold(others[0], home);
    c.run(1, publish(10, "com.t.a", Default::default(), args(&[1])));
    c.advance(Duration::from_millis(1));
    c.run(2, publish(11, "com.t.b", Default::default(), args(&[2])));
    c.advance(Duration::from_millis(1));
    c.run(3, publish(12, "com.t.c", Default::default(), args(&[3])));
    c.release(others[0], home);
    c.settle();
    let s = subscribed(&mut c, 3, "com.t", Prefix);
    let events = get_events(&mut c, 3, s, &[]).expect("ok");
    assert_eq!(firsts(&events), vec![1, 2, 3]);
}

#[test]
fn duplicate_or_empty_rules_are_refused() {
    assert!(HistoryRules::new(vec![rule("a.b", Exact, 1), rule("a.b", Prefix, 1)]).is_ok());
    assert_eq!(
        HistoryRules::new(vec![rule("a.b", Exact, 1), rule("a.b", Exact, 2)])
            .map(|_| ())
            .map_err(|(i, _)| i),
        Err(1)
    );
    assert!(HistoryRules::new(vec![rule("a.b", Exact, 0)]).is_err());
}
