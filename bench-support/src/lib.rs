//! Benchmark, fuzzing and allocation-test plumbing of the otel-messaging workspace (unpublished:
//! not part of any crate's API): a span exporter that drops everything, the benchmark providers,
//! the per-message steps the Kafka bench and `perf-gate` measure (ours and the SDK's floor), the
//! SDK's W3C propagators for comparisons, and an allocation-counting global allocator.

use opentelemetry::trace::{SpanId, SpanKind, TraceId};
use opentelemetry_sdk::{
    metrics::{InMemoryMetricExporter, SdkMeterProvider},
    propagation::{BaggagePropagator, TraceContextPropagator},
    trace::{SdkTracerProvider, SpanData},
};
use otel_messaging::MessagingInstrumenter;
/// A span exporter that drops every batch it is given: for benchmarks, where the SDK's own
/// processing (building `SpanData`, handing it to the exporter) should cost what it costs, without
/// I/O.
#[derive(Debug, Clone, Copy, Default)]
pub struct DropExporter;

impl opentelemetry_sdk::trace::SpanExporter for DropExporter {
    async fn export(&self, batch: Vec<SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        std::hint::black_box(batch);
        Ok(())
    }
}

/// The providers of the throughput benchmarks, and an instrumenter on them (W3C propagator,
/// metrics on): spans through a batch processor to a [`DropExporter`], every span sampled when
/// `ratio >= 1.0`, otherwise `ParentBased(TraceIdRatioBased(ratio))` (e.g. 0.1 for 10 %). Shut the
/// providers down when done.
pub fn benchmark_telemetry(ratio: f64) -> (MessagingInstrumenter, SdkTracerProvider, SdkMeterProvider) {
    use opentelemetry_sdk::trace::Sampler;
    let sampler = if ratio >= 1.0 {
        Sampler::AlwaysOn
    } else {
        Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)))
    };
    let tracer_provider =
        SdkTracerProvider::builder().with_sampler(sampler).with_batch_exporter(DropExporter).build();
    let meter_provider =
        SdkMeterProvider::builder().with_periodic_exporter(InMemoryMetricExporter::default()).build();
    let instrumenter = MessagingInstrumenter::builder()
        .with_tracer_provider(&tracer_provider)
        .with_meter_provider(&meter_provider)
        .with_propagator(w3c_propagator())
        .build();
    (instrumenter, tracer_provider, meter_provider)
}

/// The propagator tests and benchmarks give their instrumenters: W3C Trace Context + W3C Baggage,
/// [`W3cPropagator`](otel_messaging::propagation::W3cPropagator) (what we recommend on a hot path).
pub fn w3c_propagator() -> otel_messaging::propagation::W3cPropagator {
    otel_messaging::propagation::W3cPropagator::new()
}

/// The SDK's own W3C Trace Context + W3C Baggage propagators in a composite, the usual global
/// propagator of an application (the floor's propagator in the benchmarks).
pub fn sdk_w3c_propagator() -> opentelemetry::propagation::TextMapCompositePropagator {
    opentelemetry::propagation::TextMapCompositePropagator::new(vec![
        Box::new(TraceContextPropagator::new()),
        Box::new(BaggagePropagator::new()),
    ])
}

/// Asserts that [`W3cPropagator`](otel_messaging::propagation::W3cPropagator) extracts from `carrier` the
/// same span context and baggage as the SDK's propagators ([`sdk_w3c_propagator`]) behind
/// [`StrictExtractor`](otel_messaging::propagation::StrictExtractor): the equivalence the unit tests and
/// the `traceparent` fuzz target check.
///
/// # Panics
///
/// When the two differ (the message shows the carrier).
pub fn assert_w3c_extracts_as_sdk(carrier: &std::collections::HashMap<String, String>) {
    use opentelemetry::{
        baggage::BaggageExt as _, propagation::TextMapPropagator as _, trace::TraceContextExt as _,
    };
    let ours = otel_messaging::propagation::W3cPropagator::new().extract(carrier);
    let theirs = sdk_w3c_propagator().extract(&otel_messaging::propagation::StrictExtractor::new(carrier));
    assert_eq!(ours.span().span_context(), theirs.span().span_context(), "{carrier:?}");
    let baggage = |cx: &opentelemetry::Context| {
        let mut all: Vec<String> =
            cx.baggage().iter().map(|(k, (v, m))| format!("{k}={v};{}", m.as_str())).collect();
        all.sort();
        all
    };
    assert_eq!(baggage(&ours), baggage(&theirs), "{carrier:?}");
}

/// A global allocator that forwards to the system allocator and counts allocations (reallocations
/// included) and live bytes, for allocation budgets and leak checks in tests and benchmarks:
/// install it with `#[global_allocator] static GLOBAL: CountingAllocator = CountingAllocator;` in
/// a test or bench binary of its own, and compare [`CountingAllocator::allocations`] or
/// [`CountingAllocator::live_bytes`] before and after.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

static ALLOCATIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
static LIVE_BYTES: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

impl CountingAllocator {
    /// Allocations (and reallocations) made through this allocator so far, in the whole process.
    pub fn allocations() -> u64 {
        ALLOCATIONS.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Bytes allocated through this allocator and not yet freed, in the whole process (the
    /// requested sizes: the heap a program holds, without the allocator's own overhead).
    pub fn live_bytes() -> i64 {
        LIVE_BYTES.load(std::sync::atomic::Ordering::Relaxed)
    }
}

fn live(delta: i64) {
    LIVE_BYTES.fetch_add(delta, std::sync::atomic::Ordering::Relaxed);
}

fn size(bytes: usize) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

// SAFETY: every call is forwarded unchanged to the system allocator; only a counter is added.
#[allow(unsafe_code)]
unsafe impl std::alloc::GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: the caller's contract, unchanged.
        let ptr = unsafe { std::alloc::System.alloc(layout) };
        if !ptr.is_null() {
            live(size(layout.size()));
        }
        ptr
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        live(-size(layout.size()));
        // SAFETY: the caller's contract, unchanged.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: the caller's contract, unchanged.
        let new = unsafe { std::alloc::System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            live(size(new_size) - size(layout.size()));
        }
        new
    }
}

/// A message's headers as the per-message benchmarks see them (`benches/overhead.rs` of the Kafka
/// crate, `perf-gate`): a fresh record's headers, read through an [`Extractor`](opentelemetry::propagation::Extractor) and written
/// through an [`Injector`](opentelemetry::propagation::Injector) of the carrier's own.
pub trait BenchCarrier: Sized {
    /// The headers a record has before any instrumentation (one application header).
    fn fresh() -> Self;
    /// Runs `f` on an extractor over these headers.
    fn read<R>(&self, f: impl FnOnce(&dyn opentelemetry::propagation::Extractor) -> R) -> R;
    /// Runs `f` on an injector into these headers.
    fn write(&mut self, f: impl FnOnce(&mut dyn opentelemetry::propagation::Injector));
}

/// Headers as a small vector of pairs (case-insensitive look-ups, a set replaces): the carrier of
/// the broker-free benchmarks.
#[derive(Debug, Clone, Default)]
pub struct BenchHeaders(pub Vec<(String, String)>);

impl opentelemetry::propagation::Extractor for BenchHeaders {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

impl opentelemetry::propagation::Injector for BenchHeaders {
    fn set(&mut self, key: &str, value: String) {
        match self.0.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key.to_owned(), value)),
        }
    }
}

impl BenchCarrier for BenchHeaders {
    fn fresh() -> Self {
        let mut headers = Vec::with_capacity(4);
        headers.push(("app".to_owned(), "1".to_owned()));
        BenchHeaders(headers)
    }
    fn read<R>(&self, f: impl FnOnce(&dyn opentelemetry::propagation::Extractor) -> R) -> R {
        f(self)
    }
    fn write(&mut self, f: impl FnOnce(&mut dyn opentelemetry::propagation::Injector)) {
        f(self)
    }
}

/// The Kafka-like send, receive or process view of the per-message benchmarks: destination
/// `orders`, server `kafka-1:9092`, client ids, group `workers` on receive and process, and a
/// partition when given.
#[derive(Debug, Clone, Copy)]
pub struct BenchView {
    /// `Send`, `Receive` or `Process`.
    pub operation: otel_messaging::OperationType,
    /// `messaging.destination.partition.id`, if any.
    pub partition: Option<&'static str>,
}

impl otel_messaging::MessagingAttributes for BenchView {
    fn system(&self) -> &'static str {
        "kafka"
    }
    fn operation_type(&self) -> otel_messaging::OperationType {
        self.operation
    }
    fn operation_name(&self) -> &'static str {
        match self.operation {
            otel_messaging::OperationType::Send => "send",
            otel_messaging::OperationType::Receive => "poll",
            _ => "process",
        }
    }
    fn destination_name(&self) -> Option<&str> {
        Some("orders")
    }
    fn destination_partition_id(&self) -> Option<opentelemetry::StringValue> {
        self.partition.map(opentelemetry::StringValue::from)
    }
    fn consumer_group_name(&self) -> Option<&str> {
        (self.operation != otel_messaging::OperationType::Send).then_some("workers")
    }
    fn client_id(&self) -> Option<&str> {
        Some(if self.operation == otel_messaging::OperationType::Send { "order-api" } else { "order-worker" })
    }
    fn server(&self) -> Option<(&str, Option<u16>)> {
        Some(("kafka-1", Some(9092)))
    }
}

/// One message through `instrumenter`: a send under `parent` (injecting into fresh headers), then
/// its process with no ambient span. Returns the headers (for `black_box`).
pub fn bench_ours<C: BenchCarrier>(
    instrumenter: &MessagingInstrumenter,
    partition: Option<&'static str>,
    parent: &opentelemetry::Context,
) -> C {
    ours(instrumenter, partition, parent, false)
}

/// [`bench_ours`] with a single-message receive between the send and the process: a `poll`
/// CLIENT span with no parent, linking the message's creation context, read once for the link
/// and the process span (what a Kafka `recv_traced` records and reads).
pub fn bench_ours_received<C: BenchCarrier>(
    instrumenter: &MessagingInstrumenter,
    parent: &opentelemetry::Context,
) -> C {
    ours(instrumenter, None, parent, true)
}

fn ours<C: BenchCarrier>(
    instrumenter: &MessagingInstrumenter,
    partition: Option<&'static str>,
    parent: &opentelemetry::Context,
    receive: bool,
) -> C {
    use otel_messaging::OperationType;
    let mut headers = C::fresh();
    let send = headers.read(|x| {
        instrumenter
            .operation(&BenchView { operation: OperationType::Send, partition })
            .with_parent(parent)
            .with_outgoing_message(x)
            .start()
    });
    headers.write(|x| send.inject(x));
    send.end_ok();
    // A receive reads the context once, for its link and the process span (what the broker
    // crates' receives do: BENCHMARKS.md, levers 25 and 26).
    let reading = receive.then(|| {
        headers.read(|x| {
            let reading = instrumenter.extract_delivered(x);
            instrumenter
                .operation(&BenchView { operation: OperationType::Receive, partition })
                .with_parent(&opentelemetry::Context::new())
                .with_links(reading.link(Vec::new()).into_iter().collect())
                .start()
                .end_ok();
            reading
        })
    });
    let process = headers.read(|x| {
        let view = BenchView { operation: OperationType::Process, partition };
        let root = opentelemetry::Context::new();
        let builder = instrumenter.operation(&view).with_parent(&root);
        builder.with_delivered_context(x, reading.as_ref()).start()
    });
    process.end_ok();
    headers
}

/// The SDK's own cost of one message: two spans without attributes (a PRODUCER child of `parent`,
/// a CONSUMER child of the extracted context), the context injected and extracted straight on the
/// headers by `propagator`. Returns the headers.
pub fn bench_floor<C: BenchCarrier>(
    provider: &SdkTracerProvider,
    propagator: &dyn opentelemetry::propagation::TextMapPropagator,
    parent: &opentelemetry::Context,
) -> C {
    floor(provider, propagator, parent, false)
}

/// [`bench_floor`] with the receive of [`bench_ours_received`] at the same point: the context
/// extracted, and a `poll` CLIENT span without attributes linking it.
pub fn bench_floor_received<C: BenchCarrier>(
    provider: &SdkTracerProvider,
    propagator: &dyn opentelemetry::propagation::TextMapPropagator,
    parent: &opentelemetry::Context,
) -> C {
    floor(provider, propagator, parent, true)
}

fn floor<C: BenchCarrier>(
    provider: &SdkTracerProvider,
    propagator: &dyn opentelemetry::propagation::TextMapPropagator,
    parent: &opentelemetry::Context,
    receive: bool,
) -> C {
    use opentelemetry::trace::{Link, TraceContextExt as _, Tracer as _, TracerProvider as _};
    let tracer = provider.tracer("floor");
    let mut headers = C::fresh();
    let span =
        tracer.span_builder("send orders").with_kind(SpanKind::Producer).start_with_context(&tracer, parent);
    let cx = parent.with_span(span);
    headers.write(|x| propagator.inject_context(&cx, x));
    cx.span().end();
    if receive {
        let linked = headers.read(|x| propagator.extract_with_context(&opentelemetry::Context::new(), x));
        let link = Link::with_context(linked.span().span_context().clone());
        let poll = tracer.span_builder("poll orders").with_kind(SpanKind::Client).with_links(vec![link]);
        drop(poll.start_with_context(&tracer, &opentelemetry::Context::new()));
    }
    let extracted = headers.read(|x| propagator.extract_with_context(&opentelemetry::Context::new(), x));
    let span = tracer
        .span_builder("process orders")
        .with_kind(SpanKind::Consumer)
        .start_with_context(&tracer, &extracted);
    drop(span);
    headers
}

/// A request whose trace was not sampled upstream (`traceparent` flags `00`), under which a
/// parent-based sampler drops every span.
pub fn unsampled_request() -> opentelemetry::Context {
    use opentelemetry::trace::{SpanContext, TraceContextExt as _, TraceFlags, TraceState};
    opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
        SpanId::from(0x00f0_67aa_0ba9_02b7),
        TraceFlags::default(),
        true,
        TraceState::default(),
    ))
}
