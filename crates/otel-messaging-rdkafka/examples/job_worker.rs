//! The job-worker pattern with `tracing`: an axum endpoint enqueues a job on Kafka, a worker runs
//! it, everything instrumented with `tracing` + tracing-opentelemetry — and the result is ONE trace:
//! request → send → queue wait → process → the worker's own spans (across `tokio::spawn`).
//!
//! ```sh
//! cargo run -p otel-messaging-rdkafka --example job_worker    # in-process MockCluster, no broker
//! ```
//!
//! The classic failure this avoids (apalis #664): a worker whose spans start a fresh trace because
//! `Span::current()` at execution time knows nothing of the enqueue.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use axum::{Router, extract::State, routing::post};
use opentelemetry::trace::TracerProvider as _;
use otel_messaging_rdkafka::{FutureProducerExt as _, KafkaInstrumentation, MessageExt as _};
use rdkafka::{
    ClientConfig, Message as _, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    mocking::MockCluster,
    producer::{FutureProducer, FutureRecord},
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;

const TOPIC: &str = "jobs";

struct App {
    producer: FutureProducer,
    tracing: KafkaInstrumentation,
}

/// The HTTP handler: a SERVER span (via `otel.kind`) that enqueues a job. The traced send takes its
/// parent from this `tracing` span.
#[tracing::instrument(name = "POST /jobs", skip_all, fields(otel.kind = "server"))]
async fn enqueue(State(app): State<Arc<App>>) -> &'static str {
    let record = FutureRecord::<(), _>::to(TOPIC).payload("resize image 42");
    match app.producer.send_traced_with(&app.tracing, record, Duration::from_secs(5)).await {
        Ok(_) => "queued\n",
        Err(_) => "failed\n",
    }
}

/// The job itself, instrumented like any `tracing` code: it nests under the process span.
#[tracing::instrument]
async fn resize(job: String) {
    tokio::time::sleep(Duration::from_millis(10)).await;
    // Work moved to another task keeps its parent with `.in_current_span()`.
    tokio::spawn(async { tracing::info_span!("upload thumbnail").in_scope(|| ()) }.in_current_span())
        .await
        .expect("join");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // OpenTelemetry: a global provider (spans kept in memory) and the W3C propagator; tracing: a
    // subscriber whose tracing-opentelemetry layer writes to the same provider.
    let telemetry = otel_messaging::testing::DemoTelemetry::install();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(telemetry.provider.tracer("job-worker")));
    tracing::subscriber::set_global_default(subscriber)?;

    let mock = MockCluster::new(1)?;
    mock.create_topic(TOPIC, 1, 1)?;
    let bootstrap = mock.bootstrap_servers();
    let mut producer_config = ClientConfig::new();
    producer_config.set("bootstrap.servers", &bootstrap).set("client.id", "job-api");
    let app = Arc::new(App {
        producer: producer_config.create()?,
        tracing: KafkaInstrumentation::from_config(&producer_config),
    });

    // The worker: reads the jobs topic from the start and runs each job in a process span.
    let mut worker_config = ClientConfig::new();
    worker_config
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", "job-workers")
        .set("enable.auto.commit", "false");
    let consumer: StreamConsumer = worker_config.create()?;
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(TOPIC, 0, Offset::Beginning)?;
    consumer.assign(&assignment)?;
    let worker_tracing = KafkaInstrumentation::from_config(&worker_config);
    let worker = tokio::spawn(async move {
        let message = consumer.recv().await.expect("a job");
        let job = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
        message
            .process_traced_with(&worker_tracing, async {
                resize(job).await;
                anyhow::Ok(())
            })
            .await
    });

    // The HTTP API, and one request to it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(
        axum::serve(listener, Router::new().route("/jobs", post(enqueue)).with_state(app)).into_future(),
    );
    let mut stream = tokio::net::TcpStream::connect(address).await?;
    stream
        .write_all(
            b"POST /jobs HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    println!("{}", response.lines().last().unwrap_or_default());

    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .context("the job did not run in 10 s")???;
    let spans = telemetry.spans();
    print!("{}", telemetry.waterfall());
    let traces: std::collections::HashSet<_> = spans.iter().map(|s| s.span_context.trace_id()).collect();
    telemetry.shutdown()?;
    anyhow::ensure!(traces.len() == 1, "expected one trace, got {}", traces.len());
    Ok(())
}
