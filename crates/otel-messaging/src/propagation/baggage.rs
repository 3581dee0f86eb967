//! The W3C Baggage header: encoding a context's baggage and decoding a (validated, bounded)
//! header, on the OpenTelemetry API alone, so that [`super::W3cPropagator`] needs no SDK.
//!
//! The wire format is the SDK `BaggagePropagator`'s (opentelemetry_sdk 0.33): members joined by
//! `,`, each `name=value` with name and value trimmed and percent-encoded (controls, space, `"`,
//! `,`, `;`, `=`), then `;` and the trimmed metadata when there is any. A test compares the two
//! on every input it generates.
//!
//! Decoding reads what the SDK reads, also where the SDK departs from W3C: W3C Baggage allows a
//! raw `=` inside a value (`baggage-octet` includes `%x3D`), the SDK keeps only what lies between
//! the first and the second `=`, and so does this codec — a Rust service reading the same header
//! with either gets the same baggage (the `traceparent` fuzz target checks it on arbitrary input).
//!
//! Source: W3C Baggage, §3.3 "Definition" (`baggage-string`, `list-member`, `property`).

use opentelemetry::{
    Context,
    baggage::{BaggageExt, KeyValueMetadata},
};
use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// Bytes percent-encoded in names and values (the SDK's set).
const ENCODED: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b';').add(b',').add(b'=');

/// `cx`'s baggage as a W3C `baggage` header value; `None` when it has none.
pub(super) fn encode(cx: &Context) -> Option<String> {
    let baggage = cx.baggage();
    if baggage.is_empty() {
        return None;
    }
    let mut out = String::new();
    for (i, (name, (value, metadata))) in baggage.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.extend(utf8_percent_encode(name.as_str().trim(), ENCODED));
        out.push('=');
        out.extend(utf8_percent_encode(value.as_str().trim(), ENCODED));
        let metadata = metadata.as_str().trim();
        if !metadata.is_empty() {
            out.push(';');
            out.push_str(metadata);
        }
    }
    Some(out)
}

/// `cx` with the members of `header` (already cut to the W3C limits by the strict extractor)
/// added to its baggage. A member without `=`, or whose name, value or properties are not UTF-8
/// once percent-decoded, is skipped.
pub(super) fn decode(cx: &Context, header: &str) -> Context {
    cx.with_baggage(header.split(',').filter_map(member))
}

/// One `list-member`: `name=value` and optional `;`-separated properties.
fn member(text: &str) -> Option<KeyValueMetadata> {
    let mut parts = text.split(';');
    // As the SDK: the name before the first `=`, the value up to a second one.
    let mut name_value = parts.next()?.split('=');
    let (name, value) = (name_value.next()?, name_value.next()?);
    let name = percent_decode_str(name).decode_utf8().ok()?;
    let value = percent_decode_str(value).decode_utf8().ok()?;
    // Properties that decode are joined with `;` (empty ones included), as the SDK does.
    let mut properties = String::new();
    let decoded = parts.filter_map(|property| percent_decode_str(property).decode_utf8().ok());
    for (i, property) in decoded.enumerate() {
        if i > 0 {
            properties.push(';');
        }
        properties.push_str(property.trim());
    }
    Some(KeyValueMetadata::new(name.trim().to_owned(), value.trim().to_owned(), properties.as_str()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::collections::HashMap;

    use opentelemetry::{KeyValue, baggage::BaggageMetadata, propagation::TextMapPropagator};
    use opentelemetry_sdk::propagation::BaggagePropagator;
    use proptest::prelude::*;

    use super::*;

    fn sdk_header(cx: &Context) -> Option<String> {
        let mut map = HashMap::new();
        BaggagePropagator::new().inject_context(cx, &mut map);
        map.remove("baggage")
    }

    fn sdk_decoded(header: &str) -> Vec<(String, String, String)> {
        let map = HashMap::from([("baggage".to_owned(), header.to_owned())]);
        members(&BaggagePropagator::new().extract(&map))
    }

    fn members(cx: &Context) -> Vec<(String, String, String)> {
        let mut out: Vec<_> = cx
            .baggage()
            .iter()
            .map(|(k, (v, m))| (k.to_string(), v.to_string(), m.as_str().to_owned()))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn encodes_as_the_sdk() {
        let cx = Context::new().with_baggage([
            KeyValueMetadata::new("user id", "a b,c;d=e\"", BaggageMetadata::from("p1;p2=x")),
            KeyValueMetadata::new(" k ", " v ", BaggageMetadata::default()),
            KeyValueMetadata::new("ünï", "cödé", BaggageMetadata::default()),
        ]);
        assert_eq!(encode(&cx), sdk_header(&cx));
        assert_eq!(encode(&Context::new()), None);
    }

    #[test]
    fn decodes_as_the_sdk_where_w3c_agrees() {
        for header in [
            "k=v",
            "key1 =   val1,  key2 =val2   ",
            "user%20id=a%20b%2Cc;p1;p2=x,k=v",
            "k=v;%20meta%20",
            "k=v;;a;%FF;b",
            "noequals,k=v",
            "k=%FF,j=w",
            "",
        ] {
            assert_eq!(members(&decode(&Context::new(), header)), sdk_decoded(header), "{header}");
        }
    }

    #[test]
    fn cuts_a_value_at_a_second_equals_sign_as_the_sdk_does() {
        for header in ["token=a=b==", "k=a%3Db=c", "congo=t61\0baggage\0userId=alice"] {
            assert_eq!(members(&decode(&Context::new(), header)), sdk_decoded(header), "{header}");
        }
        let cx = decode(&Context::new(), "token=a=b==");
        assert_eq!(members(&cx), [("token".to_owned(), "a".to_owned(), String::new())]);
    }

    proptest! {
        #[test]
        fn round_trips_and_matches_the_sdk(
            entries in proptest::collection::vec(("[a-zA-Z0-9 _.,;=\"é-]{1,12}", "[ -~é]{0,16}"), 1..6),
        ) {
            let cx = Context::new().with_baggage(
                entries.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
            );
            let header = encode(&cx);
            prop_assert_eq!(&header, &sdk_header(&cx));
            let header = header.unwrap_or_default();
            prop_assert_eq!(members(&decode(&Context::new(), &header)), sdk_decoded(&header));
        }
    }
}
