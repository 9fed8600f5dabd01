//! Remote procedure calls with `switchyard::client`: a callee that answers with progressive
//! results, and a caller that asks for them (`receive_progress`).
//!
//! Against a running router (`cargo run --release --bin switchyard`):
//!
//! ```text
//! cargo run --example rpc                    # callee and caller in one process
//! cargo run --example rpc -- callee          # serves until a caller is done (at most 2 min)
//! cargo run --example rpc -- caller          # calls, then tells the callee to stop
//! cargo run --example rpc -- both rs://127.0.0.1:8081
//! ```
//!
//! The URL comes from the second argument, else `$SWITCHYARD_URL`, else
//! `ws://127.0.0.1:8080/ws`; the realm from `$SWITCHYARD_REALM`, else `realm1`.

use std::time::Duration;

use switchyard::client::{
    CallError, CallOptions, Client, ClientConfig, Dict, Invocation, RegisterOptions, Value, Yield,
};

/// How long the callee serves at most when nobody calls `com.example.stop`.
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

/// Registers `com.example.countdown` (progressive results), `com.example.add` and
/// `com.example.stop`, and serves until `stop` is called or [`SERVE_AT_MOST`] has passed.
async fn callee(cfg: ClientConfig) -> Result<(), switchyard::client::Error> {
    let client = Client::connect(cfg).await?;
    client
        .register(
            "com.example.add",
            RegisterOptions::default(),
            |inv: Invocation| async move {
                let mut sum = 0u64;
                for a in &inv.args {
                    sum += a
                        .as_u64()
                        .ok_or_else(|| CallError::new("com.example.error.not_a_number"))?;
                }
                Ok(Yield::args(vec![Value::UInt(sum)]))
            },
        )
        .await?;
    client
        .register(
            "com.example.countdown",
            RegisterOptions::default(),
            |inv: Invocation| async move {
                let from = inv.args.first().and_then(Value::as_u64).unwrap_or(3);
                // Progress only goes to callers that asked for it.
                if inv.receive_progress() {
                    for i in (1..=from).rev() {
                        inv.progress(Yield::args(vec![Value::UInt(i)]))
                            .map_err(|_| CallError::new("com.example.error.progress"))?;
                        glommio::timer::sleep(Duration::from_millis(100)).await;
                    }
                }
                Ok(Yield::args(vec![Value::Str("liftoff".into())]))
            },
        )
        .await?;
    let stopped = std::rc::Rc::new(std::cell::Cell::new(false));
    let flag = stopped.clone();
    client
        .register(
            "com.example.stop",
            RegisterOptions::default(),
            move |_inv| {
                flag.set(true);
                async { Ok(Yield::empty()) }
            },
        )
        .await?;
    println!("callee: registered com.example.add, com.example.countdown, com.example.stop");
    let deadline = std::time::Instant::now() + SERVE_AT_MOST;
    while !stopped.get() && std::time::Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(50)).await;
    }
    // Let the YIELD of `stop` go out before leaving.
    glommio::timer::sleep(Duration::from_millis(50)).await;
    client.leave().await?;
    println!("callee: done");
    Ok(())
}

/// Calls the callee's procedures, printing the progressive results, then `com.example.stop`.
async fn caller(cfg: ClientConfig) -> Result<(), switchyard::client::Error> {
    let client = Client::connect(cfg).await?;
    // The callee may still be starting: retry while the procedure does not exist (bounded).
    let mut tries = 0;
    let sum = loop {
        match client
            .call(
                "com.example.add",
                vec![Value::UInt(2), Value::UInt(3)],
                Dict::new(),
                CallOptions::default(),
            )
            .await
        {
            Err(switchyard::client::Error::Wamp(e))
                if e.error.as_str() == "wamp.error.no_such_procedure" && tries < 100 =>
            {
                tries += 1;
                glommio::timer::sleep(Duration::from_millis(100)).await;
            }
            other => break other?,
        }
    };
    println!("caller: add(2, 3) = {:?}", sum.args);

    let mut call = client.call_handle(
        "com.example.countdown",
        vec![Value::UInt(3)],
        Dict::new(),
        CallOptions {
            receive_progress: Some(true),
            timeout: Some(10_000),
            ..Default::default()
        },
    )?;
    let mut progress = 0;
    while let Some(r) = call.next().await {
        let r = r?;
        if r.progress {
            progress += 1;
            println!("caller: countdown progress {:?}", r.args);
        } else {
            println!(
                "caller: countdown result {:?} after {progress} progressive results",
                r.args
            );
        }
    }
    client
        .call(
            "com.example.stop",
            vec![],
            Dict::new(),
            CallOptions::default(),
        )
        .await?;
    client.leave().await?;
    println!("caller: done");
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
            eprintln!("rpc: cannot start a glommio executor: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = ex.run(async move {
        match role.as_str() {
            "callee" => callee(cfg).await,
            "caller" => caller(cfg).await,
            "both" => {
                let serve = glommio::spawn_local(callee(cfg.clone()));
                let called = caller(cfg).await;
                let served = serve.await;
                called.and(served)
            }
            other => Err(switchyard::client::Error::Invalid(format!(
                "unknown role {other:?}: use callee, caller or both"
            ))),
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rpc: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
