//! Router endpoints as the load generator is told them: `rs://host:port`, `rss://host:port`,
//! `ws://host:port/path`, `wss://host:port/path`, `unix:///path/to.sock`.
//!
//! Parsing (and the one DNS look-up) happens once at start-up, on the main thread, so shards
//! never block on name resolution.

use anyhow::{bail, Context, Result};
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

/// Where to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

/// Which WAMP transport runs over the byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    RawSocket,
    /// WebSocket with the HTTP `Host` header value and the request path.
    WebSocket {
        host: String,
        path: String,
    },
}

/// A parsed endpoint URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: Addr,
    pub transport: Transport,
    /// Whether the stream is TLS (`rss://`, `wss://`).
    pub tls: bool,
    /// The TLS server name (the URL's host; `localhost` for Unix sockets).
    pub server_name: String,
    /// The URL as given, for reports.
    pub url: String,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Endpoint> {
        let (scheme, rest) = url
            .split_once("://")
            .with_context(|| format!("{url:?}: expected scheme://…"))?;
        if scheme == "unix" {
            if rest.is_empty() {
                bail!("{url:?}: unix:// needs a socket path");
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
            other => bail!("{url:?}: unknown scheme {other:?} (rs, rss, ws, wss, unix)"),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if !ws && path != "/" {
            bail!("{url:?}: a RawSocket URL has no path");
        }
        let (host, port) =
            split_host_port(authority).with_context(|| format!("{url:?}: expected host:port"))?;
        let addr = (host, port)
            .to_socket_addrs()
            .with_context(|| format!("{url:?}: cannot resolve {host}"))?
            .next()
            .with_context(|| format!("{url:?}: {host} has no address"))?;
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
