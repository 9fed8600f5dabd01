//! The router's lifecycle: [`Router::start`] binds every listener in the calling thread and
//! starts one pinned glommio executor per shard; `shard_main` is a shard's life (accept loops,
//! the mesh inbox, ticks, shutdown); [`Router::join`] and [`ShutdownHandle`] end it.

use super::local::LocalConnector;
use super::mesh::MeshOutbox;
use super::mesh::{self, MeshSenders};
use super::{authorizer, conn, local, Shard, ShardMsg, SharedCounters};
use super::{broker_features, DEALER_FEATURES};
use crate::codec::{self, Uri};
use crate::config::ListenAddr;
use crate::metrics::{RouterMetrics, ShardMetrics, ShardState};
use crate::router_config::RouterConfig;
use crate::routing::RealmShard;
use crate::session;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A listener bound in the control thread, ready to be served by the shards. The sockets are
/// owned, so a start that fails halfway closes whatever it had bound.
enum BoundListener {
    /// One SO_REUSEPORT socket per shard.
    Tcp { fds: Vec<OwnedFd> },
    /// Accepted on shard 0.
    Unix { fd: OwnedFd },
}

/// One listening socket handed to a shard: the listener's index, the socket, whether it is a
/// Unix socket.
type ShardListener = (usize, OwnedFd, bool);

/// Why the router could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{addr}: {message}")]
    Bind { addr: String, message: String },
    #[error("shard {shard}: {message}")]
    Shard { shard: usize, message: String },
}

/// A running router: its shards and where it listens.
pub struct Router {
    handles: Vec<glommio::ExecutorJoinHandle<()>>,
    senders: MeshSenders<ShardMsg>,
    endpoints: Vec<String>,
    metrics: Arc<RouterMetrics>,
    /// The cluster bridge (cluster mode only): stopped, with a goodbye, after the shards.
    #[cfg(feature = "cluster")]
    cluster: Option<crate::cluster::ClusterHandle>,
}

/// The cluster bridge delivers into the shards' mesh inboxes.
#[cfg(feature = "cluster")]
struct MeshSink(MeshSenders<ShardMsg>);

#[cfg(feature = "cluster")]
impl crate::cluster::ShardSink for MeshSink {
    fn shard_count(&self) -> usize {
        self.0.len()
    }
    fn deliver(&self, shard: usize, batch: Vec<(Uri, crate::routing::cluster::ClusterIn)>) {
        let batch = batch
            .into_iter()
            .map(|(realm, msg)| ShardMsg::Cluster { realm, msg })
            .collect();
        self.0.send_batch(shard, batch);
    }
}

fn bind_tcp(
    addr: std::net::SocketAddr,
    n: usize,
) -> Result<(Vec<OwnedFd>, std::net::SocketAddr), StartError> {
    let err = |m: String| StartError::Bind {
        addr: addr.to_string(),
        message: m,
    };
    if addr.port() != 0
        && std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok()
    {
        return Err(err(
            "address already in use: another process (another switchyard?) is serving it".into(),
        ));
    }
    let mut fds = Vec::with_capacity(n);
    let mut bound = addr;
    for _ in 0..n {
        let s = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::STREAM,
            None,
        )
        .map_err(|e| err(e.to_string()))?;
        s.set_reuse_address(true).map_err(|e| err(e.to_string()))?;
        s.set_reuse_port(true).map_err(|e| err(e.to_string()))?;
        s.set_nodelay(true).map_err(|e| err(e.to_string()))?;
        s.bind(&bound.into()).map_err(|e| err(e.to_string()))?;
        s.listen(4096).map_err(|e| err(e.to_string()))?;
        if let Some(a) = s.local_addr().ok().and_then(|a| a.as_socket()) {
            bound = a;
        }
        fds.push(OwnedFd::from(s));
    }
    Ok((fds, bound))
}

fn bind_unix(path: &std::path::Path) -> Result<OwnedFd, StartError> {
    let err = |m: String| StartError::Bind {
        addr: path.display().to_string(),
        message: m,
    };
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(err("socket already served by another process".into()));
        }
        // A stale socket file from a previous run.
        let _ = std::fs::remove_file(path);
    }
    let l = std::os::unix::net::UnixListener::bind(path).map_err(|e| err(e.to_string()))?;
    l.set_nonblocking(true).map_err(|e| err(e.to_string()))?;
    Ok(OwnedFd::from(l))
}

impl Router {
    /// Binds every listener and starts the shards.
    pub fn start(cfg: RouterConfig) -> Result<Router, StartError> {
        let n = cfg.shard_count().max(1);
        let mut cfg = cfg;
        cfg.shards = n;
        let mut bound = Vec::new();
        let mut endpoints = Vec::new();
        for l in &cfg.listeners {
            match &l.addr {
                ListenAddr::Tcp(a) => {
                    let (fds, real) = bind_tcp(*a, n)?;
                    endpoints.push(l.url(&ListenAddr::Tcp(real)));
                    bound.push(BoundListener::Tcp { fds });
                }
                ListenAddr::Unix(p) => {
                    let fd = bind_unix(p)?;
                    endpoints.push(l.url(&l.addr));
                    bound.push(BoundListener::Unix { fd });
                }
            }
        }
        let cfg = Arc::new(cfg);
        let (senders, inboxes) = mesh::mesh::<ShardMsg>(n);
        #[cfg(feature = "cluster")]
        let cluster = match &cfg.cluster {
            Some(c) => Some(
                crate::cluster::start(
                    c.clone(),
                    cfg.realms
                        .iter()
                        .map(|r| Uri::from(r.name.as_str()))
                        .collect(),
                    Arc::new(MeshSink(senders.clone())),
                )
                .map_err(|message| StartError::Shard { shard: 0, message })?,
            ),
            None => None,
        };
        let shared = Arc::new(SharedCounters {
            #[cfg(feature = "cluster")]
            cluster: cluster.clone(),
            ..SharedCounters::default()
        });
        let realm_names: Vec<&str> = cfg.realms.iter().map(|r| r.name.as_str()).collect();
        let epoch = Instant::now();
        let shard_metrics: Vec<Arc<ShardMetrics>> = (0..n)
            .map(|i| Arc::new(ShardMetrics::new(i, &realm_names, epoch)))
            .collect();
        let backlog_senders = senders.clone();
        let metrics = Arc::new(RouterMetrics {
            shards: shard_metrics.clone(),
            started: epoch,
            mesh_backlog: Box::new(move |i| backlog_senders.backlog(i) as u64),
            #[cfg(feature = "cluster")]
            cluster: cluster.as_ref().map(|c| c.metrics().clone()),
            #[cfg(not(feature = "cluster"))]
            cluster: None,
        });
        // Each shard's sockets, moved into its thread (whatever is not handed over is closed
        // when this function returns early).
        let mut per_shard: Vec<Vec<ShardListener>> = (0..n).map(|_| Vec::new()).collect();
        for (li, b) in bound.into_iter().enumerate() {
            match b {
                BoundListener::Tcp { fds } => {
                    for (i, fd) in fds.into_iter().enumerate() {
                        per_shard[i].push((li, fd, false));
                    }
                }
                BoundListener::Unix { fd } => per_shard[0].push((li, fd, true)),
            }
        }
        let cores = core_affinity::get_core_ids().unwrap_or_default();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let mut handles = Vec::with_capacity(n);
        for (i, (inbox, fds)) in inboxes.into_iter().zip(per_shard).enumerate() {
            let cpu = cfg
                .cpus
                .get(i)
                .copied()
                .or_else(|| cores.get(i % cores.len().max(1)).map(|c| c.id));
            let placement = match cpu {
                Some(c) => glommio::Placement::Fixed(c),
                None => glommio::Placement::Unbound,
            };
            let mut builder = glommio::LocalExecutorBuilder::new(placement)
                .name(&format!("shard-{i}"))
                .io_memory(256 << 10)
                .ring_depth(2048)
                // glommio polls for I/O (other sessions' input) only when its task queue is
                // empty or this timer fires (default 100 ms): with the reader's per-turn yield
                // (conn::INPUT_PER_TURN) this bounds how long a busy session holds the others.
                .preempt_timer(conn::PREEMPT_TIMER);
            // The shard spins at least as long as a busy reader asks its socket
            // (conn::busy_read; RouterConfig::shard_spin; adaptive: only after a park that
            // ended that soon, a patch of vendor/glommio), so the input that comes next after
            // a busy read gave up is picked up without a wake-up too.
            if let Some((spin, adaptive)) = cfg.shard_spin() {
                builder = builder.spin_before_park(spin).adaptive_spin(adaptive);
            }
            let cfg2 = cfg.clone();
            let senders2 = senders.clone();
            let shared2 = shared.clone();
            let ready = ready_tx.clone();
            let metrics2 = shard_metrics[i].clone();
            match builder.spawn(move || async move {
                shard_main(i, n, cfg2, senders2, inbox, fds, shared2, metrics2, ready).await;
            }) {
                Ok(h) => handles.push(h),
                Err(e) => {
                    // The sockets of this shard and the next ones are dropped (closed) on return.
                    stop_started(&senders, handles);
                    #[cfg(feature = "cluster")]
                    if let Some(c) = &cluster {
                        c.stop();
                    }
                    return Err(StartError::Shard {
                        shard: i,
                        message: e.to_string(),
                    });
                }
            }
        }
        drop(ready_tx);
        for _ in 0..n {
            // A shard reports at once when it cannot start; the bound is for one that hangs
            // (generous: a loaded host may take seconds to schedule a new thread).
            let message = match ready_rx.recv_timeout(SHARD_START_TIMEOUT) {
                Ok(Ok(())) => continue,
                Ok(Err(m)) => m,
                Err(_) => "a shard did not start (see the log; memlock limit?)".into(),
            };
            stop_started(&senders, handles);
            #[cfg(feature = "cluster")]
            if let Some(c) = &cluster {
                c.stop();
            }
            return Err(StartError::Shard { shard: 0, message });
        }
        Ok(Router {
            handles,
            senders,
            endpoints,
            metrics,
            #[cfg(feature = "cluster")]
            cluster,
        })
    }

    /// The counters of every shard, for a metrics endpoint (see [`crate::metrics`]).
    pub fn metrics(&self) -> Arc<RouterMetrics> {
        self.metrics.clone()
    }

    /// The URLs the router serves (`ws://127.0.0.1:8080/ws`, `rs://…`, …) with real ports.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    /// Opens in-process sessions to this router (no socket, no serialization); `Send + Clone`,
    /// usable from any thread for as long as the router runs.
    pub fn local_connector(&self) -> LocalConnector {
        LocalConnector::new(self.senders.clone())
    }

    /// A handle that can ask the router to shut down from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.senders.clone())
    }

    /// Waits for every shard to stop.
    pub fn join(self) -> Result<(), String> {
        let mut res = Ok(());
        for h in self.handles {
            if let Err(e) = h.join() {
                res = Err(e.to_string());
            }
        }
        #[cfg(feature = "cluster")]
        if let Some(c) = &self.cluster {
            c.stop();
        }
        res
    }
}

/// How long [`Router::start`] waits for each shard to report that it started.
const SHARD_START_TIMEOUT: Duration = Duration::from_secs(30);

/// Stops the shards a failed [`Router::start`] had already started, so that they close the
/// listeners they own before the error is returned. Waits at most [`STOP_STARTED_TIMEOUT`]:
/// a shard that hung while starting may never take its stop message, and the error must
/// still reach the caller (the hung thread is left behind).
fn stop_started(senders: &MeshSenders<ShardMsg>, handles: Vec<glommio::ExecutorJoinHandle<()>>) {
    ShutdownHandle(senders.clone()).shutdown();
    let (tx, rx) = std::sync::mpsc::channel();
    let joiner = std::thread::Builder::new()
        .name("switchyard-stop".into())
        .spawn(move || {
            for h in handles {
                let _ = h.join();
            }
            let _ = tx.send(());
        });
    if joiner.is_ok() && rx.recv_timeout(STOP_STARTED_TIMEOUT).is_err() {
        tracing::error!("a shard did not stop after a failed start; leaving it behind");
    }
}

const STOP_STARTED_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks all shards to close their sessions and stop. `Send + Clone`.
#[derive(Clone)]
pub struct ShutdownHandle(MeshSenders<ShardMsg>);

impl ShutdownHandle {
    pub fn shutdown(&self) {
        for i in 0..self.0.len() {
            self.0.send_batch(i, vec![ShardMsg::Shutdown]);
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn shard_main(
    id: usize,
    count: usize,
    cfg: Arc<RouterConfig>,
    senders: MeshSenders<ShardMsg>,
    inbox: mesh::Inbox<ShardMsg>,
    listeners: Vec<ShardListener>,
    shared: Arc<SharedCounters>,
    metrics: Arc<ShardMetrics>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) {
    crate::metrics::install_local(metrics.clone());
    let _stopped = crate::metrics::StoppedOnDrop(metrics.clone());
    let mut realms = crate::util::fast::FastMap::default();
    let shedding = (cfg.limits.slow_consumer == crate::config::SlowConsumerPolicy::Drop)
        .then(|| Rc::new(crate::routing::Shedding::default()));
    for r in &cfg.realms {
        let uri = Uri::from(r.name.as_str());
        let mut realm = RealmShard::new(uri.clone(), id, count, cfg.routing(r), rand::random());
        if let Some(s) = &shedding {
            realm.shed_with(s.clone());
        }
        realms.insert(uri, realm);
    }
    let shard = Rc::new(Shard {
        id,
        count,
        cfg: cfg.clone(),
        mesh: MeshOutbox::new(senders),
        sessions: RefCell::new(Default::default()),
        realms: RefCell::new(realms),
        shared,
        welcome_roles: Rc::new(session::router_roles(
            &broker_features(&cfg),
            DEALER_FEATURES,
        )),
        read_scratch: RefCell::new(vec![0; 256 * 1024]),
        busy_reactor_due: Cell::new(Instant::now()),
        busy_readers: Cell::new(0),
        shedding,
        shutting_down: Cell::new(false),
        metrics: metrics.clone(),
        authz: authorizer::AuthzState::new(
            rand::random::<u64>() % codec::MAX_ID + 1,
            cfg.authz.cache_ttl,
            cfg.authz.cache_size,
        ),
        transport_details: RefCell::new(HashMap::new()),
        spare_outputs: Default::default(),
        spare_actions: Default::default(),
        spare_writes: Default::default(),
    });
    // The accept loops own this shard's listeners: they are kept (not detached) so that shutdown
    // can end them, which closes the listening sockets before the shard thread ends. A detached
    // task is never dropped by glommio, so its listener would outlive `Router::join`.
    let mut accept_tasks = Vec::with_capacity(listeners.len());
    for (li, fd, is_unix) in listeners {
        let shard = shard.clone();
        accept_tasks.push(if is_unix {
            let std_listener = std::os::unix::net::UnixListener::from(fd);
            glommio::spawn_local(accept_unix(shard, std_listener, li))
        } else {
            // SAFETY: `fd` is a listening TCP socket created by `bind_tcp` for this shard only.
            let listener = unsafe { glommio::net::TcpListener::from_raw_fd(fd.into_raw_fd()) };
            glommio::spawn_local(accept_tcp(shard, listener, li))
        });
    }
    let ticker = {
        let shard = shard.clone();
        let nudge = inbox.nudger();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(Duration::from_millis(10)).await;
                nudge.nudge();
                shard.tick();
                shard.metrics.heartbeat();
            }
        })
    };
    metrics.heartbeat();
    metrics.set_state(ShardState::Running);
    let _ = ready.send(Ok(()));
    while let Some(batch) = inbox.recv().await {
        let mut stop = false;
        metrics.mesh_received.add(batch.len() as u64);
        for m in batch {
            match m {
                ShardMsg::Shutdown => {
                    metrics.set_state(ShardState::Stopping);
                    stop = true;
                }
                ShardMsg::UnixConn { fd, listener } => {
                    // SAFETY: the fd is an accepted, non-blocking Unix stream handed over whole.
                    let fd = fd.into_raw_fd();
                    let s = unsafe { glommio::net::UnixStream::from_raw_fd(fd) };
                    glommio::spawn_local(conn::serve(shard.clone(), s, listener, Some(fd)))
                        .detach();
                }
                ShardMsg::LocalConn { end } => {
                    glommio::spawn_local(local::serve(shard.clone(), end)).detach();
                }
                ShardMsg::Peer { realm, from, msg } => shard.on_peer(realm, from, msg),
                ShardMsg::Cluster { realm, msg } => shard.on_cluster(realm, msg),
            }
        }
        shard.flush_mesh();
        if stop {
            break;
        }
    }
    // Stop accepting before closing the sessions: ending the accept loops drops (closes) the
    // listeners, so the ports and the Unix socket are free once every shard has returned.
    shard.shutting_down.set(true);
    for t in accept_tasks {
        t.cancel().await;
    }
    shard.shutdown().await;
    ticker.cancel().await;
    shard.flush_mesh();
}

async fn accept_tcp(shard: Rc<Shard>, listener: glommio::net::TcpListener, li: usize) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                if shard.shutting_down.get() {
                    continue;
                }
                let _ = stream.set_nodelay(true);
                let fd = stream.as_raw_fd();
                glommio::spawn_local(conn::serve(shard.clone(), stream, li, Some(fd))).detach();
            }
            Err(e) => {
                tracing::warn!(shard = shard.id, "accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Accepts Unix-socket connections (shard 0 only) and deals them round-robin to the shards.
async fn accept_unix(shard: Rc<Shard>, std_listener: std::os::unix::net::UnixListener, li: usize) {
    let mut next = 0usize;
    loop {
        match std_listener.accept() {
            Ok((s, _)) => {
                let _ = s.set_nonblocking(true);
                let target = next % shard.count;
                next = next.wrapping_add(1);
                if target == shard.id {
                    // SAFETY: the fd comes from a freshly accepted std UnixStream we own.
                    let fd = s.into_raw_fd();
                    let g = unsafe { glommio::net::UnixStream::from_raw_fd(fd) };
                    glommio::spawn_local(conn::serve(shard.clone(), g, li, Some(fd))).detach();
                } else {
                    let fd = std::os::fd::OwnedFd::from(s);
                    shard.metrics.mesh_sent.inc();
                    shard
                        .mesh
                        .push(target, ShardMsg::UnixConn { fd, listener: li });
                    shard.flush_mesh();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                glommio::timer::sleep(Duration::from_millis(2)).await;
            }
            Err(e) => {
                tracing::warn!(shard = shard.id, "unix accept failed: {e}");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}
