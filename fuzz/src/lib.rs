//! Helpers shared by the fuzz targets in `fuzz_targets/`.
//!
//! - [`check_codec_roundtrip`]: the property behind `decode_json` and `decode_msgpack`.
//! - [`Chunker`]: deterministic "arbitrary chunking" of a byte stream, so transport decoders
//!   are fed the way a socket feeds them (one byte at a time, odd sizes, or everything at once).

use bytes::Bytes;
use switchyard::codec::{self, Serializer};

/// Whatever decodes in `from` must re-encode in both serializers and decode again; in the same
/// serializer it must decode to an equal message, and encoding is a fixpoint (encoding the
/// re-decoded message gives the same bytes).
pub fn check_codec_roundtrip(from: Serializer, data: &[u8]) {
    let frame = Bytes::copy_from_slice(data);
    let Ok(msg) = codec::decode(from, &frame) else {
        return;
    };
    // NaN is not equal to itself; equality checks are skipped for messages holding one.
    let comparable = !format!("{msg:?}").contains("NaN");
    for to in Serializer::ALL {
        let wire = codec::encode(to, &msg);
        let again = match codec::decode(to, &wire) {
            Ok(m) => m,
            Err(e) => panic!(
                "{from:?} frame re-encoded as {to:?} does not decode: {e}\n\
                 input: {}\nre-encoded: {}\nmessage: {msg:?}",
                show(data),
                show(&wire)
            ),
        };
        if to == from && comparable {
            assert_eq!(again, msg, "{from:?} round trip changed the message");
        }
        let wire2 = codec::encode(to, &again);
        assert!(
            wire == wire2,
            "{to:?} encoding is not a fixpoint:\n first: {}\nsecond: {}",
            show(&wire),
            show(&wire2)
        );
    }
}

/// Bytes as text if they are printable UTF-8, else as hex.
pub fn show(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) if !s.chars().any(|c| c.is_control() && c != '\n') => s.to_owned(),
        _ => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

/// Splits a stream into chunks whose sizes come from a one-byte seed: the low three bits pick
/// the largest chunk (1, 2, 3, 7, 16, 64, 1024 bytes or unlimited), the rest seed a small PRNG
/// for the sizes in between. Deterministic, so a crash reproduces.
pub struct Chunker {
    max: usize,
    state: u32,
}

impl Chunker {
    pub fn new(seed: u8) -> Self {
        const MAX: [usize; 8] = [1, 2, 3, 7, 16, 64, 1024, usize::MAX];
        Self {
            max: MAX[usize::from(seed & 7)],
            state: (u32::from(seed >> 3) << 8) | 0x9E37_79B9,
        }
    }

    /// The next chunk size, in `1..=max`.
    pub fn next_size(&mut self) -> usize {
        // xorshift32
        self.state ^= self.state << 13;
        self.state ^= self.state >> 17;
        self.state ^= self.state << 5;
        if self.max == usize::MAX {
            return usize::MAX;
        }
        1 + (self.state as usize % self.max)
    }

    /// `data` cut into chunks.
    pub fn split<'a>(&mut self, mut data: &'a [u8]) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let n = self.next_size().min(data.len());
            let (head, tail) = data.split_at(n);
            out.push(head);
            data = tail;
        }
        out
    }
}
