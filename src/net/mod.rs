//! Transports: RawSocket and WebSocket (sans-IO), and the glommio IO glue.

pub mod inproc;
pub mod rawsocket;
pub mod websocket;
