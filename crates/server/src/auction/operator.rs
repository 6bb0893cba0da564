//! What operators change on a live system, behind the operator token: an auction's close
//! (extend), its end (cancel), and the bid increment table. Each change is one script in Redis,
//! whose event is written to MySQL at once through the one writer (`db::write_events`).

use auction_proto::AuctionId;
use auction_proto::BidRules;
use auction_proto::rest::{Auction, ExtendRequest, ExtendResponse, LATEST_MS};
use axum::Json;
use axum::extract::State;

use super::AppState;
use super::openapi::{BadRequest, Conflict, NotFound, TooLarge, Unauthorized, Unavailable};
use super::routes::{AuctionPath, load};
use crate::http::{ApiError, ApiJson};
use crate::store::stored::ms_to_time;
use crate::store::{ChangeOutcome, ChangeRequest, Event};

/// The bid increment table in force.
#[utoipa::path(
    get,
    path = "/rules",
    operation_id = "get_rules",
    responses(
        (status = 200, description = "The increment bands", body = BidRules),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn get_rules(State(state): State<AppState>) -> Result<Json<BidRules>, ApiError> {
    Ok(Json(state.store.rules().await?.table))
}

/// Replaces the bid increment table.
///
/// Every bidding node picks the new table up at once and sends fresh snapshots, since every
/// `min_next_bid` may change.
#[utoipa::path(
    put,
    path = "/rules",
    operation_id = "put_rules",
    request_body = BidRules,
    security(("operator_token" = [])),
    responses(
        (status = 200, description = "The table now in force", body = BidRules),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 413, response = TooLarge),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn put_rules(
    State(state): State<AppState>,
    ApiJson(rules): ApiJson<BidRules>,
) -> Result<Json<BidRules>, ApiError> {
    rules.validate().map_err(|e| ApiError::field("increments", e))?;
    let version = state.store.set_rules(&rules).await?;
    tracing::info!(bands = rules.increments.len(), version, "bid rules replaced");
    Ok(Json(rules))
}

/// Moves an auction's close later.
///
/// Only while the auction is scheduled or active (409 otherwise).
#[utoipa::path(
    post,
    path = "/auctions/{auction_id}/extend",
    operation_id = "extend_auction",
    params(("auction_id" = AuctionId, Path)),
    request_body = ExtendRequest,
    security(("operator_token" = [])),
    responses(
        (status = 200, description = "The close now in force", body = ExtendResponse),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn extend(
    State(state): State<AppState>,
    AuctionPath(id): AuctionPath,
    ApiJson(body): ApiJson<ExtendRequest>,
) -> Result<Json<ExtendResponse>, ApiError> {
    let max = state.config.max_extend.as_secs();
    if body.seconds == 0 || u64::from(body.seconds) > max {
        return Err(ApiError::field("seconds", format!("must be between 1 and {max}")));
    }
    // Checked before the change, so two extensions racing each other could still cross the limit
    // together; only an auction already closing in the year 9999 could, which is not worth a check
    // inside the change script.
    if let Some(record) = state.store.load(&id).await?
        && record.end_ms.saturating_add(i64::from(body.seconds) * 1000) > LATEST_MS
    {
        return Err(ApiError::field("seconds", "would move the close past the year 9999"));
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

/// Cancels an auction.
///
/// Bids are refused from now on and every watcher is told. Only while the auction is scheduled or
/// active (409 otherwise).
#[utoipa::path(
    post,
    path = "/auctions/{auction_id}/cancel",
    operation_id = "cancel_auction",
    params(("auction_id" = AuctionId, Path)),
    security(("operator_token" = [])),
    responses(
        (status = 200, description = "The cancelled auction", body = Auction),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 404, response = NotFound),
        (status = 409, response = Conflict),
        (status = 503, response = Unavailable),
    )
)]
pub(super) async fn cancel(
    State(state): State<AppState>,
    AuctionPath(id): AuctionPath,
) -> Result<Json<Auction>, ApiError> {
    let event = change(&state, &id, ChangeRequest::Cancel).await?;
    state.store.unschedule(&id).await?;
    copy_to_mysql(&state, &event).await;
    Ok(Json(load(&state, &id).await?))
}

/// Writes a change made in Redis to MySQL at once, so the durable record does not wait for the
/// analytics service; a failure is only logged, since the change is on the auction's log and the
/// analytics service writes it with the same statements.
pub(super) async fn copy_to_mysql(state: &AppState, event: &Event) {
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
