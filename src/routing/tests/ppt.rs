//! Payload Passthru Mode (advanced/payload_passthru_mode.md) on the broker side: the `ppt_*`
//! options of PUBLISH reach every EVENT unchanged, with the `[Payload|binary]` arguments.

use super::harness::*;
use crate::codec::uri::MatchPolicy::Exact;
use crate::codec::*;

#[test]
fn ppt_options_and_binary_payload_reach_every_event() {
    let mut c = Cluster::new(3);
    c.join(1, 0);
    c.join(2, 1);
    c.join(3, 2);
    for s in [2, 3] {
        c.run(s, subscribe(1, "com.ppt", Exact));
        subscribed_id(&c.one(s));
    }
    let blob = Value::Bin(bytes::Bytes::from_static(b"\xffsealed\x00box"));
    let opts = PublishOptions {
        ppt_scheme: Some("wamp".into()),
        ppt_serializer: Some("msgpack".into()),
        ppt_cipher: Some("xsalsa20poly1305".into()),
        ppt_keyid: Some("key-9".into()),
        ..Default::default()
    };
    c.run(
        1,
        publish(4, "com.ppt", opts, Payload::args(vec![blob.clone()])),
    );
    for s in [2, 3] {
        let m = c.one(s);
        let e = event(&m);
        assert_eq!(e.details.ppt_scheme.as_deref(), Some("wamp"));
        assert_eq!(e.details.ppt_serializer.as_deref(), Some("msgpack"));
        assert_eq!(e.details.ppt_cipher.as_deref(), Some("xsalsa20poly1305"));
        assert_eq!(e.details.ppt_keyid.as_deref(), Some("key-9"));
        assert_eq!(first_arg(&e.payload), Some(blob.clone()));
    }
}

/// A callee's ERROR in PPT mode: `ERROR.Details.ppt_*` and the binary reach the caller unchanged.
#[test]
fn ppt_details_and_binary_payload_on_callee_error() {
    let mut c = Cluster::new(2);
    c.join(1, 0);
    c.join(2, 1);
    c.run(
        2,
        register(1, "com.ppt", reg_opts(Exact, InvokePolicy::Single)),
    );
    registered_id(&c.one(2));
    let blob = Value::Bin(bytes::Bytes::from_static(b"\x01err\x00"));
    c.run(
        1,
        call(3, "com.ppt", CallOptions::default(), Payload::Empty),
    );
    let inv = invocation(&c.one(2)).request;
    let mut details = Dict::new();
    details.insert("ppt_scheme".into(), Value::from("x_custom"));
    details.insert("ppt_keyid".into(), Value::from("key-3"));
    c.run(
        2,
        Message::Error(Box::new(Error {
            request_type: code::INVOCATION,
            request: inv,
            details: details.clone(),
            error: Uri::from("com.myapp.error"),
            payload: Payload::args(vec![blob.clone()]),
        })),
    );
    match c.one(1) {
        Message::Error(e) => {
            assert_eq!((e.request_type, e.request), (code::CALL, 3));
            assert_eq!(e.details, details);
            assert_eq!(first_arg(&e.payload), Some(blob));
        }
        other => panic!("expected ERROR, got {other:?}"),
    }
}
