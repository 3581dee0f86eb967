//! The interop peers (`interop/python`, `interop/node`): how to run them, and what each official
//! instrumentation does with a context that crosses a broker — the table both the interop tests
//! (`tests/interop.rs`) and the README's interop matrix are made from.

use std::process::Command;

/// Another OpenTelemetry SDK at the other end of the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sdk {
    /// opentelemetry-python with its official instrumentations (`interop/python`).
    Python,
    /// opentelemetry-js with its official instrumentations (`interop/node`).
    Node,
}

/// One of the brokers, as the peers name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broker {
    Kafka,
    RabbitMq,
    Sqs,
    /// SNS publishing, delivered to an SQS queue subscribed with raw message delivery.
    Sns,
    Redis,
    /// NATS JetStream: a stream and one subject of it.
    Nats,
}

impl Broker {
    /// The peers' name for it (their command-line argument).
    pub fn name(self) -> &'static str {
        match self {
            Broker::Kafka => "kafka",
            Broker::RabbitMq => "rabbitmq",
            Broker::Sqs => "sqs",
            Broker::Sns => "sns",
            Broker::Redis => "redis",
            Broker::Nats => "nats",
        }
    }
}

/// How the other SDK's consumer span relates to the send span of the message it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Relation {
    /// A child of the send span (same trace).
    Child,
    /// A link to the send span (a new trace).
    Link,
    /// Both (what our crates do by default, and the peers' own Redis consumer).
    ChildAndLink,
}

/// What the other side uses and does, per SDK and broker.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub sdk: Sdk,
    pub broker: Broker,
    /// Client library and the instrumentation that injects/extracts (pinned in the peer's lock
    /// file).
    pub library: &'static str,
    /// The other SDK's consumer span, relative to our send span (Rust → other SDK).
    pub consumer: Relation,
    /// What the other side does that differs from the others, and what we do about it.
    pub note: &'static str,
}

/// Every SDK × broker pair the interop tests cover, in both directions.
pub const CASES: [Case; 11] = [
    Case {
        sdk: Sdk::Python,
        broker: Broker::Kafka,
        library: "confluent-kafka + opentelemetry-instrumentation-confluent-kafka",
        consumer: Relation::Link,
        note: "writes flags `03` (random trace id, W3C level 2): read as sampled; its consumer starts a new trace (`recv` root, `process` linked)",
    },
    Case {
        sdk: Sdk::Python,
        broker: Broker::RabbitMq,
        library: "pika + opentelemetry-instrumentation-pika",
        consumer: Relation::Child,
        note: "two nested PRODUCER spans per `basic_publish` on a `BlockingChannel`; the message carries the inner one, which our process span takes as parent",
    },
    Case {
        sdk: Sdk::Python,
        broker: Broker::Sqs,
        library: "boto3 + opentelemetry-instrumentation-boto3sqs",
        consumer: Relation::Link,
        note: "context in `String` message attributes (as ours); its consumer starts a new trace (`receive` root, `process` linked)",
    },
    Case {
        sdk: Sdk::Python,
        broker: Broker::Sns,
        library: "boto3 + opentelemetry-instrumentation-botocore (SNS `Publish`), read from the subscribed SQS queue with boto3sqs",
        consumer: Relation::Link,
        note: "botocore writes the context into the SNS message attributes (10-attribute check); raw delivery hands them to SQS, where both sides read them as SQS attributes",
    },
    Case {
        sdk: Sdk::Python,
        broker: Broker::Redis,
        library: "redis-py + the W3C propagator on the XADD fields (no official instrumentation injects)",
        consumer: Relation::ChildAndLink,
        note: "field values come back as bytes in redis-py; decoded as UTF-8",
    },
    Case {
        sdk: Sdk::Node,
        broker: Broker::Kafka,
        library: "kafkajs + @opentelemetry/instrumentation-kafkajs",
        consumer: Relation::Child,
        note: "headers arrive as `Buffer`s in kafkajs; its process span is a child, with no link",
    },
    Case {
        sdk: Sdk::Node,
        broker: Broker::RabbitMq,
        library: "amqplib + @opentelemetry/instrumentation-amqplib",
        consumer: Relation::Child,
        note: "names the send span `publish <default>` for the default exchange",
    },
    Case {
        sdk: Sdk::Node,
        broker: Broker::Sqs,
        library: "@aws-sdk/client-sqs + @opentelemetry/instrumentation-aws-sdk",
        consumer: Relation::Link,
        note: "its consumer records one `receive` span linked to each message, no process span, and does not make the message's context current",
    },
    Case {
        sdk: Sdk::Node,
        broker: Broker::Redis,
        library: "node-redis + the W3C propagator on the XADD fields (no official instrumentation injects)",
        consumer: Relation::ChildAndLink,
        note: "",
    },
    Case {
        sdk: Sdk::Python,
        broker: Broker::Nats,
        library: "nats-py on JetStream + the W3C propagator on the message headers (no official NATS instrumentation exists)",
        consumer: Relation::ChildAndLink,
        note: "header values come back as `str`; the peer's consumer is a durable pull consumer",
    },
    Case {
        sdk: Sdk::Node,
        broker: Broker::Nats,
        library: "nats.js on JetStream + the W3C propagator on the message headers (no official NATS instrumentation exists)",
        consumer: Relation::ChildAndLink,
        note: "headers are multi-valued in nats.js; the first value of each is read",
    },
];

/// The case of `sdk` on `broker`.
pub fn case(sdk: Sdk, broker: Broker) -> Case {
    *CASES.iter().find(|c| c.sdk == sdk && c.broker == broker).expect("every pair is a case")
}

impl Sdk {
    /// Its name in the peers' output (`"python"`, `"node"`).
    pub fn name(self) -> &'static str {
        match self {
            Sdk::Python => "python",
            Sdk::Node => "node",
        }
    }

    /// Runs the peer: `action` (`produce` or `consume`) one message on `broker`'s
    /// `destination`, and returns its JSON report (`sdk`, `spans`, `seen`; interop/README.md).
    /// A producer sends in a sampled upstream context, or an unsampled one when `sampled` is
    /// false.
    ///
    /// # Panics
    ///
    /// When the peer is not installed (run `just interop-setup`; `just test` does), or fails.
    pub fn run(self, action: &str, broker: Broker, destination: &str, sampled: bool) -> serde_json::Value {
        self.run_deviating(action, broker, destination, sampled, "")
    }

    /// [`run`](Self::run) with `INTEROP_DEVIATION=deviation`: a producer that writes the context
    /// as some other instrumentations do (interop/README.md; Python peer only).
    ///
    /// # Panics
    ///
    /// As [`run`](Self::run).
    pub fn run_deviating(
        self,
        action: &str,
        broker: Broker,
        destination: &str,
        sampled: bool,
        deviation: &str,
    ) -> serde_json::Value {
        let interop = crate::root().join("interop");
        let mut command = match self {
            Sdk::Python => {
                let python = interop.join("python/.venv/bin/python");
                require(&python, "the Python interop peer's venv");
                let mut c = Command::new(python);
                c.arg(interop.join("python/interop.py"));
                c
            }
            Sdk::Node => {
                require(&interop.join("node/node_modules"), "the Node interop peer's node_modules");
                let mut c = Command::new("node");
                c.arg("--no-warnings").arg(interop.join("node/interop.js"));
                c
            }
        };
        command
            .args([action, broker.name(), destination])
            .env("INTEROP_SAMPLED", if sampled { "1" } else { "0" })
            .env("INTEROP_DEVIATION", deviation);
        match broker {
            Broker::Kafka => command.env("KAFKA_BOOTSTRAP_SERVERS", crate::kafka_bootstrap()),
            Broker::RabbitMq => command.env("AMQP_URL", crate::amqp_url()),
            Broker::Sqs | Broker::Sns => command.env("SQS_ENDPOINT_URL", crate::sqs_endpoint()),
            Broker::Redis => command.env("REDIS_URL", crate::redis_url()),
            Broker::Nats => command.env("NATS_URL", crate::nats_url()),
        };
        let output = command.output().unwrap_or_else(|e| {
            panic!("cannot run the {} interop peer ({e}): is {} installed?", self.name(), self.name())
        });
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{} {action} on {}: {}\nstdout: {stdout}\nstderr: {}",
            self.name(),
            broker.name(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        let last = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last).unwrap_or_else(|e| panic!("the peer's report is not JSON ({e}): {stdout}"))
    }
}

fn require(path: &std::path::Path, what: &str) {
    assert!(
        path.exists(),
        "{what} is missing ({}): run `just interop-setup` (`just test` runs it), which installs the \
         pinned interop peers (a venv from interop/python/requirements.txt, `npm ci` in interop/node)",
        path.display()
    );
}

/// The README's interop matrix: one row per SDK × broker, both directions.
pub fn markdown() -> String {
    let mut out = String::from(
        "| SDK | broker | other side | other SDK → Rust | Rust → other SDK | notes |\n|---|---|---|---|---|---|\n",
    );
    for c in CASES {
        let relation = match c.consumer {
            Relation::Child => "its consumer span is a child of our send span",
            Relation::Link => "its consumer span links to our send span",
            Relation::ChildAndLink => "its consumer span is a child of and links to our send span",
        };
        out.push_str(&format!(
            "| {} | {} | {} | our process span is a child of and links to its send span; tracestate, baggage, flags read | {relation}; tracestate and baggage arrive | {} |\n",
            c.sdk.name(),
            c.broker.name(),
            c.library,
            if c.note.is_empty() { "—" } else { c.note }
        ));
    }
    out
}
