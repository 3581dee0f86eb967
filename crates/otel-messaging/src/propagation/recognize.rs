//! The OpenTelemetry SDK's own W3C propagators, recognised — whether given to the builder or
//! installed globally — so that our W3C codec serves them: it writes and reads what they write and
//! read (the `traceparent` fuzz target and the baggage proptests check it against them), without
//! their formatting and re-parsing behind the strict validation (≈ 1.47 × the SDK floor per
//! message through them, ≈ 1.10 × through the codec: BENCHMARKS.md, "Eighth session"). Its own
//! file: a propagator is recognised by its `Debug` text and fields, once per propagator.

use opentelemetry::propagation::TextMapPropagator;

/// `Debug` of opentelemetry_sdk 0.33's `TraceContextPropagator`.
const TRACE_CONTEXT: &str = "TraceContextPropagator { _private: () }";
/// The start of the `Debug` of opentelemetry 0.33's `TextMapCompositePropagator` of the SDK's
/// `TraceContextPropagator` then `BaggagePropagator` (the usual global propagator); its fields
/// follow, in an order of their own (checked as a set).
const TRACE_CONTEXT_AND_BAGGAGE: &str = "TextMapCompositePropagator { propagators: [TraceContextPropagator { \
     _private: () }, BaggagePropagator { _private: () }], fields: [";

/// `Some(baggage)` when `propagator` is the SDK's W3C Trace Context propagator (`false`), or the
/// composite of it and the SDK's W3C Baggage propagator, in that order (`true`); `None` for every
/// other propagator, which then propagates itself.
pub(super) fn sdk_w3c(propagator: &dyn TextMapPropagator) -> Option<bool> {
    use std::fmt::Write as _;
    let baggage = if has_w3c_fields(propagator, false) {
        false
    } else if has_w3c_fields(propagator, true) {
        true
    } else {
        return None;
    };
    // Bounded: a foreign propagator's Debug may be long; the two recognised texts are short.
    struct Bounded(String);
    impl std::fmt::Write for Bounded {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            if self.0.len() + s.len() > 512 {
                return Err(std::fmt::Error);
            }
            self.0.push_str(s);
            Ok(())
        }
    }
    let mut text = Bounded(String::new());
    write!(text, "{propagator:?}").ok()?;
    let recognised = if baggage {
        text.0.starts_with(TRACE_CONTEXT_AND_BAGGAGE)
            && !text.0[TRACE_CONTEXT_AND_BAGGAGE.len()..].contains('{')
    } else {
        text.0 == TRACE_CONTEXT
    };
    recognised.then_some(baggage)
}

/// [`sdk_w3c`] of the global propagator, recognised again only when another one is installed:
/// each thread keeps the identity of the last one it saw and what it was. The identity is the
/// propagator's address and the address of its first field name's bytes: the SDK's propagators
/// return their fields from statics of their own and a composite from its own vector, so another
/// propagator — a foreign zero-sized one shares the address of every zero-sized one — has another
/// identity. (A composite installed after two others could land on both addresses of the first
/// one this thread saw; each check of its fields cost ≈ 0.03 × the floor per message, so
/// identity alone decides.)
pub(super) fn global_sdk_w3c() -> Option<bool> {
    /// The identity of the propagator last seen, and what it was.
    type Seen = Option<((usize, usize), Option<bool>)>;
    thread_local! {
        static SEEN: std::cell::Cell<Seen> = const { std::cell::Cell::new(None) };
    }
    opentelemetry::global::get_text_map_propagator(|p| {
        let identity = identity(p);
        if let Some((seen, kind)) = SEEN.get()
            && seen == identity
        {
            return kind;
        }
        let kind = sdk_w3c(p);
        SEEN.set(Some((identity, kind)));
        kind
    })
}

/// The address of `propagator` and of its first field name's bytes.
fn identity(propagator: &dyn TextMapPropagator) -> (usize, usize) {
    let address = std::ptr::from_ref(propagator).cast::<()>() as usize;
    (address, propagator.fields().next().map_or(0, |field| field.as_ptr() as usize))
}

/// Whether `propagator`'s fields are W3C Trace Context's (and Baggage's when `baggage`), in any
/// order (a composite lists its fields sorted).
fn has_w3c_fields(propagator: &dyn TextMapPropagator, baggage: bool) -> bool {
    let mut seen = 0_u8;
    for field in propagator.fields() {
        let bit = match field {
            "traceparent" => 1,
            "tracestate" => 2,
            "baggage" if baggage => 4,
            _ => return false,
        };
        if seen & bit != 0 {
            return false;
        }
        seen |= bit;
    }
    seen == if baggage { 7 } else { 3 }
}

#[cfg(test)]
mod tests {
    use opentelemetry::propagation::TextMapCompositePropagator;
    use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};

    use super::sdk_w3c;

    #[test]
    fn the_sdks_w3c_propagators_and_nothing_else() {
        assert_eq!(sdk_w3c(&TraceContextPropagator::new()), Some(false));
        let usual = TextMapCompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
        ]);
        assert_eq!(sdk_w3c(&usual), Some(true), "{usual:?}");
        let reversed = TextMapCompositePropagator::new(vec![
            Box::new(BaggagePropagator::new()),
            Box::new(TraceContextPropagator::new()),
        ]);
        assert_eq!(sdk_w3c(&reversed), None, "writes in another order");
        assert_eq!(sdk_w3c(&BaggagePropagator::new()), None);
        let nested = TextMapCompositePropagator::new(vec![Box::new(usual)]);
        assert_eq!(sdk_w3c(&nested), None);
        assert_eq!(sdk_w3c(&crate::propagation::W3cPropagator::new()), None, "recognised by type instead");
    }

    /// A propagator with W3C's fields whose `Debug` begins as the SDK composite's: recognised
    /// only while its `Debug` text fits in 512 bytes (the bound on what is read of it).
    #[derive(Clone, Copy)]
    struct Lookalike(usize);

    impl std::fmt::Debug for Lookalike {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let padding = "x".repeat(self.0 - super::TRACE_CONTEXT_AND_BAGGAGE.len());
            f.write_str(&format!("{}{padding}", super::TRACE_CONTEXT_AND_BAGGAGE))
        }
    }

    impl opentelemetry::propagation::TextMapPropagator for Lookalike {
        fn inject_context(
            &self,
            _: &opentelemetry::Context,
            _: &mut dyn opentelemetry::propagation::Injector,
        ) {
        }
        fn extract_with_context(
            &self,
            cx: &opentelemetry::Context,
            _: &dyn opentelemetry::propagation::Extractor,
        ) -> opentelemetry::Context {
            cx.clone()
        }
        fn fields(&self) -> opentelemetry::propagation::text_map_propagator::FieldIter<'_> {
            static FIELDS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
                ["baggage", "traceparent", "tracestate"].map(str::to_owned).to_vec()
            });
            opentelemetry::propagation::text_map_propagator::FieldIter::new(&FIELDS)
        }
    }

    #[test]
    fn the_debug_text_read_is_bounded_to_512_bytes() {
        assert_eq!(sdk_w3c(&Lookalike(512)), Some(true), "512 bytes are read");
        assert_eq!(sdk_w3c(&Lookalike(513)), None, "513 are not");
        assert_eq!(sdk_w3c(&Lookalike(5_000)), None);
    }
}
