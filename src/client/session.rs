//! The client's internals: shared state, the background task (read, dispatch, reconnect) and
//! the writer task of each connection.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use super::link::{self, LinkReader, LinkWriter, Out};
use super::sync::{timeout, Mailbox, Signal};
use super::transport::Tls;
use super::url::Endpoint;
use super::{
    auth, backoff_delay, CallError, ClientConfig, ClientEvent, Error, Event, Invocation, WampError,
    Yield,
};
use crate::codec::{
    self, code, Dict, Hello, Id, Message, Payload, PublishOptions, RegisterOptions,
    SubscribeOptions, Uri, Value, WelcomeDetails,
};

/// A registered procedure's handler.
pub(crate) type InvokeFn =
    Rc<dyn Fn(Invocation) -> Pin<Box<dyn Future<Output = Result<Yield, CallError>>>>>;
/// A subscription's handler.
pub(crate) type EventFn = Rc<dyn Fn(Event)>;
type Hook = Rc<dyn Fn(&ClientEvent)>;
type ReplyBox = Rc<Mailbox<Result<Message, Error>>>;

/// How long `leave` waits for the router's GOODBYE.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);
/// CHALLENGE rounds accepted while joining.
const MAX_CHALLENGES: usize = 4;

/// What a pending request's reply also updates.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Plain,
    /// A CALL; `progress`: it asked for progressive results.
    Call {
        progress: bool,
    },
    Register(u64),
    Subscribe(u64),
}

struct Pending {
    tx: ReplyBox,
    kind: Kind,
}

struct RegEntry {
    procedure: Uri,
    opts: RegisterOptions,
    handler: InvokeFn,
    router_id: Option<Id>,
    confirmed: bool,
}

struct SubEntry {
    topic: Uri,
    opts: SubscribeOptions,
    handler: EventFn,
    router_id: Option<Id>,
    confirmed: bool,
}

/// The current connection.
struct Conn {
    out: Rc<Mailbox<Out>>,
    /// Set to end the connection (the reader stops, the writer closes the stream).
    dead: Rc<Signal>,
    session: Id,
    welcome: WelcomeDetails,
    generation: u64,
}

#[derive(Default)]
struct State {
    conn: Option<Conn>,
    generation: u64,
    next_request: Id,
    next_key: u64,
    pending: HashMap<Id, Pending>,
    regs: HashMap<u64, RegEntry>,
    reg_ids: HashMap<Id, u64>,
    subs: HashMap<u64, SubEntry>,
    sub_ids: HashMap<Id, Vec<u64>>,
    invocations: HashMap<Id, Rc<InvState>>,
    leaving: bool,
    closed: bool,
}

/// A joined session, before the background task takes it over.
pub(crate) struct Joined {
    reader: LinkReader,
    writer: LinkWriter,
    session: Id,
    welcome: WelcomeDetails,
}

/// Where (re)connections go.
pub(crate) enum Target {
    /// `cfg.url`, with the TLS settings built once.
    Net { tls: Option<Tls> },
    /// In-process, through a router's connector (`cfg.url` is ignored).
    Local(crate::shard::LocalConnector),
}

/// Shared by every [`super::Client`] handle and the background task.
pub(crate) struct Inner {
    cfg: ClientConfig,
    target: Target,
    st: RefCell<State>,
    pub(crate) hooks: RefCell<Vec<Hook>>,
    /// Set when the client is finally closed.
    pub(crate) closed: Signal,
    /// Set by `leave`: stop reconnecting.
    stop: Signal,
}

/// One invocation's state, shared by the dispatcher and the handler's [`Invocation`].
pub(crate) struct InvState {
    inner: Rc<Inner>,
    request: Id,
    generation: u64,
    pub(crate) progressive: bool,
    pub(crate) chunks: Mailbox<(Vec<Value>, Dict)>,
    pub(crate) interrupted: Cell<Option<codec::CancelMode>>,
    pub(crate) interrupt: Signal,
    /// The handler answered before the final chunk: later chunks are dropped.
    finished: Cell<bool>,
    /// The handler answered (YIELD or ERROR queued): no more progressive results.
    answered: Cell<bool>,
}

impl InvState {
    pub(crate) fn send_progress(&self, y: Yield) -> Result<(), Error> {
        if self.answered.get() {
            // A progressive YIELD after the final one is a protocol violation.
            return Err(Error::Invalid("the invocation was already answered".into()));
        }
        self.inner.send_checked(
            self.generation,
            Message::Yield(codec::Yield {
                request: self.request,
                options: codec::YieldOptions {
                    progress: Some(true),
                    ..Default::default()
                },
                payload: payload(y.args, y.kwargs),
            }),
        )
    }
}

/// A payload as values.
pub(crate) fn parts(p: &Payload) -> Result<(Vec<Value>, Dict), Error> {
    let bad = |e: codec::DecodeError| Error::Protocol(format!("payload: {e}"));
    Ok((
        p.args_values().map_err(bad)?.unwrap_or_default(),
        p.kwargs_values().map_err(bad)?.unwrap_or_default(),
    ))
}

/// Values as a payload (as short as the wire allows).
pub(crate) fn payload(args: Vec<Value>, kwargs: Dict) -> Payload {
    match (args.is_empty(), kwargs.is_empty()) {
        (true, true) => Payload::Empty,
        (_, true) => Payload::args(args),
        _ => Payload::args_kwargs(args, kwargs),
    }
}

fn wamp_error(e: codec::Error) -> Error {
    let (args, kwargs) = parts(&e.payload).unwrap_or_default();
    Error::Wamp(WampError {
        error: e.error,
        args,
        kwargs,
        details: e.details,
    })
}

fn error_message(request_type: u64, request: Id, error: &str, args: Vec<Value>) -> Message {
    Message::Error(codec::Error {
        request_type,
        request,
        details: Dict::new(),
        error: Uri::from(error),
        payload: payload(args, Dict::new()),
    })
}

impl Inner {
    /// A client of the router at `cfg.url`.
    pub(crate) fn new_net(cfg: ClientConfig) -> Result<Rc<Inner>, Error> {
        let tls = if cfg.url.starts_with("rss://") || cfg.url.starts_with("wss://") {
            Some(
                Tls::new(cfg.tls.ca_file.as_ref(), cfg.tls.insecure)?
                    .with_server_name(cfg.tls.server_name.clone()),
            )
        } else {
            None
        };
        Ok(Inner::new(cfg, Target::Net { tls }))
    }

    /// An in-process client of the router behind `connector`.
    pub(crate) fn new_local(
        cfg: ClientConfig,
        connector: crate::shard::LocalConnector,
    ) -> Rc<Inner> {
        Inner::new(cfg, Target::Local(connector))
    }

    fn new(cfg: ClientConfig, target: Target) -> Rc<Inner> {
        Rc::new(Inner {
            cfg,
            target,
            st: RefCell::new(State {
                next_request: 1,
                next_key: 1,
                ..Default::default()
            }),
            hooks: RefCell::new(Vec::new()),
            closed: Signal::default(),
            stop: Signal::default(),
        })
    }

    // ----- connecting -----

    /// Connects and joins within `connect_timeout`.
    pub(crate) async fn establish(&self) -> Result<Joined, Error> {
        match timeout(self.cfg.connect_timeout, self.establish_inner()).await {
            Some(r) => r,
            None => Err(Error::Timeout),
        }
    }

    async fn establish_inner(&self) -> Result<Joined, Error> {
        let (reader, writer) = match &self.target {
            Target::Net { tls } => {
                let ep = Endpoint::parse(&self.cfg.url)?;
                link::open(&ep, self.cfg.serializer, tls.as_ref()).await?
            }
            Target::Local(connector) => link::open_local(connector)?,
        };
        self.join(reader, writer).await
    }

    /// HELLO, CHALLENGE/AUTHENTICATE, WELCOME or ABORT.
    pub(crate) async fn join(
        &self,
        mut reader: LinkReader,
        mut writer: LinkWriter,
    ) -> Result<Joined, Error> {
        writer
            .send(Message::Hello(Hello {
                realm: Uri::from(self.cfg.realm.as_str()),
                details: auth::hello_details(&self.cfg.auth, &self.cfg.agent),
            }))
            .await?;
        let mut challenges = 0;
        loop {
            let m = reader
                .next(None)
                .await?
                .ok_or_else(|| Error::Transport("connection closed while joining".into()))?;
            match m {
                Message::Welcome(w) => {
                    return Ok(Joined {
                        reader,
                        writer,
                        session: w.session,
                        welcome: w.details,
                    })
                }
                Message::Abort(a) => {
                    let message = a
                        .details
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    writer.close().await;
                    return Err(Error::Aborted {
                        reason: a.reason,
                        message,
                    });
                }
                Message::Challenge(ch) if challenges < MAX_CHALLENGES => {
                    challenges += 1;
                    match auth::respond(&self.cfg.auth, &ch) {
                        Ok(reply) => writer.send(Message::Authenticate(reply)).await?,
                        Err(e) => {
                            // A method not offered, a malformed or unreasonable challenge.
                            abort_join(&mut writer, &e.to_string()).await;
                            return Err(e);
                        }
                    }
                }
                other => {
                    let e = format!("{} while joining", other.name());
                    abort_join(&mut writer, &e).await;
                    return Err(Error::Protocol(e));
                }
            }
        }
    }

    /// Starts the background task on a joined session.
    pub(crate) fn start(self: &Rc<Self>, joined: Joined) {
        let inner = self.clone();
        glommio::spawn_local(async move { inner.supervise(joined).await }).detach();
    }

    /// The background task: runs each connection, reconnects per the policy, closes.
    async fn supervise(self: Rc<Self>, first: Joined) {
        let mut joined = first;
        let mut restore = false;
        loop {
            let reason = self.run_connection(joined, restore).await;
            if self.stop.is_set() || self.st.borrow().leaving {
                break;
            }
            self.emit(&ClientEvent::Disconnected {
                reason: reason.clone(),
            });
            let Some(policy) = self.cfg.reconnect.clone() else {
                break;
            };
            let mut attempt: u32 = 0;
            let next = loop {
                if policy.max_attempts.is_some_and(|max| attempt >= max) {
                    self.emit(&ClientEvent::GaveUp { attempts: attempt });
                    break None;
                }
                attempt += 1;
                let delay = backoff_delay(&policy, attempt, rand::random::<f64>());
                self.emit(&ClientEvent::Reconnecting { attempt, delay });
                let stopped = futures_lite::future::or(
                    async {
                        glommio::timer::sleep(delay).await;
                        false
                    },
                    async {
                        self.stop.wait().await;
                        true
                    },
                )
                .await;
                if stopped {
                    break None;
                }
                let attempt_result =
                    futures_lite::future::or(async { Some(self.establish().await) }, async {
                        self.stop.wait().await;
                        None
                    })
                    .await;
                match attempt_result {
                    None => break None,
                    Some(Ok(j)) => break Some(j),
                    Some(Err(e)) => {
                        tracing::debug!("reconnect attempt {attempt} failed: {e}");
                        if matches!(e, Error::Aborted { .. } | Error::Invalid(_)) {
                            // A refusal will not change by retrying.
                            self.emit(&ClientEvent::GaveUp { attempts: attempt });
                            break None;
                        }
                    }
                }
            };
            match next {
                Some(j) => {
                    joined = j;
                    restore = true;
                }
                None => break,
            }
        }
        self.finish_close();
    }

    fn finish_close(&self) {
        {
            let mut st = self.st.borrow_mut();
            st.closed = true;
            st.conn = None;
        }
        self.closed.set();
    }

    /// Runs one connection until it ends; returns why it ended.
    async fn run_connection(self: &Rc<Self>, joined: Joined, restore: bool) -> String {
        let Joined {
            mut reader,
            mut writer,
            session,
            welcome,
        } = joined;
        let out = Rc::new(Mailbox::new());
        let dead = Rc::new(Signal::default());
        let generation = {
            let mut st = self.st.borrow_mut();
            st.generation += 1;
            // Request IDs are session-scoped: each session counts from 1 (nothing of the
            // previous session is pending any more, see `teardown`).
            st.next_request = 1;
            let generation = st.generation;
            st.conn = Some(Conn {
                out: out.clone(),
                dead: dead.clone(),
                session,
                welcome,
                generation,
            });
            generation
        };
        // The writer: batches what is queued, one write per batch.
        {
            let out = out.clone();
            let dead = dead.clone();
            glommio::spawn_local(async move {
                while let Some(first) = out.recv().await {
                    writer.push(first);
                    while let Some(more) = out.try_recv() {
                        writer.push(more);
                    }
                    if let Err(e) = writer.flush().await {
                        tracing::debug!("client write failed: {e}");
                        dead.set();
                        break;
                    }
                }
                writer.close().await;
            })
            .detach();
        }
        if restore {
            let inner = self.clone();
            glommio::spawn_local(async move { inner.restore(session).await }).detach();
        }
        let reason = loop {
            let next =
                futures_lite::future::or(async { Some(reader.next(Some(&out)).await) }, async {
                    dead.wait().await;
                    None
                })
                .await;
            match next {
                None => break "connection closed".to_owned(),
                Some(Err(Error::Protocol(m))) => {
                    // A message that does not decode: the router broke the protocol.
                    self.abort_violation(generation, &m);
                    break format!("protocol: {m}");
                }
                Some(Err(e)) => break e.to_string(),
                Some(Ok(None)) => break "connection closed by the router".to_owned(),
                Some(Ok(Some(m))) => {
                    if let Some(reason) = self.dispatch(m, generation) {
                        break reason;
                    }
                }
            }
        };
        self.teardown();
        reason
    }

    /// The connection is gone: fail what waits for it.
    fn teardown(&self) {
        let (pending, invocations) = {
            let mut st = self.st.borrow_mut();
            if let Some(c) = st.conn.take() {
                c.out.close();
                c.dead.set();
            }
            st.reg_ids.clear();
            st.sub_ids.clear();
            for e in st.regs.values_mut() {
                e.router_id = None;
            }
            for e in st.subs.values_mut() {
                e.router_id = None;
            }
            (
                std::mem::take(&mut st.pending),
                std::mem::take(&mut st.invocations),
            )
        };
        for (_, p) in pending {
            p.tx.push(Err(Error::Transport("connection lost".into())));
            p.tx.close();
        }
        for (_, inv) in invocations {
            inv.chunks.close();
            // Their answers cannot reach the caller any more: let the handlers stop.
            if inv.interrupted.get().is_none() {
                inv.interrupted.set(Some(codec::CancelMode::KillNoWait));
            }
            inv.interrupt.set();
        }
    }

    /// Re-registers and re-subscribes after a reconnect.
    async fn restore(self: Rc<Self>, session: Id) {
        let (regs, subs) = {
            let st = self.st.borrow();
            let mut regs: Vec<(u64, Uri, RegisterOptions)> = st
                .regs
                .iter()
                .filter(|(_, e)| e.confirmed)
                .map(|(k, e)| (*k, e.procedure.clone(), e.opts.clone()))
                .collect();
            regs.sort_by_key(|r| r.0);
            let mut subs: Vec<(u64, Uri, SubscribeOptions)> = st
                .subs
                .iter()
                .filter(|(_, e)| e.confirmed)
                .map(|(k, e)| (*k, e.topic.clone(), e.opts.clone()))
                .collect();
            subs.sort_by_key(|s| s.0);
            (regs, subs)
        };
        let mut waits = Vec::new();
        for (key, procedure, options) in regs {
            let sent = self.request(Kind::Register(key), |request| {
                Message::Register(codec::Register {
                    request,
                    options,
                    procedure: procedure.clone(),
                })
            });
            waits.push((procedure, sent, true));
        }
        for (key, topic, options) in subs {
            let sent = self.request(Kind::Subscribe(key), |request| {
                Message::Subscribe(codec::Subscribe {
                    request,
                    options,
                    topic: topic.clone(),
                })
            });
            waits.push((topic, sent, false));
        }
        let (mut registrations, mut subscriptions) = (0, 0);
        for (uri, sent, is_reg) in waits {
            let result = match sent {
                Err(e) => Err(e),
                Ok((request, generation, rx)) => self.wait_reply(request, generation, &rx).await,
            };
            match result {
                Ok(_) if is_reg => registrations += 1,
                Ok(_) => subscriptions += 1,
                Err(Error::Transport(_)) => return, // lost again: the next round restores
                Err(error) => self.emit(&ClientEvent::RestoreFailed { uri, error }),
            }
        }
        if self.session_id() == Some(session) {
            self.emit(&ClientEvent::Rejoined {
                session,
                registrations,
                subscriptions,
            });
        }
    }

    pub(crate) fn emit(&self, ev: &ClientEvent) {
        let hooks: Vec<Hook> = self.hooks.borrow().clone();
        for h in hooks {
            h(ev);
        }
    }

    // ----- dispatching -----

    /// Handles one message; `Some(reason)` ends the connection.
    fn dispatch(self: &Rc<Self>, m: Message, generation: u64) -> Option<String> {
        match m {
            Message::Result(r) => {
                let mut st = self.st.borrow_mut();
                let progress = r.details.progress == Some(true);
                let p = if progress {
                    // Only a call that asked for progressive results gets them; anything
                    // else would queue without bound (or keep a finished request pending).
                    match st.pending.get(&r.request) {
                        Some(p) if matches!(p.kind, Kind::Call { progress: true }) => {
                            Some(p.tx.clone())
                        }
                        Some(_) => {
                            tracing::debug!("dropping an unasked-for progressive RESULT");
                            None
                        }
                        None => None,
                    }
                } else {
                    st.pending.remove(&r.request).map(|p| p.tx)
                };
                drop(st);
                if let Some(tx) = p {
                    tx.push(Ok(Message::Result(r)));
                }
            }
            Message::Error(e) => {
                if e.request_type == code::INVOCATION {
                    return None;
                }
                let p = self.st.borrow_mut().pending.remove(&e.request);
                if let Some(p) = p {
                    match p.kind {
                        Kind::Register(key) => {
                            self.st.borrow_mut().regs.remove(&key);
                        }
                        Kind::Subscribe(key) => {
                            self.st.borrow_mut().subs.remove(&key);
                        }
                        Kind::Plain | Kind::Call { .. } => {}
                    }
                    p.tx.push(Err(wamp_error(e)));
                }
            }
            Message::Registered(r) => {
                let mut st = self.st.borrow_mut();
                if let Some(p) = st.pending.remove(&r.request) {
                    if let Kind::Register(key) = p.kind {
                        if let Some(e) = st.regs.get_mut(&key) {
                            e.router_id = Some(r.registration);
                            e.confirmed = true;
                            st.reg_ids.insert(r.registration, key);
                        }
                    }
                    drop(st);
                    p.tx.push(Ok(Message::Registered(r)));
                }
            }
            Message::Subscribed(s) => {
                let mut st = self.st.borrow_mut();
                if let Some(p) = st.pending.remove(&s.request) {
                    if let Kind::Subscribe(key) = p.kind {
                        if let Some(e) = st.subs.get_mut(&key) {
                            e.router_id = Some(s.subscription);
                            e.confirmed = true;
                            let keys = st.sub_ids.entry(s.subscription).or_default();
                            if !keys.contains(&key) {
                                keys.push(key);
                            }
                        }
                    }
                    drop(st);
                    p.tx.push(Ok(Message::Subscribed(s)));
                }
            }
            Message::Unregistered(u) => {
                if u.request == 0 {
                    // Revoked by the router.
                    let id = u
                        .details
                        .as_ref()
                        .and_then(|d| d.get("registration"))
                        .and_then(Value::as_id);
                    let mut st = self.st.borrow_mut();
                    if let Some(key) = id.and_then(|id| st.reg_ids.remove(&id)) {
                        st.regs.remove(&key);
                    }
                } else {
                    self.reply_plain(u.request, Message::Unregistered(u));
                }
            }
            Message::Unsubscribed(u) => {
                if u.request == 0 {
                    let id = u
                        .details
                        .as_ref()
                        .and_then(|d| d.get("subscription"))
                        .and_then(Value::as_id);
                    let mut st = self.st.borrow_mut();
                    if let Some(keys) = id.and_then(|id| st.sub_ids.remove(&id)) {
                        for k in keys {
                            st.subs.remove(&k);
                        }
                    }
                } else {
                    self.reply_plain(u.request, Message::Unsubscribed(u));
                }
            }
            Message::Published(p) => self.reply_plain(p.request, Message::Published(p)),
            Message::Event(ev) => self.on_event(ev),
            Message::Invocation(inv) => return self.on_invocation(inv, generation),
            Message::Interrupt(i) => {
                let inv = self.st.borrow().invocations.get(&i.request).cloned();
                if let Some(inv) = inv {
                    if inv.finished.get() {
                        self.st.borrow_mut().invocations.remove(&i.request);
                    }
                    inv.interrupted
                        .set(Some(i.options.mode.unwrap_or(codec::CancelMode::Kill)));
                    inv.interrupt.set();
                }
            }
            Message::Goodbye(g) => {
                let leaving = self.st.borrow().leaving;
                if !leaving {
                    self.send_in(
                        generation,
                        Message::Goodbye(codec::Goodbye {
                            details: Dict::new(),
                            reason: Uri::from("wamp.close.goodbye_and_out"),
                        }),
                    );
                }
                return Some(format!("router said goodbye: {}", g.reason));
            }
            Message::Abort(a) => return Some(format!("router aborted: {}", a.reason)),
            other => {
                // E.g. a second WELCOME, or a message only a router receives: the session is
                // unusable; tell the router why before closing (the writer drains it).
                let reason = format!("unexpected {} from the router", other.name());
                self.abort_violation(generation, &reason);
                return Some(format!("protocol: {reason}"));
            }
        }
        None
    }

    /// Queues ABORT `wamp.error.protocol_violation` (before the connection is closed).
    fn abort_violation(&self, generation: u64, message: &str) {
        let mut details = Dict::new();
        details.insert("message".into(), Value::Str(message.to_owned()));
        self.send_in(
            generation,
            Message::Abort(codec::Abort {
                details,
                reason: Uri::from("wamp.error.protocol_violation"),
            }),
        );
    }

    fn reply_plain(&self, request: Id, m: Message) {
        let p = self.st.borrow_mut().pending.remove(&request);
        if let Some(p) = p {
            p.tx.push(Ok(m));
        }
    }

    fn on_event(&self, ev: codec::Event) {
        let targets: Vec<(EventFn, Uri)> = {
            let st = self.st.borrow();
            match st.sub_ids.get(&ev.subscription) {
                None => return,
                Some(keys) => keys
                    .iter()
                    .filter_map(|k| st.subs.get(k))
                    .map(|e| (e.handler.clone(), e.topic.clone()))
                    .collect(),
            }
        };
        let (args, kwargs) = match parts(&ev.payload) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("dropping EVENT {}: {e}", ev.publication);
                return;
            }
        };
        for (handler, topic) in targets {
            handler(Event {
                subscription: ev.subscription,
                publication: ev.publication,
                topic: ev.details.topic.clone().unwrap_or(topic),
                args: args.clone(),
                kwargs: kwargs.clone(),
                details: ev.details.clone(),
            });
        }
    }

    /// Runs or continues an invocation; `Some(reason)` ends the connection.
    fn on_invocation(self: &Rc<Self>, inv: codec::Invocation, generation: u64) -> Option<String> {
        let more = inv.details.progress == Some(true);
        // A further chunk of a progressive invocation?
        let running = self.st.borrow().invocations.get(&inv.request).cloned();
        if let Some(state) = running {
            if !state.progressive || state.chunks.is_closed() {
                // The request ID of an invocation in progress, which takes no more chunks:
                // answering it would answer the first one too.
                let reason = format!("INVOCATION reuses the running request {}", inv.request);
                self.abort_violation(generation, &reason);
                return Some(format!("protocol: {reason}"));
            }
            if state.progressive && !state.chunks.is_closed() && !state.finished.get() {
                match parts(&inv.payload) {
                    Ok(p) => {
                        state.chunks.push(p);
                    }
                    Err(e) => tracing::warn!("dropping invocation chunk: {e}"),
                }
            }
            if !more {
                state.chunks.close();
                if state.finished.get() {
                    self.st.borrow_mut().invocations.remove(&inv.request);
                }
            }
            return None;
        }
        let target = {
            let st = self.st.borrow();
            st.reg_ids
                .get(&inv.registration)
                .and_then(|k| st.regs.get(k))
                .map(|e| (e.handler.clone(), e.procedure.clone()))
        };
        let Some((handler, procedure)) = target else {
            self.send_in(
                generation,
                error_message(
                    code::INVOCATION,
                    inv.request,
                    "wamp.error.no_such_registration",
                    Vec::new(),
                ),
            );
            return None;
        };
        let (args, kwargs) = match parts(&inv.payload) {
            Ok(p) => p,
            Err(e) => {
                self.send_in(
                    generation,
                    error_message(
                        code::INVOCATION,
                        inv.request,
                        "wamp.error.invalid_argument",
                        vec![Value::Str(e.to_string())],
                    ),
                );
                return None;
            }
        };
        let state = Rc::new(InvState {
            inner: self.clone(),
            request: inv.request,
            generation,
            progressive: more,
            chunks: Mailbox::new(),
            interrupted: Cell::new(None),
            interrupt: Signal::default(),
            finished: Cell::new(false),
            answered: Cell::new(false),
        });
        if !more {
            state.chunks.close();
        }
        self.st
            .borrow_mut()
            .invocations
            .insert(inv.request, state.clone());
        let invocation = Invocation {
            request: inv.request,
            registration: inv.registration,
            procedure: inv.details.procedure.clone().unwrap_or(procedure),
            args,
            kwargs,
            details: inv.details,
            state: state.clone(),
        };
        let inner = self.clone();
        let request = inv.request;
        glommio::spawn_local(async move {
            let result = handler(invocation).await;
            state.answered.set(true);
            {
                let mut st = inner.st.borrow_mut();
                if st
                    .invocations
                    .get(&request)
                    .is_some_and(|s| Rc::ptr_eq(s, &state))
                {
                    if state.chunks.is_closed() {
                        st.invocations.remove(&request);
                    } else {
                        // Chunks of this call may still come: keep the request ID known
                        // until the final one, so they are not taken for new invocations.
                        state.finished.set(true);
                    }
                }
            }
            let m = match result {
                Ok(y) => Message::Yield(codec::Yield {
                    request,
                    options: Default::default(),
                    payload: payload(y.args, y.kwargs),
                }),
                Err(e) => Message::Error(codec::Error {
                    request_type: code::INVOCATION,
                    request,
                    details: Dict::new(),
                    error: e.error,
                    payload: payload(e.args, e.kwargs),
                }),
            };
            inner.send_in(generation, m);
        })
        .detach();
        None
    }

    // ----- sending -----

    /// Queues `m` on the connection of `generation`; errors if that connection is gone.
    pub(crate) fn send_checked(&self, generation: u64, m: Message) -> Result<(), Error> {
        let st = self.st.borrow();
        match &st.conn {
            Some(c) if c.generation == generation => {
                if c.out.push(Out::Msg(m)) {
                    Ok(())
                } else {
                    Err(Error::Transport("connection lost".into()))
                }
            }
            _ if st.closed => Err(Error::Closed),
            _ => Err(Error::Transport("connection lost".into())),
        }
    }

    /// Like [`Inner::send_checked`], ignoring a lost connection (its peer state is gone too).
    pub(crate) fn send_in(&self, generation: u64, m: Message) {
        let _ = self.send_checked(generation, m);
    }

    /// Allocates a request ID, registers its reply box and sends `build(request)`.
    pub(crate) fn request(
        &self,
        kind: Kind,
        build: impl FnOnce(Id) -> Message,
    ) -> Result<(Id, u64, ReplyBox), Error> {
        let mut st = self.st.borrow_mut();
        if st.closed {
            return Err(Error::Closed);
        }
        let Some(conn) = &st.conn else {
            return Err(Error::Transport("not connected".into()));
        };
        let (out, generation) = (conn.out.clone(), conn.generation);
        let mut request = st.next_request;
        while st.pending.contains_key(&request) {
            request = request % codec::MAX_ID + 1;
        }
        st.next_request = request % codec::MAX_ID + 1;
        let tx: ReplyBox = Rc::new(Mailbox::new());
        st.pending.insert(
            request,
            Pending {
                tx: tx.clone(),
                kind,
            },
        );
        if !out.push(Out::Msg(build(request))) {
            st.pending.remove(&request);
            return Err(Error::Transport("connection lost".into()));
        }
        Ok((request, generation, tx))
    }

    /// The reply to `request`; if this future is dropped first, the request is forgotten
    /// (its pending entry would otherwise stay until the connection ends).
    async fn wait_reply(
        &self,
        request: Id,
        generation: u64,
        rx: &Mailbox<Result<Message, Error>>,
    ) -> Result<Message, Error> {
        let forget = OnDrop(Some(|| self.forget(request, generation)));
        let r = reply(rx).await;
        forget.disarm();
        r
    }

    /// Drops a pending request of the connection `generation` (its reply, if any, is
    /// ignored); a no-op once that connection is gone, as request IDs restart with each
    /// session and the ID may be another request's by now.
    pub(crate) fn forget(&self, request: Id, generation: u64) {
        let mut st = self.st.borrow_mut();
        if st.generation == generation {
            st.pending.remove(&request);
        }
    }

    pub(crate) fn session_id(&self) -> Option<Id> {
        self.st.borrow().conn.as_ref().map(|c| c.session)
    }

    pub(crate) fn welcome_details(&self) -> Option<WelcomeDetails> {
        self.st.borrow().conn.as_ref().map(|c| c.welcome.clone())
    }

    fn new_key(&self) -> u64 {
        let mut st = self.st.borrow_mut();
        let k = st.next_key;
        st.next_key += 1;
        k
    }

    pub(crate) async fn register(
        &self,
        procedure: Uri,
        opts: RegisterOptions,
        handler: InvokeFn,
    ) -> Result<(Id, u64), Error> {
        let key = self.new_key();
        self.st.borrow_mut().regs.insert(
            key,
            RegEntry {
                procedure: procedure.clone(),
                opts: opts.clone(),
                handler,
                router_id: None,
                confirmed: false,
            },
        );
        // If this future is dropped before the answer, the entry goes too (else a handler
        // nobody can unregister would stay, and be restored after reconnects).
        let entry = OnDrop(Some(|| {
            self.st.borrow_mut().regs.remove(&key);
        }));
        let sent = self.request(Kind::Register(key), |request| {
            Message::Register(codec::Register {
                request,
                options: opts,
                procedure,
            })
        });
        let result = match sent {
            Ok((request, generation, rx)) => self.wait_reply(request, generation, &rx).await,
            Err(e) => Err(e),
        };
        entry.disarm();
        match result {
            Ok(Message::Registered(r)) => Ok((r.registration, key)),
            Ok(other) => {
                self.st.borrow_mut().regs.remove(&key);
                Err(Error::Protocol(format!(
                    "{} in answer to REGISTER",
                    other.name()
                )))
            }
            Err(e) => {
                self.st.borrow_mut().regs.remove(&key);
                Err(e)
            }
        }
    }

    pub(crate) async fn unregister(&self, key: u64) -> Result<(), Error> {
        let router_id = {
            let mut st = self.st.borrow_mut();
            if st.closed {
                return Err(Error::Closed);
            }
            let Some(e) = st.regs.remove(&key) else {
                return Err(Error::Invalid("not registered".into()));
            };
            if let Some(id) = e.router_id {
                st.reg_ids.remove(&id);
            }
            e.router_id
        };
        let Some(registration) = router_id else {
            return Ok(()); // disconnected: forgotten
        };
        let (request, generation, rx) = self.request(Kind::Plain, |request| {
            Message::Unregister(codec::Unregister {
                request,
                registration,
            })
        })?;
        self.wait_reply(request, generation, &rx).await.map(|_| ())
    }

    pub(crate) async fn subscribe(
        &self,
        topic: Uri,
        opts: SubscribeOptions,
        handler: EventFn,
    ) -> Result<(Id, u64), Error> {
        let key = self.new_key();
        self.st.borrow_mut().subs.insert(
            key,
            SubEntry {
                topic: topic.clone(),
                opts: opts.clone(),
                handler,
                router_id: None,
                confirmed: false,
            },
        );
        let entry = OnDrop(Some(|| {
            self.st.borrow_mut().subs.remove(&key);
        }));
        let sent = self.request(Kind::Subscribe(key), |request| {
            Message::Subscribe(codec::Subscribe {
                request,
                options: opts,
                topic,
            })
        });
        let result = match sent {
            Ok((request, generation, rx)) => self.wait_reply(request, generation, &rx).await,
            Err(e) => Err(e),
        };
        entry.disarm();
        match result {
            Ok(Message::Subscribed(s)) => Ok((s.subscription, key)),
            Ok(other) => {
                self.st.borrow_mut().subs.remove(&key);
                Err(Error::Protocol(format!(
                    "{} in answer to SUBSCRIBE",
                    other.name()
                )))
            }
            Err(e) => {
                self.st.borrow_mut().subs.remove(&key);
                Err(e)
            }
        }
    }

    pub(crate) async fn unsubscribe(&self, key: u64) -> Result<(), Error> {
        let router_id = {
            let mut st = self.st.borrow_mut();
            if st.closed {
                return Err(Error::Closed);
            }
            let Some(e) = st.subs.remove(&key) else {
                return Err(Error::Invalid("not subscribed".into()));
            };
            match e.router_id {
                None => None,
                Some(id) => {
                    let last = match st.sub_ids.get_mut(&id) {
                        Some(keys) => {
                            keys.retain(|k| *k != key);
                            keys.is_empty()
                        }
                        None => true,
                    };
                    if last {
                        st.sub_ids.remove(&id);
                        Some(id)
                    } else {
                        None // another subscription of this client shares the router's
                    }
                }
            }
        };
        let Some(subscription) = router_id else {
            return Ok(());
        };
        let (request, generation, rx) = self.request(Kind::Plain, |request| {
            Message::Unsubscribe(codec::Unsubscribe {
                request,
                subscription,
            })
        })?;
        self.wait_reply(request, generation, &rx).await.map(|_| ())
    }

    pub(crate) async fn publish(
        &self,
        topic: Uri,
        args: Vec<Value>,
        kwargs: Dict,
        opts: PublishOptions,
    ) -> Result<Option<Id>, Error> {
        let ack = opts.acknowledge == Some(true);
        let (request, generation, rx) = self.request(Kind::Plain, |request| {
            Message::Publish(codec::Publish {
                request,
                options: opts,
                topic,
                payload: payload(args, kwargs),
            })
        })?;
        if !ack {
            self.forget(request, generation);
            return Ok(None);
        }
        match self.wait_reply(request, generation, &rx).await? {
            Message::Published(p) => Ok(Some(p.publication)),
            other => Err(Error::Protocol(format!(
                "{} in answer to PUBLISH",
                other.name()
            ))),
        }
    }

    pub(crate) async fn leave(&self) -> Result<(), Error> {
        let conn = {
            let mut st = self.st.borrow_mut();
            if st.closed {
                return Err(Error::Closed);
            }
            st.leaving = true;
            st.conn.as_ref().map(|c| (c.out.clone(), c.dead.clone()))
        };
        self.stop.set();
        if let Some((out, dead)) = conn {
            out.push(Out::Msg(Message::Goodbye(codec::Goodbye {
                details: Dict::new(),
                reason: Uri::from("wamp.close.close_realm"),
            })));
            if timeout(LEAVE_TIMEOUT, self.closed.wait()).await.is_none() {
                dead.set();
            }
        }
        // Bounded: the background task ends once the connection is dead or stop is set.
        let _ = timeout(LEAVE_TIMEOUT, self.closed.wait()).await;
        Ok(())
    }
}

/// Sends ABORT `wamp.error.protocol_violation` (best effort) and closes a link being joined.
async fn abort_join(writer: &mut LinkWriter, message: &str) {
    let mut details = Dict::new();
    details.insert("message".into(), Value::Str(message.to_owned()));
    let _ = writer
        .send(Message::Abort(codec::Abort {
            details,
            reason: Uri::from("wamp.error.protocol_violation"),
        }))
        .await;
    writer.close().await;
}

/// Runs its closure when dropped, unless disarmed.
struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> OnDrop<F> {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// The single reply to a request.
async fn reply(rx: &Mailbox<Result<Message, Error>>) -> Result<Message, Error> {
    match rx.recv().await {
        Some(r) => r,
        None => Err(Error::Transport("connection lost".into())),
    }
}
