//! Traced consuming: `XREADGROUP`/`XREAD` receive spans linking every entry
//! ([`StreamsConsumerExt::xread_options_traced`]), per-entry process spans ([`StreamEntryExt::traced`]),
//! `XACK` settle spans, `XAUTOCLAIM` with delivery counts, and enveloped list pops and pub/sub
//! messages.

use std::{future::Future, time::SystemTime};

use opentelemetry::{Context, KeyValue, context::FutureExt as _, propagation::Extractor};
use otel_messaging::{OperationType, TracedMessage, propagation::EmptyExtractor};
use redis::{
    RedisResult, ToRedisArgs,
    aio::ConnectionLike,
    streams::{StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply},
};

use crate::{
    attributes::{RedisView, entry_link_attributes, entry_time, error_type},
    carrier::StreamFieldsExtractor,
    config::RedisInstrumentation,
    envelope::decode,
};

/// `messaging.operation.name` of stream read spans: `receive`.
pub const OPERATION_RECEIVE: &str = "receive";
/// `messaging.operation.name` of `XAUTOCLAIM` spans: `claim`.
pub const OPERATION_CLAIM: &str = "claim";
/// `messaging.operation.name` of process spans: `process`.
pub const OPERATION_PROCESS: &str = "process";
/// `messaging.operation.name` of `XACK` spans: `ack`.
pub const OPERATION_ACK: &str = "ack";

/// The consumer group of `XREADGROUP` options (`GROUP <group> <consumer>`).
fn group_of(options: &StreamReadOptions) -> Option<String> {
    let args = options.to_redis_args();
    let at = args.iter().position(|a| a.eq_ignore_ascii_case(b"GROUP"))?;
    args.get(at + 1).map(|g| String::from_utf8_lossy(g).into_owned())
}

/// Records one receive-type span over stream entries, linking each entry's creation context.
fn record_entries<'e>(
    instrumentation: &RedisInstrumentation,
    parent: &Context,
    started: SystemTime,
    name: &'static str,
    group: Option<&str>,
    streams: impl Iterator<Item = (&'e str, &'e [StreamId])> + Clone,
) {
    let count: usize = streams.clone().map(|(_, ids)| ids.len()).sum();
    if count == 0 {
        return;
    }
    let mut keys = streams.clone().filter(|(_, ids)| !ids.is_empty()).map(|(k, _)| k);
    let first = keys.next();
    let single = if keys.next().is_none() { first } else { None };
    let mut view = RedisView::new(OperationType::Receive, name, single, instrumentation);
    view.group = group;
    view.batch = Some(count as u64);
    let entries: Vec<(StreamFieldsExtractor<'_>, Vec<KeyValue>)> = streams
        .flat_map(|(_, ids)| ids.iter())
        .map(|e| (StreamFieldsExtractor(&e.map), entry_link_attributes(&e.id)))
        .collect();
    let messages = entries.iter().map(|(x, a)| (x as &dyn Extractor, a.clone()));
    instrumentation.instrumenter.start_batch(&view, parent, Some(started), messages).end_ok();
}

/// `XAUTOCLAIM` followed by `XPENDING key group id id 1 consumer` for each claimed id, atomically;
/// returns `{claim reply, {delivery count per claimed entry}}`. KEYS[1] = stream; ARGV = group,
/// consumer, min-idle-time, start, options.
const CLAIM_WITH_COUNTS: &str = r"
local claim = redis.call('XAUTOCLAIM', KEYS[1], unpack(ARGV))
local counts = {}
for i, entry in ipairs(claim[2]) do
  local id = entry
  if type(entry) == 'table' then id = entry[1] end
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2])
  if pending[1] then counts[i] = pending[1][4] else counts[i] = 0 end
end
return {claim, counts}
";

/// Parses the reply of [`CLAIM_WITH_COUNTS`] into the native reply with delivery counts filled in.
fn claim_with_counts(value: redis::Value) -> RedisResult<StreamAutoClaimReply> {
    let (claim, counts): (redis::Value, Vec<usize>) = redis::from_redis_value(value)?;
    let mut reply: StreamAutoClaimReply = redis::from_redis_value(claim)?;
    for (entry, count) in reply.claimed.iter_mut().zip(counts) {
        entry.delivered_count = (count > 0).then_some(count);
    }
    Ok(reply)
}

/// Traced stream consuming on any async redis-rs connection.
pub trait StreamsConsumerExt: ConnectionLike + Send + Sized {
    /// `XREAD`/`XREADGROUP` like `AsyncCommands::xread_options`, returning the parsed
    /// [`StreamReadReply`], and one `receive {stream}` CLIENT span (`receive` alone when several
    /// streams answered) from the call to the reply, linking every entry's creation context with
    /// its id as `messaging.message.id` link attribute, `messaging.batch.message_count`, and the
    /// consumer group of the options. No span when nothing was read. Entries are counted in
    /// `messaging.client.consumed.messages` here, not again when processed.
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn xread_options_traced<K, ID>(
        &mut self,
        instrumentation: &RedisInstrumentation,
        keys: &[K],
        ids: &[ID],
        options: &StreamReadOptions,
    ) -> impl Future<Output = RedisResult<StreamReadReply>> + Send
    where
        K: ToRedisArgs + Sync,
        ID: ToRedisArgs + Sync,
    {
        let parent = otel_messaging::current_context();
        let started = SystemTime::now();
        let group = group_of(options);
        let mut cmd = redis::cmd(if group.is_some() { "XREADGROUP" } else { "XREAD" });
        cmd.arg(options).arg("STREAMS").arg(keys).arg(ids);
        async move {
            let result: RedisResult<StreamReadReply> = cmd.query_async(self).await;
            match &result {
                Ok(reply) => {
                    let streams = reply.keys.iter().map(|k| (k.key.as_str(), k.ids.as_slice()));
                    record_entries(
                        instrumentation,
                        &parent,
                        started,
                        OPERATION_RECEIVE,
                        group.as_deref(),
                        streams,
                    );
                }
                Err(e) => {
                    let view =
                        RedisView::new(OperationType::Receive, OPERATION_RECEIVE, None, instrumentation);
                    instrumentation.instrumenter.start(&view, &parent).end_error(&error_type(e), e);
                }
            }
            result
        }
    }

    /// `XREAD STREAMS key... id...` with default options, traced as
    /// [`xread_options_traced`](Self::xread_options_traced).
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn xread_traced<K, ID>(
        &mut self,
        instrumentation: &RedisInstrumentation,
        keys: &[K],
        ids: &[ID],
    ) -> impl Future<Output = RedisResult<StreamReadReply>> + Send
    where
        K: ToRedisArgs + Sync,
        ID: ToRedisArgs + Sync,
    {
        let options = StreamReadOptions::default();
        let parent = otel_messaging::current_context();
        async move { self.xread_options_traced(instrumentation, keys, ids, &options).with_context(parent).await }
    }

    /// `XAUTOCLAIM key group consumer min-idle start [COUNT n]` like `AsyncCommands::xautoclaim_options`,
    /// inside one `claim {stream}` CLIENT span that links every claimed entry's creation context
    /// (link attributes: message id). The native command is sent alone, in one round trip, and its
    /// reply comes back unchanged (`StreamId::delivered_count` stays `None`, as natively), so
    /// cancelling this call strands no more entries than cancelling the native call.
    ///
    /// With [`RedisInstrumentation::with_claim_delivery_counts`], the claim and an `XPENDING` per
    /// claimed id run in one atomic script instead (still one round trip), and each claimed entry's
    /// `delivered_count` is filled in; processing it with [`StreamEntryExt::traced`] then records
    /// `otel_messaging.redis.delivery_count`.
    ///
    /// # Errors
    ///
    /// The native error, unchanged (the span records it).
    #[allow(clippy::too_many_arguments)]
    fn xautoclaim_traced(
        &mut self,
        instrumentation: &RedisInstrumentation,
        key: &str,
        group: &str,
        consumer: &str,
        min_idle_time_ms: u64,
        start: &str,
        options: StreamAutoClaimOptions,
    ) -> impl Future<Output = RedisResult<StreamAutoClaimReply>> + Send {
        let parent = otel_messaging::current_context();
        let started = SystemTime::now();
        let counts = instrumentation.claim_delivery_counts();
        let mut cmd = if counts {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(CLAIM_WITH_COUNTS)
                .arg(1)
                .arg(key)
                .arg(group)
                .arg(consumer)
                .arg(min_idle_time_ms)
                .arg(start);
            cmd
        } else {
            let mut cmd = redis::cmd("XAUTOCLAIM");
            cmd.arg(key).arg(group).arg(consumer).arg(min_idle_time_ms).arg(start);
            cmd
        };
        cmd.arg(options);
        let (key, group) = (key.to_owned(), group.to_owned());
        async move {
            let result: RedisResult<StreamAutoClaimReply> = if counts {
                cmd.query_async::<redis::Value>(&mut *self).await.and_then(claim_with_counts)
            } else {
                cmd.query_async(&mut *self).await
            };
            match &result {
                Ok(reply) => {
                    let streams = std::iter::once((key.as_str(), reply.claimed.as_slice()));
                    record_entries(instrumentation, &parent, started, OPERATION_CLAIM, Some(&group), streams);
                }
                Err(e) => {
                    let mut view =
                        RedisView::new(OperationType::Receive, OPERATION_CLAIM, Some(&key), instrumentation);
                    view.group = Some(&group);
                    instrumentation.instrumenter.start(&view, &parent).end_error(&error_type(e), e);
                }
            }
            result
        }
    }

    /// `XACK key group id...` inside an `ack {stream}` settle span (CLIENT); returns the number of
    /// entries acknowledged. `messaging.batch.message_count` is set when more than one id is given.
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn xack_traced<ID: ToRedisArgs + Sync>(
        &mut self,
        instrumentation: &RedisInstrumentation,
        key: &str,
        group: &str,
        ids: &[ID],
    ) -> impl Future<Output = RedisResult<usize>> + Send {
        let mut view = RedisView::new(OperationType::Settle, OPERATION_ACK, Some(key), instrumentation);
        view.group = Some(group);
        view.batch = (ids.len() > 1).then_some(ids.len() as u64);
        let operation = instrumentation.instrumenter.start(&view, &otel_messaging::current_context());
        let mut cmd = redis::cmd("XACK");
        cmd.arg(key).arg(group).arg(ids);
        async move {
            let result: RedisResult<usize> = cmd.query_async(self).await;
            operation.end(&result, error_type);
            result
        }
    }
}

impl<C: ConnectionLike + Send + Sized> StreamsConsumerExt for C {}

/// Process spans for stream entries.
pub trait StreamEntryExt: Sized {
    /// Starts the `process {stream}` CONSUMER span of this entry and hands it over as a
    /// [`TracedMessage`] (run the handler with `.process(async |entry| ...)`). The creation context
    /// comes from the entry's fields; queue wait from the millisecond part of the entry id;
    /// `otel_messaging.redis.delivery_count` from `delivered_count` when known (claimed entries).
    /// With [`RedisInstrumentation::with_strip_fields`] the propagation fields are removed from
    /// the entry after they were read.
    fn traced(
        self,
        instrumentation: &RedisInstrumentation,
        stream: &str,
        group: Option<&str>,
    ) -> TracedMessage<StreamId>;

    /// Runs `handler` inside this entry's `process {stream}` CONSUMER span (see
    /// [`traced`](Self::traced)) and returns the entry and the handler's result unchanged.
    ///
    /// # Errors
    ///
    /// The handler's error, unchanged (span status `Error`, `error.type` = its Rust type name).
    fn process_traced<T, E>(
        self,
        instrumentation: &RedisInstrumentation,
        stream: &str,
        group: Option<&str>,
        handler: impl AsyncFnOnce(&StreamId) -> Result<T, E>,
    ) -> impl Future<Output = (StreamId, Result<T, E>)>
    where
        E: std::fmt::Display,
    {
        self.traced(instrumentation, stream, group).process(handler)
    }
}

impl StreamEntryExt for StreamId {
    fn traced(
        mut self,
        instrumentation: &RedisInstrumentation,
        stream: &str,
        group: Option<&str>,
    ) -> TracedMessage<StreamId> {
        let mut view =
            RedisView::new(OperationType::Process, OPERATION_PROCESS, Some(stream), instrumentation);
        view.group = group;
        view.message_id = Some(&self.id);
        view.sent = entry_time(&self.id);
        view.delivery_count = self.delivered_count.map(|n| n as u64);
        view.counted = true;
        let operation = instrumentation.instrumenter.start_process(&view, &StreamFieldsExtractor(&self.map));
        if instrumentation.strip_fields() {
            for field in ["traceparent", "tracestate", "baggage"] {
                self.map.retain(|k, _| !k.eq_ignore_ascii_case(field));
            }
        }
        TracedMessage::new(self, operation)
    }
}

/// A message popped from a list or received on a pub/sub channel, with the envelope removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueMessage {
    /// The list or channel it came from.
    pub source: String,
    /// The payload: the envelope's payload, or the bytes unchanged when they were not an envelope.
    pub payload: Vec<u8>,
}

fn start_queue_process(
    instrumentation: &RedisInstrumentation,
    source: String,
    bytes: &[u8],
) -> TracedMessage<QueueMessage> {
    let (headers, payload) = decode(bytes);
    let mut view = RedisView::new(OperationType::Process, OPERATION_PROCESS, Some(&source), instrumentation);
    view.body_size = Some(payload.len() as u64);
    let operation = match &headers {
        Some(h) => instrumentation.instrumenter.start_process(&view, h),
        None => instrumentation.instrumenter.start_process(&view, &EmptyExtractor),
    };
    let payload = payload.to_vec();
    TracedMessage::new(QueueMessage { source, payload }, operation)
}

/// Traced list consumption with the envelope.
pub trait QueueConsumerExt: ConnectionLike + Send + Sized {
    /// `BRPOP key timeout`; a popped message comes back with its `process {key}` CONSUMER span
    /// started (context from the envelope; a plain payload is delivered unchanged as a new trace).
    /// `None` on timeout.
    ///
    /// redis-rs's multiplexed connection answers a command with an error after its response
    /// timeout (500 ms by default), shorter than most pop timeouts: block on a connection whose
    /// response timeout exceeds `timeout_secs` (`AsyncConnectionConfig::set_response_timeout`).
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn brpop_traced(
        &mut self,
        instrumentation: &RedisInstrumentation,
        key: &str,
        timeout_secs: f64,
    ) -> impl Future<Output = RedisResult<Option<TracedMessage<QueueMessage>>>> + Send {
        let mut cmd = redis::cmd("BRPOP");
        cmd.arg(key).arg(timeout_secs);
        async move {
            let popped: Option<(String, Vec<u8>)> = cmd.query_async(self).await?;
            Ok(popped.map(|(source, bytes)| start_queue_process(instrumentation, source, &bytes)))
        }
    }

    /// `BLMOVE source destination <from> <to> timeout` (the reliable-queue pattern); the moved
    /// message comes back with its `process {source}` CONSUMER span started. `None` on timeout.
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn blmove_traced(
        &mut self,
        instrumentation: &RedisInstrumentation,
        source: &str,
        destination: &str,
        from: redis::Direction,
        to: redis::Direction,
        timeout_secs: f64,
    ) -> impl Future<Output = RedisResult<Option<TracedMessage<QueueMessage>>>> + Send {
        let mut cmd = redis::cmd("BLMOVE");
        cmd.arg(source).arg(destination).arg(from).arg(to).arg(timeout_secs);
        let source = source.to_owned();
        async move {
            let moved: Option<Vec<u8>> = cmd.query_async(self).await?;
            Ok(moved.map(|bytes| start_queue_process(instrumentation, source, &bytes)))
        }
    }
}

impl<C: ConnectionLike + Send + Sized> QueueConsumerExt for C {}

/// Traced pub/sub messages.
pub trait MsgExt {
    /// Starts the `process {channel}` CONSUMER span of a pub/sub message (context from the
    /// envelope; a plain payload is delivered unchanged as a new trace).
    fn traced(&self, instrumentation: &RedisInstrumentation) -> TracedMessage<QueueMessage>;
}

impl MsgExt for redis::Msg {
    fn traced(&self, instrumentation: &RedisInstrumentation) -> TracedMessage<QueueMessage> {
        start_queue_process(instrumentation, self.get_channel_name().to_owned(), self.get_payload_bytes())
    }
}
