//! Views of SNS operations for the semantic conventions (v1.44 `docs/messaging/sns.md`), the
//! topic-ARN parsing, and [`error_type`].

use std::borrow::Cow;

use aws_sdk_sns::error::ProvideErrorMetadata;
use opentelemetry::KeyValue;
use otel_messaging::{MessagingAttributes, OperationType};

/// The semconv names this crate uses: the project's own from the core's `semconv` module, the
/// specification's from `opentelemetry-semantic-conventions` (which the core does not re-export:
/// its semver is not ours).
mod semconv {
    pub(crate) use opentelemetry_semantic_conventions::attribute::*;
    pub(crate) use otel_messaging::semconv::*;
}

/// `messaging.system` of every SNS span: `aws.sns`.
pub(crate) const SYSTEM: &str = semconv::system::AWS_SNS;

/// Where a publish goes: a topic (`TopicArn`), a platform endpoint (`TargetArn`), or a phone
/// number (SMS), which is never recorded.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Target<'a> {
    /// A topic ARN (`arn:aws:sns:us-east-1:123456789012:orders`): destination = the topic name,
    /// `aws.sns.topic.arn` = the ARN.
    Topic(&'a str),
    /// A platform endpoint ARN: destination = the ARN's resource (`endpoint/GCM/app/…`).
    Endpoint(&'a str),
    /// An SMS publish: no destination (a phone number is personal data) and no context (an SMS
    /// carries no message attributes to a consumer).
    Phone,
}

impl<'a> Target<'a> {
    /// The target of a publish from its `TopicArn`, `TargetArn` and `PhoneNumber`.
    pub(crate) fn of(topic: Option<&'a str>, target: Option<&'a str>, phone: bool) -> Self {
        match (topic, target) {
            (Some(topic), _) => Target::Topic(topic),
            (None, Some(target)) => Target::Endpoint(target),
            (None, None) if phone => Target::Phone,
            (None, None) => Target::Topic(""),
        }
    }

    /// The ARN's resource: what follows its sixth `:` (`orders`, `endpoint/GCM/app/id`).
    pub(crate) fn resource(arn: &str) -> Option<&str> {
        arn.splitn(6, ':').nth(5).filter(|r| !r.is_empty())
    }

    /// Whether a context may be written into the message.
    pub(crate) fn carries_context(&self) -> bool {
        !matches!(self, Target::Phone)
    }
}

/// One SNS operation.
#[derive(Debug)]
pub(crate) struct SnsView<'a> {
    pub(crate) operation: OperationType,
    pub(crate) name: &'static str,
    pub(crate) target: Target<'a>,
    pub(crate) server: Option<(&'a str, Option<u16>)>,
    pub(crate) batch: Option<u64>,
    pub(crate) body_size: Option<u64>,
    pub(crate) own_context: bool,
    /// FIFO `MessageGroupId` and `MessageDeduplicationId`, recorded only when set (the user opted
    /// in with `SnsInstrumentation::with_fifo_ids`).
    pub(crate) fifo_ids: (Option<&'a str>, Option<&'a str>),
}

impl<'a> SnsView<'a> {
    pub(crate) fn new(operation: OperationType, name: &'static str, target: Target<'a>) -> Self {
        SnsView {
            operation,
            name,
            target,
            server: None,
            batch: None,
            body_size: None,
            own_context: true,
            fifo_ids: (None, None),
        }
    }
}

impl MessagingAttributes for SnsView<'_> {
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
        match self.target {
            Target::Topic(arn) | Target::Endpoint(arn) => Target::resource(arn),
            Target::Phone => None,
        }
    }
    fn batch_message_count(&self) -> Option<u64> {
        self.batch
    }
    fn server(&self) -> Option<(&str, Option<u16>)> {
        self.server
    }
    fn body_size(&self) -> Option<u64> {
        self.body_size
    }
    fn send_is_creation_context(&self) -> bool {
        self.own_context
    }
    fn system_attributes(&self, attributes: &mut Vec<KeyValue>) {
        if let Target::Topic(arn) = self.target
            && !arn.is_empty()
        {
            attributes.push(KeyValue::new(semconv::AWS_SNS_TOPIC_ARN, arn.to_owned()));
        }
        let (group, dedup) = self.fifo_ids;
        if let Some(group) = group {
            let value = otel_messaging::__private::bounded_value(group);
            attributes.push(KeyValue::new(semconv::OTEL_MESSAGING_AWS_SNS_MESSAGE_GROUP_ID, value));
        }
        if let Some(dedup) = dedup {
            let value = otel_messaging::__private::bounded_value(dedup);
            attributes.push(KeyValue::new(semconv::OTEL_MESSAGING_AWS_SNS_MESSAGE_DEDUPLICATION_ID, value));
        }
    }
}

/// The process view of one record of a Lambda `SnsEvent` (feature `lambda`): the topic from its
/// ARN, the message id, the queue wait from the notification's `Timestamp`. Counts the message as
/// consumed.
#[cfg(feature = "lambda")]
#[derive(Debug)]
pub(crate) struct SnsRecordView<'a> {
    pub(crate) message: &'a aws_lambda_events::sns::SnsMessage,
}

#[cfg(feature = "lambda")]
impl MessagingAttributes for SnsRecordView<'_> {
    fn system(&self) -> &'static str {
        SYSTEM
    }
    fn operation_type(&self) -> OperationType {
        OperationType::Process
    }
    fn operation_name(&self) -> &'static str {
        "process"
    }
    fn destination_name(&self) -> Option<&str> {
        Target::resource(&self.message.topic_arn)
    }
    fn message_id(&self) -> Option<&str> {
        Some(self.message.message_id.as_str()).filter(|id| !id.is_empty())
    }
    fn body_size(&self) -> Option<u64> {
        Some(self.message.message.len() as u64)
    }
    fn sent_time(&self) -> Option<std::time::SystemTime> {
        let millis = u64::try_from(self.message.timestamp.timestamp_millis()).ok()?;
        std::time::UNIX_EPOCH.checked_add(std::time::Duration::from_millis(millis))
    }
    fn counts_as_delivery(&self) -> bool {
        true
    }
    fn system_attributes(&self, attributes: &mut Vec<KeyValue>) {
        if !self.message.topic_arn.is_empty() {
            attributes.push(KeyValue::new(semconv::AWS_SNS_TOPIC_ARN, self.message.topic_arn.clone()));
        }
    }
}

/// `aws.request_id` of a response, set when it ends.
pub(crate) fn request_id_attribute(id: &str) -> KeyValue {
    KeyValue::new(semconv::AWS_REQUEST_ID, id.to_owned())
}

/// `messaging.message.id` known after the call (the id SNS assigned).
pub(crate) fn message_id_attribute(id: &str) -> KeyValue {
    KeyValue::new(semconv::MESSAGING_MESSAGE_ID, id.to_owned())
}

/// The `error.type` of an SNS error: the service error code (`NotFound`, `InvalidParameter`,
/// `Throttled`, `KMSThrottling`, ...), or `_OTHER` for errors without one (I/O, timeouts,
/// construction).
pub(crate) fn error_type<E: ProvideErrorMetadata>(error: &E) -> Cow<'static, str> {
    match error.code() {
        Some(code) => Cow::Owned(code.to_owned()),
        None => Cow::Borrowed(semconv::ERROR_TYPE_OTHER),
    }
}

#[cfg(test)]
mod tests {
    use otel_messaging::{MessagingAttributes, OperationType};

    use super::{SnsView, Target};

    #[test]
    fn destinations_come_from_the_arn() {
        let view = |target| SnsView::new(OperationType::Send, "publish", target);
        let topic = "arn:aws:sns:us-east-1:123456789012:orders.fifo";
        assert_eq!(view(Target::Topic(topic)).destination_name(), Some("orders.fifo"));
        let endpoint = "arn:aws:sns:us-east-1:123456789012:endpoint/GCM/app/5e3e9847";
        assert_eq!(view(Target::Endpoint(endpoint)).destination_name(), Some("endpoint/GCM/app/5e3e9847"));
        assert_eq!(view(Target::Phone).destination_name(), None);
        assert_eq!(view(Target::Topic("not an arn")).destination_name(), None);
        assert!(!Target::of(None, None, true).carries_context());
    }
}
