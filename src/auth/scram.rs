//! WAMP Salted Challenge Response Authentication (`wamp-scram`, RFC 5802 / RFC 7677 with
//! SHA-256), with the `argon2id13` and `pbkdf2` key derivation functions.
//!
//! `HELLO {authid, authextra: {nonce}}` →
//! `[CHALLENGE, "wamp-scram", {nonce: client ‖ server nonce, salt, kdf, iterations, memory}]` →
//! `[AUTHENTICATE, base64(ClientProof), {nonce, channel_binding: null, cbind_data: null}]` →
//! `WELCOME {authextra: {verifier: "v=" + base64(ServerSignature)}}`
//!
//! The router stores only `StoredKey` and `ServerKey` (RFC 5802 §3); a principal configured
//! with a password has them derived once, at start-up. `AuthMessage` is built with the exact
//! RFC 5802 §7 syntax (`n=<escaped authid>,r=<client nonce>,r=<nonce>,s=<salt>,i=<iterations>,
//! c=biws,r=<nonce>`), so RFC 7677 test vectors apply.
//!
//! Not implemented: channel binding (`tls-unique`, `tls-server-end-point`): a HELLO asking for
//! one is not challenged with `wamp-scram` (the router does not support the type, so per the
//! spec it must not proceed; the next offered method is tried, else
//! `wamp.error.no_matching_auth_method`). SASLprep normalisation of the authid: authids are
//! matched byte for byte (passwords are normalised by whoever derives the keys).
//!
//! An unknown `authid` gets a mock challenge with the KDF parameters of the realm's first SCRAM
//! principal and a salt that is stable per `authid`, then fails like a wrong password.

use super::{hmac_sha256, sha256, AuthMethod, Authenticator, Entry, Expect, Pending, Secret};
use crate::codec::{Dict, Value};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The key derivation function of a SCRAM credential (`CHALLENGE.Details.kdf`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kdf {
    /// `"argon2id13"`: Argon2id v1.3, parallelism 1, 32-byte output.
    Argon2id13,
    /// `"pbkdf2"`: PBKDF2-HMAC-SHA256, 32-byte output.
    Pbkdf2,
}

impl Kdf {
    pub fn parse(s: &str) -> Option<Kdf> {
        match s {
            "argon2id13" => Some(Kdf::Argon2id13),
            "pbkdf2" => Some(Kdf::Pbkdf2),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Kdf::Argon2id13 => "argon2id13",
            Kdf::Pbkdf2 => "pbkdf2",
        }
    }
}

/// Bounds on configured cost parameters (a typo must not make start-up take hours).
const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
const MAX_ARGON2_ITERATIONS: u32 = 100;
/// KiB; 4 GiB.
const MAX_ARGON2_MEMORY: u32 = 4 * 1024 * 1024;
/// Argon2 needs at least 8 KiB per lane (one lane).
const MIN_ARGON2_MEMORY: u32 = 8;

/// A principal's SCRAM credential as the router stores it: never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ScramCredential {
    pub kdf: Kdf,
    /// The salt, base64 as sent in CHALLENGE (the KDF gets the decoded octets).
    pub salt: String,
    pub iterations: u32,
    /// Argon2 memory cost in KiB; `None` for PBKDF2.
    pub memory: Option<u32>,
    pub stored_key: [u8; 32],
    pub server_key: [u8; 32],
}

impl std::fmt::Debug for ScramCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredential")
            .field("kdf", &self.kdf)
            .field("salt", &self.salt)
            .field("iterations", &self.iterations)
            .field("memory", &self.memory)
            .finish_non_exhaustive()
    }
}

/// What a `[[realm.principal]]` says about SCRAM; `build` validates it into a credential.
#[derive(Debug, Clone, Default)]
pub struct ScramParams {
    pub kdf: Option<String>,
    pub salt: Option<String>,
    pub iterations: Option<u32>,
    pub memory: Option<u32>,
    pub password: Option<Secret>,
    pub stored_key: Option<String>,
    pub server_key: Option<String>,
}

type ParamError = (&'static str, String);

impl ScramParams {
    /// Whether any SCRAM key is set (then the rest must be consistent).
    pub fn is_set(&self) -> bool {
        self.kdf.is_some()
            || self.salt.is_some()
            || self.iterations.is_some()
            || self.memory.is_some()
            || self.password.is_some()
            || self.stored_key.is_some()
            || self.server_key.is_some()
    }

    /// Validates the parameters; derives the keys from `password` if that is what is given.
    /// Errors name the principal key (`scram_salt`, …).
    pub fn build(&self) -> Result<ScramCredential, ParamError> {
        let kdf = match self.kdf.as_deref() {
            None => Kdf::Argon2id13,
            Some(s) => Kdf::parse(s).ok_or_else(|| {
                (
                    "scram_kdf",
                    format!("unknown KDF {s:?} (argon2id13 or pbkdf2)"),
                )
            })?,
        };
        let salt = self.salt.clone().ok_or((
            "scram_salt",
            "required (base64, 16 random bytes recommended)".into(),
        ))?;
        let salt_bytes = B64
            .decode(&salt)
            .map_err(|_| ("scram_salt", "must be canonical base64".to_owned()))?;
        if salt_bytes.len() < 8 {
            return Err(("scram_salt", "must be at least 8 bytes".into()));
        }
        let (iterations, memory) = match kdf {
            Kdf::Pbkdf2 => {
                if self.memory.is_some() {
                    return Err(("scram_memory", "only for scram_kdf = \"argon2id13\"".into()));
                }
                let i = self.iterations.unwrap_or(4096);
                if !(1..=MAX_PBKDF2_ITERATIONS).contains(&i) {
                    return Err((
                        "scram_iterations",
                        format!("must be 1..={MAX_PBKDF2_ITERATIONS}"),
                    ));
                }
                (i, None)
            }
            Kdf::Argon2id13 => {
                let i = self.iterations.unwrap_or(3);
                if !(1..=MAX_ARGON2_ITERATIONS).contains(&i) {
                    return Err((
                        "scram_iterations",
                        format!("must be 1..={MAX_ARGON2_ITERATIONS}"),
                    ));
                }
                let m = self.memory.unwrap_or(65536);
                if !(MIN_ARGON2_MEMORY..=MAX_ARGON2_MEMORY).contains(&m) {
                    return Err((
                        "scram_memory",
                        format!("must be {MIN_ARGON2_MEMORY}..={MAX_ARGON2_MEMORY} (KiB)"),
                    ));
                }
                (i, Some(m))
            }
        };
        let (stored_key, server_key) = match (&self.password, &self.stored_key, &self.server_key) {
            (Some(p), None, None) => {
                let salted = salted_password(kdf, p.expose(), &salt_bytes, iterations, memory)
                    .map_err(|m| ("scram_password", m))?;
                keys(&salted)
            }
            (None, Some(st), Some(sv)) => (
                key32("scram_stored_key", st)?,
                key32("scram_server_key", sv)?,
            ),
            (Some(_), _, _) => {
                return Err((
                    "scram_password",
                    "give either scram_password or scram_stored_key and scram_server_key".into(),
                ))
            }
            _ => {
                return Err((
                    "scram_stored_key",
                    "needs scram_stored_key and scram_server_key (or scram_password)".into(),
                ))
            }
        };
        Ok(ScramCredential {
            kdf,
            salt,
            iterations,
            memory,
            stored_key,
            server_key,
        })
    }
}

fn key32(key: &'static str, b64: &str) -> Result<[u8; 32], ParamError> {
    let v = B64
        .decode(b64)
        .map_err(|_| (key, "must be base64".to_owned()))?;
    v.try_into().map_err(|_| {
        (
            key,
            "must be 32 bytes (base64 of a SHA-256 value)".to_owned(),
        )
    })
}

/// `SaltedPassword = KDF(password, salt, params)` (32 octets).
pub fn salted_password(
    kdf: Kdf,
    password: &str,
    salt: &[u8],
    iterations: u32,
    memory: Option<u32>,
) -> Result<[u8; 32], String> {
    let mut out = [0u8; 32];
    match kdf {
        Kdf::Pbkdf2 => {
            pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out)
        }
        Kdf::Argon2id13 => {
            let params = argon2::Params::new(memory.unwrap_or(65536), iterations, 1, Some(32))
                .map_err(|e| format!("invalid Argon2 parameters: {e}"))?;
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password_into(password.as_bytes(), salt, &mut out)
                .map_err(|e| format!("Argon2 failed: {e}"))?;
        }
    }
    Ok(out)
}

/// `(StoredKey, ServerKey)` of a salted password.
pub fn keys(salted: &[u8; 32]) -> ([u8; 32], [u8; 32]) {
    let client_key = hmac_sha256(salted, b"Client Key");
    (sha256(&client_key), hmac_sha256(salted, b"Server Key"))
}

/// RFC 5802 `saslname` escaping: `,` → `=2C`, `=` → `=3D`.
pub fn escape(s: &str) -> String {
    s.replace('=', "=3D").replace(',', "=2C")
}

/// `AuthMessage` without channel binding (`c=biws` is base64 of `n,,`).
pub fn auth_message(
    authid: &str,
    client_nonce: &str,
    nonce: &str,
    salt: &str,
    iterations: u32,
) -> String {
    let cbind = B64.encode(b"n,,");
    format!(
        "n={},r={client_nonce},r={nonce},s={salt},i={iterations},c={cbind},r={nonce}",
        escape(authid)
    )
}

/// State kept between CHALLENGE and AUTHENTICATE.
pub(super) struct ScramPending {
    /// The concatenated client ‖ server nonce.
    nonce: String,
    auth_message: String,
}

fn is_base64(s: &str) -> bool {
    !s.is_empty() && B64.decode(s).is_ok()
}

pub(super) fn challenge(
    auth: &Authenticator,
    authid: &str,
    principal: Option<usize>,
    authextra: Option<&Dict>,
    entropy: &[u8; 32],
) -> Option<(Dict, Pending)> {
    let client_nonce = authextra
        .and_then(|x| x.get("nonce"))
        .and_then(Value::as_str)?;
    if !is_base64(client_nonce) || client_nonce.len() > 256 {
        return None;
    }
    // A channel binding type we do not support: not a method we can run for this HELLO.
    if authextra
        .and_then(|x| x.get("channel_binding"))
        .is_some_and(|v| !matches!(v, Value::Null))
    {
        return None;
    }
    let entry = principal.and_then(|i| auth.entries.get(i));
    let (kdf, salt, iterations, memory) = match entry.and_then(|e| e.scram.as_ref()) {
        Some(c) => (c.kdf, c.salt.clone(), c.iterations, c.memory),
        None => {
            let tag = hmac_sha256(&auth.decoy.key, format!("scram:{authid}").as_bytes());
            let (kdf, iterations, memory) = auth.decoy.scram;
            (kdf, B64.encode(&tag[..16]), iterations, memory)
        }
    };
    let nonce = format!("{client_nonce}{}", B64.encode(&entropy[..16]));
    let mut extra = Dict::new();
    extra.insert("nonce".into(), Value::Str(nonce.clone()));
    extra.insert("salt".into(), Value::Str(salt.clone()));
    extra.insert("kdf".into(), Value::Str(kdf.as_str().into()));
    extra.insert("iterations".into(), Value::UInt(iterations.into()));
    extra.insert(
        "memory".into(),
        memory.map_or(Value::Null, |m| Value::UInt(m.into())),
    );
    let auth_message = auth_message(authid, client_nonce, &nonce, &salt, iterations);
    Some((
        extra,
        Pending {
            method: AuthMethod::WampScram,
            principal: entry.filter(|e| e.scram.is_some()).and(principal),
            expect: Expect::Scram(ScramPending {
                nonce,
                auth_message,
            }),
        },
    ))
}

/// Verifies the ClientProof; on success returns the WELCOME `authextra` (the verifier).
pub(super) fn verify(
    auth: &Authenticator,
    entry: Option<&Entry>,
    p: &ScramPending,
    proof: &str,
    extra: &Dict,
) -> Option<Dict> {
    let cred = entry.and_then(|e| e.scram.as_ref());
    let stored = cred.map_or_else(|| sha256(&auth.decoy.key), |c| c.stored_key);
    let nonce_ok = extra.get("nonce").and_then(Value::as_str) == Some(p.nonce.as_str());
    let cb_ok = extra
        .get("channel_binding")
        .is_none_or(|v| matches!(v, Value::Null))
        && extra
            .get("cbind_data")
            .is_none_or(|v| matches!(v, Value::Null));
    let mut proof_bytes = [0u8; 32];
    let proof_ok = matches!(B64.decode(proof), Ok(v) if v.len() == 32 && {
        proof_bytes.copy_from_slice(&v);
        true
    });
    let client_signature = hmac_sha256(&stored, p.auth_message.as_bytes());
    let mut client_key = [0u8; 32];
    for (k, (a, b)) in client_key
        .iter_mut()
        .zip(client_signature.iter().zip(proof_bytes.iter()))
    {
        *k = a ^ b;
    }
    let recovered = sha256(&client_key);
    let key_ok = bool::from(recovered[..].ct_eq(&stored[..]));
    let cred = cred?;
    if !(nonce_ok && cb_ok && proof_ok && key_ok) {
        return None;
    }
    let server_signature = hmac_sha256(&cred.server_key, p.auth_message.as_bytes());
    let mut out = Dict::new();
    out.insert(
        "verifier".into(),
        Value::Str(format!("v={}", B64.encode(server_signature))),
    );
    Some(out)
}

impl crate::config::PrincipalSection {
    /// The principal's SCRAM credential, if it has `scram_*` keys.
    pub fn scram_params(&self) -> Result<Option<ScramCredential>, ParamError> {
        let params = ScramParams {
            kdf: self.scram_kdf.clone(),
            salt: self.scram_salt.clone(),
            iterations: self.scram_iterations,
            memory: self.scram_memory,
            password: self.scram_password.clone().map(Secret::new),
            stored_key: self.scram_stored_key.clone(),
            server_key: self.scram_server_key.clone(),
        };
        if params.is_set() {
            params.build().map(Some)
        } else {
            Ok(None)
        }
    }
}

/// The `scram_*` lines of a `[[realm.principal]]` for `password`, with a fresh random salt
/// (for `switchyard config scram-keys`).
pub fn principal_keys(
    kdf: &str,
    iterations: Option<u32>,
    memory: Option<u32>,
    password: &str,
) -> Result<String, ParamError> {
    let salt: [u8; 16] = rand::random();
    let params = ScramParams {
        kdf: Some(kdf.to_owned()),
        salt: Some(B64.encode(salt)),
        iterations,
        memory,
        password: Some(Secret::new(password)),
        ..Default::default()
    };
    let c = params.build()?;
    let mut out = format!(
        "scram_kdf = \"{}\"\nscram_salt = \"{}\"\nscram_iterations = {}\n",
        c.kdf.as_str(),
        c.salt,
        c.iterations
    );
    if let Some(m) = c.memory {
        out.push_str(&format!("scram_memory = {m}\n"));
    }
    out.push_str(&format!(
        "scram_stored_key = \"{}\"\nscram_server_key = \"{}\"\n",
        B64.encode(c.stored_key),
        B64.encode(c.server_key)
    ));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 §3: SCRAM-SHA-256 with PBKDF2, 4096 iterations, user "user", password
    /// "pencil": the client proof and the server verifier.
    #[test]
    fn rfc7677_vector() {
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let salted = salted_password(Kdf::Pbkdf2, "pencil", &salt, 4096, None).unwrap();
        let (stored, server) = keys(&salted);
        let nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let msg = auth_message(
            "user",
            "rOprNGfwEbeRWgbNEkqO",
            nonce,
            "W22ZaJ0SNY7soEsUEjb6gQ==",
            4096,
        );
        let client_key = hmac_sha256(&salted, b"Client Key");
        let sig = hmac_sha256(&stored, msg.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(sig.iter())
            .map(|(a, b)| a ^ b)
            .collect();
        assert_eq!(
            B64.encode(proof),
            "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        let verifier = hmac_sha256(&server, msg.as_bytes());
        assert_eq!(
            B64.encode(verifier),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
    }

    #[test]
    fn principal_keys_round_trip_through_the_config() {
        let lines = principal_keys("pbkdf2", Some(10), None, "pw").unwrap();
        let text = format!(
            "[[realm]]\nname = \"r\"\n[[realm.principal]]\nauthid = \"a\"\nrole = \"x\"\n{lines}"
        );
        let f = crate::config::ConfigFile::parse(&text).unwrap();
        let c = f.realms[0].principals[0].scram_params().unwrap().unwrap();
        let salt = B64.decode(&c.salt).unwrap();
        let (stored, server) = keys(&salted_password(Kdf::Pbkdf2, "pw", &salt, 10, None).unwrap());
        assert_eq!((c.stored_key, c.server_key), (stored, server));
        assert!(principal_keys("md5", None, None, "pw").is_err());
    }

    #[test]
    fn escapes_saslname() {
        assert_eq!(escape("a=b,c"), "a=3Db=2Cc");
    }

    #[test]
    fn params_are_validated() {
        let base = ScramParams {
            kdf: Some("pbkdf2".into()),
            salt: Some(B64.encode([1u8; 16])),
            iterations: Some(10),
            password: Some(Secret::new("pw")),
            ..Default::default()
        };
        let c = base.build().unwrap();
        assert_eq!((c.kdf, c.iterations, c.memory), (Kdf::Pbkdf2, 10, None));
        // Password and explicit keys agree.
        let explicit = ScramParams {
            password: None,
            stored_key: Some(B64.encode(c.stored_key)),
            server_key: Some(B64.encode(c.server_key)),
            ..base.clone()
        };
        assert_eq!(explicit.build().unwrap(), c);
        let bad = |p: ScramParams| p.build().unwrap_err().0;
        assert_eq!(
            bad(ScramParams {
                kdf: Some("md5".into()),
                ..base.clone()
            }),
            "scram_kdf"
        );
        assert_eq!(
            bad(ScramParams {
                salt: Some("!!".into()),
                ..base.clone()
            }),
            "scram_salt"
        );
        assert_eq!(
            bad(ScramParams {
                memory: Some(64),
                ..base.clone()
            }),
            "scram_memory"
        );
        assert_eq!(
            bad(ScramParams {
                iterations: Some(0),
                ..base.clone()
            }),
            "scram_iterations"
        );
        assert_eq!(
            bad(ScramParams {
                password: None,
                ..base.clone()
            }),
            "scram_stored_key"
        );
        let argon = ScramParams {
            kdf: Some("argon2id13".into()),
            iterations: Some(1),
            memory: Some(64),
            ..base.clone()
        };
        let a = argon.build().unwrap();
        assert_eq!((a.kdf, a.memory), (Kdf::Argon2id13, Some(64)));
        assert_ne!(a.stored_key, c.stored_key);
        assert_eq!(
            bad(ScramParams {
                memory: Some(1),
                ..argon
            }),
            "scram_memory"
        );
    }
}
