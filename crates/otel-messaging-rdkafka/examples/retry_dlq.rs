//! Retry and dead-letter lineage: an order fails, is re-published to a retry topic, fails again,
//! is re-published to a dead-letter topic and handled there — one trace, each re-publish linking
//! the failed attempt and the original send (`otel_messaging::retry`).
//!
//! ```sh
//! cargo run -p otel-messaging-rdkafka --example retry_dlq    # in-process MockCluster
//! KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 cargo run -p otel-messaging-rdkafka --example retry_dlq
//! ```

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use opentelemetry::{
    Context, global,
    trace::{FutureExt as _, TraceContextExt as _, Tracer as _},
};
use otel_messaging::retry::Retry;
use otel_messaging_rdkafka::{
    FutureProducerExt as _, HeadersExtractor, HeadersInjector, MessageExt as _, StreamConsumerExt as _,
};
use rdkafka::{
    ClientConfig, Message as _, Offset, TopicPartitionList,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    consumer::{Consumer as _, StreamConsumer},
    message::OwnedHeaders,
    producer::{FutureProducer, FutureRecord},
};

const TIMEOUT: Duration = Duration::from_secs(10);

fn consumer(bootstrap: &str, topic: &str) -> anyhow::Result<StreamConsumer> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "order-workers")
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)?;
    consumer.assign(&tpl)?;
    Ok(consumer)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Telemetry: spans over OTLP/HTTP (`OTEL_EXPORTER_OTLP_ENDPOINT`, default
    // http://localhost:4318, e.g. the Jaeger of `docker compose up`). No propagator to install:
    // W3C Trace Context + Baggage is used while none is.
    let exporter = opentelemetry_otlp::SpanExporter::builder().with_http().build()?;
    let provider =
        opentelemetry_sdk::trace::SdkTracerProvider::builder().with_batch_exporter(exporter).build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    let mock = match std::env::var("KAFKA_BOOTSTRAP_SERVERS") {
        Ok(_) => None,
        Err(_) => Some(rdkafka::mocking::MockCluster::new(1)?),
    };
    let bootstrap = match &mock {
        Some(mock) => mock.bootstrap_servers(),
        None => std::env::var("KAFKA_BOOTSTRAP_SERVERS")?,
    };
    let suffix = std::process::id();
    let topics =
        [format!("orders-{suffix}"), format!("orders-retry-{suffix}"), format!("orders-dlq-{suffix}")];
    match &mock {
        Some(mock) => {
            for topic in &topics {
                mock.create_topic(topic, 1, 1)?;
            }
        }
        None => {
            let admin: AdminClient<_> = ClientConfig::new().set("bootstrap.servers", &bootstrap).create()?;
            let new: Vec<_> =
                topics.iter().map(|t| NewTopic::new(t, 1, TopicReplication::Fixed(1))).collect();
            for result in admin.create_topics(&new, &AdminOptions::new()).await? {
                result.map_err(|(topic, e)| anyhow::anyhow!("creating {topic}: {e}"))?;
            }
        }
    }
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &bootstrap).create()?;

    let request = Context::new().with_span(global::tracer("shop").start("POST /orders"));
    let record = FutureRecord::<(), _>::to(&topics[0]).payload("order 42");
    async { producer.send_traced(record, TIMEOUT).await }
        .with_context(request.clone())
        .await
        .map_err(|(e, _)| e)?;
    request.span().end();

    // Two failed attempts; each re-publishes from inside its handler to the next topic.
    for (from, to) in [(&topics[0], &topics[1]), (&topics[1], &topics[2])] {
        let consumer = consumer(&bootstrap, from)?;
        let message = consumer.recv_traced().await?;
        let result = message
            .process_traced(async {
                let failed = message.headers().expect("a traced message has headers");
                let retry = Retry::of(&HeadersExtractor(failed), &Context::current());
                let mut headers = OwnedHeaders::new();
                retry.inject(&mut HeadersInjector(&mut headers));
                let record = FutureRecord::<(), _>::to(to).payload("order 42").headers(headers);
                producer.send_traced(record, TIMEOUT).await.map_err(|(e, _)| e)?;
                Err::<(), anyhow::Error>(anyhow::anyhow!(
                    "payment service unavailable (attempt {})",
                    retry.attempt()
                ))
            })
            .await;
        println!("{from}: {}", result.unwrap_err());
    }
    let consumer = consumer(&bootstrap, &topics[2])?;
    let message = consumer.recv_traced().await?;
    message.process_traced(async { Ok::<_, anyhow::Error>(()) }).await?;
    println!("{}: parked for a human\n", topics[2]);

    provider.shutdown()?;
    Ok(())
}
