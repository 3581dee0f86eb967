//! [`AmqpInstrumentation`]: an instrumenter plus the facts of one AMQP connection.
//!
//! Why a module beside the standard anatomy (as in the Kafka crate): lapin channels do not expose
//! the broker address they are connected to, yet semconv wants `server.address`/`server.port` on
//! every span; this type reads them once from the AMQP URI and holds the per-connection options
//! shared by `producer.rs` and `consumer.rs`.

use std::sync::{Arc, OnceLock};

use otel_messaging::MessagingInstrumenter;

/// The instrumentation of one AMQP connection: the instrumenter, the broker address from the AMQP
/// URI, and the crate's options.
///
/// # Examples
///
/// ```
/// use otel_messaging_lapin::AmqpInstrumentation;
///
/// let tracing = AmqpInstrumentation::from_uri("amqp://guest:guest@rabbit-1:5672/%2f");
/// assert_eq!(tracing.server(), Some(("rabbit-1", Some(5672))));
/// ```
#[derive(Debug, Clone)]
pub struct AmqpInstrumentation {
    pub(crate) instrumenter: MessagingInstrumenter,
    server: Option<(Arc<str>, Option<u16>)>,
    settle_spans: bool,
    sent_time_header: bool,
}

impl AmqpInstrumentation {
    /// Facts read from an AMQP URI (`amqp[s]://user:pass@host:port/vhost`): `server.address` and
    /// `server.port` (5672, or 5671 for `amqps`, when the URI has none). Uses the global default
    /// instrumenter until [`with_instrumenter`](Self::with_instrumenter).
    pub fn from_uri(uri: &str) -> Self {
        AmqpInstrumentation { server: parse_uri(uri), ..Self::global().clone() }
    }

    /// The instrumentation the plain `*_traced` methods use: the global default instrumenter,
    /// no broker address.
    pub fn global() -> &'static AmqpInstrumentation {
        static GLOBAL: OnceLock<AmqpInstrumentation> = OnceLock::new();
        GLOBAL.get_or_init(|| AmqpInstrumentation {
            instrumenter: MessagingInstrumenter::global().clone(),
            server: None,
            settle_spans: true,
            sent_time_header: true,
        })
    }

    /// Uses `instrumenter` (explicit providers, policies) instead of the global default.
    pub fn with_instrumenter(mut self, instrumenter: MessagingInstrumenter) -> Self {
        self.instrumenter = instrumenter;
        self
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

    /// `server.address` and `server.port` from the URI.
    pub fn server(&self) -> Option<(&str, Option<u16>)> {
        self.server.as_ref().map(|(h, p)| (h.as_ref(), *p))
    }

    pub(crate) fn settle_spans(&self) -> bool {
        self.settle_spans
    }

    pub(crate) fn sent_time_header(&self) -> bool {
        self.sent_time_header
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
    use super::parse_uri;

    #[test]
    fn parses_amqp_uris() {
        let p = |u| parse_uri(u).map(|(h, p)| (h.to_string(), p));
        assert_eq!(p("amqp://guest:guest@127.0.0.1:5672/%2f"), Some(("127.0.0.1".into(), Some(5672))));
        assert_eq!(p("amqps://rabbit.example.com/vhost"), Some(("rabbit.example.com".into(), Some(5671))));
        assert_eq!(p("amqp://[::1]:5673"), Some(("::1".into(), Some(5673))));
        assert_eq!(p("not a uri"), None);
    }
}
