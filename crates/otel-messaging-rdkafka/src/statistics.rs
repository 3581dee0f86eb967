//! librdkafka statistics as OpenTelemetry metrics: consumer lag per partition, broker round trip
//! time, producer and fetch queue depths, messages and bytes sent and received, broker errors and
//! consumer-group rebalances.
//!
//! librdkafka emits a statistics JSON document every `statistics.interval.ms` (off by default;
//! set it, e.g. to `5000`) through `ClientContext::stats_raw`. [`KafkaStatistics`] turns one
//! document into measurements; [`StatisticsContext`] is a ready-made context that records them
//! and delegates everything else to the context it wraps (e.g. a [`crate::TracingProducerContext`]
//! wraps it for a traced `ThreadedProducer`). A client with its own consumer context keeps a
//! [`KafkaStatistics`] in it and calls [`KafkaStatistics::record`] from its `stats_raw`.
//!
//! semconv v1.44 defines no Kafka client metric (the lag metric of semconv#792 is still open), so
//! the names are this project's own namespace, `otel_messaging.kafka.*`, with librdkafka's field
//! names in the descriptions (librdkafka `STATISTICS.md`). Attributes are low-cardinality only:
//! `messaging.system`, topic (`messaging.destination.name`), partition
//! (`messaging.destination.partition.id`), consumer group (`messaging.consumer.group.name`, from
//! the client's `group.id`) and broker id (`otel_messaging.kafka.broker.id`).
//!
//! | Instrument | Kind | Unit | librdkafka field |
//! |---|---|---|---|
//! | `otel_messaging.kafka.consumer.lag` | f64 gauge | `{message}` | `partitions.consumer_lag` (high watermark or last stable offset − committed offset); absent while unknown |
//! | `otel_messaging.kafka.consumer.fetch_queue.messages` | f64 gauge | `{message}` | `partitions.fetchq_cnt` |
//! | `otel_messaging.kafka.producer.queue.messages` | f64 gauge | `{message}` | `msg_cnt` (messages waiting in the producer queues) |
//! | `otel_messaging.kafka.producer.queue.size` | f64 gauge | `By` | `msg_size` |
//! | `otel_messaging.kafka.broker.rtt` | f64 gauge | `s` | `brokers.rtt.avg` (µs in librdkafka) |
//! | `otel_messaging.kafka.client.tx.messages` / `.rx.messages` | u64 counter | `{message}` | `txmsgs` / `rxmsgs` |
//! | `otel_messaging.kafka.client.tx.bytes` / `.rx.bytes` | u64 counter | `By` | `txmsg_bytes` / `rxmsg_bytes` |
//! | `otel_messaging.kafka.broker.errors` | u64 counter | `{error}` | `brokers.txerrs` (`error.type = transmit`), `rxerrs` (`receive`), `req_timeouts` (`request_timeout`) |
//! | `otel_messaging.kafka.consumer.rebalances` | u64 counter | `{rebalance}` | `cgrp.rebalance_cnt` |
//!
//! librdkafka's totals are cumulative per client; the counters add the increase since the previous
//! document. A field librdkafka does not send is simply not recorded.

use std::{collections::HashMap, sync::Mutex};

use opentelemetry::{
    KeyValue,
    metrics::{Counter, Gauge, Meter, MeterProvider},
};
use rdkafka::{
    ClientConfig,
    consumer::{ConsumerContext, DefaultConsumerContext},
    producer::{DeliveryResult, Partitioner, ProducerContext},
};
use serde::Deserialize;

use crate::attributes::{
    BROKER_ID, ERROR_TYPE, MESSAGING_CONSUMER_GROUP_NAME, MESSAGING_DESTINATION_NAME,
    MESSAGING_DESTINATION_PARTITION_ID, MESSAGING_SYSTEM,
};

/// The parts of librdkafka's statistics document that are recorded; every field is optional,
/// unknown fields are ignored.
#[derive(Debug, Deserialize)]
struct Document {
    msg_cnt: Option<u64>,
    msg_size: Option<u64>,
    txmsgs: Option<u64>,
    txmsg_bytes: Option<u64>,
    rxmsgs: Option<u64>,
    rxmsg_bytes: Option<u64>,
    #[serde(default)]
    brokers: HashMap<String, BrokerDocument>,
    #[serde(default)]
    topics: HashMap<String, TopicDocument>,
    cgrp: Option<GroupDocument>,
}

#[derive(Debug, Deserialize)]
struct BrokerDocument {
    nodeid: Option<i32>,
    rtt: Option<Window>,
    txerrs: Option<u64>,
    rxerrs: Option<u64>,
    req_timeouts: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Window {
    /// Microseconds.
    avg: Option<i64>,
    cnt: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct TopicDocument {
    #[serde(default)]
    partitions: HashMap<String, PartitionDocument>,
}

#[derive(Debug, Deserialize)]
struct PartitionDocument {
    partition: Option<i32>,
    consumer_lag: Option<i64>,
    fetchq_cnt: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct GroupDocument {
    rebalance_cnt: Option<u64>,
}

/// Records librdkafka statistics documents as OpenTelemetry metrics (module docs: the
/// instruments).
///
/// Build one per client, from the client's configuration (for `group.id`); call
/// [`record`](Self::record) from `ClientContext::stats_raw`, or use [`StatisticsContext`].
///
/// # Examples
///
/// ```
/// use otel_messaging_rdkafka::KafkaStatistics;
/// use rdkafka::{ClientConfig, ClientContext};
///
/// struct MyContext {
///     statistics: KafkaStatistics,
/// }
///
/// impl ClientContext for MyContext {
///     fn stats_raw(&self, statistics: &[u8]) {
///         self.statistics.record(statistics);
///     }
/// }
///
/// let mut config = ClientConfig::new();
/// config.set("group.id", "workers").set("statistics.interval.ms", "5000");
/// let context = MyContext { statistics: KafkaStatistics::new(&config) };
/// # let _ = context;
/// ```
#[derive(Debug)]
pub struct KafkaStatistics {
    instruments: Instruments,
    group: Option<String>,
    /// Last cumulative total per counter and attribute set, to add only the increase.
    totals: Mutex<HashMap<(&'static str, i64), u64>>,
}

#[derive(Debug)]
struct Instruments {
    consumer_lag: Gauge<f64>,
    fetch_queue: Gauge<f64>,
    producer_queue_messages: Gauge<f64>,
    producer_queue_size: Gauge<f64>,
    broker_rtt: Gauge<f64>,
    tx_messages: Counter<u64>,
    tx_bytes: Counter<u64>,
    rx_messages: Counter<u64>,
    rx_bytes: Counter<u64>,
    broker_errors: Counter<u64>,
    rebalances: Counter<u64>,
}

impl Instruments {
    fn new(meter: &Meter) -> Self {
        let gauge = |name: &'static str, unit: &'static str, description: &'static str| {
            meter.f64_gauge(name).with_unit(unit).with_description(description).build()
        };
        let counter = |name: &'static str, unit: &'static str, description: &'static str| {
            meter.u64_counter(name).with_unit(unit).with_description(description).build()
        };
        Instruments {
            consumer_lag: gauge(
                "otel_messaging.kafka.consumer.lag",
                "{message}",
                "Messages between the partition's high watermark (or last stable offset) and the group's committed offset (librdkafka consumer_lag).",
            ),
            fetch_queue: gauge(
                "otel_messaging.kafka.consumer.fetch_queue.messages",
                "{message}",
                "Pre-fetched messages waiting in the partition's fetch queue (librdkafka fetchq_cnt).",
            ),
            producer_queue_messages: gauge(
                "otel_messaging.kafka.producer.queue.messages",
                "{message}",
                "Messages waiting in the producer queues (librdkafka msg_cnt).",
            ),
            producer_queue_size: gauge(
                "otel_messaging.kafka.producer.queue.size",
                "By",
                "Bytes of the messages waiting in the producer queues (librdkafka msg_size).",
            ),
            broker_rtt: gauge(
                "otel_messaging.kafka.broker.rtt",
                "s",
                "Average broker round trip time over the last statistics window (librdkafka rtt.avg).",
            ),
            tx_messages: counter(
                "otel_messaging.kafka.client.tx.messages",
                "{message}",
                "Messages sent to brokers (librdkafka txmsgs).",
            ),
            tx_bytes: counter(
                "otel_messaging.kafka.client.tx.bytes",
                "By",
                "Message bytes sent to brokers (librdkafka txmsg_bytes).",
            ),
            rx_messages: counter(
                "otel_messaging.kafka.client.rx.messages",
                "{message}",
                "Messages received from brokers (librdkafka rxmsgs).",
            ),
            rx_bytes: counter(
                "otel_messaging.kafka.client.rx.bytes",
                "By",
                "Message bytes received from brokers (librdkafka rxmsg_bytes).",
            ),
            broker_errors: counter(
                "otel_messaging.kafka.broker.errors",
                "{error}",
                "Transmission errors, receive errors and request timeouts per broker (librdkafka txerrs, rxerrs, req_timeouts).",
            ),
            rebalances: counter(
                "otel_messaging.kafka.consumer.rebalances",
                "{rebalance}",
                "Consumer group rebalances (librdkafka cgrp.rebalance_cnt).",
            ),
        }
    }
}

/// Counter keys (with an attribute discriminant) for the cumulative totals.
const TX_MESSAGES: &str = "tx.messages";
const TX_BYTES: &str = "tx.bytes";
const RX_MESSAGES: &str = "rx.messages";
const RX_BYTES: &str = "rx.bytes";
const TX_ERRORS: &str = "errors.transmit";
const RX_ERRORS: &str = "errors.receive";
const TIMEOUTS: &str = "errors.request_timeout";
const REBALANCES: &str = "rebalances";

impl KafkaStatistics {
    /// A recorder on the global meter provider, for the client built from `config` (its
    /// `group.id`, if any, becomes `messaging.consumer.group.name`).
    ///
    /// Statistics are emitted only with `statistics.interval.ms` set on the client.
    pub fn new(config: &ClientConfig) -> Self {
        Self::with_meter(
            config,
            &opentelemetry::global::meter_with_scope(otel_messaging::__private::instrumentation_scope()),
        )
    }

    /// Like [`new`](Self::new), on `provider`.
    pub fn with_meter_provider<P: MeterProvider + ?Sized>(config: &ClientConfig, provider: &P) -> Self {
        Self::with_meter(
            config,
            &provider.meter_with_scope(otel_messaging::__private::instrumentation_scope()),
        )
    }

    fn with_meter(config: &ClientConfig, meter: &Meter) -> Self {
        KafkaStatistics {
            instruments: Instruments::new(meter),
            group: config.get("group.id").map(str::to_owned),
            totals: Mutex::new(HashMap::new()),
        }
    }

    /// Records one statistics document (the JSON librdkafka hands to `stats_raw`).
    ///
    /// A document that is not JSON, or whose recorded fields have unexpected types, records
    /// nothing; a field it lacks is not recorded.
    pub fn record(&self, document: &[u8]) {
        let Ok(document) = serde_json::from_slice::<Document>(document) else { return };
        let system = KeyValue::new(MESSAGING_SYSTEM, "kafka");
        let i = &self.instruments;
        let group = self.group.as_ref().map(|g| KeyValue::new(MESSAGING_CONSUMER_GROUP_NAME, g.clone()));

        if let Some(count) = document.msg_cnt {
            i.producer_queue_messages.record(count as f64, std::slice::from_ref(&system));
        }
        if let Some(size) = document.msg_size {
            i.producer_queue_size.record(size as f64, std::slice::from_ref(&system));
        }
        for (counter, key, total) in [
            (&i.tx_messages, TX_MESSAGES, document.txmsgs),
            (&i.tx_bytes, TX_BYTES, document.txmsg_bytes),
            (&i.rx_messages, RX_MESSAGES, document.rxmsgs),
            (&i.rx_bytes, RX_BYTES, document.rxmsg_bytes),
        ] {
            if let Some(total) = total {
                self.add(counter, (key, 0), total, std::slice::from_ref(&system));
            }
        }

        for broker in document.brokers.values() {
            // Bootstrap and internal brokers have no node id (-1): not a broker of the cluster.
            let Some(id) = broker.nodeid.filter(|id| *id >= 0) else { continue };
            let attributes = [system.clone(), KeyValue::new(BROKER_ID, i64::from(id))];
            if let Some(rtt) = &broker.rtt
                && let (Some(avg), Some(count)) = (rtt.avg, rtt.cnt)
                && count > 0
            {
                i.broker_rtt.record(avg as f64 / 1e6, &attributes);
            }
            for (key, error_type, total) in [
                (TX_ERRORS, "transmit", broker.txerrs),
                (RX_ERRORS, "receive", broker.rxerrs),
                (TIMEOUTS, "request_timeout", broker.req_timeouts),
            ] {
                if let Some(total) = total {
                    let mut with_type = attributes.to_vec();
                    with_type.push(KeyValue::new(ERROR_TYPE, error_type));
                    self.add(&i.broker_errors, (key, i64::from(id)), total, &with_type);
                }
            }
        }

        for (topic, partitions) in &document.topics {
            for partition in partitions.partitions.values() {
                // Partition -1 is librdkafka's internal "unassigned" partition.
                let Some(id) = partition.partition.filter(|p| *p >= 0) else { continue };
                let mut attributes = vec![
                    system.clone(),
                    KeyValue::new(MESSAGING_DESTINATION_NAME, topic.clone()),
                    KeyValue::new(MESSAGING_DESTINATION_PARTITION_ID, id.to_string()),
                ];
                attributes.extend(group.clone());
                // -1: unknown (no committed offset or no high watermark yet).
                if let Some(lag) = partition.consumer_lag.filter(|lag| *lag >= 0) {
                    i.consumer_lag.record(lag as f64, &attributes);
                }
                if let Some(queued) = partition.fetchq_cnt.filter(|q| *q >= 0) {
                    i.fetch_queue.record(queued as f64, &attributes);
                }
            }
        }

        if let (Some(group), Some(total)) = (&group, document.cgrp.and_then(|g| g.rebalance_cnt)) {
            self.add(&i.rebalances, (REBALANCES, 0), total, &[system, group.clone()]);
        }
    }

    /// Adds the increase of a cumulative total since the previous document (all of it the first
    /// time, or after the total went down: a restarted client).
    fn add(&self, counter: &Counter<u64>, key: (&'static str, i64), total: u64, attributes: &[KeyValue]) {
        let mut totals = self.totals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let previous = totals.insert(key, total).unwrap_or(0);
        let increase = if total >= previous { total - previous } else { total };
        if increase > 0 {
            counter.add(increase, attributes);
        }
    }
}

/// A client context that records librdkafka statistics as metrics ([`KafkaStatistics`]) and
/// delegates everything else — logging, errors, statistics (the same document), OAuth, delivery
/// reports, the custom partitioner — to the context it wraps.
///
/// As a producer context it wraps any [`ProducerContext`], and a
/// [`crate::TracingProducerContext`] can wrap it in turn. As a consumer context it wraps only
/// [`DefaultConsumerContext`]: rdkafka's rebalance callbacks receive the consumer typed by its own
/// context, which cannot be handed to a wrapped one; a consumer with its own context keeps a
/// [`KafkaStatistics`] in it instead.
///
/// # Examples
///
/// ```no_run
/// use otel_messaging_rdkafka::StatisticsContext;
/// use rdkafka::{ClientConfig, consumer::{DefaultConsumerContext, StreamConsumer}};
///
/// let mut config = ClientConfig::new();
/// config
///     .set("bootstrap.servers", "localhost:9092")
///     .set("group.id", "workers")
///     .set("statistics.interval.ms", "5000");
/// let context = StatisticsContext::new(DefaultConsumerContext, &config);
/// let consumer: StreamConsumer<_> = config.create_with_context(context)?;
/// # Ok::<(), rdkafka::error::KafkaError>(())
/// ```
#[derive(Debug)]
pub struct StatisticsContext<C> {
    inner: C,
    statistics: KafkaStatistics,
}

impl<C> StatisticsContext<C> {
    /// Wraps `inner`, recording statistics on the global meter provider ([`KafkaStatistics::new`]).
    pub fn new(inner: C, config: &ClientConfig) -> Self {
        StatisticsContext { inner, statistics: KafkaStatistics::new(config) }
    }

    /// Wraps `inner`, recording with `statistics`.
    pub fn with_statistics(inner: C, statistics: KafkaStatistics) -> Self {
        StatisticsContext { inner, statistics }
    }

    /// The wrapped context.
    pub fn inner(&self) -> &C {
        &self.inner
    }
}

delegate_client_context!(StatisticsContext, |this, document| { this.statistics.record(document) });

impl<C, Part> ProducerContext<Part> for StatisticsContext<C>
where
    C: ProducerContext<Part>,
    Part: Partitioner,
{
    type DeliveryOpaque = C::DeliveryOpaque;

    fn delivery(&self, delivery_result: &DeliveryResult<'_>, delivery_opaque: Self::DeliveryOpaque) {
        self.inner.delivery(delivery_result, delivery_opaque);
    }

    fn get_custom_partitioner(&self) -> Option<&Part> {
        self.inner.get_custom_partitioner()
    }
}

impl ConsumerContext for StatisticsContext<DefaultConsumerContext> {}
