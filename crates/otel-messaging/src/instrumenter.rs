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
    propagation::{Extracted, ProcessParent, Propagator, process_parent},
    semconv,
};

/// Name of the instrumentation scope: `otel-messaging`.
pub const SCOPE_NAME: &str = "otel-messaging";

/// The instrumentation scope of every span and metric of this project: name [`SCOPE_NAME`], this
/// crate's version, the semconv v1.44 schema URL. Broker crates use it for metrics of their own
/// (e.g. the Kafka client statistics).
pub fn instrumentation_scope() -> InstrumentationScope {
    scope()
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder(SCOPE_NAME)
        .with_version(env!("CARGO_PKG_VERSION"))
        .with_schema_url(semconv::SCHEMA_URL)
        .build()
}

/// Starts spans on one concrete tracer behind one trait object.
///
/// `BoxedTracer` boxes every span and `Context::with_span` boxes it again; through this trait the
/// concrete span (the SDK's `Span`) is boxed once, by `Context::with_span` (issue 11: one
/// allocation less per span).
trait SpanStarter: Send + Sync {
    /// Starts the span `builder` describes as a child of `parent`: `parent` with the span active.
    /// Only when the span records, `late` is asked for the attributes that matter to no sampler,
    /// which are set on the span before anyone else sees it.
    fn start(
        &self,
        builder: SpanBuilder,
        parent: &Context,
        late: &mut dyn FnMut(&mut Vec<KeyValue>),
    ) -> Context;
}

impl<T> SpanStarter for T
where
    T: Tracer + Send + Sync,
    T::Span: Send + Sync + 'static,
{
    fn start(
        &self,
        builder: SpanBuilder,
        parent: &Context,
        late: &mut dyn FnMut(&mut Vec<KeyValue>),
    ) -> Context {
        use opentelemetry::trace::Span as _;
        let mut span = self.build_with_context(builder, parent);
        if span.is_recording() {
            late::with_scratch(|scratch| {
                late(scratch);
                for kv in scratch.drain(..) {
                    span.set_attribute(kv);
                }
            });
        }
        parent.with_span(span)
    }
}

/// The global tracer provider's tracer, read when used rather than when the instrumenter is built
/// (issue "Correct by default", point 2): while the global provider is still the no-op
/// opentelemetry-rust starts with, every span start asks the global again, so an instrumenter
/// built — or a first traced call made — before `global::set_tracer_provider` exports to that
/// provider once it is installed. The first tracer that starts a real span is kept (one atomic
/// load per span from then on); a provider replaced after that is not seen.
struct GlobalTracer {
    resolved: std::sync::OnceLock<opentelemetry::global::BoxedTracer>,
}

impl GlobalTracer {
    fn new() -> Self {
        GlobalTracer { resolved: std::sync::OnceLock::new() }
    }
}

impl SpanStarter for GlobalTracer {
    fn start(
        &self,
        builder: SpanBuilder,
        parent: &Context,
        late: &mut dyn FnMut(&mut Vec<KeyValue>),
    ) -> Context {
        if let Some(tracer) = self.resolved.get() {
            return SpanStarter::start(tracer, builder, parent, late);
        }
        let tracer = opentelemetry::global::tracer_with_scope(scope());
        let cx = SpanStarter::start(&tracer, builder, parent, late);
        // The no-op tracer makes no span of its own: its span context is invalid, or the
        // parent's. Any real tracer (even one that samples the span out) gives a new span id.
        let started = cx.span().span_context().clone();
        let parent_id = parent.span().span_context().span_id();
        if started.is_valid() && started.span_id() != parent_id {
            let _ = self.resolved.set(tracer);
        }
        cx
    }
}

/// A per-thread vector the late attributes of a recording span pass through on their way to the
/// span, so that they cost no allocation of their own.
mod late {
    use std::cell::Cell;

    use opentelemetry::KeyValue;

    thread_local! {
        static SCRATCH: Cell<Vec<KeyValue>> = const { Cell::new(Vec::new()) };
    }

    /// Runs `f` with this thread's scratch vector (a fresh one while it is in use, or when the
    /// thread is exiting); `f` must leave it empty.
    pub(super) fn with_scratch(f: impl FnOnce(&mut Vec<KeyValue>)) {
        let mut scratch = SCRATCH.try_with(Cell::take).unwrap_or_default();
        f(&mut scratch);
        scratch.clear();
        let _ = SCRATCH.try_with(|cell| cell.set(scratch));
    }
}

struct Inner {
    tracer: Box<dyn SpanStarter>,
    instruments: Option<InstrumentSource>,
    propagator: Propagator,
    trust_boundary: bool,
    captured_headers: Vec<(String, Key)>,
    body_size: bool,
    error_description: bool,
    enricher: Option<Arc<dyn SpanEnricher>>,
    /// Destinations whose operations record nothing ([`MessagingInstrumenterBuilder::with_skipped_destinations`]).
    skip: Option<SkipDestination>,
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
/// use opentelemetry::Context;
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
/// let operation = instrumenter.start_send(&Send("orders"), &Context::current(), &headers);
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
    /// copy of it, such as each broker crate's `*Instrumentation::new()` / `global()` — runs
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

    /// The fields of `extractor` that carry the message's creation context (the propagator's
    /// fields but `baggage`, which links never read), copied: what a broker crate keeps from a
    /// receive for a settle made later without the message (SQS `DeleteMessage` by receipt
    /// handle, Redis `XACK` by entry id) to link to. Empty when the message carries none.
    pub fn creation_context_fields(&self, extractor: &dyn Extractor) -> Vec<(String, String)> {
        self.propagation_fields()
            .into_iter()
            .filter(|f| f != crate::propagation::BAGGAGE)
            .filter_map(|f| extractor.get(&f).map(|v| v.to_owned()).map(|v| (f, v)))
            .collect()
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

    /// Starts an operation whose parent is `parent`, with no links.
    ///
    /// Use it for settle operations and anything without a message carrier at hand.
    pub fn start(&self, view: &dyn MessagingAttributes, parent: &Context) -> Operation {
        if self.follows != Follows::No {
            return self.resolved().start(view, parent);
        }
        self.start_span(SpanRequest::new(view, parent))
    }

    /// Like [`start`](Self::start), with the span's start back-dated to `started_at`: for
    /// operations whose view is only complete once the broker answered (a receive that failed, a
    /// poll whose destination is the returned message's topic), so the span and the duration
    /// metric still cover the whole call (semconv: operations are timed from their start).
    pub fn start_at(
        &self,
        view: &dyn MessagingAttributes,
        parent: &Context,
        started_at: SystemTime,
    ) -> Operation {
        if self.follows != Follows::No {
            return self.resolved().start_at(view, parent, started_at);
        }
        self.start_span(SpanRequest { started_at: Some(started_at), ..SpanRequest::new(view, parent) })
    }

    /// Starts a send (or create) operation for one outgoing message.
    ///
    /// `message` reads the headers the message already has: if they hold a valid creation context
    /// (a user-provided one), it is **not** overwritten — [`Operation::inject`] does nothing,
    /// the span links to that context and, being no longer the creation context, is a `CLIENT`
    /// send span (semconv v1.44 "Trace structure" → "Producer spans").
    /// Allow-listed headers are captured from `message` as `messaging.header.<name>`.
    pub fn start_send(
        &self,
        view: &dyn MessagingAttributes,
        parent: &Context,
        message: &dyn Extractor,
    ) -> Operation {
        if self.follows != Follows::No {
            return self.resolved().start_send(view, parent, message);
        }
        let existing = Extracted::new(self.inner.propagator.extract(message, false));
        let mut links = Vec::new();
        let own_context = !existing.has_span;
        if existing.has_span {
            links.push(Link::with_context(existing.cx.span().span_context().clone()));
        }
        // A re-publish (crate::retry) links the failed attempt and the original creation context.
        let lineage = crate::retry::lineage(message, None).map(|(lineage, attempt)| {
            links.extend(lineage);
            attempt
        });
        self.start_span(SpanRequest {
            links,
            message: Some(message),
            own_context,
            extra: lineage,
            ..SpanRequest::new(view, parent)
        })
    }

    /// Starts the process operation of one delivered message, inside the current context
    /// ([`crate::current_context`]: the current `tracing` span's with feature `tracing`) as the
    /// ambient context. See [`start_process_in`](Self::start_process_in).
    pub fn start_process(&self, view: &dyn MessagingAttributes, message: &dyn Extractor) -> Operation {
        if self.follows != Follows::No {
            return self.resolved().start_process(view, message);
        }
        self.start_process_in(view, message, &crate::current_context())
    }

    /// Starts the process operation of one delivered message.
    ///
    /// The creation context is read from `message` (strict W3C validation; invalid input means
    /// "no context", and the span is then a child of `ambient` or a new root). Parent and links
    /// follow [`process_parent`](Self::process_parent); the creation context is always linked.
    /// Incoming baggage is visible in [`Operation::context`] unless the instrumenter is a trust
    /// boundary. Queue wait is recorded when the view knows the send time.
    pub fn start_process_in(
        &self,
        view: &dyn MessagingAttributes,
        message: &dyn Extractor,
        ambient: &Context,
    ) -> Operation {
        if self.follows != Follows::No {
            return self.resolved().start_process_in(view, message, ambient);
        }
        let extracted = Extracted::new(self.extract_context(message));
        let (parent, mut links) =
            process_parent(self.process_parent(), &extracted, ambient, !self.inner.trust_boundary);
        let creation = extracted.has_span.then(|| extracted.cx.span().span_context().span_id());
        // Retry lineage comes from the producer: at a trust boundary it is not read at all (its
        // links and attempt counter would be the sender's choice; reliability review M6).
        let lineage = if self.inner.trust_boundary {
            None
        } else {
            crate::retry::lineage(message, creation).map(|(lineage, attempt)| {
                links.extend(lineage);
                attempt
            })
        };
        // One clock read, when queue wait or the metrics need it (otherwise the SDK reads the
        // clock, and only for a span that records).
        let sent = view.sent_time();
        let now = (sent.is_some() || self.inner.instruments.is_some()).then(SystemTime::now);
        let queue_wait = sent.zip(now).and_then(|(sent, now)| queue_wait(sent, now));
        self.start_span(SpanRequest {
            links,
            message: Some(message),
            started_at: now,
            queue_wait,
            bridge: true,
            extra: lineage,
            ..SpanRequest::new(view, &parent)
        })
    }

    /// Starts a batch operation (receive/poll, batch process, batch settle) that links every
    /// message's creation context, with per-message link attributes (e.g. `messaging.message.id`,
    /// partition, offset).
    ///
    /// The parent is `parent` (never a creation context). `started_at` back-dates the span start,
    /// for receive spans built after the poll returned (links must exist at span start so
    /// samplers see them); `None` means now. Messages without a valid creation context get no
    /// link.
    pub fn start_batch<'m, I>(
        &self,
        view: &dyn MessagingAttributes,
        parent: &Context,
        started_at: Option<SystemTime>,
        messages: I,
    ) -> Operation
    where
        I: IntoIterator<Item = (&'m dyn Extractor, Vec<KeyValue>)>,
    {
        if self.follows != Follows::No {
            return self.resolved().start_batch(view, parent, started_at, messages);
        }
        let links = messages
            .into_iter()
            .filter_map(|(extractor, attributes)| {
                let sc = self.inner.propagator.extract_span_context(extractor)?;
                Some(Link::new(sc, attributes, 0))
            })
            .collect();
        self.start_span(SpanRequest { links, started_at, ..SpanRequest::new(view, parent) })
    }

    /// The one place a span starts: name, kind, the sampling-relevant attributes, links, the
    /// enricher's attributes, and the metric attributes.
    fn start_span(&self, request: SpanRequest<'_>) -> Operation {
        let SpanRequest { view, parent, links, message, started_at, own_context, queue_wait, bridge, extra } =
            request;
        #[cfg(not(feature = "tracing"))]
        let _ = bridge;
        let operation_type = view.operation_type();
        let creation_context =
            own_context && matches!(operation_type, OperationType::Send | OperationType::Create);
        if let Some(skip) = &self.inner.skip
            && view.destination_name().is_some_and(|destination| skip(destination))
        {
            // No span, no metric: the context flows through (a send injects `parent`).
            return Operation {
                cx: parent.clone(),
                start: None,
                operation_type,
                creation_context,
                messages: None,
                failed_messages: 0,
                counts_as_delivery: false,
                queue_wait: None,
                metric_set: None,
                instrumenter: self.inner.clone(),
                ended: true,
                cancel_on_drop: false,
                #[cfg(feature = "tracing")]
                tracing_span: None,
            };
        }
        let kind = operation_type.span_kind(own_context && view.send_is_creation_context());
        // Our own clock read only when the duration metric needs it; otherwise the SDK reads the
        // clock for a span that records and not at all for one that does not.
        let start = started_at.or_else(|| self.inner.instruments.is_some().then(SystemTime::now));

        let mut attributes = Vec::with_capacity(16);
        attributes.push(KeyValue::new(semconv::MESSAGING_SYSTEM, view.system()));
        attributes.push(KeyValue::new(semconv::MESSAGING_OPERATION_NAME, view.operation_name()));
        attributes.push(KeyValue::new(semconv::MESSAGING_OPERATION_TYPE, operation_type.as_str()));

        let hidden = view.destination_temporary() || view.destination_anonymous();
        let destination = view.destination_name();
        // The span's string values are shared per thread (`intern`), not allocated per span.
        let interned =
            |key: &'static str, value: &str| KeyValue::new(key, Value::String(intern::value(value)));
        if let Some(name) = destination {
            // A temporary or anonymous destination is unique per request or client (reply
            // inboxes, server-named queues): never interned, so it cannot use up the process's
            // interning budget (reliability review M4).
            attributes.push(if hidden {
                KeyValue::new(
                    semconv::MESSAGING_DESTINATION_NAME,
                    Value::String(opentelemetry::StringValue::from(Arc::<str>::from(name))),
                )
            } else {
                interned(semconv::MESSAGING_DESTINATION_NAME, name)
            });
        }
        let template = view.destination_template();
        if let Some(template) = template {
            attributes.push(interned(semconv::MESSAGING_DESTINATION_TEMPLATE, template));
        }
        let partition = view.destination_partition_id();
        if let Some(partition) = &partition {
            attributes.push(KeyValue::new(semconv::MESSAGING_DESTINATION_PARTITION_ID, partition.clone()));
        }
        let group = view.consumer_group_name();
        if let Some(group) = group {
            attributes.push(interned(semconv::MESSAGING_CONSUMER_GROUP_NAME, group));
        }
        let server = view.server();
        if let Some((address, port)) = server {
            attributes.push(interned(semconv::SERVER_ADDRESS, address));
            if let Some(port) = port {
                attributes.push(KeyValue::new(semconv::SERVER_PORT, i64::from(port)));
            }
        }
        // The metric attribute set, resolved once per thread and kind of operation.
        let metric_set = self.inner.instruments.as_ref().map(|instruments| {
            let now = start.unwrap_or_else(SystemTime::now);
            instruments.resolve(
                &MetricKey {
                    system: view.system(),
                    operation_name: view.operation_name(),
                    operation_type,
                    destination: destination.filter(|_| !hidden),
                    template,
                    partition: partition.as_ref().map(StringValue::as_str),
                    group,
                    server,
                },
                now,
            )
        });
        if let Some(enricher) = &self.inner.enricher {
            enricher.on_start(&SpanStart { view, message }, &mut attributes);
        }
        // Attributes no sampler looks at (semconv v1.44 lists the sampling-relevant ones, all
        // above): only a span that records gets them, so an unsampled one builds none of them.
        let batch = view.batch_message_count();
        let body_size = self.inner.body_size;
        let captured_headers = &self.inner.captured_headers;
        let mut extra = extra;
        let mut late = |attributes: &mut Vec<KeyValue>| {
            if view.destination_temporary() {
                attributes.push(KeyValue::new(semconv::MESSAGING_DESTINATION_TEMPORARY, true));
            }
            if view.destination_anonymous() {
                attributes.push(KeyValue::new(semconv::MESSAGING_DESTINATION_ANONYMOUS, true));
            }
            if let Some(count) = batch {
                attributes.push(KeyValue::new(
                    semconv::MESSAGING_BATCH_MESSAGE_COUNT,
                    i64::try_from(count).unwrap_or(i64::MAX),
                ));
            }
            if let Some(id) = view.message_id() {
                attributes.push(KeyValue::new(semconv::MESSAGING_MESSAGE_ID, id.to_owned()));
            }
            if let Some(id) = view.conversation_id() {
                attributes.push(KeyValue::new(semconv::MESSAGING_MESSAGE_CONVERSATION_ID, id.to_owned()));
            }
            if let Some(id) = view.client_id().filter(|_| operation_type != OperationType::Create) {
                attributes.push(interned(semconv::MESSAGING_CLIENT_ID, id));
            }
            let single_with_body = batch.is_none() && operation_type != OperationType::Settle;
            if let Some(size) = view.body_size().filter(|_| body_size && single_with_body) {
                let size = i64::try_from(size).unwrap_or(i64::MAX);
                attributes.push(KeyValue::new(semconv::MESSAGING_MESSAGE_BODY_SIZE, size));
            }
            if let Some(wait) = queue_wait {
                attributes.push(KeyValue::new(semconv::OTEL_MESSAGING_QUEUE_WAIT_DURATION, wait));
            }
            if let Some(message) = message {
                for (header, key) in captured_headers {
                    if let Some(values) = message.get_all(header) {
                        // At most 16 values of at most MAX_COPIED_VALUE_LEN bytes each: the
                        // producer chooses how many and how large (reliability review M7).
                        let values: Vec<StringValue> = values
                            .into_iter()
                            .take(MAX_CAPTURED_VALUES)
                            .map(|v| StringValue::from(crate::bounded_value(v)))
                            .collect();
                        attributes.push(KeyValue::new(key.clone(), Value::Array(Array::String(values))));
                    }
                }
            }
            view.system_attributes(attributes);
            attributes.extend(extra.take());
        };

        let name = span_name(view.operation_name(), destination, template, hidden);
        // With feature `tracing`, a process operation is backed by a `tracing` span when possible.
        #[cfg(feature = "tracing")]
        let tracing_span = bridge
            .then(|| {
                crate::tracing_bridge::operation_span(&name, &kind, &attributes, &mut late, &links, parent)
            })
            .flatten();
        let plain = |late: &mut dyn FnMut(&mut Vec<KeyValue>)| {
            let mut builder = SpanBuilder::from_name(name).with_kind(kind).with_attributes(attributes);
            if let Some(start) = start {
                builder = builder.with_start_time(start);
            }
            if !links.is_empty() {
                builder = builder.with_links(links);
            }
            self.inner.tracer.start(builder, parent, late)
        };
        #[cfg(feature = "tracing")]
        let cx = match &tracing_span {
            Some(span) => tracing_opentelemetry::OpenTelemetrySpanExt::context(span),
            None => plain(&mut late),
        };
        #[cfg(not(feature = "tracing"))]
        let cx = plain(&mut late);
        Operation {
            cx,
            start,
            operation_type,
            creation_context,
            messages: batch,
            failed_messages: 0,
            counts_as_delivery: view.counts_as_delivery(),
            queue_wait,
            metric_set,
            instrumenter: self.inner.clone(),
            ended: false,
            // A send, create or settle dropped before it is ended never saw its outcome (a future
            // dropped by `select!` or a timeout, a delivery report that never came): `cancelled`,
            // not a success (reliability review M5).
            cancel_on_drop: matches!(
                operation_type,
                OperationType::Send | OperationType::Create | OperationType::Settle
            ),
            #[cfg(feature = "tracing")]
            tracing_span,
        }
    }
}

/// Everything one span start needs; built by the public `start*` methods.
struct SpanRequest<'a> {
    view: &'a dyn MessagingAttributes,
    parent: &'a Context,
    /// Creation contexts (and, under some policies, the ambient span) to link, at span start.
    links: Vec<Link>,
    /// The message's carrier, for header capture and the enricher.
    message: Option<&'a dyn Extractor>,
    /// Back-dated start; `None` means now.
    started_at: Option<SystemTime>,
    /// Whether a send span's own context becomes the creation context (no user-provided one).
    own_context: bool,
    /// Queue wait of a process operation, seconds.
    queue_wait: Option<f64>,
    /// With feature `tracing`: back the span by a `tracing` span when possible (process spans).
    bridge: bool,
    /// One more attribute (the retry attempt of a re-published message).
    extra: Option<KeyValue>,
}

impl<'a> SpanRequest<'a> {
    fn new(view: &'a dyn MessagingAttributes, parent: &'a Context) -> Self {
        SpanRequest {
            view,
            parent,
            links: Vec::new(),
            message: None,
            started_at: None,
            own_context: true,
            queue_wait: None,
            bridge: false,
            extra: None,
        }
    }
}

/// What a [`SpanEnricher`] sees of an operation at span start.
#[derive(Clone, Copy)]
pub struct SpanStart<'a> {
    view: &'a dyn MessagingAttributes,
    message: Option<&'a dyn Extractor>,
}

impl fmt::Debug for SpanStart<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpanStart")
            .field("operation_type", &self.view.operation_type())
            .field("destination_name", &self.view.destination_name())
            .finish_non_exhaustive()
    }
}

impl<'a> SpanStart<'a> {
    /// What the broker crate knows about the operation: system, operation, destination, message
    /// id, consumer group, … ([`MessagingAttributes`]).
    pub fn view(&self) -> &'a dyn MessagingAttributes {
        self.view
    }

    /// `messaging.operation.type` of the operation.
    pub fn operation_type(&self) -> OperationType {
        self.view.operation_type()
    }

    /// `messaging.destination.name`, if known.
    pub fn destination_name(&self) -> Option<&'a str> {
        self.view.destination_name()
    }

    /// The value of message header `name` (case-insensitive; the last value of a repeated
    /// header) on single-message send and process operations; `None` on batch, receive and
    /// settle operations, which have no one message.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.message?.get(name)
    }
}

/// A hook that adds the application's own attributes (tenant, job type) to messaging spans, in
/// the manner of tower-http's `MakeSpan` / `OnResponse`.
///
/// [`on_start`](Self::on_start) runs before the span starts, so what it adds is visible to the
/// sampler; [`on_end`](Self::on_end) runs when the operation ends, on recording spans only. Both
/// default to adding nothing. `()` is the no-op enricher (the default); a closure
/// `Fn(&SpanStart<'_>, &mut Vec<KeyValue>)` is an `on_start` enricher. Attributes it adds are the
/// application's: use its own namespace (e.g. `app.tenant`), not `messaging.*`, which semconv owns.
/// Metric attributes are never touched, so high-cardinality values are safe here.
///
/// # Examples
///
/// ```
/// use opentelemetry::KeyValue;
/// use otel_messaging::{MessagingInstrumenter, SpanStart};
///
/// let instrumenter = MessagingInstrumenter::builder()
///     .with_enricher(|start: &SpanStart<'_>, attributes: &mut Vec<KeyValue>| {
///         if let Some(tenant) = start.header("x-tenant") {
///             attributes.push(KeyValue::new("app.tenant", tenant.to_owned()));
///         }
///     })
///     .build();
/// # drop(instrumenter);
/// ```
pub trait SpanEnricher: Send + Sync + 'static {
    /// Appends attributes for the span about to start. Defaults to nothing.
    fn on_start(&self, start: &SpanStart<'_>, attributes: &mut Vec<KeyValue>) {
        let _ = (start, attributes);
    }

    /// Appends attributes when the operation ends (`error_type` is `Some` iff it failed).
    /// Called for recording (sampled) spans only, and not while a panic unwinds (a panic of its
    /// own would then abort the process). Defaults to nothing.
    fn on_end(
        &self,
        operation_type: OperationType,
        error_type: Option<&str>,
        attributes: &mut Vec<KeyValue>,
    ) {
        let _ = (operation_type, error_type, attributes);
    }
}

impl SpanEnricher for () {}

impl<F> SpanEnricher for F
where
    F: Fn(&SpanStart<'_>, &mut Vec<KeyValue>) + Send + Sync + 'static,
{
    fn on_start(&self, start: &SpanStart<'_>, attributes: &mut Vec<KeyValue>) {
        self(start, attributes);
    }
}

/// The span name: `{messaging.operation.name} {destination}`, where the destination is the
/// template if any, else the destination name unless it is temporary or anonymous; without one the
/// name is the operation name alone (semconv v1.44 `messaging-spans.md`, "Span name").
pub fn span_name(
    operation_name: &'static str,
    destination: Option<&str>,
    template: Option<&str>,
    hidden: bool,
) -> Cow<'static, str> {
    match template.or(if hidden { None } else { destination }) {
        Some(destination) => intern::name(operation_name, destination),
        None => Cow::Borrowed(operation_name),
    }
}

/// Configures a [`MessagingInstrumenter`]. Every setting has a default, written on its method.
#[derive(Default)]
pub struct MessagingInstrumenterBuilder {
    tracer: Option<Box<dyn SpanStarter>>,
    meter: Option<opentelemetry::metrics::Meter>,
    metrics: Option<bool>,
    propagator: Propagator,
    process_parent: ProcessParent,
    trust_boundary: bool,
    captured_headers: Vec<String>,
    body_size: bool,
    no_error_description: bool,
    enricher: Option<Arc<dyn SpanEnricher>>,
    skip: Option<SkipDestination>,
}

/// A predicate on destination names: `true` skips the operation (no span, no metric).
type SkipDestination = Arc<dyn Fn(&str) -> bool + Send + Sync>;

impl fmt::Debug for MessagingInstrumenterBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MessagingInstrumenterBuilder")
            .field("explicit_tracer", &self.tracer.is_some())
            .field("explicit_meter", &self.meter.is_some())
            .field("propagator", &self.propagator)
            .field("process_parent", &self.process_parent)
            .field("trust_boundary", &self.trust_boundary)
            .field("captured_headers", &self.captured_headers)
            .field("body_size", &self.body_size)
            .field("error_description", &!self.no_error_description)
            .field("enricher", &self.enricher.is_some())
            .field("skipped_destinations", &self.skip.is_some())
            .finish()
    }
}

impl MessagingInstrumenterBuilder {
    /// Skips the operations whose destination `skip` returns `true` for (health-check topics,
    /// `_INBOX.*` replies, …): no span and no metric, while the context still flows — a skipped
    /// send injects the current context (a message that carries one keeps it), a skipped
    /// process runs its handler in the context the process span would have had as parent (the
    /// creation context under the default policy). Operations without a destination are never
    /// skipped. `skip` runs once per operation: keep it cheap.
    ///
    /// Defaults to skipping nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// use otel_messaging::MessagingInstrumenter;
    /// let instrumenter = MessagingInstrumenter::builder()
    ///     .with_skipped_destinations(|destination| destination.starts_with("health."))
    ///     .build();
    /// # let _ = instrumenter;
    /// ```
    pub fn with_skipped_destinations(mut self, skip: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        self.skip = Some(Arc::new(skip));
        self
    }

    /// Uses `provider` for spans (scope `otel-messaging`, this crate's version, the v1.44 schema
    /// URL).
    ///
    /// Defaults to the global tracer provider, read when spans start: an instrumenter built before
    /// `global::set_tracer_provider` uses the installed provider from then on (the first one that
    /// makes a real span is kept). Spans start on `provider`'s own tracer type (`SdkTracer` for the SDK's
    /// `SdkTracerProvider`), which saves an allocation per span over the global provider's
    /// `BoxedTracer`: pass the provider explicitly on a hot path (BENCHMARKS.md).
    pub fn with_tracer_provider<P>(mut self, provider: &P) -> Self
    where
        P: TracerProvider + ?Sized,
        P::Tracer: Send + Sync + 'static,
        <P::Tracer as Tracer>::Span: Send + Sync + 'static,
    {
        self.tracer = Some(Box::new(provider.tracer_with_scope(scope())));
        self
    }

    /// Uses `provider` for the messaging metrics.
    ///
    /// Defaults to the global meter provider, read when the instrumenter is built and again at
    /// most once a second while operations run (a provider installed later is used from a
    /// second after its install on).
    pub fn with_meter_provider<P>(mut self, provider: &P) -> Self
    where
        P: MeterProvider + ?Sized,
    {
        self.meter = Some(provider.meter_with_scope(scope()));
        self
    }

    /// Turns the metrics on or off. Off saves building metric attributes on every operation.
    ///
    /// Defaults to on.
    pub fn with_metrics(mut self, enabled: bool) -> Self {
        self.metrics = Some(enabled);
        self
    }

    /// Uses `propagator` for inject and extract instead of the global one.
    ///
    /// Defaults to the global text-map propagator, read at each call; while that is still
    /// opentelemetry-rust's default **no-op** (nothing installed), the instrumenter propagates W3C
    /// Trace Context + Baggage itself, or what `OTEL_PROPAGATORS` selects (`tracecontext`,
    /// `baggage`, `none`; read once; other names are reported with the `tracing` feature and
    /// ignored), as every other OpenTelemetry SDK does by default. A global propagator installed
    /// later wins from the next call on.
    ///
    /// For W3C Trace Context + Baggage on a hot path, pass
    /// [`W3cPropagator`](crate::propagation::W3cPropagator):
    /// the instrumenter recognises it and decodes the fields it has already validated, instead of
    /// letting the SDK propagators format and parse them again (≈ 40 % of the per-message cost,
    /// BENCHMARKS.md). The wire format is the same.
    pub fn with_propagator<P>(mut self, propagator: P) -> Self
    where
        P: TextMapPropagator + Send + Sync + 'static,
    {
        self.propagator = Propagator::explicit(propagator);
        self
    }

    /// Sets how single-message process spans relate to the creation context.
    ///
    /// Defaults to [`ProcessParent::Spec`]. Overridable per consumer with
    /// [`MessagingInstrumenter::with_process_parent`].
    pub fn with_process_parent(mut self, policy: ProcessParent) -> Self {
        self.process_parent = policy;
        self
    }

    /// Marks the consumer side as a trust boundary: process spans never take a producer's
    /// context as parent (always [`ProcessParent::Link`], whatever else is set), incoming
    /// baggage is dropped, and retry lineage (`otel-retry-attempt`, the original and failed
    /// contexts) is not read.
    ///
    /// Defaults to `false`.
    pub fn with_trust_boundary(mut self, enabled: bool) -> Self {
        self.trust_boundary = enabled;
        self
    }

    /// Captures these message headers on send and process spans as `messaging.header.<name>`
    /// (string array, the values of a repeated header in order — at most 16, each cut to
    /// [`MAX_COPIED_VALUE_LEN`](crate::MAX_COPIED_VALUE_LEN) (256) bytes; `-` becomes `_` and the
    /// name is lower-cased in the key). Header values can hold personal data; list only what is
    /// safe.
    ///
    /// Defaults to none.
    pub fn with_captured_headers<I, S>(mut self, headers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.captured_headers = headers.into_iter().map(Into::into).collect();
        self
    }

    /// Records `messaging.message.body.size` (bytes, Opt-In in semconv) on single-message spans.
    ///
    /// Defaults to `false`.
    pub fn with_body_size(mut self, enabled: bool) -> Self {
        self.body_size = enabled;
        self
    }

    /// Whether a failed operation's span status carries a description: the error's `Display`,
    /// cut to at most [`MAX_ERROR_DESCRIPTION_LEN`] (256) bytes. With `false` the status is
    /// `Error` with an empty description and only `error.type` says what failed — for handlers
    /// whose errors may quote message contents (serde errors quote input values; redis-rs parse
    /// errors quote whole replies).
    ///
    /// Defaults to `true`.
    pub fn with_error_description(mut self, enabled: bool) -> Self {
        self.no_error_description = !enabled;
        self
    }

    /// Adds the application's attributes to every span through `enricher` ([`SpanEnricher`]; a
    /// closure `Fn(&SpanStart<'_>, &mut Vec<KeyValue>)` will do).
    ///
    /// Defaults to `()`, which adds nothing (and costs nothing).
    pub fn with_enricher(mut self, enricher: impl SpanEnricher) -> Self {
        self.enricher = Some(Arc::new(enricher));
        self
    }

    /// Builds the instrumenter, creating its instruments once.
    pub fn build(self) -> MessagingInstrumenter {
        let tracer = self.tracer.unwrap_or_else(|| Box::new(GlobalTracer::new()));
        let instruments = if self.metrics.unwrap_or(true) {
            Some(match self.meter {
                Some(meter) => InstrumentSource::Fixed(Instruments::new(&meter)),
                None => InstrumentSource::global(scope()),
            })
        } else {
            None
        };
        let captured_headers = self
            .captured_headers
            .into_iter()
            .map(|header| {
                let key = format!(
                    "{}{}",
                    semconv::MESSAGING_HEADER_PREFIX,
                    header.to_ascii_lowercase().replace('-', "_")
                );
                (header, Key::new(key))
            })
            .collect();
        MessagingInstrumenter {
            inner: Arc::new(Inner {
                tracer,
                instruments,
                propagator: self.propagator,
                trust_boundary: self.trust_boundary,
                captured_headers,
                body_size: self.body_size,
                error_description: !self.no_error_description,
                enricher: self.enricher,
                skip: self.skip,
            }),
            process_parent: self.process_parent,
            follows: Follows::No,
        }
    }
}

/// One messaging operation in progress: its span, its timer and its metric attributes.
///
/// Returned by the `start*` methods of [`MessagingInstrumenter`]. End it with [`end`](Self::end),
/// [`end_ok`](Self::end_ok) or [`end_error`](Self::end_error); dropping it ends the span too and
/// records its duration, so a cancelled future still closes its span: a send, create or settle
/// (and a process armed by [`run`](Self::run) or [`arm_cancellation`](Self::arm_cancellation))
/// then ends with `error.type = cancelled`, any other with no status set.
#[must_use = "an Operation ends its span when dropped; keep it until the operation completes"]
pub struct Operation {
    cx: Context,
    /// The start time given to the span, when we read it (metrics on, back-dated or queue wait).
    start: Option<SystemTime>,
    operation_type: OperationType,
    creation_context: bool,
    /// `messaging.batch.message_count` of a batch operation; `None` for a single message.
    messages: Option<u64>,
    /// Of a batch that partly failed: how many of its messages failed.
    failed_messages: u64,
    counts_as_delivery: bool,
    queue_wait: Option<f64>,
    /// The metric attribute set (metrics on).
    metric_set: Option<Arc<MetricSet>>,
    instrumenter: Arc<Inner>,
    ended: bool,
    cancel_on_drop: bool,
    /// With feature `tracing`: the `tracing` span backing a process operation.
    #[cfg(feature = "tracing")]
    tracing_span: Option<tracing::Span>,
}

impl fmt::Debug for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Operation")
            .field("operation_type", &self.operation_type)
            .field("span_context", self.cx.span().span_context())
            .field("creation_context", &self.creation_context)
            .field("messages", &self.messages)
            .finish()
    }
}

impl Operation {
    /// The context holding this operation's span: the parent for spans made inside the operation
    /// (a handler's own spans), and the creation context written by [`inject`](Self::inject).
    pub fn context(&self) -> &Context {
        &self.cx
    }

    /// Whether the span is recording (sampled); late attributes are skipped when it is not.
    pub fn is_recording(&self) -> bool {
        self.cx.span().is_recording()
    }

    /// Writes this operation's context into the outgoing message as its creation context.
    ///
    /// Does nothing for operations that are not creation contexts: receive, process and settle
    /// operations, and a send whose message already carried a user-provided creation context.
    /// Empty values are never written.
    pub fn inject(&self, injector: &mut dyn Injector) {
        if self.creation_context {
            self.instrumenter.propagator.inject(&self.cx, injector);
        }
    }

    /// Whether [`inject`](Self::inject) writes anything, i.e. this operation's context is the
    /// creation context of the message.
    pub fn is_creation_context(&self) -> bool {
        self.creation_context
    }

    /// Records on the span that the creation context could not be written into the message
    /// (`otel_messaging.context.injected = false`), e.g. because the carrier was full.
    pub fn record_not_injected(&self) {
        self.set_attributes([KeyValue::new(semconv::OTEL_MESSAGING_CONTEXT_INJECTED, false)]);
    }

    /// Adds attributes known only after the operation started (offset, message id, partition
    /// chosen by the broker). Skipped when the span is not recording.
    pub fn set_attributes(&self, attributes: impl IntoIterator<Item = KeyValue>) {
        if self.ended {
            return; // a skipped destination's operation: the span in `cx` is not ours
        }
        let span = self.cx.span();
        if span.is_recording() {
            span.set_attributes(attributes);
        }
    }

    /// Ends the operation as succeeded: status unset, no `error.type`.
    pub fn end_ok(mut self) {
        self.finish(None);
    }

    /// Ends the operation as failed: span status `Error` with `description` (the error message,
    /// cut to at most [`MAX_ERROR_DESCRIPTION_LEN`] bytes on a character boundary, or empty when
    /// the instrumenter was built with `with_error_description(false)`), `error.type =
    /// error_type` on the span and on the metrics. The description is formatted only as far as
    /// it is kept, so a huge `Display` costs no more than 256 bytes.
    ///
    /// `error_type` must be of low cardinality (an error code name, a type name, or
    /// [`semconv::ERROR_TYPE_OTHER`]).
    pub fn end_error(mut self, error_type: &str, description: impl fmt::Display) {
        let description = if self.instrumenter.error_description {
            bounded_description(&description)
        } else {
            String::new()
        };
        self.finish(Some((error_type, description)));
    }

    /// Ends a batch operation of which `failed` messages failed while the others succeeded (an SQS
    /// `SendMessageBatch` or `DeleteMessageBatch` with `Failed` entries): with `failed == 0` as
    /// [`end_ok`](Self::end_ok); otherwise the span is `Error` with `error_type` (e.g. the first
    /// failed entry's code) and `description`, and `messaging.client.sent.messages` counts the
    /// successful messages without `error.type` and the failed ones with it, so the counter still
    /// says how many were attempted (semconv v1.44 `messaging-metrics.md`).
    pub fn end_batch(mut self, failed: u64, error_type: &str, description: impl fmt::Display) {
        if failed == 0 {
            return self.end_ok();
        }
        self.failed_messages = failed;
        self.end_error(error_type, description);
    }

    /// From now on, dropping this operation before it is ended records it as failed with
    /// `error.type = cancelled` (or `panic` while a panic unwinds): for operations awaiting an
    /// outcome, such as a handler or a broker acknowledgement, where a drop means the outcome was
    /// never seen. Send, create and settle operations are armed from their start;
    /// [`run`](Self::run) arms a process operation when it is called.
    pub fn arm_cancellation(&mut self) {
        self.cancel_on_drop = true;
    }

    /// Ends the operation from a native result: `Ok` → [`end_ok`](Self::end_ok); `Err(e)` →
    /// [`end_error`](Self::end_error) with `error_type(e)` and `e`'s message.
    pub fn end<T, E, S>(self, result: &Result<T, E>, error_type: impl FnOnce(&E) -> S)
    where
        E: fmt::Display,
        S: AsRef<str>,
    {
        match result {
            Ok(_) => self.end_ok(),
            Err(e) => {
                let kind = error_type(e);
                self.end_error(kind.as_ref(), e);
            }
        }
    }

    /// Runs `handler` inside this operation (its context is current whenever the future is
    /// polled, so the handler's spans nest under it) and ends the operation with the handler's
    /// result, which is returned unchanged. On `Err(e)` the `error.type` is the error's Rust type
    /// name (`std::any::type_name::<E>()`, e.g. `anyhow::Error`).
    ///
    /// A handler that panics ends the span with `error.type = panic` and the panic goes on
    /// unwinding unchanged (when the future is dropped during the unwinding, as tokio tasks and
    /// `block_on` do; behind `futures::FutureExt::catch_unwind` the future is dropped after the
    /// panic was caught, so the span records `cancelled`); a `run` future dropped before the
    /// handler completes (cancelled by `select!` or a timeout) ends it with
    /// `error.type = cancelled`.
    ///
    /// Cancellation is armed when `run` is called, so a future dropped before its first poll is
    /// `cancelled` too.
    pub fn run<F, T, E>(mut self, handler: F) -> impl Future<Output = Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: fmt::Display,
    {
        self.arm_cancellation();
        let this = self;
        async move {
            #[cfg(feature = "tracing")]
            if let Some(span) = this.tracing_span.clone() {
                use tracing::Instrument as _;
                let result = handler.instrument(span).await;
                this.end(&result, |_| std::any::type_name::<E>());
                return result;
            }
            let result = handler.with_context(this.cx.clone()).await;
            this.end(&result, |_| std::any::type_name::<E>());
            result
        }
    }

    fn finish(&mut self, error: Option<(&str, String)>) {
        if self.ended {
            return;
        }
        self.ended = true;
        let end = self.instrumenter.instruments.is_some().then(SystemTime::now);
        let mut late = Vec::new();
        // Not while a panic unwinds: a second panic in the user's enricher would abort the
        // process (reliability review L3).
        if let Some(enricher) = &self.instrumenter.enricher
            && self.cx.span().is_recording()
            && !std::thread::panicking()
        {
            enricher.on_end(self.operation_type, error.as_ref().map(|(t, _)| *t), &mut late);
        }
        #[cfg(feature = "tracing")]
        let bridged = self.tracing_span.take();
        #[cfg(not(feature = "tracing"))]
        let bridged: Option<()> = None;
        match bridged {
            #[cfg(feature = "tracing")]
            Some(span) => {
                use tracing_opentelemetry::OpenTelemetrySpanExt as _;
                for kv in late {
                    span.set_attribute(kv.key, kv.value);
                }
                if let Some((error_type, description)) = &error {
                    span.set_attribute(semconv::ERROR_TYPE, (*error_type).to_owned());
                    span.set_status(Status::error(description.clone()));
                }
                drop(span); // the last handle: tracing-opentelemetry ends the span now
            }
            _ => {
                let span = self.cx.span();
                if !late.is_empty() {
                    span.set_attributes(late);
                }
                if let Some((error_type, description)) = &error {
                    span.set_attribute(KeyValue::new(semconv::ERROR_TYPE, (*error_type).to_owned()));
                    span.set_status(Status::error(description.clone()));
                }
                match end {
                    Some(end) => span.end_with_timestamp(end),
                    None => span.end(),
                }
            }
        }
        if let (Some(set), Some(end)) = (&self.metric_set, end) {
            let start = self.start.unwrap_or(end);
            let duration = end.duration_since(start).unwrap_or(Duration::ZERO).as_secs_f64();
            // A failed receive delivered nothing (semconv: consumed.messages counts "messages
            // that were delivered to the application"); a batch that failed after some messages
            // counts those it reports.
            let messages = match (self.messages, self.operation_type, &error) {
                (Some(count), ..) => count,
                (None, OperationType::Receive, Some(_)) => 0,
                (None, ..) => 1,
            };
            set.record(Measurement {
                operation_type: self.operation_type,
                duration_secs: duration,
                messages,
                failed_messages: self.failed_messages.min(messages),
                counts_as_delivery: self.counts_as_delivery,
                queue_wait_secs: self.queue_wait,
                error_type: error.as_ref().map(|(t, _)| *t),
            });
        }
    }
}

impl Drop for Operation {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        if std::thread::panicking() {
            self.finish(Some((
                semconv::ERROR_TYPE_PANIC,
                "panicked before the operation completed".to_owned(),
            )));
        } else if self.cancel_on_drop {
            self.finish(Some((
                semconv::ERROR_TYPE_CANCELLED,
                "dropped before the operation completed".to_owned(),
            )));
        } else {
            self.finish(None);
        }
    }
}

/// Longest queue wait recorded: 30 days (seconds). A send time further back is the producer's
/// clock or a forged timestamp (one message stamped at the epoch would add 1.7 × 10⁹ s to the
/// histogram; reliability review M6), not a wait, and is not recorded.
pub const MAX_QUEUE_WAIT_SECS: f64 = 30.0 * 24.0 * 3600.0;

/// Seconds between `sent` and `now`: 0 for a send time in the future (clock skew), `None` beyond
/// [`MAX_QUEUE_WAIT_SECS`].
fn queue_wait(sent: SystemTime, now: SystemTime) -> Option<f64> {
    let wait = now.duration_since(sent).unwrap_or(Duration::ZERO).as_secs_f64();
    (wait <= MAX_QUEUE_WAIT_SECS).then_some(wait)
}

/// Most values of one captured header recorded (a repeated header's first ones): 16.
const MAX_CAPTURED_VALUES: usize = 16;

/// Most bytes of an error description recorded as span status description: 256.
pub const MAX_ERROR_DESCRIPTION_LEN: usize = 256;

/// `description` formatted into at most [`MAX_ERROR_DESCRIPTION_LEN`] bytes, cut on a character
/// boundary with `…` appended when cut; formatting stops as soon as the limit is reached.
fn bounded_description(description: &dyn fmt::Display) -> String {
    struct Bounded(String, bool);
    impl fmt::Write for Bounded {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            let room = MAX_ERROR_DESCRIPTION_LEN - self.0.len();
            if s.len() <= room {
                self.0.push_str(s);
                return Ok(());
            }
            let mut cut = room;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            self.0.push_str(&s[..cut]);
            self.1 = true;
            Err(fmt::Error) // stop formatting: nothing more is kept
        }
    }
    let mut out = Bounded(String::new(), false);
    let _ = fmt::write(&mut out, format_args!("{description}"));
    if out.1 {
        out.0.push('…');
    }
    out.0
}

/// A message handed to the application together with its running process span (`process
/// {destination}`), as the broker crates' stream adapters and `start_process()` give it.
///
/// Run the handler with [`process`](Self::process): it receives the message as its argument,
/// runs inside the span, and its result ends the span. [`message`](Self::message) reads the
/// message and [`context`](Self::context) is the span's context for work of your own; dropping it
/// (or [`into_inner`](Self::into_inner)) ends the span. It does not dereference to the message, so
/// that a second `process_traced` on it — a second process span for one message — does not
/// compile.
#[derive(Debug)]
#[must_use = "the process span runs until this is processed or dropped: call .process(handler)"]
pub struct TracedMessage<M> {
    message: M,
    operation: Operation,
}

impl<M> TracedMessage<M> {
    /// Pairs `message` with the process `operation` started for it.
    pub fn new(message: M, operation: Operation) -> Self {
        TracedMessage { message, operation }
    }

    /// The context of the process span.
    pub fn context(&self) -> &Context {
        self.operation.context()
    }

    /// The message.
    pub fn message(&self) -> &M {
        &self.message
    }

    /// Runs `handler` inside the process span, ends the span with its result, and returns the
    /// message and the result unchanged.
    ///
    /// # Errors
    ///
    /// The handler's error, unchanged (span status `Error`, `error.type` = its type name).
    pub async fn process<T, E>(self, handler: impl AsyncFnOnce(&M) -> Result<T, E>) -> (M, Result<T, E>)
    where
        E: fmt::Display,
    {
        let TracedMessage { message, operation } = self;
        let result = operation.run(handler(&message)).await;
        (message, result)
    }

    /// Ends the process span and returns the message.
    pub fn into_inner(self) -> M {
        self.message
    }
}

/// Per-thread caches of the attribute values and span names that repeat from one message to the
/// next (destination, server address, consumer group, client id; `{operation} {destination}`), so
/// a span costs no allocation for them once its destination has been seen (BENCHMARKS.md, lever 1).
///
/// Each thread keeps its last [`RECENT`] distinct strings and names; a miss looks the string up in
/// the process-wide set (one lock), so every distinct string is leaked once, whichever threads use
/// it and however often they miss. Values and names are `&'static str` (no reference count to touch
/// per span): up to [`LEAK_BYTES`] bytes are leaked in the whole process (low-cardinality
/// destinations fit many times over); past that, values are shared `Arc<str>`s and names are
/// allocated per span as before, so high-cardinality destinations cannot grow memory.
mod intern {
    use std::{
        borrow::Cow,
        cell::RefCell,
        collections::HashSet,
        sync::{
            Arc, LazyLock, Mutex,
            atomic::{AtomicUsize, Ordering},
        },
    };

    use opentelemetry::StringValue;

    const RECENT: usize = 16;
    const LEAK_BYTES: usize = 256 * 1024;
    static LEAKED: AtomicUsize = AtomicUsize::new(0);
    /// Every leaked string, found again by any thread whose cache misses it, and kept reachable
    /// so leak checkers (LeakSanitizer in the fuzz smoke) do not report them.
    static SHARED: LazyLock<Mutex<HashSet<&'static str>>> = LazyLock::new(Mutex::default);

    thread_local! {
        static VALUES: RefCell<Vec<(&'static str, StringValue)>> = const { RefCell::new(Vec::new()) };
        static NAMES: RefCell<Vec<(&'static str, &'static str, &'static str)>> = const { RefCell::new(Vec::new()) };
    }

    fn remember<T>(cache: &mut Vec<T>, entry: T) {
        if cache.len() >= RECENT {
            cache.remove(0);
        }
        cache.push(entry);
    }

    /// The process's one `&'static` copy of `s`: found in [`SHARED`], or leaked while the
    /// process-wide budget lasts (`None` past it).
    fn shared(s: &str) -> Option<&'static str> {
        let mut set = SHARED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(found) = set.get(s) {
            return Some(found);
        }
        let len = s.len();
        if LEAKED.fetch_add(len, Ordering::Relaxed) + len > LEAK_BYTES {
            LEAKED.fetch_sub(len, Ordering::Relaxed);
            return None;
        }
        let leaked: &'static str = Box::leak(Box::from(s));
        set.insert(leaked);
        Some(leaked)
    }

    pub(super) fn value(s: &str) -> StringValue {
        VALUES
            .try_with(|cache| {
                let mut cache = cache.borrow_mut();
                if let Some((_, v)) = cache.iter().find(|(k, _)| **k == *s) {
                    return v.clone();
                }
                let Some(leaked) = shared(s) else {
                    return StringValue::from(Arc::<str>::from(s));
                };
                let v = StringValue::from(leaked);
                remember(&mut cache, (leaked, v.clone()));
                v
            })
            .unwrap_or_else(|_| StringValue::from(Arc::<str>::from(s)))
    }

    pub(super) fn name(operation: &'static str, destination: &str) -> Cow<'static, str> {
        let found = NAMES
            .try_with(|cache| {
                let cache = cache.borrow();
                cache
                    .iter()
                    .find(|(op, dest, _)| std::ptr::eq(*op, operation) && **dest == *destination)
                    .map(|(_, _, name)| *name)
            })
            .ok()
            .flatten();
        if let Some(name) = found {
            return Cow::Borrowed(name);
        }
        let mut name = String::with_capacity(operation.len() + 1 + destination.len());
        name.push_str(operation);
        name.push(' ');
        name.push_str(destination);
        let Some(leaked) = shared(&name) else {
            return Cow::Owned(name);
        };
        // The destination is the name's tail: no second copy for the cache key.
        let dest = &leaked[operation.len() + 1..];
        let _ = NAMES.try_with(|cache| remember(&mut cache.borrow_mut(), (operation, dest, leaked)));
        Cow::Borrowed(leaked)
    }

    #[cfg(test)]
    #[allow(clippy::expect_used)]
    mod tests {
        use super::*;

        fn address(v: &StringValue) -> *const u8 {
            v.as_str().as_ptr()
        }

        #[test]
        fn each_distinct_string_is_leaked_once_whatever_the_threads_and_misses() {
            // More strings than a thread keeps, in turn: every use after the first misses.
            let strings: Vec<String> = (0..RECENT * 2).map(|i| format!("intern-test-topic-{i}")).collect();
            let first: Vec<*const u8> = strings.iter().map(|s| address(&value(s))).collect();
            for _ in 0..3 {
                for (s, a) in strings.iter().zip(&first) {
                    assert_eq!(address(&value(s)), *a, "{s} was copied again");
                }
            }
            let other = std::thread::spawn({
                let strings = strings.clone();
                move || strings.iter().map(|s| address(&value(s)) as usize).collect::<Vec<_>>()
            })
            .join()
            .expect("the other thread interned");
            assert_eq!(
                other,
                first.iter().map(|a| *a as usize).collect::<Vec<_>>(),
                "another thread copied them"
            );
            let names: Vec<usize> = (0..2)
                .flat_map(|_| strings.iter().map(|s| name("send", s).as_ptr() as usize).collect::<Vec<_>>())
                .collect();
            assert_eq!(names[..strings.len()], names[strings.len()..], "span names were copied again");
            assert_eq!(name("send", &strings[0]), format!("send {}", strings[0]));
        }
    }
}
