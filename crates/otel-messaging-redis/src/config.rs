//! [`RedisInstrumentation`]: an instrumenter plus the facts of one Redis connection.
//!
//! Why a module beside the standard anatomy (as in the other broker crates): redis-rs connections
//! do not expose the server address; this type reads it once from the client's
//! [`ConnectionInfo`](redis::ConnectionInfo) and holds the crate's options.

use std::sync::{Arc, OnceLock};

use opentelemetry::trace::Link;
use otel_messaging::{
    __private::{Copies, DeliveredContext, Handoff},
    MessagingInstrumenter,
};

/// The instrumentation of one Redis connection: the instrumenter, the server address and the
/// crate's options.
///
/// # Examples
///
/// ```
/// use otel_messaging_redis::RedisInstrumentation;
///
/// let client = redis::Client::open("redis://cache-1:6380/")?;
/// // Every span through it says `server.address = cache-1`, `server.port = 6380`.
/// let tracing = RedisInstrumentation::from_client(&client);
/// # let _ = tracing;
/// # Ok::<(), redis::RedisError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RedisInstrumentation {
    pub(crate) instrumenter: MessagingInstrumenter,
    server: Option<(Arc<str>, Option<u16>)>,
    strip_fields: bool,
    envelope_always: bool,
    claim_delivery_counts: bool,
    /// Stream and group of entries returned by traced reads, by entry id and fields, until
    /// processed; per copy of the entry (two consumer groups of one process reading the same entry
    /// get two `StreamId`s), told apart by the address of the copy's id.
    pub(crate) handoff: Arc<Handoff<Copies<EntryFacts>>>,
    /// Stream and group of entries the handoff does not know.
    default_stream: Option<EntryFacts>,
    /// The links to the creation contexts of entries returned by traced reads, by stream and
    /// entry id ([`settle_key`]), until acknowledged: what an `XACK` made anywhere links to.
    pub(crate) settles: Arc<Handoff<Link>>,
}

/// The key of an entry in [`RedisInstrumentation::settles`]: its stream and id (an id is unique
/// within its stream).
pub(crate) fn settle_key(stream: &str, id: &str) -> String {
    let mut key = String::with_capacity(stream.len() + id.len() + 1);
    key.push_str(stream);
    key.push('\0');
    key.push_str(id);
    key
}

/// Where a stream entry was read: its stream and, for `XREADGROUP`/`XAUTOCLAIM`, the group; and
/// the entry's context as the traced read read it (for its process span, which then does not read
/// it again; kept only when small, `DeliveredContext::keepable`).
#[derive(Debug, Clone)]
pub(crate) struct EntryFacts {
    pub(crate) stream: Arc<str>,
    pub(crate) group: Option<Arc<str>>,
    pub(crate) context: Option<DeliveredContext>,
}

/// The handoff key of a stream entry: its id and a fingerprint of its fields. Ids alone are not
/// unique across streams (two streams written in the same millisecond give the same ids); an entry
/// a traced producer wrote carries its own creation context among its fields, so id and fields
/// together tell entries of different streams apart.
///
/// The fingerprint is the wrapping sum of one `FxHasher` hash per field (name and value), so it
/// does not depend on the order the reply's map yields the fields in, and needs no sorting: a key
/// costs a few hundred instructions for a 256-byte entry, where SipHash over the sorted fields
/// and `format!` took ≈ 6 800, twice per entry (BENCHMARKS.md, Redis).
pub(crate) fn entry_key(entry: &redis::streams::StreamId) -> String {
    use std::{
        fmt::Write as _,
        hash::{Hash as _, Hasher as _},
    };
    let mut fingerprint: u64 = 0;
    for (name, value) in &entry.map {
        let mut hasher = rustc_hash::FxHasher::default();
        name.hash(&mut hasher);
        match value {
            redis::Value::BulkString(bytes) => bytes.hash(&mut hasher),
            redis::Value::SimpleString(text) => text.hash(&mut hasher),
            redis::Value::Int(n) => n.hash(&mut hasher),
            _ => {}
        }
        fingerprint = fingerprint.wrapping_add(hasher.finish());
    }
    let mut key = String::with_capacity(entry.id.len() + 17);
    key.push_str(&entry.id);
    let _ = write!(key, "/{fingerprint:016x}");
    key
}

/// The address of `entry`'s id buffer, which tells apart two copies of one entry (read by two
/// consumer groups) while they live; a clone has another.
pub(crate) fn entry_address(entry: &redis::streams::StreamId) -> usize {
    entry.id.as_ptr() as usize
}

/// Most stream entries whose stream and group are kept between a traced read and their process
/// span; the oldest are forgotten first.
const HANDOFF_CAPACITY: usize = 10_000;

/// Most stream entries whose creation context is kept between a traced read and their `XACK`
/// (the link of its settle span), as the SQS crate keeps receipt handles: entries acknowledged
/// natively, or never, are pushed out by newer ones.
const SETTLE_CAPACITY: usize = 1_000;

impl Default for RedisInstrumentation {
    fn default() -> Self {
        Self::new()
    }
}

impl RedisInstrumentation {
    /// The instrumentation the plain `*_traced` methods use: the process-wide default instrumenter
    /// ([`MessagingInstrumenter::global`], which follows
    /// [`MessagingInstrumenter::set_global`]), every option at its default, no server facts. Every
    /// value built from it shares the crate's process-wide records of handed-over messages, so a
    /// message received through one and processed or settled through another is still recognised.
    pub fn new() -> Self {
        Self::shared().clone()
    }

    /// Facts read from `client`'s connection info (`server.address`, `server.port`; a Unix socket
    /// path is the address). Uses the global default instrumenter until
    /// [`with_instrumenter`](Self::with_instrumenter).
    pub fn from_client(client: &redis::Client) -> Self {
        let server = match client.get_connection_info().addr() {
            redis::ConnectionAddr::Tcp(host, port) => Some((Arc::from(host.as_str()), Some(*port))),
            redis::ConnectionAddr::TcpTls { host, port, .. } => Some((Arc::from(host.as_str()), Some(*port))),
            redis::ConnectionAddr::Unix(path) => Some((Arc::from(path.to_string_lossy().as_ref()), None)),
            _ => None,
        };
        RedisInstrumentation { server, ..Self::shared().clone() }
    }

    /// The instrumentation with the global default instrumenter and no server address.
    pub(crate) fn shared() -> &'static RedisInstrumentation {
        static GLOBAL: OnceLock<RedisInstrumentation> = OnceLock::new();
        GLOBAL.get_or_init(|| RedisInstrumentation {
            instrumenter: MessagingInstrumenter::global().clone(),
            server: None,
            strip_fields: false,
            envelope_always: false,
            claim_delivery_counts: false,
            handoff: Arc::new(Handoff::new(HANDOFF_CAPACITY)),
            default_stream: None,
            settles: Arc::new(Handoff::new(SETTLE_CAPACITY)),
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

    /// The stream (and consumer group) of entries processed without a traced read that returned
    /// them (e.g. read with the plain `xread_options`). Entries returned by a traced read
    /// (`xread_options_traced`, `xread_traced`, `xautoclaim_traced`) always use the stream and
    /// group of that read, kept by entry id (up to 10 000 unprocessed entries) until processed.
    ///
    /// Defaults to none: such entries' process spans have no destination.
    pub fn with_stream(mut self, stream: &str, group: Option<&str>) -> Self {
        self.default_stream =
            Some(EntryFacts { stream: Arc::from(stream), group: group.map(Arc::from), context: None });
        self
    }

    /// The stream and group of entry `id`: from the traced read that returned it, else
    /// [`with_stream`](Self::with_stream)'s.
    pub(crate) fn entry_facts(&self, entry: &redis::streams::StreamId) -> Option<EntryFacts> {
        self.handoff
            .copy_of(&entry_key(entry), entry_address(entry), true)
            .or_else(|| self.default_stream.clone())
    }

    /// Removes the propagation fields (those the instrumenter's propagator reads and writes:
    /// `traceparent`, `tracestate`, `baggage` for W3C, `b3` or `X-B3-*` for B3, …) from the entry
    /// map the handler sees, once the process span has read them.
    ///
    /// Defaults to `false`: the entry is handed over exactly as stored, as with the other brokers.
    pub fn with_strip_fields(mut self, enabled: bool) -> Self {
        self.strip_fields = enabled;
        self
    }

    /// Wraps every list or pub/sub payload in an [envelope](crate::envelope), even when there is
    /// no context to carry (e.g. no propagator installed, or nothing sampled is propagated by a
    /// propagator that writes nothing), so that consumers can rely on the format.
    ///
    /// Defaults to `false`: a payload is wrapped only when there is context to carry (or when it
    /// would itself read as an envelope), so consumers that know nothing of envelopes keep working.
    pub fn with_envelope_always(mut self, enabled: bool) -> Self {
        self.envelope_always = enabled;
        self
    }

    /// Makes `xautoclaim_traced` fill in each claimed entry's `StreamId::delivered_count`, which the
    /// native `XAUTOCLAIM` reply leaves `None`: the claim and an `XPENDING` over the claimed id
    /// range run in one atomic server-side script (one round trip, so a cancelled call strands no
    /// more entries than the native call would). The process span of a claimed entry then records
    /// `otel_messaging.message.delivery_count`.
    ///
    /// Defaults to `false`: `xautoclaim_traced` sends the native `XAUTOCLAIM` alone and returns its
    /// reply unchanged.
    pub fn with_claim_delivery_counts(mut self, enabled: bool) -> Self {
        self.claim_delivery_counts = enabled;
        self
    }

    /// `server.address` and `server.port` of the connection.
    pub(crate) fn server(&self) -> Option<(&str, Option<u16>)> {
        self.server.as_ref().map(|(h, p)| (h.as_ref(), *p))
    }

    pub(crate) fn strip_fields(&self) -> bool {
        self.strip_fields
    }

    pub(crate) fn envelope_always(&self) -> bool {
        self.envelope_always
    }

    pub(crate) fn claim_delivery_counts(&self) -> bool {
        self.claim_delivery_counts
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use redis::{Value, streams::StreamId};

    use super::{RedisInstrumentation, entry_key};

    #[test]
    #[allow(clippy::expect_used)]
    fn from_client_reads_the_server() {
        let client = redis::Client::open("redis://cache-1:6380/").expect("a valid URL");
        assert_eq!(RedisInstrumentation::from_client(&client).server(), Some(("cache-1", Some(6380))));
        assert_eq!(RedisInstrumentation::new().server(), None);
    }

    fn entry(id: &str, fields: &[(&str, &str)]) -> StreamId {
        let map: HashMap<String, Value> =
            fields.iter().map(|(k, v)| ((*k).to_owned(), Value::BulkString(v.as_bytes().to_vec()))).collect();
        StreamId { id: id.to_owned(), map, ..StreamId::default() }
    }

    #[test]
    fn an_entry_key_is_its_id_and_a_fingerprint_of_its_fields_in_any_order() {
        let fields =
            [("payload", "x"), ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")];
        let reversed = [fields[1], fields[0]];
        let key = entry_key(&entry("1-0", &fields));
        // Every parse of a reply builds a new map with its own iteration order.
        for _ in 0..20 {
            assert_eq!(entry_key(&entry("1-0", &reversed)), key);
        }
        assert!(key.starts_with("1-0/") && key.len() == "1-0/".len() + 16, "{key}");
        // The same id in another stream, with other fields: another key.
        assert_ne!(entry_key(&entry("1-0", &[("payload", "y"), fields[1]])), key);
        assert_ne!(entry_key(&entry("1-0", &[("other", "x"), fields[1]])), key);
        // A value moved to another field is another entry.
        assert_ne!(entry_key(&entry("1-0", &[("payload", fields[1].1), ("traceparent", "x")])), key);
        assert_ne!(entry_key(&entry("2-0", &fields)), key);
    }
}
