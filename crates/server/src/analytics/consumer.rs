//! The log consumer: moves every auction's durable event stream into MySQL.
//!
//! Invariants:
//! - An entry is acknowledged only after the transaction holding it committed; writes are
//!   idempotent, so an entry delivered twice (a crash between commit and acknowledgement) leaves
//!   one row.
//! - One instance at a time owns an auction's stream (a short lease), so an auction's events reach
//!   MySQL in order; the owner first reclaims every pending entry of the group (`XAUTOCLAIM`),
//!   which is how the work of a dead instance is picked up once its lease lapses. The lease is
//!   renewed after each batch written, and an instance that finds it has lost it stops there.
//! - The stream is trimmed only below what every consumer group has acknowledged.
//! - While the MySQL breaker is open nothing is read: events wait in Redis.
//! - The sweep looks only at the work index (`Store::work_ids`): auctions whose logs may still get
//!   or hold entries not yet in MySQL, so it costs O(auctions with work), not O(auctions ever).
//!   An auction joins the index before it is created, and leaves it only once it is ended or
//!   cancelled with its log fully written and acknowledged; its keys then expire after
//!   `ENDED_RETENTION` (`Store::retire`), and once they have, the sweep makes the global indexes
//!   forget it (`Store::forget_retired`).
//! - The instance listens on the live channel of every auction in the work index, so an active
//!   auction's events reach MySQL within moments; an auction created since the last sweep waits
//!   for the next one (`ANALYTICS_SWEEP`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auction_proto::AuctionId;
use metrics::{Counter, Gauge};
use rand::seq::SliceRandom;
use sqlx::MySqlPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::breaker::Breaker;
use crate::config::AnalyticsConfig;
use crate::store::event::LogEntryError;
use crate::store::log::LogEntry;
use crate::store::{Event, Feed, Live, Received, Retire, Store, StoreError, Subscription};

/// Why draining one auction's log stopped early.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("mysql: {0}")]
    Db(#[from] sqlx::Error),
    /// An entry this instance cannot read yet; the log waits there for a newer instance.
    #[error("entry {entry}: {source}")]
    Newer { entry: String, source: LogEntryError },
}

/// How many auctions' consumer groups the process remembers having made.
const GROUPED_LIMIT: usize = 100_000;

/// How many retired auctions one sweep forgets in the global indexes at most (the rest wait for
/// the next sweep).
const FORGET_PER_SWEEP: usize = 1000;

pub struct Metrics {
    pub written: Counter,
    /// Bids written at a seq another bid already held (Redis lost writes and reused the seq).
    pub seq_conflicts: Counter,
    pub backlog: Gauge,
    pub breaker: Gauge,
}

pub struct Consumer {
    pub store: Store,
    pub db: MySqlPool,
    pub instance: String,
    pub config: AnalyticsConfig,
    pub breaker: Arc<Breaker>,
    pub metrics: Metrics,
    /// Auctions whose logs changed since the last look (from live messages).
    pub dirty: Arc<Mutex<HashSet<AuctionId>>>,
    pub wake: Arc<Notify>,
    /// Auctions whose consumer group this process has made sure of.
    pub grouped: Mutex<HashSet<AuctionId>>,
    /// The live subscription's channels: one per unfinished auction.
    pub feed: Feed,
}

impl Consumer {
    pub async fn run(self, shutdown: CancellationToken) {
        // Auctions whose live channel this instance listens on.
        let mut listening: HashSet<AuctionId> = HashSet::new();
        let mut next_sweep = tokio::time::Instant::now();
        loop {
            let sweep = tokio::time::Instant::now() >= next_sweep;
            let dirty: HashSet<AuctionId> = std::mem::take(&mut *crate::sync::lock(&self.dirty));
            let mut candidates: Vec<AuctionId> = dirty.iter().cloned().collect();
            if sweep {
                match self.store.work_ids().await {
                    Ok(ids) => {
                        for id in ids {
                            if listening.insert(id.clone()) {
                                // Confirmation is not awaited: the sweep covers what comes before.
                                drop(self.feed.subscribe(self.store.live_channel(&id)));
                            }
                            candidates.push(id);
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot read the work index"),
                }
                if let Err(e) = self.store.forget_retired(FORGET_PER_SWEEP).await {
                    tracing::warn!(error = %e, "cannot trim the indexes of retired auctions");
                }
                next_sweep = tokio::time::Instant::now() + self.config.sweep;
            }
            candidates.sort();
            candidates.dedup();
            // Instances walk the auctions in different orders, so they split the work.
            candidates.shuffle(&mut rand::rng());
            let mut backlog = 0;
            for id in &candidates {
                if shutdown.is_cancelled() {
                    return;
                }
                // Most swept auctions are quiet: one call tells (and retires a finished one),
                // instead of a drain's several.
                if sweep && !dirty.contains(id) {
                    match self.store.retire(id, self.config.ended_retention).await {
                        Ok(Retire::Work) | Err(_) => {}
                        Ok(Retire::Live) => continue,
                        Ok(Retire::Retired { .. } | Retire::Gone) => {
                            self.forget(id, &mut listening);
                            continue;
                        }
                    }
                }
                if let Some(_permit) = self.breaker.allow() {
                    match self.drain(id).await {
                        Ok(true) => self.finish(id, &mut listening).await,
                        Ok(false) => {}
                        Err(DrainError::Db(e)) => {
                            tracing::warn!(auction = %id, error = %e, "cannot write events to mysql");
                            self.breaker.failure();
                        }
                        Err(e @ DrainError::Newer { .. }) => {
                            tracing::error!(auction = %id, error = %e, "log left pending: upgrade this analytics instance");
                        }
                        Err(DrainError::Store(e)) => {
                            // Make sure of the group again next time (the log may have been
                            // deleted and made afresh).
                            crate::sync::lock(&self.grouped).remove(id);
                            tracing::warn!(auction = %id, error = %e, "cannot read events");
                        }
                    }
                }
                if sweep {
                    backlog += self.store.log_backlog(id).await.unwrap_or(0);
                }
            }
            if sweep {
                #[allow(clippy::cast_precision_loss)]
                self.metrics.backlog.set(backlog as f64);
            }
            self.metrics.breaker.set(self.breaker.state().level());
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(self.config.sweep.min(Duration::from_millis(500))) => {}
            }
        }
    }

    /// An auction whose final event is written: its keys get their retention and it leaves the
    /// work index (if that fails, the next sweep tries again).
    async fn finish(&self, id: &AuctionId, listening: &mut HashSet<AuctionId>) {
        match self.store.retire(id, self.config.ended_retention).await {
            Ok(Retire::Retired { .. } | Retire::Gone) => self.forget(id, listening),
            Ok(Retire::Work | Retire::Live) => {}
            Err(e) => tracing::warn!(auction = %id, error = %e, "cannot retire the auction; the next sweep retries"),
        }
    }

    /// Stops following an auction that needs no more looks.
    fn forget(&self, id: &AuctionId, listening: &mut HashSet<AuctionId>) {
        crate::sync::lock(&self.grouped).remove(id);
        if listening.remove(id) {
            self.feed.unsubscribe(self.store.live_channel(id));
        }
    }

    /// Writes everything in auction `id`'s log that is not yet in MySQL; true when the auction is
    /// over and its log fully written, so it never needs another look.
    ///
    /// This runs for every active auction many times a second, so it makes as few calls as it
    /// can: the group is created once per auction and process; pending entries are claimed until
    /// a claim comes back short (there are no more), then new ones read until a read comes back
    /// short (the log is drained as of that read: what comes later makes the auction dirty again).
    async fn drain(&self, id: &AuctionId) -> Result<bool, DrainError> {
        let ttl_ms = u64::try_from(self.config.claim_ttl.as_millis()).unwrap_or(u64::MAX);
        if !self.store.own_log(id, &self.instance, ttl_ms).await? {
            return Ok(false);
        }
        if !crate::sync::lock(&self.grouped).contains(id) {
            if !self.store.ensure_group(id).await? {
                // No log: the auction's keys have expired (a late live message named it).
                return Ok(false);
            }
            let mut grouped = crate::sync::lock(&self.grouped);
            // Bounded: auctions finished elsewhere are never removed one by one; forgetting
            // them all costs one call each for the auctions still active.
            if grouped.len() >= GROUPED_LIMIT {
                grouped.clear();
            }
            grouped.insert(id.clone());
        }
        let batch = self.config.batch;
        let mut over = false;
        let mut pending_left = true;
        loop {
            let mut entries = Vec::new();
            if pending_left {
                entries = self.store.claim_pending(id, &self.instance, batch).await?;
                pending_left = entries.len() >= batch;
            }
            let mut last = false;
            if entries.is_empty() {
                entries = self.store.read_new(id, &self.instance, batch).await?;
                last = entries.len() < batch;
            }
            if !entries.is_empty() {
                over |= self.write(id, &entries).await?;
                // Keep the stream after each batch written; once another instance holds it (ours
                // lapsed during a slow batch, the last one of a drain included), it drains it, from
                // what is still pending, and this one stops here, before reading or trimming
                // anything more, so two never drain one log at once.
                if !self.store.own_log(id, &self.instance, ttl_ms).await? {
                    tracing::warn!(auction = %id, "another analytics instance took over this log; stopped draining it");
                    return Ok(false);
                }
            }
            if last {
                break;
            }
        }
        self.store.trim_log(id).await?;
        Ok(over && self.store.log_backlog(id).await? == 0)
    }

    /// Writes one batch and acknowledges it; true if it holds the auction's final event. Stops
    /// before an entry of a newer log version, which stays pending for an instance that reads it.
    async fn write(&self, id: &AuctionId, entries: &[LogEntry]) -> Result<bool, DrainError> {
        let newer = entries.iter().position(|e| matches!(e.event, Err(LogEntryError::Newer(_))));
        let (entries, rest) = entries.split_at(newer.unwrap_or(entries.len()));
        let events: Vec<&Event> = entries.iter().filter_map(|e| e.event.as_ref().ok()).collect();
        for bad in entries {
            if let Err(e) = &bad.event {
                tracing::error!(auction = %id, entry = %bad.id, error = %e, "log entry skipped");
            }
        }
        if self.config.crash_before_commit {
            tracing::error!("crash_before_commit is set: aborting after the read, before the commit");
            std::process::abort();
        }
        let written = crate::db::write_events(&self.db, &events).await?;
        self.breaker.success();
        // Counted at the commit, so a log that is fully acknowledged is fully counted.
        self.metrics.written.increment(events.len() as u64);
        self.metrics.seq_conflicts.increment(written.seq_conflicts.len() as u64);
        if self.config.crash_after_commit {
            tracing::error!("crash_after_commit is set: aborting after the commit, before the acknowledgement");
            std::process::abort();
        }
        let ids: Vec<String> = entries.iter().map(|e| e.id.clone()).collect();
        self.store.ack(id, &ids).await?;
        if let Some(LogEntry { id: entry, event: Err(source) }) = rest.first() {
            return Err(DrainError::Newer { entry: entry.clone(), source: source.clone() });
        }
        Ok(events.iter().any(|e| e.is_final()))
    }
}

/// Marks auctions dirty as their events go by on their live channels, and wakes the consumer.
/// What is published while the feed is away is found by the next sweep.
pub async fn watch_live(
    mut feed: Subscription,
    dirty: Arc<Mutex<HashSet<AuctionId>>>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            received = feed.next() => if let Received::Message(Live::Event(event)) = received {
                crate::sync::lock(&dirty).insert(event.auction_id().clone());
                wake.notify_one();
            },
        }
    }
}
