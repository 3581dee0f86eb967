//! The `start*` methods of [`MessagingInstrumenter`]: one [`SpanRequest`] per operation, turned
//! into a span (name, kind, parent, links, attributes) and its metric attribute set.

use super::*;

impl MessagingInstrumenter {
    /// Starts an operation without a message carrier: settle operations, receives that read no
    /// creation context. [`OperationBuilder::start`] with nothing carried.
    pub(super) fn start_plain(
        &self,
        view: &dyn MessagingAttributes,
        parent: &Context,
        started_at: Option<SystemTime>,
    ) -> Operation {
        self.start_span(SpanRequest { started_at, ..SpanRequest::new(view, parent) })
    }

    /// Starts a send (or create) operation for one outgoing message ([`OperationBuilder::with_outgoing_message`]).
    pub(super) fn start_send(
        &self,
        view: &dyn MessagingAttributes,
        parent: &Context,
        message: &dyn Extractor,
        started_at: Option<SystemTime>,
    ) -> Operation {
        let existing = Extracted::new(self.inner.propagator.extract(message, false));
        let own_context = !existing.has_span;
        if self.unsampled_fast_path(parent) {
            // No span: no links, no retry lineage to read.
            return self.start_span(SpanRequest {
                message: Some(message),
                own_context,
                started_at,
                ..SpanRequest::new(view, parent)
            });
        }
        let mut links = Vec::new();
        if existing.has_span {
            links.push(Link::with_context(existing.cx.span().span_context().clone()));
        }
        // A re-publish (crate::retry) links the failed attempt and the original creation context.
        let lineage = crate::retry::lineage(message, None).map(|(lineage, attempt)| {
            links.extend(lineage);
            attempt
        });
        self.start_span(SpanRequest {
            links,
            message: Some(message),
            own_context,
            started_at,
            extra: lineage,
            ..SpanRequest::new(view, parent)
        })
    }

    /// Starts the process operation of one delivered message, `ambient` being the context it is
    /// processed in ([`OperationBuilder::with_delivered_message`]).
    pub(super) fn start_process_in(
        &self,
        view: &dyn MessagingAttributes,
        message: &dyn Extractor,
        extracted: Option<&Context>,
        ambient: &Context,
        started_at: Option<SystemTime>,
    ) -> Operation {
        let extracted = Extracted::new(match extracted {
            Some(cx) => cx.clone(),
            None => self.extract_context(message),
        });
        let keep_baggage = !self.inner.trust_boundary;
        if self.inner.parent_based {
            let parent = process_parent_into(self.process_parent(), &extracted, ambient, keep_baggage, None);
            if self.unsampled_fast_path(&parent) {
                // No span: no links, no retry lineage to read, no clock read but for the metrics.
                let sent = self.inner.instruments.as_ref().and(view.sent_time());
                let now = self.inner.instruments.as_ref().map(|_| started_at.unwrap_or_else(SystemTime::now));
                let queue_wait = sent.zip(now).and_then(|(sent, now)| queue_wait(sent, now));
                return self.start_span(SpanRequest {
                    message: Some(message),
                    started_at: now,
                    queue_wait,
                    ..SpanRequest::new(view, &parent)
                });
            }
        }
        let (parent, mut links) = process_parent(self.process_parent(), &extracted, ambient, keep_baggage);
        let creation = extracted.has_span.then(|| extracted.cx.span().span_context().span_id());
        // Retry lineage comes from the producer: at a trust boundary it is not read at all (its
        // links and attempt counter would be the sender's choice; reliability review M6).
        let lineage = if self.inner.trust_boundary {
            None
        } else {
            crate::retry::lineage(message, creation).map(|(lineage, attempt)| {
                links.extend(lineage);
                attempt
            })
        };
        // One clock read, when queue wait or the metrics need it (otherwise the SDK reads the
        // clock, and only for a span that records).
        let sent = view.sent_time();
        let now =
            started_at.or_else(|| (sent.is_some() || self.inner.instruments.is_some()).then(SystemTime::now));
        let queue_wait = sent.zip(now).and_then(|(sent, now)| queue_wait(sent, now));
        self.start_span(SpanRequest {
            links,
            message: Some(message),
            started_at: now,
            queue_wait,
            bridge: true,
            extra: lineage,
            ..SpanRequest::new(view, &parent)
        })
    }

    /// The links of a batch operation: every message's valid creation context, with its
    /// per-message attributes ([`OperationBuilder::with_batch_links`]).
    pub(super) fn batch_links<'m, I>(&self, messages: I) -> Vec<Link>
    where
        I: IntoIterator<Item = (&'m dyn Extractor, Vec<KeyValue>)>,
    {
        messages
            .into_iter()
            .filter_map(|(extractor, attributes)| {
                let sc = self.inner.propagator.extract_span_context(extractor)?;
                Some(Link::new(sc, attributes, 0))
            })
            .collect()
    }

    /// Starts a batch operation whose `links` are made ([`batch_links`](Self::batch_links)).
    pub(super) fn start_linked(
        &self,
        view: &dyn MessagingAttributes,
        parent: &Context,
        started_at: Option<SystemTime>,
        links: Vec<Link>,
    ) -> Operation {
        self.start_span(SpanRequest { links, started_at, ..SpanRequest::new(view, parent) })
    }

    /// Whether an operation under `parent` takes the unsampled fast path: the sampler is declared
    /// parent-based ([`MessagingInstrumenterBuilder::with_parent_based_sampling`]) and `parent`'s
    /// span context is valid and not sampled.
    fn unsampled_fast_path(&self, parent: &Context) -> bool {
        self.inner.parent_based && {
            let span = parent.span();
            let sc = span.span_context();
            sc.is_valid() && !sc.is_sampled()
        }
    }

    /// The operation of the unsampled fast path: no SDK span, `parent`'s context flows on, the
    /// metrics (when `metric_set` is given) are recorded as usual when it ends. Out of line, so
    /// that it does not change how [`start_span`](Self::start_span) compiles for the SDK path.
    #[inline(never)]
    fn fast_path_operation(
        view: &dyn MessagingAttributes,
        parent: &Context,
        creation_context: bool,
        inner: &Arc<Inner>,
        start: Option<SystemTime>,
        metric_set: Option<Arc<MetricSet>>,
        queue_wait: Option<f64>,
    ) -> Operation {
        let operation_type = view.operation_type();
        let mut operation =
            Operation::without_span(parent, operation_type, creation_context, inner, start, metric_set);
        operation.ended = false;
        operation.messages = view.batch_message_count();
        operation.counts_as_delivery = view.counts_as_delivery();
        operation.queue_wait = queue_wait;
        operation.cancel_on_drop =
            matches!(operation_type, OperationType::Send | OperationType::Create | OperationType::Settle);
        operation
    }

    /// The one place a span starts: name, kind, the sampling-relevant attributes, links, the
    /// enricher's attributes, and the metric attributes.
    fn start_span(&self, request: SpanRequest<'_>) -> Operation {
        let SpanRequest { view, parent, links, message, started_at, own_context, queue_wait, bridge, extra } =
            request;
        #[cfg(not(feature = "tracing"))]
        let _ = bridge;
        let operation_type = view.operation_type();
        let creation_context =
            own_context && matches!(operation_type, OperationType::Send | OperationType::Create);
        if let Some(skip) = &self.inner.skip
            && view.destination_name().is_some_and(|destination| skip(destination))
        {
            // No span, no metric: the context flows through (a send injects `parent`).
            return Operation::without_span(
                parent,
                operation_type,
                creation_context,
                &self.inner,
                None,
                None,
            );
        }
        // The unsampled fast path with metrics off needs none of the naming below.
        if self.inner.instruments.is_none() && self.unsampled_fast_path(parent) {
            return Self::fast_path_operation(
                view,
                parent,
                creation_context,
                &self.inner,
                started_at,
                None,
                queue_wait,
            );
        }
        // Our own clock read only when the duration metric needs it; otherwise the SDK reads the
        // clock for a span that records and not at all for one that does not.
        let start = started_at.or_else(|| self.inner.instruments.is_some().then(SystemTime::now));
        let hidden = view.destination_temporary() || view.destination_anonymous();
        let destination = view.destination_name();
        // The view's template (a broker's own, e.g. a Redis PSUBSCRIBE pattern), else the first of
        // the instrumenter's templates the destination matches.
        let template = view.destination_template().or_else(|| {
            let templates = self.inner.templates.as_ref()?;
            destination.filter(|_| !hidden).and_then(|d| templates.template_of(d))
        });
        let group = view.consumer_group_name();
        let server = view.server();
        // The metric attribute set, resolved once per thread and kind of operation.
        let metric_set = |partition: Option<&StringValue>| {
            self.inner.instruments.as_ref().map(|instruments| {
                let now = start.unwrap_or_else(SystemTime::now);
                instruments.resolve(
                    &MetricKey {
                        system: view.system(),
                        operation_name: view.operation_name(),
                        operation_type,
                        // With a template the name stays off the metrics: it is not known to be of
                        // low cardinality (semconv v1.44 messaging-metrics.md,
                        // `messaging.destination.name`).
                        destination: destination.filter(|_| !hidden && template.is_none()),
                        template,
                        partition: partition.map(StringValue::as_str),
                        group,
                        server,
                    },
                    now,
                )
            })
        };
        // The unsampled fast path: a parent-based sampler would drop this span (its parent is
        // valid and not sampled), so no SDK span is started and the parent's context flows on.
        if self.unsampled_fast_path(parent) {
            let partition = view.destination_partition_id();
            let set = metric_set(partition.as_ref());
            return Self::fast_path_operation(
                view,
                parent,
                creation_context,
                &self.inner,
                start,
                set,
                queue_wait,
            );
        }
        let kind = operation_type.span_kind(own_context && view.send_is_creation_context());

        let mut attributes = Vec::with_capacity(16);
        attributes.push(KeyValue::new(semconv::MESSAGING_SYSTEM, view.system()));
        attributes.push(KeyValue::new(semconv::MESSAGING_OPERATION_NAME, view.operation_name()));
        attributes.push(KeyValue::new(semconv::MESSAGING_OPERATION_TYPE, operation_type.as_str()));

        // The span's string values are shared per thread (`intern`), not allocated per span.
        let interned =
            |key: &'static str, value: &str| KeyValue::new(key, Value::String(intern::value(value)));
        if let Some(name) = destination {
            // A temporary or anonymous destination is unique per request or client (reply
            // inboxes, server-named queues): never interned, so it cannot use up the process's
            // interning budget (reliability review M4).
            attributes.push(if hidden {
                KeyValue::new(
                    semconv::MESSAGING_DESTINATION_NAME,
                    Value::String(opentelemetry::StringValue::from(Arc::<str>::from(name))),
                )
            } else {
                interned(semconv::MESSAGING_DESTINATION_NAME, name)
            });
        }
        if let Some(template) = template {
            attributes.push(interned(semconv::MESSAGING_DESTINATION_TEMPLATE, template));
        }
        let partition = view.destination_partition_id();
        if let Some(partition) = &partition {
            attributes.push(KeyValue::new(semconv::MESSAGING_DESTINATION_PARTITION_ID, partition.clone()));
        }
        if let Some(group) = group {
            attributes.push(interned(semconv::MESSAGING_CONSUMER_GROUP_NAME, group));
        }
        if let Some((address, port)) = server {
            attributes.push(interned(semconv::SERVER_ADDRESS, address));
            if let Some(port) = port {
                attributes.push(KeyValue::new(semconv::SERVER_PORT, i64::from(port)));
            }
        }
        let metric_set = metric_set(partition.as_ref());
        if let Some(enricher) = &self.inner.enricher {
            enricher.on_start(&SpanStart { view, message }, &mut attributes);
        }
        // Attributes no sampler looks at (semconv v1.44 lists the sampling-relevant ones, all
        // above): only a span that records gets them, so an unsampled one builds none of them.
        let batch = view.batch_message_count();
        let body_size = self.inner.body_size;
        let captured_headers = &self.inner.captured_headers;
        let mut extra = extra;
        let mut late = |attributes: &mut Vec<KeyValue>| {
            if view.destination_temporary() {
                attributes.push(KeyValue::new(semconv::MESSAGING_DESTINATION_TEMPORARY, true));
            }
            if view.destination_anonymous() {
                attributes.push(KeyValue::new(semconv::MESSAGING_DESTINATION_ANONYMOUS, true));
            }
            if let Some(count) = batch {
                attributes.push(KeyValue::new(
                    semconv::MESSAGING_BATCH_MESSAGE_COUNT,
                    i64::try_from(count).unwrap_or(i64::MAX),
                ));
            }
            if let Some(id) = view.message_id() {
                attributes.push(KeyValue::new(semconv::MESSAGING_MESSAGE_ID, id.to_owned()));
            }
            if let Some(id) = view.conversation_id() {
                attributes.push(KeyValue::new(semconv::MESSAGING_MESSAGE_CONVERSATION_ID, id.to_owned()));
            }
            if let Some(id) = view.client_id().filter(|_| operation_type != OperationType::Create) {
                attributes.push(interned(semconv::MESSAGING_CLIENT_ID, id));
            }
            let single_with_body = batch.is_none() && operation_type != OperationType::Settle;
            if let Some(size) = view.body_size().filter(|_| body_size && single_with_body) {
                let size = i64::try_from(size).unwrap_or(i64::MAX);
                attributes.push(KeyValue::new(semconv::MESSAGING_MESSAGE_BODY_SIZE, size));
            }
            if let Some(wait) = queue_wait {
                attributes.push(KeyValue::new(semconv::OTEL_MESSAGING_QUEUE_WAIT_DURATION, wait));
            }
            if let Some(message) = message {
                for (header, key) in captured_headers {
                    if let Some(values) = message.get_all(header) {
                        // At most 16 values of at most MAX_COPIED_VALUE_LEN bytes each: the
                        // producer chooses how many and how large (reliability review M7).
                        let values: Vec<StringValue> = values
                            .into_iter()
                            .take(MAX_CAPTURED_VALUES)
                            .map(|v| StringValue::from(crate::attributes::bounded_value(v)))
                            .collect();
                        attributes.push(KeyValue::new(key.clone(), Value::Array(Array::String(values))));
                    }
                }
            }
            view.system_attributes(attributes);
            attributes.extend(extra.take());
        };

        let name = span_name(view.operation_name(), destination, template, hidden);
        // With feature `tracing`, a process operation is backed by a `tracing` span when possible.
        #[cfg(feature = "tracing")]
        let tracing_span = bridge
            .then(|| {
                crate::tracing_bridge::operation_span(&name, &kind, &attributes, &mut late, &links, parent)
            })
            .flatten();
        let plain = |late: &mut dyn FnMut(&mut Vec<KeyValue>)| {
            let mut builder = SpanBuilder::from_name(name).with_kind(kind).with_attributes(attributes);
            if let Some(start) = start {
                builder = builder.with_start_time(start);
            }
            if !links.is_empty() {
                builder = builder.with_links(links);
            }
            self.inner.tracer.start(builder, parent, late)
        };
        #[cfg(feature = "tracing")]
        let cx = match &tracing_span {
            Some(span) => tracing_opentelemetry::OpenTelemetrySpanExt::context(span),
            None => plain(&mut late),
        };
        #[cfg(not(feature = "tracing"))]
        let cx = plain(&mut late);
        Operation {
            cx,
            start,
            operation_type,
            creation_context,
            messages: batch,
            failed_messages: 0,
            counts_as_delivery: view.counts_as_delivery(),
            queue_wait,
            metric_set,
            instrumenter: self.inner.clone(),
            ended: false,
            own_span: true,
            // A send, create or settle dropped before it is ended never saw its outcome (a future
            // dropped by `select!` or a timeout, a delivery report that never came): `cancelled`,
            // not a success (reliability review M5).
            cancel_on_drop: matches!(
                operation_type,
                OperationType::Send | OperationType::Create | OperationType::Settle
            ),
            #[cfg(feature = "tracing")]
            tracing_span,
        }
    }
}

/// Everything one span start needs; built by the public `start*` methods.
pub(super) struct SpanRequest<'a> {
    pub(super) view: &'a dyn MessagingAttributes,
    pub(super) parent: &'a Context,
    /// Creation contexts (and, under some policies, the ambient span) to link, at span start.
    pub(super) links: Vec<Link>,
    /// The message's carrier, for header capture and the enricher.
    pub(super) message: Option<&'a dyn Extractor>,
    /// Back-dated start; `None` means now.
    pub(super) started_at: Option<SystemTime>,
    /// Whether a send span's own context becomes the creation context (no user-provided one).
    pub(super) own_context: bool,
    /// Queue wait of a process operation, seconds.
    pub(super) queue_wait: Option<f64>,
    /// With feature `tracing`: back the span by a `tracing` span when possible (process spans).
    pub(super) bridge: bool,
    /// One more attribute (the retry attempt of a re-published message).
    pub(super) extra: Option<KeyValue>,
}

impl<'a> SpanRequest<'a> {
    fn new(view: &'a dyn MessagingAttributes, parent: &'a Context) -> Self {
        SpanRequest {
            view,
            parent,
            links: Vec::new(),
            message: None,
            started_at: None,
            own_context: true,
            queue_wait: None,
            bridge: false,
            extra: None,
        }
    }
}
