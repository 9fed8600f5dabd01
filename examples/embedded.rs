//! A Switchyard router embedded in an application, with a client of the same program using it.
//!
//! ```text
//! cargo run --example embedded                     # realm1, one shard, ws on 127.0.0.1:0
//! cargo run --example embedded -- switchyard.toml  # the router configured from a file
//! ```
//!
//! With a config file the router is set up as `switchyard --config FILE` would set it up
//! (listeners, realms, principals, limits). The client joins over the router's first plain
//! listener (WebSocket, RawSocket or Unix socket), registers `com.example.greet`, calls it a
//! few times, then leaves, and the program shuts the router down.

use std::time::Duration;

use switchyard::client::{
    CallOptions, Client, ClientConfig, Dict, Invocation, RegisterOptions, Value, Yield,
};
use switchyard::config::{ListenAddr, ListenerConfig, ListenerKind, RouterConfig};
use switchyard::shard::Router;

fn router_config() -> Result<RouterConfig, String> {
    match std::env::args_os().nth(1) {
        // Exactly what `switchyard --config FILE` would run.
        Some(path) => {
            use clap::Parser;
            let args = switchyard::cli::Args::try_parse_from([
                std::ffi::OsStr::new("switchyard"),
                std::ffi::OsStr::new("--config"),
                &path,
            ])
            .map_err(|e| e.to_string())?;
            switchyard::cli::build_settings(&args)
                .map(|s| s.router)
                .map_err(|e| format!("{}: {e}", path.to_string_lossy()))
        }
        // Realm `realm1` with anonymous access (the default), one shard, and a WebSocket
        // listener on a port the system picks.
        None => Ok(RouterConfig {
            shards: 1,
            listeners: vec![ListenerConfig {
                kind: ListenerKind::WebSocket { path: "/ws".into() },
                addr: ListenAddr::Tcp(([127, 0, 0, 1], 0).into()),
                tls: None,
            }],
            ..Default::default()
        }),
    }
}

/// The application: one in-process client, callee and caller at once.
async fn app(url: String, realm: String) -> Result<(), switchyard::client::Error> {
    let client = Client::connect(ClientConfig::new(url, realm)).await?;
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
    let Some(url) = router
        .endpoints()
        .iter()
        .find(|e| {
            ["ws://", "rs://", "unix://"]
                .iter()
                .any(|s| e.starts_with(s))
        })
        .cloned()
    else {
        eprintln!("embedded: the router has no plain ws://, rs:// or unix:// listener to join");
        router.shutdown_handle().shutdown();
        let _ = router.join();
        return std::process::ExitCode::FAILURE;
    };
    // The client runs on its own glommio executor (its own thread), next to the router's shards.
    let app = std::thread::spawn(move || {
        let ex = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(256 << 10)
            .make()
            .map_err(|e| format!("cannot start a glommio executor: {e}"))?;
        ex.run(async move {
            futures_lite::future::or(
                async { app(url, realm).await.map_err(|e| e.to_string()) },
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
