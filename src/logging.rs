//! Logging: the `tracing` subscriber (text or JSON lines on stderr) and the fields that tie a
//! line to a session.
//!
//! The `realm` field is written with [`crate::shard::conn::SessionRealm`].
//!
//! Every event about a session carries three fields: `shard`, `session` (the WAMP session ID)
//! and `realm` (`-` before the session joined one). They are explicit event fields, not span
//! fields, on purpose: an event about one session is often emitted while another session's task
//! runs (a publisher's task closing a slow subscriber), where the current span would name the
//! wrong session; and fields cost nothing per idle session, where a span per connection would
//! hold memory in the subscriber for as long as the connection lives.

/// The log line format is a config value (`--log-format`, `log_format`); re-exported here.
pub use crate::config::LogFormat;

/// Whether text logs are coloured: only when stderr is a terminal and `NO_COLOR` is unset or
/// empty (<https://no-color.org>). Under systemd or a pipe, escapes would land in the journal.
pub fn colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

/// Installs the global subscriber writing to stderr. `filter` is a level (`info`) or a
/// `tracing` filter expression (`info,switchyard::shard=debug`).
pub fn init(filter: &str, format: LogFormat) -> Result<(), String> {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .map_err(|e| format!("bad filter {filter:?}: {e}"))?;
    let ansi = colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let res = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    res.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        use std::ffi::OsStr;
        assert!(super::colour(true, None));
        assert!(super::colour(true, Some(OsStr::new(""))));
        assert!(!super::colour(true, Some(OsStr::new("1"))));
        assert!(!super::colour(false, None));
    }
}
