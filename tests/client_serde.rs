//! serde payloads with `switchyard::client` over real sockets on a 2-shard router (issue 18,
//! "serde payloads"): typed calls, results, invocations, events and keyword arguments, straight
//! to and from the wire's values (binary stays binary, 64-bit integers stay exact), across
//! serializers, and clear errors when a payload does not fit its type.
//!
//! Every scenario runs on both client drivers (glommio and tokio): the body is written once
//! in `client_serde_tests!` and expanded in `glommio_driver` and `tokio_driver`.

mod common;

macro_rules! client_serde_tests {
    () => {
use crate::common::endpoint;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use switchyard::client::{
    CallOptions, ClientConfig, Error, PublishOptions, RegisterOptions, Serializer,
    SubscribeOptions, Yield,
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    items: Vec<String>,
    total: f64,
    note: Option<String>,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Kind {
    Pickup,
    Delivery { address: String },
}

fn order() -> Order {
    Order {
        id: u64::MAX - 1,
        items: vec!["tea".into(), "crème brûlée".into()],
        total: 12.5,
        note: None,
        kind: Kind::Delivery {
            address: "1 Main St".into(),
        },
    }
}

/// What the subscriber read: the blob argument and the order in the keyword arguments.
type Received = (Vec<u8>, Order);

fn config(url: &str, s: Serializer) -> ClientConfig {
    ClientConfig::new(url, "realm1")
        .serializer(s)
        .connect_timeout(Duration::from_secs(5))
}

#[test]
fn typed_calls_events_and_errors() {
    let router = crate::common::start_router_in_process(2);
    let (ws, rs) = (endpoint(&router, "ws"), endpoint(&router, "rs"));
    run(move || async move {
        let callee = Client::connect(config(&rs, Serializer::MsgPack))
            .await
            .expect("callee joins");
        callee
            .register(
                "com.serde.add",
                RegisterOptions::default(),
                |inv| async move {
                    let (a, b): (i64, i64) = inv.args_as()?;
                    Ok(Yield::typed(&(a + b), &())?)
                },
            )
            .await
            .expect("register add");
        callee
            .register(
                "com.serde.order",
                RegisterOptions::default(),
                |inv| async move {
                    // The order as positional fields, a discount as a keyword argument.
                    let mut o: Order = inv.args_as()?;
                    #[derive(Deserialize)]
                    struct Discount {
                        percent: f64,
                    }
                    let d: Discount = inv.kwargs_as()?;
                    o.total *= 1.0 - d.percent / 100.0;
                    o.note = Some("discounted".into());
                    Ok(Yield::typed(&o, &())?)
                },
            )
            .await
            .expect("register order");

        for (url, ser) in [(&ws, Serializer::Json), (&rs, Serializer::Cbor)] {
            let caller = Client::connect(config(url, ser))
                .await
                .expect("caller joins");
            let sum: i64 = caller
                .call_typed("com.serde.add", &(40, 2), CallOptions::default())
                .await
                .expect("typed call");
            assert_eq!(sum, 42, "{ser:?}");

            let args = switchyard::codec::serde_value::to_args(&order()).expect("args");
            let mut kw = switchyard::client::Dict::new();
            kw.insert("percent".into(), switchyard::client::Value::Float(20.0));
            let r = caller
                .call("com.serde.order", args, kw, CallOptions::default())
                .await
                .expect("call");
            let back: Order = r.args_as().expect("an Order back");
            let mut want = order();
            want.total = 10.0;
            want.note = Some("discounted".into());
            assert_eq!(back, want, "{ser:?}: exact u64, unicode, enum, option");

            // A result that does not fit the asked type: a clear local error.
            let e = caller
                .call_typed::<_, String>("com.serde.add", &(1, 2), CallOptions::default())
                .await
                .expect_err("a number is not a String");
            assert!(
                matches!(&e, Error::Payload(m) if m.contains("string")),
                "{e:?}"
            );
            // Arguments the callee cannot read: the caller gets invalid_argument.
            let e = caller
                .call_typed::<_, i64>("com.serde.add", &("x", "y"), CallOptions::default())
                .await
                .expect_err("strings are not numbers");
            match e {
                Error::Wamp(w) => assert_eq!(w.error.as_str(), "wamp.error.invalid_argument"),
                other => panic!("{other:?}"),
            }
        }

        // Typed publish: args and a struct as kwargs, read back typed by a JSON subscriber.
        let sub = Client::connect(config(&ws, Serializer::Json))
            .await
            .expect("subscriber joins");
        let got: Arc<RefCell<Vec<Received>>> = Arc::default();
        let g = got.clone();
        sub.subscribe("com.serde.orders", SubscribeOptions::default(), move |ev| {
            let (blob,): (serde_bytes_like::Blob,) = ev.args_as().expect("args");
            let o: Order = ev.kwargs_as().expect("kwargs");
            g.borrow_mut().push((blob.0, o));
        })
        .await
        .expect("subscribe");
        let publ = Client::connect(config(&rs, Serializer::MsgPack))
            .await
            .expect("publisher joins");
        publ.publish_typed(
            "com.serde.orders",
            &(serde_bytes_like::Blob(vec![0, 1, 255]),),
            &order(),
            PublishOptions {
                acknowledge: Some(true),
                ..Default::default()
            },
        )
        .await
        .expect("publish")
        .expect("acknowledged");
        wait_until("the typed event", || !got.borrow().is_empty()).await;
        assert_eq!(got.borrow()[0], (vec![0, 1, 255], order()));
    });
}

/// A byte string as serde's `bytes` (so it travels as WAMP binary, not a list of numbers).
mod serde_bytes_like {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Debug, PartialEq)]
    pub struct Blob(pub Vec<u8>);

    impl Serialize for Blob {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_bytes(&self.0)
        }
    }

    impl<'de> Deserialize<'de> for Blob {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Blob, D::Error> {
            struct V;
            impl serde::de::Visitor<'_> for V {
                type Value = Blob;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("bytes")
                }
                fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Blob, E> {
                    Ok(Blob(v))
                }
                fn visit_bytes<E>(self, v: &[u8]) -> Result<Blob, E> {
                    Ok(Blob(v.to_vec()))
                }
            }
            d.deserialize_byte_buf(V)
        }
    }
}
    };
}

mod glommio_driver {
    use crate::common::drivers::glommio::*;
    client_serde_tests!();
}

mod tokio_driver {
    use crate::common::drivers::tokio::*;
    client_serde_tests!();
}
