//! Lambda (feature `lambda`): the `SqsEvent` an SQS event-source mapping hands a function,
//! processed one record at a time, each in its own process span, with partial batch failures.
//!
//! Why a module beside the standard anatomy: a Lambda function does not receive (the Lambda
//! service polls the queue and invokes it with a batch), so this is neither `consumer.rs`'s
//! receive nor its `process_traced`, and it exists only with the `lambda` feature. A feature of
//! this crate rather than a crate of its own: the records are SQS messages, read by the same
//! carrier (message attributes, the SNS envelope, `AWSTraceHeader`) and described by the same
//! semantic conventions (`aws_sqs`), and a function that handles SQS events usually sends to SQS
//! too.

use std::fmt;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};

use crate::{
    attributes::SqsRecordView,
    carrier::{Attributes, ReceivedMessageExtractor},
    config::SqsInstrumentation,
};

/// Runs `handler` on each record of `event`, in order, each inside a `process {queue}` CONSUMER
/// span, and returns the [`SqsBatchResponse`] that reports the records whose handler failed
/// (`batchItemFailures`, by message id), for an event-source mapping with
/// `ReportBatchItemFailures` on: only those are delivered again.
///
/// Each span takes the record's creation context from its message attributes, else from an SNS
/// notification envelope in the body — as parent and link under the instrumenter's process-parent
/// policy — else from the `AWSTraceHeader` system attribute (X-Ray), which is a link only, as
/// semconv `faas/aws-lambda.md` says (the span's parent is then the current span, or none), and
/// records `messaging.message.id`, the queue, its URL and endpoint (from `eventSourceARN`), the
/// queue wait from `SentTimestamp` and the delivery count. A failed handler's span has status `Error` and
/// `error.type` = the error's type name; a record without a message id that fails is reported with
/// an empty identifier, which makes Lambda retry the whole batch (nothing is lost). Uses
/// [`SqsInstrumentation::new`].
///
/// # Examples
///
/// ```no_run
/// use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
///
/// async fn function(event: SqsEvent) -> SqsBatchResponse {
///     otel_messaging_aws_sqs::lambda::process_sqs_event(&event, async |record| {
///         let order = record.body.as_deref().unwrap_or_default();
///         if order.is_empty() { Err("empty order") } else { Ok(()) }
///     })
///     .await
/// }
/// ```
pub async fn process_sqs_event<F, E>(event: &SqsEvent, handler: F) -> SqsBatchResponse
where
    F: AsyncFnMut(&SqsMessage) -> Result<(), E>,
    E: fmt::Display,
{
    process_sqs_event_with(SqsInstrumentation::shared(), event, handler).await
}

/// [`process_sqs_event`] with an explicit [`SqsInstrumentation`].
pub async fn process_sqs_event_with<F, E>(
    instrumentation: &SqsInstrumentation,
    event: &SqsEvent,
    mut handler: F,
) -> SqsBatchResponse
where
    F: AsyncFnMut(&SqsMessage) -> Result<(), E>,
    E: fmt::Display,
{
    let mut response = SqsBatchResponse::default();
    for record in &event.records {
        let operation = start(instrumentation, record);
        if operation.run(handler(record)).await.is_err() {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = record.message_id.clone().unwrap_or_default();
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// Starts the process operation of one record inside the current context.
fn start(instrumentation: &SqsInstrumentation, record: &SqsMessage) -> otel_messaging::Operation {
    let extractor = ReceivedMessageExtractor::from_parts(
        Attributes::Lambda(&record.message_attributes),
        record.body.as_deref(),
        record.attributes.get("AWSTraceHeader").map(String::as_str),
    );
    let view = SqsRecordView::new(record);
    if extractor.context_from_xray_only() {
        // semconv faas/aws-lambda.md: the X-Ray context of an SQS record is a link, not a parent.
        let linked = instrumentation.instrumenter.with_process_parent(otel_messaging::ProcessParent::Link);
        return linked.operation(&view).with_delivered_message(&extractor).start();
    }
    instrumentation.instrumenter.operation(&view).with_delivered_message(&extractor).start()
}
