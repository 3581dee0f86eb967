//! Traced consumption: `.send_traced()` on `ReceiveMessage` (asks for the propagation fields
//! and system attributes so the context cannot be lost, one `receive {queue}` CLIENT span linking
//! every message), per-message `process {queue}` CONSUMER spans ([`MessageExt`]), and
//! `DeleteMessage` / `DeleteMessageBatch` settle spans.

use std::{future::Future, sync::Arc, time::SystemTime};

use aws_sdk_sqs::{
    config::http::HttpResponse,
    error::SdkError,
    operation::{
        RequestId as _,
        delete_message::{DeleteMessageError, DeleteMessageOutput, builders::DeleteMessageFluentBuilder},
        delete_message_batch::{
            DeleteMessageBatchError, DeleteMessageBatchOutput, builders::DeleteMessageBatchFluentBuilder,
        },
        receive_message::{ReceiveMessageError, ReceiveMessageOutput, builders::ReceiveMessageFluentBuilder},
    },
    types::{Message, MessageSystemAttributeName},
};
use otel_messaging::{__private::DeliveredContext, OperationType, TracedMessage};

use crate::{
    attributes::{Received, SqsView, message_link_attributes, request_id_attribute},
    carrier::ReceivedMessageExtractor,
    config::{Removed, SqsInstrumentation},
};

/// `messaging.operation.name` of receive spans: `receive`.
pub(crate) const OPERATION_RECEIVE: &str = "receive";
/// `messaging.operation.name` of process spans: `process`.
pub(crate) const OPERATION_PROCESS: &str = "process";
/// `messaging.operation.name` of delete (settle) spans: `delete`.
pub(crate) const OPERATION_DELETE: &str = "delete";

/// System attributes a traced receive always asks for: send time (queue wait), receive count
/// (redelivery) and the X-Ray header (fallback context).
const SYSTEM_ATTRIBUTES: [MessageSystemAttributeName; 3] = [
    MessageSystemAttributeName::SentTimestamp,
    MessageSystemAttributeName::ApproximateReceiveCount,
    MessageSystemAttributeName::AwsTraceHeader,
];

/// Traced `ReceiveMessage`.
pub trait ReceiveMessageFluentBuilderExt:
    Sized + crate::sealed::Sealed<crate::sealed::ReceiveMessageFluentBuilderExt>
{
    /// Receives like `.send()`, after adding the propagator's fields to `MessageAttributeNames` and
    /// `SentTimestamp`, `ApproximateReceiveCount`, `AWSTraceHeader` to the system attribute names —
    /// merged with what was asked (`All` is kept as is) — so a receive can never lose the context
    /// for not asking for it. Records one `receive {queue}` CLIENT span from the call to the
    /// response, linking every message's creation context (link attribute `messaging.message.id`),
    /// with `messaging.batch.message_count`; no span for an empty poll unless
    /// [`SqsInstrumentation::with_empty_receive_spans`].
    ///
    /// The returned messages hold only the attributes the caller asked for, as with `.send()`:
    /// what was added to the request is read, then removed from each message (and
    /// `md5_of_message_attributes` cleared when no attribute is left), and kept by receipt handle
    /// (for the last 10 000 messages), with the queue URL, until [`MessageExt::start_process`] starts
    /// the message's process span with it. When the caller asked for some attributes and the instrumentation added
    /// others, `md5_of_message_attributes` covers all of them, as SQS computed it.
    ///
    /// Uses [`SqsInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The native `SdkError`, unchanged.
    fn send_traced(
        self,
    ) -> impl Future<Output = Result<ReceiveMessageOutput, SdkError<ReceiveMessageError, HttpResponse>>> + Send
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
    ) -> impl Future<Output = Result<ReceiveMessageOutput, SdkError<ReceiveMessageError, HttpResponse>>> + Send;
}

impl crate::sealed::Sealed<crate::sealed::ReceiveMessageFluentBuilderExt> for ReceiveMessageFluentBuilder {}
impl ReceiveMessageFluentBuilderExt for ReceiveMessageFluentBuilder {
    fn send_traced_with(
        self,
        instrumentation: &SqsInstrumentation,
    ) -> impl Future<Output = Result<ReceiveMessageOutput, SdkError<ReceiveMessageError, HttpResponse>>> + Send
    {
        let parent = otel_messaging::current_context();
        let started = SystemTime::now();
        let url = self.get_queue_url().clone().unwrap_or_default();
        let mut names = self.get_message_attribute_names().clone().unwrap_or_default();
        let mut added_names = Vec::new();
        // The context's fields, and the retry lineage (otel_messaging::retry) for the process
        // spans' links; both are removed again from what the caller gets unless it asked for
        // them (by name, `All`, `.*` or a prefix wildcard such as `app.*`).
        let lineage = otel_messaging::retry::FIELDS.iter().map(|f| (*f).to_owned());
        for field in instrumentation.instrumenter.propagation_fields().into_iter().chain(lineage) {
            if !names.iter().any(|n| attribute_name_matches(n, &field)) {
                names.push(field.clone());
                added_names.push(field);
            }
        }
        // What the caller asked for through either parameter: `MessageSystemAttributeNames`, or
        // the deprecated (and common) `AttributeNames` (`QueueAttributeName::All`,
        // `ApproximateReceiveCount`, …). Both end up in `MessageSystemAttributeNames`, so the
        // caller gets what it asked for whichever of the two the service honours.
        let mut system = self.get_message_system_attribute_names().clone().unwrap_or_default();
        #[allow(deprecated)]
        let legacy_names = self.get_attribute_names();
        for legacy in legacy_names.iter().flatten() {
            let name = MessageSystemAttributeName::from(legacy.as_str());
            if !system.contains(&name) {
                system.push(name);
            }
        }
        let mut added_system = Vec::new();
        if !system.contains(&MessageSystemAttributeName::All) {
            for name in SYSTEM_ATTRIBUTES {
                if !system.contains(&name) {
                    system.push(name.clone());
                    added_system.push(name);
                }
            }
        }
        let builder =
            self.set_message_attribute_names(Some(names)).set_message_system_attribute_names(Some(system));
        let instrumentation = instrumentation.clone();
        async move {
            let mut result = builder.send().await;
            let mut contexts = Vec::new();
            let mut view = SqsView::new(OperationType::Receive, OPERATION_RECEIVE, &url);
            match &result {
                Ok(output) => {
                    let messages = output.messages();
                    if !messages.is_empty() || instrumentation.empty_receive_spans() {
                        view.batch = Some(messages.len() as u64);
                        // Each message's context read once (lever 26, BENCHMARKS.md): for its link
                        // here, its process span (kept with what the receive removed) and the link
                        // of its delete span, kept by receipt handle wherever the delete is called
                        // (issue "Correct by default", point 4).
                        let mut links = Vec::with_capacity(messages.len());
                        for message in messages {
                            let context = instrumentation
                                .instrumenter
                                .extract_delivered(&ReceivedMessageExtractor::new(message));
                            let link = context.link(Vec::new());
                            if let (Some(receipt), Some(link)) = (message.receipt_handle(), &link) {
                                instrumentation.settles().put(receipt.to_owned(), link.clone());
                            }
                            links.extend(link.map(|mut link| {
                                link.attributes = message_link_attributes(message);
                                link
                            }));
                            contexts.push(context);
                        }
                        let operation = instrumentation
                            .instrumenter
                            .operation(&view)
                            .with_parent(&parent)
                            .with_start_time(started)
                            .with_links(links)
                            .start();
                        operation.set_attributes(output.request_id().map(request_id_attribute));
                        operation.end_ok();
                    }
                }
                Err(e) => {
                    let operation = instrumentation
                        .instrumenter
                        .operation(&view)
                        .with_parent(&parent)
                        .with_start_time(started)
                        .start();
                    crate::producer::end_failed(operation, e);
                }
            }
            if let Ok(output) = &mut result {
                strip_added(
                    &instrumentation,
                    &url,
                    output.messages.as_deref_mut().unwrap_or_default(),
                    contexts,
                    &added_names,
                    &added_system,
                );
            }
            result
        }
    }
}

/// Starts a delete (settle) span in the current context when the future is first polled,
/// linked to the creation context of each message a traced receive returned with one of
/// `receipts` (the links are forgotten with the delete).
fn start_delete(
    instrumentation: &SqsInstrumentation,
    view: &SqsView<'_>,
    receipts: &[String],
) -> otel_messaging::Operation {
    let links = receipts.iter().filter_map(|r| instrumentation.settles().take(r)).collect();
    instrumentation.instrumenter.operation(view).with_links(links).start()
}

/// Most bytes of one removed attribute (name, type and value) kept for a process span: W3C
/// Baggage's 8 192-byte limit plus the name and type. Worst case for the whole stash:
/// 10 000 messages × (a `traceparent`, a `tracestate`, a `baggage` and the lineage fields, plus
/// the context read from them when it is small: `DeliveredContext::keepable`).
const MAX_STASHED_ATTRIBUTE_BYTES: usize = 8_192 + 64;

/// Whether the message attribute name `requested` (as given to `MessageAttributeNames`: a name,
/// `All`, `.*`, or a prefix wildcard like `app.*`) makes SQS return the attribute `name`.
fn attribute_name_matches(requested: &str, name: &str) -> bool {
    match requested.strip_suffix('*') {
        _ if requested == "All" || requested == ".*" => true,
        Some(prefix) if prefix.ends_with('.') => name.starts_with(prefix),
        _ => requested == name,
    }
}

/// Removes from `messages` the attributes the traced receive asked for and the caller did not, so
/// the caller gets what an untraced receive would return; keeps them (by receipt handle) for the
/// messages' process spans, with the context the receive read from each (`contexts`, one per
/// message in order, or none when it read none) when it is small.
fn strip_added(
    instrumentation: &SqsInstrumentation,
    url: &str,
    messages: &mut [Message],
    contexts: Vec<DeliveredContext>,
    names: &[String],
    system: &[MessageSystemAttributeName],
) {
    let stash = instrumentation.stash();
    let queue_url: Arc<str> = Arc::from(url);
    let mut contexts = contexts.into_iter();
    for message in messages {
        let context = contexts.next().and_then(DeliveredContext::keepable);
        let mut removed = Removed { queue_url: Some(queue_url.clone()), context, ..Removed::default() };
        if let Some(attributes) = message.message_attributes.as_mut().filter(|_| !names.is_empty()) {
            // Removed from the message whatever their size; kept for the process span only up to
            // what W3C lets a field hold (baggage: 8 192 bytes), so a producer's huge attribute
            // cannot make the stash hold megabytes per message (reliability review M8).
            removed.attributes = names
                .iter()
                .filter_map(|n| attributes.remove_entry(n))
                .filter(|(k, v)| crate::carrier::attribute_size(k, v) <= MAX_STASHED_ATTRIBUTE_BYTES)
                .collect();
            if attributes.is_empty() {
                message.message_attributes = None;
                message.md5_of_message_attributes = None;
            }
        }
        if let Some(attributes) = message.attributes.as_mut().filter(|_| !system.is_empty()) {
            removed.system = system.iter().filter_map(|n| attributes.remove_entry(n)).collect();
            if attributes.is_empty() {
                message.attributes = None;
            }
        }
        if let Some(receipt) = &message.receipt_handle {
            stash.put(receipt.clone(), removed);
        }
    }
}

/// Starts the process operation of `message`, with what its traced receive kept for it (its
/// queue URL; the attributes removed from it, read beside its own, so `message` is unchanged;
/// the context the receive read).
fn start_process(instrumentation: &SqsInstrumentation, message: &Message) -> otel_messaging::Operation {
    let removed = message.receipt_handle.as_deref().and_then(|r| instrumentation.stash().take(r));
    let removed = removed.unwrap_or_default();
    let queue_url = removed.queue_url.clone().or_else(|| instrumentation.default_queue_url());
    let mut view =
        SqsView::new(OperationType::Process, OPERATION_PROCESS, queue_url.as_deref().unwrap_or(""));
    view.received = Some(Received::new(message, &removed));
    view.message_id = message.message_id.as_deref();
    view.body_size = message.body.as_ref().map(|b| b.len() as u64);
    let extractor = ReceivedMessageExtractor::with_removed(message, &removed);
    instrumentation
        .instrumenter
        .operation(&view)
        .with_delivered_context(&extractor, removed.context.as_ref())
        .start()
}

/// Traced processing of a received SQS [`Message`].
///
/// The queue is the one of the traced receive that returned the message (else
/// [`SqsInstrumentation::with_queue_url`]'s). The creation context comes from the message
/// attributes through the instrumenter's propagator (any `TextMapPropagator`); when they carry no
/// `traceparent`, from an SNS notification envelope in the body (its message attributes, read
/// through the propagator too), and then from the `AWSTraceHeader` system attribute, which is
/// translated into a W3C `traceparent` and so is read only with the W3C TraceContext propagator
/// installed (with another propagator, install opentelemetry-aws's X-Ray propagator and read the
/// header yourself). Parent and links follow the instrumenter's policy with the current context as
/// ambient. Queue wait from `SentTimestamp`; `ApproximateReceiveCount` recorded as
/// `otel_messaging.message.delivery_count`.
pub trait MessageExt: Sized + crate::sealed::Sealed<crate::sealed::MessageExt> {
    /// Runs `handler` inside this message's `process {queue}` CONSUMER span and returns its
    /// result unchanged. Uses [`SqsInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The handler's error, unchanged (span status `Error`, `error.type` = its Rust type name).
    fn process_traced<F, T, E>(&self, handler: F) -> impl Future<Output = Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        self.process_traced_with(SqsInstrumentation::shared(), handler)
    }

    /// [`process_traced`](Self::process_traced) with an explicit [`SqsInstrumentation`].
    ///
    /// # Errors
    ///
    /// The handler's error, unchanged.
    fn process_traced_with<F, T, E>(
        &self,
        instrumentation: &SqsInstrumentation,
        handler: F,
    ) -> impl Future<Output = Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display;

    /// Starts the `process {queue}` CONSUMER span of this message now and hands the message over
    /// with it as a [`TracedMessage`] (run the handler with `.process(async |m| ..)`). Uses
    /// [`SqsInstrumentation::new`].
    fn start_process(self) -> TracedMessage<Message> {
        self.start_process_with(SqsInstrumentation::shared())
    }

    /// [`start_process`](Self::start_process) with an explicit [`SqsInstrumentation`].
    fn start_process_with(self, instrumentation: &SqsInstrumentation) -> TracedMessage<Message>;
}

impl crate::sealed::Sealed<crate::sealed::MessageExt> for Message {}
impl MessageExt for Message {
    fn process_traced_with<F, T, E>(
        &self,
        instrumentation: &SqsInstrumentation,
        handler: F,
    ) -> impl Future<Output = Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        start_process(instrumentation, self).run(handler)
    }

    fn start_process_with(self, instrumentation: &SqsInstrumentation) -> TracedMessage<Message> {
        let operation = start_process(instrumentation, &self);
        TracedMessage::new(self, operation)
    }
}

/// Traced `DeleteMessage` (settle).
pub trait DeleteMessageFluentBuilderExt:
    Sized + crate::sealed::Sealed<crate::sealed::DeleteMessageFluentBuilderExt>
{
    /// Deletes like `.send()`, inside a `delete {queue}` settle span (CLIENT; parent: the current
    /// context when the future is first polled, e.g. the process span when called in the
    /// handler), linked to the message's creation context when a traced receive returned it
    /// (kept by receipt handle, without baggage, for the last 1 000 messages received and not
    /// yet deleted through a traced delete), wherever the delete is called.
    ///
    /// Uses [`SqsInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The native `SdkError`, unchanged.
    fn send_traced(
        self,
    ) -> impl Future<Output = Result<DeleteMessageOutput, SdkError<DeleteMessageError, HttpResponse>>> + Send
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
    ) -> impl Future<Output = Result<DeleteMessageOutput, SdkError<DeleteMessageError, HttpResponse>>> + Send;
}

impl crate::sealed::Sealed<crate::sealed::DeleteMessageFluentBuilderExt> for DeleteMessageFluentBuilder {}
impl DeleteMessageFluentBuilderExt for DeleteMessageFluentBuilder {
    #[allow(clippy::manual_async_fn)] // `impl Future + Send` as the trait declares
    fn send_traced_with(
        self,
        instrumentation: &SqsInstrumentation,
    ) -> impl Future<Output = Result<DeleteMessageOutput, SdkError<DeleteMessageError, HttpResponse>>> + Send
    {
        async move {
            let url = self.get_queue_url().clone().unwrap_or_default();
            let view = SqsView::new(OperationType::Settle, OPERATION_DELETE, &url);
            let receipts = self.get_receipt_handle().iter().cloned().collect::<Vec<_>>();
            let operation = start_delete(instrumentation, &view, &receipts);
            let result = self.send().await;
            match &result {
                Ok(output) => {
                    operation.set_attributes(output.request_id().map(request_id_attribute));
                    operation.end_ok();
                }
                Err(e) => crate::producer::end_failed(operation, e),
            }
            result
        }
    }
}

/// Traced `DeleteMessageBatch` (settle).
pub trait DeleteMessageBatchFluentBuilderExt:
    Sized + crate::sealed::Sealed<crate::sealed::DeleteMessageBatchFluentBuilderExt>
{
    /// Deletes like `.send()`, inside a `delete {queue}` settle span with
    /// `messaging.batch.message_count`, linked to the creation context of each entry's message
    /// that a traced receive returned.
    ///
    /// Uses [`SqsInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The native `SdkError`, unchanged.
    fn send_traced(
        self,
    ) -> impl Future<
        Output = Result<DeleteMessageBatchOutput, SdkError<DeleteMessageBatchError, HttpResponse>>,
    > + Send {
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
    ) -> impl Future<
        Output = Result<DeleteMessageBatchOutput, SdkError<DeleteMessageBatchError, HttpResponse>>,
    > + Send;
}

impl crate::sealed::Sealed<crate::sealed::DeleteMessageBatchFluentBuilderExt>
    for DeleteMessageBatchFluentBuilder
{
}
impl DeleteMessageBatchFluentBuilderExt for DeleteMessageBatchFluentBuilder {
    #[allow(clippy::manual_async_fn)] // `impl Future + Send` as the trait declares
    fn send_traced_with(
        self,
        instrumentation: &SqsInstrumentation,
    ) -> impl Future<
        Output = Result<DeleteMessageBatchOutput, SdkError<DeleteMessageBatchError, HttpResponse>>,
    > + Send {
        async move {
            let url = self.get_queue_url().clone().unwrap_or_default();
            let mut view = SqsView::new(OperationType::Settle, OPERATION_DELETE, &url);
            view.batch = Some(self.get_entries().as_ref().map_or(0, Vec::len) as u64);
            let receipts: Vec<String> =
                self.get_entries().iter().flatten().map(|e| e.receipt_handle().to_owned()).collect();
            let operation = start_delete(instrumentation, &view, &receipts);
            let result = self.send().await;
            match &result {
                Ok(output) => {
                    operation.set_attributes(output.request_id().map(request_id_attribute));
                    crate::producer::end_partial(
                        operation,
                        output.failed().iter().map(|f| (&f.code, f.message.as_deref())),
                    );
                }
                Err(e) => crate::producer::end_failed(operation, e),
            }
            result
        }
    }
}

#[cfg(test)]
mod tests {
    use super::attribute_name_matches;

    #[test]
    fn requested_attribute_names_match_as_sqs_does() {
        assert!(attribute_name_matches("All", "traceparent"));
        assert!(attribute_name_matches(".*", "traceparent"));
        assert!(attribute_name_matches("traceparent", "traceparent"));
        assert!(attribute_name_matches("otel.*", "otel.retry"));
        assert!(!attribute_name_matches("otel.*", "otelx"));
        assert!(!attribute_name_matches("trace*", "traceparent"), "a prefix wildcard ends in `.*`");
        assert!(!attribute_name_matches("tracestate", "traceparent"));
    }
}
