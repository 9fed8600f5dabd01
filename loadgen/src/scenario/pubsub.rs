//! `pubsub` and `fanout`: P publishers, S subscribers, T topics.
//!
//! Subscriber `i` subscribes to topic `i % T`; publisher `j` sends its `k`-th event to topic
//! `(j + k) % T`. Each PUBLISH therefore owes exactly `subscribers_of(topic)` EVENTs, which the
//! publisher adds to `expected` once the PUBLISH is written; every subscriber counts the EVENTs
//! it receives in `delivered`. After the drain, `expected - delivered` is the exact loss.
//!
//! Sending: as fast as the socket takes it (default), paced at `--rate` events published per
//! second in total (open loop; the timestamp is the due time, so latency includes any lag of
//! the sender), or closed loop with `--outstanding K`: with acknowledgements, at most K
//! unacknowledged PUBLISH per publisher; without, at most K publications per publisher whose
//! EVENTs are not all delivered yet (counted over the whole loadgen process).

use anyhow::Result;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;
use switchyard::codec::{self, Message, Uri};

use super::{open_sessions, open_sessions_as, sleep_until, Env, Notify, Pace, Session};
use crate::clock::now_ns;
use crate::runner::ShardCtx;
use crate::stats::{bump, unbump};
use crate::wamp;

#[derive(Debug, Clone)]
pub struct PubSub {
    pub publishers: usize,
    pub subscribers: usize,
    pub topics: usize,
    /// Application payload size in bytes (approximate: stamp plus padding).
    pub size: usize,
    pub acknowledge: bool,
    /// Extra subscribers that never read: a prefix subscription to every topic, not counted.
    pub stuck: usize,
    /// Total PUBLISH per second over all publishers (open loop).
    pub rate: Option<f64>,
    /// Closed loop window per publisher.
    pub outstanding: Option<usize>,
    /// Events per publisher, then stop (count mode).
    pub count: Option<u64>,
}

impl PubSub {
    pub fn topic(t: usize) -> String {
        format!("loadgen.topic.{t}")
    }

    /// Subscribers of each topic.
    pub fn fanout(&self) -> Vec<u64> {
        let mut v = vec![0u64; self.topics];
        for i in 0..self.subscribers {
            v[i % self.topics] += 1;
        }
        v
    }
}

pub async fn shard(ctx: ShardCtx, env: Arc<Env>, cfg: Arc<PubSub>) -> Result<()> {
    let s = cfg.subscribers;
    let all: Vec<usize> = ctx.mine(s + cfg.publishers).collect();
    let (subs, pubs): (Vec<usize>, Vec<usize>) = all.into_iter().partition(|&i| i < s);
    let sessions = open_sessions(&ctx, &env, subs).await?;
    let mut subscribers = Vec::new();
    for (i, mut sess) in sessions {
        wamp::subscribe(&mut sess.r, &mut sess.w, &PubSub::topic(i % cfg.topics)).await?;
        subscribers.push(sess);
    }
    let publishers = open_sessions_as(&ctx, &env, pubs, true).await?;
    // Held, never read, until the run ends (their sockets fill, then their router queues).
    let stuck: Vec<usize> = ctx.mine(cfg.stuck).collect();
    let mut never_read = Vec::new();
    for (_, mut sess) in open_sessions(&ctx, &env, stuck).await? {
        wamp::subscribe_with(
            &mut sess.r,
            &mut sess.w,
            "loadgen.topic",
            switchyard::codec::uri::MatchPolicy::Prefix,
        )
        .await?;
        never_read.push(sess);
    }
    let Some(start) = ctx.ready().await else {
        return Ok(());
    };

    let mut tasks = Vec::new();
    for sess in subscribers {
        tasks.push(glommio::spawn_local(subscriber(
            ctx.clone(),
            sess,
            env.busy_read,
        )));
    }
    let fanout = Rc::new(cfg.fanout());
    let topics: Rc<Vec<Uri>> = Rc::new((0..cfg.topics).map(|t| PubSub::topic(t).into()).collect());
    for (i, sess) in publishers {
        let j = i - s;
        let unacked = Rc::new(Cell::new(0usize));
        let acked = Rc::new(Notify::default());
        let Session { r, w, .. } = sess;
        // The reading half counts PUBLISHED/ERROR, and keeps the socket drained either way.
        tasks.push(glommio::spawn_local(ack_reader(
            ctx.clone(),
            r,
            unacked.clone(),
            acked.clone(),
        )));
        let p = Publisher {
            ctx: ctx.clone(),
            env: env.clone(),
            cfg: cfg.clone(),
            fanout: fanout.clone(),
            topics: topics.clone(),
            index: j,
            start,
            unacked,
            acked,
        };
        tasks.push(glommio::spawn_local(p.run(w)));
    }
    ctx.stopped().await;
    drop(tasks);
    drop(never_read);
    Ok(())
}

/// Counts EVENTs and records their latency until the connection or the run ends. Frames are
/// read in place, a read at a time ([`super::read_frames`]): nothing is allocated per event.
async fn subscriber(ctx: ShardCtx, mut sess: Session, busy: std::time::Duration) {
    let ser = sess.r.ser;
    let now = Cell::new(0u64);
    let count = Cell::new(0u64);
    let mut handle = |frame: &[u8]| {
        let fast = match ser {
            codec::Serializer::MsgPack => wamp::msgpack_event_stamp(frame),
            codec::Serializer::Cbor => wamp::cbor_event_stamp(frame),
            _ => None,
        };
        let stamp = match fast {
            Some(stamp) => stamp,
            None => match decoded_stamp(ser, frame) {
                Ok(Some(stamp)) => stamp,
                Ok(None) => return,
                Err(()) => return bump(&ctx.counters.errors, 1),
            },
        };
        count.set(count.get() + 1);
        if let Some((sent, _)) = stamp {
            ctx.latency.record(sent, now.get());
        }
    };
    // Frames that arrived with SUBSCRIBED.
    now.set(now_ns());
    let mut ok = sess.r.drain_frames(&mut handle).is_ok();
    while ok {
        bump(&ctx.counters.delivered, count.replace(0));
        // The receive time of a read: taken at its first frame.
        now.set(0);
        ok = matches!(
            super::read_frames(&mut sess.r, busy, &mut |f| {
                if now.get() == 0 {
                    now.set(now_ns());
                }
                handle(f)
            })
            .await,
            Ok(true)
        );
    }
    bump(&ctx.counters.delivered, count.replace(0));
    bump(&ctx.counters.disconnects, 1);
    unbump(&ctx.counters.sessions, 1);
}

/// The stamp of an EVENT the fast path declined, through the generic decoder: `Ok(None)` for a
/// message that is not an EVENT, `Err` for one that does not decode.
#[cold]
#[inline(never)]
fn decoded_stamp(ser: codec::Serializer, frame: &[u8]) -> Result<Option<Option<(u64, u64)>>, ()> {
    match codec::decode(ser, &bytes::Bytes::copy_from_slice(frame)) {
        Ok(Message::Event(ev)) => Ok(Some(wamp::read_stamp(&ev.payload))),
        Ok(_) => Ok(None),
        Err(_) => Err(()),
    }
}

/// A publisher's reading half: PUBLISHED and ERROR replies.
async fn ack_reader(
    ctx: ShardCtx,
    mut r: switchyard::client::transport::Reader,
    unacked: Rc<Cell<usize>>,
    acked: Rc<Notify>,
) {
    let ser = r.ser;
    loop {
        let frame = match r.frame().await {
            Ok(Some(f)) => f,
            _ => break,
        };
        match codec::decode(ser, &frame) {
            Ok(Message::Published(_)) => {
                bump(&ctx.counters.acked, 1);
                unacked.set(unacked.get().saturating_sub(1));
                acked.notify();
            }
            Ok(Message::Error(_)) | Err(_) => {
                bump(&ctx.counters.errors, 1);
                unacked.set(unacked.get().saturating_sub(1));
                acked.notify();
            }
            Ok(_) => {}
        }
    }
    bump(&ctx.counters.disconnects, 1);
}

struct Publisher {
    ctx: ShardCtx,
    env: Arc<Env>,
    cfg: Arc<PubSub>,
    fanout: Rc<Vec<u64>>,
    topics: Rc<Vec<Uri>>,
    index: usize,
    start: u64,
    unacked: Rc<Cell<usize>>,
    acked: Rc<Notify>,
}

impl Publisher {
    async fn run(self, mut w: switchyard::client::transport::Writer) {
        let cfg = &*self.cfg;
        let pace = cfg
            .rate
            .map(|r| Pace::staggered(self.start, r, cfg.publishers, self.index));
        let limit = cfg.count.unwrap_or(u64::MAX);
        let pad = wamp::pad_for(cfg.size);
        let avg_fanout = self.fanout.iter().sum::<u64>() as f64 / cfg.topics as f64;
        let window_events = cfg
            .outstanding
            .map(|k| (k as f64 * cfg.publishers as f64 * avg_fanout).max(1.0) as u64);
        let mut seq: u64 = 0;
        let ctx = &self.ctx;
        while ctx.sending() && seq < limit {
            let now = now_ns();
            let mut n = self.env.batch as u64;
            if let Some(p) = pace {
                let due = p.due_by(now);
                if due <= seq {
                    sleep_until(p.due(seq)).await;
                    continue;
                }
                n = n.min(due - seq);
            }
            if let Some(k) = cfg.outstanding {
                if cfg.acknowledge {
                    let room = k.saturating_sub(self.unacked.get()) as u64;
                    if room == 0 {
                        self.acked.wait(Duration::from_millis(1)).await;
                        continue;
                    }
                    n = n.min(room);
                } else if let Some(max) = window_events {
                    let g = ctx.global();
                    let in_flight = g.expected.saturating_sub(g.delivered);
                    // Whole publications that fit in the window.
                    let room = (max.saturating_sub(in_flight) as f64 / avg_fanout.max(1.0)) as u64;
                    if room == 0 {
                        glommio::timer::sleep(Duration::from_micros(20)).await;
                        continue;
                    }
                    n = n.min(room);
                }
            }
            n = n.min(limit - seq);
            let mut expected = 0;
            for _ in 0..n {
                let sent = pace.map_or(now, |p| p.due(seq));
                let t = (self.index + seq as usize) % cfg.topics;
                let payload = wamp::stamped(sent, seq, &pad);
                w.push(&wamp::publish(
                    seq + 1,
                    &self.topics[t],
                    cfg.acknowledge,
                    payload,
                ));
                expected += self.fanout[t];
                seq += 1;
            }
            self.unacked.set(self.unacked.get() + n as usize);
            if w.flush().await.is_err() {
                bump(&ctx.counters.errors, 1);
                break;
            }
            bump(&ctx.counters.sent, n);
            bump(&ctx.counters.expected, expected);
            // Let this shard's readers run even when the socket never makes us wait.
            futures_lite::future::yield_now().await;
        }
        bump(&ctx.counters.senders_done, 1);
        // Keep the writing half (and so the session) open until the run ends.
        ctx.stopped().await;
    }
}
