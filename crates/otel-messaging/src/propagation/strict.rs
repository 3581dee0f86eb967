//! Strict W3C reading: [`StrictExtractor`] and the validators and limits it applies to
//! `traceparent`, `tracestate` and `baggage` (W3C Trace Context Level 2, W3C Baggage §3.3.1).

use super::*;

/// An [`Extractor`] wrapper that applies the W3C Trace Context and Baggage rules before the
/// propagator sees the carrier, so that input from an untrusted producer is bounded.
///
/// * `traceparent` is returned only if it is valid per W3C (`version-traceid-parentid-flags`,
///   lowercase hex; version 2 characters and not `ff`; trace id 32 and parent id 16 characters,
///   neither all zero; flags 2 characters; version `00` exactly 55 characters, a higher version
///   may carry more fields after a `-`; no surrounding whitespace); otherwise both `traceparent`
///   and `tracestate` read as absent.
/// * `tracestate` (repeated values combined with `,`) is returned only if it is valid per W3C
///   Trace Context §3.3: at most 32 list members, each a valid key (`simple-key` or
///   `tenant-id@system-id`, no key twice) and a value of printable ASCII without `,` or `=`; an
///   invalid one reads as absent (W3C: a vendor that fails to parse `tracestate` must not
///   propagate it). A valid one longer than 512 bytes is cut down as W3C allows (§3.3.1.5):
///   members over 128 bytes are dropped first, then members from the end.
/// * `baggage` (repeated values combined with `,`) is cut at a member boundary to the W3C Baggage
///   limits (§3.3.1), 64 members and 8 192 bytes, **before** any parsing; with [`without_baggage`](Self::without_baggage) it reads as absent and is not
///   even looked at (trust boundaries, batch links).
/// * A repeated `traceparent` reads as its last value. Every other key passes through unchanged,
///   so B3, Jaeger or X-Ray fields still work.
///
/// Building it allocates only when a `tracestate` or `baggage` key repeats or must be cut.
pub struct StrictExtractor<'a> {
    pub(super) inner: &'a dyn Extractor,
    /// The carrier's `traceparent` when valid, read once (the SDK asks for it again).
    pub(super) traceparent: Option<&'a str>,
    pub(super) tracestate: Option<Cow<'a, str>>,
    pub(super) baggage: Option<Cow<'a, str>>,
}

impl std::fmt::Debug for StrictExtractor<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StrictExtractor")
            .field("traceparent", &self.traceparent)
            .field("tracestate", &self.tracestate)
            .field("baggage", &self.baggage)
            .finish()
    }
}

/// Most bytes of `tracestate` propagated (W3C Trace Context §3.3.1.5: at least 512 characters
/// should be propagated; longer values may be cut).
pub const MAX_TRACESTATE_LEN: usize = 512;
/// Most `tracestate` list members (W3C Trace Context §3.3.1.1).
pub const MAX_TRACESTATE_MEMBERS: usize = 32;
/// Most bytes of `baggage` read (W3C Baggage §3.3.1, "Limits").
pub const MAX_BAGGAGE_LEN: usize = 8192;
/// Most `baggage` list members read (W3C Baggage §3.3.1, "Limits").
pub const MAX_BAGGAGE_MEMBERS: usize = 64;

/// Every value of `key`, combined with `,`, reading no more than `limit` bytes of input; `None`
/// when the key is absent.
fn joined<'a>(inner: &'a dyn Extractor, key: &str, limit: usize) -> Option<Cow<'a, str>> {
    match inner.get_all(key) {
        Some(values) if values.len() > 1 => {
            let mut out = String::new();
            for value in values {
                if out.len() > limit {
                    break;
                }
                if !out.is_empty() {
                    out.push(',');
                }
                out.push_str(value);
            }
            Some(Cow::Owned(out))
        }
        Some(mut values) => values.pop().map(Cow::Borrowed),
        None => None,
    }
}

/// Keeps the longest prefix of `value` made of whole list members that stays within
/// [`MAX_BAGGAGE_MEMBERS`] members and [`MAX_BAGGAGE_LEN`] bytes (W3C Baggage limits). Reads at
/// most `MAX_BAGGAGE_LEN + 1` bytes of the input; allocates only when `value` is owned.
pub fn cap_baggage(value: Cow<'_, str>) -> Cow<'_, str> {
    let bytes = value.as_bytes();
    let mut members = 1;
    let mut end = None;
    for (i, &b) in bytes.iter().enumerate().take(MAX_BAGGAGE_LEN + 1) {
        if b == b',' {
            if members == MAX_BAGGAGE_MEMBERS {
                end = Some(i);
                break;
            }
            members += 1;
        }
    }
    let end = match end {
        Some(end) => end,
        None if bytes.len() <= MAX_BAGGAGE_LEN => return value,
        // Too long: cut at the last member boundary within the limit.
        None => bytes[..=MAX_BAGGAGE_LEN].iter().rposition(|&b| b == b',').unwrap_or(0),
    };
    match value {
        Cow::Borrowed(s) => Cow::Borrowed(&s[..end]),
        Cow::Owned(mut s) => {
            s.truncate(end);
            Cow::Owned(s)
        }
    }
}

/// Validates a `tracestate` value per W3C Trace Context §3.3 and bounds it.
///
/// Returns `None` (ignore the header) when any list member is invalid — a key not matching
/// `simple-key` / `tenant-id@system-id`, a value with characters outside printable ASCII
/// (0x20–0x7E), `,` or `=`, or ending in a space — when a key repeats, or when there are more than
/// [`MAX_TRACESTATE_MEMBERS`] members. Empty members are allowed and dropped. A valid value over
/// [`MAX_TRACESTATE_LEN`] bytes loses its members over 128 bytes first, then members from the end
/// (W3C §3.3.1.5). Allocates only when the value must be rewritten.
///
/// # Examples
///
/// ```
/// use otel_messaging::__private::sanitize_tracestate;
/// assert_eq!(sanitize_tracestate("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE").as_deref(),
///            Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
/// assert_eq!(sanitize_tracestate("Upper=1"), None);
/// assert_eq!(sanitize_tracestate("k=\u{7}bell"), None);
/// assert_eq!(sanitize_tracestate("k="), None, "a value has at least one character");
/// ```
pub fn sanitize_tracestate(value: &str) -> Option<Cow<'_, str>> {
    // Enough to reject huge inputs without scanning them: 32 members of at most 256 + 1 + 256.
    if value.len() > MAX_TRACESTATE_MEMBERS * (256 + 1 + 256 + 2) {
        return None;
    }
    let mut count = 0;
    let mut tidy = true; // no empty members or optional white space to remove
    for member in value.split(',') {
        let trimmed = member.trim_matches([' ', '\t']);
        if trimmed.is_empty() {
            tidy = false;
            continue;
        }
        tidy &= trimmed.len() == member.len();
        let (key, val) = trimmed.split_once('=')?;
        if !valid_tracestate_key(key) || !valid_tracestate_value(val) {
            return None;
        }
        count += 1;
        if count > MAX_TRACESTATE_MEMBERS {
            return None;
        }
    }
    let members = || value.split(',').map(|m| m.trim_matches([' ', '\t'])).filter(|m| !m.is_empty());
    // Keys must be unique (W3C §3.3.1.1).
    for (i, member) in members().enumerate() {
        let key = member.split_once('=').map_or(member, |(k, _)| k);
        if members().take(i).any(|m| m.split_once('=').is_some_and(|(k, _)| k == key)) {
            return None;
        }
    }
    if tidy && value.len() <= MAX_TRACESTATE_LEN {
        return Some(Cow::Borrowed(value));
    }
    let mut kept: Vec<&str> = members().collect();
    let len = |kept: &[&str]| kept.iter().map(|m| m.len() + 1).sum::<usize>().saturating_sub(1);
    if len(&kept) > MAX_TRACESTATE_LEN {
        kept.retain(|m| m.len() <= 128);
    }
    while len(&kept) > MAX_TRACESTATE_LEN {
        kept.pop();
    }
    Some(Cow::Owned(kept.join(",")))
}

fn valid_tracestate_key(key: &str) -> bool {
    fn rest(c: u8) -> bool {
        matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/')
    }
    let b = key.as_bytes();
    match key.split_once('@') {
        None => {
            // simple-key = lcalpha 0*255( lcalpha / DIGIT / "_" / "-"/ "*" / "/" )
            !b.is_empty() && b.len() <= 256 && b[0].is_ascii_lowercase() && b[1..].iter().all(|&c| rest(c))
        }
        Some((tenant, system)) => {
            // tenant-id = ( lcalpha / DIGIT ) 0*240( ... ); system-id = lcalpha 0*13( ... )
            let (t, s) = (tenant.as_bytes(), system.as_bytes());
            !t.is_empty()
                && t.len() <= 241
                && matches!(t[0], b'a'..=b'z' | b'0'..=b'9')
                && t[1..].iter().all(|&c| rest(c))
                && !s.is_empty()
                && s.len() <= 14
                && s[0].is_ascii_lowercase()
                && s[1..].iter().all(|&c| rest(c))
        }
    }
}

fn valid_tracestate_value(value: &str) -> bool {
    // value = 0*255(chr) nblk-chr; chr = %x20 / nblk-chr; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E
    // At least the one nblk-chr: `k=` is not a member (reliability review L4).
    let b = value.as_bytes();
    !b.is_empty()
        && b.len() <= 256
        && b.iter().all(|&c| matches!(c, 0x20..=0x7E) && c != b',' && c != b'=')
        && b.last().is_none_or(|&c| c != b' ')
}

impl<'a> StrictExtractor<'a> {
    /// Wraps `inner`, validating its `traceparent`, `tracestate` and `baggage` once.
    pub fn new(inner: &'a dyn Extractor) -> Self {
        Self::build(inner, true)
    }

    /// Like [`new`](Self::new), but `baggage` reads as absent and is never looked at: for trust
    /// boundaries and for links, where incoming baggage is not used.
    pub fn without_baggage(inner: &'a dyn Extractor) -> Self {
        Self::build(inner, false)
    }

    pub(super) fn build(inner: &'a dyn Extractor, baggage: bool) -> Self {
        let traceparent = inner.get(TRACEPARENT).filter(|v| is_valid_traceparent(v));
        let tracestate = if traceparent.is_some() {
            joined(inner, TRACESTATE, MAX_TRACESTATE_LEN * 8)
                .and_then(|joined| match joined {
                    Cow::Borrowed(s) => sanitize_tracestate(s),
                    Cow::Owned(s) => sanitize_tracestate(&s).map(|c| Cow::Owned(c.into_owned())),
                })
                // An empty list (the SDK's `TraceContextPropagator` writes `tracestate: ""` for
                // every context) is no list: nothing to parse downstream.
                .filter(|state| !state.is_empty())
        } else {
            None
        };
        let baggage = if baggage { joined(inner, BAGGAGE, MAX_BAGGAGE_LEN).map(cap_baggage) } else { None };
        StrictExtractor { inner, traceparent, tracestate, baggage }
    }

    /// Whether the carrier holds a valid W3C `traceparent`.
    pub fn has_valid_traceparent(&self) -> bool {
        self.traceparent.is_some()
    }

    /// Whether the carrier holds nothing a W3C propagator would read: no valid `traceparent`
    /// and no `baggage` (read).
    pub(super) fn is_empty_for_w3c(&self) -> bool {
        self.traceparent.is_none() && self.baggage.is_none()
    }
}

impl Extractor for StrictExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        if key.eq_ignore_ascii_case(TRACEPARENT) {
            self.traceparent
        } else if key.eq_ignore_ascii_case(TRACESTATE) {
            self.tracestate.as_deref()
        } else if key.eq_ignore_ascii_case(BAGGAGE) {
            self.baggage.as_deref()
        } else {
            self.inner.get(key)
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.inner
            .keys()
            .into_iter()
            .filter(|k| {
                if k.eq_ignore_ascii_case(TRACEPARENT) {
                    self.traceparent.is_some()
                } else if k.eq_ignore_ascii_case(TRACESTATE) {
                    self.tracestate.is_some()
                } else if k.eq_ignore_ascii_case(BAGGAGE) {
                    self.baggage.is_some()
                } else {
                    true
                }
            })
            .collect()
    }

    fn get_all(&self, key: &str) -> Option<Vec<&str>> {
        if key.eq_ignore_ascii_case(TRACEPARENT)
            || key.eq_ignore_ascii_case(TRACESTATE)
            || key.eq_ignore_ascii_case(BAGGAGE)
        {
            self.get(key).map(|v| vec![v])
        } else {
            self.inner.get_all(key)
        }
    }
}

/// Whether `value` is a valid W3C `traceparent` (Trace Context Level 2/3,
/// `spec/20-http_request_header_format.md`).
///
/// Rules: `version-traceid-parentid-flags`, every field lowercase hex; version is 2 characters
/// and not `ff`; trace id 32 characters, not all zero; parent id 16 characters, not all zero;
/// flags 2 characters (any value: `03`, the "random" bit, is accepted). Version `00` must be
/// exactly 55 characters; a higher version may carry more fields after a `-`. No surrounding
/// whitespace.
///
/// # Examples
///
/// ```
/// use otel_messaging::__private::is_valid_traceparent;
/// assert!(is_valid_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
/// assert!(!is_valid_traceparent("00-1-2-01"));
/// ```
pub fn is_valid_traceparent(value: &str) -> bool {
    let b = value.as_bytes();
    /// `LOWER_HEX[c]`: whether byte `c` is `0-9` or `a-f`.
    static LOWER_HEX: [bool; 256] = {
        let mut table = [false; 256];
        let mut c = 0;
        while c < 256 {
            table[c] = matches!(c as u8, b'0'..=b'9' | b'a'..=b'f');
            c += 1;
        }
        table
    };
    fn lower_hex(bytes: &[u8]) -> bool {
        // Branch-free over the whole field: a traceparent is checked on every delivered message.
        bytes.iter().fold(true, |ok, &c| ok & LOWER_HEX[usize::from(c)])
    }
    fn non_zero(bytes: &[u8]) -> bool {
        bytes.iter().any(|&c| c != b'0')
    }
    if b.len() < 55 {
        return false;
    }
    let (version, trace_id, parent_id, flags) = (&b[0..2], &b[3..35], &b[36..52], &b[53..55]);
    if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
        return false;
    }
    if !(lower_hex(version) && lower_hex(trace_id) && lower_hex(parent_id) && lower_hex(flags)) {
        return false;
    }
    if version == b"ff" || !non_zero(trace_id) || !non_zero(parent_id) {
        return false;
    }
    if version == b"00" { b.len() == 55 } else { b.len() == 55 || b[55] == b'-' }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// An extractor whose one key has several values.
    struct Repeated(Vec<&'static str>);

    impl Extractor for Repeated {
        fn get(&self, _: &str) -> Option<&str> {
            self.0.last().copied()
        }
        fn keys(&self) -> Vec<&str> {
            vec!["k"]
        }
        fn get_all(&self, _: &str) -> Option<Vec<&str>> {
            Some(self.0.clone())
        }
    }

    /// Repeated values are joined with `,` until `limit` bytes are passed, not further; a single
    /// value is borrowed, not copied.
    #[test]
    fn joined_stops_once_past_the_limit_and_borrows_a_single_value() {
        let values = Repeated(vec!["aaaaa", "bbbbb", "ccccc"]);
        assert_eq!(joined(&values, "k", 5).as_deref(), Some("aaaaa,bbbbb"), "5 is not past 5");
        assert_eq!(joined(&values, "k", 4).as_deref(), Some("aaaaa"));
        assert_eq!(joined(&values, "k", 100).as_deref(), Some("aaaaa,bbbbb,ccccc"));
        assert!(matches!(joined(&Repeated(vec!["a=1"]), "k", 100), Some(Cow::Borrowed("a=1"))));
        assert_eq!(joined(&HashMap::<String, String>::new(), "k", 100), None);
    }

    /// An empty `tracestate` (or one of empty members only) reads as absent, as the SDK reads it
    /// (an empty trace state either way).
    #[test]
    fn an_empty_tracestate_reads_as_absent() {
        for state in ["", " ", ",", " , "] {
            let carrier = HashMap::from([
                (
                    "traceparent".to_owned(),
                    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
                ),
                ("tracestate".to_owned(), state.to_owned()),
            ]);
            let strict = StrictExtractor::new(&carrier);
            assert_eq!(strict.get("tracestate"), None, "{state:?}");
            assert!(strict.has_valid_traceparent());
        }
    }

    /// Inputs longer than any valid `tracestate` could be without optional white space
    /// (32 × (256 + 1 + 256 + 2) = 16 480 bytes) are rejected unread; up to that, white space is
    /// allowed and trimmed.
    #[test]
    fn sanitize_tracestate_rejects_what_is_longer_than_32_full_members_unread() {
        let padded = |len: usize| format!("a=1{}", " ".repeat(len - 3));
        assert_eq!(sanitize_tracestate(&padded(16_480)).as_deref(), Some("a=1"));
        assert_eq!(sanitize_tracestate(&padded(16_481)), None);
        assert_eq!(sanitize_tracestate(&padded(20_000)), None);
    }

    /// Optional white space around members is removed (the value is rewritten, not borrowed).
    #[test]
    fn sanitize_tracestate_trims_members() {
        let trimmed = sanitize_tracestate(" a=1 ,\tb=2");
        assert_eq!(trimmed.as_deref(), Some("a=1,b=2"));
        assert!(matches!(trimmed, Some(Cow::Owned(_))));
        assert!(matches!(sanitize_tracestate("a=1,b=2"), Some(Cow::Borrowed(_))));
    }

    /// Over 512 bytes, members are dropped from the end until the value, commas included, fits:
    /// 32 members of 16 bytes are 543 bytes; 30 of them are 509.
    #[test]
    fn sanitize_tracestate_counts_the_commas_when_it_cuts() {
        let members: Vec<String> = (0..32).map(|i| format!("k{i:02}={}", "v".repeat(12))).collect();
        assert!(members.iter().all(|m| m.len() == 16));
        let joined = members.join(",");
        let cut = sanitize_tracestate(&joined).expect("valid");
        assert_eq!(cut, members[..30].join(","));
        assert_eq!(cut.len(), 509);
    }

    /// A `traceparent` and several `tracestate` values.
    struct Multi(Vec<String>);

    impl Extractor for Multi {
        fn get(&self, key: &str) -> Option<&str> {
            match key {
                TRACEPARENT => Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                TRACESTATE => self.0.last().map(String::as_str),
                _ => None,
            }
        }
        fn keys(&self) -> Vec<&str> {
            vec![TRACEPARENT, TRACESTATE]
        }
        fn get_all(&self, key: &str) -> Option<Vec<&str>> {
            match key {
                TRACEPARENT => self.get(key).map(|v| vec![v]),
                TRACESTATE => Some(self.0.iter().map(String::as_str).collect()),
                _ => None,
            }
        }
    }

    /// Repeated `tracestate` values are read up to 8 × 512 bytes before they are validated and
    /// cut: a short member after 602 bytes of long ones is still read (and kept, the long ones
    /// being dropped first), and so is one after a 102-byte value.
    #[test]
    fn repeated_tracestate_is_read_up_to_eight_times_its_limit() {
        let long = |k: &str| format!("{k}={}", "v".repeat(198));
        let first = [long("a"), long("b"), long("c")].join(",");
        assert_eq!(first.len(), 602);
        let carrier = Multi(vec![first, "d=1".to_owned()]);
        assert_eq!(StrictExtractor::new(&carrier).get(TRACESTATE), Some("d=1"));
        let carrier = Multi(vec![format!("a={}", "v".repeat(100)), "b=1".to_owned()]);
        assert_eq!(StrictExtractor::new(&carrier).get(TRACESTATE).map(|s| s.ends_with(",b=1")), Some(true));
    }

    /// Exactly 512 bytes once trimmed: nothing is cut, long members included.
    #[test]
    fn sanitize_tracestate_keeps_exactly_512_bytes() {
        let members = [
            format!("a={}", "x".repeat(198)),
            format!("b={}", "y".repeat(198)),
            format!("c={}", "z".repeat(108)),
        ];
        let joined = members.join(",");
        assert_eq!(joined.len(), MAX_TRACESTATE_LEN);
        let untidy = format!(" {joined}");
        assert_eq!(sanitize_tracestate(&untidy).as_deref(), Some(joined.as_str()));
    }

    /// A value of exactly the byte limit whose 64th `,` is its last byte: the empty 65th member
    /// goes with the cut (the members are counted over the limit plus one byte).
    #[test]
    fn cap_baggage_cuts_at_the_64th_comma_at_the_last_byte() {
        let member = "k=".to_owned() + &"v".repeat(8192 / 64 - 3);
        let value = format!("{},", vec![member.as_str(); 64].join(","));
        assert_eq!(value.len(), MAX_BAGGAGE_LEN);
        assert_eq!(cap_baggage(Cow::Borrowed(&value)).len(), MAX_BAGGAGE_LEN - 1);
    }
}
