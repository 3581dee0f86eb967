//! `MessagingInstrumenter::set_global`: the process-wide default the `_traced` sugar uses, which
//! every copy of the default follows whenever it is set (issue "Correct by default", point 2).
//! Its own test binary, since the default is process-wide.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;

use opentelemetry::trace::{SpanKind, TraceContextExt};
mod common;

use common::SendTo;
use otel_messaging::{
    MessagingInstrumenter, ProcessParent,
    testing::{TestTelemetry, assert_trace, shape},
};

#[test]
fn the_default_can_be_set_at_any_time_and_every_copy_follows_it() {
    // A copy taken before anything was set (a broker crate's global, an AppState).
    let early_copy = MessagingInstrumenter::global().clone();
    let early_policy = early_copy.with_process_parent(ProcessParent::NewRoot);
    let headers: HashMap<String, String> = HashMap::new();
    early_copy.operation(&SendTo("orders")).with_outgoing_message(&headers).start().end_ok(); // the unset default's

    let t = TestTelemetry::without_conformance();
    // `TestTelemetry`'s instrumenter carries `W3cPropagator` as its explicit propagator.
    MessagingInstrumenter::set_global(t.instrumenter()).expect("set after use");
    let global = MessagingInstrumenter::global();
    assert!(format!("{global:?}").contains("propagator: W3c"), "{global:?}");
    let mut headers: HashMap<String, String> = HashMap::new();
    let operation = early_copy.operation(&SendTo("orders")).with_outgoing_message(&headers).start();
    operation.inject(&mut headers);
    let trace_id = operation.context().span().span_context().trace_id();
    operation.end_ok();
    assert_trace(&t.spans(), &[shape("send orders", SpanKind::Producer)]);
    assert!(headers["traceparent"].contains(&trace_id.to_string()), "{headers:?}");
    assert_eq!(early_policy.process_parent(), ProcessParent::NewRoot, "a copy's own policy stays");

    // Set again: the next call of every copy goes to the new default.
    let other = TestTelemetry::without_conformance();
    MessagingInstrumenter::set_global(other.instrumenter()).expect("replaced");
    early_copy.operation(&SendTo("orders")).with_outgoing_message(&headers).start().end_ok();
    assert_eq!(t.spans().len(), 1, "nothing more to the first default");
    assert_eq!(other.spans().len(), 1, "the copy follows the second default");

    // A copy of the default cannot become the default: a clear error, the default unchanged.
    let error = MessagingInstrumenter::set_global(early_copy.clone()).expect_err("a copy");
    let _: &dyn std::error::Error = &error;
    assert!(error.to_string().contains("builder()"), "{error}");
    early_copy.operation(&SendTo("orders")).with_outgoing_message(&headers).start().end_ok();
    assert_eq!(other.spans().len(), 2);
}
