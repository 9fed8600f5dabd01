//! Switchyard
pub mod codec;
pub mod net;
