//! Configuration: `config.yaml` (searched in `.`, `./config`, `/etc/auction-system/`, or named by
//! `CONFIG_FILE`) overridden by environment variables. Any bad value fails start-up with a message
//! that names the key it came from.

use std::path::{Path, PathBuf};
use std::time::Duration;

use auction_proto::Amount;
use serde::Deserialize;
use sqlx::mysql::MySqlConnectOptions;

/// Which service is starting: sets the default port and the instance id's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Bidding,
    Auction,
    Analytics,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Bidding => "bidding",
            Service::Auction => "auction",
            Service::Analytics => "analytics",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Service::Bidding => 8080,
            Service::Auction => 8081,
            Service::Analytics => 8082,
        }
    }
}

/// A configuration problem, naming where the bad value came from.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: {message}")]
pub struct ConfigError {
    pub source_name: String,
    pub message: String,
}

fn bad(source_name: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError { source_name: source_name.into(), message: message.into() }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub service: Service,
    pub host: String,
    /// 0 picks a free port (tests).
    pub port: u16,
    pub instance_id: String,
    pub log_level: String,
    pub redis: RedisConfig,
    pub mysql: MySqlConnectOptions,
    pub leader_ttl: Duration,
    pub bidding: BiddingConfig,
    pub auction: AuctionConfig,
    pub analytics: AnalyticsConfig,
    pub auth: AuthConfig,
}

/// Who may do what. Both unset is development mode (every service warns at start).
#[derive(Clone, Default)]
pub struct AuthConfig {
    /// Bidders must present an HS256 token signed with this (and `user_id` is ignored).
    pub secret: Option<Vec<u8>>,
    /// State-changing REST calls must carry `Authorization: Bearer <this>`.
    pub admin_token: Option<String>,
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

#[derive(Debug, Clone)]
pub struct AnalyticsConfig {
    /// How long an instance owns an auction's log after last touching it: how soon another
    /// instance takes over the log of one that died.
    pub claim_ttl: Duration,
    /// Most log entries written to MySQL in one transaction.
    pub batch: usize,
    /// How often every auction's log is looked at, besides the ones pub/sub says changed.
    pub sweep: Duration,
    /// For failure testing only: abort the process right after the first MySQL commit, before
    /// acknowledging, to prove that redelivery does not duplicate rows.
    pub crash_after_commit: bool,
}

#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// A `redis://` URL with password and database folded in.
    pub url: String,
    /// Prepended to every key and channel, so deployments (or tests) can share one Redis.
    pub key_prefix: String,
    /// How long any one Redis call may take before it counts as failed.
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct BiddingConfig {
    /// Frames above this size get an `error` frame and the connection stays open.
    pub max_frame_bytes: usize,
    /// Frames above this size close the connection with code 1009 (the reader never buffers more).
    pub max_message_bytes: usize,
    /// Live events a watcher may fall behind before it is resynced with a snapshot.
    pub watcher_queue: usize,
    /// The largest bid accepted.
    pub max_bid: Amount,
    /// How long a send to one client may block before that client is dropped.
    pub send_timeout: Duration,
    /// The kernel send buffer of each connection (`SO_SNDBUF`), bounding the memory a client that
    /// does not read can hold; `None` leaves the kernel's autotuning (up to megabytes each).
    pub send_buffer: Option<usize>,
    /// Bids per second one connection may send (a burst of as many is allowed).
    pub bid_rate_per_connection: u32,
    /// Bids per second one user may send over all their connections to this node.
    pub bid_rate_per_user: u32,
    /// WebSocket connections this node accepts.
    pub max_connections: usize,
    /// WebSocket connections one user may hold on this node.
    pub max_connections_per_user: usize,
    /// A connection with no frame from the client for this long is closed; the server pings at a
    /// third of it, so a live client always has something to answer.
    pub idle_timeout: Duration,
    /// Origins whose pages may open WebSockets; `None` allows any (and a missing Origin, from a
    /// non-browser client, is always allowed).
    pub allowed_origins: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct AuctionConfig {
    /// The largest starting bid accepted.
    pub max_bid: Amount,
    /// The longest an auction may run.
    pub max_duration: Duration,
    /// The most one extend call may add.
    pub max_extend: Duration,
    /// Origins whose pages may call the API (CORS); `None` allows any.
    pub cors_origins: Option<Vec<String>>,
}

/// The file's shape: every key optional; unknown keys are errors so typos are caught.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    #[serde(default)]
    server: FileServer,
    #[serde(default)]
    redis: FileRedis,
    #[serde(default)]
    mysql: FileMySql,
    instance_id: Option<String>,
    log_level: Option<String>,
    leader_ttl: Option<String>,
    #[serde(default)]
    bidding: FileBidding,
    #[serde(default)]
    auction: FileAuction,
    #[serde(default)]
    analytics: FileAnalytics,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAnalytics {
    claim_ttl: Option<String>,
    batch: Option<usize>,
    sweep: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileServer {
    host: Option<String>,
    port: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileRedis {
    address: Option<String>,
    password: Option<String>,
    db: Option<u32>,
    key_prefix: Option<String>,
    timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileMySql {
    dsn: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileBidding {
    max_frame_bytes: Option<usize>,
    max_message_bytes: Option<usize>,
    watcher_queue: Option<usize>,
    max_bid: Option<String>,
    send_timeout: Option<String>,
    send_buffer: Option<usize>,
    bid_rate_per_connection: Option<u32>,
    bid_rate_per_user: Option<u32>,
    max_connections: Option<usize>,
    max_connections_per_user: Option<usize>,
    idle_timeout: Option<String>,
    allowed_origins: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileAuction {
    max_bid: Option<String>,
    max_duration: Option<String>,
    max_extend: Option<String>,
    cors_allowed_origins: Option<String>,
}

pub const DEFAULT_MYSQL_DSN: &str = "mysql://auction:auction@127.0.0.1:3306/auction";
const FILE_NAME: &str = "config.yaml";

/// One setting: its value and the name to blame if it is bad.
struct Setting {
    value: Option<String>,
    source_name: String,
}

impl Config {
    /// Loads the configuration of `service` from the file (if any) and the process environment.
    pub fn load(service: Service) -> Result<Config, ConfigError> {
        let env = |name: &str| std::env::var(name).ok();
        let file = match env("CONFIG_FILE") {
            Some(path) => Some(PathBuf::from(path)),
            None => [".", "./config", "/etc/auction-system"]
                .iter()
                .map(|dir| Path::new(dir).join(FILE_NAME))
                .find(|p| p.is_file()),
        };
        let (file_config, file_name) = match file {
            Some(path) => (read_file(&path)?, path.display().to_string()),
            None => (FileConfig::default(), FILE_NAME.to_owned()),
        };
        Config::resolve(service, file_config, &file_name, env)
    }

    /// The configuration of `service` from defaults and `env` alone (tests pass their own).
    pub fn from_env(service: Service, env: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Config::resolve(service, FileConfig::default(), FILE_NAME, env)
    }

    fn resolve(
        service: Service,
        file: FileConfig,
        file_name: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        // The environment wins over the file; each setting remembers where it came from.
        let pick = |var: &str, key: &str, from_file: Option<String>| match env(var) {
            Some(value) => Setting { value: Some(value), source_name: format!("environment variable {var}") },
            None => Setting { value: from_file, source_name: format!("{file_name}: {key}") },
        };
        let port = pick("SERVER_PORT", "server.port", file.server.port.map(|p| p.to_string()));
        let redis_address = pick("REDIS_ADDRESS", "redis.address", file.redis.address);
        let redis_password = pick("REDIS_PASSWORD", "redis.password", file.redis.password);
        let redis_db = pick("REDIS_DB", "redis.db", file.redis.db.map(|d| d.to_string()));
        let key_prefix = pick("REDIS_KEY_PREFIX", "redis.key_prefix", file.redis.key_prefix);
        let redis_timeout = pick("REDIS_TIMEOUT", "redis.timeout", file.redis.timeout);
        let dsn = pick("MYSQL_DSN", "mysql.dsn", file.mysql.dsn);
        let instance_id = pick("INSTANCE_ID", "instance_id", file.instance_id);
        let log_level = pick("LOG_LEVEL", "log_level", file.log_level);
        let leader_ttl = pick("LEADER_TTL", "leader_ttl", file.leader_ttl);
        let b = file.bidding;
        let max_frame = pick("WS_MAX_FRAME_BYTES", "bidding.max_frame_bytes", b.max_frame_bytes.map(|v| v.to_string()));
        let max_message =
            pick("WS_MAX_MESSAGE_BYTES", "bidding.max_message_bytes", b.max_message_bytes.map(|v| v.to_string()));
        let watcher_queue = pick("WS_WATCHER_QUEUE", "bidding.watcher_queue", b.watcher_queue.map(|v| v.to_string()));
        let send_timeout = pick("WS_SEND_TIMEOUT", "bidding.send_timeout", b.send_timeout);
        let send_buffer = pick("WS_SEND_BUFFER", "bidding.send_buffer", b.send_buffer.map(|v| v.to_string()));
        let max_bid = pick("MAX_BID", "bidding.max_bid", b.max_bid);
        let conn_rate =
            pick("WS_BID_RATE", "bidding.bid_rate_per_connection", b.bid_rate_per_connection.map(|v| v.to_string()));
        let user_rate =
            pick("WS_USER_BID_RATE", "bidding.bid_rate_per_user", b.bid_rate_per_user.map(|v| v.to_string()));
        let max_conns = pick("WS_MAX_CONNECTIONS", "bidding.max_connections", b.max_connections.map(|v| v.to_string()));
        let max_user_conns = pick(
            "WS_MAX_CONNECTIONS_PER_USER",
            "bidding.max_connections_per_user",
            b.max_connections_per_user.map(|v| v.to_string()),
        );
        let idle = pick("WS_IDLE_TIMEOUT", "bidding.idle_timeout", b.idle_timeout);
        let ws_origins = parse_origins(pick("WS_ALLOWED_ORIGINS", "bidding.allowed_origins", b.allowed_origins))?;
        let max_starting_bid = pick("MAX_BID", "auction.max_bid", file.auction.max_bid);
        let max_duration = pick("MAX_AUCTION_DURATION", "auction.max_duration", file.auction.max_duration);
        let max_extend = pick("MAX_EXTEND", "auction.max_extend", file.auction.max_extend);
        let cors = pick("CORS_ALLOWED_ORIGINS", "auction.cors_allowed_origins", file.auction.cors_allowed_origins);
        let cors_origins = parse_origins(cors)?;
        let claim_ttl = pick("ANALYTICS_CLAIM_TTL", "analytics.claim_ttl", file.analytics.claim_ttl);
        let batch = pick("ANALYTICS_BATCH", "analytics.batch", file.analytics.batch.map(|b| b.to_string()));
        let sweep = pick("ANALYTICS_SWEEP", "analytics.sweep", file.analytics.sweep);
        let crash = pick("ANALYTICS_CRASH_AFTER_COMMIT", "-", None);
        let secret = pick("AUTH_SECRET", "-", None);
        let admin_token = pick("ADMIN_TOKEN", "-", None);
        let auth = AuthConfig {
            secret: match secret.value.filter(|s| !s.is_empty()) {
                Some(s) if s.len() < 32 => return Err(bad(secret.source_name, "must be at least 32 bytes long")),
                other => other.map(String::into_bytes),
            },
            admin_token: match admin_token.value.filter(|t| !t.is_empty()) {
                Some(t) if t.len() < 16 => {
                    return Err(bad(admin_token.source_name, "must be at least 16 characters long"));
                }
                other => other,
            },
        };

        let host = pick("SERVER_HOST", "server.host", file.server.host).value.unwrap_or_else(|| "0.0.0.0".into());
        let key_prefix_value = key_prefix.value.clone().unwrap_or_default();
        if key_prefix_value.contains(['{', '}']) || key_prefix_value.chars().any(char::is_control) {
            return Err(bad(key_prefix.source_name, "must not contain braces or control characters"));
        }
        let redis_url = redis_url(&redis_address, &redis_password, &redis_db)?;
        let mysql = parse_mysql_dsn(dsn.value.as_deref().unwrap_or(DEFAULT_MYSQL_DSN))
            .map_err(|message| bad(dsn.source_name, message))?;
        let level = log_level.value.unwrap_or_else(|| "info".into());
        if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
            return Err(bad(log_level.source_name, format!("{level:?} is not a log level or filter")));
        }
        let instance_id = match instance_id.value {
            Some(id) => {
                auction_proto::ids::validate_id("instance_id", &id)
                    .map_err(|e| bad(instance_id.source_name, e.to_string()))?;
                id
            }
            None => format!("{}-{}", service.name(), &uuid::Uuid::new_v4().simple().to_string()[..8]),
        };
        let max_frame_bytes = number(max_frame, 4 * 1024)?;
        let max_message_bytes = number(max_message, 64 * 1024)?;
        if max_message_bytes < max_frame_bytes {
            return Err(bad("WS_MAX_MESSAGE_BYTES", "must be at least WS_MAX_FRAME_BYTES"));
        }
        Ok(Config {
            service,
            host,
            port: number(port, service.default_port())?,
            instance_id,
            log_level: level,
            redis: RedisConfig {
                url: redis_url,
                key_prefix: key_prefix_value,
                timeout: duration(redis_timeout, Duration::from_secs(2))?,
            },
            mysql,
            leader_ttl: duration(leader_ttl, Duration::from_secs(10))?,
            bidding: BiddingConfig {
                max_frame_bytes,
                max_message_bytes,
                watcher_queue: number(watcher_queue, 256)?,
                max_bid: amount(max_bid)?,
                send_timeout: duration(send_timeout, Duration::from_secs(10))?,
                send_buffer: Some(number(send_buffer, 0)?).filter(|bytes| *bytes > 0),
                bid_rate_per_connection: number(conn_rate, 20)?.max(1),
                bid_rate_per_user: number(user_rate, 50)?.max(1),
                max_connections: number(max_conns, 100_000)?.max(1),
                max_connections_per_user: number(max_user_conns, 20)?.max(1),
                idle_timeout: duration(idle, Duration::from_secs(60))?.max(Duration::from_millis(100)),
                allowed_origins: ws_origins,
            },
            auction: AuctionConfig {
                max_bid: amount(max_starting_bid)?,
                max_duration: duration(max_duration, Duration::from_secs(365 * 24 * 3600))?,
                max_extend: duration(max_extend, Duration::from_secs(24 * 3600))?,
                cors_origins,
            },
            analytics: AnalyticsConfig {
                claim_ttl: duration(claim_ttl, Duration::from_secs(10))?,
                batch: number(batch, 500)?.max(1),
                sweep: duration(sweep, Duration::from_secs(2))?,
                crash_after_commit: crash.value.is_some_and(|v| v == "1" || v == "true"),
            },
            auth,
        })
    }
}

/// `*` (or unset) for any origin, else a comma-separated list of `scheme://host[:port]`.
fn parse_origins(setting: Setting) -> Result<Option<Vec<String>>, ConfigError> {
    let text = match setting.value.as_deref().map(str::trim) {
        None | Some("*") => return Ok(None),
        Some(text) => text,
    };
    let origins: Vec<String> = text.split(',').map(|o| o.trim().trim_end_matches('/').to_owned()).collect();
    for origin in &origins {
        let valid = url::Url::parse(origin).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.path() == "/");
        if !valid {
            return Err(bad(
                setting.source_name,
                format!("{origin:?} is not an origin such as https://bids.example.com"),
            ));
        }
    }
    Ok(Some(origins))
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| bad(&name, format!("cannot read: {e}")))?;
    if text.trim().is_empty() {
        return Ok(FileConfig::default());
    }
    let deserializer = serde_yaml::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let key = if path == "." { String::new() } else { format!("{path}: ") };
        bad(&name, format!("{key}{}", e.into_inner()))
    })
}

fn number<T: std::str::FromStr>(setting: Setting, default: T) -> Result<T, ConfigError> {
    match setting.value {
        None => Ok(default),
        Some(text) => {
            text.trim().parse().map_err(|_| bad(setting.source_name, format!("{text:?} is not a valid number here")))
        }
    }
}

fn amount(setting: Setting) -> Result<Amount, ConfigError> {
    match setting.value {
        None => Ok(Amount::MAX),
        Some(text) => Amount::parse(text.trim()).map_err(|e| bad(setting.source_name, e.to_string())),
    }
}

fn duration(setting: Setting, default: Duration) -> Result<Duration, ConfigError> {
    match setting.value {
        None => Ok(default),
        Some(text) => auction_proto::duration::parse(&text).map_err(|e| bad(setting.source_name, e.to_string())),
    }
}

/// Builds the Redis URL from `host:port` or a full `redis://` URL plus password and database.
fn redis_url(address: &Setting, password: &Setting, db: &Setting) -> Result<String, ConfigError> {
    let raw = address.value.as_deref().unwrap_or("127.0.0.1:6379");
    let with_scheme = if raw.contains("://") { raw.to_owned() } else { format!("redis://{raw}") };
    let mut url = url::Url::parse(&with_scheme)
        .map_err(|e| bad(&address.source_name, format!("{raw:?} is not host:port or a redis:// URL: {e}")))?;
    if !matches!(url.scheme(), "redis" | "rediss") || url.host_str().is_none() {
        return Err(bad(&address.source_name, format!("{raw:?} is not host:port or a redis:// URL")));
    }
    if let Some(pw) = &password.value {
        url.set_password(Some(pw)).map_err(|()| bad(&password.source_name, "cannot be used in a URL"))?;
    }
    if let Some(db_text) = &db.value {
        let n: u32 = db_text
            .trim()
            .parse()
            .map_err(|_| bad(&db.source_name, format!("{db_text:?} is not a database number")))?;
        url.set_path(&format!("/{n}"));
    }
    Ok(url.to_string())
}

/// Parses `mysql://user:pass@host:port/db` or the older `user:pass@tcp(host:port)/db?params`.
pub fn parse_mysql_dsn(dsn: &str) -> Result<MySqlConnectOptions, String> {
    let url = if dsn.starts_with("mysql://") || dsn.starts_with("mariadb://") {
        dsn.replacen("mariadb://", "mysql://", 1)
    } else {
        go_dsn_to_url(dsn)?
    };
    url.parse::<MySqlConnectOptions>().map_err(|e| format!("{dsn:?} is not a MySQL DSN: {e}"))
}

/// `user:pass@tcp(host:port)/db?params` -> `mysql://user:pass@host:port/db`. Parameters of the old
/// form (`parseTime`, `charset`, `loc`) describe client behaviour this service fixes itself, so
/// they are dropped.
fn go_dsn_to_url(dsn: &str) -> Result<String, String> {
    let shape = || format!("{dsn:?} is neither mysql://user:pass@host:port/db nor user:pass@tcp(host:port)/db");
    let (credentials, rest) = dsn.rsplit_once('@').ok_or_else(shape)?;
    let rest = rest.strip_prefix("tcp(").ok_or_else(shape)?;
    let (address, rest) = rest.split_once(')').ok_or_else(shape)?;
    let database = rest.strip_prefix('/').ok_or_else(shape)?;
    let database = database.split('?').next().unwrap_or_default();
    let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    Ok(format!("mysql://{}:{}@{}/{}", enc(user), enc(password), address, enc(database)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_env(Service::Bidding, |name| vars.get(name).cloned())
    }

    #[test]
    fn defaults() {
        let config = load(&[]).unwrap();
        assert_eq!(config.port, 8080);
        assert_eq!(config.redis.url, "redis://127.0.0.1:6379");
        assert_eq!(config.leader_ttl, Duration::from_secs(10));
        assert!(config.instance_id.starts_with("bidding-"));
    }

    #[test]
    fn env_overrides() {
        let config = load(&[
            ("SERVER_PORT", "9000"),
            ("REDIS_ADDRESS", "redis.internal:6380"),
            ("REDIS_PASSWORD", "p@ss"),
            ("REDIS_DB", "3"),
            ("LEADER_TTL", "1500ms"),
            ("INSTANCE_ID", "node-7"),
        ])
        .unwrap();
        assert_eq!(config.port, 9000);
        assert_eq!(config.redis.url, "redis://:p%40ss@redis.internal:6380/3");
        assert_eq!(config.leader_ttl, Duration::from_millis(1500));
        assert_eq!(config.instance_id, "node-7");
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = |vars: &[(&str, &str)]| load(vars).unwrap_err().to_string();
        assert!(err(&[("SERVER_PORT", "http")]).starts_with("environment variable SERVER_PORT:"));
        assert!(err(&[("SERVER_PORT", "70000")]).starts_with("environment variable SERVER_PORT:"));
        assert!(err(&[("LEADER_TTL", "10 parsecs")]).starts_with("environment variable LEADER_TTL:"));
        assert!(err(&[("MYSQL_DSN", "nonsense")]).starts_with("environment variable MYSQL_DSN:"));
        assert!(err(&[("REDIS_ADDRESS", "http://x")]).starts_with("environment variable REDIS_ADDRESS:"));
        assert!(err(&[("LOG_LEVEL", "loud[")]).starts_with("environment variable LOG_LEVEL:"));
        assert!(err(&[("MAX_BID", "-5")]).starts_with("environment variable MAX_BID:"));
        assert!(err(&[("INSTANCE_ID", "a:b")]).starts_with("environment variable INSTANCE_ID:"));
        assert!(err(&[("WS_SEND_BUFFER", "16k")]).starts_with("environment variable WS_SEND_BUFFER:"));
        assert!(
            err(&[("CORS_ALLOWED_ORIGINS", "bids.example.com")])
                .starts_with("environment variable CORS_ALLOWED_ORIGINS:")
        );
        assert!(err(&[("CORS_ALLOWED_ORIGINS", "https://a.example/path")]).contains("not an origin"));
    }

    #[test]
    fn the_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deployments/config.example.yaml");
        let file = read_file(&path).unwrap();
        let config = Config::resolve(Service::Bidding, file, "config.example.yaml", |_| None).unwrap();
        assert_eq!(config.bidding.bid_rate_per_connection, 20);
        assert_eq!(config.bidding.send_buffer, None, "0 leaves the kernel's autotuning");
        assert_eq!(config.analytics.claim_ttl, Duration::from_secs(10));
    }

    #[test]
    fn mysql_dsn_forms() {
        let go = parse_mysql_dsn("auction:secret@tcp(db.local:3307)/bids?parseTime=true").unwrap();
        assert_eq!(go.get_host(), "db.local");
        assert_eq!(go.get_port(), 3307);
        assert_eq!(go.get_database(), Some("bids"));
        let url = parse_mysql_dsn("mysql://u:p@127.0.0.1:3306/auction").unwrap();
        assert_eq!(url.get_database(), Some("auction"));
        assert!(parse_mysql_dsn("u:p@db:3306/auction").is_err());
    }

    #[test]
    fn yaml_file_errors_name_the_key() {
        let dir = std::env::temp_dir().join(format!("auction-config-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config.yaml");
        std::fs::write(&path, "server:\n  port: 8085\nredis:\n  adress: x\n").unwrap();
        let err = read_file(&path).unwrap_err().to_string();
        assert!(err.contains("redis: unknown field `adress`"), "{err}");
        std::fs::write(&path, "server:\n  port: lots\n").unwrap();
        let err = read_file(&path).unwrap_err().to_string();
        assert!(err.contains("server.port"), "{err}");
        std::fs::write(&path, "server:\n  port: 8085\nleader_ttl: 5s\n").unwrap();
        let file = read_file(&path).unwrap();
        let config = Config::resolve(Service::Auction, file, "config.yaml", |_| None).unwrap();
        assert_eq!((config.port, config.leader_ttl), (8085, Duration::from_secs(5)));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
