//! Publish & subscribe with `switchyard::client`: a subscriber that prints what arrives on
//! `com.example.ticks`, and a publisher that sends a few acknowledged publications.
//!
//! Against a running router (`cargo run --release --bin switchyard`):
//!
//! ```text
//! cargo run --example pubsub                     # subscriber and publisher in one process
//! cargo run --example pubsub -- subscriber       # waits for the publisher's ticks (at most 2 min)
//! cargo run --example pubsub -- publisher        # publishes TICKS ticks, then exits
//! cargo run --example pubsub -- both rs://127.0.0.1:8081
//! ```
//!
//! The URL comes from the second argument, else `$SWITCHYARD_URL`, else
//! `ws://127.0.0.1:8080/ws`; the realm from `$SWITCHYARD_REALM`, else `realm1`.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use switchyard::client::{
    Client, ClientConfig, Dict, Error, PublishOptions, SubscribeOptions, Value,
};

const TOPIC: &str = "com.example.ticks";
/// Publications per publisher run; the subscriber exits after the last one.
const TICKS: u64 = 5;
/// How long the subscriber waits at most.
const WAIT_AT_MOST: Duration = Duration::from_secs(120);

fn config() -> (String, ClientConfig) {
    let mut args = std::env::args().skip(1);
    let role = args.next().unwrap_or_else(|| "both".into());
    let url = args
        .next()
        .or_else(|| std::env::var("SWITCHYARD_URL").ok())
        .unwrap_or_else(|| "ws://127.0.0.1:8080/ws".into());
    let realm = std::env::var("SWITCHYARD_REALM").unwrap_or_else(|_| "realm1".into());
    (role, ClientConfig::new(url, realm))
}

/// Subscribes; `ready` is set once the subscription is in place. Returns after the last tick
/// (`kwargs.last == true`) or [`WAIT_AT_MOST`].
async fn subscriber(cfg: ClientConfig, ready: Rc<Cell<bool>>) -> Result<u64, Error> {
    let client = Client::connect(cfg).await?;
    let received = Rc::new(Cell::new(0u64));
    let last = Rc::new(Cell::new(false));
    let (r, l) = (received.clone(), last.clone());
    client
        .subscribe(TOPIC, SubscribeOptions::default(), move |ev| {
            r.set(r.get() + 1);
            println!(
                "subscriber: event {} on {}: {:?} {:?}",
                ev.publication, ev.topic, ev.args, ev.kwargs
            );
            if ev.kwargs.get("last") == Some(&Value::Bool(true)) {
                l.set(true);
            }
        })
        .await?;
    println!("subscriber: subscribed to {TOPIC}");
    ready.set(true);
    let deadline = Instant::now() + WAIT_AT_MOST;
    while !last.get() && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(20)).await;
    }
    client.leave().await?;
    println!("subscriber: received {} events", received.get());
    Ok(received.get())
}

/// Publishes [`TICKS`] acknowledged ticks, 100 ms apart.
async fn publisher(cfg: ClientConfig) -> Result<(), Error> {
    let client = Client::connect(cfg).await?;
    for i in 1..=TICKS {
        let mut kwargs = Dict::new();
        kwargs.insert("last".into(), Value::Bool(i == TICKS));
        let id = client
            .publish(
                TOPIC,
                vec![Value::UInt(i)],
                kwargs,
                PublishOptions {
                    acknowledge: Some(true),
                    ..Default::default()
                },
            )
            .await?;
        println!("publisher: tick {i} published as {id:?}");
        glommio::timer::sleep(Duration::from_millis(100)).await;
    }
    client.leave().await?;
    println!("publisher: done");
    Ok(())
}

fn main() -> std::process::ExitCode {
    let (role, cfg) = config();
    let ex = match glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        // A small io_uring buffer: fits the default 8 MiB memlock limit.
        .io_memory(256 << 10)
        .make()
    {
        Ok(ex) => ex,
        Err(e) => {
            eprintln!("pubsub: cannot start a glommio executor: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = ex.run(async move {
        match role.as_str() {
            "subscriber" => subscriber(cfg, Rc::default()).await.map(|_| ()),
            "publisher" => publisher(cfg).await,
            "both" => {
                let ready: Rc<Cell<bool>> = Rc::default();
                let sub = glommio::spawn_local(subscriber(cfg.clone(), ready.clone()));
                // Publish once the subscription is in place (bounded).
                let deadline = Instant::now() + Duration::from_secs(30);
                while !ready.get() && Instant::now() < deadline {
                    glommio::timer::sleep(Duration::from_millis(10)).await;
                }
                let published = publisher(cfg).await;
                let received = sub.await;
                match (published, received) {
                    (Ok(()), Ok(n)) if n == TICKS => Ok(()),
                    (Ok(()), Ok(n)) => {
                        Err(Error::Protocol(format!("received {n} of {TICKS} events")))
                    }
                    (Err(e), _) | (_, Err(e)) => Err(e),
                }
            }
            other => Err(Error::Invalid(format!(
                "unknown role {other:?}: use subscriber, publisher or both"
            ))),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pubsub: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
