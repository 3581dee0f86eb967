//! Traced publishing: [`ChannelExt::basic_publish_traced`], a `publish {destination}` PRODUCER
//! span whose context travels in the AMQP `headers` table. On a channel in confirm mode the span
//! ends at the broker's confirm (a nack is an error); otherwise when the publish returns.

use std::{
    future::Future,
    pin::Pin,
    task::{Context as TaskContext, Poll},
};

use lapin::{
    BasicProperties, Channel, Confirmation, PublisherConfirm, Result,
    message::BasicGetMessage,
    options::{BasicGetOptions, BasicPublishOptions},
    types::{FieldTable, ShortString},
};
use opentelemetry::propagation::Injector as _;
use otel_messaging::{__private::CollectedFields, Operation, OperationType};

use crate::{
    attributes::{DeliveryView, ERROR_TYPE_NACK, FailedGetView, PublishView, error_type, set_sent_time},
    carrier::{FieldTableExtractor, FieldTableInjector},
    config::AmqpInstrumentation,
};

pin_project_lite::pin_project! {
    /// The broker's confirmation of a traced publish: a future with the same output as lapin's
    /// [`PublisherConfirm`] (`.await` it exactly as the native one). On a channel in confirm mode
    /// the publish span ends when it resolves: `Ack` → OK, `Nack` → status `Error` with
    /// `error.type = nack`, an error → status `Error`. Dropping it unresolved ends the span with
    /// `error.type = cancelled` (the outcome was never seen).
    pub struct TracedPublisherConfirm {
        #[pin]
        inner: PublisherConfirm,
        operation: Option<Operation>,
    }
}

impl std::fmt::Debug for TracedPublisherConfirm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracedPublisherConfirm").field("pending_span", &self.operation.is_some()).finish()
    }
}

impl Future for TracedPublisherConfirm {
    type Output = Result<Confirmation>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = std::task::ready!(this.inner.poll(cx));
        if let Some(operation) = this.operation.take() {
            match &result {
                Ok(Confirmation::Nack(_)) => {
                    operation.end_error(ERROR_TYPE_NACK, "the broker negatively acknowledged the message")
                }
                Ok(_) => operation.end_ok(),
                Err(e) => operation.end_error(&error_type(e), e),
            }
        }
        Poll::Ready(result)
    }
}

/// Bytes of a content header frame besides the properties: frame header (7), class id and
/// weight (4), body size (8), frame end (1).
const CONTENT_HEADER_OVERHEAD: usize = 20;

/// Bytes the `x-otel-sent-ms` entry adds to a `headers` table (key length, key, type, i64).
const SENT_TIME_ENTRY: usize = 1 + crate::attributes::SENT_TIME_HEADER.len() + 1 + 8;

/// Serialized bytes of `properties` (`headers` table included) as lapin writes them; `None` when
/// they cannot be serialized (lapin would then fail the publish natively).
fn properties_size(properties: &BasicProperties) -> Option<usize> {
    let buffer = Vec::with_capacity(256);
    cookie_factory::gen_simple(lapin::protocol::basic::gen_properties(properties), buffer)
        .ok()
        .map(|b| b.len())
}

/// Keeps the content header frame of a publish within `frame_max` (reliability review M1):
/// drops `x-otel-sent-ms` first, then degrades `fields` as the core's `fit_fields` does, and
/// records `otel_messaging.context.injected = false` when no context fits. A frame already over
/// the limit uninstrumented is left as it is (it fails natively).
fn fit_frame(
    properties: &BasicProperties,
    frame_max: u32,
    fields: &mut CollectedFields,
    sent_time: &mut bool,
    operation: &Operation,
) {
    if frame_max == 0 || (fields.0.is_empty() && !*sent_time) {
        return;
    }
    let limit = (frame_max as usize).saturating_sub(CONTENT_HEADER_OVERHEAD);
    let Some(native) = properties_size(properties) else { return };
    // A publish without headers gains the table's 4-byte length too.
    let native = native + if properties.headers().is_none() { 4 } else { 0 };
    if native > limit {
        return;
    }
    // Key length, key, type `S`, value length, value; counted as if every key were new.
    let size = |f: &[(std::borrow::Cow<'static, str>, String)]| CollectedFields::size(f, 6);
    if native + size(&fields.0) + if *sent_time { SENT_TIME_ENTRY } else { 0 } <= limit {
        return;
    }
    *sent_time = false;
    if !fields.0.is_empty()
        && !otel_messaging::__private::fit_fields(&mut fields.0, |f| native + size(f) <= limit)
    {
        operation.record_not_injected();
    }
}

/// Traced operations on a lapin [`Channel`].
pub trait ChannelExt: crate::sealed::Sealed<crate::sealed::ChannelExt> {
    /// Publishes like [`Channel::basic_publish`] (same arguments, same order), inside a
    /// `publish {destination}` PRODUCER span whose context is written into the `headers` property
    /// (an existing creation context is kept). The parent is [`otel_messaging::current_context`] when the future is first polled.
    ///
    /// Returns a [`TracedPublisherConfirm`] where lapin returns a `PublisherConfirm`: await it the
    /// same way. Uses [`AmqpInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The native error, unchanged (span status `Error`, `error.type` as the
    /// crate's front page lists under "Errors").
    fn basic_publish_traced(
        &self,
        exchange: ShortString,
        routing_key: ShortString,
        options: BasicPublishOptions,
        payload: &[u8],
        properties: BasicProperties,
    ) -> impl Future<Output = Result<TracedPublisherConfirm>> + Send {
        self.basic_publish_traced_with(
            AmqpInstrumentation::shared(),
            exchange,
            routing_key,
            options,
            payload,
            properties,
        )
    }

    /// [`basic_publish_traced`](Self::basic_publish_traced) with an explicit [`AmqpInstrumentation`].
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn basic_publish_traced_with(
        &self,
        instrumentation: &AmqpInstrumentation,
        exchange: ShortString,
        routing_key: ShortString,
        options: BasicPublishOptions,
        payload: &[u8],
        properties: BasicProperties,
    ) -> impl Future<Output = Result<TracedPublisherConfirm>> + Send;

    /// Gets one message like [`Channel::basic_get`] and records a `receive {destination}` CLIENT
    /// span for it, linked to the message's creation context (timed from the call to the reply).
    /// An empty queue records no span; a failed get records it with `error.type`. Uses
    /// [`AmqpInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn basic_get_traced(
        &self,
        queue: ShortString,
        options: BasicGetOptions,
    ) -> impl Future<Output = Result<Option<BasicGetMessage>>> + Send {
        self.basic_get_traced_with(AmqpInstrumentation::shared(), queue, options)
    }

    /// [`basic_get_traced`](Self::basic_get_traced) with an explicit [`AmqpInstrumentation`].
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn basic_get_traced_with(
        &self,
        instrumentation: &AmqpInstrumentation,
        queue: ShortString,
        options: BasicGetOptions,
    ) -> impl Future<Output = Result<Option<BasicGetMessage>>> + Send;
}

impl crate::sealed::Sealed<crate::sealed::ChannelExt> for Channel {}
impl ChannelExt for Channel {
    // `impl Future + Send` as the trait declares: the `Send` bound is part of the contract.
    #[allow(clippy::manual_async_fn)]
    fn basic_publish_traced_with(
        &self,
        instrumentation: &AmqpInstrumentation,
        exchange: ShortString,
        routing_key: ShortString,
        options: BasicPublishOptions,
        payload: &[u8],
        properties: BasicProperties,
    ) -> impl Future<Output = Result<TracedPublisherConfirm>> + Send {
        async move {
            let parent = otel_messaging::current_context();
            let mut headers = properties.headers().clone().unwrap_or_default();
            let view = PublishView::new(
                exchange.as_str(),
                routing_key.as_str(),
                &properties,
                payload.len(),
                instrumentation,
            );
            let operation = instrumentation
                .instrumenter
                .operation(&view)
                .with_parent(&parent)
                .with_outgoing_message(&FieldTableExtractor(&headers))
                .start();
            let mut fields = CollectedFields::default();
            operation.inject(&mut fields);
            let mut sent_time = instrumentation.sent_time_header() && properties.timestamp().is_none();
            fit_frame(&properties, instrumentation.frame_max(), &mut fields, &mut sent_time, &operation);
            let mut injector = FieldTableInjector(&mut headers);
            for (key, value) in fields.0 {
                injector.set(&key, value);
            }
            if sent_time {
                set_sent_time(&mut headers);
            }
            let properties = properties.with_headers(headers);
            let confirm_mode = self.status().confirm();
            match self.basic_publish(exchange, routing_key, options, payload, properties).await {
                Ok(inner) if confirm_mode => Ok(TracedPublisherConfirm { inner, operation: Some(operation) }),
                Ok(inner) => {
                    operation.end_ok();
                    Ok(TracedPublisherConfirm { inner, operation: None })
                }
                Err(e) => {
                    operation.end_error(&error_type(&e), &e);
                    Err(e)
                }
            }
        }
    }

    fn basic_get_traced_with(
        &self,
        instrumentation: &AmqpInstrumentation,
        queue: ShortString,
        options: BasicGetOptions,
    ) -> impl Future<Output = Result<Option<BasicGetMessage>>> + Send {
        let parent = otel_messaging::current_context();
        let started = std::time::SystemTime::now();
        let name = queue.clone();
        let get = self.basic_get(queue, options);
        async move {
            let result = get.await;
            if let Err(e) = &result {
                let view = FailedGetView { queue: name.as_str(), client: instrumentation };
                instrumentation
                    .instrumenter
                    .operation(&view)
                    .with_parent(&parent)
                    .with_start_time(started)
                    .start()
                    .end_error(&error_type(e), e);
            }
            if let Ok(Some(message)) = &result {
                // Its context read once (lever 26, BENCHMARKS.md): for the link here, its process
                // span and the link of its settle span.
                let empty = FieldTable::default();
                let headers = message.delivery.properties.headers().as_ref().unwrap_or(&empty);
                let reading = instrumentation.instrumenter.extract_delivered(&FieldTableExtractor(headers));
                instrumentation.remember_queue(&message.delivery, name.as_str(), true, Some(&reading));
                let view = DeliveryView::new(
                    OperationType::Receive,
                    &message.delivery,
                    Some(name.as_str()),
                    instrumentation,
                );
                instrumentation
                    .instrumenter
                    .operation(&view)
                    .with_parent(&parent)
                    .with_start_time(started)
                    .with_links(reading.link(Vec::new()).into_iter().collect())
                    .start()
                    .end_ok();
            }
            result
        }
    }
}
