//! WAMP messages and their serializers.
//!
//! Data flows `frame bytes → decode → Message → (router) → encode → frame bytes`. Decoding
//! happens once per received frame; the payload stays encoded (see [`payload`]) so the common
//! case of forwarding between peers using the same serializer never re-encodes it.
//!
//! - [`value`]: the generic value ([`Value`], [`Dict`]).
//! - [`message`]: one struct per message, [`Message`] over all of them.
//! - [`options`]: typed options/details with an `extra` map for unknown keys.
//! - [`payload`]: arguments kept as encoded bytes or as values.
//! - [`json`], [`msgpack`]: the serializers; [`uri`]: URI rules.

mod binary;
pub mod cbor;
pub mod error;
pub mod json;
pub mod message;
pub mod msgpack;
pub mod options;
pub mod payload;
pub mod serde_value;
pub mod ubjson;
pub mod uri;
pub mod value;
mod wire;

pub use error::DecodeError;
pub use message::*;
pub use options::*;
pub use payload::{EncodedPayload, Payload};
pub use value::{Dict, Value};

use bytes::Bytes;
use std::fmt;
use std::sync::Arc;

/// The largest valid WAMP ID: 2^53.
pub const MAX_ID: u64 = 1 << 53;

/// A WAMP serializer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Serializer {
    Json,
    MsgPack,
    Cbor,
    /// UBJSON (`wamp.2.ubjson`, RawSocket 4).
    Ubjson,
    /// BJData, the UBJSON dialect autobahn-python 26.6+ sends as `wamp.2.ubjson` (a listener
    /// maps that name to it with `--ubjson-dialect bjdata`; see [`ubjson`]).
    Bjdata,
}

impl Serializer {
    /// The WebSocket subprotocol name (`wamp.2.json`, `wamp.2.msgpack`).
    pub fn subprotocol(self) -> &'static str {
        match self {
            Serializer::Json => "wamp.2.json",
            Serializer::MsgPack => "wamp.2.msgpack",
            Serializer::Cbor => "wamp.2.cbor",
            Serializer::Ubjson | Serializer::Bjdata => "wamp.2.ubjson",
        }
    }

    /// The batched WebSocket subprotocol name (`wamp.2.json.batched`, …).
    pub fn batched_subprotocol(self) -> &'static str {
        match self {
            Serializer::Json => "wamp.2.json.batched",
            Serializer::MsgPack => "wamp.2.msgpack.batched",
            Serializer::Cbor => "wamp.2.cbor.batched",
            Serializer::Ubjson | Serializer::Bjdata => "wamp.2.ubjson.batched",
        }
    }

    /// The serializer for a WebSocket subprotocol name.
    pub fn from_subprotocol(s: &str) -> Option<Self> {
        match s {
            "wamp.2.json" => Some(Serializer::Json),
            "wamp.2.msgpack" => Some(Serializer::MsgPack),
            "wamp.2.cbor" => Some(Serializer::Cbor),
            "wamp.2.ubjson" => Some(Serializer::Ubjson),
            _ => None,
        }
    }

    /// The serializer's short name, as the meta API's session details name it (`json`,
    /// `msgpack`).
    pub fn name(self) -> &'static str {
        match self {
            Serializer::Json => "json",
            Serializer::MsgPack => "msgpack",
            Serializer::Cbor => "cbor",
            Serializer::Ubjson => "ubjson",
            Serializer::Bjdata => "bjdata",
        }
    }

    /// Whether frames of this serializer are binary (WebSocket opcode).
    pub fn is_binary(self) -> bool {
        matches!(
            self,
            Serializer::MsgPack | Serializer::Cbor | Serializer::Ubjson | Serializer::Bjdata
        )
    }

    /// Every serializer, in a fixed order (for per-serializer caches).
    pub const ALL: [Serializer; 5] = [
        Serializer::Json,
        Serializer::MsgPack,
        Serializer::Cbor,
        Serializer::Ubjson,
        Serializer::Bjdata,
    ];

    /// A small index for per-serializer arrays.
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A URI (realm, topic, procedure, error, reason). Cheap to clone: routing tables and
/// cross-shard messages share one allocation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uri(Arc<str>);

impl Uri {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A URI read from a message: the same allocation as the last equal URI decoded on this
    /// thread when it is still in a small direct-mapped cache ([`DECODED_URIS`] slots of at
    /// most [`DECODED_URI_MAX`] bytes), so a client that calls or publishes to the same few
    /// URIs costs a compare and a reference count per message instead of an allocation and a
    /// free.
    pub(crate) fn decoded(s: &str) -> Uri {
        if s.len() > DECODED_URI_MAX {
            return Uri::from(s);
        }
        let slot = decoded_uri_slot(s.as_bytes());
        RECENT_URIS.with(|cache| {
            let mut cache = cache.borrow_mut();
            let entry = &mut cache[slot];
            match entry {
                Some(u) if u.as_str() == s => u.clone(),
                _ => {
                    let u = Uri::from(s);
                    *entry = Some(u.clone());
                    u
                }
            }
        })
    }
}

/// Slots of the per-thread cache behind [`Uri::decoded`] (a power of two).
const DECODED_URIS: usize = 64;
/// Longer URIs are not cached: the cache holds at most 64 × 96 bytes.
const DECODED_URI_MAX: usize = 96;

thread_local! {
    static RECENT_URIS: std::cell::RefCell<[Option<Uri>; DECODED_URIS]> =
        const { std::cell::RefCell::new([const { None }; DECODED_URIS]) };
}

/// The cache slot of a URI: its length and first and last eight bytes, mixed (URIs that share
/// a prefix differ at the end, and the other way round).
fn decoded_uri_slot(b: &[u8]) -> usize {
    let word = |part: &[u8]| {
        let mut w = [0u8; 8];
        w[..part.len()].copy_from_slice(part);
        u64::from_le_bytes(w)
    };
    let n = b.len();
    let head = word(&b[..n.min(8)]);
    let tail = word(&b[n.saturating_sub(8)..]);
    let h = (head ^ tail.rotate_left(29) ^ n as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (h >> (64 - DECODED_URIS.trailing_zeros())) as usize
}

impl std::ops::Deref for Uri {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Uri {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Uri {
    fn from(s: &str) -> Self {
        Uri(Arc::from(s))
    }
}

impl From<String> for Uri {
    fn from(s: String) -> Self {
        Uri(Arc::from(s))
    }
}

impl fmt::Debug for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Decodes one frame. The payload of the returned message borrows the frame's buffer (no copy).
#[inline]
pub fn decode(serializer: Serializer, frame: &Bytes) -> Result<Message, DecodeError> {
    match serializer {
        Serializer::Json => json::decode(frame),
        Serializer::MsgPack => msgpack::decode(frame),
        Serializer::Cbor => cbor::decode(frame),
        Serializer::Ubjson => ubjson::decode(frame),
        Serializer::Bjdata => ubjson::decode_bjdata(frame),
    }
}

/// Appends the encoding of `message` to `out`.
pub fn encode_into(serializer: Serializer, message: &Message, out: &mut Vec<u8>) {
    match serializer {
        Serializer::Json => json::encode_into(message, out),
        Serializer::MsgPack => msgpack::encode_into(message, out),
        Serializer::Cbor => cbor::encode_into(message, out),
        Serializer::Ubjson => ubjson::encode_into(message, out),
        Serializer::Bjdata => ubjson::encode_into_bjdata(message, out),
    }
}

/// Messages expected to encode to at most this many bytes go through the per-thread scratch
/// buffer of [`encode`]; larger ones are encoded straight into their own buffer.
const SCRATCH_ENCODE_MAX: usize = 16 * 1024;

thread_local! {
    static ENCODE_SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Encodes `message` into a new shareable buffer.
///
/// A `Vec` with spare capacity becomes `Bytes` through a second allocation (a shared header),
/// freed again with the message; so a small message is encoded into a per-thread scratch buffer
/// and copied out at its exact size: one allocation per message instead of two.
pub fn encode(serializer: Serializer, message: &Message) -> Bytes {
    let hint = 64 + payload_hint(message);
    if hint <= SCRATCH_ENCODE_MAX {
        let small = ENCODE_SCRATCH.with(|s| {
            let mut s = s.try_borrow_mut().ok()?;
            s.clear();
            encode_into(serializer, message, &mut s);
            let b = Bytes::copy_from_slice(&s);
            if s.capacity() > 4 * SCRATCH_ENCODE_MAX {
                // An oversized message grew it: do not keep that much per thread.
                *s = Vec::new();
            }
            Some(b)
        });
        if let Some(b) = small {
            return b;
        }
    }
    let mut out = Vec::with_capacity(hint);
    encode_into(serializer, message, &mut out);
    Bytes::from(out)
}

fn payload_hint(m: &Message) -> usize {
    match m {
        Message::Publish(x) => x.payload.encoded_len_hint(),
        Message::Event(x) => x.payload.encoded_len_hint(),
        Message::Call(x) => x.payload.encoded_len_hint(),
        Message::Invocation(x) => x.payload.encoded_len_hint(),
        Message::Yield(x) => x.payload.encoded_len_hint(),
        Message::Result(x) => x.payload.encoded_len_hint(),
        Message::Error(x) => x.payload.encoded_len_hint(),
        _ => 0,
    }
}

#[cfg(test)]
mod smoke {
    use super::*;

    #[test]
    fn decoded_uris_share_an_allocation_and_stay_exact() {
        let a = Uri::decoded("com.example.add");
        let b = Uri::decoded("com.example.add");
        assert!(
            Arc::ptr_eq(&a.0, &b.0),
            "the second decode reuses the first"
        );
        // Many URIs, so slots collide and are replaced: every decode is still the text given.
        let names: Vec<String> = (0..1000).map(|i| format!("com.example.p{i}")).collect();
        for _ in 0..2 {
            for n in &names {
                assert_eq!(Uri::decoded(n).as_str(), n);
            }
        }
        let long = "x".repeat(DECODED_URI_MAX + 1);
        let (l1, l2) = (Uri::decoded(&long), Uri::decoded(&long));
        assert_eq!(l1, l2);
        assert!(!Arc::ptr_eq(&l1.0, &l2.0), "long URIs are not cached");
        assert_eq!(Uri::decoded("").as_str(), "");
    }

    #[test]
    fn publish_roundtrip_both() {
        let j = Bytes::from_static(br#"[16, 239714735, {"acknowledge":true,"foo":1}, "com.myapp.mytopic1", ["Hello, world!", "\u0000AQI="], {"a":1}]"#);
        let m = decode(Serializer::Json, &j).unwrap();
        let mp = encode(Serializer::MsgPack, &m);
        let m2 = decode(Serializer::MsgPack, &mp).unwrap();
        let back = encode(Serializer::Json, &m2);
        let m3 = decode(Serializer::Json, &back).unwrap();
        assert_eq!(m.clone(), m3.clone());
        if let Message::Publish(p) = &m2 {
            let a = p.payload.args_values().unwrap().unwrap();
            assert_eq!(a[1], Value::Bin(Bytes::from_static(&[1, 2])));
            assert_eq!(p.options.acknowledge, Some(true));
        } else {
            panic!()
        }
        eprintln!("{}", String::from_utf8_lossy(&back));
    }
}
