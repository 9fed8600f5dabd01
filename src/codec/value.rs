//! The generic WAMP value: what a dictionary entry, an argument or an option holds.
//!
//! Both serializers decode into and encode from [`Value`]. Binary data is a first-class variant
//! ([`Value::Bin`]): MessagePack carries it natively, JSON carries it as a string whose first
//! character is `\0` followed by the Base64 of the bytes (WAMP's rule), so a value survives a
//! trip through either serializer into the other.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::fmt;

/// A WAMP dictionary. Ordered by key so encoding is deterministic.
pub type Dict = BTreeMap<String, Value>;

/// A dynamically typed WAMP value.
///
/// Integers are normalised: non-negative integers are always [`Value::UInt`], negative ones
/// [`Value::Int`], so equality does not depend on which serializer produced the value.
#[derive(Clone, PartialEq, Default)]
pub enum Value {
    #[default]
    Null,
    Bool(bool),
    /// A negative integer.
    Int(i64),
    /// A non-negative integer.
    UInt(u64),
    Float(f64),
    Str(String),
    /// Binary data (MessagePack `bin`, JSON `"\0<base64>"`).
    Bin(Bytes),
    List(Vec<Value>),
    Dict(Dict),
}

impl Value {
    /// Builds an integer value, normalising the sign as the type documents.
    pub fn int(i: i64) -> Value {
        if i < 0 {
            Value::Int(i)
        } else {
            Value::UInt(i as u64)
        }
    }

    /// The name of this value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::UInt(_) => "integer",
            Value::Float(_) => "float",
            Value::Str(_) => "string",
            Value::Bin(_) => "binary",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// A non-negative integer, accepting a whole-number float (JavaScript clients send those).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::UInt(u) => Some(*u),
            Value::Float(f)
                if f.fract() == 0.0 && *f >= 0.0 && *f <= 18_446_744_073_709_549_568.0 =>
            {
                Some(*f as u64)
            }
            _ => None,
        }
    }

    /// A WAMP ID: an integer in `[0, 2^53]`, or a whole-number float in that range.
    pub fn as_id(&self) -> Option<u64> {
        self.as_u64().filter(|v| *v <= crate::codec::MAX_ID)
    }

    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    pub fn as_dict(&self) -> Option<&Dict> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("null"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::UInt(u) => write!(f, "{u}"),
            Value::Float(x) => write!(f, "{x:?}"),
            Value::Str(s) => write!(f, "{s:?}"),
            Value::Bin(b) => write!(f, "bin({} bytes)", b.len()),
            Value::List(l) => f.debug_list().entries(l).finish(),
            Value::Dict(d) => f.debug_map().entries(d).finish(),
        }
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<u64> for Value {
    fn from(u: u64) -> Self {
        Value::UInt(u)
    }
}
impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::int(i)
    }
}
impl From<f64> for Value {
    fn from(x: f64) -> Self {
        Value::Float(x)
    }
}
impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_owned())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}
impl From<Bytes> for Value {
    fn from(b: Bytes) -> Self {
        Value::Bin(b)
    }
}
impl From<Vec<Value>> for Value {
    fn from(l: Vec<Value>) -> Self {
        Value::List(l)
    }
}
impl From<Dict> for Value {
    fn from(d: Dict) -> Self {
        Value::Dict(d)
    }
}
