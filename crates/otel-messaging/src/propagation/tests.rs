//! Unit tests of the propagation module (strict extraction, policies, the fallback).
/// An explicit propagator is not called for a carrier holding none of its fields and no
/// valid W3C field (a message without context costs a few look-ups), and is called otherwise.
#[test]
fn extraction_skips_the_propagator_when_nothing_is_there() {
    use opentelemetry::{
        Context,
        propagation::{Extractor, Injector, TextMapPropagator, text_map_propagator::FieldIter},
    };
    use std::{
        collections::HashMap,
        sync::atomic::{AtomicUsize, Ordering},
    };
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    static FIELDS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| vec!["b3".into()]);
    #[derive(Debug)]
    struct Counting;
    impl TextMapPropagator for Counting {
        fn inject_context(&self, _cx: &Context, _injector: &mut dyn Injector) {}
        fn extract_with_context(&self, cx: &Context, _extractor: &dyn Extractor) -> Context {
            CALLS.fetch_add(1, Ordering::Relaxed);
            cx.clone()
        }
        fn fields(&self) -> FieldIter<'_> {
            FieldIter::new(&FIELDS)
        }
    }
    let propagator = super::Propagator::explicit(Counting);
    let carrier = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    };
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let _ = propagator.extract(&carrier(&[("other", "x")]), true);
    let _ = propagator.extract(&carrier(&[("traceparent", "garbage")]), true);
    assert_eq!(CALLS.load(Ordering::Relaxed), 0, "nothing there: not called");
    let _ = propagator.extract(&carrier(&[("b3", "x")]), true);
    assert_eq!(CALLS.load(Ordering::Relaxed), 1, "its own field");
    let _ = propagator.extract(&carrier(&[("traceparent", tp)]), true);
    assert_eq!(CALLS.load(Ordering::Relaxed), 2, "a valid traceparent");
    let _ = propagator.extract(&carrier(&[("baggage", "k=v")]), true);
    assert_eq!(CALLS.load(Ordering::Relaxed), 3, "baggage");
    let _ = propagator.extract(&carrier(&[("baggage", "k=v")]), false);
    assert_eq!(CALLS.load(Ordering::Relaxed), 3, "baggage not read: nothing there");
}

/// The fallback without W3C Baggage writes every field but `baggage`.
#[test]
fn without_baggage_drops_only_baggage() {
    use opentelemetry::propagation::Injector as _;
    let mut fields = super::CollectedFields::default();
    let mut injector = super::WithoutBaggage(&mut fields);
    injector.set("traceparent", "t".into());
    injector.set("baggage", "b".into());
    injector.set("tracestate", "s".into());
    assert_eq!(fields.0.iter().map(|(k, _)| k.as_ref()).collect::<Vec<_>>(), ["traceparent", "tracestate"]);
}

/// Baggage of a process context: the ambient context's own wins; incoming baggage only when
/// there is none and it may be kept; the same under `NewRoot` and with the creation context
/// as parent (where it is dropped, not kept, at a trust boundary).
#[test]
fn process_parent_baggage() {
    use super::{Extracted, ProcessParent, process_parent};
    use opentelemetry::{
        Context, KeyValue,
        baggage::BaggageExt as _,
        trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState},
    };
    let remote = |n: u8| {
        SpanContext::new(
            TraceId::from_bytes([n; 16]),
            SpanId::from_bytes([n; 8]),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        )
    };
    let incoming = Extracted::new(
        Context::new().with_remote_span_context(remote(1)).with_baggage([KeyValue::new("in", "1")]),
    );
    let ambient_own =
        Context::new().with_remote_span_context(remote(2)).with_baggage([KeyValue::new("own", "2")]);
    let ambient_bare = Context::new().with_remote_span_context(remote(2));
    let keys = |cx: &Context| {
        let mut k: Vec<String> = cx.baggage().iter().map(|(k, _)| k.to_string()).collect();
        k.sort();
        k
    };
    for policy in [ProcessParent::Spec, ProcessParent::Link, ProcessParent::NewRoot] {
        let (parent, _) = process_parent(policy, &incoming, &ambient_own, true);
        assert_eq!(keys(&parent), ["own"], "{policy:?}: the ambient's own baggage wins");
        let (parent, _) = process_parent(policy, &incoming, &ambient_bare, true);
        assert_eq!(keys(&parent), ["in"], "{policy:?}: incoming baggage when the ambient has none");
        let (parent, _) = process_parent(policy, &incoming, &ambient_bare, false);
        assert!(keys(&parent).is_empty(), "{policy:?}: none at a trust boundary");
    }
    let (parent, links) = process_parent(ProcessParent::CreationContext, &incoming, &ambient_bare, true);
    assert_eq!((keys(&parent), links.len()), (vec!["in".to_owned()], 2));
    let (parent, _) = process_parent(ProcessParent::CreationContext, &incoming, &ambient_bare, false);
    assert!(keys(&parent).is_empty(), "cleared at a trust boundary");
    assert_eq!(parent.span().span_context().span_id(), remote(1).span_id(), "still the creation context");
    let (parent, links) = process_parent(ProcessParent::NewRoot, &incoming, &Context::new(), true);
    assert!(!parent.has_active_span() || !parent.span().span_context().is_valid(), "a root");
    assert_eq!(links.len(), 1, "no current span to link");
}

/// `OTEL_PROPAGATORS` as the SDK environment-variable specification reads it.
#[test]
fn otel_propagators_select_the_fallback() {
    use super::fallback::{Other, Selection, parse_otel_propagators as parse};
    let select = |trace, baggage, others: &[Other]| Selection { trace, baggage, others: others.to_vec() };
    let w3c = select(true, true, &[]);
    assert_eq!(parse(None), (w3c.clone(), vec![]));
    assert_eq!(parse(Some("")), (w3c.clone(), vec![]));
    assert_eq!(parse(Some(" tracecontext , Baggage ")), (w3c, vec![]));
    assert_eq!(parse(Some("tracecontext")), (select(true, false, &[]), vec![]));
    assert_eq!(parse(Some("none")), (Selection::default(), vec![]));
    assert_eq!(parse(Some("tracecontext,none")), (Selection::default(), vec![]));
    if cfg!(feature = "b3") {
        assert_eq!(parse(Some("b3,tracecontext,b3")), (select(true, false, &[Other::B3]), vec![]));
        assert_eq!(parse(Some("b3multi")), (select(false, false, &[Other::B3Multi]), vec![]));
    } else {
        assert_eq!(parse(Some("b3,tracecontext")), (select(true, false, &[]), vec!["b3".to_owned()]));
    }
    let jaeger = vec!["jaeger".to_owned()];
    if cfg!(feature = "xray") {
        assert_eq!(parse(Some("xray,jaeger")), (select(false, false, &[Other::Xray]), jaeger));
    } else {
        assert_eq!(
            parse(Some("xray,jaeger")),
            (Selection::default(), vec!["xray".to_owned(), "jaeger".to_owned()])
        );
    }
}

use super::*;
use std::collections::HashMap;

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

#[test]
fn valid_traceparents() {
    for v in [
        TP,
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
    ] {
        assert!(is_valid_traceparent(v), "{v}");
    }
}

#[test]
fn invalid_traceparents() {
    for v in [
        "",
        "00-1-2-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "000-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "0A-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ] {
        assert!(!is_valid_traceparent(v), "{v:?}");
    }
}

#[test]
fn strict_extractor_hides_invalid_traceparent_and_its_tracestate() {
    let mut carrier = HashMap::new();
    carrier.insert("traceparent".to_string(), "00-1-2-01".to_string());
    carrier.insert("tracestate".to_string(), "a=1".to_string());
    carrier.insert("baggage".to_string(), "k=v".to_string());
    let strict = StrictExtractor::new(&carrier);
    assert!(!strict.has_valid_traceparent());
    assert_eq!(strict.get("traceparent"), None);
    assert_eq!(strict.get("tracestate"), None);
    assert_eq!(strict.get("baggage"), Some("k=v"));
    let mut keys = strict.keys();
    keys.sort_unstable();
    assert_eq!(keys, ["baggage"]);
}

struct Multi(Vec<(&'static str, &'static str)>);
impl Extractor for Multi {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| *k).collect()
    }
    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        let v: Vec<_> = self.0.iter().filter(|(k, _)| *k == key).map(|(_, v)| *v).collect();
        (!v.is_empty()).then_some(v)
    }
}

#[test]
fn strict_extractor_joins_repeated_tracestate_and_baggage() {
    let carrier = Multi(vec![
        ("traceparent", TP),
        ("tracestate", "a=1"),
        ("baggage", "k=v"),
        ("tracestate", "b=2"),
        ("baggage", "x=y"),
    ]);
    let strict = StrictExtractor::new(&carrier);
    assert_eq!(strict.get("traceparent"), Some(TP));
    assert_eq!(strict.get("tracestate"), Some("a=1,b=2"));
    assert_eq!(strict.get("baggage"), Some("k=v,x=y"));
    assert_eq!(strict.get_all("tracestate"), Some(vec!["a=1,b=2"]));
}

#[test]
fn non_empty_injector_skips_empty_values() {
    let mut map: HashMap<String, String> = HashMap::new();
    let mut inj = NonEmptyInjector(&mut map);
    inj.set("tracestate", String::new());
    inj.set("traceparent", TP.to_string());
    assert_eq!(map.len(), 1);
}

proptest::proptest! {
    #[test]
    fn traceparent_validation_never_panics(s in ".{0,80}") {
        let _ = is_valid_traceparent(&s);
    }

    #[test]
    fn valid_traceparent_roundtrips(t in "[0-9a-f]{32}", p in "[0-9a-f]{16}", f in "[0-9a-f]{2}") {
        let v = format!("00-{t}-{p}-{f}");
        let expected = t.bytes().any(|c| c != b'0') && p.bytes().any(|c| c != b'0');
        proptest::prop_assert_eq!(is_valid_traceparent(&v), expected);
    }
}
