//! A short-lived cache of list answers (`LIST_CACHE`), so that clients polling the list cost
//! Redis one load per query and period, not one per request: the list reads one snapshot per
//! auction listed, on the same Redis that decides bids.
//!
//! Each query (status and limit) has its own slot. Callers of one query wait for a single load
//! (the first caller's) instead of each loading it; an answer is served until it is `LIST_CACHE`
//! old or a state-changing call on this instance (create, extend, cancel, rules) makes every
//! cached answer stale. Changes made elsewhere (bids, the scheduler, other instances) show within
//! `LIST_CACHE`.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auction_proto::AuctionStatus;
use axum::body::Bytes;
use tokio::time::Instant;

/// The most queries cached at once; past it, a query no slot is free for is loaded uncached.
/// Each answer holds at most `MAX_LIST` auctions, so this bounds the memory the cache takes.
const MAX_SLOTS: usize = 64;

type Key = (Option<AuctionStatus>, usize);

#[derive(Default)]
struct Cached {
    answer: Option<(Instant, u64, Bytes)>,
}

pub struct ListCache {
    ttl: Duration,
    /// Raised by every change made through this instance; an answer loaded before it is stale.
    generation: AtomicU64,
    slots: Mutex<HashMap<Key, Arc<tokio::sync::Mutex<Cached>>>>,
}

impl ListCache {
    /// A cache keeping answers for `ttl`; zero turns it off (every request loads).
    pub fn new(ttl: Duration) -> Self {
        Self { ttl, generation: AtomicU64::new(0), slots: Mutex::new(HashMap::new()) }
    }

    /// Makes every cached answer stale: the next request of each query loads afresh.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// The answer to the query `(status, limit)`: a fresh enough cached one, else `load`'s
    /// (kept for the next callers unless it failed).
    pub async fn get<E, F>(&self, status: Option<AuctionStatus>, limit: usize, load: F) -> Result<Bytes, E>
    where
        F: Future<Output = Result<Bytes, E>>,
    {
        if self.ttl.is_zero() {
            return load.await;
        }
        let Some(slot) = self.slot((status, limit)) else {
            return load.await;
        };
        let mut cached = slot.lock().await;
        // Read before loading: a change that lands during the load leaves the answer stale.
        let generation = self.generation.load(Ordering::Acquire);
        if let Some((at, seen, answer)) = &cached.answer
            && *seen == generation
            && at.elapsed() < self.ttl
        {
            return Ok(answer.clone());
        }
        let answer = load.await?;
        cached.answer = Some((Instant::now(), generation, answer.clone()));
        Ok(answer)
    }

    /// The slot of `key`, made if there is room (after dropping the slots whose answers have
    /// expired and that nobody is loading).
    fn slot(&self, key: Key) -> Option<Arc<tokio::sync::Mutex<Cached>>> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = slots.get(&key) {
            return Some(slot.clone());
        }
        if slots.len() >= MAX_SLOTS {
            let ttl = self.ttl;
            slots.retain(|_, slot| {
                slot.try_lock().map_or(true, |c| c.answer.as_ref().is_some_and(|(at, _, _)| at.elapsed() < ttl))
            });
            if slots.len() >= MAX_SLOTS {
                return None;
            }
        }
        Some(slots.entry(key).or_default().clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    async fn counted(loads: &AtomicUsize) -> Result<Bytes, ()> {
        let n = loads.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(Bytes::from(n.to_string()))
    }

    #[tokio::test]
    async fn answers_are_reused_until_a_change_and_a_zero_ttl_caches_nothing() {
        let loads = AtomicUsize::new(0);
        let cache = ListCache::new(Duration::from_secs(3600));
        assert_eq!(cache.get(None, 10, counted(&loads)).await.unwrap(), "1");
        assert_eq!(cache.get(None, 10, counted(&loads)).await.unwrap(), "1", "the cached answer");
        assert_eq!(cache.get(Some(AuctionStatus::Active), 10, counted(&loads)).await.unwrap(), "2", "another query");
        assert_eq!(cache.get(None, 11, counted(&loads)).await.unwrap(), "3", "another limit");
        cache.invalidate();
        assert_eq!(cache.get(None, 10, counted(&loads)).await.unwrap(), "4", "stale after a change");

        let off = ListCache::new(Duration::ZERO);
        assert_eq!(off.get(None, 10, counted(&loads)).await.unwrap(), "5");
        assert_eq!(off.get(None, 10, counted(&loads)).await.unwrap(), "6");
    }

    #[tokio::test]
    async fn concurrent_callers_of_one_query_share_one_load_and_failures_are_not_kept() {
        let loads = AtomicUsize::new(0);
        let cache = ListCache::new(Duration::from_secs(3600));
        let (gate, opened) = tokio::sync::oneshot::channel::<()>();
        let first = cache.get(None, 5, async {
            opened.await.unwrap();
            counted(&loads).await
        });
        let second = cache.get(None, 5, counted(&loads));
        let (first, second, ()) = tokio::join!(first, second, async { gate.send(()).unwrap() });
        assert_eq!((first.unwrap(), second.unwrap()), (Bytes::from("1"), Bytes::from("1")));

        let failed: Result<Bytes, &str> = cache.get(None, 6, async { Err("redis down") }).await;
        assert_eq!(failed, Err("redis down"));
        assert_eq!(cache.get(None, 6, counted(&loads)).await.unwrap(), "2", "a failure is not cached");
    }

    #[tokio::test(start_paused = true)]
    async fn past_its_slots_the_cache_loads_uncached_and_frees_expired_slots() {
        let loads = AtomicUsize::new(0);
        let cache = ListCache::new(Duration::from_secs(3600));
        for limit in 0..MAX_SLOTS {
            cache.get(None, limit, counted(&loads)).await.unwrap();
        }
        let before = loads.load(Ordering::SeqCst);
        cache.get(None, MAX_SLOTS, counted(&loads)).await.unwrap();
        cache.get(None, MAX_SLOTS, counted(&loads)).await.unwrap();
        assert_eq!(loads.load(Ordering::SeqCst), before + 2, "no slot: each call loads");

        assert!(cache.slot((None, MAX_SLOTS)).is_none());
        tokio::time::advance(Duration::from_secs(3600)).await;
        assert!(cache.slot((None, MAX_SLOTS)).is_some(), "expired slots make room");
        assert_eq!(cache.get(None, 0, counted(&loads)).await.unwrap(), (before + 3).to_string(), "expired");
    }
}
