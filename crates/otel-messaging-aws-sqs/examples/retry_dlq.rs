//! Retry and dead-letter lineage: a message fails, is re-sent to a retry queue, fails again, is
//! re-sent to a dead-letter queue and handled there — one trace, each re-send linking the failed
//! attempt and the original send (`otel_messaging::retry`).
//!
//! The receive asks for `traceparent` and the lineage fields, so that the message the handler
//! gets still carries them for `Retry::of` (the traced receive asks for them anyway for its spans,
//! but removes what the caller did not ask for).
//!
//! ```sh
//! just brokers-up    # moto_server on 127.0.0.1:5000
//! SQS_ENDPOINT_URL=http://127.0.0.1:5000 cargo run -p otel-messaging-aws-sqs --example retry_dlq-sqs
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;

use opentelemetry::{
    Context, global,
    trace::{FutureExt as _, TraceContextExt as _, Tracer as _},
};
use otel_messaging::retry::{self, Retry};
use otel_messaging_aws_sqs::{
    DeleteMessageFluentBuilderExt as _, MessageAttributesExtractor, MessageAttributesInjector,
    MessageExt as _, ReceiveMessageFluentBuilderExt as _, SendMessageFluentBuilderExt as _,
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
    let suffix = std::process::id();
    let mut urls = Vec::new();
    for name in
        [format!("payments-{suffix}"), format!("payments-retry-{suffix}"), format!("payments-dlq-{suffix}")]
    {
        urls.push(client.create_queue().queue_name(name).send().await?.queue_url.unwrap_or_default());
    }

    let request = Context::new().with_span(global::tracer("shop").start("POST /payments"));
    async { client.send_message().queue_url(&urls[0]).message_body("payment 42").send_traced().await }
        .with_context(request.clone())
        .await?;
    request.span().end();

    for (from, to) in [(&urls[0], Some(&urls[1])), (&urls[1], Some(&urls[2])), (&urls[2], None)] {
        let mut receive = client.receive_message().queue_url(from).wait_time_seconds(1);
        for field in ["traceparent"].into_iter().chain(retry::FIELDS) {
            receive = receive.message_attribute_names(field);
        }
        let out = receive.send_traced().await?;
        let message = out.messages.unwrap_or_default().into_iter().next().expect("a message");
        let (message, result) = message
            .start_process()
            .process(async |m| {
                let Some(to) = to else { return Ok(()) };
                // Failed: re-send to the next queue with the lineage, from inside the handler.
                let empty = HashMap::new();
                let failed = m.message_attributes.as_ref().unwrap_or(&empty);
                let retry = Retry::of(&MessageAttributesExtractor(failed), &Context::current());
                let mut attributes = HashMap::new();
                retry.inject(&mut MessageAttributesInjector(&mut attributes));
                let send = client.send_message().queue_url(to).message_body("payment 42");
                send.set_message_attributes(Some(attributes)).send_traced().await?;
                Err(anyhow::anyhow!("card declined (attempt {})", retry.attempt()))
            })
            .await;
        let handle = message.receipt_handle.unwrap_or_default();
        client.delete_message().queue_url(from).receipt_handle(handle).send_traced().await?;
        match result {
            Ok(()) => println!("{from}: parked for a human\n"),
            Err(e) => println!("{from}: {e}"),
        }
    }
    provider.shutdown()?;
    Ok(())
}
