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
use otel_messaging::{Operation, OperationType};

use crate::{
    attributes::{DeliveryView, ERROR_TYPE_NACK, FailedGetView, PublishView, error_type, set_sent_time},
    carrier::{FieldTableExtractor, FieldTableInjector},
    config::AmqpInstrumentation,
};

pin_project_lite::pin_project! {
    /// The broker's confirmation of a traced publish: a future with the same output as lapin's
    /// [`PublisherConfirm`] (`.await` it exactly as the native one). On a channel in confirm mode
    /// the publish span ends when it resolves: `Ack` → OK, `Nack` → status `Error` with
    /// `error.type = nack`, an error → status `Error`. Dropping it unresolved ends the span.
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

/// Traced operations on a lapin [`Channel`].
pub trait ChannelExt {
    /// Publishes like [`Channel::basic_publish`] (same arguments, same order), inside a
    /// `publish {destination}` PRODUCER span whose context is written into the `headers` property
    /// (an existing creation context is kept). The parent is [`otel_messaging::current_context`] at the call.
    ///
    /// Returns a [`TracedPublisherConfirm`] where lapin returns a `PublisherConfirm`: await it the
    /// same way. Uses [`AmqpInstrumentation::global`].
    ///
    /// # Errors
    ///
    /// The native error, unchanged (span status `Error`, `error.type` from
    /// [`error_type`](crate::error_type)).
    fn basic_publish_traced(
        &self,
        exchange: ShortString,
        routing_key: ShortString,
        options: BasicPublishOptions,
        payload: &[u8],
        properties: BasicProperties,
    ) -> impl Future<Output = Result<TracedPublisherConfirm>> + Send {
        self.basic_publish_traced_with(
            AmqpInstrumentation::global(),
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
    /// [`AmqpInstrumentation::global`].
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn basic_get_traced(
        &self,
        queue: ShortString,
        options: BasicGetOptions,
    ) -> impl Future<Output = Result<Option<BasicGetMessage>>> + Send {
        self.basic_get_traced_with(AmqpInstrumentation::global(), queue, options)
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

impl ChannelExt for Channel {
    fn basic_publish_traced_with(
        &self,
        instrumentation: &AmqpInstrumentation,
        exchange: ShortString,
        routing_key: ShortString,
        options: BasicPublishOptions,
        payload: &[u8],
        properties: BasicProperties,
    ) -> impl Future<Output = Result<TracedPublisherConfirm>> + Send {
        let parent = otel_messaging::current_context();
        let mut headers = properties.headers().clone().unwrap_or_default();
        let view = PublishView::new(
            exchange.as_str(),
            routing_key.as_str(),
            &properties,
            payload.len(),
            instrumentation,
        );
        let operation =
            instrumentation.instrumenter.start_send(&view, &parent, &FieldTableExtractor(&headers));
        operation.inject(&mut FieldTableInjector(&mut headers));
        if instrumentation.sent_time_header() && properties.timestamp().is_none() {
            set_sent_time(&mut headers);
        }
        let properties = properties.with_headers(headers);
        let confirm_mode = self.status().confirm();
        let publish = self.basic_publish(exchange, routing_key, options, payload, properties);
        async move {
            match publish.await {
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
                instrumentation.instrumenter.start_at(&view, &parent, started).end_error(&error_type(e), e);
            }
            if let Ok(Some(message)) = &result {
                instrumentation.remember_queue(&message.delivery, name.as_str());
                let view = DeliveryView::new(
                    OperationType::Receive,
                    &message.delivery,
                    Some(name.as_str()),
                    instrumentation,
                );
                let empty = FieldTable::default();
                let headers = message.delivery.properties.headers().as_ref().unwrap_or(&empty);
                let extractor = FieldTableExtractor(headers);
                instrumentation
                    .instrumenter
                    .start_batch(
                        &view,
                        &parent,
                        Some(started),
                        [(&extractor as &dyn opentelemetry::propagation::Extractor, Vec::new())],
                    )
                    .end_ok();
            }
            result
        }
    }
}
