//! Unit tests of the static authenticator, one group per method.

use super::*;
use crate::codec::options::DictField;
use crate::codec::Value;
use base64::Engine;
use std::time::{Duration, UNIX_EPOCH};

pub(crate) const CS_SEED: [u8; 32] = [7; 32];

pub(crate) fn principals() -> Vec<Principal> {
    let signing = ed25519_dalek::SigningKey::from_bytes(&CS_SEED);
    vec![
        Principal {
            authid: "joe".into(),
            authrole: "user".into(),
            ticket: Some(Secret::new("joe-ticket")),
            wampcra: None,
            pubkey: None,
            scram: None,
            cert_fingerprint: None,
        },
        Principal {
            authid: "peter".into(),
            authrole: "admin".into(),
            ticket: None,
            wampcra: Some(CraSecret {
                secret: Secret::new("secret1"),
                salt: None,
            }),
            pubkey: None,
            scram: None,
            cert_fingerprint: None,
        },
        Principal {
            authid: "salty".into(),
            authrole: "user".into(),
            ticket: None,
            wampcra: Some(CraSecret {
                secret: Secret::new("secret1"),
                salt: Some(Salt {
                    salt: "salt123".into(),
                    iterations: 1000,
                    keylen: 32,
                }),
            }),
            pubkey: None,
            scram: None,
            cert_fingerprint: None,
        },
        Principal {
            authid: "client01".into(),
            authrole: "device".into(),
            ticket: None,
            wampcra: None,
            pubkey: Some(signing.verifying_key().to_bytes()),
            scram: None,
            cert_fingerprint: None,
        },
    ]
}

fn auth() -> Authenticator {
    Authenticator::new(&principals(), [42; 32]).unwrap()
}

fn hello(authid: Option<&str>, pubkey: Option<String>) -> HelloDetails {
    let mut d = HelloDetails {
        authid: authid.map(str::to_owned),
        ..Default::default()
    };
    if let Some(pk) = pubkey {
        let mut x = Dict::new();
        x.insert("pubkey".into(), Value::Str(pk));
        d.authextra = Some(DictField(Value::Dict(x)));
    }
    d
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(1_403_455_785_448)
}

fn start(a: &Authenticator, m: AuthMethod, h: &HelloDetails, entropy: u8) -> (Dict, Pending) {
    a.challenge(m, h, 99, &[entropy; 32], now()).unwrap()
}

/// What a client computes for WAMP-CRA (autobahn's `compute_wcs`, with `derive_key`).
pub(crate) fn cra_sign(extra: &Dict, secret: &str) -> String {
    let challenge = extra["challenge"].as_str().unwrap();
    let key = match extra.get("salt") {
        None => secret.as_bytes().to_vec(),
        Some(salt) => {
            let mut k = vec![0u8; extra["keylen"].as_u64().unwrap() as usize];
            pbkdf2::pbkdf2_hmac::<Sha256>(
                secret.as_bytes(),
                salt.as_str().unwrap().as_bytes(),
                extra["iterations"].as_u64().unwrap() as u32,
                &mut k,
            );
            base64::engine::general_purpose::STANDARD
                .encode(&k)
                .into_bytes()
        }
    };
    base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, challenge.as_bytes()))
}

/// What a client computes for cryptosign: hex(signature ‖ challenge).
pub(crate) fn cs_sign(extra: &Dict, seed: &[u8; 32]) -> String {
    use ed25519_dalek::Signer;
    let challenge = hex::decode(extra["challenge"].as_str().unwrap()).unwrap();
    let sig = ed25519_dalek::SigningKey::from_bytes(seed).sign(&challenge);
    let mut out = sig.to_bytes().to_vec();
    out.extend_from_slice(&challenge);
    hex::encode(out)
}

#[test]
fn debug_redacts_secrets() {
    let p = principals();
    let text = format!("{p:?} {:?}", auth());
    assert!(!text.contains("joe-ticket"), "{text}");
    assert!(!text.contains("secret1"), "{text}");
}

#[test]
fn ticket() {
    let a = auth();
    let h = hello(Some("joe"), None);
    let (extra, p) = start(&a, AuthMethod::Ticket, &h, 1);
    assert!(extra.is_empty());
    let id = a.authenticate(p, "joe-ticket").unwrap();
    assert_eq!(
        (id.authid.as_str(), id.authrole.as_str(), id.method),
        ("joe", "user", AuthMethod::Ticket)
    );
    let (_, p) = start(&a, AuthMethod::Ticket, &h, 1);
    assert_eq!(a.authenticate(p, "joe-tickeT"), Err(AuthFailed));
    let (_, p) = start(&a, AuthMethod::Ticket, &h, 1);
    assert_eq!(a.authenticate(p, ""), Err(AuthFailed));
    // Unknown authid: the same empty challenge, then failure, even with a real ticket.
    let (extra, p) = start(&a, AuthMethod::Ticket, &hello(Some("nobody"), None), 1);
    assert!(extra.is_empty());
    assert_eq!(a.authenticate(p, "joe-ticket"), Err(AuthFailed));
    // A principal without a ticket cannot use the method.
    let (_, p) = start(&a, AuthMethod::Ticket, &hello(Some("peter"), None), 1);
    assert_eq!(a.authenticate(p, "secret1"), Err(AuthFailed));
    // No authid: the method does not apply.
    assert!(a
        .challenge(AuthMethod::Ticket, &hello(None, None), 1, &[0; 32], now())
        .is_none());
}

#[test]
fn wampcra_challenge_is_spec_shaped() {
    let a = auth();
    let (extra, _) = start(&a, AuthMethod::WampCra, &hello(Some("peter"), None), 3);
    assert_eq!(extra.len(), 1);
    let c: serde_json::Value = serde_json::from_str(extra["challenge"].as_str().unwrap()).unwrap();
    assert_eq!(c["authid"], "peter");
    assert_eq!(c["authrole"], "admin");
    assert_eq!(c["authmethod"], "wampcra");
    assert_eq!(c["authprovider"], "static");
    assert_eq!(c["session"], 99);
    assert_eq!(c["timestamp"], "2014-06-22T16:49:45.448Z");
    assert!(c["nonce"].as_str().is_some_and(|n| n.len() >= 16));
}

#[test]
fn wampcra() {
    let a = auth();
    let h = hello(Some("peter"), None);
    let (extra, p) = start(&a, AuthMethod::WampCra, &h, 3);
    let id = a.authenticate(p, &cra_sign(&extra, "secret1")).unwrap();
    assert_eq!(
        (id.authid.as_str(), id.authrole.as_str()),
        ("peter", "admin")
    );
    let (extra, p) = start(&a, AuthMethod::WampCra, &h, 3);
    assert_eq!(
        a.authenticate(p, &cra_sign(&extra, "secret2")),
        Err(AuthFailed)
    );
    let (_, p) = start(&a, AuthMethod::WampCra, &h, 3);
    assert_eq!(a.authenticate(p, "not base64!"), Err(AuthFailed));
}

#[test]
fn wampcra_salted_matches_autobahn_derive_key() {
    // Python: base64(pbkdf2_hmac('sha256', b'secret1', b'salt123', 1000, 32))
    let (key, _) = wampcra::hmac_key(&CraSecret {
        secret: Secret::new("secret1"),
        salt: Some(Salt {
            salt: "salt123".into(),
            iterations: 1000,
            keylen: 32,
        }),
    })
    .unwrap();
    assert_eq!(key, b"64xfzBvZhGDT7PB0bQwDeI8/WR1M9x6Cw5dt0yP9koc=");
    // Python: base64(hmac(key, b'{"x":1}', sha256))
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(hmac_sha256(&key, b"{\"x\":1}")),
        "gQfDW53EMNjfafuNXizTPEu55On7FPZyHvqkmVjETMo="
    );

    let a = auth();
    let h = hello(Some("salty"), None);
    let (extra, p) = start(&a, AuthMethod::WampCra, &h, 4);
    assert_eq!(extra["salt"].as_str(), Some("salt123"));
    assert_eq!(extra["iterations"].as_u64(), Some(1000));
    assert_eq!(extra["keylen"].as_u64(), Some(32));
    assert_eq!(
        a.authenticate(p, &cra_sign(&extra, "secret1"))
            .unwrap()
            .authid,
        "salty"
    );
}

#[test]
fn wampcra_unknown_authid_looks_real() {
    let a = auth();
    let h = hello(Some("nobody"), None);
    let (extra, p) = start(&a, AuthMethod::WampCra, &h, 5);
    // Salted like the realm's salted principals, with a salt that is stable per authid.
    let keys: Vec<_> = extra.keys().cloned().collect();
    assert_eq!(keys, ["challenge", "iterations", "keylen", "salt"]);
    let (again, _) = start(&a, AuthMethod::WampCra, &h, 6);
    assert_eq!(extra["salt"], again["salt"]);
    let (other, _) = start(&a, AuthMethod::WampCra, &hello(Some("nobody2"), None), 6);
    assert_ne!(extra["salt"], other["salt"]);
    let c: serde_json::Value = serde_json::from_str(extra["challenge"].as_str().unwrap()).unwrap();
    assert_eq!(c["authid"], "nobody");
    assert_eq!(
        a.authenticate(p, &cra_sign(&extra, "secret1")),
        Err(AuthFailed)
    );
}

#[test]
fn cryptosign() {
    let a = auth();
    let pk = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&CS_SEED)
            .verifying_key()
            .to_bytes(),
    );
    let h = hello(None, Some(pk.clone()));
    let (extra, p) = start(&a, AuthMethod::Cryptosign, &h, 9);
    assert_eq!(
        extra["challenge"].as_str(),
        Some(hex::encode([9u8; 32]).as_str())
    );
    let id = a.authenticate(p, &cs_sign(&extra, &CS_SEED)).unwrap();
    assert_eq!(
        (id.authid.as_str(), id.authrole.as_str(), id.method),
        ("client01", "device", AuthMethod::Cryptosign)
    );
    // The matching authid is accepted, another one is not.
    let (extra, p) = start(
        &a,
        AuthMethod::Cryptosign,
        &hello(Some("client01"), Some(pk.clone())),
        9,
    );
    assert!(a.authenticate(p, &cs_sign(&extra, &CS_SEED)).is_ok());
    let (extra, p) = start(
        &a,
        AuthMethod::Cryptosign,
        &hello(Some("joe"), Some(pk.clone())),
        9,
    );
    assert_eq!(
        a.authenticate(p, &cs_sign(&extra, &CS_SEED)),
        Err(AuthFailed)
    );
    // Signed by another key.
    let (extra, p) = start(&a, AuthMethod::Cryptosign, &h, 9);
    assert_eq!(
        a.authenticate(p, &cs_sign(&extra, &[8; 32])),
        Err(AuthFailed)
    );
    // Only the 64-byte signature, without the message: the spec asks for 96 bytes.
    let (extra, p) = start(&a, AuthMethod::Cryptosign, &h, 9);
    assert_eq!(
        a.authenticate(p, &cs_sign(&extra, &CS_SEED)[..128]),
        Err(AuthFailed)
    );
    // An unknown key gets a challenge like any other, signs it correctly, and fails.
    let other = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&[8; 32])
            .verifying_key()
            .to_bytes(),
    );
    let (extra, p) = start(&a, AuthMethod::Cryptosign, &hello(None, Some(other)), 9);
    assert_eq!(extra.len(), 1);
    assert_eq!(
        a.authenticate(p, &cs_sign(&extra, &[8; 32])),
        Err(AuthFailed)
    );
    // No pubkey: the method does not apply.
    assert!(a
        .challenge(
            AuthMethod::Cryptosign,
            &hello(Some("client01"), None),
            1,
            &[0; 32],
            now()
        )
        .is_none());
}

#[test]
fn replayed_authenticate_fails_on_a_new_challenge() {
    let a = auth();
    let h = hello(Some("peter"), None);
    let (extra, p) = start(&a, AuthMethod::WampCra, &h, 1);
    let sig = cra_sign(&extra, "secret1");
    assert!(a.authenticate(p, &sig).is_ok());
    let (_, p) = start(&a, AuthMethod::WampCra, &h, 2);
    assert_eq!(a.authenticate(p, &sig), Err(AuthFailed));

    let pk = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&CS_SEED)
            .verifying_key()
            .to_bytes(),
    );
    let h = hello(None, Some(pk));
    let (extra, p) = start(&a, AuthMethod::Cryptosign, &h, 1);
    let sig = cs_sign(&extra, &CS_SEED);
    assert!(a.authenticate(p, &sig).is_ok());
    let (_, p) = start(&a, AuthMethod::Cryptosign, &h, 2);
    assert_eq!(a.authenticate(p, &sig), Err(AuthFailed));
}

#[test]
fn supports_only_configured_methods() {
    let a = Authenticator::new(&principals()[..1], [0; 32]).unwrap();
    assert!(a.supports(AuthMethod::Ticket));
    assert!(!a.supports(AuthMethod::WampCra));
    assert!(!a.supports(AuthMethod::Cryptosign));
    assert!(a
        .challenge(
            AuthMethod::WampCra,
            &hello(Some("joe"), None),
            1,
            &[0; 32],
            now()
        )
        .is_none());
    assert!(!Authenticator::default().supports(AuthMethod::Ticket));
}

#[test]
fn rejects_bad_principals() {
    let mut p = principals();
    p[1].authid = "joe".into();
    let e = Authenticator::new(&p, [0; 32]).unwrap_err();
    assert_eq!((e.index, e.key), (1, "authid"));
    let mut p = principals();
    if let Some(c) = &mut p[2].wampcra {
        c.salt.as_mut().unwrap().iterations = 0;
    }
    let e = Authenticator::new(&p, [0; 32]).unwrap_err();
    assert_eq!((e.index, e.key), (2, "iterations"));
    let mut p = principals();
    p[0].ticket = None;
    let e = Authenticator::new(&p, [0; 32]).unwrap_err();
    assert_eq!(e.index, 0);
    assert!(parse_pubkey("abcd").is_err());
}

fn scram_principal(authid: &str, password: &str) -> Principal {
    let params = ScramParams {
        kdf: Some("pbkdf2".into()),
        salt: Some(base64::engine::general_purpose::STANDARD.encode([5u8; 16])),
        iterations: Some(16),
        password: Some(Secret::new(password)),
        ..Default::default()
    };
    Principal {
        authid: authid.into(),
        authrole: "scrammer".into(),
        ticket: None,
        wampcra: None,
        pubkey: None,
        scram: Some(params.build().unwrap()),
        cert_fingerprint: Some([authid.len() as u8; 32]),
    }
}

/// ClientProof for a SCRAM CHALLENGE, computed from the password (RFC 5802).
fn scram_proof(extra: &Dict, authid: &str, client_nonce: &str, password: &str) -> String {
    let b64 = base64::engine::general_purpose::STANDARD;
    let nonce = extra["nonce"].as_str().unwrap();
    let salt = extra["salt"].as_str().unwrap();
    let i = extra["iterations"].as_u64().unwrap() as u32;
    let mut sp = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &b64.decode(salt).unwrap(), i, &mut sp);
    let ck = hmac_sha256(&sp, b"Client Key");
    let msg = format!("n={authid},r={client_nonce},r={nonce},s={salt},i={i},c=biws,r={nonce}");
    let sig = hmac_sha256(&sha256(&ck), msg.as_bytes());
    b64.encode(ck.iter().zip(sig).map(|(a, b)| a ^ b).collect::<Vec<u8>>())
}

fn scram_hello(authid: &str, nonce: &str) -> HelloDetails {
    let mut d = hello(Some(authid), None);
    let mut x = Dict::new();
    x.insert("nonce".into(), Value::Str(nonce.into()));
    d.authextra = Some(DictField(Value::Dict(x)));
    d
}

#[test]
fn wamp_scram_round_trip_replay_and_unknown() {
    let a = Authenticator::new(&[scram_principal("ann", "pw")], [42; 32]).unwrap();
    let h = scram_hello("ann", "Y2xpZW50");
    let (extra, pending) = start(&a, AuthMethod::WampScram, &h, 1);
    let proof = scram_proof(&extra, "ann", "Y2xpZW50", "pw");
    let mut ax = Dict::new();
    ax.insert("nonce".into(), extra["nonce"].clone());
    let id = a.authenticate_with(pending, &proof, &ax).unwrap();
    assert_eq!(
        (id.authid.as_str(), id.method),
        ("ann", AuthMethod::WampScram)
    );
    assert!(id.authextra.unwrap()["verifier"]
        .as_str()
        .unwrap()
        .starts_with("v="));
    // The same proof and nonce against a new challenge (new server nonce): refused.
    let (_, pending) = start(&a, AuthMethod::WampScram, &h, 2);
    assert!(a.authenticate_with(pending, &proof, &ax).is_err());
    // Right proof, AUTHENTICATE.Extra without the nonce: refused.
    let (extra, pending) = start(&a, AuthMethod::WampScram, &h, 3);
    let proof = scram_proof(&extra, "ann", "Y2xpZW50", "pw");
    assert!(a.authenticate_with(pending, &proof, &Dict::new()).is_err());
    // Wrong password.
    let (extra, pending) = start(&a, AuthMethod::WampScram, &h, 4);
    let mut ax = Dict::new();
    ax.insert("nonce".into(), extra["nonce"].clone());
    let bad = scram_proof(&extra, "ann", "Y2xpZW50", "pW");
    assert!(a.authenticate_with(pending, &bad, &ax).is_err());
    // Unknown authid: same shape of CHALLENGE, salt stable per authid, then failure.
    let g = scram_hello("ghost", "Y2xpZW50");
    let (x1, p1) = start(&a, AuthMethod::WampScram, &g, 5);
    let (x2, _) = start(&a, AuthMethod::WampScram, &g, 6);
    assert_eq!(x1["salt"], x2["salt"]);
    assert_eq!(
        x1.keys().collect::<Vec<_>>(),
        extra.keys().collect::<Vec<_>>()
    );
    let mut ax = Dict::new();
    ax.insert("nonce".into(), x1["nonce"].clone());
    let proof = scram_proof(&x1, "ghost", "Y2xpZW50", "pw");
    assert!(a.authenticate_with(p1, &proof, &ax).is_err());
    // No client nonce, or a non-base64 one: the method does not apply.
    assert!(a
        .challenge(
            AuthMethod::WampScram,
            &hello(Some("ann"), None),
            1,
            &[0; 32],
            now()
        )
        .is_none());
    assert!(a
        .challenge(
            AuthMethod::WampScram,
            &scram_hello("ann", "n,o"),
            1,
            &[0; 32],
            now()
        )
        .is_none());
}

#[test]
fn tls_identifies_by_fingerprint() {
    let a = Authenticator::new(&[scram_principal("ann", "pw")], [42; 32]).unwrap();
    let ch = |fp: [u8; 32]| Channel {
        peer_cert: Some(PeerCert { sha256: fp }),
        ..Default::default()
    };
    let h = hello(None, None);
    let id = a
        .identify(AuthMethod::Tls, &h, &ch([3; 32]), "r", None)
        .unwrap();
    assert_eq!((id.authid.as_str(), id.method), ("ann", AuthMethod::Tls));
    assert!(a
        .identify(AuthMethod::Tls, &h, &ch([4; 32]), "r", None)
        .is_none());
    assert!(a
        .identify(AuthMethod::Tls, &h, &Channel::default(), "r", None)
        .is_none());
    let other = hello(Some("bob"), None);
    assert!(a
        .identify(AuthMethod::Tls, &other, &ch([3; 32]), "r", None)
        .is_none());
    assert!(parse_fingerprint(&"ab:".repeat(31)).is_err(), "31 bytes");
    let colon = vec!["ab"; 32].join(":");
    assert_eq!(parse_fingerprint(&colon), Ok([0xab; 32]));
}

#[test]
fn cryptosign_tls_exporter_binding() {
    let a = auth();
    let pk = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&CS_SEED)
            .verifying_key()
            .to_bytes(),
    );
    let mut h = hello(None, Some(pk));
    if let Some(DictField(Value::Dict(x))) = h.authextra.as_mut() {
        x.insert("channel_binding".into(), Value::Str("tls-exporter".into()));
    }
    // No TLS: the method does not apply.
    assert!(a
        .challenge(AuthMethod::Cryptosign, &h, 1, &[1; 32], now())
        .is_none());
    let tls = Channel {
        tls_exporter: Some([0x5a; 32]),
        ..Default::default()
    };
    let (extra, pending) = a
        .challenge_on(AuthMethod::Cryptosign, &h, 1, &[1; 32], now(), &tls)
        .unwrap();
    assert_eq!(extra["channel_binding"].as_str(), Some("tls-exporter"));
    // The client signs challenge XOR channel id.
    let mut bound = Dict::new();
    bound.insert(
        "challenge".into(),
        Value::Str(hex::encode([1u8 ^ 0x5a; 32])),
    );
    assert!(a.authenticate(pending, &cs_sign(&bound, &CS_SEED)).is_ok());
    let (extra, pending) = a
        .challenge_on(AuthMethod::Cryptosign, &h, 1, &[1; 32], now(), &tls)
        .unwrap();
    assert!(
        a.authenticate(pending, &cs_sign(&extra, &CS_SEED)).is_err(),
        "unbound signature"
    );
    // tls-unique: continues without binding; an unknown type: not applicable.
    for (binding, applies) in [("tls-unique", true), ("tls-foo", false)] {
        if let Some(DictField(Value::Dict(x))) = h.authextra.as_mut() {
            x.insert("channel_binding".into(), Value::Str(binding.into()));
        }
        let got = a.challenge_on(AuthMethod::Cryptosign, &h, 1, &[1; 32], now(), &tls);
        assert_eq!(got.is_some(), applies, "{binding}");
        if let Some((extra, _)) = got {
            assert!(!extra.contains_key("channel_binding"));
        }
    }
}
