//! Send traced messages: a `send {queue}` PRODUCER span per message, its context in the
//! message attributes (within SQS's 10-attribute limit).
//!
//! ```sh
//! just brokers-up    # moto_server on 127.0.0.1:5000
//! SQS_ENDPOINT_URL=http://127.0.0.1:5000 cargo run -p otel-messaging-aws-sqs --example send -- orders 3
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use otel_messaging_aws_sqs::SendMessageFluentBuilderExt as _;

async fn client() -> aws_sdk_sqs::Client {
    // Any SQS endpoint: real AWS (default credential chain) or moto at SQS_ENDPOINT_URL.
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Ok(endpoint) = std::env::var("SQS_ENDPOINT_URL") {
        loader =
            loader.endpoint_url(endpoint).region(aws_config::Region::new("us-east-1")).credentials_provider(
                aws_sdk_sqs::config::Credentials::new("testing", "testing", None, None, "static"),
            );
    }
    aws_sdk_sqs::Client::new(&loader.load().await)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let queue = args.next().unwrap_or_else(|| "orders".into());
    let count: u32 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(3);
    // Telemetry: spans over OTLP/HTTP (`OTEL_EXPORTER_OTLP_ENDPOINT`, default
    // http://localhost:4318, e.g. the Jaeger of `docker compose up`). No propagator to install:
    // W3C Trace Context + Baggage is used while none is.
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let provider =
        opentelemetry_sdk::trace::SdkTracerProvider::builder().with_batch_exporter(exporter).build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    let client = client().await;
    let url = client.create_queue().queue_name(&queue).send().await?.queue_url.unwrap_or_default();
    for i in 0..count {
        let out = client
            .send_message()
            .queue_url(&url)
            .message_body(format!(r#"{{"order":{i}}}"#))
            .send_traced()
            .await?;
        println!("sent {}", out.message_id.unwrap_or_default());
    }
    provider.shutdown()?;
    Ok(())
}
