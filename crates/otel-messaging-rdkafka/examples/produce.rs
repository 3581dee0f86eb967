//! Produce traced records: each `send {topic}` PRODUCER span ends at the broker's acknowledgement
//! and its context travels in the record headers.
//!
//! ```sh
//! just brokers-up   # or any Kafka at KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092)
//! cargo run -p otel-messaging-rdkafka --example produce -- orders 3
//! ```
//!
//! The spans go over OTLP/HTTP (`OTEL_EXPORTER_OTLP_ENDPOINT`, e.g. the Jaeger of `docker compose up`).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use otel_messaging_rdkafka::FutureProducerExt as _;
use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    producer::{FutureProducer, FutureRecord},
    types::RDKafkaErrorCode,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let topic = args.next().unwrap_or_else(|| "orders".into());
    let count: u32 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(3);
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into());

    // Telemetry: spans over OTLP/HTTP (`OTEL_EXPORTER_OTLP_ENDPOINT`, default
    // http://localhost:4318, e.g. the Jaeger of `docker compose up`). No propagator to install:
    // W3C Trace Context + Baggage is used while none is.
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let provider =
        opentelemetry_sdk::trace::SdkTracerProvider::builder().with_batch_exporter(exporter).build();
    opentelemetry::global::set_tracer_provider(provider.clone());

    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &bootstrap).set("client.id", "example-producer");
    let producer: FutureProducer = config.create()?;
    // Some brokers (tansu) do not auto-create topics: create it, tolerating "already exists".
    let admin: AdminClient<_> = config.create()?;
    let topic_spec = NewTopic::new(&topic, 1, TopicReplication::Fixed(1));
    for result in admin.create_topics([&topic_spec], &AdminOptions::new()).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => anyhow::bail!("creating topic {name}: {code}"),
        }
    }

    for i in 0..count {
        let payload = format!(r#"{{"order":{i}}}"#);
        let record = FutureRecord::to(&topic).key("order").payload(&payload);
        match producer.send_traced(record, Duration::from_secs(10)).await {
            Ok(delivery) => println!("sent to partition {} offset {}", delivery.partition, delivery.offset),
            Err((e, _)) => eprintln!("send failed: {e}"),
        }
    }
    provider.shutdown()?;
    Ok(())
}
