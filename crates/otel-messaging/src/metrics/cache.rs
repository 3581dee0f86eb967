//! The per-thread cache of metric attribute sets: the [`RECENT`] most recently used sets, then up
//! to [`KEPT`] by [`Family`] (the sets that differ only by partition). Its own file: the parent
//! module builds and records sets; this one only finds them again without hashing per message.

use std::sync::Arc;

use super::{Instruments, MetricKey, MetricSet};

/// Attribute sets scanned first, per thread: the most recently used ones (a hit costs a few
/// comparisons and no hashing).
const RECENT: usize = 4;
/// Most attribute sets kept per thread; when full, the cache is emptied (the sets are rebuilt as
/// they are used again, nothing worse). Above the SDK's default cardinality limit (2 000 per
/// instrument) the attributes overflow anyway.
pub(super) const KEPT: usize = 1024;

/// The sets of one thread that differ only by partition (same instrumenter, operation, system,
/// destination, template, group and server): a consumer of a topic with hundreds of partitions
/// uses that many sets in turn, all of one family.
struct Family {
    /// Any set of the family (they agree on everything but the partition).
    example: Arc<MetricSet>,
    unpartitioned: Option<Arc<MetricSet>>,
    partitions: rustc_hash::FxHashMap<Box<str>, Arc<MetricSet>>,
}

impl Family {
    /// A family of one set.
    fn new(set: Arc<MetricSet>) -> Self {
        let mut family = Family {
            example: set.clone(),
            unpartitioned: None,
            partitions: rustc_hash::FxHashMap::default(),
        };
        family.keep(set);
        family
    }

    /// Keeps `set` (of this family) under its partition.
    fn keep(&mut self, set: Arc<MetricSet>) {
        match set.partition.clone() {
            None => self.unpartitioned = Some(set),
            Some(partition) => {
                self.partitions.insert(partition, set);
            }
        }
    }

    /// The family's set of `key` (whose family this is), built on first use; `built` counts a
    /// new one.
    fn get(
        &mut self,
        make: &dyn Fn() -> Instruments,
        key: &MetricKey<'_>,
        built: &mut usize,
    ) -> Arc<MetricSet> {
        let found = match key.partition {
            None => self.unpartitioned.clone(),
            Some(partition) => self.partitions.get(partition).cloned(),
        };
        found.unwrap_or_else(|| {
            *built += 1;
            let set = make().set_for(key);
            self.keep(set.clone());
            set
        })
    }
}

/// One thread's attribute sets: the [`RECENT`] most recently used, scanned in order, in front of
/// all of them by [`Family`]. A key that misses the recent sets but shares their family (another
/// partition of the same topic) goes straight to that family's partitions, hashing only the
/// partition; any other key finds its family by the hash of the rest of the key.
#[derive(Default)]
struct Cache {
    /// The most recently used sets, each with the index of its family in `families`.
    recent: Vec<(Arc<MetricSet>, usize)>,
    /// The slot of `recent` the next set from outside their families replaces (round robin).
    next: usize,
    families: Vec<Family>,
    /// Index in `families` by [`MetricKey::family_hash`] (the latest family with that hash).
    by_hash: rustc_hash::FxHashMap<u64, usize>,
    /// Sets built since the cache was last emptied.
    built: usize,
}

impl Cache {
    fn get(&mut self, id: u64, make: &dyn Fn() -> Instruments, key: &MetricKey<'_>) -> Arc<MetricSet> {
        // A recent set of the same instrumenter and operation but another partition: its family
        // is probably the key's.
        let mut sibling = None;
        for (slot, (set, _)) in self.recent.iter().enumerate() {
            if set.head_matches(id, key) {
                if set.partition.as_deref() != key.partition {
                    sibling = sibling.or(Some(slot));
                } else if set.family_matches(key) {
                    return set.clone();
                }
            }
        }
        if self.built >= KEPT {
            *self = Cache::default();
            sibling = None;
        }
        let (slot, family) = match sibling.filter(|&slot| self.recent[slot].0.family_matches(key)) {
            // Keep the family's place among the recent sets: the next partition finds it there.
            Some(slot) => (slot, self.recent[slot].1),
            None => {
                let slot = if self.recent.len() < RECENT {
                    self.recent.len()
                } else {
                    let slot = self.next;
                    self.next = (self.next + 1) % RECENT;
                    slot
                };
                (slot, self.family_of(id, make, key))
            }
        };
        let set = self.families[family].get(make, key, &mut self.built);
        if slot == self.recent.len() {
            self.recent.push((set.clone(), family));
        } else {
            self.recent[slot] = (set.clone(), family);
        }
        set
    }

    /// The index of `key`'s family, created (with `key`'s set built) when there is none.
    fn family_of(&mut self, id: u64, make: &dyn Fn() -> Instruments, key: &MetricKey<'_>) -> usize {
        let hash = key.family_hash(id);
        if let Some(&index) = self.by_hash.get(&hash) {
            let example = &self.families[index].example;
            if example.head_matches(id, key) && example.family_matches(key) {
                return index;
            }
        }
        self.built += 1;
        let family = Family::new(make().set_for(key));
        self.families.push(family);
        self.by_hash.insert(hash, self.families.len() - 1);
        self.families.len() - 1
    }
}

impl MetricKey<'_> {
    /// A hash of everything [`MetricSet::head_matches`] and [`MetricSet::family_matches`]
    /// compare (all but the partition). `FxHasher`, not SipHash: the family is compared after
    /// the lookup, so a collision only costs a rebuild, and SipHash took ≈ 1 500 instructions
    /// per key (BENCHMARKS.md).
    pub(super) fn family_hash(&self, instruments: u64) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = rustc_hash::FxHasher::default();
        instruments.hash(&mut h);
        (self.system, self.operation_name, self.operation_type.as_str()).hash(&mut h);
        (self.destination, self.template, self.group, self.server).hash(&mut h);
        h.finish()
    }
}

thread_local! {
    static SETS: std::cell::RefCell<Cache> = std::cell::RefCell::new(Cache::default());
}

/// The attribute set of `key` on the instruments with id `id`: from this thread's cache, or built
/// (and cached) on first use with the instruments `make` returns.
pub(super) fn cached(id: u64, key: &MetricKey<'_>, make: &dyn Fn() -> Instruments) -> Arc<MetricSet> {
    SETS.try_with(|cache| Some(cache.try_borrow_mut().ok()?.get(id, make, key)))
        .ok()
        .flatten()
        .unwrap_or_else(|| make().set_for(key))
}
