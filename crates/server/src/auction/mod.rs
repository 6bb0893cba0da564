//! The auction service: the REST API under `/api/v1`. Redis holds the live state (through the
//! store's scripts); MySQL gets a durable copy of every auction.

mod leader;
mod list_cache;
mod metrics;
mod openapi;
mod operator;
mod routes;
mod scheduler;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::Response;
use sqlx::MySqlPool;
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::config::{AuctionConfig, Config};
use crate::http::{MAX_BODY_BYTES, check, health_response, not_found};
use crate::runtime::{Server, Waiting};
use crate::serving::{Routes, Serving};
use crate::store::Store;
use leader::{Elector, LeaseWatch};
use scheduler::Scheduler;

#[derive(Clone)]
pub struct AppState {
    store: Store,
    db: MySqlPool,
    /// Where the read-only queries go: `MYSQL_READ_DSN`'s replica, else `db` itself.
    reads: MySqlPool,
    /// Whether `reads` is a replica of its own (then `/health` checks it too).
    replica: bool,
    config: Arc<AuctionConfig>,
    instance_id: Arc<str>,
    lease: LeaseWatch,
    /// The operator token state-changing calls must carry; `None` in development.
    admin_token: Option<Arc<str>>,
    /// Wakes this instance's scheduler (when it leads) after a local deadline change.
    wake: Arc<Notify>,
    metrics: Arc<metrics::AuctionMetrics>,
    list_cache: Arc<list_cache::ListCache>,
}

pub struct App {
    listener: TcpListener,
    config: Config<AuctionConfig>,
    waiting: Waiting,
    routes: Routes,
}

impl App {
    /// Binds the port. Redis and MySQL are reached in [`App::run`], while the start-up routes
    /// answer (see [`crate::starting`]).
    pub async fn build(config: Config<AuctionConfig>, _shutdown: &CancellationToken) -> anyhow::Result<App> {
        let listener = crate::runtime::bind(&config).await?;
        let mut servers = vec![Server::REDIS.check, Server::MYSQL.check];
        if config.service.mysql_read.is_some() {
            servers.push(Server::MYSQL_READ.check);
        }
        let waiting = Waiting::new("auction", &config.instance_id, &servers);
        let routes = Routes::new(waiting.router());
        Ok(App { listener, config, waiting, routes })
    }

    pub fn local_addr(&self) -> SocketAddr {
        crate::runtime::local_addr(&self.listener)
    }

    /// Resolves once Redis and MySQL answered and the API is served.
    pub fn ready(&self) -> impl Future<Output = ()> + Send + 'static + use<> {
        self.waiting.ready()
    }

    /// Serves at once; connects to Redis and MySQL (applying migrations; and the read replica,
    /// when there is one), waiting while they cannot be reached; then serves the API and runs
    /// the election and, while leading, the scheduler, until `shutdown`; then releases the lease.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let App { listener, config, waiting, routes } = self;
        let serving = Serving { http: config.http, send_buffer: None };
        let starting = async |tracker: &TaskTracker, stop: &CancellationToken| {
            let (state, elector) = connect(&config, &waiting, stop).await?;
            start(state, elector, &routes, tracker, stop);
            waiting.done();
            Ok(())
        };
        crate::runtime::serve_while_starting(listener, routes.clone(), serving, &shutdown, starting).await
    }
}

/// Reaches Redis and MySQL (and the replica), all at once, and builds the service's state.
async fn connect(
    config: &Config<AuctionConfig>,
    waiting: &Waiting,
    shutdown: &CancellationToken,
) -> anyhow::Result<(AppState, Elector)> {
    let service = &config.service;
    let pool = service.pool();
    let replica = async {
        match &service.mysql_read {
            Some(replica) => crate::runtime::open_read_replica(replica, pool, waiting, shutdown).await.map(Some),
            None => Ok(None),
        }
    };
    let (store, db, reads) = tokio::try_join!(
        crate::runtime::open_store(&config.redis, waiting, shutdown),
        crate::runtime::open_database(&service.mysql, pool, waiting, shutdown),
        replica,
    )?;
    let (elector, lease) = Elector::new(store.clone(), config.instance_id.clone(), service.leader_ttl);
    let state = AppState {
        store,
        reads: reads.clone().unwrap_or_else(|| db.clone()),
        replica: reads.is_some(),
        db,
        config: Arc::new(service.clone()),
        instance_id: config.instance_id.clone().into(),
        lease,
        admin_token: config.auth.admin_token.clone().map(Into::into),
        wake: Arc::new(Notify::new()),
        metrics: Arc::new(metrics::AuctionMetrics::new()),
        list_cache: Arc::new(list_cache::ListCache::new(service.list_cache)),
    };
    Ok((state, elector))
}

/// Starts the election, the scheduler and the copy to MySQL, and puts the API in place.
fn start(state: AppState, elector: Elector, routes: &Routes, tracker: &TaskTracker, shutdown: &CancellationToken) {
    let (copies_tx, copies_rx) = mpsc::channel(4096);
    let scheduler =
        Scheduler::new(state.store.clone(), state.lease.clone(), state.wake.clone(), copies_tx, state.metrics.clone());
    tracker.spawn(elector.run(shutdown.clone()));
    tracker.spawn(scheduler.run(shutdown.clone()));
    tracker.spawn(scheduler::copy_to_mysql(state.db.clone(), copies_rx));
    tracker.spawn(backfill_status_indexes(state.store.clone(), shutdown.clone()));
    let deadlines = state.store.subscribe(vec![state.store.deadline_channel()]);
    tracker.spawn(scheduler::listen_for_deadlines(deadlines, state.wake.clone(), shutdown.clone()));
    routes.replace(router(state));
}

/// How many of the newest auctions the one-time status index backfill covers: as many as a status
/// list searched before the status indexes existed.
const BACKFILL_LIMIT: usize = 10_000;

/// Fills the status indexes with the auctions created before they existed, once per deployment,
/// retrying until it is done (status lists miss those auctions until then).
async fn backfill_status_indexes(store: Store, shutdown: CancellationToken) {
    let mut backoff = crate::retry::backoff();
    loop {
        match store.backfill_status_indexes(BACKFILL_LIMIT).await {
            Ok(Some(indexed)) => return tracing::info!(indexed, "status indexes filled"),
            Ok(None) => return,
            Err(e) => tracing::warn!(error = %e, "cannot fill the status indexes; retrying"),
        }
        if !crate::retry::pause(&mut backoff, &shutdown).await {
            return;
        }
    }
}

/// Every route of the service, each with its part of the OpenAPI document, which is served too.
pub fn router(state: AppState) -> Router {
    let cors = cors(state.config.cors_origins.as_deref());
    let api = routes::router(state.clone()).routes(routes!(openapi::document));
    let (router, document) = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/api/v1", api)
        .routes(routes!(health))
        .routes(routes!(metrics))
        .split_for_parts();
    let routes = router
        .layer(axum::Extension(Arc::new(document)))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(cors);
    crate::request_log::traced(routes).with_state(state)
}

/// CORS for pages served elsewhere (the web UI from the bidding service or any static server).
fn cors(origins: Option<&[String]>) -> tower_http::cors::CorsLayer {
    use axum::http::{HeaderName, HeaderValue, Method, header};
    use tower_http::cors::{AllowOrigin, CorsLayer};
    let allow = match origins {
        None => AllowOrigin::any(),
        Some(list) => AllowOrigin::list(list.iter().filter_map(|o| HeaderValue::from_str(o).ok())),
    };
    CorsLayer::new().allow_origin(allow).allow_methods([Method::GET, Method::POST, Method::PUT]).allow_headers([
        header::CONTENT_TYPE,
        header::AUTHORIZATION,
        HeaderName::from_static("idempotency-key"),
    ])
}

/// Whether Redis and MySQL answer.
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "get_health",
    responses(
        (status = 200, description = "Every check passed", body = auction_proto::rest::Health),
        (status = 503, description = "A check failed; `checks` says which", body = auction_proto::rest::Health),
    )
)]
async fn health(State(state): State<AppState>) -> Response {
    let mut checks = BTreeMap::new();
    checks.insert("redis".to_owned(), check(state.store.ping().await));
    checks.insert("mysql".to_owned(), check(crate::db::ping(&state.db).await));
    if state.replica {
        checks.insert("mysql_read".to_owned(), check(crate::db::ping(&state.reads).await));
    }
    health_response("auction", &state.instance_id, checks)
}

/// Prometheus metrics: leadership, lifecycle transitions, close lateness.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "get_metrics",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain"))
)]
async fn metrics(State(state): State<AppState>) -> String {
    state.metrics.render(&state.lease)
}
