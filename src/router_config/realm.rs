//! A `[[realm]]` section validated into a [`RealmConfig`]: its principals (each built by
//! [`Principal::from_section`], then checked together by [`Authenticator::new`]), roles
//! ([`Role::from_section`]) and dynamic authorizer, and dynamic authenticators; every error is
//! given the full key, e.g. `realm[0].principal[1].pubkey`.

use super::RealmConfig;
use crate::auth::dynamic::DynamicAuthenticator;
use crate::auth::{AuthMethod, Authenticator, Principal};
use crate::authz::{RealmPolicy, Role};
use crate::codec::uri::{validate_pattern, MatchPolicy, UriCheck};
use crate::config::{ConfigError, RealmSection, UriMatch};
use crate::routing::history::{HistoryRule, HistoryRules};
use std::sync::Arc;
use std::time::Duration;

/// Defined here, not in `config`: building a realm needs auth and authz, which sit above
/// `config`.
impl RealmSection {
    /// Validates the section (the `index`-th `[[realm]]`) into a [`RealmConfig`]; errors name
    /// the key, e.g. `realm[0].principal[1].pubkey`.
    pub fn to_config(&self, index: usize) -> Result<RealmConfig, ConfigError> {
        let invalid = |j: usize, key: &str, message: String| ConfigError::Invalid {
            key: format!("realm[{index}].principal[{j}].{key}"),
            message,
        };
        let principals = self
            .principals
            .iter()
            .enumerate()
            .map(|(j, p)| Principal::from_section(p).map_err(|(k, m)| invalid(j, k, m)))
            .collect::<Result<Vec<_>, _>>()?;
        let auth = Authenticator::new(&principals, rand::random())
            .map_err(|e| invalid(e.index, e.key, e.message))?;
        let roles = self.roles.iter().map(Role::from_section).collect();
        let mut authenticators: Vec<DynamicAuthenticator> = Vec::new();
        for (j, a) in self.authenticators.iter().enumerate() {
            let key = |k: &str| format!("realm[{index}].authenticator[{j}].{k}");
            let method = match AuthMethod::parse(&a.method) {
                Some(m @ AuthMethod::Ticket) => m,
                _ => {
                    return Err(ConfigError::Invalid {
                        key: key("method"),
                        message: format!("{:?}: only \"ticket\" is dynamic", a.method),
                    })
                }
            };
            if a.procedure.is_empty() {
                return Err(ConfigError::Invalid {
                    key: key("procedure"),
                    message: "must not be empty".into(),
                });
            }
            if authenticators.iter().any(|x| x.method == method) {
                return Err(ConfigError::Invalid {
                    key: key("method"),
                    message: format!("a second authenticator for {:?}", a.method),
                });
            }
            authenticators.push(DynamicAuthenticator {
                method,
                procedure: a.procedure.clone(),
            });
        }
        let protected = authenticators.iter().map(|a| a.procedure.clone()).collect();
        let authz = RealmPolicy::new(roles, self.authorizer.clone())
            .map(|p| p.protecting(protected))
            .map_err(|e| {
                let key = if e.key == "authorizer" {
                    format!("realm[{index}].authorizer")
                } else {
                    format!("realm[{index}].role[{}].{}", e.index, e.key)
                };
                ConfigError::Invalid {
                    key,
                    message: e.message,
                }
            })?;
        let mut rules = Vec::new();
        for (j, h) in self.history.iter().enumerate() {
            let key = |k: &str| format!("realm[{index}].history[{j}].{k}");
            let policy = match h.matching {
                UriMatch::Exact => MatchPolicy::Exact,
                UriMatch::Prefix => MatchPolicy::Prefix,
                UriMatch::Wildcard => MatchPolicy::Wildcard,
            };
            if validate_pattern(&h.topic, policy, UriCheck::Loose).is_err() {
                return Err(ConfigError::Invalid {
                    key: key("topic"),
                    message: format!("{:?} is not a valid {} topic", h.topic, policy.as_str()),
                });
            }
            let bound = |k: &str, v: usize| {
                if v == 0 {
                    Err(ConfigError::Invalid {
                        key: key(k),
                        message: "must be positive".into(),
                    })
                } else {
                    Ok(v)
                }
            };
            rules.push(HistoryRule {
                uri: h.topic.as_str().into(),
                policy,
                limit: bound("limit", h.limit)?,
                max_bytes: bound("max_bytes", h.max_bytes)?,
                max_age: match h.max_age_ms {
                    Some(0) => bound("max_age_ms", 0).map(|_| None)?,
                    Some(ms) => Some(Duration::from_millis(ms)),
                    None => None,
                },
            });
        }
        let history = HistoryRules::new(rules).map_err(|(j, message)| ConfigError::Invalid {
            key: format!("realm[{index}].history[{j}].topic"),
            message,
        })?;
        Ok(RealmConfig {
            history: Arc::new(history),
            name: self.name.clone(),
            anonymous: self.anonymous,
            auth: Arc::new(auth),
            authz: Arc::new(authz),
            authenticators,
            max_retained_events: self.max_retained_events,
            max_retained_bytes: self.max_retained_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::ConfigFile;

    const PK: &str = "545efb0a2192db8d43f118e9bf9aee081466e1ef36c708b96ee6f62dddad9122";

    #[test]
    fn parses_principals() {
        let f = ConfigFile::parse(&format!(
            r#"
[[realm]]
name = "r"
anonymous = false
[[realm.principal]]
authid = "joe"
role = "user"
ticket = "t"
[[realm.principal]]
authid = "peter"
role = "admin"
secret = "s"
salt = "salt123"
[[realm.principal]]
authid = "dev"
role = "device"
pubkey = "{PK}"
"#
        ))
        .unwrap();
        assert!(!f.realms[0].anonymous);
        assert_eq!(f.realms[0].principals.len(), 3);
        let r = f.realms[0].to_config(0).unwrap();
        use crate::auth::AuthMethod;
        assert!(r.auth.supports(AuthMethod::Ticket));
        assert!(r.auth.supports(AuthMethod::WampCra));
        assert!(r.auth.supports(AuthMethod::Cryptosign));
        let dbg = format!("{:?}", f.realms);
        assert!(!dbg.contains("\"t\"") && !dbg.contains("\"s\""), "{dbg}");
    }

    #[test]
    fn principal_errors_name_the_key() {
        let e = ConfigFile::parse(
            "[[realm]]\nname = \"r\"\n[[realm.principal]]\nauthid = \"a\"\nrole = \"x\"\npasword = \"p\"\n",
        )
        .unwrap_err();
        assert!(e.contains("pasword"), "{e}");
        let bad = |body: &str| {
            let f = ConfigFile::parse(&format!(
                "[[realm]]\nname = \"r\"\n[[realm.principal]]\nauthid = \"a\"\nrole = \"x\"\nticket = \"t\"\n[[realm.principal]]\n{body}"
            ))
            .unwrap();
            f.realms[0].to_config(0).unwrap_err().to_string()
        };
        let e = bad("authid = \"b\"\nrole = \"x\"\npubkey = \"zz\"\n");
        assert!(e.starts_with("realm[0].principal[1].pubkey:"), "{e}");
        let e = bad("authid = \"b\"\nrole = \"x\"\nsalt = \"s\"\n");
        assert!(e.starts_with("realm[0].principal[1].salt:"), "{e}");
        let e = bad("authid = \"a\"\nrole = \"x\"\nticket = \"u\"\n");
        assert!(e.starts_with("realm[0].principal[1].authid:"), "{e}");
        let e = bad("authid = \"b\"\nrole = \"x\"\nsecret = \"s\"\nsalt = \"q\"\nkeylen = 0\n");
        assert!(e.starts_with("realm[0].principal[1].keylen:"), "{e}");
    }

    #[test]
    fn history_rules_and_their_errors() {
        let realm = |body: &str| {
            ConfigFile::parse(&format!("[[realm]]\nname = \"r\"\n{body}"))
                .map_err(|e| e.to_string())
                .and_then(|f| f.realms[0].to_config(0).map_err(|e| e.to_string()))
        };
        let r = realm(
            "[[realm.history]]\ntopic = \"a.b\"\n[[realm.history]]\ntopic = \"a\"\nmatch = \"prefix\"\nlimit = 5\nmax_age_ms = 1000\n",
        )
        .expect("valid");
        let rules = r.history.rules();
        assert_eq!(rules.len(), 2);
        assert_eq!(
            (rules[0].limit, rules[0].max_bytes, rules[0].max_age),
            (1000, 1 << 20, None)
        );
        assert_eq!(rules[1].limit, 5);
        assert_eq!(rules[1].max_age, Some(std::time::Duration::from_secs(1)));
        for (body, key) in [
            (
                "[[realm.history]]\ntopic = \"a..b\"\n",
                "realm[0].history[0].topic:",
            ),
            (
                "[[realm.history]]\ntopic = \"a.b\"\nlimit = 0\n",
                "realm[0].history[0].limit:",
            ),
            (
                "[[realm.history]]\ntopic = \"a\"\nmax_bytes = 0\n",
                "realm[0].history[0].max_bytes:",
            ),
            (
                "[[realm.history]]\ntopic = \"a\"\nmax_age_ms = 0\n",
                "realm[0].history[0].max_age_ms:",
            ),
            (
                "[[realm.history]]\ntopic = \"a\"\n[[realm.history]]\ntopic = \"a\"\n",
                "realm[0].history[1].topic:",
            ),
        ] {
            let e = realm(body).expect_err(body);
            assert!(e.starts_with(key), "{body}: {e}");
        }
        let e = realm("[[realm.history]]\ntopic = \"a\"\nlimt = 3\n").expect_err("typo");
        assert!(e.contains("limt"), "{e}");
    }
}
