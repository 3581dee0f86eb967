//! Traced consumption.
//!
//! - Receive: [`StreamConsumerExt::recv_traced`], [`stream_traced`](StreamConsumerExt::stream_traced)
//!   and [`recv_batch_traced`](StreamConsumerExt::recv_batch_traced) record a `poll {topic}`
//!   CLIENT span per poll (semconv v1.44 `messaging-spans.md`: "Receive spans SHOULD be created
//!   for … pull-based scenarios"; `kafka.md` names the operation `poll`), linked to the creation
//!   context of every message it returned, and count the messages in
//!   `messaging.client.consumed.messages`.
//! - Process: [`MessageExt::process_traced`] and [`MessageExt::start_process`] (and the stream, which
//!   starts it for you) record a `process {topic}` CONSUMER span around the handler. Parent and
//!   links follow the instrumenter's [`ProcessParent`](otel_messaging::ProcessParent) policy
//!   ("Consumer spans"); queue wait is measured from the record timestamp.
//! - Settle: [`ConsumerExt`] records `commit {topic}` / `store_offset {topic}` CLIENT spans for
//!   offset commits, linked to the committed message's creation context ("Settlement spans").
//!
//! A message returned by a traced receive remembers its client, so its process span carries the
//! client's facts (server, client id, consumer group, cluster id) and is not counted twice.

use std::{
    future::Future,
    pin::Pin,
    task::{Context as TaskContext, Poll},
    time::{Duration, SystemTime},
};

use futures_core::Stream;
use opentelemetry::Context;
use otel_messaging::{Operation, TracedMessage};
use rdkafka::{
    ClientContext, TopicPartitionList,
    client::Client,
    consumer::{CommitMode, Consumer, ConsumerContext, StreamConsumer, stream_consumer::MessageStream},
    error::KafkaResult,
    message::{BorrowedMessage, Message, OwnedMessage},
    util::AsyncRuntime,
};

use crate::{
    attributes::{
        OPERATION_COMMIT, OPERATION_STORE_OFFSET, PollView, ProcessView, SettleView, SingleMessage,
        error_type, link_attributes,
    },
    carrier::{PropagationHeaders, RawHeaders},
    config::{ClientFacts, KafkaInstrumentation, topic_handle},
};

mod kept;
use kept::{ReceivedKey, keep_processed, keep_received, processed_link, take_received};

mod sealed {
    pub trait Sealed {}
    impl Sealed for rdkafka::message::BorrowedMessage<'_> {}
    impl Sealed for rdkafka::message::OwnedMessage {}
}

/// A Kafka message the instrumentation can read: rdkafka's [`BorrowedMessage`] (which knows its
/// client when a traced receive returned it) and [`OwnedMessage`] (detached: its spans carry the
/// [`KafkaInstrumentation::from_config`] facts). Sealed.
pub trait KafkaMessage: Message<Headers: RawHeaders> + sealed::Sealed {
    #[doc(hidden)]
    fn topic_handle(&self) -> Option<(usize, &str)>;

    /// What tells this received record from any other (a `ReceivedKey`); `None` for a detached one.
    #[doc(hidden)]
    fn received_key(&self) -> Option<ReceivedKey>;
}

impl KafkaMessage for BorrowedMessage<'_> {
    fn topic_handle(&self) -> Option<(usize, &str)> {
        Some((topic_handle(self), self.topic()))
    }

    fn received_key(&self) -> Option<ReceivedKey> {
        Some(ReceivedKey {
            message: self.ptr() as usize,
            topic: topic_handle(self),
            partition: self.partition(),
            offset: self.offset(),
        })
    }
}

impl KafkaMessage for OwnedMessage {
    fn topic_handle(&self) -> Option<(usize, &str)> {
        None
    }

    fn received_key(&self) -> Option<ReceivedKey> {
        None
    }
}

/// The creation-context reader of a message (empty without headers): its propagation fields
/// found in one pass.
fn extractor<M: Message<Headers: RawHeaders> + ?Sized>(message: &M) -> PropagationHeaders<'_> {
    PropagationHeaders::scan(message.headers())
}

/// Starts the process operation of `message` inside the current context.
fn start_process<M: KafkaMessage + ?Sized>(instrumentation: &KafkaInstrumentation, message: &M) -> Operation {
    let (facts, counted) = instrumentation.facts_of_message(message.topic_handle());
    let view = ProcessView {
        message,
        cluster_id: facts.cached_cluster_id(),
        client: &facts,
        capture_key: instrumentation.captures_key(),
        counted,
    };
    let builder = instrumentation.instrumenter.operation(&view);
    match message.received_key().and_then(take_received) {
        // Its propagation fields were read by its receive: the headers only for what else asks.
        Some(received) => {
            let headers = PropagationHeaders::unscanned(message.headers());
            let operation = builder.with_delivered_context(&headers, Some(&received)).start();
            // Kept on for the links of its settle spans.
            if let Some(key) = message.received_key() {
                keep_processed(key, received);
            }
            operation
        }
        None => builder.with_delivered_message(&extractor(message)).start(),
    }
}

/// Traced processing of a received Kafka message ([`BorrowedMessage`], [`OwnedMessage`]).
pub trait MessageExt: KafkaMessage + crate::sealed::Sealed<crate::sealed::MessageExt> {
    /// Runs `handler` inside a `process {topic}` CONSUMER span and returns its result unchanged.
    ///
    /// The span starts now and ends when `handler` completes; spans the handler creates nest under
    /// it (its context is current while the handler is polled). The creation context comes from
    /// the message headers (strict W3C validation); parent and links follow the instrumenter's
    /// policy, with the current context as the ambient one. Uses [`KafkaInstrumentation::new`].
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
    /// use otel_messaging_rdkafka::{MessageExt as _, StreamConsumerExt as _};
    ///
    /// let message = consumer.recv_traced().await?;
    /// message.process_traced(async { /* handle */ Ok::<_, anyhow::Error>(()) }).await?;
    /// # Ok(()) }
    /// ```
    fn process_traced<F, T, E>(&self, handler: F) -> impl Future<Output = Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        self.process_traced_with(KafkaInstrumentation::shared(), handler)
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
        E: std::fmt::Display,
    {
        start_process(instrumentation, self).run(handler)
    }

    /// Starts the `process {topic}` CONSUMER span of this message now and returns the message
    /// with it; run the handler with [`TracedMessage::process`], or use
    /// [`TracedMessage::context`] as the parent of your own spans. Uses
    /// [`KafkaInstrumentation::new`].
    ///
    /// ```no_run
    /// # use otel_messaging_rdkafka::MessageExt as _;
    /// # use rdkafka::Message as _;
    /// # async fn f(message: rdkafka::message::OwnedMessage) {
    /// let (message, result) =
    ///     message.start_process().process(async |m| Ok::<_, std::io::Error>(m.offset())).await;
    /// # }
    /// ```
    ///
    /// What it returns is not the message: a second process span for it does not compile.
    ///
    /// ```compile_fail
    /// # use otel_messaging_rdkafka::MessageExt as _;
    /// # use rdkafka::Message as _;
    /// # async fn f(message: rdkafka::message::OwnedMessage) {
    /// let started = message.start_process();
    /// started.process_traced(async { Ok::<_, std::io::Error>(()) }).await; // no such method
    /// # }
    /// ```
    fn start_process(self) -> TracedMessage<Self>
    where
        Self: Sized,
    {
        self.start_process_with(KafkaInstrumentation::shared())
    }

    /// [`start_process`](Self::start_process) with an explicit [`KafkaInstrumentation`].
    fn start_process_with(self, instrumentation: &KafkaInstrumentation) -> TracedMessage<Self>
    where
        Self: Sized,
    {
        let operation = start_process(instrumentation, &self);
        TracedMessage::new(self, operation)
    }
}

impl<M: KafkaMessage + ?Sized> crate::sealed::Sealed<crate::sealed::MessageExt> for M {}
impl<M: KafkaMessage + ?Sized> MessageExt for M {}

/// Records the single-message `poll {topic}` span of one receive that started at `started`.
fn record_receive<Cx: ClientContext>(
    instrumentation: &KafkaInstrumentation,
    client: &Client<Cx>,
    parent: &Context,
    started: SystemTime,
    result: &KafkaResult<BorrowedMessage<'_>>,
) {
    let facts = ClientFacts::of(client);
    if !instrumentation.receive_spans() {
        // No poll span: the message's facts still reach its process span, which counts it.
        if let Ok(message) = result {
            facts.remember_message(message);
        }
        return;
    }
    match result {
        Ok(message) => {
            facts.remember_message(message);
            let view = PollView {
                topic: Some(message.topic()),
                partition: Some(message.partition()),
                count: None,
                single: Some(SingleMessage {
                    offset: message.offset(),
                    key: message.key(),
                    capture_key: instrumentation.captures_key(),
                    tombstone: message.payload().is_none(),
                }),
                cluster_id: facts.cluster_id(client),
                client: &facts,
            };
            // Read once for the link and for the process span that follows.
            let received = instrumentation.instrumenter.extract_delivered(&extractor(message));
            let links = received.link(Vec::new()).into_iter().collect();
            instrumentation
                .instrumenter
                .operation(&view)
                .with_parent(parent)
                .with_start_time(started)
                .with_links(links)
                .start()
                .end_ok();
            if let Some(key) = message.received_key() {
                keep_received(key, received);
            }
        }
        // The end of a partition (`enable.partition.eof`) is librdkafka's signal that the consumer
        // caught up, not a failure (issue "Spec-exact and bounded"): like a poll that waited and
        // got nothing, it records no span.
        Err(e) if is_end_of_partition(e) => {}
        Err(e) => {
            let view = PollView {
                topic: None,
                partition: None,
                count: None,
                single: None,
                cluster_id: facts.cluster_id(client),
                client: &facts,
            };
            instrumentation
                .instrumenter
                .operation(&view)
                .with_parent(parent)
                .with_start_time(started)
                .start()
                .end_error(&error_type(e), e);
        }
    }
}

pin_project_lite::pin_project! {
    /// The stream of [`StreamConsumerExt::stream_traced`]: each message's `poll` span is recorded
    /// and its process span started when the message is handed over.
    pub struct TracedStream<'a, C: ConsumerContext> {
        #[pin]
        inner: MessageStream<'a, C>,
        client: &'a Client<C>,
        instrumentation: &'a KafkaInstrumentation,
        started: Option<SystemTime>,
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
        let started = *this.started.get_or_insert_with(SystemTime::now);
        let instrumentation = *this.instrumentation;
        let client = *this.client;
        let item = std::task::ready!(this.inner.poll_next(cx));
        *this.started = None;
        Poll::Ready(item.map(|result| {
            record_receive(instrumentation, client, &otel_messaging::current_context(), started, &result);
            result.map(|message| {
                let operation = start_process(instrumentation, &message);
                TracedMessage::new(message, operation)
            })
        }))
    }
}

/// Traced receives on rdkafka's [`StreamConsumer`].
pub trait StreamConsumerExt<C: ConsumerContext + 'static>:
    crate::sealed::Sealed<crate::sealed::StreamConsumerExt<C>>
{
    /// Receives one message like [`StreamConsumer::recv`] and records its `poll {topic}` CLIENT
    /// span: from this call to the message, linked to the message's creation context, with its
    /// partition, offset and key (single-message attributes). A failed receive records the span
    /// with `error.type`. Uses [`KafkaInstrumentation::new`].
    ///
    /// Cancel safe, like `recv`: a future dropped before a message arrived received nothing and
    /// records nothing.
    ///
    /// # Errors
    ///
    /// The native error, unchanged. `PartitionEOF` (with `enable.partition.eof`) is returned too
    /// but records no span: it is the end-of-partition signal, not a failure.
    fn recv_traced(&self) -> impl Future<Output = KafkaResult<BorrowedMessage<'_>>> {
        self.recv_traced_with(KafkaInstrumentation::shared())
    }

    /// [`recv_traced`](Self::recv_traced) with an explicit [`KafkaInstrumentation`].
    ///
    /// # Errors
    ///
    /// As [`recv_traced`](Self::recv_traced).
    fn recv_traced_with<'a>(
        &'a self,
        instrumentation: &'a KafkaInstrumentation,
    ) -> impl Future<Output = KafkaResult<BorrowedMessage<'a>>>;

    /// Like [`StreamConsumer::stream`], with each message's `poll {topic}` span recorded (as
    /// [`recv_traced`](Self::recv_traced)) and each message handed over as a [`TracedMessage`]
    /// whose `process {topic}` CONSUMER span has started. Uses [`KafkaInstrumentation::new`].
    fn stream_traced(&self) -> TracedStream<'_, C> {
        self.stream_traced_with(KafkaInstrumentation::shared())
    }

    /// [`stream_traced`](Self::stream_traced) with an explicit [`KafkaInstrumentation`].
    fn stream_traced_with<'a>(&'a self, instrumentation: &'a KafkaInstrumentation) -> TracedStream<'a, C>;

    /// Receives up to `max_messages` messages into `batch`, waiting at most `timeout` in total,
    /// and records one `poll {topic}` CLIENT span for them: it starts when this call starts, links
    /// every message's creation context (link attributes: partition, offset, and topic when the
    /// batch spans several topics), and carries `messaging.batch.message_count`. An empty poll
    /// records no span; a failed one records it with `error.type`. Uses
    /// [`KafkaInstrumentation::new`].
    ///
    /// Messages are **appended** to `batch` as they arrive (nothing already in it is touched);
    /// returns how many were appended. Process them with [`MessageExt::process_traced`] (they are
    /// not counted again). `timeout` may be anything up to `Duration::MAX` (no deadline); the
    /// deadline uses a runtime-independent timer ([`futures_timer`]), so this works on any
    /// [`AsyncRuntime`], inside or outside a Tokio runtime.
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
    /// The first consumer error, unchanged (a transport or authorization error; `PartitionEOF`
    /// with `enable.partition.eof`, which the poll span does not record as an error). It ends the call: the messages received before it are
    /// in `batch` (process them too), and the poll span records the error (`error.type`).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run(consumer: rdkafka::consumer::StreamConsumer) {
    /// use otel_messaging_rdkafka::StreamConsumerExt as _;
    /// use std::time::Duration;
    ///
    /// let mut batch = Vec::with_capacity(100);
    /// let result = consumer.recv_batch_traced(&mut batch, 100, Duration::from_secs(1)).await;
    /// for message in batch.drain(..) { /* handle every message, even when `result` is an error */ }
    /// # }
    /// ```
    fn recv_batch_traced<'a>(
        &'a self,
        batch: &mut Vec<BorrowedMessage<'a>>,
        max_messages: usize,
        timeout: Duration,
    ) -> impl Future<Output = KafkaResult<usize>> {
        self.recv_batch_traced_with(KafkaInstrumentation::shared(), batch, max_messages, timeout)
    }

    /// [`recv_batch_traced`](Self::recv_batch_traced) with an explicit [`KafkaInstrumentation`].
    ///
    /// # Errors
    ///
    /// As [`recv_batch_traced`](Self::recv_batch_traced).
    fn recv_batch_traced_with<'a>(
        &'a self,
        instrumentation: &'a KafkaInstrumentation,
        batch: &mut Vec<BorrowedMessage<'a>>,
        max_messages: usize,
        timeout: Duration,
    ) -> impl Future<Output = KafkaResult<usize>>;
}

impl<C, R> crate::sealed::Sealed<crate::sealed::StreamConsumerExt<C>> for StreamConsumer<C, R>
where
    C: ConsumerContext + 'static,
    R: AsyncRuntime,
{
}
impl<C, R> StreamConsumerExt<C> for StreamConsumer<C, R>
where
    C: ConsumerContext + 'static,
    R: AsyncRuntime,
{
    async fn recv_traced_with<'a>(
        &'a self,
        instrumentation: &'a KafkaInstrumentation,
    ) -> KafkaResult<BorrowedMessage<'a>> {
        let parent = otel_messaging::current_context();
        let started = SystemTime::now();
        let result = self.recv().await;
        record_receive(instrumentation, self.client(), &parent, started, &result);
        result
    }

    fn stream_traced_with<'a>(&'a self, instrumentation: &'a KafkaInstrumentation) -> TracedStream<'a, C> {
        TracedStream { inner: self.stream(), client: self.client(), instrumentation, started: None }
    }

    async fn recv_batch_traced_with<'a>(
        &'a self,
        instrumentation: &'a KafkaInstrumentation,
        batch: &mut Vec<BorrowedMessage<'a>>,
        max_messages: usize,
        timeout: Duration,
    ) -> KafkaResult<usize> {
        use futures_util::future::{Either, select};

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
                // The end of a partition ends the call (the native error, unchanged) but fails
                // nothing: the poll span records what was received, without an error.
                Err(e) if is_end_of_partition(&e) => return Err(e),
                Err(e) => {
                    poll.error = Some((error_type(&e), e.to_string()));
                    return Err(e);
                }
            }
        }
        Ok(poll.batch.len() - poll.first)
    }
}

/// Whether `error` is librdkafka's end-of-partition event (`enable.partition.eof`): a signal that
/// the consumer reached the end of a partition, reported through the error channel, not a failure.
fn is_end_of_partition(error: &rdkafka::error::KafkaError) -> bool {
    matches!(error, rdkafka::error::KafkaError::PartitionEOF(_))
}

/// Records the `poll` span of the messages appended to `batch` (or of the error) when dropped: at
/// the end of `recv_batch_traced`, or when its future is cancelled.
struct PollGuard<'g, 'a, Cx: ClientContext> {
    instrumentation: &'g KafkaInstrumentation,
    client: &'g Client<Cx>,
    parent: Context,
    started: SystemTime,
    first: usize,
    batch: &'g mut Vec<BorrowedMessage<'a>>,
    error: Option<(std::borrow::Cow<'static, str>, String)>,
}

impl<Cx: ClientContext> Drop for PollGuard<'_, '_, Cx> {
    fn drop(&mut self) {
        let received = self.batch.get(self.first..).unwrap_or_default();
        if received.is_empty() && self.error.is_none() {
            return;
        }
        let facts = ClientFacts::of(self.client);
        if !self.instrumentation.receive_spans() {
            // No poll span: the messages' facts still reach their process spans, which count them.
            for message in received {
                facts.remember_message(message);
            }
            return;
        }
        let first = received.first();
        let same_topic = received.iter().all(|m| Some(m.topic()) == first.map(|f| f.topic()));
        let same_partition =
            same_topic && received.iter().all(|m| Some(m.partition()) == first.map(|f| f.partition()));
        let view = PollView {
            topic: first.filter(|_| same_topic).map(|f| f.topic()),
            partition: first.filter(|_| same_partition).map(|f| f.partition()),
            count: Some(received.len() as u64),
            single: None,
            cluster_id: facts.cluster_id(self.client),
            client: &facts,
        };
        // Each record's context read once, for its link here and its process span (lever 26).
        let instrumenter = &self.instrumentation.instrumenter;
        let mut links = Vec::with_capacity(received.len());
        let mut contexts = Vec::with_capacity(received.len());
        for message in received {
            facts.remember_message(message);
            let context = instrumenter.extract_delivered(&extractor(message));
            links.extend(context.link(link_attributes(message, !same_topic)));
            contexts.extend(message.received_key().map(|key| (key, context)));
        }
        let operation = instrumenter
            .operation(&view)
            .with_parent(&self.parent)
            .with_start_time(self.started)
            .with_links(links)
            .start();
        for (key, context) in contexts {
            keep_received(key, context);
        }
        match self.error.take() {
            Some((error_type, description)) => operation.end_error(&error_type, description),
            None => operation.end_ok(),
        }
    }
}

/// Runs a settle call inside its span: linked to the creation context of `message` (if any),
/// ended with the native result, which is returned unchanged.
fn settle<Cx: ClientContext>(
    instrumentation: &KafkaInstrumentation,
    client: &Client<Cx>,
    operation_name: &'static str,
    target: SettleTarget<'_, '_>,
    call: impl FnOnce() -> KafkaResult<()>,
) -> KafkaResult<()> {
    let facts = ClientFacts::of(client);
    let list_topic: Option<String>;
    let (topic, partition, offset, message) = match target {
        SettleTarget::Message(m) => (Some(m.topic()), Some(m.partition()), Some(m.offset()), Some(m)),
        SettleTarget::List(list) => {
            let elements = list.elements();
            let first = elements.first();
            let same_topic = elements.iter().all(|e| Some(e.topic()) == first.map(|f| f.topic()));
            list_topic = first.filter(|_| same_topic).map(|f| f.topic().to_owned());
            let partition = first.filter(|_| elements.len() == 1).map(|f| f.partition());
            (list_topic.as_deref(), partition, None, None)
        }
        SettleTarget::State => (None, None, None, None),
    };
    let view = SettleView {
        operation_name,
        topic,
        partition,
        offset,
        cluster_id: facts.cluster_id(client),
        client: &facts,
    };
    let parent = otel_messaging::current_context();
    let instrumenter = &instrumentation.instrumenter;
    let operation = match message {
        // Linked from the reading its receive made, else from its headers.
        Some(m) => {
            let kept = m.received_key().and_then(|key| processed_link(key, instrumenter));
            // Its headers are scanned only when they are read.
            let headers =
                if kept.is_some() { PropagationHeaders::unscanned(m.headers()) } else { extractor(m) };
            instrumenter.operation(&view).with_parent(&parent).with_settled_message(&headers, kept).start()
        }
        None => instrumenter.operation(&view).with_parent(&parent).start(),
    };
    let result = call();
    operation.end(&result, error_type);
    result
}

enum SettleTarget<'m, 'a> {
    Message(&'m BorrowedMessage<'a>),
    List(&'m TopicPartitionList),
    State,
}

/// Traced offset commits (settle spans) on any rdkafka [`Consumer`].
///
/// Each call records a `commit {topic}` (or `store_offset {topic}`) CLIENT span, `messaging.
/// operation.type = settle`, with the consumer group, partition and, for a message, its offset and
/// a link to its creation context (semconv v1.44 `messaging-spans.md`, "Settlement spans"). The
/// span covers the native call: with [`CommitMode::Async`] that is the enqueueing of the commit,
/// not the broker's answer. Native results come back unchanged. The plain methods use
/// [`KafkaInstrumentation::new`].
pub trait ConsumerExt<C: ConsumerContext>:
    Consumer<C> + crate::sealed::Sealed<crate::sealed::ConsumerExt<C>>
{
    /// [`Consumer::commit_message`], traced.
    ///
    /// # Errors
    ///
    /// The native error, unchanged; the span gets `error.type`.
    fn commit_message_traced(&self, message: &BorrowedMessage<'_>, mode: CommitMode) -> KafkaResult<()> {
        self.commit_message_traced_with(KafkaInstrumentation::shared(), message, mode)
    }

    /// [`commit_message_traced`](Self::commit_message_traced) with an explicit instrumentation.
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn commit_message_traced_with(
        &self,
        instrumentation: &KafkaInstrumentation,
        message: &BorrowedMessage<'_>,
        mode: CommitMode,
    ) -> KafkaResult<()> {
        settle(instrumentation, self.client(), OPERATION_COMMIT, SettleTarget::Message(message), || {
            self.commit_message(message, mode)
        })
    }

    /// [`Consumer::store_offset_from_message`] (the offset the next auto-commit commits), traced.
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn store_offset_from_message_traced(&self, message: &BorrowedMessage<'_>) -> KafkaResult<()> {
        self.store_offset_from_message_traced_with(KafkaInstrumentation::shared(), message)
    }

    /// [`store_offset_from_message_traced`](Self::store_offset_from_message_traced) with an
    /// explicit instrumentation.
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn store_offset_from_message_traced_with(
        &self,
        instrumentation: &KafkaInstrumentation,
        message: &BorrowedMessage<'_>,
    ) -> KafkaResult<()> {
        settle(instrumentation, self.client(), OPERATION_STORE_OFFSET, SettleTarget::Message(message), || {
            self.store_offset_from_message(message)
        })
    }

    /// [`Consumer::commit`] of a topic-partition list, traced (no links: the list holds offsets,
    /// not messages).
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn commit_traced(&self, offsets: &TopicPartitionList, mode: CommitMode) -> KafkaResult<()> {
        self.commit_traced_with(KafkaInstrumentation::shared(), offsets, mode)
    }

    /// [`commit_traced`](Self::commit_traced) with an explicit instrumentation.
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn commit_traced_with(
        &self,
        instrumentation: &KafkaInstrumentation,
        offsets: &TopicPartitionList,
        mode: CommitMode,
    ) -> KafkaResult<()> {
        settle(instrumentation, self.client(), OPERATION_COMMIT, SettleTarget::List(offsets), || {
            self.commit(offsets, mode)
        })
    }

    /// [`Consumer::commit_consumer_state`], traced (span `commit`, no destination).
    ///
    /// # Errors
    ///
    /// The native error, unchanged (e.g. `NO_OFFSET` when nothing was consumed).
    fn commit_consumer_state_traced(&self, mode: CommitMode) -> KafkaResult<()> {
        self.commit_consumer_state_traced_with(KafkaInstrumentation::shared(), mode)
    }

    /// [`commit_consumer_state_traced`](Self::commit_consumer_state_traced) with an explicit
    /// instrumentation.
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn commit_consumer_state_traced_with(
        &self,
        instrumentation: &KafkaInstrumentation,
        mode: CommitMode,
    ) -> KafkaResult<()> {
        settle(instrumentation, self.client(), OPERATION_COMMIT, SettleTarget::State, || {
            self.commit_consumer_state(mode)
        })
    }
}

impl<C: ConsumerContext, T: Consumer<C> + ?Sized> crate::sealed::Sealed<crate::sealed::ConsumerExt<C>> for T {}
impl<C: ConsumerContext, T: Consumer<C> + ?Sized> ConsumerExt<C> for T {}
