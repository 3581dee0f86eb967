//! Received SQS messages with arbitrary bodies (including SNS notification envelopes), message
//! attributes of any data type and system attributes (`AWSTraceHeader`, `SentTimestamp`,
//! `ApproximateReceiveCount`), through a process span; and the X-Ray header conversion.
//! Properties: no panic; the handler gets the message unchanged; an X-Ray header converts only to
//! a valid `traceparent`.
#![no_main]

use std::collections::HashMap;

use arbitrary::Arbitrary;
use aws_sdk_sqs::{
    primitives::Blob,
    types::{Message, MessageAttributeValue, MessageSystemAttributeName},
};
use libfuzzer_sys::fuzz_target;
use otel_messaging::__private::is_valid_traceparent;
use otel_messaging_aws_sqs::{MessageExt as _, SqsInstrumentation, xray_to_traceparent};

#[derive(Debug, Arbitrary)]
enum Body {
    Raw(String),
    Sns { kind: String, attributes: Vec<(String, String, String)> },
}

#[derive(Debug, Arbitrary)]
struct Input {
    body: Option<Body>,
    attributes: Vec<(String, String, Option<String>, Option<Vec<u8>>)>,
    trace_header: Option<String>,
    sent_timestamp: Option<String>,
    receive_count: Option<String>,
    receipt: Option<String>,
}

fn json(s: &str) -> String {
    format!("{s:?}") // a JSON string literal for the ASCII and escapes the fuzzer mostly produces
}

fuzz_target!(|input: Input| {
    let body = input.body.map(|b| match b {
        Body::Raw(s) => s,
        Body::Sns { kind, attributes } => {
            let attributes: Vec<String> = attributes
                .iter()
                .map(|(k, t, v)| format!("{}:{{\"Type\":{},\"Value\":{}}}", json(k), json(t), json(v)))
                .collect();
            format!("{{\"Type\":{},\"MessageAttributes\":{{{}}}}}", json(&kind), attributes.join(","))
        }
    });
    let attributes: HashMap<String, MessageAttributeValue> = input
        .attributes
        .into_iter()
        .filter_map(|(name, data_type, string, binary)| {
            let value = MessageAttributeValue::builder()
                .data_type(data_type)
                .set_string_value(string)
                .set_binary_value(binary.map(Blob::new))
                .build()
                .ok()?;
            Some((name, value))
        })
        .collect();
    let mut system = HashMap::new();
    for (name, value) in [
        (MessageSystemAttributeName::AwsTraceHeader, &input.trace_header),
        (MessageSystemAttributeName::SentTimestamp, &input.sent_timestamp),
        (MessageSystemAttributeName::ApproximateReceiveCount, &input.receive_count),
    ] {
        if let Some(value) = value {
            system.insert(name, value.clone());
        }
    }
    if let Some(header) = &input.trace_header
        && let Some(traceparent) = xray_to_traceparent(header)
    {
        assert!(is_valid_traceparent(&traceparent), "{header:?} -> {traceparent:?}");
    }
    let message = Message::builder()
        .set_body(body)
        .set_message_attributes((!attributes.is_empty()).then_some(attributes))
        .set_attributes((!system.is_empty()).then_some(system))
        .set_receipt_handle(input.receipt)
        .build();
    static INSTRUMENTATION: std::sync::OnceLock<SqsInstrumentation> = std::sync::OnceLock::new();
    let instrumentation = INSTRUMENTATION.get_or_init(|| {
        SqsInstrumentation::default()
            .with_instrumenter(otel_messaging_fuzz::instrumenter(false).clone())
            .with_queue_url("http://127.0.0.1:5000/000000000000/fuzz")
    });
    let traced = message.clone().start_process_with(instrumentation);
    assert_eq!(traced.into_inner(), message, "the handler gets the message unchanged");
});
