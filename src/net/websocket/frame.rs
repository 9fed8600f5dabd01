//! Frames in: the sans-IO decoder that turns received bytes into WebSocket events.
//!
//! The transport appends what it reads to a [`BytesMut`] and calls [`FrameDecoder::poll`]
//! until it returns `Ok(None)` (more bytes needed). Each frame header is checked against every
//! RFC 6455 rule as soon as its first two bytes are there, and the message size limit is
//! checked from the header's length *before* the payload is buffered. A whole frame is then
//! split off the buffer, unmasked in place, and either handed out as is (a single unfragmented,
//! uncompressed frame: zero copy) or appended to the message being reassembled (fragments,
//! or inflated through the connection's [`Inflater`] when RSV1 is set).
//!
//! Encoding lives in `encode.rs`; this file owns the wire constants both share.

use bytes::{Buf, Bytes, BytesMut};

use super::deflate::Inflater;
use super::Role;

/// Everything that makes a peer's byte stream unacceptable. Each maps to the close code the
/// endpoint must send before dropping the connection ([`WsError::close_code`]). An incomplete
/// frame is not an error: `poll` returns `Ok(None)`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    /// A client sent an unmasked frame (RFC 6455 5.1).
    #[error("frame from client is not masked")]
    UnmaskedFrame,
    /// A server sent a masked frame (RFC 6455 5.1).
    #[error("frame from server is masked")]
    MaskedFrame,
    /// RSV2/RSV3 set, or RSV1 set without permessage-deflate or on a frame other than the
    /// first of a data message (RFC 6455 5.2, RFC 7692 6).
    #[error("reserved bits set")]
    ReservedBits,
    /// Opcodes 3-7 and 0xB-0xF are reserved (RFC 6455 5.2).
    #[error("reserved opcode {0:#x}")]
    ReservedOpcode(u8),
    /// Control frame payload over 125 bytes (RFC 6455 5.5).
    #[error("control frame payload longer than 125 bytes")]
    ControlFrameTooLong,
    /// Control frame without FIN (RFC 6455 5.5).
    #[error("fragmented control frame")]
    FragmentedControlFrame,
    /// Continuation frame with no fragmented message in progress (RFC 6455 5.4).
    #[error("continuation frame without a message in progress")]
    UnexpectedContinuation,
    /// Text or binary frame while a fragmented message is in progress (RFC 6455 5.4).
    #[error("new data frame while a fragmented message is in progress")]
    ExpectedContinuation,
    /// 64-bit payload length with its most significant bit set (RFC 6455 5.2).
    #[error("64-bit payload length with the most significant bit set")]
    InvalidLength,
    /// Close frame with a 1-byte payload (RFC 6455 5.5.1).
    #[error("close frame with a 1-byte payload")]
    InvalidClosePayload,
    /// Close code that may not be sent on the wire (RFC 6455 7.4).
    #[error("invalid close code {0}")]
    InvalidCloseCode(u16),
    /// The message (wire size, or decompressed size) passes the configured limit.
    #[error("message larger than {limit} bytes")]
    MessageTooBig {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// A compressed message inflates past the decompressed size limit set with
    /// [`FrameDecoder::with_max_decompressed_size`] (a zip bomb).
    #[error("message inflates to more than {limit} bytes")]
    DecompressedTooBig {
        /// The configured limit in bytes.
        limit: usize,
    },
    /// Text message or close reason that is not UTF-8 (RFC 6455 8.1).
    #[error("text is not valid UTF-8")]
    InvalidUtf8,
    /// RSV1 payload that does not inflate.
    #[error("compressed payload is not valid DEFLATE data")]
    InvalidCompressedData,
    /// Our own compressor failed (not the peer's fault).
    #[error("compression failed")]
    Compression,
}

impl WsError {
    /// The close code to send for this error (RFC 6455 7.4.1).
    pub fn close_code(&self) -> u16 {
        match self {
            WsError::MessageTooBig { .. } | WsError::DecompressedTooBig { .. } => 1009,
            WsError::InvalidUtf8 | WsError::InvalidCompressedData => 1007,
            WsError::Compression => 1011,
            _ => 1002,
        }
    }
}

/// A frame opcode (RFC 6455 5.2). Reserved values have no variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation = 0x0,
    /// 0x1: UTF-8 text data.
    Text = 0x1,
    /// 0x2: binary data.
    Binary = 0x2,
    /// 0x8: connection close.
    Close = 0x8,
    /// 0x9: ping.
    Ping = 0x9,
    /// 0xA: pong.
    Pong = 0xA,
}

impl OpCode {
    /// The opcode for a 4-bit value, `None` if reserved.
    pub fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xA => OpCode::Pong,
            _ => return None,
        })
    }

    /// Close, ping and pong are control frames.
    pub fn is_control(self) -> bool {
        (self as u8) & 0x8 != 0
    }
}

pub(crate) const FIN: u8 = 0x80;
pub(crate) const RSV1: u8 = 0x40;
pub(crate) const RSV2_RSV3: u8 = 0x30;
pub(crate) const MASK: u8 = 0x80;
/// Largest control frame payload (RFC 6455 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// What the peer sent, one complete unit at a time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WsEvent {
    /// A whole data message (reassembled and inflated). Text is valid UTF-8.
    Message {
        /// Binary (opcode 2) rather than text (opcode 1).
        binary: bool,
        /// The payload; a slice of the receive buffer when the message was one plain frame.
        data: Bytes,
    },
    /// A ping; answer with a pong carrying the same payload.
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// The peer closes. `code` is `None` when the close frame had no payload. After this the
    /// decoder yields nothing more (RFC 6455 5.5.1: no data after Close).
    Close {
        /// The close status code, validated per RFC 6455 7.4.
        code: Option<u16>,
        /// The UTF-8 reason, possibly empty.
        reason: String,
    },
}

/// Whether `code` may appear in a received close frame. RFC 6455 7.4.1 defines 1000-1003 and
/// 1007-1011; 1012-1014 were registered with IANA later (service restart, try again later, bad
/// gateway) and real servers send them, so we accept them too; 3000-4999 belong to libraries and
/// applications. 1004-1006 and 1015 are reserved and never sent; all else is unassigned.
pub fn is_valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// XORs `data` with the 4-byte masking `key` (RFC 6455 5.3), 8 bytes per step. The data must
/// start at a frame payload's first byte (mask phase 0).
pub fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = data.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // The remainder starts at a multiple of 8, so the mask phase is 0 again.
    for (byte, k) in chunks.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

/// A parsed frame header.
#[derive(Debug, Clone, Copy)]
struct Header {
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    payload_len: u64,
    header_len: usize,
}

/// Parses a header from the start of `buf`. Rules that depend only on the header bytes are
/// checked here, as early as possible (two bytes suffice for most).
fn parse_header(buf: &[u8]) -> Result<Option<Header>, WsError> {
    let (b0, b1) = match buf {
        [b0, b1, ..] => (*b0, *b1),
        _ => return Ok(None),
    };
    if b0 & RSV2_RSV3 != 0 {
        return Err(WsError::ReservedBits);
    }
    let opcode = OpCode::from_bits(b0 & 0x0f).ok_or(WsError::ReservedOpcode(b0 & 0x0f))?;
    let fin = b0 & FIN != 0;
    let len7 = b1 & 0x7f;
    if opcode.is_control() {
        if !fin {
            return Err(WsError::FragmentedControlFrame);
        }
        if usize::from(len7) > MAX_CONTROL_PAYLOAD {
            return Err(WsError::ControlFrameTooLong);
        }
    }
    let (payload_len, mut header_len) = match len7 {
        126 => match buf.get(2..4) {
            Some(&[a, b]) => (u64::from(u16::from_be_bytes([a, b])), 4),
            _ => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(bytes) => {
                let mut be = [0u8; 8];
                be.copy_from_slice(bytes);
                let len = u64::from_be_bytes(be);
                if len >> 63 != 0 {
                    return Err(WsError::InvalidLength);
                }
                (len, 10)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 2),
    };
    let mask = if b1 & MASK != 0 {
        match buf.get(header_len..header_len + 4) {
            Some(&[a, b, c, d]) => {
                header_len += 4;
                Some([a, b, c, d])
            }
            _ => return Ok(None),
        }
    } else {
        None
    };
    Ok(Some(Header {
        fin,
        rsv1: b0 & RSV1 != 0,
        opcode,
        mask,
        payload_len,
        header_len,
    }))
}

/// A fragmented or compressed data message being reassembled.
#[derive(Debug)]
struct PartialMessage {
    binary: bool,
    compressed: bool,
    /// The message so far (inflated if compressed).
    data: Vec<u8>,
    /// Payload bytes received on the wire so far (the limit applies to these too).
    wire_len: usize,
    /// Prefix of `data` known to be valid UTF-8 (text only): lets an invalid sequence fail
    /// at the fragment that carries it rather than at the end of the message.
    utf8_checked: usize,
}

/// Sans-IO WebSocket frame decoder for one connection and one [`Role`].
#[derive(Debug)]
pub struct FrameDecoder {
    role: Role,
    max_message_size: usize,
    /// Limit on inflated messages when set apart from `max_message_size`
    /// ([`WsError::DecompressedTooBig`]); None: `max_message_size` applies
    /// ([`WsError::MessageTooBig`]).
    max_decompressed_size: Option<usize>,
    /// Present iff permessage-deflate was negotiated; RSV1 is a protocol error without it.
    inflater: Option<Inflater>,
    message: Option<PartialMessage>,
    /// A Close frame was received; everything after it is ignored.
    closed: bool,
    /// The first error; the stream cannot be resynchronised after one, so it is repeated.
    failed: Option<WsError>,
}

impl FrameDecoder {
    /// A decoder for the `role` end, rejecting messages over `max_message_size` bytes (on the
    /// wire and, when compressed, after inflating) with [`WsError::MessageTooBig`].
    pub fn new(role: Role, max_message_size: usize) -> Self {
        Self {
            role,
            max_message_size,
            max_decompressed_size: None,
            inflater: None,
            message: None,
            closed: false,
            failed: None,
        }
    }

    /// Enables permessage-deflate (RSV1) with this connection's inflater.
    pub fn with_inflater(mut self, inflater: Inflater) -> Self {
        self.inflater = Some(inflater);
        self
    }

    /// Limits inflated (permessage-deflate) messages to `limit` bytes, apart from the wire
    /// limit: a message that inflates past it fails with [`WsError::DecompressedTooBig`] as
    /// soon as the inflater passes it (zip-bomb safe). Without this call the message size
    /// limit applies to inflated messages too.
    pub fn with_max_decompressed_size(mut self, limit: usize) -> Self {
        self.max_decompressed_size = Some(limit);
        self
    }

    /// Whether a fragmented or compressed message is being reassembled (some of it is in,
    /// the rest is not).
    pub fn in_message(&self) -> bool {
        self.message.is_some()
    }

    /// Whether a Close frame has been received.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Decodes the next event from the front of `buf`, consuming the bytes it used.
    /// `Ok(None)`: more bytes are needed (or a Close was already received). After an error the
    /// same error is returned on every call; send a close frame with
    /// [`WsError::close_code`] and drop the connection.
    pub fn poll(&mut self, buf: &mut BytesMut) -> Result<Option<WsEvent>, WsError> {
        if let Some(error) = &self.failed {
            return Err(error.clone());
        }
        if self.closed {
            return Ok(None);
        }
        let result = self.poll_frames(buf);
        if let Err(error) = &result {
            self.failed = Some(error.clone());
        }
        result
    }

    fn poll_frames(&mut self, buf: &mut BytesMut) -> Result<Option<WsEvent>, WsError> {
        loop {
            let Some(header) = parse_header(buf)? else {
                return Ok(None);
            };
            let payload_len = self.check(&header)?;
            if buf.len() - header.header_len < payload_len {
                return Ok(None);
            }
            buf.advance(header.header_len);
            let mut payload = buf.split_to(payload_len);
            if let Some(key) = header.mask {
                apply_mask(&mut payload, key);
            }
            if let Some(event) = self.handle(&header, payload)? {
                return Ok(Some(event));
            }
        }
    }

    /// Rules that depend on the role and on the message in progress; returns the payload
    /// length, which fits in memory once this passes.
    fn check(&self, header: &Header) -> Result<usize, WsError> {
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => return Err(WsError::UnmaskedFrame),
            (Role::Client, true) => return Err(WsError::MaskedFrame),
            _ => {}
        }
        let first_data_frame = matches!(header.opcode, OpCode::Text | OpCode::Binary);
        if header.rsv1 && (self.inflater.is_none() || !first_data_frame) {
            return Err(WsError::ReservedBits);
        }
        let already = match header.opcode {
            OpCode::Continuation => match &self.message {
                Some(message) => message.wire_len,
                None => return Err(WsError::UnexpectedContinuation),
            },
            OpCode::Text | OpCode::Binary if self.message.is_some() => {
                return Err(WsError::ExpectedContinuation)
            }
            _ => 0,
        };
        let limit = self.max_message_size;
        let too_big = WsError::MessageTooBig { limit };
        let len = usize::try_from(header.payload_len).map_err(|_| too_big.clone())?;
        if !header.opcode.is_control() && len > limit.saturating_sub(already) {
            return Err(too_big);
        }
        Ok(len)
    }

    fn handle(&mut self, header: &Header, payload: BytesMut) -> Result<Option<WsEvent>, WsError> {
        let limit = self.max_message_size;
        let mut message = match header.opcode {
            OpCode::Ping => return Ok(Some(WsEvent::Ping(payload.freeze()))),
            OpCode::Pong => return Ok(Some(WsEvent::Pong(payload.freeze()))),
            OpCode::Close => {
                let event = parse_close(&payload)?;
                self.closed = true;
                return Ok(Some(event));
            }
            OpCode::Text | OpCode::Binary if header.fin && !header.rsv1 => {
                let binary = header.opcode == OpCode::Binary;
                if !binary && std::str::from_utf8(&payload).is_err() {
                    return Err(WsError::InvalidUtf8);
                }
                return Ok(Some(WsEvent::Message {
                    binary,
                    data: payload.freeze(),
                }));
            }
            OpCode::Text | OpCode::Binary => PartialMessage {
                binary: header.opcode == OpCode::Binary,
                compressed: header.rsv1,
                data: Vec::new(),
                wire_len: 0,
                utf8_checked: 0,
            },
            OpCode::Continuation => match self.message.take() {
                Some(message) => message,
                None => return Err(WsError::UnexpectedContinuation),
            },
        };
        message.wire_len += payload.len();
        match (&mut self.inflater, message.compressed) {
            (Some(inflater), true) => {
                let inflated = self.max_decompressed_size.unwrap_or(limit);
                let mut run = || {
                    inflater.inflate(&payload, &mut message.data, inflated)?;
                    if header.fin {
                        inflater.finish_message(&mut message.data, inflated)?;
                    }
                    Ok(())
                };
                run().map_err(|e| match (e, self.max_decompressed_size) {
                    (WsError::MessageTooBig { limit }, Some(_)) => {
                        WsError::DecompressedTooBig { limit }
                    }
                    (e, _) => e,
                })?;
            }
            _ => message.data.extend_from_slice(&payload),
        }
        if !message.binary {
            check_utf8(&message.data, &mut message.utf8_checked, header.fin)?;
        }
        if header.fin {
            let PartialMessage { binary, data, .. } = message;
            return Ok(Some(WsEvent::Message {
                binary,
                data: Bytes::from(data),
            }));
        }
        self.message = Some(message);
        Ok(None)
    }
}

/// Validates the unchecked tail of `data`; an incomplete sequence at the end is allowed until
/// the message is `complete`.
fn check_utf8(data: &[u8], checked: &mut usize, complete: bool) -> Result<(), WsError> {
    let rest = data.get(*checked..).unwrap_or_default();
    match std::str::from_utf8(rest) {
        Ok(_) => {
            *checked = data.len();
            Ok(())
        }
        Err(e) if e.error_len().is_none() && !complete => {
            *checked += e.valid_up_to();
            Ok(())
        }
        Err(_) => Err(WsError::InvalidUtf8),
    }
}

/// Parses a close frame payload (RFC 6455 5.5.1, 7.4).
fn parse_close(payload: &[u8]) -> Result<WsEvent, WsError> {
    match payload {
        [] => Ok(WsEvent::Close {
            code: None,
            reason: String::new(),
        }),
        [_] => Err(WsError::InvalidClosePayload),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !is_valid_close_code(code) {
                return Err(WsError::InvalidCloseCode(code));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| WsError::InvalidUtf8)?;
            Ok(WsEvent::Close {
                code: Some(code),
                reason: reason.to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests;
