//! A JetStream worker: publish (the span ends at the PubAck), a pull consumer, process, ack — one
//! trace, with the stream sequence, delivery count and queue wait on the process span.
//!
//! ```sh
//! just brokers-up    # or any nats-server with JetStream (`-js`) at NATS_URL
//! cargo run -p otel-messaging-async-nats --example jetstream_worker
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use async_nats::jetstream::{self, consumer::pull, stream};
use futures_util::StreamExt as _;
use opentelemetry::{
    Context, global,
    trace::{FutureExt as _, TraceContextExt as _, Tracer as _},
};
use otel_messaging_async_nats::{JetStreamExt as _, JetStreamMessageExt as _, MessageExt as _};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    // Telemetry: spans over OTLP/HTTP (`OTEL_EXPORTER_OTLP_ENDPOINT`, default
    // http://localhost:4318, e.g. the Jaeger of `docker compose up`). No propagator to install:
    // W3C Trace Context + Baggage is used while none is.
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let provider =
        opentelemetry_sdk::trace::SdkTracerProvider::builder().with_batch_exporter(exporter).build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    let js = jetstream::new(async_nats::connect(&url).await?);
    let name = format!("ORDERS_{}", std::process::id());
    let subject = format!("{name}.created");
    let stream = js
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            ..Default::default()
        })
        .await?;

    let request = Context::new().with_span(global::tracer("shop").start("POST /orders"));
    let ack = async { anyhow::Ok(js.publish_traced(subject.clone(), "order 42".into()).await?.await?) }
        .with_context(request.clone())
        .await?;
    request.span().end();
    println!("stored as sequence {} in {}", ack.sequence, ack.stream);

    let consumer = stream
        .create_consumer(pull::Config { durable_name: Some("workers".into()), ..Default::default() })
        .await?;
    let mut messages = consumer.messages().await?;
    let message = messages.next().await.expect("a message")?;
    message
        .process_traced(async {
            println!("processing {:?}", message.payload);
            Ok::<_, anyhow::Error>(())
        })
        .await?;
    message.ack_traced().await.map_err(|e| anyhow::anyhow!(e))?;
    js.delete_stream(&name).await?;

    provider.shutdown()?;
    Ok(())
}
