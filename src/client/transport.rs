//! The lean client transport (shared by the client library and the load generator): connect (TCP, Unix, TLS), run the RawSocket or WebSocket
//! handshake with the crate's sans-IO pieces, then move WAMP messages as frames.
//!
//! After the handshake a connection is split in two halves that tasks own separately:
//! [`Reader`] reads big chunks into a `BytesMut` and hands out one frame at a time (zero-copy
//! slices of that buffer); [`Writer`] encodes many messages into one buffer and writes them with
//! one call. Both halves are plain structs with no task of their own, so a scenario decides how
//! many tasks a session needs (one for a closed loop, two when sending is paced by a timer).
//!
//! Transport-level pings (RawSocket PING, WebSocket ping) are kept by the [`Reader`] (the latest
//! [`MAX_PINGS`]) for whoever owns the [`Writer`] to answer with [`Writer::pong`]; the `idle`
//! scenario does (Crossbar's auto-ping drops a session that does not answer). Not implemented:
//! WebSocket compression.

use crate::codec::{self, DecodeError, Message, Serializer};
use crate::net::rawsocket::{self, FrameKind, RawFrame, SerializerId};
use crate::net::websocket::{self, ClientConfig, ClientHandshake, Role, WsEvent};
use bytes::{Bytes, BytesMut};
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
#[cfg(feature = "client-glommio")]
use glommio::net::{TcpStream, UnixStream};
use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};

use super::url::{Addr, Endpoint, Transport};

/// A transport failure: connecting, TLS, the RawSocket/WebSocket handshake, framing or I/O.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// Reading or writing the stream failed (or connecting, with what was being done).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error.
        source: io::Error,
    },
    /// TLS settings or the TLS handshake.
    #[error("TLS: {0}")]
    Tls(String),
    /// The RawSocket or WebSocket opening handshake failed.
    #[error("{0}")]
    Handshake(String),
    /// The peer broke the framing.
    #[error("framing: {0}")]
    Framing(String),
    /// A frame is not a valid WAMP message.
    #[error("decoding: {0}")]
    Decode(#[from] DecodeError),
}

impl From<io::Error> for TransportError {
    fn from(source: io::Error) -> Self {
        TransportError::Io {
            context: "I/O".into(),
            source,
        }
    }
}

/// The result type of this module.
pub type Result<T, E = TransportError> = std::result::Result<T, E>;

fn tls_err(e: impl std::fmt::Display) -> TransportError {
    TransportError::Tls(e.to_string())
}

/// Bytes asked for per read call. Reads land in a per-thread scratch buffer, so an idle
/// connection keeps no read buffer of its own.
const READ_CHUNK: usize = 256 * 1024;

/// Largest message we accept (announced in the RawSocket handshake as 2^24).
const MAX_MESSAGE: usize = 1 << 24;

/// Unanswered transport pings a [`Reader`] keeps (the oldest are dropped past this).
pub const MAX_PINGS: usize = 4;

thread_local! {
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_CHUNK]);
}

/// TLS settings for `rss://` and `wss://`.
#[derive(Clone)]
pub struct Tls {
    connector: futures_rustls::TlsConnector,
    /// Overrides the server name checked against the certificate (default: the URL's host).
    server_name: Option<String>,
}

impl Tls {
    /// Trusts the PEM certificates in `ca`, or (with `insecure`) any certificate at all.
    /// Reads `ca` (a blocking call): build this before entering an executor, or accept the
    /// one small file read.
    pub fn new(ca: Option<&PathBuf>, insecure: bool) -> Result<Tls> {
        let config = if insecure {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_safe_default_protocol_versions()
                .map_err(tls_err)?
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
                .with_no_client_auth()
        } else {
            let path = ca.ok_or_else(|| {
                tls_err("rss:// and wss:// need a CA file (or insecure, for tests)")
            })?;
            let pem = std::fs::read(path).map_err(|e| TransportError::Io {
                context: format!("{}", path.display()),
                source: e,
            })?;
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pemfile::certs(&mut &pem[..]) {
                roots
                    .add(cert.map_err(|e| tls_err(format!("{}: {e}", path.display())))?)
                    .map_err(|e| tls_err(format!("{}: {e}", path.display())))?;
            }
            if roots.is_empty() {
                return Err(tls_err(format!("{}: no certificate found", path.display())));
            }
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?
            .with_root_certificates(roots)
            .with_no_client_auth()
        };
        Ok(Tls {
            connector: futures_rustls::TlsConnector::from(Arc::new(config)),
            server_name: None,
        })
    }

    /// Checks the server certificate against `name` instead of the URL's host.
    pub fn with_server_name(mut self, name: Option<String>) -> Tls {
        self.server_name = name;
        self
    }
}

/// `--tls-insecure`: accepts any server certificate (still checks the handshake signatures).
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(feature = "client-tokio")]
type TokioTcp = TokioIo<tokio::net::TcpStream>;
#[cfg(feature = "client-tokio")]
type TokioUnix = TokioIo<tokio::net::UnixStream>;

/// Any byte stream a router can be reached over.
pub enum Stream {
    /// Plain TCP.
    #[cfg(feature = "client-glommio")]
    Tcp(TcpStream),
    /// Plain Unix socket.
    #[cfg(feature = "client-glommio")]
    Unix(UnixStream),
    /// TLS over TCP.
    #[cfg(feature = "client-glommio")]
    TlsTcp(Box<futures_rustls::client::TlsStream<TcpStream>>),
    /// TLS over a Unix socket.
    #[cfg(feature = "client-glommio")]
    TlsUnix(Box<futures_rustls::client::TlsStream<UnixStream>>),
    /// Plain TCP, on tokio.
    #[cfg(feature = "client-tokio")]
    TokioTcp(TokioTcp),
    /// Plain Unix socket, on tokio.
    #[cfg(feature = "client-tokio")]
    TokioUnix(TokioUnix),
    /// TLS over TCP, on tokio.
    #[cfg(feature = "client-tokio")]
    TokioTlsTcp(Box<futures_rustls::client::TlsStream<TokioTcp>>),
    /// TLS over a Unix socket, on tokio.
    #[cfg(feature = "client-tokio")]
    TokioTlsUnix(Box<futures_rustls::client::TlsStream<TokioUnix>>),
}

macro_rules! each_stream {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            #[cfg(feature = "client-glommio")]
            Stream::Tcp($s) => $e,
            #[cfg(feature = "client-glommio")]
            Stream::Unix($s) => $e,
            #[cfg(feature = "client-glommio")]
            Stream::TlsTcp($s) => $e,
            #[cfg(feature = "client-glommio")]
            Stream::TlsUnix($s) => $e,
            #[cfg(feature = "client-tokio")]
            Stream::TokioTcp($s) => $e,
            #[cfg(feature = "client-tokio")]
            Stream::TokioUnix($s) => $e,
            #[cfg(feature = "client-tokio")]
            Stream::TokioTlsTcp($s) => $e,
            #[cfg(feature = "client-tokio")]
            Stream::TokioTlsUnix($s) => $e,
        }
    };
}

impl Stream {
    /// The socket of a plain (not TLS) glommio TCP stream.
    fn plain_fd(&self) -> Option<std::os::fd::RawFd> {
        match self {
            #[cfg(feature = "client-glommio")]
            Stream::Tcp(s) => Some(std::os::fd::AsRawFd::as_raw_fd(s)),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        each_stream!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        each_stream!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        each_stream!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<io::Result<()>> {
        each_stream!(self, s => Pin::new(s).poll_close(cx))
    }
}

/// Reader side framing.
enum Deframer {
    Raw(rawsocket::FrameDecoder),
    Ws(Box<websocket::FrameDecoder>),
}

/// Writer side framing.
enum Framer {
    Raw,
    Ws(Box<websocket::FrameEncoder>),
}

/// Opens the byte stream (glommio sockets: call it inside a glommio executor) and runs the
/// transport handshake; returns the two halves.
#[cfg(feature = "client-glommio")]
pub async fn connect(
    ep: &Endpoint,
    ser: Serializer,
    tls: Option<&Tls>,
) -> Result<(Reader, Writer)> {
    connect_on(super::rt::Rt::Glommio, ep, ser, tls).await
}

/// [`connect`] with the sockets of `rt`.
pub(crate) async fn connect_on(
    rt: super::rt::Rt,
    ep: &Endpoint,
    ser: Serializer,
    tls: Option<&Tls>,
) -> Result<(Reader, Writer)> {
    let mut stream = open(rt, ep, tls).await?;
    let (deframer, framer, leftover) = match &ep.transport {
        Transport::RawSocket => {
            let id = match ser {
                Serializer::Json => SerializerId::JSON,
                Serializer::MsgPack => SerializerId::MSGPACK,
                Serializer::Cbor => SerializerId::CBOR,
                Serializer::Ubjson | Serializer::Bjdata => SerializerId::UBJSON,
            };
            stream
                .write_all(&rawsocket::client_hello(id, rawsocket::MAX_EXPONENT))
                .await?;
            let mut reply = [0u8; 4];
            stream.read_exact(&mut reply).await?;
            rawsocket::parse_server_reply(reply, id)
                .map_err(|e| TransportError::Handshake(format!("RawSocket: {e}")))?;
            (
                Deframer::Raw(rawsocket::FrameDecoder::new(MAX_MESSAGE as u32)),
                Framer::Raw,
                BytesMut::new(),
            )
        }
        Transport::WebSocket { host, path } => {
            let config = ClientConfig {
                host: host.clone(),
                path: path.clone(),
                subprotocols: vec![ser.subprotocol().into()],
                deflate: None,
                extra_headers: Vec::new(),
            };
            let ws_err =
                |e: websocket::HandshakeError| TransportError::Handshake(format!("WebSocket: {e}"));
            let (hs, request) = ClientHandshake::new(&config).map_err(ws_err)?;
            stream.write_all(&request).await?;
            let mut buf = BytesMut::new();
            let (result, used) = loop {
                if let Some(r) = hs.parse_response(&buf).map_err(ws_err)? {
                    break r;
                }
                if read_into(&mut stream, &mut buf).await? == 0 {
                    return Err(TransportError::Handshake(
                        "WebSocket: connection closed during the handshake".into(),
                    ));
                }
            };
            let _ = buf.split_to(used);
            let (dec, enc) = websocket::codec(
                Role::Client,
                MAX_MESSAGE,
                result.deflate.as_ref(),
                &Default::default(),
            );
            (Deframer::Ws(Box::new(dec)), Framer::Ws(Box::new(enc)), buf)
        }
    };
    let fd = stream.plain_fd();
    let (r, w) = futures_lite::io::split(stream);
    Ok((
        Reader {
            stream: r,
            fd,
            deframer,
            buf: leftover,
            closed: false,
            pings: Vec::new(),
            ser,
        },
        Writer {
            stream: w,
            framer,
            ser,
            scratch: Vec::with_capacity(256),
            out: BytesMut::new(),
            pending: 0,
        },
    ))
}

async fn open(rt: super::rt::Rt, ep: &Endpoint, tls: Option<&Tls>) -> Result<Stream> {
    let tls = if ep.tls {
        Some(tls.ok_or_else(|| tls_err("TLS endpoint without TLS settings"))?)
    } else {
        None
    };
    let server_name = |t: &Tls| {
        let name = t
            .server_name
            .clone()
            .unwrap_or_else(|| ep.server_name.clone());
        rustls::pki_types::ServerName::try_from(name.clone())
            .map_err(|e| tls_err(format!("server name {name:?}: {e}")))
    };
    let handshake = |e: io::Error| tls_err(format!("handshake: {e}"));
    let connect_err = |e: io::Error| TransportError::Io {
        context: match &ep.addr {
            Addr::Tcp(a) => format!("connect {a}"),
            Addr::Unix(p) => format!("connect {}", p.display()),
        },
        source: e,
    };
    let nodelay_err = |e: io::Error| TransportError::Io {
        context: "TCP_NODELAY".into(),
        source: e,
    };
    macro_rules! wrap {
        ($s:expr, $plain:path, $tls:path) => {
            match tls {
                None => $plain($s),
                Some(t) => $tls(Box::new(
                    t.connector
                        .connect(server_name(t)?, $s)
                        .await
                        .map_err(handshake)?,
                )),
            }
        };
    }
    Ok(match (rt, &ep.addr) {
        #[cfg(feature = "client-glommio")]
        (super::rt::Rt::Glommio, Addr::Tcp(a)) => {
            let s = TcpStream::connect(*a)
                .await
                .map_err(|e| connect_err(e.into()))?;
            s.set_nodelay(true).map_err(|e| nodelay_err(e.into()))?;
            wrap!(s, Stream::Tcp, Stream::TlsTcp)
        }
        #[cfg(feature = "client-glommio")]
        (super::rt::Rt::Glommio, Addr::Unix(p)) => {
            let s = UnixStream::connect(p)
                .await
                .map_err(|e| connect_err(e.into()))?;
            wrap!(s, Stream::Unix, Stream::TlsUnix)
        }
        #[cfg(feature = "client-tokio")]
        (super::rt::Rt::Tokio, Addr::Tcp(a)) => {
            let s = tokio::net::TcpStream::connect(*a)
                .await
                .map_err(connect_err)?;
            s.set_nodelay(true).map_err(nodelay_err)?;
            wrap!(TokioIo(s), Stream::TokioTcp, Stream::TokioTlsTcp)
        }
        #[cfg(feature = "client-tokio")]
        (super::rt::Rt::Tokio, Addr::Unix(p)) => {
            let s = tokio::net::UnixStream::connect(p)
                .await
                .map_err(connect_err)?;
            wrap!(TokioIo(s), Stream::TokioUnix, Stream::TokioTlsUnix)
        }
    })
}

/// Reads what is available (at most [`READ_CHUNK`]) and appends it to `buf`.
async fn read_into<R: AsyncRead + Unpin>(r: &mut R, buf: &mut BytesMut) -> io::Result<usize> {
    poll_fn(|cx| {
        SCRATCH.with(|s| {
            let mut scratch = s.borrow_mut();
            match Pin::new(&mut *r).poll_read(cx, &mut scratch[..]) {
                Poll::Ready(Ok(n)) => {
                    buf.extend_from_slice(&scratch[..n]);
                    Poll::Ready(Ok(n))
                }
                other => other,
            }
        })
    })
    .await
}

/// Keeps a transport ping's payload for [`Reader::take_pings`] (the oldest beyond
/// [`MAX_PINGS`] are dropped).
fn keep_ping(pings: &mut Vec<Bytes>, payload: Bytes) {
    if pings.len() >= MAX_PINGS {
        pings.remove(0);
    }
    pings.push(payload);
}

/// Hands the complete RawSocket frames at the front of `data` to `f` (messages) or `pings`,
/// borrowed in place; returns how many octets they took.
fn frames_in_place(
    dec: rawsocket::FrameDecoder,
    data: &[u8],
    pings: &mut Vec<Bytes>,
    f: &mut impl FnMut(&[u8]),
) -> Result<usize> {
    let mut at = 0;
    loop {
        match dec.peek(&data[at..]) {
            Ok(Some((kind, payload))) => {
                at += rawsocket::HEADER_LEN + payload.len();
                match kind {
                    FrameKind::Message => f(payload),
                    FrameKind::Ping => keep_ping(pings, Bytes::copy_from_slice(payload)),
                    FrameKind::Pong => {}
                }
            }
            Ok(None) => return Ok(at),
            Err(e) => return Err(TransportError::Framing(e.to_string())),
        }
    }
}

/// [`Reader::drain_frames`] on RawSocket: the complete frames in `buf`, then `buf` keeps the rest.
fn drain_raw(
    dec: rawsocket::FrameDecoder,
    buf: &mut BytesMut,
    pings: &mut Vec<Bytes>,
    f: &mut impl FnMut(&[u8]),
) -> Result<()> {
    let res = frames_in_place(dec, buf, pings, f);
    if let Ok(n) = res {
        bytes::Buf::advance(buf, n);
    }
    res.map(drop)
}

/// Takes `data`, bytes just read: every complete RawSocket message frame goes to `f`, read in
/// place where it lies whole in `data`; only a frame cut by the end of a read is copied into
/// `buf` (which holds the start of such a frame from the read before), until it is whole.
fn take_raw(
    dec: rawsocket::FrameDecoder,
    buf: &mut BytesMut,
    pings: &mut Vec<Bytes>,
    mut data: &[u8],
    f: &mut impl FnMut(&[u8]),
) -> Result<()> {
    if !buf.is_empty() {
        // Complete the frame begun by an earlier read: its header first, then its payload.
        loop {
            let need = dec.bytes_needed(buf).min(data.len());
            if need == 0 {
                break;
            }
            buf.extend_from_slice(&data[..need]);
            data = &data[need..];
        }
        drain_raw(dec, buf, pings, f)?;
        if !buf.is_empty() {
            // Still not whole: `data` is used up.
            return Ok(());
        }
        if buf.capacity() > READ_CHUNK {
            // A large frame passed through: do not keep its buffer.
            *buf = BytesMut::new();
        }
    }
    let n = frames_in_place(dec, data, pings, f)?;
    buf.extend_from_slice(&data[n..]);
    Ok(())
}

/// The receiving half of a connection.
pub struct Reader {
    stream: ReadHalf<Stream>,
    /// The socket, when reads may go to it directly ([`Reader::fill_now`]): plain TCP on glommio.
    fd: Option<std::os::fd::RawFd>,
    deframer: Deframer,
    buf: BytesMut,
    /// A WebSocket close frame arrived: nothing more will.
    closed: bool,
    /// Payloads of transport pings not yet taken by [`Reader::take_pings`].
    pings: Vec<Bytes>,
    /// The serializer of this connection.
    pub ser: Serializer,
}

impl Reader {
    /// The next complete frame already buffered, without reading. `Ok(None)`: read more (or, after
    /// a WebSocket close, nothing more). Errors when the peer broke the framing.
    pub fn buffered_frame(&mut self) -> Result<Option<Bytes>> {
        loop {
            match &mut self.deframer {
                Deframer::Raw(dec) => match dec
                    .decode(&mut self.buf)
                    .map_err(|e| TransportError::Framing(e.to_string()))?
                {
                    Some(RawFrame::Message(b)) => return Ok(Some(b)),
                    Some(RawFrame::Ping(p)) => self.keep_ping(p),
                    Some(RawFrame::Pong(_)) => continue,
                    None => return Ok(None),
                },
                Deframer::Ws(dec) => match dec
                    .poll(&mut self.buf)
                    .map_err(|e| TransportError::Framing(e.to_string()))?
                {
                    Some(WsEvent::Message { data, .. }) => return Ok(Some(data)),
                    Some(WsEvent::Ping(p)) => self.keep_ping(p),
                    Some(WsEvent::Pong(_)) => continue,
                    Some(WsEvent::Close { .. }) => {
                        self.closed = true;
                        return Ok(None);
                    }
                    None => return Ok(None),
                },
            }
        }
    }

    fn keep_ping(&mut self, payload: Bytes) {
        keep_ping(&mut self.pings, payload);
    }

    /// The payloads of the transport pings received since the last call, oldest first.
    pub fn take_pings(&mut self) -> Vec<Bytes> {
        std::mem::take(&mut self.pings)
    }

    /// Whether a WebSocket close frame arrived.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Whether [`Reader::fill_now`] can read this stream (plain TCP on glommio).
    pub fn reads_directly(&self) -> bool {
        self.fd.is_some()
    }

    /// Reads what the socket has now, without waiting and without the runtime's reactor (plain
    /// TCP on glommio; `Ok(None)` on any other stream). `Ok(Some(true))`: bytes were read;
    /// `Ok(Some(false))`: end of stream; `Ok(None)`: nothing to read now.
    ///
    /// A reader that calls this in a loop (yielding between tries) keeps no readiness poll
    /// armed on its socket while data keeps coming: the sender's kernel then has no one to
    /// wake, and this thread is not interrupted to be told (see `bench/FINDINGS.md`). loadgen's
    /// busy readers use it; [`Reader::fill`] is the waiting read.
    pub fn fill_now(&mut self) -> Result<Option<bool>> {
        self.recv_now_into(|r, data| {
            r.buf.extend_from_slice(data);
            Ok(())
        })
    }

    /// Reads what the socket has now into the scratch buffer and gives it to `take` (see
    /// [`Reader::fill_now`] for the answers).
    fn recv_now_into(
        &mut self,
        take: impl FnOnce(&mut Self, &[u8]) -> Result<()>,
    ) -> Result<Option<bool>> {
        let Some(fd) = self.fd else {
            return Ok(None);
        };
        if self.closed {
            return Ok(Some(false));
        }
        SCRATCH.with(|s| {
            let mut scratch = s.borrow_mut();
            match crate::net::sock::recv_now(fd, &mut scratch[..]) {
                Some(Ok(0)) => Ok(Some(false)),
                Some(Ok(n)) => take(self, &scratch[..n]).map(|()| Some(true)),
                Some(Err(e)) => Err(e.into()),
                None => Ok(None),
            }
        })
    }

    /// Reads more bytes; `Ok(false)` at end of stream.
    pub async fn fill(&mut self) -> Result<bool> {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            // Keep no buffer while idle.
            self.buf = BytesMut::new();
        }
        Ok(read_into(&mut self.stream, &mut self.buf).await? > 0)
    }

    /// The next frame, reading as needed; `Ok(None)` at end of stream.
    pub async fn frame(&mut self) -> Result<Option<Bytes>> {
        loop {
            if let Some(f) = self.buffered_frame()? {
                return Ok(Some(f));
            }
            if self.closed || !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// The next decoded message, reading as needed; `Ok(None)` at end of stream.
    pub async fn message(&mut self) -> Result<Option<Message>> {
        match self.frame().await? {
            Some(f) => Ok(Some(codec::decode(self.ser, &f)?)),
            None => Ok(None),
        }
    }

    /// Hands every complete message frame already buffered to `f`, in order; transport pings
    /// are kept as with [`Reader::buffered_frame`]. On RawSocket the frames are borrowed from the
    /// buffer: nothing is allocated or copied per frame.
    pub fn drain_frames(&mut self, f: &mut impl FnMut(&[u8])) -> Result<()> {
        match self.deframer {
            Deframer::Raw(dec) => drain_raw(dec, &mut self.buf, &mut self.pings, f),
            Deframer::Ws(_) => {
                while let Some(frame) = self.buffered_frame()? {
                    f(&frame);
                }
                Ok(())
            }
        }
    }

    /// Takes bytes just read (in a scratch buffer) and hands every complete message frame to
    /// `f` ([`take_raw`] on RawSocket).
    fn take(&mut self, data: &[u8], f: &mut impl FnMut(&[u8])) -> Result<()> {
        match self.deframer {
            Deframer::Raw(dec) => take_raw(dec, &mut self.buf, &mut self.pings, data, f),
            Deframer::Ws(_) => {
                self.buf.extend_from_slice(data);
                self.drain_frames(f)
            }
        }
    }

    /// Waits until the stream has bytes, reads what it has, and hands every complete message
    /// frame to `f` — read in place where it lies whole in what was read; only a frame cut by the
    /// end of a read is copied, until it is whole: the receive path of a reader that only looks at
    /// each message, such as loadgen's subscribers. `Ok(false)` at end of stream.
    pub async fn read_frames(&mut self, f: &mut impl FnMut(&[u8])) -> Result<bool> {
        if self.closed {
            return Ok(false);
        }
        poll_fn(|cx| {
            SCRATCH.with(|s| {
                let mut scratch = s.borrow_mut();
                match Pin::new(&mut self.stream).poll_read(cx, &mut scratch[..]) {
                    Poll::Ready(Ok(0)) => Poll::Ready(Ok(false)),
                    Poll::Ready(Ok(n)) => Poll::Ready(self.take(&scratch[..n], f).map(|()| true)),
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e.into())),
                    Poll::Pending => Poll::Pending,
                }
            })
        })
        .await
    }

    /// [`Reader::read_frames`] without waiting (plain TCP on glommio, as [`Reader::fill_now`]):
    /// `Ok(Some(true))`: bytes were read; `Ok(Some(false))`: end of stream; `Ok(None)`: nothing
    /// to read now, or a stream this cannot read directly.
    pub fn read_frames_now(&mut self, f: &mut impl FnMut(&[u8])) -> Result<Option<bool>> {
        self.recv_now_into(|r, data| r.take(data, f))
    }
}

/// The sending half of a connection: messages are queued with [`Writer::push`] and written
/// together by [`Writer::flush`].
pub struct Writer {
    stream: WriteHalf<Stream>,
    framer: Framer,
    /// The serializer of this connection.
    pub ser: Serializer,
    scratch: Vec<u8>,
    out: BytesMut,
    /// Messages queued in `out` and not yet written.
    pending: usize,
}

impl Writer {
    /// Encodes and frames `msg` into the write buffer.
    pub fn push(&mut self, msg: &Message) {
        self.scratch.clear();
        codec::encode_into(self.ser, msg, &mut self.scratch);
        match &mut self.framer {
            Framer::Raw => {
                // Cannot fail: our messages are far below 2^24 octets.
                if let Ok(h) =
                    rawsocket::encode_header(FrameKind::Message, self.scratch.len() as u32)
                {
                    self.out.extend_from_slice(&h);
                    self.out.extend_from_slice(&self.scratch);
                }
            }
            Framer::Ws(enc) => {
                // Cannot fail without compression.
                let _ = enc.message(self.ser.is_binary(), &self.scratch, &mut self.out);
            }
        }
        self.pending += 1;
    }

    /// Queues the answer to a transport ping (RawSocket PONG or WebSocket pong) echoing
    /// `payload`; [`Writer::flush`] writes it. Not counted in [`Writer::pending`].
    pub fn pong(&mut self, payload: &[u8]) {
        match &mut self.framer {
            Framer::Raw => {
                // A ping's payload came in a frame, so its length fits a header.
                if let Ok(h) = rawsocket::encode_header(FrameKind::Pong, payload.len() as u32) {
                    self.out.extend_from_slice(&h);
                    self.out.extend_from_slice(payload);
                }
            }
            Framer::Ws(_) => websocket::encode_pong(Role::Client, payload, &mut self.out),
        }
    }

    /// Messages queued and not yet written.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Writes everything queued; returns how many messages that was.
    pub async fn flush(&mut self) -> Result<usize> {
        if self.out.is_empty() {
            return Ok(0);
        }
        self.stream.write_all(&self.out).await?;
        self.out.clear();
        if self.out.capacity() > 1 << 20 {
            self.out = BytesMut::new();
        }
        Ok(std::mem::take(&mut self.pending))
    }

    /// Sends `msg` now.
    pub async fn send(&mut self, msg: &Message) -> Result<()> {
        self.push(msg);
        self.flush().await.map(|_| ())
    }

    /// Closes the stream (TLS close_notify / TCP FIN).
    pub async fn close(&mut self) {
        let _ = self.stream.close().await;
    }
}

/// A tokio stream seen through the `futures` I/O traits the transport code uses.
#[cfg(feature = "client-tokio")]
pub struct TokioIo<T>(pub T);

#[cfg(feature = "client-tokio")]
impl<T: tokio::io::AsyncRead + Unpin> futures_lite::io::AsyncRead for TokioIo<T> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let mut rb = tokio::io::ReadBuf::new(buf);
        match std::pin::Pin::new(&mut self.0).poll_read(cx, &mut rb) {
            std::task::Poll::Ready(Ok(())) => std::task::Poll::Ready(Ok(rb.filled().len())),
            std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(e)),
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

#[cfg(feature = "client-tokio")]
impl<T: tokio::io::AsyncWrite + Unpin> futures_lite::io::AsyncWrite for TokioIo<T> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: FrameKind, payload: &[u8]) -> Vec<u8> {
        let mut v = rawsocket::encode_header(kind, payload.len() as u32)
            .expect("a short frame")
            .to_vec();
        v.extend_from_slice(payload);
        v
    }

    /// Every way of cutting a stream into two or three reads hands the same frames to `f`, in
    /// order, keeps the pings, and leaves nothing behind.
    #[test]
    fn frames_read_in_place_survive_every_cut() {
        let messages: Vec<Vec<u8>> =
            vec![b"one".to_vec(), vec![7; 300], Vec::new(), b"last".to_vec()];
        let mut stream = Vec::new();
        stream.extend(frame(FrameKind::Message, &messages[0]));
        stream.extend(frame(FrameKind::Ping, b"ping"));
        stream.extend(frame(FrameKind::Message, &messages[1]));
        stream.extend(frame(FrameKind::Pong, b"pong"));
        stream.extend(frame(FrameKind::Message, &messages[2]));
        stream.extend(frame(FrameKind::Message, &messages[3]));
        let dec = rawsocket::FrameDecoder::new(1 << 16);
        for a in 0..=stream.len() {
            for b in (a..=stream.len()).step_by(7) {
                let (mut buf, mut pings, mut got) = (BytesMut::new(), Vec::new(), Vec::new());
                for part in [&stream[..a], &stream[a..b], &stream[b..]] {
                    take_raw(dec, &mut buf, &mut pings, part, &mut |m| {
                        got.push(m.to_vec())
                    })
                    .expect("valid frames");
                }
                assert_eq!(got, messages, "cut at {a} and {b}");
                assert_eq!(pings, vec![Bytes::from_static(b"ping")]);
                assert!(buf.is_empty(), "cut at {a} and {b}");
            }
        }
    }

    /// A frame over the announced limit is refused as soon as its header is in, whether it
    /// came whole or cut.
    #[test]
    fn an_oversized_frame_is_refused_in_place_and_cut() {
        let dec = rawsocket::FrameDecoder::new(16);
        let big = frame(FrameKind::Message, &[0; 17]);
        let mut f = |_: &[u8]| panic!("no frame may be handed on");
        let (mut buf, mut pings) = (BytesMut::new(), Vec::new());
        assert!(take_raw(dec, &mut buf, &mut pings, &big, &mut f).is_err());
        let (mut buf, mut pings) = (BytesMut::new(), Vec::new());
        take_raw(dec, &mut buf, &mut pings, &big[..2], &mut f).expect("too short to judge");
        assert!(take_raw(dec, &mut buf, &mut pings, &big[2..], &mut f).is_err());
    }
}
