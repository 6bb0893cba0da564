//! Store calls for tests and tools only (behind the `testing` feature): reading a log whole,
//! writing a log entry of the old format, changing the rules unannounced, and deleting a prefix.

use std::collections::HashMap;

use auction_proto::AuctionId;
use redis::AsyncCommands;

use super::conn::Conn;
use super::event::Event;
use super::{Store, StoreError};

impl Store {
    /// Every event on an auction's durable log, oldest first (an unreadable entry is an error).
    pub async fn log_events(&self, id: &AuctionId) -> Result<Vec<Event>, StoreError> {
        let fields = self.log_fields(id).await?;
        fields.iter().map(|f| Event::from_log_fields(f).map_err(|e| StoreError::Corrupt(e.to_string()))).collect()
    }

    /// The `type` of every entry on an auction's durable log, oldest first.
    pub async fn log_types(&self, id: &AuctionId) -> Result<Vec<String>, StoreError> {
        Ok(self.log_events(id).await?.iter().map(|e| e.kind().to_owned()).collect())
    }

    /// Every entry of the log, with its fields as written.
    pub async fn log_fields(&self, id: &AuctionId) -> Result<Vec<HashMap<String, String>>, StoreError> {
        let mut conn = self.conn.clone();
        let reply: redis::streams::StreamRangeReply = self.bounded(conn.xrange_all(self.keys.auction(id).log)).await?;
        Ok(reply
            .ids
            .iter()
            .map(|e| e.map.keys().filter_map(|k| Some((k.clone(), e.get::<String>(k)?))).collect())
            .collect())
    }

    /// Appends `fields` to an auction's log as they are, as an older version of the scripts (or
    /// a foreign writer) would have.
    pub async fn append_raw_log_entry<V: AsRef<str>>(
        &self,
        id: &AuctionId,
        fields: &[(&str, V)],
    ) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_ref())).collect();
        let _: String = self.bounded(conn.xadd(self.keys.auction(id).log, "*", &fields)).await?;
        Ok(())
    }

    /// Replaces the increment table, with a new version, as `PUT /rules` does but without the
    /// notice to the bidding nodes (as if pub/sub had dropped it); the new version.
    pub async fn set_rules_unannounced(&self, rules: &auction_proto::BidRules) -> Result<u64, StoreError> {
        self.write_rules(rules).await
    }

    /// A connection for raw commands, to look at keys as they are (one Redis or a cluster alike).
    pub fn connection(&self) -> Conn {
        self.conn.clone()
    }

    /// The raw bytes (`DUMP`) of each of `keys`, to compare states exactly.
    pub async fn dump(&self, keys: &[String]) -> Result<Vec<Option<Vec<u8>>>, StoreError> {
        let mut conn = self.conn.clone();
        let mut dumps = Vec::new();
        for key in keys {
            dumps.push(self.bounded(redis::cmd("DUMP").arg(key).query_async(&mut conn)).await?);
        }
        Ok(dumps)
    }

    /// Every key under this store's prefix. For tests, which each own a prefix.
    pub async fn all_keys(&self) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        Ok(if let Conn::Cluster(_) = conn {
            // Every primary's keys, combined by the client (a test's few are fine to list whole).
            redis::cmd("KEYS").arg(self.keys.all_pattern()).query_async(&mut conn).await?
        } else {
            let mut iter: redis::AsyncIter<String> = conn.scan_match(self.keys.all_pattern()).await?;
            let mut keys = Vec::new();
            while let Some(key) = futures_util::StreamExt::next(&mut iter).await {
                keys.push(key?);
            }
            keys
        })
    }

    /// Deletes every key under this store's prefix. For tests, which each own a prefix.
    pub async fn delete_all(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        for key in self.all_keys().await? {
            let _: () = conn.del(key).await?;
        }
        Ok(())
    }
}
