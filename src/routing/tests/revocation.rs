//! Subscription revocation (`wamp.subscription.remove_subscriber`) on 1–3 shards.

use super::harness::*;
use crate::codec::uri::MatchPolicy::Exact;
use crate::codec::*;
use crate::routing::ids::SessionId;
use crate::routing::session::Features;

fn remove(c: &mut Cluster, caller: SessionId, request: Id, a: Vec<Value>) -> Message {
    c.run(
        caller,
        call(
            request,
            "wamp.subscription.remove_subscriber",
            CallOptions::default(),
            Payload::args(a),
        ),
    );
    c.one(caller)
}

fn sub(c: &mut Cluster, session: SessionId, topic: &str) -> Id {
    c.run(session, subscribe(1, topic, Exact));
    subscribed_id(&c.one(session))
}

#[test]
fn revoked_subscribers_stop_receiving_and_are_told_if_they_announced_it() {
    for shards in 1..=3 {
        let mut c = Cluster::new(shards);
        c.join(1, 0); // admin
        c.join(2, shards - 1); // announced subscription_revocation
        let silent = Features {
            subscriber_subscription_revocation: false,
            ..Features::ALL
        };
        c.join_with(3, shards / 2, "u3", "user", silent);
        c.join(4, 0); // observer of meta events
        c.join(5, shards - 1); // publisher
        let id = sub(&mut c, 2, "com.t");
        assert_eq!(sub(&mut c, 3, "com.t"), id);
        c.run(4, subscribe(9, "wamp.subscription.on_unsubscribe", Exact));
        let meta_sub = subscribed_id(&c.one(4));

        let ok = remove(
            &mut c,
            1,
            10,
            vec![
                Value::UInt(id),
                Value::UInt(2),
                Value::from("no longer authorized"),
            ],
        );
        assert!(matches!(ok, Message::Result(_)), "{shards} shards: {ok:?}");
        match c.one(2) {
            Message::Unsubscribed(u) => {
                assert_eq!(u.request, 0);
                let d = u.details.expect("details");
                assert_eq!(d.get("subscription"), Some(&Value::UInt(id)));
                assert_eq!(d.get("reason"), Some(&Value::from("no longer authorized")));
            }
            other => panic!("expected UNSUBSCRIBED, got {other:?}"),
        }
        let ev = c.one(4);
        assert_eq!(event(&ev).subscription, meta_sub);
        assert_eq!(
            first_arg(&event(&ev).payload),
            Some(Value::UInt(2)),
            "on_unsubscribe names the revoked session"
        );

        // The other one is removed without a message.
        let ok = remove(&mut c, 1, 11, vec![Value::UInt(id), Value::UInt(3)]);
        assert!(matches!(ok, Message::Result(_)));
        assert!(c.take(3).is_empty());
        c.take(4);

        c.run(
            5,
            publish(1, "com.t", PublishOptions::default(), args(&[1])),
        );
        assert!(
            c.take(2).is_empty() && c.take(3).is_empty(),
            "revoked: no more events"
        );

        // The revoked session may not unsubscribe what it no longer holds.
        c.run(2, unsubscribe(2, id));
        let e = c.one(2);
        assert_eq!(error(&e).2, "wamp.error.no_such_subscription");
    }
}

#[test]
fn remove_subscriber_errors() {
    let mut c = Cluster::new(2);
    c.join(1, 0);
    c.join(2, 1);
    let id = sub(&mut c, 2, "com.t");
    let e = remove(&mut c, 1, 1, vec![Value::UInt(id + 1000), Value::UInt(2)]);
    assert_eq!(error(&e).2, "wamp.error.no_such_subscription");
    let e = remove(&mut c, 1, 2, vec![Value::UInt(id), Value::UInt(1)]);
    assert_eq!(
        error(&e).2,
        "wamp.error.no_such_session",
        "1 is not a subscriber"
    );
    let e = remove(&mut c, 1, 3, vec![Value::UInt(id)]);
    assert_eq!(error(&e).2, "wamp.error.invalid_argument");
    let e = remove(
        &mut c,
        1,
        4,
        vec![Value::UInt(id), Value::UInt(2), Value::UInt(7)],
    );
    assert_eq!(
        error(&e).2,
        "wamp.error.invalid_argument",
        "reason must be a string"
    );
    // Still subscribed after the failed attempts.
    c.join(3, 0);
    c.run(
        3,
        publish(1, "com.t", PublishOptions::default(), args(&[1])),
    );
    assert_eq!(c.take(2).len(), 1);
}
