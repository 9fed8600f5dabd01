//! The messages between cluster nodes (`switchyard::cluster::wire`): arbitrary bytes from NATS
//! never panic, and whatever decodes re-encodes into something that decodes again (the
//! contents of a batch too).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use switchyard::cluster::wire::{decode, encode, Msg};

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    let Ok(msg) = decode(&bytes) else {
        return;
    };
    if let Msg::Batch(parts) = &msg {
        for p in parts {
            let _ = decode(p);
        }
    }
    let again = encode(&msg);
    decode(&again).expect("a decoded message re-encodes into a decodable one");
});
