//! This node's limits on its bidders: bids per second per connection and per user (GCRA), and
//! connections per node and per user. Per-user state is node-local: a user spread
//! over several nodes gets each node's allowance.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use std::num::NonZeroU32;

use auction_proto::UserId;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// An allowance of `rate` bids a second with bursts of up to one second's worth: the GCRA of
/// the `governor` crate, which keeps one timestamp instead of a count and a refill time.
#[derive(Debug)]
pub struct Bucket<C: Clock = DefaultClock> {
    limiter: RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<C::Instant>>,
}

impl Bucket {
    pub fn new(rate: u32) -> Bucket {
        Bucket::with_clock(rate, DefaultClock::default())
    }
}

impl<C: Clock> Bucket<C> {
    fn with_clock(rate: u32, clock: C) -> Bucket<C> {
        let quota = Quota::per_second(NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN));
        Bucket { limiter: RateLimiter::direct_with_clock(quota, clock) }
    }

    /// Takes one bid's worth if the allowance has it.
    pub fn take(&self) -> bool {
        self.limiter.check().is_ok()
    }
}

/// Why a connection was refused before the upgrade.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    NodeFull(usize),
    UserFull(usize),
}

#[derive(Default)]
struct Users {
    connections: HashMap<UserId, usize>,
    buckets: HashMap<UserId, Bucket>,
    total: usize,
}

#[derive(Clone)]
pub struct Limits {
    // A std Mutex: held for a few map operations, never across an await.
    users: Arc<Mutex<Users>>,
    max_connections: usize,
    max_per_user: usize,
    user_rate: u32,
}

/// A counted connection; uncounted (and the user's bucket dropped with their last) on drop.
pub struct Admitted {
    limits: Limits,
    user: UserId,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut users = self.limits.lock();
        users.total = users.total.saturating_sub(1);
        let left = users.connections.get_mut(&self.user).map(|n| {
            *n = n.saturating_sub(1);
            *n
        });
        if left == Some(0) {
            users.connections.remove(&self.user);
            users.buckets.remove(&self.user);
        }
    }
}

impl Limits {
    pub fn new(max_connections: usize, max_per_user: usize, user_rate: u32) -> Limits {
        Limits { users: Arc::default(), max_connections, max_per_user, user_rate }
    }

    fn lock(&self) -> MutexGuard<'_, Users> {
        crate::sync::lock(&self.users)
    }

    /// Counts a new connection of `user`, unless the node or the user is at the limit.
    pub fn admit(&self, user: &UserId) -> Result<Admitted, Refusal> {
        let mut users = self.lock();
        if users.total >= self.max_connections {
            return Err(Refusal::NodeFull(self.max_connections));
        }
        let held = users.connections.get(user).copied().unwrap_or(0);
        if held >= self.max_per_user {
            return Err(Refusal::UserFull(self.max_per_user));
        }
        users.total += 1;
        users.connections.insert(user.clone(), held + 1);
        Ok(Admitted { limits: self.clone(), user: user.clone() })
    }

    /// Takes one bid from the user's allowance on this node.
    pub fn take_user_bid(&self, user: &UserId) -> bool {
        let rate = self.user_rate;
        self.lock().buckets.entry(user.clone()).or_insert_with(|| Bucket::new(rate)).take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let clock = governor::clock::FakeRelativeClock::default();
        let bucket = Bucket::with_clock(2, clock.clone());
        assert!(bucket.take() && bucket.take());
        assert!(!bucket.take());
        clock.advance(std::time::Duration::from_millis(500));
        assert!(bucket.take());
        assert!(!bucket.take());
        clock.advance(std::time::Duration::from_secs(5));
        assert!(bucket.take() && bucket.take(), "the burst is back");
        assert!(!bucket.take(), "but never more than a second's worth");
    }

    #[test]
    fn connection_caps() {
        let limits = Limits::new(3, 2, 10);
        let alice = UserId::parse("alice").unwrap();
        let bob = UserId::parse("bob").unwrap();
        let a1 = limits.admit(&alice).unwrap();
        let _a2 = limits.admit(&alice).unwrap();
        assert_eq!(limits.admit(&alice).err(), Some(Refusal::UserFull(2)));
        let _b1 = limits.admit(&bob).unwrap();
        assert_eq!(limits.admit(&bob).err(), Some(Refusal::NodeFull(3)));
        drop(a1);
        assert!(limits.admit(&alice).is_ok());
    }
}
