//! Helpers shared by the `switchyard::client` integration tests (`client_transports`,
//! `client_interop`, `client_reconnect`, `client_examples`): a glommio executor on the test's
//! own thread with a hard time limit, bounded waits inside it, and event recorders.
//!
//! Kept apart from `tests/common` because it uses the client library, which the older test
//! crates do not need.

// Each test crate uses a different subset.
#![allow(dead_code)]

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;
use std::time::{Duration, Instant};

use switchyard::client::{Dict, Error, Value};

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

/// A shared, growable list a handler (which must be `'static`) can push into.
pub struct Recorder<T>(Rc<RefCell<Vec<T>>>);

impl<T> Clone for Recorder<T> {
    fn clone(&self) -> Self {
        Recorder(self.0.clone())
    }
}

impl<T> Default for Recorder<T> {
    fn default() -> Self {
        Recorder(Rc::new(RefCell::new(Vec::new())))
    }
}

impl<T: Clone> Recorder<T> {
    pub fn push(&self, v: T) {
        self.0.borrow_mut().push(v);
    }
    pub fn len(&self) -> usize {
        self.0.borrow().len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn snapshot(&self) -> Vec<T> {
        self.0.borrow().clone()
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
