//! The routing core's side of a cluster: node interest announced once by the home shard,
//! publications handed to the cluster layer once with every interested node, publications
//! from other nodes delivered on this node only, a departed node's interest forgotten.

use std::sync::Arc;

use super::harness::*;
use crate::codec::uri::MatchPolicy::{self, Exact, Prefix, Wildcard};
use crate::codec::*;
use crate::routing::cluster::{id_base, subscription_id, ClusterIn, ClusterOut};
use crate::routing::filter::DetailFilter;
use crate::routing::peer::Publication;
use crate::routing::realm::RoutingConfig;

fn node(n: u16) -> RoutingConfig {
    RoutingConfig {
        cluster_node: Some(n),
        ..Default::default()
    }
}

/// The interest changes the shards announced: (shard, policy, pattern, add).
fn interest(c: &Cluster) -> Vec<(usize, MatchPolicy, String, bool)> {
    c.cluster
        .iter()
        .filter_map(|(s, o)| match o {
            ClusterOut::Interest {
                policy,
                pattern,
                add,
            } => Some((*s, *policy, pattern.to_string(), *add)),
            _ => None,
        })
        .collect()
}

/// The publications handed to the cluster layer: (topic, nodes).
fn published(c: &Cluster) -> Vec<(String, Vec<u16>)> {
    c.cluster
        .iter()
        .filter_map(|(_, o)| match o {
            ClusterOut::Publish {
                nodes, publication, ..
            } => {
                let mut n = nodes.clone();
                n.sort();
                Some((publication.topic.to_string(), n))
            }
            _ => None,
        })
        .collect()
}

fn remote(node: u16, policy: MatchPolicy, pattern: &str, add: bool) -> ClusterIn {
    ClusterIn::Interest {
        node,
        policy,
        pattern: Uri::from(pattern),
        add,
    }
}

fn remote_publication(topic: &str, publisher: Id, options: PublishOptions) -> ClusterIn {
    ClusterIn::Publish(Arc::new(Publication {
        id: 777,
        topic: Uri::from(topic),
        publisher,
        publisher_authid: Arc::from("far"),
        publisher_authrole: Arc::from("user"),
        publisher_attributes: Arc::default(),
        filter: DetailFilter::from_options(&options).expect("filter"),
        publisher_trustlevel: None,
        options,
        payload: args(&[9]),
    }))
}

#[test]
fn outside_a_cluster_nothing_is_announced() {
    let mut c = Cluster::new(2);
    c.join(1, 0);
    c.run(1, subscribe(1, "com.a", Exact));
    c.run(
        1,
        publish(2, "com.a", PublishOptions::default(), args(&[1])),
    );
    assert!(c.cluster.is_empty());
}

#[test]
fn the_home_shard_announces_first_and_last_interest_once() {
    let mut c = Cluster::with_config(3, node(1));
    let home = c.home(Exact, "com.a");
    for (id, shard) in [(1, 0), (2, 1), (3, 2), (4, 0)] {
        c.join(id, shard);
        c.run(id, subscribe(1, "com.a", Exact));
    }
    assert_eq!(interest(&c), [(home, Exact, "com.a".into(), true)]);
    for id in [1, 2, 3] {
        c.leave(id);
    }
    assert_eq!(interest(&c).len(), 1, "shard 0 still has session 4");
    c.leave(4);
    assert_eq!(
        interest(&c),
        [
            (home, Exact, "com.a".into(), true),
            (home, Exact, "com.a".into(), false)
        ]
    );
    // Subscription IDs are the same on every node: a function of realm, policy and pattern.
    c.join(5, 1);
    c.run(5, subscribe(1, "com.b", Exact));
    let id = subscribed_id(&c.one(5));
    assert_eq!(id, subscription_id(REALM, Exact, "com.b"));
    let mut other_node = Cluster::with_config(2, node(7));
    other_node.join(5, 0);
    other_node.run(5, subscribe(1, "com.b", Exact));
    assert_eq!(subscribed_id(&other_node.one(5)), id);
    assert_ne!(subscription_id(REALM, Prefix, "com.b"), id);
    assert!(id <= crate::codec::MAX_ID);
    // Registration IDs carry the node ID in their high bits.
    c.run(5, register(2, "com.p", RegisterOptions::default()));
    c.grant_claims();
    let rid = registered_id(&c.one(5));
    assert!(rid > id_base(Some(1)) && rid < id_base(Some(2)), "{rid}");
}

#[test]
fn a_publication_goes_to_the_cluster_once_with_every_interested_node() {
    let mut c = Cluster::with_config(2, node(1));
    for shard in 0..2 {
        c.cluster_in(shard, remote(2, Exact, "com.x.y", true));
        c.cluster_in(shard, remote(3, Prefix, "com.x", true));
        c.cluster_in(shard, remote(4, Wildcard, "com..z", true));
        c.cluster_in(shard, remote(3, Exact, "com.x.y", true));
    }
    c.join(1, 1);
    c.run(
        1,
        publish(1, "com.x.y", PublishOptions::default(), args(&[1])),
    );
    c.run(
        1,
        publish(2, "com.q", PublishOptions::default(), args(&[1])),
    );
    c.run(
        1,
        publish(3, "com.x.z", PublishOptions::default(), args(&[1])),
    );
    assert_eq!(
        published(&c),
        [
            ("com.x.y".into(), vec![2, 3]),
            ("com.x.z".into(), vec![3, 4])
        ]
    );
    // A node's departure, and an interest removal, on every shard.
    for shard in 0..2 {
        c.cluster_in(
            shard,
            ClusterIn::NodeGone {
                node: 3,
                announce: false,
            },
        );
        c.cluster_in(shard, remote(4, Wildcard, "com..z", false));
    }
    c.cluster.clear();
    c.run(
        1,
        publish(4, "com.x.y", PublishOptions::default(), args(&[1])),
    );
    c.run(
        1,
        publish(5, "com.x.z", PublishOptions::default(), args(&[1])),
    );
    assert_eq!(published(&c), [("com.x.y".into(), vec![2])]);
    // The router's own events cross too (meta events are cluster-wide).
    c.cluster_in(0, remote(2, Prefix, "wamp.session", true));
    c.cluster.clear();
    c.join(9, 0);
    assert_eq!(published(&c), [("wamp.session.on_join".into(), vec![2])]);
}

#[test]
fn a_remote_publication_reaches_every_local_shard_and_never_goes_back() {
    let mut c = Cluster::with_config(3, node(1));
    for (id, shard) in [(1, 0), (2, 1), (3, 2)] {
        c.join(id, shard);
        c.run(id, subscribe(1, "com.r", Exact));
        let _ = c.take(id);
    }
    // Other nodes are interested too: a remote publication must still not go back.
    for shard in 0..3 {
        c.cluster_in(shard, remote(2, Exact, "com.r", true));
    }
    c.cluster.clear();
    let opts = PublishOptions {
        exclude: Some(vec![2]),
        ..Default::default()
    };
    c.cluster_in(1, remote_publication("com.r", 4242, opts));
    for id in [1, 3] {
        let m = c.one(id);
        let e = event(&m);
        let arg = first_arg(&e.payload).and_then(|v| v.as_id());
        assert_eq!((e.publication, arg), (777, Some(9)));
    }
    assert!(c.take(2).is_empty(), "excluded by session ID");
    assert!(published(&c).is_empty(), "delivered on this node only");
}

/// The testaments the shards replicated: (session, topics).
fn testaments(c: &Cluster) -> Vec<(Id, Vec<String>)> {
    c.cluster
        .iter()
        .filter_map(|(_, o)| match o {
            ClusterOut::Testaments {
                session,
                testaments,
            } => Some((
                *session,
                testaments.iter().map(|t| t.0.to_string()).collect(),
            )),
            _ => None,
        })
        .collect()
}

#[test]
fn testaments_are_replicated_on_every_change_and_a_dead_nodes_are_published() {
    let mut c = Cluster::with_config(2, node(1));
    c.join(1, 1);
    for (req, topic) in [(1, "com.will.a"), (2, "com.will.b")] {
        let will = vec![Value::from(topic), Value::List(vec![Value::from(1i64)])];
        c.run(
            1,
            call(
                req,
                "wamp.session.add_testament",
                CallOptions::default(),
                Payload::args(will),
            ),
        );
        result(&c.one(1));
    }
    let mut kw = Dict::new();
    kw.insert("scope".into(), Value::from("destroyed"));
    c.run(
        1,
        call(
            3,
            "wamp.session.flush_testaments",
            CallOptions::default(),
            Payload::args_kwargs(vec![], kw),
        ),
    );
    result(&c.one(1));
    // Each list ends with the session's on_leave: a dead node's sessions leave everywhere.
    let leave = || "wamp.session.on_leave".to_string();
    assert_eq!(
        testaments(&c),
        [
            (1, vec![leave()]),
            (1, vec!["com.will.a".to_string(), leave()]),
            (1, vec!["com.will.a".into(), "com.will.b".into(), leave()]),
            (1, vec![leave()]),
        ]
    );
    // Leaving: the copies are forgotten (published here).
    c.leave(1);
    assert_eq!(testaments(&c).last(), Some(&(1, vec![])));
    c.join(1, 1);
    // Outside a cluster nothing is replicated.
    let mut single = Cluster::new(1);
    single.join(1, 0);
    let will = vec![Value::from("com.w"), Value::List(vec![])];
    single.run(
        1,
        call(
            1,
            "wamp.session.add_testament",
            CallOptions::default(),
            Payload::args(will),
        ),
    );
    assert!(single.cluster.is_empty());

    // A dead node's testament handed to this node is published to every local subscriber and
    // to the other interested nodes.
    c.join(2, 0);
    c.run(2, subscribe(1, "com.dead", Exact));
    let _ = c.take(2);
    for shard in 0..2 {
        c.cluster_in(shard, remote(3, Exact, "com.dead", true));
    }
    c.cluster.clear();
    c.cluster_in(
        1,
        ClusterIn::PublishTestament(Box::new((
            Uri::from("com.dead"),
            args(&[5]),
            PublishOptions::default(),
        ))),
    );
    let m = c.one(2);
    assert_eq!(
        first_arg(&event(&m).payload).and_then(|v| v.as_id()),
        Some(5)
    );
    assert_eq!(published(&c), [("com.dead".into(), vec![3])]);
}

// ---- RPC across nodes ---------------------------------------------------------------------

use crate::routing::cluster::{remote_shard, ClaimResult, RemoteCallee};
use crate::routing::peer::{Invoke, PeerMsg};
use crate::routing::session::Features;

/// The claims, callee announcements and releases the shards made: a readable log.
fn registry_log(c: &Cluster) -> Vec<String> {
    c.cluster
        .iter()
        .filter_map(|(s, o)| match o {
            ClusterOut::Claim(c) => {
                Some(format!("{s} claim {} {}", c.procedure, c.invoke.as_str()))
            }
            ClusterOut::Release { procedure, .. } => Some(format!("{s} release {procedure}")),
            ClusterOut::Callee { add, callee } => Some(format!(
                "{s} callee {} {} {}",
                if *add { "+" } else { "-" },
                callee.procedure,
                callee.session
            )),
            _ => None,
        })
        .collect()
}

/// The call-protocol messages handed to the cluster: (node, shard, kind).
fn peer_out(c: &Cluster) -> Vec<(u16, usize, &'static str, PeerMsg)> {
    c.cluster
        .iter()
        .filter_map(|(_, o)| match o {
            ClusterOut::Peer { node, shard, msg } => Some((*node, *shard, kind(msg), msg.clone())),
            _ => None,
        })
        .collect()
}

fn remote_callee(procedure: &str, registration: Id, session: u64, shard: usize) -> RemoteCallee {
    RemoteCallee {
        policy: Exact,
        procedure: Uri::from(procedure),
        registration,
        invoke: InvokePolicy::RoundRobin,
        disclose_caller: false,
        forward_timeout: false,
        created: Arc::from("2026-12-06T00:00:00Z"),
        session,
        shard,
        features: Features::ALL,
    }
}

/// Node `node` is gone, on every shard of `c`.
fn node_gone(c: &mut Cluster, node: u16, announce: bool) {
    for shard in 0..c.shards.len() {
        c.cluster_in(shard, ClusterIn::NodeGone { node, announce });
    }
}

/// Every shard of `c` learns node 3's callee 50 (its shard 1) of com.p, registration 77.
fn node3_callee(c: &mut Cluster) {
    for shard in 0..c.shards.len() {
        c.cluster_in(
            shard,
            ClusterIn::Callee {
                node: 3,
                add: true,
                callee: Box::new(remote_callee("com.p", 77, 50, 1)),
            },
        );
    }
}

#[test]
fn the_first_register_of_a_procedure_on_a_node_waits_for_the_registry() {
    let mut c = Cluster::with_config(2, node(1));
    let home = c.home(Exact, "com.p");
    c.join(1, 0);
    c.join(2, 1);
    let rr = || register(1, "com.p", reg_opts(Exact, InvokePolicy::RoundRobin));
    c.run(1, rr());
    c.run(2, rr());
    // One claim for the node, from the home shard; both REGISTERs wait for its answer.
    assert_eq!(registry_log(&c), [format!("{home} claim com.p roundrobin")]);
    assert!(c.take(1).is_empty() && c.take(2).is_empty());
    c.grant_claims();
    let (a, b) = (registered_id(&c.one(1)), registered_id(&c.one(2)));
    assert_eq!(a, b);
    assert_eq!(
        registry_log(&c)[1..],
        [
            format!("{home} callee + com.p 1"),
            format!("{home} callee + com.p 2")
        ]
    );
    // More callees on this node need no claim; the last local one leaving releases it.
    c.leave(1);
    assert_eq!(registry_log(&c).len(), 4, "{:?}", registry_log(&c));
    c.leave(2);
    assert_eq!(
        registry_log(&c)[3..],
        [
            format!("{home} callee - com.p 1"),
            format!("{home} callee - com.p 2"),
            format!("{home} release com.p")
        ]
    );
}

#[test]
fn a_refused_claim_fails_every_waiting_register() {
    let mut c = Cluster::with_config(2, node(1));
    c.join(1, 0);
    c.join(2, 1);
    c.run(1, register(5, "com.p", RegisterOptions::default()));
    c.run(2, register(6, "com.p", RegisterOptions::default()));
    let (shard, token) = c
        .cluster
        .iter()
        .find_map(|(s, o)| match o {
            ClusterOut::Claim(c) => Some((*s, c.token)),
            _ => None,
        })
        .unwrap();
    c.cluster_in(
        shard,
        ClusterIn::Claimed {
            token,
            result: ClaimResult::Refused("wamp.error.procedure_already_exists"),
        },
    );
    assert_eq!(
        error(&c.one(1)),
        (code::REGISTER, 5, "wamp.error.procedure_already_exists")
    );
    assert_eq!(
        error(&c.one(2)),
        (code::REGISTER, 6, "wamp.error.procedure_already_exists")
    );
    for s in &c.shards {
        assert_eq!(s.dealer().lookup(Exact, "com.p"), None);
    }
    // A callee that leaves while its claim is pending: the grant is given back.
    c.run(1, register(7, "com.q", RegisterOptions::default()));
    c.leave(1);
    c.grant_claims();
    let log = registry_log(&c);
    assert!(
        log.last().is_some_and(|l| l.ends_with("release com.q")),
        "{log:?}"
    );
    for s in &c.shards {
        assert_eq!(s.dealer().lookup(Exact, "com.q"), None);
    }
}

#[test]
fn calls_reach_a_remote_callee_and_its_answer_comes_back() {
    let mut c = Cluster::with_config(2, node(1));
    c.join(1, 0);
    c.join(2, 1);
    // Node 3's callee 50 (its shard 1) provides com.p as registration 77.
    node3_callee(&mut c);
    // A local callee joins the same registration (roundrobin): the registry grants ID 77.
    c.run(
        2,
        register(1, "com.p", reg_opts(Exact, InvokePolicy::RoundRobin)),
    );
    let claim_id = c.cluster.iter().find_map(|(_, o)| match o {
        ClusterOut::Claim(c) => Some(c.registration),
        _ => None,
    });
    assert_eq!(claim_id, Some(77), "the replica's ID is proposed");
    c.grant_claims();
    assert_eq!(registered_id(&c.one(2)), 77);
    // Roundrobin over both nodes' callees: one call goes to node 3, one to session 2.
    c.run(1, call(10, "com.p", CallOptions::default(), args(&[1])));
    c.run(1, call(11, "com.p", CallOptions::default(), args(&[2])));
    let out = peer_out(&c);
    assert_eq!(out.len(), 1, "{out:?}");
    let (n, s, k, msg) = out[0].clone();
    assert_eq!((n, s, k), (3, 1, "Invoke"));
    let PeerMsg::Invoke(inv) = msg else {
        unreachable!()
    };
    assert_eq!((inv.caller, inv.callee, inv.caller_shard), (1, 50, 0));
    let local = c.one(2);
    assert_eq!(invocation(&local).registration, 77);
    // Node 3's result arrives for the caller's shard.
    c.cluster_in(
        0,
        ClusterIn::Peer(PeerMsg::CallResult {
            caller: 1,
            result: Box::new(crate::codec::CallResult {
                request: inv.request,
                details: Default::default(),
                payload: args(&[42]),
            }),
        }),
    );
    let m = c.one(1);
    assert_eq!(
        (result(&m).request, first_arg(&result(&m).payload)),
        (inv.request, Some(Value::from(42i64)))
    );
    // The meta API revokes the remote callee: its node is asked to.
    c.run(
        1,
        call(
            20,
            "wamp.registration.remove_callee",
            CallOptions::default(),
            Payload::args(vec![Value::UInt(77), Value::UInt(50)]),
        ),
    );
    let revoke = peer_out(&c)
        .into_iter()
        .find(|(_, _, k, _)| *k == "RevokeCallee")
        .map(|(n, s, _, _)| (n, s));
    assert_eq!(revoke, Some((3, 1)));
    let _ = c.take(1);
    // The node dies with the call to it in flight: the caller gets wamp.error.canceled and
    // its callee is gone from every shard.
    c.run(1, call(12, "com.p", CallOptions::default(), args(&[3])));
    c.run(1, call(13, "com.p", CallOptions::default(), args(&[4])));
    let _ = c.take(2);
    node_gone(&mut c, 3, false);
    assert_eq!(error(&c.one(1)).2, "wamp.error.canceled");
    for s in &c.shards {
        let r = s.dealer().registrations();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].callees, vec![2]);
    }
}

#[test]
fn a_remote_callers_invocation_answers_go_back_to_its_node() {
    let mut c = Cluster::with_config(2, node(1));
    c.join(2, 1);
    c.run(2, register(1, "com.p", RegisterOptions::default()));
    c.grant_claims();
    let id = registered_id(&c.one(2));
    let invoke = |request| {
        ClusterIn::Peer(PeerMsg::Invoke(Invoke {
            caller: 900,
            caller_shard: remote_shard(4, 2),
            request,
            callee: 2,
            invocation: Box::new(crate::codec::Invocation {
                request: 0,
                registration: id,
                details: Default::default(),
                payload: args(&[1]),
            }),
            forward_progress: true,
            streaming: false,
        }))
    };
    c.cluster_in(1, invoke(5));
    let m = c.one(2);
    let req = invocation(&m).request;
    c.run(2, yield_(req, true, args(&[1])));
    c.run(2, yield_(req, false, args(&[2])));
    let out = peer_out(&c);
    assert_eq!(
        out.iter()
            .map(|(n, s, k, _)| (*n, *s, *k))
            .collect::<Vec<_>>(),
        [(4, 2, "CallResult"), (4, 2, "CallResult")]
    );
    // Node 4 dies while its caller waits: the callee is interrupted.
    c.cluster_in(1, invoke(6));
    let m = c.one(2);
    let req = invocation(&m).request;
    c.cluster_in(
        1,
        ClusterIn::NodeGone {
            node: 4,
            announce: false,
        },
    );
    assert_eq!(interrupt(&c.one(2)).request, req);
    assert_eq!(c.shards[1].dealer().pending_invocations(), 0);
}

#[test]
fn session_queries_gather_every_node() {
    use crate::routing::peer::{MetaAnswer, MetaQuery};
    let mut c = Cluster::with_config(2, node(1));
    c.join(1, 0);
    c.join(2, 1);
    let count = |req| {
        call(
            req,
            "wamp.session.count",
            CallOptions::default(),
            Payload::Empty,
        )
    };
    c.run(1, count(1));
    // The other shard answered; the other nodes have not: no RESULT yet.
    assert!(c.take(1).is_empty());
    let (token, shard) = c
        .cluster
        .iter()
        .find_map(|(_, o)| match o {
            ClusterOut::Query { token, shard, .. } => Some((*token, *shard)),
            _ => None,
        })
        .expect("the query goes to the other nodes");
    assert_eq!(shard, 0);
    c.cluster_in(0, ClusterIn::Expect { token, replies: 2 });
    assert!(c.take(1).is_empty());
    for ids in [vec![100], vec![101, 102]] {
        c.cluster_in(
            0,
            ClusterIn::Peer(PeerMsg::MetaReply {
                token,
                answer: MetaAnswer::Sessions(ids),
            }),
        );
    }
    assert_eq!(first_arg(&result(&c.one(1)).payload), Some(Value::UInt(5)));
    // Cut off from the cluster (no other node answers): this node's sessions.
    c.run(1, count(2));
    let token = c
        .cluster
        .iter()
        .rev()
        .find_map(|(_, o)| match o {
            ClusterOut::Query { token, .. } => Some(*token),
            _ => None,
        })
        .unwrap();
    c.cluster_in(0, ClusterIn::Expect { token, replies: 0 });
    assert_eq!(first_arg(&result(&c.one(1)).payload), Some(Value::UInt(2)));
    // Another node's query: this shard answers about its own sessions, back to that node.
    c.cluster_in(
        1,
        ClusterIn::Peer(PeerMsg::MetaQuery {
            token: 9,
            from: remote_shard(3, 1),
            query: MetaQuery::Sessions { filter: None },
        }),
    );
    let out = peer_out(&c);
    let (n, s, k, msg) = out.last().cloned().expect("a reply");
    assert_eq!((n, s, k), (3, 1, "MetaReply"));
    assert!(matches!(
        msg,
        PeerMsg::MetaReply { token: 9, answer: MetaAnswer::Sessions(ids) } if ids == vec![2]
    ));
}

#[test]
fn a_retained_publication_goes_to_every_node_and_is_kept_where_it_arrives() {
    let mut c = Cluster::with_config(2, node(1));
    c.join(1, 0);
    // No node is interested: a retained publication still goes everywhere.
    let retain = PublishOptions {
        retain: Some(true),
        ..Default::default()
    };
    c.run(1, publish(1, "com.kept", retain.clone(), args(&[7])));
    let everywhere: Vec<bool> = c
        .cluster
        .iter()
        .filter_map(|(_, o)| match o {
            ClusterOut::Publish { everywhere, .. } => Some(*everywhere),
            _ => None,
        })
        .collect();
    assert_eq!(everywhere, [true]);
    // A plain one with no interest does not cross at all.
    c.cluster.clear();
    c.run(
        1,
        publish(2, "com.plain", PublishOptions::default(), args(&[1])),
    );
    assert!(published(&c).is_empty());

    // Another node's retained publication is kept here (on every shard): a subscriber that
    // asks for retained events, on either shard, gets it.
    c.cluster_in(1, remote_publication("com.remote.kept", 555, retain));
    for (id, shard) in [(2, 0), (3, 1)] {
        c.join(id, shard);
        let sub = Message::Subscribe(Subscribe {
            request: 1,
            options: SubscribeOptions {
                get_retained: Some(true),
                ..Default::default()
            },
            topic: Uri::from("com.remote.kept"),
        });
        c.run(id, sub);
        let got = c.take(id);
        assert_eq!(got.len(), 2, "SUBSCRIBED then the retained event: {got:?}");
        assert_eq!(event(&got[1]).publication, 777);
    }
}

#[test]
fn the_announcing_node_publishes_a_dead_nodes_registration_events() {
    for announce in [false, true] {
        let mut c = Cluster::with_config(2, node(1));
        c.join(1, 0);
        for topic in [
            "wamp.registration.on_unregister",
            "wamp.registration.on_delete",
        ] {
            c.run(1, subscribe(1, topic, Exact));
        }
        let _ = c.take(1);
        node3_callee(&mut c);
        node_gone(&mut c, 3, announce);
        // (subscription, arguments) of each meta event received.
        let got: Vec<(Id, Vec<Value>)> = c
            .take(1)
            .iter()
            .map(|m| {
                let e = event(m);
                let args = e.payload.args_values().unwrap().unwrap_or_default();
                (e.subscription, args)
            })
            .collect();
        if announce {
            // on_unregister then on_delete, each [session, registration], once.
            assert_eq!(got.len(), 2, "{got:?}");
            assert_ne!(got[0].0, got[1].0, "one on_unregister, one on_delete");
            for (_, args) in &got {
                assert_eq!(args, &[Value::UInt(50), Value::UInt(77)]);
            }
        } else {
            assert!(got.is_empty(), "{got:?}");
        }
        for s in &c.shards {
            assert!(s.dealer().registrations().is_empty());
        }
    }
}
