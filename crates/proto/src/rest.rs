//! The REST bodies of the auction service (`/api/v1/...`) and the `/health` answer of every service.
//!
//! With the `openapi` feature each body also describes itself as an OpenAPI schema, from which the
//! auction service builds the document it serves; attributes tighten a schema where the Rust type
//! says less than the wire does (limits, patterns, which form of amount a request may use).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::amount::Amount;
#[cfg(feature = "openapi")]
use crate::amount::AmountInput;
use crate::ids::{AuctionId, BidId, UserId};
use crate::ws::{AuctionStatus, RecentBid};

/// The longest auction title, in characters, as sent (surrounding white space is trimmed after).
pub const MAX_TITLE_CHARS: usize = 200;
/// The latest time the API carries, 9999-12-31T23:59:59.999Z in Unix milliseconds: RFC 3339 has
/// four-digit years, and chrono would write a later one as `+10000-...`.
pub const LATEST_MS: i64 = 253_402_300_799_999;
/// The most seconds an extension window or an extension may be: one day.
pub const MAX_EXTENSION_S: u32 = 86_400;

/// `POST /api/v1/auctions`: a new auction. Times are RFC 3339; the auction must end after it
/// starts, in the future and before the year 10000, and may run at most the service's
/// `MAX_AUCTION_DURATION` (default a year).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateAuction {
    /// Shown to bidders; at most 200 characters as sent, no control characters; surrounding white
    /// space is trimmed. Absent or blank: "Untitled auction".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = openapi::title))]
    pub title: Option<String>,
    pub start_time: DateTime<Utc>,
    pub end_time: DateTime<Utc>,
    /// At most the service's `MAX_BID`.
    #[cfg_attr(feature = "openapi", schema(value_type = AmountInput))]
    pub starting_bid: Amount,
    /// Bids this close to the end extend it; 0 turns extension off. Default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = openapi::extension_seconds))]
    pub extension_window_s: Option<u32>,
    /// How far past the bid the close moves; at least 1 unless extension is off. Default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(schema_with = openapi::extension_seconds))]
    pub extension_s: Option<u32>,
    /// A hidden reserve: above `starting_bid`; an auction that closes below it has no winner.
    /// Never shown to bidders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<AmountInput>))]
    pub reserve_price: Option<Amount>,
    /// A buy-it-now price: above `starting_bid` and at or above `reserve_price`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<AmountInput>))]
    pub buy_now_price: Option<Amount>,
}

/// An auction as the REST API shows it: the snapshot fields and the auction's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Set once the auction has ended (null with no bids, or with a reserve not met).
    pub winner: Option<UserId>,
    pub final_price: Option<Amount>,
    /// Whether the price has reached the reserve; present only when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve_met: Option<bool>,
    /// The buy-it-now price, present only while it is available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buy_now_price: Option<Amount>,
    /// The reserve itself: only in answers to the operator (the operator token, or the create).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reserve_price: Option<Amount>,
}

/// `GET /api/v1/auctions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuctionList {
    pub auctions: Vec<Auction>,
}

/// `POST /api/v1/auctions/{id}/extend`: how many seconds later the auction should close, from 1 up
/// to the service's `MAX_EXTEND` (default a day).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ExtendRequest {
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub seconds: u32,
}

/// The answer to an extend: the close now in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExtendResponse {
    pub auction_id: AuctionId,
    pub end_time: DateTime<Utc>,
    pub previous_end_time: DateTime<Utc>,
}

/// One accepted bid in `GET /api/v1/auctions/{id}/bids`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BidRecord {
    pub bid_id: BidId,
    /// Who leads after it.
    pub bidder: UserId,
    /// The price after it.
    pub amount: Amount,
    pub seq: u64,
    pub placed_at: DateTime<Utc>,
    /// True when a max placed this price rather than a bid's own amount (as `bid_placed`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub auto: bool,
    /// The bidder whose bid caused this change, when it is not `bidder` (a standing max answered
    /// it at once); `bid_id` is theirs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placed_by: Option<UserId>,
}

/// A page of bids, oldest first; `next_cursor` is null on the last page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BidsPage {
    pub bids: Vec<BidRecord>,
    pub next_cursor: Option<String>,
}

/// `GET /api/v1/leader`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// For people: what was wrong, naming the field first when there is one.
    pub message: String,
    /// The offending field of the request (a JSON path such as `increments[0].from`, or a query or
    /// path parameter), for invalid requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// What kind of error an answer is, for programs; each goes with one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// 400: the request is malformed or a value is out of range.
    InvalidRequest,
    /// 401: the operator token (or, for bidding, the bidder token) is missing or wrong.
    Unauthorized,
    /// 403: the page's origin may not open bidding connections.
    Forbidden,
    /// 429: the user holds its limit of connections on a bidding node.
    TooManyConnections,
    /// 503: the bidding node holds its limit of connections.
    NodeFull,
    /// 404: no such auction, or no such endpoint.
    NotFound,
    /// 409: the auction's state does not allow the change.
    Conflict,
    /// 413: the request body is over the limit.
    BodyTooLarge,
    /// 503: Redis or MySQL does not answer.
    Unavailable,
    /// 500: a defect; the details are in the service's log.
    Internal,
}

/// `GET /health` of every service: `status` is `ok` when every dependency answers, `degraded`
/// otherwise, `starting` until the service first reached them all; `checks` says which.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Health {
    #[cfg_attr(feature = "openapi", schema(schema_with = openapi::health_status))]
    pub status: String,
    pub service: String,
    pub instance_id: String,
    pub version: String,
    pub checks: BTreeMap<String, String>,
}

/// The schemas the Rust types cannot say by themselves.
#[cfg(feature = "openapi")]
mod openapi {
    use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
    use utoipa::openapi::{RefOr, SchemaFormat};

    use super::{MAX_EXTENSION_S, MAX_TITLE_CHARS};

    pub fn title() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::String, Type::Null]))
            .max_length(Some(MAX_TITLE_CHARS))
            // `char::is_control`: the C0 and C1 control characters and DEL.
            .pattern(Some("^[^\\u0000-\\u001F\\u007F-\\u009F]*$"))
            .into()
    }

    pub fn extension_seconds() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::Integer, Type::Null]))
            .format(Some(SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int32)))
            .minimum(Some(0))
            .maximum(Some(MAX_EXTENSION_S))
            .into()
    }

    pub fn health_status() -> RefOr<Schema> {
        ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["ok", "degraded", "starting"])).into()
    }
}
