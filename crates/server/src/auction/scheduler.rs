//! The scheduler: run by the leader only, it starts and ends auctions at their deadlines.
//!
//! The deadline index (`deadlines`, a sorted set of auction ids by next deadline) is a hint: the
//! fenced `advance.lua` decides with Redis time and the auction's own close in force, so a deadline
//! that a bid has moved gets `Wait` back and is rescheduled, never ended early. The scheduler sleeps
//! until the earliest deadline and is woken early when one is added or moved (a message on the
//! deadline channel), when leadership changes, or at the latest every second.
//!
//! Invariants:
//! - Due deadlines come first: a new leader re-indexes live auctions a step at a time between
//!   passes, once per leadership, never again after an error.
//! - One auction never holds up the others: an auction whose transition fails (Redis answers with
//!   an error for it) is moved later in the index, by a delay that doubles with each failure,
//!   and the pass goes on.
//! - A refused (`Fenced`) transition is not retried in a loop: when the lease's fence has run out
//!   in Redis time, nothing is tried until the next renewal; when a newer epoch acted on one
//!   auction, that auction is left alone until the next renewal. Each is logged once.

use std::collections::{HashMap, HashSet};
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
/// How many auctions one step of the re-indexing takes, between passes over due deadlines.
const RECONCILE_STEP: usize = 256;
/// How many due auctions one pass takes.
const BATCH: usize = 256;
/// The first and the longest wait before an auction whose transition failed is tried again.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// How many failing auctions the scheduler remembers the attempts of (beyond that, each starts
/// its backoff afresh).
const FAILING_LIMIT: usize = 10_000;

pub struct Scheduler {
    store: Store,
    lease: LeaseWatch,
    wake: Arc<Notify>,
    /// Transitions to copy into MySQL (see [`copy_to_mysql`]).
    copies: mpsc::Sender<Event>,
    metrics: Arc<super::metrics::AuctionMetrics>,
    /// The epoch whose re-indexing is done (or under way, in `reconcile`).
    reconciled: Option<u64>,
    /// Auctions still to re-index for the current leadership.
    reconcile: Vec<AuctionId>,
    /// Auctions a newer epoch has acted on: left alone until the lease is renewed.
    fenced: HashSet<AuctionId>,
    /// The fence `fenced` was refused under; a renewal brings a new one.
    fenced_under: Option<Fence>,
    /// Auctions already reported as fenced under this epoch (reported once, not every renewal).
    fenced_told: HashSet<AuctionId>,
    /// The fence already reported as run out, so that it is reported once.
    expired_told: Option<Fence>,
    /// Failed attempts of auctions whose transition keeps failing (reset by a success).
    failing: HashMap<AuctionId, u32>,
}

/// How a pass over the due deadlines ended.
enum Pass {
    /// Everything due was handled (or backed off): sleep until the next deadline.
    Done,
    /// More is due than one pass takes: go on at once.
    More,
    /// This instance no longer leads.
    Lost,
    /// Redis refuses the lease's fence (its time ran out before a renewal): nothing can move
    /// until the next renewal brings a new one.
    Expired,
}

impl Scheduler {
    pub fn new(
        store: Store,
        lease: LeaseWatch,
        wake: Arc<Notify>,
        copies: mpsc::Sender<Event>,
        metrics: Arc<super::metrics::AuctionMetrics>,
    ) -> Scheduler {
        Scheduler {
            store,
            lease,
            wake,
            copies,
            metrics,
            reconciled: None,
            reconcile: Vec::new(),
            fenced: HashSet::new(),
            fenced_under: None,
            fenced_told: HashSet::new(),
            expired_told: None,
            failing: HashMap::new(),
        }
    }

    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut backoff = crate::retry::backoff();
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
            match self.lead(lease, &shutdown).await {
                Ok(()) => backoff = crate::retry::backoff(),
                // Redis as a whole failed (one auction's failure is handled in the pass): try
                // again at the retry pace, keeping what was done (the re-indexing is not redone).
                Err(e) => {
                    tracing::warn!(error = %e, "scheduler pass failed; retrying");
                    if !crate::retry::pause(&mut backoff, &shutdown).await {
                        return;
                    }
                }
            }
            if shutdown.is_cancelled() {
                return;
            }
        }
    }

    /// The fence of the current renewal while this instance holds `lease` (same epoch, still
    /// valid); `None` once it does not.
    fn fence(&self, lease: Lease) -> Option<Fence> {
        match *self.lease.borrow() {
            Some(now) if now.epoch == lease.epoch && now.is_valid() => Some(now.fence),
            _ => None,
        }
    }

    /// Runs passes while this instance holds `lease`. Due deadlines come first: a new leader
    /// re-indexes live auctions a step at a time between passes, not before them.
    async fn lead(&mut self, lease: Lease, shutdown: &CancellationToken) -> Result<(), StoreError> {
        if self.reconciled != Some(lease.epoch) {
            self.reconcile = self.store.recent_ids(RECONCILE_LIMIT).await?;
            self.reconciled = Some(lease.epoch);
            self.fenced_told.clear();
        }
        loop {
            let pass = self.pass(lease).await?;
            if matches!(pass, Pass::Lost) {
                return Ok(());
            }
            if !self.reconcile.is_empty() && !matches!(pass, Pass::Expired) {
                self.reconcile_step().await?;
                continue;
            }
            let sleep = match pass {
                Pass::More => continue,
                Pass::Done => self.until_next_deadline().await?,
                // Only a renewal helps.
                Pass::Expired | Pass::Lost => Duration::MAX,
            };
            if sleep.is_zero() {
                continue;
            }
            tokio::select! {
                _ = tokio::time::sleep(sleep.min(MAX_SLEEP)), if sleep != Duration::MAX => {}
                _ = self.wake.notified(), if sleep != Duration::MAX => {}
                _ = self.lease.changed() => {}
                _ = shutdown.cancelled() => return Ok(()),
            }
        }
    }

    /// One look at the due deadlines: each due auction gets its fenced transition, except those
    /// a newer epoch acted on (until the next renewal) and those backing off after a failure
    /// (moved later in the index). A failure of one auction never stops the others.
    async fn pass(&mut self, lease: Lease) -> Result<Pass, StoreError> {
        let Some(fence) = self.fence(lease) else { return Ok(Pass::Lost) };
        if self.fenced_under != Some(fence) {
            // A renewal: what was refused may be tried again, once.
            self.fenced.clear();
            self.fenced_under = Some(fence);
        }
        let now_ms = self.store.now_ms().await?;
        if now_ms >= fence.until_ms {
            if self.expired_told != Some(fence) {
                self.expired_told = Some(fence);
                tracing::warn!(epoch = fence.epoch, "the lease's fence ran out before its renewal; waiting for it");
            }
            return Ok(Pass::Expired);
        }
        let limit = BATCH + self.fenced.len();
        let due = self.store.due(now_ms, isize::try_from(limit).unwrap_or(isize::MAX)).await?;
        let full = due.len() >= limit;
        let due: Vec<AuctionId> = due.into_iter().filter(|id| !self.fenced.contains(id)).collect();
        for id in &due {
            // The latest renewal's fence: the lease runs out later with each.
            let Some(fence) = self.fence(lease) else { return Ok(Pass::Lost) };
            match self.advance(id, fence, now_ms).await {
                Ok(Advance::Fenced) => {
                    self.metrics.fenced.increment(1);
                    if self.store.now_ms().await? >= fence.until_ms {
                        // Not this auction: the fence as a whole ran out.
                        return Ok(Pass::Expired);
                    }
                    self.fenced.insert(id.clone());
                    if self.fenced_told.insert(id.clone()) {
                        tracing::warn!(auction = %id, epoch = fence.epoch, "transition refused: a newer leader acted on this auction; leaving it until the lease is renewed");
                    } else {
                        tracing::debug!(auction = %id, epoch = fence.epoch, "transition refused again");
                    }
                }
                Ok(_) => {
                    self.failing.remove(id);
                }
                Err(e) => self.back_off(id, now_ms, &e).await?,
            }
        }
        Ok(if full { Pass::More } else { Pass::Done })
    }

    /// Moves a failed auction later in the index, by a delay that doubles with each failure, so
    /// that it is tried again without holding up the others; an error here is Redis's as a whole.
    async fn back_off(&mut self, id: &AuctionId, now_ms: i64, error: &StoreError) -> Result<(), StoreError> {
        if self.failing.len() >= FAILING_LIMIT && !self.failing.contains_key(id) {
            self.failing.clear();
        }
        let attempts = self.failing.entry(id.clone()).or_insert(0);
        *attempts = attempts.saturating_add(1);
        let delay = RETRY_MIN.saturating_mul(1u32 << (*attempts - 1).min(16)).min(RETRY_MAX);
        tracing::warn!(auction = %id, error = %error, attempts = *attempts, retry_in = ?delay, "transition failed; retrying later");
        let delay_ms = i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
        self.store.schedule(id, now_ms.saturating_add(delay_ms)).await
    }

    /// How long to sleep until the earliest deadline that is not left alone as fenced.
    async fn until_next_deadline(&self) -> Result<Duration, StoreError> {
        let head = self.store.next_deadlines(self.fenced.len() + 1).await?;
        let next = head.into_iter().find(|(id, _)| !self.fenced.contains(id)).map(|(_, at)| at);
        let Some(at) = next else { return Ok(MAX_SLEEP) };
        let now_ms = self.store.now_ms().await?;
        Ok(Duration::from_millis(u64::try_from(at - now_ms).unwrap_or(0)))
    }

    /// Puts the next few live auctions' next deadlines into the index, so that one whose
    /// scheduling was lost (a crash between creating it and indexing it) is still started and
    /// ended. An auction that cannot be read is reported and skipped; it does not stop the rest.
    async fn reconcile_step(&mut self) -> Result<(), StoreError> {
        let step: Vec<AuctionId> =
            self.reconcile.drain(self.reconcile.len().saturating_sub(RECONCILE_STEP)..).collect();
        for id in step {
            match self.store.load(&id).await {
                Ok(stored) => {
                    if let Some(deadline) = stored.and_then(|r| r.next_deadline_ms()) {
                        self.store.schedule(&id, deadline).await?;
                    }
                }
                Err(e) => tracing::warn!(auction = %id, error = %e, "cannot read auction to re-index it"),
            }
        }
        if self.reconcile.is_empty() {
            tracing::info!("deadline index reconciled");
        }
        Ok(())
    }

    /// One fenced transition of auction `id`, found due at Redis time `now_ms`.
    async fn advance(&self, id: &AuctionId, fence: Fence, now_ms: i64) -> Result<Advance, StoreError> {
        let advance = self.store.advance(id, fence).await?;
        match &advance {
            Advance::Fenced => {}
            Advance::Missing | Advance::Final => self.store.unschedule(id).await?,
            Advance::Wait { next_ms } => self.store.schedule(id, *next_ms).await?,
            Advance::Moved(event) => {
                // Copied first: the change is made, whatever happens to the index below.
                self.queue_copy(event.clone());
                match event {
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
            }
        }
        Ok(advance)
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
