//! The W3C Trace Context and Baggage rules at their boundaries, written against what `just
//! mutants` found no test for: tracestate key grammar (simple and multi-tenant keys at their
//! length limits), member counts, value lengths, optional white space, the 512-byte cut, repeated
//! fields, the baggage caps, and traceparent versions.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::{borrow::Cow, collections::HashMap};

use opentelemetry::propagation::Extractor as _;
use otel_messaging::{
    __private::{
        MAX_BAGGAGE_LEN, MAX_BAGGAGE_MEMBERS, MAX_TRACESTATE_LEN, cap_baggage, is_valid_traceparent,
        sanitize_tracestate,
    },
    propagation::StrictExtractor,
};

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn valid(s: &str) -> bool {
    sanitize_tracestate(s).is_some()
}

#[test]
fn tracestate_simple_keys() {
    assert!(valid(&format!("a{}=1", "b".repeat(255))), "256 characters");
    assert!(!valid(&format!("a{}=1", "b".repeat(256))), "257 characters");
    assert!(valid("a_-*/09=1"));
    for bad in ["1a=1", "A=1", "aB=1", "a.b=1", "=1", "a b=1"] {
        assert!(!valid(bad), "{bad}");
    }
}

#[test]
fn tracestate_multi_tenant_keys() {
    assert!(valid("t@s=1"));
    assert!(valid("0t@s=1"), "a tenant may start with a digit");
    assert!(valid(&format!("t{}@s=1", "x".repeat(240))), "tenant of 241");
    assert!(!valid(&format!("t{}@s=1", "x".repeat(241))), "tenant of 242");
    assert!(valid(&format!("t@s{}=1", "x".repeat(13))), "system of 14");
    assert!(!valid(&format!("t@s{}=1", "x".repeat(14))), "system of 15");
    for bad in ["@s=1", "t@=1", "t@1s=1", "T@s=1", "t@S=1", "t.x@s=1", "t@s.x=1", "_t@s=1"] {
        assert!(!valid(bad), "{bad}");
    }
}

#[test]
fn tracestate_values_and_members() {
    assert!(valid(&format!("k={}", "v".repeat(256))), "256 characters");
    assert!(!valid(&format!("k={}", "v".repeat(257))), "257 characters");
    assert!(valid("k=a b"), "inner spaces");
    assert!(!valid("k= "), "a value of white space only is empty once the OWS is trimmed");
    let members = |n: usize| (0..n).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join(",");
    assert!(valid(&members(32)));
    assert!(!valid(&members(33)));
    assert!(!valid("a=1,a=2"), "repeated key");
    assert_eq!(
        sanitize_tracestate("a=1, ,b=2 ").as_deref(),
        Some("a=1,b=2"),
        "empty members and OWS dropped"
    );
    assert!(matches!(sanitize_tracestate("a=1,b=2"), Some(Cow::Borrowed(_))), "tidy values are not copied");
    assert!(!valid(&"k=v,".repeat(20_000)), "a huge value is rejected without parsing it all");
}

#[test]
fn tracestate_over_512_bytes_is_cut_as_w3c_says() {
    // 10 short members of 40 bytes and one long member of 150 bytes: 561 bytes with commas.
    let short: Vec<String> = (0..10).map(|i| format!("k{i:02}={}", "v".repeat(36))).collect();
    let long = format!("long={}", "x".repeat(145));
    let mut all = short.clone();
    all.insert(3, long.clone());
    let value = all.join(",");
    assert!(value.len() > MAX_TRACESTATE_LEN);
    let cut = sanitize_tracestate(&value).expect("valid");
    assert_eq!(cut, short.join(","), "the member over 128 bytes goes first");
    // Without a long member, members go from the end until it fits.
    let many: Vec<String> = (0..13).map(|i| format!("k{i:02}={}", "v".repeat(36))).collect();
    let joined = many.join(",");
    let cut = sanitize_tracestate(&joined).expect("valid");
    assert!(cut.len() <= MAX_TRACESTATE_LEN);
    assert_eq!(cut, many[..12].join(","), "12 × 40 + 11 = 491 bytes fit");
}

#[test]
fn traceparent_versions() {
    assert!(is_valid_traceparent(TP));
    assert!(!is_valid_traceparent(&format!("{TP}-extra")), "version 00 has exactly 55 characters");
    assert!(is_valid_traceparent(&TP.replacen("00", "01", 1)), "a future version");
    assert!(
        is_valid_traceparent(&format!("{}-extra", TP.replacen("00", "01", 1))),
        "which may grow, after a dash"
    );
    assert!(!is_valid_traceparent(&format!("{}extra", TP.replacen("00", "01", 1))), "but only after a dash");
    assert!(!is_valid_traceparent(&TP.replacen("00", "ff", 1)));
    assert!(!is_valid_traceparent(&TP[..54]));
    // Each of the three dashes, alone, replaced by a hex digit (the fields around stay hex).
    for at in [2, 35, 52] {
        let mut bad = TP.as_bytes().to_vec();
        bad[at] = b'0';
        assert!(!is_valid_traceparent(std::str::from_utf8(&bad).unwrap()), "no dash at {at}");
    }
}

#[test]
fn baggage_caps() {
    let members = |n: usize| (0..n).map(|i| format!("k{i}=v")).collect::<Vec<_>>().join(",");
    assert_eq!(cap_baggage(Cow::Owned(members(MAX_BAGGAGE_MEMBERS))), members(MAX_BAGGAGE_MEMBERS));
    assert_eq!(cap_baggage(Cow::Owned(members(MAX_BAGGAGE_MEMBERS + 1))), members(MAX_BAGGAGE_MEMBERS));
    // Bytes: one member that just fits, and one more byte after a comma.
    let fits = format!("k={}", "v".repeat(MAX_BAGGAGE_LEN - 2));
    assert_eq!(cap_baggage(Cow::Borrowed(&fits)).len(), MAX_BAGGAGE_LEN);
    let over = format!("a=1,k={}", "v".repeat(MAX_BAGGAGE_LEN - 4));
    assert_eq!(over.len(), MAX_BAGGAGE_LEN + 2);
    assert_eq!(cap_baggage(Cow::Borrowed(&over)), "a=1", "cut at the last member boundary");
}

/// Repeated `tracestate` and `baggage` fields are joined with `,`; a single one is read as it is.
#[test]
fn repeated_fields_are_joined() {
    struct Repeated(HashMap<&'static str, Vec<&'static str>>);
    impl opentelemetry::propagation::Extractor for Repeated {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.last().copied())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().copied().collect()
        }
        fn get_all(&self, key: &str) -> Option<Vec<&str>> {
            self.0.get(key).cloned()
        }
    }
    let carrier = Repeated(HashMap::from([
        ("traceparent", vec![TP]),
        ("tracestate", vec!["a=1", "b=2"]),
        ("baggage", vec!["k=v"]),
    ]));
    let strict = StrictExtractor::new(&carrier);
    assert!(strict.has_valid_traceparent());
    assert_eq!(strict.get("tracestate"), Some("a=1,b=2"));
    assert_eq!(strict.get("baggage"), Some("k=v"));
    let no_context = Repeated(HashMap::from([("tracestate", vec!["a=1"])]));
    let strict = StrictExtractor::new(&no_context);
    assert!(!strict.has_valid_traceparent());
    assert_eq!(strict.get("tracestate"), None, "no tracestate without a valid traceparent");
}

/// `fit_fields` degrades in the order the design fixes, and says whether anything is left.
#[test]
fn fit_fields_degrades_baggage_then_tracestate_then_everything() {
    use otel_messaging::__private::{CollectedFields, fit_fields};
    let all = || {
        vec![
            (Cow::Borrowed("traceparent"), "t".repeat(55)),
            (Cow::Borrowed("tracestate"), "s".repeat(20)),
            (Cow::Borrowed("baggage"), "b".repeat(100)),
        ]
    };
    let size = |f: &[(Cow<'static, str>, String)]| CollectedFields::size(f, 0);
    assert_eq!(size(&all()), 11 + 55 + 10 + 20 + 7 + 100);
    assert_eq!(CollectedFields::size(&all(), 4), size(&all()) + 12);
    let mut fields = all();
    assert!(fit_fields(&mut fields, |_| true));
    assert_eq!(fields.len(), 3);
    let mut fields = all();
    assert!(fit_fields(&mut fields, |f| size(f) <= 100));
    assert_eq!(fields.iter().map(|(k, _)| k.as_ref()).collect::<Vec<_>>(), ["traceparent", "tracestate"]);
    let mut fields = all();
    assert!(fit_fields(&mut fields, |f| size(f) <= 70));
    assert_eq!(fields.iter().map(|(k, _)| k.as_ref()).collect::<Vec<_>>(), ["traceparent"]);
    let mut fields = all();
    assert!(!fit_fields(&mut fields, |f| size(f) <= 10));
    assert!(fields.is_empty());
    let mut nothing: Vec<(Cow<'static, str>, String)> = Vec::new();
    assert!(!fit_fields(&mut nothing, |_| true), "nothing to inject");
    // Another propagator's fields alone: nothing survives the cut to `traceparent`.
    let mut b3 = vec![(Cow::Borrowed("b3"), "x".repeat(50))];
    assert!(!fit_fields(&mut b3, |f| size(f) <= 10));
}
