//! [`SqsInstrumentation`]: an instrumenter plus the crate's options.
//!
//! Why a module beside the standard anatomy (as in the other broker crates): it holds the
//! per-client options shared by `producer.rs` and `consumer.rs`.

use std::sync::{Arc, OnceLock};

use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};
use opentelemetry::trace::Link;
use otel_messaging::{
    __private::{DeliveredContext, Handoff},
    MessagingInstrumenter,
};

/// SQS's default (and historical maximum) message size and batch total: 262 144 bytes (256 KiB).
pub(crate) const DEFAULT_MAX_MESSAGE_BYTES: usize = 262_144;

/// Most received messages whose removed attributes are kept for their process span (see
/// [`SqsInstrumentation`]'s receive notes); the oldest are forgotten first.
const STASH_CAPACITY: usize = 10_000;

/// Most received messages whose creation context is kept for the link of their delete span: the
/// messages between a receive and their delete (SQS returns at most 10 per receive); a message
/// deleted natively leaves its entry until 1 000 newer ones push it out.
const SETTLE_CAPACITY: usize = 1_000;

/// What a traced receive learned about one message: its queue, the message attributes and
/// system attributes it removed because the caller did not ask for them, and the message's
/// context as the receive read it (for its process span, which then does not read it again;
/// kept only when small, `DeliveredContext::keepable`).
#[derive(Debug, Default)]
pub(crate) struct Removed {
    pub(crate) queue_url: Option<Arc<str>>,
    pub(crate) attributes: Vec<(String, MessageAttributeValue)>,
    pub(crate) system: Vec<(MessageSystemAttributeName, String)>,
    pub(crate) context: Option<DeliveredContext>,
}

impl Removed {
    /// The system attribute `name` of `message` as received: the message's own, else the one
    /// removed from it.
    pub(crate) fn system<'a>(
        &'a self,
        message: &'a Message,
        name: &MessageSystemAttributeName,
    ) -> Option<&'a str> {
        message
            .attributes
            .as_ref()
            .and_then(|a| a.get(name))
            .or_else(|| self.system.iter().find(|(n, _)| n == name).map(|(_, v)| v))
            .map(String::as_str)
    }
}

/// The instrumentation of one SQS client: the instrumenter and the crate's options.
/// `server.address`/`server.port` and the queue name come from each call's queue URL.
#[derive(Debug, Clone)]
pub struct SqsInstrumentation {
    pub(crate) instrumenter: MessagingInstrumenter,
    create_spans: bool,
    empty_receive_spans: bool,
    max_message_bytes: usize,
    stash: Arc<Handoff<Removed>>,
    /// The links to received messages' creation contexts, by receipt handle, for their delete
    /// spans wherever the delete is called.
    settles: Arc<Handoff<Link>>,
    queue_url: Option<Arc<str>>,
}

impl Default for SqsInstrumentation {
    fn default() -> Self {
        Self::new()
    }
}

impl SqsInstrumentation {
    /// The instrumentation the plain `*_traced` methods use: the process-wide default instrumenter
    /// ([`MessagingInstrumenter::global`], which follows
    /// [`MessagingInstrumenter::set_global`]), every option at its default, no server facts. Every
    /// value built from it shares the crate's process-wide records of handed-over messages, so a
    /// message received through one and processed or settled through another is still recognised.
    pub fn new() -> Self {
        Self::shared().clone()
    }

    /// The instrumentation the plain `send_traced` methods use: the global default instrumenter.
    pub(crate) fn shared() -> &'static SqsInstrumentation {
        static GLOBAL: OnceLock<SqsInstrumentation> = OnceLock::new();
        GLOBAL.get_or_init(|| SqsInstrumentation {
            instrumenter: MessagingInstrumenter::global().clone(),
            create_spans: true,
            empty_receive_spans: false,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            stash: Arc::new(Handoff::new(STASH_CAPACITY)),
            settles: Arc::new(Handoff::new(SETTLE_CAPACITY)),
            queue_url: None,
        })
    }

    /// Uses `instrumenter` (explicit providers, policies) instead of the global default.
    pub fn with_instrumenter(mut self, instrumenter: MessagingInstrumenter) -> Self {
        self.instrumenter = instrumenter;
        self
    }

    /// A copy whose process spans take their parent by `policy` (the process-parent policies of
    /// semconv v1.44 messaging-spans.md, "Consumer spans": see [`ProcessParent`](otel_messaging::ProcessParent)),
    /// for one consumer or one message —
    /// `message.process_traced_with(&tracing.with_process_parent(ProcessParent::NewRoot), handler)`
    /// — while the others keep the instrumentation's own. Cheap (reference counts); the copy shares
    /// everything else with `self`, what traced receives remember for their messages included.
    pub fn with_process_parent(&self, policy: otel_messaging::ProcessParent) -> Self {
        let mut copy = self.clone();
        copy.instrumenter = self.instrumenter.with_process_parent(policy);
        copy
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

    /// The queue's largest message, and the largest batch total, in bytes (SQS counts the body
    /// plus each message attribute's name, data type and value): the context written into a
    /// message is cut down (`baggage`, then `tracestate`, then all of it, recording
    /// `otel_messaging.context.injected = false`) so that a message or batch that fits this
    /// limit uninstrumented still fits it. Set it to the queue's `MaximumMessageSize` when that is
    /// larger.
    ///
    /// Defaults to 262 144 bytes (256 KiB, SQS's default maximum message size).
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// The limit set by [`with_max_message_bytes`](Self::with_max_message_bytes), in bytes.
    pub(crate) fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// The queue URL of messages processed without the traced receive that returned them (an SQS
    /// message does not name its queue). Messages returned by a traced receive carry their own
    /// (kept by receipt handle for the last 10 000 unprocessed messages).
    ///
    /// Defaults to none: such messages' process spans have no destination.
    pub fn with_queue_url(mut self, queue_url: &str) -> Self {
        self.queue_url = Some(Arc::from(queue_url));
        self
    }

    pub(crate) fn stash(&self) -> &Handoff<Removed> {
        &self.stash
    }

    pub(crate) fn settles(&self) -> &Handoff<Link> {
        &self.settles
    }

    pub(crate) fn default_queue_url(&self) -> Option<Arc<str>> {
        self.queue_url.clone()
    }

    pub(crate) fn create_spans(&self) -> bool {
        self.create_spans
    }

    pub(crate) fn empty_receive_spans(&self) -> bool {
        self.empty_receive_spans
    }
}
