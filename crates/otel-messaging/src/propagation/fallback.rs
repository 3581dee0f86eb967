//! What propagates when an instrumenter has no propagator of its own and the global one is
//! opentelemetry-rust's no-op: the `OTEL_PROPAGATORS` fallback, the no-op check, and the one-time
//! report of the propagator in force. Its own file: [`super::Propagator`] asks it once per call,
//! the rest of the propagation module never needs it.

/// What propagates when the instrumenter has no propagator of its own and the global one is
/// the no-op opentelemetry-rust installs by default (every other SDK defaults to
/// `tracecontext,baggage`): `OTEL_PROPAGATORS`, read once, as the OpenTelemetry SDK
/// environment-variable specification says — unset or empty means `tracecontext,baggage`,
/// `none` means nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fallback {
    /// W3C Trace Context, and W3C Baggage when `baggage`.
    W3c { baggage: bool },
    /// Nothing is injected or extracted.
    Nothing,
}

/// Reads an `OTEL_PROPAGATORS` value: the fallback, and the names it cannot honour (reported once
/// and ignored). `tracecontext` and `baggage` are W3C; `none` turns propagation off; `b3`,
/// `b3multi`, `jaeger`, `xray` and any other name are not provided by this crate (install such a
/// propagator with `global::set_text_map_propagator`, which always wins).
pub(crate) fn parse_otel_propagators(value: Option<&str>) -> (Fallback, Vec<String>) {
    let names: Vec<String> = value
        .unwrap_or_default()
        .split(',')
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return (Fallback::W3c { baggage: true }, Vec::new());
    }
    if names.iter().any(|n| n == "none") {
        return (Fallback::Nothing, Vec::new());
    }
    let (mut trace, mut baggage, mut ignored) = (false, false, Vec::new());
    for name in names {
        match name.as_str() {
            "tracecontext" => trace = true,
            "baggage" => baggage = true,
            _ => ignored.push(name),
        }
    }
    // Baggage alone still carries the trace context (W3cPropagator writes both).
    let fallback = if trace || baggage { Fallback::W3c { baggage } } else { Fallback::Nothing };
    (fallback, ignored)
}

/// The fallback of this process (see [`Fallback`]), decided and reported once.
pub(super) fn fallback() -> Fallback {
    static FALLBACK: std::sync::OnceLock<Fallback> = std::sync::OnceLock::new();
    *FALLBACK.get_or_init(|| {
        let value = std::env::var("OTEL_PROPAGATORS").ok();
        let (fallback, ignored) = parse_otel_propagators(value.as_deref());
        if !ignored.is_empty() {
            diagnostics::warn(&format!(
                "OTEL_PROPAGATORS names {ignored:?}, which otel-messaging does not provide; ignored \
                 (install such a propagator with opentelemetry::global::set_text_map_propagator)"
            ));
        }
        fallback
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
