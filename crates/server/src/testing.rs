//! Test support, for this crate's integration tests and for other crates' (the CLI's): an
//! isolated environment per test (a Redis key prefix and a MySQL database of its own) and the
//! services started in-process on port 0. Not used by the services themselves.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Once;

use sqlx::Connection;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{AnalyticsConfig, AuctionConfig, BiddingConfig, Config, RedisConfig, ServiceConfig};
use crate::store::Store;

/// Redis for tests: `TEST_REDIS_ADDRESS`, default `127.0.0.1:6379`.
pub fn redis_address() -> String {
    std::env::var("TEST_REDIS_ADDRESS").unwrap_or_else(|_| "127.0.0.1:6379".into())
}

/// A Redis Cluster for tests, when `TEST_REDIS_CLUSTER_NODES` names its seed nodes
/// (`host:port,...`): every service and store of the tests then runs in cluster mode.
pub fn redis_cluster_nodes() -> Option<String> {
    std::env::var("TEST_REDIS_CLUSTER_NODES").ok().filter(|nodes| !nodes.trim().is_empty())
}

/// MySQL for tests, without a database: `TEST_MYSQL_URL`, default the development user.
pub fn mysql_base() -> String {
    std::env::var("TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://auction:auction@127.0.0.1:3306".into())
}

fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if let Ok(filter) = std::env::var("TEST_LOG") {
            tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().init();
        }
    });
}

/// One test's private slice of Redis and MySQL, and the services it started. Dropping it stops
/// the services and removes the database and the keys.
pub struct TestEnv {
    pub prefix: String,
    pub database: String,
    /// Settings this test changed: a value, or `None` for one it took away.
    overrides: HashMap<String, Option<String>>,
    services: Vec<(CancellationToken, JoinHandle<anyhow::Result<()>>)>,
}

#[allow(clippy::expect_used)]
impl TestEnv {
    pub async fn new() -> TestEnv {
        init_logging();
        let tag = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let database = format!("auction_t_{tag}");
        let mut conn = sqlx::MySqlConnection::connect(&format!("{}/auction", mysql_base()))
            .await
            .expect("mysql is not reachable: run scripts/dev-services.sh");
        sqlx::query(&format!("CREATE DATABASE `{database}`")).execute(&mut conn).await.expect("create test database");
        TestEnv { prefix: format!("t_{tag}:"), database, overrides: HashMap::new(), services: Vec::new() }
    }

    /// Sets an environment-style setting for every service started after this call.
    pub fn set(&mut self, name: &str, value: &str) {
        self.overrides.insert(name.to_owned(), Some(value.to_owned()));
    }

    /// Takes a setting away (even one the environment sets by default, such as `MYSQL_DSN`) for
    /// every service started after this call.
    pub fn unset(&mut self, name: &str) {
        self.overrides.insert(name.to_owned(), None);
    }

    /// The settings taken away with [`TestEnv::unset`], which a child process must not inherit.
    pub fn unset_vars(&self) -> impl Iterator<Item = &str> {
        self.overrides.iter().filter(|(_, value)| value.is_none()).map(|(name, _)| name.as_str())
    }

    /// The variables a service of this environment runs with.
    pub fn vars(&self) -> HashMap<String, String> {
        let mut vars: HashMap<String, String> = [
            ("SERVER_HOST", "127.0.0.1".to_owned()),
            ("SERVER_PORT", "0".to_owned()),
            ("REDIS_ADDRESS", redis_address()),
            ("REDIS_KEY_PREFIX", self.prefix.clone()),
            ("MYSQL_DSN", format!("{}/{}", mysql_base(), self.database)),
            // Tests bid as fast as they can; the limits' own tests set these low.
            ("WS_BID_RATE", "100000".to_owned()),
            ("WS_USER_BID_RATE", "100000".to_owned()),
            // Tests read the list right after changing things elsewhere; the cache's own test
            // turns it on.
            ("LIST_CACHE", "0".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if let Some(nodes) = redis_cluster_nodes() {
            vars.insert("REDIS_CLUSTER_NODES".to_owned(), nodes);
        }
        for (name, value) in &self.overrides {
            match value {
                Some(value) => vars.insert(name.clone(), value.clone()),
                None => vars.remove(name),
            };
        }
        vars
    }

    /// The configuration service `S` would start with.
    pub fn config<S: ServiceConfig>(&self) -> Config<S> {
        let vars = self.vars();
        Config::from_env(|name| vars.get(name).cloned()).expect("test config")
    }

    /// This test's Redis, as every service sees it.
    pub fn redis(&self) -> RedisConfig {
        self.config::<BiddingConfig>().redis
    }

    /// A connection for raw commands on this test's Redis (one Redis or a cluster alike).
    pub async fn redis_connection(&self) -> crate::store::Conn {
        self.store().await.connection()
    }

    pub async fn store(&self) -> Store {
        Store::connect(&self.redis()).await.expect("redis is not reachable")
    }

    /// The raw bytes (`DUMP`) of every Redis key of auction `id`, to compare states exactly.
    pub async fn dump_auction(&self, id: &str) -> Vec<Option<Vec<u8>>> {
        let auction = crate::store::Keys::new(&self.prefix).auction(&auction_proto::AuctionId::parse(id).expect("id"));
        let keys = [auction.state, auction.recent, auction.outcomes, auction.log];
        self.store().await.dump(&keys).await.expect("dump")
    }

    /// A connection to this test's database.
    pub async fn mysql(&self) -> sqlx::MySqlConnection {
        sqlx::MySqlConnection::connect(&format!("{}/{}", mysql_base(), self.database)).await.expect("mysql")
    }

    fn keep(&mut self, token: &CancellationToken, run: impl Future<Output = anyhow::Result<()>> + Send + 'static) {
        self.services.push((token.clone(), tokio::spawn(run)));
    }

    /// Starts an auction service; returns its address, instance id and the token that stops it.
    pub async fn start_auction(&mut self) -> (SocketAddr, String, CancellationToken) {
        let config = self.config::<AuctionConfig>();
        let instance = config.instance_id.clone();
        let token = CancellationToken::new();
        let app = crate::auction::App::build(config, &token).await.expect("auction service");
        let addr = app.local_addr();
        let ready = app.ready();
        self.keep(&token, app.run(token.clone()));
        self.until_ready("auction", ready).await;
        (addr, instance, token)
    }

    /// Starts a bidding service; returns its address.
    pub async fn start_bidding(&mut self) -> SocketAddr {
        self.start_bidding_on(0).await.0
    }

    /// Starts a bidding service on `port` (0 for any), retrying for a few seconds while the port
    /// is still held by a service that is stopping; returns its address and the token that stops
    /// it.
    pub async fn start_bidding_on(&mut self, port: u16) -> (SocketAddr, CancellationToken) {
        let mut config = self.config::<BiddingConfig>();
        config.port = port;
        let token = CancellationToken::new();
        let mut attempts = 0;
        let app = loop {
            match crate::bidding::App::build(config.clone(), &token).await {
                Ok(app) => break app,
                Err(e) if attempts < 50 => {
                    attempts += 1;
                    tracing::debug!(error = %e, "bidding service not up yet; retrying");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                Err(e) => panic!("bidding service: {e:#}"),
            }
        };
        let addr = app.local_addr();
        let ready = app.ready();
        self.keep(&token, app.run(token.clone()));
        self.until_ready("bidding", ready).await;
        (addr, token)
    }

    /// Starts a bidding service whose WebSocket handshakes each stop, once they have read their
    /// snapshot and before the node's hub takes it, until the returned gate opens.
    pub async fn start_bidding_gated(&mut self) -> (SocketAddr, std::sync::Arc<crate::bidding::HandshakeGate>) {
        let token = CancellationToken::new();
        let mut app =
            crate::bidding::App::build(self.config::<BiddingConfig>(), &token).await.expect("bidding service");
        let gate = app.gate_handshakes();
        let addr = app.local_addr();
        let ready = app.ready();
        self.keep(&token, app.run(token.clone()));
        self.until_ready("bidding", ready).await;
        (addr, gate)
    }

    /// Starts an analytics service; returns its address and the token that stops it.
    pub async fn start_analytics(&mut self) -> (SocketAddr, CancellationToken) {
        let (addr, token, ready) = self.start_analytics_starting().await;
        self.until_ready("analytics", ready).await;
        (addr, token)
    }

    /// Starts an analytics service and returns at once, without waiting for Redis and MySQL, for
    /// a test that watches it start: its address, the token that stops it, and what resolves
    /// once its servers answered.
    pub async fn start_analytics_starting(
        &mut self,
    ) -> (SocketAddr, CancellationToken, impl Future<Output = ()> + Send + 'static) {
        let token = CancellationToken::new();
        let app =
            crate::analytics::App::build(self.config::<AnalyticsConfig>(), &token).await.expect("analytics service");
        let addr = app.local_addr();
        let ready = app.ready();
        self.keep(&token, app.run(token.clone()));
        (addr, token, ready)
    }

    /// Waits until a service just started reached its servers; panics, with the service's own
    /// error if it stopped, after 30 s.
    async fn until_ready(&mut self, service: &str, ready: impl Future<Output = ()>) {
        let Some((_, running)) = self.services.last_mut() else { return };
        tokio::select! {
            _ = ready => {}
            stopped = running => panic!("{service} service stopped while starting: {stopped:?}"),
            _ = tokio::time::sleep(std::time::Duration::from_secs(30)) => panic!("{service} service never became ready"),
        }
    }
}

impl Drop for TestEnv {
    /// Stops the services and removes the test's database and keys. Runs on a thread of its own
    /// because the test's runtime is shutting down.
    fn drop(&mut self) {
        for (token, _) in &self.services {
            token.cancel();
        }
        let database = self.database.clone();
        let redis = self.redis();
        let cleanup = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            runtime.block_on(async move {
                if let Ok(mut conn) = sqlx::MySqlConnection::connect(&format!("{}/auction", mysql_base())).await {
                    let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS `{database}`")).execute(&mut conn).await;
                }
                if let Ok(store) = Store::connect(&redis).await {
                    let _ = store.delete_all().await;
                }
            });
        });
        let _ = cleanup.join();
    }
}
