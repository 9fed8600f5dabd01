//! The HTTP long-poll transport's wire rules (sans-IO): which requests belong to it, their
//! parsing, the `/open` exchange, and the responses. The IO, the transports registry and the
//! session glue are in `shard::longpoll`.
//!
//! Under a base path (`config::LongPollOptions::path`, default `/lp`) on every WebSocket listener, as the spec
//! (`transport_http_longpoll.md`) lays out:
//! - `POST <base>/open` with `{"protocols": [...]}`: the router picks the first protocol of the
//!   client's list it speaks and answers `{"protocol": ..., "transport": <id>}`; the id is 128
//!   random bits, so it cannot be guessed.
//! - `POST <base>/<id>/send`: the body is one WAMP message (a batch in the `.batched`
//!   protocols); answered `204 No Content`.
//! - `POST <base>/<id>/receive`: answered with the next message (`200`; every pending one in a
//!   batch for the `.batched` protocols), or `204` with no body when none came within the
//!   request timeout.
//! - `POST <base>/<id>/close`: ends the transport; `204`.
//!
//! The spec says `202 ("no content")` for send and close; autobahn-js's client (the one
//! client there is) treats anything but 200 and 204 as a failure, and Crossbar answers 204,
//! so 204 it is. A `?x=...` query (cache buster) is ignored. Every response carries CORS
//! headers echoing the request's `Origin` (browsers are the users of this transport), and
//! `OPTIONS` preflights are answered.

use crate::codec::Serializer;

/// Largest request head accepted.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Largest `/open` body accepted (a JSON list of protocol names).
pub const MAX_OPEN_BODY: usize = 4096;
const MAX_HEADERS: usize = 64;

/// What a request head at the start of a buffer is, for the listener deciding between a
/// WebSocket upgrade and this transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peek {
    /// More bytes are needed.
    Partial,
    /// A request under the long-poll base path that is not a `GET` (upgrades are `GET`).
    LongPoll,
    /// Anything else: left to the WebSocket handshake (which refuses what it must).
    Other,
}

/// Classifies the request head at the start of `buf` (see [`Peek`]).
pub fn peek(buf: &[u8], base: &str) -> Peek {
    let window = buf.get(..MAX_HEAD_BYTES).unwrap_or(buf);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(window) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD_BYTES => {
            // The method and path may already be known: a GET is never ours.
            if req.method.is_some_and(|m| m == "GET") {
                return Peek::Other;
            }
            return Peek::Partial;
        }
        _ => return Peek::Other,
    }
    let ours = req.method.is_some_and(|m| m != "GET")
        && req.path.is_some_and(|p| under_base(strip_query(p), base));
    if ours {
        Peek::LongPoll
    } else {
        Peek::Other
    }
}

fn strip_query(target: &str) -> &str {
    target.split_once('?').map_or(target, |(p, _)| p)
}

fn under_base(path: &str, base: &str) -> bool {
    let base = base.trim_end_matches('/');
    path == base
        || path
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The endpoint a request is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Open,
    Send(String),
    Receive(String),
    Close(String),
    /// Under the base path but no endpoint of this transport.
    Unknown,
}

/// The endpoint `path` (query stripped or not) names under `base`.
pub fn route(path: &str, base: &str) -> Route {
    let path = strip_query(path);
    let base = base.trim_end_matches('/');
    let Some(rest) = path.strip_prefix(base).and_then(|r| r.strip_prefix('/')) else {
        return Route::Unknown;
    };
    if rest == "open" {
        return Route::Open;
    }
    let Some((id, action)) = rest.split_once('/') else {
        return Route::Unknown;
    };
    if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Route::Unknown;
    }
    let id = id.to_owned();
    match action {
        "send" => Route::Send(id),
        "receive" => Route::Receive(id),
        "close" => Route::Close(id),
        _ => Route::Unknown,
    }
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub route: Route,
    /// The body's length (`Content-Length`, 0 when absent).
    pub content_length: usize,
    /// Whether the connection stays open after the response (HTTP/1.1 unless `Connection:
    /// close`; HTTP/1.0 only with `Connection: keep-alive`).
    pub keep_alive: bool,
    /// The `Origin` header, echoed in the CORS headers.
    pub origin: Option<String>,
}

/// A request this transport cannot take, answered with `status` and the connection closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    #[error("request head larger than {MAX_HEAD_BYTES} bytes")]
    HeadTooLarge,
    #[error("malformed HTTP request: {0}")]
    Malformed(String),
    #[error("chunked request bodies are not supported; send Content-Length")]
    Chunked,
    #[error("invalid Content-Length")]
    BadContentLength,
}

impl HttpError {
    /// The HTTP status answering it.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::HeadTooLarge => 431,
            HttpError::Chunked => 411,
            HttpError::Malformed(_) | HttpError::BadContentLength => 400,
        }
    }
}

/// Parses the request head at the start of `buf`: `Ok(None)` when incomplete,
/// `Ok(Some((request, head_len)))` with the body starting at `buf[head_len..]`.
pub fn parse_request(buf: &[u8], base: &str) -> Result<Option<(Request, usize)>, HttpError> {
    let window = buf.get(..MAX_HEAD_BYTES).unwrap_or(buf);
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let used = match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD_BYTES => {
            return Err(HttpError::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(HttpError::Malformed(e.to_string())),
    };
    let header = |name: &'static str| {
        req.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
    };
    if header("transfer-encoding").any(|v| !v.eq_ignore_ascii_case("identity")) {
        return Err(HttpError::Chunked);
    }
    let lengths: Vec<String> = header("content-length").collect();
    let content_length = match &lengths[..] {
        [] => 0,
        [one] => one.parse().map_err(|_| HttpError::BadContentLength)?,
        [first, rest @ ..] if rest.iter().all(|r| r == first) => {
            first.parse().map_err(|_| HttpError::BadContentLength)?
        }
        _ => return Err(HttpError::BadContentLength),
    };
    let tokens: Vec<String> = header("connection")
        .flat_map(|v| {
            v.split(',')
                .map(|t| t.trim().to_ascii_lowercase())
                .collect::<Vec<_>>()
        })
        .collect();
    let keep_alive = if req.version == Some(1) {
        !tokens.iter().any(|t| t == "close")
    } else {
        tokens.iter().any(|t| t == "keep-alive")
    };
    let request = Request {
        method: req.method.unwrap_or_default().to_owned(),
        route: route(req.path.unwrap_or("/"), base),
        content_length,
        keep_alive,
        origin: header("origin").next(),
    };
    Ok(Some((request, used)))
}

/// Why an `/open` request was refused (answered 400 with this text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the body must be a JSON object with a \"protocols\" list of strings")]
    BadBody,
    #[error("no offered protocol is spoken here (this listener speaks {0})")]
    NoOverlap(String),
}

/// The protocol to speak: the first of the client's `protocols` (the `/open` body) that is
/// in `supported`.
pub fn choose_protocol<'a>(body: &[u8], supported: &[&'a str]) -> Result<&'a str, OpenError> {
    #[derive(serde::Deserialize)]
    struct Open {
        protocols: Vec<String>,
    }
    let open: Open = serde_json::from_slice(body).map_err(|_| OpenError::BadBody)?;
    open.protocols
        .iter()
        .find_map(|p| supported.iter().find(|s| **s == p.as_str()).copied())
        .ok_or_else(|| OpenError::NoOverlap(supported.join(", ")))
}

/// The body answering a successful `/open`.
pub fn open_reply(protocol: &str, transport: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"protocol": protocol, "transport": transport}))
        .unwrap_or_default()
}

/// A new transport id: 128 random bits (from the OS-seeded CSPRNG), as 32 hex digits.
pub fn new_transport_id() -> String {
    let bits: u128 = rand::random();
    format!("{bits:032x}")
}

/// The `Content-Type` of messages in `serializer`.
pub fn content_type(serializer: Serializer) -> &'static str {
    match serializer {
        Serializer::Json => "application/json; charset=utf-8",
        Serializer::MsgPack => "application/x-msgpack",
        Serializer::Cbor => "application/cbor",
        Serializer::Ubjson | Serializer::Bjdata => "application/ubjson",
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// A whole response: status line, CORS and caching headers, `Content-Type` if a body is
/// given (`text/plain` for error texts), the body, and `Connection: close` unless `keep_alive`.
pub fn response(
    status: u16,
    origin: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
    keep_alive: bool,
) -> Vec<u8> {
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nCache-Control: no-store\r\n",
        reason(status)
    );
    match origin.filter(|o| o.bytes().all(|b| (0x20..0x7f).contains(&b))) {
        Some(o) => {
            head.push_str(&format!(
                "Access-Control-Allow-Origin: {o}\r\nAccess-Control-Allow-Credentials: true\r\n\
                 Vary: Origin\r\n"
            ));
        }
        None => head.push_str("Access-Control-Allow-Origin: *\r\n"),
    }
    if status == 204 && body.is_empty() {
        head.push_str(
            "Access-Control-Allow-Methods: POST, OPTIONS\r\n\
             Access-Control-Allow-Headers: Content-Type\r\nAccess-Control-Max-Age: 86400\r\n",
        );
    } else {
        let ct = content_type.unwrap_or("text/plain; charset=utf-8");
        head.push_str(&format!(
            "Content-Type: {ct}\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    if !keep_alive {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peeks_only_non_get_requests_under_the_base() {
        // Requests built from the base path, as a router configured with it sees them.
        let base = "/lp";
        let req = |head: String| head.into_bytes();
        let post = req(format!(
            "POST {base}/open HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{{}}"
        ));
        assert_eq!(peek(&post, base), Peek::LongPoll);
        assert_eq!(
            peek(
                &req(format!("POST {base}/abc/send?x=1 HTTP/1.1\r\n\r\n")),
                &format!("{base}/")
            ),
            Peek::LongPoll
        );
        assert_eq!(
            peek(&req(format!("OPTIONS {base}/open HTTP/1.1\r\n\r\n")), base),
            Peek::LongPoll
        );
        assert_eq!(
            peek(&req(format!("GET {base}/open HTTP/1.1\r\n\r\n")), base),
            Peek::Other
        );
        assert_eq!(peek(b"GET /ws HTTP/1.1\r\nHost", base), Peek::Other);
        assert_eq!(
            peek(&req(format!("POST {base}x/open HTTP/1.1\r\n\r\n")), base),
            Peek::Other
        );
        assert_eq!(peek(b"POST /ws HTTP/1.1\r\n\r\n", base), Peek::Other);
        assert_eq!(
            peek(&req(format!("POST {base}/open HTTP/1.1\r\nHo")), base),
            Peek::Partial
        );
        assert_eq!(peek(b"\x16\x03\x01garbage\r\n\r\n", base), Peek::Other);
    }

    #[test]
    fn routes() {
        // Targets under the base path, built from it.
        let base = "/lp";
        let under = |rest: &str| format!("{base}{rest}");
        assert_eq!(route(&under("/open?x=1"), base), Route::Open);
        assert_eq!(
            route(&under("/ab12/send"), base),
            Route::Send("ab12".into())
        );
        assert_eq!(
            route(&under("/ab12/receive"), &under("/")),
            Route::Receive("ab12".into())
        );
        assert_eq!(
            route(&under("/ab12/close"), base),
            Route::Close("ab12".into())
        );
        for bad in ["", "/", "/ab12", "/ab12/other", "//send", "/a-b/send"] {
            let target = under(bad);
            assert_eq!(route(&target, base), Route::Unknown, "{target}");
        }
    }

    #[test]
    fn parses_heads_and_connection_rules() {
        let base = "/lp";
        let req = &format!(
            "POST {base}/open?x=3 HTTP/1.1\r\nContent-Length: 5\r\nOrigin: http://a.b\r\n\r\nhello"
        )
        .into_bytes();
        let (r, used) = parse_request(req, base).unwrap().unwrap();
        assert_eq!(r.route, Route::Open);
        assert_eq!(r.content_length, 5);
        assert!(r.keep_alive);
        assert_eq!(r.origin.as_deref(), Some("http://a.b"));
        assert_eq!(&req[used..], b"hello");
        let (r, _) = parse_request(
            &format!("POST {base}/open HTTP/1.0\r\n\r\n").into_bytes(),
            base,
        )
        .unwrap()
        .unwrap();
        assert!(!r.keep_alive);
        let (r, _) = parse_request(
            &format!("POST {base}/open HTTP/1.1\r\nConnection: Keep-Alive, close\r\n\r\n")
                .into_bytes(),
            base,
        )
        .unwrap()
        .unwrap();
        assert!(!r.keep_alive);
        assert_eq!(
            parse_request(&format!("POST {base}/open HTTP/1.1\r\n").into_bytes(), base),
            Ok(None)
        );
        let chunked = &format!("POST {base}/open HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
        assert_eq!(parse_request(chunked, base), Err(HttpError::Chunked));
        let two =
            &format!("POST {base}/open HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n")
                .into_bytes();
        assert_eq!(parse_request(two, base), Err(HttpError::BadContentLength));
        let neg = &format!("POST {base}/open HTTP/1.1\r\nContent-Length: -1\r\n\r\n").into_bytes();
        assert_eq!(parse_request(neg, base), Err(HttpError::BadContentLength));
        let huge = vec![b'a'; MAX_HEAD_BYTES + 1];
        assert_eq!(parse_request(&huge, base), Err(HttpError::HeadTooLarge));
    }

    #[test]
    fn open_picks_the_clients_first_supported_protocol() {
        let ours = ["wamp.2.json", "wamp.2.msgpack", "wamp.2.msgpack.batched"];
        let body = br#"{"protocols": ["wamp.2.cbor", "wamp.2.msgpack.batched", "wamp.2.json"]}"#;
        assert_eq!(choose_protocol(body, &ours), Ok("wamp.2.msgpack.batched"));
        assert!(matches!(
            choose_protocol(br#"{"protocols": ["wamp.2.cbor"]}"#, &ours),
            Err(OpenError::NoOverlap(s)) if s.contains("wamp.2.json")
        ));
        for bad in [
            &b"[]"[..],
            b"{}",
            b"{\"protocols\": \"wamp.2.json\"}",
            b"not json",
        ] {
            assert_eq!(choose_protocol(bad, &ours), Err(OpenError::BadBody));
        }
        let reply: serde_json::Value =
            serde_json::from_slice(&open_reply("wamp.2.json", "ab")).unwrap();
        assert_eq!(reply["protocol"], "wamp.2.json");
        assert_eq!(reply["transport"], "ab");
    }

    #[test]
    fn ids_are_long_and_distinct() {
        let a = new_transport_id();
        let b = new_transport_id();
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        let base = "/lp";
        assert_eq!(route(&format!("{base}/{a}/send"), base), Route::Send(a));
    }

    #[test]
    fn responses_carry_cors_and_length() {
        let r = String::from_utf8(response(
            200,
            Some("http://a.b"),
            Some("application/json"),
            b"[1]",
            true,
        ))
        .unwrap();
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(r.contains("Access-Control-Allow-Origin: http://a.b\r\n"));
        assert!(r.contains("Content-Length: 3\r\n"));
        assert!(!r.contains("Connection: close"));
        assert!(r.ends_with("\r\n\r\n[1]"));
        let r = String::from_utf8(response(204, Some("bad\r\nX: y"), None, b"", false)).unwrap();
        assert!(r.contains("Access-Control-Allow-Origin: *\r\n"));
        assert!(!r.contains("X: y"));
        assert!(r.contains("Connection: close\r\n"));
        assert!(!r.contains("Content-Length"));
    }
}
