//! [`AmqpInstrumentation`]: an instrumenter plus the facts of one AMQP connection.
//!
//! Why a module beside the standard anatomy (as in the Kafka crate): lapin channels do not expose
//! the broker address they are connected to, yet semconv wants `server.address`/`server.port` on
//! every span; this type reads them once from the AMQP URI and holds the per-connection options
//! shared by `producer.rs` and `consumer.rs`.

use std::sync::{Arc, OnceLock};

use lapin::message::Delivery;
use opentelemetry::trace::Link;
use otel_messaging::{
    __private::{Copies, DeliveredContext, Handoff},
    MessagingInstrumenter,
};

/// The instrumentation of one AMQP connection: the instrumenter, the broker address from the AMQP
/// URI, and the crate's options.
///
/// # Examples
///
/// ```
/// use otel_messaging_lapin::{AmqpInstrumentation, ProcessParent};
///
/// // Every span through it says `server.address = rabbit-1`, `server.port = 5672`.
/// let tracing = AmqpInstrumentation::from_uri("amqp://guest:guest@rabbit-1:5672/%2f")
///     .with_process_parent(ProcessParent::Link);
/// # let _ = tracing;
/// ```
#[derive(Debug, Clone)]
pub struct AmqpInstrumentation {
    pub(crate) instrumenter: MessagingInstrumenter,
    server: Option<(Arc<str>, Option<u16>)>,
    settle_spans: bool,
    sent_time_header: bool,
    /// The connection's negotiated `frame_max` (bytes).
    frame_max: u32,
    /// The queue of deliveries handed over by a traced consumer or `basic_get` (and whether the
    /// traced `basic_get` counted it already), until settled.
    handoff: Arc<Handoff<Copies<Handed>>>,
    /// The queue of deliveries the handoff does not know.
    queue: Option<Arc<str>>,
}

/// RabbitMQ's default `frame_max` (bytes), used until `AmqpInstrumentation::with_frame_max`.
pub(crate) const DEFAULT_FRAME_MAX: u32 = 131_072;

/// What a traced consumer or `basic_get` keeps for a delivery it handed over.
#[derive(Debug, Clone)]
pub(crate) struct Handed {
    /// The queue it came from.
    pub(crate) queue: Arc<str>,
    /// Whether a traced `basic_get` counted it (its process span must not count it again).
    pub(crate) received: bool,
    /// Its context as `basic_get_traced` read it, when small (`DeliveredContext::keepable`): its
    /// process span does not read it again.
    pub(crate) context: Option<DeliveredContext>,
    /// The link to its creation context, for its settle span (which then does not read it again).
    pub(crate) link: Option<Link>,
}

/// Most deliveries whose queue is kept between their hand-over and their settlement.
const HANDOFF_CAPACITY: usize = 10_000;

/// The handoff key of a delivery: its delivery tag, exchange, routing key, body length and a
/// hash of its body (up to the first 4 KiB). A delivery does not name its channel and tags restart
/// at 1 on every channel, so the tag alone would match a stale entry (a delivery settled natively)
/// to another channel's delivery; a stale entry now matches only the same message by the same
/// route. Copies on several channels (a fanout to two queues) share the key and are told apart by
/// [`delivery_address`].
fn delivery_key(delivery: &Delivery) -> String {
    use std::hash::Hasher as _;
    let mut hasher = rustc_hash::FxHasher::default();
    hasher.write(&delivery.data[..delivery.data.len().min(4096)]);
    format!(
        "{}\0{}\0{}\0{}\0{:016x}",
        delivery.delivery_tag,
        delivery.exchange.as_str(),
        delivery.routing_key.as_str(),
        delivery.data.len(),
        hasher.finish()
    )
}

/// The address of `delivery`'s body buffer, which stays put while the delivery moves and tells
/// apart copies of one message delivered on two channels; a clone has another (and finds the
/// oldest copy's queue).
fn delivery_address(delivery: &Delivery) -> usize {
    delivery.data.as_ptr() as usize
}

impl Default for AmqpInstrumentation {
    fn default() -> Self {
        Self::new()
    }
}

impl AmqpInstrumentation {
    /// The instrumentation the plain `*_traced` methods use: the process-wide default instrumenter
    /// ([`MessagingInstrumenter::global`], which follows
    /// [`MessagingInstrumenter::set_global`]), every option at its default, no server facts. Every
    /// value built from it shares the crate's process-wide records of handed-over messages, so a
    /// message received through one and processed or settled through another is still recognised.
    pub fn new() -> Self {
        Self::shared().clone()
    }

    /// Facts read from an AMQP URI (`amqp[s]://user:pass@host:port/vhost`): `server.address` and
    /// `server.port` (5672, or 5671 for `amqps`, when the URI has none). Uses the global default
    /// instrumenter until [`with_instrumenter`](Self::with_instrumenter).
    pub fn from_uri(uri: &str) -> Self {
        AmqpInstrumentation { server: parse_uri(uri), ..Self::shared().clone() }
    }

    /// The instrumentation the plain `*_traced` methods use: the global default instrumenter,
    /// no broker address.
    pub(crate) fn shared() -> &'static AmqpInstrumentation {
        static GLOBAL: OnceLock<AmqpInstrumentation> = OnceLock::new();
        GLOBAL.get_or_init(|| AmqpInstrumentation {
            instrumenter: MessagingInstrumenter::global().clone(),
            server: None,
            settle_spans: true,
            sent_time_header: true,
            frame_max: DEFAULT_FRAME_MAX,
            handoff: Arc::new(Handoff::new(HANDOFF_CAPACITY)),
            queue: None,
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

    /// Records `ack`/`nack`/`reject` as settle spans (CLIENT).
    ///
    /// Defaults to `true`, as the Java agent's current (stable-preview) RabbitMQ instrumentation
    /// does: settling is a broker round trip worth seeing, and cheap next to the process span.
    pub fn with_settle_spans(mut self, enabled: bool) -> Self {
        self.settle_spans = enabled;
        self
    }

    /// Adds the `x-otel-sent-ms` header (publish time, milliseconds since the Unix epoch, AMQP
    /// long-long int) to published messages that carry no `timestamp` property, so consumers can
    /// measure queue wait with millisecond precision.
    ///
    /// Defaults to `true`.
    pub fn with_sent_time_header(mut self, enabled: bool) -> Self {
        self.sent_time_header = enabled;
        self
    }

    /// The connection's `frame_max` (bytes; `connection.configuration().frame_max()`), which the
    /// content header frame of a publish — its properties, `headers` table included — must fit:
    /// RabbitMQ closes the whole connection on a larger one (`FRAME_ERROR`). A traced publish whose
    /// header frame fits uninstrumented never exceeds it: `x-otel-sent-ms` is dropped first, then
    /// the context is degraded (without `baggage`, `traceparent` alone, nothing; recorded as
    /// `otel_messaging.context.injected = false`).
    ///
    /// Defaults to 131 072, RabbitMQ's default; 0 means no limit (as in AMQP).
    pub fn with_frame_max(mut self, bytes: u32) -> Self {
        self.frame_max = bytes;
        self
    }

    /// The queue of deliveries processed or settled without the traced consumer or
    /// `basic_get_traced` that handed them over (a lapin [`Delivery`] does not name its queue).
    /// Deliveries handed over by those carry their own queue (kept until settled, up to 10 000
    /// unsettled deliveries).
    ///
    /// Defaults to none: such deliveries' destination is `{exchange}:{routing key}`.
    pub fn with_queue(mut self, queue: &str) -> Self {
        self.queue = Some(Arc::from(queue));
        self
    }

    /// Remembers that `delivery` came from `queue`; `received`: a traced `basic_get` counted it
    /// in `messaging.client.consumed.messages` already; `reading`: its context as read there
    /// (lever 26, BENCHMARKS.md), kept as a link for its settle span and, after `basic_get`, for its
    /// process span when small.
    pub(crate) fn remember_queue(
        &self,
        delivery: &Delivery,
        queue: &str,
        received: bool,
        reading: Option<&DeliveredContext>,
    ) {
        let handed = Handed {
            queue: Arc::from(queue),
            received,
            // For a later process span: `basic_get`'s (the traced consumer starts it at once).
            context: reading.filter(|_| received).cloned().and_then(DeliveredContext::keepable),
            link: reading.and_then(|r| r.link(Vec::new())),
        };
        self.handoff.put_copy(delivery_key(delivery), delivery_address(delivery), handed);
    }

    /// The queue of `delivery`; `settled` forgets it.
    pub(crate) fn queue_of(&self, delivery: &Delivery, settled: bool) -> Option<Arc<str>> {
        self.handed(delivery, settled).map(|h| h.queue).or_else(|| self.queue.clone())
    }

    /// What the traced consumer or `basic_get` that handed `delivery` over kept for it; `settled`
    /// forgets it.
    pub(crate) fn handed(&self, delivery: &Delivery, settled: bool) -> Option<Handed> {
        self.handoff.copy_of(&delivery_key(delivery), delivery_address(delivery), settled)
    }

    /// `network.peer.address` and `network.peer.port`: the broker's address when the URI names it
    /// by IP (lapin does not expose the connected socket's peer).
    pub(crate) fn network_peer(&self) -> Option<(&str, Option<u16>)> {
        self.server().filter(|(host, _)| host.parse::<std::net::IpAddr>().is_ok())
    }

    /// `server.address` and `server.port` from the URI.
    pub(crate) fn server(&self) -> Option<(&str, Option<u16>)> {
        self.server.as_ref().map(|(h, p)| (h.as_ref(), *p))
    }

    pub(crate) fn settle_spans(&self) -> bool {
        self.settle_spans
    }

    pub(crate) fn sent_time_header(&self) -> bool {
        self.sent_time_header
    }

    pub(crate) fn frame_max(&self) -> u32 {
        self.frame_max
    }
}

fn parse_uri(uri: &str) -> Option<(Arc<str>, Option<u16>)> {
    let (scheme, rest) = uri.split_once("://")?;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, hp)| hp);
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && p.chars().all(|c| c.is_ascii_digit()) => (h, p.parse().ok()),
        _ => (host_port, None),
    };
    let port = port.or(match scheme {
        "amqps" => Some(5671),
        "amqp" => Some(5672),
        _ => None,
    });
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (Arc::from(host), port))
}

#[cfg(test)]
mod tests {
    use lapin::message::Delivery;

    use super::{AmqpInstrumentation, parse_uri};

    /// Reliability review L2: a stale entry (a delivery handed over, then acked natively) must not
    /// give its queue to another channel's delivery that has the same tag and reuses its body
    /// buffer; copies of one message on two channels keep their own queues.
    #[test]
    fn a_stale_delivery_does_not_lend_its_queue() {
        let tracing = AmqpInstrumentation::new().with_queue("fallback");
        let mut first = Delivery::mock(1, "orders".into(), "eu".into(), false, b"order 1".to_vec());
        tracing.remember_queue(&first, "orders-eu", false, None);
        // Another channel's tag 1, another message, in the freed buffer of the first.
        let mut buffer = std::mem::take(&mut first.data);
        buffer.clear();
        buffer.extend_from_slice(b"audit 9");
        let other = Delivery::mock(1, "audit".into(), "all".into(), false, buffer);
        assert_eq!(tracing.queue_of(&other, false).as_deref(), Some("fallback"));

        let on_a = Delivery::mock(1, "fan".into(), "".into(), false, b"same".to_vec());
        let on_b = Delivery::mock(1, "fan".into(), "".into(), false, b"same".to_vec());
        tracing.remember_queue(&on_a, "queue-a", false, None);
        tracing.remember_queue(&on_b, "queue-b", false, None);
        assert_eq!(tracing.queue_of(&on_b, true).as_deref(), Some("queue-b"));
        assert_eq!(tracing.queue_of(&on_a, true).as_deref(), Some("queue-a"));
        assert_eq!(tracing.queue_of(&on_a, true).as_deref(), Some("fallback"));
    }

    #[test]
    fn from_uri_reads_the_server() {
        let tracing = AmqpInstrumentation::from_uri("amqp://guest:guest@rabbit-1:5672/%2f");
        assert_eq!(tracing.server(), Some(("rabbit-1", Some(5672))));
        assert_eq!(AmqpInstrumentation::new().server(), None);
    }

    #[test]
    fn parses_amqp_uris() {
        let p = |u| parse_uri(u).map(|(h, p)| (h.to_string(), p));
        assert_eq!(p("amqp://guest:guest@127.0.0.1:5672/%2f"), Some(("127.0.0.1".into(), Some(5672))));
        assert_eq!(p("amqps://rabbit.example.com/vhost"), Some(("rabbit.example.com".into(), Some(5671))));
        assert_eq!(p("amqp://[::1]:5673"), Some(("::1".into(), Some(5673))));
        assert_eq!(p("not a uri"), None);
    }
}
