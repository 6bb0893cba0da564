//! The messages on the live pub/sub channel: what the scripts publish for fan-out to every node.
//! Internal to the services (clients see `proto::ws` frames made from them), so the format can
//! change with the scripts; numbers are strings because Lua cannot print large integers exactly
//! any other way.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveMessage {
    /// An accepted bid (published by `bid.lua`).
    Bid(Box<BidMessage>),
    /// The increment table changed: reload it.
    Rules,
    /// An auction started (published by `advance.lua`).
    Started { auction_id: String, seq: String, end_ms: String },
    /// An auction ended; `winner` and `final_price` (cents) are empty without bids.
    Ended { auction_id: String, seq: String, winner: String, final_price: String, end_ms: String },
    /// An operator extended an auction (published by `change.lua`).
    Extended { auction_id: String, seq: String, end_ms: String, prev_end_ms: String },
    /// An operator cancelled an auction.
    Cancelled { auction_id: String, seq: String },
    /// A deadline was added or moved: wakes the scheduler of whichever instance leads.
    Deadline,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BidMessage {
    pub auction_id: String,
    pub bid_id: String,
    pub bidder: String,
    pub amount: String,
    pub seq: String,
    pub bid_count: String,
    pub placed_us: String,
    pub end_ms: String,
    pub prev_end_ms: String,
}
