//! Carriers over SNS message attributes ([`MessageAttributesInjector`],
//! [`MessageAttributesExtractor`]) and the 10-attribute limit.
//!
//! SNS facts (aws-sdk-sns 1.121, checked against moto 5.2): every value needs a `DataType`
//! (`String` here) and a non-empty value; an SQS subscriber with raw message delivery receives the
//! attributes as SQS message attributes, where at most 10 are allowed (a publish with more is not
//! delivered to it), so a traced publish never takes the eleventh; without raw delivery they travel
//! inside the JSON notification envelope, which the SQS crate reads.

use std::collections::HashMap;

use aws_sdk_sns::types::MessageAttributeValue;
use opentelemetry::propagation::{Extractor, Injector};

/// Most message attributes a traced publish leaves on a message (those an SQS subscriber with raw
/// message delivery can receive): 10.
pub(crate) const MAX_MESSAGE_ATTRIBUTES: usize = 10;

/// Writes propagation fields as `String` message attributes. Empty values are never written (SNS
/// rejects them); a key replaces any attribute of that key. Never fails: a value the SDK cannot
/// build is skipped. Does **not** enforce the 10-attribute limit (the traced publishes do).
pub struct MessageAttributesInjector<'a>(pub &'a mut HashMap<String, MessageAttributeValue>);

impl std::fmt::Debug for MessageAttributesInjector<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("MessageAttributesInjector").field(&self.0.len()).finish()
    }
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
        if let Ok(attribute) =
            MessageAttributeValue::builder().data_type("String").string_value(value).build()
        {
            self.0.insert(key.to_owned(), attribute);
        }
    }
}

/// Reads propagation fields from SNS message attributes: `String` (and `String.*` custom-typed)
/// values; binary values read as absent. Keys match ASCII case-insensitively.
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

impl Extractor for MessageAttributesExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        if let Some(v) = self.0.get(key) {
            return string_of(v);
        }
        self.0.iter().filter(|(k, _)| k.eq_ignore_ascii_case(key)).find_map(|(_, v)| string_of(v))
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Reads propagation fields from the message attributes of an `SnsEvent` record (feature
/// `lambda`): `String` values (`Type` `String`, `String.*`); binary ones read as absent. Keys
/// match ASCII case-insensitively.
#[cfg(feature = "lambda")]
pub(crate) struct LambdaAttributesExtractor<'a>(
    pub(crate) &'a HashMap<String, aws_lambda_events::sns::MessageAttribute>,
);

#[cfg(feature = "lambda")]
impl Extractor for LambdaAttributesExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        fn string(v: &aws_lambda_events::sns::MessageAttribute) -> Option<&str> {
            v.data_type.starts_with("String").then_some(v.value.as_str())
        }
        match self.0.get(key) {
            Some(v) => string(v),
            None => self.0.iter().filter(|(k, _)| k.eq_ignore_ascii_case(key)).find_map(|(_, v)| string(v)),
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Bytes SNS counts for a message: its body (and subject) plus every message attribute's name,
/// data type and value.
pub(crate) fn message_size(
    body: &str,
    subject: Option<&str>,
    attributes: Option<&HashMap<String, MessageAttributeValue>>,
) -> usize {
    let attribute = |(name, value): (&String, &MessageAttributeValue)| {
        name.len()
            + value.data_type.len()
            + value.string_value.as_ref().map_or(0, String::len)
            + value.binary_value.as_ref().map_or(0, |b| b.as_ref().len())
    };
    body.len() + subject.map_or(0, str::len) + attributes.map_or(0, |a| a.iter().map(attribute).sum())
}

/// Writes `fields` (collected propagation fields) into `attributes` within the 10-attribute limit
/// and `budget` bytes, degraded as the core's [`fit_fields`](otel_messaging::__private::fit_fields)
/// does: all of them, else without `baggage`, else `traceparent` alone, else nothing. Returns the
/// bytes written, or `None` when nothing could be.
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

    fn attribute(value: &str) -> MessageAttributeValue {
        MessageAttributeValue::builder().data_type("String").string_value(value).build().expect("attribute")
    }

    #[test]
    fn injects_strings_and_reads_them_back_case_insensitively() {
        let mut attributes = HashMap::new();
        let mut injector = MessageAttributesInjector(&mut attributes);
        injector.set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
        injector.set("tracestate", String::new());
        assert_eq!(attributes.len(), 1, "empty values are not written");
        let extractor = MessageAttributesExtractor(&attributes);
        assert!(extractor.get("TraceParent").is_some());
        let binary = MessageAttributeValue::builder()
            .data_type("Binary")
            .binary_value(aws_sdk_sns::primitives::Blob::new(b"x".to_vec()))
            .build()
            .expect("attribute");
        attributes.insert("baggage".into(), binary);
        assert_eq!(MessageAttributesExtractor(&attributes).get("baggage"), None, "binary reads as absent");
    }

    /// Nine attributes leave room for `traceparent` alone; ten leave none; the user's own are
    /// never replaced.
    #[test]
    fn the_limit_degrades_the_context_and_never_displaces_user_attributes() {
        let fields = || {
            vec![
                (
                    std::borrow::Cow::Borrowed("traceparent"),
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
                ),
                (std::borrow::Cow::Borrowed("baggage"), "tenant=acme".to_owned()),
            ]
        };
        let mut nine: HashMap<String, MessageAttributeValue> =
            (0..9).map(|i| (format!("a{i}"), attribute("v"))).collect();
        assert!(inject_within_limit(fields(), &mut nine, usize::MAX).is_some());
        assert_eq!(nine.len(), 10);
        assert!(nine.contains_key("traceparent") && !nine.contains_key("baggage"));
        let mut ten: HashMap<String, MessageAttributeValue> =
            (0..10).map(|i| (format!("a{i}"), attribute("v"))).collect();
        assert_eq!(inject_within_limit(fields(), &mut ten, usize::MAX), None);
        assert_eq!(ten.len(), 10);
        let mut tiny = HashMap::new();
        assert_eq!(inject_within_limit(fields(), &mut tiny, 10), None, "over the byte budget");
    }

    /// A field the message already holds under its exact name is the sender's own and kept; the
    /// extractor lists every attribute name.
    #[test]
    fn a_present_field_is_kept_and_the_others_written() {
        let mut attributes: HashMap<String, MessageAttributeValue> =
            [("traceparent".to_string(), attribute("the sender's")), ("a".to_string(), attribute("v"))]
                .into();
        let fields = vec![
            (std::borrow::Cow::Borrowed("traceparent"), "ours".to_owned()),
            (std::borrow::Cow::Borrowed("baggage"), "k=v".to_owned()),
        ];
        assert!(inject_within_limit(fields, &mut attributes, usize::MAX).is_some());
        let extractor = MessageAttributesExtractor(&attributes);
        assert_eq!(
            (extractor.get("traceparent"), extractor.get("baggage")),
            (Some("the sender's"), Some("k=v"))
        );
        let mut keys = extractor.keys();
        keys.sort_unstable();
        assert_eq!(keys, ["a", "baggage", "traceparent"]);
    }

    /// An `SnsEvent` record's attributes: `String` and `String.*` values, any ASCII case, an exact
    /// match first; `Binary` reads as absent.
    #[cfg(feature = "lambda")]
    #[test]
    fn lambda_attributes_read_strings_only() {
        let attribute = |kind: &str, value: &str| {
            let mut attribute = aws_lambda_events::sns::MessageAttribute::default();
            attribute.data_type = kind.to_owned();
            attribute.value = value.to_owned();
            attribute
        };
        let map: HashMap<String, aws_lambda_events::sns::MessageAttribute> = [
            ("traceparent".to_string(), attribute("String", "00-exact")),
            ("Baggage".to_string(), attribute("String.custom", "k=v")),
            ("binary".to_string(), attribute("Binary", "eA==")),
        ]
        .into();
        let x = LambdaAttributesExtractor(&map);
        assert_eq!(x.get("traceparent"), Some("00-exact"));
        assert_eq!(x.get("baggage"), Some("k=v"));
        assert_eq!(x.get("binary"), None);
        assert_eq!(x.get("missing"), None);
        assert_eq!(x.keys().len(), 3);
    }

    /// Sizes as SNS counts them: body, subject, and per attribute its name, type and value.
    #[test]
    fn message_sizes_count_body_subject_and_attributes() {
        let binary = MessageAttributeValue::builder()
            .data_type("Binary")
            .binary_value(aws_sdk_sns::primitives::Blob::new(vec![0_u8; 7]))
            .build()
            .expect("attr");
        let attributes: HashMap<String, MessageAttributeValue> =
            [("traceparent".to_string(), attribute("0123456789")), ("b".to_string(), binary)].into();
        assert_eq!(
            message_size("hello", Some("subj"), Some(&attributes)),
            5 + 4 + (11 + 6 + 10) + (1 + 6 + 7)
        );
        assert_eq!(message_size("hello", None, None), 5);
    }
}
