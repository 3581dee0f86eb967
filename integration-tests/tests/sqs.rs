//! SQS (aws-sdk-sqs) against an SQS endpoint (moto_server from `just brokers-up`, or
//! `SQS_ENDPOINT_URL`), asserting whole traces through explicit in-memory providers.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use aws_sdk_sqs::{
    Client,
    types::{
        MessageAttributeValue, MessageSystemAttributeNameForSends, MessageSystemAttributeValue,
        SendMessageBatchRequestEntry,
    },
};
use integration_tests::{sqs_endpoint, unique_name};
use opentelemetry::{
    Context, Value,
    trace::{FutureExt as _, SpanKind, TraceContextExt, Tracer as _},
};
use otel_messaging::{
    ProcessParent,
    testing::{TestTelemetry, assert_trace, attributes, shape, span, waterfall},
};
use otel_messaging_aws_sqs::{
    DeleteMessageFluentBuilderExt as _, MessageExt as _, ReceiveMessageFluentBuilderExt as _,
    SendMessageBatchFluentBuilderExt as _, SendMessageFluentBuilderExt as _, SqsInstrumentation,
};

async fn client() -> Client {
    integration_tests::sqs_client(&sqs_endpoint(), 3).await
}

async fn queue(client: &Client, fifo: bool) -> String {
    let name = if fifo { format!("{}.fifo", unique_name("q")) } else { unique_name("q") };
    let mut req = client.create_queue().queue_name(&name);
    if fifo {
        req = req
            .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
            .attributes(aws_sdk_sqs::types::QueueAttributeName::ContentBasedDeduplication, "true");
    }
    req.send().await.expect("create queue").queue_url.expect("url")
}

/// Per-test telemetry, instrumentation on it, a client, and a fresh queue's URL.
async fn setup(fifo: bool) -> (TestTelemetry, SqsInstrumentation, Client, String) {
    let t = TestTelemetry::new();
    let tr = SqsInstrumentation::default().with_instrumenter(t.instrumenter());
    let c = client().await;
    let url = queue(&c, fifo).await;
    (t, tr, c, url)
}

fn name_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

fn string(v: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder().data_type("String").string_value(v).build().unwrap()
}

#[tokio::test]
async fn send_receive_process_delete_is_one_trace_without_asking_for_attributes() {
    let (t, tr, c, url) = setup(false).await;
    let q = name_of(&url).to_owned();

    let tracer = t.tracer("app");
    let request = Context::new().with_span(tracer.start("POST /orders"));
    let sent = async { c.send_message().queue_url(&url).message_body("{}").send_traced_with(&tr).await }
        .with_context(request.clone())
        .await
        .expect("send");
    request.span().end();

    // No message attribute names asked for: the traced receive asks for the context itself.
    let received = c
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(1)
        .send_traced_with(&tr)
        .await
        .expect("receive");
    let message = received.messages.expect("messages").pop().expect("a message");
    assert_eq!(message.message_id, sent.message_id);
    // What the instrumentation asked for on its own is not handed to the caller (review M5).
    assert_eq!(message.message_attributes, None, "no message attribute was asked for");
    assert_eq!(message.md5_of_message_attributes, None);
    assert_eq!(message.attributes, None, "no system attribute was asked for");
    let (message, result) = message
        .start_process_with(&tr)
        .process(async |m| {
            c.delete_message()
                .queue_url(&url)
                .receipt_handle(m.receipt_handle.clone().unwrap())
                .send_traced_with(&tr)
                .await
        })
        .await;
    result.expect("delete");

    let spans = t.spans();
    let (send, receive, process, delete) =
        (format!("send {q}"), format!("receive {q}"), format!("process {q}"), format!("delete {q}"));
    assert_trace(
        &spans,
        &[
            shape("POST /orders", SpanKind::Internal),
            shape(&send, SpanKind::Producer).parent("POST /orders"),
            shape(&receive, SpanKind::Client).links(&[&send]),
            shape(&process, SpanKind::Consumer).parent(&send).links(&[&send]),
            shape(&delete, SpanKind::Client).parent(&process).links(&[&send]),
        ],
    );
    let s = attributes(span(&spans, &send));
    assert_eq!(s["messaging.system"], Value::from("aws_sqs"));
    assert_eq!(s["messaging.destination.name"], Value::from(q.clone()));
    assert_eq!(s["aws.sqs.queue.url"], Value::from(url.clone()));
    assert_eq!(s["messaging.message.id"], Value::from(message.message_id.clone().unwrap()));
    assert_eq!(s["server.address"], Value::from("127.0.0.1"));
    assert_eq!(s["server.port"], Value::I64(5000));
    assert!(!s.contains_key("otel_messaging.context.injected"));
    let p = attributes(span(&spans, &process));
    assert_eq!(p["otel_messaging.message.delivery_count"], Value::I64(1));
    assert!(matches!(p["otel_messaging.queue.wait.duration"], Value::F64(w) if (0.0..60.0).contains(&w)));
    assert_eq!(attributes(span(&spans, &receive))["messaging.batch.message_count"], Value::I64(1));
    // The receive span's link names its message (feature table row 10).
    let link = &span(&spans, &receive).links[0];
    assert!(
        link.attributes.contains(&opentelemetry::KeyValue::new(
            "messaging.message.id",
            message.message_id.clone().unwrap()
        )),
        "{:?}",
        link.attributes
    );
    // Processed, and counted, once: by the receive, not again by the process span.
    let metrics = t.metrics();
    let consumed: u64 =
        metrics.iter().filter(|m| m.name == "messaging.client.consumed.messages").map(|m| m.count).sum();
    assert_eq!(consumed, 1);
    // The queue wait reaches the histogram too, not only the span (feature table row 15).
    let wait = metrics
        .iter()
        .find(|m| m.name == "otel_messaging.queue.wait.duration")
        .expect("queue wait histogram");
    assert_eq!((wait.unit.as_str(), wait.count), ("s", 1));
}

#[tokio::test]
async fn link_only_policy_gives_new_root_plus_link() {
    let (t, tr, c, url) = setup(false).await;
    let consumer = SqsInstrumentation::default()
        .with_instrumenter(t.instrumenter().with_process_parent(ProcessParent::Link));
    let q = name_of(&url).to_owned();
    c.send_message().queue_url(&url).message_body("x").send_traced_with(&tr).await.expect("send");
    let received = c
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(1)
        .send_traced_with(&tr)
        .await
        .expect("receive");
    drop(received.messages.unwrap().pop().unwrap().start_process_with(&consumer));
    let spans = t.spans();
    let send = format!("send {q}");
    let process = format!("process {q}");
    assert_trace(
        &spans,
        &[
            shape(&send, SpanKind::Producer),
            shape(format!("receive {q}"), SpanKind::Client).links(&[&send]),
            shape(&process, SpanKind::Consumer).links(&[&send]),
        ],
    );
    assert_ne!(span(&spans, &send).span_context.trace_id(), span(&spans, &process).span_context.trace_id());
}

#[tokio::test]
async fn attribute_limit_degrades_to_traceparent_then_nothing_and_never_fails() {
    let (t, tr, c, url) = setup(false).await;
    for n in [9, 10] {
        let mut req = c.send_message().queue_url(&url).message_body(format!("{n} attributes"));
        for i in 0..n {
            req = req.message_attributes(format!("a{i}"), string("v"));
        }
        req.send_traced_with(&tr).await.expect("the send never fails because of the context");
    }
    let received = c
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .wait_time_seconds(1)
        .send_traced_with(&tr)
        .await
        .expect("receive");
    let messages = received.messages.unwrap();
    assert_eq!(messages.len(), 2);
    for m in &messages {
        let attrs = m.message_attributes.as_ref().unwrap();
        assert_eq!(attrs.len(), 10);
        let body = m.body.as_deref().unwrap();
        assert_eq!(attrs.contains_key("traceparent"), body.starts_with('9'), "{body}");
    }
    let spans = t.spans();
    let sends: Vec<_> = spans.iter().filter(|s| s.span_kind == SpanKind::Producer).collect();
    assert!(!attributes(sends[0]).contains_key("otel_messaging.context.injected"));
    assert_eq!(attributes(sends[1])["otel_messaging.context.injected"], Value::Bool(false));
}

#[tokio::test]
async fn batch_send_gives_create_spans_linked_by_a_client_send_span() {
    let (t, tr, c, url) = setup(false).await;
    let q = name_of(&url).to_owned();
    let entries: Vec<_> = (0..3)
        .map(|i| {
            SendMessageBatchRequestEntry::builder()
                .id(format!("e{i}"))
                .message_body(format!("m{i}"))
                .build()
                .unwrap()
        })
        .collect();
    let out = c
        .send_message_batch()
        .queue_url(&url)
        .set_entries(Some(entries))
        .send_traced_with(&tr)
        .await
        .expect("batch");
    assert_eq!(out.successful.len(), 3);
    let received = integration_tests::sqs_receive_traced(&c, &url, &tr).await;
    for m in received.messages.unwrap() {
        drop(m.start_process_with(&tr));
    }
    let spans = t.spans();
    let creates: Vec<_> = spans.iter().filter(|s| s.name == format!("create {q}")).collect();
    assert_eq!(creates.len(), 3, "{}", waterfall(&spans));
    assert!(creates.iter().all(|s| s.span_kind == SpanKind::Producer));
    let send = span(&spans, &format!("send {q}"));
    assert_eq!(send.span_kind, SpanKind::Client);
    assert_eq!(attributes(send)["messaging.batch.message_count"], Value::I64(3));
    let linked: Vec<_> = send.links.iter().map(|l| l.span_context.span_id()).collect();
    assert_eq!(linked, creates.iter().map(|s| s.span_context.span_id()).collect::<Vec<_>>());
    let processes: Vec<_> = spans.iter().filter(|s| s.name == format!("process {q}")).collect();
    assert_eq!(processes.len(), 3);
    for p in processes {
        assert!(
            creates.iter().any(|c| c.span_context.span_id() == p.parent_span_id),
            "each message continues its own create span"
        );
    }
}

#[tokio::test]
async fn aws_trace_header_alone_continues_that_trace_and_fifo_works() {
    let (t, tr, c, url) = setup(true).await;
    let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
    c.send_message()
        .queue_url(&url)
        .message_body("from an X-Ray instrumented producer")
        .message_group_id("g1")
        .message_system_attributes(
            MessageSystemAttributeNameForSends::AwsTraceHeader,
            MessageSystemAttributeValue::builder().data_type("String").string_value(header).build().unwrap(),
        )
        .send()
        .await
        .expect("untraced FIFO send");
    let received = c
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(1)
        .send_traced_with(&tr)
        .await
        .expect("receive");
    drop(received.messages.unwrap().pop().unwrap().start_process_with(&tr));
    let spans = t.spans();
    let process = span(&spans, &format!("process {}", name_of(&url)));
    assert_eq!(process.span_context.trace_id().to_string(), "5759e988bd862e3fe1be46a994272793");
    assert_eq!(process.parent_span_id.to_string(), "53995c3f42cd8ad8");
}

#[tokio::test]
async fn unknown_queue_gives_error_status_and_native_error() {
    let t = TestTelemetry::new();
    let tr = SqsInstrumentation::default().with_instrumenter(t.instrumenter());
    let c = client().await;
    let url = format!("{}/123456789012/{}", sqs_endpoint(), unique_name("missing"));
    let err = c
        .send_message()
        .queue_url(&url)
        .message_body("x")
        .send_traced_with(&tr)
        .await
        .expect_err("no such queue");
    let code = aws_sdk_sqs::error::ProvideErrorMetadata::code(&err).map(str::to_owned);
    assert!(code.is_some(), "{err:?}");
    let spans = t.spans();
    let send = span(&spans, &format!("send {}", name_of(&url)));
    assert!(matches!(send.status, opentelemetry::trace::Status::Error { .. }));
    assert_eq!(attributes(send)["error.type"], Value::from(code.unwrap()));
    use aws_sdk_sqs::operation::RequestId as _;
    let request_id = err.request_id().expect("moto answers with a request id");
    assert_eq!(attributes(send)["aws.request_id"], Value::from(request_id.to_owned()), "also on failures");
}

#[tokio::test]
async fn sns_notification_envelope_carries_the_context() {
    let (t, tr, c, url) = setup(false).await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    // What SQS receives from an SNS subscription without raw message delivery.
    let body = format!(
        r#"{{"Type":"Notification","MessageId":"n-1","TopicArn":"arn:aws:sns:us-east-1:123456789012:orders","Message":"hi","MessageAttributes":{{"traceparent":{{"Type":"String","Value":"{tp}"}}}}}}"#
    );
    c.send_message().queue_url(&url).message_body(body).send().await.expect("untraced send");
    let received = c
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(1)
        .send_traced_with(&tr)
        .await
        .expect("receive");
    drop(received.messages.unwrap().pop().unwrap().start_process_with(&tr));
    let spans = t.spans();
    let process = span(&spans, &format!("process {}", name_of(&url)));
    assert_eq!(process.span_context.trace_id().to_string(), &tp[3..35]);
    assert_eq!(process.parent_span_id.to_string(), &tp[36..52]);
}

/// Attributes the caller asked for are returned; the ones the instrumentation added are not, and
/// the process span still reads them.
#[tokio::test]
async fn receive_returns_what_the_caller_asked_for() {
    let (t, tr, c, url) = setup(false).await;
    c.send_message()
        .queue_url(&url)
        .message_body("x")
        .message_attributes("tenant", string("acme"))
        .send_traced_with(&tr)
        .await
        .expect("send");
    let received = c
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(1)
        .message_attribute_names("tenant")
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp)
        .send_traced_with(&tr)
        .await
        .expect("receive");
    let message = received.messages.unwrap().pop().unwrap();
    let names: Vec<_> = message.message_attributes.as_ref().unwrap().keys().cloned().collect();
    assert_eq!(names, ["tenant"]);
    let system: Vec<_> = message.attributes.as_ref().unwrap().keys().cloned().collect();
    assert_eq!(system, [aws_sdk_sqs::types::MessageSystemAttributeName::SentTimestamp]);
    let traced = message.start_process_with(&tr);
    assert_eq!(
        traced.message().message_attributes.as_ref().unwrap().len(),
        1,
        "the handler sees the same message"
    );
    drop(traced);
    let spans = t.spans();
    let q = name_of(&url);
    let process = span(&spans, &format!("process {q}"));
    assert_eq!(process.parent_span_id, span(&spans, &format!("send {q}")).span_context.span_id());
    assert_eq!(attributes(process)["otel_messaging.message.delivery_count"], Value::I64(1));
}

/// The deprecated `AttributeNames` (still common: `QueueAttributeName::All`) asks for system
/// attributes too: the traced receive returns them as the native one does (reliability review H2:
/// they used to be stripped, and `ApproximateReceiveCount` poison-message logic stopped).
#[tokio::test]
async fn receive_keeps_system_attributes_asked_for_the_deprecated_way() {
    use aws_sdk_sqs::types::{MessageSystemAttributeName as S, QueueAttributeName as Q};
    let (t, tr, c, url) = setup(false).await;
    for body in ["traced", "native"] {
        c.send_message().queue_url(&url).message_body(body).send_traced_with(&tr).await.expect("send");
    }
    #[allow(deprecated)]
    let traced = c
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(1)
        .max_number_of_messages(1)
        .attribute_names(Q::All)
        .send_traced_with(&tr)
        .await
        .expect("traced receive");
    #[allow(deprecated)]
    let native = c
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(1)
        .max_number_of_messages(1)
        .attribute_names(Q::All)
        .send()
        .await
        .expect("native receive");
    let keys = |output: &aws_sdk_sqs::operation::receive_message::ReceiveMessageOutput| {
        let mut keys: Vec<String> = output.messages()[0]
            .attributes()
            .map(|a| a.keys().map(|k| k.as_str().to_owned()).collect())
            .unwrap_or_default();
        keys.sort();
        keys
    };
    let traced_keys = keys(&traced);
    assert!(traced_keys.contains(&S::ApproximateReceiveCount.as_str().to_owned()), "{traced_keys:?}");
    assert!(traced_keys.contains(&S::SentTimestamp.as_str().to_owned()), "{traced_keys:?}");
    assert_eq!(traced_keys, keys(&native), "the traced receive returns what the native one does");
    drop(t);
}

/// Injection never pushes a message over the queue's size limit: the context is dropped instead
/// (moto counts only bodies; SQS counts attribute names, types and values too).
#[tokio::test]
async fn injection_degrades_at_the_message_size_limit() {
    let (t, tr, c, url) = setup(false).await;
    let tr = tr.with_max_message_bytes(1_000);
    let body = "x".repeat(990);
    c.send_message().queue_url(&url).message_body(&body).send_traced_with(&tr).await.expect("send");
    let entries = (0..2)
        .map(|i| {
            SendMessageBatchRequestEntry::builder()
                .id(format!("e{i}"))
                .message_body("y".repeat(450))
                .build()
                .unwrap()
        })
        .collect::<Vec<_>>();
    let out = c
        .send_message_batch()
        .queue_url(&url)
        .set_entries(Some(entries))
        .send_traced_with(&tr)
        .await
        .expect("batch");
    assert_eq!(out.successful.len(), 2);
    let spans = t.spans();
    let q = name_of(&url);
    let send = spans.iter().find(|s| s.name == format!("send {q}")).expect("the single send");
    assert_eq!(attributes(send)["otel_messaging.context.injected"], Value::Bool(false));
    let creates: Vec<_> = spans.iter().filter(|s| s.name == format!("create {q}")).collect();
    assert_eq!(creates.len(), 2);
    let injected: Vec<_> =
        creates.iter().map(|s| attributes(s).contains_key("otel_messaging.context.injected")).collect();
    assert_eq!(
        injected,
        [false, true],
        "the first entry's context fits the 1000-byte batch, the second's does not"
    );
}

// ---- Spec-exact telemetry (issue 10) ----

/// A `SendMessageBatch` whose response lists failed entries (moto rejects `DelaySeconds` over
/// 900 per entry): the send span gets `error.type` (the entry's code), and
/// `messaging.client.sent.messages` counts the successful entry without `error.type` and the
/// failed one with it — with create spans on and off. With create spans off, an entry's
/// user-provided creation context is linked from the send span.
#[tokio::test]
async fn a_partly_failed_batch_is_reflected_on_the_send_span_and_metrics() {
    let fixed = integration_tests::sqs_endpoint_fixing_sender_fault(&sqs_endpoint()).await;
    let c = integration_tests::sqs_client(&fixed, 1).await;
    for create_spans in [true, false] {
        let (t, tr, _, url) = setup(false).await;
        let tr = tr.with_create_spans(create_spans);
        let q = name_of(&url).to_owned();
        let user_tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        let entries = vec![
            SendMessageBatchRequestEntry::builder()
                .id("ok")
                .message_body("fine")
                .message_attributes("traceparent", string(user_tp))
                .build()
                .unwrap(),
            SendMessageBatchRequestEntry::builder()
                .id("bad")
                .message_body("late")
                .delay_seconds(1000)
                .build()
                .unwrap(),
        ];
        let out = c
            .send_message_batch()
            .queue_url(&url)
            .set_entries(Some(entries))
            .send_traced_with(&tr)
            .await
            .expect("the call succeeds; one entry fails");
        assert_eq!((out.successful.len(), out.failed.len()), (1, 1), "moto reports the entry");
        let code = out.failed[0].code.clone();
        let spans = t.spans();
        let send = span(&spans, &format!("send {q}"));
        assert!(
            matches!(send.status, opentelemetry::trace::Status::Error { .. }),
            "create spans {create_spans}"
        );
        assert_eq!(attributes(send)["error.type"], Value::from(code.clone()));
        if !create_spans {
            let linked: Vec<_> = send.links.iter().map(|l| l.span_context.span_id().to_string()).collect();
            assert_eq!(linked, ["b7ad6b7169203331"], "the user's creation context is linked");
        }
        let sent: Vec<_> =
            t.metrics().into_iter().filter(|m| m.name == "messaging.client.sent.messages").collect();
        let with_error = |failed: bool| {
            sent.iter()
                .filter(|m| m.attributes.iter().any(|kv| kv.key.as_str() == "error.type") == failed)
                .map(|m| m.count)
                .sum::<u64>()
        };
        assert_eq!((with_error(false), with_error(true)), (1, 1), "create spans {create_spans}: {sent:?}");
    }
}

/// `message.process_traced(handler)` needs no queue URL: the traced receive remembers it for
/// each message; with the plain receive, `with_queue_url` names the queue.
#[tokio::test]
async fn processing_needs_no_queue_url() {
    let (t, tr, c, url) = setup(false).await;
    let q = name_of(&url).to_owned();
    for body in ["a", "b"] {
        c.send_message().queue_url(&url).message_body(body).send_traced_with(&tr).await.expect("sent");
    }
    let traced = c
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(1)
        .wait_time_seconds(1)
        .send_traced_with(&tr)
        .await
        .expect("receive");
    let message = traced.messages.unwrap().pop().unwrap();
    let (_, result) = message.start_process_with(&tr).process(async |_| Ok::<_, std::io::Error>(())).await;
    result.expect("handler");
    let plain = c.receive_message().queue_url(&url).wait_time_seconds(1).send().await.expect("receive");
    let message = plain.messages.unwrap().pop().unwrap();
    let with_url = tr.clone().with_queue_url(&url);
    let (_, result) =
        message.start_process_with(&with_url).process(async |_| Ok::<_, std::io::Error>(())).await;
    result.expect("handler");
    let spans = t.spans();
    let processes: Vec<_> = spans.iter().filter(|s| s.name == format!("process {q}")).collect();
    assert_eq!(processes.len(), 2, "{}", waterfall(&spans));
    for p in processes {
        assert_eq!(attributes(p)["aws.sqs.queue.url"], Value::from(url.clone()));
    }
}

/// `DeleteMessageBatch` is one `delete {queue}` settle span (CLIENT) counting its entries
/// (feature table row 22: implemented but never asserted).
#[tokio::test]
async fn a_batch_delete_is_one_settle_span_with_its_count() {
    use otel_messaging_aws_sqs::DeleteMessageBatchFluentBuilderExt as _;
    let (t, tr, c, url) = setup(false).await;
    let q = name_of(&url).to_owned();
    for body in ["a", "b"] {
        c.send_message().queue_url(&url).message_body(body).send_traced_with(&tr).await.expect("send");
    }
    let mut handles = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while handles.len() < 2 {
        assert!(std::time::Instant::now() < deadline, "both messages in time");
        let out = c
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        handles.extend(out.messages.unwrap_or_default().into_iter().filter_map(|m| m.receipt_handle));
    }
    let entries = handles.iter().enumerate().map(|(i, h)| {
        aws_sdk_sqs::types::DeleteMessageBatchRequestEntry::builder()
            .id(format!("e{i}"))
            .receipt_handle(h)
            .build()
            .unwrap()
    });
    let out = c
        .delete_message_batch()
        .queue_url(&url)
        .set_entries(Some(entries.collect()))
        .send_traced_with(&tr)
        .await
        .expect("batch delete");
    assert_eq!(out.successful().len(), 2);
    let spans = t.spans();
    let delete = span(&spans, &format!("delete {q}"));
    assert_eq!(delete.span_kind, SpanKind::Client);
    let a = attributes(delete);
    assert_eq!(a["messaging.operation.type"], Value::from("settle"));
    assert_eq!(a["messaging.batch.message_count"], Value::I64(2));
    assert!(!a.contains_key("error.type"));
}

/// A delete made outside the handler, after processing, still belongs to its message: linked to
/// its creation context (issue "Correct by default", point 4: it was not even linked), with the
/// current context as parent.
#[tokio::test]
async fn a_delete_outside_the_handler_links_its_message() {
    let (t, tr, c, url) = setup(false).await;
    let q = name_of(&url).to_owned();
    c.send_message().queue_url(&url).message_body("x").send_traced_with(&tr).await.expect("send");
    let received = c
        .receive_message()
        .queue_url(&url)
        .wait_time_seconds(1)
        .send_traced_with(&tr)
        .await
        .expect("receive");
    let message = received.messages.expect("messages").pop().expect("a message");
    let handle = message.receipt_handle.clone().expect("receipt handle");
    message.process_traced_with(&tr, async { Ok::<_, std::io::Error>(()) }).await.expect("handler");
    let worker = Context::new().with_span(t.tracer("app").start("worker tick"));
    c.delete_message()
        .queue_url(&url)
        .receipt_handle(handle)
        .send_traced_with(&tr)
        .with_context(worker.clone())
        .await
        .expect("delete");
    worker.span().end();
    let spans = t.spans();
    let (send, delete) = (format!("send {q}"), format!("delete {q}"));
    let delete_span = span(&spans, &delete);
    assert_eq!(delete_span.links.len(), 1, "{}", waterfall(&spans));
    assert_eq!(delete_span.links[0].span_context.span_id(), span(&spans, &send).span_context.span_id());
    assert_eq!(delete_span.parent_span_id, span(&spans, "worker tick").span_context.span_id());
}

/// A traced receive reads each message's context once (BENCHMARKS.md, lever 26): for its link,
/// its process span (the baggage included, though the caller asked for no attribute) and the link
/// of its delete span; each process span is a child of its own send.
#[tokio::test]
async fn a_receives_reading_serves_each_messages_process_and_delete() {
    use opentelemetry::baggage::BaggageExt as _;
    use std::sync::atomic::Ordering;

    let t = TestTelemetry::new();
    let (instrumenter, readings) = integration_tests::counting_instrumenter(&t);
    let tr = SqsInstrumentation::default().with_instrumenter(instrumenter);
    let c = client().await;
    let url = queue(&c, false).await;
    let q = name_of(&url).to_owned();
    for tenant in ["a", "b", "c"] {
        let cx = Context::new().with_baggage([opentelemetry::KeyValue::new("tenant", tenant)]);
        async { c.send_message().queue_url(&url).message_body(tenant).send_traced_with(&tr).await }
            .with_context(cx)
            .await
            .expect("send");
    }
    let mut messages = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while messages.len() < 3 {
        assert!(std::time::Instant::now() < deadline, "3 messages in time, got {}", messages.len());
        let received = integration_tests::sqs_receive_traced(&c, &url, &tr).await;
        messages.extend(received.messages.unwrap_or_default());
    }
    assert_eq!(readings.load(Ordering::SeqCst), 3, "the receive reads each message once");
    for message in messages {
        assert_eq!(message.message_attributes, None, "no message attribute was asked for");
        let body = message.body.clone().expect("body");
        let (message, seen) = message
            .start_process_with(&tr)
            .process(async |m| {
                let tenant = Context::current().baggage().get("tenant").map(|v| v.as_str().to_owned());
                let receipt = m.receipt_handle.clone().expect("receipt handle");
                c.delete_message().queue_url(&url).receipt_handle(receipt).send_traced_with(&tr).await?;
                Ok::<_, aws_sdk_sqs::error::SdkError<_, _>>(tenant)
            })
            .await;
        assert_eq!(seen.expect("delete").as_deref(), Some(body.as_str()), "its own baggage");
        assert_eq!(message.message_attributes, None, "the message is unchanged");
    }
    assert_eq!(readings.load(Ordering::SeqCst), 3, "the process and delete spans read nothing again");

    let spans = t.spans();
    let (send, process, delete) = (format!("send {q}"), format!("process {q}"), format!("delete {q}"));
    let sends: Vec<_> = spans.iter().filter(|s| s.name == send).collect();
    let processes: Vec<_> = spans.iter().filter(|s| s.name == process).collect();
    assert_eq!((sends.len(), processes.len()), (3, 3), "{}", waterfall(&spans));
    for p in &processes {
        let parent = sends.iter().find(|s| s.span_context.span_id() == p.parent_span_id);
        assert!(parent.is_some(), "a child of a send: {}", waterfall(&spans));
        assert_eq!(p.links.len(), 1);
        assert_eq!(p.links[0].span_context.span_id(), p.parent_span_id, "linked to its own send");
    }
    for d in spans.iter().filter(|s| s.name == delete) {
        let process =
            processes.iter().find(|p| p.span_context.span_id() == d.parent_span_id).expect("in a process");
        assert_eq!(d.links.len(), 1);
        assert_eq!(d.links[0].span_context.span_id(), process.parent_span_id, "linked to its message's send");
    }
    let distinct: std::collections::HashSet<_> = processes.iter().map(|p| p.parent_span_id).collect();
    assert_eq!(distinct.len(), 3, "each its own send");
}
