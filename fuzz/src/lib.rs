//! Helpers shared by the fuzz targets: an instrumenter on a tracer provider with no exporter and
//! the W3C propagators, and a process-operation view.

use std::sync::OnceLock;

use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry_sdk::{
    propagation::{BaggagePropagator, TraceContextPropagator},
    trace::SdkTracerProvider,
};
use otel_messaging::{MessagingAttributes, MessagingInstrumenter, OperationType};

/// An instrumenter that records (spans are sampled and built, then dropped), without metrics;
/// built once per process for each `trust_boundary` value.
pub fn instrumenter(trust_boundary: bool) -> &'static MessagingInstrumenter {
    static PLAIN: OnceLock<MessagingInstrumenter> = OnceLock::new();
    static GUARDED: OnceLock<MessagingInstrumenter> = OnceLock::new();
    let cell = if trust_boundary { &GUARDED } else { &PLAIN };
    cell.get_or_init(|| build(trust_boundary))
}

fn build(trust_boundary: bool) -> MessagingInstrumenter {
    let provider = SdkTracerProvider::builder().build();
    MessagingInstrumenter::builder()
        .with_tracer_provider(&provider)
        .with_metrics(false)
        .with_trust_boundary(trust_boundary)
        .with_propagator(TextMapCompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
        ]))
        .build()
}

/// The process operation of one message of `system` on destination `fuzz`.
#[derive(Debug)]
pub struct Process(pub &'static str);

impl MessagingAttributes for Process {
    fn system(&self) -> &'static str {
        self.0
    }
    fn operation_type(&self) -> OperationType {
        OperationType::Process
    }
    fn operation_name(&self) -> &'static str {
        "process"
    }
    fn destination_name(&self) -> Option<&str> {
        Some("fuzz")
    }
}
