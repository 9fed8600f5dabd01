//! WAMP authentication with static principals: the per-realm [`Authenticator`] built from the
//! config file, and one file per method (`ticket`, `wampcra`, `cryptosign`).
//!
//! Sans-IO, like the session state machine that drives it: for a HELLO the session asks
//! [`Authenticator::challenge`] (randomness and the clock are passed in) for the CHALLENGE.Extra
//! and a [`Pending`] it keeps; the client's AUTHENTICATE signature is then checked by
//! [`Authenticator::authenticate`] against that `Pending`, which is consumed. A challenge is
//! therefore random and single-use: an AUTHENTICATE replayed on another session meets another
//! challenge and fails.
//!
//! The router never reveals whether a principal exists: an unknown `authid` (or public key)
//! gets a CHALLENGE built like a real one (for WAMP-CRA even a stable decoy salt) and then fails
//! with `wamp.error.authentication_failed`, after the same amount of work.
//!
//! Secrets are kept behind [`Secret`], whose `Debug` redacts; nothing here logs.

mod channel;
mod cookie;
mod cryptosign;
pub mod dynamic;
pub mod scram;
mod ticket;
mod tls;
mod wampcra;

use crate::codec::options::HelloDetails;
use crate::codec::{Dict, Id};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::time::SystemTime;

pub use channel::{Channel, PeerCert};
pub use cookie::CookieStore;
pub use cryptosign::parse_pubkey;
pub use scram::{ScramCredential, ScramParams};
pub use tls::{load_tls_client_auth, parse_fingerprint};

/// The `authprovider` announced in WELCOME for principals from the config file.
pub const PROVIDER: &str = "static";

/// A WAMP authentication method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Anonymous,
    Ticket,
    WampCra,
    Cryptosign,
    /// WAMP-SCRAM (`wamp-scram`).
    WampScram,
    /// TLS client certificate (`tls`): no CHALLENGE.
    Tls,
    /// A WebSocket cookie of an earlier authenticated connection (`cookie`): no CHALLENGE.
    Cookie,
}

impl AuthMethod {
    /// The method named in `HELLO.Details.authmethods`, if this router implements it.
    pub fn parse(s: &str) -> Option<AuthMethod> {
        Some(match s {
            "anonymous" => AuthMethod::Anonymous,
            "ticket" => AuthMethod::Ticket,
            "wampcra" => AuthMethod::WampCra,
            "cryptosign" => AuthMethod::Cryptosign,
            "wamp-scram" => AuthMethod::WampScram,
            "tls" => AuthMethod::Tls,
            "cookie" => AuthMethod::Cookie,
            _ => return None,
        })
    }

    /// The method's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Anonymous => "anonymous",
            AuthMethod::Ticket => "ticket",
            AuthMethod::WampCra => "wampcra",
            AuthMethod::Cryptosign => "cryptosign",
            AuthMethod::WampScram => "wamp-scram",
            AuthMethod::Tls => "tls",
            AuthMethod::Cookie => "cookie",
        }
    }
}

/// A secret string (ticket, WAMP-CRA secret). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }
    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// PBKDF2-HMAC-SHA256 parameters of a salted WAMP-CRA secret (sent in CHALLENGE.Extra).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Salt {
    pub salt: String,
    pub iterations: u32,
    /// Length of the derived key in bytes.
    pub keylen: u32,
}

/// A WAMP-CRA credential: the shared secret, optionally salted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CraSecret {
    pub secret: Secret,
    pub salt: Option<Salt>,
}

/// One principal as configured: who it is and how it may prove it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub authid: String,
    pub authrole: String,
    /// Method `ticket`.
    pub ticket: Option<Secret>,
    /// Method `wampcra`.
    pub wampcra: Option<CraSecret>,
    /// Method `cryptosign`: the Ed25519 public key.
    pub pubkey: Option<[u8; 32]>,
    /// Method `wamp-scram`.
    pub scram: Option<ScramCredential>,
    /// Method `tls`: SHA-256 of the client certificate (DER).
    pub cert_fingerprint: Option<[u8; 32]>,
}

impl Principal {
    /// The principal a `[[realm.principal]]` section describes (the parsing and cross-checks of
    /// its credential keys); an error is `(key, message)`, the key being the section's field at
    /// fault.
    pub fn from_section(
        p: &crate::config::PrincipalSection,
    ) -> Result<Principal, (&'static str, String)> {
        let salt = match (&p.salt, &p.secret) {
            (Some(salt), Some(_)) => Some(Salt {
                salt: salt.clone(),
                iterations: p.iterations.unwrap_or(1000),
                keylen: p.keylen.unwrap_or(32),
            }),
            (Some(_), None) => return Err(("salt", "needs a `secret`".into())),
            (None, _) => {
                if p.iterations.is_some() {
                    return Err(("iterations", "needs a `salt`".into()));
                }
                if p.keylen.is_some() {
                    return Err(("keylen", "needs a `salt`".into()));
                }
                None
            }
        };
        let pubkey = match &p.pubkey {
            None => None,
            Some(k) => Some(parse_pubkey(k).map_err(|m| ("pubkey", m))?),
        };
        Ok(Principal {
            authid: p.authid.clone(),
            authrole: p.role.clone(),
            ticket: p.ticket.clone().map(Secret::new),
            wampcra: p.secret.clone().map(|s| CraSecret {
                secret: Secret::new(s),
                salt,
            }),
            pubkey,
            scram: p.scram_params()?,
            cert_fingerprint: match &p.cert_fingerprint {
                None => None,
                Some(f) => Some(parse_fingerprint(f).map_err(|m| ("cert_fingerprint", m))?),
            },
        })
    }
}

/// A principal the authenticator cannot accept; `key` is the offending principal field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {message}")]
pub struct PrincipalError {
    /// Index of the principal in the list given to [`Authenticator::new`].
    pub index: usize,
    pub key: &'static str,
    pub message: String,
}

/// Who a session turned out to be.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    pub authid: String,
    pub authrole: String,
    pub method: AuthMethod,
    /// `WELCOME.Details.authextra` (the SCRAM verifier), if the method sends any.
    pub authextra: Option<Dict>,
}

/// AUTHENTICATE did not prove the identity. Deliberately without detail: the reason (unknown
/// principal, wrong secret, malformed signature) must not reach the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("authentication failed")]
pub struct AuthFailed;

/// Why a login failed, as the operator sees it (the `reason` label of
/// `switchyard_auth_failures_total` and the info log line); never sent to the client, which
/// only gets ABORT `wamp.error.authentication_failed` / `wamp.error.no_matching_auth_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// No method the client offered is available for it in the realm.
    NoMatchingMethod,
    /// AUTHENTICATE for an authid that is not a configured principal.
    UnknownAuthid,
    /// AUTHENTICATE with a wrong ticket, signature or proof for a known principal.
    BadSignature,
    /// The realm's dynamic authenticator refused (or failed, or timed out).
    Rejected,
}

impl FailReason {
    pub const ALL: [FailReason; 4] = [
        FailReason::NoMatchingMethod,
        FailReason::UnknownAuthid,
        FailReason::BadSignature,
        FailReason::Rejected,
    ];

    /// The `reason` label value.
    pub fn label(self) -> &'static str {
        match self {
            FailReason::NoMatchingMethod => "no_matching_method",
            FailReason::UnknownAuthid => "unknown_authid",
            FailReason::BadSignature => "bad_signature",
            FailReason::Rejected => "rejected",
        }
    }
}

/// What a CHALLENGE asked for, kept by the session until AUTHENTICATE. `Debug` redacts.
pub struct Pending {
    method: AuthMethod,
    /// The principal being authenticated; `None` for an unknown one (the attempt will fail).
    principal: Option<usize>,
    expect: Expect,
}

enum Expect {
    Ticket,
    /// The challenge string the HMAC is computed over.
    WampCra(String),
    /// The 32-byte message to be signed (the challenge, XOR the channel ID when bound).
    Cryptosign([u8; 32]),
    Scram(scram::ScramPending),
}

impl Pending {
    pub fn method(&self) -> AuthMethod {
        self.method
    }
}

impl fmt::Debug for Pending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pending")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// A WAMP-CRA HMAC key (the secret, or the base64 of its PBKDF2-derived key) and its salt.
type CraKey = (Vec<u8>, Option<Salt>);

/// A principal in the form the checks need (derived keys computed once, at start-up).
struct Entry {
    authid: String,
    authrole: String,
    /// SHA-256 of the ticket: compared in constant time, and of fixed length.
    ticket: Option<[u8; 32]>,
    wampcra: Option<CraKey>,
    pubkey: Option<ed25519_dalek::VerifyingKey>,
    scram: Option<ScramCredential>,
    cert_fingerprint: Option<[u8; 32]>,
}

/// What an unknown principal is challenged with, so that it looks like a known one.
struct Decoy {
    /// Random per authenticator: keys the decoy salts and stands in for missing secrets.
    key: [u8; 32],
    /// The role a WAMP-CRA challenge names for an unknown `authid`.
    cra_role: String,
    /// PBKDF2 parameters an unknown `authid` is challenged with, when the realm salts.
    cra_salt: Option<(u32, u32)>,
    pubkey: ed25519_dalek::VerifyingKey,
    /// SCRAM parameters an unknown `authid` is challenged with (the first SCRAM principal's).
    scram: (scram::Kdf, u32, Option<u32>),
}

/// The static authenticator of one realm.
pub struct Authenticator {
    entries: Vec<Entry>,
    by_authid: HashMap<String, usize>,
    by_pubkey: HashMap<[u8; 32], usize>,
    by_cert: HashMap<[u8; 32], usize>,
    decoy: Decoy,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("principals", &self.entries.len())
            .finish_non_exhaustive()
    }
}

impl Default for Authenticator {
    /// No principals: only anonymous sessions, if the realm admits them.
    fn default() -> Self {
        match Authenticator::new(&[], rand::random()) {
            Ok(a) => a,
            // Unreachable: an empty principal list has nothing to reject.
            Err(_) => Authenticator {
                entries: Vec::new(),
                by_authid: HashMap::new(),
                by_pubkey: HashMap::new(),
                by_cert: HashMap::new(),
                decoy: Decoy::new([0; 32], &[]),
            },
        }
    }
}

impl Decoy {
    fn new(key: [u8; 32], entries: &[Entry]) -> Decoy {
        let cra = entries.iter().find_map(|e| {
            e.wampcra
                .as_ref()
                .map(|(_, salt)| (e.authrole.clone(), salt.clone()))
        });
        let salted = entries
            .iter()
            .find_map(|e| e.wampcra.as_ref().and_then(|(_, s)| s.as_ref()));
        let signing = ed25519_dalek::SigningKey::from_bytes(&hmac_sha256(&key, b"cryptosign"));
        Decoy {
            key,
            cra_role: cra.map_or_else(|| "user".to_owned(), |(role, _)| role),
            cra_salt: salted.map(|s| (s.iterations, s.keylen)),
            pubkey: signing.verifying_key(),
            scram: entries
                .iter()
                .find_map(|e| e.scram.as_ref().map(|c| (c.kdf, c.iterations, c.memory)))
                .unwrap_or((scram::Kdf::Pbkdf2, 4096, None)),
        }
    }
}

pub(crate) fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; 32],
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

pub(crate) fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

impl Authenticator {
    /// Builds the authenticator for `principals`; `decoy_key` must be random (it keys what
    /// unknown principals are challenged with). Derives salted WAMP-CRA keys (PBKDF2) here,
    /// once.
    pub fn new(principals: &[Principal], decoy_key: [u8; 32]) -> Result<Self, PrincipalError> {
        let mut entries = Vec::with_capacity(principals.len());
        let mut by_authid = HashMap::new();
        let mut by_pubkey = HashMap::new();
        let mut by_cert = HashMap::new();
        for (index, p) in principals.iter().enumerate() {
            let err = |key, message: String| PrincipalError {
                index,
                key,
                message,
            };
            if p.authid.is_empty() {
                return Err(err("authid", "must not be empty".into()));
            }
            if p.authrole.is_empty() {
                return Err(err("role", "must not be empty".into()));
            }
            if by_authid.insert(p.authid.clone(), index).is_some() {
                return Err(err("authid", format!("duplicate authid {:?}", p.authid)));
            }
            if p.ticket.is_none()
                && p.wampcra.is_none()
                && p.pubkey.is_none()
                && p.scram.is_none()
                && p.cert_fingerprint.is_none()
            {
                return Err(err(
                    "authid",
                    "a principal needs a ticket, a secret, a pubkey, scram_* keys or a \
                     cert_fingerprint"
                        .into(),
                ));
            }
            if let Some(fp) = p.cert_fingerprint {
                if by_cert.insert(fp, index).is_some() {
                    return Err(err("cert_fingerprint", "duplicate cert_fingerprint".into()));
                }
            }
            let wampcra = match &p.wampcra {
                None => None,
                Some(c) => Some(wampcra::hmac_key(c).map_err(|(key, m)| err(key, m))?),
            };
            let pubkey = match &p.pubkey {
                None => None,
                Some(pk) => {
                    if by_pubkey.insert(*pk, index).is_some() {
                        return Err(err("pubkey", "duplicate pubkey".into()));
                    }
                    Some(
                        ed25519_dalek::VerifyingKey::from_bytes(pk)
                            .map_err(|_| err("pubkey", "not an Ed25519 public key".into()))?,
                    )
                }
            };
            entries.push(Entry {
                authid: p.authid.clone(),
                authrole: p.authrole.clone(),
                ticket: p.ticket.as_ref().map(|t| sha256(t.expose().as_bytes())),
                wampcra,
                pubkey,
                scram: p.scram.clone(),
                cert_fingerprint: p.cert_fingerprint,
            });
        }
        let decoy = Decoy::new(decoy_key, &entries);
        Ok(Authenticator {
            entries,
            by_authid,
            by_pubkey,
            by_cert,
            decoy,
        })
    }

    /// Whether `authid` is one of this realm's static principals (they take precedence over a
    /// dynamic authenticator).
    pub fn knows(&self, authid: &str) -> bool {
        self.by_authid.contains_key(authid)
    }

    /// Whether any principal of this realm can use `method` (`anonymous` is the realm's call).
    pub fn supports(&self, method: AuthMethod) -> bool {
        self.entries.iter().any(|e| match method {
            AuthMethod::Anonymous => false,
            AuthMethod::Ticket => e.ticket.is_some(),
            AuthMethod::WampCra => e.wampcra.is_some(),
            AuthMethod::Cryptosign => e.pubkey.is_some(),
            AuthMethod::WampScram => e.scram.is_some(),
            AuthMethod::Tls => e.cert_fingerprint.is_some(),
            // Any principal can come back with a cookie once authenticated another way.
            AuthMethod::Cookie => true,
        })
    }

    /// Starts `method` for a HELLO: returns `CHALLENGE.Extra` and what AUTHENTICATE must match,
    /// or `None` when the method does not apply (not supported here, or HELLO lacks what it
    /// needs: an `authid` for ticket and WAMP-CRA, `authextra.pubkey` for cryptosign), so the
    /// caller moves on to the client's next method. Without a transport (no channel binding).
    ///
    /// `entropy` must be fresh random bytes; `now` is the time the challenge is issued.
    pub fn challenge(
        &self,
        method: AuthMethod,
        hello: &HelloDetails,
        session: Id,
        entropy: &[u8; 32],
        now: SystemTime,
    ) -> Option<(Dict, Pending)> {
        self.challenge_on(method, hello, session, entropy, now, &Channel::default())
    }

    /// [`Authenticator::challenge`] on a transport: `channel` has what TLS channel binding
    /// needs (cryptosign `tls-exporter`; a binding the transport cannot give makes the method
    /// not apply).
    pub fn challenge_on(
        &self,
        method: AuthMethod,
        hello: &HelloDetails,
        session: Id,
        entropy: &[u8; 32],
        now: SystemTime,
        channel: &Channel,
    ) -> Option<(Dict, Pending)> {
        if !self.supports(method) {
            return None;
        }
        let authextra = hello.authextra.as_ref().and_then(|x| x.dict());
        match method {
            AuthMethod::Anonymous | AuthMethod::Tls | AuthMethod::Cookie => None,
            AuthMethod::Ticket => {
                let authid = hello.authid.as_deref()?;
                let principal = self.by_authid.get(authid).copied();
                Some(ticket::challenge(principal))
            }
            AuthMethod::WampCra => {
                let authid = hello.authid.as_deref()?;
                let principal = self.by_authid.get(authid).copied();
                Some(wampcra::challenge(
                    self, authid, principal, session, entropy, now,
                ))
            }
            AuthMethod::WampScram => {
                let authid = hello.authid.as_deref()?;
                let principal = self.by_authid.get(authid).copied();
                scram::challenge(self, authid, principal, authextra, entropy)
            }
            AuthMethod::Cryptosign => {
                let pubkey = authextra
                    .and_then(|d| d.get("pubkey"))
                    .and_then(|v| v.as_str())
                    .and_then(|s| parse_pubkey(s).ok())?;
                let binding = cryptosign::binding(authextra, channel)?;
                let principal = self.by_pubkey.get(&pubkey).copied().filter(|&i| {
                    // An authid in HELLO must name the key's owner.
                    hello
                        .authid
                        .as_deref()
                        .is_none_or(|a| a == self.entries[i].authid)
                });
                Some(cryptosign::challenge(principal, entropy, binding))
            }
        }
    }

    /// Methods that need no CHALLENGE: identifies the client from the transport (`tls`: its
    /// certificate; `cookie`: its WebSocket cookie, looked up in `cookies`). `None` when the
    /// method does not apply, so the caller moves on to the client's next method.
    pub fn identify(
        &self,
        method: AuthMethod,
        hello: &HelloDetails,
        channel: &Channel,
        realm: &str,
        cookies: Option<&CookieStore>,
    ) -> Option<Identity> {
        match method {
            AuthMethod::Tls => tls::identify(self, hello, channel),
            AuthMethod::Cookie => cookie::identify(hello, channel, realm, cookies?),
            _ => None,
        }
    }

    /// Checks AUTHENTICATE.Signature against the challenge `pending` recorded.
    pub fn authenticate(&self, pending: Pending, signature: &str) -> Result<Identity, AuthFailed> {
        self.authenticate_with(pending, signature, &Dict::new())
    }

    /// [`Authenticator::authenticate`] with AUTHENTICATE.Extra (WAMP-SCRAM reads its `nonce`
    /// and channel binding there).
    /// Why `pending` failed, for the operator: whether its authid was a known principal.
    pub fn fail_reason(pending: &Pending) -> FailReason {
        if pending.principal.is_some() {
            FailReason::BadSignature
        } else {
            FailReason::UnknownAuthid
        }
    }

    pub fn authenticate_with(
        &self,
        pending: Pending,
        signature: &str,
        extra: &Dict,
    ) -> Result<Identity, AuthFailed> {
        let entry = pending.principal.and_then(|i| self.entries.get(i));
        let (ok, authextra) = match &pending.expect {
            Expect::Ticket => (ticket::verify(self, entry, signature), None),
            Expect::WampCra(challenge) => {
                (wampcra::verify(self, entry, challenge, signature), None)
            }
            Expect::Cryptosign(challenge) => {
                (cryptosign::verify(self, entry, challenge, signature), None)
            }
            Expect::Scram(p) => match scram::verify(self, entry, p, signature, extra) {
                Some(x) => (true, Some(x)),
                None => (false, None),
            },
        };
        match entry {
            Some(e) if ok => Ok(Identity {
                authid: e.authid.clone(),
                authrole: e.authrole.clone(),
                method: pending.method,
                authextra,
            }),
            _ => Err(AuthFailed),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
