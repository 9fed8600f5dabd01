//! RawSocket: the 4-octet handshake and the frame decoder over arbitrary chunking.
//!
//! Input layout: `[exp, h0, h1, h2, h3, chunk_seed, stream...]`. `exp` is the receive-limit
//! exponent we announce (values above 15 count as 15; 0 is the smallest limit, 512 bytes, so
//! `TooLong` is easy to reach), `h0..h3` the client's handshake, then the byte stream after it.
//!
//! Checked: no panic; a handshake that parses round-trips through `client_hello`, and a
//! rejected one is answered with a reply the client side reads as a rejection; frames never
//! exceed the limit; feeding the stream in chunks yields exactly the frames (and the error)
//! of decoding it at once; `bytes_needed` is positive whenever `decode` waits for more.
//! Message frames are handed to the codec of the negotiated serializer.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use switchyard::codec::{self, Serializer};
use switchyard::net::rawsocket::{
    client_hello, encode_header, parse_client_handshake, parse_frame_header, parse_server_reply,
    server_reply, ClientHandshakeError, FrameDecoder, FrameError, FrameKind, RawFrame,
    SerializerId,
};
use switchyard_fuzz::Chunker;

type Outcome = (Vec<RawFrame>, Option<FrameError>);

/// Decodes every complete frame in `buf`; `Some(error)` stops the stream.
fn drain(
    decoder: &FrameDecoder,
    buf: &mut BytesMut,
    frames: &mut Vec<RawFrame>,
) -> Option<FrameError> {
    loop {
        match decoder.decode(buf) {
            Ok(Some(frame)) => frames.push(frame),
            Ok(None) => {
                assert!(
                    decoder.bytes_needed(buf) > 0,
                    "decode waits but nothing is needed"
                );
                return None;
            }
            Err(e) => {
                let before = buf.clone();
                assert_eq!(decoder.decode(buf), Err(e), "error is not repeated");
                assert_eq!(*buf, before, "a failed decode consumed bytes");
                return Some(e);
            }
        }
    }
}

fn whole(decoder: &FrameDecoder, stream: &[u8]) -> Outcome {
    let mut buf = BytesMut::from(stream);
    let mut frames = Vec::new();
    let err = drain(decoder, &mut buf, &mut frames);
    (frames, err)
}

fn chunked(decoder: &FrameDecoder, stream: &[u8], seed: u8) -> Outcome {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in Chunker::new(seed).split(stream) {
        buf.extend_from_slice(chunk);
        if let Some(e) = drain(decoder, &mut buf, &mut frames) {
            return (frames, Some(e));
        }
    }
    (frames, None)
}

fuzz_target!(|data: &[u8]| {
    let [exp, h0, h1, h2, h3, seed, stream @ ..] = data else {
        return;
    };
    let serializer = match parse_client_handshake([*h0, *h1, *h2, *h3]) {
        Ok(hello) => {
            assert!((512..=1 << 24).contains(&hello.max_len));
            assert!(hello.max_len.is_power_of_two());
            let announced = (hello.max_len.trailing_zeros() - 9) as u8;
            assert_eq!(
                parse_client_handshake(client_hello(hello.serializer, announced)),
                Ok(hello)
            );
            let reply = server_reply(hello.serializer, *exp);
            let ours = parse_server_reply(reply, hello.serializer).expect("our reply parses");
            assert_eq!(ours.serializer, hello.serializer);
            match hello.serializer {
                SerializerId::JSON => Some(Serializer::Json),
                SerializerId::MSGPACK => Some(Serializer::MsgPack),
                SerializerId::CBOR => Some(Serializer::Cbor),
                SerializerId::UBJSON => Some(Serializer::Ubjson),
                _ => None,
            }
        }
        Err(reject) => {
            if let Some(reply) = reject.reply() {
                let read = parse_server_reply(reply, SerializerId::JSON);
                assert!(
                    matches!(read, Err(ClientHandshakeError::Rejected(_))),
                    "{reject:?} answered with {reply:?}, read as {read:?}"
                );
            }
            None
        }
    };

    let decoder = FrameDecoder::for_exponent(*exp);
    let at_once = whole(&decoder, stream);
    let in_chunks = chunked(&decoder, stream, *seed);
    assert_eq!(at_once, in_chunks, "chunking changed the outcome");

    for frame in &at_once.0 {
        let (kind, payload) = match frame {
            RawFrame::Message(p) => (FrameKind::Message, p),
            RawFrame::Ping(p) => (FrameKind::Ping, p),
            RawFrame::Pong(p) => (FrameKind::Pong, p),
        };
        assert!(payload.len() <= decoder.max_len() as usize);
        let header = encode_header(kind, payload.len() as u32).expect("length fits");
        let parsed = parse_frame_header(&header).expect("our header parses");
        assert_eq!((parsed.kind, parsed.len as usize), (kind, payload.len()));
        if let (RawFrame::Message(p), Some(s)) = (frame, serializer) {
            let _ = codec::decode(s, p);
        }
    }
});
