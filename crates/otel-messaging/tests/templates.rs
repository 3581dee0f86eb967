//! Destination templates (issue "Spec-exact and bounded", point 2): destinations that carry ids
//! get `messaging.destination.template`, span names use it, and metrics carry it instead of the
//! name, so 100 000 distinct destinations make one metric series, not 100 000.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;

use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::trace::Sampler;
mod common;

use common::SendTo;
use otel_messaging::{
    DestinationTemplates, MessagingInstrumenterBuilder,
    testing::{TestTelemetry, attributes},
};

fn templates() -> DestinationTemplates {
    DestinationTemplates::new(["orders.{order_id}.created"])
}

#[test]
fn a_matching_destination_names_its_span_by_its_template_and_keeps_its_name() {
    // A made-up view (no client facts): the conformance check is for the broker crates' spans.
    let t = TestTelemetry::without_conformance();
    let instrumenter = t.instrumenter_builder().with_destination_templates(templates()).build();
    let headers: HashMap<String, String> = HashMap::new();
    instrumenter.operation(&SendTo("orders.4711.created")).with_outgoing_message(&headers).start().end_ok();
    instrumenter.operation(&SendTo("payments")).with_outgoing_message(&headers).start().end_ok();
    let spans = t.spans();
    assert_eq!(spans[0].name, "send orders.{order_id}.created");
    let a = attributes(&spans[0]);
    assert_eq!(a["messaging.destination.template"], Value::from("orders.{order_id}.created"));
    assert_eq!(a["messaging.destination.name"], Value::from("orders.4711.created"));
    assert_eq!(spans[1].name, "send payments", "no template matches: the name as before");
    assert!(!attributes(&spans[1]).contains_key("messaging.destination.template"));
}

#[test]
fn templates_keep_metric_series_bounded_over_100_000_destinations() {
    let t = TestTelemetry::with_sampler(Sampler::AlwaysOff).unchecked();
    let templated = t.instrumenter_builder().with_destination_templates(templates()).build();
    let headers: HashMap<String, String> = HashMap::new();
    for i in 0..100_000 {
        let destination = format!("orders.{i}.created");
        templated.operation(&SendTo(&destination)).with_outgoing_message(&headers).start().end_ok();
    }
    let sent: Vec<_> =
        t.metrics().into_iter().filter(|m| m.name == "messaging.client.sent.messages").collect();
    assert_eq!(sent.len(), 1, "one series for 100 000 destinations: {:?}", &sent[..sent.len().min(3)]);
    assert_eq!(sent[0].count, 100_000);
    assert!(
        sent[0]
            .attributes
            .contains(&KeyValue::new("messaging.destination.template", "orders.{order_id}.created"))
    );
    assert!(
        !sent[0].attributes.iter().any(|kv| kv.key.as_str() == "messaging.destination.name"),
        "the high-cardinality name stays off the metrics: {:?}",
        sent[0].attributes
    );

    // The same destinations without templates: one series per destination (up to the SDK's
    // cardinality limit): what the templates prevent.
    let t = TestTelemetry::with_sampler(Sampler::AlwaysOff).unchecked();
    let plain = t.instrumenter();
    for i in 0..100 {
        let destination = format!("orders.{i}.created");
        plain.operation(&SendTo(&destination)).with_outgoing_message(&headers).start().end_ok();
    }
    let series = t.metrics().into_iter().filter(|m| m.name == "messaging.client.sent.messages").count();
    assert_eq!(series, 100);
}

/// The series of `messaging.client.sent.messages` after sending to `destinations` distinct
/// destinations through an instrumenter built by `configure`, on a meter provider whose own
/// cardinality limit would let them all through: (series, the overflow series' count).
fn sent_series(
    destinations: usize,
    configure: impl FnOnce(MessagingInstrumenterBuilder) -> MessagingInstrumenterBuilder,
) -> (usize, Option<u64>) {
    use opentelemetry_sdk::metrics::{InMemoryMetricExporter, SdkMeterProvider, Stream};
    let exporter = InMemoryMetricExporter::default();
    let meter_provider = SdkMeterProvider::builder()
        .with_periodic_exporter(exporter.clone())
        .with_view(|_: &opentelemetry_sdk::metrics::Instrument| {
            Stream::builder().with_cardinality_limit(1_000_000).build().ok()
        })
        .build();
    let instrumenter = configure(
        otel_messaging::MessagingInstrumenter::builder()
            .with_tracer_provider(&opentelemetry_sdk::trace::SdkTracerProvider::builder().build())
            .with_meter_provider(&meter_provider),
    )
    .build();
    let headers: HashMap<String, String> = HashMap::new();
    for i in 0..destinations {
        let destination = format!("orders.{i}.created");
        instrumenter.operation(&SendTo(&destination)).with_outgoing_message(&headers).start().end_ok();
    }
    meter_provider.force_flush().expect("flush");
    let metrics = exporter.get_finished_metrics().expect("metrics");
    let mut series = 0;
    let mut overflow = None;
    for resource in &metrics {
        for scope in resource.scope_metrics() {
            for metric in scope.metrics().filter(|m| m.name() == "messaging.client.sent.messages") {
                if let opentelemetry_sdk::metrics::data::AggregatedMetrics::U64(
                    opentelemetry_sdk::metrics::data::MetricData::Sum(sum),
                ) = metric.data()
                {
                    for point in sum.data_points() {
                        series += 1;
                        if point.attributes().any(|kv| kv.key.as_str() == "otel.metric.overflow") {
                            overflow = Some(point.value());
                        }
                    }
                }
            }
        }
    }
    (series, overflow)
}

/// Issue "Spec-exact and bounded", point 3: without templates, 100 000 destinations make at most
/// 2 000 series of their own and one overflow series (`otel.metric.overflow = true`) — even on a
/// meter provider whose own cardinality limit would let them all through.
#[test]
fn metric_attribute_sets_are_capped_with_an_overflow_set() {
    let (series, overflow) = sent_series(100_000, |builder| builder);
    assert_eq!(series, 2_001, "2 000 sets of their own and the overflow set");
    assert_eq!(overflow, Some(98_000), "the measurements past the cap, none lost");
}

/// The cap is the builder's to set (`with_metric_cardinality_limit`).
#[test]
fn the_metric_cardinality_limit_is_configurable() {
    let (series, overflow) = sent_series(500, |builder| builder.with_metric_cardinality_limit(10));
    assert_eq!((series, overflow), (11, Some(490)));
}
