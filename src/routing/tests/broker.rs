//! Pub/sub on 1, 2 and 3 shards.

use super::harness::*;
use crate::codec::uri::MatchPolicy::{self, Exact, Prefix, Wildcard};
use crate::codec::*;
use crate::routing::session::Features;

fn ack() -> PublishOptions {
    PublishOptions {
        acknowledge: Some(true),
        ..Default::default()
    }
}

/// Subscribes and settles; returns the subscription ID.
fn sub(c: &mut Cluster, session: u64, req: Id, topic: &str, policy: MatchPolicy) -> Id {
    c.run(session, subscribe(req, topic, policy));
    subscribed_id(&c.one(session))
}

#[test]
fn single_shard_subscribe_publish_unsubscribe() {
    let mut c = Cluster::new(1);
    c.join(1, 0);
    c.join(2, 0);
    let id = sub(&mut c, 1, 1, "com.a.topic", Exact);
    assert!(id > 0 && id < 1 << 32);

    c.run(2, publish(1, "com.a.topic", ack(), args(&[7])));
    let published = c.one(2);
    let Message::Published(p) = &published else {
        panic!("{published:?}")
    };
    assert_eq!(p.request, 1);
    assert!((1..=MAX_ID).contains(&p.publication));
    let m = c.one(1);
    let e = event(&m);
    assert_eq!((e.subscription, e.publication), (id, p.publication));
    assert_eq!(first_arg(&e.payload), Some(Value::from(7i64)));
    assert_eq!(e.details.topic, None, "exact subscriptions get no topic");
    assert_eq!(e.details.publisher, None, "no disclosure unless asked");

    c.run(1, unsubscribe(2, id));
    assert!(matches!(c.one(1), Message::Unsubscribed(u) if u.request == 2));
    c.run(
        2,
        publish(2, "com.a.topic", PublishOptions::default(), args(&[])),
    );
    assert!(c.take(1).is_empty());
    assert!(c.take(2).is_empty(), "unacknowledged: no PUBLISHED");
    assert!(
        c.shards[0].broker().subscriptions().is_empty(),
        "ID retired"
    );
}

#[test]
fn errors_invalid_uri_and_no_such_subscription() {
    let mut c = Cluster::new(1);
    c.join(1, 0);
    c.run(1, subscribe(1, "com..a", Exact));
    assert_eq!(
        error(&c.one(1)),
        (code::SUBSCRIBE, 1, "wamp.error.invalid_uri")
    );
    // Empty components are fine for wildcard patterns only.
    sub(&mut c, 1, 2, "com..a", Wildcard);
    c.run(1, publish(3, "com..a", ack(), args(&[])));
    assert_eq!(
        error(&c.one(1)),
        (code::PUBLISH, 3, "wamp.error.invalid_uri")
    );
    c.run(
        1,
        publish(4, "com..a", PublishOptions::default(), args(&[])),
    );
    assert!(
        c.take(1).is_empty(),
        "unacknowledged failures are silent (spec)"
    );
    c.run(1, publish(5, "wamp.session.on_join", ack(), args(&[])));
    assert_eq!(error(&c.one(1)).2, "wamp.error.invalid_uri", "reserved");
    c.run(1, unsubscribe(6, 999));
    assert_eq!(
        error(&c.one(1)),
        (code::UNSUBSCRIBE, 6, "wamp.error.no_such_subscription")
    );
    assert!(c.aborts.is_empty());
}

#[test]
fn exclude_me_defaults_to_true() {
    let mut c = Cluster::new(2);
    c.join(1, 1);
    sub(&mut c, 1, 1, "t", Exact);
    c.run(1, publish(2, "t", PublishOptions::default(), args(&[])));
    assert!(c.take(1).is_empty());
    let opts = PublishOptions {
        exclude_me: Some(false),
        ..Default::default()
    };
    c.run(1, publish(3, "t", opts, args(&[])));
    event(&c.one(1));
}

#[test]
fn cross_shard_fanout_is_one_peer_message_per_shard() {
    let mut c = Cluster::new(3);
    c.join(1, 0); // publisher
    for (s, shard) in [(10, 1), (11, 1), (12, 1), (20, 2)] {
        c.join(s, shard);
    }
    let ids: Vec<Id> = [10, 11, 12, 20]
        .iter()
        .map(|s| sub(&mut c, *s, 1, "com.x", Exact))
        .collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "one ID on every shard");
    for s in &c.shards {
        assert_eq!(s.broker().lookup(Exact, "com.x"), Some(ids[0]));
        let mut shards = s.broker().subscriptions()[0].shards.clone();
        shards.sort();
        assert_eq!(shards, vec![1, 2]);
    }

    let before = c.peer_count("Publish");
    c.run(
        1,
        publish(1, "com.x", PublishOptions::default(), args(&[1])),
    );
    assert_eq!(c.peer_count("Publish") - before, 2, "one per remote shard");
    let publishes: Vec<_> = c.peer_log.iter().filter(|l| l.2 == "Publish").collect();
    assert!(publishes.iter().any(|l| l.1 == 1) && publishes.iter().any(|l| l.1 == 2));
    for s in [10, 11, 12, 20] {
        assert_eq!(event(&c.one(s)).subscription, ids[0]);
    }
    assert_eq!(
        c.send_many,
        vec![3],
        "one shared EVENT for the three on shard 1"
    );
    assert!(c.take(1).is_empty());

    // A shard with no interest gets nothing.
    c.join(2, 1);
    c.run(
        2,
        publish(1, "com.other", PublishOptions::default(), args(&[])),
    );
    assert_eq!(c.peer_count("Publish") - before, 2);
}

#[test]
fn subscribed_is_withheld_until_every_shard_acked() {
    let mut c = Cluster::new(3);
    let topic = "com.wait";
    let home = c.home(Exact, topic);
    // A subscriber on a shard that is not the home, and a third shard whose ack we hold back.
    let s = (home + 1) % 3;
    let x = (home + 2) % 3;
    c.join(1, s);
    c.join(2, x);
    c.hold(x, s);
    c.run(1, subscribe(1, topic, Exact));
    assert!(c.take(1).is_empty(), "shard {x} has not acked");
    // Shard x already routes to s, and its publications queue up behind its ack.
    c.run(2, publish(1, topic, PublishOptions::default(), args(&[1])));
    assert!(c.take(1).is_empty());
    c.release(x, s);
    c.settle();
    let msgs = c.take(1);
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    let id = subscribed_id(&msgs[0]);
    assert_eq!(
        event(&msgs[1]).subscription,
        id,
        "SUBSCRIBED first, then the EVENT"
    );
    assert_eq!(
        c.peer_count("InterestAck"),
        2,
        "home and x acked remotely, s itself locally"
    );
}

#[test]
fn pattern_subscriptions_get_topic_and_one_event_per_subscription() {
    let mut c = Cluster::new(2);
    c.join(1, 0);
    c.join(2, 1);
    let exact = sub(&mut c, 2, 1, "com.app.a.b", Exact);
    let prefix = sub(&mut c, 2, 2, "com.app", Prefix);
    let wild = sub(&mut c, 2, 3, "com..a.", Wildcard);
    let _other = sub(&mut c, 2, 4, "com.zzz", Prefix);
    assert_eq!(
        [exact, prefix, wild]
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len(),
        3
    );
    c.run(
        1,
        publish(1, "com.app.a.b", PublishOptions::default(), args(&[])),
    );
    assert_eq!(
        c.peer_count("Publish"),
        1,
        "one message for three matching subscriptions"
    );
    let msgs = c.take(2);
    assert_eq!(msgs.len(), 3);
    let mut seen = Vec::new();
    for m in &msgs {
        let e = event(m);
        let expect_topic = (e.subscription != exact).then(|| Uri::from("com.app.a.b"));
        assert_eq!(e.details.topic, expect_topic);
        seen.push(e.subscription);
    }
    seen.sort();
    let mut want = vec![exact, prefix, wild];
    want.sort();
    assert_eq!(seen, want);
    assert_eq!(c.shards[0].broker().matching("com.app.a.b").len(), 3);
}

#[test]
fn black_and_white_lists_apply_on_every_shard() {
    let mut c = Cluster::new(3);
    c.join(1, 0);
    let f = Features::ALL;
    c.join_with(10, 1, "alice", "admin", f);
    c.join_with(11, 1, "bob", "staff", f);
    c.join_with(20, 2, "carol", "staff", f);
    c.join_with(21, 0, "dave", "admin", f);
    for s in [10, 11, 20, 21] {
        sub(&mut c, s, 1, "t", Exact);
    }
    let mut check = |opts: PublishOptions, want: &[u64]| {
        c.run(1, publish(1, "t", opts, args(&[])));
        for s in [10u64, 11, 20, 21] {
            let got = c.take(s).len();
            assert_eq!(got, want.contains(&s) as usize, "session {s}");
        }
    };
    let strs = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    check(
        PublishOptions {
            eligible: Some(vec![10, 20]),
            ..Default::default()
        },
        &[10, 20],
    );
    check(
        PublishOptions {
            exclude: Some(vec![10, 21]),
            ..Default::default()
        },
        &[11, 20],
    );
    check(
        PublishOptions {
            eligible_authrole: strs(&["staff"]),
            ..Default::default()
        },
        &[11, 20],
    );
    check(
        PublishOptions {
            exclude_authrole: strs(&["staff"]),
            ..Default::default()
        },
        &[10, 21],
    );
    check(
        PublishOptions {
            eligible_authid: strs(&["alice", "carol"]),
            exclude_authid: strs(&["carol"]),
            ..Default::default()
        },
        &[10],
    );
    check(
        PublishOptions {
            eligible: Some(vec![10, 11, 20]),
            exclude: Some(vec![11]),
            ..Default::default()
        },
        &[10, 20],
    );
}

#[test]
fn disclose_me_identifies_the_publisher_across_shards() {
    let mut c = Cluster::new(2);
    c.join_with(1, 0, "pub-id", "pub-role", Features::ALL);
    c.join(2, 1);
    sub(&mut c, 2, 1, "t", Exact);
    let opts = PublishOptions {
        disclose_me: Some(true),
        ..Default::default()
    };
    c.run(1, publish(1, "t", opts, args(&[])));
    let m = c.one(2);
    let d = &event(&m).details;
    assert_eq!(d.publisher, Some(IdField(1)));
    assert_eq!(d.publisher_authid.as_deref(), Some("pub-id"));
    assert_eq!(d.publisher_authrole.as_deref(), Some("pub-role"));
}

#[test]
fn events_from_one_publisher_arrive_in_publish_order() {
    let mut c = Cluster::new(3);
    c.join(1, 0);
    c.join(2, 2);
    sub(&mut c, 2, 1, "t", Exact);
    sub(&mut c, 2, 2, "t", Prefix);
    for i in 0..50 {
        c.send(
            1,
            publish(i + 1, "t", PublishOptions::default(), args(&[i as i64])),
        );
    }
    c.settle();
    let got: Vec<Value> = c
        .take(2)
        .iter()
        .filter(|m| event(m).details.topic.is_none())
        .filter_map(|m| first_arg(&event(m).payload))
        .collect();
    let want: Vec<Value> = (0..50i64).map(Value::from).collect();
    assert_eq!(got, want);
}

#[test]
fn leaving_removes_interest_everywhere_and_retires_the_id() {
    let mut c = Cluster::new(3);
    c.join(1, 0);
    c.join(2, 1);
    c.join(3, 1);
    let id = sub(&mut c, 2, 1, "t", Exact);
    assert_eq!(sub(&mut c, 3, 1, "t", Exact), id);
    c.leave(2);
    assert!(c
        .shards
        .iter()
        .all(|s| s.broker().lookup(Exact, "t") == Some(id)));
    c.leave(3);
    for s in &c.shards {
        assert!(s.broker().subscriptions().is_empty());
    }
    c.run(1, publish(1, "t", PublishOptions::default(), args(&[])));
    assert_eq!(c.peer_count("Publish"), 0);
    // A new subscription gets a new ID.
    c.join(4, 2);
    assert_ne!(sub(&mut c, 4, 1, "t", Exact), id);
}

#[test]
fn unsubscribe_then_resubscribe_without_waiting() {
    let mut c = Cluster::new(3);
    c.join(1, 0);
    c.join(2, 1);
    let id = sub(&mut c, 2, 1, "t", Exact);
    c.send(2, unsubscribe(2, id));
    c.send(2, subscribe(3, "t", Exact));
    c.settle();
    let msgs = c.take(2);
    assert!(matches!(msgs[0], Message::Unsubscribed(_)));
    let id2 = subscribed_id(&msgs[1]);
    c.run(1, publish(1, "t", PublishOptions::default(), args(&[])));
    assert_eq!(event(&c.one(2)).subscription, id2);
    for s in &c.shards {
        assert_eq!(s.broker().lookup(Exact, "t"), Some(id2));
    }
}

#[test]
fn duplicate_subscribe_answers_the_same_id() {
    let mut c = Cluster::new(2);
    c.join(1, 1);
    c.join(2, 0);
    c.send(1, subscribe(1, "t", Exact));
    c.send(1, subscribe(2, "t", Exact)); // while pending
    c.settle();
    let msgs = c.take(1);
    let (a, b) = (subscribed_id(&msgs[0]), subscribed_id(&msgs[1]));
    assert_eq!(a, b);
    assert_eq!(sub(&mut c, 1, 3, "t", Exact), a); // while active
    assert_eq!(c.shards[1].broker().local_subscribers(a).len(), 1);
    c.run(2, publish(1, "t", PublishOptions::default(), args(&[])));
    assert_eq!(c.take(1).len(), 1, "one subscriber, one event");
    assert_eq!(c.shards[1].broker().subscriptions_of(1), vec![a]);
}

#[test]
fn leaving_while_subscribe_is_pending_leaves_no_interest() {
    let mut c = Cluster::new(3);
    c.join(1, 1);
    c.send(1, subscribe(1, "t", Exact));
    c.leave(1);
    for s in &c.shards {
        assert!(s.broker().subscriptions().is_empty(), "shard {}", s.shard());
    }
    assert!(c.take(1).is_empty());
}

#[test]
fn subscription_limit_answers_an_error() {
    let config = crate::routing::RoutingConfig {
        max_subscriptions_per_session: 2,
        ..Default::default()
    };
    let mut c = Cluster::with_config(2, config);
    c.join(1, 0);
    sub(&mut c, 1, 1, "a", Exact);
    sub(&mut c, 1, 2, "b", Exact);
    c.run(1, subscribe(3, "c", Exact));
    assert_eq!(
        error(&c.one(1)),
        (code::SUBSCRIBE, 3, "switchyard.error.limit_exceeded")
    );
    // Re-subscribing to something held is not a new subscription.
    sub(&mut c, 1, 4, "a", Exact);
}

#[test]
fn router_publishes_meta_events_to_every_shard() {
    let mut c = Cluster::new(3);
    c.join(1, 1);
    c.join(2, 2);
    sub(&mut c, 1, 1, "wamp.session.on_join", Exact);
    sub(&mut c, 2, 1, "wamp.session", Prefix);
    let id = c.publish_from_router(0, "wamp.session.on_join");
    assert_eq!(event(&c.one(1)).publication, id);
    let m = c.one(2);
    assert_eq!(
        event(&m).details.topic,
        Some(Uri::from("wamp.session.on_join"))
    );
}

#[test]
fn shedding_sessions_get_no_event_and_are_counted() {
    // Two shards: subscribers 1 (exact) and 3 (prefix) on shard 0, 2 (exact) on shard 1; the
    // publisher 4 on shard 1. Sessions 1 and 3 shed on shard 0.
    let mut c = Cluster::new(2);
    for (s, shard) in [(1, 0), (2, 1), (3, 0), (4, 1)] {
        c.join(s, shard);
    }
    let shed = std::rc::Rc::new(crate::routing::Shedding::default());
    c.shards[0].shed_with(shed.clone());
    let exact = sub(&mut c, 1, 1, "com.shed.t", Exact);
    assert_eq!(sub(&mut c, 2, 1, "com.shed.t", Exact), exact);
    let prefix = sub(&mut c, 3, 1, "com.shed", Prefix);
    let send = |c: &mut Cluster, n: i64| {
        c.run(
            4,
            publish(
                n as u64,
                "com.shed.t",
                PublishOptions::default(),
                args(&[n]),
            ),
        )
    };

    // Nobody marked: everyone gets it.
    send(&mut c, 1);
    assert_eq!(event(&c.one(1)).subscription, exact);
    assert_eq!(event(&c.one(2)).subscription, exact);
    assert_eq!(event(&c.one(3)).subscription, prefix);
    assert_eq!(shed.take_dropped(), 0);

    // 1 and 3 shed: 2 still gets it; the prefix subscription (3 alone) gets no EVENT built.
    shed.start(1);
    shed.start(3);
    assert!(shed.contains(1) && shed.contains(3) && !shed.contains(2));
    send(&mut c, 2);
    assert!(c.take(1).is_empty());
    assert!(c.take(3).is_empty());
    assert_eq!(
        first_arg(&event(&c.one(2)).payload),
        Some(Value::from(2i64))
    );
    assert_eq!(
        shed.take_dropped(),
        2,
        "one event dropped for each marked subscriber"
    );
    assert_eq!(shed.take_dropped(), 0, "taken");

    // 1 drained: it gets events again; 3 still sheds.
    shed.stop(1);
    send(&mut c, 3);
    assert_eq!(
        first_arg(&event(&c.one(1)).payload),
        Some(Value::from(3i64))
    );
    assert_eq!(
        first_arg(&event(&c.one(2)).payload),
        Some(Value::from(3i64))
    );
    assert!(c.take(3).is_empty());
    assert_eq!(shed.take_dropped(), 1);

    // A shard without a set (shard 1) never drops: 2 would be marked only in shard 0's set.
    shed.start(2);
    send(&mut c, 4);
    assert_eq!(
        first_arg(&event(&c.one(2)).payload),
        Some(Value::from(4i64))
    );
    assert_eq!(
        first_arg(&event(&c.one(1)).payload),
        Some(Value::from(4i64))
    );
    shed.stop(3);
    shed.stop(2);
    assert!(shed.is_empty());
}

#[test]
fn shedding_mask_tells_apart_sessions_sharing_a_bit() {
    // IDs 5, 69 and 133 share bit 5: one alone is told by the bit's only slot, two or more by
    // the set, and the slot is refilled when one of two leaves.
    let shed = crate::routing::Shedding::default();
    shed.start(5);
    assert!(shed.contains(5));
    assert!(!shed.contains(69) && !shed.contains(6));
    shed.start(69);
    assert!(shed.contains(5) && shed.contains(69) && !shed.contains(133));
    shed.start(133);
    shed.stop(5);
    assert!(!shed.contains(5));
    assert!(shed.contains(69) && shed.contains(133));
    shed.stop(133);
    assert!(!shed.contains(5) && !shed.contains(133));
    assert!(shed.contains(69), "the one left on the bit");
    shed.start(69); // already marked: nothing changes
    shed.stop(69);
    assert!(shed.is_empty() && !shed.contains(69));
    shed.stop(69); // not marked: nothing changes
    assert!(shed.is_empty());
}
