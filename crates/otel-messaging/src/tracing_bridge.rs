//! The bridge to the `tracing` crate (feature `tracing`), through tracing-opentelemetry 0.34.
//!
//! Why a module of its own: it is the only place that knows tracing-opentelemetry. Two things:
//!
//! * [`current_context`]: the parent the `_traced` sugar uses — the OpenTelemetry context of the
//!   current `tracing::Span` when there is one (so `#[instrument]`-ed handlers just work, whether or
//!   not the layer activates contexts), else [`Context::current`].
//! * process spans as `tracing` spans: the core creates a `tracing::Span` named with `otel.name`, of
//!   `otel.kind = consumer`, sets its parent and links and every attribute **before** it is entered
//!   (tracing-opentelemetry rejects a parent set after the span started), and the handler runs
//!   instrumented with it — so `info_span!`/`#[instrument]` spans inside the handler nest under the
//!   process span across `.await` points and `tokio::spawn` (with `.in_current_span()`), and no
//!   `!Send` guard is held. When `set_parent` fails (no OpenTelemetry layer, a `reload` layer, a
//!   filtered span) the operation falls back to a plain OpenTelemetry span; the failure is logged
//!   once at WARN (target `otel_messaging`), except for filtered spans, which are expected.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::{
    Context, KeyValue,
    trace::{Link, SpanKind, TraceContextExt},
};
use tracing_opentelemetry::{OpenTelemetrySpanExt, SetParentError};

/// The context the `_traced` sugar takes as parent: the current `tracing::Span`'s OpenTelemetry
/// context when it has a valid span, otherwise [`Context::current`] (feature `tracing`; without the
/// feature this is always [`Context::current`]).
pub(crate) fn current_context() -> Context {
    let span = tracing::Span::current();
    if !span.is_disabled() {
        let cx = span.context();
        if cx.span().span_context().is_valid() {
            return cx;
        }
    }
    Context::current()
}

fn kind_str(kind: &SpanKind) -> &'static str {
    match kind {
        SpanKind::Client => "client",
        SpanKind::Server => "server",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
        SpanKind::Internal => "internal",
    }
}

/// Creates the `tracing` span of an operation, fully parented, linked and attributed before it is
/// entered: `attributes`, then what `late` adds (a `tracing` span takes every attribute at once).
/// `None` when the bridge cannot be used (see the module docs); the caller then creates a plain
/// OpenTelemetry span.
pub(crate) fn operation_span(
    name: &str,
    kind: &SpanKind,
    attributes: &[KeyValue],
    late: &mut dyn FnMut(&mut Vec<KeyValue>),
    links: &[Link],
    parent: &Context,
) -> Option<tracing::Span> {
    let span = tracing::info_span!(target: "otel_messaging", "messaging", otel.name = name, otel.kind = kind_str(kind));
    if span.is_disabled() {
        return None;
    }
    if let Err(error) = span.set_parent(parent.clone()) {
        static WARNED: AtomicBool = AtomicBool::new(false);
        if !matches!(error, SetParentError::SpanDisabled) && !WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "otel_messaging",
                %error,
                "cannot parent the process span through tracing-opentelemetry; using plain OpenTelemetry spans (logged once)"
            );
        }
        return None;
    }
    for link in links {
        span.add_link_with_attributes(link.span_context.clone(), link.attributes.clone());
    }
    for kv in attributes {
        span.set_attribute(kv.key.clone(), kv.value.clone());
    }
    let mut more = Vec::new();
    late(&mut more);
    for kv in more {
        span.set_attribute(kv.key, kv.value);
    }
    Some(span)
}
