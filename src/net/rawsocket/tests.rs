use super::*;

// ---- handshake: lengths -------------------------------------------------------------

#[test]
fn exponent_to_length_covers_512_to_16m() {
    assert_eq!(max_len_from_exponent(0), Some(512));
    assert_eq!(max_len_from_exponent(1), Some(1024));
    assert_eq!(max_len_from_exponent(14), Some(1 << 23));
    assert_eq!(max_len_from_exponent(15), Some(16 * 1024 * 1024));
    assert_eq!(max_len_from_exponent(16), None);
    assert_eq!(max_len_from_exponent(255), None);
}

#[test]
fn exponent_for_rounds_down_and_saturates() {
    assert_eq!(exponent_for(0), 0);
    assert_eq!(exponent_for(511), 0);
    assert_eq!(exponent_for(512), 0);
    assert_eq!(exponent_for(1023), 0);
    assert_eq!(exponent_for(1024), 1);
    assert_eq!(exponent_for(1_000_000), 10); // 2^19 = 524288 <= 1e6 < 2^20
    assert_eq!(exponent_for(MAX_FRAME_LEN - 1), 14);
    assert_eq!(exponent_for(MAX_FRAME_LEN), 15);
    assert_eq!(exponent_for(u32::MAX), 15);
    for exp in 0..=MAX_EXPONENT {
        let len = max_len_from_exponent(exp).unwrap_or(0);
        assert_eq!(exponent_for(len), exp);
    }
}

// ---- handshake: router side ---------------------------------------------------------

#[test]
fn spec_second_octet_table_parses() {
    // The spec's Python: octet_2 = (l << 4) | ser, maxlen = 2 ** (l + 9).
    for ser in 1..=5u8 {
        for l in 0..16u8 {
            let hello = parse_client_handshake([0x7F, (l << 4) | ser, 0, 0]);
            assert_eq!(
                hello,
                Ok(ClientHello {
                    serializer: SerializerId(ser),
                    max_len: 1 << (l + 9),
                })
            );
        }
    }
}

#[test]
fn spec_examples_json_and_msgpack() {
    // Second octets from the spec's tables: 0x71 = 2^16 octets + JSON, 0xF2 = 16M + MessagePack.
    let h = parse_client_handshake([0x7F, 0x71, 0, 0]);
    assert_eq!(
        h,
        Ok(ClientHello {
            serializer: SerializerId::JSON,
            max_len: 65536
        })
    );
    let h = parse_client_handshake([0x7F, 0xF2, 0, 0]);
    assert_eq!(
        h,
        Ok(ClientHello {
            serializer: SerializerId::MSGPACK,
            max_len: 16 * 1024 * 1024
        })
    );
}

#[test]
fn undefined_serializers_are_passed_through() {
    // 6..=15 are reserved for future serializers: legal on the wire, the codec decides.
    for ser in 6..=15u8 {
        let h = parse_client_handshake([0x7F, ser, 0, 0]);
        assert_eq!(h.map(|h| h.serializer.get()), Ok(ser));
    }
}

#[test]
fn bad_magic_is_not_rawsocket_and_gets_no_reply() {
    // "GET " of an HTTP request.
    let r = parse_client_handshake(*b"GET ");
    assert_eq!(r, Err(HandshakeReject::NotRawSocket(b'G')));
    assert_eq!(r.err().and_then(|e| e.reply()), None);
    assert_eq!(
        parse_client_handshake([0x7E, 0x11, 0, 0]),
        Err(HandshakeReject::NotRawSocket(0x7E))
    );
}

#[test]
fn serializer_zero_is_illegal() {
    for l in 0..16u8 {
        let r = parse_client_handshake([0x7F, l << 4, 0, 0]);
        assert_eq!(r, Err(HandshakeReject::IllegalSerializer));
        assert_eq!(
            r.err().and_then(|e| e.reply()),
            Some([0x7F, 0x10, 0, 0]),
            "answered with 'serializer unsupported'"
        );
    }
}

#[test]
fn reserved_octets_must_be_zero() {
    for (a, b) in [(1, 0), (0, 1), (0x80, 0), (0, 0x80), (0xFF, 0xFF)] {
        let r = parse_client_handshake([0x7F, 0x21, a, b]);
        assert_eq!(r, Err(HandshakeReject::ReservedBitsUsed));
        assert_eq!(r.err().and_then(|e| e.reply()), Some([0x7F, 0x30, 0, 0]));
    }
}

#[test]
fn all_four_error_replies() {
    assert_eq!(
        reject_reply(RejectCode::SerializerUnsupported),
        [0x7F, 0x10, 0, 0]
    );
    assert_eq!(
        reject_reply(RejectCode::MaxLengthUnacceptable),
        [0x7F, 0x20, 0, 0]
    );
    assert_eq!(
        reject_reply(RejectCode::ReservedBitsUsed),
        [0x7F, 0x30, 0, 0]
    );
    assert_eq!(
        reject_reply(RejectCode::MaxConnectionCountReached),
        [0x7F, 0x40, 0, 0]
    );
}

#[test]
fn reject_codes_round_trip_and_0_is_illegal() {
    assert_eq!(RejectCode::from_u8(0), None);
    for c in 1..=4u8 {
        assert_eq!(RejectCode::from_u8(c).map(|c| c as u8), Some(c));
    }
    for c in 5..=255u8 {
        assert_eq!(RejectCode::from_u8(c), None);
    }
}

#[test]
fn server_reply_echoes_serializer_and_sets_length() {
    assert_eq!(server_reply(SerializerId::JSON, 0), [0x7F, 0x01, 0, 0]);
    assert_eq!(server_reply(SerializerId::MSGPACK, 15), [0x7F, 0xF2, 0, 0]);
    assert_eq!(server_reply(SerializerId::CBOR, 7), [0x7F, 0x73, 0, 0]);
    // Out-of-range exponents saturate instead of corrupting the serializer nibble.
    assert_eq!(server_reply(SerializerId::JSON, 200), [0x7F, 0xF1, 0, 0]);
}

#[test]
fn serializer_id_range() {
    assert_eq!(SerializerId::new(0), None);
    assert_eq!(SerializerId::new(16), None);
    assert_eq!(SerializerId::new(1), Some(SerializerId::JSON));
    assert_eq!(SerializerId::new(2), Some(SerializerId::MSGPACK));
    assert_eq!(SerializerId::new(15).map(SerializerId::get), Some(15));
}

// ---- handshake: client side ---------------------------------------------------------

#[test]
fn client_hello_round_trips_through_router_parser() {
    for ser in 1..=15u8 {
        let Some(ser) = SerializerId::new(ser) else {
            continue;
        };
        for exp in 0..=15u8 {
            let hello = parse_client_handshake(client_hello(ser, exp));
            assert_eq!(
                hello,
                Ok(ClientHello {
                    serializer: ser,
                    max_len: 512 << exp
                })
            );
        }
    }
}

#[test]
fn client_accepts_matching_reply() {
    let reply = server_reply(SerializerId::MSGPACK, 9);
    assert_eq!(
        parse_server_reply(reply, SerializerId::MSGPACK),
        Ok(ServerHello {
            serializer: SerializerId::MSGPACK,
            max_len: 1 << 18
        })
    );
}

#[test]
fn client_sees_each_error_reply() {
    for code in [
        RejectCode::SerializerUnsupported,
        RejectCode::MaxLengthUnacceptable,
        RejectCode::ReservedBitsUsed,
        RejectCode::MaxConnectionCountReached,
    ] {
        assert_eq!(
            parse_server_reply(reject_reply(code), SerializerId::JSON),
            Err(ClientHandshakeError::Rejected(code))
        );
    }
    assert_eq!(
        parse_server_reply([0x7F, 0x00, 0, 0], SerializerId::JSON),
        Err(ClientHandshakeError::RejectedUndefined(0))
    );
    assert_eq!(
        parse_server_reply([0x7F, 0x50, 0, 0], SerializerId::JSON),
        Err(ClientHandshakeError::RejectedUndefined(5))
    );
}

#[test]
fn client_rejects_wrong_serializer_magic_and_reserved() {
    assert_eq!(
        parse_server_reply([0x7F, 0x42, 0, 0], SerializerId::JSON),
        Err(ClientHandshakeError::SerializerMismatch {
            requested: 1,
            got: 2
        })
    );
    assert_eq!(
        parse_server_reply(*b"HTTP", SerializerId::JSON),
        Err(ClientHandshakeError::NotRawSocket(b'H'))
    );
    assert_eq!(
        parse_server_reply([0x7F, 0x41, 0, 1], SerializerId::JSON),
        Err(ClientHandshakeError::ReservedBitsUsed)
    );
}

// ---- framing: headers ---------------------------------------------------------------

#[test]
fn header_types() {
    let h = |b0| parse_frame_header(&[b0, 0, 0, 5]);
    assert_eq!(
        h(0),
        Ok(FrameHeader {
            kind: FrameKind::Message,
            len: 5
        })
    );
    assert_eq!(h(1).map(|h| h.kind), Ok(FrameKind::Ping));
    assert_eq!(h(2).map(|h| h.kind), Ok(FrameKind::Pong));
    for t in 3..=7u8 {
        assert_eq!(h(t), Err(FrameError::UnknownType(t)));
    }
}

#[test]
fn header_reserved_bits() {
    for bit in 4..8 {
        let b0 = 1u8 << bit;
        assert_eq!(
            parse_frame_header(&[b0, 0, 0, 0]),
            Err(FrameError::ReservedBits(b0))
        );
    }
}

#[test]
fn header_length_is_big_endian_24_bit() {
    assert_eq!(
        parse_frame_header(&[0, 0x11, 0x22, 0x33]).map(|h| h.len),
        Ok(0x11_2233)
    );
    assert_eq!(parse_frame_header(&[0, 0, 0, 0]).map(|h| h.len), Ok(0));
}

#[test]
fn header_16m_uses_the_x_bit() {
    // Spec: "RRRR 1TTT 0000 0000 0000 0000 0000 0000" for exactly 16M.
    assert_eq!(
        parse_frame_header(&[0x08, 0, 0, 0]),
        Ok(FrameHeader {
            kind: FrameKind::Message,
            len: 1 << 24
        })
    );
    assert_eq!(
        parse_frame_header(&[0x09, 0, 0, 0]).map(|h| (h.kind, h.len)),
        Ok((FrameKind::Ping, 1 << 24))
    );
    // Spec: 16M-1 is "RRRR 0TTT 1111 ... 1111".
    assert_eq!(
        parse_frame_header(&[0x00, 0xFF, 0xFF, 0xFF]).map(|h| h.len),
        Ok((1 << 24) - 1)
    );
    // X with any low bit set is not a length.
    assert_eq!(
        parse_frame_header(&[0x08, 0, 0, 1]),
        Err(FrameError::InvalidLength)
    );
    assert_eq!(
        parse_frame_header(&[0x08, 0x80, 0, 0]),
        Err(FrameError::InvalidLength)
    );
}

#[test]
fn encode_header_round_trips() {
    for kind in [FrameKind::Message, FrameKind::Ping, FrameKind::Pong] {
        for len in [0, 1, 255, 256, 65535, 65536, (1 << 24) - 1, 1 << 24] {
            let h = encode_header(kind, len);
            assert_eq!(
                h.and_then(|h| parse_frame_header(&h)),
                Ok(FrameHeader { kind, len })
            );
        }
    }
    assert_eq!(encode_header(FrameKind::Message, 1 << 24), Ok([8, 0, 0, 0]));
    assert_eq!(
        encode_header(FrameKind::Pong, (1 << 24) - 1),
        Ok([2, 0xFF, 0xFF, 0xFF])
    );
    assert_eq!(
        encode_header(FrameKind::Message, (1 << 24) + 1),
        Err(FrameError::TooLong {
            len: (1 << 24) + 1,
            max: 1 << 24
        })
    );
}

// ---- framing: decoder ---------------------------------------------------------------

fn frame(kind: FrameKind, payload: &[u8]) -> Vec<u8> {
    let mut v = encode_header(kind, payload.len() as u32)
        .map(|h| h.to_vec())
        .unwrap_or_default();
    v.extend_from_slice(payload);
    v
}

#[test]
fn decodes_each_kind() {
    let d = FrameDecoder::new(1024);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&frame(FrameKind::Message, b"[1,\"realm\",{}]"));
    buf.extend_from_slice(&frame(FrameKind::Ping, b"abc"));
    buf.extend_from_slice(&frame(FrameKind::Pong, b""));
    assert_eq!(
        d.decode(&mut buf),
        Ok(Some(RawFrame::Message(Bytes::from_static(
            b"[1,\"realm\",{}]"
        ))))
    );
    assert_eq!(
        d.decode(&mut buf),
        Ok(Some(RawFrame::Ping(Bytes::from_static(b"abc"))))
    );
    assert_eq!(d.decode(&mut buf), Ok(Some(RawFrame::Pong(Bytes::new()))));
    assert_eq!(d.decode(&mut buf), Ok(None));
    assert!(buf.is_empty());
}

#[test]
fn payload_is_not_copied() {
    let d = FrameDecoder::new(1024);
    let mut buf = BytesMut::with_capacity(64);
    buf.extend_from_slice(&frame(FrameKind::Message, b"hello"));
    let start = buf.as_ptr() as usize;
    let Ok(Some(RawFrame::Message(p))) = d.decode(&mut buf) else {
        panic!("expected a message");
    };
    assert_eq!(p.as_ptr() as usize, start + HEADER_LEN);
}

#[test]
fn partial_input_waits_byte_by_byte() {
    let d = FrameDecoder::new(1024);
    let wire = frame(FrameKind::Message, b"0123456789");
    let mut buf = BytesMut::new();
    for (i, b) in wire.iter().enumerate() {
        assert_eq!(d.decode(&mut buf), Ok(None));
        let needed = if i < HEADER_LEN {
            HEADER_LEN - i
        } else {
            wire.len() - i
        };
        assert_eq!(d.bytes_needed(&buf), needed);
        buf.extend_from_slice(&[*b]);
    }
    assert_eq!(d.bytes_needed(&buf), 0);
    assert_eq!(
        d.decode(&mut buf),
        Ok(Some(RawFrame::Message(Bytes::from_static(b"0123456789"))))
    );
}

#[test]
fn over_limit_is_refused_from_the_header_alone() {
    let d = FrameDecoder::new(512);
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0, 0, 0x02, 0x01]); // 513, no payload buffered yet
    assert_eq!(
        d.decode(&mut buf),
        Err(FrameError::TooLong { len: 513, max: 512 })
    );
    assert_eq!(buf.len(), 4, "buffer untouched on error");
    // Exactly the limit is fine.
    let mut buf = BytesMut::from(&frame(FrameKind::Message, &[7u8; 512])[..]);
    assert!(matches!(d.decode(&mut buf), Ok(Some(RawFrame::Message(p))) if p.len() == 512));
    // The limit applies to PING too.
    let mut buf = BytesMut::from(&[1u8, 0, 0x02, 0x01][..]);
    assert!(matches!(
        d.decode(&mut buf),
        Err(FrameError::TooLong { .. })
    ));
}

#[test]
fn sixteen_mib_frame_with_max_decoder() {
    let d = FrameDecoder::for_exponent(15);
    assert_eq!(d.max_len(), 1 << 24);
    let mut buf = BytesMut::from(&[0x08u8, 0, 0, 0][..]);
    assert_eq!(d.decode(&mut buf), Ok(None));
    assert_eq!(d.bytes_needed(&buf), 1 << 24);
    buf.resize(HEADER_LEN + (1 << 24), 0xAB);
    assert!(matches!(d.decode(&mut buf), Ok(Some(RawFrame::Message(p))) if p.len() == 1 << 24));
    // A smaller decoder refuses the same header.
    let d = FrameDecoder::for_exponent(14);
    let mut buf = BytesMut::from(&[0x08u8, 0, 0, 0][..]);
    assert_eq!(
        d.decode(&mut buf),
        Err(FrameError::TooLong {
            len: 1 << 24,
            max: 1 << 23
        })
    );
}

#[test]
fn decoder_limit_is_capped() {
    assert_eq!(FrameDecoder::new(u32::MAX).max_len(), 1 << 24);
    assert_eq!(FrameDecoder::for_exponent(99).max_len(), 1 << 24);
    assert_eq!(FrameDecoder::for_exponent(0).max_len(), 512);
}

#[test]
fn decoder_errors_on_bad_headers() {
    let d = FrameDecoder::new(1 << 24);
    for (h, e) in [
        ([0x10u8, 0, 0, 0], FrameError::ReservedBits(0x10)),
        ([0x03, 0, 0, 0], FrameError::UnknownType(3)),
        ([0x08, 0, 1, 0], FrameError::InvalidLength),
    ] {
        let mut buf = BytesMut::from(&h[..]);
        assert_eq!(d.decode(&mut buf), Err(e));
        assert_eq!(d.bytes_needed(&buf), 0);
    }
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn handshake_parsers_never_panic(b in any::<[u8; 4]>(), s in 1u8..16) {
            let _ = parse_client_handshake(b);
            if let Some(s) = SerializerId::new(s) {
                let _ = parse_server_reply(b, s);
            }
            if let Ok(hello) = parse_client_handshake(b) {
                prop_assert!(hello.max_len >= MIN_MAX_LEN && hello.max_len <= MAX_FRAME_LEN);
            }
        }

        #[test]
        fn header_parser_never_panics(b in any::<[u8; 4]>()) {
            if let Ok(h) = parse_frame_header(&b) {
                prop_assert!(h.len <= MAX_FRAME_LEN);
                prop_assert_eq!(encode_header(h.kind, h.len), Ok(b));
            }
        }

        #[test]
        fn decoder_on_random_bytes_never_panics(
            data in proptest::collection::vec(any::<u8>(), 0..2048),
            max in 0u32..4096,
            chunk in 1usize..64,
        ) {
            let d = FrameDecoder::new(max);
            let mut buf = BytesMut::new();
            'feed: for piece in data.chunks(chunk) {
                buf.extend_from_slice(piece);
                loop {
                    match d.decode(&mut buf) {
                        Ok(Some(f)) => {
                            let (RawFrame::Message(p) | RawFrame::Ping(p) | RawFrame::Pong(p)) = f;
                            prop_assert!(p.len() as u32 <= max);
                        }
                        Ok(None) => break,
                        Err(_) => break 'feed,
                    }
                }
            }
        }

        #[test]
        fn valid_stream_decodes_identically_for_any_chunking(
            frames in proptest::collection::vec(
                (0u8..3, proptest::collection::vec(any::<u8>(), 0..300)), 0..20),
            chunk in 1usize..100,
        ) {
            let kinds = [FrameKind::Message, FrameKind::Ping, FrameKind::Pong];
            let mut wire = Vec::new();
            for (k, p) in &frames {
                wire.extend_from_slice(&frame(kinds[*k as usize], p));
            }
            let d = FrameDecoder::new(512);
            let mut buf = BytesMut::new();
            let mut got = Vec::new();
            for piece in wire.chunks(chunk) {
                buf.extend_from_slice(piece);
                while let Ok(Some(f)) = d.decode(&mut buf) {
                    got.push(f);
                }
            }
            prop_assert!(buf.is_empty());
            let want: Vec<RawFrame> = frames.iter().map(|(k, p)| {
                let p = Bytes::from(p.clone());
                match k { 0 => RawFrame::Message(p), 1 => RawFrame::Ping(p), _ => RawFrame::Pong(p) }
            }).collect();
            prop_assert_eq!(got, want);
        }
    }
}
