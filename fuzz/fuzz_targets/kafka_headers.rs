//! Kafka record headers with arbitrary key and value bytes (as librdkafka, kcat and the C/Go
//! clients can write them), read through `HeadersExtractor` and a process span. Properties: no
//! panic; `get` is the last UTF-8 value of a case-insensitively equal UTF-8 key; `get_all` all of
//! them in order; `keys` the distinct UTF-8 keys; injecting replaces only the exact key.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use opentelemetry::propagation::{Extractor, Injector};
use otel_messaging_rdkafka::{HeadersExtractor, HeadersInjector, raw_headers};
use rdkafka::message::Headers as _;

#[derive(Debug, Arbitrary)]
struct Input {
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    probe: String,
    inject: Option<String>,
}

fuzz_target!(|input: Input| {
    let mut headers = raw_headers(input.headers.iter().map(|(k, v)| (k.as_slice(), v.as_deref())));
    let extractor = HeadersExtractor(&headers);
    let utf8 = |bytes: &[u8]| std::str::from_utf8(bytes).ok().map(str::to_owned);
    // librdkafka keeps a key up to its first NUL byte.
    let key_of = |k: &[u8]| k.iter().position(|&b| b == 0).map_or(k, |n| &k[..n]).to_vec();
    let model: Vec<(String, String)> = input
        .headers
        .iter()
        .filter_map(|(k, v)| Some((utf8(&key_of(k))?, utf8(v.as_deref()?)?)))
        .filter(|(k, _)| k.eq_ignore_ascii_case(&input.probe))
        .collect();
    let all: Vec<&str> = model.iter().map(|(_, v)| v.as_str()).collect();
    assert_eq!(extractor.get(&input.probe), all.last().copied());
    assert_eq!(extractor.get_all(&input.probe), (!all.is_empty()).then(|| all.clone()));
    let keys = extractor.keys();
    let mut distinct = keys.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), keys.len());
    let _ = otel_messaging::propagation::StrictExtractor::new(&extractor).get("tracestate");

    if let Some(value) = input.inject {
        let before = headers.count();
        let exact = input.headers.iter().filter(|(k, _)| key_of(k) == input.probe.as_bytes()).count();
        if !input.probe.contains('\0') {
            HeadersInjector(&mut headers).set(&input.probe, value.clone());
            assert_eq!(headers.count(), before - exact + 1);
            assert_eq!(
                HeadersExtractor(&headers).get_all(&input.probe).and_then(|v| v.last().copied()),
                Some(value.as_str())
            );
        }
    }
});
