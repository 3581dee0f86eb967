//! Publish traced messages: each `publish {destination}` PRODUCER span ends at the broker's
//! confirm (the channel is put in confirm mode) and its context travels in the `headers` table.
//!
//! ```sh
//! just brokers-up    # or any RabbitMQ at AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/%2f)
//! cargo run -p otel-messaging-lapin --example publish -- orders 3
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions},
    types::FieldTable,
};
use otel_messaging_lapin::{AmqpInstrumentation, ChannelExt as _};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let queue = args.next().unwrap_or_else(|| "orders".into());
    let count: u32 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(3);
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
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    channel
        .queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), FieldTable::default())
        .await?;
    let tracing = AmqpInstrumentation::from_uri(&url);

    for i in 0..count {
        let body = format!(r#"{{"order":{i}}}"#);
        let confirmation = channel
            .basic_publish_traced_with(
                &tracing,
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default(),
            )
            .await?
            .await?;
        println!("published order {i}: ack = {}", confirmation.is_ack());
    }
    provider.shutdown()?;
    Ok(())
}
