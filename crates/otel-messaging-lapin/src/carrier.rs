//! Carriers over the AMQP `headers` table (lapin's [`FieldTable`]): [`FieldTableInjector`] and
//! [`FieldTableExtractor`]. Pure adapters; no globals, never fail, never panic.

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use opentelemetry::propagation::{Extractor, Injector};

/// Writes propagation fields into an AMQP `headers` table as `LongString` values (field type `S`,
/// what the Java, Python (pika) and JS instrumentations write).
///
/// Setting a key replaces the existing entry of exactly that key (AMQP table keys are
/// case-sensitive, so a user's `Baggage` entry is left alone), so a message never carries two
/// `traceparent` entries. Never fails.
pub struct FieldTableInjector<'a>(pub &'a mut FieldTable);

impl std::fmt::Debug for FieldTableInjector<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("FieldTableInjector").field(&self.0.inner().len()).finish()
    }
}

impl Injector for FieldTableInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(ShortString::from(key), AMQPValue::LongString(LongString::from(value)));
    }
}

/// Reads propagation fields from an AMQP `headers` table.
///
/// Accepts `LongString` (Java, pika), `ShortString` and byte-array (.NET) values holding UTF-8;
/// every other value type, and non-UTF-8 bytes, read as absent. Keys match ASCII
/// case-insensitively; an exact-case match wins over other spellings.
pub struct FieldTableExtractor<'a>(pub &'a FieldTable);

impl std::fmt::Debug for FieldTableExtractor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FieldTableExtractor")
    }
}

pub(crate) fn as_str(value: &AMQPValue) -> Option<&str> {
    match value {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        AMQPValue::ByteArray(b) => std::str::from_utf8(b.as_slice()).ok(),
        _ => None,
    }
}

impl Extractor for FieldTableExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let map = self.0.inner();
        if let Some(value) = map.get(key) {
            return as_str(value);
        }
        map.iter().filter(|(k, _)| k.as_str().eq_ignore_ascii_case(key)).find_map(|(_, v)| as_str(v))
    }

    fn keys(&self) -> Vec<&str> {
        self.0.inner().keys().map(ShortString::as_str).collect()
    }
}
