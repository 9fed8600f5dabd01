//! A one-shot, single-waiter signal between two tasks of the same shard.

use std::cell::Cell;
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// Set once, awaited by one task (e.g. "the writer has finished, stop reading").
#[derive(Default)]
pub struct Signal {
    set: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Signal {
    pub fn set(&self) {
        self.set.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    pub fn is_set(&self) -> bool {
        self.set.get()
    }

    /// Completes once [`set`](Self::set) has been called.
    pub async fn wait(&self) {
        poll_fn(|cx| {
            if self.set.get() {
                Poll::Ready(())
            } else {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        })
        .await
    }
}
