//! WAMP-over-RawSocket, sans-IO: the 4-octet opening handshake and the length-prefixed framing.
//!
//! This module owns the wire rules of the RawSocket transport (WAMP spec, advanced profile,
//! "RawSocket Transport") and nothing else: it never touches a socket. The connection task in
//! `net/` reads bytes into a [`BytesMut`], hands them to the functions here and acts on what
//! comes back.
//!
//! Data flow on the router side:
//!
//! 1. Read exactly 4 octets and call [`parse_client_handshake`]. On success map the
//!    [`SerializerId`] to a codec; if the router does not speak it, or refuses the client for
//!    another reason, write [`reject_reply`] and close. Otherwise write [`server_reply`] with our
//!    receive limit (see [`exponent_for`]). A [`HandshakeReject`] says which reply, if any, to
//!    send before closing ([`HandshakeReject::reply`]).
//! 2. Feed every read into a [`FrameDecoder`] built with the limit we announced. It yields
//!    [`RawFrame`]s whose payloads are `Bytes` split off the read buffer without copying, and
//!    refuses an over-long frame as soon as its header is seen, before buffering its payload.
//! 3. To send, write [`encode_header`] and then the (shared) payload `Bytes`; the writer must
//!    not exceed the limit the peer announced ([`ClientHello::max_len`]).
//!
//! The client side is the mirror image: [`client_hello`] and [`parse_server_reply`].
//!
//! Serializers travel as the raw 4-bit id ([`SerializerId`]) rather than as a codec type: the
//! transport only has to carry the number, and the codec layer decides which ids it supports.

use bytes::{Buf, Bytes, BytesMut};
use thiserror::Error;

/// First octet of every handshake request and reply. No valid HTTP request starts with it, so a
/// listener can tell RawSocket from WebSocket by this one byte.
pub const MAGIC: u8 = 0x7F;

/// Largest value of the 4-bit `LENGTH` exponent in the handshake.
pub const MAX_EXPONENT: u8 = 15;

/// Smallest maximum message length a peer can announce: 2^9 octets.
pub const MIN_MAX_LEN: u32 = 1 << 9;

/// Largest frame payload the framing can express, and the largest limit a peer can announce:
/// 2^24 octets (16 MiB). It is the only length that uses the extra `X` bit of the frame header.
pub const MAX_FRAME_LEN: u32 = 1 << 24;

/// Length of the handshake messages and of a frame header, in octets.
pub const HEADER_LEN: usize = 4;

/// The `SERIALIZER` nibble of the handshake: which WAMP serializer the connection uses.
///
/// Kept as the raw wire value (1..=15) on purpose: the transport only carries it, and the codec
/// layer maps the ids it implements to its own serializer type (unknown ids are answered with
/// [`RejectCode::SerializerUnsupported`]). The value 0 is illegal and cannot be constructed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SerializerId(u8);

impl SerializerId {
    /// JSON (1).
    pub const JSON: Self = Self(1);
    /// MessagePack (2).
    pub const MSGPACK: Self = Self(2);
    /// CBOR (3).
    pub const CBOR: Self = Self(3);
    /// UBJSON (4).
    pub const UBJSON: Self = Self(4);
    /// FlatBuffers (5).
    pub const FLATBUFFERS: Self = Self(5);

    /// The id for a wire nibble, or `None` for 0 (illegal) and values that do not fit 4 bits.
    pub const fn new(nibble: u8) -> Option<Self> {
        if nibble == 0 || nibble > 0x0F {
            None
        } else {
            Some(Self(nibble))
        }
    }

    /// The wire nibble (1..=15).
    pub const fn get(self) -> u8 {
        self.0
    }
}

/// Error codes of a handshake error reply (upper nibble of its second octet).
///
/// Code 0 is illegal and codes 5..=15 are reserved, so neither can be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RejectCode {
    /// 1: the router does not speak the requested serializer (or it was 0).
    SerializerUnsupported = 1,
    /// 2: the maximum message length the client announced is not acceptable to the router.
    MaxLengthUnacceptable = 2,
    /// 3: the client set reserved bits (an unsupported feature).
    ReservedBitsUsed = 3,
    /// 4: the router has reached its maximum connection count.
    MaxConnectionCountReached = 4,
}

impl RejectCode {
    /// The code for a wire value, `None` for 0 and the reserved 5..=15.
    pub const fn from_u8(code: u8) -> Option<Self> {
        match code {
            1 => Some(Self::SerializerUnsupported),
            2 => Some(Self::MaxLengthUnacceptable),
            3 => Some(Self::ReservedBitsUsed),
            4 => Some(Self::MaxConnectionCountReached),
            _ => None,
        }
    }
}

/// Maximum message length for a handshake `LENGTH` exponent: 2^(9+exp) octets, so 512 for 0
/// and 16 MiB for 15. `None` if `exp` does not fit the 4-bit field.
pub const fn max_len_from_exponent(exp: u8) -> Option<u32> {
    if exp > MAX_EXPONENT {
        None
    } else {
        Some(1u32 << (9 + exp as u32))
    }
}

/// The exponent to announce for a receive limit of `max_len` octets: the largest one whose
/// length does not exceed `max_len`, so the peer never sends more than we accept.
///
/// Saturates at both ends of what the protocol can say: below 512 octets it returns 0 (512 is
/// the smallest limit RawSocket can announce), from 16 MiB up it returns 15.
pub const fn exponent_for(max_len: u32) -> u8 {
    if max_len < MIN_MAX_LEN {
        return 0;
    }
    // floor(log2(max_len)) - 9, capped at 15.
    let log2 = 31 - max_len.leading_zeros();
    let exp = log2 - 9;
    if exp > MAX_EXPONENT as u32 {
        MAX_EXPONENT
    } else {
        exp as u8
    }
}

/// A valid client handshake request, as seen by the router.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientHello {
    /// The serializer the client asks for. The router must either echo it or reject.
    pub serializer: SerializerId,
    /// Largest message the client is willing to receive; the router MUST NOT send more.
    pub max_len: u32,
}

/// Why a client handshake request is refused, and what to answer before closing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum HandshakeReject {
    /// The first octet is not [`MAGIC`]: this is not a RawSocket client at all (maybe HTTP).
    /// The spec says to fail the connection; no RawSocket reply is sent.
    #[error("not a RawSocket handshake (first octet {0:#04x})")]
    NotRawSocket(u8),
    /// The serializer nibble is 0, which the spec calls illegal.
    #[error("illegal serializer id 0")]
    IllegalSerializer,
    /// The third or fourth octet is not zero.
    #[error("reserved handshake octets are not zero")]
    ReservedBitsUsed,
}

impl HandshakeReject {
    /// The error reply to write before failing the connection, if any.
    ///
    /// Serializer 0 is answered with [`RejectCode::SerializerUnsupported`] (the spec has no
    /// separate code for it and only says to fail the connection; a reply costs nothing and tells
    /// the client why). A wrong magic octet gets no reply: the peer does not speak RawSocket.
    pub const fn reply(&self) -> Option<[u8; 4]> {
        match self {
            Self::NotRawSocket(_) => None,
            Self::IllegalSerializer => Some(reject_reply(RejectCode::SerializerUnsupported)),
            Self::ReservedBitsUsed => Some(reject_reply(RejectCode::ReservedBitsUsed)),
        }
    }
}

/// Parse the 4-octet handshake request a client sends first.
///
/// Every `LENGTH` value is valid on the wire; whether the announced limit is acceptable is router
/// policy (answer [`RejectCode::MaxLengthUnacceptable`] if not). Whether the serializer is
/// supported is the codec's call (answer [`RejectCode::SerializerUnsupported`] if not).
pub const fn parse_client_handshake(req: [u8; 4]) -> Result<ClientHello, HandshakeReject> {
    if req[0] != MAGIC {
        return Err(HandshakeReject::NotRawSocket(req[0]));
    }
    if req[2] != 0 || req[3] != 0 {
        return Err(HandshakeReject::ReservedBitsUsed);
    }
    let Some(serializer) = SerializerId::new(req[1] & 0x0F) else {
        return Err(HandshakeReject::IllegalSerializer);
    };
    Ok(ClientHello {
        serializer,
        max_len: 1u32 << (9 + (req[1] >> 4) as u32),
    })
}

/// The success reply of the router: echoes `serializer` and announces the largest message the
/// router accepts, as a `LENGTH` exponent (see [`exponent_for`]; values above 15 count as 15).
pub const fn server_reply(serializer: SerializerId, our_max_len_exp: u8) -> [u8; 4] {
    hello_octets(serializer, our_max_len_exp)
}

/// The error reply of the router: `0x7F`, the code in the upper nibble of the second octet with
/// the lower nibble zero, then two zero octets.
pub const fn reject_reply(code: RejectCode) -> [u8; 4] {
    [MAGIC, (code as u8) << 4, 0, 0]
}

/// The handshake request of a client: asks for `serializer` and announces the largest message the
/// client accepts, as a `LENGTH` exponent (values above 15 count as 15).
pub const fn client_hello(serializer: SerializerId, max_len_exp: u8) -> [u8; 4] {
    hello_octets(serializer, max_len_exp)
}

const fn hello_octets(serializer: SerializerId, exp: u8) -> [u8; 4] {
    let exp = if exp > MAX_EXPONENT {
        MAX_EXPONENT
    } else {
        exp
    };
    [MAGIC, (exp << 4) | serializer.0, 0, 0]
}

/// A router's accepting reply, as seen by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerHello {
    /// The serializer of the connection (always the one the client asked for).
    pub serializer: SerializerId,
    /// Largest message the router accepts; the client MUST NOT send more.
    pub max_len: u32,
}

/// Why the client gives up on a router's handshake reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum ClientHandshakeError {
    /// The first octet is not [`MAGIC`].
    #[error("not a RawSocket handshake reply (first octet {0:#04x})")]
    NotRawSocket(u8),
    /// The third or fourth octet is not zero.
    #[error("reserved octets in the handshake reply are not zero")]
    ReservedBitsUsed,
    /// The router refused the connection with a defined error code.
    #[error("router rejected the handshake: {0:?}")]
    Rejected(RejectCode),
    /// The router refused with code 0 or a reserved code (5..=15).
    #[error("router rejected the handshake with undefined code {0}")]
    RejectedUndefined(u8),
    /// The router accepted but echoed a different serializer than requested.
    #[error("router answered with serializer {got}, requested {requested}")]
    SerializerMismatch {
        /// What the client asked for.
        requested: u8,
        /// What the router echoed.
        got: u8,
    },
}

/// Parse the router's 4-octet reply to [`client_hello`]. `requested` is the serializer the client
/// asked for; any other serializer in an accepting reply fails the handshake.
pub const fn parse_server_reply(
    reply: [u8; 4],
    requested: SerializerId,
) -> Result<ServerHello, ClientHandshakeError> {
    if reply[0] != MAGIC {
        return Err(ClientHandshakeError::NotRawSocket(reply[0]));
    }
    if reply[2] != 0 || reply[3] != 0 {
        return Err(ClientHandshakeError::ReservedBitsUsed);
    }
    let ser = reply[1] & 0x0F;
    let high = reply[1] >> 4;
    if ser == 0 {
        return match RejectCode::from_u8(high) {
            Some(code) => Err(ClientHandshakeError::Rejected(code)),
            None => Err(ClientHandshakeError::RejectedUndefined(high)),
        };
    }
    if ser != requested.0 {
        return Err(ClientHandshakeError::SerializerMismatch {
            requested: requested.0,
            got: ser,
        });
    }
    Ok(ServerHello {
        serializer: requested,
        max_len: 1u32 << (9 + high as u32),
    })
}

/// Transport message type (`TTT` bits of a frame header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// 0: a serialized WAMP message.
    Message = 0,
    /// 1: PING; the peer must answer with exactly one PONG echoing the payload.
    Ping = 1,
    /// 2: PONG, the answer to a PING.
    Pong = 2,
}

/// A decoded frame header: type and payload length (0..=2^24).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// The transport message type.
    pub kind: FrameKind,
    /// Payload length in octets, excluding the 4-octet header.
    pub len: u32,
}

/// A framing violation. Each one means the peer broke the protocol and the connection must be
/// failed; an incomplete frame is not an error (the decoder returns `Ok(None)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum FrameError {
    /// One of the four reserved high bits of the first octet is set.
    #[error("reserved bits set in frame header (first octet {0:#04x})")]
    ReservedBits(u8),
    /// The type is 3..=7, which the spec reserves.
    #[error("reserved frame type {0}")]
    UnknownType(u8),
    /// The `X` bit (length 2^24) is set together with non-zero low length bits.
    #[error("frame length bit 24 set with non-zero low bits")]
    InvalidLength,
    /// The frame is longer than the limit: the one we announced when decoding, or what the
    /// framing can express (2^24) when encoding.
    #[error("frame of {len} octets exceeds the limit of {max}")]
    TooLong {
        /// Length of the offending frame.
        len: u32,
        /// The limit it broke.
        max: u32,
    },
}

/// Parse a 4-octet frame header.
///
/// Layout: `RRRR XTTT` then a 24-bit big-endian length; `X` is a 25th length bit that may only be
/// set for a length of exactly 2^24 (the 24 low bits then all zero).
pub const fn parse_frame_header(h: &[u8; 4]) -> Result<FrameHeader, FrameError> {
    let first = h[0];
    if first & 0xF0 != 0 {
        return Err(FrameError::ReservedBits(first));
    }
    let kind = match first & 0x07 {
        0 => FrameKind::Message,
        1 => FrameKind::Ping,
        2 => FrameKind::Pong,
        t => return Err(FrameError::UnknownType(t)),
    };
    let low = ((h[1] as u32) << 16) | ((h[2] as u32) << 8) | h[3] as u32;
    let len = if first & 0x08 != 0 {
        if low != 0 {
            return Err(FrameError::InvalidLength);
        }
        MAX_FRAME_LEN
    } else {
        low
    };
    Ok(FrameHeader { kind, len })
}

/// Encode a frame header for a payload of `len` octets. Fails only if `len` exceeds 2^24, which
/// the framing cannot express.
///
/// The caller must also respect the limit the peer announced in the handshake, which is usually
/// smaller; this function does not know it.
pub const fn encode_header(kind: FrameKind, len: u32) -> Result<[u8; 4], FrameError> {
    if len > MAX_FRAME_LEN {
        return Err(FrameError::TooLong {
            len,
            max: MAX_FRAME_LEN,
        });
    }
    if len == MAX_FRAME_LEN {
        return Ok([0x08 | kind as u8, 0, 0, 0]);
    }
    Ok([kind as u8, (len >> 16) as u8, (len >> 8) as u8, len as u8])
}

/// One complete transport message. Payloads share the read buffer's allocation (no copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawFrame {
    /// A serialized WAMP message for the codec.
    Message(Bytes),
    /// A PING; answer with a PONG carrying the same `Bytes`.
    Ping(Bytes),
    /// A PONG.
    Pong(Bytes),
}

/// Streaming frame decoder for the receiving half of a connection.
///
/// It keeps no partial state: a frame stays in the caller's buffer until it is complete, then it
/// is split off (`split_to` + `freeze`). The header is checked as soon as its 4 octets are in the
/// buffer, so a frame over the limit is refused before any of its payload is waited for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDecoder {
    /// The receive limit we announced in the handshake. It applies to every frame type: the spec
    /// says to fail the connection on any message over the limit, and a PING payload is buffered
    /// just like a message.
    max_len: u32,
}

impl FrameDecoder {
    /// A decoder refusing payloads longer than `max_len` octets (capped at 2^24).
    pub const fn new(max_len: u32) -> Self {
        let max_len = if max_len > MAX_FRAME_LEN {
            MAX_FRAME_LEN
        } else {
            max_len
        };
        Self { max_len }
    }

    /// A decoder for the limit announced with `exp` in the handshake (values above 15 count as
    /// 15).
    pub const fn for_exponent(exp: u8) -> Self {
        let exp = if exp > MAX_EXPONENT {
            MAX_EXPONENT
        } else {
            exp
        };
        Self::new(1u32 << (9 + exp as u32))
    }

    /// The receive limit in octets.
    pub const fn max_len(&self) -> u32 {
        self.max_len
    }

    /// Take the next complete frame off the front of `buf`.
    ///
    /// `Ok(None)` means more bytes are needed (see [`FrameDecoder::bytes_needed`]); `buf` is then
    /// untouched. An error means the connection must be failed; `buf` is left as it was.
    pub fn decode(&self, buf: &mut BytesMut) -> Result<Option<RawFrame>, FrameError> {
        let Some(header) = self.peek_header(buf)? else {
            return Ok(None);
        };
        let total = HEADER_LEN + header.len as usize;
        if buf.len() < total {
            return Ok(None);
        }
        buf.advance(HEADER_LEN);
        let payload = buf.split_to(header.len as usize).freeze();
        Ok(Some(match header.kind {
            FrameKind::Message => RawFrame::Message(payload),
            FrameKind::Ping => RawFrame::Ping(payload),
            FrameKind::Pong => RawFrame::Pong(payload),
        }))
    }

    /// The next complete frame at the front of `buf`, borrowed in place: its kind and payload
    /// (it takes [`HEADER_LEN`] + the payload's length octets of `buf`). `None` until `buf`
    /// holds the whole frame. For readers that look at each frame once and keep nothing (no
    /// allocation, no copy).
    pub fn peek<'a>(&self, buf: &'a [u8]) -> Result<Option<(FrameKind, &'a [u8])>, FrameError> {
        let Some(header) = self.peek_header(buf)? else {
            return Ok(None);
        };
        let total = HEADER_LEN + header.len as usize;
        Ok(buf
            .get(HEADER_LEN..total)
            .map(|payload| (header.kind, payload)))
    }

    /// How many more octets `buf` needs before [`FrameDecoder::decode`] can return the next
    /// frame (0 if it already can, or if the buffered header is invalid and `decode` will fail).
    /// A reader can use it to size its next read.
    pub fn bytes_needed(&self, buf: &BytesMut) -> usize {
        match self.peek_header(buf) {
            Ok(Some(h)) => (HEADER_LEN + h.len as usize).saturating_sub(buf.len()),
            Ok(None) => HEADER_LEN - buf.len(),
            Err(_) => 0,
        }
    }

    /// The header at the front of `buf`, checked against the limit; `None` if under 4 octets.
    fn peek_header(&self, buf: &[u8]) -> Result<Option<FrameHeader>, FrameError> {
        let Some(raw) = buf.first_chunk::<HEADER_LEN>() else {
            return Ok(None);
        };
        let header = parse_frame_header(raw)?;
        if header.len > self.max_len {
            return Err(FrameError::TooLong {
                len: header.len,
                max: self.max_len,
            });
        }
        Ok(Some(header))
    }
}

#[cfg(test)]
mod tests;
