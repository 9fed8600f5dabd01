//! Registration revocation (spec `advanced/rpc_registration_revocation.md`) through the meta
//! procedure `wamp.registration.remove_callee(registration, callee, reason?)`, on 1–3 shards.

use super::harness::*;
use crate::codec::uri::MatchPolicy::Exact;
use crate::codec::*;
use crate::routing::session::Features;

const ADMIN: u64 = 1;
const CALLER: u64 = 2;
/// Announces `registration_revocation`.
const TOLD: u64 = 10;
/// Does not.
const SILENT: u64 = 11;

fn cluster(n: usize) -> (Cluster, Id) {
    let mut c = Cluster::new(n);
    c.join(ADMIN, 0);
    c.join(CALLER, n - 1);
    c.join(TOLD, (1 % n).min(n - 1));
    let f = Features {
        callee_registration_revocation: false,
        ..Features::ALL
    };
    c.join_with(SILENT, (2 % n).min(n - 1), "silent", "user", f);
    let mut id = 0;
    for callee in [TOLD, SILENT] {
        c.run(
            callee,
            register(1, "com.p", reg_opts(Exact, InvokePolicy::RoundRobin)),
        );
        id = registered_id(&c.one(callee));
    }
    (c, id)
}

fn remove_callee(request: Id, args: Vec<Value>) -> Message {
    call(
        request,
        "wamp.registration.remove_callee",
        CallOptions::default(),
        Payload::args(args),
    )
}

/// Calls `com.p` and answers from whichever callee is invoked; returns that callee.
fn served_by(c: &mut Cluster, request: Id) -> Option<u64> {
    c.run(
        CALLER,
        call(request, "com.p", CallOptions::default(), args(&[])),
    );
    for callee in [TOLD, SILENT] {
        if let Some(m) = c.take(callee).pop() {
            c.run(callee, yield_(invocation(&m).request, false, args(&[])));
            assert!(matches!(c.one(CALLER), Message::Result(_)));
            return Some(callee);
        }
    }
    assert_eq!(error(&c.one(CALLER)).2, "wamp.error.no_such_procedure");
    None
}

#[test]
fn revoked_callees_get_no_more_calls() {
    for n in 1..=3 {
        let (mut c, id) = cluster(n);
        let reason = Value::from("moving endpoint to other callee");
        c.run(
            ADMIN,
            remove_callee(1, vec![Value::UInt(id), Value::UInt(TOLD), reason]),
        );
        assert!(matches!(c.one(ADMIN), Message::Result(_)), "{n} shards");
        match c.one(TOLD) {
            Message::Unregistered(u) => {
                assert_eq!(u.request, 0);
                let d = u.details.expect("details");
                assert_eq!(d.get("registration"), Some(&Value::UInt(id)));
                assert_eq!(
                    d.get("reason").and_then(Value::as_str),
                    Some("moving endpoint to other callee")
                );
            }
            other => panic!("{n} shards: expected UNREGISTERED, got {other:?}"),
        }
        for request in 1..=4 {
            assert_eq!(served_by(&mut c, request), Some(SILENT), "{n} shards");
        }
        // Without the feature the callee is removed without being told.
        c.run(
            ADMIN,
            remove_callee(2, vec![Value::UInt(id), Value::UInt(SILENT)]),
        );
        assert!(matches!(c.one(ADMIN), Message::Result(_)));
        assert!(c.take(SILENT).is_empty(), "{n} shards: no UNREGISTERED");
        assert_eq!(served_by(&mut c, 9), None, "{n} shards");
        for shard in &c.shards {
            assert!(shard.dealer().registration(id).is_none(), "{n} shards");
        }
        // Both may register again.
        c.run(
            TOLD,
            register(2, "com.p", reg_opts(Exact, InvokePolicy::RoundRobin)),
        );
        assert!(matches!(c.one(TOLD), Message::Registered(_)));
    }
}

#[test]
fn invocation_in_flight_survives_revocation() {
    for n in 1..=3 {
        let (mut c, id) = cluster(n);
        c.run(CALLER, call(1, "com.p", CallOptions::default(), args(&[])));
        let (callee, inv) = [TOLD, SILENT]
            .into_iter()
            .find_map(|s| c.take(s).pop().map(|m| (s, invocation(&m).request)))
            .expect("one INVOCATION");
        c.run(
            ADMIN,
            remove_callee(1, vec![Value::UInt(id), Value::UInt(callee)]),
        );
        assert!(matches!(c.one(ADMIN), Message::Result(_)));
        c.take(callee);
        c.run(callee, yield_(inv, false, args(&[5])));
        assert_eq!(result(&c.one(CALLER)).request, 1, "{n} shards");
        assert!(c.aborts.is_empty());
    }
}

#[test]
fn remove_callee_argument_errors() {
    let (mut c, id) = cluster(2);
    c.run(
        ADMIN,
        remove_callee(1, vec![Value::UInt(id + 1000), Value::UInt(TOLD)]),
    );
    assert_eq!(error(&c.one(ADMIN)).2, "wamp.error.no_such_registration");
    c.run(
        ADMIN,
        remove_callee(2, vec![Value::UInt(id), Value::UInt(CALLER)]),
    );
    assert_eq!(error(&c.one(ADMIN)).2, "wamp.error.no_such_session");
    c.run(ADMIN, remove_callee(3, vec![Value::UInt(id)]));
    assert_eq!(error(&c.one(ADMIN)).2, "wamp.error.invalid_argument");
    let bad_reason = vec![Value::UInt(id), Value::UInt(TOLD), Value::UInt(1)];
    c.run(ADMIN, remove_callee(4, bad_reason));
    assert_eq!(error(&c.one(ADMIN)).2, "wamp.error.invalid_argument");
    // Nothing was revoked.
    assert!(c.take(TOLD).is_empty() && c.take(SILENT).is_empty());
    assert_eq!(
        c.shards[0]
            .dealer()
            .registration(id)
            .map(|r| r.callees.len()),
        Some(2)
    );
}
