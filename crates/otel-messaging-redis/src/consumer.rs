//! Traced consuming: `XREADGROUP`/`XREAD` receive spans linking every entry
//! ([`StreamsConsumerExt::xread_options_traced`]), per-entry process spans ([`StreamEntryExt::start_process`]),
//! `XACK` settle spans, `XAUTOCLAIM` with delivery counts, and enveloped list pops and pub/sub
//! messages.

use std::{future::Future, sync::Arc, time::SystemTime};

use opentelemetry::{Context, context::FutureExt as _};
use otel_messaging::{OperationType, TracedMessage};
use redis::{
    RedisResult, ToRedisArgs,
    aio::ConnectionLike,
    streams::{StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamReadOptions, StreamReadReply},
};

use crate::{
    attributes::{RedisView, entry_link_attributes, entry_time, error_type},
    carrier::StreamFieldsExtractor,
    config::{EntryFacts, RedisInstrumentation, entry_address, entry_key, settle_key},
};

mod queue;
pub use queue::{MsgExt, QueueConsumerExt, QueueMessage};

/// `messaging.operation.name` of stream read spans: `receive`.
pub(crate) const OPERATION_RECEIVE: &str = "receive";
/// `messaging.operation.name` of `XAUTOCLAIM` spans: `claim`.
pub(crate) const OPERATION_CLAIM: &str = "claim";
/// `messaging.operation.name` of process spans: `process`.
pub(crate) const OPERATION_PROCESS: &str = "process";
/// `messaging.operation.name` of `XACK` spans: `ack`.
pub(crate) const OPERATION_ACK: &str = "ack";

/// The one key of a command's key list, as text (`None` for several keys).
fn single_key<K: ToRedisArgs>(keys: &[K]) -> Option<String> {
    match keys {
        [key] => key.to_redis_args().first().map(|k| String::from_utf8_lossy(k).into_owned()),
        _ => None,
    }
}

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
    let group_arc: Option<Arc<str>> = group.map(Arc::from);
    let mut links = Vec::with_capacity(count);
    for (stream_name, ids) in streams {
        let stream: Arc<str> = Arc::from(stream_name);
        for entry in ids {
            // The entry's context read once (lever 26, BENCHMARKS.md): for its link here, its
            // process span (kept with its stream and group when small) and the link of its XACK,
            // wherever that is called (issue "Correct by default", point 4).
            let context = instrumentation.instrumenter.extract_delivered(&StreamFieldsExtractor(&entry.map));
            let link = context.link(Vec::new());
            if let Some(link) = &link {
                instrumentation.settles.put(settle_key(stream_name, &entry.id), link.clone());
            }
            links.extend(link.map(|mut link| {
                link.attributes = entry_link_attributes(&entry.id);
                link
            }));
            let context = context.keepable();
            let facts = EntryFacts { stream: stream.clone(), group: group_arc.clone(), context };
            instrumentation.handoff.put_copy(entry_key(entry), entry_address(entry), facts);
        }
    }
    instrumentation
        .instrumenter
        .operation(&view)
        .with_parent(parent)
        .with_start_time(started)
        .with_links(links)
        .start()
        .end_ok();
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
///
/// The claim is what the server did: counts that do not parse are left out (`None`, as the native
/// reply has them), never an error that would hide claimed entries (reliability review L10).
fn claim_with_counts(value: redis::Value) -> RedisResult<StreamAutoClaimReply> {
    let (claim, counts): (redis::Value, redis::Value) = redis::from_redis_value(value)?;
    let mut reply: StreamAutoClaimReply = redis::from_redis_value(claim)?;
    if let Ok(counts) = redis::from_redis_value::<Vec<usize>>(counts) {
        for (entry, count) in reply.claimed.iter_mut().zip(counts) {
            entry.delivered_count = (count > 0).then_some(count);
        }
    }
    Ok(reply)
}

/// Traced stream consuming on any async redis-rs connection.
pub trait StreamsConsumerExt:
    ConnectionLike + Send + Sized + crate::sealed::Sealed<crate::sealed::StreamsConsumerExt>
{
    /// `XREAD`/`XREADGROUP` like `AsyncCommands::xread_options`, returning the parsed
    /// [`StreamReadReply`], and one `receive {stream}` CLIENT span (`receive` alone when several
    /// streams answered) from the call to the reply, linking every entry's creation context with
    /// its id as `messaging.message.id` link attribute, `messaging.batch.message_count`, and the
    /// consumer group of the options. No span when nothing was read; a failed read records its
    /// span (timed from the call) with `error.type`, counting no message. Entries are counted in
    /// `messaging.client.consumed.messages` here, not again when processed, and each entry's stream
    /// and group are kept for its process span ([`StreamEntryExt::start_process`]). Uses
    /// [`RedisInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn xread_options_traced<K, ID>(
        &mut self,
        keys: &[K],
        ids: &[ID],
        options: &StreamReadOptions,
    ) -> impl Future<Output = RedisResult<StreamReadReply>> + Send
    where
        K: ToRedisArgs + Sync,
        ID: ToRedisArgs + Sync,
    {
        self.xread_options_traced_with(RedisInstrumentation::shared(), keys, ids, options)
    }

    /// [`xread_options_traced`](Self::xread_options_traced) with an explicit instrumentation.
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn xread_options_traced_with<K, ID>(
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
        let key = single_key(keys);
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
                    let mut view = RedisView::new(
                        OperationType::Receive,
                        OPERATION_RECEIVE,
                        key.as_deref(),
                        instrumentation,
                    );
                    view.group = group.as_deref();
                    instrumentation
                        .instrumenter
                        .operation(&view)
                        .with_parent(&parent)
                        .with_start_time(started)
                        .start()
                        .end_error(&error_type(e), e);
                }
            }
            result
        }
    }

    /// `XREAD STREAMS key... id...` with default options, traced as
    /// [`xread_options_traced`](Self::xread_options_traced). Uses
    /// [`RedisInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn xread_traced<K, ID>(
        &mut self,
        keys: &[K],
        ids: &[ID],
    ) -> impl Future<Output = RedisResult<StreamReadReply>> + Send
    where
        K: ToRedisArgs + Sync,
        ID: ToRedisArgs + Sync,
    {
        self.xread_traced_with(RedisInstrumentation::shared(), keys, ids)
    }

    /// [`xread_traced`](Self::xread_traced) with an explicit instrumentation.
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn xread_traced_with<K, ID>(
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
        async move {
            self.xread_options_traced_with(instrumentation, keys, ids, &options).with_context(parent).await
        }
    }

    /// `XAUTOCLAIM key group consumer min-idle start [COUNT n]` like `AsyncCommands::xautoclaim_options`,
    /// inside one `claim {stream}` CLIENT span that links every claimed entry's creation context
    /// (link attributes: message id). The native command is sent alone, in one round trip, and its
    /// reply comes back unchanged (`StreamId::delivered_count` stays `None`, as natively), so
    /// cancelling this call strands no more entries than cancelling the native call.
    ///
    /// With [`RedisInstrumentation::with_claim_delivery_counts`], the claim and an `XPENDING` per
    /// claimed id run in one atomic script instead (still one round trip), and each claimed entry's
    /// `delivered_count` is filled in; processing it with [`StreamEntryExt::start_process`] then records
    /// `otel_messaging.message.delivery_count`.
    ///
    /// Uses [`RedisInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The native error, unchanged (the span records it).
    fn xautoclaim_traced(
        &mut self,
        key: &str,
        group: &str,
        consumer: &str,
        min_idle_time_ms: u64,
        start: &str,
        options: StreamAutoClaimOptions,
    ) -> impl Future<Output = RedisResult<StreamAutoClaimReply>> + Send {
        self.xautoclaim_traced_with(
            RedisInstrumentation::shared(),
            key,
            group,
            consumer,
            min_idle_time_ms,
            start,
            options,
        )
    }

    /// [`xautoclaim_traced`](Self::xautoclaim_traced) with an explicit instrumentation.
    ///
    /// # Errors
    ///
    /// The native error, unchanged (the span records it).
    #[allow(clippy::too_many_arguments)]
    fn xautoclaim_traced_with(
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
                    instrumentation
                        .instrumenter
                        .operation(&view)
                        .with_parent(&parent)
                        .with_start_time(started)
                        .start()
                        .end_error(&error_type(e), e);
                }
            }
            result
        }
    }

    /// `XACK key group id...` inside an `ack {stream}` settle span (CLIENT); returns the number of
    /// entries acknowledged. `messaging.batch.message_count` is set when more than one id is given,
    /// `messaging.message.id` when one is. The span starts when the future is first polled, with
    /// the current context as parent (the process span inside the handler; `.with_context(cx)`
    /// works), and links to the creation context of each acknowledged entry that a traced read of
    /// this instrumentation returned (kept for up to 1 000 unacknowledged entries), wherever the
    /// `XACK` is made (semconv v1.44 messaging-spans.md, "Settlement spans"). Uses
    /// [`RedisInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn xack_traced<ID: ToRedisArgs + Sync>(
        &mut self,
        key: &str,
        group: &str,
        ids: &[ID],
    ) -> impl Future<Output = RedisResult<usize>> + Send {
        self.xack_traced_with(RedisInstrumentation::shared(), key, group, ids)
    }

    /// [`xack_traced`](Self::xack_traced) with an explicit instrumentation.
    ///
    /// # Errors
    ///
    /// The native error, unchanged.
    fn xack_traced_with<ID: ToRedisArgs + Sync>(
        &mut self,
        instrumentation: &RedisInstrumentation,
        key: &str,
        group: &str,
        ids: &[ID],
    ) -> impl Future<Output = RedisResult<usize>> + Send {
        let mut cmd = redis::cmd("XACK");
        cmd.arg(key).arg(group).arg(ids);
        let ids: Vec<String> = ids
            .iter()
            .flat_map(ToRedisArgs::to_redis_args)
            .map(|id| String::from_utf8_lossy(&id).into_owned())
            .collect();
        async move {
            // Started when first polled (the command is sent then), in the current context, and
            // linked to the creation context of each entry a traced read returned.
            let mut view = RedisView::new(OperationType::Settle, OPERATION_ACK, Some(key), instrumentation);
            view.group = Some(group);
            view.batch = (ids.len() > 1).then_some(ids.len() as u64);
            view.message_id = ids.first().filter(|_| ids.len() == 1).map(String::as_str);
            let links =
                ids.iter().filter_map(|id| instrumentation.settles.take(&settle_key(key, id))).collect();
            let operation = instrumentation.instrumenter.operation(&view).with_links(links).start();
            let result: RedisResult<usize> = cmd.query_async(self).await;
            operation.end(&result, error_type);
            result
        }
    }
}

impl<C: ConnectionLike + Send + Sized> crate::sealed::Sealed<crate::sealed::StreamsConsumerExt> for C {}
impl<C: ConnectionLike + Send + Sized> StreamsConsumerExt for C {}

/// Process spans for stream entries.
pub trait StreamEntryExt: Sized + crate::sealed::Sealed<crate::sealed::StreamEntryExt> {
    /// Starts the `process {stream}` CONSUMER span of this entry and hands it over as a
    /// [`TracedMessage`] (run the handler with `.process(async |entry| ...)`). The stream and
    /// consumer group are those of the traced read that returned the entry (else
    /// [`RedisInstrumentation::with_stream`]'s); the creation context comes from the entry's
    /// fields; queue wait from the millisecond part of the entry id;
    /// `otel_messaging.message.delivery_count` from `delivered_count` when known (claimed entries).
    /// With [`RedisInstrumentation::with_strip_fields`] the propagation fields are removed from
    /// the entry after they were read. Uses [`RedisInstrumentation::new`].
    fn start_process(self) -> TracedMessage<StreamId> {
        self.start_process_with(RedisInstrumentation::shared())
    }

    /// [`start_process`](Self::start_process) with an explicit instrumentation.
    fn start_process_with(self, instrumentation: &RedisInstrumentation) -> TracedMessage<StreamId>;

    /// Runs `handler` inside this entry's `process {stream}` CONSUMER span (see
    /// [`start_process`](Self::start_process); the entry is only read, so `with_strip_fields` does not apply)
    /// and returns the handler's result unchanged. Uses [`RedisInstrumentation::new`].
    ///
    /// # Errors
    ///
    /// The handler's error, unchanged (span status `Error`, `error.type` = its Rust type name).
    fn process_traced<F, T, E>(&self, handler: F) -> impl Future<Output = Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        self.process_traced_with(RedisInstrumentation::shared(), handler)
    }

    /// [`process_traced`](Self::process_traced) with an explicit instrumentation.
    ///
    /// # Errors
    ///
    /// The handler's error, unchanged.
    fn process_traced_with<F, T, E>(
        &self,
        instrumentation: &RedisInstrumentation,
        handler: F,
    ) -> impl Future<Output = Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display;
}

/// Starts the process operation of a stream entry.
fn start_entry_process(
    instrumentation: &RedisInstrumentation,
    entry: &StreamId,
) -> otel_messaging::Operation {
    let facts = instrumentation.entry_facts(entry);
    let mut view = RedisView::new(
        OperationType::Process,
        OPERATION_PROCESS,
        facts.as_ref().map(|f| &*f.stream),
        instrumentation,
    );
    view.group = facts.as_ref().and_then(|f| f.group.as_deref());
    view.message_id = Some(&entry.id);
    view.sent = entry_time(&entry.id);
    view.delivery_count = entry.delivered_count.map(|n| n as u64);
    view.counted = true;
    let extractor = StreamFieldsExtractor(&entry.map);
    // Its context as the traced read read it, if kept; else read here.
    let kept = facts.as_ref().and_then(|f| f.context.as_ref());
    instrumentation.instrumenter.operation(&view).with_delivered_context(&extractor, kept).start()
}

impl crate::sealed::Sealed<crate::sealed::StreamEntryExt> for StreamId {}
impl StreamEntryExt for StreamId {
    fn process_traced_with<F, T, E>(
        &self,
        instrumentation: &RedisInstrumentation,
        handler: F,
    ) -> impl Future<Output = Result<T, E>>
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        start_entry_process(instrumentation, self).run(handler)
    }

    fn start_process_with(mut self, instrumentation: &RedisInstrumentation) -> TracedMessage<StreamId> {
        let operation = start_entry_process(instrumentation, &self);
        if instrumentation.strip_fields() {
            let fields = instrumentation.instrumenter.propagation_fields();
            self.map.retain(|k, _| !fields.iter().any(|f| k.eq_ignore_ascii_case(f)));
        }
        TracedMessage::new(self, operation)
    }
}

#[cfg(test)]
#[allow(clippy::expect_used)]
mod claim_tests {
    use redis::Value;

    use super::claim_with_counts;

    fn claim_reply() -> Value {
        let entry = Value::Array(vec![
            Value::BulkString(b"1-0".to_vec()),
            Value::Array(vec![Value::BulkString(b"job".to_vec()), Value::BulkString(b"1".to_vec())]),
        ]);
        Value::Array(vec![
            Value::BulkString(b"0-0".to_vec()),
            Value::Array(vec![entry]),
            Value::Array(vec![]),
        ])
    }

    #[test]
    fn counts_fill_the_claimed_entries() {
        let reply = claim_with_counts(Value::Array(vec![claim_reply(), Value::Array(vec![Value::Int(3)])]))
            .expect("parsed");
        assert_eq!(reply.claimed.len(), 1);
        assert_eq!(reply.claimed[0].delivered_count, Some(3));
    }

    /// Counts that do not parse leave the claimed entries to the caller, without counts.
    #[test]
    fn unparsable_counts_never_hide_the_claim() {
        let reply = claim_with_counts(Value::Array(vec![claim_reply(), Value::SimpleString("oops".into())]))
            .expect("the claim still comes back");
        assert_eq!(reply.claimed.len(), 1);
        assert_eq!(reply.claimed[0].delivered_count, None);
    }
}
