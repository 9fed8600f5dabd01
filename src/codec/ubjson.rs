//! UBJSON serializer (`wamp.2.ubjson`, RawSocket serializer 4; Universal Binary JSON, draft 12,
//! as autobahn's `py-ubjson` speaks it), and its dialect BJData (Binary JData, what
//! autobahn-python 26.6 and later send under the same name: little-endian numbers, the unsigned
//! markers `u` `m` `M`, half floats `h`, the byte type `B`). The two disagree on the bytes of
//! any number above 255, so a listener speaks one of them (`--ubjson-dialect`,
//! [`Serializer::Ubjson`] or [`Serializer::Bjdata`]).
//!
//! Built like the MessagePack and CBOR ones: a cursor over the frame, one pass, no intermediate
//! tree for the message envelope, binaries and the payload sliced out of the frame without
//! copying, nesting limited to [`MAX_DEPTH`].
//!
//! What is accepted: `Z` null, `N` no-op (skipped wherever a value or a container item may
//! stand), `T`/`F`, every integer type (`i U I l L`), `d`/`D` floats, `H` high-precision numbers
//! (an integer that fits WAMP's range, else a float), `C` chars and `S` strings (UTF-8), and
//! arrays and objects in every form: with an end marker, with a count (`#`), and typed with a
//! count (`$` + `#`). A typed `uint8` array (`[$U#n`) is a byte string, as `py-ubjson` reads and
//! writes binary. Encoding uses counted containers, the smallest integer type (`H` above
//! `i64::MAX`), 64-bit floats and `[$U#n` for binary.

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
    DecodeError::Ubjson(msg.to_owned())
}

/// A read position in a UBJSON buffer.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    /// The owning buffer, when there is one, so byte strings can be sliced instead of copied.
    owner: Option<&'a Bytes>,
    /// BJData: little-endian, and the markers `u m M h B`.
    bj: bool,
    /// Items typed containers of payload-less values (`[$Z#n`, `T`, `F`, `N`) may still
    /// announce in this frame: such items take no byte each, so together they are bounded by
    /// the frame's length (as if each took one), never more.
    empty_budget: usize,
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

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
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
        std::str::from_utf8(s).map_err(|_| DecodeError::Utf8("UBJSON string"))
    }

    /// Skips no-op markers.
    fn skip_noops(&mut self) {
        while self.peek() == Some(b'N') {
            self.pos += 1;
        }
    }

    /// `N` bytes as a big-endian (UBJSON) or little-endian (BJData) number.
    fn ordered<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = self.array::<N>()?;
        if !self.bj {
            a.reverse();
        }
        Ok(a)
    }

    /// An integer of the type `marker`, as a value (`UInt` when non-negative).
    fn int(&mut self, marker: u8) -> Result<Value, DecodeError> {
        let signed = |i: i64| {
            if i >= 0 {
                Value::UInt(i as u64)
            } else {
                Value::Int(i)
            }
        };
        Ok(match marker {
            b'i' => signed(i64::from(i8::from_le_bytes(self.array()?))),
            b'U' => Value::UInt(u64::from(self.byte()?)),
            b'B' if self.bj => Value::UInt(u64::from(self.byte()?)),
            b'I' => signed(i64::from(i16::from_le_bytes(self.ordered()?))),
            b'l' => signed(i64::from(i32::from_le_bytes(self.ordered()?))),
            b'L' => signed(i64::from_le_bytes(self.ordered()?)),
            b'u' if self.bj => Value::UInt(u64::from(u16::from_le_bytes(self.ordered()?))),
            b'm' if self.bj => Value::UInt(u64::from(u32::from_le_bytes(self.ordered()?))),
            b'M' if self.bj => Value::UInt(u64::from_le_bytes(self.ordered()?)),
            _ => return Err(err("integer expected")),
        })
    }

    /// A non-negative integer of the type `marker` that fits `usize`.
    fn size(&mut self, marker: u8) -> Result<usize, DecodeError> {
        match self.int(marker)? {
            Value::UInt(n) => usize::try_from(n).map_err(|_| err("length too large")),
            _ => Err(err("negative length or count")),
        }
    }

    /// A length or count: an integer marker and a non-negative value that fits in what is left
    /// of the buffer (every element takes at least a byte, except in typed containers of
    /// markers without a payload, which [`Cursor::count`] bounds separately).
    fn len(&mut self) -> Result<usize, DecodeError> {
        let marker = self.byte()?;
        let n = self.size(marker)?;
        if n > self.buf.len() - self.pos {
            return Err(err("length beyond the end of data"));
        }
        Ok(n)
    }

    /// The `#` count of a container whose items are of type `typ` (`None`: each item has its
    /// marker). Items of the payload-less types `Z`, `T`, `F` and `N` take no byte each, so
    /// their counts draw on the frame's [`Cursor::empty_budget`] instead: a small frame cannot
    /// announce millions of them.
    fn count(&mut self, typ: Option<u8>) -> Result<usize, DecodeError> {
        let marker = self.byte()?;
        let n = self.size(marker)?;
        if matches!(typ, Some(b'Z' | b'T' | b'F' | b'N')) {
            if n > self.empty_budget {
                return Err(err("too many items in typed containers of empty values"));
            }
            self.empty_budget -= n;
        } else if n > self.buf.len() - self.pos {
            return Err(err("count beyond the end of data"));
        }
        Ok(n)
    }
}

/// A container's form: items until the end marker, or a count, with an optional item type.
#[derive(Clone, Copy)]
struct Form {
    count: Option<usize>,
    typ: Option<u8>,
}

/// Reads what follows `[` or `{`: `$type#count`, `#count` or nothing.
fn form(c: &mut Cursor<'_>) -> Result<Form, DecodeError> {
    let typ = if c.peek() == Some(b'$') {
        c.pos += 1;
        let t = c.byte()?;
        if matches!(t, b'[' | b'{' | b']' | b'}' | b'$' | b'#') {
            return Err(err("invalid container type"));
        }
        Some(t)
    } else {
        None
    };
    if c.peek() == Some(b'#') {
        c.pos += 1;
        let count = c.count(typ)?;
        return Ok(Form {
            count: Some(count),
            typ,
        });
    }
    if typ.is_some() {
        return Err(err("a typed container needs a count"));
    }
    Ok(Form { count: None, typ })
}

/// Calls `item` for each item of a container of form `f`, whose closing marker is `end`;
/// `item` gets the item's marker (read, or the container's type).
fn items(
    c: &mut Cursor<'_>,
    f: Form,
    end: u8,
    mut item: impl FnMut(&mut Cursor<'_>, Option<u8>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    match f.count {
        Some(n) => (0..n).try_for_each(|_| item(c, f.typ)),
        None => loop {
            c.skip_noops();
            match c.peek() {
                Some(b) if b == end => {
                    c.pos += 1;
                    return Ok(());
                }
                Some(_) => item(c, None)?,
                None => return Err(err("unexpected end of data")),
            }
        },
    }
}

/// The marker of the next value (no-ops skipped), or the container's item type.
fn marker(c: &mut Cursor<'_>, typ: Option<u8>) -> Result<u8, DecodeError> {
    match typ {
        Some(t) => Ok(t),
        None => {
            c.skip_noops();
            c.byte()
        }
    }
}

fn type_name(m: u8) -> &'static str {
    match m {
        b'Z' => "null",
        b'T' | b'F' => "bool",
        b'i' | b'U' | b'I' | b'l' | b'L' | b'u' | b'm' | b'M' | b'B' => "integer",
        b'h' => "float",
        b'd' | b'D' => "float",
        b'H' => "number",
        b'C' | b'S' => "string",
        b'[' => "list",
        b'{' => "dict",
        _ => "unknown marker",
    }
}

/// A high-precision number (`H`): an integer if it is one in WAMP's range, else a float.
fn high_precision(s: &str) -> Result<Value, DecodeError> {
    if let Ok(u) = s.parse::<u64>() {
        return Ok(Value::UInt(u));
    }
    if let Ok(i) = s.parse::<i64>() {
        return Ok(Value::Int(i));
    }
    s.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(Value::Float)
        .ok_or_else(|| err("invalid high-precision number"))
}

/// Whether a container of form `f` that starts with `[` is a byte string: `[$U#n` (UBJSON,
/// py-ubjson), also `[$B#n` in BJData.
fn is_bytes(c: &Cursor<'_>, f: Form) -> bool {
    f.count.is_some() && (f.typ == Some(b'U') || (c.bj && f.typ == Some(b'B')))
}

fn read_value(c: &mut Cursor<'_>, m: u8, depth: usize) -> Result<Value, DecodeError> {
    Ok(match m {
        b'Z' => Value::Null,
        b'T' => Value::Bool(true),
        b'F' => Value::Bool(false),
        b'i' | b'U' | b'I' | b'l' | b'L' => c.int(m)?,
        b'u' | b'm' | b'M' | b'B' if c.bj => c.int(m)?,
        b'h' if c.bj => Value::Float(super::cbor::f16_to_f64(u16::from_le_bytes(c.ordered()?))),
        b'd' => Value::Float(f64::from(f32::from_le_bytes(c.ordered()?))),
        b'D' => Value::Float(f64::from_le_bytes(c.ordered()?)),
        b'H' => {
            let n = c.len()?;
            high_precision(c.str(n)?)?
        }
        b'C' => {
            let b = c.byte()?;
            if !b.is_ascii() {
                return Err(err("a char must be ASCII"));
            }
            Value::Str(char::from(b).to_string())
        }
        b'S' => {
            let n = c.len()?;
            Value::Str(c.str(n)?.to_owned())
        }
        b'[' => {
            if depth >= MAX_DEPTH {
                return Err(DecodeError::TooDeep(MAX_DEPTH));
            }
            let f = form(c)?;
            if is_bytes(c, f) {
                return Ok(Value::Bin(c.bytes(f.count.unwrap_or(0))?));
            }
            let mut l = Vec::with_capacity(f.count.unwrap_or(0).min(1024));
            items(c, f, b']', |c, typ| {
                let m = marker(c, typ)?;
                l.push(read_value(c, m, depth + 1)?);
                Ok(())
            })?;
            Value::List(l)
        }
        b'{' => {
            if depth >= MAX_DEPTH {
                return Err(DecodeError::TooDeep(MAX_DEPTH));
            }
            Value::Dict(read_object_body(c, depth + 1)?)
        }
        _ => return Err(err("unknown or misplaced marker")),
    })
}

/// An object key: a length and UTF-8 bytes (no `S` marker).
fn read_key<'a>(c: &mut Cursor<'a>) -> Result<&'a str, DecodeError> {
    let n = c.len()?;
    c.str(n)
}

/// The rest of an object after `{`.
fn read_object_body(c: &mut Cursor<'_>, depth: usize) -> Result<Dict, DecodeError> {
    let f = form(c)?;
    let mut d = Dict::new();
    items(c, f, b'}', |c, typ| {
        let k = read_key(c)?.to_owned();
        let m = marker(c, typ)?;
        let v = read_value(c, m, depth)?;
        d.insert(k, v);
        Ok(())
    })?;
    Ok(d)
}

/// Skips one value of marker `m`, validating it, without building it.
fn skip_value(c: &mut Cursor<'_>, m: u8, depth: usize) -> Result<(), DecodeError> {
    match m {
        b'[' | b'{' => {
            if depth >= MAX_DEPTH {
                return Err(DecodeError::TooDeep(MAX_DEPTH));
            }
            let f = form(c)?;
            if m == b'[' && is_bytes(c, f) {
                return c.take(f.count.unwrap_or(0)).map(|_| ());
            }
            let (end, keyed) = if m == b'[' {
                (b']', false)
            } else {
                (b'}', true)
            };
            items(c, f, end, |c, typ| {
                if keyed {
                    read_key(c)?;
                }
                let m = marker(c, typ)?;
                skip_value(c, m, depth + 1)
            })
        }
        // Strings: validated, not copied.
        b'S' => {
            let n = c.len()?;
            c.str(n).map(|_| ())
        }
        // Other scalars: reading them validates them (no allocation).
        _ => read_value(c, m, depth).map(|_| ()),
    }
}

/// Decodes one standalone UBJSON value (e.g. an encoded payload).
pub fn decode_value(bytes: &[u8]) -> Result<Value, DecodeError> {
    value_in(bytes, false)
}

/// Decodes one standalone BJData value.
pub fn decode_value_bjdata(bytes: &[u8]) -> Result<Value, DecodeError> {
    value_in(bytes, true)
}

fn value_in(bytes: &[u8], bj: bool) -> Result<Value, DecodeError> {
    let mut c = Cursor {
        buf: bytes,
        pos: 0,
        owner: None,
        bj,
        empty_budget: bytes.len(),
    };
    let m = marker(&mut c, None)?;
    let v = read_value(&mut c, m, 0)?;
    c.skip_noops();
    if c.pos != bytes.len() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(v)
}

struct Reader<'a> {
    c: Cursor<'a>,
    frame: &'a Bytes,
    len: usize,
    /// The top-level array's item type (`[$L#3` typed envelopes), if any.
    typ: Option<u8>,
}

impl Reader<'_> {
    fn marker(&mut self) -> Result<u8, DecodeError> {
        marker(&mut self.c, self.typ)
    }
}

impl ElementReader for Reader<'_> {
    fn len(&self) -> usize {
        self.len
    }

    fn read_int(&mut self, msg: &'static str, field: &'static str) -> Result<u64, DecodeError> {
        let m = self.marker()?;
        match read_value(&mut self.c, m, 1)? {
            Value::UInt(u) => Ok(u),
            Value::Float(f) => Value::Float(f)
                .as_u64()
                .ok_or_else(|| DecodeError::wrong_type(msg, field, "integer", "float")),
            _ => Err(DecodeError::wrong_type(msg, field, "integer", type_name(m))),
        }
    }

    fn read_str(
        &mut self,
        msg: &'static str,
        field: &'static str,
    ) -> Result<Cow<'_, str>, DecodeError> {
        let m = self.marker()?;
        match m {
            b'S' => {
                let n = self.c.len()?;
                Ok(Cow::Borrowed(self.c.str(n)?))
            }
            b'C' => match read_value(&mut self.c, m, 1)? {
                Value::Str(s) => Ok(Cow::Owned(s)),
                _ => Err(err("char expected")),
            },
            _ => Err(DecodeError::wrong_type(msg, field, "string", type_name(m))),
        }
    }

    fn read_dict(&mut self, msg: &'static str, field: &'static str) -> Result<Dict, DecodeError> {
        let m = self.marker()?;
        match m {
            b'{' => read_object_body(&mut self.c, 1),
            _ => Err(DecodeError::wrong_type(msg, field, "dict", type_name(m))),
        }
    }

    fn read_args(&mut self, msg: &'static str) -> Result<ArgsElement, DecodeError> {
        if self.typ.is_some() {
            return Err(err("a typed message array cannot hold a payload"));
        }
        self.c.skip_noops();
        let start = self.c.pos;
        let m = self.c.byte()?;
        if m != b'[' {
            return Err(DecodeError::wrong_type(
                msg,
                "Arguments",
                "list",
                type_name(m),
            ));
        }
        let mut probe = Cursor {
            buf: self.c.buf,
            pos: self.c.pos,
            owner: None,
            bj: self.c.bj,
            empty_budget: self.c.empty_budget,
        };
        let f = form(&mut probe)?;
        if is_bytes(&probe, f) {
            // A byte string where the list goes: an opaque (passthru) payload.
            self.c.pos = probe.pos;
            return Ok(ArgsElement::Transparent(
                self.c.bytes(f.count.unwrap_or(0))?,
            ));
        }
        skip_value(&mut self.c, m, 0)?;
        Ok(ArgsElement::List(self.frame.slice(start..self.c.pos)))
    }

    fn read_kwargs(&mut self, msg: &'static str) -> Result<Bytes, DecodeError> {
        if self.typ.is_some() {
            return Err(err("a typed message array cannot hold a payload"));
        }
        self.c.skip_noops();
        let start = self.c.pos;
        let m = self.c.byte()?;
        if m != b'{' {
            return Err(DecodeError::wrong_type(
                msg,
                "ArgumentsKw",
                "dict",
                type_name(m),
            ));
        }
        skip_value(&mut self.c, m, 0)?;
        Ok(self.frame.slice(start..self.c.pos))
    }

    fn serializer(&self) -> Serializer {
        if self.c.bj {
            Serializer::Bjdata
        } else {
            Serializer::Ubjson
        }
    }
}

/// Decodes one UBJSON frame.
pub fn decode(frame: &Bytes) -> Result<Message, DecodeError> {
    decode_in(frame, false)
}

/// Decodes one BJData frame.
pub fn decode_bjdata(frame: &Bytes) -> Result<Message, DecodeError> {
    decode_in(frame, true)
}

fn decode_in(frame: &Bytes, bj: bool) -> Result<Message, DecodeError> {
    let mut c = Cursor {
        buf: frame,
        pos: 0,
        owner: Some(frame),
        bj,
        empty_budget: frame.len(),
    };
    if marker(&mut c, None)? != b'[' {
        return Err(DecodeError::NotAnArray);
    }
    let f = form(&mut c)?;
    if is_bytes(&c, f) {
        return Err(DecodeError::NotAnArray);
    }
    let len = match f.count {
        Some(n) => n,
        // Items until `]`: count them first (validating them).
        None => {
            let (start, budget) = (c.pos, c.empty_budget);
            let mut n = 0;
            items(&mut c, f, b']', |c, typ| {
                n += 1;
                let m = marker(c, typ)?;
                skip_value(c, m, 1)
            })?;
            (c.pos, c.empty_budget) = (start, budget);
            n
        }
    };
    let mut r = Reader {
        c,
        frame,
        len,
        typ: f.typ,
    };
    let m = wire::decode_message(&mut r)?;
    if f.count.is_none() {
        r.c.skip_noops();
        if r.c.peek() == Some(b']') {
            r.c.pos += 1;
        }
    }
    r.c.skip_noops();
    if r.c.pos != frame.len() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(m)
}

/// Appends the UBJSON encoding of `m` to `out`.
pub fn encode_into(m: &Message, out: &mut Vec<u8>) {
    let mut w = binary::Writer::<Ubjson> {
        out,
        format: std::marker::PhantomData,
    };
    wire::encode_message(m, &mut w);
}

/// Appends the UBJSON encoding of one value.
pub fn encode_value(out: &mut Vec<u8>, v: &Value) {
    binary::encode_value::<Ubjson>(out, v);
}

/// Appends the BJData encoding of `m` to `out`.
pub fn encode_into_bjdata(m: &Message, out: &mut Vec<u8>) {
    let mut w = binary::Writer::<Bjdata> {
        out,
        format: std::marker::PhantomData,
    };
    wire::encode_message(m, &mut w);
}

/// Appends the BJData encoding of one value.
pub fn encode_value_bjdata(out: &mut Vec<u8>, v: &Value) {
    binary::encode_value::<Bjdata>(out, v);
}

/// UBJSON's (`BJ = false`) and BJData's (`BJ = true`) primitive writers: counted containers,
/// the smallest integer types (BJData: unsigned markers for non-negative integers, little-endian),
/// 64-bit floats; binary as `[$U#n` (UBJSON, as py-ubjson writes it) or `[$B#n` (BJData, as the
/// `bjdata` package writes it). Empty containers are written `[]` / `{}`: the `bjdata` package
/// misreads an empty *counted* object followed by more data, and py-ubjson writes them so too.
struct Ub<const BJ: bool>;

type Ubjson = Ub<false>;
type Bjdata = Ub<true>;

impl<const BJ: bool> Ub<BJ> {
    /// A marker and `N` big-endian (UBJSON) or little-endian (BJData) bytes.
    fn num<const N: usize>(out: &mut Vec<u8>, marker: u8, le: [u8; N]) {
        out.push(marker);
        if BJ {
            out.extend_from_slice(&le);
        } else {
            out.extend(le.iter().rev());
        }
    }

    fn uint_(out: &mut Vec<u8>, v: u64) {
        if v <= u64::from(u8::MAX) {
            out.extend_from_slice(&[b'U', v as u8]);
        } else if BJ && v <= u64::from(u16::MAX) {
            Self::num(out, b'u', (v as u16).to_le_bytes());
        } else if !BJ && v <= i16::MAX as u64 {
            Self::num(out, b'I', (v as i16).to_le_bytes());
        } else if BJ && v <= u64::from(u32::MAX) {
            Self::num(out, b'm', (v as u32).to_le_bytes());
        } else if !BJ && v <= i32::MAX as u64 {
            Self::num(out, b'l', (v as i32).to_le_bytes());
        } else if BJ {
            Self::num(out, b'M', v.to_le_bytes());
        } else if v <= i64::MAX as u64 {
            Self::num(out, b'L', (v as i64).to_le_bytes());
        } else {
            // Above int64: UBJSON's high-precision number.
            let s = v.to_string();
            out.push(b'H');
            Self::uint_(out, s.len() as u64);
            out.extend_from_slice(s.as_bytes());
        }
    }
}

impl<const BJ: bool> binary::Primitives for Ub<BJ> {
    const FORMAT: Serializer = if BJ {
        Serializer::Bjdata
    } else {
        Serializer::Ubjson
    };
    fn null(out: &mut Vec<u8>) {
        out.push(b'Z');
    }
    fn bool(out: &mut Vec<u8>, b: bool) {
        out.push(if b { b'T' } else { b'F' });
    }
    fn uint(out: &mut Vec<u8>, v: u64) {
        Self::uint_(out, v);
    }
    fn neg(out: &mut Vec<u8>, v: i64) {
        if v >= i64::from(i8::MIN) {
            out.extend_from_slice(&[b'i', v as i8 as u8]);
        } else if v >= i64::from(i16::MIN) {
            Self::num(out, b'I', (v as i16).to_le_bytes());
        } else if v >= i64::from(i32::MIN) {
            Self::num(out, b'l', (v as i32).to_le_bytes());
        } else {
            Self::num(out, b'L', v.to_le_bytes());
        }
    }
    fn float(out: &mut Vec<u8>, f: f64) {
        Self::num(out, b'D', f.to_bits().to_le_bytes());
    }
    fn str(out: &mut Vec<u8>, s: &str) {
        out.push(b'S');
        Self::key(out, s);
    }
    fn key(out: &mut Vec<u8>, s: &str) {
        Self::uint_(out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
    fn bin(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(if BJ { b"[$B#" } else { b"[$U#" });
        Self::uint_(out, b.len() as u64);
        out.extend_from_slice(b);
    }
    fn array_len(out: &mut Vec<u8>, n: usize) {
        if n == 0 {
            out.extend_from_slice(b"[]");
        } else {
            out.extend_from_slice(b"[#");
            Self::uint_(out, n as u64);
        }
    }
    fn map_len(out: &mut Vec<u8>, n: usize) {
        if n == 0 {
            out.extend_from_slice(b"{}");
        } else {
            out.extend_from_slice(b"{#");
            Self::uint_(out, n as u64);
        }
    }
}

#[cfg(test)]
mod tests;
