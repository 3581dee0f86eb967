//! The per-message variants of the performance gate (`scripts/perf_gate.sh`, run by `just test`):
//! one send + one process per message (and a variant with a single-message receive between them)
//! through the core instrumenter, against the SDK's own floor
//! in the same build — the broker-free `per_message` benchmark of the Kafka crate
//! (`benches/overhead.rs`, whose steps it shares through `otel_messaging::testing`) on an
//! in-memory header list, so that it builds without librdkafka in a few seconds of a release
//! build.
//!
//! `perf-gate <variant> <messages>` runs one variant that many times after 100 warm-up messages
//! and exits; the script counts its instructions under callgrind at two sizes and divides the
//! difference (setup and teardown cancel out). `perf-gate` alone lists the variants.

#![allow(clippy::print_stdout, missing_docs)]

use std::hint::black_box;

use bench_support::{
    BenchHeaders, DropExporter, bench_floor, bench_floor_received, bench_ours, bench_ours_received,
    sdk_w3c_propagator, unsampled_request,
};
use opentelemetry::Context;
use opentelemetry_sdk::{
    metrics::{InMemoryMetricExporter, SdkMeterProvider},
    trace::{Sampler, SdkTracerProvider},
};
use otel_messaging::MessagingInstrumenter;

fn provider(sampler: Sampler) -> SdkTracerProvider {
    SdkTracerProvider::builder().with_sampler(sampler).with_simple_exporter(DropExporter).build()
}

/// What a user gets without configuring anything but the providers: no propagator chosen (the
/// global no-op, so the W3C fallback), metrics on the given meter provider or off.
fn default_instrumenter(
    provider: &SdkTracerProvider,
    meter: Option<&SdkMeterProvider>,
) -> MessagingInstrumenter {
    let builder = MessagingInstrumenter::builder().with_tracer_provider(provider);
    match meter {
        Some(meter) => builder.with_meter_provider(meter).build(),
        None => builder.with_metrics(false).build(),
    }
}

/// A named variant: one message per call.
type Variant<'a> = (&'static str, Box<dyn Fn() + 'a>);

fn main() {
    let mut args = std::env::args().skip(1);
    let variant = args.next();
    let messages: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(2_000);

    // The README's usual set-up: the SDK's W3C propagators installed globally (served by our codec
    // once recognised). Only in its own variants: the others measure the default with nothing
    // installed.
    if variant.as_deref().is_some_and(|v| v.starts_with("ours_global_sdk/")) {
        opentelemetry::global::set_text_map_propagator(sdk_w3c_propagator());
    }
    let sampled = provider(Sampler::AlwaysOn);
    let unsampled = provider(Sampler::AlwaysOff);
    let parent_based = provider(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
    let meter = SdkMeterProvider::builder().with_periodic_exporter(InMemoryMetricExporter::default()).build();
    let propagator = sdk_w3c_propagator();
    let request = unsampled_request();
    let root = Context::new();

    let on = default_instrumenter(&sampled, None);
    let off = default_instrumenter(&unsampled, None);
    let on_metrics = default_instrumenter(&sampled, Some(&meter));
    let fast = MessagingInstrumenter::builder()
        .with_tracer_provider(&parent_based)
        .with_metrics(false)
        .with_parent_based_sampling(true)
        .build();

    let variants: Vec<Variant<'_>> = vec![
        ("baseline", Box::new(|| drop(black_box(<BenchHeaders as bench_support::BenchCarrier>::fresh())))),
        (
            "floor/sampled",
            Box::new(|| drop(black_box(bench_floor::<BenchHeaders>(&sampled, &propagator, &root)))),
        ),
        (
            "floor/unsampled",
            Box::new(|| drop(black_box(bench_floor::<BenchHeaders>(&unsampled, &propagator, &root)))),
        ),
        (
            "floor/unsampled_parent",
            Box::new(|| drop(black_box(bench_floor::<BenchHeaders>(&parent_based, &propagator, &request)))),
        ),
        ("ours_default/sampled", Box::new(|| drop(black_box(bench_ours::<BenchHeaders>(&on, None, &root))))),
        // The same message with a single-message receive (a `poll` span linking it) between.
        (
            "floor/sampled_received",
            Box::new(|| drop(black_box(bench_floor_received::<BenchHeaders>(&sampled, &propagator, &root)))),
        ),
        (
            "ours_default/sampled_received",
            Box::new(|| drop(black_box(bench_ours_received::<BenchHeaders>(&on, &root)))),
        ),
        (
            "ours_default/unsampled",
            Box::new(|| drop(black_box(bench_ours::<BenchHeaders>(&off, None, &root)))),
        ),
        (
            "ours_global_sdk/sampled",
            Box::new(|| drop(black_box(bench_ours::<BenchHeaders>(&on, None, &root)))),
        ),
        (
            "ours_global_sdk/unsampled",
            Box::new(|| drop(black_box(bench_ours::<BenchHeaders>(&off, None, &root)))),
        ),
        (
            "ours_default/sampled_metrics",
            Box::new(|| drop(black_box(bench_ours::<BenchHeaders>(&on_metrics, None, &root)))),
        ),
        (
            "ours_fast/unsampled_parent",
            Box::new(|| drop(black_box(bench_ours::<BenchHeaders>(&fast, None, &request)))),
        ),
        // The gate's own negative test (`scripts/perf_gate.sh --self-test`): the default path
        // with a quarter more work per message, which must fail the gate.
        (
            "ours_default/sampled_slowed",
            Box::new(|| {
                drop(black_box(bench_ours::<BenchHeaders>(&on, None, &root)));
                if black_box(true) {
                    for _ in 0..black_box(1) {
                        let extra = bench_floor::<BenchHeaders>(&unsampled, &propagator, &root);
                        drop(black_box(extra));
                    }
                }
            }),
        ),
    ];

    match variant {
        Some(name) => {
            let Some((_, run)) = variants.iter().find(|(n, _)| *n == name) else {
                eprintln!("perf-gate: no variant `{name}`; `perf-gate` lists them");
                std::process::exit(2);
            };
            for _ in 0..100 + messages {
                run();
            }
        }
        None => {
            for (name, _) in &variants {
                println!("{name}");
            }
        }
    }
    drop(variants);
    let _ = (sampled.shutdown(), unsampled.shutdown(), parent_based.shutdown(), meter.shutdown());
}
