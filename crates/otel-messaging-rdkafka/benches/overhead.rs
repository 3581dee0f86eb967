//! Per-message instrumentation overhead, one send + one process per message, without a broker:
//! what a message costs on top of building its record headers. Every variant is in one criterion
//! group, so the ratios (printed by `scripts/bench_ratios.py`, which `just bench` runs) come from one
//! run; the allocations per message of each variant are counted after the timing and printed.
//!
//! * `baseline`: build the headers of a record (what every producer does anyway);
//! * `floor/*`: what the OpenTelemetry SDK itself costs — the same two spans with no attributes,
//!   context injected and extracted straight on the headers (no intermediate carrier);
//! * `seeds/*`: the common hand-written pattern (inject into a `HashMap`, copy into the headers;
//!   copy back, extract), with 5–6 attributes;
//! * `ours/*`: our send + process operations through the core instrumenter and the Kafka carriers,
//!   with the propagator we recommend (`W3cPropagator`);
//! * `ours_sdk_propagator/*`: the same on the SDK's W3C propagators, which the floor uses: what our
//!   layer alone adds to the floor;
//! * `sampled` = `AlwaysOn` with a synchronous (simple) processor, `unsampled` = `AlwaysOff`,
//!   `batch` = `AlwaysOn` with a batch processor; the exporter drops the spans;
//! * `ours/sampled_metrics`: with the four messaging instruments recording (metrics are off in the
//!   others); `ours/sampled_metrics_partitions`: the same, each message on the next of 256
//!   partitions (512 metric attribute sets in turn, as for a consumer of a wide topic);
//! * `*/unsampled_parent`: the send's parent is a request whose trace was not sampled upstream,
//!   under `ParentBased(AlwaysOn)` (the SDK's default sampler): `floor` and `ours` through the
//!   SDK, `ours_fast` on the unsampled fast path (`with_parent_based_sampling(true)`), metrics off
//!   except in `ours_fast/unsampled_parent_metrics`;
//! * `extract_no_context`: extraction from a message without propagation headers.
//!
//! ```sh
//! just bench
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::{collections::HashMap, hint::black_box};

use bench_support::{
    BenchCarrier, CountingAllocator, DropExporter, bench_floor, bench_ours, sdk_w3c_propagator,
    unsampled_request, w3c_propagator,
};
use criterion::{Criterion, criterion_group};
use opentelemetry::{
    Context, KeyValue,
    propagation::TextMapPropagator,
    trace::{SpanKind, TraceContextExt, Tracer, TracerProvider as _},
};
use opentelemetry_sdk::{
    metrics::{InMemoryMetricExporter, SdkMeterProvider},
    trace::{Sampler, SdkTracerProvider},
};
use otel_messaging::MessagingInstrumenter;
use otel_messaging_rdkafka::{HeadersExtractor, HeadersInjector};
use rdkafka::message::{Header, Headers, OwnedHeaders};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

fn sync_provider(sampler: Sampler) -> SdkTracerProvider {
    SdkTracerProvider::builder().with_sampler(sampler).with_simple_exporter(DropExporter).build()
}

fn batch_provider() -> SdkTracerProvider {
    SdkTracerProvider::builder().with_sampler(Sampler::AlwaysOn).with_batch_exporter(DropExporter).build()
}

fn instrumenter(provider: &SdkTracerProvider, meter: Option<&SdkMeterProvider>) -> MessagingInstrumenter {
    let builder =
        MessagingInstrumenter::builder().with_tracer_provider(provider).with_propagator(w3c_propagator());
    match meter {
        Some(meter) => builder.with_meter_provider(meter).build(),
        None => builder.with_metrics(false).build(),
    }
}

/// The same instrumenter on the SDK's W3C propagators (the usual global propagator): what our
/// layer adds on top of the floor's own propagation.
fn instrumenter_sdk_propagator(provider: &SdkTracerProvider) -> MessagingInstrumenter {
    MessagingInstrumenter::builder()
        .with_tracer_provider(provider)
        .with_propagator(sdk_w3c_propagator())
        .with_metrics(false)
        .build()
}

/// The instrumenter a user gets without choosing a propagator: the global one, which in this
/// process is opentelemetry-rust's no-op, so the W3C fallback propagates (issue "Correct by
/// default", point 1; the global check is part of the cost).
fn instrumenter_default_propagator(provider: &SdkTracerProvider) -> MessagingInstrumenter {
    MessagingInstrumenter::builder().with_tracer_provider(provider).with_metrics(false).build()
}

/// The partition a view names (`None`: no partition attribute, as in most variants).
type Partition = Option<&'static str>;

/// A Kafka record's headers as the shared benchmark steps see them.
struct Kafka(OwnedHeaders);

impl BenchCarrier for Kafka {
    fn fresh() -> Self {
        Kafka(headers())
    }
    fn read<R>(&self, f: impl FnOnce(&dyn opentelemetry::propagation::Extractor) -> R) -> R {
        f(&HeadersExtractor(&self.0))
    }
    fn write(&mut self, f: impl FnOnce(&mut dyn opentelemetry::propagation::Injector)) {
        f(&mut HeadersInjector(&mut self.0))
    }
}

fn headers() -> OwnedHeaders {
    OwnedHeaders::new_with_capacity(4).insert(Header { key: "app", value: Some("1") })
}

fn ours(instrumenter: &MessagingInstrumenter) {
    ours_at(instrumenter, None);
}

fn ours_at(instrumenter: &MessagingInstrumenter, partition: Partition) {
    ours_in(instrumenter, partition, &Context::new());
}

/// Send under `parent`, then process with no ambient span.
fn ours_in(instrumenter: &MessagingInstrumenter, partition: Partition, parent: &Context) {
    black_box(bench_ours::<Kafka>(instrumenter, partition, parent));
}

/// The SDK's own cost: two spans without attributes, the context straight on the headers.
fn floor(provider: &SdkTracerProvider, propagator: &dyn TextMapPropagator) {
    floor_in(provider, propagator, &Context::new());
}

/// [`floor`] with the send span a child of `parent`.
fn floor_in(provider: &SdkTracerProvider, propagator: &dyn TextMapPropagator, parent: &Context) {
    black_box(bench_floor::<Kafka>(provider, propagator, parent));
}

fn seeds(provider: &SdkTracerProvider, propagator: &dyn TextMapPropagator) {
    let tracer = provider.tracer("seeds");
    let span = tracer
        .span_builder("orders publish")
        .with_kind(SpanKind::Producer)
        .with_attributes([
            KeyValue::new("messaging.system", "kafka"),
            KeyValue::new("messaging.operation.name", "send"),
            KeyValue::new("messaging.operation.type", "send"),
            KeyValue::new("messaging.destination.name", "orders".to_string()),
            KeyValue::new("server.address", "kafka-1".to_string()),
            KeyValue::new("server.port", 9092_i64),
        ])
        .start(&tracer);
    let cx = Context::new().with_span(span);
    let mut map: HashMap<String, String> = HashMap::new();
    propagator.inject_context(&cx, &mut map);
    let mut h = headers();
    for (k, v) in &map {
        h = h.insert(Header { key: k, value: Some(v.as_str()) });
    }
    cx.span().end();
    let mut back: HashMap<String, String> = HashMap::new();
    for header in h.iter() {
        if let Some(v) = header.value.and_then(|v| std::str::from_utf8(v).ok()) {
            back.insert(header.key.to_string(), v.to_string());
        }
    }
    let parent = propagator.extract_with_context(&Context::new(), &back);
    let span = tracer
        .span_builder("orders process")
        .with_kind(SpanKind::Consumer)
        .with_attributes([
            KeyValue::new("messaging.system", "kafka"),
            KeyValue::new("messaging.operation.name", "process"),
            KeyValue::new("messaging.operation.type", "process"),
            KeyValue::new("messaging.destination.name", "orders".to_string()),
            KeyValue::new("messaging.consumer.group.name", "workers".to_string()),
        ])
        .start_with_context(&tracer, &parent);
    drop(span);
}

/// Allocations per call of `f`, over 1 000 calls after a warm-up.
fn allocations(mut f: impl FnMut()) -> f64 {
    for _ in 0..100 {
        f();
    }
    let before = CountingAllocator::allocations();
    for _ in 0..1_000 {
        f();
    }
    (CountingAllocator::allocations() - before) as f64 / 1_000.0
}

/// The providers every variant runs on.
struct Setup {
    sampled: SdkTracerProvider,
    unsampled: SdkTracerProvider,
    /// `ParentBased(AlwaysOn)`, the SDK's default sampler.
    parent_based: SdkTracerProvider,
    batch: SdkTracerProvider,
    meter: SdkMeterProvider,
}

impl Setup {
    fn new() -> Self {
        Setup {
            sampled: sync_provider(Sampler::AlwaysOn),
            unsampled: sync_provider(Sampler::AlwaysOff),
            parent_based: sync_provider(Sampler::ParentBased(Box::new(Sampler::AlwaysOn))),
            batch: batch_provider(),
            meter: SdkMeterProvider::builder()
                .with_periodic_exporter(InMemoryMetricExporter::default())
                .build(),
        }
    }

    fn shutdown(&self) {
        let _ = self.sampled.shutdown();
        let _ = self.unsampled.shutdown();
        let _ = self.parent_based.shutdown();
        let _ = self.batch.shutdown();
        let _ = self.meter.shutdown();
    }
}

/// Partitions of `ours/sampled_metrics_partitions`.
const PARTITIONS: usize = 256;

type Variant<'a> = (&'static str, Box<dyn Fn() + 'a>);

fn variants(setup: &Setup) -> Vec<Variant<'_>> {
    let (on, off, on_batch, on_metrics) = (
        instrumenter(&setup.sampled, None),
        instrumenter(&setup.unsampled, None),
        instrumenter(&setup.batch, None),
        instrumenter(&setup.sampled, Some(&setup.meter)),
    );
    // A consumer over many partitions: each message on the next of 256 partitions, so 512 metric
    // attribute sets (send and process per partition) take turns.
    let on_partitions = on_metrics.clone();
    let partitions: Vec<&'static str> =
        (0..PARTITIONS).map(|p| &*Box::leak(p.to_string().into_boxed_str())).collect();
    let next = std::cell::Cell::new(0_usize);
    // The floor and the seeds' pattern use the SDK's own propagators, as an application would.
    let (p1, p2, p3, p4) =
        (sdk_w3c_propagator(), sdk_w3c_propagator(), sdk_w3c_propagator(), sdk_w3c_propagator());
    let (on_sdk, off_sdk) =
        (instrumenter_sdk_propagator(&setup.sampled), instrumenter_sdk_propagator(&setup.unsampled));
    let (on_default, off_default) =
        (instrumenter_default_propagator(&setup.sampled), instrumenter_default_propagator(&setup.unsampled));
    // An unsampled request under the SDK's default sampler: the SDK's own cost, ours through the
    // SDK, ours on the unsampled fast path.
    let request = unsampled_request();
    let p5 = sdk_w3c_propagator();
    let under_parent = instrumenter(&setup.parent_based, None);
    let fast = MessagingInstrumenter::builder()
        .with_tracer_provider(&setup.parent_based)
        .with_propagator(w3c_propagator())
        .with_metrics(false)
        .with_parent_based_sampling(true)
        .build();
    let fast_metrics = MessagingInstrumenter::builder()
        .with_tracer_provider(&setup.parent_based)
        .with_meter_provider(&setup.meter)
        .with_propagator(w3c_propagator())
        .with_parent_based_sampling(true)
        .build();
    let (r1, r2, r3, r4) = (request.clone(), request.clone(), request.clone(), request);
    vec![
        ("baseline", Box::new(|| drop(black_box(headers())))),
        ("floor/unsampled_parent", Box::new(move || floor_in(&setup.parent_based, &p5, &r1))),
        ("ours/unsampled_parent", Box::new(move || ours_in(&under_parent, None, &r2))),
        ("ours_fast/unsampled_parent", Box::new(move || ours_in(&fast, None, &r3))),
        ("ours_fast/unsampled_parent_metrics", Box::new(move || ours_in(&fast_metrics, None, &r4))),
        ("floor/sampled", Box::new(move || floor(&setup.sampled, &p1))),
        ("floor/unsampled", Box::new(move || floor(&setup.unsampled, &p2))),
        ("seeds/sampled", Box::new(move || seeds(&setup.sampled, &p3))),
        ("seeds/batch", Box::new(move || seeds(&setup.batch, &p4))),
        (
            "ours/sampled",
            Box::new({
                let on = on.clone();
                move || ours(&on)
            }),
        ),
        ("ours/sampled_metrics", Box::new(move || ours(&on_metrics))),
        (
            "ours/sampled_metrics_partitions",
            Box::new(move || {
                let i = next.get();
                next.set((i + 1) % PARTITIONS);
                ours_at(&on_partitions, Some(partitions[i]));
            }),
        ),
        ("ours/batch", Box::new(move || ours(&on_batch))),
        ("ours/unsampled", Box::new(move || ours(&off))),
        ("ours_sdk_propagator/sampled", Box::new(move || ours(&on_sdk))),
        ("ours_sdk_propagator/unsampled", Box::new(move || ours(&off_sdk))),
        ("ours_default/sampled", Box::new(move || ours(&on_default))),
        ("ours_default/unsampled", Box::new(move || ours(&off_default))),
        (
            "extract_no_context",
            Box::new(move || {
                let h = headers();
                black_box(on.extract_context(&HeadersExtractor(&h)));
            }),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let setup = Setup::new();
    let variants = variants(&setup);
    let mut g = c.benchmark_group("per_message");
    for (name, f) in &variants {
        g.bench_function(*name, |b| b.iter(f));
    }
    g.finish();
    println!("allocations per message (send + process):");
    for (name, f) in &variants {
        println!("  {name:<24} {:>6.1}", allocations(f));
    }
    drop(variants);
    setup.shutdown();
}

criterion_group!(benches, bench);

/// `OVERHEAD_ONLY=<variant> OVERHEAD_N=<n>` runs one variant `n` times (after 100 warm-up calls)
/// and exits, for instruction counts under `valgrind --tool=callgrind`, which do not depend on
/// what else the machine runs (`scripts/bench_instructions.sh`). Otherwise: criterion.
fn main() {
    if let Ok(only) = std::env::var("OVERHEAD_ONLY") {
        let n: usize = std::env::var("OVERHEAD_N").ok().and_then(|n| n.parse().ok()).unwrap_or(10_000);
        let setup = Setup::new();
        let variants = variants(&setup);
        let (_, f) = variants.iter().find(|(name, _)| *name == only).expect("OVERHEAD_ONLY names a variant");
        for _ in 0..100 + n {
            f();
        }
        drop(variants);
        setup.shutdown();
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
