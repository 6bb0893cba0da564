//! Consuming auctions' durable event streams (`auction:{A}:log`) through the `analytics` consumer
//! group: ownership of a stream, reading new and reclaiming pending entries, acknowledging, and
//! trimming what every group has acknowledged. Entries are decoded by [`Event::from_log_fields`],
//! which reads both log versions.

use std::collections::HashMap;

use auction_proto::AuctionId;
use redis::AsyncCommands;
use redis::streams::{StreamAutoClaimOptions, StreamId, StreamReadOptions, StreamReadReply};

use super::event::{Event, LogEntryError};
use super::{Store, StoreError};

/// The consumer group every analytics instance reads through.
pub const GROUP: &str = "analytics";

/// What `XINFO GROUPS` says of an auction's log.
enum LogProgress {
    NoLog,
    NoGroup {
        len: u64,
    },
    /// `lag` is `None` when Redis cannot tell it (entries deleted after the last delivery).
    Group {
        pending: u64,
        lag: Option<u64>,
    },
}

static OWNER: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("owner.lua")));
static TRIM: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(include_str!("trim.lua")));

/// One entry of an auction's log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogEntry {
    /// The stream entry id, for acknowledging.
    pub id: String,
    /// Why it does not decode, when it does not: a corrupt entry is acknowledged and reported (it
    /// can never be written), one of a newer version is left pending.
    pub event: Result<Event, LogEntryError>,
}

fn entries(ids: Vec<StreamId>) -> Vec<LogEntry> {
    ids.into_iter().map(|entry| LogEntry { event: Event::from_log_fields(&fields(&entry)), id: entry.id }).collect()
}

/// A log entry's fields as text (every field the scripts write is).
fn fields(entry: &StreamId) -> HashMap<String, String> {
    entry.map.keys().filter_map(|k| Some((k.clone(), entry.get::<String>(k)?))).collect()
}

impl Store {
    /// Takes (or keeps) the consumption of auction `id`'s log for `instance`; false if another
    /// instance holds it.
    pub async fn own_log(&self, id: &AuctionId, instance: &str, ttl_ms: u64) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let owner = self.keys.auction(id).log_owner;
        let owned: i64 = self.bounded(OWNER.key(owner).arg(instance).arg(ttl_ms).invoke_async(&mut conn)).await?;
        Ok(owned == 1)
    }

    /// Creates the consumer group on the auction's log (from its first entry) if it is missing;
    /// false when there is no log at all. The log is never made here: every auction's starts
    /// with its creation, so a missing one belongs to an auction whose keys have expired, and
    /// making it afresh would leave a key that never does.
    pub async fn ensure_group(&self, id: &AuctionId) -> Result<bool, StoreError> {
        let mut conn = self.conn.clone();
        let log = self.keys.auction(id).log;
        let created: Result<(), _> = self.bounded(conn.xgroup_create(&log, GROUP, "0")).await;
        match created {
            Ok(()) => Ok(true),
            Err(StoreError::Redis(e)) if e.code() == Some("BUSYGROUP") => Ok(true),
            Err(StoreError::Redis(e)) if e.to_string().contains("requires the key to exist") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Claims every entry pending in the group, whoever it was delivered to (a consumer that died
    /// before acknowledging, or this one after a failed write), oldest first. Safe because the
    /// caller owns the stream (see [`Store::own_log`]).
    pub async fn claim_pending(
        &self,
        id: &AuctionId,
        consumer: &str,
        count: usize,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let mut conn = self.conn.clone();
        let log = self.keys.auction(id).log;
        let reply: redis::streams::StreamAutoClaimReply = self
            .bounded(conn.xautoclaim_options(
                &log,
                GROUP,
                consumer,
                0,
                "0-0",
                StreamAutoClaimOptions::default().count(count),
            ))
            .await?;
        Ok(entries(reply.claimed))
    }

    /// Reads entries never delivered to the group before.
    pub async fn read_new(&self, id: &AuctionId, consumer: &str, count: usize) -> Result<Vec<LogEntry>, StoreError> {
        let mut conn = self.conn.clone();
        let log = self.keys.auction(id).log;
        let options = StreamReadOptions::default().group(GROUP, consumer).count(count);
        let reply: Option<StreamReadReply> = self.bounded(conn.xread_options(&[&log], &[">"], &options)).await?;
        Ok(reply.map(|r| r.keys.into_iter().flat_map(|k| entries(k.ids)).collect()).unwrap_or_default())
    }

    pub async fn ack(&self, id: &AuctionId, ids: &[String]) -> Result<(), StoreError> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut conn = self.conn.clone();
        let _: i64 = self.bounded(conn.xack(self.keys.auction(id).log, GROUP, ids)).await?;
        Ok(())
    }

    /// Trims the log of what every group has acknowledged; returns how many entries went.
    pub async fn trim_log(&self, id: &AuctionId) -> Result<i64, StoreError> {
        let mut conn = self.conn.clone();
        self.bounded(TRIM.key(self.keys.auction(id).log).invoke_async(&mut conn)).await
    }

    /// Entries of the log not yet written and acknowledged by the group: never delivered (lag)
    /// plus delivered but pending. Before the group exists, the whole log.
    pub async fn log_backlog(&self, id: &AuctionId) -> Result<u64, StoreError> {
        Ok(match self.log_progress(id).await? {
            LogProgress::NoLog => 0,
            LogProgress::NoGroup { len } => len,
            LogProgress::Group { pending, lag } => lag.unwrap_or(0) + pending,
        })
    }

    /// How far the group has got through auction `id`'s log (`XINFO GROUPS`).
    async fn log_progress(&self, id: &AuctionId) -> Result<LogProgress, StoreError> {
        let mut conn = self.conn.clone();
        let log = self.keys.auction(id).log;
        let groups: Result<redis::streams::StreamInfoGroupsReply, _> = self.bounded(conn.xinfo_groups(&log)).await;
        match groups {
            Ok(reply) => match reply.groups.iter().find(|g| g.name == GROUP) {
                Some(group) => {
                    Ok(LogProgress::Group { pending: group.pending as u64, lag: group.lag.map(|lag| lag as u64) })
                }
                None => Ok(LogProgress::NoGroup { len: self.bounded(conn.xlen(&log)).await? }),
            },
            // No stream at all yet.
            Err(StoreError::Redis(e)) if e.to_string().contains("no such key") => Ok(LogProgress::NoLog),
            Err(e) => Err(e),
        }
    }
}
