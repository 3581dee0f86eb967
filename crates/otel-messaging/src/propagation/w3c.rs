//! [`W3cPropagator`]: W3C Trace Context and W3C Baggage in one propagator, with the strict
//! validation of [`StrictExtractor`] and no formatting machinery on the hot path.

use super::{BAGGAGE, StrictExtractor, TRACEPARENT, TRACESTATE, baggage};
use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator, text_map_propagator::FieldIter},
    trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState},
};

/// W3C Trace Context (`traceparent`, `tracestate`) and W3C Baggage (`baggage`) in one
/// propagator: the same wire format as the OpenTelemetry SDK's
/// `TextMapCompositePropagator` of `TraceContextPropagator` and `BaggagePropagator`, at a
/// fraction of the cost.
///
/// * **Inject** writes `traceparent` as `00-{trace-id}-{parent-id}-{flags}` (lowercase hex, only
///   the sampled flag kept, as the SDK does), `tracestate` only when it is not empty (W3C Trace
///   Context §3.3: avoid an empty `tracestate`) and `baggage` only when the context has baggage
///   (encoded as the SDK's `BaggagePropagator` encodes it). Nothing is written for a context without a valid
///   span context, except its baggage.
/// * **Extract** applies [`StrictExtractor`]'s rules (a `traceparent` that W3C calls invalid is no
///   context, `tracestate` validated and bounded, `baggage` cut to the W3C limits before it is
///   parsed), then decodes the validated `traceparent` in one pass. The span context is remote,
///   its flags keep only the sampled bit (W3C Trace Context §3.2.2.5: other flags are not
///   propagated by a participant that does not know them). An unparsable `tracestate` becomes
///   an empty one, as in the SDK.
///
/// Why it exists: the SDK's `TraceContextPropagator` formats `traceparent` with `format!` and
/// parses it field by field after splitting it into a `Vec`, about half of what the SDK costs per
/// message (BENCHMARKS.md). A [`MessagingInstrumenter`](crate::MessagingInstrumenter) given this
/// propagator with [`with_propagator`](crate::MessagingInstrumenterBuilder::with_propagator)
/// recognises it and reads the fields it has already validated instead of reading the carrier
/// again. It also works as any `TextMapPropagator`, e.g. installed globally with
/// `opentelemetry::global::set_text_map_propagator`, for HTTP clients and servers.
///
/// Sources: W3C Trace Context Level 2 (`traceparent`, `tracestate`), W3C Baggage.
///
/// # Examples
///
/// ```
/// use otel_messaging::{MessagingInstrumenter, propagation::W3cPropagator};
///
/// let instrumenter = MessagingInstrumenter::builder().with_propagator(W3cPropagator::new()).build();
/// assert_eq!(instrumenter.propagation_fields(), ["traceparent", "tracestate", "baggage"]);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct W3cPropagator {
    _private: (),
}

impl W3cPropagator {
    /// A W3C Trace Context + Baggage propagator.
    pub const fn new() -> Self {
        W3cPropagator { _private: () }
    }

    /// Writes `cx`'s span context and baggage into `injector` (see the type's docs).
    pub(crate) fn inject(cx: &Context, injector: &mut dyn Injector) {
        let span = cx.span();
        let sc = span.span_context();
        if sc.is_valid() {
            injector.set(TRACEPARENT, traceparent(sc));
            let state = sc.trace_state().header();
            if !state.is_empty() {
                injector.set(TRACESTATE, state);
            }
        }
        if let Some(header) = baggage::encode(cx) {
            injector.set(BAGGAGE, header);
        }
    }

    /// The context `strict` describes, on `cx`: its validated `traceparent` decoded, its
    /// sanitised `tracestate` and its bounded `baggage`.
    pub(crate) fn extract_strict(cx: &Context, strict: &StrictExtractor<'_>) -> Context {
        let cx = match Self::span_context_strict(strict) {
            Some(sc) => cx.with_remote_span_context(sc),
            None => cx.clone(),
        };
        match strict.baggage.as_deref() {
            Some(header) => baggage::decode(&cx, header),
            None => cx,
        }
    }
}

impl W3cPropagator {
    /// The remote span context `strict` describes (its validated `traceparent` decoded, its
    /// sanitised `tracestate`), without building a `Context`: what a link needs.
    pub(crate) fn span_context_strict(strict: &StrictExtractor<'_>) -> Option<SpanContext> {
        let (trace_id, span_id, flags) = strict.traceparent.and_then(decode)?;
        let state =
            strict.tracestate.as_deref().and_then(|s| s.parse::<TraceState>().ok()).unwrap_or_default();
        Some(SpanContext::new(trace_id, span_id, flags, true, state))
    }
}

/// `00-{trace-id}-{parent-id}-{flags}` in lowercase hex, flags reduced to the sampled bit.
fn traceparent(sc: &SpanContext) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; 55];
    out[0] = b'0';
    out[1] = b'0';
    let mut write = |at: usize, bytes: &[u8]| {
        for (i, b) in bytes.iter().enumerate() {
            out[at + 2 * i] = HEX[usize::from(b >> 4)];
            out[at + 2 * i + 1] = HEX[usize::from(b & 0x0f)];
        }
    };
    write(3, &sc.trace_id().to_bytes());
    write(36, &sc.span_id().to_bytes());
    write(53, &[(sc.trace_flags() & TraceFlags::SAMPLED).to_u8()]);
    // Every byte written is ASCII: the conversion cannot fail.
    std::str::from_utf8(&out).map(str::to_owned).unwrap_or_default()
}

/// Decodes a `traceparent` that [`super::is_valid_traceparent`] accepted: trace id, parent id and
/// flags reduced to the sampled bit. `None` only for input that was not validated.
fn decode(value: &str) -> Option<(TraceId, SpanId, TraceFlags)> {
    /// `NIBBLE[c]`: the value of lowercase hex digit `c`, or `0xff` for any other byte.
    static NIBBLE: [u8; 256] = {
        let mut table = [0xff; 256];
        let mut c = 0;
        while c < 256 {
            table[c] = match c as u8 {
                d @ b'0'..=b'9' => d - b'0',
                d @ b'a'..=b'f' => d - b'a' + 10,
                _ => 0xff,
            };
            c += 1;
        }
        table
    };
    /// Up to 16 hex digits as a `u64`; `None` when one is not lowercase hex. One table look-up per
    /// digit, the check folded over the field (every delivered message decodes one `traceparent`).
    fn hex(bytes: &[u8]) -> Option<u64> {
        let (value, bad) = bytes.iter().fold((0u64, 0u8), |(acc, bad), &c| {
            let nibble = NIBBLE[usize::from(c)];
            (acc << 4 | u64::from(nibble & 0x0f), bad | nibble & 0xf0)
        });
        (bad == 0).then_some(value)
    }
    let b = value.as_bytes();
    let high = hex(b.get(3..19)?)?;
    let low = hex(b.get(19..35)?)?;
    let span_id = hex(b.get(36..52)?)?;
    let flags = hex(b.get(53..55)?)?;
    let trace_id = u128::from(high) << 64 | u128::from(low);
    let sampled = TraceFlags::new(u8::try_from(flags & 1).unwrap_or_default());
    Some((TraceId::from(trace_id), SpanId::from(span_id), sampled))
}

impl TextMapPropagator for W3cPropagator {
    fn inject_context(&self, cx: &Context, injector: &mut dyn Injector) {
        Self::inject(cx, injector);
    }

    fn extract_with_context(&self, cx: &Context, extractor: &dyn Extractor) -> Context {
        Self::extract_strict(cx, &StrictExtractor::new(extractor))
    }

    fn fields(&self) -> FieldIter<'_> {
        FieldIter::new(fields())
    }
}

/// `traceparent`, `tracestate`, `baggage`.
pub(crate) fn fields() -> &'static [String] {
    static FIELDS: std::sync::OnceLock<[String; 3]> = std::sync::OnceLock::new();
    FIELDS.get_or_init(|| [TRACEPARENT.to_owned(), TRACESTATE.to_owned(), BAGGAGE.to_owned()])
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::HashMap;

    use opentelemetry::{KeyValue, baggage::BaggageExt, propagation::TextMapCompositePropagator};
    use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

    use super::*;

    fn sdk() -> TextMapCompositePropagator {
        TextMapCompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
        ])
    }

    fn injected(p: &dyn TextMapPropagator, cx: &Context) -> HashMap<String, String> {
        let mut map = HashMap::new();
        p.inject_context(cx, &mut super::super::NonEmptyInjector(&mut map));
        map
    }

    #[test]
    fn injects_what_the_sdk_injects() {
        let state: TraceState = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE".parse().unwrap();
        for (flags, state) in [
            (TraceFlags::SAMPLED, TraceState::default()),
            (TraceFlags::default(), state.clone()),
            (TraceFlags::new(0xff), state),
        ] {
            let sc = SpanContext::new(
                TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
                SpanId::from(0x00f0_67aa_0ba9_02b7),
                flags,
                false,
                state,
            );
            let cx = Context::new()
                .with_remote_span_context(sc)
                .with_baggage([KeyValue::new("user id", "a b,c"), KeyValue::new("k", "v")]);
            assert_eq!(injected(&W3cPropagator::new(), &cx), injected(&sdk(), &cx));
        }
        let baggage_only = Context::new().with_baggage([KeyValue::new("k", "v")]);
        assert_eq!(injected(&W3cPropagator::new(), &baggage_only), injected(&sdk(), &baggage_only));
        assert!(injected(&W3cPropagator::new(), &Context::new()).is_empty());
    }

    #[test]
    fn invalid_traceparent_is_no_context() {
        for tp in ["00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1", "00-1-2-01", ""] {
            let carrier = HashMap::from([(TRACEPARENT.to_owned(), tp.to_owned())]);
            assert!(!W3cPropagator::new().extract(&carrier).span().span_context().is_valid(), "{tp}");
        }
        assert_eq!(decode("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g"), None);
        // Two bad digits in one field must not cancel out (the check is an OR over the field).
        assert_eq!(decode("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-gg"), None);
        assert_eq!(decode("00-Gbf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bG-01"), None);
    }

    #[test]
    fn lists_its_fields() {
        let propagator = W3cPropagator::new();
        let fields: Vec<&str> = propagator.fields().collect();
        assert_eq!(fields, [TRACEPARENT, TRACESTATE, BAGGAGE]);
    }
}
