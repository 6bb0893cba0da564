//! The increment table every bid is checked against.

use auction_proto::BidRules;
use redis::AsyncCommands;

use super::event::Live;
use super::{Store, StoreError};

impl Store {
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
        let _: i64 = self.bounded(self.publish(&mut conn, &self.keys.rules_channel(), &Live::Rules.encode())).await?;
        Ok(())
    }
}
