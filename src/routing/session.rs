//! What the routing core knows about a session: its identity ([`SessionRef`]) and the
//! advanced-profile features it announced in `HELLO.Details.roles` ([`Features`]).
//!
//! The runtime builds a `SessionRef` once per session (after WELCOME) and passes it with every
//! message. The broker keeps a copy per subscriber (for the `*_authid` / `*_authrole` black- and
//! whitelists); the dealer replicates each callee's `(session, shard, features)` to every shard,
//! so the caller's shard can decide cancel modes and feature errors without a round trip.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::codec::{Dict, Value};

use super::ids::{SessionId, ShardId};

/// A session as the routing core sees it. Cheap to clone (the strings are shared).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRef {
    /// Global session ID (random, unique across shards).
    pub id: SessionId,
    /// The shard that owns the session (its connection, its outbound queue).
    pub shard: ShardId,
    pub authid: Arc<str>,
    pub authrole: Arc<str>,
    pub features: Features,
    /// Every string-valued detail of the session the publish filters may test
    /// (`exclude_<key>` / `eligible_<key>`), shared by all its subscriptions.
    pub attributes: Arc<Attributes>,
    /// The session's trust level (from its role's `trustlevel` or the dynamic authenticator),
    /// given to callees as `INVOCATION.Details.trustlevel` and to subscribers as
    /// `EVENT.Details.trustlevel`; `None`: not configured, the key is left out.
    pub trustlevel: Option<u64>,
}

impl SessionRef {
    /// A session with the given identity.
    pub fn new(
        id: SessionId,
        shard: ShardId,
        authid: &str,
        authrole: &str,
        features: Features,
    ) -> Self {
        Self {
            id,
            shard,
            authid: Arc::from(authid),
            authrole: Arc::from(authrole),
            features,
            attributes: Arc::default(),
            trustlevel: None,
        }
    }

    /// The same session with these attributes (see [`Attributes`]).
    pub fn with_attributes(mut self, attributes: Attributes) -> Self {
        self.attributes = Arc::new(attributes);
        self
    }

    /// The same session with trust level `trustlevel`.
    pub fn with_trustlevel(mut self, trustlevel: Option<u64>) -> Self {
        self.trustlevel = trustlevel;
        self
    }

    /// The value of session detail `key` as publish filters see it: `authid` and `authrole`
    /// from the identity, anything else from [`Attributes`].
    pub fn attribute(&self, key: &str) -> Option<&str> {
        attribute(&self.authid, &self.authrole, &self.attributes, key)
    }
}

/// Session detail `key` of a session with this identity and these attributes.
pub(crate) fn attribute<'a>(
    authid: &'a str,
    authrole: &'a str,
    attributes: &'a Attributes,
    key: &str,
) -> Option<&'a str> {
    match key {
        "authid" => Some(authid),
        "authrole" => Some(authrole),
        _ => attributes.get(key),
    }
}

/// Entries of [`Attributes`] beyond the authentication ones; more are ignored.
pub const MAX_ATTRIBUTES: usize = 32;
/// Longest attribute key kept, in bytes.
pub const MAX_ATTRIBUTE_KEY: usize = 64;
/// Longest attribute value kept, in bytes.
pub const MAX_ATTRIBUTE_VALUE: usize = 512;

/// The string-valued session details beyond authid and authrole, as
/// `PUBLISH.Options.exclude_<key>` / `eligible_<key>` and `wamp.session.get` see them.
///
/// Built once at WELCOME ([`Attributes::build`]), in increasing order of trust, a later source
/// replacing an earlier one's key:
///
/// 1. the string values of `HELLO.Details` (what the client *claims*, e.g. `agent` or a
///    custom `"tenant": "acme"`);
/// 2. the string values of the `authextra` that authentication returned (WELCOME's, e.g. a
///    dynamic authenticator's `extra`);
/// 3. `authmethod` and `authprovider` (authid and authrole live in [`SessionRef`] itself).
///
/// So a filter on a key that authentication sets cannot be spoofed by the client; a filter on
/// any other key matches what the client said. Bounded: at most [`MAX_ATTRIBUTES`] entries from
/// sources 1 and 2, keys and values longer than [`MAX_ATTRIBUTE_KEY`] / [`MAX_ATTRIBUTE_VALUE`]
/// are skipped.
///
/// Kept for every joined session, so stored compactly: one sorted boxed slice (a `BTreeMap`
/// would cost a ~500-byte node per session).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes(Box<[(Box<str>, Box<str>)]>);

impl Attributes {
    /// See the type's docs. `hello` is every `HELLO.Details` entry (known keys included),
    /// `authextra` the one authentication returned.
    pub fn build(
        hello: &Dict,
        authextra: Option<&Dict>,
        authmethod: &str,
        authprovider: &str,
    ) -> Self {
        let mut map = BTreeMap::new();
        let sources = [Some(hello), authextra];
        for (k, v) in sources.into_iter().flatten().flat_map(|d| d.iter()) {
            let Value::Str(v) = v else { continue };
            if k.len() > MAX_ATTRIBUTE_KEY
                || v.len() > MAX_ATTRIBUTE_VALUE
                || matches!(
                    k.as_str(),
                    "authid" | "authrole" | "authmethod" | "authprovider"
                )
            {
                continue;
            }
            if map.len() >= MAX_ATTRIBUTES && !map.contains_key(k) {
                continue;
            }
            map.insert(k.clone(), v.clone());
        }
        map.insert("authmethod".into(), authmethod.into());
        map.insert("authprovider".into(), authprovider.into());
        Attributes(
            map.into_iter()
                .map(|(k, v): (String, String)| (k.into_boxed_str(), v.into_boxed_str()))
                .collect(),
        )
    }

    /// The value of `key`, if the session has a string detail of that name.
    pub fn get(&self, key: &str) -> Option<&str> {
        let i = self.0.binary_search_by(|(k, _)| (**k).cmp(key)).ok()?;
        Some(&self.0[i].1)
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }
}

/// The announced features the routing core acts on. Everything else (pattern-based
/// subscription, black/whitelisting, …) the router applies whatever the client announced, as
/// options a client did not mean to send do not appear on its messages.
///
/// The spec makes some features conditional on others; [`Features::from_roles`] folds those
/// rules in, so the fields mean "the dealer may use this with that callee":
/// progressive call invocations require call canceling. Progressive call results require it
/// too in the spec; the dealer applies that rule only with
/// `RoutingConfig::strict_progressive_results` (see [`Features::callee_progressive_call_results`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Features {
    /// Callee announced `call_canceling`: INTERRUPT may be sent; otherwise every cancel is `skip`.
    pub callee_call_canceling: bool,
    /// Callee announced `call_timeout`: with `REGISTER.Options.forward_timeout` the timeout is
    /// forwarded in INVOCATION instead of being enforced by the dealer.
    pub callee_call_timeout: bool,
    /// Callee announced `progressive_call_results` (whether or not it announced canceling:
    /// the dealer checks [`Features::callee_call_canceling`] too when the config is strict).
    pub callee_progressive_call_results: bool,
    /// Callee may receive progressive invocations (and canceling is supported).
    pub callee_progressive_call_invocations: bool,
    /// Caller announced `progressive_call_invocations`: without it a CALL with `progress: true`
    /// is a protocol violation.
    pub caller_progressive_call_invocations: bool,
    /// Subscriber announced `subscription_revocation`: a revoked subscription is told with
    /// `UNSUBSCRIBED [0, {subscription, reason}]`; otherwise it is removed silently.
    pub subscriber_subscription_revocation: bool,
    /// Callee announced `registration_revocation`: a revoked registration is announced to it
    /// with `UNREGISTERED [0, {registration, reason}]` (else it is not told).
    pub callee_registration_revocation: bool,
    /// `payload_passthru_mode` announced for the caller, callee and publisher roles: without
    /// it a CALL / YIELD / PUBLISH with `ppt_*` options is a protocol violation, and a callee
    /// or caller without it cannot be sent such a payload (`feature_not_supported`).
    pub caller_payload_passthru: bool,
    pub callee_payload_passthru: bool,
    pub publisher_payload_passthru: bool,
}

/// Payload passthru mode (`payload_passthru_mode.md`): whether a CALL / YIELD / PUBLISH uses
/// it (`ppt_*` options present), checked against the sender's announcement. `Err` is the text
/// of the protocol violation: `ppt_*` options without a non-empty `ppt_scheme` (the one
/// required attribute), or passthru without announcing `payload_passthru_mode`.
pub fn payload_passthru(
    scheme: &Option<String>,
    others: [&Option<String>; 3],
    announced: bool,
) -> Result<bool, &'static str> {
    if scheme.is_none() && others.iter().all(|o| o.is_none()) {
        return Ok(false);
    }
    if scheme.as_deref().is_none_or(str::is_empty) {
        return Err("ppt_* options without a non-empty ppt_scheme");
    }
    if !announced {
        return Err("payload passthru (ppt_scheme) without announcing payload_passthru_mode");
    }
    Ok(true)
}

impl Features {
    /// Every feature on (tests, and in-process clients of our own library).
    pub const ALL: Features = Features {
        callee_call_canceling: true,
        callee_call_timeout: true,
        callee_progressive_call_results: true,
        callee_progressive_call_invocations: true,
        caller_progressive_call_invocations: true,
        subscriber_subscription_revocation: true,
        callee_registration_revocation: true,
        caller_payload_passthru: true,
        callee_payload_passthru: true,
        publisher_payload_passthru: true,
    };

    /// Reads `HELLO.Details.roles` (`{"caller": {"features": {...}}, "callee": {...}}`).
    /// Missing or mistyped entries count as "not announced". Both spellings of canceling
    /// (`call_canceling`, `call_cancelling`) appear in the spec and in clients; either counts.
    pub fn from_roles(roles: &Dict) -> Self {
        let flag = |role: &str, feature: &str| -> bool {
            roles
                .get(role)
                .and_then(Value::as_dict)
                .and_then(|r| r.get("features"))
                .and_then(Value::as_dict)
                .and_then(|f| f.get(feature))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let canceling = flag("callee", "call_canceling") || flag("callee", "call_cancelling");
        Features {
            callee_call_canceling: canceling,
            callee_call_timeout: flag("callee", "call_timeout"),
            callee_progressive_call_results: flag("callee", "progressive_call_results"),
            callee_progressive_call_invocations: canceling
                && flag("callee", "progressive_call_invocations"),
            caller_progressive_call_invocations: flag("caller", "progressive_call_invocations"),
            subscriber_subscription_revocation: flag("subscriber", "subscription_revocation"),
            callee_registration_revocation: flag("callee", "registration_revocation"),
            caller_payload_passthru: flag("caller", "payload_passthru_mode"),
            callee_payload_passthru: flag("callee", "payload_passthru_mode"),
            publisher_payload_passthru: flag("publisher", "payload_passthru_mode"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict(pairs: &[(&str, Value)]) -> Dict {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect()
    }

    #[test]
    fn attributes_prefer_authentication_over_hello() {
        let hello = dict(&[
            ("tenant", Value::Str("claimed".into())),
            ("agent", Value::Str("x/1".into())),
            ("authmethod", Value::Str("forged".into())),
            ("roles", Value::Dict(Dict::new())),
            ("long", Value::Str("v".repeat(MAX_ATTRIBUTE_VALUE + 1))),
        ]);
        let extra = dict(&[("tenant", Value::Str("acme".into()))]);
        let a = Attributes::build(&hello, Some(&extra), "ticket", "static");
        assert_eq!(a.get("tenant"), Some("acme"));
        assert_eq!(a.get("agent"), Some("x/1"));
        assert_eq!(a.get("authmethod"), Some("ticket"));
        assert_eq!(a.get("authprovider"), Some("static"));
        assert_eq!(a.get("roles"), None, "only strings");
        assert_eq!(a.get("long"), None, "bounded");
        let many: Dict = (0..100)
            .map(|i| (format!("k{i}"), Value::Str("v".into())))
            .collect();
        assert_eq!(
            Attributes::build(&many, None, "m", "p").iter().count(),
            MAX_ATTRIBUTES + 2
        );
        let s = SessionRef::new(1, 0, "alice", "user", Features::ALL).with_attributes(a);
        assert_eq!(s.attribute("authid"), Some("alice"));
        assert_eq!(s.attribute("tenant"), Some("acme"));
    }

    #[test]
    fn features_from_roles_fold_dependencies() {
        let callee_features = dict(&[
            ("call_cancelling", Value::Bool(true)),
            ("progressive_call_results", Value::Bool(true)),
            ("progressive_call_invocations", Value::Str("yes".into())),
        ]);
        let roles = dict(&[(
            "callee",
            Value::Dict(dict(&[("features", Value::Dict(callee_features))])),
        )]);
        let f = Features::from_roles(&roles);
        assert!(f.callee_call_canceling);
        assert!(f.callee_progressive_call_results);
        assert!(
            !f.callee_progressive_call_invocations,
            "mistyped flag is off"
        );
        assert!(!f.caller_progressive_call_invocations);

        let no_cancel = dict(&[(
            "callee",
            Value::Dict(dict(&[(
                "features",
                Value::Dict(dict(&[("progressive_call_results", Value::Bool(true))])),
            )])),
        )]);
        // Kept as announced: whether canceling is required is the dealer's (configured) call.
        let f = Features::from_roles(&no_cancel);
        assert!(f.callee_progressive_call_results && !f.callee_call_canceling);
        assert_eq!(Features::from_roles(&Dict::new()), Features::default());
    }
}
