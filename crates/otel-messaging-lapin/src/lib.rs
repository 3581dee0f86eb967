#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod attributes;
mod carrier;
mod config;
mod consumer;
mod producer;

pub use attributes::{
    ERROR_TYPE_NACK, OPERATION_PROCESS, OPERATION_PUBLISH, OPERATION_RECEIVE,
    OTEL_MESSAGING_RABBITMQ_DEATH_COUNT, OTEL_MESSAGING_RABBITMQ_DEATH_QUEUE,
    OTEL_MESSAGING_RABBITMQ_DEATH_REASON, OTEL_MESSAGING_RABBITMQ_REDELIVERED, SENT_TIME_HEADER, SYSTEM,
    consumer_destination, error_type, publish_destination,
};
pub use carrier::{FieldTableExtractor, FieldTableInjector};
pub use config::AmqpInstrumentation;
pub use consumer::{ConsumerExt, DeliveryExt, TracedConsumer};
// What a user of this crate configures, reachable without a second dependency (the process-parent
// policy, the instrumenter and its builder, the enricher).
pub use otel_messaging::semconv::OTEL_MESSAGING_MESSAGE_DELIVERY_COUNT;
pub use otel_messaging::{
    MessagingInstrumenter, MessagingInstrumenterBuilder, ProcessParent, SetGlobalError, SpanEnricher,
    SpanStart, TracedMessage,
};
pub use producer::{ChannelExt, TracedPublisherConfirm};
