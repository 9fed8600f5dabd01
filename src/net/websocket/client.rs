//! The upgrade handshake, client side (RFC 6455 4.1).
//!
//! [`ClientHandshake::new`] builds the GET request (random key) and remembers what it offered;
//! [`ClientHandshake::parse_response`] is then fed the received bytes until it returns the
//! validated outcome. Bytes after the consumed count are the server's first frames.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;

use super::deflate::{DeflateConfig, DeflateParams};
use super::handshake::{
    accept_key, check_upgrade_headers, check_writable, parse_extensions, values, HandshakeError,
    MAX_HEADERS, MAX_HEAD_BYTES,
};

/// What a client asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientConfig {
    /// `Host` header value (host, or host:port).
    pub host: String,
    /// Request target, e.g. `/ws` or `/ws?ticket=x`.
    pub path: String,
    /// Subprotocols to offer, in our order of preference (e.g. `wamp.2.msgpack`).
    pub subprotocols: Vec<String>,
    /// permessage-deflate offer, if any (`enabled: false` offers nothing).
    pub deflate: Option<DeflateConfig>,
    /// Extra request headers, e.g. `Cookie` or `Authorization`.
    pub extra_headers: Vec<(String, String)>,
}

/// A handshake in progress: what we offered, to check the answer against.
#[derive(Debug, Clone)]
pub struct ClientHandshake {
    expected_accept: String,
    subprotocols: Vec<String>,
    offered_deflate: bool,
}

/// A successful upgrade, as seen by the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHandshakeResult {
    /// The subprotocol the server chose (always one we offered), if any.
    pub subprotocol: Option<String>,
    /// The deflate parameters to build our `Deflater`/`Inflater` with, if accepted.
    pub deflate: Option<DeflateParams>,
    /// Every response header (name, raw value), e.g. for `Set-Cookie`.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl ClientHandshake {
    /// Starts a handshake with a random key; returns it and the request bytes to send.
    pub fn new(config: &ClientConfig) -> Result<(Self, Vec<u8>), HandshakeError> {
        Self::with_key(config, rand::random())
    }

    /// Same as [`ClientHandshake::new`] with a given key (tests, reproducible runs).
    pub fn with_key(
        config: &ClientConfig,
        key: [u8; 16],
    ) -> Result<(Self, Vec<u8>), HandshakeError> {
        let key = BASE64.encode(key);
        check_writable("Host", &config.host)?;
        if config.path.is_empty()
            || config
                .path
                .bytes()
                .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
        {
            return Err(HandshakeError::UnwritableHeader("request path".into()));
        }
        let mut out = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n",
            config.path, config.host
        );
        if !config.subprotocols.is_empty() {
            let list = config.subprotocols.join(", ");
            check_writable("Sec-WebSocket-Protocol", &list)?;
            out.push_str(&format!("Sec-WebSocket-Protocol: {list}\r\n"));
        }
        let deflate = config.deflate.as_ref().filter(|d| d.enabled);
        if let Some(deflate) = deflate {
            out.push_str(&format!(
                "Sec-WebSocket-Extensions: {}\r\n",
                deflate.offer_header_value()
            ));
        }
        for (name, value) in &config.extra_headers {
            check_writable(name, value)?;
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        out.push_str("\r\n");
        let handshake = ClientHandshake {
            expected_accept: accept_key(&key),
            subprotocols: config.subprotocols.clone(),
            offered_deflate: deflate.is_some(),
        };
        Ok((handshake, out.into_bytes()))
    }

    /// Parses and validates the server's response at the start of `buf`. `Ok(None)`:
    /// incomplete. Fails on any status but 101, a wrong accept key, a subprotocol we did not
    /// offer, or extensions that do not answer our offer (RFC 6455 4.1).
    pub fn parse_response(
        &self,
        buf: &[u8],
    ) -> Result<Option<(ClientHandshakeResult, usize)>, HandshakeError> {
        let window = buf.get(..MAX_HEAD_BYTES).unwrap_or(buf);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let consumed = match response.parse(window) {
            Ok(httparse::Status::Complete(consumed)) => consumed,
            Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => {
                return Err(HandshakeError::HeadTooLarge)
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooManyHeaders),
            Err(e) => return Err(HandshakeError::Malformed(e)),
        };
        let status = response.code.unwrap_or_default();
        if status != 101 {
            return Err(HandshakeError::UnexpectedStatus(status));
        }
        if response.version != Some(1) {
            return Err(HandshakeError::NotHttp11);
        }
        let headers: Vec<(String, Vec<u8>)> = response
            .headers
            .iter()
            .map(|h| (h.name.to_owned(), h.value.to_vec()))
            .collect();
        check_upgrade_headers(&headers)?;
        match values(&headers, "sec-websocket-accept").collect::<Vec<_>>()[..] {
            [accept] if accept.trim_ascii() == self.expected_accept.as_bytes() => {}
            _ => return Err(HandshakeError::AcceptMismatch),
        }
        let subprotocol = match values(&headers, "sec-websocket-protocol").collect::<Vec<_>>()[..] {
            [] => None,
            [value] => {
                let chosen = String::from_utf8_lossy(value).trim().to_owned();
                if !self.subprotocols.contains(&chosen) {
                    return Err(HandshakeError::UnexpectedSubprotocol(chosen));
                }
                Some(chosen)
            }
            _ => return Err(HandshakeError::UnexpectedSubprotocol("several".into())),
        };
        let deflate = self.check_extensions(&headers)?;
        Ok(Some((
            ClientHandshakeResult {
                subprotocol,
                deflate,
                headers,
            },
            consumed,
        )))
    }

    /// The response may only accept our single permessage-deflate offer.
    fn check_extensions(
        &self,
        headers: &[(String, Vec<u8>)],
    ) -> Result<Option<DeflateParams>, HandshakeError> {
        let bad = |why: &str| HandshakeError::UnexpectedExtensions(why.to_owned());
        let mut extensions = Vec::new();
        for value in values(headers, "sec-websocket-extensions") {
            let value = std::str::from_utf8(value).map_err(|_| bad("not UTF-8"))?;
            extensions.extend(parse_extensions(value).ok_or_else(|| bad("malformed"))?);
        }
        match &extensions[..] {
            [] => Ok(None),
            [ext]
                if self.offered_deflate && ext.name.eq_ignore_ascii_case("permessage-deflate") =>
            {
                DeflateParams::from_response(&ext.params)
                    .map(Some)
                    .map_err(|why| bad(&why))
            }
            [_] => Err(bad("extension not offered")),
            _ => Err(bad("more than one extension")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::websocket::deflate::negotiate_deflate;
    use crate::net::websocket::handshake::{accept_response, parse_request};

    fn config() -> ClientConfig {
        ClientConfig {
            host: "example.com:8080".into(),
            path: "/ws?ticket=abc".into(),
            subprotocols: vec!["wamp.2.msgpack".into(), "wamp.2.json".into()],
            deflate: Some(DeflateConfig {
                client_no_context_takeover: true,
                ..Default::default()
            }),
            extra_headers: vec![("Cookie".into(), "cbtid=xyz".into())],
        }
    }

    fn response(lines: &[&str]) -> Vec<u8> {
        let mut text = String::from("HTTP/1.1 101 Switching Protocols\r\n");
        for line in lines {
            text.push_str(line);
            text.push_str("\r\n");
        }
        text.push_str("\r\n");
        text.into_bytes()
    }

    #[test]
    fn request_is_accepted_by_our_server_and_answer_by_our_client() {
        let (client, request) = ClientHandshake::with_key(&config(), [7; 16]).unwrap();
        let (upgrade, used) = parse_request(&request).unwrap().unwrap();
        assert_eq!(used, request.len());
        assert_eq!(upgrade.path, "/ws");
        assert_eq!(upgrade.query.as_deref(), Some("ticket=abc"));
        assert_eq!(upgrade.subprotocols, ["wamp.2.msgpack", "wamp.2.json"]);
        assert_eq!(upgrade.cookie("cbtid"), Some("xyz"));
        assert_eq!(upgrade.header("host"), Some("example.com:8080"));
        let agreed = negotiate_deflate(&upgrade.deflate_offers, &DeflateConfig::default());
        assert_eq!(agreed.map(|p| p.client_no_context_takeover), Some(true));
        let protocol = upgrade.choose_subprotocol(&["wamp.2.json", "wamp.2.cbor"]);
        let answer = accept_response(
            &upgrade.key,
            protocol,
            agreed.as_ref(),
            &[("Set-Cookie", "a=b")],
        )
        .unwrap();
        let mut bytes = answer.clone();
        bytes.extend_from_slice(&[0x81, 0x00]);
        let (result, used) = client.parse_response(&bytes).unwrap().unwrap();
        assert_eq!(used, answer.len());
        assert_eq!(result.subprotocol.as_deref(), Some("wamp.2.json"));
        assert_eq!(result.deflate, agreed);
        for cut in 0..answer.len() {
            assert_eq!(
                client.parse_response(&answer[..cut]),
                Ok(None),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn random_keys_differ_and_are_16_bytes() {
        let (_, a) = ClientHandshake::new(&config()).unwrap();
        let (_, b) = ClientHandshake::new(&config()).unwrap();
        let (ra, _) = parse_request(&a).unwrap().unwrap();
        let (rb, _) = parse_request(&b).unwrap().unwrap();
        assert_ne!(ra.key, rb.key);
    }

    #[test]
    fn bad_responses_are_rejected() {
        let mut plain = config();
        plain.deflate = None;
        let (client, request) = ClientHandshake::with_key(&plain, [1; 16]).unwrap();
        let (upgrade, _) = parse_request(&request).unwrap().unwrap();
        let accept = format!("Sec-WebSocket-Accept: {}", accept_key(&upgrade.key));
        let base = ["Upgrade: websocket", "Connection: Upgrade", accept.as_str()];
        let with = |extra: &[&str]| {
            let mut lines = base.to_vec();
            lines.extend_from_slice(extra);
            client.parse_response(&response(&lines))
        };
        assert!(matches!(with(&[]), Ok(Some(_))));
        let forbidden = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(
            client.parse_response(forbidden),
            Err(HandshakeError::UnexpectedStatus(403))
        );
        let wrong_accept = response(&[
            "Upgrade: websocket",
            "Connection: Upgrade",
            "Sec-WebSocket-Accept: x",
        ]);
        assert_eq!(
            client.parse_response(&wrong_accept),
            Err(HandshakeError::AcceptMismatch)
        );
        let no_upgrade = response(&["Connection: Upgrade", accept.as_str()]);
        assert_eq!(
            client.parse_response(&no_upgrade),
            Err(HandshakeError::InvalidHeader("Upgrade"))
        );
        assert_eq!(
            with(&["Sec-WebSocket-Protocol: chat"]),
            Err(HandshakeError::UnexpectedSubprotocol("chat".into()))
        );
        assert!(matches!(
            with(&["Sec-WebSocket-Extensions: permessage-deflate"]),
            Err(HandshakeError::UnexpectedExtensions(_))
        ));
    }

    #[test]
    fn deflate_answers_are_checked_against_our_offer() {
        let (client, request) = ClientHandshake::with_key(&config(), [2; 16]).unwrap();
        let (upgrade, _) = parse_request(&request).unwrap().unwrap();
        let accept = format!("Sec-WebSocket-Accept: {}", accept_key(&upgrade.key));
        let with = |ext: &str| {
            let header = format!("Sec-WebSocket-Extensions: {ext}");
            let lines = [
                "Upgrade: websocket",
                "Connection: Upgrade",
                accept.as_str(),
                header.as_str(),
            ];
            client
                .parse_response(&response(&lines))
                .map(|r| r.and_then(|(res, _)| res.deflate))
        };
        assert_eq!(
            with("permessage-deflate; server_max_window_bits=10; server_no_context_takeover"),
            Ok(Some(DeflateParams {
                server_no_context_takeover: true,
                server_max_window_bits: Some(10),
                ..Default::default()
            }))
        );
        for bad in [
            "permessage-deflate; client_max_window_bits=10",
            "permessage-deflate; foo",
            "permessage-deflate, permessage-deflate",
            "x-webkit-deflate-frame",
            "permessage-deflate; server_max_window_bits=\"7\"",
        ] {
            assert!(
                matches!(with(bad), Err(HandshakeError::UnexpectedExtensions(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn unwritable_request_headers_are_refused() {
        let mut bad = config();
        bad.extra_headers = vec![("Cookie".into(), "a=b\r\nX-Evil: 1".into())];
        assert!(ClientHandshake::new(&bad).is_err());
        let mut bad = config();
        bad.path = "/ws HTTP/1.0".into();
        assert!(ClientHandshake::new(&bad).is_err());
    }
}
