//! URI and pattern validation against a simple, independent reference.
//!
//! The reference splits on `.` and checks each component with the spec's character classes;
//! "whitespace" is Python's `str.isspace()` (the spec's regexes are Python), written out as a
//! table rather than borrowed from `char::is_whitespace`. Checked: `validate_uri` and
//! `validate_pattern` accept exactly what the reference accepts, for both rules and every match
//! policy; an error points at a byte that really is the problem; and the rules nest (strict ⊆
//! loose, exact ⊆ prefix ⊆ wildcard, `validate_uri` = exact pattern).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::codec::uri::{validate_pattern, validate_uri, MatchPolicy, UriCheck, UriError};

/// Python's `str.isspace()` (Unicode 15): bidi class WS/B/S or category Zs.
fn python_space(c: char) -> bool {
    matches!(
        c as u32,
        0x09..=0x0D
            | 0x1C..=0x1F
            | 0x20
            | 0x85
            | 0xA0
            | 0x1680
            | 0x2000..=0x200A
            | 0x2028
            | 0x2029
            | 0x202F
            | 0x205F
            | 0x3000
    )
}

fn char_ok(c: char, check: UriCheck) -> bool {
    match check {
        UriCheck::Strict => matches!(c, 'a'..='z' | '0'..='9' | '_'),
        UriCheck::Loose => c != '.' && c != '#' && !python_space(c),
    }
}

/// Which components may be empty: none, only the last, any.
#[derive(Clone, Copy, PartialEq)]
enum Empties {
    None,
    Last,
    Any,
}

fn reference(uri: &str, check: UriCheck, empties: Empties) -> bool {
    if uri.is_empty() {
        return empties != Empties::None;
    }
    let components: Vec<&str> = uri.split('.').collect();
    let last = components.len() - 1;
    components.iter().enumerate().all(|(i, c)| {
        let empty_ok = match empties {
            Empties::None => false,
            Empties::Last => i == last,
            Empties::Any => true,
        };
        (!c.is_empty() || empty_ok) && c.chars().all(|ch| char_ok(ch, check))
    })
}

fn check_error(uri: &str, check: UriCheck, e: UriError) {
    match e {
        UriError::Empty => assert!(uri.is_empty()),
        UriError::EmptyComponent { at } => {
            let bytes = uri.as_bytes();
            assert!(at <= bytes.len());
            // The component starting at `at` is empty: it ends right there.
            assert!(at == bytes.len() || bytes[at] == b'.', "{uri:?} {e:?}");
            assert!(at == 0 || bytes[at - 1] == b'.', "{uri:?} {e:?}");
        }
        UriError::InvalidChar { at, ch } => {
            assert_eq!(
                uri.get(at..).and_then(|s| s.chars().next()),
                Some(ch),
                "{uri:?} {e:?}"
            );
            assert!(!char_ok(ch, check) && ch != '.', "{uri:?} {e:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let uri = String::from_utf8_lossy(data);
    let uri = uri.as_ref();
    for check in [UriCheck::Strict, UriCheck::Loose] {
        let plain = validate_uri(uri, check);
        assert_eq!(
            plain.is_ok(),
            reference(uri, check, Empties::None),
            "validate_uri({uri:?}, {check:?}) = {plain:?}"
        );
        if let Err(e) = plain {
            check_error(uri, check, e);
        }
        assert_eq!(validate_pattern(uri, MatchPolicy::Exact, check), plain);
        for (policy, empties) in [
            (MatchPolicy::Prefix, Empties::Last),
            (MatchPolicy::Wildcard, Empties::Any),
        ] {
            let got = validate_pattern(uri, policy, check);
            assert_eq!(
                got.is_ok(),
                reference(uri, check, empties),
                "validate_pattern({uri:?}, {policy:?}, {check:?}) = {got:?}"
            );
            if let Err(e) = got {
                check_error(uri, check, e);
            }
        }
    }
    // The rules nest.
    for policy in [
        MatchPolicy::Exact,
        MatchPolicy::Prefix,
        MatchPolicy::Wildcard,
    ] {
        if validate_pattern(uri, policy, UriCheck::Strict).is_ok() {
            assert!(validate_pattern(uri, policy, UriCheck::Loose).is_ok());
        }
    }
    for check in [UriCheck::Strict, UriCheck::Loose] {
        let ok = |p| validate_pattern(uri, p, check).is_ok();
        assert!(!ok(MatchPolicy::Exact) || ok(MatchPolicy::Prefix));
        assert!(!ok(MatchPolicy::Prefix) || ok(MatchPolicy::Wildcard));
    }
});
