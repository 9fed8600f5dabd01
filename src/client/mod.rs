//! placeholder
pub mod transport;
pub mod url;
