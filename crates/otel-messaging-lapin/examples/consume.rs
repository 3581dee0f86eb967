//! Consume with a traced stream: each delivery arrives with its `process {destination}` CONSUMER
//! span started, parented on (and linked to) the publisher's creation context; the ack is a
//! settle span inside it.
//!
//! ```sh
//! cargo run -p otel-messaging-lapin --example publish -- orders 3
//! cargo run -p otel-messaging-lapin --example consume-rabbitmq -- orders 3
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use futures_util::StreamExt as _;
use lapin::{
    Connection, ConnectionProperties,
    options::{BasicAckOptions, BasicConsumeOptions, QueueDeclareOptions},
    types::FieldTable,
};
use opentelemetry::{global, trace::Tracer as _};
use otel_messaging_lapin::{AmqpInstrumentation, ConsumerExt as _, DeliveryExt as _};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let queue = args.next().unwrap_or_else(|| "orders".into());
    let count: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(3);
    let url = std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());

    // Telemetry: spans over OTLP/HTTP (`OTEL_EXPORTER_OTLP_ENDPOINT`, default
    // http://localhost:4318, e.g. the Jaeger of `docker compose up`). No propagator to install:
    // W3C Trace Context + Baggage is used while none is.
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let provider =
        opentelemetry_sdk::trace::SdkTracerProvider::builder().with_batch_exporter(exporter).build();
    opentelemetry::global::set_tracer_provider(provider.clone());

    let connection = Connection::connect(&url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel
        .queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), FieldTable::default())
        .await?;
    let tracing = AmqpInstrumentation::from_uri(&url);
    let mut deliveries = channel
        .basic_consume(
            queue.as_str().into(),
            "example-worker".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?
        .stream_traced_with(&tracing)
        .take(count);

    while let Ok(Some(delivery)) = tokio::time::timeout(Duration::from_secs(30), deliveries.next()).await {
        let (_delivery, result) = delivery?
            .process(async |d| {
                global::tracer("worker")
                    .in_span("handle order", |_| println!("handling delivery {}", d.delivery_tag));
                // Ack inside the handler: the settle span nests under the process span.
                d.ack_traced_with(&tracing, BasicAckOptions::default()).await
            })
            .await;
        result?;
    }
    provider.shutdown()?;
    Ok(())
}
