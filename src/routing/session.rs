//! What the routing core knows about a session: its identity ([`SessionRef`]) and the
//! advanced-profile features it announced in `HELLO.Details.roles` ([`Features`]).
//!
//! The runtime builds a `SessionRef` once per session (after WELCOME) and passes it with every
//! message. The broker keeps a copy per subscriber (for the `*_authid` / `*_authrole` black- and
//! whitelists); the dealer replicates each callee's `(session, shard, features)` to every shard,
//! so the caller's shard can decide cancel modes and feature errors without a round trip.

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
            trustlevel: None,
        }
    }

    /// The same session with trust level `trustlevel`.
    pub fn with_trustlevel(mut self, trustlevel: Option<u64>) -> Self {
        self.trustlevel = trustlevel;
        self
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
    /// Callee announced `registration_revocation`: a revoked registration is announced to it
    /// with `UNREGISTERED [0, {registration, reason}]` (else it is not told).
    pub callee_registration_revocation: bool,
}

impl Features {
    /// Every feature on (tests, and in-process clients of our own library).
    pub const ALL: Features = Features {
        callee_call_canceling: true,
        callee_call_timeout: true,
        callee_progressive_call_results: true,
        callee_progressive_call_invocations: true,
        caller_progressive_call_invocations: true,
        callee_registration_revocation: true,
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
            callee_registration_revocation: flag("callee", "registration_revocation"),
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
