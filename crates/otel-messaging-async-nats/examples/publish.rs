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
    // A global tracer provider (spans kept in memory) and the W3C propagator: install a propagator,
    // the opentelemetry-rust default one is a no-op.
    let telemetry = otel_messaging::testing::DemoTelemetry::install();
    let client = async_nats::connect(&url).await?;
    let tracing = NatsInstrumentation::from_url(&url);
    for i in 0..count {
        client.publish_traced_with(&tracing, subject.clone(), format!(r#"{{"order":{i}}}"#).into()).await?;
    }
    client.flush().await?;
    println!("{}", telemetry.waterfall());
    telemetry.shutdown()?;
    Ok(())
}
