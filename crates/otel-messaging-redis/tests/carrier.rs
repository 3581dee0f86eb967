//! Broker-free carrier tests for the Redis crate.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;

use opentelemetry::{
    Context,
    propagation::{Extractor, TextMapPropagator},
    trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState},
};
use otel_messaging::propagation::W3cPropagator;
use otel_messaging_redis::{FieldsInjector, StreamFieldsExtractor, envelope};
use redis::Value;

fn cx() -> Context {
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ))
}

#[test]
fn fields_round_trip_through_w3c_propagator() {
    let mut fields = vec![("traceparent".to_string(), "stale".to_string())];
    // The instrumenter wraps every carrier in NonEmptyInjector (the SDK writes an empty tracestate).
    let mut injector = FieldsInjector(&mut fields);
    W3cPropagator::new()
        .inject_context(&cx(), &mut otel_messaging::propagation::NonEmptyInjector(&mut injector));
    assert_eq!(fields.len(), 1, "replaced, no empty tracestate");
    assert_ne!(fields[0].1, "stale");
    let map: HashMap<String, Value> =
        fields.into_iter().map(|(k, v)| (k, Value::BulkString(v.into_bytes()))).collect();
    let extracted = W3cPropagator::new().extract_with_context(&Context::new(), &StreamFieldsExtractor(&map));
    assert_eq!(extracted.span().span_context().span_id().to_string(), "00f067aa0ba902b7");
}

#[test]
fn extractor_reads_string_values_only() {
    let map = HashMap::from([
        ("a".to_string(), Value::BulkString(b"bulk".to_vec())),
        ("b".to_string(), Value::SimpleString("simple".into())),
        ("c".to_string(), Value::Int(1)),
        ("d".to_string(), Value::BulkString(vec![0xff])),
        ("e".to_string(), Value::Nil),
    ]);
    let x = StreamFieldsExtractor(&map);
    assert_eq!(
        [x.get("a"), x.get("B"), x.get("c"), x.get("d"), x.get("e")],
        [Some("bulk"), Some("simple"), None, None, None]
    );
}

#[test]
fn extractor_prefers_the_exact_key_in_small_and_large_entries() {
    // Up to 8 fields are scanned, more are looked up by hash first: both read alike.
    for extra in [0, 20] {
        let mut map: HashMap<String, Value> =
            (0..extra).map(|i| (format!("f{i}"), Value::BulkString(b"x".to_vec()))).collect();
        map.insert("TraceParent".into(), Value::BulkString(b"folded".to_vec()));
        map.insert("traceparent".into(), Value::BulkString(b"exact".to_vec()));
        map.insert("TRACESTATE".into(), Value::Int(7));
        map.insert("Baggage".into(), Value::SimpleString("k=v".into()));
        let x = StreamFieldsExtractor(&map);
        assert_eq!(x.get("traceparent"), Some("exact"), "{extra} extra fields");
        assert_eq!(x.get("TRACEPARENT").map(|v| ["exact", "folded"].contains(&v)), Some(true));
        assert_eq!(x.get("tracestate"), None, "a non-string value reads as absent");
        assert_eq!(x.get("baggage"), Some("k=v"), "{extra} extra fields");
        assert_eq!(x.get("missing"), None);
    }
}

#[test]
fn envelope_carries_the_w3c_context() {
    let mut headers = envelope::EnvelopeHeaders::default();
    W3cPropagator::new().inject_context(&cx(), &mut headers);
    let bytes = envelope::encode(&headers, b"\x00payload\xff");
    let (decoded, payload) = envelope::decode(&bytes);
    assert_eq!(payload, b"\x00payload\xff");
    let extracted =
        W3cPropagator::new().extract_with_context(&Context::new(), &decoded.expect("an envelope"));
    assert_eq!(extracted.span().span_context().trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
}
