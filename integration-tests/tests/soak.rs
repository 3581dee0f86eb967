//! Soak: N messages per broker (`SOAK_MESSAGES`, default 2 000; `just soak` runs 100 000 in a
//! release build) through traced producers and consumers on the real brokers, every tenth one
//! written by an uninstrumented producer with garbage in its metadata (non-UTF-8 keys and values,
//! duplicated, oversized or malformed `traceparent`, a 10 KB `tracestate`, 1000-member baggage,
//! binary AMQP values). Asserted per broker: produced == consumed by message id, no duplicates;
//! spans started == spans ended; every clean message's process span is the child of the send span
//! written into it; every span conforms (checked as it ends, send spans included); the heap's
//! live bytes (counted by `CountingAllocator`) grow by at most [`LEAK_BYTES_PER_MESSAGE`] per
//! message from the end of a warm-up (a tenth of the run) to the end, spans exported so far
//! dropped at both points.
//! Prints the figures (`cargo test --test soak -- --nocapture`).
//!
//! One test drives the five brokers (Kafka, RabbitMQ, Redis, SQS, NATS JetStream) one after the
//! other, so the memory figures are its own.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use futures_util::{StreamExt as _, stream::FuturesUnordered};
use integration_tests::{amqp_url, kafka_bootstrap, redis_url, sqs_endpoint, unique_name};
use opentelemetry::trace::SpanKind;
use otel_messaging::testing::TestTelemetry;

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TIMEOUT: Duration = Duration::from_secs(60);

#[global_allocator]
static ALLOCATOR: bench_support::CountingAllocator = bench_support::CountingAllocator;

/// Most heap bytes a message may leave behind after the warm-up (a leak of a span, a header copy
/// or a handoff entry per message is larger).
const LEAK_BYTES_PER_MESSAGE: i64 = 64;

/// `SOAK_MESSAGES` (default 2 000; at least 100, so that no run is vacuous).
fn messages() -> usize {
    let n = match std::env::var("SOAK_MESSAGES") {
        Ok(v) => v.parse().unwrap_or_else(|_| panic!("SOAK_MESSAGES={v:?} is not a number of messages")),
        Err(_) => 2_000,
    };
    assert!(n >= 100, "SOAK_MESSAGES={n}: a soak needs at least 100 messages");
    n
}

fn live_bytes() -> i64 {
    bench_support::CountingAllocator::live_bytes()
}

fn garbage(i: usize) -> bool {
    i.is_multiple_of(10)
}

/// The W3C garbage every broker gets, as (key, value) text; broker-specific binary garbage is
/// added by each broker.
fn w3c_garbage(i: usize) -> Vec<(&'static str, String)> {
    match (i / 10) % 5 {
        0 => vec![("traceparent", TP.into()), ("traceparent", TP.replace("00f067aa", "11f067aa"))],
        1 => vec![("traceparent", format!("00-{}", "a".repeat(100_000)))],
        2 => vec![("traceparent", "00-1-2-01".into()), ("TraceParent", "garbage".into())],
        3 => vec![("traceparent", TP.into()), ("tracestate", format!("k={}", "v".repeat(10_000)))],
        _ => vec![
            ("traceparent", TP.into()),
            ("baggage", (0..1000).map(|n| format!("k{n}=v")).collect::<Vec<_>>().join(",")),
        ],
    }
}

/// What one broker's run must show.
struct Ledger {
    broker: &'static str,
    n: usize,
    consumed: Vec<usize>,
    /// For each clean message consumed: the span id its `traceparent` carries.
    expected_parents: Vec<String>,
    started: Instant,
    /// Live heap bytes at the end of the warm-up (spans exported so far dropped).
    live_warm: Option<i64>,
    /// Messages consumed at that point.
    warm: usize,
}

impl Ledger {
    fn new(broker: &'static str) -> Self {
        Ledger {
            broker,
            n: messages(),
            consumed: Vec::new(),
            expected_parents: Vec::new(),
            started: Instant::now(),
            live_warm: None,
            warm: 0,
        }
    }

    /// Records one consumed message; `parent` is the span id of its `traceparent` when clean.
    fn consumed(&mut self, id: usize, parent: Option<String>) {
        self.consumed.push(id);
        if !garbage(id) {
            self.expected_parents.push(parent.expect("a clean message carries the context we wrote"));
        }
    }

    /// Takes the warm-up measure once a tenth of the messages are consumed: call after each
    /// consumed message, with the telemetry whose exported spans are dropped first.
    fn warm_up(&mut self, t: &TestTelemetry) {
        if self.live_warm.is_none() && self.consumed.len() >= self.n / 10 {
            self.check_spans(t);
            self.warm = self.consumed.len();
            self.live_warm = Some(live_bytes());
        }
    }

    /// Checks the process spans exported so far against the clean messages, then drops them.
    fn check_spans(&mut self, t: &TestTelemetry) {
        let spans = t.spans();
        let processes: Vec<_> = spans.iter().filter(|s| s.span_kind == SpanKind::Consumer).collect();
        let clean: Vec<_> = processes
            .iter()
            .filter(|s| s.span_context.trace_id().to_string() != TP[3..35])
            .filter(|s| s.parent_span_id != opentelemetry::trace::SpanId::INVALID)
            .map(|s| s.parent_span_id.to_string())
            .collect();
        let expected: Vec<_> = std::mem::take(&mut self.expected_parents);
        let clean_set: BTreeSet<_> = clean.iter().collect();
        for parent in &expected {
            assert!(
                clean_set.contains(parent),
                "{}: a clean message's process span is not the child of its send span",
                self.broker
            );
        }
        t.clear_spans();
    }

    fn finish(self, t: &TestTelemetry) {
        let mut ids = self.consumed.clone();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(before, ids.len(), "{}: duplicates consumed", self.broker);
        assert_eq!(ids, (0..self.n).collect::<Vec<_>>(), "{}: produced == consumed", self.broker);
        let (started, ended) = t.span_counts();
        assert_eq!(started, ended, "{}: spans started == spans ended", self.broker);
        t.clear_spans();
        let live = live_bytes();
        let warm = self.live_warm.expect("the warm-up measure was taken");
        let growth = live - warm;
        let after = i64::try_from(self.n - self.warm).unwrap_or(i64::MAX).max(1);
        println!(
            "soak {:<8} {:>7} produced, {:>7} consumed, {:>3} with garbage metadata; spans started {started} = ended {ended}; \
             heap {} KiB after {} messages, {} KiB at the end ({:+} B per message); {:.1} s",
            self.broker,
            self.n,
            before,
            self.n.div_ceil(10),
            warm >> 10,
            self.warm,
            live >> 10,
            growth / after,
            self.started.elapsed().as_secs_f64()
        );
        assert!(
            growth <= LEAK_BYTES_PER_MESSAGE * after,
            "{}: the heap grew by {growth} B over {after} messages after the warm-up",
            self.broker
        );
    }
}

fn id_of(payload: &[u8]) -> usize {
    std::str::from_utf8(payload)
        .ok()
        .and_then(|s| s.strip_prefix("id-"))
        .and_then(|s| s.parse().ok())
        .expect("an id payload")
}

fn parent_of(traceparent: Option<&str>) -> Option<String> {
    traceparent.filter(|tp| tp.len() == 55).map(|tp| tp[36..52].to_owned())
}

async fn kafka(t: &TestTelemetry) {
    use opentelemetry::propagation::Extractor as _;
    use otel_messaging_rdkafka::{
        FutureProducerExt as _, HeadersExtractor, KafkaInstrumentation, StreamConsumerExt as _, raw_headers,
    };
    use rdkafka::{
        ClientConfig, Message as _,
        consumer::StreamConsumer,
        producer::{FutureProducer, FutureRecord},
    };

    let mut ledger = Ledger::new("kafka");
    let bootstrap = kafka_bootstrap();
    let topic = unique_name("soak");
    integration_tests::create_topic(&bootstrap, &topic).await;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "5")
        .set("group.id", "soak")
        .set("enable.auto.commit", "false");
    let tr = KafkaInstrumentation::from_config(&config).with_instrumenter(t.instrumenter());
    let producer: FutureProducer = config.create().expect("producer");
    let mut in_flight = FuturesUnordered::new();
    for i in 0..ledger.n {
        let payload = format!("id-{i}");
        let producer = &producer;
        let tr = &tr;
        let topic = &topic;
        in_flight.push(async move {
            if garbage(i) {
                let mut fields: Vec<(Vec<u8>, Option<Vec<u8>>)> = w3c_garbage(i)
                    .into_iter()
                    .map(|(k, v)| (k.as_bytes().to_vec(), Some(v.into_bytes())))
                    .collect();
                fields.push((b"\xff\xfe-key".to_vec(), Some(b"\xc3\x28".to_vec())));
                fields.push((b"traceparent".to_vec(), None));
                let headers = raw_headers(fields.iter().map(|(k, v)| (k.as_slice(), v.as_deref())));
                producer
                    .send(FutureRecord::<(), _>::to(topic).payload(&payload).headers(headers), TIMEOUT)
                    .await
            } else {
                producer
                    .send_traced_with(tr, FutureRecord::<(), _>::to(topic).payload(&payload), TIMEOUT)
                    .await
            }
        });
        if in_flight.len() >= 1000 {
            in_flight.next().await.expect("a send").expect("delivered");
        }
    }
    while let Some(delivery) = in_flight.next().await {
        delivery.expect("delivered");
    }
    drop(in_flight);
    t.clear_spans();

    let consumer: StreamConsumer = config.create().expect("consumer");
    let consumer = integration_tests::assign_from_start(consumer, &topic);
    let mut stream = consumer.stream_traced_with(&tr);
    while ledger.consumed.len() < ledger.n {
        let message = tokio::time::timeout(TIMEOUT, stream.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("message");
        let (message, result) = message.process(async |_| Ok::<_, std::io::Error>(())).await;
        result.expect("handler");
        let parent = message.headers().and_then(|h| parent_of(HeadersExtractor(h).get("traceparent")));
        ledger.consumed(id_of(message.payload().unwrap_or_default()), parent);
        ledger.warm_up(t);
        if ledger.consumed.len().is_multiple_of(1000) {
            ledger.check_spans(t);
        }
    }
    drop(stream);
    ledger.check_spans(t);
    ledger.finish(t);
}

async fn rabbitmq(t: &TestTelemetry) {
    use lapin::{
        BasicProperties, Connection, ConnectionProperties,
        options::{
            BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
            QueueDeclareOptions, QueueDeleteOptions,
        },
        types::{AMQPValue, ByteArray, FieldTable, LongString},
    };
    use opentelemetry::propagation::Extractor as _;
    use otel_messaging_lapin::{AmqpInstrumentation, ChannelExt as _, ConsumerExt as _, FieldTableExtractor};

    let mut ledger = Ledger::new("rabbitmq");
    let conn = Connection::connect(&amqp_url(), ConnectionProperties::default()).await.expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default()).await.expect("confirms");
    let tr = AmqpInstrumentation::from_uri(&amqp_url()).with_instrumenter(t.instrumenter());
    let q = unique_name("soak");
    ch.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), FieldTable::default())
        .await
        .expect("queue");
    let mut confirms = FuturesUnordered::new();
    for i in 0..ledger.n {
        let payload = format!("id-{i}");
        if garbage(i) {
            let mut headers = FieldTable::default();
            for (k, v) in w3c_garbage(i) {
                headers.insert(k.into(), AMQPValue::LongString(LongString::from(v)));
            }
            headers.insert(
                "baggage".into(),
                AMQPValue::ByteArray(ByteArray::from(vec![0xff, 0xfe, b'=', 0x00])),
            );
            headers.insert("tracestate".into(), AMQPValue::LongInt(7));
            let properties = BasicProperties::default().with_headers(headers).with_timestamp(u64::MAX);
            let confirm = ch
                .basic_publish(
                    "".into(),
                    q.as_str().into(),
                    BasicPublishOptions::default(),
                    payload.as_bytes(),
                    properties,
                )
                .await
                .expect("publish");
            confirms.push(futures_util::future::Either::Left(confirm));
        } else {
            let confirm = ch
                .basic_publish_traced_with(
                    &tr,
                    "".into(),
                    q.as_str().into(),
                    BasicPublishOptions::default(),
                    payload.as_bytes(),
                    BasicProperties::default(),
                )
                .await
                .expect("publish");
            confirms.push(futures_util::future::Either::Right(confirm));
        }
        if confirms.len() >= 500 {
            confirms.next().await.expect("a confirm").expect("confirmed");
        }
    }
    while let Some(confirm) = confirms.next().await {
        confirm.expect("confirmed");
    }
    t.clear_spans();

    let consumer = ch
        .basic_consume(
            q.as_str().into(),
            "soak".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume")
        .stream_traced_with(&tr);
    futures_util::pin_mut!(consumer);
    while ledger.consumed.len() < ledger.n {
        let delivery = tokio::time::timeout(TIMEOUT, consumer.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("delivery");
        let (delivery, result) = delivery.process(async |_| Ok::<_, lapin::Error>(())).await;
        result.expect("handler");
        let parent = delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|h| parent_of(FieldTableExtractor(h).get("traceparent")));
        ledger.consumed(id_of(&delivery.data), parent);
        ledger.warm_up(t);
        delivery.acker.ack(BasicAckOptions::default()).await.expect("ack");
        if ledger.consumed.len().is_multiple_of(1000) {
            ledger.check_spans(t);
        }
    }
    ledger.check_spans(t);
    ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await.expect("cleanup");
    ledger.finish(t);
}

async fn redis(t: &TestTelemetry) {
    use otel_messaging_redis::{
        RedisInstrumentation, StreamEntryExt as _, StreamsConsumerExt as _, StreamsExt as _,
    };
    use redis::{AsyncCommands as _, streams::StreamReadOptions};

    let mut ledger = Ledger::new("redis");
    let client = redis::Client::open(redis_url()).expect("client");
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
    let tr = RedisInstrumentation::from_client(&client).with_instrumenter(t.instrumenter());
    let stream = unique_name("soak");
    let () = conn.xgroup_create_mkstream(&stream, "g", "$").await.expect("group");
    for i in 0..ledger.n {
        let payload = format!("id-{i}");
        if garbage(i) {
            let mut cmd = redis::cmd("XADD");
            cmd.arg(&stream).arg("*").arg("payload").arg(&payload);
            for (k, v) in w3c_garbage(i) {
                cmd.arg(k).arg(v);
            }
            // Non-UTF-8 values (redis-rs itself cannot parse an XREAD reply with a non-UTF-8 field
            // *name*, traced or not, so a raw consumer could not read such an entry either).
            cmd.arg("baggage").arg(&b"\xff\xfe"[..]).arg("x-bin").arg(&b"\xc3\x28"[..]);
            let _: String = cmd.query_async(&mut conn).await.expect("xadd");
        } else {
            let _: String = conn
                .xadd_traced_with(&tr, &stream, "*", &[("payload", payload.as_str())])
                .await
                .expect("xadd");
        }
    }
    t.clear_spans();
    let opts = StreamReadOptions::default().group("g", "c").count(500);
    let deadline = Instant::now() + TIMEOUT;
    while ledger.consumed.len() < ledger.n {
        assert!(
            Instant::now() < deadline,
            "redis: every entry read in time ({} of {})",
            ledger.consumed.len(),
            ledger.n
        );
        let reply = conn.xread_options_traced_with(&tr, &[&stream], &[">"], &opts).await.expect("read");
        for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
            let parent = parent_of(entry.get::<String>("traceparent").as_deref());
            let payload: Vec<u8> = entry.get("payload").expect("payload");
            let (entry, result) =
                entry.start_process_with(&tr).process(async |_| Ok::<_, redis::RedisError>(())).await;
            result.expect("handler");
            // Traced, as the docs show: the XACK takes the entry's kept creation context (an XACK
            // made natively leaves it to be pushed out by 1 000 newer entries: bounded, but it
            // would read as growth here).
            let acked: usize = conn.xack_traced_with(&tr, &stream, "g", &[&entry.id]).await.expect("ack");
            assert_eq!(acked, 1);
            ledger.consumed(id_of(&payload), parent);
            ledger.warm_up(t);
        }
        ledger.check_spans(t);
    }
    let _: usize = conn.del(&stream).await.expect("cleanup");
    ledger.finish(t);
}

async fn sqs(t: &TestTelemetry) {
    use aws_sdk_sqs::{
        primitives::Blob,
        types::{DeleteMessageBatchRequestEntry, MessageAttributeValue, SendMessageBatchRequestEntry},
    };
    use opentelemetry::propagation::Extractor as _;
    use otel_messaging_aws_sqs::{
        DeleteMessageBatchFluentBuilderExt as _, MessageAttributesExtractor, MessageExt as _,
        ReceiveMessageFluentBuilderExt as _, SendMessageBatchFluentBuilderExt as _, SqsInstrumentation,
    };

    let mut ledger = Ledger::new("aws_sqs");
    let c = integration_tests::sqs_client(&sqs_endpoint(), 3).await;
    let tr = SqsInstrumentation::default().with_instrumenter(t.instrumenter());
    let url =
        c.create_queue().queue_name(unique_name("soak")).send().await.expect("queue").queue_url.unwrap();
    let string =
        |v: String| MessageAttributeValue::builder().data_type("String").string_value(v).build().unwrap();
    // Waves of 200: moto scans its whole queue on every receive, so a deep queue is quadratic.
    let ids: Vec<usize> = (0..ledger.n).collect();
    for wave in ids.chunks(200) {
        for chunk in wave.chunks(10) {
            let (dirty, clean): (Vec<usize>, Vec<usize>) = chunk.iter().partition(|i| garbage(**i));
            let entry = |i: usize| {
                SendMessageBatchRequestEntry::builder().id(format!("e{i}")).message_body(format!("id-{i}"))
            };
            if !clean.is_empty() {
                let entries = clean.iter().map(|&i| entry(i).build().unwrap()).collect();
                let out = c
                    .send_message_batch()
                    .queue_url(&url)
                    .set_entries(Some(entries))
                    .send_traced_with(&tr)
                    .await
                    .expect("batch");
                assert!(out.failed.is_empty(), "{:?}", out.failed);
            }
            for i in dirty {
                let mut e = entry(i);
                for (k, v) in w3c_garbage(i).into_iter().filter(|(_, v)| v.len() < 50_000) {
                    e = e.message_attributes(k, string(v));
                }
                let binary = MessageAttributeValue::builder()
                    .data_type("Binary")
                    .binary_value(Blob::new(vec![0xff, 0xfe]))
                    .build()
                    .unwrap();
                e = e.message_attributes("baggage", binary);
                c.send_message_batch()
                    .queue_url(&url)
                    .entries(e.build().unwrap())
                    .send()
                    .await
                    .expect("raw batch");
            }
        }
        t.clear_spans();
        let target = ledger.consumed.len() + wave.len();
        let deadline = Instant::now() + TIMEOUT;
        while ledger.consumed.len() < target {
            assert!(
                Instant::now() < deadline,
                "sqs: the wave received in time ({} of {target})",
                ledger.consumed.len()
            );
            let out = c
                .receive_message()
                .queue_url(&url)
                .max_number_of_messages(10)
                .wait_time_seconds(0) // short polls: moto waits out a long poll even with messages ready
                .message_attribute_names("traceparent")
                .send_traced_with(&tr)
                .await
                .expect("receive");
            let mut delete = Vec::new();
            for message in out.messages.unwrap_or_default() {
                // Only what the caller asked for comes back, whatever else the message carries.
                let names: Vec<_> = message.message_attributes.iter().flat_map(|a| a.keys()).collect();
                assert!(names.iter().all(|n| *n == "traceparent"), "{names:?}");
                assert!(message.attributes.is_none(), "no system attribute was asked for");
                let parent = message
                    .message_attributes
                    .as_ref()
                    .and_then(|a| parent_of(MessageAttributesExtractor(a).get("traceparent")));
                let (message, result) =
                    message.start_process_with(&tr).process(async |_| Ok::<_, std::io::Error>(())).await;
                result.expect("handler");
                ledger.consumed(id_of(message.body.as_deref().unwrap_or_default().as_bytes()), parent);
                ledger.warm_up(t);
                let handle = message.receipt_handle.unwrap();
                let entry = DeleteMessageBatchRequestEntry::builder()
                    .id(format!("d{}", delete.len()))
                    .receipt_handle(handle);
                delete.push(entry.build().unwrap());
            }
            if !delete.is_empty() {
                c.delete_message_batch()
                    .queue_url(&url)
                    .set_entries(Some(delete))
                    .send_traced_with(&tr)
                    .await
                    .expect("delete");
            }
            ledger.check_spans(t);
        }
    }
    c.delete_queue().queue_url(&url).send().await.expect("cleanup");
    ledger.finish(t);
}

async fn nats(t: &TestTelemetry) {
    use async_nats::{HeaderMap, jetstream};
    use opentelemetry::propagation::Extractor as _;
    use otel_messaging_async_nats::{
        HeaderMapExtractor, JetStreamExt as _, MessageExt as _, NatsInstrumentation,
    };

    let mut ledger = Ledger::new("nats");
    let url = integration_tests::nats_url();
    let js = jetstream::new(async_nats::connect(&url).await.expect("connect"));
    let tr = NatsInstrumentation::from_url(&url).with_instrumenter(t.instrumenter());
    let name = unique_name("SOAK").replace(['-', '.'], "_");
    let subject = format!("{name}.jobs");
    let stream = js
        .create_stream(jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            ..Default::default()
        })
        .await
        .expect("stream");
    let mut acks = FuturesUnordered::new();
    for i in 0..ledger.n {
        let payload = format!("id-{i}");
        if garbage(i) {
            let mut headers = HeaderMap::new();
            // JetStream refuses headers over 64 KiB (the broker's limit, traced or not).
            for (k, v) in w3c_garbage(i).into_iter().filter(|(_, v)| v.len() < 50_000) {
                headers.append(k, v.as_str());
            }
            let ack =
                js.publish_with_headers(subject.clone(), headers, payload.into()).await.expect("publish");
            acks.push(futures_util::future::Either::Left(std::future::IntoFuture::into_future(ack)));
        } else {
            let ack = js.publish_traced_with(&tr, subject.clone(), payload.into()).await.expect("publish");
            acks.push(futures_util::future::Either::Right(std::future::IntoFuture::into_future(ack)));
        }
        if acks.len() >= 500 {
            acks.next().await.expect("an ack").expect("stored");
        }
    }
    while let Some(ack) = acks.next().await {
        ack.expect("stored");
    }
    t.clear_spans();

    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("soak".into()),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut messages = consumer.messages().await.expect("messages");
    while ledger.consumed.len() < ledger.n {
        let message = tokio::time::timeout(TIMEOUT, messages.next())
            .await
            .expect("in time")
            .expect("open")
            .expect("message");
        let parent =
            message.headers.as_ref().and_then(|h| parent_of(HeaderMapExtractor(h).get("traceparent")));
        message.process_traced_with(&tr, async { Ok::<_, std::io::Error>(()) }).await.expect("handler");
        message.ack().await.expect("ack");
        ledger.consumed(id_of(&message.payload), parent);
        ledger.warm_up(t);
        if ledger.consumed.len().is_multiple_of(1000) {
            ledger.check_spans(t);
        }
    }
    ledger.check_spans(t);
    js.delete_stream(&name).await.expect("cleanup");
    ledger.finish(t);
}

#[tokio::test]
async fn soak_every_broker() {
    let t = TestTelemetry::new();
    kafka(&t).await;
    rabbitmq(&t).await;
    redis(&t).await;
    sqs(&t).await;
    nats(&t).await;
}
