//! Fan-out: one traced publish to an SNS topic reaches two SQS queues — one subscribed with raw
//! message delivery, one without (the context then travels in the notification envelope) — and
//! each queue's worker processes the message in the publisher's trace. Prints one trace id per
//! processed message: the same for both. Spans go over OTLP/HTTP (`OTEL_EXPORTER_OTLP_ENDPOINT`,
//! default `http://localhost:4318`).
//!
//! ```sh
//! just brokers-up    # moto_server (SQS and SNS) on 127.0.0.1:5000
//! AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing \
//!   AWS_SECRET_ACCESS_KEY=testing cargo run -p otel-messaging-aws-sns --example fan_out
//! ```

use opentelemetry::trace::{TraceContextExt as _, Tracer as _};
use otel_messaging_aws_sns::PublishFluentBuilderExt as _;
use otel_messaging_aws_sqs::{MessageExt as _, ReceiveMessageFluentBuilderExt as _};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let provider =
        opentelemetry_sdk::trace::SdkTracerProvider::builder().with_batch_exporter(exporter).build();
    opentelemetry::global::set_tracer_provider(provider.clone());

    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let (sns, sqs) = (aws_sdk_sns::Client::new(&config), aws_sdk_sqs::Client::new(&config));
    let topic_arn = sns.create_topic().name("order-events").send().await?.topic_arn.unwrap_or_default();
    let mut queues = Vec::new();
    for (name, raw) in [("billing", "true"), ("shipping", "false")] {
        let url = sqs.create_queue().queue_name(name).send().await?.queue_url.unwrap_or_default();
        let arn = sqs
            .get_queue_attributes()
            .queue_url(&url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
            .send()
            .await?
            .attributes
            .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn).cloned())
            .unwrap_or_default();
        sns.subscribe()
            .topic_arn(&topic_arn)
            .protocol("sqs")
            .endpoint(arn)
            .attributes("RawMessageDelivery", raw)
            .send()
            .await?;
        queues.push(url);
    }

    // The request that publishes: its span is the root of the trace.
    let tracer = opentelemetry::global::tracer("orders-api");
    let request = opentelemetry::Context::current_with_span(tracer.start("POST /orders"));
    let _guard = request.clone().attach();
    sns.publish().topic_arn(&topic_arn).message(r#"{"order":42}"#).send_traced().await?;
    drop(_guard);
    request.span().end();

    // Each queue's worker: a traced receive, then the handler inside the message's process span.
    for url in &queues {
        let received = sqs.receive_message().queue_url(url).wait_time_seconds(5).send_traced().await?;
        for message in received.messages.unwrap_or_default() {
            message
                .process_traced(async {
                    let trace = opentelemetry::Context::current().span().span_context().trace_id();
                    println!("{url}: processed in trace {trace}");
                    Ok::<(), std::io::Error>(())
                })
                .await?;
        }
    }
    provider.shutdown()?;
    Ok(())
}
