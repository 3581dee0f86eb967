#!/usr/bin/env node
// Interop peer on the Node OpenTelemetry SDK and its official instrumentations.
//
//   node interop.js produce BROKER DESTINATION   # send one message, print the spans as JSON
//   node interop.js consume BROKER DESTINATION   # receive one message, print the spans and what it saw
//
// BROKER is kafka (kafkajs + @opentelemetry/instrumentation-kafkajs), rabbitmq (amqplib +
// @opentelemetry/instrumentation-amqplib), sqs (@aws-sdk/client-sqs +
// @opentelemetry/instrumentation-aws-sdk), redis (node-redis; no official instrumentation injects
// into stream entries, so the W3C propagator writes the XADD fields, as a user would) or nats
// (nats.js on JetStream, the W3C propagator writing the message headers: no official
// instrumentation exists). Broker addresses come from KAFKA_BOOTSTRAP_SERVERS, AMQP_URL,
// SQS_ENDPOINT_URL, REDIS_URL, NATS_URL.
//
// The producer sends inside an upstream context standing in for the request that enqueues the
// message: a remote parent with `tracestate: interop=node` and baggage `interop.sdk=node`, sampled
// (flags 01) unless INTEROP_SAMPLED=0 (flags 00).
// Output: one JSON object on stdout (see interop/README.md).
'use strict';

const api = require('@opentelemetry/api');
const { TraceState } = require('@opentelemetry/core');
const { NodeTracerProvider } = require('@opentelemetry/sdk-trace-node');
const { InMemorySpanExporter, SimpleSpanProcessor } = require('@opentelemetry/sdk-trace-base');
const { registerInstrumentations } = require('@opentelemetry/instrumentation');
const { KafkaJsInstrumentation } = require('@opentelemetry/instrumentation-kafkajs');
const { AmqplibInstrumentation } = require('@opentelemetry/instrumentation-amqplib');
const { AwsInstrumentation } = require('@opentelemetry/instrumentation-aws-sdk');
const crypto = require('node:crypto');

const exporter = new InMemorySpanExporter();
const provider = new NodeTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
provider.register(); // AsyncLocalStorage context, W3C trace context + baggage propagators
registerInstrumentations({
  instrumentations: [new KafkaJsInstrumentation(), new AmqplibInstrumentation(), new AwsInstrumentation()],
});
const tracer = api.trace.getTracer('interop');
const TIMEOUT_MS = 30000;

/** The context the producer sends in: a remote parent with tracestate and baggage. */
function upstream() {
  const parent = {
    traceId: crypto.randomBytes(16).toString('hex'),
    spanId: crypto.randomBytes(8).toString('hex'),
    traceFlags: process.env.INTEROP_SAMPLED === '0' ? api.TraceFlags.NONE : api.TraceFlags.SAMPLED,
    isRemote: true,
    traceState: new TraceState('interop=node'),
  };
  const cx = api.trace.setSpanContext(api.ROOT_CONTEXT, parent);
  return api.propagation.setBaggage(cx, api.propagation.createBaggage({ 'interop.sdk': { value: 'node' } }));
}

const text = (v) => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v));

/** What a handler gets from the message: its W3C fields and the context they extract to. */
function seenFrom(carrier) {
  const fields = {};
  for (const [k, v] of Object.entries(carrier || {})) {
    if (v !== undefined && v !== null) fields[k] = text(v);
  }
  const cx = api.propagation.extract(api.ROOT_CONTEXT, fields);
  const sc = api.trace.getSpanContext(cx);
  const valid = sc !== undefined && api.isSpanContextValid(sc);
  const bag = api.propagation.getBaggage(cx);
  return {
    headers: Object.fromEntries(Object.entries(fields).filter(([k]) => ['traceparent', 'tracestate', 'baggage'].includes(k))),
    trace_id: valid ? sc.traceId : null,
    span_id: valid ? sc.spanId : null,
    trace_flags: valid ? sc.traceFlags.toString(16).padStart(2, '0') : null,
    tracestate: valid && sc.traceState ? sc.traceState.serialize() : null,
    baggage: bag ? Object.fromEntries(bag.getAllEntries().map(([k, e]) => [k, e.value])) : {},
  };
}

/** The span context the instrumentation made current around the handler, if any. */
function active() {
  const sc = api.trace.getSpanContext(api.context.active());
  return sc && api.isSpanContextValid(sc) ? { trace_id: sc.traceId, span_id: sc.spanId } : null;
}

function spans() {
  return exporter.getFinishedSpans().map((s) => ({
    name: s.name,
    kind: ['internal', 'server', 'client', 'producer', 'consumer'][s.kind],
    trace_id: s.spanContext().traceId,
    span_id: s.spanContext().spanId,
    trace_flags: s.spanContext().traceFlags.toString(16).padStart(2, '0'),
    parent_span_id: s.parentSpanContext ? s.parentSpanContext.spanId : (s.parentSpanId || null),
    links: s.links.map((l) => ({ trace_id: l.context.traceId, span_id: l.context.spanId })),
  }));
}

function withTimeout(promise, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${what} within ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// --- Kafka: kafkajs with @opentelemetry/instrumentation-kafkajs -----------------------------------

function kafka() {
  const { Kafka, logLevel } = require('kafkajs');
  return new Kafka({ clientId: 'interop-node', brokers: process.env.KAFKA_BOOTSTRAP_SERVERS.split(','), logLevel: logLevel.NOTHING });
}

async function kafkaProduce(topic) {
  const producer = kafka().producer();
  await producer.connect();
  await api.context.with(upstream(), () => producer.send({ topic, messages: [{ value: 'hello from node' }] }));
  await producer.disconnect();
}

async function kafkaConsume(topic) {
  const consumer = kafka().consumer({ groupId: `interop-node-${topic}` });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  const seen = await withTimeout(
    new Promise((resolve) => {
      consumer.run({
        eachMessage: async ({ message }) => resolve({ ...seenFrom(message.headers), active: active() }),
      });
    }),
    'message',
  );
  await consumer.disconnect();
  return seen;
}

// --- RabbitMQ: amqplib with @opentelemetry/instrumentation-amqplib --------------------------------

async function rabbitmqProduce(queue) {
  const amqp = require('amqplib');
  const connection = await amqp.connect(process.env.AMQP_URL);
  const channel = await connection.createConfirmChannel();
  await api.context.with(upstream(), async () => {
    channel.sendToQueue(queue, Buffer.from('hello from node'));
    await channel.waitForConfirms();
  });
  await connection.close();
}

async function rabbitmqConsume(queue) {
  const amqp = require('amqplib');
  const connection = await amqp.connect(process.env.AMQP_URL);
  const channel = await connection.createChannel();
  const seen = await withTimeout(
    new Promise((resolve) => {
      channel.consume(queue, (message) => {
        const seen = { ...seenFrom(message.properties.headers), active: active() };
        channel.ack(message); // ends the instrumentation's process span
        resolve(seen);
      });
    }),
    'message',
  );
  await connection.close();
  return seen;
}

// --- SQS: @aws-sdk/client-sqs with @opentelemetry/instrumentation-aws-sdk --------------------------

function sqs() {
  const { SQSClient } = require('@aws-sdk/client-sqs');
  return new SQSClient({
    endpoint: process.env.SQS_ENDPOINT_URL,
    region: 'us-east-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
}

async function sqsProduce(url) {
  const { SendMessageCommand } = require('@aws-sdk/client-sqs');
  const client = sqs();
  await api.context.with(upstream(), () => client.send(new SendMessageCommand({ QueueUrl: url, MessageBody: 'hello from node' })));
}

async function sqsConsume(url) {
  const { ReceiveMessageCommand, DeleteMessageCommand } = require('@aws-sdk/client-sqs');
  const client = sqs();
  const deadline = Date.now() + TIMEOUT_MS;
  while (Date.now() < deadline) {
    const reply = await client.send(
      new ReceiveMessageCommand({ QueueUrl: url, MessageAttributeNames: ['All'], WaitTimeSeconds: 1 }),
    );
    for (const message of reply.Messages || []) {
      const attributes = {};
      for (const [k, v] of Object.entries(message.MessageAttributes || {})) attributes[k] = v.StringValue;
      const seen = { ...seenFrom(attributes), active: active() };
      await client.send(new DeleteMessageCommand({ QueueUrl: url, ReceiptHandle: message.ReceiptHandle }));
      return seen;
    }
  }
  throw new Error(`no message within ${TIMEOUT_MS} ms`);
}

// --- Redis streams: node-redis, the W3C propagator writing the XADD fields ------------------------

async function redis() {
  const { createClient } = require('redis');
  const client = createClient({ url: process.env.REDIS_URL });
  await client.connect();
  return client;
}

async function redisProduce(stream) {
  const client = await redis();
  await api.context.with(upstream(), () =>
    tracer.startActiveSpan(`send ${stream}`, { kind: api.SpanKind.PRODUCER }, async (span) => {
      const fields = { payload: 'hello from node' };
      api.propagation.inject(api.context.active(), fields);
      await client.xAdd(stream, '*', fields);
      span.end();
    }),
  );
  await client.quit();
}

async function redisConsume(stream) {
  const client = await redis();
  const reply = await client.xRead({ key: stream, id: '0' }, { COUNT: 1, BLOCK: TIMEOUT_MS });
  if (!reply || reply.length === 0) throw new Error(`no entry within ${TIMEOUT_MS} ms`);
  const fields = reply[0].messages[0].message;
  const seen = seenFrom(fields);
  const parent = api.propagation.extract(api.ROOT_CONTEXT, fields);
  const link = api.trace.getSpanContext(parent);
  await tracer.startActiveSpan(
    `process ${stream}`,
    { kind: api.SpanKind.CONSUMER, links: link ? [{ context: link }] : [] },
    parent,
    async (span) => {
      seen.active = active();
      span.end();
    },
  );
  await client.quit();
  return seen;
}

// --- NATS JetStream: nats.js, the W3C propagator writing the message headers ---------------------
// No official instrumentation exists for NATS in Node: the SDK's propagator writes and reads the
// headers, as a user would. DESTINATION is "STREAM|SUBJECT".

async function natsClient() {
  const { connect } = require('nats');
  return connect({ servers: process.env.NATS_URL });
}

async function natsProduce(destination) {
  const { headers } = require('nats');
  const subject = destination.split('|')[1];
  const client = await natsClient();
  await api.context.with(upstream(), () =>
    tracer.startActiveSpan(`publish ${subject}`, { kind: api.SpanKind.PRODUCER }, async (span) => {
      const fields = {};
      api.propagation.inject(api.context.active(), fields);
      const h = headers();
      for (const [k, v] of Object.entries(fields)) h.set(k, v);
      await client.jetstream().publish(subject, Buffer.from('hello from node'), { headers: h, timeout: TIMEOUT_MS });
      span.end();
    }),
  );
  await client.close();
}

async function natsConsume(destination) {
  const [stream] = destination.split('|');
  const client = await natsClient();
  const consumer = await client.jetstream().consumers.get(stream);
  const message = await consumer.next({ expires: TIMEOUT_MS });
  if (!message) throw new Error(`no message within ${TIMEOUT_MS} ms`);
  const fields = {};
  if (message.headers) for (const [k, v] of message.headers) fields[k] = v[0];
  const seen = seenFrom(fields);
  const parent = api.propagation.extract(api.ROOT_CONTEXT, fields);
  const link = api.trace.getSpanContext(parent);
  await tracer.startActiveSpan(
    `process ${message.subject}`,
    { kind: api.SpanKind.CONSUMER, links: link ? [{ context: link }] : [] },
    parent,
    async (span) => {
      seen.active = active();
      span.end();
    },
  );
  // An ordered consumer (no name): acknowledgement policy none, nothing to ack.
  await client.close();
  return seen;
}

async function main() {
  const [action, broker, destination] = process.argv.slice(2);
  const handlers = {
    kafka: { produce: kafkaProduce, consume: kafkaConsume },
    rabbitmq: { produce: rabbitmqProduce, consume: rabbitmqConsume },
    sqs: { produce: sqsProduce, consume: sqsConsume },
    redis: { produce: redisProduce, consume: redisConsume },
    nats: { produce: natsProduce, consume: natsConsume },
  };
  const seen = (await handlers[broker][action](destination)) || null;
  await provider.forceFlush();
  process.stdout.write(`${JSON.stringify({ sdk: 'node', spans: spans(), seen })}\n`);
  await provider.shutdown();
}

main().then(
  () => process.exit(0),
  (error) => {
    process.stderr.write(`${error.stack || error}\n`);
    process.exit(1);
  },
);
