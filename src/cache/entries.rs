//! The byte-bounded LRU behind the hot cache (issue 4, point 1).
//!
//! `lru::LruCache` orders the entries; the budget is in bytes, not entries (as pingora-lru
//! does), because one 8 MiB object costs as much memory as thousands of small ones. Every
//! entry carries its weight (the object's [`Object::weight`], the key, a fixed overhead, and
//! its compressed variants), and a running total is kept beside the map. Every insertion
//! evicts least-recently-used entries until the total is back under the budget, so the total
//! never exceeds it between operations; an entry that alone would not fit is not stored.
//!
//! An entry without an object is a *negative* entry: the key was not found (issue 4, point 7).
//!
//! **Recency: eviction takes only from the least recently used quarter.** Moving an entry to the
//! front of the list on every hit needs the exclusive lock, which would make hits on different
//! event loops wait for each other. So every move to the front (insert, promote, a write to an
//! entry) advances a counter and stamps the entry with it, and a hit on an entry stamped fewer than
//! `q` moves ago, `q` being a quarter of the entries at that moment (at least 1), leaves it where
//! it is ([`ByteLru::hit`]): at most that many entries can have been moved ahead of it since, so it
//! is still near the front (with `q` = 1, at the front, where a move would change nothing). Every
//! other hit moves its entry, waiting for the exclusive lock if it must. So an evicted entry is
//! always among the `q` least recently used, `q` taken at its last skipped hit (the very last one
//! if no hit on it was skipped): a cache that has never held eight entries is exact LRU, and a
//! larger one evicts only from about its least recently used quarter. (memcached skips the move for
//! an item bumped in the last 60 seconds; a bound in entries rather than seconds keeps the
//! guarantee independent of the request rate.)

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use lru::LruCache;

use super::IndexMemo;
use crate::encoding::Encoding;
use crate::etag::ETag;
use crate::object::Object;

/// Bookkeeping bytes per entry beyond the object's own weight (map node, key, timestamps).
const ENTRY_OVERHEAD: u64 = 96;
/// Bookkeeping bytes per compressed variant beyond its body.
const VARIANT_OVERHEAD: u64 = 32;

/// One cached key.
#[derive(Debug)]
pub(super) struct Entry {
    /// The object, or `None` for a cached not-found.
    pub object: Option<Arc<Object>>,
    /// When the store last confirmed this entry (load or revalidation).
    pub checked: Instant,
    /// For a not-found: what it remembers of `KEY/index.html`.
    pub index: Option<Arc<IndexMemo>>,
    variants: Vec<(Encoding, Bytes)>,
    weight: u64,
    /// [`ByteLru::moves`] when this entry last went to the front of the list.
    moved: u64,
}

fn base_weight(key: &str, object: Option<&Arc<Object>>) -> u64 {
    ENTRY_OVERHEAD + key.len() as u64 + object.map_or(0, |o| o.weight())
}

/// The LRU map with its running byte total.
#[derive(Debug)]
pub(super) struct ByteLru {
    map: LruCache<String, Entry>,
    bytes: u64,
    budget: u64,
    evictions: u64,
    /// Moves to the front of the list so far (see the module doc on recency).
    moves: u64,
    /// Entries taken out (evicted, replaced, removed), for the cache's write guard to drop
    /// after it has released the lock ([`ByteLru::take_released`]): dropping the last
    /// reference to a body in the `sendfile` arena punches its pages out of the memory file, a
    /// system call that should not hold up every other loop's hits.
    released: Vec<Entry>,
}

impl ByteLru {
    pub fn new(budget: u64) -> ByteLru {
        ByteLru {
            map: LruCache::unbounded(),
            bytes: 0,
            budget,
            evictions: 0,
            moves: 0,
            released: Vec::new(),
        }
    }

    /// The entries taken out since the last call, to drop once the lock is released.
    pub fn take_released(&mut self) -> Vec<Entry> {
        std::mem::take(&mut self.released)
    }

    /// Bytes accounted to the entries held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Entries held (negative ones included).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Entries dropped to stay under the budget.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    /// The entry for `key`, marked as most recently used.
    pub fn get(&mut self, key: &str) -> Option<&Entry> {
        self.get_mut(key).map(|entry| &*entry)
    }

    /// The entry for `key`, moved to the front of the list and stamped: every move to the
    /// front goes through here or [`ByteLru::insert`], which is what bounds the error of
    /// [`ByteLru::hit`].
    fn get_mut(&mut self, key: &str) -> Option<&mut Entry> {
        let entry = self.map.get_mut(key)?;
        self.moves += 1;
        entry.moved = self.moves;
        Some(entry)
    }

    /// A hit on `key` under the shared lock: the entry, and whether it must be moved to the
    /// front ([`ByteLru::promote`]). It need not when fewer than a quarter of the entries (at
    /// least one) have been moved ahead of it since it was last moved itself: it is then still
    /// near the front, or at the front in a cache of fewer than eight entries.
    pub fn hit(&self, key: &str) -> Option<(&Entry, bool)> {
        let entry = self.map.peek(key)?;
        let near_front = self.moves - entry.moved < (self.map.len() as u64 / 4).max(1);
        Some((entry, !near_front))
    }

    /// Marks `key` as most recently used.
    pub fn promote(&mut self, key: &str) {
        self.get_mut(key);
    }

    /// Stores `object` (or a not-found) under `key`, replacing any entry and its variants.
    /// Returns false, leaving the key uncached, when the entry alone exceeds the budget.
    pub fn insert(&mut self, key: &str, object: Option<Arc<Object>>, checked: Instant) -> bool {
        self.remove(key);
        let weight = base_weight(key, object.as_ref());
        if weight > self.budget {
            return false;
        }
        self.moves += 1;
        self.map.put(
            key.to_string(),
            Entry {
                index: object.is_none().then(Default::default),
                object,
                checked,
                variants: Vec::new(),
                weight,
                moved: self.moves,
            },
        );
        self.bytes += weight;
        self.evict_to_fit(key);
        true
    }

    /// Marks the entry as confirmed at `now` if it still holds `object`. Returns whether it did.
    pub fn touch(&mut self, key: &str, object: &Arc<Object>, now: Instant) -> bool {
        match self.get_mut(key) {
            Some(entry)
                if entry
                    .object
                    .as_ref()
                    .is_some_and(|o| Arc::ptr_eq(o, object)) =>
            {
                entry.checked = now;
                true
            }
            _ => false,
        }
    }

    /// Drops the entry for `key`; true when there was one.
    pub fn remove(&mut self, key: &str) -> bool {
        match self.map.pop(key) {
            Some(entry) => {
                self.bytes -= entry.weight;
                self.released.push(entry);
                true
            }
            None => false,
        }
    }

    /// Drops the entry for `key` if it holds `object` (and not, say, a newer one another
    /// request loaded since); true when it did.
    pub fn remove_holding(&mut self, key: &str, object: &Arc<Object>) -> bool {
        let holds = self
            .map
            .peek(key)
            .and_then(|e| e.object.as_ref())
            .is_some_and(|o| Arc::ptr_eq(o, object));
        holds && self.remove(key)
    }

    /// Drops the entry for `key` if it is a not-found; true when it was.
    pub fn remove_not_found(&mut self, key: &str) -> bool {
        if self.map.peek(key).is_some_and(|e| e.object.is_none()) {
            self.remove(key)
        } else {
            false
        }
    }

    /// Drops every entry whose key starts with `prefix`; returns how many.
    pub fn remove_prefix(&mut self, prefix: &str) -> usize {
        let keys: Vec<String> = self
            .map
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect();
        keys.iter().filter(|k| self.remove(k)).count()
    }

    /// The compressed variant for `key` if the entry still holds the object tagged `etag`.
    pub fn variant(&self, key: &str, etag: &ETag, encoding: Encoding) -> Option<Bytes> {
        let entry = self.map.peek(key)?;
        if entry.object.as_ref()?.etag != *etag {
            return None;
        }
        entry
            .variants
            .iter()
            .find(|(e, _)| *e == encoding)
            .map(|(_, b)| b.clone())
    }

    /// Adds a compressed variant to the entry holding the object tagged `etag`. Ignored when
    /// the entry is gone or changed, already has one, or would no longer fit the budget.
    pub fn put_variant(
        &mut self,
        key: &str,
        etag: &ETag,
        encoding: Encoding,
        bytes: Bytes,
    ) -> bool {
        let budget = self.budget;
        let Some(entry) = self.get_mut(key) else {
            return false;
        };
        let same = entry.object.as_ref().is_some_and(|o| o.etag == *etag);
        if !same || entry.variants.iter().any(|(e, _)| *e == encoding) {
            return false;
        }
        let extra = VARIANT_OVERHEAD + bytes.len() as u64;
        if entry.weight + extra > budget {
            return false;
        }
        entry.weight += extra;
        entry.variants.push((encoding, bytes));
        self.bytes += extra;
        self.evict_to_fit(key);
        true
    }

    /// Evicts least-recently-used entries until the total fits, sparing `keep` (the entry just
    /// written, which is the most recently used and fits alone).
    fn evict_to_fit(&mut self, keep: &str) {
        while self.bytes > self.budget {
            match self.map.peek_lru() {
                Some((k, _)) if k != keep => {}
                _ => break,
            }
            if let Some((_, entry)) = self.map.pop_lru() {
                self.bytes -= entry.weight;
                self.evictions += 1;
                self.released.push(entry);
            }
        }
    }

    /// Sum of entry weights, recomputed (tests check the running total against it).
    #[cfg(test)]
    pub fn recount(&self) -> u64 {
        self.map
            .iter()
            .map(|(k, e)| {
                let variants: u64 = e
                    .variants
                    .iter()
                    .map(|(_, b)| VARIANT_OVERHEAD + b.len() as u64)
                    .sum();
                base_weight(k, e.object.as_ref()) + variants
            })
            .sum()
    }
}
