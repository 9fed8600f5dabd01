//! The outbound queue of one session.
//!
//! Every producer (the session's own replies, the broker fanning out an event, a cross-shard
//! delivery) pushes frames here and moves on: nothing on a shard ever awaits a slow client. The
//! queue is bounded in bytes; one writer task per session drains it, many frames per write
//! call. Frames are `Bytes`, so one encoded EVENT is shared by every subscriber using the same
//! serializer.
//!
//! A RawSocket session's messages skip the frame list: [`Outbound::push_framed`] encodes them
//! (one recipient: RESULT, INVOCATION, …) or copies an EVENT's shared encoding, RawSocket
//! header included, straight into a buffer the writer sends as it is (no encoded copy of its
//! own, no copy into the write buffer, no reference count per subscriber). Order is kept: a
//! message goes there only while the frame list is empty, and the writer takes that buffer
//! before the list.

use crate::codec::Id;
use crate::metrics::with_local;
use crate::net::rawsocket;
use crate::routing::Shedding;
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

/// One unit of outbound traffic, before transport framing.
#[derive(Debug, Clone)]
pub enum OutFrame {
    /// A WAMP message, already encoded for the session's serializer.
    Message(Bytes),
    /// Transport keep-alive request (RawSocket PING / WebSocket ping).
    Ping(Bytes),
    /// Transport keep-alive answer.
    Pong(Bytes),
    /// A WAMP message for an in-process session, not encoded, with its estimated size for the
    /// byte limit. Shared (`Arc`) by every local recipient of one fan-out and moved, not copied,
    /// for a single recipient: the shard never deep-copies a payload for a local session; a
    /// client copies a shared message on its own thread when it receives it.
    Local(std::sync::Arc<crate::codec::Message>, usize),
}

impl OutFrame {
    /// Octets this frame takes on a socket, at most (payload plus the longest transport
    /// header, 14 octets for a server's WebSocket frame); 0 for an in-process frame.
    pub fn wire_len_max(&self) -> usize {
        match self {
            OutFrame::Message(b) | OutFrame::Ping(b) | OutFrame::Pong(b) => b.len() + 14,
            OutFrame::Local(..) => 0,
        }
    }

    fn len(&self) -> usize {
        match self {
            OutFrame::Message(b) | OutFrame::Ping(b) | OutFrame::Pong(b) => b.len(),
            OutFrame::Local(_, size) => *size,
        }
    }
}

/// Why a frame was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushError {
    /// The queue is at its byte limit.
    Full,
    /// The session is closing; nothing more is sent.
    Closed,
}

/// How the writer should end the transport once the queue is drained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseRequest {
    /// WebSocket close code (RawSocket just closes).
    pub code: u16,
    pub reason: String,
}

/// Why [`Outbound::push_framed`] did not queue a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramedError {
    /// As for [`Outbound::push`].
    Push(PushError),
    /// Frames wait in the list (or the session is not framed at push time): queue the message
    /// as a frame instead, behind them.
    Listed,
    /// Its encoding is larger than `max` (nothing was queued).
    TooBig,
}

#[derive(Default)]
struct Inner {
    queue: VecDeque<OutFrame>,
    bytes: usize,
    close: Option<CloseRequest>,
    /// RawSocket frames encoded at push time, older than everything in `queue`.
    framed: Vec<u8>,
    /// Message octets in `framed` (headers not counted, as in `bytes`).
    framed_bytes: usize,
}

/// A session's bounded outbound queue. Lives on one shard (`Rc`), never crosses threads.
pub struct Outbound {
    inner: RefCell<Inner>,
    /// The writer task parks here when the queue is empty.
    waker: Cell<Option<Waker>>,
    /// Byte limit for queued frames (control frames and the closing message may exceed it).
    limit: usize,
    /// Set when a push found the queue full, cleared once the writer drained it to half the
    /// limit. While set, the shard drops events for this session before doing any work for
    /// them (policy `drop`): a stuck consumer then costs the others almost nothing.
    shedding: Cell<bool>,
    /// The writer frames for RawSocket, so messages may be framed at push time.
    raw: Cell<bool>,
    /// Where this session is marked while it sheds, so that fan-out leaves it out before
    /// building its events (policy `drop`; [`Outbound::report_shedding`]).
    report: RefCell<Option<(Id, Rc<Shedding>)>>,
}

impl Outbound {
    pub fn new(limit: usize) -> Self {
        Outbound {
            inner: RefCell::new(Inner::default()),
            waker: Cell::new(None),
            limit,
            shedding: Cell::new(false),
            raw: Cell::new(false),
            report: RefCell::new(None),
        }
    }

    /// Marks session `id` in `set` while this queue sheds (full until drained to half).
    pub fn report_shedding(&self, id: Id, set: Rc<Shedding>) {
        self.stop_reporting();
        *self.report.borrow_mut() = Some((id, set));
        if self.shedding.get() {
            self.mark(true);
        }
    }

    /// No longer marks the session (it left: its ID may be given to a new session while this
    /// queue still drains).
    pub fn stop_reporting(&self) {
        if self.shedding.get() {
            self.mark(false);
        }
        self.report.borrow_mut().take();
    }

    /// The queue starts (true) or stops shedding.
    fn set_shedding(&self, on: bool) {
        if self.shedding.replace(on) != on {
            self.mark(on);
        }
    }

    fn mark(&self, on: bool) {
        if let Some((id, set)) = &*self.report.borrow() {
            if on {
                set.start(*id);
            } else {
                set.stop(*id);
            }
        }
    }

    /// Messages for this session may be framed for RawSocket when queued
    /// ([`Outbound::push_framed`]); set by a RawSocket connection's driver.
    pub fn set_rawsocket(&self) {
        self.raw.set(true);
    }

    /// Queues one message framed for RawSocket: `encode` appends its encoding to the buffer
    /// the writer will send. Same byte limit as [`Outbound::push`]; a message whose encoding is
    /// longer than `max` octets is not queued. `spare` gives the buffer room when it has none
    /// (the shard's spare write buffers: an idle session keeps none).
    pub fn push_framed(
        &self,
        max: usize,
        spare: impl FnOnce() -> Vec<u8>,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> Result<(), FramedError> {
        if !self.raw.get() {
            return Err(FramedError::Listed);
        }
        let mut inner = self.inner.borrow_mut();
        if inner.close.is_some() {
            return Err(FramedError::Push(PushError::Closed));
        }
        if !inner.queue.is_empty() {
            return Err(FramedError::Listed);
        }
        if inner.framed.capacity() == 0 {
            inner.framed = spare();
        }
        let start = inner.framed.len();
        inner.framed.extend_from_slice(&[0; 4]);
        encode(&mut inner.framed);
        let len = inner.framed.len() - start - 4;
        let header = u32::try_from(len)
            .ok()
            .filter(|_| len <= max)
            .and_then(|n| rawsocket::encode_header(rawsocket::FrameKind::Message, n).ok());
        let Some(header) = header else {
            inner.framed.truncate(start);
            return Err(FramedError::TooBig);
        };
        if inner.bytes > 0 && inner.bytes + len > self.limit {
            inner.framed.truncate(start);
            self.set_shedding(true);
            return Err(FramedError::Push(PushError::Full));
        }
        inner.framed[start..start + 4].copy_from_slice(&header);
        inner.bytes += len;
        inner.framed_bytes += len;
        drop(inner);
        with_local(|m| m.outbound_queue_bytes.add(len as u64));
        self.wake();
        Ok(())
    }

    /// Whether the queue filled up and has not yet drained to half its limit.
    pub fn is_shedding(&self) -> bool {
        self.shedding.get()
    }

    fn wake(&self) {
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Queues a frame if it fits under the byte limit.
    pub fn push(&self, frame: OutFrame) -> Result<(), PushError> {
        let mut inner = self.inner.borrow_mut();
        if inner.close.is_some() {
            return Err(PushError::Closed);
        }
        let len = frame.len();
        if inner.bytes > 0 && inner.bytes + len > self.limit {
            self.set_shedding(true);
            return Err(PushError::Full);
        }
        inner.bytes += len;
        inner.queue.push_back(frame);
        drop(inner);
        with_local(|m| m.outbound_queue_bytes.add(len as u64));
        self.wake();
        Ok(())
    }

    /// Queues a frame regardless of the limit (small control replies, the final ABORT/GOODBYE).
    pub fn push_unbounded(&self, frame: OutFrame) -> Result<(), PushError> {
        let mut inner = self.inner.borrow_mut();
        if inner.close.is_some() {
            return Err(PushError::Closed);
        }
        let len = frame.len();
        inner.bytes += len;
        inner.queue.push_back(frame);
        drop(inner);
        with_local(|m| m.outbound_queue_bytes.add(len as u64));
        self.wake();
        Ok(())
    }

    /// Asks the writer to flush what is queued, then close the transport. Idempotent.
    pub fn close(&self, code: u16, reason: &str) {
        let mut inner = self.inner.borrow_mut();
        if inner.close.is_none() {
            inner.close = Some(CloseRequest {
                code,
                reason: reason.to_owned(),
            });
        }
        drop(inner);
        self.wake();
    }

    /// Whether frames wait in the list (messages framed at push time not counted).
    pub fn has_frames(&self) -> bool {
        !self.inner.borrow().queue.is_empty()
    }

    pub fn is_closing(&self) -> bool {
        self.inner.borrow().close.is_some()
    }

    /// Bytes currently queued.
    pub fn queued_bytes(&self) -> usize {
        self.inner.borrow().bytes
    }

    /// Takes what is queued: the messages framed at push time into `framed` (swapped with it,
    /// so `framed` must be empty), then frames (up to about `max_bytes`) into `batch`.
    /// Ready(None) when anything was taken; Ready(Some(close)) when the queue is empty and a
    /// close was requested; Pending when there is nothing to do.
    pub fn poll_take(
        &self,
        cx: &mut Context<'_>,
        framed: &mut Vec<u8>,
        batch: &mut Vec<OutFrame>,
        max_bytes: usize,
    ) -> Poll<Option<CloseRequest>> {
        let mut inner = self.inner.borrow_mut();
        let mut taken = 0;
        let took_framed = !inner.framed.is_empty();
        if took_framed {
            debug_assert!(framed.is_empty());
            std::mem::swap(&mut inner.framed, framed);
            taken = std::mem::take(&mut inner.framed_bytes);
        }
        if !inner.queue.is_empty() || took_framed {
            while let Some(f) = inner.queue.pop_front() {
                taken += f.len();
                batch.push(f);
                if taken >= max_bytes {
                    break;
                }
            }
            let taken = taken.min(inner.bytes);
            inner.bytes -= taken;
            if inner.bytes <= self.limit / 2 {
                self.set_shedding(false);
            }
            with_local(|m| m.outbound_queue_bytes.sub(taken as u64));
            return Poll::Ready(None);
        }
        if let Some(c) = &inner.close {
            return Poll::Ready(Some(c.clone()));
        }
        self.waker.set(Some(cx.waker().clone()));
        Poll::Pending
    }
}

impl Drop for Outbound {
    /// Frames never written (the transport died) leave the shard's queue gauge.
    fn drop(&mut self) {
        self.set_shedding(false);
        let left = self.inner.get_mut().bytes;
        if left > 0 {
            with_local(|m| m.outbound_queue_bytes.sub(left as u64));
        }
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
    fn bounded_in_bytes() {
        let q = Outbound::new(100);
        assert!(q.push(OutFrame::Message(Bytes::from(vec![0; 60]))).is_ok());
        assert_eq!(
            q.push(OutFrame::Message(Bytes::from(vec![0; 60]))),
            Err(PushError::Full)
        );
        assert!(q
            .push_unbounded(OutFrame::Pong(Bytes::from(vec![0; 60])))
            .is_ok());
        assert_eq!(q.queued_bytes(), 120);
        let mut batch = Vec::new();
        assert_eq!(
            q.poll_take(&mut cx(), &mut Vec::new(), &mut batch, 1 << 20),
            Poll::Ready(None)
        );
        assert_eq!(batch.len(), 2);
        assert_eq!(q.queued_bytes(), 0);
    }

    #[test]
    fn marks_the_session_in_the_shedding_set_while_it_sheds() {
        let set = Rc::new(Shedding::default());
        let f = |n| OutFrame::Message(Bytes::from(vec![0; n]));
        let take = |q: &Outbound| {
            let mut batch = Vec::new();
            let _ = q.poll_take(&mut cx(), &mut Vec::new(), &mut batch, 1 << 20);
        };
        let q = Outbound::new(100);
        q.report_shedding(7, set.clone());
        q.push(f(90)).unwrap();
        assert!(!set.contains(7));
        assert_eq!(q.push(f(30)), Err(PushError::Full));
        assert!(set.contains(7), "full: marked");
        take(&q);
        assert!(!set.contains(7), "drained: unmarked");
        // Leaving stops the marking for good (the ID may be reused while the queue drains).
        q.push(f(90)).unwrap();
        assert_eq!(q.push(f(30)), Err(PushError::Full));
        assert!(set.contains(7));
        q.stop_reporting();
        assert!(set.is_empty());
        take(&q);
        q.push(f(90)).unwrap();
        assert_eq!(q.push(f(30)), Err(PushError::Full));
        assert!(set.is_empty(), "no longer reported");
        // A queue dropped while shedding unmarks its session.
        let q = Outbound::new(100);
        q.report_shedding(8, set.clone());
        q.push(f(90)).unwrap();
        assert_eq!(q.push(f(30)), Err(PushError::Full));
        assert!(set.contains(8));
        drop(q);
        assert!(set.is_empty());
    }

    #[test]
    fn sheds_from_full_until_drained_to_half() {
        let q = Outbound::new(100);
        let f = |n| OutFrame::Message(Bytes::from(vec![0; n]));
        for _ in 0..3 {
            q.push(f(30)).unwrap();
        }
        assert!(!q.is_shedding());
        assert_eq!(q.push(f(30)), Err(PushError::Full));
        assert!(q.is_shedding());
        let mut batch = Vec::new();
        assert_eq!(
            q.poll_take(&mut cx(), &mut Vec::new(), &mut batch, 1),
            Poll::Ready(None)
        );
        assert_eq!(q.queued_bytes(), 60);
        assert!(q.is_shedding(), "still above half the limit");
        assert_eq!(
            q.poll_take(&mut cx(), &mut Vec::new(), &mut batch, 1),
            Poll::Ready(None)
        );
        assert_eq!(q.queued_bytes(), 30);
        assert!(!q.is_shedding(), "drained to half");
    }

    #[test]
    fn framed_at_push_keeps_order_limit_and_size() {
        let q = Outbound::new(100);
        let put = |q: &Outbound, bytes: &[u8], max| {
            q.push_framed(max, Vec::new, |b| b.extend_from_slice(bytes))
        };
        assert_eq!(
            put(&q, b"a", 1000),
            Err(FramedError::Listed),
            "not RawSocket"
        );
        q.set_rawsocket();
        assert_eq!(put(&q, b"first", 1000), Ok(()));
        assert_eq!(put(&q, &[7; 11], 10), Err(FramedError::TooBig));
        assert_eq!(
            q.queued_bytes(),
            5,
            "nothing of the refused message is left"
        );
        // A control frame queued next: later messages go behind it, in the list.
        q.push_unbounded(OutFrame::Pong(Bytes::from_static(b"p")))
            .unwrap();
        assert_eq!(put(&q, b"later", 1000), Err(FramedError::Listed));
        let mut framed = Vec::new();
        let mut batch = Vec::new();
        assert_eq!(
            q.poll_take(&mut cx(), &mut framed, &mut batch, 1 << 20),
            Poll::Ready(None)
        );
        assert_eq!(
            &framed[..],
            b"\x00\x00\x00\x05first",
            "RawSocket header, then the message"
        );
        assert_eq!(batch.len(), 1);
        assert_eq!(q.queued_bytes(), 0);
        // Byte limit as for push: a first message always fits, the next must fit the rest.
        assert_eq!(put(&q, &[1; 90], 1000), Ok(()));
        assert_eq!(
            put(&q, &[2; 20], 1000),
            Err(FramedError::Push(PushError::Full))
        );
        assert!(q.is_shedding());
        q.close(1000, "");
        assert_eq!(
            put(&q, b"x", 1000),
            Err(FramedError::Push(PushError::Closed))
        );
    }

    #[test]
    fn oversized_single_frame_fits_empty_queue() {
        let q = Outbound::new(10);
        assert!(q.push(OutFrame::Message(Bytes::from(vec![0; 60]))).is_ok());
    }

    #[test]
    fn close_after_drain() {
        let q = Outbound::new(100);
        q.push(OutFrame::Message(Bytes::from_static(b"x"))).unwrap();
        q.close(1000, "bye");
        assert_eq!(
            q.push(OutFrame::Message(Bytes::from_static(b"y"))),
            Err(PushError::Closed)
        );
        let mut batch = Vec::new();
        assert_eq!(
            q.poll_take(&mut cx(), &mut Vec::new(), &mut batch, 1 << 20),
            Poll::Ready(None)
        );
        match q.poll_take(&mut cx(), &mut Vec::new(), &mut batch, 1 << 20) {
            Poll::Ready(Some(c)) => assert_eq!(c.code, 1000),
            other => panic!("{other:?}"),
        }
    }
}
