//! [`KafkaInstrumentation`]: an instrumenter plus the facts of one Kafka client.
//!
//! Why a module beside the standard anatomy: rdkafka clients do not expose their configuration
//! once created, yet semconv wants `server.address`, `messaging.client.id` and
//! `messaging.consumer.group.name` on every span. This type reads them once from the
//! [`ClientConfig`] the client is built from, and is shared by `producer.rs` and `consumer.rs`.

use std::sync::{Arc, OnceLock};

use otel_messaging::MessagingInstrumenter;
use rdkafka::{ClientConfig, client::Client, util::Timeout};

/// What the instrumentation knows about one Kafka client: the instrumenter to use, the broker
/// address, client id and consumer group from the client's [`ClientConfig`], whether message
/// keys may be recorded, and the cluster id once the client has learnt it.
///
/// Build one per client (per `ClientConfig`) and pass it to the `*_traced_with` methods. The
/// plain `*_traced` methods use [`KafkaInstrumentation::global`], which knows no client facts.
///
/// # Examples
///
/// ```
/// use otel_messaging_rdkafka::KafkaInstrumentation;
/// use rdkafka::ClientConfig;
///
/// let mut config = ClientConfig::new();
/// config.set("bootstrap.servers", "kafka-1:9092,kafka-2:9092").set("group.id", "billing");
/// let instrumentation = KafkaInstrumentation::from_config(&config);
/// assert_eq!(instrumentation.server(), Some(("kafka-1", Some(9092))));
/// assert_eq!(instrumentation.consumer_group(), Some("billing"));
/// ```
#[derive(Debug, Clone)]
pub struct KafkaInstrumentation {
    pub(crate) instrumenter: MessagingInstrumenter,
    server: Option<(Arc<str>, Option<u16>)>,
    client_id: Option<Arc<str>>,
    group_id: Option<Arc<str>>,
    capture_key: bool,
    max_message_bytes: usize,
    /// The cluster id of the first client that reported one, with that client's native handle
    /// address: other clients sharing this instrumentation are asked themselves.
    cluster_id: Arc<OnceLock<(usize, Arc<str>)>>,
}

/// librdkafka's default `message.max.bytes`: 1 000 000 bytes.
pub const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

impl KafkaInstrumentation {
    /// Facts read from `config`: `bootstrap.servers` (the first entry, as `server.address` and
    /// `server.port`), `client.id` (`messaging.client.id`) and `group.id`
    /// (`messaging.consumer.group.name`). Uses the global default instrumenter
    /// ([`MessagingInstrumenter::global`]) until [`with_instrumenter`](Self::with_instrumenter).
    pub fn from_config(config: &ClientConfig) -> Self {
        let server = config.get("bootstrap.servers").and_then(first_server);
        KafkaInstrumentation {
            instrumenter: MessagingInstrumenter::global().clone(),
            server,
            client_id: config.get("client.id").map(Arc::from),
            group_id: config.get("group.id").map(Arc::from),
            capture_key: false,
            max_message_bytes: config
                .get("message.max.bytes")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES),
            cluster_id: Arc::default(),
        }
    }

    /// The instrumentation the plain `*_traced` methods use: the global default instrumenter and
    /// no client facts.
    pub fn global() -> &'static KafkaInstrumentation {
        static GLOBAL: OnceLock<KafkaInstrumentation> = OnceLock::new();
        GLOBAL.get_or_init(|| KafkaInstrumentation::from_config(&ClientConfig::new()))
    }

    /// Uses `instrumenter` (explicit providers, policies) instead of the global default.
    pub fn with_instrumenter(mut self, instrumenter: MessagingInstrumenter) -> Self {
        self.instrumenter = instrumenter;
        self
    }

    /// Records message keys as `messaging.kafka.message.key` when they are UTF-8.
    ///
    /// Defaults to `false`: keys often hold user or tenant identifiers.
    pub fn with_capture_key(mut self, enabled: bool) -> Self {
        self.capture_key = enabled;
        self
    }

    /// The producer's `message.max.bytes` (bytes): the context written into a record is cut down
    /// (`baggage`, then `tracestate`, then all of it, recording `otel_messaging.context.injected =
    /// false`) so that a record that fits this limit uninstrumented still fits it.
    ///
    /// Defaults to the config's `message.max.bytes`, else librdkafka's default
    /// [`DEFAULT_MESSAGE_MAX_BYTES`] (also for [`global`](Self::global), which knows no config).
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// Sets the limit of [`max_message_bytes`](Self::max_message_bytes), in bytes.
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// The instrumenter in use.
    pub fn instrumenter(&self) -> &MessagingInstrumenter {
        &self.instrumenter
    }

    /// `server.address` and `server.port`: the first `bootstrap.servers` entry.
    pub fn server(&self) -> Option<(&str, Option<u16>)> {
        self.server.as_ref().map(|(host, port)| (host.as_ref(), *port))
    }

    /// `messaging.client.id`: the `client.id` setting, if set.
    pub fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// `messaging.consumer.group.name`: the `group.id` setting, if set.
    pub fn consumer_group(&self) -> Option<&str> {
        self.group_id.as_deref()
    }

    /// Whether message keys are recorded.
    pub fn captures_key(&self) -> bool {
        self.capture_key
    }

    /// `messaging.kafka.cluster.id` if a client already reported it, without asking any client.
    pub(crate) fn cached_cluster_id(&self) -> Option<Arc<str>> {
        self.cluster_id.get().map(|(_, id)| id.clone())
    }

    /// `messaging.kafka.cluster.id` of `client`, once known. The first client to report an id
    /// has it cached here (keyed by its native handle); any other client sharing this
    /// instrumentation (e.g. through [`global`](Self::global)) is asked each time, without waiting
    /// (librdkafka answers from its metadata cache), so a span never carries another cluster's id.
    pub(crate) fn cluster_id<C: rdkafka::ClientContext>(&self, client: &Client<C>) -> Option<Arc<str>> {
        let handle = client.native_ptr() as usize;
        if let Some((owner, id)) = self.cluster_id.get()
            && *owner == handle
        {
            return Some(id.clone());
        }
        let id: Arc<str> = client.fetch_cluster_id(Timeout::After(std::time::Duration::ZERO))?.into();
        let (owner, cached) = self.cluster_id.get_or_init(|| (handle, id.clone()));
        Some(if *owner == handle { cached.clone() } else { id })
    }
}

/// The first `host:port` of a `bootstrap.servers` list (`host`, `[v6]:port`, optional
/// `PLAINTEXT://` style scheme).
fn first_server(servers: &str) -> Option<(Arc<str>, Option<u16>)> {
    let first = servers.split(',').map(str::trim).find(|s| !s.is_empty())?;
    let first = first.split_once("://").map_or(first, |(_, rest)| rest);
    let (host, port) = match first.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(':') => (host, port.parse().ok()),
        _ => (first, None),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (Arc::from(host), port))
}

#[cfg(test)]
mod tests {
    use super::first_server;

    #[test]
    fn parses_bootstrap_servers() {
        let s = |v| first_server(v).map(|(h, p)| (h.to_string(), p));
        assert_eq!(s("a:9092,b:9093"), Some(("a".into(), Some(9092))));
        assert_eq!(s(" PLAINTEXT://broker:19092 "), Some(("broker".into(), Some(19092))));
        assert_eq!(s("[::1]:9092"), Some(("::1".into(), Some(9092))));
        assert_eq!(s("localhost"), Some(("localhost".into(), None)));
        assert_eq!(s(""), None);
    }
}
