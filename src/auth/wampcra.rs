//! WAMP Challenge-Response Authentication (`wampcra`).
//!
//! `[CHALLENGE, "wampcra", {challenge, [salt, iterations, keylen]}]` →
//! `[AUTHENTICATE, base64(HMAC-SHA256(key, challenge)), {}]`
//!
//! The challenge is a JSON object string with `authid`, `authrole`, `authmethod`,
//! `authprovider`, `nonce`, `timestamp` (ISO 8601 UTC) and `session`. The HMAC key is the shared
//! secret, or for a salted secret the base64 (standard alphabet, padded) of
//! PBKDF2-HMAC-SHA256(secret, salt, iterations, keylen), as the client derives it from the
//! `salt`, `iterations` and `keylen` in CHALLENGE.Extra.
//!
//! An unknown `authid` is challenged with the role of the realm's first WAMP-CRA principal and,
//! if any principal is salted, with the first salted principal's PBKDF2 parameters and a decoy
//! salt that is stable per `authid`. The spec puts the real `authrole` (and salting) in the
//! challenge, so a prober can only not tell real from unknown principals when all WAMP-CRA
//! principals of a realm share one role and one salting setup; say so to operators.

use super::{
    hmac_sha256, AuthMethod, Authenticator, CraKey, CraSecret, Entry, Expect, Pending, Salt,
};
use crate::codec::{Dict, Id, Value};
use crate::util::iso8601;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::SystemTime;

/// Largest PBKDF2 output accepted from the config (bytes).
const MAX_KEYLEN: u32 = 1024;

/// The HMAC key for a configured credential (derives salted keys).
pub(super) fn hmac_key(c: &CraSecret) -> Result<CraKey, (&'static str, String)> {
    let secret = c.secret.expose().as_bytes();
    let Some(salt) = &c.salt else {
        return Ok((secret.to_vec(), None));
    };
    if salt.iterations == 0 {
        return Err(("iterations", "must be at least 1".into()));
    }
    if salt.keylen == 0 || salt.keylen > MAX_KEYLEN {
        return Err(("keylen", format!("must be 1..={MAX_KEYLEN}")));
    }
    let mut derived = vec![0u8; salt.keylen as usize];
    pbkdf2::pbkdf2_hmac::<Sha256>(secret, salt.salt.as_bytes(), salt.iterations, &mut derived);
    let key = base64::engine::general_purpose::STANDARD.encode(&derived);
    Ok((key.into_bytes(), Some(salt.clone())))
}

pub(super) fn challenge(
    auth: &Authenticator,
    authid: &str,
    principal: Option<usize>,
    session: Id,
    entropy: &[u8; 32],
    now: SystemTime,
) -> (Dict, Pending) {
    let entry = principal.and_then(|i| auth.entries.get(i));
    let (authrole, salt) = match entry.and_then(|e| e.wampcra.as_ref().map(|c| (e, c))) {
        Some((e, (_, salt))) => (e.authrole.clone(), salt.clone()),
        // Unknown authid (or one without a WAMP-CRA secret): a stable decoy salt, so asking
        // twice does not tell a real principal from a missing one.
        None => (
            auth.decoy.cra_role.clone(),
            auth.decoy.cra_salt.map(|(iterations, keylen)| {
                let tag = hmac_sha256(&auth.decoy.key, authid.as_bytes());
                Salt {
                    salt: hex::encode(&tag[..16]),
                    iterations,
                    keylen,
                }
            }),
        ),
    };
    let nonce = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&entropy[..16]);
    let challenge = serde_json::json!({
        "authid": authid,
        "authrole": authrole,
        "authmethod": "wampcra",
        "authprovider": super::PROVIDER,
        "nonce": nonce,
        "timestamp": iso8601(now),
        "session": session,
    })
    .to_string();
    let mut extra = Dict::new();
    extra.insert("challenge".into(), Value::Str(challenge.clone()));
    if let Some(s) = salt {
        extra.insert("salt".into(), Value::Str(s.salt));
        extra.insert("iterations".into(), Value::UInt(s.iterations.into()));
        extra.insert("keylen".into(), Value::UInt(s.keylen.into()));
    }
    (
        extra,
        Pending {
            method: AuthMethod::WampCra,
            principal,
            expect: Expect::WampCra(challenge),
        },
    )
}

/// Verifies `signature` (base64) in constant time; an unknown principal is checked against the
/// decoy key, so the work is the same.
pub(super) fn verify(
    auth: &Authenticator,
    entry: Option<&Entry>,
    challenge: &str,
    signature: &str,
) -> bool {
    let known = entry.and_then(|e| e.wampcra.as_ref()).map(|(k, _)| k);
    let key: &[u8] = known.map_or(&auth.decoy.key[..], |k| k.as_slice());
    let Ok(sig) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return false;
    };
    mac.update(challenge.as_bytes());
    mac.verify_slice(&sig).is_ok() && known.is_some()
}
