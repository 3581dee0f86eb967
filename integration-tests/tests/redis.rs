//! Redis (redis-rs) against a real Redis (`just brokers-up`, or `REDIS_URL`), asserting whole
//! traces through explicit in-memory providers.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::{collections::HashSet, time::Duration};

use futures_util::StreamExt as _;
use integration_tests::{redis_url, unique_name};
use opentelemetry::{
    Context, KeyValue, Value,
    trace::{FutureExt as _, SpanKind, TraceContextExt, Tracer as _},
};
use otel_messaging::{
    ProcessParent,
    testing::{TestTelemetry, assert_one_trace, assert_trace, attributes, shape, span, waterfall},
};
use otel_messaging_redis::{
    MsgExt as _, QueueConsumerExt as _, QueueExt as _, RedisInstrumentation, StreamEntryExt as _,
    StreamsConsumerExt as _, StreamsExt as _, envelope,
};
use redis::{
    AsyncCommands as _,
    aio::MultiplexedConnection,
    streams::{StreamAutoClaimOptions, StreamReadOptions},
};

async fn connect() -> (redis::Client, MultiplexedConnection) {
    let client = redis::Client::open(redis_url()).expect("client");
    let conn = client.get_multiplexed_async_connection().await.expect("connect");
    (client, conn)
}

fn tracing(t: &TestTelemetry, client: &redis::Client) -> RedisInstrumentation {
    RedisInstrumentation::from_client(client).with_instrumenter(t.instrumenter())
}

async fn group(conn: &mut MultiplexedConnection, stream: &str, group: &str) {
    let () = conn.xgroup_create_mkstream(stream, group, "$").await.expect("group");
}

#[tokio::test]
async fn xadd_xreadgroup_process_xack_is_one_trace() {
    let t = TestTelemetry::new();
    let (client, mut conn) = connect().await;
    let tr = tracing(&t, &client);
    let stream = unique_name("orders");
    group(&mut conn, &stream, "workers").await;

    let tracer = t.tracer("app");
    let request = Context::new().with_span(tracer.start("POST /orders"));
    // The parent is the current context when the traced method is called.
    let id: String = async { conn.xadd_traced_with(&tr, &stream, "*", &[("order", "42")]).await }
        .with_context(request.clone())
        .await
        .expect("xadd");
    request.span().end();

    let opts = StreamReadOptions::default().group("workers", "w1").count(10);
    let reply = conn.xread_options_traced_with(&tr, &[&stream], &[">"], &opts).await.expect("read");
    let entry = reply.keys[0].ids[0].clone();
    assert_eq!(entry.id, id);
    assert!(entry.map.contains_key("traceparent"), "context travels as an entry field");
    let (_entry, result) = entry
        .start_process_with(&tr)
        .process(async |e| {
            t.tracer("worker").in_span("db insert", |_| ());
            conn.clone().xack_traced_with(&tr, &stream, "workers", &[&e.id]).await
        })
        .await;
    assert_eq!(result.expect("handler"), 1);

    let spans = t.spans();
    let (send, receive, process, ack) = (
        format!("send {stream}"),
        format!("receive {stream}"),
        format!("process {stream}"),
        format!("ack {stream}"),
    );
    assert_trace(
        &spans,
        &[
            shape("POST /orders", SpanKind::Internal),
            shape(&send, SpanKind::Producer).parent("POST /orders"),
            shape(&receive, SpanKind::Client).links(&[&send]),
            shape(&process, SpanKind::Consumer).parent(&send).links(&[&send]),
            shape("db insert", SpanKind::Internal).parent(&process),
            // Linked to its entry's creation context, wherever the XACK is made.
            shape(&ack, SpanKind::Client).parent(&process).links(&[&send]),
        ],
    );
    let s = attributes(span(&spans, &send));
    assert_eq!(s["messaging.system"], Value::from("redis"));
    assert_eq!(s["messaging.message.id"], Value::from(id.clone()));
    assert_eq!(s["server.address"], Value::from("127.0.0.1"));
    let r = attributes(span(&spans, &receive));
    assert_eq!(r["messaging.batch.message_count"], Value::I64(1));
    assert_eq!(r["messaging.consumer.group.name"], Value::from("workers"));
    // The receive span's link names its entry (feature table row 10).
    let link = &span(&spans, &receive).links[0];
    assert!(
        link.attributes.contains(&KeyValue::new("messaging.message.id", id.clone())),
        "{:?}",
        link.attributes
    );
    let p = attributes(span(&spans, &process));
    assert_eq!(p["messaging.message.id"], Value::from(id));
    assert!(matches!(p["otel_messaging.queue.wait.duration"], Value::F64(w) if (0.0..60.0).contains(&w)));
    let in_trace: Vec<_> = spans.iter().filter(|s| s.name != receive).cloned().collect();
    assert_one_trace(&in_trace);
}

#[tokio::test]
async fn link_only_policy_and_stripped_fields() {
    let t = TestTelemetry::new();
    let (client, mut conn) = connect().await;
    let producer = tracing(&t, &client);
    let consumer = tracing(&t, &client)
        .with_instrumenter(t.instrumenter().with_process_parent(ProcessParent::Link))
        .with_strip_fields(true);
    let stream = unique_name("orders");
    let _: String = conn.xadd_traced_with(&producer, &stream, "*", &[("k", "v")]).await.expect("xadd");
    let reply = conn.xread_traced_with(&producer, &[&stream], &["0"]).await.expect("read");
    let entry = reply.keys[0].ids[0].clone();
    let traced = entry.start_process_with(&consumer);
    assert_eq!(traced.message().map.keys().collect::<Vec<_>>(), ["k"], "propagation fields stripped");
    drop(traced);
    let spans = t.spans();
    let send = format!("send {stream}");
    let process = format!("process {stream}");
    assert_trace(
        &spans,
        &[
            shape(&send, SpanKind::Producer),
            shape(format!("receive {stream}"), SpanKind::Client).links(&[&send]),
            shape(&process, SpanKind::Consumer).links(&[&send]),
        ],
    );
    assert_ne!(span(&spans, &send).span_context.trace_id(), span(&spans, &process).span_context.trace_id());
}

#[tokio::test]
async fn two_consumers_in_a_group_process_each_entry_once_in_its_producers_trace() {
    let t = TestTelemetry::new();
    let (client, mut conn) = connect().await;
    let tr = tracing(&t, &client);
    let stream = unique_name("jobs");
    group(&mut conn, &stream, "g").await;
    let mut sent = Vec::new();
    for i in 0..4 {
        let id: String = conn.xadd_traced_with(&tr, &stream, "*", &[("job", i)]).await.expect("xadd");
        sent.push(id);
    }
    let mut seen = Vec::new();
    for consumer in ["c1", "c2"] {
        let opts = StreamReadOptions::default().group("g", consumer).count(2);
        let reply = conn.xread_options_traced_with(&tr, &[&stream], &[">"], &opts).await.expect("read");
        for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
            let (entry, ok) =
                entry.start_process_with(&tr).process(async |_| Ok::<_, redis::RedisError>(())).await;
            ok.expect("handler");
            seen.push(entry.id);
        }
    }
    seen.sort();
    assert_eq!(seen, sent, "each entry delivered exactly once across the two consumers");
    let spans = t.spans();
    let sends: Vec<_> = spans.iter().filter(|s| s.span_kind == SpanKind::Producer).collect();
    let processes: Vec<_> = spans.iter().filter(|s| s.span_kind == SpanKind::Consumer).collect();
    assert_eq!(processes.len(), 4);
    for p in processes {
        let parent = sends
            .iter()
            .find(|s| s.span_context.span_id() == p.parent_span_id)
            .expect("parent is a send span");
        assert_eq!(parent.span_context.trace_id(), p.span_context.trace_id());
    }
    let traces: HashSet<_> = sends.iter().map(|s| s.span_context.trace_id()).collect();
    assert_eq!(traces.len(), 4, "one trace per producer");
}

#[tokio::test]
async fn claimed_pending_entry_continues_the_original_trace_with_delivery_count() {
    let t = TestTelemetry::new();
    let (client, mut conn) = connect().await;
    let tr = tracing(&t, &client).with_claim_delivery_counts(true);
    let stream = unique_name("claims");
    group(&mut conn, &stream, "g").await;
    let id: String = conn.xadd_traced_with(&tr, &stream, "*", &[("job", "1")]).await.expect("xadd");
    // c1 reads and "crashes" without acking.
    let opts = StreamReadOptions::default().group("g", "c1");
    let _ = conn.xread_options_traced_with(&tr, &[&stream], &[">"], &opts).await.expect("read");
    // c2 claims entries idle for at least 0 ms.
    let reply = conn
        .xautoclaim_traced_with(&tr, &stream, "g", "c2", 0, "0-0", StreamAutoClaimOptions::default())
        .await
        .expect("claim");
    assert_eq!(reply.claimed.len(), 1);
    let entry = reply.claimed[0].clone();
    assert_eq!(entry.id, id);
    assert_eq!(entry.delivered_count, Some(2));
    drop(entry.start_process_with(&tr));
    let spans = t.spans();
    let send = format!("send {stream}");
    let process = span(&spans, &format!("process {stream}"));
    assert_eq!(process.parent_span_id, span(&spans, &send).span_context.span_id(), "{}", waterfall(&spans));
    assert_eq!(attributes(process)["otel_messaging.message.delivery_count"], Value::I64(2));
    let claim = span(&spans, &format!("claim {stream}"));
    assert_eq!(claim.links.len(), 1);
}

/// By default the traced XAUTOCLAIM is the native command alone: the same reply as the untraced
/// call (no delivery counts filled in), one round trip.
#[tokio::test]
async fn default_claim_returns_the_native_reply_unchanged() {
    let t = TestTelemetry::new();
    let (client, mut conn) = connect().await;
    let tr = tracing(&t, &client);
    let stream = unique_name("claims");
    group(&mut conn, &stream, "g").await;
    for job in ["1", "2"] {
        let _: String = conn.xadd_traced_with(&tr, &stream, "*", &[("job", job)]).await.expect("xadd");
    }
    let opts = StreamReadOptions::default().group("g", "c1");
    let _ = conn.xread_options_traced_with(&tr, &[&stream], &[">"], &opts).await.expect("read");
    let options = || StreamAutoClaimOptions::default().count(1);
    let traced =
        conn.xautoclaim_traced_with(&tr, &stream, "g", "c2", 0, "0-0", options()).await.expect("claim");
    let native: redis::streams::StreamAutoClaimReply =
        conn.xautoclaim_options(&stream, "g", "c3", 0, "0-0", options()).await.expect("claim");
    assert_eq!(traced.claimed.len(), 1);
    assert_eq!(traced.claimed[0].delivered_count, None, "as natively");
    assert_eq!(traced.claimed[0].delivered_count, native.claimed[0].delivered_count);
    assert_eq!(traced.next_stream_id, native.next_stream_id);
    assert_eq!(span(&t.spans(), &format!("claim {stream}")).links.len(), 1);
}

#[tokio::test]
async fn list_queue_with_envelope_continues_context_and_plain_payloads_pass_through() {
    let t = TestTelemetry::new();
    let (client, mut conn) = connect().await;
    let tr = tracing(&t, &client);
    let list = unique_name("queue");
    let every_byte: Vec<u8> = (0..=255u8).collect();
    conn.lpush_traced_with(&tr, &list, &every_byte).await.expect("lpush");
    let _: usize = conn.lpush(&list, b"plain payload").await.expect("plain lpush");
    let _: usize = conn.lpush(&list, b"OTM\x01\x00\x40truncated").await.expect("truncated envelope");
    // A plain payload that starts with the envelope magic and version (review finding M4).
    let lookalike = b"\x8FOTMENV\x02\x00\x00\x00\x00\x00\x00rest".to_vec();
    conn.lpush_traced_with(&tr, &list, &lookalike).await.expect("lpush");

    let first = conn.brpop_traced_with(&tr, &list, 5.0).await.expect("pop").expect("a message");
    assert_eq!(first.message().payload, every_byte, "binary payload with every byte value round-trips");
    drop(first);
    let second = conn.brpop_traced_with(&tr, &list, 5.0).await.expect("pop").expect("a message");
    assert_eq!(second.message().payload, b"plain payload");
    drop(second);
    let dst = unique_name("processing");
    let third = conn
        .blmove_traced_with(&tr, &list, &dst, redis::Direction::Right, redis::Direction::Left, 5.0)
        .await
        .expect("move")
        .expect("a message");
    assert_eq!(
        third.message().payload,
        b"OTM\x01\x00\x40truncated",
        "a malformed envelope is delivered whole"
    );
    drop(third);
    let fourth = conn.brpop_traced_with(&tr, &list, 5.0).await.expect("pop").expect("a message");
    assert_eq!(fourth.message().payload, lookalike, "a look-alike payload arrives byte for byte");
    drop(fourth);

    let spans = t.spans();
    let send = format!("send {list}");
    let processes: Vec<_> = spans.iter().filter(|s| s.name == format!("process {list}")).collect();
    assert_eq!(processes.len(), 4);
    let sends: Vec<_> = spans.iter().filter(|s| s.name == send).collect();
    assert_eq!(processes[0].parent_span_id, sends[0].span_context.span_id());
    assert_eq!(processes[3].parent_span_id, sends[1].span_context.span_id());
    for p in &processes[1..3] {
        assert_eq!(p.parent_span_id, opentelemetry::trace::SpanId::INVALID, "no context: a new trace");
        assert!(p.links.is_empty());
    }
}

/// List messages go through the same send path as every broker (feature table rows 15, 20, 29):
/// the process span records the queue wait from the envelope's send time, and a payload the
/// caller enveloped with its own creation context keeps it (the send span links it, CLIENT) and
/// still arrives byte for byte.
#[tokio::test]
async fn list_messages_record_queue_wait_and_keep_a_callers_creation_context() {
    let t = TestTelemetry::new();
    let (client, mut conn) = connect().await;
    let tr = tracing(&t, &client);
    let list = unique_name("waits");
    conn.lpush_traced_with(&tr, &list, b"job").await.expect("lpush");
    let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let callers =
        envelope::encode(&envelope::EnvelopeHeaders(vec![("traceparent".into(), tp.into())]), b"inner");
    conn.lpush_traced_with(&tr, &list, &callers).await.expect("lpush");

    let first = conn.brpop_traced_with(&tr, &list, 5.0).await.expect("pop").expect("a message");
    assert_eq!(first.message().payload, b"job");
    drop(first);
    let second = conn.brpop_traced_with(&tr, &list, 5.0).await.expect("pop").expect("a message");
    assert_eq!(second.message().payload, callers, "the caller's envelope arrives byte for byte");
    drop(second);

    let spans = t.spans();
    let processes: Vec<_> = spans.iter().filter(|s| s.name == format!("process {list}")).collect();
    let sends: Vec<_> = spans.iter().filter(|s| s.name == format!("send {list}")).collect();
    assert_eq!((processes.len(), sends.len()), (2, 2), "{}", waterfall(&spans));
    let wait = attributes(processes[0]).get("otel_messaging.queue.wait.duration").cloned();
    assert!(matches!(wait, Some(Value::F64(w)) if (0.0..60.0).contains(&w)), "{wait:?}");
    assert_eq!(sends[1].span_kind, SpanKind::Client, "not the creation context");
    assert_eq!(sends[1].links.len(), 1);
    assert_eq!(sends[1].links[0].span_context.trace_id().to_string(), &tp[3..35]);
    assert_eq!(processes[1].span_context.trace_id().to_string(), &tp[3..35], "the caller's trace");
    assert_eq!(processes[1].parent_span_id.to_string(), &tp[36..52]);
}

#[tokio::test]
async fn pubsub_with_envelope_continues_context() {
    let t = TestTelemetry::new();
    let (client, mut conn) = connect().await;
    let tr = tracing(&t, &client);
    let channel = unique_name("events");
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
    pubsub.subscribe(&channel).await.expect("subscribe");
    let receivers: usize = conn.publish_traced_with(&tr, &channel, b"hello").await.expect("publish");
    assert_eq!(receivers, 1);
    let msg = tokio::time::timeout(std::time::Duration::from_secs(5), pubsub.on_message().next())
        .await
        .expect("in time")
        .expect("a message");
    let traced = msg.start_process_with(&tr);
    assert_eq!(traced.message().payload, b"hello");
    drop(traced);
    let spans = t.spans();
    let send = format!("send {channel}");
    assert_trace(
        &spans,
        &[
            shape(&send, SpanKind::Producer),
            shape(format!("process {channel}"), SpanKind::Consumer).parent(&send).links(&[&send]),
        ],
    );
}

/// With nothing to propagate (no context written), list payloads are sent as they are, so an
/// uninstrumented consumer reads exactly what was pushed (review finding M4).
#[tokio::test]
async fn nothing_to_propagate_sends_the_plain_payload() {
    let t = TestTelemetry::new();
    let (client, mut conn) = connect().await;
    let silent = RedisInstrumentation::from_client(&client).with_instrumenter(
        t.instrumenter_builder()
            .with_propagator(opentelemetry::propagation::TextMapCompositePropagator::new(vec![]))
            .build(),
    );
    let list = unique_name("queue");
    conn.lpush_traced_with(&silent, &list, b"plain").await.expect("lpush");
    let raw: Vec<u8> = conn.rpop(&list, None).await.expect("rpop");
    assert_eq!(raw, b"plain");
    conn.lpush_traced_with(&silent.clone().with_envelope_always(true), &list, b"plain").await.expect("lpush");
    let raw: Vec<u8> = conn.rpop(&list, None).await.expect("rpop");
    assert_eq!(
        envelope::decode(&raw),
        (Some(envelope::EnvelopeHeaders::default()), &b"plain"[..]),
        "asked for"
    );
}

// ---- Spec-exact telemetry (issue 10) ----

/// A blocking pop records a `receive {list}` CLIENT span from the call to the pop, linked to
/// the message's creation context; the message is counted once (by the receive).
#[tokio::test]
async fn blocking_pops_record_receive_spans_and_count_once() {
    let t = TestTelemetry::new();
    let (client, mut conn) = connect().await;
    let tr = tracing(&t, &client);
    let list = unique_name("queue");
    conn.rpush_traced_with(&tr, &list, b"job").await.expect("rpush");
    let popped = conn.brpop_traced_with(&tr, &list, 5.0).await.expect("pop").expect("a message");
    let (_, result) = popped.process(async |_| Ok::<_, redis::RedisError>(())).await;
    result.expect("handler");
    let (send, receive, process) =
        (format!("send {list}"), format!("receive {list}"), format!("process {list}"));
    assert_trace(
        &t.spans(),
        &[
            shape(&send, SpanKind::Producer),
            shape(&receive, SpanKind::Client).links(&[&send]).error(false).including([
                KeyValue::new("messaging.operation.type", "receive"),
                KeyValue::new("messaging.destination.name", list.clone()),
            ]),
            shape(&process, SpanKind::Consumer).parent(&send).links(&[&send]),
        ],
    );
    let consumed: u64 =
        t.metrics().iter().filter(|m| m.name == "messaging.client.consumed.messages").map(|m| m.count).sum();
    assert_eq!(consumed, 1);
    // A pop that times out records nothing.
    t.clear_spans();
    let mut blocking = client
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(5))),
        )
        .await
        .expect("connect");
    assert!(blocking.brpop_traced_with(&tr, &list, 0.1).await.expect("pop").is_none());
    assert!(t.spans().is_empty());
}

/// A failed read is timed from the call (here the client's 200 ms response timeout cuts a
/// blocking `XREADGROUP`), carries the stream and group, and counts no consumed message.
#[tokio::test]
async fn a_failed_read_is_timed_from_the_call_and_counts_nothing() {
    let t = TestTelemetry::new();
    let (client, mut conn) = connect().await;
    let tr = tracing(&t, &client);
    let stream = unique_name("orders");
    group(&mut conn, &stream, "g").await;
    let mut impatient = client
        .get_multiplexed_async_connection_with_config(
            &redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_millis(200))),
        )
        .await
        .expect("connect");
    let opts = StreamReadOptions::default().group("g", "c1").block(5_000);
    let before = std::time::SystemTime::now();
    let error = impatient.xread_options_traced_with(&tr, &[&stream], &[">"], &opts).await.expect_err("cut");
    let spans = t.spans();
    let s = span(&spans, &format!("receive {stream}"));
    assert!(s.start_time <= before + Duration::from_millis(50), "started at the call");
    let duration = s.end_time.duration_since(s.start_time).expect("ordered");
    assert!(duration >= Duration::from_millis(150), "covers the wait: {duration:?}");
    let a = attributes(s);
    assert_eq!(a["error.type"], Value::from("Io"), "{error:?}");
    assert_eq!(a["messaging.consumer.group.name"], Value::from("g"));
    assert!(!t.metrics().iter().any(|m| m.name == "messaging.client.consumed.messages"));
}

/// `with_strip_fields` removes every field of the propagator in use (here B3), not only the W3C
/// names; the stream and group of the process span come from the read that returned the entry.
#[tokio::test]
async fn stripping_follows_the_propagator_and_entries_know_their_stream() {
    let t = TestTelemetry::new();
    let (client, mut conn) = connect().await;
    let b3 = t.instrumenter_builder().with_propagator(B3Single).build();
    let tr = RedisInstrumentation::from_client(&client).with_instrumenter(b3).with_strip_fields(true);
    let stream = unique_name("orders");
    group(&mut conn, &stream, "g").await;
    let _: String = conn.xadd_traced_with(&tr, &stream, "*", &[("k", "v")]).await.expect("xadd");
    let opts = StreamReadOptions::default().group("g", "c1").count(1);
    let reply = conn.xread_options_traced_with(&tr, &[&stream], &[">"], &opts).await.expect("read");
    let entry = reply.keys[0].ids[0].clone();
    assert!(entry.map.contains_key("b3"), "the B3 field was written: {:?}", entry.map.keys());
    let (entry, _) = entry.start_process_with(&tr).process(async |_| Ok::<_, redis::RedisError>(())).await;
    assert_eq!(entry.map.keys().collect::<Vec<_>>(), ["k"], "only the application's field is left");
    let spans = t.spans();
    let p = span(&spans, &format!("process {stream}"));
    assert_eq!(attributes(p)["messaging.consumer.group.name"], Value::from("g"));
    assert_eq!(p.parent_span_id, span(&spans, &format!("send {stream}")).span_context.span_id());
}

/// A one-header B3 propagator (`b3: {trace}-{span}-{sampled}`), enough to show that stripping
/// follows the propagator's own fields.
#[derive(Debug)]
struct B3Single;

impl opentelemetry::propagation::TextMapPropagator for B3Single {
    fn inject_context(
        &self,
        cx: &opentelemetry::Context,
        injector: &mut dyn opentelemetry::propagation::Injector,
    ) {
        use opentelemetry::trace::TraceContextExt as _;
        let sc = cx.span().span_context().clone();
        if sc.is_valid() {
            injector.set("b3", format!("{}-{}-{}", sc.trace_id(), sc.span_id(), u8::from(sc.is_sampled())));
        }
    }
    fn extract_with_context(
        &self,
        cx: &opentelemetry::Context,
        extractor: &dyn opentelemetry::propagation::Extractor,
    ) -> opentelemetry::Context {
        use opentelemetry::trace::{
            SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState,
        };
        let parsed = extractor.get("b3").and_then(|v| {
            let mut parts = v.split('-');
            let trace = TraceId::from_hex(parts.next()?).ok()?;
            let span = SpanId::from_hex(parts.next()?).ok()?;
            let flags = if parts.next()? == "1" { TraceFlags::SAMPLED } else { TraceFlags::default() };
            Some(SpanContext::new(trace, span, flags, true, TraceState::default()))
        });
        match parsed {
            Some(sc) => cx.with_remote_span_context(sc),
            None => cx.clone(),
        }
    }
    fn fields(&self) -> opentelemetry::propagation::text_map_propagator::FieldIter<'_> {
        opentelemetry::propagation::text_map_propagator::FieldIter::new(
            B3_FIELDS.get_or_init(|| vec!["b3".to_owned()]),
        )
    }
}

static B3_FIELDS: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();

/// A message received through a `PSUBSCRIBE` pattern: the pattern is the destination template
/// (span name and metrics), the channel the destination name.
#[tokio::test]
async fn pattern_subscriptions_name_spans_after_the_pattern() {
    let t = TestTelemetry::new();
    let (client, mut conn) = connect().await;
    let tr = tracing(&t, &client);
    let prefix = unique_name("events");
    let (pattern, channel) = (format!("{prefix}:*"), format!("{prefix}:eu-1"));
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
    pubsub.psubscribe(&pattern).await.expect("psubscribe");
    conn.publish_traced_with(&tr, &channel, b"hello").await.expect("publish");
    let msg = tokio::time::timeout(Duration::from_secs(5), pubsub.on_message().next())
        .await
        .expect("in time")
        .expect("a message");
    drop(msg.start_process_with(&tr));
    let spans = t.spans();
    let process = span(&spans, &format!("process {pattern}"));
    let a = attributes(process);
    assert_eq!(a["messaging.destination.template"], Value::from(pattern.clone()));
    assert_eq!(a["messaging.destination.name"], Value::from(channel));
    let durations: Vec<_> =
        t.metrics().into_iter().filter(|m| m.name == "messaging.process.duration").collect();
    assert!(durations[0].attributes.contains(&KeyValue::new("messaging.destination.template", pattern)));
}

/// An `XACK` made outside the handler, after processing, still belongs to its entry: linked to the
/// entry's creation context (issue "Correct by default", point 4: it was a root span with no
/// link), with the context current when the future is first polled as its parent
/// (`.with_context`).
#[tokio::test]
async fn an_xack_outside_the_handler_links_its_entry() {
    let t = TestTelemetry::new();
    let (client, mut conn) = connect().await;
    let tr = tracing(&t, &client);
    let stream = unique_name("orders");
    group(&mut conn, &stream, "workers").await;
    let _: String = conn.xadd_traced_with(&tr, &stream, "*", &[("order", "42")]).await.expect("xadd");
    let _: String = conn.xadd_traced_with(&tr, &stream, "*", &[("order", "43")]).await.expect("xadd");
    let opts = StreamReadOptions::default().group("workers", "w1").count(10);
    let reply = conn.xread_options_traced_with(&tr, &[&stream], &[">"], &opts).await.expect("read");
    let ids: Vec<String> = reply.keys[0].ids.iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), 2);
    for entry in &reply.keys[0].ids {
        entry.process_traced_with(&tr, async { Ok::<_, std::io::Error>(()) }).await.expect("handler");
    }
    let worker = Context::new().with_span(t.tracer("app").start("worker tick"));
    let acked = conn
        .xack_traced_with(&tr, &stream, "workers", &ids)
        .with_context(worker.clone())
        .await
        .expect("xack");
    worker.span().end();
    assert_eq!(acked, 2);
    // A second XACK of the same ids links nothing more (the creation contexts were taken).
    let again = conn.xack_traced_with(&tr, &stream, "workers", &ids[..1]).await.expect("xack");
    assert_eq!(again, 0);

    let spans = t.spans();
    let (send, ack) = (format!("send {stream}"), format!("ack {stream}"));
    let sends: Vec<_> = spans.iter().filter(|s| s.name == send).map(|s| s.span_context.span_id()).collect();
    let acks: Vec<_> = spans.iter().filter(|s| s.name == ack).collect();
    assert_eq!(acks.len(), 2, "{}", waterfall(&spans));
    let first = acks.iter().find(|s| s.links.len() == 2).expect("the XACK of both entries links both");
    let linked: Vec<_> = first.links.iter().map(|l| l.span_context.span_id()).collect();
    assert_eq!(linked.iter().collect::<HashSet<_>>(), sends.iter().collect::<HashSet<_>>());
    assert_eq!(first.parent_span_id, span(&spans, "worker tick").span_context.span_id());
    assert_eq!(attributes(first)["messaging.batch.message_count"], Value::I64(2));
    assert!(acks.iter().any(|s| s.links.is_empty()), "the repeated XACK has nothing to link");
}

/// Reliability review L2: two consumer groups of one process read the same entry (same id, same
/// fields); each process span names its own group, in whichever order they are processed.
#[tokio::test]
async fn two_groups_reading_one_entry_each_keep_their_group() {
    let t = TestTelemetry::new();
    let (client, mut conn) = connect().await;
    let tr = tracing(&t, &client);
    let stream = unique_name("shared");
    group(&mut conn, &stream, "billing").await;
    group(&mut conn, &stream, "shipping").await;
    let _: String = conn.xadd_traced_with(&tr, &stream, "*", &[("order", "7")]).await.expect("xadd");

    let mut read = async |g: &str| {
        let opts = StreamReadOptions::default().group(g, "c").count(1);
        let reply = conn.xread_options_traced_with(&tr, &[&stream], &[">"], &opts).await.expect("read");
        reply.keys.into_iter().next().expect("stream").ids.into_iter().next().expect("entry")
    };
    let billing = read("billing").await;
    let shipping = read("shipping").await;
    assert_eq!(billing.id, shipping.id);
    // Processed in the other order than read.
    let _ = shipping.start_process_with(&tr).process(async |_| Ok::<(), std::io::Error>(())).await;
    let _ = billing.start_process_with(&tr).process(async |_| Ok::<(), std::io::Error>(())).await;

    let spans = t.spans();
    let groups: Vec<Value> = spans
        .iter()
        .filter(|s| s.name == format!("process {stream}"))
        .map(|s| attributes(s)["messaging.consumer.group.name"].clone())
        .collect();
    assert_eq!(groups, [Value::from("shipping"), Value::from("billing")]);
}

/// A traced stream read reads each entry's context once (BENCHMARKS.md, lever 26): for its link,
/// its process span (baggage included) and the link of its XACK; each process span is a child of
/// its own send.
#[tokio::test]
async fn a_reads_reading_serves_each_entrys_process_and_xack() {
    use opentelemetry::baggage::BaggageExt as _;
    use std::sync::atomic::Ordering;

    let t = TestTelemetry::new();
    let (client, mut conn) = connect().await;
    let (instrumenter, readings) = integration_tests::counting_instrumenter(&t);
    let tr = RedisInstrumentation::from_client(&client).with_instrumenter(instrumenter);
    let stream = unique_name("orders");
    group(&mut conn, &stream, "workers").await;
    for tenant in ["a", "b", "c"] {
        let cx = Context::new().with_baggage([KeyValue::new("tenant", tenant)]);
        let _: String = async { conn.xadd_traced_with(&tr, &stream, "*", &[("tenant", tenant)]).await }
            .with_context(cx)
            .await
            .expect("xadd");
    }
    let opts = StreamReadOptions::default().group("workers", "w1").count(10);
    let reply = conn.xread_options_traced_with(&tr, &[&stream], &[">"], &opts).await.expect("read");
    assert_eq!(reply.keys[0].ids.len(), 3);
    assert_eq!(readings.load(Ordering::SeqCst), 3, "the read reads each entry once");
    for entry in &reply.keys[0].ids {
        let seen = entry
            .process_traced_with(&tr, async {
                Ok::<_, std::io::Error>(Context::current().baggage().get("tenant").map(|v| v.to_string()))
            })
            .await
            .expect("handler");
        let field: String = redis::from_redis_value(entry.map["tenant"].clone()).expect("tenant");
        assert_eq!(seen, Some(field), "its own baggage");
    }
    let ids: Vec<String> = reply.keys[0].ids.iter().map(|e| e.id.clone()).collect();
    let acked = conn.xack_traced_with(&tr, &stream, "workers", &ids).await.expect("xack");
    assert_eq!(acked, 3);
    assert_eq!(readings.load(Ordering::SeqCst), 3, "the process and XACK spans read nothing again");

    let spans = t.spans();
    let (send, process, ack) =
        (format!("send {stream}"), format!("process {stream}"), format!("ack {stream}"));
    let sends: HashSet<_> =
        spans.iter().filter(|s| s.name == send).map(|s| s.span_context.span_id()).collect();
    let parents: HashSet<_> = spans.iter().filter(|s| s.name == process).map(|s| s.parent_span_id).collect();
    assert_eq!(parents, sends, "each process span a child of its own send: {}", waterfall(&spans));
    let linked: HashSet<_> = span(&spans, &ack).links.iter().map(|l| l.span_context.span_id()).collect();
    assert_eq!(linked, sends, "the XACK links every entry's send");
}
