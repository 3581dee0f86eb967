#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod attributes;
mod carrier;
mod config;
mod consumer;
mod producer;

pub use attributes::{OPERATION_POLL, OPERATION_PROCESS, OPERATION_SEND, SYSTEM, error_type};
pub use carrier::{HeadersExtractor, HeadersInjector};
pub use config::KafkaInstrumentation;
pub use consumer::{MessageExt, StreamConsumerExt, TracedStream, process_batch_message};
pub use otel_messaging::TracedMessage;
pub use producer::{BaseProducerExt, FutureProducerExt, TracedDelivery, TracingProducerContext};
