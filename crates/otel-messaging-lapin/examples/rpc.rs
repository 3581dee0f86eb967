//! Request/reply (RPC) over RabbitMQ with `reply_to` + `correlation_id`: the reply is traced
//! back into the caller's trace — caller → publish request → process request → publish reply →
//! process reply, one trace.
//!
//! ```sh
//! just brokers-up
//! cargo run -p otel-messaging-lapin --example rpc
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use lapin::{
    BasicProperties, Connection, ConnectionProperties,
    options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions},
    types::FieldTable,
};
use opentelemetry::{
    global,
    trace::{FutureExt as _, SpanKind, TraceContextExt, Tracer as _},
};
use otel_messaging_lapin::{AmqpInstrumentation, ChannelExt as _, ConsumerExt as _};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("AMQP_URL").unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into());
    // A global tracer provider (spans kept in memory) and the W3C propagator: install a propagator,
    // the opentelemetry-rust default one is a no-op.
    let telemetry = otel_messaging::testing::DemoTelemetry::install();
    let tracing = AmqpInstrumentation::from_uri(&url);

    let connection = Connection::connect(&url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let exclusive = QueueDeclareOptions { exclusive: true, auto_delete: true, ..Default::default() };
    let requests = channel
        .queue_declare(
            "rpc.prices".into(),
            QueueDeclareOptions { auto_delete: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?;
    // A server-named reply queue (amq.gen-…): anonymous, so it never enters span names.
    let replies = channel.queue_declare("".into(), exclusive, FieldTable::default()).await?;

    // The server: answers each request on its reply_to queue, inside the request's process span.
    let server_channel = connection.create_channel().await?;
    let mut server = server_channel
        .basic_consume(
            requests.name().clone(),
            "price-server".into(),
            BasicConsumeOptions { no_ack: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?
        .stream_traced_with(&tracing);
    let server_tracing = tracing.clone();
    tokio::spawn(async move {
        while let Some(Ok(request)) = server.next().await {
            let _ = request
                .process(async |d| {
                    let reply_to = d.properties.reply_to().clone().unwrap_or_default();
                    let correlation = d.properties.correlation_id().clone().unwrap_or_default();
                    let (channel, tracing) = (&server_channel, &server_tracing);
                    {
                        let props = BasicProperties::default().with_correlation_id(correlation);
                        channel
                            .basic_publish_traced_with(
                                tracing,
                                "".into(),
                                reply_to,
                                BasicPublishOptions::default(),
                                b"19.99",
                                props,
                            )
                            .await?
                            .await?;
                        Ok::<_, lapin::Error>(())
                    }
                })
                .await;
        }
    });

    // The caller: a span around the whole call; the reply is processed inside it.
    let mut reply_stream = channel
        .basic_consume(
            replies.name().clone(),
            "caller".into(),
            BasicConsumeOptions { no_ack: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?
        .stream_traced_with(&tracing);
    let tracer = global::tracer("caller");
    let call = opentelemetry::Context::current_with_span(
        tracer.span_builder("GET /price").with_kind(SpanKind::Server).start(&tracer),
    );
    let price = async {
        let props = BasicProperties::default()
            .with_reply_to(replies.name().clone())
            .with_correlation_id("req-1".into());
        channel
            .basic_publish_traced_with(
                &tracing,
                "".into(),
                requests.name().clone(),
                BasicPublishOptions::default(),
                b"sku-42",
                props,
            )
            .await?
            .await?;
        let reply = tokio::time::timeout(Duration::from_secs(10), reply_stream.next())
            .await
            .context("no reply")?
            .context("closed")??;
        let (reply, _) = reply.process(async |_| Ok::<_, lapin::Error>(())).await;
        anyhow::Ok(String::from_utf8_lossy(&reply.data).into_owned())
    }
    .with_context(call.clone())
    .await?;
    call.span().end();
    println!("price: {price}");

    let finished = telemetry.spans();
    print!("{}", telemetry.waterfall());
    let traces: std::collections::HashSet<_> = finished.iter().map(|s| s.span_context.trace_id()).collect();
    telemetry.shutdown()?;
    anyhow::ensure!(traces.len() == 1, "expected one trace, got {}", traces.len());
    Ok(())
}
