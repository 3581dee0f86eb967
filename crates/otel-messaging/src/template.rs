//! Destination templates: `messaging.destination.template` for destinations that carry ids
//! (`orders.4711.created`, `tenant-42-orders`), so that span names and metric attributes stay
//! low-cardinality (semconv v1.44 messaging-spans.md, "Span name", and messaging-metrics.md:
//! `messaging.destination.name` on metrics only when it is known to have low cardinality).

use std::{fmt, sync::Arc};

/// A list of destination templates, matched in order: each is the destination with its varying
/// parts written `{name}` — `orders.{order_id}.created`, `tenant-{tenant}-orders`,
/// `https://sqs.{region}.amazonaws.com/{account}/jobs-{shard}`. A `{name}` matches one or more
/// characters other than `.`, `/` and `:` (one NATS subject token, one path or URL segment);
/// everything else must be equal. The first template that matches a destination is its
/// template; a destination no template matches has none.
///
/// # Examples
///
/// ```
/// use otel_messaging::DestinationTemplates;
///
/// let templates = DestinationTemplates::new(["orders.{order_id}.created", "tenant-{tenant}-events"]);
/// assert_eq!(templates.template_of("orders.4711.created"), Some("orders.{order_id}.created"));
/// assert_eq!(templates.template_of("tenant-42-events"), Some("tenant-{tenant}-events"));
/// assert_eq!(templates.template_of("orders.4711.shipped"), None);
/// assert_eq!(templates.template_of("orders.47.11.created"), None); // one token per placeholder
/// ```
#[derive(Clone)]
pub struct DestinationTemplates {
    templates: Arc<[Template]>,
}

struct Template {
    text: Box<str>,
    /// Literal parts; a placeholder sits between each two.
    literals: Vec<Box<str>>,
}

impl fmt::Debug for DestinationTemplates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.templates.iter().map(|t| &t.text)).finish()
    }
}

impl DestinationTemplates {
    /// The templates, in matching order. A `{` without a closing `}` is literal text.
    pub fn new<I, S>(templates: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        DestinationTemplates {
            templates: templates.into_iter().map(|t| Template::parse(t.as_ref())).collect(),
        }
    }

    /// The first template `destination` matches, if any.
    pub fn template_of(&self, destination: &str) -> Option<&str> {
        self.templates.iter().find(|t| t.matches(destination)).map(|t| &*t.text)
    }
}

impl Template {
    fn parse(text: &str) -> Self {
        let mut literals = Vec::new();
        let mut rest = text;
        let mut literal = String::new();
        while let Some(open) = rest.find('{') {
            match rest[open..].find('}') {
                Some(close) => {
                    literal.push_str(&rest[..open]);
                    literals.push(std::mem::take(&mut literal).into_boxed_str());
                    rest = &rest[open + close + 1..];
                }
                None => break,
            }
        }
        literal.push_str(rest);
        literals.push(literal.into_boxed_str());
        Template { text: text.into(), literals }
    }

    fn matches(&self, destination: &str) -> bool {
        fn placeholder_char(c: char) -> bool {
            !matches!(c, '.' | '/' | ':')
        }
        /// Whether `s` matches `literals[0]`, then a placeholder, `literals[1]`, … (backtracking
        /// over the placeholder's length; templates are short).
        fn rest(s: &str, literals: &[Box<str>]) -> bool {
            let Some((first, others)) = literals.split_first() else { return s.is_empty() };
            let Some(s) = s.strip_prefix(&**first) else { return false };
            if others.is_empty() {
                return s.is_empty();
            }
            // A placeholder: one or more characters, then the next literal.
            for (i, c) in s.char_indices() {
                if !placeholder_char(c) {
                    break;
                }
                if rest(&s[i + c.len_utf8()..], others) {
                    return true;
                }
            }
            false
        }
        rest(destination, &self.literals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_match_one_segment() {
        let t = DestinationTemplates::new(["a.{x}.b", "{tenant}-orders", "q/{id}", "{all}", "lit{"]);
        assert_eq!(t.template_of("a.1.b"), Some("a.{x}.b"));
        assert_eq!(t.template_of("a..b"), None);
        assert_eq!(t.template_of("t-42-orders"), Some("{tenant}-orders"));
        assert_eq!(t.template_of("q/7"), Some("q/{id}"));
        assert_eq!(t.template_of("q/7/8"), None);
        assert_eq!(t.template_of("plain"), Some("{all}"));
        assert_eq!(t.template_of(""), None);
        assert_eq!(DestinationTemplates::new(["lit{"]).template_of("lit{"), Some("lit{"));
        assert_eq!(DestinationTemplates::new(["{a}{b}"]).template_of("xy"), Some("{a}{b}"));
        assert_eq!(DestinationTemplates::new(["{a}{b}"]).template_of("x"), None);
    }
}
