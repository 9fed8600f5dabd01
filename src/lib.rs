//! Switchyard

pub mod net;
