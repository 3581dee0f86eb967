//! [`MessagingAttributes`]: what the semantic conventions need to know about one operation.
//!
//! Broker crates implement this trait for small borrowed views of a native call (a record being
//! sent, a message being processed, a batch being polled). The core turns a view into the span
//! name, kind, the sampling-relevant attributes passed at span start, and the metric attributes.
//!
//! Source: semconv v1.44 `docs/messaging/messaging-spans.md`, "Messaging attributes", and the
//! per-system refinements (`kafka.md`, `rabbitmq.md`, `sqs.md`).

use std::time::SystemTime;

use opentelemetry::{KeyValue, StringValue};

use crate::operation::OperationType;

/// Most bytes of a value copied from a message's metadata onto a span (a Kafka key, an AMQP
/// routing key or id, an `x-death` reason, a captured header): 256.
///
/// The metadata is the producer's, so its size is too (a 1 MB Kafka key would be copied into
/// every span of the message); the SDK limits attribute counts, not value lengths.
pub const MAX_COPIED_VALUE_LEN: usize = 256;

/// `value` as a span attribute value of at most [`MAX_COPIED_VALUE_LEN`] bytes, cut on a character
/// boundary with `…` appended when cut (reliability review M7).
///
/// # Examples
///
/// ```
/// use otel_messaging::__private::{MAX_COPIED_VALUE_LEN, bounded_value};
/// assert_eq!(bounded_value("order-1"), "order-1");
/// let long = bounded_value(&"é".repeat(200));
/// assert!(long.len() <= MAX_COPIED_VALUE_LEN + '…'.len_utf8() && long.ends_with('…'));
/// ```
pub fn bounded_value(value: &str) -> String {
    if value.len() <= MAX_COPIED_VALUE_LEN {
        return value.to_owned();
    }
    let mut cut = MAX_COPIED_VALUE_LEN;
    while !value.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut out = String::with_capacity(cut + '…'.len_utf8());
    out.push_str(&value[..cut]);
    out.push('…');
    out
}

/// What the semantic conventions need to know about one messaging operation.
///
/// Only [`system`](Self::system), [`operation_type`](Self::operation_type) and
/// [`operation_name`](Self::operation_name) are required; every other method defaults to
/// "not known" and the matching attribute is then omitted.
///
/// The trait is object safe; the core takes `&dyn MessagingAttributes`.
///
/// # Examples
///
/// ```
/// use otel_messaging::{MessagingAttributes, OperationType};
///
/// struct SendView<'a> { topic: &'a str }
///
/// impl MessagingAttributes for SendView<'_> {
///     fn system(&self) -> &'static str { "kafka" }
///     fn operation_type(&self) -> OperationType { OperationType::Send }
///     fn operation_name(&self) -> &'static str { "send" }
///     fn destination_name(&self) -> Option<&str> { Some(self.topic) }
/// }
/// ```
pub trait MessagingAttributes {
    /// `messaging.system` (Required), e.g. `"kafka"`; see [`crate::semconv::system`].
    fn system(&self) -> &'static str;

    /// `messaging.operation.type`; decides the span kind and which metrics are recorded.
    fn operation_type(&self) -> OperationType;

    /// `messaging.operation.name` (Required), the system's own verb: `"send"`, `"poll"`,
    /// `"publish"`, `"process"`, `"ack"`, `"commit"`. Must be of low cardinality.
    fn operation_name(&self) -> &'static str;

    /// `messaging.destination.name`: topic, queue, exchange or stream name. Also the
    /// `{destination}` of the span name unless the destination is temporary or anonymous, or a
    /// template is given. Defaults to `None`.
    fn destination_name(&self) -> Option<&str> {
        None
    }

    /// `messaging.destination.template`: the low-cardinality template a destination name was
    /// made from (e.g. `/customers/{customerId}`); preferred for the span name. Defaults to
    /// `None`.
    fn destination_template(&self) -> Option<&str> {
        None
    }

    /// `messaging.destination.temporary`: `true` if the destination may not exist after the
    /// messages are processed. Such names never enter span names. Defaults to `false`.
    fn destination_temporary(&self) -> bool {
        false
    }

    /// `messaging.destination.anonymous`: `true` if the destination is unnamed or has a
    /// server-generated name (e.g. RabbitMQ `amq.gen-*`). Such names never enter span names
    /// nor metrics. Defaults to `false`.
    fn destination_anonymous(&self) -> bool {
        false
    }

    /// `messaging.destination.partition.id` (string), e.g. the Kafka partition. Sampling
    /// relevant, so given at span start. Defaults to `None`.
    fn destination_partition_id(&self) -> Option<StringValue> {
        None
    }

    /// `messaging.consumer.group.name` on consumer spans (Kafka group id, Redis stream group).
    /// Defaults to `None`.
    fn consumer_group_name(&self) -> Option<&str> {
        None
    }

    /// `messaging.batch.message_count`: set only for batch APIs (also when `0`); single-message
    /// APIs return `None` (semconv: "SHOULD NOT set on spans that operate with a single
    /// message"). Also the increment of the `sent`/`consumed` counters; `None` counts as 1.
    fn batch_message_count(&self) -> Option<u64> {
        None
    }

    /// `messaging.message.id` of a single message, when known at span start. Defaults to `None`.
    fn message_id(&self) -> Option<&str> {
        None
    }

    /// `messaging.message.conversation_id` (correlation id). Defaults to `None`.
    fn conversation_id(&self) -> Option<&str> {
        None
    }

    /// `messaging.client.id`: the client name of this producer or consumer instance (not set on
    /// create spans). Defaults to `None`.
    fn client_id(&self) -> Option<&str> {
        None
    }

    /// `server.address` and `server.port` of the broker, without reverse DNS. Defaults to `None`.
    fn server(&self) -> Option<(&str, Option<u16>)> {
        None
    }

    /// Size of the message body in bytes, recorded as `messaging.message.body.size` only when the
    /// instrumenter opts in ([`crate::MessagingInstrumenterBuilder::with_body_size`]), and only on
    /// single-message spans. Defaults to `None`.
    fn body_size(&self) -> Option<u64> {
        None
    }

    /// For send operations: whether this span's own context becomes the creation context of the
    /// message(s). `true` (the default) makes send spans `PRODUCER`; batch sends with per-message
    /// create spans return `false`, making the send span `CLIENT`.
    fn send_is_creation_context(&self) -> bool {
        true
    }

    /// When the message was sent (producer timestamp, broker append time), for the queue-wait
    /// measurement of process spans. Defaults to `None` (no queue wait recorded). A send time in
    /// the future (clock skew) records a wait of 0; one more than 30 days back is taken for a
    /// wrong or forged clock and records nothing.
    fn sent_time(&self) -> Option<SystemTime> {
        None
    }

    /// Whether this operation counts the message(s) in `messaging.client.consumed.messages`.
    /// Defaults to `true` for receive operations and for process operations (push delivery);
    /// a process span for a message already counted by a traced receive returns `false`, so each
    /// delivery is counted once (semconv `messaging-metrics.md`).
    fn counts_as_delivery(&self) -> bool {
        matches!(self.operation_type(), OperationType::Receive | OperationType::Process)
    }

    /// Attributes only this messaging system defines (e.g. `messaging.kafka.offset`,
    /// `messaging.rabbitmq.destination.routing_key`), set when the span starts, and only on a
    /// span that records (none of them is sampling-relevant in semconv v1.44; an unsampled span
    /// never asks). Per-message values known later may be set with
    /// [`crate::Operation::set_attributes`]. Defaults to nothing.
    fn system_attributes(&self, _attributes: &mut Vec<KeyValue>) {}
}
