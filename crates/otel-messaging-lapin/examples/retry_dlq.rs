//! Retry and dead-letter lineage: a job fails, is re-published to a retry queue, fails again, is
//! re-published to a dead-letter queue and handled there — one trace, each re-publish linking the
//! failed attempt and the original publish (`otel_messaging::retry`). For RabbitMQ's own
//! dead-lettering (reject → dead-letter exchange) nothing is needed: the headers travel with the
//! message and the process span gets the `x-death` facts.
//!
//! ```sh
//! just brokers-up    # or any RabbitMQ at AMQP_URL (default amqp://guest:guest@127.0.0.1:5672/%2f)
//! cargo run -p otel-messaging-lapin --example retry_dlq-rabbitmq
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use futures_util::StreamExt as _;
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
    },
    types::FieldTable,
};
use opentelemetry::{
    Context, global,
    trace::{FutureExt as _, TraceContextExt as _, Tracer as _},
};
use otel_messaging::retry::Retry;
use otel_messaging_lapin::{ChannelExt as _, ConsumerExt as _, FieldTableExtractor, FieldTableInjector};

async fn publish(channel: &Channel, queue: &str, properties: BasicProperties) -> anyhow::Result<()> {
    let confirm = channel
        .basic_publish_traced("".into(), queue.into(), BasicPublishOptions::default(), b"job 42", properties)
        .await?;
    confirm.await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    // Telemetry: spans over OTLP/HTTP (`OTEL_EXPORTER_OTLP_ENDPOINT`, default
    // http://localhost:4318, e.g. the Jaeger of `docker compose up`). No propagator to install:
    // W3C Trace Context + Baggage is used while none is.
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let provider =
        opentelemetry_sdk::trace::SdkTracerProvider::builder().with_batch_exporter(exporter).build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    let connection = Connection::connect(&url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    let suffix = std::process::id();
    let queues = [format!("jobs-{suffix}"), format!("jobs-retry-{suffix}"), format!("jobs-dlq-{suffix}")];
    for queue in &queues {
        let options = QueueDeclareOptions { auto_delete: true, ..Default::default() };
        channel.queue_declare(queue.as_str().into(), options, FieldTable::default()).await?;
    }

    let request = Context::new().with_span(global::tracer("shop").start("POST /jobs"));
    publish(&channel, &queues[0], BasicProperties::default()).with_context(request.clone()).await?;
    request.span().end();

    for (from, to) in [(&queues[0], &queues[1]), (&queues[1], &queues[2]), (&queues[2], &queues[2])] {
        let consumer = channel
            .basic_consume(
                from.as_str().into(),
                format!("worker-{from}").as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?
            .stream_traced();
        futures_util::pin_mut!(consumer);
        let delivery = consumer.next().await.expect("consumer open")?;
        let dead_letter = from == to;
        let (delivery, result) = delivery
            .process(async |d| {
                if dead_letter {
                    return Ok(());
                }
                // Failed: re-publish to the next queue with the lineage, from inside the handler.
                let empty = FieldTable::default();
                let failed = d.properties.headers().as_ref().unwrap_or(&empty);
                let retry = Retry::of(&FieldTableExtractor(failed), &Context::current());
                let mut headers = FieldTable::default();
                retry.inject(&mut FieldTableInjector(&mut headers));
                publish(&channel, to, BasicProperties::default().with_headers(headers)).await?;
                Err(anyhow::anyhow!("payment service unavailable (attempt {})", retry.attempt()))
            })
            .await;
        delivery.acker.ack(BasicAckOptions::default()).await?;
        match result {
            Ok(()) => println!("{from}: parked for a human\n"),
            Err(e) => println!("{from}: {e}"),
        }
    }
    provider.shutdown()?;
    Ok(())
}
