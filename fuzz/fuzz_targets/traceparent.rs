//! The strict W3C validators on arbitrary text: `is_valid_traceparent`, `sanitize_tracestate`,
//! `cap_baggage`. Properties: no panic; a valid `traceparent` is one the SDK reads to the same ids;
//! a sanitized `tracestate` is at most 512 bytes and stable; capped baggage is a prefix of the
//! input within the W3C limits.
#![no_main]

use std::borrow::Cow;

use libfuzzer_sys::fuzz_target;
use opentelemetry::{
    Context,
    propagation::TextMapPropagator,
    trace::TraceContextExt,
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use otel_messaging::propagation::{
    MAX_BAGGAGE_LEN, MAX_BAGGAGE_MEMBERS, MAX_TRACESTATE_LEN, cap_baggage, is_valid_traceparent,
    sanitize_tracestate,
};

fuzz_target!(|input: &str| {
    if is_valid_traceparent(input) {
        let carrier = std::collections::HashMap::from([("traceparent".to_owned(), input.to_owned())]);
        let cx = TraceContextPropagator::new().extract_with_context(&Context::new(), &carrier);
        let sc = cx.span().span_context().clone();
        assert!(sc.is_valid(), "{input:?}");
        assert_eq!(sc.trace_id().to_string(), input[3..35]);
        assert_eq!(sc.span_id().to_string(), input[36..52]);
    }
    if let Some(state) = sanitize_tracestate(input) {
        assert!(state.len() <= MAX_TRACESTATE_LEN, "{input:?}");
        assert_eq!(sanitize_tracestate(&state).as_deref(), Some(&*state), "stable");
        assert!(state.bytes().all(|c| (0x20..=0x7e).contains(&c)));
    }
    let capped = cap_baggage(Cow::Borrowed(input));
    assert!(input.starts_with(&*capped));
    assert!(capped.len() <= MAX_BAGGAGE_LEN);
    assert!(capped.split(',').count() <= MAX_BAGGAGE_MEMBERS);
});
