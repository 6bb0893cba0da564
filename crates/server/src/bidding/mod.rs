//! The bidding service: WebSocket bidding at `/ws/auction/{id}` and live fan-out to every watcher
//! on every node. It needs Redis only: MySQL being down never touches the bidding path.

#[cfg(feature = "testing")]
mod gate;
mod hub;
mod limits;
mod live;
mod metrics;
mod sequencer;
mod socket;
mod web;

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use auction_proto::{AuctionId, UserId};
use axum::Router;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::config::{BiddingConfig, Config};
use crate::http::{ApiError, check, health_response, not_found};
use crate::runtime::{Server, Waiting};
use crate::serving::{Routes, Serving};
use crate::store::{Store, StoredAuction, Subscription};
use hub::{Hubs, RulesCache, reload_rules};

/// What every handler and connection shares; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    store: Store,
    hubs: Hubs,
    config: Arc<BiddingConfig>,
    instance_id: Arc<str>,
    /// The bidder-token secret; `None` trusts `user_id` (development).
    auth_secret: Option<Arc<[u8]>>,
    limits: limits::Limits,
    metrics: Arc<metrics::BidMetrics>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// `MYSQL_READ_DSN`'s pool, if set: where finished auctions are found once their Redis keys
    /// have expired.
    archive: Option<sqlx::MySqlPool>,
    #[cfg(feature = "testing")]
    gate: Option<Arc<HandshakeGate>>,
}

pub struct App {
    listener: TcpListener,
    config: Config<BiddingConfig>,
    waiting: Waiting,
    routes: Routes,
    #[cfg(feature = "testing")]
    gate: Option<Arc<HandshakeGate>>,
}

#[cfg(feature = "testing")]
pub use gate::HandshakeGate;

impl App {
    /// Binds the port. Redis is reached in [`App::run`], while the start-up routes answer (see
    /// [`crate::starting`]). MySQL is none of this service's business.
    pub async fn build(config: Config<BiddingConfig>, _shutdown: &CancellationToken) -> anyhow::Result<App> {
        let listener = crate::runtime::bind(&config).await?;
        let waiting = Waiting::new("bidding", &config.instance_id, &[Server::REDIS.check]);
        let routes = Routes::new(waiting.router());
        Ok(App {
            listener,
            config,
            waiting,
            routes,
            #[cfg(feature = "testing")]
            gate: None,
        })
    }

    /// Holds every WebSocket handshake after it read its snapshot, until the gate opens.
    #[cfg(feature = "testing")]
    pub fn gate_handshakes(&mut self) -> Arc<HandshakeGate> {
        self.gate.get_or_insert_with(Arc::default).clone()
    }

    pub fn local_addr(&self) -> SocketAddr {
        crate::runtime::local_addr(&self.listener)
    }

    /// Resolves once Redis answered and bids are taken.
    pub fn ready(&self) -> impl Future<Output = ()> + Send + 'static + use<> {
        self.waiting.ready()
    }

    /// Serves at once; connects to Redis (waiting while it cannot be reached), starts the live
    /// subscription (the rules channel; each hub adds its auction's) and takes bids until
    /// `shutdown`; then closes every WebSocket with 1001 and waits for them.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        #[cfg(feature = "testing")]
        let gate = self.gate.clone();
        let App { listener, config, waiting, routes, .. } = self;
        let serving = Serving { http: config.http, send_buffer: config.service.send_buffer };
        let starting = async |tracker: &TaskTracker, stop: &CancellationToken| {
            let store = crate::runtime::open_store(&config.redis, &waiting, stop)
                .await?
                .with_durability(config.service.bid_durability, config.service.replica_timeout);
            let feed = store.subscribe(vec![store.rules_channel()]);
            let rules = RulesCache::default();
            let first_read = || reload_rules(&store, &rules);
            crate::runtime::redis_patiently(&waiting, stop, first_read).await.context("cannot read the bid rules")?;
            #[allow(unused_mut)]
            let mut state = start(config, store, feed, rules, tracker, stop);
            #[cfg(feature = "testing")]
            {
                state.gate = gate;
            }
            routes.replace(router(state));
            waiting.done();
            Ok(())
        };
        crate::runtime::serve_while_starting(listener, routes.clone(), serving, &shutdown, starting).await
    }
}

/// Starts the live subscription's listener and returns what the service's routes share.
fn start(
    config: Config<BiddingConfig>,
    store: Store,
    feed: Subscription,
    rules: RulesCache,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> AppState {
    let bidding = config.service;
    let hubs = Hubs::new(
        store.clone(),
        feed.feed(),
        rules,
        bidding.max_bid,
        bidding.watcher_queue,
        tracker.clone(),
        shutdown.clone(),
    );
    let listener_task = live::Listener { hubs: hubs.clone() };
    tracker.spawn(listener_task.run(feed, shutdown.clone()));
    let archive = bidding.mysql_read.as_ref().map(crate::db::lazy_reader);
    AppState {
        archive,
        store,
        hubs,
        instance_id: config.instance_id.into(),
        auth_secret: config.auth.secret.map(Into::into),
        limits: limits::Limits::new(
            bidding.max_connections,
            bidding.max_connections_per_user,
            bidding.bid_rate_per_user,
        ),
        config: Arc::new(bidding),
        metrics: Arc::new(metrics::BidMetrics::new()),
        shutdown: shutdown.clone(),
        tracker: tracker.clone(),
        #[cfg(feature = "testing")]
        gate: None,
    }
}

pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .route("/ws/auction/{auction_id}", get(connect))
        .route("/health", get(health))
        .route("/metrics", get(|State(state): State<AppState>| async move { state.metrics.render() }))
        .merge(web::router(state.config.web_api_url.as_deref()))
        .fallback(not_found);
    crate::request_log::traced(routes).with_state(state)
}

async fn health(State(state): State<AppState>) -> Response {
    let mut checks = BTreeMap::new();
    checks.insert("redis".to_owned(), check(state.store.ping().await));
    health_response("bidding", &state.instance_id, checks)
}

/// `GET /ws/auction/{id}?user_id=U`: validates the ids, checks the auction exists, joins its hub
/// and reads the first snapshot, all before the upgrade, so a bad request gets a plain HTTP error.
async fn connect(
    State(state): State<AppState>,
    Path(auction_id): Path<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: axum::http::HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    // Browsers always send Origin; other clients need not, and are not what this guards against.
    if let (Some(allowed), Some(origin)) = (&state.config.allowed_origins, headers.get(axum::http::header::ORIGIN)) {
        let origin = origin.to_str().unwrap_or_default().trim_end_matches('/');
        if !allowed.iter().any(|a| a == origin) {
            return Err(ApiError::Forbidden(format!("origin {origin:?} may not open bidding connections")));
        }
    }
    let auction = AuctionId::parse(&auction_id).map_err(|e| ApiError::field("auction_id", short(e)))?;
    let (user, token_exp) = match (&state.auth_secret, params.get("token")) {
        // With a secret, the token alone says who bids, until it expires; `user_id` is ignored.
        (Some(secret), Some(token)) => {
            let bidder = auction_proto::auth::verify_bidder(secret, token)
                .map_err(|e| ApiError::Unauthorized(format!("token: {e}")))?;
            (bidder.user, Some(bidder.exp))
        }
        (Some(_), None) => return Err(ApiError::Unauthorized("a token is required (?token=...)".to_owned())),
        (None, _) => match params.get("user_id") {
            Some(user) => (UserId::parse(user).map_err(|e| ApiError::field("user_id", short(e)))?, None),
            None => return Err(ApiError::field("user_id", "is required (?user_id=...)")),
        },
    };
    let upgrade = upgrade.map_err(|e| ApiError::BadRequest { field: None, message: e.body_text() })?;
    let admitted = state.limits.admit(&user).map_err(|refusal| match refusal {
        limits::Refusal::NodeFull(n) => {
            ApiError::Busy(format!("this node holds its limit of {n} connections; try another"))
        }
        limits::Refusal::UserFull(n) => ApiError::TooMany(format!("{user} already has {n} connections here")),
    })?;
    let membership = state.hubs.join(&auction);
    membership.subscribed().await;
    let snapshot = first_snapshot(&state, &auction, &user, &membership).await?;
    let span = connection_span(&auction, &user, &headers);
    let config = &state.config;
    let tracker = state.tracker.clone();
    // Small buffers: most connections are idle watchers, and the 128 KiB default read buffer
    // would dominate their memory. Frames are small; the buffer grows for a rare large one.
    let upgrade = upgrade
        .max_message_size(config.max_message_bytes)
        .max_frame_size(config.max_message_bytes)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0);
    Ok(upgrade
        .on_upgrade(move |socket| {
            let bids = limits::Bucket::new(state.config.bid_rate_per_connection);
            let connection = socket::Connection {
                socket,
                state,
                user,
                auction,
                membership,
                last_seq: 0,
                bids,
                _admitted: admitted,
                token_exp,
                your_max: None,
            };
            tracker.track_future(connection.run(snapshot).instrument(span))
        })
        .into_response())
}

/// The snapshot a new watcher is shown first (with its own max when it leads), read once the node listens on the auction's channel
/// and handed to the hub, which forwards every event after it. One read, but for a watcher that
/// joined a new hub together with another whose snapshot was newer and went first: it reads again
/// (once is enough, since the hub started from a snapshot read before this answer).
async fn first_snapshot(
    state: &AppState,
    auction: &AuctionId,
    user: &UserId,
    membership: &hub::Membership,
) -> Result<auction_proto::ws::Snapshot, ApiError> {
    for _ in 0..3 {
        let record = find(state, auction).await?.ok_or_else(|| ApiError::NotFound(format!("no auction {auction}")))?;
        #[cfg(feature = "testing")]
        if let Some(gate) = &state.gate {
            gate.pass().await;
        }
        if membership.seed(&record) {
            return Ok(record.snapshot_for(user, &state.hubs.rules().table, state.config.max_bid)?);
        }
    }
    Err(ApiError::Internal(anyhow::anyhow!("the auction's hub kept starting after this watcher's snapshot")))
}

/// An auction from Redis or, once its keys have expired (`ENDED_RETENTION` after it finished),
/// its final state from MySQL when `MYSQL_READ_DSN` is set.
async fn find(state: &AppState, id: &AuctionId) -> Result<Option<StoredAuction>, ApiError> {
    if let Some(record) = state.store.load(id).await? {
        return Ok(Some(record));
    }
    let Some(archive) = &state.archive else { return Ok(None) };
    crate::db::retired_auction(archive, id, chrono::Utc::now().timestamp_micros())
        .await
        .map_err(|e| ApiError::Unavailable(e.into()))
}

/// The span of one connection, over everything logged while serving it. A root span, not a
/// child of the handshake's request span: that one ends with the upgrade, and its status and
/// latency would mislead on every line of a connection that lasts an hour. The handshake's
/// `request_id` is copied instead, to find its line.
fn connection_span(auction: &AuctionId, user: &UserId, headers: &axum::http::HeaderMap) -> tracing::Span {
    let request_id = headers.get(&crate::request_log::REQUEST_ID).and_then(|id| id.to_str().ok()).unwrap_or_default();
    let conn_id = format!("{:016x}", rand::random::<u64>());
    tracing::info_span!(parent: None, "connection", auction_id = %auction, user = %user, conn_id, request_id)
}

/// An id error's text without the id kind, which the field name already gives.
fn short(error: auction_proto::IdError) -> String {
    let text = error.to_string();
    text.split_once(' ').map(|(_, rest)| rest.to_owned()).unwrap_or(text)
}
