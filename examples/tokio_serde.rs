//! serde payloads with `switchyard::client::tokio`: a struct goes out as a call's arguments
//! and comes back as its result, and a struct published as keyword arguments arrives typed
//! at a subscriber. A payload that does not fit the expected type is a clear
//! `Error::Payload`, and a callee's `?` on it answers `wamp.error.invalid_argument`.
//!
//! ```text
//! cargo run --example tokio_serde                 # against ws://127.0.0.1:8080/ws, realm1
//! cargo run --example tokio_serde -- rs://127.0.0.1:8081
//! ```

use serde::{Deserialize, Serialize};
use switchyard::client::tokio::Client;
use switchyard::client::{CallOptions, ClientConfig, Error, PublishOptions, Yield};
use tokio::sync::mpsc;

/// An order, as the caller sends it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Order {
    item: String,
    quantity: u32,
    unit_price_cents: u64,
}

/// The callee's answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Quote {
    item: String,
    total_cents: u64,
    discounted: bool,
}

/// Published as keyword arguments.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Shipped {
    order_id: u64,
    carrier: String,
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let url = std::env::args()
        .nth(1)
        .or_else(|| std::env::var("SWITCHYARD_URL").ok())
        .unwrap_or_else(|| "ws://127.0.0.1:8080/ws".into());
    let cfg = ClientConfig::new(url, "realm1");
    let callee = Client::connect(cfg.clone()).await?;
    let caller = Client::connect(cfg).await?;

    // One struct as the only argument: Order in, Quote out. A tuple `(T,)` is "one argument of
    // type T"; a bare struct would be read as the list of all arguments, field by field.
    callee
        .register("com.example.quote", Default::default(), |inv| async move {
            let (order,): (Order,) = inv.args_as()?;
            let total = order.unit_price_cents * u64::from(order.quantity);
            let discounted = order.quantity >= 10;
            let quote = Quote {
                item: order.item,
                total_cents: if discounted { total * 9 / 10 } else { total },
                discounted,
            };
            Ok(Yield::typed(&(quote,), &())?)
        })
        .await?;
    let order = Order {
        item: "widget".into(),
        quantity: 12,
        unit_price_cents: 250,
    };
    let (quote,): (Quote,) = caller
        .call_typed(
            "com.example.quote",
            &(order.clone(),),
            CallOptions::default(),
        )
        .await?;
    println!("serde: {order:?} -> {quote:?}");

    // A payload of the wrong shape: the callee's `?` answers invalid_argument.
    let e = caller
        .call_typed::<_, (Quote,)>(
            "com.example.quote",
            &("not an order",),
            CallOptions::default(),
        )
        .await
        .expect_err("a string is not an Order");
    println!("serde: wrong payload -> {e}");

    // A struct as keyword arguments, read back typed by the subscriber.
    let (tx, mut rx) = mpsc::unbounded_channel();
    callee
        .subscribe("com.example.shipped", Default::default(), move |ev| {
            let _ = tx.send(ev.kwargs_as::<Shipped>());
        })
        .await?;
    let shipped = Shipped {
        order_id: 7,
        carrier: "owl post".into(),
    };
    caller
        .publish_typed(
            "com.example.shipped",
            &(),
            &shipped,
            PublishOptions {
                acknowledge: Some(true),
                ..Default::default()
            },
        )
        .await?;
    let got = rx
        .recv()
        .await
        .ok_or_else(|| Error::Invalid("no event".into()))??;
    assert_eq!(got, shipped);
    println!("serde: event {got:?}");

    caller.leave().await?;
    callee.leave().await?;
    println!("serde: done");
    Ok(())
}
