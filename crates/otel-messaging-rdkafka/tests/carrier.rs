//! Broker-free carrier tests: round trips through the W3C propagators, replacement on inject,
//! last-wins extraction, and skipping of null / non-UTF-8 values.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use opentelemetry::{
    Context, KeyValue,
    baggage::BaggageExt,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState},
};
use otel_messaging::testing::w3c_propagator;
use otel_messaging_rdkafka::{HeadersExtractor, HeadersInjector};
use rdkafka::message::{Header, Headers, OwnedHeaders};

fn remote_context() -> Context {
    let sc = SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").expect("trace id"),
        SpanId::from_hex("00f067aa0ba902b7").expect("span id"),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    Context::new().with_remote_span_context(sc).with_baggage([KeyValue::new("tenant", "acme")])
}

fn pairs(headers: &OwnedHeaders) -> Vec<(String, Option<Vec<u8>>)> {
    headers.iter().map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec))).collect()
}

#[test]
fn round_trips_through_w3c_propagators() {
    let propagator = w3c_propagator();
    let mut headers = OwnedHeaders::new();
    propagator.inject_context(&remote_context(), &mut HeadersInjector(&mut headers));
    let cx = propagator.extract_with_context(&Context::new(), &HeadersExtractor(&headers));
    assert_eq!(cx.span().span_context().trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(cx.span().span_context().span_id().to_string(), "00f067aa0ba902b7");
    assert_eq!(cx.baggage().get("tenant").map(|v| v.as_str().to_string()), Some("acme".into()));
}

#[test]
fn inject_replaces_existing_key_and_keeps_other_headers_in_order() {
    let mut headers = OwnedHeaders::new()
        .insert(Header { key: "app", value: Some("1") })
        .insert(Header { key: "TraceParent", value: Some("old") })
        .insert(Header { key: "nullhdr", value: None::<&str> })
        .insert(Header { key: "traceparent", value: Some("older") });
    HeadersInjector(&mut headers).set("traceparent", "new".to_string());
    assert_eq!(
        pairs(&headers),
        vec![
            ("app".to_string(), Some(b"1".to_vec())),
            ("nullhdr".to_string(), None),
            ("traceparent".to_string(), Some(b"new".to_vec())),
        ]
    );
}

#[test]
fn extract_returns_last_value_and_get_all_returns_all() {
    let headers = OwnedHeaders::new()
        .insert(Header { key: "baggage", value: Some("a=1") })
        .insert(Header { key: "traceparent", value: Some("first") })
        .insert(Header { key: "Baggage", value: Some("b=2") })
        .insert(Header { key: "traceparent", value: Some("last") });
    let extractor = HeadersExtractor(&headers);
    assert_eq!(extractor.get("traceparent"), Some("last"));
    assert_eq!(extractor.get_all("baggage"), Some(vec!["a=1", "b=2"]));
    assert_eq!(extractor.keys(), vec!["baggage", "traceparent", "Baggage"]);
    assert_eq!(extractor.get("missing"), None);
    assert_eq!(extractor.get_all("missing"), None);
}

#[test]
fn null_and_non_utf8_values_are_skipped() {
    let headers = OwnedHeaders::new()
        .insert(Header { key: "traceparent", value: Some("good") })
        .insert(Header { key: "traceparent", value: Some(&[0xff_u8, 0xfe][..]) })
        .insert(Header { key: "traceparent", value: None::<&str> });
    let extractor = HeadersExtractor(&headers);
    assert_eq!(extractor.get("traceparent"), Some("good"), "the last readable value");
    assert_eq!(extractor.get_all("traceparent"), Some(vec!["good"]));
    let only_bad = OwnedHeaders::new().insert(Header { key: "traceparent", value: Some(&[0xc3_u8][..]) });
    assert_eq!(HeadersExtractor(&only_bad).get("traceparent"), None);
}

#[test]
fn works_over_borrowed_headers() {
    let headers = OwnedHeaders::new().insert(Header { key: "traceparent", value: Some("v") });
    let borrowed = headers.as_borrowed();
    assert_eq!(HeadersExtractor(borrowed).get("traceparent"), Some("v"));
}

proptest::proptest! {
    #[test]
    fn extractor_never_panics_on_arbitrary_headers(entries in proptest::collection::vec(("[a-zA-Z-]{0,12}", proptest::option::of(proptest::collection::vec(proptest::num::u8::ANY, 0..64))), 0..12)) {
        let mut headers = OwnedHeaders::new();
        for (key, value) in &entries {
            headers = headers.insert(Header { key: key.as_str(), value: value.as_deref() });
        }
        let extractor = HeadersExtractor(&headers);
        let _ = extractor.get("traceparent");
        let _ = extractor.get_all("tracestate");
        let _ = extractor.keys();
        let cx = w3c_propagator().extract_with_context(&Context::new(), &otel_messaging::propagation::StrictExtractor::new(&extractor));
        let _ = cx.span().span_context().is_valid();
    }
}
