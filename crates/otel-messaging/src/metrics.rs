//! The four semconv messaging instruments plus the project's queue-wait histogram, built once per
//! instrumenter.
//!
//! Source: semconv v1.44 `docs/messaging/messaging-metrics.md` and `model/messaging/metrics.yaml`.
//!
//! | Instrument | Kind | Unit | Recorded |
//! |---|---|---|---|
//! | `messaging.client.operation.duration` | f64 histogram | `s` | every create/send/receive/settle operation, = span duration |
//! | `messaging.process.duration` | f64 histogram | `s` | every process operation, = span duration |
//! | `messaging.client.sent.messages` | u64 counter (observable) | `{message}` | per send operation, by its message count |
//! | `messaging.client.consumed.messages` | u64 counter (observable) | `{message}` | once per delivery: receive operations (a failed receive counts nothing), and process operations not preceded by a traced receive |
//! | `otel_messaging.queue.wait.duration` | f64 histogram | `s` | per process operation whose message carries a send time |
//!
//! Metric attributes are the low-cardinality ones only: `messaging.system`,
//! `messaging.operation.name`, `messaging.operation.type` (operation duration only),
//! `messaging.destination.name` (omitted for temporary/anonymous destinations),
//! `messaging.destination.template`, `messaging.destination.partition.id`,
//! `messaging.consumer.group.name`, `server.address`, `server.port`, and `error.type` iff the
//! operation failed (not on `consumed.messages` and queue wait of a process operation: a handler's
//! failure is not the delivery's).
//!
//! An operation's attribute set is resolved when it starts, from a per-thread cache (the 4 most
//! recently used sets, then up to 1 024 by family — the sets that differ only by partition — and
//! partition; keyed by the view's borrowed strings, so a hit builds and drops no `KeyValue`), and
//! shared by every operation with the same attributes. The two counters are observable counters
//! over totals the set keeps in atomics (`counts.rs`): a message costs an atomic add, the SDK reads
//! the totals when it collects — the same monotonic sums as synchronous counters, exported the
//! same way (semconv names the instrument kind "Counter"; the data point is a monotonic Sum either
//! way). With feature
//! `bound-metrics` (opt-in) the measurements of successful operations go through instruments
//! bound to that set (opentelemetry 0.33's experimental bound instruments): the SDK then neither
//! hashes nor compares the attribute set per measurement (BENCHMARKS.md). Failed operations,
//! whose `error.type` varies, take the unbound path. At most [`MAX_ATTRIBUTE_SETS`] attribute sets
//! per instrumenter are recorded under their own attributes; the rest under
//! `otel.metric.overflow = true`.

use std::sync::Arc;

use opentelemetry::{
    KeyValue, StringValue,
    metrics::{Histogram, Meter, ObservableCounter},
};

use crate::{operation::OperationType, semconv};

mod cache;
mod counts;
mod source;
use cache::cached;
use counts::{Counter, Counts, Registry};
pub(crate) use source::InstrumentSource;

/// The instruments of one instrumenter.
#[derive(Debug, Clone)]
pub(crate) struct Instruments {
    /// Distinguishes this instrumenter's attribute sets in the per-thread cache.
    id: u64,
    operation_duration: Histogram<f64>,
    process_duration: Histogram<f64>,
    /// `messaging.client.sent.messages` and `messaging.client.consumed.messages`: observable,
    /// reporting the totals in `counts` (held so that the callbacks live as long as the rest).
    _sent_messages: ObservableCounter<u64>,
    _consumed_messages: ObservableCounter<u64>,
    /// The message totals of every attribute set, read by the two counters' callbacks.
    counts: Arc<Registry>,
    queue_wait: Histogram<f64>,
    /// The attribute sets admitted so far (at most [`MAX_ATTRIBUTE_SETS`]), each shared by every
    /// thread that uses it.
    admitted: Arc<Admitted>,
}

/// Most distinct metric attribute sets (operation, destination, template, partition, group,
/// server) an instrumenter records under their own attributes: the OpenTelemetry SDK's default
/// cardinality limit per instrument. Measurements of the sets beyond it are recorded under the one
/// attribute `otel.metric.overflow = true` (with `error.type` when they failed), as the SDK does
/// past its limit — also with a meter provider that has no limit of its own (semconv review,
/// issue "Spec-exact and bounded", point 3).
pub(crate) const MAX_ATTRIBUTE_SETS: usize = 2_000;

/// The attribute sets an instrumenter has admitted, by the hash of their key, with the live sets
/// of that key: looked up only when a thread's cache misses (never per measurement), so that a set
/// exists once in the process however many threads use it (reliability review M3: the per-thread
/// caches multiplied the sets by the thread count; now they hold references). `Weak`: a set no
/// thread caches any more is freed, and rebuilt on its next use.
struct Admitted {
    keys: std::sync::Mutex<std::collections::HashMap<u64, Vec<std::sync::Weak<MetricSet>>>>,
    /// Most keys admitted under their own attributes ([`MAX_ATTRIBUTE_SETS`] unless the builder
    /// says otherwise).
    limit: usize,
}

impl std::fmt::Debug for Admitted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Admitted")
    }
}

/// The key of the SDK's overflow attribute set: `otel.metric.overflow`.
const OVERFLOW: &str = "otel.metric.overflow";

/// What an ended operation reports to the instruments.
pub(crate) struct Measurement<'a> {
    pub(crate) operation_type: OperationType,
    pub(crate) duration_secs: f64,
    pub(crate) messages: u64,
    /// Of `messages`, how many failed in a partly failed batch (the rest succeeded); when
    /// `error_type` is set and this is 0, they all failed.
    pub(crate) failed_messages: u64,
    pub(crate) counts_as_delivery: bool,
    pub(crate) queue_wait_secs: Option<f64>,
    pub(crate) error_type: Option<&'a str>,
}

/// The metric attributes of an operation as its view gives them (borrowed): what a
/// [`MetricSet`] is looked up by. `destination` is `None` for a temporary or anonymous one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MetricKey<'a> {
    pub(crate) system: &'static str,
    pub(crate) operation_name: &'static str,
    pub(crate) operation_type: OperationType,
    pub(crate) destination: Option<&'a str>,
    pub(crate) template: Option<&'a str>,
    pub(crate) partition: Option<&'a str>,
    pub(crate) group: Option<&'a str>,
    pub(crate) server: Option<(&'a str, Option<u16>)>,
}

/// One kind of operation's metric attribute set, resolved once per thread and shared by every
/// operation with the same [`MetricKey`]: the attribute vectors the instruments take, and (feature
/// `bound-metrics`) the instruments bound to them.
pub(crate) struct MetricSet {
    /// The instruments its measurements go to (their `id` tells instrumenters apart).
    instruments: Instruments,
    system: &'static str,
    operation_name: &'static str,
    operation_type: OperationType,
    destination: Option<Box<str>>,
    template: Option<Box<str>>,
    partition: Option<Box<str>>,
    group: Option<Box<str>>,
    server: Option<(Box<str>, Option<u16>)>,
    /// Without `messaging.operation.type` and `error.type`.
    attributes: Vec<KeyValue>,
    /// With `messaging.operation.type` last (`messaging.client.operation.duration`).
    with_type: Vec<KeyValue>,
    /// The set's message totals (shared by every overflow set: they record one attribute set).
    counts: Arc<Counts>,
    #[cfg(feature = "bound-metrics")]
    bound: bound::Bound,
}

impl MetricSet {
    /// The cheap part of a comparison with a key: instrumenter, operation type and name. A set is
    /// `key`'s when this, its partition and [`family_matches`](Self::family_matches) agree.
    fn head_matches(&self, instruments: u64, key: &MetricKey<'_>) -> bool {
        self.instruments.id == instruments
            && self.operation_type == key.operation_type
            && std::ptr::eq(self.operation_name, key.operation_name)
    }

    /// Whether this set and `key` agree on everything but the partition and the
    /// [`head`](Self::head_matches): whether `key`'s set is in this set's [`Family`].
    fn family_matches(&self, key: &MetricKey<'_>) -> bool {
        self.system == key.system
            && self.destination.as_deref() == key.destination
            && self.template.as_deref() == key.template
            && self.group.as_deref() == key.group
            && match (&self.server, key.server) {
                (Some((a, p)), Some((b, q))) => **a == *b && *p == q,
                (None, None) => true,
                _ => false,
            }
    }

    /// Whether this set is `key`'s on the instruments with id `instruments`.
    fn is_for(&self, instruments: u64, key: &MetricKey<'_>) -> bool {
        self.head_matches(instruments, key)
            && self.partition.as_deref() == key.partition
            && self.family_matches(key)
    }

    /// `key`'s set on `instruments`, recording under its own attributes, or under the overflow set's
    /// when `overflow` (past [`MAX_ATTRIBUTE_SETS`]); `hash` is the key's (it files the set's
    /// message totals).
    fn new(instruments: Instruments, key: &MetricKey<'_>, hash: u64, overflow: bool) -> Self {
        let owned = |s: Option<&str>| s.map(Box::<str>::from);
        let (attributes, with_type) = if overflow {
            // Past the cap: keyed as `key` in the caches, recorded as the overflow set.
            let overflow = vec![KeyValue::new(OVERFLOW, true)];
            (overflow.clone(), overflow)
        } else {
            Self::attributes_of(key)
        };
        let counts = instruments.counts.counts(hash, &attributes, overflow);
        MetricSet {
            instruments,
            system: key.system,
            operation_name: key.operation_name,
            operation_type: key.operation_type,
            destination: owned(key.destination),
            template: owned(key.template),
            partition: owned(key.partition),
            group: owned(key.group),
            server: key.server.map(|(address, port)| (Box::from(address), port)),
            attributes,
            with_type,
            counts,
            #[cfg(feature = "bound-metrics")]
            bound: bound::Bound::default(),
        }
    }

    /// The attributes of `key`'s set: without and with `messaging.operation.type`.
    fn attributes_of(key: &MetricKey<'_>) -> (Vec<KeyValue>, Vec<KeyValue>) {
        let value = |s: &str| StringValue::from(s.to_owned());
        let mut attributes = Vec::with_capacity(9);
        attributes.push(KeyValue::new(semconv::MESSAGING_SYSTEM, key.system));
        attributes.push(KeyValue::new(semconv::MESSAGING_OPERATION_NAME, key.operation_name));
        if let Some(destination) = key.destination {
            attributes.push(KeyValue::new(semconv::MESSAGING_DESTINATION_NAME, value(destination)));
        }
        if let Some(template) = key.template {
            attributes.push(KeyValue::new(semconv::MESSAGING_DESTINATION_TEMPLATE, value(template)));
        }
        if let Some(partition) = key.partition {
            attributes.push(KeyValue::new(semconv::MESSAGING_DESTINATION_PARTITION_ID, value(partition)));
        }
        if let Some(group) = key.group {
            attributes.push(KeyValue::new(semconv::MESSAGING_CONSUMER_GROUP_NAME, value(group)));
        }
        if let Some((address, port)) = key.server {
            attributes.push(KeyValue::new(semconv::SERVER_ADDRESS, value(address)));
            if let Some(port) = port {
                attributes.push(KeyValue::new(semconv::SERVER_PORT, i64::from(port)));
            }
        }
        let mut with_type = attributes.clone();
        with_type.push(KeyValue::new(semconv::MESSAGING_OPERATION_TYPE, key.operation_type.as_str()));
        (attributes, with_type)
    }
}

impl Instruments {
    /// Instruments on `meter` recording at most `limit` attribute sets under their own attributes.
    pub(crate) fn new(meter: &Meter, limit: usize) -> Self {
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let counts = Arc::new(Registry::default());
        let observable = |name: &'static str, description: &'static str, counter: Counter| {
            let counts = counts.clone();
            meter
                .u64_observable_counter(name)
                .with_unit(semconv::UNIT_MESSAGES)
                .with_description(description)
                .with_callback(move |observer| counts.observe(counter, observer))
                .build()
        };
        Instruments {
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            operation_duration: meter
                .f64_histogram(semconv::MESSAGING_CLIENT_OPERATION_DURATION)
                .with_unit(semconv::UNIT_SECONDS)
                .with_description(
                    "Duration of messaging operation initiated by a producer or consumer client.",
                )
                .with_boundaries(semconv::DURATION_BUCKETS.to_vec())
                .build(),
            process_duration: meter
                .f64_histogram(semconv::MESSAGING_PROCESS_DURATION)
                .with_unit(semconv::UNIT_SECONDS)
                .with_description("Duration of processing operation.")
                .with_boundaries(semconv::DURATION_BUCKETS.to_vec())
                .build(),
            _sent_messages: observable(
                semconv::MESSAGING_CLIENT_SENT_MESSAGES,
                "Number of messages producer attempted to send to the broker.",
                Counter::Sent,
            ),
            _consumed_messages: observable(
                semconv::MESSAGING_CLIENT_CONSUMED_MESSAGES,
                "Number of messages that were delivered to the application.",
                Counter::Consumed,
            ),
            counts: counts.clone(),
            admitted: Arc::new(Admitted { keys: std::sync::Mutex::default(), limit }),
            queue_wait: meter
                .f64_histogram(semconv::OTEL_MESSAGING_QUEUE_WAIT_DURATION)
                .with_unit(semconv::UNIT_SECONDS)
                .with_description("Time a message waited between being sent and the start of its processing.")
                .with_boundaries(semconv::QUEUE_WAIT_BUCKETS.to_vec())
                .build(),
        }
    }

    /// `key`'s set: the live one another thread built, else a new one — under its own attributes
    /// when `key` was admitted before or fewer than [`MAX_ATTRIBUTE_SETS`] keys were, else under the
    /// overflow set's. Takes the instrumenter's lock: called on a thread's cache miss only.
    fn set_for(&self, key: &MetricKey<'_>) -> Arc<MetricSet> {
        use std::hash::{Hash as _, Hasher as _};
        let mut h = rustc_hash::FxHasher::default();
        key.family_hash(self.id).hash(&mut h);
        key.partition.hash(&mut h);
        let hash = h.finish();
        let mut keys = self.admitted.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let admitted = keys.len() < self.admitted.limit || keys.contains_key(&hash);
        if !admitted {
            return Arc::new(MetricSet::new(self.clone(), key, hash, true));
        }
        let sets = keys.entry(hash).or_default();
        sets.retain(|set| set.strong_count() > 0);
        // Another key with the same hash keeps its own set: compared, not trusted.
        if let Some(set) =
            sets.iter().filter_map(std::sync::Weak::upgrade).find(|set| set.is_for(self.id, key))
        {
            return set;
        }
        let set = Arc::new(MetricSet::new(self.clone(), key, hash, false));
        sets.push(Arc::downgrade(&set));
        set
    }

    /// The attribute set of operations described by `key`: from this thread's cache, or built
    /// (and cached) on first use.
    pub(crate) fn resolve(&self, key: &MetricKey<'_>) -> Arc<MetricSet> {
        cached(self.id, key, &|| self.clone())
    }
}

impl MetricSet {
    /// Records one ended operation with this attribute set (plus `error.type` when it failed)
    /// on the instruments the set was resolved with.
    pub(crate) fn record(&self, m: Measurement<'_>) {
        let (this, set) = (&self.instruments, self);
        // The counters: an atomic add per operation (read by the SDK when it collects).
        match m.operation_type {
            // Delivery happened before the handler ran: a handler failure is not the delivery's,
            // so it carries no `error.type`.
            OperationType::Process if m.counts_as_delivery => {
                set.counts.add(Counter::Consumed, m.messages, None);
            }
            OperationType::Process => {}
            OperationType::Send => {
                // A partly failed batch: the messages that succeeded without `error.type`.
                let succeeded = if m.failed_messages > 0 { m.messages - m.failed_messages } else { 0 };
                set.counts.add(Counter::Sent, succeeded, None);
                set.counts.add(Counter::Sent, m.messages - succeeded, m.error_type);
            }
            OperationType::Receive if m.counts_as_delivery => {
                set.counts.add(Counter::Consumed, m.messages, m.error_type);
            }
            _ => {}
        }
        #[cfg(feature = "bound-metrics")]
        if m.error_type.is_none() && m.failed_messages == 0 {
            return bound::record(this, set, &m);
        }
        match m.operation_type {
            OperationType::Process => {
                if let Some(wait) = m.queue_wait_secs {
                    this.queue_wait.record(wait, &set.attributes);
                }
                if let Some(error_type) = m.error_type {
                    this.process_duration.record(m.duration_secs, &with_error(&set.attributes, error_type));
                } else {
                    this.process_duration.record(m.duration_secs, &set.attributes);
                }
            }
            op => {
                if let Some(error_type) = m.error_type {
                    let mut attrs = with_error(&set.attributes, error_type);
                    attrs.push(KeyValue::new(semconv::MESSAGING_OPERATION_TYPE, op.as_str()));
                    this.operation_duration.record(m.duration_secs, &attrs);
                } else {
                    this.operation_duration.record(m.duration_secs, &set.with_type);
                }
            }
        }
    }
}

/// `attributes` and `error.type = error_type`.
fn with_error(attributes: &[KeyValue], error_type: &str) -> Vec<KeyValue> {
    let mut with = Vec::with_capacity(attributes.len() + 2);
    with.extend_from_slice(attributes);
    with.push(KeyValue::new(semconv::ERROR_TYPE, error_type.to_owned()));
    with
}

/// Instruments bound to the attribute sets of successful operations.
#[cfg(feature = "bound-metrics")]
mod bound {
    use std::sync::OnceLock;

    use opentelemetry::metrics::BoundHistogram;

    use super::{Instruments, Measurement, MetricSet};
    use crate::operation::OperationType;

    /// The histograms one kind of successful operation records, bound to its attribute set; each
    /// is bound on its first measurement, so an instrument never recorded exports nothing. (The
    /// message counters need no binding: they are totals in the set's own atomics.)
    #[derive(Default)]
    pub(super) struct Bound {
        duration: OnceLock<BoundHistogram<f64>>,
        queue_wait: OnceLock<BoundHistogram<f64>>,
    }

    /// Records a successful operation's histograms (no `error.type`) through bound instruments:
    /// the same measurements as the unbound path in [`MetricSet::record`].
    pub(super) fn record(instruments: &Instruments, set: &MetricSet, m: &Measurement<'_>) {
        let (bound, attrs) = (&set.bound, &set.attributes);
        match m.operation_type {
            OperationType::Process => {
                if let Some(wait) = m.queue_wait_secs {
                    bound.queue_wait.get_or_init(|| instruments.queue_wait.bind(attrs)).record(wait);
                }
                bound
                    .duration
                    .get_or_init(|| instruments.process_duration.bind(attrs))
                    .record(m.duration_secs);
            }
            _ => {
                bound
                    .duration
                    .get_or_init(|| instruments.operation_duration.bind(&set.with_type))
                    .record(m.duration_secs);
            }
        }
    }
}

#[cfg(test)]
mod tests;
