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
pub(crate) mod bounded;
mod fallback;
mod recognize;
pub(crate) mod strict;
mod w3c;
pub use strict::StrictExtractor;
pub(crate) use strict::is_valid_traceparent;
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
