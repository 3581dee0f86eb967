//! The job-worker pattern with `tracing` on RabbitMQ: an axum endpoint publishes a job, a worker
//! consumes and runs it, everything instrumented with `tracing` + tracing-opentelemetry — ONE
//! trace: request → publish → queue wait → process → the worker's own spans (across
//! `tokio::spawn`) → the ack.
//!
//! ```sh
//! just brokers-up    # or any RabbitMQ at AMQP_URL
//! cargo run -p otel-messaging-lapin --example job_worker-rabbitmq
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::{sync::Arc, time::Duration};

use anyhow::Context as _;
use axum::{Router, extract::State, routing::post};
use futures_util::StreamExt as _;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
    },
    types::FieldTable,
};
use opentelemetry::trace::TracerProvider as _;
use otel_messaging_lapin::{AmqpInstrumentation, ChannelExt as _, ConsumerExt as _, DeliveryExt as _};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;

const QUEUE: &str = "example.jobs";

struct App {
    channel: Channel,
    tracing: AmqpInstrumentation,
}

/// The HTTP handler: a SERVER span that publishes a job; the traced publish takes its parent from
/// this `tracing` span and ends at the broker's confirm.
#[tracing::instrument(name = "POST /jobs", skip_all, fields(otel.kind = "server"))]
async fn enqueue(State(app): State<Arc<App>>) -> &'static str {
    let publish = app
        .channel
        .basic_publish_traced_with(
            &app.tracing,
            "".into(),
            QUEUE.into(),
            BasicPublishOptions::default(),
            b"resize 42",
            BasicProperties::default(),
        )
        .await;
    let confirmed = match publish {
        Ok(confirm) => confirm.await.is_ok(),
        Err(_) => false,
    };
    if confirmed { "queued\n" } else { "failed\n" }
}

#[tracing::instrument(skip(job))]
async fn resize(job: Vec<u8>) {
    tokio::time::sleep(Duration::from_millis(10)).await;
    tokio::spawn(
        async move { tracing::info_span!("upload thumbnail", bytes = job.len()).in_scope(|| ()) }
            .in_current_span(),
    )
    .await
    .expect("join");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let telemetry = otel_messaging::testing::DemoTelemetry::install();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(telemetry.provider.tracer("job-worker")));
    tracing::subscriber::set_global_default(subscriber)?;

    let url = std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    let connection = Connection::connect(&url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    channel
        .queue_declare(
            QUEUE.into(),
            QueueDeclareOptions { auto_delete: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?;
    let tracing = AmqpInstrumentation::from_uri(&url);

    // The worker.
    let worker_channel = connection.create_channel().await?;
    let mut jobs = worker_channel
        .basic_consume(
            QUEUE.into(),
            "job-worker".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?
        .stream_traced_with(&tracing);
    let worker_tracing = tracing.clone();
    let worker = tokio::spawn(async move {
        let job = jobs.next().await.context("consumer closed")??;
        let (_job, result) = job
            .process(async |d| {
                resize(d.data.clone()).await;
                d.ack_traced_with(&worker_tracing, BasicAckOptions::default()).await
            })
            .await;
        anyhow::Ok(result?)
    });

    // The HTTP API, and one request to it.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let app = Arc::new(App { channel, tracing });
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
