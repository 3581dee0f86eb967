//! Redis (redis-rs) against a real Redis (`just brokers-up`, or `REDIS_URL`), asserting whole
//! traces through explicit in-memory providers.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::collections::HashSet;

use futures_util::StreamExt as _;
use integration_tests::{redis_url, unique_name};
use opentelemetry::{
    Context, Value,
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
    let id: String = async { conn.xadd_traced(&tr, &stream, "*", &[("order", "42")]).await }
        .with_context(request.clone())
        .await
        .expect("xadd");
    request.span().end();

    let opts = StreamReadOptions::default().group("workers", "w1").count(10);
    let reply = conn.xread_options_traced(&tr, &[&stream], &[">"], &opts).await.expect("read");
    let entry = reply.keys[0].ids[0].clone();
    assert_eq!(entry.id, id);
    assert!(entry.map.contains_key("traceparent"), "context travels as an entry field");
    let (_entry, result) = entry
        .traced(&tr, &stream, Some("workers"))
        .process(async |e| {
            t.tracer("worker").in_span("db insert", |_| ());
            conn.clone().xack_traced(&tr, &stream, "workers", &[&e.id]).await
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
            shape(&ack, SpanKind::Client).parent(&process),
        ],
    );
    let s = attributes(span(&spans, &send));
    assert_eq!(s["messaging.system"], Value::from("redis"));
    assert_eq!(s["messaging.message.id"], Value::from(id.clone()));
    assert_eq!(s["server.address"], Value::from("127.0.0.1"));
    let r = attributes(span(&spans, &receive));
    assert_eq!(r["messaging.batch.message_count"], Value::I64(1));
    assert_eq!(r["messaging.consumer.group.name"], Value::from("workers"));
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
    let _: String = conn.xadd_traced(&producer, &stream, "*", &[("k", "v")]).await.expect("xadd");
    let reply = conn.xread_traced(&producer, &[&stream], &["0"]).await.expect("read");
    let entry = reply.keys[0].ids[0].clone();
    let traced = entry.traced(&consumer, &stream, None);
    assert_eq!(traced.map.keys().collect::<Vec<_>>(), ["k"], "propagation fields stripped");
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
        let id: String = conn.xadd_traced(&tr, &stream, "*", &[("job", i)]).await.expect("xadd");
        sent.push(id);
    }
    let mut seen = Vec::new();
    for consumer in ["c1", "c2"] {
        let opts = StreamReadOptions::default().group("g", consumer).count(2);
        let reply = conn.xread_options_traced(&tr, &[&stream], &[">"], &opts).await.expect("read");
        for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
            let (entry, ok) =
                entry.process_traced(&tr, &stream, Some("g"), async |_| Ok::<_, redis::RedisError>(())).await;
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
    let id: String = conn.xadd_traced(&tr, &stream, "*", &[("job", "1")]).await.expect("xadd");
    // c1 reads and "crashes" without acking.
    let opts = StreamReadOptions::default().group("g", "c1");
    let _ = conn.xread_options_traced(&tr, &[&stream], &[">"], &opts).await.expect("read");
    // c2 claims entries idle for at least 0 ms.
    let reply = conn
        .xautoclaim_traced(&tr, &stream, "g", "c2", 0, "0-0", StreamAutoClaimOptions::default())
        .await
        .expect("claim");
    assert_eq!(reply.claimed.len(), 1);
    let entry = reply.claimed[0].clone();
    assert_eq!(entry.id, id);
    assert_eq!(entry.delivered_count, Some(2));
    drop(entry.traced(&tr, &stream, Some("g")));
    let spans = t.spans();
    let send = format!("send {stream}");
    let process = span(&spans, &format!("process {stream}"));
    assert_eq!(process.parent_span_id, span(&spans, &send).span_context.span_id(), "{}", waterfall(&spans));
    assert_eq!(attributes(process)["otel_messaging.redis.delivery_count"], Value::I64(2));
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
        let _: String = conn.xadd_traced(&tr, &stream, "*", &[("job", job)]).await.expect("xadd");
    }
    let opts = StreamReadOptions::default().group("g", "c1");
    let _ = conn.xread_options_traced(&tr, &[&stream], &[">"], &opts).await.expect("read");
    let options = || StreamAutoClaimOptions::default().count(1);
    let traced = conn.xautoclaim_traced(&tr, &stream, "g", "c2", 0, "0-0", options()).await.expect("claim");
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
    conn.lpush_traced(&tr, &list, &every_byte).await.expect("lpush");
    let _: usize = conn.lpush(&list, b"plain payload").await.expect("plain lpush");
    let _: usize = conn.lpush(&list, b"OTM\x01\x00\x40truncated").await.expect("truncated envelope");
    // A plain payload that starts with the envelope magic and version (review finding M4).
    let lookalike = b"\x8FOTMENV\x02\x00\x00\x00\x00\x00\x00rest".to_vec();
    conn.lpush_traced(&tr, &list, &lookalike).await.expect("lpush");

    let first = conn.brpop_traced(&tr, &list, 5.0).await.expect("pop").expect("a message");
    assert_eq!(first.payload, every_byte, "binary payload with every byte value round-trips");
    drop(first);
    let second = conn.brpop_traced(&tr, &list, 5.0).await.expect("pop").expect("a message");
    assert_eq!(second.payload, b"plain payload");
    drop(second);
    let dst = unique_name("processing");
    let third = conn
        .blmove_traced(&tr, &list, &dst, redis::Direction::Right, redis::Direction::Left, 5.0)
        .await
        .expect("move")
        .expect("a message");
    assert_eq!(third.payload, b"OTM\x01\x00\x40truncated", "a malformed envelope is delivered whole");
    drop(third);
    let fourth = conn.brpop_traced(&tr, &list, 5.0).await.expect("pop").expect("a message");
    assert_eq!(fourth.payload, lookalike, "a look-alike payload arrives byte for byte");
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

#[tokio::test]
async fn pubsub_with_envelope_continues_context() {
    let t = TestTelemetry::new();
    let (client, mut conn) = connect().await;
    let tr = tracing(&t, &client);
    let channel = unique_name("events");
    let mut pubsub = client.get_async_pubsub().await.expect("pubsub");
    pubsub.subscribe(&channel).await.expect("subscribe");
    let receivers: usize = conn.publish_traced(&tr, &channel, b"hello").await.expect("publish");
    assert_eq!(receivers, 1);
    let msg = tokio::time::timeout(std::time::Duration::from_secs(5), pubsub.on_message().next())
        .await
        .expect("in time")
        .expect("a message");
    let traced = msg.traced(&tr);
    assert_eq!(traced.payload, b"hello");
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
    let _ = envelope::VERSION;
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
    conn.lpush_traced(&silent, &list, b"plain").await.expect("lpush");
    let raw: Vec<u8> = conn.rpop(&list, None).await.expect("rpop");
    assert_eq!(raw, b"plain");
    conn.lpush_traced(&silent.clone().with_envelope_always(true), &list, b"plain").await.expect("lpush");
    let raw: Vec<u8> = conn.rpop(&list, None).await.expect("rpop");
    assert_eq!(
        envelope::decode(&raw),
        (Some(envelope::EnvelopeHeaders::default()), &b"plain"[..]),
        "asked for"
    );
}
