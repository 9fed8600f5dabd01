//! `firehose`: a stand-in router that costs almost nothing per event, to measure how many events
//! loadgen's subscribers can take on one core. A router shard cannot show that: loadgen must
//! out-receive it, so the source has to be cheaper per event than any router (issue 20: loadgen
//! receives at least 2× what one router shard delivers in fan-out 1→512).
//!
//! It speaks just enough WAMP over RawSocket + MessagePack for loadgen's `fanout` and `pubsub`:
//! HELLO → WELCOME, SUBSCRIBE → SUBSCRIBED, PUBLISH → one EVENT to each subscriber of the topic
//! (and PUBLISHED when asked), GOODBYE → GOODBYE, transport PING → PONG; anything else is
//! dropped. One thread busy-polls non-blocking sockets; each PUBLISH becomes an EVENT frame
//! encoded once, whose bytes are appended to every subscriber's output and written in large
//! writes. Publishers are not read while any subscriber has more than [`MAX_PENDING`] bytes
//! unwritten, so memory stays bounded and a slow loadgen slows its own publishers.
//!
//! ```sh
//! firehose [--listen 127.0.0.1:0] [--cpu 0] [--seconds N]
//! ```
//! Prints `listening ADDR` once bound, then runs until killed (or for N seconds), and prints
//! the events it wrote on exit.

#[path = "common.rs"]
#[allow(dead_code)]
mod common;
use bytes::Bytes;
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};
use switchyard::codec::{self, Id, Message, Serializer};

const SER: Serializer = Serializer::MsgPack;
/// Unwritten bytes of one subscriber above which publishers are not read.
const MAX_PENDING: usize = 4 << 20;
/// Largest frame accepted from a client.
const MAX_FRAME: usize = 1 << 20;

#[derive(PartialEq)]
enum State {
    Handshake,
    Open,
    Closed,
}

struct Conn {
    s: TcpStream,
    state: State,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    /// Sent a PUBLISH (read only while the subscribers keep up).
    publisher: bool,
}

impl Conn {
    fn pending(&self) -> usize {
        self.out.len() - self.out_pos
    }

    fn push(&mut self, frame: &[u8]) {
        let n = frame.len() as u32;
        self.out
            .extend_from_slice(&[0, (n >> 16) as u8, (n >> 8) as u8, n as u8]);
        self.out.extend_from_slice(frame);
    }

    fn push_msg(&mut self, msg: &Message) {
        let b = codec::encode(SER, msg);
        self.push(&b);
    }

    /// Writes what the socket takes now; false when the connection is gone.
    fn flush(&mut self) -> bool {
        while self.out_pos < self.out.len() {
            match self.s.write(&self.out[self.out_pos..]) {
                Ok(0) => return false,
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => return false,
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos > (1 << 20) {
            self.out.drain(..self.out_pos);
            self.out_pos = 0;
        }
        true
    }
}

fn msg(json: &str) -> Message {
    codec::decode(Serializer::Json, &Bytes::from(json.to_owned())).expect("a valid message")
}

struct Router {
    conns: Vec<Option<Conn>>,
    /// Topic → (subscription ID, subscribers).
    topics: HashMap<String, (Id, Vec<usize>)>,
    next_id: Id,
    events: u64,
    scratch: Vec<u8>,
}

impl Router {
    /// Reads what connection `i` has and handles its complete frames.
    fn read(&mut self, i: usize) {
        let Some(c) = self.conns[i].as_mut() else {
            return;
        };
        loop {
            match c.s.read(&mut self.scratch) {
                Ok(0) => {
                    c.state = State::Closed;
                    break;
                }
                Ok(n) => {
                    c.inbuf.extend_from_slice(&self.scratch[..n]);
                    if n < self.scratch.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => {
                    c.state = State::Closed;
                    break;
                }
            }
        }
        if c.state == State::Handshake && c.inbuf.len() >= 4 {
            // RawSocket: magic, then max length and serializer; only MessagePack (2) is spoken.
            if c.inbuf[0] != 0x7f || c.inbuf[1] & 0x0f != 2 {
                let _ = c.s.write_all(&[0x7f, 0x10, 0, 0]);
                c.state = State::Closed;
            } else {
                c.inbuf.drain(..4);
                c.out.extend_from_slice(&[0x7f, 0xf2, 0, 0]);
                c.state = State::Open;
            }
        }
        let mut pos = 0;
        let mut frames = Vec::new();
        if c.state == State::Open {
            while c.inbuf.len() - pos >= 4 {
                let h = &c.inbuf[pos..pos + 4];
                let (kind, len) = (
                    h[0] & 0x07,
                    u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize,
                );
                if len > MAX_FRAME {
                    c.state = State::Closed;
                    break;
                }
                if c.inbuf.len() - pos < 4 + len {
                    break;
                }
                frames.push((
                    kind,
                    Bytes::copy_from_slice(&c.inbuf[pos + 4..pos + 4 + len]),
                ));
                pos += 4 + len;
            }
            c.inbuf.drain(..pos);
        }
        for (kind, frame) in frames {
            self.frame(i, kind, frame);
        }
    }

    fn frame(&mut self, i: usize, kind: u8, frame: Bytes) {
        let Some(c) = self.conns[i].as_mut() else {
            return;
        };
        match kind {
            0 => {}
            1 => {
                // PING: answer with a PONG carrying the same payload.
                let n = frame.len() as u32;
                c.out
                    .extend_from_slice(&[2, (n >> 16) as u8, (n >> 8) as u8, n as u8]);
                c.out.extend_from_slice(&frame);
                return;
            }
            _ => return,
        }
        let Ok(m) = codec::decode(SER, &frame) else {
            c.state = State::Closed;
            return;
        };
        match m {
            Message::Hello(_) => {
                self.next_id += 1;
                c.push_msg(&msg(&format!(
                    r#"[2, {}, {{"roles": {{"broker": {{}}, "dealer": {{}}}}}}]"#,
                    self.next_id
                )));
            }
            Message::Subscribe(s) => {
                let next = self.next_id + 1;
                let entry = self
                    .topics
                    .entry(s.topic.to_string())
                    .or_insert((next, Vec::new()));
                if entry.0 == next {
                    self.next_id = next;
                }
                entry.1.push(i);
                let sub = entry.0;
                c.push_msg(&msg(&format!("[33, {}, {sub}]", s.request)));
            }
            Message::Publish(p) => {
                c.publisher = true;
                self.next_id += 1;
                let publication = self.next_id;
                if p.options.acknowledge == Some(true) {
                    c.push_msg(&msg(&format!("[17, {}, {publication}]", p.request)));
                }
                let Some((sub, subscribers)) = self.topics.get(p.topic.as_str()) else {
                    return;
                };
                let event = codec::encode(
                    SER,
                    &Message::Event(Box::new(codec::Event {
                        subscription: *sub,
                        publication,
                        details: Default::default(),
                        payload: p.payload,
                    })),
                );
                for &s in subscribers {
                    if s == i {
                        continue;
                    }
                    if let Some(sc) = self.conns[s].as_mut() {
                        sc.push(&event);
                        self.events += 1;
                    }
                }
            }
            Message::Goodbye(_) => {
                c.push_msg(&msg(r#"[6, {}, "wamp.close.goodbye_and_out"]"#));
                c.flush();
                c.state = State::Closed;
            }
            _ => {}
        }
    }

    fn close(&mut self, i: usize) {
        self.conns[i] = None;
        for (_, subs) in self.topics.values_mut() {
            subs.retain(|&s| s != i);
        }
    }
}

fn main() -> std::io::Result<()> {
    let mut listen = "127.0.0.1:0".to_string();
    let mut cpu = 0;
    let mut seconds: Option<u64> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || args.next().unwrap_or_default();
        match a.as_str() {
            "--listen" => listen = val(),
            "--cpu" => cpu = val().parse().unwrap_or(0),
            "--seconds" => seconds = val().parse().ok(),
            other => {
                eprintln!("firehose: unknown argument {other:?}");
                eprintln!("usage: firehose [--listen ADDR] [--cpu N] [--seconds N]");
                std::process::exit(2);
            }
        }
    }
    common::pin(cpu);
    let listener = TcpListener::bind(&listen)?;
    listener.set_nonblocking(true)?;
    println!("listening {}", listener.local_addr()?);
    std::io::stdout().flush()?;
    let end = seconds.map(|s| Instant::now() + Duration::from_secs(s));
    let mut r = Router {
        conns: Vec::new(),
        topics: HashMap::new(),
        next_id: 0,
        events: 0,
        scratch: vec![0; 256 << 10],
    };
    let mut pass: u64 = 0;
    while end.is_none_or(|e| Instant::now() < e) {
        pass += 1;
        while let Ok((s, _)) = listener.accept() {
            s.set_nonblocking(true)?;
            s.set_nodelay(true)?;
            r.conns.push(Some(Conn {
                s,
                state: State::Handshake,
                inbuf: Vec::new(),
                out: Vec::new(),
                out_pos: 0,
                publisher: false,
            }));
        }
        let backlog = r.conns.iter().flatten().any(|c| c.pending() > MAX_PENDING);
        for i in 0..r.conns.len() {
            let Some(c) = r.conns[i].as_ref() else {
                continue;
            };
            // Subscribers say little after SUBSCRIBE: ask them only every 64th pass.
            let ask = if c.publisher {
                !backlog
            } else {
                c.state != State::Open || pass.is_multiple_of(64)
            };
            if ask {
                r.read(i);
            }
        }
        for i in 0..r.conns.len() {
            let gone = match r.conns[i].as_mut() {
                Some(c) => !c.flush() || (c.state == State::Closed && c.pending() == 0),
                None => false,
            };
            if gone {
                r.close(i);
            }
        }
    }
    println!("events {}", r.events);
    Ok(())
}
