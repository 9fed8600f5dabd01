//! `switchyard`: the router service. Flags (and an optional config file) → [`Settings`] →
//! [`Router`]; SIGINT/SIGTERM close every session with GOODBYE and exit 0.
//!
//! `switchyard config check FILE` validates a config file and prints the effective settings;
//! `switchyard config example` prints a commented example. The flags live in
//! [`switchyard::cli`].

use anyhow::{Context, Result};
use clap::Parser;
use std::io::Write;
use switchyard::cli::{build_settings, Args, Command, ConfigCommand, Settings, EXAMPLE_CONFIG};
use switchyard::config::ConfigError;
use switchyard::shard::Router;

fn main() -> std::process::ExitCode {
    match try_main() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}`: the whole cause chain on one line, and no backtrace for a user's mistake.
            eprintln!("switchyard: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn try_main() -> Result<()> {
    let args = Args::parse();
    match &args.command {
        Some(Command::Config(ConfigCommand::Example)) => {
            print!("{EXAMPLE_CONFIG}");
            Ok(())
        }
        Some(Command::Config(ConfigCommand::Check { file })) => {
            let args = Args {
                config: Some(file.clone()),
                ..args.clone()
            };
            let settings = settings(&args)?;
            let realms = switchyard::router_config::describe_realms(
                &switchyard::config::ConfigFile::load(file)?,
            );
            print!(
                "# {}: ok; effective settings:\n{}{realms}",
                file.display(),
                settings.describe()
            );
            Ok(())
        }
        Some(Command::Config(ConfigCommand::ScramKeys {
            kdf,
            iterations,
            memory,
        })) => {
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("reading the password from stdin")?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.is_empty() {
                anyhow::bail!("no password on stdin");
            }
            let lines =
                switchyard::auth::scram::principal_keys(kdf, *iterations, *memory, password)
                    .map_err(|(key, m)| anyhow::anyhow!("{key}: {m}"))?;
            print!("{lines}");
            Ok(())
        }
        None => run(settings(&args)?),
    }
}

/// [`build_settings`], with an unreadable config file named as such (the OS error once).
fn settings(args: &Args) -> Result<Settings> {
    build_settings(args).map_err(|e| match &e {
        ConfigError::Read { path, .. } if args.config.as_ref() == Some(path) => {
            anyhow::Error::new(e).context("config file")
        }
        _ => e.into(),
    })
}

fn run(settings: Settings) -> Result<()> {
    switchyard::logging::init(&settings.log_level, settings.log_format)
        .map_err(|e| anyhow::anyhow!("log_level: {e}"))?;
    // Bound before the shards start, so a taken port fails the start-up, not the first scrape.
    let metrics_listener = match settings.metrics {
        Some(a) => Some(
            std::net::TcpListener::bind(a).with_context(|| format!("metrics: cannot bind {a}"))?,
        ),
        None => None,
    };
    let settings_longpoll = settings.router.transports.longpoll.clone();
    let router = Router::start(settings.router).context("switchyard could not start")?;
    // Return memory freed after bursts (see switchyard::util::trim for the numbers).
    switchyard::util::trim::spawn(std::time::Duration::from_secs(5), 16 << 20)
        .context("cannot start the malloc-trim thread")?;
    // Before `ready`: a SIGTERM right after it must shut down cleanly, not kill the process.
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])?;
    {
        let mut out = std::io::stdout().lock();
        for e in router.endpoints() {
            writeln!(out, "listening {e}")?;
        }
        // The long-poll transport shares the WebSocket listeners (its own line, so scripts
        // and tests find its URL).
        if let Some(lp) = &settings_longpoll {
            for e in router.endpoints() {
                let http = match e.split_once("://") {
                    Some(("ws", rest)) => {
                        format!("http://{}", rest.split('/').next().unwrap_or(""))
                    }
                    Some(("wss", rest)) => {
                        format!("https://{}", rest.split('/').next().unwrap_or(""))
                    }
                    _ => continue,
                };
                writeln!(out, "listening longpoll {http}{}", lp.path)?;
            }
        }
        if let Some(l) = metrics_listener {
            let addr = l.local_addr()?;
            switchyard::metrics::http::spawn(l, router.metrics())
                .context("metrics: cannot start the HTTP thread")?;
            writeln!(out, "listening metrics http://{addr}")?;
        }
        writeln!(out, "ready")?;
        out.flush()?;
    }
    let shutdown = router.shutdown_handle();
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if signals.forever().next().is_some() {
                tracing::info!("shutting down");
                shutdown.shutdown();
            }
        })?;
    router
        .join()
        .map_err(|e| anyhow::anyhow!("shard failed: {e}"))?;
    Ok(())
}
