//! A two-way channel between a session served by a shard and a peer on any thread: the
//! construction under the in-process transport ([`super::inproc`], `Message` values) and the
//! HTTP long-poll transport (encoded frames, see `shard::longpoll`).
//!
//! Each direction is a lock-free crossbeam channel plus an `AtomicWaker` for the waiting side,
//! the same construction as the cross-shard mesh. Every item carries a size:
//! - Router → peer is bounded by the router: it sends only while fewer than its limit of bytes
//!   are in flight ([`ServerEnd::poll_credit`]), and the peer returns credit as it receives. A
//!   peer that stops receiving therefore fills the session's outbound queue and meets the
//!   slow-consumer policy exactly as a network client would.
//! - Peer → router is counted ([`PeerEnd::pending_bytes`]) and bounded by the peer if it
//!   wishes: the in-process client does not (it is the application's own code), the long-poll
//!   transport does (it is a network peer).
//!
//! Either end closing is seen by the other: [`PeerEnd::poll_recv`] ends with `None` once the
//! router side closed and everything sent before was received; the router sees the peer closed
//! (after taking what it sent) once it closed or dropped every clone of its end.

use atomic_waker::AtomicWaker;
use crossbeam_channel::{Receiver, Sender, TryRecvError};
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

/// One direction: items with their sizes.
type Lane<T> = (Sender<(T, usize)>, Receiver<(T, usize)>);

/// The state both ends share. `U`: items to the router; `D`: items to the peer.
struct Pipe<U, D> {
    to_peer: Lane<D>,
    to_router: Lane<U>,
    /// The peer's receiving task.
    peer_waker: AtomicWaker,
    /// The shard's reading task (items from the peer, or the peer closed).
    router_rx_waker: AtomicWaker,
    /// The shard's writing task (credit returned, or the peer closed).
    credit_waker: AtomicWaker,
    /// Bytes sent to the peer and not yet received by it.
    in_flight: AtomicUsize,
    /// Bytes sent by the peer and not yet taken by the router.
    pending: AtomicUsize,
    peer_closed: AtomicBool,
    router_closed: AtomicBool,
}

impl<U, D> Pipe<U, D> {
    fn close_peer(&self) {
        self.peer_closed.store(true, Ordering::Release);
        self.router_rx_waker.wake();
        self.credit_waker.wake();
    }
    fn close_router(&self) {
        self.router_closed.store(true, Ordering::Release);
        self.peer_waker.wake();
    }
}

/// The other end is gone: nothing more can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the transport is closed")]
pub struct Closed;

/// Creates a connected pair of ends.
pub fn pair<U, D>() -> (PeerEnd<U, D>, ServerEnd<U, D>) {
    let p = Arc::new(Pipe {
        to_peer: crossbeam_channel::unbounded(),
        to_router: crossbeam_channel::unbounded(),
        peer_waker: AtomicWaker::new(),
        router_rx_waker: AtomicWaker::new(),
        credit_waker: AtomicWaker::new(),
        in_flight: AtomicUsize::new(0),
        pending: AtomicUsize::new(0),
        peer_closed: AtomicBool::new(false),
        router_closed: AtomicBool::new(false),
    });
    (PeerEnd(Arc::new(PeerSide(p.clone()))), ServerEnd(p))
}

/// Closes the peer end when the last clone of [`PeerEnd`] goes.
struct PeerSide<U, D>(Arc<Pipe<U, D>>);

impl<U, D> Drop for PeerSide<U, D> {
    fn drop(&mut self) {
        self.0.close_peer();
    }
}

/// The peer's end. `Send + Sync` when the items are; clones share one end, which closes when
/// the last clone is dropped or [`PeerEnd::close`] is called. One task at a time should wait
/// in [`PeerEnd::recv`] (the end keeps one waker).
pub struct PeerEnd<U, D>(Arc<PeerSide<U, D>>);

impl<U, D> Clone for PeerEnd<U, D> {
    fn clone(&self) -> Self {
        PeerEnd(self.0.clone())
    }
}

impl<U, D> PeerEnd<U, D> {
    fn pipe(&self) -> &Pipe<U, D> {
        &self.0 .0
    }

    /// Sends an item of `size` bytes to the router. Never blocks; fails once either end has
    /// closed.
    pub fn send(&self, item: U, size: usize) -> Result<(), Closed> {
        let p = self.pipe();
        if p.peer_closed.load(Ordering::Acquire) || p.router_closed.load(Ordering::Acquire) {
            return Err(Closed);
        }
        p.pending.fetch_add(size, Ordering::AcqRel);
        p.to_router.0.send((item, size)).map_err(|_| Closed)?;
        p.router_rx_waker.wake();
        Ok(())
    }

    /// Polls for the next item from the router: `Ready(None)` once the router closed its end
    /// and everything it sent before has been received.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<D>> {
        let p = self.pipe();
        if let Some(r) = self.take() {
            return Poll::Ready(r);
        }
        p.peer_waker.register(cx.waker());
        match self.take() {
            Some(r) => Poll::Ready(r),
            None => Poll::Pending,
        }
    }

    /// The next item if one is there (`Some(Some(_))`), the end of the stream (`Some(None)`),
    /// or nothing yet (`None`).
    pub fn try_recv(&self) -> Option<Option<D>> {
        self.take()
    }

    fn take(&self) -> Option<Option<D>> {
        let p = self.pipe();
        match p.to_peer.1.try_recv() {
            Ok((item, size)) => {
                p.in_flight.fetch_sub(size, Ordering::AcqRel);
                p.credit_waker.wake();
                Some(Some(item))
            }
            Err(TryRecvError::Empty) if p.router_closed.load(Ordering::Acquire) => {
                // Closed after its last send: anything sent is visible now.
                match p.to_peer.1.try_recv() {
                    Ok((item, size)) => {
                        p.in_flight.fetch_sub(size, Ordering::AcqRel);
                        Some(Some(item))
                    }
                    Err(_) => Some(None),
                }
            }
            Err(_) => None,
        }
    }

    /// Waits for the next item from the router; `None` once the router side has closed.
    pub async fn recv(&self) -> Option<D> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Closes the peer's end, like closing a socket: the router ends the session.
    pub fn close(&self) {
        self.pipe().close_peer();
    }

    /// Whether the router has closed its end (items may still be waiting in `recv`).
    pub fn is_closed_by_router(&self) -> bool {
        self.pipe().router_closed.load(Ordering::Acquire)
    }

    /// Bytes received from the router's side and not yet taken by the peer.
    pub fn in_flight(&self) -> usize {
        self.pipe().in_flight.load(Ordering::Acquire)
    }

    /// Bytes sent by the peer and not yet taken by the router.
    pub fn pending_bytes(&self) -> usize {
        self.pipe().pending.load(Ordering::Acquire)
    }
}

/// The router's end, served by one shard. Closes on drop.
pub struct ServerEnd<U, D>(Arc<Pipe<U, D>>);

impl<U, D> ServerEnd<U, D> {
    /// Polls for the next item from the peer: `Ready(None)` once the peer closed its end and
    /// everything it sent before has been taken.
    pub fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<U>> {
        let p = &*self.0;
        let take = |p: &Pipe<U, D>| match self.try_recv() {
            Some(item) => Some(Some(item)),
            None if p.peer_closed.load(Ordering::Acquire) => {
                self.try_recv().map(Some).or(Some(None))
            }
            None => None,
        };
        if let Some(r) = take(p) {
            return Poll::Ready(r);
        }
        p.router_rx_waker.register(cx.waker());
        match take(p) {
            Some(r) => Poll::Ready(r),
            None => Poll::Pending,
        }
    }

    /// Waits for the next item from the peer; `None` once the peer has closed.
    pub async fn recv(&self) -> Option<U> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Takes an item the peer already sent, without waiting.
    pub fn try_recv(&self) -> Option<U> {
        let (item, size) = self.0.to_router.1.try_recv().ok()?;
        self.0.pending.fetch_sub(size, Ordering::AcqRel);
        Some(item)
    }

    /// Ready when fewer than `limit` bytes are in flight to the peer, or the peer is gone
    /// (check [`ServerEnd::peer_closed`]).
    pub fn poll_credit(&self, cx: &mut Context<'_>, limit: usize) -> Poll<()> {
        let p = &*self.0;
        let ok = |p: &Pipe<U, D>| {
            p.in_flight.load(Ordering::Acquire) < limit || p.peer_closed.load(Ordering::Acquire)
        };
        if ok(p) {
            return Poll::Ready(());
        }
        p.credit_waker.register(cx.waker());
        if ok(p) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    /// Sends an item to the peer, counting `size` bytes against the credit.
    pub fn send(&self, item: D, size: usize) {
        let p = &*self.0;
        if p.peer_closed.load(Ordering::Acquire) {
            return;
        }
        p.in_flight.fetch_add(size, Ordering::AcqRel);
        if p.to_peer.0.send((item, size)).is_ok() {
            p.peer_waker.wake();
        }
    }

    /// Whether the peer has closed its end.
    pub fn peer_closed(&self) -> bool {
        self.0.peer_closed.load(Ordering::Acquire)
    }

    /// Bytes sent to the peer and not yet received.
    pub fn in_flight(&self) -> usize {
        self.0.in_flight.load(Ordering::Acquire)
    }

    /// Closes the router end: the peer's `recv` returns `None` after the queued items.
    pub fn close(&self) {
        self.0.close_router();
    }
}

impl<U, D> Drop for ServerEnd<U, D> {
    fn drop(&mut self) {
        self.0.close_router();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    #[test]
    fn both_directions_credit_and_pending() {
        let (peer, router) = pair::<&str, &str>();
        peer.send("up", 7).unwrap();
        assert_eq!(peer.pending_bytes(), 7);
        assert_eq!(router.poll_recv(&mut cx()), Poll::Ready(Some("up")));
        assert_eq!(peer.pending_bytes(), 0);
        assert!(router.poll_recv(&mut cx()).is_pending());
        router.send("down", 100);
        assert_eq!(peer.in_flight(), 100);
        assert!(router.poll_credit(&mut cx(), 100).is_pending());
        assert!(router.poll_credit(&mut cx(), 101).is_ready());
        assert_eq!(peer.try_recv(), Some(Some("down")));
        assert_eq!(router.in_flight(), 0);
        assert_eq!(peer.try_recv(), None);
    }

    #[test]
    fn each_side_sees_the_other_close_after_its_items() {
        let (peer, router) = pair::<u8, u8>();
        router.send(1, 1);
        drop(router);
        assert!(peer.is_closed_by_router());
        assert_eq!(peer.poll_recv(&mut cx()), Poll::Ready(Some(1)));
        assert_eq!(peer.poll_recv(&mut cx()), Poll::Ready(None));
        assert_eq!(peer.send(2, 1), Err(Closed));

        let (peer, router) = pair::<u8, u8>();
        let second = peer.clone();
        peer.send(3, 1).unwrap();
        drop(peer);
        assert!(!router.peer_closed());
        second.close();
        assert!(router.peer_closed());
        assert_eq!(router.poll_recv(&mut cx()), Poll::Ready(Some(3)));
        assert_eq!(router.poll_recv(&mut cx()), Poll::Ready(None));
        // A closed peer releases a writer waiting for credit.
        router.send(4, 1000);
        assert!(router.poll_credit(&mut cx(), 10).is_ready());
    }
}
