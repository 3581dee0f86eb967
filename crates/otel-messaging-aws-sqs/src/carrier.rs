//! Carriers over SQS message attributes ([`MessageAttributesInjector`],
//! [`MessageAttributesExtractor`]), the X-Ray `AWSTraceHeader` fallback, and the 10-attribute
//! limit.
//!
//! SQS facts (aws-sdk-sqs 1.119, checked against moto 5.2): at most 10 message attributes per
//! message; a receiver gets attributes only when it asks for them by name (or `All`); every value
//! needs a `DataType` (`String` here) and a non-empty value.

use std::collections::HashMap;

use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};
use opentelemetry::propagation::{Extractor, Injector};

use crate::config::Removed;

/// Most message attributes one SQS message may carry.
pub(crate) const MAX_MESSAGE_ATTRIBUTES: usize = 10;

/// Writes propagation fields as `String` message attributes. Empty values are never written (SQS
/// rejects them); a key replaces any attribute of that key. Never fails: a value the SDK cannot
/// build is skipped. Does **not** enforce the 10-attribute limit (the traced sends do).
pub struct MessageAttributesInjector<'a>(pub &'a mut HashMap<String, MessageAttributeValue>);

impl std::fmt::Debug for MessageAttributesInjector<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MessageAttributesInjector").field(&self.0.len()).finish()
    }
}

pub(crate) fn string_attribute(value: String) -> Option<MessageAttributeValue> {
    MessageAttributeValue::builder().data_type("String").string_value(value).build().ok()
}

impl otel_messaging::__private::AttributeCarrier for MessageAttributesInjector<'_> {
    fn contains(&self, key: &str) -> bool {
        self.0.contains_key(key)
    }
    fn count(&self) -> usize {
        self.0.len()
    }
}

impl Injector for MessageAttributesInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if value.is_empty() {
            return;
        }
        if let Some(attribute) = string_attribute(value) {
            self.0.insert(key.to_owned(), attribute);
        }
    }
}

/// Reads propagation fields from SQS message attributes: `String` (and `String.*` custom-typed)
/// values; binary and list values read as absent. Keys match ASCII case-insensitively.
pub struct MessageAttributesExtractor<'a>(pub &'a HashMap<String, MessageAttributeValue>);

impl std::fmt::Debug for MessageAttributesExtractor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MessageAttributesExtractor")
    }
}

fn string_of(value: &MessageAttributeValue) -> Option<&str> {
    value.data_type.starts_with("String").then_some(())?;
    value.string_value.as_deref()
}

fn get_from<'a>(attributes: &'a HashMap<String, MessageAttributeValue>, key: &str) -> Option<&'a str> {
    if let Some(v) = attributes.get(key) {
        return string_of(v);
    }
    attributes.iter().filter(|(k, _)| k.eq_ignore_ascii_case(key)).find_map(|(_, v)| string_of(v))
}

impl Extractor for MessageAttributesExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        get_from(self.0, key)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Converts an X-Ray trace header (`Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1`,
/// fields in any order) to a W3C `traceparent`. `None` when `Root` or `Parent` is missing or malformed.
///
/// Format: AWS X-Ray developer guide, "Tracing header"; the Lambda SQS convention reads it from the
/// `AWSTraceHeader` system attribute (semconv `docs/faas/aws-lambda.md`).
pub fn xray_to_traceparent(header: &str) -> Option<String> {
    let (mut root, mut parent, mut sampled) = (None, None, false);
    for part in header.split(';').map(str::trim) {
        match part.split_once('=') {
            Some(("Root", v)) => root = Some(v),
            Some(("Parent", v)) => parent = Some(v),
            Some(("Sampled", v)) => sampled = v == "1",
            _ => {}
        }
    }
    let mut fields = root?.split('-');
    let (version, time, id) = (fields.next()?, fields.next()?, fields.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|c| c.is_ascii_hexdigit());
    if version != "1" || !hex(time, 8) || !hex(id, 24) || fields.next().is_some() {
        return None;
    }
    let parent = parent?;
    let zero = |s: &str| s.bytes().all(|c| c == b'0');
    // All-zero ids are invalid in W3C Trace Context (reliability review L5).
    if !hex(parent, 16) || zero(parent) || (zero(time) && zero(id)) {
        return None;
    }
    Some(format!(
        "00-{}{}-{}-{}",
        time.to_ascii_lowercase(),
        id.to_ascii_lowercase(),
        parent.to_ascii_lowercase(),
        if sampled { "01" } else { "00" }
    ))
}

/// The `String` message attributes of an SNS notification envelope (the body SQS receives from an
/// SNS subscription without raw message delivery):
/// `{"Type":"Notification", ..., "MessageAttributes": {"traceparent": {"Type":"String","Value":"00-…"}}}`.
/// Empty for any other body.
///
/// Cheap for every other body (reliability review M9): a body that is not a JSON object holding
/// `"Notification"` is not parsed at all (one vectorised scan, `memchr::memmem`), and an envelope
/// is read into the few fields needed (the rest of the document is skipped, never built into a
/// DOM). The envelope's keys may come in any order: AWS writes `Type` first, moto sorts them (and
/// `Type` then follows the whole `Message`).
pub(crate) fn sns_envelope_attributes(body: &str) -> Vec<(String, String)> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        #[serde(rename = "Type")]
        kind: String,
        #[serde(rename = "MessageAttributes", default)]
        attributes: HashMap<String, Attribute>,
    }
    #[derive(serde::Deserialize)]
    struct Attribute {
        #[serde(rename = "Type")]
        kind: String,
        #[serde(rename = "Value")]
        value: Option<String>,
    }
    if !body.trim_start().starts_with('{')
        || memchr::memmem::find(body.as_bytes(), b"\"Notification\"").is_none()
    {
        return Vec::new();
    }
    let Ok(envelope) = serde_json::from_str::<Envelope>(body) else { return Vec::new() };
    if envelope.kind != "Notification" {
        return Vec::new();
    }
    envelope
        .attributes
        .into_iter()
        .filter(|(_, a)| a.kind.starts_with("String"))
        .filter_map(|(k, a)| Some((k, a.value?)))
        .collect()
}

/// The message attributes of a received message: from aws-sdk-sqs, or (feature `lambda`) from
/// the `SqsEvent` record a Lambda function is handed.
#[derive(Clone, Copy)]
pub(crate) enum Attributes<'a> {
    None,
    Sdk(&'a HashMap<String, MessageAttributeValue>),
    /// A received message's attributes (if any) and those its traced receive removed from it
    /// ([`crate::config::Removed`]): read as one set, as if put back, without copying the message.
    Split(Option<&'a HashMap<String, MessageAttributeValue>>, &'a [(String, MessageAttributeValue)]),
    #[cfg(feature = "lambda")]
    Lambda(&'a HashMap<String, aws_lambda_events::sqs::SqsMessageAttribute>),
}

impl<'a> Attributes<'a> {
    fn get(self, key: &str) -> Option<&'a str> {
        match self {
            Attributes::None => None,
            Attributes::Sdk(a) => get_from(a, key),
            Attributes::Split(kept, removed) => {
                let exact = removed.iter().find(|(k, _)| k == key).map(|(_, v)| v);
                if let Some(v) = exact.or_else(|| kept.and_then(|a| a.get(key))) {
                    return string_of(v);
                }
                let removed = removed.iter().map(|(k, v)| (k, v));
                removed
                    .chain(kept.into_iter().flatten())
                    .filter(|(k, _)| k.eq_ignore_ascii_case(key))
                    .find_map(|(_, v)| string_of(v))
            }
            #[cfg(feature = "lambda")]
            Attributes::Lambda(a) => {
                let string = |v: &'a aws_lambda_events::sqs::SqsMessageAttribute| {
                    v.data_type.as_deref().is_some_and(|t| t.starts_with("String")).then_some(())?;
                    v.string_value.as_deref()
                };
                match a.get(key) {
                    Some(v) => string(v),
                    None => {
                        a.iter().filter(|(k, _)| k.eq_ignore_ascii_case(key)).find_map(|(_, v)| string(v))
                    }
                }
            }
        }
    }

    fn keys(self) -> Vec<&'a str> {
        match self {
            Attributes::None => Vec::new(),
            Attributes::Sdk(a) => a.keys().map(String::as_str).collect(),
            Attributes::Split(kept, removed) => removed
                .iter()
                .map(|(k, _)| k.as_str())
                .chain(kept.into_iter().flat_map(|a| a.keys().map(String::as_str)))
                .collect(),
            #[cfg(feature = "lambda")]
            Attributes::Lambda(a) => a.keys().map(String::as_str).collect(),
        }
    }
}

/// The carrier of a received message, read per field: its message attributes; for a field they
/// do not hold, the message attributes of an SNS notification envelope in the body (parsed only
/// when the attributes hold no `traceparent`); for `traceparent` alone, last, the `AWSTraceHeader`
/// system attribute converted. So a B3 or Jaeger context in the attributes is never hidden by an
/// X-Ray header (feature table row 16).
pub(crate) struct ReceivedMessageExtractor<'a> {
    attributes: Attributes<'a>,
    sns: Vec<(String, String)>,
    xray: Option<String>,
}

impl<'a> ReceivedMessageExtractor<'a> {
    pub(crate) fn new(message: &'a Message) -> Self {
        let attributes = message.message_attributes.as_ref().map_or(Attributes::None, Attributes::Sdk);
        let trace_header = message
            .attributes
            .as_ref()
            .and_then(|a| a.get(&MessageSystemAttributeName::AwsTraceHeader))
            .map(String::as_str);
        Self::from_parts(attributes, message.body.as_deref(), trace_header)
    }

    /// The carrier of `message` with what its traced receive removed from it put back (read in
    /// place: the message is not copied).
    pub(crate) fn with_removed(message: &'a Message, removed: &'a Removed) -> Self {
        let attributes = Attributes::Split(message.message_attributes.as_ref(), &removed.attributes);
        let trace_header = removed.system(message, &MessageSystemAttributeName::AwsTraceHeader);
        Self::from_parts(attributes, message.body.as_deref(), trace_header)
    }

    /// The carrier of a message with these attributes, body and `AWSTraceHeader`.
    pub(crate) fn from_parts(
        attributes: Attributes<'a>,
        body: Option<&str>,
        trace_header: Option<&str>,
    ) -> Self {
        let has_context = attributes.get("traceparent").is_some();
        let sns =
            if has_context { Vec::new() } else { body.map(sns_envelope_attributes).unwrap_or_default() };
        let xray = if has_context || sns.iter().any(|(k, _)| k.eq_ignore_ascii_case("traceparent")) {
            None
        } else {
            trace_header.and_then(xray_to_traceparent)
        };
        ReceivedMessageExtractor { attributes, sns, xray }
    }
}

impl ReceivedMessageExtractor<'_> {
    /// Whether the creation context comes from the `AWSTraceHeader` alone (no `traceparent` in
    /// the message attributes or an SNS envelope).
    #[cfg(feature = "lambda")]
    pub(crate) fn context_from_xray_only(&self) -> bool {
        self.xray.is_some()
    }
}

impl Extractor for ReceivedMessageExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        if let Some(value) = self.attributes.get(key) {
            return Some(value);
        }
        if let Some((_, value)) = self.sns.iter().rev().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
            return Some(value);
        }
        self.xray.as_deref().filter(|_| key.eq_ignore_ascii_case("traceparent"))
    }

    fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.attributes.keys();
        keys.extend(self.sns.iter().map(|(k, _)| k.as_str()));
        if self.xray.is_some() {
            keys.push("traceparent");
        }
        keys
    }
}

/// Bytes SQS counts for one message attribute: its name, data type and value(s).
pub(crate) fn attribute_size(name: &str, value: &MessageAttributeValue) -> usize {
    name.len()
        + value.data_type.len()
        + value.string_value.as_ref().map_or(0, String::len)
        + value.binary_value.as_ref().map_or(0, |b| b.as_ref().len())
        + value.string_list_values.as_ref().map_or(0, |l| l.iter().map(String::len).sum())
        + value.binary_list_values.as_ref().map_or(0, |l| l.iter().map(|b| b.as_ref().len()).sum())
}

/// Bytes SQS counts for a message: its body plus every message attribute.
pub(crate) fn message_size(body: &str, attributes: Option<&HashMap<String, MessageAttributeValue>>) -> usize {
    body.len() + attributes.map_or(0, |a| a.iter().map(|(k, v)| attribute_size(k, v)).sum())
}

/// Writes `fields` (collected propagation fields) into `attributes` within the 10-attribute
/// limit and within `budget` bytes (name + `String` + value per field), degraded as the core's
/// [`fit_fields`](otel_messaging::__private::fit_fields) does: all of them, else without
/// `baggage`, else `traceparent` alone, else nothing. Returns the bytes written, or `None` when
/// nothing could be.
pub(crate) fn inject_within_limit(
    fields: Vec<otel_messaging::__private::Field>,
    attributes: &mut HashMap<String, MessageAttributeValue>,
    budget: usize,
) -> Option<usize> {
    let carrier = &mut MessageAttributesInjector(attributes);
    otel_messaging::__private::inject_attributes(
        fields,
        carrier,
        MAX_MESSAGE_ATTRIBUTES,
        "String".len(),
        budget,
    )
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;

    /// A B3 context in the message attributes is read even when an `AWSTraceHeader` is present;
    /// the X-Ray header still answers `traceparent` (feature table row 16).
    #[test]
    fn xray_fallback_never_hides_another_propagators_fields() {
        let message = Message::builder()
            .message_attributes(
                "b3",
                string_attribute("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1".into()).expect("attr"),
            )
            .attributes(
                MessageSystemAttributeName::AwsTraceHeader,
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
            )
            .build();
        let extractor = ReceivedMessageExtractor::new(&message);
        assert_eq!(extractor.get("b3"), Some("80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1"));
        assert_eq!(
            extractor.get("traceparent"),
            Some("00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01")
        );
        let mut keys = extractor.keys();
        keys.sort_unstable();
        assert_eq!(keys, ["b3", "traceparent"]);
    }

    #[test]
    fn xray_headers_convert_to_traceparent() {
        assert_eq!(
            xray_to_traceparent("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1")
                .as_deref(),
            Some("00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01")
        );
        assert_eq!(
            xray_to_traceparent("Parent=53995c3f42cd8ad8;Root=1-5759E988-bd862e3fe1be46a994272793")
                .as_deref(),
            Some("00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-00")
        );
        for bad in [
            "Root=1-00000000-000000000000000000000000;Parent=53995c3f42cd8ad8;Sampled=1",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=0000000000000000;Sampled=1",
            "",
            "Root=1-5759e988;Parent=53995c3f42cd8ad8",
            "Root=2-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
            "Root=1-5759e988-bd862e3fe1be46a994272793",
            "Root=1-5759e98g-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
            "Root=1-5759e988a-bd862e3fe1be46a99427279;Parent=53995c3f42cd8ad8",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8adz",
            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad",
            "Root=1-5759e988-bd862e3fe1be46a994272793-ff;Parent=53995c3f42cd8ad8",
        ] {
            assert_eq!(xray_to_traceparent(bad), None, "{bad}");
        }
        // Only an all-zero trace id is invalid, not a zero half of it.
        for (header, traceparent) in [
            (
                "Root=1-00000000-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8",
                "00-00000000bd862e3fe1be46a994272793-53995c3f42cd8ad8-00",
            ),
            (
                "Root=1-5759e988-000000000000000000000000;Parent=53995c3f42cd8ad8;Sampled=1",
                "00-5759e988000000000000000000000000-53995c3f42cd8ad8-01",
            ),
        ] {
            assert_eq!(xray_to_traceparent(header).as_deref(), Some(traceparent), "{header}");
        }
    }

    /// Sizes as SQS counts them: the body, and per attribute its name, data type and every value.
    #[test]
    fn message_sizes_count_body_names_types_and_values() {
        let string = string_attribute("0123456789".into()).expect("attr");
        assert_eq!(attribute_size("traceparent", &string), 11 + 6 + 10);
        let binary = MessageAttributeValue::builder()
            .data_type("Binary")
            .binary_value(aws_sdk_sqs::primitives::Blob::new(vec![0_u8; 7]))
            .build()
            .expect("attr");
        assert_eq!(attribute_size("b", &binary), 1 + 6 + 7);
        let lists = MessageAttributeValue::builder()
            .data_type("String.list")
            .string_list_values("ab")
            .string_list_values("cde")
            .binary_list_values(aws_sdk_sqs::primitives::Blob::new(vec![1_u8; 4]))
            .build()
            .expect("attr");
        assert_eq!(attribute_size("l", &lists), 1 + 11 + 5 + 4);
        let attributes: HashMap<String, MessageAttributeValue> =
            [("traceparent".to_string(), string), ("b".to_string(), binary)].into();
        assert_eq!(message_size("hello", Some(&attributes)), 5 + 27 + 14);
        assert_eq!(message_size("hello", None), 5);
    }

    /// The X-Ray header is the context only when neither the attributes nor an SNS envelope carry
    /// a `traceparent`; an envelope is looked for only in a JSON object that names a notification.
    #[test]
    fn the_xray_header_is_the_last_resort() {
        let header = "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";
        let from_xray = "00-5759e988bd862e3fe1be46a994272793-53995c3f42cd8ad8-01";
        let none = ReceivedMessageExtractor::from_parts(Attributes::None, Some("plain body"), Some(header));
        assert_eq!((none.get("traceparent"), none.keys()), (Some(from_xray), vec!["traceparent"]));
        let own: HashMap<String, MessageAttributeValue> =
            [("traceparent".to_string(), string_attribute("00-own".into()).expect("attr"))].into();
        let attributes = ReceivedMessageExtractor::from_parts(Attributes::Sdk(&own), None, Some(header));
        assert_eq!(attributes.get("traceparent"), Some("00-own"));
        let envelope = r#"{"Type":"Notification","MessageAttributes":{"traceparent":{"Type":"String","Value":"00-sns"}}}"#;
        let sns = ReceivedMessageExtractor::from_parts(Attributes::None, Some(envelope), Some(header));
        assert_eq!((sns.get("traceparent"), sns.keys()), (Some("00-sns"), vec!["traceparent"]));
        for not_an_envelope in [r#"["Notification"]"#, r#"{"Type":"Other"}"#] {
            let body = ReceivedMessageExtractor::from_parts(Attributes::None, Some(not_an_envelope), None);
            assert_eq!(body.get("traceparent"), None, "{not_an_envelope}");
        }
        #[cfg(feature = "lambda")]
        {
            assert!(none.context_from_xray_only());
            assert!(!attributes.context_from_xray_only() && !sns.context_from_xray_only());
        }
    }

    /// An attribute the message already has under a field's exact name is the sender's own and
    /// is kept (only the other fields are written); the extractor lists every attribute name.
    #[test]
    fn a_present_field_is_kept_and_the_others_written() {
        let mut a: HashMap<String, MessageAttributeValue> = (0..4)
            .map(|i| (format!("a{i}"), string_attribute("v".into()).expect("attr")))
            .chain([("traceparent".to_string(), string_attribute("the sender's".into()).expect("attr"))])
            .collect();
        let fields = vec![("traceparent".into(), "ours".to_string()), ("baggage".into(), "k=v".to_string())];
        assert!(inject_within_limit(fields, &mut a, usize::MAX).is_some());
        assert_eq!(a.len(), 6);
        let extractor = MessageAttributesExtractor(&a);
        assert_eq!(
            (extractor.get("traceparent"), extractor.get("baggage")),
            (Some("the sender's"), Some("k=v"))
        );
        let mut keys = extractor.keys();
        keys.sort_unstable();
        assert_eq!(keys, ["a0", "a1", "a2", "a3", "baggage", "traceparent"]);
    }

    #[test]
    fn sns_notification_envelopes_are_read() {
        let body = r#"{"Type":"Notification","MessageId":"m","Message":"hi","MessageAttributes":{"traceparent":{"Type":"String","Value":"00-ab-cd-01"},"n":{"Type":"Number","Value":"1"}}}"#;
        assert_eq!(
            sns_envelope_attributes(body),
            vec![("traceparent".to_string(), "00-ab-cd-01".to_string())]
        );
        // Keys sorted and pretty-printed, as moto writes them: `Type` after the whole message.
        let sorted = format!(
            "{{\n  \"Message\": \"{}\",\n  \"MessageAttributes\": {{\n    \"traceparent\": {{\"Type\": \"String\", \"Value\": \"00-ab-cd-01\"}}\n  }},\n  \"Type\": \"Notification\"\n}}",
            "x".repeat(500)
        );
        assert_eq!(
            sns_envelope_attributes(&sorted),
            vec![("traceparent".to_string(), "00-ab-cd-01".to_string())]
        );
        for other in ["hi", "{", r#"{"Type":"SubscriptionConfirmation"}"#, r#"{"Type":"Notification"}"#] {
            assert!(sns_envelope_attributes(other).is_empty(), "{other}");
        }
    }

    #[test]
    fn limit_degrades_to_traceparent_then_nothing() {
        let fields = || vec![("traceparent".into(), "tp".to_string()), ("baggage".into(), "k=v".to_string())];
        let user = |n: usize| -> HashMap<String, MessageAttributeValue> {
            (0..n).map(|i| (format!("a{i}"), string_attribute("v".into()).expect("attr"))).collect()
        };
        let mut a = user(8);
        assert!(inject_within_limit(fields(), &mut a, usize::MAX).is_some());
        assert_eq!(a.len(), 10);
        let mut a = user(9);
        assert!(inject_within_limit(fields(), &mut a, usize::MAX).is_some());
        assert!(a.contains_key("traceparent") && !a.contains_key("baggage"));
        let mut a = user(10);
        assert!(inject_within_limit(fields(), &mut a, usize::MAX).is_none());
        assert_eq!(a.len(), 10);
    }

    /// SQS attribute names are case-sensitive: a user's `TraceParent` stays (review finding L4).
    #[test]
    fn inject_replaces_the_exact_name_only() {
        let mut a: HashMap<String, MessageAttributeValue> =
            [("TraceParent".to_string(), string_attribute("user's own".into()).expect("attr"))].into();
        MessageAttributesInjector(&mut a).set("traceparent", "new".into());
        assert_eq!(a.len(), 2);
        assert_eq!(a["TraceParent"].string_value.as_deref(), Some("user's own"));
        assert_eq!(MessageAttributesExtractor(&a).get("traceparent"), Some("new"), "the exact name wins");
    }

    #[test]
    fn size_budget_drops_baggage_then_tracestate_then_everything() {
        let fields = || {
            vec![
                ("traceparent".into(), "t".repeat(55)),
                ("tracestate".into(), "s".repeat(100)),
                ("baggage".into(), "b".repeat(1000)),
            ]
        };
        let cost = |k: &str, n: usize| k.len() + "String".len() + n;
        let all = cost("traceparent", 55) + cost("tracestate", 100) + cost("baggage", 1000);
        let keys = |a: &HashMap<String, MessageAttributeValue>| {
            let mut k: Vec<_> = a.keys().cloned().collect();
            k.sort();
            k
        };
        let mut a = HashMap::new();
        assert_eq!(inject_within_limit(fields(), &mut a, all), Some(all));
        assert_eq!(keys(&a), ["baggage", "traceparent", "tracestate"]);
        let mut a = HashMap::new();
        assert!(inject_within_limit(fields(), &mut a, all - 1).is_some());
        assert_eq!(keys(&a), ["traceparent", "tracestate"]);
        let mut a = HashMap::new();
        assert!(inject_within_limit(fields(), &mut a, cost("traceparent", 55)).is_some());
        assert_eq!(keys(&a), ["traceparent"]);
        let mut a = HashMap::new();
        assert_eq!(inject_within_limit(fields(), &mut a, 10), None);
        assert!(a.is_empty());
    }
}
