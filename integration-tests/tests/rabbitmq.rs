//! RabbitMQ (lapin) against a real broker (`just brokers-up`, or `AMQP_URL`), asserting whole
//! traces through explicit in-memory providers.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use futures_util::StreamExt as _;
use integration_tests::{amqp_url, unique_name};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions, BasicPublishOptions,
        BasicRejectOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
        QueueDeclareOptions,
    },
    types::{AMQPValue, ByteArray, FieldTable, ShortString},
};
use opentelemetry::{
    Context, KeyValue, Value,
    trace::{FutureExt as _, SpanKind, TraceContextExt, Tracer as _},
};
use otel_messaging::{
    ProcessParent,
    testing::{TestTelemetry, assert_one_trace, assert_trace, attributes, shape, span, waterfall},
};
use otel_messaging_lapin::{AmqpInstrumentation, ChannelExt as _, ConsumerExt as _, DeliveryExt as _};

const TIMEOUT: Duration = Duration::from_secs(10);

async fn channel() -> (Connection, Channel) {
    let conn = Connection::connect(&amqp_url(), ConnectionProperties::default()).await.expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    (conn, ch)
}

fn tracing(t: &TestTelemetry) -> AmqpInstrumentation {
    AmqpInstrumentation::from_uri(&amqp_url()).with_instrumenter(t.instrumenter())
}

async fn queue(ch: &Channel, name: &str, arguments: FieldTable) -> String {
    let options = QueueDeclareOptions { auto_delete: true, exclusive: name.is_empty(), ..Default::default() };
    let q = ch.queue_declare(name.into(), options, arguments).await.expect("queue");
    q.name().as_str().to_owned()
}

async fn consume(
    ch: &Channel,
    queue: &str,
    tracing: &AmqpInstrumentation,
) -> otel_messaging_lapin::TracedConsumer {
    ch.basic_consume(
        queue.into(),
        unique_name("c").into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("consume")
    .stream_traced_with(tracing)
}

async fn next(
    consumer: &mut otel_messaging_lapin::TracedConsumer,
) -> otel_messaging::TracedMessage<lapin::message::Delivery> {
    tokio::time::timeout(TIMEOUT, consumer.next())
        .await
        .expect("a delivery in time")
        .expect("open")
        .expect("delivery")
}

/// The next message of `queue` through `basic_get_traced_with`, polling until one is there
/// (deadline [`TIMEOUT`]).
async fn get_one(ch: &Channel, tr: &AmqpInstrumentation, queue: &str) -> lapin::message::BasicGetMessage {
    tokio::time::timeout(TIMEOUT, async {
        loop {
            let get = ch.basic_get_traced_with(tr, queue.into(), Default::default());
            if let Some(m) = get.await.expect("get") {
                break m;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("a message in time")
}

async fn publish(
    ch: &Channel,
    tracing: &AmqpInstrumentation,
    exchange: &str,
    routing_key: &str,
    properties: BasicProperties,
) {
    ch.basic_publish_traced_with(
        tracing,
        exchange.into(),
        routing_key.into(),
        BasicPublishOptions::default(),
        b"{}",
        properties,
    )
    .await
    .expect("publish")
    .await
    .expect("confirm");
}

#[tokio::test]
async fn one_publish_one_process_parented_and_linked() {
    let t = TestTelemetry::new();
    let tr = tracing(&t);
    let (_c, ch) = channel().await;
    let q = queue(&ch, &unique_name("orders"), FieldTable::default()).await;
    let mut consumer = consume(&ch, &q, &tr).await;
    let props = BasicProperties::default().with_message_id("m-1".into()).with_correlation_id("conv-1".into());
    publish(&ch, &tr, "", &q, props).await;
    let delivery = next(&mut consumer).await;
    let (delivery, result) = delivery
        .process(async |_| {
            t.tracer("worker").in_span("db insert", |_| ());
            Ok::<_, lapin::Error>(())
        })
        .await;
    result.expect("handler");
    delivery.ack_traced_with(&tr, BasicAckOptions::default()).await.expect("ack");

    let spans = t.spans();
    let (send, process, ack) = (format!("publish {q}"), format!("process {q}"), format!("ack {q}"));
    assert_trace(
        &spans,
        &[
            shape(&send, SpanKind::Producer).error(false).attributes([
                KeyValue::new("messaging.system", "rabbitmq"),
                KeyValue::new("messaging.operation.name", "publish"),
                KeyValue::new("messaging.operation.type", "send"),
                KeyValue::new("messaging.destination.name", q.clone()),
                KeyValue::new("messaging.rabbitmq.destination.routing_key", q.clone()),
                KeyValue::new("messaging.message.id", "m-1"),
                KeyValue::new("messaging.message.conversation_id", "conv-1"),
                KeyValue::new("server.address", "127.0.0.1"),
                KeyValue::new("server.port", 5672_i64),
                KeyValue::new("network.peer.address", "127.0.0.1"),
                KeyValue::new("network.peer.port", 5672_i64),
            ]),
            shape(&process, SpanKind::Consumer).parent(&send).links(&[&send]),
            shape("db insert", SpanKind::Internal).parent(&process),
            shape(&ack, SpanKind::Client).links(&[&send]).error(false).attributes([
                KeyValue::new("messaging.system", "rabbitmq"),
                KeyValue::new("messaging.operation.name", "ack"),
                KeyValue::new("messaging.operation.type", "settle"),
                KeyValue::new("messaging.destination.name", q.clone()),
                KeyValue::new("messaging.rabbitmq.message.delivery_tag", 1_i64),
                KeyValue::new("server.address", "127.0.0.1"),
                KeyValue::new("server.port", 5672_i64),
                KeyValue::new("network.peer.address", "127.0.0.1"),
                KeyValue::new("network.peer.port", 5672_i64),
            ]),
        ],
    );
    let in_trace: Vec<_> = spans.iter().filter(|s| s.name != ack).cloned().collect();
    assert_one_trace(&in_trace);
    let p = attributes(span(&spans, &process));
    assert_eq!(p["messaging.rabbitmq.message.delivery_tag"], Value::I64(1));
    assert!(matches!(p["otel_messaging.queue.wait.duration"], Value::F64(w) if (0.0..60.0).contains(&w)));
    assert!(!p.contains_key("otel_messaging.rabbitmq.redelivered"));
}

#[tokio::test]
async fn link_only_policy_gives_new_root_plus_link() {
    let t = TestTelemetry::new();
    let producer = tracing(&t);
    let consumer_tracing =
        tracing(&t).with_instrumenter(t.instrumenter().with_process_parent(ProcessParent::Link));
    let (_c, ch) = channel().await;
    let q = queue(&ch, &unique_name("orders"), FieldTable::default()).await;
    let mut consumer = consume(&ch, &q, &consumer_tracing).await;
    publish(&ch, &producer, "", &q, BasicProperties::default()).await;
    drop(next(&mut consumer).await);
    let spans = t.spans();
    let send = format!("publish {q}");
    assert_trace(
        &spans,
        &[
            shape(&send, SpanKind::Producer),
            shape(format!("process {q}"), SpanKind::Consumer).links(&[&send]),
        ],
    );
    assert_ne!(spans[0].span_context.trace_id(), spans[1].span_context.trace_id());
}

#[tokio::test]
async fn publish_span_ends_at_confirm_and_nack_is_an_error() {
    let t = TestTelemetry::new();
    let tr = tracing(&t);
    let (_c, ch) = channel().await;
    ch.confirm_select(ConfirmSelectOptions::default()).await.expect("confirm mode");
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(1));
    args.insert("x-overflow".into(), AMQPValue::LongString("reject-publish".into()));
    let q = queue(&ch, &unique_name("bounded"), args).await;

    let confirm = ch
        .basic_publish_traced_with(
            &tr,
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            b"1",
            BasicProperties::default(),
        )
        .await
        .expect("publish");
    assert!(t.spans().is_empty(), "in confirm mode the span stays open until the confirm");
    assert!(confirm.await.expect("confirm").is_ack());
    assert_eq!(t.spans().len(), 1);

    let second = ch
        .basic_publish_traced_with(
            &tr,
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            b"2",
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    assert!(second.is_nack(), "the queue is full: reject-publish nacks");
    let spans = t.spans();
    assert_eq!(spans.len(), 2);
    assert!(matches!(spans[1].status, opentelemetry::trace::Status::Error { .. }));
    assert_eq!(attributes(&spans[1])["error.type"], Value::from("nack"));
    assert!(!attributes(&spans[0]).contains_key("error.type"));
}

#[tokio::test]
async fn fanout_to_two_queues_gives_two_process_spans_in_one_trace() {
    let t = TestTelemetry::new();
    let tr = tracing(&t);
    let (_c, ch) = channel().await;
    let ex = unique_name("fanout");
    ch.exchange_declare(
        ex.as_str().into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions { auto_delete: true, ..Default::default() },
        FieldTable::default(),
    )
    .await
    .expect("exchange");
    let (qa, qb) = (unique_name("a"), unique_name("b"));
    for q in [&qa, &qb] {
        queue(&ch, q, FieldTable::default()).await;
        ch.queue_bind(
            q.as_str().into(),
            ex.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
    }
    let (mut ca, mut cb) = (consume(&ch, &qa, &tr).await, consume(&ch, &qb, &tr).await);
    publish(&ch, &tr, &ex, "", BasicProperties::default()).await;
    drop(next(&mut ca).await);
    drop(next(&mut cb).await);
    let spans = t.spans();
    let send = format!("publish {ex}");
    assert_trace(
        &spans,
        &[
            shape(&send, SpanKind::Producer),
            shape(format!("process {ex}:{qa}"), SpanKind::Consumer).parent(&send).links(&[&send]),
            shape(format!("process {ex}:{qb}"), SpanKind::Consumer).parent(&send).links(&[&send]),
        ],
    );
    assert_one_trace(&spans);
}

#[tokio::test]
async fn topic_exchange_and_server_named_queue_never_in_span_names() {
    let t = TestTelemetry::new();
    let tr = tracing(&t);
    let (_c, ch) = channel().await;
    let ex = unique_name("topic");
    ch.exchange_declare(
        ex.as_str().into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions { auto_delete: true, ..Default::default() },
        FieldTable::default(),
    )
    .await
    .expect("exchange");
    let q = queue(&ch, "", FieldTable::default()).await;
    assert!(q.starts_with("amq.gen-"), "{q}");
    ch.queue_bind(
        q.as_str().into(),
        ex.as_str().into(),
        "orders.*".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    let mut consumer = consume(&ch, &q, &tr).await;
    publish(&ch, &tr, &ex, "orders.eu", BasicProperties::default()).await;
    drop(next(&mut consumer).await);
    let spans = t.spans();
    let send = format!("publish {ex}:orders.eu");
    assert_trace(
        &spans,
        &[
            shape(&send, SpanKind::Producer),
            shape("process", SpanKind::Consumer).parent(&send).links(&[&send]),
        ],
    );
    let p = attributes(span(&spans, "process"));
    assert_eq!(p["messaging.destination.name"], Value::from(format!("{ex}:orders.eu:{q}")));
    assert_eq!(p["messaging.destination.anonymous"], Value::Bool(true));
    assert!(spans.iter().all(|s| !s.name.contains("amq.gen-")));
}

#[tokio::test]
async fn redelivery_after_nack_requeue_is_flagged_and_processed_again() {
    let t = TestTelemetry::new();
    let tr = tracing(&t);
    let (_c, ch) = channel().await;
    let q = queue(&ch, &unique_name("retry"), FieldTable::default()).await;
    let mut consumer = consume(&ch, &q, &tr).await;
    publish(&ch, &tr, "", &q, BasicProperties::default()).await;
    let first = next(&mut consumer).await.into_inner();
    first
        .nack_traced_with(&tr, BasicNackOptions { requeue: true, ..Default::default() })
        .await
        .expect("nack");
    let second = next(&mut consumer).await.into_inner();
    assert!(second.redelivered);
    second.ack_traced_with(&tr, BasicAckOptions::default()).await.expect("ack");
    let spans = t.spans();
    let processes: Vec<_> = spans.iter().filter(|s| s.name == format!("process {q}")).collect();
    assert_eq!(processes.len(), 2, "{}", waterfall(&spans));
    assert!(!attributes(processes[0]).contains_key("otel_messaging.rabbitmq.redelivered"));
    assert_eq!(attributes(processes[1])["otel_messaging.rabbitmq.redelivered"], Value::Bool(true));
    // A first delivery counts 1; a classic queue's redelivery carries no count: none is guessed.
    assert_eq!(attributes(processes[0])["otel_messaging.message.delivery_count"], Value::I64(1));
    assert!(!attributes(processes[1]).contains_key("otel_messaging.message.delivery_count"));
    let nack = span(&spans, &format!("nack {q}"));
    assert_eq!(nack.links.len(), 1, "settle spans link to the creation context");
    assert_eq!(
        nack.links[0].span_context.span_id(),
        span(&spans, &format!("publish {q}")).span_context.span_id()
    );
    let in_trace: Vec<_> =
        spans.iter().filter(|s| !s.name.starts_with("nack") && !s.name.starts_with("ack")).cloned().collect();
    assert_one_trace(&in_trace);
}

#[tokio::test]
async fn malformed_binary_or_duplicated_traceparent_is_delivered_as_new_trace() {
    let t = TestTelemetry::new();
    let tr = tracing(&t);
    let (_c, ch) = channel().await;
    let q = queue(&ch, &unique_name("bad"), FieldTable::default()).await;
    let mut consumer = consume(&ch, &q, &tr).await;
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let mut cases = Vec::new();
    let mut h = FieldTable::default();
    h.insert("traceparent".into(), AMQPValue::LongString("00-1-2-01".into()));
    cases.push(h);
    let mut h = FieldTable::default();
    h.insert("traceparent".into(), AMQPValue::ByteArray(ByteArray::from(vec![0xff_u8, 0x00, 0xfe])));
    cases.push(h);
    let mut h = FieldTable::default();
    h.insert("traceparent".into(), AMQPValue::LongInt(42));
    cases.push(h);
    let mut h = FieldTable::default();
    h.insert("Traceparent".into(), AMQPValue::LongString("garbage".into()));
    h.insert(
        "traceparent".into(),
        AMQPValue::LongString("00-00000000000000000000000000000000-00f067aa0ba902b7-01".into()),
    );
    cases.push(h);
    let n = cases.len();
    for headers in cases {
        // Untraced publishes: the messages carry exactly these headers.
        ch.basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default().with_headers(headers),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    }
    for _ in 0..n {
        let (_d, r) = next(&mut consumer).await.process(async |d| Ok::<_, lapin::Error>(d.data.len())).await;
        assert_eq!(r.expect("handler"), 1);
    }
    let spans = t.spans();
    assert_eq!(spans.len(), n);
    for s in &spans {
        assert_eq!(s.parent_span_id, opentelemetry::trace::SpanId::INVALID);
        assert!(s.links.is_empty());
        assert_ne!(s.span_context.trace_id().to_string(), tp[3..35]);
    }
    // .NET publishers send byte arrays; a valid one is read.
    let mut h = FieldTable::default();
    h.insert("traceparent".into(), AMQPValue::ByteArray(ByteArray::from(tp.as_bytes().to_vec())));
    ch.basic_publish(
        "".into(),
        q.as_str().into(),
        BasicPublishOptions::default(),
        b"x",
        BasicProperties::default().with_headers(h),
    )
    .await
    .expect("publish")
    .await
    .expect("confirm");
    drop(next(&mut consumer).await);
    let spans = t.spans();
    assert_eq!(spans[n].span_context.trace_id().to_string(), &tp[3..35]);
}

#[tokio::test]
async fn basic_get_records_a_linked_receive_span() {
    let t = TestTelemetry::new();
    let tr = tracing(&t);
    let (_c, ch) = channel().await;
    let q = queue(&ch, &unique_name("get"), FieldTable::default()).await;
    publish(&ch, &tr, "", &q, BasicProperties::default()).await;
    let mut got = None;
    for _ in 0..50 {
        got = ch
            .basic_get_traced_with(&tr, q.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .expect("get");
        if got.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(got.is_some());
    let spans = t.spans();
    let send = format!("publish {q}");
    assert_trace(
        &spans,
        &[shape(&send, SpanKind::Producer), shape(format!("receive {q}"), SpanKind::Client).links(&[&send])],
    );
}

#[tokio::test]
async fn rpc_reply_lands_in_the_callers_trace() {
    let t = TestTelemetry::new();
    let tr = tracing(&t);
    let (_c, ch) = channel().await;
    let requests = queue(&ch, &unique_name("rpc"), FieldTable::default()).await;
    let replies = queue(&ch, "", FieldTable::default()).await;
    let mut server = consume(&ch, &requests, &tr).await;
    let mut client = consume(&ch, &replies, &tr).await;

    let tracer = t.tracer("app");
    let call = Context::new().with_span(tracer.start("rpc call"));
    let props = BasicProperties::default()
        .with_reply_to(ShortString::from(replies.clone()))
        .with_correlation_id("c-1".into());
    publish(&ch, &tr, "", &requests, props).with_context(call.clone()).await;

    // Server: processes the request and publishes the reply inside its process span.
    let request = next(&mut server).await;
    let (_req, result) = request
        .process(async |d| {
            let reply_to = d.properties.reply_to().clone().expect("reply_to");
            let correlation = d.properties.correlation_id().clone().expect("correlation id");
            let (ch, tr) = (&ch, &tr);
            {
                publish(
                    ch,
                    tr,
                    "",
                    reply_to.as_str(),
                    BasicProperties::default().with_correlation_id(correlation),
                )
                .await;
                Ok::<_, lapin::Error>(())
            }
        })
        .await;
    result.expect("server handler");

    // Client: processes the reply inside the call.
    let reply = next(&mut client).await;
    assert_eq!(reply.message().properties.correlation_id().as_ref().map(|c| c.as_str()), Some("c-1"));
    drop(reply);
    call.span().end();

    let spans = t.spans();
    assert_one_trace(&spans);
    assert_eq!(spans.len(), 5, "{}", waterfall(&spans));
    let req_send = format!("publish {requests}");
    let req_process = format!("process {requests}");
    assert_trace(
        &spans,
        &[
            shape("rpc call", SpanKind::Internal),
            shape(&req_send, SpanKind::Producer).parent("rpc call"),
            shape(&req_process, SpanKind::Consumer).parent(&req_send).links(&[&req_send]),
            shape("publish", SpanKind::Producer).parent(&req_process),
            shape("process", SpanKind::Consumer).parent("publish").links(&["publish"]),
        ],
    );
}

// ---- Spec-exact telemetry (issue 10) ----

/// Through a named exchange, the process and settle spans of one delivery name the same
/// destination, `{exchange}:{routing key}:{queue}`: with the stream adapter, and with
/// `basic_get_traced` + `DeliveryExt::process_traced` (the queue travels with the delivery).
#[tokio::test]
async fn process_and_settle_spans_name_the_same_destination() {
    let t = TestTelemetry::new();
    let tr = tracing(&t);
    let (_c, ch) = channel().await;
    let exchange = unique_name("ex");
    ch.exchange_declare(
        exchange.as_str().into(),
        lapin::ExchangeKind::Direct,
        lapin::options::ExchangeDeclareOptions { auto_delete: true, ..Default::default() },
        FieldTable::default(),
    )
    .await
    .expect("exchange");
    // Not auto-delete: the queue outlives the first consumer.
    let q = unique_name("orders");
    ch.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), FieldTable::default())
        .await
        .expect("queue");
    ch.queue_bind(
        q.as_str().into(),
        exchange.as_str().into(),
        "eu".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    publish(&ch, &tr, &exchange, "eu", BasicProperties::default()).await;
    publish(&ch, &tr, &exchange, "eu", BasicProperties::default()).await;
    let destination = format!("{exchange}:eu:{q}");

    let mut consumer = consume(&ch, &q, &tr).await;
    let (delivery, result) = next(&mut consumer).await.process(async |_| Ok::<_, lapin::Error>(())).await;
    result.expect("handler");
    delivery.ack_traced_with(&tr, BasicAckOptions::default()).await.expect("ack");
    drop(consumer);
    // Closing the channel returns the second, unacknowledged delivery to the queue.
    ch.close(200, "done".into()).await.expect("close");
    let spans = t.spans();
    let names: Vec<_> = spans.iter().map(|s| s.name.to_string()).collect();
    assert!(names.contains(&format!("process {destination}")), "{names:?}");
    assert!(names.contains(&format!("ack {destination}")), "{names:?}");

    // The second message, fetched with basic_get after the consumer is gone.
    t.clear_spans();
    let (_c2, ch2) = channel().await;
    let got = get_one(&ch2, &tr, &q).await;
    let delivery = got.delivery;
    delivery.process_traced_with(&tr, async { Ok::<_, lapin::Error>(()) }).await.expect("handler");
    delivery.ack_traced_with(&tr, BasicAckOptions::default()).await.expect("ack");
    let spans = t.spans();
    for name in ["receive", "process", "ack"] {
        let s = span(&spans, &format!("{name} {destination}"));
        assert_eq!(attributes(s)["messaging.destination.name"], Value::from(destination.clone()));
    }
    ch2.queue_delete(q.as_str().into(), Default::default()).await.expect("delete");
}

/// A failed `basic_get` (here: the queue does not exist, `404 NOT_FOUND`) records its receive
/// span with `error.type` and counts no consumed message; the native error comes back.
#[tokio::test]
async fn a_failed_basic_get_records_its_span() {
    let t = TestTelemetry::new();
    let tr = tracing(&t);
    let (_c, ch) = channel().await;
    let missing = unique_name("missing");
    let error =
        ch.basic_get_traced_with(&tr, missing.as_str().into(), Default::default()).await.expect_err("404");
    let spans = t.spans();
    let s = span(&spans, &format!("receive {missing}"));
    assert_eq!(s.span_kind, SpanKind::Client);
    assert_eq!(attributes(s)["error.type"], Value::from("not-found"), "{error:?}");
    assert!(!t.metrics().iter().any(|m| m.name == "messaging.client.consumed.messages"));
}

/// A quorum queue counts deliveries (`x-delivery-count`): the redelivery after a nack is the 2nd.
#[tokio::test]
async fn a_quorum_queue_redelivery_counts_two_deliveries() {
    let t = TestTelemetry::new();
    let tr = tracing(&t);
    let (_c, ch) = channel().await;
    let mut arguments = FieldTable::default();
    arguments.insert("x-queue-type".into(), AMQPValue::LongString("quorum".into()));
    let q = unique_name("quorum");
    let options = QueueDeclareOptions { durable: true, ..Default::default() };
    ch.queue_declare(q.as_str().into(), options, arguments).await.expect("quorum queue");
    let mut consumer = consume(&ch, &q, &tr).await;
    publish(&ch, &tr, "", &q, BasicProperties::default()).await;
    let first = next(&mut consumer).await.into_inner();
    first
        .nack_traced_with(&tr, BasicNackOptions { requeue: true, ..Default::default() })
        .await
        .expect("nack");
    let second = next(&mut consumer).await.into_inner();
    second.ack_traced_with(&tr, BasicAckOptions::default()).await.expect("ack");
    ch.queue_delete(q.as_str().into(), lapin::options::QueueDeleteOptions::default()).await.expect("cleanup");
    let spans = t.spans();
    let processes: Vec<_> = spans.iter().filter(|s| s.name == format!("process {q}")).collect();
    assert_eq!(processes.len(), 2, "{}", waterfall(&spans));
    assert_eq!(attributes(processes[0])["otel_messaging.message.delivery_count"], Value::I64(1));
    assert_eq!(attributes(processes[1])["otel_messaging.message.delivery_count"], Value::I64(2));
}

/// RabbitMQ's own dead-lettering (reject → dead-letter exchange) keeps the headers: the
/// dead-letter consumer continues the original trace, with the `x-death` facts on its span.
#[tokio::test]
async fn a_dead_lettered_message_continues_the_original_trace_with_its_death_facts() {
    let t = TestTelemetry::new();
    let tr = tracing(&t);
    let (_c, ch) = channel().await;
    let dlq = queue(&ch, &unique_name("dlq"), FieldTable::default()).await;
    let mut arguments = FieldTable::default();
    arguments.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
    arguments.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(dlq.as_str().into()));
    let work = queue(&ch, &unique_name("work"), arguments).await;

    let request = Context::new().with_span(t.tracer("app").start("POST /orders"));
    async { publish(&ch, &tr, "", &work, BasicProperties::default()).await }
        .with_context(request.clone())
        .await;
    request.span().end();
    let mut worker = consume(&ch, &work, &tr).await;
    let failed = next(&mut worker).await;
    let (failed, result) =
        failed.process(async |_| Err::<(), _>(std::io::Error::other("cannot handle"))).await;
    assert!(result.is_err());
    failed.reject_traced_with(&tr, BasicRejectOptions { requeue: false }).await.expect("reject");

    let mut dead_letters = consume(&ch, &dlq, &tr).await;
    let dead = next(&mut dead_letters).await;
    let (dead, result) = dead.process(async |_| Ok::<_, std::io::Error>(())).await;
    result.expect("dead-letter handler");
    dead.ack_traced_with(&tr, BasicAckOptions::default()).await.expect("ack");

    let spans = t.spans();
    let publish_span = span(&spans, &format!("publish {work}"));
    let dead_process = span(&spans, &format!("process {dlq}"));
    assert_eq!(
        dead_process.span_context.trace_id(),
        publish_span.span_context.trace_id(),
        "{}",
        waterfall(&spans)
    );
    assert_eq!(
        dead_process.parent_span_id,
        publish_span.span_context.span_id(),
        "the original send is the parent"
    );
    let a = attributes(dead_process);
    assert_eq!(a["otel_messaging.rabbitmq.death.count"], Value::I64(1));
    assert_eq!(a["otel_messaging.rabbitmq.death.reason"], Value::from("rejected"));
    assert_eq!(a["otel_messaging.rabbitmq.death.queue"], Value::from(work.clone()));
    assert_eq!(a["otel_messaging.message.delivery_count"], Value::I64(1));
    let failed_process = span(&spans, &format!("process {work}"));
    assert_eq!(failed_process.status, opentelemetry::trace::Status::error("cannot handle"));
    // The reject is a settle span of its own, linked to the message's creation context (feature
    // table row 22: it was called but never asserted).
    let reject = span(&spans, &format!("reject {work}"));
    assert_eq!(reject.span_kind, SpanKind::Client);
    assert_eq!(attributes(reject)["messaging.operation.type"], Value::from("settle"));
    assert_eq!(attributes(reject)["messaging.operation.name"], Value::from("reject"));
    assert_eq!(reject.links.len(), 1);
    assert_eq!(reject.links[0].span_context.span_id(), publish_span.span_context.span_id());
}

/// A publish whose content header frame fits `frame_max` uninstrumented never makes the broker
/// close the connection because of the context (reliability review M1): `x-otel-sent-ms` goes
/// first, then the context.
#[tokio::test]
async fn a_header_frame_at_frame_max_never_breaks_the_connection() {
    let t = TestTelemetry::new();
    let (conn, ch) = channel().await;
    let frame_max = conn.configuration().frame_max();
    let tr = tracing(&t).with_frame_max(frame_max);
    ch.confirm_select(ConfirmSelectOptions::default()).await.expect("confirm mode");
    let q = queue(&ch, "", FieldTable::default()).await;
    // Properties: flags (2) + table length (4) + entry `pad` (1 + 3 + 1 + 4 + n) = 15 + n bytes;
    // the frame adds 20. `spare` bytes are left under `frame_max`.
    let padded = |spare: usize| {
        let n = frame_max as usize - 20 - 15 - spare;
        let mut headers = FieldTable::default();
        headers.insert("pad".into(), AMQPValue::LongString("p".repeat(n).into()));
        BasicProperties::default().with_headers(headers)
    };
    let request = Context::new().with_span(t.tracer("app").start("POST /big"));
    let _guard = request.attach();
    for spare in [10, 82] {
        let confirm = ch
            .basic_publish("".into(), q.as_str().into(), BasicPublishOptions::default(), b"{}", padded(spare))
            .await
            .expect("native publish")
            .await
            .expect("native confirm");
        assert!(confirm.is_ack(), "the native publish fits");
        publish(&ch, &tr, "", &q, padded(spare)).await;
    }
    let mut got = Vec::new();
    for _ in 0..4 {
        let message =
            tokio::time::timeout(TIMEOUT, ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true }))
                .await
                .expect("in time")
                .expect("get")
                .expect("a message");
        got.push(message.delivery.properties.headers().clone().unwrap_or_default());
    }
    assert!(conn.status().connected(), "the connection is still open");
    let keys = |h: &FieldTable| {
        let mut k: Vec<String> = h.inner().keys().map(|k| k.as_str().to_owned()).collect();
        k.sort();
        k
    };
    assert_eq!(keys(&got[1]), ["pad"], "10 bytes spare: no context, no sent time");
    assert_eq!(
        keys(&got[3]),
        ["pad", "traceparent"],
        "82 bytes spare: traceparent only, sent time dropped first"
    );
    drop(_guard);
    let spans = t.spans();
    let publishes: Vec<_> = spans.iter().filter(|s| s.span_kind == SpanKind::Producer).collect();
    assert_eq!(publishes.len(), 2, "{}", waterfall(&spans));
    assert_eq!(attributes(publishes[0])["otel_messaging.context.injected"], Value::Bool(false));
    assert!(!attributes(publishes[1]).contains_key("otel_messaging.context.injected"));
}

/// A delivery received with `basic_get_traced` and then processed with `process_traced` counts
/// once in `messaging.client.consumed.messages` (feature table row 14: it counted twice).
#[tokio::test]
async fn basic_get_then_process_counts_the_message_once() {
    let t = TestTelemetry::new();
    let tr = tracing(&t);
    let (_conn, ch) = channel().await;
    let q = queue(&ch, "", FieldTable::default()).await;
    publish(&ch, &tr, "", &q, BasicProperties::default()).await;
    let got = get_one(&ch, &tr, &q).await;
    got.delivery.process_traced_with(&tr, async { Ok::<_, lapin::Error>(()) }).await.expect("handler");
    got.delivery.ack_traced_with(&tr, BasicAckOptions::default()).await.expect("ack");
    let spans = t.spans();
    assert!(spans.iter().any(|s| s.span_kind == SpanKind::Consumer), "{}", waterfall(&spans));
    let consumed: u64 =
        t.metrics().iter().filter(|m| m.name == "messaging.client.consumed.messages").map(|m| m.count).sum();
    assert_eq!(consumed, 1, "counted by the receive, not again by the process span");
}

/// A delivery's context is read once (BENCHMARKS.md, lever 26): by the traced consumer, for its
/// process span and its settle span's link; by `basic_get_traced`, for its receive span's link,
/// its process span and its settle's link. Each process span is a child of its own publish.
#[tokio::test]
async fn a_deliverys_context_is_read_once_for_its_process_and_settle() {
    use opentelemetry::baggage::BaggageExt as _;
    use std::sync::atomic::Ordering;

    let t = TestTelemetry::new();
    let (instrumenter, readings) = integration_tests::counting_instrumenter(&t);
    let tr = AmqpInstrumentation::from_uri(&amqp_url()).with_instrumenter(instrumenter);
    let (_c, ch) = channel().await;
    // Not auto-delete: the queue outlives the first consumer.
    let q = unique_name("orders");
    ch.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), FieldTable::default())
        .await
        .expect("queue");
    for tenant in ["a", "b"] {
        let cx = Context::new().with_baggage([KeyValue::new("tenant", tenant)]);
        let properties = BasicProperties::default().with_correlation_id(tenant.into());
        publish(&ch, &tr, "", &q, properties).with_context(cx).await;
    }
    let tenant = || Context::current().baggage().get("tenant").map(|v| v.to_string());
    let correlation =
        |d: &lapin::message::Delivery| d.properties.correlation_id().as_ref().map(|c| c.to_string());

    // The first through the traced consumer.
    let mut consumer = consume(&ch, &q, &tr).await;
    let (delivery, seen) = next(&mut consumer).await.process(async |_| Ok::<_, lapin::Error>(tenant())).await;
    assert_eq!(seen.expect("handler"), correlation(&delivery), "its own baggage");
    delivery.ack_traced_with(&tr, BasicAckOptions::default()).await.expect("ack");
    assert_eq!(readings.load(Ordering::SeqCst), 1, "the consumer read it once, for process and ack");
    drop(consumer);
    ch.close(200, "done".into()).await.expect("close");

    // The second through basic_get, once the consumer is gone.
    let (_c2, ch2) = channel().await;
    let got = get_one(&ch2, &tr, &q).await;
    let before = readings.load(Ordering::SeqCst);
    assert_eq!(before, 2, "basic_get read it once");
    let seen = got.delivery.process_traced_with(&tr, async { Ok::<_, lapin::Error>(tenant()) }).await;
    assert_eq!(seen.expect("handler"), correlation(&got.delivery), "its own baggage");
    got.delivery.ack_traced_with(&tr, BasicAckOptions::default()).await.expect("ack");
    assert_eq!(readings.load(Ordering::SeqCst), before, "process and ack read nothing again");
    ch2.queue_delete(q.as_str().into(), Default::default()).await.expect("delete the queue");

    let spans = t.spans();
    let publishes = integration_tests::producer_span_ids(&spans);
    let processes: Vec<_> = spans.iter().filter(|s| s.span_kind == SpanKind::Consumer).collect();
    assert_eq!(processes.len(), 2, "{}", waterfall(&spans));
    let parents: std::collections::HashSet<_> = processes.iter().map(|p| p.parent_span_id).collect();
    assert_eq!(parents, publishes, "each a child of its own publish: {}", waterfall(&spans));
    let acks: Vec<_> = spans.iter().filter(|s| s.name.starts_with("ack ")).collect();
    assert_eq!(acks.len(), 2);
    for ack in acks {
        assert_eq!(ack.links.len(), 1, "linked to its creation context");
        assert!(publishes.contains(&ack.links[0].span_context.span_id()));
    }
}
