//! A Switchyard router embedded in an application, with an in-process client: no socket and no
//! serialization between them (`Client::connect_local`).
//!
//! ```text
//! cargo run --example embedded                     # realm1, one shard, no listeners
//! cargo run --example embedded -- switchyard.toml  # the router configured from a file
//! ```
//!
//! With a config file the router also serves the listeners the file names (as
//! `switchyard --config FILE` would), so other clients can join while the example runs. It
//! registers `com.example.greet`, calls it a few times, then leaves and shuts the router down.

use std::time::Duration;

use switchyard::client::{
    CallOptions, Client, ClientConfig, Dict, Invocation, RegisterOptions, Value, Yield,
};
use switchyard::shard::{LocalConnector, Router};
use switchyard::RouterConfig;

fn router_config() -> Result<RouterConfig, String> {
    match std::env::args_os().nth(1) {
        Some(path) => RouterConfig::from_file(std::path::Path::new(&path))
            .map_err(|e| format!("{}: {e}", path.to_string_lossy())),
        // The defaults: realm `realm1` with anonymous access, no listeners; one shard is plenty
        // for an embedded router.
        None => Ok(RouterConfig {
            shards: 1,
            ..Default::default()
        }),
    }
}

/// The application: one in-process client, callee and caller at once.
async fn app(connector: LocalConnector, realm: String) -> Result<(), switchyard::client::Error> {
    let client = Client::connect_local(&connector, ClientConfig::new("", realm)).await?;
    println!("embedded: joined as session {:?}", client.session_id());
    client
        .register(
            "com.example.greet",
            RegisterOptions::default(),
            |inv: Invocation| async move {
                let name = inv
                    .args
                    .first()
                    .and_then(Value::as_str)
                    .unwrap_or("stranger")
                    .to_owned();
                Ok(Yield::args(vec![Value::Str(format!("hello, {name}"))]))
            },
        )
        .await?;
    for name in ["Ada", "Grace", "Linus"] {
        let r = client
            .call(
                "com.example.greet",
                vec![Value::Str(name.into())],
                Dict::new(),
                CallOptions {
                    timeout: Some(5_000),
                    ..Default::default()
                },
            )
            .await?;
        println!("embedded: greet({name}) = {:?}", r.args);
    }
    client.leave().await?;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cfg = match router_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("embedded: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let realm = cfg
        .realms
        .first()
        .map(|r| r.name.clone())
        .unwrap_or_else(|| "realm1".into());
    let router = match Router::start(cfg) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("embedded: the router could not start: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    for e in router.endpoints() {
        println!("embedded: router listening {e}");
    }
    let connector = router.local_connector();
    // The client runs on its own glommio executor (its own thread), next to the router's shards.
    let app = std::thread::spawn(move || {
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(256 << 10)
            .make()
            .map_err(|e| format!("cannot start a glommio executor: {e}"))?;
        ex.run(async move {
            futures_lite::future::or(
                async { app(connector, realm).await.map_err(|e| e.to_string()) },
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
            println!("embedded: done");
            std::process::ExitCode::SUCCESS
        }
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("embedded: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
