//! What the transport under a session tells authentication: the TLS channel binding value,
//! the client certificate, the WebSocket cookie. Built by the connection code once the
//! transport handshake is done, and handed to the session.

use super::sha256;

/// RFC 9266 exporter label for the `tls-exporter` channel binding.
pub const TLS_EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

/// A verified TLS client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerCert {
    /// SHA-256 of the end-entity certificate (DER).
    pub sha256: [u8; 32],
}

/// The transport facts authentication may use. `Default`: plain TCP, no cookie.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Channel {
    /// `tls-exporter` channel binding value (RFC 9266: 32 bytes exported with the label
    /// `EXPORTER-Channel-Binding` and no context); `None` without TLS.
    pub tls_exporter: Option<[u8; 32]>,
    /// The client certificate, if the client presented one that verified against
    /// `--tls-client-ca`.
    pub peer_cert: Option<PeerCert>,
    /// The value of the router's tracking cookie on this WebSocket connection (the one the
    /// client sent, if valid, else the one the router just set); `None` when cookie tracking
    /// is off or the transport is not WebSocket.
    pub cookie: Option<String>,
}

impl Channel {
    /// The facts of an established rustls server connection.
    pub fn from_tls(conn: &rustls::ServerConnection) -> Channel {
        let mut exporter = [0u8; 32];
        let tls_exporter = conn
            .export_keying_material(&mut exporter, TLS_EXPORTER_LABEL, None)
            .is_ok()
            .then_some(exporter);
        let peer_cert = conn
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| PeerCert {
                sha256: sha256(c.as_ref()),
            });
        Channel {
            tls_exporter,
            peer_cert,
            cookie: None,
        }
    }
}
