//! NATS message headers with arbitrary (valid) names and values, read through `HeaderMapExtractor`
//! and a process span, and arbitrary fields written through `HeaderMapInjector`. Properties: no
//! panic — async-nats itself panics on a header name with control characters, non-ASCII or `:`, or
//! a value with a line break, and the carriers must never hand it one; a read returns the last
//! value of a case-insensitively matching header.
#![no_main]

use arbitrary::Arbitrary;
use async_nats::HeaderMap;
use libfuzzer_sys::fuzz_target;
use opentelemetry::propagation::{Extractor, Injector};
use otel_messaging_async_nats::{HeaderMapExtractor, HeaderMapInjector};

#[derive(Debug, Arbitrary)]
struct Input {
    headers: Vec<(String, String)>,
    probe: String,
    written: Vec<(String, String)>,
}

/// What async-nats accepts without panicking (its own checks, restated).
fn acceptable(name: &str, value: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_graphic() && c != ':')
        && !value.contains(['\r', '\n'])
}

fuzz_target!(|input: Input| {
    let mut headers = HeaderMap::new();
    let mut expected: Option<String> = None;
    for (name, value) in &input.headers {
        if acceptable(name, value) {
            headers.append(name.as_str(), value.as_str());
        }
    }
    // The last value of the first name (in the map's order) that matches case-insensitively.
    if let Some((_, values)) =
        headers.iter().find(|(n, _)| AsRef::<str>::as_ref(*n).eq_ignore_ascii_case(&input.probe))
    {
        expected = values.last().map(|v| v.as_str().to_owned());
    }
    let extractor = HeaderMapExtractor(&headers);
    assert_eq!(extractor.get(&input.probe).map(str::to_owned), expected);
    let _ = extractor.get_all(&input.probe);
    let _ = extractor.keys();
    let instrumenter = otel_messaging::MessagingInstrumenter::builder()
        .with_metrics(false)
        .with_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new())
        .build();
    let cx = instrumenter.extract_context(&extractor);
    std::hint::black_box(cx);

    let mut out = HeaderMap::new();
    let mut injector = HeaderMapInjector(&mut out);
    for (key, value) in input.written {
        injector.set(&key, value);
    }
});
