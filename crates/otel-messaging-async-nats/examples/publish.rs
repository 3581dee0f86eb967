//! Publish traced messages: each `publish {subject}` PRODUCER span's context travels in the NATS
//! headers.
//!
//! ```sh
//! just brokers-up    # or any nats-server at NATS_URL (default nats://127.0.0.1:4222)
//! cargo run -p otel-messaging-async-nats --example publish-nats -- orders 3
//! ```
//!
//! Run `subscribe-nats` first (core NATS keeps nothing for absent subscribers).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use otel_messaging_async_nats::{ClientExt as _, NatsInstrumentation};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let subject = args.next().unwrap_or_else(|| "orders".into());
    let count: u32 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(3);
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    // Telemetry: spans over OTLP/HTTP (`OTEL_EXPORTER_OTLP_ENDPOINT`, default
    // http://localhost:4318, e.g. the Jaeger of `docker compose up`). No propagator to install:
    // W3C Trace Context + Baggage is used while none is.
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let provider =
        opentelemetry_sdk::trace::SdkTracerProvider::builder().with_batch_exporter(exporter).build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    let client = async_nats::connect(&url).await?;
    let tracing = NatsInstrumentation::from_url(&url);
    for i in 0..count {
        client.publish_traced_with(&tracing, subject.clone(), format!(r#"{{"order":{i}}}"#).into()).await?;
    }
    client.flush().await?;
    provider.shutdown()?;
    Ok(())
}
