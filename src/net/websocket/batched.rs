//! WAMP-over-Batched-WebSocket (`wamp.2.json.batched`, `wamp.2.msgpack.batched`,
//! `wamp.2.cbor.batched`; spec: "Message Batching"): several WAMP messages in one WebSocket
//! message. JSON messages each end with the record separator `0x1e`; binary ones (MessagePack,
//! CBOR) each start with their length as a big-endian `u32`. A batch of zero messages is
//! illegal and fails the transport. Sans-IO: splits received WebSocket messages, frames
//! outgoing WAMP messages.
//!
//! The spec writes the separator as `\30` and names it the record separator, `0x1e`;
//! autobahn (Python and JavaScript), and so Crossbar, read `\30` as an octal escape and use
//! `0x18`. Neither byte can appear unescaped in JSON text, so a JSON batch ended by either is
//! accepted, and the router answers a peer with the separator that peer uses (the spec's until
//! the peer has sent something: peers speak first, with HELLO).

use bytes::Bytes;

/// The record separator ending each JSON message of a batch.
pub const RECORD_SEPARATOR: u8 = 0x1e;
/// The separator autobahn uses instead (`b"\30"` in Python: octal).
pub const AUTOBAHN_SEPARATOR: u8 = 0x18;

/// The suffix of a WebSocket subprotocol that asks for batching.
pub const SUFFIX: &str = ".batched";

/// Why a received WebSocket message is not a valid batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// A WebSocket message with no WAMP message in it.
    #[error("empty batch")]
    Empty,
    /// JSON text after the last record separator.
    #[error("JSON batch not ended by a record separator (0x1e, or autobahn's 0x18)")]
    Unterminated,
    /// A length prefix, or the message it announces, runs past the end.
    #[error("binary batch: a length prefix or message is cut short")]
    Truncated,
}

/// Splits one received WebSocket message of a batched transport into its WAMP messages
/// (slices of `data`, no copy). `binary`: MessagePack or CBOR framing, else JSON's; for JSON,
/// `separator` is set to the one this batch used.
pub fn split(binary: bool, data: &Bytes, separator: &mut u8) -> Result<Vec<Bytes>, BatchError> {
    let mut out = Vec::new();
    if binary {
        let mut pos = 0;
        while pos < data.len() {
            let len = data
                .get(pos..pos + 4)
                .ok_or(BatchError::Truncated)?
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            let start = pos + 4;
            let end = start.checked_add(len).filter(|e| *e <= data.len());
            let end = end.ok_or(BatchError::Truncated)?;
            out.push(data.slice(start..end));
            pos = end;
        }
    } else {
        let sep = match data.last() {
            None => return Err(BatchError::Empty),
            Some(&s @ (RECORD_SEPARATOR | AUTOBAHN_SEPARATOR)) => s,
            Some(_) => return Err(BatchError::Unterminated),
        };
        *separator = sep;
        let mut start = 0;
        for (i, b) in data.iter().enumerate() {
            if *b == sep {
                out.push(data.slice(start..i));
                start = i + 1;
            }
        }
    }
    if out.is_empty() {
        return Err(BatchError::Empty);
    }
    Ok(out)
}

/// Appends one WAMP message, framed for a batch, to `out` (a batch of one when sent alone);
/// `separator` ends a JSON message.
pub fn push(binary: bool, separator: u8, msg: &[u8], out: &mut Vec<u8>) {
    if binary {
        out.extend_from_slice(&(msg.len() as u32).to_be_bytes());
        out.extend_from_slice(msg);
    } else {
        out.extend_from_slice(msg);
        out.push(separator);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_batches_with_either_separator() {
        for sep in [RECORD_SEPARATOR, AUTOBAHN_SEPARATOR] {
            let mut b = Vec::new();
            push(false, sep, b"[1]", &mut b);
            push(false, sep, b"[2,3]", &mut b);
            assert_eq!(b, [b"[1]" as &[u8], &[sep], b"[2,3]", &[sep]].concat());
            let mut seen = 0;
            let parts = split(false, &Bytes::from(b), &mut seen).unwrap();
            assert_eq!(
                parts,
                vec![Bytes::from_static(b"[1]"), Bytes::from_static(b"[2,3]")]
            );
            assert_eq!(seen, sep);
        }
        let mut seen = 0;
        assert_eq!(
            split(false, &Bytes::new(), &mut seen),
            Err(BatchError::Empty)
        );
        for bad in [&b"[1]"[..], b"[1]\x1e[2]", b"\x1e"] {
            let r = split(false, &Bytes::copy_from_slice(bad), &mut seen);
            assert!(r.is_err() || bad == b"\x1e", "{bad:?}: {r:?}");
        }
    }

    #[test]
    fn binary_batches() {
        let mut b = Vec::new();
        push(true, 0, &[0x91, 0x01], &mut b);
        push(true, 0, &[0x80], &mut b);
        assert_eq!(b, [0, 0, 0, 2, 0x91, 0x01, 0, 0, 0, 1, 0x80]);
        let mut seen = 0;
        let parts = split(true, &Bytes::from(b.clone()), &mut seen).unwrap();
        assert_eq!(
            parts,
            vec![
                Bytes::from_static(&[0x91, 0x01]),
                Bytes::from_static(&[0x80])
            ]
        );
        assert_eq!(
            split(true, &Bytes::new(), &mut seen),
            Err(BatchError::Empty)
        );
        for cut in 1..b.len() {
            let r = split(true, &Bytes::copy_from_slice(&b[..cut]), &mut seen);
            assert!(cut == 6 || r.is_err(), "cut at {cut}: {r:?}");
        }
        // A length beyond the data, even a huge one, is an error, not an allocation.
        assert_eq!(
            split(
                true,
                &Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 1]),
                &mut seen
            ),
            Err(BatchError::Truncated)
        );
    }
}
