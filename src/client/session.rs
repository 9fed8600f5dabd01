//! The client's internals: shared state, the background task (read, dispatch, reconnect) and
//! the writer task of each connection.
//!
//! [`Inner`] is one client's state, split by concern over three files:
//! - this file: the state itself and the connection lifecycle (connect and join, the background
//!   task that runs and re-establishes connections, teardown, restoring registrations and
//!   subscriptions after a reconnect);
//! - `dispatch.rs`: what the background task does with each message the router sends (replies
//!   to pending requests, EVENT, INVOCATION/INTERRUPT, protocol violations);
//! - `requests.rs`: what the API sends (register, subscribe, publish, leave, the request/reply
//!   bookkeeping they share).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

use super::link::{self, LinkReader, LinkWriter, Out};
use super::rt::Rt;
use super::sync::{Mailbox, Signal};
use super::transport::Tls;
use super::url::Endpoint;
use super::{
    auth, backoff_delay, CallError, ClientConfig, ClientEvent, Error, Event, Invocation, WampError,
    Yield,
};
use crate::codec::{
    self, Dict, Hello, Id, Message, Payload, RegisterOptions, SubscribeOptions, Uri, Value,
    WelcomeDetails,
};

mod dispatch;
mod requests;

/// A registered procedure's handler.
pub(crate) type InvokeFn =
    Rc<dyn Fn(Invocation) -> Pin<Box<dyn Future<Output = Result<Yield, CallError>>>>>;
/// A subscription's handler.
pub(crate) type EventFn = Rc<dyn Fn(Event)>;
type Hook = Rc<dyn Fn(&ClientEvent)>;
/// Told of each session change (joined: its ID and WELCOME.Details; `None`: gone).
pub(crate) type SessionObserver = Rc<dyn Fn(Option<(Id, &WelcomeDetails)>)>;
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
    #[cfg(feature = "router")]
    Local(crate::shard::LocalConnector),
}

/// Shared by every [`super::Client`] handle and the background task.
pub(crate) struct Inner {
    /// The executor this client runs on.
    pub(crate) rt: Rt,
    cfg: ClientConfig,
    target: Target,
    st: RefCell<State>,
    pub(crate) hooks: RefCell<Vec<Hook>>,
    /// The tokio driver's mirror of the session state.
    pub(crate) session_observer: RefCell<Option<SessionObserver>>,
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
            Message::Yield(Box::new(codec::Yield {
                request: self.request,
                options: codec::YieldOptions {
                    progress: Some(true),
                    ..y.options
                },
                payload: payload(y.args, y.kwargs),
            })),
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
    Message::Error(Box::new(codec::Error {
        request_type,
        request,
        details: Dict::new(),
        error: Uri::from(error),
        payload: payload(args, Dict::new()),
    }))
}

impl Inner {
    /// A client of the router at `cfg.url`.
    pub(crate) fn new_net(rt: Rt, cfg: ClientConfig) -> Result<Rc<Inner>, Error> {
        let tls = if cfg.url.starts_with("rss://") || cfg.url.starts_with("wss://") {
            Some(
                Tls::new(cfg.tls.ca_file.as_ref(), cfg.tls.insecure)?
                    .with_server_name(cfg.tls.server_name.clone()),
            )
        } else {
            None
        };
        Ok(Inner::new(rt, cfg, Target::Net { tls }))
    }

    /// An in-process client of the router behind `connector`.
    #[cfg(feature = "router")]
    pub(crate) fn new_local(
        rt: Rt,
        cfg: ClientConfig,
        connector: crate::shard::LocalConnector,
    ) -> Rc<Inner> {
        Inner::new(rt, cfg, Target::Local(connector))
    }

    fn new(rt: Rt, cfg: ClientConfig, target: Target) -> Rc<Inner> {
        Rc::new(Inner {
            rt,
            cfg,
            target,
            st: RefCell::new(State {
                next_request: 1,
                next_key: 1,
                ..Default::default()
            }),
            hooks: RefCell::new(Vec::new()),
            session_observer: RefCell::new(None),
            closed: Signal::default(),
            stop: Signal::default(),
        })
    }

    // ----- connecting -----

    /// Connects and joins within `connect_timeout`.
    pub(crate) async fn establish(&self) -> Result<Joined, Error> {
        match self
            .rt
            .timeout(self.cfg.connect_timeout, self.establish_inner())
            .await
        {
            Some(r) => r,
            None => Err(Error::Timeout),
        }
    }

    async fn establish_inner(&self) -> Result<Joined, Error> {
        let (reader, writer) = match &self.target {
            Target::Net { tls } => {
                let ep = Endpoint::parse(&self.cfg.url)?;
                link::open(self.rt, &ep, self.cfg.serializer, tls.as_ref()).await?
            }
            #[cfg(feature = "router")]
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
            .send(Message::Hello(Box::new(Hello {
                realm: Uri::from(self.cfg.realm.as_str()),
                details: auth::hello_details(
                    &self.cfg.auth,
                    &self.cfg.agent,
                    &self.cfg.hello_details,
                ),
            })))
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
        // Observed as joined before `connect` returns (the task sets up the connection later).
        if let Some(o) = self.session_observer.borrow().as_ref() {
            o(Some((joined.session, &joined.welcome)));
        }
        let inner = self.clone();
        self.rt.spawn(async move { inner.supervise(joined).await });
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
                        self.rt.sleep(delay).await;
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
            if let Some(o) = self.session_observer.borrow().as_ref() {
                o(Some((session, &welcome)));
            }
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
            let rt = self.rt;
            let dead = dead.clone();
            self.rt.spawn(async move {
                while let Some(first) = out.recv().await {
                    writer.push(first);
                    rt.gather().await;
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
            });
        }
        if restore {
            let inner = self.clone();
            self.rt.spawn(async move { inner.restore(session).await });
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
        if let Some(o) = self.session_observer.borrow().as_ref() {
            o(None);
        }
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
