//! Traced consumption: a `process {destination}` CONSUMER span per delivery around the user's
//! handler ([`DeliveryExt::process_traced`], and the [`ConsumerExt::stream_traced`] stream adapter), and
//! `ack`/`nack`/`reject` settle spans (CLIENT).
//!
//! Parent and links of process spans follow the instrumenter's
//! [`ProcessParent`](otel_messaging::ProcessParent) policy; queue wait comes from the `timestamp`
//! property (seconds) or the `x-otel-sent-ms` header the traced publish adds.

use std::{
    future::Future,
    pin::Pin,
    task::{Context as TaskContext, Poll},
};

use futures_core::Stream;
use lapin::{
    Consumer, Result,
    message::Delivery,
    options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions},
    types::FieldTable,
};
use otel_messaging::{__private::DeliveredContext, Operation, OperationType, TracedMessage};

use crate::{
    attributes::{DeliveryView, SettleView, consumer_destination, error_type, is_server_named},
    carrier::FieldTableExtractor,
    config::AmqpInstrumentation,
};

/// Starts the process span of `delivery`; `queue` and its context (`reading`) when the caller
/// knows them (the traced consumer), else the queue and context a traced consumer or `basic_get`
/// kept for the delivery (or the instrumentation's default queue, and the headers read here).
fn start_process(
    instrumentation: &AmqpInstrumentation,
    delivery: &Delivery,
    queue: Option<&str>,
    reading: Option<&DeliveredContext>,
) -> Operation {
    let handed = if queue.is_none() { instrumentation.handed(delivery, false) } else { None };
    let remembered =
        handed.as_ref().map(|h| h.queue.clone()).or_else(|| instrumentation.queue_of(delivery, false));
    let queue = queue.or(remembered.as_deref());
    let mut view = DeliveryView::new(OperationType::Process, delivery, queue, instrumentation);
    // A delivery a traced `basic_get` received is counted there, not again here.
    view.counted = handed.as_ref().is_some_and(|h| h.received);
    let empty = FieldTable::default();
    let headers = delivery.properties.headers().as_ref().unwrap_or(&empty);
    let extractor = FieldTableExtractor(headers);
    let reading = reading.or(handed.as_ref().and_then(|h| h.context.as_ref()));
    instrumentation.instrumenter.operation(&view).with_delivered_context(&extractor, reading).start()
}

async fn settle<F>(
    instrumentation: &AmqpInstrumentation,
    delivery: &Delivery,
    name: &'static str,
    settle: F,
) -> Result<bool>
where
    F: Future<Output = Result<bool>>,
{
    if !instrumentation.settle_spans() {
        let _ = instrumentation.queue_of(delivery, true);
        return settle.await;
    }
    let routing_key = delivery.routing_key.as_str();
    // The same destination as the delivery's process span: `{exchange}:{routing key}:{queue}`.
    let handed = instrumentation.handed(delivery, true);
    let queue = handed.as_ref().map(|h| h.queue.clone()).or_else(|| instrumentation.queue_of(delivery, true));
    let view = SettleView {
        name,
        destination: consumer_destination(delivery.exchange.as_str(), routing_key, queue.as_deref()),
        anonymous: is_server_named(routing_key) || queue.as_deref().is_some_and(is_server_named),
        delivery_tag: delivery.delivery_tag,
        client: instrumentation,
    };
    // Parent: the current context (typically the process span, when settling inside the handler);
    // always a link to the message's creation context, so a settle after processing is still
    // connected to the producer.
    // The link its traced consumer or `basic_get` made, else read from the headers.
    let empty = FieldTable::default();
    let headers = delivery.properties.headers().as_ref().unwrap_or(&empty);
    let kept = handed.map(|h| h.link);
    let operation = instrumentation
        .instrumenter
        .operation(&view)
        .with_settled_message(&FieldTableExtractor(headers), kept)
        .start();
    let result = settle.await;
    operation.end(&result, error_type);
    result
}

/// Traced processing and settling of a lapin [`Delivery`].
pub trait DeliveryExt: crate::sealed::Sealed<crate::sealed::DeliveryExt> {
    /// Runs `handler` inside a `process {exchange}:{routing key}:{queue}` CONSUMER span and
    /// returns its result unchanged. The creation context comes from the `headers` property;
    /// parent and links follow the instrumenter's policy with the current context as the ambient
    /// one. The queue is the one of the traced consumer ([`ConsumerExt::stream_traced`]) or
    /// `basic_get_traced` that handed the delivery over, else
    /// [`AmqpInstrumentation::with_queue`]'s, else the destination is `{exchange}:{routing key}`
    /// (a lapin delivery does not name its queue). Uses [`AmqpInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The handler's error, unchanged (span status `Error`, `error.type` = its Rust type name).
    fn process_traced<F, T, E>(&self, handler: F) -> impl Future<Output = std::result::Result<T, E>>
    where
        F: Future<Output = std::result::Result<T, E>>,
        E: std::fmt::Display,
    {
        self.process_traced_with(AmqpInstrumentation::shared(), handler)
    }

    /// [`process_traced`](Self::process_traced) with an explicit [`AmqpInstrumentation`].
    ///
    /// # Errors
    ///
    /// The handler's error, unchanged.
    fn process_traced_with<F, T, E>(
        &self,
        instrumentation: &AmqpInstrumentation,
        handler: F,
    ) -> impl Future<Output = std::result::Result<T, E>>
    where
        F: Future<Output = std::result::Result<T, E>>,
        E: std::fmt::Display;

    /// Starts the `process` CONSUMER span of this delivery now (as
    /// [`process_traced`](Self::process_traced) names it) and returns the delivery with it; run
    /// the handler with [`TracedMessage::process`]. Uses [`AmqpInstrumentation::new`].
    fn start_process(self) -> TracedMessage<Delivery>
    where
        Self: Sized,
    {
        self.start_process_with(AmqpInstrumentation::shared())
    }

    /// [`start_process`](Self::start_process) with an explicit [`AmqpInstrumentation`].
    fn start_process_with(self, instrumentation: &AmqpInstrumentation) -> TracedMessage<Delivery>
    where
        Self: Sized;

    /// Acks like `delivery.acker.ack(options)`, inside an `ack {destination}` settle span (CLIENT)
    /// when settle spans are on ([`AmqpInstrumentation::with_settle_spans`]). The span's parent is
    /// the current context (the process span when called inside the handler) and it links to the
    /// message's creation context.
    ///
    /// Uses [`AmqpInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn ack_traced(&self, options: BasicAckOptions) -> impl Future<Output = Result<bool>> {
        self.ack_traced_with(AmqpInstrumentation::shared(), options)
    }

    /// [`ack_traced`](Self::ack_traced) with an explicit [`AmqpInstrumentation`].
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn ack_traced_with(
        &self,
        instrumentation: &AmqpInstrumentation,
        options: BasicAckOptions,
    ) -> impl Future<Output = Result<bool>>;

    /// Nacks like `delivery.acker.nack(options)`, inside a `nack {destination}` settle span.
    ///
    /// Uses [`AmqpInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn nack_traced(&self, options: BasicNackOptions) -> impl Future<Output = Result<bool>> {
        self.nack_traced_with(AmqpInstrumentation::shared(), options)
    }

    /// [`nack_traced`](Self::nack_traced) with an explicit [`AmqpInstrumentation`].
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn nack_traced_with(
        &self,
        instrumentation: &AmqpInstrumentation,
        options: BasicNackOptions,
    ) -> impl Future<Output = Result<bool>>;

    /// Rejects like `delivery.acker.reject(options)`, inside a `reject {destination}` settle span.
    ///
    /// Uses [`AmqpInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn reject_traced(&self, options: BasicRejectOptions) -> impl Future<Output = Result<bool>> {
        self.reject_traced_with(AmqpInstrumentation::shared(), options)
    }

    /// [`reject_traced`](Self::reject_traced) with an explicit [`AmqpInstrumentation`].
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn reject_traced_with(
        &self,
        instrumentation: &AmqpInstrumentation,
        options: BasicRejectOptions,
    ) -> impl Future<Output = Result<bool>>;
}

impl crate::sealed::Sealed<crate::sealed::DeliveryExt> for Delivery {}
impl DeliveryExt for Delivery {
    fn process_traced_with<F, T, E>(
        &self,
        instrumentation: &AmqpInstrumentation,
        handler: F,
    ) -> impl Future<Output = std::result::Result<T, E>>
    where
        F: Future<Output = std::result::Result<T, E>>,
        E: std::fmt::Display,
    {
        start_process(instrumentation, self, None, None).run(handler)
    }

    fn start_process_with(self, instrumentation: &AmqpInstrumentation) -> TracedMessage<Delivery> {
        let operation = start_process(instrumentation, &self, None, None);
        TracedMessage::new(self, operation)
    }

    fn ack_traced_with(
        &self,
        instrumentation: &AmqpInstrumentation,
        options: BasicAckOptions,
    ) -> impl Future<Output = Result<bool>> {
        settle(instrumentation, self, "ack", self.acker.ack(options))
    }

    fn nack_traced_with(
        &self,
        instrumentation: &AmqpInstrumentation,
        options: BasicNackOptions,
    ) -> impl Future<Output = Result<bool>> {
        settle(instrumentation, self, "nack", self.acker.nack(options))
    }

    fn reject_traced_with(
        &self,
        instrumentation: &AmqpInstrumentation,
        options: BasicRejectOptions,
    ) -> impl Future<Output = Result<bool>> {
        settle(instrumentation, self, "reject", self.acker.reject(options))
    }
}

pin_project_lite::pin_project! {
    /// A lapin [`Consumer`] whose deliveries arrive as [`TracedMessage`]s with their
    /// `process {exchange}:{routing key}:{queue}` span started (see [`ConsumerExt::stream_traced`]).
    pub struct TracedConsumer {
        #[pin]
        inner: Consumer,
        queue: String,
        instrumentation: AmqpInstrumentation,
    }
}

impl std::fmt::Debug for TracedConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracedConsumer").field("queue", &self.queue).finish()
    }
}

impl Stream for TracedConsumer {
    type Item = Result<TracedMessage<Delivery>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let (queue, instrumentation) = (this.queue.as_str(), &*this.instrumentation);
        this.inner.poll_next(cx).map(|item| {
            item.map(|result| {
                result.map(|delivery| {
                    // Its context read once (lever 26, BENCHMARKS.md): for its process span here
                    // and the link of its settle span.
                    let empty = FieldTable::default();
                    let headers = delivery.properties.headers().as_ref().unwrap_or(&empty);
                    let reading =
                        instrumentation.instrumenter.extract_delivered(&FieldTableExtractor(headers));
                    instrumentation.remember_queue(&delivery, queue, false, Some(&reading));
                    let operation = start_process(instrumentation, &delivery, Some(queue), Some(&reading));
                    TracedMessage::new(delivery, operation)
                })
            })
        })
    }
}

/// The stream adapter over a lapin [`Consumer`].
pub trait ConsumerExt: Sized + crate::sealed::Sealed<crate::sealed::ConsumerExt> {
    /// Wraps the consumer (a push consumer: `basic.consume`, so no receive span): each delivery
    /// comes with its `process {exchange}:{routing key}:{queue}` span already started
    /// (`amq.gen-*` server-named queues are anonymous and never enter span names), and its
    /// `ack_traced`/`nack_traced`/`reject_traced` settle spans name the same destination. Uses
    /// [`AmqpInstrumentation::new`].
    fn stream_traced(self) -> TracedConsumer {
        self.stream_traced_with(AmqpInstrumentation::shared())
    }

    /// [`stream_traced`](Self::stream_traced) with an explicit [`AmqpInstrumentation`].
    fn stream_traced_with(self, instrumentation: &AmqpInstrumentation) -> TracedConsumer;
}

impl crate::sealed::Sealed<crate::sealed::ConsumerExt> for Consumer {}
impl ConsumerExt for Consumer {
    fn stream_traced_with(self, instrumentation: &AmqpInstrumentation) -> TracedConsumer {
        let queue = self.queue().as_str().to_owned();
        TracedConsumer { inner: self, queue, instrumentation: instrumentation.clone() }
    }
}
