#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod attributes;
mod carrier;
mod config;
mod consumer;
#[cfg(feature = "lambda")]
#[cfg_attr(docsrs, doc(cfg(feature = "lambda")))]
pub mod lambda;
mod producer;

pub use carrier::{MessageAttributesExtractor, MessageAttributesInjector, xray_to_traceparent};
pub use config::SqsInstrumentation;
pub use consumer::{
    DeleteMessageBatchFluentBuilderExt, DeleteMessageFluentBuilderExt, MessageExt,
    ReceiveMessageFluentBuilderExt,
};
// What a user of this crate configures, reachable without a second dependency (the process-parent
// policy, the instrumenter and its builder, the enricher).
pub use otel_messaging::semconv::OTEL_MESSAGING_MESSAGE_DELIVERY_COUNT;
pub use otel_messaging::{
    DestinationTemplates, MessagingInstrumenter, MessagingInstrumenterBuilder, ProcessParent, SetGlobalError,
    SpanEnricher, SpanStart, TracedMessage,
};
pub use producer::{SendMessageBatchFluentBuilderExt, SendMessageFluentBuilderExt};

/// Seals the extension traits: each is implemented in this crate for the client types it
/// instruments, and nowhere else, so methods can be added to them without a breaking change.
/// `Sealed<M>` is implemented for exactly the types that implement the trait `M` names.
mod sealed {
    pub trait Sealed<Marker> {}
    #[derive(Debug)]
    pub enum DeleteMessageBatchFluentBuilderExt {}
    #[derive(Debug)]
    pub enum DeleteMessageFluentBuilderExt {}
    #[derive(Debug)]
    pub enum MessageExt {}
    #[derive(Debug)]
    pub enum ReceiveMessageFluentBuilderExt {}
    #[derive(Debug)]
    pub enum SendMessageBatchFluentBuilderExt {}
    #[derive(Debug)]
    pub enum SendMessageFluentBuilderExt {}
}
