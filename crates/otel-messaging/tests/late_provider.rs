//! Providers read when used (issue "Correct by default", point 2): an instrumenter built — and a
//! first traced call made — before the global tracer provider is installed exports to that
//! provider once it is. Its own test binary: the global provider is process-wide.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;

use opentelemetry::Context;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use otel_messaging::{MessagingAttributes, MessagingInstrumenter, OperationType};

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
}

#[test]
fn an_instrumenter_built_before_the_provider_exports_to_it_once_installed() {
    // Built, and used, as an `AppState` built before telemetry would.
    let instrumenter = MessagingInstrumenter::new();
    let headers: HashMap<String, String> = HashMap::new();
    instrumenter.start_send(&Send, &Context::new(), &headers).end_ok();

    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    for _ in 0..3 {
        instrumenter.start_send(&Send, &Context::new(), &headers).end_ok();
    }
    provider.force_flush().expect("flush");
    let names: Vec<_> =
        exporter.get_finished_spans().unwrap().into_iter().map(|s| s.name.into_owned()).collect();
    assert_eq!(names, ["send orders"; 3], "every span after the install is exported");
}
