//! `OTEL_PROPAGATORS` naming propagators other than W3C's (issue "Correct by default", point 1),
//! with features `b3` and `xray`: with no propagator installed, the instrumenter propagates W3C,
//! B3 (multiple headers) and X-Ray together, and reads a context that comes in any one of them.
//! Its own test binary, with one test: the variable is read once per process.

#![cfg(all(feature = "b3", feature = "xray", feature = "testing"))]
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;

use bench_support::BenchView;
use opentelemetry::trace::{TraceContextExt as _, Tracer as _};
use otel_messaging::{MessagingInstrumenter, OperationType, testing::TestTelemetry};

#[test]
fn b3_and_xray_propagate_beside_w3c_when_otel_propagators_names_them() {
    // SAFETY: the only test of this binary, before any other thread reads the environment.
    #[allow(unsafe_code)]
    unsafe {
        std::env::set_var("OTEL_PROPAGATORS", "tracecontext,baggage,b3multi,xray,jaeger");
    }
    let t = TestTelemetry::without_conformance();
    // No `with_propagator`, and nothing installed globally.
    let instrumenter =
        MessagingInstrumenter::builder().with_tracer_provider(&t.tracer_provider).with_metrics(false).build();
    let request = opentelemetry::Context::new().with_span(t.tracer("app").start("POST /orders"));
    let trace_id = request.span().span_context().trace_id();
    let mut headers: HashMap<String, String> = HashMap::new();
    let send = instrumenter
        .operation(&BenchView { operation: OperationType::Send, partition: None })
        .with_parent(&request)
        .with_outgoing_message(&headers)
        .start();
    send.inject(&mut headers);
    send.end_ok();
    let mut keys: Vec<&str> = headers.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["traceparent", "x-amzn-trace-id", "x-b3-sampled", "x-b3-spanid", "x-b3-traceid"],
        "W3C, B3 multi-header and X-Ray: {headers:?}"
    );

    // A context in any one of them is read.
    for only in ["traceparent", "x-b3-", "x-amzn-trace-id"] {
        let carrier: HashMap<String, String> = headers
            .iter()
            .filter(|(k, _)| k.starts_with(only))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let cx = instrumenter.extract_context(&carrier);
        assert_eq!(cx.span().span_context().trace_id(), trace_id, "read from {only}: {carrier:?}");
    }
}
