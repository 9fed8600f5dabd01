//! Small helpers every layer may use (it imports nothing else of the crate): time formatting, returning freed heap memory.

pub mod fast;
pub mod time;
pub mod trim;

pub use time::iso8601;
