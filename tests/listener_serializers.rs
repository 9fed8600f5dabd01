//! Serializers and transports turned on or off per listener type (issue 17, item 6), against
//! the real binary: `--ws-serializers`, `--rs-serializers`, `--no-ws-batched`. What is off is
//! refused at the handshake (HTTP 400 naming what the listener speaks; the RawSocket
//! "serializer unsupported" reply), what is on works, and WELCOME says what the listener
//! accepts (`Details.transport`). A bad name is a start-up error naming the flag.

mod common;

use common::{RawClient, RouterProcess, WampConn, WsClient};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use switchyard::codec::{Serializer, Value};

const IO_TIMEOUT: Duration = Duration::from_secs(5);

/// The router's answer to a WebSocket upgrade offering `protocol`: its status line.
fn upgrade_status(addr: SocketAddr, path: &str, protocol: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Protocol: {protocol}\r\n\r\n"
    )
    .expect("send upgrade");
    let mut buf = vec![0u8; 4096];
    let mut got = Vec::new();
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&got).to_string();
    text.lines().next().unwrap_or_default().to_owned() + "\n" + &text
}

/// The RawSocket handshake reply to serializer ID `id`.
fn rawsocket_reply(addr: SocketAddr, id: u8) -> [u8; 4] {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).expect("timeout");
    s.write_all(&[0x7f, 0xf0 | id, 0, 0]).expect("handshake");
    let mut r = [0u8; 4];
    s.read_exact(&mut r).expect("handshake reply");
    r
}

fn transport(w: &switchyard::codec::Welcome) -> switchyard::codec::Dict {
    let d = switchyard::session::welcome_dict(w);
    d.get("transport")
        .and_then(Value::as_dict)
        .cloned()
        .unwrap_or_else(|| panic!("WELCOME.Details.transport: {d:?}"))
}

fn names(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::List(l)) => l
            .iter()
            .filter_map(|x| x.as_str().map(str::to_owned))
            .collect(),
        other => panic!("a list of names, got {other:?}"),
    }
}

#[test]
fn serializers_and_batching_per_listener_type() {
    let r = RouterProcess::start(&[
        "--shards",
        "1",
        "--ws",
        "127.0.0.1:0",
        "--rs",
        "127.0.0.1:0",
        "--ws-serializers",
        "json,cbor",
        "--rs-serializers",
        "msgpack",
        "--no-ws-batched",
    ]);
    let ws = r.endpoint("ws");
    let rs = r.endpoint("rs").addr();

    // WebSocket: json and cbor only, no batching.
    let refused = upgrade_status(ws.addr(), ws.path(), "wamp.2.msgpack");
    assert!(refused.starts_with("HTTP/1.1 400"), "{refused}");
    assert!(
        refused.contains("wamp.2.json") && refused.contains("wamp.2.cbor"),
        "the refusal names what the listener speaks: {refused}"
    );
    assert!(!refused.contains("wamp.2.msgpack,"), "{refused}");
    let batched = upgrade_status(ws.addr(), ws.path(), "wamp.2.json.batched");
    assert!(batched.starts_with("HTTP/1.1 400"), "{batched}");
    let ok = upgrade_status(ws.addr(), ws.path(), "wamp.2.msgpack, wamp.2.cbor");
    assert!(ok.starts_with("HTTP/1.1 101"), "{ok}");
    assert!(ok.contains("wamp.2.cbor"), "{ok}");

    let mut c = WsClient::connect(ws.addr(), ws.path(), Serializer::Json);
    let w = c.must_join("realm1");
    let t = transport(&w);
    assert_eq!(t.get("type").and_then(Value::as_str), Some("websocket"));
    assert_eq!(t.get("serializer").and_then(Value::as_str), Some("json"));
    assert_eq!(names(t.get("serializers")), vec!["json", "cbor"]);
    assert_eq!(t.get("batched"), Some(&Value::Bool(false)));
    c.must_leave();

    // RawSocket: msgpack only (serializer IDs 1 json, 2 msgpack, 3 cbor, 4 ubjson).
    for id in [1u8, 3, 4] {
        let reply = rawsocket_reply(rs, id);
        assert_eq!(
            (reply[0], reply[1] >> 4, reply[1] & 0x0f),
            (0x7f, 1, 0),
            "serializer {id}: 'serializer unsupported' ({reply:02x?})"
        );
    }
    let mut c = RawClient::connect(rs, Serializer::MsgPack);
    let w = c.must_join("realm1");
    let t = transport(&w);
    assert_eq!(t.get("type").and_then(Value::as_str), Some("rawsocket"));
    assert_eq!(names(t.get("serializers")), vec!["msgpack"]);
    assert_eq!(t.get("batched"), None);
    c.must_leave();
}

#[test]
fn everything_is_on_by_default_and_bad_names_are_refused() {
    let r = RouterProcess::start_ws_rs(&[]);
    let ws = r.endpoint("ws");
    let mut c = WsClient::connect(ws.addr(), ws.path(), Serializer::Cbor);
    let t = transport(&c.must_join("realm1"));
    assert_eq!(
        names(t.get("serializers")),
        vec!["json", "msgpack", "cbor", "ubjson"]
    );
    assert_eq!(t.get("batched"), Some(&Value::Bool(true)));
    c.must_leave();

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["--ws-serializers", "json,xml", "--ws", "127.0.0.1:0"])
        .output()
        .expect("run switchyard");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ws-serializers") && err.contains("xml"),
        "the error names the flag and the bad value: {err}"
    );
}
