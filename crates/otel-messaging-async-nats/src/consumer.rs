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
use otel_messaging::{Operation, TracedMessage};

use crate::{
    attributes::{JetStreamFacts, ProcessView, SettleView, error_type},
    carrier::HeaderMapExtractor,
    config::NatsInstrumentation,
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
    let view = ProcessView { message, jetstream, client: instrumentation };
    instrumentation.instrumenter.start_process(&view, &HeaderMapExtractor(headers(message)))
}

/// Traced processing of a core NATS [`Message`].
pub trait MessageExt: Sized {
    /// Runs `handler` inside a `process {subject}` CONSUMER span (current context while it runs);
    /// the span ends with the handler (status and `error.type` from its error).
    ///
    /// Uses [`NatsInstrumentation::global`].
    ///
    /// # Errors
    ///
    /// The handler's error, unchanged.
    fn process_traced<F, T, E>(&self, handler: F) -> impl Future<Output = Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        self.process_traced_with(NatsInstrumentation::global(), handler)
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
    /// Uses [`NatsInstrumentation::global`].
    fn traced(self) -> TracedMessage<Self> {
        self.traced_with(NatsInstrumentation::global())
    }

    /// [`traced`](Self::traced) with an explicit instrumentation.
    fn traced_with(self, instrumentation: &NatsInstrumentation) -> TracedMessage<Self>;
}

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

    fn traced_with(self, instrumentation: &NatsInstrumentation) -> TracedMessage<Self> {
        let operation = start_process(instrumentation, &self, JetStreamFacts::default());
        TracedMessage::new(self, operation)
    }
}

/// Traced processing and settling of a JetStream [`jetstream::Message`].
pub trait JetStreamMessageExt: Sized {
    /// Runs `handler` inside a `process {subject}` CONSUMER span with the JetStream facts.
    ///
    /// Uses [`NatsInstrumentation::global`].
    ///
    /// # Errors
    ///
    /// The handler's error, unchanged.
    fn process_traced<F, T, E>(&self, handler: F) -> impl Future<Output = Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        self.process_traced_with(NatsInstrumentation::global(), handler)
    }

    /// [`process_traced`](Self::process_traced) with an explicit instrumentation.
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

    /// Starts the process span now and returns the message with it.
    ///
    /// Uses [`NatsInstrumentation::global`].
    fn traced(self) -> TracedMessage<Self> {
        self.traced_with(NatsInstrumentation::global())
    }

    /// [`traced`](Self::traced) with an explicit instrumentation.
    fn traced_with(self, instrumentation: &NatsInstrumentation) -> TracedMessage<Self>;

    /// Acknowledges like `message.ack()`, inside an `ack {subject}` settle span (CLIENT) linked
    /// to the message's creation context.
    ///
    /// Uses [`NatsInstrumentation::global`].
    ///
    /// # Errors
    ///
    /// The native error, unchanged; the span then ends with `error.type`.
    fn ack_traced(&self) -> impl Future<Output = Result<(), async_nats::Error>> {
        self.ack_kind_traced_with(NatsInstrumentation::global(), jetstream::AckKind::Ack)
    }

    /// Settles like `message.ack_with(kind)` (`Ack`, `Nak`, `Term`, `Progress`, `Next`) inside a
    /// `{ack|nak|term|progress|next} {subject}` settle span (CLIENT) linked to the message's
    /// creation context.
    ///
    /// # Errors
    ///
    /// The native error, unchanged; the span then ends with `error.type`.
    fn ack_kind_traced_with(
        &self,
        instrumentation: &NatsInstrumentation,
        kind: jetstream::AckKind,
    ) -> impl Future<Output = Result<(), async_nats::Error>>;
}

impl JetStreamMessageExt for jetstream::Message {
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

    fn traced_with(self, instrumentation: &NatsInstrumentation) -> TracedMessage<Self> {
        let operation = start_process(instrumentation, &self.message, JetStreamFacts::of(&self));
        TracedMessage::new(self, operation)
    }

    fn ack_kind_traced_with(
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
        let view = SettleView {
            name,
            subject: self.subject.as_str(),
            stream_sequence: JetStreamFacts::of(self).stream_sequence,
            client: instrumentation,
        };
        let extractor = HeaderMapExtractor(headers(&self.message));
        let operation = instrumentation.instrumenter.start_batch(
            &view,
            &otel_messaging::current_context(),
            None,
            [(&extractor as &dyn opentelemetry::propagation::Extractor, Vec::new())],
        );
        let settle = self.ack_with(kind);
        async move {
            let result = settle.await;
            operation.end(&result, |e| error_type(e));
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
            Poll::Ready(Some(message)) => Poll::Ready(Some(message.traced_with(this.instrumentation))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

/// A traced stream over a core NATS [`Subscriber`].
pub trait SubscriberExt {
    /// Turns the subscription into a stream of [`TracedMessage`]s, each with its
    /// `process {subject}` span started when it arrives.
    ///
    /// Uses [`NatsInstrumentation::global`].
    fn stream_traced(self) -> TracedSubscriber;

    /// [`stream_traced`](Self::stream_traced) with an explicit instrumentation (e.g. with the
    /// subscription's queue group).
    fn stream_traced_with(self, instrumentation: &NatsInstrumentation) -> TracedSubscriber;
}

impl SubscriberExt for Subscriber {
    fn stream_traced(self) -> TracedSubscriber {
        self.stream_traced_with(NatsInstrumentation::global())
    }

    fn stream_traced_with(self, instrumentation: &NatsInstrumentation) -> TracedSubscriber {
        TracedSubscriber { inner: self, instrumentation: instrumentation.clone() }
    }
}
