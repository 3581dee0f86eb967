//! A long-poll worker: receives (one `receive {queue}` span linking the batch — it asks for the
//! context attributes itself), processes each message in a `process {queue}` span continuing the
//! sender's trace, and deletes it (`delete {queue}` settle span under the process span).
//!
//! ```sh
//! SQS_ENDPOINT_URL=http://127.0.0.1:5000 cargo run -p otel-messaging-aws-sqs --example send -- orders 3
//! SQS_ENDPOINT_URL=http://127.0.0.1:5000 cargo run -p otel-messaging-aws-sqs --example receive -- orders
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use opentelemetry::{global, trace::Tracer as _};
use otel_messaging_aws_sqs::{
    DeleteMessageFluentBuilderExt as _, MessageExt as _, ReceiveMessageFluentBuilderExt as _,
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
    let queue = std::env::args().nth(1).unwrap_or_else(|| "orders".into());
    // Telemetry: spans over OTLP/HTTP (`OTEL_EXPORTER_OTLP_ENDPOINT`, default
    // http://localhost:4318, e.g. the Jaeger of `docker compose up`). No propagator to install:
    // W3C Trace Context + Baggage is used while none is.
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let provider =
        opentelemetry_sdk::trace::SdkTracerProvider::builder().with_batch_exporter(exporter).build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    let client = client().await;
    let url = client.get_queue_url().queue_name(&queue).send().await?.queue_url.unwrap_or_default();

    // Long-poll until a poll comes back empty.
    loop {
        let out = client
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(2)
            .send_traced()
            .await?;
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            let (_message, result) = message
                .start_process()
                .process(async |m| {
                    global::tracer("worker")
                        .in_span("handle order", |_| println!("handling {}", m.body().unwrap_or_default()));
                    client
                        .delete_message()
                        .queue_url(&url)
                        .receipt_handle(m.receipt_handle().unwrap_or_default())
                        .send_traced()
                        .await
                })
                .await;
            result?;
        }
    }
    provider.shutdown()?;
    Ok(())
}
