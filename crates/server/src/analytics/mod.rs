//! The analytics service: consumes every auction's durable event log into MySQL (`consumer`),
//! guarded by a circuit breaker (`breaker`), with `/health` and Prometheus `/metrics`.

pub mod breaker;
mod consumer;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use metrics::{Key, Metadata, Recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use sqlx::MySqlPool;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{AnalyticsConfig, Config};
use crate::http::{check, health_response, not_found};
use crate::runtime::{Server, Waiting};
use crate::serving::{Routes, Serving};
use crate::store::Store;
use breaker::{Breaker, State as BreakerState};
use consumer::{Consumer, Metrics};

#[derive(Clone)]
pub struct AppState {
    store: Store,
    db: MySqlPool,
    instance_id: Arc<str>,
    breaker: Arc<Breaker>,
    metrics: PrometheusHandle,
}

pub struct App {
    listener: TcpListener,
    config: Config<AnalyticsConfig>,
    waiting: Waiting,
    routes: Routes,
}

/// The instance's own recorder (not the process-wide one), so that several instances in one
/// process, as in tests, each count their own work.
fn register(recorder: &PrometheusRecorder) -> Metrics {
    static META: Metadata<'static> = Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));
    Metrics {
        written: recorder.register_counter(&Key::from_static_name("analytics_events_written_total"), &META),
        seq_conflicts: recorder.register_counter(&Key::from_static_name("analytics_bid_seq_conflicts_total"), &META),
        backlog: recorder.register_gauge(&Key::from_static_name("analytics_backlog_events"), &META),
        breaker: recorder.register_gauge(&Key::from_static_name("analytics_mysql_breaker_state"), &META),
    }
}

impl App {
    /// Binds the port. Redis and MySQL are reached in [`App::run`], while the start-up routes
    /// answer (see [`crate::starting`]).
    pub async fn build(config: Config<AnalyticsConfig>, _shutdown: &CancellationToken) -> anyhow::Result<App> {
        let listener = crate::runtime::bind(&config).await?;
        let waiting = Waiting::new("analytics", &config.instance_id, &[Server::REDIS.check, Server::MYSQL.check]);
        let routes = Routes::new(waiting.router());
        Ok(App { listener, config, waiting, routes })
    }

    pub fn local_addr(&self) -> SocketAddr {
        crate::runtime::local_addr(&self.listener)
    }

    /// Resolves once Redis and MySQL answered and the consumer runs.
    pub fn ready(&self) -> impl Future<Output = ()> + Send + 'static + use<> {
        self.waiting.ready()
    }

    /// Serves at once; connects to Redis and MySQL (applying migrations), waiting while they
    /// cannot be reached; then consumes the logs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let App { listener, config, waiting, routes } = self;
        let serving = Serving { http: config.http, send_buffer: None };
        let starting = async |tracker: &TaskTracker, stop: &CancellationToken| {
            let (store, db) = tokio::try_join!(
                crate::runtime::open_store(&config.redis, &waiting, stop),
                crate::runtime::open_database(&config.service.mysql, config.service.pool(), &waiting, stop),
            )?;
            routes.replace(start(&config, store, db, tracker, stop));
            waiting.done();
            Ok(())
        };
        crate::runtime::serve_while_starting(listener, routes.clone(), serving, &shutdown, starting).await
    }
}

/// Starts the consumer and returns the service's routes.
fn start(
    config: &Config<AnalyticsConfig>,
    store: Store,
    db: MySqlPool,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> Router {
    let recorder = PrometheusBuilder::new().build_recorder();
    let breaker = Arc::new(Breaker::new(3, Duration::from_millis(500), Duration::from_secs(10)));
    let live = store.subscribe(Vec::new());
    let consumer = Consumer {
        feed: live.feed(),
        store: store.clone(),
        db: db.clone(),
        instance: config.instance_id.clone(),
        config: config.service.clone(),
        breaker: breaker.clone(),
        metrics: register(&recorder),
        dirty: Arc::new(Mutex::new(HashSet::new())),
        wake: Arc::new(Notify::new()),
        grouped: Mutex::new(HashSet::new()),
    };
    let state =
        AppState { store, db, instance_id: config.instance_id.clone().into(), breaker, metrics: recorder.handle() };
    tracker.spawn(consumer::watch_live(live, consumer.dirty.clone(), consumer.wake.clone(), shutdown.clone()));
    tracker.spawn(consumer.run(shutdown.clone()));
    let routes = Router::new().route("/health", get(health)).route("/metrics", get(metrics_text)).fallback(not_found);
    crate::request_log::traced(routes).with_state(state)
}

async fn health(State(state): State<AppState>) -> Response {
    let mut checks = BTreeMap::new();
    checks.insert("redis".to_owned(), check(state.store.ping().await));
    let mysql = tokio::time::timeout(Duration::from_secs(1), crate::db::ping(&state.db)).await;
    checks.insert("mysql".to_owned(), check(mysql.unwrap_or_else(|_| Err(sqlx::Error::PoolTimedOut))));
    let breaker = state.breaker.state();
    checks.insert(
        "mysql_breaker".to_owned(),
        if breaker == BreakerState::Closed { "ok".to_owned() } else { breaker.as_str().to_owned() },
    );
    health_response("analytics", &state.instance_id, checks)
}

async fn metrics_text(State(state): State<AppState>) -> String {
    state.metrics.render()
}
