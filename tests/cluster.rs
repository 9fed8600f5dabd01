//! Cluster mode end to end: real `nats-server` processes (one, or three routed into a NATS
//! cluster), several real `switchyard` processes joined over them with `--cluster`, and WAMP
//! clients (the crate's tokio client over RawSocket) on different nodes.
//!
//! Every port is picked by the servers themselves (`127.0.0.1:0`, nats `-1`); every wait is
//! bounded; every process is killed on drop (and with the test process, PR_SET_PDEATHSIG).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{wait_for, NatsServer, RouterProcess, Scrape};
use switchyard::client::tokio::Client;
use switchyard::client::{CallError, ClientConfig, Event, Serializer, Yield};
use switchyard::codec::uri::MatchPolicy;
use switchyard::codec::{
    CallOptions, CancelMode, Dict, InvokePolicy, PublishOptions, RegisterOptions, SubscribeOptions,
    Value,
};

/// Bound of every wait for the cluster to converge (joins, interest, failure detection).
const CONVERGE: Duration = Duration::from_secs(10);
/// The node timeout the tests run with (a killed node is gone after this, plus a heartbeat).
const NODE_TIMEOUT_MS: u64 = 1000;

struct Node {
    id: u16,
    process: RouterProcess,
}

impl Node {
    fn start(id: u16, nats: &str) -> Node {
        Self::start_with(id, nats, &[])
    }

    fn start_with(id: u16, nats: &str, extra: &[&str]) -> Node {
        let id_s = id.to_string();
        let timeout = NODE_TIMEOUT_MS.to_string();
        let mut args = vec![
            "--no-ws",
            "--rs",
            "127.0.0.1:0",
            "--metrics",
            "127.0.0.1:0",
            "--shards",
            "2",
            "--cluster",
            nats,
            "--node-id",
            &id_s,
            "--cluster-node-timeout-ms",
            &timeout,
        ];
        args.extend_from_slice(extra);
        let process = RouterProcess::start(&args);
        Node { id, process }
    }

    fn url(&self) -> String {
        format!("rs://{}", self.process.endpoint("rs").addr())
    }

    fn metrics_addr(&self) -> std::net::SocketAddr {
        let e = self
            .process
            .endpoints
            .iter()
            .find_map(|e| e.url.strip_prefix("metrics http://"))
            .expect("the node serves metrics");
        e.parse().expect("metrics address")
    }

    fn scrape(&self) -> Scrape {
        Scrape::get(self.metrics_addr())
    }

    fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.scrape().sum(name, labels)
    }

    /// Publications this node sent to NATS (one per interested node).
    fn publications_sent(&self) -> f64 {
        self.metric(
            "switchyard_cluster_messages_sent_total",
            &[("kind", "publication")],
        )
    }

    fn publications_received(&self) -> f64 {
        self.metric(
            "switchyard_cluster_messages_received_total",
            &[("kind", "publication")],
        )
    }

    /// Waits until this node sees `n` other nodes alive.
    fn wait_nodes(&self, n: usize) {
        let ok = wait_for(CONVERGE, || {
            (self.metric("switchyard_cluster_nodes", &[]) as usize == n).then_some(())
        });
        assert!(
            ok.is_some(),
            "node {} did not see {n} other nodes within {CONVERGE:?}",
            self.id
        );
    }

    /// GET `path` on the metrics listener: (status, body).
    fn http(&self, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(self.metrics_addr()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).ok();
        write!(s, "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").expect("send");
        let mut r = String::new();
        let _ = s.read_to_string(&mut r);
        let status = r
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let body = r.split_once("\r\n\r\n").map_or("", |x| x.1).to_owned();
        (status, body)
    }
}

/// Three NATS servers routed into one NATS (and JetStream) cluster.
fn three_nats() -> [NatsServer; 3] {
    let v = NatsServer::start_cluster(3);
    match <[NatsServer; 3]>::try_from(v) {
        Ok(a) => a,
        Err(_) => unreachable!("start_cluster(3) starts three"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

async fn connect(node: &Node) -> Client {
    let cfg = ClientConfig::new(node.url(), "realm1")
        .serializer(Serializer::MsgPack)
        .connect_timeout(Duration::from_secs(5));
    Client::connect(cfg).await.expect("connect")
}

/// What one subscription received: (first argument, details) per event.
type Inbox = Arc<Mutex<Vec<Event>>>;

async fn subscribe(c: &Client, topic: &str, policy: MatchPolicy) -> Inbox {
    let inbox: Inbox = Arc::default();
    let i = inbox.clone();
    let opts = SubscribeOptions {
        match_policy: Some(policy),
        ..Default::default()
    };
    c.subscribe(topic, opts, move |e| i.lock().unwrap().push(e))
        .await
        .expect("subscribe");
    inbox
}

fn first_arg(e: &Event) -> Value {
    e.args.first().cloned().unwrap_or(Value::Null)
}

/// The integer first arguments received, probes left out.
fn numbers(inbox: &Inbox) -> Vec<i64> {
    inbox
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match first_arg(e) {
            Value::Int(i) => Some(i),
            Value::UInt(u) => i64::try_from(u).ok(),
            _ => None,
        })
        .collect()
}

fn texts(inbox: &Inbox) -> Vec<String> {
    inbox
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match first_arg(e) {
            Value::Str(s) => Some(s),
            _ => None,
        })
        .filter(|s| s != "probe")
        .collect()
}

fn got_probe(inbox: &Inbox) -> bool {
    inbox
        .lock()
        .unwrap()
        .iter()
        .any(|e| first_arg(e) == Value::from("probe"))
}

/// Publishes probes on `topic` from `publisher` until every inbox got one (a subscription
/// made on another node is live once its interest has crossed the cluster).
async fn until_live(publisher: &Client, topic: &str, inboxes: &[&Inbox]) {
    let deadline = Instant::now() + CONVERGE;
    loop {
        publisher
            .publish(
                topic,
                vec![Value::from("probe")],
                Dict::new(),
                PublishOptions::default(),
            )
            .await
            .expect("publish probe");
        tokio::time::sleep(Duration::from_millis(50)).await;
        if inboxes.iter().all(|i| got_probe(i)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "subscriptions on other nodes not live within {CONVERGE:?}"
        );
    }
}

/// Waits until `f` holds (bounded by [`CONVERGE`]).
async fn until(what: &str, f: impl FnMut() -> bool) {
    until_within(CONVERGE, what, f).await;
}

/// Waits until `f` holds, for at most `bound`.
async fn until_within(bound: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + bound;
    while !f() {
        assert!(Instant::now() < deadline, "{what}: not within {bound:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The WAMP error URI of a failed call (panics on anything else).
fn wamp_error<T: std::fmt::Debug>(r: Result<T, switchyard::client::Error>) -> String {
    match r {
        Err(switchyard::client::Error::Wamp(w)) => w.error.to_string(),
        other => panic!("expected a WAMP error, got {other:?}"),
    }
}

fn rr() -> RegisterOptions {
    RegisterOptions {
        invoke: Some(InvokePolicy::RoundRobin),
        ..Default::default()
    }
}

/// Registers `procedure` on `c` answering `[name]` (the callee's node).
async fn register_named(c: &Client, procedure: &str, opts: RegisterOptions, name: &'static str) {
    c.register(procedure, opts, move |_inv| async move {
        Ok(Yield::args(vec![Value::from(name)]))
    })
    .await
    .expect("register");
}

/// How long JetStream may take to elect its leaders (the meta leader, then the registry
/// stream's) after NATS servers start, die or restart: 3–8 s here with the CPUs busy. (A CI
/// run once waited for ever: the bucket had been created with two copies, one on the server
/// that died; the registry now waits for, and adds, every copy.)
const ELECTION: Duration = Duration::from_secs(60);

/// Registers `procedure` on `c` (its callee answers `name`), tried again while the registry
/// is unavailable (JetStream electing), for at most [`ELECTION`]. Any other refusal fails the
/// test. A claim that timed out but was written is this node's already: the retry gets it.
async fn register_once_the_registry_answers(c: &Client, procedure: &str, name: &'static str) {
    let t0 = Instant::now();
    loop {
        let r = c
            .register(procedure, RegisterOptions::default(), move |_| async move {
                Ok(Yield::args(vec![Value::from(name)]))
            })
            .await;
        let Err(e) = r else { return };
        let unavailable = matches!(&e, switchyard::client::Error::Wamp(w)
            if w.error.as_str() == "switchyard.error.cluster_unavailable");
        assert!(
            unavailable && t0.elapsed() < ELECTION,
            "registration of {procedure} refused after {:?}: {e:?}",
            t0.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn call_text(c: &Client, procedure: &str) -> Result<String, switchyard::client::Error> {
    let r = c
        .call(procedure, vec![], Dict::new(), CallOptions::default())
        .await?;
    Ok(match r.args.first() {
        Some(Value::Str(s)) => s.clone(),
        other => panic!("unexpected result {other:?}"),
    })
}

/// RPC across nodes, on three NATS servers clustered with JetStream (the registry kept in
/// three copies), each node on its own server: a `single` registration is unique
/// cluster-wide (the registry refuses a second one on another node, and of three nodes racing
/// for one, exactly one wins), shared registrations keep their policy cluster-wide
/// (roundrobin over the callees of every node, a different policy refused), calls reach the
/// callee's node and the result comes back, with progressive results, progressive
/// invocations, cancel and timeout; the meta API lists remote callees. A NATS server dies:
/// its node fails over and registrations and calls go on. Then the callee's node is killed
/// with SIGKILL: the call in flight to it fails with `wamp.error.canceled`, its registrations
/// disappear everywhere, and its `single` procedure can be registered again on another node
/// (the registry forgot the dead node's claims).
#[test]
fn rpc_across_nodes() {
    let [mut s0, s1, s2] = three_nats();
    let all = |first: &NatsServer| {
        let mut urls = vec![first.url()];
        urls.extend(
            [&s0, &s1, &s2]
                .iter()
                .map(|s| s.url())
                .filter(|u| *u != first.url()),
        );
        urls.join(",")
    };
    let r3 = ["--cluster-replicas", "3"];
    let a = Node::start_with(1, &all(&s0), &r3);
    let b = Node::start_with(2, &all(&s1), &r3);
    let c = Node::start_with(3, &all(&s2), &r3);
    for n in [&a, &b, &c] {
        n.wait_nodes(2);
    }
    runtime().block_on(async {
        let (ca, cb, cc) = (connect(&a).await, connect(&b).await, connect(&c).await);

        // Unique cluster-wide.
        // The first registration waits for JetStream's first elections.
        register_once_the_registry_answers(&cb, "com.single", "b").await;
        for other in [&ca, &cc] {
            let again = other
                .register("com.single", RegisterOptions::default(), |_| async {
                    Ok(Yield::empty())
                })
                .await;
            assert_eq!(wamp_error(again), "wamp.error.procedure_already_exists");
        }
        let got = wait_for_call(&ca, "com.single").await;
        assert_eq!(got, "b");
        // The meta API on A knows B's callee.
        let id = ca
            .call(
                "wamp.registration.lookup",
                vec![Value::from("com.single")],
                Dict::new(),
                CallOptions::default(),
            )
            .await
            .expect("lookup");
        let callees = ca
            .call(
                "wamp.registration.list_callees",
                id.args.clone(),
                Dict::new(),
                CallOptions::default(),
            )
            .await
            .expect("list_callees");
        let b_session = cb.session_id().expect("joined");
        assert_eq!(
            callees.args,
            vec![Value::List(vec![Value::from(b_session)])]
        );

        // Three nodes race for one `single` procedure: the registry lets exactly one win.
        let race = |c: Client| async move {
            c.register("com.race", RegisterOptions::default(), |_| async {
                Ok(Yield::empty())
            })
            .await
            .map(|_| ())
            .map_err(|e| wamp_error::<()>(Err(e)))
        };
        let results = futures_lite::future::zip(
            race(ca.clone()),
            futures_lite::future::zip(race(cb.clone()), race(cc.clone())),
        )
        .await;
        let all = [results.0, results.1 .0, results.1 .1];
        assert_eq!(all.iter().filter(|r| r.is_ok()).count(), 1, "{all:?}");
        assert!(all
            .iter()
            .filter_map(|r| r.as_ref().err())
            .all(|e| e == "wamp.error.procedure_already_exists"));

        // Shared, roundrobin over the three nodes' callees.
        register_named(&ca, "com.rr", rr(), "a").await;
        register_named(&cb, "com.rr", rr(), "b").await;
        register_named(&cc, "com.rr", rr(), "c").await;
        let random = RegisterOptions {
            invoke: Some(InvokePolicy::Random),
            ..Default::default()
        };
        // (Another session: a callee registering twice is already_exists whatever the policy.)
        let refused = connect(&c)
            .await
            .register("com.rr", random, |_| async { Ok(Yield::empty()) })
            .await;
        assert_eq!(
            wamp_error(refused),
            "wamp.error.procedure_exists_with_different_invocation_policy"
        );
        // Every node's callees are known on A once their announcements arrived.
        let deadline = Instant::now() + CONVERGE;
        loop {
            let r = ca
                .call(
                    "wamp.registration.list_callees",
                    vec![ca
                        .call(
                            "wamp.registration.lookup",
                            vec![Value::from("com.rr")],
                            Dict::new(),
                            CallOptions::default(),
                        )
                        .await
                        .expect("lookup")
                        .args[0]
                        .clone()],
                    Dict::new(),
                    CallOptions::default(),
                )
                .await
                .expect("list_callees");
            if matches!(r.args.first(), Some(Value::List(l)) if l.len() == 3) {
                break;
            }
            assert!(Instant::now() < deadline, "callees not replicated: {r:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut counts = std::collections::BTreeMap::new();
        for _ in 0..30 {
            let who = call_text(&ca, "com.rr").await.expect("com.rr");
            *counts.entry(who).or_insert(0) += 1;
        }
        assert_eq!(
            counts.into_iter().collect::<Vec<_>>(),
            [("a".into(), 10), ("b".into(), 10), ("c".into(), 10)]
        );

        // Progressive results and progressive invocations, A → B.
        cb.register(
            "com.prog",
            RegisterOptions::default(),
            |mut inv| async move {
                let mut sum = 0i64;
                for v in &inv.args {
                    sum += as_int(v);
                }
                if inv.is_progressive() {
                    while let Some((args, _)) = inv.next_chunk().await {
                        sum += args.iter().map(as_int).sum::<i64>();
                    }
                }
                if inv.receive_progress() {
                    for i in 1..=3 {
                        inv.progress(Yield::args(vec![Value::from(-(i as i64))]))
                            .expect("progress");
                    }
                }
                Ok(Yield::args(vec![Value::from(sum)]))
            },
        )
        .await
        .expect("register com.prog");
        let opts = CallOptions {
            receive_progress: Some(true),
            progress: Some(true),
            ..Default::default()
        };
        let mut h = wait_for_handle(&ca, "com.prog", vec![Value::from(1i64)], opts).await;
        h.send_chunk(vec![Value::from(10i64)], Dict::new(), false)
            .expect("chunk");
        h.send_chunk(vec![Value::from(100i64)], Dict::new(), true)
            .expect("last chunk");
        let mut seen = Vec::new();
        while let Some(r) = h.next().await {
            let r = r.expect("result");
            seen.push((r.progress, as_int(&r.args[0])));
        }
        assert_eq!(seen, [(true, -1), (true, -2), (true, -3), (false, 111)]);

        // Cancel (kill) and timeout, A → B: the callee is interrupted across nodes.
        let interrupts = Arc::new(Mutex::new(Vec::new()));
        let seen_by_callee = interrupts.clone();
        cb.register("com.slow", RegisterOptions::default(), move |inv| {
            let seen = seen_by_callee.clone();
            async move {
                let mode = inv.wait_interrupted().await;
                seen.lock().unwrap().push(mode);
                Err(CallError::new("wamp.error.canceled"))
            }
        })
        .await
        .expect("register com.slow");
        let h = wait_for_handle(&ca, "com.slow", vec![], CallOptions::default()).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        h.cancel(CancelMode::Kill).expect("cancel");
        assert_eq!(wamp_error(h.result().await), "wamp.error.canceled");
        let timed = ca
            .call(
                "com.slow",
                vec![],
                Dict::new(),
                CallOptions {
                    timeout: Some(300),
                    ..Default::default()
                },
            )
            .await;
        assert_eq!(wamp_error(timed), "wamp.error.timeout");
        until("both interrupts reached the callee", || {
            interrupts.lock().unwrap().len() == 2
        })
        .await;
        assert_eq!(
            *interrupts.lock().unwrap(),
            [CancelMode::Kill, CancelMode::KillNoWait]
        );

        // A's NATS server dies: A fails over to another server; the registry (three copies)
        // still answers, calls still cross.
        s0.kill();
        until("A reconnected", || {
            a.metric("switchyard_cluster_connected", &[]) == 1.0
                && a.metric("switchyard_cluster_nodes", &[]) == 2.0
        })
        .await;
        register_once_the_registry_answers(&ca, "com.after", "a").await;
        assert_eq!(wait_for_call(&cc, "com.after").await, "a");
        let refused = cb
            .register("com.after", RegisterOptions::default(), |_| async {
                Ok(Yield::empty())
            })
            .await;
        assert_eq!(wamp_error(refused), "wamp.error.procedure_already_exists");
        assert_eq!(call_text(&ca, "com.single").await.expect("call"), "b");

        // B dies with a call to it in flight.
        cb.register("com.hang", RegisterOptions::default(), |_inv| async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(Yield::empty())
        })
        .await
        .expect("register com.hang");
        let h = wait_for_handle(&ca, "com.hang", vec![], CallOptions::default()).await;
        let deletes = subscribe(&cc, "wamp.registration.on_delete", MatchPolicy::Exact).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        b.process.signal(libc::SIGKILL);
        let killed = Instant::now();
        let r = tokio::time::timeout(CONVERGE, h.result())
            .await
            .expect("the call in flight ends");
        assert_eq!(wamp_error(r), "wamp.error.canceled");
        assert!(
            killed.elapsed() <= Duration::from_millis(NODE_TIMEOUT_MS * 5),
            "after {:?}",
            killed.elapsed()
        );
        // Its registrations' meta events are published (once, by one node): com.single had
        // no other callee, so it is deleted.
        let single_id = id.args[0].clone();
        until("on_delete of B's com.single", || {
            deletes
                .lock()
                .unwrap()
                .iter()
                .any(|e| e.args.get(1) == Some(&single_id))
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let n = deletes
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.args.get(1) == Some(&single_id))
            .count();
        assert_eq!(n, 1, "published once");
        // B's registrations are gone; its single procedure is free for another node.
        assert_eq!(
            wamp_error(call_text(&ca, "com.single").await),
            "wamp.error.no_such_procedure"
        );
        let deadline = Instant::now() + CONVERGE;
        loop {
            let r = cc
                .register("com.single", RegisterOptions::default(), |_| async {
                    Ok(Yield::args(vec![Value::from("c")]))
                })
                .await;
            match r {
                Ok(_) => break,
                Err(e) => {
                    assert!(Instant::now() < deadline, "still refused: {e:?}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        assert_eq!(wait_for_call(&ca, "com.single").await, "c");
        let mut counts = std::collections::BTreeMap::new();
        for _ in 0..10 {
            *counts
                .entry(call_text(&ca, "com.rr").await.expect("com.rr"))
                .or_insert(0) += 1;
        }
        assert_eq!(
            counts.into_iter().collect::<Vec<_>>(),
            [("a".into(), 5), ("c".into(), 5)]
        );
    });
}

fn as_int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::UInt(u) => i64::try_from(*u).unwrap_or(i64::MAX),
        _ => 0,
    }
}

/// The session meta API answers for the whole cluster: `wamp.session.count/list/get` see the
/// sessions of every node, `wamp.session.kill` closes a session on another node, and
/// subscriber lists include the subscribers of every node (one subscription ID cluster-wide).
#[test]
fn session_meta_api_across_nodes() {
    let nats = NatsServer::start();
    let a = Node::start(1, &nats.url());
    let b = Node::start(2, &nats.url());
    let c = Node::start(3, &nats.url());
    for n in [&a, &b, &c] {
        n.wait_nodes(2);
    }
    runtime().block_on(async {
        let (ca, cb, cc) = (connect(&a).await, connect(&b).await, connect(&c).await);
        let meta = |name: &'static str, args: Vec<Value>| {
            let ca = ca.clone();
            async move {
                ca.call(name, args, Dict::new(), CallOptions::default())
                    .await
                    .unwrap_or_else(|e| panic!("{name}: {e:?}"))
                    .args
            }
        };
        let ids: Vec<u64> = [&ca, &cb, &cc]
            .iter()
            .map(|c| c.session_id().expect("joined"))
            .collect();
        assert_eq!(meta("wamp.session.count", vec![]).await, [Value::UInt(3)]);
        let listed = meta("wamp.session.list", vec![]).await;
        let Some(Value::List(l)) = listed.first() else {
            panic!("{listed:?}")
        };
        let mut got: Vec<u64> = l.iter().filter_map(Value::as_u64).collect();
        got.sort_unstable();
        let mut want = ids.clone();
        want.sort_unstable();
        assert_eq!(got, want);
        let details = meta("wamp.session.get", vec![Value::from(ids[2])]).await;
        let Some(Value::Dict(d)) = details.first() else {
            panic!("{details:?}")
        };
        assert_eq!(d.get("session").and_then(Value::as_u64), Some(ids[2]));
        let missing = ca
            .call(
                "wamp.session.get",
                vec![Value::from(12345u64)],
                Dict::new(),
                CallOptions::default(),
            )
            .await;
        assert_eq!(wamp_error(missing), "wamp.error.no_such_session");

        // One subscription ID on every node; subscribers of every node listed.
        let in_b = subscribe(&cb, "com.meta", MatchPolicy::Exact).await;
        let in_c = subscribe(&cc, "com.meta", MatchPolicy::Exact).await;
        until_live(&ca, "com.meta", &[&in_b, &in_c]).await;
        let sub = meta("wamp.subscription.lookup", vec![Value::from("com.meta")]).await;
        let subs = meta("wamp.subscription.list_subscribers", sub.clone()).await;
        let Some(Value::List(l)) = subs.first() else {
            panic!("{subs:?}")
        };
        let mut got: Vec<u64> = l.iter().filter_map(Value::as_u64).collect();
        got.sort_unstable();
        let mut want = vec![ids[1], ids[2]];
        want.sort_unstable();
        assert_eq!(got, want);
        assert_eq!(
            meta("wamp.subscription.count_subscribers", sub).await,
            [Value::UInt(2)]
        );

        // Kill a session on C from A.
        meta("wamp.session.kill", vec![Value::from(ids[2])]).await;
        tokio::time::timeout(CONVERGE, cc.closed())
            .await
            .expect("the session on C was closed");
        let deadline = Instant::now() + CONVERGE;
        while meta("wamp.session.count", vec![]).await != [Value::UInt(2)] {
            assert!(Instant::now() < deadline, "count did not drop to 2");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
}

/// Event retention and event history hold across nodes: a retained publication on A with no
/// subscriber anywhere is kept by B too (a subscriber on B asking for retained events gets
/// it), and B's history rule records the events published on A (B had no subscriber then).
#[test]
fn retained_events_and_history_across_nodes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("switchyard.toml");
    std::fs::write(
        &config,
        "[[realm]]\nname = \"realm1\"\n\n[[realm.history]]\ntopic = \"com.hist\"\n",
    )
    .expect("write config");
    let config = config.to_str().expect("utf-8 path");
    let nats = NatsServer::start();
    let a = Node::start_with(1, &nats.url(), &["--config", config]);
    let b = Node::start_with(2, &nats.url(), &["--config", config]);
    a.wait_nodes(1);
    b.wait_nodes(1);
    runtime().block_on(async {
        let (ca, cb) = (connect(&a).await, connect(&b).await);
        let ack = PublishOptions {
            retain: Some(true),
            acknowledge: Some(true),
            ..Default::default()
        };
        ca.publish("com.kept", vec![Value::from("kept")], Dict::new(), ack)
            .await
            .expect("publish retained");
        for i in 0..3i64 {
            ca.publish(
                "com.hist",
                vec![Value::Int(i)],
                Dict::new(),
                PublishOptions {
                    acknowledge: Some(true),
                    ..Default::default()
                },
            )
            .await
            .expect("publish");
        }
        // B got them a moment later: subscribe there asking for the retained event.
        let deadline = Instant::now() + CONVERGE;
        loop {
            let inbox: Inbox = Arc::default();
            let i = inbox.clone();
            let opts = SubscribeOptions {
                get_retained: Some(true),
                ..Default::default()
            };
            let sub = cb
                .subscribe("com.kept", opts, move |e| i.lock().unwrap().push(e))
                .await
                .expect("subscribe");
            tokio::time::sleep(Duration::from_millis(100)).await;
            if texts(&inbox) == ["kept"] {
                break;
            }
            cb.unsubscribe(&sub).await.expect("unsubscribe");
            assert!(Instant::now() < deadline, "B never kept A's retained event");
        }
        let hist = subscribe(&cb, "com.hist", MatchPolicy::Exact).await;
        drop(hist);
        let id = cb
            .call(
                "wamp.subscription.lookup",
                vec![Value::from("com.hist")],
                Dict::new(),
                CallOptions::default(),
            )
            .await
            .expect("lookup")
            .args;
        let events = cb
            .call(
                "wamp.subscription.get_events",
                id,
                Dict::new(),
                CallOptions::default(),
            )
            .await
            .expect("get_events")
            .args;
        let Some(Value::List(events)) = events.first() else {
            panic!("{events:?}")
        };
        let firsts: Vec<Value> = events
            .iter()
            .filter_map(|e| match e {
                Value::Dict(d) => match d.get("args") {
                    Some(Value::List(a)) => a.first().cloned(),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        assert_eq!(
            firsts,
            [Value::UInt(0), Value::UInt(1), Value::UInt(2)],
            "{events:?}"
        );
    });
}

/// Calls `procedure` until its registration (made on another node) has reached this node.
async fn wait_for_call(c: &Client, procedure: &str) -> String {
    let deadline = Instant::now() + CONVERGE;
    loop {
        match call_text(c, procedure).await {
            Ok(s) => return s,
            Err(e) => {
                assert!(Instant::now() < deadline, "{procedure}: {e:?}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// A call handle, once `procedure` is known on the caller's node (checked with
/// `wamp.registration.match`).
async fn wait_for_handle(
    c: &Client,
    procedure: &str,
    args: Vec<Value>,
    opts: CallOptions,
) -> switchyard::client::tokio::CallHandle {
    let deadline = Instant::now() + CONVERGE;
    loop {
        let m = c
            .call(
                "wamp.registration.match",
                vec![Value::from(procedure)],
                Dict::new(),
                CallOptions::default(),
            )
            .await
            .expect("match");
        if !matches!(m.args.first(), None | Some(Value::Null)) {
            break;
        }
        assert!(Instant::now() < deadline, "{procedure} not known");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.call_handle(procedure, args, Dict::new(), opts)
        .expect("call")
}

/// A PUBLISH on node A reaches subscribers on B and C with every match policy, each
/// subscriber gets one publisher's events in publish order, and the network carries each
/// publication once per interested node (never once per subscriber, never to a node without
/// interest), as the cluster metrics count.
#[test]
fn publications_cross_once_per_interested_node_in_order() {
    let nats = NatsServer::start();
    let (a, b, c) = (
        Node::start(1, &nats.url()),
        Node::start(2, &nats.url()),
        Node::start(3, &nats.url()),
    );
    let d = Node::start(4, &nats.url());
    for n in [&a, &b, &c, &d] {
        n.wait_nodes(3);
    }
    runtime().block_on(async {
        let publisher = connect(&a).await;
        let mut inboxes = Vec::new();
        let mut clients = Vec::new();
        // Three subscribers of one subscription on B.
        for _ in 0..3 {
            let s = connect(&b).await;
            inboxes.push(subscribe(&s, "com.cl.t1", MatchPolicy::Exact).await);
            clients.push(s);
        }
        // Prefix and wildcard on C.
        let s = connect(&c).await;
        inboxes.push(subscribe(&s, "com.cl", MatchPolicy::Prefix).await);
        inboxes.push(subscribe(&s, "com..t1", MatchPolicy::Wildcard).await);
        clients.push(s);
        // D subscribes to something else only.
        let other = connect(&d).await;
        let elsewhere = subscribe(&other, "com.elsewhere", MatchPolicy::Exact).await;
        let refs: Vec<&Inbox> = inboxes.iter().collect();
        until_live(&publisher, "com.cl.t1", &refs).await;
        // The last probe may still be crossing: the counts below start once every
        // publication A sent has been received.
        until("the probes arrived", || {
            a.publications_sent()
                == b.publications_received() + c.publications_received() + d.publications_received()
        })
        .await;

        let (sent0, b0, c0, d0) = (
            a.publications_sent(),
            b.publications_received(),
            c.publications_received(),
            d.publications_received(),
        );
        const N: i64 = 200;
        for i in 0..N {
            publisher
                .publish(
                    "com.cl.t1",
                    vec![Value::Int(i)],
                    Dict::new(),
                    PublishOptions::default(),
                )
                .await
                .expect("publish");
        }
        until("every subscriber got every event", || {
            inboxes.iter().all(|i| numbers(i).len() >= N as usize)
        })
        .await;
        let want: Vec<i64> = (0..N).collect();
        for (k, i) in inboxes.iter().enumerate() {
            assert_eq!(
                numbers(i),
                want,
                "subscriber {k}: all events, in order, once"
            );
        }
        // Once per interested node: B and C, not D, and not once per subscriber.
        let n = N as f64;
        assert_eq!(a.publications_sent() - sent0, 2.0 * n);
        assert_eq!(b.publications_received() - b0, n);
        assert_eq!(c.publications_received() - c0, n);
        assert_eq!(d.publications_received() - d0, 0.0);
        assert!(elsewhere.lock().unwrap().is_empty());
        drop(clients);
    });
}

/// Publisher options hold across nodes: exclude / eligible by session ID, exclude_me,
/// disclose_me, acknowledge (PUBLISHED after local routing, same publication ID remotely).
#[test]
fn publisher_options_hold_across_nodes() {
    let nats = NatsServer::start();
    let (a, b) = (Node::start(1, &nats.url()), Node::start(2, &nats.url()));
    a.wait_nodes(1);
    b.wait_nodes(1);
    runtime().block_on(async {
        let p = connect(&a).await;
        let mine = subscribe(&p, "com.opt", MatchPolicy::Exact).await;
        let s1c = connect(&b).await;
        let s2c = connect(&b).await;
        let s1 = subscribe(&s1c, "com.opt", MatchPolicy::Exact).await;
        let s2 = subscribe(&s2c, "com.opt", MatchPolicy::Exact).await;
        until_live(&p, "com.opt", &[&s1, &s2]).await;
        let (id1, id2) = (
            s1c.session_id().expect("joined"),
            s2c.session_id().expect("joined"),
        );
        let publish = |text: &'static str, o: PublishOptions| {
            let p = p.clone();
            async move {
                p.publish("com.opt", vec![Value::from(text)], Dict::new(), o)
                    .await
                    .expect("publish")
            }
        };
        publish(
            "not-s1",
            PublishOptions {
                exclude: Some(vec![id1]),
                ..Default::default()
            },
        )
        .await;
        publish(
            "only-s1",
            PublishOptions {
                eligible: Some(vec![id1]),
                ..Default::default()
            },
        )
        .await;
        publish(
            "everyone",
            PublishOptions {
                exclude_me: Some(false),
                ..Default::default()
            },
        )
        .await;
        publish(
            "disclosed",
            PublishOptions {
                disclose_me: Some(true),
                eligible: Some(vec![id2]),
                ..Default::default()
            },
        )
        .await;
        let acked = publish(
            "acked",
            PublishOptions {
                acknowledge: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("PUBLISHED carries the publication ID");
        until("the last event everywhere", || {
            texts(&s1).last().map(String::as_str) == Some("acked")
                && texts(&s2).last().map(String::as_str) == Some("acked")
        })
        .await;
        assert_eq!(texts(&s1), ["only-s1", "everyone", "acked"]);
        assert_eq!(texts(&s2), ["not-s1", "everyone", "disclosed", "acked"]);
        // exclude_me defaults to true: the publisher saw only "everyone" (and no probe).
        until("the publisher's own event", || texts(&mine) == ["everyone"]).await;
        let s2_events = s2.lock().unwrap();
        let disclosed = s2_events
            .iter()
            .find(|e| first_arg(e) == Value::from("disclosed"))
            .expect("disclosed event");
        assert_eq!(disclosed.details.publisher.map(|x| x.0), p.session_id());
        let last = s2_events.last().expect("acked event");
        assert_eq!(last.publication, acked, "one publication ID cluster-wide");
        let plain = s2_events
            .iter()
            .find(|e| first_arg(e) == Value::from("everyone"))
            .expect("everyone");
        assert!(
            plain.details.publisher.is_none(),
            "not disclosed unless asked"
        );
        // One subscription ID cluster-wide for one topic and policy.
        let on_a = mine.lock().unwrap()[0].subscription;
        assert_eq!(plain.subscription, on_a, "same subscription ID on A and B");
    });
}

/// A node killed with SIGKILL is gone for the others within the node timeout (plus a
/// heartbeat): its interest is dropped (publications no longer cross to it). A new process
/// with the same node ID joins again and its subscribers get events.
#[test]
fn a_killed_node_is_forgotten_and_a_restarted_one_rejoins() {
    let nats = NatsServer::start();
    let a = Node::start(1, &nats.url());
    let b = Node::start(2, &nats.url());
    let mut c = Node::start(3, &nats.url());
    a.wait_nodes(2);
    runtime().block_on(async {
        let p = connect(&a).await;
        let sb = connect(&b).await;
        let in_b = subscribe(&sb, "com.kill", MatchPolicy::Exact).await;
        let sc = connect(&c).await;
        let in_c = subscribe(&sc, "com.kill", MatchPolicy::Exact).await;
        until_live(&p, "com.kill", &[&in_b, &in_c]).await;
        let leaves0 = a.metric("switchyard_cluster_node_leaves_total", &[]);
        // A session on C leaves a testament; subscribers of its topic on A and B.
        let will_a = subscribe(&p, "com.will", MatchPolicy::Exact).await;
        let will_b = subscribe(&sb, "com.will", MatchPolicy::Exact).await;
        until_live(&sc, "com.will", &[&will_a, &will_b]).await;
        will_a.lock().unwrap().clear();
        will_b.lock().unwrap().clear();
        let copies = |n: &Node| {
            n.metric(
                "switchyard_cluster_messages_received_total",
                &[("kind", "interest")],
            )
        };
        let (before_a, before_b) = (copies(&a), copies(&b));
        sc.call(
            "wamp.session.add_testament",
            vec![
                Value::from("com.will"),
                Value::List(vec![Value::from("c-died")]),
                Value::Dict(Dict::new()),
            ],
            Dict::new(),
            Default::default(),
        )
        .await
        .expect("add_testament");
        // The testament reached the other nodes (its copy travels like interest changes).
        until("the testament copy arrived", || {
            copies(&a) > before_a && copies(&b) > before_b
        })
        .await;

        // Who is told the dead node's sessions left: a subscriber of on_leave on B.
        let leaves = subscribe(&sb, "wamp.session.on_leave", MatchPolicy::Exact).await;
        let c_session = sc.session_id().expect("joined");
        c.process.signal(libc::SIGKILL);
        let killed = Instant::now();
        a.wait_nodes(1);
        let took = killed.elapsed();
        assert!(
            took <= Duration::from_millis(NODE_TIMEOUT_MS * 5),
            "the dead node was noticed after {took:?}"
        );
        assert_eq!(
            a.metric("switchyard_cluster_node_leaves_total", &[]) - leaves0,
            1.0
        );
        // Its testament is published once (by the lowest surviving node), to both nodes.
        until("the dead session's testament", || {
            texts(&will_a) == ["c-died"] && texts(&will_b) == ["c-died"]
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(texts(&will_a), ["c-died"], "exactly once");
        assert_eq!(texts(&will_b), ["c-died"], "exactly once");
        // And its session's wamp.session.on_leave, once, after the testament.
        let left: Vec<Value> = leaves.lock().unwrap().iter().map(first_arg).collect();
        assert_eq!(left, [Value::UInt(c_session)]);
        // Publications now cross to B only.
        let sent0 = a.publications_sent();
        for i in 0..10 {
            p.publish(
                "com.kill",
                vec![Value::Int(i)],
                Dict::new(),
                Default::default(),
            )
            .await
            .expect("publish");
        }
        until("B got the events", || numbers(&in_b).len() == 10).await;
        assert_eq!(a.publications_sent() - sent0, 10.0);
        drop(sc);

        c = Node::start(3, &nats.url());
        a.wait_nodes(2);
        let sc = connect(&c).await;
        let again = subscribe(&sc, "com.kill", MatchPolicy::Exact).await;
        until_live(&p, "com.kill", &[&again]).await;
    });
    drop(c);
}

/// Three NATS servers in a NATS cluster: the server node A is connected to dies, A reconnects
/// to another and keeps routing. With every server gone A is degraded (metric, /ready 503,
/// /health still 200) and keeps serving its local sessions; when servers return, A and B
/// re-synchronise and publications cross again.
#[test]
fn nats_server_loss_failover_degraded_and_resync() {
    let [mut s0, mut s1, mut s2] = three_nats();
    // The registry in three copies: it survives s0, which does not come back.
    let r3 = ["--cluster-replicas", "3"];
    let a = Node::start_with(1, &format!("{},{}", s0.url(), s1.url()), &r3);
    let b = Node::start_with(2, &s2.url(), &r3);
    // Node timeout 1 s: B must not drop A while only the servers restart (A's heartbeats
    // stop only for as long as it has no server).
    a.wait_nodes(1);
    b.wait_nodes(1);
    runtime().block_on(async {
        let p = connect(&a).await;
        let local = subscribe(&p, "com.fail", MatchPolicy::Exact).await;
        let sb = connect(&b).await;
        let remote = subscribe(&sb, "com.fail", MatchPolicy::Exact).await;
        until_live(&p, "com.fail", &[&remote]).await;

        // A's server dies: A fails over to s1 (routed to s2, where B is).
        s0.kill();
        remote.lock().unwrap().clear();
        until_live(&p, "com.fail", &[&remote]).await;
        until("A reports connected", || {
            a.metric("switchyard_cluster_connected", &[]) == 1.0
        })
        .await;

        // Every server gone: degraded, still serving locally.
        s1.kill();
        s2.kill();
        until("A reports degraded", || {
            a.metric("switchyard_cluster_degraded", &[]) == 1.0
        })
        .await;
        let (ready, why) = a.http("/ready");
        assert_eq!(ready, 503, "{why}");
        assert!(why.contains("cluster degraded"), "{why}");
        let (health, body) = a.http("/health");
        assert_eq!(health, 200, "alive while degraded: {body}");
        local.lock().unwrap().clear();
        p.publish(
            "com.fail",
            vec![Value::from("local")],
            Dict::new(),
            PublishOptions {
                exclude_me: Some(false),
                ..Default::default()
            },
        )
        .await
        .expect("publish while degraded");
        until("local delivery while degraded", || {
            texts(&local) == ["local"]
        })
        .await;
        // A new registration cannot be checked against the other nodes: refused.
        let refused = p
            .register("com.degraded", RegisterOptions::default(), |_| async {
                Ok(Yield::empty())
            })
            .await;
        assert_eq!(wamp_error(refused), "switchyard.error.cluster_unavailable");
        // A testament added while cut off reaches B once NATS is back (sent again whole).
        p.call(
            "wamp.session.add_testament",
            vec![
                Value::from("com.fail.will"),
                Value::List(vec![Value::from("a-died")]),
                Value::Dict(Dict::new()),
            ],
            Dict::new(),
            Default::default(),
        )
        .await
        .expect("add_testament while degraded");

        // Servers back: both nodes reconnect and re-synchronise.
        s1.restart();
        s2.restart();
        a.wait_nodes(1);
        b.wait_nodes(1);
        until("A no longer degraded", || {
            a.metric("switchyard_cluster_degraded", &[]) == 0.0
        })
        .await;
        remote.lock().unwrap().clear();
        until_live(&p, "com.fail", &[&remote]).await;
        assert_eq!(a.http("/ready").0, 200);
        // Registrations work again once the registry is reachable (JetStream elects its
        // leaders again after the restart).
        register_once_the_registry_answers(&p, "com.degraded", "a").await;
        assert_eq!(wait_for_call(&sb, "com.degraded").await, "a");

        let will = subscribe(&sb, "com.fail.will", MatchPolicy::Exact).await;
        // B holds the copy of A's testament (resent on reconnect, or healed by snapshot).
        until("B keeps A's testament", || {
            b.metric("switchyard_cluster_remote_testaments", &[]) == 1.0
        })
        .await;
        // B's new interest must reach A before... nothing: A is killed; B publishes locally.
        a.process.signal(libc::SIGKILL);
        b.wait_nodes(0);
        until("A's testament, published by B", || {
            texts(&will) == ["a-died"]
        })
        .await;
    });
}

/// The registry's copies when a NATS server is down as the bucket is first created: the
/// node waits a moment for it, then creates the bucket with the two copies the servers up
/// can hold (gauge 2). When the server returns the node raises it to three, in sync (gauge
/// 3), so the registry then survives losing one of the first two servers.
#[test]
fn registry_copies_are_raised_when_servers_return() {
    let [mut s0, s1, mut s2] = three_nats();
    s2.kill();
    let a = Node::start_with(
        1,
        &format!("{},{}", s0.url(), s1.url()),
        &["--cluster-replicas", "3"],
    );
    let copies = || a.metric("switchyard_cluster_registry_copies", &[]);
    runtime().block_on(async {
        let c = connect(&a).await;
        let started = Instant::now();
        register_once_the_registry_answers(&c, "com.copies.one", "one").await;
        // Not before the node has waited 3 s for the third server.
        assert!(
            started.elapsed() >= Duration::from_secs(3),
            "created with fewer copies after {:?}",
            started.elapsed()
        );
        // The copies in sync reach two, then three once s2 is back (JetStream fills the new
        // copy, then the node's check sees it).
        until_within(ELECTION, "two copies in sync", || copies() == 2.0).await;
        s2.restart();
        until_within(ELECTION, "three copies in sync", || copies() == 3.0).await;
        // One of the first two servers goes: two of three copies are left, a quorum.
        s0.kill();
        register_once_the_registry_answers(&c, "com.copies.two", "two").await;
        assert_eq!(wait_for_call(&c, "com.copies.one").await, "one");
        assert_eq!(wait_for_call(&c, "com.copies.two").await, "two");
    });
}

/// Three copies asked of a NATS server that is not clustered: it can keep one, and the
/// registry works with that one (gauge 1) instead of refusing every registration.
#[test]
fn a_single_nats_server_keeps_one_copy() {
    let nats = NatsServer::start();
    let a = Node::start_with(1, &nats.url(), &["--cluster-replicas", "3"]);
    runtime().block_on(async {
        let c = connect(&a).await;
        register_once_the_registry_answers(&c, "com.one.copy", "one").await;
        assert_eq!(wait_for_call(&c, "com.one.copy").await, "one");
        assert_eq!(a.metric("switchyard_cluster_registry_copies", &[]), 1.0);
    });
}

/// Without `--cluster` nothing cluster-related runs: no bridge, no cluster metrics; bad
/// cluster settings are refused naming the key.
#[test]
fn cluster_flags_are_checked() {
    let out = std::process::Command::new(common::router_binary())
        .args(["--cluster", "nats://127.0.0.1:4222"])
        .output()
        .expect("run switchyard");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("node_id"), "{err}");
    for (args, key) in [
        (
            &["--cluster", "http://x:1", "--node-id", "1"][..],
            "cluster",
        ),
        (&["--cluster", "nats://x", "--node-id", "1"][..], "cluster"),
        (
            &["--cluster", "nats://x:1", "--node-id", "0"][..],
            "node_id",
        ),
        (
            &["--cluster", "nats://x:1", "--node-id", "2048"][..],
            "node_id",
        ),
        (
            &[
                "--cluster",
                "nats://x:1",
                "--node-id",
                "1",
                "--cluster-name",
                "a.b",
            ][..],
            "cluster_name",
        ),
        (&["--node-id", "3"][..], "node_id"),
    ] {
        let out = std::process::Command::new(common::router_binary())
            .args(args)
            .output()
            .expect("run switchyard");
        assert!(!out.status.success(), "{args:?} accepted");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(key), "{args:?}: {err}");
    }
    let single =
        RouterProcess::start(&["--no-ws", "--rs", "127.0.0.1:0", "--metrics", "127.0.0.1:0"]);
    let addr = single
        .endpoints
        .iter()
        .find_map(|e| e.url.strip_prefix("metrics http://"))
        .expect("metrics")
        .parse()
        .expect("addr");
    let text = format!("{:?}", Scrape::get(addr));
    assert!(!text.contains("switchyard_cluster"), "{text}");
}

/// `deploy/cluster/start.sh` (the README's one command) starts NATS and three nodes that act
/// as one router; `stop.sh` stops every process it started.
#[test]
fn the_deploy_script_starts_a_working_cluster() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().expect("tempdir");
    let run = dir.path().join("run");
    let script = |name: &str, extra: &[&str]| {
        let mut cmd = std::process::Command::new("bash");
        cmd.arg(root.join("deploy/cluster").join(name))
            .args(["--dir", run.to_str().expect("utf-8 path")])
            .args(extra);
        let (status, out, err) = common::run_with_deadline(name, &mut cmd, Duration::from_secs(60));
        assert_eq!(
            status.and_then(|s| s.code()),
            Some(0),
            "{name}: {out}\n{err}"
        );
        out
    };
    let bin = common::router_binary();
    let nats = common::nats_server_binary();
    let out = script(
        "start.sh",
        &[
            "--ports",
            "auto",
            "--nats",
            "3",
            "--bin",
            bin.to_str().expect("utf-8 path"),
            "--nats-server",
            nats.to_str().expect("utf-8 path"),
        ],
    );
    // Stop whatever started even if an assertion below fails.
    struct Stop<'a>(&'a dyn Fn());
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            (self.0)();
        }
    }
    let stop_once = std::cell::Cell::new(false);
    let stop = || {
        if !stop_once.replace(true) {
            script("stop.sh", &[]);
        }
    };
    let _guard = Stop(&stop);
    let rs = |node: &str| -> String {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("node {node} rs://")))
            .map(|a| format!("rs://{a}"))
            .unwrap_or_else(|| panic!("no rs endpoint of node {node} in {out}"))
    };
    runtime().block_on(async {
        let cfg = |url: String| {
            ClientConfig::new(url, "realm1")
                .serializer(Serializer::MsgPack)
                .connect_timeout(Duration::from_secs(5))
        };
        let p = Client::connect(cfg(rs("1"))).await.expect("node 1");
        let s = Client::connect(cfg(rs("3"))).await.expect("node 3");
        let inbox = subscribe(&s, "com.deploy", MatchPolicy::Exact).await;
        until_live(&p, "com.deploy", &[&inbox]).await;
        // RPC across nodes: the registry (JetStream, three copies) answers.
        register_once_the_registry_answers(&s, "com.deploy.rpc", "node3").await;
        assert_eq!(wait_for_call(&p, "com.deploy.rpc").await, "node3");
    });
    stop();
    let pids = std::fs::read_to_string(run.join("pids")).expect("pids file");
    assert!(pids.trim().is_empty(), "stop.sh empties the pid list");
}

/// autobahn-python clients on three nodes, each on its own NATS server of a JetStream NATS
/// cluster (JSON and MessagePack, exact and prefix): every event once and in order,
/// exclude_me and exclude by session ID across nodes, one subscription ID per topic and
/// policy cluster-wide; RPC (a single registration refused on the other nodes, roundrobin
/// over every node's callees, progressive results, cancel, timeout) and
/// `wamp.session.count` across nodes (tests/interop/cluster.py).
#[test]
fn autobahn_python_clients_on_different_nodes() {
    let python = common::interop_python("autobahn, msgpack");
    // Three NATS servers clustered with JetStream, each node on its own.
    let servers = three_nats();
    let nodes: Vec<Node> = (1..=3u16)
        .map(|i| {
            let s = &servers[usize::from(i) - 1];
            Node::start_with(i, &s.url(), &["--cluster-replicas", "3"])
        })
        .collect();
    for n in &nodes {
        n.wait_nodes(2);
    }
    let mut cmd = std::process::Command::new(python);
    cmd.arg("cluster.py");
    for n in &nodes {
        cmd.args(["--node", &n.process.endpoint("rs").addr().to_string()]);
    }
    common::assert_script_ok(
        "cluster.py",
        &mut cmd,
        Duration::from_secs(120),
        "OK: cluster",
    );
}

/// A partition: the NATS server node C uses is frozen (SIGSTOP: its connections and routes go
/// silent, as with a cut cable). A and B, on the other servers, keep exchanging events with no
/// loss and no duplicate; they drop C after the node timeout. When C's server comes back, C
/// rejoins and re-synchronises, and its subscription receives again.
#[test]
fn a_partitioned_node_is_dropped_and_rejoins_without_disturbing_the_majority() {
    let [s0, s1, s2] = three_nats();
    let a = Node::start(1, &s0.url());
    let b = Node::start(2, &s1.url());
    let c = Node::start(3, &s2.url());
    a.wait_nodes(2);
    b.wait_nodes(2);
    runtime().block_on(async {
        let p = connect(&a).await;
        let sb = connect(&b).await;
        let in_b = subscribe(&sb, "com.part", MatchPolicy::Exact).await;
        let sc = connect(&c).await;
        let in_c = subscribe(&sc, "com.part", MatchPolicy::Exact).await;
        until_live(&p, "com.part", &[&in_b, &in_c]).await;
        let leaves0 = a.metric("switchyard_cluster_node_leaves_total", &[]);

        s2.signal(libc::SIGSTOP);
        // The majority keeps going through the partition: 1 event every 10 ms for 2.5 s.
        let mut sent = 0i64;
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(2500) {
            p.publish(
                "com.part",
                vec![Value::Int(sent)],
                Dict::new(),
                Default::default(),
            )
            .await
            .expect("publish during the partition");
            sent += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        until("B got every event of the partition", || {
            numbers(&in_b).len() >= sent as usize
        })
        .await;
        assert_eq!(
            numbers(&in_b),
            (0..sent).collect::<Vec<_>>(),
            "no loss, no duplicate"
        );
        until("A dropped the silent node", || {
            a.metric("switchyard_cluster_node_leaves_total", &[]) > leaves0
        })
        .await;

        s2.signal(libc::SIGCONT);
        a.wait_nodes(2);
        in_c.lock().unwrap().clear();
        until_live(&p, "com.part", &[&in_c]).await;
    });
}
