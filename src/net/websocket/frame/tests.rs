//! Decoder tests: RFC 6455 5.7 and RFC 7692 examples, and every rejection rule.

use super::*;
use crate::net::websocket::deflate::{DeflateParams, Inflater};

const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A raw frame with first byte `b0`; masked with [`KEY`] if `masked`.
fn frame(b0: u8, masked: bool, payload: &[u8]) -> Vec<u8> {
    let mask_bit = if masked { MASK } else { 0 };
    let mut out = vec![b0];
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let start = out.len();
    if masked {
        out.extend_from_slice(&KEY);
    }
    let body = out.len();
    out.extend_from_slice(payload);
    if masked {
        apply_mask(&mut out[body..], KEY);
    }
    assert!(start <= body);
    out
}

/// All events from `bytes`, stopping at the first error.
fn decode(decoder: &mut FrameDecoder, bytes: &[u8]) -> Result<Vec<WsEvent>, WsError> {
    let mut buf = BytesMut::from(bytes);
    let mut events = Vec::new();
    while let Some(event) = decoder.poll(&mut buf)? {
        events.push(event);
    }
    Ok(events)
}

fn server() -> FrameDecoder {
    FrameDecoder::new(Role::Server, 1 << 20)
}

fn client() -> FrameDecoder {
    FrameDecoder::new(Role::Client, 1 << 20)
}

fn deflate_server() -> FrameDecoder {
    server().with_inflater(Inflater::new(&DeflateParams::default(), Role::Server))
}

fn text(s: &str) -> WsEvent {
    WsEvent::Message {
        binary: false,
        data: Bytes::copy_from_slice(s.as_bytes()),
    }
}

fn binary(data: &[u8]) -> WsEvent {
    WsEvent::Message {
        binary: true,
        data: Bytes::copy_from_slice(data),
    }
}

fn reject(decoder: &mut FrameDecoder, bytes: &[u8]) -> u16 {
    match decode(decoder, bytes) {
        Err(error) => error.close_code(),
        Ok(events) => panic!("accepted: {events:?}"),
    }
}

#[test]
fn rfc6455_section_5_7_examples() {
    // A single-frame unmasked text message.
    let hello = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    assert_eq!(decode(&mut client(), &hello), Ok(vec![text("Hello")]));
    // A single-frame masked text message.
    let masked = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(decode(&mut server(), &masked), Ok(vec![text("Hello")]));
    // A fragmented unmasked text message.
    let fragmented = [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f];
    assert_eq!(decode(&mut client(), &fragmented), Ok(vec![text("Hello")]));
    // Unmasked ping, masked pong.
    let ping = [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    assert_eq!(
        decode(&mut client(), &ping),
        Ok(vec![WsEvent::Ping(Bytes::from_static(b"Hello"))])
    );
    let pong = [
        0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    assert_eq!(
        decode(&mut server(), &pong),
        Ok(vec![WsEvent::Pong(Bytes::from_static(b"Hello"))])
    );
    // 256 bytes and 64 KiB binary messages in one unmasked frame.
    let mut long = vec![0x82, 0x7e, 0x01, 0x00];
    long.extend_from_slice(&[0xab; 256]);
    assert_eq!(decode(&mut client(), &long), Ok(vec![binary(&[0xab; 256])]));
    let mut longer = vec![0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00];
    longer.extend_from_slice(&vec![0xcd; 65536]);
    assert_eq!(
        decode(&mut client(), &longer),
        Ok(vec![binary(&vec![0xcd; 65536])])
    );
}

#[test]
fn rfc7692_compressed_frames_decode() {
    let mut decoder =
        client().with_inflater(Inflater::new(&DeflateParams::default(), Role::Client));
    let first = [0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    let second = [0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00];
    let fragmented = [
        0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00,
    ];
    let all = [&first[..], &second, &fragmented].concat();
    assert_eq!(
        decode(&mut decoder, &all),
        Ok(vec![text("Hello"), text("Hello"), text("Hello")])
    );
}

#[test]
fn single_plain_frame_is_not_copied() {
    let mut buf = BytesMut::from(&frame(0x82, true, b"zero copy")[..]);
    let base = buf.as_ptr() as usize;
    match server().poll(&mut buf) {
        Ok(Some(WsEvent::Message { data, .. })) => assert_eq!(data.as_ptr() as usize, base + 6),
        other => panic!("{other:?}"),
    }
}

#[test]
fn masking_rules_depend_on_role() {
    assert_eq!(reject(&mut server(), &frame(0x81, false, b"hi")), 1002);
    assert_eq!(reject(&mut client(), &frame(0x81, true, b"hi")), 1002);
    assert_eq!(
        decode(&mut server(), &frame(0x81, true, b"hi")),
        Ok(vec![text("hi")])
    );
}

#[test]
fn reserved_bits_are_rejected() {
    assert_eq!(reject(&mut server(), &frame(0xc1, true, b"hi")), 1002); // RSV1, no deflate
    assert_eq!(
        reject(&mut deflate_server(), &frame(0xa1, true, b"hi")),
        1002
    ); // RSV2
    assert_eq!(
        reject(&mut deflate_server(), &frame(0x91, true, b"hi")),
        1002
    ); // RSV3
    assert_eq!(reject(&mut deflate_server(), &frame(0xc9, true, b"")), 1002); // RSV1 on ping
    let first = frame(0x41, true, &[0xf2, 0x48]);
    let continuation = frame(0xc0, true, &[0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    assert_eq!(
        reject(&mut deflate_server(), &[first, continuation].concat()),
        1002
    );
}

#[test]
fn reserved_opcodes_are_rejected() {
    for opcode in [3u8, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf] {
        let mut decoder = server();
        let mut buf = BytesMut::from(&[0x80 | opcode][..]);
        assert_eq!(decoder.poll(&mut buf), Ok(None), "needs two bytes");
        buf.extend_from_slice(&[0x80]);
        assert_eq!(decoder.poll(&mut buf), Err(WsError::ReservedOpcode(opcode)));
    }
}

#[test]
fn control_frame_rules() {
    assert_eq!(reject(&mut server(), &frame(0x89, true, &[0; 126])), 1002);
    assert_eq!(reject(&mut server(), &frame(0x09, true, b"x")), 1002);
    assert_eq!(
        reject(&mut server(), &frame(0x08, true, &[0x03, 0xe8])),
        1002
    );
    let ping = frame(0x89, true, &[7; 125]);
    assert_eq!(
        decode(&mut server(), &ping),
        Ok(vec![WsEvent::Ping(Bytes::from(vec![7; 125]))])
    );
}

#[test]
fn fragmentation_rules() {
    // Continuation without a start.
    assert_eq!(reject(&mut server(), &frame(0x80, true, b"x")), 1002);
    // New data frame in the middle of a message.
    let start = frame(0x01, true, b"He");
    assert_eq!(
        reject(
            &mut server(),
            &[start.clone(), frame(0x82, true, b"x")].concat()
        ),
        1002
    );
    // Control frames may interleave.
    let stream = [
        start,
        frame(0x89, true, b"p"),
        frame(0x00, true, b"ll"),
        frame(0x80, true, b"o"),
    ];
    assert_eq!(
        decode(&mut server(), &stream.concat()),
        Ok(vec![WsEvent::Ping(Bytes::from_static(b"p")), text("Hello")])
    );
}

#[test]
fn length_with_msb_set_is_rejected() {
    let bytes = [0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4];
    assert_eq!(decode(&mut server(), &bytes), Err(WsError::InvalidLength));
}

#[test]
fn size_limit_is_checked_from_the_header() {
    let mut decoder = FrameDecoder::new(Role::Server, 100);
    // Only the header of a 101-byte frame: rejected before any payload arrives.
    let header = &frame(0x82, true, &[0; 101])[..6];
    assert_eq!(reject(&mut decoder, header), 1009);
    let mut huge = FrameDecoder::new(Role::Server, 100);
    let header = [
        0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 2, 3, 4,
    ];
    assert_eq!(reject(&mut huge, &header), 1009);
    // Fragments add up.
    let mut fragmented = FrameDecoder::new(Role::Server, 100);
    let parts = [frame(0x02, true, &[0; 60]), frame(0x80, true, &[0; 41])];
    assert_eq!(reject(&mut fragmented, &parts.concat()), 1009);
    let mut exact = FrameDecoder::new(Role::Server, 100);
    let parts = [frame(0x02, true, &[0; 60]), frame(0x80, true, &[0; 40])];
    assert_eq!(
        decode(&mut exact, &parts.concat()),
        Ok(vec![binary(&[0; 100])])
    );
}

#[test]
fn decompressed_size_is_limited() {
    let params = DeflateParams::default();
    let mut decoder =
        FrameDecoder::new(Role::Server, 1000).with_inflater(Inflater::new(&params, Role::Server));
    // 1001 zero bytes compressed by zlib: far smaller than the limit on the wire.
    let mut compressed = Vec::new();
    let config = crate::net::websocket::DeflateConfig::default();
    let mut deflater = crate::net::websocket::Deflater::new(&params, Role::Client, &config);
    deflater.compress(&[0; 1001], &mut compressed).unwrap();
    assert!(compressed.len() < 100);
    assert_eq!(reject(&mut decoder, &frame(0xc2, true, &compressed)), 1009);
}

#[test]
fn decompressed_size_limit_apart_from_the_wire_limit() {
    let params = DeflateParams::default();
    let config = crate::net::websocket::DeflateConfig::default();
    let new = |limit| {
        FrameDecoder::new(Role::Server, 100)
            .with_inflater(Inflater::new(&params, Role::Server))
            .with_max_decompressed_size(limit)
    };
    let mut deflater = crate::net::websocket::Deflater::new(&params, Role::Client, &config);
    let mut compressed = Vec::new();
    deflater.compress(&[0; 5000], &mut compressed).unwrap();
    assert!(compressed.len() < 100);
    // Inflates to 5000 bytes: over a 4999-byte decompressed limit, within a 5000-byte one
    // (the 100-byte wire limit does not apply to inflated data then).
    let mut small = new(4999);
    let mut buf = BytesMut::from(&frame(0xc2, true, &compressed)[..]);
    assert_eq!(
        small.poll(&mut buf),
        Err(WsError::DecompressedTooBig { limit: 4999 })
    );
    assert_eq!(WsError::DecompressedTooBig { limit: 1 }.close_code(), 1009);
    let mut enough = new(5000);
    assert_eq!(
        decode(&mut enough, &frame(0xc2, true, &compressed)),
        Ok(vec![binary(&[0; 5000])])
    );
    // The wire limit still holds for the compressed bytes themselves.
    let mut wire = new(1 << 20);
    assert_eq!(reject(&mut wire, &frame(0x82, true, &[0; 101])), 1009);
}

#[test]
fn text_must_be_utf8() {
    assert_eq!(
        reject(&mut server(), &frame(0x81, true, &[0xff, 0xfe])),
        1007
    );
    // A valid sequence split across fragments is fine; an invalid one fails early.
    let euro = "€".as_bytes();
    let split = [frame(0x01, true, &euro[..1]), frame(0x80, true, &euro[1..])];
    assert_eq!(decode(&mut server(), &split.concat()), Ok(vec![text("€")]));
    let bad_first = frame(0x01, true, &[b'a', 0xc0, b'a']);
    assert_eq!(decode(&mut server(), &bad_first), Err(WsError::InvalidUtf8));
    let truncated = [frame(0x01, true, &euro[..2]), frame(0x80, true, b"")];
    assert_eq!(reject(&mut server(), &truncated.concat()), 1007);
    // Invalid after decompression: compressed "\xff" as a text message.
    let params = DeflateParams::default();
    let config = crate::net::websocket::DeflateConfig::default();
    let mut deflater = crate::net::websocket::Deflater::new(&params, Role::Client, &config);
    let mut compressed = Vec::new();
    deflater
        .compress(&[b'o', b'k', 0xff], &mut compressed)
        .unwrap();
    assert_eq!(
        reject(&mut deflate_server(), &frame(0xc1, true, &compressed)),
        1007
    );
}

#[test]
fn close_frames() {
    let close = |payload: &[u8]| decode(&mut server(), &frame(0x88, true, payload));
    assert_eq!(
        close(b""),
        Ok(vec![WsEvent::Close {
            code: None,
            reason: String::new()
        }])
    );
    assert_eq!(
        close(&[0x03, 0xe8, b'b', b'y', b'e']),
        Ok(vec![WsEvent::Close {
            code: Some(1000),
            reason: "bye".into()
        }])
    );
    assert_eq!(close(&[0x03]), Err(WsError::InvalidClosePayload));
    assert_eq!(close(&[0x03, 0xe8, 0xff]), Err(WsError::InvalidUtf8));
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 3000, 3999, 4000, 4999,
    ] {
        assert!(close(&code.to_be_bytes()).is_ok(), "{code}");
    }
    for code in [
        0u16, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        assert_eq!(
            close(&code.to_be_bytes()),
            Err(WsError::InvalidCloseCode(code))
        );
    }
}

#[test]
fn nothing_after_close_and_errors_stick() {
    let mut decoder = server();
    let bytes = [frame(0x88, true, b""), frame(0x81, true, b"late")].concat();
    assert_eq!(
        decode(&mut decoder, &bytes),
        Ok(vec![WsEvent::Close {
            code: None,
            reason: String::new()
        }])
    );
    assert!(decoder.is_closed());
    let mut decoder = server();
    let mut buf = BytesMut::from(&frame(0x81, false, b"x")[..]);
    assert_eq!(decoder.poll(&mut buf), Err(WsError::UnmaskedFrame));
    buf.extend_from_slice(&frame(0x81, true, b"x"));
    assert_eq!(decoder.poll(&mut buf), Err(WsError::UnmaskedFrame));
}

#[test]
fn mask_matches_bytewise_reference() {
    for len in 0..40 {
        let original: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(31)).collect();
        let mut fast = original.clone();
        apply_mask(&mut fast, KEY);
        let slow: Vec<u8> = original
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ KEY[i % 4])
            .collect();
        assert_eq!(fast, slow, "len {len}");
    }
}

#[test]
fn error_close_codes() {
    assert_eq!(WsError::MessageTooBig { limit: 1 }.close_code(), 1009);
    assert_eq!(WsError::InvalidUtf8.close_code(), 1007);
    assert_eq!(WsError::InvalidCompressedData.close_code(), 1007);
    assert_eq!(WsError::ReservedOpcode(3).close_code(), 1002);
    assert_eq!(WsError::Compression.close_code(), 1011);
}
