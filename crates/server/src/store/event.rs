//! The one event type: every change of an auction, as the scripts write it to the auction's
//! durable log and publish it for live fan-out (`docs/protocol.md`, "Events").
//!
//! The scripts encode an event once, as one JSON object, and use that same text for the log
//! entry, the publish, the recent-bids list and a bid's stored outcome. This module is the only
//! decoder. Integers travel as decimal strings, because Lua prints large integers exactly only
//! through `string.format('%.0f')`; the decoder also takes JSON numbers. Amounts are in cents.
//!
//! Log entries are versioned: version 2 is `v=2 event=<json>`; version 1 (no `v` field) spelled
//! the same keys as separate stream fields and is still read, so a running deployment upgrades
//! without losing what its logs hold.

use std::collections::HashMap;

use auction_proto::{Amount, AuctionId, BidId, RejectReason, UserId};
use serde::{Deserialize, Serialize};

use super::StoreError;

/// The log format the scripts write now.
pub const LOG_VERSION: &str = "2";

/// One change of one auction. `seq` is the auction's version after the change; the creation is
/// version 0.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    Created(Created),
    Bid(Bid),
    Started(Started),
    Extended(Extended),
    Ended(Ended),
    Cancelled(Cancelled),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Created {
    pub auction_id: AuctionId,
    /// Absent from version-1 entries, where the creation was always version 0.
    #[serde(default, with = "num")]
    pub seq: u64,
    pub title: String,
    #[serde(with = "num")]
    pub start_ms: i64,
    #[serde(with = "num")]
    pub end_ms: i64,
    #[serde(with = "cents")]
    pub starting_bid: Amount,
    #[serde(rename = "ext_window_s", with = "num")]
    pub extension_window_s: u32,
    #[serde(rename = "ext_s", with = "num")]
    pub extension_s: u32,
    #[serde(with = "num")]
    pub created_ms: i64,
}

/// An accepted bid. Also the stored outcome of the bid, so a retry replays it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bid {
    pub auction_id: AuctionId,
    #[serde(with = "num")]
    pub seq: u64,
    pub bid_id: BidId,
    pub bidder: UserId,
    #[serde(with = "cents")]
    pub amount: Amount,
    #[serde(with = "num")]
    pub bid_count: u64,
    /// Redis time of the acceptance, in microseconds.
    #[serde(with = "num")]
    pub placed_us: i64,
    /// The close in force after this bid, and before it (they differ when the bid extended it).
    #[serde(with = "num")]
    pub end_ms: i64,
    #[serde(with = "num")]
    pub prev_end_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Started {
    pub auction_id: AuctionId,
    #[serde(with = "num")]
    pub seq: u64,
    #[serde(with = "num")]
    pub end_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extended {
    pub auction_id: AuctionId,
    #[serde(with = "num")]
    pub seq: u64,
    #[serde(with = "num")]
    pub end_ms: i64,
    #[serde(with = "num")]
    pub prev_end_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    pub auction_id: AuctionId,
    #[serde(with = "num")]
    pub seq: u64,
    /// `None` (absent, or empty in version 1) when nobody bid.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "optional")]
    pub winner: Option<UserId>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "optional_cents")]
    pub final_price: Option<Amount>,
    #[serde(with = "num")]
    pub bid_count: u64,
    /// The close that ended it.
    #[serde(with = "num")]
    pub end_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancelled {
    pub auction_id: AuctionId,
    #[serde(with = "num")]
    pub seq: u64,
}

impl Event {
    pub fn auction_id(&self) -> &AuctionId {
        match self {
            Event::Created(e) => &e.auction_id,
            Event::Bid(e) => &e.auction_id,
            Event::Started(e) => &e.auction_id,
            Event::Extended(e) => &e.auction_id,
            Event::Ended(e) => &e.auction_id,
            Event::Cancelled(e) => &e.auction_id,
        }
    }

    pub fn seq(&self) -> u64 {
        match self {
            Event::Created(e) => e.seq,
            Event::Bid(e) => e.seq,
            Event::Started(e) => e.seq,
            Event::Extended(e) => e.seq,
            Event::Ended(e) => e.seq,
            Event::Cancelled(e) => e.seq,
        }
    }

    /// The event's `type` as written.
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Created(_) => "created",
            Event::Bid(_) => "bid",
            Event::Started(_) => "started",
            Event::Extended(_) => "extended",
            Event::Ended(_) => "ended",
            Event::Cancelled(_) => "cancelled",
        }
    }

    /// Whether nothing can follow it: the auction is over.
    pub fn is_final(&self) -> bool {
        matches!(self, Event::Ended(_) | Event::Cancelled(_))
    }

    /// Decodes the JSON the scripts write.
    pub fn decode(text: &str) -> Result<Event, StoreError> {
        serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("event {text}: {e}")))
    }

    /// The JSON the scripts write for this event (tests and tools use it to write events).
    pub fn encode(&self) -> String {
        // Serializing these plain structs cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Decodes a log entry's fields, of either version.
    pub fn from_log_fields(fields: &HashMap<String, String>) -> Result<Event, LogEntryError> {
        match fields.get("v").map(String::as_str) {
            Some(LOG_VERSION) => {
                let text = fields.get("event").ok_or_else(|| LogEntryError::Corrupt("no event field".into()))?;
                serde_json::from_str(text).map_err(|e| LogEntryError::Corrupt(format!("{text}: {e}")))
            }
            Some(other) if other.parse::<u32>().is_ok_and(|v| v > 2) => Err(LogEntryError::Newer(other.to_owned())),
            Some(other) => Err(LogEntryError::Corrupt(format!("version {other:?}"))),
            // Version 1: the same keys, one stream field each.
            None => {
                let object: serde_json::Map<String, serde_json::Value> =
                    fields.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
                serde_json::from_value(serde_json::Value::Object(object))
                    .map_err(|e| LogEntryError::Corrupt(format!("version 1 entry {fields:?}: {e}")))
            }
        }
    }
}

/// Why a log entry does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogEntryError {
    /// Written by scripts newer than this code (a rolling upgrade): it must stay on the log for an
    /// instance that reads it, never be acknowledged and lost.
    #[error("log entry of version {0}, newer than this instance reads (version {LOG_VERSION})")]
    Newer(String),
    /// Not an event of any version (a bug or a foreign writer): nothing can ever write it.
    #[error("unreadable log entry: {0}")]
    Corrupt(String),
}

/// What the live channel carries: auction events, and notices that are not about one auction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Live {
    Event(Event),
    /// The increment table changed: reload it.
    Rules,
    /// A deadline was added or moved (on the deadline channel): wake the scheduler.
    Deadline,
}

/// The notices' own shape: `{"type":"rules"}` and `{"type":"deadline"}`.
#[derive(Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Notice {
    Rules,
    Deadline,
}

impl Live {
    pub fn decode(text: &str) -> Result<Live, StoreError> {
        // Events are nearly every message, so they are tried first.
        if let Ok(event) = serde_json::from_str::<Event>(text) {
            return Ok(Live::Event(event));
        }
        match serde_json::from_str::<Notice>(text) {
            Ok(Notice::Rules) => Ok(Live::Rules),
            Ok(Notice::Deadline) => Ok(Live::Deadline),
            Err(_) => Event::decode(text).map(Live::Event),
        }
    }

    pub fn encode(&self) -> String {
        match self {
            Live::Event(event) => event.encode(),
            Live::Rules => serde_json::to_string(&Notice::Rules).unwrap_or_default(),
            Live::Deadline => serde_json::to_string(&Notice::Deadline).unwrap_or_default(),
        }
    }
}

/// The bid script's answer: a bid's stored outcome (the accepted bid's event, or why it was
/// refused), or, never stored, word that the increment table it was given is older than one
/// already applied to the auction (version `rules_v`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Verdict {
    Bid(Bid),
    Rejected {
        reason: RejectReason,
        #[serde(default, with = "optional_cents")]
        current: Option<Amount>,
        #[serde(default, with = "optional_cents")]
        min_next: Option<Amount>,
    },
    StaleRules {
        #[serde(with = "num")]
        rules_v: u64,
    },
}

/// One entry of the recent-bids list: the bid's event (version 1 wrote only these four keys,
/// which is all a snapshot shows).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RecentEntry {
    pub bidder: UserId,
    #[serde(with = "cents")]
    pub amount: Amount,
    #[serde(with = "num")]
    pub seq: u64,
    #[serde(with = "num")]
    pub placed_us: i64,
}

/// Integers as decimal strings (and, read, as JSON numbers too).
mod num {
    use std::fmt::Display;
    use std::str::FromStr;

    use serde::de::{Unexpected, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<T: Display, S: Serializer>(value: &T, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }

    pub fn deserialize<'de, T: FromStr, D: Deserializer<'de>>(deserializer: D) -> Result<T, D::Error> {
        deserializer.deserialize_any(Integer(std::marker::PhantomData))
    }

    struct Integer<T>(std::marker::PhantomData<T>);

    impl<T: FromStr> Visitor<'_> for Integer<T> {
        type Value = T;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an integer in range, as a decimal string")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<T, E> {
            text.parse().map_err(|_| E::invalid_value(Unexpected::Str(text), &self))
        }

        fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<T, E> {
            n.to_string().parse().map_err(|_| E::invalid_value(Unexpected::Signed(n), &self))
        }

        fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<T, E> {
            n.to_string().parse().map_err(|_| E::invalid_value(Unexpected::Unsigned(n), &self))
        }
    }
}

/// An amount as its cents, a decimal string.
mod cents {
    use auction_proto::Amount;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(amount: &Amount, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&amount.cents())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Amount, D::Error> {
        let cents: i64 = super::num::deserialize(deserializer)?;
        Amount::from_cents(cents).ok_or_else(|| serde::de::Error::custom("not an amount in cents"))
    }
}

/// An optional amount in cents; absent or empty is `None`.
mod optional_cents {
    use auction_proto::Amount;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(amount: &Option<Amount>, serializer: S) -> Result<S::Ok, S::Error> {
        match amount {
            Some(amount) => super::cents::serialize(amount, serializer),
            None => serializer.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Amount>, D::Error> {
        match Option::<String>::deserialize(deserializer)?.filter(|text| !text.is_empty()) {
            None => Ok(None),
            Some(text) => text
                .parse()
                .ok()
                .and_then(Amount::from_cents)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom("not an amount in cents")),
        }
    }
}

/// An optional id; absent or empty is `None`.
mod optional {
    use auction_proto::UserId;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(id: &Option<UserId>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(id.as_ref().map_or("", UserId::as_str))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<UserId>, D::Error> {
        match Option::<String>::deserialize(deserializer)?.filter(|text| !text.is_empty()) {
            None => Ok(None),
            Some(text) => UserId::parse(&text).map(Some).map_err(serde::de::Error::custom),
        }
    }
}

#[cfg(test)]
mod tests;
