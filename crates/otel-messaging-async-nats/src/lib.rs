#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod attributes;
mod carrier;
mod config;
mod consumer;
mod producer;

pub use carrier::{HeaderMapExtractor, HeaderMapInjector};
pub use config::NatsInstrumentation;
pub use consumer::{JetStreamMessageExt, MessageExt, PullConsumerExt, SubscriberExt, TracedSubscriber};
// What a user of this crate configures, reachable without a second dependency (the process-parent
// policy, the instrumenter and its builder, the enricher).
pub use otel_messaging::{
    DestinationTemplates, MessagingInstrumenter, MessagingInstrumenterBuilder, ProcessParent, SetGlobalError,
    SpanEnricher, SpanStart, TracedMessage, semconv::OTEL_MESSAGING_MESSAGE_DELIVERY_COUNT,
};
pub use producer::{ClientExt, JetStreamExt, TracedPublishAck};

/// Seals the extension traits: each is implemented in this crate for the client types it
/// instruments, and nowhere else, so methods can be added to them without a breaking change.
/// `Sealed<M>` is implemented for exactly the types that implement the trait `M` names.
mod sealed {
    pub trait Sealed<Marker> {}
    #[derive(Debug)]
    pub enum ClientExt {}
    #[derive(Debug)]
    pub enum JetStreamExt {}
    #[derive(Debug)]
    pub enum JetStreamMessageExt {}
    #[derive(Debug)]
    pub enum MessageExt {}
    #[derive(Debug)]
    pub enum NatsError {}
    #[derive(Debug)]
    pub enum PullConsumerExt {}
    #[derive(Debug)]
    pub enum SubscriberExt {}
}
