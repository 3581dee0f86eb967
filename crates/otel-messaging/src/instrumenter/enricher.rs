//! [`SpanEnricher`]: the application's own attributes on every span, and the [`SpanStart`] it
//! is given.

use super::*;

/// What a [`SpanEnricher`] sees of an operation at span start.
#[derive(Clone, Copy)]
pub struct SpanStart<'a> {
    pub(super) view: &'a dyn MessagingAttributes,
    pub(super) message: Option<&'a dyn Extractor>,
}

impl fmt::Debug for SpanStart<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpanStart")
            .field("operation_type", &self.view.operation_type())
            .field("destination_name", &self.view.destination_name())
            .finish_non_exhaustive()
    }
}

impl<'a> SpanStart<'a> {
    /// What the broker crate knows about the operation: system, operation, destination, message
    /// id, consumer group, … ([`MessagingAttributes`]).
    pub fn view(&self) -> &'a dyn MessagingAttributes {
        self.view
    }

    /// `messaging.operation.type` of the operation.
    pub fn operation_type(&self) -> OperationType {
        self.view.operation_type()
    }

    /// `messaging.destination.name`, if known.
    pub fn destination_name(&self) -> Option<&'a str> {
        self.view.destination_name()
    }

    /// The value of message header `name` (case-insensitive; the last value of a repeated
    /// header) on single-message send and process operations; `None` on batch, receive and
    /// settle operations, which have no one message.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.message?.get(name)
    }
}

/// A hook that adds the application's own attributes (tenant, job type) to messaging spans, in
/// the manner of tower-http's `MakeSpan` / `OnResponse`.
///
/// [`on_start`](Self::on_start) runs before the span starts, so what it adds is visible to the
/// sampler; [`on_end`](Self::on_end) runs when the operation ends, on recording spans only. Both
/// default to adding nothing. `()` is the no-op enricher (the default); a closure
/// `Fn(&SpanStart<'_>, &mut Vec<KeyValue>)` is an `on_start` enricher. Attributes it adds are the
/// application's: use its own namespace (e.g. `app.tenant`), not `messaging.*`, which semconv owns.
/// Metric attributes are never touched, so high-cardinality values are safe here.
///
/// # Examples
///
/// ```
/// use opentelemetry::KeyValue;
/// use otel_messaging::{MessagingInstrumenter, SpanStart};
///
/// let instrumenter = MessagingInstrumenter::builder()
///     .with_enricher(|start: &SpanStart<'_>, attributes: &mut Vec<KeyValue>| {
///         if let Some(tenant) = start.header("x-tenant") {
///             attributes.push(KeyValue::new("app.tenant", tenant.to_owned()));
///         }
///     })
///     .build();
/// # drop(instrumenter);
/// ```
pub trait SpanEnricher: Send + Sync + 'static {
    /// Appends attributes for the span about to start. Defaults to nothing.
    fn on_start(&self, start: &SpanStart<'_>, attributes: &mut Vec<KeyValue>) {
        let _ = (start, attributes);
    }

    /// Appends attributes when the operation ends (`error_type` is `Some` iff it failed).
    /// Called for recording (sampled) spans only, and not while a panic unwinds (a panic of its
    /// own would then abort the process). Defaults to nothing.
    fn on_end(
        &self,
        operation_type: OperationType,
        error_type: Option<&str>,
        attributes: &mut Vec<KeyValue>,
    ) {
        let _ = (operation_type, error_type, attributes);
    }
}

impl SpanEnricher for () {}

impl<F> SpanEnricher for F
where
    F: Fn(&SpanStart<'_>, &mut Vec<KeyValue>) + Send + Sync + 'static,
{
    fn on_start(&self, start: &SpanStart<'_>, attributes: &mut Vec<KeyValue>) {
        self(start, attributes);
    }
}
