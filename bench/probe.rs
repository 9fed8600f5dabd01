//! `probe`: router latency seen by plain blocking clients (std::net threads, no async
//! runtime), to tell the router's latency from loadgen's own (loadgen runs on glommio, whose
//! executor parks and wakes like the router's).
//!
//! Over RawSocket + MessagePack, on one CPU (`--cpu`, default 1):
//! - `rpc`: a callee thread answers every INVOCATION; the caller makes one call at a time and
//!   times CALL → RESULT;
//! - `pubsub`: a subscriber thread; the publisher sends one event every millisecond and the
//!   subscriber times PUBLISH → EVENT (one clock: `Instant` is process-wide);
//! - `pubsub-self`: one connection publishes to itself (`exclude_me: false`) once per
//!   millisecond and times PUBLISH → its EVENT: one round trip, the shape of `pingpong`.
//!
//! ```sh
//! probe --url rs://127.0.0.1:8081 --count 5000 [--json FILE]
//! ```
//! Prints p50/p90/p99 in microseconds per case; `--json` writes `{"rpc": {...}, "pubsub": {...},
//! "pubsub-self": {...}}`.

#[path = "common.rs"]
#[allow(dead_code)]
mod common;
use bytes::Bytes;
use common::{pin, quantiles};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};
use switchyard::codec::{self, Message, Serializer};

const SER: Serializer = Serializer::MsgPack;

struct Conn(TcpStream);

impl Conn {
    fn open(addr: &str, realm: &str) -> std::io::Result<Conn> {
        let mut s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        // RawSocket: magic, max length 2^24 (0xF), serializer 2 (MessagePack).
        s.write_all(&[0x7f, 0xf2, 0, 0])?;
        let mut reply = [0u8; 4];
        s.read_exact(&mut reply)?;
        if reply[0] != 0x7f || reply[1] & 0x0f != 2 {
            return Err(std::io::Error::other(format!(
                "handshake refused: {reply:02x?}"
            )));
        }
        let mut c = Conn(s);
        c.send(&msg(&format!(
            r#"[1, "{realm}", {{"roles": {{"caller": {{}}, "callee": {{}}, "publisher": {{}}, "subscriber": {{}}}}}}]"#
        )))?;
        match c.recv()? {
            Message::Welcome(_) => Ok(c),
            other => Err(std::io::Error::other(format!(
                "expected WELCOME, got {}",
                other.name()
            ))),
        }
    }

    /// Subscribes to `topic` and waits for SUBSCRIBED.
    fn subscribe(&mut self, topic: &str) -> std::io::Result<()> {
        self.send(&msg(&format!(r#"[32, 1, {{}}, "{topic}"]"#)))?;
        match self.recv()? {
            Message::Subscribed(_) => Ok(()),
            other => Err(std::io::Error::other(format!(
                "SUBSCRIBE: {}",
                other.name()
            ))),
        }
    }

    fn send(&mut self, m: &Message) -> std::io::Result<()> {
        let body = codec::encode(SER, m);
        let len = body.len() as u32;
        let mut frame = Vec::with_capacity(4 + body.len());
        frame.extend_from_slice(&[0, (len >> 16) as u8, (len >> 8) as u8, len as u8]);
        frame.extend_from_slice(&body);
        self.0.write_all(&frame)
    }

    fn recv(&mut self) -> std::io::Result<Message> {
        loop {
            let mut head = [0u8; 4];
            self.0.read_exact(&mut head)?;
            let len =
                (usize::from(head[1]) << 16) | (usize::from(head[2]) << 8) | usize::from(head[3]);
            let mut body = vec![0u8; len];
            self.0.read_exact(&mut body)?;
            match head[0] & 0x07 {
                0 => {
                    return codec::decode(SER, &Bytes::from(body))
                        .map_err(|e| std::io::Error::other(e.to_string()))
                }
                1 => {
                    // PING: answer with PONG, same payload.
                    let mut pong = head;
                    pong[0] = 2;
                    self.0.write_all(&pong)?;
                    self.0.write_all(&body)?;
                }
                _ => {}
            }
        }
    }
}

/// A message written as JSON text.
fn msg(json: &str) -> Message {
    codec::decode(Serializer::Json, &Bytes::from(json.to_owned())).expect("a valid message")
}

fn rpc(addr: &str, realm: &str, cpu: usize, count: usize) -> std::io::Result<Vec<u64>> {
    let mut callee = Conn::open(addr, realm)?;
    callee.send(&msg(r#"[64, 1, {}, "probe.echo"]"#))?;
    match callee.recv()? {
        Message::Registered(_) => {}
        other => return Err(std::io::Error::other(format!("REGISTER: {}", other.name()))),
    }
    // Shut down at the end so the callee thread ends at once, not at its read timeout.
    let callee_socket = callee.0.try_clone()?;
    let worker = std::thread::spawn(move || -> std::io::Result<()> {
        pin(cpu);
        loop {
            match callee.recv() {
                Ok(Message::Invocation(inv)) => {
                    callee.send(&Message::Yield(Box::new(codec::Yield {
                        request: inv.request,
                        options: Default::default(),
                        payload: inv.payload,
                    })))?;
                }
                Ok(_) => {}
                Err(_) => return Ok(()),
            }
        }
    });
    let mut caller = Conn::open(addr, realm)?;
    let warmup = count / 10 + 10;
    let mut out = Vec::with_capacity(count);
    for i in 0..warmup + count {
        let t = Instant::now();
        caller.send(&msg(&format!(r#"[48, {}, {{}}, "probe.echo", ["0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab"]]"#, i + 1)))?;
        match caller.recv()? {
            Message::Result(_) => {}
            other => return Err(std::io::Error::other(format!("CALL: {}", other.name()))),
        }
        if i >= warmup {
            out.push(t.elapsed().as_nanos() as u64);
        }
    }
    drop(caller);
    let _ = callee_socket.shutdown(std::net::Shutdown::Both);
    let _ = worker.join();
    Ok(out)
}

fn pubsub(addr: &str, realm: &str, cpu: usize, count: usize) -> std::io::Result<Vec<u64>> {
    let mut sub = Conn::open(addr, realm)?;
    sub.subscribe("probe.topic")?;
    let (tx, rx) = mpsc::channel::<Instant>();
    let total = count + count / 10 + 10;
    let worker = std::thread::spawn(move || -> std::io::Result<Vec<Instant>> {
        pin(cpu);
        let mut arrivals = Vec::with_capacity(total);
        while arrivals.len() < total {
            if let Message::Event(_) = sub.recv()? {
                arrivals.push(Instant::now());
            }
        }
        Ok(arrivals)
    });
    let mut publisher = Conn::open(addr, realm)?;
    let start = Instant::now();
    for i in 0..total {
        let due = start + Duration::from_millis(i as u64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let t = Instant::now();
        publisher.send(&msg(&format!(r#"[16, {}, {{}}, "probe.topic", ["0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab"]]"#, i + 1)))?;
        let _ = tx.send(t);
    }
    let arrivals = worker
        .join()
        .map_err(|_| std::io::Error::other("subscriber thread panicked"))??;
    let sent: Vec<Instant> = rx.try_iter().collect();
    let skip = total - count;
    Ok(sent
        .iter()
        .zip(arrivals.iter())
        .skip(skip)
        .map(|(s, a)| a.saturating_duration_since(*s).as_nanos() as u64)
        .collect())
}

/// Pub/sub as one round trip, the shape of `pingpong`'s floor: one connection subscribes,
/// publishes with `exclude_me: false` and times PUBLISH → its own EVENT, one at a time, one
/// per millisecond (so both ends have gone idle, as in unloaded pub/sub).
fn pubsub_self(addr: &str, realm: &str, _cpu: usize, count: usize) -> std::io::Result<Vec<u64>> {
    let mut c = Conn::open(addr, realm)?;
    c.subscribe("probe.self")?;
    let warmup = count / 10 + 10;
    let mut out = Vec::with_capacity(count);
    for i in 0..warmup + count {
        std::thread::sleep(Duration::from_millis(1));
        let t = Instant::now();
        c.send(&msg(&format!(r#"[16, {}, {{"exclude_me": false}}, "probe.self", ["0123456789abcdef0123456789abcdef0123456789abcdef0123456789ab"]]"#, i + 1)))?;
        loop {
            if let Message::Event(_) = c.recv()? {
                break;
            }
        }
        if i >= warmup {
            out.push(t.elapsed().as_nanos() as u64);
        }
    }
    Ok(out)
}

fn main() {
    let mut url = None;
    let mut realm = "realm1".to_owned();
    let mut count = 5000usize;
    let mut cpu = 1usize;
    let mut json = None;
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().unwrap_or_else(|| {
            eprintln!("probe: {k} needs a value");
            std::process::exit(2)
        });
        match k.as_str() {
            "--url" => url = Some(v),
            "--realm" => realm = v,
            "--count" => count = v.parse().unwrap_or(5000).clamp(100, 1_000_000),
            "--cpu" => cpu = v.parse().unwrap_or(1),
            "--json" => json = Some(v),
            other => {
                eprintln!("probe: unknown argument {other}");
                std::process::exit(2)
            }
        }
    }
    let Some(addr) = url
        .as_deref()
        .and_then(|u| u.strip_prefix("rs://"))
        .map(str::to_owned)
    else {
        eprintln!(
            "usage: probe --url rs://HOST:PORT [--realm R] [--count N] [--cpu N] [--json FILE]"
        );
        std::process::exit(2)
    };
    pin(cpu);
    let mut parts = Vec::new();
    for (name, f) in [
        (
            "rpc",
            rpc as fn(&str, &str, usize, usize) -> std::io::Result<Vec<u64>>,
        ),
        ("pubsub", pubsub),
        ("pubsub-self", pubsub_self),
    ] {
        match f(&addr, &realm, cpu, count) {
            Ok(v) if !v.is_empty() => {
                let (p50, p90, p99) = quantiles(v);
                println!(
                    "{name:<11} blocking clients: p50 {p50:.1} µs  p90 {p90:.1} µs  p99 {p99:.1} µs"
                );
                parts.push(format!(
                    "\"{name}\": {{\"p50\": {p50:.2}, \"p90\": {p90:.2}, \"p99\": {p99:.2}}}"
                ));
            }
            Ok(_) => eprintln!("probe: {name}: no samples"),
            Err(e) => {
                eprintln!("probe: {name}: {e}");
                std::process::exit(1)
            }
        }
    }
    if let Some(path) = json {
        if let Err(e) = std::fs::write(&path, format!("{{{}}}\n", parts.join(", "))) {
            eprintln!("probe: {path}: {e}");
            std::process::exit(1)
        }
    }
}
