//! The unsampled fast path (issue "Performance by default"):
//! `MessagingInstrumenterBuilder::with_parent_based_sampling(true)` starts no SDK span under an
//! unsampled parent, propagates the parent's context as it came and still records the metrics;
//! sampled parents and new roots go to the SDK as before.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;

use bench_support::BenchView;
use opentelemetry::{
    Context, KeyValue,
    trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _},
};
use opentelemetry_sdk::trace::Sampler;
use otel_messaging::{MessagingInstrumenter, OperationType, testing::TestTelemetry};

/// The Kafka-like view of the benchmarks (destination `orders`).
fn view(operation: OperationType) -> BenchView {
    BenchView { operation, partition: None }
}

type Headers = HashMap<String, String>;

fn remote(flags: TraceFlags) -> Context {
    Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
        SpanId::from(0x00f0_67aa_0ba9_02b7),
        flags,
        true,
        TraceState::default(),
    ))
}

/// Send under `parent`, then process the message with no ambient span.
fn send_and_process(instrumenter: &MessagingInstrumenter, parent: &Context) -> (Headers, Context) {
    let mut headers = Headers::new();
    let send = instrumenter
        .operation(&view(OperationType::Send))
        .with_parent(parent)
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

fn count(t: &TestTelemetry, name: &str) -> u64 {
    t.metrics().iter().filter(|m| m.name == name).map(|m| m.count).sum()
}

#[test]
fn an_unsampled_parent_starts_no_span_propagates_as_it_came_and_counts() {
    let t = TestTelemetry::with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn))).unchecked();
    let instrumenter = t.instrumenter_builder().with_parent_based_sampling(true).build();
    let (headers, process) = send_and_process(&instrumenter, &remote(TraceFlags::default()));
    assert_eq!(headers["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
    let sc = process.span().span_context().clone();
    assert_eq!(sc.span_id(), SpanId::from(0x00f0_67aa_0ba9_02b7), "the context as it came");
    assert!(!sc.is_sampled() && !process.span().is_recording());
    assert!(t.spans().is_empty(), "no span data built");
    assert_eq!(t.span_counts(), (0, 0));
    assert_eq!(count(&t, "messaging.client.sent.messages"), 1);
    assert_eq!(count(&t, "messaging.client.consumed.messages"), 1);
    assert_eq!(count(&t, "messaging.client.operation.duration"), 1);
    assert_eq!(count(&t, "messaging.process.duration"), 1);
}

/// With metrics off the fast path returns before any naming work (the path the perf gate
/// measures): the same context flows on, still no span, and a dropped send still ends cancelled
/// without a panic.
#[test]
fn with_metrics_off_the_fast_path_propagates_as_it_came() {
    let t = TestTelemetry::with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn))).unchecked();
    let instrumenter = t.instrumenter_builder().with_metrics(false).with_parent_based_sampling(true).build();
    let (headers, process) = send_and_process(&instrumenter, &remote(TraceFlags::default()));
    assert_eq!(headers["traceparent"], "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00");
    let sc = process.span().span_context().clone();
    assert_eq!(sc.span_id(), SpanId::from(0x00f0_67aa_0ba9_02b7), "the context as it came");
    assert!(!sc.is_sampled() && !process.span().is_recording());
    let dropped = instrumenter
        .operation(&view(OperationType::Send))
        .with_parent(&remote(TraceFlags::default()))
        .start();
    drop(dropped);
    assert!(t.spans().is_empty(), "no span data built");
    assert_eq!(t.span_counts(), (0, 0));
    assert!(t.metrics().is_empty(), "metrics off: {:?}", t.metrics());
    // A sampled parent still goes to the SDK with metrics off.
    let (_, sampled) = send_and_process(&instrumenter, &remote(TraceFlags::SAMPLED));
    assert!(sampled.span().span_context().is_sampled());
    assert_eq!(t.spans().len(), 2);
}

#[test]
fn sampled_parents_and_new_roots_still_go_to_the_sdk() {
    let t = TestTelemetry::with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn))).unchecked();
    let instrumenter = t.instrumenter_builder().with_parent_based_sampling(true).build();
    let (headers, _) = send_and_process(&instrumenter, &remote(TraceFlags::SAMPLED));
    assert!(headers["traceparent"].ends_with("-01"));
    let (headers, _) = send_and_process(&instrumenter, &Context::new());
    assert!(headers["traceparent"].ends_with("-01"));
    let request = Context::new().with_span(t.tracer("app").start("POST /orders"));
    let _ = send_and_process(&instrumenter, &request);
    request.span().end();
    let names: Vec<_> = t.spans().iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names.iter().filter(|n| *n == "send orders").count(), 3, "{names:?}");
    assert_eq!(names.iter().filter(|n| *n == "process orders").count(), 3, "{names:?}");
}

/// Why it is a switch: a sampler that is not parent-based records spans under an unsampled
/// parent, and without the switch they are recorded.
#[test]
fn without_the_switch_the_sampler_decides() {
    let t = TestTelemetry::with_sampler(Sampler::AlwaysOn).unchecked();
    let (headers, process) = send_and_process(&t.instrumenter(), &remote(TraceFlags::default()));
    assert!(headers["traceparent"].ends_with("-01"), "AlwaysOn samples what its parent did not");
    assert!(process.span().span_context().is_sampled());
    assert_eq!(t.spans().len(), 2);
    let t = TestTelemetry::with_sampler(Sampler::AlwaysOn).unchecked();
    let fast = t.instrumenter_builder().with_parent_based_sampling(true).build();
    let _ = send_and_process(&fast, &remote(TraceFlags::default()));
    assert!(t.spans().is_empty(), "the documented caveat");
}

/// A failed or dropped operation on the fast path records its outcome in the metrics and never
/// touches the parent's span.
#[test]
fn failures_and_drops_are_recorded_in_the_metrics() {
    let t = TestTelemetry::with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn))).unchecked();
    let instrumenter = t.instrumenter_builder().with_parent_based_sampling(true).build();
    let parent = remote(TraceFlags::default());
    let send = instrumenter
        .operation(&view(OperationType::Send))
        .with_parent(&parent)
        .with_outgoing_message(&Headers::new())
        .start();
    send.set_attributes([KeyValue::new("messaging.kafka.offset", 1_i64)]);
    send.end_error("timeout", "no answer");
    drop(
        instrumenter
            .operation(&view(OperationType::Send))
            .with_parent(&parent)
            .with_outgoing_message(&Headers::new())
            .start(),
    );
    let mut errors: Vec<String> = t
        .metrics()
        .iter()
        .filter(|m| m.name == "messaging.client.operation.duration")
        .filter_map(|m| m.attributes.iter().find(|kv| kv.key.as_str() == "error.type"))
        .map(|kv| kv.value.to_string())
        .collect();
    errors.sort();
    assert_eq!(errors, ["cancelled", "timeout"]);
    assert!(t.spans().is_empty());
}
