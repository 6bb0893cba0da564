//! The connection to Redis: one Redis, or a Redis Cluster. Both are multiplexed (every task's
//! calls are pipelined on one socket per node) and both reconnect by themselves; the cluster one
//! also follows `MOVED`/`ASK` redirections and topology changes. Everything else in the store is
//! written once against [`Conn`], which works for both because every script and every command
//! touches a single slot.

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{Route, SingleNodeRoutingInfo, SlotAddr};
use redis::io::tcp::TcpSettings;
use redis::{Cmd, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisFuture, Value};

use super::StoreError;
use crate::config::RedisConfig;

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum Topology {
    /// One Redis (perhaps with replicas of its own).
    Single(String),
    /// A Redis Cluster, found from these seed nodes.
    Cluster(Vec<String>),
}

impl Topology {
    pub fn of(config: &RedisConfig) -> Topology {
        if config.cluster_nodes.is_empty() {
            Topology::Single(config.url.clone())
        } else {
            Topology::Cluster(config.cluster_nodes.clone())
        }
    }

    pub fn is_cluster(&self) -> bool {
        matches!(self, Topology::Cluster(_))
    }

    /// The command that publishes a live message in this topology: `SPUBLISH` on a cluster, so that
    /// a message reaches only the shard its channel hashes to instead of every node;
    /// `PUBLISH` on one Redis, where both deliver alike and the client library's single-node
    /// subscriber speaks only `SUBSCRIBE`.
    pub fn publish_command(&self) -> &'static str {
        if self.is_cluster() { "SPUBLISH" } else { "PUBLISH" }
    }
}

/// A connection for commands, cheap to clone.
#[derive(Clone)]
pub enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    /// Connects, failing after `timeout` times three if Redis does not answer.
    pub async fn open(topology: &Topology, timeout: Duration) -> Result<Conn, StoreError> {
        let connect = async {
            match topology {
                Topology::Single(url) => {
                    let client = redis::Client::open(connection_info(url)?)?;
                    let config = redis::aio::ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(timeout))
                        .set_response_timeout(Some(timeout))
                        .set_number_of_retries(2)
                        .set_max_delay(Duration::from_secs(1));
                    Ok::<_, StoreError>(Conn::Single(client.get_connection_manager_with_config(config).await?))
                }
                Topology::Cluster(nodes) => {
                    let client = cluster_client(nodes, timeout).build()?;
                    Ok(Conn::Cluster(client.get_async_connection().await?))
                }
            }
        };
        super::within(timeout * 3, connect).await
    }

    /// Runs `pipe` as one unit on the primary that holds `key`'s slot, every command on the same
    /// node connection, in order; the answers as they came, errors included (a command that did
    /// not belong there answers `MOVED`).
    pub async fn pipeline_on_primary_of(&mut self, key: &str, pipe: &Pipeline) -> redis::RedisResult<Vec<Value>> {
        let count = pipe.len();
        match self {
            Conn::Single(conn) => conn.req_packed_commands(pipe, 0, count).await,
            Conn::Cluster(conn) => {
                let route = SingleNodeRoutingInfo::SpecificNode(Route::with_key(key.as_bytes(), SlotAddr::Master));
                conn.route_pipeline(pipe.clone(), 0, count, route).await
            }
        }
    }
}

/// No Nagle on connections to Redis (the client library leaves it on). Every bid of a node
/// shares one connection, so a command is often written while the previous one is still
/// unanswered, and Nagle's algorithm may hold such a write back until that data is acknowledged.
fn tcp_settings() -> TcpSettings {
    TcpSettings::default().set_nodelay(true)
}

/// The connection settings of a single Redis at `url`.
pub fn connection_info(url: &str) -> Result<ConnectionInfo, StoreError> {
    Ok(url.into_connection_info()?.set_tcp_settings(tcp_settings()))
}

/// The cluster client's settings, shared by the command connection and the subscriber's.
pub fn cluster_client(nodes: &[String], timeout: Duration) -> ClusterClientBuilder {
    ClusterClientBuilder::new(nodes.to_vec())
        .tcp_settings(tcp_settings())
        .connection_timeout(timeout)
        .response_timeout(timeout)
        .retries(3)
        .min_retry_wait(50)
        .max_retry_wait(1000)
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(conn) => conn.req_packed_command(cmd),
            Conn::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(conn) => conn.get_db(),
            Conn::Cluster(conn) => conn.get_db(),
        }
    }
}
