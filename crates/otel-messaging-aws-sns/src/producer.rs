//! Traced publishes: `.send_traced()` on the `Publish` and `PublishBatch` fluent builders.
//!
//! `Publish` → `publish {topic}` PRODUCER span, ending with the response. `PublishBatch` → by
//! default one `create {topic}` PRODUCER span per entry (each entry carries its own creation
//! context) plus a `publish {topic}` CLIENT span linking them, with `messaging.batch.message_count`
//! (semconv v1.44 "Trace structure", batch sending); with create spans off, a single
//! `publish {topic}` PRODUCER span whose context goes into every entry. The 10-attribute and size
//! limits never make a publish fail: the context degrades to `traceparent` alone, then to nothing
//! (`otel_messaging.context.injected = false` on the span). An SMS publish (`PhoneNumber`) gets
//! a span without destination and no context.

use std::{collections::HashMap, future::Future};

use aws_sdk_sns::{
    config::http::HttpResponse,
    error::{DisplayErrorContext, SdkError},
    operation::{
        RequestId as _,
        publish::{PublishError, PublishOutput, builders::PublishFluentBuilder},
        publish_batch::{PublishBatchError, PublishBatchOutput, builders::PublishBatchFluentBuilder},
    },
    types::MessageAttributeValue,
};
use opentelemetry::{propagation::Extractor, trace::TraceContextExt};
use otel_messaging::{
    __private::{BatchBudget, EmptyExtractor},
    Operation, OperationType,
};

use crate::{
    attributes::{SnsView, Target, error_type, message_id_attribute, request_id_attribute},
    carrier::{MessageAttributesExtractor, inject_within_limit, message_size},
    config::SnsInstrumentation,
};

/// `messaging.operation.name` of publish spans: `publish` (the SNS API's own verb; operation type
/// `send`).
pub(crate) const OPERATION_PUBLISH: &str = "publish";
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

/// Ends an operation whose call failed: `error.type` = the service error code, and
/// `aws.request_id` when the failed response carried one.
fn end_failed<E>(operation: Operation, error: &SdkError<E, HttpResponse>)
where
    E: aws_sdk_sns::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    operation.set_attributes(error.request_id().map(request_id_attribute));
    operation.end_error(&error_type(error), DisplayErrorContext(error));
}

/// Traced `Publish`.
pub trait PublishFluentBuilderExt:
    Sized + crate::sealed::Sealed<crate::sealed::PublishFluentBuilderExt>
{
    /// Publishes like `.send()`, inside a `publish {topic}` PRODUCER span (parent:
    /// [`otel_messaging::current_context`] when the future is first polled) whose context is
    /// written into the message attributes (a user-provided creation context is kept), where an
    /// SQS subscriber's traced receive reads it — as message attributes with raw message delivery,
    /// from the notification envelope without. `messaging.message.id` and `aws.request_id` come
    /// from the response. Uses [`SnsInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The native `SdkError`, unchanged (span status `Error`, `error.type` = the service error code).
    fn send_traced(
        self,
    ) -> impl Future<Output = Result<PublishOutput, SdkError<PublishError, HttpResponse>>> + Send {
        self.send_traced_with(SnsInstrumentation::shared())
    }

    /// [`send_traced`](Self::send_traced) with an explicit [`SnsInstrumentation`].
    ///
    /// # Errors
    ///
    /// The native `SdkError`, unchanged.
    fn send_traced_with(
        self,
        instrumentation: &SnsInstrumentation,
    ) -> impl Future<Output = Result<PublishOutput, SdkError<PublishError, HttpResponse>>> + Send;
}

impl crate::sealed::Sealed<crate::sealed::PublishFluentBuilderExt> for PublishFluentBuilder {}
impl PublishFluentBuilderExt for PublishFluentBuilder {
    #[allow(clippy::manual_async_fn)] // `impl Future + Send` as the trait declares
    fn send_traced_with(
        self,
        instrumentation: &SnsInstrumentation,
    ) -> impl Future<Output = Result<PublishOutput, SdkError<PublishError, HttpResponse>>> + Send {
        async move {
            let parent = otel_messaging::current_context();
            let topic = self.get_topic_arn().clone();
            let target_arn = self.get_target_arn().clone();
            let target =
                Target::of(topic.as_deref(), target_arn.as_deref(), self.get_phone_number().is_some());
            let had_attributes = self.get_message_attributes().is_some();
            let mut attributes = self.get_message_attributes().clone().unwrap_or_default();
            let mut view = SnsView::new(OperationType::Send, OPERATION_PUBLISH, target);
            view.server = instrumentation.server();
            view.body_size = self.get_message().as_ref().map(|b| b.len() as u64);
            let (group, dedup) =
                (self.get_message_group_id().clone(), self.get_message_deduplication_id().clone());
            if instrumentation.fifo_ids() {
                view.fifo_ids = (group.as_deref(), dedup.as_deref());
            }
            let extractor = MessageAttributesExtractor(&attributes);
            let operation = if target.carries_context() {
                instrumentation
                    .instrumenter
                    .operation(&view)
                    .with_parent(&parent)
                    .with_outgoing_message(&extractor)
                    .start()
            } else {
                view.own_context = false;
                instrumentation
                    .instrumenter
                    .operation(&view)
                    .with_parent(&parent)
                    .with_outgoing_message(&EmptyExtractor)
                    .start()
            };
            if target.carries_context() {
                let native = message_size(
                    self.get_message().as_deref().unwrap_or_default(),
                    self.get_subject().as_deref(),
                    Some(&attributes),
                );
                inject(
                    &operation,
                    &mut attributes,
                    instrumentation.max_message_bytes().saturating_sub(native),
                );
            }
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

/// Traced `PublishBatch`.
pub trait PublishBatchFluentBuilderExt:
    Sized + crate::sealed::Sealed<crate::sealed::PublishBatchFluentBuilderExt>
{
    /// Publishes like `.send()`: per-entry `create {topic}` PRODUCER spans (unless turned off with
    /// [`SnsInstrumentation::with_create_spans`]) and a `publish {topic}` span with
    /// `messaging.batch.message_count` linking every entry's creation context. Entries that already
    /// carry a creation context keep it and get no create span. Entries reported in `Failed` end
    /// their create span with status `Error` and the entry's error code.
    ///
    /// Uses [`SnsInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The native `SdkError`, unchanged (every span of the batch gets status `Error`).
    fn send_traced(
        self,
    ) -> impl Future<Output = Result<PublishBatchOutput, SdkError<PublishBatchError, HttpResponse>>> + Send
    {
        self.send_traced_with(SnsInstrumentation::shared())
    }

    /// [`send_traced`](Self::send_traced) with an explicit [`SnsInstrumentation`].
    ///
    /// # Errors
    ///
    /// The native `SdkError`, unchanged.
    fn send_traced_with(
        self,
        instrumentation: &SnsInstrumentation,
    ) -> impl Future<Output = Result<PublishBatchOutput, SdkError<PublishBatchError, HttpResponse>>> + Send;
}

impl crate::sealed::Sealed<crate::sealed::PublishBatchFluentBuilderExt> for PublishBatchFluentBuilder {}
impl PublishBatchFluentBuilderExt for PublishBatchFluentBuilder {
    #[allow(clippy::manual_async_fn)] // `impl Future + Send` as the trait declares
    fn send_traced_with(
        self,
        instrumentation: &SnsInstrumentation,
    ) -> impl Future<Output = Result<PublishBatchOutput, SdkError<PublishBatchError, HttpResponse>>> + Send
    {
        async move {
            let parent = otel_messaging::current_context();
            let topic = self.get_topic_arn().clone();
            let target = Target::of(topic.as_deref(), None, false);
            let mut entries = self.get_publish_batch_request_entries().clone().unwrap_or_default();
            let instrumenter = &instrumentation.instrumenter;
            let mut publish_view = SnsView::new(OperationType::Send, OPERATION_PUBLISH, target);
            publish_view.server = instrumentation.server();
            publish_view.batch = Some(entries.len() as u64);
            // Each entry, and the batch as a whole, stays within the limit if it was within it.
            let limit = instrumentation.max_message_bytes();
            let sizes: Vec<usize> = entries
                .iter()
                .map(|e| message_size(&e.message, e.subject.as_deref(), e.message_attributes.as_ref()))
                .collect();
            let mut budgets = BatchBudget::new(sizes, limit, limit);
            let mut used = 0;
            let mut creates: Vec<(String, Operation)> = Vec::new();
            let has_context = |attributes: &HashMap<String, MessageAttributeValue>| {
                instrumenter
                    .extract_context(&MessageAttributesExtractor(attributes))
                    .span()
                    .span_context()
                    .is_valid()
            };
            let create_spans = instrumentation.create_spans();
            if create_spans {
                for (i, entry) in entries.iter_mut().enumerate() {
                    let mut attributes = entry.message_attributes.take().unwrap_or_default();
                    if !has_context(&attributes) {
                        let mut view = SnsView::new(OperationType::Create, OPERATION_CREATE, target);
                        view.server = publish_view.server;
                        view.body_size = Some(entry.message.len() as u64);
                        if instrumentation.fifo_ids() {
                            view.fifo_ids = (
                                entry.message_group_id.as_deref(),
                                entry.message_deduplication_id.as_deref(),
                            );
                        }
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
            }
            // With create spans, the publish span links every entry's creation context; without,
            // it is the creation context of the entries without one and links the others'.
            publish_view.own_context = !create_spans;
            let publish = {
                let empty = HashMap::new();
                let extractors: Vec<MessageAttributesExtractor<'_>> = entries
                    .iter()
                    .map(|e| MessageAttributesExtractor(e.message_attributes.as_ref().unwrap_or(&empty)))
                    .collect();
                let links = extractors.iter().map(|x| (x as &dyn Extractor, Vec::new()));
                instrumenter.operation(&publish_view).with_parent(&parent).with_batch_links(links).start()
            };
            if !create_spans {
                for (i, entry) in entries.iter_mut().enumerate() {
                    let mut attributes = entry.message_attributes.take().unwrap_or_default();
                    if !has_context(&attributes) {
                        let room = budgets.room(i, used);
                        used = inject(&publish, &mut attributes, room);
                    }
                    entry.message_attributes = (!attributes.is_empty()).then_some(attributes);
                }
            }
            let result = self.set_publish_batch_request_entries(Some(entries)).send().await;
            match &result {
                Ok(output) => {
                    for (id, create) in creates {
                        if let Some(ok) =
                            output.successful().iter().find(|s| s.id.as_deref() == Some(id.as_str()))
                        {
                            create.set_attributes(ok.message_id.as_deref().map(message_id_attribute));
                            create.end_ok();
                        } else if let Some(failed) = output.failed().iter().find(|f| f.id == id) {
                            let description = failed.message.clone().unwrap_or_else(|| failed.code.clone());
                            create.end_error(&failed.code, description);
                        } else {
                            create.end_ok();
                        }
                    }
                    publish.set_attributes(output.request_id().map(request_id_attribute));
                    let failed = output.failed();
                    match failed.first() {
                        None => publish.end_ok(),
                        Some(first) => {
                            let count = failed.len() as u64;
                            publish.end_batch(
                                count,
                                &first.code,
                                format_args!(
                                    "{count} of the batch's entries failed: {}",
                                    first.message.as_deref().unwrap_or(&first.code)
                                ),
                            );
                        }
                    }
                }
                Err(e) => {
                    let kind = error_type(e);
                    for (_, create) in creates {
                        create.end_error(&kind, DisplayErrorContext(e));
                    }
                    end_failed(publish, e);
                }
            }
            result
        }
    }
}
