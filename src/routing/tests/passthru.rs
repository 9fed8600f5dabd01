//! Payload passthru mode on 1–2 shards (`payload_passthru_mode.md`): what the spec makes a
//! protocol error, `feature_not_supported` for a peer that did not announce it, and that
//! nothing changes for sessions that do not use it.

use super::harness::*;
use crate::codec::uri::MatchPolicy::Exact;
use crate::codec::*;
use crate::routing::session::Features;

const NO_PPT: Features = Features {
    caller_payload_passthru: false,
    callee_payload_passthru: false,
    publisher_payload_passthru: false,
    ..Features::ALL
};

fn blob() -> Payload {
    Payload::args(vec![Value::Bin(bytes::Bytes::from_static(
        b"\x00sealed\xff",
    ))])
}

fn ppt_call() -> CallOptions {
    CallOptions {
        ppt_scheme: Some("wamp".into()),
        ppt_serializer: Some("cbor".into()),
        ppt_cipher: Some("xsalsa20poly1305".into()),
        ppt_keyid: Some("k1".into()),
        ..Default::default()
    }
}

fn reg(c: &mut Cluster, session: u64, procedure: &str) {
    c.run(
        session,
        register(1, procedure, reg_opts(Exact, InvokePolicy::Single)),
    );
    registered_id(&c.one(session));
}

#[test]
fn unannounced_or_schemeless_passthru_is_a_protocol_violation() {
    for shards in [1, 2] {
        let mut c = Cluster::new(shards);
        c.join_with(1, 0, "a", "user", NO_PPT);
        c.join(2, shards - 1);
        c.join(3, 0);
        reg(&mut c, 2, "com.p");
        // A caller that did not announce payload_passthru_mode.
        c.run(1, call(5, "com.p", ppt_call(), blob()));
        assert!(c.take(2).is_empty(), "{shards} shards: not routed");
        assert_eq!(c.aborts.len(), 1);
        assert_eq!(c.aborts[0].0, 1);
        assert!(
            c.aborts[0].1.contains("payload_passthru_mode"),
            "{:?}",
            c.aborts
        );

        // ppt_* without ppt_scheme, from a session that announced it: CALL and PUBLISH.
        c.aborts.clear();
        let no_scheme = CallOptions {
            ppt_scheme: None,
            ..ppt_call()
        };
        c.run(3, call(6, "com.p", no_scheme, blob()));
        let empty = PublishOptions {
            ppt_scheme: Some(String::new()),
            ppt_serializer: Some("native".into()),
            ..Default::default()
        };
        c.run(2, publish(7, "com.t", empty, blob()));
        let who: Vec<_> = c.aborts.iter().map(|(s, _)| *s).collect();
        assert_eq!(who, vec![3, 2], "{:?}", c.aborts);
        assert!(c.aborts.iter().all(|(_, m)| m.contains("ppt_scheme")));
    }
}

#[test]
fn unannounced_publisher_and_callee_are_refused() {
    let mut c = Cluster::new(2);
    c.join_with(1, 0, "p", "user", NO_PPT);
    c.join_with(2, 1, "callee", "user", NO_PPT);
    c.join(3, 0);
    let ppt = PublishOptions {
        ppt_scheme: Some("mqtt".into()),
        ..Default::default()
    };
    c.run(1, publish(1, "com.t", ppt, blob()));
    assert_eq!(c.aborts.len(), 1);

    // A callee without the feature: the passthru CALL fails for the caller, the callee is
    // never invoked; a plain YIELD with ppt from it is a protocol violation.
    reg(&mut c, 2, "com.q");
    c.run(3, call(9, "com.q", ppt_call(), blob()));
    assert_eq!(
        error(&c.one(3)),
        (code::CALL, 9, "wamp.error.feature_not_supported")
    );
    assert!(c.take(2).is_empty());
    c.run(3, call(10, "com.q", CallOptions::default(), args(&[1])));
    let inv = invocation(&c.one(2)).request;
    c.run(
        2,
        Message::Yield(Box::new(Yield {
            request: inv,
            options: YieldOptions {
                ppt_scheme: Some("x".into()),
                ..Default::default()
            },
            payload: blob(),
        })),
    );
    assert_eq!(c.aborts.len(), 2);
    assert_eq!(c.aborts[1].0, 2);
}

#[test]
fn passthru_result_to_a_caller_without_the_feature_fails_its_call() {
    for shards in [1, 2] {
        let mut c = Cluster::new(shards);
        c.join_with(1, 0, "plain", "user", NO_PPT);
        c.join(2, shards - 1);
        reg(&mut c, 2, "com.r");
        for progress in [false, true] {
            let req = if progress { 21 } else { 20 };
            let opts = CallOptions {
                receive_progress: Some(progress),
                ..Default::default()
            };
            c.run(1, call(req, "com.r", opts, args(&[1])));
            let inv = invocation(&c.one(2)).request;
            c.run(
                2,
                Message::Yield(Box::new(Yield {
                    request: inv,
                    options: YieldOptions {
                        progress: progress.then_some(true),
                        ppt_scheme: Some("x".into()),
                        ..Default::default()
                    },
                    payload: blob(),
                })),
            );
            assert_eq!(
                error(&c.one(1)),
                (code::CALL, req, "wamp.error.feature_not_supported"),
                "{shards} shards, progress {progress}"
            );
            if progress {
                // The callee's final answer finds no call: nothing more for the caller.
                c.run(2, yield_(inv, false, args(&[2])));
                assert!(c.take(1).is_empty());
            }
            assert!(c.aborts.is_empty(), "{:?}", c.aborts);
        }
    }
}

#[test]
fn announced_passthru_still_routes_every_other_call() {
    let mut c = Cluster::new(2);
    c.join(1, 0);
    c.join_with(2, 1, "callee", "user", NO_PPT);
    reg(&mut c, 2, "com.ok");
    // No ppt_* options: a callee without the feature is invoked as before.
    c.run(1, call(1, "com.ok", CallOptions::default(), blob()));
    let inv = invocation(&c.one(2)).request;
    c.run(2, yield_(inv, false, args(&[3])));
    assert_eq!(result(&c.one(1)).request, 1);
    assert!(c.aborts.is_empty());
}
