//! Operation types and the span-kind table of semconv v1.44 (`messaging-spans.md`,
//! "Operation types" and "Span kind").

use opentelemetry::trace::SpanKind;

/// The kind of messaging operation a span describes (`messaging.operation.type`).
///
/// Source: semconv v1.44 `docs/messaging/messaging-spans.md`, "Operation types".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OperationType {
    /// A message is created or passed to a client library for sending; one span per message,
    /// used as the creation context in batch sends.
    Create,
    /// One or more messages are provided for sending to an intermediary.
    Send,
    /// One or more messages are requested by a consumer (pull-based).
    Receive,
    /// One or more messages are processed by a consumer (a handler).
    Process,
    /// One or more messages are settled (ack, nack, reject, delete, commit).
    Settle,
}

impl OperationType {
    /// The `messaging.operation.type` value: `create`, `send`, `receive`, `process` or `settle`.
    pub const fn as_str(self) -> &'static str {
        match self {
            OperationType::Create => "create",
            OperationType::Send => "send",
            OperationType::Receive => "receive",
            OperationType::Process => "process",
            OperationType::Settle => "settle",
        }
    }

    /// The span kind for this operation, per the semconv v1.44 table ("Span kind"):
    /// create → `Producer`; send → `Producer` when the send span's own context is the
    /// creation context injected into the message(s), otherwise `Client`; receive → `Client`;
    /// process → `Consumer`; settle → `Client`.
    ///
    /// `send_is_creation_context` only matters for [`OperationType::Send`].
    pub(crate) const fn span_kind(self, send_is_creation_context: bool) -> SpanKind {
        match self {
            OperationType::Create => SpanKind::Producer,
            OperationType::Send if send_is_creation_context => SpanKind::Producer,
            OperationType::Send => SpanKind::Client,
            OperationType::Receive | OperationType::Settle => SpanKind::Client,
            OperationType::Process => SpanKind::Consumer,
        }
    }
}

impl std::fmt::Display for OperationType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_kind_table_matches_semconv() {
        assert_eq!(OperationType::Create.span_kind(false), SpanKind::Producer);
        assert_eq!(OperationType::Send.span_kind(true), SpanKind::Producer);
        assert_eq!(OperationType::Send.span_kind(false), SpanKind::Client);
        assert_eq!(OperationType::Receive.span_kind(true), SpanKind::Client);
        assert_eq!(OperationType::Process.span_kind(true), SpanKind::Consumer);
        assert_eq!(OperationType::Settle.span_kind(true), SpanKind::Client);
    }

    #[test]
    fn operation_type_values() {
        let all = [
            OperationType::Create,
            OperationType::Send,
            OperationType::Receive,
            OperationType::Process,
            OperationType::Settle,
        ];
        let names: Vec<_> = all.iter().map(|o| o.as_str()).collect();
        assert_eq!(names, ["create", "send", "receive", "process", "settle"]);
    }
}
