//! WebSocket upgrade request parsing (`parse_request`), server side.
//!
//! Checked: no panic; an error has an HTTP status and a response; a parsed request consumed at
//! most what it was given, parses the same from exactly the consumed bytes, and every shorter
//! prefix is "incomplete" (what the read loop relies on); the 101 response we would answer with
//! can be written, and our own client accepts it with the same subprotocol and deflate
//! parameters the server agreed to.
#![no_main]

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use switchyard::net::websocket::handshake::MAX_HEAD_BYTES;
use switchyard::net::websocket::{
    accept_response, negotiate_deflate, parse_request, ClientConfig, ClientHandshake, DeflateConfig,
};

const SUBPROTOCOLS: [&str; 2] = ["wamp.2.msgpack", "wamp.2.json"];

fuzz_target!(|data: &[u8]| {
    let (request, consumed) = match parse_request(data) {
        Ok(None) => return,
        Err(e) => {
            assert!((400..600).contains(&e.status()), "{e:?}");
            assert!(e.response().starts_with(b"HTTP/1.1 "));
            return;
        }
        Ok(Some(parsed)) => parsed,
    };
    assert!(consumed <= data.len() && consumed <= MAX_HEAD_BYTES);
    assert_eq!(
        parse_request(&data[..consumed]),
        Ok(Some((request.clone(), consumed))),
        "the bytes after the head changed the request"
    );
    // A few strictly shorter prefixes: the head is incomplete there.
    for cut in [consumed - 1, consumed / 2, consumed * 7 / 8, 1] {
        if cut < consumed {
            assert_eq!(
                parse_request(&data[..cut]),
                Ok(None),
                "prefix of {cut} of a {consumed}-byte head is not incomplete"
            );
        }
    }
    let _ = request.header("host");
    let _ = request.cookie("cbtid");

    for config in [
        DeflateConfig::default(),
        DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..Default::default()
        },
        DeflateConfig {
            enabled: false,
            ..Default::default()
        },
    ] {
        let agreed = negotiate_deflate(&request.deflate_offers, &config);
        if let Some(params) = &agreed {
            assert!(request
                .deflate_offers
                .iter()
                .any(|o| o.server_max_window_bits.is_none_or(|b| b == 15)));
            assert_eq!(params.client_max_window_bits, None);
        }
        let protocol = request.choose_subprotocol(&SUBPROTOCOLS);
        if let Some(p) = protocol {
            assert!(request.subprotocols.iter().any(|q| q == p));
        }
        let response = accept_response(&request.key, protocol, agreed.as_ref(), &[])
            .expect("the accept response for a valid request can be written");

        // Our own client, with the same key, must accept that answer.
        let key: [u8; 16] = BASE64
            .decode(&request.key)
            .expect("key was validated")
            .try_into()
            .expect("key is 16 bytes");
        if BASE64.encode(key) != request.key {
            continue; // a non-canonical spelling our client would never send
        }
        let client_config = ClientConfig {
            host: "localhost".into(),
            path: "/".into(),
            subprotocols: SUBPROTOCOLS.iter().map(|s| s.to_string()).collect(),
            deflate: Some(DeflateConfig::default()),
            extra_headers: Vec::new(),
        };
        let (client, _) = ClientHandshake::with_key(&client_config, key).expect("client request");
        let (result, used) = client
            .parse_response(&response)
            .unwrap_or_else(|e| {
                panic!(
                    "client refuses our response: {e:?}\n{}",
                    String::from_utf8_lossy(&response)
                )
            })
            .expect("response is complete");
        assert_eq!(used, response.len());
        assert_eq!(result.subprotocol.as_deref(), protocol);
        assert_eq!(
            result.deflate, agreed,
            "client and server disagree on deflate"
        );
    }
});
