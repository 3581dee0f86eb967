//! Add traced entries to a Redis stream: each `send {stream}` PRODUCER span writes its context as
//! entry fields (`traceparent`, `tracestate`, `baggage`) and records the entry id.
//!
//! ```sh
//! just brokers-up     # or any Redis at REDIS_URL (default redis://127.0.0.1:6379/)
//! cargo run -p otel-messaging-redis --example stream_producer -- orders 3
//! cargo run -p otel-messaging-redis --example stream_worker -- orders
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use otel_messaging_redis::{RedisInstrumentation, StreamsExt as _};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let stream = args.next().unwrap_or_else(|| "orders".into());
    let count: u32 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(3);
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());

    // Telemetry: spans over OTLP/HTTP (`OTEL_EXPORTER_OTLP_ENDPOINT`, default
    // http://localhost:4318, e.g. the Jaeger of `docker compose up`). No propagator to install:
    // W3C Trace Context + Baggage is used while none is.
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let provider =
        opentelemetry_sdk::trace::SdkTracerProvider::builder().with_batch_exporter(exporter).build();
    opentelemetry::global::set_tracer_provider(provider.clone());

    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let tracing = RedisInstrumentation::from_client(&client);
    for i in 0..count {
        let id: String = conn.xadd_traced_with(&tracing, &stream, "*", &[("order", i.to_string())]).await?;
        println!("added entry {id}");
    }
    provider.shutdown()?;
    Ok(())
}
