//! An auction as stored in its Redis hash, read together with Redis time, and the wire shapes
//! derived from it.

use std::collections::HashMap;

use auction_proto::rest::Auction;
use auction_proto::ws::{RecentBid, Snapshot};
use auction_proto::{Amount, AuctionId, AuctionStatus, BidRules, UserId};
use chrono::{DateTime, Utc};

use super::StoreError;
use super::event::RecentEntry;

/// The lifecycle state written in the hash. The scheduler moves `Open` to `Active` and then to
/// `Ended`, but status is always derived with Redis time too (`Open` past its start is active,
/// anything past its close is ended), so bidding is right even while no scheduler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredState {
    Open,
    Active,
    Ended,
    Cancelled,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StoredAuction {
    pub id: AuctionId,
    pub title: String,
    pub state: StoredState,
    pub start_ms: i64,
    pub end_ms: i64,
    pub starting_bid: Amount,
    pub current_bid: Option<Amount>,
    /// The leader.
    pub bidder: Option<UserId>,
    /// The leader's max (secret: shown only to the leader); the price for bids from before maxes
    /// existed, `None` before the first bid and for auctions read from MySQL.
    pub max: Option<Amount>,
    /// The seller's reserve (secret: shown only to the operator), if any.
    pub reserve: Option<Amount>,
    /// The buy-it-now price, if any (shown while it is available).
    pub buy_now: Option<Amount>,
    pub seq: u64,
    pub bid_count: u64,
    pub extension_window_s: u32,
    pub extension_s: u32,
    pub created_ms: i64,
    /// Redis time when the record was read, in microseconds.
    pub now_us: i64,
    /// Newest first.
    pub recent: Vec<RecentBid>,
}

pub fn ms_to_time(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Corrupt(format!("time {ms} ms")))
}

pub fn us_to_time(us: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_micros(us).ok_or_else(|| StoreError::Corrupt(format!("time {us} us")))
}

impl StoredAuction {
    /// Builds a record from the snapshot script's reply.
    pub fn parse(time: &[String], fields: Vec<(String, String)>, recent: &[String]) -> Result<Self, StoreError> {
        let corrupt = |what: &str| StoreError::Corrupt(format!("auction {what}"));
        let fields: HashMap<String, String> = fields.into_iter().collect();
        let get = |name: &str| fields.get(name).map(String::as_str).ok_or_else(|| corrupt(name));
        let int = |name: &str| get(name)?.parse::<i64>().map_err(|_| corrupt(name));
        let optional = |name: &str| fields.get(name).filter(|v| !v.is_empty());
        let (secs, micros) = match time {
            [s, u] => (s.parse::<i64>().map_err(|_| corrupt("time"))?, u.parse::<i64>().map_err(|_| corrupt("time"))?),
            _ => return Err(corrupt("time")),
        };
        let id = AuctionId::parse(get("id")?).map_err(|_| corrupt("id"))?;
        let amount = |name: &str| {
            optional(name).map(|v| v.parse().ok().and_then(Amount::from_cents).ok_or_else(|| corrupt(name))).transpose()
        };
        let current_bid = amount("current_bid")?;
        Ok(StoredAuction {
            title: get("title")?.to_owned(),
            state: match get("state")? {
                "open" => StoredState::Open,
                "active" => StoredState::Active,
                "ended" => StoredState::Ended,
                "cancelled" => StoredState::Cancelled,
                _ => return Err(corrupt("state")),
            },
            start_ms: int("start_ms")?,
            end_ms: int("end_ms")?,
            starting_bid: Amount::from_cents(int("starting_bid")?).ok_or_else(|| corrupt("starting_bid"))?,
            max: amount("max")?.or(current_bid),
            current_bid,
            bidder: optional("bidder").map(|v| UserId::parse(v).map_err(|_| corrupt("bidder"))).transpose()?,
            reserve: amount("reserve")?,
            buy_now: amount("buy_now")?,
            seq: u64::try_from(int("seq")?).map_err(|_| corrupt("seq"))?,
            bid_count: u64::try_from(int("bid_count")?).map_err(|_| corrupt("bid_count"))?,
            extension_window_s: u32::try_from(int("ext_window_s")?).map_err(|_| corrupt("ext_window_s"))?,
            extension_s: u32::try_from(int("ext_s")?).map_err(|_| corrupt("ext_s"))?,
            created_ms: int("created_ms")?,
            now_us: secs * 1_000_000 + micros,
            recent: recent.iter().map(|text| parse_recent(text)).collect::<Result<_, _>>()?,
            id,
        })
    }

    pub fn now_ms(&self) -> i64 {
        self.now_us / 1000
    }

    /// The status at the record's Redis time.
    pub fn status(&self) -> AuctionStatus {
        match self.state {
            StoredState::Cancelled => AuctionStatus::Cancelled,
            StoredState::Ended => AuctionStatus::Ended,
            StoredState::Open if self.now_ms() < self.start_ms => AuctionStatus::Scheduled,
            StoredState::Open | StoredState::Active if self.now_ms() < self.end_ms => AuctionStatus::Active,
            StoredState::Open | StoredState::Active => AuctionStatus::Ended,
        }
    }

    /// The deadline the scheduler must act on next: the start while the auction has not been
    /// marked started, else the close; `None` once it is ended or cancelled.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        match self.state {
            StoredState::Open => Some(self.start_ms),
            StoredState::Active => Some(self.end_ms),
            StoredState::Ended | StoredState::Cancelled => None,
        }
    }

    /// Whether the price has reached the reserve; `None` without a reserve.
    pub fn reserve_met(&self) -> Option<bool> {
        self.reserve.map(|reserve| self.current_bid.is_some_and(|price| price >= reserve))
    }

    /// The buy-it-now price while it is available: the auction is scheduled or active, and has no
    /// bid yet or, with a reserve, a price below it.
    pub fn buy_now_available(&self) -> Option<Amount> {
        let open = matches!(self.status(), AuctionStatus::Scheduled | AuctionStatus::Active);
        let priced_below = match (self.current_bid, self.reserve) {
            (None, _) => true,
            (Some(price), Some(reserve)) => price < reserve,
            (Some(_), None) => false,
        };
        self.buy_now.filter(|_| open && priced_below)
    }

    /// The winner and the final price once ended: the leader and the price, unless a reserve was
    /// not met.
    fn result(&self) -> (Option<UserId>, Option<Amount>) {
        if self.status() != AuctionStatus::Ended || self.reserve_met() == Some(false) {
            return (None, None);
        }
        (self.bidder.clone(), self.current_bid)
    }

    /// The snapshot `user` is shown: [`StoredAuction::snapshot`], with `your_max` when `user`
    /// leads.
    pub fn snapshot_for(&self, user: &UserId, rules: &BidRules, max_bid: Amount) -> Result<Snapshot, StoreError> {
        let mut snapshot = self.snapshot(rules, max_bid)?;
        if self.bidder.as_ref() == Some(user) {
            snapshot.your_max = self.max;
        }
        Ok(snapshot)
    }

    /// The snapshot under increment table `rules`, with no bid above `max_bid` (`MAX_BID`), as
    /// anyone is shown it: no max, no reserve.
    pub fn snapshot(&self, rules: &BidRules, max_bid: Amount) -> Result<Snapshot, StoreError> {
        Ok(Snapshot {
            auction_id: self.id.clone(),
            status: self.status(),
            start_time: ms_to_time(self.start_ms)?,
            end_time: ms_to_time(self.end_ms)?,
            starting_bid: self.starting_bid,
            current_bid: self.current_bid,
            highest_bidder: self.bidder.clone(),
            min_next_bid: rules.shown_min_next_bid(self.starting_bid, self.current_bid, max_bid),
            bid_count: self.bid_count,
            seq: self.seq,
            server_time: us_to_time(self.now_us)?,
            recent_bids: self.recent.clone(),
            reserve_met: self.reserve_met(),
            buy_now_price: self.buy_now_available(),
            your_max: None,
        })
    }

    /// The auction as the REST API shows it to anyone (no reserve: see
    /// [`StoredAuction::to_operator_auction`]).
    pub fn to_auction(&self, rules: &BidRules, max_bid: Amount) -> Result<Auction, StoreError> {
        let snapshot = self.snapshot(rules, max_bid)?;
        let (winner, final_price) = self.result();
        Ok(Auction {
            auction_id: snapshot.auction_id,
            title: self.title.clone(),
            status: snapshot.status,
            start_time: snapshot.start_time,
            end_time: snapshot.end_time,
            starting_bid: snapshot.starting_bid,
            current_bid: snapshot.current_bid,
            highest_bidder: snapshot.highest_bidder,
            min_next_bid: snapshot.min_next_bid,
            bid_count: snapshot.bid_count,
            seq: snapshot.seq,
            server_time: snapshot.server_time,
            recent_bids: snapshot.recent_bids,
            extension_window_s: self.extension_window_s,
            extension_s: self.extension_s,
            reserve_met: snapshot.reserve_met,
            buy_now_price: snapshot.buy_now_price,
            reserve_price: None,
            created_at: ms_to_time(self.created_ms)?,
            winner,
            final_price,
        })
    }

    /// The auction as the operator is shown it: with the reserve.
    pub fn to_operator_auction(&self, rules: &BidRules, max_bid: Amount) -> Result<Auction, StoreError> {
        Ok(Auction { reserve_price: self.reserve, ..self.to_auction(rules, max_bid)? })
    }
}

fn parse_recent(text: &str) -> Result<RecentBid, StoreError> {
    let bid: RecentEntry =
        serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("recent bid {text}: {e}")))?;
    Ok(RecentBid { bidder: bid.bidder, amount: bid.amount, seq: bid.seq, placed_at: us_to_time(bid.placed_us)? })
}
