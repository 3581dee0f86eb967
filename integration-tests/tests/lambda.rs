//! Lambda (`otel_messaging_aws_sqs::lambda`, issue "AWS beyond SQS", point 3): the handler is
//! called directly on `SqsEvent`s built from real messages — sent traced to moto, received natively
//! with every attribute, as the Lambda service's poller does — one process span per record in its
//! producer's trace, partial failures reported by message id.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use aws_lambda_events::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::MessageSystemAttributeName;
use integration_tests::{sqs_endpoint, unique_name};
use opentelemetry::{
    Context, Value,
    trace::{FutureExt as _, SpanKind, TraceContextExt as _, Tracer as _},
};
use otel_messaging::testing::{TestTelemetry, attributes, span};
use otel_messaging_aws_sqs::{
    SendMessageFluentBuilderExt as _, SqsInstrumentation, lambda::process_sqs_event_with,
};

/// The `SqsEvent` record the Lambda service would build from `message` of the queue `arn`.
fn record(message: &aws_sdk_sqs::types::Message, arn: &str) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = message.message_id.clone();
    record.receipt_handle = message.receipt_handle.clone();
    record.body = message.body.clone();
    record.event_source_arn = Some(arn.to_owned());
    record.event_source = Some("aws:sqs".into());
    for (name, value) in message.attributes.iter().flatten() {
        record.attributes.insert(name.as_str().to_owned(), value.clone());
    }
    for (name, value) in message.message_attributes.iter().flatten() {
        let mut attribute = SqsMessageAttribute::default();
        attribute.data_type = Some(value.data_type.clone());
        attribute.string_value = value.string_value.clone();
        record.message_attributes.insert(name.clone(), attribute);
    }
    record
}

#[tokio::test]
async fn each_record_is_processed_in_its_producers_trace_and_failures_are_reported() {
    let t = TestTelemetry::new();
    let tracing = SqsInstrumentation::default().with_instrumenter(t.instrumenter());
    let client = integration_tests::sqs_client(&sqs_endpoint(), 3).await;
    let queue = unique_name("lambda");
    let url = client.create_queue().queue_name(&queue).send().await.expect("queue").queue_url.expect("url");
    let arn = integration_tests::queue_arn(&client, &url).await;

    let request = Context::new().with_span(t.tracer("app").start("POST /orders"));
    for order in ["1", "2", "bad"] {
        async { client.send_message().queue_url(&url).message_body(order).send_traced_with(&tracing).await }
            .with_context(request.clone())
            .await
            .expect("send");
    }
    request.span().end();

    // What the Lambda poller reads: every message and system attribute.
    let mut messages = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while messages.len() < 3 {
        assert!(std::time::Instant::now() < deadline, "only {} of 3 messages arrived", messages.len());
        let out = client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        messages.extend(out.messages.unwrap_or_default());
    }
    let mut event = SqsEvent::default();
    event.records = messages.iter().map(|m| record(m, &arn)).collect();

    let response = process_sqs_event_with(&tracing, &event, async |record: &SqsMessage| {
        t.tracer("worker").in_span("work", |_| ());
        match record.body.as_deref() {
            Some("bad") => Err("not an order"),
            _ => Ok(()),
        }
    })
    .await;

    let bad = messages.iter().find(|m| m.body.as_deref() == Some("bad")).unwrap();
    let failed: Vec<_> = response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
    assert_eq!(failed, [bad.message_id.clone().unwrap()]);

    let spans = t.spans();
    let sends: Vec<_> = spans.iter().filter(|s| s.name == format!("send {queue}")).collect();
    let processes: Vec<_> = spans.iter().filter(|s| s.name == format!("process {queue}")).collect();
    assert_eq!((sends.len(), processes.len()), (3, 3));
    let request_trace = span(&spans, "POST /orders").span_context.trace_id();
    for process in &processes {
        assert_eq!(process.span_kind, SpanKind::Consumer);
        assert_eq!(process.span_context.trace_id(), request_trace, "in the producer's trace");
        assert!(
            sends.iter().any(|s| s.span_context.span_id() == process.parent_span_id),
            "a send is the parent"
        );
        assert_eq!(process.links.len(), 1, "and the link");
        let a = attributes(process);
        assert_eq!(a["messaging.system"], Value::from("aws_sqs"));
        assert_eq!(a["messaging.destination.name"], Value::from(queue.clone()));
        assert!(matches!(a["otel_messaging.queue.wait.duration"], Value::F64(w) if (0.0..60.0).contains(&w)));
        assert_eq!(a["otel_messaging.message.delivery_count"], Value::I64(1));
        let failed = a["messaging.message.id"] == Value::from(bad.message_id.clone().unwrap());
        assert_eq!(a.contains_key("error.type"), failed, "error.type on the failed record only");
    }
    let works = spans.iter().filter(|s| s.name == "work").count();
    assert_eq!(works, 3, "every handler ran inside its process span");
    let consumed: u64 =
        t.metrics().iter().filter(|m| m.name == "messaging.client.consumed.messages").map(|m| m.count).sum();
    assert_eq!(consumed, 3, "counted as consumed: no traced receive did");
}

/// A record delivered from an SNS topic without raw delivery carries the context in its body's
/// envelope (the parent); a record with only an `AWSTraceHeader` (X-Ray) links to that context.
#[tokio::test]
async fn envelopes_and_xray_headers_are_read_from_records() {
    let t = TestTelemetry::new();
    let tracing = SqsInstrumentation::default().with_instrumenter(t.instrumenter());
    let mut envelope = SqsMessage::default();
    envelope.message_id = Some("m-1".into());
    envelope.event_source_arn = Some("arn:aws:sqs:us-east-1:123456789012:orders".into());
    envelope.body = Some(
        r#"{"Type":"Notification","MessageId":"n","Message":"{}","MessageAttributes":{"traceparent":{"Type":"String","Value":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}}"#.into(),
    );
    let mut xray = SqsMessage::default();
    xray.message_id = Some("m-2".into());
    xray.event_source_arn = envelope.event_source_arn.clone();
    xray.attributes.insert(
        "AWSTraceHeader".into(),
        "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".into(),
    );
    let mut event = SqsEvent::default();
    event.records = vec![envelope, xray];
    let response =
        process_sqs_event_with(&tracing, &event, async |_: &SqsMessage| Ok::<(), std::io::Error>(())).await;
    assert!(response.batch_item_failures.is_empty());
    let spans = t.spans();
    // The envelope's context is the parent; the X-Ray one a link only (semconv faas/aws-lambda.md).
    assert_eq!(spans[0].span_context.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(spans[0].parent_span_id.to_string(), "00f067aa0ba902b7");
    assert_ne!(
        spans[1].span_context.trace_id().to_string(),
        "5759e988bd862e3fe1be46a994272793",
        "a new trace"
    );
    let link = &spans[1].links[0];
    assert_eq!(link.span_context.trace_id().to_string(), "5759e988bd862e3fe1be46a994272793");
    assert_eq!(link.span_context.span_id().to_string(), "53995c3f42cd8ad8");
}
