//! DESIGN target: extracting from a message that carries no context allocates nothing.
//! Own test binary, because it installs a counting global allocator.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::atomic::{AtomicUsize, Ordering},
};

use opentelemetry::trace::TraceContextExt;
use otel_messaging::{MessagingInstrumenter, propagation::EmptyExtractor, testing::w3c_propagator};

struct Counting;
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator, only counting calls.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..100 {
        let cx = instrumenter.extract_context(&headers);
        assert!(!cx.span().span_context().is_valid());
        let cx = instrumenter.extract_context(&EmptyExtractor);
        assert!(!cx.span().span_context().is_valid());
    }
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed) - before, 0);
}
