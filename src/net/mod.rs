//! Transports: RawSocket and WebSocket (sans-IO), and the glommio IO glue.

pub mod rawsocket;
pub mod websocket;
