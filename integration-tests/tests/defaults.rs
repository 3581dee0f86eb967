//! "Correct by default" on every broker (issue 23, "The same for every broker where the point
//! applies"): the README's plain rename only — the global `_traced` sugar, no `_with`, no
//! propagator installed, the broker crates' state touched (and a first traced call made) before the
//! tracer provider is installed — gives each message's process span its producer's send span as
//! parent, on RabbitMQ, Redis, SQS and SNS → SQS; and `ProcessParent::NewRoot` made the process-wide
//! default puts messages processed inside a worker-loop span in traces of their own. Kafka and NATS
//! have the same in their own files. One test in its own binary: the globals are process-wide.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use integration_tests::{amqp_url, redis_url, sqs_endpoint, unique_name};
use opentelemetry::{
    Context,
    trace::{FutureExt as _, SpanKind, TraceContextExt as _, Tracer as _},
};
use opentelemetry_sdk::trace::SpanData;
use otel_messaging::{MessagingInstrumenter, ProcessParent, testing::TestTelemetry};

const TIMEOUT: Duration = Duration::from_secs(20);

/// The process span of `destination` is a child of its send span, in the request's trace.
fn connected(spans: &[SpanData], send: &str, process: &str) {
    let send = spans.iter().find(|s| s.name == send).unwrap_or_else(|| panic!("no {send}: {spans:#?}"));
    let process =
        spans.iter().find(|s| s.name == process).unwrap_or_else(|| panic!("no {process}: {spans:#?}"));
    assert_eq!(process.span_kind, SpanKind::Consumer);
    assert_eq!(process.span_context.trace_id(), send.span_context.trace_id(), "one trace");
    assert_eq!(process.parent_span_id, send.span_context.span_id(), "the send span is the parent");
}

#[tokio::test]
async fn the_plain_rename_connects_every_broker_with_nothing_configured() {
    use lapin::{
        BasicProperties, Connection, ConnectionProperties,
        options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions},
        types::FieldTable,
    };
    use otel_messaging_aws_sns::PublishFluentBuilderExt as _;
    use otel_messaging_aws_sqs::{
        MessageExt as _, ReceiveMessageFluentBuilderExt as _, SendMessageFluentBuilderExt as _,
    };
    use otel_messaging_lapin::{ChannelExt as _, DeliveryExt as _};
    use otel_messaging_redis::{StreamEntryExt as _, StreamsConsumerExt as _, StreamsExt as _};
    use redis::{AsyncCommands as _, streams::StreamReadOptions};

    // An `AppState` built before telemetry: the connections, and a first traced publish.
    let amqp = Connection::connect(&amqp_url(), ConnectionProperties::default()).await.expect("amqp");
    let channel = amqp.create_channel().await.expect("channel");
    let queue = unique_name("defaults");
    channel
        .queue_declare(queue.as_str().into(), QueueDeclareOptions::default(), FieldTable::default())
        .await
        .expect("queue");
    let early = channel
        .basic_publish_traced(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            b"early",
            BasicProperties::default(),
        )
        .await
        .expect("publish before telemetry");
    early.await.expect("confirm");
    let redis = redis::Client::open(redis_url()).expect("redis");
    let mut conn = redis.get_multiplexed_async_connection().await.expect("redis connect");
    let aws = integration_tests::aws_test_config(&sqs_endpoint(), 3).await;
    let (sqs, sns) = (aws_sdk_sqs::Client::new(&aws), aws_sdk_sns::Client::new(&aws));

    // Telemetry installed late, and no propagator at all.
    let t = TestTelemetry::new();
    opentelemetry::global::set_tracer_provider(t.tracer_provider.clone());
    let tracer = opentelemetry::global::tracer("app");
    let request = |name: &'static str| Context::new().with_span(tracer.start(name));

    // RabbitMQ: the early message, then one sent in a request.
    let _ = channel.basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true }).await.expect("drain");
    let cx = request("POST /rabbitmq");
    async {
        channel
            .basic_publish_traced(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                b"order",
                BasicProperties::default(),
            )
            .await
            .expect("publish")
            .await
            .expect("confirm")
    }
    .with_context(cx.clone())
    .await;
    cx.span().end();
    let delivery = tokio::time::timeout(TIMEOUT, async {
        loop {
            if let Some(m) = channel
                .basic_get_traced(queue.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .expect("get")
            {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a delivery in time");
    delivery.delivery.process_traced(async { Ok::<_, std::io::Error>(()) }).await.expect("handler");

    // Redis streams.
    let stream = unique_name("defaults");
    let () = conn.xgroup_create_mkstream(&stream, "workers", "$").await.expect("group");
    let cx = request("POST /redis");
    let _: String = async { conn.xadd_traced(&stream, "*", &[("order", "1")]).await }
        .with_context(cx.clone())
        .await
        .expect("xadd");
    cx.span().end();
    let options = StreamReadOptions::default().group("workers", "w").count(1).block(5_000);
    let reply = conn.xread_options_traced(&[&stream], &[">"], &options).await.expect("read");
    let entry = reply.keys.into_iter().flat_map(|k| k.ids).next().expect("an entry");
    entry.process_traced(async { Ok::<_, std::io::Error>(()) }).await.expect("handler");

    // SQS, and SNS delivered to SQS (raw delivery).
    let url = sqs
        .create_queue()
        .queue_name(unique_name("defaults"))
        .send()
        .await
        .expect("queue")
        .queue_url
        .unwrap();
    let cx = request("POST /sqs");
    async { sqs.send_message().queue_url(&url).message_body("order").send_traced().await }
        .with_context(cx.clone())
        .await
        .expect("send");
    cx.span().end();
    let topic = unique_name("defaults");
    let topic_arn = sns.create_topic().name(&topic).send().await.expect("topic").topic_arn.unwrap();
    let fan =
        sqs.create_queue().queue_name(unique_name("fan")).send().await.expect("queue").queue_url.unwrap();
    integration_tests::subscribe_queue(&sns, &sqs, &topic_arn, &fan, true).await;
    let cx = request("POST /sns");
    async { sns.publish().topic_arn(&topic_arn).message("order").send_traced().await }
        .with_context(cx.clone())
        .await
        .expect("publish");
    cx.span().end();
    for queue_url in [&url, &fan] {
        let deadline = tokio::time::Instant::now() + TIMEOUT;
        let message = loop {
            assert!(tokio::time::Instant::now() < deadline, "nothing on {queue_url}");
            let out = sqs
                .receive_message()
                .queue_url(queue_url)
                .wait_time_seconds(1)
                .send_traced()
                .await
                .expect("receive");
            if let Some(m) = out.messages.unwrap_or_default().pop() {
                break m;
            }
        };
        message.process_traced(async { Ok::<_, std::io::Error>(()) }).await.expect("handler");
    }

    let spans = t.spans();
    let rabbit = format!("publish {queue}");
    connected(&spans, &rabbit, &format!("process {queue}"));
    connected(&spans, &format!("send {stream}"), &format!("process {stream}"));
    let sqs_name = url.rsplit('/').next().unwrap();
    connected(&spans, &format!("send {sqs_name}"), &format!("process {sqs_name}"));
    connected(&spans, &format!("publish {topic}"), &format!("process {}", fan.rsplit('/').next().unwrap()));
    assert_eq!(spans.iter().filter(|s| s.name == rabbit).count(), 1, "the early publish went nowhere");

    // The worker-loop trap, fixed process-wide: NewRoot made the default.
    t.clear_spans();
    MessagingInstrumenter::set_global(
        MessagingInstrumenter::builder().with_process_parent(ProcessParent::NewRoot).build(),
    )
    .expect("set_global");
    for order in ["2", "3"] {
        let cx = request("POST /redis");
        let _: String = async { conn.xadd_traced(&stream, "*", &[("order", order)]).await }
            .with_context(cx.clone())
            .await
            .expect("xadd");
        cx.span().end();
    }
    let options = StreamReadOptions::default().group("workers", "w").count(2).block(5_000);
    let worker = request("worker loop");
    async {
        let reply = conn.xread_options_traced(&[&stream], &[">"], &options).await.expect("read");
        for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
            entry.process_traced(async { Ok::<_, std::io::Error>(()) }).await.expect("handler");
        }
    }
    .with_context(worker.clone())
    .await;
    worker.span().end();
    let spans = t.spans();
    let loop_trace = spans.iter().find(|s| s.name == "worker loop").unwrap().span_context.trace_id();
    let processes: Vec<_> = spans.iter().filter(|s| s.name == format!("process {stream}")).collect();
    assert_eq!(processes.len(), 2);
    for process in &processes {
        assert_ne!(process.span_context.trace_id(), loop_trace, "not in the worker loop's trace");
        assert_eq!(process.links.len(), 2, "linked to its producer and to the loop");
    }
    assert_ne!(processes[0].span_context.trace_id(), processes[1].span_context.trace_id(), "a trace each");
}
