//! Leader election: a lease in Redis (`lease.lua`), renewed every third of its TTL, with a fencing
//! epoch that rises with each new lease.
//!
//! Invariants:
//! - This instance believes it leads only until `valid_until`: the moment it sent its last
//!   successful renewal plus 90% of the TTL. The lease in Redis outlives that belief, so two
//!   instances never both believe they lead (clocks only have to agree on durations).
//! - A failed renewal does not end leadership while the belief is still valid; the next renewal
//!   may succeed. Past `valid_until` the instance stops acting.
//! - On shutdown the lease is released at once, so a follower takes over without waiting out the TTL.

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::store::{LeaseState, Store};

/// This instance's leadership while it lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub epoch: u64,
    pub valid_until: Instant,
}

impl Lease {
    pub fn is_valid(&self) -> bool {
        Instant::now() < self.valid_until
    }
}

/// The current leadership of this instance: `Some` while it leads.
pub type LeaseWatch = watch::Receiver<Option<Lease>>;

/// How often a follower checks whether the lease is free: short, so that a released lease is
/// taken within a fraction of a second.
const FOLLOWER_POLL: Duration = Duration::from_millis(200);

pub struct Elector {
    pub store: Store,
    pub instance: String,
    pub ttl: Duration,
    pub tx: watch::Sender<Option<Lease>>,
}

impl Elector {
    pub fn new(store: Store, instance: String, ttl: Duration) -> (Elector, LeaseWatch) {
        let (tx, rx) = watch::channel(None);
        (Elector { store, instance, ttl, tx }, rx)
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX).max(1);
        let renew_every = self.ttl / 3;
        let mut epoch = 0;
        loop {
            let sent = Instant::now();
            match tokio::time::timeout(renew_every, self.store.lease(&self.instance, ttl_ms, epoch)).await {
                Ok(Ok(state)) => epoch = self.on_answer(&state, sent, epoch),
                Ok(Err(e)) => self.on_failure(&e.to_string()),
                Err(_) => self.on_failure("lease call timed out"),
            }
            let pause = if self.leads() { renew_every } else { FOLLOWER_POLL.min(renew_every) };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.cancelled() => break,
            }
        }
        if self.leads() || epoch != 0 {
            self.tx.send_replace(None);
            match self.store.release(&LeaseState::token(&self.instance, epoch)).await {
                Ok(true) => tracing::info!(epoch, "released the leader lease"),
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot release the leader lease; it expires by itself"),
            }
        }
    }

    fn leads(&self) -> bool {
        self.tx.borrow().is_some_and(|lease| lease.is_valid())
    }

    /// Records the lease script's answer; returns the epoch now held (0 for none).
    fn on_answer(&self, state: &LeaseState, sent: Instant, held: u64) -> u64 {
        if !state.held {
            if self.tx.borrow().is_some() {
                tracing::warn!(holder = %state.holder, epoch = state.epoch, "lost the leader lease");
            }
            self.tx.send_replace(None);
            return 0;
        }
        if state.epoch != held {
            tracing::info!(epoch = state.epoch, "became the leader");
        }
        let valid_until = sent + self.ttl.mul_f64(0.9);
        self.tx.send_replace(Some(Lease { epoch: state.epoch, valid_until }));
        state.epoch
    }

    fn on_failure(&self, error: &str) {
        let lease = *self.tx.borrow();
        match lease {
            Some(lease) if lease.is_valid() => {
                tracing::warn!(error, "cannot renew the leader lease; still valid, retrying");
            }
            Some(_) => {
                tracing::warn!(error, "cannot confirm the leader lease; stepping down");
                self.tx.send_replace(None);
            }
            None => tracing::debug!(error, "cannot reach the leader lease"),
        }
    }
}
