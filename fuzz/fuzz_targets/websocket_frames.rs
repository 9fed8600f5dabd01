//! WebSocket frame decoder, server role, with and without permessage-deflate, over arbitrary
//! chunking and with small message size limits (so the zip-bomb limit is reached).
//!
//! Input layout: `[config, chunk_seed, rest...]`.
//! - `config` bit 0: permessage-deflate negotiated; bit 1: the client resets its window per
//!   message (`client_no_context_takeover`); bit 2: `rest` is structured (frames built from
//!   `arbitrary`) instead of raw bytes; bits 3..=5: the message size limit (0, 1, 16, 125, 200,
//!   1 KiB, 4 KiB, 64 KiB).
//! - Structured frames can carry deflated data (including highly compressible "bombs" that
//!   inflate to up to 128 KiB), bad RSV bits, reserved opcodes, non-minimal lengths, no mask,
//!   close frames with arbitrary codes.
//!
//! Checked: no panic; messages never exceed the limit (wire or inflated); text is UTF-8; control
//! payloads are at most 125 bytes; an error repeats; chunking never changes the outcome; and
//! when every frame is a well-formed message, exactly those messages come out (or
//! `MessageTooBig` where the limit says so).
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchyard::net::websocket::{
    apply_mask, codec, DeflateConfig, DeflateParams, Deflater, FrameDecoder, Role, WsError, WsEvent,
};
use switchyard_fuzz::Chunker;

const LIMITS: [usize; 8] = [0, 1, 16, 125, 200, 1024, 4096, 65536];
/// Twice the largest limit: enough to pass every limit, cheap enough to compress per run.
const BOMB_MAX: usize = 1 << 17;

#[derive(Arbitrary, Debug)]
enum Body {
    Raw(Vec<u8>),
    /// Compressed with the client's deflater (trailer stripped, as a client sends it).
    Deflated(Vec<u8>),
    /// `len` copies of `byte`, compressed: a small frame that inflates to a lot.
    Bomb {
        byte: u8,
        len: u32,
    },
    Close {
        code: u16,
        reason: String,
    },
}

#[derive(Arbitrary, Debug)]
struct Frame {
    fin: bool,
    /// RSV1..RSV3 (bits 0..2).
    rsv: u8,
    /// Low 4 bits.
    opcode: u8,
    /// Unmasked frames from a client are a protocol error; mostly mask.
    unmasked: bool,
    key: [u8; 4],
    /// 0: minimal length encoding; 1: 16-bit; 2: 64-bit.
    length_form: u8,
    body: Body,
}

/// A well-formed message: one FIN frame, RSV1 iff compressed.
#[derive(Arbitrary, Debug)]
struct GoodMessage {
    binary: bool,
    compressed: bool,
    text: String,
    key: [u8; 4],
}

#[derive(Arbitrary, Debug)]
enum Script {
    Frames(Vec<Frame>),
    Messages(Vec<GoodMessage>),
}

fn write_frame(out: &mut Vec<u8>, b0: u8, mask: Option<[u8; 4]>, form: u8, payload: &[u8]) {
    out.push(b0);
    let m = if mask.is_some() { 0x80 } else { 0 };
    let len = payload.len();
    match form % 3 {
        0 if len < 126 => out.push(m | len as u8),
        0 | 1 if len <= 0xFFFF => {
            out.push(m | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(m | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key);
    }
}

/// What a client sends for `data` with RSV1 set. Empty messages are never compressed (see
/// `Deflater::should_compress`); they stay empty here.
fn compress(deflater: &mut Deflater, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if !data.is_empty() {
        deflater.compress(data, &mut out).expect("compression");
    }
    out
}

type Outcome = (Vec<WsEvent>, Option<WsError>);

fn poll_all(
    decoder: &mut FrameDecoder,
    buf: &mut BytesMut,
    events: &mut Vec<WsEvent>,
) -> Option<WsError> {
    loop {
        match decoder.poll(buf) {
            Ok(Some(event)) => events.push(event),
            Ok(None) => return None,
            Err(e) => {
                assert_eq!(decoder.poll(buf), Err(e.clone()), "error is not repeated");
                return Some(e);
            }
        }
    }
}

fn run(params: Option<&DeflateParams>, limit: usize, stream: &[u8], seed: Option<u8>) -> Outcome {
    let (mut decoder, _) = codec(Role::Server, limit, params, &DeflateConfig::default());
    let mut events = Vec::new();
    let mut buf = BytesMut::new();
    let chunks = match seed {
        Some(seed) => Chunker::new(seed).split(stream),
        None => vec![stream],
    };
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        if let Some(e) = poll_all(&mut decoder, &mut buf, &mut events) {
            return (events, Some(e));
        }
    }
    (events, None)
}

fn check_events(events: &[WsEvent], limit: usize) {
    for event in events {
        match event {
            WsEvent::Message { binary, data } => {
                assert!(
                    data.len() <= limit,
                    "message of {} over limit {limit}",
                    data.len()
                );
                if !binary {
                    assert!(std::str::from_utf8(data).is_ok());
                }
            }
            WsEvent::Ping(p) | WsEvent::Pong(p) => assert!(p.len() <= 125),
            WsEvent::Close { reason, .. } => assert!(reason.len() <= 123),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let [config, seed, rest @ ..] = data else {
        return;
    };
    let deflate = config & 1 != 0;
    let params = DeflateParams {
        client_no_context_takeover: config & 2 != 0,
        ..Default::default()
    };
    let params = deflate.then_some(&params);
    let limit = LIMITS[usize::from((config >> 3) & 7)];

    // The client's compressor, for the structured modes.
    // Level 1: the decoder does not care, and compressing bombs at level 6 dominated the run time.
    let mut deflater = Deflater::new(
        &params.copied().unwrap_or_default(),
        Role::Client,
        &DeflateConfig {
            level: 1,
            ..Default::default()
        },
    );
    let mut expected: Option<Outcome> = None;
    let stream: Vec<u8> = if config & 4 == 0 {
        rest.to_vec()
    } else {
        let Ok(script) = Script::arbitrary_take_rest(Unstructured::new(rest)) else {
            return;
        };
        let mut out = Vec::new();
        match script {
            Script::Frames(frames) => {
                for f in frames {
                    let b0 = (u8::from(f.fin) << 7) | ((f.rsv & 7) << 4) | (f.opcode & 0xF);
                    let mask = (!f.unmasked).then_some(f.key);
                    let payload = match f.body {
                        Body::Raw(p) => p,
                        Body::Deflated(p) => compress(&mut deflater, &p),
                        Body::Bomb { byte, len } => {
                            compress(&mut deflater, &vec![byte; len as usize % BOMB_MAX])
                        }
                        Body::Close { code, reason } => {
                            let mut p = code.to_be_bytes().to_vec();
                            p.extend_from_slice(reason.as_bytes());
                            p
                        }
                    };
                    write_frame(&mut out, b0, mask, f.length_form, &payload);
                }
            }
            Script::Messages(messages) => {
                // Well-formed traffic has a known outcome.
                let mut events = Vec::new();
                let mut error = None;
                for m in messages {
                    let compressed = m.compressed && deflate && !m.text.is_empty();
                    let wire = if compressed {
                        compress(&mut deflater, m.text.as_bytes())
                    } else {
                        m.text.as_bytes().to_vec()
                    };
                    let opcode = if m.binary { 2 } else { 1 };
                    let b0 = 0x80 | (u8::from(compressed) << 6) | opcode;
                    write_frame(&mut out, b0, Some(m.key), 0, &wire);
                    if error.is_none() {
                        if wire.len() > limit || m.text.len() > limit {
                            error = Some(WsError::MessageTooBig { limit });
                        } else {
                            events.push(WsEvent::Message {
                                binary: m.binary,
                                data: m.text.into_bytes().into(),
                            });
                        }
                    }
                }
                expected = Some((events, error));
            }
        }
        out
    };

    let at_once = run(params, limit, &stream, None);
    check_events(&at_once.0, limit);
    let in_chunks = run(params, limit, &stream, Some(*seed));
    assert_eq!(at_once, in_chunks, "chunking changed the outcome");
    if let Some(expected) = expected {
        assert_eq!(
            at_once, expected,
            "well-formed messages did not come out as sent"
        );
    }
});
