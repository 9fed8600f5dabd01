//! WAMP URI rules: what a valid topic, procedure or error URI looks like, what a valid
//! subscription or registration *pattern* looks like, and which URIs are reserved.
//!
//! This module owns the checks only; matching patterns against URIs lives in
//! `routing::matcher`. The broker and dealer call [`validate_uri`] on every PUBLISH / CALL topic
//! and [`validate_pattern`] on every SUBSCRIBE / REGISTER, then map a [`UriError`] to
//! `wamp.error.invalid_uri` ([`UriError::WAMP_ERROR`]).
//!
//! The rules (basic profile, "URIs"):
//!
//! - A URI is a sequence of components separated by `.`.
//! - **Loose** (MUST): components contain no `.`, no `#` and no whitespace. The spec's regex is
//!   `^([^\s\.#]+\.)*([^\s\.#]+)$`.
//! - **Strict** (SHOULD): components contain only `[0-9a-z_]`:
//!   `^([0-9a-z_]+\.)*([0-9a-z_]+)$`.
//! - Components are non-empty, except in patterns of the advanced profile, where an empty
//!   component is a wildcard: `^(([^\s\.#]+\.)|\.)*([^\s\.#]+)?$` (and the strict analogue).
//! - URIs whose first component is `wamp` are reserved for the protocol itself.
//!
//! Decisions where the spec leaves room (they follow crossbar, the reference router):
//!
//! - **Exact** patterns follow the plain URI rule: no empty component.
//! - **Wildcard** patterns follow the spec's "empty components allowed" regex verbatim, so any
//!   component may be empty, including the first and the last. That regex also accepts the
//!   empty string, which as a wildcard pattern is one wildcard component (it matches every
//!   one-component URI); we accept it as the spec does.
//! - **Prefix** patterns are matched as plain string prefixes (see `routing::matcher`), so an
//!   empty component in the middle would never match a valid URI and is refused. The *last*
//!   component may be empty: `com.myapp.` is a useful prefix ("everything below `com.myapp`",
//!   without `com.myapp2`), and crossbar accepts it (`_URI_PAT_*_LAST_EMPTY`). The empty string
//!   is therefore also a valid prefix pattern and matches every URI; restricting who may use it
//!   is a job for the authorizer, not for URI syntax.
//! - "Whitespace" is what Python's `\s` matches on `str` (the spec's regexes are Python): the
//!   Unicode `White_Space` characters plus the ASCII separators U+001C..=U+001F.

use std::fmt;
use std::str::FromStr;

use thiserror::Error;

/// Which URI rule to enforce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum UriCheck {
    /// Components only contain lower-case ASCII letters, digits and `_` (the spec's SHOULD).
    Strict,
    /// Components contain anything but `.`, `#` and whitespace (the spec's MUST).
    #[default]
    Loose,
}

/// How a subscription or registration pattern is matched against concrete URIs: the value of
/// `SUBSCRIBE.Options.match` / `REGISTER.Options.match`. Absent means [`MatchPolicy::Exact`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum MatchPolicy {
    /// `"exact"`: the URI equals the pattern.
    #[default]
    Exact,
    /// `"prefix"`: the URI starts with the pattern (a string prefix, not a component prefix).
    Prefix,
    /// `"wildcard"`: same number of components; an empty pattern component matches any one
    /// non-empty URI component, the others must be equal.
    Wildcard,
}

impl MatchPolicy {
    /// The wire value: `"exact"`, `"prefix"` or `"wildcard"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Prefix => "prefix",
            Self::Wildcard => "wildcard",
        }
    }
}

impl fmt::Display for MatchPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `match` option value that is not one of `"exact"`, `"prefix"`, `"wildcard"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("unknown match policy")]
pub struct UnknownMatchPolicy;

impl FromStr for MatchPolicy {
    type Err = UnknownMatchPolicy;

    /// Parse the wire value. Case-sensitive, as every WAMP option value.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "exact" => Ok(Self::Exact),
            "prefix" => Ok(Self::Prefix),
            "wildcard" => Ok(Self::Wildcard),
            _ => Err(UnknownMatchPolicy),
        }
    }
}

/// Why a URI or pattern is invalid. Every variant maps to `wamp.error.invalid_uri`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum UriError {
    /// The URI is the empty string where that is not allowed.
    #[error("empty URI")]
    Empty,
    /// A component is empty (two dots in a row, or a leading or trailing dot) where that is not
    /// allowed. `at` is the byte offset where the empty component starts.
    #[error("empty URI component at byte {at}")]
    EmptyComponent {
        /// Byte offset of the empty component.
        at: usize,
    },
    /// A character not allowed by the rule in force. `at` is its byte offset.
    #[error("character {ch:?} not allowed in URI at byte {at}")]
    InvalidChar {
        /// Byte offset of the character.
        at: usize,
        /// The character.
        ch: char,
    },
}

impl UriError {
    /// The WAMP error URI to answer with.
    pub const WAMP_ERROR: &'static str = "wamp.error.invalid_uri";
}

/// Which components may be empty.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Empties {
    /// None (plain URIs, exact patterns).
    None,
    /// Only the last one (prefix patterns).
    Last,
    /// Any (wildcard patterns).
    Any,
}

/// Check a concrete URI (a topic published to, a procedure called, an error): every component
/// non-empty and made of allowed characters.
pub fn validate_uri(uri: &str, check: UriCheck) -> Result<(), UriError> {
    scan(uri, check, Empties::None)
}

/// Check a subscription or registration pattern for the given match policy; see the module docs
/// for which empty components each policy allows.
pub fn validate_pattern(uri: &str, policy: MatchPolicy, check: UriCheck) -> Result<(), UriError> {
    let empties = match policy {
        MatchPolicy::Exact => Empties::None,
        MatchPolicy::Prefix => Empties::Last,
        MatchPolicy::Wildcard => Empties::Any,
    };
    scan(uri, check, empties)
}

/// Whether `uri` is in the space the spec reserves for the protocol: its first component is
/// `wamp` (`wamp`, `wamp.session.on_join`, but not `wampx.foo`).
///
/// The spec says *application* URIs must not use it. What the router makes of that is policy for
/// the broker and dealer: a client must not REGISTER a procedure or PUBLISH to a topic in it
/// (those are the router's meta procedures and meta events), while CALLing meta procedures and
/// SUBSCRIBing to meta events is what the space is for (subject to authorization).
pub fn is_reserved(uri: &str) -> bool {
    match uri.as_bytes().strip_prefix(b"wamp") {
        Some(rest) => rest.is_empty() || rest[0] == b'.',
        None => false,
    }
}

/// The single pass behind both validators: walks the bytes once, tracking where the current
/// component started.
fn scan(uri: &str, check: UriCheck, empties: Empties) -> Result<(), UriError> {
    if uri.is_empty() {
        return match empties {
            Empties::None => Err(UriError::Empty),
            Empties::Last | Empties::Any => Ok(()),
        };
    }
    let bytes = uri.as_bytes();
    let mut comp_start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'.' {
            if i == comp_start && empties != Empties::Any {
                return Err(UriError::EmptyComponent { at: i });
            }
            comp_start = i + 1;
            i += 1;
            continue;
        }
        match check {
            UriCheck::Strict => {
                if !matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_') {
                    return Err(invalid_char(uri, i));
                }
                i += 1;
            }
            UriCheck::Loose => {
                if b < 0x80 {
                    if b == b'#' || is_ascii_space(b) {
                        return Err(invalid_char(uri, i));
                    }
                    i += 1;
                } else {
                    // `i` is on a char boundary: ASCII bytes advance by one, others by their
                    // UTF-8 length, and `uri` is valid UTF-8.
                    let ch = uri
                        .get(i..)
                        .and_then(|s| s.chars().next())
                        .unwrap_or('\u{FFFD}');
                    if ch.is_whitespace() {
                        return Err(UriError::InvalidChar { at: i, ch });
                    }
                    i += ch.len_utf8();
                }
            }
        }
    }
    if comp_start == bytes.len() && empties == Empties::None {
        return Err(UriError::EmptyComponent { at: comp_start });
    }
    Ok(())
}

/// ASCII characters that Python's `\s` matches: `\t \n \v \f \r`, the separators U+001C..=U+001F
/// and space.
const fn is_ascii_space(b: u8) -> bool {
    matches!(b, b'\t'..=b'\r' | 0x1C..=0x1F | b' ')
}

fn invalid_char(uri: &str, at: usize) -> UriError {
    let ch = uri
        .get(at..)
        .and_then(|s| s.chars().next())
        .unwrap_or('\u{FFFD}');
    UriError::InvalidChar { at, ch }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MatchPolicy::{Exact, Prefix, Wildcard};
    use UriCheck::{Loose, Strict};

    fn ok(uri: &str, check: UriCheck) -> bool {
        validate_uri(uri, check).is_ok()
    }

    fn pat(uri: &str, p: MatchPolicy, check: UriCheck) -> bool {
        validate_pattern(uri, p, check).is_ok()
    }

    #[test]
    fn spec_examples_are_valid_strict_and_loose() {
        for uri in [
            "com.myapp.mytopic1",
            "com.myapp.myprocedure1",
            "com.myapp.myerror1",
            "wamp.error.not_authorized",
            "wamp.error.procedure_already_exists",
            "com.myapp.topic.emergency.11",
            "com.myapp.topic.emergency.category.severe",
            "a1.b2.c3.d4.e55",
            "a",
            "_",
            "0",
        ] {
            assert!(ok(uri, Strict), "{uri}");
            assert!(ok(uri, Loose), "{uri}");
        }
    }

    #[test]
    fn loose_but_not_strict() {
        for uri in [
            "com.myapp.topic.emergency-low",
            "com.myapp.myobject1-mysubobject1",
            "Com.MyApp.Topic",
            "com.app.ü",
            "com.app.日本",
            "com/app:1",
            "a+b.c",
        ] {
            assert!(!ok(uri, Strict), "{uri}");
            assert!(ok(uri, Loose), "{uri}");
        }
    }

    #[test]
    fn empty_components_rejected_in_uris() {
        assert_eq!(validate_uri("", Loose), Err(UriError::Empty));
        assert_eq!(validate_uri("", Strict), Err(UriError::Empty));
        for (uri, at) in [(".", 0), ("a..b", 2), (".a", 0), ("a.", 2), ("a.b.", 4)] {
            assert_eq!(
                validate_uri(uri, Loose),
                Err(UriError::EmptyComponent { at })
            );
            assert_eq!(
                validate_uri(uri, Strict),
                Err(UriError::EmptyComponent { at })
            );
        }
    }

    #[test]
    fn hash_and_whitespace_rejected_even_loose() {
        for (uri, at, ch) in [
            ("a#b", 1, '#'),
            ("a b", 1, ' '),
            ("a.b\t", 3, '\t'),
            ("a\nb", 1, '\n'),
            ("a\u{1f}b", 1, '\u{1f}'),
            ("a\u{a0}b", 1, '\u{a0}'),
            ("x.\u{3000}", 2, '\u{3000}'),
            ("x.\u{2028}", 2, '\u{2028}'),
            ("é\u{85}", 2, '\u{85}'),
        ] {
            assert_eq!(
                validate_uri(uri, Loose),
                Err(UriError::InvalidChar { at, ch }),
                "{uri:?}"
            );
        }
    }

    #[test]
    fn strict_rejects_upper_case_and_punctuation() {
        assert_eq!(
            validate_uri("com.myApp", Strict),
            Err(UriError::InvalidChar { at: 6, ch: 'A' })
        );
        assert_eq!(
            validate_uri("com.é", Strict),
            Err(UriError::InvalidChar { at: 4, ch: 'é' })
        );
        assert_eq!(
            validate_uri("a-b", Strict),
            Err(UriError::InvalidChar { at: 1, ch: '-' })
        );
    }

    #[test]
    fn wildcard_patterns_allow_any_empty_component() {
        // Spec examples.
        assert!(pat("com.myapp..userevent", Wildcard, Strict));
        assert!(pat("com.myapp..myprocedure1", Wildcard, Strict));
        assert!(pat("a1.b2..d4.e5..g7", Wildcard, Strict));
        assert!(pat("a1...d4", Wildcard, Strict));
        for p in ["", ".", "..", ".a", "a.", "a..", "..a.b..", "a.b"] {
            assert!(pat(p, Wildcard, Strict), "{p:?}");
            assert!(pat(p, Wildcard, Loose), "{p:?}");
        }
        // Character rules still apply.
        assert!(!pat("com..#", Wildcard, Loose));
        assert!(!pat("com.. x", Wildcard, Loose));
        assert!(!pat("Com..x", Wildcard, Strict));
    }

    #[test]
    fn prefix_patterns_allow_only_a_trailing_empty_component() {
        assert!(pat("com.myapp.topic.emergency", Prefix, Strict));
        assert!(pat("com.myapp.myobject1", Prefix, Strict));
        assert!(pat("com.myapp.", Prefix, Strict));
        assert!(pat("", Prefix, Strict));
        assert_eq!(
            validate_pattern("com..x", Prefix, Loose),
            Err(UriError::EmptyComponent { at: 4 })
        );
        assert_eq!(
            validate_pattern(".com", Prefix, Loose),
            Err(UriError::EmptyComponent { at: 0 })
        );
        assert_eq!(
            validate_pattern("com..", Prefix, Loose),
            Err(UriError::EmptyComponent { at: 4 })
        );
        assert!(!pat("com.my app", Prefix, Loose));
    }

    #[test]
    fn exact_patterns_are_plain_uris() {
        assert!(pat("com.myapp.mytopic1", Exact, Strict));
        assert!(!pat("com.myapp..x", Exact, Loose));
        assert!(!pat("com.", Exact, Loose));
        assert!(!pat("", Exact, Loose));
    }

    #[test]
    fn match_policy_wire_values() {
        for p in [Exact, Prefix, Wildcard] {
            assert_eq!(p.as_str().parse::<MatchPolicy>(), Ok(p));
            assert_eq!(p.to_string(), p.as_str());
        }
        assert_eq!("exact".parse(), Ok(Exact));
        assert_eq!("prefix".parse(), Ok(Prefix));
        assert_eq!("wildcard".parse(), Ok(Wildcard));
        assert_eq!("Prefix".parse::<MatchPolicy>(), Err(UnknownMatchPolicy));
        assert_eq!("".parse::<MatchPolicy>(), Err(UnknownMatchPolicy));
        assert_eq!(MatchPolicy::default(), Exact);
    }

    #[test]
    fn reserved_space_is_first_component_wamp() {
        assert!(is_reserved("wamp"));
        assert!(is_reserved("wamp.error.not_authorized"));
        assert!(is_reserved("wamp.session.on_join"));
        assert!(is_reserved("wamp."));
        assert!(!is_reserved("wampx.foo"));
        assert!(!is_reserved("com.wamp.foo"));
        assert!(!is_reserved("wam"));
        assert!(!is_reserved("WAMP.error"));
        assert!(!is_reserved(""));
    }

    /// A reference built from the spec's definitions (split on `.`), to compare the byte scan
    /// against.
    fn reference(uri: &str, check: UriCheck, empties: Empties) -> bool {
        let comps: Vec<&str> = uri.split('.').collect();
        let last = comps.len() - 1;
        comps.iter().enumerate().all(|(i, c)| {
            let empty_ok = match empties {
                Empties::None => false,
                Empties::Last => i == last,
                Empties::Any => true,
            };
            if c.is_empty() {
                return empty_ok;
            }
            c.chars().all(|ch| match check {
                UriCheck::Strict => matches!(ch, 'a'..='z' | '0'..='9' | '_'),
                UriCheck::Loose => {
                    ch != '#' && !ch.is_whitespace() && !matches!(ch, '\u{1c}'..='\u{1f}')
                }
            })
        })
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn scan_agrees_with_split_reference(
                s in "[a-cA_0.#\\- \t\u{a0}\u{3000}é日\u{1f}]{0,12}",
                any in any::<String>(),
            ) {
                for check in [Strict, Loose] {
                    for s in [&s, &any] {
                        prop_assert_eq!(validate_uri(s, check).is_ok(), reference(s, check, Empties::None), "{:?}", s);
                        prop_assert_eq!(pat(s, Exact, check), reference(s, check, Empties::None));
                        prop_assert_eq!(pat(s, Prefix, check), reference(s, check, Empties::Last));
                        prop_assert_eq!(pat(s, Wildcard, check), reference(s, check, Empties::Any));
                    }
                }
            }
        }
    }
}
