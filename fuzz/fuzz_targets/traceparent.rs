//! The strict W3C validators on arbitrary text: `is_valid_traceparent`, `sanitize_tracestate`,
//! `cap_baggage`. Properties: no panic; a valid `traceparent` is one the SDK reads to the same ids;
//! a sanitized `tracestate` is at most 512 bytes and stable; capped baggage is a prefix of the
//! input within the W3C limits; `W3cPropagator` extracts the same span context and baggage as the
//! SDK's propagators behind `StrictExtractor`, whatever the three fields hold.
#![no_main]

use std::{borrow::Cow, collections::HashMap};

use libfuzzer_sys::fuzz_target;
use opentelemetry::{Context, propagation::TextMapPropagator, trace::TraceContextExt};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use bench_support::assert_w3c_extracts_as_sdk;
use otel_messaging::__private::{
    MAX_BAGGAGE_LEN, MAX_BAGGAGE_MEMBERS, MAX_TRACESTATE_LEN, cap_baggage, is_valid_traceparent,
    sanitize_tracestate,
};

fuzz_target!(|input: &str| {
    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    // `W3cPropagator` reads whatever the three fields hold as the SDK's propagators do.
    assert_w3c_extracts_as_sdk(&HashMap::from([("traceparent".to_owned(), input.to_owned())]));
    assert_w3c_extracts_as_sdk(&HashMap::from([
        ("traceparent".to_owned(), VALID.to_owned()),
        ("tracestate".to_owned(), input.to_owned()),
        ("baggage".to_owned(), input.to_owned()),
    ]));
    if is_valid_traceparent(input) {
        let carrier = HashMap::from([("traceparent".to_owned(), input.to_owned())]);
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
