//! The conformance checker is itself checked: a conforming span passes, and each way of breaking a
//! rule of the table (wrong kind, wrong name, a missing Required attribute, no or a misspelt
//! `messaging.system`, a ✗ attribute present, a stray semconv key, `error.type` without an
//! error) is caught. Without these, a `check_span` that always answered "conforms" would pass
//! every test of the workspace.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use opentelemetry::{
    KeyValue,
    trace::{Span as _, SpanKind, Status, Tracer as _},
};
use opentelemetry_sdk::trace::SpanData;
use otel_messaging::testing::{TestTelemetry, conformance::check_span};

/// A Kafka send span with every attribute the table promises.
fn kafka_send() -> SpanData {
    let t = TestTelemetry::without_conformance();
    let mut span = t
        .tracer("test")
        .span_builder("send orders")
        .with_kind(SpanKind::Producer)
        .with_attributes([
            KeyValue::new("messaging.system", "kafka"),
            KeyValue::new("messaging.operation.name", "send"),
            KeyValue::new("messaging.operation.type", "send"),
            KeyValue::new("messaging.destination.name", "orders"),
            KeyValue::new("messaging.destination.partition.id", "3"),
            KeyValue::new("messaging.client.id", "rdkafka#producer-1"),
            KeyValue::new("server.address", "broker.local"),
            KeyValue::new("server.port", 9092_i64),
        ])
        .start(&t.tracer("test"));
    span.end();
    t.spans().pop().expect("the span")
}

fn without(mut span: SpanData, key: &str) -> SpanData {
    span.attributes.retain(|kv| kv.key.as_str() != key);
    span
}

fn with(mut span: SpanData, kv: KeyValue) -> SpanData {
    span.attributes.retain(|a| a.key != kv.key);
    span.attributes.push(kv);
    span
}

#[test]
fn a_conforming_span_passes() {
    assert_eq!(check_span(&kafka_send()), Vec::<String>::new());
}

#[test]
fn a_span_outside_messaging_is_not_checked() {
    let mut span = kafka_send();
    span.attributes =
        vec![KeyValue::new("http.request.method", "POST"), KeyValue::new("messaging.header.x", "y")];
    assert_eq!(check_span(&span), Vec::<String>::new());
}

#[test]
fn each_broken_rule_is_caught() {
    let cases: Vec<(&str, SpanData)> = vec![
        ("no messaging.system", without(kafka_send(), "messaging.system")),
        ("misspelt system", with(kafka_send(), KeyValue::new("messaging.system", "apache_kafka"))),
        ("sqs is not aws_sqs", with(kafka_send(), KeyValue::new("messaging.system", "sqs"))),
        ("no operation name", without(kafka_send(), "messaging.operation.name")),
        ("no destination (promised)", without(kafka_send(), "messaging.destination.name")),
        ("no server.address (promised)", without(kafka_send(), "server.address")),
        (
            "a ✗ attribute: Kafka records have no message id",
            with(kafka_send(), KeyValue::new("messaging.message.id", "m-1")),
        ),
        ("a stray semconv key", with(kafka_send(), KeyValue::new("messaging.kafka.invented", 1_i64))),
        ("error.type without an error", with(kafka_send(), KeyValue::new("error.type", "timeout"))),
        (
            "an unknown operation type",
            with(kafka_send(), KeyValue::new("messaging.operation.type", "publish")),
        ),
        ("a consumer kind for a send", {
            let mut s = kafka_send();
            s.span_kind = SpanKind::Consumer;
            s
        }),
        ("a name of another operation", {
            let mut s = kafka_send();
            s.name = "publish orders".into();
            s
        }),
        ("an error without error.type", {
            let mut s = kafka_send();
            s.status = Status::error("boom");
            s
        }),
    ];
    for (what, span) in cases {
        assert!(!check_span(&span).is_empty(), "not caught: {what}");
    }
}

#[test]
fn a_test_telemetry_fails_on_a_span_it_never_returned() {
    let caught = std::panic::catch_unwind(|| {
        let t = TestTelemetry::new();
        let mut span = t
            .tracer("test")
            .span_builder("send orders")
            .with_kind(SpanKind::Producer)
            .with_attributes([KeyValue::new("messaging.operation.type", "send")])
            .start(&t.tracer("test"));
        span.end();
        t.clear_spans();
    });
    assert!(caught.is_err(), "clear_spans checks what it drops");
    let caught = std::panic::catch_unwind(|| {
        let t = TestTelemetry::new();
        let mut span = t.tracer("test").start("send orders");
        span.set_attribute(KeyValue::new("messaging.operation.type", "send"));
        span.end();
        drop(t);
    });
    assert!(caught.is_err(), "dropping the telemetry checks spans nobody read");
}

/// The operations each system's table covers, and the kinds each operation allows.
#[test]
fn operations_and_kinds_per_system() {
    use otel_messaging::testing::conformance::operations;
    for system in ["kafka", "rabbitmq", "redis", "nats"] {
        assert_eq!(operations(system), ["send", "receive", "process", "settle"], "{system}");
    }
    assert_eq!(operations("aws_sqs"), ["create", "send", "receive", "process", "settle"]);
    assert!(operations("sqs").is_empty());
    let with_kind = |operation: &str, kind: SpanKind| {
        let mut s = with(kafka_send(), KeyValue::new("messaging.operation.type", operation.to_owned()));
        s = with(s, KeyValue::new("messaging.operation.name", operation.to_owned()));
        s.name = format!("{operation} orders").into();
        s.span_kind = kind;
        check_span(&s).iter().any(|p| p.starts_with("kind "))
    };
    assert!(!with_kind("send", SpanKind::Client), "a send may be CLIENT (batch sends)");
    assert!(with_kind("receive", SpanKind::Consumer));
    assert!(with_kind("settle", SpanKind::Producer));
    assert!(with_kind("process", SpanKind::Client));
    let sqs_create = |kind: SpanKind| {
        let mut s = with(kafka_send(), KeyValue::new("messaging.system", "aws_sqs"));
        s = with(s, KeyValue::new("messaging.operation.type", "create"));
        s = with(s, KeyValue::new("messaging.operation.name", "create"));
        s.name = "create orders".into();
        s.span_kind = kind;
        check_span(&s).iter().any(|p| p.starts_with("kind "))
    };
    assert!(!sqs_create(SpanKind::Producer));
    assert!(sqs_create(SpanKind::Client));
}

/// The whole table — every system, operation and row (key, level with its condition, check,
/// note) — equals `tests/snapshots/conformance.txt`, so that a changed row fails in this crate's
/// own tests (the README test in `integration-tests` pins the Markdown the READMEs carry, made
/// from these rows). After a deliberate change: `BLESS=1 cargo test -p otel-messaging --features
/// testing --test conformance`, and review the diff.
#[test]
fn the_table_equals_its_snapshot() {
    use otel_messaging::testing::conformance::{operations, rows};
    let mut dump = String::new();
    for system in ["kafka", "rabbitmq", "aws_sqs", "aws.sns", "redis", "nats", "unknown"] {
        dump.push_str(&format!("## {system}: {:?}\n", operations(system)));
        for operation in ["create", "send", "receive", "process", "settle", "other"] {
            for row in rows(system, operation) {
                dump.push_str(&format!("{operation} {row:?} never_emitted={}\n", row.never_emitted()));
            }
        }
    }
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/conformance.txt");
    if std::env::var_os("BLESS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &dump).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        dump == expected,
        "the conformance table differs from {} (BLESS=1 to accept, then review the diff)",
        path.display()
    );
}

/// What the checker reports names the rule: the attribute, its requirement level with its
/// condition, and the table's note.
#[test]
fn a_problem_names_the_level_and_its_condition() {
    let problems = check_span(&with(kafka_send(), KeyValue::new("error.type", "timeout")));
    assert_eq!(
        problems,
        ["`error.type` (Cond. Required: iff the operation failed) is present: iff failed; `cancelled` / \
          `panic` for a dropped or panicking handler"]
    );
}

/// Each operation type's kinds (semconv v1.44 "Span kind"): CLIENT receive and settle, CONSUMER
/// process — and only those.
#[test]
fn each_operation_type_has_its_span_kinds() {
    let kind_problems = |operation: &str, kind: SpanKind| {
        let mut span = with(kafka_send(), KeyValue::new("messaging.operation.type", operation.to_owned()));
        span.span_kind = kind;
        check_span(&span).into_iter().filter(|p| p.starts_with("kind ")).count()
    };
    for (operation, right, wrong) in [
        ("receive", SpanKind::Client, SpanKind::Consumer),
        ("settle", SpanKind::Client, SpanKind::Producer),
        ("process", SpanKind::Consumer, SpanKind::Client),
        ("send", SpanKind::Producer, SpanKind::Consumer),
    ] {
        assert_eq!(kind_problems(operation, right.clone()), 0, "{operation} as {right:?}");
        assert_eq!(kind_problems(operation, wrong.clone()), 1, "{operation} as {wrong:?}");
    }
}

/// Keys outside semconv's namespaces (the application's own, captured headers) are not checked
/// against the table; a semconv key the table does not list is.
#[test]
fn only_semconv_keys_must_be_in_the_table() {
    for key in ["app.tenant", "messaging.header.x_request_id", "otel_messaging.queue.wait.duration"] {
        assert_eq!(check_span(&with(kafka_send(), KeyValue::new(key, "v"))), Vec::<String>::new(), "{key}");
    }
    for key in ["messaging.invented", "server.invented", "network.invented", "error.invented", "aws.invented"]
    {
        assert_eq!(check_span(&with(kafka_send(), KeyValue::new(key, "v"))).len(), 1, "{key}");
    }
}

/// `assert_conforms` passes conforming spans and panics, naming the span, on one that is not.
#[test]
fn assert_conforms_fails_on_one_bad_span() {
    use otel_messaging::testing::conformance::assert_conforms;
    assert_conforms(&[kafka_send(), kafka_send()]);
    let bad = without(kafka_send(), "messaging.operation.name");
    let caught = std::panic::catch_unwind(|| assert_conforms(&[kafka_send(), bad]));
    let message = caught.expect_err("a bad span must fail");
    let message = message.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("span \"send orders\"") && message.contains("messaging.operation.name"),
        "{message}"
    );
}
