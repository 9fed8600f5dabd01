//! `connect` (session establishment rate) and `idle` (memory per open session).
//!
//! `connect`: K workers over all shards, each repeating connect → transport handshake →
//! HELLO/WELCOME → GOODBYE/GOODBYE, then the next cycle, while a background task waits (at most
//! 200 ms) for the router to close the finished connection before closing it. A cycle counts in
//! `sent` and `expected` when it starts and in `delivered` when the router's GOODBYE arrived (a
//! failure counts in `errors`); the latency recorded is connect-to-WELCOME.
//!
//! `idle`: opens N sessions during setup and holds them for the duration; the runner samples
//! the router's RSS before setup, after it (plus a settle time) and at the end.

use anyhow::{bail, Result};
use std::cell::Cell;
use std::sync::Arc;
use std::time::Duration;
use switchyard::codec::Message;

use super::{open_sessions, Env, Session};
use crate::clock::now_ns;
use crate::runner::ShardCtx;
use crate::stats::{bump, unbump};
use crate::wamp;
use switchyard::client::transport;

pub async fn connect_shard(ctx: ShardCtx, env: Arc<Env>, workers: usize) -> Result<()> {
    let mine: Vec<usize> = ctx.mine(workers).collect();
    if ctx.ready().await.is_none() {
        return Ok(());
    }
    let tasks: Vec<_> = mine
        .iter()
        .map(|_| glommio::spawn_local(worker(ctx.clone(), env.clone())))
        .collect();
    ctx.stopped().await;
    drop(tasks);
    Ok(())
}

async fn worker(ctx: ShardCtx, env: Arc<Env>) {
    let c = &ctx.counters;
    while ctx.sending() {
        bump(&c.sent, 1);
        bump(&c.expected, 1);
        match cycle(&ctx, &env).await {
            Ok(()) => bump(&c.delivered, 1),
            Err(_) => {
                bump(&c.errors, 1);
                // Do not spin on a router that refuses.
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
        }
    }
    bump(&c.senders_done, 1);
}

async fn cycle(ctx: &ShardCtx, env: &Env) -> Result<()> {
    let t0 = now_ns();
    let (mut r, mut w) = transport::connect(&env.endpoint, env.ser, env.tls.as_ref()).await?;
    wamp::join(&mut r, &mut w, &env.realm).await?;
    ctx.latency.record(t0, now_ns());
    w.send(&wamp::goodbye()).await?;
    match r.message().await? {
        Some(Message::Goodbye(_)) => {}
        Some(other) => bail!("expected GOODBYE, got {}", other.name()),
        None => bail!("closed before GOODBYE"),
    }
    // Let the router close first (its side keeps TIME_WAIT), but do not wait long, and not in
    // this worker: a router that leaves the transport open after GOODBYE (Crossbar does, the
    // spec allows it) would otherwise cap each worker at five cycles a second and `connect`
    // would measure this timer. At most MAX_LINGERING connections per shard wait; past that,
    // close at once.
    if LINGERING.get() >= MAX_LINGERING {
        w.close().await;
        return Ok(());
    }
    LINGERING.set(LINGERING.get() + 1);
    glommio::spawn_local(async move {
        let _ = futures_lite::future::or(
            async { while let Ok(Some(_)) = r.frame().await {} },
            glommio::timer::sleep(LINGER),
        )
        .await;
        w.close().await;
        LINGERING.set(LINGERING.get().saturating_sub(1));
    })
    .detach();
    Ok(())
}

/// How long a finished `connect` cycle waits for the router to close the connection.
const LINGER: Duration = Duration::from_millis(200);

/// Most finished connections per shard waiting for the router to close them.
const MAX_LINGERING: usize = 256;

thread_local! {
    /// Finished connections of this shard still waiting for the router to close.
    static LINGERING: Cell<usize> = const { Cell::new(0) };
}

pub async fn idle_shard(ctx: ShardCtx, env: Arc<Env>, sessions: usize) -> Result<()> {
    let mine: Vec<usize> = ctx.mine(sessions).collect();
    let held = open_sessions(&ctx, &env, mine).await?;
    let watchers: Vec<_> = held
        .into_iter()
        .map(|(_, s)| glommio::spawn_local(hold(ctx.clone(), s)))
        .collect();
    if ctx.ready().await.is_none() {
        return Ok(());
    }
    ctx.stopped().await;
    drop(watchers);
    Ok(())
}

/// Holds one idle session: answers the router's transport pings and, if the router closes
/// the connection, counts a disconnect (and one session fewer) instead of going on claiming
/// the session is held.
async fn hold(ctx: ShardCtx, s: Session) {
    let Session { mut r, mut w, .. } = s;
    'held: loop {
        // Anything the router sends an idle session is ignored, but must be read.
        loop {
            match r.buffered_frame() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => break 'held,
            }
        }
        let pings = r.take_pings();
        if !pings.is_empty() {
            for p in &pings {
                w.pong(p);
            }
            if w.flush().await.is_err() {
                break;
            }
        }
        if r.is_closed() || !matches!(r.fill().await, Ok(true)) {
            break;
        }
    }
    bump(&ctx.counters.disconnects, 1);
    unbump(&ctx.counters.sessions, 1);
}
