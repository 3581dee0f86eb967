//! Lambda (feature `lambda`): the `SnsEvent` an SNS subscription hands a function, each record
//! processed in its own process span, in the publisher's trace.
//!
//! Why a module beside the standard anatomy: SNS has no consumer API (it pushes), so this crate
//! has no `consumer.rs`; a Lambda function subscribed to a topic is the one consumer that gets
//! SNS's own message shape, and it exists only with the `lambda` feature.

use std::fmt;

use aws_lambda_events::sns::{SnsEvent, SnsRecord};

use crate::{attributes::SnsRecordView, carrier::LambdaAttributesExtractor, config::SnsInstrumentation};

/// Runs `handler` on each record of `event` (SNS invokes with one), in order, each inside a
/// `process {topic}` CONSUMER span that takes the record's creation context — from its message
/// attributes, which a traced publish wrote — as parent and link under the instrumenter's
/// process-parent policy (inside an invocation span: a link, as semconv `faas/aws-lambda.md`
/// asks), with `messaging.message.id`, the topic and `aws.sns.topic.arn`, and the queue wait from
/// the notification's `Timestamp`. Stops at the first record whose handler fails and returns its
/// error (span status `Error`, `error.type` = the error's type name), so that Lambda retries the
/// invocation. Uses [`SnsInstrumentation::new`].
///
/// # Errors
///
/// The first error `handler` returns, unchanged.
///
/// # Examples
///
/// ```no_run
/// use aws_lambda_events::sns::SnsEvent;
///
/// async fn function(event: SnsEvent) -> Result<(), String> {
///     otel_messaging_aws_sns::lambda::process_sns_event(&event, async |record| {
///         println!("{}", record.sns.message);
///         Ok::<(), String>(())
///     })
///     .await
/// }
/// ```
pub async fn process_sns_event<F, E>(event: &SnsEvent, handler: F) -> Result<(), E>
where
    F: AsyncFnMut(&SnsRecord) -> Result<(), E>,
    E: fmt::Display,
{
    process_sns_event_with(SnsInstrumentation::shared(), event, handler).await
}

/// [`process_sns_event`] with an explicit [`SnsInstrumentation`].
///
/// # Errors
///
/// The first error `handler` returns, unchanged.
pub async fn process_sns_event_with<F, E>(
    instrumentation: &SnsInstrumentation,
    event: &SnsEvent,
    mut handler: F,
) -> Result<(), E>
where
    F: AsyncFnMut(&SnsRecord) -> Result<(), E>,
    E: fmt::Display,
{
    for record in &event.records {
        let view = SnsRecordView { message: &record.sns };
        let operation = instrumentation
            .instrumenter
            .operation(&view)
            .with_delivered_message(&LambdaAttributesExtractor(&record.sns.message_attributes))
            .start();
        operation.run(handler(record)).await?;
    }
    Ok(())
}
