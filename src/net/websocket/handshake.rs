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
        self.cookies.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Our choice of subprotocol: the first of `supported` (our order of preference) that the
    /// client offered. `None`: refuse with [`HandshakeError::NoCommonSubprotocol`] if a
    /// subprotocol is required.
    pub fn choose_subprotocol<'a>(&self, supported: &[&'a str]) -> Option<&'a str> {
        supported.iter().copied().find(|ours| self.subprotocols.iter().any(|p| p == ours))
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
    let headers: Vec<(String, Vec<u8>)> =
        request.headers.iter().map(|h| (h.name.to_owned(), h.value.to_vec())).collect();
    check_upgrade_headers(&headers)?;
    if !has_token(&headers, "sec-websocket-version", "13") {
        return Err(HandshakeError::UnsupportedVersion);
    }
    let key = match values(&headers, "sec-websocket-key").collect::<Vec<_>>()[..] {
        [key] => std::str::from_utf8(key).map(str::trim).unwrap_or_default().to_owned(),
        _ => return Err(HandshakeError::InvalidHeader("Sec-WebSocket-Key")),
    };
    if BASE64.decode(&key).ok().map(|raw| raw.len()) != Some(16) {
        return Err(HandshakeError::InvalidHeader("Sec-WebSocket-Key"));
    }
    let mut subprotocols = Vec::new();
    for value in values(&headers, "sec-websocket-protocol") {
        let value = std::str::from_utf8(value)
            .map_err(|_| HandshakeError::InvalidHeader("Sec-WebSocket-Protocol"))?;
        subprotocols.extend(value.split(',').map(str::trim).filter(|p| !p.is_empty()).map(String::from));
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
    let request = UpgradeRequest { path, query, subprotocols, key, deflate_offers, cookies, headers };
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
    headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_slice())
}

/// Whether any header `name` holds `token` in its comma-separated list (case-insensitive).
pub(crate) fn has_token(headers: &[(String, Vec<u8>)], name: &str, token: &str) -> bool {
    values(headers, name).any(|value| {
        value.split(|&b| b == b',').any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// `name=value` pairs of a `Cookie` header; pairs without `=` or with an empty name are skipped.
fn parse_cookies(value: &str) -> impl Iterator<Item = (String, String)> + '_ {
    value.split(';').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        let name = name.trim();
        let value = value.trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
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
        extensions.push(Extension { name: name.to_owned(), params });
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
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
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
    out.push_str("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n");
    out.push_str(&format!("Sec-WebSocket-Accept: {}\r\n", accept_key(key)));
    if let Some(protocol) = subprotocol {
        check_writable("Sec-WebSocket-Protocol", protocol)?;
        out.push_str(&format!("Sec-WebSocket-Protocol: {protocol}\r\n"));
    }
    if let Some(params) = deflate {
        out.push_str(&format!("Sec-WebSocket-Extensions: {}\r\n", params.to_header_value()));
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
    let reason: String = reason.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
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

