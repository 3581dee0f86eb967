//! Size- and count-bounded injection: the propagation fields are collected first, then cut down
//! until they fit the carrier's limits (DESIGN.md, "Never make a send fail that would succeed uninstrumented"). Plumbing for the broker
//! crates, reached through [`crate::__private`].

use std::borrow::Cow;

use opentelemetry::propagation::{Extractor, Injector};

use super::{BAGGAGE, TRACEPARENT, TRACESTATE};

/// Cuts collected propagation fields down until `fits` accepts them, in the order the design
/// fixes for every broker: all fields; without `baggage`; `traceparent` alone (no `tracestate`, no
/// other propagator's fields); nothing. Returns whether anything is left to inject (record
/// `otel_messaging.context.injected = false` when not).
///
/// For carriers with size or count limits (Kafka `message.max.bytes`, the SQS message and batch
/// size, the SQS 10-attribute limit), so that injecting never makes a send fail that would succeed
/// uninstrumented.
///
/// # Examples
///
/// ```
/// use otel_messaging::__private::fit_fields;
/// let mut fields = vec![("traceparent", "00-…-01".to_owned()), ("baggage", "k=v".to_owned())];
/// assert!(fit_fields(&mut fields, |f| f.len() <= 1));
/// assert_eq!(fields.len(), 1);
/// ```
pub fn fit_fields<K: AsRef<str>>(
    fields: &mut Vec<(K, String)>,
    fits: impl Fn(&[(K, String)]) -> bool,
) -> bool {
    if fits(fields) {
        return !fields.is_empty();
    }
    fields.retain(|(k, _)| k.as_ref() != BAGGAGE);
    if fits(fields) {
        return !fields.is_empty();
    }
    fields.retain(|(k, _)| k.as_ref() == TRACEPARENT);
    fields.truncate(1);
    if !fields.is_empty() && fits(fields) {
        return true;
    }
    fields.clear();
    false
}

/// One collected propagation field: key and value ([`CollectedFields`]).
pub type Field = (Cow<'static, str>, String);

/// The collected propagation `fields` that go into a carrier of message attributes with a count
/// limit (SQS and SNS: 10 per message): the fields the carrier already holds (`present`) are
/// left to it, and the rest must fit `free` attributes and `budget` bytes at `per_field` bytes
/// each besides key and value (the attribute's data type, e.g. `String`), degraded as
/// [`fit_fields`] does. Returns what to write and its bytes; `None` when nothing fits.
pub fn fit_attributes(
    mut fields: Vec<Field>,
    present: impl Fn(&str) -> bool,
    free: usize,
    per_field: usize,
    budget: usize,
) -> Option<(Vec<Field>, usize)> {
    fields.retain(|(k, _)| !present(k));
    let size = |fields: &[Field]| CollectedFields::size(fields, per_field);
    if !fit_fields(&mut fields, |f| f.len() <= free && size(f) <= budget) {
        return None;
    }
    let bytes = size(&fields);
    Some((fields, bytes))
}

/// A carrier of message attributes with a count limit (SQS and SNS message attributes): an
/// [`Injector`] that also tells which keys it holds and how many.
pub trait AttributeCarrier: Injector {
    /// Whether the carrier holds an attribute named `key` (exactly).
    fn contains(&self, key: &str) -> bool;
    /// How many attributes the carrier holds.
    fn count(&self) -> usize;
}

/// Writes the collected `fields` into `carrier`, which may hold at most `max` attributes, within
/// `budget` bytes at `per_field` bytes each besides key and value: the carrier's own attributes
/// are kept, the rest degraded by [`fit_attributes`]. Returns the bytes written; `None` when
/// nothing fit.
pub fn inject_attributes(
    fields: Vec<Field>,
    carrier: &mut dyn AttributeCarrier,
    max: usize,
    per_field: usize,
    budget: usize,
) -> Option<usize> {
    let free = max.saturating_sub(carrier.count());
    let (fields, bytes) = fit_attributes(fields, |k| carrier.contains(k), free, per_field, budget)?;
    for (key, value) in fields {
        carrier.set(&key, value);
    }
    Some(bytes)
}

/// The room left for the context of each entry of a batch send, in bytes: every entry must stay
/// within the per-message `limit` if it was within it, and the batch's total within the same
/// limit (SQS and SNS count a batch's total as one message). An entry already over `limit` may
/// grow up to `ceiling` (a queue that allows more than the configured size), never past it.
#[derive(Debug, Clone)]
pub struct BatchBudget {
    sizes: Vec<usize>,
    limit: usize,
    ceiling: usize,
    batch_room: usize,
}

impl BatchBudget {
    /// The budget of entries of `sizes` bytes (before any context) under `limit` and `ceiling`.
    pub fn new(sizes: Vec<usize>, limit: usize, ceiling: usize) -> Self {
        let total = sizes.iter().sum();
        let batch_room = Self::room_under(total, limit, ceiling);
        BatchBudget { sizes, limit, ceiling, batch_room }
    }

    /// Bytes a message of `native` bytes may grow by under `limit` (and `ceiling` beyond it).
    pub fn room_under(native: usize, limit: usize, ceiling: usize) -> usize {
        if native > limit { ceiling.saturating_sub(native) } else { limit - native }
    }

    /// The room for entry `index`'s context, after `used` bytes went to the previous entry's.
    pub fn room(&mut self, index: usize, used: usize) -> usize {
        self.batch_room = self.batch_room.saturating_sub(used);
        let native = self.sizes.get(index).copied().unwrap_or(0);
        Self::room_under(native, self.limit, self.ceiling).min(self.batch_room)
    }
}

/// An [`Injector`] that collects propagation fields in the order the propagator writes them,
/// so that a broker adapter can size them ([`fit_fields`]) before writing them into a carrier with
/// a size or count limit. A repeated key replaces the earlier value; the W3C keys are kept as
/// `&'static str` (no allocation), other propagators' keys are copied.
///
/// # Examples
///
/// ```
/// use opentelemetry::propagation::Injector as _;
/// use otel_messaging::__private::CollectedFields;
/// let mut fields = CollectedFields::default();
/// fields.set("traceparent", "00-…-01".to_owned());
/// fields.set("traceparent", "00-…-00".to_owned());
/// assert_eq!(fields.0, [("traceparent".into(), "00-…-00".to_owned())]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectedFields(pub Vec<(Cow<'static, str>, String)>);

impl CollectedFields {
    /// Bytes of the collected fields when each costs `per_field` bytes besides its key and value
    /// (e.g. `": "` and `"\r\n"` in a NATS header block: 4).
    pub fn size(fields: &[(Cow<'static, str>, String)], per_field: usize) -> usize {
        fields.iter().map(|(k, v)| k.len() + v.len() + per_field).sum()
    }
}

impl Injector for CollectedFields {
    fn set(&mut self, key: &str, value: String) {
        let key: Cow<'static, str> = match key {
            TRACEPARENT => Cow::Borrowed(TRACEPARENT),
            TRACESTATE => Cow::Borrowed(TRACESTATE),
            BAGGAGE => Cow::Borrowed(BAGGAGE),
            other => Cow::Owned(other.to_owned()),
        };
        self.0.retain(|(k, _)| *k != key);
        self.0.push((key, value));
    }
}

/// An [`Extractor`] over nothing, for messages that carry no metadata at all (a Kafka record
/// without headers). Allocates nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct EmptyExtractor;

impl Extractor for EmptyExtractor {
    fn get(&self, _key: &str) -> Option<&str> {
        None
    }

    fn keys(&self) -> Vec<&str> {
        Vec::new()
    }
}
