//! Retry and dead-letter lineage on Redis streams: a task fails, is re-added to a retry stream,
//! fails again, is re-added to a dead-letter stream and handled there — one trace, each re-add
//! linking the failed attempt and the original `XADD` (`otel_messaging::retry`).
//!
//! ```sh
//! just brokers-up    # or any Redis at REDIS_URL (default redis://127.0.0.1:6379/)
//! cargo run -p otel-messaging-redis --example retry_dlq-redis
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use opentelemetry::{
    Context, global,
    trace::{FutureExt as _, TraceContextExt as _, Tracer as _},
};
use otel_messaging::retry::Retry;
use otel_messaging_redis::{
    FieldsInjector, StreamEntryExt as _, StreamFieldsExtractor, StreamsConsumerExt as _, StreamsExt as _,
};
use redis::{AsyncCommands as _, streams::StreamReadOptions};

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
    let mut conn = client.get_multiplexed_async_connection().await?;
    let suffix = std::process::id();
    let streams = [format!("tasks-{suffix}"), format!("tasks-retry-{suffix}"), format!("tasks-dlq-{suffix}")];
    for stream in &streams {
        let () = conn.xgroup_create_mkstream(stream, "workers", "$").await?;
    }

    let request = Context::new().with_span(global::tracer("shop").start("POST /tasks"));
    let _: String = async { conn.clone().xadd_traced(&streams[0], "*", &[("task", "42")]).await }
        .with_context(request.clone())
        .await?;
    request.span().end();

    let options = StreamReadOptions::default().group("workers", "w1").count(1);
    for (from, to) in
        [(&streams[0], Some(&streams[1])), (&streams[1], Some(&streams[2])), (&streams[2], None)]
    {
        let reply = conn.xread_options_traced(&[from], &[">"], &options).await?;
        let entry = reply.keys.into_iter().flat_map(|k| k.ids).next().expect("an entry");
        let (entry, result) = entry
            .start_process()
            .process(async |e| {
                let Some(to) = to else { return Ok(()) };
                // Failed: re-add to the next stream with the lineage, from inside the handler.
                let retry = Retry::of(&StreamFieldsExtractor(&e.map), &Context::current());
                let mut fields = vec![("task".to_owned(), "42".to_owned())];
                retry.inject(&mut FieldsInjector(&mut fields));
                let _: String = conn.clone().xadd_traced(to, "*", &fields).await?;
                Err(anyhow::anyhow!("worker out of memory (attempt {})", retry.attempt()))
            })
            .await;
        let _: usize = conn.xack(from, "workers", &[&entry.id]).await?;
        match result {
            Ok(()) => println!("{from}: parked for a human\n"),
            Err(e) => println!("{from}: {e}"),
        }
    }
    for stream in &streams {
        let _: usize = conn.del(stream).await?;
    }
    provider.shutdown()?;
    Ok(())
}
