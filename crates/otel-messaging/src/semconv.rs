//! The one place where semantic-convention keys and values live.
//!
//! Everything here follows the OpenTelemetry semantic conventions **v1.44.0** for messaging
//! (`docs/messaging/*.md`, `model/messaging/*.yaml`), whose status is *Development*.
//! Keys that exist in `opentelemetry-semantic-conventions` 0.33.1 (generated from v1.42.0) are
//! used from it, so that a typo is a compile error, and are not re-exported: name them from that
//! crate (`opentelemetry_semantic_conventions::attribute::MESSAGING_SYSTEM`), whose versioning is
//! its own. What the crate lacks is defined here: v1.44 additions, enum values (`system`), units,
//! bucket boundaries, and this project's own keys (`otel_messaging.*`).
//!
//! Broker crates use these constants, and the specification's from
//! `opentelemetry-semantic-conventions`, from their `attributes.rs` only; no other module of a
//! broker crate spells a semconv key.

pub(crate) use opentelemetry_semantic_conventions::attribute::{
    ERROR_TYPE, MESSAGING_BATCH_MESSAGE_COUNT, MESSAGING_CLIENT_ID, MESSAGING_CONSUMER_GROUP_NAME,
    MESSAGING_DESTINATION_ANONYMOUS, MESSAGING_DESTINATION_NAME, MESSAGING_DESTINATION_PARTITION_ID,
    MESSAGING_DESTINATION_TEMPLATE, MESSAGING_DESTINATION_TEMPORARY, MESSAGING_MESSAGE_BODY_SIZE,
    MESSAGING_MESSAGE_CONVERSATION_ID, MESSAGING_MESSAGE_ID, MESSAGING_OPERATION_NAME,
    MESSAGING_OPERATION_TYPE, MESSAGING_SYSTEM, SERVER_ADDRESS, SERVER_PORT,
};
pub(crate) use opentelemetry_semantic_conventions::metric::{
    MESSAGING_CLIENT_CONSUMED_MESSAGES, MESSAGING_CLIENT_OPERATION_DURATION, MESSAGING_CLIENT_SENT_MESSAGES,
    MESSAGING_PROCESS_DURATION,
};

/// The semantic-conventions version this workspace follows: `1.44.0` (messaging status
/// *Development*).
pub const SEMCONV_VERSION: &str = "1.44.0";

/// Schema URL stamped on the instrumentation scope: `https://opentelemetry.io/schemas/1.44.0`.
pub const SCHEMA_URL: &str = "https://opentelemetry.io/schemas/1.44.0";

/// `messaging.kafka.cluster.id` (string): the Kafka cluster id from the broker metadata.
/// New in semconv v1.44.0, so the Rust semconv crate (v1.42.0) has no constant for it.
/// Registry: `model/messaging/registry.yaml`.
pub const MESSAGING_KAFKA_CLUSTER_ID: &str = "messaging.kafka.cluster.id";

/// Prefix of the opt-in header-capture attributes, `messaging.header.<name>` (string array),
/// as emitted by the Java instrumentation's `messaging.experimental.headers.included`.
pub const MESSAGING_HEADER_PREFIX: &str = "messaging.header.";

/// `error.type` fallback value when no more specific identifier applies (semconv
/// `model/error/registry.yaml`, well-known value `_OTHER`).
pub const ERROR_TYPE_OTHER: &str = "_OTHER";

/// `error.type` (project value, low cardinality) of an operation during which a panic unwound,
/// e.g. a handler that panicked: `panic`.
pub const ERROR_TYPE_PANIC: &str = "panic";

/// `error.type` (project value, low cardinality) of an operation dropped before its outcome was
/// known, e.g. a handler future cancelled by `select!` or a timeout: `cancelled`.
pub const ERROR_TYPE_CANCELLED: &str = "cancelled";

/// Well-known `messaging.system` values used by this workspace.
pub mod system {
    /// `kafka` (semconv registry value).
    pub const KAFKA: &str = "kafka";
    /// `rabbitmq` (semconv registry value).
    pub const RABBITMQ: &str = "rabbitmq";
    /// `aws_sqs` (semconv registry value).
    pub const AWS_SQS: &str = "aws_sqs";
    /// `aws.sns` (semconv registry value; note the dot, where SQS has an underscore).
    pub const AWS_SNS: &str = "aws.sns";
    /// `redis`: a **custom** value; semconv v1.44 defines no messaging system for Redis, and the
    /// registry allows custom values of low cardinality.
    pub const REDIS: &str = "redis";
}

/// Unit of the duration histograms: seconds (`s`).
pub const UNIT_SECONDS: &str = "s";
/// Unit of the message counters: `{message}`.
pub const UNIT_MESSAGES: &str = "{message}";

/// Explicit bucket boundaries (seconds) advised for `messaging.client.operation.duration` and
/// `messaging.process.duration` (semconv `model/messaging/metrics.yaml`).
pub const DURATION_BUCKETS: [f64; 14] =
    [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0];

/// Project namespace (not semconv): time in seconds (double) the message waited between being
/// sent and the start of its processing. Recorded as a span attribute on process spans and as a
/// histogram of the same name. Semconv owns `messaging.*`, so this lives under `otel_messaging.`.
pub const OTEL_MESSAGING_QUEUE_WAIT_DURATION: &str = "otel_messaging.queue.wait.duration";

/// Project namespace (not semconv): `false` on a producer span whose context could not be
/// written into the message (for example a carrier that is full); absent when it was.
pub const OTEL_MESSAGING_CONTEXT_INJECTED: &str = "otel_messaging.context.injected";

/// Project namespace (not semconv): bucket boundaries (seconds) of the queue-wait histogram, from
/// 1 ms to 1 h, wider than the semconv duration advice because messages can wait for hours.
pub const QUEUE_WAIT_BUCKETS: [f64; 16] =
    [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0];

/// Project namespace (not semconv; v1.44 has only `messaging.servicebus.message.delivery_count`):
/// how many times the broker has delivered the message, this delivery included (1 = first
/// delivery; "delivered before" = this − 1), on receive and process spans when the broker tells:
/// RabbitMQ `x-delivery-count` + 1 (quorum queues) or 1 for a delivery not flagged `redelivered`;
/// SQS `ApproximateReceiveCount`; Redis `delivered_count` of a claimed stream entry. Kafka keeps
/// no delivery count.
pub const OTEL_MESSAGING_MESSAGE_DELIVERY_COUNT: &str = "otel_messaging.message.delivery_count";

/// Project namespace (not semconv): the retry attempt a re-published message is (1 = first
/// retry), on its send and process spans ([`crate::retry`]).
pub const OTEL_MESSAGING_MESSAGE_RETRY_ATTEMPT: &str = "otel_messaging.message.retry.attempt";

/// Project namespace (not semconv; v1.44 has no SNS or SQS attribute for it): the message group
/// of a message published to a FIFO topic (`MessageGroupId`), on its publish or create span when
/// the user opts in (`SnsInstrumentation::with_fifo_ids`): a group id is often a customer or
/// order id, as keys are.
pub const OTEL_MESSAGING_AWS_SNS_MESSAGE_GROUP_ID: &str = "otel_messaging.aws.sns.message_group_id";

/// Project namespace (not semconv): the deduplication id of a message published to a FIFO topic
/// (`MessageDeduplicationId`), opt-in as [`OTEL_MESSAGING_AWS_SNS_MESSAGE_GROUP_ID`].
pub const OTEL_MESSAGING_AWS_SNS_MESSAGE_DEDUPLICATION_ID: &str =
    "otel_messaging.aws.sns.message_deduplication_id";

/// Project namespace (not semconv): on a link of a re-published message's spans, what the linked
/// span is: `original` (the first creation context) or `failed_attempt` ([`crate::retry`]).
pub const OTEL_MESSAGING_LINK_ROLE: &str = "otel_messaging.link.role";
