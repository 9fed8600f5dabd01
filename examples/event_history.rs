//! Event history with `switchyard::client`: a router that keeps the last events of the prefix
//! subscription `com.example.log` (`[[realm.history]]`), a publisher, and a reader that pages
//! through the history with `wamp.subscription.get_events`.
//!
//! ```text
//! cargo run --example event_history
//! ```
//!
//! The router is embedded (two shards, a WebSocket listener on a free port) and configured from
//! the same TOML a `switchyard --config FILE` would read; the clients are in-process. Against a running router,
//! the same calls work with `Client::connect` and a `[[realm.history]]` table in its config.

use std::time::Duration;

use switchyard::client::SubscribeOptions;
use switchyard::client::{CallOptions, Client, ClientConfig, Dict, Error, PublishOptions, Value};
use switchyard::codec::uri::MatchPolicy;
use switchyard::shard::{LocalConnector, Router};
use switchyard::RouterConfig;

const CONFIG: &str = r#"
[router]
shards = 2
ws = ["127.0.0.1:0"]
rawsocket = []

[[realm]]
name = "realm1"

# Keep the last 100 events (at most 1 MiB, at most an hour old) of the prefix subscription
# com.example.log: every topic under it, from the router's start.
[[realm.history]]
topic = "com.example.log"
match = "prefix"
limit = 100
max_bytes = 1048576
max_age_ms = 3600000
"#;

/// `get_events(subscription, **filters)`: the events' (publication, topic, first argument).
async fn get_events(
    client: &Client,
    subscription: u64,
    filters: &[(&str, Value)],
) -> Result<Vec<(u64, String, Value)>, Error> {
    let kwargs: Dict = filters
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let r = client
        .call(
            "wamp.subscription.get_events",
            vec![Value::UInt(subscription)],
            kwargs,
            CallOptions::default(),
        )
        .await?;
    let events = match r.args.first() {
        Some(Value::List(l)) => l.clone(),
        _ => Vec::new(),
    };
    Ok(events
        .iter()
        .filter_map(Value::as_dict)
        .map(|e| {
            let publication = e.get("publication").and_then(Value::as_u64).unwrap_or(0);
            let topic = e
                .get("details")
                .and_then(Value::as_dict)
                .and_then(|d| d.get("topic"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let first = match e.get("args") {
                Some(Value::List(a)) => a.first().cloned().unwrap_or(Value::Null),
                _ => Value::Null,
            };
            (publication, topic, first)
        })
        .collect())
}

async fn app(connector: LocalConnector) -> Result<(), Error> {
    let publisher = Client::connect_local(&connector, ClientConfig::new("", "realm1")).await?;
    // Nobody subscribes yet: the history records anyway.
    for (i, topic) in ["login", "basket", "login", "checkout", "basket", "login"]
        .iter()
        .enumerate()
    {
        publisher
            .publish(
                &format!("com.example.log.{topic}"),
                vec![Value::UInt(i as u64 + 1)],
                Dict::new(),
                PublishOptions {
                    acknowledge: Some(true),
                    ..Default::default()
                },
            )
            .await?;
    }

    let reader = Client::connect_local(&connector, ClientConfig::new("", "realm1")).await?;
    // The subscription's ID: subscribing gives it (so does `wamp.subscription.lookup` once
    // somebody subscribed).
    let sub = reader
        .subscribe(
            "com.example.log",
            SubscribeOptions {
                match_policy: Some(MatchPolicy::Prefix),
                ..Default::default()
            },
            |_| {},
        )
        .await?;
    let id = sub.id;
    println!("history: subscription {id}");
    for e in get_events(&reader, id, &[]).await? {
        println!("history: all: {e:?}");
    }
    let latest = get_events(
        &reader,
        id,
        &[("reverse", Value::Bool(true)), ("limit", Value::UInt(2))],
    )
    .await?;
    println!("history: latest two: {latest:?}");
    // The next page backwards: before the last one returned.
    if let Some((last, _, _)) = latest.last() {
        let page = get_events(
            &reader,
            id,
            &[
                ("reverse", Value::Bool(true)),
                ("limit", Value::UInt(2)),
                ("before_publication", Value::UInt(*last)),
            ],
        )
        .await?;
        println!("history: the two before: {page:?}");
    }
    let logins = get_events(
        &reader,
        id,
        &[("topic", Value::Str("com.example.log.login".into()))],
    )
    .await?;
    println!("history: logins: {}", logins.len());
    reader.leave().await?;
    publisher.leave().await?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let router = match RouterConfig::from_toml(CONFIG)
        .map_err(|e| e.to_string())
        .and_then(|cfg| Router::start(cfg).map_err(|e| e.to_string()))
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("history: the router could not start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let connector = router.local_connector();
    let app = std::thread::spawn(move || {
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(256 << 10)
            .make()
            .map_err(|e| format!("cannot start a glommio executor: {e}"))?;
        ex.run(async move {
            futures_lite::future::or(
                async { app(connector).await.map_err(|e| e.to_string()) },
                async {
                    glommio::timer::sleep(Duration::from_secs(30)).await;
                    Err("timed out".to_owned())
                },
            )
            .await
        })
    });
    let result = app
        .join()
        .unwrap_or_else(|_| Err("the client thread panicked".into()));
    router.shutdown_handle().shutdown();
    let stopped = router.join();
    match (result, stopped) {
        (Ok(()), Ok(())) => {
            println!("history: done");
            std::process::ExitCode::SUCCESS
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("history: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
