//! Sessions whose events are being shed (slow-consumer policy `drop`).
//!
//! The runtime marks a session whose outbound queue filled up and unmarks it once the queue
//! drained (`shard::outbound`); the broker leaves a marked session out of a publication's
//! recipients before it builds anything for it, and counts the event as dropped, for the
//! runtime to take into its metrics ([`Shedding::take_dropped`]). A subscription whose every
//! recipient is marked (a stuck subscriber alone on its subscription) then costs a publication
//! no EVENT at all. With no session marked, a publication pays one check.
//!
//! Optional: a [`RealmShard`](super::RealmShard) given none
//! ([`RealmShard::shed_with`](super::RealmShard::shed_with)) leaves shedding to the runtime.

use std::cell::{Cell, RefCell};

use crate::util::fast::FastSet;

use super::ids::SessionId;

/// The marked sessions of one shard, shared by its sessions' queues and its realms.
#[derive(Debug, Default)]
pub struct Shedding {
    sessions: RefCell<FastSet<SessionId>>,
    /// Bit `id % 64` set for every marked session: most unmarked sessions are told apart by
    /// one test, without hashing (session IDs are random).
    mask: Cell<u64>,
    dropped: Cell<u64>,
}

/// A borrowed view of the marked sessions (see [`Shedding::sessions`]).
pub(crate) struct Marked<'a> {
    sessions: std::cell::Ref<'a, FastSet<SessionId>>,
    mask: u64,
}

impl Marked<'_> {
    /// Whether `session` is marked.
    #[inline]
    pub(crate) fn contains(&self, session: SessionId) -> bool {
        self.mask & bit(session) != 0 && self.sessions.contains(&session)
    }
}

fn bit(session: SessionId) -> u64 {
    1 << (session % 64)
}

impl Shedding {
    /// `session`'s queue is full: its events are dropped until [`Shedding::stop`].
    pub fn start(&self, session: SessionId) {
        self.sessions.borrow_mut().insert(session);
        self.mask.set(self.mask.get() | bit(session));
    }

    /// `session`'s queue drained (or the session ended).
    pub fn stop(&self, session: SessionId) {
        let mut sessions = self.sessions.borrow_mut();
        if sessions.remove(&session) {
            self.mask.set(sessions.iter().fold(0, |m, &s| m | bit(s)));
        }
    }

    /// Whether no session is marked.
    pub fn is_empty(&self) -> bool {
        self.sessions.borrow().is_empty()
    }

    /// Whether `session` is marked.
    pub fn contains(&self, session: SessionId) -> bool {
        self.sessions().contains(session)
    }

    /// The marked sessions, borrowed (one borrow for a whole fan-out; nothing marks or
    /// unmarks a session while the routing core runs).
    pub(crate) fn sessions(&self) -> Marked<'_> {
        Marked {
            sessions: self.sessions.borrow(),
            mask: self.mask.get(),
        }
    }

    /// Counts `n` events dropped for marked sessions.
    pub(crate) fn count(&self, n: u64) {
        self.dropped.set(self.dropped.get() + n);
    }

    /// The events dropped since the last call.
    pub fn take_dropped(&self) -> u64 {
        self.dropped.replace(0)
    }
}
