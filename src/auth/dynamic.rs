//! Dynamic authentication: a WAMP procedure, registered by a trusted session of the realm,
//! decides who a session is (`[[realm.authenticator]]`, method `ticket`).
//!
//! `HELLO(authmethods=[ticket], authid)` → `CHALLENGE ticket {}` → `AUTHENTICATE(ticket)`; the
//! router then calls the procedure with `(realm, authid, details)`, details being
//! `{ticket, authmethod, session, authextra?}`, and welcomes the session with what it returns:
//! a role (string) or a dict `{role, authid?, extra?, trustlevel?}` (`trustlevel`: a
//! non-negative integer that overrides the role's trust level). An ERROR, a timeout, no registration or
//! any other result aborts with `wamp.error.authentication_failed`.
//!
//! The session state machine stays sans-IO: it hands a [`DynamicAuth`] to the runtime (as
//! `SessionOutput::DynamicAuth`), which makes the call and feeds the outcome back.

use super::{AuthFailed, AuthMethod, Identity, Secret};
use crate::codec::{Dict, Id, Value};

/// The `authprovider` announced in WELCOME for dynamically authenticated sessions.
pub const PROVIDER: &str = "dynamic";

/// A `[[realm.authenticator]]`: which method it serves and the procedure to call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicAuthenticator {
    pub method: AuthMethod,
    pub procedure: String,
}

/// An authentication the runtime must ask the realm's authenticator procedure about.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicAuth {
    pub realm: String,
    pub procedure: String,
    pub session: Id,
    pub authid: String,
    pub method: AuthMethod,
    pub signature: Secret,
    pub authextra: Option<Value>,
}

/// What the runtime got back.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthOutcome {
    pub identity: Identity,
    /// `WELCOME.Details.authextra`, if the procedure returned `extra`.
    pub extra: Option<Dict>,
    /// The session's trust level, if the procedure returned `trustlevel` (it takes precedence
    /// over the role's).
    pub trustlevel: Option<u64>,
}

impl DynamicAuth {
    /// The call's positional arguments: `(realm, authid, details)`.
    pub fn call_args(&self) -> Vec<Value> {
        let mut details = Dict::new();
        details.insert(
            "ticket".into(),
            Value::Str(self.signature.expose().to_owned()),
        );
        details.insert("authmethod".into(), Value::Str(self.method.as_str().into()));
        details.insert("session".into(), Value::UInt(self.session));
        if let Some(x) = &self.authextra {
            details.insert("authextra".into(), x.clone());
        }
        vec![
            Value::Str(self.realm.clone()),
            Value::Str(self.authid.clone()),
            Value::Dict(details),
        ]
    }

    /// Reads the procedure's result (its first positional argument).
    pub fn outcome(&self, result: Option<&Value>) -> Result<AuthOutcome, AuthFailed> {
        let (role, authid, extra, trustlevel) = match result {
            Some(Value::Str(role)) => (role.clone(), self.authid.clone(), None, None),
            Some(Value::Dict(d)) => {
                let role = d.get("role").and_then(Value::as_str).ok_or(AuthFailed)?;
                let authid = d
                    .get("authid")
                    .and_then(Value::as_str)
                    .unwrap_or(&self.authid);
                let extra = d.get("extra").and_then(Value::as_dict).cloned();
                let trustlevel = match d.get("trustlevel") {
                    None | Some(Value::Null) => None,
                    Some(v) => Some(v.as_u64().ok_or(AuthFailed)?),
                };
                (role.to_owned(), authid.to_owned(), extra, trustlevel)
            }
            _ => return Err(AuthFailed),
        };
        if role.is_empty() || authid.is_empty() {
            return Err(AuthFailed);
        }
        Ok(AuthOutcome {
            identity: Identity {
                authid,
                authrole: role,
                method: self.method,
                authextra: extra.clone(),
            },
            extra,
            trustlevel,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req() -> DynamicAuth {
        DynamicAuth {
            realm: "r".into(),
            procedure: "auth".into(),
            session: 9,
            authid: "joe".into(),
            method: AuthMethod::Ticket,
            signature: Secret::new("t"),
            authextra: None,
        }
    }

    #[test]
    fn results() {
        let r = req();
        let args = r.call_args();
        assert_eq!(args[1].as_str(), Some("joe"));
        let d = args[2].as_dict().unwrap();
        assert_eq!(d.get("ticket").and_then(Value::as_str), Some("t"));
        let ok = r.outcome(Some(&Value::Str("user".into()))).unwrap();
        assert_eq!(ok.identity.authrole, "user");
        assert_eq!(ok.identity.authid, "joe");
        let mut dict = Dict::new();
        dict.insert("role".into(), Value::Str("admin".into()));
        dict.insert("authid".into(), Value::Str("joseph".into()));
        let ok = r.outcome(Some(&Value::Dict(dict))).unwrap();
        assert_eq!(ok.identity.authid, "joseph");
        assert!(r.outcome(Some(&Value::Bool(true))).is_err());
        assert!(r.outcome(None).is_err());
        assert!(r.outcome(Some(&Value::Str(String::new()))).is_err());
    }

    #[test]
    fn trustlevel_from_the_answer() {
        let r = req();
        let ok = r.outcome(Some(&Value::Str("user".into()))).unwrap();
        assert_eq!(ok.trustlevel, None);
        let answer = |t: Value| {
            let mut dict = Dict::new();
            dict.insert("role".into(), Value::Str("user".into()));
            dict.insert("trustlevel".into(), t);
            Value::Dict(dict)
        };
        let ok = r.outcome(Some(&answer(Value::UInt(3)))).unwrap();
        assert_eq!(ok.trustlevel, Some(3));
        let ok = r.outcome(Some(&answer(Value::Null))).unwrap();
        assert_eq!(ok.trustlevel, None);
        assert!(r.outcome(Some(&answer(Value::Str("high".into())))).is_err());
        assert!(r.outcome(Some(&answer(Value::Int(-1)))).is_err());
    }
}
