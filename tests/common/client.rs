//! Blocking WAMP clients over real sockets, for tests that need to misbehave on purpose or to
//! see exactly what the router sends: [`RawClient`] (RawSocket over TCP or a Unix socket, with
//! the crate's own codec and framing) and [`WsClient`] (a minimal RFC 6455 client of its own).
//! Both implement [`WampConn`]. Every read has a deadline.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use switchyard::codec::{
    self, Dict, DictField, Goodbye, Hello, HelloDetails, Message, Serializer, Value, Welcome,
};
use switchyard::net::rawsocket::{
    self, ClientHandshakeError, FrameDecoder, FrameKind, RawFrame, SerializerId, ServerHello,
};

/// Default limit for one expected reply from the router.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------------
// WAMP messages the tests send
// ---------------------------------------------------------------------------------------------

/// HELLO for `realm`, announcing the four client roles.
pub fn hello(realm: &str) -> Message {
    let mut roles = Dict::new();
    for role in ["publisher", "subscriber", "caller", "callee"] {
        roles.insert(role.to_owned(), Value::Dict(Dict::new()));
    }
    Message::Hello(Box::new(Hello {
        realm: realm.into(),
        details: HelloDetails {
            roles: Some(DictField(Value::Dict(roles))),
            agent: Some("switchyard-tests".to_owned()),
            ..Default::default()
        },
    }))
}

/// GOODBYE with `reason`.
pub fn goodbye(reason: &str) -> Message {
    Message::Goodbye(Goodbye {
        details: Dict::new(),
        reason: reason.into(),
    })
}

/// Checks a WELCOME the way a client must: an ID in [1, 2^53] and a broker or dealer role.
pub fn check_welcome(w: &Welcome) {
    assert!(
        (1..=codec::MAX_ID).contains(&w.session),
        "WELCOME session id {} out of [1, 2^53]",
        w.session
    );
    let roles = w
        .details
        .roles
        .as_ref()
        .and_then(|r| r.dict())
        .unwrap_or_else(|| panic!("WELCOME without roles: {w:?}"));
    assert!(
        roles.contains_key("broker") || roles.contains_key("dealer"),
        "WELCOME announces neither broker nor dealer: {w:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Blocking WAMP clients
// ---------------------------------------------------------------------------------------------

/// Why a receive gave no message.
#[derive(Debug)]
pub enum RecvError {
    /// Nothing complete arrived before the deadline.
    Timeout,
    /// The peer closed the connection (EOF, reset, or a WebSocket Close frame with its code).
    Closed(Option<u16>),
    Io(io::Error),
    /// The router broke the framing (RawSocket header or WebSocket frame).
    Framing(String),
    /// A frame arrived that is not a valid WAMP message.
    Decode(codec::DecodeError),
}

pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

fn is_closed(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof
    )
}

/// A TCP or Unix stream with timeouts.
pub enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Conn {
    /// Connects to a loopback TCP address with 5 s connect/read/write timeouts.
    pub fn tcp(addr: SocketAddr) -> io::Result<Conn> {
        let s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
        s.set_nodelay(true)?;
        s.set_read_timeout(Some(REPLY_TIMEOUT))?;
        s.set_write_timeout(Some(REPLY_TIMEOUT))?;
        Ok(Conn::Tcp(s))
    }

    pub fn unix(path: &Path) -> io::Result<Conn> {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(REPLY_TIMEOUT))?;
        s.set_write_timeout(Some(REPLY_TIMEOUT))?;
        Ok(Conn::Unix(s))
    }

    pub fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        // A zero timeout means "block forever" to the OS: never pass one.
        let t = Some(t.max(Duration::from_millis(1)));
        match self {
            Conn::Tcp(s) => s.set_read_timeout(t),
            Conn::Unix(s) => s.set_read_timeout(t),
        }
    }

    pub fn shutdown(&self) {
        let _ = match self {
            Conn::Tcp(s) => s.shutdown(Shutdown::Both),
            Conn::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }

    /// Reads until the peer closes the connection, at most until `timeout`, discarding data.
    /// Returns the bytes that arrived, or an error string if the connection stayed open.
    pub fn read_until_closed(&mut self, timeout: Duration) -> Result<Vec<u8>, String> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "connection still open after {timeout:?} (received {} bytes)",
                    got.len()
                ));
            }
            self.set_read_timeout(left).map_err(|e| e.to_string())?;
            match self.read(&mut buf) {
                Ok(0) => return Ok(got),
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if is_closed(&e) => return Ok(got),
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(format!("read error: {e}")),
            }
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Tcp(s) => s.write(buf),
            Conn::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Tcp(s) => s.flush(),
            Conn::Unix(s) => s.flush(),
        }
    }
}

/// Sends a 4-octet RawSocket handshake request and reads the 4-octet reply.
pub fn rawsocket_handshake(conn: &mut Conn, request: [u8; 4]) -> io::Result<[u8; 4]> {
    conn.write_all(&request)?;
    let mut reply = [0u8; 4];
    conn.read_exact(&mut reply)?;
    Ok(reply)
}

/// The RawSocket serializer id of a codec serializer.
pub fn serializer_id(s: Serializer) -> SerializerId {
    match s {
        Serializer::Json => SerializerId::JSON,
        Serializer::MsgPack => SerializerId::MSGPACK,
        Serializer::Cbor => SerializerId::CBOR,
        Serializer::Ubjson | Serializer::Bjdata => SerializerId::UBJSON,
    }
}

/// What both blocking clients offer, so that tests read the same over either transport.
pub trait WampConn {
    fn serializer(&self) -> Serializer;
    /// Sends one WAMP message.
    fn send(&mut self, m: &Message) -> io::Result<()>;
    /// Sends one frame with an arbitrary payload (e.g. invalid JSON).
    fn send_payload(&mut self, payload: &[u8]) -> io::Result<()>;
    /// Receives the next WAMP message, answering transport pings on the way.
    fn recv(&mut self, timeout: Duration) -> Result<Message, RecvError>;

    /// HELLO → WELCOME; returns what came instead of WELCOME as an error.
    fn join(&mut self, realm: &str) -> Result<Welcome, String> {
        self.send(&hello(realm))
            .map_err(|e| format!("send HELLO: {e}"))?;
        match self.recv(REPLY_TIMEOUT) {
            Ok(Message::Welcome(w)) => Ok(*w),
            Ok(other) => Err(format!("expected WELCOME, got {other:?}")),
            Err(e) => Err(format!("expected WELCOME, got {e:?}")),
        }
    }

    /// Joins `realm` and checks the WELCOME; panics on anything else.
    fn must_join(&mut self, realm: &str) -> Welcome {
        let w = self
            .join(realm)
            .unwrap_or_else(|e| panic!("join {realm}: {e}"));
        check_welcome(&w);
        w
    }

    /// Sends GOODBYE `wamp.close.close_realm` and expects GOODBYE `wamp.close.goodbye_and_out`.
    fn must_leave(&mut self) {
        self.send(&goodbye("wamp.close.close_realm"))
            .expect("send GOODBYE");
        match self.recv(REPLY_TIMEOUT) {
            Ok(Message::Goodbye(g)) => assert_eq!(
                g.reason.as_str(),
                "wamp.close.goodbye_and_out",
                "router's GOODBYE reply: {g:?}"
            ),
            other => panic!("expected GOODBYE wamp.close.goodbye_and_out, got {other:?}"),
        }
    }

    /// Expects the router to end the session with ABORT `reason`; returns the ABORT details.
    fn must_abort(&mut self, reason: &str) -> Dict {
        match self.recv(REPLY_TIMEOUT) {
            Ok(Message::Abort(a)) => {
                assert_eq!(a.reason.as_str(), reason, "ABORT reason: {a:?}");
                a.details
            }
            other => panic!("expected ABORT {reason}, got {other:?}"),
        }
    }
}

/// A blocking WAMP-over-RawSocket client (TCP or Unix socket).
pub struct RawClient {
    pub conn: Conn,
    serializer: Serializer,
    buf: BytesMut,
    /// Our receive limit (what we announced).
    decoder: FrameDecoder,
    /// What the router announced: the longest frame it accepts.
    pub router_max_len: u32,
}

/// Largest frame the test clients accept: 2^24, exponent 15.
const CLIENT_MAX_LEN_EXP: u8 = 15;

impl RawClient {
    /// Connects and handshakes over TCP; panics on any failure.
    pub fn connect(addr: SocketAddr, serializer: Serializer) -> RawClient {
        let conn = Conn::tcp(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
        Self::handshake(conn, serializer)
            .unwrap_or_else(|e| panic!("RawSocket handshake with {addr}: {e}"))
    }

    /// Connects and handshakes over a Unix socket; panics on any failure.
    pub fn connect_unix(path: &Path, serializer: Serializer) -> RawClient {
        let conn = Conn::unix(path).unwrap_or_else(|e| panic!("connect {path:?}: {e}"));
        Self::handshake(conn, serializer)
            .unwrap_or_else(|e| panic!("RawSocket handshake with {path:?}: {e}"))
    }

    /// Performs the client side of the RawSocket handshake on `conn`.
    pub fn handshake(conn: Conn, serializer: Serializer) -> Result<RawClient, String> {
        Self::handshake_with_max(conn, serializer, CLIENT_MAX_LEN_EXP)
    }

    /// The handshake announcing that we accept frames up to 2^(9 + `exponent`) octets.
    pub fn handshake_with_max(
        mut conn: Conn,
        serializer: Serializer,
        exponent: u8,
    ) -> Result<RawClient, String> {
        let id = serializer_id(serializer);
        let reply = rawsocket_handshake(&mut conn, rawsocket::client_hello(id, exponent))
            .map_err(|e| format!("handshake I/O: {e}"))?;
        let ServerHello { max_len, .. } = rawsocket::parse_server_reply(reply, id)
            .map_err(|e: ClientHandshakeError| format!("{e} (reply {reply:02x?})"))?;
        Ok(RawClient {
            conn,
            serializer,
            buf: BytesMut::with_capacity(8192),
            decoder: FrameDecoder::for_exponent(exponent),
            router_max_len: max_len,
        })
    }

    /// Writes one frame of `kind`.
    pub fn send_frame(&mut self, kind: FrameKind, payload: &[u8]) -> io::Result<()> {
        let len = u32::try_from(payload.len()).map_err(|_| io::ErrorKind::InvalidInput)?;
        let header = rawsocket::encode_header(kind, len)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let mut out = Vec::with_capacity(4 + payload.len());
        out.extend_from_slice(&header);
        out.extend_from_slice(payload);
        self.conn.write_all(&out)
    }

    /// Writes bytes as they are (a broken header, say).
    pub fn send_bytes(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.conn.write_all(bytes)
    }

    /// Waits at most `timeout` for the router to close the connection, returning the WAMP
    /// messages that arrived before it did.
    pub fn expect_close(&mut self, timeout: Duration) -> Result<Vec<Message>, String> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.recv(left) {
                Ok(m) => got.push(m),
                Err(RecvError::Closed(_)) => return Ok(got),
                Err(RecvError::Timeout) => {
                    return Err(format!(
                        "connection still open after {timeout:?}; received {got:?}"
                    ))
                }
                Err(e) => return Err(format!("{e:?} after receiving {got:?}")),
            }
        }
    }
}

impl WampConn for RawClient {
    fn serializer(&self) -> Serializer {
        self.serializer
    }

    fn send(&mut self, m: &Message) -> io::Result<()> {
        let bytes = codec::encode(self.serializer, m);
        self.send_frame(FrameKind::Message, &bytes)
    }

    fn send_payload(&mut self, payload: &[u8]) -> io::Result<()> {
        self.send_frame(FrameKind::Message, payload)
    }

    fn recv(&mut self, timeout: Duration) -> Result<Message, RecvError> {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            match self.decoder.decode(&mut self.buf) {
                Ok(Some(RawFrame::Message(frame))) => {
                    return codec::decode(self.serializer, &frame).map_err(RecvError::Decode)
                }
                Ok(Some(RawFrame::Ping(p))) => {
                    self.send_frame(FrameKind::Pong, &p)
                        .map_err(RecvError::Io)?;
                    continue;
                }
                Ok(Some(RawFrame::Pong(_))) => continue,
                Ok(None) => {}
                Err(e) => return Err(RecvError::Framing(e.to_string())),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RecvError::Timeout);
            }
            self.conn.set_read_timeout(left).map_err(RecvError::Io)?;
            match self.conn.read(&mut chunk) {
                Ok(0) => return Err(RecvError::Closed(None)),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if is_closed(&e) => return Err(RecvError::Closed(None)),
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(RecvError::Io(e)),
            }
        }
    }
}

/// Sends an HTTP/1.1 WebSocket upgrade request for `path` offering `protocols` and reads the
/// response head (bounded to 16 KiB and [`REPLY_TIMEOUT`]). Returns the stream, the status code,
/// the head text and any bytes that followed the head.
pub fn ws_upgrade(
    addr: SocketAddr,
    path: &str,
    protocols: &[&str],
) -> io::Result<(TcpStream, u16, String, Vec<u8>, String)> {
    ws_upgrade_with(addr, path, protocols, &[])
}

/// [`ws_upgrade`] with extra request headers (e.g. `Cookie`).
pub fn ws_upgrade_with(
    addr: SocketAddr,
    path: &str,
    protocols: &[&str],
    extra_headers: &[(&str, &str)],
) -> io::Result<(TcpStream, u16, String, Vec<u8>, String)> {
    use base64::Engine as _;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(REPLY_TIMEOUT))?;
    stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
    let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
    );
    if !protocols.is_empty() {
        req.push_str(&format!(
            "Sec-WebSocket-Protocol: {}\r\n",
            protocols.join(", ")
        ));
    }
    for (name, value) in extra_headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes())?;

    let deadline = Instant::now() + REPLY_TIMEOUT;
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if got.len() > 16 * 1024 || Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "no complete HTTP response head: {:?}",
                    String::from_utf8_lossy(&got)
                ),
            ));
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "closed during HTTP response: {:?}",
                    String::from_utf8_lossy(&got)
                ),
            ));
        }
        got.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&got[..head_end]).into_owned();
    let rest = got[head_end..].to_vec();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line: {head:?}"),
            )
        })?;
    Ok((stream, status, head, rest, key))
}

/// The value of response header `name` (case-insensitive) in an HTTP head.
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// A blocking WAMP-over-WebSocket client: RFC 6455 framing of its own (masked client frames,
/// no extensions), enough for tests.
pub struct WsClient {
    pub stream: TcpStream,
    serializer: Serializer,
    buf: Vec<u8>,
    /// Text or binary message being reassembled from continuation frames.
    partial: Option<Vec<u8>>,
}

const WS_MAX_MESSAGE: usize = 16 << 20;

impl WsClient {
    /// Upgrades to WebSocket with the serializer's subprotocol; panics unless the router answers
    /// 101 with that subprotocol and a correct `Sec-WebSocket-Accept`.
    pub fn connect(addr: SocketAddr, path: &str, serializer: Serializer) -> WsClient {
        Self::connect_with(addr, path, serializer, &[]).0
    }

    /// [`WsClient::connect`] with extra request headers; also returns the response head.
    pub fn connect_with(
        addr: SocketAddr,
        path: &str,
        serializer: Serializer,
        extra_headers: &[(&str, &str)],
    ) -> (WsClient, String) {
        use base64::Engine as _;
        use sha1::Digest as _;
        let proto = serializer.subprotocol();
        let (stream, status, head, rest, key) =
            ws_upgrade_with(addr, path, &[proto], extra_headers)
                .unwrap_or_else(|e| panic!("WebSocket upgrade at {addr}{path}: {e}"));
        assert_eq!(status, 101, "WebSocket upgrade refused: {head}");
        assert_eq!(
            header(&head, "Sec-WebSocket-Protocol"),
            Some(proto),
            "subprotocol in {head}"
        );
        let mut sha = sha1::Sha1::new();
        sha.update(key.as_bytes());
        sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
        let accept = base64::engine::general_purpose::STANDARD.encode(sha.finalize());
        assert_eq!(
            header(&head, "Sec-WebSocket-Accept"),
            Some(accept.as_str()),
            "Sec-WebSocket-Accept in {head}"
        );
        (
            WsClient {
                stream,
                serializer,
                buf: rest,
                partial: None,
            },
            head,
        )
    }

    /// Writes one masked frame.
    pub fn send_frame(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        let mut out = Vec::with_capacity(payload.len() + 14);
        out.push(0x80 | opcode);
        match payload.len() {
            n if n < 126 => out.push(0x80 | n as u8),
            n if n <= 0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        let mask: [u8; 4] = rand::random();
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.stream.write_all(&out)
    }

    /// One complete frame off the front of the buffer: (fin, opcode, payload).
    fn take_frame(&mut self) -> Result<Option<(bool, u8, Vec<u8>)>, RecvError> {
        let b = &self.buf;
        if b.len() < 2 {
            return Ok(None);
        }
        let fin = b[0] & 0x80 != 0;
        let opcode = b[0] & 0x0F;
        if b[0] & 0x70 != 0 {
            return Err(RecvError::Framing(format!("RSV bits set: {:#04x}", b[0])));
        }
        let masked = b[1] & 0x80 != 0;
        let (len, mut at) = match b[1] & 0x7F {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as usize, 4),
            127 if b.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&b[2..10]);
                (u64::from_be_bytes(n) as usize, 10)
            }
            126 | 127 => return Ok(None),
            n => (n as usize, 2),
        };
        if len > WS_MAX_MESSAGE {
            return Err(RecvError::Framing(format!("frame of {len} bytes")));
        }
        let mask = if masked {
            if b.len() < at + 4 {
                return Ok(None);
            }
            let m = [b[at], b[at + 1], b[at + 2], b[at + 3]];
            at += 4;
            Some(m)
        } else {
            None
        };
        if b.len() < at + len {
            return Ok(None);
        }
        let mut payload: Vec<u8> = self.buf[at..at + len].to_vec();
        if let Some(m) = mask {
            payload
                .iter_mut()
                .enumerate()
                .for_each(|(i, x)| *x ^= m[i % 4]);
        }
        self.buf.drain(..at + len);
        Ok(Some((fin, opcode, payload)))
    }
}

impl WampConn for WsClient {
    fn serializer(&self) -> Serializer {
        self.serializer
    }

    fn send(&mut self, m: &Message) -> io::Result<()> {
        let bytes = codec::encode(self.serializer, m);
        self.send_payload(&bytes)
    }

    fn send_payload(&mut self, payload: &[u8]) -> io::Result<()> {
        let opcode = if self.serializer.is_binary() {
            0x2
        } else {
            0x1
        };
        self.send_frame(opcode, payload)
    }

    fn recv(&mut self, timeout: Duration) -> Result<Message, RecvError> {
        let deadline = Instant::now() + timeout;
        let mut chunk = [0u8; 16 * 1024];
        loop {
            while let Some((fin, opcode, payload)) = self.take_frame()? {
                match opcode {
                    0x8 => {
                        let code = (payload.len() >= 2)
                            .then(|| u16::from_be_bytes([payload[0], payload[1]]));
                        // Echo the close (best effort) as RFC 6455 asks.
                        let _ = self.send_frame(0x8, &payload[..payload.len().min(2)]);
                        return Err(RecvError::Closed(code));
                    }
                    0x9 => self.send_frame(0xA, &payload).map_err(RecvError::Io)?,
                    0xA => {}
                    0x0..=0x2 => {
                        let mut message = match (opcode, self.partial.take()) {
                            (0x0, Some(p)) => p,
                            (0x0, None) => {
                                return Err(RecvError::Framing("continuation without start".into()))
                            }
                            (_, Some(_)) => {
                                return Err(RecvError::Framing(
                                    "new message inside a fragmented one".into(),
                                ))
                            }
                            (_, None) => Vec::new(),
                        };
                        message.extend_from_slice(&payload);
                        if message.len() > WS_MAX_MESSAGE {
                            return Err(RecvError::Framing("message too long".into()));
                        }
                        if !fin {
                            self.partial = Some(message);
                            continue;
                        }
                        return codec::decode(self.serializer, &Bytes::from(message))
                            .map_err(RecvError::Decode);
                    }
                    op => return Err(RecvError::Framing(format!("unknown opcode {op:#x}"))),
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RecvError::Timeout);
            }
            self.stream
                .set_read_timeout(Some(left))
                .map_err(RecvError::Io)?;
            match self.stream.read(&mut chunk) {
                Ok(0) => return Err(RecvError::Closed(None)),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if is_closed(&e) => return Err(RecvError::Closed(None)),
                Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(RecvError::Io(e)),
            }
        }
    }
}
