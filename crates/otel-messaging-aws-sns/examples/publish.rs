//! Publish traced messages to an SNS topic: a `publish {topic}` PRODUCER span per message, its
//! context in the message attributes, exported over OTLP/HTTP (`OTEL_EXPORTER_OTLP_ENDPOINT`,
//! default `http://localhost:4318`, e.g. the Jaeger of `docker compose up`).
//!
//! ```sh
//! just brokers-up    # moto_server (SQS and SNS) on 127.0.0.1:5000
//! AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=testing \
//!   AWS_SECRET_ACCESS_KEY=testing cargo run -p otel-messaging-aws-sns --example publish -- orders 3
//! ```

use otel_messaging_aws_sns::PublishFluentBuilderExt as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let topic = args.next().unwrap_or_else(|| "orders".into());
    let count: u32 = args.next().map(|n| n.parse()).transpose()?.unwrap_or(3);

    // Telemetry: spans over OTLP/HTTP. No propagator to install (W3C Trace Context + Baggage).
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let provider =
        opentelemetry_sdk::trace::SdkTracerProvider::builder().with_batch_exporter(exporter).build();
    opentelemetry::global::set_tracer_provider(provider.clone());

    // Any SNS endpoint: real AWS, or moto through the standard AWS_ENDPOINT_URL.
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let sns = aws_sdk_sns::Client::new(&config);
    let topic_arn = sns.create_topic().name(&topic).send().await?.topic_arn.unwrap_or_default();
    for i in 0..count {
        let out =
            sns.publish().topic_arn(&topic_arn).message(format!(r#"{{"order":{i}}}"#)).send_traced().await?;
        println!("published {}", out.message_id.unwrap_or_default());
    }
    provider.shutdown()?;
    Ok(())
}
