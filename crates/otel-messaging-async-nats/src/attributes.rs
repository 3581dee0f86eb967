//! Views of NATS operations for the semantic conventions, the project's extra keys, and
//! [`error_type`].
//!
//! Source: semconv v1.44 `docs/messaging/messaging-spans.md` (generic messaging spans; there is no
//! NATS-specific document). `messaging.system = nats` is a **custom** value: the v1.44 registry
//! has none for NATS and allows custom values of low cardinality (as `redis` in this workspace).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_nats::{Message, jetstream};
use opentelemetry::KeyValue;
use otel_messaging::{MessagingAttributes, OperationType, semconv};

use crate::config::NatsInstrumentation;

/// `messaging.system` of every NATS span: `nats` (custom value).
pub const SYSTEM: &str = "nats";
/// `messaging.operation.name` of publish and request spans: `publish`.
pub const OPERATION_PUBLISH: &str = "publish";
/// `messaging.operation.name` of process spans: `process`.
pub const OPERATION_PROCESS: &str = "process";
/// `messaging.operation.name` of JetStream fetch (receive) spans: `receive`.
pub const OPERATION_RECEIVE: &str = "receive";

/// A publish (core NATS or JetStream) or a request of one message to `subject` (PRODUCER).
#[derive(Debug)]
pub(crate) struct PublishView<'a> {
    pub(crate) subject: &'a str,
    pub(crate) body_size: u64,
    pub(crate) client: &'a NatsInstrumentation,
}

/// Prefix of the reply inboxes async-nats creates for requests: `_INBOX.`.
const INBOX: &str = "_INBOX.";

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
}

/// JetStream facts of a delivered message (its reply subject holds them).
#[derive(Debug, Default)]
pub(crate) struct JetStreamFacts {
    pub(crate) stream_sequence: Option<String>,
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
        self.client.queue_group()
    }
    fn message_id(&self) -> Option<&str> {
        self.jetstream.stream_sequence.as_deref()
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
    pub(crate) stream_sequence: Option<String>,
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
        self.client.queue_group()
    }
    fn message_id(&self) -> Option<&str> {
        self.stream_sequence.as_deref()
    }
    fn server(&self) -> Option<(&str, Option<u16>)> {
        self.client.server()
    }
}

/// `error.type` of a failed NATS operation: the async-nats error kind, in snake case
/// (`no_responders`, `timed_out`, `max_payload_exceeded`, …), from its `Debug` form; `_OTHER`
/// when it has none.
pub fn error_type(error: &dyn std::fmt::Debug) -> String {
    let debug = format!("{error:?}");
    // async-nats errors debug-print as `Error { kind: TimedOut, source: … }`.
    let kind = debug
        .split("kind: ")
        .nth(1)
        .map(|rest| rest.split(|c: char| !c.is_ascii_alphanumeric() && c != '_').next().unwrap_or_default())
        .filter(|k| !k.is_empty());
    let Some(kind) = kind else { return semconv::ERROR_TYPE_OTHER.to_owned() };
    let mut out = String::with_capacity(kind.len() + 4);
    for (i, c) in kind.chars().enumerate() {
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
        #[derive(Debug)]
        #[allow(dead_code)]
        enum Kind {
            TimedOut,
            NoResponders,
        }
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Error {
            kind: Kind,
            source: Option<String>,
        }
        assert_eq!(error_type(&Error { kind: Kind::NoResponders, source: None }), "no_responders");
        assert_eq!(error_type(&Error { kind: Kind::TimedOut, source: None }), "timed_out");
        assert_eq!(error_type(&"plain"), "_OTHER");
    }
}
