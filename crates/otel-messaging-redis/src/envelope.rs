//! The opt-in **envelope** that carries trace context with payloads on Redis lists and pub/sub,
//! which have no metadata channel.
//!
//! Why a module beside the standard anatomy: it is a wire format other languages must be able to
//! produce and read, so it is specified here byte for byte and kept apart from the Redis calls.
//!
//! # Wire format, version 1
//!
//! | Offset | Size | Content |
//! |---|---|---|
//! | 0 | 3 | magic `O T M` (`0x4F 0x54 0x4D`) |
//! | 3 | 1 | version, `0x01` |
//! | 4 | 2 | `N`, length of the header block in bytes, unsigned big-endian |
//! | 6 | `N` | header block: UTF-8 lines `key=value` separated by `\n` (0x0A); keys are the propagator's fields (`traceparent`, `tracestate`, `baggage`), contain no `=` and no `\n`; values contain no `\n` |
//! | 6 + `N` | rest | the payload, unchanged (any bytes) |
//!
//! Example: payload `hi` with one `traceparent` →
//! `OTM\x01\x00\x43traceparent=00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01hi`.
//!
//! Reading is forgiving by design, so producers of every kind can share a list or channel: bytes
//! that do not start with the magic and version 1, or whose header block is truncated, not UTF-8 or
//! has a line without `=`, are **not an envelope**: they are delivered unchanged, as the payload,
//! with no context. Decoding never fails and never loses bytes.

use opentelemetry::propagation::{Extractor, Injector};

/// The 3-byte magic at the start of an envelope: `OTM`.
pub const MAGIC: [u8; 3] = *b"OTM";
/// The envelope version this crate writes and reads: `1`.
pub const VERSION: u8 = 1;
/// Largest header block, in bytes (`u16::MAX`); fields beyond it are dropped when encoding.
pub const MAX_HEADER_LEN: usize = u16::MAX as usize;

/// Header fields collected for an envelope, as an [`Injector`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EnvelopeHeaders(pub Vec<(String, String)>);

impl Injector for EnvelopeHeaders {
    fn set(&mut self, key: &str, value: String) {
        if key.is_empty() || key.contains(['=', '\n']) || value.contains('\n') {
            return; // not representable; skipped, never an error
        }
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        self.0.push((key.to_owned(), value));
    }
}

impl Extractor for EnvelopeHeaders {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// Encodes `payload` with `headers` into a version-1 envelope. Fields that would make the header
/// block exceed [`MAX_HEADER_LEN`] are dropped (whole fields, never partial ones).
pub fn encode(headers: &EnvelopeHeaders, payload: &[u8]) -> Vec<u8> {
    let mut block = String::new();
    for (key, value) in &headers.0 {
        let extra = key.len() + 1 + value.len() + usize::from(!block.is_empty());
        if block.len() + extra > MAX_HEADER_LEN {
            continue;
        }
        if !block.is_empty() {
            block.push('\n');
        }
        block.push_str(key);
        block.push('=');
        block.push_str(value);
    }
    let mut out = Vec::with_capacity(6 + block.len() + payload.len());
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&(block.len() as u16).to_be_bytes());
    out.extend_from_slice(block.as_bytes());
    out.extend_from_slice(payload);
    out
}

/// Splits `bytes` into its envelope headers and payload. Anything that is not a well-formed
/// version-1 envelope yields `(None, bytes)`: the bytes unchanged, no context.
pub fn decode(bytes: &[u8]) -> (Option<EnvelopeHeaders>, &[u8]) {
    parse(bytes).map_or((None, bytes), |(headers, payload)| (Some(headers), payload))
}

fn parse(bytes: &[u8]) -> Option<(EnvelopeHeaders, &[u8])> {
    if bytes.len() < 6 || bytes[..3] != MAGIC || bytes[3] != VERSION {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
    let block = bytes.get(6..6 + len)?;
    let text = std::str::from_utf8(block).ok()?;
    let mut headers = Vec::new();
    for line in text.split('\n').filter(|l| !l.is_empty()) {
        let (k, v) = line.split_once('=')?;
        if k.is_empty() {
            return None;
        }
        headers.push((k.to_owned(), v.to_owned()));
    }
    Some((EnvelopeHeaders(headers), &bytes[6 + len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn documented_example_is_exact() {
        let headers = EnvelopeHeaders(vec![("traceparent".into(), TP.into())]);
        let bytes = encode(&headers, b"hi");
        let mut expected = b"OTM\x01\x00\x43".to_vec();
        expected.extend_from_slice(format!("traceparent={TP}hi").as_bytes());
        assert_eq!(bytes, expected);
        assert_eq!(decode(&bytes), (Some(headers), &b"hi"[..]));
    }

    #[test]
    fn non_envelopes_pass_through_unchanged() {
        for bytes in [
            &b""[..],
            b"plain",
            b"OTM",
            b"OTM\x02\x00\x00x",
            b"OTM\x01\x00\x09short",
            b"OTM\x01\x00\x03a\nb",
            b"OTM\x01\x00\x02\xff\xfe",
        ] {
            assert_eq!(decode(bytes), (None, bytes), "{bytes:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn round_trips_any_payload(payload in proptest::collection::vec(proptest::num::u8::ANY, 0..512), tp in "[0-9a-f]{8}") {
            let headers = EnvelopeHeaders(vec![("traceparent".into(), tp), ("baggage".into(), "k=v".into())]);
            let bytes = encode(&headers, &payload);
            let (decoded, rest) = decode(&bytes);
            proptest::prop_assert_eq!(decoded, Some(headers));
            proptest::prop_assert_eq!(rest, &payload[..]);
        }

        #[test]
        fn decode_never_panics_and_never_loses_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let (headers, payload) = decode(&bytes);
            if headers.is_none() {
                proptest::prop_assert_eq!(payload, &bytes[..]);
            }
        }
    }
}
