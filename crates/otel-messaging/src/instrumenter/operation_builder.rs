//! [`OperationBuilder`]: the one way an [`Operation`] starts — parent, start time, and the
//! message it carries (outgoing, delivered, or a batch's links).

use super::*;

/// What an operation reads from its message(s) at start.
enum Carried<'a> {
    /// Nothing: a settle, or a receive whose messages are not known yet.
    Nothing,
    /// An outgoing message's headers (send, create).
    Outgoing(&'a dyn Extractor),
    /// A delivered message's headers (process).
    Delivered(&'a dyn Extractor),
    /// A delivered message's headers and the context a receive extracted from them already.
    DeliveredExtracted(&'a dyn Extractor, &'a DeliveredContext),
    /// The links of a batch's messages, made already.
    Batch(Vec<Link>),
}

/// Starts one messaging [`Operation`]: made by [`MessagingInstrumenter::operation`], configured
/// with `with_*`, started by [`start`](Self::start) — the shape of opentelemetry's `SpanBuilder`.
///
/// At most one of [`with_outgoing_message`](Self::with_outgoing_message),
/// [`with_delivered_message`](Self::with_delivered_message) and
/// [`with_batch_links`](Self::with_batch_links) applies: the last one called. With none, the
/// operation reads no message (settle operations, a receive before its messages are known).
///
/// # Examples
///
/// ```
/// use std::collections::HashMap;
/// use opentelemetry::Context;
/// use otel_messaging::{MessagingAttributes, MessagingInstrumenter, OperationType};
///
/// struct Process<'a>(&'a str);
/// impl MessagingAttributes for Process<'_> {
///     fn system(&self) -> &'static str { "rabbitmq" }
///     fn operation_type(&self) -> OperationType { OperationType::Process }
///     fn operation_name(&self) -> &'static str { "process" }
///     fn destination_name(&self) -> Option<&str> { Some(self.0) }
/// }
///
/// let instrumenter = MessagingInstrumenter::new();
/// let headers: HashMap<String, String> = HashMap::new(); // the delivered message's headers
/// let operation = instrumenter.operation(&Process("orders")).with_delivered_message(&headers).start();
/// let result: Result<(), std::io::Error> = Ok(()); // ... the handler ...
/// operation.end(&result, |_| "io");
/// ```
#[must_use = "nothing starts until .start() is called"]
pub struct OperationBuilder<'a> {
    instrumenter: &'a MessagingInstrumenter,
    view: &'a dyn MessagingAttributes,
    parent: Option<&'a Context>,
    started_at: Option<SystemTime>,
    carried: Carried<'a>,
}

impl fmt::Debug for OperationBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let carried = match &self.carried {
            Carried::Nothing => "nothing",
            Carried::Outgoing(_) => "outgoing message",
            Carried::Delivered(_) | Carried::DeliveredExtracted(..) => "delivered message",
            Carried::Batch(_) => "batch links",
        };
        f.debug_struct("OperationBuilder")
            .field("operation_name", &self.view.operation_name())
            .field("destination", &self.view.destination_name())
            .field("explicit_parent", &self.parent.is_some())
            .field("started_at", &self.started_at)
            .field("carried", &carried)
            .finish()
    }
}

impl MessagingInstrumenter {
    /// Begins an operation described by `view` (system, operation, destination, message facts):
    /// set its parent, start time and message with the [`OperationBuilder`]'s `with_*` methods,
    /// then [`start`](OperationBuilder::start) it. The one start of the instrumenter; what it
    /// returns is ended with [`Operation::end`] (or run with [`Operation::run`]).
    ///
    /// A copy of the process-wide default ([`global`](Self::global)) resolves the default in force
    /// here, once per operation.
    #[inline(always)]
    pub fn operation<'a>(&'a self, view: &'a dyn MessagingAttributes) -> OperationBuilder<'a> {
        OperationBuilder {
            instrumenter: self,
            view,
            parent: None,
            started_at: None,
            carried: Carried::Nothing,
        }
    }
}

impl<'a> OperationBuilder<'a> {
    /// The parent context: of the span for operations without a delivered message, and the
    /// ambient context (the one it is processed in) for a process operation, whose parent then
    /// follows the [process-parent policy](MessagingInstrumenter::process_parent).
    ///
    /// Defaults to [`crate::current_context`] (the current `tracing` span's context with feature
    /// `tracing`, else `Context::current()`), read at [`start`](Self::start).
    #[inline(always)]
    pub fn with_parent(mut self, parent: &'a Context) -> Self {
        self.parent = Some(parent);
        self
    }

    /// Back-dates the start to `started_at`: for operations whose view is only complete once the
    /// broker answered (a receive that failed, a poll whose destination is the returned
    /// message's topic), so that span and duration metric still cover the whole call (semconv
    /// v1.44 messaging-spans.md: operations are timed from their start). For a process
    /// operation, queue wait is measured up to it.
    ///
    /// Defaults to the time of [`start`](Self::start).
    #[inline(always)]
    pub fn with_start_time(mut self, started_at: SystemTime) -> Self {
        self.started_at = Some(started_at);
        self
    }

    /// A send (or create) of one outgoing message whose headers `message` reads.
    ///
    /// If they hold a valid creation context already (a user-provided one), it is **not**
    /// overwritten — [`Operation::inject`] does nothing, the span links to that context and,
    /// being no longer the creation context, is a `CLIENT` send span (semconv v1.44
    /// messaging-spans.md, "Producer spans"). A re-published message's retry lineage
    /// ([`crate::retry`]) is linked. Allow-listed headers are captured as
    /// `messaging.header.<name>`.
    #[inline(always)]
    pub fn with_outgoing_message(mut self, message: &'a dyn Extractor) -> Self {
        self.carried = Carried::Outgoing(message);
        self
    }

    /// The process operation of one delivered message whose headers `message` reads.
    ///
    /// The creation context is read from `message` (strict W3C validation; invalid input means
    /// "no context", and the span is then a child of the [parent](Self::with_parent) or a new
    /// root). Parent and links follow the
    /// [process-parent policy](MessagingInstrumenter::process_parent); the creation context is
    /// always linked. Incoming baggage is visible in [`Operation::context`] unless the
    /// instrumenter is a trust boundary. Queue wait is recorded when the view knows the send
    /// time. With feature `tracing` the span is backed by a `tracing` span when possible.
    #[inline(always)]
    pub fn with_delivered_message(mut self, message: &'a dyn Extractor) -> Self {
        self.carried = Carried::Delivered(message);
        self
    }

    /// [`with_delivered_message`](Self::with_delivered_message) for a message whose context a traced
    /// receive may have read already ([`MessagingInstrumenter::extract_delivered`]): that reading is
    /// used as it is when this operation's instrumenter is the one that made it; without one, or
    /// made by another, the context is read from `message`. `message` still serves everything else
    /// (retry lineage, captured headers, the enricher).
    ///
    /// Plumbing of the broker crates (hidden, like [`crate::__private`]).
    #[doc(hidden)]
    #[inline(always)]
    pub fn with_delivered_context(
        mut self,
        message: &'a dyn Extractor,
        extracted: Option<&'a DeliveredContext>,
    ) -> Self {
        self.carried = match extracted {
            Some(extracted) => Carried::DeliveredExtracted(message, extracted),
            None => Carried::Delivered(message),
        };
        self
    }

    /// A settle of one message, linked to its creation context: the link a traced receive made
    /// from its reading (`Some(None)`: the message has none), else (`None`) read from `message`.
    ///
    /// Plumbing of the broker crates (hidden, like [`crate::__private`]).
    #[doc(hidden)]
    #[inline(always)]
    pub fn with_settled_message(self, message: &'a dyn Extractor, kept: Option<Option<Link>>) -> Self {
        match kept {
            Some(link) => self.with_links(link.into_iter().collect()),
            None => self.with_batch_links(std::iter::once((message, Vec::new()))),
        }
    }

    /// Links given as they are: for a receive whose messages' contexts were read already
    /// ([`DeliveredContext::link`]).
    ///
    /// Plumbing of the broker crates (hidden, like [`crate::__private`]).
    #[doc(hidden)]
    #[inline(always)]
    pub fn with_links(mut self, links: Vec<Link>) -> Self {
        self.carried = Carried::Batch(links);
        self
    }

    /// A batch operation (receive/poll, batch process, batch settle) that links every message's
    /// creation context, each link with its message's attributes (e.g. `messaging.message.id`,
    /// partition, offset). Messages without a valid creation context get no link; the parent is
    /// never a creation context. Links exist at span start, so samplers see them.
    #[inline(always)]
    pub fn with_batch_links<'m, I>(mut self, messages: I) -> Self
    where
        I: IntoIterator<Item = (&'m dyn Extractor, Vec<KeyValue>)>,
    {
        self.carried = Carried::Batch(self.instrumenter.resolved().batch_links(messages));
        self
    }

    /// Starts the operation: its span (name, kind, parent, links, attributes) and its metric
    /// attribute set. Never fails; with a no-op tracer provider the operation still records its
    /// metrics and propagates its parent's context.
    #[inline(always)]
    pub fn start(self) -> Operation {
        let OperationBuilder { instrumenter, view, parent, started_at, carried } = self;
        let instrumenter = instrumenter.resolved();
        let current;
        let parent = match parent {
            Some(parent) => parent,
            None => {
                current = crate::current_context();
                &current
            }
        };
        match carried {
            Carried::Nothing => instrumenter.start_plain(view, parent, started_at),
            Carried::Outgoing(message) => instrumenter.start_send(view, parent, message, started_at),
            Carried::Delivered(message) => {
                instrumenter.start_process_in(view, message, None, parent, started_at)
            }
            Carried::DeliveredExtracted(message, extracted) => {
                let extracted = extracted.for_instrumenter(&instrumenter);
                instrumenter.start_process_in(view, message, extracted, parent, started_at)
            }
            Carried::Batch(links) => instrumenter.start_linked(view, parent, started_at, links),
        }
    }
}
