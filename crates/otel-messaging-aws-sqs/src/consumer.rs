//! Traced consumption: `.send_traced_with()` on `ReceiveMessage` (asks for the propagation fields
//! and system attributes so the context cannot be lost, one `receive {queue}` CLIENT span linking
//! every message), per-message `process {queue}` CONSUMER spans ([`MessageExt`]), and
//! `DeleteMessage` / `DeleteMessageBatch` settle spans.

use std::{future::Future, time::SystemTime};

use aws_sdk_sqs::{
    config::http::HttpResponse,
    error::{DisplayErrorContext, SdkError},
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
use opentelemetry::propagation::Extractor;
use otel_messaging::{OperationType, TracedMessage};

use crate::{
    attributes::{SqsView, error_type, message_link_attributes, request_id_attribute},
    carrier::ReceivedMessageExtractor,
    config::SqsInstrumentation,
};

/// `messaging.operation.name` of receive spans: `receive`.
pub const OPERATION_RECEIVE: &str = "receive";
/// `messaging.operation.name` of process spans: `process`.
pub const OPERATION_PROCESS: &str = "process";
/// `messaging.operation.name` of delete (settle) spans: `delete`.
pub const OPERATION_DELETE: &str = "delete";

/// System attributes a traced receive always asks for: send time (queue wait), receive count
/// (redelivery) and the X-Ray header (fallback context).
const SYSTEM_ATTRIBUTES: [MessageSystemAttributeName; 3] = [
    MessageSystemAttributeName::SentTimestamp,
    MessageSystemAttributeName::ApproximateReceiveCount,
    MessageSystemAttributeName::AwsTraceHeader,
];

/// Traced `ReceiveMessage`.
pub trait ReceiveMessageFluentBuilderExt: Sized {
    /// Receives like `.send()`, after adding the propagator's fields to `MessageAttributeNames` and
    /// `SentTimestamp`, `ApproximateReceiveCount`, `AWSTraceHeader` to the system attribute names —
    /// merged with what was asked (`All` is kept as is) — so a receive can never lose the context
    /// for not asking for it. Records one `receive {queue}` CLIENT span from the call to the
    /// response, linking every message's creation context (link attribute `messaging.message.id`),
    /// with `messaging.batch.message_count`; no span for an empty poll unless
    /// [`SqsInstrumentation::with_empty_receive_spans`].
    ///
    /// # Errors
    ///
    /// The native `SdkError`, unchanged.
    fn send_traced_with(
        self,
        instrumentation: &SqsInstrumentation,
    ) -> impl Future<Output = Result<ReceiveMessageOutput, SdkError<ReceiveMessageError, HttpResponse>>> + Send;
}

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
        if !names.iter().any(|n| n == "All" || n == ".*") {
            for field in instrumentation.instrumenter.propagation_fields() {
                if !names.contains(&field) {
                    names.push(field);
                }
            }
        }
        let mut system = self.get_message_system_attribute_names().clone().unwrap_or_default();
        if !system.contains(&MessageSystemAttributeName::All) {
            for name in SYSTEM_ATTRIBUTES {
                if !system.contains(&name) {
                    system.push(name);
                }
            }
        }
        let builder =
            self.set_message_attribute_names(Some(names)).set_message_system_attribute_names(Some(system));
        let instrumentation = instrumentation.clone();
        async move {
            let result = builder.send().await;
            let mut view = SqsView::new(OperationType::Receive, OPERATION_RECEIVE, &url);
            match &result {
                Ok(output) => {
                    let messages = output.messages();
                    if !messages.is_empty() || instrumentation.empty_receive_spans() {
                        view.batch = Some(messages.len() as u64);
                        let extractors: Vec<_> = messages.iter().map(ReceivedMessageExtractor::new).collect();
                        let links = extractors
                            .iter()
                            .zip(messages)
                            .map(|(x, m)| (x as &dyn Extractor, message_link_attributes(m)));
                        let operation =
                            instrumentation.instrumenter.start_batch(&view, &parent, Some(started), links);
                        operation.set_attributes(output.request_id().map(request_id_attribute));
                        operation.end_ok();
                    }
                }
                Err(e) => {
                    let operation =
                        instrumentation.instrumenter.start_batch(&view, &parent, Some(started), []);
                    operation.end_error(&error_type(e), DisplayErrorContext(e));
                }
            }
            result
        }
    }
}

/// Traced processing of a received SQS [`Message`].
pub trait MessageExt: Sized {
    /// Starts the `process {queue}` CONSUMER span of this message and hands it over as a
    /// [`TracedMessage`]. The creation context comes from the message attributes, or from the
    /// `AWSTraceHeader` system attribute when they carry none; parent and links follow the
    /// instrumenter's policy with the current context as ambient. Queue wait from `SentTimestamp`;
    /// `ApproximateReceiveCount` recorded as `otel_messaging.aws_sqs.approximate_receive_count`.
    fn traced(self, instrumentation: &SqsInstrumentation, queue_url: &str) -> TracedMessage<Message>;

    /// Runs `handler` inside this message's process span (see [`traced`](Self::traced)) and
    /// returns the message and the handler's result unchanged.
    ///
    /// # Errors
    ///
    /// The handler's error, unchanged (span status `Error`, `error.type` = its Rust type name).
    fn process_traced<T, E>(
        self,
        instrumentation: &SqsInstrumentation,
        queue_url: &str,
        handler: impl AsyncFnOnce(&Message) -> Result<T, E>,
    ) -> impl Future<Output = (Message, Result<T, E>)>
    where
        E: std::fmt::Display,
    {
        self.traced(instrumentation, queue_url).process(handler)
    }
}

impl MessageExt for Message {
    fn traced(self, instrumentation: &SqsInstrumentation, queue_url: &str) -> TracedMessage<Message> {
        let mut view = SqsView::new(OperationType::Process, OPERATION_PROCESS, queue_url);
        view.message = Some(&self);
        view.message_id = self.message_id.as_deref();
        view.body_size = self.body.as_ref().map(|b| b.len() as u64);
        let operation =
            instrumentation.instrumenter.start_process(&view, &ReceivedMessageExtractor::new(&self));
        TracedMessage::new(self, operation)
    }
}

/// Traced `DeleteMessage` (settle).
pub trait DeleteMessageFluentBuilderExt: Sized {
    /// Deletes like `.send()`, inside a `delete {queue}` settle span (CLIENT; parent: the current
    /// context, e.g. the process span when called in the handler).
    ///
    /// # Errors
    ///
    /// The native `SdkError`, unchanged.
    fn send_traced_with(
        self,
        instrumentation: &SqsInstrumentation,
    ) -> impl Future<Output = Result<DeleteMessageOutput, SdkError<DeleteMessageError, HttpResponse>>> + Send;
}

impl DeleteMessageFluentBuilderExt for DeleteMessageFluentBuilder {
    fn send_traced_with(
        self,
        instrumentation: &SqsInstrumentation,
    ) -> impl Future<Output = Result<DeleteMessageOutput, SdkError<DeleteMessageError, HttpResponse>>> + Send
    {
        let url = self.get_queue_url().clone().unwrap_or_default();
        let view = SqsView::new(OperationType::Settle, OPERATION_DELETE, &url);
        let operation = instrumentation.instrumenter.start(&view, &otel_messaging::current_context());
        async move {
            let result = self.send().await;
            match &result {
                Ok(output) => {
                    operation.set_attributes(output.request_id().map(request_id_attribute));
                    operation.end_ok();
                }
                Err(e) => operation.end_error(&error_type(e), DisplayErrorContext(e)),
            }
            result
        }
    }
}

/// Traced `DeleteMessageBatch` (settle).
pub trait DeleteMessageBatchFluentBuilderExt: Sized {
    /// Deletes like `.send()`, inside a `delete {queue}` settle span with
    /// `messaging.batch.message_count`.
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

impl DeleteMessageBatchFluentBuilderExt for DeleteMessageBatchFluentBuilder {
    fn send_traced_with(
        self,
        instrumentation: &SqsInstrumentation,
    ) -> impl Future<
        Output = Result<DeleteMessageBatchOutput, SdkError<DeleteMessageBatchError, HttpResponse>>,
    > + Send {
        let url = self.get_queue_url().clone().unwrap_or_default();
        let mut view = SqsView::new(OperationType::Settle, OPERATION_DELETE, &url);
        view.batch = Some(self.get_entries().as_ref().map_or(0, Vec::len) as u64);
        let operation = instrumentation.instrumenter.start(&view, &otel_messaging::current_context());
        async move {
            let result = self.send().await;
            match &result {
                Ok(output) => {
                    operation.set_attributes(output.request_id().map(request_id_attribute));
                    operation.end_ok();
                }
                Err(e) => operation.end_error(&error_type(e), DisplayErrorContext(e)),
            }
            result
        }
    }
}
