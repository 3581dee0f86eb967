//! Batch send: one `create {queue}` PRODUCER span per entry (each entry carries its own creation
//! context) and one `send {queue}` CLIENT span linking them; then each received message continues
//! its own entry's trace.
//!
//! ```sh
//! SQS_ENDPOINT_URL=http://127.0.0.1:5000 cargo run -p otel-messaging-aws-sqs --example batch
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use otel_messaging_aws_sqs::{
    MessageExt as _, ReceiveMessageFluentBuilderExt as _, SendMessageBatchFluentBuilderExt as _,
};

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
    // Telemetry: spans over OTLP/HTTP (`OTEL_EXPORTER_OTLP_ENDPOINT`, default
    // http://localhost:4318, e.g. the Jaeger of `docker compose up`). No propagator to install:
    // W3C Trace Context + Baggage is used while none is.
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let provider =
        opentelemetry_sdk::trace::SdkTracerProvider::builder().with_batch_exporter(exporter).build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    let client = client().await;
    let url = client.create_queue().queue_name("example-batch").send().await?.queue_url.unwrap_or_default();
    let entries = (0..3)
        .map(|i| {
            SendMessageBatchRequestEntry::builder()
                .id(format!("e{i}"))
                .message_body(format!("item {i}"))
                .build()
        })
        .collect::<Result<Vec<_>, _>>()?;
    let out = client.send_message_batch().queue_url(&url).set_entries(Some(entries)).send_traced().await?;
    println!("{} sent, {} failed", out.successful.len(), out.failed.len());
    let received = client
        .receive_message()
        .queue_url(&url)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send_traced()
        .await?;
    for message in received.messages.unwrap_or_default() {
        let (_m, result) =
            message.start_process().process(async |m| anyhow::Ok(m.body().unwrap_or_default().len())).await;
        result?;
    }
    provider.shutdown()?;
    Ok(())
}
