//! Trust levels (spec `advanced/rpc_call_trustlevels.md`,
//! `advanced/pubsub_publication_trustlevels.md`): the caller's or publisher's trust level
//! reaches the callee or subscriber on any shard, and is absent when none is configured.

use super::harness::*;
use crate::codec::uri::MatchPolicy::Exact;
use crate::codec::*;
use crate::routing::session::{Features, SessionRef};

fn join_trusted(c: &mut Cluster, id: u64, shard: usize, trustlevel: Option<u64>) {
    let s = SessionRef::new(id, shard, &format!("user{id}"), "user", Features::ALL)
        .with_trustlevel(trustlevel);
    c.join_ref(s);
}

#[test]
fn invocation_carries_the_callers_trustlevel() {
    for n in 1..=3 {
        let mut c = Cluster::new(n);
        join_trusted(&mut c, 1, 0, Some(2));
        join_trusted(&mut c, 2, 0, None);
        join_trusted(&mut c, 3, n - 1, Some(0));
        c.run(
            3,
            register(1, "com.p", reg_opts(Exact, InvokePolicy::Single)),
        );
        assert!(matches!(c.one(3), Message::Registered(_)));

        c.run(1, call(1, "com.p", CallOptions::default(), args(&[1])));
        let m = c.one(3);
        assert_eq!(invocation(&m).details.trustlevel, Some(2), "{n} shards");
        c.run(2, call(1, "com.p", CallOptions::default(), args(&[1])));
        let m = c.one(3);
        assert_eq!(invocation(&m).details.trustlevel, None, "{n} shards");
        // The callee's own trust level plays no part; 0 (lowest trust) is sent as 0.
        c.run(3, call(1, "com.p", CallOptions::default(), args(&[1])));
        let m = c.one(3);
        assert_eq!(invocation(&m).details.trustlevel, Some(0), "{n} shards");
    }
}

#[test]
fn event_carries_the_publishers_trustlevel() {
    for n in 1..=3 {
        let mut c = Cluster::new(n);
        join_trusted(&mut c, 1, 0, Some(5));
        join_trusted(&mut c, 2, 0, None);
        join_trusted(&mut c, 3, n - 1, None);
        c.run(3, subscribe(1, "com.t", Exact));
        assert!(matches!(c.one(3), Message::Subscribed(_)));

        c.run(
            1,
            publish(1, "com.t", PublishOptions::default(), args(&[1])),
        );
        let m = c.one(3);
        assert_eq!(event(&m).details.trustlevel, Some(5), "{n} shards");
        c.run(
            2,
            publish(2, "com.t", PublishOptions::default(), args(&[1])),
        );
        let m = c.one(3);
        assert_eq!(event(&m).details.trustlevel, None, "{n} shards");
    }
}
