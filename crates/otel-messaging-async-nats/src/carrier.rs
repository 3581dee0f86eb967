//! Carriers over NATS message headers ([`async_nats::HeaderMap`]).
//!
//! `async_nats::HeaderMap::get` and `insert` panic on a header name with control characters,
//! non-ASCII bytes or `:`; these carriers never call them with a name they did not check.

use async_nats::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector};

/// Writes propagation fields into NATS headers, replacing an existing header of the same name.
///
/// A field whose name is not a valid NATS header name (printable ASCII without `:`), or whose value
/// holds a line break, is skipped rather than corrupting the message.
#[derive(Debug)]
pub struct HeaderMapInjector<'a>(pub &'a mut HeaderMap);

/// Whether `name` is a header name async-nats accepts without panicking.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
}

impl Injector for HeaderMapInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if valid_name(key) && !value.contains(['\r', '\n']) {
            self.0.insert(key, value);
        }
    }
}

/// Reads propagation fields from NATS headers: names compare case-insensitively (NATS headers are
/// MIME-style); a repeated header reads as its last value, `get_all` gives every value.
#[derive(Debug, Clone, Copy)]
pub struct HeaderMapExtractor<'a>(pub &'a HeaderMap);

impl Extractor for HeaderMapExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(name, _)| AsRef::<str>::as_ref(*name).eq_ignore_ascii_case(key))
            .and_then(|(_, values)| values.last())
            .map(async_nats::HeaderValue::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| AsRef::<str>::as_ref(name)).collect()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let values: Vec<&str> = self
            .0
            .iter()
            .filter(|(name, _)| AsRef::<str>::as_ref(*name).eq_ignore_ascii_case(key))
            .flat_map(|(_, values)| values.iter().map(async_nats::HeaderValue::as_str))
            .collect();
        (!values.is_empty()).then_some(values)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use opentelemetry::propagation::{Extractor as _, Injector as _};

    use super::*;

    #[test]
    fn round_trip_case_insensitive_last_value() {
        let mut headers = HeaderMap::new();
        HeaderMapInjector(&mut headers).set("traceparent", "00-a-b-01".into());
        headers.append("Baggage", "k=1");
        headers.append("Baggage", "k=2");
        let extractor = HeaderMapExtractor(&headers);
        assert_eq!(extractor.get("TraceParent"), Some("00-a-b-01"));
        assert_eq!(extractor.get("baggage"), Some("k=2"));
        assert_eq!(extractor.get_all("baggage"), Some(vec!["k=1", "k=2"]));
        assert_eq!(extractor.get("tracestate"), None);
        let mut keys = extractor.keys();
        keys.sort_unstable();
        assert_eq!(keys, ["Baggage", "traceparent"]);
    }

    #[test]
    fn invalid_names_and_values_are_skipped_not_panicked_on() {
        let mut headers = HeaderMap::new();
        let mut injector = HeaderMapInjector(&mut headers);
        injector.set("bad:name", "v".into());
        injector.set("bäd", "v".into());
        injector.set("", "v".into());
        injector.set("ok", "line\r\nbreak".into());
        assert!(headers.is_empty());
        assert_eq!(HeaderMapExtractor(&headers).get("bad:name"), None, "no panic on a query either");
    }
}
