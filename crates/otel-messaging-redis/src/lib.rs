#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod attributes;
mod carrier;
mod config;
mod consumer;
pub mod envelope;
mod producer;

pub use attributes::{SYSTEM, error_type};
pub use carrier::{FieldsInjector, StreamFieldsExtractor};
pub use config::RedisInstrumentation;
pub use consumer::{
    MsgExt, OPERATION_ACK, OPERATION_CLAIM, OPERATION_PROCESS, OPERATION_RECEIVE, QueueConsumerExt,
    QueueMessage, StreamEntryExt, StreamsConsumerExt,
};
// What a user of this crate configures, reachable without a second dependency (the process-parent
// policy, the instrumenter and its builder, the enricher).
pub use otel_messaging::semconv::OTEL_MESSAGING_MESSAGE_DELIVERY_COUNT;
pub use otel_messaging::{
    MessagingInstrumenter, MessagingInstrumenterBuilder, ProcessParent, SetGlobalError, SpanEnricher,
    SpanStart, TracedMessage,
};
pub use producer::{OPERATION_SEND, QueueExt, StreamsExt};
