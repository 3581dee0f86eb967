//! [`TracedMessage`]: a message and its running process span.

use super::*;

/// A message handed to the application together with its running process span (`process
/// {destination}`), as the broker crates' stream adapters and `start_process()` give it.
///
/// Run the handler with [`process`](Self::process): it receives the message as its argument,
/// runs inside the span, and its result ends the span. [`message`](Self::message) reads the
/// message and [`context`](Self::context) is the span's context for work of your own; dropping it
/// (or [`into_inner`](Self::into_inner)) ends the span. It does not dereference to the message, so
/// that a second `process_traced` on it — a second process span for one message — does not
/// compile.
#[derive(Debug)]
#[must_use = "the process span runs until this is processed or dropped: call .process(handler)"]
pub struct TracedMessage<M> {
    message: M,
    operation: Operation,
}

impl<M> TracedMessage<M> {
    /// Pairs `message` with the process `operation` started for it.
    pub fn new(message: M, operation: Operation) -> Self {
        TracedMessage { message, operation }
    }

    /// The context of the process span.
    pub fn context(&self) -> &Context {
        self.operation.context()
    }

    /// The message.
    pub fn message(&self) -> &M {
        &self.message
    }

    /// Runs `handler` inside the process span, ends the span with its result, and returns the
    /// message and the result unchanged.
    ///
    /// # Errors
    ///
    /// The handler's error, unchanged (span status `Error`, `error.type` = its type name).
    pub async fn process<T, E>(self, handler: impl AsyncFnOnce(&M) -> Result<T, E>) -> (M, Result<T, E>)
    where
        E: fmt::Display,
    {
        let TracedMessage { message, operation } = self;
        let result = operation.run(handler(&message)).await;
        (message, result)
    }

    /// Ends the process span and returns the message.
    pub fn into_inner(self) -> M {
        self.message
    }
}
