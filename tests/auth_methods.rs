//! The authentication methods autobahn-python cannot drive, end to end against the real
//! `switchyard` binary with Rust clients written here, independently of the router's code:
//!
//! - `wamp-scram` with PBKDF2 (password in the config) and Argon2id (stored/server keys in the
//!   config): success with the server verifier checked, wrong password, unknown authid (a mock
//!   challenge, stable per authid), a replayed AUTHENTICATE. (autobahn-python's `AuthScram` is a
//!   prototype of an older draft — authmethod `scram`, kdf `argon2id-13`, a different
//!   AuthMessage — so it cannot talk spec WAMP-SCRAM.)
//! - `cryptosign` with `tls-exporter` channel binding over RawSocket-TLS (signature over
//!   `challenge XOR exporter`), an unbound signature refused, binding over plain TCP refused.
//! - `tls`: client certificates against `--tls-client-ca` (optional and required modes).
//! - `cookie`: WebSocket cookie tracking (`--ws-cookie`).
//!
//! Certificates come from `rcgen` (a CA, the server's, clients' and a stranger CA's).

mod common;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use common::RouterProcess;
use common::{header, WampConn, WsClient, REPLY_TIMEOUT};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use switchyard::codec::options::{DictField, HelloDetails};
use switchyard::codec::{self, Authenticate, Dict, Hello, Message, Serializer, Value, Welcome};

const AUTH_FAILED: &str = "wamp.error.authentication_failed";
const NO_METHOD: &str = "wamp.error.no_matching_auth_method";

// ---------------------------------------------------------------------------------------------
// Certificates
// ---------------------------------------------------------------------------------------------

struct Pki {
    dir: tempfile::TempDir,
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    ca_der: Vec<u8>,
    /// (certificate DER, key DER) of principal `device7`.
    device: (Vec<u8>, Vec<u8>),
    /// The same as PEM files (for autobahn-python).
    device_cert: PathBuf,
    device_key: PathBuf,
    /// Signed by the CA, but no principal has it.
    unknown: (Vec<u8>, Vec<u8>),
    /// Signed by another CA.
    stranger: (Vec<u8>, Vec<u8>),
}

fn make_ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate().expect("CA key");
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = p.self_signed(&key).expect("CA certificate");
    (cert, key)
}

fn leaf(
    names: Vec<String>,
    cn: &str,
    client: bool,
    ca: &rcgen::Certificate,
    ca_key: &rcgen::KeyPair,
) -> (rcgen::Certificate, rcgen::KeyPair) {
    use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
    let key = KeyPair::generate().expect("leaf key");
    let mut p = CertificateParams::new(names).expect("leaf params");
    p.distinguished_name.push(DnType::CommonName, cn);
    p.extended_key_usages = vec![if client {
        ExtendedKeyUsagePurpose::ClientAuth
    } else {
        ExtendedKeyUsagePurpose::ServerAuth
    }];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let cert = p.signed_by(&key, ca, ca_key).expect("leaf certificate");
    (cert, key)
}

impl Pki {
    fn generate() -> Pki {
        let (ca, ca_key) = make_ca("Switchyard auth test CA");
        let (other_ca, other_key) = make_ca("Stranger CA");
        let (server, server_key) = leaf(
            vec!["localhost".into(), "127.0.0.1".into()],
            "localhost",
            false,
            &ca,
            &ca_key,
        );
        let (device, device_key) = leaf(Vec::new(), "device7", true, &ca, &ca_key);
        let client = |cn: &str, ca: &rcgen::Certificate, key: &rcgen::KeyPair| {
            let (c, k) = leaf(Vec::new(), cn, true, ca, key);
            (c.der().to_vec(), k.serialize_der())
        };
        let dir = tempfile::tempdir().expect("temp dir");
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).expect("write PEM");
            path
        };
        Pki {
            ca: write("ca.pem", ca.pem()),
            server_cert: write("cert.pem", server.pem()),
            server_key: write("key.pem", server_key.serialize_pem()),
            ca_der: ca.der().to_vec(),
            device: (device.der().to_vec(), device_key.serialize_der()),
            device_cert: write("device.pem", device.pem()),
            device_key: write("device-key.pem", device_key.serialize_pem()),
            unknown: client("nobody", &ca, &ca_key),
            stranger: client("device7", &other_ca, &other_key),
            dir,
        }
    }
}

fn tls_connect(
    addr: SocketAddr,
    pki: &Pki,
    client_cert: Option<&(Vec<u8>, Vec<u8>)>,
) -> io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(pki.ca_der.clone()))
        .expect("CA into root store");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_root_certificates(roots);
    let cfg = match client_cert {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from(cert.clone())],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.clone())),
            )
            .expect("client certificate"),
    };
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    tcp.set_read_timeout(Some(REPLY_TIMEOUT))?;
    tcp.set_write_timeout(Some(REPLY_TIMEOUT))?;
    let name = ServerName::try_from("localhost").expect("server name");
    let conn = rustls::ClientConnection::new(Arc::new(cfg), name).map_err(io::Error::other)?;
    let mut s = rustls::StreamOwned::new(conn, tcp);
    // Finish the handshake now (bounded: each I/O has the socket timeouts).
    for _ in 0..20 {
        if !s.conn.is_handshaking() {
            break;
        }
        s.conn.complete_io(&mut s.sock)?;
    }
    Ok(s)
}

// ---------------------------------------------------------------------------------------------
// A RawSocket JSON client over any byte stream (plain TCP or TLS)
// ---------------------------------------------------------------------------------------------

struct Rs<S: Read + Write> {
    s: S,
}

impl<S: Read + Write> Rs<S> {
    fn open(mut s: S) -> io::Result<Rs<S>> {
        // Max length 2^24, JSON.
        s.write_all(&[0x7F, 0xF1, 0, 0])?;
        s.flush()?;
        let mut reply = [0u8; 4];
        s.read_exact(&mut reply)?;
        if reply[0] != 0x7F || reply[1] & 0x0F != 1 {
            return Err(io::Error::other(format!("RawSocket refused: {reply:?}")));
        }
        Ok(Rs { s })
    }

    fn send(&mut self, m: &Message) -> io::Result<()> {
        let body = codec::encode(Serializer::Json, m);
        let len = body.len() as u32;
        let mut frame = vec![0u8, (len >> 16) as u8, (len >> 8) as u8, len as u8];
        frame.extend_from_slice(&body);
        self.s.write_all(&frame)?;
        self.s.flush()
    }

    /// The next WAMP message (pings answered); an error once the router closed.
    fn recv(&mut self) -> io::Result<Message> {
        for _ in 0..100 {
            let mut h = [0u8; 4];
            self.s.read_exact(&mut h)?;
            let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
            let mut body = vec![0u8; len];
            self.s.read_exact(&mut body)?;
            match h[0] & 0x07 {
                0 => {
                    return codec::decode(Serializer::Json, &body.into())
                        .map_err(|e| io::Error::other(e.to_string()))
                }
                1 => {
                    let mut pong = vec![2u8, h[1], h[2], h[3]];
                    pong.extend_from_slice(&body);
                    self.s.write_all(&pong)?;
                }
                _ => {}
            }
        }
        Err(io::Error::other("only transport frames"))
    }
}

fn hello(realm: &str, methods: &[&str], authid: Option<&str>, authextra: Option<Dict>) -> Message {
    let mut roles = Dict::new();
    roles.insert("subscriber".into(), Value::Dict(Dict::new()));
    Message::Hello(Box::new(Hello {
        realm: realm.into(),
        details: HelloDetails {
            roles: Some(DictField(Value::Dict(roles))),
            authmethods: Some(methods.iter().map(|m| (*m).to_owned()).collect()),
            authid: authid.map(str::to_owned),
            authextra: authextra.map(|x| DictField(Value::Dict(x))),
            ..Default::default()
        },
    }))
}

fn authenticate(signature: String, extra: Dict) -> Message {
    Message::Authenticate(Authenticate { signature, extra })
}

fn dict(pairs: &[(&str, Value)]) -> Dict {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn s(v: &str) -> Value {
    Value::Str(v.to_owned())
}

fn expect_challenge<S: Read + Write>(c: &mut Rs<S>, method: &str) -> Dict {
    match c.recv() {
        Ok(Message::Challenge(ch)) => {
            assert_eq!(ch.method, method, "CHALLENGE method");
            ch.extra
        }
        other => panic!("expected CHALLENGE {method}, got {other:?}"),
    }
}

fn expect_welcome<S: Read + Write>(c: &mut Rs<S>) -> Welcome {
    match c.recv() {
        Ok(Message::Welcome(w)) => *w,
        other => panic!("expected WELCOME, got {other:?}"),
    }
}

fn expect_abort<S: Read + Write>(c: &mut Rs<S>, reason: &str) {
    match c.recv() {
        Ok(Message::Abort(a)) => assert_eq!(a.reason.as_str(), reason, "ABORT: {a:?}"),
        other => panic!("expected ABORT {reason}, got {other:?}"),
    }
}

fn who(w: &Welcome) -> (String, String, String) {
    (
        w.details.authid.clone().unwrap_or_default(),
        w.details.authrole.clone().unwrap_or_default(),
        w.details.authmethod.clone().unwrap_or_default(),
    )
}

// ---------------------------------------------------------------------------------------------
// SCRAM, client side (RFC 5802 / RFC 7677 / the WAMP-SCRAM section of the spec)
// ---------------------------------------------------------------------------------------------

fn hmac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC key");
    m.update(data);
    m.finalize().into_bytes().into()
}

fn salted(kdf: &str, password: &str, salt_b64: &str, iterations: u32, memory: u64) -> [u8; 32] {
    let salt = B64.decode(salt_b64).expect("salt base64");
    let mut out = [0u8; 32];
    match kdf {
        "pbkdf2" => pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &salt, iterations, &mut out),
        "argon2id13" => {
            let params =
                argon2::Params::new(memory as u32, iterations, 1, Some(32)).expect("params");
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
                .hash_password_into(password.as_bytes(), &salt, &mut out)
                .expect("argon2");
        }
        other => panic!("unexpected kdf {other}"),
    }
    out
}

/// What a SCRAM exchange produced: the AUTHENTICATE sent and the expected verifier.
struct ScramRun {
    authenticate: Message,
    verifier: String,
}

/// HELLO → CHALLENGE → AUTHENTICATE with `password`; returns the CHALLENGE.Extra and the run.
fn scram_exchange<S: Read + Write>(
    c: &mut Rs<S>,
    authid: &str,
    password: &str,
    client_nonce: &str,
) -> (Dict, ScramRun) {
    c.send(&hello(
        "secure",
        &["wamp-scram"],
        Some(authid),
        Some(dict(&[
            ("nonce", s(client_nonce)),
            ("channel_binding", Value::Null),
        ])),
    ))
    .expect("send HELLO");
    let extra = expect_challenge(c, "wamp-scram");
    let nonce = extra["nonce"].as_str().expect("nonce").to_owned();
    assert!(
        nonce.starts_with(client_nonce) && nonce.len() > client_nonce.len(),
        "server nonce extends ours: {nonce}"
    );
    let salt = extra["salt"].as_str().expect("salt").to_owned();
    let kdf = extra["kdf"].as_str().expect("kdf").to_owned();
    let iterations = extra["iterations"].as_u64().expect("iterations") as u32;
    let memory = extra.get("memory").and_then(Value::as_u64).unwrap_or(0);
    let sp = salted(&kdf, password, &salt, iterations, memory);
    let client_key = hmac(&sp, b"Client Key");
    let stored_key: [u8; 32] = Sha256::digest(client_key).into();
    let server_key = hmac(&sp, b"Server Key");
    let auth_message =
        format!("n={authid},r={client_nonce},r={nonce},s={salt},i={iterations},c=biws,r={nonce}");
    let sig = hmac(&stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(sig).map(|(a, b)| a ^ b).collect();
    let msg = authenticate(
        B64.encode(proof),
        dict(&[
            ("nonce", s(&nonce)),
            ("channel_binding", Value::Null),
            ("cbind_data", Value::Null),
        ]),
    );
    c.send(&msg).expect("send AUTHENTICATE");
    let verifier = format!(
        "v={}",
        B64.encode(hmac(&server_key, auth_message.as_bytes()))
    );
    (
        extra,
        ScramRun {
            authenticate: msg,
            verifier,
        },
    )
}

fn rs_plain(addr: SocketAddr) -> Rs<TcpStream> {
    let t = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    t.set_read_timeout(Some(REPLY_TIMEOUT)).expect("timeout");
    Rs::open(t).expect("RawSocket handshake")
}

// ---------------------------------------------------------------------------------------------
// The router
// ---------------------------------------------------------------------------------------------

const SCRAM_SALT_A: &str = "c2FsdHNhbHRzYWx0c2FsdA=="; // "saltsaltsaltsalt"
const SCRAM_SALT_B: &str = "AAECAwQFBgcICQoLDA0ODw==";
const CS_SEED: [u8; 32] = [9; 32];

fn config(pki: &Pki) -> String {
    // bob's keys as an operator would store them: derived offline, never the password.
    let sp = salted("argon2id13", "bob-pw", SCRAM_SALT_B, 2, 64);
    let stored: [u8; 32] = Sha256::digest(hmac(&sp, b"Client Key")).into();
    let server = hmac(&sp, b"Server Key");
    let device_fp = hex::encode(Sha256::digest(&pki.device.0));
    let pubkey = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&CS_SEED)
            .verifying_key()
            .to_bytes(),
    );
    format!(
        r#"
[[realm]]
name = "secure"
anonymous = false

[[realm.principal]]
authid = "alice"
role = "scrammer"
scram_kdf = "pbkdf2"
scram_salt = "{SCRAM_SALT_A}"
scram_iterations = 1000
scram_password = "alice-pw"

[[realm.principal]]
authid = "bob"
role = "argonaut"
scram_kdf = "argon2id13"
scram_salt = "{SCRAM_SALT_B}"
scram_iterations = 2
scram_memory = 64
scram_stored_key = "{stored}"
scram_server_key = "{server}"

[[realm.principal]]
authid = "device7"
role = "device"
cert_fingerprint = "{device_fp}"

[[realm.principal]]
authid = "signer"
role = "signer"
pubkey = "{pubkey}"

[[realm.principal]]
authid = "joe"
role = "user"
ticket = "joe-ticket"
"#,
        stored = B64.encode(stored),
        server = B64.encode(server),
    )
}

fn start(pki: &Pki, client_auth: &str) -> RouterProcess {
    let cfg = pki
        .dir
        .path()
        .join(format!("switchyard-{client_auth}.toml"));
    std::fs::write(&cfg, config(pki)).expect("write config");
    let p = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
    RouterProcess::start(&[
        "--shards",
        "2",
        "--ws",
        "127.0.0.1:0",
        "--rs",
        "127.0.0.1:0",
        "--rss",
        "127.0.0.1:0",
        "--tls-cert",
        &p(&pki.server_cert),
        "--tls-key",
        &p(&pki.server_key),
        "--tls-client-ca",
        &p(&pki.ca),
        "--tls-client-auth",
        client_auth,
        "--ws-cookie",
        "--ws-cookie-name",
        "sytrack",
        "--ws-cookie-max-entries",
        "1000",
        "--config",
        &p(&cfg),
    ])
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn wamp_scram_pbkdf2_and_argon2id() {
    let pki = Pki::generate();
    let router = start(&pki, "optional");
    let rs = router.endpoint("rs").addr();

    // PBKDF2, password configured.
    let mut c = rs_plain(rs);
    let (extra, run) = scram_exchange(&mut c, "alice", "alice-pw", "AAAAAAAAAAAAAAAAAAAAAA==");
    assert_eq!(extra["kdf"].as_str(), Some("pbkdf2"));
    assert_eq!(extra["salt"].as_str(), Some(SCRAM_SALT_A));
    let w = expect_welcome(&mut c);
    assert_eq!(
        who(&w),
        ("alice".into(), "scrammer".into(), "wamp-scram".into())
    );
    let ax = w
        .details
        .authextra
        .as_ref()
        .and_then(|x| x.dict())
        .expect("authextra");
    assert_eq!(
        ax["verifier"].as_str(),
        Some(run.verifier.as_str()),
        "server signature"
    );

    // Replay: the same AUTHENTICATE on a new connection, after a HELLO with the same client
    // nonce, meets a new server nonce and fails.
    let mut c = rs_plain(rs);
    c.send(&hello(
        "secure",
        &["wamp-scram"],
        Some("alice"),
        Some(dict(&[("nonce", s("AAAAAAAAAAAAAAAAAAAAAA=="))])),
    ))
    .expect("HELLO");
    expect_challenge(&mut c, "wamp-scram");
    c.send(&run.authenticate).expect("replayed AUTHENTICATE");
    expect_abort(&mut c, AUTH_FAILED);

    // Argon2id, stored/server keys configured.
    let mut c = rs_plain(rs);
    let (extra, run) = scram_exchange(&mut c, "bob", "bob-pw", "YmJiYmJiYmJiYmJiYmJiYg==");
    assert_eq!(extra["kdf"].as_str(), Some("argon2id13"));
    assert_eq!(extra["memory"].as_u64(), Some(64));
    let w = expect_welcome(&mut c);
    assert_eq!(
        who(&w),
        ("bob".into(), "argonaut".into(), "wamp-scram".into())
    );
    let ax = w
        .details
        .authextra
        .as_ref()
        .and_then(|x| x.dict())
        .expect("authextra");
    assert_eq!(ax["verifier"].as_str(), Some(run.verifier.as_str()));

    // Wrong password.
    let mut c = rs_plain(rs);
    scram_exchange(&mut c, "bob", "not-bobs", "Y2NjY2NjY2NjY2NjY2NjYw==");
    expect_abort(&mut c, AUTH_FAILED);

    // Unknown authid: challenged like a real one, with a salt stable per authid, then fails.
    let mut salts = Vec::new();
    for _ in 0..2 {
        let mut c = rs_plain(rs);
        let (extra, _) = scram_exchange(&mut c, "mallory", "guess", "ZGRkZGRkZGRkZGRkZGRkZA==");
        salts.push(extra["salt"].as_str().map(str::to_owned));
        expect_abort(&mut c, AUTH_FAILED);
    }
    assert_eq!(salts[0], salts[1], "mock salt is stable");
    assert!(salts[0].is_some());

    // A channel binding the router does not support: not a method it can run.
    let mut c = rs_plain(rs);
    c.send(&hello(
        "secure",
        &["wamp-scram"],
        Some("alice"),
        Some(dict(&[
            ("nonce", s("ZWVlZQ==")),
            ("channel_binding", s("tls-unique")),
        ])),
    ))
    .expect("HELLO");
    expect_abort(&mut c, NO_METHOD);
}

fn cs_hello(binding: Option<&str>) -> Message {
    let pubkey = hex::encode(
        ed25519_dalek::SigningKey::from_bytes(&CS_SEED)
            .verifying_key()
            .to_bytes(),
    );
    let mut x = dict(&[("pubkey", s(&pubkey))]);
    if let Some(b) = binding {
        x.insert("channel_binding".into(), s(b));
    }
    hello("secure", &["cryptosign"], None, Some(x))
}

fn cs_sign(message: &[u8; 32]) -> String {
    use ed25519_dalek::Signer;
    let key = ed25519_dalek::SigningKey::from_bytes(&CS_SEED);
    let sig = key.sign(message);
    let mut out = sig.to_bytes().to_vec();
    out.extend_from_slice(message);
    hex::encode(out)
}

fn challenge_bytes(extra: &Dict) -> [u8; 32] {
    let mut c = [0u8; 32];
    hex::decode_to_slice(extra["challenge"].as_str().expect("challenge"), &mut c).expect("hex");
    c
}

#[test]
fn cryptosign_tls_exporter_channel_binding() {
    let pki = Pki::generate();
    let router = start(&pki, "optional");
    let rss = router.endpoint("rss").addr();

    // Bound: sign challenge XOR the RFC 9266 exporter value of this TLS connection.
    let stream = tls_connect(rss, &pki, None).expect("TLS");
    let mut exporter = [0u8; 32];
    stream
        .conn
        .export_keying_material(&mut exporter, b"EXPORTER-Channel-Binding", None)
        .expect("exporter");
    let mut c = Rs::open(stream).expect("RawSocket over TLS");
    c.send(&cs_hello(Some("tls-exporter"))).expect("HELLO");
    let extra = expect_challenge(&mut c, "cryptosign");
    assert_eq!(extra["channel_binding"].as_str(), Some("tls-exporter"));
    let mut m = challenge_bytes(&extra);
    m.iter_mut().zip(exporter).for_each(|(a, b)| *a ^= b);
    c.send(&authenticate(cs_sign(&m), Dict::new()))
        .expect("AUTHENTICATE");
    let w = expect_welcome(&mut c);
    assert_eq!(
        who(&w),
        ("signer".into(), "signer".into(), "cryptosign".into())
    );

    // Bound, but the client signs the bare challenge: refused.
    let mut c = Rs::open(tls_connect(rss, &pki, None).expect("TLS")).expect("RawSocket");
    c.send(&cs_hello(Some("tls-exporter"))).expect("HELLO");
    let extra = expect_challenge(&mut c, "cryptosign");
    c.send(&authenticate(
        cs_sign(&challenge_bytes(&extra)),
        Dict::new(),
    ))
    .expect("AUTHENTICATE");
    expect_abort(&mut c, AUTH_FAILED);

    // Unbound over TLS still works (no binding asked, none in the CHALLENGE).
    let mut c = Rs::open(tls_connect(rss, &pki, None).expect("TLS")).expect("RawSocket");
    c.send(&cs_hello(None)).expect("HELLO");
    let extra = expect_challenge(&mut c, "cryptosign");
    assert!(!extra.contains_key("channel_binding"));
    c.send(&authenticate(
        cs_sign(&challenge_bytes(&extra)),
        Dict::new(),
    ))
    .expect("AUTHENTICATE");
    expect_welcome(&mut c);

    // tls-exporter over plain TCP: there is no TLS channel to bind to.
    let mut c = rs_plain(router.endpoint("rs").addr());
    c.send(&cs_hello(Some("tls-exporter"))).expect("HELLO");
    expect_abort(&mut c, NO_METHOD);
}

#[test]
fn tls_client_certificates() {
    let pki = Pki::generate();
    let router = start(&pki, "optional");
    let rss = router.endpoint("rss").addr();
    let tls_hello = |authid: Option<&str>| hello("secure", &["tls"], authid, None);

    // The configured certificate: WELCOME without a CHALLENGE.
    let mut c = Rs::open(tls_connect(rss, &pki, Some(&pki.device)).expect("TLS")).expect("RS");
    c.send(&tls_hello(None)).expect("HELLO");
    let w = expect_welcome(&mut c);
    assert_eq!(who(&w), ("device7".into(), "device".into(), "tls".into()));

    // ... naming itself correctly, too.
    let mut c = Rs::open(tls_connect(rss, &pki, Some(&pki.device)).expect("TLS")).expect("RS");
    c.send(&tls_hello(Some("device7"))).expect("HELLO");
    expect_welcome(&mut c);

    // ... but not as someone else.
    let mut c = Rs::open(tls_connect(rss, &pki, Some(&pki.device)).expect("TLS")).expect("RS");
    c.send(&tls_hello(Some("joe"))).expect("HELLO");
    expect_abort(&mut c, NO_METHOD);

    // A valid certificate no principal has; no certificate at all (optional mode).
    for cert in [Some(&pki.unknown), None] {
        let mut c = Rs::open(tls_connect(rss, &pki, cert).expect("TLS")).expect("RS");
        c.send(&tls_hello(None)).expect("HELLO");
        expect_abort(&mut c, NO_METHOD);
    }

    // Over plain TCP there is no certificate.
    let mut c = rs_plain(router.endpoint("rs").addr());
    c.send(&tls_hello(None)).expect("HELLO");
    expect_abort(&mut c, NO_METHOD);

    // A certificate from another CA fails the TLS handshake.
    let refused = tls_connect(rss, &pki, Some(&pki.stranger)).and_then(Rs::open);
    assert!(refused.is_err(), "a stranger CA's certificate was accepted");
}

#[test]
fn tls_client_certificate_required() {
    let pki = Pki::generate();
    let router = start(&pki, "required");
    let rss = router.endpoint("rss").addr();
    let refused = tls_connect(rss, &pki, None).and_then(Rs::open);
    assert!(refused.is_err(), "no client certificate was accepted");
    let mut c = Rs::open(tls_connect(rss, &pki, Some(&pki.device)).expect("TLS")).expect("RS");
    c.send(&hello("secure", &["tls"], None, None))
        .expect("HELLO");
    let w = expect_welcome(&mut c);
    assert_eq!(who(&w).2, "tls");
}

fn set_cookie(head: &str) -> Option<String> {
    let v = header(head, "Set-Cookie")?;
    let pair = v.split(';').next()?;
    let (name, value) = pair.split_once('=')?;
    assert_eq!(
        name.trim(),
        "sytrack",
        "cookie name from --ws-cookie-name: {v}"
    );
    assert!(v.contains("HttpOnly") && v.contains("Max-Age="), "{v}");
    Some(value.trim().to_owned())
}

fn ws_send_recv(c: &mut WsClient, m: &Message) -> Message {
    c.send(m).expect("send");
    c.recv(REPLY_TIMEOUT).expect("reply")
}

#[test]
fn cookie_recognises_an_authenticated_client() {
    let pki = Pki::generate();
    let router = start(&pki, "optional");
    let ws = router.endpoint("ws");
    let (addr, path) = (ws.addr(), ws.path().to_owned());

    // First visit: a cookie is set; authenticate with a ticket.
    let (mut c, head) = WsClient::connect_with(addr, &path, Serializer::Json, &[]);
    let cookie = set_cookie(&head).expect("Set-Cookie on the first upgrade");
    match ws_send_recv(&mut c, &hello("secure", &["ticket"], Some("joe"), None)) {
        Message::Challenge(ch) => assert_eq!(ch.method, "ticket"),
        other => panic!("expected CHALLENGE, got {other:?}"),
    }
    match ws_send_recv(&mut c, &authenticate("joe-ticket".into(), Dict::new())) {
        Message::Welcome(w) => assert_eq!(who(&w).0, "joe"),
        other => panic!("expected WELCOME, got {other:?}"),
    }
    drop(c);

    // Later connection with the cookie: no new cookie, and authmethod cookie is joe.
    let hdr = format!("sytrack={cookie}");
    let (mut c, head) = WsClient::connect_with(addr, &path, Serializer::Json, &[("Cookie", &hdr)]);
    assert_eq!(set_cookie(&head), None, "a known cookie is kept: {}", head);
    match ws_send_recv(&mut c, &hello("secure", &["cookie"], None, None)) {
        Message::Welcome(w) => {
            assert_eq!(who(&w), ("joe".into(), "user".into(), "cookie".into()))
        }
        other => panic!("expected WELCOME, got {other:?}"),
    }

    // The cookie is bound to realm `secure` and to joe.
    let (mut c, _) = WsClient::connect_with(addr, &path, Serializer::Json, &[("Cookie", &hdr)]);
    match ws_send_recv(&mut c, &hello("secure", &["cookie"], Some("alice"), None)) {
        Message::Abort(a) => assert_eq!(a.reason.as_str(), NO_METHOD),
        other => panic!("expected ABORT, got {other:?}"),
    }

    // A forged cookie gets replaced and authenticates nobody.
    let (mut c, head) = WsClient::connect_with(
        addr,
        &path,
        Serializer::Json,
        &[("Cookie", "sytrack=forged")],
    );
    let fresh = set_cookie(&head).expect("a new cookie for an unknown one");
    assert_ne!(fresh, "forged");
    match ws_send_recv(&mut c, &hello("secure", &["cookie"], None, None)) {
        Message::Abort(a) => assert_eq!(a.reason.as_str(), NO_METHOD),
        other => panic!("expected ABORT, got {other:?}"),
    }

    // A cookie that never authenticated is no identity either.
    let hdr = format!("sytrack={fresh}");
    let (mut c, _) = WsClient::connect_with(addr, &path, Serializer::Json, &[("Cookie", &hdr)]);
    match ws_send_recv(&mut c, &hello("secure", &["cookie"], None, None)) {
        Message::Abort(a) => assert_eq!(a.reason.as_str(), NO_METHOD),
        other => panic!("expected ABORT, got {other:?}"),
    }
}

/// autobahn-python (tests/interop/auth_transport.py) with the methods it supports here: `tls`
/// over RawSocket-TLS with a client certificate, and `cookie` over WebSocket.
#[test]
fn autobahn_python_tls_and_cookie() {
    let python = common::interop_python("autobahn");
    let pki = Pki::generate();
    let router = start(&pki, "optional");
    let p = |p: &Path| p.to_str().expect("utf-8 path").to_owned();
    common::assert_script_ok(
        "auth_transport.py",
        std::process::Command::new(&python)
            .arg("auth_transport.py")
            .args(["--rss-url", &router.endpoint("rss").url])
            .args(["--ws-url", &router.endpoint("ws").url])
            .args(["--ca", &p(&pki.ca)])
            .args(["--cert", &p(&pki.device_cert)])
            .args(["--key", &p(&pki.device_key)])
            .args(["--timeout-s", "10"]),
        Duration::from_secs(90),
        "OK:",
    );
}
