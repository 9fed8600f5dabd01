//! The HTTP/1.1 upgrade handshake (RFC 6455 4), server side, plus the header grammar shared with
//! the client side (`client.rs`).
//!
//! Server flow: feed the received bytes to [`parse_request`] until it returns a request; the
//! caller then decides (path, subprotocol via [`UpgradeRequest::choose_subprotocol`], deflate via
//! [`negotiate_deflate`](super::deflate::negotiate_deflate), authentication from
//! [`UpgradeRequest::headers`] and cookies) and writes either [`accept_response`] or the
//! refusal of a [`HandshakeError`] ([`HandshakeError::response`]). Bytes after the consumed
//! count are the first WebSocket frames.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use sha1::{Digest, Sha1};

use super::deflate::{DeflateOffer, DeflateParams};

/// Largest request or response head we buffer; more is refused (431 on the server side).
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most header lines we accept in a head.
pub const MAX_HEADERS: usize = 64;
/// The GUID appended to the key before hashing (RFC 6455 1.3).
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Why a handshake failed. Server-side variants carry the HTTP refusal to send
/// ([`HandshakeError::response`]); client-side variants end the connection attempt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The head passed [`MAX_HEAD_BYTES`].
    #[error("HTTP head larger than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    /// More than [`MAX_HEADERS`] header lines.
    #[error("more than {MAX_HEADERS} headers")]
    TooManyHeaders,
    /// Not parseable as HTTP/1.x.
    #[error("malformed HTTP: {0}")]
    Malformed(httparse::Error),
    /// Request method other than GET.
    #[error("method {0} is not GET")]
    NotGet(String),
    /// HTTP version other than 1.1.
    #[error("HTTP version is not 1.1")]
    NotHttp11,
    /// A required header is missing or does not have the required value.
    #[error("missing or invalid {0} header")]
    InvalidHeader(&'static str),
    /// `Sec-WebSocket-Version` is missing or not 13: answered with 426 and the version we speak.
    #[error("unsupported Sec-WebSocket-Version")]
    UnsupportedVersion,
    /// Refusal chosen by the caller: the path serves no WebSocket endpoint (404).
    #[error("no WebSocket endpoint at this path")]
    NotFound,
    /// Refusal chosen by the caller: none of the offered subprotocols is supported (400).
    #[error("no offered subprotocol is supported")]
    NoCommonSubprotocol,
    /// A header name or value we were asked to write contains CR, LF or is otherwise unusable.
    #[error("header {0:?} cannot be written")]
    UnwritableHeader(String),
    /// Client: the server answered with another status than 101.
    #[error("server answered {0} instead of 101")]
    UnexpectedStatus(u16),
    /// Client: `Sec-WebSocket-Accept` is missing or does not match our key.
    #[error("Sec-WebSocket-Accept does not match the key")]
    AcceptMismatch,
    /// Client: the server picked a subprotocol we did not offer.
    #[error("server chose subprotocol {0:?}, which was not offered")]
    UnexpectedSubprotocol(String),
    /// Client: the extensions in the response are not what we offered.
    #[error("unacceptable Sec-WebSocket-Extensions: {0}")]
    UnexpectedExtensions(String),
}

impl HandshakeError {
    /// HTTP status of the refusal for a server-side error.
    pub fn status(&self) -> u16 {
        match self {
            HandshakeError::HeadTooLarge => 431,
            HandshakeError::UnsupportedVersion => 426,
            HandshakeError::NotFound => 404,
            HandshakeError::UnwritableHeader(_) => 500,
            _ => 400,
        }
    }

    /// The complete HTTP response refusing the upgrade (server side; for client-side errors
    /// this is a plain 400 that nobody should send).
    pub fn response(&self) -> Vec<u8> {
        let status = self.status();
        let body = self.to_string();
        match status {
            426 => build_error_response(status, &[("Sec-WebSocket-Version", "13")], &body),
            _ => build_error_response(status, &[], &body),
        }
    }
}

/// A valid WebSocket upgrade request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// Request path, without the query.
    pub path: String,
    /// The query after `?`, if any (undecoded).
    pub query: Option<String>,
    /// Offered subprotocols in the client's order, from every `Sec-WebSocket-Protocol` header.
    pub subprotocols: Vec<String>,
    /// The `Sec-WebSocket-Key` as sent (base64 of 16 bytes).
    pub key: String,
    /// Well-formed permessage-deflate offers in the client's order of preference.
    pub deflate_offers: Vec<DeflateOffer>,
    /// `Cookie` pairs in order (quotes around a value removed).
    pub cookies: Vec<(String, String)>,
    /// Every header line as received (name, raw value), for authentication and logging.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl UpgradeRequest {
    /// The first value of header `name` (case-insensitive), if present and UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
            .map(str::trim)
    }

    /// The first cookie called `name`.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Our choice of subprotocol: the first of `supported` (our order of preference) that the
    /// client offered. `None`: refuse with [`HandshakeError::NoCommonSubprotocol`] if a
    /// subprotocol is required.
    pub fn choose_subprotocol<'a>(&self, supported: &[&'a str]) -> Option<&'a str> {
        supported
            .iter()
            .copied()
            .find(|ours| self.subprotocols.iter().any(|p| p == ours))
    }
}

/// Parses and validates an upgrade request at the start of `buf`. `Ok(None)`: incomplete.
/// `Ok(Some((request, consumed)))`: `buf[consumed..]` is already WebSocket data.
pub fn parse_request(buf: &[u8]) -> Result<Option<(UpgradeRequest, usize)>, HandshakeError> {
    let window = buf.get(..MAX_HEAD_BYTES).unwrap_or(buf);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let consumed = match request.parse(window) {
        Ok(httparse::Status::Complete(consumed)) => consumed,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => {
            return Err(HandshakeError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HandshakeError::TooManyHeaders),
        Err(e) => return Err(HandshakeError::Malformed(e)),
    };
    let method = request.method.unwrap_or_default();
    if method != "GET" {
        return Err(HandshakeError::NotGet(method.to_owned()));
    }
    if request.version != Some(1) {
        return Err(HandshakeError::NotHttp11);
    }
    let headers: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|h| (h.name.to_owned(), h.value.to_vec()))
        .collect();
    check_upgrade_headers(&headers)?;
    if !has_token(&headers, "sec-websocket-version", "13") {
        return Err(HandshakeError::UnsupportedVersion);
    }
    let key = match values(&headers, "sec-websocket-key").collect::<Vec<_>>()[..] {
        [key] => std::str::from_utf8(key)
            .map(str::trim)
            .unwrap_or_default()
            .to_owned(),
        _ => return Err(HandshakeError::InvalidHeader("Sec-WebSocket-Key")),
    };
    if BASE64.decode(&key).ok().map(|raw| raw.len()) != Some(16) {
        return Err(HandshakeError::InvalidHeader("Sec-WebSocket-Key"));
    }
    let mut subprotocols = Vec::new();
    for value in values(&headers, "sec-websocket-protocol") {
        let value = std::str::from_utf8(value)
            .map_err(|_| HandshakeError::InvalidHeader("Sec-WebSocket-Protocol"))?;
        subprotocols.extend(
            value
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(String::from),
        );
    }
    let deflate_offers = values(&headers, "sec-websocket-extensions")
        .filter_map(|value| parse_extensions(std::str::from_utf8(value).ok()?))
        .flatten()
        .filter(|ext| ext.name.eq_ignore_ascii_case("permessage-deflate"))
        .filter_map(|ext| DeflateOffer::from_params(&ext.params))
        .collect();
    let cookies = values(&headers, "cookie")
        .filter_map(|value| std::str::from_utf8(value).ok())
        .flat_map(parse_cookies)
        .collect();
    let target = request.path.unwrap_or("/");
    let (path, query) = match target.split_once('?') {
        Some((path, query)) => (path.to_owned(), Some(query.to_owned())),
        None => (target.to_owned(), None),
    };
    let request = UpgradeRequest {
        path,
        query,
        subprotocols,
        key,
        deflate_offers,
        cookies,
        headers,
    };
    Ok(Some((request, consumed)))
}

/// `Upgrade: websocket` and `Connection: upgrade` (token lists, case-insensitive), common to
/// requests and responses.
pub(crate) fn check_upgrade_headers(headers: &[(String, Vec<u8>)]) -> Result<(), HandshakeError> {
    if !has_token(headers, "upgrade", "websocket") {
        return Err(HandshakeError::InvalidHeader("Upgrade"));
    }
    if !has_token(headers, "connection", "upgrade") {
        return Err(HandshakeError::InvalidHeader("Connection"));
    }
    Ok(())
}

/// Values of every header called `name` (case-insensitive).
pub(crate) fn values<'a>(
    headers: &'a [(String, Vec<u8>)],
    name: &'a str,
) -> impl Iterator<Item = &'a [u8]> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_slice())
}

/// Whether any header `name` holds `token` in its comma-separated list (case-insensitive).
pub(crate) fn has_token(headers: &[(String, Vec<u8>)], name: &str, token: &str) -> bool {
    values(headers, name).any(|value| {
        value
            .split(|&b| b == b',')
            .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// `name=value` pairs of a `Cookie` header; pairs without `=` or with an empty name are skipped.
fn parse_cookies(value: &str) -> impl Iterator<Item = (String, String)> + '_ {
    value.split(';').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        let name = name.trim();
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        (!name.is_empty()).then(|| (name.to_owned(), value.to_owned()))
    })
}

/// One extension of a `Sec-WebSocket-Extensions` list with its parameters (values unquoted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Extension {
    pub(crate) name: String,
    pub(crate) params: Vec<(String, Option<String>)>,
}

/// Parses an extension list (RFC 6455 9.1); `None` if malformed. Empty list elements are
/// skipped as RFC 7230 7 allows.
pub(crate) fn parse_extensions(value: &str) -> Option<Vec<Extension>> {
    let mut extensions = Vec::new();
    for item in split_outside_quotes(value, ',')? {
        if item.trim().is_empty() {
            continue;
        }
        let mut parts = split_outside_quotes(item, ';')?.into_iter();
        let name = parts.next()?.trim();
        if !is_token(name) {
            return None;
        }
        let mut params = Vec::new();
        for param in parts {
            let (key, value) = match param.split_once('=') {
                Some((key, value)) => (key.trim(), Some(unquote(value.trim())?)),
                None => (param.trim(), None),
            };
            if !is_token(key) || value.as_deref().is_some_and(|v| v.is_empty()) {
                return None;
            }
            params.push((key.to_owned(), value));
        }
        extensions.push(Extension {
            name: name.to_owned(),
            params,
        });
    }
    Some(extensions)
}

/// Splits on `sep` outside quoted strings; `None` on an unterminated quote.
fn split_outside_quotes(s: &str, sep: char) -> Option<Vec<&str>> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(&s[start..i]);
                start = i + c.len_utf8();
            }
            _ => {}
        }
    }
    if quoted {
        return None;
    }
    parts.push(&s[start..]);
    Some(parts)
}

/// A token, or a quoted string with its quotes and escapes removed.
fn unquote(value: &str) -> Option<String> {
    match value.strip_prefix('"') {
        None => is_token(value).then(|| value.to_owned()),
        Some(rest) => {
            let inner = rest.strip_suffix('"')?;
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                out.push(if c == '\\' { chars.next()? } else { c });
            }
            Some(out)
        }
    }
}

/// RFC 7230 `token`.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// `Sec-WebSocket-Accept` for a key: base64(SHA-1(key + GUID)) (RFC 6455 4.2.2).
pub fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(WS_GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

/// A header line we may write: a token name and a value without control characters (tab
/// allowed), so nothing can split the response.
pub(crate) fn check_writable(name: &str, value: &str) -> Result<(), HandshakeError> {
    if is_token(name) && !value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
        Ok(())
    } else {
        Err(HandshakeError::UnwritableHeader(name.to_owned()))
    }
}

/// The `101 Switching Protocols` response accepting request key `key`, with the chosen
/// subprotocol, the agreed deflate parameters and extra headers (e.g. `Set-Cookie`).
pub fn accept_response(
    key: &str,
    subprotocol: Option<&str>,
    deflate: Option<&DeflateParams>,
    extra_headers: &[(&str, &str)],
) -> Result<Vec<u8>, HandshakeError> {
    let mut out = String::with_capacity(256);
    out.push_str(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
    );
    out.push_str(&format!("Sec-WebSocket-Accept: {}\r\n", accept_key(key)));
    if let Some(protocol) = subprotocol {
        check_writable("Sec-WebSocket-Protocol", protocol)?;
        out.push_str(&format!("Sec-WebSocket-Protocol: {protocol}\r\n"));
    }
    if let Some(params) = deflate {
        out.push_str(&format!(
            "Sec-WebSocket-Extensions: {}\r\n",
            params.to_header_value()
        ));
    }
    for (name, value) in extra_headers {
        check_writable(name, value)?;
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    Ok(out.into_bytes())
}

/// A plain-text HTTP error response that refuses the upgrade and closes the connection.
/// Control characters in `reason` are replaced by spaces.
pub fn error_response(status: u16, reason: &str, body: &str) -> Vec<u8> {
    let reason: String = reason
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    error_head(status, &reason, &[], body)
}

fn build_error_response(status: u16, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let reason = match status {
        400 => "Bad Request",
        404 => "Not Found",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        _ => "Internal Server Error",
    };
    error_head(status, reason, headers, body)
}

fn error_head(status: u16, reason: &str, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The opening handshake of RFC 6455 1.3.
    const RFC_REQUEST: &str =
        "GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
        Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\nSec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    /// RFC_REQUEST with header `name` replaced by `line` (or removed if `line` is empty).
    fn with_header(name: &str, line: &str) -> String {
        let mut out = String::new();
        for l in RFC_REQUEST.split_inclusive("\r\n") {
            if l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
            {
                if !line.is_empty() {
                    out.push_str(line);
                    out.push_str("\r\n");
                }
            } else {
                out.push_str(l);
            }
        }
        out
    }

    fn parse(text: &str) -> Result<UpgradeRequest, HandshakeError> {
        parse_request(text.as_bytes()).map(|r| r.map(|(req, _)| req).expect("complete"))
    }

    #[test]
    fn rfc6455_accept_key() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn parses_rfc_request_and_reports_consumed_bytes() {
        let mut bytes = RFC_REQUEST.as_bytes().to_vec();
        bytes.extend_from_slice(&[0x81, 0x80, 1, 2, 3, 4]);
        let (request, used) = parse_request(&bytes).unwrap().unwrap();
        assert_eq!(used, RFC_REQUEST.len());
        assert_eq!(request.path, "/chat");
        assert_eq!(request.query, None);
        assert_eq!(request.key, "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(request.subprotocols, ["chat", "superchat"]);
        assert_eq!(request.header("ORIGIN"), Some("http://example.com"));
        assert_eq!(request.headers.len(), 7);
        assert!(request.deflate_offers.is_empty());
        for cut in 0..RFC_REQUEST.len() {
            assert_eq!(
                parse_request(&RFC_REQUEST.as_bytes()[..cut]),
                Ok(None),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn token_lists_are_case_insensitive() {
        let request = with_header("upgrade", "Upgrade: h2c, WebSocket");
        let request = request.replace("Connection: Upgrade", "connection: keep-alive, UPGRADE");
        assert!(parse(&request).is_ok());
    }

    #[test]
    fn rejects_invalid_requests() {
        let post = RFC_REQUEST.replacen("GET", "POST", 1);
        assert_eq!(parse(&post), Err(HandshakeError::NotGet("POST".into())));
        assert_eq!(
            parse(&RFC_REQUEST.replacen("HTTP/1.1", "HTTP/1.0", 1)),
            Err(HandshakeError::NotHttp11)
        );
        assert_eq!(
            parse(&with_header("upgrade", "")),
            Err(HandshakeError::InvalidHeader("Upgrade"))
        );
        assert_eq!(
            parse(&with_header("upgrade", "Upgrade: h2c")),
            Err(HandshakeError::InvalidHeader("Upgrade"))
        );
        assert_eq!(
            parse(&with_header("connection", "Connection: keep-alive")),
            Err(HandshakeError::InvalidHeader("Connection"))
        );
        let key = HandshakeError::InvalidHeader("Sec-WebSocket-Key");
        assert_eq!(
            parse(&with_header("sec-websocket-key", "")),
            Err(key.clone())
        );
        assert_eq!(
            parse(&with_header(
                "sec-websocket-key",
                "Sec-WebSocket-Key: c2hvcnQ="
            )),
            Err(key.clone())
        );
        assert_eq!(
            parse(&with_header("sec-websocket-key", "Sec-WebSocket-Key: !!!")),
            Err(key)
        );
        assert!(matches!(
            parse_request(b"GET / HTTP/1.1\r\nBad Header\r\n\r\n"),
            Err(HandshakeError::Malformed(_))
        ));
        for error in [
            HandshakeError::NotGet("POST".into()),
            HandshakeError::InvalidHeader("Upgrade"),
        ] {
            assert!(error
                .response()
                .starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
        }
    }

    #[test]
    fn wrong_version_gets_426_with_our_version() {
        for line in ["Sec-WebSocket-Version: 8", ""] {
            let error = parse(&with_header("sec-websocket-version", line));
            assert_eq!(error, Err(HandshakeError::UnsupportedVersion));
        }
        let response = String::from_utf8(HandshakeError::UnsupportedVersion.response()).unwrap();
        assert!(
            response.starts_with("HTTP/1.1 426 Upgrade Required\r\n"),
            "{response}"
        );
        assert!(
            response.contains("\r\nSec-WebSocket-Version: 13\r\n"),
            "{response}"
        );
    }

    #[test]
    fn head_size_and_header_count_are_capped() {
        let big = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD_BYTES));
        assert_eq!(
            parse_request(big.as_bytes()),
            Err(HandshakeError::HeadTooLarge)
        );
        assert_eq!(HandshakeError::HeadTooLarge.status(), 431);
        let mut many = String::from("GET / HTTP/1.1\r\n");
        for i in 0..=MAX_HEADERS {
            many.push_str(&format!("X-{i}: v\r\n"));
        }
        assert_eq!(
            parse_request(many.as_bytes()),
            Err(HandshakeError::TooManyHeaders)
        );
    }

    #[test]
    fn subprotocols_from_repeated_headers_and_choice_by_our_preference() {
        let request = with_header(
            "sec-websocket-protocol",
            "Sec-WebSocket-Protocol: wamp.2.json",
        )
        .replace(
            "Origin:",
            "Sec-WebSocket-Protocol: wamp.2.msgpack , ,wamp.2.cbor\r\nOrigin:",
        );
        let request = parse(&request).unwrap();
        assert_eq!(
            request.subprotocols,
            ["wamp.2.msgpack", "wamp.2.cbor", "wamp.2.json"]
        );
        assert_eq!(
            request.choose_subprotocol(&["wamp.2.json", "wamp.2.msgpack"]),
            Some("wamp.2.json")
        );
        assert_eq!(request.choose_subprotocol(&["mqtt"]), None);
        let refusal = HandshakeError::NoCommonSubprotocol.response();
        assert!(refusal.starts_with(b"HTTP/1.1 400 Bad Request\r\n"));
        assert!(HandshakeError::NotFound
            .response()
            .starts_with(b"HTTP/1.1 404 Not Found\r\n"));
    }

    #[test]
    fn deflate_offers_and_cookies() {
        let request = with_header(
            "sec-websocket-protocol",
            "Sec-WebSocket-Extensions: foo; bar=\"a,b\", permessage-deflate; \
             server_max_window_bits=\"10\"; client_max_window_bits\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; bogus, permessage-deflate;\
             client_no_context_takeover; client_max_window_bits=9\r\n\
             Cookie: cbtid=abc; theme=\"dark\"; flag; =x\r\nCookie: second=2",
        );
        let request = parse(&request).unwrap();
        assert_eq!(
            request.deflate_offers,
            [
                DeflateOffer {
                    server_max_window_bits: Some(10),
                    client_max_window_bits: Some(None),
                    ..Default::default()
                },
                DeflateOffer {
                    client_no_context_takeover: true,
                    client_max_window_bits: Some(Some(9)),
                    ..Default::default()
                },
            ]
        );
        assert_eq!(
            request.cookies,
            [
                ("cbtid".into(), "abc".into()),
                ("theme".into(), "dark".into()),
                ("second".into(), "2".into())
            ]
        );
        assert_eq!(request.cookie("theme"), Some("dark"));
        assert!(request.subprotocols.is_empty());
    }

    #[test]
    fn extension_list_grammar() {
        let parsed = parse_extensions("a; x=\"q\\\"uo;ted\", b,, c ; y = 1").unwrap();
        assert_eq!(parsed.len(), 3);
        assert_eq!(
            parsed[0].params,
            [("x".to_string(), Some("q\"uo;ted".to_string()))]
        );
        assert_eq!(parsed[2].params, [("y".to_string(), Some("1".to_string()))]);
        for bad in ["a; x=\"open", "a b", "a; x=", "; x", "a; x=y z"] {
            assert_eq!(parse_extensions(bad), None, "{bad}");
        }
    }

    #[test]
    fn builds_accept_response() {
        let params = DeflateParams {
            server_no_context_takeover: true,
            ..Default::default()
        };
        let response = accept_response(
            "dGhlIHNhbXBsZSBub25jZQ==",
            Some("chat"),
            Some(&params),
            &[("Set-Cookie", "cbtid=1; HttpOnly")],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(response).unwrap(),
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\
             Set-Cookie: cbtid=1; HttpOnly\r\n\r\n"
        );
        let split = accept_response("k", None, None, &[("Set-Cookie", "a\r\nX: y")]);
        assert_eq!(
            split,
            Err(HandshakeError::UnwritableHeader("Set-Cookie".into()))
        );
        assert!(accept_response("k", Some("a\nb"), None, &[]).is_err());
        assert!(accept_response("k", None, None, &[("Bad Name", "v")]).is_err());
    }

    #[test]
    fn builds_error_response() {
        let response =
            String::from_utf8(error_response(404, "Not\r\nFound", "no such path")).unwrap();
        assert_eq!(
            response,
            "HTTP/1.1 404 Not  Found\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 12\r\nConnection: close\r\n\r\nno such path"
        );
    }

    #[test]
    fn random_requests_never_panic() {
        use rand::{rngs::StdRng, Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(6455);
        for _ in 0..2000 {
            let mut bytes = RFC_REQUEST.as_bytes().to_vec();
            for _ in 0..rng.gen_range(1..6) {
                let at = rng.gen_range(0..bytes.len());
                bytes[at] = rng.gen();
            }
            let _ = parse_request(&bytes);
        }
    }
}
