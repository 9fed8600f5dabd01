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

use std::sync::mpsc;
use std::time::Duration;

#[test]
fn executor_does_not_sleep_with_runnable_tasks() {
    let (done_tx, done_rx) = mpsc::channel();
    std::thread::spawn(move || {
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .preempt_timer(Duration::from_micros(1))
            .make()
            .expect("executor");
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
