//! The client library against a scripted, misbehaving router on a real socket (RawSocket +
//! JSON): stray and mismatched replies, unknown registrations, subscriptions and requests, a
//! second WELCOME, session-scoped request IDs across a reconnect, an expensive WAMP-CRA
//! challenge. Each peer runs in a thread of its own with socket timeouts; the client runs in a
//! glommio executor with a hard time limit.
//!
//! Every scenario runs on both client drivers (glommio and tokio): the body is written once
//! in `client_robust_tests!` and expanded in `glommio_driver` and `tokio_driver`.

mod client_support;

macro_rules! client_robust_tests {
    () => {
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value as Json};
use switchyard::client::{
    Auth, CallError, CallOptions, CancelMode, ClientConfig, Dict, Error, PublishOptions,
    ReconnectPolicy, RegisterOptions, Serializer, Value, Yield,
};

/// Bound on a whole test.
const LIMIT: Duration = Duration::from_secs(30);
/// Bound on one socket read of the scripted router.
const READ: Duration = Duration::from_secs(10);

fn accept(listener: &TcpListener) -> TcpStream {
    let (mut s, _) = listener.accept().expect("accept");
    s.set_read_timeout(Some(READ)).expect("read timeout");
    let mut hello = [0u8; 4];
    s.read_exact(&mut hello).expect("client handshake");
    assert_eq!(hello[0], 0x7f);
    s.write_all(&hello).expect("server handshake");
    s
}

/// The next message, or `None` at end of stream.
fn try_read(s: &mut TcpStream) -> Option<Json> {
    let mut h = [0u8; 4];
    if s.read_exact(&mut h).is_err() {
        return None;
    }
    assert_eq!(h[0], 0, "a message frame");
    let len = u32::from_be_bytes([0, h[1], h[2], h[3]]) as usize;
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("frame body");
    Some(serde_json::from_slice(&body).expect("JSON message"))
}

fn read(s: &mut TcpStream) -> Json {
    try_read(s).expect("a message from the client")
}

fn write(s: &mut TcpStream, m: Json) {
    let body = serde_json::to_vec(&m).expect("encode");
    let len = (body.len() as u32).to_be_bytes();
    s.write_all(&[0, len[1], len[2], len[3]]).expect("header");
    s.write_all(&body).expect("body");
}

fn welcome(s: &mut TcpStream, session: u64) -> Json {
    let hello = read(s);
    assert_eq!(hello[0], 1, "HELLO: {hello}");
    write(
        s,
        json!([2, session, {"roles": {"dealer": {}, "broker": {}}}]),
    );
    hello
}

fn config(port: u16) -> ClientConfig {
    ClientConfig::new(format!("rs://127.0.0.1:{port}"), "realm1").serializer(Serializer::Json)
}

fn listen() -> (TcpListener, u16) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    (l, port)
}

#[test]
fn hostile_router_messages_are_answered_or_ignored_never_fatal() {
    let (listener, port) = listen();
    let (report, reports) = mpsc::channel::<(&'static str, Json)>();
    let peer = std::thread::spawn(move || {
        let mut s = accept(&listener);
        welcome(&mut s, 1);
        // REGISTER: first a progressive RESULT for it (nonsense), then REGISTERED.
        let reg = read(&mut s);
        assert_eq!(reg[0], 64, "REGISTER: {reg}");
        write(&mut s, json!([50, reg[1], {"progress": true}, ["stray"]]));
        write(&mut s, json!([65, reg[1], 900]));
        // Strays: an INVOCATION of an unknown registration, EVENT of an unknown
        // subscription, replies to requests never made (one with the largest ID),
        // INTERRUPT of an unknown invocation.
        write(&mut s, json!([68, 5, 12345, {}, [1]]));
        write(&mut s, json!([36, 999, 1, {}, ["x"]]));
        write(&mut s, json!([50, 4242, {}, ["x"]]));
        write(&mut s, json!([50, 9_007_199_254_740_992u64, {}, ["x"]]));
        write(&mut s, json!([8, 48, 4243, {}, "com.x.error"]));
        write(&mut s, json!([69, 777, {}]));
        // The ERROR for the unknown invocation and the client's CALL, in either order.
        let (a, b) = (read(&mut s), read(&mut s));
        let (err, call) = if a[0] == 8 { (a, b) } else { (b, a) };
        report.send(("no_such_registration", err)).expect("report");
        assert_eq!(call[0], 48, "CALL: {call}");
        // A progressive result the caller did not ask for, the final one, then an ERROR
        // for the finished call.
        write(
            &mut s,
            json!([50, call[1], {"progress": true}, ["partial"]]),
        );
        write(&mut s, json!([50, call[1], {}, ["final"]]));
        write(
            &mut s,
            json!([8, 48, call[1], {}, "wamp.error.runtime_error"]),
        );
        // The registration still works.
        write(&mut s, json!([68, 6, 900, {}, [7]]));
        report.send(("yield", read(&mut s))).expect("report");
        // A second WELCOME: ABORT, then the client closes.
        write(&mut s, json!([2, 2, {}]));
        report.send(("abort", read(&mut s))).expect("report");
        report
            .send(("eof", json!(try_read(&mut s).is_none())))
            .expect("report");
    });
    run(LIMIT, async move {
        let c = Client::connect(config(port)).await.expect("joins");
        let r = c
            .register("com.p", RegisterOptions::default(), |inv| async move {
                Ok(Yield::args(inv.args))
            })
            .await
            .expect("a stray progressive RESULT does not answer REGISTER");
        assert_eq!(r.id, 900);
        let mut h = c
            .call_handle("com.c", vec![], Dict::new(), CallOptions::default())
            .expect("call");
        let first = h.next().await.expect("an outcome").expect("a result");
        assert!(
            !first.progress && first.args == vec![Value::Str("final".into())],
            "progressive results only when asked for: {first:?}"
        );
        assert!(h.next().await.is_none(), "nothing after the final result");
        bounded(Duration::from_secs(10), "closing", c.closed()).await;
        assert!(!c.is_connected());
    });
    let got = |what: &str| {
        let (k, v) = reports.recv_timeout(READ).expect("peer report");
        assert_eq!(k, what);
        v
    };
    assert_eq!(
        got("no_such_registration"),
        json!([8, 68, 5, {}, "wamp.error.no_such_registration"])
    );
    assert_eq!(got("yield"), json!([70, 6, {}, [7]]));
    let abort = got("abort");
    assert_eq!(abort[0], 3, "{abort}");
    assert_eq!(abort[2], "wamp.error.protocol_violation");
    assert_eq!(got("eof"), json!(true));
    peer.join().expect("scripted router");
}

#[test]
fn request_ids_restart_at_one_in_each_session_and_leave_waits_for_goodbye() {
    let (listener, port) = listen();
    let (report, reports) = mpsc::channel::<Vec<u64>>();
    let peer = std::thread::spawn(move || {
        let mut ids = Vec::new();
        let mut s = accept(&listener);
        welcome(&mut s, 10);
        for publication in [1, 2] {
            let p = read(&mut s);
            assert_eq!(p[0], 16, "PUBLISH: {p}");
            ids.push(p[1].as_u64().expect("request id"));
            write(&mut s, json!([17, p[1], publication]));
        }
        drop(s);
        let mut s = accept(&listener);
        welcome(&mut s, 11);
        let p = read(&mut s);
        assert_eq!(p[0], 16, "PUBLISH: {p}");
        ids.push(p[1].as_u64().expect("request id"));
        write(&mut s, json!([17, p[1], 3]));
        let bye = read(&mut s);
        assert_eq!(bye[0], 6, "GOODBYE: {bye}");
        write(&mut s, json!([6, {}, "wamp.close.goodbye_and_out"]));
        report.send(ids).expect("report");
    });
    run(LIMIT, async move {
        let policy = ReconnectPolicy {
            initial_delay: Duration::from_millis(20),
            max_attempts: Some(5),
            ..Default::default()
        };
        let c = Client::connect(config(port).reconnect(policy))
            .await
            .expect("joins");
        let ack = || PublishOptions {
            acknowledge: Some(true),
            ..Default::default()
        };
        for _ in 0..2 {
            c.publish("t", vec![], Dict::new(), ack())
                .await
                .expect("PUBLISHED");
        }
        until(Duration::from_secs(10), "rejoined", || {
            c.session_id() == Some(11)
        })
        .await;
        assert_eq!(
            c.publish("t", vec![], Dict::new(), ack())
                .await
                .expect("ok"),
            Some(3)
        );
        bounded(Duration::from_secs(10), "leave", c.leave())
            .await
            .expect("left");
        assert!(!c.is_connected());
    });
    let ids = reports.recv_timeout(READ).expect("peer report");
    assert_eq!(ids, vec![1, 2, 1], "session-scoped request IDs");
    peer.join().expect("scripted router");
}

#[test]
fn an_expensive_wampcra_challenge_is_refused() {
    let (listener, port) = listen();
    let peer = std::thread::spawn(move || {
        let mut s = accept(&listener);
        let _hello = read(&mut s);
        write(
            &mut s,
            json!([4, "wampcra", {
                "challenge": "{\"nonce\": \"x\"}",
                "salt": "salt",
                "iterations": 50_000_000u64,
                "keylen": 32,
            }]),
        );
        // The client gives up rather than answering (or spending minutes in PBKDF2).
        try_read(&mut s)
    });
    run(LIMIT, async move {
        let cfg = config(port).auth(Auth::WampCra {
            authid: "joe".into(),
            secret: "secret".into(),
        });
        let e = Client::connect(cfg).await.err().expect("refused");
        assert!(
            matches!(&e, Error::Protocol(m) if m.contains("iterations")),
            "{e:?}"
        );
    });
    let answer = peer.join().expect("scripted router");
    assert!(
        answer.as_ref().is_none_or(|m| m[0] == 3),
        "no AUTHENTICATE: {answer:?}"
    );
}

#[test]
fn no_progressive_yield_after_the_final_one() {
    let (listener, port) = listen();
    let (report, reports) = mpsc::channel::<(&'static str, Json)>();
    let peer = std::thread::spawn(move || {
        let mut s = accept(&listener);
        welcome(&mut s, 1);
        let reg = read(&mut s);
        assert_eq!(reg[0], 64, "REGISTER: {reg}");
        write(&mut s, json!([65, reg[1], 900]));
        // The handler returns at once but keeps the Invocation for a later progress().
        write(&mut s, json!([68, 8, 900, {"receive_progress": true}, [1]]));
        report.send(("yield", read(&mut s))).expect("report");
        // Whatever comes next must be the GOODBYE of leave, not a progressive YIELD.
        report.send(("next", read(&mut s))).expect("report");
        write(&mut s, json!([6, {}, "wamp.close.goodbye_and_out"]));
    });
    run(LIMIT, async move {
        let c = Client::connect(config(port)).await.expect("joins");
        let late = crate::client_support::Recorder::<Result<(), String>>::default();
        {
            let late = late.clone();
            c.register("com.p", RegisterOptions::default(), move |inv| {
                let late = late.clone();
                async move {
                    spawn(async move {
                        sleep(Duration::from_millis(50)).await;
                        late.push(inv.progress(Yield::empty()).map_err(|e| format!("{e:?}")));
                    });
                    Ok(Yield::empty())
                }
            })
            .await
            .expect("registers");
        }
        until(Duration::from_secs(10), "the late progress", || {
            !late.is_empty()
        })
        .await;
        let got = late.snapshot();
        assert!(
            matches!(&got[0], Err(m) if m.contains("Invalid")),
            "progress() after the handler returned: {got:?}"
        );
        bounded(Duration::from_secs(10), "leave", c.leave())
            .await
            .expect("left");
    });
    let got = |what: &str| {
        let (k, v) = reports.recv_timeout(READ).expect("peer report");
        assert_eq!(k, what);
        v
    };
    assert_eq!(got("yield"), json!([70, 8, {}]));
    assert_eq!(got("next")[0], 6, "GOODBYE, not a late YIELD");
    peer.join().expect("scripted router");
}

#[test]
fn an_undecodable_message_is_answered_with_abort() {
    let (listener, port) = listen();
    let peer = std::thread::spawn(move || {
        let mut s = accept(&listener);
        welcome(&mut s, 1);
        // Arguments that are not a list.
        write(&mut s, json!([36, 1, 1, {}, "not a list"]));
        let abort = read(&mut s);
        (abort, try_read(&mut s).is_none())
    });
    run(LIMIT, async move {
        let c = Client::connect(config(port)).await.expect("joins");
        bounded(Duration::from_secs(10), "closing", c.closed()).await;
    });
    let (abort, eof) = peer.join().expect("scripted router");
    assert_eq!(abort[0], 3, "ABORT: {abort}");
    assert_eq!(abort[2], "wamp.error.protocol_violation");
    assert!(eof, "then the connection closes");
}

#[test]
fn a_challenge_for_a_method_not_offered_is_aborted() {
    for (method, auth) in [
        ("ticket", Auth::default()),
        (
            "cryptosign",
            Auth::Ticket {
                authid: "joe".into(),
                ticket: "secret".into(),
            },
        ),
    ] {
        let (listener, port) = listen();
        let peer = std::thread::spawn(move || {
            let mut s = accept(&listener);
            let _hello = read(&mut s);
            write(&mut s, json!([4, method, {"challenge": "x"}]));
            let answer = try_read(&mut s);
            (answer, try_read(&mut s).is_none())
        });
        run(LIMIT, async move {
            let e = Client::connect(config(port).auth(auth))
                .await
                .err()
                .expect("refused");
            assert!(matches!(&e, Error::Protocol(_)), "{e:?}");
        });
        let (answer, eof) = peer.join().expect("scripted router");
        let answer = answer.expect("an answer before closing");
        assert_eq!(answer[0], 3, "ABORT, not AUTHENTICATE: {answer}");
        assert_eq!(answer[2], "wamp.error.protocol_violation");
        assert!(eof, "then the connection closes");
    }
}

#[test]
fn a_lost_connection_interrupts_running_invocations() {
    let (listener, port) = listen();
    let peer = std::thread::spawn(move || {
        let mut s = accept(&listener);
        welcome(&mut s, 1);
        let reg = read(&mut s);
        assert_eq!(reg[0], 64, "REGISTER: {reg}");
        write(&mut s, json!([65, reg[1], 900]));
        write(&mut s, json!([68, 3, 900, {}]));
        // Give the handler time to start, then drop the connection.
        std::thread::sleep(Duration::from_millis(200));
        drop(s);
    });
    run(LIMIT, async move {
        let c = Client::connect(config(port)).await.expect("joins");
        let modes = crate::client_support::Recorder::<CancelMode>::default();
        {
            let modes = modes.clone();
            c.register("com.slow", RegisterOptions::default(), move |inv| {
                let modes = modes.clone();
                async move {
                    modes.push(inv.wait_interrupted().await);
                    Err(CallError::new("wamp.error.canceled"))
                }
            })
            .await
            .expect("registers");
        }
        until(Duration::from_secs(10), "the handler to stop", || {
            !modes.is_empty()
        })
        .await;
        assert_eq!(modes.snapshot(), vec![CancelMode::KillNoWait]);
        bounded(Duration::from_secs(10), "closing", c.closed()).await;
    });
    peer.join().expect("scripted router");
}

#[test]
fn an_abandoned_register_leaves_no_handler_behind() {
    let (listener, port) = listen();
    let (report, reports) = mpsc::channel::<Json>();
    let peer = std::thread::spawn(move || {
        let mut s = accept(&listener);
        welcome(&mut s, 1);
        let reg = read(&mut s);
        assert_eq!(reg[0], 64, "REGISTER: {reg}");
        // Answered only after the client stopped waiting (it publishes to say so).
        let p = read(&mut s);
        assert_eq!(p[0], 16, "PUBLISH: {p}");
        write(&mut s, json!([65, reg[1], 900]));
        write(&mut s, json!([68, 4, 900, {}]));
        report.send(read(&mut s)).expect("report");
        let bye = read(&mut s);
        assert_eq!(bye[0], 6, "GOODBYE: {bye}");
        write(&mut s, json!([6, {}, "wamp.close.goodbye_and_out"]));
    });
    run(LIMIT, async move {
        let c = Client::connect(config(port)).await.expect("joins");
        let ran = crate::client_support::Recorder::<u64>::default();
        let registering = {
            let ran = ran.clone();
            c.register("com.p", RegisterOptions::default(), move |inv| {
                ran.push(inv.request);
                async move { Ok(Yield::empty()) }
            })
        };
        let abandoned = futures_lite::future::or(async { Some(registering.await) }, async {
            sleep(Duration::from_millis(100)).await;
            None
        })
        .await;
        assert!(abandoned.is_none(), "no REGISTERED yet");
        c.publish("t", vec![], Dict::new(), PublishOptions::default())
            .await
            .expect("publish");
        sleep(Duration::from_millis(300)).await;
        assert!(
            ran.is_empty(),
            "the abandoned handler ran: {:?}",
            ran.snapshot()
        );
        bounded(Duration::from_secs(10), "leave", c.leave())
            .await
            .expect("left");
    });
    let answer = reports.recv_timeout(READ).expect("peer report");
    assert_eq!(
        answer,
        json!([8, 68, 4, {}, "wamp.error.no_such_registration"])
    );
    peer.join().expect("scripted router");
}

#[test]
fn an_invocation_reusing_a_running_request_id_is_aborted() {
    let (listener, port) = listen();
    let peer = std::thread::spawn(move || {
        let mut s = accept(&listener);
        welcome(&mut s, 1);
        let reg = read(&mut s);
        assert_eq!(reg[0], 64, "REGISTER: {reg}");
        write(&mut s, json!([65, reg[1], 900]));
        write(&mut s, json!([68, 3, 900, {}]));
        write(&mut s, json!([68, 3, 900, {}]));
        let abort = read(&mut s);
        (abort, try_read(&mut s).is_none())
    });
    run(LIMIT, async move {
        let c = Client::connect(config(port)).await.expect("joins");
        c.register("com.slow", RegisterOptions::default(), |inv| async move {
            inv.wait_interrupted().await;
            Err(CallError::new("wamp.error.canceled"))
        })
        .await
        .expect("registers");
        bounded(Duration::from_secs(10), "closing", c.closed()).await;
    });
    let (abort, eof) = peer.join().expect("scripted router");
    assert_eq!(abort[0], 3, "ABORT: {abort}");
    assert_eq!(abort[2], "wamp.error.protocol_violation");
    assert!(eof, "then the connection closes");
}
    };
}

mod glommio_driver {
    use crate::client_support::glommio_driver::*;
    client_robust_tests!();
}

mod tokio_driver {
    use crate::client_support::tokio_driver::*;
    client_robust_tests!();
}
