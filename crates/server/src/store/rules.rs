//! The increment table every bid is checked against, and its version.
//!
//! Every `PUT` gives the table a new, higher version (`set_rules.lua`), written with it in one
//! step. A bidding node passes the version with the table to the bid script, which keeps the
//! highest version applied to each auction and refuses an older one (`stale_rules`): so once a
//! node has judged a bid on an auction by a new table, no node judges a later bid there by the old
//! one, whether or not it has heard of the change yet.

use std::sync::LazyLock;

use auction_proto::BidRules;
use redis::Script;

use super::event::Live;
use super::{Store, StoreError};

static SET_RULES: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("set_rules.lua")));

/// An increment table and its version: the Redis time in microseconds of the `PUT` that set it
/// (strictly rising); 0 for the defaults, or for a table written before tables had versions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RulesInForce {
    pub version: u64,
    pub table: BidRules,
}

impl Store {
    /// The increment table in force (the defaults when none was ever set), with its version, read
    /// in one step.
    pub async fn rules(&self) -> Result<RulesInForce, StoreError> {
        let mut conn = self.conn.clone();
        let (rules, version) = (self.keys.rules(), self.keys.rules_version());
        let mget = redis::cmd("MGET").arg(&rules).arg(&version).clone();
        let (text, stored_version): (Option<String>, Option<String>) =
            self.bounded(mget.query_async(&mut conn)).await?;
        let table = match text {
            None => BidRules::default(),
            Some(text) => serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{rules}: {e}")))?,
        };
        let version = match stored_version {
            None => 0,
            Some(v) => v.parse().map_err(|_| StoreError::Corrupt(format!("{version}: {v:?}")))?,
        };
        Ok(RulesInForce { version, table })
    }

    /// Replaces the increment table and tells every bidding node to reload it; the new version.
    pub async fn set_rules(&self, rules: &BidRules) -> Result<u64, StoreError> {
        let version = self.write_rules(rules).await?;
        let mut conn = self.conn.clone();
        let _: i64 = self.bounded(self.publish(&mut conn, &self.keys.rules_channel(), &Live::Rules.encode())).await?;
        Ok(version)
    }

    /// Replaces the increment table, with a new version, without telling anyone.
    pub(super) async fn write_rules(&self, rules: &BidRules) -> Result<u64, StoreError> {
        let text = serde_json::to_string(rules).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut invocation = SET_RULES.prepare_invoke();
        invocation.key(self.keys.rules()).key(self.keys.rules_version()).arg(text);
        let mut conn = self.conn.clone();
        let version: String = self.bounded(invocation.invoke_async(&mut conn)).await?;
        version.parse().map_err(|_| StoreError::Corrupt(format!("rules version {version:?}")))
    }
}
