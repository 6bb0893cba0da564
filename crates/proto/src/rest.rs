//! The REST bodies of the auction service (`/api/v1/...`) and the `/health` answer of every service.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::amount::Amount;
use crate::ids::{AuctionId, BidId, UserId};
use crate::ws::{AuctionStatus, RecentBid};

/// `POST /api/v1/auctions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateAuction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub starting_bid: Amount,
    /// Bids this close to the end extend it; 0 turns extension off. Default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_window_s: Option<u32>,
    /// How far past the bid the close moves. Default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extension_s: Option<u32>,
}

/// An auction as the REST API shows it: the snapshot fields and the auction's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Auction {
    pub auction_id: AuctionId,
    pub title: String,
    pub status: AuctionStatus,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    pub starting_bid: Amount,
    pub current_bid: Option<Amount>,
    pub highest_bidder: Option<UserId>,
    pub min_next_bid: Amount,
    pub bid_count: u64,
    pub seq: u64,
    pub server_time: DateTime<Utc>,
    pub recent_bids: Vec<RecentBid>,
    pub extension_window_s: u32,
    pub extension_s: u32,
    pub created_at: DateTime<Utc>,
    /// Set once the auction has ended (null with no bids).
    pub winner: Option<UserId>,
    pub final_price: Option<Amount>,
}

/// `GET /api/v1/auctions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuctionList {
    pub auctions: Vec<Auction>,
}

/// `POST /api/v1/auctions/{id}/extend`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    pub seconds: u32,
}

/// The answer to an extend: the close now in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtendResponse {
    pub auction_id: AuctionId,
    pub end_time: DateTime<Utc>,
    pub previous_end_time: DateTime<Utc>,
}

/// One accepted bid in `GET /api/v1/auctions/{id}/bids`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BidRecord {
    pub bid_id: BidId,
    pub bidder: UserId,
    pub amount: Amount,
    pub seq: u64,
    pub placed_at: DateTime<Utc>,
}

/// A page of bids, oldest first; `next_cursor` is null on the last page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BidsPage {
    pub bids: Vec<BidRecord>,
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/leader`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeaderInfo {
    pub instance_id: Option<String>,
    pub epoch: u64,
    pub lease_ms_left: u64,
    /// The instance that answered (an extension), and whether it believes it leads right now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_by_leader: Option<bool>,
}

/// Every error answer of the REST API: `{"error":{"code","message"}}`, and the offending field
/// where there is one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// `GET /health` of every service: `status` is `ok` when every dependency answers, `degraded`
/// otherwise, and `checks` says which.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub service: String,
    pub instance_id: String,
    pub version: String,
    pub checks: BTreeMap<String, String>,
}
