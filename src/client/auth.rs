//! Client authentication: what HELLO announces and how a CHALLENGE is answered.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Error;
use crate::codec::{Authenticate, Challenge, Dict, DictField, HelloDetails, Value};

/// How the client authenticates when it joins (and re-joins) a realm.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    /// No credentials (`anonymous`), optionally asking for an `authid`.
    Anonymous {
        /// The authid to ask for (the router may assign another).
        authid: Option<String>,
    },
    /// `ticket`: a shared secret sent as is (use TLS).
    Ticket {
        /// The principal.
        authid: String,
        /// The ticket.
        ticket: String,
    },
    /// `wampcra`: HMAC-SHA256 challenge-response. Salted secrets are derived with
    /// PBKDF2-HMAC-SHA256 from the salt, iterations and key length in CHALLENGE.Extra; a
    /// challenge asking for more than 100 000 iterations is refused ([`Error::Protocol`]), as
    /// the derivation runs on the executor.
    WampCra {
        /// The principal.
        authid: String,
        /// The secret (not the derived key).
        secret: String,
    },
    /// `cryptosign`: Ed25519. The public key goes in HELLO.Details.authextra.pubkey.
    Cryptosign {
        /// The principal.
        authid: String,
        /// The Ed25519 private key seed (32 bytes).
        secret_key: [u8; 32],
    },
}

impl Default for Auth {
    fn default() -> Self {
        Auth::Anonymous { authid: None }
    }
}

/// Secrets stay out of logs.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Anonymous { authid } => write!(f, "Anonymous({authid:?})"),
            Auth::Ticket { authid, .. } => write!(f, "Ticket({authid:?})"),
            Auth::WampCra { authid, .. } => write!(f, "WampCra({authid:?})"),
            Auth::Cryptosign { authid, .. } => write!(f, "Cryptosign({authid:?})"),
        }
    }
}

impl Auth {
    fn method(&self) -> &'static str {
        match self {
            Auth::Anonymous { .. } => "anonymous",
            Auth::Ticket { .. } => "ticket",
            Auth::WampCra { .. } => "wampcra",
            Auth::Cryptosign { .. } => "cryptosign",
        }
    }

    fn authid(&self) -> Option<&str> {
        match self {
            Auth::Anonymous { authid } => authid.as_deref(),
            Auth::Ticket { authid, .. }
            | Auth::WampCra { authid, .. }
            | Auth::Cryptosign { authid, .. } => Some(authid),
        }
    }
}

fn features(names: &[&str]) -> Value {
    let mut f = Dict::new();
    for n in names {
        f.insert((*n).into(), Value::Bool(true));
    }
    let mut role = Dict::new();
    role.insert("features".into(), Value::Dict(f));
    Value::Dict(role)
}

/// The roles and features the client implements, as HELLO.Details.roles.
pub(crate) fn roles() -> Value {
    const CALL: [&str; 5] = [
        "progressive_call_results",
        "call_canceling",
        "call_timeout",
        "progressive_call_invocations",
        "payload_passthru_mode",
    ];
    let mut roles = Dict::new();
    roles.insert("caller".into(), features(&CALL));
    let mut callee: Vec<&str> = CALL.to_vec();
    callee.extend([
        "pattern_based_registration",
        "shared_registration",
        "call_reroute",
        "call_trustlevels",
    ]);
    roles.insert("callee".into(), features(&callee));
    roles.insert(
        "publisher".into(),
        features(&[
            "publisher_exclusion",
            "publisher_identification",
            "subscriber_blackwhite_listing",
            "payload_passthru_mode",
        ]),
    );
    roles.insert(
        "subscriber".into(),
        features(&[
            "pattern_based_subscription",
            "subscription_revocation",
            "publication_trustlevels",
            "payload_passthru_mode",
        ]),
    );
    Value::Dict(roles)
}

/// HELLO.Details for `auth` and `agent`, with the embedder's `more` entries (ours win).
pub(crate) fn hello_details(auth: &Auth, agent: &str, more: &Dict) -> HelloDetails {
    let authextra = match auth {
        Auth::Cryptosign { secret_key, .. } => {
            let key = ed25519_dalek::SigningKey::from_bytes(secret_key);
            let mut x = Dict::new();
            x.insert(
                "pubkey".into(),
                Value::Str(hex::encode(key.verifying_key().to_bytes())),
            );
            Some(DictField(Value::Dict(x)))
        }
        _ => None,
    };
    HelloDetails {
        roles: Some(DictField(roles())),
        authmethods: Some(vec![auth.method().into()]),
        authid: auth.authid().map(str::to_owned),
        authrole: None,
        authextra,
        agent: Some(agent.to_owned()),
        extra: more
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "roles" | "authmethods" | "authid" | "authrole" | "authextra" | "agent"
                )
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

/// The AUTHENTICATE answering `ch` with the credentials in `auth`.
/// The most PBKDF2 iterations a salted WAMP-CRA challenge may ask for. Deriving the key runs
/// on the executor, so an unbounded count would let a router stall the client's thread (and
/// every task on it); common deployments use 1000.
const MAX_CRA_ITERATIONS: u64 = 100_000;

pub(crate) fn respond(auth: &Auth, ch: &Challenge) -> Result<Authenticate, Error> {
    if ch.method != auth.method() {
        return Err(Error::Protocol(format!(
            "CHALLENGE for {:?}, but the client offered {:?}",
            ch.method,
            auth.method()
        )));
    }
    let challenge = || {
        ch.extra
            .get("challenge")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::Protocol("CHALLENGE without a challenge string".into()))
    };
    let signature = match auth {
        Auth::Anonymous { .. } => {
            return Err(Error::Protocol("CHALLENGE for anonymous".into()));
        }
        Auth::Ticket { ticket, .. } => ticket.clone(),
        Auth::WampCra { secret, .. } => {
            let salt = match ch.extra.get("salt").and_then(Value::as_str) {
                None => None,
                Some(salt) => {
                    let num = |k: &str, default: u64| match ch.extra.get(k) {
                        None | Some(Value::Null) => Ok(default),
                        Some(v) => v
                            .as_u64()
                            .ok_or_else(|| Error::Protocol(format!("CHALLENGE.Extra.{k}"))),
                    };
                    let iterations = num("iterations", 1000)?;
                    let keylen = num("keylen", 32)?;
                    if iterations == 0
                        || iterations > MAX_CRA_ITERATIONS
                        || !(1..=1024).contains(&keylen)
                    {
                        return Err(Error::Protocol(
                            "CHALLENGE.Extra: iterations or keylen out of range".into(),
                        ));
                    }
                    Some((salt, iterations as u32, keylen as usize))
                }
            };
            wampcra_signature(secret, challenge()?, salt)
        }
        Auth::Cryptosign { secret_key, .. } => cryptosign_signature(secret_key, challenge()?)?,
    };
    Ok(Authenticate {
        signature,
        extra: Dict::new(),
    })
}

/// WAMP-CRA: base64(HMAC-SHA256(key, challenge)), the key being the secret or, salted,
/// base64(PBKDF2-HMAC-SHA256(secret, salt, iterations, keylen)).
pub(crate) fn wampcra_signature(
    secret: &str,
    challenge: &str,
    salt: Option<(&str, u32, usize)>,
) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = match salt {
        None => secret.as_bytes().to_vec(),
        Some((salt, iterations, keylen)) => {
            let mut derived = vec![0u8; keylen];
            pbkdf2::pbkdf2_hmac::<Sha256>(
                secret.as_bytes(),
                salt.as_bytes(),
                iterations,
                &mut derived,
            );
            b64.encode(&derived).into_bytes()
        }
    };
    // HMAC accepts keys of any length.
    let mut mac = match Hmac::<Sha256>::new_from_slice(&key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes any key length"),
    };
    mac.update(challenge.as_bytes());
    b64.encode(mac.finalize().into_bytes())
}

/// WAMP-Cryptosign: hex(Ed25519 signature (64 bytes) ‖ challenge (32 bytes)).
pub(crate) fn cryptosign_signature(seed: &[u8; 32], challenge_hex: &str) -> Result<String, Error> {
    use ed25519_dalek::Signer;
    let mut challenge = [0u8; 32];
    hex::decode_to_slice(challenge_hex, &mut challenge)
        .map_err(|_| Error::Protocol("cryptosign challenge is not 32 bytes of hex".into()))?;
    let key = ed25519_dalek::SigningKey::from_bytes(seed);
    let sig = key.sign(&challenge);
    let mut out = Vec::with_capacity(96);
    out.extend_from_slice(&sig.to_bytes());
    out.extend_from_slice(&challenge);
    Ok(hex::encode(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CH: &str = r#"{"authid":"peter","nonce":"abc"}"#;

    /// Expected values computed independently with Python's hmac/hashlib.
    #[test]
    fn wampcra_plain_and_salted_match_known_values() {
        assert_eq!(
            wampcra_signature("peter-secret", CH, None),
            "l89/2dtx3/ihLRTFvG7FJw5qE6URuprLiFKhcbrvzjU="
        );
        assert_eq!(
            wampcra_signature("salty-secret", CH, Some(("salt123", 100, 32))),
            "Yhtud9mSrCXhOdvNJaSfCnKdnf4HVMFXcH6628uccr8="
        );
    }

    /// RFC 8032 test key 1; the expected signature of bytes 0..32 was computed with PyNaCl.
    #[test]
    fn cryptosign_matches_known_values() {
        let seed: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let hello = hello_details(
            &Auth::Cryptosign {
                authid: "client01".into(),
                secret_key: seed,
            },
            "t",
            &Dict::new(),
        );
        let pubkey = hello.authextra.unwrap().dict().unwrap()["pubkey"].clone();
        assert_eq!(
            pubkey,
            Value::Str("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a".into())
        );
        let challenge: Vec<u8> = (0u8..32).collect();
        let sig = cryptosign_signature(&seed, &hex::encode(&challenge)).unwrap();
        assert_eq!(
            sig,
            "00c1db988bb12fd7351a6054ae3fac90fab7e4fc56b1651c7181f5f55f896f66\
             3933d3a90605d9058e9d0ac45950ee2d3c9c9b14857415587179fe0ccac35f09\
             000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
        );
        assert!(cryptosign_signature(&seed, "zz").is_err());
    }

    #[test]
    fn respond_reads_the_salt_from_the_challenge() {
        let mut extra = Dict::new();
        extra.insert("challenge".into(), Value::Str(CH.into()));
        extra.insert("salt".into(), Value::Str("salt123".into()));
        extra.insert("iterations".into(), Value::UInt(100));
        extra.insert("keylen".into(), Value::UInt(32));
        let ch = Challenge {
            method: "wampcra".into(),
            extra,
        };
        let auth = Auth::WampCra {
            authid: "salty".into(),
            secret: "salty-secret".into(),
        };
        assert_eq!(
            respond(&auth, &ch).unwrap().signature,
            "Yhtud9mSrCXhOdvNJaSfCnKdnf4HVMFXcH6628uccr8="
        );
        let ticket = Auth::Ticket {
            authid: "joe".into(),
            ticket: "t".into(),
        };
        assert!(matches!(respond(&ticket, &ch), Err(Error::Protocol(_))));
    }
}
