//! Traced producing: `XADD` with the context in entry fields ([`StreamsExt::xadd_traced`],
//! [`StreamsExt::xadd_maxlen_traced`]), and the envelope for lists and pub/sub
//! ([`QueueExt::lpush_traced`], [`QueueExt::rpush_traced`], [`QueueExt::publish_traced`]).
//!
//! Every send is a `send {destination}` PRODUCER span that ends with the server's reply.

use std::future::Future;

use opentelemetry::propagation::Extractor as _;
use otel_messaging::OperationType;
use redis::{FromRedisValue, RedisResult, ToRedisArgs, Value, aio::ConnectionLike, streams::StreamMaxlen};

use crate::{
    attributes::{RedisView, error_type, message_id_attribute},
    carrier::{ArgPairsExtractor, FieldsInjector},
    config::RedisInstrumentation,
    envelope::{EnvelopeHeaders, SENT_TIME_FIELD, decode, wrap},
};

/// `messaging.operation.name` of send spans: `send`.
pub(crate) const OPERATION_SEND: &str = "send";

/// The stream name of a key's serialized arguments (its first), for the span.
fn destination_of(key_args: &[Vec<u8>]) -> std::borrow::Cow<'_, str> {
    key_args.first().map_or(std::borrow::Cow::Borrowed(""), |k| String::from_utf8_lossy(k))
}

async fn xadd<C, K, ID, F, V, RV>(
    conn: &mut C,
    instrumentation: &RedisInstrumentation,
    key: K,
    maxlen: Option<StreamMaxlen>,
    id: ID,
    items: &[(F, V)],
) -> RedisResult<RV>
where
    C: ConnectionLike + Send,
    K: ToRedisArgs,
    ID: ToRedisArgs,
    F: ToRedisArgs,
    V: ToRedisArgs,
    RV: FromRedisValue,
{
    // The parent is the current context when the future is first polled (an `async fn`'s body
    // runs then), so `.with_context(cx)` and `.instrument(span)` work.
    let parent = otel_messaging::current_context();
    // Key and items serialized once: read here (stream name, an existing creation context) and
    // written into the command as they are (the same arguments `cmd.arg(key)` would write).
    let key_args = key.to_redis_args();
    let stream = destination_of(&key_args);
    let item_args = items.to_redis_args();
    let view = RedisView::new(OperationType::Send, OPERATION_SEND, Some(&stream), instrumentation);
    let operation = instrumentation
        .instrumenter
        .operation(&view)
        .with_parent(&parent)
        .with_outgoing_message(&ArgPairsExtractor(&item_args))
        .start();
    let mut fields = Vec::new();
    operation.inject(&mut FieldsInjector(&mut fields));
    let mut cmd = redis::cmd("XADD");
    cmd.arg(&key_args);
    if let Some(maxlen) = maxlen {
        cmd.arg(maxlen);
    }
    cmd.arg(id).arg(&item_args).arg(&fields);
    let result: RedisResult<Value> = cmd.query_async(conn).await;
    match &result {
        Ok(Value::BulkString(bytes)) => {
            if let Ok(entry_id) = std::str::from_utf8(bytes) {
                operation.set_attributes([message_id_attribute(entry_id)]);
            }
            operation.end_ok();
        }
        Ok(_) => operation.end_ok(),
        Err(e) => operation.end_error(&error_type(e), e),
    }
    RV::from_redis_value(result?).map_err(Into::into)
}

/// Traced stream producing on any async redis-rs connection.
pub trait StreamsExt:
    ConnectionLike + Send + Sized + crate::sealed::Sealed<crate::sealed::StreamsExt>
{
    /// `XADD key id field value ...` like `AsyncCommands::xadd` (same arguments, same generic
    /// return), inside a `send {stream}` PRODUCER span. The context is written as extra entry
    /// fields named by the propagator (`traceparent`, `tracestate`, `baggage`), unless the items
    /// already carry a creation context, which is kept. The returned entry id becomes
    /// `messaging.message.id`. The parent is [`otel_messaging::current_context`] when the future is first
    /// polled (so `.with_context(cx)` and `.instrument(span)` set it).
    ///
    /// Uses [`RedisInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The native error, unchanged (span status `Error`, `error.type` as the
    /// crate's front page lists under "Errors").
    fn xadd_traced<K, ID, F, V, RV>(
        &mut self,
        key: K,
        id: ID,
        items: &[(F, V)],
    ) -> impl Future<Output = RedisResult<RV>> + Send
    where
        K: ToRedisArgs + Send,
        ID: ToRedisArgs + Send,
        F: ToRedisArgs + Sync,
        V: ToRedisArgs + Sync,
        RV: FromRedisValue,
    {
        self.xadd_traced_with(RedisInstrumentation::shared(), key, id, items)
    }

    /// [`xadd_traced`](Self::xadd_traced) with an explicit instrumentation.
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn xadd_traced_with<K, ID, F, V, RV>(
        &mut self,
        instrumentation: &RedisInstrumentation,
        key: K,
        id: ID,
        items: &[(F, V)],
    ) -> impl Future<Output = RedisResult<RV>> + Send
    where
        K: ToRedisArgs + Send,
        ID: ToRedisArgs + Send,
        F: ToRedisArgs + Sync,
        V: ToRedisArgs + Sync,
        RV: FromRedisValue,
    {
        xadd(self, instrumentation, key, None, id, items)
    }

    /// `XADD key MAXLEN ... id field value ...` like `AsyncCommands::xadd_maxlen`, traced as
    /// [`xadd_traced`](Self::xadd_traced). Uses [`RedisInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn xadd_maxlen_traced<K, ID, F, V, RV>(
        &mut self,
        key: K,
        maxlen: StreamMaxlen,
        id: ID,
        items: &[(F, V)],
    ) -> impl Future<Output = RedisResult<RV>> + Send
    where
        K: ToRedisArgs + Send,
        ID: ToRedisArgs + Send,
        F: ToRedisArgs + Sync,
        V: ToRedisArgs + Sync,
        RV: FromRedisValue,
    {
        self.xadd_maxlen_traced_with(RedisInstrumentation::shared(), key, maxlen, id, items)
    }

    /// [`xadd_maxlen_traced`](Self::xadd_maxlen_traced) with an explicit instrumentation.
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn xadd_maxlen_traced_with<K, ID, F, V, RV>(
        &mut self,
        instrumentation: &RedisInstrumentation,
        key: K,
        maxlen: StreamMaxlen,
        id: ID,
        items: &[(F, V)],
    ) -> impl Future<Output = RedisResult<RV>> + Send
    where
        K: ToRedisArgs + Send,
        ID: ToRedisArgs + Send,
        F: ToRedisArgs + Sync,
        V: ToRedisArgs + Sync,
        RV: FromRedisValue,
    {
        xadd(self, instrumentation, key, Some(maxlen), id, items)
    }
}

impl<C: ConnectionLike + Send + Sized> crate::sealed::Sealed<crate::sealed::StreamsExt> for C {}
impl<C: ConnectionLike + Send + Sized> StreamsExt for C {}

async fn send_enveloped<C: ConnectionLike + Send>(
    conn: &mut C,
    instrumentation: &RedisInstrumentation,
    command: &'static str,
    destination: &str,
    payload: &[u8],
) -> RedisResult<usize> {
    let parent = otel_messaging::current_context();
    // A payload the caller enveloped already with its own creation context keeps it: the send
    // span links that context instead of replacing it (as on every other broker), and the outer
    // envelope carries the caller's fields. The payload itself is still delivered byte for byte.
    let (existing, _) = decode(payload);
    let mut view = RedisView::new(OperationType::Send, OPERATION_SEND, Some(destination), instrumentation);
    view.body_size = Some(payload.len() as u64);
    let no_headers = EnvelopeHeaders::default();
    let existing = existing.unwrap_or(no_headers);
    let operation = instrumentation
        .instrumenter
        .operation(&view)
        .with_parent(&parent)
        .with_outgoing_message(&existing)
        .start();
    let mut headers = if operation.is_creation_context() { EnvelopeHeaders::default() } else { existing };
    operation.inject(&mut headers);
    if !headers.0.is_empty() && headers.get(SENT_TIME_FIELD).is_none() {
        // The send time, for the consumer's queue wait (only with a context to carry, so a plain
        // payload stays plain).
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        headers.0.push((SENT_TIME_FIELD.to_owned(), millis.to_string()));
    }
    let enveloped = wrap(&headers, payload, instrumentation.envelope_always());
    let result: RedisResult<usize> = redis::cmd(command)
        .arg(destination)
        .arg(enveloped.as_deref().unwrap_or(payload))
        .query_async(conn)
        .await;
    operation.end(&result, error_type);
    result
}

/// Traced list queues and pub/sub with the opt-in envelope ([`crate::envelope`]): the payload is
/// wrapped with the trace context when there is one to carry (see [`crate::envelope::wrap`]);
/// consumers unwrap it with the traced receive functions and always get the payload back byte
/// for byte.
pub trait QueueExt: ConnectionLike + Send + Sized + crate::sealed::Sealed<crate::sealed::QueueExt> {
    /// `LPUSH key <payload, enveloped with its context>` inside a `send {key}` PRODUCER span; returns the list length.
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn lpush_traced(&mut self, key: &str, payload: &[u8]) -> impl Future<Output = RedisResult<usize>> + Send {
        self.lpush_traced_with(RedisInstrumentation::shared(), key, payload)
    }

    /// [`lpush_traced`](Self::lpush_traced) with an explicit instrumentation.
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn lpush_traced_with(
        &mut self,
        instrumentation: &RedisInstrumentation,
        key: &str,
        payload: &[u8],
    ) -> impl Future<Output = RedisResult<usize>> + Send {
        send_enveloped(self, instrumentation, "LPUSH", key, payload)
    }

    /// `RPUSH key <payload, enveloped with its context>` inside a `send {key}` PRODUCER span; returns the list length.
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn rpush_traced(&mut self, key: &str, payload: &[u8]) -> impl Future<Output = RedisResult<usize>> + Send {
        self.rpush_traced_with(RedisInstrumentation::shared(), key, payload)
    }

    /// [`rpush_traced`](Self::rpush_traced) with an explicit instrumentation.
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn rpush_traced_with(
        &mut self,
        instrumentation: &RedisInstrumentation,
        key: &str,
        payload: &[u8],
    ) -> impl Future<Output = RedisResult<usize>> + Send {
        send_enveloped(self, instrumentation, "RPUSH", key, payload)
    }

    /// `PUBLISH channel <payload, enveloped with its context>` inside a `send {channel}` PRODUCER span; returns the
    /// number of subscribers that received it.
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn publish_traced(
        &mut self,
        channel: &str,
        payload: &[u8],
    ) -> impl Future<Output = RedisResult<usize>> + Send {
        self.publish_traced_with(RedisInstrumentation::shared(), channel, payload)
    }

    /// [`publish_traced`](Self::publish_traced) with an explicit instrumentation.
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn publish_traced_with(
        &mut self,
        instrumentation: &RedisInstrumentation,
        channel: &str,
        payload: &[u8],
    ) -> impl Future<Output = RedisResult<usize>> + Send {
        send_enveloped(self, instrumentation, "PUBLISH", channel, payload)
    }
}

impl<C: ConnectionLike + Send + Sized> crate::sealed::Sealed<crate::sealed::QueueExt> for C {}
impl<C: ConnectionLike + Send + Sized> QueueExt for C {}

#[cfg(test)]
mod tests {
    use redis::ToRedisArgs;

    /// The traced `XADD` writes key and items from their serialized arguments: the command sent
    /// must be byte for byte the one the native arguments make.
    fn same_command<K: ToRedisArgs, F: ToRedisArgs, V: ToRedisArgs>(key: K, items: &[(F, V)]) {
        let mut native = redis::cmd("XADD");
        native.arg(&key).arg("*").arg(items);
        let mut ours = redis::cmd("XADD");
        ours.arg(key.to_redis_args()).arg("*").arg(items.to_redis_args());
        assert_eq!(ours.get_packed_command(), native.get_packed_command());
    }

    #[test]
    fn serialized_key_and_items_make_the_native_command() {
        same_command("orders", &[("payload", "x")]);
        same_command(String::from("orders"), &[("n", 42_i64), ("m", -1)]);
        same_command(b"bin\xffkey".as_slice(), &[("blob", b"\x00\x01\xfe".as_slice()), ("", b"".as_slice())]);
        same_command("orders", &[(1_u8, 2.5_f64)]);
        same_command("orders", &[] as &[(&str, &str)]);
    }
}
