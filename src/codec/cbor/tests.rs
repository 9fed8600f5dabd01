//! CBOR codec tests: RFC 8949 Appendix A examples, shortest-form encoding, an independent
//! implementation (`ciborium`) as the reference in both directions, bad input, and conversion
//! to the other serializers.

use super::*;
use crate::codec::message::{Publish, Published};
use crate::codec::options::PublishOptions;
use crate::codec::payload::Payload;
use crate::codec::Uri;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn list(v: Vec<Value>) -> Value {
    Value::List(v)
}

fn dict(entries: &[(&str, Value)]) -> Value {
    Value::Dict(
        entries
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
}

/// RFC 8949 Appendix A: (encoding, value, whether our encoder writes exactly this).
fn rfc_examples() -> Vec<(&'static str, Value, bool)> {
    let u = Value::UInt;
    vec![
        ("00", u(0), true),
        ("17", u(23), true),
        ("1818", u(24), true),
        ("1903e8", u(1000), true),
        ("1a000f4240", u(1_000_000), true),
        ("1b000000e8d4a51000", u(1_000_000_000_000), true),
        ("1bffffffffffffffff", u(u64::MAX), true),
        ("20", Value::Int(-1), true),
        ("3903e7", Value::Int(-1000), true),
        ("3b7fffffffffffffff", Value::Int(i64::MIN), true),
        ("f93e00", Value::Float(1.5), false),
        ("f97bff", Value::Float(65504.0), false),
        ("fa47c35000", Value::Float(100000.0), false),
        ("fb3ff199999999999a", Value::Float(1.1), true),
        ("f4", Value::Bool(false), true),
        ("f5", Value::Bool(true), true),
        ("f6", Value::Null, true),
        ("f7", Value::Null, false),
        ("60", Value::Str(String::new()), true),
        ("6449455446", Value::Str("IETF".into()), true),
        ("62c3bc", Value::Str("\u{fc}".into()), true),
        ("64f0908591", Value::Str("\u{10151}".into()), true),
        (
            "4401020304",
            Value::Bin(Bytes::from_static(&[1, 2, 3, 4])),
            true,
        ),
        ("80", list(vec![]), true),
        (
            "8301820203820405",
            list(vec![u(1), list(vec![u(2), u(3)]), list(vec![u(4), u(5)])]),
            true,
        ),
        ("a0", dict(&[]), true),
        (
            "a26161016162820203",
            dict(&[("a", u(1)), ("b", list(vec![u(2), u(3)]))]),
            true,
        ),
        (
            "9f018202039f0405ffff",
            list(vec![u(1), list(vec![u(2), u(3)]), list(vec![u(4), u(5)])]),
            false,
        ),
        (
            "bf61610161629f0203ffff",
            dict(&[("a", u(1)), ("b", list(vec![u(2), u(3)]))]),
            false,
        ),
        // A tag is read through: 1(1363896240), an epoch date, is its number.
        ("c11a514b67b0", u(1_363_896_240), false),
    ]
}

#[test]
fn rfc_8949_examples_decode_and_encode() {
    for (h, v, exact) in rfc_examples() {
        let bytes = hex(h);
        assert_eq!(decode_value(&bytes).as_ref(), Ok(&v), "decoding {h}");
        let mut out = Vec::new();
        encode_value(&mut out, &v);
        if exact {
            assert_eq!(out, bytes, "encoding {v:?}");
        }
        assert_eq!(decode_value(&out).as_ref(), Ok(&v), "round trip of {h}");
    }
}

#[test]
fn bad_values_are_errors() {
    for (h, why) in [
        ("3bffffffffffffffff", "below -2^63"),
        ("c249010000000000000000", "bignum"),
        ("5f42010243030405ff", "indefinite byte string"),
        ("7f657374726561646d696e67ff", "indefinite text string"),
        ("a1016161", "integer key"),
        ("ff", "lone break"),
        ("1c", "reserved additional information"),
        ("f820", "simple value"),
        ("62c3", "truncated text"),
        ("6280ff", "invalid UTF-8"),
        ("9b7fffffffffffffff", "array longer than the data"),
        ("9f01", "unterminated indefinite array"),
        ("0000", "trailing bytes"),
    ] {
        assert!(decode_value(&hex(h)).is_err(), "{why}: {h} accepted");
    }
    // Depth: MAX_DEPTH nested arrays are fine, one more is not.
    let nested = |n: usize| {
        let mut b = vec![0x81; n - 1];
        b.push(0x80);
        b
    };
    assert!(decode_value(&nested(MAX_DEPTH)).is_ok());
    assert_eq!(
        decode_value(&nested(MAX_DEPTH + 1)),
        Err(DecodeError::TooDeep(MAX_DEPTH))
    );
}

/// Values of every kind, for the cross-checks.
fn samples() -> Vec<Value> {
    vec![
        Value::Null,
        Value::Bool(true),
        Value::UInt(0),
        Value::UInt(255),
        Value::UInt(65_536),
        Value::UInt(1 << 53),
        Value::UInt(u64::MAX),
        Value::Int(-24),
        Value::Int(-25),
        Value::Int(-(1 << 40)),
        Value::Int(i64::MIN),
        Value::Float(-0.5),
        Value::Float(1e300),
        Value::Str("héllo wörld ✓ 🚀".into()),
        Value::Str("x".repeat(300)),
        Value::Bin(Bytes::from(vec![0u8, 255, 7, 0])),
        Value::Bin(Bytes::from(vec![9u8; 70_000])),
        list(vec![Value::UInt(1), Value::Str("two".into()), list(vec![])]),
        dict(&[
            (
                "nested",
                dict(&[("deeper", list(vec![Value::Bool(false)]))]),
            ),
            ("ü", Value::Int(-3)),
        ]),
    ]
}

fn to_ciborium(v: &Value) -> ciborium::Value {
    use ciborium::Value as C;
    match v {
        Value::Null => C::Null,
        Value::Bool(b) => C::Bool(*b),
        Value::Int(i) => C::Integer((*i).into()),
        Value::UInt(u) => C::Integer((*u).into()),
        Value::Float(f) => C::Float(*f),
        Value::Str(s) => C::Text(s.clone()),
        Value::Bin(b) => C::Bytes(b.to_vec()),
        Value::List(l) => C::Array(l.iter().map(to_ciborium).collect()),
        Value::Dict(d) => C::Map(
            d.iter()
                .map(|(k, v)| (C::Text(k.clone()), to_ciborium(v)))
                .collect(),
        ),
    }
}

#[test]
fn ciborium_reads_what_we_write_and_we_read_what_it_writes() {
    for v in samples() {
        let mut ours = Vec::new();
        encode_value(&mut ours, &v);
        let theirs: ciborium::Value =
            ciborium::de::from_reader(&ours[..]).expect("ciborium decodes our encoding");
        assert_eq!(theirs, to_ciborium(&v), "ciborium reading {v:?}");

        let mut written = Vec::new();
        ciborium::ser::into_writer(&to_ciborium(&v), &mut written).expect("ciborium encodes");
        assert_eq!(
            decode_value(&written).as_ref(),
            Ok(&v),
            "reading ciborium's encoding of {v:?}"
        );
    }
}

fn publish(payload: Payload) -> Message {
    Message::Publish(Box::new(Publish {
        request: 1 << 53,
        options: PublishOptions {
            acknowledge: Some(true),
            ..Default::default()
        },
        topic: Uri::from("com.example.topic"),
        payload,
    }))
}

#[test]
fn messages_round_trip_and_payloads_stay_encoded() {
    let args = samples();
    let kwargs: Dict = [("k".to_owned(), Value::Bin(Bytes::from_static(b"\0\x01")))].into();
    let m = publish(Payload::Values {
        args: Some(args.clone()),
        kwargs: Some(kwargs.clone()),
    });
    let frame = crate::codec::encode(Serializer::Cbor, &m);
    let decoded = decode(&frame).expect("decodes");
    let Message::Publish(p) = &decoded else {
        panic!("not a PUBLISH: {decoded:?}")
    };
    // The payload is kept as encoded bytes of this frame, and re-encoded unchanged.
    assert!(matches!(&p.payload, Payload::Encoded(e) if e.format == Serializer::Cbor));
    assert_eq!(crate::codec::encode(Serializer::Cbor, &decoded), frame);
    assert_eq!(p.payload.to_values(), m_payload_values(&m));
    // Converted for a JSON and a MessagePack peer, the values are the same.
    for other in [Serializer::Json, Serializer::MsgPack] {
        let f = crate::codec::encode(other, &decoded);
        let Ok(Message::Publish(q)) = crate::codec::decode(other, &f) else {
            panic!("{other:?} does not decode the converted PUBLISH");
        };
        assert_eq!(q.payload.to_values(), m_payload_values(&m), "{other:?}");
        // And back again from that peer to CBOR.
        let back = crate::codec::encode(Serializer::Cbor, &Message::Publish(q));
        let Ok(Message::Publish(r)) = decode(&back) else {
            panic!("CBOR does not decode the PUBLISH converted from {other:?}");
        };
        assert_eq!(
            r.payload.to_values(),
            m_payload_values(&m),
            "{other:?} -> CBOR"
        );
    }
}

fn m_payload_values(m: &Message) -> Result<Payload, DecodeError> {
    match m {
        Message::Publish(p) => p.payload.to_values(),
        _ => unreachable!("publish only"),
    }
}

#[test]
fn indefinite_top_level_array_is_a_message() {
    // [_ 17, 5, 6] = PUBLISHED with request 5, publication 6.
    let m = decode(&Bytes::from(hex("9f110506ff"))).expect("decodes");
    assert_eq!(
        m,
        Message::Published(Published {
            request: 5,
            publication: 6
        })
    );
    for bad in ["9f1105", "9f110506", "9f110506ff00", "83110506ff"] {
        assert!(decode(&Bytes::from(hex(bad))).is_err(), "{bad} accepted");
    }
}

#[test]
fn every_truncation_of_a_message_is_an_error() {
    let m = publish(Payload::args(samples()));
    let frame = crate::codec::encode(Serializer::Cbor, &m);
    for n in 0..frame.len() {
        assert!(
            decode(&frame.slice(..n)).is_err(),
            "a frame cut at {n} of {} decoded",
            frame.len()
        );
    }
}

#[test]
fn wrong_types_are_named() {
    // [16, "x", {}, "a.b"]: PUBLISH with a string request ID.
    let e = decode(&Bytes::from(hex("84106178a063612e62")))
        .map(|_| ())
        .unwrap_err();
    assert!(
        e.to_string().contains("expected integer, got string"),
        "{e}"
    );
    // Not an array at all.
    assert_eq!(
        decode(&Bytes::from(hex("a0"))),
        Err(DecodeError::NotAnArray)
    );
}
