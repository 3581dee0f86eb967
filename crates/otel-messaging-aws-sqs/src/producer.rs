//! Traced sends: `.send_traced()` on the `SendMessage` and `SendMessageBatch` fluent builders.
//!
//! `SendMessage` → `send {queue}` PRODUCER span, ending with the response. `SendMessageBatch` →
//! by default one `create {queue}` PRODUCER span per entry (each entry carries its own creation
//! context) plus a `send {queue}` CLIENT span linking them, with `messaging.batch.message_count`
//! (semconv v1.44 "Trace structure", batch sending); with create spans off, a single `send {queue}`
//! PRODUCER span whose context goes into every entry. The 10-attribute limit never makes a send
//! fail: the context degrades to `traceparent` alone, then to nothing
//! (`otel_messaging.context.injected = false` on the span).

use std::{collections::HashMap, future::Future};

use aws_sdk_sqs::{
    config::http::HttpResponse,
    error::{DisplayErrorContext, SdkError},
    operation::{
        RequestId as _,
        send_message::{SendMessageError, SendMessageOutput, builders::SendMessageFluentBuilder},
        send_message_batch::{
            SendMessageBatchError, SendMessageBatchOutput, builders::SendMessageBatchFluentBuilder,
        },
    },
    types::MessageAttributeValue,
};
use opentelemetry::{propagation::Extractor, trace::TraceContextExt};
use otel_messaging::{
    __private::{BatchBudget, EmptyExtractor},
    Operation, OperationType,
};

use crate::{
    attributes::{SqsView, error_type, message_id_attribute, request_id_attribute},
    carrier::{MessageAttributesExtractor, inject_within_limit, message_size},
    config::SqsInstrumentation,
};

/// `messaging.operation.name` of send spans: `send`.
pub(crate) const OPERATION_SEND: &str = "send";
/// `messaging.operation.name` of per-entry create spans: `create`.
pub(crate) const OPERATION_CREATE: &str = "create";

/// Writes `operation`'s context into `attributes` within the attribute limit and `budget` bytes;
/// records when it could not. Returns the bytes written.
fn inject(
    operation: &Operation,
    attributes: &mut HashMap<String, MessageAttributeValue>,
    budget: usize,
) -> usize {
    operation.inject_within(|fields| inject_within_limit(fields, attributes, budget))
}

/// SQS's hard ceiling for a message and for a batch's total: 1 MiB (1 048 576 bytes), whatever a
/// queue's `MaximumMessageSize`.
const SQS_HARD_LIMIT: usize = 1_048_576;

/// Bytes the context may add to a message of `native` bytes under `limit`. A message over
/// `limit` (a queue allowed more than the configured size) may still fit SQS's hard ceiling: the
/// context then stays within that ceiling, never pushing it over (reliability review L6).
fn budget(native: usize, limit: usize) -> usize {
    BatchBudget::room_under(native, limit, SQS_HARD_LIMIT)
}

/// Traced `SendMessage`.
pub trait SendMessageFluentBuilderExt:
    Sized + crate::sealed::Sealed<crate::sealed::SendMessageFluentBuilderExt>
{
    /// Sends like `.send()`, inside a `send {queue}` PRODUCER span (parent: [`otel_messaging::current_context`]
    /// when the future is first polled) whose context is written into the message attributes (a user-provided creation
    /// context is kept). `messaging.message.id` and `aws.request_id` come from the response. Uses
    /// [`SqsInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The native `SdkError`, unchanged (span status `Error`, `error.type` = the service error code).
    fn send_traced(
        self,
    ) -> impl Future<Output = Result<SendMessageOutput, SdkError<SendMessageError, HttpResponse>>> + Send
    {
        self.send_traced_with(SqsInstrumentation::shared())
    }

    /// [`send_traced`](Self::send_traced) with an explicit [`SqsInstrumentation`].
    ///
    /// # Errors
    ///
    /// The native `SdkError`, unchanged.
    fn send_traced_with(
        self,
        instrumentation: &SqsInstrumentation,
    ) -> impl Future<Output = Result<SendMessageOutput, SdkError<SendMessageError, HttpResponse>>> + Send;
}

impl crate::sealed::Sealed<crate::sealed::SendMessageFluentBuilderExt> for SendMessageFluentBuilder {}
impl SendMessageFluentBuilderExt for SendMessageFluentBuilder {
    #[allow(clippy::manual_async_fn)] // `impl Future + Send` as the trait declares
    fn send_traced_with(
        self,
        instrumentation: &SqsInstrumentation,
    ) -> impl Future<Output = Result<SendMessageOutput, SdkError<SendMessageError, HttpResponse>>> + Send
    {
        async move {
            let parent = otel_messaging::current_context();
            let url = self.get_queue_url().clone().unwrap_or_default();
            let had_attributes = self.get_message_attributes().is_some();
            let mut attributes = self.get_message_attributes().clone().unwrap_or_default();
            let mut view = SqsView::new(OperationType::Send, OPERATION_SEND, &url);
            view.body_size = self.get_message_body().as_ref().map(|b| b.len() as u64);
            let operation = instrumentation
                .instrumenter
                .operation(&view)
                .with_parent(&parent)
                .with_outgoing_message(&MessageAttributesExtractor(&attributes))
                .start();
            let native =
                message_size(self.get_message_body().as_deref().unwrap_or_default(), Some(&attributes));
            inject(&operation, &mut attributes, budget(native, instrumentation.max_message_bytes()));
            let builder = if had_attributes || !attributes.is_empty() {
                self.set_message_attributes(Some(attributes))
            } else {
                self
            };
            let result = builder.send().await;
            match &result {
                Ok(output) => {
                    operation.set_attributes(output.message_id().map(message_id_attribute));
                    operation.set_attributes(output.request_id().map(request_id_attribute));
                    operation.end_ok();
                }
                Err(e) => end_failed(operation, e),
            }
            result
        }
    }
}

/// Ends an operation whose call failed: `error.type` = the service error code, and
/// `aws.request_id` when the failed response carried one (semconv `sqs.md`: Recommended).
pub(crate) fn end_failed<E>(operation: otel_messaging::Operation, error: &SdkError<E, HttpResponse>)
where
    E: aws_sdk_sqs::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    operation.set_attributes(error.request_id().map(request_id_attribute));
    operation.end_error(&error_type(error), DisplayErrorContext(error));
}

/// Ends a batch operation from its `Failed` entries (code, message): `error.type` = the first
/// failed entry's code, description `"{failed} of the batch's entries failed: {message}"`.
pub(crate) fn end_partial<'a>(
    operation: otel_messaging::Operation,
    failed: impl ExactSizeIterator<Item = (&'a String, Option<&'a str>)>,
) {
    let count = failed.len() as u64;
    let mut failed = failed;
    match failed.next() {
        None => operation.end_ok(),
        Some((code, message)) => operation.end_batch(
            count,
            code,
            format_args!("{count} of the batch's entries failed: {}", message.unwrap_or(code)),
        ),
    }
}

/// Traced `SendMessageBatch`.
pub trait SendMessageBatchFluentBuilderExt:
    Sized + crate::sealed::Sealed<crate::sealed::SendMessageBatchFluentBuilderExt>
{
    /// Sends like `.send()`: per-entry `create {queue}` PRODUCER spans (unless turned off with
    /// [`SqsInstrumentation::with_create_spans`]) and a `send {queue}` span with
    /// `messaging.batch.message_count` linking every entry's creation context. Entries that already
    /// carry a creation context keep it and get no create span. Entries reported in `Failed` end
    /// their create span with status `Error` and the entry's error code.
    ///
    /// Uses [`SqsInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The native `SdkError`, unchanged (every span of the batch gets status `Error`).
    fn send_traced(
        self,
    ) -> impl Future<Output = Result<SendMessageBatchOutput, SdkError<SendMessageBatchError, HttpResponse>>> + Send
    {
        self.send_traced_with(SqsInstrumentation::shared())
    }

    /// [`send_traced`](Self::send_traced) with an explicit [`SqsInstrumentation`].
    ///
    /// # Errors
    ///
    /// The native `SdkError`, unchanged.
    fn send_traced_with(
        self,
        instrumentation: &SqsInstrumentation,
    ) -> impl Future<Output = Result<SendMessageBatchOutput, SdkError<SendMessageBatchError, HttpResponse>>> + Send;
}

impl crate::sealed::Sealed<crate::sealed::SendMessageBatchFluentBuilderExt>
    for SendMessageBatchFluentBuilder
{
}
impl SendMessageBatchFluentBuilderExt for SendMessageBatchFluentBuilder {
    #[allow(clippy::manual_async_fn)] // `impl Future + Send` as the trait declares
    fn send_traced_with(
        self,
        instrumentation: &SqsInstrumentation,
    ) -> impl Future<Output = Result<SendMessageBatchOutput, SdkError<SendMessageBatchError, HttpResponse>>> + Send
    {
        async move {
            let parent = otel_messaging::current_context();
            let url = self.get_queue_url().clone().unwrap_or_default();
            let mut entries = self.get_entries().clone().unwrap_or_default();
            let instrumenter = &instrumentation.instrumenter;
            let mut creates: Vec<(String, Operation)> = Vec::new();
            let mut send_view = SqsView::new(OperationType::Send, OPERATION_SEND, &url);
            send_view.batch = Some(entries.len() as u64);
            // Each entry, and the batch as a whole, must stay within the limit if it was within it.
            let limit = instrumentation.max_message_bytes();
            let sizes: Vec<usize> = entries
                .iter()
                .map(|e| message_size(&e.message_body, e.message_attributes.as_ref()))
                .collect();
            let mut budgets = BatchBudget::new(sizes, limit, SQS_HARD_LIMIT);
            let mut used = 0;
            let send = if instrumentation.create_spans() {
                for (i, entry) in entries.iter_mut().enumerate() {
                    let mut attributes = entry.message_attributes.take().unwrap_or_default();
                    let existing = instrumenter.extract_context(&MessageAttributesExtractor(&attributes));
                    if !existing.span().span_context().is_valid() {
                        let mut view = SqsView::new(OperationType::Create, OPERATION_CREATE, &url);
                        view.body_size = Some(entry.message_body.len() as u64);
                        let create = instrumenter
                            .operation(&view)
                            .with_parent(&parent)
                            .with_outgoing_message(&EmptyExtractor)
                            .start();
                        let room = budgets.room(i, used);
                        used = inject(&create, &mut attributes, room);
                        creates.push((entry.id.clone(), create));
                    }
                    entry.message_attributes = (!attributes.is_empty()).then_some(attributes);
                }
                send_view.own_context = false;
                let empty = HashMap::new();
                let extractors: Vec<MessageAttributesExtractor<'_>> = entries
                    .iter()
                    .map(|e| MessageAttributesExtractor(e.message_attributes.as_ref().unwrap_or(&empty)))
                    .collect();
                instrumenter
                    .operation(&send_view)
                    .with_parent(&parent)
                    .with_batch_links(extractors.iter().map(|x| (x as &dyn Extractor, Vec::new())))
                    .start()
            } else {
                // The send span is the creation context of the entries without one, and links the
                // user-provided creation contexts of the others.
                let empty = HashMap::new();
                let extractors: Vec<MessageAttributesExtractor<'_>> = entries
                    .iter()
                    .map(|e| MessageAttributesExtractor(e.message_attributes.as_ref().unwrap_or(&empty)))
                    .collect();
                let links = extractors.iter().map(|x| (x as &dyn Extractor, Vec::new()));
                let send =
                    instrumenter.operation(&send_view).with_parent(&parent).with_batch_links(links).start();
                drop(extractors);
                for (i, entry) in entries.iter_mut().enumerate() {
                    let mut attributes = entry.message_attributes.take().unwrap_or_default();
                    let existing = instrumenter.extract_context(&MessageAttributesExtractor(&attributes));
                    if !existing.span().span_context().is_valid() {
                        let room = budgets.room(i, used);
                        used = inject(&send, &mut attributes, room);
                    }
                    entry.message_attributes = (!attributes.is_empty()).then_some(attributes);
                }
                send
            };
            let builder = self.set_entries(Some(entries));
            let result = builder.send().await;
            match &result {
                Ok(output) => {
                    for (id, create) in creates {
                        if let Some(ok) = output.successful().iter().find(|s| s.id == id) {
                            create.set_attributes([message_id_attribute(&ok.message_id)]);
                            create.end_ok();
                        } else if let Some(failed) = output.failed().iter().find(|f| f.id == id) {
                            let description = failed.message.clone().unwrap_or_else(|| failed.code.clone());
                            create.end_error(&failed.code, description);
                        } else {
                            create.end_ok();
                        }
                    }
                    send.set_attributes(output.request_id().map(request_id_attribute));
                    end_partial(send, output.failed().iter().map(|f| (&f.code, f.message.as_deref())));
                }
                Err(e) => {
                    let kind = error_type(e);
                    for (_, create) in creates {
                        create.end_error(&kind, DisplayErrorContext(e));
                    }
                    end_failed(send, e);
                }
            }
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{SQS_HARD_LIMIT, budget};

    /// Over the configured size a message may still fit SQS's hard ceiling; the context never
    /// pushes it past that (reliability review L6).
    #[test]
    fn the_budget_never_passes_the_hard_ceiling() {
        assert_eq!(budget(1_000, 262_144), 261_144);
        assert_eq!(budget(300_000, 262_144), SQS_HARD_LIMIT - 300_000);
        assert_eq!(budget(SQS_HARD_LIMIT - 10, 262_144), 10);
        assert_eq!(budget(SQS_HARD_LIMIT + 1, 262_144), 0);
    }
}
