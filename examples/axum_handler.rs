//! An axum service whose HTTP handler calls a WAMP procedure through
//! `switchyard::client::tokio` (feature `client-tokio`).
//!
//! The process embeds a router (`Router::start`, no listeners) and joins it in process
//! (`local_connector()`: no socket, no serialization): one tokio client registers
//! `com.example.greet`, and the handler of `GET /greet?name=…` calls it with the shared,
//! `Clone` client from axum's state. Pass a router URL to use a router elsewhere instead.
//!
//! ```text
//! cargo run --example axum_handler                      # serves on 127.0.0.1:3000
//! curl 'http://127.0.0.1:3000/greet?name=Ada'           # hello, Ada (call #1)
//! cargo run --example axum_handler -- --self-test       # port 0, one request, exits
//! cargo run --example axum_handler -- ws://127.0.0.1:8080/ws
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use switchyard::client::tokio::Client;
use switchyard::client::{ClientConfig, Error, RegisterOptions, Yield};
use switchyard::{Router, RouterConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The query of `GET /greet?name=…`.
#[derive(serde::Deserialize)]
struct Who {
    name: String,
}

/// `GET /greet?name=…`: calls `com.example.greet` and answers with its result.
async fn greet(
    State(client): State<Client>,
    Query(Who { name }): Query<Who>,
) -> Result<String, (StatusCode, String)> {
    client
        .call_typed::<_, String>("com.example.greet", &(name,), Default::default())
        .await
        .map_err(|e| (StatusCode::BAD_GATEWAY, e.to_string()))
}

async fn serve(client: Client, self_test: bool) -> Result<(), Box<dyn std::error::Error>> {
    let calls = Arc::new(AtomicU64::new(0));
    client
        .register(
            "com.example.greet",
            RegisterOptions::default(),
            move |inv| {
                let calls = calls.clone();
                async move {
                    let (name,): (String,) = inv.args_as()?;
                    let n = calls.fetch_add(1, Ordering::Relaxed) + 1;
                    Ok(Yield::typed(&(format!("hello, {name} (call #{n})"),), &())?)
                }
            },
        )
        .await?;
    let app = axum::Router::new()
        .route("/greet", get(greet))
        .with_state(client.clone());
    let addr = if self_test {
        "127.0.0.1:0"
    } else {
        "127.0.0.1:3000"
    };
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    println!("http listening http://{local}");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    if self_test {
        for name in ["Ada", "Grace"] {
            let mut s = tokio::net::TcpStream::connect(local).await?;
            s.write_all(
                format!(
                    "GET /greet?name={name} HTTP/1.1\r\nHost: {local}\r\nConnection: close\r\n\r\n"
                )
                .as_bytes(),
            )
            .await?;
            let mut response = String::new();
            s.read_to_string(&mut response).await?;
            let status = response.lines().next().unwrap_or_default().to_owned();
            let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
            println!("GET /greet?name={name}: {status}: {body}");
        }
        server.abort();
    } else {
        server.await??;
    }
    client.leave().await?;
    println!("axum: done");
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let self_test = args.iter().any(|a| a == "--self-test");
    let url = args.iter().find(|a| !a.starts_with("--")).cloned();
    // The embedded router runs on its own glommio threads; the application on tokio.
    let router = match url {
        Some(_) => None,
        None => Some(Router::start(RouterConfig {
            shards: 1,
            ..Default::default()
        })?),
    };
    let rt = tokio::runtime::Runtime::new()?;
    let result = rt.block_on(async {
        let client = match (&router, &url) {
            (Some(r), _) => {
                Client::connect_local(&r.local_connector(), ClientConfig::new("", "realm1")).await?
            }
            (None, Some(url)) => Client::connect(ClientConfig::new(url, "realm1")).await?,
            (None, None) => return Err(Error::Invalid("no router".into()).into()),
        };
        serve(client, self_test).await
    });
    if let Some(r) = router {
        r.shutdown_handle().shutdown();
        r.join()?;
    }
    result
}
