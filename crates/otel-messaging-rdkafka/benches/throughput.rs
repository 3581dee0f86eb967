//! End-to-end throughput on an in-process rdkafka `MockCluster`: raw vs traced producers and
//! consumers, alternating, printing traced/raw ratios (DESIGN.md targets: produce ≥ 0.90, consume
//! ≥ 0.50). Traced = `send_traced` + `recv_traced` + `process_traced`, every span sampled through a
//! batch processor to an exporter that drops it, metrics on.
//!
//! ```sh
//! just bench                                  # runs it after the micro-benchmarks
//! THROUGHPUT_MESSAGES=50000 cargo bench -p otel-messaging-rdkafka --bench throughput
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use opentelemetry_sdk::{
    error::OTelSdkResult,
    metrics::{InMemoryMetricExporter, SdkMeterProvider},
    trace::{SdkTracerProvider, SpanData, SpanExporter},
};
use otel_messaging::{MessagingInstrumenter, testing::w3c_propagator};
use otel_messaging_rdkafka::{
    FutureProducerExt as _, KafkaInstrumentation, MessageExt as _, StreamConsumerExt as _,
};
use rdkafka::{
    ClientConfig, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    mocking::MockCluster,
    producer::{FutureProducer, FutureRecord},
};

#[derive(Debug)]
struct DropExporter;

impl SpanExporter for DropExporter {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        drop(batch);
        Ok(())
    }
}

const ROUNDS: usize = 3;

fn messages() -> usize {
    std::env::var("THROUGHPUT_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

/// Sends `n` 256-byte records, all in flight at once; returns the seconds taken.
async fn produce(
    producer: &FutureProducer,
    topic: &str,
    n: usize,
    tracing: Option<&KafkaInstrumentation>,
) -> f64 {
    let payload = vec![b'x'; 256];
    let start = Instant::now();
    let sends = (0..n).map(|i| {
        let key = i.to_string();
        let payload = &payload;
        async move {
            let record = FutureRecord::to(topic).key(&key).payload(payload);
            match tracing {
                Some(t) => producer.send_traced_with(t, record, Duration::from_secs(30)).await.map(drop),
                None => producer.send(record, Duration::from_secs(30)).await.map(drop),
            }
            .map_err(|(e, _)| e)
            .expect("delivered")
        }
    });
    join_all(sends).await;
    start.elapsed().as_secs_f64()
}

/// Consumes `n` records from the beginning of partition 0; returns the seconds taken.
async fn consume(bootstrap: &str, topic: &str, n: usize, tracing: Option<&KafkaInstrumentation>) -> f64 {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "throughput")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning).expect("partition");
    consumer.assign(&tpl).expect("assign");
    let start = Instant::now();
    for _ in 0..n {
        match tracing {
            Some(t) => {
                let message = consumer.recv_traced_with(t).await.expect("message");
                message.process_traced_with(t, async { Ok::<_, std::io::Error>(()) }).await.expect("handler");
            }
            None => {
                let message = consumer.recv().await.expect("message");
                std::hint::black_box(&message);
            }
        }
    }
    start.elapsed().as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it: then a
    // 200-message smoke round only checks that both paths work.
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let (n, rounds) = if benchmarking { (messages(), ROUNDS) } else { (200, 1) };
    let provider = SdkTracerProvider::builder().with_batch_exporter(DropExporter).build();
    let meter = SdkMeterProvider::builder().with_periodic_exporter(InMemoryMetricExporter::default()).build();
    let instrumenter = MessagingInstrumenter::builder()
        .with_tracer_provider(&provider)
        .with_meter_provider(&meter)
        .with_propagator(w3c_propagator())
        .build();
    let tracing = KafkaInstrumentation::new().with_instrumenter(instrumenter);
    let mock = MockCluster::new(1).expect("mock cluster");
    let bootstrap = mock.bootstrap_servers();
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");

    let (mut produce_ratio, mut consume_ratio) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let (raw_topic, traced_topic) = (format!("raw-{round}"), format!("traced-{round}"));
        mock.create_topic(&raw_topic, 1, 1).expect("topic");
        mock.create_topic(&traced_topic, 1, 1).expect("topic");
        let raw = produce(&producer, &raw_topic, n, None).await;
        let traced = produce(&producer, &traced_topic, n, Some(&tracing)).await;
        produce_ratio.push(raw / traced);
        let raw_c = consume(&bootstrap, &raw_topic, n, None).await;
        let traced_c = consume(&bootstrap, &traced_topic, n, Some(&tracing)).await;
        consume_ratio.push(raw_c / traced_c);
        println!(
            "round {round}: produce raw {:.0}/s traced {:.0}/s; consume raw {:.0}/s traced {:.0}/s",
            n as f64 / raw,
            n as f64 / traced,
            n as f64 / raw_c,
            n as f64 / traced_c
        );
    }
    println!(
        "MockCluster, {n} messages of 256 B, sampled, batch exporter, metrics on — traced/raw throughput: \
         produce {:.2} (target ≥ 0.90), consume {:.2} (target ≥ 0.50)",
        median(produce_ratio),
        median(consume_ratio)
    );
    let _ = provider.shutdown();
    let _ = meter.shutdown();
}
