//! A Lambda function fed by an SQS event-source mapping (with `ReportBatchItemFailures`): each
//! record is handled inside its own `process {queue}` span, in the trace of the request that sent
//! it, and the records whose handler failed are reported back for redelivery. Spans go over
//! OTLP/HTTP (`OTEL_EXPORTER_OTLP_ENDPOINT`; in Lambda, typically the ADOT collector layer on
//! `localhost:4318`).
//!
//! ```sh
//! cargo lambda build --release --example lambda_worker --features lambda   # then deploy
//! ```

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let provider =
        opentelemetry_sdk::trace::SdkTracerProvider::builder().with_batch_exporter(exporter).build();
    opentelemetry::global::set_tracer_provider(provider.clone());

    let provider_in_handler = provider.clone();
    lambda_runtime::run(service_fn(
        async |event: LambdaEvent<SqsEvent>| -> Result<SqsBatchResponse, Error> {
            let response =
                otel_messaging_aws_sqs::lambda::process_sqs_event(&event.payload, async |record| {
                    let order = record.body.as_deref().unwrap_or_default();
                    if order.trim().is_empty() { Err("empty order") } else { Ok(()) }
                })
                .await;
            // A Lambda environment may be frozen right after the response: export the spans first.
            let _ = provider_in_handler.force_flush();
            Ok(response)
        },
    ))
    .await?;
    provider.shutdown()?;
    Ok(())
}
