//! Retry and dead-letter lineage: a message re-published after a failed attempt (to a retry or
//! dead-letter destination, on any broker's native publish) carries, besides its own creation
//! context, the **original** creation context, the failed attempt's context and an attempt
//! counter, so that every span along the way can link back:
//!
//! * the re-publish's send span links the failed attempt and the original creation context;
//! * the process span of a re-published message links the original creation context and the
//!   failed attempt (besides its own creation context, the re-publish);
//! * both record `otel_messaging.message.retry.attempt` (1 = first retry).
//!
//! With the default process-parent policy and a re-publish from inside the failed handler, all of
//! it is one trace: the original request, each failed attempt, each re-publish and the final
//! handling (a dead-letter consumer) — links, not re-parenting, carry the lineage where traces
//! split (semconv: parent/child means temporal containment).
//!
//! The lineage travels in three carrier fields, written by [`Retry::inject`] with the broker
//! crate's injector (Kafka headers, AMQP headers, SQS message attributes, Redis stream fields):
//! [`ORIGINAL_TRACEPARENT`], [`FAILED_TRACEPARENT`] (W3C `traceparent` syntax) and
//! [`RETRY_ATTEMPT`] (decimal). Invalid values are ignored, like an invalid `traceparent`.
//!
//! [`Retry::of`] reads the failed message as your handler got it: on SQS, where a receive returns
//! only the message attributes it asks for, ask for `traceparent` and [`FIELDS`] (the traced
//! receive asks for them on its own for the spans' sake, but removes what you did not ask for).
//!
//! # Examples
//!
//! ```
//! use std::collections::HashMap;
//! use opentelemetry::Context;
//! use otel_messaging::retry::Retry;
//!
//! // In the failed handler: `failed` is the failed message's carrier, the current context the
//! // failed attempt's (its process span).
//! let failed: HashMap<String, String> = HashMap::from([(
//!     "traceparent".to_owned(),
//!     "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
//! )]);
//! let retry = Retry::of(&failed, &Context::current());
//! assert_eq!(retry.attempt(), 1);
//! let mut outgoing: HashMap<String, String> = HashMap::new();
//! retry.inject(&mut outgoing); // then the broker crate's traced publish of `outgoing`
//! assert_eq!(outgoing["otel-retry-attempt"], "1");
//! assert_eq!(outgoing["otel-original-traceparent"], failed["traceparent"]);
//! ```

use opentelemetry::{
    Context, KeyValue,
    propagation::{Extractor, Injector},
    trace::{Link, SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState},
};

use crate::{
    propagation::{TRACEPARENT, is_valid_traceparent},
    semconv,
};

/// Carrier field holding the original creation context (W3C `traceparent` syntax) of a
/// re-published message.
pub const ORIGINAL_TRACEPARENT: &str = "otel-original-traceparent";
/// Carrier field holding the failed attempt's context (W3C `traceparent` syntax).
pub const FAILED_TRACEPARENT: &str = "otel-failed-traceparent";
/// Carrier field holding the retry attempt (decimal; 1 = first retry).
pub const RETRY_ATTEMPT: &str = "otel-retry-attempt";
/// The three lineage fields, for brokers where a consumer must ask for fields by name (SQS
/// message attribute names).
pub const FIELDS: [&str; 3] = [ORIGINAL_TRACEPARENT, FAILED_TRACEPARENT, RETRY_ATTEMPT];

/// The lineage of a message about to be re-published after a failed attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry {
    original: Option<String>,
    failed: Option<String>,
    attempt: u32,
}

fn traceparent_of(sc: &SpanContext) -> Option<String> {
    sc.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            sc.trace_id(),
            sc.span_id(),
            sc.trace_flags().to_u8() & TraceFlags::SAMPLED.to_u8()
        )
    })
}

impl Retry {
    /// The lineage of a re-publish of `failed_message` (the failed message's carrier) after the
    /// attempt whose context is `failed_attempt` (in the failed handler: the current context, the
    /// process span's).
    ///
    /// The original creation context is the one `failed_message` already carries as
    /// [`ORIGINAL_TRACEPARENT`] (it was itself a retry), else its own `traceparent`; the attempt is
    /// its [`RETRY_ATTEMPT`] + 1, or 1. Fields that are missing or invalid are left out.
    pub fn of(failed_message: &dyn Extractor, failed_attempt: &Context) -> Retry {
        let valid =
            |key: &str| failed_message.get(key).filter(|v| is_valid_traceparent(v)).map(str::to_owned);
        let previous: u32 = failed_message.get(RETRY_ATTEMPT).and_then(|v| v.parse().ok()).unwrap_or(0);
        Retry {
            original: valid(ORIGINAL_TRACEPARENT).or_else(|| valid(TRACEPARENT)),
            failed: traceparent_of(failed_attempt.span().span_context()),
            attempt: previous.saturating_add(1),
        }
    }

    /// The retry attempt the re-published message is (1 = first retry).
    ///
    /// It is read from the failed message, which the producer wrote: do not trust it as a retry
    /// budget for messages that cross a trust boundary (a sender can set any `u32`); count
    /// deliveries the broker reports (`x-delivery-count`, `ApproximateReceiveCount`) instead.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Writes the lineage fields into the outgoing message's carrier (before the traced publish,
    /// which then links them).
    pub fn inject(&self, injector: &mut dyn Injector) {
        if let Some(original) = &self.original {
            injector.set(ORIGINAL_TRACEPARENT, original.clone());
        }
        if let Some(failed) = &self.failed {
            injector.set(FAILED_TRACEPARENT, failed.clone());
        }
        injector.set(RETRY_ATTEMPT, self.attempt.to_string());
    }
}

/// A remote span context from a valid W3C `traceparent` value.
fn span_context(value: &str) -> Option<SpanContext> {
    if !is_valid_traceparent(value) {
        return None;
    }
    let trace_id = TraceId::from_hex(&value[3..35]).ok()?;
    let span_id = SpanId::from_hex(&value[36..52]).ok()?;
    let flags = u8::from_str_radix(&value[53..55], 16).ok()? & TraceFlags::SAMPLED.to_u8();
    Some(SpanContext::new(trace_id, span_id, TraceFlags::new(flags), true, TraceState::NONE))
}

/// The lineage a message carries, read by the traced send and process operations: links to the
/// original creation context and the failed attempt (skipping any equal to `except`, the
/// operation's own parent or creation context, already linked), and the attempt attribute.
/// Reads one field when the message carries no lineage.
pub(crate) fn lineage(message: &dyn Extractor, except: Option<SpanId>) -> Option<(Vec<Link>, KeyValue)> {
    let attempt: u32 = message.get(RETRY_ATTEMPT)?.parse().ok()?;
    let mut links = Vec::with_capacity(2);
    for (field, role) in [(ORIGINAL_TRACEPARENT, "original"), (FAILED_TRACEPARENT, "failed_attempt")] {
        if let Some(sc) = message.get(field).and_then(span_context)
            && Some(sc.span_id()) != except
            && links.iter().all(|l: &Link| l.span_context.span_id() != sc.span_id())
        {
            links.push(Link::new(sc, vec![KeyValue::new(semconv::OTEL_MESSAGING_LINK_ROLE, role)], 0));
        }
    }
    Some((links, KeyValue::new(semconv::OTEL_MESSAGING_MESSAGE_RETRY_ATTEMPT, i64::from(attempt))))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_first_retry_keeps_the_message_context_as_original() {
        let failed = HashMap::from([(TRACEPARENT.to_owned(), TP.to_owned())]);
        let retry = Retry::of(&failed, &Context::new());
        assert_eq!(retry, Retry { original: Some(TP.to_owned()), failed: None, attempt: 1 });
    }

    #[test]
    fn a_retry_of_a_retry_keeps_the_first_original_and_counts_on() {
        let failed = HashMap::from([
            (TRACEPARENT.to_owned(), "00-11111111111111111111111111111111-2222222222222222-01".to_owned()),
            (ORIGINAL_TRACEPARENT.to_owned(), TP.to_owned()),
            (RETRY_ATTEMPT.to_owned(), "2".to_owned()),
        ]);
        let retry = Retry::of(&failed, &Context::new());
        assert_eq!((retry.original.as_deref(), retry.attempt()), (Some(TP), 3));
    }

    #[test]
    fn invalid_lineage_fields_are_ignored() {
        let failed = HashMap::from([
            (TRACEPARENT.to_owned(), "garbage".to_owned()),
            (RETRY_ATTEMPT.to_owned(), "-1".to_owned()),
        ]);
        assert_eq!(Retry::of(&failed, &Context::new()), Retry { original: None, failed: None, attempt: 1 });
        let message = HashMap::from([
            (RETRY_ATTEMPT.to_owned(), "x".to_owned()),
            (ORIGINAL_TRACEPARENT.to_owned(), TP.to_owned()),
        ]);
        assert!(lineage(&message, None).is_none(), "a non-numeric attempt is no lineage");
        let message = HashMap::from([
            (RETRY_ATTEMPT.to_owned(), "1".to_owned()),
            (
                ORIGINAL_TRACEPARENT.to_owned(),
                "00-00000000000000000000000000000000-00f067aa0ba902b7-01".to_owned(),
            ),
        ]);
        let (links, attempt) = lineage(&message, None).expect("lineage");
        assert!(links.is_empty());
        assert_eq!(attempt, KeyValue::new("otel_messaging.message.retry.attempt", 1_i64));
    }

    #[test]
    fn the_lineage_links_original_and_failed_attempt_once() {
        let failed_attempt = "00-4bf92f3577b34da6a3ce929d0e0e4736-1111111111111111-01";
        let message = HashMap::from([
            (RETRY_ATTEMPT.to_owned(), "1".to_owned()),
            (ORIGINAL_TRACEPARENT.to_owned(), TP.to_owned()),
            (FAILED_TRACEPARENT.to_owned(), failed_attempt.to_owned()),
        ]);
        let (links, _) = lineage(&message, None).expect("lineage");
        assert_eq!(links.len(), 2);
        let (links, _) =
            lineage(&message, Some(SpanId::from_hex("1111111111111111").unwrap())).expect("lineage");
        assert_eq!(links.len(), 1, "the parent is not linked twice");
    }

    /// The failed attempt is the current context's span, written in W3C syntax; only the sampled
    /// flag of a lineage traceparent is kept (found by `just mutants`).
    #[test]
    fn the_failed_attempt_is_the_current_span_and_flags_keep_sampled_only() {
        use opentelemetry::trace::{TraceContextExt as _, TraceState};
        let current = SpanContext::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("2222222222222222").unwrap(),
            TraceFlags::SAMPLED,
            false,
            TraceState::NONE,
        );
        let failed = HashMap::from([(TRACEPARENT.to_owned(), TP.to_owned())]);
        let retry = Retry::of(&failed, &Context::new().with_remote_span_context(current));
        assert_eq!(retry.failed.as_deref(), Some("00-4bf92f3577b34da6a3ce929d0e0e4736-2222222222222222-01"));
        let message = HashMap::from([
            (RETRY_ATTEMPT.to_owned(), "1".to_owned()),
            (ORIGINAL_TRACEPARENT.to_owned(), TP.replace("-01", "-03")),
        ]);
        let (links, _) = lineage(&message, None).expect("lineage");
        assert_eq!(links[0].span_context.trace_flags(), TraceFlags::SAMPLED, "03 reads as sampled only");
    }
}
