//! Switchyard: a thread-per-core WAMP v2 router, its client library and codecs.

pub mod codec;
pub mod net;
pub mod routing;
