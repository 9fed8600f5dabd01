//! The scenarios: what each shard's sessions do. Shared here: the connection settings
//! ([`Env`]), opening and joining sessions in bounded waves, pacing and a local wake-up.

pub mod connect;
pub mod pubsub;
pub mod rpc;

use anyhow::Result;
use std::cell::Cell;
use std::future::{poll_fn, Future};
use std::task::{Poll, Waker};
use std::time::Duration;
use switchyard::codec::{Id, Serializer};

use crate::runner::ShardCtx;
use crate::stats::bump;
use crate::wamp;
use switchyard::client::transport::{self, Reader, Tls, Writer};
use switchyard::client::url::Endpoint;

/// How to reach the router; shared (read-only) by all shards.
pub struct Env {
    pub endpoint: Endpoint,
    /// Where the senders (publishers, callers) connect, when not to `endpoint`
    /// (`--sender-url`: e.g. another node of a cluster).
    pub sender_endpoint: Option<Endpoint>,
    pub ser: Serializer,
    pub realm: String,
    pub tls: Option<Tls>,
    /// Sessions opened at once per shard during setup.
    pub setup_concurrency: usize,
    /// Most messages written per write call.
    pub batch: usize,
    /// How long a reader keeps asking its socket before it waits (`--busy-read-us`).
    pub busy_read: std::time::Duration,
}

/// The next frame: from the buffer, else from the socket directly for up to `busy` (stepping
/// aside between tries, so the other tasks and the reactor run), else waiting on the reactor.
/// Streams that cannot be read directly (TLS, Unix) wait at once. `Ok(None)` at end of stream.
pub async fn next_frame(r: &mut Reader, busy: std::time::Duration) -> Result<Option<bytes::Bytes>> {
    if busy.is_zero() || !r.reads_directly() {
        return Ok(r.frame().await?);
    }
    let mut idle_since: Option<std::time::Instant> = None;
    loop {
        if let Some(f) = r.buffered_frame()? {
            return Ok(Some(f));
        }
        if r.is_closed() {
            return Ok(None);
        }
        match r.fill_now()? {
            Some(true) => idle_since = None,
            Some(false) => return Ok(None),
            None => {
                let since = *idle_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= busy {
                    return Ok(r.frame().await?);
                }
                // A timer, not a yield: glommio polls for I/O only when no task is runnable.
                glommio::timer::sleep(Duration::from_micros(1)).await;
            }
        }
    }
}

/// Reads what the socket has and hands every complete message frame to `f` in place
/// ([`Reader::read_frames`]), asking the socket directly for up to `busy` first, as
/// [`next_frame`] does. `Ok(false)` at end of stream.
pub async fn read_frames(
    r: &mut Reader,
    busy: std::time::Duration,
    f: &mut impl FnMut(&[u8]),
) -> Result<bool> {
    if busy.is_zero() || !r.reads_directly() {
        return Ok(r.read_frames(f).await?);
    }
    let mut idle_since: Option<std::time::Instant> = None;
    loop {
        match r.read_frames_now(f)? {
            Some(more) => return Ok(more),
            None => {
                let since = *idle_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() >= busy {
                    return Ok(r.read_frames(f).await?);
                }
                glommio::timer::sleep(Duration::from_micros(1)).await;
            }
        }
    }
}

/// A joined session.
pub struct Session {
    pub r: Reader,
    pub w: Writer,
    /// The WAMP session ID the router gave.
    #[allow(dead_code)]
    pub id: Id,
}

impl Env {
    /// Connects, runs the transport handshake and joins the realm.
    pub async fn session(&self) -> Result<Session> {
        self.session_at(&self.endpoint).await
    }

    /// A sender's session (publisher, caller): at `--sender-url` if given.
    pub async fn sender_session(&self) -> Result<Session> {
        self.session_at(self.sender_endpoint.as_ref().unwrap_or(&self.endpoint))
            .await
    }

    async fn session_at(&self, endpoint: &Endpoint) -> Result<Session> {
        let (mut r, mut w) = transport::connect(endpoint, self.ser, self.tls.as_ref()).await?;
        let id = wamp::join(&mut r, &mut w, &self.realm).await?;
        Ok(Session { r, w, id })
    }
}

/// Runs `f` for every item, at most `concurrency` at a time, each as its own task; fails on
/// the first error.
pub async fn in_waves<T, F, Fut>(items: Vec<usize>, concurrency: usize, f: F) -> Result<Vec<T>>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T>> + 'static,
    T: 'static,
{
    let mut out = Vec::with_capacity(items.len());
    for chunk in items.chunks(concurrency.max(1)) {
        let tasks: Vec<_> = chunk.iter().map(|&i| glommio::spawn_local(f(i))).collect();
        for t in tasks {
            out.push(t.await?);
        }
    }
    Ok(out)
}

/// Opens (and counts) the sessions of `items`.
pub async fn open_sessions(
    ctx: &ShardCtx,
    env: &std::sync::Arc<Env>,
    items: Vec<usize>,
) -> Result<Vec<(usize, Session)>> {
    open_sessions_as(ctx, env, items, false).await
}

/// [`open_sessions`] for senders (`sender`: at `--sender-url` if given).
pub async fn open_sessions_as(
    ctx: &ShardCtx,
    env: &std::sync::Arc<Env>,
    items: Vec<usize>,
    sender: bool,
) -> Result<Vec<(usize, Session)>> {
    let ctx2 = ctx.clone();
    in_waves(items, env.setup_concurrency, move |i| {
        let env = env.clone();
        let ctx = ctx2.clone();
        async move {
            let s = if sender {
                env.sender_session().await?
            } else {
                env.session().await?
            };
            bump(&ctx.counters.sessions, 1);
            Ok((i, s))
        }
    })
    .await
}

/// A wake-up between tasks of one shard (no allocation, no cross-thread use).
#[derive(Default)]
pub struct Notify {
    set: Cell<bool>,
    waker: Cell<Option<Waker>>,
}

impl Notify {
    pub fn notify(&self) {
        self.set.set(true);
        if let Some(w) = self.waker.take() {
            w.wake();
        }
    }

    /// Waits for a notification, at most `limit`.
    pub async fn wait(&self, limit: Duration) {
        let wait = poll_fn(|cx| {
            if self.set.replace(false) {
                Poll::Ready(())
            } else {
                self.waker.set(Some(cx.waker().clone()));
                Poll::Pending
            }
        });
        futures_lite::future::or(wait, glommio::timer::sleep(limit)).await;
    }
}

/// Open-loop pacing of one sender: message `k` is due at `start + k / rate`.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    pub start: u64,
    /// Messages per second for this sender.
    pub rate: f64,
}

impl Pace {
    /// Sender `index` of `senders` sharing `total_rate` messages per second: each sends at
    /// `total_rate / senders`, its schedule shifted by `index / total_rate` so that together
    /// they send evenly, one message every `1 / total_rate`, not all at the same instants (a
    /// burst of one message per sender every `senders / total_rate`, which measured the burst:
    /// bench/FINDINGS.md, "Open loop at half the peak"). With more senders than messages in
    /// the run, the last senders send nothing: the total rate is still right.
    pub fn staggered(start: u64, total_rate: f64, senders: usize, index: usize) -> Pace {
        let offset = if total_rate > 0.0 {
            (index as f64 * 1e9 / total_rate) as u64
        } else {
            0
        };
        Pace {
            start: start.saturating_add(offset),
            rate: total_rate / senders.max(1) as f64,
        }
    }

    /// When message `k` is due (ns).
    pub fn due(&self, k: u64) -> u64 {
        self.start + (k as f64 * 1e9 / self.rate) as u64
    }

    /// How many messages are due by `now`, counting from 0.
    pub fn due_by(&self, now: u64) -> u64 {
        if now < self.start {
            return 0;
        }
        ((now - self.start) as f64 * self.rate / 1e9) as u64 + 1
    }
}

/// Sleeps until `at` (ns, [`crate::clock::now_ns`] time), at least a few microseconds.
pub async fn sleep_until(at: u64) {
    let now = crate::clock::now_ns();
    let d = at.saturating_sub(now).max(10_000);
    glommio::timer::sleep(Duration::from_nanos(d)).await;
}

#[cfg(test)]
mod tests {
    use super::Pace;

    #[test]
    fn staggered_senders_together_send_evenly() {
        // 4 senders sharing 1,000 messages/s: one message every millisecond between them.
        let mut due: Vec<u64> = (0..4)
            .flat_map(|i| {
                let p = Pace::staggered(0, 1000.0, 4, i);
                (0..3).map(move |k| p.due(k))
            })
            .collect();
        due.sort_unstable();
        let expected: Vec<u64> = (0..12).map(|k| k * 1_000_000).collect();
        assert_eq!(due, expected);
    }

    #[test]
    fn pace_is_exact() {
        let p = Pace {
            start: 1000,
            rate: 1000.0,
        };
        assert_eq!(p.due_by(999), 0);
        assert_eq!(p.due_by(1000), 1);
        assert_eq!(p.due_by(1000 + 999_999), 1);
        assert_eq!(p.due_by(1000 + 1_000_000), 2);
        assert_eq!(p.due(0), 1000);
        assert_eq!(p.due(3), 3_001_000);
    }
}
