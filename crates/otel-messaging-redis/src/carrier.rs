//! Carriers over Redis stream entry fields: [`FieldsInjector`] (fields about to be written by
//! `XADD`) and [`StreamFieldsExtractor`] (the field map of a read entry). Pure adapters.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector};
use redis::Value;

/// Writes propagation fields as `(field, value)` pairs, appended to an entry's fields by `XADD`.
/// Setting a key replaces any pair of that key (ASCII case-insensitive). Never fails.
pub struct FieldsInjector<'a>(pub &'a mut Vec<(String, String)>);

impl std::fmt::Debug for FieldsInjector<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("FieldsInjector").field(&self.0.len()).finish()
    }
}

impl Injector for FieldsInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.retain(|(k, _)| !k.eq_ignore_ascii_case(key));
        self.0.push((key.to_owned(), value));
    }
}

/// Reads propagation fields from a stream entry's field map (`StreamId::map`).
///
/// Bulk, simple and verbatim string values holding UTF-8 are read; everything else reads as
/// absent. Keys match ASCII case-insensitively (an exact match wins).
pub struct StreamFieldsExtractor<'a>(pub &'a HashMap<String, Value>);

impl std::fmt::Debug for StreamFieldsExtractor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StreamFieldsExtractor")
    }
}

/// Entries with at most this many fields are read by one pass over the fields, without hashing.
const SCAN_AT_MOST: usize = 8;

pub(crate) fn value_str(value: &Value) -> Option<&str> {
    match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
        Value::SimpleString(s) => Some(s),
        Value::VerbatimString { text, .. } => Some(text),
        _ => None,
    }
}

impl Extractor for StreamFieldsExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        // An entry has a few fields: one pass over them costs less than hashing the key
        // (SipHash) and then scanning anyway for a key that is absent, the common case for all
        // but `traceparent`. A large map is looked up by hash first.
        if self.0.len() > SCAN_AT_MOST
            && let Some(v) = self.0.get(key)
        {
            return value_str(v);
        }
        let mut folded = None;
        for (k, v) in self.0 {
            if k == key {
                return value_str(v);
            }
            if folded.is_none() && k.eq_ignore_ascii_case(key) {
                folded = value_str(v);
            }
        }
        folded
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Reads fields from flattened `XADD` arguments `[field, value, field, value, ...]`.
pub(crate) struct ArgPairsExtractor<'a>(pub(crate) &'a [Vec<u8>]);

impl Extractor for ArgPairsExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .chunks_exact(2)
            .rev()
            .filter(|p| std::str::from_utf8(&p[0]).is_ok_and(|k| k.eq_ignore_ascii_case(key)))
            .find_map(|p| std::str::from_utf8(&p[1]).ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.chunks_exact(2).filter_map(|p| std::str::from_utf8(&p[0]).ok()).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use opentelemetry::propagation::Extractor as _;
    use redis::Value;

    use super::{ArgPairsExtractor, StreamFieldsExtractor};

    /// Bulk, simple and verbatim strings are read; other values are absent; every field is a key.
    #[test]
    fn every_string_kind_of_value_is_read() {
        let map: HashMap<String, Value> = [
            ("bulk".to_string(), Value::BulkString(b"b".to_vec())),
            ("simple".to_string(), Value::SimpleString("s".into())),
            (
                "verbatim".to_string(),
                Value::VerbatimString { format: redis::VerbatimFormat::Text, text: "v".into() },
            ),
            ("number".to_string(), Value::Int(1)),
        ]
        .into();
        let x = StreamFieldsExtractor(&map);
        let read: Vec<_> = ["bulk", "simple", "verbatim", "number"].map(|k| x.get(k)).into();
        assert_eq!(read, [Some("b"), Some("s"), Some("v"), None]);
        let mut keys = x.keys();
        keys.sort_unstable();
        assert_eq!(keys, ["bulk", "number", "simple", "verbatim"]);
    }

    /// Flattened `XADD` arguments: the last pair of a key wins, in any ASCII case; a non-UTF-8
    /// name or value is skipped; an odd trailing argument is no pair.
    #[test]
    fn xadd_arguments_read_as_pairs() {
        let args: Vec<Vec<u8>> = [
            &b"traceparent"[..],
            b"first",
            b"payload",
            b"x",
            b"TraceParent",
            b"second",
            &[0xff],
            b"bad name",
            b"baggage",
            &[0xfe],
            b"dangling",
        ]
        .map(<[u8]>::to_vec)
        .into();
        let x = ArgPairsExtractor(&args);
        assert_eq!(x.get("traceparent"), Some("second"));
        assert_eq!(x.get("payload"), Some("x"));
        assert_eq!(x.get("baggage"), None);
        assert_eq!(x.get("dangling"), None);
        assert_eq!(x.keys(), ["traceparent", "payload", "TraceParent", "baggage"]);
    }
}
