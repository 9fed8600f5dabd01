//! Payload passthru mode over real sockets on a two-shard router (`payload_passthru_mode.md`):
//! a MessagePack caller's sealed binary payload and `ppt_*` options reach a JSON callee and
//! come back (binary as the JSON `\0`+base64 string on the callee's side, bytes again for the
//! caller), a CBOR publisher's reach JSON and MessagePack subscribers, and both roles are
//! announced in WELCOME.

mod common;

use common::{router_feature, run, wait_until};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use switchyard::client::{
    CallOptions, Client, ClientConfig, Dict, Event, Invocation, PublishOptions, RegisterOptions,
    Serializer, SubscribeOptions, Value, Yield, YieldOptions,
};
use switchyard::config::{ListenAddr, ListenerConfig, ListenerKind};
use switchyard::shard::Router;
use switchyard::RouterConfig;

fn start_router() -> Router {
    Router::start(RouterConfig {
        shards: 2,
        listeners: vec![ListenerConfig {
            kind: ListenerKind::RawSocket,
            addr: ListenAddr::Tcp("127.0.0.1:0".parse().expect("address")),
            tls: None,
        }],
        ..Default::default()
    })
    .expect("router starts")
}

fn config(url: &str, s: Serializer) -> ClientConfig {
    ClientConfig::new(url, "realm1")
        .serializer(s)
        .connect_timeout(Duration::from_secs(5))
}

/// What the callee saw: `ppt_scheme`, `ppt_keyid`, the arguments.
type Seen = (Option<String>, Option<String>, Vec<Value>);

const SEALED: &[u8] = b"\x00\x01sealed-box\xfe\xff";

#[test]
fn sealed_payloads_cross_serializers_untouched() {
    let router = start_router();
    let url = router.endpoints()[0].clone();
    run(move || async move {
        // A JSON callee on one connection (shards alternate per connection).
        let callee = Client::connect(config(&url, Serializer::Json))
            .await
            .expect("callee joins");
        assert!(router_feature(&callee, "dealer", "payload_passthru_mode"));
        assert!(router_feature(&callee, "broker", "payload_passthru_mode"));
        let seen: Rc<RefCell<Vec<Seen>>> = Rc::default();
        let s = seen.clone();
        callee
            .register(
                "com.ppt.echo",
                RegisterOptions::default(),
                move |inv: Invocation| {
                    let s = s.clone();
                    async move {
                        s.borrow_mut().push((
                            inv.details.ppt_scheme.clone(),
                            inv.details.ppt_keyid.clone(),
                            inv.args.clone(),
                        ));
                        let Some(Value::Bin(b)) = inv.args.first() else {
                            return Ok(Yield::args(vec![Value::Str("not binary".into())]));
                        };
                        let mut reply = b.to_vec();
                        reply.reverse();
                        Ok(Yield::passthru(
                            reply,
                            YieldOptions {
                                ppt_scheme: Some("wamp".into()),
                                ppt_serializer: Some("cbor".into()),
                                ppt_cipher: Some("xsalsa20poly1305".into()),
                                ppt_keyid: Some("callee-key".into()),
                                ..Default::default()
                            },
                        ))
                    }
                },
            )
            .await
            .expect("register");
        let caller = Client::connect(config(&url, Serializer::MsgPack))
            .await
            .expect("caller joins");
        let r = caller
            .call(
                "com.ppt.echo",
                vec![Value::Bin(SEALED.to_vec().into())],
                Dict::new(),
                CallOptions {
                    ppt_scheme: Some("wamp".into()),
                    ppt_serializer: Some("cbor".into()),
                    ppt_cipher: Some("xsalsa20poly1305".into()),
                    ppt_keyid: Some("caller-key".into()),
                    ..Default::default()
                },
            )
            .await
            .expect("the passthru call succeeds");
        let mut reversed = SEALED.to_vec();
        reversed.reverse();
        assert_eq!(r.args, vec![Value::Bin(reversed.into())]);
        assert_eq!(r.details.ppt_scheme.as_deref(), Some("wamp"));
        assert_eq!(r.details.ppt_keyid.as_deref(), Some("callee-key"));
        assert_eq!(r.details.ppt_cipher.as_deref(), Some("xsalsa20poly1305"));
        assert_eq!(
            seen.borrow().clone(),
            vec![(
                Some("wamp".into()),
                Some("caller-key".into()),
                vec![Value::Bin(SEALED.to_vec().into())]
            )]
        );

        // Pub/sub: a CBOR publisher, JSON and MessagePack subscribers.
        let mut inboxes = Vec::new();
        let mut subs = Vec::new();
        for s in [Serializer::Json, Serializer::MsgPack] {
            let c = Client::connect(config(&url, s)).await.expect("joins");
            let inbox: Rc<RefCell<Vec<Event>>> = Rc::default();
            let i = inbox.clone();
            c.subscribe("com.ppt.t", SubscribeOptions::default(), move |e| {
                i.borrow_mut().push(e)
            })
            .await
            .expect("subscribe");
            inboxes.push(inbox);
            subs.push(c);
        }
        let publ = Client::connect(config(&url, Serializer::Cbor))
            .await
            .expect("publisher joins");
        publ.publish(
            "com.ppt.t",
            vec![Value::Bin(SEALED.to_vec().into())],
            Dict::new(),
            PublishOptions {
                acknowledge: Some(true),
                ppt_scheme: Some("mqtt".into()),
                ppt_serializer: Some("native".into()),
                ..Default::default()
            },
        )
        .await
        .expect("publish")
        .expect("acknowledged");
        for inbox in &inboxes {
            wait_until("the event", || !inbox.borrow().is_empty()).await;
            let e = inbox.borrow()[0].clone();
            assert_eq!(e.args, vec![Value::Bin(SEALED.to_vec().into())]);
            assert_eq!(e.details.ppt_scheme.as_deref(), Some("mqtt"));
            assert_eq!(e.details.ppt_serializer.as_deref(), Some("native"));
        }
    });
}
