//! Per-message instrumentation overhead, produce + consume together, without a broker: what one
//! message costs on top of building its record headers. Compare the ratios within one run.
//!
//! * `baseline`: build the headers of a record (what every producer does anyway);
//! * `seeds_pattern`: the common hand-written pattern (inject into a `HashMap`, copy into the
//!   headers; copy back, extract), with spans;
//! * `otel_messaging/unsampled`: our send + process operations with an `AlwaysOff` sampler;
//! * `otel_messaging/sampled`: the same, sampled, spans through a batch processor to an exporter
//!   that drops them;
//! * `extract_no_context`: extraction from a message without propagation headers.
//!
//! Metrics are off (`with_metrics(false)`) so the numbers are the tracing/propagation cost.
//!
//! ```sh
//! just bench
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::{collections::HashMap, hint::black_box};

use criterion::{Criterion, criterion_group, criterion_main};
use opentelemetry::{
    Context,
    propagation::TextMapPropagator,
    trace::{SpanKind, TraceContextExt, Tracer, TracerProvider as _},
};
use opentelemetry_sdk::{
    error::OTelSdkResult,
    trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter},
};
use otel_messaging::{
    MessagingAttributes, MessagingInstrumenter, OperationType, propagation::EmptyExtractor,
    testing::w3c_propagator,
};
use otel_messaging_rdkafka::{HeadersExtractor, HeadersInjector};
use rdkafka::message::{Header, Headers, OwnedHeaders};

#[derive(Debug)]
struct DropExporter;

impl SpanExporter for DropExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        black_box(batch);
        Ok(())
    }
}

fn provider(sampler: Sampler) -> SdkTracerProvider {
    SdkTracerProvider::builder().with_sampler(sampler).with_batch_exporter(DropExporter).build()
}

fn instrumenter(provider: &SdkTracerProvider) -> MessagingInstrumenter {
    MessagingInstrumenter::builder()
        .with_tracer_provider(provider)
        .with_propagator(w3c_propagator())
        .with_metrics(false)
        .build()
}

struct Send;
impl MessagingAttributes for Send {
    fn system(&self) -> &'static str {
        "kafka"
    }
    fn operation_type(&self) -> OperationType {
        OperationType::Send
    }
    fn operation_name(&self) -> &'static str {
        "send"
    }
    fn destination_name(&self) -> Option<&str> {
        Some("orders")
    }
    fn server(&self) -> Option<(&str, Option<u16>)> {
        Some(("kafka-1", Some(9092)))
    }
}

struct Process;
impl MessagingAttributes for Process {
    fn system(&self) -> &'static str {
        "kafka"
    }
    fn operation_type(&self) -> OperationType {
        OperationType::Process
    }
    fn operation_name(&self) -> &'static str {
        "process"
    }
    fn destination_name(&self) -> Option<&str> {
        Some("orders")
    }
    fn consumer_group_name(&self) -> Option<&str> {
        Some("workers")
    }
    fn server(&self) -> Option<(&str, Option<u16>)> {
        Some(("kafka-1", Some(9092)))
    }
}

fn headers() -> OwnedHeaders {
    OwnedHeaders::new_with_capacity(4).insert(Header { key: "app", value: Some("1") })
}

fn ours(instrumenter: &MessagingInstrumenter) {
    let mut h = headers();
    let send = instrumenter.start_send(&Send, &Context::new(), &HeadersExtractor(&h));
    send.inject(&mut HeadersInjector(&mut h));
    send.end_ok();
    let process = instrumenter.start_process_in(&Process, &HeadersExtractor(&h), &Context::new());
    process.end_ok();
    black_box(h);
}

fn seeds_pattern(provider: &SdkTracerProvider, propagator: &dyn TextMapPropagator) {
    let tracer = provider.tracer("seeds");
    let span = tracer.span_builder("orders publish").with_kind(SpanKind::Producer).start(&tracer);
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
        .start_with_context(&tracer, &parent);
    drop(span);
}

fn bench(c: &mut Criterion) {
    let sampled = provider(Sampler::AlwaysOn);
    let unsampled = provider(Sampler::AlwaysOff);
    let (on, off) = (instrumenter(&sampled), instrumenter(&unsampled));
    let propagator = w3c_propagator();

    let mut g = c.benchmark_group("per_message");
    g.bench_function("baseline", |b| b.iter(|| black_box(headers())));
    g.bench_function("seeds_pattern/sampled", |b| b.iter(|| seeds_pattern(&sampled, &propagator)));
    g.bench_function("seeds_pattern/unsampled", |b| b.iter(|| seeds_pattern(&unsampled, &propagator)));
    g.bench_function("otel_messaging/sampled", |b| b.iter(|| ours(&on)));
    g.bench_function("otel_messaging/unsampled", |b| b.iter(|| ours(&off)));
    g.bench_function("extract_no_context", |b| {
        let h = headers();
        b.iter(|| black_box(on.extract_context(&HeadersExtractor(&h))))
    });
    g.bench_function("extract_no_headers", |b| b.iter(|| black_box(on.extract_context(&EmptyExtractor))));
    g.finish();
    let _ = sampled.shutdown();
    let _ = unsampled.shutdown();
}

criterion_group!(benches, bench);
criterion_main!(benches);
