#!/usr/bin/env python3
"""Interop peer on the Python OpenTelemetry SDK and its official instrumentations.

    interop.py produce BROKER DESTINATION   # send one message, print the spans as JSON
    interop.py consume BROKER DESTINATION   # receive one message, print the spans and what it saw

BROKER is kafka (confluent-kafka + opentelemetry-instrumentation-confluent-kafka), rabbitmq
(pika + opentelemetry-instrumentation-pika), sqs (boto3 + opentelemetry-instrumentation-boto3sqs),
sns (boto3 + opentelemetry-instrumentation-botocore publishing; delivered to an SQS queue read as
for sqs) redis (redis-py; no official instrumentation injects into stream entries, so the W3C
propagator writes the XADD fields, as a user would) or nats (nats-py on JetStream; no official
instrumentation exists, so the W3C propagator writes the message headers). DESTINATION is a topic,
queue, queue URL, stream or "STREAM|SUBJECT"; broker addresses come from KAFKA_BOOTSTRAP_SERVERS,
AMQP_URL, SQS_ENDPOINT_URL, REDIS_URL, NATS_URL.

The producer sends inside an upstream context standing in for the request that enqueues the
message: a remote parent with `tracestate: interop=python`, baggage `interop.sdk=python` and the
SDK's "random trace id" flag (so the message carries flags `03`, as the Python SDK writes for the
traces it starts; `02`, not sampled, with INTEROP_SAMPLED=0). Output: one JSON object on stdout
(see interop/README.md).
"""

import json
import os
import random
import sys
import time

from opentelemetry import baggage, context, propagate, trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState

EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(PROVIDER)
TRACER = trace.get_tracer("interop")
TIMEOUT = 30.0
# INTEROP_SAMPLED=0: the upstream context is not sampled (flags 02), so neither is the send span.
SAMPLED = os.environ.get("INTEROP_SAMPLED", "1") != "0"
# INTEROP_DEVIATION: a producer that writes the context the way some other instrumentations do
# (interop/README.md): kafka `duplicate` (a stale traceparent header before the real one),
# rabbitmq `bytes` (headers as AMQP byte arrays), sqs `binary` (Binary message attributes), sqs
# `xray` (only the AWSTraceHeader system attribute, X-Ray format).
DEVIATION = os.environ.get("INTEROP_DEVIATION", "")
STALE = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"


def upstream():
    """The context the producer sends in: a remote parent with tracestate, baggage, flags 03 (02
    with INTEROP_SAMPLED=0)."""
    parent = SpanContext(
        trace_id=random.getrandbits(128),
        span_id=random.getrandbits(64),
        is_remote=True,
        trace_flags=TraceFlags((TraceFlags.SAMPLED if SAMPLED else 0) | TraceFlags.RANDOM_TRACE_ID),
        trace_state=TraceState([("interop", "python")]),
    )
    cx = trace.set_span_in_context(NonRecordingSpan(parent))
    return baggage.set_baggage("interop.sdk", "python", cx)


def text(value):
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)


def seen_from(carrier):
    """What a handler gets from the message: its W3C fields and the context they extract to."""
    carrier = {text(k): text(v) for k, v in carrier.items()}
    cx = propagate.extract(carrier)
    sc = trace.get_current_span(cx).get_span_context()
    return {
        "headers": {k: v for k, v in carrier.items() if k in ("traceparent", "tracestate", "baggage")},
        "trace_id": format(sc.trace_id, "032x") if sc.is_valid else None,
        "span_id": format(sc.span_id, "016x") if sc.is_valid else None,
        "trace_flags": format(int(sc.trace_flags), "02x") if sc.is_valid else None,
        "tracestate": sc.trace_state.to_header() if sc.is_valid else None,
        "baggage": dict(baggage.get_all(cx)),
    }


def active():
    """The span context the instrumentation made current around the handler, if any."""
    sc = trace.get_current_span().get_span_context()
    if not sc.is_valid:
        return None
    return {"trace_id": format(sc.trace_id, "032x"), "span_id": format(sc.span_id, "016x")}


def spans():
    out = []
    for s in EXPORTER.get_finished_spans():
        out.append(
            {
                "name": s.name,
                "kind": s.kind.name.lower(),
                "trace_id": format(s.context.trace_id, "032x"),
                "span_id": format(s.context.span_id, "016x"),
                "trace_flags": format(int(s.context.trace_flags), "02x"),
                "parent_span_id": format(s.parent.span_id, "016x") if s.parent else None,
                "links": [
                    {"trace_id": format(l.context.trace_id, "032x"), "span_id": format(l.context.span_id, "016x")}
                    for l in s.links
                ],
            }
        )
    return out


# --- Kafka: confluent-kafka with opentelemetry-instrumentation-confluent-kafka -------------------


def kafka_produce(topic):
    from opentelemetry.instrumentation.confluent_kafka import ConfluentKafkaInstrumentor

    ConfluentKafkaInstrumentor().instrument()
    import confluent_kafka

    producer = confluent_kafka.Producer({"bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"]})
    delivered = []
    headers = [("traceparent", STALE.encode())] if DEVIATION == "duplicate" else None
    token = context.attach(upstream())
    try:
        producer.produce(
            topic, b"hello from python", headers=headers, on_delivery=lambda err, msg: delivered.append(err)
        )
    finally:
        context.detach(token)
    assert producer.flush(TIMEOUT) == 0 and delivered == [None], "not delivered: %s" % delivered


def kafka_consume(topic):
    from opentelemetry.instrumentation.confluent_kafka import ConfluentKafkaInstrumentor

    ConfluentKafkaInstrumentor().instrument()
    import confluent_kafka

    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": os.environ["KAFKA_BOOTSTRAP_SERVERS"],
            "group.id": "interop-python",
            "auto.offset.reset": "earliest",
        }
    )
    # Partition 0 from the beginning (no group rebalance to wait for).
    consumer.assign([confluent_kafka.TopicPartition(topic, 0, confluent_kafka.OFFSET_BEGINNING)])
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        message = consumer.poll(1.0)
        if message is None or message.error():
            continue
        seen = seen_from(dict(message.headers() or []))
        seen["active"] = active()
        consumer.close()  # ends the instrumentation's consume span
        return seen
    raise SystemExit("no message within %ss" % TIMEOUT)


# --- RabbitMQ: pika with opentelemetry-instrumentation-pika -------------------------------------


def rabbitmq_connection():
    from opentelemetry.instrumentation.pika import PikaInstrumentor

    PikaInstrumentor().instrument()
    import pika

    return pika, pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"]))


def manual_send(destination, write):
    """A PRODUCER span of our own whose context `write` puts into the message, for the
    deviations no official instrumentation produces."""
    token = context.attach(upstream())
    try:
        with TRACER.start_as_current_span("send " + destination, kind=SpanKind.PRODUCER) as span:
            carrier = {}
            propagate.inject(carrier)
            write(carrier, span.get_span_context())
    finally:
        context.detach(token)


def rabbitmq_produce(queue):
    if DEVIATION == "bytes":
        import pika

        connection = pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"]))
        channel = connection.channel()
        manual_send(
            queue,
            lambda carrier, _: channel.basic_publish(
                "", queue, b"hello from python",
                pika.BasicProperties(headers={k: v.encode() for k, v in carrier.items()}),
            ),
        )
        connection.close()
        return
    pika, connection = rabbitmq_connection()
    channel = connection.channel()
    token = context.attach(upstream())
    try:
        channel.basic_publish("", queue, b"hello from python", pika.BasicProperties(headers={}))
    finally:
        context.detach(token)
    connection.close()


def rabbitmq_consume(queue):
    _, connection = rabbitmq_connection()
    channel = connection.channel()
    seen = {}

    def handler(ch, method, properties, body):
        seen.update(seen_from(properties.headers or {}))
        seen["active"] = active()
        ch.basic_ack(method.delivery_tag)

    channel.basic_consume(queue, handler)
    deadline = time.time() + TIMEOUT
    while not seen and time.time() < deadline:
        connection.process_data_events(time_limit=1)
    connection.close()
    if not seen:
        raise SystemExit("no message within %ss" % TIMEOUT)
    return seen


# --- SQS: boto3 with opentelemetry-instrumentation-boto3sqs -------------------------------------


def sqs_client():
    from opentelemetry.instrumentation.boto3sqs import Boto3SQSInstrumentor

    Boto3SQSInstrumentor().instrument()
    import boto3

    return boto3.client(
        "sqs",
        endpoint_url=os.environ["SQS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def sqs_produce(url):
    if DEVIATION in ("binary", "xray"):
        import boto3

        sqs = boto3.client(
            "sqs",
            endpoint_url=os.environ["SQS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

        def write(carrier, sc):
            if DEVIATION == "binary":
                attributes = {k: {"DataType": "Binary", "BinaryValue": v.encode()} for k, v in carrier.items()}
                sqs.send_message(QueueUrl=url, MessageBody="hello from python", MessageAttributes=attributes)
            else:
                trace_id = format(sc.trace_id, "032x")
                header = "Root=1-%s-%s;Parent=%s;Sampled=1" % (trace_id[:8], trace_id[8:], format(sc.span_id, "016x"))
                sqs.send_message(
                    QueueUrl=url,
                    MessageBody="hello from python",
                    MessageSystemAttributes={"AWSTraceHeader": {"DataType": "String", "StringValue": header}},
                )

        manual_send(url.rsplit("/", 1)[-1], write)
        return
    sqs = sqs_client()
    token = context.attach(upstream())
    try:
        sqs.send_message(QueueUrl=url, MessageBody="hello from python")
    finally:
        context.detach(token)


def sqs_consume(url):
    sqs = sqs_client()
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        reply = sqs.receive_message(QueueUrl=url, MessageAttributeNames=["All"], WaitTimeSeconds=1)
        for message in reply.get("Messages", []):  # iterating starts the instrumentation's span
            attributes = {k: v.get("StringValue", "") for k, v in message.get("MessageAttributes", {}).items()}
            seen = seen_from(attributes)
            seen["active"] = active()
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])  # ends it
            return seen
    raise SystemExit("no message within %ss" % TIMEOUT)


# --- SNS: boto3 with opentelemetry-instrumentation-botocore (publish), delivered to SQS ----------
# DESTINATION is "TOPIC_ARN|QUEUE_URL": the topic, and a queue subscribed to it with raw message
# delivery (the message attributes arrive as SQS message attributes).


def sns_produce(destination):
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor

    BotocoreInstrumentor().instrument()
    import boto3

    topic_arn = destination.split("|", 1)[0]
    sns = boto3.client(
        "sns",
        endpoint_url=os.environ["SQS_ENDPOINT_URL"],
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    token = context.attach(upstream())
    try:
        sns.publish(TopicArn=topic_arn, Message="hello from python")
    finally:
        context.detach(token)


def sns_consume(destination):
    return sqs_consume(destination.split("|", 1)[1])


# --- Redis streams: redis-py, the W3C propagator writing the XADD fields -------------------------


def redis_client():
    import redis

    return redis.Redis.from_url(os.environ["REDIS_URL"])


def redis_produce(stream):
    client = redis_client()
    token = context.attach(upstream())
    try:
        with TRACER.start_as_current_span("send " + stream, kind=SpanKind.PRODUCER):
            fields = {"payload": "hello from python"}
            propagate.inject(fields)
            client.xadd(stream, fields)
    finally:
        context.detach(token)


def redis_consume(stream):
    client = redis_client()
    reply = client.xread({stream: "0"}, count=1, block=int(TIMEOUT * 1000))
    if not reply:
        raise SystemExit("no entry within %ss" % TIMEOUT)
    _, entries = reply[0]
    _, fields = entries[0]
    seen = seen_from(fields)
    parent = propagate.extract({text(k): text(v) for k, v in fields.items()})
    link = trace.Link(trace.get_current_span(parent).get_span_context())
    with TRACER.start_as_current_span("process " + stream, context=parent, kind=SpanKind.CONSUMER, links=[link]):
        seen["active"] = active()
    return seen


# --- NATS JetStream: nats-py, the W3C propagator writing the message headers ---------------------
# No official instrumentation exists for NATS in Python: the SDK's propagator writes and reads the
# headers, as a user would. DESTINATION is "STREAM|SUBJECT".


def nats_produce(destination):
    import asyncio

    import nats

    _, subject = destination.split("|", 1)

    async def run():
        client = await nats.connect(os.environ["NATS_URL"])
        token = context.attach(upstream())
        try:
            with TRACER.start_as_current_span("publish " + subject, kind=SpanKind.PRODUCER):
                headers = {}
                propagate.inject(headers)
                await client.jetstream().publish(subject, b"hello from python", headers=headers, timeout=TIMEOUT)
        finally:
            context.detach(token)
            await client.close()

    asyncio.run(run())


def nats_consume(destination):
    import asyncio

    import nats

    stream, subject = destination.split("|", 1)

    async def run():
        client = await nats.connect(os.environ["NATS_URL"])
        try:
            pull = await client.jetstream().pull_subscribe(subject, durable="python", stream=stream)
            message = (await pull.fetch(1, timeout=TIMEOUT))[0]
            headers = message.headers or {}
            seen = seen_from(headers)
            parent = propagate.extract(dict(headers))
            link = trace.Link(trace.get_current_span(parent).get_span_context())
            with TRACER.start_as_current_span("process " + subject, context=parent, kind=SpanKind.CONSUMER, links=[link]):
                seen["active"] = active()
            await message.ack()
            return seen
        finally:
            await client.close()

    return asyncio.run(run())


def main():
    action, broker, destination = sys.argv[1:4]
    seen = globals()["%s_%s" % (broker, action)](destination)
    PROVIDER.shutdown()
    print(json.dumps({"sdk": "python", "spans": spans(), "seen": seen}))


if __name__ == "__main__":
    main()
