//! Filtering by any session detail (`exclude_<key>` / `eligible_<key>`, nexus's extension)
//! and the embedder's publish filter, on 1–3 shards.

use std::sync::Arc;

use super::harness::*;
use crate::codec::uri::MatchPolicy::Exact;
use crate::codec::*;
use crate::routing::broker::Subscriber;
use crate::routing::peer::Publication;
use crate::routing::realm::RoutingConfig;
use crate::routing::session::{Attributes, Features, SessionRef};
use crate::routing::{PublishFilter, SharedPublishFilter};

fn strs(v: &[&str]) -> Value {
    Value::List(v.iter().map(|s| Value::Str((*s).into())).collect())
}

fn opts(pairs: &[(&str, Value)]) -> PublishOptions {
    let mut o = PublishOptions {
        acknowledge: Some(true),
        ..Default::default()
    };
    for (k, v) in pairs {
        o.extra.insert((*k).to_owned(), v.clone());
    }
    o
}

/// A session on `shard` whose HELLO said `tenant` and that authenticated with `method`.
fn member(c: &mut Cluster, id: u64, shard: usize, tenant: &str, method: &str) {
    let mut hello = Dict::new();
    hello.insert("tenant".into(), Value::Str(tenant.into()));
    let attrs = Attributes::build(&hello, None, method, "static");
    let s = SessionRef::new(id, shard, &format!("user{id}"), "user", Features::ALL)
        .with_attributes(attrs);
    c.join_ref(s);
}

fn subscribe_all(c: &mut Cluster, ids: &[u64]) {
    for &s in ids {
        c.run(s, subscribe(1, "t", Exact));
        subscribed_id(&c.one(s));
    }
}

/// Publishes from session 1 and returns which of `ids` got the EVENT.
fn receivers(c: &mut Cluster, options: PublishOptions, ids: &[u64]) -> Vec<u64> {
    c.run(1, publish(1, "t", options, args(&[])));
    assert!(matches!(c.one(1), Message::Published(_)));
    ids.iter()
        .copied()
        .filter(|s| {
            let got = c.take(*s);
            assert!(got.len() <= 1, "one event at most for {s}: {got:?}");
            got.len() == 1
        })
        .collect()
}

#[test]
fn session_detail_lists_apply_on_every_shard() {
    for shards in 1..=3 {
        let mut c = Cluster::new(shards);
        c.join(1, 0);
        member(&mut c, 10, 0, "acme", "ticket");
        member(&mut c, 11, 1 % shards, "acme", "wampcra");
        member(&mut c, 20, 2 % shards, "globex", "ticket");
        let all = [10, 11, 20];
        subscribe_all(&mut c, &all);
        let got = |c: &mut Cluster, pairs: &[(&str, Value)]| receivers(c, opts(pairs), &all);
        assert_eq!(got(&mut c, &[]), vec![10, 11, 20], "{shards} shards");
        assert_eq!(
            got(&mut c, &[("eligible_tenant", strs(&["acme"]))]),
            vec![10, 11]
        );
        assert_eq!(
            got(&mut c, &[("exclude_tenant", strs(&["acme"]))]),
            vec![20]
        );
        assert_eq!(
            got(&mut c, &[("exclude_authmethod", strs(&["wampcra"]))]),
            vec![10, 20]
        );
        // Every eligible list must match, and any exclude list excludes.
        assert_eq!(
            got(
                &mut c,
                &[
                    ("eligible_tenant", strs(&["acme", "globex"])),
                    ("eligible_authmethod", strs(&["ticket"])),
                ]
            ),
            vec![10, 20]
        );
        assert_eq!(
            got(
                &mut c,
                &[
                    ("eligible_tenant", strs(&["acme"])),
                    ("exclude_authid", strs(&["user11"])),
                ]
            ),
            vec![10]
        );
        // Combined with the spec's session-ID lists.
        let mut o = opts(&[("eligible_tenant", strs(&["acme"]))]);
        o.exclude = Some(vec![10]);
        assert_eq!(receivers(&mut c, o, &all), vec![11]);
        // A detail nobody has: excludes nobody, and nobody is eligible.
        assert_eq!(
            got(&mut c, &[("exclude_colour", strs(&["red"]))]),
            vec![10, 11, 20]
        );
        assert_eq!(
            got(&mut c, &[("eligible_colour", strs(&["red"]))]),
            Vec::<u64>::new()
        );
    }
}

#[test]
fn malformed_detail_list_is_refused_and_delivers_nothing() {
    let mut c = Cluster::new(2);
    c.join(1, 0);
    member(&mut c, 10, 1, "acme", "ticket");
    subscribe_all(&mut c, &[10]);
    c.run(
        1,
        publish(
            7,
            "t",
            opts(&[("eligible_tenant", Value::Str("acme".into()))]),
            args(&[]),
        ),
    );
    let m = c.one(1);
    let (ty, req, uri) = error(&m);
    assert_eq!(
        (ty, req, uri),
        (code::PUBLISH, 7, "wamp.error.invalid_argument")
    );
    assert!(c.take(10).is_empty());
}

/// Denies subscribers whose `tenant` differs from the publisher's.
struct SameTenant;

impl PublishFilter for SameTenant {
    fn allow(&self, p: &Publication, s: &Subscriber) -> bool {
        p.publisher_attributes.get("tenant") == s.attribute("tenant") && &*p.topic == "t"
    }
}

#[test]
fn embedder_filter_sees_publisher_and_subscriber_details() {
    for shards in 1..=3 {
        let config = RoutingConfig {
            publish_filter: Some(SharedPublishFilter(Arc::new(SameTenant))),
            ..Default::default()
        };
        let mut c = Cluster::with_config(shards, config);
        member(&mut c, 1, 0, "acme", "ticket");
        member(&mut c, 10, 0, "acme", "ticket");
        member(&mut c, 11, 1 % shards, "acme", "ticket");
        member(&mut c, 20, 2 % shards, "globex", "ticket");
        let all = [10, 11, 20];
        subscribe_all(&mut c, &all);
        assert_eq!(
            receivers(&mut c, opts(&[]), &all),
            vec![10, 11],
            "{shards} shards"
        );
        // The publisher's own lists still apply first.
        let mut o = opts(&[]);
        o.exclude = Some(vec![11]);
        assert_eq!(receivers(&mut c, o, &all), vec![10]);
    }
}

/// A testament's `exclude_<key>` / `eligible_<key>` lists are checked when it is added and
/// applied when it is published.
#[test]
fn testament_detail_lists() {
    let mut c = Cluster::new(2);
    c.join(1, 0);
    member(&mut c, 10, 1, "acme", "ticket");
    member(&mut c, 20, 0, "globex", "ticket");
    subscribe_all(&mut c, &[10, 20]);
    let add = |c: &mut Cluster, req: Id, value: Value| {
        let mut po = Dict::new();
        po.insert("eligible_tenant".into(), value);
        let mut kw = Dict::new();
        kw.insert("publish_options".into(), Value::Dict(po));
        let args = vec![Value::from("t"), Value::List(vec![Value::from(7i64)])];
        c.run(
            1,
            call(
                req,
                "wamp.session.add_testament",
                CallOptions::default(),
                Payload::args_kwargs(args, kw),
            ),
        );
        c.one(1)
    };
    let refused = add(&mut c, 1, Value::from("acme"));
    assert_eq!(error(&refused).2, "wamp.error.invalid_argument");
    assert!(matches!(
        add(&mut c, 2, strs(&["acme"])),
        Message::Result(_)
    ));
    c.leave(1);
    assert_eq!(c.take(10).len(), 1, "acme gets the testament");
    assert!(c.take(20).is_empty(), "globex does not");
}
