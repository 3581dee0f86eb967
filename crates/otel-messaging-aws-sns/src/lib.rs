#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod attributes;
mod carrier;
mod config;
#[cfg(feature = "lambda")]
#[cfg_attr(docsrs, doc(cfg(feature = "lambda")))]
pub mod lambda;
mod producer;

pub use carrier::{MessageAttributesExtractor, MessageAttributesInjector};
pub use config::SnsInstrumentation;
// What a user of this crate configures, reachable without a second dependency (the instrumenter
// and its builder, the enricher).
pub use otel_messaging::{
    DestinationTemplates, MessagingInstrumenter, MessagingInstrumenterBuilder, SetGlobalError, SpanEnricher,
    SpanStart,
};
pub use producer::{PublishBatchFluentBuilderExt, PublishFluentBuilderExt};

/// Seals the extension traits: each is implemented in this crate for the client types it
/// instruments, and nowhere else, so methods can be added to them without a breaking change.
/// `Sealed<M>` is implemented for exactly the types that implement the trait `M` names.
mod sealed {
    pub trait Sealed<Marker> {}
    #[derive(Debug)]
    pub enum PublishBatchFluentBuilderExt {}
    #[derive(Debug)]
    pub enum PublishFluentBuilderExt {}
}
