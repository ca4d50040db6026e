//! The in-process cache of records a warm function reads on nearly every request but that change
//! rarely: API keys, OAuth clients (`auth`) and customer accounts (`identity::oidc`). An entry lives for
//! the cache's TTL, so a record changed or revoked in the store takes effect within it (docs/limits.md).
//! Ids the store does not know are remembered too, for a shorter time and in an LRU of their own, so a
//! flood of made-up ids neither reaches the store on every request nor evicts a real record that is
//! serving traffic.

use lru::LruCache;
use std::future::Future;
use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Most records of one kind cached at once; past it the least recently used is dropped.
pub const KEY_CACHE_CAPACITY: usize = 10_000;
/// Most unknown ids of one kind remembered at once.
pub const UNKNOWN_KEY_CACHE_CAPACITY: usize = 4_096;
/// Longest an unknown id is remembered: a record created in the store is found within this.
pub const MAX_NEGATIVE_TTL: Duration = Duration::from_secs(10);

/// Records of one kind by id, each fetched at most once per TTL.
pub struct RecordCache<K: Hash + Eq, V> {
    ttl: Duration,
    negative_ttl: Duration,
    maps: Mutex<Maps<K, V>>,
}

/// When each entry was fetched, for the TTL; recency of use is the LRU's own order.
struct Maps<K: Hash + Eq, V> {
    known: LruCache<K, (Instant, V)>,
    unknown: LruCache<K, Instant>,
}

impl<K: Hash + Eq + Clone, V: Clone> RecordCache<K, V> {
    pub fn new(ttl: Duration) -> Self {
        let cap = |n: usize| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
        Self {
            ttl,
            negative_ttl: ttl.min(MAX_NEGATIVE_TTL),
            maps: Mutex::new(Maps {
                known: LruCache::new(cap(KEY_CACHE_CAPACITY)),
                unknown: LruCache::new(cap(UNKNOWN_KEY_CACHE_CAPACITY)),
            }),
        }
    }

    /// How long an entry is served without asking the store again.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The record `id` names: from the cache while fresh, otherwise from `fetch` (the store read),
    /// whose answer (found or not) is then cached. A failed fetch caches nothing.
    pub async fn get_or_fetch<F, Fut, E>(&self, id: &K, fetch: F) -> Result<Option<V>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<V>, E>>,
    {
        if let Some(answer) = self.get(id) {
            return Ok(answer);
        }
        let record = fetch().await?;
        self.put(id, record.clone());
        Ok(record)
    }

    /// Drops what is cached for `id`, so the next request reads the store: a change made by this
    /// process (a revocation through the Management API) takes effect here at once.
    pub fn forget(&self, id: &K) {
        let mut maps = self.lock();
        maps.known.pop(id);
        maps.unknown.pop(id);
    }

    /// `Some(answer)` when a fresh entry exists (marking it recently used), `None` on a miss.
    fn get(&self, id: &K) -> Option<Option<V>> {
        let mut maps = self.lock();
        if let Some((at, record)) = maps.known.get(id) {
            if at.elapsed() < self.ttl {
                return Some(Some(record.clone()));
            }
        }
        match maps.unknown.get(id) {
            Some(at) if at.elapsed() < self.negative_ttl => Some(None),
            _ => None,
        }
    }

    /// Records a store answer; an id lives in at most one of the two maps.
    fn put(&self, id: &K, record: Option<V>) {
        let now = Instant::now();
        let mut maps = self.lock();
        match record {
            Some(record) => {
                maps.unknown.pop(id);
                maps.known.put(id.clone(), (now, record));
            }
            None => {
                maps.known.pop(id);
                maps.unknown.put(id.clone(), now);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Maps<K, V>> {
        // The maps hold no invariant a panic could break half-way; keep serving from them.
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }
}
