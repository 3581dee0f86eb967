//! The SDK's own W3C propagators, given to the builder or installed globally, are served by our
//! W3C codec (issue "Performance by default": ≈ 1.47 × the SDK floor through them, ≈ 1.08 ×
//! through the codec) — with the same headers and the same extracted context — and a propagator
//! installed after them (a foreign one, even with W3C's fields) takes over at once. Its own test
//! binary: the global propagator is process-wide.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use bench_support::{BenchHeaders, BenchView, sdk_w3c_propagator, w3c_propagator};
use opentelemetry::{
    Context, KeyValue,
    baggage::BaggageExt as _,
    propagation::{Extractor, Injector, TextMapCompositePropagator, TextMapPropagator},
    trace::{TraceContextExt as _, Tracer as _},
};
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use otel_messaging::{MessagingInstrumenter, OperationType, testing::TestTelemetry};

/// The Kafka-like view of the benchmarks (destination `orders`).
fn view(operation: OperationType) -> BenchView {
    BenchView { operation, partition: None }
}

/// W3C's fields, its own behaviour: writes `traceparent: custom` and reads nothing.
#[derive(Debug)]
struct Impostor;

impl TextMapPropagator for Impostor {
    fn inject_context(&self, _cx: &Context, injector: &mut dyn Injector) {
        injector.set("traceparent", "custom".into());
    }
    fn extract_with_context(&self, cx: &Context, _extractor: &dyn Extractor) -> Context {
        cx.clone()
    }
    fn fields(&self) -> opentelemetry::propagation::text_map_propagator::FieldIter<'_> {
        static FIELDS: std::sync::LazyLock<Vec<String>> =
            std::sync::LazyLock::new(|| vec!["traceparent".into(), "tracestate".into()]);
        opentelemetry::propagation::text_map_propagator::FieldIter::new(&FIELDS)
    }
}

/// The headers of one send under a request span with baggage, and the process context read back.
fn round_trip(instrumenter: &MessagingInstrumenter, t: &TestTelemetry) -> (BenchHeaders, Context) {
    let request = Context::new()
        .with_span(t.tracer("app").start("POST /orders"))
        .with_baggage([KeyValue::new("tenant", "acme")]);
    let mut headers = BenchHeaders::default();
    let send = instrumenter
        .operation(&view(OperationType::Send))
        .with_parent(&request)
        .with_outgoing_message(&headers)
        .start();
    send.inject(&mut headers);
    send.end_ok();
    let process =
        instrumenter.operation(&view(OperationType::Process)).with_delivered_message(&headers).start();
    let cx = process.context().clone();
    process.end_ok();
    (headers, cx)
}

/// The header names in the order they were written.
fn keys(headers: &BenchHeaders) -> Vec<&str> {
    headers.0.iter().map(|(k, _)| k.as_str()).collect()
}

fn value<'h>(headers: &'h BenchHeaders, key: &str) -> &'h str {
    headers.get(key).expect(key)
}

#[test]
fn sdk_propagators_are_served_by_the_codec_and_a_later_global_one_takes_over() {
    let t = TestTelemetry::without_conformance();
    // Explicit: the SDK composite behaves as W3cPropagator; the SDK's trace context alone drops
    // the baggage, as it would.
    for (instrumenter, baggage) in [
        (t.instrumenter_builder().with_propagator(sdk_w3c_propagator()).build(), true),
        (t.instrumenter_builder().with_propagator(w3c_propagator()).build(), true),
        (t.instrumenter_builder().with_propagator(TraceContextPropagator::new()).build(), false),
    ] {
        let debug = format!("{instrumenter:?}");
        assert!(debug.contains("propagator: W3c"), "served by the codec: {debug}");
        let (headers, process) = round_trip(&instrumenter, &t);
        let expected: &[&str] = if baggage { &["traceparent", "baggage"] } else { &["traceparent"] };
        assert_eq!(keys(&headers), expected, "{instrumenter:?}");
        assert!(process.span().span_context().is_valid());
        assert_eq!(process.baggage().get("tenant").is_some(), baggage);
        // What the SDK's own propagators read from these headers is what we read.
        let sdk = sdk_w3c_propagator().extract(&headers);
        assert_eq!(sdk.baggage().get("tenant").is_some(), baggage);
        assert_eq!(sdk.span().span_context().trace_id(), process.span().span_context().trace_id());
    }

    // Global: the SDK composite installed, then a foreign propagator with W3C's fields, then the
    // SDK's composite in the other order (not recognised: propagates itself), then back.
    let instrumenter =
        MessagingInstrumenter::builder().with_tracer_provider(&t.tracer_provider).with_metrics(false).build();
    opentelemetry::global::set_text_map_propagator(sdk_w3c_propagator());
    let (headers, process) = round_trip(&instrumenter, &t);
    assert_eq!(keys(&headers), ["traceparent", "baggage"]);
    assert_eq!(process.baggage().get("tenant").map(|v| v.as_str().to_owned()), Some("acme".into()));

    opentelemetry::global::set_text_map_propagator(Impostor);
    let (headers, _) = round_trip(&instrumenter, &t);
    assert_eq!(value(&headers, "traceparent"), "custom", "the impostor propagates itself");

    opentelemetry::global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(BaggagePropagator::new()),
        Box::new(TraceContextPropagator::new()),
    ]));
    let (headers, process) = round_trip(&instrumenter, &t);
    assert_eq!(keys(&headers), ["baggage", "traceparent"], "written by the composite, in its order");
    assert!(process.span().span_context().is_valid());

    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let (headers, _) = round_trip(&instrumenter, &t);
    assert_eq!(keys(&headers), ["traceparent"]);
    opentelemetry::global::set_text_map_propagator(Impostor);
    let (headers, _) = round_trip(&instrumenter, &t);
    assert_eq!(
        value(&headers, "traceparent"),
        "custom",
        "a zero-sized foreign propagator at the same address"
    );
}

/// Our W3C codec extracts what the SDK's propagators extract (behind `StrictExtractor`) from
/// valid input, every version and flag value included (moved here from the codec's unit tests with
/// the comparison, which lives in the unpublished `bench-support` crate beside the fuzz target
/// that runs it on arbitrary input).
#[test]
fn extracts_what_the_sdk_extracts_from_valid_input() {
    use otel_messaging::propagation::{BAGGAGE, TRACEPARENT, TRACESTATE, W3cPropagator};
    for tp in [
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-future",
        "00-ffffffffffffffffffffffffffffffff-ffffffffffffffff-ff",
    ] {
        let carrier = std::collections::HashMap::from([
            (TRACEPARENT.to_owned(), tp.to_owned()),
            (TRACESTATE.to_owned(), "rojo=1,congo=2".to_owned()),
            (BAGGAGE.to_owned(), "k=v%20w,user=1;meta".to_owned()),
        ]);
        bench_support::assert_w3c_extracts_as_sdk(&carrier);
        let ours = W3cPropagator::new().extract(&carrier);
        assert!(ours.span().span_context().is_valid(), "{tp}");
        assert_eq!(ours.baggage().len(), 2, "{tp}");
    }
}
