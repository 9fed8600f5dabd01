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
        Self {
            bytes,
            len: at as u8,
        }
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
        Self {
            role,
            deflater: None,
            scratch: Vec::new(),
        }
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
    pub fn message(
        &mut self,
        binary: bool,
        payload: &[u8],
        out: &mut BytesMut,
    ) -> Result<(), WsError> {
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
    pub fn message_parts(
        &mut self,
        binary: bool,
        payload: &Bytes,
    ) -> Result<(HeaderBytes, Bytes), WsError> {
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
                return Ok((
                    HeaderBytes::new(true, false, opcode, None, payload.len()),
                    payload.clone(),
                ))
            }
            _ => (false, payload.to_vec()),
        };
        if let Some(key) = mask {
            apply_mask(&mut body, key);
        }
        Ok((
            HeaderBytes::new(true, rsv1, opcode, mask, body.len()),
            Bytes::from(body),
        ))
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::net::websocket::deflate::{DeflateConfig, DeflateParams, Inflater};
    use crate::net::websocket::frame::{FrameDecoder, WsEvent};

    /// Encoders and decoders for both ends of one connection.
    struct Pair {
        client_out: FrameEncoder,
        server_in: FrameDecoder,
        server_out: FrameEncoder,
        client_in: FrameDecoder,
    }

    fn pair(deflate: Option<DeflateParams>) -> Pair {
        let limit = 1 << 20;
        let mut pair = Pair {
            client_out: FrameEncoder::new(Role::Client),
            server_in: FrameDecoder::new(Role::Server, limit),
            server_out: FrameEncoder::new(Role::Server),
            client_in: FrameDecoder::new(Role::Client, limit),
        };
        if let Some(params) = deflate {
            let config = DeflateConfig {
                min_size: 1,
                ..Default::default()
            };
            pair.client_out =
                pair.client_out
                    .with_deflater(Deflater::new(&params, Role::Client, &config));
            pair.server_out =
                pair.server_out
                    .with_deflater(Deflater::new(&params, Role::Server, &config));
            pair.server_in = pair
                .server_in
                .with_inflater(Inflater::new(&params, Role::Server));
            pair.client_in = pair
                .client_in
                .with_inflater(Inflater::new(&params, Role::Client));
        }
        pair
    }

    fn events(decoder: &mut FrameDecoder, buf: &mut BytesMut) -> Vec<WsEvent> {
        let mut out = Vec::new();
        while let Ok(Some(event)) = decoder.poll(buf) {
            out.push(event);
        }
        out
    }

    fn sample_messages() -> Vec<(bool, Vec<u8>)> {
        let mut messages = vec![(false, Vec::new()), (false, b"Hello".to_vec())];
        for len in [125, 126, 127, 65535, 65536, 70_000] {
            let data: Vec<u8> = (0..len).map(|i| b"abcdefgh"[i % 8]).collect();
            messages.push((len % 2 == 0, data));
        }
        messages.push((
            false,
            "[16,1,{},\"com.example.topic\",[\"ünïcödé\"]]"
                .repeat(3)
                .into_bytes(),
        ));
        messages.push((
            false,
            "[16,1,{},\"com.example.topic\",[\"ünïcödé\"]]"
                .repeat(3)
                .into_bytes(),
        ));
        messages
    }

    #[test]
    fn encodes_rfc6455_examples() {
        let mut out = BytesMut::new();
        encode_frame(Role::Server, OpCode::Text, b"Hello", &mut out);
        assert_eq!(&out[..], [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        let mut out = BytesMut::new();
        write_frame(
            true,
            false,
            OpCode::Text,
            Some([0x37, 0xfa, 0x21, 0x3d]),
            b"Hello",
            &mut out,
        );
        assert_eq!(
            &out[..],
            [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
        let mut out = BytesMut::new();
        encode_ping(Role::Server, b"Hello", &mut out);
        assert_eq!(&out[..], [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
        assert_eq!(header_for(256, true).as_slice(), [0x82, 0x7e, 0x01, 0x00]);
        assert_eq!(
            header_for(65536, true).as_slice(),
            [0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0, 0]
        );
        assert_eq!(header_for(125, false).as_slice(), [0x81, 125]);
    }

    #[test]
    fn close_and_control_payloads_are_bounded() {
        let mut out = BytesMut::new();
        encode_close(Role::Server, Some(1000), "bye", &mut out);
        assert_eq!(&out[..], [0x88, 0x05, 0x03, 0xe8, b'b', b'y', b'e']);
        let mut out = BytesMut::new();
        encode_close(Role::Server, Some(1001), &"é".repeat(100), &mut out);
        assert_eq!(out[1], 124, "2-byte code + 61 two-byte chars");
        let mut decoder = FrameDecoder::new(Role::Client, 1000);
        assert!(matches!(
            decoder.poll(&mut out),
            Ok(Some(WsEvent::Close {
                code: Some(1001),
                ..
            }))
        ));
        let mut out = BytesMut::new();
        encode_pong(Role::Server, &[1; 300], &mut out);
        assert_eq!(out.len(), 2 + 125);
        let mut out = BytesMut::new();
        encode_close(Role::Client, None, "ignored", &mut out);
        assert_eq!(out.len(), 2 + 4);
    }

    #[test]
    fn round_trips_both_ways_with_and_without_deflate() {
        let deflates = [
            None,
            Some(DeflateParams::default()),
            Some(DeflateParams {
                server_no_context_takeover: true,
                client_no_context_takeover: true,
                ..Default::default()
            }),
            Some(DeflateParams {
                client_no_context_takeover: true,
                ..Default::default()
            }),
        ];
        for deflate in deflates {
            let mut p = pair(deflate);
            let (mut to_server, mut to_client) = (BytesMut::new(), BytesMut::new());
            let messages = sample_messages();
            for (binary, data) in &messages {
                p.client_out.message(*binary, data, &mut to_server).unwrap();
                p.server_out.message(*binary, data, &mut to_client).unwrap();
            }
            encode_ping(Role::Client, b"ping", &mut to_server);
            encode_close(Role::Server, Some(1000), "done", &mut to_client);
            let mut expected: Vec<WsEvent> = messages
                .iter()
                .map(|(binary, data)| WsEvent::Message {
                    binary: *binary,
                    data: Bytes::from(data.clone()),
                })
                .collect();
            let mut got = events(&mut p.server_in, &mut to_server);
            expected.push(WsEvent::Ping(Bytes::from_static(b"ping")));
            assert_eq!(got, expected, "{deflate:?}");
            got = events(&mut p.client_in, &mut to_client);
            expected.pop();
            expected.push(WsEvent::Close {
                code: Some(1000),
                reason: "done".into(),
            });
            assert_eq!(got, expected, "{deflate:?}");
            assert!(to_server.is_empty() && to_client.is_empty());
        }
    }

    #[test]
    fn context_takeover_shrinks_repeated_messages() {
        let mut p = pair(Some(DeflateParams::default()));
        let msg = b"[36,5512315355,4429313566,{},[\"hello world\"]]";
        let mut sizes = Vec::new();
        let mut wire = BytesMut::new();
        for _ in 0..5 {
            let before = wire.len();
            p.server_out.message(false, msg, &mut wire).unwrap();
            sizes.push(wire.len() - before);
        }
        assert!(sizes[1] < sizes[0] && sizes[4] < sizes[0], "{sizes:?}");
        assert_eq!(events(&mut p.client_in, &mut wire).len(), 5);
    }

    #[test]
    fn message_parts_share_the_payload_when_possible() {
        let payload = Bytes::from(vec![9u8; 1000]);
        let mut server = FrameEncoder::new(Role::Server);
        let (header, body) = server.message_parts(true, &payload).unwrap();
        assert_eq!(body.as_ptr(), payload.as_ptr());
        assert_eq!(header, header_for(1000, true));
        let params = DeflateParams::default();
        for mut encoder in [
            FrameEncoder::new(Role::Client),
            FrameEncoder::new(Role::Server).with_deflater(Deflater::new(
                &params,
                Role::Server,
                &DeflateConfig::default(),
            )),
        ] {
            let (header, body) = encoder.message_parts(true, &payload).unwrap();
            let role = match encoder.role() {
                Role::Client => Role::Server,
                Role::Server => Role::Client,
            };
            let mut decoder =
                FrameDecoder::new(role, 1 << 20).with_inflater(Inflater::new(&params, role));
            let mut wire = BytesMut::from(header.as_slice());
            wire.extend_from_slice(&body);
            assert_eq!(
                events(&mut decoder, &mut wire),
                [WsEvent::Message {
                    binary: true,
                    data: payload.clone()
                }]
            );
        }
    }

    #[test]
    fn byte_at_a_time_gives_the_same_events() {
        for deflate in [None, Some(DeflateParams::default())] {
            let mut p = pair(deflate);
            let mut wire = BytesMut::new();
            for (binary, data) in sample_messages().into_iter().take(6) {
                p.client_out.message(binary, &data, &mut wire).unwrap();
                encode_ping(Role::Client, &data[..data.len().min(10)], &mut wire);
            }
            encode_frame_parts(
                Role::Client,
                false,
                false,
                OpCode::Text,
                "frag".as_bytes(),
                &mut wire,
            );
            encode_pong(Role::Client, b"between", &mut wire);
            encode_frame_parts(
                Role::Client,
                true,
                false,
                OpCode::Continuation,
                "ment€".as_bytes(),
                &mut wire,
            );
            let whole = events(&mut pair(deflate).server_in, &mut wire.clone());
            let mut decoder = pair(deflate).server_in;
            let mut buf = BytesMut::new();
            let mut trickled = Vec::new();
            for byte in wire.iter() {
                buf.extend_from_slice(&[*byte]);
                trickled.extend(events(&mut decoder, &mut buf));
            }
            assert_eq!(whole.len(), 14);
            assert_eq!(trickled, whole);
        }
    }

    #[test]
    fn random_and_mutated_input_never_panics() {
        let mut rng = StdRng::seed_from_u64(0x5717c4);
        let mut valid = BytesMut::new();
        let mut p = pair(Some(DeflateParams::default()));
        for (binary, data) in sample_messages().into_iter().take(5) {
            p.client_out.message(binary, &data, &mut valid).unwrap();
            encode_close(Role::Client, Some(1000), "x", &mut valid);
        }
        for round in 0..3000 {
            let mut bytes: Vec<u8> = if round % 2 == 0 {
                (0..rng.gen_range(0..300)).map(|_| rng.gen()).collect()
            } else {
                let mut bytes = valid.to_vec();
                for _ in 0..rng.gen_range(1..8) {
                    let at = rng.gen_range(0..bytes.len());
                    bytes[at] = rng.gen();
                }
                bytes
            };
            bytes.truncate(rng.gen_range(0..=bytes.len()));
            for role in [Role::Server, Role::Client] {
                let params = DeflateParams {
                    client_no_context_takeover: round % 3 == 0,
                    ..Default::default()
                };
                let mut decoder = FrameDecoder::new(role, 4096);
                if round % 4 != 1 {
                    decoder = decoder.with_inflater(Inflater::new(&params, role));
                }
                let mut buf = BytesMut::from(&bytes[..]);
                for _ in 0..1000 {
                    match decoder.poll(&mut buf) {
                        Ok(Some(_)) => {}
                        Ok(None) | Err(_) => break,
                    }
                }
            }
        }
    }
}
