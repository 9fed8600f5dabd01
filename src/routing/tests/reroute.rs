//! Call rerouting (spec `advanced/rpc_call_rerouting.md`) on 1, 2 and 3 shards: a callee's
//! `wamp.error.unavailable` sends the call to another callee per the invocation policy, and
//! `wamp.error.no_available_callee` reaches the caller when none is left.

use super::harness::*;
use crate::codec::uri::MatchPolicy::Exact;
use crate::codec::*;

const CALLER: u64 = 1;
const CALLEES: [u64; 3] = [10, 11, 12];

/// A cluster of `n` shards with the caller on shard 0 and three callees spread over the
/// shards, registered in the order of [`CALLEES`] with `policy`.
fn cluster(n: usize, policy: InvokePolicy) -> Cluster {
    let mut c = Cluster::new(n);
    c.join(CALLER, 0);
    for (i, &callee) in CALLEES.iter().enumerate() {
        c.join(callee, (i + 1) % n);
        c.run(callee, register(1, "com.p", reg_opts(Exact, policy)));
        assert!(matches!(c.one(callee), Message::Registered(_)));
    }
    c
}

/// The one callee that received an INVOCATION (checking it carries the caller's argument).
fn invoked(c: &mut Cluster, arg: i64) -> (u64, Id) {
    let mut got = Vec::new();
    for callee in CALLEES {
        for m in c.take(callee) {
            let inv = invocation(&m);
            assert_eq!(first_arg(&inv.payload), Some(Value::from(arg)));
            got.push((callee, inv.request));
        }
    }
    assert_eq!(got.len(), 1, "exactly one INVOCATION: {got:?}");
    got[0]
}

/// Calls once and answers `unavailable` from every callee in turn; returns the callees in the
/// order they were tried. The caller must end with `no_available_callee`.
fn exhaust(c: &mut Cluster, request: Id) -> Vec<u64> {
    c.run(
        CALLER,
        call(request, "com.p", CallOptions::default(), args(&[7])),
    );
    let mut order = Vec::new();
    for _ in CALLEES {
        assert!(c.take(CALLER).is_empty(), "the caller sees no error yet");
        let (callee, inv) = invoked(c, 7);
        order.push(callee);
        c.run(callee, callee_error(inv, "wamp.error.unavailable"));
    }
    assert_eq!(
        error(&c.one(CALLER)),
        (code::CALL, request, "wamp.error.no_available_callee")
    );
    for callee in CALLEES {
        assert!(c.take(callee).is_empty(), "callee {callee}: nothing more");
    }
    for shard in &c.shards {
        assert_eq!(shard.dealer().pending_calls(), 0);
        assert_eq!(shard.dealer().pending_invocations(), 0);
    }
    order
}

#[test]
fn first_and_last_reroute_in_registration_order() {
    for n in 1..=3 {
        let mut c = cluster(n, InvokePolicy::First);
        assert_eq!(exhaust(&mut c, 1), vec![10, 11, 12], "first, {n} shards");
        let mut c = cluster(n, InvokePolicy::Last);
        assert_eq!(exhaust(&mut c, 1), vec![12, 11, 10], "last, {n} shards");
    }
}

#[test]
fn roundrobin_and_random_try_each_callee_once() {
    for n in 1..=3 {
        for policy in [InvokePolicy::RoundRobin, InvokePolicy::Random] {
            let mut c = cluster(n, policy);
            for request in 1..=4 {
                let mut order = exhaust(&mut c, request);
                order.sort_unstable();
                assert_eq!(order, CALLEES, "{policy:?}, {n} shards, call {request}");
            }
        }
    }
}

#[test]
fn rerouted_call_is_answered_by_the_next_callee() {
    for n in 1..=3 {
        let mut c = cluster(n, InvokePolicy::First);
        let opts = CallOptions {
            receive_progress: Some(true),
            ..Default::default()
        };
        c.run(CALLER, call(5, "com.p", opts, args(&[7])));
        let (first, inv) = invoked(&mut c, 7);
        assert_eq!(first, 10);
        c.run(first, callee_error(inv, "wamp.error.unavailable"));
        let (second, inv) = invoked(&mut c, 7);
        assert_eq!(second, 11);
        c.run(second, yield_(inv, true, args(&[1])));
        assert_eq!(result(&c.one(CALLER)).details.progress, Some(true));
        c.run(second, yield_(inv, false, args(&[2])));
        let m = c.one(CALLER);
        assert_eq!(
            (result(&m).request, first_arg(&result(&m).payload)),
            (5, Some(Value::from(2i64)))
        );
        assert!(c.take(10).is_empty() && c.take(12).is_empty());
    }
}

#[test]
fn no_reroute_after_progressive_results_or_for_other_errors() {
    for n in 1..=3 {
        let mut c = cluster(n, InvokePolicy::First);
        let opts = CallOptions {
            receive_progress: Some(true),
            ..Default::default()
        };
        c.run(CALLER, call(1, "com.p", opts, args(&[7])));
        let (callee, inv) = invoked(&mut c, 7);
        c.run(callee, yield_(inv, true, args(&[1])));
        assert!(matches!(c.one(CALLER), Message::Result(_)));
        c.run(callee, callee_error(inv, "wamp.error.unavailable"));
        assert_eq!(error(&c.one(CALLER)).2, "wamp.error.no_available_callee");

        c.run(CALLER, call(2, "com.p", CallOptions::default(), args(&[7])));
        let (callee, inv) = invoked(&mut c, 7);
        c.run(callee, callee_error(inv, "com.myapp.busy"));
        assert_eq!(error(&c.one(CALLER)), (code::CALL, 2, "com.myapp.busy"));
        for callee in CALLEES {
            assert!(c.take(callee).is_empty(), "{n} shards: not rerouted");
        }
    }
}

#[test]
fn single_callee_unavailable_is_no_available_callee() {
    for n in 1..=3 {
        let mut c = Cluster::new(n);
        c.join(CALLER, 0);
        c.join(2, n - 1);
        c.run(
            2,
            register(1, "com.s", reg_opts(Exact, InvokePolicy::Single)),
        );
        assert!(matches!(c.one(2), Message::Registered(_)));
        c.run(CALLER, call(3, "com.s", CallOptions::default(), args(&[7])));
        let inv = invocation(&c.one(2)).request;
        c.run(2, callee_error(inv, "wamp.error.unavailable"));
        assert_eq!(
            error(&c.one(CALLER)),
            (code::CALL, 3, "wamp.error.no_available_callee")
        );
        assert_eq!(c.shards[0].dealer().pending_calls(), 0);
    }
}

#[test]
fn reroute_past_a_callee_that_left_meanwhile() {
    // Three shards: caller on 0, callees 10, 11, 12 on shards 1, 2, 0.
    let mut c = cluster(3, InvokePolicy::First);
    c.run(CALLER, call(1, "com.p", CallOptions::default(), args(&[7])));
    let (first, inv) = invoked(&mut c, 7);
    assert_eq!(first, 10);
    // Callee 11 leaves; the caller's shard has not heard of it when it reroutes, so its
    // replica still picks 11, whose shard answers no_such_procedure.
    c.hold(1, 0);
    c.hold(2, 0);
    c.leave_unsettled(11);
    c.send(first, callee_error(inv, "wamp.error.unavailable"));
    c.settle();
    let errors_before = c.peer_count("CallError");
    c.release(1, 0); // the unavailable error (ahead of any removal on this channel)
    c.settle();
    c.release(2, 0); // the removal, or 11's shard's no_such_procedure
    c.settle();
    let (callee, inv) = invoked(&mut c, 7);
    assert_eq!(callee, 12, "rerouted past the departed callee");
    assert!(c.peer_count("CallError") >= errors_before);
    c.run(callee, yield_(inv, false, args(&[1])));
    assert_eq!(result(&c.one(CALLER)).request, 1);
    assert!(c.take(CALLER).is_empty());
}
