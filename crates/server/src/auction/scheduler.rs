//! The scheduler: run by the leader only, it starts and ends auctions at their deadlines.
//!
//! The deadline index (`deadlines`, a sorted set of auction ids by next deadline) is a hint: the
//! fenced `advance.lua` decides with Redis time and the auction's own close in force, so a deadline
//! that a bid has moved gets `Wait` back and is rescheduled, never ended early. The scheduler sleeps
//! until the earliest deadline and is woken early when one is added or moved (a message on the
//! deadline channel), when leadership changes, or at the latest every second.

use std::time::Duration;

use auction_proto::{AuctionId, UserId};
use std::sync::Arc;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::leader::{Lease, LeaseWatch};
use crate::store::{Advance, Event, Fence, Store, StoreError, Subscription};

/// The longest the scheduler sleeps without looking at the index again.
const MAX_SLEEP: Duration = Duration::from_secs(1);
/// How many of the newest auctions a new leader re-indexes.
const RECONCILE_LIMIT: usize = 10_000;
/// How many due auctions one pass takes.
const BATCH: isize = 256;

pub struct Scheduler {
    pub store: Store,
    pub lease: LeaseWatch,
    pub wake: Arc<Notify>,
    /// Transitions to copy into MySQL (see [`copy_to_mysql`]).
    pub copies: mpsc::Sender<Event>,
    pub metrics: Arc<super::metrics::AuctionMetrics>,
}

impl Scheduler {
    pub async fn run(mut self, shutdown: CancellationToken) {
        loop {
            // Wait to lead.
            let lease = loop {
                if let Some(lease) = (*self.lease.borrow_and_update()).filter(Lease::is_valid) {
                    break lease;
                }
                tokio::select! {
                    changed = self.lease.changed() => if changed.is_err() { return },
                    _ = shutdown.cancelled() => return,
                }
            };
            tracing::info!(epoch = lease.epoch, "scheduler running");
            if let Err(e) = self.lead(lease, &shutdown).await {
                tracing::warn!(error = %e, "scheduler pass failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                    _ = shutdown.cancelled() => return,
                }
            }
            if shutdown.is_cancelled() {
                return;
            }
        }
    }

    /// Runs passes while this instance holds `lease` (same epoch, still valid).
    async fn lead(&mut self, lease: Lease, shutdown: &CancellationToken) -> Result<(), StoreError> {
        self.reconcile().await?;
        loop {
            let current = *self.lease.borrow();
            match current {
                Some(now) if now.epoch == lease.epoch && now.is_valid() => {}
                _ => return Ok(()),
            }
            let now_ms = self.store.now_ms().await?;
            let due = self.store.due(now_ms, BATCH).await?;
            for id in &due {
                // The latest renewal's fence: the lease runs out later with each.
                let fence = match *self.lease.borrow() {
                    Some(now) if now.epoch == lease.epoch && now.is_valid() => now.fence,
                    _ => return Ok(()),
                };
                self.advance(id, fence, now_ms).await?;
            }
            if due.len() == usize::try_from(BATCH).unwrap_or(usize::MAX) {
                continue;
            }
            let next = self.store.next_deadline().await?;
            let now_ms = self.store.now_ms().await?;
            let sleep = next
                .map(|at| Duration::from_millis(u64::try_from(at - now_ms).unwrap_or(0)))
                .unwrap_or(MAX_SLEEP)
                .min(MAX_SLEEP);
            if sleep.is_zero() {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = self.wake.notified() => {}
                _ = self.lease.changed() => {}
                _ = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    /// Puts every live auction's next deadline into the index, so that one whose scheduling was
    /// lost (a crash between creating it and indexing it) is still started and ended.
    async fn reconcile(&self) -> Result<(), StoreError> {
        let ids = self.store.recent_ids(RECONCILE_LIMIT).await?;
        let mut scheduled = 0;
        for id in ids {
            if let Some(deadline) = self.store.load(&id).await?.and_then(|r| r.next_deadline_ms()) {
                self.store.schedule(&id, deadline).await?;
                scheduled += 1;
            }
        }
        tracing::info!(scheduled, "deadline index reconciled");
        Ok(())
    }

    /// One fenced transition of auction `id`, found due at Redis time `now_ms`.
    async fn advance(&self, id: &AuctionId, fence: Fence, now_ms: i64) -> Result<(), StoreError> {
        match self.store.advance(id, fence).await? {
            Advance::Fenced => {
                self.metrics.fenced.increment(1);
                tracing::warn!(auction = %id, epoch = fence.epoch, "transition refused: not the leader");
            }
            Advance::Missing | Advance::Final => self.store.unschedule(id).await?,
            Advance::Wait { next_ms } => self.store.schedule(id, next_ms).await?,
            Advance::Moved(event) => {
                match &event {
                    Event::Started(started) => {
                        tracing::info!(auction = %id, "auction started");
                        self.metrics.started.increment(1);
                        self.store.schedule(id, started.end_ms).await?;
                    }
                    Event::Ended(ended) => {
                        tracing::info!(auction = %id, winner = ?ended.winner.as_ref().map(UserId::as_str), "auction ended");
                        self.metrics.ended.increment(1);
                        // Redis time now, not at the start of the pass: a pass may end many auctions.
                        let ended_ms = self.store.now_ms().await.unwrap_or(now_ms);
                        #[allow(clippy::cast_precision_loss)]
                        self.metrics.close_lateness.record((ended_ms - ended.end_ms).max(0) as f64 / 1000.0);
                        self.store.unschedule(id).await?;
                    }
                    other => tracing::error!(auction = %id, kind = other.kind(), "advance made an unexpected event"),
                }
                self.queue_copy(event);
            }
        }
        Ok(())
    }

    /// Queues a change for MySQL without waiting: the lifecycle must not wait on MySQL, and the
    /// change is on the auction's durable log in any case.
    fn queue_copy(&self, event: Event) {
        if let Err(e) = self.copies.try_send(event) {
            tracing::warn!(error = %e, "mysql copy queue full; the event log still has it");
        }
    }
}

/// Wakes the scheduler whenever a deadline is added or moved anywhere, by listening on the
/// deadline channel (every message there is a wake-up, and so is a re-subscription: the
/// scheduler's one-second look-around covers what was missed).
pub async fn listen_for_deadlines(mut feed: Subscription, wake: Arc<Notify>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = feed.next() => wake.notify_one(),
        }
    }
}

/// Copies lifecycle events into MySQL in order, retrying a little; what still fails stays on the
/// auctions' durable logs for the analytics service, which writes it with the same statements.
pub async fn copy_to_mysql(db: sqlx::MySqlPool, mut events: mpsc::Receiver<Event>) {
    while let Some(event) = events.recv().await {
        let mut attempt = 0;
        loop {
            match crate::db::write_events(&db, &[&event]).await {
                Ok(_) => break,
                Err(e) if attempt < 3 => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "mysql write failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * attempt)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, auction = %event.auction_id(), kind = event.kind(), "mysql write failed; left to the event log");
                    break;
                }
            }
        }
    }
}
