use bytes::Bytes;
use switchyard::codec::{self, DecodeError, Message, Serializer};

fn dec(ser: Serializer, b: &[u8]) -> Result<Message, DecodeError> {
    codec::decode(ser, &Bytes::copy_from_slice(b))
}

#[test]
fn msgpack_ids_in_signed_encodings_are_accepted() {
    // [SUBSCRIBED, int8 7, int64 5512315355]: non-negative values in signed markers are valid.
    let mut f = vec![0x93, 0x21, 0xd0, 0x07, 0xd3];
    f.extend(5_512_315_355i64.to_be_bytes());
    let m = dec(Serializer::MsgPack, &f).expect("decodes");
    match m {
        Message::Subscribed(s) => assert_eq!((s.request, s.subscription), (7, 5_512_315_355)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn json_payload_that_cannot_be_converted_is_rejected_at_decode() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    for args in [r#"["\ud800"]"#, "[1e400]", deep.as_str()] {
        let f = format!(r#"[16,1,{{}},"a.b",{args},{{"k":1}}]"#);
        let r = dec(Serializer::Json, f.as_bytes());
        assert!(r.is_err(), "{} decoded: {r:?}", &args[..args.len().min(20)]);
        let f = format!(r#"[16,1,{{}},"a.b",[],{{"k":{args}}}]"#);
        assert!(dec(Serializer::Json, f.as_bytes()).is_err());
    }
}
