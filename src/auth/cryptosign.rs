//! WAMP-Cryptosign client authentication (`cryptosign`, Ed25519).
//!
//! HELLO.Details.authextra.pubkey (hex, 32 bytes) selects the principal.
//! `[CHALLENGE, "cryptosign", {challenge: hex(32 random bytes)}]` →
//! `[AUTHENTICATE, hex(signature (64 bytes) ‖ signed message (32 bytes)), {}]`
//!
//! Not implemented yet: TLS channel binding (`tls-unique`/`tls-exporter`: a requested binding
//! is ignored and, as the spec allows, CHALLENGE.Extra then carries no `channel_binding`),
//! router authentication (`authextra.challenge`), trustroots and certificates.

use super::{AuthMethod, Authenticator, Entry, Expect, Pending};
use crate::codec::{Dict, Value};
use subtle::ConstantTimeEq;

/// Parses a hex-encoded 32-byte Ed25519 public key.
pub fn parse_pubkey(s: &str) -> Result<[u8; 32], String> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out)
        .map_err(|_| "must be 32 bytes in hex (64 hex digits)".to_owned())?;
    Ok(out)
}

pub(super) fn challenge(principal: Option<usize>, entropy: &[u8; 32]) -> (Dict, Pending) {
    let mut extra = Dict::new();
    extra.insert("challenge".into(), Value::Str(hex::encode(entropy)));
    (
        extra,
        Pending {
            method: AuthMethod::Cryptosign,
            principal,
            expect: Expect::Cryptosign(*entropy),
        },
    )
}

/// The signed message must be the challenge and the signature must verify under the
/// principal's key; an unknown principal is verified against a decoy key (same work).
pub(super) fn verify(
    auth: &Authenticator,
    entry: Option<&Entry>,
    challenge: &[u8; 32],
    signature: &str,
) -> bool {
    let known = entry.and_then(|e| e.pubkey.as_ref());
    let key = known.unwrap_or(&auth.decoy.pubkey);
    let mut signed = [0u8; 96];
    if hex::decode_to_slice(signature, &mut signed).is_err() {
        return false;
    }
    let (sig, message) = signed.split_at(64);
    let Ok(sig) = ed25519_dalek::Signature::from_slice(sig) else {
        return false;
    };
    let same = bool::from(message.ct_eq(&challenge[..]));
    let valid = key.verify_strict(challenge, &sig).is_ok();
    same && valid && known.is_some()
}
