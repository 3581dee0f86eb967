//! A consumer-group worker: reads entries with `XREADGROUP` (one `receive` span linking them),
//! processes each inside a `process {stream}` span that continues the producer's trace, and acks it
//! (`ack {stream}` settle span under the process span).
//!
//! ```sh
//! cargo run -p otel-messaging-redis --example stream_producer -- orders 3
//! cargo run -p otel-messaging-redis --example stream_worker -- orders
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use opentelemetry::global;
use opentelemetry::trace::Tracer as _;
use otel_messaging_redis::{RedisInstrumentation, StreamEntryExt as _, StreamsConsumerExt as _};
use redis::{AsyncCommands as _, streams::StreamReadOptions};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let stream = std::env::args().nth(1).unwrap_or_else(|| "orders".into());
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
    // Create the group at the start of the stream; an existing group (BUSYGROUP) is fine.
    let created: redis::RedisResult<()> = conn.xgroup_create_mkstream(&stream, "workers", "0").await;
    if let Err(e) = created {
        anyhow::ensure!(e.code() == Some("BUSYGROUP"), e);
    }

    let options = StreamReadOptions::default().group("workers", "worker-1").count(10).block(2000);
    let reply = conn.xread_options_traced_with(&tracing, &[&stream], &[">"], &options).await?;
    for key in reply.keys {
        for entry in key.ids {
            let (_entry, result) = entry
                .start_process_with(&tracing)
                .process(async |e| {
                    global::tracer("worker").in_span("handle order", |_| println!("handling {}", e.id));
                    conn.clone().xack_traced_with(&tracing, &key.key, "workers", &[&e.id]).await
                })
                .await;
            result?;
        }
    }
    provider.shutdown()?;
    Ok(())
}
