#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod attributes;
mod carrier;
mod config;
mod consumer;
mod producer;

pub use carrier::{FieldTableExtractor, FieldTableInjector};
pub use config::AmqpInstrumentation;
pub use consumer::{ConsumerExt, DeliveryExt, TracedConsumer};
// What a user of this crate configures, reachable without a second dependency (the process-parent
// policy, the instrumenter and its builder, the enricher).
pub use otel_messaging::semconv::OTEL_MESSAGING_MESSAGE_DELIVERY_COUNT;
pub use otel_messaging::{
    DestinationTemplates, MessagingInstrumenter, MessagingInstrumenterBuilder, ProcessParent, SetGlobalError,
    SpanEnricher, SpanStart, TracedMessage,
};
pub use producer::{ChannelExt, TracedPublisherConfirm};

/// Seals the extension traits: each is implemented in this crate for the client types it
/// instruments, and nowhere else, so methods can be added to them without a breaking change.
/// `Sealed<M>` is implemented for exactly the types that implement the trait `M` names.
mod sealed {
    pub trait Sealed<Marker> {}
    #[derive(Debug)]
    pub enum ChannelExt {}
    #[derive(Debug)]
    pub enum ConsumerExt {}
    #[derive(Debug)]
    pub enum DeliveryExt {}
}
