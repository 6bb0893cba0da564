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
//! - Each transition carries the lease's [`Fence`]: its epoch and the Redis time its lease runs
//!   out, less a tenth of the TTL for clocks of different Redis nodes that disagree. Redis refuses
//!   the transition past that time, whatever this process believes (a paused process wakes with
//!   a belief its clock has not yet ended).

use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::store::{Fence, LeaseState, Store};

/// This instance's leadership while it lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub epoch: u64,
    pub valid_until: Instant,
    /// What `advance.lua` checks, whatever this process believes.
    pub fence: Fence,
}

impl Lease {
    pub fn is_valid(&self) -> bool {
        self.is_valid_at(Instant::now())
    }

    fn is_valid_at(&self, now: Instant) -> bool {
        now < self.valid_until
    }

    /// What a lease answer means for this instance: leadership until the send time of the call
    /// that won it plus 90% of the TTL (the lease in Redis outlives the belief), or none.
    fn from_answer(answer: &LeaseState, sent: Instant, ttl: Duration) -> Option<Lease> {
        answer.held.then(|| Lease {
            epoch: answer.epoch,
            valid_until: sent + ttl.mul_f64(0.9),
            fence: answer.fence(ttl / 10),
        })
    }

    /// What is left of `lease` after a renewal failed at `now`: all of it while the belief is
    /// still valid (the next renewal may succeed), nothing after.
    fn after_failure(lease: Option<Lease>, now: Instant) -> Option<Lease> {
        lease.filter(|lease| lease.is_valid_at(now))
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
        let lease = Lease::from_answer(state, sent, self.ttl);
        match lease {
            None if self.tx.borrow().is_some() => {
                tracing::warn!(holder = %state.holder, epoch = state.epoch, "lost the leader lease");
            }
            Some(lease) if lease.epoch != held => tracing::info!(epoch = lease.epoch, "became the leader"),
            _ => {}
        }
        self.tx.send_replace(lease);
        lease.map_or(0, |lease| lease.epoch)
    }

    fn on_failure(&self, error: &str) {
        let before = *self.tx.borrow();
        let after = Lease::after_failure(before, Instant::now());
        match (before, after) {
            (Some(_), Some(_)) => tracing::warn!(error, "cannot renew the leader lease; still valid, retrying"),
            (Some(_), None) => {
                tracing::warn!(error, "cannot confirm the leader lease; stepping down");
                self.tx.send_replace(None);
            }
            (None, _) => tracing::debug!(error, "cannot reach the leader lease"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(held: bool, epoch: u64) -> LeaseState {
        LeaseState { held, epoch, holder: "other".into(), ms_left: 10_000, until_ms: 1_000_000 }
    }

    #[test]
    fn a_won_lease_is_believed_for_ninety_percent_of_the_ttl_from_the_send() {
        let sent = Instant::now();
        let ttl = Duration::from_secs(10);
        let lease = Lease::from_answer(&answer(true, 7), sent, ttl).unwrap();
        assert_eq!(lease.epoch, 7);
        assert_eq!(lease.valid_until, sent + Duration::from_secs(9));
        assert_eq!(lease.fence, Fence { epoch: 7, until_ms: 999_000 }, "Redis refuses it a tenth of the TTL early");
        assert!(lease.is_valid_at(sent + Duration::from_millis(8999)));
        assert!(!lease.is_valid_at(sent + Duration::from_secs(9)), "never as long as Redis keeps it");
        assert_eq!(Lease::from_answer(&answer(false, 8), sent, ttl), None, "another holds it");
    }

    #[test]
    fn a_failed_renewal_keeps_leadership_only_while_it_is_believed() {
        let now = Instant::now();
        let lease =
            Lease { epoch: 3, valid_until: now + Duration::from_secs(1), fence: Fence { epoch: 3, until_ms: 0 } };
        assert_eq!(Lease::after_failure(Some(lease), now), Some(lease));
        assert_eq!(Lease::after_failure(Some(lease), now + Duration::from_secs(1)), None);
        assert_eq!(Lease::after_failure(None, now), None);
    }
}
