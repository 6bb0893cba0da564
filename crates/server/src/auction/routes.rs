//! The `/api/v1` handlers: auctions and bid rules. Each handler carries its part of the OpenAPI
//! document (`#[utoipa::path]`), and the router takes each route's path and method from it, so
//! the document and the routes cannot disagree.

use auction_proto::rest::{
    Auction, AuctionList, BidsPage, CreateAuction, LATEST_MS, LeaderInfo, MAX_EXTENSION_S, MAX_TITLE_CHARS,
};
use auction_proto::{Amount, AuctionId, AuctionStatus};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::openapi::{BadRequest, Conflict, NotFound, TooLarge, Unauthorized, Unavailable, limit_schema};
use super::{AppState, operator};
use crate::http::{ApiError, ApiJson};
use crate::store::{CreateOutcome, NewAuction, StoredAuction};

/// The most auctions one list call returns.
const MAX_LIST: usize = 1000;
/// The most bids one page holds.
const MAX_PAGE: u32 = 1000;

fn list_limit() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    limit_schema(MAX_LIST)
}

fn page_limit() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    limit_schema(MAX_PAGE as usize)
}

pub fn router(state: AppState) -> OpenApiRouter<AppState> {
    // Every call that changes state needs the operator token (when one is configured); reads
    // stay open.
    let changes = OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(operator::extend))
        .routes(routes!(operator::cancel))
        .routes(routes!(operator::put_rules))
        .route_layer(axum::middleware::from_fn_with_state(state, require_operator));
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get_one))
        .routes(routes!(bids))
        .routes(routes!(leader))
        .routes(routes!(operator::get_rules))
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
        let given = operator_token(request.headers());
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
    let response = next.run(request).await;
    // Whatever it changed, lists answered from before it are stale now.
    state.list_cache.invalidate();
    Ok(response)
}

/// Creates an auction.
///
/// It starts and ends on time by itself; the answer is the auction as `GET` shows it. With an
/// `Idempotency-Key`, a retry of the same settings answers with the auction the key created,
/// and the key with other settings is a conflict.
#[utoipa::path(
    post,
    path = "/auctions",
    operation_id = "create_auction",
    request_body = CreateAuction,
    params(("Idempotency-Key" = Option<String>, Header,
        description = "1 to 64 printable ASCII characters; a retry with the same key and settings answers with the auction the first created, not a second one")),
    security(("operator_token" = [])),
    responses(
        (status = 201, description = "Created (or, for a retry with the same Idempotency-Key and settings, created before)", body = Auction,
            headers(
                ("Location" = String, description = "The auction's URL path"),
                ("Idempotent-Replayed" = String, description = "`true` when the auction was created by an earlier request with the same Idempotency-Key"),
            ),
            links(
                ("get" = (operation_id = "get_auction", parameters(("auction_id" = "$response.body#/auction_id")))),
                ("bids" = (operation_id = "list_bids", parameters(("auction_id" = "$response.body#/auction_id")))),
                ("extend" = (operation_id = "extend_auction", parameters(("auction_id" = "$response.body#/auction_id")))),
                ("cancel" = (operation_id = "cancel_auction", parameters(("auction_id" = "$response.body#/auction_id")))),
            )),
        (status = 400, response = BadRequest),
        (status = 401, response = Unauthorized),
        (status = 409, response = Conflict),
        (status = 413, response = TooLarge),
        (status = 503, response = Unavailable),
    )
)]
async fn create(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CreateAuction>,
) -> Result<Response, ApiError> {
    let key = idempotency_key(&headers)?;
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
    validate_seller_prices(&body, state.config.max_bid)?;
    let start_ms = body.start_time.timestamp_millis();
    let end_ms = body.end_time.timestamp_millis();
    if end_ms > LATEST_MS {
        return Err(ApiError::field("end_time", "must be before the year 10000"));
    }
    if end_ms <= start_ms {
        return Err(ApiError::field("end_time", "must be after start_time"));
    }
    let fingerprint = request_fingerprint(
        &title,
        start_ms,
        end_ms,
        body.starting_bid.cents(),
        extension_window_s,
        extension_s,
        (body.reserve_price, body.buy_now_price),
    );
    // A retry is answered before the checks against the clock, which a retry of a request that
    // succeeded may no longer pass (its end may be past by now).
    if let Some(key) = key {
        let id = id_for_key(key)?;
        if let Some(found) = state.store.created_with(&id).await? {
            return match (found.key.as_deref(), found.fingerprint.as_deref()) {
                (Some(k), Some(f)) if k == key && f == fingerprint => replayed(&state, &id).await,
                (Some(k), _) if k == key => Err(key_reused(&id)),
                _ => Err(key_taken()),
            };
        }
        // Past retention the auction is in MySQL alone, without its key: the key's window is over.
        match crate::db::retired_auction(&state.reads, &id, chrono::Utc::now().timestamp_micros()).await {
            Ok(Some(_)) => {
                return Err(ApiError::Conflict(format!(
                    "Idempotency-Key was used for auction {id}, which has finished; send a new key for a new auction"
                )));
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(auction = %id, error = %e, "cannot ask mysql whether the key's auction has finished")
            }
        }
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
    let (id, created) = loop {
        let candidate = match key {
            Some(key) => id_for_key(key)?,
            // 64 random bits: a collision is all but impossible, and the create script refuses
            // one anyway.
            None => AuctionId::parse(&uuid::Uuid::new_v4().simple().to_string()[..16])
                .map_err(|e| ApiError::Internal(e.into()))?,
        };
        let new = NewAuction {
            id: &candidate,
            title: &title,
            start_ms,
            end_ms,
            starting_bid: body.starting_bid,
            extension_window_s,
            extension_s,
            idempotency: key.map(|key| (key, fingerprint.as_str())),
            reserve: body.reserve_price,
            buy_now: body.buy_now_price,
        };
        match state.store.create(&new, now_ms).await? {
            CreateOutcome::Created(created) => break (candidate, created),
            // The same key again, concurrently with the first (the check above came before it).
            CreateOutcome::Replay => return replayed(&state, &candidate).await,
            CreateOutcome::Mismatch => return Err(key_reused(&candidate)),
            CreateOutcome::Taken if key.is_some() => return Err(key_taken()),
            CreateOutcome::Taken => {}
            CreateOutcome::Late => {
                return Err(ApiError::Unavailable(anyhow::anyhow!("the create did not reach redis within its window")));
            }
        }
    };
    // The deadline is in the scheduler's index already; this wakes whichever instance leads.
    if let Err(e) = state.store.announce_deadline().await {
        tracing::warn!(auction = %id, error = %e, "cannot wake the scheduler; it looks again within a second");
    }
    state.wake.notify_one();
    operator::copy_to_mysql(&state, &created).await;
    let auction = load_as(&state, &id, Viewer::Operator).await?;
    let location = format!("/api/v1/auctions/{id}");
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(auction)).into_response())
}

/// The request header that makes a create safe to retry.
const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// How long an Idempotency-Key may be.
const MAX_IDEMPOTENCY_KEY: usize = 64;

/// The create's `Idempotency-Key`, if sent: 1 to 64 printable ASCII characters, once.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut values = headers.get_all(IDEMPOTENCY_KEY).iter();
    let Some(value) = values.next() else { return Ok(None) };
    let bad = || {
        ApiError::field(
            "Idempotency-Key",
            format!("must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters, sent once"),
        )
    };
    if values.next().is_some() {
        return Err(bad());
    }
    let key = value.to_str().map_err(|_| bad())?;
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || !key.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        return Err(bad());
    }
    Ok(Some(key))
}

/// The auction id an Idempotency-Key stands for: the first 16 hex digits of its name-based UUID
/// (version 5, SHA-1), the same form as a random id, so that every retry finds the same slot.
fn id_for_key(key: &str) -> Result<AuctionId, ApiError> {
    const KEYS: uuid::Uuid = uuid::uuid!("5b0f3c5e-8f3a-4d6e-9a51-1c2d3e4f5a6b");
    AuctionId::parse(&uuid::Uuid::new_v5(&KEYS, key.as_bytes()).simple().to_string()[..16])
        .map_err(|e| ApiError::Internal(e.into()))
}

/// What makes two creates the same request: the settings once validated and defaulted, as the
/// name-based UUID (version 5) of their JSON. The reserve and the buy-it-now price join the
/// settings only when either is set, so a request without them has the fingerprint it always had.
fn request_fingerprint(
    title: &str,
    start_ms: i64,
    end_ms: i64,
    starting_bid: i64,
    extension_window_s: u32,
    extension_s: u32,
    (reserve, buy_now): (Option<Amount>, Option<Amount>),
) -> String {
    const REQUESTS: uuid::Uuid = uuid::uuid!("9e7d2a41-3b6c-4f08-8d15-7a2b9c0e4f31");
    let mut settings = serde_json::json!([title, start_ms, end_ms, starting_bid, extension_window_s, extension_s]);
    if (reserve, buy_now) != (None, None)
        && let Some(list) = settings.as_array_mut()
    {
        list.push(reserve.map(Amount::cents).into());
        list.push(buy_now.map(Amount::cents).into());
    }
    uuid::Uuid::new_v5(&REQUESTS, settings.to_string().as_bytes()).simple().to_string()
}

/// The seller's reserve and buy-it-now price: the reserve above the starting bid; the buy-it-now
/// price above the starting bid and at or above the reserve; both at most `MAX_BID`.
fn validate_seller_prices(body: &CreateAuction, max_bid: Amount) -> Result<(), ApiError> {
    if let Some(reserve) = body.reserve_price {
        if reserve <= body.starting_bid {
            return Err(ApiError::field(
                "reserve_price",
                format!("must be above starting_bid ({})", body.starting_bid),
            ));
        }
        if reserve > max_bid {
            return Err(ApiError::field("reserve_price", format!("must be at most {max_bid}")));
        }
    }
    if let Some(buy_now) = body.buy_now_price {
        if buy_now <= body.starting_bid {
            return Err(ApiError::field(
                "buy_now_price",
                format!("must be above starting_bid ({})", body.starting_bid),
            ));
        }
        if body.reserve_price.is_some_and(|reserve| buy_now < reserve) {
            return Err(ApiError::field("buy_now_price", "must be at or above reserve_price"));
        }
        if buy_now > max_bid {
            return Err(ApiError::field("buy_now_price", format!("must be at most {max_bid}")));
        }
    }
    Ok(())
}

/// The answer to a retry: the auction the key created, as it is now, as the first answer was.
async fn replayed(state: &AppState, id: &AuctionId) -> Result<Response, ApiError> {
    let auction = load_as(state, id, Viewer::Operator).await?;
    let location = format!("/api/v1/auctions/{id}");
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location), (HeaderName::from_static("idempotent-replayed"), "true".to_owned())],
        Json(auction),
    )
        .into_response())
}

fn key_reused(id: &AuctionId) -> ApiError {
    ApiError::Conflict(format!(
        "Idempotency-Key was already used to create auction {id} with other settings; send a new key for a new auction"
    ))
}

fn key_taken() -> ApiError {
    ApiError::Conflict("Idempotency-Key: its auction id is taken by another auction; send another key".to_owned())
}

/// Checks the title as sent (the limit is on what the client sends, white space included), then
/// trims it.
fn validate_title(title: Option<&str>) -> Result<String, ApiError> {
    let title = title.unwrap_or("");
    if title.chars().count() > MAX_TITLE_CHARS {
        return Err(ApiError::field("title", format!("is longer than {MAX_TITLE_CHARS} characters")));
    }
    if title.chars().any(char::is_control) {
        return Err(ApiError::field("title", "contains control characters"));
    }
    let title = title.trim();
    Ok(if title.is_empty() { "Untitled auction".to_owned() } else { title.to_owned() })
}

/// Who reads an auction: the operator (the create's answer, or a request with the operator
/// token) is shown the reserve; anyone else is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Viewer {
    Anyone,
    Operator,
}

impl Viewer {
    /// The operator when `ADMIN_TOKEN` is set and the request carries it; anyone else otherwise
    /// (reads are open, and without a token nobody can prove to be the operator).
    fn of(state: &AppState, headers: &HeaderMap) -> Viewer {
        match &state.admin_token {
            Some(expected)
                if operator_token(headers)
                    .is_some_and(|given| crate::http::same_secret(given.as_bytes(), expected.as_bytes())) =>
            {
                Viewer::Operator
            }
            _ => Viewer::Anyone,
        }
    }
}

/// The bearer token of a request, if it sent one.
fn operator_token(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "))
}

pub(super) async fn load(state: &AppState, id: &AuctionId) -> Result<Auction, ApiError> {
    load_as(state, id, Viewer::Anyone).await
}

pub(super) async fn load_as(state: &AppState, id: &AuctionId, viewer: Viewer) -> Result<Auction, ApiError> {
    let record = find(state, id).await?.ok_or_else(|| ApiError::NotFound(format!("no auction {id}")))?;
    let rules = state.store.rules().await?;
    Ok(match viewer {
        Viewer::Anyone => record.to_auction(&rules.table, state.config.max_bid)?,
        Viewer::Operator => record.to_operator_auction(&rules.table, state.config.max_bid)?,
    })
}

/// An auction from Redis, or once its keys have expired (`ENDED_RETENTION` after it finished)
/// its final state from MySQL.
async fn find(state: &AppState, id: &AuctionId) -> Result<Option<StoredAuction>, ApiError> {
    if let Some(record) = state.store.load(id).await? {
        return Ok(Some(record));
    }
    crate::db::retired_auction(&state.reads, id, chrono::Utc::now().timestamp_micros())
        .await
        .map_err(|e| ApiError::Unavailable(e.into()))
}

/// Adds to a list read from Redis the finished auctions whose keys have expired, from MySQL:
/// both newest first, merged by creation time, Redis's version first. MySQL not answering leaves
/// the list as Redis has it, with a warning: live auctions matter more than the archive.
async fn with_retired(
    state: &AppState,
    mut auctions: Vec<Auction>,
    status: Option<AuctionStatus>,
    limit: usize,
    rules: &auction_proto::BidRules,
) -> Result<Vec<Auction>, ApiError> {
    let now_us = chrono::Utc::now().timestamp_micros();
    let retired = match crate::db::retired_ids(&state.reads, status, limit).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list finished auctions from mysql; listing redis alone");
            return Ok(auctions);
        }
    };
    let known: std::collections::HashSet<AuctionId> = auctions.iter().map(|a| a.auction_id.clone()).collect();
    let missing: Vec<AuctionId> = retired.into_iter().filter(|id| !known.contains(id)).collect();
    let records =
        futures_util::future::join_all(missing.iter().map(|id| crate::db::retired_auction(&state.reads, id, now_us)))
            .await;
    for record in records {
        match record {
            Ok(Some(record)) => auctions.push(record.to_auction(rules, state.config.max_bid)?),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot read a finished auction from mysql"),
        }
    }
    // Newest first, ties as the index orders them (the greater id first).
    auctions.sort_by(|a, b| b.created_at.cmp(&a.created_at).then_with(|| b.auction_id.cmp(&a.auction_id)));
    auctions.truncate(limit);
    Ok(auctions)
}

/// The `{auction_id}` of the path, validated. A segment that is not even UTF-8 gets the same JSON
/// error as any other bad id, not axum's plain-text rejection.
pub(super) struct AuctionPath(pub(super) AuctionId);

impl<S: Send + Sync> FromRequestParts<S> for AuctionPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::field("auction_id", e.body_text()))?;
        AuctionId::parse(&text).map(AuctionPath).map_err(|e| ApiError::field("auction_id", e))
    }
}

/// The live state of one auction: the snapshot fields plus its settings; `winner` and
/// `final_price` once it has ended (with a reserve, only if it was met).
///
/// `reserve_price` is shown only to the operator: with `ADMIN_TOKEN` set, to a request that
/// carries it.
#[utoipa::path(
    get,
    path = "/auctions/{auction_id}",
    operation_id = "get_auction",
    params(("auction_id" = AuctionId, Path)),
    responses(
        (status = 200, description = "The auction", body = Auction),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
async fn get_one(
    State(state): State<AppState>,
    headers: HeaderMap,
    AuctionPath(id): AuctionPath,
) -> Result<Json<Auction>, ApiError> {
    Ok(Json(load_as(&state, &id, Viewer::of(&state, &headers)).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ListParams {
    /// Only auctions in this state.
    #[param(value_type = Option<AuctionStatus>)]
    status: Option<String>,
    /// How many auctions at most; default 100.
    #[param(schema_with = list_limit)]
    limit: Option<usize>,
}

/// The auctions, newest first.
#[utoipa::path(
    get,
    path = "/auctions",
    operation_id = "list_auctions",
    params(ListParams),
    responses(
        (status = 200, description = "The auctions", body = AuctionList),
        (status = 400, response = BadRequest),
        (status = 503, response = Unavailable),
    )
)]
async fn list(
    State(state): State<AppState>,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest { field: None, message: e.body_text() })?;
    let status: Option<AuctionStatus> =
        params.status.as_deref().map(str::parse).transpose().map_err(|e: String| ApiError::field("status", e))?;
    let limit = params.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_LIST {
        return Err(ApiError::field("limit", format!("must be between 1 and {MAX_LIST}")));
    }
    let body = state.list_cache.get(status, limit, load_list(&state, status, limit)).await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// The list answer as JSON, loaded from Redis (and MySQL for finished auctions).
async fn load_list(
    state: &AppState,
    status: Option<AuctionStatus>,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    let rules = state.store.rules().await?;
    let listed = state.store.list(status, limit).await?;
    state.metrics.list_loads.increment(listed.loaded as u64);
    let auctions = listed
        .auctions
        .iter()
        .map(|record| record.to_auction(&rules.table, state.config.max_bid))
        .collect::<Result<_, _>>()?;
    let auctions = with_retired(state, auctions, status, limit, &rules.table).await?;
    let body = serde_json::to_vec(&AuctionList { auctions }).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(body.into())
}

/// Who holds the scheduler's lease, its epoch and how long it has left.
#[utoipa::path(
    get,
    path = "/leader",
    operation_id = "get_leader",
    responses(
        (status = 200, description = "The lease", body = LeaderInfo),
        (status = 503, response = Unavailable),
    )
)]
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

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct BidsParams {
    /// How many bids at most; default 100.
    #[param(schema_with = page_limit)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page; absent or empty for the first.
    #[param(pattern = "^([0-9]+(\\.[0-9]+)?)?$")]
    cursor: Option<String>,
}

/// The accepted bids of an auction, oldest first, a page at a time.
///
/// Read from MySQL, where bids arrive within about a second of being accepted, in `seq` order. The
/// cursor is the `seq` of the last bid of the previous page, or `seq.row` when the next page
/// starts with another bid of that same seq (possible only after Redis lost bids and reused
/// their seqs: both bids are kept).
#[utoipa::path(
    get,
    path = "/auctions/{auction_id}/bids",
    operation_id = "list_bids",
    params(("auction_id" = AuctionId, Path), BidsParams),
    responses(
        (status = 200, description = "A page of bids", body = BidsPage),
        (status = 400, response = BadRequest),
        (status = 404, response = NotFound),
        (status = 503, response = Unavailable),
    )
)]
async fn bids(
    State(state): State<AppState>,
    AuctionPath(id): AuctionPath,
    params: Result<Query<BidsParams>, QueryRejection>,
) -> Result<Json<BidsPage>, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::BadRequest { field: None, message: e.body_text() })?;
    let limit = params.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::field("limit", format!("must be between 1 and {MAX_PAGE}")));
    }
    let after = match params.cursor.as_deref() {
        None | Some("") => crate::db::BidsAfter::default(),
        Some(cursor) => {
            parse_cursor(cursor).ok_or_else(|| ApiError::field("cursor", "is not a cursor from a previous page"))?
        }
    };
    if find(&state, &id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no auction {id}")));
    }
    let mut rows = crate::db::bids_page(&state.reads, id.as_str(), after, limit)
        .await
        .map_err(|e| ApiError::Unavailable(e.into()))?;
    let next = rows.get(limit as usize).map(|(_, bid)| bid.seq);
    rows.truncate(limit as usize);
    let next_cursor = match (rows.last(), next) {
        // The next page starts inside this seq: name the row too.
        (Some((row, last)), Some(seq)) if seq == last.seq => Some(format!("{}.{row}", last.seq)),
        (Some((_, last)), Some(_)) => Some(last.seq.to_string()),
        _ => None,
    };
    Ok(Json(BidsPage { bids: rows.into_iter().map(|(_, bid)| bid).collect(), next_cursor }))
}

/// A bids cursor: `seq` (after every bid at that seq), or `seq.row` (after that row of the seq,
/// when two bids share it). Digits only: `u64::from_str` would also take a sign, which no cursor
/// of ours has.
fn parse_cursor(cursor: &str) -> Option<crate::db::BidsAfter> {
    let number = |text: &str| Some(text).filter(|t| t.bytes().all(|b| b.is_ascii_digit())).and_then(|t| t.parse().ok());
    match cursor.split_once('.') {
        None => Some(crate::db::BidsAfter { seq: number(cursor)?, id: None }),
        Some((seq, row)) => Some(crate::db::BidsAfter { seq: number(seq)?, id: Some(number(row)?) }),
    }
}
