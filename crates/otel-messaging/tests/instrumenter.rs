//! Broker-free tests of the instrumenter: span names, kinds, parents, links, attributes, status,
//!
//! The views here are made up (a "kafka" view with whatever the test needs), so these tests use
//! `TestTelemetry::without_conformance()`; the broker crates' real spans are checked against the
//! conformance table in every integration test.
//! metrics and propagation policy, through explicit in-memory providers.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::{
    collections::HashMap,
    time::{Duration, SystemTime},
};

use opentelemetry::{
    Context, KeyValue, StringValue, Value,
    baggage::BaggageExt,
    trace::{SpanKind, TraceContextExt, Tracer},
};
use otel_messaging::{
    MessagingAttributes, OperationType, ProcessParent,
    testing::{TestTelemetry, assert_trace, attributes, shape, span},
};

#[derive(Default)]
struct View {
    op: Option<OperationType>,
    name: &'static str,
    destination: Option<&'static str>,
    template: Option<&'static str>,
    anonymous: bool,
    batch: Option<u64>,
    sent: Option<SystemTime>,
}

impl MessagingAttributes for View {
    fn system(&self) -> &'static str {
        "kafka"
    }
    fn operation_type(&self) -> OperationType {
        self.op.unwrap_or(OperationType::Send)
    }
    fn operation_name(&self) -> &'static str {
        self.name
    }
    fn destination_name(&self) -> Option<&str> {
        self.destination
    }
    fn destination_template(&self) -> Option<&str> {
        self.template
    }
    fn destination_anonymous(&self) -> bool {
        self.anonymous
    }
    fn destination_partition_id(&self) -> Option<StringValue> {
        Some("3".into())
    }
    fn consumer_group_name(&self) -> Option<&str> {
        (self.operation_type() != OperationType::Send).then_some("workers")
    }
    fn server(&self) -> Option<(&str, Option<u16>)> {
        Some(("broker.local", Some(9092)))
    }
    fn batch_message_count(&self) -> Option<u64> {
        self.batch
    }
    fn sent_time(&self) -> Option<SystemTime> {
        self.sent
    }
    fn system_attributes(&self, attributes: &mut Vec<KeyValue>) {
        attributes.push(KeyValue::new("messaging.kafka.offset", 42_i64));
    }
}

fn send_view() -> View {
    View { op: Some(OperationType::Send), name: "send", destination: Some("orders"), ..View::default() }
}

fn process_view() -> View {
    View { op: Some(OperationType::Process), name: "process", destination: Some("orders"), ..View::default() }
}

type Headers = HashMap<String, String>;

/// Sends one message through `instrumenter`, returning its headers.
fn send(instrumenter: &otel_messaging::MessagingInstrumenter, parent: &Context) -> Headers {
    let mut headers = Headers::new();
    let op = instrumenter.operation(&send_view()).with_parent(parent).with_outgoing_message(&headers).start();
    op.inject(&mut headers);
    op.end_ok();
    headers
}

#[test]
fn send_span_has_full_attribute_set_and_injects_traceparent_only() {
    let t = TestTelemetry::without_conformance();
    let headers = send(&t.instrumenter(), &Context::new());
    assert_eq!(headers.keys().collect::<Vec<_>>(), ["traceparent"], "no empty tracestate");
    let spans = t.spans();
    assert_trace(
        &spans,
        &[shape("send orders", SpanKind::Producer).error(false).attributes([
            KeyValue::new("messaging.system", "kafka"),
            KeyValue::new("messaging.operation.name", "send"),
            KeyValue::new("messaging.operation.type", "send"),
            KeyValue::new("messaging.destination.name", "orders"),
            KeyValue::new("messaging.destination.partition.id", "3"),
            KeyValue::new("server.address", "broker.local"),
            KeyValue::new("server.port", 9092_i64),
            KeyValue::new("messaging.kafka.offset", 42_i64),
        ])],
    );
    let sc = spans[0].span_context.clone();
    assert_eq!(headers["traceparent"], format!("00-{}-{}-01", sc.trace_id(), sc.span_id()));
}

#[test]
fn process_without_ambient_span_is_child_and_link_of_creation_context() {
    let t = TestTelemetry::without_conformance();
    let instrumenter = t.instrumenter();
    let headers = send(&instrumenter, &Context::new());
    instrumenter.operation(&process_view()).with_delivered_message(&headers).start().end_ok();
    let spans = t.spans();
    assert_trace(
        &spans,
        &[
            shape("send orders", SpanKind::Producer),
            shape("process orders", SpanKind::Consumer).parent("send orders").links(&["send orders"]),
        ],
    );
}

#[test]
fn process_inside_ambient_span_is_child_of_ambient_and_links_creation_context() {
    let t = TestTelemetry::without_conformance();
    let instrumenter = t.instrumenter();
    let headers = send(&instrumenter, &Context::new());
    let tracer = t.tracer("app");
    let ambient = Context::new().with_span(tracer.start("poll loop"));
    instrumenter
        .operation(&process_view())
        .with_parent(&ambient)
        .with_delivered_message(&headers)
        .start()
        .end_ok();
    ambient.span().end();
    assert_trace(
        &t.spans(),
        &[
            shape("send orders", SpanKind::Producer),
            shape("poll loop", SpanKind::Internal),
            shape("process orders", SpanKind::Consumer).parent("poll loop").links(&["send orders"]),
        ],
    );
}

#[test]
fn creation_context_policy_parents_on_producer_and_links_ambient() {
    let t = TestTelemetry::without_conformance();
    let instrumenter = t.instrumenter_builder().with_process_parent(ProcessParent::CreationContext).build();
    let headers = send(&instrumenter, &Context::new());
    let tracer = t.tracer("app");
    let ambient = Context::new().with_span(tracer.start("poll loop"));
    instrumenter
        .operation(&process_view())
        .with_parent(&ambient)
        .with_delivered_message(&headers)
        .start()
        .end_ok();
    ambient.span().end();
    assert_trace(
        &t.spans(),
        &[
            shape("send orders", SpanKind::Producer),
            shape("poll loop", SpanKind::Internal),
            shape("process orders", SpanKind::Consumer)
                .parent("send orders")
                .links(&["send orders", "poll loop"]),
        ],
    );
}

#[test]
fn link_policy_gives_new_root_plus_link_and_is_overridable_per_consumer() {
    let t = TestTelemetry::without_conformance();
    let instrumenter = t.instrumenter();
    let headers = send(&instrumenter, &Context::new());
    let consumer = instrumenter.with_process_parent(ProcessParent::Link);
    consumer.operation(&process_view()).with_delivered_message(&headers).start().end_ok();
    let spans = t.spans();
    assert_trace(
        &spans,
        &[
            shape("send orders", SpanKind::Producer),
            shape("process orders", SpanKind::Consumer).links(&["send orders"]),
        ],
    );
    let (s, p) = (span(&spans, "send orders"), span(&spans, "process orders"));
    assert_ne!(s.span_context.trace_id(), p.span_context.trace_id());
}

/// `NewRoot` inside a long-lived worker-loop span: three messages from three request traces give
/// three process traces of their own, each linked to its creation context and to the loop; under
/// `Spec` the same three land in the loop's one trace (issue "Correct by default", point 3).
#[test]
fn new_root_gives_each_message_its_own_trace_inside_a_worker_loop_span() {
    let t = TestTelemetry::without_conformance();
    let instrumenter = t.instrumenter();
    let tracer = t.tracer("app");
    let messages: Vec<Headers> = (0..3)
        .map(|_| send(&instrumenter, &Context::new().with_span(tracer.start("POST /orders"))))
        .collect();
    let worker_loop = Context::new().with_span(tracer.start("worker loop"));
    let loop_id = worker_loop.span().span_context().clone();
    for policy in [ProcessParent::NewRoot, ProcessParent::Spec] {
        let consumer = instrumenter.with_process_parent(policy);
        for headers in &messages {
            consumer
                .operation(&process_view())
                .with_parent(&worker_loop)
                .with_delivered_message(headers)
                .start()
                .end_ok();
        }
    }
    worker_loop.span().end();
    let spans = t.spans();
    let sends: Vec<_> = spans.iter().filter(|s| s.name == "send orders").collect();
    let processes: Vec<_> = spans.iter().filter(|s| s.name == "process orders").collect();
    let (new_roots, spec) = processes.split_at(3);
    for (process, send) in new_roots.iter().zip(&sends) {
        assert_eq!(process.parent_span_id, opentelemetry::trace::SpanId::INVALID, "a root");
        assert_ne!(process.span_context.trace_id(), loop_id.trace_id());
        assert_ne!(process.span_context.trace_id(), send.span_context.trace_id());
        let linked: Vec<_> = process.links.iter().map(|l| l.span_context.span_id()).collect();
        assert_eq!(
            linked,
            [send.span_context.span_id(), loop_id.span_id()],
            "creation context, then the loop"
        );
    }
    let traces: std::collections::HashSet<_> = new_roots.iter().map(|p| p.span_context.trace_id()).collect();
    assert_eq!(traces.len(), 3, "three traces of their own");
    assert!(spec.iter().all(|p| p.span_context.trace_id() == loop_id.trace_id()), "Spec: the loop's trace");
}

/// A skipped destination records no span and no metric, while the context flows through: the
/// send injects the current context, the process runs in the producer's (issue "Correct by
/// default", point 5).
#[test]
fn skipped_destinations_record_nothing_but_propagate() {
    let t = TestTelemetry::without_conformance();
    let instrumenter = t.instrumenter_builder().with_skipped_destinations(|d| d == "health").build();
    let request = Context::new().with_span(t.tracer("app").start("POST /orders"));
    let request_id = request.span().span_context().clone();
    let health = View { destination: Some("health"), ..send_view() };
    let mut headers = Headers::new();
    let send = instrumenter.operation(&health).with_parent(&request).with_outgoing_message(&headers).start();
    send.inject(&mut headers);
    send.set_attributes([KeyValue::new("messaging.kafka.offset", 1_i64)]);
    send.end_ok();
    assert_eq!(headers["traceparent"], format!("00-{}-{}-01", request_id.trace_id(), request_id.span_id()));
    let process_health = View { destination: Some("health"), ..process_view() };
    let process = instrumenter.operation(&process_health).with_delivered_message(&headers).start();
    assert_eq!(
        process.context().span().span_context().span_id(),
        request_id.span_id(),
        "the producer's context"
    );
    process.end_ok();
    send_view_recorded(&instrumenter);
    request.span().end();
    let spans = t.spans();
    let names: Vec<_> = spans.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(names, ["send orders", "POST /orders"], "nothing for `health`");
    assert!(
        !attributes(span(&spans, "POST /orders")).contains_key("messaging.kafka.offset"),
        "not our span to touch"
    );
    let metrics = t.metrics();
    assert!(
        metrics.iter().all(|m| !m.attributes.iter().any(|kv| kv.value.as_str() == "health")),
        "{metrics:?}"
    );
}

fn send_view_recorded(instrumenter: &otel_messaging::MessagingInstrumenter) {
    instrumenter.operation(&send_view()).with_outgoing_message(&Headers::new()).start().end_ok();
}

#[test]
fn baggage_flows_to_process_context_unless_trust_boundary() {
    let t = TestTelemetry::without_conformance();
    let producer = t.instrumenter();
    let parent = Context::new().with_baggage([KeyValue::new("tenant", "acme")]);
    let headers = send(&producer, &parent);
    assert!(headers.contains_key("baggage"));

    let op = producer.operation(&process_view()).with_delivered_message(&headers).start();
    assert_eq!(op.context().baggage().get("tenant").map(|v| v.as_str().to_owned()), Some("acme".into()));
    op.end_ok();

    let guarded = t
        .instrumenter_builder()
        .with_trust_boundary(true)
        .with_process_parent(ProcessParent::CreationContext)
        .build();
    assert_eq!(guarded.process_parent(), ProcessParent::Link);
    let op = guarded.operation(&process_view()).with_delivered_message(&headers).start();
    assert!(op.context().baggage().is_empty());
    assert!(!op.context().span().span_context().trace_id().to_string().is_empty());
    op.end_ok();
    let spans = t.spans();
    let processes: Vec<_> = spans.iter().filter(|s| s.name == "process orders").collect();
    assert_eq!(processes.len(), 2);
    assert_eq!(
        processes[1].parent_span_id,
        opentelemetry::trace::SpanId::INVALID,
        "trust boundary: new root"
    );
    assert_eq!(processes[1].links.len(), 1);
}

#[test]
fn existing_creation_context_is_not_overwritten() {
    let t = TestTelemetry::without_conformance();
    let instrumenter = t.instrumenter();
    let user_tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_string();
    let mut headers = Headers::from([("traceparent".to_string(), user_tp.clone())]);
    let op = instrumenter.operation(&send_view()).with_outgoing_message(&headers).start();
    assert!(!op.is_creation_context());
    op.inject(&mut headers);
    op.end_ok();
    assert_eq!(headers["traceparent"], user_tp);
    let spans = t.spans();
    let s = span(&spans, "send orders");
    assert_eq!(s.span_kind, SpanKind::Client, "send is CLIENT when it is not the creation context");
    assert_eq!(s.links.len(), 1);
    assert_eq!(s.links[0].span_context.span_id().to_string(), "b7ad6b7169203331");
}

#[test]
fn malformed_traceparent_means_no_context() {
    let t = TestTelemetry::without_conformance();
    let instrumenter = t.instrumenter();
    for bad in ["00-1-2-01", "garbage", "", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"] {
        let headers = Headers::from([
            ("traceparent".to_string(), bad.to_string()),
            ("tracestate".to_string(), "a=1".to_string()),
        ]);
        let cx = instrumenter.extract_context(&headers);
        assert!(!cx.span().span_context().is_valid(), "{bad:?}");
        instrumenter.operation(&process_view()).with_delivered_message(&headers).start().end_ok();
    }
    for s in t.spans() {
        assert_eq!(s.parent_span_id, opentelemetry::trace::SpanId::INVALID);
        assert!(s.links.is_empty());
    }
}

#[test]
fn batch_links_every_creation_context_with_per_message_attributes() {
    let t = TestTelemetry::without_conformance();
    let instrumenter = t.instrumenter();
    let a = send(&instrumenter, &Context::new());
    let b = send(&instrumenter, &Context::new());
    let none = Headers::new();
    let view = View {
        op: Some(OperationType::Receive),
        name: "poll",
        destination: Some("orders"),
        batch: Some(3),
        ..View::default()
    };
    let started = SystemTime::now() - Duration::from_millis(5);
    let messages: Vec<(&dyn opentelemetry::propagation::Extractor, Vec<KeyValue>)> = vec![
        (&a, vec![KeyValue::new("messaging.kafka.offset", 0_i64)]),
        (&b, vec![KeyValue::new("messaging.kafka.offset", 1_i64)]),
        (&none, vec![KeyValue::new("messaging.kafka.offset", 2_i64)]),
    ];
    instrumenter.operation(&view).with_start_time(started).with_batch_links(messages).start().end_ok();
    let spans = t.spans();
    let poll = span(&spans, "poll orders");
    assert_eq!(poll.span_kind, SpanKind::Client);
    assert_eq!(poll.start_time, started);
    assert_eq!(poll.links.len(), 2);
    assert_eq!(poll.links[0].attributes, vec![KeyValue::new("messaging.kafka.offset", 0_i64)]);
    assert_eq!(poll.links[1].attributes, vec![KeyValue::new("messaging.kafka.offset", 1_i64)]);
    assert_eq!(attributes(poll)["messaging.batch.message_count"], Value::I64(3));
    let sends: Vec<_> = spans.iter().filter(|s| s.name == "send orders").collect();
    assert_eq!(poll.links[0].span_context.span_id(), sends[0].span_context.span_id());
    assert_eq!(poll.links[1].span_context.span_id(), sends[1].span_context.span_id());
}

#[test]
fn failure_sets_status_error_type_and_metric_error_type() {
    let t = TestTelemetry::without_conformance();
    let instrumenter = t.instrumenter();
    let headers = Headers::new();
    let op = instrumenter.operation(&send_view()).with_outgoing_message(&headers).start();
    let result: Result<(), std::io::Error> = Err(std::io::Error::other("broker down"));
    op.end(&result, |_| "BROKER_NOT_AVAILABLE");
    let spans = t.spans();
    let s = span(&spans, "send orders");
    assert_eq!(s.status, opentelemetry::trace::Status::error("broker down"));
    assert_eq!(attributes(s)["error.type"], Value::from("BROKER_NOT_AVAILABLE"));

    let metrics = t.metrics();
    let duration =
        metrics.iter().find(|m| m.name == "messaging.client.operation.duration").expect("duration");
    assert_eq!(duration.unit, "s");
    assert_eq!(duration.count, 1);
    assert_eq!(
        duration.attributes,
        vec![
            KeyValue::new("error.type", "BROKER_NOT_AVAILABLE"),
            KeyValue::new("messaging.destination.name", "orders"),
            KeyValue::new("messaging.destination.partition.id", "3"),
            KeyValue::new("messaging.operation.name", "send"),
            KeyValue::new("messaging.operation.type", "send"),
            KeyValue::new("messaging.system", "kafka"),
            KeyValue::new("server.address", "broker.local"),
            KeyValue::new("server.port", 9092_i64),
        ]
    );
    let sent = metrics.iter().find(|m| m.name == "messaging.client.sent.messages").expect("sent");
    assert_eq!((sent.unit.as_str(), sent.count), ("{message}", 1));
}

#[test]
fn process_records_queue_wait_and_process_metrics() {
    let t = TestTelemetry::without_conformance();
    let instrumenter = t.instrumenter();
    let view = View { sent: Some(SystemTime::now() - Duration::from_secs(2)), ..process_view() };
    instrumenter.operation(&view).with_delivered_message(&Headers::new()).start().end_ok();
    let spans = t.spans();
    let wait = match attributes(span(&spans, "process orders"))["otel_messaging.queue.wait.duration"] {
        Value::F64(v) => v,
        ref other => panic!("queue wait not a double: {other:?}"),
    };
    assert!((2.0..60.0).contains(&wait), "{wait}");
    let names: Vec<_> = t.metrics().into_iter().map(|m| (m.name, m.count)).collect();
    for expected in [
        "messaging.process.duration",
        "messaging.client.consumed.messages",
        "otel_messaging.queue.wait.duration",
    ] {
        assert!(names.iter().any(|(n, c)| n == expected && *c == 1), "{expected} in {names:?}");
    }
    assert!(!names.iter().any(|(n, _)| n == "messaging.client.operation.duration"));
}

/// A send time from the epoch (a forged or broken producer timestamp) is no queue wait: neither
/// the attribute nor the histogram records it (reliability review M6).
#[test]
fn an_implausible_send_time_records_no_queue_wait() {
    let t = TestTelemetry::without_conformance();
    let instrumenter = t.instrumenter();
    let view = View { sent: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1)), ..process_view() };
    instrumenter.operation(&view).with_delivered_message(&Headers::new()).start().end_ok();
    let spans = t.spans();
    assert!(!attributes(span(&spans, "process orders")).contains_key("otel_messaging.queue.wait.duration"));
    let metrics = t.metrics();
    assert!(metrics.iter().any(|m| m.name == "messaging.process.duration"), "metrics are recorded");
    assert!(!metrics.iter().any(|m| m.name == "otel_messaging.queue.wait.duration"));
}

/// At a trust boundary the producer's retry lineage is not read: no lineage links, no attempt
/// (reliability review M6).
#[test]
fn a_trust_boundary_reads_no_retry_lineage() {
    let t = TestTelemetry::without_conformance();
    let open = t.instrumenter();
    let guarded = t.instrumenter_builder().with_trust_boundary(true).build();
    let mut headers = send(&open, &Context::new());
    let forged = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    headers.insert("otel-retry-attempt".into(), "4294967295".into());
    headers.insert("otel-original-traceparent".into(), forged.into());
    headers.insert("otel-failed-traceparent".into(), forged.into());
    open.operation(&process_view()).with_delivered_message(&headers).start().end_ok();
    guarded.operation(&process_view()).with_delivered_message(&headers).start().end_ok();
    let spans = t.spans();
    let processes: Vec<_> = spans.iter().filter(|s| s.name == "process orders").collect();
    let has_attempt = |s: &opentelemetry_sdk::trace::SpanData| {
        attributes(s).keys().any(|k| k.starts_with("otel_messaging.message.retry"))
    };
    assert!(has_attempt(processes[0]) && processes[0].links.len() > 1, "read without a boundary");
    assert!(!has_attempt(processes[1]), "no attempt at a boundary");
    assert_eq!(processes[1].links.len(), 1, "the creation context only");
}

#[test]
fn span_name_follows_destination_rules() {
    let t = TestTelemetry::without_conformance();
    let instrumenter = t.instrumenter();
    let anonymous = View { destination: Some("amq.gen-Xa2"), anonymous: true, ..send_view() };
    instrumenter.operation(&anonymous).start().end_ok();
    let templated = View { destination: Some("orders-42"), template: Some("orders-{id}"), ..send_view() };
    instrumenter.operation(&templated).start().end_ok();
    let names: Vec<_> = t.spans().into_iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, ["send", "send orders-{id}"]);
    let metrics = t.metrics();
    let anon_metric = metrics
        .iter()
        .find(|m| {
            m.name == "messaging.client.operation.duration"
                && !m.attributes.iter().any(|kv| kv.key.as_str() == "messaging.destination.template")
        })
        .expect("anonymous send metric");
    assert!(!anon_metric.attributes.iter().any(|kv| kv.key.as_str() == "messaging.destination.name"));
}

#[test]
fn dropping_an_operation_ends_its_span() {
    let t = TestTelemetry::without_conformance();
    let op = t.instrumenter().operation(&send_view()).start();
    drop(op);
    let spans = t.spans();
    assert_eq!(spans.len(), 1);
    assert!(
        matches!(spans[0].status, opentelemetry::trace::Status::Error { .. }),
        "a send never acknowledged"
    );
}

#[test]
fn captured_headers_are_opt_in() {
    let t = TestTelemetry::without_conformance();
    let headers = Headers::from([
        ("x-tenant".to_string(), "acme".to_string()),
        ("secret".to_string(), "s".to_string()),
    ]);
    t.instrumenter().operation(&process_view()).with_delivered_message(&headers).start().end_ok();
    let with = t.instrumenter_builder().with_captured_headers(["X-Tenant"]).build();
    let headers = Headers::from([("x-tenant".to_string(), "acme".to_string())]);
    with.operation(&process_view()).with_delivered_message(&headers).start().end_ok();
    let spans = t.spans();
    assert!(!attributes(&spans[0]).keys().any(|k| k.starts_with("messaging.header.")));
    assert_eq!(
        attributes(&spans[1])["messaging.header.x_tenant"],
        Value::Array(opentelemetry::Array::String(vec!["acme".into()]))
    );
}

/// A captured header is the producer's: at most 16 values of at most 256 bytes each reach the
/// span (reliability review M7).
#[test]
fn captured_header_values_are_bounded() {
    struct Repeated(Vec<String>);
    impl opentelemetry::propagation::Extractor for Repeated {
        fn get(&self, _key: &str) -> Option<&str> {
            self.0.last().map(String::as_str)
        }
        fn keys(&self) -> Vec<&str> {
            vec!["x-tenant"]
        }
        fn get_all(&self, key: &str) -> Option<Vec<&str>> {
            (key == "x-tenant").then(|| self.0.iter().map(String::as_str).collect())
        }
    }
    let t = TestTelemetry::without_conformance();
    let with = t.instrumenter_builder().with_captured_headers(["x-tenant"]).build();
    let headers = Repeated((0..100).map(|i| format!("{i}-{}", "v".repeat(1_000))).collect());
    with.operation(&process_view()).with_delivered_message(&headers).start().end_ok();
    let spans = t.spans();
    let Value::Array(opentelemetry::Array::String(values)) =
        &attributes(&spans[0])["messaging.header.x_tenant"]
    else {
        panic!("a string array")
    };
    assert_eq!(values.len(), 16);
    assert!(values.iter().all(|v| v.as_str().len() == 256 + '…'.len_utf8()));
    assert!(values[0].as_str().starts_with("0-v"));
}

#[tokio::test]
async fn run_nests_handler_spans_and_returns_result_unchanged() {
    let t = TestTelemetry::without_conformance();
    let instrumenter = t.instrumenter();
    let headers = send(&instrumenter, &Context::new());
    let tracer = t.tracer("app");
    let op = instrumenter.operation(&process_view()).with_delivered_message(&headers).start();
    let result: Result<u32, String> = op
        .run(async {
            tracer.in_span("db insert", |_| ());
            Err("constraint violated".to_string())
        })
        .await;
    assert_eq!(result, Err("constraint violated".to_string()));
    let spans = t.spans();
    assert_trace(
        &spans,
        &[
            shape("send orders", SpanKind::Producer),
            shape("process orders", SpanKind::Consumer)
                .parent("send orders")
                .links(&["send orders"])
                .error(true),
            shape("db insert", SpanKind::Internal).parent("process orders"),
        ],
    );
    assert_eq!(
        attributes(span(&spans, "process orders"))["error.type"],
        Value::from("alloc::string::String")
    );
}

// ---- Untrusted input and outcomes the handler hides (reliability review M1, M2, M3, L1) ----

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn carrier(fields: &[(&str, String)]) -> Headers {
    fields.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

/// What a handler's own send would propagate from inside the process span of `incoming`.
fn forwarded(t: &TestTelemetry, incoming: &Headers) -> Headers {
    let instrumenter = t.instrumenter();
    let op = instrumenter.operation(&process_view()).with_delivered_message(incoming).start();
    let outgoing = send(&instrumenter, op.context());
    op.end_ok();
    outgoing
}

#[test]
fn invalid_tracestate_is_not_inherited_nor_forwarded() {
    let t = TestTelemetry::without_conformance();
    for bad in [
        "k=\u{7}bell".to_owned(),                                         // control character
        "Upper=1".to_owned(),                                             // key grammar
        (0..33).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join(","), // 33 members
        "a=1,a=2".to_owned(),                                             // duplicate key
        format!("k={}", "v".repeat(10_000)),                              // 10 KB value
    ] {
        let incoming = carrier(&[("traceparent", TP.into()), ("tracestate", bad.clone())]);
        let outgoing = forwarded(&t, &incoming);
        assert_eq!(outgoing.get("tracestate"), None, "{bad:.40}");
        assert!(outgoing["traceparent"].contains("4bf92f3577b34da6a3ce929d0e0e4736"), "the trace continues");
    }
}

#[test]
fn valid_tracestate_is_kept_and_cut_to_512_bytes() {
    let t = TestTelemetry::without_conformance();
    let incoming =
        carrier(&[("traceparent", TP.into()), ("tracestate", "rojo=00f067aa0ba902b7, congo=t61".into())]);
    assert_eq!(forwarded(&t, &incoming)["tracestate"], "rojo=00f067aa0ba902b7,congo=t61");

    let long = (0..20).map(|i| format!("k{i:02}={}", "x".repeat(40))).collect::<Vec<_>>().join(",");
    assert!(long.len() > 512);
    let incoming = carrier(&[("traceparent", TP.into()), ("tracestate", long.clone())]);
    let kept = forwarded(&t, &incoming)["tracestate"].clone();
    assert!(kept.len() <= 512, "{}", kept.len());
    assert!(long.starts_with(&kept), "members are dropped from the end");
}

#[test]
fn baggage_is_capped_to_w3c_limits_before_parsing() {
    let t = TestTelemetry::without_conformance();
    let instrumenter = t.instrumenter();
    let many = (0..1000).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join(",");
    let op = instrumenter
        .operation(&process_view())
        .with_delivered_message(&carrier(&[("traceparent", TP.into()), ("baggage", many)]))
        .start();
    assert_eq!(op.context().baggage().len(), 64, "W3C: at most 64 members are read");
    op.end_ok();
    let big = format!("small=1,big={}", "v".repeat(9000));
    let op =
        instrumenter.operation(&process_view()).with_delivered_message(&carrier(&[("baggage", big)])).start();
    assert_eq!(op.context().baggage().len(), 1, "cut at the last member boundary within 8192 bytes");
    op.end_ok();
}

/// An extractor that records which keys were asked for.
struct Watched(Headers, std::cell::RefCell<Vec<String>>);
impl opentelemetry::propagation::Extractor for Watched {
    fn get(&self, key: &str) -> Option<&str> {
        self.1.borrow_mut().push(key.to_owned());
        self.0.get(key).map(String::as_str)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        self.1.borrow_mut().push(key.to_owned());
        self.0.get(key).map(|v| vec![v.as_str()])
    }
}

#[test]
fn trust_boundaries_and_batch_links_never_read_baggage() {
    let t = TestTelemetry::without_conformance();
    let watched =
        Watched(carrier(&[("traceparent", TP.into()), ("baggage", "k=v".into())]), Default::default());
    let guarded = t.instrumenter_builder().with_trust_boundary(true).build();
    guarded.operation(&process_view()).with_delivered_message(&watched).start().end_ok();
    assert!(!watched.1.borrow().iter().any(|k| k == "baggage"), "asked for {:?}", watched.1.borrow());
    assert!(guarded.extract_context(&watched).baggage().is_empty());

    let watched = Watched(watched.0, Default::default());
    let view = View {
        op: Some(OperationType::Receive),
        name: "poll",
        destination: Some("orders"),
        batch: Some(1),
        ..View::default()
    };
    t.instrumenter()
        .operation(&view)
        .with_batch_links([(&watched as &dyn opentelemetry::propagation::Extractor, vec![])])
        .start()
        .end_ok();
    assert!(!watched.1.borrow().iter().any(|k| k == "baggage"), "asked for {:?}", watched.1.borrow());
    assert_eq!(t.spans().iter().find(|s| s.name == "poll orders").expect("poll").links.len(), 1);
}

#[test]
fn error_descriptions_are_capped_and_can_be_turned_off() {
    let t = TestTelemetry::without_conformance();
    let payload = format!("invalid type: string \"{}\", expected u32", "alice@example.com ".repeat(100));
    t.instrumenter()
        .operation(&send_view())
        .with_outgoing_message(&Headers::new())
        .start()
        .end_error("serde", &payload);
    let quiet = t.instrumenter_builder().with_error_description(false).build();
    quiet.operation(&send_view()).with_outgoing_message(&Headers::new()).start().end_error("serde", &payload);
    let spans = t.spans();
    let opentelemetry::trace::Status::Error { description } = &spans[0].status else {
        panic!("error status")
    };
    assert!(description.len() <= 256 + '…'.len_utf8());
    assert!(description.ends_with('…') && payload.starts_with(description.trim_end_matches('…')));
    assert_eq!(spans[1].status, opentelemetry::trace::Status::error(""));
    for s in &spans {
        assert_eq!(attributes(s)["error.type"], Value::from("serde"));
    }
}

#[tokio::test]
async fn a_panicking_handler_is_recorded_and_the_panic_goes_on_unchanged() {
    let t = TestTelemetry::without_conformance();
    let op = t.instrumenter().operation(&process_view()).with_delivered_message(&Headers::new()).start();
    let joined = tokio::spawn(op.run(async {
        if true {
            panic!("handler bug")
        }
        Ok::<(), std::io::Error>(())
    }))
    .await;
    let payload = joined.expect_err("the panic propagates").into_panic();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"handler bug"), "the same panic payload");
    let spans = t.spans();
    assert_eq!(attributes(span(&spans, "process orders"))["error.type"], Value::from("panic"));
    assert!(matches!(spans[0].status, opentelemetry::trace::Status::Error { .. }));
}

#[test]
fn a_cancelled_handler_is_recorded_as_cancelled() {
    use futures_util::FutureExt as _;
    let t = TestTelemetry::without_conformance();
    let op = t.instrumenter().operation(&process_view()).with_delivered_message(&Headers::new()).start();
    let never = std::future::pending::<Result<(), std::io::Error>>();
    assert!(op.run(never).now_or_never().is_none(), "polled once, then dropped");
    let spans = t.spans();
    assert_eq!(attributes(span(&spans, "process orders"))["error.type"], Value::from("cancelled"));
    let process = t.metrics().into_iter().find(|m| m.name == "messaging.process.duration").expect("metric");
    assert!(process.attributes.contains(&KeyValue::new("error.type", "cancelled")));
}

/// Dropped before its first poll, a `run` future is cancelled too; a send or settle dropped
/// before it ends never saw its outcome and is `cancelled`, not a success (reliability review
/// M5); a receive dropped unended has no status.
#[test]
fn dropped_operations_awaiting_an_outcome_are_cancelled() {
    let t = TestTelemetry::without_conformance();
    let instrumenter = t.instrumenter();
    let op = instrumenter.operation(&process_view()).with_delivered_message(&Headers::new()).start();
    drop(op.run(async { Ok::<_, std::io::Error>(()) }));
    drop(instrumenter.operation(&send_view()).with_outgoing_message(&Headers::new()).start());
    let settle =
        View { op: Some(OperationType::Settle), name: "ack", destination: Some("orders"), ..View::default() };
    drop(instrumenter.operation(&settle).start());
    let receive = View {
        op: Some(OperationType::Receive),
        name: "poll",
        destination: Some("orders"),
        ..View::default()
    };
    drop(instrumenter.operation(&receive).start());
    let spans = t.spans();
    for name in ["process orders", "send orders", "ack orders"] {
        assert_eq!(attributes(span(&spans, name))["error.type"], Value::from("cancelled"), "{name}");
    }
    assert!(!attributes(span(&spans, "poll orders")).contains_key("error.type"));
}

#[test]
fn a_failed_receive_counts_nothing_and_is_timed_from_its_start() {
    let t = TestTelemetry::without_conformance();
    let instrumenter = t.instrumenter();
    let receive = View {
        op: Some(OperationType::Receive),
        name: "receive",
        destination: Some("orders"),
        ..View::default()
    };
    let started = SystemTime::now() - Duration::from_millis(300);
    instrumenter.operation(&receive).with_start_time(started).start().end_error("CONNECTION_RESET", "reset");
    let spans = t.spans();
    let s = span(&spans, "receive orders");
    assert_eq!(s.start_time, started);
    assert_eq!(attributes(s)["error.type"], Value::from("CONNECTION_RESET"));
    let metrics = t.metrics();
    assert!(
        !metrics.iter().any(|m| m.name == "messaging.client.consumed.messages"),
        "a failed receive delivered nothing: {metrics:?}"
    );
    let duration =
        metrics.iter().find(|m| m.name == "messaging.client.operation.duration").expect("duration");
    assert!(duration.sum >= 0.3, "timed from the start of the call: {}", duration.sum);
    assert!(duration.attributes.contains(&KeyValue::new("error.type", "CONNECTION_RESET")));

    // A batch receive that failed after some messages counts those.
    let batch = View { batch: Some(2), ..receive };
    instrumenter.operation(&batch).start().end_error("PARTITION_EOF", "eof");
    let consumed =
        t.metrics().into_iter().find(|m| m.name == "messaging.client.consumed.messages").expect("consumed");
    assert_eq!(consumed.count, 2);
}

#[tokio::test]
async fn a_handler_failure_is_not_the_deliverys() {
    let t = TestTelemetry::without_conformance();
    let instrumenter = t.instrumenter();
    let view = View { sent: Some(SystemTime::now()), ..process_view() };
    let op = instrumenter.operation(&view).with_delivered_message(&Headers::new()).start();
    let _ = op.run(async { Err::<(), _>(std::io::Error::other("bad input")) }).await;
    for m in t.metrics() {
        let has_error = m.attributes.iter().any(|kv| kv.key.as_str() == "error.type");
        match m.name.as_str() {
            "messaging.process.duration" => assert!(has_error, "{m:?}"),
            "messaging.client.consumed.messages" | "otel_messaging.queue.wait.duration" => {
                assert!(!has_error, "{m:?}")
            }
            other => panic!("unexpected instrument {other}"),
        }
    }
}

#[test]
fn an_enricher_adds_attributes_at_start_and_end_but_never_to_metrics() {
    use otel_messaging::{SpanEnricher, SpanStart};
    struct Tenant;
    impl SpanEnricher for Tenant {
        fn on_start(&self, start: &SpanStart<'_>, attributes: &mut Vec<KeyValue>) {
            if let Some(tenant) = start.header("X-Tenant") {
                attributes.push(KeyValue::new("app.tenant", tenant.to_owned()));
            }
            attributes.push(KeyValue::new("app.operation", start.operation_type().as_str()));
        }
        fn on_end(&self, _: OperationType, error_type: Option<&str>, attributes: &mut Vec<KeyValue>) {
            attributes.push(KeyValue::new("app.failed", error_type.is_some()));
        }
    }
    let t = TestTelemetry::without_conformance();
    let instrumenter = t.instrumenter_builder().with_enricher(Tenant).build();
    let headers: Headers = [("x-tenant".to_owned(), "acme".to_owned())].into();
    instrumenter.operation(&process_view()).with_delivered_message(&headers).start().end_ok();
    let spans = t.spans();
    let a = attributes(span(&spans, "process orders"));
    assert_eq!(a["app.tenant"], Value::from("acme"));
    assert_eq!(a["app.operation"], Value::from("process"));
    assert_eq!(a["app.failed"], Value::from(false));
    for m in t.metrics() {
        assert!(!m.attributes.iter().any(|kv| kv.key.as_str().starts_with("app.")), "{m:?}");
    }

    // A closure is an `on_start` enricher; `()` adds nothing.
    let t = TestTelemetry::without_conformance();
    let instrumenter = t
        .instrumenter_builder()
        .with_enricher(|start: &SpanStart<'_>, attributes: &mut Vec<KeyValue>| {
            attributes.push(KeyValue::new("app.queue", start.destination_name().unwrap_or("-").to_owned()));
        })
        .build();
    instrumenter.operation(&send_view()).start().end_ok();
    assert_eq!(attributes(&t.spans()[0])["app.queue"], Value::from("orders"));
    let t = TestTelemetry::without_conformance();
    let plain = t.instrumenter();
    let enriched = t.instrumenter_builder().with_enricher(()).build();
    plain.operation(&send_view()).start().end_ok();
    enriched.operation(&send_view()).start().end_ok();
    let spans = t.spans();
    assert_eq!(attributes(&spans[0]), attributes(&spans[1]));
}

/// Successful operations are recorded through instruments bound per attribute set and cached per
/// thread (feature `bound-metrics`), failed ones unbound: counts must add up per attribute set,
/// across destinations, instrumenters and threads, whichever path each measurement took.
#[test]
fn metrics_add_up_per_attribute_set_across_destinations_instrumenters_and_threads() {
    let first = TestTelemetry::without_conformance();
    let second = TestTelemetry::without_conformance();
    let run = |instrumenter: &otel_messaging::MessagingInstrumenter| {
        for i in 0..40 {
            let destination = if i % 2 == 0 { "orders" } else { "payments" };
            let view = View { destination: Some(destination), ..send_view() };
            let op = instrumenter.operation(&view).with_outgoing_message(&Headers::new()).start();
            if i % 10 == 9 {
                op.end_error("BROKER_NOT_AVAILABLE", "down");
            } else {
                op.end_ok();
            }
            let view = View { destination: Some(destination), ..process_view() };
            instrumenter.operation(&view).with_delivered_message(&Headers::new()).start().end_ok();
        }
    };
    let (a, b) = (first.instrumenter(), second.instrumenter());
    std::thread::scope(|s| {
        s.spawn(|| run(&a));
        s.spawn(|| run(&a));
        s.spawn(|| run(&b));
    });
    let count = |t: &TestTelemetry, name: &str, destination: &str, error: bool| -> u64 {
        t.metrics()
            .iter()
            .filter(|m| m.name == name)
            .filter(|m| {
                m.attributes.contains(&KeyValue::new("messaging.destination.name", destination.to_owned()))
            })
            .filter(|m| m.attributes.iter().any(|kv| kv.key.as_str() == "error.type") == error)
            .map(|m| m.count)
            .sum()
    };
    // Per thread: 20 sends to each destination; i = 9, 19, 29, 39 (all to payments) fail: orders
    // 20 ok, payments 16 ok + 4 failed.
    for (t, threads) in [(&first, 2), (&second, 1)] {
        assert_eq!(count(t, "messaging.client.sent.messages", "orders", false), 20 * threads);
        assert_eq!(count(t, "messaging.client.sent.messages", "payments", false), 16 * threads);
        assert_eq!(count(t, "messaging.client.sent.messages", "payments", true), 4 * threads);
        assert_eq!(count(t, "messaging.client.operation.duration", "payments", true), 4 * threads);
        assert_eq!(count(t, "messaging.client.operation.duration", "orders", false), 20 * threads);
        assert_eq!(count(t, "messaging.client.consumed.messages", "payments", false), 20 * threads);
        assert_eq!(count(t, "messaging.process.duration", "orders", false), 20 * threads);
    }
}

/// The message counters report totals since the start (observable counters over the attribute
/// sets' atomics): a total must outlive the attribute set, which is freed when no thread caches it
/// any more, and a set built again for the same attributes must go on from the old total.
#[test]
fn message_totals_outlive_their_attribute_set() {
    let t = TestTelemetry::without_conformance();
    let instrumenter = t.instrumenter();
    let sent = |n: usize| {
        // A thread of its own: when it ends, its cache and with it the attribute set are gone.
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..n {
                    instrumenter
                        .operation(&send_view())
                        .with_outgoing_message(&Headers::new())
                        .start()
                        .end_ok();
                }
            });
        });
        t.metrics()
            .iter()
            .filter(|m| m.name == "messaging.client.sent.messages")
            .map(|m| m.count)
            .sum::<u64>()
    };
    assert_eq!(sent(3), 3);
    assert_eq!(sent(2), 5, "the second set went on from the first set's total");
}

/// A view that counts how often the attributes no sampler reads are asked for.
struct Counting {
    view: View,
    asked: std::sync::atomic::AtomicUsize,
}

impl MessagingAttributes for Counting {
    fn system(&self) -> &'static str {
        self.view.system()
    }
    fn operation_type(&self) -> OperationType {
        self.view.operation_type()
    }
    fn operation_name(&self) -> &'static str {
        self.view.operation_name()
    }
    fn destination_name(&self) -> Option<&str> {
        self.view.destination_name()
    }
    fn destination_partition_id(&self) -> Option<StringValue> {
        self.view.destination_partition_id()
    }
    fn consumer_group_name(&self) -> Option<&str> {
        self.view.consumer_group_name()
    }
    fn server(&self) -> Option<(&str, Option<u16>)> {
        self.view.server()
    }
    fn client_id(&self) -> Option<&str> {
        Some("worker-1")
    }
    fn message_id(&self) -> Option<&str> {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some("m-1")
    }
    fn system_attributes(&self, attributes: &mut Vec<KeyValue>) {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.view.system_attributes(attributes);
    }
}

#[test]
fn a_span_that_does_not_record_builds_no_attributes_a_sampler_does_not_read() {
    use opentelemetry_sdk::trace::Sampler;
    for (sampler, recording) in [(Sampler::AlwaysOff, false), (Sampler::AlwaysOn, true)] {
        // A made-up view: a Kafka span with a message id, which the table rules out.
        let t = TestTelemetry::with_sampler(sampler).unchecked();
        let view = Counting { view: process_view(), asked: 0.into() };
        let headers = Headers::new();
        t.instrumenter().operation(&view).with_delivered_message(&headers).start().end_ok();
        let asked = view.asked.load(std::sync::atomic::Ordering::Relaxed);
        let spans = t.spans();
        if recording {
            assert_eq!(asked, 2, "message id and system attributes, once each");
            let attributes = attributes(&spans[0]);
            assert_eq!(attributes.get("messaging.message.id"), Some(&Value::from("m-1")));
            assert_eq!(attributes.get("messaging.kafka.offset"), Some(&Value::I64(42)));
            assert_eq!(attributes.get("messaging.destination.name"), Some(&Value::from("orders")));
        } else {
            assert_eq!(asked, 0, "an unsampled span asks for no late attribute");
            assert!(spans.is_empty());
        }
    }
}

/// Lever 25's hand-over: what a receive read for a later process span refers to its instrumenter
/// weakly. A broker crate may keep it for as long as the message is not processed; holding the
/// instrumenter's configuration (its providers, its enricher) would keep an application's tracer
/// provider alive after the application dropped it to flush it.
#[test]
fn a_receives_reading_does_not_keep_its_instrumenter_alive() {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };
    struct DropFlag(Arc<AtomicBool>);
    impl Drop for DropFlag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    impl otel_messaging::SpanEnricher for DropFlag {}

    let dropped = Arc::new(AtomicBool::new(false));
    let t = TestTelemetry::without_conformance();
    let instrumenter = t.instrumenter_builder().with_enricher(DropFlag(dropped.clone())).build();
    let headers = send(&instrumenter, &Context::new());
    let received = instrumenter.extract_delivered(&headers);
    assert!(received.link(Vec::new()).is_some(), "the creation context was read");
    drop(instrumenter);
    assert!(dropped.load(Ordering::SeqCst), "the configuration went with its last instrumenter");
    drop(received);
}

/// Lever 26's bound: a broker crate keeps a receive's reading until the message is processed only
/// when its message-supplied values (baggage, trace state) fit in
/// `__private::MAX_KEPT_CONTEXT_BYTES`; a larger one is read again from the message.
#[test]
fn only_a_small_reading_is_kept() {
    use otel_messaging::__private::MAX_KEPT_CONTEXT_BYTES;

    let t = TestTelemetry::without_conformance();
    let instrumenter = t.instrumenter();
    let with_baggage = |bytes: usize| {
        let cx = Context::new().with_baggage([KeyValue::new("k", "v".repeat(bytes))]);
        instrumenter.extract_delivered(&send(&instrumenter, &cx))
    };
    assert!(with_baggage(10).keepable().is_some(), "a small baggage is kept");
    let reading = with_baggage(MAX_KEPT_CONTEXT_BYTES);
    assert!(reading.link(Vec::new()).is_some(), "it was read");
    assert!(reading.keepable().is_none(), "a large baggage is read again instead");
}
