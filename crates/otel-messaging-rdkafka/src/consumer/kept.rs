//! The contexts the traced receives on a thread read from their records, kept for the records'
//! process and settle spans (levers 25 and 26, BENCHMARKS.md).

use opentelemetry::trace::Link;
use otel_messaging::__private::DeliveredContext;

/// A received record: the address of librdkafka's message, its topic handle (one per client and
/// topic), partition and offset. Two records with the same key are the same record of the log —
/// an address reused for a later message comes with another offset, or is the same record
/// delivered again, with the same headers (Kafka records are immutable).
#[doc(hidden)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedKey {
    pub(super) message: usize,
    pub(super) topic: usize,
    pub(super) partition: i32,
    pub(super) offset: i64,
}

/// The contexts the traced receives on this thread read from their records (levers 25 and 26,
/// BENCHMARKS.md), so that a record's headers are not read and decoded again: [`RECEIVED`] until
/// the record's process span starts, then [`PROCESSED`] for the links of its settle spans. A
/// single-message receive keeps one (`recv_traced` then `process_traced`, or `stream_traced`,
/// which does both in one poll), a batch receive one per record (`recv_batch_traced`, then each
/// record processed in turn). Per thread, so no lock: a record processed or settled on another
/// thread (a task that moved between its awaits) misses. A miss — another thread, a detached
/// message, another instrumenter (the core checks), a record pushed out — reads the headers as
/// before.
struct Kept(std::collections::VecDeque<(ReceivedKey, DeliveredContext)>);

/// Most contexts kept per thread in each of [`RECEIVED`] and [`PROCESSED`]: a batch of more
/// records keeps its last ones. Each is a `Context` of a few hundred bytes (larger readings are
/// not kept: `DeliveredContext::keepable`), so a thread keeps at most ≈ 800 KiB.
const MAX_KEPT: usize = 256;

/// How many of the oldest kept contexts a look-up goes through after the newest: a batch is
/// processed in order, so its next record is the oldest kept but for the few the application
/// skipped (a filter), which are forgotten once a later record is processed.
const LOOK_AHEAD: usize = 8;

impl Kept {
    /// Keeps `context` for the record `key`; forgets the oldest when full.
    fn keep(&mut self, key: ReceivedKey, context: DeliveredContext) {
        if self.0.len() >= MAX_KEPT {
            self.0.pop_front();
        }
        self.0.push_back((key, context));
    }

    /// Where the context of `key` is: the newest (a single-message receive, or a batch processed
    /// last to first), else among the [`LOOK_AHEAD`] oldest.
    fn find(&self, key: ReceivedKey) -> Option<usize> {
        let last = self.0.len().checked_sub(1)?;
        if self.0.back().is_some_and(|(k, _)| *k == key) {
            return Some(last);
        }
        self.0.iter().take(LOOK_AHEAD).position(|(k, _)| *k == key)
    }

    /// The context of `key`, taken, with the older ones in front of it (records received before
    /// it and not processed: skipped).
    fn take(&mut self, key: ReceivedKey) -> Option<DeliveredContext> {
        let at = self.find(key)?;
        if at + 1 == self.0.len() {
            return self.0.pop_back().map(|(_, context)| context);
        }
        self.0.drain(..at);
        self.0.pop_front().map(|(_, context)| context)
    }
}

thread_local! {
    /// Readings of received records not processed yet.
    static RECEIVED: std::cell::RefCell<Kept> =
        const { std::cell::RefCell::new(Kept(std::collections::VecDeque::new())) };
    /// Readings of processed records, for their settle spans' links (a record may be settled more
    /// than once: stored, then committed).
    static PROCESSED: std::cell::RefCell<Kept> =
        const { std::cell::RefCell::new(Kept(std::collections::VecDeque::new())) };
}

/// Runs `f` on this thread's `kept`; `None` when the thread is being torn down or `kept` is in
/// use.
fn with_kept<R>(
    kept: &'static std::thread::LocalKey<std::cell::RefCell<Kept>>,
    f: impl FnOnce(&mut Kept) -> Option<R>,
) -> Option<R> {
    kept.try_with(|kept| f(&mut *kept.try_borrow_mut().ok()?)).ok().flatten()
}

/// Keeps `context` for the record `key` in this thread's `kept`.
fn keep_in(
    kept: &'static std::thread::LocalKey<std::cell::RefCell<Kept>>,
    key: ReceivedKey,
    context: DeliveredContext,
) {
    with_kept(kept, |kept| {
        kept.keep(key, context);
        Some(())
    });
}

/// Keeps `context`, read by the receive of the record `key`, for its process span (a large
/// reading is not kept: the process span reads the headers).
pub(super) fn keep_received(key: ReceivedKey, context: DeliveredContext) {
    if let Some(context) = context.keepable() {
        keep_in(&RECEIVED, key, context);
    }
}

/// Keeps `context`, which the process span of the record `key` took, for its settle spans' links.
pub(super) fn keep_processed(key: ReceivedKey, context: DeliveredContext) {
    keep_in(&PROCESSED, key, context);
}

/// The context the receive of the record `key` read, if this thread keeps it; taken.
pub(super) fn take_received(key: ReceivedKey) -> Option<DeliveredContext> {
    with_kept(&RECEIVED, |kept| kept.take(key))
}

/// The link to the creation context of the processed record `key`, if this thread kept its
/// reading and `instrumenter` made it: `Some(None)` when the record has none.
pub(super) fn processed_link(
    key: ReceivedKey,
    instrumenter: &otel_messaging::MessagingInstrumenter,
) -> Option<Option<Link>> {
    with_kept(&PROCESSED, |kept| {
        let (_, reading) = kept.0.get(kept.find(key)?)?;
        reading.is_read_by(instrumenter).then(|| reading.link(Vec::new()))
    })
}

#[cfg(test)]
mod tests {
    use otel_messaging::{__private::EmptyExtractor, MessagingInstrumenter};

    use super::{Kept, LOOK_AHEAD, MAX_KEPT, ReceivedKey};

    fn key(offset: i64) -> ReceivedKey {
        ReceivedKey { message: 1, topic: 2, partition: 0, offset }
    }

    /// Keeps records `0..n` as one batch would, each with its own (empty) reading.
    fn batch(n: i64) -> Kept {
        let instrumenter = MessagingInstrumenter::builder().with_metrics(false).build();
        let mut kept = Kept(std::collections::VecDeque::new());
        for offset in 0..n {
            kept.keep(key(offset), instrumenter.extract_delivered(&EmptyExtractor));
        }
        kept
    }

    fn offsets(kept: &Kept) -> Vec<i64> {
        kept.0.iter().map(|(k, _)| k.offset).collect()
    }

    #[test]
    fn a_batch_processed_in_order_finds_each_record_and_forgets_the_skipped_ones() {
        let mut kept = batch(5);
        assert!(kept.take(key(0)).is_some());
        // Record 1 skipped by the application: taking 2 forgets it.
        assert!(kept.take(key(2)).is_some());
        assert_eq!(offsets(&kept), [3, 4]);
        assert!(kept.take(key(1)).is_none(), "forgotten: read from the headers");
        // The newest is found at once (a single receive, or a batch processed last to first).
        assert!(kept.take(key(4)).is_some());
        assert_eq!(offsets(&kept), [3]);
    }

    #[test]
    fn a_record_beyond_the_look_ahead_or_pushed_out_is_not_found() {
        let depth = i64::try_from(LOOK_AHEAD).unwrap_or(i64::MAX);
        let mut kept = batch(depth + 2);
        assert!(kept.take(key(depth)).is_none(), "past the look-ahead, and not the newest");
        assert_eq!(kept.0.len(), usize::try_from(depth + 2).unwrap_or(0), "a miss forgets nothing");
        let full = i64::try_from(MAX_KEPT).unwrap_or(i64::MAX);
        let mut kept = batch(full + 1);
        assert_eq!(kept.0.len(), MAX_KEPT);
        assert!(kept.take(key(0)).is_none(), "the oldest was pushed out");
        assert!(kept.take(key(1)).is_some());
    }
}
