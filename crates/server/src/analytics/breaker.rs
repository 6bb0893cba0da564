//! A circuit breaker for MySQL writes: after repeated failures it stops trying for a cooldown
//! (doubling up to a cap), then lets one probe through; a success closes it again. While it is
//! open the consumer leaves events in Redis, where nothing is lost.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }

    /// For the metrics gauge: 0 closed, 1 half open, 2 open.
    pub fn level(self) -> f64 {
        match self {
            State::Closed => 0.0,
            State::HalfOpen => 1.0,
            State::Open => 2.0,
        }
    }
}

pub struct Breaker {
    // A std Mutex: held for a few instructions, never across an await.
    inner: Mutex<Inner>,
    threshold: u32,
    base_cooldown: Duration,
    max_cooldown: Duration,
}

struct Inner {
    state: State,
    failures: u32,
    cooldown: Duration,
    open_until: Instant,
}

impl Breaker {
    pub fn new(threshold: u32, base_cooldown: Duration, max_cooldown: Duration) -> Breaker {
        Breaker {
            inner: Mutex::new(Inner {
                state: State::Closed,
                failures: 0,
                cooldown: base_cooldown,
                open_until: Instant::now(),
            }),
            threshold,
            base_cooldown,
            max_cooldown,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        crate::sync::lock(&self.inner)
    }

    /// Whether a write may be tried now; moves an open breaker whose cooldown is over to half open.
    pub fn allow(&self) -> bool {
        let mut inner = self.lock();
        match inner.state {
            State::Closed | State::HalfOpen => true,
            State::Open if Instant::now() >= inner.open_until => {
                inner.state = State::HalfOpen;
                true
            }
            State::Open => false,
        }
    }

    pub fn success(&self) {
        let mut inner = self.lock();
        if inner.state != State::Closed {
            tracing::info!("mysql is back: circuit closed");
        }
        inner.state = State::Closed;
        inner.failures = 0;
        inner.cooldown = self.base_cooldown;
    }

    pub fn failure(&self) {
        let mut inner = self.lock();
        inner.failures += 1;
        let trip = match inner.state {
            State::HalfOpen => {
                inner.cooldown = (inner.cooldown * 2).min(self.max_cooldown);
                true
            }
            State::Closed => inner.failures >= self.threshold,
            State::Open => false,
        };
        if trip {
            if inner.state == State::Closed {
                tracing::warn!(failures = inner.failures, "mysql writes keep failing: circuit open");
            }
            inner.state = State::Open;
            inner.open_until = Instant::now() + inner.cooldown;
        }
    }

    pub fn state(&self) -> State {
        self.lock().state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_repeated_failures_probes_and_closes() {
        let breaker = Breaker::new(3, Duration::from_secs(1), Duration::from_secs(4));
        breaker.failure();
        breaker.failure();
        assert_eq!(breaker.state(), State::Closed);
        breaker.failure();
        assert_eq!(breaker.state(), State::Open);
        assert!(!breaker.allow());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(breaker.allow());
        assert_eq!(breaker.state(), State::HalfOpen);
        // A failed probe opens it again for twice as long.
        breaker.failure();
        assert_eq!(breaker.state(), State::Open);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(!breaker.allow());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(breaker.allow());
        breaker.success();
        assert_eq!(breaker.state(), State::Closed);
        assert!(breaker.allow());
    }
}
