//! The runtime a client core runs on: the only place the core touches an executor.
//!
//! The core (session state, request tables, reconnect and restore, auth: `session.rs` and its
//! parts) is single-threaded (`Rc`, `RefCell`) and does no I/O of its own choosing: it spawns
//! local tasks, sleeps, and opens byte streams through an [`Rt`]. Two drivers provide one:
//! glommio (the router's runtime: [`super::Client`]) and tokio (a current-thread runtime with
//! a `LocalSet` on the client's own thread: [`super::tokio`]). Both run the same core, so they
//! cannot drift apart.

use std::future::Future;
use std::time::Duration;

/// Which executor drives a client core.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rt {
    /// glommio: `spawn_local`, glommio timers and sockets.
    #[cfg(feature = "client-glommio")]
    Glommio,
    /// tokio inside a `LocalSet`: `task::spawn_local`, tokio timers and sockets.
    #[cfg(feature = "client-tokio")]
    Tokio,
}

impl Rt {
    /// Runs `f` as a task of its own on the current thread (detached).
    pub(crate) fn spawn(self, f: impl Future<Output = ()> + 'static) {
        match self {
            #[cfg(feature = "client-glommio")]
            Rt::Glommio => {
                glommio::spawn_local(f).detach();
            }
            #[cfg(feature = "client-tokio")]
            Rt::Tokio => {
                tokio::task::spawn_local(f);
            }
        }
    }

    /// Waits `d`.
    pub(crate) async fn sleep(self, d: Duration) {
        match self {
            #[cfg(feature = "client-glommio")]
            Rt::Glommio => {
                glommio::timer::sleep(d).await;
            }
            #[cfg(feature = "client-tokio")]
            Rt::Tokio => tokio::time::sleep(d).await,
        }
    }

    /// Before a write: lets the other tasks that are ready run first, so that what they queue
    /// goes out in the same write. tokio: a yield (answers of invocation handlers complete one
    /// wake-up at a time, and a write each costs a system call). glommio: nothing (handlers
    /// run on the executor and queue their answers in the same tick).
    pub(crate) async fn gather(self) {
        match self {
            #[cfg(feature = "client-glommio")]
            Rt::Glommio => {}
            #[cfg(feature = "client-tokio")]
            Rt::Tokio => tokio::task::yield_now().await,
        }
    }

    /// `f`, or `None` if it takes longer than `d`.
    pub(crate) async fn timeout<T>(self, d: Duration, f: impl Future<Output = T>) -> Option<T> {
        futures_lite::future::or(async { Some(f.await) }, async {
            self.sleep(d).await;
            None
        })
        .await
    }
}
