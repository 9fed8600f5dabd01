//! serde for WAMP payloads: any `Serialize` type into a [`Value`] and any `Deserialize` type
//! out of one, without going through JSON (so byte strings stay [`Value::Bin`], integers keep
//! their full 64-bit range, and a payload converts once, straight to what the codec writes).
//!
//! Payload rules ([`to_args`], [`to_kwargs`], [`from_args`], [`from_kwargs`]):
//!
//! - **args**: a tuple, tuple struct, sequence or *named struct* becomes the positional list
//!   (a named struct's fields in declaration order); `()` none; any other value one argument.
//!   Reading back, a tuple/sequence/struct type takes the whole list, any other type the one
//!   argument (an error names the count when there is not exactly one).
//! - **kwargs**: a struct or map becomes the keyword dictionary; `()` none.
//!
//! Enums use serde's externally tagged form (`"Unit"`, `{"Variant": value}`), as serde_json
//! does, so a payload written here reads the same in a Python or JavaScript peer.

use super::value::{Dict, Value};
use bytes::Bytes;
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::ser::{self, Serialize};
use std::fmt;

/// A value that does not fit the requested type (or a type serde cannot express as a WAMP
/// value, such as a map with non-string keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueError(pub String);

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ValueError {}

impl ser::Error for ValueError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ValueError(msg.to_string())
    }
}

impl de::Error for ValueError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ValueError(msg.to_string())
    }
}

/// `t` as a [`Value`].
pub fn to_value<T: Serialize + ?Sized>(t: &T) -> Result<Value, ValueError> {
    t.serialize(ValueSerializer)
}

/// A `T` read from `v`.
pub fn from_value<T: DeserializeOwned>(v: Value) -> Result<T, ValueError> {
    T::deserialize(v)
}

/// `t` as positional arguments (see the module docs).
pub fn to_args<T: Serialize + ?Sized>(t: &T) -> Result<Vec<Value>, ValueError> {
    Ok(match t.serialize(ValueSerializer { args: true })? {
        Value::List(l) => l,
        Value::Null => Vec::new(),
        v => vec![v],
    })
}

/// `t` as keyword arguments: a struct or a map (`()` gives none).
pub fn to_kwargs<T: Serialize + ?Sized>(t: &T) -> Result<Dict, ValueError> {
    match to_value(t)? {
        Value::Dict(d) => Ok(d),
        Value::Null => Ok(Dict::new()),
        v => Err(ValueError(format!(
            "keyword arguments must be a struct or a map, not {}",
            v.type_name()
        ))),
    }
}

/// A `T` read from positional arguments (see the module docs).
pub fn from_args<T: DeserializeOwned>(args: Vec<Value>) -> Result<T, ValueError> {
    T::deserialize(Args(args))
}

/// A `T` read from keyword arguments.
pub fn from_kwargs<T: DeserializeOwned>(kwargs: Dict) -> Result<T, ValueError> {
    T::deserialize(Value::Dict(kwargs))
}

// ---- Serialize for Value (so a Value can sit inside a serde type) ---------------------------

impl Serialize for Value {
    fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use ser::{SerializeMap, SerializeSeq};
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            Value::Int(i) => s.serialize_i64(*i),
            Value::UInt(u) => s.serialize_u64(*u),
            Value::Float(f) => s.serialize_f64(*f),
            Value::Str(x) => s.serialize_str(x),
            Value::Bin(b) => s.serialize_bytes(b),
            Value::List(l) => {
                let mut q = s.serialize_seq(Some(l.len()))?;
                for x in l {
                    q.serialize_element(x)?;
                }
                q.end()
            }
            Value::Dict(d) => {
                let mut m = s.serialize_map(Some(d.len()))?;
                for (k, v) in d {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
    }
}

// ---- Serializer into Value ------------------------------------------------------------------

/// `args`: the top level of positional arguments, where a named struct becomes a list.
#[derive(Clone, Copy, Default)]
struct ValueSerializer {
    args: bool,
}

#[allow(non_upper_case_globals)]
const ValueSerializer: ValueSerializer = ValueSerializer { args: false };

struct SeqBuilder(Vec<Value>);

struct MapBuilder {
    map: Dict,
    key: Option<String>,
}

struct VariantBuilder {
    name: &'static str,
    inner: Vec<Value>,
    map: Dict,
}

fn variant(name: &'static str, v: Value) -> Value {
    let mut d = Dict::new();
    d.insert(name.to_owned(), v);
    Value::Dict(d)
}

impl ser::Serializer for ValueSerializer {
    type Ok = Value;
    type Error = ValueError;
    type SerializeSeq = SeqBuilder;
    type SerializeTuple = SeqBuilder;
    type SerializeTupleStruct = SeqBuilder;
    type SerializeTupleVariant = VariantBuilder;
    type SerializeMap = MapBuilder;
    type SerializeStruct = StructBuilder;
    type SerializeStructVariant = VariantBuilder;

    fn serialize_bool(self, v: bool) -> Result<Value, ValueError> {
        Ok(Value::Bool(v))
    }
    fn serialize_i8(self, v: i8) -> Result<Value, ValueError> {
        Ok(Value::int(v.into()))
    }
    fn serialize_i16(self, v: i16) -> Result<Value, ValueError> {
        Ok(Value::int(v.into()))
    }
    fn serialize_i32(self, v: i32) -> Result<Value, ValueError> {
        Ok(Value::int(v.into()))
    }
    fn serialize_i64(self, v: i64) -> Result<Value, ValueError> {
        Ok(Value::int(v))
    }
    fn serialize_u8(self, v: u8) -> Result<Value, ValueError> {
        Ok(Value::UInt(v.into()))
    }
    fn serialize_u16(self, v: u16) -> Result<Value, ValueError> {
        Ok(Value::UInt(v.into()))
    }
    fn serialize_u32(self, v: u32) -> Result<Value, ValueError> {
        Ok(Value::UInt(v.into()))
    }
    fn serialize_u64(self, v: u64) -> Result<Value, ValueError> {
        Ok(Value::UInt(v))
    }
    fn serialize_i128(self, v: i128) -> Result<Value, ValueError> {
        i64::try_from(v)
            .map(Value::int)
            .or_else(|_| u64::try_from(v).map(Value::UInt))
            .map_err(|_| ValueError(format!("{v} does not fit a WAMP integer")))
    }
    fn serialize_u128(self, v: u128) -> Result<Value, ValueError> {
        u64::try_from(v)
            .map(Value::UInt)
            .map_err(|_| ValueError(format!("{v} does not fit a WAMP integer")))
    }
    fn serialize_f32(self, v: f32) -> Result<Value, ValueError> {
        Ok(Value::Float(v.into()))
    }
    fn serialize_f64(self, v: f64) -> Result<Value, ValueError> {
        Ok(Value::Float(v))
    }
    fn serialize_char(self, v: char) -> Result<Value, ValueError> {
        Ok(Value::Str(v.to_string()))
    }
    fn serialize_str(self, v: &str) -> Result<Value, ValueError> {
        Ok(Value::Str(v.to_owned()))
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<Value, ValueError> {
        Ok(Value::Bin(Bytes::copy_from_slice(v)))
    }
    fn serialize_none(self) -> Result<Value, ValueError> {
        Ok(Value::Null)
    }
    fn serialize_some<T: Serialize + ?Sized>(self, v: &T) -> Result<Value, ValueError> {
        v.serialize(ValueSerializer)
    }
    fn serialize_unit(self) -> Result<Value, ValueError> {
        Ok(Value::Null)
    }
    fn serialize_unit_struct(self, _: &'static str) -> Result<Value, ValueError> {
        Ok(Value::Null)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        name: &'static str,
    ) -> Result<Value, ValueError> {
        Ok(Value::Str(name.to_owned()))
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        v: &T,
    ) -> Result<Value, ValueError> {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        name: &'static str,
        v: &T,
    ) -> Result<Value, ValueError> {
        Ok(variant(name, v.serialize(ValueSerializer)?))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<SeqBuilder, ValueError> {
        Ok(SeqBuilder(Vec::with_capacity(len.unwrap_or(0).min(1024))))
    }
    fn serialize_tuple(self, len: usize) -> Result<SeqBuilder, ValueError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<SeqBuilder, ValueError> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        name: &'static str,
        _: usize,
    ) -> Result<VariantBuilder, ValueError> {
        Ok(VariantBuilder {
            name,
            inner: Vec::new(),
            map: Dict::new(),
        })
    }
    fn serialize_map(self, _: Option<usize>) -> Result<MapBuilder, ValueError> {
        Ok(MapBuilder {
            map: Dict::new(),
            key: None,
        })
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<StructBuilder, ValueError> {
        Ok(StructBuilder {
            positional: self.args,
            list: Vec::new(),
            map: Dict::new(),
        })
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        name: &'static str,
        _: usize,
    ) -> Result<VariantBuilder, ValueError> {
        Ok(VariantBuilder {
            name,
            inner: Vec::new(),
            map: Dict::new(),
        })
    }
}

impl ser::SerializeSeq for SeqBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), ValueError> {
        self.0.push(v.serialize(ValueSerializer)?);
        Ok(())
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(Value::List(self.0))
    }
}

impl ser::SerializeTuple for SeqBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_element<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), ValueError> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<Value, ValueError> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for SeqBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), ValueError> {
        ser::SerializeSeq::serialize_element(self, v)
    }
    fn end(self) -> Result<Value, ValueError> {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleVariant for VariantBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), ValueError> {
        self.inner.push(v.serialize(ValueSerializer)?);
        Ok(())
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(variant(self.name, Value::List(self.inner)))
    }
}

impl ser::SerializeStructVariant for VariantBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), ValueError> {
        self.map
            .insert(key.to_owned(), v.serialize(ValueSerializer)?);
        Ok(())
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(variant(self.name, Value::Dict(self.map)))
    }
}

impl ser::SerializeMap for MapBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, k: &T) -> Result<(), ValueError> {
        match k.serialize(ValueSerializer)? {
            Value::Str(s) => self.key = Some(s),
            // Integer keys read as their decimal text, as serde_json writes them.
            Value::UInt(u) => self.key = Some(u.to_string()),
            Value::Int(i) => self.key = Some(i.to_string()),
            other => {
                return Err(ValueError(format!(
                    "dictionary keys must be strings, not {}",
                    other.type_name()
                )))
            }
        }
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, v: &T) -> Result<(), ValueError> {
        let k = self
            .key
            .take()
            .ok_or_else(|| ValueError("a map value without its key".into()))?;
        self.map.insert(k, v.serialize(ValueSerializer)?);
        Ok(())
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(Value::Dict(self.map))
    }
}

/// A struct: a dictionary, or (as the positional arguments themselves) a list.
struct StructBuilder {
    positional: bool,
    list: Vec<Value>,
    map: Dict,
}

impl ser::SerializeStruct for StructBuilder {
    type Ok = Value;
    type Error = ValueError;
    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        v: &T,
    ) -> Result<(), ValueError> {
        let v = v.serialize(ValueSerializer)?;
        if self.positional {
            self.list.push(v);
        } else {
            self.map.insert(key.to_owned(), v);
        }
        Ok(())
    }
    fn end(self) -> Result<Value, ValueError> {
        Ok(if self.positional {
            Value::List(self.list)
        } else {
            Value::Dict(self.map)
        })
    }
}

// ---- Deserializer from Value ----------------------------------------------------------------

impl<'de> IntoDeserializer<'de, ValueError> for Value {
    type Deserializer = Value;
    fn into_deserializer(self) -> Value {
        self
    }
}

fn unexpected(v: &Value) -> de::Unexpected<'_> {
    match v {
        Value::Null => de::Unexpected::Unit,
        Value::Bool(b) => de::Unexpected::Bool(*b),
        Value::Int(i) => de::Unexpected::Signed(*i),
        Value::UInt(u) => de::Unexpected::Unsigned(*u),
        Value::Float(f) => de::Unexpected::Float(*f),
        Value::Str(s) => de::Unexpected::Str(s),
        Value::Bin(b) => de::Unexpected::Bytes(b),
        Value::List(_) => de::Unexpected::Seq,
        Value::Dict(_) => de::Unexpected::Map,
    }
}

impl<'de> de::Deserializer<'de> for Value {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Null => v.visit_unit(),
            Value::Bool(b) => v.visit_bool(b),
            Value::Int(i) => v.visit_i64(i),
            Value::UInt(u) => v.visit_u64(u),
            Value::Float(f) => v.visit_f64(f),
            Value::Str(s) => v.visit_string(s),
            Value::Bin(b) => v.visit_byte_buf(b.to_vec()),
            Value::List(l) => v.visit_seq(de::value::SeqDeserializer::new(l.into_iter())),
            Value::Dict(d) => v.visit_map(de::value::MapDeserializer::new(d.into_iter())),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Null => v.visit_none(),
            other => v.visit_some(other),
        }
    }

    fn deserialize_f64<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ValueError> {
        // An integral float may arrive as an integer (JSON `1`): accept it where a float is
        // wanted.
        match self {
            Value::Int(i) => v.visit_f64(i as f64),
            Value::UInt(u) => v.visit_f64(u as f64),
            other => other.deserialize_any(v),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ValueError> {
        self.deserialize_f64(v)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ValueError> {
        match self {
            Value::Bin(b) => v.visit_byte_buf(b.to_vec()),
            Value::Str(s) => v.visit_byte_buf(s.into_bytes()),
            Value::List(l) => v.visit_seq(de::value::SeqDeserializer::new(l.into_iter())),
            other => Err(de::Error::invalid_type(unexpected(&other), &v)),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ValueError> {
        self.deserialize_bytes(v)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, ValueError> {
        v.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, ValueError> {
        match self {
            Value::Str(s) => v.visit_enum(s.into_deserializer()),
            Value::Dict(d) if d.len() == 1 => {
                let Some((name, inner)) = d.into_iter().next() else {
                    return Err(ValueError("an empty enum dictionary".into()));
                };
                v.visit_enum(EnumAccess { name, inner })
            }
            other => Err(de::Error::invalid_type(unexpected(&other), &v)),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 char str string
        unit unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

struct EnumAccess {
    name: String,
    inner: Value,
}

impl<'de> de::EnumAccess<'de> for EnumAccess {
    type Error = ValueError;
    type Variant = Value;
    fn variant_seed<S: de::DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<(S::Value, Value), ValueError> {
        let name: de::value::StringDeserializer<ValueError> = self.name.into_deserializer();
        Ok((seed.deserialize(name)?, self.inner))
    }
}

impl<'de> de::VariantAccess<'de> for Value {
    type Error = ValueError;
    fn unit_variant(self) -> Result<(), ValueError> {
        match self {
            Value::Null => Ok(()),
            other => Err(ValueError(format!(
                "a unit variant holds nothing, not {}",
                other.type_name()
            ))),
        }
    }
    fn newtype_variant_seed<S: de::DeserializeSeed<'de>>(
        self,
        seed: S,
    ) -> Result<S::Value, ValueError> {
        seed.deserialize(self)
    }
    fn tuple_variant<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, ValueError> {
        de::Deserializer::deserialize_seq(self, v)
    }
    fn struct_variant<V: Visitor<'de>>(
        self,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, ValueError> {
        de::Deserializer::deserialize_map(self, v)
    }
}

/// Positional arguments as a deserializer: the whole list for sequence-like types and structs,
/// the one argument for anything else.
struct Args(Vec<Value>);

impl Args {
    fn one(self) -> Result<Value, ValueError> {
        let n = self.0.len();
        let mut it = self.0.into_iter();
        match (it.next(), n) {
            (Some(v), 1) => Ok(v),
            (None, _) => Ok(Value::Null),
            _ => Err(ValueError(format!("expected 1 argument, got {n}"))),
        }
    }
    fn list(self) -> Value {
        Value::List(self.0)
    }
}

macro_rules! one_arg {
    ($($m:ident)*) => {
        $(
            fn $m<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ValueError> {
                self.one()?.$m(v)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for Args {
    type Error = ValueError;

    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ValueError> {
        self.list().deserialize_any(v)
    }
    fn deserialize_seq<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ValueError> {
        self.list().deserialize_seq(v)
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, _: usize, v: V) -> Result<V::Value, ValueError> {
        self.list().deserialize_seq(v)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: usize,
        v: V,
    ) -> Result<V::Value, ValueError> {
        self.list().deserialize_seq(v)
    }
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        _: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, ValueError> {
        // Positional: the fields in declaration order (derive's visit_seq).
        self.list().deserialize_seq(v)
    }
    fn deserialize_unit<V: Visitor<'de>>(self, v: V) -> Result<V::Value, ValueError> {
        v.visit_unit()
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        v: V,
    ) -> Result<V::Value, ValueError> {
        self.one()?.deserialize_newtype_struct(name, v)
    }
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, ValueError> {
        self.one()?.deserialize_enum(name, variants, v)
    }
    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        v: V,
    ) -> Result<V::Value, ValueError> {
        v.visit_unit()
    }

    one_arg! {
        deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64
        deserialize_i128 deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64
        deserialize_u128 deserialize_f32 deserialize_f64 deserialize_char deserialize_str
        deserialize_string deserialize_bytes deserialize_byte_buf deserialize_option
        deserialize_map deserialize_identifier deserialize_ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Point {
        x: i64,
        y: f64,
        label: Option<String>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Dot,
        Circle(f64),
        Rect { w: u32, h: u32 },
        Pair(i8, i8),
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Blob(#[serde(with = "bytes_as_bin")] Vec<u8>);

    mod bytes_as_bin {
        pub fn serialize<S: serde::Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(b)
        }
        pub fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
            struct V;
            impl serde::de::Visitor<'_> for V {
                type Value = Vec<u8>;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                    Ok(v)
                }
            }
            d.deserialize_byte_buf(V)
        }
    }

    #[test]
    fn values_round_trip_through_serde_types() {
        let p = Point {
            x: -3,
            y: 2.5,
            label: Some("é".into()),
        };
        let v = to_value(&p).unwrap();
        let mut d = Dict::new();
        d.insert("x".into(), Value::Int(-3));
        d.insert("y".into(), Value::Float(2.5));
        d.insert("label".into(), Value::Str("é".into()));
        assert_eq!(v, Value::Dict(d));
        assert_eq!(from_value::<Point>(v).unwrap(), p);
        for s in [
            Shape::Dot,
            Shape::Circle(1.5),
            Shape::Rect { w: 2, h: 3 },
            Shape::Pair(-1, 1),
        ] {
            let v = to_value(&s).unwrap();
            assert_eq!(from_value::<Shape>(v).unwrap(), s);
        }
        assert_eq!(to_value(&Shape::Dot).unwrap(), Value::Str("Dot".into()));
        let b = Blob(vec![0, 255]);
        assert_eq!(
            to_value(&b).unwrap(),
            Value::Bin(Bytes::from_static(b"\x00\xff"))
        );
        assert_eq!(from_value::<Blob>(to_value(&b).unwrap()).unwrap(), b);
        assert_eq!(to_value(&u64::MAX).unwrap(), Value::UInt(u64::MAX));
        assert_eq!(from_value::<u64>(Value::UInt(u64::MAX)).unwrap(), u64::MAX);
        assert_eq!(from_value::<f64>(Value::UInt(3)).unwrap(), 3.0);
        let m: std::collections::HashMap<u32, bool> = [(7, true)].into_iter().collect();
        assert_eq!(
            to_value(&m).unwrap(),
            Value::Dict([("7".to_owned(), Value::Bool(true))].into_iter().collect())
        );
        // A Value inside a serde type stays as it is.
        let nested = (Value::Bin(Bytes::from_static(b"x")), 1u8);
        assert_eq!(
            to_value(&nested).unwrap(),
            Value::List(vec![Value::Bin(Bytes::from_static(b"x")), Value::UInt(1)])
        );
    }

    #[test]
    fn args_and_kwargs_rules() {
        assert_eq!(
            to_args(&(1u8, "a")).unwrap(),
            vec![Value::UInt(1), Value::Str("a".into())]
        );
        let p = Point {
            x: 1,
            y: 0.5,
            label: None,
        };
        assert_eq!(
            to_args(&p).unwrap(),
            vec![Value::UInt(1), Value::Float(0.5), Value::Null],
            "a named struct: its fields in order"
        );
        assert_eq!(to_args(&()).unwrap(), Vec::<Value>::new());
        assert_eq!(to_args(&5i32).unwrap(), vec![Value::UInt(5)]);
        assert_eq!(
            to_args(&vec![1, 2]).unwrap(),
            vec![Value::UInt(1), Value::UInt(2)]
        );

        assert_eq!(
            from_args::<(u8, String)>(to_args(&(1u8, "a")).unwrap()).unwrap(),
            (1, "a".into())
        );
        assert_eq!(from_args::<Point>(to_args(&p).unwrap()).unwrap(), p);
        assert_eq!(from_args::<i64>(vec![Value::Int(-4)]).unwrap(), -4);
        assert_eq!(from_args::<Vec<u8>>(vec![Value::UInt(1)]).unwrap(), vec![1]);
        assert_eq!(from_args::<()>(vec![]).unwrap(), ());
        assert_eq!(from_args::<Option<u8>>(vec![]).unwrap(), None);
        let e = from_args::<i64>(vec![Value::UInt(1), Value::UInt(2)]).unwrap_err();
        assert!(e.0.contains("expected 1 argument, got 2"), "{e}");
        let e = from_args::<(u8, u8)>(vec![Value::Str("x".into())]).unwrap_err();
        assert!(!e.0.is_empty());

        let kw = to_kwargs(&p).unwrap();
        assert_eq!(kw.get("x"), Some(&Value::UInt(1)));
        assert_eq!(from_kwargs::<Point>(kw).unwrap(), p);
        assert!(to_kwargs(&(1, 2)).is_err());
        assert_eq!(to_kwargs(&()).unwrap(), Dict::new());
        let e = from_kwargs::<Point>(Dict::new()).unwrap_err();
        assert!(e.0.contains("missing field"), "{e}");
    }
}
