//! RPC on 1, 2 and 3 shards.

use std::time::Duration;

use super::harness::*;
use crate::codec::uri::MatchPolicy::{self, Exact, Prefix, Wildcard};
use crate::codec::*;
use crate::routing::session::Features;

/// Registers and settles; returns the registration ID.
fn reg(c: &mut Cluster, session: u64, req: Id, proc_: &str, opts: RegisterOptions) -> Id {
    c.run(session, register(req, proc_, opts));
    registered_id(&c.one(session))
}

fn single(policy: MatchPolicy) -> RegisterOptions {
    reg_opts(policy, InvokePolicy::Single)
}

fn plain() -> CallOptions {
    CallOptions::default()
}

/// Caller `caller` calls; callee `callee` must get one INVOCATION; returns its request ID.
fn invoke(
    c: &mut Cluster,
    caller: u64,
    req: Id,
    proc_: &str,
    opts: CallOptions,
    callee: u64,
) -> Id {
    c.run(caller, call(req, proc_, opts, args(&[req as i64])));
    let m = c.one(callee);
    invocation(&m).request
}

#[test]
fn single_shard_call_and_result() {
    let mut c = Cluster::new(1);
    c.join(1, 0);
    c.join(2, 0);
    let id = reg(&mut c, 2, 1, "com.add", single(Exact));
    c.run(1, call(7, "com.add", plain(), args(&[2, 3])));
    let m = c.one(2);
    let inv = invocation(&m);
    assert_eq!((inv.request, inv.registration), (1, id));
    assert_eq!(inv.details.caller, None);
    assert_eq!(
        inv.details.procedure, None,
        "exact: no procedure in details"
    );
    c.run(2, yield_(inv.request, false, args(&[5])));
    let m = c.one(1);
    let r = result(&m);
    assert_eq!(r.request, 7);
    assert_eq!(first_arg(&r.payload), Some(Value::from(5i64)));
    assert_eq!(r.details.progress, None);
    assert_eq!(c.shards[0].dealer().pending_calls(), 0);
    assert_eq!(c.shards[0].dealer().pending_invocations(), 0);
}

#[test]
fn registration_errors() {
    let mut c = Cluster::new(2);
    c.join(1, 0);
    c.join(2, 1);
    c.join(3, 1);
    c.run(1, call(1, "com.none", plain(), args(&[])));
    assert_eq!(
        error(&c.one(1)),
        (code::CALL, 1, "wamp.error.no_such_procedure")
    );
    c.run(1, call(2, "com..bad", plain(), args(&[])));
    assert_eq!(error(&c.one(1)).2, "wamp.error.invalid_uri");
    c.run(2, register(1, "com. bad", single(Exact)));
    assert_eq!(
        error(&c.one(2)),
        (code::REGISTER, 1, "wamp.error.invalid_uri")
    );
    c.run(2, register(2, "wamp.session.get", single(Exact)));
    assert_eq!(error(&c.one(2)).2, "wamp.error.invalid_uri", "reserved");

    let id = reg(&mut c, 2, 3, "com.p", single(Exact));
    c.run(3, register(1, "com.p", single(Exact)));
    assert_eq!(
        error(&c.one(3)),
        (code::REGISTER, 1, "wamp.error.procedure_already_exists")
    );
    c.run(2, register(4, "com.p", single(Exact)));
    assert_eq!(error(&c.one(2)).2, "wamp.error.procedure_already_exists");
    c.run(
        3,
        register(2, "com.p", reg_opts(Exact, InvokePolicy::RoundRobin)),
    );
    assert_eq!(error(&c.one(3)).2, "wamp.error.procedure_already_exists");

    reg(
        &mut c,
        2,
        5,
        "com.rr",
        reg_opts(Exact, InvokePolicy::RoundRobin),
    );
    c.run(
        3,
        register(3, "com.rr", reg_opts(Exact, InvokePolicy::Random)),
    );
    assert_eq!(
        error(&c.one(3)).2,
        "wamp.error.procedure_exists_with_different_invocation_policy"
    );

    c.run(3, unregister(4, id));
    assert_eq!(
        error(&c.one(3)),
        (code::UNREGISTER, 4, "wamp.error.no_such_registration")
    );
    c.run(2, unregister(6, id));
    assert!(matches!(c.one(2), Message::Unregistered(u) if u.request == 6));
    c.run(1, call(3, "com.p", plain(), args(&[])));
    assert_eq!(error(&c.one(1)).2, "wamp.error.no_such_procedure");
    for s in &c.shards {
        assert_eq!(
            s.dealer().lookup(Exact, "com.p"),
            None,
            "retired everywhere"
        );
    }
    assert!(c.aborts.is_empty());
}

#[test]
fn callee_on_another_shard_and_same_id_everywhere() {
    let mut c = Cluster::new(3);
    c.join(1, 0);
    c.join(2, 2);
    let id = reg(&mut c, 2, 1, "com.echo", single(Exact));
    for s in &c.shards {
        assert_eq!(s.dealer().lookup(Exact, "com.echo"), Some(id));
        assert_eq!(
            s.dealer().registration(id).map(|r| r.callees.len()),
            Some(1)
        );
    }
    for n in 1..=3 {
        let inv = invoke(&mut c, 1, 10 + n, "com.echo", plain(), 2);
        assert_eq!(inv, n, "invocation IDs are small and sequential per callee");
        c.run(2, yield_(inv, false, args(&[n as i64])));
        let m = c.one(1);
        assert_eq!(result(&m).request, 10 + n);
    }
    assert_eq!(c.peer_count("Invoke"), 3);
    assert_eq!(c.peer_count("CallResult"), 3);
}

#[test]
fn registered_is_withheld_until_every_shard_acked() {
    let mut c = Cluster::new(3);
    let p = "com.wait";
    let home = c.home(Exact, p);
    let s = (home + 1) % 3;
    let x = (home + 2) % 3;
    c.join(1, s);
    c.join(2, x);
    c.hold(x, s);
    c.run(1, register(1, p, single(Exact)));
    assert!(c.take(1).is_empty(), "shard {x} has not acked");
    // x routes calls to the callee already; the INVOCATION must not overtake REGISTERED.
    c.run(2, call(1, p, plain(), args(&[])));
    assert!(c.take(1).is_empty());
    c.release(x, s);
    c.settle();
    let msgs = c.take(1);
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    let id = registered_id(&msgs[0]);
    assert_eq!(invocation(&msgs[1]).registration, id);
}

#[test]
fn round_robin_across_callees_on_two_shards() {
    let mut c = Cluster::new(3);
    c.join(1, 0);
    c.join(2, 1);
    c.join(3, 2);
    let rr = reg_opts(Exact, InvokePolicy::RoundRobin);
    let a = reg(&mut c, 2, 1, "com.lb", rr.clone());
    let b = reg(&mut c, 3, 1, "com.lb", rr);
    assert_eq!(a, b, "shared registration: one ID");
    let mut order = Vec::new();
    for n in 1..=4 {
        c.run(1, call(n, "com.lb", plain(), args(&[])));
        let (two, three) = (c.take(2), c.take(3));
        assert_eq!(two.len() + three.len(), 1);
        order.push(if two.is_empty() { 3 } else { 2 });
    }
    assert_eq!(order, vec![2, 3, 2, 3]);
}

#[test]
fn first_last_and_random_policies() {
    let mut c = Cluster::new(2);
    c.join(1, 0);
    c.join(2, 0);
    c.join(3, 1);
    for (p, invoke) in [
        ("com.first", InvokePolicy::First),
        ("com.last", InvokePolicy::Last),
        ("com.random", InvokePolicy::Random),
    ] {
        reg(&mut c, 2, 1, p, reg_opts(Exact, invoke));
        reg(&mut c, 3, 1, p, reg_opts(Exact, invoke));
    }
    for n in 0..3 {
        c.run(1, call(n + 1, "com.first", plain(), args(&[])));
        assert_eq!((c.take(2).len(), c.take(3).len()), (1, 0));
        c.run(1, call(n + 10, "com.last", plain(), args(&[])));
        assert_eq!((c.take(2).len(), c.take(3).len()), (0, 1));
    }
    let mut hits = [0, 0];
    for n in 0..40 {
        c.run(1, call(n + 100, "com.random", plain(), args(&[])));
        hits[0] += c.take(2).len();
        hits[1] += c.take(3).len();
    }
    assert_eq!(hits[0] + hits[1], 40);
    assert!(hits[0] > 0 && hits[1] > 0, "{hits:?}");
    // When the first callee leaves, `first` moves on to the next one.
    c.leave(2);
    c.run(1, call(500, "com.first", plain(), args(&[])));
    assert_eq!(c.take(3).len(), 1);
}

#[test]
fn pattern_precedence_exact_prefix_wildcard() {
    let mut c = Cluster::new(3);
    c.join(1, 0);
    for (s, shard) in [(11, 0), (12, 1), (13, 2), (14, 1), (15, 2)] {
        c.join(s, shard);
    }
    reg(&mut c, 11, 1, "a1.b2.c3.d4.e55", single(Exact));
    reg(&mut c, 12, 1, "a1.b2.c3", single(Prefix));
    reg(&mut c, 13, 1, "a1.b2.c3.d4", single(Prefix));
    reg(&mut c, 14, 1, "a1.b2..d4.e5", single(Wildcard));
    // The spec's example uses `a1.b2.c33..e5`, but `a1.b2.c3` is a string prefix of every
    // `a1.b2.c33.…` (prefix matching is by string, spec "Prefix Matching"), so the prefix would
    // win; `c77` keeps the example's point (longer first portion wins among wildcards).
    reg(&mut c, 15, 1, "a1.b2.c77..e5", single(Wildcard));
    let cases = [
        ("a1.b2.c3.d4.e55", 11),
        ("a1.b2.c3.d98.e74", 12),
        ("a1.b2.c3.d4.e325", 13),
        ("a1.b2.c55.d4.e5", 14),
        ("a1.b2.c77.d4.e5", 15),
        ("a1.b2.c33.d4.e5", 12),
    ];
    for (n, (uri, callee)) in cases.iter().enumerate() {
        c.run(1, call(n as u64 + 1, uri, plain(), args(&[])));
        let m = c.one(*callee);
        let inv = invocation(&m);
        let want = (*callee != 11).then(|| Uri::from(*uri));
        assert_eq!(inv.details.procedure, want, "{uri}");
    }
    c.run(1, call(98, "a1.b2.c3.d4.e55", plain(), args(&[])));
    assert!(matches!(c.one(11), Message::Invocation(_)));
    c.run(1, call(99, "a2.b2.c2.d2.e2", plain(), args(&[])));
    assert_eq!(error(&c.one(1)).2, "wamp.error.no_such_procedure");
    assert!(c.shards[2].dealer().matching("a1.b2.c3.x").is_some());
    // A URI a pattern matches is still checked (an exact registration's was, at REGISTER).
    for (n, bad) in ["a1.b2.c3..x", "a1.b2.c3.d 4", "a1.b2.c55.d4.e5."]
        .iter()
        .enumerate()
    {
        c.run(1, call(200 + n as u64, bad, plain(), args(&[])));
        assert_eq!(error(&c.one(1)).2, "wamp.error.invalid_uri", "{bad}");
    }
}

#[test]
fn progressive_results_across_shards() {
    let mut c = Cluster::new(2);
    c.join(1, 0);
    c.join(2, 1);
    reg(&mut c, 2, 1, "com.stream", single(Exact));
    let opts = CallOptions {
        receive_progress: Some(true),
        ..Default::default()
    };
    let inv = invoke(&mut c, 1, 5, "com.stream", opts, 2);
    for i in 0..3 {
        c.send(2, yield_(inv, true, args(&[i])));
    }
    c.send(2, yield_(inv, false, args(&[99])));
    c.settle();
    let msgs = c.take(1);
    assert_eq!(msgs.len(), 4);
    for (i, m) in msgs.iter().enumerate() {
        let r = result(m);
        assert_eq!(r.request, 5);
        let last = i == 3;
        assert_eq!(r.details.progress, (!last).then_some(true));
        let want = if last { 99 } else { i as i64 };
        assert_eq!(first_arg(&r.payload), Some(Value::from(want)));
    }
}

#[test]
fn progressive_yield_without_receive_progress_is_dropped() {
    let mut c = Cluster::new(2);
    c.join(1, 0);
    c.join(2, 1);
    reg(&mut c, 2, 1, "com.p", single(Exact));
    c.run(1, call(1, "com.p", plain(), args(&[])));
    let m = c.one(2);
    let inv = invocation(&m);
    assert_eq!(inv.details.receive_progress, None);
    let inv = inv.request;
    c.run(2, yield_(inv, true, args(&[1])));
    assert!(c.take(1).is_empty());
    c.run(2, yield_(inv, false, args(&[2])));
    assert_eq!(result(&c.one(1)).details.progress, None);
    // Callee without the feature never sees receive_progress.
    let f = Features {
        callee_progressive_call_results: false,
        ..Features::ALL
    };
    c.join_with(3, 1, "c", "r", f);
    reg(&mut c, 3, 1, "com.q", single(Exact));
    let opts = CallOptions {
        receive_progress: Some(true),
        ..Default::default()
    };
    c.run(1, call(2, "com.q", opts, args(&[])));
    assert_eq!(invocation(&c.one(3)).details.receive_progress, None);
}

#[test]
fn call_timeout_errors_caller_and_interrupts_callee() {
    let mut c = Cluster::new(2);
    c.join(1, 0);
    c.join(2, 1);
    reg(&mut c, 2, 1, "com.slow", single(Exact));
    let opts = CallOptions {
        timeout: Some(100),
        ..Default::default()
    };
    let inv = invoke(&mut c, 1, 3, "com.slow", opts, 2);
    assert_eq!(
        c.shards[0].next_deadline(),
        Some(c.now + Duration::from_millis(100))
    );
    c.advance(Duration::from_millis(99));
    assert!(c.take(1).is_empty());
    c.advance(Duration::from_millis(1));
    assert_eq!(error(&c.one(1)), (code::CALL, 3, "wamp.error.timeout"));
    let m = c.one(2);
    let i = interrupt(&m);
    assert_eq!(i.request, inv);
    assert_eq!(i.options.mode, Some(CancelMode::KillNoWait));
    assert_eq!(i.options.reason.as_deref(), Some("wamp.error.timeout"));
    assert_eq!(c.shards[0].next_deadline(), None);
    c.run(2, yield_(inv, false, args(&[])));
    assert!(c.take(1).is_empty(), "late YIELD discarded");
    assert!(c.aborts.is_empty());
}

#[test]
fn timeout_restarts_with_each_progressive_result() {
    let mut c = Cluster::new(1);
    c.join(1, 0);
    c.join(2, 0);
    reg(&mut c, 2, 1, "com.p", single(Exact));
    let opts = CallOptions {
        timeout: Some(100),
        receive_progress: Some(true),
        ..Default::default()
    };
    let inv = invoke(&mut c, 1, 1, "com.p", opts, 2);
    c.advance(Duration::from_millis(80));
    c.run(2, yield_(inv, true, args(&[])));
    c.advance(Duration::from_millis(80));
    assert_eq!(
        c.take(1).len(),
        1,
        "only the progressive result, no timeout"
    );
    c.advance(Duration::from_millis(20));
    assert_eq!(error(&c.one(1)).2, "wamp.error.timeout");
}

#[test]
fn timeout_is_forwarded_to_a_callee_that_handles_it() {
    let mut c = Cluster::new(2);
    c.join(1, 0);
    c.join(2, 1);
    let mut opts = single(Exact);
    opts.extra
        .insert("forward_timeout".into(), Value::Bool(true));
    reg(&mut c, 2, 1, "com.t", opts);
    let copts = CallOptions {
        timeout: Some(50),
        ..Default::default()
    };
    c.run(1, call(1, "com.t", copts, args(&[])));
    assert_eq!(invocation(&c.one(2)).details.timeout, Some(50));
    assert_eq!(
        c.shards[0].next_deadline(),
        None,
        "the callee times out, not the dealer"
    );
}

#[test]
fn cancel_skip_answers_now_and_does_not_interrupt() {
    let mut c = Cluster::new(2);
    c.join(1, 0);
    c.join(2, 1);
    reg(&mut c, 2, 1, "com.p", single(Exact));
    let inv = invoke(&mut c, 1, 4, "com.p", plain(), 2);
    c.run(1, cancel(4, Some(CancelMode::Skip)));
    assert_eq!(error(&c.one(1)), (code::CALL, 4, "wamp.error.canceled"));
    assert!(c.take(2).is_empty(), "no INTERRUPT with skip");
    c.run(2, yield_(inv, false, args(&[])));
    assert!(c.take(1).is_empty(), "result discarded");
    assert!(c.aborts.is_empty());
    c.run(1, cancel(4, Some(CancelMode::Skip)));
    assert!(c.take(1).is_empty(), "CANCEL of a finished call is ignored");
}

#[test]
fn cancel_kill_interrupts_and_waits_for_the_callee() {
    let mut c = Cluster::new(2);
    c.join(1, 0);
    c.join(2, 1);
    reg(&mut c, 2, 1, "com.p", single(Exact));
    let inv = invoke(&mut c, 1, 4, "com.p", plain(), 2);
    c.run(1, cancel(4, Some(CancelMode::Kill)));
    assert!(
        c.take(1).is_empty(),
        "kill: no ERROR before the callee answers"
    );
    let m = c.one(2);
    assert_eq!(interrupt(&m).request, inv);
    assert_eq!(interrupt(&m).options.mode, Some(CancelMode::Kill));
    c.run(2, callee_error(inv, "wamp.error.canceled"));
    assert_eq!(error(&c.one(1)), (code::CALL, 4, "wamp.error.canceled"));

    // Default mode is kill; the callee may still finish first and the caller gets RESULT.
    let inv = invoke(&mut c, 1, 5, "com.p", plain(), 2);
    c.run(1, cancel(5, None));
    assert_eq!(interrupt(&c.one(2)).options.mode, Some(CancelMode::Kill));
    c.run(2, yield_(inv, false, args(&[1])));
    assert_eq!(result(&c.one(1)).request, 5);
}

#[test]
fn cancel_killnowait_answers_now_and_interrupts() {
    let mut c = Cluster::new(2);
    c.join(1, 0);
    c.join(2, 1);
    reg(&mut c, 2, 1, "com.p", single(Exact));
    let inv = invoke(&mut c, 1, 4, "com.p", plain(), 2);
    c.run(1, cancel(4, Some(CancelMode::KillNoWait)));
    assert_eq!(error(&c.one(1)).2, "wamp.error.canceled");
    let m = c.one(2);
    assert_eq!(interrupt(&m).options.mode, Some(CancelMode::KillNoWait));
    c.run(2, callee_error(inv, "wamp.error.canceled"));
    assert!(c.take(1).is_empty(), "response to killnowait discarded");
    assert!(c.aborts.is_empty());
}

#[test]
fn cancel_degrades_to_skip_for_a_callee_without_canceling() {
    let mut c = Cluster::new(2);
    c.join(1, 0);
    c.join_with(2, 1, "c", "r", Features::default());
    reg(&mut c, 2, 1, "com.p", single(Exact));
    invoke(&mut c, 1, 4, "com.p", plain(), 2);
    c.run(1, cancel(4, Some(CancelMode::Kill)));
    assert_eq!(error(&c.one(1)).2, "wamp.error.canceled");
    assert!(
        c.take(2).is_empty(),
        "no INTERRUPT to a callee that cannot take it"
    );
    // Timeouts likewise: skip.
    let opts = CallOptions {
        timeout: Some(10),
        ..Default::default()
    };
    invoke(&mut c, 1, 5, "com.p", opts, 2);
    c.advance(Duration::from_millis(10));
    assert_eq!(error(&c.one(1)).2, "wamp.error.timeout");
    assert!(c.take(2).is_empty());
}

#[test]
fn callee_leaving_mid_call_cancels_and_unregisters_everywhere() {
    let mut c = Cluster::new(3);
    c.join(1, 0);
    c.join(3, 2);
    c.join(2, 1);
    let id = reg(&mut c, 2, 1, "com.p", single(Exact));
    invoke(&mut c, 1, 4, "com.p", plain(), 2);
    invoke(&mut c, 3, 9, "com.p", plain(), 2);
    c.leave(2);
    let m = c.one(1);
    assert_eq!(error(&m), (code::CALL, 4, "wamp.error.canceled"));
    assert_eq!(error(&c.one(3)), (code::CALL, 9, "wamp.error.canceled"));
    for s in &c.shards {
        assert!(s.dealer().registration(id).is_none());
        assert_eq!(s.dealer().pending_calls(), 0);
    }
    c.run(1, call(5, "com.p", plain(), args(&[])));
    assert_eq!(error(&c.one(1)).2, "wamp.error.no_such_procedure");
}

#[test]
fn caller_leaving_mid_call_interrupts_and_drops_late_yields() {
    let mut c = Cluster::new(2);
    c.join(1, 0);
    c.join(2, 1);
    reg(&mut c, 2, 1, "com.p", single(Exact));
    let inv = invoke(&mut c, 1, 4, "com.p", plain(), 2);
    c.leave(1);
    let m = c.one(2);
    assert_eq!(interrupt(&m).request, inv);
    assert_eq!(interrupt(&m).options.mode, Some(CancelMode::KillNoWait));
    c.run(2, yield_(inv, false, args(&[])));
    assert!(c.aborts.is_empty(), "late YIELD is not a violation");
    assert_eq!(c.shards[1].dealer().pending_invocations(), 0);
    assert_eq!(
        c.peer_count("CallResult"),
        0,
        "nothing sent for a gone caller"
    );
}

#[test]
fn yield_for_an_unknown_invocation() {
    let mut c = Cluster::new(1);
    c.join(2, 0);
    c.join(3, 0);
    c.run(3, yield_(1, false, args(&[])));
    assert_eq!(c.aborts.len(), 1, "never issued: protocol violation");
    assert_eq!(c.aborts[0].0, 3);
    c.join(1, 0);
    reg(&mut c, 2, 1, "com.p", single(Exact));
    let inv = invoke(&mut c, 1, 1, "com.p", plain(), 2);
    c.run(2, yield_(inv, false, args(&[])));
    c.take(1);
    c.run(2, yield_(inv, false, args(&[])));
    c.run(2, callee_error(inv, "com.err"));
    assert_eq!(c.aborts.len(), 1, "issued and finished: ignored");
    assert!(c.take(1).is_empty());
    c.run(2, yield_(inv + 1, false, args(&[])));
    assert_eq!(c.aborts.len(), 2);
}

#[test]
fn callee_error_is_forwarded_to_the_caller() {
    let mut c = Cluster::new(2);
    c.join(1, 0);
    c.join(2, 1);
    reg(&mut c, 2, 1, "com.p", single(Exact));
    let inv = invoke(&mut c, 1, 8, "com.p", plain(), 2);
    c.run(2, callee_error(inv, "com.myapp.error"));
    assert_eq!(error(&c.one(1)), (code::CALL, 8, "com.myapp.error"));
}

#[test]
fn caller_identification() {
    let mut c = Cluster::new(2);
    c.join_with(1, 0, "alice", "admin", Features::ALL);
    c.join(2, 1);
    reg(&mut c, 2, 1, "com.p", single(Exact));
    let opts = CallOptions {
        disclose_me: Some(true),
        ..Default::default()
    };
    c.run(1, call(1, "com.p", opts, args(&[])));
    let m = c.one(2);
    let d = &invocation(&m).details;
    assert_eq!(d.caller, Some(IdField(1)));
    assert_eq!(d.caller_authid.as_deref(), Some("alice"));
    assert_eq!(d.caller_authrole.as_deref(), Some("admin"));
    c.run(1, call(2, "com.p", plain(), args(&[])));
    assert_eq!(invocation(&c.one(2)).details.caller, None);
    // REGISTER.Options.disclose_caller discloses without the caller asking.
    let mut ro = single(Exact);
    ro.disclose_caller = Some(true);
    reg(&mut c, 2, 2, "com.q", ro);
    c.run(1, call(3, "com.q", plain(), args(&[])));
    assert_eq!(invocation(&c.one(2)).details.caller, Some(IdField(1)));
}

#[test]
fn progressive_call_invocations_stream_to_the_same_callee() {
    let mut c = Cluster::new(3);
    c.join(1, 0);
    c.join(2, 1);
    c.join(3, 2);
    let rr = reg_opts(Exact, InvokePolicy::RoundRobin);
    reg(&mut c, 2, 1, "com.up", rr.clone());
    reg(&mut c, 3, 1, "com.up", rr);
    let chunk = |progress: bool| CallOptions {
        progress: progress.then_some(true),
        ..Default::default()
    };
    c.send(1, call(1, "com.up", chunk(true), args(&[1])));
    c.send(1, call(1, "com.up", chunk(true), args(&[2])));
    c.send(1, call(1, "com.up", chunk(false), args(&[3])));
    c.settle();
    assert!(
        c.take(3).is_empty(),
        "all chunks go to the first callee picked"
    );
    let msgs = c.take(2);
    assert_eq!(msgs.len(), 3);
    let ids: Vec<_> = msgs.iter().map(|m| invocation(m).request).collect();
    assert!(ids.iter().all(|i| *i == ids[0]), "same invocation ID");
    let progress: Vec<_> = msgs
        .iter()
        .map(|m| invocation(m).details.progress)
        .collect();
    assert_eq!(progress, vec![Some(true), Some(true), None]);
    c.run(2, yield_(ids[0], false, args(&[6])));
    assert_eq!(result(&c.one(1)).request, 1);
    // A late continuation after completion is discarded, not a new call.
    c.run(1, call(1, "com.up", chunk(false), args(&[4])));
    assert!(c.take(1).is_empty() && c.take(2).is_empty() && c.take(3).is_empty());
    assert!(c.aborts.is_empty());
}

#[test]
fn progressive_call_invocation_feature_checks() {
    let mut c = Cluster::new(2);
    let no_pci = Features {
        callee_progressive_call_invocations: false,
        caller_progressive_call_invocations: false,
        ..Features::ALL
    };
    c.join(1, 0);
    c.join_with(2, 1, "c", "r", no_pci);
    c.join_with(3, 0, "c", "r", no_pci);
    reg(&mut c, 2, 1, "com.p", single(Exact));
    let opts = CallOptions {
        progress: Some(true),
        ..Default::default()
    };
    c.run(1, call(1, "com.p", opts.clone(), args(&[])));
    assert_eq!(error(&c.one(1)).2, "wamp.error.feature_not_supported");
    // The caller's final chunk must not become a fresh call.
    c.run(1, call(1, "com.p", plain(), args(&[])));
    assert!(c.take(1).is_empty() && c.take(2).is_empty());
    // A caller that did not announce the feature commits a protocol violation.
    c.run(3, call(1, "com.p", opts, args(&[])));
    assert_eq!(c.aborts.len(), 1);
    assert_eq!(c.aborts[0].0, 3);
    // Re-using the ID of a running non-progressive call, likewise.
    c.join(4, 0);
    c.join(5, 1);
    reg(&mut c, 5, 1, "com.q", single(Exact));
    invoke(&mut c, 4, 7, "com.q", plain(), 5);
    c.run(4, call(7, "com.q", plain(), args(&[])));
    assert_eq!(c.aborts.len(), 2);
    assert_eq!(c.aborts[1].0, 4);
}

#[test]
fn pending_call_limit_answers_an_error() {
    let config = crate::routing::RoutingConfig {
        max_pending_calls_per_session: 2,
        ..Default::default()
    };
    let mut c = Cluster::with_config(2, config);
    c.join(1, 0);
    c.join(2, 1);
    reg(&mut c, 2, 1, "com.p", single(Exact));
    invoke(&mut c, 1, 1, "com.p", plain(), 2);
    invoke(&mut c, 1, 2, "com.p", plain(), 2);
    c.run(1, call(3, "com.p", plain(), args(&[])));
    assert_eq!(
        error(&c.one(1)),
        (code::CALL, 3, "switchyard.error.limit_exceeded")
    );
}

#[test]
fn call_racing_an_unregister_is_answered() {
    let mut c = Cluster::new(3);
    c.join(1, 0);
    c.join(2, 1);
    let id = reg(&mut c, 2, 1, "com.p", single(Exact));
    // Shard 0 has not heard of the unregistration when it routes the call.
    let home = c.home(Exact, "com.p");
    if home != 0 {
        c.hold(home, 0);
    }
    c.run(2, unregister(2, id));
    assert!(matches!(c.one(2), Message::Unregistered(_)));
    c.run(1, call(1, "com.p", plain(), args(&[])));
    assert!(c.take(2).is_empty(), "no INVOCATION after UNREGISTERED");
    c.release(home, 0);
    c.settle();
    assert_eq!(error(&c.one(1)).2, "wamp.error.no_such_procedure");
}

#[test]
fn client_error_for_a_non_invocation_is_a_protocol_violation() {
    let mut c = Cluster::new(1);
    c.join(1, 0);
    c.run(
        1,
        Message::Error(Box::new(Error {
            request_type: code::EVENT,
            request: 1,
            details: Dict::new(),
            error: Uri::from("com.x"),
            payload: Payload::Empty,
        })),
    );
    c.run(
        1,
        Message::Result(Box::new(CallResult {
            request: 1,
            details: Default::default(),
            payload: Payload::Empty,
        })),
    );
    assert_eq!(c.aborts.len(), 2);
}

/// Three shards: the callee's shard `s`, the home `h` of the procedure, and `x`. Holding h→s
/// keeps the registration pending on `s` after `x` acked, so calls routed by `x` queue on `s`.
fn pending_registration_setup(c: &mut Cluster, p: &str) -> (usize, usize, usize) {
    let h = c.home(Exact, p);
    let (s, x) = ((h + 1) % 3, (h + 2) % 3);
    c.join(1, x);
    c.join(2, s);
    c.hold(h, s);
    c.run(2, register(1, p, single(Exact)));
    assert!(c.take(2).is_empty());
    (h, s, x)
}

#[test]
fn invocations_and_chunks_queue_behind_a_pending_registered() {
    let mut c = Cluster::new(3);
    let p = "com.pending";
    let (h, s, _) = pending_registration_setup(&mut c, p);
    let chunk = |progress: bool| CallOptions {
        progress: progress.then_some(true),
        ..Default::default()
    };
    c.run(1, call(1, p, chunk(true), args(&[1])));
    c.run(1, call(1, p, chunk(false), args(&[2])));
    assert!(c.take(2).is_empty(), "nothing before REGISTERED");
    c.release(h, s);
    c.settle();
    let msgs = c.take(2);
    assert_eq!(msgs.len(), 3, "{msgs:?}");
    let id = registered_id(&msgs[0]);
    let (a, b) = (invocation(&msgs[1]), invocation(&msgs[2]));
    assert_eq!((a.registration, a.request, b.request), (id, 1, 1));
    assert_eq!((a.details.progress, b.details.progress), (Some(true), None));
}

#[test]
fn canceling_a_queued_invocation() {
    let mut c = Cluster::new(3);
    let p = "com.pending";
    let (h, s, _) = pending_registration_setup(&mut c, p);
    c.run(1, call(1, p, plain(), args(&[])));
    c.run(1, cancel(1, Some(CancelMode::Kill)));
    assert_eq!(error(&c.one(1)), (code::CALL, 1, "wamp.error.canceled"));
    c.run(1, call(2, p, plain(), args(&[])));
    c.run(1, cancel(2, Some(CancelMode::Skip)));
    assert_eq!(error(&c.one(1)).2, "wamp.error.canceled");
    c.release(h, s);
    c.settle();
    registered_id(&c.one(2)); // and no INVOCATION
    assert_eq!(c.shards[s].dealer().pending_invocations(), 0);
}

/// Payload Passthru Mode (advanced/payload_passthru_mode.md): the `ppt_*` options of CALL and
/// YIELD reach INVOCATION and RESULT unchanged, with the `[Payload|binary]` arguments.
#[test]
fn ppt_options_and_binary_payload_pass_through() {
    let mut c = Cluster::new(2);
    c.join(1, 0);
    c.join(2, 1);
    reg(&mut c, 2, 1, "com.ppt", single(Exact));
    let blob = Value::Bin(bytes::Bytes::from_static(b"\x00\x01opaque\xff"));
    let opts = CallOptions {
        ppt_scheme: Some("x_custom".into()),
        ppt_serializer: Some("cbor".into()),
        ppt_cipher: Some("xsalsa20poly1305".into()),
        ppt_keyid: Some("key-1".into()),
        ..Default::default()
    };
    c.run(
        1,
        call(5, "com.ppt", opts, Payload::args(vec![blob.clone()])),
    );
    let m = c.one(2);
    let inv = invocation(&m);
    assert_eq!(inv.details.ppt_scheme.as_deref(), Some("x_custom"));
    assert_eq!(inv.details.ppt_serializer.as_deref(), Some("cbor"));
    assert_eq!(inv.details.ppt_cipher.as_deref(), Some("xsalsa20poly1305"));
    assert_eq!(inv.details.ppt_keyid.as_deref(), Some("key-1"));
    assert_eq!(first_arg(&inv.payload), Some(blob.clone()));
    let y = Message::Yield(Box::new(Yield {
        request: inv.request,
        options: YieldOptions {
            ppt_scheme: Some("x_custom".into()),
            ppt_keyid: Some("key-2".into()),
            ..Default::default()
        },
        payload: Payload::args(vec![blob.clone()]),
    }));
    c.run(2, y);
    let m = c.one(1);
    let r = result(&m);
    assert_eq!(r.request, 5);
    assert_eq!(r.details.ppt_scheme.as_deref(), Some("x_custom"));
    assert_eq!(r.details.ppt_keyid.as_deref(), Some("key-2"));
    assert_eq!(r.details.ppt_serializer, None);
    assert_eq!(first_arg(&r.payload), Some(blob));
}

#[test]
fn answered_calls_are_timed_on_the_callers_shard() {
    let mut c = Cluster::new(2);
    c.join(1, 0);
    c.join(2, 1);
    reg(&mut c, 2, 1, "com.p", single(Exact));
    let times = |c: &mut Cluster, shard: usize| {
        let mut v = Vec::new();
        c.shards[shard].drain_call_times(|d| v.push(d));
        v
    };
    let inv = invoke(&mut c, 1, 4, "com.p", plain(), 2);
    c.advance(Duration::from_millis(30));
    c.run(2, yield_(inv, false, args(&[])));
    let _ = c.one(1);
    assert_eq!(
        times(&mut c, 1),
        Vec::<Duration>::new(),
        "the callee's shard times nothing"
    );
    let t = times(&mut c, 0);
    assert_eq!(t.len(), 1);
    assert!(t[0] >= Duration::from_millis(30), "{t:?}");
    assert_eq!(times(&mut c, 0), Vec::<Duration>::new(), "handed over once");

    // A progressive result is not the end; the router's own answers and a caller that left
    // are not timed.
    let opts = CallOptions {
        receive_progress: Some(true),
        ..plain()
    };
    let inv = invoke(&mut c, 1, 5, "com.p", opts, 2);
    c.run(2, yield_(inv, true, args(&[])));
    let _ = c.one(1);
    assert_eq!(times(&mut c, 0), Vec::<Duration>::new());
    c.run(2, yield_(inv, false, args(&[])));
    let _ = c.one(1);
    assert_eq!(times(&mut c, 0).len(), 1);
    c.run(1, call(6, "com.none", plain(), args(&[])));
    let _ = c.one(1);
    assert_eq!(times(&mut c, 0), Vec::<Duration>::new());
    invoke(&mut c, 1, 7, "com.p", plain(), 2);
    c.leave(1);
    let _ = c.take(2);
    assert_eq!(times(&mut c, 0), Vec::<Duration>::new());
}
