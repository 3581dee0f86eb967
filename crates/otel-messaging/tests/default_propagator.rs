//! Propagation with no set-up (issue "Correct by default", point 1): an instrumenter given no
//! propagator, while opentelemetry-rust's global propagator is still its no-op, propagates W3C
//! Trace Context + Baggage (OTEL_PROPAGATORS unset); a global propagator installed later wins at
//! once. Its own test binary: the global propagator is process-wide.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;

use opentelemetry::{
    Context, KeyValue,
    baggage::BaggageExt as _,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{TraceContextExt as _, Tracer as _},
};
use otel_messaging::{MessagingAttributes, MessagingInstrumenter, OperationType, testing::TestTelemetry};

struct View(OperationType);

impl MessagingAttributes for View {
    fn system(&self) -> &'static str {
        "kafka"
    }
    fn operation_type(&self) -> OperationType {
        self.0
    }
    fn operation_name(&self) -> &'static str {
        if self.0 == OperationType::Send { "send" } else { "process" }
    }
    fn destination_name(&self) -> Option<&str> {
        Some("orders")
    }
}

/// A propagator of its own, writing and reading `x-custom`.
#[derive(Debug)]
struct Custom;

impl TextMapPropagator for Custom {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        injector.set("x-custom", cx.span().span_context().trace_id().to_string());
    }
    fn extract_with_context(&self, cx: &Context, _extractor: &dyn Extractor) -> Context {
        cx.clone()
    }
    fn fields(&self) -> opentelemetry::propagation::text_map_propagator::FieldIter<'_> {
        static FIELDS: std::sync::LazyLock<Vec<String>> =
            std::sync::LazyLock::new(|| vec!["x-custom".into()]);
        opentelemetry::propagation::text_map_propagator::FieldIter::new(&FIELDS)
    }
}

#[test]
fn with_no_propagator_anywhere_w3c_propagates_and_a_global_one_installed_later_wins() {
    let t = TestTelemetry::without_conformance();
    // No `with_propagator`, and nothing installed globally.
    let instrumenter = MessagingInstrumenter::builder()
        .with_tracer_provider(&t.tracer_provider)
        .with_meter_provider(&t.meter_provider)
        .build();
    assert_eq!(instrumenter.propagation_fields(), ["traceparent", "tracestate", "baggage"]);

    let request = Context::new()
        .with_span(t.tracer("app").start("POST /orders"))
        .with_baggage([KeyValue::new("tenant", "acme")]);
    let mut headers: HashMap<String, String> = HashMap::new();
    let send = instrumenter
        .operation(&View(OperationType::Send))
        .with_parent(&request)
        .with_outgoing_message(&headers)
        .start();
    send.inject(&mut headers);
    let send_span = send.context().span().span_context().clone();
    send.end_ok();
    assert_eq!(
        headers.get("traceparent"),
        Some(&format!("00-{}-{}-01", send_span.trace_id(), send_span.span_id())),
        "{headers:?}"
    );
    assert_eq!(headers.get("baggage").map(String::as_str), Some("tenant=acme"));

    let process =
        instrumenter.operation(&View(OperationType::Process)).with_delivered_message(&headers).start();
    assert_eq!(process.context().span().span_context().trace_id(), send_span.trace_id(), "one trace");
    assert_eq!(process.context().baggage().get("tenant").map(|v| v.as_str().to_owned()), Some("acme".into()));
    process.end_ok();

    // A global propagator the user installs wins from the next call on.
    opentelemetry::global::set_text_map_propagator(Custom);
    assert_eq!(instrumenter.propagation_fields(), ["x-custom"]);
    let mut headers: HashMap<String, String> = HashMap::new();
    let send = instrumenter
        .operation(&View(OperationType::Send))
        .with_parent(&request)
        .with_outgoing_message(&headers)
        .start();
    send.inject(&mut headers);
    send.end_ok();
    assert_eq!(headers.keys().collect::<Vec<_>>(), ["x-custom"]);
}
