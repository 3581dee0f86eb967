//! Quickstart: ONE trace from an HTTP handler, through Kafka, to the worker's database call.
//!
//! ```sh
//! cargo run -p otel-messaging-rdkafka --example quickstart
//! ```
//!
//! * No environment: an in-process rdkafka `MockCluster` stands in for Kafka (no broker, no Docker).
//! * `KAFKA_BOOTSTRAP_SERVERS=host:port`: uses that broker instead (the topic is created if missing).
//! * `OTEL_EXPORTER_OTLP_ENDPOINT=http://host:4318`: also exports the spans over OTLP/HTTP
//!   (`OTEL_EXPORTER_OTLP_PROTOCOL` = `http/protobuf`, the default, or `http/json`; every standard
//!   `OTEL_*` exporter variable applies), e.g. to the Jaeger of `docker compose up`.
//!
//! It prints the waterfall of the trace: `POST /orders` (SERVER) → `send orders` (PRODUCER) → queue
//! wait → `process orders` (CONSUMER) → `INSERT orders` (CLIENT).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::{
    KeyValue, global,
    propagation::TextMapCompositePropagator,
    trace::{FutureExt as _, SpanKind, TraceContextExt, Tracer as _},
};
use opentelemetry_sdk::{
    Resource,
    propagation::{BaggagePropagator, TraceContextPropagator},
    trace::{InMemorySpanExporter, SdkTracerProvider},
};
use otel_messaging_rdkafka::{FutureProducerExt as _, KafkaInstrumentation, MessageExt as _};
use rdkafka::{
    ClientConfig, Offset, TopicPartitionList,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    consumer::{Consumer, StreamConsumer},
    mocking::MockCluster,
    producer::{FutureProducer, FutureRecord},
};

const TOPIC: &str = "orders";

fn tracer_provider(memory: &InMemorySpanExporter) -> anyhow::Result<SdkTracerProvider> {
    let mut builder = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name("otel-messaging-quickstart").build())
        .with_simple_exporter(memory.clone());
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
        || std::env::var_os("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some()
    {
        use opentelemetry_otlp::{Protocol, WithExportConfig as _};
        let exporter = if std::env::var_os("OTEL_EXPORTER_OTLP_PROTOCOL").is_some()
            || std::env::var_os("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").is_some()
        {
            opentelemetry_otlp::SpanExporter::builder().build()?
        } else {
            // The OTLP default protocol is http/protobuf.
            opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(Protocol::HttpBinary)
                .build()?
        };
        builder = builder.with_batch_exporter(exporter);
        println!("exporting spans over OTLP as well");
    }
    Ok(builder.build())
}

async fn ensure_topic(bootstrap: &str) -> anyhow::Result<()> {
    let admin: AdminClient<_> = ClientConfig::new().set("bootstrap.servers", bootstrap).create()?;
    let topic = NewTopic::new(TOPIC, 1, TopicReplication::Fixed(1));
    let results = admin.create_topics([&topic], &AdminOptions::new()).await?;
    for result in results {
        match result {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("creating topic {topic}: {code}"),
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // 1. OpenTelemetry: the application installs providers AND a propagator (the
    //    opentelemetry-rust default propagator is a no-op: nothing would be propagated).
    let memory = InMemorySpanExporter::default();
    let provider = tracer_provider(&memory)?;
    global::set_tracer_provider(provider.clone());
    global::set_text_map_propagator(TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ]));

    // 2. Kafka: a real broker from KAFKA_BOOTSTRAP_SERVERS, or an in-process mock cluster.
    let mock;
    let bootstrap = match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
        Ok(servers) => {
            ensure_topic(&servers).await.context("creating the topic")?;
            servers
        }
        Err(_) => {
            mock = MockCluster::new(1)?;
            mock.create_topic(TOPIC, 1, 1)?;
            mock.bootstrap_servers()
        }
    };
    println!("Kafka at {bootstrap}");

    let mut producer_config = ClientConfig::new();
    producer_config.set("bootstrap.servers", &bootstrap).set("client.id", "order-api");
    let producer: FutureProducer = producer_config.create()?;
    let producer_tracing = KafkaInstrumentation::from_config(&producer_config);

    let mut consumer_config = ClientConfig::new();
    consumer_config
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "order-worker")
        .set("client.id", "order-worker-1")
        .set("enable.auto.commit", "false");
    let consumer: StreamConsumer = consumer_config.create()?;
    let consumer_tracing = KafkaInstrumentation::from_config(&consumer_config);

    // 3. The "HTTP handler": a SERVER span whose request enqueues an order.
    let tracer = global::tracer("quickstart");
    let request = tracer.span_builder("POST /orders").with_kind(SpanKind::Server).start(&tracer);
    let cx = opentelemetry::Context::current_with_span(request);
    let (partition, offset) = async {
        let record = FutureRecord::to(TOPIC).key("order-42").payload(r#"{"order":42,"total":"19.99"}"#);
        producer_tracing_send(&producer, &producer_tracing, record).await
    }
    .with_context(cx.clone())
    .await?;
    cx.span().end();

    // The order waits in the broker while the worker finishes earlier work (so the queue wait is
    // visible in the waterfall whatever the broker's fetch latency); then the worker reads exactly
    // that record (no consumer-group join, so the demo is quick).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(TOPIC, partition, Offset::Offset(offset))?;
    consumer.assign(&assignment)?;

    // 4. The worker: receives the message and processes it; its db call nests under the process span.
    let message = tokio::time::timeout(Duration::from_secs(10), consumer.recv())
        .await
        .context("no message within 10 s")??;
    message
        .process_traced_with(&consumer_tracing, async {
            let tracer = global::tracer("worker");
            let db = tracer
                .span_builder("INSERT orders")
                .with_kind(SpanKind::Client)
                .with_attributes([KeyValue::new("db.system.name", "postgresql")])
                .start(&tracer);
            tokio::time::sleep(Duration::from_millis(15)).await;
            drop(db);
            Ok::<_, anyhow::Error>(())
        })
        .await?;

    // 5. The result: one trace.
    provider.force_flush()?;
    let spans = memory.get_finished_spans()?;
    print!("{}", otel_messaging::testing::waterfall(&spans));
    let traces: std::collections::HashSet<_> = spans.iter().map(|s| s.span_context.trace_id()).collect();
    println!("{} spans in {} trace(s)", spans.len(), traces.len());
    provider.shutdown()?;
    anyhow::ensure!(traces.len() == 1, "expected one connected trace");
    Ok(())
}

async fn producer_tracing_send(
    producer: &FutureProducer,
    tracing: &KafkaInstrumentation,
    record: FutureRecord<'_, str, str>,
) -> anyhow::Result<(i32, i64)> {
    let delivery = producer
        .send_traced_with(tracing, record, Duration::from_secs(5))
        .await
        .map_err(|(e, _)| e)
        .context("sending the order")?;
    Ok((delivery.partition, delivery.offset))
}
