//! A circuit breaker for MySQL writes: after repeated failures it stops trying for a cooldown
//! (doubling up to a cap), then lets one probe through; a success closes it again, a failure
//! opens it again. While it is open, and while the probe is out, every other call is refused: the
//! consumer leaves events in Redis, where nothing is lost.

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
    /// Half open: whether the one probe is out (its permit not yet dropped).
    probing: bool,
}

/// Leave to make one call, from [`Breaker::allow`]. The call's outcome is told with
/// [`Breaker::success`] or [`Breaker::failure`]; a probe dropped without either (the call never
/// reached MySQL) lets the next call probe instead.
#[must_use = "the call is allowed only while the permit is held"]
pub struct Permit<'a> {
    breaker: &'a Breaker,
    probe: bool,
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probe {
            self.breaker.lock().probing = false;
        }
    }
}

impl Breaker {
    pub fn new(threshold: u32, base_cooldown: Duration, max_cooldown: Duration) -> Breaker {
        Breaker {
            inner: Mutex::new(Inner {
                state: State::Closed,
                failures: 0,
                cooldown: base_cooldown,
                open_until: Instant::now(),
                probing: false,
            }),
            threshold,
            base_cooldown,
            max_cooldown,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        crate::sync::lock(&self.inner)
    }

    /// Whether a write may be tried now: always while closed; once an open breaker's cooldown is
    /// over, for exactly one caller at a time (the probe), until its outcome is told.
    pub fn allow(&self) -> Option<Permit<'_>> {
        let mut inner = self.lock();
        let probe = match inner.state {
            State::Closed => false,
            State::Open if Instant::now() < inner.open_until => return None,
            State::Open | State::HalfOpen if !inner.probing => {
                inner.state = State::HalfOpen;
                inner.probing = true;
                true
            }
            State::Open | State::HalfOpen => return None,
        };
        Some(Permit { breaker: self, probe })
    }

    pub fn success(&self) {
        let mut inner = self.lock();
        if inner.state != State::Closed {
            tracing::info!("mysql is back: circuit closed");
        }
        inner.state = State::Closed;
        inner.probing = false;
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
            inner.probing = false;
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
        assert!(breaker.allow().is_none());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(breaker.allow().is_some());
        assert_eq!(breaker.state(), State::HalfOpen);
        // A failed probe opens it again for twice as long.
        breaker.failure();
        assert_eq!(breaker.state(), State::Open);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(breaker.allow().is_none());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(breaker.allow().is_some());
        breaker.success();
        assert_eq!(breaker.state(), State::Closed);
        assert!(breaker.allow().is_some());
    }

    /// Half open, many callers at once: one probe goes through, the others are refused until its
    /// outcome; a probe that never reached MySQL hands the turn on; a failure opens it again and a
    /// success closes it.
    #[test]
    fn half_open_lets_one_probe_through_at_a_time() {
        let breaker = Breaker::new(1, Duration::ZERO, Duration::ZERO);
        breaker.failure();
        assert_eq!(breaker.state(), State::Open);
        let callers = 16;
        let barrier = std::sync::Barrier::new(callers);
        let (permits, probes) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            for _ in 0..callers {
                let (breaker, barrier, permits) = (&breaker, &barrier, permits.clone());
                scope.spawn(move || {
                    barrier.wait();
                    let permit = breaker.allow();
                    permits.send(permit.is_some()).unwrap();
                    // Held until every caller has asked, as a call in flight would be.
                    barrier.wait();
                    drop(permit);
                });
            }
        });
        drop(permits);
        assert_eq!(probes.iter().filter(|allowed| *allowed).count(), 1, "exactly one probe");
        assert_eq!(breaker.state(), State::HalfOpen);

        // Nothing was told: the next caller probes instead, and the others wait for it.
        let probe = breaker.allow().expect("the turn passes on");
        assert!(breaker.allow().is_none(), "a second probe while the first is out");
        breaker.failure();
        drop(probe);
        assert_eq!(breaker.state(), State::Open);
        let probe = breaker.allow().expect("a probe after the cooldown");
        assert!(breaker.allow().is_none());
        breaker.success();
        drop(probe);
        assert_eq!(breaker.state(), State::Closed);
        assert!(breaker.allow().is_some() && breaker.allow().is_some(), "closed: every call");
    }
}
