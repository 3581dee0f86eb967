//! Retry and dead-letter lineage (`otel_messaging::retry`) on the real brokers: a message fails,
//! is re-published to a retry destination, fails again, is re-published to a dead-letter
//! destination and handled there. One trace shows the request, both failed attempts, both
//! re-publishes and the dead-letter handling; each re-publish links the failed attempt and the
//! original send, and the dead-letter process span links both too, with the attempt counter.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use integration_tests::{amqp_url, create_topic, kafka_bootstrap, unique_name};
use opentelemetry::{
    Context, Value,
    trace::{FutureExt as _, SpanId, TraceContextExt as _, Tracer as _},
};
use opentelemetry_sdk::trace::SpanData;
use otel_messaging::{
    retry::Retry,
    testing::{TestTelemetry, assert_one_trace, attributes, span, waterfall},
};

const TIMEOUT: Duration = Duration::from_secs(10);

/// The role (`original` / `failed_attempt`) under which `span` links `target`, if it does.
fn link_role(span: &SpanData, target: &SpanData) -> Option<String> {
    span.links.iter().find(|l| l.span_context.span_id() == target.span_context.span_id()).map(|l| {
        l.attributes
            .iter()
            .find(|kv| kv.key.as_str() == "otel_messaging.link.role")
            .map_or_else(String::new, |kv| kv.value.as_str().into_owned())
    })
}

/// The lineage assertions shared by every broker, for the spans of the original, retry and
/// dead-letter `destinations` (`{send_operation} {destination}`, `process {destination}`).
fn assert_lineage(spans: &[SpanData], send_operation: &str, destinations: [&str; 3]) {
    let names = destinations.map(|d| [format!("{send_operation} {d}"), format!("process {d}")]);
    let [[send, process], [retry_send, retry_process], [dlq_send, dlq_process]] =
        names.each_ref().map(|[s, p]| [span(spans, s), span(spans, p)]);
    let in_trace: Vec<SpanData> =
        [send, process, retry_send, retry_process, dlq_send, dlq_process].into_iter().cloned().collect();
    assert_one_trace(&in_trace);
    let w = waterfall(spans);
    // Each re-publish happens inside the failed handler: its child, and linked to it and to the
    // original send.
    assert_eq!(retry_send.parent_span_id, process.span_context.span_id(), "{w}");
    assert_eq!(link_role(retry_send, process).as_deref(), Some("failed_attempt"), "{w}");
    assert_eq!(link_role(retry_send, send).as_deref(), Some("original"), "{w}");
    assert_eq!(attributes(retry_send)["otel_messaging.message.retry.attempt"], Value::I64(1));
    assert_eq!(link_role(dlq_send, retry_process).as_deref(), Some("failed_attempt"), "{w}");
    assert_eq!(link_role(dlq_send, send).as_deref(), Some("original"), "{w}");
    assert_eq!(attributes(dlq_send)["otel_messaging.message.retry.attempt"], Value::I64(2));
    // Each process span: child of its own send, linked to the original and the failed attempt.
    assert_eq!(retry_process.parent_span_id, retry_send.span_context.span_id(), "{w}");
    assert_eq!(link_role(retry_process, send).as_deref(), Some("original"), "{w}");
    assert_eq!(dlq_process.parent_span_id, dlq_send.span_context.span_id(), "{w}");
    assert_eq!(link_role(dlq_process, send).as_deref(), Some("original"), "{w}");
    assert_eq!(link_role(dlq_process, retry_process).as_deref(), Some("failed_attempt"), "{w}");
    assert_eq!(attributes(dlq_process)["otel_messaging.message.retry.attempt"], Value::I64(2));
    assert!(!attributes(process).contains_key("otel_messaging.message.retry.attempt"));
    for failed in [process, retry_process] {
        assert_eq!(failed.status, opentelemetry::trace::Status::error("cannot handle"), "{w}");
    }
    assert_eq!(dlq_process.status, opentelemetry::trace::Status::Unset, "{w}");
    assert_ne!(dlq_process.span_context.span_id(), SpanId::INVALID);
}

#[tokio::test]
async fn kafka_retry_then_dead_letter_is_one_linked_trace() {
    use otel_messaging_rdkafka::{
        FutureProducerExt as _, HeadersExtractor, HeadersInjector, KafkaInstrumentation, MessageExt as _,
        StreamConsumerExt as _,
    };
    use rdkafka::{
        Message as _,
        consumer::StreamConsumer,
        message::OwnedHeaders,
        producer::{FutureProducer, FutureRecord},
    };

    let t = TestTelemetry::new();
    let tr = KafkaInstrumentation::new().with_instrumenter(t.instrumenter());
    let bootstrap = kafka_bootstrap();
    let topics = [unique_name("orders"), unique_name("orders-retry"), unique_name("orders-dlq")];
    for topic in &topics {
        create_topic(&bootstrap, topic).await;
    }
    let producer: FutureProducer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", &bootstrap).create().expect("producer");
    let consumer = |topic: &str| -> StreamConsumer {
        let consumer: StreamConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", "retry-workers")
            .set("enable.auto.commit", "false")
            .create()
            .expect("consumer");
        integration_tests::assign_from_start(consumer, topic)
    };

    let request = Context::new().with_span(t.tracer("app").start("POST /orders"));
    async {
        producer
            .send_traced_with(&tr, FutureRecord::<(), _>::to(&topics[0]).payload("order 42"), TIMEOUT)
            .await
    }
    .with_context(request.clone())
    .await
    .map_err(|(e, _)| e)
    .expect("send");
    request.span().end();

    // Attempts 1 and 2 fail; each re-publishes from inside its handler to the next destination.
    for (from, to) in [(&topics[0], &topics[1]), (&topics[1], &topics[2])] {
        let consumer = consumer(from);
        let message = tokio::time::timeout(TIMEOUT, consumer.recv_traced_with(&tr))
            .await
            .expect("in time")
            .expect("message");
        let result = message
            .process_traced_with(&tr, async {
                let failed = message.headers().expect("headers");
                let retry = Retry::of(&HeadersExtractor(failed), &Context::current());
                let mut headers = OwnedHeaders::new();
                retry.inject(&mut HeadersInjector(&mut headers));
                let record = FutureRecord::<(), _>::to(to).payload("order 42").headers(headers);
                producer
                    .send_traced_with(&tr, record, TIMEOUT)
                    .await
                    .map_err(|(e, _)| e)
                    .expect("re-publish");
                Err::<(), _>(std::io::Error::other("cannot handle"))
            })
            .await;
        assert!(result.is_err());
    }
    let consumer = consumer(&topics[2]);
    let message = tokio::time::timeout(TIMEOUT, consumer.recv_traced_with(&tr))
        .await
        .expect("in time")
        .expect("message");
    message
        .process_traced_with(&tr, async { Ok::<_, std::io::Error>(()) })
        .await
        .expect("dead-letter handler");

    let spans = t.spans();
    assert_lineage(&spans, "send", [&topics[0], &topics[1], &topics[2]]);
}

#[tokio::test]
async fn rabbitmq_retry_then_dead_letter_is_one_linked_trace() {
    use futures_util::StreamExt as _;
    use lapin::{
        BasicProperties, Connection, ConnectionProperties,
        options::{BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions},
        types::FieldTable,
    };
    use otel_messaging_lapin::{
        AmqpInstrumentation, ChannelExt as _, ConsumerExt as _, FieldTableExtractor, FieldTableInjector,
    };

    let t = TestTelemetry::new();
    let tr = AmqpInstrumentation::from_uri(&amqp_url()).with_instrumenter(t.instrumenter());
    let conn = Connection::connect(&amqp_url(), ConnectionProperties::default()).await.expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    let queues = [unique_name("jobs"), unique_name("jobs-retry"), unique_name("jobs-dlq")];
    for q in &queues {
        let options = QueueDeclareOptions { auto_delete: true, ..Default::default() };
        ch.queue_declare(q.as_str().into(), options, FieldTable::default()).await.expect("queue");
    }
    let publish = |queue: &str, properties: BasicProperties| {
        let (ch, tr, queue) = (ch.clone(), tr.clone(), queue.to_owned());
        async move {
            ch.basic_publish_traced_with(
                &tr,
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                b"job",
                properties,
            )
            .await
            .expect("publish")
            .await
            .expect("confirm");
        }
    };

    let request = Context::new().with_span(t.tracer("app").start("POST /jobs"));
    publish(&queues[0], BasicProperties::default()).with_context(request.clone()).await;
    request.span().end();

    let mut consumers = Vec::new();
    for q in &queues {
        let consumer = ch
            .basic_consume(
                q.as_str().into(),
                unique_name("c").into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("consume")
            .stream_traced_with(&tr);
        consumers.push(Box::pin(consumer));
    }
    for (index, to) in [(0, &queues[1]), (1, &queues[2])] {
        let delivery = tokio::time::timeout(TIMEOUT, consumers[index].next())
            .await
            .expect("in time")
            .expect("open")
            .expect("delivery");
        let (delivery, result) = delivery
            .process(async |d| {
                let empty = FieldTable::default();
                let failed = d.properties.headers().as_ref().unwrap_or(&empty);
                let retry = Retry::of(&FieldTableExtractor(failed), &Context::current());
                let mut headers = FieldTable::default();
                retry.inject(&mut FieldTableInjector(&mut headers));
                publish(to, BasicProperties::default().with_headers(headers)).await;
                Err::<(), _>(std::io::Error::other("cannot handle"))
            })
            .await;
        assert!(result.is_err());
        delivery.acker.ack(BasicAckOptions::default()).await.expect("ack");
    }
    let delivery = tokio::time::timeout(TIMEOUT, consumers[2].next())
        .await
        .expect("in time")
        .expect("open")
        .expect("delivery");
    let (delivery, result) = delivery.process(async |_| Ok::<_, std::io::Error>(())).await;
    result.expect("dead-letter handler");
    delivery.acker.ack(BasicAckOptions::default()).await.expect("ack");

    let spans = t.spans();
    assert_lineage(&spans, "publish", [&queues[0], &queues[1], &queues[2]]);
}

#[tokio::test]
async fn sqs_retry_then_dead_letter_is_one_linked_trace() {
    use std::collections::HashMap;

    use otel_messaging_aws_sqs::{
        MessageAttributesExtractor, MessageAttributesInjector, MessageExt as _,
        ReceiveMessageFluentBuilderExt as _, SendMessageFluentBuilderExt as _, SqsInstrumentation,
    };

    let t = TestTelemetry::new();
    let tr = SqsInstrumentation::default().with_instrumenter(t.instrumenter());
    let c = integration_tests::sqs_client(&integration_tests::sqs_endpoint(), 3).await;
    let mut urls = Vec::new();
    for name in ["work", "work-retry", "work-dlq"] {
        let created = c.create_queue().queue_name(unique_name(name)).send().await.expect("queue");
        urls.push(created.queue_url.expect("url"));
    }
    let receive = |url: &str| {
        // Asking for the context and lineage fields keeps them on the received message, for
        // Retry::of (fields the traced receive adds on its own are removed again).
        let mut receive = c.receive_message().queue_url(url).wait_time_seconds(0);
        for field in ["traceparent"].into_iter().chain(otel_messaging::retry::FIELDS) {
            receive = receive.message_attribute_names(field);
        }
        receive
    };
    async fn one(messages: Option<Vec<aws_sdk_sqs::types::Message>>) -> aws_sdk_sqs::types::Message {
        messages.unwrap_or_default().into_iter().next().expect("a message")
    }

    let request = Context::new().with_span(t.tracer("app").start("POST /work"));
    async { c.send_message().queue_url(&urls[0]).message_body("w").send_traced_with(&tr).await }
        .with_context(request.clone())
        .await
        .expect("send");
    request.span().end();
    for (from, to) in [(&urls[0], &urls[1]), (&urls[1], &urls[2])] {
        let out = receive(from).send_traced_with(&tr).await.expect("receive");
        let message = one(out.messages).await;
        let (_, result) = message
            .start_process_with(&tr)
            .process(async |m| {
                let empty = HashMap::new();
                let failed = m.message_attributes.as_ref().unwrap_or(&empty);
                let retry = Retry::of(&MessageAttributesExtractor(failed), &Context::current());
                let mut attributes = HashMap::new();
                retry.inject(&mut MessageAttributesInjector(&mut attributes));
                let send =
                    c.send_message().queue_url(to).message_body("w").set_message_attributes(Some(attributes));
                send.send_traced_with(&tr).await.expect("re-publish");
                Err::<(), _>(std::io::Error::other("cannot handle"))
            })
            .await;
        assert!(result.is_err());
    }
    let out = receive(&urls[2]).send_traced_with(&tr).await.expect("receive");
    let (_, result) =
        one(out.messages).await.start_process_with(&tr).process(async |_| Ok::<_, std::io::Error>(())).await;
    result.expect("dead-letter handler");

    let spans = t.spans();
    let names: Vec<String> = urls.iter().map(|u| u.rsplit('/').next().unwrap().to_owned()).collect();
    assert_lineage(&spans, "send", [&names[0], &names[1], &names[2]]);
}

#[tokio::test]
async fn redis_retry_then_dead_letter_is_one_linked_trace() {
    use otel_messaging_redis::{
        FieldsInjector, RedisInstrumentation, StreamEntryExt as _, StreamFieldsExtractor,
        StreamsConsumerExt as _, StreamsExt as _,
    };
    use redis::{AsyncCommands as _, streams::StreamReadOptions};

    let t = TestTelemetry::new();
    let client = redis::Client::open(integration_tests::redis_url()).expect("client");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
    let tr = RedisInstrumentation::from_client(&client).with_instrumenter(t.instrumenter());
    let streams = [unique_name("tasks"), unique_name("tasks-retry"), unique_name("tasks-dlq")];
    for s in &streams {
        let () = conn.xgroup_create_mkstream(s, "g", "$").await.expect("group");
    }
    let request = Context::new().with_span(t.tracer("app").start("POST /tasks"));
    let _: String = async { conn.clone().xadd_traced_with(&tr, &streams[0], "*", &[("task", "1")]).await }
        .with_context(request.clone())
        .await
        .expect("xadd");
    request.span().end();
    let opts = StreamReadOptions::default().group("g", "c").count(1);
    for (from, to) in [(&streams[0], &streams[1]), (&streams[1], &streams[2])] {
        let reply = conn.xread_options_traced_with(&tr, &[from], &[">"], &opts).await.expect("read");
        let entry = reply.keys.into_iter().flat_map(|k| k.ids).next().expect("an entry");
        let (_, result) = entry
            .start_process_with(&tr)
            .process(async |e| {
                let retry = Retry::of(&StreamFieldsExtractor(&e.map), &Context::current());
                let mut fields = vec![("task".to_owned(), "1".to_owned())];
                retry.inject(&mut FieldsInjector(&mut fields));
                let _: String =
                    conn.clone().xadd_traced_with(&tr, to, "*", &fields).await.expect("re-publish");
                Err::<(), _>(std::io::Error::other("cannot handle"))
            })
            .await;
        assert!(result.is_err());
    }
    let reply = conn.xread_options_traced_with(&tr, &[&streams[2]], &[">"], &opts).await.expect("read");
    let entry = reply.keys.into_iter().flat_map(|k| k.ids).next().expect("an entry");
    let (_, result) = entry.start_process_with(&tr).process(async |_| Ok::<_, std::io::Error>(())).await;
    result.expect("dead-letter handler");

    let spans = t.spans();
    assert_lineage(&spans, "send", [&streams[0], &streams[1], &streams[2]]);
}

#[tokio::test]
async fn nats_retry_then_dead_letter_is_one_linked_trace() {
    use futures_util::StreamExt as _;
    use otel_messaging_async_nats::{
        ClientExt as _, HeaderMapExtractor, HeaderMapInjector, MessageExt as _, NatsInstrumentation,
    };

    let t = TestTelemetry::new();
    let url = integration_tests::nats_url();
    let client = async_nats::connect(&url).await.expect("connect");
    let tr = NatsInstrumentation::from_url(&url).with_instrumenter(t.instrumenter());
    let subjects = [unique_name("tasks"), unique_name("tasks-retry"), unique_name("tasks-dlq")];
    let mut subscribers = Vec::new();
    for s in &subjects {
        subscribers.push(client.subscribe(s.clone()).await.expect("subscribe"));
    }
    client.flush().await.expect("flush");
    let request = Context::new().with_span(t.tracer("app").start("POST /tasks"));
    client
        .publish_traced_with(&tr, subjects[0].clone(), "task".into())
        .with_context(request.clone())
        .await
        .expect("publish");
    request.span().end();
    for (i, to) in [(0, &subjects[1]), (1, &subjects[2])] {
        let message =
            tokio::time::timeout(TIMEOUT, subscribers[i].next()).await.expect("in time").expect("a message");
        let result = message
            .process_traced_with(&tr, async {
                let no_headers = async_nats::HeaderMap::new();
                let retry = Retry::of(
                    &HeaderMapExtractor(message.headers.as_ref().unwrap_or(&no_headers)),
                    &Context::current(),
                );
                let mut headers = async_nats::HeaderMap::new();
                retry.inject(&mut HeaderMapInjector(&mut headers));
                client
                    .publish_with_headers_traced_with(&tr, to.clone(), headers, "task".into())
                    .await
                    .expect("re-publish");
                client.flush().await.expect("flush");
                Err::<(), _>(std::io::Error::other("cannot handle"))
            })
            .await;
        assert!(result.is_err());
    }
    let dead =
        tokio::time::timeout(TIMEOUT, subscribers[2].next()).await.expect("in time").expect("a message");
    dead.process_traced_with(&tr, async { Ok::<_, std::io::Error>(()) }).await.expect("dead-letter handler");

    let spans = t.spans();
    assert_lineage(&spans, "publish", [&subjects[0], &subjects[1], &subjects[2]]);
}
