//! CBOR serializer (`wamp.2.cbor`, RFC 8949).
//!
//! Built like the MessagePack one: a hand-written cursor over the frame, one pass, no
//! intermediate tree for the message envelope, binaries and the payload sliced out of the frame
//! without copying. Nesting is limited to [`MAX_DEPTH`] levels (the same as MessagePack and
//! JSON, so a payload accepted from any peer can be forwarded to any other).
//!
//! What is accepted: every integer width (as WAMP integers: a negative one below `-2^64` does
//! not exist in CBOR's major type 1, a bignum tag is refused), half/single/double floats,
//! definite and indefinite-length arrays and maps, definite-length text and byte strings,
//! `false`/`true`/`null` (and `undefined`, read as null). Tags are read through (the tagged item
//! is the value) except the bignum tags 2 and 3, which WAMP integers cannot hold. Dictionary
//! keys must be text strings. Encoding always uses the shortest integer form, definite lengths
//! and 64-bit floats.

use super::binary;
use super::error::DecodeError;
use super::message::Message;
use super::value::{Dict, Value};
use super::wire::{self, ArgsElement, ElementReader};
use super::Serializer;
use bytes::Bytes;
use std::borrow::Cow;

/// Deepest nesting of arrays and maps within one message element; see
/// [`super::msgpack::MAX_DEPTH`].
pub const MAX_DEPTH: usize = super::msgpack::MAX_DEPTH;

fn err(msg: &str) -> DecodeError {
    DecodeError::Cbor(msg.to_owned())
}

/// A read position in a CBOR buffer.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The owning buffer, when there is one, so byte strings can be sliced instead of copied.
    owner: Option<&'a Bytes>,
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Result<u8, DecodeError> {
        super::binary::next_byte(self.buf, &mut self.pos)
            .ok_or_else(|| err("unexpected end of data"))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        super::binary::next_slice(self.buf, &mut self.pos, n)
            .ok_or_else(|| err("unexpected end of data"))
    }

    fn be(&mut self, n: usize) -> Result<u64, DecodeError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn bytes(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        let start = self.pos;
        let s = self.take(n)?;
        Ok(match self.owner {
            Some(o) => o.slice(start..start + n),
            None => Bytes::copy_from_slice(s),
        })
    }

    fn str(&mut self, n: usize) -> Result<&'a str, DecodeError> {
        let s = self.take(n)?;
        std::str::from_utf8(s).map_err(|_| DecodeError::Utf8("CBOR text string"))
    }

    /// A length that must fit in what is left of the buffer (every element takes a byte).
    fn len(&self, n: u64) -> Result<usize, DecodeError> {
        usize::try_from(n)
            .ok()
            .filter(|n| *n <= self.buf.len() - self.pos)
            .ok_or_else(|| err("length beyond the end of data"))
    }
}

/// What an initial byte (and its argument) announces.
enum Head {
    Null,
    Bool(bool),
    UInt(u64),
    /// `-1 - n`.
    NegInt(u64),
    Float(f64),
    Text(usize),
    Bin(usize),
    /// `None`: indefinite length (items until a break).
    Array(Option<usize>),
    Map(Option<usize>),
    /// The end of an indefinite-length array or map.
    Break,
}

/// Reads the argument of an initial byte with additional information `ai`.
fn argument(c: &mut Cursor<'_>, ai: u8) -> Result<Option<u64>, DecodeError> {
    Ok(Some(match ai {
        0..=23 => u64::from(ai),
        24 => c.be(1)?,
        25 => c.be(2)?,
        26 => c.be(4)?,
        27 => c.be(8)?,
        31 => return Ok(None),
        _ => return Err(err("reserved additional information")),
    }))
}

fn head(c: &mut Cursor<'_>) -> Result<Head, DecodeError> {
    // Tags wrap the item they tag: loop past them (bounded by the buffer: each takes a byte).
    loop {
        let ib = c.byte()?;
        let (major, ai) = (ib >> 5, ib & 0x1f);
        let arg = argument(c, ai)?;
        let definite = |what: &str| arg.ok_or_else(|| err(what));
        return Ok(match major {
            0 => Head::UInt(definite("indefinite integer")?),
            1 => Head::NegInt(definite("indefinite integer")?),
            2 => Head::Bin(c.len(definite(
                "indefinite-length byte strings are not supported",
            )?)?),
            3 => Head::Text(c.len(definite(
                "indefinite-length text strings are not supported",
            )?)?),
            4 => Head::Array(arg.map(|n| c.len(n)).transpose()?),
            5 => Head::Map(arg.map(|n| c.len(n)).transpose()?),
            6 => match definite("indefinite tag")? {
                2 | 3 => return Err(err("bignums are not supported")),
                _ => continue,
            },
            _ => match ai {
                20 => Head::Bool(false),
                21 => Head::Bool(true),
                22 | 23 => Head::Null,
                25 => Head::Float(f16_to_f64(definite("half float")? as u16)),
                26 => Head::Float(f64::from(f32::from_bits(definite("float")? as u32))),
                27 => Head::Float(f64::from_bits(definite("double")?)),
                31 => Head::Break,
                _ => return Err(err("unsupported simple value")),
            },
        });
    }
}

/// An IEEE 754 half-precision float as f64.
pub(super) fn f16_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let frac = f64::from(h & 0x3ff);
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

fn head_type_name(h: &Head) -> &'static str {
    match h {
        Head::Null => "null",
        Head::Bool(_) => "bool",
        Head::UInt(_) => "integer",
        Head::NegInt(_) => "negative integer",
        Head::Float(_) => "float",
        Head::Text(_) => "string",
        Head::Bin(_) => "binary",
        Head::Array(_) => "list",
        Head::Map(_) => "dict",
        Head::Break => "break",
    }
}

fn negint(n: u64) -> Result<i64, DecodeError> {
    // -1 - n must fit an i64.
    i64::try_from(n)
        .map(|n| -1 - n)
        .map_err(|_| err("negative integer below -2^63"))
}

fn read_value(c: &mut Cursor<'_>, depth: usize) -> Result<Value, DecodeError> {
    let h = head(c)?;
    value_from_head(c, h, depth)
}

/// Calls `item` for each element of an array or map of `n` items (or, for `None`, until the
/// break that ends an indefinite-length one).
fn items(
    c: &mut Cursor<'_>,
    n: Option<usize>,
    mut item: impl FnMut(&mut Cursor<'_>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    match n {
        Some(n) => (0..n).try_for_each(|_| item(c)),
        None => loop {
            if c.peek() == Some(0xff) {
                c.pos += 1;
                return Ok(());
            }
            if c.peek().is_none() {
                return Err(err("unexpected end of data"));
            }
            item(c)?;
        },
    }
}

fn value_from_head(c: &mut Cursor<'_>, h: Head, depth: usize) -> Result<Value, DecodeError> {
    Ok(match h {
        Head::Null => Value::Null,
        Head::Bool(b) => Value::Bool(b),
        Head::UInt(u) => Value::UInt(u),
        Head::NegInt(n) => Value::Int(negint(n)?),
        Head::Float(f) => Value::Float(f),
        Head::Text(n) => Value::Str(c.str(n)?.to_owned()),
        Head::Bin(n) => Value::Bin(c.bytes(n)?),
        Head::Array(n) => {
            if depth >= MAX_DEPTH {
                return Err(DecodeError::TooDeep(MAX_DEPTH));
            }
            let mut l = Vec::with_capacity(n.unwrap_or(0));
            items(c, n, |c| {
                l.push(read_value(c, depth + 1)?);
                Ok(())
            })?;
            Value::List(l)
        }
        Head::Map(n) => {
            if depth >= MAX_DEPTH {
                return Err(DecodeError::TooDeep(MAX_DEPTH));
            }
            Value::Dict(read_map_body(c, n, depth + 1)?)
        }
        Head::Break => return Err(err("unexpected break")),
    })
}

fn read_key(c: &mut Cursor<'_>) -> Result<String, DecodeError> {
    match head(c)? {
        Head::Text(n) => Ok(c.str(n)?.to_owned()),
        _ => Err(err("dict keys must be text strings")),
    }
}

fn read_map_body(c: &mut Cursor<'_>, n: Option<usize>, depth: usize) -> Result<Dict, DecodeError> {
    let mut d = Dict::new();
    items(c, n, |c| {
        let k = read_key(c)?;
        let v = read_value(c, depth)?;
        d.insert(k, v);
        Ok(())
    })?;
    Ok(d)
}

/// Skips one value, validating it (UTF-8, text keys, depth, integer range), without building it.
fn skip_value(c: &mut Cursor<'_>, depth: usize) -> Result<(), DecodeError> {
    match head(c)? {
        Head::Null | Head::Bool(_) | Head::UInt(_) | Head::Float(_) => Ok(()),
        Head::NegInt(n) => negint(n).map(|_| ()),
        Head::Text(n) => c.str(n).map(|_| ()),
        Head::Bin(n) => c.take(n).map(|_| ()),
        Head::Break => Err(err("unexpected break")),
        Head::Array(n) => {
            if depth >= MAX_DEPTH {
                return Err(DecodeError::TooDeep(MAX_DEPTH));
            }
            items(c, n, |c| skip_value(c, depth + 1))
        }
        Head::Map(n) => {
            if depth >= MAX_DEPTH {
                return Err(DecodeError::TooDeep(MAX_DEPTH));
            }
            items(c, n, |c| {
                match head(c)? {
                    Head::Text(len) => c.str(len).map(|_| ())?,
                    _ => return Err(err("dict keys must be text strings")),
                }
                skip_value(c, depth + 1)
            })
        }
    }
}

/// Decodes one standalone CBOR value (e.g. an encoded payload).
pub fn decode_value(bytes: &[u8]) -> Result<Value, DecodeError> {
    let mut c = Cursor {
        buf: bytes,
        pos: 0,
        owner: None,
    };
    let v = read_value(&mut c, 0)?;
    if c.pos != bytes.len() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(v)
}

struct Reader<'a> {
    c: Cursor<'a>,
    frame: &'a Bytes,
    len: usize,
}

impl ElementReader for Reader<'_> {
    fn len(&self) -> usize {
        self.len
    }

    fn read_int(&mut self, msg: &'static str, field: &'static str) -> Result<u64, DecodeError> {
        match head(&mut self.c)? {
            Head::UInt(u) => Ok(u),
            Head::Float(f) => Value::Float(f)
                .as_u64()
                .ok_or_else(|| DecodeError::wrong_type(msg, field, "integer", "float")),
            h => Err(DecodeError::wrong_type(
                msg,
                field,
                "integer",
                head_type_name(&h),
            )),
        }
    }

    fn read_str(
        &mut self,
        msg: &'static str,
        field: &'static str,
    ) -> Result<Cow<'_, str>, DecodeError> {
        match head(&mut self.c)? {
            Head::Text(n) => Ok(Cow::Borrowed(self.c.str(n)?)),
            h => Err(DecodeError::wrong_type(
                msg,
                field,
                "string",
                head_type_name(&h),
            )),
        }
    }

    fn read_dict(&mut self, msg: &'static str, field: &'static str) -> Result<Dict, DecodeError> {
        match head(&mut self.c)? {
            Head::Map(n) => read_map_body(&mut self.c, n, 1),
            h => Err(DecodeError::wrong_type(
                msg,
                field,
                "dict",
                head_type_name(&h),
            )),
        }
    }

    fn read_args(&mut self, msg: &'static str) -> Result<ArgsElement, DecodeError> {
        let start = self.c.pos;
        match self.c.peek().map(|b| b >> 5) {
            Some(4) => {
                skip_value(&mut self.c, 0)?;
                Ok(ArgsElement::List(self.frame.slice(start..self.c.pos)))
            }
            Some(2) => match head(&mut self.c)? {
                Head::Bin(n) => Ok(ArgsElement::Transparent(self.c.bytes(n)?)),
                _ => Err(err("binary expected")),
            },
            _ => {
                let h = head(&mut self.c)?;
                Err(DecodeError::wrong_type(
                    msg,
                    "Arguments",
                    "list",
                    head_type_name(&h),
                ))
            }
        }
    }

    fn read_kwargs(&mut self, msg: &'static str) -> Result<Bytes, DecodeError> {
        let start = self.c.pos;
        match self.c.peek().map(|b| b >> 5) {
            Some(5) => {
                skip_value(&mut self.c, 0)?;
                Ok(self.frame.slice(start..self.c.pos))
            }
            _ => {
                let h = head(&mut self.c)?;
                Err(DecodeError::wrong_type(
                    msg,
                    "ArgumentsKw",
                    "dict",
                    head_type_name(&h),
                ))
            }
        }
    }

    fn serializer(&self) -> Serializer {
        Serializer::Cbor
    }
}

/// Decodes one CBOR frame.
pub fn decode(frame: &Bytes) -> Result<Message, DecodeError> {
    let mut c = Cursor {
        buf: frame,
        pos: 0,
        owner: Some(frame),
    };
    let len = match head(&mut c)? {
        Head::Array(Some(n)) => n,
        // An indefinite-length top-level array: count its items first (validating them).
        Head::Array(None) => {
            let start = c.pos;
            let mut n = 0;
            items(&mut c, None, |c| {
                n += 1;
                skip_value(c, 1)
            })?;
            c.pos = start;
            n
        }
        _ => return Err(DecodeError::NotAnArray),
    };
    let indefinite = frame.first().is_some_and(|b| *b == 0x9f);
    let mut r = Reader { c, frame, len };
    let m = wire::decode_message(&mut r)?;
    if indefinite && r.c.peek() == Some(0xff) {
        r.c.pos += 1;
    }
    if r.c.pos != frame.len() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(m)
}

/// Appends the CBOR encoding of `m` to `out`.
pub fn encode_into(m: &Message, out: &mut Vec<u8>) {
    let mut w = binary::Writer::<Cbor> {
        out,
        format: std::marker::PhantomData,
    };
    wire::encode_message(m, &mut w);
}

/// Appends the CBOR encoding of one value.
pub fn encode_value(out: &mut Vec<u8>, v: &Value) {
    binary::encode_value::<Cbor>(out, v);
}

/// An initial byte of major type `major` with argument `v`, in its shortest form.
fn w_head(out: &mut Vec<u8>, major: u8, v: u64) {
    let m = major << 5;
    if v < 24 {
        out.push(m | v as u8);
    } else if v <= u64::from(u8::MAX) {
        out.extend_from_slice(&[m | 24, v as u8]);
    } else if v <= u64::from(u16::MAX) {
        out.push(m | 25);
        out.extend_from_slice(&(v as u16).to_be_bytes());
    } else if v <= u64::from(u32::MAX) {
        out.push(m | 26);
        out.extend_from_slice(&(v as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&v.to_be_bytes());
    }
}

/// CBOR's primitive writers: shortest integer forms, definite lengths, 64-bit floats.
struct Cbor;

impl binary::Primitives for Cbor {
    const FORMAT: Serializer = Serializer::Cbor;
    fn null(out: &mut Vec<u8>) {
        out.push(0xf6);
    }
    fn bool(out: &mut Vec<u8>, b: bool) {
        out.push(if b { 0xf5 } else { 0xf4 });
    }
    fn uint(out: &mut Vec<u8>, v: u64) {
        w_head(out, 0, v);
    }
    fn neg(out: &mut Vec<u8>, v: i64) {
        // A negative i64 v is -1 - n with n = -1 - v = !v.
        w_head(out, 1, !v as u64);
    }
    fn float(out: &mut Vec<u8>, f: f64) {
        out.push(0xfb);
        out.extend_from_slice(&f.to_bits().to_be_bytes());
    }
    fn str(out: &mut Vec<u8>, s: &str) {
        w_head(out, 3, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
    fn bin(out: &mut Vec<u8>, b: &[u8]) {
        w_head(out, 2, b.len() as u64);
        out.extend_from_slice(b);
    }
    fn array_len(out: &mut Vec<u8>, n: usize) {
        w_head(out, 4, n as u64);
    }
    fn map_len(out: &mut Vec<u8>, n: usize) {
        w_head(out, 5, n as u64);
    }
}

#[cfg(test)]
mod tests;
