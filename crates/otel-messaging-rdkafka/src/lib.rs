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
pub use consumer::{MessageExt, StreamConsumerExt, TracedMessage, TracedStream, process_batch_message};
pub use producer::{BaseProducerExt, FutureProducerExt, TracedDelivery, TracingProducerContext};
