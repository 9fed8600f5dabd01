//! Switchyard
pub mod codec;
pub mod net;
pub mod routing;
