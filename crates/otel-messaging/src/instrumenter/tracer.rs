//! The tracer behind an instrumenter: one concrete tracer behind one trait object
//! ([`SpanStarter`]), the global tracer provider read when used ([`GlobalTracer`]), and the
//! per-thread scratch vector late attributes pass through.

use super::*;

/// Starts spans on one concrete tracer behind one trait object.
///
/// `BoxedTracer` boxes every span and `Context::with_span` boxes it again; through this trait the
/// concrete span (the SDK's `Span`) is boxed once, by `Context::with_span` (issue 11: one
/// allocation less per span).
pub(super) trait SpanStarter: Send + Sync {
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
pub(super) struct GlobalTracer {
    resolved: std::sync::OnceLock<opentelemetry::global::BoxedTracer>,
}

impl GlobalTracer {
    pub(super) fn new() -> Self {
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
pub(super) mod late {
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
