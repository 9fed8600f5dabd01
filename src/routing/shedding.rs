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
///
/// A fan-out asks about every subscriber, marked or not, so the test avoids hashing: bit `b`
/// of `mask` is set while some marked session has `id % 64 == b` (session IDs are random),
/// and while exactly one does (`single`), that one is `only[b]`. Only two marked sessions
/// sharing a bit send the test to the set.
#[derive(Debug)]
pub struct Shedding {
    sessions: RefCell<FastSet<SessionId>>,
    mask: Cell<u64>,
    single: Cell<u64>,
    only: [Cell<SessionId>; 64],
    per_bit: [Cell<u32>; 64],
    dropped: Cell<u64>,
}

impl Default for Shedding {
    fn default() -> Self {
        Shedding {
            sessions: RefCell::default(),
            mask: Cell::new(0),
            single: Cell::new(0),
            only: std::array::from_fn(|_| Cell::new(0)),
            per_bit: std::array::from_fn(|_| Cell::new(0)),
            dropped: Cell::new(0),
        }
    }
}

/// The marked sessions as one fan-out sees them (see [`Shedding::sessions`]).
pub(crate) struct Marked<'a> {
    shedding: &'a Shedding,
    mask: u64,
    single: u64,
}

impl Marked<'_> {
    /// Whether `session` is marked.
    #[inline]
    pub(crate) fn contains(&self, session: SessionId) -> bool {
        let b = bit(session);
        if self.mask & (1 << b) == 0 {
            false
        } else if self.single & (1 << b) != 0 {
            self.shedding.only[b].get() == session
        } else {
            self.shedding.sessions.borrow().contains(&session)
        }
    }
}

fn bit(session: SessionId) -> usize {
    (session % 64) as usize
}

impl Shedding {
    /// `session`'s queue is full: its events are dropped until [`Shedding::stop`].
    pub fn start(&self, session: SessionId) {
        if !self.sessions.borrow_mut().insert(session) {
            return;
        }
        let b = bit(session);
        let n = self.per_bit[b].get() + 1;
        self.per_bit[b].set(n);
        self.mask.set(self.mask.get() | 1 << b);
        if n == 1 {
            self.only[b].set(session);
            self.single.set(self.single.get() | 1 << b);
        } else {
            self.single.set(self.single.get() & !(1 << b));
        }
    }

    /// `session`'s queue drained (or the session ended).
    pub fn stop(&self, session: SessionId) {
        let sessions = &mut *self.sessions.borrow_mut();
        if !sessions.remove(&session) {
            return;
        }
        let b = bit(session);
        let n = self.per_bit[b].get().saturating_sub(1);
        self.per_bit[b].set(n);
        if n == 0 {
            self.mask.set(self.mask.get() & !(1 << b));
            self.single.set(self.single.get() & !(1 << b));
        } else if n == 1 {
            // The one left on this bit (a walk of the set, only when two shared a bit).
            if let Some(&left) = sessions.iter().find(|&&s| bit(s) == b) {
                self.only[b].set(left);
                self.single.set(self.single.get() | 1 << b);
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

    /// The marked sessions, for one fan-out (the masks read once).
    pub(crate) fn sessions(&self) -> Marked<'_> {
        Marked {
            shedding: self,
            mask: self.mask.get(),
            single: self.single.get(),
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
