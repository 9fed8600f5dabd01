//! The encoding half shared by the binary serializers (MessagePack, CBOR, UBJSON): given a format's
//! primitive writers ([`Primitives`]), how a value, an options dict and a payload are written.
//! Each format keeps its own decoder (their cursors differ) and its own primitives.

use super::options::{FieldRef, Options};
use super::payload::Payload;
use super::value::{Dict, Value};
use super::wire::ElementWriter;
use super::Serializer;
use std::marker::PhantomData;

/// A binary format's primitive writers (appending to a `Vec<u8>` cannot fail).
pub(crate) trait Primitives {
    /// The serializer whose encoded payloads can be copied as they are.
    const FORMAT: Serializer;
    fn null(out: &mut Vec<u8>);
    fn bool(out: &mut Vec<u8>, b: bool);
    fn uint(out: &mut Vec<u8>, v: u64);
    /// A negative integer.
    fn neg(out: &mut Vec<u8>, v: i64);
    fn float(out: &mut Vec<u8>, f: f64);
    fn str(out: &mut Vec<u8>, s: &str);
    fn bin(out: &mut Vec<u8>, b: &[u8]);
    /// A dictionary key (UBJSON writes keys without the string marker).
    fn key(out: &mut Vec<u8>, s: &str) {
        Self::str(out, s);
    }
    fn array_len(out: &mut Vec<u8>, n: usize);
    fn map_len(out: &mut Vec<u8>, n: usize);
}

/// Appends one value.
/// The byte at `*pos` in `buf`, advancing past it; `None` at the end (each decoder's cursor
/// names the error in its own format).
#[inline]
pub(crate) fn next_byte(buf: &[u8], pos: &mut usize) -> Option<u8> {
    let b = *buf.get(*pos)?;
    *pos += 1;
    Some(b)
}

/// The `n` bytes at `*pos` in `buf`, advancing past them; `None` if they run past the end.
#[inline]
pub(crate) fn next_slice<'a>(buf: &'a [u8], pos: &mut usize, n: usize) -> Option<&'a [u8]> {
    let end = pos.checked_add(n).filter(|e| *e <= buf.len())?;
    let s = &buf[*pos..end];
    *pos = end;
    Some(s)
}

pub(crate) fn encode_value<P: Primitives>(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => P::null(out),
        Value::Bool(b) => P::bool(out, *b),
        Value::Int(i) if *i < 0 => P::neg(out, *i),
        Value::Int(i) => P::uint(out, *i as u64),
        Value::UInt(u) => P::uint(out, *u),
        Value::Float(f) => P::float(out, *f),
        Value::Str(s) => P::str(out, s),
        Value::Bin(b) => P::bin(out, b),
        Value::List(l) => {
            P::array_len(out, l.len());
            for x in l {
                encode_value::<P>(out, x);
            }
        }
        Value::Dict(d) => encode_dict::<P>(out, d),
    }
}

fn encode_dict<P: Primitives>(out: &mut Vec<u8>, d: &Dict) {
    P::map_len(out, d.len());
    for (k, v) in d {
        P::key(out, k);
        encode_value::<P>(out, v);
    }
}

fn encode_field<P: Primitives>(out: &mut Vec<u8>, f: FieldRef<'_>) {
    match f {
        FieldRef::Bool(b) => P::bool(out, b),
        FieldRef::UInt(u) => P::uint(out, u),
        FieldRef::Str(s) => P::str(out, s),
        FieldRef::Ids(ids) => {
            P::array_len(out, ids.len());
            for i in ids {
                P::uint(out, *i);
            }
        }
        FieldRef::Strs(ss) => {
            P::array_len(out, ss.len());
            for s in ss {
                P::str(out, s);
            }
        }
        FieldRef::Value(v) => encode_value::<P>(out, v),
    }
}

/// The message-element writer of a binary format.
pub(crate) struct Writer<'a, P> {
    pub out: &'a mut Vec<u8>,
    pub format: PhantomData<P>,
}

impl<P: Primitives> ElementWriter for Writer<'_, P> {
    fn begin(&mut self, len: usize) {
        P::array_len(self.out, len);
    }

    fn int(&mut self, v: u64) {
        P::uint(self.out, v);
    }

    fn str(&mut self, s: &str) {
        P::str(self.out, s);
    }

    fn options<O: Options>(&mut self, o: &O) {
        let len = o.len();
        P::map_len(self.out, len);
        if len == 0 {
            // The common case (a router's INVOCATION or RESULT details): nothing to visit.
            return;
        }
        let out = &mut *self.out;
        o.for_each_known(&mut |k, v| {
            P::key(out, k);
            encode_field::<P>(out, v);
        });
        for (k, v) in o.extra() {
            P::key(self.out, k);
            encode_value::<P>(self.out, v);
        }
    }

    fn payload(&mut self, p: &Payload) {
        match p {
            Payload::Empty => {}
            Payload::Encoded(e) if e.format == P::FORMAT => {
                match &e.args {
                    Some(a) => self.out.extend_from_slice(a),
                    None if e.kwargs.is_some() => P::array_len(self.out, 0),
                    None => {}
                }
                if let Some(k) = &e.kwargs {
                    self.out.extend_from_slice(k);
                }
            }
            // Another serializer's bytes: convert through values. Callers fanning out to many
            // receivers convert once with `Payload::for_serializer` first.
            Payload::Encoded(_) => match p.to_values() {
                Ok(v) => self.payload(&v),
                Err(_) => {
                    // Unreachable for payloads produced by `decode` (validated there). Still
                    // write as many elements as `begin` announced.
                    debug_assert!(false, "undecodable encoded payload");
                    P::array_len(self.out, 0);
                    if p.element_count() == 2 {
                        P::map_len(self.out, 0);
                    }
                }
            },
            Payload::Values { args, kwargs } => {
                match args {
                    Some(a) => {
                        P::array_len(self.out, a.len());
                        for x in a {
                            encode_value::<P>(self.out, x);
                        }
                    }
                    None if kwargs.is_some() => P::array_len(self.out, 0),
                    None => {}
                }
                if let Some(k) = kwargs {
                    encode_dict::<P>(self.out, k);
                }
            }
            Payload::Transparent(b) => P::bin(self.out, b),
        }
    }

    fn end(&mut self) {}
}
