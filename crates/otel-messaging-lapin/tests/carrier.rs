//! Broker-free carrier and naming tests for the lapin crate.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use lapin::types::{AMQPValue, ByteArray, FieldTable, LongString, ShortString};
use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState},
};
use otel_messaging::propagation::W3cPropagator;
use otel_messaging_lapin::{FieldTableExtractor, FieldTableInjector};

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn round_trips_through_w3c_propagator_as_long_strings() {
    let sc = SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let mut table = FieldTable::default();
    W3cPropagator::new()
        .inject_context(&Context::new().with_remote_span_context(sc), &mut FieldTableInjector(&mut table));
    assert_eq!(table.inner().get("traceparent"), Some(&AMQPValue::LongString(LongString::from(TP))));
    let cx = W3cPropagator::new().extract_with_context(&Context::new(), &FieldTableExtractor(&table));
    assert_eq!(cx.span().span_context().span_id().to_string(), "00f067aa0ba902b7");
}

#[test]
fn inject_replaces_the_exact_key_only_and_keeps_other_entries() {
    let mut table = FieldTable::default();
    table.insert("TraceParent".into(), AMQPValue::LongString("user's own".into()));
    table.insert("traceparent".into(), AMQPValue::LongString("old".into()));
    table.insert("app".into(), AMQPValue::LongInt(7));
    FieldTableInjector(&mut table).set("traceparent", "new".into());
    let keys: Vec<_> = table.inner().keys().map(ShortString::as_str).collect();
    assert_eq!(
        keys,
        ["TraceParent", "app", "traceparent"],
        "AMQP keys are case-sensitive: other spellings stay"
    );
    assert_eq!(table.inner().get("TraceParent"), Some(&AMQPValue::LongString("user's own".into())));
    assert_eq!(table.inner().get("app"), Some(&AMQPValue::LongInt(7)));
    assert_eq!(FieldTableExtractor(&table).get("traceparent"), Some("new"), "the exact key wins on read");
}

#[test]
fn extract_accepts_long_short_and_byte_array_values_only() {
    let mut table = FieldTable::default();
    table.insert("a".into(), AMQPValue::LongString("long".into()));
    table.insert("b".into(), AMQPValue::ShortString("short".into()));
    table.insert("c".into(), AMQPValue::ByteArray(ByteArray::from(b"bytes".to_vec())));
    table.insert("d".into(), AMQPValue::LongInt(1));
    table.insert("e".into(), AMQPValue::ByteArray(ByteArray::from(vec![0xff_u8])));
    table.insert("f".into(), AMQPValue::Void);
    let x = FieldTableExtractor(&table);
    assert_eq!(
        [x.get("a"), x.get("b"), x.get("c"), x.get("d"), x.get("e"), x.get("f")],
        [Some("long"), Some("short"), Some("bytes"), None, None, None]
    );
    assert_eq!(x.get("A"), Some("long"), "case-insensitive");
    assert_eq!(x.keys().len(), 6);
}

proptest::proptest! {
    #[test]
    fn extractor_never_panics(entries in proptest::collection::vec(("[a-zA-Z-]{1,12}", proptest::collection::vec(proptest::num::u8::ANY, 0..64)), 0..10)) {
        let mut table = FieldTable::default();
        for (k, v) in &entries {
            table.insert(k.as_str().into(), AMQPValue::ByteArray(ByteArray::from(v.clone())));
        }
        let x = FieldTableExtractor(&table);
        let strict = otel_messaging::propagation::StrictExtractor::new(&x);
        let _ = W3cPropagator::new().extract_with_context(&Context::new(), &strict);
    }
}
