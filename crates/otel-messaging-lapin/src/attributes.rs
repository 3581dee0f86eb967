//! Views of RabbitMQ operations for the semantic conventions, RabbitMQ destination naming, the
//! project's extra keys, and [`error_type`].
//!
//! Source: semconv v1.44 `docs/messaging/rabbitmq.md` (`model/messaging/rabbitmq.yaml`).

use std::{
    borrow::Cow,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use lapin::{
    BasicProperties, ErrorKind,
    message::Delivery,
    types::{AMQPValue, FieldTable},
};
use opentelemetry::KeyValue;
use otel_messaging::{MessagingAttributes, OperationType};

/// The semconv names this crate uses: the project's own from the core's `semconv` module, the
/// specification's from `opentelemetry-semantic-conventions` (which the core does not re-export:
/// its semver is not ours).
mod semconv {
    pub(crate) use opentelemetry_semantic_conventions::attribute::*;
    pub(crate) use otel_messaging::semconv::*;
}

use crate::config::AmqpInstrumentation;

/// `messaging.system` of every RabbitMQ span: `rabbitmq`.
pub(crate) const SYSTEM: &str = semconv::system::RABBITMQ;
/// `messaging.operation.name` of publish spans: `publish`.
pub(crate) const OPERATION_PUBLISH: &str = "publish";
/// `messaging.operation.name` of process spans: `process`.
pub(crate) const OPERATION_PROCESS: &str = "process";
/// `messaging.operation.name` of `basic_get` receive spans: `receive`.
pub(crate) const OPERATION_RECEIVE: &str = "receive";

/// Header carrying the publish time in milliseconds since the Unix epoch (AMQP long-long int),
/// added by the traced publish when the message has no `timestamp` property.
pub(crate) const SENT_TIME_HEADER: &str = "x-otel-sent-ms";

/// Project namespace (not semconv): `true` on process/receive spans of a redelivered message
/// (AMQP `redelivered` flag); absent otherwise.
pub(crate) const OTEL_MESSAGING_RABBITMQ_REDELIVERED: &str = "otel_messaging.rabbitmq.redelivered";

/// Project namespace (not semconv): from the newest entry of the `x-death` header RabbitMQ adds
/// when it dead-letters a message — how many times the message died there (`count`).
pub(crate) const OTEL_MESSAGING_RABBITMQ_DEATH_COUNT: &str = "otel_messaging.rabbitmq.death.count";
/// Project namespace (not semconv): why the message was dead-lettered (`x-death` `reason`:
/// `rejected`, `expired`, `maxlen` or `delivery_limit`).
pub(crate) const OTEL_MESSAGING_RABBITMQ_DEATH_REASON: &str = "otel_messaging.rabbitmq.death.reason";
/// Project namespace (not semconv): the queue the message was dead-lettered from (`x-death`
/// `queue`).
pub(crate) const OTEL_MESSAGING_RABBITMQ_DEATH_QUEUE: &str = "otel_messaging.rabbitmq.death.queue";

/// An integer header value of any AMQP integer type.
fn integer(value: &AMQPValue) -> Option<i64> {
    match value {
        AMQPValue::ShortShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortInt(v) => Some(i64::from(*v)),
        AMQPValue::ShortUInt(v) => Some(i64::from(*v)),
        AMQPValue::LongInt(v) => Some(i64::from(*v)),
        AMQPValue::LongUInt(v) => Some(i64::from(*v)),
        AMQPValue::LongLongInt(v) => Some(*v),
        _ => None,
    }
}

/// `otel_messaging.message.delivery_count` and the `x-death` facts of a delivery: RabbitMQ's
/// `x-delivery-count` (quorum queues: deliveries before this one) + 1, or 1 for a delivery not
/// flagged `redelivered`; nothing when a redelivered message carries no count (classic queues).
fn redelivery(attributes: &mut Vec<KeyValue>, delivery: &Delivery) {
    let headers = delivery.properties.headers().as_ref().map(|h| h.inner());
    let previous = headers.and_then(|h| h.get("x-delivery-count")).and_then(integer).filter(|n| *n >= 0);
    match previous {
        Some(previous) => attributes
            .push(KeyValue::new(semconv::OTEL_MESSAGING_MESSAGE_DELIVERY_COUNT, previous.saturating_add(1))),
        None if !delivery.redelivered => {
            attributes.push(KeyValue::new(semconv::OTEL_MESSAGING_MESSAGE_DELIVERY_COUNT, 1_i64));
        }
        None => {}
    }
    let newest_death = headers.and_then(|h| h.get("x-death")).and_then(|deaths| match deaths {
        AMQPValue::FieldArray(deaths) => deaths.as_slice().first().and_then(|d| match d {
            AMQPValue::FieldTable(death) => Some(death.inner()),
            _ => None,
        }),
        _ => None,
    });
    if let Some(death) = newest_death {
        if let Some(count) = death.get("count").and_then(integer) {
            attributes.push(KeyValue::new(OTEL_MESSAGING_RABBITMQ_DEATH_COUNT, count));
        }
        if let Some(reason) = death.get("reason").and_then(crate::carrier::as_str) {
            attributes.push(KeyValue::new(
                OTEL_MESSAGING_RABBITMQ_DEATH_REASON,
                otel_messaging::__private::bounded_value(reason),
            ));
        }
        if let Some(queue) = death.get("queue").and_then(crate::carrier::as_str) {
            attributes.push(KeyValue::new(
                OTEL_MESSAGING_RABBITMQ_DEATH_QUEUE,
                otel_messaging::__private::bounded_value(queue),
            ));
        }
    }
}

/// Prefix of server-named (anonymous) queues: `amq.gen-`.
const SERVER_NAMED: &str = "amq.gen-";

/// Prefix of RabbitMQ's Direct Reply-to pseudo-queue and of the per-request reply routing keys
/// it hands out (`amq.rabbitmq.reply-to.g1h2AA…`).
const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// Whether `name` is a server-named queue or a Direct Reply-to name: unique per client or
/// request, so anonymous (not in span names or metrics; reliability review M4).
pub(crate) fn is_server_named(name: &str) -> bool {
    name.starts_with(SERVER_NAMED) || name.starts_with(DIRECT_REPLY_TO)
}

/// The producer destination: `{exchange}:{routing key}`, the non-empty one alone, or
/// `amq.default` (semconv v1.44 rabbitmq.md, send span note).
pub(crate) fn publish_destination(exchange: &str, routing_key: &str) -> Cow<'static, str> {
    match (exchange.is_empty(), routing_key.is_empty()) {
        (false, false) => Cow::Owned(format!("{exchange}:{routing_key}")),
        (false, true) => Cow::Owned(exchange.to_owned()),
        (true, false) => Cow::Owned(routing_key.to_owned()),
        (true, true) => Cow::Borrowed("amq.default"),
    }
}

/// The consumer destination: `{exchange}:{routing key}:{queue}` with empty parts omitted and the
/// routing key given once when it equals the queue (semconv v1.44 rabbitmq.md, consumer note).
pub(crate) fn consumer_destination(exchange: &str, routing_key: &str, queue: Option<&str>) -> String {
    let queue = queue.filter(|q| !q.is_empty() && *q != routing_key);
    [Some(exchange), Some(routing_key), queue]
        .into_iter()
        .flatten()
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(":")
}

/// The message's send time: the `timestamp` property (seconds), else the [`SENT_TIME_HEADER`]
/// (milliseconds as a long-long integer, as the traced publish writes it; seconds when it is an
/// AMQP timestamp value).
pub(crate) fn sent_time(properties: &BasicProperties) -> Option<SystemTime> {
    if let Some(seconds) = properties.timestamp() {
        return UNIX_EPOCH.checked_add(Duration::from_secs(*seconds));
    }
    match properties.headers().as_ref()?.inner().get(SENT_TIME_HEADER)? {
        AMQPValue::LongLongInt(millis) => {
            UNIX_EPOCH.checked_add(Duration::from_millis(u64::try_from(*millis).ok()?))
        }
        // An AMQP timestamp is seconds since the epoch (AMQP 0-9-1 §4.2.5.4), whatever the header's name.
        AMQPValue::Timestamp(seconds) => UNIX_EPOCH.checked_add(Duration::from_secs(*seconds)),
        _ => None,
    }
}

/// Writes [`SENT_TIME_HEADER`] = now (ms) into `headers`.
pub(crate) fn set_sent_time(headers: &mut FieldTable) {
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    headers
        .insert(SENT_TIME_HEADER.into(), AMQPValue::LongLongInt(i64::try_from(millis).unwrap_or(i64::MAX)));
}

/// `network.peer.address` / `network.peer.port` (Recommended on RabbitMQ spans), when known.
fn network_peer(attributes: &mut Vec<KeyValue>, client: &AmqpInstrumentation) {
    if let Some((address, port)) = client.network_peer() {
        attributes.push(KeyValue::new(semconv::NETWORK_PEER_ADDRESS, address.to_owned()));
        if let Some(port) = port {
            attributes.push(KeyValue::new(semconv::NETWORK_PEER_PORT, i64::from(port)));
        }
    }
}

fn common(attributes: &mut Vec<KeyValue>, routing_key: &str, properties: &BasicProperties) {
    if !routing_key.is_empty() {
        attributes
            .push(KeyValue::new(semconv::MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY, routing_key.to_owned()));
    }
    if let Some(id) = properties.message_id() {
        attributes.push(KeyValue::new(semconv::MESSAGING_MESSAGE_ID, id.as_str().to_owned()));
    }
    if let Some(id) = properties.correlation_id() {
        attributes.push(KeyValue::new(semconv::MESSAGING_MESSAGE_CONVERSATION_ID, id.as_str().to_owned()));
    }
}

/// A `basic_publish` (`publish {destination}`, PRODUCER).
#[derive(Debug)]
pub(crate) struct PublishView<'a> {
    pub(crate) destination: Cow<'static, str>,
    pub(crate) routing_key: &'a str,
    pub(crate) anonymous: bool,
    pub(crate) properties: &'a BasicProperties,
    pub(crate) body_size: u64,
    pub(crate) client: &'a AmqpInstrumentation,
}

impl<'a> PublishView<'a> {
    pub(crate) fn new(
        exchange: &str,
        routing_key: &'a str,
        properties: &'a BasicProperties,
        body_size: usize,
        client: &'a AmqpInstrumentation,
    ) -> Self {
        PublishView {
            destination: publish_destination(exchange, routing_key),
            routing_key,
            anonymous: exchange.is_empty() && is_server_named(routing_key),
            properties,
            body_size: body_size as u64,
            client,
        }
    }
}

impl MessagingAttributes for PublishView<'_> {
    fn system(&self) -> &'static str {
        SYSTEM
    }
    fn operation_type(&self) -> OperationType {
        OperationType::Send
    }
    fn operation_name(&self) -> &'static str {
        OPERATION_PUBLISH
    }
    fn destination_name(&self) -> Option<&str> {
        Some(&self.destination)
    }
    fn destination_anonymous(&self) -> bool {
        self.anonymous
    }
    fn server(&self) -> Option<(&str, Option<u16>)> {
        self.client.server()
    }
    fn body_size(&self) -> Option<u64> {
        Some(self.body_size)
    }
    fn system_attributes(&self, attributes: &mut Vec<KeyValue>) {
        common(attributes, self.routing_key, self.properties);
        network_peer(attributes, self.client);
    }
}

/// A delivery handed to the application: `process {destination}` (CONSUMER) for pushed
/// deliveries, `receive {destination}` (CLIENT) for `basic_get`.
#[derive(Debug)]
pub(crate) struct DeliveryView<'a> {
    pub(crate) operation: OperationType,
    pub(crate) delivery: &'a Delivery,
    pub(crate) destination: String,
    pub(crate) anonymous: bool,
    pub(crate) client: &'a AmqpInstrumentation,
    /// Counted already by the traced `basic_get` that received it.
    pub(crate) counted: bool,
}

impl<'a> DeliveryView<'a> {
    pub(crate) fn new(
        operation: OperationType,
        delivery: &'a Delivery,
        queue: Option<&str>,
        client: &'a AmqpInstrumentation,
    ) -> Self {
        let routing_key = delivery.routing_key.as_str();
        DeliveryView {
            operation,
            delivery,
            destination: consumer_destination(delivery.exchange.as_str(), routing_key, queue),
            anonymous: queue.is_some_and(is_server_named) || is_server_named(routing_key),
            client,
            counted: false,
        }
    }
}

impl MessagingAttributes for DeliveryView<'_> {
    fn system(&self) -> &'static str {
        SYSTEM
    }
    fn operation_type(&self) -> OperationType {
        self.operation
    }
    fn operation_name(&self) -> &'static str {
        if self.operation == OperationType::Receive { OPERATION_RECEIVE } else { OPERATION_PROCESS }
    }
    fn destination_name(&self) -> Option<&str> {
        Some(&self.destination)
    }
    fn destination_anonymous(&self) -> bool {
        self.anonymous
    }
    fn server(&self) -> Option<(&str, Option<u16>)> {
        self.client.server()
    }
    fn body_size(&self) -> Option<u64> {
        Some(self.delivery.data.len() as u64)
    }
    fn sent_time(&self) -> Option<SystemTime> {
        sent_time(&self.delivery.properties)
    }
    fn counts_as_delivery(&self) -> bool {
        !self.counted
    }
    fn system_attributes(&self, attributes: &mut Vec<KeyValue>) {
        common(attributes, self.delivery.routing_key.as_str(), &self.delivery.properties);
        if self.operation == OperationType::Receive {
            // Process spans do not take `network.peer.*` (semconv: they contact no broker).
            network_peer(attributes, self.client);
        }
        attributes.push(KeyValue::new(
            semconv::MESSAGING_RABBITMQ_MESSAGE_DELIVERY_TAG,
            i64::try_from(self.delivery.delivery_tag).unwrap_or(i64::MAX),
        ));
        if self.delivery.redelivered {
            attributes.push(KeyValue::new(OTEL_MESSAGING_RABBITMQ_REDELIVERED, true));
        }
        redelivery(attributes, self.delivery);
    }
}

/// An `ack`/`nack`/`reject` of one delivery (`{ack|nack|reject} {destination}`, CLIENT).
#[derive(Debug)]
pub(crate) struct SettleView<'a> {
    pub(crate) name: &'static str,
    pub(crate) destination: String,
    pub(crate) anonymous: bool,
    pub(crate) delivery_tag: u64,
    pub(crate) client: &'a AmqpInstrumentation,
}

impl MessagingAttributes for SettleView<'_> {
    fn system(&self) -> &'static str {
        SYSTEM
    }
    fn operation_type(&self) -> OperationType {
        OperationType::Settle
    }
    fn operation_name(&self) -> &'static str {
        self.name
    }
    fn destination_name(&self) -> Option<&str> {
        Some(&self.destination)
    }
    fn destination_anonymous(&self) -> bool {
        self.anonymous
    }
    fn server(&self) -> Option<(&str, Option<u16>)> {
        self.client.server()
    }
    fn counts_as_delivery(&self) -> bool {
        false
    }
    fn system_attributes(&self, attributes: &mut Vec<KeyValue>) {
        network_peer(attributes, self.client);
        attributes.push(KeyValue::new(
            semconv::MESSAGING_RABBITMQ_MESSAGE_DELIVERY_TAG,
            i64::try_from(self.delivery_tag).unwrap_or(i64::MAX),
        ));
    }
}

/// The `error.type` of a lapin error: the AMQP reply code name in lower case for broker errors
/// (`not-found`, `precondition-failed`, `connection-forced`), otherwise lapin's error kind name
/// (`IOError`, `InvalidChannelState`, ...). Low cardinality; never the message.
pub(crate) fn error_type(error: &lapin::Error) -> Cow<'static, str> {
    match error.kind() {
        ErrorKind::ProtocolError(e) => Cow::Owned(match e.kind() {
            lapin::protocol::AMQPErrorKind::Soft(s) => s.to_string().to_ascii_lowercase(),
            lapin::protocol::AMQPErrorKind::Hard(h) => h.to_string().to_ascii_lowercase(),
        }),
        kind => {
            let debug = format!("{kind:?}");
            let name = debug.split(['(', ' ', '{']).next().unwrap_or(semconv::ERROR_TYPE_OTHER);
            Cow::Owned(name.to_owned())
        }
    }
}

/// `error.type` of a publish the broker negatively confirmed: `nack`.
pub(crate) const ERROR_TYPE_NACK: &str = "nack";

#[cfg(test)]
mod tests {
    use super::*;

    /// Server-named queues and Direct Reply-to names are anonymous (reliability review M4).
    #[test]
    fn temporary_names_are_recognised() {
        assert!(is_server_named("amq.gen-JzTY20BRgKO-HjmUJj0wLg"));
        assert!(is_server_named("amq.rabbitmq.reply-to"));
        assert!(is_server_named("amq.rabbitmq.reply-to.g1h2AA5yZXBseUAxNzIuMTcuMC4y.ao5P1A7Oa8Y"));
        assert!(!is_server_named("orders"));
        assert!(!is_server_named("amq.direct"));
    }

    #[test]
    fn publish_destinations() {
        assert_eq!(publish_destination("direct_logs", "warning"), "direct_logs:warning");
        assert_eq!(publish_destination("logs", ""), "logs");
        assert_eq!(publish_destination("", "orders"), "orders");
        assert_eq!(publish_destination("", ""), "amq.default");
    }

    #[test]
    fn consumer_destinations() {
        assert_eq!(
            consumer_destination("direct_logs", "warning", Some("my_queue")),
            "direct_logs:warning:my_queue"
        );
        assert_eq!(consumer_destination("direct_logs", "warning", Some("warning")), "direct_logs:warning");
        assert_eq!(consumer_destination("", "orders", Some("orders")), "orders");
        assert_eq!(consumer_destination("logs", "", Some("q1")), "logs:q1");
        assert_eq!(consumer_destination("logs", "", None), "logs");
    }

    /// An AMQP timestamp value is seconds since the epoch, also in the sent-time header
    /// (review finding L9: it was read as milliseconds).
    #[test]
    fn sent_time_header_reads_amqp_timestamps_as_seconds() {
        let with_header = |value: AMQPValue| {
            let mut headers = FieldTable::default();
            headers.insert(SENT_TIME_HEADER.into(), value);
            BasicProperties::default().with_headers(headers)
        };
        let at = |secs: u64| UNIX_EPOCH.checked_add(Duration::from_secs(secs));
        assert_eq!(sent_time(&with_header(AMQPValue::Timestamp(1_700_000_000))), at(1_700_000_000));
        assert_eq!(sent_time(&with_header(AMQPValue::LongLongInt(1_700_000_000_000))), at(1_700_000_000));
        assert_eq!(sent_time(&BasicProperties::default().with_timestamp(1_700_000_000)), at(1_700_000_000));
        assert_eq!(sent_time(&with_header(AMQPValue::LongLongInt(-1))), None);
    }
}

/// A `basic_get` that failed (`receive {queue}`, CLIENT): only the queue is known.
#[derive(Debug)]
pub(crate) struct FailedGetView<'a> {
    pub(crate) queue: &'a str,
    pub(crate) client: &'a AmqpInstrumentation,
}

impl MessagingAttributes for FailedGetView<'_> {
    fn system(&self) -> &'static str {
        SYSTEM
    }
    fn operation_type(&self) -> OperationType {
        OperationType::Receive
    }
    fn operation_name(&self) -> &'static str {
        OPERATION_RECEIVE
    }
    fn destination_name(&self) -> Option<&str> {
        Some(self.queue)
    }
    fn destination_anonymous(&self) -> bool {
        is_server_named(self.queue)
    }
    fn server(&self) -> Option<(&str, Option<u16>)> {
        self.client.server()
    }
    fn system_attributes(&self, attributes: &mut Vec<KeyValue>) {
        network_peer(attributes, self.client);
    }
}
