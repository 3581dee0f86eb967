//! SNS (aws-sdk-sns) publishing to SQS subscribers on moto (`just brokers-up`, or
//! `SQS_ENDPOINT_URL`: moto serves both), asserting whole traces — from the request that
//! publishes, through the topic and the queue, to the worker's process span — with raw message
//! delivery on and off (issue "AWS beyond SQS", point 2).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::{Duration, Instant};

use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use integration_tests::{sqs_endpoint, unique_name};
use opentelemetry::{
    Context, Value,
    trace::{FutureExt as _, SpanKind, TraceContextExt as _, Tracer as _},
};
use otel_messaging::testing::{TestTelemetry, assert_one_trace, assert_trace, attributes, shape, span};
use otel_messaging_aws_sns::{
    PublishBatchFluentBuilderExt as _, PublishFluentBuilderExt as _, SnsInstrumentation,
};
use otel_messaging_aws_sqs::{MessageExt as _, SqsInstrumentation};

async fn sdk_config() -> aws_config::SdkConfig {
    integration_tests::aws_test_config(&sqs_endpoint(), 3).await
}

struct Setup {
    t: TestTelemetry,
    sns: aws_sdk_sns::Client,
    sqs: aws_sdk_sqs::Client,
    sns_tracing: SnsInstrumentation,
    sqs_tracing: SqsInstrumentation,
    topic_arn: String,
    topic: String,
    queue_url: String,
    queue: String,
}

/// A fresh topic with a fresh queue subscribed to it (`raw`: raw message delivery).
async fn setup(raw: bool) -> Setup {
    let t = TestTelemetry::new();
    let config = sdk_config().await;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let topic = unique_name("topic");
    let topic_arn =
        sns.create_topic().name(&topic).send().await.expect("create topic").topic_arn.expect("arn");
    let queue = unique_name("subscriber");
    let queue_url =
        sqs.create_queue().queue_name(&queue).send().await.expect("queue").queue_url.expect("url");
    integration_tests::subscribe_queue(&sns, &sqs, &topic_arn, &queue_url, raw).await;
    let sns_tracing = SnsInstrumentation::from_config(&config).with_instrumenter(t.instrumenter());
    let sqs_tracing = SqsInstrumentation::default().with_instrumenter(t.instrumenter());
    Setup { t, sns, sqs, sns_tracing, sqs_tracing, topic_arn, topic, queue_url, queue }
}

/// Receives `count` messages from the subscriber queue (traced), with a deadline, and processes
/// each inside a `work` span.
async fn receive_and_process(s: &Setup, count: usize) -> Vec<aws_sdk_sqs::types::Message> {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut messages = Vec::new();
    while messages.len() < count {
        assert!(Instant::now() < deadline, "only {} of {count} messages arrived", messages.len());
        let received = integration_tests::sqs_receive_traced(&s.sqs, &s.queue_url, &s.sqs_tracing).await;
        for message in received.messages.unwrap_or_default() {
            let (message, result) = message
                .start_process_with(&s.sqs_tracing)
                .process(async |_| {
                    s.t.tracer("worker").in_span("work", |_| ());
                    Ok::<(), std::io::Error>(())
                })
                .await;
            result.expect("handled");
            messages.push(message);
        }
    }
    messages
}

async fn publish_one_and_process(raw: bool) {
    let s = setup(raw).await;
    let request = Context::new().with_span(s.t.tracer("app").start("POST /orders"));
    let output = async {
        s.sns
            .publish()
            .topic_arn(&s.topic_arn)
            .message(r#"{"order":42}"#)
            .send_traced_with(&s.sns_tracing)
            .await
    }
    .with_context(request.clone())
    .await
    .expect("publish");
    request.span().end();
    let messages = receive_and_process(&s, 1).await;
    if !raw {
        let body = messages[0].body.as_deref().unwrap_or_default();
        assert!(body.contains("\"Notification\""), "an SNS envelope: {body}");
    }

    let spans = s.t.spans();
    let (publish, receive, process) =
        (format!("publish {}", s.topic), format!("receive {}", s.queue), format!("process {}", s.queue));
    assert_trace(
        &spans,
        &[
            shape("POST /orders", SpanKind::Internal),
            shape(&publish, SpanKind::Producer).parent("POST /orders"),
            shape(&receive, SpanKind::Client).links(&[&publish]),
            shape(&process, SpanKind::Consumer).parent(&publish).links(&[&publish]),
            shape("work", SpanKind::Internal).parent(&process),
        ],
    );
    let p = attributes(span(&spans, &publish));
    assert_eq!(p["messaging.system"], Value::from("aws.sns"));
    assert_eq!(p["messaging.operation.name"], Value::from("publish"));
    assert_eq!(p["messaging.operation.type"], Value::from("send"));
    assert_eq!(p["messaging.destination.name"], Value::from(s.topic.clone()));
    assert_eq!(p["aws.sns.topic.arn"], Value::from(s.topic_arn.clone()));
    assert_eq!(p["messaging.message.id"], Value::from(output.message_id.clone().expect("id")));
    assert_eq!(p["server.address"], Value::from("127.0.0.1"));
    assert!(p.contains_key("server.port"));
    let in_trace: Vec<_> = spans.iter().filter(|s| s.name != receive).cloned().collect();
    assert_one_trace(&in_trace);
}

#[tokio::test]
async fn a_publish_continues_in_the_sqs_subscribers_process_span_with_raw_delivery() {
    publish_one_and_process(true).await;
}

#[tokio::test]
async fn a_publish_continues_in_the_sqs_subscribers_process_span_through_the_envelope() {
    publish_one_and_process(false).await;
}

/// A batch: one create span per entry (each entry's own creation context, parent of its process
/// span) and a publish CLIENT span linking them.
#[tokio::test]
async fn a_batch_gives_each_entry_its_own_creation_context() {
    let s = setup(true).await;
    let entries: Vec<PublishBatchRequestEntry> = (0..3)
        .map(|i| {
            PublishBatchRequestEntry::builder()
                .id(format!("e{i}"))
                .message(format!("order {i}"))
                .build()
                .unwrap()
        })
        .collect();
    let output = s
        .sns
        .publish_batch()
        .topic_arn(&s.topic_arn)
        .set_publish_batch_request_entries(Some(entries))
        .send_traced_with(&s.sns_tracing)
        .await
        .expect("publish batch");
    assert_eq!(output.successful().len(), 3);
    receive_and_process(&s, 3).await;

    let spans = s.t.spans();
    let (publish, create, process) =
        (format!("publish {}", s.topic), format!("create {}", s.topic), format!("process {}", s.queue));
    let creates: Vec<_> = spans.iter().filter(|x| x.name == create).collect();
    assert_eq!(creates.len(), 3);
    assert!(creates.iter().all(|c| c.span_kind == SpanKind::Producer));
    let batch = span(&spans, &publish);
    assert_eq!(batch.span_kind, SpanKind::Client);
    assert_eq!(attributes(batch)["messaging.batch.message_count"], Value::I64(3));
    assert_eq!(batch.links.len(), 3, "links every entry's creation context");
    let create_ids: Vec<_> = creates.iter().map(|c| c.span_context.span_id()).collect();
    for p in spans.iter().filter(|x| x.name == process) {
        assert!(create_ids.contains(&p.parent_span_id), "process spans are children of a create span");
    }
}

/// Ten user attributes leave no room: the publish goes out unchanged (and is delivered), the span
/// says the context was not injected.
#[tokio::test]
async fn ten_user_attributes_leave_the_message_unchanged() {
    let s = setup(true).await;
    let mut publish = s.sns.publish().topic_arn(&s.topic_arn).message("full");
    for i in 0..10 {
        let value = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(format!("v{i}"))
            .build()
            .unwrap();
        publish = publish.message_attributes(format!("a{i}"), value);
    }
    publish.send_traced_with(&s.sns_tracing).await.expect("publish");
    let spans = s.t.spans();
    let p = attributes(span(&spans, &format!("publish {}", s.topic)));
    assert_eq!(p["otel_messaging.context.injected"], Value::Bool(false));
}

/// A publish to a topic that does not exist fails with the native error, unchanged; the span
/// records the service's error code.
#[tokio::test]
async fn a_failed_publish_returns_the_native_error() {
    let s = setup(true).await;
    let missing = format!("{}-missing", s.topic_arn);
    let plain = s.sns.publish().topic_arn(&missing).message("x").send().await.expect_err("no such topic");
    let traced = s
        .sns
        .publish()
        .topic_arn(&missing)
        .message("x")
        .send_traced_with(&s.sns_tracing)
        .await
        .expect_err("no such topic");
    // The same error (the request ids differ, one per call).
    let meta = |e: &aws_sdk_sns::error::SdkError<_, _>| {
        use aws_sdk_sns::error::ProvideErrorMetadata as _;
        (e.code().map(str::to_owned), e.message().map(str::to_owned), e.to_string())
    };
    assert_eq!(meta(&plain), meta(&traced));
    let spans = s.t.spans();
    let p = attributes(span(&spans, &format!("publish {}-missing", s.topic)));
    let code = aws_sdk_sns::error::ProvideErrorMetadata::code(&traced).expect("a code").to_owned();
    assert_eq!(p["error.type"], Value::from(code));
}

/// Lambda (`otel_messaging_aws_sns::lambda`): an `SnsEvent` built from a real notification — the
/// envelope moto delivered to an SQS subscriber without raw delivery, which is the `Sns` object of
/// an `SnsEvent` record — is processed in the publisher's trace; a failing handler's error comes
/// back unchanged.
#[tokio::test]
async fn an_sns_event_record_is_processed_in_the_publishers_trace() {
    use aws_lambda_events::sns::{SnsEvent, SnsMessage, SnsRecord};
    let s = setup(false).await;
    let request = Context::new().with_span(s.t.tracer("app").start("POST /orders"));
    async {
        s.sns.publish().topic_arn(&s.topic_arn).message("order 7").send_traced_with(&s.sns_tracing).await
    }
    .with_context(request.clone())
    .await
    .expect("publish");
    request.span().end();
    // The notification, read natively (no span) from the subscriber queue.
    let deadline = Instant::now() + Duration::from_secs(20);
    let body = loop {
        assert!(Instant::now() < deadline, "the notification did not arrive");
        let out = s
            .sqs
            .receive_message()
            .queue_url(&s.queue_url)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        if let Some(m) = out.messages.unwrap_or_default().pop() {
            break m.body.expect("body");
        }
    };
    let notification: SnsMessage = serde_json::from_str(&body).expect("an SNS notification");
    let mut record = SnsRecord::default();
    record.event_source = "aws:sns".into();
    record.sns = notification;
    let mut event = SnsEvent::default();
    event.records = vec![record];

    let tracing = otel_messaging_aws_sns::SnsInstrumentation::default().with_instrumenter(s.t.instrumenter());
    let handled =
        otel_messaging_aws_sns::lambda::process_sns_event_with(&tracing, &event, async |r: &SnsRecord| {
            s.t.tracer("worker").in_span("work", |_| ());
            if r.sns.message == "order 7" { Err("out of stock") } else { Ok(()) }
        })
        .await;
    assert_eq!(handled, Err("out of stock"), "the handler's error, unchanged");

    let spans = s.t.spans();
    let (publish, process) = (format!("publish {}", s.topic), format!("process {}", s.topic));
    assert_trace(
        &spans,
        &[
            shape("POST /orders", SpanKind::Internal),
            shape(&publish, SpanKind::Producer).parent("POST /orders"),
            shape(&process, SpanKind::Consumer).parent(&publish).links(&[&publish]).error(true),
            shape("work", SpanKind::Internal).parent(&process),
        ],
    );
    let p = attributes(span(&spans, &process));
    assert_eq!(p["messaging.system"], Value::from("aws.sns"));
    assert_eq!(p["aws.sns.topic.arn"], Value::from(s.topic_arn.clone()));
    assert!(matches!(p["otel_messaging.queue.wait.duration"], Value::F64(w) if (0.0..60.0).contains(&w)));
    assert_one_trace(&spans);
}

/// FIFO topics: the group and deduplication ids are recorded only when opted in (a group id is
/// often a customer id, as keys are).
#[tokio::test]
async fn fifo_ids_are_recorded_only_when_opted_in() {
    let t = TestTelemetry::new();
    let config = sdk_config().await;
    let sns = aws_sdk_sns::Client::new(&config);
    let topic = format!("{}.fifo", unique_name("fifo"));
    let topic_arn = sns
        .create_topic()
        .name(&topic)
        .attributes("FifoTopic", "true")
        .send()
        .await
        .expect("fifo topic")
        .topic_arn
        .expect("arn");
    let plain = SnsInstrumentation::from_config(&config).with_instrumenter(t.instrumenter());
    let opted_in = plain.clone().with_fifo_ids(true);
    for (i, tracing) in [&plain, &opted_in].into_iter().enumerate() {
        sns.publish()
            .topic_arn(&topic_arn)
            .message("m")
            .message_group_id("customer-42")
            .message_deduplication_id(format!("order-{i}"))
            .send_traced_with(tracing)
            .await
            .expect("publish");
    }
    let spans = t.spans();
    let publishes: Vec<_> =
        spans.iter().filter(|s| s.name == format!("publish {topic}")).map(attributes).collect();
    assert_eq!(publishes.len(), 2);
    assert!(!publishes[0].contains_key("otel_messaging.aws.sns.message_group_id"), "not by default");
    assert_eq!(publishes[1]["otel_messaging.aws.sns.message_group_id"], Value::from("customer-42"));
    assert_eq!(publishes[1]["otel_messaging.aws.sns.message_deduplication_id"], Value::from("order-1"));
}
