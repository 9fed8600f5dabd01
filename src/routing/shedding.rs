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
#[derive(Debug)]
pub struct Shedding {
    sessions: RefCell<FastSet<SessionId>>,
    /// Bit `b` set while some marked session has `id % 64 == b` (`per_bit` counts them): most
    /// unmarked sessions are told apart by one test, without hashing (session IDs are random).
    mask: Cell<u64>,
    per_bit: RefCell<[u32; 64]>,
    dropped: Cell<u64>,
}

/// The marked sessions as one fan-out sees them (see [`Shedding::sessions`]).
pub(crate) struct Marked<'a> {
    shedding: &'a Shedding,
    mask: u64,
}

impl Marked<'_> {
    /// Whether `session` is marked.
    #[inline]
    pub(crate) fn contains(&self, session: SessionId) -> bool {
        self.mask & (1 << bit(session)) != 0 && self.shedding.sessions.borrow().contains(&session)
    }
}

impl Default for Shedding {
    fn default() -> Self {
        Shedding {
            sessions: RefCell::default(),
            mask: Cell::new(0),
            per_bit: RefCell::new([0; 64]),
            dropped: Cell::new(0),
        }
    }
}

fn bit(session: SessionId) -> usize {
    (session % 64) as usize
}

impl Shedding {
    /// `session`'s queue is full: its events are dropped until [`Shedding::stop`].
    pub fn start(&self, session: SessionId) {
        if self.sessions.borrow_mut().insert(session) {
            let b = bit(session);
            self.per_bit.borrow_mut()[b] += 1;
            self.mask.set(self.mask.get() | 1 << b);
        }
    }

    /// `session`'s queue drained (or the session ended).
    pub fn stop(&self, session: SessionId) {
        if self.sessions.borrow_mut().remove(&session) {
            let b = bit(session);
            let mut per_bit = self.per_bit.borrow_mut();
            per_bit[b] = per_bit[b].saturating_sub(1);
            if per_bit[b] == 0 {
                self.mask.set(self.mask.get() & !(1 << b));
            }
        }
    }

    /// Whether no session is marked.
    pub fn is_empty(&self) -> bool {
        self.mask.get() == 0
    }

    /// Whether `session` is marked.
    pub fn contains(&self, session: SessionId) -> bool {
        self.sessions().contains(session)
    }

    /// The marked sessions, for one fan-out (the mask read once).
    pub(crate) fn sessions(&self) -> Marked<'_> {
        Marked {
            shedding: self,
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
