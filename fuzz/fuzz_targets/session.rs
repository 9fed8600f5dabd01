//! Sessions and routing together: arbitrary client message sequences fed to the session state
//! machine (`shard::session::Session`) and, once a session is established, to a pair of realm
//! shards (`routing::RealmShard`) that exchange their `Action::Peer` messages over FIFO
//! channels in an order the input chooses. Sessions connect, join, leave, are aborted and time
//! advances; clients answer with the IDs the router actually gave them (subscriptions,
//! registrations, invocations, publications, other sessions) as well as made-up ones. Raw
//! MessagePack frames go through the codec first.
//!
//! This mirrors what `shard::Shard` does with the outputs (see `apply_session_outputs` and
//! `apply_actions`) and what the routing tests' `Cluster` harness does with peer messages,
//! which is test-only code and not reachable from here.
//!
//! Checked: no panic; a shard only sends to its own sessions, `SendMany` has several
//! recipients and no shard sends itself a `PeerMsg`; peer traffic settles; and once every
//! session has left and the clock has moved on, no subscription, registration, call,
//! invocation or timer is left on either shard.
#![no_main]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchyard::codec::uri::MatchPolicy;
use switchyard::codec::*;
use switchyard::routing::{Action, PeerMsg, RealmShard, RoutingConfig, SessionDetails, SessionRef};
use switchyard::session::{router_roles, RealmDirectory, Session, SessionOutput, State};

const SHARDS: usize = 2;
const SLOTS: usize = 6;
const REALM: &str = "realm1";
const URIS: &[&str] = &[
    "a", "a.b", "a.b.c", "a..c", "", "a.", ".a", "wamp.x", "a b", "b.c", "com.x.y", "a.b.",
];

struct Realms;

impl RealmDirectory for Realms {
    fn admits_anonymous(&self, realm: &str) -> bool {
        realm == REALM
    }
    fn exists(&self, realm: &str) -> bool {
        realm == REALM || realm == "closed"
    }
}

/// An ID as a client writes it: one the router gave it, or a made-up one.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum IdRef {
    Known(u8),
    Small(u8),
    Any(u64),
}

#[derive(Arbitrary, Debug)]
enum Msg {
    Hello {
        realm: u8,
        roles: u8,
        authmethods: u8,
    },
    Subscribe {
        req: u8,
        topic: u8,
        policy: u8,
    },
    Unsubscribe {
        req: u8,
        sub: IdRef,
    },
    Publish {
        req: u8,
        topic: u8,
        acknowledge: u8,
        exclude_me: u8,
        eligible: Option<IdRef>,
        exclude: Option<IdRef>,
        eligible_authrole: bool,
        payload: u8,
    },
    Register {
        req: u8,
        procedure: u8,
        policy: u8,
        invoke: u8,
        force: bool,
    },
    Unregister {
        req: u8,
        reg: IdRef,
    },
    Call {
        req: u8,
        procedure: u8,
        timeout: u8,
        receive_progress: u8,
        progress: u8,
        disclose_me: u8,
        payload: u8,
    },
    Cancel {
        req: u8,
        mode: u8,
    },
    Yield {
        inv: IdRef,
        progress: bool,
        payload: u8,
    },
    Error {
        request_type: u8,
        inv: IdRef,
        payload: u8,
    },
    EventReceived {
        publication: IdRef,
    },
    Goodbye,
    Abort,
    /// A message only a router sends.
    RouterOnly(u8),
}

#[derive(Arbitrary, Debug)]
enum Op {
    /// Connect (if the slot is free) and send a valid HELLO for the realm: the common path.
    Join {
        slot: u8,
        shard: u8,
        roles: u8,
    },
    Connect {
        slot: u8,
        shard: u8,
    },
    Send {
        slot: u8,
        msg: Msg,
    },
    /// A MessagePack frame from the wire.
    Raw {
        slot: u8,
        frame: Vec<u8>,
    },
    /// The transport closed.
    Disconnect {
        slot: u8,
    },
    /// Router shutdown: GOODBYE, then wait for the client's.
    Shutdown {
        slot: u8,
    },
    HelloTimeout {
        slot: u8,
    },
    Advance {
        ms: u16,
    },
    /// Deliver up to `n` peer messages on one channel.
    Deliver {
        from: u8,
        n: u8,
    },
    Settle,
}

/// One client connection and what the router told it.
struct Client {
    shard: usize,
    session: Session,
    /// Set once the session joined the realm (routing knows it).
    routed: Option<SessionRef>,
    /// IDs seen in messages from the router, per kind.
    subscriptions: Vec<Id>,
    registrations: Vec<Id>,
    invocations: Vec<Id>,
    publications: Vec<Id>,
}

struct World {
    shards: Vec<RealmShard>,
    queues: BTreeMap<(usize, usize), VecDeque<PeerMsg>>,
    clients: [Option<Client>; SLOTS],
    /// Session ID -> slot, for connected sessions.
    by_id: HashMap<Id, usize>,
    next_id: Id,
    now: Instant,
    roles: Value,
    /// Sessions the routing core asked to abort, not yet closed.
    aborts: Vec<Id>,
}

fn pick<T: Copy>(xs: &[T], i: u8) -> T {
    xs[usize::from(i) % xs.len()]
}

fn flag(b: u8) -> Option<bool> {
    pick(&[None, Some(false), Some(true)], b)
}

fn payload(b: u8) -> Payload {
    match b % 4 {
        0 => Payload::Empty,
        1 => Payload::args(vec![Value::UInt(u64::from(b))]),
        2 => Payload::args_kwargs(Vec::new(), Dict::from([("k".into(), Value::Bool(true))])),
        _ => Payload::Transparent(Bytes::from_static(b"\x00\x01")),
    }
}

fn policy(b: u8) -> Option<MatchPolicy> {
    pick(
        &[
            None,
            Some(MatchPolicy::Exact),
            Some(MatchPolicy::Prefix),
            Some(MatchPolicy::Wildcard),
        ],
        b,
    )
}

fn roles_dict(bits: u8) -> Dict {
    let mut callee = Dict::new();
    for (i, name) in [
        "call_canceling",
        "call_timeout",
        "progressive_call_results",
        "progressive_call_invocations",
    ]
    .iter()
    .enumerate()
    {
        if bits & (1 << i) != 0 {
            callee.insert((*name).into(), Value::Bool(true));
        }
    }
    let mut caller = Dict::new();
    if bits & 16 != 0 {
        caller.insert("progressive_call_invocations".into(), Value::Bool(true));
    }
    let role =
        |features: Dict| Value::Dict(Dict::from([("features".into(), Value::Dict(features))]));
    Dict::from([
        ("callee".into(), role(callee)),
        ("caller".into(), role(caller)),
        ("publisher".into(), role(Dict::new())),
        ("subscriber".into(), role(Dict::new())),
    ])
}

impl World {
    fn new() -> Self {
        Self {
            shards: (0..SHARDS)
                .map(|s| {
                    RealmShard::new(
                        Uri::from(REALM),
                        s,
                        SHARDS,
                        RoutingConfig::default(),
                        7 + s as u64,
                    )
                })
                .collect(),
            queues: BTreeMap::new(),
            clients: Default::default(),
            by_id: HashMap::new(),
            next_id: 1,
            now: Instant::now(),
            roles: router_roles(&["publisher_exclusion"], &["call_canceling"]),
            aborts: Vec::new(),
        }
    }

    fn known(&self, slot: usize, r: IdRef, kind: fn(&Client) -> &Vec<Id>) -> Id {
        match r {
            IdRef::Known(i) => match self.clients[slot].as_ref().map(kind) {
                Some(ids) if !ids.is_empty() => ids[usize::from(i) % ids.len()],
                _ => u64::from(i),
            },
            IdRef::Small(i) => u64::from(i),
            IdRef::Any(x) => x,
        }
    }

    fn session_ref(&self, r: IdRef) -> Id {
        match r {
            IdRef::Known(i) => {
                let ids: Vec<Id> = self.by_id.keys().copied().collect();
                if ids.is_empty() {
                    0
                } else {
                    let mut ids = ids;
                    ids.sort_unstable();
                    ids[usize::from(i) % ids.len()]
                }
            }
            IdRef::Small(i) => u64::from(i),
            IdRef::Any(x) => x,
        }
    }

    fn build(&self, slot: usize, m: Msg) -> Message {
        let uri = |i: u8| Uri::from(pick(URIS, i));
        match m {
            Msg::Hello {
                realm,
                roles,
                authmethods,
            } => {
                let mut details = HelloDetails::default();
                if roles & 0x80 == 0 {
                    details.roles = Some(DictField(Value::Dict(roles_dict(roles))));
                }
                details.authmethods = match authmethods % 4 {
                    0 => None,
                    1 => Some(vec!["anonymous".into()]),
                    2 => Some(vec!["ticket".into()]),
                    _ => Some(Vec::new()),
                };
                Message::Hello(Box::new(Hello {
                    realm: Uri::from(pick(&[REALM, "closed", "nope", "a..b"], realm)),
                    details,
                }))
            }
            Msg::Subscribe {
                req,
                topic,
                policy: p,
            } => Message::Subscribe(Subscribe {
                request: req.into(),
                options: SubscribeOptions {
                    match_policy: policy(p),
                    ..Default::default()
                },
                topic: uri(topic),
            }),
            Msg::Unsubscribe { req, sub } => Message::Unsubscribe(Unsubscribe {
                request: req.into(),
                subscription: self.known(slot, sub, |c| &c.subscriptions),
            }),
            Msg::Publish {
                req,
                topic,
                acknowledge,
                exclude_me,
                eligible,
                exclude,
                eligible_authrole,
                payload: p,
            } => Message::Publish(Box::new(Publish {
                request: req.into(),
                options: PublishOptions {
                    acknowledge: flag(acknowledge),
                    exclude_me: flag(exclude_me),
                    eligible: eligible.map(|r| vec![self.session_ref(r)]),
                    exclude: exclude.map(|r| vec![self.session_ref(r)]),
                    eligible_authrole: eligible_authrole.then(|| vec!["anonymous".into()]),
                    ..Default::default()
                },
                topic: uri(topic),
                payload: payload(p),
            })),
            Msg::Register {
                req,
                procedure,
                policy: p,
                invoke,
                force,
            } => Message::Register(Register {
                request: req.into(),
                options: RegisterOptions {
                    match_policy: policy(p),
                    invoke: pick(
                        &[
                            None,
                            Some(InvokePolicy::Single),
                            Some(InvokePolicy::RoundRobin),
                            Some(InvokePolicy::Random),
                            Some(InvokePolicy::First),
                            Some(InvokePolicy::Last),
                        ],
                        invoke,
                    ),
                    force_reregister: force.then_some(true),
                    ..Default::default()
                },
                procedure: uri(procedure),
            }),
            Msg::Unregister { req, reg } => Message::Unregister(Unregister {
                request: req.into(),
                registration: self.known(slot, reg, |c| &c.registrations),
            }),
            Msg::Call {
                req,
                procedure,
                timeout,
                receive_progress,
                progress,
                disclose_me,
                payload: p,
            } => Message::Call(Box::new(Call {
                request: (req % 8).into(),
                options: CallOptions {
                    timeout: pick(
                        &[None, Some(0), Some(5), Some(50), Some(1000), Some(u64::MAX)],
                        timeout,
                    ),
                    receive_progress: flag(receive_progress),
                    progress: flag(progress),
                    disclose_me: flag(disclose_me),
                    ..Default::default()
                },
                procedure: uri(procedure),
                payload: payload(p),
            })),
            Msg::Cancel { req, mode } => Message::Cancel(Cancel {
                request: (req % 8).into(),
                options: CancelOptions {
                    mode: pick(
                        &[
                            None,
                            Some(CancelMode::Skip),
                            Some(CancelMode::Kill),
                            Some(CancelMode::KillNoWait),
                        ],
                        mode,
                    ),
                    ..Default::default()
                },
            }),
            Msg::Yield {
                inv,
                progress,
                payload: p,
            } => Message::Yield(Box::new(Yield {
                request: self.known(slot, inv, |c| &c.invocations),
                options: YieldOptions {
                    progress: progress.then_some(true),
                    ..Default::default()
                },
                payload: payload(p),
            })),
            Msg::Error {
                request_type,
                inv,
                payload: p,
            } => Message::Error(Box::new(Error {
                request_type: pick(
                    &[
                        code::INVOCATION,
                        code::INVOCATION,
                        code::CALL,
                        code::EVENT,
                        9999,
                    ],
                    request_type,
                ),
                request: self.known(slot, inv, |c| &c.invocations),
                details: Dict::new(),
                error: Uri::from(pick(&["com.err", "wamp.error.canceled", "a..b"], p >> 2)),
                payload: payload(p),
            })),
            Msg::EventReceived { publication } => Message::EventReceived(EventReceived {
                publication: self.known(slot, publication, |c| &c.publications),
                details: None,
                payload: Payload::Empty,
            }),
            Msg::Goodbye => Message::Goodbye(Goodbye {
                details: Dict::new(),
                reason: Uri::from("wamp.close.close_realm"),
            }),
            Msg::Abort => Message::Abort(Abort {
                details: Dict::new(),
                reason: Uri::from("wamp.close.system_shutdown"),
            }),
            Msg::RouterOnly(k) => match k % 5 {
                0 => Message::Welcome(Box::new(Welcome {
                    session: 1,
                    details: WelcomeDetails::default(),
                })),
                1 => Message::Event(Box::new(Event {
                    subscription: 1,
                    publication: 1,
                    details: EventDetails::default(),
                    payload: Payload::Empty,
                })),
                2 => Message::Invocation(Box::new(Invocation {
                    request: 1,
                    registration: 1,
                    details: InvocationDetails::default(),
                    payload: Payload::Empty,
                })),
                3 => Message::Authenticate(Authenticate {
                    signature: "x".into(),
                    extra: Dict::new(),
                }),
                _ => Message::Published(Published {
                    request: 1,
                    publication: 1,
                }),
            },
        }
    }

    fn connect(&mut self, slot: usize, shard: usize) {
        if self.clients[slot].is_some() {
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.by_id.insert(id, slot);
        self.clients[slot] = Some(Client {
            shard,
            session: Session::new(id, std::rc::Rc::new(self.roles.clone())),
            routed: None,
            subscriptions: Vec::new(),
            registrations: Vec::new(),
            invocations: Vec::new(),
            publications: Vec::new(),
        });
    }

    /// The connection is gone: routing forgets the session (`Shard::session_gone`).
    fn close(&mut self, slot: usize) {
        let Some(client) = self.clients[slot].take() else {
            return;
        };
        self.by_id.remove(&client.session.id);
        if let Some(sref) = client.routed {
            let mut out = Vec::new();
            self.shards[client.shard].on_session_leave(sref.id, self.now, &mut out);
            self.collect(client.shard, out);
        }
    }

    fn feed(&mut self, slot: usize, msg: Result<Message, DecodeError>) {
        let Some(client) = self.clients[slot].as_mut() else {
            return;
        };
        let mut outs = Vec::new();
        match msg {
            Ok(m) => client.session.on_message(m, &Realms, &mut outs),
            Err(e) => client.session.on_decode_error(&e, &mut outs),
        }
        self.apply(slot, outs);
    }

    fn apply(&mut self, slot: usize, outs: Vec<SessionOutput>) {
        for o in outs {
            let Some(client) = self.clients[slot].as_mut() else {
                return;
            };
            match o {
                SessionOutput::Reply(_) => {}
                SessionOutput::Joined { realm } => {
                    assert_eq!(&*realm, REALM);
                    assert!(client.routed.is_none(), "joined twice");
                    let s = &client.session;
                    let features = s.features;
                    let sref =
                        SessionRef::new(s.id, client.shard, &s.authid, &s.authrole, features);
                    client.routed = Some(sref.clone());
                    let details = SessionDetails {
                        authmethod: s.authmethod.clone(),
                        authprovider: "static".into(),
                        local: false,
                        serializer: switchyard::codec::Serializer::MsgPack,
                    };
                    let shard = client.shard;
                    let mut out = Vec::new();
                    self.shards[shard].on_session_join(sref, details, self.now, &mut out);
                    self.collect(shard, out);
                }
                SessionOutput::Route(m) => {
                    let sref = client.routed.clone().expect("routed before joining");
                    let shard = client.shard;
                    let mut out = Vec::new();
                    self.shards[shard].on_message(&sref, m, self.now, &mut out);
                    self.collect(shard, out);
                }
                SessionOutput::Close => self.close(slot),
                // The fuzzed realm has no dynamic authenticator.
                SessionOutput::DynamicAuth(_) => {}
                // Counted and logged by the runtime; the client already has its ABORT.
                SessionOutput::AuthFailed(_) => {}
            }
        }
        self.run_aborts();
    }

    /// What `Shard::apply_actions` does with routing output.
    fn collect(&mut self, shard: usize, out: Vec<Action>) {
        for a in out {
            match a {
                Action::Send { to, msg } => self.deliver(shard, to, &msg),
                Action::SendMany { to, msg } => {
                    assert!(to.len() > 1, "SendMany is for several recipients");
                    for t in to {
                        self.deliver(shard, t, &msg);
                    }
                }
                Action::Peer { shard: to, msg } => {
                    assert_ne!(to, shard, "a shard sent itself a PeerMsg");
                    assert!(to < SHARDS, "PeerMsg to shard {to} of {SHARDS}");
                    self.queues.entry((shard, to)).or_default().push_back(msg);
                }
                // A kill (meta API) ends the session like an abort does, for routing.
                Action::Abort { session, .. } | Action::Kill { session, .. } => {
                    self.aborts.push(session)
                }
                // These shards are not a cluster node: nothing may be addressed to other nodes.
                Action::Cluster(out) => panic!("a router outside a cluster emitted {out:?}"),
            }
        }
    }

    fn run_aborts(&mut self) {
        while let Some(id) = self.aborts.pop() {
            if let Some(&slot) = self.by_id.get(&id) {
                if let Some(c) = self.clients[slot].as_mut() {
                    c.session.state = State::Closed;
                }
                self.close(slot);
            }
        }
    }

    fn deliver(&mut self, shard: usize, to: Id, msg: &Message) {
        let Some(&slot) = self.by_id.get(&to) else {
            return; // gone meanwhile: the runtime drops it too
        };
        let Some(client) = self.clients[slot].as_mut() else {
            return;
        };
        assert_eq!(
            client.shard, shard,
            "shard {shard} sent to session {to} of shard {}",
            client.shard
        );
        assert!(
            client.routed.is_some(),
            "routing sent to session {to} before it joined"
        );
        match msg {
            Message::Subscribed(s) => client.subscriptions.push(s.subscription),
            Message::Registered(r) => client.registrations.push(r.registration),
            Message::Invocation(i) => client.invocations.push(i.request),
            Message::Event(e) => client.publications.push(e.publication),
            Message::Published(p) => client.publications.push(p.publication),
            _ => {}
        }
        for ids in [
            &mut client.subscriptions,
            &mut client.registrations,
            &mut client.invocations,
            &mut client.publications,
        ] {
            if ids.len() > 32 {
                ids.drain(..16);
            }
        }
    }

    fn deliver_peer(&mut self, from: usize, to: usize) -> bool {
        let Some(msg) = self
            .queues
            .get_mut(&(from, to))
            .and_then(VecDeque::pop_front)
        else {
            return false;
        };
        let mut out = Vec::new();
        self.shards[to].on_peer(from, msg, self.now, &mut out);
        self.collect(to, out);
        self.run_aborts();
        true
    }

    fn settle(&mut self) {
        for _ in 0..100_000 {
            let Some(&(from, to)) = self
                .queues
                .iter()
                .find(|(_, q)| !q.is_empty())
                .map(|(k, _)| k)
            else {
                return;
            };
            self.deliver_peer(from, to);
        }
        panic!("peer messages never settle");
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        for s in 0..SHARDS {
            let mut out = Vec::new();
            self.shards[s].on_tick(self.now, &mut out);
            self.collect(s, out);
            self.run_aborts();
        }
    }

    fn step(&mut self, op: Op) {
        let slot = |s: u8| usize::from(s) % SLOTS;
        match op {
            Op::Join {
                slot: s,
                shard,
                roles,
            } => {
                self.connect(slot(s), usize::from(shard) % SHARDS);
                let hello = self.build(
                    slot(s),
                    Msg::Hello {
                        realm: 0,
                        roles,
                        authmethods: 0,
                    },
                );
                self.feed(slot(s), Ok(hello));
            }
            Op::Connect { slot: s, shard } => self.connect(slot(s), usize::from(shard) % SHARDS),
            Op::Send { slot: s, msg } => {
                let m = self.build(slot(s), msg);
                self.feed(slot(s), Ok(m));
            }
            Op::Raw { slot: s, frame } => {
                let m = switchyard::codec::decode(Serializer::MsgPack, &Bytes::from(frame));
                self.feed(slot(s), m);
            }
            Op::Disconnect { slot: s } => self.close(slot(s)),
            Op::Shutdown { slot: s } => {
                if let Some(c) = self.clients[slot(s)].as_mut() {
                    let mut outs = Vec::new();
                    c.session
                        .close_with_goodbye("wamp.close.system_shutdown", "bye", &mut outs);
                    self.apply(slot(s), outs);
                }
            }
            Op::HelloTimeout { slot: s } => {
                if let Some(c) = self.clients[slot(s)].as_mut() {
                    let mut outs = Vec::new();
                    c.session.on_hello_timeout(&mut outs);
                    self.apply(slot(s), outs);
                }
            }
            Op::Advance { ms } => self.advance(Duration::from_millis(u64::from(ms))),
            Op::Deliver { from, n } => {
                let from = usize::from(from) % SHARDS;
                let to = (from + 1) % SHARDS;
                for _ in 0..n {
                    if !self.deliver_peer(from, to) {
                        break;
                    }
                }
            }
            Op::Settle => self.settle(),
        }
    }

    /// Everyone leaves; then nothing may be left anywhere.
    fn finish(&mut self) {
        self.settle();
        for slot in 0..SLOTS {
            self.close(slot);
        }
        self.settle();
        self.advance(Duration::from_secs(3600));
        self.settle();
        for shard in &self.shards {
            let d = shard.dealer();
            let s = shard.shard();
            assert!(
                shard.broker().subscriptions().is_empty(),
                "shard {s}: subscriptions leak: {:?}",
                shard.broker().subscriptions()
            );
            assert!(
                d.registrations().is_empty(),
                "shard {s}: registrations leak: {:?}",
                d.registrations()
            );
            assert_eq!(d.pending_calls(), 0, "shard {s}: calls leak");
            assert_eq!(d.pending_invocations(), 0, "shard {s}: invocations leak");
            assert_eq!(shard.next_deadline(), None, "shard {s}: timers leak");
        }
    }
}

fuzz_target!(|ops: Vec<Op>| {
    let mut world = World::new();
    for op in ops.into_iter().take(400) {
        world.step(op);
    }
    world.finish();
});
