//! Every public future of the broker crates is `Send` where the native one is (issue "One way to
//! do each thing", point 6), so it can be `tokio::spawn`ed: a compile test. The functions are
//! never run; that they compile is the test (a future that is not `Send` fails the build).

#![allow(dead_code, clippy::expect_used, unused_must_use)]

use std::io;

fn send<T: Send>(_: T) {}

async fn handler() -> Result<(), io::Error> {
    Ok(())
}

fn kafka(
    consumer: &rdkafka::consumer::StreamConsumer,
    producer: &rdkafka::producer::FutureProducer,
    message: &rdkafka::message::BorrowedMessage<'_>,
    owned: &rdkafka::message::OwnedMessage,
) {
    use otel_messaging_rdkafka::{FutureProducerExt as _, MessageExt as _, StreamConsumerExt as _};
    send(consumer.recv_traced());
    let mut batch = Vec::new();
    send(consumer.recv_batch_traced(&mut batch, 10, std::time::Duration::from_secs(1)));
    send(producer.send_traced(
        rdkafka::producer::FutureRecord::<str, str>::to("t").payload("x"),
        std::time::Duration::from_secs(1),
    ));
    send(message.process_traced(handler()));
    send(owned.process_traced(handler()));
    send(owned.clone().start_process().process(async |_| handler().await));
    send(consumer.stream_traced());
}

fn rabbitmq(channel: &lapin::Channel, delivery: &lapin::message::Delivery, consumer: lapin::Consumer) {
    use otel_messaging_lapin::{ChannelExt as _, ConsumerExt as _, DeliveryExt as _};
    send(channel.basic_publish_traced(
        "".into(),
        "q".into(),
        lapin::options::BasicPublishOptions::default(),
        b"x",
        lapin::BasicProperties::default(),
    ));
    send(channel.basic_get_traced("q".into(), lapin::options::BasicGetOptions::default()));
    send(delivery.process_traced(handler()));
    send(delivery.ack_traced(lapin::options::BasicAckOptions::default()));
    send(delivery.nack_traced(lapin::options::BasicNackOptions::default()));
    send(delivery.reject_traced(lapin::options::BasicRejectOptions::default()));
    send(consumer.stream_traced());
}

fn sqs(client: &aws_sdk_sqs::Client, message: &aws_sdk_sqs::types::Message) {
    use otel_messaging_aws_sqs::{
        DeleteMessageBatchFluentBuilderExt as _, DeleteMessageFluentBuilderExt as _, MessageExt as _,
        ReceiveMessageFluentBuilderExt as _, SendMessageBatchFluentBuilderExt as _,
        SendMessageFluentBuilderExt as _,
    };
    send(client.send_message().queue_url("u").message_body("x").send_traced());
    send(client.send_message_batch().queue_url("u").send_traced());
    send(client.receive_message().queue_url("u").send_traced());
    send(client.delete_message().queue_url("u").receipt_handle("r").send_traced());
    send(client.delete_message_batch().queue_url("u").send_traced());
    send(message.process_traced(handler()));
}

fn sns(client: &aws_sdk_sns::Client) {
    use otel_messaging_aws_sns::{PublishBatchFluentBuilderExt as _, PublishFluentBuilderExt as _};
    send(client.publish().topic_arn("t").message("x").send_traced());
    send(client.publish_batch().topic_arn("t").send_traced());
}

fn lambda(sqs: &aws_lambda_events::event::sqs::SqsEvent, sns: &aws_lambda_events::event::sns::SnsEvent) {
    send(otel_messaging_aws_sqs::lambda::process_sqs_event(sqs, async |_| handler().await));
    send(otel_messaging_aws_sns::lambda::process_sns_event(sns, async |_| handler().await));
}

fn redis(conn: &mut redis::aio::MultiplexedConnection, entry: &redis::streams::StreamId) {
    use otel_messaging_redis::{
        QueueConsumerExt as _, QueueExt as _, StreamEntryExt as _, StreamsConsumerExt as _, StreamsExt as _,
    };
    send(entry.process_traced(handler()));
    send(conn.xack_traced("s", "g", &["1-0"]));
    let options = redis::streams::StreamReadOptions::default();
    send(conn.xread_options_traced(&["s"], &[">"], &options));
    send(conn.xread_traced(&["s"], &["0"]));
    let claim = redis::streams::StreamAutoClaimOptions::default();
    send(conn.xautoclaim_traced("s", "g", "c", 1_000, "0-0", claim));
    send(conn.xadd_traced::<_, _, _, _, String>("s", "*", &[("k", "v")]));
    let maxlen = redis::streams::StreamMaxlen::Approx(1_000);
    send(conn.xadd_maxlen_traced::<_, _, _, _, String>("s", maxlen, "*", &[("k", "v")]));
    send(conn.lpush_traced("l", b"x"));
    send(conn.rpush_traced("l", b"x"));
    send(conn.publish_traced("c", b"x"));
    send(conn.brpop_traced("l", 1.0));
    send(conn.blmove_traced("l", "m", redis::Direction::Right, redis::Direction::Left, 1.0));
}

fn nats(
    client: &async_nats::Client,
    js: &async_nats::jetstream::Context,
    message: &async_nats::Message,
    js_message: &async_nats::jetstream::Message,
    consumer: &async_nats::jetstream::consumer::PullConsumer,
    subscriber: async_nats::Subscriber,
) {
    use otel_messaging_async_nats::{
        ClientExt as _, JetStreamExt as _, JetStreamMessageExt as _, MessageExt as _, PullConsumerExt as _,
        SubscriberExt as _,
    };
    send(client.publish_traced("s", "x".into()));
    send(client.publish_with_headers_traced("s", async_nats::HeaderMap::new(), "x".into()));
    send(client.request_traced("s", "x".into()));
    send(js.publish_traced("s", "x".into()));
    send(js.publish_with_headers_traced("s", async_nats::HeaderMap::new(), "x".into()));
    send(message.process_traced(handler()));
    send(js_message.process_traced(handler()));
    send(js_message.ack_traced());
    send(js_message.ack_with_traced(async_nats::jetstream::AckKind::Nak(None)));
    let mut batch = Vec::new();
    send(consumer.fetch_traced(&mut batch, 10));
    send(subscriber.stream_traced());
}
