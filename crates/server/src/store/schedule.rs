//! The lifecycle's Redis side: the leader lease and its fencing epoch, the deadline index, and
//! `advance.lua`, the scheduler's one fenced transition.

use std::sync::LazyLock;

use auction_proto::{AuctionId, AuctionStatus};
use redis::{AsyncCommands, Script};

use super::event::{Event, Live};
use super::{Store, StoreError};

static LEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lease.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("release.lua")));
static ADVANCE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("advance.lua")));

/// The answer of the lease script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    /// Whether the caller holds the lease now.
    pub held: bool,
    /// The holder's fencing epoch.
    pub epoch: u64,
    pub holder: String,
    pub ms_left: i64,
    /// When the lease runs out, in the Redis time of the node that holds it.
    pub until_ms: i64,
}

impl LeaseState {
    /// The lease value `release.lua` compares with.
    pub fn token(instance: &str, epoch: u64) -> String {
        format!("{instance}|{epoch}")
    }

    /// What the holder shows `advance.lua`: its epoch, and the end of its lease less `margin`,
    /// the most the clocks of two Redis nodes are allowed to disagree by.
    pub fn fence(&self, margin: std::time::Duration) -> Fence {
        let margin_ms = i64::try_from(margin.as_millis()).unwrap_or(i64::MAX);
        Fence { epoch: self.epoch, until_ms: self.until_ms.saturating_sub(margin_ms) }
    }
}

/// A leader's proof to `advance.lua`: refused once Redis time passes `until_ms`, or when a newer
/// epoch has acted on the auction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    pub epoch: u64,
    pub until_ms: i64,
}

/// The scheduler's transition, as `advance.lua` decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Advance {
    /// The caller is not the current leader (or an older epoch already acted): nothing changed.
    Fenced,
    Missing,
    /// Ended or cancelled before: nothing to do.
    Final,
    /// Nothing due yet; the next deadline.
    Wait {
        next_ms: i64,
    },
    /// The transition made: a `Started` or an `Ended` event, as logged and published.
    Moved(Event),
}

impl Store {
    /// Takes or renews the leader lease for `instance` (see `lease.lua`).
    pub async fn lease(&self, instance: &str, ttl_ms: u64, held_epoch: u64) -> Result<LeaseState, StoreError> {
        let mut conn = self.conn.clone();
        let (held, epoch, holder, ms_left, until_ms): (i64, String, String, i64, i64) = self
            .bounded(
                LEASE
                    .key(self.keys.lease())
                    .key(self.keys.lease_epoch())
                    .arg(instance)
                    .arg(ttl_ms)
                    .arg(held_epoch)
                    .invoke_async(&mut conn),
            )
            .await?;
        let epoch = epoch.parse().map_err(|_| StoreError::Corrupt(format!("lease epoch {epoch:?}")))?;
        Ok(LeaseState { held: held == 1, epoch, holder, ms_left, until_ms })
    }

    /// Gives up the lease if `token` still holds it; true if it did.
    pub async fn release(&self, token: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let released: i64 = self.bounded(RELEASE.key(self.keys.lease()).arg(token).invoke_async(&mut conn)).await?;
        Ok(released == 1)
    }

    /// The current lease holder, its epoch and the ms left, or `None` when nobody holds it (the
    /// epoch is then the last one handed out).
    pub async fn leader(&self) -> Result<(Option<String>, u64, i64), StoreError> {
        let mut conn = self.conn.clone();
        let (value, ttl, last_epoch): (Option<String>, i64, Option<u64>) = self
            .bounded(
                redis::pipe()
                    .get(self.keys.lease())
                    .pttl(self.keys.lease())
                    .get(self.keys.lease_epoch())
                    .query_async(&mut conn),
            )
            .await?;
        match value.as_deref().and_then(|v| v.split_once('|')) {
            Some((holder, epoch)) => {
                let epoch = epoch.parse().map_err(|_| StoreError::Corrupt(format!("lease {value:?}")))?;
                Ok((Some(holder.to_owned()), epoch, ttl.max(0)))
            }
            None => Ok((None, last_epoch.unwrap_or(0), 0)),
        }
    }

    /// Runs the scheduler's fenced transition on one auction; after a start or an end, moves the
    /// auction's status index entry (a failure there is logged: readers move entries left behind).
    pub async fn advance(&self, id: &AuctionId, fence: Fence) -> Result<Advance, StoreError> {
        let keys = self.keys.auction(id);
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self
            .bounded(
                ADVANCE
                    .key(&keys.state)
                    .key(&keys.log)
                    .arg(id.as_str())
                    .arg(fence.epoch)
                    .arg(fence.until_ms)
                    .arg(&keys.live)
                    .arg(self.topology.publish_command())
                    .invoke_async(&mut conn),
            )
            .await?;
        let corrupt = || StoreError::Corrupt(format!("advance reply {reply:?}"));
        Ok(match (reply.first().map(String::as_str), reply.get(1)) {
            (Some("fenced"), _) => Advance::Fenced,
            (Some("missing"), _) => Advance::Missing,
            (Some("final"), _) => Advance::Final,
            (Some("wait"), Some(ms)) => Advance::Wait { next_ms: ms.parse().map_err(|_| corrupt())? },
            (Some("event"), Some(text)) => {
                let event = Event::decode(text)?;
                let created_ms = reply.get(2).and_then(|ms| ms.parse().ok()).ok_or_else(corrupt)?;
                let status = match &event {
                    Event::Started(_) => Some(AuctionStatus::Active),
                    Event::Ended(_) => Some(AuctionStatus::Ended),
                    _ => None,
                };
                if let Some(status) = status {
                    self.index_status_or_warn(id, status, created_ms).await;
                }
                Advance::Moved(event)
            }
            _ => return Err(corrupt()),
        })
    }

    /// Makes the scheduler look at the auction no later than `at_ms` (`ZADD LT`): an earlier
    /// deadline already there stays, and a look too early only finds nothing due yet.
    pub async fn schedule_by(&self, id: &AuctionId, at_ms: i64) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let options = redis::SortedSetAddOptions::add_or_update(Some(redis::UpdateCheck::LT));
        let _: () = self.bounded(conn.zadd_options(self.keys.deadlines(), id.as_str(), at_ms, &options)).await?;
        Ok(())
    }

    /// Sets the auction's next deadline in the scheduler's index.
    pub async fn schedule(&self, id: &AuctionId, at_ms: i64) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: () = self.bounded(conn.zadd(self.keys.deadlines(), id.as_str(), at_ms)).await?;
        Ok(())
    }

    /// Removes the auction from the scheduler's index.
    pub async fn unschedule(&self, id: &AuctionId) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: () = self.bounded(conn.zrem(self.keys.deadlines(), id.as_str())).await?;
        Ok(())
    }

    /// Up to `limit` auctions whose deadline is at or before `now_ms`, earliest first.
    pub async fn due(&self, now_ms: i64, limit: isize) -> Result<Vec<AuctionId>, StoreError> {
        let mut conn = self.conn.clone();
        let ids: Vec<String> =
            self.bounded(conn.zrangebyscore_limit(self.keys.deadlines(), "-inf", now_ms, 0, limit)).await?;
        Ok(ids.iter().filter_map(|id| AuctionId::parse(id).ok()).collect())
    }

    /// The `count` earliest deadlines in the index, in ms, earliest first.
    pub async fn next_deadlines(&self, count: usize) -> Result<Vec<(AuctionId, i64)>, StoreError> {
        let mut conn = self.conn.clone();
        let last = isize::try_from(count).unwrap_or(isize::MAX).saturating_sub(1);
        let head: Vec<(String, f64)> = self.bounded(conn.zrange_withscores(self.keys.deadlines(), 0, last)).await?;
        #[allow(clippy::cast_possible_truncation)]
        Ok(head.into_iter().filter_map(|(id, score)| Some((AuctionId::parse(&id).ok()?, score as i64))).collect())
    }

    /// Wakes the leader's scheduler on whichever instance it runs.
    pub async fn announce_deadline(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 =
            self.bounded(self.publish(&mut conn, &self.keys.deadline_channel(), &Live::Deadline.encode())).await?;
        Ok(())
    }
}
