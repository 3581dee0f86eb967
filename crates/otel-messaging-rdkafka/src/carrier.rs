//! Carriers over Kafka record headers: [`HeadersInjector`] and [`HeadersExtractor`].
//!
//! Pure adapters between rdkafka's header types and the OpenTelemetry [`Injector`] /
//! [`Extractor`] traits; no globals, never fail, never panic.

use opentelemetry::propagation::{Extractor, Injector};
use rdkafka::message::{Header, Headers, OwnedHeaders};

/// Writes propagation fields into the headers of an outgoing Kafka record.
///
/// Setting a key **replaces** every existing header of that key (compared ASCII
/// case-insensitively), so a record never carries two `traceparent` headers. Values are written as
/// UTF-8 bytes, the encoding the Java, Python and JS instrumentations use. Never fails.
///
/// # Examples
///
/// ```
/// use opentelemetry::propagation::Injector;
/// use otel_messaging_rdkafka::HeadersInjector;
/// use rdkafka::message::{Headers, OwnedHeaders};
///
/// let mut headers = OwnedHeaders::new();
/// HeadersInjector(&mut headers).set("traceparent", "00-…-01".to_string());
/// assert_eq!(headers.count(), 1);
/// ```
pub struct HeadersInjector<'a>(pub &'a mut OwnedHeaders);

impl std::fmt::Debug for HeadersInjector<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("HeadersInjector").field(&self.0.count()).finish()
    }
}

impl Injector for HeadersInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        let present = self.0.iter().any(|h| h.key.eq_ignore_ascii_case(key));
        let headers = std::mem::take(self.0);
        let headers = if present {
            // OwnedHeaders has no removal: rebuild it without the old values, keeping order.
            let mut rebuilt = OwnedHeaders::new_with_capacity(headers.count());
            for h in headers.iter().filter(|h| !h.key.eq_ignore_ascii_case(key)) {
                rebuilt = rebuilt.insert(Header { key: h.key, value: h.value });
            }
            rebuilt
        } else {
            headers
        };
        *self.0 = headers.insert(Header { key, value: Some(value.as_bytes()) });
    }
}

/// Collects propagation fields, then writes them into headers held by value: the producer path
/// owns the record's headers, so it needs no placeholder `OwnedHeaders` (a C allocation) per field.
#[derive(Debug, Default)]
pub(crate) struct PendingHeaders(Vec<(std::borrow::Cow<'static, str>, String)>);

impl PendingHeaders {
    /// Writes the collected fields into `headers`, replacing existing keys (as [`HeadersInjector`]).
    pub(crate) fn apply(self, mut headers: OwnedHeaders) -> OwnedHeaders {
        if self.0.is_empty() {
            return headers;
        }
        let present = headers.iter().any(|h| self.0.iter().any(|(k, _)| h.key.eq_ignore_ascii_case(k)));
        if present {
            let mut rebuilt = OwnedHeaders::new_with_capacity(headers.count() + self.0.len());
            for h in headers.iter().filter(|h| !self.0.iter().any(|(k, _)| h.key.eq_ignore_ascii_case(k))) {
                rebuilt = rebuilt.insert(Header { key: h.key, value: h.value });
            }
            headers = rebuilt;
        }
        for (key, value) in &self.0 {
            headers = headers.insert(Header { key: key.as_ref(), value: Some(value.as_bytes()) });
        }
        headers
    }
}

impl Injector for PendingHeaders {
    fn set(&mut self, key: &str, value: String) {
        use std::borrow::Cow;
        // The W3C keys are static; any other propagator's keys are copied.
        let key: Cow<'static, str> = match key {
            "traceparent" => Cow::Borrowed("traceparent"),
            "tracestate" => Cow::Borrowed("tracestate"),
            "baggage" => Cow::Borrowed("baggage"),
            other => Cow::Owned(other.to_owned()),
        };
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(&key));
        self.0.push((key, value));
    }
}

/// Reads propagation fields from the headers of a received (or outgoing) Kafka record.
///
/// Works over any rdkafka [`Headers`] type: [`OwnedHeaders`], `BorrowedHeaders`.
/// Keys match ASCII case-insensitively. When a key repeats, [`get`](Extractor::get) returns the
/// **last** value (as Kafka's `lastHeader`), [`get_all`](Extractor::get_all) returns every value in
/// order. Null values and values that are not UTF-8 are skipped, never a panic.
pub struct HeadersExtractor<'a, H: ?Sized>(pub &'a H);

impl<H: ?Sized> std::fmt::Debug for HeadersExtractor<'_, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeadersExtractor")
    }
}

fn utf8<'h>(header: Header<'h, &'h [u8]>) -> Option<(&'h str, &'h str)> {
    let value = std::str::from_utf8(header.value?).ok()?;
    Some((header.key, value))
}

impl<H: Headers + ?Sized> Extractor for HeadersExtractor<'_, H> {
    fn get(&self, key: &str) -> Option<&str> {
        let count = self.0.count();
        (0..count)
            .rev()
            .filter_map(|i| self.0.try_get(i))
            .filter(|h| h.key.eq_ignore_ascii_case(key))
            .find_map(utf8)
            .map(|(_, v)| v)
    }

    fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = Vec::with_capacity(self.0.count());
        for h in (0..self.0.count()).filter_map(|i| self.0.try_get(i)) {
            if !keys.contains(&h.key) {
                keys.push(h.key);
            }
        }
        keys
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let values: Vec<&str> = (0..self.0.count())
            .filter_map(|i| self.0.try_get(i))
            .filter(|h| h.key.eq_ignore_ascii_case(key))
            .filter_map(utf8)
            .map(|(_, v)| v)
            .collect();
        (!values.is_empty()).then_some(values)
    }
}
