//! [`Handoff`]: what a traced receive learned about a message, kept until the message's process
//! span starts.
//!
//! Why a module: two brokers return messages that do not carry everything their process span
//! needs — an SQS message does not know its queue URL, a Redis stream entry neither its stream nor
//! its consumer group — while the traced receive that returned them does. The broker crates keep
//! those facts here, keyed by the message's own identifier (SQS receipt handle, Redis entry id),
//! so that `message.process_traced(handler)` needs no extra arguments. Bounded, so messages that
//! are never processed cannot grow it without limit.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    sync::{Mutex, PoisonError},
};

/// A bounded map from a message identifier to what its receive learned, oldest forgotten first.
///
/// `put` and `take` are O(1) (amortised); a value is taken at most once.
///
/// # Examples
///
/// ```
/// use otel_messaging::__private::Handoff;
///
/// let handoff = Handoff::new(2);
/// handoff.put("a".into(), 1);
/// handoff.put("b".into(), 2);
/// handoff.put("c".into(), 3); // forgets "a"
/// assert_eq!(handoff.take("a"), None);
/// assert_eq!(handoff.take("c"), Some(3));
/// assert_eq!(handoff.take("c"), None);
/// ```
pub struct Handoff<V> {
    capacity: usize,
    inner: Mutex<Inner<V>>,
}

struct Inner<V> {
    next: u64,
    entries: HashMap<String, (u64, V)>,
    /// Insertion order; entries already taken or replaced are skipped when met.
    order: VecDeque<(u64, String)>,
}

impl<V> fmt::Debug for Handoff<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handoff").field("capacity", &self.capacity).field("len", &self.len()).finish()
    }
}

impl<V> Handoff<V> {
    /// An empty handoff keeping at most `capacity` values (at least 1).
    pub fn new(capacity: usize) -> Self {
        Handoff {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner { next: 0, entries: HashMap::new(), order: VecDeque::new() }),
        }
    }

    /// Keeps `value` for `key` (replacing an earlier value of the same key), forgetting the oldest
    /// value when full.
    pub fn put(&self, key: String, value: V) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        self.insert(&mut inner, key, value);
    }

    /// Inserts under the lock: forgets the oldest when full, compacts the order queue.
    fn insert(&self, inner: &mut Inner<V>, key: String, value: V) {
        while inner.entries.len() >= self.capacity && !inner.entries.contains_key(&key) {
            let Some((seq, oldest)) = inner.order.pop_front() else { break };
            if inner.entries.get(&oldest).is_some_and(|(s, _)| *s == seq) {
                inner.entries.remove(&oldest);
            }
        }
        // Keep the order queue from growing with taken entries: compacted once it holds twice as
        // many keys as there are live entries (amortised O(1); a receive-then-process consumer
        // keeps almost no live entries, so its taken keys must not wait for the capacity).
        if inner.order.len() > 2 * inner.entries.len() + 64 {
            let entries = &inner.entries;
            inner.order.retain(|(seq, k)| entries.get(k).is_some_and(|(s, _)| s == seq));
        }
        let seq = inner.next;
        inner.next += 1;
        inner.order.push_back((seq, key.clone()));
        inner.entries.insert(key, (seq, value));
    }

    /// Takes the value kept for `key`, if any.
    pub fn take(&self, key: &str) -> Option<V> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.entries.remove(key).map(|(_, value)| value)
    }

    /// A copy of the value kept for `key`, which stays kept (for a fact several operations of
    /// one message read, e.g. its process span and then its settle span).
    pub fn get(&self, key: &str) -> Option<V>
    where
        V: Clone,
    {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.entries.get(key).map(|(_, value)| value.clone())
    }

    /// Runs `f` on the value kept for `key`, in place and under the lock (its age unchanged);
    /// `None`, without calling `f`, when there is none.
    pub fn modify<R>(&self, key: &str, f: impl FnOnce(&mut V) -> R) -> Option<R> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.entries.get_mut(key).map(|(_, value)| f(value))
    }

    /// Runs `f` on the value kept for `key` (`None` when there is none), under the lock, and keeps
    /// what it leaves: `None` forgets the key, a value replaces it (keeping its age, or as the
    /// newest when `key` was not kept). Returns what `f` returns.
    pub fn update<R>(&self, key: &str, f: impl FnOnce(&mut Option<V>) -> R) -> R {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let (seq, mut value) = match inner.entries.remove(key) {
            Some((seq, value)) => (Some(seq), Some(value)),
            None => (None, None),
        };
        let result = f(&mut value);
        match (seq, value) {
            (Some(seq), Some(value)) => {
                inner.entries.insert(key.to_owned(), (seq, value));
            }
            (None, Some(value)) => self.insert(&mut inner, key.to_owned(), value),
            (_, None) => {}
        }
        result
    }

    /// How many values are kept.
    pub fn len(&self) -> usize {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner).entries.len()
    }

    /// Whether no value is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The values kept for copies of one message that share its identifier (the same Redis entry read
/// by two consumer groups, the same AMQP delivery tag on two channels), each with the address of
/// its copy's own buffer: a lookup takes the value of the copy at that address, else the oldest
/// (a clone of the message, whose buffers moved). At most [`Copies::MAX`] per identifier, the
/// oldest forgotten first.
#[derive(Debug, Clone)]
pub struct Copies<T>(Vec<(usize, T)>);

impl<T> Copies<T> {
    /// Most copies kept per identifier (8).
    pub const MAX: usize = 8;
}

impl<T: Clone> Handoff<Copies<T>> {
    /// Keeps `value` for the copy of message `key` whose buffer is at `address`.
    pub fn put_copy(&self, key: String, address: usize, value: T) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some((_, Copies(copies))) = inner.entries.get_mut(&key) {
            copies.retain(|(a, _)| *a != address);
            if copies.len() >= Copies::<T>::MAX {
                copies.remove(0);
            }
            copies.push((address, value));
            return;
        }
        self.insert(&mut inner, key, Copies(vec![(address, value)]));
    }

    /// The value of the copy of `key` at `address`, else of its oldest copy; `take` forgets it.
    pub fn copy_of(&self, key: &str, address: usize, take: bool) -> Option<T> {
        self.update(key, |copies| {
            let list = &mut copies.as_mut()?.0;
            let at = list.iter().position(|(a, _)| *a == address).unwrap_or(0);
            let value = if take { Some(list.remove(at).1) } else { list.get(at).map(|(_, v)| v.clone()) };
            if list.is_empty() {
                *copies = None;
            }
            value
        })
    }
}

#[cfg(test)]
mod tests {
    use super::{Copies, Handoff};

    /// Two copies of one message (two consumer groups, two channels) each find their own value;
    /// a clone (another address) finds the oldest; the last take forgets the key.
    #[test]
    fn copies_are_told_apart_by_address() {
        let h: Handoff<Copies<&str>> = Handoff::new(10);
        h.put_copy("1-0".into(), 0x10, "group-a");
        h.put_copy("1-0".into(), 0x20, "group-b");
        assert_eq!(h.copy_of("1-0", 0x20, false), Some("group-b"));
        assert_eq!(h.copy_of("1-0", 0x10, false), Some("group-a"));
        assert_eq!(h.copy_of("1-0", 0x99, false), Some("group-a"));
        assert_eq!(h.copy_of("1-0", 0x20, true), Some("group-b"));
        assert_eq!(h.copy_of("1-0", 0x20, false), Some("group-a"));
        assert_eq!(h.copy_of("1-0", 0x10, true), Some("group-a"));
        assert_eq!(h.copy_of("1-0", 0x10, false), None);
        assert!(h.is_empty());
        for address in 0..20 {
            h.put_copy("2-0".into(), address, "x");
        }
        assert_eq!(h.inner.lock().map(|i| i.entries["2-0"].1.0.len()).unwrap_or(0), Copies::<&str>::MAX);
    }

    /// `modify` changes a kept value in place, keeping its age (forgotten in its turn), and
    /// keeps nothing for a key it does not know.
    #[test]
    fn modified_in_place_keeps_its_age() {
        let h = Handoff::new(2);
        h.put("a".into(), 1);
        h.put("b".into(), 2);
        assert_eq!(h.modify("a", |v| std::mem::replace(v, 10)), Some(1));
        assert_eq!(h.modify("zz", |v| *v), None);
        assert_eq!(h.len(), 2, "no value made for an unknown key");
        h.put("c".into(), 3); // forgets the oldest: "a", modified but not renewed
        assert_eq!(h.take("a"), None);
        assert_eq!((h.take("b"), h.take("c")), (Some(2), Some(3)));
    }

    #[test]
    fn bounded_and_taken_once() {
        let h = Handoff::new(3);
        for i in 0..10_000 {
            h.put(format!("k{i}"), i);
            if i % 2 == 0 {
                assert_eq!(h.take(&format!("k{i}")), Some(i));
            }
        }
        assert!(h.len() <= 3);
        assert_eq!(h.take("k9999"), Some(9999));
        h.put("x".into(), 1);
        h.put("x".into(), 2);
        assert_eq!(h.take("x"), Some(2));
        assert_eq!(h.take("x"), None);
        assert!(h.inner.lock().map(|i| i.order.len()).unwrap_or(usize::MAX) <= 2 * 3 + 65);
    }

    /// A receive-then-process consumer (every key taken soon after it is put) holds almost
    /// nothing, however large the capacity: taken keys do not wait for the capacity to be
    /// forgotten (found by the soak's heap measure: +249 B per SQS message).
    #[test]
    fn taken_keys_do_not_accumulate() {
        let h = Handoff::new(10_000);
        for i in 0..50_000 {
            let key = format!("receipt-handle-{i}-{}", "x".repeat(200));
            h.put(key.clone(), i);
            assert_eq!(h.take(&key), Some(i));
        }
        assert!(h.is_empty());
        assert!(h.inner.lock().map(|i| i.order.len()).unwrap_or(usize::MAX) <= 65);
    }
}
