#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod attributes;
mod carrier;
mod config;
mod consumer;
mod producer;

pub use attributes::{
    OPERATION_COMMIT, OPERATION_POLL, OPERATION_PROCESS, OPERATION_SEND, OPERATION_STORE_OFFSET, SYSTEM,
    error_type,
};
#[cfg(feature = "testing")]
pub use carrier::raw_headers;
pub use carrier::{HeadersExtractor, HeadersInjector, RawHeaders};
pub use config::{DEFAULT_MESSAGE_MAX_BYTES, KafkaInstrumentation};
pub use consumer::{ConsumerExt, KafkaMessage, MessageExt, StreamConsumerExt, TracedStream};
pub use otel_messaging::TracedMessage;
pub use producer::{BaseProducerExt, FutureProducerExt, TracedDelivery, TracingProducerContext};
