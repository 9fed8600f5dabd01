//! One client test body, two runtimes: a test file writes its scenarios once inside a macro

#![allow(unused_imports)]
//! and expands it in a module per driver, after `use crate::common::drivers::glommio::*` or
//! `…::tokio::*`. Each prelude names the driver's `Client` and `Invocation`, a `run` that
//! executes a body on that runtime (bounded by [`super::TEST_DEADLINE`]), `sleep` and
//! `wait_until` on its timers, and `Cell`/`RefCell` that work from any thread (handlers of
//! the tokio client are `Send + Sync`): the std names over a `Mutex`, so a body reads the same
//! on both.

use std::sync::{Mutex, MutexGuard};

/// `std::cell::Cell` over a `Mutex` (for `Copy` values).
#[derive(Debug, Default)]
pub struct Cell<T>(Mutex<T>);

impl<T: Copy> Cell<T> {
    pub fn new(v: T) -> Self {
        Cell(Mutex::new(v))
    }
    pub fn get(&self) -> T {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn set(&self, v: T) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }
}

/// `std::cell::RefCell` over a `Mutex`: `borrow` and `borrow_mut` lock (never hold one across
/// an `.await`).
#[derive(Debug, Default)]
pub struct RefCell<T>(Mutex<T>);

impl<T> RefCell<T> {
    pub fn new(v: T) -> Self {
        RefCell(Mutex::new(v))
    }
    pub fn borrow(&self) -> MutexGuard<'_, T> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn borrow_mut(&self) -> MutexGuard<'_, T> {
        self.borrow()
    }
}

/// The glommio driver: `switchyard::client::Client`.
pub mod glommio {
    pub use super::{Cell, RefCell};
    pub use crate::common::{run, wait_until};
    #[allow(unused_imports)]
    pub use switchyard::client::{CallHandle, Client, Invocation};

    /// Which driver this is.
    pub const DRIVER: &str = "glommio";

    pub async fn sleep(d: std::time::Duration) {
        glommio::timer::sleep(d).await;
    }
}

/// The tokio driver: `switchyard::client::tokio::Client` on a multi-threaded runtime.
pub mod tokio {
    pub use super::{Cell, RefCell};
    use crate::common::{TEST_DEADLINE, WAIT};
    #[allow(unused_imports)]
    pub use switchyard::client::tokio::{CallHandle, Client, Invocation};

    /// Which driver this is.
    pub const DRIVER: &str = "tokio";

    /// Runs `body` on a two-worker tokio runtime, bounded by [`TEST_DEADLINE`].
    pub fn run<F, Fut>(body: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let rt = ::tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(async move {
            ::tokio::time::timeout(TEST_DEADLINE, body())
                .await
                .unwrap_or_else(|_| panic!("test body did not finish within {TEST_DEADLINE:?}"))
        });
    }

    pub async fn sleep(d: std::time::Duration) {
        ::tokio::time::sleep(d).await;
    }

    /// Waits (at most [`WAIT`]) until `f` holds.
    pub async fn wait_until(what: &str, f: impl Fn() -> bool) {
        let start = std::time::Instant::now();
        while !f() {
            assert!(start.elapsed() < WAIT, "timed out waiting for {what}");
            sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}
