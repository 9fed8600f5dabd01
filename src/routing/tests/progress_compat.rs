//! Progressive call results with callees that announce `progressive_call_results` but not
//! `call_canceling` (autobahn-js 22.11, wampy 8): forwarded by default, with the caller's
//! departure or cancel dropping the callee's further results; the spec's rule with
//! `RoutingConfig::strict_progressive_results`.

use std::time::Duration;

use super::harness::*;
use crate::codec::uri::MatchPolicy::Exact;
use crate::codec::*;
use crate::routing::session::Features;
use crate::routing::RoutingConfig;

/// What autobahn-js 22.11 announces as a callee, as the dealer reads it.
const NO_CANCEL: Features = Features {
    callee_call_canceling: false,
    callee_call_timeout: false,
    callee_progressive_call_results: true,
    callee_progressive_call_invocations: false,
    caller_progressive_call_invocations: false,
    callee_registration_revocation: false,
    subscriber_subscription_revocation: false,
    caller_payload_passthru: false,
    callee_payload_passthru: false,
    publisher_payload_passthru: false,
};

fn progress() -> CallOptions {
    CallOptions {
        receive_progress: Some(true),
        ..Default::default()
    }
}

/// Caller 1 on shard 0, callee 2 (no canceling) on the last shard, `com.p` registered.
fn cluster(n: usize, config: RoutingConfig) -> Cluster {
    let mut c = Cluster::with_config(n, config);
    c.join(1, 0);
    c.join_with(2, n - 1, "callee", "user", NO_CANCEL);
    c.run(
        2,
        register(1, "com.p", reg_opts(Exact, InvokePolicy::Single)),
    );
    assert!(matches!(c.one(2), Message::Registered(_)));
    c
}

#[test]
fn progressive_results_reach_the_caller_by_default() {
    for n in 1..=3 {
        let mut c = cluster(n, RoutingConfig::default());
        c.run(1, call(1, "com.p", progress(), args(&[])));
        let m = c.one(2);
        assert_eq!(invocation(&m).details.receive_progress, Some(true));
        let inv = invocation(&m).request;
        for i in 1..=3 {
            c.run(2, yield_(inv, true, args(&[i])));
            let m = c.one(1);
            assert_eq!(result(&m).details.progress, Some(true), "{n} shards");
            assert_eq!(first_arg(&result(&m).payload), Some(Value::from(i)));
        }
        c.run(2, yield_(inv, false, args(&[9])));
        let m = c.one(1);
        assert_eq!(result(&m).details.progress, None);
        assert_eq!(first_arg(&result(&m).payload), Some(Value::from(9i64)));
    }
}

#[test]
fn caller_gone_drops_further_results_without_interrupt() {
    for n in 1..=3 {
        let mut c = cluster(n, RoutingConfig::default());
        c.join(3, 0);
        c.run(1, call(1, "com.p", progress(), args(&[])));
        let inv = invocation(&c.one(2)).request;
        c.run(2, yield_(inv, true, args(&[1])));
        assert!(matches!(c.one(1), Message::Result(_)));
        c.leave(1);
        // No INTERRUPT: the callee did not announce canceling.
        assert!(c.take(2).is_empty(), "{n} shards: nothing for the callee");
        // Its further results are dropped, not a protocol violation.
        c.run(2, yield_(inv, true, args(&[2])));
        c.run(2, yield_(inv, false, args(&[3])));
        assert!(c.aborts.is_empty(), "{n} shards: {:?}", c.aborts);
        assert!(c.take(2).is_empty() && c.take(3).is_empty());
        for shard in &c.shards {
            assert_eq!(shard.dealer().pending_calls(), 0);
            assert_eq!(shard.dealer().pending_invocations(), 0);
        }

        // Cancel and timeout: the caller is answered at once; the callee's answer dropped.
        c.run(3, call(1, "com.p", progress(), args(&[])));
        let inv = invocation(&c.one(2)).request;
        c.run(3, cancel(1, Some(CancelMode::Kill)));
        assert_eq!(
            error(&c.one(3)).2,
            "wamp.error.canceled",
            "kill degrades to skip"
        );
        c.run(2, yield_(inv, true, args(&[1])));
        c.run(2, yield_(inv, false, args(&[2])));
        assert!(c.take(3).is_empty() && c.take(2).is_empty());
        let opts = CallOptions {
            timeout: Some(50),
            ..progress()
        };
        c.run(3, call(2, "com.p", opts, args(&[])));
        let inv = invocation(&c.one(2)).request;
        c.advance(Duration::from_millis(50));
        assert_eq!(error(&c.one(3)).2, "wamp.error.timeout");
        c.run(2, yield_(inv, true, args(&[1])));
        assert!(c.take(3).is_empty() && c.take(2).is_empty());
        assert!(c.aborts.is_empty());
    }
}

#[test]
fn strict_config_follows_the_spec() {
    for n in 1..=3 {
        let config = RoutingConfig {
            strict_progressive_results: true,
            ..RoutingConfig::default()
        };
        let mut c = cluster(n, config);
        c.run(1, call(1, "com.p", progress(), args(&[])));
        let m = c.one(2);
        assert_eq!(invocation(&m).details.receive_progress, None, "{n} shards");
        let inv = invocation(&m).request;
        c.run(2, yield_(inv, true, args(&[1])));
        assert!(
            c.take(1).is_empty(),
            "{n} shards: progressive result dropped"
        );
        c.run(2, yield_(inv, false, args(&[2])));
        let m = c.one(1);
        assert_eq!(result(&m).details.progress, None);
        assert_eq!(first_arg(&result(&m).payload), Some(Value::from(2i64)));

        // A callee with canceling still gets progressive results under the strict rule.
        c.join(4, 0);
        c.run(
            4,
            register(1, "com.q", reg_opts(Exact, InvokePolicy::Single)),
        );
        assert!(matches!(c.one(4), Message::Registered(_)));
        c.run(1, call(2, "com.q", progress(), args(&[])));
        assert_eq!(invocation(&c.one(4)).details.receive_progress, Some(true));
    }
}
