//! Views of Kafka operations for the semantic conventions, Kafka-specific attribute keys, and
//! [`error_type`].
//!
//! Source: semconv v1.44 `docs/messaging/kafka.md` (`model/messaging/kafka.yaml`).

use std::{
    borrow::Cow,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use opentelemetry::{KeyValue, StringValue, Value};
use otel_messaging::{MessagingAttributes, OperationType};

/// The semconv names this crate uses: the project's own from the core's `semconv` module, the
/// specification's from `opentelemetry-semantic-conventions` (which the core does not re-export:
/// its semver is not ours).
mod semconv {
    pub(crate) use opentelemetry_semantic_conventions::attribute::*;
    pub(crate) use otel_messaging::semconv::*;
}
use rdkafka::{
    error::KafkaError,
    message::{Message, Timestamp},
};

use crate::config::ClientFacts;

/// `messaging.system` for every Kafka span: `kafka`.
pub(crate) const SYSTEM: &str = semconv::system::KAFKA;

/// `otel_messaging.kafka.broker.id`: the broker's node id on the client-statistics metrics
/// ([`crate::statistics`]; this project's namespace, semconv v1.44 has no broker attribute).
pub(crate) const BROKER_ID: &str = "otel_messaging.kafka.broker.id";

/// Semconv keys the client-statistics metrics use.
pub(crate) use semconv::{
    ERROR_TYPE, MESSAGING_CONSUMER_GROUP_NAME, MESSAGING_DESTINATION_NAME,
    MESSAGING_DESTINATION_PARTITION_ID, MESSAGING_SYSTEM,
};

/// `messaging.operation.name` of producer spans: `send`.
pub(crate) const OPERATION_SEND: &str = "send";
/// `messaging.operation.name` of batch receive spans: `poll`.
pub(crate) const OPERATION_POLL: &str = "poll";
/// `messaging.operation.name` of process spans: `process`.
pub(crate) const OPERATION_PROCESS: &str = "process";
/// `messaging.operation.name` of offset commits (settle spans): `commit`.
pub(crate) const OPERATION_COMMIT: &str = "commit";
/// `messaging.operation.name` of offset stores for the next auto-commit (settle spans):
/// `store_offset`.
pub(crate) const OPERATION_STORE_OFFSET: &str = "store_offset";

/// Partitions whose `messaging.destination.partition.id` is a static string (a 4-KiB table);
/// a partition beyond it is formatted per span, as every partition from 16 on was before.
const STATIC_PARTITIONS: usize = 1_024;

/// The decimal digits of `0..STATIC_PARTITIONS`, zero-padded on the right (at most four digits).
static PARTITION_DIGITS: [[u8; 4]; STATIC_PARTITIONS] = partition_digits();

const fn partition_digits() -> [[u8; 4]; STATIC_PARTITIONS] {
    let mut table = [[0u8; 4]; STATIC_PARTITIONS];
    let mut partition = 0;
    while partition < STATIC_PARTITIONS {
        let len = if partition >= 1_000 {
            4
        } else if partition >= 100 {
            3
        } else if partition >= 10 {
            2
        } else {
            1
        };
        let mut rest = partition;
        let mut at = len;
        while at > 0 {
            at -= 1;
            table[partition][at] = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        partition += 1;
    }
    table
}

/// `messaging.destination.partition.id` of `partition`: a static string for the first
/// [`STATIC_PARTITIONS`] (no allocation per span — a wide topic's partitions 16 and up allocated
/// one each), the number formatted beyond.
pub(crate) fn partition_value(partition: i32) -> StringValue {
    let digits = usize::try_from(partition).ok().and_then(|p| PARTITION_DIGITS.get(p));
    match digits.and_then(|d| std::str::from_utf8(&d[..d.iter().position(|&b| b == 0).unwrap_or(4)]).ok()) {
        Some(s) => StringValue::from(s),
        None => StringValue::from(partition.to_string()),
    }
}

fn key_value(key: Option<&[u8]>) -> Option<KeyValue> {
    let key = std::str::from_utf8(key?).ok()?;
    Some(KeyValue::new(semconv::MESSAGING_KAFKA_MESSAGE_KEY, otel_messaging::__private::bounded_value(key)))
}

fn cluster_value(id: &Option<Arc<str>>) -> Option<KeyValue> {
    id.as_ref().map(|id| KeyValue::new(semconv::MESSAGING_KAFKA_CLUSTER_ID, Value::String(id.clone().into())))
}

/// The send of one record (`send {topic}`, PRODUCER).
#[derive(Debug)]
pub(crate) struct SendView<'a> {
    pub(crate) topic: &'a str,
    pub(crate) partition: Option<i32>,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) tombstone: bool,
    pub(crate) body_size: Option<u64>,
    pub(crate) cluster_id: Option<Arc<str>>,
    pub(crate) client: &'a ClientFacts,
    pub(crate) capture_key: bool,
}

impl MessagingAttributes for SendView<'_> {
    fn system(&self) -> &'static str {
        SYSTEM
    }
    fn operation_type(&self) -> OperationType {
        OperationType::Send
    }
    fn operation_name(&self) -> &'static str {
        OPERATION_SEND
    }
    fn destination_name(&self) -> Option<&str> {
        Some(self.topic)
    }
    fn destination_partition_id(&self) -> Option<StringValue> {
        self.partition.map(partition_value)
    }
    fn client_id(&self) -> Option<&str> {
        self.client.client_id()
    }
    fn server(&self) -> Option<(&str, Option<u16>)> {
        self.client.server()
    }
    fn body_size(&self) -> Option<u64> {
        self.body_size
    }
    fn system_attributes(&self, attributes: &mut Vec<KeyValue>) {
        if self.tombstone {
            attributes.push(KeyValue::new(semconv::MESSAGING_KAFKA_MESSAGE_TOMBSTONE, true));
        }
        if self.capture_key {
            attributes.extend(key_value(self.key));
        }
        attributes.extend(cluster_value(&self.cluster_id));
    }
}

/// Attributes known once the broker acknowledged a record: partition and offset.
pub(crate) fn delivery_attributes(partition: i32, offset: i64) -> [KeyValue; 2] {
    [
        KeyValue::new(semconv::MESSAGING_DESTINATION_PARTITION_ID, partition_value(partition)),
        KeyValue::new(semconv::MESSAGING_KAFKA_OFFSET, offset),
    ]
}

/// The processing of one received message (`process {topic}`, CONSUMER).
#[derive(Debug)]
pub(crate) struct ProcessView<'a, M: ?Sized> {
    pub(crate) message: &'a M,
    pub(crate) cluster_id: Option<Arc<str>>,
    pub(crate) client: &'a ClientFacts,
    pub(crate) capture_key: bool,
    pub(crate) counted: bool,
}

/// The time a record was created or appended, from its Kafka timestamp (milliseconds since the
/// epoch); `None` when not available or negative.
pub(crate) fn record_time(timestamp: Timestamp) -> Option<SystemTime> {
    let millis = u64::try_from(timestamp.to_millis()?).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_millis(millis))
}

impl<M: Message + ?Sized> MessagingAttributes for ProcessView<'_, M> {
    fn system(&self) -> &'static str {
        SYSTEM
    }
    fn operation_type(&self) -> OperationType {
        OperationType::Process
    }
    fn operation_name(&self) -> &'static str {
        OPERATION_PROCESS
    }
    fn destination_name(&self) -> Option<&str> {
        Some(self.message.topic())
    }
    fn destination_partition_id(&self) -> Option<StringValue> {
        Some(partition_value(self.message.partition()))
    }
    fn consumer_group_name(&self) -> Option<&str> {
        self.client.consumer_group()
    }
    fn client_id(&self) -> Option<&str> {
        self.client.client_id()
    }
    fn server(&self) -> Option<(&str, Option<u16>)> {
        self.client.server()
    }
    fn body_size(&self) -> Option<u64> {
        self.message.payload().map(|p| p.len() as u64)
    }
    fn sent_time(&self) -> Option<SystemTime> {
        record_time(self.message.timestamp())
    }
    fn counts_as_delivery(&self) -> bool {
        !self.counted
    }
    fn system_attributes(&self, attributes: &mut Vec<KeyValue>) {
        attributes.push(KeyValue::new(semconv::MESSAGING_KAFKA_OFFSET, self.message.offset()));
        if self.message.payload().is_none() {
            attributes.push(KeyValue::new(semconv::MESSAGING_KAFKA_MESSAGE_TOMBSTONE, true));
        }
        if self.capture_key {
            attributes.extend(key_value(self.message.key()));
        }
        attributes.extend(cluster_value(&self.cluster_id));
    }
}

/// A poll (`poll {topic}`, CLIENT): of a batch (`count` messages) or of one message
/// (`single`: its offset, key and tombstone flag go on the span, semconv "single message").
#[derive(Debug)]
pub(crate) struct PollView<'a> {
    pub(crate) topic: Option<&'a str>,
    pub(crate) partition: Option<i32>,
    pub(crate) count: Option<u64>,
    pub(crate) single: Option<SingleMessage<'a>>,
    pub(crate) cluster_id: Option<Arc<str>>,
    pub(crate) client: &'a ClientFacts,
}

/// Per-message facts of a single-message poll span.
#[derive(Debug)]
pub(crate) struct SingleMessage<'a> {
    pub(crate) offset: i64,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) capture_key: bool,
    pub(crate) tombstone: bool,
}

impl MessagingAttributes for PollView<'_> {
    fn system(&self) -> &'static str {
        SYSTEM
    }
    fn operation_type(&self) -> OperationType {
        OperationType::Receive
    }
    fn operation_name(&self) -> &'static str {
        OPERATION_POLL
    }
    fn destination_name(&self) -> Option<&str> {
        self.topic
    }
    fn destination_partition_id(&self) -> Option<StringValue> {
        self.partition.map(partition_value)
    }
    fn consumer_group_name(&self) -> Option<&str> {
        self.client.consumer_group()
    }
    fn client_id(&self) -> Option<&str> {
        self.client.client_id()
    }
    fn server(&self) -> Option<(&str, Option<u16>)> {
        self.client.server()
    }
    fn batch_message_count(&self) -> Option<u64> {
        self.count
    }
    fn system_attributes(&self, attributes: &mut Vec<KeyValue>) {
        if let Some(single) = &self.single {
            attributes.push(KeyValue::new(semconv::MESSAGING_KAFKA_OFFSET, single.offset));
            if single.tombstone {
                attributes.push(KeyValue::new(semconv::MESSAGING_KAFKA_MESSAGE_TOMBSTONE, true));
            }
            if single.capture_key {
                attributes.extend(key_value(single.key));
            }
        }
        attributes.extend(cluster_value(&self.cluster_id));
    }
}

/// An offset commit or store (`commit {topic}` / `store_offset {topic}`, CLIENT, settle).
/// `offset` is the consumed message's offset when the settle is for one message.
#[derive(Debug)]
pub(crate) struct SettleView<'a> {
    pub(crate) operation_name: &'static str,
    pub(crate) topic: Option<&'a str>,
    pub(crate) partition: Option<i32>,
    pub(crate) offset: Option<i64>,
    pub(crate) cluster_id: Option<Arc<str>>,
    pub(crate) client: &'a ClientFacts,
}

impl MessagingAttributes for SettleView<'_> {
    fn system(&self) -> &'static str {
        SYSTEM
    }
    fn operation_type(&self) -> OperationType {
        OperationType::Settle
    }
    fn operation_name(&self) -> &'static str {
        self.operation_name
    }
    fn destination_name(&self) -> Option<&str> {
        self.topic
    }
    fn destination_partition_id(&self) -> Option<StringValue> {
        self.partition.map(partition_value)
    }
    fn consumer_group_name(&self) -> Option<&str> {
        self.client.consumer_group()
    }
    fn client_id(&self) -> Option<&str> {
        self.client.client_id()
    }
    fn server(&self) -> Option<(&str, Option<u16>)> {
        self.client.server()
    }
    fn system_attributes(&self, attributes: &mut Vec<KeyValue>) {
        if let Some(offset) = self.offset {
            attributes.push(KeyValue::new(semconv::MESSAGING_KAFKA_OFFSET, offset));
        }
        attributes.extend(cluster_value(&self.cluster_id));
    }
}

/// Per-message link attributes of a batch poll: the values that vary between messages
/// (partition, offset; topic only when the batch spans several topics).
pub(crate) fn link_attributes<M: Message + ?Sized>(message: &M, mixed_topics: bool) -> Vec<KeyValue> {
    let mut attributes = Vec::with_capacity(3);
    if mixed_topics {
        attributes.push(KeyValue::new(semconv::MESSAGING_DESTINATION_NAME, message.topic().to_owned()));
    }
    attributes.push(KeyValue::new(
        semconv::MESSAGING_DESTINATION_PARTITION_ID,
        partition_value(message.partition()),
    ));
    attributes.push(KeyValue::new(semconv::MESSAGING_KAFKA_OFFSET, message.offset()));
    attributes
}

/// The `error.type` of a Kafka error: the name of rdkafka's `RDKafkaErrorCode` variant in
/// SCREAMING_SNAKE_CASE (`MessageSizeTooLarge` → `MESSAGE_SIZE_TOO_LARGE`,
/// `UnknownTopicOrPartition` → `UNKNOWN_TOPIC_OR_PARTITION`, `MessageTimedOut` →
/// `MESSAGE_TIMED_OUT`, `NoOffset` → `NO_OFFSET`); `PARTITION_EOF` for the end-of-partition event
/// (which rdkafka reports without a code); `_OTHER` for other errors that carry no code.
///
/// These are rdkafka's names, close to but not always librdkafka's (`MSG_SIZE_TOO_LARGE`) or the
/// Kafka protocol's (`MESSAGE_TOO_LARGE`); they are stable across releases and of low
/// cardinality.
pub(crate) fn error_type(error: &KafkaError) -> Cow<'static, str> {
    match error.rdkafka_error_code() {
        Some(code) => Cow::Owned(screaming_snake(&format!("{code:?}"))),
        None if matches!(error, KafkaError::PartitionEOF(_)) => Cow::Borrowed("PARTITION_EOF"),
        None => Cow::Borrowed(semconv::ERROR_TYPE_OTHER),
    }
}

fn screaming_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 8);
    let mut prev_lower = false;
    for c in camel.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            out.push('_');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::types::RDKafkaErrorCode;

    #[test]
    fn error_type_is_screaming_snake_code_name() {
        let e = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert_eq!(error_type(&e), "MESSAGE_SIZE_TOO_LARGE");
        let e = KafkaError::MessageProduction(RDKafkaErrorCode::UnknownTopicOrPartition);
        assert_eq!(error_type(&e), "UNKNOWN_TOPIC_OR_PARTITION");
        assert_eq!(error_type(&KafkaError::Canceled), "_OTHER");
    }

    #[test]
    fn partition_values() {
        assert_eq!(partition_value(3).as_str(), "3");
        assert_eq!(partition_value(123).as_str(), "123");
        assert_eq!(partition_value(-1).as_str(), "-1");
        assert_eq!(partition_value(1_023).as_str(), "1023");
        assert_eq!(partition_value(1_024).as_str(), "1024");
        assert_eq!(partition_value(i32::MAX).as_str(), i32::MAX.to_string());
        for partition in [0, 9, 10, 99, 100, 999, 1_000] {
            assert_eq!(partition_value(partition).as_str(), partition.to_string());
        }
    }

    /// A wide topic's partition ids are shared strings, not a new one per span: two values of the
    /// same partition, alive together, point to the same bytes.
    #[test]
    fn partition_values_of_a_wide_topic_are_not_allocated_per_span() {
        for partition in [0, 15, 16, 255, 1_023] {
            let (a, b) = (partition_value(partition), partition_value(partition));
            assert_eq!(a.as_str().as_ptr(), b.as_str().as_ptr(), "partition {partition}");
        }
    }
}
