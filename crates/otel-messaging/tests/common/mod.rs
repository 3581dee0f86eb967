//! What several test binaries of the core share (each binary compiles its own copy).

use otel_messaging::{MessagingAttributes, OperationType};

/// A Kafka send to the destination it holds: the smallest view a test can start an operation
/// with.
pub(crate) struct SendTo<'a>(pub(crate) &'a str);

impl MessagingAttributes for SendTo<'_> {
    fn system(&self) -> &'static str {
        "kafka"
    }
    fn operation_type(&self) -> OperationType {
        OperationType::Send
    }
    fn operation_name(&self) -> &'static str {
        "send"
    }
    fn destination_name(&self) -> Option<&str> {
        Some(self.0)
    }
}
