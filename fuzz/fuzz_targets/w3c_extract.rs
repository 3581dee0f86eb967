//! `StrictExtractor` and an instrumenter's extraction over arbitrary carriers with repeated keys
//! (as Kafka headers allow), including huge and malformed `traceparent`, `tracestate` and
//! `baggage`. Properties: no panic; what is handed to the SDK is within the W3C limits; a process
//! span's inherited `tracestate` is valid and at most 512 bytes; a trust boundary reads no baggage.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use opentelemetry::{Context, baggage::BaggageExt, propagation::Extractor, trace::TraceContextExt};
use otel_messaging::{
    __private::{MAX_BAGGAGE_LEN, MAX_TRACESTATE_LEN, sanitize_tracestate},
    propagation::StrictExtractor,
};

#[derive(Debug, Arbitrary)]
enum Key {
    Traceparent,
    Tracestate,
    Baggage,
    Upper,
    Other(String),
}

#[derive(Debug, Arbitrary)]
struct Input {
    fields: Vec<(Key, String)>,
    trust_boundary: bool,
}

struct Fields(Vec<(String, String)>);

impl Extractor for Fields {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| k.as_str()).collect()
    }
    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let v: Vec<_> =
            self.0.iter().filter(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str()).collect();
        (!v.is_empty()).then_some(v)
    }
}

fuzz_target!(|input: Input| {
    let fields = Fields(
        input
            .fields
            .into_iter()
            .map(|(k, v)| {
                let k = match k {
                    Key::Traceparent => "traceparent".to_owned(),
                    Key::Tracestate => "tracestate".to_owned(),
                    Key::Baggage => "baggage".to_owned(),
                    Key::Upper => "TraceParent".to_owned(),
                    Key::Other(k) => k,
                };
                (k, v)
            })
            .collect(),
    );
    let strict = StrictExtractor::new(&fields);
    if let Some(state) = strict.get("tracestate") {
        assert!(state.len() <= MAX_TRACESTATE_LEN);
        assert!(sanitize_tracestate(state).is_some());
    }
    assert!(strict.get("baggage").is_none_or(|b| b.len() <= MAX_BAGGAGE_LEN));
    let _ = strict.keys();
    let _ = strict.get_all("baggage");

    let instrumenter = otel_messaging_fuzz::instrumenter(input.trust_boundary);
    let operation = instrumenter
        .operation(&otel_messaging_fuzz::Process("kafka"))
        .with_parent(&Context::new())
        .with_delivered_message(&fields)
        .start();
    let state = operation.context().span().span_context().trace_state().header();
    assert!(state.len() <= MAX_TRACESTATE_LEN, "{state:?}");
    if input.trust_boundary {
        assert!(operation.context().baggage().is_empty());
    }
    operation.end_ok();
});
