//! [`MessagingInstrumenter`] (built once) and the [`Operation`] guard it returns for each
//! messaging operation.
//!
//! The instrumenter owns everything semconv decides: span names (`{messaging.operation.name}
//! {destination}`), span kinds, the sampling-relevant attributes given at span start, status and
//! `error.type`, the metrics, and the propagation policy. Broker crates only describe an operation
//! through a [`MessagingAttributes`] view.

use std::{
    borrow::Cow,
    fmt,
    future::Future,
    sync::{Arc, OnceLock},
    time::{Duration, SystemTime},
};

use opentelemetry::{
    Array, Context, InstrumentationScope, Key, KeyValue, StringValue, Value,
    context::FutureExt as _,
    metrics::MeterProvider,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{Link, SpanBuilder, Status, TraceContextExt, Tracer, TracerProvider},
};

use crate::{
    attributes::MessagingAttributes,
    metrics::{InstrumentSource, Instruments, Measurement, MetricKey, MetricSet},
    operation::OperationType,
    propagation::{Extracted, ProcessParent, Propagator, process_parent, process_parent_into},
    semconv,
};

/// Name of the instrumentation scope: `otel-messaging`.
pub const SCOPE_NAME: &str = "otel-messaging";

/// The instrumentation scope of every span and metric of this project: name [`SCOPE_NAME`], this
/// crate's version, the semconv v1.44 schema URL. Broker crates use it for metrics of their own
/// (e.g. the Kafka client statistics), through [`crate::__private`].
pub fn instrumentation_scope() -> InstrumentationScope {
    scope()
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(SCOPE_NAME)
        .with_version(env!("CARGO_PKG_VERSION"))
        .with_schema_url(semconv::SCHEMA_URL)
        .build()
}

mod builder;
mod enricher;
mod naming;
mod operation;
mod operation_builder;
mod start;
mod traced_message;
mod tracer;

pub use builder::MessagingInstrumenterBuilder;
use builder::SkipDestination;
pub use enricher::{SpanEnricher, SpanStart};
use naming::{intern, span_name};

pub use operation::Operation;
use operation::{MAX_CAPTURED_VALUES, queue_wait};
pub use operation_builder::OperationBuilder;
pub use traced_message::TracedMessage;

use tracer::{GlobalTracer, SpanStarter};

struct Inner {
    tracer: Box<dyn SpanStarter>,
    instruments: Option<InstrumentSource>,
    propagator: Propagator,
    trust_boundary: bool,
    captured_headers: Vec<(String, Key)>,
    body_size: bool,
    error_description: bool,
    enricher: Option<Arc<dyn SpanEnricher>>,
    /// Destination templates ([`MessagingInstrumenterBuilder::with_destination_templates`]).
    templates: Option<crate::DestinationTemplates>,
    /// Destinations whose operations record nothing ([`MessagingInstrumenterBuilder::with_skipped_destinations`]).
    skip: Option<SkipDestination>,
    /// The sampler is declared parent-based: unsampled parents take the fast path
    /// ([`MessagingInstrumenterBuilder::with_parent_based_sampling`]).
    parent_based: bool,
}

/// Creates spans and metrics for messaging operations, following semconv v1.44.
///
/// Build it once and share it (it is a cheap `Clone` over an `Arc`):
/// [`new`](Self::new) uses the global tracer, meter and propagator;
/// [`builder`](Self::builder) takes explicit providers and the policies. The `_traced` sugar of
/// the broker crates uses [`global`](Self::global) unless given an instrumenter.
///
/// # Examples
///
/// The three-line primitive every broker integration is made of:
///
/// ```
/// use std::collections::HashMap;
/// use otel_messaging::{MessagingAttributes, MessagingInstrumenter, OperationType};
///
/// struct Send<'a>(&'a str);
/// impl MessagingAttributes for Send<'_> {
///     fn system(&self) -> &'static str { "kafka" }
///     fn operation_type(&self) -> OperationType { OperationType::Send }
///     fn operation_name(&self) -> &'static str { "send" }
///     fn destination_name(&self) -> Option<&str> { Some(self.0) }
/// }
///
/// let instrumenter = MessagingInstrumenter::new();
/// let mut headers: HashMap<String, String> = HashMap::new();
/// let operation = instrumenter.operation(&Send("orders")).with_outgoing_message(&headers).start();
/// operation.inject(&mut headers);                  // the creation context goes into the message
/// let result: Result<(), std::io::Error> = Ok(()); // ... the native send ...
/// operation.end(&result, |_| "io");                // status, error.type, duration metric
/// ```
#[derive(Clone)]
pub struct MessagingInstrumenter {
    inner: Arc<Inner>,
    process_parent: ProcessParent,
    /// Whether this is (a copy of) the process-wide default, resolved at each call so that
    /// [`set_global`](Self::set_global) governs it whenever it is called.
    follows: Follows,
}

/// How a [`MessagingInstrumenter`] finds what it runs with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Follows {
    /// Its own `inner` and policy.
    No,
    /// The process-wide default at each call, with this policy instead of the default's when set
    /// ([`MessagingInstrumenter::with_process_parent`] on a copy of the default).
    Default { policy: Option<ProcessParent> },
}

impl fmt::Debug for MessagingInstrumenter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let this = self.resolved();
        let this = &*this;
        f.debug_struct("MessagingInstrumenter")
            .field("follows_default", &(self.follows != Follows::No))
            .field("process_parent", &this.process_parent)
            .field("trust_boundary", &this.inner.trust_boundary)
            .field("propagator", &this.inner.propagator)
            .field("metrics", &this.inner.instruments.is_some())
            .field("captured_headers", &this.inner.captured_headers.len())
            .field("body_size", &this.inner.body_size)
            .finish()
    }
}

impl Default for MessagingInstrumenter {
    fn default() -> Self {
        Self::new()
    }
}

/// [`MessagingInstrumenter::set_global`] was given a copy of the process-wide default (from
/// [`MessagingInstrumenter::global`]), which cannot become the default; it is handed back.
#[derive(Debug)]
pub struct SetGlobalError(pub MessagingInstrumenter);

impl fmt::Display for SetGlobalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "a copy of the process-wide default instrumenter cannot become the default: \
             build one with MessagingInstrumenter::builder()",
        )
    }
}

impl std::error::Error for SetGlobalError {}

/// The handle [`MessagingInstrumenter::global`] returns: it follows the default.
static GLOBAL: OnceLock<MessagingInstrumenter> = OnceLock::new();

/// The process-wide default ([`MessagingInstrumenter::set_global`], else [`MessagingInstrumenter::new`]
/// built on first use), never itself a following handle.
static DEFAULT: std::sync::RwLock<Option<MessagingInstrumenter>> = std::sync::RwLock::new(None);

/// Bumped by every [`MessagingInstrumenter::set_global`]: a thread's cached default is current
/// while its generation is (one atomic load per operation, no lock).
static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The process-wide default in force: this thread's cached copy while no `set_global` happened
/// since, else read once (and built with `new()` on the very first use).
fn current_default() -> MessagingInstrumenter {
    use std::{cell::RefCell, sync::atomic::Ordering};
    thread_local! {
        static CACHE: RefCell<Option<(u64, MessagingInstrumenter)>> = const { RefCell::new(None) };
    }
    let generation = GENERATION.load(Ordering::Acquire);
    let cached = CACHE
        .try_with(|cache| {
            cache
                .borrow()
                .as_ref()
                .filter(|(g, _)| *g == generation)
                .map(|(_, instrumenter)| instrumenter.clone())
        })
        .ok()
        .flatten();
    if let Some(instrumenter) = cached {
        return instrumenter;
    }
    let read = DEFAULT.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let instrumenter = match read {
        Some(instrumenter) => instrumenter,
        None => {
            let mut slot = DEFAULT.write().unwrap_or_else(std::sync::PoisonError::into_inner);
            slot.get_or_insert_with(MessagingInstrumenter::new).clone()
        }
    };
    let _ = CACHE.try_with(|cache| *cache.borrow_mut() = Some((generation, instrumenter.clone())));
    instrumenter
}

impl MessagingInstrumenter {
    /// An instrumenter on the global tracer provider, meter provider and text-map propagator, with
    /// every policy at its default.
    ///
    /// The tracer provider is read when used: spans started before `global::set_tracer_provider`
    /// are the no-op's, and every later one goes to the installed provider (the first real one
    /// is kept). The global meter provider is read now and again at most once a second while
    /// operations run: one installed later (`global::set_meter_provider`) receives the
    /// measurements of operations that start from a second after its install on. The propagator
    /// is read at each call
    /// (W3C Trace Context + Baggage while none is installed; see
    /// [`MessagingInstrumenterBuilder::with_propagator`]).
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder for explicit providers and policies.
    pub fn builder() -> MessagingInstrumenterBuilder {
        MessagingInstrumenterBuilder::default()
    }

    /// The process-wide default instrumenter the `_traced` sugar uses (and each broker crate's
    /// `*Instrumentation::new()`): a handle that runs, at each call, with the instrumenter given
    /// to [`set_global`](Self::set_global) last, or else [`new`](Self::new) built on first use.
    /// Copies of it follow too, so an instrumentation built before `set_global` (an `AppState`
    /// built before telemetry) uses the default set later.
    ///
    /// The global tracer and meter providers are read while it runs (see [`new`](Self::new)), so
    /// telemetry installed after the first traced call is used from then on.
    pub fn global() -> &'static MessagingInstrumenter {
        GLOBAL.get_or_init(|| {
            let default = current_default();
            MessagingInstrumenter { follows: Follows::Default { policy: None }, ..default }
        })
    }

    /// The instrumenter this call runs with: itself, or the default in force for a copy of the
    /// default.
    #[inline]
    fn resolved(&self) -> std::borrow::Cow<'_, MessagingInstrumenter> {
        match self.follows {
            Follows::No => std::borrow::Cow::Borrowed(self),
            Follows::Default { policy } => {
                let mut default = current_default();
                if let Some(policy) = policy {
                    default.process_parent = policy;
                }
                std::borrow::Cow::Owned(default)
            }
        }
    }

    /// Makes `instrumenter` the process-wide default that [`global`](Self::global) — and every
    /// copy of it, such as each broker crate's `*Instrumentation::new()` — runs
    /// with from the next call on. It can be called at any time, also after traced calls were
    /// made, and again: copies of the default read it through a per-thread cache checked against
    /// a generation counter (one atomic load per operation, no lock).
    ///
    /// The use it is meant for: giving the `_traced` sugar explicit providers, policies or
    /// [`W3cPropagator`](crate::propagation::W3cPropagator) as an explicit propagator.
    ///
    /// # Errors
    ///
    /// [`SetGlobalError`] when `instrumenter` is itself a copy of the default (it would follow
    /// itself); the default in force is unchanged.
    ///
    /// # Examples
    ///
    /// ```
    /// use otel_messaging::{MessagingInstrumenter, propagation::W3cPropagator};
    ///
    /// let instrumenter = MessagingInstrumenter::builder().with_propagator(W3cPropagator::new()).build();
    /// MessagingInstrumenter::set_global(instrumenter).expect("not a copy of the default");
    /// ```
    pub fn set_global(instrumenter: MessagingInstrumenter) -> Result<(), SetGlobalError> {
        if instrumenter.follows != Follows::No {
            return Err(SetGlobalError(instrumenter));
        }
        *DEFAULT.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(instrumenter);
        GENERATION.fetch_add(1, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// A copy of this instrumenter with another process-parent policy, for one consumer.
    /// At a trust boundary any policy but [`ProcessParent::NewRoot`] is [`ProcessParent::Link`].
    pub fn with_process_parent(&self, policy: ProcessParent) -> Self {
        let follows = match self.follows {
            Follows::No => Follows::No,
            Follows::Default { .. } => Follows::Default { policy: Some(policy) },
        };
        MessagingInstrumenter { inner: self.inner.clone(), process_parent: policy, follows }
    }

    /// The process-parent policy in force.
    pub fn process_parent(&self) -> ProcessParent {
        if self.follows != Follows::No {
            return self.resolved().process_parent();
        }
        match self.process_parent {
            // Already never parents on the creation context.
            ProcessParent::NewRoot => ProcessParent::NewRoot,
            _ if self.inner.trust_boundary => ProcessParent::Link,
            policy => policy,
        }
    }

    /// Writes `cx` into a message carrier through this instrumenter's propagator, skipping empty
    /// values.
    pub fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        if self.follows != Follows::No {
            return self.resolved().inject_context(cx, injector);
        }
        self.inner.propagator.inject(cx, injector);
    }

    /// The carrier keys this instrumenter's propagator reads and writes (e.g. `traceparent`,
    /// `tracestate`, `baggage` for W3C), for brokers where a consumer must ask for them by name.
    pub fn propagation_fields(&self) -> Vec<String> {
        if self.follows != Follows::No {
            return self.resolved().propagation_fields();
        }
        self.inner.propagator.fields()
    }

    /// Reads a message carrier into a fresh [`Context`] through this instrumenter's propagator,
    /// validating `traceparent`, `tracestate` and `baggage` strictly (see
    /// [`crate::propagation::StrictExtractor`]). Invalid or missing fields give a context without
    /// a span; never the ambient one. At a trust boundary
    /// ([`MessagingInstrumenterBuilder::with_trust_boundary`]) incoming baggage is not read.
    pub fn extract_context(&self, extractor: &dyn Extractor) -> Context {
        if self.follows != Follows::No {
            return self.resolved().extract_context(extractor);
        }
        self.inner.propagator.extract(extractor, !self.inner.trust_boundary)
    }

    /// Reads a received message's context once, for both its receive span's link
    /// ([`DeliveredContext::link`]) and its process span
    /// ([`OperationBuilder::with_delivered_context`]), as [`extract_context`](Self::extract_context)
    /// does.
    ///
    /// Plumbing of the broker crates (hidden, like [`crate::__private`]).
    #[doc(hidden)]
    pub fn extract_delivered(&self, extractor: &dyn Extractor) -> DeliveredContext {
        let resolved = self.resolved();
        let cx = resolved.inner.propagator.extract(extractor, !resolved.inner.trust_boundary);
        DeliveredContext { cx, by: Arc::downgrade(&resolved.inner) }
    }
}

/// Most bytes of message-supplied values (baggage names and values, trace state) of a received
/// message's context a broker crate keeps until the message is processed
/// ([`DeliveredContext::keepable`]): 1 024.
pub const MAX_KEPT_CONTEXT_BYTES: usize = 1_024;

/// A received message's context as an instrumenter read it
/// ([`MessagingInstrumenter::extract_delivered`]), valid for that instrumenter's process spans
/// only: another propagator or trust boundary would read the same headers differently. It refers
/// to the instrumenter's configuration weakly: kept by a broker crate until the message is
/// processed, it must not keep the providers alive (an application that drops its tracer provider
/// to flush it would lose spans); and a weak reference keeps the allocation, so no new
/// configuration can take its address and pass for it.
///
/// Plumbing of the broker crates (hidden, like [`crate::__private`]).
#[doc(hidden)]
#[derive(Clone)]
pub struct DeliveredContext {
    cx: Context,
    by: std::sync::Weak<Inner>,
}

impl fmt::Debug for DeliveredContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliveredContext").field("span_context", self.cx.span().span_context()).finish()
    }
}

impl DeliveredContext {
    /// The link a receive span makes to this message's creation context, with `attributes`;
    /// `None` when the message carries no valid one.
    pub fn link(&self, attributes: Vec<KeyValue>) -> Option<Link> {
        let span = self.cx.span();
        let sc = span.span_context();
        sc.is_valid().then(|| Link::new(sc.clone(), attributes, 0))
    }

    /// This reading, if it is small enough to keep until its message is processed: its baggage's
    /// names and values and its trace state (counted at the
    /// [`MAX_TRACESTATE_LEN`](crate::__private::MAX_TRACESTATE_LEN) a strict reading allows) within
    /// [`MAX_KEPT_CONTEXT_BYTES`](crate::__private::MAX_KEPT_CONTEXT_BYTES). A broker crate keeps
    /// only such readings, so what it keeps per message stays small; a larger one is read again
    /// from the message.
    pub fn keepable(self) -> Option<Self> {
        use opentelemetry::baggage::BaggageExt as _;
        let baggage: usize =
            self.cx.baggage().iter().map(|(k, (v, _))| k.as_str().len() + v.as_str().len()).sum();
        let trace_state = if self.cx.has_active_span() { crate::__private::MAX_TRACESTATE_LEN } else { 0 };
        (baggage + trace_state <= MAX_KEPT_CONTEXT_BYTES).then_some(self)
    }

    /// Whether `instrumenter` is the one that read this (its propagator, its trust boundary): only
    /// its spans may use the reading; another reads the message itself.
    pub fn is_read_by(&self, instrumenter: &MessagingInstrumenter) -> bool {
        self.for_instrumenter(&instrumenter.resolved()).is_some()
    }

    /// The context, when `instrumenter` (resolved) is the one that read it.
    pub(super) fn for_instrumenter(&self, instrumenter: &MessagingInstrumenter) -> Option<&Context> {
        std::ptr::eq(self.by.as_ptr(), Arc::as_ptr(&instrumenter.inner)).then_some(&self.cx)
    }
}
