//! Redis, the source of truth for live auctions. The only module that speaks Lua: every read or
//! change of an auction goes through one of the scripts beside this file, each a single atomic step.

mod keys;
mod live;
pub mod log;
pub mod record;

pub use keys::Keys;
pub use live::LiveMessage;
pub use record::{AuctionRecord, StoredState};

use std::sync::LazyLock;
use std::time::Duration;

use auction_proto::{Amount, AuctionId, AuctionStatus, BidId, BidRules, RejectReason, UserId};
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use serde::Deserialize;

use crate::config::RedisConfig;
use redis::aio::PubSub;

static BID: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("bid.lua")));
static SNAPSHOT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("snapshot.lua")));
static CREATE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("create.lua")));
static LEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lease.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("release.lua")));
static ADVANCE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("advance.lua")));
static CHANGE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("change.lua")));

/// How many recent bids an auction keeps for snapshots.
pub const RECENT_BIDS: usize = 10;

/// A failure to talk to Redis, or an answer that does not parse (which means a bug or a foreign
/// writer, and is reported, not guessed around).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("redis call timed out after {0:?}")]
    Timeout(Duration),
    #[error("unexpected data in redis: {0}")]
    Corrupt(String),
}

/// The bid script's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BidOutcome {
    Accepted { amount: Amount, seq: u64, end_ms: i64, prev_end_ms: i64, placed_us: i64 },
    Rejected { reason: RejectReason, current: Option<Amount>, min_next: Option<Amount> },
}

/// The answer of the lease script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    /// Whether the caller holds the lease now.
    pub held: bool,
    /// The holder's fencing epoch.
    pub epoch: u64,
    pub holder: String,
    pub ms_left: i64,
}

impl LeaseState {
    /// The lease value that fenced scripts compare with.
    pub fn token(instance: &str, epoch: u64) -> String {
        format!("{instance}|{epoch}")
    }
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
    Started {
        seq: u64,
        end_ms: i64,
    },
    Ended {
        seq: u64,
        winner: Option<UserId>,
        final_price: Option<Amount>,
        bid_count: u64,
        end_ms: i64,
    },
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
    Extended {
        seq: u64,
        end_ms: i64,
        prev_end_ms: i64,
    },
    Cancelled {
        seq: u64,
    },
}

/// A bid to place, already validated.
pub struct NewBid<'a> {
    pub auction: &'a AuctionId,
    pub bidder: &'a UserId,
    pub bid_id: &'a BidId,
    pub amount: Amount,
    pub rules: &'a BidRules,
}

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

/// A handle on the auction data in Redis. Cheap to clone: the connection is multiplexed, so
/// concurrent calls from many tasks are pipelined on one socket.
#[derive(Clone)]
pub struct Store {
    conn: ConnectionManager,
    keys: Keys,
    timeout: Duration,
}

/// The Redis settings that decide whether accepted bids survive Redis itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persistence {
    /// `appendonly yes`: every write is in the append-only file (fsynced each second by default).
    pub appendonly: bool,
    /// `maxmemory-policy`; anything but `noeviction` may delete live auctions and their logs
    /// once `maxmemory` is reached.
    pub eviction: String,
    /// `maxmemory` in bytes; 0 is no limit, so nothing is ever evicted.
    pub maxmemory: u64,
}

impl Persistence {
    /// What an operator should hear about: accepted bids are on Redis alone until the analytics
    /// service has copied them, so Redis must neither forget them on a restart nor evict them.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if !self.appendonly {
            warnings.push(
                "redis has appendonly off: bids accepted since its last snapshot and not yet in MySQL \
                 would be lost if Redis restarts (set appendonly yes)"
                    .to_owned(),
            );
        }
        if self.maxmemory > 0 && self.eviction != "noeviction" {
            warnings.push(format!(
                "redis maxmemory-policy is {}: under memory pressure it may evict auctions and their \
                 bid logs (set maxmemory-policy noeviction)",
                self.eviction
            ));
        }
        warnings
    }
}

/// Logs, at start, whatever in Redis's settings puts accepted bids at risk.
pub async fn warn_if_not_durable(store: &Store) {
    match store.persistence().await {
        Some(persistence) => {
            for warning in persistence.warnings() {
                tracing::warn!("{warning}");
            }
        }
        None => tracing::info!("cannot read redis's persistence settings (CONFIG GET refused); not checked"),
    }
}

impl Store {
    /// Connects, failing fast if Redis does not answer.
    pub async fn connect(config: &RedisConfig) -> Result<Store, StoreError> {
        let client = redis::Client::open(config.url.as_str())?;
        let manager_config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.timeout))
            .set_response_timeout(Some(config.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let conn = tokio::time::timeout(config.timeout * 3, client.get_connection_manager_with_config(manager_config))
            .await
            .map_err(|_| StoreError::Timeout(config.timeout * 3))??;
        Ok(Store { conn, keys: Keys::new(&config.key_prefix), timeout: config.timeout })
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Runs `fut` with the store's timeout, so that a hung Redis turns into an error, not a hang.
    async fn bounded<T>(&self, fut: impl Future<Output = Result<T, redis::RedisError>>) -> Result<T, StoreError> {
        tokio::time::timeout(self.timeout, fut)
            .await
            .map_err(|_| StoreError::Timeout(self.timeout))?
            .map_err(Into::into)
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: String = self.bounded(redis::cmd("PING").query_async(&mut conn)).await?;
        Ok(())
    }

    /// How Redis keeps our data, from `CONFIG GET`; `None` when the server does not allow it
    /// (managed services often rename or disable `CONFIG`).
    pub async fn persistence(&self) -> Option<Persistence> {
        let appendonly = self.config_get("appendonly").await?;
        let eviction = self.config_get("maxmemory-policy").await?;
        let maxmemory = self.config_get("maxmemory").await?.parse().ok()?;
        Some(Persistence { appendonly: appendonly == "yes", eviction, maxmemory })
    }

    async fn config_get(&self, name: &str) -> Option<String> {
        let mut conn = self.conn.clone();
        let reply: Vec<String> =
            self.bounded(redis::cmd("CONFIG").arg("GET").arg(name).query_async(&mut conn)).await.ok()?;
        reply.into_iter().nth(1)
    }

    /// Places a bid through the bid script.
    pub async fn place_bid(&self, bid: &NewBid<'_>, channel: &str) -> Result<BidOutcome, StoreError> {
        let keys = self.keys.auction(bid.auction);
        let mut conn = self.conn.clone();
        let text: String = self
            .bounded(
                BID.key(&keys.state)
                    .key(&keys.recent)
                    .key(&keys.outcomes)
                    .key(&keys.log)
                    .arg(bid.auction.as_str())
                    .arg(bid.bidder.as_str())
                    .arg(bid.bid_id.as_str())
                    .arg(bid.amount.cents())
                    .arg(bid.rules.to_script_arg())
                    .arg(channel)
                    .arg(RECENT_BIDS)
                    .invoke_async(&mut conn),
            )
            .await?;
        parse_outcome(&text)
    }

    /// Reads an auction with Redis time; `None` if it does not exist.
    pub async fn load(&self, id: &AuctionId) -> Result<Option<AuctionRecord>, StoreError> {
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
        AuctionRecord::parse(&time, fields, &recent).map(Some)
    }

    /// Creates an auction; `false` if the id is already taken.
    pub async fn create(&self, auction: &NewAuction<'_>) -> Result<Option<i64>, StoreError> {
        let keys = self.keys.auction(auction.id);
        let mut conn = self.conn.clone();
        let created_ms: i64 = self
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
        if created_ms == 0 {
            return Ok(None);
        }
        let _: () = self.bounded(conn.zadd(self.keys.index(), auction.id.as_str(), created_ms)).await?;
        Ok(Some(created_ms))
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

    /// Redis time in milliseconds.
    pub async fn now_ms(&self) -> Result<i64, StoreError> {
        let mut conn = self.conn.clone();
        let (secs, micros): (i64, i64) = self.bounded(redis::cmd("TIME").query_async(&mut conn)).await?;
        Ok(secs * 1000 + micros / 1000)
    }

    /// The increment table in force (the defaults when none was ever set).
    pub async fn rules(&self) -> Result<BidRules, StoreError> {
        let mut conn = self.conn.clone();
        let text: Option<String> = self.bounded(conn.get(self.keys.rules())).await?;
        match text {
            None => Ok(BidRules::default()),
            Some(text) => {
                serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{}: {e}", self.keys.rules())))
            }
        }
    }

    /// Replaces the increment table and tells every bidding node to reload it.
    pub async fn set_rules(&self, rules: &BidRules) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let text = serde_json::to_string(rules).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let _: () = self.bounded(conn.set(self.keys.rules(), text)).await?;
        let note = serde_json::to_string(&LiveMessage::Rules).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let _: i64 = self.bounded(conn.publish(self.keys.live_channel(), note)).await?;
        Ok(())
    }

    /// Takes or renews the leader lease for `instance` (see `lease.lua`).
    pub async fn lease(&self, instance: &str, ttl_ms: u64, held_epoch: u64) -> Result<LeaseState, StoreError> {
        let mut conn = self.conn.clone();
        let (held, epoch, holder, ms_left): (i64, String, String, i64) = self
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
        Ok(LeaseState { held: held == 1, epoch, holder, ms_left })
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

    /// Runs the scheduler's fenced transition on one auction.
    pub async fn advance(&self, id: &AuctionId, instance: &str, epoch: u64) -> Result<Advance, StoreError> {
        let keys = self.keys.auction(id);
        let mut conn = self.conn.clone();
        let reply: Vec<String> = self
            .bounded(
                ADVANCE
                    .key(&keys.state)
                    .key(&keys.log)
                    .key(self.keys.lease())
                    .arg(id.as_str())
                    .arg(LeaseState::token(instance, epoch))
                    .arg(epoch)
                    .arg(self.keys.live_channel())
                    .invoke_async(&mut conn),
            )
            .await?;
        parse_advance(&reply)
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
                    .arg(self.keys.live_channel())
                    .invoke_async(&mut conn),
            )
            .await?;
        let corrupt = || StoreError::Corrupt(format!("change reply {reply:?}"));
        let num = |i: usize| reply.get(i).and_then(|v| v.parse::<i64>().ok()).ok_or_else(corrupt);
        Ok(match reply.first().map(String::as_str) {
            Some("missing") => ChangeOutcome::Missing,
            Some("conflict") => ChangeOutcome::Conflict(reply.get(1).and_then(|s| s.parse().ok()).ok_or_else(corrupt)?),
            Some("extended") => ChangeOutcome::Extended {
                seq: u64::try_from(num(1)?).map_err(|_| corrupt())?,
                end_ms: num(2)?,
                prev_end_ms: num(3)?,
            },
            Some("cancelled") => ChangeOutcome::Cancelled { seq: u64::try_from(num(1)?).map_err(|_| corrupt())? },
            _ => return Err(corrupt()),
        })
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

    /// The earliest deadline in the index, in ms.
    pub async fn next_deadline(&self) -> Result<Option<i64>, StoreError> {
        let mut conn = self.conn.clone();
        let head: Vec<(String, f64)> = self.bounded(conn.zrange_withscores(self.keys.deadlines(), 0, 0)).await?;
        #[allow(clippy::cast_possible_truncation)]
        Ok(head.first().map(|(_, score)| *score as i64))
    }

    /// Wakes the leader's scheduler on whichever instance it runs.
    pub async fn announce_deadline(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let note = serde_json::to_string(&LiveMessage::Deadline).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let _: i64 = self.bounded(conn.publish(self.keys.deadline_channel(), note)).await?;
        Ok(())
    }

    /// The `type` of every entry on an auction's durable log, oldest first.
    pub async fn log_types(&self, id: &AuctionId) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        let reply: redis::streams::StreamRangeReply = self.bounded(conn.xrange_all(self.keys.auction(id).log)).await?;
        Ok(reply.ids.iter().filter_map(|entry| entry.get::<String>("type")).collect())
    }

    /// Deletes every key under this store's prefix. For tests, which each own a prefix.
    pub async fn delete_all(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let keys: Vec<String> = {
            let mut iter: redis::AsyncIter<String> = conn.scan_match(self.keys.all_pattern()).await?;
            let mut keys = Vec::new();
            while let Some(key) = futures_util::StreamExt::next(&mut iter).await {
                keys.push(key?);
            }
            keys
        };
        for chunk in keys.chunks(500) {
            let _: () = conn.del(chunk).await?;
        }
        Ok(())
    }
}

/// Opens a pub/sub connection subscribed to `channel` (the live channel).
pub async fn subscribe(config: &RedisConfig, channel: &str) -> redis::RedisResult<PubSub> {
    let client = redis::Client::open(config.url.as_str())?;
    let connect = async {
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(channel).await?;
        Ok(pubsub)
    };
    tokio::time::timeout(config.timeout * 3, connect).await.unwrap_or_else(|_| {
        Err(redis::RedisError::from((redis::ErrorKind::Io, "timed out subscribing to the live channel")))
    })
}

fn parse_advance(reply: &[String]) -> Result<Advance, StoreError> {
    let corrupt = || StoreError::Corrupt(format!("advance reply {reply:?}"));
    let num = |i: usize| reply.get(i).and_then(|v| v.parse::<i64>().ok()).ok_or_else(corrupt);
    let seq = || u64::try_from(num(1)?).map_err(|_| corrupt());
    Ok(match reply.first().map(String::as_str) {
        Some("fenced") => Advance::Fenced,
        Some("missing") => Advance::Missing,
        Some("final") => Advance::Final,
        Some("wait") => Advance::Wait { next_ms: num(1)? },
        Some("started") => Advance::Started { seq: seq()?, end_ms: num(2)? },
        Some("ended") => {
            let winner = reply.get(2).filter(|w| !w.is_empty());
            let price = reply.get(3).filter(|p| !p.is_empty());
            Advance::Ended {
                seq: seq()?,
                winner: winner.map(|w| UserId::parse(w).map_err(|_| corrupt())).transpose()?,
                final_price: price
                    .map(|p| p.parse().ok().and_then(Amount::from_cents).ok_or_else(corrupt))
                    .transpose()?,
                bid_count: u64::try_from(num(4)?).map_err(|_| corrupt())?,
                end_ms: num(5)?,
            }
        }
        _ => return Err(corrupt()),
    })
}

/// The JSON the bid script returns.
#[derive(Deserialize)]
#[serde(tag = "r", rename_all = "snake_case")]
enum ScriptOutcome {
    Accepted { amount: String, seq: String, end_ms: String, prev_end_ms: String, placed_us: String },
    Rejected { reason: RejectReason, current: Option<String>, min_next: Option<String> },
}

fn parse_outcome(text: &str) -> Result<BidOutcome, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("bid outcome {what}: {text}"));
    let outcome: ScriptOutcome = serde_json::from_str(text).map_err(|_| corrupt("unreadable"))?;
    let int = |s: &str| s.parse::<i64>().map_err(|_| corrupt("number"));
    let amount = |s: &str| Amount::from_cents(int(s)?).ok_or_else(|| corrupt("amount"));
    Ok(match outcome {
        ScriptOutcome::Accepted { amount: a, seq, end_ms, prev_end_ms, placed_us } => BidOutcome::Accepted {
            amount: amount(&a)?,
            seq: seq.parse().map_err(|_| corrupt("seq"))?,
            end_ms: int(&end_ms)?,
            prev_end_ms: int(&prev_end_ms)?,
            placed_us: int(&placed_us)?,
        },
        ScriptOutcome::Rejected { reason, current, min_next } => BidOutcome::Rejected {
            reason,
            current: current.as_deref().map(amount).transpose()?,
            min_next: min_next.as_deref().map(amount).transpose()?,
        },
    })
}

#[cfg(test)]
mod persistence_tests {
    use super::Persistence;

    #[test]
    fn only_aof_without_eviction_is_quiet() {
        let gib = 1 << 30;
        let safe = Persistence { appendonly: true, eviction: "noeviction".into(), maxmemory: gib };
        assert!(safe.warnings().is_empty());
        let snapshots = Persistence { appendonly: false, eviction: "noeviction".into(), maxmemory: 0 };
        assert!(snapshots.warnings()[0].contains("appendonly yes"), "{:?}", snapshots.warnings());
        let evicting = Persistence { appendonly: true, eviction: "allkeys-lru".into(), maxmemory: gib };
        let warnings = evicting.warnings();
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("allkeys-lru") && warnings[0].contains("noeviction"), "{warnings:?}");
        let both = Persistence { appendonly: false, eviction: "volatile-lru".into(), maxmemory: gib };
        assert_eq!(both.warnings().len(), 2);
        // Without a memory limit nothing is ever evicted, whatever the policy.
        let unlimited = Persistence { appendonly: true, eviction: "allkeys-lru".into(), maxmemory: 0 };
        assert!(unlimited.warnings().is_empty());
    }
}
