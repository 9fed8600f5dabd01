//! permessage-deflate (RFC 7692): negotiation, and the per-connection compressor and
//! decompressor.
//!
//! Negotiation data flows client offer → [`DeflateOffer`] (parsed by the handshake) →
//! [`negotiate_deflate`] → [`DeflateParams`] (sent back in the 101 response and used on both
//! ends). A connection then owns one [`Deflater`] (outgoing messages) and one [`Inflater`]
//! (incoming messages); both keep their LZ77 window between messages unless the agreed
//! `*_no_context_takeover` parameter says to reset it.
//!
//! # Window bits: what we chose
//!
//! flate2 is built with its default backend (miniz_oxide), which only does 15-bit windows
//! (`new_with_window_bits` needs a zlib backend, and enabling one would add a dependency).
//! That is enough to honour RFC 7692 exactly, by declining what we cannot do:
//!
//! * Our decompressor always uses a 32 KiB (15-bit) window, so it reads anything a peer
//!   compresses with any window size 8..=15. We therefore never need to limit the peer:
//!   as a server we accept `client_max_window_bits` (with or without a value) and leave it out
//!   of the response (RFC 7692 7.1.2.2 allows that), as a client we never offer it.
//! * Our compressor always uses a 15-bit window. An offer with `server_max_window_bits=N`,
//!   N < 15, asks us to compress with a smaller window; we cannot, so as a server we decline
//!   that offer and try the next one (RFC 7692 7.1.2.1: a server that does not support the
//!   requested window size declines the offer). `server_max_window_bits=15` is accepted and
//!   echoed. Because of this, the zlib quirk around 8-bit windows (raw deflate cannot do 8,
//!   other implementations silently use 9) never arises here.
//! * An offer that is malformed (unknown or duplicated parameter, bad value) is declined
//!   (RFC 7692 5.1), it does not fail the handshake.
//!
//! Memory: a context-takeover compressor keeps its whole state between messages. A router with
//! many idle connections can set [`DeflateConfig::server_no_context_takeover`] to always reset
//! it (the state is still allocated; lowering that is future work).

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::frame::WsError;
use super::Role;

/// The four bytes that a sync flush ends with; stripped by the sender, appended by the receiver
/// (RFC 7692 7.2.1 and 7.2.2).
const SYNC_TRAILER: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Largest amount of output the inflater may produce per step. It bounds how far past the
/// message size limit a zip bomb can make us allocate before we notice.
const INFLATE_STEP: usize = 16 * 1024;

/// The window size we compress and decompress with (miniz_oxide's only one).
const OUR_WINDOW_BITS: u8 = 15;

/// Our permessage-deflate policy, for either role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeflateConfig {
    /// Offer (client) or accept (server) permessage-deflate at all.
    pub enabled: bool,
    /// Server role: always compress each message with a fresh window (we add the parameter to
    /// the response even when the client did not ask). Client role: ask the server for it.
    pub server_no_context_takeover: bool,
    /// Server role: ask the client to reset its window per message (we may include it even
    /// when not offered, RFC 7692 7.1.1.2). Client role: offer to reset ours.
    pub client_no_context_takeover: bool,
    /// zlib compression level, 0..=9 (values above 9 are treated as 9).
    pub level: u32,
    /// Messages shorter than this are sent uncompressed (RSV1 clear); compressing tiny
    /// messages costs CPU and usually bytes. RSV1 is per message, so this is always allowed.
    pub min_size: usize,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            level: 6,
            min_size: 64,
        }
    }
}

impl DeflateConfig {
    /// The `Sec-WebSocket-Extensions` value a client sends to offer permessage-deflate.
    pub fn offer_header_value(&self) -> String {
        let mut value = String::from("permessage-deflate");
        if self.client_no_context_takeover {
            value.push_str("; client_no_context_takeover");
        }
        if self.server_no_context_takeover {
            value.push_str("; server_no_context_takeover");
        }
        value
    }
}

/// One permessage-deflate offer from a client, as parsed from `Sec-WebSocket-Extensions`.
/// Only well-formed offers are kept (malformed ones are declined, RFC 7692 5.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeflateOffer {
    /// The client asks the server to reset its compressor per message.
    pub server_no_context_takeover: bool,
    /// The client announces it will reset its compressor per message.
    pub client_no_context_takeover: bool,
    /// The client asks the server to compress with at most this window (8..=15).
    pub server_max_window_bits: Option<u8>,
    /// `None`: absent. `Some(None)`: present without value (the client supports the
    /// parameter). `Some(Some(n))`: the client will compress with at most `n` bits.
    pub client_max_window_bits: Option<Option<u8>>,
}

/// The parameters both ends agreed on: the content of the accepted extension response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeflateParams {
    /// The server resets its compressor per message (the client's inflater resets too).
    pub server_no_context_takeover: bool,
    /// The client resets its compressor per message (the server's inflater resets too).
    pub client_no_context_takeover: bool,
    /// Window the server compresses with, if limited.
    pub server_max_window_bits: Option<u8>,
    /// Window the client compresses with, if limited.
    pub client_max_window_bits: Option<u8>,
}

impl DeflateParams {
    /// The `Sec-WebSocket-Extensions` response value for these parameters.
    pub fn to_header_value(&self) -> String {
        let mut value = String::from("permessage-deflate");
        if self.server_no_context_takeover {
            value.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            value.push_str("; client_no_context_takeover");
        }
        if let Some(bits) = self.server_max_window_bits {
            value.push_str(&format!("; server_max_window_bits={bits}"));
        }
        if let Some(bits) = self.client_max_window_bits {
            value.push_str(&format!("; client_max_window_bits={bits}"));
        }
        value
    }

    /// Whether the compressor of `role` resets its window after each message.
    fn resets_compressor(&self, role: Role) -> bool {
        match role {
            Role::Server => self.server_no_context_takeover,
            Role::Client => self.client_no_context_takeover,
        }
    }

    /// Parses the parameters of a server's response (client role). Strict, as RFC 7692 5 asks
    /// of a client: unknown or duplicated parameters, bad values, and parameters we did not
    /// offer (`client_max_window_bits`, which we never offer) fail the handshake.
    pub(crate) fn from_response(params: &[(String, Option<String>)]) -> Result<Self, String> {
        let mut out = DeflateParams::default();
        let mut seen = [false; 4];
        for (name, value) in params {
            let index = match name.to_ascii_lowercase().as_str() {
                "server_no_context_takeover" => 0,
                "client_no_context_takeover" => 1,
                "server_max_window_bits" => 2,
                "client_max_window_bits" => 3,
                _ => return Err(format!("unknown permessage-deflate parameter {name}")),
            };
            if std::mem::replace(&mut seen[index], true) {
                return Err(format!("duplicate permessage-deflate parameter {name}"));
            }
            match index {
                0 | 1 if value.is_some() => return Err(format!("{name} takes no value")),
                0 => out.server_no_context_takeover = true,
                1 => out.client_no_context_takeover = true,
                2 => {
                    let bits = value.as_deref().and_then(parse_window_bits);
                    out.server_max_window_bits =
                        Some(bits.ok_or_else(|| format!("bad server_max_window_bits {value:?}"))?);
                }
                _ => return Err("client_max_window_bits in response, but not offered".into()),
            }
        }
        Ok(out)
    }
}

impl DeflateOffer {
    /// Parses the parameters of one offer; `None` if the offer must be declined as malformed.
    pub(crate) fn from_params(params: &[(String, Option<String>)]) -> Option<Self> {
        let mut offer = DeflateOffer::default();
        let mut seen = [false; 4];
        for (name, value) in params {
            let index = match name.to_ascii_lowercase().as_str() {
                "server_no_context_takeover" => 0,
                "client_no_context_takeover" => 1,
                "server_max_window_bits" => 2,
                "client_max_window_bits" => 3,
                _ => return None,
            };
            if std::mem::replace(&mut seen[index], true) {
                return None;
            }
            match (index, value) {
                (0 | 1, Some(_)) => return None,
                (0, None) => offer.server_no_context_takeover = true,
                (1, None) => offer.client_no_context_takeover = true,
                (2, value) => {
                    offer.server_max_window_bits = Some(parse_window_bits(value.as_deref()?)?)
                }
                (_, None) => offer.client_max_window_bits = Some(None),
                (_, Some(v)) => offer.client_max_window_bits = Some(Some(parse_window_bits(v)?)),
            }
        }
        Some(offer)
    }
}

/// A window-bits value: a decimal 8..=15 without leading zeros (RFC 7692 7.1.2).
fn parse_window_bits(value: &str) -> Option<u8> {
    if value.is_empty() || value.len() > 2 || value.starts_with('0') {
        return None;
    }
    let bits: u8 = value.parse().ok()?;
    (8..=15).contains(&bits).then_some(bits)
}

/// Server side: picks the first offer we can honour and returns the parameters to answer
/// with, or `None` to run without compression. See the module doc for what "honour" means.
pub fn negotiate_deflate(offers: &[DeflateOffer], config: &DeflateConfig) -> Option<DeflateParams> {
    if !config.enabled {
        return None;
    }
    offers
        .iter()
        .find(|offer| {
            offer
                .server_max_window_bits
                .is_none_or(|bits| bits >= OUR_WINDOW_BITS)
        })
        .map(|offer| DeflateParams {
            server_no_context_takeover: offer.server_no_context_takeover
                || config.server_no_context_takeover,
            client_no_context_takeover: offer.client_no_context_takeover
                || config.client_no_context_takeover,
            server_max_window_bits: offer.server_max_window_bits,
            client_max_window_bits: None,
        })
}

/// Per-connection compressor for outgoing messages.
pub struct Deflater {
    compress: Compress,
    /// Reset the window after each message (our side's `*_no_context_takeover`).
    reset_each_message: bool,
    min_size: usize,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deflater")
            .field("reset_each_message", &self.reset_each_message)
            .field("min_size", &self.min_size)
            .finish_non_exhaustive()
    }
}

impl Deflater {
    /// A compressor for the `role` side of a connection with the agreed `params`.
    pub fn new(params: &DeflateParams, role: Role, config: &DeflateConfig) -> Self {
        Self {
            compress: Compress::new(Compression::new(config.level.min(9)), false),
            reset_each_message: params.resets_compressor(role),
            min_size: config.min_size,
        }
    }

    /// Whether a message of `len` bytes should be compressed at all.
    pub fn should_compress(&self, len: usize) -> bool {
        len > 0 && len >= self.min_size
    }

    /// Compresses one whole message into `out` (appended): raw deflate, sync flush, trailing
    /// `00 00 ff ff` removed (RFC 7692 7.2.1). The frame carrying it must have RSV1 set.
    pub fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(), WsError> {
        let start = out.len();
        let in_start = self.compress.total_in();
        out.reserve(input.len() / 2 + 64);
        loop {
            let consumed = (self.compress.total_in() - in_start) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(input.len() / 4 + 64);
            }
            let spare = out.capacity() - out.len();
            let len_before = out.len();
            let rest = input.get(consumed..).unwrap_or_default();
            self.compress
                .compress_vec(rest, out, FlushCompress::Sync)
                .map_err(|_| WsError::Compression)?;
            let consumed = (self.compress.total_in() - in_start) as usize;
            if consumed >= input.len() && out.len() - len_before < spare {
                break;
            }
        }
        if out.len() - start < SYNC_TRAILER.len() || !out.ends_with(&SYNC_TRAILER) {
            return Err(WsError::Compression);
        }
        out.truncate(out.len() - SYNC_TRAILER.len());
        if self.reset_each_message {
            self.compress.reset();
        }
        Ok(())
    }
}

/// Per-connection decompressor for incoming messages, with a size limit that is enforced
/// while inflating (zip-bomb safe: output grows in steps of at most 16 KiB and stops as soon
/// as it passes the limit).
pub struct Inflater {
    decompress: Decompress,
    /// Reset the window after each message (the peer's `*_no_context_takeover`).
    reset_each_message: bool,
    /// The peer ended the deflate stream (BFINAL); ignore the rest of this message and start a
    /// new stream with the next one.
    stream_ended: bool,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflater")
            .field("reset_each_message", &self.reset_each_message)
            .field("stream_ended", &self.stream_ended)
            .finish_non_exhaustive()
    }
}

impl Inflater {
    /// A decompressor for the `role` side of a connection with the agreed `params`.
    pub fn new(params: &DeflateParams, role: Role) -> Self {
        let peer = match role {
            Role::Server => Role::Client,
            Role::Client => Role::Server,
        };
        Self {
            decompress: Decompress::new(false),
            reset_each_message: params.resets_compressor(peer),
            stream_ended: false,
        }
    }

    /// Inflates one frame's compressed payload, appending to `out`, which holds the message
    /// decompressed so far. Fails with [`WsError::MessageTooBig`] as soon as `out` would pass
    /// `limit` bytes.
    pub fn inflate(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), WsError> {
        let mut pos = 0;
        while !self.stream_ended {
            if out.len() > limit {
                return Err(WsError::MessageTooBig { limit });
            }
            let room = INFLATE_STEP.min((limit - out.len()).saturating_add(1));
            if out.capacity() - out.len() < room {
                out.reserve_exact(room);
            }
            let spare = out.capacity() - out.len();
            let (in_before, out_before) = (self.decompress.total_in(), self.decompress.total_out());
            let rest = input.get(pos..).unwrap_or_default();
            let status = self
                .decompress
                .decompress_vec(rest, out, FlushDecompress::Sync)
                .map_err(|_| WsError::InvalidCompressedData)?;
            let consumed = (self.decompress.total_in() - in_before) as usize;
            let produced = (self.decompress.total_out() - out_before) as usize;
            pos += consumed;
            if out.len() > limit {
                return Err(WsError::MessageTooBig { limit });
            }
            if status == Status::StreamEnd {
                self.stream_ended = true;
            } else if pos >= input.len() && produced < spare {
                break;
            } else if consumed == 0 && produced == 0 {
                // No progress with input left and room to write: the data is not deflate.
                return Err(WsError::InvalidCompressedData);
            }
        }
        Ok(())
    }

    /// Ends a message: feeds the `00 00 ff ff` trailer the sender stripped, then resets the
    /// window if the peer does not keep context (or ended its stream).
    pub fn finish_message(&mut self, out: &mut Vec<u8>, limit: usize) -> Result<(), WsError> {
        self.inflate(&SYNC_TRAILER, out, limit)?;
        if self.reset_each_message || self.stream_ended {
            self.decompress.reset(false);
            self.stream_ended = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(list: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.map(str::to_string)))
            .collect()
    }

    fn inflate_all(
        inflater: &mut Inflater,
        input: &[u8],
        limit: usize,
    ) -> Result<Vec<u8>, WsError> {
        let mut out = Vec::new();
        inflater.inflate(input, &mut out, limit)?;
        inflater.finish_message(&mut out, limit)?;
        Ok(out)
    }

    #[test]
    fn offer_parsing_accepts_valid_and_declines_malformed() {
        let offer = DeflateOffer::from_params(&params(&[
            ("server_no_context_takeover", None),
            ("client_max_window_bits", None),
        ]));
        assert_eq!(
            offer,
            Some(DeflateOffer {
                server_no_context_takeover: true,
                client_max_window_bits: Some(None),
                ..Default::default()
            })
        );
        let offer = DeflateOffer::from_params(&params(&[
            ("server_max_window_bits", Some("10")),
            ("client_max_window_bits", Some("8")),
        ]));
        assert_eq!(offer.and_then(|o| o.client_max_window_bits), Some(Some(8)));
        for bad in [
            params(&[("unknown", None)]),
            params(&[
                ("server_no_context_takeover", None),
                ("server_no_context_takeover", None),
            ]),
            params(&[("server_no_context_takeover", Some("1"))]),
            params(&[("server_max_window_bits", None)]),
            params(&[("server_max_window_bits", Some("16"))]),
            params(&[("client_max_window_bits", Some("7"))]),
            params(&[("client_max_window_bits", Some("010"))]),
            params(&[("client_max_window_bits", Some("x"))]),
        ] {
            assert_eq!(DeflateOffer::from_params(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn negotiation_declines_small_server_window_and_takes_next_offer() {
        let small = DeflateOffer {
            server_max_window_bits: Some(10),
            ..Default::default()
        };
        let plain = DeflateOffer {
            client_no_context_takeover: true,
            ..Default::default()
        };
        let config = DeflateConfig::default();
        let agreed = negotiate_deflate(&[small, plain], &config);
        assert_eq!(
            agreed,
            Some(DeflateParams {
                client_no_context_takeover: true,
                ..Default::default()
            })
        );
        assert_eq!(negotiate_deflate(&[small], &config), None);
        let full = DeflateOffer {
            server_max_window_bits: Some(15),
            ..Default::default()
        };
        let agreed = negotiate_deflate(&[full], &config);
        assert_eq!(agreed.and_then(|p| p.server_max_window_bits), Some(15));
        let disabled = DeflateConfig {
            enabled: false,
            ..Default::default()
        };
        assert_eq!(negotiate_deflate(&[plain], &disabled), None);
    }

    #[test]
    fn negotiation_adds_configured_no_context_takeover() {
        let config = DeflateConfig {
            server_no_context_takeover: true,
            client_no_context_takeover: true,
            ..Default::default()
        };
        let agreed = negotiate_deflate(&[DeflateOffer::default()], &config);
        let value = agreed.map(|p| p.to_header_value());
        assert_eq!(
            value.as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        );
    }

    #[test]
    fn response_params_are_strict() {
        let ok = DeflateParams::from_response(&params(&[
            ("server_no_context_takeover", None),
            ("server_max_window_bits", Some("9")),
        ]));
        assert_eq!(
            ok,
            Ok(DeflateParams {
                server_no_context_takeover: true,
                server_max_window_bits: Some(9),
                ..Default::default()
            })
        );
        assert!(
            DeflateParams::from_response(&params(&[("client_max_window_bits", Some("9"))]))
                .is_err()
        );
        assert!(DeflateParams::from_response(&params(&[("x", None)])).is_err());
        assert!(
            DeflateParams::from_response(&params(&[("server_max_window_bits", None)])).is_err()
        );
    }

    #[test]
    fn rfc7692_hello_examples_inflate() {
        let mut inflater = Inflater::new(&DeflateParams::default(), Role::Client);
        // 7.2.3.1: one compressed message.
        let out = inflate_all(
            &mut inflater,
            &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
            100,
        );
        assert_eq!(out.as_deref(), Ok(&b"Hello"[..]));
        // 7.2.3.2: the second "Hello" refers back to the first one (context takeover).
        let out = inflate_all(&mut inflater, &[0xf2, 0x00, 0x11, 0x00, 0x00], 100);
        assert_eq!(out.as_deref(), Ok(&b"Hello"[..]));
        // 7.2.3.3: a stored (uncompressed) DEFLATE block.
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(
            inflate_all(&mut inflater, &stored, 100).as_deref(),
            Ok(&b"Hello"[..])
        );
        // 7.2.3.4: BFINAL set, then a new stream starts with the next message.
        let last = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        assert_eq!(
            inflate_all(&mut inflater, &last, 100).as_deref(),
            Ok(&b"Hello"[..])
        );
        let again = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(
            inflate_all(&mut inflater, &again, 100).as_deref(),
            Ok(&b"Hello"[..])
        );
        // 7.2.3.5: two DEFLATE blocks in one message.
        let mut fresh = Inflater::new(&DeflateParams::default(), Role::Client);
        let two = [
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ];
        assert_eq!(
            inflate_all(&mut fresh, &two, 100).as_deref(),
            Ok(&b"Hello"[..])
        );
    }

    #[test]
    fn no_context_takeover_resets_inflater() {
        let params = DeflateParams {
            server_no_context_takeover: true,
            ..Default::default()
        };
        let mut inflater = Inflater::new(&params, Role::Client);
        let first = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(
            inflate_all(&mut inflater, &first, 100).as_deref(),
            Ok(&b"Hello"[..])
        );
        // The back-reference of 7.2.3.2 is invalid in a fresh window.
        let second = inflate_all(&mut inflater, &[0xf2, 0x00, 0x11, 0x00, 0x00], 100);
        assert_ne!(second.as_deref(), Ok(&b"Hello"[..]));
    }

    #[test]
    fn deflater_strips_trailer_and_round_trips_with_context() {
        for reset in [false, true] {
            let params = DeflateParams {
                server_no_context_takeover: reset,
                ..Default::default()
            };
            let config = DeflateConfig::default();
            let mut deflater = Deflater::new(&params, Role::Server, &config);
            let mut inflater = Inflater::new(&params, Role::Client);
            let mut sizes = Vec::new();
            for _ in 0..3 {
                let msg = b"Hello, Hello, switchyard! ".repeat(4);
                let mut wire = Vec::new();
                assert_eq!(deflater.compress(&msg, &mut wire), Ok(()));
                assert!(!wire.ends_with(&SYNC_TRAILER));
                sizes.push(wire.len());
                assert_eq!(
                    inflate_all(&mut inflater, &wire, 1 << 20).as_deref(),
                    Ok(&msg[..])
                );
            }
            // With context takeover the repeated message compresses to a back-reference.
            assert_eq!(sizes[1] < sizes[0], !reset, "{sizes:?}");
        }
    }

    #[test]
    fn incompressible_and_empty_inputs_round_trip() {
        use rand::{rngs::StdRng, Rng, SeedableRng};
        let mut rng = StdRng::seed_from_u64(7692);
        let params = DeflateParams::default();
        let config = DeflateConfig {
            level: 9,
            ..Default::default()
        };
        let mut deflater = Deflater::new(&params, Role::Server, &config);
        let mut inflater = Inflater::new(&params, Role::Client);
        for len in (0..3000).step_by(37).chain([0, 1, 65_536, 200_000]) {
            let msg: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
            let mut wire = Vec::new();
            assert_eq!(deflater.compress(&msg, &mut wire), Ok(()));
            let out = inflate_all(&mut inflater, &wire, usize::MAX);
            assert_eq!(out.as_deref(), Ok(&msg[..]), "len {len}");
        }
    }

    #[test]
    fn zip_bomb_stops_at_limit_without_full_allocation() {
        let params = DeflateParams::default();
        let mut deflater = Deflater::new(&params, Role::Client, &DeflateConfig::default());
        let bomb_plain = vec![0u8; 64 << 20];
        let mut bomb = Vec::new();
        assert_eq!(deflater.compress(&bomb_plain, &mut bomb), Ok(()));
        drop(bomb_plain);
        assert!(bomb.len() < 256 << 10, "bomb is {} bytes", bomb.len());
        let limit = 1 << 20;
        let mut inflater = Inflater::new(&params, Role::Server);
        let mut out = Vec::new();
        let result = inflater.inflate(&bomb, &mut out, limit);
        assert_eq!(result, Err(WsError::MessageTooBig { limit }));
        assert!(
            out.capacity() <= limit + 2 * INFLATE_STEP,
            "capacity {}",
            out.capacity()
        );
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut inflater = Inflater::new(&DeflateParams::default(), Role::Server);
        let result = inflate_all(&mut inflater, &[0xff; 64], 1000);
        assert_eq!(result, Err(WsError::InvalidCompressedData));
    }
}
