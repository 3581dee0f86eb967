//! Unit tests of the propagation module (strict extraction, policies, the fallback).
#![allow(clippy::expect_used)]
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
    let mut fields = super::bounded::CollectedFields::default();
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

use super::{bounded::*, strict::*, *};
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

/// A carrier of message attributes with a count limit, as SQS and SNS have (mutation testing:
/// these helpers were tested only through the AWS crates).
#[derive(Default)]
struct Attributes(Vec<(String, String)>);

impl Injector for Attributes {
    fn set(&mut self, key: &str, value: String) {
        self.0.push((key.to_owned(), value));
    }
}

impl AttributeCarrier for Attributes {
    fn contains(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k == key)
    }
    fn count(&self) -> usize {
        self.0.len()
    }
}

fn fields() -> Vec<Field> {
    vec![
        (TRACEPARENT.into(), TP.to_owned()),
        (TRACESTATE.into(), "rojo=1".to_owned()),
        (BAGGAGE.into(), "k=v".to_owned()),
    ]
}

#[test]
fn fit_attributes_keeps_what_fits_and_leaves_present_fields_to_the_carrier() {
    let size = |f: &[Field]| CollectedFields::size(f, 6);
    // Room for all: all, with their bytes (key + value + 6 each).
    let all = fields();
    assert_eq!(fit_attributes(fields(), |_| false, 10, 6, 1_000), Some((all.clone(), size(&all))));
    // A field the carrier already holds is left to it.
    let (kept, bytes) = fit_attributes(fields(), |k| k == TRACESTATE, 10, 6, 1_000).expect("fits");
    assert_eq!(kept.iter().map(|(k, _)| k.as_ref()).collect::<Vec<_>>(), [TRACEPARENT, BAGGAGE]);
    assert_eq!(bytes, size(&kept));
    // Two free attributes: baggage goes first.
    let (kept, _) = fit_attributes(fields(), |_| false, 2, 6, 1_000).expect("fits");
    assert_eq!(kept.iter().map(|(k, _)| k.as_ref()).collect::<Vec<_>>(), [TRACEPARENT, TRACESTATE]);
    // Bytes for `traceparent` alone (exactly), then for nothing.
    let alone = size(&all[..1]);
    let (kept, bytes) = fit_attributes(fields(), |_| false, 10, 6, alone).expect("fits");
    assert_eq!((kept.len(), bytes), (1, alone));
    assert_eq!(fit_attributes(fields(), |_| false, 10, 6, alone - 1), None);
    assert_eq!(fit_attributes(fields(), |_| false, 0, 6, 1_000), None, "no free attribute");
}

#[test]
fn inject_attributes_writes_within_the_count_and_byte_limits() {
    let mut carrier = Attributes::default();
    carrier.set("app", "1".to_owned());
    carrier.set(TRACESTATE, "mine=1".to_owned());
    // Two attributes left of 4; the carrier's own `tracestate` is kept, so `traceparent` and
    // `baggage` fit in them.
    let bytes = inject_attributes(fields(), &mut carrier, 4, 6, 1_000).expect("fits");
    assert_eq!(
        carrier.0.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect::<Vec<_>>(),
        [("app", "1"), (TRACESTATE, "mine=1"), (TRACEPARENT, TP), (BAGGAGE, "k=v")]
    );
    assert_eq!(bytes, TRACEPARENT.len() + TP.len() + 6 + BAGGAGE.len() + 3 + 6);
    // A full carrier: nothing written.
    let mut full = Attributes::default();
    (0..4).for_each(|i| full.set(&format!("a{i}"), "1".to_owned()));
    assert_eq!(inject_attributes(fields(), &mut full, 4, 6, 1_000), None);
    assert_eq!(full.count(), 4);
}

#[test]
fn batch_budget_keeps_each_entry_and_the_batch_within_the_limit() {
    // Within the limit: the rest of it; over it: up to the ceiling, never past it.
    assert_eq!(BatchBudget::room_under(100, 1_000, 2_000), 900);
    assert_eq!(BatchBudget::room_under(1_000, 1_000, 2_000), 0);
    assert_eq!(BatchBudget::room_under(1_500, 1_000, 2_000), 500);
    assert_eq!(BatchBudget::room_under(2_500, 1_000, 2_000), 0);
    // Entries of 300 and 500 bytes under 1 000: the batch has 200 left, the first entry takes 150
    // of it, the second gets the 50 that remain (its own room, 500, is larger).
    let mut budget = BatchBudget::new(vec![300, 500], 1_000, 2_000);
    assert_eq!(budget.room(0, 0), 200);
    assert_eq!(budget.room(1, 150), 50);
    // The batch's room is the smaller one: the batch is at 960 of 1 000 (room 40), the first entry
    // at 950 (room 50); after the first entry used 30, the second (at 10) gets the 10 left.
    let mut budget = BatchBudget::new(vec![950, 10], 1_000, 1_000);
    assert_eq!(budget.room(0, 0), 40);
    assert_eq!(budget.room(1, 30), 10);
    // An index past the entries counts as an empty entry.
    assert_eq!(BatchBudget::new(vec![], 100, 100).room(5, 0), 100);
}

#[test]
fn empty_extractor_has_no_keys_and_non_empty_injector_forwards_reserve() {
    assert!(EmptyExtractor.keys().is_empty());
    assert_eq!(EmptyExtractor.get(TRACEPARENT), None);
    struct Reserving(usize);
    impl Injector for Reserving {
        fn set(&mut self, _: &str, _: String) {}
        fn reserve(&mut self, additional: usize) {
            self.0 += additional;
        }
    }
    let mut inner = Reserving(0);
    NonEmptyInjector(&mut inner).reserve(3);
    assert_eq!(inner.0, 3);
}

/// An ambient context whose span is not valid (a context that holds a span entry, e.g. a no-op
/// span) is no ambient span: under `Spec` the creation context is the parent, and nothing else is
/// linked.
#[test]
fn an_invalid_ambient_span_is_no_ambient_span() {
    use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState};
    let creation = SpanContext::new(
        TraceId::from_bytes([1; 16]),
        SpanId::from_bytes([1; 8]),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let incoming = Extracted::new(opentelemetry::Context::new().with_remote_span_context(creation.clone()));
    let ambient = opentelemetry::Context::new().with_remote_span_context(SpanContext::empty_context());
    assert!(ambient.has_active_span());
    let (parent, links) = process_parent(ProcessParent::Spec, &incoming, &ambient, true);
    assert_eq!(parent.span().span_context(), &creation);
    assert_eq!(links.len(), 1, "the creation context only");
}

/// The fields of the project's W3C codec: with baggage or without.
#[test]
fn w3c_fields_with_and_without_baggage() {
    assert_eq!(Propagator::W3c { baggage: true }.fields(), [TRACEPARENT, TRACESTATE, BAGGAGE]);
    assert_eq!(Propagator::W3c { baggage: false }.fields(), [TRACEPARENT, TRACESTATE]);
}

/// A propagator that reads the W3C fields (besides its own) is not called when the W3C fields
/// the carrier holds are invalid or not to be read: the strict rules hide them, so there is
/// nothing for it to read (the carrier's raw values do not count).
#[test]
fn hidden_w3c_fields_do_not_call_a_propagator_that_lists_them() {
    use opentelemetry::propagation::text_map_propagator::FieldIter;
    use std::sync::atomic::{AtomicUsize, Ordering};
    static CALLS: AtomicUsize = AtomicUsize::new(0);
    static FIELDS: std::sync::LazyLock<Vec<String>> = std::sync::LazyLock::new(|| {
        [TRACEPARENT, TRACESTATE, BAGGAGE, "x-other"].map(str::to_owned).to_vec()
    });
    #[derive(Debug)]
    struct Reading;
    impl TextMapPropagator for Reading {
        fn inject_context(&self, _: &opentelemetry::Context, _: &mut dyn Injector) {}
        fn extract_with_context(
            &self,
            cx: &opentelemetry::Context,
            _: &dyn Extractor,
        ) -> opentelemetry::Context {
            CALLS.fetch_add(1, Ordering::Relaxed);
            cx.clone()
        }
        fn fields(&self) -> FieldIter<'_> {
            FieldIter::new(&FIELDS)
        }
    }
    let propagator = Propagator::explicit(Reading);
    let carrier = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    };
    let _ = propagator.extract(&carrier(&[(TRACEPARENT, "garbage")]), true);
    let _ = propagator.extract(&carrier(&[(TRACESTATE, "a=1")]), true);
    let _ = propagator.extract(&carrier(&[(BAGGAGE, "k=v")]), false);
    assert_eq!(CALLS.load(Ordering::Relaxed), 0);
    let _ = propagator.extract(&carrier(&[("x-other", "1")]), true);
    assert_eq!(CALLS.load(Ordering::Relaxed), 1, "its own field is there");
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
