//! [`MessagingInstrumenterBuilder`]: explicit providers and every policy of an instrumenter.

use super::*;

/// Configures a [`MessagingInstrumenter`]. Every setting has a default, written on its method.
#[derive(Default)]
pub struct MessagingInstrumenterBuilder {
    tracer: Option<Box<dyn SpanStarter>>,
    meter: Option<opentelemetry::metrics::Meter>,
    metrics: Option<bool>,
    propagator: Propagator,
    process_parent: ProcessParent,
    trust_boundary: bool,
    captured_headers: Vec<String>,
    body_size: bool,
    no_error_description: bool,
    enricher: Option<Arc<dyn SpanEnricher>>,
    skip: Option<SkipDestination>,
    templates: Option<crate::DestinationTemplates>,
    parent_based: bool,
    metric_set_limit: Option<usize>,
}

/// A predicate on destination names: `true` skips the operation (no span, no metric).
pub(super) type SkipDestination = Arc<dyn Fn(&str) -> bool + Send + Sync>;

impl fmt::Debug for MessagingInstrumenterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessagingInstrumenterBuilder")
            .field("explicit_tracer", &self.tracer.is_some())
            .field("explicit_meter", &self.meter.is_some())
            .field("propagator", &self.propagator)
            .field("process_parent", &self.process_parent)
            .field("trust_boundary", &self.trust_boundary)
            .field("captured_headers", &self.captured_headers)
            .field("body_size", &self.body_size)
            .field("error_description", &!self.no_error_description)
            .field("enricher", &self.enricher.is_some())
            .field("skipped_destinations", &self.skip.is_some())
            .field("destination_templates", &self.templates)
            .field("parent_based_sampling", &self.parent_based)
            .finish()
    }
}

impl MessagingInstrumenterBuilder {
    /// Skips the operations whose destination `skip` returns `true` for (health-check topics,
    /// `_INBOX.*` replies, …): no span and no metric, while the context still flows — a skipped
    /// send injects the current context (a message that carries one keeps it), a skipped
    /// process runs its handler in the context the process span would have had as parent (the
    /// creation context under the default policy). Operations without a destination are never
    /// skipped. `skip` runs once per operation: keep it cheap.
    ///
    /// Defaults to skipping nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use otel_messaging::MessagingInstrumenter;
    /// let instrumenter = MessagingInstrumenter::builder()
    ///     .with_skipped_destinations(|destination| destination.starts_with("health."))
    ///     .build();
    /// # let _ = instrumenter;
    /// ```
    pub fn with_skipped_destinations(mut self, skip: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.skip = Some(Arc::new(skip));
        self
    }

    /// Gives destinations that carry ids (`orders.4711.created`, `tenant-42-orders`) their
    /// `messaging.destination.template`: the first of `templates` a destination matches names
    /// its spans (`{operation} {template}`) and is a span and metric attribute; its metrics then
    /// carry the template instead of the destination name, so one busy service does not make a
    /// metric series per id (semconv v1.44 messaging-spans.md, "Span name"; messaging-metrics.md).
    /// Spans keep `messaging.destination.name`. A template the broker crate knows itself (a Redis
    /// `PSUBSCRIBE` pattern) comes first. Matching costs a few comparisons per operation and
    /// allocates nothing.
    ///
    /// Defaults to no templates.
    ///
    /// # Examples
    ///
    /// ```
    /// use otel_messaging::{DestinationTemplates, MessagingInstrumenter};
    /// let instrumenter = MessagingInstrumenter::builder()
    ///     .with_destination_templates(DestinationTemplates::new(["orders.{order_id}.created"]))
    ///     .build();
    /// # let _ = instrumenter;
    /// ```
    pub fn with_destination_templates(mut self, templates: crate::DestinationTemplates) -> Self {
        self.templates = Some(templates);
        self
    }

    /// Uses `provider` for spans (scope `otel-messaging`, this crate's version, the v1.44 schema
    /// URL).
    ///
    /// Defaults to the global tracer provider, read when spans start: an instrumenter built before
    /// `global::set_tracer_provider` uses the installed provider from then on (the first one that
    /// makes a real span is kept). Spans start on `provider`'s own tracer type (`SdkTracer` for the SDK's
    /// `SdkTracerProvider`), which saves an allocation per span over the global provider's
    /// `BoxedTracer`: pass the provider explicitly on a hot path (BENCHMARKS.md).
    pub fn with_tracer_provider<P>(mut self, provider: &P) -> Self
    where
        P: TracerProvider + ?Sized,
        P::Tracer: Send + Sync + 'static,
        <P::Tracer as Tracer>::Span: Send + Sync + 'static,
    {
        self.tracer = Some(Box::new(provider.tracer_with_scope(scope())));
        self
    }

    /// Uses `provider` for the messaging metrics.
    ///
    /// Defaults to the global meter provider, read when the instrumenter is built and again at
    /// most once a second while operations run (a provider installed later is used from a
    /// second after its install on).
    pub fn with_meter_provider<P>(mut self, provider: &P) -> Self
    where
        P: MeterProvider + ?Sized,
    {
        self.meter = Some(provider.meter_with_scope(scope()));
        self
    }

    /// Turns the metrics on or off. Off saves building metric attributes on every operation.
    ///
    /// Defaults to on.
    pub fn with_metrics(mut self, enabled: bool) -> Self {
        self.metrics = Some(enabled);
        self
    }

    /// At most `limit` distinct metric attribute sets (operation, destination or template,
    /// partition, consumer group, server) are recorded under their own attributes; the
    /// measurements of further sets go to one set with the attribute `otel.metric.overflow =
    /// true` (and `error.type` when they failed), as the OpenTelemetry SDK does past its
    /// cardinality limit — whatever the meter provider's own limit. Sets are counted once per
    /// instrumenter, not per thread or instrument. Destination templates
    /// ([`with_destination_templates`](Self::with_destination_templates)) keep ids out of the
    /// sets in the first place.
    ///
    /// Defaults to 2 000, the SDK's default cardinality limit per instrument (semconv review,
    /// issue "Spec-exact and bounded", point 3).
    pub fn with_metric_cardinality_limit(mut self, limit: usize) -> Self {
        self.metric_set_limit = Some(limit);
        self
    }

    /// Uses `propagator` for inject and extract instead of the global one.
    ///
    /// Defaults to the global text-map propagator, read at each call; while that is still
    /// opentelemetry-rust's default **no-op** (nothing installed), the instrumenter propagates W3C
    /// Trace Context + Baggage itself, or what `OTEL_PROPAGATORS` selects (`tracecontext`,
    /// `baggage`, `none`; `b3`/`b3multi` with feature `b3`, `xray` with feature `xray`; read once;
    /// other names are reported with the `tracing` feature and ignored), as every other
    /// OpenTelemetry SDK does by default. A global propagator installed
    /// later wins from the next call on.
    ///
    /// W3C Trace Context (+ Baggage) takes the fast path whichever way it comes:
    /// [`W3cPropagator`](crate::propagation::W3cPropagator), or the SDK's own
    /// `TraceContextPropagator` (alone, or with its `BaggagePropagator` in a
    /// `TextMapCompositePropagator`, in that order) given here or installed globally. The
    /// instrumenter recognises them and decodes the fields it has already validated with its own
    /// W3C codec, which writes and reads what they do (checked against them by the `traceparent`
    /// fuzz target and proptests), instead of letting them format and parse the fields again
    /// (≈ 1.47 × the SDK floor per message through them, ≈ 1.10 × through the codec: BENCHMARKS.md,
    /// "Eighth session"). Any other propagator propagates itself.
    pub fn with_propagator<P>(mut self, propagator: P) -> Self
    where
        P: TextMapPropagator + Send + Sync + 'static,
    {
        self.propagator = Propagator::explicit(propagator);
        self
    }

    /// Declares that the tracer provider's sampler is parent-based with the SDK's default for an
    /// unsampled parent — `Sampler::ParentBased(..)`, the SDK's default sampler, and the usual
    /// `ParentBased(TraceIdRatioBased(ratio))` — so that an operation whose parent is already
    /// unsampled (a valid span context with the sampled flag 0: the request that sends, or under
    /// [`ProcessParent::Spec`] the creation context a message carries) takes the **unsampled fast
    /// path**: no SDK span is started, the parent's context is propagated as it came (`traceparent`
    /// flags `00`, its span id, its `tracestate` and baggage), and the metrics are recorded as
    /// usual. About 0.4 × the SDK's own cost of the same unsampled message, with 2 allocations per
    /// send + process (BENCHMARKS.md, "Eighth session"); the decision upstream was "not sampled",
    /// and a parent-based sampler would only have repeated it.
    ///
    /// Caveat: with a sampler that is not parent-based (`AlwaysOn`, a custom one), or one whose
    /// `local_parent_not_sampled`/`remote_parent_not_sampled` records, the SDK would have recorded
    /// some of these spans; with this switch they are not started. An operation without a valid
    /// parent (a new root) always goes to the SDK.
    ///
    /// Defaults to `false`: the instrumentation cannot read the provider's sampler through the
    /// API, so it does not assume one (the semconv of the operations is unchanged either way).
    pub fn with_parent_based_sampling(mut self, enabled: bool) -> Self {
        self.parent_based = enabled;
        self
    }

    /// Sets how single-message process spans relate to the creation context.
    ///
    /// Defaults to [`ProcessParent::Spec`]. Overridable per consumer with
    /// [`MessagingInstrumenter::with_process_parent`].
    pub fn with_process_parent(mut self, policy: ProcessParent) -> Self {
        self.process_parent = policy;
        self
    }

    /// Marks the consumer side as a trust boundary: process spans never take a producer's
    /// context as parent (always [`ProcessParent::Link`], whatever else is set), incoming
    /// baggage is dropped, and retry lineage (`otel-retry-attempt`, the original and failed
    /// contexts) is not read.
    ///
    /// Defaults to `false`.
    pub fn with_trust_boundary(mut self, enabled: bool) -> Self {
        self.trust_boundary = enabled;
        self
    }

    /// Captures these message headers on send and process spans as `messaging.header.<name>`
    /// (string array, the values of a repeated header in order — at most 16, each cut to
    /// 256 bytes on a character boundary with `…` appended; `-` becomes `_` and the
    /// name is lower-cased in the key). Header values can hold personal data; list only what is
    /// safe.
    ///
    /// Defaults to none.
    pub fn with_captured_headers<I, S>(mut self, headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.captured_headers = headers.into_iter().map(Into::into).collect();
        self
    }

    /// Records `messaging.message.body.size` (bytes, Opt-In in semconv) on single-message spans.
    ///
    /// Defaults to `false`.
    pub fn with_body_size(mut self, enabled: bool) -> Self {
        self.body_size = enabled;
        self
    }

    /// Whether a failed operation's span status carries a description: the error's `Display`,
    /// cut to at most 256 bytes on a character boundary with `…` appended. With `false` the status is
    /// `Error` with an empty description and only `error.type` says what failed — for handlers
    /// whose errors may quote message contents (serde errors quote input values; redis-rs parse
    /// errors quote whole replies).
    ///
    /// Defaults to `true`.
    pub fn with_error_description(mut self, enabled: bool) -> Self {
        self.no_error_description = !enabled;
        self
    }

    /// Adds the application's attributes to every span through `enricher` ([`SpanEnricher`]; a
    /// closure `Fn(&SpanStart<'_>, &mut Vec<KeyValue>)` will do).
    ///
    /// Defaults to `()`, which adds nothing (and costs nothing).
    pub fn with_enricher(mut self, enricher: impl SpanEnricher) -> Self {
        self.enricher = Some(Arc::new(enricher));
        self
    }

    /// Builds the instrumenter, creating its instruments once.
    pub fn build(self) -> MessagingInstrumenter {
        let tracer = self.tracer.unwrap_or_else(|| Box::new(GlobalTracer::new()));
        let limit = self.metric_set_limit.unwrap_or(crate::metrics::MAX_ATTRIBUTE_SETS);
        let instruments = if self.metrics.unwrap_or(true) {
            Some(match self.meter {
                Some(meter) => InstrumentSource::Fixed(Instruments::new(&meter, limit)),
                None => InstrumentSource::global(scope(), limit),
            })
        } else {
            None
        };
        let captured_headers = self
            .captured_headers
            .into_iter()
            .map(|header| {
                let key = format!(
                    "{}{}",
                    semconv::MESSAGING_HEADER_PREFIX,
                    header.to_ascii_lowercase().replace('-', "_")
                );
                (header, Key::new(key))
            })
            .collect();
        MessagingInstrumenter {
            inner: Arc::new(Inner {
                tracer,
                instruments,
                propagator: self.propagator,
                trust_boundary: self.trust_boundary,
                captured_headers,
                body_size: self.body_size,
                error_description: !self.no_error_description,
                enricher: self.enricher,
                skip: self.skip,
                templates: self.templates,
                parent_based: self.parent_based,
            }),
            process_parent: self.process_parent,
            follows: Follows::No,
        }
    }
}
