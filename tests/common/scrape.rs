//! Reading the router's Prometheus endpoint over HTTP (for tests that check a counter moved).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::RouterProcess;

/// The address the router printed as `listening metrics http://ADDR` (start it with
/// `--metrics 127.0.0.1:0`).
pub fn metrics_addr(router: &RouterProcess) -> SocketAddr {
    router
        .endpoints
        .iter()
        .find_map(|e| e.url.strip_prefix("metrics http://"))
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("router printed no metrics address: {:?}", router.endpoints))
}

/// One scrape: `name{labels}` → value.
#[derive(Debug)]
pub struct Scrape(HashMap<String, f64>);

impl Scrape {
    /// GET /metrics (bounded by a 10 s socket timeout); panics unless it answers 200.
    pub fn get(addr: SocketAddr) -> Scrape {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
            .unwrap_or_else(|e| panic!("connect to metrics at {addr}: {e}"));
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("read timeout");
        write!(s, "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").expect("send GET");
        let mut resp = String::new();
        s.read_to_string(&mut resp).expect("read /metrics");
        let (head, body) = resp.split_once("\r\n\r\n").unwrap_or((&resp, ""));
        assert!(head.starts_with("HTTP/1.1 200"), "GET /metrics: {head}");
        Scrape::parse(body)
    }

    /// Parses a Prometheus text exposition; panics on a sample line that is not `key value`.
    pub fn parse(text: &str) -> Scrape {
        let mut m = HashMap::new();
        for l in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (k, v) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("sample line without a value: {l:?}"));
            let v = v
                .parse()
                .unwrap_or_else(|e| panic!("sample value in {l:?}: {e}"));
            m.insert(k.to_owned(), v);
        }
        Scrape(m)
    }

    /// Sum over all series of `name` whose labels contain every `k="v"` in `with`.
    pub fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|(k, _)| k.split('{').next() == Some(name))
            .filter(|(k, _)| {
                with.iter()
                    .all(|(l, v)| k.contains(&format!("{l}=\"{v}\"")))
            })
            .map(|(_, v)| v)
            .sum()
    }

    /// The value of one series, e.g. `switchyard_connections{shard="0"}`.
    pub fn series(&self, key: &str) -> Option<f64> {
        self.0.get(key).copied()
    }

    /// `switchyard_limit_exceeded_total` for one limit, over all shards.
    pub fn limit(&self, limit: &str) -> f64 {
        self.sum("switchyard_limit_exceeded_total", &[("limit", limit)])
    }
}

/// Scrapes until `f` holds (at most 10 s); panics naming `what` and the last values otherwise.
pub fn eventually_scrape(addr: SocketAddr, what: &str, f: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = Scrape::get(addr);
        if f(&s) {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for: {what}; last scrape: {s:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
