//! [`SnsInstrumentation`]: an instrumenter plus the crate's options.
//!
//! Why a module beside the standard anatomy (as in the other broker crates): it holds the
//! per-client facts and options `producer.rs` reads.

use std::sync::{Arc, OnceLock};

use otel_messaging::MessagingInstrumenter;

/// SNS's largest message (body, subject and message attributes) and batch total: 262 144 bytes
/// (256 KiB).
pub(crate) const DEFAULT_MAX_MESSAGE_BYTES: usize = 262_144;

/// The instrumentation of one SNS client: the instrumenter, the client's endpoint
/// (`server.address`, `server.port`) and the crate's options.
#[derive(Debug, Clone)]
pub struct SnsInstrumentation {
    pub(crate) instrumenter: MessagingInstrumenter,
    server: Option<(Arc<str>, Option<u16>)>,
    create_spans: bool,
    max_message_bytes: usize,
    fifo_ids: bool,
}

impl Default for SnsInstrumentation {
    fn default() -> Self {
        Self::new()
    }
}

impl SnsInstrumentation {
    /// The instrumentation the plain `*_traced` methods use: the process-wide default instrumenter
    /// ([`MessagingInstrumenter::global`], which follows
    /// [`MessagingInstrumenter::set_global`]), every option at its default, no server facts. Every
    /// value built from it shares the crate's process-wide records of handed-over messages, so a
    /// message received through one and processed or settled through another is still recognised.
    pub fn new() -> Self {
        Self::shared().clone()
    }

    /// The instrumentation the plain `send_traced` methods use: the global default instrumenter
    /// (following [`MessagingInstrumenter::set_global`]), no endpoint (spans without
    /// `server.address`).
    pub(crate) fn shared() -> &'static SnsInstrumentation {
        static GLOBAL: OnceLock<SnsInstrumentation> = OnceLock::new();
        GLOBAL.get_or_init(|| SnsInstrumentation {
            instrumenter: MessagingInstrumenter::global().clone(),
            server: None,
            create_spans: true,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
            fifo_ids: false,
        })
    }

    /// The instrumentation of the clients built from `config` (`aws_config::load_from_env()`'s
    /// [`SdkConfig`](aws_types::SdkConfig)): `server.address` and `server.port` from its endpoint
    /// URL when one is set (a local emulator, a VPC endpoint), else AWS's regional endpoint
    /// `sns.{region}.amazonaws.com:443`; none without a region. (An `aws_sdk_sns::Client` does not
    /// tell its endpoint, so the configuration it was built from is read instead.) Uses the global
    /// default instrumenter until [`with_instrumenter`](Self::with_instrumenter).
    pub fn from_config(config: &aws_types::SdkConfig) -> Self {
        let server = match (config.endpoint_url(), config.region()) {
            (Some(url), _) => parse_endpoint(url),
            (None, Some(region)) => Some((Arc::from(format!("sns.{region}.amazonaws.com")), Some(443))),
            (None, None) => None,
        };
        SnsInstrumentation { server, ..Self::shared().clone() }
    }

    /// Uses `instrumenter` (explicit providers, policies) instead of the global default.
    pub fn with_instrumenter(mut self, instrumenter: MessagingInstrumenter) -> Self {
        self.instrumenter = instrumenter;
        self
    }

    /// Batch publishes create one `create {topic}` PRODUCER span per entry, each entry carrying its
    /// own creation context, and a `publish {topic}` CLIENT span linking them (semconv v1.44
    /// RECOMMENDS this for batch APIs). Off: a single `publish {topic}` PRODUCER span whose context
    /// goes into every entry.
    ///
    /// Defaults to `true`.
    pub fn with_create_spans(mut self, enabled: bool) -> Self {
        self.create_spans = enabled;
        self
    }

    /// The largest message, and the largest batch total, in bytes (SNS counts the body, subject,
    /// and each message attribute's name, data type and value): the context written into a message
    /// is cut down (`baggage`, then `tracestate`, then all of it, recording
    /// `otel_messaging.context.injected = false`) so that a publish that fits this limit
    /// uninstrumented still fits it.
    ///
    /// Defaults to 262 144 bytes (256 KiB, the SNS message size limit).
    pub fn with_max_message_bytes(mut self, bytes: usize) -> Self {
        self.max_message_bytes = bytes;
        self
    }

    /// Records a FIFO topic message's `MessageGroupId` and `MessageDeduplicationId` on its publish
    /// (or create) span as `otel_messaging.aws.sns.message_group_id` and
    /// `otel_messaging.aws.sns.message_deduplication_id` (this project's namespace: semconv v1.44
    /// has no attribute for them), each cut to 256 bytes. A group id is often a customer or an
    /// order id, so this is opt-in, as Kafka message keys are.
    ///
    /// Defaults to `false`.
    pub fn with_fifo_ids(mut self, enabled: bool) -> Self {
        self.fifo_ids = enabled;
        self
    }

    pub(crate) fn fifo_ids(&self) -> bool {
        self.fifo_ids
    }

    /// The limit set by [`with_max_message_bytes`](Self::with_max_message_bytes), in bytes.
    pub(crate) fn max_message_bytes(&self) -> usize {
        self.max_message_bytes
    }

    /// `server.address` and `server.port` of the client's endpoint, if known.
    pub(crate) fn server(&self) -> Option<(&str, Option<u16>)> {
        self.server.as_ref().map(|(host, port)| (host.as_ref(), *port))
    }

    pub(crate) fn create_spans(&self) -> bool {
        self.create_spans
    }
}

/// Host and port of an endpoint URL (`http://127.0.0.1:5000`, `https://sns.eu-west-1.amazonaws.com`);
/// the scheme's port when the URL names none.
fn parse_endpoint(url: &str) -> Option<(Arc<str>, Option<u16>)> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("https", url));
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit()) => (h, p.parse().ok()),
        _ => (authority, None),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.or(match scheme {
        "https" => Some(443),
        "http" => Some(80),
        _ => None,
    });
    (!host.is_empty()).then(|| (Arc::from(host), port))
}

#[cfg(test)]
mod tests {
    use super::parse_endpoint;

    #[test]
    fn endpoints_give_host_and_port() {
        let p = |u| parse_endpoint(u).map(|(h, p)| (h.to_string(), p));
        assert_eq!(p("http://127.0.0.1:5000"), Some(("127.0.0.1".into(), Some(5000))));
        assert_eq!(
            p("https://sns.eu-west-1.amazonaws.com/"),
            Some(("sns.eu-west-1.amazonaws.com".into(), Some(443)))
        );
        assert_eq!(p("http://[::1]:4566/path"), Some(("::1".into(), Some(4566))));
        assert_eq!(p(""), None);
    }
}
