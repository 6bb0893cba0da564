//! The auction rules, stated again in plain Rust: increments, proxy bids, reserve, buy-it-now,
//! extension, the lifecycle by time, and retries by `bid_id` (docs/protocol.md, "The bid script"
//! and "Proxy bids, reserve and buy-it-now"). Nothing here calls or mirrors the bid script's code:
//! it is written from the contract, so that the two can be run side by side and compared.

use std::collections::HashMap;

/// Money in cents.
pub type Cents = u64;

/// The increment table and `MAX_BID`.
#[derive(Debug, Clone)]
pub struct Rules {
    /// `(from, increment)`, `from` ascending and the first 0.
    pub bands: Vec<(Cents, Cents)>,
    pub max_bid: Cents,
}

impl Rules {
    /// The increment of the band `price` falls in: the last whose `from` is at or below it.
    pub fn increment(&self, price: Cents) -> Cents {
        self.bands.iter().rev().find(|(from, _)| *from <= price).map_or(1, |(_, step)| *step)
    }

    /// The least acceptable next bid, or `None` when no bid can be placed (the price is
    /// `MAX_BID`, or the starting bid is above it).
    pub fn min_next(&self, price: Option<Cents>, starting: Cents) -> Option<Cents> {
        match price {
            None => (starting <= self.max_bid).then_some(starting),
            Some(p) => {
                let next = (p + self.increment(p)).min(self.max_bid);
                (next > p).then_some(next)
            }
        }
    }
}

/// Why a bid was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    TooLow,
    AlreadyHighest,
    NotStarted,
    Ended,
    Cancelled,
    MaxBidReached,
}

/// The bidder's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Accepted {
        /// The price the bid stands at when it leads, else the bid's own amount.
        amount: Cents,
        seq: u64,
        end_ms: i64,
        leading: bool,
        /// The prices after the bid: only for bids with a max and beaten ones.
        current: Option<Cents>,
        min_next: Option<Cents>,
        your_max: Option<Cents>,
        bought_now: bool,
    },
    Rejected {
        reason: Reason,
        current: Option<Cents>,
        min_next: Option<Cents>,
    },
}

/// A public change, as the durable log holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Bid {
        seq: u64,
        bidder: String,
        bid_id: String,
        amount: Cents,
        bid_count: u64,
        end_ms: i64,
        prev_end_ms: i64,
        auto: bool,
        placed_by: Option<String>,
        reserve_met: Option<bool>,
    },
    MaxRaised {
        seq: u64,
        bidder: String,
        bid_id: String,
    },
    Ended {
        seq: u64,
        winner: Option<String>,
        final_price: Option<Cents>,
        bid_count: u64,
        end_ms: i64,
        reserve_met: Option<bool>,
        bought_now: bool,
    },
    Extended {
        seq: u64,
        end_ms: i64,
        prev_end_ms: i64,
    },
    Cancelled {
        seq: u64,
    },
}

/// What the log keeps of a bid with a max, beside its change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyRecord {
    pub bidder: String,
    pub bid_id: String,
    pub amount: Cents,
    pub max: Cents,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Open,
    Ended,
    Cancelled,
}

/// An auction's settings.
#[derive(Debug, Clone)]
pub struct Settings {
    pub starting: Cents,
    pub reserve: Option<Cents>,
    pub buy_now: Option<Cents>,
    pub end_ms: i64,
    pub ext_window_s: i64,
    pub ext_s: i64,
    /// Whether the start has passed.
    pub started: bool,
}

#[derive(Debug, Clone)]
pub struct Auction {
    pub rules: Rules,
    pub settings: Settings,
    pub state: State,
    /// Whether the close in force has passed (by the clock, whatever `state` says).
    pub closed: bool,
    pub started: bool,
    pub end_ms: i64,
    pub price: Option<Cents>,
    pub leader: Option<String>,
    /// The leader's max.
    pub max: Cents,
    pub seq: u64,
    pub bid_count: u64,
    outcomes: HashMap<(String, String), Answer>,
    pub log: Vec<Change>,
    pub proxies: Vec<ProxyRecord>,
}

/// What one bid needs from the clock: the time it was decided at, in ms, known only once the
/// real system has answered (the model is run after it with the same time).
pub type Now = Option<i64>;

/// One bid.
#[derive(Debug, Clone)]
pub struct Bid {
    pub bidder: String,
    pub bid_id: String,
    pub amount: Cents,
    pub max: Option<Cents>,
}

/// The model needed the bid's time for a change the real system made without reporting one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeedsTime;

impl Auction {
    pub fn new(rules: Rules, settings: Settings) -> Auction {
        Auction {
            state: State::Open,
            closed: false,
            started: settings.started,
            end_ms: settings.end_ms,
            rules,
            settings,
            price: None,
            leader: None,
            max: 0,
            seq: 0,
            bid_count: 0,
            outcomes: HashMap::new(),
            log: Vec::new(),
            proxies: Vec::new(),
        }
    }

    pub fn min_next(&self) -> Option<Cents> {
        self.rules.min_next(self.price, self.settings.starting)
    }

    pub fn reserve_met(&self) -> Option<bool> {
        self.settings.reserve.map(|r| self.price.is_some_and(|p| p >= r))
    }

    /// Buy-it-now is offered until the first bid, or with a reserve until the reserve is met.
    pub fn buy_now_available(&self) -> Option<Cents> {
        let n = self.settings.buy_now?;
        let open = match (self.price, self.settings.reserve) {
            (None, _) => true,
            (Some(p), Some(r)) => p < r,
            (Some(_), None) => false,
        };
        open.then_some(n)
    }

    fn with_prices(&self, reason: Reason) -> Answer {
        Answer::Rejected { reason, current: self.price, min_next: self.min_next() }
    }

    /// Places `bid` decided at `now`; the answer, stored for retries where the contract says so.
    pub fn bid(&mut self, bid: &Bid, now: Now) -> Result<Answer, NeedsTime> {
        let key = (bid.bidder.clone(), bid.bid_id.clone());
        if let Some(prior) = self.outcomes.get(&key) {
            return Ok(prior.clone());
        }
        // Final answers are not stored: they are the same on every retry.
        if self.state == State::Cancelled {
            return Ok(Answer::Rejected { reason: Reason::Cancelled, current: None, min_next: None });
        }
        if self.state == State::Ended || self.closed {
            return Ok(Answer::Rejected { reason: Reason::Ended, current: None, min_next: None });
        }
        let answer = self.decide(bid, now)?;
        self.outcomes.insert(key, answer.clone());
        Ok(answer)
    }

    fn decide(&mut self, bid: &Bid, now: Now) -> Result<Answer, NeedsTime> {
        if !self.started {
            return Ok(Answer::Rejected { reason: Reason::NotStarted, current: None, min_next: None });
        }
        let max = bid.max.unwrap_or(bid.amount);
        // 1. The leader may only raise their max.
        if self.leader.as_deref() == Some(bid.bidder.as_str()) {
            if bid.max.is_none() || max <= self.max {
                return Ok(self.with_prices(Reason::AlreadyHighest));
            }
            self.max = max;
            self.record_max(bid, max);
            if let Some(n) = self.buy_now_available()
                && max >= n
            {
                return self.buy(bid, n, max, true, now);
            }
            let price = self.price.expect("a leader has a price");
            if let Some(r) = self.settings.reserve
                && price < r
                && r <= max
            {
                let leader = bid.bidder.clone();
                return self.change(bid, r, leader, max, true, now);
            }
            self.log.push(Change::MaxRaised { seq: self.seq, bidder: bid.bidder.clone(), bid_id: bid.bid_id.clone() });
            return Ok(Answer::Accepted {
                amount: price,
                seq: self.seq,
                end_ms: self.end_ms,
                leading: true,
                current: Some(price),
                min_next: self.min_next(),
                your_max: Some(max),
                bought_now: false,
            });
        }
        // 2. Nothing can be bid, or not this little.
        let Some(min_next) = self.min_next() else {
            return Ok(self.with_prices(Reason::MaxBidReached));
        };
        if bid.amount < min_next {
            return Ok(self.with_prices(Reason::TooLow));
        }
        if bid.max.is_some() {
            self.record_max(bid, max);
        }
        // 5. Buy-it-now, while it is offered.
        if let Some(n) = self.buy_now_available()
            && max >= n
        {
            return self.buy(bid, n, max, false, now);
        }
        let reserve_floor = |price: Cents, leading_max: Cents| match self.settings.reserve {
            Some(r) if leading_max >= r && price < r => r,
            _ => price,
        };
        match self.leader.clone() {
            // 3. The first bid.
            None => {
                let price = reserve_floor(bid.amount, max);
                self.change(bid, price, bid.bidder.clone(), max, false, now)
            }
            // 4. A challenger: the higher max leads, ties to the earlier.
            Some(leader) => {
                if max > self.max {
                    let second = self.max;
                    let price = bid.amount.max((second + self.rules.increment(second)).min(max));
                    let price = reserve_floor(price, max);
                    self.change(bid, price, bid.bidder.clone(), max, false, now)
                } else {
                    let standing = self.max;
                    let price = (max + self.rules.increment(max)).min(standing);
                    let price = reserve_floor(price, standing);
                    self.change(bid, price, leader, standing, false, now)
                }
            }
        }
    }

    /// Keeps the max of an accepted bid that carried one, as the log does beside its change.
    fn record_max(&mut self, bid: &Bid, max: Cents) {
        let record = ProxyRecord { bidder: bid.bidder.clone(), bid_id: bid.bid_id.clone(), amount: bid.amount, max };
        self.proxies.push(record);
    }

    /// One price change: `price` held by `leader` with max `leader_max`.
    fn change(
        &mut self,
        bid: &Bid,
        price: Cents,
        leader: String,
        leader_max: Cents,
        raise: bool,
        now: Now,
    ) -> Result<Answer, NeedsTime> {
        let now = now.ok_or(NeedsTime)?;
        let prev_end = self.end_ms;
        let (window_ms, ext_ms) = (self.settings.ext_window_s * 1000, self.settings.ext_s * 1000);
        if window_ms > 0 && prev_end - now <= window_ms && now + ext_ms > prev_end {
            self.end_ms = now + ext_ms;
        }
        self.seq += 1;
        self.bid_count += 1;
        self.price = Some(price);
        self.max = leader_max;
        let leading = leader == bid.bidder;
        self.leader = Some(leader.clone());
        self.log.push(Change::Bid {
            seq: self.seq,
            bidder: leader,
            bid_id: bid.bid_id.clone(),
            amount: price,
            bid_count: self.bid_count,
            end_ms: self.end_ms,
            prev_end_ms: prev_end,
            auto: raise || !leading || price != bid.amount,
            placed_by: (!leading).then(|| bid.bidder.clone()),
            reserve_met: self.reserve_met(),
        });
        let proxy = bid.max.is_some();
        Ok(Answer::Accepted {
            amount: if leading { price } else { bid.amount },
            seq: self.seq,
            end_ms: self.end_ms,
            leading,
            current: (proxy || !leading).then_some(price),
            min_next: if proxy || !leading { self.min_next() } else { None },
            your_max: (proxy && leading).then_some(leader_max),
            bought_now: false,
        })
    }

    /// Buy-it-now: the price becomes `n`, the bidder wins, and the auction ends at once.
    fn buy(&mut self, bid: &Bid, n: Cents, max: Cents, raise: bool, now: Now) -> Result<Answer, NeedsTime> {
        let now = now.ok_or(NeedsTime)?;
        let prev_end = self.end_ms;
        self.seq += 1;
        self.bid_count += 1;
        self.price = Some(n);
        self.leader = Some(bid.bidder.clone());
        self.max = max;
        self.end_ms = now;
        self.log.push(Change::Bid {
            seq: self.seq,
            bidder: bid.bidder.clone(),
            bid_id: bid.bid_id.clone(),
            amount: n,
            bid_count: self.bid_count,
            end_ms: now,
            prev_end_ms: prev_end,
            auto: raise || n != bid.amount,
            placed_by: None,
            reserve_met: self.reserve_met(),
        });
        let bid_seq = self.seq;
        self.seq += 1;
        self.state = State::Ended;
        self.log.push(Change::Ended {
            seq: self.seq,
            winner: Some(bid.bidder.clone()),
            final_price: Some(n),
            bid_count: self.bid_count,
            end_ms: now,
            reserve_met: self.reserve_met(),
            bought_now: true,
        });
        Ok(Answer::Accepted {
            amount: n,
            seq: bid_seq,
            end_ms: now,
            leading: true,
            current: Some(n),
            min_next: None,
            // The auction is over: no max stands any more.
            your_max: None,
            bought_now: true,
        })
    }

    /// The operator's extend; `false` (a conflict) once the auction is over.
    pub fn extend(&mut self, seconds: i64) -> bool {
        if self.state != State::Open || self.closed {
            return false;
        }
        let prev = self.end_ms;
        self.end_ms += seconds * 1000;
        self.seq += 1;
        self.log.push(Change::Extended { seq: self.seq, end_ms: self.end_ms, prev_end_ms: prev });
        true
    }

    /// The operator's cancel; `false` (a conflict) once the auction is over.
    pub fn cancel(&mut self) -> bool {
        if self.state != State::Open || self.closed {
            return false;
        }
        self.state = State::Cancelled;
        self.seq += 1;
        self.log.push(Change::Cancelled { seq: self.seq });
        true
    }

    /// The start passes.
    pub fn start(&mut self) {
        self.started = true;
    }

    /// The close passes (the clock moved past `end_ms`, which the test sets to `at_ms`).
    pub fn pass_close(&mut self, at_ms: i64) {
        if self.state == State::Open {
            self.closed = true;
            self.end_ms = at_ms;
        }
    }

    /// The scheduler's end, once the close has passed: no winner without a bid or with the
    /// reserve not met. `false` if there is nothing to end.
    pub fn end(&mut self) -> bool {
        if self.state != State::Open || !self.closed {
            return false;
        }
        let met = self.reserve_met();
        let sold = self.price.is_some() && met != Some(false);
        self.state = State::Ended;
        self.seq += 1;
        self.log.push(Change::Ended {
            seq: self.seq,
            winner: if sold { self.leader.clone() } else { None },
            final_price: if sold { self.price } else { None },
            bid_count: self.bid_count,
            end_ms: self.end_ms,
            reserve_met: met,
            bought_now: false,
        });
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Rules {
        let bands = [(0, 5), (100, 25), (500, 50), (2500, 100), (10000, 250), (25000, 500), (50000, 1000)];
        Rules { bands: bands.to_vec(), max_bid: 10_000_000_000_000 }
    }

    fn auction(starting: Cents, reserve: Option<Cents>, buy_now: Option<Cents>) -> Auction {
        let settings =
            Settings { starting, reserve, buy_now, end_ms: 1_000_000, ext_window_s: 0, ext_s: 30, started: true };
        Auction::new(defaults(), settings)
    }

    fn bid(a: &mut Auction, who: &str, id: &str, amount: Cents, max: Option<Cents>) -> Answer {
        let b = Bid { bidder: who.into(), bid_id: id.into(), amount, max };
        a.bid(&b, Some(1000)).unwrap()
    }

    fn leading(answer: &Answer) -> bool {
        matches!(answer, Answer::Accepted { leading: true, .. })
    }

    /// The walk-through of the contract, in the model alone.
    #[test]
    fn the_walk_through() {
        let mut a = auction(1000, None, None);
        assert!(leading(&bid(&mut a, "xena", "x1", 1000, Some(5000))));
        assert_eq!(a.price, Some(1000));
        let beaten = bid(&mut a, "yuri", "y1", 2000, None);
        assert!(!leading(&beaten));
        assert_eq!((a.price, a.leader.as_deref()), (Some(2050), Some("xena")));
        assert!(leading(&bid(&mut a, "zoe", "z1", 2100, Some(6000))));
        assert_eq!((a.price, a.leader.as_deref()), (Some(5100), Some("zoe")));
        assert!(!leading(&bid(&mut a, "walt", "w1", 5200, Some(6000))));
        assert_eq!((a.price, a.leader.as_deref()), (Some(6000), Some("zoe")));
        assert_eq!(a.seq, 4, "one price change per accepted bid");
    }

    #[test]
    fn reserve_and_buy_now() {
        let mut a = auction(1000, Some(15000), Some(50000));
        bid(&mut a, "ann", "1", 1000, None);
        assert_eq!(a.buy_now_available(), Some(50000), "still offered below the reserve");
        bid(&mut a, "bob", "1", 1100, Some(20000));
        assert_eq!(a.price, Some(15000), "the max reaches the reserve: the price jumps to it");
        assert_eq!(a.buy_now_available(), None);
        let mut b = auction(1000, None, Some(50000));
        let answer = bid(&mut b, "cat", "1", 1000, Some(60000));
        assert!(matches!(answer, Answer::Accepted { bought_now: true, amount: 50000, .. }));
        assert_eq!(b.state, State::Ended);
        let late = bid(&mut b, "dan", "1", 70000, None);
        assert!(matches!(late, Answer::Rejected { reason: Reason::Ended, .. }));
    }

    #[test]
    fn a_reserve_not_met_ends_without_a_winner() {
        let mut a = auction(1000, Some(15000), None);
        bid(&mut a, "ann", "1", 1000, Some(14000));
        a.pass_close(2000);
        assert!(a.end());
        assert!(matches!(a.log.last(), Some(Change::Ended { winner: None, reserve_met: Some(false), .. })));
    }
}
