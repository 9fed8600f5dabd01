//! What `switchyard config check` adds to parsing a config file: every URI-valued key checked
//! with the router's own URI rules ([`crate::codec::uri`]), the error naming the key; and the
//! realms printed as the router will run them (principals without their secrets, roles,
//! permissions, authorizer, authenticators).
//!
//! It reads only the parsed [`ConfigFile`] sections, so it does not depend on how they are
//! turned into a router config. [`check_uris`] also runs at start-up (a config the check
//! refuses never runs).

use crate::codec::uri::{validate_pattern, validate_uri, MatchPolicy, UriCheck};
use crate::config::{ConfigError, ConfigFile, PrincipalSection, UriMatch};
use std::fmt::Write as _;

/// Checks every URI-valued key of the realms: `realm[i].authorizer`,
/// `realm[i].authenticator[j].procedure` (both procedure URIs) and
/// `realm[i].role[k].permission[l].uri` (a pattern for its `match`).
pub fn check_uris(file: &ConfigFile) -> Result<(), ConfigError> {
    let bad = |key: String, uri: &str, e: &dyn std::fmt::Display| ConfigError::Invalid {
        key,
        message: format!("{uri:?} is not a valid URI ({e})"),
    };
    for (i, realm) in file.realms.iter().enumerate() {
        if let Some(a) = &realm.authorizer {
            validate_uri(a, UriCheck::Loose)
                .map_err(|e| bad(format!("realm[{i}].authorizer"), a, &e))?;
        }
        for (j, a) in realm.authenticators.iter().enumerate() {
            validate_uri(&a.procedure, UriCheck::Loose).map_err(|e| {
                bad(
                    format!("realm[{i}].authenticator[{j}].procedure"),
                    &a.procedure,
                    &e,
                )
            })?;
        }
        for (k, h) in realm.history.iter().enumerate() {
            let policy = match h.matching {
                UriMatch::Exact => MatchPolicy::Exact,
                UriMatch::Prefix => MatchPolicy::Prefix,
                UriMatch::Wildcard => MatchPolicy::Wildcard,
            };
            validate_pattern(&h.topic, policy, UriCheck::Loose)
                .map_err(|e| bad(format!("realm[{i}].history[{k}].topic"), &h.topic, &e))?;
        }
        for (k, role) in realm.roles.iter().enumerate() {
            for (l, p) in role.permissions.iter().enumerate() {
                let policy = match p.matching {
                    UriMatch::Exact => MatchPolicy::Exact,
                    UriMatch::Prefix => MatchPolicy::Prefix,
                    UriMatch::Wildcard => MatchPolicy::Wildcard,
                };
                validate_pattern(&p.uri, policy, UriCheck::Loose).map_err(|e| {
                    bad(
                        format!("realm[{i}].role[{k}].permission[{l}].uri"),
                        &p.uri,
                        &e,
                    )
                })?;
            }
        }
    }
    Ok(())
}

/// The methods a principal can log in with (its credentials' kinds, never their values).
fn methods(p: &PrincipalSection) -> Vec<&'static str> {
    let mut m = Vec::new();
    if p.ticket.is_some() {
        m.push("ticket");
    }
    if p.secret.is_some() {
        m.push(if p.salt.is_some() {
            "wampcra (salted)"
        } else {
            "wampcra"
        });
    }
    if p.pubkey.is_some() {
        m.push("cryptosign");
    }
    if p.scram_password.is_some() || p.scram_stored_key.is_some() {
        m.push("wamp-scram");
    }
    if p.cert_fingerprint.is_some() {
        m.push("tls");
    }
    m
}

/// The realms, TOML-like, one `[[realm]]` block each; secrets are left out.
pub fn describe_realms(file: &ConfigFile) -> String {
    let mut o = String::new();
    if file.realms.is_empty() {
        o.push_str("# no [[realm]]: the default realm \"realm1\", anonymous, open\n");
    }
    for r in &file.realms {
        let _ = writeln!(
            o,
            "\n[[realm]]\nname = {:?}\nanonymous = {}",
            r.name, r.anonymous
        );
        match &r.authorizer {
            Some(a) => {
                let _ = writeln!(o, "authorizer = {a:?}");
            }
            None if r.roles.is_empty() => o.push_str("# no roles and no authorizer: open\n"),
            None => {}
        }
        if let Some(n) = r.max_retained_events {
            let _ = writeln!(o, "max_retained_events = {n}");
        }
        if let Some(n) = r.max_retained_bytes {
            let _ = writeln!(o, "max_retained_bytes = {n}");
        }
        for a in &r.authenticators {
            let _ = writeln!(
                o,
                "[[realm.authenticator]] method = {:?}, procedure = {:?}",
                a.method, a.procedure
            );
        }
        for p in &r.principals {
            let _ = writeln!(
                o,
                "[[realm.principal]] authid = {:?}, role = {:?}, methods = {:?}",
                p.authid,
                p.role,
                methods(p)
            );
        }
        for role in &r.roles {
            let _ = writeln!(
                o,
                "[[realm.role]] name = {:?}, trusted = {}",
                role.name, role.trusted
            );
            for p in &role.permissions {
                let a = p.allow;
                let _ = writeln!(
                    o,
                    "  permission uri = {:?}, match = {:?}, allow = {{ call = {}, register = {}, \
                     publish = {}, subscribe = {} }}, disclose = {{ caller = {}, publisher = {} }}",
                    p.uri,
                    format!("{:?}", p.matching).to_lowercase(),
                    a.call,
                    a.register,
                    a.publish,
                    a.subscribe,
                    p.disclose.caller,
                    p.disclose.publisher
                );
            }
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ConfigFile {
        toml::from_str(text).expect("parses")
    }

    #[test]
    fn every_uri_key_is_checked_and_named() {
        for (text, key) in [
            (
                "[[realm]]\nname = \"r\"\nauthorizer = \"com..bad uri!\"\n",
                "realm[0].authorizer",
            ),
            (
                "[[realm]]\nname = \"r\"\n[[realm.authenticator]]\nmethod = \"ticket\"\nprocedure = \"a b\"\n",
                "realm[0].authenticator[0].procedure",
            ),
            (
                "[[realm]]\nname = \"r\"\n[[realm.role]]\nname = \"x\"\n[[realm.role.permission]]\nuri = \"com..x\"\n",
                "realm[0].role[0].permission[0].uri",
            ),
        ] {
            match check_uris(&parse(text)) {
                Err(ConfigError::Invalid { key: k, .. }) => assert_eq!(k, key),
                other => panic!("{text}: {other:?}"),
            }
        }
        // A wildcard permission may have empty components.
        let ok = "[[realm]]\nname = \"r\"\n[[realm.role]]\nname = \"x\"\n[[realm.role.permission]]\nuri = \"com..x\"\nmatch = \"wildcard\"\n";
        assert!(check_uris(&parse(ok)).is_ok());
    }
}
