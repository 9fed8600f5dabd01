//! Sans-IO WebSocket: RFC 6455 framing and handshake, RFC 7692 permessage-deflate.
//!
//! This module owns everything about the WebSocket wire format and nothing about sockets,
//! timers or tasks. The glommio transport in `net/` pumps bytes through it, in both roles
//! (server for the router, client for the client library and the load generator).
//!
//! # How data flows
//!
//! ```text
//!            handshake                                 frames
//!  bytes ──> parse_request / ClientHandshake ──> (UpgradeRequest | ClientHandshakeResult)
//!            │ negotiate_deflate picks the params both ends agree on
//!            ▼
//!  bytes ──> BytesMut ──> FrameDecoder::poll ──> WsEvent::{Message, Ping, Pong, Close}
//!                          │ unmask in place, check every RFC 6455 rule,
//!                          │ inflate (Inflater) with a size limit, check UTF-8
//!
//!  payload ──> FrameEncoder::message ──> BytesMut (header + [mask] + [deflate] payload)
//!  shared Bytes ──> header_for(len, binary) + the same Bytes (server, no deflate: zero copy)
//! ```
//!
//! 1. Server: the transport appends received bytes to a buffer and calls
//!    [`handshake::parse_request`] until it returns a request (or an error, whose
//!    [`handshake::HandshakeError::response`] is the HTTP refusal to write back). The caller
//!    checks the path and picks a subprotocol, calls [`deflate::negotiate_deflate`], writes
//!    [`handshake::accept_response`], and keeps the bytes after the consumed count: they are
//!    already WebSocket frames.
//! 2. Client: [`client::ClientHandshake::new`] gives the request bytes to write; its
//!    `parse_response` validates the 101 answer.
//! 3. Both: [`codec`] builds the pair below from the handshake outcome. A [`frame::FrameDecoder`] (with an [`deflate::Inflater`] when deflate was agreed)
//!    turns bytes into [`frame::WsEvent`]s; a [`encode::FrameEncoder`] (with a
//!    [`deflate::Deflater`]) turns messages into frames. Errors are [`frame::WsError`], each
//!    mapped to its close code by [`frame::WsError::close_code`]; the transport then sends a
//!    close frame with that code and drops the connection.
//!
//! The decoder buffers whole frames (never more than the message size limit, checked from the
//! header first) and does not reserve buffer space itself: the transport decides how much to
//! read. Nothing here panics on peer input and nothing here performs I/O; time is not used.

#![warn(missing_docs)]

pub mod batched;
pub mod client;
pub mod deflate;
pub mod encode;
pub mod frame;
pub mod handshake;

pub use client::{ClientConfig, ClientHandshake, ClientHandshakeResult};
pub use deflate::{
    negotiate_deflate, DeflateConfig, DeflateOffer, DeflateParams, Deflater, Inflater,
};
pub use encode::{
    encode_close, encode_frame, encode_frame_parts, encode_ping, encode_pong, header_for,
    FrameEncoder, HeaderBytes,
};
pub use frame::{apply_mask, is_valid_close_code, FrameDecoder, OpCode, WsError, WsEvent};
pub use handshake::{
    accept_key, accept_response, error_response, parse_request, HandshakeError, UpgradeRequest,
};

/// The decoder and encoder of one established connection: `deflate` is the outcome of the
/// handshake ([`negotiate_deflate`] on a server, [`ClientHandshakeResult::deflate`] on a client)
/// and `config` our deflate policy (level, minimum size).
pub fn codec(
    role: Role,
    max_message_size: usize,
    deflate: Option<&DeflateParams>,
    config: &DeflateConfig,
) -> (FrameDecoder, FrameEncoder) {
    let decoder = FrameDecoder::new(role, max_message_size);
    let encoder = FrameEncoder::new(role);
    match deflate {
        Some(params) => (
            decoder.with_inflater(Inflater::new(params, role)),
            encoder.with_deflater(Deflater::new(params, role, config)),
        ),
        None => (decoder, encoder),
    }
}

/// Which end of the connection this endpoint is. It decides masking: a client masks every
/// frame it sends and requires unmasked frames; a server the reverse (RFC 6455 5.1). It also
/// decides which side of the negotiated deflate parameters applies to our compressor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The accepting end (the router).
    Server,
    /// The connecting end (the client library, the load generator).
    Client,
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    /// The whole path: client handshake, server handshake, then messages both ways.
    #[test]
    fn handshake_then_messages() {
        let client_config = ClientConfig {
            host: "localhost".into(),
            path: "/ws".into(),
            subprotocols: vec!["wamp.2.json".into()],
            deflate: Some(DeflateConfig::default()),
            extra_headers: Vec::new(),
        };
        let (client, request) = ClientHandshake::new(&client_config).unwrap();
        let (upgrade, _) = parse_request(&request).unwrap().unwrap();
        let policy = DeflateConfig {
            min_size: 0,
            ..Default::default()
        };
        let agreed = negotiate_deflate(&upgrade.deflate_offers, &policy);
        let protocol = upgrade.choose_subprotocol(&["wamp.2.json"]);
        let response = accept_response(&upgrade.key, protocol, agreed.as_ref(), &[]).unwrap();
        let (result, _) = client.parse_response(&response).unwrap().unwrap();
        assert!(result.deflate.is_some());
        let (mut server_in, mut server_out) =
            codec(Role::Server, 1 << 16, agreed.as_ref(), &policy);
        let (mut client_in, mut client_out) =
            codec(Role::Client, 1 << 16, result.deflate.as_ref(), &policy);
        let mut wire = BytesMut::new();
        for i in 0..10 {
            let msg = format!("[48,{i},{{}},\"com.example.add\",[1,2]]");
            client_out
                .message(false, msg.as_bytes(), &mut wire)
                .unwrap();
            let event = server_in.poll(&mut wire).unwrap();
            let expected = WsEvent::Message {
                binary: false,
                data: msg.clone().into(),
            };
            assert_eq!(event, Some(expected.clone()));
            server_out
                .message(false, msg.as_bytes(), &mut wire)
                .unwrap();
            assert_eq!(client_in.poll(&mut wire).unwrap(), Some(expected));
        }
    }
}
