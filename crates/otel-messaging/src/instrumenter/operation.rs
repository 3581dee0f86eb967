//! [`Operation`]: the guard of one started messaging operation (span and metrics), ended once.

use super::*;

/// One messaging operation in progress: its span, its timer and its metric attributes.
///
/// Returned by the `start*` methods of [`MessagingInstrumenter`]. End it with [`end`](Self::end),
/// [`end_ok`](Self::end_ok) or [`end_error`](Self::end_error); dropping it ends the span too and
/// records its duration, so a cancelled future still closes its span: a send, create or settle
/// (and a process armed by [`run`](Self::run) or [`arm_cancellation`](Self::arm_cancellation))
/// then ends with `error.type = cancelled`, any other with no status set.
#[must_use = "an Operation ends its span when dropped; keep it until the operation completes"]
pub struct Operation {
    pub(super) cx: Context,
    /// The start time given to the span, when we read it (metrics on, back-dated or queue wait).
    pub(super) start: Option<SystemTime>,
    pub(super) operation_type: OperationType,
    pub(super) creation_context: bool,
    /// `messaging.batch.message_count` of a batch operation; `None` for a single message.
    pub(super) messages: Option<u64>,
    /// Of a batch that partly failed: how many of its messages failed.
    pub(super) failed_messages: u64,
    pub(super) counts_as_delivery: bool,
    pub(super) queue_wait: Option<f64>,
    /// The metric attribute set (metrics on).
    pub(super) metric_set: Option<Arc<MetricSet>>,
    pub(super) instrumenter: Arc<Inner>,
    pub(super) ended: bool,
    /// Whether `cx` holds a span this operation started (not: a skipped destination's, or the
    /// unsampled fast path's, whose `cx` is the parent's context).
    pub(super) own_span: bool,
    pub(super) cancel_on_drop: bool,
    /// With feature `tracing`: the `tracing` span backing a process operation.
    #[cfg(feature = "tracing")]
    pub(super) tracing_span: Option<tracing::Span>,
}

impl fmt::Debug for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Operation")
            .field("operation_type", &self.operation_type)
            .field("span_context", self.cx.span().span_context())
            .field("creation_context", &self.creation_context)
            .field("messages", &self.messages)
            .finish()
    }
}

impl Operation {
    /// The context holding this operation's span: the parent for spans made inside the operation
    /// (a handler's own spans), and the creation context written by [`inject`](Self::inject).
    pub fn context(&self) -> &Context {
        &self.cx
    }

    /// Writes this operation's context into a carrier with limits (an attribute count, a size):
    /// collects the propagation fields and hands them to `write`, which writes what fits (degraded
    /// with `__private::fit_fields` or `fit_attributes`) and returns the bytes it wrote, or
    /// `None` when nothing fit — then recorded as `otel_messaging.context.injected = false`.
    /// Returns the bytes written: 0 when nothing was (not a creation context, nothing to
    /// propagate, nothing fit).
    ///
    /// Plumbing of the broker crates (hidden, like [`crate::__private`]).
    #[doc(hidden)]
    pub fn inject_within(&self, write: impl FnOnce(Vec<crate::__private::Field>) -> Option<usize>) -> usize {
        if !self.creation_context {
            return 0;
        }
        let mut collected = crate::__private::CollectedFields::default();
        self.inject(&mut collected);
        if collected.0.is_empty() {
            return 0;
        }
        write(collected.0).unwrap_or_else(|| {
            self.record_not_injected();
            0
        })
    }

    /// Whether the span is recording (sampled); late attributes are skipped when it is not.
    pub fn is_recording(&self) -> bool {
        self.cx.span().is_recording()
    }

    /// Writes this operation's context into the outgoing message as its creation context.
    ///
    /// Does nothing for operations that are not creation contexts: receive, process and settle
    /// operations, and a send whose message already carried a user-provided creation context.
    /// Empty values are never written.
    pub fn inject(&self, injector: &mut dyn Injector) {
        if self.creation_context {
            self.instrumenter.propagator.inject(&self.cx, injector);
        }
    }

    /// Whether [`inject`](Self::inject) writes anything, i.e. this operation's context is the
    /// creation context of the message.
    pub fn is_creation_context(&self) -> bool {
        self.creation_context
    }

    /// Records on the span that the creation context could not be written into the message
    /// (`otel_messaging.context.injected = false`), e.g. because the carrier was full.
    pub fn record_not_injected(&self) {
        self.set_attributes([KeyValue::new(semconv::OTEL_MESSAGING_CONTEXT_INJECTED, false)]);
    }

    /// Adds attributes known only after the operation started (offset, message id, partition
    /// chosen by the broker). Skipped when the span is not recording.
    pub fn set_attributes(&self, attributes: impl IntoIterator<Item = KeyValue>) {
        if self.ended || !self.own_span {
            return; // a skipped or fast-path operation: the span in `cx` is not ours
        }
        let span = self.cx.span();
        if span.is_recording() {
            span.set_attributes(attributes);
        }
    }

    /// Ends the operation as succeeded: status unset, no `error.type`.
    pub fn end_ok(mut self) {
        self.finish(None);
    }

    /// Ends the operation as failed: span status `Error` with `description` (the error message,
    /// cut to at most 256 bytes on a character boundary with `…` appended, or empty when
    /// the instrumenter was built with `with_error_description(false)`), `error.type =
    /// error_type` on the span and on the metrics. The description is formatted only as far as
    /// it is kept, so a huge `Display` costs no more than 256 bytes.
    ///
    /// `error_type` must be of low cardinality (an error code name, a type name, or
    /// [`semconv::ERROR_TYPE_OTHER`]).
    pub fn end_error(mut self, error_type: &str, description: impl fmt::Display) {
        let description = if self.instrumenter.error_description {
            bounded_description(&description)
        } else {
            String::new()
        };
        self.finish(Some((error_type, description)));
    }

    /// Ends a batch operation of which `failed` messages failed while the others succeeded (an SQS
    /// `SendMessageBatch` or `DeleteMessageBatch` with `Failed` entries): with `failed == 0` as
    /// [`end_ok`](Self::end_ok); otherwise the span is `Error` with `error_type` (e.g. the first
    /// failed entry's code) and `description`, and `messaging.client.sent.messages` counts the
    /// successful messages without `error.type` and the failed ones with it, so the counter still
    /// says how many were attempted (semconv v1.44 `messaging-metrics.md`).
    pub fn end_batch(mut self, failed: u64, error_type: &str, description: impl fmt::Display) {
        if failed == 0 {
            return self.end_ok();
        }
        self.failed_messages = failed;
        self.end_error(error_type, description);
    }

    /// From now on, dropping this operation before it is ended records it as failed with
    /// `error.type = cancelled` (or `panic` while a panic unwinds): for operations awaiting an
    /// outcome, such as a handler or a broker acknowledgement, where a drop means the outcome was
    /// never seen. Send, create and settle operations are armed from their start;
    /// [`run`](Self::run) arms a process operation when it is called.
    pub fn arm_cancellation(&mut self) {
        self.cancel_on_drop = true;
    }

    /// Ends the operation from a native result: `Ok` → [`end_ok`](Self::end_ok); `Err(e)` →
    /// [`end_error`](Self::end_error) with `error_type(e)` and `e`'s message.
    pub fn end<T, E, S>(self, result: &Result<T, E>, error_type: impl FnOnce(&E) -> S)
    where
        E: fmt::Display,
        S: AsRef<str>,
    {
        match result {
            Ok(_) => self.end_ok(),
            Err(e) => {
                let kind = error_type(e);
                self.end_error(kind.as_ref(), e);
            }
        }
    }

    /// Runs `handler` inside this operation (its context is current whenever the future is
    /// polled, so the handler's spans nest under it) and ends the operation with the handler's
    /// result, which is returned unchanged. On `Err(e)` the `error.type` is the error's Rust type
    /// name (`std::any::type_name::<E>()`, e.g. `anyhow::Error`).
    ///
    /// A handler that panics ends the span with `error.type = panic` and the panic goes on
    /// unwinding unchanged (when the future is dropped during the unwinding, as tokio tasks and
    /// `block_on` do; behind `futures::FutureExt::catch_unwind` the future is dropped after the
    /// panic was caught, so the span records `cancelled`); a `run` future dropped before the
    /// handler completes (cancelled by `select!` or a timeout) ends it with
    /// `error.type = cancelled`.
    ///
    /// Cancellation is armed when `run` is called, so a future dropped before its first poll is
    /// `cancelled` too.
    pub fn run<F, T, E>(mut self, handler: F) -> impl Future<Output = Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        self.arm_cancellation();
        let this = self;
        async move {
            #[cfg(feature = "tracing")]
            if let Some(span) = this.tracing_span.clone() {
                use tracing::Instrument as _;
                let result = handler.instrument(span).await;
                this.end(&result, |_| std::any::type_name::<E>());
                return result;
            }
            let result = handler.with_context(this.cx.clone()).await;
            this.end(&result, |_| std::any::type_name::<E>());
            result
        }
    }

    fn finish(&mut self, error: Option<(&str, String)>) {
        if self.ended {
            return;
        }
        self.ended = true;
        let end = self.instrumenter.instruments.is_some().then(SystemTime::now);
        if self.own_span {
            self.end_span(error.as_ref(), end);
        }
        if let (Some(set), Some(end)) = (&self.metric_set, end) {
            let start = self.start.unwrap_or(end);
            let duration = end.duration_since(start).unwrap_or(Duration::ZERO).as_secs_f64();
            // A failed receive delivered nothing (semconv: consumed.messages counts "messages
            // that were delivered to the application"); a batch that failed after some messages
            // counts those it reports.
            let messages = match (self.messages, self.operation_type, &error) {
                (Some(count), ..) => count,
                (None, OperationType::Receive, Some(_)) => 0,
                (None, ..) => 1,
            };
            set.record(Measurement {
                operation_type: self.operation_type,
                duration_secs: duration,
                messages,
                failed_messages: self.failed_messages.min(messages),
                counts_as_delivery: self.counts_as_delivery,
                queue_wait_secs: self.queue_wait,
                error_type: error.as_ref().map(|(t, _)| *t),
            });
        }
    }

    /// An operation that started no span: its context is `parent`'s (a send injects it). Ended
    /// already (records nothing) until the fast path, which records `metric_set`, re-opens it.
    pub(super) fn without_span(
        parent: &Context,
        operation_type: OperationType,
        creation_context: bool,
        instrumenter: &Arc<Inner>,
        start: Option<SystemTime>,
        metric_set: Option<Arc<MetricSet>>,
    ) -> Operation {
        Operation {
            cx: parent.clone(),
            start,
            operation_type,
            creation_context,
            messages: None,
            failed_messages: 0,
            counts_as_delivery: false,
            queue_wait: None,
            metric_set,
            instrumenter: instrumenter.clone(),
            ended: true,
            own_span: false,
            cancel_on_drop: false,
            #[cfg(feature = "tracing")]
            tracing_span: None,
        }
    }

    /// Ends the span this operation started: the enricher's end attributes, `error.type` and the
    /// status on failure, the end time the metrics use.
    fn end_span(&mut self, error: Option<&(&str, String)>, end: Option<SystemTime>) {
        let mut late = Vec::new();
        // Not while a panic unwinds: a second panic in the user's enricher would abort the
        // process (reliability review L3).
        if let Some(enricher) = &self.instrumenter.enricher
            && self.cx.span().is_recording()
            && !std::thread::panicking()
        {
            enricher.on_end(self.operation_type, error.map(|(t, _)| *t), &mut late);
        }
        #[cfg(feature = "tracing")]
        let bridged = self.tracing_span.take();
        #[cfg(not(feature = "tracing"))]
        let bridged: Option<()> = None;
        match bridged {
            #[cfg(feature = "tracing")]
            Some(span) => {
                use tracing_opentelemetry::OpenTelemetrySpanExt as _;
                for kv in late {
                    span.set_attribute(kv.key, kv.value);
                }
                if let Some((error_type, description)) = &error {
                    span.set_attribute(semconv::ERROR_TYPE, (*error_type).to_owned());
                    span.set_status(Status::error(description.clone()));
                }
                drop(span); // the last handle: tracing-opentelemetry ends the span now
            }
            _ => {
                let span = self.cx.span();
                if !late.is_empty() {
                    span.set_attributes(late);
                }
                if let Some((error_type, description)) = &error {
                    span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, (*error_type).to_owned()));
                    span.set_status(Status::error(description.clone()));
                }
                match end {
                    Some(end) => span.end_with_timestamp(end),
                    None => span.end(),
                }
            }
        }
    }
}

impl Drop for Operation {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        if std::thread::panicking() {
            self.finish(Some((
                semconv::ERROR_TYPE_PANIC,
                "panicked before the operation completed".to_owned(),
            )));
        } else if self.cancel_on_drop {
            self.finish(Some((
                semconv::ERROR_TYPE_CANCELLED,
                "dropped before the operation completed".to_owned(),
            )));
        } else {
            self.finish(None);
        }
    }
}

/// Longest queue wait recorded: 30 days (seconds). A send time further back is the producer's
/// clock or a forged timestamp (one message stamped at the epoch would add 1.7 × 10⁹ s to the
/// histogram; reliability review M6), not a wait, and is not recorded.
pub(super) const MAX_QUEUE_WAIT_SECS: f64 = 30.0 * 24.0 * 3600.0;

/// Seconds between `sent` and `now`: 0 for a send time in the future (clock skew), `None` beyond
/// [`MAX_QUEUE_WAIT_SECS`].
pub(super) fn queue_wait(sent: SystemTime, now: SystemTime) -> Option<f64> {
    let wait = now.duration_since(sent).unwrap_or(Duration::ZERO).as_secs_f64();
    (wait <= MAX_QUEUE_WAIT_SECS).then_some(wait)
}

/// Most values of one captured header recorded (a repeated header's first ones): 16.
pub(super) const MAX_CAPTURED_VALUES: usize = 16;

/// Most bytes of an error description recorded as span status description: 256.
pub(crate) const MAX_ERROR_DESCRIPTION_LEN: usize = 256;

/// `description` formatted into at most [`MAX_ERROR_DESCRIPTION_LEN`] bytes, cut on a character
/// boundary with `…` appended when cut; formatting stops as soon as the limit is reached.
pub(super) fn bounded_description(description: &dyn fmt::Display) -> String {
    struct Bounded(String, bool);
    impl fmt::Write for Bounded {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let room = MAX_ERROR_DESCRIPTION_LEN - self.0.len();
            if s.len() <= room {
                self.0.push_str(s);
                return Ok(());
            }
            let mut cut = room;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            self.0.push_str(&s[..cut]);
            self.1 = true;
            Err(fmt::Error) // stop formatting: nothing more is kept
        }
    }
    let mut out = Bounded(String::new(), false);
    let _ = fmt::write(&mut out, format_args!("{description}"));
    if out.1 {
        out.0.push('…');
    }
    out.0
}
