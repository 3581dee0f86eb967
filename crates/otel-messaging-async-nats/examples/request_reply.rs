//! Request/reply in one trace: a caller's request, the responder's handling and its reply.
//!
//! ```sh
//! just brokers-up    # or any nats-server at NATS_URL (default nats://127.0.0.1:4222)
//! cargo run -p otel-messaging-async-nats --example request_reply
//! ```
//!
//! It prints the waterfall: `GET /price` → `publish prices` (the request, PRODUCER, until the
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
    // A global tracer provider (spans kept in memory for the waterfall) and the W3C propagator.
    let telemetry = otel_messaging::testing::DemoTelemetry::install();
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

    println!("{}", telemetry.waterfall());
    telemetry.shutdown()?;
    Ok(())
}
