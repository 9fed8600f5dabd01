//! The WAMP side of the lean client: joining a realm, the messages the scenarios send, and the
//! timestamp every measured message carries.
//!
//! A measured PUBLISH or CALL carries `Arguments = [sent_ns, seq, pad]`: `sent_ns` is the
//! loadgen's monotonic clock ([`crate::clock::now_ns`]) when the message was sent (or was due,
//! in open loop), `seq` a per-sender sequence number and `pad` a binary that brings the
//! payload to the requested size. The router forwards the arguments untouched (EVENT, and the
//! callee echoes them in YIELD, so RESULT), and the receiver reads the two integers straight
//! from the encoded bytes ([`read_stamp`]) without decoding the rest.

use anyhow::{bail, Result};
use bytes::Bytes;
use switchyard::codec::{
    Call, DictField, Goodbye, Hello, HelloDetails, Id, Message, Payload, Publish, PublishOptions,
    Register, RegisterOptions, Serializer, Subscribe, Uri, Value,
};

use switchyard::client::transport::{Reader, Writer};

/// The roles the load generator announces.
fn roles() -> Value {
    let mut roles = switchyard::codec::Dict::new();
    for role in ["publisher", "subscriber", "caller", "callee"] {
        roles.insert(role.into(), Value::Dict(Default::default()));
    }
    Value::Dict(roles)
}

pub fn hello(realm: &str) -> Message {
    Message::Hello(Box::new(Hello {
        realm: Uri::from(realm),
        details: HelloDetails {
            roles: Some(DictField(roles())),
            agent: Some("switchyard-loadgen".into()),
            ..Default::default()
        },
    }))
}

pub fn goodbye() -> Message {
    Message::Goodbye(Goodbye {
        details: Default::default(),
        reason: Uri::from("wamp.close.close_realm"),
    })
}

/// Sends HELLO and waits for WELCOME; returns the session ID.
pub async fn join(r: &mut Reader, w: &mut Writer, realm: &str) -> Result<Id> {
    w.send(&hello(realm)).await?;
    match r.message().await? {
        Some(Message::Welcome(wel)) => Ok(wel.session),
        Some(Message::Abort(a)) => bail!("router refused the session: {}", a.reason),
        Some(other) => bail!("expected WELCOME, got {}", other.name()),
        None => bail!("connection closed before WELCOME"),
    }
}

/// Sends SUBSCRIBE and waits for SUBSCRIBED; returns the subscription ID.
pub async fn subscribe(r: &mut Reader, w: &mut Writer, topic: &str) -> Result<Id> {
    subscribe_with(r, w, topic, switchyard::codec::uri::MatchPolicy::Exact).await
}

/// Sends SUBSCRIBE with a match policy and waits for SUBSCRIBED.
pub async fn subscribe_with(
    r: &mut Reader,
    w: &mut Writer,
    topic: &str,
    policy: switchyard::codec::uri::MatchPolicy,
) -> Result<Id> {
    let options = switchyard::codec::SubscribeOptions {
        match_policy: (policy != switchyard::codec::uri::MatchPolicy::Exact).then_some(policy),
        ..Default::default()
    };
    w.send(&Message::Subscribe(Subscribe {
        request: 1,
        options,
        topic: Uri::from(topic),
    }))
    .await?;
    match r.message().await? {
        Some(Message::Subscribed(s)) => Ok(s.subscription),
        Some(Message::Error(e)) => bail!("SUBSCRIBE {topic} refused: {}", e.error),
        Some(other) => bail!("expected SUBSCRIBED, got {}", other.name()),
        None => bail!("connection closed before SUBSCRIBED"),
    }
}

/// Sends REGISTER and waits for REGISTERED; `shared` asks for round-robin invocation.
pub async fn register(r: &mut Reader, w: &mut Writer, procedure: &str, shared: bool) -> Result<Id> {
    let options = RegisterOptions {
        invoke: shared.then_some(switchyard::codec::InvokePolicy::RoundRobin),
        ..Default::default()
    };
    w.send(&Message::Register(Register {
        request: 1,
        options,
        procedure: Uri::from(procedure),
    }))
    .await?;
    match r.message().await? {
        Some(Message::Registered(s)) => Ok(s.registration),
        Some(Message::Error(e)) => bail!("REGISTER {procedure} refused: {}", e.error),
        Some(other) => bail!("expected REGISTERED, got {}", other.name()),
        None => bail!("connection closed before REGISTERED"),
    }
}

/// Asks `wamp.registration.match` until `procedure` has a registration (a callee on another
/// node of a cluster: its registration reaches this node a moment after REGISTERED), at most
/// `limit`.
pub async fn wait_callable(
    r: &mut Reader,
    w: &mut Writer,
    procedure: &str,
    limit: std::time::Duration,
) -> Result<()> {
    let deadline = std::time::Instant::now() + limit;
    let meta = Uri::from("wamp.registration.match");
    for request in 1u64.. {
        let args = Payload::args(vec![Value::Str(procedure.to_owned())]);
        w.send(&call(request, &meta, args)).await?;
        match r.message().await? {
            Some(Message::Result(res)) => {
                let found = res
                    .payload
                    .args_values()
                    .ok()
                    .flatten()
                    .is_some_and(|a| a.first().is_some_and(|v| *v != Value::Null));
                if found {
                    return Ok(());
                }
            }
            Some(Message::Error(e)) => bail!("wamp.registration.match refused: {}", e.error),
            Some(other) => bail!("expected RESULT, got {}", other.name()),
            None => bail!("connection closed while waiting for {procedure}"),
        }
        if std::time::Instant::now() >= deadline {
            bail!("{procedure} has no registration on this router after {limit:?}");
        }
        glommio::timer::sleep(std::time::Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The padding that brings a stamped payload to about `size` bytes.
pub fn pad_for(size: usize) -> Bytes {
    Bytes::from(vec![0x5a; size.saturating_sub(16)])
}

/// `[sent_ns, seq, pad]`.
pub fn stamped(sent_ns: u64, seq: u64, pad: &Bytes) -> Payload {
    Payload::args(vec![
        Value::UInt(sent_ns),
        Value::UInt(seq),
        Value::Bin(pad.clone()),
    ])
}

pub fn publish(request: Id, topic: &Uri, acknowledge: bool, payload: Payload) -> Message {
    Message::Publish(Box::new(Publish {
        request,
        options: PublishOptions {
            acknowledge: acknowledge.then_some(true),
            ..Default::default()
        },
        topic: topic.clone(),
        payload,
    }))
}

pub fn call(request: Id, procedure: &Uri, payload: Payload) -> Message {
    Message::Call(Box::new(Call {
        request,
        options: Default::default(),
        procedure: procedure.clone(),
        payload,
    }))
}

/// `(sent_ns, seq)` from a stamped payload, read from the encoded arguments without decoding
/// the rest. None if the payload is not one of ours.
pub fn read_stamp(p: &Payload) -> Option<(u64, u64)> {
    match p {
        Payload::Encoded(e) => {
            let args = e.args.as_ref()?;
            match e.format {
                Serializer::MsgPack => msgpack_two_uints(args),
                Serializer::Cbor => cbor_two_uints(args),
                Serializer::Json => json_two_uints(args),
                // No fast path: through values.
                Serializer::Ubjson | Serializer::Bjdata => {
                    let a = p.args_values().ok()??;
                    Some((a.first()?.as_u64()?, a.get(1)?.as_u64()?))
                }
            }
        }
        Payload::Values { args: Some(a), .. } => Some((a.first()?.as_u64()?, a.get(1)?.as_u64()?)),
        _ => None,
    }
}

/// [`msgpack_event_stamp`] for a CBOR EVENT: `[36, Subscription, Publication, {}, Arguments,
/// …]` with empty details, read without decoding the message.
#[inline]
pub fn cbor_event_stamp(frame: &[u8]) -> Option<Option<(u64, u64)>> {
    event_stamp(
        frame,
        &EventShape {
            // A 4- to 6-element array; 36 does not fit a head's low bits: a one-octet integer.
            array_of: |b| (0x84..=0x86).contains(&b).then(|| b - 0x80),
            code: &[0x18, 36],
            empty_map: 0xa0,
            uint: cbor_uint,
            two_uints: cbor_two_uints,
        },
    )
}

/// How one serializer writes the parts of an EVENT that [`event_stamp`] reads.
struct EventShape {
    /// The element count of an array head octet (4 to 6 elements), if it is one.
    array_of: fn(u8) -> Option<u8>,
    /// The message code 36 as encoded.
    code: &'static [u8],
    /// An empty map's encoding (one octet).
    empty_map: u8,
    uint: UintReader,
    two_uints: fn(&[u8]) -> Option<(u64, u64)>,
}

/// Reads one unsigned integer: its value and the octets after it.
type UintReader = fn(&[u8]) -> Option<(u64, &[u8])>;

/// `[36, Subscription, Publication, {}, Arguments, …]` read in place (see
/// [`msgpack_event_stamp`]).
#[inline]
fn event_stamp(frame: &[u8], shape: &EventShape) -> Option<Option<(u64, u64)>> {
    let len = (shape.array_of)(*frame.first()?)?;
    let rest = frame.get(1..)?.strip_prefix(shape.code)?;
    let (_subscription, rest) = (shape.uint)(rest)?;
    let (_publication, rest) = (shape.uint)(rest)?;
    if *rest.first()? != shape.empty_map {
        return None;
    }
    if len == 4 {
        return Some(None);
    }
    Some((shape.two_uints)(&rest[1..]))
}

/// The first two elements of a CBOR array, if both are unsigned integers.
#[inline]
fn cbor_two_uints(b: &[u8]) -> Option<(u64, u64)> {
    // An array head (major type 4) of any length form, then two major-type-0 integers.
    let skip = match *b.first()? {
        0x80..=0x97 | 0x9f => 1,
        0x98 => 2,
        0x99 => 3,
        0x9a => 5,
        0x9b => 9,
        _ => return None,
    };
    let (a, rest) = cbor_uint(b.get(skip..)?)?;
    let (s, _) = cbor_uint(rest)?;
    Some((a, s))
}

#[inline]
fn cbor_uint(b: &[u8]) -> Option<(u64, &[u8])> {
    let be = |n: usize| -> Option<(u64, &[u8])> {
        let bytes = b.get(1..1 + n)?;
        let v = bytes.iter().fold(0u64, |acc, &x| (acc << 8) | x as u64);
        Some((v, &b[1 + n..]))
    };
    match *b.first()? {
        m @ 0x00..=0x17 => Some((m as u64, &b[1..])),
        0x18 => be(1),
        0x19 => be(2),
        0x1a => be(4),
        0x1b => be(8),
        _ => None,
    }
}

/// A MessagePack EVENT of the shape loadgen's own subscriptions receive — `[36, Subscription,
/// Publication, {}, Arguments, …]`, empty details — read without decoding the message:
/// `Some(stamp)` (the stamp `None` if the arguments carry none), or `None` for any other frame
/// (decode it fully). Fan-out subscribers spend most of their time here, so this skips the
/// generic decoder's details dictionary and payload slicing.
#[inline]
pub fn msgpack_event_stamp(frame: &[u8]) -> Option<Option<(u64, u64)>> {
    event_stamp(
        frame,
        &EventShape {
            array_of: |b| (0x94..=0x96).contains(&b).then(|| b - 0x90),
            code: &[36],
            empty_map: 0x80,
            uint: msgpack_uint,
            two_uints: msgpack_two_uints,
        },
    )
}

#[inline]
fn msgpack_two_uints(b: &[u8]) -> Option<(u64, u64)> {
    let rest = match *b.first()? {
        0x90..=0x9f => &b[1..],
        0xdc => b.get(3..)?,
        0xdd => b.get(5..)?,
        _ => return None,
    };
    let (a, rest) = msgpack_uint(rest)?;
    let (s, _) = msgpack_uint(rest)?;
    Some((a, s))
}

#[inline]
fn msgpack_uint(b: &[u8]) -> Option<(u64, &[u8])> {
    let be = |n: usize| -> Option<(u64, &[u8])> {
        let bytes = b.get(1..1 + n)?;
        let v = bytes.iter().fold(0u64, |acc, &x| (acc << 8) | x as u64);
        Some((v, &b[1 + n..]))
    };
    match *b.first()? {
        m @ 0x00..=0x7f => Some((m as u64, &b[1..])),
        0xcc => be(1),
        0xcd => be(2),
        0xce => be(4),
        0xcf => be(8),
        _ => None,
    }
}

#[cfg(test)]
mod event_fast_path_tests {
    use super::*;
    use switchyard::codec::{self, Message};

    fn event(ser: Serializer, details: &str, args: &str) -> bytes::Bytes {
        let json = format!(r#"[36, 5, 9007199254740991, {details}{args}]"#);
        let m = codec::decode(Serializer::Json, &bytes::Bytes::from(json)).expect("an EVENT");
        codec::encode(ser, &m)
    }

    /// Each serializer's EVENT fast path reads the same stamp as the generic decoder, takes
    /// every EVENT with empty details, and declines the rest.
    #[test]
    fn the_event_fast_paths_agree_with_the_decoder() {
        let cases = [
            ("{}", ", [123456789012, 7, \"pad\"]"),
            ("{}", ", [1, 2], {\"k\": 1}"),
            ("{}", ", [\"not\", \"a stamp\"]"),
            ("{}", ""),
            ("{\"topic\": \"a.b\"}", ", [1, 2]"),
        ];
        type Fast = fn(&[u8]) -> Option<Option<(u64, u64)>>;
        let paths: [(Serializer, Fast); 2] = [
            (Serializer::MsgPack, msgpack_event_stamp),
            (Serializer::Cbor, cbor_event_stamp),
        ];
        for (ser, fast_path) in paths {
            let mut fast_ones = 0;
            for (details, args) in cases {
                let frame = event(ser, details, args);
                let Ok(Message::Event(ev)) = codec::decode(ser, &frame) else {
                    panic!("decodes");
                };
                let slow = read_stamp(&ev.payload);
                match fast_path(&frame) {
                    Some(fast) => {
                        fast_ones += 1;
                        assert_eq!(fast, slow, "{ser:?} {details} {args}");
                    }
                    None => assert_ne!(details, "{}", "{ser:?}: only other details go slow"),
                }
            }
            assert_eq!(fast_ones, 4, "{ser:?}");
            let published = codec::encode(
                ser,
                &codec::decode(Serializer::Json, &bytes::Bytes::from_static(b"[17, 1, 2]"))
                    .expect("PUBLISHED"),
            );
            assert_eq!(fast_path(&published), None, "{ser:?}: not an EVENT");
        }
    }
}

fn json_two_uints(b: &[u8]) -> Option<(u64, u64)> {
    let mut i = 0;
    let skip_ws = |i: &mut usize| {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    };
    let number = |i: &mut usize| -> Option<u64> {
        let start = *i;
        let mut v: u64 = 0;
        while *i < b.len() && b[*i].is_ascii_digit() {
            v = v.checked_mul(10)?.checked_add((b[*i] - b'0') as u64)?;
            *i += 1;
        }
        (*i > start).then_some(v)
    };
    skip_ws(&mut i);
    if b.get(i) != Some(&b'[') {
        return None;
    }
    i += 1;
    skip_ws(&mut i);
    let a = number(&mut i)?;
    skip_ws(&mut i);
    if b.get(i) != Some(&b',') {
        return None;
    }
    i += 1;
    skip_ws(&mut i);
    let s = number(&mut i)?;
    Some((a, s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchyard::codec;

    /// A stamp survives encoding and decoding in both serializers, for small and large values.
    #[test]
    fn stamp_roundtrip() {
        let topic = Uri::from("t");
        for ser in Serializer::ALL {
            for (ts, seq) in [(0, 0), (1, 127), (300, 70_000), (u64::MAX >> 11, 1 << 40)] {
                let m = publish(7, &topic, false, stamped(ts, seq, &pad_for(64)));
                let frame = codec::encode(ser, &m);
                let Message::Publish(p) = codec::decode(ser, &frame).unwrap() else {
                    panic!("not a PUBLISH");
                };
                assert_eq!(read_stamp(&p.payload), Some((ts, seq)), "{ser:?}");
            }
        }
    }

    #[test]
    fn foreign_payloads_have_no_stamp() {
        assert_eq!(json_two_uints(b"[\"x\",1]"), None);
        assert_eq!(msgpack_two_uints(&[0x91, 0xa1, b'x']), None);
        assert_eq!(read_stamp(&Payload::Empty), None);
    }
}
