//! The analytics service. In this first version it checks its stores and answers `/health`; the
//! consumer that moves each auction's event stream (written by the bid and create scripts) into
//! MySQL comes next.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use sqlx::MySqlPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::http::{check, health_response, not_found};
use crate::store::Store;

#[derive(Clone)]
pub struct AppState {
    store: Store,
    db: MySqlPool,
    instance_id: Arc<str>,
}

pub struct App {
    listener: TcpListener,
    state: AppState,
}

impl App {
    pub async fn build(config: Config) -> anyhow::Result<App> {
        let store = Store::connect(&config.redis).await.context("cannot connect to redis")?;
        let db = crate::db::connect_and_migrate(&config.mysql).await.context("cannot prepare the mysql database")?;
        let listener = crate::runtime::bind(&config).await?;
        Ok(App { listener, state: AppState { store, db, instance_id: config.instance_id.clone().into() } })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let router = Router::new().route("/health", get(health)).fallback(not_found).with_state(self.state);
        crate::runtime::serve(self.listener, router, shutdown, TaskTracker::new(), Duration::from_secs(5)).await
    }
}

async fn health(State(state): State<AppState>) -> Response {
    let mut checks = BTreeMap::new();
    checks.insert("redis".to_owned(), check(state.store.ping().await));
    checks.insert("mysql".to_owned(), check(crate::db::ping(&state.db).await));
    health_response("analytics", &state.instance_id, checks)
}
