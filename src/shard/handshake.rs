//! The transport handshakes of a new connection (after TLS, if any): RawSocket (the 4-byte
//! serializer/length negotiation) and WebSocket (the HTTP upgrade with subprotocol and
//! permessage-deflate negotiation), each yielding the session's serializer, deframer, framer
//! and any bytes read past the handshake. The wire rules are sans-IO in [`crate::net`]; this
//! is their IO, driven by [`super::conn`].

use super::conn::{read_some, Deframer, Framer};
use super::Shard;
use crate::codec::Serializer;
use crate::metrics::Limit;
use crate::net::rawsocket::{self, RejectCode, SerializerId};
use crate::net::websocket::{self, Role};
use bytes::BytesMut;
use futures_lite::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub(super) type Negotiated = (Serializer, Deframer, Framer, BytesMut);

/// What a WebSocket listener's connection turned out to be.
pub(super) enum Accepted {
    /// A WAMP session over the transport, negotiated.
    Session(Negotiated),
    /// HTTP long-poll requests (see [`super::longpoll`]); the bytes read so far.
    LongPoll(BytesMut),
}

/// Counts a connection in `switchyard_connections` while its TLS and transport handshakes run;
/// once they succeed the session counts itself ([`SessionHandle::open`]).
pub(super) struct Handshaking(std::sync::Arc<crate::metrics::ShardMetrics>);

impl Handshaking {
    pub(super) fn count(metrics: &std::sync::Arc<crate::metrics::ShardMetrics>) -> Self {
        metrics.connections.inc();
        Handshaking(metrics.clone())
    }
}

impl Drop for Handshaking {
    fn drop(&mut self) {
        self.0.connections.dec();
    }
}

pub(super) async fn rawsocket_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    shard: &Shard,
    stream: &mut S,
    over_limit: bool,
) -> Option<Negotiated> {
    let mut req = [0u8; 4];
    stream.read_exact(&mut req).await.ok()?;
    let hello = match rawsocket::parse_client_handshake(req) {
        Ok(h) => h,
        Err(e) => {
            tracing::debug!(shard = shard.id, "RawSocket handshake refused: {e}");
            if let Some(reply) = e.reply() {
                let _ = stream.write_all(&reply).await;
            }
            return None;
        }
    };
    let serializer = match hello.serializer {
        SerializerId::JSON => Some(Serializer::Json),
        SerializerId::MSGPACK => Some(Serializer::MsgPack),
        SerializerId::CBOR => Some(Serializer::Cbor),
        SerializerId::UBJSON => Some(shard.ubjson()),
        _ => None,
    }
    // Turned off on RawSocket listeners (`--rs-serializers`): refused like an unknown one.
    .filter(|s| shard.cfg.transports.allows(false, *s));
    let serializer = match serializer {
        Some(s) => s,
        None => {
            let _ = stream
                .write_all(&rawsocket::reject_reply(RejectCode::SerializerUnsupported))
                .await;
            return None;
        }
    };
    if over_limit {
        shard.metrics.limit_exceeded.inc(Limit::Connections);
        let _ = stream
            .write_all(&rawsocket::reject_reply(
                RejectCode::MaxConnectionCountReached,
            ))
            .await;
        return None;
    }
    let ours = shard
        .cfg
        .limits
        .max_message_size_rs
        .min(rawsocket::MAX_FRAME_LEN as usize) as u32;
    let exp = rawsocket::exponent_for(ours);
    stream
        .write_all(&rawsocket::server_reply(hello.serializer, exp))
        .await
        .ok()?;
    Some((
        serializer,
        Deframer::Raw(rawsocket::FrameDecoder::for_exponent(exp)),
        Framer::Raw {
            peer_max: hello.max_len as usize,
        },
        BytesMut::new(),
    ))
}

pub(super) async fn websocket_handshake<S: AsyncRead + AsyncWrite + Unpin>(
    shard: &Shard,
    stream: &mut S,
    path: &str,
    over_limit: bool,
    channel: &mut crate::auth::Channel,
) -> Option<Accepted> {
    let mut buf = BytesMut::new();
    let longpoll = shard
        .cfg
        .transports
        .longpoll
        .as_ref()
        .map(|o| o.path.as_str());
    let (req, used) = loop {
        if let Some(base) = longpoll {
            match crate::net::longpoll::peek(&buf, base) {
                crate::net::longpoll::Peek::LongPoll => return Some(Accepted::LongPoll(buf)),
                crate::net::longpoll::Peek::Partial => {
                    if read_some(shard, stream, &mut buf).await.ok()? == 0 {
                        return None;
                    }
                    continue;
                }
                crate::net::longpoll::Peek::Other => {}
            }
        }
        match websocket::parse_request(&buf) {
            Ok(Some(r)) => break r,
            Ok(None) => {
                if read_some(shard, stream, &mut buf).await.ok()? == 0 {
                    return None;
                }
            }
            Err(e) => {
                let _ = stream.write_all(&e.response()).await;
                return None;
            }
        }
    };
    let _ = buf.split_to(used);
    let refuse =
        |status: u16, reason: &str, body: &str| websocket::error_response(status, reason, body);
    if req.path != path {
        let _ = stream
            .write_all(&refuse(
                404,
                "Not Found",
                "no WebSocket endpoint at this path",
            ))
            .await;
        return None;
    }
    let supported = shard.ws_subprotocols();
    let Some(proto) = req.choose_subprotocol(&supported) else {
        let _ = stream
            .write_all(&refuse(
                400,
                "Bad Request",
                &format!(
                    "no supported WAMP subprotocol offered (this listener speaks {})",
                    supported.join(", ")
                ),
            ))
            .await;
        return None;
    };
    if over_limit {
        shard.metrics.limit_exceeded.inc(Limit::Connections);
        let _ = stream
            .write_all(&refuse(
                503,
                "Service Unavailable",
                "connection limit reached",
            ))
            .await;
        return None;
    }
    let batched = proto.ends_with(websocket::batched::SUFFIX);
    let serializer =
        match Serializer::from_subprotocol(proto.trim_end_matches(websocket::batched::SUFFIX))? {
            Serializer::Ubjson => shard.ubjson(),
            s => s,
        };
    let deflate_cfg = websocket::DeflateConfig {
        enabled: shard.cfg.ws_compression,
        ..Default::default()
    };
    let params = websocket::negotiate_deflate(&req.deflate_offers, &deflate_cfg);
    // Cookie tracking: keep a known cookie, else set a fresh one.
    let mut set_cookie = None;
    if let Some(store) = &shard.cfg.ws_cookie {
        let presented = req.cookie(&store.name);
        let (value, known) = store.track(presented, &rand::random(), std::time::Instant::now());
        if !known {
            set_cookie = Some(store.set_cookie_header(&value, channel.tls_exporter.is_some()));
        }
        channel.cookie = Some(value);
    }
    let extra: Vec<(&str, &str)> = set_cookie
        .as_deref()
        .map(|v| ("Set-Cookie", v))
        .into_iter()
        .collect();
    let resp = websocket::accept_response(&req.key, Some(proto), params.as_ref(), &extra).ok()?;
    stream.write_all(&resp).await.ok()?;
    let (dec, enc) = websocket::codec(
        Role::Server,
        shard.cfg.limits.max_message_size_ws,
        params.as_ref(),
        &deflate_cfg,
    );
    let dec = dec.with_max_decompressed_size(shard.cfg.limits.max_decompressed_size_ws);
    let (deframer, framer) = if batched {
        let binary = serializer.is_binary();
        let separator =
            std::rc::Rc::new(std::cell::Cell::new(websocket::batched::RECORD_SEPARATOR));
        (
            Deframer::WsBatched(Box::new(dec), binary, Default::default(), separator.clone()),
            Framer::WsBatched(Box::new(enc), separator),
        )
    } else {
        (Deframer::Ws(Box::new(dec)), Framer::Ws(Box::new(enc)))
    };
    Some(Accepted::Session((serializer, deframer, framer, buf)))
}
