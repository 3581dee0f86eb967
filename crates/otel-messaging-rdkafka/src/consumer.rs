//! Traced consumption: a `process {topic}` CONSUMER span per message around the user's handler
//! ([`MessageExt::process_traced`], and the [`StreamConsumerExt::stream_traced`] adapter), and a
//! `poll {topic}` CLIENT span linking every message of a batch
//! ([`StreamConsumerExt::recv_batch_traced`]).
//!
//! Parent and links of process spans follow the instrumenter's
//! [`ProcessParent`](otel_messaging::ProcessParent) policy (semconv v1.44
//! `messaging-spans.md`, "Consumer spans"); queue wait is measured from the record timestamp.

use std::{
    future::Future,
    pin::Pin,
    task::{Context as TaskContext, Poll},
    time::{Duration, SystemTime},
};

use futures_core::Stream;
use opentelemetry::{Context, KeyValue, propagation::Extractor};
use otel_messaging::{Operation, TracedMessage, propagation::EmptyExtractor};
use rdkafka::{
    consumer::{ConsumerContext, StreamConsumer, stream_consumer::MessageStream},
    error::KafkaResult,
    message::{BorrowedMessage, Message},
    util::AsyncRuntime,
};

use crate::{
    attributes::{PollView, ProcessView, error_type, link_attributes},
    carrier::{HeadersExtractor, RawHeaders},
    config::KafkaInstrumentation,
};

/// Starts the process operation of `message` inside `ambient`.
fn start_process<M>(
    instrumentation: &KafkaInstrumentation,
    message: &M,
    ambient: &Context,
    counted: bool,
) -> Operation
where
    M: Message + ?Sized,
    M::Headers: RawHeaders,
{
    let view = ProcessView {
        message,
        cluster_id: instrumentation.cached_cluster_id(),
        client: instrumentation,
        counted,
    };
    match message.headers() {
        Some(headers) => {
            instrumentation.instrumenter.start_process_in(&view, &HeadersExtractor(headers), ambient)
        }
        None => instrumentation.instrumenter.start_process_in(&view, &EmptyExtractor, ambient),
    }
}

/// Traced processing of a received Kafka message ([`BorrowedMessage`], `OwnedMessage`, any
/// [`Message`]).
pub trait MessageExt: Message {
    /// Runs `handler` inside a `process {topic}` CONSUMER span and returns its result unchanged.
    ///
    /// The span starts now and ends when `handler` completes; spans the handler creates nest under
    /// it (its context is current while the handler is polled). The creation context comes from
    /// the message headers (strict W3C validation); parent and links follow the instrumenter's
    /// policy, with the current context as the ambient one. Uses [`KafkaInstrumentation::global`].
    ///
    /// # Errors
    ///
    /// Returns the handler's error unchanged; the span gets status `Error` and `error.type` = the
    /// error's Rust type name.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(consumer: rdkafka::consumer::StreamConsumer) -> anyhow::Result<()> {
    /// use otel_messaging_rdkafka::MessageExt as _;
    ///
    /// let message = consumer.recv().await?;
    /// message.process_traced(async { /* handle */ Ok::<_, anyhow::Error>(()) }).await?;
    /// # Ok(()) }
    /// ```
    fn process_traced<F, T, E>(&self, handler: F) -> impl Future<Output = Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        self.process_traced_with(KafkaInstrumentation::global(), handler)
    }

    /// [`process_traced`](Self::process_traced) with an explicit [`KafkaInstrumentation`].
    ///
    /// # Errors
    ///
    /// As [`process_traced`](Self::process_traced): the handler's error, unchanged.
    fn process_traced_with<F, T, E>(
        &self,
        instrumentation: &KafkaInstrumentation,
        handler: F,
    ) -> impl Future<Output = Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display;
}

impl<M> MessageExt for M
where
    M: Message + ?Sized,
    M::Headers: RawHeaders,
{
    fn process_traced_with<F, T, E>(
        &self,
        instrumentation: &KafkaInstrumentation,
        handler: F,
    ) -> impl Future<Output = Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let operation = start_process(instrumentation, self, &otel_messaging::current_context(), false);
        operation.run(handler)
    }
}

pin_project_lite::pin_project! {
    /// The stream of [`StreamConsumerExt::stream_traced`]: each message arrives with its process
    /// span already started.
    pub struct TracedStream<'a, C: ConsumerContext> {
        #[pin]
        inner: MessageStream<'a, C>,
        instrumentation: &'a KafkaInstrumentation,
    }
}

impl<C: ConsumerContext> std::fmt::Debug for TracedStream<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TracedStream")
    }
}

impl<'a, C: ConsumerContext + 'a> Stream for TracedStream<'a, C> {
    type Item = KafkaResult<TracedMessage<BorrowedMessage<'a>>>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        let instrumentation = *this.instrumentation;
        this.inner.poll_next(cx).map(|item| {
            item.map(|result| {
                result.map(|message| {
                    let operation =
                        start_process(instrumentation, &message, &otel_messaging::current_context(), false);
                    TracedMessage::new(message, operation)
                })
            })
        })
    }
}

/// Traced consumption on rdkafka's [`StreamConsumer`].
pub trait StreamConsumerExt<'a, C: ConsumerContext + 'a, R> {
    /// Like [`StreamConsumer::stream`], but each message comes as a [`TracedMessage`] whose
    /// `process {topic}` CONSUMER span starts when the message is handed over.
    fn stream_traced(&'a self, instrumentation: &'a KafkaInstrumentation) -> TracedStream<'a, C>;

    /// Receives up to `max_messages` messages into `batch`, waiting at most `timeout` in total,
    /// and records one `poll {topic}` CLIENT span for them: it starts when this call starts, links
    /// every message's creation context (link attributes: partition, offset, and topic when the
    /// batch spans several topics), and carries `messaging.batch.message_count`. An empty poll
    /// records no span. Messages counted here are not counted again in
    /// `messaging.client.consumed.messages` when processed with [`process_batch_message`].
    ///
    /// Messages are **appended** to `batch` as they arrive (nothing already in it is touched);
    /// returns how many were appended. `timeout` may be anything up to `Duration::MAX` (no
    /// deadline); the deadline uses a runtime-independent timer ([`futures_timer`]), so this works
    /// on any [`AsyncRuntime`], inside or outside a Tokio runtime.
    ///
    /// # Cancel safety
    ///
    /// This method is cancel safe, like [`StreamConsumer::recv`]: every message received before
    /// the future is dropped (in `tokio::select!`, under a timeout) is already in `batch`, so a
    /// message whose offset librdkafka has stored is never lost; the poll span of those messages
    /// is recorded on drop.
    ///
    /// # Errors
    ///
    /// The first consumer error, unchanged (e.g. `PartitionEOF` with `enable.partition.eof`, a
    /// transport or authorization error). It ends the call: the messages received before it are
    /// in `batch` (process them too), and the poll span records the error (`error.type`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(consumer: rdkafka::consumer::StreamConsumer, tracing: otel_messaging_rdkafka::KafkaInstrumentation) {
    /// use otel_messaging_rdkafka::StreamConsumerExt as _;
    /// use std::time::Duration;
    ///
    /// let mut batch = Vec::with_capacity(100);
    /// let result = consumer.recv_batch_traced(&tracing, &mut batch, 100, Duration::from_secs(1)).await;
    /// for message in batch.drain(..) { /* handle every message, even when `result` is an error */ }
    /// # }
    /// ```
    fn recv_batch_traced<'b>(
        &'a self,
        instrumentation: &'a KafkaInstrumentation,
        batch: &'b mut Vec<BorrowedMessage<'a>>,
        max_messages: usize,
        timeout: Duration,
    ) -> impl Future<Output = KafkaResult<usize>>;
}

impl<'a, C, R> StreamConsumerExt<'a, C, R> for StreamConsumer<C, R>
where
    C: ConsumerContext + 'static,
    R: AsyncRuntime + 'a,
{
    fn stream_traced(&'a self, instrumentation: &'a KafkaInstrumentation) -> TracedStream<'a, C> {
        TracedStream { inner: self.stream(), instrumentation }
    }

    async fn recv_batch_traced<'b>(
        &'a self,
        instrumentation: &'a KafkaInstrumentation,
        batch: &'b mut Vec<BorrowedMessage<'a>>,
        max_messages: usize,
        timeout: Duration,
    ) -> KafkaResult<usize> {
        use futures_util::future::{Either, select};
        use rdkafka::consumer::Consumer as _;

        let mut poll = PollGuard {
            instrumentation,
            client: self.client(),
            parent: otel_messaging::current_context(),
            started: SystemTime::now(),
            first: batch.len(),
            batch,
            error: None,
        };
        // No deadline when `timeout` does not fit in an `Instant` (e.g. `Duration::MAX`).
        let mut deadline =
            std::time::Instant::now().checked_add(timeout).map(|_| futures_timer::Delay::new(timeout));
        while poll.batch.len() - poll.first < max_messages {
            let next = std::pin::pin!(self.recv());
            let received = match deadline.as_mut() {
                Some(delay) => match select(next, delay).await {
                    Either::Left((received, _)) => received,
                    Either::Right(((), _)) => break,
                },
                None => next.await,
            };
            match received {
                Ok(message) => poll.batch.push(message),
                Err(e) => {
                    poll.error = Some((error_type(&e), e.to_string()));
                    return Err(e);
                }
            }
        }
        Ok(poll.batch.len() - poll.first)
    }
}

/// Records the `poll` span of the messages appended to `batch` when dropped: at the end of
/// `recv_batch_traced`, or when its future is cancelled.
struct PollGuard<'g, 'a, Cx: rdkafka::ClientContext> {
    instrumentation: &'g KafkaInstrumentation,
    client: &'g rdkafka::client::Client<Cx>,
    parent: Context,
    started: SystemTime,
    first: usize,
    batch: &'g mut Vec<BorrowedMessage<'a>>,
    error: Option<(std::borrow::Cow<'static, str>, String)>,
}

impl<Cx: rdkafka::ClientContext> Drop for PollGuard<'_, '_, Cx> {
    fn drop(&mut self) {
        let received = self.batch.get(self.first..).unwrap_or_default();
        if !received.is_empty() {
            record_poll(
                self.instrumentation,
                self.client,
                &self.parent,
                self.started,
                received,
                self.error.take(),
            );
        }
    }
}

/// Records the `poll` span of a received batch.
fn record_poll<Cx: rdkafka::ClientContext, M>(
    instrumentation: &KafkaInstrumentation,
    client: &rdkafka::client::Client<Cx>,
    parent: &Context,
    started: SystemTime,
    batch: &[M],
    error: Option<(std::borrow::Cow<'static, str>, String)>,
) where
    M: Message,
    M::Headers: RawHeaders,
{
    let first = &batch[0];
    let same_topic = batch.iter().all(|m| m.topic() == first.topic());
    let same_partition = same_topic && batch.iter().all(|m| m.partition() == first.partition());
    let view = PollView {
        topic: same_topic.then(|| first.topic()),
        partition: same_partition.then(|| first.partition()),
        count: batch.len() as u64,
        cluster_id: instrumentation.cluster_id(client),
        client: instrumentation,
    };
    #[allow(clippy::type_complexity)]
    let extractors: Vec<(Option<HeadersExtractor<'_, M::Headers>>, Vec<KeyValue>)> =
        batch.iter().map(|m| (m.headers().map(HeadersExtractor), link_attributes(m, !same_topic))).collect();
    let messages = extractors.iter().map(|(extractor, attributes)| {
        let extractor: &dyn Extractor = match extractor {
            Some(e) => e,
            None => &EmptyExtractor,
        };
        (extractor, attributes.clone())
    });
    let operation = instrumentation.instrumenter.start_batch(&view, parent, Some(started), messages);
    match error {
        Some((error_type, description)) => operation.end_error(&error_type, description),
        None => operation.end_ok(),
    }
}

/// Runs `handler` inside the `process {topic}` CONSUMER span of one message of a batch received
/// with [`StreamConsumerExt::recv_batch_traced`] (the message is not counted again in
/// `messaging.client.consumed.messages`). The parent is the current context's span if any
/// (the spec default), following the instrumenter's policy.
///
/// # Errors
///
/// Returns the handler's error unchanged.
pub async fn process_batch_message<M, F, T, E>(
    instrumentation: &KafkaInstrumentation,
    message: &M,
    handler: F,
) -> Result<T, E>
where
    M: Message + ?Sized,
    M::Headers: RawHeaders,
    F: Future<Output = Result<T, E>>,
    E: std::fmt::Display,
{
    let operation = start_process(instrumentation, message, &otel_messaging::current_context(), true);
    operation.run(handler).await
}
