//! NATS and JetStream on a real nats-server (`just brokers-up`): whole-trace assertions as for the
//! other brokers, every span checked against the conformance table by `TestTelemetry::spans`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use futures_util::StreamExt as _;
use integration_tests::{nats_url, unique_name};
use opentelemetry::{
    Context, KeyValue, Value,
    trace::{FutureExt as _, SpanKind, TraceContextExt as _, Tracer as _},
};
use otel_messaging::testing::{TestTelemetry, assert_trace, attributes, shape, span, waterfall};
use otel_messaging_async_nats::{
    ClientExt as _, JetStreamExt as _, JetStreamMessageExt as _, MessageExt as _, NatsInstrumentation,
    PullConsumerExt as _, SubscriberExt as _,
};

const TIMEOUT: Duration = Duration::from_secs(10);

fn tracing(t: &TestTelemetry) -> NatsInstrumentation {
    NatsInstrumentation::from_url(&nats_url()).with_instrumenter(t.instrumenter())
}

async fn client() -> async_nats::Client {
    async_nats::connect(nats_url()).await.expect("connect")
}

/// A fresh JetStream stream named after `prefix`, holding the subject `{name}.{suffix}`; returns
/// the stream, its name and the subject.
async fn jetstream_stream(
    js: &async_nats::jetstream::Context,
    prefix: &str,
    suffix: &str,
) -> (async_nats::jetstream::stream::Stream, String, String) {
    let name = unique_name(prefix).replace(['-', '.'], "_");
    let subject = format!("{name}.{suffix}");
    let stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            ..Default::default()
        })
        .await
        .expect("stream (nats-server with JetStream: `-js`)");
    (stream, name, subject)
}

/// A durable pull consumer named `workers` on `stream`.
async fn workers(
    stream: &async_nats::jetstream::stream::Stream,
) -> async_nats::jetstream::consumer::Consumer<async_nats::jetstream::consumer::pull::Config> {
    stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("workers".into()),
            ..Default::default()
        })
        .await
        .expect("consumer")
}

#[tokio::test]
async fn publish_then_process_is_one_trace_with_the_queue_group() {
    let t = TestTelemetry::new();
    let tr = tracing(&t);
    let workers = tr.clone().with_queue_group("workers");
    let client = client().await;
    let subject = unique_name("orders");
    let mut subscriber = client.queue_subscribe(subject.clone(), "workers".into()).await.expect("subscribe");
    client.flush().await.expect("flush");

    let request = Context::new().with_span(t.tracer("app").start("POST /orders"));
    async { client.publish_traced_with(&tr, subject.clone(), "order 42".into()).await }
        .with_context(request.clone())
        .await
        .expect("publish");
    request.span().end();

    let message = tokio::time::timeout(TIMEOUT, subscriber.next()).await.expect("in time").expect("message");
    message.process_traced_with(&workers, async { Ok::<_, std::io::Error>(()) }).await.expect("handler");

    let spans = t.spans();
    let (publish, process) = (format!("publish {subject}"), format!("process {subject}"));
    assert_trace(
        &spans,
        &[
            shape("POST /orders", SpanKind::Internal),
            shape(&publish, SpanKind::Producer).parent("POST /orders").attributes([
                KeyValue::new("messaging.system", "nats"),
                KeyValue::new("messaging.operation.name", "publish"),
                KeyValue::new("messaging.operation.type", "send"),
                KeyValue::new("messaging.destination.name", subject.clone()),
                KeyValue::new("server.address", "127.0.0.1"),
                KeyValue::new("server.port", 4222_i64),
            ]),
            shape(&process, SpanKind::Consumer).parent(&publish).links(&[&publish]).including([
                KeyValue::new("messaging.operation.type", "process"),
                KeyValue::new("messaging.destination.name", subject.clone()),
                KeyValue::new("messaging.consumer.group.name", "workers"),
            ]),
        ],
    );
}

#[tokio::test]
async fn request_handling_and_reply_are_one_trace() {
    let t = TestTelemetry::new();
    let tr = tracing(&t);
    let client = client().await;
    let subject = unique_name("prices");
    let mut requests = client.subscribe(subject.clone()).await.expect("subscribe");
    client.flush().await.expect("flush");
    let responder = {
        let (client, tr) = (client.clone(), tr.clone());
        tokio::spawn(async move {
            let request = requests.next().await.expect("a request");
            let reply = request.reply.clone().expect("a reply subject");
            request
                .process_traced_with(&tr, async {
                    client.publish_traced_with(&tr, reply, "42.00".into()).await
                })
                .await
                .expect("reply");
        })
    };

    let call = Context::new().with_span(t.tracer("app").start("GET /price"));
    let reply = async { client.request_traced_with(&tr, subject.clone(), "sku-1".into()).await }
        .with_context(call.clone())
        .await
        .expect("reply");
    call.span().end();
    responder.await.expect("responder");
    assert_eq!(&reply.payload[..], b"42.00");

    let spans = t.spans();
    let request = format!("publish {subject}");
    let process = format!("process {subject}");
    assert_trace(
        &spans,
        &[
            shape("GET /price", SpanKind::Internal),
            shape(&request, SpanKind::Producer).parent("GET /price"),
            shape(&process, SpanKind::Consumer).parent(&request).links(&[&request]),
            // The reply goes to a per-request inbox: a temporary destination, kept out of the name.
            shape("publish", SpanKind::Producer)
                .parent(&process)
                .including([KeyValue::new("messaging.destination.temporary", true)]),
        ],
    );
    // The request span covers the whole round trip, reply included.
    let (request, reply_span) = (span(&spans, &request), span(&spans, "publish"));
    assert!(request.end_time >= reply_span.end_time, "{}", waterfall(&spans));
}

#[tokio::test]
async fn a_request_without_responders_records_the_native_error() {
    let t = TestTelemetry::new();
    let tr = tracing(&t);
    let client = client().await;
    let subject = unique_name("nobody");
    let error =
        client.request_traced_with(&tr, subject.clone(), "x".into()).await.expect_err("no responders");
    assert_eq!(error.kind(), async_nats::RequestErrorKind::NoResponders);
    let spans = t.spans();
    let request = span(&spans, &format!("publish {subject}"));
    assert_eq!(attributes(request)["error.type"], Value::from("no_responders"));
}

#[tokio::test]
async fn jetstream_publish_pull_process_ack_is_one_trace_with_the_stream_facts() {
    let t = TestTelemetry::new();
    let tr = tracing(&t);
    let client = client().await;
    let js = async_nats::jetstream::new(client);
    let (stream, stream_name, subject) = jetstream_stream(&js, "ORDERS", "created").await;

    let request = Context::new().with_span(t.tracer("app").start("POST /orders"));
    let ack = async {
        js.publish_traced_with(&tr, subject.clone(), "order 42".into()).await.expect("publish").await
    }
    .with_context(request.clone())
    .await
    .expect("pub ack");
    request.span().end();

    let consumer = workers(&stream).await;
    let mut messages = consumer.messages().await.expect("messages");
    let message = tokio::time::timeout(TIMEOUT, messages.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("message");
    message.process_traced_with(&tr, async { Ok::<_, std::io::Error>(()) }).await.expect("handler");
    // Acknowledged outside the handler: the settle span takes the context current when its
    // future is first polled as parent (issue "Correct by default", point 4) and still links to
    // the message's creation context.
    let worker = Context::new().with_span(t.tracer("app").start("worker tick"));
    message.ack_traced_with(&tr).with_context(worker.clone()).await.expect("ack");
    worker.span().end();
    js.delete_stream(&stream_name).await.expect("cleanup");

    let spans = t.spans();
    let (publish, process, settle) =
        (format!("publish {subject}"), format!("process {subject}"), format!("ack {subject}"));
    let sequence = ack.sequence.to_string();
    assert_trace(
        &spans,
        &[
            shape("POST /orders", SpanKind::Internal),
            shape(&publish, SpanKind::Producer)
                .parent("POST /orders")
                .including([KeyValue::new("messaging.message.id", sequence.clone())]),
            shape(&process, SpanKind::Consumer).parent(&publish).links(&[&publish]).including([
                KeyValue::new("messaging.message.id", sequence.clone()),
                KeyValue::new("otel_messaging.message.delivery_count", 1_i64),
            ]),
            shape("worker tick", SpanKind::Internal),
            shape(&settle, SpanKind::Client).parent("worker tick").links(&[&publish]).including([
                KeyValue::new("messaging.operation.type", "settle"),
                KeyValue::new("messaging.message.id", sequence),
            ]),
        ],
    );
    let wait = attributes(span(&spans, &process))["otel_messaging.queue.wait.duration"].clone();
    assert!(matches!(wait, Value::F64(w) if (0.0..60.0).contains(&w)), "{wait:?}");
}

#[tokio::test]
async fn a_traced_subscription_streams_messages_with_their_process_spans() {
    let t = TestTelemetry::new();
    let tr = tracing(&t);
    let client = client().await;
    let subject = unique_name("events");
    let subscriber = client.subscribe(subject.clone()).await.expect("subscribe");
    client.flush().await.expect("flush");
    let mut stream = subscriber.stream_traced_with(&tr);
    for i in 0..3 {
        client.publish_traced_with(&tr, subject.clone(), format!("event {i}").into()).await.expect("publish");
    }
    for _ in 0..3 {
        let traced = tokio::time::timeout(TIMEOUT, stream.next()).await.expect("in time").expect("message");
        let (_, result) = traced.process(async |m| Ok::<_, std::io::Error>(m.payload.len())).await;
        assert_eq!(result.expect("handler"), 7);
    }
    let spans = t.spans();
    let publishes: Vec<_> = spans.iter().filter(|s| s.span_kind == SpanKind::Producer).collect();
    let processes: Vec<_> = spans.iter().filter(|s| s.span_kind == SpanKind::Consumer).collect();
    assert_eq!((publishes.len(), processes.len()), (3, 3), "{}", waterfall(&spans));
    for process in processes {
        assert!(
            publishes.iter().any(|p| p.span_context.span_id() == process.parent_span_id),
            "each process span is the child of a publish: {}",
            waterfall(&spans)
        );
    }
}

#[tokio::test]
async fn a_jetstream_fetch_links_every_message_and_counts_the_batch_once() {
    let t = TestTelemetry::new();
    let tr = tracing(&t);
    let js = async_nats::jetstream::new(client().await);
    let (stream, stream_name, subject) = jetstream_stream(&js, "BATCH", "jobs").await;
    for i in 0..3 {
        js.publish_traced_with(&tr, subject.clone(), format!("job {i}").into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
    let consumer = workers(&stream).await;
    // The fetch appends: what the caller already holds is untouched.
    let mut messages = vec![];
    let appended = consumer.fetch_traced_with(&tr, &mut messages, 3).await.expect("fetch");
    assert_eq!((appended, messages.len()), (3, 3));
    assert_eq!(consumer.fetch_traced_with(&tr, &mut messages, 3).await.expect("empty fetch"), 0);
    assert_eq!(messages.len(), 3, "an empty fetch leaves the batch as it was");
    for message in &messages {
        message.process_traced_with(&tr, async { Ok::<_, std::io::Error>(()) }).await.expect("handler");
        message.ack().await.expect("ack");
    }
    js.delete_stream(&stream_name).await.expect("cleanup");

    let spans = t.spans();
    let receives: Vec<_> = spans.iter().filter(|s| s.name == format!("receive {stream_name}")).collect();
    assert_eq!(receives.len(), 2, "{}", waterfall(&spans));
    assert_eq!(attributes(receives[1])["messaging.batch.message_count"], Value::I64(0));
    let receive = receives[0];
    assert_eq!(receive.span_kind, SpanKind::Client);
    let a = attributes(receive);
    assert_eq!(a["messaging.batch.message_count"], Value::I64(3));
    assert_eq!(a["messaging.consumer.group.name"], Value::from("workers"));
    let publishes: Vec<_> = spans.iter().filter(|s| s.span_kind == SpanKind::Producer).collect();
    assert_eq!(receive.links.len(), 3, "{}", waterfall(&spans));
    for link in receive.links.iter() {
        assert!(publishes.iter().any(|p| p.span_context.span_id() == link.span_context.span_id()));
        assert!(link.attributes.iter().any(|kv| kv.key.as_str() == "messaging.message.id"));
    }
    let consumed: u64 =
        t.metrics().iter().filter(|m| m.name == "messaging.client.consumed.messages").map(|m| m.count).sum();
    assert_eq!(consumed, 3, "the fetch counts the batch; the process spans do not count it again");
}

#[tokio::test]
async fn a_jetstream_push_consumer_processes_in_the_publishers_trace() {
    let t = TestTelemetry::new();
    let tr = tracing(&t).with_queue_group("pushers");
    let client = client().await;
    let js = async_nats::jetstream::new(client.clone());
    let (stream, stream_name, subject) = jetstream_stream(&js, "PUSH", "events").await;
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::push::Config {
            durable_name: Some("pushers".into()),
            deliver_subject: client.new_inbox(),
            ..Default::default()
        })
        .await
        .expect("push consumer");
    js.publish_traced_with(&tr, subject.clone(), "event".into()).await.expect("publish").await.expect("ack");
    let mut messages = consumer.messages().await.expect("messages");
    let message = tokio::time::timeout(TIMEOUT, messages.next())
        .await
        .expect("in time")
        .expect("open")
        .expect("message");
    message.process_traced_with(&tr, async { Ok::<_, std::io::Error>(()) }).await.expect("handler");
    message.ack_traced_with(&tr).await.expect("ack");
    js.delete_stream(&stream_name).await.expect("cleanup");

    let spans = t.spans();
    let (publish, process) = (format!("publish {subject}"), format!("process {subject}"));
    let process_span = span(&spans, &process);
    assert_eq!(
        process_span.parent_span_id,
        span(&spans, &publish).span_context.span_id(),
        "{}",
        waterfall(&spans)
    );
    let a = attributes(process_span);
    assert_eq!(a["messaging.consumer.group.name"], Value::from("pushers"));
    assert_eq!(a["otel_messaging.message.delivery_count"], Value::I64(1));
}

#[tokio::test]
async fn a_cancelled_jetstream_fetch_records_its_receive_span_as_cancelled() {
    let t = TestTelemetry::new();
    let tr = tracing(&t);
    let js = async_nats::jetstream::new(client().await);
    let (stream, stream_name, _subject) = jetstream_stream(&js, "CANCEL", "jobs").await;
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("cancelled".into()),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut batch = vec![];
    // Each fetch is polled once, then dropped: cancelled whenever it was still waiting for the
    // server (an empty stream can also answer within that first poll).
    let mut cancelled = 0;
    for _ in 0..50 {
        use futures_util::FutureExt as _;
        if consumer.fetch_traced_with(&tr, &mut batch, 5).now_or_never().is_none() {
            cancelled += 1;
        }
        if cancelled == 3 {
            break;
        }
    }
    assert_eq!(cancelled, 3, "some fetches were still waiting after their first poll");
    js.delete_stream(&stream_name).await.expect("cleanup");

    let spans = t.spans();
    let receives: Vec<_> = spans.iter().filter(|s| s.name == format!("receive {stream_name}")).collect();
    let cancelled_spans =
        receives.iter().filter(|s| attributes(s).get("error.type") == Some(&Value::from("cancelled")));
    assert_eq!(cancelled_spans.count(), 3, "{}", waterfall(&spans));
    assert!(receives.iter().all(|s| attributes(s)["messaging.batch.message_count"] == Value::I64(0)));
}

/// A publish of exactly `max_payload` bytes succeeds natively; the traced one must too, with the
/// context dropped (reliability review H3: it failed with `MaxPayloadExceeded`). A payload that
/// leaves room for `traceparent` alone carries it; core NATS and JetStream alike.
#[tokio::test]
async fn a_publish_at_max_payload_never_fails_because_of_the_context() {
    let t = TestTelemetry::new();
    let tr = tracing(&t);
    let client = client().await;
    let max = client.max_payload();
    let subject = unique_name("big");
    let mut subscriber = client.subscribe(subject.clone()).await.expect("subscribe");
    client.flush().await.expect("flush");

    let request = Context::new().with_span(t.tracer("app").start("POST /upload"));
    let _guard = request.clone().attach();
    let full = bytes::Bytes::from(vec![b'x'; max]);
    client.publish(subject.clone(), full.clone()).await.expect("the native publish fits");
    client
        .publish_traced_with(&tr, subject.clone(), full.clone())
        .await
        .expect("the traced publish fits too");
    // Room for the header block and `traceparent` (55) but not for `baggage` as well.
    let room = "NATS/1.0\r\n\r\n".len() + "traceparent: \r\n".len() + 55;
    let baggage =
        opentelemetry::baggage::BaggageExt::with_baggage(&request, [KeyValue::new("k", "v".repeat(200))]);
    let _baggage = baggage.attach();
    let almost = bytes::Bytes::from(vec![b'y'; max - room]);
    client.publish_traced_with(&tr, subject.clone(), almost.clone()).await.expect("publish");
    client.flush().await.expect("flush");

    let mut got = Vec::new();
    while got.len() < 3 {
        let m =
            tokio::time::timeout(TIMEOUT, subscriber.next()).await.expect("message in time").expect("open");
        got.push(m);
    }
    assert_eq!(got[0].payload, full);
    assert_eq!(got[1].payload, full, "payload unchanged");
    assert!(got[1].headers.is_none(), "no context fits: none is sent");
    assert_eq!(got[2].payload, almost);
    let headers = got[2].headers.as_ref().expect("traceparent fits");
    assert!(headers.get("traceparent").is_some());
    assert!(headers.get("baggage").is_none(), "baggage dropped first");

    drop(_baggage);
    drop(_guard);
    let spans = t.spans();
    let publishes: Vec<_> = spans.iter().filter(|s| s.name == format!("publish {subject}")).collect();
    assert_eq!(publishes.len(), 2, "{}", waterfall(&spans));
    assert_eq!(attributes(publishes[0])["otel_messaging.context.injected"], Value::Bool(false));
    assert!(!attributes(publishes[1]).contains_key("otel_messaging.context.injected"));
}

/// `nak` and `term` are settle spans of their own, linked to the message's creation context; the
/// nak'ed message comes back with its delivery count 2 (feature table row 22: implemented but
/// never asserted).
#[tokio::test]
async fn nak_and_term_are_settle_spans_and_the_redelivery_is_counted() {
    let t = TestTelemetry::new();
    let tr = tracing(&t);
    let js = async_nats::jetstream::new(client().await);
    let (stream, stream_name, subject) = jetstream_stream(&js, "NAK", "jobs").await;
    js.publish_traced_with(&tr, subject.clone(), "job".into()).await.expect("publish").await.expect("ack");
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("retrying".into()),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let mut next = async || {
        tokio::time::timeout(TIMEOUT, messages.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("message")
    };
    let first = next().await;
    first.process_traced_with(&tr, async { Ok::<_, std::io::Error>(()) }).await.expect("handler");
    first.ack_with_traced_with(&tr, async_nats::jetstream::AckKind::Nak(None)).await.expect("nak");
    let second = next().await;
    second.process_traced_with(&tr, async { Ok::<_, std::io::Error>(()) }).await.expect("handler");
    second.ack_with_traced_with(&tr, async_nats::jetstream::AckKind::Term).await.expect("term");
    js.delete_stream(&stream_name).await.expect("cleanup");

    let spans = t.spans();
    let publish = span(&spans, &format!("publish {subject}"));
    for name in ["nak", "term"] {
        let settle = span(&spans, &format!("{name} {subject}"));
        assert_eq!(settle.span_kind, SpanKind::Client);
        assert_eq!(attributes(settle)["messaging.operation.type"], Value::from("settle"));
        assert_eq!(attributes(settle)["messaging.operation.name"], Value::from(name));
        assert_eq!(settle.links.len(), 1, "{}", waterfall(&spans));
        assert_eq!(settle.links[0].span_context.span_id(), publish.span_context.span_id());
    }
    let counts: Vec<_> = spans
        .iter()
        .filter(|s| s.name == format!("process {subject}"))
        .map(|s| attributes(s)["otel_messaging.message.delivery_count"].clone())
        .collect();
    assert_eq!(counts, [Value::I64(1), Value::I64(2)]);
}

/// `client.publish_traced(..).with_context(cx)` parents the publish span on `cx` (the span takes
/// its parent when the future is first polled; issue "Correct by default", point 4).
#[tokio::test]
async fn a_publish_future_takes_its_parent_when_polled() {
    let t = TestTelemetry::new();
    let tr = tracing(&t);
    let client = client().await;
    let subject = unique_name("ctx");
    let request = Context::new().with_span(t.tracer("app").start("POST /orders"));
    let publish = client.publish_traced_with(&tr, subject.clone(), "x".into());
    publish.with_context(request.clone()).await.expect("publish");
    request.span().end();
    let spans = t.spans();
    let name = format!("publish {subject}");
    assert_trace(
        &spans,
        &[shape("POST /orders", SpanKind::Internal), shape(&name, SpanKind::Producer).parent("POST /orders")],
    );
}

/// Subjects that carry ids get their template (issue "Spec-exact and bounded", point 2): span
/// names `{operation} {template}`, the template on spans and metrics, and one metric series for
/// any number of ids instead of one per subject.
#[tokio::test]
async fn subjects_with_ids_are_named_and_counted_by_their_template() {
    let t = TestTelemetry::new();
    let prefix = unique_name("orders");
    let template = format!("{prefix}.{{order_id}}.created");
    let tr = NatsInstrumentation::from_url(&nats_url()).with_instrumenter(
        t.instrumenter_builder()
            .with_destination_templates(otel_messaging_async_nats::DestinationTemplates::new([&template]))
            .build(),
    );
    let client = client().await;
    let subscriber = client.subscribe(format!("{prefix}.*.created")).await.expect("subscribe");
    client.flush().await.expect("flush");
    let mut stream = subscriber.stream_traced_with(&tr);
    for id in 0..5 {
        client
            .publish_traced_with(&tr, format!("{prefix}.{id}.created"), "order".into())
            .await
            .expect("publish");
    }
    for _ in 0..5 {
        let traced = tokio::time::timeout(TIMEOUT, stream.next()).await.expect("in time").expect("message");
        let (_, result) = traced.process(async |_| Ok::<_, std::io::Error>(())).await;
        result.expect("handler");
    }
    let spans = t.spans();
    assert_eq!(spans.len(), 10, "{}", waterfall(&spans));
    for s in &spans {
        let operation = if s.span_kind == SpanKind::Producer { "publish" } else { "process" };
        assert_eq!(s.name, format!("{operation} {template}"), "{}", waterfall(&spans));
        assert_eq!(attributes(s)["messaging.destination.template"], Value::from(template.clone()));
        assert!(attributes(s)["messaging.destination.name"].as_str().ends_with(".created"));
    }
    let sent: Vec<_> =
        t.metrics().into_iter().filter(|m| m.name == "messaging.client.sent.messages").collect();
    assert_eq!(sent.len(), 1, "one series for five subjects: {sent:?}");
    assert_eq!(sent[0].count, 5);
    assert!(!sent[0].attributes.iter().any(|kv| kv.key.as_str() == "messaging.destination.name"));
}

/// The process-parent policy per message (issue "Correct by default", point 3): inside a worker
/// loop's span, one message continues its producer's trace (`CreationContext`), one starts a trace
/// of its own (`NewRoot`), and one keeps the instrumentation's default (`Spec`: the loop's span) —
/// through the broker crate's own `with_process_parent`, no second dependency.
#[tokio::test]
async fn each_message_can_take_its_own_process_parent_policy() {
    use otel_messaging_async_nats::ProcessParent;
    let t = TestTelemetry::new();
    let tr = tracing(&t);
    let client = client().await;
    let subject = unique_name("jobs");
    let mut subscriber = client.subscribe(subject.clone()).await.expect("subscribe");
    client.flush().await.expect("flush");
    for job in ["continue", "new-root", "default"] {
        client.publish_traced_with(&tr, subject.clone(), job.into()).await.expect("publish");
    }
    let worker = Context::new().with_span(t.tracer("app").start("worker loop"));
    async {
        for _ in 0..3 {
            let message =
                tokio::time::timeout(TIMEOUT, subscriber.next()).await.expect("in time").expect("message");
            let tracing = match &message.payload[..] {
                b"continue" => tr.with_process_parent(ProcessParent::CreationContext),
                b"new-root" => tr.with_process_parent(ProcessParent::NewRoot),
                _ => tr.clone(),
            };
            let job = String::from_utf8_lossy(&message.payload).into_owned();
            message
                .process_traced_with(&tracing, async {
                    t.tracer("app").in_span(format!("handle {job}"), |_| ());
                    Ok::<_, std::io::Error>(())
                })
                .await
                .expect("handler");
        }
    }
    .with_context(worker.clone())
    .await;
    worker.span().end();

    let spans = t.spans();
    let w = waterfall(&spans);
    let publishes: Vec<_> = spans.iter().filter(|s| s.span_kind == SpanKind::Producer).collect();
    let process_of = |job: &str| {
        let handler = span(&spans, &format!("handle {job}"));
        spans.iter().find(|s| s.span_context.span_id() == handler.parent_span_id).expect("process span")
    };
    let loop_id = span(&spans, "worker loop").span_context.span_id();
    let continued = process_of("continue");
    assert!(publishes.iter().any(|p| p.span_context.span_id() == continued.parent_span_id), "{w}");
    let new_root = process_of("new-root");
    assert_eq!(new_root.parent_span_id, opentelemetry::trace::SpanId::INVALID, "{w}");
    assert_eq!(new_root.links.len(), 2, "creation context and the loop's span: {w}");
    assert!(new_root.links.iter().any(|l| l.span_context.span_id() == loop_id), "{w}");
    assert_eq!(process_of("default").parent_span_id, loop_id, "{w}");
}

/// Semconv review: a JetStream message's `messaging.message.id` is its `Nats-Msg-Id` when the
/// publisher set one (on the publish, process and ack spans alike), and its consumer group on the
/// process and ack spans is the JetStream consumer, as on the fetch's receive span.
#[tokio::test]
async fn a_nats_msg_id_names_the_message_and_the_consumer_is_its_group() {
    let t = TestTelemetry::new();
    let tr = tracing(&t);
    let js = async_nats::jetstream::new(client().await);
    let (stream, stream_name, subject) = jetstream_stream(&js, "IDS", "created").await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", "order-42");
    js.publish_with_headers_traced_with(&tr, subject.clone(), headers, "order 42".into())
        .await
        .expect("publish")
        .await
        .expect("pub ack");
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("billing".into()),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut batch = Vec::new();
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    while batch.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "no message in time");
        consumer.fetch_traced_with(&tr, &mut batch, 1).await.expect("fetch");
    }
    let message = batch.pop().unwrap();
    message.process_traced_with(&tr, async { Ok::<_, std::io::Error>(()) }).await.expect("handler");
    message.ack_traced_with(&tr).await.expect("ack");
    js.delete_stream(&stream_name).await.expect("cleanup");

    let spans = t.spans();
    for name in [format!("publish {subject}"), format!("process {subject}"), format!("ack {subject}")] {
        let a = attributes(span(&spans, &name));
        assert_eq!(a["messaging.message.id"], Value::from("order-42"), "{name}");
        if !name.starts_with("publish") {
            assert_eq!(a["messaging.consumer.group.name"], Value::from("billing"), "{name}");
        }
    }
    let receive = attributes(span(&spans, &format!("receive {stream_name}")));
    assert_eq!(receive["messaging.consumer.group.name"], Value::from("billing"));
}

/// A traced fetch reads each message's context once (BENCHMARKS.md, lever 26): for its link, its
/// process span (baggage included) and its ack's link; each process span is a child of its own
/// publish.
#[tokio::test]
async fn a_fetchs_reading_serves_each_messages_process_span() {
    use opentelemetry::baggage::BaggageExt as _;
    use std::sync::atomic::Ordering;

    let t = TestTelemetry::new();
    let (instrumenter, readings) = integration_tests::counting_instrumenter(&t);
    let tr = NatsInstrumentation::from_url(&nats_url()).with_instrumenter(instrumenter);
    let js = async_nats::jetstream::new(client().await);
    let (stream, stream_name, subject) = jetstream_stream(&js, "READONCE", "jobs").await;
    for tenant in ["a", "b", "c"] {
        let cx = Context::new().with_baggage([KeyValue::new("tenant", tenant)]);
        async { js.publish_traced_with(&tr, subject.clone(), tenant.into()).await.expect("publish").await }
            .with_context(cx)
            .await
            .expect("ack");
    }
    let consumer = workers(&stream).await;
    let mut messages = vec![];
    let deadline = std::time::Instant::now() + TIMEOUT;
    while messages.len() < 3 {
        assert!(std::time::Instant::now() < deadline, "3 messages in time, got {}", messages.len());
        let wanted = 3 - messages.len();
        consumer.fetch_traced_with(&tr, &mut messages, wanted).await.expect("fetch");
    }
    assert_eq!(readings.load(Ordering::SeqCst), 3, "the fetch reads each message once");
    for message in &messages {
        let seen = message
            .process_traced_with(&tr, async {
                Ok::<_, std::io::Error>(Context::current().baggage().get("tenant").map(|v| v.to_string()))
            })
            .await
            .expect("handler");
        assert_eq!(seen.as_deref(), std::str::from_utf8(&message.payload).ok(), "its own baggage");
        message.ack_traced_with(&tr).await.expect("ack");
    }
    assert_eq!(readings.load(Ordering::SeqCst), 3, "the process and ack spans read nothing again");
    js.delete_stream(&stream_name).await.expect("cleanup");

    let spans = t.spans();
    let publishes = integration_tests::producer_span_ids(&spans);
    let parents: std::collections::HashSet<_> =
        spans.iter().filter(|s| s.name == format!("process {subject}")).map(|s| s.parent_span_id).collect();
    assert_eq!(publishes.len(), 3);
    assert_eq!(parents, publishes, "each process span a child of its own publish: {}", waterfall(&spans));
    let acks: Vec<_> = spans.iter().filter(|s| s.name.starts_with("ack ")).collect();
    assert_eq!(acks.len(), 3, "{}", waterfall(&spans));
    let linked: std::collections::HashSet<_> =
        acks.iter().flat_map(|a| a.links.iter().map(|l| l.span_context.span_id())).collect();
    assert_eq!(linked, publishes, "each ack linked to its message's publish");
}
