//! TLS client certificate authentication (`tls`): the client's certificate, verified by the
//! TLS layer against `--tls-client-ca`, names the principal by its SHA-256 fingerprint
//! (`cert_fingerprint`). No CHALLENGE: WELCOME (or the next offered method) follows HELLO.
//!
//! A HELLO `authid` must be the principal's; a certificate no principal has, or no
//! certificate, makes the method not apply.

use super::{AuthMethod, Authenticator, Channel, Identity};
use crate::codec::options::HelloDetails;
use crate::config::ConfigError;
use std::path::Path;
use std::sync::Arc;

/// Parses a SHA-256 fingerprint: 64 hex digits, optionally `:`-separated pairs (as
/// `openssl x509 -fingerprint -sha256` prints it), any case.
pub fn parse_fingerprint(s: &str) -> Result<[u8; 32], String> {
    let digits: String = s.chars().filter(|c| *c != ':').collect();
    let mut out = [0u8; 32];
    hex::decode_to_slice(&digits, &mut out)
        .map_err(|_| "must be a SHA-256 fingerprint (64 hex digits, `:` allowed)".to_owned())?;
    Ok(out)
}

pub(super) fn identify(
    auth: &Authenticator,
    hello: &HelloDetails,
    channel: &Channel,
) -> Option<Identity> {
    let cert = channel.peer_cert.as_ref()?;
    let &i = auth.by_cert.get(&cert.sha256)?;
    let e = auth.entries.get(i)?;
    if hello.authid.as_deref().is_some_and(|a| a != e.authid) {
        return None;
    }
    Some(Identity {
        authid: e.authid.clone(),
        authrole: e.authrole.clone(),
        method: AuthMethod::Tls,
        authextra: None,
    })
}

/// Loads the server certificate chain and key like `config::load_tls`, and requests client
/// certificates that must chain to a CA in `ca` (PEM); `required`: a client without one fails
/// the TLS handshake, else it may connect but cannot use authmethod `tls`.
pub fn load_tls_client_auth(
    cert: &Path,
    key: &Path,
    ca: &Path,
    required: bool,
) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    let read = |p: &Path| {
        std::fs::read(p).map_err(|source| ConfigError::Read {
            path: p.to_owned(),
            source,
        })
    };
    let tls_err =
        |p: &Path, e: &dyn std::fmt::Display| ConfigError::Tls(format!("{}: {e}", p.display()));
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let ca_pem = read(ca)?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(cert, &e))?;
    if certs.is_empty() {
        return Err(tls_err(cert, &"no certificate found"));
    }
    let private = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .map_err(|e| tls_err(key, &e))?
        .ok_or_else(|| tls_err(key, &"no private key found"))?;
    let mut roots = rustls::RootCertStore::empty();
    let mut n = 0;
    for c in rustls_pemfile::certs(&mut ca_pem.as_slice()) {
        let c = c.map_err(|e| tls_err(ca, &e))?;
        roots.add(c).map_err(|e| tls_err(ca, &e))?;
        n += 1;
    }
    if n == 0 {
        return Err(tls_err(ca, &"no CA certificate found"));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    );
    let builder = if required {
        builder
    } else {
        builder.allow_unauthenticated()
    };
    let verifier = builder.build().map_err(|e| tls_err(ca, &e))?;
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, private)
        .map_err(|e| ConfigError::Tls(e.to_string()))?;
    Ok(Arc::new(cfg))
}
