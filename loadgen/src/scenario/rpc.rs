//! `rpc`: C callers, E callees of one procedure (round-robin shared registration when E > 1).
//!
//! A callee answers each INVOCATION with a YIELD that carries the invocation's arguments back
//! untouched (the encoded bytes are spliced, not re-encoded). A caller counts each CALL in
//! `sent`/`expected` and each RESULT (or ERROR) as it arrives, recording the latency from the
//! stamp that made the round trip.
//!
//! Closed loop (default, `--outstanding K`, 16 unless given): each caller keeps K calls in
//! flight and sends a new CALL for every RESULT. Open loop (`--rate R`): R calls per second over
//! all callers, evenly spaced (`Pace::staggered`), stamped with their due time; `--outstanding`
//! then caps the calls in flight per caller (the sender waits, and the wait shows in the
//! latency).

use anyhow::Result;
use bytes::Bytes;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use switchyard::codec::{self, Message, Uri, Yield};

use super::{open_sessions, open_sessions_as, sleep_until, Env, Notify, Pace, Session};
use crate::clock::now_ns;
use crate::runner::ShardCtx;
use crate::stats::{bump, unbump};
use crate::wamp;
use switchyard::client::transport::{Reader, Writer};

pub const PROCEDURE: &str = "loadgen.echo";

#[derive(Debug, Clone)]
pub struct Rpc {
    pub callers: usize,
    pub callees: usize,
    pub size: usize,
    /// Calls in flight per caller (closed loop), or their cap (open loop).
    pub outstanding: usize,
    /// Total calls per second (open loop).
    pub rate: Option<f64>,
    /// Calls per caller, then stop (count mode).
    pub count: Option<u64>,
}

pub async fn shard(ctx: ShardCtx, env: Arc<Env>, cfg: Arc<Rpc>) -> Result<()> {
    let e = cfg.callees;
    let all: Vec<usize> = ctx.mine(e + cfg.callers).collect();
    let (callee_ids, caller_ids): (Vec<usize>, Vec<usize>) = all.into_iter().partition(|&i| i < e);
    let mut callees = Vec::new();
    for (_, mut sess) in open_sessions(&ctx, &env, callee_ids).await? {
        // A previous run's callee may still be registered for a moment after it closed (the
        // router removes it when it notices the close): retry for up to 2 s.
        let mut attempt = 0;
        loop {
            match wamp::register(&mut sess.r, &mut sess.w, PROCEDURE, e > 1).await {
                Ok(_) => break,
                Err(err)
                    if attempt < 40 && err.to_string().contains("procedure_already_exists") =>
                {
                    attempt += 1;
                    glommio::timer::sleep(Duration::from_millis(50)).await;
                }
                Err(err) => return Err(err),
            }
        }
        callees.push(sess);
    }
    let mut callers = open_sessions_as(&ctx, &env, caller_ids, true).await?;
    if env.sender_endpoint.is_some() {
        // Callers on another router (a cluster node): wait until the callees' registration
        // has reached it, so the run does not start with a burst of no_such_procedure.
        for (_, s) in &mut callers {
            wamp::wait_callable(&mut s.r, &mut s.w, PROCEDURE, Duration::from_secs(10)).await?;
        }
    }
    let Some(start) = ctx.ready().await else {
        return Ok(());
    };
    let mut tasks = Vec::new();
    for sess in callees {
        tasks.push(glommio::spawn_local(callee(
            ctx.clone(),
            sess,
            env.busy_read,
        )));
    }
    let procedure: Uri = PROCEDURE.into();
    let pad = wamp::pad_for(cfg.size);
    for (i, sess) in callers {
        let c = Caller {
            ctx: ctx.clone(),
            cfg: cfg.clone(),
            procedure: procedure.clone(),
            pad: pad.clone(),
            in_flight: Rc::new(Cell::new(0)),
            answered: Rc::new(Notify::default()),
            batch: env.batch,
            busy: env.busy_read,
        };
        match cfg.rate {
            None => tasks.push(glommio::spawn_local(c.closed_loop(sess))),
            Some(rate) => {
                let pace = Pace::staggered(start, rate, cfg.callers, i - e);
                let Session { r, w, .. } = sess;
                tasks.push(glommio::spawn_local(c.clone_parts().results(r)));
                tasks.push(glommio::spawn_local(c.open_loop(w, pace)));
            }
        }
    }
    ctx.stopped().await;
    drop(tasks);
    Ok(())
}

/// Echoes every INVOCATION's arguments in a YIELD, one write per batch of invocations read.
async fn callee(ctx: ShardCtx, mut sess: Session, busy: Duration) {
    let ser = sess.r.ser;
    loop {
        let frame = match super::next_frame(&mut sess.r, busy).await {
            Ok(Some(f)) => f,
            _ => break,
        };
        let handle = |frame: Bytes, w: &mut Writer| match codec::decode(ser, &frame) {
            Ok(Message::Invocation(inv)) => w.push(&Message::Yield(Box::new(Yield {
                request: inv.request,
                options: Default::default(),
                payload: inv.payload,
            }))),
            Ok(_) => {}
            Err(_) => bump(&ctx.counters.errors, 1),
        };
        handle(frame, &mut sess.w);
        while let Ok(Some(f)) = sess.r.buffered_frame() {
            handle(f, &mut sess.w);
        }
        if sess.w.flush().await.is_err() {
            break;
        }
    }
    bump(&ctx.counters.disconnects, 1);
    unbump(&ctx.counters.sessions, 1);
}

struct Caller {
    ctx: ShardCtx,
    cfg: Arc<Rpc>,
    procedure: Uri,
    pad: Bytes,
    /// Calls sent and not answered.
    in_flight: Rc<Cell<usize>>,
    answered: Rc<Notify>,
    batch: usize,
    /// `--busy-read-us`.
    busy: Duration,
}

impl Caller {
    fn clone_parts(&self) -> Caller {
        Caller {
            ctx: self.ctx.clone(),
            cfg: self.cfg.clone(),
            procedure: self.procedure.clone(),
            pad: self.pad.clone(),
            in_flight: self.in_flight.clone(),
            answered: self.answered.clone(),
            batch: self.batch,
            busy: self.busy,
        }
    }

    /// Counts one reply; returns whether it was one.
    fn on_frame(&self, ser: codec::Serializer, frame: &Bytes, now: u64) -> bool {
        let c = &self.ctx.counters;
        match codec::decode(ser, frame) {
            Ok(Message::Result(res)) => {
                bump(&c.delivered, 1);
                if let Some((sent, _)) = wamp::read_stamp(&res.payload) {
                    self.ctx.latency.record(sent, now);
                }
                true
            }
            Ok(Message::Error(_)) => {
                bump(&c.errors, 1);
                true
            }
            Ok(_) => false,
            Err(_) => {
                bump(&c.errors, 1);
                false
            }
        }
    }

    fn push_call(&self, w: &mut Writer, seq: u64, sent: u64) {
        let payload = wamp::stamped(sent, seq, &self.pad);
        w.push(&wamp::call(seq + 1, &self.procedure, payload));
    }

    /// Keeps `outstanding` calls in flight: one new CALL per reply.
    async fn closed_loop(self, mut sess: Session) {
        let ser = sess.r.ser;
        let c = &self.ctx.counters;
        let limit = self.cfg.count.unwrap_or(u64::MAX);
        let mut seq = 0u64;
        let mut in_flight = 0usize;
        let mut sending = true;
        let now = now_ns();
        while seq < limit && in_flight < self.cfg.outstanding {
            self.push_call(&mut sess.w, seq, now);
            seq += 1;
            in_flight += 1;
        }
        loop {
            let n = sess.w.pending() as u64;
            if sess.w.flush().await.is_err() {
                break;
            }
            bump(&c.sent, n);
            bump(&c.expected, n);
            if sending && (seq >= limit || !self.ctx.sending()) {
                sending = false;
                bump(&c.senders_done, 1);
            }
            if !sending && in_flight == 0 {
                break;
            }
            let frame = match super::next_frame(&mut sess.r, self.busy).await {
                Ok(Some(f)) => f,
                _ => {
                    bump(&c.disconnects, 1);
                    break;
                }
            };
            let now = now_ns();
            let mut replies = self.on_frame(ser, &frame, now) as usize;
            while let Ok(Some(f)) = sess.r.buffered_frame() {
                replies += self.on_frame(ser, &f, now) as usize;
            }
            in_flight -= replies.min(in_flight);
            let sending_now = sending && self.ctx.sending();
            for _ in 0..replies {
                if !sending_now || seq >= limit {
                    break;
                }
                self.push_call(&mut sess.w, seq, now);
                seq += 1;
                in_flight += 1;
            }
        }
        if sending {
            bump(&c.senders_done, 1);
        }
        self.ctx.stopped().await;
    }

    /// Open loop, reading side.
    async fn results(self, mut r: Reader) {
        let ser = r.ser;
        loop {
            let frame = match super::next_frame(&mut r, self.busy).await {
                Ok(Some(f)) => f,
                _ => break,
            };
            let now = now_ns();
            let mut replies = self.on_frame(ser, &frame, now) as usize;
            while let Ok(Some(f)) = r.buffered_frame() {
                replies += self.on_frame(ser, &f, now) as usize;
            }
            self.in_flight
                .set(self.in_flight.get() - replies.min(self.in_flight.get()));
            self.answered.notify();
        }
        bump(&self.ctx.counters.disconnects, 1);
    }

    /// Open loop, sending side: CALLs at their due times.
    async fn open_loop(self, mut w: Writer, pace: Pace) {
        let c = &self.ctx.counters;
        let limit = self.cfg.count.unwrap_or(u64::MAX);
        let mut seq = 0u64;
        while self.ctx.sending() && seq < limit {
            let now = now_ns();
            let due = pace.due_by(now);
            if due <= seq {
                sleep_until(pace.due(seq)).await;
                continue;
            }
            let room = self.cfg.outstanding.saturating_sub(self.in_flight.get()) as u64;
            if room == 0 {
                self.answered.wait(Duration::from_millis(1)).await;
                continue;
            }
            let n = (due - seq)
                .min(room)
                .min(limit - seq)
                .min(self.batch as u64);
            for _ in 0..n {
                self.push_call(&mut w, seq, pace.due(seq));
                seq += 1;
            }
            self.in_flight.set(self.in_flight.get() + n as usize);
            if w.flush().await.is_err() {
                bump(&c.errors, 1);
                break;
            }
            bump(&c.sent, n);
            bump(&c.expected, n);
        }
        bump(&c.senders_done, 1);
        self.ctx.stopped().await;
    }
}
