//! Router endpoints: `rs://host:port`, `rss://host:port`, `ws://host:port/path`,
//! `wss://host:port/path`, `unix:///path/to.sock` (RawSocket over a Unix socket).
//!
//! [`Endpoint::parse`] does the one DNS look-up (a blocking call): the load generator parses
//! once at start-up on the main thread, so shards never block on name resolution; the client
//! library parses IP literals and `localhost` without a look-up.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// An endpoint URL that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{url:?}: {message}")]
pub struct UrlError {
    /// The URL as given.
    pub url: String,
    /// What is wrong with it.
    pub message: String,
}

fn bad(url: &str, message: impl Into<String>) -> UrlError {
    UrlError {
        url: url.into(),
        message: message.into(),
    }
}

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    /// A TCP address.
    Tcp(SocketAddr),
    /// A Unix socket path.
    Unix(PathBuf),
}

/// Which WAMP transport runs over the byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// WAMP RawSocket.
    RawSocket,
    /// WebSocket with the HTTP `Host` header value and the request path.
    WebSocket {
        /// The `Host` header value (`host:port`).
        host: String,
        /// The request path (`/ws`).
        path: String,
    },
}

/// A parsed endpoint URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Where to connect.
    pub addr: Addr,
    /// The WAMP transport over the stream.
    pub transport: Transport,
    /// Whether the stream is TLS (`rss://`, `wss://`).
    pub tls: bool,
    /// The TLS server name (the URL's host; `localhost` for Unix sockets).
    pub server_name: String,
    /// The URL as given, for reports.
    pub url: String,
}

impl Endpoint {
    /// Parses `url`, resolving a host name (blocking) if it is not an IP literal.
    pub fn parse(url: &str) -> Result<Endpoint, UrlError> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| bad(url, "expected scheme://…"))?;
        if scheme == "unix" {
            if rest.is_empty() {
                return Err(bad(url, "unix:// needs a socket path"));
            }
            return Ok(Endpoint {
                addr: Addr::Unix(PathBuf::from(rest)),
                transport: Transport::RawSocket,
                tls: false,
                server_name: "localhost".into(),
                url: url.into(),
            });
        }
        let (tls, ws) = match scheme {
            "rs" | "tcp" => (false, false),
            "rss" => (true, false),
            "ws" => (false, true),
            "wss" => (true, true),
            other => {
                return Err(bad(
                    url,
                    format!("unknown scheme {other:?} (rs, rss, ws, wss, unix)"),
                ))
            }
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if !ws && path != "/" {
            return Err(bad(url, "a RawSocket URL has no path"));
        }
        let (host, port) =
            split_host_port(authority).ok_or_else(|| bad(url, "expected host:port"))?;
        let addr = match host.parse::<std::net::IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port),
            Err(_) => (host, port)
                .to_socket_addrs()
                .map_err(|e| bad(url, format!("cannot resolve {host}: {e}")))?
                .next()
                .ok_or_else(|| bad(url, format!("{host} has no address")))?,
        };
        let transport = if ws {
            Transport::WebSocket {
                host: authority.to_string(),
                path: path.to_string(),
            }
        } else {
            Transport::RawSocket
        };
        Ok(Endpoint {
            addr: Addr::Tcp(addr),
            transport,
            tls,
            server_name: host.to_string(),
            url: url.into(),
        })
    }
}

fn split_host_port(authority: &str) -> Option<(&str, u16)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let (h, p) = rest.split_once("]:")?;
        (h, p)
    } else {
        authority.rsplit_once(':')?
    };
    Some((host, port.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_scheme() {
        let e = Endpoint::parse("rs://127.0.0.1:8081").unwrap();
        assert_eq!(e.addr, Addr::Tcp("127.0.0.1:8081".parse().unwrap()));
        assert_eq!(e.transport, Transport::RawSocket);
        assert!(!e.tls);
        let e = Endpoint::parse("wss://127.0.0.1:9000/ws").unwrap();
        assert!(e.tls);
        assert_eq!(
            e.transport,
            Transport::WebSocket {
                host: "127.0.0.1:9000".into(),
                path: "/ws".into()
            }
        );
        let e = Endpoint::parse("unix:///tmp/r.sock").unwrap();
        assert_eq!(e.addr, Addr::Unix("/tmp/r.sock".into()));
        assert!(Endpoint::parse("http://x:1").is_err());
        assert!(Endpoint::parse("rs://127.0.0.1").is_err());
        assert!(Endpoint::parse("rs://127.0.0.1:1/x").is_err());
    }
}
