//! `MessagingInstrumenter::set_global`: the process-wide default the `_traced` sugar uses. Its own
//! test binary, since the default is set once per process.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;

use opentelemetry::{
    Context,
    trace::{SpanKind, TraceContextExt},
};
use otel_messaging::{
    MessagingAttributes, MessagingInstrumenter, OperationType,
    testing::{TestTelemetry, assert_trace, shape},
};

struct Send;

impl MessagingAttributes for Send {
    fn system(&self) -> &'static str {
        "kafka"
    }
    fn operation_type(&self) -> OperationType {
        OperationType::Send
    }
    fn operation_name(&self) -> &'static str {
        "send"
    }
    fn destination_name(&self) -> Option<&str> {
        Some("orders")
    }
}

#[test]
fn the_default_set_at_start_up_is_the_one_the_sugar_uses_and_cannot_be_replaced() {
    let t = TestTelemetry::without_conformance();
    // `TestTelemetry`'s instrumenter carries `W3cPropagator` as its explicit propagator.
    MessagingInstrumenter::set_global(t.instrumenter()).expect("nothing set or used before");
    let global = MessagingInstrumenter::global();
    assert!(format!("{global:?}").contains("propagator: W3c"), "{global:?}");

    let mut headers: HashMap<String, String> = HashMap::new();
    let operation = global.start_send(&Send, &Context::new(), &headers);
    operation.inject(&mut headers);
    let trace_id = operation.context().span().span_context().trace_id();
    operation.end_ok();
    assert_trace(&t.spans(), &[shape("send orders", SpanKind::Producer)]);
    assert!(headers["traceparent"].contains(&trace_id.to_string()), "{headers:?}");

    // Set once: a second instrumenter comes back unused, the default stays.
    let other = TestTelemetry::without_conformance();
    assert!(MessagingInstrumenter::set_global(other.instrumenter()).is_err());
    MessagingInstrumenter::global().start_send(&Send, &Context::new(), &headers).end_ok();
    assert_eq!(t.spans().len(), 2, "the second send went to the first default");
    assert!(other.spans().is_empty());
}
