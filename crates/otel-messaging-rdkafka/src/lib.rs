#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

/// Implements `ClientContext` for a wrapper context `$ty<C>` with an `inner: C` field: every
/// callback goes to `inner`; `$on_stats` first sees each raw statistics document.
macro_rules! delegate_client_context {
    ($ty:ident) => {
        delegate_client_context!($ty, |_this, _document| {});
    };
    ($ty:ident, |$this:ident, $document:ident| $on_stats:block) => {
        impl<C: rdkafka::ClientContext> rdkafka::ClientContext for $ty<C> {
            const ENABLE_REFRESH_OAUTH_TOKEN: bool = C::ENABLE_REFRESH_OAUTH_TOKEN;

            fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
                self.inner.log(level, fac, log_message);
            }

            fn stats(&self, statistics: rdkafka::statistics::Statistics) {
                self.inner.stats(statistics);
            }

            fn stats_raw(&self, statistics: &[u8]) {
                let ($this, $document) = (self, statistics);
                $on_stats
                self.inner.stats_raw(statistics);
            }

            fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
                self.inner.error(error, reason);
            }

            fn generate_oauth_token(
                &self,
                oauthbearer_config: Option<&str>,
            ) -> Result<rdkafka::client::OAuthToken, Box<dyn std::error::Error>> {
                self.inner.generate_oauth_token(oauthbearer_config)
            }
        }
    };
}

mod attributes;
mod carrier;
mod config;
mod consumer;
mod producer;
pub mod statistics;

#[cfg(feature = "testing")]
pub use carrier::raw_headers;
pub use carrier::{HeadersExtractor, HeadersInjector, RawHeaders};
pub use config::KafkaInstrumentation;
pub use consumer::{ConsumerExt, KafkaMessage, MessageExt, StreamConsumerExt, TracedStream};
// What a user of this crate configures, reachable without a second dependency (the process-parent
// policy, the instrumenter and its builder, the enricher).
pub use otel_messaging::{
    DestinationTemplates, MessagingInstrumenter, MessagingInstrumenterBuilder, ProcessParent, SetGlobalError,
    SpanEnricher, SpanStart, TracedMessage,
};
pub use producer::{BaseProducerExt, FutureProducerExt, TracedDelivery, TracingProducerContext};
pub use statistics::{KafkaStatistics, StatisticsContext};

/// Seals the extension traits: each is implemented in this crate for the client types it
/// instruments, and nowhere else, so methods can be added to them without a breaking change.
/// `Sealed<M>` is implemented for exactly the types that implement the trait `M` names.
mod sealed {
    pub trait Sealed<Marker> {}
    #[derive(Debug)]
    pub struct BaseProducerExt<C>(std::marker::PhantomData<fn() -> C>);
    #[derive(Debug)]
    pub struct ConsumerExt<C>(std::marker::PhantomData<fn() -> C>);
    #[derive(Debug)]
    pub enum FutureProducerExt {}
    #[derive(Debug)]
    pub enum MessageExt {}
    #[derive(Debug)]
    pub struct StreamConsumerExt<C>(std::marker::PhantomData<fn() -> C>);
}
