//! Test support (feature `testing`): explicit in-memory tracer and meter providers, whole-trace
//! assertions, and a text waterfall of a trace.
//!
//! Nothing here touches the global providers, so tests can run in parallel in one process.
//!
//! ```
//! use otel_messaging::testing::{TestTelemetry, waterfall};
//!
//! let telemetry = TestTelemetry::new();
//! let instrumenter = telemetry.instrumenter();
//! // ... drive a producer and a consumer with `instrumenter` ...
//! let spans = telemetry.spans();
//! println!("{}", waterfall(&spans));
//! ```

use std::{
    collections::{BTreeMap, HashMap},
    fmt::Write as _,
    time::{Duration, SystemTime},
};

use opentelemetry::{
    KeyValue, Value,
    trace::{SpanId, SpanKind, Status, TraceId},
};
use opentelemetry_sdk::{
    metrics::{
        InMemoryMetricExporter, SdkMeterProvider,
        data::{AggregatedMetrics, MetricData},
    },
    propagation::{BaggagePropagator, TraceContextPropagator},
    trace::{InMemorySpanExporter, SdkTracerProvider, SpanData},
};

use crate::{MessagingInstrumenter, MessagingInstrumenterBuilder};

pub mod conformance;

/// Explicit tracer and meter providers wired to in-memory exporters.
///
/// Spans are exported synchronously (simple processor), so [`spans`](Self::spans) sees every
/// ended span.
#[derive(Debug, Clone)]
pub struct TestTelemetry {
    /// The tracer provider (simple processor → in-memory exporter).
    pub tracer_provider: SdkTracerProvider,
    /// The meter provider (periodic reader → in-memory exporter, read on [`metrics`](Self::metrics)).
    pub meter_provider: SdkMeterProvider,
    span_exporter: InMemorySpanExporter,
    metric_exporter: InMemoryMetricExporter,
    counts: std::sync::Arc<SpanCounts>,
}

/// Spans started and ended (recording spans only), counted by a span processor.
#[derive(Debug, Default)]
struct SpanCounts {
    started: std::sync::atomic::AtomicU64,
    ended: std::sync::atomic::AtomicU64,
    /// Whether every ended span goes through [`conformance::check_span`].
    unchecked: std::sync::atomic::AtomicBool,
    /// What the check found, one entry per span that does not conform.
    violations: std::sync::Mutex<Vec<String>>,
}

impl SpanCounts {
    /// Panics, listing them, if any span ended so far did not conform.
    fn assert_no_violations(&self) {
        let violations = self.violations.lock().map(|v| v.clone()).unwrap_or_default();
        assert!(
            violations.is_empty(),
            "spans that do not conform to semconv v1.44 (testing::conformance):\n{}",
            violations.join("\n")
        );
    }
}

#[derive(Debug)]
struct CountingProcessor(std::sync::Arc<SpanCounts>);

impl opentelemetry_sdk::trace::SpanProcessor for CountingProcessor {
    fn on_start(&self, _span: &mut opentelemetry_sdk::trace::Span, _cx: &opentelemetry::Context) {
        self.0.started.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    fn on_end(&self, span: SpanData) {
        use std::sync::atomic::Ordering::Relaxed;
        self.0.ended.fetch_add(1, Relaxed);
        if self.0.unchecked.load(Relaxed) {
            return;
        }
        let problems = conformance::check_span(&span);
        if !problems.is_empty()
            && let Ok(mut violations) = self.0.violations.lock()
        {
            violations.push(format!("span {:?}:\n  - {}", span.name, problems.join("\n  - ")));
        }
    }
    fn force_flush(&self) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _timeout: Duration) -> opentelemetry_sdk::error::OTelSdkResult {
        Ok(())
    }
}

/// Checks, when the test is not already failing, that every span ended did conform (see
/// [`TestTelemetry::spans`]).
impl Drop for TestTelemetry {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = self.tracer_provider.force_flush();
            self.counts.assert_no_violations();
        }
    }
}

impl Default for TestTelemetry {
    fn default() -> Self {
        Self::new()
    }
}

mod demo;
mod waterfall;
pub use demo::DemoTelemetry;
pub use waterfall::waterfall;

/// The SDK's own W3C Trace Context + W3C Baggage propagators in a composite, the usual global
/// propagator of an application: what [`DemoTelemetry`] installs, so that the generic propagator
/// path (any `TextMapPropagator`) stays under test too.
fn sdk_w3c_propagator() -> opentelemetry::propagation::TextMapCompositePropagator {
    opentelemetry::propagation::TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ])
}

impl TestTelemetry {
    /// New providers and exporters, independent of every other instance and of the globals (the
    /// SDK's default sampler, `ParentBased(AlwaysOn)`).
    pub fn new() -> Self {
        Self::build(None)
    }

    /// Like [`new`](Self::new), with `sampler`: e.g. `ParentBased(AlwaysOff)` records a span only
    /// when its parent's sampled flag is set, which proves the flag was read.
    pub fn with_sampler(sampler: opentelemetry_sdk::trace::Sampler) -> Self {
        Self::build(Some(sampler))
    }

    fn build(sampler: Option<opentelemetry_sdk::trace::Sampler>) -> Self {
        let span_exporter = InMemorySpanExporter::default();
        let counts = std::sync::Arc::new(SpanCounts::default());
        let mut builder = SdkTracerProvider::builder();
        if let Some(sampler) = sampler {
            builder = builder.with_sampler(sampler);
        }
        let tracer_provider = builder
            .with_span_processor(CountingProcessor(counts.clone()))
            .with_simple_exporter(span_exporter.clone())
            .build();
        let metric_exporter = InMemoryMetricExporter::default();
        let meter_provider =
            SdkMeterProvider::builder().with_periodic_exporter(metric_exporter.clone()).build();
        TestTelemetry { tracer_provider, meter_provider, span_exporter, metric_exporter, counts }
    }

    /// Like [`new`](Self::new), without the conformance check in [`spans`](Self::spans): for
    /// tests of the core with made-up views that no broker crate emits.
    pub fn without_conformance() -> Self {
        Self::new().unchecked()
    }

    /// These providers without the conformance check (as [`without_conformance`](Self::without_conformance),
    /// for a telemetry built otherwise, e.g. [`with_sampler`](Self::with_sampler)).
    pub fn unchecked(self) -> Self {
        self.counts.unchecked.store(true, std::sync::atomic::Ordering::Relaxed);
        self
    }

    /// A builder already holding these providers and the W3C propagator
    /// ([`W3cPropagator`](crate::propagation::W3cPropagator)).
    pub fn instrumenter_builder(&self) -> MessagingInstrumenterBuilder {
        MessagingInstrumenter::builder()
            .with_tracer_provider(&self.tracer_provider)
            .with_meter_provider(&self.meter_provider)
            .with_propagator(crate::propagation::W3cPropagator::new())
    }

    /// An instrumenter on these providers with every policy at its default.
    pub fn instrumenter(&self) -> MessagingInstrumenter {
        self.instrumenter_builder().build()
    }

    /// Recording spans started and ended so far, `(started, ended)`: equal once every operation
    /// has completed (every span the instrumentation starts, it ends).
    pub fn span_counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.counts.started.load(Relaxed), self.counts.ended.load(Relaxed))
    }

    /// Drops every span exported so far (long runs keep memory flat); the counts go on, and so
    /// does the conformance check of every span.
    ///
    /// # Panics
    ///
    /// As [`spans`](Self::spans): if a span ended so far did not conform.
    pub fn clear_spans(&self) {
        self.counts.assert_no_violations();
        self.span_exporter.reset();
    }

    /// A tracer of these providers, for the test's own spans (an HTTP handler, a db call).
    pub fn tracer(&self, name: &'static str) -> opentelemetry_sdk::trace::SdkTracer {
        use opentelemetry::trace::TracerProvider as _;
        self.tracer_provider.tracer(name)
    }

    /// Every span ended so far, in end order.
    ///
    /// # Panics
    ///
    /// If a span ended so far — read here or not, cleared or not — did not conform to the
    /// semconv v1.44 table ([`conformance::check_span`], run by a span processor on every span
    /// as it ends), unless built with [`without_conformance`](Self::without_conformance). The
    /// same check runs when the `TestTelemetry` is dropped, so a test that never reads its spans
    /// is checked too.
    pub fn spans(&self) -> Vec<SpanData> {
        let flushed = self.tracer_provider.force_flush();
        assert!(flushed.is_ok(), "flushing the in-memory span exporter: {flushed:?}");
        let spans = self.span_exporter.get_finished_spans();
        assert!(spans.is_ok(), "reading the in-memory span exporter: {spans:?}");
        self.counts.assert_no_violations();
        spans.unwrap_or_default()
    }

    /// Every data point recorded so far, flattened (latest collection wins).
    pub fn metrics(&self) -> Vec<MetricPoint> {
        let _ = self.meter_provider.force_flush();
        let exported = self.metric_exporter.get_finished_metrics().unwrap_or_default();
        let mut points = Vec::new();
        if let Some(last) = exported.last() {
            for scope in last.scope_metrics() {
                for metric in scope.metrics() {
                    collect_points(metric.name(), metric.unit(), metric.data(), &mut points);
                }
            }
        }
        points
    }
}

fn collect_points(name: &str, unit: &str, data: &AggregatedMetrics, out: &mut Vec<MetricPoint>) {
    fn push<T: Copy + Into<f64>>(name: &str, unit: &str, data: &MetricData<T>, out: &mut Vec<MetricPoint>) {
        let point = |attributes: Vec<KeyValue>, count: u64, sum: f64| MetricPoint {
            name: name.to_owned(),
            unit: unit.to_owned(),
            attributes: sorted(attributes),
            count,
            sum,
        };
        match data {
            MetricData::Sum(sum) => {
                for p in sum.data_points() {
                    let v: f64 = p.value().into();
                    out.push(point(p.attributes().cloned().collect(), v as u64, v));
                }
            }
            MetricData::Histogram(h) => {
                for p in h.data_points() {
                    out.push(point(p.attributes().cloned().collect(), p.count(), p.sum().into()));
                }
            }
            MetricData::Gauge(g) => {
                for p in g.data_points() {
                    let v: f64 = p.value().into();
                    out.push(point(p.attributes().cloned().collect(), 1, v));
                }
            }
            MetricData::ExponentialHistogram(_) => {}
        }
    }
    match data {
        AggregatedMetrics::F64(d) => push(name, unit, d, out),
        AggregatedMetrics::U64(d) => {
            // u64 → f64 is lossy only above 2^53, far beyond test counts.
            let mut tmp = Vec::new();
            if let MetricData::Sum(sum) = d {
                for p in sum.data_points() {
                    tmp.push(MetricPoint {
                        name: name.to_owned(),
                        unit: unit.to_owned(),
                        attributes: sorted(p.attributes().cloned().collect()),
                        count: p.value(),
                        sum: p.value() as f64,
                    });
                }
            }
            out.extend(tmp);
        }
        AggregatedMetrics::I64(_) => {}
    }
}

fn sorted(mut attributes: Vec<KeyValue>) -> Vec<KeyValue> {
    attributes.sort_by(|a, b| a.key.as_str().cmp(b.key.as_str()));
    attributes
}

/// One metric data point: a counter's value or a histogram's count and sum.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricPoint {
    /// Instrument name, e.g. `messaging.client.sent.messages`.
    pub name: String,
    /// Instrument unit, e.g. `s` or `{message}`.
    pub unit: String,
    /// Attributes, sorted by key.
    pub attributes: Vec<KeyValue>,
    /// Counter value, or number of histogram measurements.
    pub count: u64,
    /// Counter value, or sum of histogram measurements.
    pub sum: f64,
}

/// The attributes of `span` as a key-sorted map, for whole-set comparisons.
pub fn attributes(span: &SpanData) -> BTreeMap<String, Value> {
    span.attributes.iter().map(|kv| (kv.key.to_string(), kv.value.clone())).collect()
}

/// The one span named `name`. Fails the test, listing the names present, when there is not
/// exactly one.
pub fn span<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    let found: Vec<_> = spans.iter().filter(|s| s.name == name).collect();
    let names: Vec<_> = spans.iter().map(|s| s.name.as_ref()).collect();
    assert_eq!(found.len(), 1, "expected exactly one span named {name:?}; spans: {names:?}");
    found[0]
}

/// Expected shape of one span in [`assert_trace`].
#[derive(Debug, Clone)]
pub struct SpanShape {
    name: String,
    kind: SpanKind,
    parent: Parent,
    links: Vec<String>,
    attributes: Option<BTreeMap<String, Value>>,
    including: BTreeMap<String, Value>,
    error: Option<bool>,
}

#[derive(Debug, Clone)]
enum Parent {
    Root,
    Span(String),
    Any,
}

/// Starts the expected shape of the span named `name` with kind `kind`. By default it must be a
/// root, with no links, and its attributes and status are not checked.
pub fn shape(name: impl Into<String>, kind: SpanKind) -> SpanShape {
    SpanShape {
        name: name.into(),
        kind,
        parent: Parent::Root,
        links: Vec::new(),
        attributes: None,
        including: BTreeMap::new(),
        error: None,
    }
}

impl SpanShape {
    /// The span's parent is the span named `parent` (in the same trace).
    pub fn parent(mut self, parent: impl Into<String>) -> Self {
        self.parent = Parent::Span(parent.into());
        self
    }

    /// The span's parent is not checked.
    pub fn any_parent(mut self) -> Self {
        self.parent = Parent::Any;
        self
    }

    /// The span links to exactly these spans, in this order (by name).
    pub fn links(mut self, targets: &[&str]) -> Self {
        self.links = targets.iter().map(|t| (*t).to_owned()).collect();
        self
    }

    /// The span has exactly these attributes (the whole set, order-insensitive).
    pub fn attributes(mut self, expected: impl IntoIterator<Item = KeyValue>) -> Self {
        self.attributes = Some(expected.into_iter().map(|kv| (kv.key.to_string(), kv.value)).collect());
        self
    }

    /// The span has at least these attributes (with these values); others are not checked here
    /// (the conformance check, [`crate::testing::conformance`], checks the rest).
    pub fn including(mut self, expected: impl IntoIterator<Item = KeyValue>) -> Self {
        self.including.extend(expected.into_iter().map(|kv| (kv.key.to_string(), kv.value)));
        self
    }

    /// The span's status is `Error` (`true`) or not (`false`).
    pub fn error(mut self, is_error: bool) -> Self {
        self.error = Some(is_error);
        self
    }
}

/// Asserts the whole shape of a set of spans: exactly the expected spans (by name), each with its
/// kind, its parent (by name, or root), its links (by target name, in order), and, where given,
/// its exact attribute set and error status. Spans are matched by name, so names must be unique
/// in `spans`.
pub fn assert_trace(spans: &[SpanData], expected: &[SpanShape]) {
    let mut names: Vec<_> = spans.iter().map(|s| s.name.to_string()).collect();
    let mut expected_names: Vec<_> = expected.iter().map(|s| s.name.clone()).collect();
    names.sort();
    expected_names.sort();
    assert_eq!(names, expected_names, "span names differ\n{}", waterfall(spans));
    let by_id: HashMap<SpanId, &SpanData> = spans.iter().map(|s| (s.span_context.span_id(), s)).collect();
    for shape in expected {
        let s = span(spans, &shape.name);
        assert_eq!(s.span_kind, shape.kind, "kind of {:?}", shape.name);
        match &shape.parent {
            Parent::Any => {}
            Parent::Root => assert_eq!(
                s.parent_span_id,
                SpanId::INVALID,
                "{:?} should be a root, its parent is {:?}",
                shape.name,
                by_id.get(&s.parent_span_id).map(|p| p.name.as_ref())
            ),
            Parent::Span(parent) => {
                let p = span(spans, parent);
                assert_eq!(
                    s.parent_span_id,
                    p.span_context.span_id(),
                    "parent of {:?} should be {:?}, is {:?}",
                    shape.name,
                    parent,
                    by_id.get(&s.parent_span_id).map(|p| p.name.as_ref())
                );
                assert_eq!(s.span_context.trace_id(), p.span_context.trace_id(), "trace of {:?}", shape.name);
            }
        }
        let links: Vec<String> = s
            .links
            .iter()
            .map(|l| {
                by_id
                    .get(&l.span_context.span_id())
                    .map(|t| t.name.to_string())
                    .unwrap_or_else(|| format!("<unknown {}>", l.span_context.span_id()))
            })
            .collect();
        assert_eq!(links, shape.links, "links of {:?}", shape.name);
        if let Some(expected) = &shape.attributes {
            assert_eq!(&attributes(s), expected, "attributes of {:?}", shape.name);
        }
        if !shape.including.is_empty() {
            let actual = attributes(s);
            for (key, value) in &shape.including {
                assert_eq!(actual.get(key), Some(value), "attribute {key} of {:?}: {actual:?}", shape.name);
            }
        }
        if let Some(is_error) = shape.error {
            assert_eq!(
                matches!(s.status, Status::Error { .. }),
                is_error,
                "status of {:?}: {:?}",
                shape.name,
                s.status
            );
        }
    }
}

/// Asserts that every span in `spans` belongs to one trace and returns its id.
pub fn assert_one_trace(spans: &[SpanData]) -> TraceId {
    let first = spans.first().map(|s| s.span_context.trace_id()).unwrap_or(TraceId::INVALID);
    for s in spans {
        assert_eq!(
            s.span_context.trace_id(),
            first,
            "span {:?} is in another trace\n{}",
            s.name,
            waterfall(spans)
        );
    }
    first
}

const BAR_WIDTH: usize = 48;
