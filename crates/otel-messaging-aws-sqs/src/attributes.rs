//! Views of SQS operations for the semantic conventions (v1.44 `docs/messaging/sqs.md`), the
//! queue-URL parsing, the project's extra key, and [`error_type`].

use std::{
    borrow::Cow,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use aws_sdk_sqs::{
    error::ProvideErrorMetadata,
    types::{Message, MessageSystemAttributeName},
};
use opentelemetry::KeyValue;
use otel_messaging::{MessagingAttributes, OperationType};

use crate::config::Removed;

/// The semconv names this crate uses: the project's own from the core's `semconv` module, the
/// specification's from `opentelemetry-semantic-conventions` (which the core does not re-export:
/// its semver is not ours).
mod semconv {
    pub(crate) use opentelemetry_semantic_conventions::attribute::*;
    pub(crate) use otel_messaging::semconv::*;
}

/// `messaging.system` of every SQS span: `aws_sqs`.
pub(crate) const SYSTEM: &str = semconv::system::AWS_SQS;

/// The parts of a queue URL (`https://sqs.us-east-1.amazonaws.com/123456789012/orders`).
#[derive(Debug, Clone, Default)]
pub(crate) struct QueueUrl<'a> {
    pub(crate) url: &'a str,
    pub(crate) name: Option<&'a str>,
    pub(crate) host: Option<&'a str>,
    pub(crate) port: Option<u16>,
}

impl<'a> QueueUrl<'a> {
    pub(crate) fn parse(url: &'a str) -> Self {
        let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|c| c.is_ascii_digit()) => (h, p.parse().ok()),
            _ => (authority, None),
        };
        let port = port.or(match scheme {
            "https" => Some(443),
            "http" => Some(80),
            _ => None,
        });
        let name = path.trim_end_matches('/').rsplit('/').next().filter(|n| !n.is_empty());
        QueueUrl { url, name, host: (!host.is_empty()).then_some(host), port }
    }
}

/// One SQS operation.
#[derive(Debug)]
pub(crate) struct SqsView<'a> {
    pub(crate) operation: OperationType,
    pub(crate) name: &'static str,
    pub(crate) queue: QueueUrl<'a>,
    pub(crate) message_id: Option<&'a str>,
    pub(crate) batch: Option<u64>,
    pub(crate) body_size: Option<u64>,
    pub(crate) own_context: bool,
    pub(crate) received: Option<Received<'a>>,
}

/// The system attributes of a received message a process span reads, as received (the message's
/// own, else those its traced receive removed from it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Received<'a> {
    /// `SentTimestamp`: milliseconds since the epoch.
    sent_timestamp: Option<&'a str>,
    /// `ApproximateReceiveCount`.
    receive_count: Option<&'a str>,
}

impl<'a> Received<'a> {
    pub(crate) fn new(message: &'a Message, removed: &'a Removed) -> Self {
        Received {
            sent_timestamp: removed.system(message, &MessageSystemAttributeName::SentTimestamp),
            receive_count: removed.system(message, &MessageSystemAttributeName::ApproximateReceiveCount),
        }
    }
}

impl<'a> SqsView<'a> {
    pub(crate) fn new(operation: OperationType, name: &'static str, queue_url: &'a str) -> Self {
        SqsView {
            operation,
            name,
            queue: QueueUrl::parse(queue_url),
            message_id: None,
            batch: None,
            body_size: None,
            own_context: true,
            received: None,
        }
    }
}

impl MessagingAttributes for SqsView<'_> {
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
        self.queue.name
    }
    fn message_id(&self) -> Option<&str> {
        self.message_id
    }
    fn batch_message_count(&self) -> Option<u64> {
        self.batch
    }
    fn server(&self) -> Option<(&str, Option<u16>)> {
        self.queue.host.map(|h| (h, self.queue.port))
    }
    fn body_size(&self) -> Option<u64> {
        self.body_size
    }
    fn send_is_creation_context(&self) -> bool {
        self.own_context
    }
    fn sent_time(&self) -> Option<SystemTime> {
        let millis: u64 = self.received?.sent_timestamp?.parse().ok()?;
        UNIX_EPOCH.checked_add(Duration::from_millis(millis))
    }
    fn counts_as_delivery(&self) -> bool {
        // Process spans follow a traced receive, which counted the message.
        self.operation == OperationType::Receive
    }
    fn system_attributes(&self, attributes: &mut Vec<KeyValue>) {
        if !self.queue.url.is_empty() {
            attributes.push(KeyValue::new(semconv::AWS_SQS_QUEUE_URL, self.queue.url.to_owned()));
        }
        if let Some(count) = self.received.and_then(|r| r.receive_count).and_then(|c| c.parse::<i64>().ok()) {
            attributes.push(KeyValue::new(semconv::OTEL_MESSAGING_MESSAGE_DELIVERY_COUNT, count));
        }
    }
}

/// The process view of one record of a Lambda `SqsEvent` (feature `lambda`): the queue, its URL
/// and endpoint from the record's `eventSourceARN` (`arn:{partition}:sqs:{region}:{account}:{queue}`
/// → `https://sqs.{region}.amazonaws.com/{account}/{queue}`, the queue's URL on AWS), the message
/// id, the queue wait from `SentTimestamp`, the delivery count from `ApproximateReceiveCount`.
/// Counts the message as consumed: no traced receive did.
#[cfg(feature = "lambda")]
#[derive(Debug)]
pub(crate) struct SqsRecordView<'a> {
    record: &'a aws_lambda_events::sqs::SqsMessage,
    queue: Option<&'a str>,
    host: Option<String>,
    url: Option<String>,
}

#[cfg(feature = "lambda")]
impl<'a> SqsRecordView<'a> {
    pub(crate) fn new(record: &'a aws_lambda_events::sqs::SqsMessage) -> Self {
        let arn = record.event_source_arn.as_deref().unwrap_or_default();
        let parts: Vec<&'a str> = arn.splitn(6, ':').collect();
        let (host, url, queue) = match parts.as_slice() {
            ["arn", partition, "sqs", region, account, queue]
                if !region.is_empty() && !account.is_empty() && !queue.is_empty() =>
            {
                let domain = if partition.ends_with("-cn") { "amazonaws.com.cn" } else { "amazonaws.com" };
                let host = format!("sqs.{region}.{domain}");
                let url = format!("https://{host}/{account}/{queue}");
                (Some(host), Some(url), Some(*queue))
            }
            _ => (None, None, None),
        };
        SqsRecordView { record, queue, host, url }
    }

    fn system_attribute(&self, name: &str) -> Option<&str> {
        self.record.attributes.get(name).map(String::as_str)
    }
}

#[cfg(feature = "lambda")]
impl MessagingAttributes for SqsRecordView<'_> {
    fn system(&self) -> &'static str {
        SYSTEM
    }
    fn operation_type(&self) -> OperationType {
        OperationType::Process
    }
    fn operation_name(&self) -> &'static str {
        crate::consumer::OPERATION_PROCESS
    }
    fn destination_name(&self) -> Option<&str> {
        self.queue
    }
    fn server(&self) -> Option<(&str, Option<u16>)> {
        self.host.as_deref().map(|host| (host, Some(443)))
    }
    fn message_id(&self) -> Option<&str> {
        self.record.message_id.as_deref()
    }
    fn body_size(&self) -> Option<u64> {
        self.record.body.as_ref().map(|b| b.len() as u64)
    }
    fn sent_time(&self) -> Option<SystemTime> {
        let millis: u64 = self.system_attribute("SentTimestamp")?.parse().ok()?;
        UNIX_EPOCH.checked_add(Duration::from_millis(millis))
    }
    fn counts_as_delivery(&self) -> bool {
        true
    }
    fn system_attributes(&self, attributes: &mut Vec<KeyValue>) {
        if let Some(url) = &self.url {
            attributes.push(KeyValue::new(semconv::AWS_SQS_QUEUE_URL, url.clone()));
        }
        if let Some(count) =
            self.system_attribute("ApproximateReceiveCount").and_then(|c| c.parse::<i64>().ok())
        {
            attributes.push(KeyValue::new(semconv::OTEL_MESSAGING_MESSAGE_DELIVERY_COUNT, count));
        }
    }
}

/// `aws.request_id` of a response, set when it ends.
pub(crate) fn request_id_attribute(id: &str) -> KeyValue {
    KeyValue::new(semconv::AWS_REQUEST_ID, id.to_owned())
}

/// `messaging.message.id` known after the call (the id SQS assigned).
pub(crate) fn message_id_attribute(id: &str) -> KeyValue {
    KeyValue::new(semconv::MESSAGING_MESSAGE_ID, id.to_owned())
}

/// `messaging.message.id` link attribute of one received message.
pub(crate) fn message_link_attributes(message: &Message) -> Vec<KeyValue> {
    message.message_id.as_deref().map(message_id_attribute).into_iter().collect()
}

/// The `error.type` of an SQS error: the service error code (`AWS.SimpleQueueService.NonExistentQueue`,
/// `QueueDoesNotExist`, `RequestThrottled`, ...), or `_OTHER` for errors without one (I/O,
/// timeouts, construction).
pub(crate) fn error_type<E: ProvideErrorMetadata>(error: &E) -> Cow<'static, str> {
    match error.code() {
        Some(code) => Cow::Owned(code.to_owned()),
        None => Cow::Borrowed(semconv::ERROR_TYPE_OTHER),
    }
}

#[cfg(test)]
mod tests {
    use super::QueueUrl;

    #[test]
    fn parses_queue_urls() {
        let q = QueueUrl::parse("https://sqs.us-east-1.amazonaws.com/123456789012/orders.fifo");
        assert_eq!(
            (q.name, q.host, q.port),
            (Some("orders.fifo"), Some("sqs.us-east-1.amazonaws.com"), Some(443))
        );
        let q = QueueUrl::parse("http://127.0.0.1:5000/123456789012/jobs");
        assert_eq!((q.name, q.host, q.port), (Some("jobs"), Some("127.0.0.1"), Some(5000)));
    }
}
