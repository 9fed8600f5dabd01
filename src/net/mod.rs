pub mod rawsocket;
