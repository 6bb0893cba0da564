//! Placing a bid: the bid script and its verdict.

use std::sync::LazyLock;

use auction_proto::{Amount, AuctionId, BidId, RejectReason, UserId};
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
    Accepted {
        amount: Amount,
        seq: u64,
        end_ms: i64,
        prev_end_ms: i64,
        placed_us: i64,
    },
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

impl Store {
    /// Places a bid through the bid script, which also logs and publishes it when accepted. With
    /// `replicated` durability an acceptance is answered only once a replica has it (a retry of
    /// the same bid waits for that again, so its `accepted` is as sure as the first one's).
    pub async fn place_bid(&self, bid: &NewBid<'_>) -> Result<BidOutcome, StoreError> {
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
        if self.durability == Durability::Local {
            let mut invocation = BID.prepare_invoke();
            invocation.key(&script_keys).arg(&args);
            let mut conn = self.conn.clone();
            let text: String = self.bounded(invocation.invoke_async(&mut conn)).await?;
            return decode_outcome(&text);
        }
        let mut eval = redis::cmd("EVALSHA");
        eval.arg(BID.get_hash()).arg(script_keys.len()).arg(&script_keys).arg(&args);
        let (text, replicas) = self.place_and_wait(eval, &keys.state).await?;
        let outcome = decode_outcome(&text)?;
        if replicas < 1 && matches!(outcome, BidOutcome::Accepted { .. }) {
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
                values.try_into().map_err(|v| StoreError::Corrupt(format!("bid pipeline answered {v:?}")))?;
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

fn decode_outcome(text: &str) -> Result<BidOutcome, StoreError> {
    if let Ok(verdict) = serde_json::from_str::<Verdict>(text) {
        return Ok(match verdict {
            Verdict::Bid(bid) => BidOutcome::Accepted {
                amount: bid.amount,
                seq: bid.seq,
                end_ms: bid.end_ms,
                prev_end_ms: bid.prev_end_ms,
                placed_us: bid.placed_us,
            },
            Verdict::Rejected { reason, current, min_next } => BidOutcome::Rejected { reason, current, min_next },
            Verdict::StaleRules { rules_v } => BidOutcome::StaleRules { applied: rules_v },
        });
    }
    decode_v1_outcome(text)
}

/// Outcomes stored before the one event format (`{"r":"accepted",...}`), which a retry of a bid
/// placed before the upgrade still replays.
fn decode_v1_outcome(text: &str) -> Result<BidOutcome, StoreError> {
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
        V1::Accepted { amount: a, seq, end_ms, prev_end_ms, placed_us } => BidOutcome::Accepted {
            amount: amount(&a)?,
            seq: seq.parse().map_err(|_| corrupt())?,
            end_ms: int(&end_ms)?,
            prev_end_ms: int(&prev_end_ms)?,
            placed_us: int(&placed_us)?,
        },
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

    #[test]
    fn outcomes_of_both_formats() {
        let accepted = r#"{"type":"bid","auction_id":"a","seq":"2","bid_id":"b","bidder":"u","amount":"150",
            "bid_count":"2","placed_us":"1000001","end_ms":"9000","prev_end_ms":"8000"}"#;
        let expected = BidOutcome::Accepted {
            amount: Amount::from_cents(150).unwrap(),
            seq: 2,
            end_ms: 9000,
            prev_end_ms: 8000,
            placed_us: 1_000_001,
        };
        assert_eq!(decode_outcome(accepted).unwrap(), expected);
        let old =
            r#"{"r":"accepted","amount":"150","seq":"2","end_ms":"9000","prev_end_ms":"8000","placed_us":"1000001"}"#;
        assert_eq!(decode_outcome(old).unwrap(), expected);
        let old_rejected = r#"{"r":"rejected","reason":"auction_ended"}"#;
        assert_eq!(
            decode_outcome(old_rejected).unwrap(),
            BidOutcome::Rejected { reason: RejectReason::AuctionEnded, current: None, min_next: None }
        );
        assert!(decode_outcome(r#"{"type":"bid"}"#).is_err());
    }
}
