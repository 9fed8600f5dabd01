//! Placeholder: replaced by the full URI module (rawsocket branch).
use std::str::FromStr;

/// A subscription or registration match policy (`Options.match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum MatchPolicy {
    #[default]
    Exact,
    Prefix,
    Wildcard,
}

impl MatchPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            MatchPolicy::Exact => "exact",
            MatchPolicy::Prefix => "prefix",
            MatchPolicy::Wildcard => "wildcard",
        }
    }
}

impl FromStr for MatchPolicy {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "exact" => Ok(MatchPolicy::Exact),
            "prefix" => Ok(MatchPolicy::Prefix),
            "wildcard" => Ok(MatchPolicy::Wildcard),
            _ => Err(()),
        }
    }
}

/// URI rule set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UriCheck {
    Strict,
    Loose,
}

/// Placeholder loose check: non-empty components without whitespace or `#`.
pub fn validate_uri(uri: &str, _check: UriCheck) -> Result<(), ()> {
    if uri.is_empty()
        || uri
            .split('.')
            .any(|c| c.is_empty() || c.bytes().any(|b| b == b'#' || b.is_ascii_whitespace()))
    {
        Err(())
    } else {
        Ok(())
    }
}
