//! DESIGN target: extracting from a message that carries no context allocates nothing.
//! Own test binary, because it installs a counting global allocator.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use bench_support::{CountingAllocator, w3c_propagator};
use opentelemetry::trace::TraceContextExt;
use otel_messaging::{__private::EmptyExtractor, MessagingInstrumenter};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// The counter is process-wide: one test measures at a time, and each takes the fewest
/// allocations of five rounds (the test harness's own threads allocate now and then).
static MEASURING: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The fewest allocations per call of `f` over five rounds of 100 calls.
fn allocations_per_call(mut f: impl FnMut()) -> f64 {
    let _one_at_a_time = MEASURING.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    f();
    (0..5)
        .map(|_| {
            let before = CountingAllocator::allocations();
            for _ in 0..100 {
                f();
            }
            (CountingAllocator::allocations() - before) as f64 / 100.0
        })
        .fold(f64::INFINITY, f64::min)
}

/// A carrier like the broker header carriers: look-ups borrow, never allocate. (opentelemetry's
/// own `HashMap<String, String>` extractor lower-cases every key it is asked for, which allocates.)
struct Pairs(&'static [(&'static str, &'static str)]);

impl opentelemetry::propagation::Extractor for Pairs {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| *v)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| *k).collect()
    }
}

#[test]
fn extracting_without_context_allocates_nothing() {
    let instrumenter =
        MessagingInstrumenter::builder().with_propagator(w3c_propagator()).with_metrics(false).build();
    let headers = Pairs(&[("app", "1"), ("content-type", "json")]);
    let per_call = allocations_per_call(|| {
        let cx = instrumenter.extract_context(&headers);
        assert!(!cx.span().span_context().is_valid());
        let cx = instrumenter.extract_context(&EmptyExtractor);
        assert!(!cx.span().span_context().is_valid());
    });
    assert_eq!(per_call, 0.0);
}

/// A carrier that keeps its storage: `set` reuses the slot of a known key (what a header list
/// with capacity does), so only what the propagator itself allocates is counted.
struct Slots(Vec<(String, String)>);

impl opentelemetry::propagation::Injector for Slots {
    fn set(&mut self, key: &str, value: String) {
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = value,
            None => self.0.push((key.to_owned(), value)),
        }
    }
}

impl opentelemetry::propagation::Extractor for Slots {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
}

/// Issue "Performance by default": the unsampled fast path (metrics off) allocates only what the
/// OpenTelemetry API makes it: the `traceparent` value `Injector::set` takes by value, and the
/// process context (`Context::with_remote_span_context` holds its span behind an `Arc`). No span
/// data, no attribute vector, no links.
#[test]
fn the_unsampled_fast_path_allocates_only_what_the_api_requires() {
    use bench_support::BenchView;
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    use otel_messaging::OperationType;
    let view = |operation| BenchView { operation, partition: None };
    let instrumenter = MessagingInstrumenter::builder()
        .with_propagator(w3c_propagator())
        .with_metrics(false)
        .with_parent_based_sampling(true)
        .build();
    let parent = opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
        TraceId::from(1),
        SpanId::from(2),
        TraceFlags::default(),
        true,
        TraceState::default(),
    ));
    let mut carrier = Slots(Vec::with_capacity(4));
    let message = || {
        let send = instrumenter
            .operation(&view(OperationType::Send))
            .with_parent(&parent)
            .with_outgoing_message(&Slots(Vec::new()))
            .start();
        send.inject(&mut carrier);
        send.end_ok();
        let process = instrumenter
            .operation(&view(OperationType::Process))
            .with_parent(&parent)
            .with_delivered_message(&carrier)
            .start();
        assert!(!process.context().span().span_context().is_sampled());
        process.end_ok();
    };
    let per_message = allocations_per_call(message);
    assert!(per_message <= 2.0, "{per_message} allocations per message");
}
