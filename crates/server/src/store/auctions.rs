//! Auctions: creating one, reading one with Redis time, listing them, and an operator's change.

use std::sync::LazyLock;
use std::time::Duration;

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
    /// The Idempotency-Key and the request's fingerprint, when the client sent a key.
    pub idempotency: Option<(&'a str, &'a str)>,
    /// The seller's hidden reserve (above the starting bid), if any.
    pub reserve: Option<Amount>,
    /// The buy-it-now price (above the starting bid, at or above the reserve), if any.
    pub buy_now: Option<Amount>,
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

/// What `create.lua` did (see [`Store::create`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateOutcome {
    /// Created: its creation event.
    Created(Event),
    /// The auction this Idempotency-Key created before, from the same request.
    Replay,
    /// The auction this Idempotency-Key created before, from another request.
    Mismatch,
    /// The id is taken by another auction.
    Taken,
    /// The create's window passed before the script ran: nothing was created.
    Late,
}

/// How an existing auction was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedWith {
    /// Its Idempotency-Key, if it had one.
    pub key: Option<String>,
    /// The fingerprint of the request that created it, if it had a key.
    pub fingerprint: Option<String>,
}

/// A list call's auctions, and how many it loaded to find them.
#[derive(Debug)]
pub struct Listed {
    pub auctions: Vec<StoredAuction>,
    pub loaded: usize,
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

    /// Creates an auction in an order that leaves, after a failure at any step, either nothing a
    /// client can see or a complete auction, never one that takes bids but is never ended. The
    /// global entries come first (the analytics work index's among them), since on a cluster they
    /// live in other slots than the auction and no one script can write both: the scheduler's
    /// deadline entry (a placeholder past the end of the create's window, so that the scheduler
    /// cannot find it before the auction either exists or never will, and drops it then; raised
    /// only, never lowered, by a retry), the list and status index entries (readers skip an entry
    /// whose auction does not exist); then `create.lua` in the auction's slot, refused once
    /// its window has passed; last, the deadline moves to the start itself, which only makes the
    /// scheduler look sooner. Each step is idempotent, so a retry with the same Idempotency-Key
    /// repeats them harmlessly. `now_ms` is the Redis time the caller read for the request.
    pub async fn create(&self, auction: &NewAuction<'_>, now_ms: i64) -> Result<CreateOutcome, StoreError> {
        let window_ms = i64::try_from(self.create_window().as_millis()).unwrap_or(i64::MAX);
        let create_by = now_ms.saturating_add(window_ms);
        let placeholder = auction.start_ms.max(create_by.saturating_add(window_ms));
        // The analytics work index first, so that no auction exists outside it.
        self.mark_work(auction.id, now_ms).await?;
        // `GT`: an entry left by an earlier attempt with this key must not bring the scheduler's
        // look inside this attempt's window.
        let mut conn = self.conn.clone();
        let later_only = redis::SortedSetAddOptions::add_or_update(Some(redis::UpdateCheck::GT));
        let (): () = self
            .bounded(conn.zadd_options(self.keys.deadlines(), auction.id.as_str(), placeholder, &later_only))
            .await?;
        let status = if auction.start_ms > now_ms { AuctionStatus::Scheduled } else { AuctionStatus::Active };
        let mut other = self.conn.clone();
        // `NX`: a retry keeps the first attempt's place in the list.
        let only_new = redis::SortedSetAddOptions::add_only();
        let (listed, indexed) = tokio::join!(
            self.bounded(conn.zadd_options::<_, _, _, ()>(self.keys.index(), auction.id.as_str(), now_ms, &only_new)),
            self.bounded(other.zadd_options::<_, _, _, ()>(
                self.keys.status_index(status),
                auction.id.as_str(),
                now_ms,
                &only_new
            )),
        );
        listed?;
        indexed?;
        let keys = self.keys.auction(auction.id);
        let (key, fingerprint) = auction.idempotency.unwrap_or(("", ""));
        let reply: Vec<String> = self
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
                    .arg(now_ms)
                    .arg(create_by)
                    .arg(key)
                    .arg(fingerprint)
                    .arg(auction.reserve.map(|r| r.cents().to_string()).unwrap_or_default())
                    .arg(auction.buy_now.map(|n| n.cents().to_string()).unwrap_or_default())
                    .invoke_async(&mut conn),
            )
            .await?;
        let outcome = match (reply.first().map(String::as_str), reply.get(1)) {
            (Some("created"), Some(text)) => CreateOutcome::Created(Event::decode(text)?),
            (Some("replay"), _) => CreateOutcome::Replay,
            (Some("mismatch"), _) => CreateOutcome::Mismatch,
            (Some("taken"), _) => CreateOutcome::Taken,
            (Some("late"), _) => CreateOutcome::Late,
            _ => return Err(StoreError::Corrupt(format!("create reply {reply:?}"))),
        };
        // After a replay too: a concurrent attempt's placeholder may have come after the first's
        // move to the start.
        if let CreateOutcome::Created(_) | CreateOutcome::Replay = outcome
            && auction.start_ms < placeholder
            && let Err(e) = self.schedule_by(auction.id, auction.start_ms).await
        {
            // The placeholder stands: the start's transition comes that much late, and status,
            // derived from Redis time, is right meanwhile.
            tracing::warn!(auction = %auction.id, error = %e, "cannot move the deadline to the start; it is kept at the create window's end");
        }
        Ok(outcome)
    }

    /// How long after the caller read Redis time `create.lua` may still create: the create's
    /// three calls may each take the store's timeout, and at least 5 s.
    pub(super) fn create_window(&self) -> Duration {
        (self.timeout * 3).max(Duration::from_secs(5))
    }

    /// The Idempotency-Key and request fingerprint stored with auction `id`, if it exists:
    /// `Some((None, None))` for an auction created without a key.
    pub async fn created_with(&self, id: &AuctionId) -> Result<Option<CreatedWith>, StoreError> {
        let mut conn = self.conn.clone();
        let (found, key, fingerprint): (Option<String>, Option<String>, Option<String>) = self
            .bounded(
                redis::cmd("HMGET")
                    .arg(self.keys.auction(id).state)
                    .arg(&["id", "idem_key", "request"])
                    .query_async(&mut conn),
            )
            .await?;
        Ok(found.map(|_| CreatedWith { key, fingerprint }))
    }

    /// The newest `limit` auction ids, newest first.
    pub async fn recent_ids(&self, limit: usize) -> Result<Vec<AuctionId>, StoreError> {
        self.index_page(&self.keys.index(), 0, limit).await
    }

    /// Ids `offset..offset + count` of an index, newest first.
    async fn index_page(&self, index: &str, offset: usize, count: usize) -> Result<Vec<AuctionId>, StoreError> {
        let mut conn = self.conn.clone();
        let start = isize::try_from(offset).unwrap_or(isize::MAX);
        let stop = start.saturating_add(isize::try_from(count).unwrap_or(isize::MAX)).saturating_sub(1);
        let ids: Vec<String> = self.bounded(conn.zrevrange(index, start, stop)).await?;
        ids.iter()
            .map(|id| AuctionId::parse(id).map_err(|e| StoreError::Corrupt(format!("auction index {index}: {e}"))))
            .collect()
    }

    /// The newest `limit` auctions, newest first, read with Redis time; with a status, only those
    /// in it. Without one, the list index's newest `limit` entries are loaded. With one, that
    /// status's index is read a page at a time and each auction kept if its status (by Redis
    /// time) is still the one asked for; an entry found behind its auction's status is moved to
    /// where it belongs. At most `4 * limit + 16` auctions are loaded, so a status's index full
    /// of entries left behind costs a bounded call, and leaves it lighter for the next.
    pub async fn list(&self, status: Option<AuctionStatus>, limit: usize) -> Result<Listed, StoreError> {
        let Some(status) = status else {
            let ids = self.recent_ids(limit).await?;
            let auctions = self.load_many(&ids).await?.into_iter().flatten().collect();
            return Ok(Listed { auctions, loaded: ids.len() });
        };
        let index = self.keys.status_index(status);
        let budget = limit.saturating_mul(4).saturating_add(16);
        let (mut found, mut behind, mut offset) = (Vec::new(), Vec::new(), 0);
        while found.len() < limit && offset < budget {
            let want = (limit - found.len()).max(8).min(budget - offset);
            let ids = self.index_page(&index, offset, want).await?;
            offset += ids.len();
            for record in self.load_many(&ids).await?.into_iter().flatten() {
                if record.status() == status {
                    if found.len() < limit {
                        found.push(record);
                    }
                } else {
                    behind.push(record);
                }
            }
            if ids.len() < want {
                break;
            }
        }
        // Moved only now, since moving them while paging would shift the pages. Only out of this
        // index and into the one of the status read: a move of the scheduler's may have come
        // since, and the entry this adds is then one more left behind, not one lost.
        for record in behind {
            if let Err(e) = self.move_status(&record.id, status, record.status(), record.created_ms).await {
                tracing::warn!(auction = %record.id, error = %e, "status index entry not moved");
            }
        }
        Ok(Listed { auctions: found, loaded: offset })
    }

    /// Loads auctions concurrently (pipelined on the one connection); `None` for one that does
    /// not exist.
    async fn load_many(&self, ids: &[AuctionId]) -> Result<Vec<Option<StoredAuction>>, StoreError> {
        futures_util::future::join_all(ids.iter().map(|id| self.load(id))).await.into_iter().collect()
    }

    /// Records that auction `id` (created at `created_ms`) is in `status`: added to that status's
    /// index and taken out of the others. Idempotent, and called after the change itself (the
    /// indexes live in other slots than the auction), so a failure only leaves the entry behind
    /// until a reader or the next transition moves it.
    pub async fn index_status(&self, id: &AuctionId, status: AuctionStatus, created_ms: i64) -> Result<(), StoreError> {
        let moves = self.keys.status_indexes().map(|(each, index)| {
            let mut conn = self.conn.clone();
            async move {
                if each == status {
                    self.bounded(conn.zadd::<_, _, _, ()>(index, id.as_str(), created_ms)).await
                } else {
                    self.bounded(conn.zrem::<_, _, ()>(index, id.as_str())).await
                }
            }
        });
        futures_util::future::join_all(moves).await.into_iter().collect()
    }

    /// Moves auction `id`'s entry from status index `from` to that of `to`.
    async fn move_status(
        &self,
        id: &AuctionId,
        from: AuctionStatus,
        to: AuctionStatus,
        created_ms: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: () = self.bounded(conn.zadd(self.keys.status_index(to), id.as_str(), created_ms)).await?;
        let _: () = self.bounded(conn.zrem(self.keys.status_index(from), id.as_str())).await?;
        Ok(())
    }

    /// [`Store::index_status`], with a failure logged: the change it follows is made, and the
    /// entry left behind is moved by the next reader that finds it.
    pub async fn index_status_or_warn(&self, id: &AuctionId, status: AuctionStatus, created_ms: i64) {
        if let Err(e) = self.index_status(id, status, created_ms).await {
            tracing::warn!(auction = %id, status = status.as_str(), error = %e, "status index not updated; a reader will move the entry");
        }
    }

    /// Fills the status indexes from the list index's newest `limit` auctions, once per
    /// deployment (a marker key says it is done): auctions created before the status indexes
    /// existed have no entry in them. Several instances may run it at once; every write is
    /// idempotent. Returns how many auctions it indexed, or `None` if it was done already.
    pub async fn backfill_status_indexes(&self, limit: usize) -> Result<Option<usize>, StoreError> {
        let mut conn = self.conn.clone();
        let done: bool = self.bounded(conn.exists(self.keys.status_indexes_ready())).await?;
        if done {
            return Ok(None);
        }
        let ids = self.recent_ids(limit).await?;
        let mut indexed = 0;
        for chunk in ids.chunks(256) {
            for record in self.load_many(chunk).await?.into_iter().flatten() {
                self.index_status(&record.id, record.status(), record.created_ms).await?;
                indexed += 1;
            }
        }
        let _: () = self.bounded(conn.set(self.keys.status_indexes_ready(), "1")).await?;
        Ok(Some(indexed))
    }

    /// Extends or cancels an auction (see `change.lua`); a cancel also moves the auction's status
    /// index entry (a failure there is logged: readers move entries left behind).
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
            (Some("event"), Some(text)) => {
                let event = Event::decode(text)?;
                if let Event::Cancelled(_) = event {
                    let created_ms = reply.get(2).and_then(|ms| ms.parse().ok()).ok_or_else(corrupt)?;
                    self.index_status_or_warn(id, AuctionStatus::Cancelled, created_ms).await;
                }
                ChangeOutcome::Changed(event)
            }
            _ => return Err(corrupt()),
        })
    }
}
