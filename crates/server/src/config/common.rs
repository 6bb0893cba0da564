//! The settings every service reads: where it listens, its name, its log level, Redis, and who
//! may do what.

use std::time::Duration;

use super::ConfigError;
use super::parse;
use super::setting::{Setting, Sources, settings};

settings! {
    /// Where the service listens and what it calls itself.
    pub(super) struct Server {
        /// The address to listen on.
        pub host: String = Setting::new("SERVER_HOST", "server.host", "0.0.0.0", parse::text),
        /// Unset: the service's own port (8080, 8081, 8082); 0 picks a free one (tests).
        pub port: Option<u16> = Setting::new("SERVER_PORT", "server.port", "", parse::optional_number),
        /// Unset: `<service>-<random>`.
        pub instance_id: Option<String> = Setting::new("INSTANCE_ID", "instance_id", "", parse::instance_id),
        /// A level or any `tracing` filter; `RUST_LOG` wins when set.
        pub log_level: String = Setting::new("LOG_LEVEL", "log_level", "info", parse::log_level),
        /// `text`, or `json`: one JSON object a line.
        pub log_format: LogFormat = Setting::new("LOG_FORMAT", "log_format", "text", parse::log_format),
    }
}

settings! {
    /// How long an HTTP connection may hold its place without making progress, and how many may
    /// be open at once: what bounds the sockets a slow or silent client can take.
    #[derive(Debug, Clone, Copy)]
    pub struct HttpConfig {
        /// A request head (the request line and headers) must arrive whole within this of its
        /// first byte, or of the connection's opening for its first request.
        pub header_timeout: Duration =
            Setting::new("HTTP_HEADER_TIMEOUT", "server.header_timeout", "10s", parse::positive_duration),
        /// A kept-alive connection with no request for this long is closed, as is one on which
        /// nothing arrives for this long while a request is in progress (a stalled body).
        pub idle_timeout: Duration =
            Setting::new("HTTP_IDLE_TIMEOUT", "server.idle_timeout", "60s", parse::positive_duration),
        /// Open HTTP connections (not counting the WebSockets they became); one more is closed at once.
        pub max_connections: usize =
            Setting::new("HTTP_MAX_CONNECTIONS", "server.max_connections", "10000", parse::at_least_one),
    }
}

/// How log lines are written: `text` for people at a terminal, `json` (one object a line) for
/// log collectors and `jq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The Redis password; named, because the URL is built from it and a failure must blame it.
const REDIS_PASSWORD: Setting<Option<String>> =
    Setting::new("REDIS_PASSWORD", "redis.password", "", parse::optional_text);

/// Named, because a database number beside it must blame the pair.
const REDIS_CLUSTER_NODES: Setting<Vec<url::Url>> =
    Setting::new("REDIS_CLUSTER_NODES", "redis.cluster_nodes", "", parse::redis_cluster_nodes);

settings! {
    /// Redis as the operator gives it; [`RedisConfig`] is what the services use.
    pub(super) struct RedisSettings {
        /// `host:port` or a `redis://` (`rediss://`) URL.
        address: url::Url = Setting::new("REDIS_ADDRESS", "redis.address", "127.0.0.1:6379", parse::redis_address),
        /// Seed nodes of a Redis Cluster (`host:port,host:port,...`); when set, cluster mode and
        /// `REDIS_ADDRESS` is not used.
        cluster_nodes: Vec<url::Url> = REDIS_CLUSTER_NODES,
        password: Option<String> = REDIS_PASSWORD,
        /// The database number; unset leaves the URL's own (else 0).
        db: Option<u32> = Setting::new("REDIS_DB", "redis.db", "", parse::redis_db),
        /// Prepended to every key and channel, so deployments (or tests) can share one Redis.
        key_prefix: String = Setting::new("REDIS_KEY_PREFIX", "redis.key_prefix", "", parse::key_prefix),
        /// How long any one Redis call may take before it counts as failed.
        timeout: Duration = Setting::new("REDIS_TIMEOUT", "redis.timeout", "2s", parse::duration),
    }
}

/// Redis as the services use it, built from [`RedisSettings`].
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// A `redis://` URL with password and database folded in.
    pub url: String,
    /// The cluster's seed nodes as `redis://` URLs with the password folded in; empty for a
    /// single Redis at `url`.
    pub cluster_nodes: Vec<String>,
    /// Prepended to every key and channel, so deployments (or tests) can share one Redis.
    pub key_prefix: String,
    /// How long any one Redis call may take before it counts as failed.
    pub timeout: Duration,
}

impl RedisConfig {
    pub(super) fn resolve(sources: &Sources<'_>) -> Result<RedisConfig, ConfigError> {
        let RedisSettings { address: mut url, cluster_nodes, password, db, key_prefix, timeout } =
            RedisSettings::read(sources)?;
        if let Some(password) = &password {
            url.set_password(Some(password)).map_err(|()| sources.blame(&REDIS_PASSWORD, "cannot be used in a URL"))?;
        }
        if let Some(db) = db {
            if !cluster_nodes.is_empty() && db != 0 {
                return Err(sources.blame(&REDIS_CLUSTER_NODES, "a cluster has only database 0, but REDIS_DB is set"));
            }
            url.set_path(&format!("/{db}"));
        }
        let mut nodes = Vec::with_capacity(cluster_nodes.len());
        for mut node in cluster_nodes {
            if let Some(password) = &password {
                node.set_password(Some(password))
                    .map_err(|()| sources.blame(&REDIS_PASSWORD, "cannot be used in a URL"))?;
            }
            nodes.push(node.to_string());
        }
        Ok(RedisConfig { url: url.to_string(), cluster_nodes: nodes, key_prefix, timeout })
    }
}

settings! {
    /// Who may do what. Both unset is development mode (every service warns at start). Neither
    /// has a file key: secrets come from the environment.
    #[derive(Clone, Default)]
    pub struct AuthConfig {
        /// Bidders must present an HS256 token signed with this (and `user_id` is ignored).
        pub secret: Option<Vec<u8>> = Setting::env_only("AUTH_SECRET", "", parse::auth_secret),
        /// State-changing REST calls must carry `Authorization: Bearer <this>`.
        pub admin_token: Option<String> = Setting::env_only("ADMIN_TOKEN", "", parse::admin_token),
    }
}

impl std::fmt::Debug for AuthConfig {
    /// Never prints the secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("secret", &self.secret.as_ref().map(|_| "set"))
            .field("admin_token", &self.admin_token.as_ref().map(|_| "set"))
            .finish()
    }
}
