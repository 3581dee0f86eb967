//! [`DemoTelemetry`]: global telemetry for examples and demos.

use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};

use super::{sdk_w3c_propagator, waterfall};

/// Global telemetry for examples and demos: installs a global tracer provider that keeps spans in
/// memory and the SDK's W3C Trace Context + Baggage propagators (a `TextMapCompositePropagator` of the two) as the global
/// propagator — remember that the opentelemetry-rust default global propagator is a no-op.
#[derive(Debug)]
pub struct DemoTelemetry {
    /// The installed global tracer provider.
    pub provider: SdkTracerProvider,
    spans: InMemorySpanExporter,
}

impl DemoTelemetry {
    /// Installs the global tracer provider and propagator.
    pub fn install() -> Self {
        let spans = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder().with_simple_exporter(spans.clone()).build();
        opentelemetry::global::set_tracer_provider(provider.clone());
        opentelemetry::global::set_text_map_propagator(sdk_w3c_propagator());
        DemoTelemetry { provider, spans }
    }

    /// Every span ended so far.
    pub fn spans(&self) -> Vec<SpanData> {
        let _ = self.provider.force_flush();
        self.spans.get_finished_spans().unwrap_or_default()
    }

    /// The [`waterfall`] of every span ended so far.
    pub fn waterfall(&self) -> String {
        let _ = self.provider.force_flush();
        waterfall(&self.spans.get_finished_spans().unwrap_or_default())
    }

    /// Shuts the provider down.
    ///
    /// # Errors
    ///
    /// The SDK's shutdown error (e.g. already shut down).
    pub fn shutdown(self) -> opentelemetry_sdk::error::OTelSdkResult {
        self.provider.shutdown()
    }
}
