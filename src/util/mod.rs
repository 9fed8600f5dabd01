//! Small helpers every layer may use (it imports nothing else of the crate): time formatting.

pub mod time;

pub use time::iso8601;
