//! WAMP-Cryptosign client authentication (`cryptosign`, Ed25519).
//!
//! HELLO.Details.authextra.pubkey (hex, 32 bytes) selects the principal.
//! `[CHALLENGE, "cryptosign", {challenge: hex(32 random bytes)}]` →
//! `[AUTHENTICATE, hex(signature (64 bytes) ‖ signed message (32 bytes)), {}]`
//!
//! TLS channel binding `tls-exporter` (RFC 9266): with `authextra.channel_binding =
//! "tls-exporter"` on a TLS transport, CHALLENGE.Extra echoes `channel_binding` and the client
//! signs `challenge XOR channel_id`, channel_id being the 32-byte exporter value.
//! `tls-exporter` without TLS, or an unknown binding type, makes the method not apply: with no
//! other method offered, the client gets `wamp.error.no_matching_auth_method`. `tls-unique`
//! (undefined in TLS 1.3) continues unbound, as the spec allows: CHALLENGE.Extra then has no
//! `channel_binding`.
//!
//! Not implemented: router authentication (`authextra.challenge`), trustroots and certificates.

use super::{AuthMethod, Authenticator, Channel, Entry, Expect, Pending};
use crate::codec::{Dict, Value};
use subtle::ConstantTimeEq;

/// Parses a hex-encoded 32-byte Ed25519 public key.
pub fn parse_pubkey(s: &str) -> Result<[u8; 32], String> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out)
        .map_err(|_| "must be 32 bytes in hex (64 hex digits)".to_owned())?;
    Ok(out)
}

/// The channel binding a HELLO asks for: `Some(None)` for none, `Some(Some(id))` for
/// `tls-exporter` on TLS, `None` when it cannot be honoured.
pub(super) fn binding(authextra: Option<&Dict>, channel: &Channel) -> Option<Option<[u8; 32]>> {
    match authextra.and_then(|x| x.get("channel_binding")) {
        None | Some(Value::Null) => Some(None),
        Some(Value::Str(s)) if s == "tls-exporter" => channel.tls_exporter.map(Some),
        // TLS 1.3 has no tls-unique; as the spec allows, continue without binding (the
        // CHALLENGE then names none, which the client checks).
        Some(Value::Str(s)) if s == "tls-unique" => Some(None),
        Some(_) => None,
    }
}

pub(super) fn challenge(
    principal: Option<usize>,
    entropy: &[u8; 32],
    channel_id: Option<[u8; 32]>,
) -> (Dict, Pending) {
    let mut extra = Dict::new();
    extra.insert("challenge".into(), Value::Str(hex::encode(entropy)));
    let mut message = *entropy;
    if let Some(id) = channel_id {
        extra.insert("channel_binding".into(), Value::Str("tls-exporter".into()));
        for (m, c) in message.iter_mut().zip(id.iter()) {
            *m ^= c;
        }
    }
    (
        extra,
        Pending {
            method: AuthMethod::Cryptosign,
            principal,
            expect: Expect::Cryptosign(message),
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
