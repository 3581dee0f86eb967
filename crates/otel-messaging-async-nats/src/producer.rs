//! Traced publishes: core NATS [`ClientExt::publish_traced`] and
//! [`ClientExt::request_traced`] (request/reply in one trace), and JetStream
//! [`JetStreamExt::publish_traced`] (the span ends at the PubAck).
//!
//! Every publish is a `publish {subject}` PRODUCER span whose context is written into the message
//! headers as the creation context (semconv v1.44 `messaging-spans.md`, "Producer spans"). Native
//! results and errors come back unchanged.

use std::{future::IntoFuture, pin::Pin};

use async_nats::{
    Client, HeaderMap, Message, PublishError, RequestError, ToSubject,
    jetstream::{
        self,
        context::{PublishAckFuture, PublishError as JetStreamPublishError},
        publish::PublishAck,
    },
};
use bytes::Bytes;
use opentelemetry::propagation::Injector as _;
use otel_messaging::{__private::CollectedFields, Operation};

use crate::{
    attributes::{PublishView, error_type},
    carrier::{HeaderMapExtractor, HeaderMapInjector},
    config::NatsInstrumentation,
};

/// Starts the publish span of one message and writes its context into `headers`, within
/// `max_payload` (the server's limit on headers + payload, bytes).
///
/// A publish that fits `max_payload` uninstrumented never fails because of the context: the
/// fields are degraded as the core's `fit_fields` does (without `baggage`, then `traceparent`
/// alone, then nothing, recording `otel_messaging.context.injected = false`). A publish already
/// over the limit is left to fail natively. A server without header support (`headers: false`
/// in its INFO; it would reject the `HPUB` of an injected context) gets no context at all
/// (reliability review L8).
fn start_publish(
    instrumentation: &NatsInstrumentation,
    subject: &str,
    mut headers: HeaderMap,
    payload: &Bytes,
    limits: Limits,
) -> (Operation, HeaderMap) {
    let Limits { max_payload, headers_supported } = limits;
    let view = PublishView {
        subject,
        body_size: payload.len() as u64,
        client: instrumentation,
        msg_id: crate::attributes::msg_id(&headers),
    };
    let parent = otel_messaging::current_context();
    let operation = instrumentation
        .instrumenter
        .operation(&view)
        .with_parent(&parent)
        .with_outgoing_message(&HeaderMapExtractor(&headers))
        .start();
    let mut fields = CollectedFields::default();
    operation.inject(&mut fields);
    if !fields.0.is_empty() && !headers_supported {
        fields.0.clear();
        operation.record_not_injected();
    }
    if !fields.0.is_empty() {
        let native =
            if headers.is_empty() { payload.len() } else { header_block_len(&headers) + payload.len() };
        if native <= max_payload {
            // Counted as if every field were new (a replaced header only makes it smaller).
            let base = header_block_len(&headers) + payload.len();
            let fits = |f: &[(std::borrow::Cow<'static, str>, String)]| {
                base + CollectedFields::size(f, HEADER_LINE_OVERHEAD) <= max_payload
            };
            if !otel_messaging::__private::fit_fields(&mut fields.0, fits) {
                operation.record_not_injected();
            }
        }
    }
    let mut injector = HeaderMapInjector(&mut headers);
    for (key, value) in fields.0 {
        injector.set(&key, value);
    }
    (operation, headers)
}

/// What the server allows a publish: `max_payload` (bytes, headers included) and whether it
/// supports headers at all.
#[derive(Clone, Copy)]
struct Limits {
    max_payload: usize,
    headers_supported: bool,
}

impl Limits {
    fn of(client: &Client) -> Self {
        Limits { max_payload: client.max_payload(), headers_supported: client.server_info().headers }
    }
}

/// Bytes of a header line besides its name and value: `": "` and `"\r\n"`.
const HEADER_LINE_OVERHEAD: usize = 4;

/// Bytes of `headers` on the wire (`NATS/1.0\r\n`, a `name: value\r\n` line per value, `\r\n`),
/// as async-nats counts them against `max_payload` (0 for no headers at all is the caller's case).
fn header_block_len(headers: &HeaderMap) -> usize {
    let lines: usize = headers
        .iter()
        .map(|(name, values)| {
            values
                .iter()
                .map(|v| AsRef::<str>::as_ref(name).len() + v.as_str().len() + HEADER_LINE_OVERHEAD)
                .sum::<usize>()
        })
        .sum();
    "NATS/1.0\r\n".len() + lines + "\r\n".len()
}

fn end<T, E: crate::attributes::NatsError + std::fmt::Display>(operation: Operation, result: &Result<T, E>) {
    operation.end(result, |e| error_type(e));
}

/// Traced publishes and requests on a core NATS [`Client`].
pub trait ClientExt: crate::sealed::Sealed<crate::sealed::ClientExt> {
    /// Publishes like `client.publish(subject, payload)`, inside a `publish {subject}` PRODUCER
    /// span whose context travels in the message headers. Core NATS has no acknowledgement: the
    /// span ends when the client has taken the message.
    ///
    /// Uses [`NatsInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The native `PublishError`, unchanged; the span then ends with `error.type`.
    fn publish_traced<S: ToSubject + Send>(
        &self,
        subject: S,
        payload: Bytes,
    ) -> impl Future<Output = Result<(), PublishError>> + Send;

    /// [`publish_traced`](Self::publish_traced) with an explicit instrumentation.
    ///
    /// # Errors
    ///
    /// As [`publish_traced`](Self::publish_traced).
    fn publish_traced_with<S: ToSubject + Send>(
        &self,
        instrumentation: &NatsInstrumentation,
        subject: S,
        payload: Bytes,
    ) -> impl Future<Output = Result<(), PublishError>> + Send;

    /// Publishes like `client.publish_with_headers(subject, headers, payload)`, the context added
    /// to `headers` (a valid context already in `headers` is kept, and linked).
    ///
    /// # Errors
    ///
    /// As [`publish_traced`](Self::publish_traced).
    fn publish_with_headers_traced_with<S: ToSubject + Send>(
        &self,
        instrumentation: &NatsInstrumentation,
        subject: S,
        headers: HeaderMap,
        payload: Bytes,
    ) -> impl Future<Output = Result<(), PublishError>> + Send;

    /// [`publish_with_headers_traced_with`](Self::publish_with_headers_traced_with) on
    /// [`NatsInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// As [`publish_traced`](Self::publish_traced).
    fn publish_with_headers_traced<S: ToSubject + Send>(
        &self,
        subject: S,
        headers: HeaderMap,
        payload: Bytes,
    ) -> impl Future<Output = Result<(), PublishError>> + Send {
        self.publish_with_headers_traced_with(NatsInstrumentation::shared(), subject, headers, payload)
    }

    /// Sends a request like `client.request(subject, payload)`, inside a `publish {subject}`
    /// PRODUCER span that ends when the reply arrives (or the request fails): the responder's
    /// process span is its child and the reply comes back in the same trace.
    ///
    /// Uses [`NatsInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The native `RequestError` (`no_responders`, `timed_out`, …), unchanged; the span then ends
    /// with `error.type`.
    fn request_traced<S: ToSubject + Send>(
        &self,
        subject: S,
        payload: Bytes,
    ) -> impl Future<Output = Result<Message, RequestError>> + Send;

    /// [`request_traced`](Self::request_traced) with an explicit instrumentation.
    ///
    /// # Errors
    ///
    /// As [`request_traced`](Self::request_traced).
    fn request_traced_with<S: ToSubject + Send>(
        &self,
        instrumentation: &NatsInstrumentation,
        subject: S,
        payload: Bytes,
    ) -> impl Future<Output = Result<Message, RequestError>> + Send;
}

impl crate::sealed::Sealed<crate::sealed::ClientExt> for Client {}
impl ClientExt for Client {
    fn publish_traced<S: ToSubject + Send>(
        &self,
        subject: S,
        payload: Bytes,
    ) -> impl Future<Output = Result<(), PublishError>> + Send {
        self.publish_with_headers_traced_with(
            NatsInstrumentation::shared(),
            subject,
            HeaderMap::new(),
            payload,
        )
    }

    fn publish_traced_with<S: ToSubject + Send>(
        &self,
        instrumentation: &NatsInstrumentation,
        subject: S,
        payload: Bytes,
    ) -> impl Future<Output = Result<(), PublishError>> + Send {
        self.publish_with_headers_traced_with(instrumentation, subject, HeaderMap::new(), payload)
    }

    fn publish_with_headers_traced_with<S: ToSubject + Send>(
        &self,
        instrumentation: &NatsInstrumentation,
        subject: S,
        headers: HeaderMap,
        payload: Bytes,
    ) -> impl Future<Output = Result<(), PublishError>> + Send {
        let subject = subject.to_subject();
        // The span starts, and takes its parent, when the future is first polled (as the native
        // publish does its work then): `.with_context(cx)` and `.instrument(span)` work.
        async move {
            let (operation, headers) =
                start_publish(instrumentation, subject.as_str(), headers, &payload, Limits::of(self));
            let result = self.publish_with_headers(subject, headers, payload).await;
            end(operation, &result);
            result
        }
    }

    fn request_traced<S: ToSubject + Send>(
        &self,
        subject: S,
        payload: Bytes,
    ) -> impl Future<Output = Result<Message, RequestError>> + Send {
        self.request_traced_with(NatsInstrumentation::shared(), subject, payload)
    }

    fn request_traced_with<S: ToSubject + Send>(
        &self,
        instrumentation: &NatsInstrumentation,
        subject: S,
        payload: Bytes,
    ) -> impl Future<Output = Result<Message, RequestError>> + Send {
        let subject = subject.to_subject();
        async move {
            let (operation, headers) = start_publish(
                instrumentation,
                subject.as_str(),
                HeaderMap::new(),
                &payload,
                Limits::of(self),
            );
            let result = self.request_with_headers(subject, headers, payload).await;
            end(operation, &result);
            result
        }
    }
}

/// A JetStream publish whose `publish {subject}` span ends at the PubAck, with the message's
/// `Nats-Msg-Id` as `messaging.message.id`, or without one the PubAck's stream sequence; await it
/// like the native `PublishAckFuture`.
#[must_use = "the span ends, and the publish is confirmed, only when this is awaited"]
#[derive(Debug)]
pub struct TracedPublishAck {
    inner: PublishAckFuture,
    operation: Operation,
    /// Whether the message has a `Nats-Msg-Id` (then its id; else the PubAck's stream sequence).
    named: bool,
}

impl IntoFuture for TracedPublishAck {
    type Output = Result<PublishAck, JetStreamPublishError>;
    type IntoFuture = Pin<Box<dyn Future<Output = Self::Output> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        let TracedPublishAck { inner, mut operation, named } = self;
        operation.arm_cancellation();
        Box::pin(async move {
            let result = inner.await;
            if let Ok(ack) = &result
                && !named
            {
                operation.set_attributes([crate::attributes::message_id(ack.sequence.to_string())]);
            }
            end(operation, &result);
            result
        })
    }
}

/// Traced publishes on a JetStream [`jetstream::Context`].
pub trait JetStreamExt: crate::sealed::Sealed<crate::sealed::JetStreamExt> {
    /// Publishes like `context.publish(subject, payload)` inside a `publish {subject}` PRODUCER
    /// span; await the returned [`TracedPublishAck`] for the PubAck, which ends the span.
    ///
    /// Uses [`NatsInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The native `PublishError` of either step, unchanged; the span then ends with `error.type`.
    fn publish_traced<S: ToSubject + Send>(
        &self,
        subject: S,
        payload: Bytes,
    ) -> impl Future<Output = Result<TracedPublishAck, JetStreamPublishError>> + Send;

    /// [`publish_traced`](Self::publish_traced) with an explicit instrumentation.
    ///
    /// # Errors
    ///
    /// As [`publish_traced`](Self::publish_traced).
    fn publish_traced_with<S: ToSubject + Send>(
        &self,
        instrumentation: &NatsInstrumentation,
        subject: S,
        payload: Bytes,
    ) -> impl Future<Output = Result<TracedPublishAck, JetStreamPublishError>> + Send {
        self.publish_with_headers_traced_with(instrumentation, subject, HeaderMap::new(), payload)
    }

    /// [`publish_with_headers_traced_with`](Self::publish_with_headers_traced_with) on
    /// [`NatsInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// As [`publish_traced`](Self::publish_traced).
    fn publish_with_headers_traced<S: ToSubject + Send>(
        &self,
        subject: S,
        headers: HeaderMap,
        payload: Bytes,
    ) -> impl Future<Output = Result<TracedPublishAck, JetStreamPublishError>> + Send {
        self.publish_with_headers_traced_with(NatsInstrumentation::shared(), subject, headers, payload)
    }

    /// [`publish_traced`](Self::publish_traced) with an explicit instrumentation and the
    /// message's own headers (a valid context already in them is kept, and linked).
    ///
    /// # Errors
    ///
    /// As [`publish_traced`](Self::publish_traced).
    fn publish_with_headers_traced_with<S: ToSubject + Send>(
        &self,
        instrumentation: &NatsInstrumentation,
        subject: S,
        headers: HeaderMap,
        payload: Bytes,
    ) -> impl Future<Output = Result<TracedPublishAck, JetStreamPublishError>> + Send;
}

impl crate::sealed::Sealed<crate::sealed::JetStreamExt> for jetstream::Context {}
impl JetStreamExt for jetstream::Context {
    fn publish_traced<S: ToSubject + Send>(
        &self,
        subject: S,
        payload: Bytes,
    ) -> impl Future<Output = Result<TracedPublishAck, JetStreamPublishError>> + Send {
        self.publish_with_headers_traced_with(
            NatsInstrumentation::shared(),
            subject,
            HeaderMap::new(),
            payload,
        )
    }

    fn publish_with_headers_traced_with<S: ToSubject + Send>(
        &self,
        instrumentation: &NatsInstrumentation,
        subject: S,
        headers: HeaderMap,
        payload: Bytes,
    ) -> impl Future<Output = Result<TracedPublishAck, JetStreamPublishError>> + Send {
        let subject = subject.to_subject();
        async move {
            let limits = Limits::of(&self.client());
            let named = crate::attributes::msg_id(&headers).is_some();
            let (operation, headers) =
                start_publish(instrumentation, subject.as_str(), headers, &payload, limits);
            match self.publish_with_headers(subject, headers, payload).await {
                Ok(inner) => Ok(TracedPublishAck { inner, operation, named }),
                Err(e) => {
                    operation.end_error(&error_type(&e), &e);
                    Err(e)
                }
            }
        }
    }
}
