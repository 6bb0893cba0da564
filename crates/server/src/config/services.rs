//! Each service's own settings, read only when that service starts: the bidding service never
//! sees MySQL's, the analytics service no WebSocket limit.

use std::time::Duration;

use auction_proto::Amount;
use sqlx::mysql::MySqlConnectOptions;

use super::parse::{self, DEFAULT_MYSQL_DSN};
use super::setting::{Setting, Sources, settings};
use super::{ConfigError, Service, ServiceConfig};

/// MySQL, the durable record, for the two services that write it (and only them).
const MYSQL_DSN: Setting<MySqlConnectOptions> =
    Setting::new("MYSQL_DSN", "mysql.dsn", DEFAULT_MYSQL_DSN, parse::mysql_dsn);

/// A MySQL read replica (or the primary) for reads only. Optional for both services that take
/// it: the auction service reads from `MYSQL_DSN` without it, the bidding service then answers a
/// connection to an auction whose Redis keys have expired with 404.
const MYSQL_READ_DSN: Setting<Option<MySqlConnectOptions>> =
    Setting::new("MYSQL_READ_DSN", "mysql.read_dsn", "", parse::optional_mysql_dsn);

/// The MySQL pool, by the `database/sql`-style keys that earlier configuration files use, shared by
/// both services that write MySQL (and their read replica's pool).
const MYSQL_MAX_OPEN_CONNS: Setting<u32> =
    Setting::new("MYSQL_MAX_OPEN_CONNS", "mysql.max_open_conns", "10", parse::at_least_one);
const MYSQL_MAX_IDLE_CONNS: Setting<u32> =
    Setting::new("MYSQL_MAX_IDLE_CONNS", "mysql.max_idle_conns", "0", parse::number);
const MYSQL_CONN_MAX_LIFETIME: Setting<Option<Duration>> =
    Setting::new("MYSQL_CONN_MAX_LIFETIME", "mysql.conn_max_lifetime", "30m", parse::optional_duration);

/// How a service's MySQL pools are sized, from `MYSQL_MAX_OPEN_CONNS`, `MYSQL_MAX_IDLE_CONNS`
/// and `MYSQL_CONN_MAX_LIFETIME`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MySqlPool {
    /// The most connections open at once (sqlx `max_connections`).
    pub max_open: u32,
    /// Connections the pool keeps open even when idle (sqlx `min_connections`, at most
    /// `max_open`). sqlx has no cap on idle connections: ones beyond this are closed after ten
    /// idle minutes.
    pub keep_idle: u32,
    /// A connection older than this is closed and replaced (sqlx `max_lifetime`); `None`: never.
    pub max_lifetime: Option<Duration>,
}

impl MySqlPool {
    fn new(max_open: u32, max_idle: u32, max_lifetime: Option<Duration>) -> MySqlPool {
        MySqlPool { max_open, keep_idle: max_idle.min(max_open), max_lifetime }
    }
}

/// Named, because it must be at least the frame limit and the error must blame it.
const WS_MAX_MESSAGE_BYTES: Setting<usize> =
    Setting::new("WS_MAX_MESSAGE_BYTES", "bidding.max_message_bytes", "65536", parse::number);

settings! {
    /// The bidding service's: WebSocket limits and the largest bid.
    #[derive(Debug, Clone)]
    pub struct BiddingConfig {
        /// Frames above this size get an `error` frame and the connection stays open.
        pub max_frame_bytes: usize =
            Setting::new("WS_MAX_FRAME_BYTES", "bidding.max_frame_bytes", "4096", parse::number),
        /// Frames above this size close the connection with code 1009 (the reader never buffers more).
        pub max_message_bytes: usize = WS_MAX_MESSAGE_BYTES,
        /// Live events a watcher may fall behind before it is resynced with a snapshot.
        pub watcher_queue: usize = Setting::new("WS_WATCHER_QUEUE", "bidding.watcher_queue", "256", parse::number),
        /// The largest bid accepted.
        pub max_bid: Amount = Setting::new("MAX_BID", "bidding.max_bid", "100000000000.00", parse::amount),
        /// How long a send to one client may block before that client is dropped.
        pub send_timeout: Duration = Setting::new("WS_SEND_TIMEOUT", "bidding.send_timeout", "10s", parse::duration),
        /// The kernel send buffer of each connection (`SO_SNDBUF`), bounding the memory a client that
        /// does not read can hold; `None` (0) leaves the kernel's autotuning (up to megabytes each).
        pub send_buffer: Option<usize> =
            Setting::new("WS_SEND_BUFFER", "bidding.send_buffer", "0", parse::bytes_or_kernel_default),
        /// Bids per second one connection may send (a burst of as many is allowed).
        pub bid_rate_per_connection: u32 =
            Setting::new("WS_BID_RATE", "bidding.bid_rate_per_connection", "20", parse::at_least_one),
        /// Bids per second one user may send over all their connections to this node.
        pub bid_rate_per_user: u32 =
            Setting::new("WS_USER_BID_RATE", "bidding.bid_rate_per_user", "50", parse::at_least_one),
        /// WebSocket connections this node accepts.
        pub max_connections: usize =
            Setting::new("WS_MAX_CONNECTIONS", "bidding.max_connections", "100000", parse::at_least_one),
        /// WebSocket connections one user may hold on this node.
        pub max_connections_per_user: usize =
            Setting::new("WS_MAX_CONNECTIONS_PER_USER", "bidding.max_connections_per_user", "20", parse::at_least_one),
        /// A connection with no frame from the client for this long (at least 100 ms) is closed; the
        /// server pings at a third of it, so a live client always has something to answer.
        pub idle_timeout: Duration = Setting::new("WS_IDLE_TIMEOUT", "bidding.idle_timeout", "60s", |text| {
            parse::duration(text).map(|d| d.max(Duration::from_millis(100)))
        }),
        /// Origins whose pages may open WebSockets; `None` (`*`) allows any (and a missing Origin,
        /// from a non-browser client, is always allowed).
        pub allowed_origins: Option<Vec<String>> =
            Setting::new("WS_ALLOWED_ORIGINS", "bidding.allowed_origins", "*", parse::origins),
        /// `local`: a bid is acknowledged once its Redis primary has it. `replicated`: once a
        /// replica has it too (`WAIT`), so the loss of the primary cannot lose it.
        pub bid_durability: Durability =
            Setting::new("BID_DURABILITY", "bidding.bid_durability", "local", parse::durability),
        /// With `replicated`, how long a bid waits for a replica before it is answered
        /// `unavailable` (a retry with the same `bid_id` gets the stored outcome).
        pub replica_timeout: Duration =
            Setting::new("BID_REPLICA_TIMEOUT", "bidding.replica_timeout", "1s", parse::duration),
        /// Where the web UI this node serves finds the auction service's REST API: an http(s) URL,
        /// or a path on the page's own origin (`/` behind a proxy that serves both on one origin);
        /// `None` (unset): the page's host on port 8081.
        pub web_api_url: Option<String> = Setting::new("WEB_API_URL", "bidding.web_api_url", "", parse::web_url),
        /// Where a connection to a finished auction whose Redis keys have expired finds its final
        /// state (optional; connected lazily, so MySQL is never needed to start or to bid).
        pub mysql_read: Option<MySqlConnectOptions> = MYSQL_READ_DSN,
    }
}

/// When the bidding service acknowledges an accepted bid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Once the Redis primary has it (it may be lost if the primary dies before replicating).
    Local,
    /// Once at least one replica has it too.
    Replicated,
}

impl ServiceConfig for BiddingConfig {
    const SERVICE: Service = Service::Bidding;

    fn resolve(sources: &Sources<'_>) -> Result<Self, ConfigError> {
        let config = BiddingConfig::read(sources)?;
        if config.max_message_bytes < config.max_frame_bytes {
            return Err(sources.blame(&WS_MAX_MESSAGE_BYTES, "must be at least WS_MAX_FRAME_BYTES"));
        }
        Ok(config)
    }
}

settings! {
    /// The auction service's: what the REST API accepts, the leader lease, MySQL.
    #[derive(Debug, Clone)]
    pub struct AuctionConfig {
        /// The largest starting bid accepted.
        pub max_bid: Amount = Setting::new("MAX_BID", "auction.max_bid", "100000000000.00", parse::amount),
        /// The longest an auction may run.
        pub max_duration: Duration =
            Setting::new("MAX_AUCTION_DURATION", "auction.max_duration", "365d", parse::duration),
        /// The most one extend call may add.
        pub max_extend: Duration = Setting::new("MAX_EXTEND", "auction.max_extend", "1d", parse::duration),
        /// Origins whose pages may call the API (CORS); `None` (`*`) allows any.
        pub cors_origins: Option<Vec<String>> =
            Setting::new("CORS_ALLOWED_ORIGINS", "auction.cors_allowed_origins", "*", parse::origins),
        /// The leader lease: how soon another instance takes over the scheduler of one that died.
        pub leader_ttl: Duration = Setting::new("LEADER_TTL", "leader_ttl", "10s", parse::duration),
        /// How long a list answer is reused for the same query (0: never): clients polling the
        /// list then cost the Redis that decides bids one load per query and period.
        pub list_cache: Duration = Setting::new("LIST_CACHE", "auction.list_cache", "1s", parse::duration),
        pub mysql: MySqlConnectOptions = MYSQL_DSN,
        /// A read replica for the read-only queries (the bids API); unset reads from `MYSQL_DSN`.
        pub mysql_read: Option<MySqlConnectOptions> = MYSQL_READ_DSN,
        mysql_max_open: u32 = MYSQL_MAX_OPEN_CONNS,
        mysql_max_idle: u32 = MYSQL_MAX_IDLE_CONNS,
        mysql_max_lifetime: Option<Duration> = MYSQL_CONN_MAX_LIFETIME,
    }
}

impl AuctionConfig {
    /// How each of its MySQL pools (the primary's, and the replica's) is sized.
    pub fn pool(&self) -> MySqlPool {
        MySqlPool::new(self.mysql_max_open, self.mysql_max_idle, self.mysql_max_lifetime)
    }
}

impl ServiceConfig for AuctionConfig {
    const SERVICE: Service = Service::Auction;

    fn resolve(sources: &Sources<'_>) -> Result<Self, ConfigError> {
        AuctionConfig::read(sources)
    }
}

settings! {
    /// The analytics service's: how it drains the logs into MySQL.
    #[derive(Debug, Clone)]
    pub struct AnalyticsConfig {
        /// How long an instance owns an auction's log after last touching it: how soon another
        /// instance takes over the log of one that died.
        pub claim_ttl: Duration = Setting::new("ANALYTICS_CLAIM_TTL", "analytics.claim_ttl", "10s", parse::duration),
        /// Most log entries written to MySQL in one transaction.
        pub batch: usize = Setting::new("ANALYTICS_BATCH", "analytics.batch", "500", parse::at_least_one),
        /// How often every auction's log is looked at, besides the ones pub/sub says changed.
        pub sweep: Duration = Setting::new("ANALYTICS_SWEEP", "analytics.sweep", "2s", parse::duration),
        /// How long a finished auction's Redis keys stay once MySQL has all of it (it is ended or
        /// cancelled and its log fully written); reads of it then come from MySQL. This is also
        /// how long after the close a retried bid still gets its stored outcome.
        pub ended_retention: Duration =
            Setting::new("ENDED_RETENTION", "analytics.ended_retention", "1h", parse::duration),
        /// For failure testing only: abort the process right after the first MySQL commit, before
        /// acknowledging, to prove that redelivery does not duplicate rows.
        pub crash_after_commit: bool = Setting::env_only("ANALYTICS_CRASH_AFTER_COMMIT", "", parse::flag),
        /// For failure testing only: abort the process once the first batch has been read (so its
        /// entries are pending for this instance), before it is written, to prove that entries
        /// delivered to an instance that dies are neither lost nor written twice.
        pub crash_before_commit: bool = Setting::env_only("ANALYTICS_CRASH_BEFORE_COMMIT", "", parse::flag),
        pub mysql: MySqlConnectOptions = MYSQL_DSN,
        mysql_max_open: u32 = MYSQL_MAX_OPEN_CONNS,
        mysql_max_idle: u32 = MYSQL_MAX_IDLE_CONNS,
        mysql_max_lifetime: Option<Duration> = MYSQL_CONN_MAX_LIFETIME,
    }
}

impl AnalyticsConfig {
    /// How its MySQL pool is sized.
    pub fn pool(&self) -> MySqlPool {
        MySqlPool::new(self.mysql_max_open, self.mysql_max_idle, self.mysql_max_lifetime)
    }
}

impl ServiceConfig for AnalyticsConfig {
    const SERVICE: Service = Service::Analytics;

    fn resolve(sources: &Sources<'_>) -> Result<Self, ConfigError> {
        AnalyticsConfig::read(sources)
    }
}
