//! The four semconv messaging instruments plus the project's queue-wait histogram, built once per
//! instrumenter.
//!
//! Source: semconv v1.44 `docs/messaging/messaging-metrics.md` and `model/messaging/metrics.yaml`.
//!
//! | Instrument | Kind | Unit | Recorded |
//! |---|---|---|---|
//! | `messaging.client.operation.duration` | f64 histogram | `s` | every create/send/receive/settle operation, = span duration |
//! | `messaging.process.duration` | f64 histogram | `s` | every process operation, = span duration |
//! | `messaging.client.sent.messages` | u64 counter | `{message}` | per send operation, by its message count |
//! | `messaging.client.consumed.messages` | u64 counter | `{message}` | once per delivery: receive operations (a failed receive counts nothing), and process operations not preceded by a traced receive |
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
//! With feature `bound-metrics` (default) the measurements of successful operations go through
//! instruments bound to their attribute set (opentelemetry 0.33's experimental bound instruments),
//! cached per thread: the SDK then neither hashes nor compares the attribute set per measurement
//! (BENCHMARKS.md). Failed operations, whose `error.type` varies, take the unbound path.

use opentelemetry::{
    KeyValue,
    metrics::{Counter, Histogram, Meter},
};

use crate::{operation::OperationType, semconv};

/// The instruments of one instrumenter.
#[derive(Debug, Clone)]
pub(crate) struct Instruments {
    /// Distinguishes this instrumenter's bound instruments in the per-thread cache.
    #[cfg(feature = "bound-metrics")]
    id: u64,
    operation_duration: Histogram<f64>,
    process_duration: Histogram<f64>,
    sent_messages: Counter<u64>,
    consumed_messages: Counter<u64>,
    queue_wait: Histogram<f64>,
}

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
    pub(crate) attributes: &'a mut Vec<KeyValue>,
    pub(crate) error_type: Option<&'a str>,
}

impl Instruments {
    pub(crate) fn new(meter: &Meter) -> Self {
        #[cfg(feature = "bound-metrics")]
        static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        Instruments {
            #[cfg(feature = "bound-metrics")]
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
            sent_messages: meter
                .u64_counter(semconv::MESSAGING_CLIENT_SENT_MESSAGES)
                .with_unit(semconv::UNIT_MESSAGES)
                .with_description("Number of messages producer attempted to send to the broker.")
                .build(),
            consumed_messages: meter
                .u64_counter(semconv::MESSAGING_CLIENT_CONSUMED_MESSAGES)
                .with_unit(semconv::UNIT_MESSAGES)
                .with_description("Number of messages that were delivered to the application.")
                .build(),
            queue_wait: meter
                .f64_histogram(semconv::OTEL_MESSAGING_QUEUE_WAIT_DURATION)
                .with_unit(semconv::UNIT_SECONDS)
                .with_description("Time a message waited between being sent and the start of its processing.")
                .with_boundaries(semconv::QUEUE_WAIT_BUCKETS.to_vec())
                .build(),
        }
    }

    /// Records one ended operation. `m.attributes` holds the base metric attributes (without
    /// `messaging.operation.type` and `error.type`); it is extended in place.
    pub(crate) fn record(&self, m: Measurement<'_>) {
        #[cfg(feature = "bound-metrics")]
        if m.error_type.is_none() && m.failed_messages == 0 && bound::record(self, &m) {
            return;
        }
        let attrs = m.attributes;
        match m.operation_type {
            OperationType::Process => {
                // Delivery and queue wait happened before the handler ran: a handler failure is
                // not theirs, so they carry no `error.type`.
                if m.counts_as_delivery && m.messages > 0 {
                    self.consumed_messages.add(m.messages, attrs);
                }
                if let Some(wait) = m.queue_wait_secs {
                    self.queue_wait.record(wait, attrs);
                }
                if let Some(error_type) = m.error_type {
                    attrs.push(KeyValue::new(semconv::ERROR_TYPE, error_type.to_owned()));
                }
                self.process_duration.record(m.duration_secs, attrs);
            }
            op => {
                let succeeded = if m.failed_messages > 0 { m.messages - m.failed_messages } else { 0 };
                if op == OperationType::Send && succeeded > 0 {
                    self.sent_messages.add(succeeded, attrs);
                }
                if let Some(error_type) = m.error_type {
                    attrs.push(KeyValue::new(semconv::ERROR_TYPE, error_type.to_owned()));
                }
                let attempted = m.messages - succeeded;
                if op == OperationType::Send && attempted > 0 {
                    self.sent_messages.add(attempted, attrs);
                }
                if op == OperationType::Receive && m.counts_as_delivery && m.messages > 0 {
                    self.consumed_messages.add(m.messages, attrs);
                }
                attrs.push(KeyValue::new(semconv::MESSAGING_OPERATION_TYPE, op.as_str()));
                self.operation_duration.record(m.duration_secs, attrs);
            }
        }
    }
}

/// Instruments bound to the attribute sets of successful operations, cached per thread.
#[cfg(feature = "bound-metrics")]
mod bound {
    use std::cell::RefCell;

    use opentelemetry::{
        KeyValue,
        metrics::{BoundCounter, BoundHistogram},
    };

    use super::{Instruments, Measurement};
    use crate::{operation::OperationType, semconv};

    /// Attribute sets kept bound per thread (the most recently used ones).
    const RECENT: usize = 32;

    /// The instruments one kind of successful operation records, bound to one attribute set;
    /// each is bound on its first measurement, so an instrument never recorded exports nothing.
    struct Entry {
        instruments: u64,
        operation_type: OperationType,
        attributes: Vec<KeyValue>,
        duration: Option<BoundHistogram<f64>>,
        messages: Option<BoundCounter<u64>>,
        queue_wait: Option<BoundHistogram<f64>>,
    }

    thread_local! {
        static CACHE: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
    }

    /// Records a successful operation (no `error.type`) through bound instruments: the same
    /// measurements as the unbound path in [`Instruments::record`]. `false` (nothing recorded)
    /// when the thread's cache is unavailable (thread exiting).
    pub(super) fn record(instruments: &Instruments, m: &Measurement<'_>) -> bool {
        let done = CACHE.try_with(|cache| {
            let Ok(mut cache) = cache.try_borrow_mut() else { return false };
            let found = cache.iter().position(|e| {
                e.instruments == instruments.id
                    && e.operation_type == m.operation_type
                    && e.attributes == *m.attributes
            });
            let index = match found {
                Some(index) => index,
                None => {
                    if cache.len() >= RECENT {
                        cache.remove(0);
                    }
                    cache.push(Entry {
                        instruments: instruments.id,
                        operation_type: m.operation_type,
                        attributes: m.attributes.clone(),
                        duration: None,
                        messages: None,
                        queue_wait: None,
                    });
                    cache.len() - 1
                }
            };
            measure(instruments, &mut cache[index], m);
            true
        });
        done == Ok(true)
    }

    fn measure(instruments: &Instruments, entry: &mut Entry, m: &Measurement<'_>) {
        let attrs = &entry.attributes;
        match m.operation_type {
            OperationType::Process => {
                if m.counts_as_delivery && m.messages > 0 {
                    entry
                        .messages
                        .get_or_insert_with(|| instruments.consumed_messages.bind(attrs))
                        .add(m.messages);
                }
                if let Some(wait) = m.queue_wait_secs {
                    entry.queue_wait.get_or_insert_with(|| instruments.queue_wait.bind(attrs)).record(wait);
                }
                entry
                    .duration
                    .get_or_insert_with(|| instruments.process_duration.bind(attrs))
                    .record(m.duration_secs);
            }
            op => {
                let counter = match op {
                    OperationType::Send => Some(&instruments.sent_messages),
                    OperationType::Receive if m.counts_as_delivery => Some(&instruments.consumed_messages),
                    _ => None,
                };
                if let Some(counter) = counter
                    && m.messages > 0
                {
                    entry.messages.get_or_insert_with(|| counter.bind(attrs)).add(m.messages);
                }
                entry
                    .duration
                    .get_or_insert_with(|| {
                        let mut with_type = attrs.clone();
                        with_type.push(KeyValue::new(semconv::MESSAGING_OPERATION_TYPE, op.as_str()));
                        instruments.operation_duration.bind(&with_type)
                    })
                    .record(m.duration_secs);
            }
        }
    }
}
