//! The conformance table: per messaging system and operation type, the semconv v1.44 span
//! attributes by requirement level, what this workspace emits for each, and its documented
//! deviations — and the check every test span goes through ([`TestTelemetry::spans`] runs
//! [`check_span`] on each messaging span it returns).
//!
//! Sources: semconv v1.44 `docs/messaging/messaging-spans.md` (generic spans), `kafka.md`,
//! `rabbitmq.md`, `sqs.md` (`model/messaging/*.yaml`). Redis has no semconv system; it follows
//! the generic tables under the custom `messaging.system = redis`.
//!
//! The check fails a span that: lacks a Required attribute; lacks a Recommended or Conditionally
//! Required attribute whose condition the span meets and which this workspace promises
//! ([`Check::Present`]); has `error.type` without failing or fails without it; carries a key of a
//! semconv namespace (`messaging.*`, `server.*`, `network.*`, `error.*`, `aws.*`) that the table
//! does not list for its system and operation; or has the wrong span kind or name. Attributes of
//! the project's own namespace (`otel_messaging.*`), captured headers (`messaging.header.*`) and
//! the application's (an enricher's) are not checked.
//!
//! [`TestTelemetry::spans`]: super::TestTelemetry::spans

use opentelemetry::{Value, trace::SpanKind};
use opentelemetry_sdk::trace::SpanData;

/// The keys the table checks: the specification's from `opentelemetry-semantic-conventions`, the
/// rest from this crate's `semconv`.
mod semconv {
    pub(super) use crate::semconv::*;
    pub(super) use opentelemetry_semantic_conventions::attribute::{
        AWS_REQUEST_ID, AWS_SNS_TOPIC_ARN, AWS_SQS_QUEUE_URL, MESSAGING_KAFKA_MESSAGE_KEY,
        MESSAGING_KAFKA_MESSAGE_TOMBSTONE, MESSAGING_KAFKA_OFFSET, MESSAGING_MESSAGE_ENVELOPE_SIZE,
        MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY, MESSAGING_RABBITMQ_MESSAGE_DELIVERY_TAG,
        NETWORK_PEER_ADDRESS, NETWORK_PEER_PORT,
    };
}

/// A semconv requirement level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// `Required`.
    Required,
    /// `Conditionally Required`, with its condition.
    ConditionallyRequired(&'static str),
    /// `Recommended`, with its condition (empty when unconditional).
    Recommended(&'static str),
    /// `Opt-In`.
    OptIn,
}

impl Level {
    fn label(self) -> String {
        match self {
            Level::Required => "Required".to_owned(),
            Level::ConditionallyRequired(c) => format!("Cond. Required: {c}"),
            Level::Recommended("") => "Recommended".to_owned(),
            Level::Recommended(c) => format!("Recommended: {c}"),
            Level::OptIn => "Opt-In".to_owned(),
        }
    }
}

/// What the check asserts about one attribute of a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Always present.
    Present,
    /// Present iff the span's status is `Error`.
    IffFailed,
    /// Allowed; its presence depends on the message or the configuration (see the note).
    Allowed,
}

/// One attribute of one operation: the spec's level, our check, and what we emit.
#[derive(Debug, Clone, Copy)]
pub struct Row {
    /// The attribute key.
    pub key: &'static str,
    /// Its requirement level in semconv v1.44 for this system and operation.
    pub level: Level,
    /// What every span of ours is checked for.
    pub check: Check,
    /// What this workspace emits, and any deviation from the spec, in a few words.
    pub note: &'static str,
}

impl Row {
    /// Whether the note says the attribute is never emitted ("not emitted…", "not applicable…"):
    /// the README's ✗ cells, which [`check_span`] requires to be absent.
    pub fn never_emitted(&self) -> bool {
        self.note.starts_with("not emitted") || self.note.starts_with("not applicable")
    }
}

/// The systems the table covers: the broker crates' and `nats` (otel-messaging-async-nats, a
/// custom value defined by that crate; the core itself knows nothing of NATS).
const SYSTEMS: [&str; 6] = [
    semconv::system::KAFKA,
    semconv::system::RABBITMQ,
    semconv::system::AWS_SQS,
    semconv::system::AWS_SNS,
    semconv::system::REDIS,
    "nats",
];

/// The operation types a system's crate emits, in table order.
pub fn operations(system: &str) -> &'static [&'static str] {
    match system {
        "kafka" => &["send", "receive", "process", "settle"],
        "rabbitmq" => &["send", "receive", "process", "settle"],
        "aws_sqs" => &["create", "send", "receive", "process", "settle"],
        "aws.sns" => &["create", "send", "process"],
        "redis" => &["send", "receive", "process", "settle"],
        "nats" => &["send", "receive", "process", "settle"],
        _ => &[],
    }
}

/// The table rows of `system` and `operation` (`messaging.operation.type`); empty for an
/// operation the system's crate does not emit.
pub fn rows(system: &str, operation: &str) -> Vec<Row> {
    use Check::*;
    use Level::*;
    if !SYSTEMS.contains(&system) || !operations(system).contains(&operation) {
        return Vec::new();
    }
    let (kafka, rabbit, sqs, redis) =
        (system == "kafka", system == "rabbitmq", system == "aws_sqs", system == "redis");
    let nats = system == "nats";
    let sns = system == "aws.sns";
    let consumer = matches!(operation, "receive" | "process" | "settle");
    let network = matches!(operation, "send" | "receive" | "settle");
    let mut rows = vec![
        Row {
            key: semconv::MESSAGING_SYSTEM,
            level: Required,
            check: Present,
            note: if redis {
                "`redis`: a custom value (semconv defines no Redis system)"
            } else if sns {
                "`aws.sns` (with a dot, where SQS's has an underscore)"
            } else if nats {
                "`nats`: a custom value (semconv defines no NATS system)"
            } else {
                "always"
            },
        },
        Row { key: semconv::MESSAGING_OPERATION_NAME, level: Required, check: Present, note: "always" },
        Row {
            key: semconv::MESSAGING_OPERATION_TYPE,
            level: ConditionallyRequired("if applicable"),
            check: Present,
            note: "always",
        },
        Row {
            key: semconv::ERROR_TYPE,
            level: ConditionallyRequired("iff the operation failed"),
            check: IffFailed,
            note: "iff failed; `cancelled` / `panic` for a dropped or panicking handler",
        },
        Row {
            key: semconv::MESSAGING_DESTINATION_NAME,
            level: if rabbit {
                Required
            } else {
                ConditionallyRequired("single message, or same for the batch")
            },
            check: if !sns && (rabbit || matches!(operation, "create" | "send" | "process")) {
                Present
            } else {
                Allowed
            },
            note: if rabbit {
                "`{exchange}:{routing key}` on publish, `…:{queue}` on receive, process, settle"
            } else if sns {
                "the topic name (a platform endpoint's resource for `TargetArn`); none for SMS"
            } else {
                "on every send and process; on others when one destination applies"
            },
        },
        Row {
            key: semconv::MESSAGING_DESTINATION_TEMPLATE,
            level: ConditionallyRequired("if available"),
            check: Allowed,
            note: if redis {
                "the `PSUBSCRIBE` pattern of a pub/sub message, else the first matching template of `with_destination_templates`"
            } else {
                "the first template of `with_destination_templates` the destination matches"
            },
        },
        Row {
            key: semconv::MESSAGING_DESTINATION_PARTITION_ID,
            level: Recommended(if kafka && operation == "process" { "" } else { "when applicable" }),
            check: if kafka && operation == "process" { Present } else { Allowed },
            note: if kafka {
                "the partition (set at delivery on sends without one)"
            } else {
                "not applicable"
            },
        },
        Row {
            key: semconv::MESSAGING_MESSAGE_ID,
            level: Recommended("single message"),
            check: if sqs && operation == "process" { Present } else { Allowed },
            note: if kafka {
                "not applicable: Kafka records have no id"
            } else if rabbit {
                "the `message_id` property, when set"
            } else if sqs {
                "the SQS message id (at the response on sends)"
            } else if sns {
                "the SNS message id (at the response)"
            } else if nats {
                "`Nats-Msg-Id` when the publisher set one; else JetStream's stream sequence (at the PubAck on publishes); core NATS: none"
            } else {
                "the entry id"
            },
        },
        Row {
            key: semconv::MESSAGING_MESSAGE_CONVERSATION_ID,
            level: Recommended(""),
            check: Allowed,
            note: if rabbit {
                "the `correlation_id` property, when set"
            } else {
                "not emitted: no such field"
            },
        },
        Row {
            key: semconv::SERVER_ADDRESS,
            level: Recommended(""),
            check: if kafka || sqs { Present } else { Allowed },
            note: if kafka {
                "first `bootstrap.servers` entry, read from the client"
            } else if sqs {
                "the queue URL's host"
            } else if sns {
                "from `SnsInstrumentation::from_config` (endpoint URL, else the regional endpoint)"
            } else if rabbit {
                "from `AmqpInstrumentation::from_uri`"
            } else if nats {
                "from `NatsInstrumentation::from_url`"
            } else {
                "from `RedisInstrumentation::from_client`"
            },
        },
        Row {
            key: semconv::SERVER_PORT,
            level: Recommended(""),
            check: if kafka || sqs { Present } else { Allowed },
            note: "with `server.address`",
        },
    ];
    if operation != "settle" {
        rows.push(Row {
            key: semconv::MESSAGING_MESSAGE_BODY_SIZE,
            level: OptIn,
            check: Allowed,
            note: "opt-in (`with_body_size`), single messages",
        });
        rows.push(Row {
            key: semconv::MESSAGING_MESSAGE_ENVELOPE_SIZE,
            level: OptIn,
            check: Allowed,
            note: "not emitted",
        });
    }
    if operation != "create" {
        rows.push(Row {
            key: semconv::MESSAGING_BATCH_MESSAGE_COUNT,
            level: ConditionallyRequired("batch operation"),
            check: Allowed,
            note: "on batch operations only (also 0)",
        });
        rows.push(Row {
            key: semconv::MESSAGING_CLIENT_ID,
            level: Recommended(""),
            check: if kafka { Present } else { Allowed },
            note: if kafka {
                "the client handle's name `{client.id}#{producer|consumer}-{n}` (unique per client)"
            } else if redis {
                "not emitted: a connection has no client name (`CLIENT ID` would cost a round trip)"
            } else if nats {
                "not emitted: the server-assigned `client_id` is unique per server, not per cluster, and reading it clones the server info per call"
            } else {
                "not emitted: the client library exposes none"
            },
        });
    }
    if network {
        rows.push(Row {
            key: semconv::NETWORK_PEER_ADDRESS,
            level: Recommended(if rabbit { "" } else { "if applicable" }),
            check: Allowed,
            note: if rabbit {
                "the broker's address when the URI names it by IP (lapin exposes no socket)"
            } else {
                "not emitted: the client library does not expose the contacted node"
            },
        });
        rows.push(Row {
            key: semconv::NETWORK_PEER_PORT,
            level: Recommended("iff `network.peer.address` is set"),
            check: Allowed,
            note: if rabbit {
                "with `network.peer.address`"
            } else {
                "not emitted (no `network.peer.address`)"
            },
        });
    }
    if consumer && (kafka || redis || nats) {
        rows.push(Row {
            key: semconv::MESSAGING_CONSUMER_GROUP_NAME,
            level: ConditionallyRequired("if applicable"),
            check: if kafka { Present } else { Allowed },
            note: if kafka {
                "`group.id`, read from the client"
            } else if nats {
                "JetStream: the consumer; core NATS: the queue group (`NatsInstrumentation::with_queue_group`)"
            } else {
                "the group of `XREADGROUP`/`XAUTOCLAIM`/`XACK`"
            },
        });
    }
    if rabbit || nats {
        rows.push(Row {
            key: semconv::MESSAGING_DESTINATION_TEMPORARY,
            level: ConditionallyRequired("if true"),
            check: Allowed,
            note: if rabbit {
                "not emitted: lapin does not say whether a queue is exclusive"
            } else {
                "reply inboxes (`_INBOX.*`), kept out of span names"
            },
        });
    }
    if kafka {
        rows.push(Row {
            key: semconv::MESSAGING_KAFKA_CLUSTER_ID,
            level: Recommended(""),
            check: Allowed,
            note: "once librdkafka knows it (after the client's first metadata response)",
        });
        if operation != "settle" {
            rows.push(Row {
                key: semconv::MESSAGING_KAFKA_MESSAGE_KEY,
                level: Recommended("single message"),
                check: Allowed,
                note: "opt-in (`with_capture_key(true)`): UTF-8 keys, cut to 256 bytes",
            });
            rows.push(Row {
                key: semconv::MESSAGING_KAFKA_MESSAGE_TOMBSTONE,
                level: ConditionallyRequired("if true"),
                check: Allowed,
                note: "when the record has no payload",
            });
        }
        rows.push(Row {
            key: semconv::MESSAGING_KAFKA_OFFSET,
            level: Recommended("single message"),
            check: if operation == "process" { Present } else { Allowed },
            note: "on sends at delivery; on single-message polls, process and commits",
        });
    }
    if rabbit {
        rows.push(Row {
            key: semconv::MESSAGING_RABBITMQ_DESTINATION_ROUTING_KEY,
            level: ConditionallyRequired("if not empty"),
            check: Allowed,
            note: "when not empty",
        });
        rows.push(Row {
            key: semconv::MESSAGING_DESTINATION_ANONYMOUS,
            level: ConditionallyRequired("if true"),
            check: Allowed,
            note: "server-named `amq.gen-*` queues and routing keys",
        });
        if consumer {
            rows.push(Row {
                key: semconv::MESSAGING_RABBITMQ_MESSAGE_DELIVERY_TAG,
                level: ConditionallyRequired("when available"),
                check: if operation == "receive" { Allowed } else { Present },
                note: "always (a failed `basic_get` has no delivery)",
            });
        }
    }
    if sns {
        rows.push(Row {
            key: semconv::AWS_SNS_TOPIC_ARN,
            level: Recommended(""),
            check: Allowed,
            note: "the topic ARN (not on `TargetArn` and SMS publishes)",
        });
        rows.push(Row {
            key: semconv::AWS_REQUEST_ID,
            level: Recommended(""),
            check: Allowed,
            note: "from every response, also failed ones; not on create spans",
        });
    }
    if sqs {
        rows.push(Row {
            key: semconv::AWS_SQS_QUEUE_URL,
            level: Recommended(""),
            check: Present,
            note: "the call's queue URL (process: the receive's)",
        });
        rows.push(Row {
            key: semconv::AWS_REQUEST_ID,
            level: Recommended(""),
            check: Allowed,
            note: "from every response, also failed ones; not on process and create spans",
        });
    }
    rows
}

/// The span kinds semconv v1.44 gives an operation type ("Span kind").
fn kinds(operation: &str) -> &'static [SpanKind] {
    match operation {
        "create" => &[SpanKind::Producer],
        "send" => &[SpanKind::Producer, SpanKind::Client],
        "receive" | "settle" => &[SpanKind::Client],
        "process" => &[SpanKind::Consumer],
        _ => &[],
    }
}

fn owned_by_semconv(key: &str) -> bool {
    key.starts_with("messaging.") && !key.starts_with(semconv::MESSAGING_HEADER_PREFIX)
        || ["server.", "network.", "error.", "aws."].iter().any(|p| key.starts_with(p))
}

/// Checks one span against the table; returns what is wrong (empty when it conforms).
///
/// A span with no key of the messaging namespace (`messaging.*` but captured headers) is not a
/// messaging span (an application's own span, an HTTP span) and conforms. A messaging span
/// without `messaging.system`, or with a system other than the broker crates' (`kafka`,
/// `rabbitmq`, `aws_sqs`, `aws.sns`, `redis`, `nats`) — a misspelling such as `sqs` or `amqp` — does not.
/// Rows whose note says "not emitted" or "not applicable" (the README's ✗ cells) must be absent.
pub fn check_span(span: &SpanData) -> Vec<String> {
    let attributes: std::collections::BTreeMap<&str, &Value> =
        span.attributes.iter().map(|kv| (kv.key.as_str(), &kv.value)).collect();
    let text = |key: &str| attributes.get(key).map(|v| v.as_str().into_owned());
    let messaging = attributes
        .keys()
        .any(|k| k.starts_with("messaging.") && !k.starts_with(semconv::MESSAGING_HEADER_PREFIX));
    if !messaging {
        return Vec::new();
    }
    let Some(system) = text(semconv::MESSAGING_SYSTEM) else {
        return vec![format!("Required `{}` is missing", semconv::MESSAGING_SYSTEM)];
    };
    if !SYSTEMS.contains(&system.as_str()) {
        return vec![format!("`{}` {system:?} is none of {SYSTEMS:?}", semconv::MESSAGING_SYSTEM)];
    }
    let operation = text(semconv::MESSAGING_OPERATION_TYPE).unwrap_or_default();
    let mut problems = Vec::new();
    let rows = rows(&system, &operation);
    if rows.is_empty() {
        return vec![format!("no table for system {system:?}, operation type {operation:?}")];
    }
    let failed = matches!(span.status, opentelemetry::trace::Status::Error { .. });
    for row in &rows {
        let present = attributes.contains_key(row.key);
        let expected = match row.check {
            _ if row.never_emitted() => Some(false),
            Check::Present => Some(true),
            Check::IffFailed => Some(failed),
            Check::Allowed => None,
        };
        if row.level == Level::Required && !present {
            problems.push(format!("Required `{}` is missing", row.key));
        } else if let Some(expected) = expected
            && expected != present
        {
            let what = if expected { "missing" } else { "present" };
            problems.push(format!("`{}` ({}) is {what}: {}", row.key, row.level.label(), row.note));
        }
    }
    for key in attributes.keys() {
        if owned_by_semconv(key) && !rows.iter().any(|r| r.key == *key) {
            problems.push(format!("`{key}` is not an attribute of a {system} {operation} span"));
        }
    }
    if !kinds(&operation).contains(&span.span_kind) {
        problems.push(format!("kind {:?} for a {operation} span", span.span_kind));
    }
    let name = text(semconv::MESSAGING_OPERATION_NAME).unwrap_or_default();
    if span.name != name && !span.name.starts_with(&format!("{name} ")) {
        problems
            .push(format!("name {:?} does not start with `messaging.operation.name` {name:?}", span.name));
    }
    problems
}

/// Panics, listing every problem, if a messaging span of `spans` does not conform to the table.
pub fn assert_conforms(spans: &[SpanData]) {
    let report: Vec<String> = spans
        .iter()
        .filter_map(|s| {
            let problems = check_span(s);
            (!problems.is_empty()).then(|| format!("span {:?}:\n  - {}", s.name, problems.join("\n  - ")))
        })
        .collect();
    assert!(
        report.is_empty(),
        "spans that do not conform to semconv v1.44 (testing::conformance):\n{}",
        report.join("\n")
    );
}
