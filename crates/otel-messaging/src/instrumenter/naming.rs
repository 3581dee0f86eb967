//! Span names (`{operation} {destination}`) and the per-thread interning of the strings that
//! repeat from one message to the next.

use super::*;

/// The span name: `{messaging.operation.name} {destination}`, where the destination is the
/// template if any, else the destination name unless it is temporary or anonymous; without one the
/// name is the operation name alone (semconv v1.44 `messaging-spans.md`, "Span name").
pub(crate) fn span_name(
    operation_name: &'static str,
    destination: Option<&str>,
    template: Option<&str>,
    hidden: bool,
) -> Cow<'static, str> {
    match template.or(if hidden { None } else { destination }) {
        Some(destination) => intern::name(operation_name, destination),
        None => Cow::Borrowed(operation_name),
    }
}

/// Per-thread caches of the attribute values and span names that repeat from one message to the
/// next (destination, server address, consumer group, client id; `{operation} {destination}`), so
/// a span costs no allocation for them once its destination has been seen (BENCHMARKS.md, lever 1).
///
/// Each thread keeps its last [`RECENT`] distinct strings and names; a miss looks the string up in
/// the process-wide set (one lock), so every distinct string is leaked once, whichever threads use
/// it and however often they miss. Values and names are `&'static str` (no reference count to touch
/// per span): up to [`LEAK_BYTES`] bytes are leaked in the whole process (low-cardinality
/// destinations fit many times over); past that, values are shared `Arc<str>`s and names are
/// allocated per span as before, so high-cardinality destinations cannot grow memory.
pub(super) mod intern {
    use std::{
        borrow::Cow,
        cell::RefCell,
        collections::HashSet,
        sync::{
            Arc, LazyLock, Mutex,
            atomic::{AtomicUsize, Ordering},
        },
    };

    use opentelemetry::StringValue;

    const RECENT: usize = 16;
    const LEAK_BYTES: usize = 256 * 1024;
    static LEAKED: AtomicUsize = AtomicUsize::new(0);
    /// Every leaked string, found again by any thread whose cache misses it, and kept reachable
    /// so leak checkers (LeakSanitizer in the fuzz smoke) do not report them.
    static SHARED: LazyLock<Mutex<HashSet<&'static str>>> = LazyLock::new(Mutex::default);

    thread_local! {
        static VALUES: RefCell<Vec<(&'static str, StringValue)>> = const { RefCell::new(Vec::new()) };
        static NAMES: RefCell<Vec<(&'static str, &'static str, &'static str)>> = const { RefCell::new(Vec::new()) };
    }

    fn remember<T>(cache: &mut Vec<T>, entry: T) {
        if cache.len() >= RECENT {
            cache.remove(0);
        }
        cache.push(entry);
    }

    /// The process's one `&'static` copy of `s`: found in [`SHARED`], or leaked while the
    /// process-wide budget lasts (`None` past it).
    fn shared(s: &str) -> Option<&'static str> {
        let mut set = SHARED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(found) = set.get(s) {
            return Some(found);
        }
        let len = s.len();
        if LEAKED.fetch_add(len, Ordering::Relaxed) + len > LEAK_BYTES {
            LEAKED.fetch_sub(len, Ordering::Relaxed);
            return None;
        }
        let leaked: &'static str = Box::leak(Box::from(s));
        set.insert(leaked);
        Some(leaked)
    }

    pub(in crate::instrumenter) fn value(s: &str) -> StringValue {
        VALUES
            .try_with(|cache| {
                let mut cache = cache.borrow_mut();
                if let Some((_, v)) = cache.iter().find(|(k, _)| **k == *s) {
                    return v.clone();
                }
                let Some(leaked) = shared(s) else {
                    return StringValue::from(Arc::<str>::from(s));
                };
                let v = StringValue::from(leaked);
                remember(&mut cache, (leaked, v.clone()));
                v
            })
            .unwrap_or_else(|_| StringValue::from(Arc::<str>::from(s)))
    }

    pub(in crate::instrumenter) fn name(operation: &'static str, destination: &str) -> Cow<'static, str> {
        let found = NAMES
            .try_with(|cache| {
                let cache = cache.borrow();
                cache
                    .iter()
                    .find(|(op, dest, _)| std::ptr::eq(*op, operation) && **dest == *destination)
                    .map(|(_, _, name)| *name)
            })
            .ok()
            .flatten();
        if let Some(name) = found {
            return Cow::Borrowed(name);
        }
        let mut name = String::with_capacity(operation.len() + 1 + destination.len());
        name.push_str(operation);
        name.push(' ');
        name.push_str(destination);
        let Some(leaked) = shared(&name) else {
            return Cow::Owned(name);
        };
        // The destination is the name's tail: no second copy for the cache key.
        let dest = &leaked[operation.len() + 1..];
        let _ = NAMES.try_with(|cache| remember(&mut cache.borrow_mut(), (operation, dest, leaked)));
        Cow::Borrowed(leaked)
    }

    #[cfg(test)]
    #[allow(clippy::expect_used)]
    mod tests {
        use super::*;

        fn address(v: &StringValue) -> *const u8 {
            v.as_str().as_ptr()
        }

        #[test]
        fn each_distinct_string_is_leaked_once_whatever_the_threads_and_misses() {
            // More strings than a thread keeps, in turn: every use after the first misses.
            let strings: Vec<String> = (0..RECENT * 2).map(|i| format!("intern-test-topic-{i}")).collect();
            let first: Vec<*const u8> = strings.iter().map(|s| address(&value(s))).collect();
            for _ in 0..3 {
                for (s, a) in strings.iter().zip(&first) {
                    assert_eq!(address(&value(s)), *a, "{s} was copied again");
                }
            }
            let other = std::thread::spawn({
                let strings = strings.clone();
                move || strings.iter().map(|s| address(&value(s)) as usize).collect::<Vec<_>>()
            })
            .join()
            .expect("the other thread interned");
            assert_eq!(
                other,
                first.iter().map(|a| *a as usize).collect::<Vec<_>>(),
                "another thread copied them"
            );
            let names: Vec<usize> = (0..2)
                .flat_map(|_| strings.iter().map(|s| name("send", s).as_ptr() as usize).collect::<Vec<_>>())
                .collect();
            assert_eq!(names[..strings.len()], names[strings.len()..], "span names were copied again");
            assert_eq!(name("send", &strings[0]), format!("send {}", strings[0]));
        }
    }
}
