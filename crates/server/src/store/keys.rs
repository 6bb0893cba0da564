//! Redis key names. Every key of one auction carries the auction id as its hash tag, so every
//! script touches one slot and the data can live on Redis Cluster.

use auction_proto::{AuctionId, AuctionStatus};

/// Every status, each with its own list index.
pub const STATUSES: [AuctionStatus; 4] =
    [AuctionStatus::Scheduled, AuctionStatus::Active, AuctionStatus::Ended, AuctionStatus::Cancelled];

/// The key names for one deployment (or one test): all start with the configured prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
}

/// The keys of one auction.
pub struct AuctionKeys {
    pub state: String,
    pub recent: String,
    pub outcomes: String,
    pub log: String,
    /// Which analytics instance currently consumes `log`.
    pub log_owner: String,
    /// The auction's live channel (a shard channel on a cluster, in the auction's slot).
    pub live: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Keys {
        Keys { prefix: prefix.to_owned() }
    }

    pub fn auction(&self, id: &AuctionId) -> AuctionKeys {
        let base = self.base(id);
        AuctionKeys {
            recent: format!("{base}:recent"),
            outcomes: format!("{base}:outcomes"),
            log: format!("{base}:log"),
            log_owner: format!("{base}:log:owner"),
            live: format!("{base}:live"),
            state: base,
        }
    }

    /// Auction `id`'s live channel (alone: hubs and the analytics sweep need nothing else).
    pub fn live_channel(&self, id: &AuctionId) -> String {
        format!("{}:live", self.base(id))
    }

    /// The auction's hash, and the stem of its other keys.
    fn base(&self, id: &AuctionId) -> String {
        format!("{}auction:{{{}}}", self.prefix, id)
    }

    /// Sorted set of every auction id, scored by creation time: the list endpoint's index.
    pub fn index(&self) -> String {
        format!("{}auctions", self.prefix)
    }

    /// Sorted set of the auctions whose log may still get or hold entries the analytics service
    /// has not written to MySQL: the analytics sweep's work index. An auction joins it before it
    /// is created and leaves it once it is over and its log fully written.
    pub fn work(&self) -> String {
        format!("{}log_work", self.prefix)
    }

    /// Set once the work index has been seeded from [`Keys::index`] (deployments that predate it).
    pub fn work_seeded(&self) -> String {
        format!("{}log_work:seeded", self.prefix)
    }

    /// Sorted set of finished auctions whose keys expire, scored by the expiry (Redis time, ms):
    /// once that passes, the global indexes forget them.
    pub fn retired(&self) -> String {
        format!("{}retired", self.prefix)
    }

    /// Sorted set of the ids of auctions last seen in `status`, scored by creation time like
    /// [`Keys::index`]: a status list reads only its own set. An entry may lag the status derived
    /// with Redis time (readers filter by that, and move the entries they find behind).
    pub fn status_index(&self, status: AuctionStatus) -> String {
        format!("{}auctions:{}", self.prefix, status.as_str())
    }

    /// Every status index, one per status.
    pub fn status_indexes(&self) -> [(AuctionStatus, String); 4] {
        STATUSES.map(|status| (status, self.status_index(status)))
    }

    /// Set once the status indexes hold every auction the list index held when they were
    /// introduced (the one-time backfill at start).
    pub fn status_indexes_ready(&self) -> String {
        format!("{}auctions:status_indexed", self.prefix)
    }

    /// The bid increment table (JSON of `BidRules`); absent means the defaults.
    pub fn rules(&self) -> String {
        format!("{}bid_validation_rules", self.prefix)
    }

    /// The increment table's version (see `rules.rs`). Its hash tag is the table's whole key name
    /// (which has no braces, so it is hashed whole), putting the two in one slot on a cluster: one
    /// `MGET` or script reads or writes both at once.
    pub fn rules_version(&self) -> String {
        let rules = self.rules();
        format!("{rules}:version{{{rules}}}")
    }

    /// Tells bidding nodes that the increment table changed.
    pub fn rules_channel(&self) -> String {
        format!("{}bid_rules_changed", self.prefix)
    }

    /// Wake-ups for the leader's scheduler (a deadline was added or moved), apart from the live
    /// channel so that the auction service does not receive every bid.
    pub fn deadline_channel(&self) -> String {
        format!("{}deadline_wake", self.prefix)
    }

    /// The leader lease: `instance|epoch` with a TTL. Shares a hash tag with its epoch counter.
    pub fn lease(&self) -> String {
        format!("{}{{leader}}", self.prefix)
    }

    /// The fencing epoch counter: rises with every new lease.
    pub fn lease_epoch(&self) -> String {
        format!("{}{{leader}}:epoch", self.prefix)
    }

    /// Sorted set of auction ids scored by their next deadline (start, then close), in ms.
    pub fn deadlines(&self) -> String {
        format!("{}deadlines", self.prefix)
    }

    /// The pattern matching every key of this prefix (used by tests to clean up).
    #[cfg(feature = "testing")]
    pub fn all_pattern(&self) -> String {
        format!("{}*", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use redis::cluster_routing::{Route, SlotAddr};

    use super::Keys;

    #[test]
    fn the_rules_and_their_version_share_a_slot() {
        for prefix in ["", "t_0123:", "prod."] {
            let keys = Keys::new(prefix);
            let slot = |key: String| Route::with_key(key, SlotAddr::Master);
            assert_eq!(slot(keys.rules()), slot(keys.rules_version()), "prefix {prefix:?}");
            assert!(keys.rules_version().starts_with(prefix));
        }
        assert_ne!(
            Route::with_key(Keys::new("").rules(), SlotAddr::Master),
            Route::with_key("bid_validation_rules:version", SlotAddr::Master),
            "without its tag the version would land elsewhere"
        );
    }
}
