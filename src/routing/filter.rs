//! Who receives a publication: the publisher's options (exclude_me, the spec's black- and
//! whitelists, nexus's `exclude_<key>` / `eligible_<key>` over any session detail) and the
//! embedder's [`PublishFilter`].
//!
//! Every rule is applied on the subscriber's own shard, which alone knows its subscribers'
//! details ([`Subscriber`], built from the [`SessionRef`](super::SessionRef) at SUBSCRIBE);
//! the rules travel in the [`Publication`] (its options, parsed once into [`DetailFilter`] by
//! the publisher's shard).
//!
//! All conditions must hold, as in nexus: a subscriber is excluded if any exclude list matches
//! it, and must match every eligible list given. A detail the subscriber does not have matches
//! no exclude list and fails any eligible list for that key.

use std::fmt;
use std::sync::Arc;

use crate::codec::{PublishOptions, Value};

use super::broker::Subscriber;
use super::peer::Publication;

/// An embedder's publish filter ([`crate::RouterConfig`]'s `publish_filter`, like nexus's
/// `PublishFilterFactory`): asked once per (publication, eligible subscriber) after the
/// publisher's own options allowed the subscriber. It runs on the subscriber's shard, inside
/// the routing core: it must be quick and must not block.
pub trait PublishFilter: Send + Sync {
    /// Whether `subscriber` may receive `publication` (its topic, options, publisher
    /// details). Router events (meta API, testaments) have publisher 0.
    fn allow(&self, publication: &Publication, subscriber: &Subscriber) -> bool;
}

/// A shared [`PublishFilter`], as configuration holds it.
#[derive(Clone)]
pub struct SharedPublishFilter(pub Arc<dyn PublishFilter>);

impl fmt::Debug for SharedPublishFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedPublishFilter(..)")
    }
}

/// The `exclude_<key>` / `eligible_<key>` lists of `PUBLISH.Options` beyond the spec's typed
/// ones (`exclude_authid`, `eligible_authrole`, … stay in [`PublishOptions`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DetailFilter {
    exclude: Vec<(String, Vec<String>)>,
    eligible: Vec<(String, Vec<String>)>,
}

/// An `exclude_<key>` / `eligible_<key>` option that is not a list of strings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("PUBLISH.Options.{0} must be a list of strings")]
pub struct BadFilterOption(pub String);

impl DetailFilter {
    /// Reads the unknown options (`options.extra`). A malformed list is an error rather than
    /// ignored: ignoring an eligible list would widen who receives the event.
    pub fn from_options(options: &PublishOptions) -> Result<Self, BadFilterOption> {
        let mut f = DetailFilter::default();
        for (k, v) in &options.extra {
            let (list, key) = if let Some(key) = k.strip_prefix("exclude_") {
                (&mut f.exclude, key)
            } else if let Some(key) = k.strip_prefix("eligible_") {
                (&mut f.eligible, key)
            } else {
                continue;
            };
            let Value::List(items) = v else {
                return Err(BadFilterOption(k.clone()));
            };
            let mut values = Vec::with_capacity(items.len());
            for item in items {
                let Value::Str(s) = item else {
                    return Err(BadFilterOption(k.clone()));
                };
                values.push(s.clone());
            }
            list.push((key.to_owned(), values));
        }
        Ok(f)
    }

    /// No lists at all (the common case: nothing to test per subscriber).
    pub fn is_empty(&self) -> bool {
        self.exclude.is_empty() && self.eligible.is_empty()
    }

    fn allows(&self, s: &Subscriber) -> bool {
        let excluded = self.exclude.iter().any(|(key, values)| {
            s.attribute(key)
                .is_some_and(|v| values.iter().any(|x| x == v))
        });
        !excluded
            && self.eligible.iter().all(|(key, values)| {
                s.attribute(key)
                    .is_some_and(|v| values.iter().any(|x| x == v))
            })
    }
}

/// Who may receive publication `p`, decided once per publication so that the per-subscriber
/// test of the common publication (no lists, no embedder filter) is one comparison: the
/// fan-out path asks it for every subscriber of every event, and a subscriber whose events
/// are shed (a stuck one) should cost next to nothing.
pub(crate) enum Recipients<'a> {
    /// Everyone but `except` (the publisher, unless it asked `exclude_me: false`).
    AllBut { except: Option<super::SessionId> },
    /// The full test, [`receives`].
    Rules {
        p: &'a Publication,
        embedder: Option<&'a SharedPublishFilter>,
    },
}

impl<'a> Recipients<'a> {
    pub(crate) fn of(p: &'a Publication, embedder: Option<&'a SharedPublishFilter>) -> Self {
        let o = &p.options;
        let lists = o.eligible.is_some()
            || o.eligible_authid.is_some()
            || o.eligible_authrole.is_some()
            || o.exclude.is_some()
            || o.exclude_authid.is_some()
            || o.exclude_authrole.is_some()
            || !p.filter.is_empty();
        if lists || embedder.is_some() {
            Recipients::Rules { p, embedder }
        } else {
            Recipients::AllBut {
                except: o.exclude_me.unwrap_or(true).then_some(p.publisher),
            }
        }
    }

    /// Whether `s` receives the publication (the same answer as [`receives`]).
    #[inline]
    pub(crate) fn admit(&self, s: &Subscriber) -> bool {
        match self {
            Recipients::AllBut { except } => *except != Some(s.session),
            Recipients::Rules { p, embedder } => receives(p, s, *embedder),
        }
    }
}

/// Whether subscriber `s` receives publication `p`: publisher exclusion (exclude_me, default
/// true), the spec's six black/whitelists, the detail lists, then the embedder's filter.
pub(crate) fn receives(
    p: &Publication,
    s: &Subscriber,
    embedder: Option<&SharedPublishFilter>,
) -> bool {
    let o = &p.options;
    if s.session == p.publisher && o.exclude_me.unwrap_or(true) {
        return false;
    }
    let has_str =
        |list: &Option<Vec<String>>, v: &str| list.as_ref().map(|l| l.iter().any(|x| x == v));
    let has_id = |list: &Option<Vec<u64>>| list.as_ref().map(|l| l.contains(&s.session));
    has_id(&o.eligible) != Some(false)
        && has_str(&o.eligible_authid, &s.authid) != Some(false)
        && has_str(&o.eligible_authrole, &s.authrole) != Some(false)
        && has_id(&o.exclude) != Some(true)
        && has_str(&o.exclude_authid, &s.authid) != Some(true)
        && has_str(&o.exclude_authrole, &s.authrole) != Some(true)
        && (p.filter.is_empty() || p.filter.allows(s))
        && embedder.is_none_or(|f| f.0.allow(p, s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Dict;
    use crate::routing::session::Attributes;

    fn opts(pairs: &[(&str, Value)]) -> PublishOptions {
        let mut o = PublishOptions::default();
        for (k, v) in pairs {
            o.extra.insert((*k).to_owned(), v.clone());
        }
        o
    }

    fn strs(v: &[&str]) -> Value {
        Value::List(v.iter().map(|s| Value::Str((*s).into())).collect())
    }

    #[test]
    fn malformed_lists_are_errors() {
        let bad = opts(&[("eligible_tenant", Value::Str("acme".into()))]);
        assert_eq!(
            DetailFilter::from_options(&bad),
            Err(BadFilterOption("eligible_tenant".into()))
        );
        let bad = opts(&[("exclude_x", Value::List(vec![Value::UInt(1)]))]);
        assert!(DetailFilter::from_options(&bad).is_err());
        let fine = opts(&[("other", Value::UInt(1))]);
        assert!(DetailFilter::from_options(&fine).is_ok_and(|f| f.is_empty()));
    }

    #[test]
    fn detail_lists_combine() {
        let mut hello = Dict::new();
        hello.insert("tenant".into(), Value::Str("acme".into()));
        let a = Subscriber {
            session: 1,
            authid: "alice".into(),
            authrole: "user".into(),
            attributes: Arc::new(Attributes::build(&hello, None, "ticket", "static")),
        };
        let f = |pairs: &[(&str, Value)]| {
            DetailFilter::from_options(&opts(pairs)).expect("well-formed")
        };
        assert!(f(&[("eligible_tenant", strs(&["acme"]))]).allows(&a));
        assert!(!f(&[("eligible_tenant", strs(&["other"]))]).allows(&a));
        assert!(!f(&[("exclude_authmethod", strs(&["ticket"]))]).allows(&a));
        assert!(f(&[("exclude_missing", strs(&["x"]))]).allows(&a));
        assert!(!f(&[("eligible_missing", strs(&["x"]))]).allows(&a));
        // Every eligible list must match.
        assert!(!f(&[
            ("eligible_tenant", strs(&["acme"])),
            ("eligible_authid", strs(&["bob"]))
        ])
        .allows(&a));
        assert!(f(&[
            ("eligible_tenant", strs(&["acme"])),
            ("eligible_authprovider", strs(&["static"]))
        ])
        .allows(&a));
    }
}
