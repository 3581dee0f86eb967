//! [`SqsInstrumentation`]: an instrumenter plus the crate's options.
//!
//! Why a module beside the standard anatomy (as in the other broker crates): it holds the
//! per-client options shared by `producer.rs` and `consumer.rs`.

use std::sync::OnceLock;

use otel_messaging::MessagingInstrumenter;

/// The instrumentation of one SQS client: the instrumenter and the crate's options.
/// `server.address`/`server.port` and the queue name come from each call's queue URL.
#[derive(Debug, Clone)]
pub struct SqsInstrumentation {
    pub(crate) instrumenter: MessagingInstrumenter,
    create_spans: bool,
    empty_receive_spans: bool,
}

impl Default for SqsInstrumentation {
    fn default() -> Self {
        Self::global().clone()
    }
}

impl SqsInstrumentation {
    /// The instrumentation the plain `send_traced` methods use: the global default instrumenter.
    pub fn global() -> &'static SqsInstrumentation {
        static GLOBAL: OnceLock<SqsInstrumentation> = OnceLock::new();
        GLOBAL.get_or_init(|| SqsInstrumentation {
            instrumenter: MessagingInstrumenter::global().clone(),
            create_spans: true,
            empty_receive_spans: false,
        })
    }

    /// Uses `instrumenter` (explicit providers, policies) instead of the global default.
    pub fn with_instrumenter(mut self, instrumenter: MessagingInstrumenter) -> Self {
        self.instrumenter = instrumenter;
        self
    }

    /// Batch sends create one `create {queue}` PRODUCER span per entry, each entry carrying its own
    /// creation context, and a `send {queue}` CLIENT span linking them (semconv v1.44 RECOMMENDS
    /// this for batch APIs). Off: a single `send {queue}` PRODUCER span whose context goes into
    /// every entry.
    ///
    /// Defaults to `true`.
    pub fn with_create_spans(mut self, enabled: bool) -> Self {
        self.create_spans = enabled;
        self
    }

    /// Records a receive span even when a poll returned no message.
    ///
    /// Defaults to `false` (long-poll loops would otherwise emit a span every 20 s per worker).
    pub fn with_empty_receive_spans(mut self, enabled: bool) -> Self {
        self.empty_receive_spans = enabled;
        self
    }

    pub(crate) fn create_spans(&self) -> bool {
        self.create_spans
    }

    pub(crate) fn empty_receive_spans(&self) -> bool {
        self.empty_receive_spans
    }
}
