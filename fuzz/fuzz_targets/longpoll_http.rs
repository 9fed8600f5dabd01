//! The HTTP long-poll transport's request parsing (`net::longpoll`): `peek`, `parse_request`,
//! `route` and the `/open` body.
//!
//! Checked: no panic; `peek` never claims a GET; an error has a 4xx status; a parsed head
//! consumed at most what it was given and parses the same from exactly those bytes, and every
//! shorter prefix is incomplete; a route's transport id is plain ASCII alphanumerics (it is
//! echoed nowhere, but used as a map key); a chosen protocol is one of ours; the response
//! built with the request's `Origin` has exactly one head end.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::net::longpoll::{
    choose_protocol, parse_request, peek, response, route, Peek, Route, MAX_HEAD_BYTES,
};

const BASE: &str = "/lp";
const OURS: [&str; 3] = ["wamp.2.json", "wamp.2.msgpack", "wamp.2.cbor.batched"];

fuzz_target!(|data: &[u8]| {
    if peek(data, BASE) == Peek::LongPoll {
        assert!(!data.starts_with(b"GET "));
    }
    if let Ok(p) = choose_protocol(data, &OURS) {
        assert!(OURS.contains(&p));
    }
    let (request, used) = match parse_request(data, BASE) {
        Ok(None) => return,
        Err(e) => {
            assert!((400..500).contains(&e.status()), "{e:?}");
            return;
        }
        Ok(Some(parsed)) => parsed,
    };
    assert!(used <= data.len() && used <= MAX_HEAD_BYTES);
    assert_eq!(
        parse_request(&data[..used], BASE),
        Ok(Some((request.clone(), used))),
        "the bytes after the head changed the request"
    );
    for cut in [used - 1, used / 2, 1] {
        if cut < used {
            assert_eq!(parse_request(&data[..cut], BASE), Ok(None), "prefix {cut} of {used}");
        }
    }
    if let Route::Send(id) | Route::Receive(id) | Route::Close(id) = &request.route {
        assert!(!id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
    if let Ok(path) = std::str::from_utf8(data) {
        let _ = route(path, BASE);
    }
    let reply = response(200, request.origin.as_deref(), None, b"body", request.keep_alive);
    let head_ends = reply.windows(4).filter(|w| w == b"\r\n\r\n").count();
    assert_eq!(head_ends, 1, "{}", String::from_utf8_lossy(&reply));
});
