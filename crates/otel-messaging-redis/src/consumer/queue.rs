//! Traced list pops (`BRPOP`, `BLMOVE`) and pub/sub messages: the context travels in the opt-in
//! envelope ([`crate::envelope`]), removed before the payload reaches the application.

use std::{future::Future, time::SystemTime};

use opentelemetry::{Context, propagation::Extractor};
use otel_messaging::{
    __private::{DeliveredContext, EmptyExtractor},
    OperationType, TracedMessage,
};
use redis::{RedisResult, aio::ConnectionLike};

use super::{OPERATION_PROCESS, OPERATION_RECEIVE};
use crate::{
    attributes::{RedisView, error_type},
    config::RedisInstrumentation,
    envelope::{EnvelopeHeaders, decode},
};

/// A message popped from a list or received on a pub/sub channel, with the envelope removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    /// The list or channel it came from.
    pub source: String,
    /// The payload: the envelope's payload, or the bytes unchanged when they were not an envelope.
    pub payload: Vec<u8>,
}

/// Starts the process span of a list or pub/sub message; `counted` when a traced receive (the
/// pop) already counted it.
fn start_queue_process(
    instrumentation: &RedisInstrumentation,
    source: String,
    pattern: Option<&str>,
    bytes: &[u8],
    counted: bool,
) -> TracedMessage<QueueMessage> {
    let (headers, payload) = decode(bytes);
    start_decoded_process(instrumentation, source, pattern, headers.as_ref(), payload, counted, None)
}

/// [`start_queue_process`] for a message already decoded, whose context its receive may have
/// read already (`received`; then the envelope is neither decoded nor read a second time).
fn start_decoded_process(
    instrumentation: &RedisInstrumentation,
    source: String,
    pattern: Option<&str>,
    headers: Option<&EnvelopeHeaders>,
    payload: &[u8],
    counted: bool,
    received: Option<&DeliveredContext>,
) -> TracedMessage<QueueMessage> {
    let mut view = RedisView::new(OperationType::Process, OPERATION_PROCESS, Some(&source), instrumentation);
    view.template = pattern;
    view.body_size = Some(payload.len() as u64);
    view.counted = counted;
    view.sent = headers.and_then(EnvelopeHeaders::sent_time);
    let message: &dyn Extractor = match headers {
        Some(h) => h,
        None => &EmptyExtractor,
    };
    let operation =
        instrumentation.instrumenter.operation(&view).with_delivered_context(message, received).start();
    let payload = payload.to_vec();
    TracedMessage::new(QueueMessage { source, payload }, operation)
}

/// Records the `receive {list}` span of a blocking pop that started at `started`, and starts the
/// popped message's process span. Nothing is recorded for a pop that timed out empty.
fn record_pop(
    instrumentation: &RedisInstrumentation,
    parent: &Context,
    started: SystemTime,
    list: &str,
    result: RedisResult<Option<(String, Vec<u8>)>>,
) -> RedisResult<Option<TracedMessage<QueueMessage>>> {
    let view =
        |destination| RedisView::new(OperationType::Receive, OPERATION_RECEIVE, destination, instrumentation);
    match result {
        Ok(Some((source, bytes))) => {
            let (headers, payload) = decode(&bytes);
            let extractor: &dyn Extractor = match &headers {
                Some(h) => h,
                None => &EmptyExtractor,
            };
            // Read once, for the receive's link and the process span (lever 25, BENCHMARKS.md).
            let received = instrumentation.instrumenter.extract_delivered(extractor);
            let receive = view(Some(&source));
            instrumentation
                .instrumenter
                .operation(&receive)
                .with_parent(parent)
                .with_start_time(started)
                .with_links(received.link(Vec::new()).into_iter().collect())
                .start()
                .end_ok();
            Ok(Some(start_decoded_process(
                instrumentation,
                source,
                None,
                headers.as_ref(),
                payload,
                true,
                Some(&received),
            )))
        }
        Ok(None) => Ok(None),
        Err(e) => {
            instrumentation
                .instrumenter
                .operation(&view(Some(list)))
                .with_parent(parent)
                .with_start_time(started)
                .start()
                .end_error(&error_type(&e), &e);
            Err(e)
        }
    }
}

/// Traced list consumption with the envelope.
pub trait QueueConsumerExt:
    ConnectionLike + Send + Sized + crate::sealed::Sealed<crate::sealed::QueueConsumerExt>
{
    /// `BRPOP key timeout`, with a `receive {key}` CLIENT span from the call to the pop (linked to
    /// the message's creation context; a failed pop records it with `error.type`; a pop that timed
    /// out records nothing); the popped message comes back with its `process {key}` CONSUMER span
    /// started (context from the envelope; a plain payload is delivered unchanged as a new trace).
    /// `None` on timeout. Uses [`RedisInstrumentation::new`].
    ///
    /// redis-rs's multiplexed connection answers a command with an error after its response
    /// timeout (500 ms by default), shorter than most pop timeouts: block on a connection whose
    /// response timeout exceeds `timeout_secs` (`AsyncConnectionConfig::set_response_timeout`).
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn brpop_traced(
        &mut self,
        key: &str,
        timeout_secs: f64,
    ) -> impl Future<Output = RedisResult<Option<TracedMessage<QueueMessage>>>> + Send {
        self.brpop_traced_with(RedisInstrumentation::shared(), key, timeout_secs)
    }

    /// [`brpop_traced`](Self::brpop_traced) with an explicit instrumentation.
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn brpop_traced_with(
        &mut self,
        instrumentation: &RedisInstrumentation,
        key: &str,
        timeout_secs: f64,
    ) -> impl Future<Output = RedisResult<Option<TracedMessage<QueueMessage>>>> + Send {
        let parent = otel_messaging::current_context();
        let started = SystemTime::now();
        let mut cmd = redis::cmd("BRPOP");
        cmd.arg(key).arg(timeout_secs);
        let key = key.to_owned();
        async move {
            let popped: RedisResult<Option<(String, Vec<u8>)>> = cmd.query_async(self).await;
            record_pop(instrumentation, &parent, started, &key, popped)
        }
    }

    /// `BLMOVE source destination <from> <to> timeout` (the reliable-queue pattern), traced as
    /// [`brpop_traced`](Self::brpop_traced): a `receive {source}` span, and the moved message with
    /// its `process {source}` CONSUMER span started. `None` on timeout. Uses
    /// [`RedisInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn blmove_traced(
        &mut self,
        source: &str,
        destination: &str,
        from: redis::Direction,
        to: redis::Direction,
        timeout_secs: f64,
    ) -> impl Future<Output = RedisResult<Option<TracedMessage<QueueMessage>>>> + Send {
        self.blmove_traced_with(RedisInstrumentation::shared(), source, destination, from, to, timeout_secs)
    }

    /// [`blmove_traced`](Self::blmove_traced) with an explicit instrumentation.
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn blmove_traced_with(
        &mut self,
        instrumentation: &RedisInstrumentation,
        source: &str,
        destination: &str,
        from: redis::Direction,
        to: redis::Direction,
        timeout_secs: f64,
    ) -> impl Future<Output = RedisResult<Option<TracedMessage<QueueMessage>>>> + Send {
        let parent = otel_messaging::current_context();
        let started = SystemTime::now();
        let mut cmd = redis::cmd("BLMOVE");
        cmd.arg(source).arg(destination).arg(from).arg(to).arg(timeout_secs);
        let source = source.to_owned();
        async move {
            let moved: RedisResult<Option<Vec<u8>>> = cmd.query_async(self).await;
            let popped = moved.map(|m| m.map(|bytes| (source.clone(), bytes)));
            record_pop(instrumentation, &parent, started, &source, popped)
        }
    }
}

impl<C: ConnectionLike + Send + Sized> crate::sealed::Sealed<crate::sealed::QueueConsumerExt> for C {}
impl<C: ConnectionLike + Send + Sized> QueueConsumerExt for C {}

/// Traced pub/sub messages (push delivery: the process span counts the message).
pub trait MsgExt: crate::sealed::Sealed<crate::sealed::MsgExt> {
    /// Starts the `process {channel}` CONSUMER span of a pub/sub message (context from the
    /// envelope; a plain payload is delivered unchanged as a new trace). A message received
    /// through a `PSUBSCRIBE` pattern records the pattern as `messaging.destination.template`
    /// and is named `process {pattern}`. Uses
    /// [`RedisInstrumentation::new`].
    fn start_process(&self) -> TracedMessage<QueueMessage> {
        self.start_process_with(RedisInstrumentation::shared())
    }

    /// [`start_process`](Self::start_process) with an explicit instrumentation.
    fn start_process_with(&self, instrumentation: &RedisInstrumentation) -> TracedMessage<QueueMessage>;
}

impl crate::sealed::Sealed<crate::sealed::MsgExt> for redis::Msg {}
impl MsgExt for redis::Msg {
    fn start_process_with(&self, instrumentation: &RedisInstrumentation) -> TracedMessage<QueueMessage> {
        // A message of a PSUBSCRIBE pattern: the pattern is the low-cardinality template (semconv
        // `messaging.destination.template`, Conditionally Required "if available"), used for the span
        // name and the metrics instead of the channel.
        let pattern: Option<String> = self.from_pattern().then(|| self.get_pattern().ok()).flatten();
        start_queue_process(
            instrumentation,
            self.get_channel_name().to_owned(),
            pattern.as_deref(),
            self.get_payload_bytes(),
            false,
        )
    }
}
