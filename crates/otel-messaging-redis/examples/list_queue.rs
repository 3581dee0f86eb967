//! A work queue on a Redis list with the opt-in envelope: `RPUSH` wraps the payload with the trace
//! context, `BLMOVE` (the reliable-queue pattern) unwraps it and starts the process span.
//! A plain payload pushed by another producer is delivered unchanged, as a new trace.
//!
//! ```sh
//! cargo run -p otel-messaging-redis --example list_queue
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use opentelemetry::global;
use opentelemetry::trace::{FutureExt as _, TraceContextExt as _, Tracer as _};
use otel_messaging_redis::{QueueConsumerExt as _, QueueExt as _, RedisInstrumentation};
use redis::AsyncCommands as _;

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
    // Blocking pops wait longer than redis-rs's default response timeout (seconds vs 500 ms):
    // give the connection that blocks a timeout longer than the pop's own.
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(std::time::Duration::from_secs(10)));
    let mut conn = client.get_multiplexed_async_connection_with_config(&config).await?;
    let tracing = RedisInstrumentation::from_client(&client);
    let (queue, processing) = ("example:jobs", "example:jobs:processing");

    let tracer = global::tracer("app");
    let request = opentelemetry::Context::current_with_span(tracer.start("POST /jobs"));
    async { conn.rpush_traced_with(&tracing, queue, b"resize image 42").await }
        .with_context(request.clone())
        .await?;
    request.span().end();
    let _: usize = conn.rpush(queue, b"legacy producer, no envelope").await?;

    while let Some(job) = conn
        .blmove_traced_with(&tracing, queue, processing, redis::Direction::Left, redis::Direction::Right, 1.0)
        .await?
    {
        let (job, result) = job
            .process(async |j| {
                println!("job: {}", String::from_utf8_lossy(&j.payload));
                anyhow::Ok(())
            })
            .await;
        result?;
        let _: usize = conn.lrem(processing, 1, job.payload).await.unwrap_or(0);
    }
    provider.shutdown()?;
    Ok(())
}
