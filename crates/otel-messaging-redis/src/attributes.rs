//! Views of Redis stream, list and pub/sub operations for the semantic conventions, and
//! [`error_type`].
//!
//! Semconv v1.44 defines no messaging system for Redis; this crate uses the custom
//! `messaging.system = redis` (the registry allows custom low-cardinality values) with the generic
//! messaging span definitions (`messaging-spans.md`). Destination = stream, list or channel name.

use std::{
    borrow::Cow,
    time::{Duration, SystemTime, UNIX_EPOCH},
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

use crate::config::RedisInstrumentation;

/// `messaging.system` of every span of this crate: `redis` (custom value, documented).
pub(crate) const SYSTEM: &str = semconv::system::REDIS;

/// One Redis messaging operation.
#[derive(Debug)]
pub(crate) struct RedisView<'a> {
    pub(crate) operation: OperationType,
    pub(crate) name: &'static str,
    pub(crate) destination: Option<&'a str>,
    /// The `PSUBSCRIBE` pattern a pub/sub message matched: `messaging.destination.template`.
    pub(crate) template: Option<&'a str>,
    pub(crate) group: Option<&'a str>,
    pub(crate) message_id: Option<&'a str>,
    pub(crate) batch: Option<u64>,
    pub(crate) body_size: Option<u64>,
    pub(crate) sent: Option<SystemTime>,
    pub(crate) delivery_count: Option<u64>,
    pub(crate) counted: bool,
    pub(crate) client: &'a RedisInstrumentation,
}

impl<'a> RedisView<'a> {
    pub(crate) fn new(
        operation: OperationType,
        name: &'static str,
        destination: Option<&'a str>,
        client: &'a RedisInstrumentation,
    ) -> Self {
        RedisView {
            operation,
            name,
            destination,
            template: None,
            group: None,
            message_id: None,
            batch: None,
            body_size: None,
            sent: None,
            delivery_count: None,
            counted: false,
            client,
        }
    }
}

impl MessagingAttributes for RedisView<'_> {
    fn system(&self) -> &'static str {
        SYSTEM
    }
    fn operation_type(&self) -> OperationType {
        self.operation
    }
    fn operation_name(&self) -> &'static str {
        self.name
    }
    fn destination_name(&self) -> Option<&str> {
        self.destination
    }
    fn destination_template(&self) -> Option<&str> {
        self.template
    }
    fn consumer_group_name(&self) -> Option<&str> {
        self.group
    }
    fn message_id(&self) -> Option<&str> {
        self.message_id
    }
    fn batch_message_count(&self) -> Option<u64> {
        self.batch
    }
    fn server(&self) -> Option<(&str, Option<u16>)> {
        self.client.server()
    }
    fn body_size(&self) -> Option<u64> {
        self.body_size
    }
    fn sent_time(&self) -> Option<SystemTime> {
        self.sent
    }
    fn counts_as_delivery(&self) -> bool {
        matches!(self.operation, OperationType::Receive | OperationType::Process) && !self.counted
    }
    fn system_attributes(&self, attributes: &mut Vec<KeyValue>) {
        if let Some(count) = self.delivery_count {
            attributes.push(KeyValue::new(
                semconv::OTEL_MESSAGING_MESSAGE_DELIVERY_COUNT,
                i64::try_from(count).unwrap_or(i64::MAX),
            ));
        }
    }
}

/// `messaging.message.id` of an entry known after the operation (the id `XADD` returned).
pub(crate) fn message_id_attribute(id: &str) -> KeyValue {
    KeyValue::new(semconv::MESSAGING_MESSAGE_ID, id.to_owned())
}

/// `messaging.message.id` link attribute of one entry in a batch.
pub(crate) fn entry_link_attributes(id: &str) -> Vec<KeyValue> {
    vec![KeyValue::new(semconv::MESSAGING_MESSAGE_ID, id.to_owned())]
}

/// The send time encoded in a stream entry id (`<milliseconds>-<sequence>`).
pub(crate) fn entry_time(id: &str) -> Option<SystemTime> {
    let millis: u64 = id.split('-').next()?.parse().ok()?;
    UNIX_EPOCH.checked_add(Duration::from_millis(millis))
}

/// The `error.type` of a redis error: the server's error code when it sent one (`NOGROUP`,
/// `WRONGTYPE`, `BUSYGROUP`), otherwise redis-rs's error kind name (`Io`, `Parse`, ...).
pub(crate) fn error_type(error: &redis::RedisError) -> Cow<'static, str> {
    if let Some(code) = error.code() {
        return Cow::Owned(code.to_owned());
    }
    let kind = format!("{:?}", error.kind());
    Cow::Owned(kind.split(['(', ' ', '{']).next().unwrap_or(semconv::ERROR_TYPE_OTHER).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_carry_the_send_time() {
        assert_eq!(
            entry_time("1700000000123-0"),
            UNIX_EPOCH.checked_add(Duration::from_millis(1_700_000_000_123))
        );
        assert_eq!(entry_time("garbage"), None);
    }
}
