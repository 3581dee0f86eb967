//! End-to-end throughput on the real RabbitMQ, Redis, SQS (moto) and NATS JetStream brokers: raw and traced
//! producers and consumers alternate (3 rounds, median ratio; raw goes first in even rounds,
//! traced in odd ones), at 100 % (`AlwaysOn`) and 10 %
//! (`ParentBased(TraceIdRatioBased(0.1))`) sampling, spans through a batch processor to an exporter
//! that drops them, metrics on. Kafka has its own (`otel-messaging-rdkafka/benches/throughput.rs`,
//! which also runs on the in-process `MockCluster`). DESIGN.md target: ≥ 0.98 at 10 %.
//!
//! Everything runs on a current-thread tokio runtime: on 2 cores, cross-thread wake-ups of a
//! multi-thread runtime moved the rates more between rounds than tracing does.
//!
//! * RabbitMQ: `basic_publish` with publisher confirms (500 in flight) vs
//!   `basic_publish_traced`; `basic_consume` + ack vs `stream_traced` + `process` + ack.
//! * Redis: one `XADD` per message vs `xadd_traced`; `XREADGROUP` (500 per read) + `XACK` vs
//!   `xread_options_traced` + `process` + `XACK`.
//! * SQS: `SendMessageBatch` of 10 vs `send_traced`; `ReceiveMessage` of 10 + `DeleteMessageBatch`
//!   vs `send_traced` + `process` + `DeleteMessageBatch`.
//! * NATS JetStream: `publish` with its PubAck (500 in flight) vs `publish_traced`; a pull
//!   consumer's `fetch` of 500 + `ack` vs `fetch_traced` + `process_traced` + `ack`.
//!
//! ```sh
//! just brokers-up
//! cargo bench -p integration-tests --bench throughput        # 5 000 messages (SQS: 500) per run
//! THROUGHPUT_MESSAGES=20000 cargo bench -p integration-tests --bench throughput
//! THROUGHPUT_BROKERS=redis THROUGHPUT_ROUNDS=9 cargo bench -p integration-tests --bench throughput
//! THROUGHPUT_BROKERS=redis THROUGHPUT_MODE=traced THROUGHPUT_SAMPLED=0.1 …   # one side, one ratio, for a profiler
//! ```
//!
//! Each round also prints the CPU time this process spent per message (all its threads), raw and
//! traced, and the summary the median CPU tracing added per message: where a broker round trip
//! sets the rate, that is what tracing costs.
//!
//! Under `cargo test` (no `--bench` argument) it runs one 50-message round per broker, to check
//! that every path works.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic, missing_docs)]

use std::time::Instant;

use bench_support::benchmark_telemetry;
use futures_util::{StreamExt as _, stream::FuturesUnordered};
use integration_tests::{amqp_url, nats_url, process_cpu_seconds, redis_url, sqs_endpoint, unique_name};
use otel_messaging::MessagingInstrumenter;

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// What one run took: wall-clock seconds, and CPU seconds of this process (all threads: the
/// runtime's, the batch processor's).
#[derive(Clone, Copy)]
struct Took {
    wall: f64,
    cpu: f64,
}

async fn timed(f: impl Future<Output = ()>) -> Took {
    let (start, cpu) = (Instant::now(), process_cpu_seconds());
    f.await;
    let cpu = match (cpu, process_cpu_seconds()) {
        (Some(before), Some(after)) => after - before,
        _ => f64::NAN,
    };
    Took { wall: start.elapsed().as_secs_f64(), cpu }
}

/// One broker's produce and consume, raw (`traced == None`) or traced, on a fresh destination.
trait Broker {
    const NAME: &'static str;
    async fn produce(&self, destination: &str, n: usize, traced: Option<&MessagingInstrumenter>);
    async fn consume(&self, destination: &str, n: usize, traced: Option<&MessagingInstrumenter>);
    async fn destination(&self) -> String;
}

/// Alternates raw and traced runs; prints the median traced/raw ratios.
async fn compare<B: Broker>(broker: &B, n: usize, rounds: usize, ratio: f64) {
    let (instrumenter, provider, meter) = benchmark_telemetry(ratio);
    let (mut produce, mut consume) = (Vec::new(), Vec::new());
    // CPU microseconds per message added by tracing (traced − raw), produce and consume.
    let (mut produce_cpu, mut consume_cpu) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let (raw_dest, traced_dest) = (broker.destination().await, broker.destination().await);
        if let Ok(only) = std::env::var("THROUGHPUT_MODE") {
            // One side only, for a profiler: produce then consume, nothing compared.
            let traced = match only.as_str() {
                "raw" => None,
                "traced" => Some(&instrumenter),
                other => panic!("THROUGHPUT_MODE={other}: raw or traced"),
            };
            let p = timed(broker.produce(&raw_dest, n, traced)).await;
            let c = timed(broker.consume(&raw_dest, n, traced)).await;
            println!(
                "{} {only}: produce {:.0}/s, consume {:.0}/s",
                B::NAME,
                n as f64 / p.wall,
                n as f64 / c.wall
            );
            continue;
        }
        // Raw first in even rounds, traced first in odd ones: neither gains from going first.
        let (raw_p, traced_p, raw_c, traced_c);
        if round % 2 == 0 {
            raw_p = timed(broker.produce(&raw_dest, n, None)).await;
            traced_p = timed(broker.produce(&traced_dest, n, Some(&instrumenter))).await;
            raw_c = timed(broker.consume(&raw_dest, n, None)).await;
            traced_c = timed(broker.consume(&traced_dest, n, Some(&instrumenter))).await;
        } else {
            traced_p = timed(broker.produce(&traced_dest, n, Some(&instrumenter))).await;
            raw_p = timed(broker.produce(&raw_dest, n, None)).await;
            traced_c = timed(broker.consume(&traced_dest, n, Some(&instrumenter))).await;
            raw_c = timed(broker.consume(&raw_dest, n, None)).await;
        }
        produce.push(raw_p.wall / traced_p.wall);
        consume.push(raw_c.wall / traced_c.wall);
        let micros = |t: Took| t.cpu * 1e6 / n as f64;
        produce_cpu.push(micros(traced_p) - micros(raw_p));
        consume_cpu.push(micros(traced_c) - micros(raw_c));
        let rate = |t: Took| n as f64 / t.wall;
        println!(
            "{} {:>3} % sampled, round {round}: produce raw {:.0}/s traced {:.0}/s; consume raw {:.0}/s traced {:.0}/s; \
             CPU per message: produce raw {:.1} µs traced {:.1} µs, consume raw {:.1} µs traced {:.1} µs",
            B::NAME,
            (ratio * 100.0) as u32,
            rate(raw_p),
            rate(traced_p),
            rate(raw_c),
            rate(traced_c),
            micros(raw_p),
            micros(traced_p),
            micros(raw_c),
            micros(traced_c)
        );
    }
    if !produce.is_empty() {
        println!(
            "{}, {n} messages, {} % sampled, batch exporter, metrics on — traced/raw throughput: produce {:.2}, consume {:.2}; \
             CPU added per message: produce {:+.1} µs, consume {:+.1} µs",
            B::NAME,
            (ratio * 100.0) as u32,
            median(produce),
            median(consume),
            median(produce_cpu),
            median(consume_cpu)
        );
    }
    let _ = provider.shutdown();
    let _ = meter.shutdown();
}

struct RabbitMq {
    channel: lapin::Channel,
}

impl Broker for RabbitMq {
    const NAME: &'static str = "RabbitMQ";

    async fn destination(&self) -> String {
        use lapin::{options::QueueDeclareOptions, types::FieldTable};
        let q = unique_name("throughput");
        self.channel
            .queue_declare(q.as_str().into(), QueueDeclareOptions::default(), FieldTable::default())
            .await
            .expect("queue");
        q
    }

    async fn produce(&self, q: &str, n: usize, traced: Option<&MessagingInstrumenter>) {
        use lapin::{BasicProperties, options::BasicPublishOptions};
        use otel_messaging_lapin::{AmqpInstrumentation, ChannelExt as _};
        let tr = traced.map(|i| AmqpInstrumentation::from_uri(&amqp_url()).with_instrumenter(i.clone()));
        let payload = [b'x'; 256];
        let mut confirms = FuturesUnordered::new();
        for _ in 0..n {
            let (exchange, key, options, props) =
                ("".into(), q.into(), BasicPublishOptions::default(), BasicProperties::default());
            let confirm = match &tr {
                Some(tr) => futures_util::future::Either::Left(
                    self.channel
                        .basic_publish_traced_with(tr, exchange, key, options, &payload, props)
                        .await
                        .expect("publish"),
                ),
                None => futures_util::future::Either::Right(
                    self.channel
                        .basic_publish(exchange, key, options, &payload, props)
                        .await
                        .expect("publish"),
                ),
            };
            confirms.push(confirm);
            if confirms.len() >= 500 {
                confirms.next().await.expect("a confirm").expect("confirmed");
            }
        }
        while let Some(confirm) = confirms.next().await {
            confirm.expect("confirmed");
        }
    }

    async fn consume(&self, q: &str, n: usize, traced: Option<&MessagingInstrumenter>) {
        use lapin::{
            options::{BasicAckOptions, BasicConsumeOptions, QueueDeleteOptions},
            types::FieldTable,
        };
        use otel_messaging_lapin::{AmqpInstrumentation, ConsumerExt as _};
        let consumer = self
            .channel
            .basic_consume(
                q.into(),
                "throughput".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("consume");
        match traced {
            Some(i) => {
                let tr = AmqpInstrumentation::from_uri(&amqp_url()).with_instrumenter(i.clone());
                let stream = consumer.stream_traced_with(&tr);
                futures_util::pin_mut!(stream);
                for _ in 0..n {
                    let delivery = stream.next().await.expect("open").expect("delivery");
                    let (delivery, result) = delivery.process(async |_| Ok::<_, lapin::Error>(())).await;
                    result.expect("handler");
                    delivery.acker.ack(BasicAckOptions::default()).await.expect("ack");
                }
            }
            None => {
                let mut consumer = consumer;
                for _ in 0..n {
                    let delivery = consumer.next().await.expect("open").expect("delivery");
                    std::hint::black_box(&delivery.data);
                    delivery.acker.ack(BasicAckOptions::default()).await.expect("ack");
                }
            }
        }
        self.channel.queue_delete(q.into(), QueueDeleteOptions::default()).await.expect("cleanup");
    }
}

struct Redis {
    client: redis::Client,
}

impl Broker for Redis {
    const NAME: &'static str = "Redis";

    async fn destination(&self) -> String {
        use redis::AsyncCommands as _;
        let stream = unique_name("throughput");
        let mut conn = self.client.get_multiplexed_async_connection().await.expect("connect");
        let () = conn.xgroup_create_mkstream(&stream, "g", "$").await.expect("group");
        stream
    }

    async fn produce(&self, stream: &str, n: usize, traced: Option<&MessagingInstrumenter>) {
        use otel_messaging_redis::{RedisInstrumentation, StreamsExt as _};
        use redis::AsyncCommands as _;
        let mut conn = self.client.get_multiplexed_async_connection().await.expect("connect");
        let tr = traced.map(|i| RedisInstrumentation::from_client(&self.client).with_instrumenter(i.clone()));
        let payload = "x".repeat(256);
        let fields = [("payload", payload.as_str())];
        for _ in 0..n {
            let _: String = match &tr {
                Some(tr) => conn.xadd_traced_with(tr, stream, "*", &fields).await,
                None => conn.xadd(stream, "*", &fields).await,
            }
            .expect("xadd");
        }
    }

    async fn consume(&self, stream: &str, n: usize, traced: Option<&MessagingInstrumenter>) {
        use otel_messaging_redis::{RedisInstrumentation, StreamEntryExt as _, StreamsConsumerExt as _};
        use redis::{AsyncCommands as _, streams::StreamReadOptions};
        let mut conn = self.client.get_multiplexed_async_connection().await.expect("connect");
        let tr = traced.map(|i| RedisInstrumentation::from_client(&self.client).with_instrumenter(i.clone()));
        let opts = StreamReadOptions::default().group("g", "c").count(500);
        let mut consumed = 0;
        while consumed < n {
            let reply: redis::streams::StreamReadReply = match &tr {
                Some(tr) => conn.xread_options_traced_with(tr, &[stream], &[">"], &opts).await,
                None => conn.xread_options(&[stream], &[">"], &opts).await,
            }
            .expect("read");
            for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
                let id = match &tr {
                    Some(tr) => {
                        let (entry, result) = entry
                            .start_process_with(tr)
                            .process(async |_| Ok::<_, redis::RedisError>(()))
                            .await;
                        result.expect("handler");
                        entry.id
                    }
                    None => std::hint::black_box(entry).id,
                };
                let _: usize = conn.xack(stream, "g", &[&id]).await.expect("ack");
                consumed += 1;
            }
        }
        let _: usize = conn.del(stream).await.expect("cleanup");
    }
}

struct Sqs {
    client: aws_sdk_sqs::Client,
}

impl Broker for Sqs {
    const NAME: &'static str = "SQS (moto)";

    async fn destination(&self) -> String {
        let created = self.client.create_queue().queue_name(unique_name("throughput")).send().await;
        created.expect("queue").queue_url.expect("queue url")
    }

    async fn produce(&self, url: &str, n: usize, traced: Option<&MessagingInstrumenter>) {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
        use otel_messaging_aws_sqs::{SendMessageBatchFluentBuilderExt as _, SqsInstrumentation};
        let tr = traced.map(|i| SqsInstrumentation::default().with_instrumenter(i.clone()));
        let body = "x".repeat(256);
        for chunk in (0..n).collect::<Vec<_>>().chunks(10) {
            let entries = chunk
                .iter()
                .map(|i| {
                    SendMessageBatchRequestEntry::builder().id(format!("e{i}")).message_body(&body).build()
                })
                .collect::<Result<Vec<_>, _>>()
                .expect("entries");
            let batch = self.client.send_message_batch().queue_url(url).set_entries(Some(entries));
            let out = match &tr {
                Some(tr) => batch.send_traced_with(tr).await,
                None => batch.send().await,
            }
            .expect("batch");
            assert!(out.failed.is_empty(), "{:?}", out.failed);
        }
    }

    async fn consume(&self, url: &str, n: usize, traced: Option<&MessagingInstrumenter>) {
        use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
        use otel_messaging_aws_sqs::{
            MessageExt as _, ReceiveMessageFluentBuilderExt as _, SqsInstrumentation,
        };
        let tr = traced.map(|i| SqsInstrumentation::default().with_instrumenter(i.clone()));
        let mut consumed = 0;
        while consumed < n {
            let receive = self
                .client
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .message_attribute_names("All");
            let out = match &tr {
                Some(tr) => receive.send_traced_with(tr).await,
                None => receive.send().await,
            }
            .expect("receive");
            let mut delete = Vec::new();
            for message in out.messages.unwrap_or_default() {
                let message = match &tr {
                    Some(tr) => {
                        let (message, result) = message
                            .start_process_with(tr)
                            .process(async |_| Ok::<_, std::io::Error>(()))
                            .await;
                        result.expect("handler");
                        message
                    }
                    None => std::hint::black_box(message),
                };
                let entry = DeleteMessageBatchRequestEntry::builder()
                    .id(format!("d{}", delete.len()))
                    .receipt_handle(message.receipt_handle.expect("receipt handle"));
                delete.push(entry.build().expect("entry"));
            }
            consumed += delete.len();
            if !delete.is_empty() {
                let deleted = self.client.delete_message_batch().queue_url(url).set_entries(Some(delete));
                deleted.send().await.expect("delete");
            }
        }
        self.client.delete_queue().queue_url(url).send().await.expect("cleanup");
    }
}

struct Nats {
    js: async_nats::jetstream::Context,
}

impl Broker for Nats {
    const NAME: &'static str = "NATS JetStream";

    /// A fresh stream whose one subject is its own name.
    async fn destination(&self) -> String {
        let name = unique_name("throughput").replace(['-', '.'], "_");
        let config = async_nats::jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![name.clone()],
            ..Default::default()
        };
        self.js.create_stream(config).await.expect("stream (nats-server with JetStream: `-js`)");
        name
    }

    async fn produce(&self, subject: &str, n: usize, traced: Option<&MessagingInstrumenter>) {
        use otel_messaging_async_nats::{JetStreamExt as _, NatsInstrumentation};
        let tr = traced.map(|i| NatsInstrumentation::from_url(&nats_url()).with_instrumenter(i.clone()));
        let payload = bytes::Bytes::from(vec![b'x'; 256]);
        let mut acks = FuturesUnordered::new();
        for _ in 0..n {
            let subject = subject.to_owned();
            let ack = match &tr {
                Some(tr) => futures_util::future::Either::Left(
                    self.js
                        .publish_traced_with(tr, subject, payload.clone())
                        .await
                        .expect("publish")
                        .into_future(),
                ),
                None => futures_util::future::Either::Right(
                    self.js.publish(subject, payload.clone()).await.expect("publish").into_future(),
                ),
            };
            acks.push(ack);
            if acks.len() >= 500 {
                acks.next().await.expect("an ack").expect("acknowledged");
            }
        }
        while let Some(ack) = acks.next().await {
            ack.expect("acknowledged");
        }
    }

    async fn consume(&self, stream: &str, n: usize, traced: Option<&MessagingInstrumenter>) {
        use otel_messaging_async_nats::{MessageExt as _, NatsInstrumentation, PullConsumerExt as _};
        let config = async_nats::jetstream::consumer::pull::Config {
            durable_name: Some("workers".into()),
            ..Default::default()
        };
        let consumer = self.js.create_consumer_on_stream(config, stream).await.expect("consumer");
        let tr = traced.map(|i| NatsInstrumentation::from_url(&nats_url()).with_instrumenter(i.clone()));
        let mut consumed = 0;
        let mut batch = Vec::with_capacity(500);
        while consumed < n {
            match &tr {
                Some(tr) => {
                    consumer.fetch_traced_with(tr, &mut batch, 500).await.expect("fetch");
                    for message in batch.drain(..) {
                        message
                            .process_traced_with(tr, async { Ok::<_, std::io::Error>(()) })
                            .await
                            .expect("handler");
                        message.ack().await.expect("ack");
                        consumed += 1;
                    }
                }
                None => {
                    let mut messages = consumer.fetch().max_messages(500).messages().await.expect("fetch");
                    while let Some(message) = messages.next().await {
                        let message = message.expect("message");
                        std::hint::black_box(&message.payload);
                        message.ack().await.expect("ack");
                        consumed += 1;
                    }
                }
            }
        }
        self.js.delete_stream(stream).await.expect("cleanup");
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let benchmarking = std::env::args().any(|a| a == "--bench");
    let n: usize = std::env::var("THROUGHPUT_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(5_000);
    let rounds: usize = std::env::var("THROUGHPUT_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    // THROUGHPUT_SAMPLED=0.1 runs only that sampling ratio (100 % and 10 % by default).
    let sampled: Option<f64> = std::env::var("THROUGHPUT_SAMPLED").ok().and_then(|v| v.parse().ok());
    let (n, sqs_n, rounds, ratios) = if benchmarking {
        (n, n / 10, rounds, sampled.map_or(vec![1.0, 0.1], |r| vec![r]))
    } else {
        (50, 50, 1, vec![1.0])
    };
    // THROUGHPUT_BROKERS=redis,sqs runs only those (all by default).
    let only = std::env::var("THROUGHPUT_BROKERS").unwrap_or_default().to_lowercase();
    let runs =
        |name: &str| only.is_empty() || only.split(',').any(|b| name.to_lowercase().starts_with(b.trim()));

    let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
        .await
        .expect("connect");
    let channel = conn.create_channel().await.expect("channel");
    channel.confirm_select(lapin::options::ConfirmSelectOptions::default()).await.expect("confirms");
    let rabbitmq = RabbitMq { channel };
    let redis = Redis { client: redis::Client::open(redis_url()).expect("client") };
    let sqs = Sqs { client: integration_tests::sqs_client(&sqs_endpoint(), 3).await };
    let nats =
        Nats { js: async_nats::jetstream::new(async_nats::connect(nats_url()).await.expect("connect")) };
    for &ratio in &ratios {
        if runs(RabbitMq::NAME) {
            compare(&rabbitmq, n, rounds, ratio).await;
        }
        if runs(Redis::NAME) {
            compare(&redis, n, rounds, ratio).await;
        }
        if runs(Sqs::NAME) {
            compare(&sqs, sqs_n, rounds, ratio).await;
        }
        if runs(Nats::NAME) {
            compare(&nats, n, rounds, ratio).await;
        }
    }
}
