//! What propagates when an instrumenter has no propagator of its own and the global one is
//! opentelemetry-rust's no-op: the `OTEL_PROPAGATORS` fallback, the no-op check, and the one-time
//! report of the propagator in force. Its own file: [`super::Propagator`] asks it once per call,
//! the rest of the propagation module never needs it.

use opentelemetry::propagation::{TextMapCompositePropagator, TextMapPropagator};

/// What propagates when the instrumenter has no propagator of its own and the global one is
/// the no-op opentelemetry-rust installs by default (every other SDK defaults to
/// `tracecontext,baggage`): `OTEL_PROPAGATORS`, read once, as the OpenTelemetry SDK
/// environment-variable specification says — unset or empty means `tracecontext,baggage`,
/// `none` means nothing.
#[derive(Clone, Copy)]
pub(crate) enum Fallback {
    /// W3C Trace Context, and W3C Baggage when `baggage`.
    W3c { baggage: bool },
    /// Nothing is injected or extracted.
    Nothing,
    /// W3C (if named) and other propagators (`b3`, `b3multi`, `xray`, with the features that
    /// provide them), in a composite: each injects; each extracts in turn, a later one's span
    /// context replacing an earlier one's.
    Composite(&'static (dyn TextMapPropagator + Send + Sync)),
}

impl std::fmt::Debug for Fallback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fallback::W3c { baggage } => f.debug_struct("W3c").field("baggage", baggage).finish(),
            Fallback::Nothing => f.write_str("Nothing"),
            Fallback::Composite(p) => f.debug_tuple("Composite").field(p).finish(),
        }
    }
}

/// A propagator `OTEL_PROPAGATORS` names besides W3C's, provided by a feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Other {
    /// `b3`: B3 single header (opentelemetry-zipkin, feature `b3`).
    B3,
    /// `b3multi`: B3 multiple `X-B3-*` headers (opentelemetry-zipkin, feature `b3`).
    B3Multi,
    /// `xray`: AWS X-Ray `X-Amzn-Trace-Id` (opentelemetry-aws, feature `xray`).
    Xray,
}

/// What `OTEL_PROPAGATORS` selects: W3C Trace Context, W3C Baggage, the others in order; all
/// empty for `none`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Selection {
    pub(crate) trace: bool,
    pub(crate) baggage: bool,
    pub(crate) others: Vec<Other>,
}

/// Reads an `OTEL_PROPAGATORS` value: the selection, and the names it cannot honour (reported
/// once and ignored). `tracecontext` and `baggage` are W3C; `none` turns propagation off; `b3`
/// and `b3multi` need feature `b3`, `xray` feature `xray`; `jaeger` (its propagator crate stops
/// at opentelemetry 0.32) and any other name are not provided (install such a propagator with
/// `global::set_text_map_propagator`, which always wins).
pub(crate) fn parse_otel_propagators(value: Option<&str>) -> (Selection, Vec<String>) {
    let names: Vec<String> = value
        .unwrap_or_default()
        .split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return (Selection { trace: true, baggage: true, others: Vec::new() }, Vec::new());
    }
    if names.iter().any(|n| n == "none") {
        return (Selection::default(), Vec::new());
    }
    let (mut selection, mut ignored) = (Selection::default(), Vec::new());
    for name in names {
        let other = match name.as_str() {
            "tracecontext" => {
                selection.trace = true;
                continue;
            }
            "baggage" => {
                selection.baggage = true;
                continue;
            }
            "b3" if cfg!(feature = "b3") => Other::B3,
            "b3multi" if cfg!(feature = "b3") => Other::B3Multi,
            "xray" if cfg!(feature = "xray") => Other::Xray,
            _ => {
                ignored.push(name);
                continue;
            }
        };
        if !selection.others.contains(&other) {
            selection.others.push(other);
        }
    }
    (selection, ignored)
}

impl Selection {
    /// The fallback this selection makes (built once per process).
    fn into_fallback(self) -> Fallback {
        // Baggage alone still carries the trace context (W3cPropagator writes both).
        let w3c = (self.trace || self.baggage).then_some(self.baggage);
        if self.others.is_empty() {
            return match w3c {
                Some(baggage) => Fallback::W3c { baggage },
                None => Fallback::Nothing,
            };
        }
        let mut propagators: Vec<Box<dyn TextMapPropagator + Send + Sync>> = Vec::new();
        if let Some(baggage) = w3c {
            propagators.push(Box::new(super::W3cPart { baggage }));
        }
        propagators.extend(self.others.into_iter().filter_map(other_propagator));
        Fallback::Composite(Box::leak(Box::new(TextMapCompositePropagator::new(propagators))))
    }
}

/// The propagator `other` names, from the crate of its feature. opentelemetry-zipkin 0.33 marks
/// itself deprecated (for its exporter: Zipkin takes OTLP now); its B3 propagator is still the one
/// opentelemetry-rust provides, and B3 headers are still what Zipkin-instrumented peers send.
#[allow(clippy::unnecessary_wraps)] // `None` without the features
#[cfg_attr(feature = "b3", allow(deprecated))]
fn other_propagator(other: Other) -> Option<Box<dyn TextMapPropagator + Send + Sync>> {
    match other {
        #[cfg(feature = "b3")]
        Other::B3 => Some(Box::new(opentelemetry_zipkin::Propagator::with_encoding(
            opentelemetry_zipkin::B3Encoding::SingleHeader,
        ))),
        #[cfg(feature = "b3")]
        Other::B3Multi => Some(Box::new(opentelemetry_zipkin::Propagator::with_encoding(
            opentelemetry_zipkin::B3Encoding::MultipleHeader,
        ))),
        #[cfg(feature = "xray")]
        Other::Xray => Some(Box::new(opentelemetry_aws::trace::XrayPropagator::new())),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// The fallback of this process (see [`Fallback`]), decided and reported once.
pub(super) fn fallback() -> Fallback {
    static FALLBACK: std::sync::OnceLock<Fallback> = std::sync::OnceLock::new();
    *FALLBACK.get_or_init(|| {
        let value = std::env::var("OTEL_PROPAGATORS").ok();
        let (selection, ignored) = parse_otel_propagators(value.as_deref());
        if !ignored.is_empty() {
            diagnostics::warn(&format!(
                "OTEL_PROPAGATORS names {ignored:?}, which this build of otel-messaging does not \
                 provide; ignored (`b3` and `b3multi` need its feature `b3`, `xray` its feature `xray`; \
                 or install a propagator with opentelemetry::global::set_text_map_propagator)"
            ));
        }
        selection.into_fallback()
    })
}

/// Whether the global text-map propagator is a no-op (writes and reads no field): the default of
/// opentelemetry-rust until `global::set_text_map_propagator` is called.
/// Once a real global propagator has been seen, the check is one atomic load: a user who installs
/// a propagator does not go back to the no-op (and if one did, the no-op would be used, as asked).
pub(super) fn global_is_noop() -> bool {
    static SEEN_REAL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if SEEN_REAL.load(std::sync::atomic::Ordering::Relaxed) {
        return false;
    }
    let noop = opentelemetry::global::get_text_map_propagator(|p| p.fields().next().is_none());
    if !noop {
        SEEN_REAL.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    noop
}

/// Reports which propagator is in force and why, once per change (the user may install a global
/// propagator after the first traced call).
pub(super) mod diagnostics {
    use std::sync::atomic::{AtomicU8, Ordering};

    /// 0: nothing reported yet; 1: the global propagator; 2: the fallback.
    static REPORTED: AtomicU8 = AtomicU8::new(0);

    pub(in crate::propagation) fn in_force(fallback: Option<super::Fallback>) {
        let state = if fallback.is_some() { 2 } else { 1 };
        if REPORTED.load(Ordering::Relaxed) == state || REPORTED.swap(state, Ordering::Relaxed) == state {
            return;
        }
        match fallback {
            Some(super::Fallback::W3c { baggage }) => info(&format!(
                "no text-map propagator installed (the global one is opentelemetry-rust's no-op): \
                 propagating W3C Trace Context{} as OTEL_PROPAGATORS (or its default) says",
                if baggage { " and Baggage" } else { "" }
            )),
            Some(super::Fallback::Nothing) => info(
                "no text-map propagator installed and OTEL_PROPAGATORS selects none: nothing is propagated",
            ),
            Some(super::Fallback::Composite(p)) => info(&format!(
                "no text-map propagator installed: propagating what OTEL_PROPAGATORS selects ({p:?})"
            )),
            None => info("propagating with the global text-map propagator"),
        }
    }

    pub(super) fn info(message: &str) {
        #[cfg(feature = "tracing")]
        tracing::info!(target: "otel_messaging", "{message}");
        #[cfg(not(feature = "tracing"))]
        let _ = message;
    }

    pub(super) fn warn(message: &str) {
        #[cfg(feature = "tracing")]
        tracing::warn!(target: "otel_messaging", "{message}");
        #[cfg(not(feature = "tracing"))]
        let _ = message;
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fallback_of(value: &str) -> Fallback {
        parse_otel_propagators(Some(value)).0.into_fallback()
    }

    /// Either W3C name alone selects the W3C codec (Baggage alone still carries the trace
    /// context); neither, nothing.
    #[test]
    fn either_w3c_name_selects_the_codec() {
        assert!(matches!(fallback_of("tracecontext"), Fallback::W3c { baggage: false }));
        assert!(matches!(fallback_of("baggage"), Fallback::W3c { baggage: true }));
        assert!(matches!(fallback_of("tracecontext,baggage"), Fallback::W3c { baggage: true }));
        assert!(matches!(fallback_of("none"), Fallback::Nothing));
    }

    /// Each other name brings its own propagator into the composite, after W3C's.
    #[cfg(all(feature = "b3", feature = "xray"))]
    #[test]
    fn other_names_bring_their_propagators() {
        // The composite's field order is not specified: compared sorted, lowercase.
        let fields = |value: &str| match fallback_of(value) {
            Fallback::Composite(p) => {
                let mut fields = p.fields().map(str::to_ascii_lowercase).collect::<Vec<_>>();
                fields.sort();
                fields
            }
            other => panic!("{value}: {other:?}"),
        };
        assert_eq!(fields("b3"), ["b3"]);
        assert!(fields("b3multi").contains(&"x-b3-traceid".to_owned()));
        assert_eq!(fields("xray"), ["x-amzn-trace-id"]);
        assert_eq!(fields("tracecontext,b3"), ["b3", "traceparent", "tracestate"]);
    }
}

/// The one-time report of the propagator in force: the word a user gets when nothing is
/// installed (issue "Correct by default"), once per change, not per call.
#[cfg(all(test, feature = "tracing"))]
#[allow(clippy::unwrap_used)]
mod diagnostics_tests {
    use std::sync::{Arc, Mutex};

    use tracing::{Event, Level, Metadata, Subscriber, field::Visit, span};

    /// Keeps every event's level and message.
    #[derive(Clone, Default)]
    struct Events(Arc<Mutex<Vec<(Level, String)>>>);

    struct Message(String);
    impl Visit for Message {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            if field.name() == "message" {
                self.0 = format!("{value:?}");
            }
        }
    }

    impl Subscriber for Events {
        fn enabled(&self, _: &Metadata<'_>) -> bool {
            true
        }
        fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
            span::Id::from_u64(1)
        }
        fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
        fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut message = Message(String::new());
            event.record(&mut message);
            self.0.lock().unwrap().push((*event.metadata().level(), message.0));
        }
        fn enter(&self, _: &span::Id) {}
        fn exit(&self, _: &span::Id) {}
    }

    #[test]
    fn the_propagator_in_force_is_reported_once_per_change() {
        use super::{Fallback, diagnostics};
        let events = Events::default();
        tracing::subscriber::with_default(events.clone(), || {
            diagnostics::in_force(Some(Fallback::W3c { baggage: true }));
            diagnostics::in_force(Some(Fallback::W3c { baggage: true }));
            diagnostics::in_force(None);
            diagnostics::in_force(None);
            diagnostics::warn("careful");
        });
        let events = events.0.lock().unwrap().clone();
        let levels: Vec<Level> = events.iter().map(|(l, _)| *l).collect();
        assert_eq!(levels, [Level::INFO, Level::INFO, Level::WARN], "{events:?}");
        assert!(events[0].1.contains("no text-map propagator installed"), "{events:?}");
        assert!(events[0].1.contains("W3C Trace Context and Baggage"), "{events:?}");
        assert!(events[1].1.contains("the global text-map propagator"), "{events:?}");
        assert_eq!(events[2].1, "careful");
    }
}
