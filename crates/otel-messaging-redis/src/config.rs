//! [`RedisInstrumentation`]: an instrumenter plus the facts of one Redis connection.
//!
//! Why a module beside the standard anatomy (as in the other broker crates): redis-rs connections
//! do not expose the server address; this type reads it once from the client's
//! [`ConnectionInfo`](redis::ConnectionInfo) and holds the crate's options.

use std::sync::{Arc, OnceLock};

use otel_messaging::MessagingInstrumenter;

/// The instrumentation of one Redis connection: the instrumenter, the server address and the
/// crate's options.
///
/// # Examples
///
/// ```
/// use otel_messaging_redis::RedisInstrumentation;
///
/// let client = redis::Client::open("redis://cache-1:6380/")?;
/// let tracing = RedisInstrumentation::from_client(&client);
/// assert_eq!(tracing.server(), Some(("cache-1", Some(6380))));
/// # Ok::<(), redis::RedisError>(())
/// ```
#[derive(Debug, Clone)]
pub struct RedisInstrumentation {
    pub(crate) instrumenter: MessagingInstrumenter,
    server: Option<(Arc<str>, Option<u16>)>,
    strip_fields: bool,
}

impl RedisInstrumentation {
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
        RedisInstrumentation { server, ..Self::global().clone() }
    }

    /// The instrumentation with the global default instrumenter and no server address.
    pub fn global() -> &'static RedisInstrumentation {
        static GLOBAL: OnceLock<RedisInstrumentation> = OnceLock::new();
        GLOBAL.get_or_init(|| RedisInstrumentation {
            instrumenter: MessagingInstrumenter::global().clone(),
            server: None,
            strip_fields: false,
        })
    }

    /// Uses `instrumenter` (explicit providers, policies) instead of the global default.
    pub fn with_instrumenter(mut self, instrumenter: MessagingInstrumenter) -> Self {
        self.instrumenter = instrumenter;
        self
    }

    /// Removes the propagation fields (`traceparent`, `tracestate`, `baggage`, and any other field
    /// of the propagator) from the entry map the handler sees, once the process span has read them.
    ///
    /// Defaults to `false`: the entry is handed over exactly as stored, as with the other brokers.
    pub fn with_strip_fields(mut self, enabled: bool) -> Self {
        self.strip_fields = enabled;
        self
    }

    /// `server.address` and `server.port` of the connection.
    pub fn server(&self) -> Option<(&str, Option<u16>)> {
        self.server.as_ref().map(|(h, p)| (h.as_ref(), *p))
    }

    pub(crate) fn strip_fields(&self) -> bool {
        self.strip_fields
    }
}
