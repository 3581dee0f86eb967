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
pub use otel_messaging::TracedMessage;
pub use otel_messaging::semconv::OTEL_MESSAGING_MESSAGE_DELIVERY_COUNT;
pub use producer::{OPERATION_SEND, QueueExt, StreamsExt};
