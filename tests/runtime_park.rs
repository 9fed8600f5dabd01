//! The shard runtime never goes to sleep while it has tasks to run (vendored glommio, patch 6
//! in `vendor/glommio/VENDORED.md`).
//!
//! Upstream glommio 0.9.0 parks the executor whenever its task-queue pass reports that nothing
//! ran, and that pass also reports "nothing" when it finds the preemption flag already raised
//! (a completion on the latency ring) before running a single task. The executor then slept
//! with runnable tasks queued; when their wake-ups had been the only pending events, nothing
//! was left to end the sleep. In the router this stalled a whole shard (its 10 ms ticker
//! included) until a client happened to send something: seen as a publisher whose socket was
//! no longer read, and as a shard that never finished shutting down.
//!
//! Here a 1 µs preemption timer raises the flag between almost every I/O poll and task pass.
//! The third test covers patch 8 (timers kept across executor passes), the last patch 10
//! (`poll_io_now`).

use std::sync::mpsc;
use std::time::Duration;

/// An unpinned executor whose preemption timer is 1 µs: a completion on its latency ring
/// between nearly every I/O poll and task pass.
fn executor_preempting_every_microsecond() -> glommio::LocalExecutor {
    glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .preempt_timer(Duration::from_micros(1))
        .make()
        .expect("executor")
}

#[test]
fn executor_does_not_sleep_with_runnable_tasks() {
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let ex = executor_preempting_every_microsecond();
        ex.run(async {
            let worker = glommio::spawn_local(async {
                for _ in 0..20_000 {
                    futures_lite::future::yield_now().await;
                }
            });
            worker.await;
        });
        let _ = done_tx.send(());
    });
    // Unpatched, the executor sleeps for good the first time it finds the flag up before a
    // pass (the thread is then left behind; the test process ends regardless).
    assert!(
        done_rx.recv_timeout(Duration::from_secs(30)).is_ok(),
        "the executor went to sleep with a runnable task"
    );
}

/// CPU time the calling thread has used.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime");
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs an executor pinned to a CPU this process may use (glommio spins only when pinned)
/// with a 50 ms spin before parking, which sleeps `naps` times for `nap`; returns the CPU time
/// its thread used meanwhile.
fn cpu_while_napping(adaptive: bool, nap: Duration, naps: u32) -> Duration {
    // SAFETY: no arguments; the CPU this thread runs on, one it may use.
    let cpu = usize::try_from(unsafe { libc::sched_getcpu() }).unwrap_or(0);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Fixed(cpu))
            .spin_before_park(Duration::from_millis(50))
            .adaptive_spin(adaptive)
            .make()
            .expect("executor");
        let used = ex.run(async move {
            let start = thread_cpu();
            for _ in 0..naps {
                glommio::timer::sleep(nap).await;
            }
            thread_cpu() - start
        });
        let _ = tx.send(used);
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("executor ran")
}

/// Adaptive spinning (vendored glommio, patch 7): an executor whose wake-ups come further
/// apart than its spin time parks at once instead of spinning after each one, and one whose
/// wake-ups come sooner keeps spinning. Spinning or not shows as CPU time; the margins are
/// wide (a spinning thread that loses its CPU to others still uses far more than a parked one:
/// the floors hold with three other busy threads on its CPU).
#[test]
fn adaptive_spin_parks_between_slow_wakeups_and_spins_between_fast_ones() {
    // Three 100 ms naps: a fixed 50 ms spin burns ~150 ms; adaptive parks at once each time.
    let fixed = cpu_while_napping(false, Duration::from_millis(100), 3);
    let adaptive = cpu_while_napping(true, Duration::from_millis(100), 3);
    assert!(
        fixed >= Duration::from_millis(35),
        "a fixed spin should burn CPU between naps: {fixed:?}"
    );
    // One park may end early (a wake-up other than the timer), and then the executor spins
    // once, up to 50 ms (CI once measured 42 ms); spinning after every nap burns ~150 ms.
    assert!(
        adaptive <= Duration::from_millis(75),
        "an adaptive spin burned {adaptive:?} between slow wake-ups"
    );
    // A hundred 1 ms naps: each park ends well within the 50 ms spin time, so the executor
    // spins through the naps (~100 ms of CPU) instead of parking for each.
    let fast = cpu_while_napping(true, Duration::from_millis(1), 100);
    assert!(
        fast >= Duration::from_millis(20),
        "an adaptive spin parked between fast wake-ups: {fast:?}"
    );
}

/// Timers kept across executor passes (vendored glommio, patch 8): after an I/O wake-up the
/// executor keeps its pending preemption timer to end its next sleep instead of cancelling it
/// and arming the user timer. A kept timer that fired while the executor flushed its rings
/// must not leave the sleep without any timer: here every round is an I/O wake-up followed by
/// a 1 ms sleep that nothing but the timer can end (the peer waits for the answer), with a
/// 1 µs preemption timer so that a kept timer has nearly always fired by then.
#[test]
fn a_timer_ends_the_sleep_that_follows_an_io_wakeup() {
    use std::io::{Read, Write};
    use std::os::fd::{FromRawFd, IntoRawFd};
    const ROUNDS: usize = 300;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("address");
    let peer = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut b = [0u8; 1];
        for _ in 0..ROUNDS {
            s.write_all(b"x").expect("write");
            if s.read_exact(&mut b).is_err() {
                return false;
            }
        }
        true
    });
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let ex = executor_preempting_every_microsecond();
        ex.run(async move {
            let std_stream = std::net::TcpStream::connect(addr).expect("connect");
            std_stream.set_nonblocking(true).expect("nonblocking");
            // SAFETY: a connected TCP socket this code owns, handed over once.
            let mut stream =
                unsafe { glommio::net::TcpStream::from_raw_fd(std_stream.into_raw_fd()) };
            let mut b = [0u8; 1];
            for _ in 0..ROUNDS {
                futures_lite::AsyncReadExt::read_exact(&mut stream, &mut b)
                    .await
                    .expect("read");
                glommio::timer::sleep(Duration::from_millis(1)).await;
                futures_lite::AsyncWriteExt::write_all(&mut stream, b"y")
                    .await
                    .expect("write");
            }
        });
        let _ = done_tx.send(());
    });
    match done_rx.recv_timeout(Duration::from_secs(30)) {
        Ok(()) => {}
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("the executor slept through a timer after an I/O wake-up")
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the executor thread panicked"),
    }
    assert!(peer.join().expect("peer thread"), "the peer saw no answer");
}

/// Patch 10: a task that keeps the task queue busy (yielding in a loop, as a session reading
/// its socket directly does) sees timers and I/O only through `poll_io_now`. Here the
/// preemption timer is 10 s, so without the poll the executor would not look at its timers
/// before then; the spinning task must see a 1 ms timer of another task fire, each of 20 times.
#[test]
fn poll_io_now_fires_timers_for_a_task_that_never_lets_the_queue_empty() {
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .preempt_timer(Duration::from_secs(10))
            .make()
            .expect("executor");
        let seen = ex.run(async {
            let mut seen = 0;
            for _ in 0..20 {
                let fired = std::rc::Rc::new(std::cell::Cell::new(false));
                let f = fired.clone();
                glommio::spawn_local(async move {
                    glommio::timer::sleep(Duration::from_millis(1)).await;
                    f.set(true);
                })
                .detach();
                let start = std::time::Instant::now();
                while !fired.get() && start.elapsed() < Duration::from_secs(2) {
                    glommio::executor().poll_io_now().expect("poll");
                    futures_lite::future::yield_now().await;
                }
                seen += usize::from(fired.get());
            }
            seen
        });
        let _ = done_tx.send(seen);
    });
    match done_rx.recv_timeout(Duration::from_secs(60)) {
        Ok(seen) => assert_eq!(seen, 20, "timers seen by the spinning task"),
        Err(e) => panic!("the executor thread did not finish: {e}"),
    }
}
