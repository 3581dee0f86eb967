//! Carriers over Kafka record headers: [`HeadersInjector`] and [`HeadersExtractor`].
//!
//! Pure adapters between rdkafka's header types and the OpenTelemetry [`Injector`] /
//! [`Extractor`] traits; no globals, never fail, never panic.

use opentelemetry::propagation::{Extractor, Injector};
use otel_messaging::__private::CollectedFields;
use rdkafka::message::{Headers as _, OwnedHeaders};

/// Writes propagation fields into the headers of an outgoing Kafka record.
///
/// Setting a key **replaces** every existing header of exactly that key (Kafka header keys are
/// case-sensitive, so a user's `Baggage` header is left alone), so a record never carries two
/// `traceparent` headers; other headers keep their order. Values are written as UTF-8 bytes, the
/// encoding the Java, Python and JS instrumentations use. Never fails, never panics (headers
/// with non-UTF-8 keys, e.g. forwarded from a consumed record, are kept as they are).
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

/// Replaces every header named exactly `key` with one `key: value` header at the end.
fn replace(headers: &mut OwnedHeaders, key: &str, value: &[u8]) {
    // Usually the key is absent: look first (no allocation), remove only when present.
    let reader = headers.raw();
    if (0..reader.count()).any(|i| reader.get(i).is_some_and(|(k, _)| k == key.as_bytes())) {
        raw::remove(headers, key);
    }
    // In place: `OwnedHeaders::insert` takes the list by value, and taking it out of `&mut` would
    // allocate a placeholder list (two C allocations and frees per header).
    raw::add(headers, key.as_bytes(), Some(value));
}

impl Injector for HeadersInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        replace(self.0, key, value.as_bytes());
    }
}

/// Writes collected propagation fields into headers held by value, replacing existing keys (as
/// [`HeadersInjector`]): the producer path owns the record's headers, so it needs no placeholder
/// `OwnedHeaders` (a C allocation) per field.
pub(crate) fn apply(fields: &CollectedFields, mut headers: OwnedHeaders) -> OwnedHeaders {
    for (key, value) in &fields.0 {
        replace(&mut headers, key, value.as_bytes());
    }
    headers
}

/// Removes the headers `fields` wrote (by key) from `headers`, as after a send that failed at once.
pub(crate) fn remove_fields(headers: &mut OwnedHeaders, fields: &CollectedFields) {
    for (key, _) in &fields.0 {
        raw::remove(headers, key);
    }
}

/// Bytes `fields` add to a record's serialized headers (key, value and their varint lengths, as
/// the Kafka record format counts them).
pub(crate) fn fields_size<K: AsRef<str>>(fields: &[(K, String)]) -> usize {
    fields.iter().map(|(k, v)| header_size(k.as_ref().len(), v.len())).sum()
}

/// Serialized bytes of one header (librdkafka `rkhdr_ser_size`): key, value and their varint lengths.
fn header_size(key: usize, value: usize) -> usize {
    key + value + varint_len(key) + varint_len(value)
}

/// Bytes of a zig-zag varint encoding `n` (the Kafka record format's length prefixes).
fn varint_len(n: usize) -> usize {
    let mut v = (n as u64) << 1;
    let mut len = 1;
    while v >= 0x80 {
        v >>= 7;
        len += 1;
    }
    len
}

/// Serialized size of `headers` (bytes, key + value + varint lengths per header), as librdkafka
/// counts them against `message.max.bytes`.
pub(crate) fn serialized_size(headers: &OwnedHeaders) -> usize {
    let reader = headers.raw();
    (0..reader.count())
        .filter_map(|i| reader.get(i))
        .map(|(k, v)| header_size(k.len(), v.map_or(0, <[u8]>::len)))
        .sum()
}

/// Reads propagation fields from the headers of a received (or outgoing) Kafka record.
///
/// Works over rdkafka's two header types, `BorrowedHeaders` (a consumed message) and
/// [`OwnedHeaders`] (a record being built, or a detached message): see [`RawHeaders`].
/// Keys match ASCII case-insensitively. When a key repeats, [`get`](Extractor::get) returns the
/// **last** value (as Kafka's `lastHeader`), [`get_all`](Extractor::get_all) returns every value in
/// order. Headers whose key or value is not UTF-8, and null values, are skipped: never a panic.
/// A record with more than 1 024 headers reads as carrying none (a 1 MB record can hold ~250 000
/// one-byte headers; the bound keeps each look-up short).
///
/// Why not rdkafka's `Headers::try_get`: rdkafka 0.39 unwraps the key as UTF-8, and librdkafka
/// accepts any bytes as a key (kcat, the C, Go and other clients can write such records), so one
/// such record would panic every consumer that looks at its headers. The headers are read here
/// through librdkafka directly (see [`RawHeaders`]).
pub struct HeadersExtractor<'a, H: ?Sized>(pub &'a H);

impl<H: ?Sized> std::fmt::Debug for HeadersExtractor<'_, H> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeadersExtractor")
    }
}

/// Most headers a record may carry for [`HeadersExtractor`] to read it: 1 024. A record with more
/// (a 1 MB record can hold ~250 000 one-byte headers) reads as carrying none, so each of the
/// 6-10 lookups per message stays bounded (reliability review L1).
pub(crate) const MAX_HEADERS_READ: usize = 1_024;

/// A header whose key and value are both UTF-8; `None` for any other header.
fn utf8_header<'a>(key: &'a [u8], value: Option<&'a [u8]>) -> Option<(&'a str, &'a str)> {
    Some((std::str::from_utf8(key).ok()?, std::str::from_utf8(value?).ok()?))
}

/// `count`, or 0 past [`MAX_HEADERS_READ`].
fn bounded(count: usize) -> usize {
    if count > MAX_HEADERS_READ { 0 } else { count }
}

impl<H: RawHeaders + ?Sized> Extractor for HeadersExtractor<'_, H> {
    fn get(&self, key: &str) -> Option<&str> {
        last_value(self.0.raw(), key)
    }

    /// Every distinct UTF-8 key, in order of first appearance (linear time: a record can carry
    /// tens of thousands of headers).
    fn keys(&self) -> Vec<&str> {
        distinct_keys(self.0.raw())
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        all_values(self.0.raw(), key)
    }
}

/// The last UTF-8 value of a UTF-8 header whose key equals `key` in any ASCII case.
fn last_value<'a>(headers: raw::HeaderReader<'a>, key: &str) -> Option<&'a str> {
    (0..bounded(headers.count()))
        .rev()
        .filter_map(|i| headers.get(i))
        .filter(|(k, _)| k.eq_ignore_ascii_case(key.as_bytes()))
        .find_map(|(k, v)| utf8_header(k, v))
        .map(|(_, v)| v)
}

/// Every UTF-8 value of the UTF-8 headers whose key equals `key` in any ASCII case, in order.
fn all_values<'a>(headers: raw::HeaderReader<'a>, key: &str) -> Option<Vec<&'a str>> {
    let values: Vec<&str> = (0..bounded(headers.count()))
        .filter_map(|i| headers.get(i))
        .filter(|(k, _)| k.eq_ignore_ascii_case(key.as_bytes()))
        .filter_map(|(k, v)| utf8_header(k, v))
        .map(|(_, v)| v)
        .collect();
    (!values.is_empty()).then_some(values)
}

/// Every distinct UTF-8 key, in order of first appearance.
fn distinct_keys(headers: raw::HeaderReader<'_>) -> Vec<&str> {
    let count = bounded(headers.count());
    let mut seen = std::collections::HashSet::with_capacity(count);
    (0..count)
        .filter_map(|i| headers.get(i))
        .filter_map(|(k, _)| std::str::from_utf8(k).ok())
        .filter(|k| seen.insert(*k))
        .collect()
}

/// Values of one propagation field found by [`PropagationHeaders`]'s scan: the first
/// [`Found::KEPT`] in order, and whether there were more.
#[derive(Debug, Default, Clone, Copy)]
struct Found<'a> {
    values: [&'a str; Found::KEPT],
    len: usize,
    more: bool,
}

impl<'a> Found<'a> {
    /// Values kept without allocating; a record repeating a field more often is read again.
    const KEPT: usize = 4;

    fn push(&mut self, value: &'a str) {
        match self.values.get_mut(self.len) {
            Some(slot) => {
                *slot = value;
                self.len += 1;
            }
            None => self.more = true,
        }
    }

    fn kept(&self) -> &[&'a str] {
        self.values.get(..self.len).unwrap_or_default()
    }
}

/// A received record's headers read as [`HeadersExtractor`] reads them, with the three W3C
/// propagation fields (`traceparent`, `tracestate`, `baggage`) found in **one** pass when it is
/// built: the core's strict reader asks for `traceparent`, then every `tracestate` and every
/// `baggage`, which would be three scans of the list through librdkafka per extraction. Other
/// keys, `keys()`, and a field repeated more than four times are read from the headers.
pub(crate) struct PropagationHeaders<'a> {
    /// `None`: no headers, or more than [`MAX_HEADERS_READ`] headers (read as none).
    headers: Option<raw::HeaderReader<'a>>,
    /// Whether the three fields below were looked for ([`scan`](Self::scan)); when not
    /// ([`unscanned`](Self::unscanned)), every key is read from the headers.
    scanned: bool,
    traceparent: Option<&'a str>,
    tracestate: Found<'a>,
    baggage: Found<'a>,
}

impl<'a> PropagationHeaders<'a> {
    /// Scans `headers` (none: an empty carrier) once.
    pub(crate) fn scan<H: RawHeaders + ?Sized>(headers: Option<&'a H>) -> Self {
        let mut scanned = Self::unscanned(headers);
        scanned.scanned = true;
        let Some(reader) = scanned.headers else { return scanned };
        for (key, value) in (0..bounded(reader.count())).filter_map(|i| reader.get(i)) {
            let Some(field) = PropagationField::of(key) else { continue };
            // The key is one of the three ASCII names: only the value needs the UTF-8 check.
            let Some(Ok(value)) = value.map(std::str::from_utf8) else { continue };
            match field {
                PropagationField::Traceparent => scanned.traceparent = Some(value),
                PropagationField::Tracestate => scanned.tracestate.push(value),
                PropagationField::Baggage => scanned.baggage.push(value),
            }
        }
        scanned
    }

    /// `headers` read key by key, as [`HeadersExtractor`] does: for a message whose propagation
    /// fields were read already (its receive's [`DeliveredContext`](otel_messaging::__private::DeliveredContext)),
    /// where only the retry lineage, captured headers or the enricher may still ask for a key.
    pub(crate) fn unscanned<H: RawHeaders + ?Sized>(headers: Option<&'a H>) -> Self {
        PropagationHeaders {
            headers: headers.map(RawHeaders::raw),
            scanned: false,
            traceparent: None,
            tracestate: Found::default(),
            baggage: Found::default(),
        }
    }

    /// What the scan found for `key`, if it is one of the three fields and all of it was kept.
    fn found(&self, key: &str) -> Option<Field<'_, 'a>> {
        if !self.scanned {
            return None;
        }
        let found = match PropagationField::of(key.as_bytes())? {
            PropagationField::Traceparent => return Some(Field::Last(self.traceparent)),
            PropagationField::Tracestate => &self.tracestate,
            PropagationField::Baggage => &self.baggage,
        };
        (!found.more).then_some(Field::All(found.kept()))
    }
}

/// The three header names [`PropagationHeaders`] finds in its one pass.
#[derive(Clone, Copy)]
enum PropagationField {
    Traceparent,
    Tracestate,
    Baggage,
}

impl PropagationField {
    /// The field `key` names in any ASCII case: the length first, then the exact lowercase name
    /// (what the core asks for and writes), then any case.
    fn of(key: &[u8]) -> Option<Self> {
        let is = |name: &[u8]| key == name || key.eq_ignore_ascii_case(name);
        match key.len() {
            11 if is(b"traceparent") => Some(PropagationField::Traceparent),
            10 if is(b"tracestate") => Some(PropagationField::Tracestate),
            7 if is(b"baggage") => Some(PropagationField::Baggage),
            _ => None,
        }
    }
}

/// One propagation field as [`PropagationHeaders`] found it.
enum Field<'s, 'a> {
    /// `traceparent`: only its last value is kept.
    Last(Option<&'a str>),
    /// `tracestate`, `baggage`: every value, in order.
    All(&'s [&'a str]),
}

impl Extractor for PropagationHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match self.found(key) {
            Some(Field::Last(value)) => value,
            Some(Field::All(values)) => values.last().copied(),
            None => last_value(self.headers?, key),
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.headers.map(distinct_keys).unwrap_or_default()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        match self.found(key) {
            Some(Field::All(values)) => (!values.is_empty()).then(|| values.to_vec()),
            _ => all_values(self.headers?, key),
        }
    }
}

/// Headers with arbitrary key bytes, which rdkafka's `OwnedHeaders::insert` cannot build (its keys
/// are `&str`) but librdkafka and other Kafka clients can write: for tests and fuzzing of
/// consumers. A `None` value is a null header value.
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub fn raw_headers<'h>(headers: impl IntoIterator<Item = (&'h [u8], Option<&'h [u8]>)>) -> OwnedHeaders {
    let mut owned = OwnedHeaders::new();
    for (key, value) in headers {
        raw::add(&mut owned, key, value);
    }
    owned
}

/// rdkafka header types whose headers can be read as raw bytes, keys included: `BorrowedHeaders`
/// and [`OwnedHeaders`]. Sealed.
pub trait RawHeaders: raw::Sealed {
    /// A reader over these headers.
    #[doc(hidden)]
    fn raw(&self) -> raw::HeaderReader<'_>;
}

impl RawHeaders for rdkafka::message::BorrowedHeaders {
    fn raw(&self) -> raw::HeaderReader<'_> {
        raw::HeaderReader::borrowed(self)
    }
}

impl RawHeaders for OwnedHeaders {
    fn raw(&self) -> raw::HeaderReader<'_> {
        raw::HeaderReader::borrowed(self.as_borrowed())
    }
}

/// The one `unsafe` module of the workspace: reading librdkafka headers without rdkafka's UTF-8
/// `unwrap` on keys.
///
/// Audit notes (rdkafka 0.39.0, rdkafka-sys 4.10.0, pinned by the lock file; re-check on upgrade):
///
/// * rdkafka builds every `&BorrowedHeaders` by casting the native `rd_kafka_headers_t *` to a
///   reference to the zero-sized `BorrowedHeaders` (`BorrowedHeaders::from_native_ptr`,
///   `OwnedHeaders::as_borrowed`), and its own `as_native_ptr` casts it back. The address of a
///   `&BorrowedHeaders` is therefore the native pointer, valid for as long as the reference; the
///   test `raw_reader_agrees_with_rdkafka` checks this against rdkafka's own reader.
/// * `rd_kafka_header_get_all` only reads the list and returns pointers into memory owned by it
///   (a NUL-terminated name, and a value pointer + size, null for a null value), which stays
///   valid and unchanged while the headers are borrowed: both rdkafka header types are read-only
///   through `&self`.
#[allow(unsafe_code)]
mod raw {
    use std::{ffi::CStr, marker::PhantomData, os::raw::c_char, ptr};

    use rdkafka::{
        bindings::{
            rd_kafka_header_cnt, rd_kafka_header_get_all, rd_kafka_header_remove, rd_kafka_headers_t,
        },
        message::{BorrowedHeaders, OwnedHeaders},
        types::RDKafkaRespErr,
    };

    /// Removes every header named exactly `key` (librdkafka `rd_kafka_header_remove`, `strcmp`).
    pub(super) fn remove(headers: &mut OwnedHeaders, key: &str) {
        let Ok(name) = std::ffi::CString::new(key) else { return };
        let native = ptr::from_ref(headers.as_borrowed()).cast::<rd_kafka_headers_t>().cast_mut();
        // SAFETY: `native` is the list `headers` owns (module notes), which we borrow mutably, so
        // nothing else reads it meanwhile; an `OwnedHeaders` is never read-only. The name is a
        // NUL-terminated local; librdkafka does not keep it.
        let _ = unsafe { rd_kafka_header_remove(native, name.as_ptr()) };
    }

    /// Appends a header with arbitrary key bytes (librdkafka `rd_kafka_header_add`).
    pub(super) fn add(headers: &mut OwnedHeaders, key: &[u8], value: Option<&[u8]>) {
        let native = ptr::from_ref(headers.as_borrowed()).cast::<rd_kafka_headers_t>().cast_mut();
        let (value_ptr, value_len) = value.map_or((ptr::null(), 0), |v| (v.as_ptr(), v.len()));
        // SAFETY: as in `remove`; librdkafka copies `key_len` bytes of the name and `value_len`
        // bytes of the value (none for a null value).
        let _ = unsafe {
            rdkafka::bindings::rd_kafka_header_add(
                native,
                key.as_ptr().cast::<c_char>(),
                isize::try_from(key.len()).unwrap_or(0),
                value_ptr.cast::<std::ffi::c_void>(),
                isize::try_from(value_len).unwrap_or(0),
            )
        };
    }

    pub trait Sealed {}
    impl Sealed for BorrowedHeaders {}
    impl Sealed for OwnedHeaders {}

    /// Reads the headers behind a `&BorrowedHeaders` as raw bytes.
    #[derive(Debug, Clone, Copy)]
    pub struct HeaderReader<'a> {
        native: *const rd_kafka_headers_t,
        _borrow: PhantomData<&'a BorrowedHeaders>,
    }

    impl<'a> HeaderReader<'a> {
        pub(super) fn borrowed(headers: &'a BorrowedHeaders) -> Self {
            HeaderReader { native: ptr::from_ref(headers).cast::<rd_kafka_headers_t>(), _borrow: PhantomData }
        }

        /// Number of headers.
        pub fn count(&self) -> usize {
            // SAFETY: `native` is a valid header list for `'a` (module notes).
            unsafe { rd_kafka_header_cnt(self.native) }
        }

        /// The key and value (`None` for a null value) of header `index`, as bytes.
        pub fn get(&self, index: usize) -> Option<(&'a [u8], Option<&'a [u8]>)> {
            let mut name: *const c_char = ptr::null();
            let mut value: *const std::ffi::c_void = ptr::null();
            let mut size = 0usize;
            // SAFETY: `native` is a valid header list for `'a`; the out-pointers are locals.
            let err =
                unsafe { rd_kafka_header_get_all(self.native, index, &mut name, &mut value, &mut size) };
            if err != RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
                return None;
            }
            // SAFETY: librdkafka returned a NUL-terminated name owned by the list, valid for `'a`.
            let key = unsafe { CStr::from_ptr(name) }.to_bytes();
            let value = if value.is_null() {
                None
            } else {
                // SAFETY: `value` points to `size` bytes owned by the list, valid for `'a`.
                Some(unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) })
            };
            Some((key, value))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use opentelemetry::propagation::{Extractor as _, Injector as _};
    use otel_messaging::__private::CollectedFields;
    use rdkafka::message::{Header, Headers as _, OwnedHeaders};

    use super::{
        HeadersExtractor, HeadersInjector, RawHeaders as _, apply, fields_size, remove_fields,
        serialized_size, varint_len,
    };

    fn pairs(headers: &OwnedHeaders) -> Vec<(String, Option<String>)> {
        let reader = headers.raw();
        (0..reader.count())
            .filter_map(|i| reader.get(i))
            .map(|(k, v)| {
                (String::from_utf8_lossy(k).into_owned(), v.map(|v| String::from_utf8_lossy(v).into_owned()))
            })
            .collect()
    }

    /// The zig-zag varint length prefixes of the Kafka record format: 7 bits a byte, of twice the
    /// length.
    #[test]
    fn varint_lengths_follow_the_record_format() {
        for (n, len) in [(0, 1), (63, 1), (64, 2), (8_191, 2), (8_192, 3), (1_048_575, 3), (1_048_576, 4)] {
            assert_eq!(varint_len(n), len, "{n}");
        }
    }

    /// Sizes as librdkafka counts them against `message.max.bytes`: key + value + both prefixes.
    #[test]
    fn header_sizes_count_key_value_and_prefixes() {
        let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned();
        assert_eq!(fields_size(&[("traceparent", traceparent.clone())]), 11 + 55 + 1 + 1);
        assert_eq!(fields_size(&[("k", "v".repeat(64))]), 1 + 64 + 1 + 2);
        assert_eq!(fields_size::<&str>(&[]), 0);
        let headers = OwnedHeaders::new()
            .insert(Header { key: "traceparent", value: Some(traceparent.as_str()) })
            .insert(Header { key: "empty", value: None::<&str> });
        assert_eq!(serialized_size(&headers), (11 + 55 + 1 + 1) + (5 + 1 + 1));
    }

    /// Setting a field replaces every header of that exact key with one at the end; other headers
    /// keep their order; removing takes exactly the written keys out again.
    #[test]
    fn fields_replace_and_are_removed_by_exact_key() {
        let headers = OwnedHeaders::new()
            .insert(Header { key: "traceparent", value: Some("stale-1") })
            .insert(Header { key: "app", value: Some("x") })
            .insert(Header { key: "traceparent", value: Some("stale-2") })
            .insert(Header { key: "Traceparent", value: Some("other case") });
        let fields =
            CollectedFields(vec![("traceparent".into(), "new".into()), ("baggage".into(), "k=v".into())]);
        let mut headers = apply(&fields, headers);
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            pairs(&headers),
            [
                ("app".into(), some("x")),
                ("Traceparent".into(), some("other case")),
                ("traceparent".into(), some("new")),
                ("baggage".into(), some("k=v")),
            ]
        );
        HeadersInjector(&mut headers).set("app", "y".into());
        assert_eq!(pairs(&headers)[3], ("app".into(), some("y")));
        assert_eq!(headers.count(), 4);
        remove_fields(&mut headers, &fields);
        let mut alone = OwnedHeaders::new().insert(Header { key: "traceparent", value: Some("stale") });
        HeadersInjector(&mut alone).set("traceparent", "fresh".into());
        assert_eq!(pairs(&alone), [("traceparent".into(), some("fresh"))], "replaced, not added");
        assert_eq!(pairs(&headers), [("Traceparent".into(), some("other case")), ("app".into(), some("y"))]);
    }

    /// The one-pass reader of received records reads every key as `HeadersExtractor` does: the
    /// three propagation fields in any case, repeated (past the four kept), non-UTF-8, null,
    /// other keys, and no headers at all.
    mod one_pass {
        use super::super::{HeadersExtractor, PropagationHeaders};
        use opentelemetry::propagation::Extractor as _;
        use proptest::prelude::*;
        use rdkafka::message::OwnedHeaders;

        fn key() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                Just(b"traceparent".to_vec()),
                Just(b"TraceParent".to_vec()),
                Just(b"tracestate".to_vec()),
                Just(b"TRACESTATE".to_vec()),
                Just(b"baggage".to_vec()),
                Just(b"Baggage".to_vec()),
                Just(b"app".to_vec()),
                Just(vec![b't', 0xff]),
                proptest::collection::vec(any::<u8>(), 0..12),
            ]
        }

        fn value() -> impl Strategy<Value = Option<Vec<u8>>> {
            prop_oneof![
                Just(None),
                Just(Some(vec![0xff, 0xfe])),
                "[a-z0-9=,-]{0,8}".prop_map(|v| Some(v.into_bytes())),
            ]
        }

        proptest! {
            #[test]
            fn reads_like_the_headers_extractor(
                pairs in proptest::collection::vec((key(), value()), 0..12),
            ) {
                let mut headers = OwnedHeaders::new();
                for (k, v) in &pairs {
                    super::super::raw::add(&mut headers, k, v.as_deref());
                }
                let (one_pass, plain) = (PropagationHeaders::scan(Some(&headers)), HeadersExtractor(&headers));
                for probe in ["traceparent", "TRACEPARENT", "tracestate", "TraceState", "baggage", "BAGGAGE", "app", ""] {
                    prop_assert_eq!(one_pass.get(probe), plain.get(probe), "{}", probe);
                    prop_assert_eq!(one_pass.get_all(probe), plain.get_all(probe), "{}", probe);
                }
                prop_assert_eq!(one_pass.keys(), plain.keys());
            }
        }

        #[test]
        fn a_field_repeated_past_the_kept_values_is_read_again_and_no_headers_read_as_none() {
            let values = ["a=1", "b=2", "c=3", "d=4", "e=5", "f=6"];
            for field in ["tracestate", "baggage"] {
                let mut headers = OwnedHeaders::new();
                for v in values {
                    super::super::raw::add(&mut headers, field.as_bytes(), Some(v.as_bytes()));
                }
                let one_pass = PropagationHeaders::scan(Some(&headers));
                assert_eq!(one_pass.get_all(field), Some(values.to_vec()), "{field}");
                assert_eq!(one_pass.get(field), Some("f=6"), "{field}");
                // Four values are kept and served from the scan.
                let mut four = OwnedHeaders::new();
                for v in &values[..4] {
                    super::super::raw::add(&mut four, field.as_bytes(), Some(v.as_bytes()));
                }
                assert_eq!(PropagationHeaders::scan(Some(&four)).get_all(field), Some(values[..4].to_vec()));
            }
            let none = PropagationHeaders::scan(None::<&OwnedHeaders>);
            assert_eq!(
                (none.get("traceparent"), none.get_all("baggage"), none.get("app")),
                (None, None, None)
            );
            assert!(none.keys().is_empty());
        }
    }

    /// Reads: the last of repeated keys, any ASCII case, non-UTF-8 and null values skipped, keys
    /// once each in order; a record with more than `MAX_HEADERS_READ` headers reads as none.
    #[test]
    fn the_extractor_reads_like_kafkas_last_header() {
        let mut headers = OwnedHeaders::new();
        for (key, value) in [
            (&b"traceparent"[..], Some(&b"first"[..])),
            (b"TraceParent", Some(b"second")),
            (b"traceparent", Some(&[0xff][..])),
            (b"traceparent", None),
            (b"baggage", Some(b"k=v")),
        ] {
            super::raw::add(&mut headers, key, value);
        }
        let x = HeadersExtractor(&headers);
        assert_eq!(x.get("traceparent"), Some("second"));
        assert_eq!(x.get_all("TRACEPARENT"), Some(vec!["first", "second"]));
        assert_eq!(x.keys(), ["traceparent", "TraceParent", "baggage"]);
        assert_eq!(x.get("missing"), None);
        assert_eq!(x.get_all("missing"), None);
        let mut many = OwnedHeaders::new();
        for _ in 0..=super::MAX_HEADERS_READ {
            super::raw::add(&mut many, b"traceparent", Some(b"x"));
        }
        assert_eq!(HeadersExtractor(&many).get("traceparent"), None);
        assert_eq!(format!("{:?}", HeadersInjector(&mut many)), "HeadersInjector(1025)");
    }
}
