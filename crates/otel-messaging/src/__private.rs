//! Plumbing the workspace's broker crates share: not an API for applications.
//!
//! Rust has no visibility between crates of one workspace, so what the broker crates need from the
//! core and nobody else does is public here, hidden from the docs, and may change in any release
//! without notice. An application, or an adapter for a broker of its own, needs none of it: the
//! [`MessagingInstrumenter`](crate::MessagingInstrumenter), its
//! [`operation`](crate::MessagingInstrumenter::operation) builder and the
//! [`MessagingAttributes`](crate::MessagingAttributes) view are the API.
//!
//! What is here: the [`Handoff`] between a traced receive and the process span of the messages it
//! returned, and the [`DeliveredContext`] a receive read once for both; size- and count-bounded injection ([`fit_fields`], [`CollectedFields`],
//! [`inject_attributes`], [`BatchBudget`], …); the bounded copy of a metadata value onto a span
//! ([`bounded_value`]); the instrumentation scope of the broker crates' own metrics; and the strict
//! W3C validators with their limits, which the fuzz targets drive directly.

pub use crate::{
    attributes::{MAX_COPIED_VALUE_LEN, bounded_value},
    handoff::{Copies, Handoff},
    instrumenter::{DeliveredContext, MAX_KEPT_CONTEXT_BYTES, instrumentation_scope},
    propagation::bounded::{
        AttributeCarrier, BatchBudget, CollectedFields, EmptyExtractor, Field, fit_attributes, fit_fields,
        inject_attributes,
    },
    propagation::strict::{
        MAX_BAGGAGE_LEN, MAX_BAGGAGE_MEMBERS, MAX_TRACESTATE_LEN, MAX_TRACESTATE_MEMBERS, cap_baggage,
        is_valid_traceparent, sanitize_tracestate,
    },
};
