//! Views of NATS operations for the semantic conventions, the project's extra keys, and
//! [`error_type`].
//!
//! Source: semconv v1.44 `docs/messaging/messaging-spans.md` (generic messaging spans; there is no
//! NATS-specific document). `messaging.system = nats` is a **custom** value: the v1.44 registry
//! has none for NATS and allows custom values of low cardinality (as `redis` in this workspace).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::{Message, jetstream};
use opentelemetry::KeyValue;
use otel_messaging::{MessagingAttributes, OperationType};

/// The semconv names this crate uses: the project's own from the core's `semconv` module, the
/// specification's from `opentelemetry-semantic-conventions` (which the core does not re-export:
/// its semver is not ours).
mod semconv {
    pub(crate) use opentelemetry_semantic_conventions::attribute::*;
    pub(crate) use otel_messaging::semconv::*;
}

use crate::config::NatsInstrumentation;

/// `messaging.system` of every NATS span: `nats` (custom value).
pub(crate) const SYSTEM: &str = "nats";
/// `messaging.operation.name` of publish and request spans: `publish`.
pub(crate) const OPERATION_PUBLISH: &str = "publish";
/// `messaging.operation.name` of process spans: `process`.
pub(crate) const OPERATION_PROCESS: &str = "process";
/// `messaging.operation.name` of JetStream fetch (receive) spans: `receive`.
pub(crate) const OPERATION_RECEIVE: &str = "receive";

/// A publish (core NATS or JetStream) or a request of one message to `subject` (PRODUCER).
#[derive(Debug)]
pub(crate) struct PublishView<'a> {
    pub(crate) subject: &'a str,
    pub(crate) body_size: u64,
    pub(crate) client: &'a NatsInstrumentation,
    /// The publisher's `Nats-Msg-Id` header (JetStream's deduplication id), if set.
    pub(crate) msg_id: Option<&'a str>,
}

/// The header JetStream deduplicates by: the publisher's id for the message.
pub(crate) const NATS_MSG_ID: &str = "Nats-Msg-Id";

/// The `Nats-Msg-Id` of `headers`, if set and not empty.
pub(crate) fn msg_id(headers: &async_nats::HeaderMap) -> Option<&str> {
    headers.get(NATS_MSG_ID).map(|v| v.as_str()).filter(|id| !id.is_empty())
}

/// Prefix of the reply inboxes async-nats creates for requests: `_INBOX.`.
const INBOX: &str = "_INBOX.";

/// `messaging.message.id` = `id` (a JetStream stream sequence: on a publish ack, on a batch link).
pub(crate) fn message_id(id: String) -> KeyValue {
    KeyValue::new(semconv::MESSAGING_MESSAGE_ID, id)
}

/// A reply inbox is a temporary destination (semconv: `messaging.destination.temporary`): not in
/// span names or metrics, as its name is unique per client or request.
fn is_inbox(subject: &str) -> bool {
    subject.starts_with(INBOX)
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
        Some(self.subject)
    }
    fn destination_temporary(&self) -> bool {
        is_inbox(self.subject)
    }
    fn server(&self) -> Option<(&str, Option<u16>)> {
        self.client.server()
    }
    fn body_size(&self) -> Option<u64> {
        Some(self.body_size)
    }
    fn message_id(&self) -> Option<&str> {
        self.msg_id
    }
}

/// JetStream facts of a delivered message (its reply subject holds them).
#[derive(Debug, Default)]
pub(crate) struct JetStreamFacts {
    pub(crate) stream_sequence: Option<String>,
    /// The JetStream consumer that delivered it: its consumer group, as on the fetch's receive
    /// span (semconv review: the group was the queue group on process spans).
    pub(crate) consumer: Option<String>,
    /// Its `Nats-Msg-Id` header, which names it before the stream sequence does (semconv review).
    pub(crate) msg_id: Option<String>,
    pub(crate) delivered: Option<i64>,
    pub(crate) published: Option<SystemTime>,
    /// `stream:sequence:delivered`: one delivery of one stored message.
    pub(crate) delivery_key: Option<String>,
}

impl JetStreamFacts {
    pub(crate) fn of(message: &jetstream::Message) -> Self {
        let Ok(info) = message.info() else { return Self::default() };
        let nanos = info.published.unix_timestamp_nanos();
        let published =
            u64::try_from(nanos).ok().and_then(|n| UNIX_EPOCH.checked_add(Duration::from_nanos(n)));
        JetStreamFacts {
            stream_sequence: Some(info.stream_sequence.to_string()),
            consumer: Some(info.consumer.to_owned()),
            msg_id: message.headers.as_ref().and_then(msg_id).map(str::to_owned),
            delivered: Some(info.delivered),
            published,
            delivery_key: Some(format!("{}:{}:{}", info.stream, info.stream_sequence, info.delivered)),
        }
    }
}

/// The processing of one delivered message (`process {subject}`, CONSUMER).
#[derive(Debug)]
pub(crate) struct ProcessView<'a> {
    pub(crate) message: &'a Message,
    pub(crate) jetstream: JetStreamFacts,
    pub(crate) client: &'a NatsInstrumentation,
    /// Whether a traced fetch already counted this delivery.
    pub(crate) fetched: bool,
}

impl MessagingAttributes for ProcessView<'_> {
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
        Some(self.message.subject.as_str())
    }
    fn destination_temporary(&self) -> bool {
        is_inbox(self.message.subject.as_str())
    }
    fn consumer_group_name(&self) -> Option<&str> {
        self.jetstream.consumer.as_deref().or_else(|| self.client.queue_group())
    }
    fn message_id(&self) -> Option<&str> {
        self.jetstream.msg_id.as_deref().or(self.jetstream.stream_sequence.as_deref())
    }
    fn server(&self) -> Option<(&str, Option<u16>)> {
        self.client.server()
    }
    fn body_size(&self) -> Option<u64> {
        Some(self.message.payload.len() as u64)
    }
    fn sent_time(&self) -> Option<SystemTime> {
        self.jetstream.published
    }
    fn counts_as_delivery(&self) -> bool {
        !self.fetched
    }
    fn system_attributes(&self, attributes: &mut Vec<KeyValue>) {
        if let Some(delivered) = self.jetstream.delivered {
            attributes.push(KeyValue::new(semconv::OTEL_MESSAGING_MESSAGE_DELIVERY_COUNT, delivered));
        }
    }
}

/// A traced JetStream fetch (`receive {stream}`, CLIENT): the batch's size, the consumer (durable
/// name) as the group.
#[derive(Debug)]
pub(crate) struct ReceiveView<'a> {
    pub(crate) stream: &'a str,
    pub(crate) consumer: Option<&'a str>,
    pub(crate) messages: Option<u64>,
    pub(crate) client: &'a NatsInstrumentation,
}

impl MessagingAttributes for ReceiveView<'_> {
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
        Some(self.stream)
    }
    fn consumer_group_name(&self) -> Option<&str> {
        self.consumer
    }
    fn batch_message_count(&self) -> Option<u64> {
        self.messages
    }
    fn server(&self) -> Option<(&str, Option<u16>)> {
        self.client.server()
    }
}

/// An `ack` / `nak` / `term` of one JetStream message (`{operation} {subject}`, CLIENT).
#[derive(Debug)]
pub(crate) struct SettleView<'a> {
    pub(crate) name: &'static str,
    pub(crate) subject: &'a str,
    /// Its message's JetStream facts: consumer, `Nats-Msg-Id`, stream sequence.
    pub(crate) jetstream: JetStreamFacts,
    pub(crate) client: &'a NatsInstrumentation,
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
        Some(self.subject)
    }
    fn consumer_group_name(&self) -> Option<&str> {
        self.jetstream.consumer.as_deref().or_else(|| self.client.queue_group())
    }
    fn message_id(&self) -> Option<&str> {
        self.jetstream.msg_id.as_deref().or(self.jetstream.stream_sequence.as_deref())
    }
    fn server(&self) -> Option<(&str, Option<u16>)> {
        self.client.server()
    }
}

/// An async-nats error whose `error.type` the instrumentation can name: the typed errors
/// (`async_nats::error::Error<Kind>`: publish, request, fetch, JetStream publish, …) by their
/// kind, the boxed [`async_nats::Error`] by what it holds. Sealed: implemented for those types.
pub(crate) trait NatsError: crate::sealed::Sealed<crate::sealed::NatsError> {
    /// `error.type`: the error kind in snake case (`no_responders`, `timed_out`,
    /// `max_payload_exceeded`, …); `_OTHER` when there is none.
    fn error_type(&self) -> String;
}

impl<K> crate::sealed::Sealed<crate::sealed::NatsError> for async_nats::error::Error<K> where
    K: Clone + std::fmt::Debug + std::fmt::Display + PartialEq
{
}

impl<K> NatsError for async_nats::error::Error<K>
where
    K: Clone + std::fmt::Debug + std::fmt::Display + PartialEq,
{
    fn error_type(&self) -> String {
        kind_name(&self.kind())
    }
}

impl crate::sealed::Sealed<crate::sealed::NatsError> for async_nats::Error {}

impl NatsError for async_nats::Error {
    /// The kind of the typed error or `std::io::Error` it holds (what async-nats boxes on the
    /// acknowledgement path), else `_OTHER`.
    fn error_type(&self) -> String {
        use async_nats::{client, jetstream};
        let error: &(dyn std::error::Error + 'static) = self.as_ref();
        if let Some(e) = error.downcast_ref::<std::io::Error>() {
            return kind_name(&e.kind());
        }
        if let Some(e) = error.downcast_ref::<client::PublishError>() {
            return e.error_type();
        }
        if let Some(e) = error.downcast_ref::<client::RequestError>() {
            return e.error_type();
        }
        if let Some(e) = error.downcast_ref::<jetstream::context::PublishError>() {
            return e.error_type();
        }
        if let Some(e) = error.downcast_ref::<jetstream::context::RequestError>() {
            return e.error_type();
        }
        semconv::ERROR_TYPE_OTHER.to_owned()
    }
}

/// `error.type` of a failed NATS operation (see [`NatsError`]).
pub(crate) fn error_type<E: NatsError + ?Sized>(error: &E) -> String {
    error.error_type()
}

/// A kind enum's variant name (its derived `Debug` form, e.g. `NoResponders`) in snake case
/// (`no_responders`); `_OTHER` when it is not a plain identifier (a kind with fields).
fn kind_name(kind: &dyn std::fmt::Debug) -> String {
    let name = format!("{kind:?}");
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return semconv::ERROR_TYPE_OTHER.to_owned();
    }
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_types_are_the_kind_in_snake_case() {
        use async_nats::client::{PublishError, PublishErrorKind, RequestError, RequestErrorKind};
        assert_eq!(error_type(&RequestError::new(RequestErrorKind::NoResponders)), "no_responders");
        assert_eq!(error_type(&RequestError::new(RequestErrorKind::TimedOut)), "timed_out");
        assert_eq!(
            error_type(&PublishError::new(PublishErrorKind::MaxPayloadExceeded)),
            "max_payload_exceeded"
        );
        let boxed: async_nats::Error = Box::new(RequestError::new(RequestErrorKind::TimedOut));
        assert_eq!(error_type(&boxed), "timed_out");
        let io: async_nats::Error = Box::new(std::io::Error::other("x"));
        assert_eq!(error_type(&io), "other");
        let plain: async_nats::Error = "plain".into();
        assert_eq!(error_type(&plain), "_OTHER");
        assert_eq!(kind_name(&Some(1)), "_OTHER");
    }
}
