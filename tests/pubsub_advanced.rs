//! Advanced-profile pub/sub over a real socket (a two-shard router): filtering by any session
//! detail (`exclude_<key>` / `eligible_<key>`), its details in `wamp.session.get`, the
//! embedder's publish filter, event retention, and subscription revocation.

mod common;

use common::{run, wait_until};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use switchyard::client::{
    CallOptions, Client, ClientConfig, Dict, Event, PublishOptions, Serializer, SubscribeOptions,
    Value,
};
use switchyard::config::{ListenAddr, ListenerConfig, ListenerKind};
use switchyard::routing::broker::Subscriber;
use switchyard::routing::peer::Publication;
use switchyard::routing::{PublishFilter, SharedPublishFilter};
use switchyard::shard::Router;
use switchyard::RouterConfig;

fn start_router(cfg: RouterConfig) -> Router {
    Router::start(RouterConfig {
        shards: 2,
        listeners: vec![ListenerConfig {
            kind: ListenerKind::RawSocket,
            addr: ListenAddr::Tcp("127.0.0.1:0".parse().expect("address")),
            tls: None,
        }],
        ..cfg
    })
    .expect("router starts")
}

fn config(url: &str) -> ClientConfig {
    ClientConfig::new(url, "realm1")
        .serializer(Serializer::MsgPack)
        .connect_timeout(Duration::from_secs(5))
}

type Inbox = Rc<RefCell<Vec<Event>>>;

/// A client whose HELLO says `tenant`, subscribed to `topic`; its events land in the inbox.
async fn subscriber(url: &str, tenant: &str, topic: &str) -> (Client, Inbox) {
    let c = Client::connect(config(url).hello_detail("tenant", tenant))
        .await
        .expect("subscriber joins");
    let inbox: Inbox = Rc::default();
    let i = inbox.clone();
    c.subscribe(topic, SubscribeOptions::default(), move |ev| {
        i.borrow_mut().push(ev)
    })
    .await
    .expect("subscribe");
    (c, inbox)
}

fn ack() -> PublishOptions {
    PublishOptions {
        acknowledge: Some(true),
        ..Default::default()
    }
}

/// The first positional argument of each event.
fn firsts(inbox: &Inbox) -> Vec<u64> {
    inbox
        .borrow()
        .iter()
        .filter_map(|e| e.args.first().and_then(Value::as_u64))
        .collect()
}

/// Publishes `n` with `opts`, then an unfiltered marker 0 every subscriber gets; waits for the
/// marker everywhere, so what arrived before it is everything the filtered one delivered.
async fn publish_then_mark(
    publ: &Client,
    topic: &str,
    n: u64,
    opts: PublishOptions,
    all: &[&Inbox],
) {
    // Markers each inbox holds before this round: wait for one more (the last element being a
    // marker proves nothing once an earlier round has ended with one).
    let markers = |inbox: &Inbox| firsts(inbox).iter().filter(|&&x| x == 0).count();
    let before: Vec<usize> = all.iter().map(|i| markers(i)).collect();
    publ.publish(topic, vec![Value::UInt(n)], Dict::new(), opts)
        .await
        .expect("publish")
        .expect("acknowledged");
    publ.publish(topic, vec![Value::UInt(0)], Dict::new(), ack())
        .await
        .expect("publish")
        .expect("acknowledged");
    for (inbox, before) in all.iter().zip(before) {
        wait_until("the marker", || markers(inbox) > before).await;
    }
}

#[test]
fn filters_by_session_details_over_a_socket() {
    let router = start_router(RouterConfig::default());
    let url = router.endpoints()[0].clone();
    run(move || async move {
        let (a1, in_a1) = subscriber(&url, "acme", "com.t").await;
        let (_a2, in_a2) = subscriber(&url, "acme", "com.t").await;
        let (_g, in_g) = subscriber(&url, "globex", "com.t").await;
        let publ = Client::connect(config(&url))
            .await
            .expect("publisher joins");
        let all = [&in_a1, &in_a2, &in_g];

        let only_acme = ack().eligible_detail("tenant", &["acme"]);
        publish_then_mark(&publ, "com.t", 1, only_acme, &all).await;
        let not_acme = ack().exclude_detail("tenant", &["acme"]);
        publish_then_mark(&publ, "com.t", 2, not_acme, &all).await;
        let ticket_only = ack().eligible_detail("authmethod", &["ticket"]);
        publish_then_mark(&publ, "com.t", 3, ticket_only, &all).await;
        assert_eq!(firsts(&in_a1), vec![1, 0, 0, 0]);
        assert_eq!(firsts(&in_a2), vec![1, 0, 0, 0]);
        assert_eq!(firsts(&in_g), vec![0, 2, 0, 0]);

        // A malformed list is refused (acknowledged publish: an ERROR).
        let mut bad = ack();
        bad.extra
            .insert("eligible_tenant".into(), Value::Str("acme".into()));
        let e = publ
            .publish("com.t", vec![], Dict::new(), bad)
            .await
            .expect_err("refused");
        assert!(
            format!("{e:?}").contains("wamp.error.invalid_argument"),
            "{e:?}"
        );

        // wamp.session.get tells the details filters see.
        let id = a1.session_id().expect("joined");
        let r = publ
            .call(
                "wamp.session.get",
                vec![Value::UInt(id)],
                Dict::new(),
                CallOptions::default(),
            )
            .await
            .expect("wamp.session.get");
        let d = r.args.first().and_then(Value::as_dict).expect("details");
        assert_eq!(d.get("tenant"), Some(&Value::Str("acme".into())));
        assert_eq!(d.get("authmethod"), Some(&Value::Str("anonymous".into())));
    });
}

/// Lets a subscriber receive only publications whose topic ends with its tenant.
struct TopicPerTenant;

impl PublishFilter for TopicPerTenant {
    fn allow(&self, p: &Publication, s: &Subscriber) -> bool {
        s.attribute("tenant")
            .is_some_and(|t| p.topic.ends_with(&format!(".{t}")) || p.topic.ends_with(".all"))
    }
}

#[test]
fn embedder_publish_filter_over_a_socket() {
    let router = start_router(RouterConfig {
        publish_filter: Some(SharedPublishFilter(Arc::new(TopicPerTenant))),
        ..Default::default()
    });
    let url = router.endpoints()[0].clone();
    run(move || async move {
        let a = Client::connect(config(&url).hello_detail("tenant", "acme"))
            .await
            .expect("joins");
        let g = Client::connect(config(&url).hello_detail("tenant", "globex"))
            .await
            .expect("joins");
        let (in_a, in_g): (Inbox, Inbox) = (Rc::default(), Rc::default());
        for (c, inbox) in [(&a, &in_a), (&g, &in_g)] {
            let i = inbox.clone();
            c.subscribe(
                "com.t",
                SubscribeOptions {
                    match_policy: Some(switchyard::client::MatchPolicy::Prefix),
                    ..Default::default()
                },
                move |ev| i.borrow_mut().push(ev),
            )
            .await
            .expect("subscribe");
        }
        let publ = Client::connect(config(&url))
            .await
            .expect("publisher joins");
        for (topic, n) in [("com.t.acme", 1), ("com.t.globex", 2), ("com.t.all", 0)] {
            publ.publish(topic, vec![Value::UInt(n)], Dict::new(), ack())
                .await
                .expect("publish")
                .expect("acknowledged");
        }
        wait_until("acme's marker", || firsts(&in_a).last() == Some(&0)).await;
        wait_until("globex's marker", || firsts(&in_g).last() == Some(&0)).await;
        assert_eq!(firsts(&in_a), vec![1, 0]);
        assert_eq!(firsts(&in_g), vec![2, 0]);
    });
}

fn broker_feature(c: &Client, name: &str) -> bool {
    common::router_feature(c, "broker", name)
}

#[test]
fn retained_event_outlives_its_publisher_over_a_socket() {
    let router = start_router(RouterConfig::default());
    let url = router.endpoints()[0].clone();
    run(move || async move {
        let publ = Client::connect(config(&url))
            .await
            .expect("publisher joins");
        assert!(broker_feature(&publ, "event_retention"));
        let retain = PublishOptions {
            retain: Some(true),
            ..ack()
        };
        for n in [1, 2] {
            publ.publish("com.r", vec![Value::UInt(n)], Dict::new(), retain.clone())
                .await
                .expect("publish")
                .expect("acknowledged");
        }
        publ.leave().await.expect("leaves");

        let sub = Client::connect(config(&url))
            .await
            .expect("subscriber joins");
        let inbox: Inbox = Rc::default();
        let i = inbox.clone();
        sub.subscribe(
            "com.r",
            SubscribeOptions {
                get_retained: Some(true),
                ..Default::default()
            },
            move |ev| i.borrow_mut().push(ev),
        )
        .await
        .expect("subscribe");
        wait_until("the retained event", || !inbox.borrow().is_empty()).await;
        // A later live event arrives after it; the retained one came once.
        let marker = Client::connect(config(&url)).await.expect("joins");
        marker
            .publish("com.r", vec![Value::UInt(0)], Dict::new(), ack())
            .await
            .expect("publish")
            .expect("acknowledged");
        wait_until("the live event", || firsts(&inbox).last() == Some(&0)).await;
        assert_eq!(firsts(&inbox), vec![2, 0]);
        let retained: Vec<_> = inbox.borrow().iter().map(|e| e.details.retained).collect();
        assert_eq!(retained, vec![Some(true), None]);
    });
}

#[test]
fn retention_off_is_not_announced() {
    let mut cfg = RouterConfig::default();
    cfg.limits.max_retained_events = 0;
    let router = start_router(cfg);
    let url = router.endpoints()[0].clone();
    run(move || async move {
        let c = Client::connect(config(&url)).await.expect("joins");
        assert!(!broker_feature(&c, "event_retention"));
        assert!(
            !broker_feature(&c, "event_history"),
            "no [[realm.history]] rule: not announced"
        );
        assert!(broker_feature(&c, "subscriber_blackwhite_listing"));
    });
}

#[test]
fn event_history_over_a_socket() {
    use switchyard::routing::history::{HistoryRule, HistoryRules};
    let mut cfg = RouterConfig::default();
    cfg.realms[0].history = Arc::new(
        HistoryRules::new(vec![HistoryRule {
            uri: "com.h".into(),
            policy: switchyard::codec::uri::MatchPolicy::Exact,
            limit: 3,
            max_bytes: 1 << 20,
            max_age: None,
        }])
        .expect("one rule"),
    );
    let router = start_router(cfg);
    let url = router.endpoints()[0].clone();
    run(move || async move {
        let publ = Client::connect(config(&url)).await.expect("joins");
        assert!(broker_feature(&publ, "event_history"));
        for n in 1..=5u64 {
            let mut kwargs = Dict::new();
            kwargs.insert("bin".into(), Value::Bin(vec![0, 255, n as u8].into()));
            publ.publish("com.h", vec![Value::UInt(n)], kwargs, ack())
                .await
                .expect("publish")
                .expect("acknowledged");
        }
        // A JSON reader on another connection: binary comes back as binary.
        let reader = Client::connect(config(&url).serializer(Serializer::Json))
            .await
            .expect("joins");
        let sub = reader
            .subscribe("com.h", SubscribeOptions::default(), |_| {})
            .await
            .expect("subscribe");
        let mut kwargs = Dict::new();
        kwargs.insert("reverse".into(), Value::Bool(true));
        let r = reader
            .call(
                "wamp.subscription.get_events",
                vec![Value::UInt(sub.id)],
                kwargs,
                CallOptions::default(),
            )
            .await
            .expect("get_events");
        let Some(Value::List(events)) = r.args.first() else {
            panic!("a list: {:?}", r.args);
        };
        let got: Vec<(u64, Value)> = events
            .iter()
            .filter_map(Value::as_dict)
            .map(|e| {
                let n = match e.get("args") {
                    Some(Value::List(a)) => a.first().and_then(Value::as_u64).unwrap_or(0),
                    _ => 0,
                };
                let bin = e
                    .get("kwargs")
                    .and_then(Value::as_dict)
                    .and_then(|k| k.get("bin"))
                    .cloned()
                    .unwrap_or(Value::Null);
                (n, bin)
            })
            .collect();
        let want: Vec<(u64, Value)> = [5u64, 4, 3]
            .iter()
            .map(|n| (*n, Value::Bin(vec![0, 255, *n as u8].into())))
            .collect();
        assert_eq!(got, want, "the last three (limit 3), newest first");
    });
}

#[test]
fn revoked_subscription_stops_events_over_a_socket() {
    let router = start_router(RouterConfig::default());
    let url = router.endpoints()[0].clone();
    run(move || async move {
        let (victim, in_victim) = subscriber(&url, "acme", "com.v").await;
        let (_other, in_other) = subscriber(&url, "acme", "com.v").await;
        let admin = Client::connect(config(&url)).await.expect("admin joins");
        assert!(broker_feature(&admin, "subscription_revocation"));
        let id = admin
            .call(
                "wamp.subscription.lookup",
                vec![Value::Str("com.v".into())],
                Dict::new(),
                CallOptions::default(),
            )
            .await
            .expect("lookup")
            .args
            .first()
            .and_then(Value::as_u64)
            .expect("a subscription ID");
        admin
            .call(
                "wamp.subscription.remove_subscriber",
                vec![
                    Value::UInt(id),
                    Value::UInt(victim.session_id().expect("joined")),
                    Value::Str("test".into()),
                ],
                Dict::new(),
                CallOptions::default(),
            )
            .await
            .expect("revoked");
        admin
            .publish("com.v", vec![Value::UInt(0)], Dict::new(), ack())
            .await
            .expect("publish")
            .expect("acknowledged");
        wait_until("the other subscriber's event", || firsts(&in_other) == [0]).await;
        glommio::timer::sleep(Duration::from_millis(50)).await;
        assert!(in_victim.borrow().is_empty(), "revoked: no event");
        assert!(
            victim.is_connected(),
            "revocation does not close the session"
        );
    });
}
