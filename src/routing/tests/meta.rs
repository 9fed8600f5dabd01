//! The meta API in the routing core on 1–3 shards: lifecycle events exactly once and in order
//! for every interleaving, session queries gathered over peer messages (with a timeout in
//! virtual time), kill as an action, testaments.

use std::collections::HashMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::harness::*;
use crate::codec::uri::MatchPolicy::{Exact, Prefix};
use crate::codec::*;
use crate::routing::ids::SessionId;

const SUB_EVENTS: [&str; 4] = [
    "wamp.subscription.on_create",
    "wamp.subscription.on_subscribe",
    "wamp.subscription.on_unsubscribe",
    "wamp.subscription.on_delete",
];
const REG_EVENTS: [&str; 4] = [
    "wamp.registration.on_create",
    "wamp.registration.on_register",
    "wamp.registration.on_unregister",
    "wamp.registration.on_delete",
];

/// A session subscribed to meta topics: subscription ID → topic.
struct Observer {
    id: SessionId,
    topics: HashMap<Id, &'static str>,
}

impl Observer {
    fn new(c: &mut Cluster, id: SessionId, shard: usize, topics: &[&'static str]) -> Self {
        c.join(id, shard);
        let mut map = HashMap::new();
        for (i, t) in topics.iter().enumerate() {
            c.run(id, subscribe(i as Id + 1, t, Exact));
            // Meta events about the observer's own earlier subscriptions may come too.
            let sub = c.take(id).iter().find_map(|m| match m {
                Message::Subscribed(s) => Some(s.subscription),
                _ => None,
            });
            map.insert(sub.expect("SUBSCRIBED"), *t);
        }
        c.take(id);
        Observer { id, topics: map }
    }

    /// The meta events received since the last call: (topic, args).
    fn events(&self, c: &mut Cluster) -> Vec<(&'static str, Vec<Value>)> {
        c.take(self.id)
            .iter()
            .filter_map(|m| match m {
                Message::Event(e) => Some((
                    *self.topics.get(&e.subscription)?,
                    e.payload.args_values().ok().flatten().unwrap_or_default(),
                )),
                _ => None,
            })
            .collect()
    }
}

fn uint(v: &Value) -> u64 {
    v.as_u64().expect("an ID")
}

/// The (kind, session) sequence per subscription/registration ID from meta events, where kind
/// is the last component of the topic (`on_create`, …). `on_create` carries the ID in its
/// details dict.
fn per_id(events: &[(&'static str, Vec<Value>)]) -> HashMap<Id, Vec<(&'static str, SessionId)>> {
    let mut out: HashMap<Id, Vec<_>> = HashMap::new();
    for (topic, args) in events {
        let kind = topic.rsplit('.').next().unwrap_or_default();
        let session = uint(&args[0]);
        let id = match &args[1] {
            Value::Dict(d) => uint(&d["id"]),
            v => uint(v),
        };
        out.entry(id).or_default().push((kind, session));
    }
    out
}

/// What one ID's meta events must look like: one create first, one delete last (all members
/// left), each member's join before its leave, joins and leaves balanced.
fn check_lifetime(id: Id, seq: &[(&str, SessionId)], ctx: &str) {
    let kinds: Vec<&str> = seq.iter().map(|(k, _)| *k).collect();
    let creates = kinds.iter().filter(|k| **k == "on_create").count();
    let deletes = kinds.iter().filter(|k| **k == "on_delete").count();
    assert_eq!(creates, 1, "{ctx}: id {id}: one on_create: {seq:?}");
    assert_eq!(deletes, 1, "{ctx}: id {id}: one on_delete: {seq:?}");
    assert_eq!(kinds.first(), Some(&"on_create"), "{ctx}: id {id}: {seq:?}");
    assert_eq!(kinds.last(), Some(&"on_delete"), "{ctx}: id {id}: {seq:?}");
    let joins: Vec<_> = seq
        .iter()
        .filter(|(k, _)| matches!(*k, "on_subscribe" | "on_register"))
        .collect();
    let leaves: Vec<_> = seq
        .iter()
        .filter(|(k, _)| matches!(*k, "on_unsubscribe" | "on_unregister"))
        .collect();
    assert_eq!(joins.len(), leaves.len(), "{ctx}: id {id}: {seq:?}");
    // The creating session is the first to join.
    assert_eq!(seq[0].1, joins[0].1, "{ctx}: id {id}: {seq:?}");
    for (i, (_, s)) in seq.iter().enumerate() {
        if matches!(seq[i].0, "on_unsubscribe" | "on_unregister") {
            let joined_before = seq[..i]
                .iter()
                .any(|(k, j)| j == s && matches!(*k, "on_subscribe" | "on_register"));
            assert!(joined_before, "{ctx}: id {id}: leave before join: {seq:?}");
        }
    }
    // on_delete names the last session that left.
    assert_eq!(seq.last().map(|x| x.1), leaves.last().map(|x| x.1), "{ctx}");
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Phase {
    Idle,
    Pending,
    Joined(Id),
    Done,
}

/// A subscriber or callee driven at random: `rounds` join/leave rounds, each ending with
/// UNSUBSCRIBE/UNREGISTER or (last round, at random) leaving the realm, possibly while the join
/// is still pending.
struct Actor {
    id: SessionId,
    shard: usize,
    phase: Phase,
    rounds: usize,
    request: Id,
}

/// One random interleaving: returns the IDs the actors were told (SUBSCRIBED/REGISTERED).
fn run_actors(
    c: &mut Cluster,
    rng: &mut StdRng,
    actors: &mut [Actor],
    uri: &str,
    registrations: bool,
) -> Vec<Id> {
    let mut told = Vec::new();
    for _ in 0..100_000 {
        if actors.iter().all(|a| a.phase == Phase::Done) {
            break;
        }
        // Deliver a peer message or move an actor, at random.
        if rng.gen_bool(0.5) && c.step_random(rng) {
            continue;
        }
        let i = rng.gen_range(0..actors.len());
        let a = &mut actors[i];
        a.request += 1;
        match a.phase {
            Phase::Done => {}
            Phase::Idle => {
                let msg = if registrations {
                    register(a.request, uri, reg_opts(Exact, InvokePolicy::RoundRobin))
                } else {
                    subscribe(a.request, uri, Exact)
                };
                c.send(a.id, msg);
                a.phase = Phase::Pending;
            }
            Phase::Pending => {
                let got = c.take(a.id).iter().find_map(|m| match m {
                    Message::Subscribed(s) => Some(s.subscription),
                    Message::Registered(r) => Some(r.registration),
                    _ => None,
                });
                if let Some(id) = got {
                    told.push(id);
                    a.phase = Phase::Joined(id);
                } else if a.rounds == 1 && rng.gen_bool(0.1) {
                    c.leave_unsettled(a.id);
                    a.phase = Phase::Done;
                }
            }
            Phase::Joined(id) => {
                if a.rounds == 1 && rng.gen_bool(0.5) {
                    c.leave_unsettled(a.id);
                    a.phase = Phase::Done;
                } else {
                    let msg = if registrations {
                        unregister(a.request, id)
                    } else {
                        unsubscribe(a.request, id)
                    };
                    c.send(a.id, msg);
                    a.rounds -= 1;
                    a.phase = if a.rounds == 0 {
                        Phase::Done
                    } else {
                        Phase::Idle
                    };
                }
            }
        }
    }
    assert!(
        actors.iter().all(|a| a.phase == Phase::Done),
        "actors stuck"
    );
    c.settle();
    told.sort_unstable();
    told.dedup();
    told
}

/// Two subscribers (or callees) on different shards join and leave in every order the random
/// scheduler finds, over 1–3 shards and URIs with different home shards: every subscription
/// (registration) ID that was ever confirmed gets exactly one on_create, first, and exactly one
/// on_delete, last; no ID that was never confirmed gets any event.
fn lifecycle_exactly_once(registrations: bool) {
    let topics: &[&'static str] = if registrations {
        &REG_EVENTS
    } else {
        &SUB_EVENTS
    };
    for n in 1..=3 {
        for (u, uri) in ["com.t.a", "com.t.b", "com.t.c", "com.t.d"]
            .iter()
            .enumerate()
        {
            for seed in 0..60u64 {
                let ctx = format!("{n} shards, {uri}, seed {seed}");
                let mut c = Cluster::new(n);
                let observer = Observer::new(&mut c, 100, 0, topics);
                let mut rng = StdRng::seed_from_u64(seed * 31 + u as u64);
                let mut actors: Vec<Actor> = (0..2)
                    .map(|i| {
                        let id = 1 + i as SessionId;
                        c.join(id, (1 + i) % n);
                        Actor {
                            id,
                            shard: (1 + i) % n,
                            phase: Phase::Idle,
                            rounds: rng.gen_range(1..=2),
                            request: 0,
                        }
                    })
                    .collect();
                assert!(n == 1 || actors[0].shard != actors[1].shard);
                let told = run_actors(&mut c, &mut rng, &mut actors, uri, registrations);
                let events = observer.events(&mut c);
                let by_id = per_id(&events);
                for (id, seq) in &by_id {
                    assert!(
                        told.contains(id),
                        "{ctx}: events for {id}, never confirmed to a session: {seq:?}"
                    );
                }
                for id in &told {
                    let seq = by_id.get(id).map(Vec::as_slice).unwrap_or_default();
                    check_lifetime(*id, seq, &ctx);
                }
                if registrations {
                    assert!(c
                        .shards
                        .iter()
                        .all(|s| s.dealer().registrations().is_empty()));
                } else {
                    assert!(c
                        .shards
                        .iter()
                        .all(|s| s.broker().lookup(Exact, uri).is_none()));
                }
            }
        }
    }
}

#[test]
fn subscription_lifecycle_exactly_once_in_any_interleaving() {
    lifecycle_exactly_once(false);
}

#[test]
fn registration_lifecycle_exactly_once_in_any_interleaving() {
    lifecycle_exactly_once(true);
}

/// The case: two callees on different shards share a registration; one unregisters,
/// its on_unregister arrives, then the other unregisters: on_delete follows, once — also when
/// the other shards' channels are slow (held, then released in the worst order).
#[test]
fn shared_registration_on_delete_after_second_callee_on_other_shard() {
    for n in 2..=3 {
        let mut c = Cluster::new(n);
        let observer = Observer::new(&mut c, 100, 0, &REG_EVENTS);
        c.join(1, 0);
        c.join(2, 1);
        let opts = reg_opts(Exact, InvokePolicy::RoundRobin);
        c.run(1, register(1, "com.shared", opts.clone()));
        let reg = registered_id(&c.one(1));
        c.run(2, register(1, "com.shared", opts));
        assert_eq!(registered_id(&c.one(2)), reg);
        let home = c.home(Exact, "com.shared");
        c.run(1, unregister(2, reg));
        let first = per_id(&observer.events(&mut c));
        assert_eq!(
            first[&reg],
            vec![
                ("on_create", 1),
                ("on_register", 1),
                ("on_register", 2),
                ("on_unregister", 1)
            ],
            "{n} shards"
        );
        // The second unregisters while its shard's channel to the home is held.
        if home != 1 {
            c.hold(1, home);
        }
        c.send(2, unregister(2, reg));
        assert!(per_id(&observer.events(&mut c)).is_empty() || home == 1);
        c.release(1, home);
        c.settle();
        let rest = per_id(&observer.events(&mut c));
        assert_eq!(
            rest[&reg],
            vec![("on_unregister", 2), ("on_delete", 2)],
            "{n} shards"
        );
        assert!(c
            .shards
            .iter()
            .all(|s| s.dealer().registration(reg).is_none()));
    }
}

/// `created` is the home shard's time, the same on every replica, taken from the time passed in.
#[test]
fn created_time_set_by_home_and_replicated() {
    let mut c = Cluster::new(3);
    c.join(1, 1);
    c.now += Duration::from_secs(3600);
    c.run(1, subscribe(1, "com.created", Prefix));
    let id = subscribed_id(&c.one(1));
    let created: Vec<String> = c
        .shards
        .iter()
        .map(|s| {
            s.broker()
                .subscription(id)
                .expect("replicated")
                .created
                .to_string()
        })
        .collect();
    assert!(created.iter().all(|t| *t == created[0]), "{created:?}");
    assert!(created[0].ends_with('Z') && created[0].contains('T'));
}

fn call_meta(c: &mut Cluster, session: SessionId, request: Id, procedure: &str, a: Vec<Value>) {
    let payload = if a.is_empty() {
        Payload::Empty
    } else {
        Payload::args(a)
    };
    c.run(
        session,
        call(request, procedure, CallOptions::default(), payload),
    );
}

fn result_args(m: &Message) -> Vec<Value> {
    result(m)
        .payload
        .args_values()
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// Session queries gather every shard's sessions over PeerMsg; a shard that does not answer
/// makes the caller wait until the deadline, then `wamp.error.timeout`.
#[test]
fn session_queries_gather_and_time_out() {
    let mut c = Cluster::new(3);
    for (id, shard) in [(1, 0), (2, 1), (3, 2), (4, 2)] {
        c.join(id, shard);
    }
    call_meta(&mut c, 1, 1, "wamp.session.count", vec![]);
    assert_eq!(result_args(&c.one(1)), vec![Value::UInt(4)]);
    call_meta(&mut c, 1, 2, "wamp.session.list", vec![]);
    let Value::List(mut ids) = result_args(&c.one(1)).remove(0) else {
        panic!("a list")
    };
    ids.sort_by_key(|v| v.as_u64());
    assert_eq!(ids, (1..=4).map(Value::UInt).collect::<Vec<_>>());
    call_meta(&mut c, 1, 3, "wamp.session.get", vec![Value::UInt(3)]);
    let d = result_args(&c.one(1));
    let d = d[0].as_dict().expect("details");
    assert_eq!(d["authid"], Value::from("user3"));
    assert_eq!(d["authmethod"], Value::from("ticket"));

    // Shard 2 answers late: no RESULT until the deadline, then the timeout error.
    c.hold(2, 0);
    call_meta(&mut c, 1, 4, "wamp.session.count", vec![]);
    assert!(c.take(1).is_empty(), "waits for shard 2");
    assert!(c.shards[0].next_deadline().is_some());
    c.advance(crate::routing::meta::GATHER_TIMEOUT);
    assert_eq!(error(&c.one(1)), (code::CALL, 4, "wamp.error.timeout"));
    // The late answer is ignored.
    c.release(2, 0);
    c.settle();
    assert!(c.take(1).is_empty());
}

/// `wamp.session.kill` makes the shard that owns the target emit `Action::Kill`; the killed
/// session is no longer listed.
#[test]
fn kill_is_an_action_of_the_owning_shard() {
    let mut c = Cluster::new(2);
    c.join(1, 0);
    c.join(2, 1);
    call_meta(&mut c, 1, 1, "wamp.session.kill", vec![Value::UInt(2)]);
    assert!(result_args(&c.one(1)).is_empty());
    assert_eq!(c.kills, vec![(2, "wamp.close.killed".to_owned())]);
    call_meta(&mut c, 1, 2, "wamp.session.count", vec![]);
    assert_eq!(result_args(&c.one(1)), vec![Value::UInt(1)]);
    call_meta(&mut c, 1, 3, "wamp.session.kill", vec![Value::UInt(2)]);
    assert_eq!(error(&c.one(1)).2, "wamp.error.no_such_session");
}

/// Testaments are published when the session leaves, detached before destroyed, to
/// subscribers on every shard; on_leave follows.
#[test]
fn testaments_then_on_leave() {
    let mut c = Cluster::new(2);
    let observer = Observer::new(&mut c, 100, 1, &["com.will", "wamp.session.on_leave"]);
    c.join(1, 0);
    for (req, scope, arg) in [(1, "destroyed", 1i64), (2, "detached", 2)] {
        let mut kw = Dict::new();
        kw.insert("scope".into(), Value::from(scope));
        let args = vec![Value::from("com.will"), Value::List(vec![Value::from(arg)])];
        c.run(
            1,
            call(
                req,
                "wamp.session.add_testament",
                CallOptions::default(),
                Payload::args_kwargs(args, kw),
            ),
        );
        result(&c.one(1));
    }
    assert_eq!(c.shards[0].testament_count(1), 2);
    c.leave(1);
    let got: Vec<_> = observer
        .events(&mut c)
        .into_iter()
        .map(|(t, a)| (t, a.first().cloned()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("com.will", Some(Value::from(2i64))),
            ("com.will", Some(Value::from(1i64))),
            ("wamp.session.on_leave", Some(Value::UInt(1))),
        ]
    );
}
