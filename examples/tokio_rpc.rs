//! A tokio caller/callee pair with `switchyard::client::tokio` (feature `client-tokio`): the
//! callee registers procedures whose handlers run as tasks on the application's runtime; the
//! caller calls them from several tasks at once through clones of one `Send + Sync` handle.
//!
//! Against a running router (`cargo run --release --bin switchyard`):
//!
//! ```text
//! cargo run --example tokio_rpc                    # callee and caller in one process
//! cargo run --example tokio_rpc -- callee          # serves until a caller is done (at most 2 min)
//! cargo run --example tokio_rpc -- caller          # calls, then tells the callee to stop
//! cargo run --example tokio_rpc -- both rs://127.0.0.1:8081
//! ```
//!
//! The URL comes from the second argument, else `$SWITCHYARD_URL`, else
//! `ws://127.0.0.1:8080/ws`; the realm from `$SWITCHYARD_REALM`, else `realm1`.

use std::sync::Arc;
use std::time::Duration;

use switchyard::client::tokio::{Client, Invocation};
use switchyard::client::{CallError, CallOptions, ClientConfig, Error, RegisterOptions, Yield};
use tokio::sync::Notify;

/// How long the callee serves at most when nobody calls `com.example.tokio.stop`.
const SERVE_AT_MOST: Duration = Duration::from_secs(120);

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

/// Registers `com.example.tokio.mul` (serde arguments), `com.example.tokio.ticks` (progressive
/// results, with a tokio timer between them) and `com.example.tokio.stop`; serves until `stop`
/// is called or [`SERVE_AT_MOST`] has passed.
async fn callee(cfg: ClientConfig) -> Result<(), Error> {
    let client = Client::connect(cfg).await?;
    client
        .register(
            "com.example.tokio.mul",
            RegisterOptions::default(),
            |inv: Invocation| async move {
                let (a, b): (i64, i64) = inv.args_as()?;
                let product = a
                    .checked_mul(b)
                    .ok_or_else(|| CallError::new("com.example.error.overflow"))?;
                Ok(Yield::typed(&(product,), &())?)
            },
        )
        .await?;
    client
        .register(
            "com.example.tokio.ticks",
            RegisterOptions::default(),
            |inv: Invocation| async move {
                let n: u64 = inv.args_as()?;
                for i in 1..=n {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    if inv.receive_progress() {
                        inv.progress(Yield::typed(&(i,), &())?)?;
                    }
                }
                Ok(Yield::typed(&("done",), &())?)
            },
        )
        .await?;
    let stop = Arc::new(Notify::new());
    {
        let stop = stop.clone();
        client
            .register(
                "com.example.tokio.stop",
                RegisterOptions::default(),
                move |_inv| {
                    let stop = stop.clone();
                    async move {
                        stop.notify_one();
                        Ok(Yield::empty())
                    }
                },
            )
            .await?;
    }
    println!("callee: ready");
    let _ = tokio::time::timeout(SERVE_AT_MOST, stop.notified()).await;
    client.leave().await?;
    println!("callee: done");
    Ok(())
}

/// Calls from eight tasks at once through clones of one handle, then a progressive call.
async fn caller(cfg: ClientConfig, stop_callee: bool) -> Result<(), Error> {
    let client = Client::connect(cfg).await?;
    // The callee may still be registering when the caller starts (separate processes): retry
    // for a while on no_such_procedure.
    for _ in 0..100 {
        match client
            .call_typed::<_, i64>("com.example.tokio.mul", &(6, 7), CallOptions::default())
            .await
        {
            Err(Error::Wamp(e)) if e.error.as_str() == "wamp.error.no_such_procedure" => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => {
                println!("mul(6, 7) = {}", other?);
                break;
            }
        }
    }
    let tasks: Vec<_> = (1..=8i64)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .call_typed::<_, i64>("com.example.tokio.mul", &(i, i), CallOptions::default())
                    .await
            })
        })
        .collect();
    let mut squares = Vec::new();
    for t in tasks {
        squares.push(t.await.map_err(|e| Error::Invalid(e.to_string()))??);
    }
    println!("squares from 8 tasks: {squares:?}");
    let mut h = client.call_handle(
        "com.example.tokio.ticks",
        vec![3u64.into()],
        Default::default(),
        CallOptions {
            receive_progress: Some(true),
            ..Default::default()
        },
    )?;
    while let Some(r) = h.next().await {
        let r = r?;
        let (v,): (serde_json::Value,) = r.args_as()?;
        println!(
            "ticks {}: {v}",
            if r.progress { "progress" } else { "final" }
        );
    }
    if stop_callee {
        client
            .call(
                "com.example.tokio.stop",
                vec![],
                Default::default(),
                CallOptions::default(),
            )
            .await?;
    }
    client.leave().await?;
    println!("caller: done");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let (role, cfg) = config();
    match role.as_str() {
        "callee" => callee(cfg).await,
        "caller" => caller(cfg, true).await,
        "both" => {
            let served = tokio::spawn(callee(cfg.clone()));
            caller(cfg, true).await?;
            served.await.map_err(|e| Error::Invalid(e.to_string()))?
        }
        other => Err(Error::Invalid(format!(
            "unknown role {other:?} (callee, caller or both)"
        ))),
    }
}
