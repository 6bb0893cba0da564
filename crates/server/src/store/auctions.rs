//! Auctions: creating one, reading one with Redis time, listing them, and an operator's change.

use std::sync::LazyLock;

use auction_proto::{Amount, AuctionId, AuctionStatus};
use redis::{AsyncCommands, Script};

use super::event::Event;
use super::{RECENT_BIDS, Store, StoreError, StoredAuction};

static SNAPSHOT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("snapshot.lua")));
static CREATE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("create.lua")));
static CHANGE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("change.lua")));

/// A new auction's settings, already validated.
pub struct NewAuction<'a> {
    pub id: &'a AuctionId,
    pub title: &'a str,
    pub start_ms: i64,
    pub end_ms: i64,
    pub starting_bid: Amount,
    pub extension_window_s: u32,
    pub extension_s: u32,
}

/// An operator's change to a live auction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeRequest {
    Extend { seconds: u32 },
    Cancel,
}

/// What `change.lua` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeOutcome {
    Missing,
    /// The auction is already `ended` or `cancelled` (the status is given).
    Conflict(AuctionStatus),
    /// The change made: an `Extended` or a `Cancelled` event, as logged and published.
    Changed(Event),
}

impl Store {
    /// Reads an auction with Redis time; `None` if it does not exist.
    pub async fn load(&self, id: &AuctionId) -> Result<Option<StoredAuction>, StoreError> {
        let keys = self.keys.auction(id);
        let mut conn = self.conn.clone();
        let reply: Vec<redis::Value> =
            self.bounded(SNAPSHOT.key(&keys.state).key(&keys.recent).arg(RECENT_BIDS).invoke_async(&mut conn)).await?;
        if reply.is_empty() {
            return Ok(None);
        }
        let (time, fields, recent): (Vec<String>, Vec<(String, String)>, Vec<String>) =
            redis::from_redis_value(redis::Value::Array(reply))
                .map_err(|e| StoreError::Corrupt(format!("snapshot reply: {e}")))?;
        StoredAuction::parse(&time, fields, &recent).map(Some)
    }

    /// Creates an auction and indexes it for the list; its creation event, or `None` if the id is
    /// already taken.
    pub async fn create(&self, auction: &NewAuction<'_>) -> Result<Option<Event>, StoreError> {
        let keys = self.keys.auction(auction.id);
        let mut conn = self.conn.clone();
        let text: String = self
            .bounded(
                CREATE
                    .key(&keys.state)
                    .key(&keys.log)
                    .arg(auction.id.as_str())
                    .arg(auction.title)
                    .arg(auction.start_ms)
                    .arg(auction.end_ms)
                    .arg(auction.starting_bid.cents())
                    .arg(auction.extension_window_s)
                    .arg(auction.extension_s)
                    .invoke_async(&mut conn),
            )
            .await?;
        if text.is_empty() {
            return Ok(None);
        }
        let event = Event::decode(&text)?;
        let Event::Created(created) = &event else {
            return Err(StoreError::Corrupt(format!("create answered {text}")));
        };
        let _: () = self.bounded(conn.zadd(self.keys.index(), auction.id.as_str(), created.created_ms)).await?;
        Ok(Some(event))
    }

    /// The newest `limit` auction ids, newest first.
    pub async fn recent_ids(&self, limit: usize) -> Result<Vec<AuctionId>, StoreError> {
        let mut conn = self.conn.clone();
        let stop = isize::try_from(limit).unwrap_or(isize::MAX).saturating_sub(1);
        let ids: Vec<String> = self.bounded(conn.zrevrange(self.keys.index(), 0, stop)).await?;
        ids.iter()
            .map(|id| AuctionId::parse(id).map_err(|e| StoreError::Corrupt(format!("auction index: {e}"))))
            .collect()
    }

    /// Extends or cancels an auction (see `change.lua`).
    pub async fn change(&self, id: &AuctionId, request: ChangeRequest) -> Result<ChangeOutcome, StoreError> {
        let keys = self.keys.auction(id);
        let (action, seconds) = match request {
            ChangeRequest::Extend { seconds } => ("extend", seconds),
            ChangeRequest::Cancel => ("cancel", 0),
        };
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self
            .bounded(
                CHANGE
                    .key(&keys.state)
                    .key(&keys.log)
                    .arg(id.as_str())
                    .arg(action)
                    .arg(seconds)
                    .arg(&keys.live)
                    .arg(self.topology.publish_command())
                    .invoke_async(&mut conn),
            )
            .await?;
        let corrupt = || StoreError::Corrupt(format!("change reply {reply:?}"));
        Ok(match (reply.first().map(String::as_str), reply.get(1)) {
            (Some("missing"), _) => ChangeOutcome::Missing,
            (Some("conflict"), Some(status)) => ChangeOutcome::Conflict(status.parse().map_err(|_| corrupt())?),
            (Some("event"), Some(text)) => ChangeOutcome::Changed(Event::decode(text)?),
            _ => return Err(corrupt()),
        })
    }
}
