//! Providers read when used (issue "Correct by default", point 2): an instrumenter built — and a
//! first traced call made — before the global tracer and meter providers are installed exports to
//! those providers once they are. Its own test binary: the global providers are process-wide.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use opentelemetry_sdk::{
    metrics::{InMemoryMetricExporter, SdkMeterProvider, data::AggregatedMetrics, data::MetricData},
    trace::{InMemorySpanExporter, SdkTracerProvider},
};
mod common;

use common::SendTo;
use otel_messaging::MessagingInstrumenter;

#[test]
fn an_instrumenter_built_before_the_provider_exports_to_it_once_installed() {
    // Built, and used, as an `AppState` built before telemetry would.
    let instrumenter = MessagingInstrumenter::new();
    let headers: HashMap<String, String> = HashMap::new();
    instrumenter.operation(&SendTo("orders")).with_outgoing_message(&headers).start().end_ok();

    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder().with_simple_exporter(exporter.clone()).build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    for _ in 0..3 {
        instrumenter.operation(&SendTo("orders")).with_outgoing_message(&headers).start().end_ok();
    }
    provider.force_flush().expect("flush");
    // Only this test's spans: the other test of this binary sends to `payments` on the same
    // global tracer provider, in parallel (a race that made this test flaky).
    let names: Vec<_> = exporter
        .get_finished_spans()
        .unwrap()
        .into_iter()
        .map(|s| s.name.into_owned())
        .filter(|name| name == "send orders")
        .collect();
    assert_eq!(names, ["send orders"; 3], "every span after the install is exported");
}

/// The `messaging.client.sent.messages` total to `payments` the exporter holds (latest collection).
fn sent_messages(provider: &SdkMeterProvider, exporter: &InMemoryMetricExporter) -> u64 {
    provider.force_flush().expect("flush");
    let exported = exporter.get_finished_metrics().expect("metrics");
    let Some(last) = exported.last() else { return 0 };
    let mut total = 0;
    for scope in last.scope_metrics() {
        for metric in scope.metrics().filter(|m| m.name() == "messaging.client.sent.messages") {
            if let AggregatedMetrics::U64(MetricData::Sum(sum)) = metric.data() {
                total += sum
                    .data_points()
                    .filter(|p| {
                        p.attributes().any(|kv| {
                            kv.key.as_str() == "messaging.destination.name" && kv.value.as_str() == "payments"
                        })
                    })
                    .map(|p| p.value())
                    .sum::<u64>();
            }
        }
    }
    total
}

#[test]
fn an_instrumenter_built_before_the_meter_provider_records_to_it_once_installed() {
    let instrumenter = MessagingInstrumenter::new();
    let headers: HashMap<String, String> = HashMap::new();
    instrumenter.operation(&SendTo("payments")).with_outgoing_message(&headers).start().end_ok();

    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder().with_periodic_exporter(exporter.clone()).build();
    opentelemetry::global::set_meter_provider(provider.clone());
    // The global provider is read again within a second of the install (GLOBAL_RECHECK_MS).
    let deadline = Instant::now() + Duration::from_secs(10);
    while sent_messages(&provider, &exporter) == 0 {
        assert!(
            Instant::now() < deadline,
            "no sent message recorded 10 s after the meter provider was installed"
        );
        instrumenter.operation(&SendTo("payments")).with_outgoing_message(&headers).start().end_ok();
        std::thread::sleep(Duration::from_millis(50));
    }
    // From then on every operation is recorded, on this thread and on others.
    let before = sent_messages(&provider, &exporter);
    for _ in 0..5 {
        instrumenter.operation(&SendTo("payments")).with_outgoing_message(&headers).start().end_ok();
    }
    let other = instrumenter.clone();
    std::thread::spawn(move || {
        let headers: HashMap<String, String> = HashMap::new();
        for _ in 0..5 {
            other.operation(&SendTo("payments")).with_outgoing_message(&headers).start().end_ok();
        }
    })
    .join()
    .expect("thread");
    assert_eq!(sent_messages(&provider, &exporter) - before, 10);
}
