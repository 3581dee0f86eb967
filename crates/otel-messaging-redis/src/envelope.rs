//! The opt-in **envelope** that carries trace context with payloads on Redis lists and pub/sub,
//! which have no metadata channel.
//!
//! Why a module beside the standard anatomy: it is a wire format other languages must be able to
//! produce and read, so it is specified here byte for byte and kept apart from the Redis calls.
//!
//! # Wire format, version 2
//!
//! | Offset | Size | Content |
//! |---|---|---|
//! | 0 | 7 | magic `8F 4F 54 4D 45 4E 56` (`0x8F` then `OTMENV`; `0x8F` cannot start UTF-8 text, so no text or JSON payload starts like an envelope) |
//! | 7 | 1 | version, `0x02` |
//! | 8 | 2 | `N`, length of the header block in bytes, unsigned big-endian |
//! | 10 | `N` | header block: UTF-8 lines `key=value` separated by `\n` (0x0A); keys are the propagator's fields (`traceparent`, `tracestate`, `baggage`), non-empty, contain no `=` and no `\n`; values contain no `\n` |
//! | 10 + `N` | 4 | CRC-32 (IEEE 802.3, the checksum of zlib, `zlib.crc32` in Python, `zlib.crc32` in Node) of bytes `0 .. 10 + N`, unsigned big-endian |
//! | 14 + `N` | rest | the payload, unchanged (any bytes) |
//!
//! # Never ambiguous, never lossy
//!
//! * Reading: bytes are an envelope only if the magic, the version, the length, a well-formed
//!   header block **and** the checksum all match. Anything else — including a payload that merely
//!   starts with the magic — is delivered unchanged, as the payload, with no context. A payload
//!   written by someone else is taken for an envelope only if it carries this 8-byte prefix and a
//!   matching CRC-32 of its own first bytes (odds 2⁻³² for arbitrary bytes after the prefix).
//! * Writing ([`wrap`]): the payload is wrapped only when there is context to carry, or when the
//!   payload would itself read as an envelope (then it is wrapped, with an empty header block, so
//!   that the consumer gets it back byte for byte). Otherwise it is sent as it is, so consumers
//!   that know nothing of envelopes keep working. So for **every** payload, what a traced consumer
//!   receives is exactly what the traced producer was given.
//!
//! Version 1 (`OTM\x01`, no checksum) is no longer read: it could take plain payloads for
//! envelopes.

use opentelemetry::propagation::{Extractor, Injector};

/// The 7-byte magic at the start of an envelope: `0x8F` then `OTMENV`.
pub(crate) const MAGIC: [u8; 7] = *b"\x8FOTMENV";
/// The envelope version this crate writes and reads: `2`.
pub(crate) const VERSION: u8 = 2;
/// Envelope field holding the send time (milliseconds since the Unix epoch, decimal), written by
/// the traced list push and publish so that consumers can record the queue wait.
pub const SENT_TIME_FIELD: &str = "otel-sent-ms";

impl EnvelopeHeaders {
    /// The send time in [`SENT_TIME_FIELD`], when it holds one.
    pub fn sent_time(&self) -> Option<std::time::SystemTime> {
        let millis: u64 = self.get(SENT_TIME_FIELD)?.parse().ok()?;
        std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_millis(millis))
    }
}

/// Largest header block, in bytes (`u16::MAX`); fields beyond it are dropped when encoding.
pub(crate) const MAX_HEADER_LEN: usize = u16::MAX as usize;
/// Bytes before the header block: magic, version, length.
const PREFIX_LEN: usize = MAGIC.len() + 1 + 2;
/// Bytes of the checksum after the header block.
const CRC_LEN: usize = 4;

/// Header fields collected for an envelope, as an [`Injector`].
///
/// Fields that cannot be represented (empty key, a key with `=` or a line break, a value with a
/// line break) are skipped by [`set`](Injector::set) and by [`encode`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EnvelopeHeaders(pub Vec<(String, String)>);

fn representable(key: &str, value: &str) -> bool {
    !key.is_empty() && !key.contains(['=', '\n']) && !value.contains('\n')
}

impl Injector for EnvelopeHeaders {
    fn set(&mut self, key: &str, value: String) {
        if !representable(key, &value) {
            return; // not representable; skipped, never an error
        }
        self.0.retain(|(k, _)| k != key);
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

/// Encodes `payload` with `headers` into a version-2 envelope, always (see [`wrap`] for the
/// producer's rule). Fields that are not representable, or that would make the header block
/// exceed 65 535 bytes (the most its 2-byte length can say), are dropped as whole fields, in
/// order: a field is kept only if every field before it was.
pub fn encode(headers: &EnvelopeHeaders, payload: &[u8]) -> Vec<u8> {
    let mut block = String::new();
    for (key, value) in &headers.0 {
        let extra = key.len() + 1 + value.len() + usize::from(!block.is_empty());
        if !representable(key, value) || block.len() + extra > MAX_HEADER_LEN {
            break;
        }
        if !block.is_empty() {
            block.push('\n');
        }
        block.push_str(key);
        block.push('=');
        block.push_str(value);
    }
    let len = u16::try_from(block.len()).unwrap_or(0);
    let mut out = Vec::with_capacity(PREFIX_LEN + block.len() + CRC_LEN + payload.len());
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&block.as_bytes()[..usize::from(len)]);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// What a traced producer sends for `payload`: an envelope when `headers` holds context, or when
/// the payload would itself read as an envelope, or when `always` (the user asked for envelopes
/// on every message); otherwise `None`: send the payload as it is.
pub fn wrap(headers: &EnvelopeHeaders, payload: &[u8], always: bool) -> Option<Vec<u8>> {
    (always || !headers.0.is_empty() || parse(payload).is_some()).then(|| encode(headers, payload))
}

/// Splits `bytes` into its envelope headers and payload. Anything that is not a well-formed
/// version-2 envelope with a matching checksum yields `(None, bytes)`: the bytes unchanged, no
/// context.
pub fn decode(bytes: &[u8]) -> (Option<EnvelopeHeaders>, &[u8]) {
    parse(bytes).map_or((None, bytes), |(headers, payload)| (Some(headers), payload))
}

fn parse(bytes: &[u8]) -> Option<(EnvelopeHeaders, &[u8])> {
    if bytes.len() < PREFIX_LEN + CRC_LEN || bytes[..MAGIC.len()] != MAGIC || bytes[MAGIC.len()] != VERSION {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([bytes[PREFIX_LEN - 2], bytes[PREFIX_LEN - 1]]));
    let block_end = PREFIX_LEN + len;
    let crc = bytes.get(block_end..block_end + CRC_LEN)?;
    if crc32fast::hash(&bytes[..block_end]).to_be_bytes() != crc {
        return None;
    }
    let text = std::str::from_utf8(&bytes[PREFIX_LEN..block_end]).ok()?;
    let mut headers = Vec::new();
    for line in text.split('\n').filter(|l| !l.is_empty()) {
        let (k, v) = line.split_once('=')?;
        if k.is_empty() {
            return None;
        }
        headers.push((k.to_owned(), v.to_owned()));
    }
    Some((EnvelopeHeaders(headers), &bytes[block_end + CRC_LEN..]))
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn documented_layout_is_exact() {
        let headers = EnvelopeHeaders(vec![("traceparent".into(), TP.into())]);
        let bytes = encode(&headers, b"hi");
        let mut expected = b"\x8FOTMENV\x02\x00\x43".to_vec();
        expected.extend_from_slice(format!("traceparent={TP}").as_bytes());
        let crc = crc32fast::hash(&expected);
        expected.extend_from_slice(&crc.to_be_bytes());
        expected.extend_from_slice(b"hi");
        assert_eq!(bytes, expected);
        assert_eq!(decode(&bytes), (Some(headers), &b"hi"[..]));
    }

    #[test]
    fn non_envelopes_pass_through_unchanged() {
        let valid = encode(&EnvelopeHeaders(vec![("k".into(), "v".into())]), b"x");
        let mut bad_crc = valid.clone();
        bad_crc[12] ^= 1;
        for bytes in [
            &b""[..],
            b"plain",
            b"OTM\x01\x00\x00rest",
            b"\x8FOTMENV",
            b"\x8FOTMENV\x01\x00\x00\x00\x00\x00\x00x",
            b"\x8FOTMENV\x02\x00\x00\x00\x00\x00\x00rest",
            b"\x8FOTMENV\x02\x00\x09short",
            &bad_crc,
            &valid[..valid.len() - 2],
        ] {
            assert_eq!(decode(bytes), (None, bytes), "{bytes:?}");
        }
    }

    #[test]
    fn nothing_to_propagate_means_no_envelope() {
        assert_eq!(wrap(&EnvelopeHeaders::default(), b"plain", false), None);
        assert!(wrap(&EnvelopeHeaders::default(), b"plain", true).is_some());
        // A payload that is itself an envelope is wrapped, so it arrives as it was sent.
        let inner = encode(&EnvelopeHeaders(vec![("traceparent".into(), TP.into())]), b"x");
        let outer = wrap(&EnvelopeHeaders::default(), &inner, false).expect("wrapped");
        assert_eq!(decode(&outer), (Some(EnvelopeHeaders::default()), &inner[..]));
    }

    #[test]
    fn unrepresentable_fields_stop_encoding_in_order() {
        let headers = EnvelopeHeaders(vec![
            ("traceparent".into(), TP.into()),
            ("bad=key".into(), "v".into()),
            ("baggage".into(), "k=v".into()),
        ]);
        let (decoded, _) = decode(&encode(&headers, b""));
        assert_eq!(decoded, Some(EnvelopeHeaders(vec![("traceparent".into(), TP.into())])));
    }

    /// What a traced consumer gets for what a traced producer sent.
    fn delivered(headers: &EnvelopeHeaders, payload: &[u8]) -> Vec<u8> {
        match wrap(headers, payload, false) {
            Some(bytes) => decode(&bytes).1.to_vec(),
            None => decode(payload).1.to_vec(),
        }
    }

    fn payloads() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let arbitrary = proptest::collection::vec(any::<u8>(), 0..512);
        let magic = (proptest::collection::vec(any::<u8>(), 0..64), 0..4usize).prop_map(|(rest, how)| {
            let mut v = MAGIC.to_vec();
            match how {
                0 => {}
                1 => v.push(VERSION),
                2 => v.extend_from_slice(&[VERSION, 0, 0]),
                _ => return encode(&EnvelopeHeaders(vec![("k".into(), "v".into())]), &rest),
            }
            v.extend_from_slice(&rest);
            v
        });
        prop_oneof![arbitrary, magic]
    }

    proptest::proptest! {
        #[test]
        fn round_trips_any_payload(payload in payloads(), tp in "[0-9a-f]{8}") {
            let headers = EnvelopeHeaders(vec![("traceparent".into(), tp), ("baggage".into(), "k=v".into())]);
            let bytes = encode(&headers, &payload);
            let (decoded, rest) = decode(&bytes);
            proptest::prop_assert_eq!(decoded, Some(headers));
            proptest::prop_assert_eq!(rest, &payload[..]);
        }

        #[test]
        fn every_payload_is_delivered_byte_for_byte(payload in payloads(), with_context in proptest::bool::ANY) {
            let headers = if with_context {
                EnvelopeHeaders(vec![("traceparent".into(), TP.into())])
            } else {
                EnvelopeHeaders::default()
            };
            proptest::prop_assert_eq!(delivered(&headers, &payload), payload);
        }

        #[test]
        fn decode_never_panics_and_never_loses_bytes(bytes in payloads()) {
            let (headers, payload) = decode(&bytes);
            if headers.is_none() {
                proptest::prop_assert_eq!(payload, &bytes[..]);
            }
        }
    }
}
