//! Typed options and details dictionaries.
//!
//! Each struct names the keys the router reads, with their WAMP types; a key of the wrong type
//! is a decoding error that names the key. Every key a struct does not know is kept, untouched,
//! in its `extra` map, so nothing a client sent is lost when the router forwards it. A `null`
//! value is treated as an absent key.

use super::error::DecodeError;
use super::uri::MatchPolicy;
use super::value::{Dict, Value};
use super::Uri;
use super::MAX_ID;

/// The keys of an options dictionary the router does not know, kept verbatim.
///
/// Reads and writes like the [`Dict`] it derefs to. Most options dictionaries on the wire have
/// no unknown keys, and an empty `Extra` holds no map at all, so making and dropping one costs
/// nothing (dropping even an empty `BTreeMap` walks its iterator: ~80 instructions, four times
/// per routed call). A map is allocated on the first mutable access (even a `remove` or
/// `get_mut` on an empty one): read through `&`.
#[derive(Clone, Default)]
pub struct Extra(Option<Box<Dict>>);

static EMPTY_DICT: Dict = Dict::new();

impl Extra {
    /// An empty set of extra keys.
    pub const fn new() -> Self {
        Extra(None)
    }

    /// Takes the keys out, leaving this empty.
    pub fn take(&mut self) -> Dict {
        self.0.take().map(|d| *d).unwrap_or_default()
    }
}

impl std::ops::Deref for Extra {
    type Target = Dict;
    fn deref(&self) -> &Dict {
        self.0.as_deref().unwrap_or(&EMPTY_DICT)
    }
}

impl std::ops::DerefMut for Extra {
    fn deref_mut(&mut self) -> &mut Dict {
        self.0.get_or_insert_with(Default::default)
    }
}

impl From<Dict> for Extra {
    fn from(d: Dict) -> Self {
        if d.is_empty() {
            Extra(None)
        } else {
            Extra(Some(Box::new(d)))
        }
    }
}

impl From<Extra> for Dict {
    fn from(mut e: Extra) -> Self {
        e.take()
    }
}

impl PartialEq for Extra {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl std::fmt::Debug for Extra {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl<'a> IntoIterator for &'a Extra {
    type Item = (&'a String, &'a Value);
    type IntoIter = std::collections::btree_map::Iter<'a, String, Value>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl FromIterator<(String, Value)> for Extra {
    fn from_iter<I: IntoIterator<Item = (String, Value)>>(iter: I) -> Self {
        Extra::from(iter.into_iter().collect::<Dict>())
    }
}

/// A borrowed view of one known option, handed to the serializers when encoding.
#[derive(Debug, Clone, Copy)]
pub enum FieldRef<'a> {
    Bool(bool),
    UInt(u64),
    Str(&'a str),
    Ids(&'a [u64]),
    Strs(&'a [String]),
    Value(&'a Value),
}

/// A type that can appear as the value of a known option key.
pub trait OptionField: Sized {
    /// What the wire must carry, for error messages.
    const EXPECTED: &'static str;
    fn from_value(v: Value) -> Option<Self>;
    fn field_ref(&self) -> FieldRef<'_>;
}

impl OptionField for bool {
    const EXPECTED: &'static str = "bool";
    fn from_value(v: Value) -> Option<Self> {
        v.as_bool()
    }
    fn field_ref(&self) -> FieldRef<'_> {
        FieldRef::Bool(*self)
    }
}

/// A non-negative integer option (e.g. `timeout`), also accepting a whole-number float.
impl OptionField for u64 {
    const EXPECTED: &'static str = "non-negative integer";
    fn from_value(v: Value) -> Option<Self> {
        v.as_u64()
    }
    fn field_ref(&self) -> FieldRef<'_> {
        FieldRef::UInt(*self)
    }
}

/// A WAMP ID option (`publisher`, `caller`, …): an integer in `[0, 2^53]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdField(pub u64);

impl OptionField for IdField {
    const EXPECTED: &'static str = "ID (integer in [0, 2^53])";
    fn from_value(v: Value) -> Option<Self> {
        v.as_id().map(IdField)
    }
    fn field_ref(&self) -> FieldRef<'_> {
        FieldRef::UInt(self.0)
    }
}

impl OptionField for String {
    const EXPECTED: &'static str = "string";
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    fn field_ref(&self) -> FieldRef<'_> {
        FieldRef::Str(self)
    }
}

impl OptionField for Uri {
    const EXPECTED: &'static str = "URI string";
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Str(s) => Some(Uri::from(s)),
            _ => None,
        }
    }
    fn field_ref(&self) -> FieldRef<'_> {
        FieldRef::Str(self.as_str())
    }
}

/// A list of session IDs (`exclude`, `eligible`).
impl OptionField for Vec<u64> {
    const EXPECTED: &'static str = "list of IDs";
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::List(l) => l.iter().map(|x| x.as_id()).collect(),
            _ => None,
        }
    }
    fn field_ref(&self) -> FieldRef<'_> {
        FieldRef::Ids(self)
    }
}

/// A list of strings (`exclude_authid`, `eligible_authrole`, …).
impl OptionField for Vec<String> {
    const EXPECTED: &'static str = "list of strings";
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::List(l) => l
                .into_iter()
                .map(|x| match x {
                    Value::Str(s) => Some(s),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }
    fn field_ref(&self) -> FieldRef<'_> {
        FieldRef::Strs(self)
    }
}

/// A dictionary-valued known option (`roles`, `authextra`), stored as a [`Value::Dict`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DictField(pub Value);

impl DictField {
    pub fn dict(&self) -> Option<&Dict> {
        self.0.as_dict()
    }
}

impl OptionField for DictField {
    const EXPECTED: &'static str = "dict";
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Dict(_) => Some(DictField(v)),
            _ => None,
        }
    }
    fn field_ref(&self) -> FieldRef<'_> {
        FieldRef::Value(&self.0)
    }
}

/// `forward_for`: a list of dicts (router-to-router links).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ForwardFor(pub Value);

impl OptionField for ForwardFor {
    const EXPECTED: &'static str = "list of dicts";
    fn from_value(v: Value) -> Option<Self> {
        match &v {
            Value::List(l) if l.iter().all(|x| matches!(x, Value::Dict(_))) => Some(ForwardFor(v)),
            _ => None,
        }
    }
    fn field_ref(&self) -> FieldRef<'_> {
        FieldRef::Value(&self.0)
    }
}

impl OptionField for MatchPolicy {
    const EXPECTED: &'static str = "one of \"exact\", \"prefix\", \"wildcard\"";
    fn from_value(v: Value) -> Option<Self> {
        v.as_str().and_then(|s| s.parse().ok())
    }
    fn field_ref(&self) -> FieldRef<'_> {
        FieldRef::Str(self.as_str())
    }
}

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident, $expected:literal { $($(#[$vm:meta])* $variant:ident = $wire:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub enum $name { $($(#[$vm])* $variant,)* }
        impl $name {
            /// The wire spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire,)* }
            }
            /// Parses the wire spelling.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($wire => Some($name::$variant),)* _ => None }
            }
        }
        impl OptionField for $name {
            const EXPECTED: &'static str = $expected;
            fn from_value(v: Value) -> Option<Self> {
                v.as_str().and_then($name::parse)
            }
            fn field_ref(&self) -> FieldRef<'_> {
                FieldRef::Str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// Shared registration invocation policy (`REGISTER.Options.invoke`).
    InvokePolicy, "one of \"single\", \"roundrobin\", \"random\", \"first\", \"last\"" {
        #[default] Single = "single",
        RoundRobin = "roundrobin",
        Random = "random",
        First = "first",
        Last = "last",
    }
}

string_enum! {
    /// Call cancellation mode (`CANCEL.Options.mode`, `INTERRUPT.Options.mode`).
    CancelMode, "one of \"skip\", \"kill\", \"killnowait\"" {
        Skip = "skip",
        #[default] Kill = "kill",
        KillNoWait = "killnowait",
    }
}

/// End-to-end encryption algorithm (`enc_algo`): the known schemes or a custom `x_…` one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncAlgo(pub String);

impl OptionField for EncAlgo {
    const EXPECTED: &'static str = "one of \"cryptobox\", \"mqtt\", \"xbr\" or \"x_…\"";
    fn from_value(v: Value) -> Option<Self> {
        match v {
            Value::Str(s)
                if matches!(s.as_str(), "cryptobox" | "mqtt" | "xbr") || s.starts_with("x_") =>
            {
                Some(EncAlgo(s))
            }
            _ => None,
        }
    }
    fn field_ref(&self) -> FieldRef<'_> {
        FieldRef::Str(&self.0)
    }
}

/// Implemented by every typed options/details struct.
pub trait Options: Default {
    /// Takes the known keys out of `dict`, type-checks them and keeps the rest in `extra`.
    fn from_dict(dict: Dict) -> Result<Self, DecodeError>;
    /// The number of known keys present.
    fn known_len(&self) -> usize;
    /// Visits the known keys present, in a fixed order.
    fn for_each_known(&self, f: &mut dyn FnMut(&'static str, FieldRef<'_>));
    /// The keys this struct does not know.
    fn extra(&self) -> &Dict;
    /// Total number of entries when encoded.
    fn len(&self) -> usize {
        self.known_len() + self.extra().len()
    }
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The whole dictionary as a generic value (for the meta API and tests; not the hot path).
    fn to_dict(&self) -> Dict {
        let mut d = self.extra().clone();
        self.for_each_known(&mut |k, v| {
            d.insert(k.to_owned(), field_to_value(v));
        });
        d
    }
}

/// Converts a borrowed known option into an owned value.
pub fn field_to_value(f: FieldRef<'_>) -> Value {
    match f {
        FieldRef::Bool(b) => Value::Bool(b),
        FieldRef::UInt(u) => Value::UInt(u),
        FieldRef::Str(s) => Value::Str(s.to_owned()),
        FieldRef::Ids(ids) => Value::List(ids.iter().map(|i| Value::UInt(*i)).collect()),
        FieldRef::Strs(ss) => Value::List(ss.iter().map(|s| Value::Str(s.clone())).collect()),
        FieldRef::Value(v) => v.clone(),
    }
}

/// A plain dictionary (ABORT/GOODBYE details, ERROR details, …) is an options struct with no
/// known keys.
impl Options for Dict {
    fn from_dict(dict: Dict) -> Result<Self, DecodeError> {
        Ok(dict)
    }
    fn known_len(&self) -> usize {
        0
    }
    fn for_each_known(&self, _f: &mut dyn FnMut(&'static str, FieldRef<'_>)) {}
    fn extra(&self) -> &Dict {
        self
    }
}

macro_rules! options {
    ($(#[$m:meta])* $name:ident { $($(#[$fm:meta])* $field:ident : $ty:ty = $key:literal),* $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Default, PartialEq)]
        pub struct $name {
            $($(#[$fm])* pub $field: Option<$ty>,)*
            /// Keys not known to the router, kept verbatim.
            pub extra: Extra,
        }
        impl Options for $name {
            #[inline]
            fn from_dict(mut dict: Dict) -> Result<Self, DecodeError> {
                let mut o = Self::default();
                if dict.is_empty() {
                    return Ok(o);
                }
                $(
                    match dict.remove($key) {
                        None | Some(Value::Null) => {}
                        Some(v) => {
                            o.$field = Some(<$ty as OptionField>::from_value(v).ok_or_else(|| {
                                DecodeError::BadOption {
                                    key: $key.to_owned(),
                                    expected: <$ty as OptionField>::EXPECTED,
                                }
                            })?);
                        }
                    }
                )*
                o.extra = Extra::from(dict);
                Ok(o)
            }
            fn known_len(&self) -> usize {
                0 $(+ self.$field.is_some() as usize)*
            }
            fn for_each_known(&self, f: &mut dyn FnMut(&'static str, FieldRef<'_>)) {
                $(if let Some(v) = &self.$field { f($key, v.field_ref()); })*
            }
            fn extra(&self) -> &Dict {
                &self.extra
            }
        }
    };
}

options! {
    /// `HELLO.Details`.
    HelloDetails {
        /// The roles the client announces, with their features.
        roles: DictField = "roles",
        authmethods: Vec<String> = "authmethods",
        authid: String = "authid",
        authrole: String = "authrole",
        authextra: DictField = "authextra",
        agent: String = "agent",
    }
}

options! {
    /// `WELCOME.Details`.
    WelcomeDetails {
        roles: DictField = "roles",
        realm: String = "realm",
        authid: String = "authid",
        authrole: String = "authrole",
        authmethod: String = "authmethod",
        authprovider: String = "authprovider",
        authextra: DictField = "authextra",
        agent: String = "agent",
    }
}

options! {
    /// `PUBLISH.Options`.
    PublishOptions {
        acknowledge: bool = "acknowledge",
        exclude_me: bool = "exclude_me",
        exclude: Vec<u64> = "exclude",
        exclude_authid: Vec<String> = "exclude_authid",
        exclude_authrole: Vec<String> = "exclude_authrole",
        eligible: Vec<u64> = "eligible",
        eligible_authid: Vec<String> = "eligible_authid",
        eligible_authrole: Vec<String> = "eligible_authrole",
        disclose_me: bool = "disclose_me",
        retain: bool = "retain",
        transaction_hash: String = "transaction_hash",
        forward_for: ForwardFor = "forward_for",
        enc_algo: EncAlgo = "enc_algo",
        enc_serializer: String = "enc_serializer",
        ppt_scheme: String = "ppt_scheme",
        ppt_serializer: String = "ppt_serializer",
        ppt_cipher: String = "ppt_cipher",
        ppt_keyid: String = "ppt_keyid",
    }
}

impl PublishOptions {
    /// `exclude_<key>`: subscribers whose session detail `key` is one of `values` do not
    /// receive the event (nexus's extension of the spec's `exclude_authid` / `_authrole`; the
    /// router also applies the typed lists for those two keys).
    pub fn exclude_detail(mut self, key: &str, values: &[&str]) -> Self {
        self.extra
            .insert(format!("exclude_{key}"), str_list(values));
        self
    }

    /// `eligible_<key>`: only subscribers whose session detail `key` is one of `values`
    /// receive the event (every eligible list given must match).
    pub fn eligible_detail(mut self, key: &str, values: &[&str]) -> Self {
        self.extra
            .insert(format!("eligible_{key}"), str_list(values));
        self
    }
}

fn str_list(values: &[&str]) -> Value {
    Value::List(values.iter().map(|v| Value::Str((*v).to_owned())).collect())
}

options! {
    /// `SUBSCRIBE.Options`.
    SubscribeOptions {
        match_policy: MatchPolicy = "match",
        get_retained: bool = "get_retained",
        forward_for: ForwardFor = "forward_for",
    }
}

options! {
    /// `EVENT.Details`.
    EventDetails {
        publisher: IdField = "publisher",
        publisher_authid: String = "publisher_authid",
        publisher_authrole: String = "publisher_authrole",
        /// The concrete topic, for pattern-based subscriptions.
        topic: Uri = "topic",
        retained: bool = "retained",
        transaction_hash: String = "transaction_hash",
        x_acknowledged_delivery: bool = "x_acknowledged_delivery",
        forward_for: ForwardFor = "forward_for",
        enc_algo: EncAlgo = "enc_algo",
        enc_serializer: String = "enc_serializer",
        ppt_scheme: String = "ppt_scheme",
        ppt_serializer: String = "ppt_serializer",
        ppt_cipher: String = "ppt_cipher",
        ppt_keyid: String = "ppt_keyid",
        /// The publisher's trust level (publication trust levels), set by the router.
        trustlevel: u64 = "trustlevel",
    }
}

options! {
    /// `CALL.Options`.
    CallOptions {
        /// Call timeout in milliseconds (0 = none).
        timeout: u64 = "timeout",
        receive_progress: bool = "receive_progress",
        disclose_me: bool = "disclose_me",
        /// Progressive call invocations: more CALL messages with the same request ID follow.
        progress: bool = "progress",
        forward_for: ForwardFor = "forward_for",
        ppt_scheme: String = "ppt_scheme",
        ppt_serializer: String = "ppt_serializer",
        ppt_cipher: String = "ppt_cipher",
        ppt_keyid: String = "ppt_keyid",
    }
}

options! {
    /// `CANCEL.Options`.
    CancelOptions {
        mode: CancelMode = "mode",
    }
}

options! {
    /// `RESULT.Details`.
    ResultDetails {
        progress: bool = "progress",
        ppt_scheme: String = "ppt_scheme",
        ppt_serializer: String = "ppt_serializer",
        ppt_cipher: String = "ppt_cipher",
        ppt_keyid: String = "ppt_keyid",
    }
}

options! {
    /// `REGISTER.Options`.
    RegisterOptions {
        match_policy: MatchPolicy = "match",
        invoke: InvokePolicy = "invoke",
        disclose_caller: bool = "disclose_caller",
        force_reregister: bool = "force_reregister",
        forward_for: ForwardFor = "forward_for",
    }
}

options! {
    /// `INVOCATION.Details`.
    InvocationDetails {
        caller: IdField = "caller",
        caller_authid: String = "caller_authid",
        caller_authrole: String = "caller_authrole",
        /// The concrete procedure, for pattern-based registrations.
        procedure: Uri = "procedure",
        receive_progress: bool = "receive_progress",
        progress: bool = "progress",
        timeout: u64 = "timeout",
        forward_for: ForwardFor = "forward_for",
        ppt_scheme: String = "ppt_scheme",
        ppt_serializer: String = "ppt_serializer",
        ppt_cipher: String = "ppt_cipher",
        ppt_keyid: String = "ppt_keyid",
        /// The caller's trust level (call trust levels), set by the router.
        trustlevel: u64 = "trustlevel",
    }
}

options! {
    /// `INTERRUPT.Options`.
    InterruptOptions {
        mode: CancelMode = "mode",
        reason: String = "reason",
    }
}

options! {
    /// `YIELD.Options`.
    YieldOptions {
        progress: bool = "progress",
        ppt_scheme: String = "ppt_scheme",
        ppt_serializer: String = "ppt_serializer",
        ppt_cipher: String = "ppt_cipher",
        ppt_keyid: String = "ppt_keyid",
    }
}

/// Checks an ID is in WAMP's range.
pub fn valid_id(id: u64) -> bool {
    id <= MAX_ID
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extra_holds_no_map_unless_a_key_is_unknown() {
        let mut only_known = Dict::new();
        only_known.insert("timeout".into(), Value::UInt(5));
        let o = CallOptions::from_dict(only_known).expect("valid");
        assert_eq!(o.timeout, Some(5));
        assert!(o.extra.0.is_none(), "no map kept for no unknown keys");
        assert_eq!(o.extra, Extra::default());

        let mut with_unknown = Dict::new();
        with_unknown.insert("timeout".into(), Value::UInt(5));
        with_unknown.insert("x_custom".into(), Value::Bool(true));
        let mut o = CallOptions::from_dict(with_unknown).expect("valid");
        assert_eq!(o.extra.len(), 1);
        assert_eq!(o.extra.get("x_custom"), Some(&Value::Bool(true)));
        assert_eq!(o.to_dict().len(), 2);

        // Written through like a Dict; emptied by take.
        o.extra.insert("y".into(), Value::UInt(1));
        assert_eq!((&o.extra).into_iter().count(), 2);
        let taken = o.extra.take();
        assert_eq!(taken.len(), 2);
        assert!(o.extra.is_empty() && o.extra.0.is_none());
        assert_eq!(
            Extra::from(taken.clone()),
            taken.into_iter().collect::<Extra>()
        );
    }
}
