//! The `tracing` bridge on real brokers: services instrumented with `tracing` + tracing-opentelemetry
//! get ONE trace from the request span to the worker's spans, across `tokio::spawn`.
//!
//! Its own test binary with one **global** subscriber (as a service has): tracing caches callsite
//! interest process-wide, so thread-local subscribers racing with subscriber-less tests in the same
//! binary can leave spans disabled. Tests share one exporter and each selects its own trace.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::{sync::OnceLock, time::Duration};

use integration_tests::{amqp_url, kafka_bootstrap, unique_name};
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions},
    types::FieldTable,
};
use opentelemetry::trace::{SpanKind, TraceId};
use opentelemetry_sdk::trace::SpanData;
use otel_messaging::{
    ProcessParent,
    testing::{TestTelemetry, assert_trace, shape},
};
use otel_messaging_lapin::{AmqpInstrumentation, ChannelExt as _, ConsumerExt as _};
use otel_messaging_rdkafka::{FutureProducerExt as _, KafkaInstrumentation, MessageExt as _};
use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    consumer::StreamConsumer,
    error::KafkaError,
    producer::{FutureProducer, FutureRecord},
};
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;

const TIMEOUT: Duration = Duration::from_secs(20);

/// The process-wide telemetry and subscriber, installed once.
fn telemetry() -> &'static TestTelemetry {
    static TELEMETRY: OnceLock<TestTelemetry> = OnceLock::new();
    TELEMETRY.get_or_init(|| {
        let t = TestTelemetry::new();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(t.tracer("tracing")));
        tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
        t
    })
}

/// The spans of one trace (plus any extra spans named in `also`).
fn trace_of(trace: TraceId, also: &[&str]) -> Vec<SpanData> {
    telemetry()
        .spans()
        .into_iter()
        .filter(|s| s.span_context.trace_id() == trace || also.contains(&s.name.as_ref()))
        .collect()
}

fn trace_named(name: &str) -> TraceId {
    telemetry().spans().iter().find(|s| s.name == name).map(|s| s.span_context.trace_id()).expect(name)
}

/// A handler's own `tracing` spans: one awaited, one in a spawned task (`in_current_span`).
async fn handler_work() {
    async { tokio::task::yield_now().await }.instrument(tracing::info_span!("resize image")).await;
    tokio::spawn(async { tracing::info_span!("spawned").in_scope(|| ()) }.in_current_span())
        .await
        .expect("join");
}

struct Kafka {
    producer_config: ClientConfig,
    consumer_config: ClientConfig,
    topic: String,
}

async fn kafka() -> Kafka {
    let bootstrap = kafka_bootstrap();
    let topic = unique_name("jobs");
    let admin: AdminClient<_> =
        ClientConfig::new().set("bootstrap.servers", &bootstrap).create().expect("admin");
    for r in admin
        .create_topics([&NewTopic::new(&topic, 1, TopicReplication::Fixed(1))], &AdminOptions::new())
        .await
        .expect("create topic")
    {
        r.expect("topic created");
    }
    let mut producer_config = ClientConfig::new();
    producer_config.set("bootstrap.servers", &bootstrap).set("linger.ms", "0");
    let mut consumer_config = ClientConfig::new();
    consumer_config
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "it-workers")
        .set("enable.auto.commit", "false");
    Kafka { producer_config, consumer_config, topic }
}

impl Kafka {
    fn consumer(&self) -> StreamConsumer {
        let consumer: StreamConsumer = self.consumer_config.create().expect("consumer");
        integration_tests::assign_from_start(consumer, &self.topic)
    }
}

/// The classic job-worker failure (apalis #664) does not happen: request → send → process → the
/// handler's `tracing` spans, across `.await` and `tokio::spawn`, are one trace.
#[tokio::test]
async fn kafka_tracing_spans_form_one_trace_across_spawn() {
    let t = telemetry();
    let k = kafka().await;
    let producer_tracing =
        KafkaInstrumentation::from_config(&k.producer_config).with_instrumenter(t.instrumenter());
    let consumer_tracing =
        KafkaInstrumentation::from_config(&k.consumer_config).with_instrumenter(t.instrumenter());
    let producer: FutureProducer = k.producer_config.create().expect("producer");
    let request_name = format!("POST /jobs {}", k.topic);
    let request = tracing::info_span!("request", otel.name = request_name.as_str());
    async {
        producer
            .send_traced_with(&producer_tracing, FutureRecord::<(), _>::to(&k.topic).payload("{}"), TIMEOUT)
            .await
    }
    .instrument(request.clone())
    .await
    .expect("delivered");
    drop(request);

    let consumer = k.consumer();
    let message = tokio::time::timeout(TIMEOUT, consumer.recv()).await.expect("in time").expect("message");
    message
        .process_traced_with(&consumer_tracing, async {
            async { tokio::task::yield_now().await }.instrument(tracing::info_span!("db insert")).await;
            tokio::spawn(async { tracing::info_span!("spawned").in_scope(|| ()) }.in_current_span())
                .await
                .expect("join");
            Ok::<_, KafkaError>(())
        })
        .await
        .expect("handler");

    let spans = trace_of(trace_named(&request_name), &[]);
    let (send, process) = (format!("send {}", k.topic), format!("process {}", k.topic));
    assert_trace(
        &spans,
        &[
            shape(&request_name, SpanKind::Internal),
            shape(&send, SpanKind::Producer).parent(&request_name),
            shape(&process, SpanKind::Consumer).parent(&send).links(&[&send]),
            shape("db insert", SpanKind::Internal).parent(&process),
            shape("spawned", SpanKind::Internal).parent(&process),
        ],
    );
}

/// Inside a `tracing` worker-loop span, `CreationContext` continues the producer's trace and links
/// the loop.
#[tokio::test]
async fn kafka_creation_context_policy_inside_a_tracing_worker_span() {
    let t = telemetry();
    let k = kafka().await;
    let producer_tracing =
        KafkaInstrumentation::from_config(&k.producer_config).with_instrumenter(t.instrumenter());
    let consumer_tracing = KafkaInstrumentation::from_config(&k.consumer_config)
        .with_instrumenter(t.instrumenter().with_process_parent(ProcessParent::CreationContext));
    let producer: FutureProducer = k.producer_config.create().expect("producer");
    producer
        .send_traced_with(&producer_tracing, FutureRecord::<(), _>::to(&k.topic).payload("x"), TIMEOUT)
        .await
        .expect("delivered");
    let consumer = k.consumer();
    let loop_name = format!("worker loop {}", k.topic);
    let worker = tracing::info_span!("worker", otel.name = loop_name.as_str());
    async {
        let message =
            tokio::time::timeout(TIMEOUT, consumer.recv()).await.expect("in time").expect("message");
        message
            .process_traced_with(&consumer_tracing, async { Ok::<_, KafkaError>(()) })
            .await
            .expect("handler");
    }
    .instrument(worker.clone())
    .await;
    drop(worker);
    let (send, process) = (format!("send {}", k.topic), format!("process {}", k.topic));
    let spans = trace_of(trace_named(&send), &[&loop_name]);
    assert_trace(
        &spans,
        &[
            shape(&send, SpanKind::Producer),
            shape(&loop_name, SpanKind::Internal),
            shape(&process, SpanKind::Consumer).parent(&send).links(&[&send, &loop_name]),
        ],
    );
}

#[tokio::test]
async fn rabbitmq_tracing_spans_form_one_trace_across_spawn() {
    let t = telemetry();
    let url = amqp_url();
    let tr = AmqpInstrumentation::from_uri(&url).with_instrumenter(t.instrumenter());
    let conn = Connection::connect(&url, ConnectionProperties::default()).await.expect("connect");
    let ch = conn.create_channel().await.expect("channel");
    let q = unique_name("jobs");
    ch.queue_declare(
        q.as_str().into(),
        QueueDeclareOptions { auto_delete: true, ..Default::default() },
        FieldTable::default(),
    )
    .await
    .expect("queue");
    let mut consumer = ch
        .basic_consume(q.as_str().into(), "c".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await
        .expect("consume")
        .stream_traced_with(&tr);
    let request_name = format!("POST /jobs {q}");
    let request = tracing::info_span!("request", otel.name = request_name.as_str());
    async {
        ch.basic_publish_traced_with(
            &tr,
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            b"{}",
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    }
    .instrument(request.clone())
    .await;
    drop(request);
    let delivery = tokio::time::timeout(TIMEOUT, futures_util::StreamExt::next(&mut consumer))
        .await
        .expect("in time")
        .expect("open")
        .expect("delivery");
    let (_d, result) = delivery
        .process(async |_| {
            handler_work().await;
            Ok::<_, lapin::Error>(())
        })
        .await;
    result.expect("handler");
    let spans = trace_of(trace_named(&request_name), &[]);
    let (send, process) = (format!("publish {q}"), format!("process {q}"));
    assert_trace(
        &spans,
        &[
            shape(&request_name, SpanKind::Internal),
            shape(&send, SpanKind::Producer).parent(&request_name),
            shape(&process, SpanKind::Consumer).parent(&send).links(&[&send]),
            shape("resize image", SpanKind::Internal).parent(&process),
            shape("spawned", SpanKind::Internal).parent(&process),
        ],
    );
}

/// The same on NATS (feature table: the bridge was asserted on Kafka and RabbitMQ only): the
/// publish under a `tracing` request span, the handler's `tracing` spans under the process span,
/// across `tokio::spawn`.
#[tokio::test]
async fn nats_tracing_spans_form_one_trace_across_spawn() {
    use otel_messaging_async_nats::{ClientExt as _, MessageExt as _, NatsInstrumentation};
    let t = telemetry();
    let url = integration_tests::nats_url();
    let tr = NatsInstrumentation::from_url(&url).with_instrumenter(t.instrumenter());
    let client = async_nats::connect(&url).await.expect("connect");
    let subject = unique_name("jobs");
    let mut subscriber = client.subscribe(subject.clone()).await.expect("subscribe");
    client.flush().await.expect("flush");
    let request_name = format!("POST /jobs {subject}");
    let request = tracing::info_span!("request", otel.name = request_name.as_str());
    async { client.publish_traced_with(&tr, subject.clone(), "{}".into()).await.expect("publish") }
        .instrument(request.clone())
        .await;
    drop(request);
    let message = tokio::time::timeout(TIMEOUT, futures_util::StreamExt::next(&mut subscriber))
        .await
        .expect("in time")
        .expect("a message");
    message
        .process_traced_with(&tr, async {
            handler_work().await;
            Ok::<_, std::io::Error>(())
        })
        .await
        .expect("handler");
    let spans = trace_of(trace_named(&request_name), &[]);
    let (send, process) = (format!("publish {subject}"), format!("process {subject}"));
    assert_trace(
        &spans,
        &[
            shape(&request_name, SpanKind::Internal),
            shape(&send, SpanKind::Producer).parent(&request_name),
            shape(&process, SpanKind::Consumer).parent(&send).links(&[&send]),
            shape("resize image", SpanKind::Internal).parent(&process),
            shape("spawned", SpanKind::Internal).parent(&process),
        ],
    );
}
