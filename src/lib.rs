//! Switchyard
pub mod net;
