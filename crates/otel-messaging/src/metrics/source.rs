//! Where an instrumenter's instruments come from: a meter provider given to the builder (fixed),
//! or the global meter provider, re-read while the program runs so that an instrumenter built
//! before `global::set_meter_provider` records to the provider installed later.

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{SystemTime, UNIX_EPOCH},
};

use opentelemetry::metrics::MeterProvider;

use super::{Instruments, MetricKey, MetricSet};

/// How often, at most, an instrumenter on the global meter provider checks whether another one
/// was installed (milliseconds; the check is a read of the global provider, off the hot path of
/// every other operation).
pub(crate) const GLOBAL_RECHECK_MS: u64 = 1_000;

/// The instruments of one instrumenter.
pub(crate) enum InstrumentSource {
    /// From the meter provider given to the builder.
    Fixed(Instruments),
    /// From the global meter provider in force (checked at most every [`GLOBAL_RECHECK_MS`]).
    Global(GlobalInstruments),
}

impl std::fmt::Debug for InstrumentSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InstrumentSource::Fixed(_) => "Fixed",
            InstrumentSource::Global(_) => "Global",
        })
    }
}

impl InstrumentSource {
    /// Instruments on the global meter provider in force now, and later ones.
    pub(crate) fn global(scope: opentelemetry::InstrumentationScope, limit: usize) -> Self {
        let provider = opentelemetry::global::meter_provider();
        let instruments = Instruments::new(&provider.meter_with_scope(scope.clone()), limit);
        InstrumentSource::Global(GlobalInstruments {
            id: AtomicU64::new(instruments.id),
            current: RwLock::new((provider, instruments)),
            next_check_ms: AtomicU64::new(0),
            scope,
            limit,
        })
    }

    /// The attribute set of an operation described by `key` that starts at `now`, on the
    /// instruments in force.
    pub(crate) fn resolve(&self, key: &MetricKey<'_>, now: SystemTime) -> Arc<MetricSet> {
        match self {
            InstrumentSource::Fixed(instruments) => instruments.resolve(key),
            InstrumentSource::Global(global) => global.resolve(key, now),
        }
    }
}

/// Instruments on the global meter provider: rebuilt when another provider is installed.
pub(crate) struct GlobalInstruments {
    /// The id of the instruments in `current`: what the per-thread attribute-set cache is
    /// looked up by, without taking the lock.
    id: AtomicU64,
    /// The provider the instruments were built on (held, so that its address is not reused by
    /// a later provider while it is compared), and the instruments.
    current: RwLock<(Arc<dyn MeterProvider + Send + Sync>, Instruments)>,
    /// Milliseconds since the Unix epoch from which the global provider is read again.
    next_check_ms: AtomicU64,
    scope: opentelemetry::InstrumentationScope,
    /// The attribute-set limit of every instruments built ([`Instruments::new`]).
    limit: usize,
}

impl GlobalInstruments {
    fn resolve(&self, key: &MetricKey<'_>, now: SystemTime) -> Arc<MetricSet> {
        self.recheck(now);
        let id = self.id.load(Ordering::Acquire);
        super::cached(id, key, &|| self.instruments())
    }

    /// The instruments in force.
    fn instruments(&self) -> Instruments {
        self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner).1.clone()
    }

    /// Reads the global meter provider again when the last read is [`GLOBAL_RECHECK_MS`] old
    /// (one caller at a time; the others go on with the instruments in force), and rebuilds the
    /// instruments when it is another one. A clock that went back more than a check interval
    /// also triggers a check.
    fn recheck(&self, now: SystemTime) {
        let now_ms =
            now.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let due = self.next_check_ms.load(Ordering::Relaxed);
        if now_ms < due && due <= now_ms.saturating_add(GLOBAL_RECHECK_MS) {
            return;
        }
        let next = now_ms.saturating_add(GLOBAL_RECHECK_MS);
        if self.next_check_ms.compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed).is_err() {
            return;
        }
        let provider = opentelemetry::global::meter_provider();
        let same = {
            let current = self.current.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            Arc::ptr_eq(&current.0, &provider)
        };
        if same {
            return;
        }
        let instruments = Instruments::new(&provider.meter_with_scope(self.scope.clone()), self.limit);
        let id = instruments.id;
        *self.current.write().unwrap_or_else(std::sync::PoisonError::into_inner) = (provider, instruments);
        self.id.store(id, Ordering::Release);
    }
}
