//! The `/api/v1` handlers: auctions and bid rules.

use auction_proto::rest::{Auction, AuctionList, BidsPage, CreateAuction, ExtendRequest, ExtendResponse, LeaderInfo};
use auction_proto::{AuctionId, AuctionStatus, BidRules};
use axum::Json;
use axum::Router;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

use serde::Deserialize;

use super::AppState;
use crate::http::{ApiError, ApiJson};
use crate::store::stored::ms_to_time;
use crate::store::{ChangeOutcome, ChangeRequest, Event, NewAuction};

/// The longest title accepted, in characters.
const MAX_TITLE: usize = 200;
/// The most seconds an extension window or an extension may be.
const MAX_EXTENSION_S: u32 = 86_400;
/// The most auctions one list call returns.
const MAX_LIST: usize = 1000;

pub fn router(state: AppState) -> Router<AppState> {
    // Every call that changes state needs the operator token (when one is configured); reads
    // stay open.
    let changes = Router::new()
        .route("/auctions", post(create))
        .route("/auctions/{auction_id}/extend", post(extend))
        .route("/auctions/{auction_id}/cancel", post(cancel))
        .route("/rules", put(put_rules))
        .route_layer(axum::middleware::from_fn_with_state(state, require_operator));
    Router::new()
        .route("/auctions", get(list))
        .route("/auctions/{auction_id}", get(get_one))
        .route("/auctions/{auction_id}/bids", get(bids))
        .route("/leader", get(leader))
        .route("/rules", get(get_rules))
        .merge(changes)
}

/// Refuses a state-changing call without `Authorization: Bearer <ADMIN_TOKEN>`, before its body
/// is read.
async fn require_operator(
    State(state): State<AppState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Result<Response, ApiError> {
    if let Some(expected) = &state.admin_token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            None => {
                return Err(ApiError::Unauthorized(
                    "this call needs the operator token (Authorization: Bearer ...)".to_owned(),
                ));
            }
            Some(given) if !crate::http::same_secret(given.as_bytes(), expected.as_bytes()) => {
                return Err(ApiError::Unauthorized("the operator token is not valid".to_owned()));
            }
            Some(_) => {}
        }
    }
    Ok(next.run(request).await)
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
    let (id, created) = loop {
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
        if let Some(created) = state.store.create(&new).await? {
            break (candidate, created);
        }
    };
    // The scheduler's index, then a wake-up for whichever instance leads.
    state.store.schedule(&id, start_ms).await?;
    if let Err(e) = state.store.announce_deadline().await {
        tracing::warn!(auction = %id, error = %e, "cannot wake the scheduler; it looks again within a second");
    }
    state.wake.notify_one();
    copy_to_mysql(&state, &created).await;
    let auction = load(&state, &id).await?;
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

/// `POST /auctions/{id}/extend {"seconds":N}`: moves the close N seconds later; only while the
/// auction is scheduled or active.
async fn extend(
    State(state): State<AppState>,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ExtendRequest>,
) -> Result<Json<ExtendResponse>, ApiError> {
    let id = parse_id(&id)?;
    let max = state.config.max_extend.as_secs();
    if body.seconds == 0 || u64::from(body.seconds) > max {
        return Err(ApiError::field("seconds", format!("must be between 1 and {max}")));
    }
    let event = change(&state, &id, ChangeRequest::Extend { seconds: body.seconds }).await?;
    let Event::Extended(extended) = &event else {
        return Err(ApiError::Internal(anyhow::anyhow!("extend answered with another change")));
    };
    // An active auction's next deadline is its close; a scheduled one keeps its start.
    if let Some(next) = state.store.load(&id).await?.and_then(|r| r.next_deadline_ms()) {
        state.store.schedule(&id, next).await?;
    }
    if let Err(e) = state.store.announce_deadline().await {
        tracing::warn!(auction = %id, error = %e, "cannot wake the scheduler; it looks again within a second");
    }
    state.wake.notify_one();
    copy_to_mysql(&state, &event).await;
    Ok(Json(ExtendResponse {
        end_time: ms_to_time(extended.end_ms)?,
        previous_end_time: ms_to_time(extended.prev_end_ms)?,
        auction_id: id,
    }))
}

/// `POST /auctions/{id}/cancel`: refuses bids from now on and tells every watcher.
async fn cancel(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Auction>, ApiError> {
    let id = parse_id(&id)?;
    let event = change(&state, &id, ChangeRequest::Cancel).await?;
    state.store.unschedule(&id).await?;
    copy_to_mysql(&state, &event).await;
    Ok(Json(load(&state, &id).await?))
}

/// Writes a change made in Redis to MySQL at once, so the durable record does not wait for the
/// analytics service; a failure is only logged, since the change is on the auction's log and the
/// analytics service writes it with the same statements.
async fn copy_to_mysql(state: &AppState, event: &Event) {
    if let Err(e) = crate::db::write_events(&state.db, &[event]).await {
        tracing::warn!(auction = %event.auction_id(), kind = event.kind(), error = %e, "not yet recorded in mysql");
    }
}

/// Runs an operator's change, turning "no such auction" and "already over" into 404 and 409.
async fn change(state: &AppState, id: &AuctionId, request: ChangeRequest) -> Result<Event, ApiError> {
    let verb = match request {
        ChangeRequest::Extend { .. } => "extended",
        ChangeRequest::Cancel => "cancelled",
    };
    match state.store.change(id, request).await? {
        ChangeOutcome::Missing => Err(ApiError::NotFound(format!("no auction {id}"))),
        ChangeOutcome::Conflict(status) => Err(ApiError::Conflict(format!(
            "auction {id} is {}; only a scheduled or active auction can be {verb}",
            status.as_str()
        ))),
        ChangeOutcome::Changed(event) => Ok(event),
    }
}

/// `GET /leader`: who holds the lease, its epoch and how long it has left.
async fn leader(State(state): State<AppState>) -> Result<Json<LeaderInfo>, ApiError> {
    let (holder, epoch, ms_left) = state.store.leader().await?;
    let this_instance_leads = state.lease.borrow().is_some_and(|l| l.is_valid());
    Ok(Json(LeaderInfo {
        instance_id: holder,
        epoch,
        lease_ms_left: u64::try_from(ms_left).unwrap_or(0),
        answered_by: Some(state.instance_id.to_string()),
        answered_by_leader: Some(this_instance_leads),
    }))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BidsParams {
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /auctions/{id}/bids?limit=&cursor=`: the accepted bids from MySQL, oldest first. The
/// cursor is the `seq` of the last bid of the previous page.
async fn bids(
    State(state): State<AppState>,
    Path(id): Path<String>,
    params: Result<Query<BidsParams>, QueryRejection>,
) -> Result<Json<BidsPage>, ApiError> {
    let id = parse_id(&id)?;
    let Query(params) = params.map_err(|e| ApiError::BadRequest { field: None, message: e.body_text() })?;
    let limit = params.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::field("limit", "must be between 1 and 1000"));
    }
    let after: u64 = match params.cursor.as_deref() {
        None | Some("") => 0,
        Some(cursor) => {
            cursor.parse().map_err(|_| ApiError::field("cursor", "is not a cursor from a previous page"))?
        }
    };
    if state.store.load(&id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no auction {id}")));
    }
    let mut bids = crate::db::bids_page(&state.db, id.as_str(), after, limit)
        .await
        .map_err(|e| ApiError::Unavailable(e.into()))?;
    let more = bids.len() > limit as usize;
    bids.truncate(limit as usize);
    let next_cursor = if more { bids.last().map(|b| b.seq.to_string()) } else { None };
    Ok(Json(BidsPage { bids, next_cursor }))
}
