//! DESIGN target: extracting from a message that carries no context allocates nothing.
//! Own test binary, because it installs a counting global allocator.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use opentelemetry::trace::TraceContextExt;
use otel_messaging::{
    MessagingInstrumenter,
    propagation::EmptyExtractor,
    testing::{CountingAllocator, w3c_propagator},
};

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

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
    // Warm up lazily initialised state.
    let _ = instrumenter.extract_context(&headers);
    let before = CountingAllocator::allocations();
    for _ in 0..100 {
        let cx = instrumenter.extract_context(&headers);
        assert!(!cx.span().span_context().is_valid());
        let cx = instrumenter.extract_context(&EmptyExtractor);
        assert!(!cx.span().span_context().is_valid());
    }
    assert_eq!(CountingAllocator::allocations() - before, 0);
}
