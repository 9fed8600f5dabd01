//! What the routing-core benches share (`mod support;` in each).

use switchyard::codec::Serializer;
use switchyard::routing::meta::SessionDetails;

/// The median of some timings.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The details of an anonymous MessagePack session over a socket.
pub fn details() -> SessionDetails {
    SessionDetails {
        authmethod: "anonymous".into(),
        authprovider: "static".into(),
        local: false,
        serializer: Serializer::MsgPack,
    }
}
