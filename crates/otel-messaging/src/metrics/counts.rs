//! The two message counters (`messaging.client.sent.messages`, `messaging.client.consumed.messages`)
//! as observable counters over per-attribute-set atomics: a message costs an atomic add, not the
//! SDK's hashing and comparing of the attribute set (BENCHMARKS.md, lever 20). The SDK reads the
//! totals when it collects. Its own file: the parent module resolves and records attribute sets;
//! this one keeps the totals and reports them.
//!
//! An observable counter reports a total since the start (semconv's counters are monotonic sums;
//! the SDK turns totals into deltas when the exporter asks for delta temporality), so a set's
//! totals live as long as its instruments, not as long as the attribute set that is cached per
//! thread: [`Registry`] holds every set's [`Counts`] (at most the instrumenter's attribute-set
//! limit, plus the overflow set).

use std::sync::{
    Arc, Mutex, PoisonError,
    atomic::{AtomicU64, Ordering},
};

use opentelemetry::{KeyValue, metrics::AsyncInstrument};

use crate::semconv;

/// Most distinct `error.type` values counted per attribute set; the rest are counted under
/// semconv's `_OTHER` (`error.type`: "`_OTHER` — a fallback error value to be used when the
/// instrumentation doesn't define a custom value").
pub(crate) const MAX_ERROR_TYPES: usize = 32;

/// Which counter a count goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counter {
    /// `messaging.client.sent.messages`.
    Sent,
    /// `messaging.client.consumed.messages`.
    Consumed,
}

/// The message totals of one metric attribute set: successful operations in atomics, failed ones
/// by `error.type` under a lock (failures are rare).
#[derive(Debug)]
pub(crate) struct Counts {
    /// The set's attributes (without `messaging.operation.type` and `error.type`).
    attributes: Vec<KeyValue>,
    sent: AtomicU64,
    consumed: AtomicU64,
    /// `(error.type, sent, consumed)`, at most [`MAX_ERROR_TYPES`] entries.
    failed: Mutex<Vec<(Box<str>, u64, u64)>>,
}

impl Counts {
    fn new(attributes: Vec<KeyValue>) -> Self {
        Counts { attributes, sent: AtomicU64::new(0), consumed: AtomicU64::new(0), failed: Mutex::default() }
    }

    /// Adds `messages` to `counter`, under `error.type = error_type` when given.
    pub(crate) fn add(&self, counter: Counter, messages: u64, error_type: Option<&str>) {
        if messages == 0 {
            return;
        }
        let Some(error_type) = error_type else {
            let total = match counter {
                Counter::Sent => &self.sent,
                Counter::Consumed => &self.consumed,
            };
            total.fetch_add(messages, Ordering::Relaxed);
            return;
        };
        let mut failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        let index = match failed.iter().position(|(t, ..)| **t == *error_type) {
            Some(index) => index,
            None if failed.len() < MAX_ERROR_TYPES - 1 => {
                failed.push((error_type.into(), 0, 0));
                failed.len() - 1
            }
            None => match failed.iter().position(|(t, ..)| &**t == semconv::ERROR_TYPE_OTHER) {
                Some(index) => index,
                None => {
                    failed.push((semconv::ERROR_TYPE_OTHER.into(), 0, 0));
                    failed.len() - 1
                }
            },
        };
        let entry = &mut failed[index];
        match counter {
            Counter::Sent => entry.1 = entry.1.saturating_add(messages),
            Counter::Consumed => entry.2 = entry.2.saturating_add(messages),
        }
    }

    /// Reports this set's non-zero totals of `counter` to `observer`.
    fn observe(&self, counter: Counter, observer: &dyn AsyncInstrument<u64>) {
        let total = match counter {
            Counter::Sent => self.sent.load(Ordering::Relaxed),
            Counter::Consumed => self.consumed.load(Ordering::Relaxed),
        };
        if total > 0 {
            observer.observe(total, &self.attributes);
        }
        let failed = self.failed.lock().unwrap_or_else(PoisonError::into_inner);
        for (error_type, sent, consumed) in failed.iter() {
            let total = if counter == Counter::Sent { *sent } else { *consumed };
            if total > 0 {
                let mut attributes = Vec::with_capacity(self.attributes.len() + 1);
                attributes.extend_from_slice(&self.attributes);
                attributes.push(KeyValue::new(semconv::ERROR_TYPE, error_type.to_string()));
                observer.observe(total, &attributes);
            }
        }
    }
}

/// Every attribute set's [`Counts`] on one instrumenter's instruments, for the life of the
/// instruments: what the counters' callbacks report.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    /// By the hash of the attribute-set key (several keys may share a hash: compared by
    /// attributes), and the overflow set's.
    by_hash: Mutex<rustc_hash::FxHashMap<u64, Vec<Arc<Counts>>>>,
    overflow: Mutex<Option<Arc<Counts>>>,
}

impl Registry {
    /// The counts of the attribute set `attributes` whose key hashes to `hash` (made on first use);
    /// the one shared overflow set's when `overflow`. Called on a per-thread cache miss only.
    pub(crate) fn counts(&self, hash: u64, attributes: &[KeyValue], overflow: bool) -> Arc<Counts> {
        if overflow {
            let mut slot = self.overflow.lock().unwrap_or_else(PoisonError::into_inner);
            return slot.get_or_insert_with(|| Arc::new(Counts::new(attributes.to_vec()))).clone();
        }
        let mut by_hash = self.by_hash.lock().unwrap_or_else(PoisonError::into_inner);
        let sets = by_hash.entry(hash).or_default();
        if let Some(counts) = sets.iter().find(|c| c.attributes == attributes) {
            return counts.clone();
        }
        let counts = Arc::new(Counts::new(attributes.to_vec()));
        sets.push(counts.clone());
        counts
    }

    /// Reports every set's non-zero totals of `counter` (the observable counter's callback).
    pub(crate) fn observe(&self, counter: Counter, observer: &dyn AsyncInstrument<u64>) {
        let all: Vec<Arc<Counts>> = {
            let by_hash = self.by_hash.lock().unwrap_or_else(PoisonError::into_inner);
            by_hash.values().flatten().cloned().collect()
        };
        for counts in &all {
            counts.observe(counter, observer);
        }
        let overflow = self.overflow.lock().unwrap_or_else(PoisonError::into_inner).clone();
        if let Some(counts) = overflow {
            counts.observe(counter, observer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an observer was told, in order.
    #[derive(Default)]
    struct Seen(Mutex<Vec<(u64, Vec<KeyValue>)>>);

    impl AsyncInstrument<u64> for Seen {
        fn observe(&self, measurement: u64, attributes: &[KeyValue]) {
            self.0.lock().unwrap_or_else(PoisonError::into_inner).push((measurement, attributes.to_vec()));
        }
    }

    fn observed(registry: &Registry, counter: Counter) -> Vec<(u64, Vec<KeyValue>)> {
        let seen = Seen::default();
        registry.observe(counter, &seen);
        seen.0.into_inner().unwrap_or_else(PoisonError::into_inner)
    }

    #[test]
    fn totals_by_counter_and_error_type_and_nothing_for_zero() {
        let registry = Registry::default();
        let attrs = vec![KeyValue::new("messaging.system", "kafka")];
        let counts = registry.counts(7, &attrs, false);
        counts.add(Counter::Sent, 3, None);
        counts.add(Counter::Sent, 2, None);
        counts.add(Counter::Sent, 0, Some("timeout"));
        counts.add(Counter::Sent, 4, Some("timeout"));
        counts.add(Counter::Consumed, 1, Some("io"));
        let with = |t: &str| {
            let mut a = attrs.clone();
            a.push(KeyValue::new(semconv::ERROR_TYPE, t.to_owned()));
            a
        };
        assert_eq!(observed(&registry, Counter::Sent), [(5, attrs.clone()), (4, with("timeout"))]);
        assert_eq!(observed(&registry, Counter::Consumed), [(1, with("io"))]);
        // The same set is found again (same hash, same attributes); another one with the same
        // hash is its own.
        assert!(Arc::ptr_eq(&registry.counts(7, &attrs, false), &counts));
        let other = vec![KeyValue::new("messaging.system", "rabbitmq")];
        let other_counts = registry.counts(7, &other, false);
        assert!(!Arc::ptr_eq(&other_counts, &counts));
        other_counts.add(Counter::Sent, 1, None);
        assert_eq!(observed(&registry, Counter::Sent).len(), 3);
    }

    #[test]
    fn overflow_sets_share_one_total() {
        let registry = Registry::default();
        let overflow = vec![KeyValue::new("otel.metric.overflow", true)];
        registry.counts(1, &overflow, true).add(Counter::Consumed, 2, None);
        registry.counts(2, &overflow, true).add(Counter::Consumed, 3, None);
        assert_eq!(observed(&registry, Counter::Consumed), [(5, overflow)]);
    }

    #[test]
    fn error_types_are_bounded() {
        let registry = Registry::default();
        let counts = registry.counts(0, &[], false);
        for i in 0..100 {
            counts.add(Counter::Sent, 1, Some(&format!("e{i}")));
        }
        let seen = observed(&registry, Counter::Sent);
        assert_eq!(seen.len(), MAX_ERROR_TYPES);
        assert_eq!(seen.iter().map(|(n, _)| n).sum::<u64>(), 100);
        let other = seen.last().map(|(n, a)| (*n, a[0].value.to_string()));
        assert_eq!(other, Some((100 - (MAX_ERROR_TYPES as u64 - 1), "_OTHER".to_owned())));
    }
}
