//! Helpers shared by the `switchyard::client` integration tests (`client_transports`,
//! `client_interop`, `client_reconnect`, `client_examples`): a glommio executor on the test's
//! own thread with a hard time limit, bounded waits inside it, and event recorders.
//!
//! A test body written once runs on both client drivers: expand it in a module after
//! `use crate::client_support::glommio_driver::*` and one after `…::tokio_driver::*`; each
//! names its `Client`, `Invocation`, `CallHandle`, `run`, `until`, `bounded` and `sleep`.
//!
//! Kept apart from `tests/common` because it uses the client library, which the older test
//! crates do not need.

// Each test crate uses a different subset.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};

use switchyard::client::{Dict, Error, Value};

#[allow(unused_imports)]
pub use glommio_driver::{bounded, run, until};

/// A shared, growable list a handler (which must be `'static`, and `Send + Sync` on tokio)
/// can push into.
pub struct Recorder<T>(Arc<Mutex<Vec<T>>>);

impl<T> Clone for Recorder<T> {
    fn clone(&self) -> Self {
        Recorder(self.0.clone())
    }
}

impl<T> Default for Recorder<T> {
    fn default() -> Self {
        Recorder(Arc::new(Mutex::new(Vec::new())))
    }
}

impl<T: Clone> Recorder<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn push(&self, v: T) {
        self.lock().push(v);
    }
    pub fn len(&self) -> usize {
        self.lock().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn snapshot(&self) -> Vec<T> {
        self.lock().clone()
    }
}

/// `Value::Str`.
pub fn s(v: &str) -> Value {
    Value::Str(v.to_owned())
}

/// A non-negative integer value.
pub fn u(v: u64) -> Value {
    Value::UInt(v)
}

/// A dict from pairs.
pub fn dict(pairs: &[(&str, Value)]) -> Dict {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

/// The ERROR URI and args of an `Error::Wamp`; panics (naming `what`) on anything else.
pub fn wamp_error(what: &str, r: Result<impl std::fmt::Debug, Error>) -> (String, Vec<Value>) {
    match r {
        Err(Error::Wamp(e)) => (e.error.to_string(), e.args.clone()),
        other => panic!("{what}: expected Error::Wamp, got {other:?}"),
    }
}

/// The glommio driver (`switchyard::client::Client`) and its executor.
pub mod glommio_driver {
    use std::future::Future;
    use std::time::{Duration, Instant};

    #[allow(unused_imports)]
    pub use switchyard::client::{CallHandle, Client, Invocation};

    /// Which driver this is.
    pub const DRIVER: &str = "glommio";

    /// Runs `f` as a detached task of the executor.
    pub fn spawn(f: impl Future<Output = ()> + 'static) {
        glommio::spawn_local(f).detach();
    }

    /// Waits `d` on glommio's timer.
    pub async fn sleep(d: Duration) {
        glommio::timer::sleep(d).await;
    }

    /// Runs `fut` to completion on a fresh glommio executor in the calling thread; panics if it
    /// takes longer than `limit`. The executor uses little io_uring memory, so several tests of a
    /// crate can run their executors at once under a small memlock limit (as the router's shards
    /// do).
    pub fn run<T: 'static>(limit: Duration, fut: impl Future<Output = T> + 'static) -> T {
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .name("client-test")
            .io_memory(128 << 10)
            .ring_depth(128)
            .make()
            .expect("glommio executor (memlock limit?)");
        let out = ex.run(async move {
            futures_lite::future::or(async { Some(fut.await) }, async {
                glommio::timer::sleep(limit).await;
                None
            })
            .await
        });
        out.unwrap_or_else(|| panic!("the test did not finish within {limit:?}"))
    }

    /// Waits (polling every 10 ms, at most `limit`) until `f` holds; panics naming `what` if it
    /// never does.
    pub async fn until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !f() {
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}"
            );
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Runs `fut`, failing the test with `what` if it does not finish within `limit`.
    pub async fn bounded<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
        futures_lite::future::or(async { Some(fut.await) }, async {
            glommio::timer::sleep(limit).await;
            None
        })
        .await
        .unwrap_or_else(|| panic!("{what}: no answer within {limit:?}"))
    }
}

/// The tokio driver (`switchyard::client::tokio::Client`) on a two-worker runtime.
pub mod tokio_driver {
    use std::future::Future;
    use std::time::{Duration, Instant};

    #[allow(unused_imports)]
    pub use switchyard::client::tokio::{CallHandle, Client, Invocation};

    /// Which driver this is.
    pub const DRIVER: &str = "tokio";

    /// Runs `f` as a detached task of the runtime.
    pub fn spawn(f: impl Future<Output = ()> + Send + 'static) {
        tokio::spawn(f);
    }

    /// Waits `d` on tokio's timer.
    pub async fn sleep(d: Duration) {
        tokio::time::sleep(d).await;
    }

    /// Runs `fut` to completion on a fresh multi-threaded tokio runtime; panics if it takes
    /// longer than `limit`.
    pub fn run<T: 'static>(limit: Duration, fut: impl Future<Output = T> + 'static) -> T {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(async move { tokio::time::timeout(limit, fut).await })
            .unwrap_or_else(|_| panic!("the test did not finish within {limit:?}"))
    }

    /// Waits (polling every 10 ms, at most `limit`) until `f` holds.
    pub async fn until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + limit;
        while !f() {
            assert!(
                Instant::now() < deadline,
                "timed out after {limit:?} waiting for {what}"
            );
            sleep(Duration::from_millis(10)).await;
        }
    }

    /// Runs `fut`, failing the test with `what` if it does not finish within `limit`.
    pub async fn bounded<T>(limit: Duration, what: &str, fut: impl Future<Output = T>) -> T {
        tokio::time::timeout(limit, fut)
            .await
            .unwrap_or_else(|_| panic!("{what}: no answer within {limit:?}"))
    }
}
