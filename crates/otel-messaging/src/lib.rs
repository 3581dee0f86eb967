#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod attributes;
mod instrumenter;
mod metrics;
mod operation;
pub mod propagation;
pub mod semconv;
#[cfg(feature = "testing")]
#[cfg_attr(docsrs, doc(cfg(feature = "testing")))]
pub mod testing;

pub use attributes::MessagingAttributes;
pub use instrumenter::{
    MessagingInstrumenter, MessagingInstrumenterBuilder, Operation, SCOPE_NAME, TracedMessage, span_name,
};
pub use operation::OperationType;
pub use propagation::ProcessParent;
