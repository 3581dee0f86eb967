#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

// Plumbing the broker crates share (hidden from the docs: not an API for applications).
#[doc(hidden)]
pub mod __private;
mod attributes;
mod handoff;
mod instrumenter;
mod metrics;
mod operation;
pub mod propagation;
pub mod retry;
pub mod semconv;
mod template;
/// Guides (documentation only). Why a module: docs.rs renders long-form guides as module pages.
pub mod docs {
    #[doc = include_str!("docs/job_frameworks.md")]
    pub mod job_frameworks {}
}
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;
#[cfg(feature = "tracing")]
#[cfg_attr(docsrs, doc(cfg(feature = "tracing")))]
mod tracing_bridge;

pub use attributes::MessagingAttributes;
pub use instrumenter::{
    MessagingInstrumenter, MessagingInstrumenterBuilder, Operation, OperationBuilder, SCOPE_NAME,
    SetGlobalError, SpanEnricher, SpanStart, TracedMessage,
};
pub use operation::OperationType;
pub use propagation::ProcessParent;
pub use template::DestinationTemplates;

/// The context the `_traced` sugar of the broker crates takes as parent: with feature `tracing`, the
/// current `tracing::Span`'s OpenTelemetry context when it has a valid span; otherwise (and without
/// the feature) [`opentelemetry::Context::current`].
pub fn current_context() -> opentelemetry::Context {
    #[cfg(feature = "tracing")]
    {
        tracing_bridge::current_context()
    }
    #[cfg(not(feature = "tracing"))]
    {
        opentelemetry::Context::current()
    }
}
