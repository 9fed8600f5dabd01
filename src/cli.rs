//! The `switchyard` command line: what `main.rs` runs from. The flags and subcommands are
//! plain data in [`crate::config`] ([`Args`]); merging them over the config file into
//! [`Settings`] is [`crate::router_config`]; both are re-exported here. This module adds the
//! commented example config, the effective-settings listing of `config check`
//! ([`Settings::describe`]) and the list of config keys.
//!
//! It lives in the library (not in `main.rs`) so that tests can read the flag set
//! (`Args::command()`) and the config keys ([`config_keys`]) and check that
//! `docs/configuration.md` names every one of them.

pub use crate::config::{Args, Command, ConfigCommand};
pub use crate::router_config::{build_settings, Settings};

use crate::config::{ConfigFile, RealmSection, RouterSection, SlowConsumerPolicy};
use std::fmt::Write;

/// A commented example config file; `switchyard config example` prints it.
pub const EXAMPLE_CONFIG: &str = include_str!("../deploy/switchyard.toml");

/// `config check`'s listing is a command-line concern, so it is defined here rather than next
/// to [`Settings`].
impl Settings {
    /// The effective settings, one `key = value` per line (TOML-like, for `config check`).
    pub fn describe(&self) -> String {
        let c = &self.router;
        let l = &c.limits;
        let mut o = String::new();
        let shards = if c.shards == 0 {
            format!("0  # one per CPU: {} here", c.shard_count())
        } else {
            c.shards.to_string()
        };
        let _ = writeln!(o, "shards = {shards}");
        if c.cpus.is_empty() {
            let _ = writeln!(o, "cpus = []  # CPUs 0..shards");
        } else {
            let _ = writeln!(o, "cpus = {:?}", c.cpus);
        }
        let _ = writeln!(o, "listeners = [");
        for lc in &c.listeners {
            let _ = writeln!(o, "  {:?},", lc.url(&lc.addr));
        }
        let _ = writeln!(o, "]");
        let _ = writeln!(o, "realms = [");
        for r in &c.realms {
            let _ = writeln!(
                o,
                "  {{ name = {:?}, anonymous = {} }},",
                r.name, r.anonymous
            );
        }
        let _ = writeln!(o, "]");
        let _ = writeln!(o, "max_message_size_ws = {}", l.max_message_size_ws);
        let _ = writeln!(
            o,
            "max_decompressed_size_ws = {}",
            l.max_decompressed_size_ws
        );
        let _ = writeln!(o, "max_message_size_rs = {}", l.max_message_size_rs);
        let _ = writeln!(o, "outbound_queue_bytes = {}", l.outbound_queue_bytes);
        let policy = match l.slow_consumer {
            SlowConsumerPolicy::Drop => "drop",
            SlowConsumerPolicy::Disconnect => "disconnect",
        };
        let _ = writeln!(o, "slow_consumer = {policy:?}");
        let _ = writeln!(o, "hello_timeout_ms = {}", l.hello_timeout.as_millis());
        let _ = writeln!(
            o,
            "handshake_timeout_ms = {}",
            l.handshake_timeout.as_millis()
        );
        let _ = writeln!(o, "frame_timeout_ms = {}", l.frame_timeout.as_millis());
        let _ = writeln!(
            o,
            "idle_timeout_ms = {}",
            l.idle_timeout.map_or(0, |d| d.as_millis())
        );
        let _ = writeln!(
            o,
            "ping_interval_ms = {}",
            l.ping_interval.map_or(0, |d| d.as_millis())
        );
        let _ = writeln!(o, "max_connections = {}", l.max_connections);
        let _ = writeln!(
            o,
            "max_pending_calls_per_session = {}",
            l.max_pending_calls_per_session
        );
        let _ = writeln!(
            o,
            "max_subscriptions_per_session = {}",
            l.max_subscriptions_per_session
        );
        let _ = writeln!(
            o,
            "max_registrations_per_session = {}",
            l.max_registrations_per_session
        );
        let _ = writeln!(o, "max_retained_events = {}", l.max_retained_events);
        let _ = writeln!(o, "max_retained_bytes = {}", l.max_retained_bytes);
        let _ = writeln!(
            o,
            "strict_progressive_results = {}",
            l.strict_progressive_results
        );
        match c.spin_before_park {
            Some(d) => {
                let _ = writeln!(o, "spin_before_park_us = {}", d.as_micros());
            }
            None => {
                let _ = writeln!(o, "spin_before_park_us = 0  # park at once");
            }
        }
        let busy = c.busy_read.map_or(0, |d| d.as_micros());
        let _ = writeln!(o, "busy_read_us = {busy}");
        match c.adaptive_spin {
            Some(d) => {
                let _ = writeln!(o, "adaptive_spin_us = {}", d.as_micros());
            }
            None => {
                let _ = writeln!(o, "adaptive_spin_us = 0  # park and wait at once");
            }
        }
        let _ = writeln!(o, "ws_compression = {}", c.ws_compression);
        let a = &c.authz;
        let _ = writeln!(o, "authorizer_cache_ttl_ms = {}", a.cache_ttl.as_millis());
        let _ = writeln!(o, "authorizer_cache_size = {}", a.cache_size);
        let _ = writeln!(o, "authorizer_timeout_ms = {}", a.timeout.as_millis());
        match self.metrics {
            Some(a) => {
                let _ = writeln!(o, "metrics = \"{a}\"");
            }
            None => {
                let _ = writeln!(o, "metrics = \"\"  # not served");
            }
        }
        if let Some(cl) = &c.cluster {
            let _ = writeln!(o, "cluster = {:?}", cl.urls.join(","));
            let _ = writeln!(o, "node_id = {}", cl.node_id);
            let _ = writeln!(o, "cluster_name = {:?}", cl.name);
            let _ = writeln!(
                o,
                "cluster_node_timeout_ms = {}",
                cl.node_timeout.as_millis()
            );
            let _ = writeln!(o, "cluster_queue = {}", cl.queue);
            let _ = writeln!(o, "cluster_replicas = {}", cl.replicas);
            if let Some(ca) = &cl.tls_ca {
                let _ = writeln!(o, "cluster_tls_ca = {:?}", ca.display().to_string());
            }
            if cl.token.is_some() || cl.user.is_some() {
                let _ = writeln!(o, "# NATS credentials set (not shown)");
            }
        }
        let _ = writeln!(o, "log_level = {:?}", self.log_level);
        let _ = writeln!(o, "log_format = \"{}\"", self.log_format);
        o
    }
}

/// Every config file key, as `router.KEY` and `realm.KEY` (read from the serde structs
/// themselves, so the list cannot drift from what the parser accepts).
pub fn config_keys() -> Vec<String> {
    let mut keys = Vec::new();
    for (section, fields) in [
        ("router", field_names::of::<RouterSection>()),
        ("realm", field_names::of::<RealmSection>()),
        (
            "realm.principal",
            field_names::of::<crate::config::PrincipalSection>(),
        ),
        (
            "realm.role",
            field_names::of::<crate::config::RoleSection>(),
        ),
        (
            "realm.authenticator",
            field_names::of::<crate::config::AuthenticatorSection>(),
        ),
        (
            "realm.history",
            field_names::of::<crate::config::HistorySection>(),
        ),
        (
            "realm.role.permission",
            field_names::of::<crate::config::PermissionSection>(),
        ),
        (
            "realm.role.permission.allow",
            field_names::of::<crate::config::Allow>(),
        ),
        (
            "realm.role.permission.disclose",
            field_names::of::<crate::config::Disclose>(),
        ),
    ] {
        keys.extend(fields.iter().map(|f| format!("{section}.{f}")));
    }
    keys
}

/// The top-level sections of the config file (`router`, `realm`).
pub fn config_sections() -> &'static [&'static str] {
    field_names::of::<ConfigFile>()
}

/// Reads the field names a `Deserialize` struct asks for, without any input: a deserializer
/// that records the `fields` argument of `deserialize_struct` and stops.
mod field_names {
    use serde::de::{self, Deserialize, Deserializer, Visitor};

    #[derive(Debug)]
    struct Stop(&'static [&'static str]);

    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("field names recorded")
        }
    }

    impl std::error::Error for Stop {}

    impl de::Error for Stop {
        fn custom<T: std::fmt::Display>(_: T) -> Self {
            Stop(&[])
        }
    }

    struct Recorder;

    impl<'de> Deserializer<'de> for Recorder {
        type Error = Stop;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop(&[]))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            Err(Stop(fields))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }

    /// The field names of struct `T` as its `Deserialize` impl declares them (serde renames
    /// applied).
    pub fn of<'de, T: Deserialize<'de>>() -> &'static [&'static str] {
        match T::deserialize(Recorder) {
            Err(Stop(fields)) => fields,
            Ok(_) => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogFormat;
    use clap::Parser;
    use std::path::PathBuf;

    fn args(argv: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("switchyard").chain(argv.iter().copied())).unwrap()
    }

    #[test]
    fn keys_come_from_the_structs() {
        let keys = config_keys();
        assert!(keys.contains(&"router.shards".to_string()));
        assert!(keys.contains(&"router.metrics".to_string()));
        assert!(keys.contains(&"realm.anonymous".to_string()));
        assert_eq!(config_sections(), &["router", "realm"]);
    }

    #[test]
    fn example_config_is_valid_and_names_every_key() {
        let f = ConfigFile::parse(EXAMPLE_CONFIG).unwrap();
        assert!(f.router.metrics.is_some());
        for k in config_keys() {
            let key = k.rsplit_once('.').unwrap().1;
            assert!(
                EXAMPLE_CONFIG.lines().any(|l| l
                    .trim_start_matches(['#', ' '])
                    .starts_with(&format!("{key} ="))),
                "example config does not mention {k}"
            );
        }
    }

    #[test]
    fn flags_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(
            &p,
            "[router]\nshards = 3\nmetrics = \"127.0.0.1:9999\"\nlog_format = \"json\"\n",
        )
        .unwrap();
        let s = build_settings(&args(&["--config", p.to_str().unwrap(), "--shards", "2"])).unwrap();
        assert_eq!(s.router.shards, 2);
        assert_eq!(s.metrics, Some("127.0.0.1:9999".parse().unwrap()));
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(s.log_level, "info");
        assert!(s.describe().contains("shards = 2\n"));
        let s = build_settings(&args(&[
            "--max-subscriptions-per-session",
            "3",
            "--max-decompressed-size-ws",
            "4096",
        ]))
        .unwrap();
        let l = &s.router.limits;
        assert_eq!(l.max_subscriptions_per_session, 3);
        assert_eq!(l.max_registrations_per_session, 10_000);
        assert_eq!(l.max_pending_calls_per_session, 1_000);
        assert_eq!(l.max_decompressed_size_ws, 4096);
        assert!(s.describe().contains("max_subscriptions_per_session = 3\n"));
    }

    #[test]
    fn errors_name_the_key() {
        let e = build_settings(&args(&["--metrics", "nope"])).unwrap_err();
        assert!(e.to_string().starts_with("metrics:"), "{e}");
        let e = build_settings(&args(&["--cpus", "3-1"])).unwrap_err();
        assert!(e.to_string().starts_with("cpus:"), "{e}");
        let e = build_settings(&args(&["--realm", "a", "--realm", "a"])).unwrap_err();
        assert!(e.to_string().starts_with("realm[1].name:"), "{e}");
        let e = build_settings(&args(&["--max-pending-calls-per-session", "0"])).unwrap_err();
        assert!(
            e.to_string().starts_with("max_pending_calls_per_session:"),
            "{e}"
        );
        let e = build_settings(&args(&["--no-ws", "--no-rs"])).unwrap_err();
        assert!(e.to_string().contains("no listeners"), "{e}");
    }

    #[test]
    fn subcommands_parse_and_bare_flags_still_run_the_router() {
        assert!(args(&["--shards", "1"]).command.is_none());
        match args(&["--shards", "1", "config", "check", "x.toml"]).command {
            Some(Command::Config(ConfigCommand::Check { file })) => {
                assert_eq!(file, PathBuf::from("x.toml"))
            }
            other => panic!("{other:?}"),
        }
    }
}
