//! MessagePack serializer (`wamp.2.msgpack`).
//!
//! Decoding is a hand-written cursor over the frame: one pass, no intermediate tree for the
//! message envelope, binaries and the payload sliced out of the frame without copying. Encoding
//! uses `rmp`'s primitive writers. Nesting is limited to [`MAX_DEPTH`] levels so a hostile frame
//! cannot exhaust the stack.

use super::binary;
use super::error::DecodeError;
use super::message::Message;
use super::value::{Dict, Value};
use super::wire::{self, ArgsElement, ElementReader};
use super::Serializer;
use bytes::Bytes;
use std::borrow::Cow;

/// Deepest nesting of lists and dicts accepted within one message element (an options dict,
/// the arguments list, …), counting the element itself.
///
/// It is the limit serde_json enforces for JSON (its recursion limit of 128 admits 127 levels),
/// so a payload accepted from a peer of either serializer can be forwarded to a peer of the
/// other and decoded there.
pub const MAX_DEPTH: usize = 127;

fn err(msg: &str) -> DecodeError {
    DecodeError::MsgPack(msg.to_owned())
}

/// A read position in a MessagePack buffer.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The owning buffer, when there is one, so binaries can be sliced instead of copied.
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

    /// A big-endian unsigned integer of `n` bytes (1, 2, 4 or 8).
    #[inline]
    fn be(&mut self, n: usize) -> Result<u64, DecodeError> {
        let s = self.take(n)?;
        Ok(match *s {
            [a] => u64::from(a),
            [a, b] => u64::from(u16::from_be_bytes([a, b])),
            [a, b, c, d] => u64::from(u32::from_be_bytes([a, b, c, d])),
            [a, b, c, d, e, f, g, h] => u64::from_be_bytes([a, b, c, d, e, f, g, h]),
            _ => s.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b)),
        })
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
        std::str::from_utf8(s).map_err(|_| DecodeError::Utf8("MessagePack string"))
    }
}

/// What a marker byte announces.
enum Head {
    Nil,
    Bool(bool),
    UInt(u64),
    Int(i64),
    Float(f64),
    Str(usize),
    Bin(usize),
    Array(usize),
    Map(usize),
    Ext,
}

fn head(c: &mut Cursor<'_>) -> Result<Head, DecodeError> {
    let m = c.byte()?;
    Ok(match m {
        0x00..=0x7f => Head::UInt(u64::from(m)),
        0x80..=0x8f => Head::Map(usize::from(m & 0x0f)),
        0x90..=0x9f => Head::Array(usize::from(m & 0x0f)),
        0xa0..=0xbf => Head::Str(usize::from(m & 0x1f)),
        0xc0 => Head::Nil,
        0xc1 => return Err(err("reserved marker 0xc1")),
        0xc2 => Head::Bool(false),
        0xc3 => Head::Bool(true),
        0xc4 => Head::Bin(c.be(1)? as usize),
        0xc5 => Head::Bin(c.be(2)? as usize),
        0xc6 => Head::Bin(c.be(4)? as usize),
        0xc7..=0xc9 => Head::Ext,
        0xca => Head::Float(f64::from(f32::from_bits(c.be(4)? as u32))),
        0xcb => Head::Float(f64::from_bits(c.be(8)?)),
        0xcc => Head::UInt(c.be(1)?),
        0xcd => Head::UInt(c.be(2)?),
        0xce => Head::UInt(c.be(4)?),
        0xcf => Head::UInt(c.be(8)?),
        0xd0 => Head::Int(i64::from(c.be(1)? as u8 as i8)),
        0xd1 => Head::Int(i64::from(c.be(2)? as u16 as i16)),
        0xd2 => Head::Int(i64::from(c.be(4)? as u32 as i32)),
        0xd3 => Head::Int(c.be(8)? as i64),
        0xd4..=0xd8 => Head::Ext,
        0xd9 => Head::Str(c.be(1)? as usize),
        0xda => Head::Str(c.be(2)? as usize),
        0xdb => Head::Str(c.be(4)? as usize),
        0xdc => Head::Array(c.be(2)? as usize),
        0xdd => Head::Array(c.be(4)? as usize),
        0xde => Head::Map(c.be(2)? as usize),
        0xdf => Head::Map(c.be(4)? as usize),
        0xe0..=0xff => Head::Int(i64::from(m as i8)),
    })
}

fn head_type_name(h: &Head) -> &'static str {
    match h {
        Head::Nil => "null",
        Head::Bool(_) => "bool",
        Head::UInt(_) | Head::Int(_) => "integer",
        Head::Float(_) => "float",
        Head::Str(_) => "string",
        Head::Bin(_) => "binary",
        Head::Array(_) => "list",
        Head::Map(_) => "dict",
        Head::Ext => "extension",
    }
}

fn read_value(c: &mut Cursor<'_>, depth: usize) -> Result<Value, DecodeError> {
    let h = head(c)?;
    value_from_head(c, h, depth)
}

fn value_from_head(c: &mut Cursor<'_>, h: Head, depth: usize) -> Result<Value, DecodeError> {
    Ok(match h {
        Head::Nil => Value::Null,
        Head::Bool(b) => Value::Bool(b),
        Head::UInt(u) => Value::UInt(u),
        Head::Int(i) => Value::int(i),
        Head::Float(f) => Value::Float(f),
        Head::Str(n) => Value::Str(c.str(n)?.to_owned()),
        Head::Bin(n) => Value::Bin(c.bytes(n)?),
        Head::Array(n) => {
            if depth >= MAX_DEPTH {
                return Err(DecodeError::TooDeep(MAX_DEPTH));
            }
            // Every element takes at least one byte: never trust a length beyond the buffer.
            let mut l = Vec::with_capacity(n.min(c.buf.len() - c.pos));
            for _ in 0..n {
                l.push(read_value(c, depth + 1)?);
            }
            Value::List(l)
        }
        Head::Map(n) => {
            if depth >= MAX_DEPTH {
                return Err(DecodeError::TooDeep(MAX_DEPTH));
            }
            Value::Dict(read_map_body(c, n, depth + 1)?)
        }
        Head::Ext => return Err(err("extension types are not supported")),
    })
}

fn read_map_body(c: &mut Cursor<'_>, n: usize, depth: usize) -> Result<Dict, DecodeError> {
    let mut d = Dict::new();
    for _ in 0..n {
        let k = match head(c)? {
            Head::Str(len) => c.str(len)?.to_owned(),
            _ => return Err(err("dict keys must be strings")),
        };
        let v = read_value(c, depth)?;
        d.insert(k, v);
    }
    Ok(d)
}

/// Skips one value whose marker alone gives its length — nil, booleans, numbers, 8-bit-length
/// binaries: most elements of a payload — when it is all there. `false` leaves the cursor for
/// [`skip_value`] (which also reports a value cut short).
#[inline]
fn skip_fixed(c: &mut Cursor<'_>) -> bool {
    let width = match c.buf.get(c.pos) {
        Some(0x00..=0x7f | 0xc0 | 0xc2 | 0xc3 | 0xe0..=0xff) => 1,
        Some(0xcc | 0xd0) => 2,
        Some(0xcd | 0xd1) => 3,
        Some(0xca | 0xce | 0xd2) => 5,
        Some(0xcb | 0xcf | 0xd3) => 9,
        Some(0xc4) => match c.buf.get(c.pos + 1) {
            Some(n) => 2 + usize::from(*n),
            None => return false,
        },
        _ => return false,
    };
    if c.buf.len() - c.pos < width {
        return false;
    }
    c.pos += width;
    true
}

/// Skips one value, validating it (UTF-8 of strings, string keys, depth), without building it.
fn skip_value(c: &mut Cursor<'_>, depth: usize) -> Result<(), DecodeError> {
    if skip_fixed(c) {
        return Ok(());
    }
    match head(c)? {
        Head::Nil | Head::Bool(_) | Head::UInt(_) | Head::Int(_) | Head::Float(_) => Ok(()),
        Head::Str(n) => c.str(n).map(|_| ()),
        Head::Bin(n) => c.take(n).map(|_| ()),
        Head::Ext => Err(err("extension types are not supported")),
        Head::Array(n) => {
            if depth >= MAX_DEPTH {
                return Err(DecodeError::TooDeep(MAX_DEPTH));
            }
            for _ in 0..n {
                if !skip_fixed(c) {
                    skip_value(c, depth + 1)?;
                }
            }
            Ok(())
        }
        Head::Map(n) => {
            if depth >= MAX_DEPTH {
                return Err(DecodeError::TooDeep(MAX_DEPTH));
            }
            for _ in 0..n {
                match head(c)? {
                    Head::Str(len) => {
                        c.str(len)?;
                    }
                    _ => return Err(err("dict keys must be strings")),
                }
                skip_value(c, depth + 1)?;
            }
            Ok(())
        }
    }
}

/// Decodes one standalone MessagePack value (e.g. an encoded payload).
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
        // Fast path: a positive fixint (message types, small IDs).
        if let Some(b @ 0x00..=0x7f) = self.c.peek() {
            self.c.pos += 1;
            return Ok(u64::from(b));
        }
        match head(&mut self.c)? {
            Head::UInt(u) => Ok(u),
            // Encoders may write a non-negative value with a signed marker (int8..int64).
            Head::Int(i) if i >= 0 => Ok(i as u64),
            Head::Int(_) => Err(DecodeError::wrong_type(
                msg,
                field,
                "integer",
                "negative integer",
            )),
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
            Head::Str(n) => Ok(Cow::Borrowed(self.c.str(n)?)),
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
        match self.c.peek() {
            Some(0x90..=0x9f | 0xdc | 0xdd) => {
                skip_value(&mut self.c, 0)?;
                Ok(ArgsElement::List(self.frame.slice(start..self.c.pos)))
            }
            Some(0xc4..=0xc6) => match head(&mut self.c)? {
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
        match self.c.peek() {
            Some(0x80..=0x8f | 0xde | 0xdf) => {
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
        Serializer::MsgPack
    }
}

/// Decodes one MessagePack frame.
#[inline]
pub fn decode(frame: &Bytes) -> Result<Message, DecodeError> {
    let mut c = Cursor {
        buf: frame,
        pos: 0,
        owner: Some(frame),
    };
    let len = match head(&mut c)? {
        Head::Array(n) => n,
        _ => return Err(DecodeError::NotAnArray),
    };
    let mut r = Reader { c, frame, len };
    let m = wire::decode_message(&mut r)?;
    if r.c.pos != frame.len() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(m)
}

/// Appends the MessagePack encoding of `m` to `out`.
pub fn encode_into(m: &Message, out: &mut Vec<u8>) {
    let mut w = binary::Writer::<MsgPack> {
        out,
        format: std::marker::PhantomData,
    };
    wire::encode_message(m, &mut w);
}

/// Appends the MessagePack encoding of one value.
pub fn encode_value(out: &mut Vec<u8>, v: &Value) {
    binary::encode_value::<MsgPack>(out, v);
}

/// MessagePack's primitive writers (`rmp`'s; writing into a `Vec<u8>` cannot fail, so their io
/// results are ignored).
struct MsgPack;

impl binary::Primitives for MsgPack {
    const FORMAT: Serializer = Serializer::MsgPack;
    fn null(out: &mut Vec<u8>) {
        let _ = rmp::encode::write_nil(out);
    }
    fn bool(out: &mut Vec<u8>, b: bool) {
        let _ = rmp::encode::write_bool(out, b);
    }
    fn uint(out: &mut Vec<u8>, v: u64) {
        let _ = rmp::encode::write_uint(out, v);
    }
    fn neg(out: &mut Vec<u8>, v: i64) {
        let _ = rmp::encode::write_sint(out, v);
    }
    fn float(out: &mut Vec<u8>, f: f64) {
        let _ = rmp::encode::write_f64(out, f);
    }
    fn str(out: &mut Vec<u8>, s: &str) {
        let _ = rmp::encode::write_str(out, s);
    }
    fn bin(out: &mut Vec<u8>, b: &[u8]) {
        let _ = rmp::encode::write_bin(out, b);
    }
    fn array_len(out: &mut Vec<u8>, n: usize) {
        let _ = rmp::encode::write_array_len(out, n as u32);
    }
    fn map_len(out: &mut Vec<u8>, n: usize) {
        let _ = rmp::encode::write_map_len(out, n as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn skips(bytes: &[u8]) -> Result<usize, DecodeError> {
        let mut c = Cursor {
            buf: bytes,
            pos: 0,
            owner: None,
        };
        skip_value(&mut c, 0).map(|()| c.pos)
    }

    fn builds(bytes: &[u8]) -> Result<usize, DecodeError> {
        let mut c = Cursor {
            buf: bytes,
            pos: 0,
            owner: None,
        };
        read_value(&mut c, 0).map(|_| c.pos)
    }

    /// Skipping a value (the payload's fast path included) accepts exactly what building it
    /// accepts and ends where it ends, for every marker width, and for every cut of the value.
    #[test]
    fn skipping_agrees_with_building() {
        let mut values: Vec<Vec<u8>> = vec![
            vec![0x00],
            vec![0x7f],
            vec![0xc0],
            vec![0xc2],
            vec![0xc3],
            vec![0xe0],
            vec![0xcc, 0xff],
            vec![0xd0, 0x80],
            vec![0xcd, 0x01, 0x02],
            vec![0xd1, 0x80, 0x00],
            vec![0xca, 0, 0, 0, 0],
            vec![0xce, 1, 2, 3, 4],
            vec![0xd2, 1, 2, 3, 4],
            vec![0xcb, 0, 0, 0, 0, 0, 0, 0, 0],
            vec![0xcf, 1, 2, 3, 4, 5, 6, 7, 8],
            vec![0xd3, 1, 2, 3, 4, 5, 6, 7, 8],
            vec![0xc4, 0],
            vec![0xc5, 0, 3, 7, 7, 7],
            vec![0xa3, b'a', b'b', b'c'],
            vec![0xa2, 0xff, 0xfe], // not UTF-8
            vec![0xc1],             // reserved
            vec![0xd4, 0, 0],       // extension
        ];
        let mut bin8 = vec![0xc4, 255];
        bin8.extend([0x5a; 255]);
        values.push(bin8);
        // A list of all of them, and a map of one of them.
        let mut list = vec![0xdc, 0, values.len() as u8];
        for v in &values {
            list.extend(v);
        }
        values.push(list);
        values.push(vec![0x81, 0xa1, b'k', 0xcf, 1, 2, 3, 4, 5, 6, 7, 8]);
        values.push(vec![
            0x93, 0xcf, 1, 2, 3, 4, 5, 6, 7, 8, 0x01, 0xc4, 2, 9, 9,
        ]);
        for v in &values {
            for cut in 0..=v.len() {
                let part = &v[..cut];
                let (s, b) = (skips(part), builds(part));
                assert_eq!(s.is_ok(), b.is_ok(), "{part:02x?}: skip {s:?}, build {b:?}");
                if let (Ok(s), Ok(b)) = (s, b) {
                    assert_eq!(s, b, "{part:02x?}");
                }
            }
        }
    }
}
