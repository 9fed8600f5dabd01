//! The client on **tokio**: a `Send + Sync + Clone` handle usable from any task (feature
//! `client-tokio`).
//!
//! ```no_run
//! use switchyard::client::tokio::Client;
//! use switchyard::client::{ClientConfig, Yield};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), switchyard::client::Error> {
//!     let client = Client::connect(ClientConfig::new("ws://127.0.0.1:8080/ws", "realm1")).await?;
//!     client
//!         .register("com.example.add", Default::default(), |inv| async move {
//!             let (a, b): (i64, i64) = inv.args_as()?;
//!             Ok(Yield::typed(&(a + b,), &())?)
//!         })
//!         .await?;
//!     let sum: i64 = client.call_typed("com.example.add", &(2, 3), Default::default()).await?;
//!     assert_eq!(sum, 5);
//!     client.leave().await
//! }
//! ```
//!
//! # How it runs
//!
//! The same protocol core as the glommio [`super::Client`] (session state, request tables,
//! reconnect and restore, authentication, every transport and serializer) runs on the
//! process's client thread (started on first use; every tokio client of the process runs
//! there, each as a task of its own), on a current-thread tokio runtime with a `LocalSet`: the
//! core is single-threaded (`Rc`), the handle talks to it over channels. What the application
//! supplies runs on the application's runtime (the one [`Client::connect`] was awaited on):
//! each INVOCATION's handler is a task spawned there. Subscription handlers and
//! [`Client::on_event`] hooks are called inline on the client thread, in order, with the
//! application's runtime entered: keep them short, or `tokio::spawn` (which lands on the
//! application's runtime).
//!
//! Lifetime: the client leaves (GOODBYE) when [`Client::leave`] is called or when the last
//! handle is dropped (clones held by handlers keep it alive; its task on the client thread
//! ends then); a lost connection without a reconnect policy closes it too.
//!
//! Everything that is not a handle (configuration, options, [`CallResult`], [`Event`],
//! [`Yield`], [`CallError`], [`Error`], …) is shared with the glommio client.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use ::tokio::sync::{mpsc, oneshot, watch};

use super::{
    CallError, CallOptions, CallResult, CancelMode, ClientConfig, ClientEvent, Dict, Error, Event,
    Id, InvocationDetails, PublishOptions, RegisterOptions, Registration, SubscribeOptions,
    Subscription, Uri, Value, WelcomeDetails, Yield,
};

type CoreClient = super::Client;
type UserInvokeFn = Arc<
    dyn Fn(Invocation) -> Pin<Box<dyn Future<Output = Result<Yield, CallError>> + Send>>
        + Send
        + Sync,
>;
type UserEventFn = Arc<dyn Fn(Event) + Send + Sync>;
type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// What a handle asks the client thread to do.
enum Cmd {
    Call {
        procedure: String,
        args: Vec<Value>,
        kwargs: Dict,
        opts: CallOptions,
        results: mpsc::UnboundedSender<Result<CallResult, Error>>,
        ctl: mpsc::UnboundedReceiver<Ctl>,
    },
    Register {
        procedure: String,
        opts: RegisterOptions,
        handler: UserInvokeFn,
        reply: Reply<Registration>,
    },
    Unregister(Registration, Reply<()>),
    Subscribe {
        topic: String,
        opts: SubscribeOptions,
        handler: UserEventFn,
        reply: Reply<Subscription>,
    },
    Unsubscribe(Subscription, Reply<()>),
    /// A call that only wants the final result.
    CallOnce {
        procedure: String,
        args: Vec<Value>,
        kwargs: Dict,
        opts: CallOptions,
        reply: Reply<CallResult>,
    },
    /// A publish without acknowledgement (fire and forget: queued, nothing comes back). The
    /// permit is released once the client thread has queued it on the connection.
    PublishUnacked {
        topic: String,
        args: Vec<Value>,
        kwargs: Dict,
        opts: PublishOptions,
        permit: ::tokio::sync::OwnedSemaphorePermit,
    },
    Publish {
        topic: String,
        args: Vec<Value>,
        kwargs: Dict,
        opts: PublishOptions,
        reply: Reply<Option<Id>>,
    },
    OnEvent(Arc<dyn Fn(&ClientEvent) + Send + Sync>),
    Leave(Reply<()>),
}

/// What a [`CallHandle`] sends after the CALL.
enum Ctl {
    Chunk(Vec<Value>, Dict, bool),
    Cancel(CancelMode),
}

/// State the client thread mirrors for the handles.
struct Shared {
    session: Mutex<Option<(Id, WelcomeDetails)>>,
    closed: watch::Receiver<bool>,
    /// Unacknowledged publishes handed to the client thread and not yet queued on the
    /// connection ([`MAX_UNACKED_IN_HAND`] permits): a publisher faster than the client thread
    /// waits instead of growing the command queue without bound.
    unacked: Arc<::tokio::sync::Semaphore>,
}

/// See [`Shared::unacked`].
const MAX_UNACKED_IN_HAND: usize = 4096;

/// Ends the client when the last handle goes.
struct Handle {
    tx: mpsc::UnboundedSender<Cmd>,
    shared: Arc<Shared>,
}

/// A WAMP client session driven by tokio (see the [module docs](self)). Cheap to clone;
/// `Send + Sync`.
#[derive(Clone)]
pub struct Client {
    h: Arc<Handle>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("session", &self.session_id())
            .finish_non_exhaustive()
    }
}

/// Where the client connects.
enum Target {
    Net,
    #[cfg(feature = "router")]
    Local(crate::shard::LocalConnector),
}

impl Client {
    /// Connects to `cfg.url` and joins `cfg.realm` within `cfg.connect_timeout` (the client
    /// runs on the process's client thread, started on first use). Must be awaited inside a
    /// tokio runtime: invocation handlers run on it.
    pub async fn connect(cfg: ClientConfig) -> Result<Client, Error> {
        Client::start(cfg, Target::Net).await
    }

    /// Connects in process to the router behind `router` (from `Router::local_connector`; no
    /// socket, no serialization) and joins `cfg.realm`; `cfg.url`, `cfg.serializer` and
    /// `cfg.tls` are ignored. Needs the `router` feature.
    #[cfg(feature = "router")]
    pub async fn connect_local(
        router: &crate::shard::LocalConnector,
        cfg: ClientConfig,
    ) -> Result<Client, Error> {
        Client::start(cfg, Target::Local(router.clone())).await
    }

    async fn start(cfg: ClientConfig, target: Target) -> Result<Client, Error> {
        let user = ::tokio::runtime::Handle::try_current().map_err(|_| {
            Error::Invalid("the tokio client must be connected inside a tokio runtime".into())
        })?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = oneshot::channel();
        let (closed_tx, closed_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            session: Mutex::new(None),
            closed: closed_rx,
            unacked: Arc::new(::tokio::sync::Semaphore::new(MAX_UNACKED_IN_HAND)),
        });
        let thread_shared = shared.clone();
        let job: Job = Box::new(move || {
            ::tokio::task::spawn_local(async move {
                let closed = closed_tx.clone();
                drive(cfg, target, rx, ready_tx, thread_shared, closed, user).await;
                let _ = closed_tx.send(true);
            });
        });
        driver_thread()?
            .send(job)
            .map_err(|_| Error::Transport("the client thread is gone".into()))?;
        ready_rx
            .await
            .map_err(|_| Error::Transport("the client thread ended".into()))??;
        Ok(Client {
            h: Arc::new(Handle { tx, shared }),
        })
    }

    fn send(&self, cmd: Cmd) -> Result<(), Error> {
        self.h.tx.send(cmd).map_err(|_| Error::Closed)
    }

    async fn ask<T>(&self, cmd: impl FnOnce(Reply<T>) -> Cmd) -> Result<T, Error> {
        let (tx, rx) = oneshot::channel();
        self.send(cmd(tx))?;
        rx.await.map_err(|_| Error::Closed)?
    }

    /// The current session ID; `None` while disconnected or closed.
    pub fn session_id(&self) -> Option<Id> {
        self.session().as_ref().map(|s| s.0)
    }

    /// WELCOME.Details of the current session.
    pub fn welcome_details(&self) -> Option<WelcomeDetails> {
        self.session().as_ref().map(|s| s.1.clone())
    }

    fn session(&self) -> std::sync::MutexGuard<'_, Option<(Id, WelcomeDetails)>> {
        self.h
            .shared
            .session
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a session is established now.
    pub fn is_connected(&self) -> bool {
        self.session_id().is_some()
    }

    /// Adds a hook for [`ClientEvent`]s (called on the client thread, in order).
    pub fn on_event(&self, hook: impl Fn(&ClientEvent) + Send + Sync + 'static) {
        let _ = self.send(Cmd::OnEvent(Arc::new(hook)));
    }

    /// Calls `procedure` and waits for the final result.
    pub async fn call(
        &self,
        procedure: &str,
        args: Vec<Value>,
        kwargs: Dict,
        opts: CallOptions,
    ) -> Result<CallResult, Error> {
        if opts.receive_progress == Some(true) || opts.progress == Some(true) {
            return self
                .call_handle(procedure, args, kwargs, opts)?
                .result()
                .await;
        }
        self.ask(|reply| Cmd::CallOnce {
            procedure: procedure.to_owned(),
            args,
            kwargs,
            opts,
            reply,
        })
        .await
    }

    /// Sends CALL and returns a handle for its results (progressive results, progressive
    /// invocations, cancel). A failure to send (not connected, closed) is the handle's first
    /// outcome. With `opts.timeout` (ms) set, the call also gives up locally after the timeout
    /// plus one second ([`Error::Timeout`], and CANCEL killnowait).
    pub fn call_handle(
        &self,
        procedure: &str,
        args: Vec<Value>,
        kwargs: Dict,
        opts: CallOptions,
    ) -> Result<CallHandle, Error> {
        let (results_tx, results) = mpsc::unbounded_channel();
        let (ctl, ctl_rx) = mpsc::unbounded_channel();
        let chunks_open = opts.progress == Some(true);
        self.send(Cmd::Call {
            procedure: procedure.to_owned(),
            args,
            kwargs,
            opts,
            results: results_tx,
            ctl: ctl_rx,
        })?;
        Ok(CallHandle {
            results,
            ctl,
            done: false,
            chunks_open: std::cell::Cell::new(chunks_open),
        })
    }

    /// Registers `procedure` with `handler`; each invocation runs `handler` as a task on the
    /// application's runtime (a handler that panics answers `wamp.error.runtime_error`). The
    /// registration is restored after a reconnect. Dropping the returned future before the
    /// answer abandons it, as with [`super::Client::register`].
    pub async fn register<F, Fut>(
        &self,
        procedure: &str,
        opts: RegisterOptions,
        handler: F,
    ) -> Result<Registration, Error>
    where
        F: Fn(Invocation) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Yield, CallError>> + Send + 'static,
    {
        let handler: UserInvokeFn = Arc::new(move |inv| Box::pin(handler(inv)));
        self.ask(|reply| Cmd::Register {
            procedure: procedure.to_owned(),
            opts,
            handler,
            reply,
        })
        .await
    }

    /// Unregisters. While disconnected, the registration is only forgotten.
    pub async fn unregister(&self, r: &Registration) -> Result<(), Error> {
        self.ask(|reply| Cmd::Unregister(r.clone(), reply)).await
    }

    /// Subscribes to `topic`; `handler` is called for each event, inline on the client's
    /// thread. The subscription is restored after a reconnect. Dropping the returned future
    /// before the answer abandons it.
    pub async fn subscribe<F>(
        &self,
        topic: &str,
        opts: SubscribeOptions,
        handler: F,
    ) -> Result<Subscription, Error>
    where
        F: Fn(Event) + Send + Sync + 'static,
    {
        self.ask(|reply| Cmd::Subscribe {
            topic: topic.to_owned(),
            opts,
            handler: Arc::new(handler),
            reply,
        })
        .await
    }

    /// Unsubscribes. While disconnected, the subscription is only forgotten.
    pub async fn unsubscribe(&self, s: &Subscription) -> Result<(), Error> {
        self.ask(|reply| Cmd::Unsubscribe(s.clone(), reply)).await
    }

    /// Publishes. With `opts.acknowledge = Some(true)` waits for PUBLISHED and returns
    /// `Some(publication id)`; otherwise returns `None` once the message is handed to the
    /// client thread (waiting while 4096 handed-over publishes are not yet queued on the
    /// connection: backpressure on a publisher faster than the client thread).
    pub async fn publish(
        &self,
        topic: &str,
        args: Vec<Value>,
        kwargs: Dict,
        opts: PublishOptions,
    ) -> Result<Option<Id>, Error> {
        if opts.acknowledge != Some(true) {
            // Nothing comes back: checked here, queued, not waited for.
            if *self.h.shared.closed.borrow() {
                return Err(Error::Closed);
            }
            if !self.is_connected() {
                return Err(Error::Transport("not connected".into()));
            }
            let permit = self
                .h
                .shared
                .unacked
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| Error::Closed)?;
            self.send(Cmd::PublishUnacked {
                topic: topic.to_owned(),
                args,
                kwargs,
                opts,
                permit,
            })?;
            return Ok(None);
        }
        self.ask(|reply| Cmd::Publish {
            topic: topic.to_owned(),
            args,
            kwargs,
            opts,
            reply,
        })
        .await
    }

    /// [`Client::call`] with serde types (as [`super::Client::call_typed`]).
    pub async fn call_typed<A, R>(
        &self,
        procedure: &str,
        args: &A,
        opts: CallOptions,
    ) -> Result<R, Error>
    where
        A: serde::Serialize + ?Sized,
        R: serde::de::DeserializeOwned,
    {
        let args = crate::codec::serde_value::to_args(args)?;
        let r = self.call(procedure, args, Dict::new(), opts).await?;
        r.args_as()
    }

    /// [`Client::publish`] with serde types (as [`super::Client::publish_typed`]).
    pub async fn publish_typed<A, K>(
        &self,
        topic: &str,
        args: &A,
        kwargs: &K,
        opts: PublishOptions,
    ) -> Result<Option<Id>, Error>
    where
        A: serde::Serialize + ?Sized,
        K: serde::Serialize + ?Sized,
    {
        let args = crate::codec::serde_value::to_args(args)?;
        let kwargs = crate::codec::serde_value::to_kwargs(kwargs)?;
        self.publish(topic, args, kwargs, opts).await
    }

    /// Lets running invocation handlers answer (waiting at most 1 s), says GOODBYE, waits (at
    /// most 5 s) for the router's reply, closes the connection and stops reconnecting.
    /// [`Error::Closed`] if the client was already closed.
    pub async fn leave(&self) -> Result<(), Error> {
        self.ask(Cmd::Leave).await
    }

    /// Resolves when the client is finally closed (left, gave up, or lost without
    /// reconnect).
    pub async fn closed(&self) {
        let mut rx = self.h.shared.closed.clone();
        let _ = rx.wait_for(|c| *c).await;
    }
}

/// A call in flight (see [`super::CallHandle`]). Dropping it forgets the call.
pub struct CallHandle {
    results: mpsc::UnboundedReceiver<Result<CallResult, Error>>,
    ctl: mpsc::UnboundedSender<Ctl>,
    done: bool,
    chunks_open: std::cell::Cell<bool>,
}

impl CallHandle {
    /// The next result: progressive ones, then the final one, then `None`; errors end the
    /// call (as [`super::CallHandle::next`]).
    pub async fn next(&mut self) -> Option<Result<CallResult, Error>> {
        if self.done {
            return None;
        }
        let r = self.results.recv().await.unwrap_or(Err(Error::Closed));
        if !matches!(&r, Ok(c) if c.progress) {
            self.done = true;
        }
        Some(r)
    }

    /// Waits for the final result, skipping progressive ones.
    pub async fn result(mut self) -> Result<CallResult, Error> {
        loop {
            match self.next().await {
                Some(Ok(r)) if r.progress => continue,
                Some(r) => return r,
                None => return Err(Error::Protocol("call already finished".into())),
            }
        }
    }

    /// Progressive call invocations: sends another chunk (as
    /// [`super::CallHandle::send_chunk`]).
    pub fn send_chunk(&self, args: Vec<Value>, kwargs: Dict, last: bool) -> Result<(), Error> {
        if !self.chunks_open.get() || self.done {
            return Err(Error::Invalid(
                "not a progressive invocation, or the last chunk was sent".into(),
            ));
        }
        if last {
            self.chunks_open.set(false);
        }
        self.ctl
            .send(Ctl::Chunk(args, kwargs, last))
            .map_err(|_| Error::Invalid("the call is finished".into()))
    }

    /// Cancels the call (CANCEL with `mode`); the outcome arrives through
    /// [`CallHandle::next`].
    pub fn cancel(&self, mode: CancelMode) -> Result<(), Error> {
        if self.done {
            return Err(Error::Invalid("the call is finished".into()));
        }
        self.ctl
            .send(Ctl::Cancel(mode))
            .map_err(|_| Error::Invalid("the call is finished".into()))
    }
}

/// One invocation of a registered procedure, handed to its handler (see
/// [`super::Invocation`]). `Send`: the handler runs on the application's runtime.
pub struct Invocation {
    /// INVOCATION.Request.
    pub request: Id,
    /// The router's registration ID.
    pub registration: Id,
    /// The concrete procedure (INVOCATION.Details.procedure, else the registered one).
    pub procedure: Uri,
    /// Positional arguments (of the first chunk, for progressive invocations).
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Dict,
    /// INVOCATION.Details.
    pub details: InvocationDetails,
    progressive: bool,
    /// Only when the caller asked for progressive results.
    progress: Option<mpsc::UnboundedSender<Yield>>,
    /// Only for progressive invocations.
    chunks: Option<mpsc::UnboundedReceiver<(Vec<Value>, Dict)>>,
    interrupt: Arc<Interrupt>,
}

/// An invocation's INTERRUPT, set once by the client thread, read and awaited by the handler.
struct Interrupt {
    mode: Mutex<Option<CancelMode>>,
    set: ::tokio::sync::Notify,
}

impl Interrupt {
    fn get(&self) -> Option<CancelMode> {
        *self.mode.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, mode: Option<CancelMode>) {
        *self.mode.lock().unwrap_or_else(|p| p.into_inner()) = mode;
        self.set.notify_waiters();
    }
}

impl std::fmt::Debug for Invocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invocation")
            .field("request", &self.request)
            .field("procedure", &self.procedure)
            .field("args", &self.args)
            .finish_non_exhaustive()
    }
}

impl Invocation {
    /// Whether the caller asked for progressive results.
    pub fn receive_progress(&self) -> bool {
        self.details.receive_progress == Some(true)
    }

    /// Sends a progressive result. [`Error::Invalid`] if the caller did not ask for them or
    /// the handler already returned.
    pub fn progress(&self, y: Yield) -> Result<(), Error> {
        if !self.receive_progress() {
            return Err(Error::Invalid(
                "the caller did not ask for progressive results".into(),
            ));
        }
        self.progress
            .as_ref()
            .ok_or_else(|| Error::Invalid("the caller did not ask for progressive results".into()))?
            .send(y)
            .map_err(|_| Error::Invalid("the invocation was already answered".into()))
    }

    /// Progressive invocations: the next chunk the caller sent, including the final one;
    /// `None` after the final one, or if this invocation is not progressive.
    pub async fn next_chunk(&mut self) -> Option<(Vec<Value>, Dict)> {
        self.chunks.as_mut()?.recv().await
    }

    /// Whether the invocation is progressive (INVOCATION.Details.progress was true).
    pub fn is_progressive(&self) -> bool {
        self.progressive
    }

    /// The mode of the INTERRUPT received for this invocation, if any.
    pub fn interrupted(&self) -> Option<CancelMode> {
        self.interrupt.get()
    }

    /// Resolves when the caller cancels (INTERRUPT) or the connection that brought the
    /// invocation is lost (mode `KillNoWait`).
    pub async fn wait_interrupted(&self) -> CancelMode {
        loop {
            let set = self.interrupt.set.notified();
            if let Some(mode) = self.interrupt.get() {
                return mode;
            }
            set.await;
        }
    }
}

// ----- the client thread -----

/// Work for the client thread: starts one client's task there.
type Job = Box<dyn FnOnce() + Send>;

/// The process's client thread (started on first use): a current-thread tokio runtime with a
/// `LocalSet`, where the core of every tokio client of the process runs, each as a task of its
/// own (like every client of one glommio executor). One thread keeps the clients of a process
/// from competing with each other and with the application for cores.
fn driver_thread() -> Result<&'static mpsc::UnboundedSender<Job>, Error> {
    static THREAD: std::sync::OnceLock<Result<mpsc::UnboundedSender<Job>, String>> =
        std::sync::OnceLock::new();
    THREAD
        .get_or_init(|| {
            let rt = ::tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("the client runtime: {e}"))?;
            let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
            std::thread::Builder::new()
                .name("switchyard-client".into())
                .spawn(move || {
                    let local = ::tokio::task::LocalSet::new();
                    local.block_on(&rt, async move {
                        while let Some(job) = rx.recv().await {
                            job();
                        }
                    });
                })
                .map_err(|e| format!("the client thread: {e}"))?;
            Ok(tx)
        })
        .as_ref()
        .map_err(|e| Error::Transport(e.clone()))
}

/// A client's task on the client thread: connects, then serves the handles' commands until the client closes
/// or the last handle is dropped.
async fn drive(
    cfg: ClientConfig,
    target: Target,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    ready: oneshot::Sender<Result<(), Error>>,
    shared: Arc<Shared>,
    closed: watch::Sender<bool>,
    user: ::tokio::runtime::Handle,
) {
    let rt = super::rt::Rt::Tokio;
    let observer: super::session::SessionObserver = {
        let shared = shared.clone();
        std::rc::Rc::new(move |s| {
            *shared.session.lock().unwrap_or_else(|p| p.into_inner()) =
                s.map(|(id, w)| (id, w.clone()));
        })
    };
    let inner = match target {
        Target::Net => super::session::Inner::new_net(rt, cfg),
        #[cfg(feature = "router")]
        Target::Local(c) => Ok(super::session::Inner::new_local(rt, cfg, c)),
    };
    let connected = match inner {
        Ok(inner) => CoreClient::join_with(inner, Some(observer)).await,
        Err(e) => Err(e),
    };
    let core = match connected {
        Ok(c) => c,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let running = Running::default();
    if ready.send(Ok(())).is_err() {
        // Whoever connected is gone.
        let _ = core.leave().await;
        return;
    }
    {
        let core = core.clone();
        ::tokio::task::spawn_local(async move {
            core.closed().await;
            let _ = closed.send(true);
        });
    }
    // Commands are served until the last handle is gone (after the client closed, the core
    // answers them with `Error::Closed`).
    while let Some(cmd) = rx.recv().await {
        match cmd {
            // Queued at once: no task needed.
            Cmd::PublishUnacked {
                topic,
                args,
                kwargs,
                opts,
                permit,
            } => {
                publish_unacked(&core, topic, args, kwargs, opts);
                drop(permit);
            }
            // The common case gets a task of its own size (not `serve`'s, the largest of all).
            Cmd::CallOnce {
                procedure,
                args,
                kwargs,
                opts,
                reply,
            } => {
                ::tokio::task::spawn_local(call_once(
                    core.clone(),
                    procedure,
                    args,
                    kwargs,
                    Box::new(opts),
                    reply,
                ));
            }
            cmd => {
                let core = core.clone();
                let user = user.clone();
                let running = running.clone();
                ::tokio::task::spawn_local(async move { serve(core, cmd, user, running).await });
            }
        }
    }
    // The last handle is gone: leave (`Error::Closed` if the client already closed).
    running.settle().await;
    let _ = core.leave().await;
    *shared.session.lock().unwrap_or_else(|p| p.into_inner()) = None;
}

/// How many invocation handlers are running on the application's runtime (a leave lets them
/// answer first).
#[derive(Clone, Default)]
struct Running(std::rc::Rc<std::cell::Cell<usize>>);

impl Running {
    fn add(&self) {
        self.0.set(self.0.get() + 1);
    }

    fn remove(&self) {
        self.0.set(self.0.get().saturating_sub(1));
    }

    /// Waits (at most [`SETTLE`]) until every running handler has returned and its answer is
    /// queued: a graceful leave sends them before the GOODBYE.
    async fn settle(&self) {
        let deadline = std::time::Instant::now() + SETTLE;
        while self.0.get() > 0 && std::time::Instant::now() < deadline {
            ::tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}

/// How long a leave waits for running invocation handlers to answer.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(1);

/// Runs one command on the core.
async fn serve(core: CoreClient, cmd: Cmd, user: ::tokio::runtime::Handle, running: Running) {
    match cmd {
        Cmd::Call {
            procedure,
            args,
            kwargs,
            opts,
            results,
            ctl,
        } => run_call(core, procedure, args, kwargs, opts, results, ctl).await,
        Cmd::CallOnce {
            procedure,
            args,
            kwargs,
            opts,
            reply,
        } => call_once(core, procedure, args, kwargs, Box::new(opts), reply).await,
        Cmd::PublishUnacked {
            topic,
            args,
            kwargs,
            opts,
            permit,
        } => {
            publish_unacked(&core, topic, args, kwargs, opts);
            drop(permit);
        }
        Cmd::Register {
            procedure,
            opts,
            handler,
            reply,
        } => {
            let registering = core.register(&procedure, opts, move |inv| {
                run_invocation(inv, handler.clone(), user.clone(), running.clone())
            });
            answer(reply, registering).await;
        }
        Cmd::Unregister(r, reply) => {
            let _ = reply.send(core.unregister(&r).await);
        }
        Cmd::Subscribe {
            topic,
            opts,
            handler,
            reply,
        } => {
            // Called with the application's runtime entered: a `tokio::spawn` in the handler
            // lands there.
            let subscribing = core.subscribe(&topic, opts, move |ev| {
                let _rt = user.enter();
                handler(ev)
            });
            answer(reply, subscribing).await;
        }
        Cmd::Unsubscribe(s, reply) => {
            let _ = reply.send(core.unsubscribe(&s).await);
        }
        Cmd::Publish {
            topic,
            args,
            kwargs,
            opts,
            reply,
        } => {
            let _ = reply.send(core.publish(&topic, args, kwargs, opts).await);
        }
        Cmd::OnEvent(hook) => core.on_event(move |e| {
            let _rt = user.enter();
            hook(e)
        }),
        Cmd::Leave(reply) => {
            // Answers of running handlers go out before the GOODBYE (waiting at most SETTLE).
            running.settle().await;
            let _ = reply.send(core.leave().await);
        }
    }
}

/// An unacknowledged publish: queued on the connection now (a failure is only logged: nobody
/// waits for it).
fn publish_unacked(
    core: &CoreClient,
    topic: String,
    args: Vec<Value>,
    kwargs: Dict,
    opts: PublishOptions,
) {
    if let Err(e) = core
        .inner
        .publish_unacked(Uri::from(topic), args, kwargs, opts)
    {
        tracing::debug!("publish not sent: {e}");
    }
}

/// A call that only wants its final result.
async fn call_once(
    core: CoreClient,
    procedure: String,
    args: Vec<Value>,
    kwargs: Dict,
    opts: Box<CallOptions>,
    reply: Reply<CallResult>,
) {
    let calling = core.call(&procedure, args, kwargs, *opts);
    answer(reply, calling).await;
}

/// Sends `f`'s outcome to whoever waits for it; if they give up first (their future was
/// dropped), `f` is dropped unfinished, which abandons the request in the core.
async fn answer<T>(mut reply: Reply<T>, f: impl Future<Output = Result<T, Error>>) {
    ::tokio::select! {
        r = f => {
            let _ = reply.send(r);
        }
        _ = reply.closed() => {}
    }
}

/// Drives one call: forwards its results to the handle, and the handle's chunks and cancels
/// to the core. The handle dropped: the call is forgotten.
async fn run_call(
    core: CoreClient,
    procedure: String,
    args: Vec<Value>,
    kwargs: Dict,
    opts: CallOptions,
    results: mpsc::UnboundedSender<Result<CallResult, Error>>,
    mut ctl: mpsc::UnboundedReceiver<Ctl>,
) {
    let mut h = match core.call_handle(&procedure, args, kwargs, opts) {
        Ok(h) => h,
        Err(e) => {
            let _ = results.send(Err(e));
            return;
        }
    };
    let mut ctl_open = true;
    loop {
        ::tokio::select! {
            biased;
            c = ctl.recv(), if ctl_open => match c {
                Some(Ctl::Chunk(args, kwargs, last)) => {
                    if let Err(e) = h.send_chunk(args, kwargs, last) {
                        tracing::debug!("progressive call chunk not sent: {e}");
                    }
                }
                Some(Ctl::Cancel(mode)) => {
                    if let Err(e) = h.cancel(mode) {
                        tracing::debug!("cancel not sent: {e}");
                    }
                }
                None => ctl_open = false,
            },
            r = h.next() => match r {
                None => return,
                Some(r) => {
                    let last = !matches!(&r, Ok(c) if c.progress);
                    if results.send(r).is_err() || last {
                        return;
                    }
                }
            },
            _ = results.closed() => return,
        }
    }
}

/// Runs a user's invocation handler on the application's runtime, relaying progressive
/// results, chunks and interrupts between it and the core's invocation.
async fn run_invocation(
    mut inv: super::Invocation,
    handler: UserInvokeFn,
    user: ::tokio::runtime::Handle,
    running: Running,
) -> Result<Yield, CallError> {
    let state = inv.state.clone();
    let receive_progress = inv.receive_progress();
    let progressive = inv.is_progressive();
    // Channels only for what this invocation can use.
    let (progress_tx, mut progress_rx) = if receive_progress {
        let (tx, rx) = mpsc::unbounded_channel();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let (mut chunks_tx, chunks_rx) = if progressive {
        let (tx, rx) = mpsc::unbounded_channel();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let interrupt = Arc::new(Interrupt {
        mode: Mutex::new(inv.interrupted()),
        set: Default::default(),
    });
    let user_inv = Invocation {
        request: inv.request,
        registration: inv.registration,
        procedure: std::mem::replace(&mut inv.procedure, Uri::from("")),
        args: std::mem::take(&mut inv.args),
        kwargs: std::mem::take(&mut inv.kwargs),
        details: std::mem::take(&mut inv.details),
        progressive,
        progress: progress_tx,
        chunks: chunks_rx,
        interrupt: interrupt.clone(),
    };
    // If this relay goes away before the handler (the client closed), the answer cannot be
    // delivered: tell the handler, as a lost connection does.
    struct Orphaned(Arc<Interrupt>);
    impl Drop for Orphaned {
        fn drop(&mut self) {
            if self.0.get().is_none() {
                self.0.set(Some(CancelMode::KillNoWait));
            }
        }
    }
    let _orphaned = Orphaned(interrupt.clone());
    drop(inv);
    let mut task = user.spawn(handler(user_inv));
    running.add();
    let mut interrupted = state.interrupted.get().is_some();
    let send_progress = |y: Yield| {
        if let Err(e) = state.send_progress(y) {
            tracing::debug!("progressive result not sent: {e}");
        }
    };
    let result = loop {
        ::tokio::select! {
            biased;
            Some(y) = async { progress_rx.as_mut()?.recv().await }, if progress_rx.is_some() => {
                send_progress(y);
            }
            c = state.chunks.recv(), if chunks_tx.is_some() => match c {
                Some(c) => {
                    if let Some(tx) = &chunks_tx {
                        let _ = tx.send(c);
                    }
                }
                None => chunks_tx = None,
            },
            _ = state.interrupt.wait(), if !interrupted => {
                interrupted = true;
                interrupt.set(state.interrupted.get());
            }
            r = &mut task => break r,
        }
    };
    // Progressive results sent before the handler returned go out before its answer.
    if let Some(rx) = progress_rx.as_mut() {
        while let Ok(y) = rx.try_recv() {
            send_progress(y);
        }
    }
    // The core queues the answer as soon as this returns (in the same poll).
    running.remove();
    match result {
        Ok(r) => r,
        Err(e) => Err(CallError::new("wamp.error.runtime_error")
            .with_args(vec![Value::Str(format!("the handler failed: {e}"))])),
    }
}
