//! The auction service: the REST API under `/api/v1`. Redis holds the live state (through the
//! store's scripts); MySQL gets a durable copy of every auction.

mod routes;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::Response;
use axum::routing::get;
use sqlx::MySqlPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{AuctionConfig, Config};
use crate::http::{MAX_BODY_BYTES, check, health_response, not_found};
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    store: Store,
    db: MySqlPool,
    config: Arc<AuctionConfig>,
    instance_id: Arc<str>,
}

pub struct App {
    listener: TcpListener,
    state: AppState,
}

impl App {
    /// Connects to Redis and MySQL (applying migrations) and binds the port.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let store = Store::connect(&config.redis).await.context("cannot connect to redis")?;
        let db = crate::db::connect_and_migrate(&config.mysql).await.context("cannot prepare the mysql database")?;
        let listener = crate::runtime::bind(&config).await?;
        let state = AppState {
            store,
            db,
            config: Arc::new(config.auction.clone()),
            instance_id: config.instance_id.clone().into(),
        };
        Ok(App { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let router = router(self.state);
        crate::runtime::serve(self.listener, router, shutdown, TaskTracker::new(), Duration::from_secs(5)).await
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .nest("/api/v1", routes::router())
        .route("/health", get(health))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn health(State(state): State<AppState>) -> Response {
    let mut checks = BTreeMap::new();
    checks.insert("redis".to_owned(), check(state.store.ping().await));
    checks.insert("mysql".to_owned(), check(crate::db::ping(&state.db).await));
    health_response("auction", &state.instance_id, checks)
}
