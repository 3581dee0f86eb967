//! librdkafka statistics as metrics (`otel_messaging_rdkafka::statistics`), on the in-process
//! `MockCluster` and on tansu: consumer lag goes up while a consumer is paused and producers go
//! on, and back to 0 when it catches up; the producer's messages and bytes are counted; brokers
//! report a round trip time.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::{Duration, Instant};

use integration_tests::{create_topic, kafka_bootstrap, unique_name};
use otel_messaging::testing::TestTelemetry;
use otel_messaging_rdkafka::{KafkaStatistics, StatisticsContext};
use rdkafka::{
    ClientConfig, Message as _, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer as _, DefaultConsumerContext},
    producer::{BaseRecord, DefaultProducerContext, Producer as _, ThreadedProducer},
};

const TIMEOUT: Duration = Duration::from_secs(30);

/// The last value of gauge/counter `name` for `topic` (any attributes when `topic` is `None`).
fn value(t: &TestTelemetry, name: &str, topic: Option<&str>) -> Option<f64> {
    let points = t.metrics();
    let mut matching = points.iter().filter(|p| p.name == name).filter(|p| {
        topic.is_none_or(|topic| {
            p.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "messaging.destination.name" && kv.value.as_str() == topic)
        })
    });
    matching.next().map(|p| p.sum)
}

fn produce(producer: &ThreadedProducer<StatisticsContext<DefaultProducerContext>>, topic: &str, n: usize) {
    for i in 0..n {
        let key = i.to_string();
        producer
            .send(BaseRecord::to(topic).key(&key).payload("x").partition(0))
            .map_err(|(e, _)| e)
            .expect("send");
    }
    producer.flush(TIMEOUT).expect("flushed");
}

type StatsConsumer = BaseConsumer<StatisticsContext<DefaultConsumerContext>>;

/// Polls `consumer` (which also serves its statistics callbacks) until it has received `receive`
/// messages and `done` holds. Received messages are processed — their offsets stored for the next
/// auto-commit — when `process` is set; otherwise they are left unprocessed (a stuck handler),
/// and returned.
fn poll_until(
    consumer: &StatsConsumer,
    mut receive: usize,
    process: bool,
    what: &str,
    mut done: impl FnMut() -> bool,
) -> Vec<(i32, i64)> {
    let start = Instant::now();
    let mut unprocessed = Vec::new();
    loop {
        if let Some(message) = consumer.poll(Duration::from_millis(50)) {
            let message = message.expect("message");
            assert!(receive > 0, "{what}: more messages than produced");
            receive -= 1;
            if process {
                consumer.store_offset_from_message(&message).expect("store offset");
            } else {
                unprocessed.push((message.partition(), message.offset()));
            }
        }
        if receive == 0 && done() {
            return unprocessed;
        }
        assert!(start.elapsed() < TIMEOUT, "{what}: not within {TIMEOUT:?}");
    }
}

fn lag_follows_the_consumer(bootstrap: &str, topic: &str) {
    let t = TestTelemetry::new();
    let mut producer_config = ClientConfig::new();
    producer_config.set("bootstrap.servers", bootstrap).set("statistics.interval.ms", "100");
    let producer: ThreadedProducer<_> = producer_config
        .create_with_context(StatisticsContext::with_statistics(
            DefaultProducerContext,
            KafkaStatistics::with_meter_provider(&producer_config, &t.meter_provider),
        ))
        .expect("producer");
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_name("stats"))
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.commit.interval.ms", "100")
        .set("statistics.interval.ms", "100");
    let consumer: StatsConsumer = config
        .create_with_context(StatisticsContext::with_statistics(
            DefaultConsumerContext,
            KafkaStatistics::with_meter_provider(&config, &t.meter_provider),
        ))
        .expect("consumer");
    let consumer = integration_tests::assign_from_start(consumer, topic);
    let lag = || value(&t, "otel_messaging.kafka.consumer.lag", Some(topic));

    produce(&producer, topic, 20);
    poll_until(&consumer, 20, true, "caught up", || lag() == Some(0.0));

    // The consumer stops processing (its handler is stuck) while 50 more arrive: lag 50.
    produce(&producer, topic, 50);
    let stuck = poll_until(&consumer, 50, false, "lag 50 while stuck", || lag() == Some(50.0));

    // It processes them and catches up: lag 0.
    let (partition, offset) = *stuck.last().expect("unprocessed messages");
    let mut processed = TopicPartitionList::new();
    processed.add_partition_offset(topic, partition, Offset::Offset(offset + 1)).expect("offset");
    consumer.store_offsets(&processed).expect("store offsets");
    poll_until(&consumer, 0, true, "caught up again", || lag() == Some(0.0));

    // The producer's own figures: 70 messages sent, their bytes, a round trip time per broker.
    let start = Instant::now();
    while value(&t, "otel_messaging.kafka.client.tx.messages", None) != Some(70.0) {
        assert!(
            start.elapsed() < TIMEOUT,
            "tx.messages: {:?}",
            value(&t, "otel_messaging.kafka.client.tx.messages", None)
        );
        producer.poll(Duration::from_millis(100));
    }
    assert!(value(&t, "otel_messaging.kafka.client.tx.bytes", None).is_some_and(|b| b >= 70.0));
    assert!(value(&t, "otel_messaging.kafka.broker.rtt", None).is_some_and(|s| s > 0.0 && s < 10.0));
    let group = t
        .metrics()
        .into_iter()
        .find(|p| p.name == "otel_messaging.kafka.consumer.lag")
        .expect("lag point")
        .attributes;
    assert!(group.iter().any(|kv| kv.key.as_str() == "messaging.consumer.group.name"), "{group:?}");
    assert!(
        group
            .iter()
            .any(|kv| kv.key.as_str() == "messaging.destination.partition.id" && kv.value.as_str() == "0")
    );
}

#[test]
fn consumer_lag_on_the_mock_cluster() {
    let mock = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    let topic = unique_name("stats");
    mock.create_topic(&topic, 1, 1).expect("topic");
    lag_follows_the_consumer(&mock.bootstrap_servers(), &topic);
}

#[test]
fn consumer_lag_on_tansu() {
    let bootstrap = kafka_bootstrap();
    let topic = unique_name("stats");
    tokio::runtime::Runtime::new().expect("runtime").block_on(create_topic(&bootstrap, &topic));
    lag_follows_the_consumer(&bootstrap, &topic);
}

#[test]
fn a_malformed_statistics_document_records_nothing() {
    let t = TestTelemetry::new();
    let statistics = KafkaStatistics::with_meter_provider(&ClientConfig::new(), &t.meter_provider);
    statistics.record(b"not json");
    statistics.record(br#"{"msg_cnt": "many", "txmsgs": 3}"#); // a wrong type: the whole document
    statistics.record(br#"{"topics": {"t": {"partitions": {"0": {"partition": 0, "consumer_lag": -1}}}}}"#);
    assert!(t.metrics().iter().all(|p| !p.name.starts_with("otel_messaging.kafka.")), "{:?}", t.metrics());
    // A document with only some fields records those.
    statistics.record(br#"{"msg_cnt": 4, "txmsgs": 10}"#);
    statistics.record(br#"{"txmsgs": 15}"#);
    assert_eq!(value(&t, "otel_messaging.kafka.producer.queue.messages", None), Some(4.0));
    assert_eq!(
        value(&t, "otel_messaging.kafka.client.tx.messages", None),
        Some(15.0),
        "cumulative totals add up once"
    );
}
