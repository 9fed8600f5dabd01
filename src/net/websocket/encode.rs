//! Frames out: headers, masking, compression of outgoing messages.
//!
//! Two ways to send a data message:
//!
//! * [`FrameEncoder::message`] writes header and (masked, compressed) payload into a
//!   `BytesMut`; right for clients (who must mask, so must copy) and for one-off messages.
//! * [`FrameEncoder::message_parts`] returns the header bytes and the payload as a `Bytes`
//!   separately. For a server without deflate the payload is the caller's `Bytes` itself, so an
//!   event encoded once can be fanned out to many sessions with one small header each and a
//!   vectored write, never copying the payload. [`header_for`] is the same without an encoder.

use bytes::{BufMut, Bytes, BytesMut};

use super::deflate::Deflater;
use super::frame::{apply_mask, OpCode, WsError, FIN, MASK, MAX_CONTROL_PAYLOAD, RSV1};
use super::Role;

/// A frame header held inline (at most 14 bytes: 2 + 8 length + 4 mask).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderBytes {
    bytes: [u8; 14],
    len: u8,
}

impl HeaderBytes {
    /// The header as bytes to write before the payload.
    pub fn as_slice(&self) -> &[u8] {
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }

    fn new(fin: bool, rsv1: bool, opcode: OpCode, mask: Option<[u8; 4]>, len: usize) -> Self {
        let mut bytes = [0u8; 14];
        bytes[0] = (if fin { FIN } else { 0 }) | (if rsv1 { RSV1 } else { 0 }) | opcode as u8;
        let mask_bit = if mask.is_some() { MASK } else { 0 };
        let mut at = 2;
        if len < 126 {
            bytes[1] = mask_bit | len as u8;
        } else if let Ok(len16) = u16::try_from(len) {
            bytes[1] = mask_bit | 126;
            bytes[2..4].copy_from_slice(&len16.to_be_bytes());
            at = 4;
        } else {
            bytes[1] = mask_bit | 127;
            bytes[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            at = 10;
        }
        if let Some(key) = mask {
            bytes[at..at + 4].copy_from_slice(&key);
            at += 4;
        }
        Self { bytes, len: at as u8 }
    }
}

impl AsRef<[u8]> for HeaderBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

/// Header of a server's unmasked, unfragmented, uncompressed data frame of `len` bytes; write
/// it, then the payload unchanged.
pub fn header_for(len: usize, binary: bool) -> HeaderBytes {
    let opcode = if binary { OpCode::Binary } else { OpCode::Text };
    HeaderBytes::new(true, false, opcode, None, len)
}

/// Writes one frame with full control over FIN and RSV1; a client role masks with a random
/// key. Control frame payloads longer than 125 bytes are truncated (they cannot be sent).
pub fn encode_frame_parts(
    role: Role,
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    payload: &[u8],
    out: &mut BytesMut,
) {
    let mask = match role {
        Role::Client => Some(rand::random::<[u8; 4]>()),
        Role::Server => None,
    };
    write_frame(fin, rsv1, opcode, mask, payload, out);
}

/// Writes one unfragmented, uncompressed frame (see [`encode_frame_parts`]).
pub fn encode_frame(role: Role, opcode: OpCode, payload: &[u8], out: &mut BytesMut) {
    encode_frame_parts(role, true, false, opcode, payload, out);
}

/// Writes a close frame. With `code` `None` the payload is empty and `reason` is ignored; the
/// reason is cut to 123 bytes at a character boundary.
pub fn encode_close(role: Role, code: Option<u16>, reason: &str, out: &mut BytesMut) {
    let mut payload = [0u8; MAX_CONTROL_PAYLOAD];
    let len = match code {
        None => 0,
        Some(code) => {
            payload[..2].copy_from_slice(&code.to_be_bytes());
            let mut cut = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
            while !reason.is_char_boundary(cut) {
                cut -= 1;
            }
            payload[2..2 + cut].copy_from_slice(&reason.as_bytes()[..cut]);
            2 + cut
        }
    };
    encode_frame(role, OpCode::Close, &payload[..len], out);
}

/// Writes a ping (payload truncated to 125 bytes).
pub fn encode_ping(role: Role, payload: &[u8], out: &mut BytesMut) {
    encode_frame(role, OpCode::Ping, payload, out);
}

/// Writes a pong, normally echoing a ping's payload (truncated to 125 bytes).
pub fn encode_pong(role: Role, payload: &[u8], out: &mut BytesMut) {
    encode_frame(role, OpCode::Pong, payload, out);
}

/// Writes header, then payload masked with `mask` if given.
pub(crate) fn write_frame(
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    mask: Option<[u8; 4]>,
    payload: &[u8],
    out: &mut BytesMut,
) {
    let payload = if opcode.is_control() {
        payload.get(..MAX_CONTROL_PAYLOAD).unwrap_or(payload)
    } else {
        payload
    };
    let header = HeaderBytes::new(fin, rsv1, opcode, mask, payload.len());
    out.reserve(header.as_slice().len() + payload.len());
    out.put_slice(header.as_slice());
    let start = out.len();
    out.put_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key);
    }
}

/// Per-connection encoder of data messages, compressing them when deflate was negotiated.
#[derive(Debug)]
pub struct FrameEncoder {
    role: Role,
    deflater: Option<Deflater>,
    /// Reused compression buffer (a connection compresses one message at a time).
    scratch: Vec<u8>,
}

impl FrameEncoder {
    /// An encoder for the `role` end, without compression.
    pub fn new(role: Role) -> Self {
        Self { role, deflater: None, scratch: Vec::new() }
    }

    /// Enables permessage-deflate with this connection's compressor.
    pub fn with_deflater(mut self, deflater: Deflater) -> Self {
        self.deflater = Some(deflater);
        self
    }

    /// The role this encoder writes for.
    pub fn role(&self) -> Role {
        self.role
    }

    /// Writes one whole data message as a single frame, compressed if deflate is on and the
    /// message is long enough.
    pub fn message(&mut self, binary: bool, payload: &[u8], out: &mut BytesMut) -> Result<(), WsError> {
        let opcode = if binary { OpCode::Binary } else { OpCode::Text };
        match &mut self.deflater {
            Some(deflater) if deflater.should_compress(payload.len()) => {
                self.scratch.clear();
                deflater.compress(payload, &mut self.scratch)?;
                encode_frame_parts(self.role, true, true, opcode, &self.scratch, out);
            }
            _ => encode_frame(self.role, opcode, payload, out),
        }
        Ok(())
    }

    /// Header and payload of one data message, separately, for a vectored write. Server
    /// without compression (or a message under the compression threshold): the payload is
    /// `payload` itself, not copied. Otherwise the compressed and/or masked copy.
    pub fn message_parts(&mut self, binary: bool, payload: &Bytes) -> Result<(HeaderBytes, Bytes), WsError> {
        let opcode = if binary { OpCode::Binary } else { OpCode::Text };
        let mask = match self.role {
            Role::Client => Some(rand::random::<[u8; 4]>()),
            Role::Server => None,
        };
        let (rsv1, mut body) = match &mut self.deflater {
            Some(deflater) if deflater.should_compress(payload.len()) => {
                let mut compressed = Vec::new();
                deflater.compress(payload, &mut compressed)?;
                (true, compressed)
            }
            _ if mask.is_none() => {
                return Ok((HeaderBytes::new(true, false, opcode, None, payload.len()), payload.clone()))
            }
            _ => (false, payload.to_vec()),
        };
        if let Some(key) = mask {
            apply_mask(&mut body, key);
        }
        Ok((HeaderBytes::new(true, rsv1, opcode, mask, body.len()), Bytes::from(body)))
    }
}
