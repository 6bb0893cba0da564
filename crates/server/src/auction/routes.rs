//! The `/api/v1` handlers: auctions and bid rules.

use auction_proto::rest::{Auction, AuctionList, CreateAuction};
use auction_proto::{AuctionId, AuctionStatus, BidRules};
use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use serde::Deserialize;

use super::AppState;
use crate::http::{ApiError, ApiJson};
use crate::store::NewAuction;

/// The longest title accepted, in characters.
const MAX_TITLE: usize = 200;
/// The most seconds an extension window or an extension may be.
const MAX_EXTENSION_S: u32 = 86_400;
/// The most auctions one list call returns.
const MAX_LIST: usize = 1000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auctions", get(list).post(create))
        .route("/auctions/{auction_id}", get(get_one))
        .route("/rules", get(get_rules).put(put_rules))
}

async fn create(State(state): State<AppState>, ApiJson(body): ApiJson<CreateAuction>) -> Result<Response, ApiError> {
    let title = validate_title(body.title.as_deref())?;
    let extension_window_s = body.extension_window_s.unwrap_or(30);
    let extension_s = body.extension_s.unwrap_or(30);
    if extension_window_s > MAX_EXTENSION_S {
        return Err(ApiError::field("extension_window_s", format!("must be at most {MAX_EXTENSION_S}")));
    }
    if extension_s > MAX_EXTENSION_S || (extension_s == 0 && extension_window_s > 0) {
        return Err(ApiError::field("extension_s", format!("must be between 1 and {MAX_EXTENSION_S}")));
    }
    if body.starting_bid > state.config.max_bid {
        return Err(ApiError::field("starting_bid", format!("must be at most {}", state.config.max_bid)));
    }
    let start_ms = body.start_time.timestamp_millis();
    let end_ms = body.end_time.timestamp_millis();
    if end_ms <= start_ms {
        return Err(ApiError::field("end_time", "must be after start_time"));
    }
    let now_ms = state.store.now_ms().await?;
    if end_ms <= now_ms {
        return Err(ApiError::field("end_time", "is in the past"));
    }
    let max_ms = i64::try_from(state.config.max_duration.as_millis()).unwrap_or(i64::MAX);
    if end_ms - start_ms.max(now_ms) > max_ms {
        return Err(ApiError::field(
            "end_time",
            format!("the auction may run at most {:?}", state.config.max_duration),
        ));
    }
    // 64 random bits: a collision is all but impossible, and the create script refuses one anyway.
    let id = loop {
        let candidate = AuctionId::parse(&uuid::Uuid::new_v4().simple().to_string()[..16])
            .map_err(|e| ApiError::Internal(e.into()))?;
        let new = NewAuction {
            id: &candidate,
            title: &title,
            start_ms,
            end_ms,
            starting_bid: body.starting_bid,
            extension_window_s,
            extension_s,
        };
        if state.store.create(&new).await?.is_some() {
            break candidate;
        }
    };
    let auction = load(&state, &id).await?;
    // Redis is the source of truth for a live auction; the row is its durable copy. The creation
    // is also on the auction's event log, so a row missed here is written by the log consumer.
    if let Err(e) = crate::db::insert_auction(&state.db, &auction).await {
        tracing::warn!(auction = %id, error = %e, "auction created, but not yet recorded in mysql");
    }
    let location = format!("/api/v1/auctions/{id}");
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(auction)).into_response())
}

fn validate_title(title: Option<&str>) -> Result<String, ApiError> {
    let title = title.unwrap_or("").trim();
    if title.chars().count() > MAX_TITLE {
        return Err(ApiError::field("title", format!("is longer than {MAX_TITLE} characters")));
    }
    if title.chars().any(char::is_control) {
        return Err(ApiError::field("title", "contains control characters"));
    }
    Ok(if title.is_empty() { "Untitled auction".to_owned() } else { title.to_owned() })
}

async fn load(state: &AppState, id: &AuctionId) -> Result<Auction, ApiError> {
    let record = state.store.load(id).await?.ok_or_else(|| ApiError::NotFound(format!("no auction {id}")))?;
    let rules = state.store.rules().await?;
    Ok(record.to_auction(&rules)?)
}

fn parse_id(text: &str) -> Result<AuctionId, ApiError> {
    AuctionId::parse(text).map_err(|e| ApiError::field("auction_id", e))
}

async fn get_one(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Auction>, ApiError> {
    Ok(Json(load(&state, &parse_id(&id)?).await?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    status: Option<String>,
    limit: Option<usize>,
}

/// `GET /auctions?status=&limit=`: the newest auctions first.
async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<AuctionList>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest { field: None, message: e.body_text() })?;
    let status: Option<AuctionStatus> =
        params.status.as_deref().map(str::parse).transpose().map_err(|e: String| ApiError::field("status", e))?;
    let limit = params.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIST {
        return Err(ApiError::field("limit", format!("must be between 1 and {MAX_LIST}")));
    }
    let rules = state.store.rules().await?;
    // With a status filter, look further back so that `limit` matches can still be found.
    let scan = if status.is_some() { MAX_LIST * 10 } else { limit };
    let ids = state.store.recent_ids(scan).await?;
    let records = futures_util::future::join_all(ids.iter().map(|id| state.store.load(id))).await;
    let mut auctions = Vec::new();
    for record in records {
        let Some(record) = record? else { continue };
        let auction = record.to_auction(&rules)?;
        if status.is_none_or(|s| s == auction.status) {
            auctions.push(auction);
            if auctions.len() == limit {
                break;
            }
        }
    }
    Ok(Json(AuctionList { auctions }))
}

async fn get_rules(State(state): State<AppState>) -> Result<Json<BidRules>, ApiError> {
    Ok(Json(state.store.rules().await?))
}

async fn put_rules(
    State(state): State<AppState>,
    ApiJson(rules): ApiJson<BidRules>,
) -> Result<Json<BidRules>, ApiError> {
    rules.validate().map_err(|e| ApiError::field("increments", e))?;
    state.store.set_rules(&rules).await?;
    tracing::info!(bands = rules.increments.len(), "bid rules replaced");
    Ok(Json(rules))
}
