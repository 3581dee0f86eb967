//! Traced sends: [`FutureProducerExt::send_traced`] for `FutureProducer`, and
//! [`BaseProducerExt::send_traced`] for `BaseProducer` / `ThreadedProducer` built with a
//! [`TracingProducerContext`], whose delivery callback ends the span.
//!
//! Every send is a `send {topic}` PRODUCER span (semconv v1.44 `kafka.md`, "Send span
//! (producer)") whose context is written into the record's headers as the creation context. The
//! span ends when the broker acknowledges the record (the delivery report), not when the record is
//! enqueued, and gets the partition and offset from the delivery. Native results and errors come
//! back unchanged.

use std::future::Future;

use opentelemetry::Context;
use otel_messaging::{__private::EmptyExtractor, Operation};
use rdkafka::{
    ClientContext,
    client::Client,
    error::KafkaError,
    message::{Message, OwnedHeaders, ToBytes},
    producer::{
        BaseProducer, BaseRecord, DeliveryResult, FutureProducer, FutureRecord, NoCustomPartitioner,
        Producer, ProducerContext, ThreadedProducer, future_producer::OwnedDeliveryResult,
    },
    util::{AsyncRuntime, Timeout},
};

use crate::{
    attributes::{SendView, delivery_attributes, error_type},
    carrier::{HeadersExtractor, apply, fields_size, remove_fields, serialized_size},
    config::{ClientFacts, KafkaInstrumentation},
};

/// Starts the send span of a record's fields and returns it with the record's headers, into which
/// its context has been written (an existing creation context is kept).
#[allow(clippy::too_many_arguments)]
fn start_send<C: ClientContext>(
    instrumentation: &KafkaInstrumentation,
    client: &Client<C>,
    parent: &Context,
    topic: &str,
    partition: Option<i32>,
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    headers: Option<OwnedHeaders>,
) -> (Operation, OwnedHeaders, otel_messaging::__private::CollectedFields) {
    let facts = ClientFacts::of(client);
    let view = SendView {
        topic,
        partition,
        key,
        tombstone: payload.is_none(),
        body_size: payload.map(|p| p.len() as u64),
        cluster_id: facts.cluster_id(client),
        client: &facts,
        capture_key: instrumentation.captures_key(),
    };
    let operation = match &headers {
        Some(h) => instrumentation
            .instrumenter
            .operation(&view)
            .with_parent(parent)
            .with_outgoing_message(&HeadersExtractor(h))
            .start(),
        None => instrumentation
            .instrumenter
            .operation(&view)
            .with_parent(parent)
            .with_outgoing_message(&EmptyExtractor)
            .start(),
    };
    let mut pending = otel_messaging::__private::CollectedFields::default();
    operation.inject(&mut pending);
    if !pending.0.is_empty() {
        let native = RECORD_OVERHEAD
            + key.map_or(0, <[u8]>::len)
            + payload.map_or(0, <[u8]>::len)
            + headers.as_ref().map_or(0, serialized_size);
        fit_to_limit(&mut pending, native, instrumentation.limit(&facts), &operation);
    }
    let headers = apply(&pending, headers.unwrap_or_else(|| OwnedHeaders::new_with_capacity(2)));
    (operation, headers, pending)
}

/// librdkafka's worst-case record overhead (`RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD`, bytes), counted
/// with key, value and headers against `message.max.bytes`.
const RECORD_OVERHEAD: usize = 36;

/// Degrades the context written into a record so that it never makes a record that fits
/// `message.max.bytes` uninstrumented fail with `MSG_SIZE_TOO_LARGE`: drop `baggage`, then all but
/// `traceparent`, then everything (the core's `fit_fields`) (`otel_messaging.context.injected = false` on the span). A record
/// already over the limit is left to fail natively, unchanged but for the context.
fn fit_to_limit(
    pending: &mut otel_messaging::__private::CollectedFields,
    native: usize,
    limit: usize,
    operation: &Operation,
) {
    if native > limit {
        return;
    }
    let fits = |fields: &[(std::borrow::Cow<'static, str>, String)]| native + fields_size(fields) <= limit;
    if !otel_messaging::__private::fit_fields(&mut pending.0, fits) {
        operation.record_not_injected();
    }
}

/// Ends a send operation from its delivery report.
fn end_send(operation: Operation, delivery: Result<(i32, i64), &KafkaError>) {
    match delivery {
        Ok((partition, offset)) => {
            operation.set_attributes(delivery_attributes(partition, offset));
            operation.end_ok();
        }
        Err(e) => operation.end_error(&error_type(e), e),
    }
}

/// Traced sends on rdkafka's [`FutureProducer`].
pub trait FutureProducerExt: crate::sealed::Sealed<crate::sealed::FutureProducerExt> {
    /// Sends `record` like [`FutureProducer::send`], inside a `send {topic}` PRODUCER span whose
    /// context is written into the record's headers (an existing creation context is kept).
    ///
    /// The parent is the current context ([`otel_messaging::current_context`]) when the future is
    /// first polled, as the native send does its work then: `.with_context(cx)` and
    /// `.instrument(span)` set it.
    /// `queue_timeout` has the native meaning. The span ends when the delivery report arrives, so
    /// its duration includes the broker's acknowledgement; the partition and offset are recorded.
    /// Uses [`KafkaInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// Returns the native result unchanged. On error the span gets status `Error` and
    /// `error.type` the librdkafka error code's name (`MESSAGE_SIZE_TOO_LARGE`, ...).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(producer: rdkafka::producer::FutureProducer) {
    /// use otel_messaging_rdkafka::FutureProducerExt as _;
    /// use rdkafka::producer::FutureRecord;
    /// use std::time::Duration;
    ///
    /// let record = FutureRecord::to("orders").key("order-1").payload("{}");
    /// let delivery = producer.send_traced(record, Duration::from_secs(5)).await;
    /// # }
    /// ```
    fn send_traced<K, P, T>(
        &self,
        record: FutureRecord<'_, K, P>,
        queue_timeout: T,
    ) -> impl Future<Output = OwnedDeliveryResult> + Send
    where
        K: ToBytes + ?Sized + Sync,
        P: ToBytes + ?Sized + Sync,
        T: Into<Timeout> + Send,
    {
        self.send_traced_with(KafkaInstrumentation::shared(), record, queue_timeout)
    }

    /// [`send_traced`](Self::send_traced) with an explicit [`KafkaInstrumentation`] (instrumenter
    /// and client facts).
    ///
    /// # Errors
    ///
    /// As [`send_traced`](Self::send_traced): the native result, unchanged.
    fn send_traced_with<K, P, T>(
        &self,
        instrumentation: &KafkaInstrumentation,
        record: FutureRecord<'_, K, P>,
        queue_timeout: T,
    ) -> impl Future<Output = OwnedDeliveryResult> + Send
    where
        K: ToBytes + ?Sized + Sync,
        P: ToBytes + ?Sized + Sync,
        T: Into<Timeout> + Send;
}

impl<C, R> crate::sealed::Sealed<crate::sealed::FutureProducerExt> for FutureProducer<C, R>
where
    C: ClientContext + 'static,
    R: AsyncRuntime,
{
}
impl<C, R> FutureProducerExt for FutureProducer<C, R>
where
    C: ClientContext + 'static,
    R: AsyncRuntime,
{
    // `impl Future + Send` as the trait declares: the `Send` bound is part of the contract.
    #[allow(clippy::manual_async_fn)]
    fn send_traced_with<K, P, T>(
        &self,
        instrumentation: &KafkaInstrumentation,
        mut record: FutureRecord<'_, K, P>,
        queue_timeout: T,
    ) -> impl Future<Output = OwnedDeliveryResult> + Send
    where
        K: ToBytes + ?Sized + Sync,
        P: ToBytes + ?Sized + Sync,
        T: Into<Timeout> + Send,
    {
        async move {
            let parent = otel_messaging::current_context();
            let (operation, headers, _) = start_send(
                instrumentation,
                self.client(),
                &parent,
                record.topic,
                record.partition,
                record.key.map(ToBytes::to_bytes),
                record.payload.map(ToBytes::to_bytes),
                record.headers.take(),
            );
            record.headers = Some(headers);
            let result = self.send(record, queue_timeout).await;
            end_send(operation, result.as_ref().map(|d| (d.partition, d.offset)).map_err(|(e, _)| e));
            result
        }
    }
}

/// A [`ProducerContext`] wrapper that ends each traced send's span in the delivery callback, for
/// [`BaseProducer`] and [`ThreadedProducer`].
///
/// Everything else (logging, errors, statistics, OAuth, the inner delivery callback) is delegated
/// to the wrapped context `C`, which receives its own delivery opaque unchanged.
///
/// # Examples
///
/// ```no_run
/// use otel_messaging_rdkafka::{BaseProducerExt as _, KafkaInstrumentation, TracingProducerContext};
/// use rdkafka::{ClientConfig, producer::{BaseRecord, DefaultProducerContext, ThreadedProducer}};
///
/// let mut config = ClientConfig::new();
/// config.set("bootstrap.servers", "localhost:9092");
/// let context = TracingProducerContext::new(DefaultProducerContext, KafkaInstrumentation::from_config(&config));
/// let producer: ThreadedProducer<_> = config.create_with_context(context)?;
/// producer.send_traced(BaseRecord::to("orders").key("k").payload("v")).map_err(|(e, _)| e)?;
/// # Ok::<(), rdkafka::error::KafkaError>(())
/// ```
#[derive(Debug)]
pub struct TracingProducerContext<C> {
    inner: C,
    instrumentation: KafkaInstrumentation,
}

impl<C> TracingProducerContext<C> {
    /// Wraps `inner`, tracing sends with `instrumentation`.
    pub fn new(inner: C, instrumentation: KafkaInstrumentation) -> Self {
        TracingProducerContext { inner, instrumentation }
    }

    /// The wrapped context.
    pub fn inner(&self) -> &C {
        &self.inner
    }
}

/// The delivery opaque of a [`TracingProducerContext`]: the traced send's operation and the
/// wrapped context's own opaque.
#[derive(Debug)]
pub struct TracedDelivery<D> {
    operation: Option<Operation>,
    inner: D,
}

impl<D> TracedDelivery<D> {
    /// Wraps the inner context's opaque with no operation (an untraced send through
    /// `BaseProducer::send` on a traced producer).
    pub fn untraced(inner: D) -> Box<Self> {
        Box::new(TracedDelivery { operation: None, inner })
    }
}

delegate_client_context!(TracingProducerContext);

impl<C: ProducerContext> ProducerContext for TracingProducerContext<C>
where
    C::DeliveryOpaque: Send + Sync,
{
    type DeliveryOpaque = Box<TracedDelivery<C::DeliveryOpaque>>;

    fn delivery(&self, delivery_result: &DeliveryResult<'_>, delivery_opaque: Self::DeliveryOpaque) {
        let TracedDelivery { operation, inner } = *delivery_opaque;
        if let Some(operation) = operation {
            end_send(
                operation,
                delivery_result.as_ref().map(|m| (m.partition(), m.offset())).map_err(|(e, _)| e),
            );
        }
        self.inner.delivery(delivery_result, inner);
    }
}

type Record<'a, K, P, D> = BaseRecord<'a, K, P, D>;

fn swap_opaque<'a, K: ToBytes + ?Sized, P: ToBytes + ?Sized, D1, D2>(
    record: Record<'a, K, P, D1>,
    opaque: D2,
) -> (Record<'a, K, P, D2>, D1)
where
    D1: rdkafka::util::IntoOpaque,
    D2: rdkafka::util::IntoOpaque,
{
    let BaseRecord { topic, partition, payload, key, timestamp, headers, delivery_opaque } = record;
    (
        BaseRecord { topic, partition, payload, key, timestamp, headers, delivery_opaque: opaque },
        delivery_opaque,
    )
}

/// Traced sends on [`BaseProducer`] and [`ThreadedProducer`] built with a
/// [`TracingProducerContext`].
#[allow(clippy::result_large_err)] // the native signature of `BaseProducer::send`
pub trait BaseProducerExt<C: ProducerContext>:
    crate::sealed::Sealed<crate::sealed::BaseProducerExt<C>>
{
    /// Sends `record` like the native `send`, inside a `send {topic}` PRODUCER span that ends in
    /// the delivery callback (so it covers the broker's acknowledgement). The record carries the
    /// wrapped context's own delivery opaque; the parent is [`otel_messaging::current_context`].
    ///
    /// # Errors
    ///
    /// The native error and the record, as it was given (the injected propagation headers are
    /// removed again, so a `QueueFull` retry of it starts a new send span); the span then ends
    /// with status `Error` and `error.type`.
    #[allow(clippy::type_complexity)]
    fn send_traced<'a, K, P>(
        &self,
        record: BaseRecord<'a, K, P, C::DeliveryOpaque>,
    ) -> Result<(), (KafkaError, BaseRecord<'a, K, P, C::DeliveryOpaque>)>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized;
}

macro_rules! impl_base_producer_ext {
    ($producer:ident) => {
        impl<C> crate::sealed::Sealed<crate::sealed::BaseProducerExt<C>>
            for $producer<TracingProducerContext<C>, NoCustomPartitioner>
        where
            C: ProducerContext + 'static,
            C::DeliveryOpaque: Send + Sync,
        {
        }

        #[allow(clippy::result_large_err)]
        impl<C> BaseProducerExt<C> for $producer<TracingProducerContext<C>, NoCustomPartitioner>
        where
            C: ProducerContext + 'static,
            C::DeliveryOpaque: Send + Sync,
        {
            fn send_traced<'a, K, P>(
                &self,
                mut record: BaseRecord<'a, K, P, C::DeliveryOpaque>,
            ) -> Result<(), (KafkaError, BaseRecord<'a, K, P, C::DeliveryOpaque>)>
            where
                K: ToBytes + ?Sized,
                P: ToBytes + ?Sized,
            {
                let instrumentation = &self.context().instrumentation;
                let had_headers = record.headers.is_some();
                let (operation, headers, injected) = start_send(
                    instrumentation,
                    self.client(),
                    &otel_messaging::current_context(),
                    record.topic,
                    record.partition,
                    record.key.map(ToBytes::to_bytes),
                    record.payload.map(ToBytes::to_bytes),
                    record.headers.take(),
                );
                record.headers = Some(headers);
                let (record, inner) = swap_opaque(record, ());
                let opaque = Box::new(TracedDelivery { operation: Some(operation), inner });
                let (record, ()) = swap_opaque(record, opaque);
                self.send(record).map_err(|(e, record)| {
                    let (record, traced) = swap_opaque(record, ());
                    let TracedDelivery { operation, inner } = *traced;
                    if let Some(operation) = operation {
                        end_send(operation, Err(&e));
                    }
                    // The record comes back as the caller gave it (reliability review L7): a
                    // `QueueFull` retry of it must not carry the failed span as its creation
                    // context.
                    let (mut record, ()) = swap_opaque(record, inner);
                    match record.headers.take() {
                        Some(mut headers) if had_headers => {
                            remove_fields(&mut headers, &injected);
                            record.headers = Some(headers);
                        }
                        _ => {}
                    }
                    (e, record)
                })
            }
        }
    };
}

impl_base_producer_ext!(BaseProducer);
impl_base_producer_ext!(ThreadedProducer);
