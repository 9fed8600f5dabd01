//! JSON serializer (`wamp.2.json`).
//!
//! Decoding validates UTF-8 once for the whole frame, splits the top-level array into borrowed
//! raw elements (`serde_json::value::RawValue`), parses the envelope elements and keeps the
//! payload elements as slices of the frame. Binary values follow WAMP's rule: a string whose
//! first character is `\u0000`, followed by the Base64 encoding of the bytes.

use super::error::DecodeError;
use super::message::Message;
use super::options::{FieldRef, Options};
use super::payload::Payload;
use super::value::{Dict, Value};
use super::wire::{self, ArgsElement, ElementReader, ElementWriter};
use super::Serializer;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use bytes::Bytes;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;

fn json_err(e: serde_json::Error) -> DecodeError {
    let text = e.to_string();
    if text.starts_with("recursion limit exceeded") {
        // serde_json's own recursion limit guards the stack; report it like MessagePack does
        // (`msgpack::MAX_DEPTH` is the same limit).
        DecodeError::TooDeep(super::msgpack::MAX_DEPTH)
    } else {
        DecodeError::Json(text)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        d.deserialize_any(ValueVisitor)
    }
}

struct ValueVisitor;

impl<'de> Visitor<'de> for ValueVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::UInt(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Float(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(string_value(v))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        if v.starts_with('\0') {
            Ok(string_value(&v))
        } else {
            Ok(Value::Str(v))
        }
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut l = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(x) = seq.next_element()? {
            l.push(x);
        }
        Ok(Value::List(l))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut d = Dict::new();
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            d.insert(k, v);
        }
        Ok(Value::Dict(d))
    }
}

/// A JSON string as a value: `"\0<base64>"` is binary, anything else a string. A `\0` string
/// that is not valid Base64 stays a string (nothing is lost).
fn string_value(s: &str) -> Value {
    if let Some(b64) = s.strip_prefix('\0') {
        if let Ok(bytes) = B64.decode(b64) {
            return Value::Bin(Bytes::from(bytes));
        }
    }
    Value::Str(s.to_owned())
}

/// Decodes one standalone JSON value (e.g. an encoded payload).
pub fn decode_value(bytes: &[u8]) -> Result<Value, DecodeError> {
    let s = std::str::from_utf8(bytes).map_err(|_| DecodeError::Utf8("JSON text"))?;
    serde_json::from_str(s).map_err(json_err)
}

/// Checks that an encoded payload element converts to values: strings are valid (no lone
/// surrogate escapes), numbers are in range and nesting is within serde_json's recursion limit.
/// Splitting the frame into raw elements checks none of that, and the router may have to convert
/// the payload for a MessagePack peer later, when there is nobody left to report the error to.
/// Allocates nothing for payloads without escaped strings.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Checked, D::Error> {
        d.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

/// The most elements any WAMP message has is 7 (ERROR with a payload); one more slot lets an
/// over-long message be reported with its real length without a heap allocation.
const MAX_ELEMENTS: usize = 8;

/// The top-level array of a frame, split into raw elements (borrowed from the frame).
struct Elements<'a> {
    raw: [Option<&'a RawValue>; MAX_ELEMENTS],
    /// The number of elements in the array (may exceed `MAX_ELEMENTS`; the rest are skipped).
    len: usize,
}

impl<'de> Deserialize<'de> for Elements<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Elements<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON array")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Elements<'de>, A::Error> {
                let mut e = Elements {
                    raw: [None; MAX_ELEMENTS],
                    len: 0,
                };
                while let Some(r) = seq.next_element::<&'de RawValue>()? {
                    if let Some(slot) = e.raw.get_mut(e.len) {
                        *slot = Some(r);
                    }
                    e.len += 1;
                }
                Ok(e)
            }
        }
        d.deserialize_seq(V)
    }
}

struct Reader<'a> {
    frame: &'a Bytes,
    elements: Elements<'a>,
    next: usize,
}

impl<'a> Reader<'a> {
    fn next_raw(&mut self) -> Result<&'a RawValue, DecodeError> {
        let r = self
            .elements
            .raw
            .get(self.next)
            .copied()
            .flatten()
            .ok_or(DecodeError::NotAnArray)?;
        self.next += 1;
        Ok(r)
    }

    /// A payload element as a zero-copy slice of the frame, once checked to be convertible.
    fn checked_slice(&self, raw: &RawValue) -> Result<Bytes, DecodeError> {
        serde_json::from_str::<Checked>(raw.get()).map_err(json_err)?;
        Ok(self.slice(raw))
    }

    fn value(&mut self) -> Result<Value, DecodeError> {
        let raw = self.next_raw()?;
        serde_json::from_str(raw.get()).map_err(json_err)
    }

    /// The raw element as a zero-copy slice of the frame.
    fn slice(&self, raw: &RawValue) -> Bytes {
        self.frame.slice_ref(raw.get().as_bytes())
    }
}

impl ElementReader for Reader<'_> {
    fn len(&self) -> usize {
        self.elements.len
    }

    fn read_int(&mut self, msg: &'static str, field: &'static str) -> Result<u64, DecodeError> {
        let raw = self.next_raw()?.get();
        // Fast path: a plain non-negative integer.
        if !raw.is_empty() && raw.len() <= 19 && raw.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(v) = raw.parse::<u64>() {
                return Ok(v);
            }
        }
        let v: Value = serde_json::from_str(raw).map_err(json_err)?;
        v.as_u64()
            .ok_or_else(|| DecodeError::wrong_type(msg, field, "integer", wire::int_type_name(&v)))
    }

    fn read_str(
        &mut self,
        msg: &'static str,
        field: &'static str,
    ) -> Result<Cow<'_, str>, DecodeError> {
        let raw = self.next_raw()?.get();
        if raw.starts_with('"') {
            // The raw element is a syntactically valid string (control characters rejected):
            // without escapes its text is the value itself.
            if !raw.contains('\\') {
                return Ok(Cow::Borrowed(&raw[1..raw.len() - 1]));
            }
            serde_json::from_str::<String>(raw)
                .map(Cow::Owned)
                .map_err(json_err)
        } else {
            let v: Value = serde_json::from_str(raw).map_err(json_err)?;
            Err(DecodeError::wrong_type(msg, field, "string", v.type_name()))
        }
    }

    fn read_dict(&mut self, msg: &'static str, field: &'static str) -> Result<Dict, DecodeError> {
        match self.value()? {
            Value::Dict(d) => Ok(d),
            v => Err(DecodeError::wrong_type(msg, field, "dict", v.type_name())),
        }
    }

    fn read_args(&mut self, msg: &'static str) -> Result<ArgsElement, DecodeError> {
        let raw = self.next_raw()?;
        if raw.get().starts_with('[') {
            return Ok(ArgsElement::List(self.checked_slice(raw)?));
        }
        match serde_json::from_str::<Value>(raw.get()).map_err(json_err)? {
            Value::Bin(b) => Ok(ArgsElement::Transparent(b)),
            v => Err(DecodeError::wrong_type(
                msg,
                "Arguments",
                "list",
                v.type_name(),
            )),
        }
    }

    fn read_kwargs(&mut self, msg: &'static str) -> Result<Bytes, DecodeError> {
        let raw = self.next_raw()?;
        if raw.get().starts_with('{') {
            return self.checked_slice(raw);
        }
        let v: Value = serde_json::from_str(raw.get()).map_err(json_err)?;
        Err(DecodeError::wrong_type(
            msg,
            "ArgumentsKw",
            "dict",
            v.type_name(),
        ))
    }

    fn serializer(&self) -> Serializer {
        Serializer::Json
    }
}

/// Decodes one JSON frame.
pub fn decode(frame: &Bytes) -> Result<Message, DecodeError> {
    let text = std::str::from_utf8(frame).map_err(|_| DecodeError::Utf8("JSON text"))?;
    let trimmed = text.trim_start();
    if !trimmed.starts_with('[') {
        // Distinguish "valid JSON but not an array" from garbage.
        return match serde_json::from_str::<&RawValue>(text) {
            Ok(_) => Err(DecodeError::NotAnArray),
            Err(e) => Err(json_err(e)),
        };
    }
    let elements: Elements<'_> = serde_json::from_str(text).map_err(json_err)?;
    let mut r = Reader {
        frame,
        elements,
        next: 0,
    };
    wire::decode_message(&mut r)
}

/// Appends the JSON encoding of `m` to `out`.
pub fn encode_into(m: &Message, out: &mut Vec<u8>) {
    let mut w = Writer { out, first: true };
    wire::encode_message(m, &mut w);
}

fn write_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Appends a JSON string literal.
fn write_str(out: &mut Vec<u8>, s: &str) {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // serde_json's escaper; writing to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// Appends the JSON encoding of one value.
pub fn encode_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(i) => out.extend_from_slice(itoa::Buffer::new().format(*i).as_bytes()),
        Value::UInt(u) => write_u64(out, *u),
        Value::Float(f) => {
            if f.is_finite() {
                let _ = serde_json::to_writer(&mut *out, f);
            } else {
                out.extend_from_slice(b"null");
            }
        }
        Value::Str(s) => write_str(out, s),
        Value::Bin(b) => {
            out.extend_from_slice(b"\"\\u0000");
            let start = out.len();
            out.resize(start + base64::encoded_len(b.len(), true).unwrap_or(0), 0);
            let n = B64.encode_slice(b, &mut out[start..]).unwrap_or(0);
            out.truncate(start + n);
            out.push(b'"');
        }
        Value::List(l) => {
            out.push(b'[');
            for (i, x) in l.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                encode_value(out, x);
            }
            out.push(b']');
        }
        Value::Dict(d) => encode_dict(out, d),
    }
}

fn encode_dict(out: &mut Vec<u8>, d: &Dict) {
    out.push(b'{');
    for (i, (k, v)) in d.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
        encode_value(out, v);
    }
    out.push(b'}');
}

fn encode_field(out: &mut Vec<u8>, f: FieldRef<'_>) {
    match f {
        FieldRef::Bool(true) => out.extend_from_slice(b"true"),
        FieldRef::Bool(false) => out.extend_from_slice(b"false"),
        FieldRef::UInt(u) => write_u64(out, u),
        FieldRef::Str(s) => write_str(out, s),
        FieldRef::Ids(ids) => {
            out.push(b'[');
            for (i, x) in ids.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_u64(out, *x);
            }
            out.push(b']');
        }
        FieldRef::Strs(ss) => {
            out.push(b'[');
            for (i, x) in ss.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, x);
            }
            out.push(b']');
        }
        FieldRef::Value(v) => encode_value(out, v),
    }
}

struct Writer<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
}

impl Writer<'_> {
    fn sep(&mut self) {
        if self.first {
            self.first = false;
        } else {
            self.out.push(b',');
        }
    }
}

impl ElementWriter for Writer<'_> {
    fn begin(&mut self, _len: usize) {
        self.out.push(b'[');
        self.first = true;
    }

    fn int(&mut self, v: u64) {
        self.sep();
        write_u64(self.out, v);
    }

    fn str(&mut self, s: &str) {
        self.sep();
        write_str(self.out, s);
    }

    fn options<O: Options>(&mut self, o: &O) {
        self.sep();
        self.out.push(b'{');
        let mut first = true;
        let out = &mut *self.out;
        o.for_each_known(&mut |k, v| {
            if !first {
                out.push(b',');
            }
            first = false;
            write_str(out, k);
            out.push(b':');
            encode_field(out, v);
        });
        for (k, v) in o.extra() {
            if !first {
                self.out.push(b',');
            }
            first = false;
            write_str(self.out, k);
            self.out.push(b':');
            encode_value(self.out, v);
        }
        self.out.push(b'}');
    }

    fn payload(&mut self, p: &Payload) {
        match p {
            Payload::Empty => {}
            Payload::Encoded(e) if e.format == Serializer::Json => {
                match &e.args {
                    Some(a) => {
                        self.sep();
                        self.out.extend_from_slice(a);
                    }
                    None if e.kwargs.is_some() => {
                        self.sep();
                        self.out.extend_from_slice(b"[]");
                    }
                    None => {}
                }
                if let Some(k) = &e.kwargs {
                    self.sep();
                    self.out.extend_from_slice(k);
                }
            }
            Payload::Encoded(_) => match p.to_values() {
                Ok(v) => self.payload(&v),
                Err(_) => {
                    // Unreachable for payloads produced by `decode` (validated there).
                    debug_assert!(false, "undecodable encoded payload");
                    self.sep();
                    self.out.extend_from_slice(b"[]");
                    if p.element_count() == 2 {
                        self.sep();
                        self.out.extend_from_slice(b"{}");
                    }
                }
            },
            Payload::Values { args, kwargs } => {
                match args {
                    Some(a) => {
                        self.sep();
                        encode_value_list(self.out, a);
                    }
                    None if kwargs.is_some() => {
                        self.sep();
                        self.out.extend_from_slice(b"[]");
                    }
                    None => {}
                }
                if let Some(k) = kwargs {
                    self.sep();
                    encode_dict(self.out, k);
                }
            }
            Payload::Transparent(b) => {
                self.sep();
                encode_value(self.out, &Value::Bin(b.clone()));
            }
        }
    }

    fn end(&mut self) {
        self.out.push(b']');
    }
}

fn encode_value_list(out: &mut Vec<u8>, l: &[Value]) {
    out.push(b'[');
    for (i, x) in l.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        encode_value(out, x);
    }
    out.push(b']');
}
