//! A traced subscription in a queue group: each message's `process {subject}` CONSUMER span is
//! the child of the publisher's span (and linked to it), with the queue group as
//! `messaging.consumer.group.name`.
//!
//! ```sh
//! just brokers-up
//! cargo run -p otel-messaging-async-nats --example subscribe-nats -- orders 3   # then publish-nats
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use futures_util::StreamExt as _;
use otel_messaging_async_nats::{NatsInstrumentation, SubscriberExt as _};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let subject = args.next().unwrap_or_else(|| "orders".into());
    let count: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(3);
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    // Telemetry: spans over OTLP/HTTP (`OTEL_EXPORTER_OTLP_ENDPOINT`, default
    // http://localhost:4318, e.g. the Jaeger of `docker compose up`). No propagator to install:
    // W3C Trace Context + Baggage is used while none is.
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let provider =
        opentelemetry_sdk::trace::SdkTracerProvider::builder().with_batch_exporter(exporter).build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    let client = async_nats::connect(&url).await?;
    let tracing = NatsInstrumentation::from_url(&url).with_queue_group("workers");
    let subscriber = client.queue_subscribe(subject, "workers".into()).await?;
    let mut messages = subscriber.stream_traced_with(&tracing).take(count);
    while let Some(message) = messages.next().await {
        let (_, result) = message
            .process(async |m| {
                println!("{}: {}", m.subject, String::from_utf8_lossy(&m.payload));
                Ok::<_, anyhow::Error>(())
            })
            .await;
        result?;
    }
    provider.shutdown()?;
    Ok(())
}
