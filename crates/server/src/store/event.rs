//! The one event type: every change of an auction, as the scripts write it to the auction's
//! durable log and publish it for live fan-out (`docs/protocol.md`, "Events").
//!
//! The scripts encode an event once, as one JSON object, and use that same text for the log
//! entry, the publish, the recent-bids list and a bid's stored outcome. This module is the only
//! decoder. Integers travel as decimal strings, because Lua prints large integers exactly only
//! through `string.format('%.0f')`; the decoder also takes JSON numbers. Amounts are in cents.
//!
//! Log entries are versioned: version 2 is `v=2 event=<json>`; version 3 is the same with the
//! proxy-bid fields (`auto`, `placed_by`, a `max_raised` event) and, for a bid with a max, the max
//! in a stream field of its own, `proxy`, beside the event and never in it (the event is published;
//! the max is secret). Version 1 (no `v` field) spelled the same keys as separate stream fields and
//! is still read, so a running deployment upgrades without losing what its logs hold.

use std::collections::HashMap;

use auction_proto::{Amount, AuctionId, BidId, RejectReason, UserId};
use serde::{Deserialize, Serialize};

use super::StoreError;

/// The newest log format this code reads (the scripts write version 2 for plain changes and
/// version 3 for what only proxy bids make).
pub const LOG_VERSION: &str = "3";

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
    /// A leader raised their max without changing the price: logged (version 3) for audit,
    /// never published, and it changes no `seq`.
    MaxRaised(MaxRaised),
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
    /// The seller's reserve, when set (the log is private; the reserve is never shown to bidders).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "optional_cents")]
    pub reserve: Option<Amount>,
    /// The buy-it-now price, when set.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "optional_cents")]
    pub buy_now: Option<Amount>,
}

/// A change of the price: an accepted bid, or a standing max answering one. Also the stored
/// outcome of a plain bid that leads at its own amount, so a retry replays it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bid {
    pub auction_id: AuctionId,
    #[serde(with = "num")]
    pub seq: u64,
    /// The id of the bid that caused the change (`placed_by`'s, when set).
    pub bid_id: BidId,
    /// Who leads after the change.
    pub bidder: UserId,
    /// The price after the change.
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
    /// A max placed the price rather than the bid's own amount.
    #[serde(default, skip_serializing_if = "std::ops::Not::not", with = "flag")]
    pub auto: bool,
    /// The bidder whose bid caused the change, when it is not `bidder` (a standing max beat it).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "optional")]
    pub placed_by: Option<UserId>,
    /// Whether the price is at or above the reserve; only with a reserve.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "optional_flag")]
    pub reserve_met: Option<bool>,
    /// The bid's max, from the log entry's `proxy` field (never in the event's text, which is
    /// published): only on events read from the log, for a bid that had one.
    #[serde(skip)]
    pub proxy: Option<Box<Proxy>>,
}

impl Bid {
    /// The bidder whose bid this was: the bid's identity is (`placed_by`, `bid_id`).
    pub fn placed_by(&self) -> &UserId {
        self.placed_by.as_ref().unwrap_or(&self.bidder)
    }
}

/// A leader's raise of their max that changed no price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaxRaised {
    pub auction_id: AuctionId,
    /// The auction's version, unchanged by the raise.
    #[serde(with = "num")]
    pub seq: u64,
    pub bidder: UserId,
    pub bid_id: BidId,
    #[serde(with = "num")]
    pub placed_us: i64,
    /// The max, from the log entry's `proxy` field.
    #[serde(skip)]
    pub proxy: Option<Box<Proxy>>,
}

/// A bid's max as the log keeps it, beside the event (the `proxy` stream field): for audit, and
/// MySQL's `proxy_bids`. Its `Debug` leaves the max out, so that no log line can show it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proxy {
    pub bidder: UserId,
    pub bid_id: BidId,
    #[serde(with = "cents")]
    pub amount: Amount,
    #[serde(with = "cents")]
    pub max: Amount,
    #[serde(with = "num")]
    pub placed_us: i64,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("bidder", &self.bidder)
            .field("bid_id", &self.bid_id)
            .field("amount", &self.amount)
            .field("max", &"<secret>")
            .field("placed_us", &self.placed_us)
            .finish()
    }
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
    /// The close that ended it (for a buy-it-now, the time of the buy).
    #[serde(with = "num")]
    pub end_ms: i64,
    /// Whether the price reached the reserve; only with a reserve. Not met: no winner, no price.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "optional_flag")]
    pub reserve_met: Option<bool>,
    /// A bid bought the auction at its buy-it-now price.
    #[serde(default, skip_serializing_if = "std::ops::Not::not", with = "flag")]
    pub bought_now: bool,
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
            Event::MaxRaised(e) => &e.auction_id,
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
            Event::MaxRaised(e) => e.seq,
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
            Event::MaxRaised(_) => "max_raised",
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

    /// Decodes a log entry's fields, of any version this code reads. A version-3 entry's `proxy`
    /// field (a bid's max) is attached to its event.
    pub fn from_log_fields(fields: &HashMap<String, String>) -> Result<Event, LogEntryError> {
        match fields.get("v").map(String::as_str) {
            Some(version @ ("2" | "3")) => {
                let text = fields.get("event").ok_or_else(|| LogEntryError::Corrupt("no event field".into()))?;
                let mut event: Event =
                    serde_json::from_str(text).map_err(|e| LogEntryError::Corrupt(format!("{text}: {e}")))?;
                if let Some(proxy) = fields.get("proxy").filter(|_| version == "3") {
                    // The error names no part of the text: it holds a max.
                    let proxy: Box<Proxy> = serde_json::from_str(proxy)
                        .map_err(|e| LogEntryError::Corrupt(format!("unreadable proxy field beside {text}: {e}")))?;
                    match &mut event {
                        Event::Bid(bid) => bid.proxy = Some(proxy),
                        Event::MaxRaised(raised) => raised.proxy = Some(proxy),
                        _ => return Err(LogEntryError::Corrupt(format!("a proxy field beside {text}"))),
                    }
                }
                Ok(event)
            }
            Some(other) if other.parse::<u32>().is_ok_and(|v| v > 3) => Err(LogEntryError::Newer(other.to_owned())),
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
    Accepted(Accepted),
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

/// A stored outcome of an accepted bid other than a plain one that leads at its own amount: one
/// with a max, one a standing max beat, a raise of the leader's max, a buy.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Accepted {
    /// The bid's version: the price change's, the auction's unchanged one for a raise that
    /// changed no price.
    #[serde(with = "num")]
    pub seq: u64,
    /// The price the bid stands at when it leads; its own amount when a standing max beat it.
    #[serde(with = "cents")]
    pub amount: Amount,
    /// The price after the bid.
    #[serde(with = "cents")]
    pub current: Amount,
    /// The next bid's minimum after it; absent once no bid can be placed.
    #[serde(default, with = "optional_cents")]
    pub min_next: Option<Amount>,
    #[serde(with = "flag")]
    pub leading: bool,
    /// The bidder's max, when it leads with one (not after a buy).
    #[serde(default, with = "optional_cents")]
    pub your_max: Option<Amount>,
    #[serde(default, with = "flag")]
    pub bought_now: bool,
    #[serde(with = "num")]
    pub end_ms: i64,
    #[serde(with = "num")]
    pub prev_end_ms: i64,
    #[serde(with = "num")]
    pub placed_us: i64,
    /// After a buy: the auction's creation time (its score in the status indexes).
    #[serde(default, with = "optional_num")]
    pub created_ms: Option<i64>,
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

/// A flag as `"1"` (true) or `"0"`; absent is false where a default applies.
mod flag {
    use serde::{Deserialize, Deserializer, Serializer};

    #[allow(clippy::trivially_copy_pass_by_ref)]
    pub fn serialize<S: Serializer>(value: &bool, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(if *value { "1" } else { "0" })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
        match String::deserialize(deserializer)?.as_str() {
            "1" => Ok(true),
            "0" | "" => Ok(false),
            other => Err(serde::de::Error::custom(format!("not a flag: {other:?}"))),
        }
    }
}

/// An optional flag: `"1"`, `"0"`, or absent (or empty) for `None`.
mod optional_flag {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Option<bool>, serializer: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(value) => super::flag::serialize(value, serializer),
            None => serializer.serialize_str(""),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
        match Option::<String>::deserialize(deserializer)?.as_deref() {
            None | Some("") => Ok(None),
            Some("1") => Ok(Some(true)),
            Some("0") => Ok(Some(false)),
            Some(other) => Err(serde::de::Error::custom(format!("not a flag: {other:?}"))),
        }
    }
}

/// An optional integer as a decimal string; absent is `None`.
mod optional_num {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
        match Option::<String>::deserialize(deserializer)?.filter(|text| !text.is_empty()) {
            None => Ok(None),
            Some(text) => text.parse().map(Some).map_err(|_| serde::de::Error::custom("not an integer")),
        }
    }
}

#[cfg(test)]
mod tests;
