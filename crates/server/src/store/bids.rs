//! Placing a bid: the bid script and its verdict.

use std::sync::LazyLock;

use auction_proto::{Amount, AuctionId, BidId, BidRules, RejectReason, UserId};
use redis::{Script, Value};
use serde::Deserialize;

use super::event::Verdict;
use super::{RECENT_BIDS, RulesInForce, Store, StoreError};
use crate::config::Durability;

static BID: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("bid.lua")));

/// A bid to place, already validated.
pub struct NewBid<'a> {
    pub auction: &'a AuctionId,
    pub bidder: &'a UserId,
    pub bid_id: &'a BidId,
    pub amount: Amount,
    /// A proxy bid's max (`amount <= max <= max_bid`); `None` for a plain bid, whose max is its
    /// amount.
    pub max_amount: Option<Amount>,
    /// The increment table the node holds, with its version.
    pub rules: &'a RulesInForce,
    /// `MAX_BID`: the next bid's minimum is capped there, and past it no bid can be placed.
    pub max_bid: Amount,
    /// Apply `rules` even if an auction has seen a newer version: the node has just re-read the
    /// table and found nothing newer, so the newer one is gone from Redis (a failover lost it).
    pub older_rules: bool,
    /// Whether the outcome is stored for retries: only when the client chose `bid_id` (one the
    /// server made can never be sent again).
    pub keep_outcome: bool,
}

/// The bid script's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BidOutcome {
    Accepted(Accepted),
    Rejected {
        reason: RejectReason,
        current: Option<Amount>,
        min_next: Option<Amount>,
    },
    /// Nothing decided: the auction has seen version `applied` of the table, newer than the one
    /// passed. Re-read the table and place the bid again.
    StaleRules {
        applied: u64,
    },
}

/// An accepted bid: it changed the price (its own, or a standing max answered it), or raised the
/// leader's max.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// The price the bid stands at when it leads; the bid's own amount when a standing max beat
    /// it at once.
    pub amount: Amount,
    /// The auction's version after the bid's price change (unchanged by a raise that changed no
    /// price; the `bid` event's, not the `ended` that follows a buy).
    pub seq: u64,
    /// The close in force after the bid (a buy: the time of the buy), and before it.
    pub end_ms: i64,
    pub prev_end_ms: i64,
    pub placed_us: i64,
    /// False when a standing max beat the bid (it still raised the price).
    pub leading: bool,
    /// The price after the bid.
    pub current: Amount,
    /// The next bid's minimum after it, under the table the bid was judged by (for a plain bid
    /// that led, the one passed now); `None` once no bid can be placed (`MAX_BID` reached, or the
    /// bid bought the auction).
    pub min_next: Option<Amount>,
    /// The bidder's max, when the bid leads with one (`max_amount` given, no buy).
    pub your_max: Option<Amount>,
    /// The bid bought the auction at its buy-it-now price: the auction has ended.
    pub bought_now: bool,
    /// Whether the answer shows `current_bid` and `min_next_bid`: every bid but a plain one that
    /// leads at its own amount (docs/protocol.md, "Answers").
    pub shows_prices: bool,
    /// After a buy: the auction's creation time, its score in the status indexes.
    pub created_ms: Option<i64>,
}

impl Store {
    /// Places a bid through the bid script, which also logs and publishes it when accepted. With
    /// `replicated` durability an acceptance is answered only once a replica has it (a retry of
    /// the same bid waits for that again, so its `accepted` is as sure as the first one's).
    ///
    /// An amount above `max_bid`, or a max below the amount or above `max_bid`, is rejected as
    /// `invalid_amount` without a call (and not stored).
    pub async fn place_bid(&self, bid: &NewBid<'_>) -> Result<BidOutcome, StoreError> {
        let invalid =
            bid.amount > bid.max_bid || bid.max_amount.is_some_and(|max| max < bid.amount || max > bid.max_bid);
        if invalid {
            return Ok(BidOutcome::Rejected { reason: RejectReason::InvalidAmount, current: None, min_next: None });
        }
        let keys = self.keys.auction(bid.auction);
        let script_keys = [&keys.state, &keys.recent, &keys.outcomes, &keys.log];
        let args = (
            bid.auction.as_str(),
            bid.bidder.as_str(),
            bid.bid_id.as_str(),
            bid.amount.cents(),
            bid.rules.table.to_script_arg(),
            &keys.live,
            RECENT_BIDS,
            self.topology.publish_command(),
            if bid.keep_outcome { "1" } else { "0" },
            bid.rules.version,
            bid.max_bid.cents(),
            if bid.older_rules { "1" } else { "0" },
        );
        // ARGV[13], apart: a tuple of arguments holds at most twelve.
        let max = bid.max_amount.map(|max| max.cents().to_string()).unwrap_or_default();
        if self.durability == Durability::Local {
            let mut invocation = BID.prepare_invoke();
            invocation.key(&script_keys).arg(&args).arg(&max);
            let mut conn = self.conn.clone();
            let text: String = self.bounded(invocation.invoke_async(&mut conn)).await?;
            return decode_outcome(&text, &bid.rules.table, bid.max_bid);
        }
        let mut eval = redis::cmd("EVALSHA");
        eval.arg(BID.get_hash()).arg(script_keys.len()).arg(&script_keys).arg(&args).arg(&max);
        let (text, replicas) = self.place_and_wait(eval, &keys.state).await?;
        let outcome = decode_outcome(&text, &bid.rules.table, bid.max_bid)?;
        if replicas < 1 && matches!(outcome, BidOutcome::Accepted(_)) {
            return Err(StoreError::NotReplicated(self.replica_timeout));
        }
        Ok(outcome)
    }

    /// The bid script and `WAIT 1` in one pipeline, sent together to the auction's primary: the
    /// count is then that node's, for the connection that just ran the script. (Sent apart, a
    /// cluster client whose connection to the primary is down would send the `WAIT` to any node,
    /// whose own replica would answer for a bid it never saw.) A pipeline that lands elsewhere
    /// fails on the script (`MOVED`), never acknowledges. Every bid's answer waits for the
    /// replica, rejections too, since they are stored outcomes as well.
    async fn place_and_wait(&self, eval: redis::Cmd, key: &str) -> Result<(String, i64), StoreError> {
        let timeout_ms = u64::try_from(self.replica_timeout.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.conn.clone();
        let budget = self.replica_timeout + self.timeout;
        for attempt in 0..2 {
            let mut pipe = redis::pipe();
            pipe.add_command(eval.clone()).cmd("WAIT").arg(1).arg(timeout_ms);
            // WAIT may take the whole replica timeout; the store's timeout is for Redis to answer.
            let values = super::within(budget, conn.pipeline_on_primary_of(key, &pipe)).await?;
            let [script, wait]: [Value; 2] =
                // Not the values themselves: an answer may hold a bidder's max, which no log line shows.
            values.try_into().map_err(|v: Vec<Value>| StoreError::Corrupt(format!("bid pipeline answered {} values", v.len())))?;
            match script.extract_error() {
                Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) && attempt == 0 => {
                    let _: String = self.bounded(BID.load_async(&mut conn)).await?;
                }
                Err(e) => return Err(e.into()),
                Ok(script) => {
                    let unreadable = |e: redis::ParsingError| StoreError::Corrupt(format!("bid pipeline: {e}"));
                    let text: String = redis::from_redis_value(script).map_err(unreadable)?;
                    let replicas: i64 = redis::from_redis_value(wait.extract_error()?).map_err(unreadable)?;
                    return Ok((text, replicas));
                }
            }
        }
        Err(StoreError::Corrupt("the bid script could not be loaded".to_owned()))
    }
}

/// The outcome the script answered with. A plain bid's event carries no next minimum, so it is
/// worked out under `rules` and `max_bid` (the price after the bid is the bid's own amount).
fn decode_outcome(text: &str, rules: &BidRules, max_bid: Amount) -> Result<BidOutcome, StoreError> {
    let plain = |amount: Amount, seq: u64, end_ms: i64, prev_end_ms: i64, placed_us: i64| {
        BidOutcome::Accepted(Accepted {
            amount,
            seq,
            end_ms,
            prev_end_ms,
            placed_us,
            leading: true,
            current: amount,
            min_next: rules.min_next_bid_up_to(amount, Some(amount), max_bid),
            your_max: None,
            bought_now: false,
            shows_prices: false,
            created_ms: None,
        })
    };
    let verdict = serde_json::from_str::<Verdict>(text);
    if let Ok(verdict) = verdict {
        return Ok(match verdict {
            Verdict::Bid(bid) => plain(bid.amount, bid.seq, bid.end_ms, bid.prev_end_ms, bid.placed_us),
            Verdict::Accepted(a) => BidOutcome::Accepted(Accepted {
                amount: a.amount,
                seq: a.seq,
                end_ms: a.end_ms,
                prev_end_ms: a.prev_end_ms,
                placed_us: a.placed_us,
                leading: a.leading,
                current: a.current,
                min_next: a.min_next,
                your_max: a.your_max,
                bought_now: a.bought_now,
                shows_prices: true,
                created_ms: a.created_ms,
            }),
            Verdict::Rejected { reason, current, min_next } => BidOutcome::Rejected { reason, current, min_next },
            Verdict::StaleRules { rules_v } => BidOutcome::StaleRules { applied: rules_v },
        });
    }
    // Unreadable as either: the error names what is wrong but not the text, which may hold the
    // bidder's max (errors are logged).
    decode_v1_outcome(text, plain).map_err(|_| {
        let why = verdict.err().map(|e| e.to_string()).unwrap_or_default();
        StoreError::Corrupt(format!("unreadable bid outcome: {why}"))
    })
}

/// Outcomes stored before the one event format (`{"r":"accepted",...}`), which a retry of a bid
/// placed before the upgrade still replays.
fn decode_v1_outcome(
    text: &str,
    plain: impl Fn(Amount, u64, i64, i64, i64) -> BidOutcome,
) -> Result<BidOutcome, StoreError> {
    #[derive(Deserialize)]
    #[serde(tag = "r", rename_all = "snake_case")]
    enum V1 {
        Accepted { amount: String, seq: String, end_ms: String, prev_end_ms: String, placed_us: String },
        Rejected { reason: RejectReason, current: Option<String>, min_next: Option<String> },
    }
    let corrupt = || StoreError::Corrupt(format!("bid outcome: {text}"));
    let int = |s: &str| s.parse::<i64>().map_err(|_| corrupt());
    let amount = |s: &str| Amount::from_cents(int(s)?).ok_or_else(corrupt);
    Ok(match serde_json::from_str::<V1>(text).map_err(|_| corrupt())? {
        V1::Accepted { amount: a, seq, end_ms, prev_end_ms, placed_us } => {
            plain(amount(&a)?, seq.parse().map_err(|_| corrupt())?, int(&end_ms)?, int(&prev_end_ms)?, int(&placed_us)?)
        }
        V1::Rejected { reason, current, min_next } => BidOutcome::Rejected {
            reason,
            current: current.as_deref().map(amount).transpose()?,
            min_next: min_next.as_deref().map(amount).transpose()?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cents(c: i64) -> Amount {
        Amount::from_cents(c).unwrap()
    }

    fn decode(text: &str) -> Result<BidOutcome, StoreError> {
        decode_outcome(text, &BidRules::default(), Amount::MAX)
    }

    #[test]
    fn outcomes_of_every_format() {
        let accepted = r#"{"type":"bid","auction_id":"a","seq":"2","bid_id":"b","bidder":"u","amount":"150",
            "bid_count":"2","placed_us":"1000001","end_ms":"9000","prev_end_ms":"8000"}"#;
        let expected = BidOutcome::Accepted(Accepted {
            amount: cents(150),
            seq: 2,
            end_ms: 9000,
            prev_end_ms: 8000,
            placed_us: 1_000_001,
            leading: true,
            current: cents(150),
            // 1.50 is in the band of 0.25 from 1.00.
            min_next: Some(cents(175)),
            your_max: None,
            bought_now: false,
            shows_prices: false,
            created_ms: None,
        });
        assert_eq!(decode(accepted).unwrap(), expected);
        let old =
            r#"{"r":"accepted","amount":"150","seq":"2","end_ms":"9000","prev_end_ms":"8000","placed_us":"1000001"}"#;
        assert_eq!(decode(old).unwrap(), expected);
        let old_rejected = r#"{"r":"rejected","reason":"auction_ended"}"#;
        assert_eq!(
            decode(old_rejected).unwrap(),
            BidOutcome::Rejected { reason: RejectReason::AuctionEnded, current: None, min_next: None }
        );
        assert!(decode(r#"{"type":"bid"}"#).is_err());
    }

    #[test]
    fn proxy_outcomes() {
        let beaten = r#"{"type":"accepted","seq":"3","amount":"2000","current":"2050","min_next":"2100",
            "leading":"0","end_ms":"9000","prev_end_ms":"9000","placed_us":"1000001"}"#;
        let BidOutcome::Accepted(beaten) = decode(beaten).unwrap() else { panic!("not accepted") };
        assert_eq!(
            (beaten.leading, beaten.amount, beaten.current, beaten.min_next, beaten.your_max, beaten.shows_prices),
            (false, cents(2000), cents(2050), Some(cents(2100)), None, true)
        );
        let bought = r#"{"type":"accepted","seq":"3","amount":"9000","current":"9000","leading":"1",
            "bought_now":"1","end_ms":"5000","prev_end_ms":"9000","placed_us":"5000001","created_ms":"17"}"#;
        let BidOutcome::Accepted(bought) = decode(bought).unwrap() else { panic!("not accepted") };
        assert!(bought.bought_now && bought.leading);
        assert_eq!((bought.min_next, bought.created_ms), (None, Some(17)));
        assert!(decode(r#"{"type":"accepted","seq":"3","leading":"2"}"#).is_err());
    }
}
