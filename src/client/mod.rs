//! The WAMP client library: connect to a router (this one or any WAMP v2 router), join a
//! realm, call and register procedures, publish and subscribe.
//!
//! Two drivers run one protocol core: **tokio** ([`tokio::Client`], feature `client-tokio`: a
//! `Send + Sync + Clone` handle for tokio programs) and **glommio** ([`Client`], feature
//! `client-glommio`: the router's own runtime). Everything else here (configuration, options,
//! results, events, errors, serde helpers) is shared.
//!
//! # From tokio
//!
//! ```no_run
//! use switchyard::client::tokio::Client;
//! use switchyard::client::{ClientConfig, Yield};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), switchyard::client::Error> {
//!     let client = Client::connect(ClientConfig::new("ws://127.0.0.1:8080/ws", "realm1")).await?;
//!     // A callee: the handler runs as a task on this runtime; serde types in and out.
//!     client
//!         .register("com.example.add", Default::default(), |inv| async move {
//!             let (a, b): (i64, i64) = inv.args_as()?;
//!             Ok(Yield::typed(&(a + b,), &())?)
//!         })
//!         .await?;
//!     // A caller, from any task (the handle is Clone + Send + Sync).
//!     let c = client.clone();
//!     let sum: i64 = tokio::spawn(async move {
//!         c.call_typed("com.example.add", &(2, 3), Default::default()).await
//!     })
//!     .await
//!     .expect("the task")?;
//!     assert_eq!(sum, 5);
//!     client.leave().await
//! }
//! ```
//!
//! See [`tokio`] for how it runs (one client thread per process; handlers on the
//! application's runtime).
//!
//! # Threading model (glommio)
//!
//! The glommio client runs on [glommio], single-threaded, like the router's shards. A [`Client`] is a
//! cheap `Clone` handle (an `Rc` inside) and is `!Send`: create and use it inside one glommio
//! executor; every `async fn` here must be awaited inside that executor. Each client owns one
//! background task (spawned with `glommio::spawn_local` on the executor that called
//! [`Client::connect`]) that reads messages and dispatches them: replies go to the request
//! that waits for them, EVENTs to the subscription's handler (called inline, so keep it
//! short or spawn), and each INVOCATION runs its registered handler as a task of its own.
//! Writes go through one writer task per connection: an operation queues its message and
//! returns (or waits for the reply); it never blocks on the socket.
//!
//! # Transports
//!
//! [`ClientConfig::url`] selects the transport: `rs://host:port` and `rss://host:port`
//! (RawSocket, plain or TLS), `ws://host:port/path` and `wss://host:port/path` (WebSocket),
//! `unix:///path/to.sock` (RawSocket over a Unix socket); [`ClientConfig::serializer`] picks
//! JSON or MessagePack. A host name that is not an IP literal is resolved with a blocking
//! look-up when connecting (prefer IP addresses inside an executor).
//!
//! In the router's own process, [`Client::connect_local`] joins through a
//! [`LocalConnector`](crate::shard::LocalConnector) (from `Router::local_connector`): messages
//! cross as values, with no socket and no serialization.
//!
//! [`Client::connect`] does not retry: the first connection must succeed (within
//! [`ClientConfig::connect_timeout`]); the reconnect policy applies once a session was
//! established.
//!
//! # Features
//!
//! Authentication: anonymous, ticket, WAMP-CRA (plain and salted), cryptosign ([`Auth`]).
//! Caller: progressive call results ([`CallHandle::next`]), call cancelling
//! ([`CallHandle::cancel`]), call timeouts ([`CallOptions::timeout`], also enforced locally one
//! second later), progressive call invocations ([`CallHandle::send_chunk`]). Callee: the same
//! from the other side ([`Invocation`]), pattern-based and shared registrations
//! ([`RegisterOptions`]). Publisher: acknowledgements, exclusion and black/white listing,
//! disclosure ([`PublishOptions`]). Subscriber: pattern-based subscriptions
//! ([`SubscribeOptions`]).
//!
//! # Reconnecting
//!
//! With [`ClientConfig::reconnect`] set, a lost connection (or a GOODBYE from the router) is
//! followed by reconnect attempts with exponential backoff and jitter ([`backoff_delay`]);
//! after re-joining, every registration and subscription made through this client is restored
//! with the same handler, and the [`Registration`]/[`Subscription`] values keep working.
//! Progress is reported to [`Client::on_event`] hooks as [`ClientEvent`]s. While disconnected,
//! calls, publishes, registers and subscribes fail at once with [`Error::Transport`] (nothing
//! is queued); calls pending when the connection was lost fail with
//! `Error::Transport("connection lost")`. Without a policy, a lost connection closes the
//! client ([`Client::closed`] resolves; later operations return [`Error::Closed`]).
//!
//! The background task keeps the client alive until it is closed: call [`Client::leave`] to
//! end a session (dropping every `Client` handle does not close the connection).
//!
//! # Example (glommio)
//!
//! ```no_run
//! use switchyard::client::{CallOptions, Client, ClientConfig, Dict, RegisterOptions, Value, Yield};
//!
//! let handle = glommio::LocalExecutorBuilder::default()
//!     .spawn(|| async {
//!         let client = Client::connect(ClientConfig::new("rs://127.0.0.1:8081", "realm1")).await?;
//!         client
//!             .register("com.example.add", RegisterOptions::default(), |inv| async move {
//!                 let sum: u64 = inv.args.iter().filter_map(Value::as_u64).sum();
//!                 Ok(Yield::args(vec![Value::UInt(sum)]))
//!             })
//!             .await?;
//!         let args = vec![Value::UInt(2), Value::UInt(3)];
//!         let r = client
//!             .call("com.example.add", args, Dict::new(), CallOptions::default())
//!             .await?;
//!         assert_eq!(r.args, vec![Value::UInt(5)]);
//!         client.leave().await
//!     })
//!     .expect("executor starts");
//! handle.join().expect("executor ends").expect("client works");
//! ```

#![warn(missing_docs)]

mod auth;
mod backoff;
mod error;
mod link;
mod rt;
mod session;
mod sync;
#[cfg(feature = "client-tokio")]
pub mod tokio;
pub mod transport;
pub mod url;

use std::cell::Cell;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::rc::Rc;
use std::time::Duration;

pub use crate::codec::uri::MatchPolicy;
pub use crate::codec::{
    CallOptions, CancelMode, Dict, EventDetails, Id, InvocationDetails, InvokePolicy, Payload,
    PublishOptions, RegisterOptions, ResultDetails, Serializer, SubscribeOptions, Uri, Value,
    WelcomeDetails, YieldOptions,
};
pub use auth::Auth;
pub use backoff::{backoff_delay, ReconnectPolicy};
pub use error::{Error, WampError};

use session::{Inner, InvState};

/// TLS settings for `rss://` and `wss://`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM file of the certificates to trust (required unless `insecure`).
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (tests only).
    pub insecure: bool,
    /// Check the certificate against this name instead of the URL's host.
    pub server_name: Option<String>,
}

/// How to reach the router and join the realm.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `ws://host:port/path`, `wss://…`, `rs://host:port`, `rss://…`, `unix:///path` (RawSocket
    /// over a Unix socket). Ignored by `Client::connect_local`.
    pub url: String,
    /// The realm to join.
    pub realm: String,
    /// The serializer (default MessagePack).
    pub serializer: Serializer,
    /// Credentials (default anonymous).
    pub auth: Auth,
    /// TLS settings for `rss://` and `wss://`.
    pub tls: TlsOptions,
    /// `None` (the default): a lost connection closes the client.
    pub reconnect: Option<ReconnectPolicy>,
    /// Bound on connecting: transport, handshake and join (default 10 s).
    pub connect_timeout: Duration,
    /// HELLO.Details.agent (default `switchyard-client/<version>`).
    pub agent: String,
    /// More `HELLO.Details` entries (e.g. a `"tenant"` a publisher may filter on with
    /// `PUBLISH.Options.eligible_tenant`); the keys the client sets itself (`roles`,
    /// `authmethods`, `authid`, `authextra`, `agent`) win over these.
    pub hello_details: crate::codec::Dict,
}

impl ClientConfig {
    /// A configuration for `url` and `realm` with the defaults.
    pub fn new(url: impl Into<String>, realm: impl Into<String>) -> Self {
        ClientConfig {
            url: url.into(),
            realm: realm.into(),
            serializer: Serializer::MsgPack,
            auth: Auth::default(),
            tls: TlsOptions::default(),
            reconnect: None,
            connect_timeout: Duration::from_secs(10),
            agent: concat!("switchyard-client/", env!("CARGO_PKG_VERSION")).into(),
            hello_details: crate::codec::Dict::new(),
        }
    }

    /// Sets the serializer.
    pub fn serializer(mut self, s: Serializer) -> Self {
        self.serializer = s;
        self
    }

    /// Sets the credentials.
    pub fn auth(mut self, a: Auth) -> Self {
        self.auth = a;
        self
    }

    /// Sets the TLS settings.
    pub fn tls(mut self, t: TlsOptions) -> Self {
        self.tls = t;
        self
    }

    /// Reconnects with `p` after a lost connection.
    pub fn reconnect(mut self, p: ReconnectPolicy) -> Self {
        self.reconnect = Some(p);
        self
    }

    /// Sets the bound on connecting and joining.
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// Sets HELLO.Details.agent.
    pub fn agent(mut self, agent: impl Into<String>) -> Self {
        self.agent = agent.into();
        self
    }

    /// Adds `HELLO.Details.<key> = value` (see [`ClientConfig::hello_details`]).
    pub fn hello_detail(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.hello_details.insert(key.into(), value.into());
        self
    }
}

/// What the reconnect machinery reports to [`Client::on_event`] hooks.
#[derive(Debug, Clone)]
pub enum ClientEvent {
    /// The connection was lost (or the router said GOODBYE).
    Disconnected {
        /// Why.
        reason: String,
    },
    /// Attempt `attempt` (from 1) starts after `delay`.
    Reconnecting {
        /// The attempt number, from 1.
        attempt: u32,
        /// The backoff delay before it.
        delay: Duration,
    },
    /// Joined again, and this many registrations and subscriptions were restored.
    Rejoined {
        /// The new session ID.
        session: Id,
        /// Registrations restored.
        registrations: usize,
        /// Subscriptions restored.
        subscriptions: usize,
    },
    /// A registration or subscription could not be restored (it is dropped).
    RestoreFailed {
        /// The procedure or topic.
        uri: Uri,
        /// The router's answer.
        error: Error,
    },
    /// `max_attempts` attempts failed: the client is closed.
    GaveUp {
        /// Attempts made.
        attempts: u32,
    },
}

/// A call's result (final or, with `receive_progress`, progressive).
#[derive(Debug, Clone, PartialEq)]
pub struct CallResult {
    /// Positional results.
    pub args: Vec<Value>,
    /// Keyword results.
    pub kwargs: Dict,
    /// RESULT.Details.
    pub details: ResultDetails,
    /// Whether this is a progressive result (more follow).
    pub progress: bool,
}

/// An event delivered to a subscription handler.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The router's subscription ID (the current one, after a reconnect).
    pub subscription: Id,
    /// The publication ID.
    pub publication: Id,
    /// The concrete topic (EVENT.Details.topic, else the subscribed topic).
    pub topic: Uri,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Dict,
    /// EVENT.Details.
    pub details: EventDetails,
}

/// What a registered procedure returns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Yield {
    /// Positional results.
    pub args: Vec<Value>,
    /// Keyword results.
    pub kwargs: Dict,
    /// YIELD.Options (`progress` is set by the client): e.g. the `ppt_*` attributes of payload
    /// passthru mode, with `args = [Value::Bin(..)]`.
    pub options: YieldOptions,
}

/// Reading a payload as serde types (see [`crate::codec::serde_value`] for the rules).
macro_rules! typed_payload {
    ($t:ty) => {
        impl $t {
            /// The positional arguments as `T` (a tuple/struct takes them all, any other type
            /// the one argument). [`Error::Payload`] when they do not fit.
            pub fn args_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
                Ok(crate::codec::serde_value::from_args(self.args.clone())?)
            }

            /// The keyword arguments as `T` (a struct or map).
            pub fn kwargs_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, Error> {
                Ok(crate::codec::serde_value::from_kwargs(self.kwargs.clone())?)
            }
        }
    };
}

typed_payload!(CallResult);
typed_payload!(Event);
typed_payload!(Invocation);
#[cfg(feature = "client-tokio")]
typed_payload!(tokio::Invocation);

impl Yield {
    /// Results from serde types: positional as [`Client::call_typed`] takes arguments,
    /// keyword from a struct or map (`&()` for none).
    pub fn typed<A, K>(args: &A, kwargs: &K) -> Result<Self, Error>
    where
        A: serde::Serialize + ?Sized,
        K: serde::Serialize + ?Sized,
    {
        Ok(Yield::new(
            crate::codec::serde_value::to_args(args)?,
            crate::codec::serde_value::to_kwargs(kwargs)?,
        ))
    }

    /// Positional results only.
    pub fn args(args: Vec<Value>) -> Self {
        Yield {
            args,
            kwargs: Dict::new(),
            options: YieldOptions::default(),
        }
    }

    /// Positional and keyword results.
    pub fn new(args: Vec<Value>, kwargs: Dict) -> Self {
        Yield {
            args,
            kwargs,
            options: YieldOptions::default(),
        }
    }

    /// A payload passthru result (`payload_passthru_mode.md`): `payload` as the one binary
    /// argument, with `ppt_scheme` and the optional `ppt_serializer`, `ppt_cipher`, `ppt_keyid`
    /// in `options`.
    pub fn passthru(payload: impl Into<bytes::Bytes>, options: YieldOptions) -> Self {
        Yield {
            args: vec![Value::Bin(payload.into())],
            kwargs: Dict::new(),
            options,
        }
    }

    /// No results.
    pub fn empty() -> Self {
        Yield::default()
    }
}

/// The error a registered procedure answers with.
#[derive(Debug, Clone, PartialEq)]
pub struct CallError {
    /// The error URI.
    pub error: Uri,
    /// Positional arguments.
    pub args: Vec<Value>,
    /// Keyword arguments.
    pub kwargs: Dict,
}

impl CallError {
    /// An error with URI `error` and no arguments.
    pub fn new(error: impl Into<Uri>) -> Self {
        CallError {
            error: error.into(),
            args: Vec::new(),
            kwargs: Dict::new(),
        }
    }

    /// Sets the positional arguments.
    pub fn with_args(mut self, args: Vec<Value>) -> Self {
        self.args = args;
        self
    }
}

/// A handler's `?` on a client [`Error`]: a payload that did not fit its type answers the
/// caller `wamp.error.invalid_argument` (with the reason), anything else
/// `wamp.error.runtime_error`.
impl From<Error> for CallError {
    fn from(e: Error) -> Self {
        let uri = match e {
            Error::Payload(_) | Error::Invalid(_) => "wamp.error.invalid_argument",
            Error::Wamp(ref w) => return CallError::new(w.error.clone()).with_args(w.args.clone()),
            _ => "wamp.error.runtime_error",
        };
        CallError::new(uri).with_args(vec![Value::Str(e.to_string())])
    }
}

/// One invocation of a registered procedure, handed to its handler.
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
    state: Rc<InvState>,
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

    /// Sends a progressive result (YIELD with progress=true). [`Error::Invalid`] if the caller
    /// did not ask for them, or if the handler already returned (its answer was the final
    /// YIELD or ERROR); [`Error::Transport`] if the connection that brought the invocation is
    /// gone.
    pub fn progress(&self, y: Yield) -> Result<(), Error> {
        if !self.receive_progress() {
            return Err(Error::Invalid(
                "the caller did not ask for progressive results".into(),
            ));
        }
        self.state.send_progress(y)
    }

    /// Progressive invocations: the next chunk the caller sent (a further CALL with the same
    /// request), including the final one; `None` after the final one, or if this invocation
    /// is not progressive. Chunks queue until read, without a bound; once the handler has
    /// answered, later chunks are dropped.
    pub async fn next_chunk(&mut self) -> Option<(Vec<Value>, Dict)> {
        if !self.is_progressive() {
            return None;
        }
        self.state.chunks.recv().await
    }

    /// Whether the invocation is progressive (INVOCATION.Details.progress was true).
    pub fn is_progressive(&self) -> bool {
        self.state.progressive
    }

    /// The mode of the INTERRUPT received for this invocation, if any (`KillNoWait` once the
    /// connection that brought it is lost).
    pub fn interrupted(&self) -> Option<CancelMode> {
        self.state.interrupted.get()
    }

    /// Resolves when the caller cancels (INTERRUPT), or when the connection that brought the
    /// invocation is lost (mode `KillNoWait`: the answer can no longer be delivered); use it
    /// in a select with the work. The handler still answers (typically
    /// `CallError::new("wamp.error.canceled")`).
    pub async fn wait_interrupted(&self) -> CancelMode {
        self.state.interrupt.wait().await;
        self.state.interrupted.get().unwrap_or_default()
    }
}

/// A registered procedure. Stays valid across reconnects (`id` is the first router ID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The router's registration ID when it was made.
    pub id: Id,
    /// The procedure (or pattern).
    pub procedure: Uri,
    key: u64,
}

/// A subscription. Stays valid across reconnects (`id` is the first router ID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The router's subscription ID when it was made.
    pub id: Id,
    /// The topic (or pattern).
    pub topic: Uri,
    key: u64,
}

/// A call in flight: progressive results, progressive invocations, cancelling. Dropping it
/// forgets the call (its results are discarded).
pub struct CallHandle {
    inner: Rc<Inner>,
    request: Id,
    procedure: Uri,
    rx: Rc<sync::Mailbox<Result<crate::codec::Message, Error>>>,
    deadline: Option<std::time::Instant>,
    generation: u64,
    done: bool,
    /// Progressive invocation: more chunks may be sent.
    chunks_open: Cell<bool>,
}

impl CallHandle {
    /// The CALL's request ID.
    pub fn request(&self) -> Id {
        self.request
    }

    /// The next result: progressive ones (`progress == true`, only if the call was made
    /// with `CallOptions::receive_progress = Some(true)`; otherwise a router's progressive
    /// RESULTs are dropped), then the final one, then `None`. Errors (ERROR, timeout,
    /// connection lost) end the call. Progressive results queue in the handle until read,
    /// without a bound: read them (or drop the handle) as they come.
    pub async fn next(&mut self) -> Option<Result<CallResult, Error>> {
        if self.done {
            return None;
        }
        let item = match self.deadline {
            None => Some(self.rx.recv().await),
            Some(d) => {
                let left = d.saturating_duration_since(std::time::Instant::now());
                self.inner.rt.timeout(left, self.rx.recv()).await
            }
        };
        let r = match item {
            None => {
                self.done = true;
                self.inner.forget(self.request, self.generation);
                self.inner.send_in(
                    self.generation,
                    crate::codec::Message::Cancel(crate::codec::Cancel {
                        request: self.request,
                        options: crate::codec::CancelOptions {
                            mode: Some(CancelMode::KillNoWait),
                            ..Default::default()
                        },
                    }),
                );
                return Some(Err(Error::Timeout));
            }
            Some(None) => Err(Error::Transport("connection lost".into())),
            Some(Some(Err(e))) => Err(e),
            Some(Some(Ok(crate::codec::Message::Result(r)))) => {
                let progress = r.details.progress == Some(true);
                session::parts(&r.payload).map(|(args, kwargs)| CallResult {
                    args,
                    kwargs,
                    details: r.details,
                    progress,
                })
            }
            Some(Some(Ok(other))) => Err(Error::Protocol(format!(
                "{} in answer to CALL",
                other.name()
            ))),
        };
        if !matches!(&r, Ok(c) if c.progress) {
            self.done = true;
            self.inner.forget(self.request, self.generation);
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

    /// Progressive call invocations: sends another CALL with this request ID
    /// (`options.progress = !last`). Only for calls made with `CallOptions::progress =
    /// Some(true)`, and not after the last chunk.
    pub fn send_chunk(&self, args: Vec<Value>, kwargs: Dict, last: bool) -> Result<(), Error> {
        if !self.chunks_open.get() || self.done {
            return Err(Error::Invalid(
                "not a progressive invocation, or the last chunk was sent".into(),
            ));
        }
        if last {
            self.chunks_open.set(false);
        }
        self.inner.send_checked(
            self.generation,
            crate::codec::Message::Call(Box::new(crate::codec::Call {
                request: self.request,
                options: CallOptions {
                    progress: Some(!last),
                    ..Default::default()
                },
                procedure: self.procedure.clone(),
                payload: session::payload(args, kwargs),
            })),
        )
    }

    /// Cancels the call (CANCEL with `mode`); the outcome arrives through
    /// [`CallHandle::next`] (usually ERROR `wamp.error.canceled`).
    pub fn cancel(&self, mode: CancelMode) -> Result<(), Error> {
        if self.done {
            return Err(Error::Invalid("the call is finished".into()));
        }
        self.inner.send_checked(
            self.generation,
            crate::codec::Message::Cancel(crate::codec::Cancel {
                request: self.request,
                options: crate::codec::CancelOptions {
                    mode: Some(mode),
                    ..Default::default()
                },
            }),
        )
    }
}

impl Drop for CallHandle {
    fn drop(&mut self) {
        if !self.done {
            self.inner.forget(self.request, self.generation);
        }
    }
}

/// A WAMP client session (see the [module docs](self)).
#[derive(Clone)]
pub struct Client {
    inner: Rc<Inner>,
}

type BoxedHandlerFuture = Pin<Box<dyn Future<Output = Result<Yield, CallError>>>>;

impl Client {
    /// Connects to `cfg.url`, joins `cfg.realm` (authenticating per `cfg.auth`) within
    /// `cfg.connect_timeout`, and starts the background task.
    #[cfg(feature = "client-glommio")]
    pub async fn connect(cfg: ClientConfig) -> Result<Client, Error> {
        Client::join_with(Inner::new_net(rt::Rt::Glommio, cfg)?, None).await
    }

    /// Joins with the client state `inner`, telling `observer` of each session change.
    pub(crate) async fn join_with(
        inner: Rc<Inner>,
        observer: Option<session::SessionObserver>,
    ) -> Result<Client, Error> {
        *inner.session_observer.borrow_mut() = observer;
        let joined = inner.establish().await?;
        inner.start(joined);
        Ok(Client { inner })
    }

    /// Connects in process to the router behind `router` (no socket, no serialization; see
    /// [`crate::net::inproc`]) and joins `cfg.realm`; `cfg.url`, `cfg.serializer` and
    /// `cfg.tls` are ignored. Reconnecting works as over the network.
    #[cfg(all(feature = "client-glommio", feature = "router"))]
    pub async fn connect_local(
        router: &crate::shard::LocalConnector,
        cfg: ClientConfig,
    ) -> Result<Client, Error> {
        Client::join_with(Inner::new_local(rt::Rt::Glommio, cfg, router.clone()), None).await
    }

    /// The current session ID; `None` while disconnected or closed.
    pub fn session_id(&self) -> Option<Id> {
        self.inner.session_id()
    }

    /// WELCOME.Details of the current session.
    pub fn welcome_details(&self) -> Option<WelcomeDetails> {
        self.inner.welcome_details()
    }

    /// Whether a session is established now.
    pub fn is_connected(&self) -> bool {
        self.inner.session_id().is_some()
    }

    /// Adds a hook for [`ClientEvent`]s (called on the client's executor, in order).
    pub fn on_event(&self, hook: impl Fn(&ClientEvent) + 'static) {
        self.inner.hooks.borrow_mut().push(Rc::new(hook));
    }

    /// Calls `procedure` and waits for the final result.
    pub async fn call(
        &self,
        procedure: &str,
        args: Vec<Value>,
        kwargs: Dict,
        opts: CallOptions,
    ) -> Result<CallResult, Error> {
        self.call_handle(procedure, args, kwargs, opts)?
            .result()
            .await
    }

    /// Sends CALL and returns a handle for its results (progressive results, progressive
    /// invocations, cancel). With `opts.timeout` (ms) set, the handle also gives up locally
    /// after the timeout plus one second ([`Error::Timeout`], and CANCEL killnowait).
    pub fn call_handle(
        &self,
        procedure: &str,
        args: Vec<Value>,
        kwargs: Dict,
        opts: CallOptions,
    ) -> Result<CallHandle, Error> {
        let procedure = Uri::from(procedure);
        let deadline = opts.timeout.filter(|t| *t > 0).map(|t| {
            std::time::Instant::now()
                + Duration::from_millis(t.min(u32::MAX as u64))
                + Duration::from_secs(1)
        });
        let progressive = opts.progress == Some(true);
        let kind = session::Kind::Call {
            progress: opts.receive_progress == Some(true),
        };
        let (request, generation, rx) = self.inner.request(kind, |request| {
            crate::codec::Message::Call(Box::new(crate::codec::Call {
                request,
                options: opts,
                procedure: procedure.clone(),
                payload: session::payload(args, kwargs),
            }))
        })?;
        Ok(CallHandle {
            inner: self.inner.clone(),
            request,
            procedure,
            rx,
            deadline,
            generation,
            done: false,
            chunks_open: Cell::new(progressive),
        })
    }

    /// Registers `procedure` with `handler`; each invocation runs `handler` in a task of its
    /// own. The registration is restored after a reconnect. Dropping the returned future
    /// before the answer abandons it: the handler is forgotten and a late REGISTERED is
    /// ignored (the router's INVOCATIONs for it get `wamp.error.no_such_registration`).
    pub async fn register<F, Fut>(
        &self,
        procedure: &str,
        opts: RegisterOptions,
        handler: F,
    ) -> Result<Registration, Error>
    where
        F: Fn(Invocation) -> Fut + 'static,
        Fut: Future<Output = Result<Yield, CallError>> + 'static,
    {
        let handler: session::InvokeFn =
            Rc::new(move |inv| Box::pin(handler(inv)) as BoxedHandlerFuture);
        let (id, key) = self
            .inner
            .register(Uri::from(procedure), opts, handler)
            .await?;
        Ok(Registration {
            id,
            procedure: Uri::from(procedure),
            key,
        })
    }

    /// Unregisters. While disconnected, the registration is only forgotten (it will not be
    /// restored).
    pub async fn unregister(&self, r: &Registration) -> Result<(), Error> {
        self.inner.unregister(r.key).await
    }

    /// Subscribes to `topic`; `handler` is called for each event, inline in the client's
    /// reading task. The subscription is restored after a reconnect. Dropping the returned
    /// future before the answer abandons it (the handler is forgotten).
    pub async fn subscribe<F>(
        &self,
        topic: &str,
        opts: SubscribeOptions,
        handler: F,
    ) -> Result<Subscription, Error>
    where
        F: Fn(Event) + 'static,
    {
        let (id, key) = self
            .inner
            .subscribe(Uri::from(topic), opts, Rc::new(handler))
            .await?;
        Ok(Subscription {
            id,
            topic: Uri::from(topic),
            key,
        })
    }

    /// Unsubscribes. While disconnected, the subscription is only forgotten.
    pub async fn unsubscribe(&self, s: &Subscription) -> Result<(), Error> {
        self.inner.unsubscribe(s.key).await
    }

    /// Publishes. With `opts.acknowledge = Some(true)` waits for PUBLISHED and returns
    /// `Some(publication id)`; otherwise returns `None` once the message is queued.
    pub async fn publish(
        &self,
        topic: &str,
        args: Vec<Value>,
        kwargs: Dict,
        opts: PublishOptions,
    ) -> Result<Option<Id>, Error> {
        self.inner
            .publish(Uri::from(topic), args, kwargs, opts)
            .await
    }

    /// [`Client::call`] with serde types: `args` is a tuple, tuple struct, sequence or struct
    /// (its fields in order) of positional arguments, or one value; the result's positional
    /// arguments are read as `R` (a tuple/struct takes them all, any other type the one result).
    /// [`Error::Payload`] when they do not fit.
    ///
    /// ```no_run
    /// # async fn f(client: switchyard::client::Client) -> Result<(), switchyard::client::Error> {
    /// let sum: i64 = client.call_typed("com.example.add", &(2, 3), Default::default()).await?;
    /// # Ok(()) }
    /// ```
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

    /// [`Client::publish`] with serde types: positional arguments as [`Client::call_typed`]
    /// takes them, keyword arguments from a struct or map (`&()` for none).
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

    /// Says GOODBYE, waits (at most 5 s) for the router's reply, closes the connection and
    /// stops reconnecting. [`Error::Closed`] if the client was already closed.
    pub async fn leave(&self) -> Result<(), Error> {
        self.inner.leave().await
    }

    /// Resolves when the client is finally closed (left, gave up, or lost without
    /// reconnect).
    pub async fn closed(&self) {
        self.inner.closed.wait().await
    }
}
