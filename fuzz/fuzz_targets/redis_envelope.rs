//! The Redis envelope decoder on arbitrary bytes, and the producer/consumer pair on arbitrary
//! payloads and header fields. Properties: no panic; bytes that are not an envelope come back
//! whole; every payload a traced producer sends is delivered byte for byte.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use otel_messaging_redis::envelope::{EnvelopeHeaders, decode, encode, wrap};

#[derive(Debug, Arbitrary)]
struct Input {
    bytes: Vec<u8>,
    headers: Vec<(String, String)>,
    always: bool,
}

fuzz_target!(|input: Input| {
    let (headers, payload) = decode(&input.bytes);
    if headers.is_none() {
        assert_eq!(payload, &input.bytes[..], "not an envelope: delivered whole");
    }
    let fields = EnvelopeHeaders(input.headers);
    let sent = wrap(&fields, &input.bytes, input.always);
    let delivered = decode(sent.as_deref().unwrap_or(&input.bytes)).1;
    assert_eq!(delivered, &input.bytes[..], "delivered byte for byte");
    let enveloped = encode(&fields, &input.bytes);
    let (decoded, rest) = decode(&enveloped);
    assert!(decoded.is_some());
    assert_eq!(rest, &input.bytes[..]);
});
