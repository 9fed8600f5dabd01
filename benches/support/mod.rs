//! What the routing-core benches share (`mod support;` in each).

use switchyard::codec::Serializer;
use switchyard::routing::meta::SessionDetails;

/// The details of an anonymous MessagePack session over a socket.
pub fn details() -> SessionDetails {
    SessionDetails {
        authmethod: "anonymous".into(),
        authprovider: "static".into(),
        local: false,
        serializer: Serializer::MsgPack,
    }
}
