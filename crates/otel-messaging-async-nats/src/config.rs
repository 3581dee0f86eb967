//! [`NatsInstrumentation`]: the instrumenter, the server address and the consumer's queue group.

use std::sync::{Arc, OnceLock};

use opentelemetry::trace::Link;
use otel_messaging::{
    __private::{DeliveredContext, Handoff},
    MessagingInstrumenter,
};

/// Messages handed over by a traced fetch and not processed yet, at most (their delivery is
/// counted by the receive; older entries are forgotten and would be counted again, never lost).
const HANDOFF_CAPACITY: usize = 4096;

/// What a traced fetch keeps for a message (the entry itself says the delivery was counted): its
/// context as the fetch read it, when small, until its process span takes it; the link to its
/// creation context, until a settle that ends the delivery (`ack`, `nak`, `term`, `next`) takes
/// the entry.
#[derive(Debug, Default)]
pub(crate) struct Fetched {
    pub(crate) context: Option<DeliveredContext>,
    pub(crate) link: Option<Link>,
}

/// The instrumentation of one NATS connection: the instrumenter, the server address and, for
/// consumers, the queue group (`messaging.consumer.group.name`).
///
/// The `_traced` methods use the instrumentation [`new`](Self::new) returns; the `_traced_with` ones take an explicit
/// one.
///
/// # Examples
///
/// ```
/// use otel_messaging_async_nats::NatsInstrumentation;
///
/// let workers = NatsInstrumentation::from_url("nats://127.0.0.1:4222").with_queue_group("workers");
/// # let _ = workers;
/// ```
#[derive(Debug, Clone)]
pub struct NatsInstrumentation {
    pub(crate) instrumenter: MessagingInstrumenter,
    server: Option<(Arc<str>, Option<u16>)>,
    queue_group: Option<Arc<str>>,
    /// JetStream messages received by a traced fetch (by delivery: their reply subject), so
    /// their process span does not count the delivery again, with the context the fetch read.
    fetched: Arc<Handoff<Fetched>>,
}

impl Default for NatsInstrumentation {
    fn default() -> Self {
        Self::new()
    }
}

/// The one process-wide record of fetched deliveries: a message fetched through one
/// instrumentation and processed through another is still counted once (reliability review L11).
fn fetched() -> Arc<Handoff<Fetched>> {
    static FETCHED: OnceLock<Arc<Handoff<Fetched>>> = OnceLock::new();
    FETCHED.get_or_init(|| Arc::new(Handoff::new(HANDOFF_CAPACITY))).clone()
}

impl NatsInstrumentation {
    /// An instrumentation on [`MessagingInstrumenter::global`], without server address or queue
    /// group.
    pub fn new() -> Self {
        NatsInstrumentation {
            instrumenter: MessagingInstrumenter::global().clone(),
            server: None,
            queue_group: None,
            fetched: fetched(),
        }
    }

    /// The process-wide instrumentation the `_traced` methods use ([`new`](Self::new)).
    pub(crate) fn shared() -> &'static NatsInstrumentation {
        static GLOBAL: OnceLock<NatsInstrumentation> = OnceLock::new();
        GLOBAL.get_or_init(NatsInstrumentation::new)
    }

    /// An instrumentation whose `server.address` / `server.port` come from the first server of a
    /// NATS URL list (`nats://host:port`, `tls://…`, `host:port`, comma-separated; user info
    /// ignored; the port defaults to 4222).
    pub fn from_url(url: &str) -> Self {
        let first = url.split(',').next().unwrap_or_default().trim();
        let authority = first.split("://").last().unwrap_or_default();
        let authority =
            authority.rsplit('@').next().unwrap_or_default().split('/').next().unwrap_or_default();
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) if !host.ends_with(']') || host.starts_with('[') => {
                (host, port.parse().ok().or(Some(4222)))
            }
            _ => (authority, Some(4222)),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let server = (!host.is_empty()).then(|| (Arc::from(host), port));
        NatsInstrumentation { server, ..Self::new() }
    }

    /// Uses `instrumenter` (explicit providers and policies).
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

    /// The queue group of the subscription whose messages this instrumentation processes: becomes
    /// `messaging.consumer.group.name` on process spans (semconv v1.44: "the name of the consumer
    /// group"; NATS queue groups share a subject's messages like one).
    pub fn with_queue_group(mut self, group: impl Into<Arc<str>>) -> Self {
        self.queue_group = Some(group.into());
        self
    }

    pub(crate) fn server(&self) -> Option<(&str, Option<u16>)> {
        self.server.as_ref().map(|(host, port)| (&**host, *port))
    }

    pub(crate) fn queue_group(&self) -> Option<&str> {
        self.queue_group.as_deref()
    }

    pub(crate) fn fetched(&self) -> &Handoff<Fetched> {
        &self.fetched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_from_urls() {
        let server = |url: &str| NatsInstrumentation::from_url(url).server().map(|(h, p)| (h.to_owned(), p));
        assert_eq!(server("nats://127.0.0.1:4222"), Some(("127.0.0.1".into(), Some(4222))));
        assert_eq!(
            server("tls://user:pw@nats.example:7422,nats://b:1"),
            Some(("nats.example".into(), Some(7422)))
        );
        assert_eq!(server("demo.nats.io"), Some(("demo.nats.io".into(), Some(4222))));
        assert_eq!(server("nats://[::1]:4223"), Some(("::1".into(), Some(4223))));
        assert_eq!(server(""), None);
    }
}
