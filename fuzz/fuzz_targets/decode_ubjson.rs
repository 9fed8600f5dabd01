//! UBJSON and BJData codecs (one input, both dialects): arbitrary frames never panic, and
//! whatever decodes re-encodes in every serializer and decodes again (see
//! `check_codec_roundtrip`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::codec::Serializer;
use switchyard_fuzz::check_codec_roundtrip;

fuzz_target!(|data: &[u8]| {
    check_codec_roundtrip(Serializer::Ubjson, data);
    check_codec_roundtrip(Serializer::Bjdata, data);
});
