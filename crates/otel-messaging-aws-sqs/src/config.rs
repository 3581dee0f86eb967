//! [`SqsInstrumentation`]: an instrumenter plus the crate's options.
//!
//! Why a module beside the standard anatomy (as in the other broker crates): it holds the
//! per-client options shared by `producer.rs` and `consumer.rs`.

use std::{
    collections::{HashMap, VecDeque},
    sync::{Arc, Mutex, OnceLock},
};

use aws_sdk_sqs::types::{Message, MessageAttributeValue, MessageSystemAttributeName};
use otel_messaging::MessagingInstrumenter;

/// SQS's default (and historical maximum) message size and batch total: 262 144 bytes (256 KiB).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 262_144;

/// Most received messages whose removed attributes are kept for their process span (see
/// [`SqsInstrumentation`]'s receive notes); the oldest are forgotten first.
const STASH_CAPACITY: usize = 10_000;

/// What a traced receive removed from one message: message attributes and system attributes the
/// caller did not ask for.
#[derive(Debug, Default)]
pub(crate) struct Removed {
    pub(crate) attributes: Vec<(String, MessageAttributeValue)>,
    pub(crate) system: Vec<(MessageSystemAttributeName, String)>,
}

impl Removed {
    /// Puts the removed attributes back into `message`.
    pub(crate) fn restore(&self, message: &mut Message) {
        if !self.attributes.is_empty() {
            let attributes = message.message_attributes.get_or_insert_with(HashMap::new);
            attributes.extend(self.attributes.iter().cloned());
        }
        if !self.system.is_empty() {
            let system = message.attributes.get_or_insert_with(HashMap::new);
            system.extend(self.system.iter().cloned());
        }
    }

    /// Removes them from `message` again (and the fields they alone made `Some`).
    pub(crate) fn strip(&self, message: &mut Message) {
        if let Some(attributes) = &mut message.message_attributes {
            for (name, _) in &self.attributes {
                attributes.remove(name);
            }
            if attributes.is_empty() {
                message.message_attributes = None;
                message.md5_of_message_attributes = None;
            }
        }
        if let Some(system) = &mut message.attributes {
            for (name, _) in &self.system {
                system.remove(name);
            }
            if system.is_empty() {
                message.attributes = None;
            }
        }
    }
}

/// Removed attributes of received messages, by receipt handle, until their process span reads them.
#[derive(Default)]
pub(crate) struct Stash {
    entries: HashMap<String, Removed>,
    order: VecDeque<String>,
}

impl std::fmt::Debug for Stash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stash").field("messages", &self.entries.len()).finish()
    }
}

impl Stash {
    pub(crate) fn put(&mut self, receipt: String, removed: Removed) {
        if self.entries.len() >= STASH_CAPACITY
            && let Some(oldest) = self.order.pop_front()
        {
            self.entries.remove(&oldest);
        }
        self.order.push_back(receipt.clone());
        self.entries.insert(receipt, removed);
    }

    pub(crate) fn take(&mut self, receipt: &str) -> Option<Removed> {
        let removed = self.entries.remove(receipt)?;
        if let Some(at) = self.order.iter().position(|r| r == receipt) {
            self.order.remove(at);
        }
        Some(removed)
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
    stash: Arc<Mutex<Stash>>,
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
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            stash: Arc::default(),
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

    /// The queue's largest message, and the largest batch total, in bytes (SQS counts the body
    /// plus each message attribute's name, data type and value): the context written into a
    /// message is cut down (`baggage`, then `tracestate`, then all of it, recording
    /// `otel_messaging.context.injected = false`) so that a message or batch that fits this
    /// limit uninstrumented still fits it. Set it to the queue's `MaximumMessageSize` when that is
    /// larger.
    ///
    /// Defaults to [`DEFAULT_MAX_MESSAGE_BYTES`] (262 144).
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// The limit set by [`with_max_message_bytes`](Self::with_max_message_bytes), in bytes.
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    pub(crate) fn stash(&self) -> std::sync::MutexGuard<'_, Stash> {
        self.stash.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn create_spans(&self) -> bool {
        self.create_spans
    }

    pub(crate) fn empty_receive_spans(&self) -> bool {
        self.empty_receive_spans
    }
}
