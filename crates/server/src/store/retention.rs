//! Retention: the analytics sweep's work index (the auctions whose logs may still hold entries
//! not yet in MySQL), the retention given to a finished auction's keys once MySQL has all of
//! it (`retire.lua`), and forgetting retired auctions in the global indexes once their keys
//! have expired. Each call touches one slot: the auction's keys in one script, each global
//! sorted set in a command of its own, so the same code runs on a Redis Cluster. Every step is
//! idempotent, and each is ordered so that a failure between two leaves the auction in the work
//! index, where the next sweep finishes the job.

use std::sync::LazyLock;
use std::time::Duration;

use auction_proto::AuctionId;
use redis::{AsyncCommands, Script};

use super::log::GROUP;
use super::{Store, StoreError};

static RETIRE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("retire.lua")));

/// How many ids one command of the seeding or the trimming carries.
const CHUNK: usize = 1000;

/// What `retire.lua` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retire {
    /// The log holds entries not yet written and acknowledged.
    Work,
    /// Nothing to write, but the auction is not over.
    Live,
    /// Over and fully written: its keys expire at this Redis time (ms); it has left the work
    /// index.
    Retired { expires_ms: i64 },
    /// No such auction (any more): it has left the work index.
    Gone,
}

impl Store {
    /// Puts auction `id` in the work index, scored by `at_ms`, the Redis time its create began;
    /// made before the auction is, so that no auction can exist outside it (an id whose creation
    /// then fails is found `Gone` and dropped, once the create's window is over).
    pub async fn mark_work(&self, id: &AuctionId, at_ms: i64) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: i64 = self.bounded(conn.zadd(self.keys.work(), id.as_str(), at_ms)).await?;
        Ok(())
    }

    /// Every auction in the work index. The first call on a deployment that predates the index
    /// seeds it with every auction of the list index, once (see the README's upgrade note).
    pub async fn work_ids(&self) -> Result<Vec<AuctionId>, StoreError> {
        let mut conn = self.conn.clone();
        let seeded: bool = self.bounded(conn.exists(self.keys.work_seeded())).await?;
        if !seeded {
            let all: Vec<String> = self.bounded(conn.zrange(self.keys.index(), 0, -1)).await?;
            for chunk in all.chunks(CHUNK) {
                let members: Vec<(i64, &str)> = chunk.iter().map(|id| (0, id.as_str())).collect();
                let _: i64 = self.bounded(conn.zadd_multiple(self.keys.work(), &members)).await?;
            }
            let _: () = self.bounded(conn.set(self.keys.work_seeded(), 1)).await?;
        }
        let ids: Vec<String> = self.bounded(conn.zrange(self.keys.work(), 0, -1)).await?;
        ids.iter().map(|id| AuctionId::parse(id).map_err(|e| StoreError::Corrupt(format!("work index: {e}")))).collect()
    }

    /// Looks at auction `id` for the sweep and, once it is over and its log fully written, gives
    /// its keys `retention` and takes it out of the work index (see `retire.lua`).
    pub async fn retire(&self, id: &AuctionId, retention: Duration) -> Result<Retire, StoreError> {
        let keys = self.keys.auction(id);
        let retention_ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX).max(1);
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self
            .bounded(
                RETIRE
                    .key(&keys.state)
                    .key(&keys.recent)
                    .key(&keys.outcomes)
                    .key(&keys.log)
                    .key(&keys.log_owner)
                    .arg(GROUP)
                    .arg(retention_ms)
                    .invoke_async(&mut conn),
            )
            .await?;
        let corrupt = || StoreError::Corrupt(format!("retire reply {reply:?}"));
        let outcome = match (reply.first().map(String::as_str), reply.get(1)) {
            (Some("work"), _) => return Ok(Retire::Work),
            (Some("live"), _) => return Ok(Retire::Live),
            (Some("retired"), Some(ms)) => Retire::Retired { expires_ms: ms.parse().map_err(|_| corrupt())? },
            (Some("gone"), _) => {
                // An id marked by a create still within its window may yet be created: keep it.
                let marked: Option<f64> = self.bounded(conn.zscore(self.keys.work(), id.as_str())).await?;
                let window_ms = i64::try_from(self.create_window().as_millis()).unwrap_or(i64::MAX);
                let now_ms = self.now_ms().await?;
                #[allow(clippy::cast_possible_truncation)]
                if marked.is_some_and(|at| at as i64 > now_ms - 2 * window_ms) {
                    return Ok(Retire::Live);
                }
                Retire::Gone
            }
            _ => return Err(corrupt()),
        };
        // Recorded for the trimming before it leaves the work index: a failure in between leaves
        // it where the next sweep looks again.
        let expires_ms = match outcome {
            Retire::Retired { expires_ms } => expires_ms,
            _ => self.now_ms().await?,
        };
        let _: i64 = self.bounded(conn.zadd(self.keys.retired(), id.as_str(), expires_ms)).await?;
        let _: i64 = self.bounded(conn.zrem(self.keys.work(), id.as_str())).await?;
        Ok(outcome)
    }

    /// Forgets up to `limit` auctions whose retention has passed in the global indexes (the
    /// list's and the status indexes, the deadlines, the work index), then in the retired set itself; returns how many.
    /// Reads of them go to MySQL from then on.
    pub async fn forget_retired(&self, limit: usize) -> Result<usize, StoreError> {
        let now_ms = self.now_ms().await?;
        let mut conn = self.conn.clone();
        let count = isize::try_from(limit.min(CHUNK)).unwrap_or(1);
        let ids: Vec<String> =
            self.bounded(conn.zrangebyscore_limit(self.keys.retired(), "-inf", now_ms, 0, count)).await?;
        if ids.is_empty() {
            return Ok(0);
        }
        let status_indexes = self.keys.status_indexes().map(|(_, index)| index);
        let globals = [self.keys.index(), self.keys.deadlines(), self.keys.work()];
        for key in globals.into_iter().chain(status_indexes).chain([self.keys.retired()]) {
            let _: i64 = self.bounded(conn.zrem(key, &ids)).await?;
        }
        Ok(ids.len())
    }
}
