//! Peers using different serializers on a 2-shard router (issue 17): a CBOR publisher reaches
//! JSON, MessagePack, CBOR and UBJSON subscribers (WebSocket and RawSocket) with the same
//! values, a CBOR caller calls a MessagePack callee, and a UBJSON caller a CBOR callee; payloads carry binary, unicode, integers at the
//! edges of their ranges, floats and nested dictionaries.

mod common;

use common::{endpoint, run, wait_until};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use switchyard::client::{
    CallOptions, Client, ClientConfig, Dict, Event, PublishOptions, RegisterOptions, Serializer,
    SubscribeOptions, Value, Yield,
};
use switchyard::shard::Router;

fn start_router() -> Router {
    common::start_router_in_process(2)
}

fn config(url: &str, s: Serializer) -> ClientConfig {
    ClientConfig::new(url, "realm1")
        .serializer(s)
        .connect_timeout(Duration::from_secs(5))
}

/// Arguments every serializer must carry unchanged.
fn args() -> Vec<Value> {
    let mut inner = Dict::new();
    inner.insert(
        "list".into(),
        Value::List(vec![Value::Null, Value::Bool(true)]),
    );
    inner.insert("ключ ✓".into(), Value::Float(-2.5));
    let mut nested = Dict::new();
    nested.insert("deeper".into(), Value::Dict(inner));
    vec![
        Value::Bin(bytes::Bytes::from_static(b"\x00\x01\xfe\xff binary")),
        Value::Str("unicode: é 中 🚀".into()),
        Value::UInt(u64::MAX),
        Value::UInt(1 << 53),
        Value::Int(i64::MIN),
        Value::Float(1.5),
        Value::Dict(nested),
    ]
}

fn kwargs() -> Dict {
    let mut k = Dict::new();
    k.insert("bin".into(), Value::Bin(bytes::Bytes::from(vec![0u8; 300])));
    k.insert("n".into(), Value::Int(-1));
    k
}

#[test]
fn cbor_publisher_reaches_every_serializer_and_calls_a_msgpack_callee() {
    let router = start_router();
    let (ws, rs) = (endpoint(&router, "ws"), endpoint(&router, "rs"));
    run(move || async move {
        let peers = [
            (ws.clone(), Serializer::Json),
            (rs.clone(), Serializer::MsgPack),
            (ws.clone(), Serializer::Cbor),
            (rs.clone(), Serializer::Cbor),
            (ws.clone(), Serializer::Ubjson),
            (rs.clone(), Serializer::Ubjson),
        ];
        let mut subscribers = Vec::new();
        for (url, ser) in peers {
            let c = Client::connect(config(&url, ser))
                .await
                .unwrap_or_else(|e| panic!("{ser:?} subscriber joins: {e}"));
            let inbox: Rc<RefCell<Vec<Event>>> = Rc::default();
            let i = inbox.clone();
            c.subscribe("com.mixed", SubscribeOptions::default(), move |ev| {
                i.borrow_mut().push(ev)
            })
            .await
            .expect("subscribe");
            subscribers.push((ser, c, inbox));
        }
        let publisher = Client::connect(config(&ws, Serializer::Cbor))
            .await
            .expect("publisher joins");
        publisher
            .publish(
                "com.mixed",
                args(),
                kwargs(),
                PublishOptions {
                    acknowledge: Some(true),
                    ..Default::default()
                },
            )
            .await
            .expect("publish")
            .expect("acknowledged");
        for (ser, _c, inbox) in &subscribers {
            wait_until(&format!("the {ser:?} subscriber's event"), || {
                !inbox.borrow().is_empty()
            })
            .await;
            let got = inbox.borrow();
            assert_eq!(got.len(), 1, "{ser:?}");
            assert_eq!(got[0].args, args(), "{ser:?} subscriber's args");
            assert_eq!(got[0].kwargs, kwargs(), "{ser:?} subscriber's kwargs");
        }

        // A MessagePack callee echoes; a CBOR caller gets back what it sent.
        let callee = Client::connect(config(&rs, Serializer::MsgPack))
            .await
            .expect("callee joins");
        callee
            .register(
                "com.mixed.echo",
                RegisterOptions::default(),
                |inv| async move { Ok(Yield::new(inv.args, inv.kwargs)) },
            )
            .await
            .expect("register");
        for url in [&ws, &rs] {
            let caller = Client::connect(config(url, Serializer::Cbor))
                .await
                .expect("caller joins");
            let r = caller
                .call("com.mixed.echo", args(), kwargs(), CallOptions::default())
                .await
                .expect("call");
            assert_eq!(r.args, args(), "{url}: echoed args");
            assert_eq!(r.kwargs, kwargs(), "{url}: echoed kwargs");
        }

        // A CBOR callee, a UBJSON caller (integers above i64::MAX travel as UBJSON's
        // high-precision numbers).
        let cbor_callee = Client::connect(config(&ws, Serializer::Cbor))
            .await
            .expect("callee joins");
        cbor_callee
            .register(
                "com.mixed.echo2",
                RegisterOptions::default(),
                |inv| async move { Ok(Yield::new(inv.args, inv.kwargs)) },
            )
            .await
            .expect("register");
        let caller = Client::connect(config(&rs, Serializer::Ubjson))
            .await
            .expect("caller joins");
        let r = caller
            .call("com.mixed.echo2", args(), kwargs(), CallOptions::default())
            .await
            .expect("call");
        assert_eq!(r.args, args(), "UBJSON caller: echoed args");
        assert_eq!(r.kwargs, kwargs(), "UBJSON caller: echoed kwargs");
    });
}
