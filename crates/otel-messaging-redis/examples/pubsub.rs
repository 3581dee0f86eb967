//! Pub/sub with the opt-in envelope: `PUBLISH` wraps the payload with the trace context; the
//! subscriber unwraps it and processes the message inside the publisher's trace.
//!
//! ```sh
//! cargo run -p otel-messaging-redis --example pubsub
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use otel_messaging_redis::{MsgExt as _, QueueExt as _, RedisInstrumentation};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    // Telemetry: spans over OTLP/HTTP (`OTEL_EXPORTER_OTLP_ENDPOINT`, default
    // http://localhost:4318, e.g. the Jaeger of `docker compose up`). No propagator to install:
    // W3C Trace Context + Baggage is used while none is.
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let provider =
        opentelemetry_sdk::trace::SdkTracerProvider::builder().with_batch_exporter(exporter).build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    let client = redis::Client::open(url)?;
    let tracing = RedisInstrumentation::from_client(&client);

    let mut subscriber = client.get_async_pubsub().await?;
    subscriber.subscribe("example:events").await?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let receivers = conn.publish_traced_with(&tracing, "example:events", b"order shipped").await?;
    println!("published to {receivers} subscriber(s)");

    let message = tokio::time::timeout(Duration::from_secs(5), subscriber.on_message().next())
        .await
        .context("no message in 5 s")?
        .context("subscription closed")?;
    let (event, result) = message
        .start_process_with(&tracing)
        .process(async |m| {
            println!("event on {}: {}", m.source, String::from_utf8_lossy(&m.payload));
            anyhow::Ok(())
        })
        .await;
    result?;
    drop(event);
    provider.shutdown()?;
    Ok(())
}
