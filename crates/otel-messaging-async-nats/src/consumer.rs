//! Traced processing of delivered messages: core NATS [`MessageExt`] (subscriptions, queue
//! groups, request handlers) and JetStream [`JetStreamMessageExt`] (pull and push consumers),
//! with `ack` / `nak` / `term` settle spans.
//!
//! A `process {subject}` CONSUMER span per message, whose parent and links follow the
//! instrumenter's process-parent policy (semconv v1.44 "Consumer spans": by default the creation
//! context is the parent and a link). JetStream messages add the stream sequence
//! (`messaging.message.id`), the delivery count (`otel_messaging.message.delivery_count`, from the
//! message info) and the queue wait (from the stored timestamp).

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use async_nats::{HeaderMap, Message, Subscriber, jetstream};
use futures_core::Stream;
use futures_util::StreamExt as _;
use otel_messaging::{Operation, TracedMessage};

use crate::{
    attributes::{JetStreamFacts, ProcessView, ReceiveView, SettleView, error_type},
    carrier::HeaderMapExtractor,
    config::{Fetched, NatsInstrumentation},
};

static NO_HEADERS: std::sync::LazyLock<HeaderMap> = std::sync::LazyLock::new(HeaderMap::new);

fn headers(message: &Message) -> &HeaderMap {
    message.headers.as_ref().unwrap_or(&NO_HEADERS)
}

fn start_process(
    instrumentation: &NatsInstrumentation,
    message: &Message,
    jetstream: JetStreamFacts,
) -> Operation {
    // Counted by a traced fetch if it kept an entry, which keeps the link for the settle; the
    // context the fetch read is taken.
    let entry = jetstream
        .delivery_key
        .as_deref()
        .and_then(|key| instrumentation.fetched().modify(key, |f| f.context.take()));
    let (fetched, kept) = (entry.is_some(), entry.flatten());
    let view = ProcessView { message, jetstream, client: instrumentation, fetched };
    let extractor = HeaderMapExtractor(headers(message));
    // Its context as the traced fetch read it, if kept; else read here.
    instrumentation.instrumenter.operation(&view).with_delivered_context(&extractor, kept.as_ref()).start()
}

/// Traced processing of a received message: a core NATS [`Message`], or a JetStream
/// [`jetstream::Message`], whose process span also gets its JetStream facts (stream sequence,
/// delivery count, queue wait from its timestamp). Settling a JetStream message is
/// [`JetStreamMessageExt`].
pub trait MessageExt: Sized + crate::sealed::Sealed<crate::sealed::MessageExt> {
    /// Runs `handler` inside a `process {subject}` CONSUMER span (current context while it runs);
    /// the span ends with the handler (status and `error.type` from its error).
    ///
    /// Uses [`NatsInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The handler's error, unchanged.
    fn process_traced<F, T, E>(&self, handler: F) -> impl Future<Output = Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        self.process_traced_with(NatsInstrumentation::shared(), handler)
    }

    /// [`process_traced`](Self::process_traced) with an explicit instrumentation (e.g. one with
    /// the subscription's queue group).
    ///
    /// # Errors
    ///
    /// The handler's error, unchanged.
    fn process_traced_with<F, T, E>(
        &self,
        instrumentation: &NatsInstrumentation,
        handler: F,
    ) -> impl Future<Output = Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display;

    /// Starts the process span now and returns the message with it
    /// ([`TracedMessage::process`] runs a handler in it).
    ///
    /// Uses [`NatsInstrumentation::new`].
    fn start_process(self) -> TracedMessage<Self> {
        self.start_process_with(NatsInstrumentation::shared())
    }

    /// [`start_process`](Self::start_process) with an explicit instrumentation.
    fn start_process_with(self, instrumentation: &NatsInstrumentation) -> TracedMessage<Self>;
}

impl crate::sealed::Sealed<crate::sealed::MessageExt> for Message {}
impl MessageExt for Message {
    fn process_traced_with<F, T, E>(
        &self,
        instrumentation: &NatsInstrumentation,
        handler: F,
    ) -> impl Future<Output = Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        start_process(instrumentation, self, JetStreamFacts::default()).run(handler)
    }

    fn start_process_with(self, instrumentation: &NatsInstrumentation) -> TracedMessage<Self> {
        let operation = start_process(instrumentation, &self, JetStreamFacts::default());
        TracedMessage::new(self, operation)
    }
}

/// Traced settling of a JetStream [`jetstream::Message`] (its processing is [`MessageExt`]).
pub trait JetStreamMessageExt: Sized + crate::sealed::Sealed<crate::sealed::JetStreamMessageExt> {
    /// Acknowledges like `message.ack()`, inside an `ack {subject}` settle span (CLIENT) linked
    /// to the message's creation context.
    ///
    /// Uses [`NatsInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The native error, unchanged; the span then ends with `error.type`.
    fn ack_traced(&self) -> impl Future<Output = Result<(), async_nats::Error>> {
        self.ack_with_traced_with(NatsInstrumentation::shared(), jetstream::AckKind::Ack)
    }

    /// [`ack_traced`](Self::ack_traced) with an explicit [`NatsInstrumentation`].
    ///
    /// # Errors
    ///
    /// As [`ack_traced`](Self::ack_traced): the native error, unchanged.
    fn ack_traced_with(
        &self,
        instrumentation: &NatsInstrumentation,
    ) -> impl Future<Output = Result<(), async_nats::Error>> {
        self.ack_with_traced_with(instrumentation, jetstream::AckKind::Ack)
    }

    /// Settles like `message.ack_with(kind)` (`Ack`, `Nak`, `Term`, `Progress`, `Next`) inside a
    /// `{ack|nak|term|progress|next} {subject}` settle span (CLIENT) linked to the message's
    /// creation context. Uses [`NatsInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The native error, unchanged; the span then ends with `error.type`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(message: async_nats::jetstream::Message) -> Result<(), async_nats::Error> {
    /// use async_nats::jetstream::AckKind;
    /// use otel_messaging_async_nats::JetStreamMessageExt as _;
    ///
    /// message.ack_with_traced(AckKind::Nak(None)).await?; // redeliver: a `nak {subject}` span
    /// # Ok(()) }
    /// ```
    fn ack_with_traced(
        &self,
        kind: jetstream::AckKind,
    ) -> impl Future<Output = Result<(), async_nats::Error>> {
        self.ack_with_traced_with(NatsInstrumentation::shared(), kind)
    }

    /// [`ack_with_traced`](Self::ack_with_traced) with an explicit [`NatsInstrumentation`].
    ///
    /// # Errors
    ///
    /// As [`ack_with_traced`](Self::ack_with_traced): the native error, unchanged.
    fn ack_with_traced_with(
        &self,
        instrumentation: &NatsInstrumentation,
        kind: jetstream::AckKind,
    ) -> impl Future<Output = Result<(), async_nats::Error>>;
}

impl crate::sealed::Sealed<crate::sealed::MessageExt> for jetstream::Message {}
impl MessageExt for jetstream::Message {
    fn process_traced_with<F, T, E>(
        &self,
        instrumentation: &NatsInstrumentation,
        handler: F,
    ) -> impl Future<Output = Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        start_process(instrumentation, &self.message, JetStreamFacts::of(self)).run(handler)
    }

    fn start_process_with(self, instrumentation: &NatsInstrumentation) -> TracedMessage<Self> {
        let operation = start_process(instrumentation, &self.message, JetStreamFacts::of(&self));
        TracedMessage::new(self, operation)
    }
}

impl crate::sealed::Sealed<crate::sealed::JetStreamMessageExt> for jetstream::Message {}
impl JetStreamMessageExt for jetstream::Message {
    fn ack_with_traced_with(
        &self,
        instrumentation: &NatsInstrumentation,
        kind: jetstream::AckKind,
    ) -> impl Future<Output = Result<(), async_nats::Error>> {
        let name = match kind {
            jetstream::AckKind::Ack => "ack",
            jetstream::AckKind::Nak(_) => "nak",
            jetstream::AckKind::Term => "term",
            jetstream::AckKind::Progress => "progress",
            jetstream::AckKind::Next => "next",
        };
        // A settle that ends the delivery takes what the fetch kept; `progress` only reads it.
        let ends = !matches!(kind, jetstream::AckKind::Progress);
        let settle = self.ack_with(kind);
        async move {
            // Started when first polled (the acknowledgement is published then), in the current
            // context, linked to the message's creation context.
            let view = SettleView {
                name,
                subject: self.subject.as_str(),
                jetstream: JetStreamFacts::of(self),
                client: instrumentation,
            };
            let kept = view.jetstream.delivery_key.as_deref().and_then(|key| {
                let fetched = instrumentation.fetched();
                if ends { fetched.take(key).map(|f| f.link) } else { fetched.modify(key, |f| f.link.clone()) }
            });
            // The link the traced fetch made, else read from the headers.
            let extractor = HeaderMapExtractor(headers(&self.message));
            let operation =
                instrumentation.instrumenter.operation(&view).with_settled_message(&extractor, kept).start();
            let result = settle.await;
            operation.end(&result, error_type);
            result
        }
    }
}

pin_project_lite::pin_project! {
    /// A subscription whose messages come with their process span started
    /// ([`SubscriberExt::stream_traced`]): each item is a [`TracedMessage`]; run the handler with
    /// [`TracedMessage::process`] (or drop it to end the span).
    #[must_use = "streams do nothing unless polled"]
    #[derive(Debug)]
    pub struct TracedSubscriber {
        #[pin]
        inner: Subscriber,
        instrumentation: NatsInstrumentation,
    }
}

impl TracedSubscriber {
    /// The wrapped subscription (e.g. to `unsubscribe`).
    pub fn inner_mut(&mut self) -> &mut Subscriber {
        &mut self.inner
    }
}

impl Stream for TracedSubscriber {
    type Item = TracedMessage<Message>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.project();
        match this.inner.poll_next(cx) {
            Poll::Ready(Some(message)) => Poll::Ready(Some(message.start_process_with(this.instrumentation))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

/// A traced stream over a core NATS [`Subscriber`].
pub trait SubscriberExt: crate::sealed::Sealed<crate::sealed::SubscriberExt> {
    /// Turns the subscription into a stream of [`TracedMessage`]s, each with its
    /// `process {subject}` span started when it arrives.
    ///
    /// Uses [`NatsInstrumentation::new`].
    fn stream_traced(self) -> TracedSubscriber;

    /// [`stream_traced`](Self::stream_traced) with an explicit instrumentation (e.g. with the
    /// subscription's queue group).
    fn stream_traced_with(self, instrumentation: &NatsInstrumentation) -> TracedSubscriber;
}

impl crate::sealed::Sealed<crate::sealed::SubscriberExt> for Subscriber {}
impl SubscriberExt for Subscriber {
    fn stream_traced(self) -> TracedSubscriber {
        self.stream_traced_with(NatsInstrumentation::shared())
    }

    fn stream_traced_with(self, instrumentation: &NatsInstrumentation) -> TracedSubscriber {
        TracedSubscriber { inner: self, instrumentation: instrumentation.clone() }
    }
}

/// Traced fetches on a JetStream pull consumer.
pub trait PullConsumerExt: crate::sealed::Sealed<crate::sealed::PullConsumerExt> {
    /// Fetches up to `max` messages like `consumer.fetch().max_messages(max).messages()` and
    /// **appends** them to `batch` as they arrive (nothing already in it is touched); returns how
    /// many were appended. One `receive {stream}` CLIENT span covers the call: it starts at the
    /// call, links every message's creation context (link attribute `messaging.message.id` =
    /// stream sequence) and counts the batch (`messaging.batch.message_count`,
    /// `messaging.client.consumed.messages`; their process spans do not count them again). An
    /// empty fetch records a span with a count of 0.
    ///
    /// Uses [`NatsInstrumentation::new`]. Same shape as the Kafka crate's
    /// `recv_batch_traced(&mut batch, max, timeout)`.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: every message received before the future is dropped (`tokio::select!`, a
    /// timeout, shutdown) is already in `batch`, and the receive span of those messages is
    /// recorded on drop (with `error.type = cancelled`).
    ///
    /// # Errors
    ///
    /// The native error of the fetch or of a message of the batch (e.g. a 409 leadership change
    /// midway), unchanged. The messages received before it are in `batch`: process and settle
    /// them as usual. The span ends with `error.type` and counts only what was appended.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(consumer: async_nats::jetstream::consumer::PullConsumer) {
    /// use otel_messaging_async_nats::PullConsumerExt as _;
    ///
    /// let mut batch = Vec::with_capacity(100);
    /// let result = consumer.fetch_traced(&mut batch, 100).await;
    /// for message in batch.drain(..) { /* handle every message, even when `result` is an error */ }
    /// # let _ = result;
    /// # }
    /// ```
    fn fetch_traced(
        &self,
        batch: &mut Vec<jetstream::Message>,
        max: usize,
    ) -> impl Future<Output = Result<usize, async_nats::Error>> {
        self.fetch_traced_with(NatsInstrumentation::shared(), batch, max)
    }

    /// [`fetch_traced`](Self::fetch_traced) with an explicit instrumentation.
    ///
    /// # Errors
    ///
    /// As [`fetch_traced`](Self::fetch_traced).
    fn fetch_traced_with(
        &self,
        instrumentation: &NatsInstrumentation,
        batch: &mut Vec<jetstream::Message>,
        max: usize,
    ) -> impl Future<Output = Result<usize, async_nats::Error>>;
}

impl crate::sealed::Sealed<crate::sealed::PullConsumerExt>
    for jetstream::consumer::Consumer<jetstream::consumer::pull::Config>
{
}
impl PullConsumerExt for jetstream::consumer::Consumer<jetstream::consumer::pull::Config> {
    async fn fetch_traced_with(
        &self,
        instrumentation: &NatsInstrumentation,
        batch: &mut Vec<jetstream::Message>,
        max: usize,
    ) -> Result<usize, async_nats::Error> {
        let info = self.cached_info();
        let mut fetch = FetchGuard {
            instrumentation,
            parent: otel_messaging::current_context(),
            started: std::time::SystemTime::now(),
            stream: &info.stream_name,
            consumer: info.config.durable_name.as_deref().or(Some(info.name.as_str())),
            first: batch.len(),
            batch,
            outcome: Outcome::Cancelled,
        };
        let mut messages = match self.fetch().max_messages(max).messages().await {
            Ok(messages) => messages,
            Err(e) => {
                fetch.outcome = Outcome::Failed(error_type(&e), e.to_string());
                return Err(e.into());
            }
        };
        while let Some(message) = messages.next().await {
            match message {
                Ok(message) => fetch.batch.push(message),
                Err(e) => {
                    fetch.outcome = Outcome::Failed(error_type(&e), e.to_string());
                    return Err(e);
                }
            }
        }
        fetch.outcome = Outcome::Done;
        Ok(fetch.batch.len() - fetch.first)
    }
}

/// How a fetch ended, for its receive span.
enum Outcome {
    /// The future was dropped before the fetch ended.
    Cancelled,
    Done,
    Failed(String, String),
}

/// Records the `receive` span of the messages appended to `batch` when dropped: at the end of
/// `fetch_traced`, on its error, or when its future is cancelled.
struct FetchGuard<'g> {
    instrumentation: &'g NatsInstrumentation,
    parent: opentelemetry::Context,
    started: std::time::SystemTime,
    stream: &'g str,
    consumer: Option<&'g str>,
    first: usize,
    batch: &'g mut Vec<jetstream::Message>,
    outcome: Outcome,
}

impl Drop for FetchGuard<'_> {
    fn drop(&mut self) {
        let received = self.batch.get(self.first..).unwrap_or_default();
        let view = ReceiveView {
            stream: self.stream,
            consumer: self.consumer,
            messages: Some(received.len() as u64),
            client: self.instrumentation,
        };
        // Each message's context read once (lever 26, BENCHMARKS.md): for its link here and,
        // kept when small, its process span.
        let instrumenter = &self.instrumentation.instrumenter;
        let mut links = Vec::with_capacity(received.len());
        let mut kept = Vec::with_capacity(received.len());
        for message in received {
            let facts = JetStreamFacts::of(message);
            let context = instrumenter.extract_delivered(&HeaderMapExtractor(headers(message)));
            let attributes =
                facts.stream_sequence.map(|id| vec![crate::attributes::message_id(id)]).unwrap_or_default();
            links.extend(context.link(attributes));
            if let Some(key) = facts.delivery_key {
                let link = context.link(Vec::new());
                kept.push((key, Fetched { context: context.keepable(), link }));
            }
        }
        let operation = instrumenter
            .operation(&view)
            .with_parent(&self.parent)
            .with_start_time(self.started)
            .with_links(links)
            .start();
        // Every appended message is the caller's now and counted here: its process span does
        // not count it again.
        for (key, context) in kept {
            self.instrumentation.fetched().put(key, context);
        }
        match std::mem::replace(&mut self.outcome, Outcome::Done) {
            Outcome::Done => operation.end_ok(),
            Outcome::Cancelled => operation.end_error("cancelled", "the fetch was cancelled"),
            Outcome::Failed(error_type, description) => operation.end_error(&error_type, description),
        }
    }
}
