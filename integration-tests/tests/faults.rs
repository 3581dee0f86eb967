//! Broker faults: the TCP path to each broker (a [`FaultProxy`] the test controls) goes away
//! mid-stream and comes back. Asserted for every broker: every started span ends; the operations
//! that failed have status `Error` and `error.type`; the native error comes back (the same error
//! an untraced call gets in the same state); after recovery the traced consumer continues and the
//! messages produced after recovery are in connected traces; nothing the raw client would have
//! delivered is lost.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::time::Duration;

use futures_util::StreamExt as _;
use integration_tests::{FaultProxy, ProxiedKafka, amqp_url, nats_url, redis_url, sqs_endpoint, unique_name};
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;
use otel_messaging::testing::{TestTelemetry, attributes, waterfall};

const TIMEOUT: Duration = Duration::from_secs(30);

/// `host:port` of a broker URL.
fn host_port(url: &str) -> String {
    let authority = url.split("://").nth(1).unwrap_or(url).split('/').next().unwrap_or("");
    authority.rsplit('@').next().unwrap_or(authority).to_owned()
}

/// Every started span ended, and the failed ones say why.
fn assert_spans_closed(t: &TestTelemetry, failed_at_least: usize) -> Vec<SpanData> {
    let (started, ended) = t.span_counts();
    assert_eq!(started, ended, "every started span ended");
    let spans = t.spans();
    let failed: Vec<_> = spans.iter().filter(|s| matches!(s.status, Status::Error { .. })).collect();
    assert!(failed.len() >= failed_at_least, "{}", waterfall(&spans));
    for s in &failed {
        assert!(attributes(s).contains_key("error.type"), "{} has error.type", s.name);
    }
    spans
}

/// Each process span whose message was sent after recovery is a child of that message's send span.
fn assert_connected(spans: &[SpanData], send_kind: SpanKind, processes: usize) {
    let sends: Vec<_> =
        spans.iter().filter(|s| s.span_kind == send_kind && s.status == Status::Unset).collect();
    let connected = spans
        .iter()
        .filter(|s| s.span_kind == SpanKind::Consumer)
        .filter(|p| sends.iter().any(|s| s.span_context.span_id() == p.parent_span_id))
        .count();
    assert!(connected >= processes, "{connected} connected process spans\n{}", waterfall(spans));
}

#[tokio::test]
async fn redis_goes_away_and_comes_back() {
    use otel_messaging_redis::{
        RedisInstrumentation, StreamEntryExt as _, StreamsConsumerExt as _, StreamsExt as _,
    };
    use redis::{AsyncCommands as _, streams::StreamReadOptions};

    let t = TestTelemetry::new();
    let proxy = FaultProxy::start(&host_port(&redis_url())).await;
    let client = redis::Client::open(format!("redis://{}/", proxy.addr())).expect("client");
    let tr = RedisInstrumentation::from_client(&client).with_instrumenter(t.instrumenter());
    let mut conn = client.get_multiplexed_async_connection().await.expect("connect");
    let stream = unique_name("faults");
    let () = conn.xgroup_create_mkstream(&stream, "g", "$").await.expect("group");
    for i in 0..3 {
        let _: String = conn.xadd_traced_with(&tr, &stream, "*", &[("n", i)]).await.expect("xadd");
    }

    proxy.cut();
    let traced: redis::RedisResult<String> = conn.xadd_traced_with(&tr, &stream, "*", &[("n", 99)]).await;
    let untraced: redis::RedisResult<String> = conn.xadd(&stream, "*", &[("n", 99)]).await;
    let (traced, untraced) = (traced.expect_err("broker gone"), untraced.expect_err("broker gone"));
    assert_eq!(traced.kind(), untraced.kind(), "{traced} / {untraced}");
    let opts = StreamReadOptions::default().group("g", "c1").count(100);
    assert!(conn.xread_options_traced_with(&tr, &[&stream], &[">"], &opts).await.is_err());

    proxy.restore();
    let mut conn = client.get_multiplexed_async_connection().await.expect("reconnect");
    for i in 3..6 {
        let _: String = conn.xadd_traced_with(&tr, &stream, "*", &[("n", i)]).await.expect("xadd");
    }
    let reply = conn.xread_options_traced_with(&tr, &[&stream], &[">"], &opts).await.expect("read");
    let entries: Vec<_> = reply.keys.into_iter().flat_map(|k| k.ids).collect();
    let mut direct =
        redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let stored: usize = direct.xlen(&stream).await.expect("xlen");
    assert_eq!((entries.len(), stored), (6, 6), "what the broker holds, all delivered");
    for entry in entries {
        let (_, result) =
            entry.start_process_with(&tr).process(async |_| Ok::<_, redis::RedisError>(())).await;
        result.expect("handler");
    }
    let spans = assert_spans_closed(&t, 2);
    assert_connected(&spans, SpanKind::Producer, 6);
    let _: usize = direct.del(&stream).await.expect("cleanup");
}

#[tokio::test]
async fn sqs_goes_away_and_comes_back() {
    use otel_messaging_aws_sqs::{MessageExt as _, SendMessageFluentBuilderExt as _, SqsInstrumentation};

    let t = TestTelemetry::new();
    let proxy = FaultProxy::start(&host_port(&sqs_endpoint())).await;
    let c = integration_tests::sqs_client(&format!("http://{}", proxy.addr()), 2).await;
    let tr = SqsInstrumentation::default().with_instrumenter(t.instrumenter());
    let url =
        c.create_queue().queue_name(unique_name("faults")).send().await.expect("queue").queue_url.unwrap();
    let send = async |i: usize| {
        c.send_message()
            .queue_url(&url)
            .message_body(format!("m{i}"))
            .send_traced_with(&tr)
            .await
            .expect("send")
    };
    for i in 0..2 {
        send(i).await;
    }

    proxy.cut();
    let traced = c.send_message().queue_url(&url).message_body("lost").send_traced_with(&tr).await;
    let untraced = c.send_message().queue_url(&url).message_body("lost").send().await;
    let (traced, untraced) = (traced.expect_err("endpoint gone"), untraced.expect_err("endpoint gone"));
    // The same variant, and for a dispatch failure the same connector error kind (test honesty
    // 1.9: the variant alone let any two dispatch failures count as equal).
    let shape = |e: &aws_sdk_sqs::error::SdkError<_, _>| {
        let dispatch = match e {
            aws_sdk_sqs::error::SdkError::DispatchFailure(d) => {
                Some((d.is_io(), d.is_timeout(), d.is_user(), d.is_other()))
            }
            _ => None,
        };
        (std::mem::discriminant(e), dispatch, e.to_string())
    };
    assert_eq!(shape(&traced), shape(&untraced), "{traced:?} / {untraced:?}");

    proxy.restore();
    for i in 2..4 {
        send(i).await;
    }
    let mut bodies = Vec::new();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while bodies.len() < 4 {
        assert!(std::time::Instant::now() < deadline, "every message back in time; got {bodies:?}");
        let out = integration_tests::sqs_receive_traced(&c, &url, &tr).await;
        for message in out.messages.unwrap_or_default() {
            let (message, _) =
                message.start_process_with(&tr).process(async |_| Ok::<_, std::io::Error>(())).await;
            bodies.push(message.body.unwrap_or_default());
        }
    }
    bodies.sort();
    assert_eq!(bodies, ["m0", "m1", "m2", "m3"]);
    let spans = assert_spans_closed(&t, 1);
    assert_connected(&spans, SpanKind::Producer, 4);
}

#[tokio::test]
async fn rabbitmq_goes_away_and_comes_back() {
    use lapin::{
        BasicProperties, Connection, ConnectionProperties,
        options::{
            BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
            QueueDeleteOptions,
        },
        types::FieldTable,
    };
    use otel_messaging_lapin::{AmqpInstrumentation, ChannelExt as _, DeliveryExt as _};

    let t = TestTelemetry::new();
    let proxy = FaultProxy::start(&host_port(&amqp_url())).await;
    let via_proxy = format!("amqp://guest:guest@{}/%2f", proxy.addr());
    let tr = AmqpInstrumentation::from_uri(&via_proxy).with_instrumenter(t.instrumenter());
    let open = || async {
        let conn = Connection::connect(&via_proxy, ConnectionProperties::default()).await.expect("connect");
        let ch = conn.create_channel().await.expect("channel");
        ch.confirm_select(ConfirmSelectOptions::default()).await.expect("confirms");
        (conn, ch)
    };
    let q = unique_name("faults");
    let (conn, ch) = open().await;
    ch.queue_declare(q.as_str().into(), QueueDeclareOptions::default(), FieldTable::default())
        .await
        .expect("queue");
    let publish = |ch: lapin::Channel, body: String| {
        let tr = tr.clone();
        let q = q.clone();
        async move {
            let confirm = ch
                .basic_publish_traced_with(
                    &tr,
                    "".into(),
                    q.as_str().into(),
                    BasicPublishOptions::default(),
                    body.as_bytes(),
                    BasicProperties::default(),
                )
                .await?;
            confirm.await
        }
    };
    for i in 0..2 {
        publish(ch.clone(), format!("m{i}")).await.expect("published and confirmed");
    }

    // A second connection for the untraced call, so that each call is the first on its
    // connection after the cut (the first sees the reset, later ones a closed channel).
    let (native_conn, native_ch) = open().await;
    proxy.cut();
    // Both calls in the same state: after both connections have seen the cut.
    let deadline = std::time::Instant::now() + TIMEOUT;
    while conn.status().connected() || native_conn.status().connected() {
        assert!(std::time::Instant::now() < deadline, "lapin notices the lost connections");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let traced = publish(ch.clone(), "lost".into()).await;
    let traced = traced.expect_err("publishing on a lost connection fails");
    let untraced = native_ch
        .basic_publish(
            "".into(),
            q.as_str().into(),
            BasicPublishOptions::default(),
            b"lost",
            BasicProperties::default(),
        )
        .await
        .expect_err("natively too");
    // The same error kind (test honesty 1.8: both failing was all that was checked).
    assert_eq!(
        std::mem::discriminant(traced.kind()),
        std::mem::discriminant(untraced.kind()),
        "{traced:?} / {untraced:?}"
    );

    proxy.restore();
    let (_conn, ch) = open().await;
    for i in 2..4 {
        publish(ch.clone(), format!("m{i}")).await.expect("published and confirmed");
    }
    let mut bodies = Vec::new();
    while let Some(message) =
        ch.basic_get_traced_with(&tr, q.as_str().into(), BasicGetOptions { no_ack: true }).await.expect("get")
    {
        let delivery = message.delivery;
        delivery.process_traced_with(&tr, async { Ok::<_, lapin::Error>(()) }).await.expect("handler");
        bodies.push(String::from_utf8(delivery.data).unwrap());
    }
    assert_eq!(bodies, ["m0", "m1", "m2", "m3"], "confirmed before the fault, and after it");
    let spans = assert_spans_closed(&t, 1);
    assert_connected(&spans, SpanKind::Producer, 4);
    ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await.expect("cleanup");
}

#[tokio::test]
async fn kafka_goes_away_and_comes_back() {
    use otel_messaging_rdkafka::{FutureProducerExt as _, KafkaInstrumentation, StreamConsumerExt as _};
    use rdkafka::{
        ClientConfig, Message as _,
        consumer::StreamConsumer,
        producer::{FutureProducer, FutureRecord},
        types::RDKafkaErrorCode,
    };

    let kafka = ProxiedKafka::start().await;
    let t = TestTelemetry::new();
    let topic = unique_name("faults");
    integration_tests::create_topic(&kafka.bootstrap(), &topic).await;
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", kafka.bootstrap())
        .set("linger.ms", "0")
        .set("message.timeout.ms", "30000");
    let tr = KafkaInstrumentation::from_config(&config).with_instrumenter(t.instrumenter());
    let producer: FutureProducer = config.create().expect("producer");
    let send = |payload: &'static str| {
        producer.send_traced_with(&tr, FutureRecord::<(), _>::to(&topic).payload(payload), TIMEOUT)
    };
    send("m0").await.expect("delivered");

    kafka.proxy.cut();
    // A producer with a short delivery timeout gives up during the outage: the native error.
    let mut impatient = config.clone();
    impatient.set("message.timeout.ms", "1500");
    let impatient_tr = KafkaInstrumentation::from_config(&impatient).with_instrumenter(t.instrumenter());
    let impatient: FutureProducer = impatient.create().expect("producer");
    let traced = impatient.send_traced_with(
        &impatient_tr,
        FutureRecord::<(), _>::to(&topic).payload("given up"),
        TIMEOUT,
    );
    let untraced = impatient.send(FutureRecord::<(), _>::to(&topic).payload("given up"), TIMEOUT);
    let (traced, untraced) = futures_util::future::join(traced, untraced).await;
    let ((error, _), (native, _)) =
        (traced.expect_err("timed out during the outage"), untraced.expect_err("natively too"));
    assert_eq!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::MessageTimedOut));
    assert_eq!(error, native, "the same native error as an untraced send in the same state");
    // The patient producer's records wait in librdkafka's queue and go out after recovery.
    let pending = tokio::spawn({
        let producer = producer.clone();
        let tr = tr.clone();
        let topic = topic.clone();
        async move {
            let mut delivered = Vec::new();
            for payload in ["m1", "m2"] {
                let record = FutureRecord::<(), _>::to(&topic).payload(payload);
                delivered.push(producer.send_traced_with(&tr, record, TIMEOUT).await.map(|d| d.offset));
            }
            delivered
        }
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    kafka.proxy.restore();
    for delivery in pending.await.expect("task") {
        delivery.expect("delivered after recovery");
    }
    send("m3").await.expect("delivered");

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka.bootstrap())
        .set("group.id", "faults")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let consumer = integration_tests::assign_from_start(consumer, &topic);
    let consumer_tr = KafkaInstrumentation::from_config(&config).with_instrumenter(t.instrumenter());
    let mut stream = consumer.stream_traced_with(&consumer_tr);
    let mut payloads = Vec::new();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while payloads.len() < 4 {
        assert!(std::time::Instant::now() < deadline, "every message back in time; got {payloads:?}");
        let item = tokio::time::timeout(TIMEOUT, stream.next()).await.expect("in time").expect("open");
        if let Ok(message) = item {
            let (message, _) = message.process(async |_| Ok::<_, std::io::Error>(())).await;
            payloads.push(String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned());
        }
    }
    assert_eq!(payloads, ["m0", "m1", "m2", "m3"], "every record the producer had delivered");
    drop(stream);
    let spans = assert_spans_closed(&t, 1);
    let timed_out: Vec<_> = spans.iter().filter(|s| matches!(s.status, Status::Error { .. })).collect();
    assert_eq!(attributes(timed_out[0])["error.type"], opentelemetry::Value::from("MESSAGE_TIMED_OUT"));
    assert_connected(&spans, SpanKind::Producer, 4);
}

#[tokio::test]
async fn nats_goes_away_and_comes_back() {
    use async_nats::jetstream::{self, consumer::pull, stream};
    use otel_messaging_async_nats::{
        JetStreamExt as _, MessageExt as _, NatsInstrumentation, PullConsumerExt as _,
    };

    let t = TestTelemetry::new();
    let proxy = FaultProxy::start(&host_port(&nats_url())).await;
    let via_proxy = format!("nats://{}", proxy.addr());
    let tr = NatsInstrumentation::from_url(&via_proxy).with_instrumenter(t.instrumenter());
    let client = async_nats::connect(&via_proxy).await.expect("connect");
    let js = jetstream::ContextBuilder::new().ack_timeout(Duration::from_secs(1)).build(client);
    let name = unique_name("FAULTS").replace(['-', '.'], "_");
    let subject = format!("{name}.jobs");
    let stream = js
        .create_stream(stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            ..Default::default()
        })
        .await
        .expect("stream");
    for i in 0..2 {
        js.publish_traced_with(&tr, subject.clone(), format!("m{i}").into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }

    proxy.cut();
    let traced = match js.publish_traced_with(&tr, subject.clone(), "lost".into()).await {
        Ok(ack) => ack.await.map(|_| ()),
        Err(e) => Err(e),
    };
    let untraced = match js.publish(subject.clone(), "lost".into()).await {
        Ok(ack) => ack.await.map(|_| ()),
        Err(e) => Err(e),
    };
    let (traced, untraced) = (traced.expect_err("server gone"), untraced.expect_err("server gone"));
    assert_eq!(traced.kind(), untraced.kind(), "{traced} / {untraced}");

    proxy.restore();
    for i in 2..4 {
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            assert!(std::time::Instant::now() < deadline, "publishing again in time");
            if let Ok(ack) = js.publish_traced_with(&tr, subject.clone(), format!("m{i}").into()).await
                && ack.await.is_ok()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // Whatever the server stored (the two "lost" publishes may have gone out on reconnect) is
    // delivered, through the traced fetch, exactly once.
    let stored = js.get_stream(&name).await.expect("stream").info().await.expect("info").state.messages;
    let consumer = stream
        .create_consumer(pull::Config { durable_name: Some("faults".into()), ..Default::default() })
        .await
        .expect("consumer");
    let mut batch = Vec::new();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while (batch.len() as u64) < stored {
        assert!(
            std::time::Instant::now() < deadline,
            "every stored message in time: {} of {stored}",
            batch.len()
        );
        let _ = consumer.fetch_traced_with(&tr, &mut batch, 100).await;
    }
    let mut payloads = Vec::new();
    for message in &batch {
        message.process_traced_with(&tr, async { Ok::<_, std::io::Error>(()) }).await.expect("handler");
        message.ack().await.expect("ack");
        payloads.push(String::from_utf8_lossy(&message.payload).into_owned());
    }
    // (m2 and m3 at least once: a publish retried after an ack timeout may be stored twice.)
    for expected in ["m0", "m1", "m2", "m3"] {
        assert!(payloads.iter().any(|p| p == expected), "{expected} in {payloads:?}");
    }
    assert_eq!(batch.len() as u64, stored, "nothing stored is lost or duplicated");
    js.delete_stream(&name).await.expect("cleanup");
    let spans = assert_spans_closed(&t, 1);
    assert_connected(&spans, SpanKind::Producer, 4);
}
