//! UBJSON: the spec's examples, every container form, binary, limits, and round trips.

use super::*;
use crate::codec::{Call, CallOptions, Payload, Publish, PublishOptions};

fn dv(bytes: &[u8]) -> Result<Value, DecodeError> {
    decode_value(bytes)
}

fn enc(v: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    encode_value(&mut out, v);
    out
}

#[test]
fn scalars_in_every_type() {
    assert_eq!(dv(b"Z"), Ok(Value::Null));
    assert_eq!(dv(b"T"), Ok(Value::Bool(true)));
    assert_eq!(dv(b"F"), Ok(Value::Bool(false)));
    assert_eq!(dv(b"i\xff"), Ok(Value::Int(-1)));
    assert_eq!(dv(b"U\xff"), Ok(Value::UInt(255)));
    assert_eq!(dv(b"I\x80\x00"), Ok(Value::Int(-32768)));
    assert_eq!(dv(b"l\x7f\xff\xff\xff"), Ok(Value::UInt(i32::MAX as u64)));
    assert_eq!(
        dv(b"L\x00\x1f\xff\xff\xff\xff\xff\xff"),
        Ok(Value::UInt((1 << 53) - 1))
    );
    assert_eq!(dv(b"d\x3f\xc0\x00\x00"), Ok(Value::Float(1.5)));
    assert_eq!(
        dv(&[&b"D"[..], &2.25f64.to_be_bytes()].concat()),
        Ok(Value::Float(2.25))
    );
    assert_eq!(dv(b"HU\x1418446744073709551615"), Ok(Value::UInt(u64::MAX)));
    assert_eq!(dv(b"HU\x041.25"), Ok(Value::Float(1.25)));
    assert_eq!(dv(b"Ca"), Ok(Value::Str("a".into())));
    assert_eq!(dv(b"SU\x06h\xc3\xa9llo"), Ok(Value::Str("héllo".into())));
    assert_eq!(dv(b"NNZ"), Ok(Value::Null), "no-ops before a value");
}

#[test]
fn containers_in_every_form() {
    let want = Value::List(vec![Value::UInt(1), Value::Str("a".into()), Value::Null]);
    assert_eq!(dv(b"[U\x01SU\x01aZ]"), Ok(want.clone()));
    assert_eq!(
        dv(b"[NU\x01NSU\x01aZN]"),
        Ok(want.clone()),
        "no-ops between items"
    );
    assert_eq!(dv(b"[#U\x03U\x01SU\x01aZ"), Ok(want));
    assert_eq!(
        dv(b"[$i#U\x03\x01\x02\xff"),
        Ok(Value::List(vec![
            Value::UInt(1),
            Value::UInt(2),
            Value::Int(-1)
        ]))
    );
    assert_eq!(
        dv(b"[$Z#U\x02"),
        Ok(Value::List(vec![Value::Null, Value::Null]))
    );
    let mut d = Dict::new();
    d.insert("a".into(), Value::UInt(1));
    d.insert("bc".into(), Value::Bool(true));
    assert_eq!(dv(b"{U\x01aU\x01U\x02bcT}"), Ok(Value::Dict(d.clone())));
    assert_eq!(dv(b"{#U\x02U\x01aU\x01U\x02bcT"), Ok(Value::Dict(d)));
    let mut t = Dict::new();
    t.insert("x".into(), Value::UInt(7));
    t.insert("y".into(), Value::UInt(8));
    assert_eq!(dv(b"{$U#U\x02U\x01x\x07U\x01y\x08"), Ok(Value::Dict(t)));
    // A typed uint8 array is a byte string (py-ubjson's binary).
    assert_eq!(
        dv(b"[$U#U\x03\x00\x01\xff"),
        Ok(Value::Bin(bytes::Bytes::from_static(b"\x00\x01\xff")))
    );
    assert_eq!(dv(b"[]"), Ok(Value::List(vec![])));
    assert_eq!(dv(b"{}"), Ok(Value::Dict(Dict::new())));
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    for bad in [
        &b""[..],
        b"[",
        b"[U\x01",
        b"SU\x05ab",
        b"S\x05ab",
        b"Si\xffab",
        b"SU\x02\xff\xfe",
        b"[$U]",
        b"[#i\xff",
        b"[$Z#L\x7f\xff\xff\xff\xff\xff\xff\xff",
        b"[#L\x7f\xff\xff\xff\xff\xff\xff\xff",
        b"{U\x01a}",
        b"{SU\x01aZ}",
        b"HU\x03abc",
        b"C\xff",
        b"x",
        b"]",
        b"ZZ",
    ] {
        assert!(dv(bad).is_err(), "{bad:?}");
        assert!(decode(&Bytes::copy_from_slice(bad)).is_err(), "{bad:?}");
    }
    // Typed containers of empty values cost no bytes per item: together they may not announce
    // more items than the frame has bytes (no allocation or CPU bomb from a small frame).
    let bomb = [&b"[#U\x03"[..], b"[$Z#I\x7f\xff", b"[$T#I\x7f\xff", b"Z"].concat();
    assert!(dv(&bomb).is_err());
    let mut many = b"[#U\x40".to_vec();
    for _ in 0..64 {
        many.extend_from_slice(b"[$Z#U\x08");
    }
    assert!(
        dv(&many).is_err(),
        "64 x 8 empty items from a 389-byte frame"
    );
    let frame = Bytes::from_static(b"[U\x10U\x01{U\x01x[$Z#U\x03}SU\x03a.b]");
    assert!(
        decode(&frame).is_ok(),
        "a few, in an end-marked envelope counted twice"
    );
    let deep = [vec![b'['; MAX_DEPTH + 1], vec![b']'; MAX_DEPTH + 1]].concat();
    assert_eq!(dv(&deep), Err(DecodeError::TooDeep(MAX_DEPTH)));
    let ok = [vec![b'['; MAX_DEPTH], vec![b']'; MAX_DEPTH]].concat();
    assert!(dv(&ok).is_ok());
}

#[test]
fn values_round_trip_and_encode_small() {
    let mut d = Dict::new();
    d.insert(
        "k".into(),
        Value::List(vec![Value::Int(-70000), Value::UInt(u64::MAX)]),
    );
    for v in [
        Value::Null,
        Value::Bool(true),
        Value::UInt(0),
        Value::UInt(255),
        Value::UInt(256),
        Value::UInt(40000),
        Value::UInt(1 << 40),
        Value::UInt(u64::MAX),
        Value::Int(-1),
        Value::Int(-129),
        Value::Int(-40000),
        Value::Int(i64::MIN),
        Value::Float(-0.5),
        Value::Str("ünïcode ✓".into()),
        Value::Bin(bytes::Bytes::from_static(b"\x00bin\xff")),
        Value::Dict(d),
    ] {
        assert_eq!(dv(&enc(&v)), Ok(v.clone()), "{v:?}");
    }
    assert_eq!(enc(&Value::UInt(5)), b"U\x05");
    assert_eq!(enc(&Value::Int(-5)), b"i\xfb");
    assert_eq!(enc(&Value::List(vec![Value::Null])), b"[#U\x01Z");
    assert_eq!(enc(&Value::List(vec![])), b"[]");
    assert_eq!(enc(&Value::Dict(Dict::new())), b"{}");
    assert_eq!(
        enc(&Value::Bin(bytes::Bytes::from_static(b"ab"))),
        b"[$U#U\x02ab"
    );
}

#[test]
fn messages_round_trip_and_payloads_stay_encoded() {
    let m = Message::Publish(Box::new(Publish {
        request: 9,
        options: PublishOptions {
            acknowledge: Some(true),
            ..Default::default()
        },
        topic: "com.t".into(),
        payload: Payload::args_kwargs(
            vec![Value::UInt(1), Value::Str("x".into())],
            [("k".to_owned(), Value::Bool(true))].into_iter().collect(),
        ),
    }));
    let mut out = Vec::new();
    encode_into(&m, &mut out);
    let frame = Bytes::from(out);
    let back = decode(&frame).expect("decodes");
    let Message::Publish(p) = &back else {
        panic!("{back:?}");
    };
    assert!(matches!(&p.payload, Payload::Encoded(e) if e.format == Serializer::Ubjson));
    assert_eq!(back, m);
    // Re-encoded as it came: the payload bytes are copied, not converted.
    let mut again = Vec::new();
    encode_into(&back, &mut again);
    assert_eq!(&again[..], &frame[..]);

    // The forms py-ubjson writes by default (end markers, `S` strings) decode too.
    let frame = Bytes::from_static(b"[U\x30U\x07{}SU\x05com.p[U\x01]]");
    match decode(&frame) {
        Ok(Message::Call(c)) => {
            let Call {
                request,
                procedure,
                payload,
                options,
            } = *c;
            assert_eq!(request, 7);
            assert_eq!(&*procedure, "com.p");
            assert_eq!(payload.args_values(), Ok(Some(vec![Value::UInt(1)])));
            assert_eq!(options, CallOptions::default());
        }
        other => panic!("{other:?}"),
    }
    // A byte string in the Arguments position is an opaque payload.
    let frame = Bytes::from_static(b"[U\x30U\x07{}SU\x05com.p[$U#U\x02\x00\xff]");
    match decode(&frame) {
        Ok(Message::Call(c)) => assert!(matches!(c.payload, Payload::Transparent(_))),
        other => panic!("{other:?}"),
    }
    assert!(decode(&Bytes::from_static(b"[U\x30U\x07{}SU\x05com.p]]")).is_err());
}
