//! End-to-end throughput: raw vs traced producers and consumers, alternating (the producers' order
//! rotates by round), printing traced/raw ratios (DESIGN.md targets: on the in-process rdkafka
//! `MockCluster` produce ≥ 0.90, consume ≥ 0.50; on a real broker ≥ 0.98 at 10 % sampling). Traced = `send_traced` + `recv_traced` +
//! `process_traced`, spans through a batch processor to an exporter that drops them, metrics on; at
//! 100 % (`AlwaysOn`) and 10 % (`ParentBased(TraceIdRatioBased(0.1))`) sampling.
//!
//! ```sh
//! just bench                                          # MockCluster, after the micro-benchmarks
//! THROUGHPUT_KAFKA=127.0.0.1:9092 just bench          # also a real broker (`just brokers-up`)
//! THROUGHPUT_MESSAGES=50000 cargo bench -p otel-messaging-rdkafka --bench throughput
//! THROUGHPUT_ONLY=produce cargo bench -p otel-messaging-rdkafka --bench throughput  # for profiling
//! scripts/throughput_instructions.sh   # instructions per produced message, all threads (callgrind)
//! ```
//!
//! `THROUGHPUT_PRODUCER=raw|header|floor|traced|traced_nometrics` runs one producer once on the
//! MockCluster (sampled at `THROUGHPUT_SAMPLED`, default 1.0) and nothing else;
//! `THROUGHPUT_CONSUMER=raw|floor|traced|traced_nometrics|traced_batch_nometrics` one consumer once, of records the SDK floor's producer
//! sent (what the instruction-count script measures).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::time::{Duration, Instant};

use bench_support::benchmark_telemetry;
use futures_util::future::join_all;
use opentelemetry_sdk::{metrics::SdkMeterProvider, trace::SdkTracerProvider};
use otel_messaging_rdkafka::{
    FutureProducerExt as _, KafkaInstrumentation, MessageExt as _, StreamConsumerExt as _,
};
use rdkafka::{
    ClientConfig, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    message::{Header, OwnedHeaders},
    mocking::MockCluster,
    producer::{FutureProducer, FutureRecord},
};

const ROUNDS: usize = 3;

fn messages() -> usize {
    std::env::var("THROUGHPUT_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000)
}

/// How records are sent: plain, plain with a `traceparent`-sized header written by hand (what
/// any propagation costs librdkafka), through the bare SDK (the floor), or traced.
#[derive(Clone, Copy)]
enum How<'a> {
    Raw,
    RawWithHeader,
    /// The SDK's own floor: a `send` PRODUCER span without attributes, its context injected
    /// straight into the headers, ended at delivery (same providers as `Traced`).
    Floor(&'a opentelemetry_sdk::trace::SdkTracer),
    Traced(&'a KafkaInstrumentation),
}

/// Sends `n` 256-byte records, all in flight at once; returns the seconds taken.
async fn produce(producer: &FutureProducer, topic: &str, n: usize, how: How<'_>) -> f64 {
    let payload = vec![b'x'; 256];
    let start = Instant::now();
    let sends = (0..n).map(|i| {
        let key = i.to_string();
        let payload = &payload;
        async move {
            let record = FutureRecord::to(topic).key(&key).payload(payload);
            let timeout = Duration::from_secs(30);
            match how {
                How::Traced(t) => producer.send_traced_with(t, record, timeout).await.map(drop),
                How::Raw => producer.send(record, timeout).await.map(drop),
                How::Floor(tracer) => {
                    use opentelemetry::{
                        Context,
                        propagation::TextMapPropagator as _,
                        trace::{SpanKind, TraceContextExt as _, Tracer as _},
                    };
                    let span = tracer.span_builder("send").with_kind(SpanKind::Producer).start(tracer);
                    let cx = Context::new().with_span(span);
                    let mut headers = OwnedHeaders::new_with_capacity(1);
                    opentelemetry_sdk::propagation::TraceContextPropagator::new()
                        .inject_context(&cx, &mut otel_messaging_rdkafka::HeadersInjector(&mut headers));
                    let result = producer.send(record.headers(headers), timeout).await.map(drop);
                    cx.span().end();
                    result
                }
                How::RawWithHeader => {
                    let header = Header {
                        key: "traceparent",
                        value: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
                    };
                    let record = record.headers(OwnedHeaders::new_with_capacity(1).insert(header));
                    producer.send(record, timeout).await.map(drop)
                }
            }
            .map_err(|(e, _)| e)
            .expect("delivered")
        }
    });
    join_all(sends).await;
    start.elapsed().as_secs_f64()
}

/// How records are consumed: plain, through the bare SDK (the floor), or traced.
#[derive(Clone, Copy)]
enum Consume<'a> {
    Raw,
    /// The SDK's own floor at the points where ours works: a `poll` CLIENT span linking the
    /// record's context, then that context extracted again straight from the headers and a
    /// `process` CONSUMER span as its child; no attributes, no metrics (same providers as `Traced`).
    Floor(&'a opentelemetry_sdk::trace::SdkTracer),
    Traced(&'a KafkaInstrumentation),
    /// Traced, received 100 at a time (`recv_batch_traced`: one `poll` span linking them all),
    /// then each processed in turn.
    TracedBatch(&'a KafkaInstrumentation),
}

/// Consumes `n` records from the beginning of partition 0; returns the seconds taken.
async fn consume(bootstrap: &str, topic: &str, n: usize, how: Consume<'_>) -> f64 {
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
    if let Consume::TracedBatch(t) = how {
        let mut batch = Vec::with_capacity(100);
        let mut consumed = 0;
        while consumed < n {
            let wanted = (n - consumed).min(100);
            consumer
                .recv_batch_traced_with(t, &mut batch, wanted, Duration::from_secs(10))
                .await
                .expect("batch");
            for message in batch.drain(..) {
                message.process_traced_with(t, async { Ok::<_, std::io::Error>(()) }).await.expect("handler");
                consumed += 1;
            }
        }
        return start.elapsed().as_secs_f64();
    }
    for _ in 0..n {
        match how {
            Consume::Traced(t) => {
                let message = consumer.recv_traced_with(t).await.expect("message");
                message.process_traced_with(t, async { Ok::<_, std::io::Error>(()) }).await.expect("handler");
            }
            Consume::TracedBatch(_) => unreachable!("consumed above"),
            Consume::Raw => {
                let message = consumer.recv().await.expect("message");
                std::hint::black_box(&message);
            }
            Consume::Floor(tracer) => {
                use opentelemetry::{
                    Context,
                    propagation::TextMapPropagator as _,
                    trace::{Link, SpanKind, TraceContextExt as _, Tracer as _},
                };
                use rdkafka::Message as _;
                let extract = |message: &rdkafka::message::BorrowedMessage<'_>| match message.headers() {
                    Some(headers) => opentelemetry_sdk::propagation::TraceContextPropagator::new()
                        .extract(&otel_messaging_rdkafka::HeadersExtractor(headers)),
                    None => Context::new(),
                };
                // The same points as ours: a `poll` CLIENT span linking the record's context at
                // the receive, then a `process` CONSUMER span, child of that context.
                let message = consumer.recv().await.expect("message");
                let link = Link::with_context(extract(&message).span().span_context().clone());
                let poll = tracer.span_builder("poll").with_kind(SpanKind::Client).with_links(vec![link]);
                drop(poll.start(tracer));
                let parent = extract(&message);
                let span = tracer
                    .span_builder("process")
                    .with_kind(SpanKind::Consumer)
                    .start_with_context(tracer, &parent);
                std::hint::black_box(&message);
                drop(span);
            }
        }
    }
    start.elapsed().as_secs_f64()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Traced instrumentation on the benchmark providers (`bench_support::benchmark_telemetry`:
/// batch processor to a dropping exporter, metrics on, sampled at `ratio`).
fn traced(ratio: f64) -> (KafkaInstrumentation, SdkTracerProvider, SdkMeterProvider) {
    let (instrumenter, provider, meter) = benchmark_telemetry(ratio);
    (KafkaInstrumentation::new().with_instrumenter(instrumenter), provider, meter)
}

/// Creates a one-partition topic on a real broker.
async fn create_topic(bootstrap: &str, topic: &str) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", bootstrap).create().expect("admin client");
    let topics = [NewTopic::new(topic, 1, TopicReplication::Fixed(1))];
    admin.create_topics(&topics, &AdminOptions::new()).await.expect("create topics");
}

/// Alternates raw and traced runs on one broker; prints the median traced/raw ratios.
async fn compare(
    target: &str,
    bootstrap: &str,
    mock: Option<&MockCluster<'_, rdkafka::producer::DefaultProducerContext>>,
    n: usize,
    rounds: usize,
    ratio: f64,
) {
    let (tracing, provider, meter) = traced(ratio);
    // The same, metrics off: what the spans and propagation cost without the metrics.
    let tracing_without_metrics = KafkaInstrumentation::new().with_instrumenter(
        otel_messaging::MessagingInstrumenter::builder()
            .with_tracer_provider(&provider)
            .with_metrics(false)
            .with_propagator(bench_support::w3c_propagator())
            .build(),
    );
    let floor_tracer = {
        use opentelemetry::trace::TracerProvider as _;
        provider.tracer("floor")
    };
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let (mut produce_ratio, mut consume_ratio, mut header_ratio) = (Vec::new(), Vec::new(), Vec::new());
    let (mut floor_ratio, mut consume_floor_ratio) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let suffix = format!("{}-{round}-{}", (ratio * 100.0) as u32, std::process::id());
        let (raw_topic, traced_topic) = (format!("raw-{suffix}"), format!("traced-{suffix}"));
        let header_topic = format!("header-{suffix}");
        let floor_topic = format!("floor-{suffix}");
        for topic in [&raw_topic, &traced_topic, &header_topic, &floor_topic] {
            match mock {
                Some(mock) => mock.create_topic(topic, 1, 1).expect("topic"),
                None => create_topic(bootstrap, topic).await,
            }
        }
        if let Ok(only) = std::env::var("THROUGHPUT_CONSUMER") {
            // One consumer, once, of records the SDK floor's producer sent (a `traceparent` each,
            // sampled at the run's ratio; for `scripts/throughput_instructions.sh`).
            let how = match only.as_str() {
                "raw" => Consume::Raw,
                "floor" => Consume::Floor(&floor_tracer),
                "traced" => Consume::Traced(&tracing),
                "traced_nometrics" => Consume::Traced(&tracing_without_metrics),
                "traced_batch_nometrics" => Consume::TracedBatch(&tracing_without_metrics),
                other => panic!(
                    "THROUGHPUT_CONSUMER={other}: raw, floor, traced, traced_nometrics or traced_batch_nometrics"
                ),
            };
            produce(&producer, &raw_topic, n, How::Floor(&floor_tracer)).await;
            consume(bootstrap, &raw_topic, n, how).await;
            let _ = provider.shutdown();
            let _ = meter.shutdown();
            return;
        }
        if let Ok(only) = std::env::var("THROUGHPUT_PRODUCER") {
            // One producer, once (for `scripts/throughput_instructions.sh`).
            let how = match only.as_str() {
                "raw" => How::Raw,
                "header" => How::RawWithHeader,
                "floor" => How::Floor(&floor_tracer),
                "traced" => How::Traced(&tracing),
                "traced_nometrics" => How::Traced(&tracing_without_metrics),
                other => {
                    panic!("THROUGHPUT_PRODUCER={other}: raw, header, floor, traced or traced_nometrics")
                }
            };
            produce(&producer, &raw_topic, n, how).await;
            // Every span through the batch processor, every measurement collected: counted too.
            let _ = provider.shutdown();
            let _ = meter.shutdown();
            return;
        }
        // The four producers in turn, the order rotating by round: none always goes first.
        let mut seconds = [0.0; 4];
        for i in (0..4).map(|i| (i + round) % 4) {
            let (topic, how) = match i {
                0 => (&raw_topic, How::Raw),
                1 => (&traced_topic, How::Traced(&tracing)),
                2 => (&header_topic, How::RawWithHeader),
                _ => (&floor_topic, How::Floor(&floor_tracer)),
            };
            seconds[i] = produce(&producer, topic, n, how).await;
        }
        let [raw, traced, with_header, floor] = seconds;
        produce_ratio.push(raw / traced);
        floor_ratio.push(raw / floor);
        header_ratio.push(raw / with_header);
        if std::env::var("THROUGHPUT_ONLY").is_ok_and(|only| only == "produce") {
            println!(
                "{target} {:>3} % sampled, round {round}: produce raw {:.0}/s SDK floor {:.0}/s traced {:.0}/s",
                (ratio * 100.0) as u32,
                n as f64 / raw,
                n as f64 / floor,
                n as f64 / traced
            );
            continue;
        }
        let raw_c = consume(bootstrap, &raw_topic, n, Consume::Raw).await;
        let traced_c = consume(bootstrap, &traced_topic, n, Consume::Traced(&tracing)).await;
        let floor_c = consume(bootstrap, &floor_topic, n, Consume::Floor(&floor_tracer)).await;
        consume_ratio.push(raw_c / traced_c);
        consume_floor_ratio.push(raw_c / floor_c);
        println!(
            "{target} {:>3} % sampled, round {round}: produce raw {:.0}/s traced {:.0}/s; consume raw {:.0}/s traced {:.0}/s",
            (ratio * 100.0) as u32,
            n as f64 / raw,
            n as f64 / traced,
            n as f64 / raw_c,
            n as f64 / traced_c
        );
    }
    if consume_ratio.is_empty() {
        consume_ratio.push(f64::NAN);
        consume_floor_ratio.push(f64::NAN);
    }
    println!(
        "{target}, {n} messages of 256 B, {} % sampled, batch exporter, metrics on — traced/raw throughput: \
         produce {:.2}, consume {:.2} (a hand-written `traceparent` header alone: produce {:.2}; the SDK's own \
         span + header, no attributes: produce {:.2}, consume {:.2})",
        (ratio * 100.0) as u32,
        median(produce_ratio),
        median(consume_ratio),
        median(header_ratio),
        median(floor_ratio),
        median(consume_floor_ratio)
    );
    let _ = provider.shutdown();
    let _ = meter.shutdown();
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it: then a
    // 200-message smoke round only checks that both paths work.
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let one_producer =
        std::env::var("THROUGHPUT_PRODUCER").is_ok() || std::env::var("THROUGHPUT_CONSUMER").is_ok();
    let (n, rounds) = if benchmarking || one_producer { (messages(), ROUNDS) } else { (200, 1) };
    let mock = MockCluster::new(1).expect("mock cluster");
    let bootstrap = mock.bootstrap_servers();
    let first_ratio = match std::env::var("THROUGHPUT_SAMPLED") {
        Ok(ratio) if one_producer => ratio.parse().expect("THROUGHPUT_SAMPLED is a fraction, e.g. 0.1"),
        _ => 1.0,
    };
    compare("MockCluster", &bootstrap, Some(&mock), n, rounds, first_ratio).await;
    if !benchmarking || one_producer {
        return;
    }
    compare("MockCluster", &bootstrap, Some(&mock), n, rounds, 0.1).await;
    // A real broker (tansu from `just brokers-up`) when THROUGHPUT_KAFKA names it.
    if let Ok(kafka) = std::env::var("THROUGHPUT_KAFKA") {
        compare("Kafka", &kafka, None, n, rounds, 1.0).await;
        compare("Kafka", &kafka, None, n, rounds, 0.1).await;
    }
}
