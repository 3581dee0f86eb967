//! Request/reply in one trace: a caller's request, the responder's handling and its reply.
//!
//! ```sh
//! just brokers-up    # or any nats-server at NATS_URL (default nats://127.0.0.1:4222)
//! cargo run -p otel-messaging-async-nats --example request_reply
//! ```
//!
//! The trace (over OTLP): `GET /price` → `publish prices` (the request, PRODUCER, until the
//! reply) → `process prices` (the responder, CONSUMER) → `publish` (the reply to the request's
//! inbox, a temporary destination).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use futures_util::StreamExt as _;
use opentelemetry::{
    Context, global,
    trace::{FutureExt as _, TraceContextExt as _, Tracer as _},
};
use otel_messaging_async_nats::{ClientExt as _, MessageExt as _};

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
    let client = async_nats::connect(&url).await?;

    // The responder: handles one request and replies from inside its process span.
    let mut requests = client.subscribe("prices").await?;
    client.flush().await?;
    let responder = {
        let client = client.clone();
        tokio::spawn(async move {
            let request = requests.next().await.expect("a request");
            let reply = request.reply.clone().expect("a reply subject");
            request.process_traced(async { client.publish_traced(reply, "42.00".into()).await }).await
        })
    };

    let call = Context::new().with_span(global::tracer("shop").start("GET /price"));
    let reply =
        async { client.request_traced("prices", "sku-1".into()).await }.with_context(call.clone()).await?;
    call.span().end();
    responder.await??;
    println!("price: {}\n", String::from_utf8_lossy(&reply.payload));

    provider.shutdown()?;
    Ok(())
}
