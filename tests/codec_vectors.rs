//! The official WAMP test vectors (`wamp-testsuite/singlemessage/**.json`), read at test time.
//!
//! Where the vectors are: `$WAMP_TESTSUITE` if set, else the copy vendored into this repository
//! (`tests/vectors/wamp-testsuite/`, see its `SOURCE.md` for source, commit and licence). A
//! missing folder is a failure, never a silent pass.
//!
//! Two kinds of sample:
//! - serialization samples (`serializers` + `expected_attributes`): every JSON and MessagePack
//!   representation is decoded and compared with the expected attributes; the message is then
//!   encoded in BOTH serializers, decoded again, and compared again.
//! - validation samples (`wmsg`, optional `expected_error`): the wire array is serialized by this
//!   test (independently of the codec under test), decoded by both serializers, and must succeed
//!   or fail with an error whose text contains `expected_error.contains`.
//!
//! New vector files are picked up without code change. An attribute name this test does not know
//! is a failure (so a new vector cannot be half-checked); see [`attribute`] for the mapping.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use switchyard::codec::{self, code, Dict, Message, Options, Payload, Serializer, Value};

fn suite_dir() -> PathBuf {
    match std::env::var_os("WAMP_TESTSUITE") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors/wamp-testsuite"),
    }
}

fn vector_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read test-vector folder {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            vector_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "json") {
            out.push(path);
        }
    }
}

fn unhex(s: &str) -> Result<Vec<u8>, String> {
    if !s.len().is_multiple_of(2) {
        return Err(format!("odd-length hex {s:?}"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(|e| format!("bad hex {s:?}: {e}")))
        .collect()
}

fn hex(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// The bytes of one representation: `bytes_hex`, else `bytes_base64`, else the `bytes` text.
fn representation_bytes(r: &Json) -> Result<Vec<u8>, String> {
    if let Some(h) = r.get("bytes_hex").and_then(Json::as_str) {
        unhex(h)
    } else if let Some(b) = r.get("bytes_base64").and_then(Json::as_str) {
        B64.decode(b).map_err(|e| format!("bad base64: {e}"))
    } else if let Some(t) = r.get("bytes").and_then(Json::as_str) {
        Ok(t.as_bytes().to_vec())
    } else {
        Err("representation without bytes_hex/bytes_base64/bytes".into())
    }
}

/// A JSON value from a vector as a codec value (the numbers keep their kind: integer or float).
fn to_value(j: &Json) -> Value {
    match j {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => match (n.as_u64(), n.as_i64()) {
            (Some(u), _) => Value::UInt(u),
            (None, Some(i)) => Value::Int(i),
            _ => Value::Float(n.as_f64().expect("finite number")),
        },
        Json::String(s) => Value::Str(s.clone()),
        Json::Array(a) => Value::List(a.iter().map(to_value).collect()),
        Json::Object(o) => Value::Dict(o.iter().map(|(k, v)| (k.clone(), to_value(v))).collect()),
    }
}

/// The message's options or details dictionary, if it has one.
fn options_dict(m: &Message) -> Option<Dict> {
    Some(match m {
        Message::Hello(x) => x.details.to_dict(),
        Message::Welcome(x) => x.details.to_dict(),
        Message::Abort(x) => x.details.clone(),
        Message::Goodbye(x) => x.details.clone(),
        Message::Error(x) => x.details.clone(),
        Message::Publish(x) => x.options.to_dict(),
        Message::Subscribe(x) => x.options.to_dict(),
        Message::Unsubscribed(x) => x.details.clone()?,
        Message::Event(x) => x.details.to_dict(),
        Message::EventReceived(x) => x.details.clone()?,
        Message::Call(x) => x.options.to_dict(),
        Message::Cancel(x) => x.options.to_dict(),
        Message::Result(x) => x.details.to_dict(),
        Message::Register(x) => x.options.to_dict(),
        Message::Unregistered(x) => x.details.clone()?,
        Message::Invocation(x) => x.details.to_dict(),
        Message::Interrupt(x) => x.options.to_dict(),
        Message::Yield(x) => x.options.to_dict(),
        _ => return None,
    })
}

fn payload_of(m: &Message) -> Option<&Payload> {
    match m {
        Message::Error(x) => Some(&x.payload),
        Message::Publish(x) => Some(&x.payload),
        Message::Event(x) => Some(&x.payload),
        Message::EventReceived(x) => Some(&x.payload),
        Message::Call(x) => Some(&x.payload),
        Message::Result(x) => Some(&x.payload),
        Message::Invocation(x) => Some(&x.payload),
        Message::Yield(x) => Some(&x.payload),
        _ => None,
    }
}

/// What a message holds under one attribute name of the vectors.
///
/// `Ok(None)` is "absent" (equal to an expected `null`); `Err` is "this message has no such
/// attribute", a test failure.
///
/// - Fields: `message_type`, `request_id`, `request_type`, `session_id`/`session`,
///   `subscription[_id]`, `publication[_id]`, `registration[_id]`, `realm`, `topic`,
///   `procedure`, `reason`, `error`, `method`, `signature`, `extra` (CHALLENGE/AUTHENTICATE).
/// - `options` / `details`: the whole dictionary, typed keys and `extra` (`Options::to_dict`).
/// - `args` / `kwargs`: `Payload::args_values()` / `kwargs_values()`; absent is `null`.
/// - `payload`: a transparent (Payload Passthru) binary, written as lower-case hex in the
///   vectors; `null` when the payload is not transparent.
/// - Any other name (`roles`, `authid`, `exclude_me`, …) is a key of the message's
///   options/details dictionary, as Autobahn exposes them; absent key is `null`.
fn attribute(m: &Message, name: &str) -> Result<Option<Value>, String> {
    use Message as M;
    let u = |x: u64| Ok(Some(Value::UInt(x)));
    let s = |x: &str| Ok(Some(Value::Str(x.to_owned())));
    let missing = || Err(format!("{} has no attribute {name:?}", m.name()));
    match name {
        "message_type" => u(m.code()),
        "request_id" | "request" => match m {
            M::Error(x) => u(x.request),
            M::Publish(x) => u(x.request),
            M::Published(x) => u(x.request),
            M::Subscribe(x) => u(x.request),
            M::Subscribed(x) => u(x.request),
            M::Unsubscribe(x) => u(x.request),
            M::Unsubscribed(x) => u(x.request),
            M::Call(x) => u(x.request),
            M::Cancel(x) => u(x.request),
            M::Result(x) => u(x.request),
            M::Register(x) => u(x.request),
            M::Registered(x) => u(x.request),
            M::Unregister(x) => u(x.request),
            M::Unregistered(x) => u(x.request),
            M::Invocation(x) => u(x.request),
            M::Interrupt(x) => u(x.request),
            M::Yield(x) => u(x.request),
            _ => missing(),
        },
        "request_type" => match m {
            M::Error(x) => u(x.request_type),
            _ => missing(),
        },
        "session_id" | "session" => match m {
            M::Welcome(x) => u(x.session),
            _ => missing(),
        },
        "subscription" | "subscription_id" => match m {
            M::Subscribed(x) => u(x.subscription),
            M::Unsubscribe(x) => u(x.subscription),
            M::Event(x) => u(x.subscription),
            _ => missing(),
        },
        "publication" | "publication_id" => match m {
            M::Published(x) => u(x.publication),
            M::Event(x) => u(x.publication),
            M::EventReceived(x) => u(x.publication),
            _ => missing(),
        },
        "registration" | "registration_id" => match m {
            M::Registered(x) => u(x.registration),
            M::Unregister(x) => u(x.registration),
            M::Invocation(x) => u(x.registration),
            _ => missing(),
        },
        "realm" => match m {
            M::Hello(x) => s(&x.realm),
            // WELCOME.Details.realm
            _ => dict_key(m, name),
        },
        "topic" => match m {
            M::Publish(x) => s(&x.topic),
            M::Subscribe(x) => s(&x.topic),
            // EVENT.Details.topic (pattern-based subscriptions)
            _ => dict_key(m, name),
        },
        "procedure" => match m {
            M::Call(x) => s(&x.procedure),
            M::Register(x) => s(&x.procedure),
            _ => dict_key(m, name),
        },
        "reason" => match m {
            M::Abort(x) => s(&x.reason),
            M::Goodbye(x) => s(&x.reason),
            _ => dict_key(m, name),
        },
        "error" => match m {
            M::Error(x) => s(&x.error),
            _ => missing(),
        },
        "method" | "authmethod" if matches!(m, M::Challenge(_)) => match m {
            M::Challenge(x) => s(&x.method),
            _ => unreachable!(),
        },
        "signature" => match m {
            M::Authenticate(x) => s(&x.signature),
            _ => missing(),
        },
        "extra" => match m {
            M::Challenge(x) => Ok(Some(Value::Dict(x.extra.clone()))),
            M::Authenticate(x) => Ok(Some(Value::Dict(x.extra.clone()))),
            _ => dict_key(m, name),
        },
        "options" | "details" => match options_dict(m) {
            Some(d) => Ok(Some(Value::Dict(d))),
            None if matches!(
                m,
                M::Unsubscribed(_) | M::Unregistered(_) | M::EventReceived(_)
            ) =>
            {
                Ok(None)
            }
            None => missing(),
        },
        "args" | "kwargs" | "payload" => {
            let Some(p) = payload_of(m) else {
                return missing();
            };
            match name {
                "args" => p
                    .args_values()
                    .map(|a| a.map(Value::List))
                    .map_err(|e| format!("args do not decode: {e}")),
                "kwargs" => p
                    .kwargs_values()
                    .map(|k| k.map(Value::Dict))
                    .map_err(|e| format!("kwargs do not decode: {e}")),
                _ => match p {
                    Payload::Transparent(b) => Ok(Some(Value::Str(hex(b)))),
                    _ => Ok(None),
                },
            }
        }
        _ => dict_key(m, name),
    }
}

fn dict_key(m: &Message, name: &str) -> Result<Option<Value>, String> {
    match options_dict(m) {
        Some(d) => Ok(d.get(name).cloned()),
        None if matches!(
            m,
            Message::Unsubscribed(_) | Message::Unregistered(_) | Message::EventReceived(_)
        ) =>
        {
            Ok(None)
        }
        None => Err(format!(
            "{} has no attribute {name:?} and no options/details dict",
            m.name()
        )),
    }
}

/// Compares a decoded message with the expected attributes; returns the mismatches.
fn check_attributes(m: &Message, expected: &serde_json::Map<String, Json>) -> Vec<String> {
    let mut bad = Vec::new();
    for (name, want) in expected {
        let got = match attribute(m, name) {
            Ok(g) => g,
            Err(e) => {
                bad.push(e);
                continue;
            }
        };
        let want = if name == "payload" {
            // Binary written as hex; compare normalised to lower case.
            match want {
                Json::String(h) => Some(Value::Str(h.to_ascii_lowercase())),
                Json::Null => None,
                other => {
                    bad.push(format!("payload attribute must be hex or null, is {other}"));
                    continue;
                }
            }
        } else {
            match want {
                Json::Null => None,
                w => Some(to_value(w)),
            }
        };
        let got = got.filter(|g| *g != Value::Null);
        if got != want {
            bad.push(format!("{name}: expected {want:?}, got {got:?}"));
        }
    }
    bad
}

fn decode(ser: Serializer, frame: &[u8]) -> Result<Message, codec::DecodeError> {
    codec::decode(ser, &Bytes::copy_from_slice(frame))
}

/// Decodes one representation, checks it, re-encodes in both serializers and checks again.
fn check_representation(
    ser: Serializer,
    frame: &[u8],
    expected: &serde_json::Map<String, Json>,
) -> Result<(), String> {
    let m = decode(ser, frame).map_err(|e| format!("decode failed: {e}"))?;
    let bad = check_attributes(&m, expected);
    if !bad.is_empty() {
        return Err(format!("after decode: {}", bad.join("; ")));
    }
    for target in Serializer::ALL {
        let out = codec::encode(target, &m);
        let m2 = codec::decode(target, &out)
            .map_err(|e| format!("re-encoded as {target:?} does not decode: {e}"))?;
        let bad = check_attributes(&m2, expected);
        if !bad.is_empty() {
            return Err(format!(
                "after re-encoding as {target:?}: {}",
                bad.join("; ")
            ));
        }
        if m2 != m {
            return Err(format!("re-encoded as {target:?}: {m2:?} != {m:?}"));
        }
        if target == Serializer::Json {
            // What we write is JSON that an independent parser reads as the same array.
            let ours: Json =
                serde_json::from_slice(&out).map_err(|e| format!("our JSON is not JSON: {e}"))?;
            if ser == Serializer::Json {
                let theirs: Json = serde_json::from_slice(frame).map_err(|e| e.to_string())?;
                if ours != theirs {
                    return Err(format!("JSON re-encoding differs: {ours} vs {theirs}"));
                }
            }
        }
    }
    Ok(())
}

/// Index of the `Arguments|list` element for messages that carry a payload.
fn args_index(message_code: u64) -> Option<usize> {
    match message_code {
        code::PUBLISH | code::EVENT | code::CALL | code::INVOCATION => Some(4),
        code::YIELD | code::RESULT | code::EVENT_RECEIVED => Some(3),
        code::ERROR => Some(5),
        _ => None,
    }
}

/// One element of a `wmsg`: JSON, except that a string in the Arguments position is the hex of
/// a transparent binary payload.
enum Elem<'a> {
    Json(&'a Json),
    Bin(Vec<u8>),
}

fn wmsg_elements(wmsg: &[Json]) -> Result<Vec<Elem<'_>>, String> {
    let ty = wmsg
        .first()
        .and_then(Json::as_u64)
        .ok_or("wmsg without a message type")?;
    let ai = args_index(ty);
    wmsg.iter()
        .enumerate()
        .map(|(i, e)| match e {
            Json::String(h) if Some(i) == ai => unhex(h).map(Elem::Bin),
            other => Ok(Elem::Json(other)),
        })
        .collect()
}

/// Serializes a wmsg as WAMP JSON with serde_json (binary: `"\u0000" + base64`).
fn wmsg_json(elems: &[Elem<'_>]) -> Vec<u8> {
    let arr: Vec<Json> = elems
        .iter()
        .map(|e| match e {
            Elem::Json(j) => (*j).clone(),
            Elem::Bin(b) => Json::String(format!("\0{}", B64.encode(b))),
        })
        .collect();
    serde_json::to_vec(&Json::Array(arr)).expect("serializable")
}

/// Serializes a wmsg as CBOR with `ciborium` (not with the codec under test).
fn wmsg_cbor(elems: &[Elem<'_>]) -> Vec<u8> {
    fn conv(j: &Json) -> ciborium::Value {
        use ciborium::Value as C;
        match j {
            Json::Null => C::Null,
            Json::Bool(b) => C::Bool(*b),
            Json::Number(n) => match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => C::Integer(u.into()),
                (None, Some(i)) => C::Integer(i.into()),
                _ => C::Float(n.as_f64().unwrap()),
            },
            Json::String(s) => C::Text(s.clone()),
            Json::Array(a) => C::Array(a.iter().map(conv).collect()),
            Json::Object(o) => C::Map(
                o.iter()
                    .map(|(k, v)| (C::Text(k.clone()), conv(v)))
                    .collect(),
            ),
        }
    }
    let arr = ciborium::Value::Array(
        elems
            .iter()
            .map(|e| match e {
                Elem::Json(j) => conv(j),
                Elem::Bin(b) => ciborium::Value::Bytes(b.clone()),
            })
            .collect(),
    );
    let mut out = Vec::new();
    ciborium::ser::into_writer(&arr, &mut out).expect("serializable");
    out
}

/// Serializes a wmsg as MessagePack with `rmp` directly (not with the codec under test).
fn wmsg_msgpack(elems: &[Elem<'_>]) -> Vec<u8> {
    fn put(out: &mut Vec<u8>, j: &Json) {
        match j {
            Json::Null => rmp::encode::write_nil(out).unwrap(),
            Json::Bool(b) => rmp::encode::write_bool(out, *b).unwrap(),
            Json::Number(n) => {
                if let Some(u) = n.as_u64() {
                    rmp::encode::write_uint(out, u).unwrap();
                } else if let Some(i) = n.as_i64() {
                    rmp::encode::write_sint(out, i).unwrap();
                } else {
                    rmp::encode::write_f64(out, n.as_f64().unwrap()).unwrap();
                }
            }
            Json::String(s) => rmp::encode::write_str(out, s).unwrap(),
            Json::Array(a) => {
                rmp::encode::write_array_len(out, a.len() as u32).unwrap();
                a.iter().for_each(|x| put(out, x));
            }
            Json::Object(o) => {
                rmp::encode::write_map_len(out, o.len() as u32).unwrap();
                for (k, v) in o {
                    rmp::encode::write_str(out, k).unwrap();
                    put(out, v);
                }
            }
        };
    }
    let mut out = Vec::new();
    rmp::encode::write_array_len(&mut out, elems.len() as u32).unwrap();
    for e in elems {
        match e {
            Elem::Json(j) => put(&mut out, j),
            Elem::Bin(b) => rmp::encode::write_bin(&mut out, b).unwrap(),
        }
    }
    out
}

/// Checks one validation sample in one serializer.
fn check_validation(
    ser: Serializer,
    frame: &[u8],
    expected_json: &Json,
    expected_error: Option<&Json>,
) -> Result<(), String> {
    let result = decode(ser, frame);
    match (expected_error, result) {
        (None, Ok(m)) => {
            // Nothing lost: the decoded message, written back as JSON, is the same array.
            let back: Json = serde_json::from_slice(&codec::encode(Serializer::Json, &m))
                .map_err(|e| e.to_string())?;
            if &back != expected_json {
                return Err(format!("decoded to {back}, expected {expected_json}"));
            }
            Ok(())
        }
        (None, Err(e)) => Err(format!("expected success, got error: {e}")),
        (Some(want), Ok(m)) => Err(format!("expected error {want}, decoded {m:?}")),
        (Some(want), Err(e)) => {
            match want.get("type").and_then(Json::as_str) {
                // Every DecodeError is answered with wamp.error.protocol_violation.
                None | Some("protocol_violation") => {}
                Some(other) => return Err(format!("unknown expected_error.type {other:?}")),
            }
            let text = e.to_string();
            match want.get("contains").and_then(Json::as_str) {
                Some(key) if !text.contains(key) => {
                    Err(format!("error {text:?} does not contain {key:?}"))
                }
                _ => Ok(()),
            }
        }
    }
}

#[derive(Default)]
struct Tally {
    representations: usize,
    validations: usize,
}

#[test]
fn official_single_message_vectors() {
    let root = suite_dir();
    let dir = root.join("singlemessage");
    assert!(
        dir.is_dir(),
        "WAMP test vectors not found at {} (vendored in tests/vectors/wamp-testsuite; \
         WAMP_TESTSUITE overrides)",
        dir.display()
    );
    let mut files = Vec::new();
    vector_files(&dir, &mut files);
    files.sort();
    assert!(
        !files.is_empty(),
        "no *.json vector files under {}",
        dir.display()
    );

    let mut tally: BTreeMap<&'static str, Tally> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut samples_seen = 0usize;

    for file in &files {
        let rel = file
            .strip_prefix(&dir)
            .unwrap_or(file)
            .display()
            .to_string();
        let doc: Json = match std::fs::read(file)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
        {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{rel}: unreadable: {e}"));
                continue;
            }
        };
        let Some(samples) = doc.get("samples").and_then(Json::as_array) else {
            failures.push(format!("{rel}: no samples array"));
            continue;
        };
        for (i, sample) in samples.iter().enumerate() {
            samples_seen += 1;
            let what = format!(
                "{rel} #{i} ({})",
                sample
                    .get("description")
                    .and_then(Json::as_str)
                    .unwrap_or("")
            );
            if let Some(wmsg) = sample.get("wmsg") {
                let Some(wmsg) = wmsg.as_array() else {
                    failures.push(format!("{what}: wmsg is not an array"));
                    continue;
                };
                let elems = match wmsg_elements(wmsg) {
                    Ok(e) => e,
                    Err(e) => {
                        failures.push(format!("{what}: {e}"));
                        continue;
                    }
                };
                let json_frame = wmsg_json(&elems);
                let expected_json: Json = serde_json::from_slice(&json_frame).unwrap();
                let frames = [
                    (Serializer::Json, "json", json_frame),
                    (Serializer::MsgPack, "msgpack", wmsg_msgpack(&elems)),
                    (Serializer::Cbor, "cbor", wmsg_cbor(&elems)),
                ];
                for (ser, name, frame) in frames {
                    if let Err(e) =
                        check_validation(ser, &frame, &expected_json, sample.get("expected_error"))
                    {
                        failures.push(format!("{what} [{name} validation]: {e}"));
                    }
                    tally.entry(name).or_default().validations += 1;
                }
                continue;
            }
            let (Some(sers), Some(expected)) = (
                sample.get("serializers").and_then(Json::as_object),
                sample.get("expected_attributes").and_then(Json::as_object),
            ) else {
                failures.push(format!("{what}: neither wmsg nor serializers+expected"));
                continue;
            };
            for (name, ser) in [
                ("json", Serializer::Json),
                ("msgpack", Serializer::MsgPack),
                ("cbor", Serializer::Cbor),
                ("ubjson", Serializer::Ubjson),
            ] {
                let reps = sers.get(name).and_then(Json::as_array);
                for (j, rep) in reps.into_iter().flatten().enumerate() {
                    // The suite's "ubjson" samples are UBJSON (py-ubjson) or its BJData dialect
                    // (autobahn-python 26.6+), told apart by their note.
                    let bjdata = ser == Serializer::Ubjson
                        && rep
                            .get("note")
                            .and_then(Json::as_str)
                            .is_some_and(|n| n.contains("BJData"));
                    let (name, ser) = if bjdata {
                        ("bjdata", Serializer::Bjdata)
                    } else {
                        (name, ser)
                    };
                    let result = representation_bytes(rep)
                        .and_then(|frame| check_representation(ser, &frame, expected));
                    if let Err(e) = result {
                        failures.push(format!("{what} [{name} #{j}]: {e}"));
                    }
                    tally.entry(name).or_default().representations += 1;
                }
            }
        }
    }

    eprintln!(
        "WAMP vectors: {} files, {samples_seen} samples under {}",
        files.len(),
        dir.display()
    );
    for (name, t) in &tally {
        eprintln!(
            "  {name}: {} serialized representations, {} validation samples checked",
            t.representations, t.validations
        );
    }
    assert!(
        failures.is_empty(),
        "{} vector checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    for name in ["ubjson", "bjdata"] {
        assert!(
            tally.get(name).is_some_and(|t| t.representations > 0),
            "no {name} representation was checked"
        );
    }
    for name in ["json", "msgpack", "cbor"] {
        let t = tally.get(name);
        assert!(
            t.is_some_and(|t| t.representations > 0),
            "no {name} representation was checked"
        );
        assert!(
            t.is_some_and(|t| t.validations > 0),
            "no {name} validation sample was checked"
        );
    }
}
