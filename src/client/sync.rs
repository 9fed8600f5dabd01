//! Single-threaded synchronisation for the client's tasks: a queue with one consumer
//! ([`Mailbox`]) and a one-way flag many tasks can wait for ([`Signal`]). Both live inside one
//! thread (`Rc`, no locks).

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::task::{Poll, Waker};

/// An unbounded queue with one consumer. Closing it lets the consumer drain what is queued,
/// then `recv` returns `None`.
pub(crate) struct Mailbox<T> {
    q: RefCell<VecDeque<T>>,
    closed: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl<T> Mailbox<T> {
    pub(crate) fn new() -> Self {
        Mailbox {
            q: RefCell::new(VecDeque::new()),
            closed: Cell::new(false),
            waker: RefCell::new(None),
        }
    }

    /// Queues `t`; false (and `t` dropped) if the mailbox is closed.
    pub(crate) fn push(&self, t: T) -> bool {
        if self.closed.get() {
            return false;
        }
        self.q.borrow_mut().push_back(t);
        self.wake();
        true
    }

    /// No more pushes; the consumer still gets what is queued.
    pub(crate) fn close(&self) {
        self.closed.set(true);
        self.wake();
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.get()
    }

    fn wake(&self) {
        if let Some(w) = self.waker.borrow_mut().take() {
            w.wake();
        }
    }

    /// The next item without waiting.
    pub(crate) fn try_recv(&self) -> Option<T> {
        self.q.borrow_mut().pop_front()
    }

    /// The next item; `None` once closed and drained.
    pub(crate) async fn recv(&self) -> Option<T> {
        poll_fn(|cx| {
            if let Some(t) = self.q.borrow_mut().pop_front() {
                return Poll::Ready(Some(t));
            }
            if self.closed.get() {
                return Poll::Ready(None);
            }
            *self.waker.borrow_mut() = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

/// A flag that is set once; any number of tasks can wait for it.
#[derive(Default)]
pub(crate) struct Signal {
    set: Cell<bool>,
    wakers: RefCell<Vec<Waker>>,
}

impl Signal {
    pub(crate) fn set(&self) {
        self.set.set(true);
        for w in self.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }

    pub(crate) fn is_set(&self) -> bool {
        self.set.get()
    }

    pub(crate) async fn wait(&self) {
        poll_fn(|cx| {
            if self.set.get() {
                return Poll::Ready(());
            }
            let mut ws = self.wakers.borrow_mut();
            if !ws.iter().any(|w| w.will_wake(cx.waker())) {
                ws.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}
