//! Logging: the `tracing` subscriber (text or JSON lines on stderr) and the fields that tie a
//! line to a session.
//!
//! Every event about a session carries three fields: `shard`, `session` (the WAMP session ID)
//! and `realm` (`-` before the session joined one). They are explicit event fields, not span
//! fields, on purpose: an event about one session is often emitted while another session's task
//! runs (a publisher's task closing a slow subscriber), where the current span would name the
//! wrong session; and fields cost nothing per idle session, where a span per connection would
//! hold memory in the subscriber for as long as the connection lives.

use crate::shard::conn::SessionHandle;
use std::fmt;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, event fields at the top level (for log shippers).
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

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

/// Displays a session's realm for the `realm` log field: the realm it joined, or `-`.
///
/// Never panics: it only tries to borrow the session's state and prints `?` if that state is
/// being changed at the moment of logging.
pub struct SessionRealm<'a>(pub &'a SessionHandle);

impl fmt::Display for SessionRealm<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Ok(r) = self.0.realm.try_borrow() {
            if let Some(r) = r.as_ref() {
                return f.write_str(r);
            }
        }
        // Left the realm already (GOODBYE): the protocol state still knows which it was.
        match self.0.core.try_borrow() {
            Ok(core) => f.write_str(core.realm.as_deref().unwrap_or("-")),
            Err(_) => f.write_str("?"),
        }
    }
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
