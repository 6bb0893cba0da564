//! Redis, the source of truth for live auctions. The only module that speaks Lua or names Redis
//! keys: every read or change of an auction goes through one of the scripts beside this file, each
//! a single atomic step, and every event is decoded here ([`event`]). The wire and storage
//! contract is `docs/protocol.md`.
//!
//! One file per concern: [`bids`] (the bid script), [`auctions`] (create, read, operator changes),
//! [`schedule`] (the leader lease, the deadline index and the fenced transition), [`rules`] (the
//! increment table), [`live`] (the pub/sub feed), [`log`] (the durable log's consumer group),
//! [`persistence`] (whether Redis keeps what it accepted), [`retention`] (the analytics work index and
//! the expiry of finished auctions).

mod auctions;
mod bids;
mod conn;
pub mod event;
mod keys;
mod live;
pub mod log;
mod persistence;
mod retention;
mod rules;
mod schedule;
pub mod stored;
#[cfg(feature = "testing")]
mod testing;

pub use auctions::{ChangeOutcome, ChangeRequest, CreateOutcome, CreatedWith, Listed, NewAuction};
pub use bids::{Accepted, BidOutcome, NewBid};
pub use conn::{Conn, Topology};
pub use event::{Event, Live};
pub use keys::{Keys, STATUSES};
pub use live::{Feed, Received, Subscription};
pub use persistence::{Persistence, warn_if_not_durable};
pub use retention::Retire;
pub use rules::RulesInForce;
pub use schedule::{Advance, Fence, LeaseState};
pub use stored::{StoredAuction, StoredState};

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Durability, RedisConfig};

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
    #[error("not subscribed: {0}")]
    NotSubscribed(&'static str),
    #[error("no replica confirmed the write within {0:?}")]
    NotReplicated(Duration),
}

/// Runs a Redis call for at most `timeout`: a hung Redis turns into an error, not a hang.
async fn within<T, E: Into<StoreError>>(
    timeout: Duration,
    fut: impl Future<Output = Result<T, E>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(timeout, fut).await.map_err(|_| StoreError::Timeout(timeout))?.map_err(Into::into)
}

/// A handle on the auction data in Redis, one Redis or a cluster ([`Topology`]). Cheap to clone:
/// the connection is multiplexed, so concurrent calls from many tasks are pipelined on one socket
/// per node.
#[derive(Clone)]
pub struct Store {
    conn: Conn,
    /// For the pub/sub connections, which are each their own. Shared, not copied: every
    /// WebSocket connection holds a clone of the store.
    topology: Arc<Topology>,
    keys: Keys,
    timeout: Duration,
    /// When an accepted bid is acknowledged (the bidding service's `BID_DURABILITY`).
    durability: Durability,
    replica_timeout: Duration,
}

impl Store {
    /// Connects, failing fast if Redis does not answer.
    pub async fn connect(config: &RedisConfig) -> Result<Store, StoreError> {
        let topology = Topology::of(config);
        let conn = Conn::open(&topology, config.timeout).await?;
        Ok(Store {
            conn,
            topology: Arc::new(topology),
            keys: Keys::new(&config.key_prefix),
            timeout: config.timeout,
            durability: Durability::Local,
            replica_timeout: Duration::from_secs(1),
        })
    }

    /// This store with bids acknowledged as `durability` says; with `Replicated`, a bid waits up
    /// to `replica_timeout` for a replica.
    #[must_use]
    pub fn with_durability(mut self, durability: Durability, replica_timeout: Duration) -> Store {
        self.durability = durability;
        self.replica_timeout = replica_timeout;
        self
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Publishes a live message as this topology does (see [`Topology::publish_command`]).
    fn publish<'a>(
        &self,
        conn: &'a mut Conn,
        channel: &str,
        text: &str,
    ) -> impl Future<Output = Result<i64, redis::RedisError>> + 'a {
        let cmd = redis::cmd(self.topology.publish_command()).arg(channel).arg(text).clone();
        async move { cmd.query_async(conn).await }
    }

    /// Runs `fut` with the store's timeout, so that a hung Redis turns into an error, not a hang.
    async fn bounded<T>(&self, fut: impl Future<Output = Result<T, redis::RedisError>>) -> Result<T, StoreError> {
        within(self.timeout, fut).await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let _: String = self.bounded(redis::cmd("PING").query_async(&mut conn)).await?;
        Ok(())
    }

    /// Redis time in milliseconds.
    pub async fn now_ms(&self) -> Result<i64, StoreError> {
        let mut conn = self.conn.clone();
        let (secs, micros): (i64, i64) = self.bounded(redis::cmd("TIME").query_async(&mut conn)).await?;
        Ok(secs * 1000 + micros / 1000)
    }
}
