//! The WebSocket protocol of the bidding service: every frame a client or the server sends.
//!
//! Frames are JSON objects tagged by `type`. [`ClientFrame::decode`] turns a text frame into a typed
//! frame or a [`FrameError`] whose code and message go back to the client in an `error` frame.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::amount::{Amount, AmountInput};
use crate::ids::{AuctionId, BidId, UserId};

/// An auction's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum AuctionStatus {
    Scheduled,
    Active,
    Ended,
    Cancelled,
}

impl AuctionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AuctionStatus::Scheduled => "scheduled",
            AuctionStatus::Active => "active",
            AuctionStatus::Ended => "ended",
            AuctionStatus::Cancelled => "cancelled",
        }
    }
}

impl std::str::FromStr for AuctionStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "scheduled" => Ok(AuctionStatus::Scheduled),
            "active" => Ok(AuctionStatus::Active),
            "ended" => Ok(AuctionStatus::Ended),
            "cancelled" => Ok(AuctionStatus::Cancelled),
            other => Err(format!("unknown status {other:?}; expected scheduled, active, ended or cancelled")),
        }
    }
}

/// Why a bid was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    BidTooLow,
    AuctionNotStarted,
    AuctionEnded,
    AuctionCancelled,
    AuctionNotFound,
    AlreadyHighestBidder,
    InvalidAmount,
    RateLimited,
    Unavailable,
    /// The current bid is `MAX_BID`: no higher bid can be placed.
    MaxBidReached,
}

impl RejectReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::BidTooLow => "bid_too_low",
            RejectReason::AuctionNotStarted => "auction_not_started",
            RejectReason::AuctionEnded => "auction_ended",
            RejectReason::AuctionCancelled => "auction_cancelled",
            RejectReason::AuctionNotFound => "auction_not_found",
            RejectReason::AlreadyHighestBidder => "already_highest_bidder",
            RejectReason::InvalidAmount => "invalid_amount",
            RejectReason::RateLimited => "rate_limited",
            RejectReason::Unavailable => "unavailable",
            RejectReason::MaxBidReached => "max_bid_reached",
        }
    }
}

impl std::str::FromStr for RejectReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(serde_json::Value::String(s.to_owned()))
            .map_err(|_| format!("unknown reject reason {s:?}"))
    }
}

/// A frame from a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    PlaceBid(PlaceBid),
    Ping,
    Sync,
}

/// `place_bid`: the amount as sent (checked by the server, so a bad one is a `bid_rejected` with
/// `invalid_amount`) and an optional client id that makes a retry idempotent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceBid {
    pub amount: AmountInput,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bid_id: Option<BidId>,
    /// A proxy bid: the most the system may bid for this bidder, at least `amount` (see
    /// docs/protocol.md, "Proxy bids"). Absent: a plain bid, whose max is its amount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_amount: Option<AmountInput>,
}

/// Why a client frame could not be decoded; `code` is the `error` frame's code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FrameError {
    pub code: &'static str,
    pub message: String,
}

impl ClientFrame {
    /// Decodes a text frame. The `type` is read first so that an unknown type and a bad field are
    /// told apart, each with its own code.
    pub fn decode(text: &str) -> Result<ClientFrame, FrameError> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| FrameError { code: "malformed_json", message: format!("frame is not valid JSON: {e}") })?;
        let kind = match value.get("type") {
            _ if !value.is_object() => return Err(invalid("a frame must be a JSON object with a \"type\"")),
            Some(serde_json::Value::String(kind)) => kind.clone(),
            Some(_) => return Err(invalid("\"type\" must be a string")),
            None => return Err(invalid("frame has no \"type\"")),
        };
        if !matches!(kind.as_str(), "place_bid" | "ping" | "sync") {
            let shown: String = kind.chars().take(64).collect();
            return Err(FrameError {
                code: "unknown_type",
                message: format!("unknown frame type {shown:?}; expected place_bid, ping or sync"),
            });
        }
        serde_json::from_value(value).map_err(|e| invalid(&format!("bad {kind} frame: {e}")))
    }

    /// The frame as JSON text.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn invalid(message: &str) -> FrameError {
    FrameError { code: "invalid_frame", message: message.to_owned() }
}

/// The close code of a connection whose bidder token expired (reason text `token expired`),
/// after an `error` frame with the code [`TOKEN_EXPIRED`]. In the range left to applications, so
/// that a client can tell it from every other close and ask for a new token rather than
/// reconnect: a reconnect with the same token gets 401.
pub const TOKEN_EXPIRED_CLOSE: u16 = 4001;

/// The `error` frame code sent just before [`TOKEN_EXPIRED_CLOSE`].
pub const TOKEN_EXPIRED: &str = "token_expired";

/// A frame from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    Snapshot(Snapshot),
    BidAccepted(BidAccepted),
    BidRejected(BidRejected),
    BidPlaced(BidPlaced),
    AuctionExtended(AuctionExtended),
    AuctionStarted(AuctionStarted),
    AuctionEnded(AuctionEnded),
    AuctionCancelled(AuctionCancelled),
    Pong,
    Error(ErrorFrame),
}

impl ServerFrame {
    /// The frame as JSON text.
    pub fn encode(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The auction version this frame describes, for frames that carry one.
    pub fn seq(&self) -> Option<u64> {
        match self {
            ServerFrame::Snapshot(f) => Some(f.seq),
            ServerFrame::BidAccepted(f) => Some(f.seq),
            ServerFrame::BidPlaced(f) => Some(f.seq),
            ServerFrame::AuctionExtended(f) => Some(f.seq),
            ServerFrame::AuctionStarted(f) => Some(f.seq),
            ServerFrame::AuctionEnded(f) => Some(f.seq),
            ServerFrame::AuctionCancelled(f) => Some(f.seq),
            ServerFrame::BidRejected(_) | ServerFrame::Pong | ServerFrame::Error(_) => None,
        }
    }
}

/// The whole state of an auction at version `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub auction_id: AuctionId,
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
    /// The latest accepted bids, newest first.
    pub recent_bids: Vec<RecentBid>,
    /// Whether the price has reached the seller's reserve; present only when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve_met: Option<bool>,
    /// The buy-it-now price, present only while it is available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buy_now_price: Option<Amount>,
    /// The receiving bidder's own max, present only in the leader's snapshots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub your_max: Option<Amount>,
}

/// One accepted bid as listed in a snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecentBid {
    pub bidder: UserId,
    pub amount: Amount,
    pub seq: u64,
    pub placed_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BidAccepted {
    pub auction_id: AuctionId,
    pub bid_id: BidId,
    /// The price the bid stands at when it leads; the bid's own amount when a standing max beat it.
    pub amount: Amount,
    pub seq: u64,
    pub end_time: DateTime<Utc>,
    /// False when a standing max beat the bid at once (it still raised the price).
    #[serde(default = "yes")]
    pub leading: bool,
    /// The price after the bid (proxy answers and beaten bids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_bid: Option<Amount>,
    /// The next acceptable bid after this one (proxy answers and beaten bids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_next_bid: Option<Amount>,
    /// The bidder's max, when it leads with one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub your_max: Option<Amount>,
    /// True when the bid bought the auction at its buy-it-now price (the auction has ended).
    #[serde(default, skip_serializing_if = "is_false")]
    pub bought_now: bool,
}

fn yes() -> bool {
    true
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BidRejected {
    pub auction_id: AuctionId,
    pub bid_id: Option<BidId>,
    pub reason: RejectReason,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_next_bid: Option<Amount>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_bid: Option<Amount>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BidPlaced {
    pub auction_id: AuctionId,
    /// The accepted bid's id (an extension: lets a client match its own bids in the feed).
    pub bid_id: BidId,
    pub amount: Amount,
    pub bidder: UserId,
    pub seq: u64,
    pub end_time: DateTime<Utc>,
    pub bid_count: u64,
    pub placed_at: DateTime<Utc>,
    /// The next acceptable bid under the rules this node holds (an extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_next_bid: Option<Amount>,
    /// True when a max placed this price rather than a bid's own amount.
    #[serde(default, skip_serializing_if = "is_false")]
    pub auto: bool,
    /// The bidder whose bid caused this change, when it is not `bidder` (a standing max answered it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placed_by: Option<UserId>,
    /// Whether the price has reached the reserve; present only when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve_met: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuctionExtended {
    pub auction_id: AuctionId,
    pub end_time: DateTime<Utc>,
    pub previous_end_time: DateTime<Utc>,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuctionStarted {
    pub auction_id: AuctionId,
    pub seq: u64,
    pub end_time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuctionEnded {
    pub auction_id: AuctionId,
    pub winner: Option<UserId>,
    pub final_price: Option<Amount>,
    pub seq: u64,
    /// Present only when there was a reserve: false means no sale (`winner` and `final_price` null).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve_met: Option<bool>,
    /// True when a bid bought the auction at its buy-it-now price.
    #[serde(default, skip_serializing_if = "is_false")]
    pub bought_now: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuctionCancelled {
    pub auction_id: AuctionId,
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorFrame {
    pub code: String,
    pub message: String,
}
