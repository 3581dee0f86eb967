//! Propagation: strict W3C validation on extract, no empty or duplicate values on inject, and the
//! parent/link policy of process spans.
//!
//! The propagator itself is the global [`TextMapPropagator`] (or one given to the builder), so
//! W3C Trace Context + Baggage, B3, Jaeger and X-Ray all work. Two things are added around it:
//!
//! * [`StrictExtractor`] hides a `traceparent` that is not valid per W3C Trace Context
//!   (`spec/20-http_request_header_format.md`) — the SDK's `TraceContextPropagator` accepts short
//!   ids, a leading `+`, a 3-character version and more (reference: semconv digest §5.4) — and,
//!   with it, the `tracestate` that must then be ignored. Repeated `tracestate` and `baggage`
//!   values are combined with `,` as W3C asks.
//! * [`NonEmptyInjector`] drops empty values (the SDK always emits `tracestate`, even empty;
//!   W3C says to avoid sending an empty one).
//!
//! Invalid input is "no context": extraction never fails and never returns the ambient context
//! as if it came from the producer.

use std::borrow::Cow;

mod baggage;
mod fallback;
mod recognize;
mod strict;
mod w3c;
pub use strict::{
    MAX_BAGGAGE_LEN, MAX_BAGGAGE_MEMBERS, MAX_TRACESTATE_LEN, MAX_TRACESTATE_MEMBERS, StrictExtractor,
    cap_baggage, is_valid_traceparent, sanitize_tracestate,
};
pub use w3c::W3cPropagator;

use fallback::{Fallback, diagnostics, fallback, global_is_noop};
use opentelemetry::{
    Context,
    baggage::BaggageExt,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{Link, TraceContextExt},
};

/// Key of the W3C `traceparent` field.
pub const TRACEPARENT: &str = "traceparent";
/// Key of the W3C `tracestate` field.
pub const TRACESTATE: &str = "tracestate";
/// Key of the W3C `baggage` field.
pub const BAGGAGE: &str = "baggage";

/// How the process span of a single message relates to the message's creation context.
///
/// Source: semconv v1.44 `messaging-spans.md`, "Trace structure" → "Consumer spans": the
/// creation context MAY be the parent of a single-message process span; it is NOT RECOMMENDED by
/// default when processing happens inside another (ambient) span, and then the ambient context
/// SHOULD be added as a link. The creation context is always linked.
///
/// Batch process and receive spans never use a creation context as parent; they link every
/// message's creation context whatever the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ProcessParent {
    /// The spec's default (this is the default): without an ambient span the creation context
    /// is the parent **and** a link; inside an ambient span the ambient span is the parent and
    /// the creation context a link.
    #[default]
    Spec,
    /// Always continue the producer's trace: the creation context is the parent and a link; an
    /// ambient span, if any, becomes a second link.
    CreationContext,
    /// Never parent on the creation context: the process span is a new root (or a child of the
    /// ambient span, if any) with a link to the creation context. Use it for long delays, or at
    /// trust boundaries together with [`crate::MessagingInstrumenterBuilder::with_trust_boundary`].
    Link,
    /// Every process span starts a new trace, whatever span is current: a link to the creation
    /// context, and the current span, if any, as a second link. The fix for a consumer loop that
    /// runs inside a long-lived span (`#[instrument] async fn worker_loop()`, or `main` wrapped
    /// in a span), where [`Spec`](Self::Spec) and [`Link`](Self::Link) would put every message
    /// into the loop's one endless trace.
    NewRoot,
}

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
/// use otel_messaging::propagation::fit_fields;
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
/// use otel_messaging::propagation::CollectedFields;
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

/// An [`Injector`] wrapper that never writes an empty value.
///
/// The SDK's W3C propagator always writes `tracestate`, even when it is empty; W3C Trace Context
/// says to avoid sending an empty `tracestate`, and some carriers (SQS message attributes) reject
/// empty values.
pub struct NonEmptyInjector<'a>(pub &'a mut dyn Injector);

impl std::fmt::Debug for NonEmptyInjector<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonEmptyInjector")
    }
}

impl Injector for NonEmptyInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if !value.is_empty() {
            self.0.set(key, value);
        }
    }

    fn reserve(&mut self, additional: usize) {
        self.0.reserve(additional);
    }
}

/// The propagator an instrumenter uses: an explicit one, or the global one at each call.
#[derive(Clone, Default)]
pub(crate) enum Propagator {
    #[default]
    Global,
    Explicit(std::sync::Arc<dyn TextMapPropagator + Send + Sync>),
    /// [`W3cPropagator`] (`baggage: true`), or the SDK's own W3C propagators ([`recognize`]),
    /// recognised when given to the builder: read straight from the [`StrictExtractor`]'s
    /// validated fields.
    W3c {
        baggage: bool,
    },
}

impl std::fmt::Debug for Propagator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Propagator::Global => f.write_str("Global"),
            Propagator::Explicit(_) => f.write_str("Explicit"),
            Propagator::W3c { baggage: true } => f.write_str("W3c"),
            Propagator::W3c { baggage: false } => f.write_str("W3c (trace context only)"),
        }
    }
}

/// The propagator in force for one call.
enum Effective<'a> {
    /// The project's own W3C Trace Context (+ Baggage when `baggage`).
    W3c {
        baggage: bool,
    },
    /// The global propagator the user installed.
    Global,
    Explicit(&'a (dyn TextMapPropagator + Send + Sync)),
    Nothing,
}

/// W3C Trace Context (+ Baggage when `baggage`) through the project's codec, as one propagator
/// of the `OTEL_PROPAGATORS` composite (beside B3 or X-Ray).
#[derive(Debug)]
struct W3cPart {
    baggage: bool,
}

impl TextMapPropagator for W3cPart {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        if self.baggage {
            W3cPropagator::inject(cx, injector);
        } else {
            W3cPropagator::inject(cx, &mut WithoutBaggage(injector));
        }
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        W3cPropagator::extract_strict(cx, &StrictExtractor::build(extractor, self.baggage))
    }

    fn fields(&self) -> opentelemetry::propagation::text_map_propagator::FieldIter<'_> {
        let fields = w3c::fields();
        opentelemetry::propagation::text_map_propagator::FieldIter::new(if self.baggage {
            fields
        } else {
            &fields[..2]
        })
    }
}

/// An [`Injector`] that drops the `baggage` field (a fallback without W3C Baggage).
struct WithoutBaggage<'a>(&'a mut dyn Injector);

impl Injector for WithoutBaggage<'_> {
    fn set(&mut self, key: &str, value: String) {
        if key != BAGGAGE {
            self.0.set(key, value);
        }
    }
}

impl Propagator {
    /// `propagator` as the instrumenter keeps it: [`W3cPropagator`] is recognised (its type, not
    /// its fields), every other one is kept behind an `Arc`.
    pub(crate) fn explicit<P>(propagator: P) -> Self
    where
        P: TextMapPropagator + Send + Sync + 'static,
    {
        if (&propagator as &dyn std::any::Any).is::<W3cPropagator>() {
            return Propagator::W3c { baggage: true };
        }
        if let Some(baggage) = recognize::sdk_w3c(&propagator) {
            return Propagator::W3c { baggage };
        }
        Propagator::Explicit(std::sync::Arc::new(propagator))
    }

    /// The propagator in force now: an explicit one; else the global one unless it is the no-op,
    /// else the [`Fallback`].
    fn effective(&self) -> Effective<'_> {
        match self {
            Propagator::Explicit(p) => Effective::Explicit(p.as_ref()),
            Propagator::W3c { baggage } => Effective::W3c { baggage: *baggage },
            Propagator::Global if !global_is_noop() => {
                diagnostics::in_force(None);
                match recognize::global_sdk_w3c() {
                    Some(baggage) => Effective::W3c { baggage },
                    None => Effective::Global,
                }
            }
            Propagator::Global => {
                let fallback = fallback();
                diagnostics::in_force(Some(fallback));
                match fallback {
                    Fallback::W3c { baggage } => Effective::W3c { baggage },
                    Fallback::Nothing => Effective::Nothing,
                    Fallback::Composite(p) => Effective::Explicit(p),
                }
            }
        }
    }

    /// The fields (carrier keys) the propagator reads and writes.
    pub(crate) fn fields(&self) -> Vec<String> {
        match self.effective() {
            Effective::W3c { baggage } => {
                w3c::fields().iter().filter(|f| baggage || f.as_str() != BAGGAGE).cloned().collect()
            }
            Effective::Global => {
                opentelemetry::global::get_text_map_propagator(|p| p.fields().map(str::to_owned).collect())
            }
            Effective::Explicit(p) => p.fields().map(str::to_owned).collect(),
            Effective::Nothing => Vec::new(),
        }
    }

    /// Writes `cx` into `injector`, skipping empty values.
    pub(crate) fn inject(&self, cx: &Context, injector: &mut dyn Injector) {
        match self.effective() {
            // Writes no empty value by itself.
            Effective::W3c { baggage: true } => W3cPropagator::inject(cx, injector),
            Effective::W3c { baggage: false } => W3cPropagator::inject(cx, &mut WithoutBaggage(injector)),
            Effective::Global => opentelemetry::global::get_text_map_propagator(|p| {
                p.inject_context(cx, &mut NonEmptyInjector(injector));
            }),
            Effective::Explicit(p) => p.inject_context(cx, &mut NonEmptyInjector(injector)),
            Effective::Nothing => {}
        }
    }

    /// Extracts a context from `extractor` into an empty base context, through [`StrictExtractor`].
    ///
    /// When the carrier holds nothing the propagator could read (no valid `traceparent`, no
    /// `baggage`, none of its other fields) the propagator is not called at all: a message
    /// without context costs a few key look-ups and allocates nothing. Each W3C field is read
    /// from the carrier once.
    ///
    /// With `baggage == false` the carrier's `baggage` is never read (trust boundaries, links).
    pub(crate) fn extract(&self, extractor: &dyn Extractor, baggage: bool) -> Context {
        let through = |p: &dyn TextMapPropagator| {
            let strict = StrictExtractor::build(extractor, baggage);
            let w3c = |field: &str| field == TRACEPARENT || field == TRACESTATE || field == BAGGAGE;
            if strict.is_empty_for_w3c()
                && p.fields().all(|field| w3c(field) || extractor.get(field).is_none())
            {
                return Context::new();
            }
            p.extract_with_context(&Context::new(), &strict)
        };
        match self.effective() {
            Effective::W3c { baggage: with_baggage } => {
                let strict = StrictExtractor::build(extractor, baggage && with_baggage);
                if strict.is_empty_for_w3c() {
                    Context::new()
                } else {
                    W3cPropagator::extract_strict(&Context::new(), &strict)
                }
            }
            Effective::Global => opentelemetry::global::get_text_map_propagator(through),
            Effective::Explicit(p) => through(p),
            Effective::Nothing => Context::new(),
        }
    }

    /// The remote span context of `extractor`'s creation context (never its baggage), if valid:
    /// what a batch span links to. With [`W3cPropagator`] decoded straight from the validated
    /// `traceparent`, without building a `Context`.
    pub(crate) fn extract_span_context(
        &self,
        extractor: &dyn Extractor,
    ) -> Option<opentelemetry::trace::SpanContext> {
        if let Effective::W3c { .. } = self.effective() {
            return W3cPropagator::span_context_strict(&StrictExtractor::build(extractor, false));
        }
        let cx = self.extract(extractor, false);
        let sc = cx.span().span_context().clone();
        sc.is_valid().then_some(sc)
    }
}

/// The result of reading a message's propagation fields.
#[derive(Debug, Clone)]
pub(crate) struct Extracted {
    /// The full extracted context (span context and baggage).
    pub(crate) cx: Context,
    /// Whether it holds a valid remote span context (the creation context).
    pub(crate) has_span: bool,
}

impl Extracted {
    pub(crate) fn new(cx: Context) -> Self {
        let has_span = cx.span().span_context().is_valid();
        Extracted { cx, has_span }
    }
}

/// The parent context and links of a single-message process span.
pub(crate) fn process_parent(
    policy: ProcessParent,
    extracted: &Extracted,
    ambient: &Context,
    keep_baggage: bool,
) -> (Context, Vec<Link>) {
    let mut links = Vec::new();
    let parent = process_parent_into(policy, extracted, ambient, keep_baggage, Some(&mut links));
    (parent, links)
}

/// The parent context of a single-message process span, pushing its links onto `links` when
/// given (the unsampled fast path needs the parent alone).
pub(crate) fn process_parent_into(
    policy: ProcessParent,
    extracted: &Extracted,
    ambient: &Context,
    keep_baggage: bool,
    mut links: Option<&mut Vec<Link>>,
) -> Context {
    let ambient_span = ambient.has_active_span() && ambient.span().span_context().is_valid();
    let mut link = |cx: &Context| {
        if let Some(links) = links.as_deref_mut() {
            links.push(Link::with_context(cx.span().span_context().clone()));
        }
    };
    if extracted.has_span {
        link(&extracted.cx);
    }
    let use_creation = extracted.has_span
        && match policy {
            ProcessParent::Spec => !ambient_span,
            ProcessParent::CreationContext => true,
            ProcessParent::Link | ProcessParent::NewRoot => false,
        };
    if policy == ProcessParent::NewRoot {
        if ambient_span {
            link(ambient);
        }
        // A root: no span; the ambient baggage, else (unless dropped) the incoming baggage.
        let baggage = if ambient.baggage().is_empty() && keep_baggage {
            extracted.cx.baggage()
        } else {
            ambient.baggage()
        };
        Context::new().with_baggage(baggage.iter().map(|(k, (v, m))| {
            opentelemetry::baggage::KeyValueMetadata::new(k.clone(), v.clone(), m.clone())
        }))
    } else if use_creation {
        if ambient_span {
            link(ambient);
        }
        if keep_baggage { extracted.cx.clone() } else { extracted.cx.with_cleared_baggage() }
    } else {
        // The ambient context (a root when it holds no span) keeps its own values; incoming
        // baggage is added only when the ambient context has none of its own.
        let incoming = extracted.cx.baggage();
        if keep_baggage && !incoming.is_empty() && ambient.baggage().is_empty() {
            ambient.with_baggage(incoming.iter().map(|(k, (v, m))| {
                opentelemetry::baggage::KeyValueMetadata::new(k.clone(), v.clone(), m.clone())
            }))
        } else {
            ambient.clone()
        }
    }
}

#[cfg(test)]
mod tests;
