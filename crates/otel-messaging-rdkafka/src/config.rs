//! [`KafkaInstrumentation`] (the instrumenter and the policies) and the facts of each Kafka client.
//!
//! Why a module beside the standard anatomy: semconv wants `server.address`, `server.port`,
//! `messaging.client.id`, `messaging.consumer.group.name` and `messaging.kafka.cluster.id` on every
//! span, and rdkafka's Rust clients do not expose their configuration once created. This module
//! reads those facts from the client's **native handle** (librdkafka `rd_kafka_conf_get` on
//! `rd_kafka_conf()`, the configuration the client was created with) the first time a client is
//! seen, and caches them per client, so the plain `*_traced` methods (no instrumentation argument)
//! give the complete attribute set. Messages received through a traced receive remember their
//! client (by librdkafka topic handle), so `message.process_traced(..)` gets the same facts.

use std::{
    collections::HashMap,
    sync::{Arc, LazyLock, OnceLock, RwLock},
};

use otel_messaging::MessagingInstrumenter;
use rdkafka::{
    ClientConfig, ClientContext,
    client::Client,
    message::{BorrowedMessage, Message as _},
    util::Timeout,
};

/// The instrumenter and the policies the Kafka sugar uses.
///
/// The facts of each client (`server.address`/`server.port` from the first `bootstrap.servers`
/// entry, `messaging.client.id` from librdkafka's handle name `{client.id}#{type}-{n}` (unique
/// per client), `messaging.consumer.group.name` from
/// `group.id`, `message.max.bytes`, and `messaging.kafka.cluster.id` once librdkafka knows it)
/// are read from the client itself, so one instrumentation serves every client of the process and
/// the one [`new`](Self::new) returns, behind the plain `*_traced` methods, is complete.
///
/// # Examples
///
/// ```
/// use otel_messaging_rdkafka::{KafkaInstrumentation, MessagingInstrumenter};
///
/// // A consumer at a trust boundary that records message keys.
/// let instrumentation = KafkaInstrumentation::new()
///     .with_instrumenter(MessagingInstrumenter::builder().with_trust_boundary(true).build())
///     .with_capture_key(true);
/// # let _ = instrumentation;
/// ```
#[derive(Debug, Clone)]
pub struct KafkaInstrumentation {
    pub(crate) instrumenter: MessagingInstrumenter,
    /// Facts for messages whose client is unknown (an `OwnedMessage`, or a `BorrowedMessage`
    /// from an untraced receive): set by [`from_config`](Self::from_config), else empty.
    fallback: Arc<ClientFacts>,
    capture_key: bool,
    max_message_bytes: Option<usize>,
    receive_spans: bool,
}

/// librdkafka's default `client.id`: `rdkafka`.
const LIBRDKAFKA_DEFAULT_CLIENT_ID: &str = "rdkafka";

/// librdkafka's default `message.max.bytes`: 1 000 000 bytes.
pub(crate) const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

impl Default for KafkaInstrumentation {
    fn default() -> Self {
        Self::new()
    }
}

impl KafkaInstrumentation {
    /// The global default instrumenter ([`MessagingInstrumenter::global`]) and every policy at
    /// its default.
    pub fn new() -> Self {
        KafkaInstrumentation {
            instrumenter: MessagingInstrumenter::global().clone(),
            fallback: Arc::new(ClientFacts::default()),
            capture_key: false,
            max_message_bytes: None,
            receive_spans: true,
        }
    }

    /// Like [`new`](Self::new), with `config`'s facts (`bootstrap.servers`, `client.id`,
    /// `group.id`, `message.max.bytes`) as the fallback for messages whose client the crate does
    /// not know: an `OwnedMessage` (detached from its consumer), or a `BorrowedMessage` received
    /// with the plain `recv()` rather than a traced receive. Spans of a known client always use
    /// that client's own facts.
    pub fn from_config(config: &ClientConfig) -> Self {
        // Unset settings take librdkafka's defaults, as the client built from `config` would.
        let get = |name: &str| match (config.get(name), name) {
            (Some(value), _) => Some(value.to_owned()),
            (None, "client.id") => Some(LIBRDKAFKA_DEFAULT_CLIENT_ID.to_owned()),
            (None, _) => None,
        };
        KafkaInstrumentation { fallback: Arc::new(ClientFacts::from_lookup(&[], get)), ..Self::new() }
    }

    /// The instrumentation the plain `*_traced` methods use: [`new`](Self::new), built once.
    pub(crate) fn shared() -> &'static KafkaInstrumentation {
        static GLOBAL: OnceLock<KafkaInstrumentation> = OnceLock::new();
        GLOBAL.get_or_init(KafkaInstrumentation::new)
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

    /// Whether UTF-8 message keys are recorded as `messaging.kafka.message.key` on
    /// single-message spans (Recommended in semconv v1.44 `kafka.md`), cut to
    /// [`otel_messaging::__private::MAX_COPIED_VALUE_LEN`] (256) bytes. Keys that are not UTF-8 are never
    /// recorded.
    ///
    /// Defaults to `false`: keys often hold personal data (user or tenant identifiers), and this
    /// project records no message content unless asked (privacy over a Recommended attribute).
    pub fn with_capture_key(mut self, enabled: bool) -> Self {
        self.capture_key = enabled;
        self
    }

    /// Sets the `message.max.bytes` (bytes) that injection respects, for every client: the context
    /// written into a record is cut down (`baggage`, then `tracestate`, then all of it, recording
    /// `otel_messaging.context.injected = false`) so that a record that fits this limit
    /// uninstrumented still fits it.
    ///
    /// Defaults to each client's own `message.max.bytes`, read from its handle (librdkafka's
    /// default is 1 000 000 bytes): set it only when the broker's or topic's limit is lower than
    /// the client's.
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = Some(bytes);
        self
    }

    /// Whether traced receives record `poll` spans (CLIENT): one per message from `recv_traced`
    /// and `stream_traced`, one per batch from `recv_batch_traced`. With `false` only process
    /// spans are recorded (half the spans of a consumer that handles each message with
    /// `process_traced`), and the process spans count the messages in
    /// `messaging.client.consumed.messages` instead (receive and process through the same
    /// instrumentation, so that each message is counted once).
    ///
    /// Defaults to `true`: the poll span times the wait for a message and links its creation
    /// context, as semconv's receive spans do.
    pub fn with_receive_spans(mut self, enabled: bool) -> Self {
        self.receive_spans = enabled;
        self
    }

    /// Whether traced receives record poll spans ([`with_receive_spans`](Self::with_receive_spans)).
    pub(crate) fn receive_spans(&self) -> bool {
        self.receive_spans
    }

    /// Whether message keys are recorded ([`with_capture_key`](Self::with_capture_key)).
    pub(crate) fn captures_key(&self) -> bool {
        self.capture_key
    }

    /// The facts for a message and whether they are its client's (known when a traced receive
    /// returned it, which also counted it), else the [`from_config`](Self::from_config) fallback.
    /// `topic`: the message's topic handle address and topic name.
    pub(crate) fn facts_of_message(&self, topic: Option<(usize, &str)>) -> (Arc<ClientFacts>, bool) {
        match topic.and_then(|(handle, name)| ClientFacts::of_topic(handle, name)) {
            // Counted by the poll span, unless this instrumentation records none.
            Some(facts) => (facts, self.receive_spans),
            None => (self.fallback.clone(), false),
        }
    }

    /// The `message.max.bytes` (bytes) injection respects for a client with these facts.
    pub(crate) fn limit(&self, facts: &ClientFacts) -> usize {
        self.max_message_bytes.unwrap_or(facts.max_message_bytes)
    }
}

/// What one Kafka client says about itself, read once from its configuration.
#[derive(Debug)]
pub(crate) struct ClientFacts {
    /// librdkafka's `rd_kafka_name()` (`{client.id}#{producer|consumer}-{n}`, unique in the
    /// process): tells a client apart from a later one created at the same handle address.
    name: Box<[u8]>,
    server: Option<(Arc<str>, Option<u16>)>,
    client_id: Option<Arc<str>>,
    group_id: Option<Arc<str>>,
    max_message_bytes: usize,
    cluster_id: OnceLock<Arc<str>>,
}

impl Default for ClientFacts {
    fn default() -> Self {
        ClientFacts::from_lookup(&[], |_| None)
    }
}

/// Facts by address: of a client's native handle, or of a topic handle (`rd_kafka_topic_t`, one
/// per client and topic) whose messages a traced receive returned. Looked up on every traced send,
/// receive and process, so a hash map rather than a scan.
type Registry<V = Arc<ClientFacts>> = LazyLock<RwLock<HashMap<usize, V>>>;

/// Clients whose facts were read, by native handle address.
static CLIENTS: Registry = LazyLock::new(RwLock::default);
/// Topic handles of messages returned by a traced receive, with their client's facts and the
/// topic's name: a later client's handle for another topic at a reused address is not taken for
/// it (reliability review L2). A later client's handle for the same topic at the same address,
/// whose messages no traced receive returned, still is: librdkafka does not say which client a
/// message came from.
static TOPICS: Registry<(Arc<ClientFacts>, Box<str>)> = LazyLock::new(RwLock::default);
/// Most entries kept in each registry; when full it is emptied (a process with this many clients
/// re-reads facts now and then, nothing worse).
const REGISTRY_CAPACITY: usize = 1024;

fn lookup<V: Clone>(registry: &Registry<V>, key: usize) -> Option<V> {
    registry.read().unwrap_or_else(std::sync::PoisonError::into_inner).get(&key).cloned()
}

fn remember<V>(registry: &Registry<V>, key: usize, facts: V) {
    let mut entries = registry.write().unwrap_or_else(std::sync::PoisonError::into_inner);
    if entries.len() >= REGISTRY_CAPACITY && !entries.contains_key(&key) {
        entries.clear();
    }
    entries.insert(key, facts);
}

impl ClientFacts {
    fn from_lookup(name: &[u8], get: impl Fn(&str) -> Option<String>) -> Self {
        let non_empty = |key: &str| get(key).filter(|v| !v.trim().is_empty());
        ClientFacts {
            name: name.into(),
            server: non_empty("bootstrap.servers").as_deref().and_then(first_server),
            // The handle's name (`{client.id}#{producer|consumer}-{n}`) is unique per client, as
            // `messaging.client.id` asks; `client.id` alone is `rdkafka` for every client that does
            // not set it. Without a handle (`from_config`): the setting.
            client_id: std::str::from_utf8(name)
                .ok()
                .filter(|n| !n.is_empty())
                .map(Arc::from)
                .or_else(|| non_empty("client.id").map(Arc::from)),
            group_id: non_empty("group.id").map(Arc::from),
            max_message_bytes: non_empty("message.max.bytes")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES),
            cluster_id: OnceLock::new(),
        }
    }

    /// The facts of `client`, read from its native handle the first time it is seen.
    pub(crate) fn of<C: ClientContext>(client: &Client<C>) -> Arc<ClientFacts> {
        let handle = client.native_ptr();
        let name = native::name(handle);
        let key = handle as usize;
        if let Some(facts) = lookup(&CLIENTS, key).filter(|f| *f.name == *name.to_bytes()) {
            return facts;
        }
        let facts =
            Arc::new(ClientFacts::from_lookup(name.to_bytes(), |setting| native::conf_get(handle, setting)));
        remember(&CLIENTS, key, facts.clone());
        facts
    }

    /// The facts of the client that received messages of `topic_handle` through a traced receive.
    fn of_topic(topic_handle: usize, topic: &str) -> Option<Arc<ClientFacts>> {
        let read = TOPICS.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        read.get(&topic_handle).filter(|(_, name)| **name == *topic).map(|(facts, _)| facts.clone())
    }

    /// Remembers that `message` came from the client of `self`, so that its process span finds
    /// these facts.
    pub(crate) fn remember_message(self: &Arc<Self>, message: &BorrowedMessage<'_>) {
        let key = topic_handle(message);
        if !ClientFacts::of_topic(key, message.topic()).is_some_and(|f| Arc::ptr_eq(&f, self)) {
            remember(&TOPICS, key, (self.clone(), Box::from(message.topic())));
        }
    }

    /// `server.address` and `server.port`: the first `bootstrap.servers` entry.
    pub(crate) fn server(&self) -> Option<(&str, Option<u16>)> {
        self.server.as_ref().map(|(host, port)| (host.as_ref(), *port))
    }

    /// `messaging.client.id`: librdkafka's name of the client handle (`{client.id}#producer-{n}`,
    /// unique in the process), else the `client.id` setting (semconv v1.44 messaging-spans.md:
    /// "a unique identifier for the client").
    pub(crate) fn client_id(&self) -> Option<&str> {
        self.client_id.as_deref()
    }

    /// `messaging.consumer.group.name`: the `group.id` setting, if set.
    pub(crate) fn consumer_group(&self) -> Option<&str> {
        self.group_id.as_deref()
    }

    /// `messaging.kafka.cluster.id` if this client already reported it.
    pub(crate) fn cached_cluster_id(&self) -> Option<Arc<str>> {
        self.cluster_id.get().cloned()
    }

    /// `messaging.kafka.cluster.id` of `client` (whose facts these are), asked of librdkafka
    /// without waiting (it answers from its metadata cache) until known, then cached.
    pub(crate) fn cluster_id<C: ClientContext>(&self, client: &Client<C>) -> Option<Arc<str>> {
        if let Some(id) = self.cluster_id.get() {
            return Some(id.clone());
        }
        let id: Arc<str> = client.fetch_cluster_id(Timeout::After(std::time::Duration::ZERO))?.into();
        Some(self.cluster_id.get_or_init(|| id).clone())
    }
}

/// The only `unsafe` of this module: reading a client's configuration and name, and a message's
/// topic handle, through librdkafka's C API.
///
/// Audit notes: every pointer comes from a live rdkafka value borrowed for the call (`Client`
/// keeps its `rd_kafka_t` alive; `BorrowedMessage` its `rd_kafka_message_t`). `rd_kafka_conf()`
/// returns the handle's own configuration, valid as long as the handle; `rd_kafka_conf_get` copies
/// into our buffer, with the size protocol of its documentation (first call sizes, second fills,
/// NUL-terminated). `rd_kafka_name()` returns a NUL-terminated string owned by the handle.
#[allow(unsafe_code)]
mod native {
    use std::ffi::{CStr, CString, c_char};

    use rdkafka::{
        bindings::{rd_kafka_conf, rd_kafka_conf_get, rd_kafka_conf_res_t, rd_kafka_name},
        message::BorrowedMessage,
        types::RDKafka,
    };

    /// The value of setting `name` of the client behind `handle`, if set and UTF-8.
    pub(super) fn conf_get(handle: *mut RDKafka, name: &str) -> Option<String> {
        let name = CString::new(name).ok()?;
        // SAFETY: `handle` is a live client handle (module notes).
        let conf = unsafe { rd_kafka_conf(handle) };
        if conf.is_null() {
            return None;
        }
        let mut size = 0usize;
        // SAFETY: `conf` is valid; a null destination asks for the size only.
        let res = unsafe { rd_kafka_conf_get(conf, name.as_ptr(), std::ptr::null_mut(), &mut size) };
        if res != rd_kafka_conf_res_t::RD_KAFKA_CONF_OK || size == 0 {
            return None;
        }
        let mut buffer = vec![0u8; size];
        // SAFETY: `buffer` holds `size` bytes, as `size` tells librdkafka.
        let res = unsafe {
            rd_kafka_conf_get(conf, name.as_ptr(), buffer.as_mut_ptr().cast::<c_char>(), &mut size)
        };
        if res != rd_kafka_conf_res_t::RD_KAFKA_CONF_OK {
            return None;
        }
        CStr::from_bytes_until_nul(&buffer).ok()?.to_str().ok().map(str::to_owned)
    }

    /// librdkafka's name of the client behind `handle` (`rd_kafka_name`).
    pub(super) fn name<'h>(handle: *mut RDKafka) -> &'h CStr {
        // SAFETY: `handle` is live; the name is NUL-terminated, owned by the handle, which the
        // caller's `&Client` borrow outlives the use of.
        let name = unsafe { rd_kafka_name(handle) };
        if name.is_null() { c"" } else { unsafe { CStr::from_ptr(name) } }
    }

    /// The address of the topic handle (`rd_kafka_topic_t`, one per client and topic) of a
    /// received message: a key, never dereferenced here.
    pub(super) fn topic_handle(message: &BorrowedMessage<'_>) -> usize {
        // SAFETY: `ptr()` is the live `rd_kafka_message_t` the message borrows; only its `rkt`
        // field is read.
        unsafe { (*message.ptr()).rkt as usize }
    }
}

/// The address of a received message's librdkafka topic handle (one per client and topic), the
/// key under which a traced receive remembers the message's client.
pub(crate) fn topic_handle(message: &BorrowedMessage<'_>) -> usize {
    native::topic_handle(message)
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
