//! Transports: RawSocket and WebSocket (sans-IO), and the glommio IO glue.

pub mod duplex;
pub mod inproc;
pub mod longpoll;
pub mod rawsocket;
pub mod sock;
pub mod websocket;
