//! Codec micro-benchmarks: decode and encode of a PUBLISH and an EVENT carrying a 64-byte
//! payload, in JSON and MessagePack, and the router's per-event work for MessagePack (decode the
//! incoming frame, encode the outgoing one).
//!
//! Run: `cargo bench --bench codec` (add `-- --quick` for a short run).

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use switchyard::codec::{
    self, Event, EventDetails, Message, Payload, Publish, PublishOptions, Serializer, Uri, Value,
};

/// One argument: a 64-byte string.
fn payload() -> Payload {
    Payload::args(vec![Value::Str("x".repeat(64))])
}

fn publish() -> Message {
    Message::Publish(Box::new(Publish {
        request: 239_714_735,
        options: PublishOptions::default(),
        topic: Uri::from("com.myapp.mytopic1"),
        payload: payload(),
    }))
}

fn event() -> Message {
    Message::Event(Box::new(Event {
        subscription: 5_512_315_355,
        publication: 4_429_313_566,
        details: EventDetails::default(),
        payload: payload(),
    }))
}

fn bench(c: &mut Criterion) {
    for (name, msg) in [("publish", publish()), ("event", event())] {
        for ser in Serializer::ALL {
            let label = ser.name();
            // Encoding a decoded message is the router's real case: the payload is spliced.
            let frame: Bytes = codec::encode(ser, &msg);
            let decoded = codec::decode(ser, &frame).expect("decodes");
            c.bench_function(&format!("decode {name} {label}"), |b| {
                b.iter(|| codec::decode(ser, black_box(&frame)).unwrap())
            });
            c.bench_function(&format!("encode {name} {label}"), |b| {
                b.iter(|| codec::encode(ser, black_box(&decoded)))
            });
        }
    }
    for ser in [
        Serializer::MsgPack,
        Serializer::Cbor,
        Serializer::Ubjson,
        Serializer::Bjdata,
    ] {
        let frame = codec::encode(ser, &event());
        c.bench_function(&format!("decode+encode event {}", ser.name()), |b| {
            b.iter(|| {
                let m = codec::decode(ser, black_box(&frame)).unwrap();
                codec::encode(ser, &m)
            })
        });
    }
    let frame = codec::encode(Serializer::MsgPack, &event());
    let mut out = Vec::with_capacity(256);
    c.bench_function("decode+encode_into event msgpack (reused buffer)", |b| {
        b.iter(|| {
            let m = codec::decode(Serializer::MsgPack, black_box(&frame)).unwrap();
            out.clear();
            codec::encode_into(Serializer::MsgPack, &m, &mut out);
            black_box(out.len())
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
