//! Consume with a traced stream: each message arrives with its `process {topic}` CONSUMER span
//! started, parented on (and linked to) the producer's creation context.
//!
//! ```sh
//! just brokers-up
//! cargo run -p otel-messaging-rdkafka --example produce -- orders 3
//! cargo run -p otel-messaging-rdkafka --example consume -- orders 3
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use futures_util::StreamExt as _;
use opentelemetry::{global, trace::Tracer as _};
use otel_messaging_rdkafka::StreamConsumerExt as _;
use rdkafka::{
    ClientConfig, Message as _,
    consumer::{CommitMode, Consumer, StreamConsumer},
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let topic = args.next().unwrap_or_else(|| "orders".into());
    let count: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(3);
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP_SERVERS").unwrap_or_else(|_| "127.0.0.1:9092".into());

    // Telemetry: spans over OTLP/HTTP (`OTEL_EXPORTER_OTLP_ENDPOINT`, default
    // http://localhost:4318, e.g. the Jaeger of `docker compose up`). No propagator to install:
    // W3C Trace Context + Baggage is used while none is.
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let provider =
        opentelemetry_sdk::trace::SdkTracerProvider::builder().with_batch_exporter(exporter).build();
    opentelemetry::global::set_tracer_provider(provider.clone());

    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "example-workers")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false");
    let consumer: StreamConsumer = config.create()?;
    consumer.subscribe(&[&topic])?;

    let mut stream = consumer.stream_traced().take(count);
    while let Ok(Some(message)) = tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
        let message = message?;
        let (message, result) = message
            .process(async |m| {
                let offset = m.offset();
                {
                    // The handler's spans nest under `process {topic}`.
                    global::tracer("worker")
                        .in_span("handle order", |_| println!("handling offset {offset}"));
                    Ok::<_, anyhow::Error>(())
                }
            })
            .await;
        result?;
        consumer.commit_message(&message, CommitMode::Async)?;
    }
    provider.shutdown()?;
    Ok(())
}
