//! Property and edge-case tests of the codec: round trips of random messages in each serializer
//! and across serializers, robustness against random and mutated frames, resource limits (deep
//! nesting), ID ranges, error variants, UTF-8, binaries and unknown option keys.

use bytes::Bytes;
use proptest::collection::{btree_map, vec};
use proptest::prelude::*;
use switchyard::codec::{self, msgpack, *};

fn dec(ser: Serializer, b: &[u8]) -> Result<Message, DecodeError> {
    codec::decode(ser, &Bytes::copy_from_slice(b))
}

const MAX: u64 = codec::MAX_ID;

// ---------------------------------------------------------------------------------------------
// Strategies

/// A string that is not WAMP-JSON's binary form (`"\0…"` is binary by definition in JSON).
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z_]{0,8}",
        any::<String>().prop_filter("leading NUL is JSON binary", |s| !s.starts_with('\0')),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        (i64::MIN..0).prop_map(Value::Int),
        any::<u64>().prop_map(Value::UInt),
        any::<f64>()
            .prop_filter("JSON has no NaN/inf", |f| f.is_finite())
            .prop_map(Value::Float),
        text().prop_map(Value::Str),
        vec(any::<u8>(), 0..40).prop_map(|b| Value::Bin(Bytes::from(b))),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::List),
            btree_map(text(), inner, 0..5).prop_map(Value::Dict),
        ]
    })
}

fn dict() -> impl Strategy<Value = Dict> {
    btree_map(text(), value(), 0..4)
}

fn id() -> impl Strategy<Value = u64> {
    prop_oneof![0..=MAX, Just(MAX), 0u64..300]
}

/// A URI acceptable everywhere (reasons and error URIs are checked on decode).
fn uri() -> impl Strategy<Value = Uri> {
    "[a-z][a-z0-9_]{0,6}(\\.[a-z][a-z0-9_]{0,6}){0,3}".prop_map(|s| Uri::from(s.as_str()))
}

fn ids() -> BoxedStrategy<Value> {
    vec(0..=MAX, 0..4)
        .prop_map(|v| Value::List(v.into_iter().map(Value::UInt).collect()))
        .boxed()
}
fn strs() -> BoxedStrategy<Value> {
    vec(text(), 0..3)
        .prop_map(|v| Value::List(v.into_iter().map(Value::Str).collect()))
        .boxed()
}
fn boolean() -> BoxedStrategy<Value> {
    any::<bool>().prop_map(Value::Bool).boxed()
}
fn string() -> BoxedStrategy<Value> {
    text().prop_map(Value::Str).boxed()
}
fn one_of(words: &'static [&'static str]) -> BoxedStrategy<Value> {
    proptest::sample::select(words)
        .prop_map(|w| Value::Str(w.to_owned()))
        .boxed()
}
fn uint() -> BoxedStrategy<Value> {
    any::<u64>().prop_map(Value::UInt).boxed()
}
fn idv() -> BoxedStrategy<Value> {
    (0..=MAX).prop_map(Value::UInt).boxed()
}
fn dictv() -> BoxedStrategy<Value> {
    dict().prop_map(Value::Dict).boxed()
}
fn forward_for() -> BoxedStrategy<Value> {
    vec(dict(), 0..3)
        .prop_map(|v| Value::List(v.into_iter().map(Value::Dict).collect()))
        .boxed()
}

/// An options dict: some of the known keys with well-typed values, plus unknown keys (kept in
/// `extra`), turned into the typed struct the way the decoder does it.
fn options<O: Options + std::fmt::Debug>(
    known: Vec<(&'static str, BoxedStrategy<Value>)>,
) -> impl Strategy<Value = O> {
    let known: Vec<_> = known
        .into_iter()
        .map(|(k, s)| proptest::option::of(s.prop_map(move |v| (k.to_owned(), v))))
        .collect();
    (known, btree_map("x_[a-z]{1,6}", value(), 0..3)).prop_map(|(known, mut extra)| {
        extra.extend(known.into_iter().flatten());
        O::from_dict(extra).expect("well-typed options")
    })
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        Just(Payload::Empty),
        vec(value(), 0..4).prop_map(Payload::args),
        (vec(value(), 0..4), dict()).prop_map(|(a, k)| Payload::args_kwargs(a, k)),
        dict().prop_map(|k| Payload::Values {
            args: None,
            kwargs: Some(k)
        }),
        vec(any::<u8>(), 0..40).prop_map(|b| Payload::Transparent(Bytes::from(b))),
    ]
}

const PPT: [&str; 4] = ["ppt_scheme", "ppt_serializer", "ppt_cipher", "ppt_keyid"];

fn ppt() -> Vec<(&'static str, BoxedStrategy<Value>)> {
    PPT.iter().map(|k| (*k, string())).collect()
}

fn message() -> impl Strategy<Value = Message> {
    use Message as M;
    let match_policy = || one_of(&["exact", "prefix", "wildcard"]);
    let mode = || one_of(&["skip", "kill", "killnowait"]);
    prop_oneof![
        (
            uri(),
            options(vec![
                ("roles", dictv()),
                ("authmethods", strs()),
                ("authid", string()),
                ("agent", string()),
                ("authextra", dictv()),
            ])
        )
            .prop_map(|(realm, details)| M::Hello(Box::new(Hello { realm, details }))),
        (
            id(),
            options(vec![
                ("roles", dictv()),
                ("realm", string()),
                ("authid", string()),
                ("authrole", string()),
                ("authmethod", string()),
            ])
        )
            .prop_map(|(session, details)| M::from(Welcome { session, details })),
        (dict(), uri()).prop_map(|(details, reason)| M::Abort(Abort { details, reason })),
        (text(), dict()).prop_map(|(method, extra)| M::Challenge(Challenge { method, extra })),
        (text(), dict())
            .prop_map(|(signature, extra)| M::Authenticate(Authenticate { signature, extra })),
        (dict(), uri()).prop_map(|(details, reason)| M::Goodbye(Goodbye { details, reason })),
        (any::<u64>(), id(), dict(), uri(), payload()).prop_map(
            |(request_type, request, details, error, payload)| M::Error(Box::new(Error {
                request_type,
                request,
                details,
                error,
                payload
            }))
        ),
        (
            id(),
            options({
                let mut k = vec![
                    ("acknowledge", boolean()),
                    ("exclude_me", boolean()),
                    ("exclude", ids()),
                    ("exclude_authid", strs()),
                    ("eligible", ids()),
                    ("eligible_authrole", strs()),
                    ("retain", boolean()),
                    ("forward_for", forward_for()),
                    ("enc_algo", one_of(&["cryptobox", "mqtt", "xbr", "x_own"])),
                    ("enc_serializer", string()),
                ];
                k.extend(ppt());
                k
            }),
            uri(),
            payload()
        )
            .prop_map(|(request, options, topic, payload)| M::from(Publish {
                request,
                options,
                topic,
                payload
            })),
        (id(), id()).prop_map(|(request, publication)| M::Published(Published {
            request,
            publication
        })),
        (
            id(),
            options(vec![
                ("match", match_policy()),
                ("get_retained", boolean()),
                ("forward_for", forward_for()),
            ]),
            uri()
        )
            .prop_map(|(request, options, topic)| M::Subscribe(Subscribe {
                request,
                options,
                topic
            })),
        (id(), id()).prop_map(|(request, subscription)| M::Subscribed(Subscribed {
            request,
            subscription
        })),
        (id(), id()).prop_map(|(request, subscription)| M::Unsubscribe(Unsubscribe {
            request,
            subscription
        })),
        (id(), proptest::option::of(dict()))
            .prop_map(|(request, details)| M::Unsubscribed(Unsubscribed { request, details })),
        (
            id(),
            id(),
            options(vec![
                ("publisher", idv()),
                ("publisher_authid", string()),
                ("publisher_authrole", string()),
                ("topic", string()),
                ("retained", boolean()),
                ("x_acknowledged_delivery", boolean()),
                ("forward_for", forward_for()),
                ("enc_algo", one_of(&["cryptobox", "x_y"])),
            ]),
            payload()
        )
            .prop_map(
                |(subscription, publication, details, payload)| M::from(Event {
                    subscription,
                    publication,
                    details,
                    payload
                })
            ),
        (id(), proptest::option::of(dict()), payload()).prop_map(
            |(publication, details, payload)| {
                // On the wire, a payload needs the Details element before it.
                let details = match (details, payload.is_empty()) {
                    (None, false) => Some(Dict::new()),
                    (d, _) => d,
                };
                M::EventReceived(EventReceived {
                    publication,
                    details,
                    payload,
                })
            }
        ),
        (
            id(),
            options({
                let mut k = vec![
                    ("timeout", uint()),
                    ("receive_progress", boolean()),
                    ("disclose_me", boolean()),
                    ("progress", boolean()),
                ];
                k.extend(ppt());
                k
            }),
            uri(),
            payload()
        )
            .prop_map(|(request, options, procedure, payload)| M::from(Call {
                request,
                options,
                procedure,
                payload
            })),
        (id(), options(vec![("mode", mode())]))
            .prop_map(|(request, options)| M::Cancel(Cancel { request, options })),
        (id(), options(vec![("progress", boolean())]), payload()).prop_map(
            |(request, details, payload)| M::Result(Box::new(CallResult {
                request,
                details,
                payload
            }))
        ),
        (
            id(),
            options(vec![
                ("match", match_policy()),
                (
                    "invoke",
                    one_of(&["single", "roundrobin", "random", "first", "last"])
                ),
                ("disclose_caller", boolean()),
                ("force_reregister", boolean()),
            ]),
            uri()
        )
            .prop_map(|(request, options, procedure)| M::Register(Register {
                request,
                options,
                procedure
            })),
        (id(), id()).prop_map(|(request, registration)| M::Registered(Registered {
            request,
            registration
        })),
        (id(), id()).prop_map(|(request, registration)| M::Unregister(Unregister {
            request,
            registration
        })),
        (id(), proptest::option::of(dict()))
            .prop_map(|(request, details)| M::Unregistered(Unregistered { request, details })),
        (
            id(),
            id(),
            options(vec![
                ("caller", idv()),
                ("caller_authid", string()),
                ("procedure", string()),
                ("receive_progress", boolean()),
                ("timeout", uint()),
            ]),
            payload()
        )
            .prop_map(
                |(request, registration, details, payload)| M::from(Invocation {
                    request,
                    registration,
                    details,
                    payload
                })
            ),
        (id(), options(vec![("mode", mode()), ("reason", string())]))
            .prop_map(|(request, options)| M::Interrupt(Interrupt { request, options })),
        (id(), options(vec![("progress", boolean())]), payload()).prop_map(
            |(request, options, payload)| M::Yield(Box::new(Yield {
                request,
                options,
                payload
            }))
        ),
    ]
}

// ---------------------------------------------------------------------------------------------
// Round trips

fn roundtrip(ser: Serializer, m: &Message) -> Result<Message, TestCaseError> {
    let frame = codec::encode(ser, m);
    codec::decode(ser, &frame).map_err(|e| {
        TestCaseError::fail(format!(
            "{ser:?} frame {:?} does not decode: {e}",
            String::from_utf8_lossy(&frame)
        ))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    #[test]
    fn every_message_survives_each_serializer(m in message()) {
        for ser in Serializer::ALL {
            let back = roundtrip(ser, &m)?;
            prop_assert_eq!(&back, &m, "{:?}", ser);
            // Encoding what was decoded splices the payload: the same bytes again.
            prop_assert_eq!(codec::encode(ser, &back), codec::encode(ser, &m));
        }
    }

    #[test]
    fn every_message_survives_json_msgpack_json(m in message()) {
        let j = roundtrip(Serializer::Json, &m)?;
        let p = roundtrip(Serializer::MsgPack, &j)?;
        prop_assert_eq!(&p, &m);
        let j2 = roundtrip(Serializer::Json, &p)?;
        prop_assert_eq!(&j2, &m);
    }

    #[test]
    fn every_message_survives_msgpack_json_msgpack(m in message()) {
        let p = roundtrip(Serializer::MsgPack, &m)?;
        let j = roundtrip(Serializer::Json, &p)?;
        prop_assert_eq!(&j, &m);
        let p2 = roundtrip(Serializer::MsgPack, &j)?;
        prop_assert_eq!(&p2, &m);
    }

    #[test]
    fn values_survive_both_value_codecs(v in value()) {
        let mut out = Vec::new();
        codec::json::encode_value(&mut out, &v);
        prop_assert_eq!(&codec::json::decode_value(&out).unwrap(), &v);
        out.clear();
        msgpack::encode_value(&mut out, &v);
        prop_assert_eq!(&msgpack::decode_value(&out).unwrap(), &v);
    }
}

// ---------------------------------------------------------------------------------------------
// Robustness: nothing a peer sends makes decode panic, and whatever decodes can be re-encoded.

/// Decodes in `ser`; when that succeeds, the message must re-encode in both serializers and
/// the result must decode again (the router forwards what it accepted).
fn decode_then_forward(ser: Serializer, frame: &[u8]) -> Result<(), TestCaseError> {
    if let Ok(m) = dec(ser, frame) {
        for target in Serializer::ALL {
            let out = codec::encode(target, &m);
            if let Err(e) = codec::decode(target, &out) {
                return Err(TestCaseError::fail(format!(
                    "{ser:?} frame {frame:02x?} decoded to {m:?}; re-encoded as {target:?} it \
                     does not decode: {e}"
                )));
            }
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Set(i, b)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(frame: &mut Vec<u8>, m: &Mutation) {
    if frame.is_empty() {
        return;
    }
    let n = frame.len();
    match *m {
        Mutation::Flip(i, b) => frame[i % n] ^= b,
        Mutation::Set(i, b) => frame[i % n] = b,
        Mutation::Insert(i, b) => frame.insert(i % (n + 1), b),
        Mutation::Remove(i) => {
            frame.remove(i % n);
        }
        Mutation::Truncate(i) => frame.truncate(i % n),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    #[test]
    fn random_bytes_never_panic(bytes in vec(any::<u8>(), 0..200)) {
        for ser in Serializer::ALL {
            decode_then_forward(ser, &bytes)?;
        }
    }

    #[test]
    fn random_json_text_never_panics(s in "[\\[\\]{},:\" 0-9a-z.\\\\u-]{0,80}") {
        decode_then_forward(Serializer::Json, s.as_bytes())?;
    }

    #[test]
    fn mutated_frames_never_panic(m in message(), muts in vec(mutation(), 1..6)) {
        for ser in Serializer::ALL {
            let mut frame = codec::encode(ser, &m).to_vec();
            for mu in &muts {
                mutate(&mut frame, mu);
            }
            decode_then_forward(ser, &frame)?;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Deep nesting: an error, never a stack overflow.

const DEEP: usize = 100_000;

fn json_deep() -> String {
    format!("{}{}", "[".repeat(DEEP), "]".repeat(DEEP))
}

fn msgpack_deep() -> Vec<u8> {
    let mut v = vec![0x91; DEEP];
    v.push(0x90);
    v
}

#[test]
fn deep_nesting_is_an_error_in_json() {
    let deep = json_deep();
    let frames = [
        deep.clone(),
        format!("[{deep}]"),
        format!(r#"[16,1,{{"k":{deep}}},"a.b"]"#),
        format!(r#"[16,1,{{}},"a.b",{deep}]"#),
        format!(r#"[16,1,{{}},"a.b",[{deep}]]"#),
        format!(r#"[16,1,{{}},"a.b",[],{{"k":{deep}}}]"#),
        format!(r#"[36,1,2,{{"x_deep":[{deep}]}}]"#),
    ];
    for f in &frames {
        let e = dec(Serializer::Json, f.as_bytes()).expect_err("deep frame decoded");
        assert!(
            matches!(
                e,
                DecodeError::TooDeep(_) | DecodeError::BadMessageType | DecodeError::Json(_)
            ),
            "{e:?}"
        );
    }
    assert!(matches!(
        codec::json::decode_value(deep.as_bytes()),
        Err(DecodeError::TooDeep(_))
    ));
}

#[test]
fn deep_nesting_is_an_error_in_msgpack() {
    let deep = msgpack_deep();
    // [16, 1, {"k": deep}, "a.b"]
    let mut in_options = vec![0x94, 0x10, 0x01, 0x81, 0xa1, b'k'];
    in_options.extend(&deep);
    in_options.extend([0xa3, b'a', b'.', b'b']);
    // [16, 1, {}, "a.b", deep]
    let mut in_args = vec![0x95, 0x10, 0x01, 0x80, 0xa3, b'a', b'.', b'b'];
    in_args.extend(&deep);
    // [16, 1, {}, "a.b", [], {"k": deep}]
    let mut in_kwargs = vec![
        0x96, 0x10, 0x01, 0x80, 0xa3, b'a', b'.', b'b', 0x90, 0x81, 0xa1,
    ];
    in_kwargs.push(b'k');
    in_kwargs.extend(&deep);
    for f in [&in_options, &in_args, &in_kwargs] {
        assert_eq!(
            dec(Serializer::MsgPack, f).unwrap_err(),
            DecodeError::TooDeep(msgpack::MAX_DEPTH)
        );
    }
    // As the whole frame, the first element is not a message type.
    assert_eq!(
        dec(Serializer::MsgPack, &deep).unwrap_err(),
        DecodeError::BadMessageType
    );
    assert_eq!(
        msgpack::decode_value(&deep).unwrap_err(),
        DecodeError::TooDeep(msgpack::MAX_DEPTH)
    );
}

/// `n` nested lists around `0`, as one value.
fn nested(n: usize) -> Value {
    (0..n).fold(Value::UInt(0), |v, _| Value::List(vec![v]))
}

#[test]
fn every_serializer_accepts_the_same_nesting_depth() {
    // Whatever one serializer accepts, the other must accept after conversion, or forwarding a
    // payload between a MessagePack and a JSON peer would produce frames the router rejects.
    let accepted = |ser: Serializer, n: usize| {
        let m = Message::Publish(Box::new(Publish {
            request: 1,
            options: PublishOptions::default(),
            topic: Uri::from("a.b"),
            payload: Payload::args(vec![nested(n)]),
        }));
        codec::decode(ser, &codec::encode(ser, &m)).is_ok()
    };
    let limit = |ser| (1..300).find(|n| !accepted(ser, *n)).expect("a limit");
    assert_eq!(limit(Serializer::Json), limit(Serializer::MsgPack));
    for ser in Serializer::ALL {
        assert_eq!(limit(Serializer::Json), limit(ser), "{ser:?}");
    }
    let value_limit = |ser: Serializer| {
        (1..300)
            .find(|n| {
                let mut out = Vec::new();
                match ser {
                    Serializer::Json => {
                        codec::json::encode_value(&mut out, &nested(*n));
                        codec::json::decode_value(&out).is_err()
                    }
                    Serializer::MsgPack => {
                        msgpack::encode_value(&mut out, &nested(*n));
                        msgpack::decode_value(&out).is_err()
                    }
                    Serializer::Cbor => {
                        codec::cbor::encode_value(&mut out, &nested(*n));
                        codec::cbor::decode_value(&out).is_err()
                    }
                    Serializer::Ubjson => {
                        codec::ubjson::encode_value(&mut out, &nested(*n));
                        codec::ubjson::decode_value(&out).is_err()
                    }
                    Serializer::Bjdata => {
                        codec::ubjson::encode_value_bjdata(&mut out, &nested(*n));
                        codec::ubjson::decode_value_bjdata(&out).is_err()
                    }
                }
            })
            .expect("a limit")
    };
    assert_eq!(
        value_limit(Serializer::Json),
        value_limit(Serializer::MsgPack)
    );
    for ser in Serializer::ALL {
        assert_eq!(value_limit(Serializer::Json), value_limit(ser), "{ser:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// IDs

fn msgpack_published(request: &[u8]) -> Vec<u8> {
    let mut f = vec![0x93, 0x11];
    f.extend(request);
    f.push(0x01);
    f
}

fn published_request(r: Result<Message, DecodeError>) -> Result<u64, DecodeError> {
    match r? {
        Message::Published(p) => Ok(p.request),
        other => panic!("{other:?}"),
    }
}

#[test]
fn id_range_in_json() {
    let j = |id: &str| published_request(dec(Serializer::Json, format!("[17,{id},1]").as_bytes()));
    assert_eq!(j("9007199254740992"), Ok(MAX));
    assert_eq!(j("0"), Ok(0));
    assert_eq!(j("5.0"), Ok(5));
    assert_eq!(j("5e0"), Ok(5));
    assert!(matches!(
        j("9007199254740993"),
        Err(DecodeError::IdOutOfRange {
            field: "Request",
            ..
        })
    ));
    assert!(matches!(
        j("18446744073709551615"),
        Err(DecodeError::IdOutOfRange { .. })
    ));
    assert!(matches!(
        j("5.5"),
        Err(DecodeError::WrongType { got: "float", .. })
    ));
    assert!(matches!(
        j("-1"),
        Err(DecodeError::WrongType {
            got: "negative integer",
            ..
        })
    ));
    assert!(matches!(j("1e300"), Err(DecodeError::WrongType { .. })));
}

#[test]
fn id_range_in_msgpack() {
    let p = |id: &[u8]| published_request(dec(Serializer::MsgPack, &msgpack_published(id)));
    let be = |marker: u8, v: &[u8]| [&[marker][..], v].concat();
    assert_eq!(p(&be(0xcf, &MAX.to_be_bytes())), Ok(MAX));
    assert_eq!(p(&be(0xd3, &(MAX as i64).to_be_bytes())), Ok(MAX));
    assert_eq!(p(&be(0xcb, &5.0f64.to_be_bytes())), Ok(5));
    assert_eq!(p(&be(0xca, &5.0f32.to_be_bytes())), Ok(5));
    assert_eq!(p(&[0x00]), Ok(0));
    assert_eq!(p(&[0xd0, 0x05]), Ok(5));
    assert!(matches!(
        p(&be(0xcf, &(MAX + 1).to_be_bytes())),
        Err(DecodeError::IdOutOfRange {
            field: "Request",
            ..
        })
    ));
    assert!(matches!(
        p(&be(0xcb, &((MAX + 2) as f64).to_be_bytes())),
        Err(DecodeError::IdOutOfRange { .. })
    ));
    assert!(matches!(
        p(&be(0xcb, &5.5f64.to_be_bytes())),
        Err(DecodeError::WrongType { got: "float", .. })
    ));
    assert!(matches!(
        p(&be(0xcb, &f64::NAN.to_be_bytes())),
        Err(DecodeError::WrongType { .. })
    ));
    for neg in [
        &[0xff][..],
        &[0xd0, 0xff],
        &be(0xd3, &(-1i64).to_be_bytes()),
    ] {
        assert!(matches!(
            p(neg),
            Err(DecodeError::WrongType {
                got: "negative integer",
                ..
            })
        ));
    }
}

#[test]
fn id_options_are_range_checked() {
    for (ser, frame) in [
        (
            Serializer::Json,
            br#"[36,1,2,{"publisher":9007199254740993}]"#.to_vec(),
        ),
        (Serializer::Json, br#"[36,1,2,{"publisher":-1}]"#.to_vec()),
    ] {
        assert!(matches!(
            dec(ser, &frame),
            Err(DecodeError::BadOption { ref key, .. }) if key == "publisher"
        ));
    }
    let m = dec(
        Serializer::Json,
        br#"[36,1,2,{"publisher":9007199254740992}]"#,
    )
    .unwrap();
    match m {
        Message::Event(e) => assert_eq!(e.details.publisher, Some(IdField(MAX))),
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Error variants

/// The same wire array in both serializers: JSON text, and MessagePack via serde_json → rmp.
fn both(json: &str) -> [(Serializer, Vec<u8>); 2] {
    fn put(out: &mut Vec<u8>, j: &serde_json::Value) {
        use serde_json::Value as J;
        match j {
            J::Null => rmp::encode::write_nil(out).unwrap(),
            J::Bool(b) => rmp::encode::write_bool(out, *b).unwrap(),
            J::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => rmp::encode::write_uint(out, u).map(|_| ()).unwrap(),
                (None, Some(i)) => rmp::encode::write_sint(out, i).map(|_| ()).unwrap(),
                _ => rmp::encode::write_f64(out, n.as_f64().unwrap()).unwrap(),
            },
            J::String(s) => rmp::encode::write_str(out, s).unwrap(),
            J::Array(a) => {
                rmp::encode::write_array_len(out, a.len() as u32).unwrap();
                a.iter().for_each(|x| put(out, x));
            }
            J::Object(o) => {
                rmp::encode::write_map_len(out, o.len() as u32).unwrap();
                for (k, v) in o {
                    rmp::encode::write_str(out, k).unwrap();
                    put(out, v);
                }
            }
        }
    }
    let mut mp = Vec::new();
    put(&mut mp, &serde_json::from_str(json).unwrap());
    [
        (Serializer::Json, json.as_bytes().to_vec()),
        (Serializer::MsgPack, mp),
    ]
}

#[test]
fn error_variants() {
    type Check = fn(&DecodeError) -> bool;
    let cases: Vec<(&str, Check)> = vec![
        ("[999,1]", |e| *e == DecodeError::UnknownMessageType(999)),
        ("[0]", |e| *e == DecodeError::UnknownMessageType(0)),
        ("[]", |e| *e == DecodeError::NotAnArray),
        ("{}", |e| *e == DecodeError::NotAnArray),
        ("16", |e| *e == DecodeError::NotAnArray),
        (r#"["x",1]"#, |e| *e == DecodeError::BadMessageType),
        ("[-16,1]", |e| *e == DecodeError::BadMessageType),
        ("[16,1]", |e| {
            *e == DecodeError::WrongArity {
                message: "PUBLISH",
                got: 2,
            }
        }),
        (r#"[16,1,{},"a.b",[],{},7]"#, |e| {
            *e == DecodeError::WrongArity {
                message: "PUBLISH",
                got: 7,
            }
        }),
        (r#"[8,48,1,{},"a.b",[],{},1,2,3]"#, |e| {
            *e == DecodeError::WrongArity {
                message: "ERROR",
                got: 10,
            }
        }),
        ("[1]", |e| {
            *e == DecodeError::WrongArity {
                message: "HELLO",
                got: 1,
            }
        }),
        (r#"[16,"1",{},"a.b"]"#, |e| {
            matches!(
                e,
                DecodeError::WrongType {
                    message: "PUBLISH",
                    field: "Request",
                    expected: "integer",
                    got: "string"
                }
            )
        }),
        (r#"[16,1,[],"a.b"]"#, |e| {
            matches!(
                e,
                DecodeError::WrongType {
                    field: "Options",
                    expected: "dict",
                    got: "list",
                    ..
                }
            )
        }),
        (r#"[16,1,{},5]"#, |e| {
            matches!(
                e,
                DecodeError::WrongType {
                    field: "Topic",
                    expected: "string",
                    got: "integer",
                    ..
                }
            )
        }),
        (r#"[16,1,{},"a.b",{}]"#, |e| {
            matches!(
                e,
                DecodeError::WrongType {
                    field: "Arguments",
                    got: "dict",
                    ..
                }
            )
        }),
        (r#"[16,1,{},"a.b",[],[]]"#, |e| {
            matches!(
                e,
                DecodeError::WrongType {
                    field: "ArgumentsKw",
                    got: "list",
                    ..
                }
            )
        }),
        (r#"[3,{},"bad uri"]"#, |e| {
            matches!(
                e,
                DecodeError::BadUri {
                    message: "ABORT",
                    field: "Reason",
                    ..
                }
            )
        }),
        (
            r#"[16,1,{"acknowledge":1},"a.b"]"#,
            |e| matches!(e, DecodeError::BadOption { key, .. } if key == "acknowledge"),
        ),
    ];
    for (json, ok) in cases {
        for (ser, frame) in both(json) {
            let e = dec(ser, &frame).expect_err(json);
            assert!(ok(&e), "{ser:?} {json}: got {e:?}");
        }
    }
}

#[test]
fn msgpack_specific_errors() {
    // Trailing bytes after a complete message.
    assert_eq!(
        dec(Serializer::MsgPack, &[0x93, 0x11, 0x01, 0x01, 0x00]).unwrap_err(),
        DecodeError::TrailingBytes
    );
    // Truncated frame, reserved marker, non-string dict key, extension type.
    for f in [
        &[0x93, 0x11, 0x01][..],
        &[0x93, 0x11, 0x01, 0xc1],
        &[0x94, 0x10, 0x01, 0x81, 0x01, 0x01, 0xa1, b'a'],
        &[0x95, 0x10, 0x01, 0x80, 0xa1, b'a', 0x91, 0xd4, 0x01, 0x01],
    ] {
        assert!(
            matches!(dec(Serializer::MsgPack, f), Err(DecodeError::MsgPack(_))),
            "{f:02x?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// UTF-8

#[test]
fn invalid_utf8_is_a_utf8_error() {
    let json: &[&[u8]] = &[
        b"[16,1,{},\"a.\xffb\"]",
        b"[16,1,{},\"a.b\",[\"\xc3\x28\"]]",
        b"[16,1,{\"\xed\xa0\x80\":1},\"a.b\"]",
    ];
    for f in json {
        assert_eq!(
            dec(Serializer::Json, f).unwrap_err(),
            DecodeError::Utf8("JSON text")
        );
    }
    let msgpack: &[&[u8]] = &[
        // topic
        &[0x94, 0x10, 0x01, 0x80, 0xa3, b'a', 0xff, b'b'],
        // dict key in options
        &[0x94, 0x10, 0x01, 0x81, 0xa1, 0xff, 0x01, 0xa1, b'a'],
        // string inside args (not decoded, but validated)
        &[0x95, 0x10, 0x01, 0x80, 0xa1, b'a', 0x91, 0xa2, 0xc3, 0x28],
        // string inside kwargs
        &[
            0x96, 0x10, 0x01, 0x80, 0xa1, b'a', 0x90, 0x81, 0xa1, b'k', 0xa1, 0xff,
        ],
        // CHALLENGE.AuthMethod
        &[0x93, 0x04, 0xa1, 0xfe, 0x80],
    ];
    for f in msgpack {
        assert_eq!(
            dec(Serializer::MsgPack, f).unwrap_err(),
            DecodeError::Utf8("MessagePack string"),
            "{f:02x?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Binaries and unknown keys across serializers

#[test]
fn binary_survives_json_to_msgpack_and_back() {
    let bin = Bytes::from_static(&[0, 1, 2, 0xfe, 0xff]);
    // JSON in: "\u0000" + base64, in args, kwargs, options and as a transparent payload.
    let json =
        br#"[16,1,{"x_bin":"\u0000AAEC/v8="},"a.b",["\u0000AAEC/v8="],{"k":"\u0000AAEC/v8="}]"#;
    let m = dec(Serializer::Json, json).unwrap();
    let mp = codec::encode(Serializer::MsgPack, &m);
    // MessagePack out: a real `bin 8` with the five bytes, three times.
    let needle = [&[0xc4, 5][..], &bin].concat();
    assert_eq!(mp.windows(needle.len()).filter(|w| *w == needle).count(), 3);
    let m2 = codec::decode(Serializer::MsgPack, &mp).unwrap();
    let Message::Publish(p) = &m2 else { panic!() };
    assert_eq!(p.options.extra["x_bin"], Value::Bin(bin.clone()));
    assert_eq!(
        p.payload.args_values().unwrap().unwrap(),
        vec![Value::Bin(bin.clone())]
    );
    assert_eq!(
        p.payload.kwargs_values().unwrap().unwrap()["k"],
        Value::Bin(bin.clone())
    );
    // And back to JSON: the same text elements.
    let back = codec::encode(Serializer::Json, &m2);
    let a: serde_json::Value = serde_json::from_slice(&back).unwrap();
    let b: serde_json::Value = serde_json::from_slice(json).unwrap();
    assert_eq!(a, b);

    // MessagePack in: a transparent payload stays a binary in JSON and comes back identical.
    let mut f = vec![0x95, 0x24, 0x01, 0x02, 0x80, 0xc4, 5];
    f.extend(&bin);
    let m = dec(Serializer::MsgPack, &f).unwrap();
    let j = codec::encode(Serializer::Json, &m);
    assert_eq!(&j[..], br#"[36,1,2,{},"\u0000AAEC/v8="]"#);
    let m2 = codec::decode(Serializer::Json, &j).unwrap();
    assert_eq!(&codec::encode(Serializer::MsgPack, &m2)[..], &f[..]);
}

#[test]
fn unknown_option_keys_survive_forwarding() {
    let json = br#"[16,7,{"acknowledge":true,"x_trace":{"id":"abc","hops":[1,-2,1.5,null]},"custom":"v"},"a.b",[1]]"#;
    let m = dec(Serializer::Json, json).unwrap();
    let Message::Publish(p) = &m else { panic!() };
    assert_eq!(p.options.acknowledge, Some(true));
    assert_eq!(
        p.options.extra.keys().collect::<Vec<_>>(),
        ["custom", "x_trace"]
    );
    let want = p.options.to_dict();
    // Forward through each serializer, and through both in turn.
    for path in [
        &[Serializer::Json][..],
        &[Serializer::MsgPack],
        &[Serializer::MsgPack, Serializer::Json],
        &[Serializer::Json, Serializer::MsgPack, Serializer::Json],
    ] {
        let mut cur = m.clone();
        for ser in path {
            cur = codec::decode(*ser, &codec::encode(*ser, &cur)).unwrap();
        }
        let Message::Publish(q) = &cur else { panic!() };
        assert_eq!(q.options.to_dict(), want, "{path:?}");
    }
    // The router builds an EVENT whose details carry keys it does not know.
    let details = EventDetails {
        extra: p.options.extra.clone(),
        ..Default::default()
    };
    let ev = Message::Event(Box::new(Event {
        subscription: 1,
        publication: 2,
        details,
        payload: p.payload.clone(),
    }));
    for ser in Serializer::ALL {
        let Message::Event(e) = codec::decode(ser, &codec::encode(ser, &ev)).unwrap() else {
            panic!()
        };
        assert_eq!(e.details.extra, p.options.extra);
    }
}

// ---------------------------------------------------------------------------------------------
// Regressions (each failed before its fix)

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
