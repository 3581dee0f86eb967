#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod attributes;
mod carrier;
mod config;
mod consumer;
mod producer;

pub use attributes::{OPERATION_PROCESS, OPERATION_PUBLISH, OPERATION_RECEIVE, SYSTEM, error_type};
pub use carrier::{HeaderMapExtractor, HeaderMapInjector};
pub use config::NatsInstrumentation;
pub use consumer::{JetStreamMessageExt, MessageExt, PullConsumerExt, SubscriberExt, TracedSubscriber};
// What a user of this crate configures, reachable without a second dependency (the process-parent
// policy, the instrumenter and its builder, the enricher).
pub use otel_messaging::{
    MessagingInstrumenter, MessagingInstrumenterBuilder, ProcessParent, SetGlobalError, SpanEnricher,
    SpanStart, TracedMessage, semconv::OTEL_MESSAGING_MESSAGE_DELIVERY_COUNT,
};
pub use producer::{ClientExt, JetStreamExt, TracedPublishAck};
